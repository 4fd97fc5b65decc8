//! Little helpers for Tern's hand-written binary formats (mutations, value headers, log
//! records). Integers are big-endian or LEB128 varints; byte strings are varint-length-prefixed.
//! Decoding never panics: short or malformed input is a [`Fatal::Corruption`] naming the field.
//!
//! [`Fatal::Corruption`]: crate::Fatal::Corruption

use crate::error::{Error, Result};

/// Appends encoded fields to a buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    pub fn with_capacity(n: usize) -> Writer {
        Writer { buf: Vec::with_capacity(n) }
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub fn u32_be(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64_be(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn varint(&mut self, mut v: u64) -> &mut Self {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
        self
    }

    /// A signed integer, zigzag-encoded so small negatives stay short.
    pub fn varint_i64(&mut self, v: i64) -> &mut Self {
        self.varint(((v << 1) ^ (v >> 63)) as u64)
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
        self
    }

    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads fields back; every read names the field so corruption reports say where it broke.
#[derive(Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// What is being decoded, for error messages ("mutation", "log record").
    context: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8], context: &'static str) -> Reader<'a> {
        Reader { data, pos: 0, context }
    }

    fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or_else(|| {
            Error::corruption(format!(
                "{}: truncated reading {field} ({n} bytes wanted at offset {}, {} available)",
                self.context,
                self.pos,
                self.data.len() - self.pos
            ))
        })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub fn u8(&mut self, field: &str) -> Result<u8> {
        Ok(self.take(1, field)?[0])
    }

    /// A format's version byte, which must be `known`: the one version this build reads.
    pub fn version(&mut self, field: &str, known: u8) -> Result<()> {
        let v = self.u8(field)?;
        if v != known {
            return Err(Error::corruption(format!(
                "{} has unknown {field} {v} (this build reads version {known})",
                self.context
            )));
        }
        Ok(())
    }

    pub fn u32_be(&mut self, field: &str) -> Result<u32> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64_be(&mut self, field: &str) -> Result<u64> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    pub fn varint(&mut self, field: &str) -> Result<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.u8(field)?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                break;
            }
            v |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Error::corruption(format!(
            "{}: varint {field} at offset {} overflows 64 bits",
            self.context, self.pos
        )))
    }

    pub fn varint_i64(&mut self, field: &str) -> Result<i64> {
        let z = self.varint(field)?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    /// A length that must fit in memory and in what is left of the input.
    pub fn len(&mut self, field: &str) -> Result<usize> {
        let n = self.varint(field)?;
        usize::try_from(n).ok().filter(|&n| n <= self.remaining()).ok_or_else(|| {
            Error::corruption(format!(
                "{}: {field} claims {n} bytes but only {} remain",
                self.context,
                self.remaining()
            ))
        })
    }

    pub fn bytes(&mut self, field: &str) -> Result<&'a [u8]> {
        let n = self.len(field)?;
        self.take(n, field)
    }

    pub fn bytes_vec(&mut self, field: &str) -> Result<Vec<u8>> {
        Ok(self.bytes(field)?.to_vec())
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.data[self.pos..];
        self.pos = self.data.len();
        s
    }

    /// Fails unless every byte was consumed: trailing garbage is corruption too.
    pub fn finish(self) -> Result<()> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(Error::corruption(format!(
                "{}: {} unexpected trailing bytes at offset {}",
                self.context,
                self.remaining(),
                self.pos
            )))
        }
    }

    pub fn context(&self) -> &'static str {
        self.context
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn varint_golden() {
        let mut w = Writer::new();
        w.varint(0).varint(127).varint(128).varint(300).varint_i64(-1);
        assert_eq!(w.finish(), vec![0x00, 0x7f, 0x80, 0x01, 0xac, 0x02, 0x01]);
    }

    #[test]
    fn truncated_input_names_the_field() {
        let mut r = Reader::new(&[0x05, 1, 2], "test record");
        let err = r.bytes("value").unwrap_err().to_string();
        assert!(err.contains("test record") && err.contains("value"), "{err}");
    }

    #[test]
    fn overlong_varint_is_corruption() {
        let data = [0xffu8; 11];
        assert!(Reader::new(&data, "t").varint("n").unwrap_err().is_fatal());
    }

    #[test]
    fn trailing_bytes_are_corruption() {
        let mut r = Reader::new(&[1, 2], "t");
        r.u8("a").unwrap();
        assert!(r.finish().is_err());
    }

    proptest! {
        #[test]
        fn round_trip(a: u64, b: i64, c: Vec<u8>, d: u32) {
            let mut w = Writer::new();
            w.varint(a).varint_i64(b).bytes(&c).u32_be(d).u64_be(a);
            let buf = w.finish();
            let mut r = Reader::new(&buf, "t");
            prop_assert_eq!(r.varint("a").unwrap(), a);
            prop_assert_eq!(r.varint_i64("b").unwrap(), b);
            prop_assert_eq!(r.bytes("c").unwrap(), &c[..]);
            prop_assert_eq!(r.u32_be("d").unwrap(), d);
            prop_assert_eq!(r.u64_be("a2").unwrap(), a);
            r.finish().unwrap();
        }

        #[test]
        fn never_panics_on_garbage(data: Vec<u8>) {
            let mut r = Reader::new(&data, "t");
            let _ = r.varint("a");
            let _ = r.bytes("b");
            let _ = r.u64_be("c");
        }
    }
}

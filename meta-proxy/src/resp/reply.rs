//! Replies, encoded as RESP2.

/// A reply to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`, `-NOPROTO ...`: the whole line after `-`.
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    /// `$-1`: an absent value.
    Nil,
    Array(Vec<Reply>),
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Simple("OK".into())
    }

    /// Appends the encoding to `out` (one buffer per batch of pipelined replies).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            // A line must not break the framing: CR and LF become spaces.
            Reply::Simple(s) => line(out, b'+', s),
            Reply::Error(s) => line(out, b'-', s),
            Reply::Integer(n) => {
                out.push(b':');
                out.extend_from_slice(n.to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Reply::Bulk(b) => {
                out.push(b'$');
                out.extend_from_slice(b.len().to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
            Reply::Array(items) => {
                out.push(b'*');
                out.extend_from_slice(items.len().to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
                for i in items {
                    i.encode(out);
                }
            }
        }
    }
}

fn line(out: &mut Vec<u8>, tag: u8, s: &str) {
    out.push(tag);
    out.extend(s.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    out.extend_from_slice(b"\r\n");
}

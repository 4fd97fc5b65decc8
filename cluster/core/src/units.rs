//! Human units for flags and config files: sizes like `64MiB`, durations like `1h30m`.

use std::time::Duration;

use crate::error::{Error, Result};

/// Parses a byte size: a non-negative integer with an optional unit — `B`, `KiB`, `MiB`,
/// `GiB`, `TiB` (powers of 1024) or `KB`, `MB`, `GB`, `TB` (powers of 1000). Case-insensitive
/// units, no fractions, optional space before the unit.
pub fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        Error::InvalidArgument(format!(
            "{s:?} is not a byte size: use a whole number with an optional unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB), e.g. 64MiB"
        ))
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "tib" | "t" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(|| Error::InvalidArgument(format!("{s:?} is too large")))
}

/// Parses a duration like `10s`, `500ms`, `1h 30m`, `2d`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        Error::InvalidArgument(format!("{s:?} is not a duration ({e}); examples: 10s, 500ms, 1h30m"))
    })
}

/// A TTL in whole seconds from a duration string: at least 1 second, at most u32::MAX.
pub fn parse_ttl_secs(s: &str) -> Result<u32> {
    let d = parse_duration(s)?;
    if d.subsec_nanos() != 0 || d.as_secs() == 0 {
        return Err(Error::InvalidArgument(format!(
            "TTL {s:?} must be a whole number of seconds, at least 1s"
        )));
    }
    u32::try_from(d.as_secs())
        .map_err(|_| Error::InvalidArgument(format!("TTL {s:?} is longer than {} seconds", u32::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1 kb").unwrap(), 1000);
        assert_eq!(parse_bytes("17").unwrap(), 17);
        for bad in ["", "1.5MiB", "-1", "10 parsecs", "MiB"] {
            let e = parse_bytes(bad).unwrap_err().to_string();
            assert!(e.contains("not a byte size"), "{bad}: {e}");
        }
        assert!(parse_bytes("99999999999TiB").is_err());
    }

    #[test]
    fn durations_and_ttls() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_ttl_secs("10s").unwrap(), 10);
        assert!(parse_ttl_secs("500ms").unwrap_err().to_string().contains("whole number"));
        assert!(parse_ttl_secs("0s").is_err());
        assert!(parse_duration("soon").unwrap_err().to_string().contains("not a duration"));
    }
}

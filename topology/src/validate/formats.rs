//! Checks of single values: names, addresses, S3 URLs, times of day. Each returns what is
//! wrong as a sentence, without the value's path (the caller adds it).

use std::net::{IpAddr, SocketAddr};

/// Names of clusters, proxies, targets and policies: the table-name rule of the meta servers.
pub fn check_name(kind: &str, name: &str) -> Result<(), String> {
    tern_core::table::check_table_name(name).map_err(|_| {
        format!(
            "{kind} name {name:?} is not valid: use 1 to 64 characters among letters, digits, '_', '.', '-'"
        )
    })
}

/// A listening address: `(host, port)`; port 0 means "pick one" (local runs).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Addr {
    pub host: String,
    pub port: u16,
}

impl Addr {
    /// Two addresses clash if they have the same port on the same machine; every loopback
    /// spelling is this machine.
    pub fn machine(&self) -> String {
        let loopback = self.host == "localhost"
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
        if loopback { "this machine".to_string() } else { self.host.to_ascii_lowercase() }
    }
}

pub fn parse_addr(s: &str) -> Result<Addr, String> {
    let bad = || {
        format!("`{s}` is not an address: expected HOST:PORT, e.g. 10.0.1.5:34601 (port 0: pick a free port)")
    };
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(Addr { host: a.ip().to_string(), port: a.port() });
    }
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    let port = port.parse::<u16>().map_err(|_| bad())?;
    if host_ok { Ok(Addr { host: host.to_string(), port }) } else { Err(bad()) }
}

/// `s3://BUCKET[/PREFIX]` with a bucket name S3 accepts.
pub fn check_s3_url(s: &str) -> Result<(), String> {
    let rest = s
        .strip_prefix("s3://")
        .ok_or_else(|| format!("`{s}` is not an S3 URL: expected s3://BUCKET[/PREFIX]"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !bucket_ok {
        return Err(format!(
            "`{bucket}` in `{s}` is not a bucket name: use 3 to 63 lowercase letters, digits, '.', '-', starting and ending with a letter or digit"
        ));
    }
    if prefix.starts_with('/') || prefix.contains("//") {
        return Err(format!("the prefix of `{s}` has an empty path segment ('//')"));
    }
    Ok(())
}

/// `http://HOST[:PORT][/…]` or `https://…`.
pub fn check_endpoint(s: &str) -> Result<(), String> {
    let rest = s.strip_prefix("http://").or_else(|| s.strip_prefix("https://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') => Ok(()),
        _ => Err(format!("`{s}` is not an endpoint: expected http://HOST[:PORT] or https://HOST[:PORT]")),
    }
}

/// `HH:MM`, 24-hour.
pub fn check_time_of_day(s: &str) -> Result<(), String> {
    let ok = s.split_once(':').is_some_and(|(h, m)| {
        h.len() == 2
            && m.len() == 2
            && h.parse::<u8>().is_ok_and(|h| h < 24)
            && m.parse::<u8>().is_ok_and(|m| m < 60)
    });
    if ok { Ok(()) } else { Err(format!("`{s}` is not a time of day: expected HH:MM in UTC, e.g. 02:30")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(parse_addr("127.0.0.1:0").unwrap().port, 0);
        assert_eq!(parse_addr("meta-1.dc1.internal:34601").unwrap().host, "meta-1.dc1.internal");
        assert_eq!(parse_addr("[::1]:5").unwrap().machine(), "this machine");
        assert_eq!(parse_addr("localhost:5").unwrap().machine(), "this machine");
        assert_eq!(parse_addr("10.0.0.1:5").unwrap().machine(), "10.0.0.1");
        for bad in ["127.0.0.1", "host:99999", ":80", "a b:1", ""] {
            assert!(parse_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn s3_urls_endpoints_and_times() {
        assert!(check_s3_url("s3://tern-backups").is_ok());
        assert!(check_s3_url("s3://tern-backups/prod/dc1").is_ok());
        assert!(check_s3_url("s3://Tern/x").unwrap_err().contains("is not a bucket name"));
        assert!(check_s3_url("https://x/y").unwrap_err().contains("expected s3://BUCKET[/PREFIX]"));
        assert!(check_s3_url("s3://abc//x").is_err());
        assert!(check_endpoint("http://127.0.0.1:9000").is_ok());
        assert!(check_endpoint("127.0.0.1:9000").is_err());
        assert!(check_time_of_day("02:30").is_ok());
        assert!(check_time_of_day("24:00").is_err() && check_time_of_day("2:30").is_err());
    }
}

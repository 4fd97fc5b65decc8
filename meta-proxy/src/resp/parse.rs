//! Request parsing. A request is an array of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`, what
//! every client library and `redis-cli` send) or an inline command (`PING\r\n`, what a human
//! typing into `telnet` sends). Errors use Redis's own wording, and after one the connection must
//! be closed (the stream position is lost), as Redis does.

/// Bounds on what a client may announce; a request over them is a protocol error, never an
/// allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string (Redis: `proto-max-bulk-len`, 512 MiB by default).
    pub max_bulk: usize,
    /// Most arguments in one request.
    pub max_args: usize,
    /// Longest inline command line (Redis: 64 KiB).
    pub max_inline: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_bulk: 64 << 20, max_args: 1 << 20, max_inline: 64 << 10 }
    }
}

/// A malformed request: the reply is `-ERR Protocol error: <message>`, then the connection closes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Protocol error: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

/// A parsed request (its arguments) and the bytes it took; `None` when more bytes are needed.
pub type Parsed = Option<(Vec<Vec<u8>>, usize)>;

fn err<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(msg.into()))
}

/// The line at the start of `buf` (without `\r\n`) and the bytes it takes, if complete.
fn line(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, ParseError> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(end) if end > max => err("too big inline request"),
        Some(end) => Ok(Some((&buf[..end], end + 2))),
        None if buf.len() > max => err("too big inline request"),
        None => Ok(None),
    }
}

/// A decimal length as Redis reads it (an optional `-`, digits only).
fn number(digits: &[u8]) -> Option<i64> {
    std::str::from_utf8(digits).ok()?.parse::<i64>().ok()
}

/// Parses one request from the start of `buf`: `Ok(Some((args, consumed)))` when a whole
/// request is there, `Ok(None)` when more bytes are needed (nothing is consumed), `Err` when
/// the bytes can never be a request. An empty request (`*0` or a blank inline line) gives no
/// arguments; Redis ignores those.
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Parsed, ParseError> {
    let Some(&first) = buf.first() else { return Ok(None) };
    if first != b'*' {
        return inline(buf, limits);
    }
    // Headers are short: a count line longer than this is garbage.
    let Some((header, mut at)) = line(&buf[1..], 32)? else { return Ok(None) };
    at += 1;
    let n = match number(header) {
        Some(n) if n <= 0 => return Ok(Some((vec![], at))),
        Some(n) if n as u64 <= limits.max_args as u64 => n as usize,
        _ => return err("invalid multibulk length"),
    };
    let mut args = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let rest = &buf[at..];
        let Some(&tag) = rest.first() else { return Ok(None) };
        if tag != b'$' {
            return err(format!("expected '$', got '{}'", char::from(tag)));
        }
        let Some((len, used)) = line(&rest[1..], 32)? else { return Ok(None) };
        let len = match number(len) {
            Some(l) if l >= 0 && l as u64 <= limits.max_bulk as u64 => l as usize,
            _ => return err("invalid bulk length"),
        };
        let start = at + 1 + used;
        if buf.len() < start + len + 2 {
            return Ok(None);
        }
        if &buf[start + len..start + len + 2] != b"\r\n" {
            return err("invalid bulk string terminator");
        }
        args.push(buf[start..start + len].to_vec());
        at = start + len + 2;
    }
    Ok(Some((args, at)))
}

/// An inline command: space-separated words up to `\r\n` (or `\n`); double quotes group words
/// with spaces, as in `redis-cli`.
fn inline(buf: &[u8], limits: &Limits) -> Result<Parsed, ParseError> {
    let end = match buf.iter().position(|&b| b == b'\n') {
        Some(e) if e > limits.max_inline => return err("too big inline request"),
        Some(e) => e,
        None if buf.len() > limits.max_inline => return err("too big inline request"),
        None => return Ok(None),
    };
    let text = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
    let mut args = Vec::new();
    let mut word: Option<Vec<u8>> = None;
    let mut quoted = false;
    for &b in text {
        match b {
            b'"' => {
                quoted = !quoted;
                word.get_or_insert_with(Vec::new);
            }
            b' ' | b'\t' if !quoted => {
                if let Some(w) = word.take() {
                    args.push(w);
                }
            }
            _ => word.get_or_insert_with(Vec::new).push(b),
        }
    }
    if quoted {
        return err("unbalanced quotes in request");
    }
    if let Some(w) = word {
        args.push(w);
    }
    Ok(Some((args, end + 1)))
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;

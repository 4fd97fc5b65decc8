//! Argument parsing of the gateway's commands, pure and with Redis 7's error wording: integers,
//! SET's options, EXPIRE's options, and turning Redis's millisecond times into Tern's whole
//! seconds. Every function takes "now" as an argument so that tests pin it.

/// An error reply, without the leading `-` (e.g. `ERR syntax error`).
pub type ErrReply = String;

pub const SYNTAX: &str = "ERR syntax error";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";

pub fn invalid_expire(cmd: &str) -> ErrReply {
    format!("ERR invalid expire time in '{cmd}' command")
}

/// A decimal int64 exactly as Redis reads one (`string2ll`): an optional `-`, then digits with
/// no leading zero (`0` alone is fine); no `+`, no spaces, no `-0`, in range.
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    if b == b"0" {
        return Some(0);
    }
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    match digits.first() {
        Some(b'1'..=b'9') if digits.iter().all(u8::is_ascii_digit) => {}
        _ => return None,
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

pub fn int_arg(b: &[u8]) -> Result<i64, ErrReply> {
    parse_i64(b).ok_or_else(|| NOT_INTEGER.to_string())
}

/// What a write does to the key's expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// No expiry (a plain SET removes any TTL, as in Redis).
    Persist,
    /// Keep the key's current expiry (SET ... KEEPTTL).
    Keep,
    /// Expire this many whole seconds after the write (at least 1).
    Secs(u32),
    /// The expiry is already past: the key is written and gone at once, so it is deleted.
    Expired,
}

/// Tern's expiry for a deadline `at_ms` (Unix milliseconds) seen at `now_ms`: the remaining time
/// rounded UP to whole seconds (Tern's granularity; PX 1500 is 2 s), capped at `u32::MAX`.
pub fn expiry_at(at_ms: i64, now_ms: i64) -> Expiry {
    let rel = i128::from(at_ms) - i128::from(now_ms);
    if rel <= 0 {
        return Expiry::Expired;
    }
    let secs = (rel + 999) / 1000;
    Expiry::Secs(u32::try_from(secs).unwrap_or(u32::MAX))
}

/// The condition of a SET.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    Always,
    /// NX
    IfAbsent,
    /// XX
    IfPresent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetOptions {
    pub cond: Cond,
    /// GET: reply with the old value.
    pub get: bool,
    pub expiry: Expiry,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// EX, EXAT
    Secs,
    /// PX, PXAT
    Millis,
}

/// SET's options (the arguments after the value), following Redis 7's
/// `parseExtendedStringArgumentsOrReply` and `getExpireMillisecondsOrReply`: conflicting or
/// unknown options are a syntax error (a repeated EX/PX replaces the earlier one, as there),
/// then the time must be an integer > 0 that does not overflow.
pub fn parse_set(opts: &[Vec<u8>], now_ms: i64) -> Result<SetOptions, ErrReply> {
    let (mut nx, mut xx, mut get, mut keep) = (false, false, false, false);
    // (unit, absolute?, argument)
    let mut time: Option<(Unit, bool, &[u8])> = None;
    let mut i = 0;
    while i < opts.len() {
        let opt = opts[i].to_ascii_uppercase();
        let next = opts.get(i + 1).map(Vec::as_slice);
        i += 1;
        let (unit, absolute) = match opt.as_slice() {
            b"NX" if !xx => {
                nx = true;
                continue;
            }
            b"XX" if !nx => {
                xx = true;
                continue;
            }
            b"GET" => {
                get = true;
                continue;
            }
            b"KEEPTTL" if time.is_none() => {
                keep = true;
                continue;
            }
            b"EX" => (Unit::Secs, false),
            b"PX" => (Unit::Millis, false),
            b"EXAT" => (Unit::Secs, true),
            b"PXAT" => (Unit::Millis, true),
            _ => return Err(SYNTAX.into()),
        };
        // Another kind of time given before, or KEEPTTL, or no argument: a syntax error.
        let same_kind = time.is_none_or(|(u, a, _)| (u, a) == (unit, absolute));
        match next {
            Some(n) if !keep && same_kind => time = Some((unit, absolute, n)),
            _ => return Err(SYNTAX.into()),
        }
        i += 1;
    }
    let cond = match (nx, xx) {
        (true, _) => Cond::IfAbsent,
        (_, true) => Cond::IfPresent,
        _ => Cond::Always,
    };
    let expiry = match time {
        None if keep => Expiry::Keep,
        None => Expiry::Persist,
        Some((unit, absolute, n)) => expiry_of(n, unit, absolute, now_ms, "set")?,
    };
    Ok(SetOptions { cond, get, expiry })
}

/// SETEX's seconds and PSETEX's milliseconds.
pub fn parse_setex(n: &[u8], millis: bool, now_ms: i64, cmd: &str) -> Result<Expiry, ErrReply> {
    expiry_of(n, if millis { Unit::Millis } else { Unit::Secs }, false, now_ms, cmd)
}

fn expiry_of(n: &[u8], unit: Unit, absolute: bool, now_ms: i64, cmd: &str) -> Result<Expiry, ErrReply> {
    let v = int_arg(n)?;
    if v <= 0 || (unit == Unit::Secs && v > i64::MAX / 1000) {
        return Err(invalid_expire(cmd));
    }
    let ms = if unit == Unit::Secs { v * 1000 } else { v };
    let at = if absolute { Some(ms) } else { ms.checked_add(now_ms) };
    match at {
        Some(at) if at > 0 => Ok(expiry_at(at, now_ms)),
        _ => Err(invalid_expire(cmd)),
    }
}

/// EXPIRE's and PEXPIRE's conditions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExpireFlags {
    /// Only if the key has no expiry.
    pub nx: bool,
    /// Only if the key has an expiry.
    pub xx: bool,
    /// Only if the new expiry is later (no expiry counts as infinite).
    pub gt: bool,
    /// Only if the new expiry is earlier.
    pub lt: bool,
}

impl ExpireFlags {
    pub fn any(&self) -> bool {
        self.nx || self.xx || self.gt || self.lt
    }

    /// Whether a key whose remaining time is `current` (`None`: no expiry; in seconds) may get
    /// the new expiry `new_secs` (seconds from now, ≤ 0 when already past). Compared at Tern's
    /// one-second granularity.
    pub fn allow(&self, current: Option<u64>, new_secs: i64) -> bool {
        let cur = current.map(|c| i64::try_from(c).unwrap_or(i64::MAX));
        !(self.nx && cur.is_some()
            || self.xx && cur.is_none()
            || self.gt && cur.is_none_or(|c| new_secs <= c)
            || self.lt && cur.is_some_and(|c| new_secs >= c))
    }
}

/// What EXPIRE / PEXPIRE were asked: the conditions and the new expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpireRequest {
    pub flags: ExpireFlags,
    /// Seconds from now, rounded up; ≤ 0 when the time is already past (the key is deleted).
    pub secs: i64,
}

/// EXPIRE key seconds [NX|XX|GT|LT] (after the key), as Redis 7's `expireGenericCommand`: the
/// options first (`Unsupported option X`, incompatible pairs), then the time (an integer that
/// does not overflow once in milliseconds and added to now). Negative times are allowed.
pub fn parse_expire(
    args: &[Vec<u8>],
    millis: bool,
    now_ms: i64,
    cmd: &str,
) -> Result<ExpireRequest, ErrReply> {
    let mut flags = ExpireFlags::default();
    for opt in &args[1..] {
        match opt.to_ascii_uppercase().as_slice() {
            b"NX" => flags.nx = true,
            b"XX" => flags.xx = true,
            b"GT" => flags.gt = true,
            b"LT" => flags.lt = true,
            _ => return Err(format!("ERR Unsupported option {}", String::from_utf8_lossy(opt))),
        }
    }
    if flags.nx && (flags.xx || flags.gt || flags.lt) {
        return Err("ERR NX and XX, GT or LT options at the same time are not compatible".into());
    }
    if flags.gt && flags.lt {
        return Err("ERR GT and LT options at the same time are not compatible".into());
    }
    let v = int_arg(&args[0])?;
    let ms = if millis { Some(v) } else { v.checked_mul(1000) };
    let Some(ms) = ms.filter(|ms| ms.checked_add(now_ms).is_some()) else {
        return Err(invalid_expire(cmd));
    };
    let secs = if ms <= 0 { ms.div_euclid(1000) } else { (ms - 1) / 1000 + 1 };
    Ok(ExpireRequest { flags, secs })
}

/// Tern's TTL of a new expiry of `secs` seconds (> 0), capped at what Tern can store.
pub fn ttl_secs(secs: i64) -> u32 {
    u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;

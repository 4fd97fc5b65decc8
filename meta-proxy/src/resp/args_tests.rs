use super::*;

const NOW: i64 = 1_800_000_000_000;

fn words(s: &str) -> Vec<Vec<u8>> {
    s.split_whitespace().map(|w| w.as_bytes().to_vec()).collect()
}

fn set(s: &str) -> Result<SetOptions, ErrReply> {
    parse_set(&words(s), NOW)
}

#[test]
fn integers_are_read_as_strictly_as_redis_does() {
    for (s, want) in [
        ("0", Some(0)),
        ("7", Some(7)),
        ("-12", Some(-12)),
        ("9223372036854775807", Some(i64::MAX)),
        ("-9223372036854775808", Some(i64::MIN)),
        ("9223372036854775808", None),
        ("+1", None),
        ("01", None),
        ("-0", None),
        ("", None),
        ("-", None),
        (" 1", None),
        ("1 ", None),
        ("1.5", None),
        ("0x10", None),
    ] {
        assert_eq!(parse_i64(s.as_bytes()), want, "{s:?}");
    }
}

#[test]
fn set_options_and_their_expiries() {
    let plain = SetOptions { cond: Cond::Always, get: false, expiry: Expiry::Persist };
    assert_eq!(set(""), Ok(plain));
    assert_eq!(set("nx"), Ok(SetOptions { cond: Cond::IfAbsent, ..plain }));
    assert_eq!(set("XX get"), Ok(SetOptions { cond: Cond::IfPresent, get: true, ..plain }));
    assert_eq!(set("NX NX GET"), Ok(SetOptions { cond: Cond::IfAbsent, get: true, ..plain }));
    assert_eq!(set("EX 10"), Ok(SetOptions { expiry: Expiry::Secs(10), ..plain }));
    assert_eq!(set("ex 10 EX 20"), Ok(SetOptions { expiry: Expiry::Secs(20), ..plain }), "the last wins");
    assert_eq!(set("KEEPTTL"), Ok(SetOptions { expiry: Expiry::Keep, ..plain }));
    assert_eq!(
        set("KEEPTTL keepttl XX"),
        Ok(SetOptions { cond: Cond::IfPresent, expiry: Expiry::Keep, ..plain })
    );
}

#[test]
fn millisecond_times_round_up_to_whole_seconds() {
    assert_eq!(set("PX 1500").unwrap().expiry, Expiry::Secs(2));
    assert_eq!(set("PX 1").unwrap().expiry, Expiry::Secs(1));
    assert_eq!(set("PX 2000").unwrap().expiry, Expiry::Secs(2));
    assert_eq!(set(&format!("PXAT {}", NOW + 1500)).unwrap().expiry, Expiry::Secs(2));
    assert_eq!(set(&format!("EXAT {}", NOW / 1000 + 60)).unwrap().expiry, Expiry::Secs(60));
    assert_eq!(set(&format!("EXAT {}", NOW / 1000 - 60)).unwrap().expiry, Expiry::Expired);
    assert_eq!(
        set("PXAT 1").unwrap().expiry,
        Expiry::Expired,
        "a past time is valid: the key is gone at once"
    );
    assert_eq!(parse_setex(b"1500", true, NOW, "psetex"), Ok(Expiry::Secs(2)));
    assert_eq!(set("EX 99999999999").unwrap().expiry, Expiry::Secs(u32::MAX), "capped at what Tern stores");
}

#[test]
fn set_option_errors_use_redis_wording_and_order() {
    let syntax = Err(SYNTAX.to_string());
    for bad in [
        "NX XX",
        "XX NX",
        "EX",
        "EX 10 PX 100",
        "PX 100 EXAT 5",
        "KEEPTTL EX 10",
        "EX 10 KEEPTTL",
        "FOO",
        "EX abc FOO",
        "NXX",
    ] {
        assert_eq!(set(bad), syntax, "{bad}");
    }
    let invalid = Err("ERR invalid expire time in 'set' command".to_string());
    for bad in ["EX 0", "EX -1", "PX 0", "EXAT 0", "PXAT -5", "EX 9223372036854776", "PX 9223372036854775807"]
    {
        assert_eq!(set(bad), invalid, "{bad}");
    }
    for bad in ["EX abc", "PX 1.5", "EX +5", "EX 99999999999999999999"] {
        assert_eq!(set(bad), Err(NOT_INTEGER.to_string()), "{bad}");
    }
    assert_eq!(
        parse_setex(b"0", false, NOW, "setex"),
        Err("ERR invalid expire time in 'setex' command".into())
    );
    assert_eq!(parse_setex(b"x", true, NOW, "psetex"), Err(NOT_INTEGER.into()));
}

#[test]
fn expire_times_and_options() {
    let e = |s: &str, millis| parse_expire(&words(s), millis, NOW, if millis { "pexpire" } else { "expire" });
    assert_eq!(e("10", false), Ok(ExpireRequest { flags: ExpireFlags::default(), secs: 10 }));
    assert_eq!(e("1500", true).unwrap().secs, 2);
    assert_eq!(e("0", true).unwrap().secs, 0);
    assert_eq!(e("-1", true).unwrap().secs, -1);
    assert_eq!(e("-5", false).unwrap().secs, -5);
    assert_eq!(e("10 nx", false).unwrap().flags, ExpireFlags { nx: true, ..Default::default() });
    assert_eq!(e("10 XX gt", false).unwrap().flags, ExpireFlags { xx: true, gt: true, ..Default::default() });
    assert_eq!(e("10 FOO", false), Err("ERR Unsupported option FOO".into()));
    assert_eq!(e("abc FOO", false), Err("ERR Unsupported option FOO".into()), "options are checked first");
    assert_eq!(
        e("10 NX XX", false),
        Err("ERR NX and XX, GT or LT options at the same time are not compatible".into())
    );
    assert_eq!(e("10 GT LT", false), Err("ERR GT and LT options at the same time are not compatible".into()));
    assert_eq!(e("abc", false), Err(NOT_INTEGER.into()));
    assert_eq!(e("9223372036854776", false), Err("ERR invalid expire time in 'expire' command".into()));
    assert_eq!(e("9223372036854775807", true), Err("ERR invalid expire time in 'pexpire' command".into()));
}

#[test]
fn expire_conditions_against_the_current_expiry() {
    let f = |s: &str| parse_expire(&words(&format!("1 {s}")), false, NOW, "expire").unwrap().flags;
    assert!(f("NX").allow(None, 10) && !f("NX").allow(Some(5), 10));
    assert!(f("XX").allow(Some(5), 10) && !f("XX").allow(None, 10));
    assert!(f("GT").allow(Some(5), 10) && !f("GT").allow(Some(10), 10) && !f("GT").allow(None, 10));
    assert!(f("LT").allow(Some(20), 10) && !f("LT").allow(Some(10), 10) && f("LT").allow(None, 10));
    assert!(f("XX LT").allow(Some(20), 10) && !f("XX LT").allow(None, 10));
    assert!(ExpireFlags::default().allow(None, -3));
}

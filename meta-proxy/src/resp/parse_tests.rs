use proptest::prelude::*;

use super::*;
use crate::resp::Reply;

fn parse(b: &[u8]) -> Result<Parsed, ParseError> {
    parse_request(b, &Limits::default())
}

fn args(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// A request as client libraries send it.
fn encode(a: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    Reply::Array(a.iter().map(|x| Reply::Bulk(x.clone())).collect()).encode(&mut out);
    out
}

#[test]
fn multibulk_and_inline_requests() {
    let req = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
    assert_eq!(parse(req).unwrap(), Some((args(&["SET", "k", "hello"]), req.len())));
    assert_eq!(parse(b"PING\r\n").unwrap(), Some((args(&["PING"]), 6)));
    assert_eq!(parse(b"set k \"a b\"\n").unwrap(), Some((args(&["set", "k", "a b"]), 12)));
    assert_eq!(parse(b"*0\r\n").unwrap(), Some((vec![], 4)));
    assert_eq!(parse(b"\r\n").unwrap(), Some((vec![], 2)), "a blank line is an empty request");
}

#[test]
fn a_binary_value_with_crlf_inside_is_kept_whole() {
    let req = encode(&[b"SET".to_vec(), b"k".to_vec(), b"a\r\nb\0c".to_vec()]);
    assert_eq!(parse(&req).unwrap().unwrap().0[2], b"a\r\nb\0c");
}

#[test]
fn pipelined_requests_parse_one_at_a_time() {
    let mut buf = encode(&args(&["GET", "a"]));
    buf.extend(encode(&args(&["GET", "b"])));
    let (first, used) = parse(&buf).unwrap().unwrap();
    assert_eq!(first, args(&["GET", "a"]));
    assert_eq!(parse(&buf[used..]).unwrap().unwrap().0, args(&["GET", "b"]));
}

#[test]
fn malformed_requests_get_redis_errors() {
    for (bytes, wanted) in [
        (&b"*x\r\n"[..], "invalid multibulk length"),
        (b"*1\r\n:5\r\n", "expected '$', got ':'"),
        (b"*1\r\n$-5\r\n", "invalid bulk length"),
        (b"*1\r\n$3\r\nabcXY", "invalid bulk string terminator"),
        (b"get \"k\r\n", "unbalanced quotes"),
    ] {
        let e = parse(bytes).unwrap_err();
        assert!(e.to_string().contains(wanted), "{bytes:?}: {e}");
    }
}

#[test]
fn announced_sizes_over_the_limits_are_refused_before_any_allocation() {
    let l = Limits { max_bulk: 10, max_args: 3, max_inline: 16 };
    assert!(parse_request(b"*4\r\n", &l).unwrap_err().0.contains("multibulk"));
    assert!(parse_request(b"*1\r\n$11\r\n", &l).unwrap_err().0.contains("bulk length"));
    assert!(parse_request(b"*1\r\n$99999999999999999999\r\n", &l).is_err());
    assert!(parse_request(&[b'a'; 17], &l).unwrap_err().0.contains("too big inline"));
    assert_eq!(parse_request(&[b'a'; 16], &l).unwrap(), None, "within the limit: wait for the end");
}

proptest! {
    #[test]
    fn every_request_round_trips_and_every_prefix_waits(
        a in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..6)
    ) {
        let bytes = encode(&a);
        prop_assert_eq!(parse(&bytes).unwrap(), Some((a.clone(), bytes.len())));
        for cut in 0..bytes.len() {
            prop_assert_eq!(parse(&bytes[..cut]).unwrap(), None, "cut at {}", cut);
        }
    }

    #[test]
    fn garbage_never_panics_and_never_consumes_more_than_it_has(
        bytes in prop::collection::vec(any::<u8>(), 0..200)
    ) {
        if let Ok(Some((_, used))) = parse(&bytes) {
            prop_assert!(used <= bytes.len() && used > 0);
        }
    }

    #[test]
    fn flipping_a_byte_of_a_request_is_caught_or_harmless(
        a in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 1..4),
        at in any::<prop::sample::Index>(),
        to in any::<u8>(),
    ) {
        let mut bytes = encode(&a);
        let i = at.index(bytes.len());
        bytes[i] = to;
        // Whatever it is now, parsing must not panic or over-read.
        if let Ok(Some((_, used))) = parse(&bytes) {
            prop_assert!(used <= bytes.len());
        }
    }
}

#[test]
fn replies_encode_as_redis_does() {
    let mut out = Vec::new();
    for r in [
        Reply::ok(),
        Reply::Error("ERR unknown command 'FOO'".into()),
        Reply::Integer(-3),
        Reply::Bulk(b"v".to_vec()),
        Reply::Nil,
        Reply::Array(vec![Reply::Nil, Reply::Integer(1)]),
        Reply::Simple("a\r\nb".into()),
    ] {
        r.encode(&mut out);
    }
    assert_eq!(
        out,
        b"+OK\r\n-ERR unknown command 'FOO'\r\n:-3\r\n$1\r\nv\r\n$-1\r\n*2\r\n$-1\r\n:1\r\n+a  b\r\n"
    );
}

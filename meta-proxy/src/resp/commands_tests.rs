use std::collections::BTreeMap;

use tern_client::{ClientOptions, TernClient};

use super::*;

/// A gateway whose client points nowhere: planning never touches the network.
fn gateway() -> Gateway {
    let client = TernClient::new(ClientOptions::new(vec!["127.0.0.1:1".into()])).unwrap();
    Gateway::new(client, BTreeMap::from([(0, "t0".to_string()), (3, "t3".to_string())]))
}

fn conn() -> Conn {
    Conn { id: 7, db: 0, name: None, quit: false }
}

fn args(s: &str) -> Vec<Vec<u8>> {
    s.split_whitespace().map(|w| w.as_bytes().to_vec()).collect()
}

/// The immediate reply to `s`, or `None` if it runs on Tern.
fn now(gw: &Gateway, c: &mut Conn, s: &str) -> Option<Reply> {
    let a = args(s);
    match plan(gw, c, &a) {
        Step::Now(r) => Some(r),
        Step::Run { .. } => None,
    }
}

fn error(s: &str) -> Option<Reply> {
    Some(Reply::Error(s.into()))
}

#[test]
fn arity_and_unknown_commands_are_worded_as_redis_does() {
    let (gw, mut c) = (gateway(), conn());
    assert_eq!(now(&gw, &mut c, "GET"), error("ERR wrong number of arguments for 'get' command"));
    assert_eq!(now(&gw, &mut c, "get a b"), error("ERR wrong number of arguments for 'get' command"));
    assert_eq!(now(&gw, &mut c, "SeT k"), error("ERR wrong number of arguments for 'set' command"));
    assert_eq!(now(&gw, &mut c, "mset a 1 b"), error("ERR wrong number of arguments for 'mset' command"));
    assert_eq!(now(&gw, &mut c, "ping a b"), error("ERR wrong number of arguments for 'ping' command"));
    assert_eq!(
        now(&gw, &mut c, "FOO bar baz"),
        error("ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' ")
    );
    assert_eq!(now(&gw, &mut c, "foo"), error("ERR unknown command 'foo', with args beginning with: "));
    let long = format!("foo {}", "x".repeat(200));
    let Some(Reply::Error(e)) = now(&gw, &mut c, &long) else { panic!() };
    assert!(e.ends_with(&format!("'{}' ", "x".repeat(128))), "arguments are cut at 128 bytes: {e}");
    assert_eq!(
        now(&gw, &mut c, "command count x"),
        error("ERR wrong number of arguments for 'command|count' command")
    );
    assert_eq!(now(&gw, &mut c, "client foo"), error("ERR unknown subcommand 'foo'. Try CLIENT HELP."));
}

#[test]
fn argument_errors_are_answered_without_tern() {
    let (gw, mut c) = (gateway(), conn());
    assert_eq!(now(&gw, &mut c, "set k v XX NX"), error("ERR syntax error"));
    assert_eq!(now(&gw, &mut c, "set k v EX 0"), error("ERR invalid expire time in 'set' command"));
    assert_eq!(now(&gw, &mut c, "setex k -1 v"), error("ERR invalid expire time in 'setex' command"));
    assert_eq!(now(&gw, &mut c, "psetex k 0 v"), error("ERR invalid expire time in 'psetex' command"));
    assert_eq!(now(&gw, &mut c, "incrby k x"), error("ERR value is not an integer or out of range"));
    assert_eq!(now(&gw, &mut c, "decrby k -9223372036854775808"), error("ERR decrement would overflow"));
    assert_eq!(now(&gw, &mut c, "expire k 10 bogus"), error("ERR Unsupported option bogus"));
    assert_eq!(now(&gw, &mut c, "pexpire k 1.5"), error("ERR value is not an integer or out of range"));
    assert_eq!(now(&gw, &mut c, "set k v EX 10 NX GET"), None, "valid: runs on Tern");
    assert_eq!(now(&gw, &mut c, "mset a 1 b 2"), None);
}

#[test]
fn connection_commands() {
    let (gw, mut c) = (gateway(), conn());
    assert_eq!(now(&gw, &mut c, "PING"), Some(Reply::Simple("PONG".into())));
    assert_eq!(now(&gw, &mut c, "ping hi"), Some(Reply::Bulk(b"hi".to_vec())));
    assert_eq!(now(&gw, &mut c, "echo hi"), Some(Reply::Bulk(b"hi".to_vec())));
    assert_eq!(now(&gw, &mut c, "select 1"), error("ERR DB index is out of range"));
    assert_eq!(now(&gw, &mut c, "select -1"), error("ERR DB index is out of range"));
    assert_eq!(now(&gw, &mut c, "select x"), error("ERR value is not an integer or out of range"));
    assert_eq!(
        now(&gw, &mut c, "select 99999999999"),
        error("ERR value is out of range, value must between -2147483648 and 2147483647")
    );
    assert_eq!(now(&gw, &mut c, "select 3"), Some(Reply::ok()));
    assert_eq!(c.db, 3);
    assert_eq!(now(&gw, &mut c, "hello 3"), error("NOPROTO unsupported protocol version"));
    assert_eq!(now(&gw, &mut c, "hello x"), error("ERR Protocol version is not an integer or out of range"));
    assert_eq!(now(&gw, &mut c, "hello 2 SETNAME"), error("ERR Syntax error in HELLO option 'SETNAME'"));
    let Some(Reply::Array(hello)) = now(&gw, &mut c, "hello 2 AUTH u p SETNAME me") else { panic!() };
    assert_eq!(hello.len(), 14);
    assert_eq!(hello[5], Reply::Integer(2), "proto");
    assert_eq!(hello[7], Reply::Integer(7), "id");
    assert_eq!(now(&gw, &mut c, "client getname"), Some(Reply::Bulk(b"me".to_vec())));
    assert_eq!(now(&gw, &mut c, "client id"), Some(Reply::Integer(7)));
    assert_eq!(now(&gw, &mut c, "quit"), Some(Reply::ok()));
    assert!(c.quit);
}

#[test]
fn command_describes_every_command_and_agrees_with_dispatch() {
    let (gw, mut c) = (gateway(), conn());
    let Some(Reply::Array(all)) = now(&gw, &mut c, "COMMAND") else { panic!() };
    assert_eq!(all.len(), COMMANDS.len());
    assert_eq!(now(&gw, &mut c, "command count"), Some(Reply::Integer(COMMANDS.len() as i64)));
    assert_eq!(now(&gw, &mut c, "command docs"), Some(Reply::Array(vec![])));
    let Some(Reply::Array(info)) = now(&gw, &mut c, "command info get nope") else { panic!() };
    assert_eq!(info[1], Reply::Nil);
    let Reply::Array(get) = &info[0] else { panic!() };
    assert_eq!(get[..2], [Reply::Bulk(b"get".to_vec()), Reply::Integer(2)]);
    // Every listed data command is implemented (dispatch does not fall through).
    for s in COMMANDS.iter().filter(|s| s.kind != Kind::Conn) {
        let n = s.arity.unsigned_abs() as usize;
        let mut a = vec![s.name.as_bytes().to_vec()];
        a.extend((1..n).map(|_| b"1".to_vec()));
        if s.name == "mset" {
            a.push(b"1".to_vec());
        }
        if let Step::Now(r) = plan(&gw, &mut c, &a) {
            assert!(!format!("{r:?}").contains("not implemented"), "{}: {r:?}", s.name);
        }
    }
}

#[test]
fn key_positions() {
    let a = args("mset a 1 b 2 c 3");
    let mset = lookup(b"MSET").unwrap();
    assert_eq!(keys_of(mset, &a), vec![&b"a"[..], b"b", b"c"]);
    let a = args("del x y");
    assert_eq!(keys_of(lookup(b"del").unwrap(), &a), vec![&b"x"[..], b"y"]);
    let a = args("set k v EX 10");
    assert_eq!(keys_of(lookup(b"set").unwrap(), &a), vec![&b"k"[..]]);
    assert!(keys_of(lookup(b"ping").unwrap(), &args("ping")).is_empty());
}

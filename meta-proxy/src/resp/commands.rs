//! The command table and dispatch: arity and unknown-command errors as Redis 7 words them, the
//! connection's own commands (PING, ECHO, SELECT, QUIT, HELLO, COMMAND, CLIENT, CONFIG GET)
//! answered at once, and the data commands turned into futures on Tern ([`Step::Run`]) with the
//! keys they touch (so that the gateway can order commands on one key).

use std::time::{SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use futures::future::BoxFuture;

use super::Reply;
use super::args::{self, ErrReply};
use super::db::{Db, Res};
use super::gateway::Gateway;
use super::{keyspace, strings};

/// What a command does: `Conn` ones are answered by the gateway itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Conn,
    Read,
    Write,
}

/// One command as `COMMAND` describes it (Redis's arity: `n` exactly n arguments, `-n` at
/// least n, the name included; keys at `first..=last` by `step`, `last` -1 meaning the end).
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    pub arity: i32,
    pub kind: Kind,
    pub flags: &'static [&'static str],
    pub category: &'static str,
    pub keys: (i32, i32, i32),
}

const fn spec(name: &'static str, arity: i32, kind: Kind, keys: (i32, i32, i32)) -> Spec {
    let (flags, category): (&[&str], _) = match kind {
        Kind::Conn => (&["fast"], "@connection"),
        Kind::Read => (&["readonly", "fast"], "@read"),
        Kind::Write => (&["write", "denyoom"], "@write"),
    };
    Spec { name, arity, kind, flags, category, keys }
}

const NONE: (i32, i32, i32) = (0, 0, 0);
const ONE: (i32, i32, i32) = (1, 1, 1);
const ALL: (i32, i32, i32) = (1, -1, 1);

/// Every command the gateway knows.
pub const COMMANDS: &[Spec] = &[
    spec("append", 3, Kind::Write, ONE),
    spec("client", -2, Kind::Conn, NONE),
    spec("command", -1, Kind::Conn, NONE),
    spec("config", -2, Kind::Conn, NONE),
    spec("decr", 2, Kind::Write, ONE),
    spec("decrby", 3, Kind::Write, ONE),
    spec("del", -2, Kind::Write, ALL),
    spec("echo", 2, Kind::Conn, NONE),
    spec("exists", -2, Kind::Read, ALL),
    spec("expire", -3, Kind::Write, ONE),
    spec("get", 2, Kind::Read, ONE),
    spec("getdel", 2, Kind::Write, ONE),
    spec("getset", 3, Kind::Write, ONE),
    spec("hello", -1, Kind::Conn, NONE),
    spec("incr", 2, Kind::Write, ONE),
    spec("incrby", 3, Kind::Write, ONE),
    spec("mget", -2, Kind::Read, ALL),
    spec("mset", -3, Kind::Write, (1, -1, 2)),
    spec("persist", 2, Kind::Write, ONE),
    spec("pexpire", -3, Kind::Write, ONE),
    spec("ping", -1, Kind::Conn, NONE),
    spec("psetex", 4, Kind::Write, ONE),
    spec("pttl", 2, Kind::Read, ONE),
    spec("quit", -1, Kind::Conn, NONE),
    spec("select", 2, Kind::Conn, NONE),
    spec("set", -3, Kind::Write, ONE),
    spec("setex", 4, Kind::Write, ONE),
    spec("setnx", 3, Kind::Write, ONE),
    spec("strlen", 2, Kind::Read, ONE),
    spec("ttl", 2, Kind::Read, ONE),
    spec("type", 2, Kind::Read, ONE),
    spec("unlink", -2, Kind::Write, ALL),
];

/// Subcommands of the container commands: (container, subcommand, arity).
const SUBCOMMANDS: &[(&str, &str, i32)] = &[
    ("client", "getname", 2),
    ("client", "id", 2),
    ("client", "setinfo", 4),
    ("client", "setname", 3),
    ("command", "count", 2),
    ("command", "docs", -2),
    ("command", "info", -2),
    ("command", "list", -2),
    ("config", "get", -3),
];

pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    COMMANDS.iter().find(|s| s.name.as_bytes().eq_ignore_ascii_case(name))
}

fn arity_ok(arity: i32, argc: usize) -> bool {
    let argc = i64::try_from(argc).unwrap_or(i64::MAX);
    if arity >= 0 { argc == i64::from(arity) } else { argc >= -i64::from(arity) }
}

fn err(msg: impl Into<String>) -> Reply {
    Reply::Error(msg.into())
}

fn arity_error(name: &str) -> Reply {
    err(format!("ERR wrong number of arguments for '{name}' command"))
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Redis's reply to an unknown command: the name as sent and the first arguments, quoted.
fn unknown(args: &[Vec<u8>]) -> Reply {
    let mut listed = String::new();
    for a in &args[1..] {
        if listed.len() >= 128 {
            break;
        }
        let a = lossy(a);
        let room = 128 - listed.len();
        listed.push('\'');
        listed.extend(a.chars().scan(0, |n, c| {
            *n += c.len_utf8();
            (*n <= room).then_some(c)
        }));
        listed.push_str("' ");
    }
    let name: String = lossy(&args[0]).chars().take(128).collect();
    err(format!("ERR unknown command '{name}', with args beginning with: {listed}"))
}

/// A connection's state.
#[derive(Debug)]
pub struct Conn {
    pub id: u64,
    /// The selected database (always one that maps to a table).
    pub db: u32,
    pub name: Option<Vec<u8>>,
    /// QUIT was received: reply, then close.
    pub quit: bool,
}

/// How a request is answered.
pub enum Step<'a> {
    /// Right away (connection commands, argument errors).
    Now(Reply),
    /// By a future on Tern, which must run after earlier requests on the same keys (after
    /// earlier writes of them, for a read; after every earlier use, for a write).
    Run { keys: Vec<&'a [u8]>, write: bool, fut: BoxFuture<'a, Reply> },
}

impl std::fmt::Debug for Step<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Now(r) => f.debug_tuple("Now").field(r).finish(),
            Step::Run { keys, write, .. } => {
                f.debug_struct("Run").field("keys", keys).field("write", write).finish_non_exhaustive()
            }
        }
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Decides how to answer one request (`args` is not empty).
pub fn plan<'a>(gw: &'a Gateway, conn: &mut Conn, args: &'a [Vec<u8>]) -> Step<'a> {
    let Some(spec) = lookup(&args[0]) else { return Step::Now(unknown(args)) };
    if !arity_ok(spec.arity, args.len()) {
        return Step::Now(arity_error(spec.name));
    }
    if spec.kind == Kind::Conn {
        return Step::Now(connection_command(gw, conn, spec.name, args));
    }
    let Some(table) = gw.table(conn.db) else {
        return Step::Now(err("ERR DB index is out of range"));
    };
    let db = Db { client: gw.client(), reads: gw.reads(), table };
    match data_command(db, spec.name, args) {
        Ok(fut) => Step::Run { keys: keys_of(spec, args), write: spec.kind == Kind::Write, fut },
        Err(e) => Step::Now(Reply::Error(e)),
    }
}

/// The keys a command touches, by its key positions.
pub fn keys_of<'a>(spec: &Spec, args: &'a [Vec<u8>]) -> Vec<&'a [u8]> {
    let (first, last, step) = spec.keys;
    if first <= 0 {
        return vec![];
    }
    let last = if last < 0 { args.len() as i64 + i64::from(last) } else { i64::from(last) };
    (first as usize..args.len())
        .step_by(step.max(1) as usize)
        .take_while(|&i| i as i64 <= last)
        .map(|i| args[i].as_slice())
        .collect()
}

type Fut<'a> = BoxFuture<'a, Reply>;

fn run<'a>(f: impl Future<Output = Res<Reply>> + Send + 'a) -> Result<Fut<'a>, ErrReply> {
    Ok(f.map(|r| r.unwrap_or_else(|e| e)).boxed())
}

/// The data commands: arguments are checked here (an error is the reply), the work is the
/// returned future.
fn data_command<'a>(db: Db<'a>, name: &str, a: &'a [Vec<u8>]) -> Result<Fut<'a>, ErrReply> {
    let key = a.get(1).map_or(&[][..], Vec::as_slice);
    match name {
        "get" => run(strings::get(db, key)),
        "set" => {
            let o = args::parse_set(&a[3..], now_ms())?;
            run(strings::set(db, key, &a[2], o))
        }
        "setex" | "psetex" => {
            let expiry = args::parse_setex(&a[2], name == "psetex", now_ms(), name)?;
            let o = args::SetOptions { cond: args::Cond::Always, get: false, expiry };
            run(strings::set(db, key, &a[3], o))
        }
        "setnx" => run(strings::setnx(db, key, &a[2])),
        "getset" => run(strings::getset(db, key, &a[2])),
        "getdel" => run(strings::getdel(db, key)),
        "incr" => run(strings::incr_by(db, key, 1)),
        "decr" => run(strings::incr_by(db, key, -1)),
        "incrby" => run(strings::incr_by(db, key, args::int_arg(&a[2])?)),
        "decrby" => match args::int_arg(&a[2])? {
            i64::MIN => Err("ERR decrement would overflow".into()),
            n => run(strings::incr_by(db, key, -n)),
        },
        "strlen" => run(strings::strlen(db, key)),
        "append" => run(strings::append(db, key, &a[2])),
        "mget" => run(strings::mget(db, &a[1..])),
        "mset" if a.len().is_multiple_of(2) => {
            Err(format!("ERR wrong number of arguments for '{name}' command"))
        }
        "mset" => run(strings::mset(db, &a[1..])),
        "del" | "unlink" => run(keyspace::del(db, &a[1..])),
        "exists" => run(keyspace::exists(db, &a[1..])),
        "type" => run(keyspace::key_type(db, key)),
        "ttl" | "pttl" => run(keyspace::ttl(db, key, name == "pttl")),
        "expire" | "pexpire" => {
            let req = args::parse_expire(&a[2..], name == "pexpire", now_ms(), name)?;
            run(keyspace::expire(db, key, req))
        }
        "persist" => run(keyspace::persist(db, key)),
        _ => Err(format!("ERR command '{name}' is listed but not implemented")),
    }
}

fn connection_command(gw: &Gateway, conn: &mut Conn, name: &str, a: &[Vec<u8>]) -> Reply {
    match name {
        "ping" => match a.len() {
            1 => Reply::Simple("PONG".into()),
            2 => Reply::Bulk(a[1].clone()),
            _ => arity_error(name),
        },
        "echo" => Reply::Bulk(a[1].clone()),
        "quit" => {
            conn.quit = true;
            Reply::ok()
        }
        "select" => match args::parse_i64(&a[1]).map(i32::try_from) {
            None => err(args::NOT_INTEGER),
            Some(Err(_)) => {
                err(format!("ERR value is out of range, value must between {} and {}", i32::MIN, i32::MAX))
            }
            Some(Ok(n)) => match u32::try_from(n).ok().filter(|n| gw.table(*n).is_some()) {
                Some(n) => {
                    conn.db = n;
                    Reply::ok()
                }
                None => err("ERR DB index is out of range"),
            },
        },
        "hello" => hello(conn, a),
        _ => subcommand(conn, name, a),
    }
}

/// HELLO [protover [AUTH user pass] [SETNAME name]]: RESP2 only. There is no authentication:
/// AUTH is accepted and ignored.
fn hello(conn: &mut Conn, a: &[Vec<u8>]) -> Reply {
    if let Some(v) = a.get(1) {
        match args::parse_i64(v) {
            None => return err("ERR Protocol version is not an integer or out of range"),
            Some(2) => {}
            Some(_) => return err("NOPROTO unsupported protocol version"),
        }
    }
    let mut name = None;
    let mut i = 2;
    while i < a.len() {
        let more = a.len() - i - 1;
        match a[i].to_ascii_uppercase().as_slice() {
            b"AUTH" if more >= 2 => i += 3,
            b"SETNAME" if more >= 1 => {
                name = Some(a[i + 1].clone());
                i += 2;
            }
            _ => return err(format!("ERR Syntax error in HELLO option '{}'", lossy(&a[i]))),
        }
    }
    if let Some(n) = name
        && let Err(e) = set_name(conn, n)
    {
        return e;
    }
    let s = |v: &str| Reply::Bulk(v.as_bytes().to_vec());
    Reply::Array(vec![
        s("server"),
        s("redis"),
        s("version"),
        s(REDIS_VERSION),
        s("proto"),
        Reply::Integer(2),
        s("id"),
        Reply::Integer(i64::try_from(conn.id).unwrap_or(i64::MAX)),
        s("mode"),
        s("standalone"),
        s("role"),
        s("master"),
        s("modules"),
        Reply::Array(vec![]),
    ])
}

/// The Redis version whose behaviour the gateway follows (HELLO reports it, so that clients
/// that gate features on the version work).
pub const REDIS_VERSION: &str = "7.0.0";

fn set_name(conn: &mut Conn, name: Vec<u8>) -> Result<(), Reply> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(err("ERR Client names cannot contain spaces, newlines or special characters."));
    }
    conn.name = (!name.is_empty()).then_some(name);
    Ok(())
}

/// COMMAND, CLIENT and CONFIG subcommands.
fn subcommand(conn: &mut Conn, name: &str, a: &[Vec<u8>]) -> Reply {
    if name == "command" && a.len() == 1 {
        return Reply::Array(COMMANDS.iter().map(describe).collect());
    }
    let sub = a[1].to_ascii_lowercase();
    let Some(&(_, sub, arity)) = SUBCOMMANDS.iter().find(|(c, s, _)| *c == name && s.as_bytes() == sub)
    else {
        return err(format!(
            "ERR unknown subcommand '{}'. Try {} HELP.",
            lossy(&a[1]).chars().take(128).collect::<String>(),
            name.to_uppercase()
        ));
    };
    if !arity_ok(arity, a.len()) {
        return arity_error(&format!("{name}|{sub}"));
    }
    match (name, sub) {
        ("command", "count") => Reply::Integer(COMMANDS.len() as i64),
        // No documentation: redis-cli then offers no hints, and works.
        ("command", "docs") => Reply::Array(vec![]),
        ("command", "info") => {
            Reply::Array(a[2..].iter().map(|n| lookup(n).map_or(Reply::Nil, describe)).collect())
        }
        ("command", "list") => Reply::Array(COMMANDS.iter().map(|s| Reply::Bulk(s.name.into())).collect()),
        ("client", "id") => Reply::Integer(i64::try_from(conn.id).unwrap_or(i64::MAX)),
        ("client", "getname") => conn.name.clone().map_or(Reply::Nil, Reply::Bulk),
        ("client", "setname") => match set_name(conn, a[2].clone()) {
            Ok(()) => Reply::ok(),
            Err(e) => e,
        },
        ("client", "setinfo") => Reply::ok(),
        // No configuration is exposed: every pattern matches nothing.
        ("config", "get") => Reply::Array(vec![]),
        _ => err(format!("ERR unknown subcommand '{sub}'")),
    }
}

/// A command as `COMMAND` / `COMMAND INFO` describe it (Redis 7's ten fields).
fn describe(s: &Spec) -> Reply {
    let simple = |v: &[&str]| Reply::Array(v.iter().map(|f| Reply::Simple((*f).into())).collect());
    Reply::Array(vec![
        Reply::Bulk(s.name.into()),
        Reply::Integer(s.arity.into()),
        simple(s.flags),
        Reply::Integer(s.keys.0.into()),
        Reply::Integer(s.keys.1.into()),
        Reply::Integer(s.keys.2.into()),
        simple(&[s.category]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
    ])
}

#[cfg(test)]
#[path = "commands_tests.rs"]
mod tests;

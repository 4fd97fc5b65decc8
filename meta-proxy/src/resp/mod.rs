//! The Redis gateway of `tern proxy` (issue #6, part 5): `tern proxy --resp-listen ADDR` speaks
//! RESP2, the Redis protocol, so that `redis-cli`, `redis-benchmark` and Redis client libraries
//! work against Tern. A Redis key is a Tern hash key with an empty sort key, in the table mapped
//! to the selected database. The gateway's Tern client routes through the proxy itself, so it
//! follows a change of the active cluster like any client. Commands and every difference from
//! Redis: `docs/meta-proxy.md`, "Redis gateway".
//!
//! - [`parse`]: incremental request parsing (pipelining; bounds on every announced length);
//!   [`reply`]: reply encoding.
//! - [`gateway`]: the listener and connections: batches of pipelined requests, run concurrently
//!   but in order per key, replies in request order.
//! - [`commands`]: the command table, arity and unknown-command errors, connection commands;
//!   [`args`]: argument parsing (SET and EXPIRE options, times), pure and unit-tested.
//! - [`strings`], [`keyspace`]: the data commands on Tern ([`db`]: the Tern ops they use, error
//!   replies, the read-check-write loop where Tern has no atomic op); [`coalesce`]: reads in
//!   flight together go as one batch per replica server.

mod args;
mod coalesce;
mod commands;
mod db;
pub mod gateway;
mod keyspace;
mod parse;
mod reply;
mod strings;

pub use gateway::{Gateway, RespOptions, serve};
pub use parse::{Limits, ParseError, Parsed, parse_request};
pub use reply::Reply;

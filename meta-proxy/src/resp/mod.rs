//! RESP2, the Redis protocol, for the gateway of `tern proxy` (issue #6, part 5): requests are
//! parsed incrementally from a connection's buffer (pipelining: several may be waiting), with
//! bounds on every length a client announces; replies are encoded here too. The command
//! handling on top is not built yet.

mod parse;
mod reply;

pub use parse::{Limits, ParseError, Parsed, parse_request};
pub use reply::Reply;

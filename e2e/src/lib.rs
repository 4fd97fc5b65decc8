//! End-to-end tests: the real `tern` binary started as separate processes on loopback, with ports
//! chosen at run time. Every process a test starts is stopped by the test, also on failure; a
//! failing test keeps its directory and prints the tail of every process's log.
//!
//! The harness:
//! - [`binary`] finds the `tern` binary (`TERN_BIN`, else next to the test executable);
//! - [`ports`] picks free loopback ports;
//! - [`process`] runs one server process with its log file, kills, stops and restarts it, and
//!   runs one-shot CLI commands;
//! - [`cluster`] starts meta and replica servers in a temporary directory and answers questions
//!   about them (status, leader, primaries), waiting on conditions with deadlines ([`wait`]);
//! - [`workload`] runs concurrent writers that record every acknowledged write, and checks that
//!   each one reads back;
//! - [`pair`] starts two clusters with a duplication link between them (DR, proxy tests);
//! - [`proxy`] starts `tern proxy` and `tern witness` processes in front of clusters and reads
//!   their status;
//! - [`faults`] is a fault-injecting TCP proxy put between processes (cut, blackhole, heal);
//! - [`mixed`] runs colliding sets, deletes and atomics (duplication tests) and compares whole
//!   tables of two clusters;
//! - [`redis_server`] runs a real `redis-server` and `redis-cli` (the Redis gateway's test
//!   compares the two).
//!
//! Must not depend on: any server crate (the servers are only ever run as processes).

pub mod binary;
pub mod cluster;
pub mod faults;
pub mod mixed;
pub mod pair;
pub mod ports;
pub mod process;
pub mod proxy;
pub mod redis_server;
pub mod wait;
pub mod workload;

pub use cluster::{Cluster, ClusterOptions, MetaView, Proc};
pub use process::CliOutput;
pub use wait::wait_until;
pub use workload::{Ledger, Writers};

//! The disaster-recovery runbook behind `tern dr` (issue #27): one place where what the
//! clusters say of a table is gathered ([`observe`](mod@observe), the only I/O) and judged ([`status`], pure
//! rules with the time passed in), so the CLI only parses, calls and prints.
//!
//! Read first: [`status::assess`] (the health rules, each a line of the report) and
//! [`switchover::next_step`] (a planned move as steps decided from the observed state alone,
//! so a re-run finishes an interrupted one), [`failover::next_step`] and
//! [`failover::loss_report`] (an unplanned move: the voters' promises, the wait for the old
//! copy's DR lease, the promotion, and what the old side may have lost), then
//! [`observe::observe()`] and the executors [`run_switchover`] and [`run_failover`];
//! [`reconcile::next_step`] and [`run_reconcile`] ship the old side's unshipped tail into the
//! promoted copy after a failover; [`run_drill`] rehearses both on a
//! scratch table and checks the figures with the pure [`drill`] functions. Invariants: an unknown is never read as healthy (an unreachable
//! cluster, an unknown lag or a missing lease report make a table degraded or unsafe, never
//! healthy); the health level only grows with what is wrong (a test pins each rule).
//!
//! Must not depend on: rocksdb or any server crate.

pub mod drill;
mod drill_run;
pub mod failover;
mod failover_run;
pub mod observe;
pub mod reconcile;
mod reconcile_run;
pub mod status;
pub mod switchover;
mod switchover_run;
#[cfg(test)]
mod testkit;
pub mod verify;
mod verify_run;

pub use drill::DrillReport;
pub use drill_run::{DrillOptions, run_drill};
pub use failover_run::{FailoverOptions, FailoverReport, run_failover};
pub use observe::{ClusterAddr, ClusterObs, Observed, observe};
pub use reconcile_run::{ReconcileOptions, ReconcileReport, run_reconcile};
pub use status::{CopyReport, DrStatus, Finding, Health, StandbyReport, StatusOptions, TableReport, assess};
pub use switchover_run::{StepDone, SwitchoverOptions, SwitchoverReport, run_switchover};
pub use verify_run::{VerifyOptions, VerifyReport, run_verify};

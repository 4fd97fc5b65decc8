//! The DR lease (issue #24, item 4; docs/meta-proxy.md, "The DR lease"): every decision that
//! keeps two copies of a table from taking client writes at once, in one I/O-free crate that
//! the meta server, the meta-proxy (and `tern witness`), the replica server and the simulator
//! all run, so that the simulator checks the code that runs and not a copy of it.
//!
//! Owns:
//! * [`holder`]: the lease as a cluster's meta leader holds it (a majority of the voters'
//!   grants, each counted from when its request was sent);
//! * [`voter`]: a DR voter's grants, floors and promises;
//! * [`promote`]: whether a promoter can know when the old copy's lease ends
//!   ([`promote::lease_check`]) and when it has certainly ended ([`DrRules::lease_expiry`]);
//! * [`failover`]: which copy a table is routed to, when an outage starts, the automatic
//!   failover decision, finishing a promotion under way, and fencing a returning copy;
//! * [`roles`]: role changes (compare-and-set on the epoch) and a cluster fencing itself;
//! * [`gate`]: what a replica server refuses (client writes to a standby, or without the lease).
//!
//! Everything is a pure function or a state machine without I/O: time comes in as a parameter,
//! a [`Moment`] on one process's monotonic clock (`std::time::Instant` in the proxy, [`Ms`] in
//! the meta server, the replica servers and the simulator). The runtimes (`tern-meta`'s
//! renewal loop, `tern-meta-proxy`'s watcher and voter service, `tern-server`'s write path, the
//! simulator's processes) carry out what comes out.
//!
//! Must not depend on: tokio, tonic, rocksdb, the AWS SDK, or any clock (`scripts/check-deps.sh`).

pub mod failover;
pub mod gate;
pub mod holder;
pub mod promote;
pub mod roles;
pub mod voter;

use std::fmt::Debug;
use std::time::{Duration, Instant};

pub use failover::{Seen, Watched};
pub use gate::{TableRoleInfo, WriteGate};
pub use holder::{Answer, Holder};
pub use promote::{
    CLOCK_RATE_ERROR, LeaseCheck, LeaseSeen, PROMOTION_MARGIN, Promise, PromiseAnswer, granted_epoch,
    lease_check, tally_promises,
};
pub use voter::{Pledge, Renewal, Voter, VoterConfig};

/// A point on one process's monotonic clock. The rules only add durations to moments and
/// measure between moments of the same process.
pub trait Moment: Copy + Ord + Debug {
    /// `self` plus `d`, rounded up to the clock's resolution (a wait never gets shorter).
    fn after(self, d: Duration) -> Self;

    /// How long from `earlier` to `self` (zero if `earlier` is later).
    fn since(self, earlier: Self) -> Duration;
}

impl Moment for Instant {
    fn after(self, d: Duration) -> Instant {
        self + d
    }

    fn since(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// Milliseconds of a process's monotonic clock (the meta server's and replica servers'
/// `mono_ms`, a simulated node's clock).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ms(pub u64);

impl Moment for Ms {
    fn after(self, d: Duration) -> Ms {
        let whole = d.as_millis().min(u128::from(u64::MAX)) as u64;
        let up = u64::from(!d.subsec_nanos().is_multiple_of(1_000_000));
        Ms(self.0.saturating_add(whole).saturating_add(up))
    }

    fn since(self, earlier: Ms) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

/// The DR lease decisions that take a rule value: the promoter's wait ([`DrRules::lease_expiry`])
/// and the replica server's write gate ([`WriteGate`]). `DrRules::default()` is the only value a
/// server ever uses; the value exists so that the simulator can plant a bug in the shared rules
/// (feature `planted-bugs`, never enabled by a server build) and prove that its checks catch it.
#[derive(Clone, Debug, Default)]
pub struct DrRules {
    /// Deliberately broken rules (simulator only).
    #[cfg(feature = "planted-bugs")]
    pub bugs: PlantedDrBugs,
}

/// Bugs the simulator plants in the shared rules to prove its checks find them.
#[cfg(feature = "planted-bugs")]
#[derive(Clone, Debug, Default)]
pub struct PlantedDrBugs {
    /// Replica servers take client writes to an active table without its DR lease (standbys
    /// still refuse).
    pub lease_not_checked: bool,
    /// A promoter takes the old copy's lease as over as soon as enough voters promised: it does
    /// not wait for the lease (nor the margin).
    pub promote_without_waiting: bool,
}

impl DrRules {
    #[cfg(feature = "planted-bugs")]
    pub(crate) fn bugs(&self) -> PlantedDrBugs {
        self.bugs.clone()
    }

    #[cfg(not(feature = "planted-bugs"))]
    pub(crate) fn bugs(&self) -> NoBugs {
        NoBugs::default()
    }
}

/// The planted-bug flags of a build without them: all off, known at compile time.
#[cfg(not(feature = "planted-bugs"))]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NoBugs {
    pub lease_not_checked: bool,
    pub promote_without_waiting: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_round_waits_up() {
        assert_eq!(Ms(10).after(Duration::from_micros(1)), Ms(11));
        assert_eq!(Ms(10).after(Duration::from_millis(5)), Ms(15));
        assert_eq!(Ms(10).after(Duration::from_micros(5_001)), Ms(16));
        assert_eq!(Ms(15).since(Ms(10)), Duration::from_millis(5));
        assert_eq!(Ms(5).since(Ms(10)), Duration::ZERO);
    }
}

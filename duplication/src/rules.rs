//! [`DupRules`]: the decisions of duplication that are not the shipper's, in one value that the
//! replica server and the simulator both hold and call, so the simulator checks the code that
//! runs (not a copy of it):
//!
//! * `receive.rs`: whether a batch of duplicated puts is admitted at the receiving primary;
//! * `retention.rs`: how much of a partition's log its links need, what survives a log reset
//!   or travels with a checkpoint, and where log garbage collection may cut;
//! * `start.rs`: where a new primary's shipper starts;
//! * `horizon.rs`: the purge horizon of a receiving table (how long tombstones are kept), and
//!   how far a partition's own outgoing links let it purge.
//!
//! The rules hold no state: every input comes in as a parameter (time included). They exist
//! as a value only so that the simulator can plant a bug in them (feature `planted-bugs`,
//! never enabled by a server build) and prove that its checks catch it.

/// The duplication decisions. `DupRules::default()` is the only value a server ever uses.
#[derive(Clone, Debug, Default)]
pub struct DupRules {
    /// Deliberately broken rules (simulator only).
    #[cfg(feature = "planted-bugs")]
    pub bugs: PlantedDupBugs,
}

/// Bugs the simulator plants in the shared rules to prove its checks find them.
#[cfg(feature = "planted-bugs")]
#[derive(Clone, Debug, Default)]
pub struct PlantedDupBugs {
    /// A new primary ships from its committed decree instead of the link's confirmed one.
    pub start_from_committed: bool,
    /// The log floor is one decree past the first unconfirmed one (an off-by-one: garbage
    /// collection drops a decree a link still has to ship).
    pub floor_past_confirmed: bool,
    /// A replica that empties its log to learn keeps nothing for the links, and checkpoints
    /// carry nothing (what the servers did before the log was kept for links).
    pub forget_log_when_learning: bool,
    /// The purge horizon ignores the incoming links (a fixed retention, as before): tombstones
    /// go while a link may still ship older writes.
    pub ignore_incoming_links: bool,
    /// A partition of an incoming link not heard from (by a meta leader that just took over)
    /// does not hold the purge horizon back, instead of counting as zero.
    pub unheard_holds_nothing: bool,
    /// A partition purges tombstones its own outgoing links have not shipped yet (what a copy
    /// of its records then cannot send).
    pub purge_past_unshipped: bool,
}

impl DupRules {
    #[cfg(feature = "planted-bugs")]
    pub(crate) fn bugs(&self) -> PlantedDupBugs {
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
    pub start_from_committed: bool,
    pub floor_past_confirmed: bool,
    pub forget_log_when_learning: bool,
    pub ignore_incoming_links: bool,
    pub unheard_holds_nothing: bool,
    pub purge_past_unshipped: bool,
}

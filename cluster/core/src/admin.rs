//! The states that cross process boundaries in administration: a table's DR role and status, a
//! duplication link's status, mode and the changes an operator makes to it, and what a proxy
//! sees of each cluster's copy of a table and decides about it.
//!
//! Owns: these enums and their names. `Display` and `FromStr` give the names operators read and
//! type (`active`, `syncing-checkpoint`, `set-throttle`), which the CLI prints as text and JSON;
//! the protobuf enums of `tern-proto` convert to and from these in one place
//! (`tern_proto::convert`). The serde form (the variant name, e.g. `"SyncingCheckpoint"`) is what
//! the meta servers persist in their Raft log and snapshots: it must never change (pinned by
//! `tern-meta`'s golden tests).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// An enum whose variants have fixed names: `name()`, `ALL`, `Display`, `FromStr` (an unknown
/// name is an invalid argument that lists the valid ones).
macro_rules! named {
    (
        $(#[$meta:meta])*
        $what:literal, $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The name operators read and type.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.name())
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<$name, Error> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(Error::InvalidArgument(format!(
                        "{} {s:?} is not one of: {}",
                        $what,
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }
    };
}

named! {
    /// A table's disaster-recovery role in one cluster. `Active` takes client writes; `Standby`
    /// takes writes only by duplication and its reads may lag. A proxy routes each table to the
    /// cluster whose copy is active at the highest epoch.
    #[derive(Default)]
    "role", DrRole {
        #[default]
        Active = "active",
        Standby = "standby",
    }
}

named! {
    /// A duplication link's status: init → syncing-checkpoint → shipping ⇄ paused; anything →
    /// removed, which is final.
    "link status", LinkStatus {
        Init = "init",
        SyncingCheckpoint = "syncing-checkpoint",
        Shipping = "shipping",
        Paused = "paused",
        Removed = "removed",
    }
}

impl LinkStatus {
    /// Whether a link in this status may move to `next`. Staying put is allowed (a retried
    /// change is a no-op), except that nothing leaves `removed`.
    pub fn can_become(self, next: LinkStatus) -> bool {
        use LinkStatus::*;
        self == next
            || matches!(
                (self, next),
                (Init, SyncingCheckpoint | Shipping)
                    | (SyncingCheckpoint, Shipping)
                    | (Shipping, Paused)
                    | (Paused, Shipping)
                    | (Init | SyncingCheckpoint | Shipping | Paused, Removed)
            )
    }

    /// Whether the primaries of the link's table run shippers for it (copying records first
    /// while syncing a checkpoint).
    pub fn ships(self) -> bool {
        matches!(self, LinkStatus::Shipping | LinkStatus::SyncingCheckpoint)
    }
}

named! {
    /// One-way ships a table to the remote one; two-way is two links, one in each cluster (the
    /// mode is recorded so operators see what was asked for).
    "mode", LinkMode {
        OneWay = "one-way",
        TwoWay = "two-way",
    }
}

named! {
    /// The verbs of a change to a link (see [`LinkChange`], which carries the throttle).
    "link action", LinkAction {
        Pause = "pause",
        Resume = "resume",
        Remove = "remove",
        SetThrottle = "set-throttle",
    }
}

named! {
    /// The two kinds of conflict a link's journal records, both seen from the sending cluster
    /// (the journal lives with the link): a write shipped from here lost last-writer-wins to a
    /// newer record of the other cluster, or it won over a record the other cluster had
    /// written itself, which is then gone there.
    #[derive(Default)]
    "conflict kind", ConflictKind {
        /// The shipped write lost: the other cluster keeps its newer record.
        #[default]
        ShippedLost = "shipped-lost",
        /// The shipped write won over a record written in the other cluster.
        RemoteOverwritten = "remote-overwritten",
    }
}

impl ConflictKind {
    /// Which side's write survives: `"remote"` (the other cluster's record) or `"shipped"`.
    pub fn winner(self) -> &'static str {
        match self {
            ConflictKind::ShippedLost => "remote",
            ConflictKind::RemoteOverwritten => "shipped",
        }
    }
}

/// A change an operator makes to a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkChange {
    Pause,
    Resume,
    Remove,
    /// 0 = unlimited.
    SetThrottle {
        max_bytes_per_sec: u64,
    },
}

impl LinkChange {
    /// `max_bytes_per_sec` is used by `SetThrottle` only.
    pub fn new(action: LinkAction, max_bytes_per_sec: u64) -> LinkChange {
        match action {
            LinkAction::Pause => LinkChange::Pause,
            LinkAction::Resume => LinkChange::Resume,
            LinkAction::Remove => LinkChange::Remove,
            LinkAction::SetThrottle => LinkChange::SetThrottle { max_bytes_per_sec },
        }
    }

    pub fn action(self) -> LinkAction {
        match self {
            LinkChange::Pause => LinkAction::Pause,
            LinkChange::Resume => LinkAction::Resume,
            LinkChange::Remove => LinkAction::Remove,
            LinkChange::SetThrottle { .. } => LinkAction::SetThrottle,
        }
    }

    /// The throttle a `SetThrottle` sets; 0 for the others.
    pub fn max_bytes_per_sec(self) -> u64 {
        match self {
            LinkChange::SetThrottle { max_bytes_per_sec } => max_bytes_per_sec,
            _ => 0,
        }
    }
}

impl fmt::Display for LinkChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.action().name())
    }
}

/// Whether a table serves, or was dropped (and when: it can be recalled until its recall
/// window passes). Named `serving` and `dropped`; no `FromStr`, a name alone lacks the time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TableStatus {
    Serving,
    /// Dropped at this wall-clock time.
    Dropped {
        at_ms: u64,
    },
}

impl TableStatus {
    pub fn name(self) -> &'static str {
        match self {
            TableStatus::Serving => "serving",
            TableStatus::Dropped { .. } => "dropped",
        }
    }
}

impl fmt::Display for TableStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

named! {
    /// One cluster's copy of a table as a proxy sees it: its role, or why it has none.
    "copy state", CopyState {
        Active = "active",
        Standby = "standby",
        /// The cluster's meta servers did not answer.
        Unreachable = "unreachable",
        /// The table does not exist in that cluster.
        NoTable = "no-table",
    }
}

impl From<DrRole> for CopyState {
    fn from(r: DrRole) -> CopyState {
        match r {
            DrRole::Active => CopyState::Active,
            DrRole::Standby => CopyState::Standby,
        }
    }
}

named! {
    /// What became of an automatic failover decision.
    "failover outcome", FailoverOutcome {
        /// A standby was made active.
        Promoted = "promoted",
        /// No standby could take over; the reason says why.
        Refused = "refused",
        /// A returning old active copy was made standby.
        Fenced = "fenced",
        /// Another decider changed the epoch first (the compare-and-set failed).
        LostRace = "lost-race",
        /// Setting the role failed otherwise.
        Failed = "failed",
        /// A standby is to be promoted, but the old active copy's DR lease may still be held:
        /// the promotion waits until it has certainly expired.
        WaitingForLease = "waiting-for-lease",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn round_trips<T: Copy + fmt::Display + FromStr<Err = Error> + PartialEq + fmt::Debug>(all: &[T]) {
        for &v in all {
            assert_eq!(v.to_string().parse::<T>().unwrap(), v);
        }
    }

    #[test]
    fn names_are_todays_and_round_trip() {
        let names = |n: Vec<String>| n.join(",");
        assert_eq!(names(DrRole::ALL.iter().map(|v| v.to_string()).collect()), "active,standby");
        assert_eq!(
            names(LinkStatus::ALL.iter().map(|v| v.to_string()).collect()),
            "init,syncing-checkpoint,shipping,paused,removed"
        );
        assert_eq!(names(LinkMode::ALL.iter().map(|v| v.to_string()).collect()), "one-way,two-way");
        assert_eq!(
            names(LinkAction::ALL.iter().map(|v| v.to_string()).collect()),
            "pause,resume,remove,set-throttle"
        );
        assert_eq!(
            names(CopyState::ALL.iter().map(|v| v.to_string()).collect()),
            "active,standby,unreachable,no-table"
        );
        assert_eq!(
            names(FailoverOutcome::ALL.iter().map(|v| v.to_string()).collect()),
            "promoted,refused,fenced,lost-race,failed,waiting-for-lease"
        );
        assert_eq!(TableStatus::Serving.to_string(), "serving");
        assert_eq!(TableStatus::Dropped { at_ms: 3 }.to_string(), "dropped");
        assert_eq!(
            format!("{:<9}|{:>8}", LinkStatus::Init, DrRole::Active),
            "init     |  active",
            "tables pad"
        );
        round_trips(DrRole::ALL);
        round_trips(LinkStatus::ALL);
        round_trips(LinkMode::ALL);
        round_trips(LinkAction::ALL);
        round_trips(CopyState::ALL);
        round_trips(FailoverOutcome::ALL);
        assert_eq!(
            names(ConflictKind::ALL.iter().map(|v| v.to_string()).collect()),
            "shipped-lost,remote-overwritten"
        );
        round_trips(ConflictKind::ALL);
    }

    #[test]
    fn an_unknown_name_is_an_invalid_argument_listing_the_valid_ones() {
        let e = "Active".parse::<DrRole>().unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        assert!(e.to_string().contains(r#"role "Active" is not one of: active, standby"#), "{e}");
        assert!("".parse::<LinkMode>().is_err());
    }

    #[test]
    fn link_changes_carry_their_action_and_throttle() {
        for &a in LinkAction::ALL {
            assert_eq!(LinkChange::new(a, 7).action(), a);
        }
        assert_eq!(LinkChange::new(LinkAction::SetThrottle, 7).max_bytes_per_sec(), 7);
        assert_eq!(LinkChange::new(LinkAction::Pause, 7).max_bytes_per_sec(), 0);
        assert_eq!(LinkChange::SetThrottle { max_bytes_per_sec: 1 }.to_string(), "set-throttle");
    }

    #[test]
    fn only_shipping_and_syncing_links_ship() {
        let shipping: Vec<_> = LinkStatus::ALL.iter().filter(|s| s.ships()).collect();
        assert_eq!(shipping, [&LinkStatus::SyncingCheckpoint, &LinkStatus::Shipping]);
    }
}

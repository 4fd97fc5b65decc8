//! The role a replica plays, as a type: each role owns the state only it has.
//!
//! A primary's waiting writes, learners and proposals live in `Role::Primary`; a learner's
//! progress in `Role::Learner`; the failure that stopped a replica in `Role::Failed`. Leaving a
//! role drops its state, so no handler can read a primary-only field of a replica that is no
//! longer primary, and a new reign cannot inherit anything from an old one (it starts from
//! `PrimaryState::new`). What every role shares (configuration, ballot, log window, clocks) is
//! `Shared`, in `replica.rs`.

use tern_core::{Error, ReplicaStatus};

use crate::learner::Learning;
use crate::primary::PrimaryState;

#[derive(Debug)]
pub(crate) enum Role {
    /// Holds data but plays no role: just opened, left out of the configuration, stepped down,
    /// or its learning was abandoned.
    Inactive,
    Primary(PrimaryState),
    Secondary,
    Learner(Learning),
    /// Stopped: its log or store failed (the first such error). Only reopening (`Event::Open`)
    /// leaves this role; nothing it holds in memory is trusted until then.
    Failed(Error),
}

impl Role {
    /// The status reported to the configuration manager and the runtime.
    pub(crate) fn status(&self) -> ReplicaStatus {
        match self {
            Role::Inactive => ReplicaStatus::Inactive,
            Role::Primary(_) => ReplicaStatus::Primary,
            Role::Secondary => ReplicaStatus::Secondary,
            Role::Learner(_) => ReplicaStatus::Learner,
            Role::Failed(_) => ReplicaStatus::Error,
        }
    }

    pub(crate) fn is_primary(&self) -> bool {
        matches!(self, Role::Primary(_))
    }

    pub(crate) fn primary(&self) -> Option<&PrimaryState> {
        match self {
            Role::Primary(p) => Some(p),
            _ => None,
        }
    }

    pub(crate) fn learning(&self) -> Option<&Learning> {
        match self {
            Role::Learner(l) => Some(l),
            _ => None,
        }
    }

    pub(crate) fn failure(&self) -> Option<&Error> {
        match self {
            Role::Failed(e) => Some(e),
            _ => None,
        }
    }
}

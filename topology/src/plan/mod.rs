//! `plan`: what must change for a running deployment ([`Observed`]) to match a topology file,
//! as an ordered list of [`Step`]s. A pure function: no I/O, no clock; the same inputs give the
//! same plan. Each step says whether it is destructive (and why), and whether `apply` cannot
//! carry it out yet (and why). Rendered as a Terraform-like diff ([`Plan::render`]) or as JSON
//! (serde).
//!
//! Ordering (by [`Action::phase`], stable within a phase): create tables → set roles of new
//! copies → alter tables → add links → pause/resume/throttle links → move active copies →
//! add/alter backup policies → proxies → remove policies → remove links → drop tables. So a
//! link is never added before both its tables exist, nor a table dropped before the links
//! that ship from it are removed.

mod others;
mod render;
mod tables;

use serde::Serialize;

pub(crate) use self::others::{desired_policies, desired_proxy};
pub use self::render::describe;
pub use self::tables::rate;
use crate::observed::Observed;
use crate::schema::{Role, Topology};

/// A plan: the steps in the order apply runs them, against `version` of the observed state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The observed state's version: apply refuses to run if the deployment moved since.
    pub version: String,
    pub steps: Vec<Step>,
    /// What the plan could not see or left alone ("cluster dc2 was not observed: …").
    pub notes: Vec<String>,
    pub summary: Summary,
}

/// Counts for the closing line: `Plan: 2 to add, 1 to change, 1 to destroy.`
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
    pub destructive: usize,
    pub blocked: usize,
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    #[serde(flatten)]
    pub action: Action,
    /// Why the step is destructive (apply needs `--allow-destructive`); `None`: it is not.
    pub destructive: Option<String>,
    /// Why apply cannot carry it out yet; `None`: it can.
    pub blocked: Option<String>,
}

/// A field's change: `from` → `to`, as the operator reads them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub field: String,
    pub from: String,
    pub to: String,
}

/// What a step does. `cluster` is where it happens (for links: the sending cluster).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    CreateTable {
        cluster: String,
        table: String,
        partitions: u32,
        replicas: u32,
    },
    DropTable {
        cluster: String,
        table: String,
    },
    /// Partition count, replica count or default TTL of an existing copy.
    AlterTable {
        cluster: String,
        table: String,
        changes: Vec<Change>,
    },
    /// Sets a copy's role without moving the active copy elsewhere: a new standby copy, a
    /// stale active copy fenced, or the first active copy of a table that has none.
    SetRole {
        cluster: String,
        table: String,
        role: Role,
    },
    /// Moves the table's active copy: the DR switchover's job (drain, then move).
    MoveActive {
        table: String,
        from: String,
        to: String,
    },
    AddLink {
        cluster: String,
        table: String,
        to: String,
        two_way: bool,
        max_bytes_per_sec: u64,
        paused: bool,
    },
    RemoveLink {
        cluster: String,
        table: String,
        to: String,
        id: u64,
    },
    PauseLink {
        cluster: String,
        table: String,
        to: String,
        id: u64,
    },
    ResumeLink {
        cluster: String,
        table: String,
        to: String,
        id: u64,
    },
    /// 0 = unlimited.
    SetThrottle {
        cluster: String,
        table: String,
        to: String,
        id: u64,
        from_bytes_per_sec: u64,
        to_bytes_per_sec: u64,
    },
    AddPolicy {
        policy: String,
        tables: Vec<String>,
        url: String,
    },
    AlterPolicy {
        policy: String,
        changes: Vec<Change>,
    },
    RemovePolicy {
        policy: String,
    },
    ChangeProxy {
        proxy: String,
        changes: Vec<Change>,
    },
}

/// How a step changes the deployment, for the diff's marks and the summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Add,
    Change,
    Destroy,
}

impl Action {
    /// Where the step runs in the plan's order (lower first).
    pub fn phase(&self) -> u8 {
        match self {
            Action::CreateTable { .. } => 0,
            Action::SetRole { .. } => 1,
            Action::AlterTable { .. } => 2,
            Action::AddLink { .. } => 3,
            Action::PauseLink { .. } | Action::ResumeLink { .. } | Action::SetThrottle { .. } => 4,
            Action::MoveActive { .. } => 5,
            Action::AddPolicy { .. } | Action::AlterPolicy { .. } => 6,
            Action::ChangeProxy { .. } => 7,
            Action::RemovePolicy { .. } => 8,
            Action::RemoveLink { .. } => 9,
            Action::DropTable { .. } => 10,
        }
    }

    pub fn effect(&self) -> Effect {
        match self {
            Action::CreateTable { .. } | Action::AddLink { .. } | Action::AddPolicy { .. } => Effect::Add,
            Action::DropTable { .. } | Action::RemoveLink { .. } | Action::RemovePolicy { .. } => {
                Effect::Destroy
            }
            _ => Effect::Change,
        }
    }
}

impl Step {
    fn new(action: Action) -> Step {
        Step { action, destructive: None, blocked: None }
    }

    fn destructive(mut self, why: impl Into<String>) -> Step {
        self.destructive = Some(why.into());
        self
    }

    fn blocked(mut self, why: impl Into<String>) -> Step {
        self.blocked = Some(why.into());
        self
    }
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Whether any step is destructive (apply then needs `--allow-destructive`).
    pub fn has_destructive(&self) -> bool {
        self.steps.iter().any(|s| s.destructive.is_some())
    }
}

/// The steps that make `observed` match `desired` (a validated topology), in apply's order.
pub fn plan(desired: &Topology, observed: &Observed) -> Plan {
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    for c in &desired.clusters {
        if observed.cluster(&c.name).is_none() {
            notes.push(format!("cluster {} was not observed: it is planned as if it held nothing", *c.name));
        }
    }
    for name in observed.clusters.keys() {
        if desired.cluster(name).is_none() {
            notes.push(format!("cluster {name} is not in the file: left alone"));
        }
    }
    tables::tables(desired, observed, &mut steps);
    tables::links(desired, observed, &mut steps);
    others::policies(desired, observed, &mut steps);
    others::proxies(desired, observed, &mut steps, &mut notes);
    steps.sort_by_key(|s| s.action.phase());
    let mut summary = Summary::default();
    for s in &steps {
        match s.action.effect() {
            Effect::Add => summary.add += 1,
            Effect::Change => summary.change += 1,
            Effect::Destroy => summary.destroy += 1,
        }
        summary.destructive += usize::from(s.destructive.is_some());
        summary.blocked += usize::from(s.blocked.is_some());
    }
    Plan { version: observed.version.clone(), steps, notes, summary }
}

#[cfg(test)]
mod tests;

//! The replica: its state, the event dispatch, and what every role shares (configuration
//! changes, leases, reports). Role-specific handlers are in `primary.rs`, `secondary.rs` and
//! `learner.rs`.

use std::collections::{BTreeMap, HashMap, VecDeque};

use tern_core::{
    Ballot, Decree, Error, Gpid, Hlc, NodeId, PartitionConfig, ReplicaReport, ReplicaStatus, Timetag,
};
use tern_storage::LogEntry;

use crate::learner::Learning;
use crate::message::{Action, Event, Now, PeerMessage, Reign, RequestId};
use crate::options::ReplicaOptions;
use crate::primary::LearnerProgress;
use crate::window::{Slot, Window};

/// One partition replica. See the crate docs.
#[derive(Debug)]
pub struct Replica {
    pub(crate) gpid: Gpid,
    pub(crate) me: NodeId,
    pub(crate) opts: ReplicaOptions,
    pub(crate) status: ReplicaStatus,
    /// The newest configuration this replica knows.
    pub(crate) config: PartitionConfig,
    pub(crate) ballot: Ballot,
    /// As primary, its own reign; otherwise the reign of the primary it follows.
    pub(crate) reign: Reign,
    pub(crate) hlc: Hlc,
    /// Lease end, on the monotonic clock.
    pub(crate) lease_expires_ms: u64,
    /// The wall clock at the current event: for timetags only.
    pub(crate) wall_ms: u64,
    /// Highest committed decree; everything up to it has been handed to the store (`Apply`).
    pub(crate) committed: Decree,
    /// Entries after `committed`.
    pub(crate) window: Window,
    /// As secondary or learner: the newest commit point heard from the primary (entries may
    /// become durable here after it arrived).
    pub(crate) commit_hint: Decree,
    // ---- primary ----
    /// False while a new primary re-proposes its window; it serves nothing until then.
    pub(crate) active: bool,
    pub(crate) reconcile_target: Decree,
    /// A new reign's first entries are not durable here yet, so nothing was sent.
    pub(crate) reign_unsent: bool,
    /// Client writes waiting for their decree to commit: request `i` waits for op `i`.
    pub(crate) pending: BTreeMap<u64, Vec<RequestId>>,
    /// Client writes admitted while the previous entry is not yet durable here: they go out
    /// together as the next entry (see `on_write`).
    pub(crate) queued: Vec<(RequestId, tern_core::WriteOp)>,
    pub(crate) queued_bytes: u64,
    /// Handling the writes of one `ClientWrites`: queue them all, send them out after the last.
    pub(crate) holding: bool,
    /// Client writes waiting on their hash key: atomic ops until no uncommitted write touches
    /// it, and writes behind them (see `resolve.rs`).
    pub(crate) parked: VecDeque<(RequestId, tern_core::WriteOp)>,
    /// Atomic ops handed to the runtime for resolution, with their hash key.
    pub(crate) resolving: HashMap<RequestId, Vec<u8>>,
    pub(crate) learners: BTreeMap<NodeId, LearnerProgress>,
    /// When a change about a node was last proposed at a ballot (proposals are repeated while
    /// their reason holds: the message may be lost, or refused for now).
    pub(crate) proposed: BTreeMap<(Ballot, NodeId), u64>,
    pub(crate) last_resend_ms: u64,
    // ---- learner ----
    pub(crate) learning: Option<Learning>,
}

impl Replica {
    /// A replica with nothing known yet; the runtime follows with `Open` or `Create`. `now_ms` is
    /// the wall clock (it seeds the HLC).
    pub fn new(gpid: Gpid, me: NodeId, opts: ReplicaOptions, now_ms: u64) -> Replica {
        let hlc = Hlc::new(opts.cluster, now_ms, opts.max_clock_offset_ms);
        Replica {
            gpid,
            me,
            status: ReplicaStatus::Inactive,
            config: PartitionConfig { gpid, ballot: Ballot::ZERO, primary: None, secondaries: vec![] },
            ballot: Ballot::ZERO,
            reign: Reign::default(),
            hlc,
            lease_expires_ms: 0,
            wall_ms: now_ms,
            committed: Decree::ZERO,
            window: Window::default(),
            commit_hint: Decree::ZERO,
            active: false,
            reconcile_target: Decree::ZERO,
            reign_unsent: false,
            pending: BTreeMap::new(),
            queued: Vec::new(),
            queued_bytes: 0,
            holding: false,
            parked: VecDeque::new(),
            resolving: HashMap::new(),
            learners: BTreeMap::new(),
            proposed: BTreeMap::new(),
            last_resend_ms: 0,
            learning: None,
            opts,
        }
    }

    /// Handles one event; actions for the runtime are pushed to `out`, in the order they must
    /// run.
    pub fn handle(&mut self, now: Now, event: Event, out: &mut Vec<Action>) {
        self.wall_ms = now.wall_ms;
        let now_ms = now.mono_ms;
        match event {
            Event::Open { applied, applied_timetag, applied_ballot, log } => {
                self.on_open(now_ms, applied, applied_timetag, applied_ballot, log)
            }
            Event::Create { config } => self.on_create(now_ms, config, out),
            Event::ConfigUpdate { config } => self.on_config(now_ms, config, out),
            Event::AddLearner { config, learner } => self.on_add_learner(now_ms, config, learner, out),
            Event::Lease { expires_at_ms } => self.lease_expires_ms = expires_at_ms,
            Event::Tick => self.on_tick(now_ms, out),
            Event::ClientWrite { req, op } => self.on_write(now_ms, req, op, out),
            Event::ClientWrites { writes } => {
                self.holding = true;
                for (req, op) in writes {
                    self.on_write(now_ms, req, op, out);
                }
                self.holding = false;
                if !self.pipeline_full() {
                    self.flush_queued(now_ms, out);
                }
            }
            Event::ClientRead { req, read } => self.on_read(now_ms, req, read, out),
            Event::Peer { from, msg } => self.on_peer(now_ms, from, msg, out),
            Event::Appended { entries } => self.on_appended(now_ms, &entries, out),
            Event::AppendFailed { error } => self.fail(error, out),
            Event::CheckpointInstalled { decree, timetag } => {
                self.on_checkpoint_installed(now_ms, decree, timetag, out)
            }
            Event::CheckpointFailed { error } => self.on_checkpoint_failed(now_ms, error, out),
            Event::Resolved { req, result } => self.on_resolved(now_ms, req, result, out),
        }
    }

    fn on_peer(&mut self, now: u64, from: NodeId, msg: PeerMessage, out: &mut Vec<Action>) {
        match msg {
            PeerMessage::Prepare { config, reign, committed, entry } => {
                self.on_prepare(now, from, config, reign, committed, entry, out)
            }
            PeerMessage::PrepareAck { ballot, entry_ballot, decree, durable_through, refusal } => {
                self.on_prepare_ack(now, from, ballot, entry_ballot, decree, durable_through, refusal, out)
            }
            PeerMessage::GroupCheck { config, reign, committed } => {
                self.on_group_check(now, from, config, reign, committed, out)
            }
            PeerMessage::LearnInvite { config, reign } => self.on_learn_invite(now, from, config, reign, out),
            PeerMessage::LearnRequest { ballot, applied } => {
                self.on_learn_request(now, from, ballot, applied, out)
            }
            PeerMessage::LearnResponse { config, reign, committed, through, checkpoint, entries } => {
                self.on_learn_response(now, from, config, reign, committed, through, checkpoint, entries, out)
            }
            PeerMessage::LearnAck { ballot, through } => self.on_learn_ack(now, from, ballot, through, out),
        }
    }

    // ---- queries ----

    pub fn gpid(&self) -> Gpid {
        self.gpid
    }

    pub fn status(&self) -> ReplicaStatus {
        self.status
    }

    pub fn ballot(&self) -> Ballot {
        self.ballot
    }

    pub fn committed(&self) -> Decree {
        self.committed
    }

    pub fn config(&self) -> &PartitionConfig {
        &self.config
    }

    /// The highest decree this replica holds (committed or not).
    pub fn last_prepared(&self) -> Decree {
        self.window.last().unwrap_or(self.committed).max(self.committed)
    }

    /// Whether it would serve a read now (monotonic clock): an active primary with a valid lease.
    pub fn is_serving(&self, now_ms: u64) -> bool {
        self.status == ReplicaStatus::Primary && self.active && self.lease_valid(now_ms)
    }

    pub fn report(&self) -> ReplicaReport {
        ReplicaReport {
            gpid: self.gpid,
            ballot: self.ballot,
            status: self.status,
            committed: self.committed,
            last_prepared: self.last_prepared(),
        }
    }

    // ---- shared ----

    pub(crate) fn lease_valid(&self, now_ms: u64) -> bool {
        now_ms < self.lease_expires_ms
    }

    fn on_open(
        &mut self,
        now: u64,
        applied: Decree,
        applied_timetag: Timetag,
        applied_ballot: Ballot,
        log: Vec<LogEntry>,
    ) {
        self.status = ReplicaStatus::Inactive;
        self.committed = applied;
        self.window.clear();
        for e in log.into_iter().filter(|e| e.decree > applied) {
            let mut slot = Slot::new(e, now);
            slot.durable = true;
            self.window.insert(slot);
        }
        // Every durable entry is in the store or in the log: this is the largest ballot this
        // replica ever logged, so a reign it started is never started again at the same ballot.
        self.ballot = self.window.max_ballot().max(applied_ballot);
        self.config.ballot = self.ballot;
        self.hlc.observe(applied_timetag, self.wall_ms);
        self.hlc.observe(self.window.max_timetag(), self.wall_ms);
    }

    fn on_create(&mut self, now: u64, config: PartitionConfig, out: &mut Vec<Action>) {
        if config.gpid != self.gpid || self.ballot > Ballot::ZERO || self.committed > Decree::ZERO {
            return; // only a brand-new, empty replica can be created into a configuration
        }
        if config.is_primary(self.me) {
            self.become_primary(now, config, out);
        } else if config.is_secondary(self.me) {
            self.ballot = config.ballot;
            self.config = config;
            self.status = ReplicaStatus::Secondary;
        }
    }

    /// Adopts a newer configuration from the configuration manager.
    ///
    /// A configuration at the ballot this replica already holds is still new to it when it knows
    /// that ballot only second-hand: a primary refused as stale by a member that learned the
    /// ballot first adopts the number without the configuration (`on_prepare_ack`). The meta
    /// issues one configuration per ballot, and this replica never reigned at that ballot, so
    /// taking it, even as primary, starts no second reign at one ballot.
    pub(crate) fn on_config(&mut self, now: u64, config: PartitionConfig, out: &mut Vec<Action>) {
        let known = config.ballot < self.ballot || config.ballot <= self.config.ballot;
        if config.gpid != self.gpid || known || self.status == ReplicaStatus::Error {
            return;
        }
        let me = self.me;
        if config.is_primary(me) {
            if self.status == ReplicaStatus::Primary {
                self.continue_reign(now, config, out);
            } else {
                self.become_primary(now, config, out);
            }
        } else if config.is_secondary(me) {
            let can_serve = match self.status {
                ReplicaStatus::Primary | ReplicaStatus::Secondary => true,
                ReplicaStatus::Learner => {
                    self.learning_complete() && self.learning_primary() == config.primary
                }
                _ => false,
            };
            self.step_down_if_primary(out);
            self.ballot = config.ballot;
            self.config = config;
            if can_serve {
                self.status = ReplicaStatus::Secondary;
                self.learning = None;
            }
        } else {
            let keeps_learning =
                self.status == ReplicaStatus::Learner && self.learning_primary() == config.primary;
            self.step_down_if_primary(out);
            if !keeps_learning && self.status != ReplicaStatus::Inactive {
                self.status = ReplicaStatus::Inactive;
                self.learning = None;
            }
            self.ballot = config.ballot;
            self.config = config;
        }
    }

    pub(crate) fn step_down_if_primary(&mut self, out: &mut Vec<Action>) {
        if self.status != ReplicaStatus::Primary {
            return;
        }
        for req in std::mem::take(&mut self.pending).into_values().flatten() {
            // Prepared but not committed: a later primary may still commit it.
            out.push(Action::Refuse {
                req,
                error: Error::Unavailable(format!("partition {} changed primary", self.gpid)),
                not_applied: false,
            });
        }
        self.queued_bytes = 0;
        let waiting = self.parked.drain(..).map(|(r, _)| r).chain(self.resolving.drain().map(|(r, _)| r));
        let never_logged: Vec<RequestId> =
            std::mem::take(&mut self.queued).into_iter().map(|(r, _)| r).chain(waiting).collect();
        for req in never_logged {
            // Never logged: certainly not applied.
            out.push(Action::Refuse {
                req,
                error: Error::Unavailable(format!("partition {} changed primary", self.gpid)),
                not_applied: true,
            });
        }
        self.learners.clear();
        self.active = false;
        self.reign_unsent = false;
        self.status = ReplicaStatus::Inactive;
    }

    fn fail(&mut self, error: Error, out: &mut Vec<Action>) {
        self.step_down_if_primary(out);
        let _ = error;
        self.status = ReplicaStatus::Error;
        self.learning = None;
    }

    fn on_appended(&mut self, now: u64, entries: &[(Ballot, Decree)], out: &mut Vec<Action>) {
        let mut newly = Vec::new();
        for &(b, d) in entries {
            if let Some(slot) = self.window.get_mut(d)
                && slot.entry.ballot == b
                && !slot.durable
            {
                slot.durable = true;
                newly.push((b, d));
            }
        }
        match self.status {
            ReplicaStatus::Primary => {
                self.send_reign_start(out);
                self.try_commit(now, out);
                if !self.pipeline_full() {
                    self.flush_queued(now, out);
                }
            }
            ReplicaStatus::Secondary => {
                for (b, d) in newly {
                    self.ack(b, d, out);
                }
                self.secondary_commit(self.commit_hint, out);
            }
            ReplicaStatus::Learner => self.learner_on_appended(now, &newly, out),
            _ => {}
        }
    }

    /// Acknowledges a durable entry to the primary this replica follows.
    pub(crate) fn ack(&self, entry_ballot: Ballot, decree: Decree, out: &mut Vec<Action>) {
        if let Some(p) = self.config.primary.filter(|&p| p != self.me) {
            out.push(Action::Send {
                to: p,
                msg: PeerMessage::PrepareAck {
                    ballot: self.ballot,
                    entry_ballot,
                    decree,
                    durable_through: self.window.durable_through(self.committed),
                    refusal: None,
                },
            });
        }
    }
}

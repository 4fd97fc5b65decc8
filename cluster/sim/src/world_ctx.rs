//! What simulated processes see of the world while they handle an event.

use std::collections::BTreeMap;

use rand_chacha::ChaCha8Rng;
use tern_storage::MemImage;

use crate::config::SimConfig;
use crate::net::{Addr, Msg};
use crate::observe::Observations;
use crate::trace::Trace;

/// Scheduled work of the world loop.
#[derive(Clone, Debug)]
pub enum Ev {
    Deliver {
        from: Addr,
        to: Addr,
        msg: Msg,
    },
    NodeTick(usize),
    MetaTick(usize),
    ClientWake(usize),
    LogSync {
        node: usize,
        gpid: tern_core::Gpid,
        incarnation: u64,
    },
    StoreFlush {
        node: usize,
        incarnation: u64,
    },
    CheckpointFetched {
        node: usize,
        gpid: tern_core::Gpid,
        incarnation: u64,
        id: u64,
        ok: bool,
    },
    FaultStep,
    HealPartition(u64),
    EndFaults,
    CheckConverged,
    Dr(crate::dr::DrEv),
    /// A step of a two-cluster scenario (`world/scenarios.rs`).
    Scenario(Scenario),
}

/// The steps of two-cluster scenarios.
#[derive(Clone, Copy, Debug)]
pub enum Scenario {
    /// The clusters are cut apart both ways for this long (µs).
    LongCut { lasts_us: u64 },
    /// The links are added, each with a full sync.
    AddLinks,
}

#[allow(missing_debug_implementations)]
pub struct Ctx<'a> {
    pub now_us: u64,
    pub rng: &'a mut ChaCha8Rng,
    pub cfg: &'a SimConfig,
    pub outbox: Vec<(Addr, Addr, Msg)>,
    /// (delay in µs, event)
    pub schedule: Vec<(u64, Ev)>,
    pub obs: &'a mut Observations,
    pub trace: &'a mut Trace,
    pub checkpoints: &'a mut BTreeMap<u64, (MemImage, Vec<tern_storage::LogEntry>)>,
    pub next_checkpoint: &'a mut u64,
    /// Whether faults are being injected now (the fault phase).
    pub faulty: bool,
}

impl Ctx<'_> {
    pub fn send(&mut self, from: Addr, to: Addr, msg: Msg) {
        self.outbox.push((from, to, msg));
    }

    pub fn after(&mut self, delay_us: u64, ev: Ev) {
        self.schedule.push((delay_us, ev));
    }

    pub fn trace(&mut self, text: String) {
        self.trace.line(self.now_us, text);
    }
}

//! Simulated clients: a closed loop of random operations on a few keys, routed to primaries by
//! the configurations the meta server hands out, recorded for the linearizability checker.

use std::collections::{BTreeMap, VecDeque};

use rand::Rng;
use tern_core::mutation::{Check, CheckAndSet, WriteOutcome};
use tern_core::{CheckType, ErrorCode, Gpid, PartitionConfig, TableId, WriteOp, partition_of};
use tern_replica::ReadOp;

use crate::checker::linearizability::{Input, Op, Output};
use crate::keys::KeySpace;
use crate::net::{Addr, Msg, RequestBody, ResponseBody};
use crate::world_ctx::{Ctx, Ev};

/// A client waits this long (global time) for a response before giving up on it.
pub const TIMEOUT_US: u64 = 2_000_000;

/// All operations per key, in the order they were invoked. An operation that certainly did
/// not happen (refused before it was logged) is replaced by `None`, keeping indices stable.
pub type History = BTreeMap<usize, Vec<Option<Op>>>;

struct Pending {
    id: u64,
    key: usize,
    /// Index into the key's history.
    slot: usize,
    deadline_us: u64,
}

pub struct SimClient {
    pub idx: usize,
    /// The cluster whose meta server and replica servers this client talks to.
    pub cluster: usize,
    table: TableId,
    partitions: u32,
    /// The keys it uses: (index in the key space, name, is a counter).
    keys: Vec<(usize, Vec<u8>, bool)>,
    configs: BTreeMap<Gpid, PartitionConfig>,
    pending: Option<Pending>,
    next_id: u64,
    next_value: u64,
    /// Issue random operations (the fault phase).
    pub active: bool,
    /// Reads to do at the end (the final phase), front first.
    pub final_reads: VecDeque<usize>,
    /// What this client last saw under each register, to aim its check-and-sets.
    last_seen: BTreeMap<usize, Option<Vec<u8>>>,
}

impl SimClient {
    /// Client `idx` (unique over the run) of cluster `cluster`, whose table has `partitions`.
    pub fn new(idx: usize, cluster: usize, keys: &KeySpace, partitions: u32) -> SimClient {
        let keys =
            keys.used_by(cluster).into_iter().map(|k| (k, keys.name(k).to_vec(), keys.keys[k].counter));
        SimClient {
            idx,
            cluster,
            table: TableId(cluster as u32 + 1),
            partitions,
            keys: keys.collect(),
            configs: BTreeMap::new(),
            pending: None,
            next_id: 1,
            next_value: 1,
            active: false,
            final_reads: VecDeque::new(),
            last_seen: BTreeMap::new(),
        }
    }

    fn addr(&self) -> Addr {
        Addr::Client(self.idx as u32)
    }

    pub fn idle(&self) -> bool {
        self.pending.is_none() && self.final_reads.is_empty()
    }

    fn refresh(&self, ctx: &mut Ctx<'_>) {
        ctx.send(self.addr(), Addr::Meta(self.cluster as u8), Msg::QueryConfigs);
    }

    fn choose(&mut self, ctx: &mut Ctx<'_>) -> Option<(usize, Input)> {
        if let Some(k) = self.final_reads.front() {
            return Some((*k, Input::Get));
        }
        if !self.active {
            return None;
        }
        let (key, _, counter) = self.keys[ctx.rng.random_range(0..self.keys.len())].clone();
        let value = |c: &mut SimClient| {
            c.next_value += 1;
            format!("c{}-{}", c.idx, c.next_value).into_bytes()
        };
        let input = if counter {
            if ctx.rng.random_bool(0.7) { Input::Incr(ctx.rng.random_range(-3..=5)) } else { Input::Get }
        } else {
            match ctx.rng.random_range(0..100) {
                0..35 => Input::Set(value(self)),
                35..70 => Input::Get,
                70..80 => Input::Del,
                _ => {
                    let expect = self.last_seen.get(&key).cloned().unwrap_or(None);
                    Input::Cas { expect, new: value(self) }
                }
            }
        };
        Some((key, input))
    }

    pub fn on_wake(&mut self, ctx: &mut Ctx<'_>, history: &mut History) {
        if let Some(p) = &self.pending {
            if ctx.now_us < p.deadline_us {
                return; // still waiting; a response or the deadline wakes us
            }
            // Timed out: the operation may or may not have happened.
            let p = self.pending.take().expect("checked above");
            ctx.trace(format!("client {} gave up on #{}", self.idx, p.id));
            self.refresh(ctx);
        }
        let Some((key, input)) = self.choose(ctx) else { return };
        let Some((_, hash_key, _)) = self.keys.iter().find(|(k, _, _)| *k == key) else { return };
        let hash_key = hash_key.clone();
        let gpid = Gpid { table: self.table, partition: partition_of(&hash_key, self.partitions) };
        let Some(primary) = self.configs.get(&gpid).and_then(|c| c.primary) else {
            self.refresh(ctx);
            return self.sleep(ctx, 100_000);
        };
        let body = match &input {
            Input::Get => RequestBody::Read(ReadOp::Get { hash_key: hash_key.clone(), sort_key: vec![] }),
            Input::Set(v) => {
                RequestBody::Write(WriteOp::Set { hash_key, sort_key: vec![], value: v.clone(), ttl_secs: 0 })
            }
            Input::Del => RequestBody::Write(WriteOp::Del { hash_key, sort_key: vec![] }),
            Input::Incr(d) => RequestBody::Write(WriteOp::Incr {
                hash_key,
                sort_key: vec![],
                delta: *d,
                ttl: tern_core::mutation::IncrTtl::Keep,
            }),
            Input::Cas { expect, new } => RequestBody::Write(WriteOp::CheckAndSet(CheckAndSet {
                hash_key,
                check_sort_key: vec![],
                check: match expect {
                    None => Check { kind: CheckType::NotExist, operand: vec![] },
                    Some(e) => Check { kind: CheckType::BytesEqual, operand: e.clone() },
                },
                set_sort_key: vec![],
                set_value: new.clone(),
                set_ttl_secs: 0,
                return_check_value: false,
            })),
        };
        let id = self.next_id;
        self.next_id += 1;
        let ops = history.entry(key).or_default();
        ops.push(Some(Op {
            client: self.idx as u64,
            invoke_ms: ctx.now_us,
            complete_ms: None,
            input,
            output: None,
        }));
        self.pending = Some(Pending { id, key, slot: ops.len() - 1, deadline_us: ctx.now_us + TIMEOUT_US });
        ctx.send(self.addr(), Addr::Node(primary), Msg::Request { id, gpid, body });
        ctx.after(TIMEOUT_US, Ev::ClientWake(self.idx));
    }

    fn sleep(&self, ctx: &mut Ctx<'_>, us: u64) {
        ctx.after(us, Ev::ClientWake(self.idx));
    }

    pub fn on_message(&mut self, ctx: &mut Ctx<'_>, msg: Msg, history: &mut History) {
        match msg {
            Msg::Configs { configs } => {
                for c in configs {
                    self.configs.insert(c.gpid, c);
                }
            }
            Msg::Response { id, body } => {
                let Some(p) = self.pending.take_if(|p| p.id == id) else { return };
                let ops = history.get_mut(&p.key).expect("the op was recorded");
                let output = match body {
                    ResponseBody::Read { value } => {
                        self.last_seen.insert(p.key, value.clone());
                        Some(Output::Value(value))
                    }
                    ResponseBody::Written { outcome, .. } => match outcome {
                        WriteOutcome::Done => Some(Output::Done),
                        WriteOutcome::Incr { new_value } => Some(Output::Int(new_value)),
                        WriteOutcome::Checked(c) => Some(Output::Cas(c.passed)),
                        WriteOutcome::Failed(e) if e.code() == ErrorCode::NotAnInteger => {
                            Some(Output::NotAnInteger)
                        }
                        WriteOutcome::Failed(e) if e.code() == ErrorCode::IntegerOverflow => {
                            Some(Output::Overflow)
                        }
                        // Sim clients send only local writes, which always win.
                        WriteOutcome::Superseded { stored } => {
                            ctx.obs.violations.push(format!(
                                "client {}: a local write lost last-writer-wins to {stored}",
                                self.idx
                            ));
                            None
                        }
                        // Only a duplicated put reports the record it replaced.
                        WriteOutcome::Replaced { stored } => {
                            ctx.obs.violations.push(format!(
                                "client {}: a local write answered as a duplicated put (replaced {stored})",
                                self.idx
                            ));
                            None
                        }
                        WriteOutcome::Failed(e) => {
                            ctx.obs
                                .violations
                                .push(format!("client {}: unexpected refusal of an op: {e}", self.idx));
                            None
                        }
                    },
                    // An atomic op the primary refused when it resolved it (read from the
                    // store under the lease, like a read): an answer, not a retry.
                    ResponseBody::Refused { error, .. } if error.code() == ErrorCode::NotAnInteger => {
                        Some(Output::NotAnInteger)
                    }
                    ResponseBody::Refused { error, .. } if error.code() == ErrorCode::IntegerOverflow => {
                        Some(Output::Overflow)
                    }
                    ResponseBody::Refused { not_applied, .. } => {
                        if not_applied {
                            // Certainly did not happen: not part of the history.
                            ops[p.slot] = None;
                        }
                        self.refresh(ctx);
                        None
                    }
                };
                if let (Some(o), Some(op)) = (output, ops[p.slot].as_mut()) {
                    op.complete_ms = Some(ctx.now_us);
                    op.output = Some(o);
                    if self.final_reads.front() == Some(&p.key) {
                        self.final_reads.pop_front();
                    }
                }
                let think = ctx.rng.random_range(1_000..30_000);
                self.sleep(ctx, think);
            }
            _ => {}
        }
    }
}

//! The simulated network: who can reach whom, and what happens to a message on the way.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tern_core::mutation::WriteOutcome;
use tern_core::{
    Ballot, ClusterId, ConfigChange, Decree, Error, Gpid, NodeId, PartitionConfig, ReplicaReport, Timetag,
    WriteOp,
};
use tern_replica::{PeerMessage, ReadOp};

use crate::config::Faults;

/// An endpoint. Node ids and client numbers are unique over the run; meta servers are
/// numbered by cluster (0 for the first).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Addr {
    Node(NodeId),
    Meta(u8),
    Client(u32),
    /// A DR voter of a run with the DR lease (a proxy or a witness, see `dr/`), by number.
    Dr(u8),
}

impl std::fmt::Debug for Addr {
    /// As derived, with the first cluster's meta server as plain `Meta` (the traces of
    /// one-cluster runs stay what they were).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Node(n) => f.debug_tuple("Node").field(n).finish(),
            Addr::Meta(0) => f.write_str("Meta"),
            Addr::Meta(c) => write!(f, "Meta{}", c + 1),
            Addr::Client(c) => f.debug_tuple("Client").field(c).finish(),
            Addr::Dr(d) => f.debug_tuple("Dr").field(d).finish(),
        }
    }
}

#[derive(Clone, Debug)]
pub enum Msg {
    Peer {
        gpid: Gpid,
        msg: PeerMessage,
    },
    Beacon {
        sent_at_ms: u64,
        reports: Vec<ReplicaReport>,
    },
    Propose {
        gpid: Gpid,
        ballot: Ballot,
        change: ConfigChange,
    },
    BeaconAck {
        sent_at_ms: u64,
        lease_ms: u64,
        configs: Vec<PartitionConfig>,
    },
    ConfigUpdate {
        config: PartitionConfig,
    },
    CreateReplica {
        config: PartitionConfig,
    },
    AddLearner {
        config: PartitionConfig,
        learner: NodeId,
    },
    Request {
        id: u64,
        gpid: Gpid,
        body: RequestBody,
    },
    Response {
        id: u64,
        body: ResponseBody,
    },
    QueryConfigs,
    Configs {
        configs: Vec<PartitionConfig>,
    },
    /// Duplication, see `dup/`: a node's shippers' progress and what its receiving primaries
    /// heard of incoming links, to its meta server (sent with every beacon, empty when there is
    /// nothing to say), and the meta server's view of the link and the table's purge horizon in
    /// return.
    DupProgress {
        reports: Vec<DupReport>,
        incoming: Vec<IncomingHeard>,
    },
    DupLinks {
        link: Option<LinkView>,
        purge_below: Timetag,
    },
    /// Puts for one partition of the remote cluster's table (none: a heartbeat), and the answer.
    DupBatch {
        id: u64,
        from_cluster: ClusterId,
        gpid: Gpid,
        partition_count: u32,
        header: ShipHeader,
        puts: Vec<WriteOp>,
    },
    DupAck {
        id: u64,
        result: Result<u32, String>,
    },
    /// The DR lease (runs with `SimConfig::dr`): renewals, promises, roles, see `dr/`.
    Dr(crate::dr::DrMsg),
}

/// One shipper's progress, as its primary reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DupReport {
    pub gpid: Gpid,
    pub ballot: Ballot,
    pub confirmed: Decree,
    /// The shipper's replicated-up-to that goes with `confirmed`.
    pub replicated_up_to: Timetag,
}

/// What every batch and heartbeat says of the partition that sent it (the servers'
/// `tern_client::ShipHeader`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShipHeader {
    pub source_table: u32,
    pub source_partition: u32,
    pub source_partitions: u32,
    /// As the sending cluster's meta server recorded it with the confirmed decree.
    pub replicated_up_to: Timetag,
    /// The puts are records of a full sync.
    pub full_sync: bool,
}

/// What a receiving node heard of one sending partition (the servers' `IncomingWatermark`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IncomingHeard {
    pub from_cluster: u8,
    pub source_table: u32,
    pub source_partition: u32,
    pub source_partitions: u32,
    pub replicated_up_to: Timetag,
}

/// A meta server's view of its table's link, as its answers carry it: per partition the
/// progress and the recorded replicated-up-to, and whether the link still copies records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkView {
    pub partitions: Vec<(Gpid, LinkProgress, Timetag)>,
    pub syncing: bool,
}

/// What the meta server records per partition of a link (the servers' own type).
pub use tern_duplication::LinkProgress;

#[derive(Clone, Debug)]
pub enum RequestBody {
    Write(tern_core::WriteOp),
    Read(ReadOp),
}

#[derive(Clone, Debug)]
pub enum ResponseBody {
    /// A write's outcome and the decree it committed at.
    Written {
        outcome: WriteOutcome,
        decree: Decree,
    },
    Read {
        value: Option<Vec<u8>>,
    },
    Refused {
        error: Error,
        not_applied: bool,
    },
}

impl Msg {
    /// A short name for the trace.
    pub fn kind(&self) -> String {
        match self {
            Msg::Peer { gpid, msg } => {
                let k = match msg {
                    PeerMessage::Prepare { entry, config, .. } => {
                        format!("prepare b{} d{} cfg-b{}", entry.ballot, entry.decree, config.ballot)
                    }
                    PeerMessage::PrepareAck { entry_ballot, decree, refusal, .. } => match refusal {
                        None => format!("ack b{entry_ballot} d{decree}"),
                        Some(r) => format!("refuse d{decree} {r:?}"),
                    },
                    PeerMessage::GroupCheck { committed, .. } => format!("group-check c{committed}"),
                    PeerMessage::LearnInvite { .. } => "learn-invite".into(),
                    PeerMessage::LearnRequest { applied, .. } => format!("learn-request a{applied}"),
                    PeerMessage::LearnResponse { through, checkpoint, entries, .. } => format!(
                        "learn-response t{through} cp={:?} n={}",
                        checkpoint.map(|c| c.decree.0),
                        entries.len()
                    ),
                    PeerMessage::LearnAck { through, .. } => format!("learn-ack t{through}"),
                };
                format!("{gpid} {k}")
            }
            Msg::Beacon { .. } => "beacon".into(),
            Msg::Propose { gpid, ballot, change } => format!("propose {gpid} b{ballot} {change:?}"),
            Msg::BeaconAck { .. } => "beacon-ack".into(),
            Msg::ConfigUpdate { config } => format!("config {config}"),
            Msg::CreateReplica { config } => format!("create {config}"),
            Msg::AddLearner { config, learner } => format!("add-learner {} {learner}", config.gpid),
            Msg::Request { id, gpid, body } => format!(
                "request #{id} {gpid} {}",
                match body {
                    RequestBody::Write(op) => op.name(),
                    RequestBody::Read(_) => "read",
                }
            ),
            Msg::Response { id, body } => format!(
                "response #{id} {}",
                match body {
                    ResponseBody::Written { decree, .. } => format!("written d{decree}"),
                    ResponseBody::Read { .. } => "read".into(),
                    ResponseBody::Refused { error, .. } => format!("refused {}", error.code()),
                }
            ),
            Msg::QueryConfigs => "query-configs".into(),
            Msg::Configs { .. } => "configs".into(),
            Msg::DupProgress { reports, incoming } => {
                format!("dup-progress n={} incoming={}", reports.len(), incoming.len())
            }
            Msg::DupLinks { purge_below, .. } => format!("dup-links purge<{purge_below}"),
            Msg::DupBatch { id, gpid, puts, header, .. } => format!(
                "dup-batch #{id} {gpid} n={} w={}{}",
                puts.len(),
                header.replicated_up_to,
                if header.full_sync { " full-sync" } else { "" }
            ),
            Msg::DupAck { id, result } => match result {
                Ok(lost) => format!("dup-ack #{id} superseded={lost}"),
                Err(e) => format!("dup-refused #{id} {e}"),
            },
            Msg::Dr(m) => m.kind(),
        }
    }
}

/// Reachability and message fate.
#[derive(Debug, Default)]
pub struct Network {
    /// Current partitions by id: the directed links each one cuts.
    partitions: BTreeMap<u64, BTreeSet<(Addr, Addr)>>,
    next_partition: u64,
    /// While false (the heal phase), no drops, duplicates or slow messages.
    pub faulty: bool,
}

/// What happens to one message.
#[derive(Debug, PartialEq, Eq)]
pub enum Fate {
    Drop,
    /// Deliver after these delays (two for a duplicate).
    Deliver(Vec<u64>),
}

impl Network {
    /// A network that starts out faulty (the fault phase).
    pub fn new() -> Network {
        Network { partitions: BTreeMap::new(), next_partition: 1, faulty: true }
    }

    /// Cuts `links` until [`Network::heal`] of the returned id.
    pub fn partition(&mut self, links: BTreeSet<(Addr, Addr)>) -> u64 {
        let id = self.next_partition;
        self.next_partition += 1;
        self.partitions.insert(id, links);
        id
    }

    pub fn heal(&mut self, id: u64) {
        self.partitions.remove(&id);
    }

    pub fn heal_all(&mut self) {
        self.partitions.clear();
    }

    pub fn is_blocked(&self, from: Addr, to: Addr) -> bool {
        self.partitions.values().any(|p| p.contains(&(from, to)))
    }

    pub fn fate(&self, rng: &mut ChaCha8Rng, f: &Faults, from: Addr, to: Addr) -> Fate {
        if self.is_blocked(from, to) {
            return Fate::Drop;
        }
        let delay = |rng: &mut ChaCha8Rng, faulty: bool| {
            if faulty && rng.random_bool(f.slow_chance) {
                rng.random_range(f.slow_delay_us.0..=f.slow_delay_us.1)
            } else {
                rng.random_range(f.delay_us.0..=f.delay_us.1)
            }
        };
        if self.faulty && rng.random_bool(f.drop) {
            return Fate::Drop;
        }
        let mut delays = vec![delay(rng, self.faulty)];
        // Client requests are never duplicated: a real transport (TCP) does not, and a client's
        // retry is a new operation in the history. Replica and meta messages are, because the
        // protocol resends them anyway and must be idempotent.
        let is_client = matches!(from, Addr::Client(_));
        if self.faulty && !is_client && rng.random_bool(f.duplicate) {
            delays.push(delay(rng, true));
        }
        Fate::Deliver(delays)
    }
}

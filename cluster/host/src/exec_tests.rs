//! The executor against a host over an in-memory store and log (the simulator's kind), each
//! test naming what it guards.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use tern_core::mutation::WriteOutcome;
use tern_core::read::ReadResult;
use tern_core::{
    Ballot, ClusterId, ConfigChange, Decree, Error, Gpid, ManualClock, Mutation, NodeId, PartitionConfig,
    Result, Timetag, WriteOp,
};
use tern_duplication::DupRules;
use tern_replica::{
    Action, CheckpointRef, Event, Now, PeerMessage, Replica, ReplicaOptions, Reply, RequestId,
};
use tern_storage::{
    ApplyEntry, LogEntry, MemDisk, MemMutationLog, MemPartitionStore, MutationLog, PartitionStore,
};

use super::*;
use crate::{LogRead, ReplicaHost};

struct TestHost {
    disk: MemDisk,
    store: MemPartitionStore,
    log: MemMutationLog,
    rules: DupRules,
    floor: Option<Decree>,
    fail_apply: bool,
    appended: Vec<Vec<LogEntry>>,
    sent: Vec<(NodeId, PeerMessage)>,
    carried: Vec<(u64, Vec<LogEntry>)>,
    written: Vec<(RequestId, Decree, Result<WriteOutcome>)>,
    troubles: Vec<String>,
}

impl TestHost {
    fn new() -> TestHost {
        let disk = MemDisk::new();
        let store = MemPartitionStore::open(&disk, "/store", Arc::new(ManualClock::new(1_000)));
        let (log, _) = MemMutationLog::open(&disk, "/log");
        TestHost {
            disk,
            store,
            log,
            rules: DupRules::default(),
            floor: None,
            fail_apply: false,
            appended: vec![],
            sent: vec![],
            carried: vec![],
            written: vec![],
            troubles: vec![],
        }
    }

    /// Logs decrees `1..=n` durably and applies `1..=applied` to the store.
    fn with_log(mut self, n: u64, applied: u64) -> TestHost {
        let entries: Vec<LogEntry> = (1..=n).map(entry).collect();
        self.log.append(&entries).unwrap();
        self.log.sync().unwrap();
        let batch: Vec<ApplyEntry<'_>> = entries[..applied as usize].iter().map(ApplyEntry::from).collect();
        self.store.apply_batch(&batch).unwrap();
        self
    }

    fn log_decrees(&self) -> Vec<u64> {
        self.log.read(Decree(1), usize::MAX).unwrap().iter().map(|e| e.decree.0).collect()
    }
}

fn entry(d: u64) -> LogEntry {
    let op = WriteOp::Set { hash_key: vec![d as u8], sort_key: vec![], value: b"v".to_vec(), ttl_secs: 0 };
    LogEntry {
        ballot: Ballot(1),
        decree: Decree(d),
        timetag: Timetag::new(1_000 + d, 0, ClusterId::new(1).unwrap(), false),
        mutation: Mutation::new(vec![op]),
    }
}

impl ReplicaHost for TestHost {
    type Store = MemPartitionStore;

    fn store(&self) -> Result<&MemPartitionStore> {
        Ok(&self.store)
    }
    fn store_mut(&mut self) -> Result<&mut MemPartitionStore> {
        if self.fail_apply {
            return Err(Error::io("write the store", "injected"));
        }
        Ok(&mut self.store)
    }
    fn append(&mut self, entries: Vec<LogEntry>) {
        self.log.append(&entries).unwrap();
        self.appended.push(entries);
    }
    fn read_log(&self, from: Decree, max: usize) -> Result<LogRead> {
        Ok((self.log.decree_range(), self.log.read(from, max)?))
    }
    fn reset_log(&mut self, keep: Vec<LogEntry>) -> Result<()> {
        self.log.reset()?;
        self.append_applied(keep)
    }
    fn append_applied(&mut self, entries: Vec<LogEntry>) -> Result<()> {
        self.log.append(&entries)?;
        self.log.sync()
    }
    fn gc_log(&mut self, below: Decree) {
        self.log.gc_below(below).unwrap();
    }
    fn flush_store(&mut self) -> Result<Decree> {
        self.store.flush()
    }
    fn sync_store(&mut self) -> Result<Decree> {
        self.store.flush()
    }
    fn dup_rules(&self) -> &DupRules {
        &self.rules
    }
    fn dup_log_floor(&self) -> Option<Decree> {
        self.floor
    }
    fn send(&mut self, to: NodeId, msg: PeerMessage) {
        self.sent.push((to, msg));
    }
    fn propose(&mut self, _: Gpid, _: Ballot, _: ConfigChange) {}
    fn make_checkpoint(&mut self) -> Result<CheckpointRef> {
        let decree = self.store.checkpoint(&PathBuf::from("/checkpoint"))?;
        Ok(CheckpointRef { id: 9, decree, timetag: self.store.last_applied_timetag() })
    }
    fn carry_with_checkpoint(&mut self, checkpoint: &CheckpointRef, entries: Vec<LogEntry>) -> Result<()> {
        self.carried.push((checkpoint.id, entries));
        Ok(())
    }
    fn fetch_checkpoint(&mut self, _: NodeId, _: CheckpointRef) {}
    fn write_done(&mut self, req: RequestId, decree: Decree, outcome: Result<WriteOutcome>) {
        self.written.push((req, decree, outcome));
    }
    fn read_done(&mut self, _: RequestId, _: Ballot, _: Result<ReadResult>) {}
    fn refused(&mut self, _: RequestId, _: Error, _: bool) {}
    fn trouble(&mut self, what: String) {
        self.troubles.push(what);
    }
}

#[test]
fn a_log_reset_keeps_the_committed_entries_a_link_still_needs() {
    let mut host = TestHost::new().with_log(8, 6);
    host.floor = Some(Decree(4));
    let mut followups = VecDeque::new();
    execute(&mut host, Action::ResetLog, &mut followups);
    assert_eq!(host.log_decrees(), vec![4, 5, 6], "floor through the applied decree");
    assert!(followups.is_empty() && host.troubles.is_empty(), "{:?}", host.troubles);
    assert!(host.disk.exists(&PathBuf::from("/store")), "the store was flushed first");

    let mut host = TestHost::new().with_log(8, 6);
    execute(&mut host, Action::ResetLog, &mut followups);
    assert!(host.log_decrees().is_empty(), "no link: nothing kept");
}

#[test]
fn a_failed_apply_stops_the_replica_and_never_acknowledges() {
    let mut host = TestHost::new().with_log(2, 2);
    host.fail_apply = true;
    let mut followups = VecDeque::new();
    let replies = vec![Reply { decree: Decree(3), op: 0, req: 7 }];
    execute(&mut host, Action::Apply { entries: vec![entry(3)], replies }, &mut followups);
    assert!(matches!(followups.pop_front(), Some(Event::AppendFailed { .. })));
    let (req, decree, outcome) = &host.written[0];
    assert_eq!((*req, *decree), (7, Decree(3)));
    assert!(matches!(outcome, Err(Error::OutcomeUnknown(_))), "{outcome:?}");
    assert_eq!(host.troubles.len(), 1);
}

#[test]
fn a_learner_behind_the_log_gets_a_checkpoint_carrying_the_links_log() {
    let mut host = TestHost::new().with_log(9, 9);
    host.floor = Some(Decree(5));
    host.log.gc_below(Decree(4)).unwrap(); // the learner needs decree 2: gone
    let mut followups = VecDeque::new();
    let action = Action::SendLearnResponse {
        to: NodeId(2),
        learner_applied: Decree(1),
        through: Decree(9),
        config: PartitionConfig {
            gpid: Gpid::new(1, 0),
            ballot: Ballot(1),
            primary: None,
            secondaries: vec![],
        },
        reign: tern_replica::Reign::default(),
        committed: Decree(9),
    };
    execute(&mut host, action, &mut followups);
    let (to, PeerMessage::LearnResponse { checkpoint: Some(cp), entries, .. }) = &host.sent[0] else {
        panic!("{:?}", host.sent)
    };
    assert_eq!((*to, cp.decree, entries.len()), (NodeId(2), Decree(9), 0));
    let carried: Vec<u64> = host.carried[0].1.iter().map(|e| e.decree.0).collect();
    assert_eq!(carried, vec![5, 6, 7, 8, 9]);
}

/// A learner that logged prepares while it installed a checkpoint still takes the entries the
/// checkpoint carried: the log must not keep a hole the link cannot ship past (found by the
/// simulator once it ran the servers' rule, which dropped them).
#[test]
fn carried_entries_join_a_learners_log_that_already_holds_later_ones() {
    let mut host = TestHost::new();
    host.log.append(&[entry(8), entry(9)]).unwrap();
    keep_carried(&mut host, vec![entry(5), entry(6), entry(7), entry(8)], Decree(7)).unwrap();
    assert_eq!(host.log_decrees(), vec![5, 6, 7, 8, 9]);
}

#[test]
fn the_flush_collects_the_log_below_what_is_durable_and_no_link_needs() {
    let mut host = TestHost::new().with_log(8, 6);
    host.floor = Some(Decree(3));
    flush(&mut host);
    assert_eq!(host.log_decrees(), vec![3, 4, 5, 6, 7, 8]);
    host.floor = None;
    flush(&mut host);
    assert_eq!(host.log_decrees(), vec![7, 8]);
}

/// An atomic op is resolved against the store in its place among the actions, and its result
/// is fed to the replica after the list, which then logs it (here: a primary of one member).
#[test]
fn an_atomic_op_is_resolved_and_its_result_fed_back_after_the_action_list() {
    let mut host = TestHost::new();
    let gpid = Gpid::new(1, 0);
    let mut sm = Replica::new(gpid, NodeId(1), ReplicaOptions::new(ClusterId::new(1).unwrap()), 1_000);
    let now = Now::at(1_000);
    drive(
        &mut host,
        &mut sm,
        now,
        Event::Open {
            applied: Decree::ZERO,
            applied_timetag: Timetag::ZERO,
            applied_ballot: Ballot::ZERO,
            purge_below: Timetag::ZERO,
            log: vec![],
        },
    );
    let config = PartitionConfig { gpid, ballot: Ballot(1), primary: Some(NodeId(1)), secondaries: vec![] };
    drive(&mut host, &mut sm, now, Event::Create { config });
    drive(&mut host, &mut sm, now, Event::Lease { expires_at_ms: 60_000 });
    // The reign's first entry is durable: the primary serves.
    let marker: Vec<_> = host.appended.drain(..).flatten().map(|e| (e.ballot, e.decree)).collect();
    assert_eq!(marker.len(), 1);
    drive(&mut host, &mut sm, now, Event::Appended { entries: marker });
    assert!(sm.is_serving(1_000));
    let incr = WriteOp::Incr {
        hash_key: b"h".to_vec(),
        sort_key: vec![],
        delta: 2,
        ttl: tern_core::mutation::IncrTtl::Keep,
    };
    drive(&mut host, &mut sm, now, Event::ClientWrite { req: 5, op: incr });
    let logged: Vec<&WriteOp> = host.appended.iter().flatten().flat_map(|e| &e.mutation.ops).collect();
    assert!(matches!(logged.as_slice(), [WriteOp::Resolved { .. }]), "{logged:?}");
}

/// A reply naming an op the store returned no outcome for (a broken invariant) is answered
/// as unknown, never acknowledged as done.
#[test]
fn a_missing_outcome_is_never_an_acknowledgement() {
    let mut host = TestHost::new().with_log(2, 2);
    let mut followups = VecDeque::new();
    let replies =
        vec![Reply { decree: Decree(3), op: 0, req: 1 }, Reply { decree: Decree(3), op: 5, req: 2 }];
    execute(&mut host, Action::Apply { entries: vec![entry(3)], replies }, &mut followups);
    assert!(matches!(host.written[0], (1, Decree(3), Ok(WriteOutcome::Done))), "{:?}", host.written);
    assert!(matches!(host.written[1], (2, Decree(3), Err(Error::OutcomeUnknown(_)))), "{:?}", host.written);
    assert_eq!(host.troubles.len(), 1, "{:?}", host.troubles);
}

#[test]
fn a_primary_purges_nothing_its_own_links_have_not_shipped() {
    let mut host = TestHost::new().with_log(10, 10);
    let below = Timetag::at_physical_ms(1_000_000);
    assert_eq!(within_links(&host, below), below, "no link");
    host.floor = Some(Decree(4));
    assert_eq!(within_links(&host, below), entry(4).timetag, "decree 4 is not shipped yet");
    assert_eq!(within_links(&host, Timetag::at_physical_ms(2)), Timetag::at_physical_ms(2), "already below");
    host.floor = Some(Decree(11));
    assert_eq!(within_links(&host, below), below, "everything stored is shipped");
    host.floor = Some(Decree::ZERO);
    assert_eq!(within_links(&host, below), Timetag::ZERO, "a link that has not started may copy");
}

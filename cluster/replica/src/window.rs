//! The prepare window: entries after the committed decree, with their replication state.

use std::collections::{BTreeMap, BTreeSet};

use tern_core::{Ballot, Decree, NodeId, Timetag};
use tern_storage::LogEntry;

#[derive(Clone, Debug)]
pub(crate) struct Slot {
    pub entry: LogEntry,
    /// Durable in this replica's own log.
    pub durable: bool,
    /// Peers that acknowledged this very entry (same ballot) as durable.
    pub acked: BTreeSet<NodeId>,
    /// When the primary first sent it (for the ack timeout).
    pub first_sent_ms: u64,
}

impl Slot {
    pub fn new(entry: LogEntry, now_ms: u64) -> Slot {
        Slot { entry, durable: false, acked: BTreeSet::new(), first_sent_ms: now_ms }
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Window {
    slots: BTreeMap<u64, Slot>,
}

impl Window {
    pub fn get(&self, d: Decree) -> Option<&Slot> {
        self.slots.get(&d.0)
    }

    pub fn get_mut(&mut self, d: Decree) -> Option<&mut Slot> {
        self.slots.get_mut(&d.0)
    }

    pub fn insert(&mut self, slot: Slot) {
        self.slots.insert(slot.entry.decree.0, slot);
    }

    pub fn remove(&mut self, d: Decree) -> Option<Slot> {
        self.slots.remove(&d.0)
    }

    pub fn clear(&mut self) {
        self.slots.clear();
    }

    pub fn last(&self) -> Option<Decree> {
        self.slots.keys().next_back().map(|&d| Decree(d))
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Slot> {
        self.slots.values()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Slot> {
        self.slots.values_mut()
    }

    /// Drops every slot at or below `d`.
    pub fn drop_through(&mut self, d: Decree) {
        self.slots = self.slots.split_off(&(d.0 + 1));
    }

    /// Drops every slot after the first gap above `base` (entries after a gap were never
    /// committed: commits are a prefix, and every member holds every committed entry).
    pub fn truncate_at_gap(&mut self, base: Decree) {
        let cut =
            (base.0 + 1..).zip(self.slots.keys()).find(|(expect, d)| *d != expect).map(|(expect, _)| expect);
        if let Some(c) = cut {
            self.slots.split_off(&c);
        }
    }

    /// The largest decree `d` such that every decree in `(base, d]` is here and durable.
    pub fn durable_through(&self, base: Decree) -> Decree {
        let mut through = base.0;
        for (&d, slot) in self.slots.range(base.0 + 1..) {
            if d != through + 1 || !slot.durable {
                break;
            }
            through = d;
        }
        Decree(through)
    }

    pub fn max_timetag(&self) -> Timetag {
        self.slots.values().map(|s| s.entry.timetag).max().unwrap_or_default()
    }

    pub fn max_ballot(&self) -> Ballot {
        self.slots.values().map(|s| s.entry.ballot).max().unwrap_or_default()
    }
}

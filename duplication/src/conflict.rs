//! Conflicts between duplicated writes and the receiving cluster's records: what counts as one
//! ([`judge_put`], decided on the receiving side from the store's apply outcome), and the
//! bounded queue in which a sending server keeps journal entries until a beacon carries them to
//! its meta server ([`ConflictQueue`]).
//!
//! Both kinds are journaled by the link's own (sending) cluster: a shipped write that lost
//! last-writer-wins, and a record written in the receiving cluster itself that a shipped write
//! replaced (a local write there that lost). The second kind is decided by the stored record's
//! timetag, whose low bits name the cluster that wrote it: timetags cannot tell a concurrent
//! write from one made after the writer had seen the record, so in a two-way link a write that
//! deliberately updates a record the other side wrote counts too.

use std::collections::VecDeque;

use tern_core::mutation::WriteOutcome;
use tern_core::{ClusterId, Timetag};

/// What one duplicated put did on the receiving side, for the conflict journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutVerdict {
    /// Written, over nothing or over a record that did not come from the receiving cluster.
    Applied,
    /// Not written: the stored record (timetag `stored`) is newer.
    Lost { stored: Timetag },
    /// Written over a record the receiving cluster wrote itself (timetag `stored`), now gone.
    Overwrote { stored: Timetag },
}

/// Judges the apply outcome of a duplicated put on a replica of cluster `receiver`.
pub fn judge_put(outcome: &WriteOutcome, receiver: ClusterId) -> PutVerdict {
    match *outcome {
        WriteOutcome::Superseded { stored } => PutVerdict::Lost { stored },
        WriteOutcome::Replaced { stored } if stored.cluster() == receiver => PutVerdict::Overwrote { stored },
        _ => PutVerdict::Applied,
    }
}

/// How many journal entries a server keeps per (link, partition) for the next beacon: the meta
/// server's journal keeps 100 per link by default, so more would only be dropped there.
pub const PENDING_CONFLICTS: usize = 100;

/// A bounded FIFO of journal entries waiting for a beacon. Full, it drops the oldest and counts
/// it. Entries have sequence numbers, so that the beacon that carried a snapshot removes
/// exactly what it carried, however many were dropped or added meanwhile.
#[derive(Clone, Debug)]
pub struct ConflictQueue<T> {
    items: VecDeque<T>,
    /// The sequence number of `items[0]`.
    front_seq: u64,
    capacity: usize,
    dropped: u64,
}

impl<T: Clone> ConflictQueue<T> {
    pub fn new(capacity: usize) -> ConflictQueue<T> {
        ConflictQueue { items: VecDeque::new(), front_seq: 0, capacity: capacity.max(1), dropped: 0 }
    }

    pub fn push(&mut self, item: T) {
        if self.items.len() == self.capacity {
            self.items.pop_front();
            self.front_seq += 1;
            self.dropped += 1;
        }
        self.items.push_back(item);
    }

    /// Everything waiting, oldest first, and the sequence number just past it: give that to
    /// [`ConflictQueue::carried`] once the snapshot has reached the meta server.
    pub fn snapshot(&self) -> (Vec<T>, u64) {
        (self.items.iter().cloned().collect(), self.end_seq())
    }

    /// Everything before sequence number `end` reached the meta server.
    pub fn carried(&mut self, end: u64) {
        while self.front_seq < end && self.items.pop_front().is_some() {
            self.front_seq += 1;
        }
    }

    /// Entries dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn end_seq(&self) -> u64 {
        self.front_seq + self.items.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tt(cluster: u8) -> Timetag {
        Timetag::new(1_000, 0, ClusterId::new(cluster).unwrap(), false)
    }

    #[test]
    fn a_put_that_lost_or_replaced_a_record_of_the_receiver_is_a_conflict() {
        let me = ClusterId::new(2).unwrap();
        assert_eq!(
            judge_put(&WriteOutcome::Superseded { stored: tt(2) }, me),
            PutVerdict::Lost { stored: tt(2) }
        );
        assert_eq!(
            judge_put(&WriteOutcome::Superseded { stored: tt(3) }, me),
            PutVerdict::Lost { stored: tt(3) }
        );
        assert_eq!(
            judge_put(&WriteOutcome::Replaced { stored: tt(2) }, me),
            PutVerdict::Overwrote { stored: tt(2) }
        );
        let local_delete = tt(2).with_delete(true);
        assert_eq!(
            judge_put(&WriteOutcome::Replaced { stored: local_delete }, me),
            PutVerdict::Overwrote { stored: local_delete },
            "a local delete that a remote write undoes"
        );
        // Replacing the sender's own older write (or a third cluster's) is how a link catches
        // up, not a conflict; nor is a put that found nothing.
        assert_eq!(judge_put(&WriteOutcome::Replaced { stored: tt(1) }, me), PutVerdict::Applied);
        assert_eq!(judge_put(&WriteOutcome::Done, me), PutVerdict::Applied);
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_it() {
        let mut q = ConflictQueue::new(3);
        for i in 0..5 {
            q.push(i);
        }
        assert_eq!(q.dropped(), 2);
        assert_eq!(q.snapshot(), (vec![2, 3, 4], 5));
    }

    #[test]
    fn a_beacon_removes_exactly_what_it_carried() {
        let mut q = ConflictQueue::new(3);
        q.push(1);
        q.push(2);
        let (sent, end) = q.snapshot();
        assert_eq!(sent, vec![1, 2]);
        // While the beacon is under way: two more, one of the carried ones is dropped.
        q.push(3);
        q.push(4);
        assert_eq!(q.dropped(), 1);
        q.carried(end);
        assert_eq!(q.snapshot().0, vec![3, 4], "what the beacon did not carry stays");
        q.carried(end);
        assert_eq!(q.len(), 2, "carrying twice removes nothing more");
        q.carried(u64::MAX);
        assert!(q.is_empty());
    }
}

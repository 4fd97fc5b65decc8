//! Admission of a batch of duplicated puts at the receiving primary: the one place that decides
//! whether a batch another cluster shipped may be written here.
//!
//! A batch is refused whole (nothing of it is written) when any put is not a put, carries no
//! timetag, claims another origin than the sending cluster, does not belong to the partition
//! it was sent to, or carries a timetag further ahead of the receiver's clock than the maximum
//! clock offset (`CLOCK_AHEAD`: one of the two clocks is wrong, and a timetag from the future
//! would win every last-writer-wins decision until the receiver's clock caught up), and when
//! the sender is this cluster itself (two clusters of a link must have
//! different ids) — each of these is a shipper bug or a misconfiguration, and writing part of
//! the batch would hide it. Admitted puts then go through the partition's primary like client
//! writes; the replica checks their age against its retention and moves its clock past them
//! (`tern_replica`'s `admit_duplicated`), and every replica applies them by last-writer-wins.

use tern_core::{ClusterId, Error, Gpid, Result, Timetag, WriteOp, key::escape, partition_of};

use crate::DupRules;

/// A batch as it arrived from another cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct IncomingBatch {
    /// The partition it was sent to.
    pub gpid: Gpid,
    /// The sending cluster's id (every put's timetag must carry it).
    pub from_cluster: u32,
    /// The receiving table's partition count, as the sender routed by.
    pub partition_count: u32,
    pub puts: Vec<WriteOp>,
}

impl Receiver {
    /// The rules every put arriving from elsewhere obeys, duplicated or restored: its hash key
    /// belongs to the partition it was sent to under `partition_count`, and its timetag is not
    /// further ahead of this cluster's wall clock than the maximum offset (`CLOCK_AHEAD`).
    pub fn check_put(
        &self,
        gpid: Gpid,
        hash_key: &[u8],
        t: Timetag,
        partition_count: u32,
        now_wall_ms: u64,
    ) -> Result<()> {
        let p = partition_of(hash_key, partition_count);
        if p != gpid.partition {
            return Err(Error::InvalidArgument(format!(
                "hash key {} belongs to partition {} of {partition_count}, not to {gpid}",
                escape(hash_key, 64),
                p.0
            )));
        }
        let ahead_ms = t.physical_ms().saturating_sub(now_wall_ms);
        if ahead_ms > self.max_clock_offset_ms {
            return Err(Error::ClockAhead {
                gpid,
                from_cluster: t.cluster().get(),
                ahead_ms,
                max_ms: self.max_clock_offset_ms,
            });
        }
        Ok(())
    }
}

/// What the receiver knows about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receiver {
    pub own_cluster: ClusterId,
    /// The receiving table's partition count, where the receiver knows it (the simulator
    /// does); `None` trusts the sender's count for routing checks.
    pub own_partitions: Option<u32>,
    /// A batch holding a timetag further ahead of the receiver's wall clock than this is
    /// refused (`CLOCK_AHEAD`): one of the two clocks is wrong.
    pub max_clock_offset_ms: u64,
}

/// An admitted batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Admitted {
    pub puts: Vec<WriteOp>,
}

impl DupRules {
    /// Admits `batch` at `receiver` (wall clock `now_wall_ms`), or says why not.
    pub fn admit(&self, receiver: &Receiver, batch: IncomingBatch, now_wall_ms: u64) -> Result<Admitted> {
        let IncomingBatch { gpid, from_cluster, partition_count, puts } = batch;
        let own = u32::from(receiver.own_cluster.get());
        if from_cluster == own {
            return Err(Error::InvalidArgument(format!(
                "duplicated writes from cluster id {own}, which is this cluster's own id: \
                 two clusters of a link must have different ids"
            )));
        }
        if partition_count == 0 || gpid.partition.0 >= partition_count {
            return Err(Error::InvalidArgument(format!(
                "duplicated writes for {gpid} routed by a partition count of {partition_count}"
            )));
        }
        if let Some(mine) = receiver.own_partitions.filter(|n| *n != partition_count) {
            return Err(Error::InvalidArgument(format!(
                "duplicated writes for {gpid} routed by {partition_count} partitions; the table has {mine}"
            )));
        }
        let mut admitted = Admitted { puts: Vec::with_capacity(puts.len()) };
        for op in puts {
            let WriteOp::Put { hash_key, timetag, .. } = &op else {
                return Err(Error::InvalidArgument(format!(
                    "a duplicated batch for {gpid} holds a {} (only puts are shipped)",
                    op.name()
                )));
            };
            let Some(t) = timetag else {
                return Err(Error::InvalidArgument(format!(
                    "a duplicated put for {gpid} without its origin timetag"
                )));
            };
            if u32::from(t.cluster().get()) != from_cluster {
                return Err(Error::InvalidArgument(format!(
                    "a put from cluster {from_cluster} carries a timetag of cluster {}: writes that \
                     arrived by duplication are never shipped again",
                    t.cluster().get()
                )));
            }
            receiver.check_put(gpid, hash_key, *t, partition_count, now_wall_ms)?;
            admitted.puts.push(op);
        }
        Ok(admitted)
    }
}

#[cfg(test)]
#[path = "receive_tests.rs"]
mod tests;

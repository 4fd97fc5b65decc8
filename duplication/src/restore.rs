//! Admission of a batch of a backup's records into a table being restored from it
//! (`tern backup restore`, docs/backup.md "Restore"): the one place that decides whether such a
//! batch may be written.
//!
//! A restore is not a duplication link: its records carry the timetags they were written with,
//! of whatever clusters wrote them (this one included), so the link rules about the sending
//! cluster do not apply. What stays is every rule that keeps last-writer-wins and routing
//! honest. A batch is refused whole, writing nothing, when the table is not being restored from
//! the batch's backup (a restore never writes into a table that serves, or into another
//! restore), when it was routed by another partition count than the table's own, when an op is
//! not a put or has no timetag, when a key does not hash to the partition, or when a timetag is
//! further ahead of the receiver's clock than the maximum clock offset (`CLOCK_AHEAD`; a
//! timetag from the future would win every later write until the clock caught up). Admitted
//! puts go through the primary like duplicated ones: its clock moves past them, and every
//! replica applies them by last-writer-wins, so re-sending a batch changes nothing.

use tern_core::{Error, Gpid, Result, WriteOp};

use crate::{Admitted, Receiver};

/// A batch of a backup's records as it arrived.
#[derive(Clone, Debug, PartialEq)]
pub struct RestoreBatch {
    /// The partition it was sent to.
    pub gpid: Gpid,
    /// The partition count the restore tool routed by.
    pub partition_count: u32,
    /// The backup the records come from.
    pub backup: String,
    pub puts: Vec<WriteOp>,
}

/// Admits `batch` at `receiver` (wall clock `now_wall_ms`), where the receiving table is
/// being restored from `restoring` (`None`: it is not, or this server has not heard of it).
pub fn admit_restore(
    receiver: &Receiver,
    restoring: Option<&str>,
    batch: RestoreBatch,
    now_wall_ms: u64,
) -> Result<Admitted> {
    let RestoreBatch { gpid, partition_count, backup, puts } = batch;
    let Some(own_partitions) = receiver.own_partitions else {
        // The table is new and this server's last beacon answer did not name it yet.
        return Err(Error::Unavailable(format!(
            "this server has not yet heard of table {} (restoring {gpid}); try again",
            gpid.table.0
        )));
    };
    match restoring {
        Some(b) if b == backup => {}
        Some(b) => {
            return Err(Error::InvalidArgument(format!(
                "records of backup {backup} for {gpid}, but its table is being restored from backup {b}"
            )));
        }
        None => {
            return Err(Error::InvalidArgument(format!(
                "records of backup {backup} for {gpid}, but its table is not being restored: a restore \
                 writes only into the table it created"
            )));
        }
    }
    if partition_count != own_partitions || gpid.partition.0 >= own_partitions {
        return Err(Error::InvalidArgument(format!(
            "restored records for {gpid} routed by {partition_count} partitions; the table has {own_partitions}"
        )));
    }
    let mut admitted = Admitted { puts: Vec::with_capacity(puts.len()) };
    for op in puts {
        let WriteOp::Put { hash_key, timetag, .. } = &op else {
            return Err(Error::InvalidArgument(format!(
                "a restore batch for {gpid} holds a {} (only puts are restored)",
                op.name()
            )));
        };
        let Some(t) = timetag else {
            return Err(Error::InvalidArgument(format!(
                "a restored put for {gpid} without the timetag it was written with"
            )));
        };
        receiver.check_put(gpid, hash_key, *t, own_partitions, now_wall_ms)?;
        admitted.puts.push(op);
    }
    Ok(admitted)
}

#[cfg(test)]
mod tests {
    use tern_core::{ClusterId, ErrorCode, Timetag, partition_of};

    use super::*;

    const NOW: u64 = 100 * 24 * 3600 * 1000;

    fn receiver(own_partitions: Option<u32>) -> Receiver {
        Receiver { own_cluster: ClusterId::new(2).unwrap(), own_partitions, max_clock_offset_ms: 500 }
    }

    fn key_of(p: u32, n: u32) -> Vec<u8> {
        (0u32..).map(|i| format!("k{i}").into_bytes()).find(|k| partition_of(k, n).0 == p).unwrap()
    }

    fn put(hash_key: Vec<u8>, physical_ms: u64, cluster: u8) -> WriteOp {
        WriteOp::Put {
            hash_key,
            sort_key: b"s".to_vec(),
            value: Some(b"v".to_vec()),
            expire_ts: 0,
            timetag: Some(Timetag::new(physical_ms, 0, ClusterId::new(cluster).unwrap(), false)),
        }
    }

    fn batch(puts: Vec<WriteOp>) -> RestoreBatch {
        RestoreBatch { gpid: Gpid::new(1, 3), partition_count: 4, backup: "B1".into(), puts }
    }

    #[test]
    fn puts_of_several_clusters_including_this_one_are_admitted_unchanged() {
        let puts =
            vec![put(key_of(3, 4), NOW - 9, 1), put(key_of(3, 4), NOW - 5, 2), put(key_of(3, 4), 1, 7)];
        let a = admit_restore(&receiver(Some(4)), Some("B1"), batch(puts.clone()), NOW).unwrap();
        assert_eq!(a, Admitted { puts });
    }

    #[test]
    fn a_table_that_is_not_restoring_from_this_backup_takes_nothing() {
        let puts = vec![put(key_of(3, 4), NOW, 1)];
        let e = admit_restore(&receiver(Some(4)), None, batch(puts.clone()), NOW).unwrap_err();
        assert!(e.to_string().contains("not being restored"), "{e}");
        let e = admit_restore(&receiver(Some(4)), Some("B0"), batch(puts.clone()), NOW).unwrap_err();
        assert!(e.to_string().contains("from backup B0"), "{e}");
        // Not heard of yet: worth a retry, not a failure.
        let e = admit_restore(&receiver(None), None, batch(puts), NOW).unwrap_err();
        assert!(e.is_retryable(), "{e}");
    }

    #[test]
    fn wrong_routing_missing_timetags_and_other_ops_refuse_the_whole_batch() {
        let ok = put(key_of(3, 4), NOW, 1);
        let r = receiver(Some(4));
        let e = admit_restore(&r, Some("B1"), RestoreBatch { partition_count: 8, ..batch(vec![]) }, NOW);
        assert!(e.unwrap_err().to_string().contains("routed by 8 partitions"));
        let e = admit_restore(&r, Some("B1"), batch(vec![ok.clone(), put(key_of(2, 4), NOW, 1)]), NOW);
        assert!(e.unwrap_err().to_string().contains("belongs to partition 2 of 4"));
        let WriteOp::Put { hash_key, sort_key, value, expire_ts, .. } = ok.clone() else { unreachable!() };
        let untagged = WriteOp::Put { hash_key, sort_key, value, expire_ts, timetag: None };
        let e = admit_restore(&r, Some("B1"), batch(vec![ok.clone(), untagged]), NOW);
        assert!(e.unwrap_err().to_string().contains("without the timetag"));
        let del = WriteOp::Del { hash_key: key_of(3, 4), sort_key: vec![] };
        let e = admit_restore(&r, Some("B1"), batch(vec![del]), NOW);
        assert!(e.unwrap_err().to_string().contains("only puts"));
    }

    #[test]
    fn a_timetag_from_the_future_is_refused() {
        let e =
            admit_restore(&receiver(Some(4)), Some("B1"), batch(vec![put(key_of(3, 4), NOW + 501, 1)]), NOW)
                .unwrap_err();
        assert_eq!(e.code(), ErrorCode::ClockAhead);
        assert!(
            admit_restore(&receiver(Some(4)), Some("B1"), batch(vec![put(key_of(3, 4), NOW + 500, 1)]), NOW)
                .is_ok()
        );
    }
}

//! Integration tests of tern-storage: the conformance suite and the model test on the in-memory
//! store.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod lww;
mod purge;
mod resolve;

use std::path::Path;
use std::sync::Arc;

use tern_core::ManualClock;
use tern_storage::testing::{StoreHarness, T0_MS};
use tern_storage::{MemDisk, MemPartitionStore};

struct MemHarness {
    disk: MemDisk,
    clock: Arc<ManualClock>,
}

impl MemHarness {
    fn new() -> MemHarness {
        MemHarness { disk: MemDisk::new(), clock: Arc::new(ManualClock::new(T0_MS)) }
    }
}

impl StoreHarness for MemHarness {
    type Store = MemPartitionStore;

    fn open(&self, dir: &Path) -> MemPartitionStore {
        MemPartitionStore::open(&self.disk, dir, self.clock.clone())
    }

    fn open_from_checkpoint(&self, checkpoint: &Path, dir: &Path) -> MemPartitionStore {
        MemPartitionStore::open_from_checkpoint(&self.disk, checkpoint, dir, self.clock.clone())
            .expect("open from checkpoint")
    }

    fn crash(&self, store: MemPartitionStore) -> bool {
        store.crash();
        true
    }

    fn clock(&self) -> &Arc<ManualClock> {
        &self.clock
    }
}

mod conformance {
    use super::MemHarness;
    tern_storage::partition_store_conformance!(MemHarness::new(), model_cases = 256);
}

mod logs {
    use std::path::Path;

    use tern_storage::MemDisk;
    use tern_storage::log::{
        FileLogConfig, FileMutationLog, MemMutationLog, MutationLog, Recovery, SyncPolicy,
    };
    use tern_storage::testing::log_conformance::{LogHarness, entry};

    pub struct MemLogs(MemDisk);

    impl LogHarness for MemLogs {
        type Log = MemMutationLog;
        fn open(&self, dir: &Path) -> (MemMutationLog, Recovery) {
            MemMutationLog::open(&self.0, dir)
        }
        fn power_loss(&self, log: MemMutationLog, _torn_bytes: u64) {
            drop(log);
        }
    }

    /// Small segments so every case crosses segment boundaries.
    pub struct FileLogs;

    impl LogHarness for FileLogs {
        type Log = FileMutationLog;
        fn open(&self, dir: &Path) -> (FileMutationLog, Recovery) {
            FileMutationLog::open(dir, FileLogConfig { segment_bytes: 600, ..FileLogConfig::default() })
                .unwrap()
        }
        fn power_loss(&self, log: FileMutationLog, torn_bytes: u64) {
            log.simulate_power_loss(torn_bytes);
        }
    }

    mod mem_log {
        tern_storage::mutation_log_conformance!(super::MemLogs(tern_storage::MemDisk::new()));
    }

    mod file_log {
        tern_storage::mutation_log_conformance!(super::FileLogs);
    }

    /// Appends gathered in memory and written 700 bytes at a time (the shared log's private
    /// logs do this with 64 KiB): the same contract, crashes included.
    pub struct BufferedFileLogs;

    impl LogHarness for BufferedFileLogs {
        type Log = FileMutationLog;
        fn open(&self, dir: &Path) -> (FileMutationLog, Recovery) {
            FileMutationLog::open(dir, buffered(2000, 700)).unwrap()
        }
        fn power_loss(&self, log: FileMutationLog, torn_bytes: u64) {
            log.simulate_power_loss(torn_bytes);
        }
    }

    fn buffered(segment_bytes: u64, write_buffer_bytes: usize) -> FileLogConfig {
        FileLogConfig { segment_bytes, write_buffer_bytes, ..FileLogConfig::default() }
    }

    mod buffered_file_log {
        tern_storage::mutation_log_conformance!(super::BufferedFileLogs);
    }

    fn big() -> FileLogConfig {
        FileLogConfig::default()
    }

    #[test]
    fn one_sync_covers_everything_appended_meanwhile() {
        let d = tempfile::tempdir().unwrap();
        let (mut log, _) = FileMutationLog::open(d.path(), big()).unwrap();
        let before = log.stats();
        for i in 1..=100 {
            log.append(&[entry(1, i)]).unwrap();
        }
        log.sync().unwrap();
        assert_eq!(log.stats().syncs - before.syncs, 1);
        assert_eq!(log.stats().fsyncs - before.fsyncs, 1, "one fsync for 100 appends");
        log.sync().unwrap();
        assert_eq!(log.stats().syncs - before.syncs, 1, "nothing to sync, no fsync");

        let d2 = tempfile::tempdir().unwrap();
        let cfg = FileLogConfig { sync: SyncPolicy::EveryAppend, ..big() };
        let (mut every, _) = FileMutationLog::open(d2.path(), cfg).unwrap();
        let before = every.stats();
        for i in 1..=3 {
            every.append(&[entry(1, i)]).unwrap();
        }
        assert_eq!(every.stats().syncs - before.syncs, 3);
    }

    #[test]
    fn a_sync_job_run_elsewhere_makes_what_came_before_it_durable() {
        sync_job_case(|| FileLogConfig { segment_bytes: 600, ..big() });
        // Buffered appends are written out when the job is made: it covers them too.
        sync_job_case(|| buffered(600, 4096));
    }

    fn sync_job_case(small: impl Fn() -> FileLogConfig) {
        let d = tempfile::tempdir().unwrap();
        let (mut log, _) = FileMutationLog::open(d.path(), small()).unwrap();
        // Enough to cross segments: the job covers every unsynced one, and the directory.
        for i in 1..=20 {
            log.append(&[entry(1, i)]).unwrap();
        }
        let job = log.sync_job().unwrap().expect("unsynced appends need a job");
        // Appended after the job was made: not covered by it.
        log.append(&[entry(1, 21)]).unwrap();
        std::thread::scope(|s| s.spawn(|| job.run().unwrap()).join().unwrap());
        log.mark_synced(&job);
        log.simulate_power_loss(0);
        let (log, _) = FileMutationLog::open(d.path(), small()).unwrap();
        let got = log.read(tern_core::Decree(1), usize::MAX).unwrap();
        assert_eq!(got, (1..=20).map(|i| entry(1, i)).collect::<Vec<_>>());

        // A job marked on a log it was not made by changes nothing there.
        let (mut other, _) = FileMutationLog::open(&d.path().join("other"), small()).unwrap();
        other.append(&[entry(1, 1)]).unwrap();
        let (mut log, _) = FileMutationLog::open(d.path(), small()).unwrap();
        log.append(&[entry(1, 21)]).unwrap();
        other.mark_synced(&log.sync_job().unwrap().unwrap());
        other.simulate_power_loss(0);
        let (other, _) = FileMutationLog::open(&d.path().join("other"), small()).unwrap();
        assert!(other.read(tern_core::Decree(1), usize::MAX).unwrap().is_empty());
        // Nothing unsynced: no job.
        log.sync().unwrap();
        assert!(log.sync_job().unwrap().is_none());
    }

    #[test]
    fn buffered_appends_are_readable_before_they_reach_the_file() {
        let d = tempfile::tempdir().unwrap();
        let (mut log, _) = FileMutationLog::open(d.path(), buffered(1 << 20, 256)).unwrap();
        log.append(&[entry(1, 1), entry(1, 2)]).unwrap();
        let file = &segments(d.path())[0];
        assert_eq!(std::fs::metadata(file).unwrap().len(), 16, "still buffered: only the header on disk");
        assert_eq!(log.read(tern_core::Decree(1), usize::MAX).unwrap(), vec![entry(1, 1), entry(1, 2)]);
        // Past the buffer size: written out, and still read back the same.
        let many: Vec<_> = (3..=40).map(|i| entry(1, i)).collect();
        log.append(&many).unwrap();
        assert!(std::fs::metadata(file).unwrap().len() > 16 + 256);
        assert_eq!(log.read(tern_core::Decree(1), usize::MAX).unwrap().len(), 40);
        // Closing writes the rest out (no fsync needed to be complete after a clean stop).
        log.append(&[entry(1, 41)]).unwrap();
        drop(log);
        let (log, rec) = FileMutationLog::open(d.path(), buffered(1 << 20, 256)).unwrap();
        assert_eq!(rec.truncated_bytes, 0);
        assert_eq!(log.read(tern_core::Decree(41), 1).unwrap(), vec![entry(1, 41)]);
    }

    fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        v.sort();
        v
    }

    #[test]
    fn damage_in_the_middle_is_refused_not_truncated() {
        let d = tempfile::tempdir().unwrap();
        let (mut log, _) = FileMutationLog::open(d.path(), big()).unwrap();
        log.append(&(1..=10).map(|i| entry(1, i)).collect::<Vec<_>>()).unwrap();
        log.sync().unwrap();
        drop(log);
        let seg = &segments(d.path())[0];
        let mut bytes = std::fs::read(seg).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(seg, &bytes).unwrap();
        let err = FileMutationLog::open(d.path(), big()).unwrap_err();
        assert!(err.is_fatal(), "{err}");
        assert!(err.to_string().contains("not a torn write"), "{err}");
        assert_eq!(std::fs::read(seg).unwrap(), bytes, "nothing was truncated");
    }

    #[test]
    fn a_zero_filled_tail_is_cut_and_reported() {
        let d = tempfile::tempdir().unwrap();
        let (mut log, _) = FileMutationLog::open(d.path(), big()).unwrap();
        log.append(&[entry(1, 1), entry(1, 2)]).unwrap();
        log.sync().unwrap();
        drop(log);
        let seg = &segments(d.path())[0];
        let mut bytes = std::fs::read(seg).unwrap();
        bytes.extend_from_slice(&[0u8; 4096]);
        std::fs::write(seg, &bytes).unwrap();
        let (log, rec) = FileMutationLog::open(d.path(), big()).unwrap();
        assert_eq!(rec.truncated_bytes, 4096);
        assert!(rec.truncation_reason.unwrap().contains("zero-filled"));
        assert_eq!(log.read(tern_core::Decree(0), 10).unwrap(), vec![entry(1, 1), entry(1, 2)]);
    }

    #[test]
    fn a_headerless_trailing_segment_is_removed() {
        let d = tempfile::tempdir().unwrap();
        let (mut log, _) = FileMutationLog::open(d.path(), big()).unwrap();
        log.append(&[entry(1, 1)]).unwrap();
        log.sync().unwrap();
        drop(log);
        std::fs::write(d.path().join("0000000002.tlog"), b"TERN").unwrap();
        let (log, rec) = FileMutationLog::open(d.path(), big()).unwrap();
        assert!(rec.truncation_reason.unwrap().contains("no complete header"));
        assert_eq!(log.read(tern_core::Decree(0), 10).unwrap(), vec![entry(1, 1)]);
        assert_eq!(segments(d.path()).len(), 1);
    }
}

use std::process::Command;

use tern_core::mutation::WriteOutcome;
use tern_core::{Decree, Mutation};
use tern_rocks::RocksPartitionStore;
use tern_storage::PartitionStore;
use tern_storage::testing::{
    StoreHarness, T0_MS, apply_next, apply_purge_horizon, del, put_from, set, set_ttl, timetag_now,
};

use crate::harness::RocksHarness;

const CRASH_DIR_ENV: &str = "TERN_ROCKS_CRASH_CHILD_DIR";

/// Runs the test `name` of this binary alone in a child process with `env` set to a new
/// directory (which makes it do its work instead of returning), checks that it died by `abort`,
/// and opens the store it left there.
fn store_after_abort(name: &str, env: &str) -> (tempfile::TempDir, RocksPartitionStore) {
    let d = tempfile::tempdir().unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(env, d.path())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must die by abort, not exit cleanly");
    let s = RocksHarness::new().open(d.path());
    (d, s)
}

/// Runs only as the child of `crash_keeps_only_flushed_state`: writes, flushes part of it,
/// writes more and aborts without closing.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CRASH_DIR_ENV) else { return };
    let h = RocksHarness::new();
    let mut s = h.open(dir.as_ref());
    apply_next(&mut s, h.clock(), vec![set(b"h", b"a", b"1")]);
    assert_eq!(s.flush().unwrap(), Decree(1));
    apply_next(&mut s, h.clock(), vec![set(b"h", b"b", b"2")]);
    apply_next(&mut s, h.clock(), vec![set(b"h", b"a", b"overwritten")]);
    assert_eq!(s.durable_decree().unwrap(), Decree(1), "unflushed decrees are not durable");
    std::process::abort();
}

#[test]
fn crash_keeps_only_flushed_state() {
    let (_dir, s) = store_after_abort("rocks_specific::crash_child", CRASH_DIR_ENV);
    assert_eq!(s.last_applied_decree(), Decree(1), "the store comes back at its flushed decree");
    assert_eq!(s.durable_decree().unwrap(), Decree(1));
    assert_eq!(s.get(b"h", b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(s.get(b"h", b"b").unwrap(), None);
}

/// Runs only as the child of `flush_racing_writes_keeps_decree_and_data_together`: starts a
/// flush in the background, goes on writing while it runs (the applied mark is rewritten in
/// place by every batch), waits until the flush has persisted something and aborts.
#[test]
fn racing_flush_child() {
    let Ok(dir) = std::env::var(RACING_DIR_ENV) else { return };
    let h = RocksHarness::new();
    let mut s = h.open(dir.as_ref());
    for i in 0..RACING_WRITES {
        if i == RACING_WRITES / 2 {
            s.request_flush().unwrap();
        }
        apply_next(&mut s, h.clock(), vec![set(b"h", format!("k{i:05}").as_bytes(), b"v")]);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while s.durable_decree().unwrap() == Decree(0) {
        assert!(std::time::Instant::now() < deadline, "the flush persisted nothing in 30 s");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::process::abort();
}

const RACING_DIR_ENV: &str = "TERN_ROCKS_RACING_CHILD_DIR";
const RACING_WRITES: u64 = 20_000;

/// A crash leaves exactly the writes up to the persisted decree: never a decree without its
/// data, never data past its decree, however the flush and the writes interleaved.
#[test]
fn flush_racing_writes_keeps_decree_and_data_together() {
    let (_dir, s) = store_after_abort("rocks_specific::racing_flush_child", RACING_DIR_ENV);
    let decree = s.last_applied_decree().0;
    assert!(
        decree >= RACING_WRITES / 2,
        "the flush started after {} writes persisted {decree}",
        RACING_WRITES / 2
    );
    assert_eq!(raw_count(&s) as u64, decree, "one record per persisted decree, no more and no less");
    for i in [0, decree - 1] {
        assert!(s.get(b"h", format!("k{i:05}").as_bytes()).unwrap().is_some(), "write {i} of {decree} lost");
    }
    assert_eq!(s.get(b"h", format!("k{decree:05}").as_bytes()).unwrap(), None, "data past the decree");
}

fn raw_count(s: &impl PartitionStore) -> usize {
    let mut n = 0;
    s.raw_scan(&tern_core::key::KeyRange::all(), false, &mut |_, _| {
        n += 1;
        Ok(std::ops::ControlFlow::Continue(()))
    })
    .unwrap();
    n
}

#[test]
fn compaction_drops_records_expired_at_the_applied_horizon() {
    let d = tempfile::tempdir().unwrap();
    let h = RocksHarness::new();
    let mut s = h.open(d.path());
    apply_next(&mut s, h.clock(), vec![set_ttl(b"h", b"short", b"x", 5), set(b"h", b"keep", b"y")]);
    s.flush().unwrap();
    // The local clock passing the expiry hides the record but must not let compaction drop it:
    // a write stamped before its expiry could still arrive and must see it on every replica.
    h.clock().advance_ms(10_000);
    assert_eq!(s.get(b"h", b"short").unwrap(), None);
    s.compact();
    assert_eq!(raw_count(&s), 2, "not dropped before the applied timetag passes its expiry");
    // Once a write stamped after the expiry is applied, nothing can ever see the record again.
    apply_next(&mut s, h.clock(), vec![set(b"h", b"later", b"z")]);
    apply_purge_horizon(&mut s, h.clock());
    s.flush().unwrap();
    s.compact();
    assert_eq!(raw_count(&s), 2, "dropped: keep + later remain");
    assert_eq!(s.get(b"h", b"keep").unwrap(), Some(b"y".to_vec()));
}

/// Dead records stay until the purge horizon passes them (a link may still ship older writes,
/// which must still lose to them); then compaction drops them.
#[test]
fn compaction_keeps_dead_records_above_the_purge_horizon() {
    let d = tempfile::tempdir().unwrap();
    let h = RocksHarness::new();
    let mut s = h.open(d.path());
    // A purge horizon from before anything below was written: it lets nothing go.
    apply_purge_horizon(&mut s, h.clock());
    apply_next(&mut s, h.clock(), vec![set(b"h", b"gone", b"x"), set_ttl(b"h", b"short", b"y", 5)]);
    apply_next(&mut s, h.clock(), vec![del(b"h", b"gone")]);
    assert_eq!(s.get(b"h", b"gone").unwrap(), None, "a tombstone reads as absent");
    h.clock().advance_ms(30_000);
    apply_next(&mut s, h.clock(), vec![set(b"h", b"later", b"z")]);
    s.flush().unwrap();
    s.compact();
    assert_eq!(raw_count(&s), 3, "tombstone and expired record stay above the purge horizon");
    // A duplicated write older than the tombstone still loses to it.
    let outcomes =
        apply_next(&mut s, h.clock(), vec![put_from(b"h", b"gone", Some(b"stale"), T0_MS - 1_000, 0, 2)]);
    assert!(matches!(outcomes[0], WriteOutcome::Superseded { .. }), "{outcomes:?}");
    assert_eq!(s.get(b"h", b"gone").unwrap(), None);
    apply_purge_horizon(&mut s, h.clock());
    apply_next(&mut s, h.clock(), vec![set(b"h", b"latest", b"w")]);
    s.flush().unwrap();
    s.compact();
    assert_eq!(raw_count(&s), 2, "below the purge horizon both go: later + latest remain");
}

#[test]
fn without_a_purge_horizon_nothing_dead_is_dropped() {
    let d = tempfile::tempdir().unwrap();
    let h = RocksHarness::new();
    let mut s = h.open(d.path());
    apply_next(&mut s, h.clock(), vec![set(b"h", b"gone", b"x")]);
    apply_next(&mut s, h.clock(), vec![del(b"h", b"gone")]);
    h.clock().advance_ms(10_000);
    apply_next(&mut s, h.clock(), vec![set(b"h", b"later", b"z")]);
    s.flush().unwrap();
    s.compact();
    assert_eq!(raw_count(&s), 2, "the tombstone stays until a purge horizon passes it");
    apply_purge_horizon(&mut s, h.clock());
    assert_eq!(s.purge_horizon().physical_ms(), T0_MS + 10_000);
    drop(s);
    let s = h.open(d.path());
    assert_eq!(s.purge_horizon().physical_ms(), T0_MS + 10_000, "the purge horizon survives a reopen");
    s.compact();
    assert_eq!(raw_count(&s), 1);
}

#[test]
fn unknown_format_version_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let h = RocksHarness::new();
    drop(h.open(d.path()));
    {
        let mut o = rocksdb::Options::default();
        o.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&o, d.path(), ["default", "meta"]).unwrap();
        db.put_cf(db.cf_handle("meta").unwrap(), b"format_version", 9u64.to_be_bytes()).unwrap();
    }
    let err = h.backend.open(d.path()).unwrap_err();
    assert!(err.is_fatal() && err.to_string().contains("format version 9"), "{err}");
}

#[test]
fn durable_decree_lags_until_flush() {
    let d = tempfile::tempdir().unwrap();
    let h = RocksHarness::new();
    let mut s = h.open(d.path());
    s.apply(Decree(1), timetag_now(h.clock(), 1), &Mutation::new(vec![set(b"h", b"k", b"v")])).unwrap();
    assert_eq!(s.durable_decree().unwrap(), Decree(0), "with the WAL off, only flushed data is durable");
    assert_eq!(s.flush().unwrap(), Decree(1));
}

#[test]
fn interrupted_restore_is_redone() {
    let d = tempfile::tempdir().unwrap();
    let h = RocksHarness::new();
    let mut s = h.open(&d.path().join("live"));
    apply_next(&mut s, h.clock(), vec![set(b"h", b"k", b"v")]);
    s.checkpoint(&d.path().join("cp")).unwrap();
    // A previous restore died half way, leaving its staging directory.
    std::fs::create_dir_all(d.path().join(".restored.restoring")).unwrap();
    std::fs::write(d.path().join(".restored.restoring/garbage"), b"x").unwrap();
    let r = h.backend.open_from_checkpoint(&d.path().join("cp"), &d.path().join("restored")).unwrap();
    assert_eq!(r.get(b"h", b"k").unwrap(), Some(b"v".to_vec()));
    assert!(!d.path().join(".restored.restoring").exists());
    let err = h.backend.open_from_checkpoint(&d.path().join("cp"), &d.path().join("live")).unwrap_err();
    assert!(err.to_string().contains("already exists"), "never restores over a store: {err}");
    let err = h.backend.open_from_checkpoint(&d.path().join("nope"), &d.path().join("x")).unwrap_err();
    assert!(err.to_string().contains("not a RocksDB checkpoint"), "{err}");
}

//! The conformance suite on the in-process stores, and what is specific to them.

use std::sync::Arc;

use tern_backup::testing::{LocalFactory, MemFactory, run_conformance};
use tern_backup::{
    Fault, FaultKind, FaultyObjectStore, LocalObjectStore, MemObjectStore, ObjectStore, Op, RetryPolicy,
    Transfer, retry,
};

#[tokio::test]
async fn mem_store_passes_the_conformance_suite() -> anyhow::Result<()> {
    run_conformance(&MemFactory).await
}

#[tokio::test]
async fn local_store_passes_the_conformance_suite() -> anyhow::Result<()> {
    run_conformance(&LocalFactory::default()).await
}

#[tokio::test]
async fn local_store_with_a_missing_root_is_a_missing_bucket() {
    let err = LocalObjectStore::open("/nonexistent/tern-backup-root").await.expect_err("missing root");
    assert_eq!(err.code(), "NO_SUCH_BUCKET");
    assert!(!err.retryable());
    assert!(err.to_string().contains("/nonexistent/tern-backup-root"), "{err}");
}

#[tokio::test]
async fn local_store_reserves_its_temporary_directory() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = LocalObjectStore::open(dir.path()).await?;
    let err = store.put(".tern-tmp/x", "x".into(), &Transfer::none()).await.expect_err("reserved");
    assert_eq!(err.code(), "INVALID_ARGUMENT");
    Ok(())
}

/// S3 semantics where a file system differs: a key's parent is not an object, and a key
/// cannot also be the parent of others (refused clearly rather than a failed rename).
#[tokio::test]
async fn local_store_keys_and_directories_do_not_mix() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = LocalObjectStore::open(dir.path()).await?;
    store.put("a/b/c", "x".into(), &Transfer::none()).await?;
    for err in [store.get("a/b", None).await.err(), store.head("a/b").await.err()] {
        let err = err.expect("a key's parent is not an object");
        assert!(err.is_not_found(), "{err}");
    }
    let err = store.put("a/b", "y".into(), &Transfer::none()).await.expect_err("a/b is a directory");
    assert_eq!(err.code(), "INVALID_ARGUMENT");
    assert!(err.to_string().contains("directory of other keys"), "{err}");
    store.delete("a/b").await?;
    assert_eq!(store.get("a/b/c", None).await?.as_ref(), b"x");
    Ok(())
}

#[tokio::test]
async fn faulty_store_fails_the_nth_call_and_heals() -> anyhow::Result<()> {
    let faulty = FaultyObjectStore::new(Arc::new(MemObjectStore::new()));
    faulty.inject(Fault::fail(true).on(Op::Put).nth(2));
    faulty.put("a", "1".into(), &Transfer::none()).await?;
    let err = faulty.put("b", "2".into(), &Transfer::none()).await.expect_err("2nd put");
    assert!(err.retryable(), "{err}");
    assert!(err.to_string().contains('b'), "{err}");
    faulty.put("c", "3".into(), &Transfer::none()).await?;
    assert_eq!(faulty.calls(Op::Put), 3);
    assert!(faulty.head("b").await.err().is_some_and(|e| e.is_not_found()));

    faulty.inject(Fault::fail(false).on_key("secret").always());
    for _ in 0..3 {
        let err = faulty.head("secret/x").await.expect_err("always");
        assert!(!err.retryable());
    }
    faulty.heal();
    assert!(faulty.head("secret/x").await.err().is_some_and(|e| e.is_not_found()));
    Ok(())
}

#[tokio::test]
async fn faulty_store_damages_bodies_on_put_and_get() -> anyhow::Result<()> {
    let mem = Arc::new(MemObjectStore::new());
    let faulty = FaultyObjectStore::new(mem.clone());
    faulty.inject(Fault::new(FaultKind::Truncate).on(Op::Put));
    faulty.put("t", "12345678".into(), &Transfer::none()).await?;
    assert_eq!(mem.get("t", None).await?.as_ref(), b"1234");

    faulty.inject(Fault::new(FaultKind::Corrupt).on(Op::Get));
    let got = faulty.get("t", None).await?;
    assert_eq!(got.len(), 4);
    assert_ne!(got.as_ref(), b"1234");
    assert_eq!(faulty.get("t", None).await?.as_ref(), b"1234", "only once");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn retry_rides_out_retryable_faults_but_not_permanent_ones() -> anyhow::Result<()> {
    let faulty = FaultyObjectStore::new(Arc::new(MemObjectStore::new()));
    faulty.inject(Fault::fail(true).on(Op::Put).times(2));
    let policy = RetryPolicy::default();
    let none = Transfer::none();
    retry(&policy, "put", || faulty.put("k", "v".into(), &none)).await?;
    assert_eq!(faulty.calls(Op::Put), 3);

    faulty.inject(Fault::fail(false).on(Op::Get));
    let err = retry(&policy, "get", || faulty.get("k", None)).await.expect_err("permanent");
    assert!(!err.retryable());
    assert_eq!(faulty.calls(Op::Get), 1, "a permanent error is not retried");
    Ok(())
}

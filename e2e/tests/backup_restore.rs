//! `tern backup restore` end to end, without the replica-side backup code: a backup is made
//! here from RocksDB stores written with Tern's storage crate (records with values, TTLs,
//! expired records and tombstones, timetags of several clusters including the restoring one),
//! checkpointed and uploaded with `tern_backup::Uploader` to a real S3-compatible server
//! (s3s-fs). The real `tern` binary restores it into a real cluster at the backup's partition
//! count, twice it and half it; a full scan and every replica's store (opened after a graceful
//! stop) must hold exactly what was written, expiries and timetags included. A damaged object
//! fails the restore naming it, and the half-restored table serves nobody until a re-run
//! finishes it; a missing object fails before any table exists.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use tern_backup::model::{
    BackupId, BackupRequest, LocalFile, PartitionCheckpoint, TableSchema, Uploader, file_key,
};
use tern_backup::testing::{S3Server, S3ServerKind};
use tern_backup::{ObjectStore, PutBody, S3ObjectStore, Transfer};
use tern_core::value::ValueHeader;
use tern_core::{Ballot, ClusterId, Decree, Timetag, key, partition_of, value};
use tern_e2e::cluster::SETTLE;
use tern_e2e::mixed::dump;
use tern_e2e::{Cluster, ClusterOptions};
use tern_rocks::{RocksBackend, RocksConfig};
use tern_storage::{AppliedMark, PartitionStore, SystemClock};

const SOURCE_PARTITIONS: u32 = 4;
const BUCKET: &str = "backups";
const PREFIX: &str = "tern";

/// What a record's stored state is: value (None: tombstone), absolute expiry, timetag.
type Stored = (Option<Vec<u8>>, u32, u64);

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// The records of the backup: 400 hash keys × 2 sort keys, written by clusters 1 (the restoring
/// cluster's own id), 3 and 7 over the last hour; every tenth hash key deleted (a tombstone),
/// every tenth expired a minute ago, a fifth with a TTL a day ahead, the rest without one.
fn records() -> BTreeMap<(Vec<u8>, Vec<u8>), Stored> {
    let now = now_secs();
    let mut out = BTreeMap::new();
    for i in 0..400u64 {
        for j in 0..2u64 {
            let cluster = ClusterId::new([1, 3, 7][(i % 3) as usize]).unwrap();
            let ms = (now - 3600) * 1000 + i * 10 + j;
            let (val, expire_ts, delete) = match i % 10 {
                0 => (None, 0, true),
                1 => (Some(format!("expired-{i}-{j}")), (now - 60) as u32, false),
                2 | 3 => (Some(format!("ttl-{i}-{j}")), (now + 86_400 + i) as u32, false),
                _ => (Some(format!("value-{i}-{j}-{}", "x".repeat((i % 7) as usize * 30))), 0, false),
            };
            let tt = Timetag::new(ms, j as u32, cluster, delete);
            out.insert(
                (format!("user{i:04}").into_bytes(), format!("s{j}").into_bytes()),
                (val.map(String::into_bytes), expire_ts, tt.as_u64()),
            );
        }
    }
    out
}

fn backend() -> RocksBackend {
    let config = RocksConfig { memtable_huge_pages: false, ..RocksConfig::default() };
    RocksBackend::new(config, Arc::new(SystemClock))
}

/// Writes each source partition's records into a store, checkpoints it and lists its files.
fn checkpoints(dir: &Path, recs: &BTreeMap<(Vec<u8>, Vec<u8>), Stored>) -> Vec<PartitionCheckpoint> {
    let backend = backend();
    (0..SOURCE_PARTITIONS)
        .map(|p| {
            let mut batch: Vec<(Vec<u8>, Option<Vec<u8>>)> = recs
                .iter()
                .filter(|((h, _), _)| partition_of(h, SOURCE_PARTITIONS).0 == p)
                .map(|((h, s), (v, expire_ts, tt))| {
                    let header = ValueHeader { expire_ts: *expire_ts, timetag: Timetag::from_u64(*tt) };
                    let stored = value::encode(&header, v.as_deref().unwrap_or_default());
                    (key::encode(h, s).unwrap(), Some(stored))
                })
                .collect();
            batch.sort();
            let max = batch
                .iter()
                .map(|(_, v)| value::decode(v.as_ref().unwrap()).unwrap().0.timetag)
                .max()
                .unwrap_or_default();
            let mut store = backend.open(&dir.join(format!("src-{p}"))).unwrap();
            let mark = AppliedMark {
                decree: Decree(100 + u64::from(p)),
                timetag: max,
                ballot: Ballot(1),
                ..Default::default()
            };
            store.raw_write(batch, mark).unwrap();
            let ckpt = dir.join(format!("ckpt-{p}"));
            let decree = store.checkpoint(&ckpt).unwrap();
            let mut files: Vec<LocalFile> = std::fs::read_dir(&ckpt)
                .unwrap()
                .map(|e| e.unwrap())
                .filter(|e| e.file_type().unwrap().is_file())
                .map(|e| LocalFile { name: e.file_name().to_string_lossy().into_owned(), path: e.path() })
                .collect();
            files.sort_by(|a, b| a.name.cmp(&b.name));
            PartitionCheckpoint { index: p, decree: decree.0, timetags: None, files }
        })
        .collect()
}

/// A backup of `recs` on `server`; its id.
async fn upload(
    server: &S3Server,
    dir: &Path,
    recs: &BTreeMap<(Vec<u8>, Vec<u8>), Stored>,
) -> (BackupId, Arc<S3ObjectStore>) {
    server.create_bucket(BUCKET).await.unwrap();
    let store = Arc::new(S3ObjectStore::new(server.config(BUCKET, PREFIX).unwrap()).await.unwrap());
    let created_at = chrono::Utc::now();
    let id = BackupId::new(created_at, "src", 0x5eed).unwrap();
    let req = BackupRequest {
        id: id.clone(),
        cluster: "old".into(),
        table: TableSchema { name: "src".into(), partition_count: SOURCE_PARTITIONS, default_ttl_secs: None },
        partitions: checkpoints(dir, recs),
        tool_version: "e2e".into(),
        created_at,
    };
    Uploader::new(store.clone()).run(&req).await.unwrap();
    (id, store)
}

async fn restore(
    cluster: &Cluster,
    server: &S3Server,
    id: &BackupId,
    table: &str,
    extra: &[&str],
) -> tern_e2e::process::CliOutput {
    let meta = cluster.meta_arg();
    let target = format!("s3://{BUCKET}/{PREFIX}");
    let mut args = vec!["backup", "restore", id.as_str(), "--table", table, "--target", &target];
    args.extend(["--endpoint", server.endpoint(), "--region", "us-east-1"]);
    args.extend(["--access-key-id", &server.access_key_id, "--secret-access-key", &server.secret_access_key]);
    args.extend(["--meta", &meta, "--replicas", "3", "--limit-mbps", "50"]);
    args.extend_from_slice(extra);
    cluster.cli(&args).await
}

/// Every record of `table` (tombstones and expired ones too) as each replica of each partition
/// stores it, read from the stopped replica servers' disks.
async fn stored(
    cluster: &Cluster,
    routes: &tern_proto::pb::Route,
) -> Vec<BTreeMap<(Vec<u8>, Vec<u8>), Stored>> {
    let backend = backend();
    let mut replicas = vec![];
    for c in &routes.partitions {
        let gpid = c.gpid.as_ref().unwrap();
        for node in std::iter::once(&c.primary).filter(|n| **n != 0).chain(&c.secondaries) {
            let proc = cluster.replica_with_id(*node).unwrap();
            let dir = cluster
                .process(proc)
                .data_dir
                .join("replicas")
                .join(format!("{}.{}", gpid.table, gpid.partition));
            let store = backend.open(&dir.join("store")).unwrap();
            let mut recs = BTreeMap::new();
            store
                .raw_scan(&tern_core::key::KeyRange::all(), false, &mut |k, v| {
                    let (h, s) = key::decode(k)?;
                    let (header, user) = value::decode(v)?;
                    let val = (!header.is_tombstone()).then(|| user.to_vec());
                    assert_eq!(partition_of(h, routes.partitions.len() as u32).0, gpid.partition);
                    recs.insert((h.to_vec(), s.to_vec()), (val, header.expire_ts, header.timetag.as_u64()));
                    Ok(std::ops::ControlFlow::Continue(()))
                })
                .unwrap();
            replicas.push(recs);
        }
    }
    replicas
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_restores_into_any_partition_count_with_timetags_and_expiries_and_never_serves_half() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(S3ServerKind::S3sFs).await.unwrap();
    let recs = records();
    let (id, store) = upload(&server, dir.path(), &recs).await;
    let mut cluster = Cluster::start(ClusterOptions { metas: 1, ..Default::default() }).await;
    cluster.wait_replicas_alive(SETTLE).await;
    let live: BTreeMap<_, _> = {
        let now = now_secs();
        recs.iter()
            .filter(|(_, (v, e, _))| v.is_some() && (*e == 0 || u64::from(*e) > now))
            .map(|(k, (v, _, _))| (k.clone(), v.clone().unwrap()))
            .collect()
    };

    // The backup's partition count, twice it and half it.
    let client = cluster.client();
    for (table, partitions) in [("same", None), ("double", Some("8")), ("half", Some("2"))] {
        let extra: Vec<&str> = partitions.map(|p| vec!["--partitions", p]).unwrap_or_default();
        let out = restore(&cluster, &server, &id, table, &extra).await.ok();
        assert!(out.stdout.contains(&format!("restored backup {id} into table {table}")), "{out:?}");
        assert!(out.stdout.contains("800 records (640 live, 80 expired, 80 tombstones)"), "{out:?}");
        assert_eq!(dump(&client, table).await.unwrap(), live, "a full scan of {table}");
    }
    // The same restore again: the table exists and serves, so it is refused, named.
    let again = restore(&cluster, &server, &id, "same", &[]).await;
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("\"same\" already exists"), "{again:?}");

    // A local write after the restore wins over restored records (the primary's clock moved
    // past their timetags, one of which is an hour-old write of this very cluster).
    cluster.kv("same", &["set", "user0004", "s0", "after"]).await.ok();
    assert_eq!(cluster.kv("same", &["get", "user0004", "s0"]).await.ok().stdout, "after\n");

    // A damaged object (same size, other bytes) in the last partition: the restore fails naming
    // it; the table it began serves nobody; a re-run after repair resumes and finishes.
    let manifest = tern_backup::model::load_manifest(store.as_ref(), &id).await.unwrap();
    let victim =
        manifest.partitions.last().unwrap().files.iter().max_by_key(|f| f.size_bytes).unwrap().clone();
    let key = file_key(&victim.sha256);
    let good = store.get(&key, None).await.unwrap();
    let mut bad = good.to_vec();
    let middle = bad.len() / 2;
    bad[middle] ^= 0xff;
    store.put(&key, PutBody::Bytes(Bytes::from(bad)), &Transfer::none()).await.unwrap();
    let failed = restore(&cluster, &server, &id, "fixed", &[]).await;
    assert_ne!(failed.code, 0, "{failed:?}");
    assert!(failed.stderr.contains(&format!("files/{}", victim.sha256.to_hex())), "{failed:?}");
    assert!(failed.stderr.contains("damaged"), "{failed:?}");
    let refused = cluster.kv("fixed", &["get", "user0005", "s0"]).await;
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains(&format!("being restored from backup {id}")), "{refused:?}");
    store.put(&key, PutBody::Bytes(good.clone()), &Transfer::none()).await.unwrap();
    let resumed = restore(&cluster, &server, &id, "fixed", &["--output", "json"]).await.ok();
    let summary: serde_json::Value = serde_json::from_str(resumed.stdout.trim()).unwrap();
    assert_eq!(summary["resumed"], true, "{summary}");
    assert_eq!(dump(&client, "fixed").await.unwrap(), live);

    // A missing object fails before any table is made, naming it.
    store.delete(&key).await.unwrap();
    let missing = restore(&cluster, &server, &id, "never", &[]).await;
    assert_ne!(missing.code, 0);
    assert!(missing.stderr.contains(&format!("files/{}", victim.sha256.to_hex())), "{missing:?}");
    assert!(cluster.route("never").await.is_err(), "no table was created");

    // Every replica of every partition stores exactly the backup's records: values, tombstones,
    // expiries and timetags (records expired or deleted included).
    let routes: Vec<_> = {
        let mut r = vec![];
        for t in ["same", "double", "half"] {
            r.push((t, cluster.route(t).await.unwrap()));
        }
        r
    };
    for p in cluster.replicas() {
        cluster.stop(p);
    }
    for (table, route) in &routes {
        let replicas = stored(&cluster, route).await;
        assert_eq!(replicas.len(), route.partitions.len() * 3, "{table}: three replicas a partition");
        let mut all = BTreeMap::new();
        for r in replicas.iter() {
            all.extend(r.clone());
        }
        let mut expected = recs.clone();
        if *table == "same" {
            // The write made after the restore.
            let k = (b"user0004".to_vec(), b"s0".to_vec());
            let after = all.get(&k).cloned().unwrap();
            assert_eq!(after.0.as_deref(), Some(&b"after"[..]));
            assert!(after.2 > recs[&k].2, "the local write's timetag is newer than the restored one");
            expected.insert(k, after);
        }
        assert_eq!(all, expected, "{table}: the stored records");
        // Each replica holds exactly its partition's share.
        let n = route.partitions.len() as u32;
        for (i, r) in replicas.iter().enumerate() {
            let p = route.partitions[i / 3].gpid.as_ref().unwrap().partition;
            let share: BTreeMap<_, _> = expected
                .iter()
                .filter(|((h, _), _)| partition_of(h, n).0 == p)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(r, &share, "{table}: a replica of partition {p}");
        }
    }
}

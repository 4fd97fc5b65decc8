//! A link's throttle is one limit for the whole link, in wire bytes, summed over all its source
//! partitions' primaries: a link limited to N bytes per second over 8 partitions ships N in
//! total (within 10 %), measured from the senders' metrics over a window in which every
//! partition has more to ship than its share. Once while shipping the log, once while a full
//! sync copies existing records; and with only two busy partitions, which get the idle ones'
//! shares. `tern dup status` shows the limit, the shares and the rate.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use tern_core::{WriteOp, partition_of};
use tern_e2e::cluster::SETTLE;
use tern_e2e::{Cluster, ClusterOptions};

/// The link's limit: 32 KiB/s per partition when split equally.
const LIMIT: u64 = 256 * 1024;
const PARTITIONS: u32 = 8;
const ALL: [u32; 8] = [0, 1, 2, 3, 4, 5, 6, 7];
/// How long the shipped bytes are measured over.
const WINDOW: Duration = Duration::from_secs(20);
/// Writes per source partition of `SORT_KEYS` records of `VALUE` bytes each (one multi-set):
/// 2 MiB per partition, more than a minute of an equal share.
const WRITES_PER_PARTITION: usize = 64;
const SORT_KEYS: usize = 32;
const VALUE: usize = 1024;

async fn clusters(a: (&str, u8), b: (&str, u8)) -> (Cluster, Cluster) {
    let sender = ClusterOptions { metrics: true, ..ClusterOptions::named(a.0, a.1) };
    let (a, b) = tokio::join!(Cluster::start(sender), Cluster::start(ClusterOptions::named(b.0, b.1)));
    a.create_table("t", PARTITIONS, 3).await;
    b.create_table("t", 4, 3).await;
    (a, b)
}

async fn wait_started(a: &Cluster) {
    a.wait_for("the link to start on every partition", SETTLE, || async {
        let links = a.dup_links().await;
        let started = links.iter().all(|l| l.link.as_ref().is_some_and(|l| l.started.iter().all(|s| *s)));
        if started && !links.is_empty() { Ok(()) } else { Err(format!("{links:?}")) }
    })
    .await;
}

/// Writes the same backlog, `writes` multi-sets, to each of `partitions` of `t`.
async fn load(a: &Cluster, partitions: &[u32], writes: usize) {
    let client = a.client();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for &p in partitions {
        let of_p =
            (0u64..).map(|i| format!("h{i}").into_bytes()).filter(|k| partition_of(k, PARTITIONS).0 == p);
        keys.extend(of_p.take(writes));
    }
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for chunk in keys.chunks(keys.len().div_ceil(16)) {
        let (client, chunk) = (client.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            for hash_key in chunk {
                let entries =
                    (0..SORT_KEYS).map(|s| (format!("s{s}").into_bytes(), vec![b'v'; VALUE])).collect();
                let w = WriteOp::MultiSet { hash_key, entries, ttl_secs: 0 };
                client.write("t", w).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mib = (keys.len() * SORT_KEYS * VALUE) as f64 / (1 << 20) as f64;
    eprintln!("e2e: wrote {mib:.0} MiB to partitions {partitions:?} in {:?}", t0.elapsed());
}

/// The sum of every sample of `name` whose labels include `label`, in a Prometheus exposition.
fn metric_sum(text: &str, name: &str, label: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{') && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// Wire bytes the link's shippers (full sync included) sent so far, over every sender.
async fn wire_bytes(a: &Cluster) -> u64 {
    let mut sum = 0;
    for p in a.replicas() {
        sum += metric_sum(&a.scrape_metrics(p).await, "tern_dup_wire_bytes_total", "link=\"1\"");
    }
    sum
}

/// Each of the `busy` partitions of the link wants more than its share (its throttle held it
/// back lately).
async fn throttled(a: &Cluster, busy: &[u32]) -> Result<(), String> {
    let links = a.dup_links().await;
    let parts = links.first().map(|l| l.partitions.as_slice()).unwrap_or_default();
    let held: Vec<u32> = parts.iter().filter(|p| p.throttled).map(|p| p.partition).collect();
    if parts.len() == PARTITIONS as usize && busy.iter().all(|p| held.contains(p)) {
        Ok(())
    } else {
        Err(format!("partitions {held:?} held back by the throttle, of {busy:?}"))
    }
}

/// Measures the link's total over `WINDOW` while the `busy` partitions want more than their
/// shares, checks it against `LIMIT` (at least `min_ratio` of it, at most 110 %), and what
/// `tern dup status` says. Returns the shares.
async fn measure(a: &Cluster, what: &str, busy: &[u32], min_ratio: f64) -> Vec<u64> {
    let wanting = format!("partitions {busy:?} to want more than their share ({what})");
    a.wait_for(&wanting, SETTLE, || throttled(a, busy)).await;
    // A few beacon rounds: the shares follow the reports.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (b0, t0) = (wire_bytes(a).await, Instant::now());
    tokio::time::sleep(WINDOW).await;
    let (b1, t1) = (wire_bytes(a).await, Instant::now());
    let rate = (b1 - b0) as f64 / (t1 - t0).as_secs_f64();
    let ratio = rate / LIMIT as f64;
    eprintln!(
        "e2e: {what}: {} wire bytes in {:.1} s = {rate:.0} B/s in total; limit {LIMIT} B/s (ratio {ratio:.3})",
        b1 - b0,
        (t1 - t0).as_secs_f64()
    );
    // The busy partitions still had more than their share to ship at the end of the window.
    throttled(a, busy).await.unwrap_or_else(|e| panic!("the backlog ran out during the window: {e}"));

    let links = a.dup_links().await;
    let l = &links[0];
    let shares: Vec<u64> = l.partitions.iter().map(|p| p.share_bytes_per_sec).collect();
    let reported: u64 = l.partitions.iter().map(|p| p.wire_bytes_per_sec).sum();
    eprintln!("e2e: {what}: shares {shares:?}, the primaries measure {reported} B/s in all");
    let st = a.cli(&["dup", "status", "--meta", &a.meta_arg()]).await.ok();
    eprintln!("e2e: {what}: tern dup status:\n{}", st.stdout);
    assert!((min_ratio..=1.1).contains(&ratio), "{what}: shipped {rate:.0} B/s under a limit of {LIMIT} B/s");
    assert_eq!(shares.iter().sum::<u64>(), LIMIT, "the shares split the link's limit: {shares:?}");
    assert!(st.stdout.contains("throttle 256KiB/s"), "{}", st.stdout);
    shares
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttled_link_ships_its_limit_in_total_over_eight_partitions() {
    let (a, b) = clusters(("paced", 13), ("yonder", 14)).await;
    let out = a.dup_add("t", &b, &["--max-bytes-per-sec", "256KiB"]).await.ok();
    eprintln!("e2e: {}", out.stdout.trim());
    wait_started(&a).await;
    load(&a, &ALL, WRITES_PER_PARTITION).await;
    measure(&a, "shipping the log", &ALL, 0.9).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttled_full_sync_copies_at_the_links_limit_in_total() {
    let (a, b) = clusters(("copier", 15), ("yonder2", 16)).await;
    load(&a, &ALL, WRITES_PER_PARTITION).await;
    let out = a.dup_add("t", &b, &["--max-bytes-per-sec", "256KiB", "--full-sync"]).await.ok();
    eprintln!("e2e: {}", out.stdout.trim());
    measure(&a, "copying existing records", &ALL, 0.9).await;
    let copying = a.dup_links().await[0].partitions.iter().filter(|p| p.syncing).count();
    assert_eq!(copying, PARTITIONS as usize, "measured while every partition was still copying");
}

/// Two busy partitions of eight: the six idle ones keep a small floor each (a sixteenth of an
/// equal share) and the busy ones get the rest, so the link still ships close to its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_partitions_share_goes_to_the_busy_ones() {
    let (a, b) = clusters(("lopsided", 17), ("yonder3", 18)).await;
    a.dup_add("t", &b, &["--max-bytes-per-sec", "256KiB"]).await.ok();
    wait_started(&a).await;
    let busy = [2, 5];
    load(&a, &busy, 4 * WRITES_PER_PARTITION).await;
    let shares = measure(&a, "two busy partitions of eight", &busy, 0.85).await;
    let equal = LIMIT / u64::from(PARTITIONS);
    for p in busy {
        assert!(shares[p as usize] > 3 * equal, "a busy partition's share grew: {shares:?}");
    }
}

//! A table's DR role (issue #6, part 1): a standby copy refuses client writes with a distinct
//! error, still takes duplicated writes, and marks its reads as possibly stale; role changes
//! are compare-and-set on an epoch that only grows.
#![allow(clippy::unwrap_used)]

use tern_e2e::cluster::SETTLE;
use tern_e2e::pair::linked_pair;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_standby_refuses_client_writes_but_takes_duplicated_ones() {
    // A link ships what is written once each partition's primary has picked it up:
    // `linked_pair` returns once they all have.
    let (a, b) = linked_pair(("main", 9), ("spare", 10), &[]).await;
    let (ma, mb) = (a.meta_arg(), b.meta_arg());

    let shown = b.cli(&["--output", "json", "table", "role", "t", "--meta", &mb]).await.ok().json();
    assert_eq!((shown["role"].as_str(), shown["epoch"].as_u64()), (Some("active"), Some(0)));
    b.cli(&["table", "role", "t", "--set", "standby", "--epoch", "1", "--if-epoch", "0", "--meta", &mb])
        .await
        .ok();

    // Compare-and-set and growth are enforced, naming what was wrong.
    let out = b
        .cli(&["table", "role", "t", "--set", "active", "--epoch", "2", "--if-epoch", "0", "--meta", &mb])
        .await;
    assert!(out.code != 0 && out.stderr.contains("epoch 1, not 0"), "{out:?}");
    let out = b.cli(&["table", "role", "t", "--set", "active", "--epoch", "0", "--meta", &mb]).await;
    assert!(out.code != 0 && out.stderr.contains("epochs only grow"), "{out:?}");
    let out = b.cli(&["table", "role", "nope", "--set", "active", "--epoch", "5", "--meta", &mb]).await;
    assert!(out.code != 0 && out.stderr.contains("nope"), "{out:?}");

    // Replica servers learn the role with their next beacon: then client writes are refused.
    b.wait_for("spare's servers to refuse client writes", SETTLE, || async {
        let out = b.kv("t", &["set", "k", "s", "direct"]).await;
        if out.code != 0 && out.stderr.contains("standby") { Ok(()) } else { Err(format!("{out:?}")) }
    })
    .await;
    // Writes to the active cluster still arrive by duplication, and reads say they may lag.
    a.kv("t", &["set", "k2", "s", "shipped"]).await.ok();
    let read = b
        .wait_for("the duplicated write to arrive", SETTLE, || async {
            let out = b.kv("t", &["get", "k2", "s"]).await;
            if out.code == 0 && out.stdout.contains("shipped") {
                return Ok(out);
            }
            let status = a.cli(&["dup", "status", "--meta", &ma]).await;
            Err(format!("{out:?}; main's links: {}", status.stdout))
        })
        .await;
    assert!(read.stderr.contains("standby"), "the read is marked possibly stale: {read:?}");

    // Promoted (the next epoch, compare-and-set), it takes client writes again.
    b.cli(&["table", "role", "t", "--set", "active", "--epoch", "2", "--if-epoch", "1", "--meta", &mb])
        .await
        .ok();
    b.wait_for("spare's servers to take client writes again", SETTLE, || async {
        let out = b.kv("t", &["set", "k", "s", "direct"]).await;
        if out.code == 0 { Ok(()) } else { Err(format!("{out:?}")) }
    })
    .await;
}

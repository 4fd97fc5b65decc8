//! `tern proxy` (issue #6, part 2): a client pointed only at a proxy writes to the cluster whose
//! copy is active, and keeps writing, without a restart, while the active role moves to the
//! other cluster.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tern_client::{ClientOptions, TernClient};
use tern_core::read::{ReadOp, ReadResult};
use tern_core::{DrRole, WriteOp};
use tern_e2e::cluster::SETTLE;
use tern_e2e::pair::dr_pair;
use tern_e2e::proxy::start_proxy;
use tern_e2e::workload::numbered_set as set;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_of_the_proxy_follows_a_role_move_without_a_restart() {
    let (a, b) = dr_pair(("left", 13), ("right", 14)).await;
    let (ma, mb) = (a.meta_arg(), b.meta_arg());

    let dir = tempfile::tempdir().unwrap();
    let mut proxy = start_proxy(dir.path(), "proxy", &[("left", &a), ("right", &b)], &[]);
    let addr = proxy.addr.clone();
    let client = Arc::new(TernClient::new(ClientOptions::new(vec![addr.clone()])).unwrap());
    a.wait_for("the proxy to route writes", SETTLE, || async {
        client.write("t", set(0)).await.map(|_| ()).map_err(|e| e.to_string())
    })
    .await;
    let route = client.route("t", true).await.unwrap();
    assert_eq!(route.role, DrRole::Active);

    // One writer through the proxy, all along.
    let (stop, ok, failed) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let writer = {
        let (client, stop, ok, failed) = (client.clone(), stop.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            let mut i = 1;
            while !stop.load(Ordering::Relaxed) {
                match client.write("t", set(i)).await {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("e2e: write {i} failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                i += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = ok.load(Ordering::Relaxed);
    // A reader that only reads: its route (to left) is cached before the move. (Its key is
    // written now that the link ships: writes before a link starts are not shipped.)
    let read_key =
        WriteOp::Set { hash_key: b"r".to_vec(), sort_key: b"s".to_vec(), value: b"v".to_vec(), ttl_secs: 0 };
    client.write("t", read_key).await.unwrap();
    let reader = TernClient::new(ClientOptions::new(vec![addr.clone()])).unwrap();
    let get0 = || ReadOp::Get { hash_key: b"r".to_vec(), sort_key: b"s".to_vec() };
    let (_, stale) = reader.read_marked("t", get0()).await.unwrap();
    assert!(!stale, "left is active");

    // The move: left becomes standby (epoch 2), right active at a higher epoch (3).
    a.cli(&["table", "role", "t", "--set", "standby", "--epoch", "2", "--if-epoch", "0", "--meta", &ma])
        .await
        .ok();
    b.cli(&["table", "role", "t", "--set", "active", "--epoch", "3", "--if-epoch", "1", "--meta", &mb])
        .await
        .ok();
    a.wait_for("left's servers to refuse client writes", SETTLE, || async {
        let out = a.kv("t", &["set", "direct", "s", "v"]).await;
        if out.code != 0 && out.stderr.contains("standby") { Ok(()) } else { Err(format!("{out:?}")) }
    })
    .await;
    let moved = ok.load(Ordering::Relaxed);
    // The reader follows the move too: left (now standby) marks its answer possibly stale, so
    // the client asks the proxy again and reads from right.
    // (Right's servers may need a beacon to learn they are active: until then they mark too.)
    let got = b
        .wait_for("a read to be served by the active copy", SETTLE, || async {
            match reader.read_marked("t", get0()).await.map_err(|e| e.to_string())? {
                (got, false) => Ok(got),
                (_, true) => Err("marked possibly stale".to_string()),
            }
        })
        .await;
    assert_eq!(got, ReadResult::Get(Some(b"v".to_vec())));
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let (after, failed) = (ok.load(Ordering::Relaxed) - moved, failed.load(Ordering::Relaxed));
    eprintln!("e2e: {before} writes before the move, {after} after it (left refusing), {failed} failed");
    assert_eq!(failed, 0, "no write through the proxy failed across the move");
    assert!(after > 0, "writes continued on the new active cluster");
    assert_eq!(client.route("t", true).await.unwrap().role, DrRole::Active);
    // A proxy answers routing only.
    let out = a.cli(&["table", "list", "--meta", &addr]).await;
    assert!(out.code != 0 && out.stderr.contains("not served by tern proxy"), "{out:?}");
    proxy.kill9();
}

//! The meta leader dies: the two others elect a new leader, DDL and writes go on, and the old
//! leader, restarted, rejoins the group with everything it missed.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use tern_e2e::cluster::SETTLE;
use tern_e2e::workload::{verify, write_batch};
use tern_e2e::{Cluster, ClusterOptions, Ledger, MetaView, Proc};
use tern_proto::pb;

/// Waits until the meta servers `among` agree on a leader other than `not`, and returns it.
async fn new_leader(cluster: &Cluster, among: &[Proc], not: Proc) -> Proc {
    cluster
        .wait_for(&format!("a meta leader among {among:?} other than {not}"), SETTLE, || async {
            let s = cluster.status_from(among).await.map_err(|e| format!("status: {e}"))?;
            let leader = Proc::Meta((s.meta_leader as usize).wrapping_sub(1));
            if among.contains(&leader) && leader != not {
                Ok(leader)
            } else {
                Err(format!("meta leader is {}", s.meta_leader))
            }
        })
        .await
}

fn acked(ledger: &Ledger, n: usize) {
    assert_eq!(ledger.acked.len(), n, "not every write was acknowledged: {:?}", ledger.unknown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_meta_leader_is_replaced_and_rejoins_when_restarted() {
    let t0 = Instant::now();
    let mut cluster = Cluster::start(ClusterOptions { metas: 3, replicas: 3, ..Default::default() }).await;
    cluster.create_table("before", 4, 3).await;
    let client = cluster.client();
    let mut ledger = write_batch(&client, "before", "b1", 200).await;
    acked(&ledger, 200);

    let old = cluster.leader_meta().await;
    cluster.kill9(old);
    let survivors: Vec<Proc> = cluster.metas().into_iter().filter(|p| *p != old).collect();
    let killed = Instant::now();
    let new = new_leader(&cluster, &survivors, old).await;
    eprintln!("e2e: {new} leads {:?} after {old} was killed", killed.elapsed());

    // DDL and writes go on under the new leader, also on the table it did not create.
    cluster.create_table("after", 4, 3).await;
    let b2 = write_batch(&client, "before", "b2", 200).await;
    acked(&b2, 200);
    ledger.merge(b2);
    let after = write_batch(&client, "after", "a1", 200).await;
    acked(&after, 200);

    // The old leader comes back as a follower of the new one.
    cluster.restart(old);
    let new_addr = cluster.process(new).addr.clone();
    cluster
        .wait_for(&format!("{old} to follow {new}"), SETTLE, || async {
            match cluster.meta_view(old).await {
                MetaView::Follows { leader: Some(l) } if l == new_addr => Ok(()),
                v => Err(format!("{v:?}")),
            }
        })
        .await;

    // Proof that it rejoined for real: without the new leader, the group is the old leader and
    // the third server; they must elect a leader (the old one's vote is needed) that knows the
    // table created while the old one was down.
    cluster.kill9(new);
    let pair: Vec<Proc> = cluster.metas().into_iter().filter(|p| *p != new).collect();
    let third = new_leader(&cluster, &pair, new).await;
    eprintln!("e2e: {third} leads after {new} was killed too");
    let tables = cluster.meta().call(|mut c| async move { c.list_tables(pb::Empty {}).await }).await.unwrap();
    let names: Vec<&str> = tables.tables.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains(&"before") && names.contains(&"after"), "{names:?}");
    let a2 = write_batch(&client, "after", "a2", 100).await;
    acked(&a2, 100);

    verify(&client, "before", &ledger).await;
    let mut after_all = after;
    after_all.merge(a2);
    verify(&client, "after", &after_all).await;
    eprintln!("e2e: done in {:?}", t0.elapsed());
}

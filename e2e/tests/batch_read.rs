//! `TernClient::read_batch` (the Redis gateway's pipelined GETs): one `BatchRead` per server,
//! answers in order, each read on its own; reads whose server died are retried alone.
#![allow(clippy::unwrap_used)]

use tern_core::WriteOp;
use tern_core::read::{ReadOp, ReadResult};
use tern_e2e::cluster::SETTLE;
use tern_e2e::{Cluster, ClusterOptions, Proc};

fn get(i: u64) -> ReadOp {
    ReadOp::Get { hash_key: format!("k{i}").into_bytes(), sort_key: vec![] }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batched_reads_answer_in_order_and_survive_a_lost_server() {
    let mut c = Cluster::start(ClusterOptions::named("batch", 41)).await;
    c.create_table("t", 8, 3).await;
    let client = c.client();
    for i in 0..300 {
        let op = WriteOp::Set {
            hash_key: format!("k{i}").into_bytes(),
            sort_key: vec![],
            value: format!("v{i}").into_bytes(),
            ttl_secs: 0,
        };
        client.write("t", op).await.unwrap();
    }
    // 300 present keys interleaved with 100 absent ones, and one invalid read (a table scan).
    let ops: Vec<ReadOp> = (0..400).map(|i| get(if i % 4 == 3 { 10_000 + i } else { i * 3 / 4 })).collect();
    let expect = |i: usize| -> ReadResult {
        if i % 4 == 3 {
            ReadResult::Get(None)
        } else {
            ReadResult::Get(Some(format!("v{}", i * 3 / 4).into_bytes()))
        }
    };
    let got = client.read_batch("t", ops.clone()).await;
    assert_eq!(got.len(), 400);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.as_ref().unwrap(), &expect(i), "read {i}");
    }
    let mixed = client.read_batch("t", vec![get(0), ReadOp::ScanTable { scan: Default::default() }]).await;
    assert_eq!(mixed[0].as_ref().unwrap(), &ReadResult::Get(Some(b"v0".to_vec())));
    assert!(mixed[1].as_ref().unwrap_err().to_string().contains("scan_table"), "{:?}", mixed[1]);

    // A server that is primary of some partitions dies: those reads are retried alone.
    let victim = c.primary_of("t", 0).await.unwrap_or(Proc::Replica(0));
    c.kill9(victim);
    let again = c
        .wait_for("every batched read to be answered after the kill", SETTLE, || {
            let (client, ops) = (client.clone(), ops.clone());
            async move {
                let got = client.read_batch("t", ops).await;
                match got.iter().position(|r| r.is_err()) {
                    None => Ok(got),
                    Some(i) => Err(format!("read {i}: {:?}", got[i])),
                }
            }
        })
        .await;
    for (i, r) in again.iter().enumerate() {
        assert_eq!(r.as_ref().unwrap(), &expect(i), "read {i} after the kill");
    }
}

//! Bad input, through the CLI and through the gRPC client: each is refused with a clear
//! message (naming what was wrong), the exit code scripts rely on, and the stable error code,
//! and nothing is written.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use tern_core::mutation::IncrTtl;
use tern_core::read::{ReadOp, ReadResult};
use tern_core::{ErrorCode, WriteOp};
use tern_e2e::{CliOutput, Cluster, ClusterOptions};

/// Asserts a command failed with `code` and that stderr mentions every one of `words`.
#[track_caller]
fn refused(out: &CliOutput, code: i32, words: &[&str]) {
    assert_eq!(out.code, code, "exit code: {out:?}");
    for w in words {
        assert!(out.stderr.contains(w), "stderr does not mention {w:?}: {out:?}");
    }
}

fn set(hk: &str, sk: &str, value: Vec<u8>) -> WriteOp {
    WriteOp::Set { hash_key: hk.into(), sort_key: sk.into(), value, ttl_secs: 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_is_refused_with_clear_errors() {
    let cluster = Cluster::start(ClusterOptions { metas: 1, replicas: 3, ..Default::default() }).await;
    cluster.create_table("t", 2, 3).await;
    let meta = cluster.meta_arg();

    // ---- through the CLI
    // An unknown table: exit 1, naming the table, for data and for admin commands.
    refused(&cluster.kv("nosuch", &["get", "k", "s"]).await, 1, &["nosuch", "not found"]);
    refused(&cluster.kv("nosuch", &["set", "k", "s", "v"]).await, 1, &["nosuch", "not found"]);
    refused(&cluster.cli(&["table", "describe", "nosuch", "--meta", &meta]).await, 1, &["nosuch"]);
    refused(&cluster.cli(&["table", "drop", "nosuch", "--yes", "--meta", &meta]).await, 1, &["nosuch"]);

    // A value over the 1 MiB limit: refused with the sizes and the setting, and not written.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'x'; (1 << 20) + 1]).unwrap();
    let out = cluster.kv("t", &["set", "k", "big", "--value-file", big.to_str().unwrap()]).await;
    refused(&out, 1, &["1048577", "1048576", "max-value-bytes"]);
    assert_eq!(cluster.kv("t", &["get", "k", "big"]).await.ok().stdout, "(not found)\n");

    // incr on a value that is not an integer: refused, the value is unchanged.
    cluster.kv("t", &["set", "k", "name", "alice"]).await.ok();
    refused(&cluster.kv("t", &["incr", "k", "name"]).await, 1, &["not a decimal 64-bit integer", "alice"]);
    assert_eq!(cluster.kv("t", &["get", "k", "name"]).await.ok().stdout, "alice\n");
    // ... and one that would overflow.
    cluster.kv("t", &["set", "k", "n", &i64::MAX.to_string()]).await.ok();
    refused(&cluster.kv("t", &["incr", "k", "n"]).await, 1, &["overflow"]);

    // Bad flags and arguments: usage errors exit 2 (clap), before anything is sent.
    refused(&cluster.kv("t", &["get", "k"]).await, 2, &["SORT_KEY"]);
    refused(&cluster.kv("t", &["incr", "k", "n", "--by", "one"]).await, 2, &["--by"]);
    refused(&cluster.kv("t", &["set", "k", "s", "v", "--ttl", "soon"]).await, 2, &["--ttl"]);
    refused(&cluster.kv("t", &["frobnicate"]).await, 2, &["frobnicate"]);
    refused(
        &cluster.cli(&["table", "create", "u", "--partitions", "many", "--meta", &meta]).await,
        2,
        &["--partitions"],
    );
    refused(&cluster.cli(&["kv", "--table", "t", "get", "k", "s"]).await, 2, &["--meta"]);
    // A server setting out of range, as a flag (usage error) and in a config file (naming the key).
    refused(&cluster.cli(&["replica", "--worker-threads", "0"]).await, 2, &["--worker-threads", "1..=1024"]);
    let config = dir.path().join("replica.toml");
    std::fs::write(&config, "worker-threads = 0\n").unwrap();
    let server_dir = dir.path().join("server");
    let args = ["replica", "--config", config.to_str().unwrap(), "--listen", "127.0.0.1:0", "--meta", &meta];
    let args = [&args[..], &["--cluster-id", "1", "--data-dir", server_dir.to_str().unwrap()]].concat();
    refused(&cluster.cli(&args).await, 1, &["config key worker-threads", "at least 1"]);
    assert!(!server_dir.exists(), "a refused server created its data directory");
    // Values the meta servers refuse: exit 1 with the reason.
    for (name, partitions, words) in [
        ("u", "0", &["partition count 0"][..]),
        ("bad/name", "2", &["bad/name", "not valid"]),
        ("t", "2", &["\"t\"", "already exists"]),
    ] {
        let out = cluster.cli(&["table", "create", name, "--partitions", partitions, "--meta", &meta]).await;
        refused(&out, 1, words);
    }
    // Meta servers that are not there: a clear failure, not a hang.
    let started = Instant::now();
    let nobody = tern_e2e::ports::free_addr();
    let out = cluster.cli(&["kv", "--meta", &nobody, "--table", "t", "get", "k", "s"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains(&nobody) || out.stderr.contains("meta server"), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());

    // ---- through the gRPC client: stable error codes, and no retrying what cannot succeed.
    let client = cluster.client();
    let started = Instant::now();
    let e = client.write("nosuch", set("k", "s", b"v".to_vec())).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::TableNotFound, "{e}");
    assert!(e.to_string().contains("nosuch"), "{e}");
    let e = client.read("nosuch", ReadOp::Get { hash_key: b"k".to_vec(), sort_key: b"s".to_vec() }).await;
    assert_eq!(e.unwrap_err().code(), ErrorCode::TableNotFound);
    assert!(started.elapsed() < Duration::from_secs(2), "not found was retried: {:?}", started.elapsed());

    let e = client.write("t", set("k", "big", vec![0; (1 << 20) + 1])).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::LimitExceeded, "{e}");
    let e = client.write("t", set("k", &"s".repeat(64 * 1024 + 1), b"v".to_vec())).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::LimitExceeded, "{e}");
    let incr =
        WriteOp::Incr { hash_key: b"k".to_vec(), sort_key: b"name".to_vec(), delta: 1, ttl: IncrTtl::Keep };
    let e = client.write("t", incr).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotAnInteger, "{e}");
    let empty = WriteOp::MultiSet { hash_key: b"k".to_vec(), entries: vec![], ttl_secs: 0 };
    assert_eq!(client.write("t", empty).await.unwrap_err().code(), ErrorCode::InvalidArgument);
    let got =
        client.read("t", ReadOp::Get { hash_key: b"k".to_vec(), sort_key: b"big".to_vec() }).await.unwrap();
    assert_eq!(got, ReadResult::Get(None));
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

//! `tern-s3-raw`: the baseline of the backup benchmark (`bench/backup.sh`). Plain `aws-sdk-s3`
//! calls, no Tern code in the data path: `get` downloads every object under a prefix into a
//! directory (one `GetObject` each), `put` uploads every file of a directory under a prefix (one
//! `PutObject` each), both with N requests in flight. Prints one JSON line: objects, bytes,
//! milliseconds and MB/s (10^6 bytes).
//!
//! Credentials and region come from the usual AWS environment (`AWS_ACCESS_KEY_ID`, …), as for
//! `tern backup`; `--endpoint` selects an S3-compatible server (path-style addressing).
//!
//!     tern-s3-raw get --url s3://bucket/prefix/files/ --endpoint http://127.0.0.1:9000 --dir D
//!     tern-s3-raw put --url s3://bucket/raw/ --endpoint http://127.0.0.1:9000 --dir D

use std::path::{Path, PathBuf};
use std::time::Instant;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use futures::{StreamExt, TryStreamExt, stream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    command: String,
    bucket: String,
    prefix: String,
    endpoint: Option<String>,
    dir: PathBuf,
    concurrency: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: tern-s3-raw get|put --url s3://BUCKET/PREFIX --dir DIR [--endpoint URL] [--concurrency N]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let command = it.next().unwrap_or_else(|| usage());
    if command != "get" && command != "put" {
        usage();
    }
    let (mut url, mut endpoint, mut dir, mut concurrency) = (None, None, None, 4usize);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--url" => url = Some(value),
            "--endpoint" => endpoint = Some(value),
            "--dir" => dir = Some(PathBuf::from(value)),
            "--concurrency" => concurrency = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let url = url.unwrap_or_else(|| usage());
    let rest = url.strip_prefix("s3://").unwrap_or_else(|| usage());
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    Args {
        command,
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
        endpoint,
        dir: dir.unwrap_or_else(|| usage()),
        concurrency: concurrency.max(1),
    }
}

async fn client(endpoint: Option<&str>) -> Client {
    let base = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let mut b = aws_sdk_s3::config::Builder::from(&base);
    if let Some(e) = endpoint {
        b = b.endpoint_url(e).force_path_style(true);
    }
    Client::from_conf(b.build())
}

async fn list(c: &Client, bucket: &str, prefix: &str) -> Result<Vec<String>, BoxError> {
    let mut keys = Vec::new();
    let mut pages = c.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        keys.extend(page?.contents().iter().filter_map(|o| o.key().map(str::to_string)));
    }
    Ok(keys)
}

async fn get_one(c: &Client, bucket: &str, key: &str, dir: &Path) -> Result<u64, BoxError> {
    let out = c.get_object().bucket(bucket).key(key).send().await?;
    let name = key.rsplit('/').next().unwrap_or(key);
    let mut file = tokio::fs::File::create(dir.join(name)).await?;
    let mut body = out.body.into_async_read();
    let n = tokio::io::copy(&mut body, &mut file).await?;
    Ok(n)
}

async fn put_one(c: &Client, bucket: &str, key: String, path: PathBuf) -> Result<u64, BoxError> {
    let len = tokio::fs::metadata(&path).await?.len();
    let body = ByteStream::from_path(&path).await?;
    c.put_object().bucket(bucket).key(key).content_length(len as i64).body(body).send().await?;
    Ok(len)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let a = parse_args();
    let c = client(a.endpoint.as_deref()).await;
    let started = Instant::now();
    let (objects, bytes) = if a.command == "get" {
        tokio::fs::create_dir_all(&a.dir).await?;
        let keys = list(&c, &a.bucket, &a.prefix).await?;
        let sizes: Vec<u64> = stream::iter(keys.iter().map(|k| get_one(&c, &a.bucket, k, &a.dir)))
            .buffer_unordered(a.concurrency)
            .try_collect()
            .await?;
        (sizes.len(), sizes.iter().sum::<u64>())
    } else {
        let mut files = Vec::new();
        let mut rd = tokio::fs::read_dir(&a.dir).await?;
        while let Some(e) = rd.next_entry().await? {
            if e.file_type().await?.is_file() {
                files.push(e.path());
            }
        }
        let puts = files.into_iter().map(|p| {
            let key = format!("{}{}", a.prefix, p.file_name().unwrap_or_default().to_string_lossy());
            put_one(&c, &a.bucket, key, p)
        });
        let sizes: Vec<u64> = stream::iter(puts).buffer_unordered(a.concurrency).try_collect().await?;
        (sizes.len(), sizes.iter().sum::<u64>())
    };
    let ms = started.elapsed().as_millis().max(1) as u64;
    println!(
        "{{\"command\":\"{}\",\"objects\":{objects},\"bytes\":{bytes},\"ms\":{ms},\"mb_per_sec\":{:.1}}}",
        a.command,
        bytes as f64 / 1e6 / (ms as f64 / 1e3)
    );
    Ok(())
}

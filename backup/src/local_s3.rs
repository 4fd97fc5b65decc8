//! The local S3-compatible server for trying backups out: `s3s-fs` (objects as plain files in a
//! directory), as `tern up` starts it and as the tests' [`S3Server`](crate::testing::S3Server)
//! does. This module only finds the binary and says how to start it; the caller owns the
//! process (its log, its pid, stopping it). Creating a bucket needs the `s3` feature.
//!
//! `scripts/install-test-deps.sh` installs s3s-fs into the tools cache.

use std::path::{Path, PathBuf};

/// Fixed credentials of a local development server (`tern up`): not secrets, only what the
/// server checks so that a request signed with other keys fails as it would on real S3.
pub const DEV_ACCESS_KEY_ID: &str = "tern-local";
pub const DEV_SECRET_ACCESS_KEY: &str = "tern-local-secret-key";

/// The script that installs s3s-fs (and the AWS CLI), from the repository's root.
/// The bucket of a local deployment's backups (`tern up`): a directory `<root>/tern-backups`
/// of the s3s-fs server, made before the server starts, so it exists from the first request.
pub const DEV_BUCKET: &str = "tern-backups";
/// The region the local server is addressed with.
pub const DEV_REGION: &str = "us-east-1";

/// The environment a local deployment's servers get, so that the meta leader's scheduled
/// backups (and the replica servers' uploads) can use the local server: development keys only.
pub fn dev_env() -> [(&'static str, &'static str); 3] {
    [
        ("AWS_ACCESS_KEY_ID", DEV_ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", DEV_SECRET_ACCESS_KEY),
        ("AWS_REGION", DEV_REGION),
    ]
}

pub const INSTALL_SCRIPT: &str = "scripts/install-test-deps.sh";

/// Where `scripts/install-test-deps.sh` installs s3s-fs: `$TERN_S3S_FS`, else
/// `$TERN_CACHE_DIR/tools/bin/s3s-fs` (`~/.cache/tern/tools/bin/s3s-fs`). The path may not
/// exist: [`find_s3s_fs`] also looks on the PATH.
pub fn s3s_fs_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("TERN_S3S_FS") {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("TERN_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/tern")))
        .unwrap_or_else(|| PathBuf::from("/root/.cache/tern"));
    cache.join("tools/bin/s3s-fs")
}

/// The s3s-fs binary to run: [`s3s_fs_binary`] if it is a file, else `s3s-fs` on the PATH
/// (unless `TERN_S3S_FS` names another path: an explicit choice is not second-guessed).
/// `None`: not installed.
pub fn find_s3s_fs() -> Option<PathBuf> {
    let preferred = s3s_fs_binary();
    if preferred.is_file() {
        return Some(preferred);
    }
    if std::env::var_os("TERN_S3S_FS").is_some() {
        return None;
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join("s3s-fs")).find(|p| p.is_file())
}

/// The arguments of s3s-fs serving the buckets under `root` (one directory each) on
/// `host:port`, checking requests against the given keys.
pub fn s3s_fs_args(
    host: &str,
    port: u16,
    access_key_id: &str,
    secret_access_key: &str,
    root: &Path,
) -> Vec<String> {
    vec![
        "--host".into(),
        host.into(),
        "--port".into(),
        port.to_string(),
        "--access-key".into(),
        access_key_id.into(),
        "--secret-key".into(),
        secret_access_key.into(),
        root.display().to_string(),
    ]
}

/// Creates `bucket` on the server at `endpoint` (path-style, region us-east-1); one that
/// exists already and is ours is fine.
#[cfg(feature = "s3")]
pub async fn ensure_bucket(
    endpoint: &str,
    bucket: &str,
    access_key_id: &str,
    secret_access_key: &str,
) -> crate::Result<()> {
    use crate::s3::{S3Config, S3ObjectStore, S3Target};
    let target = S3Target::parse(&format!("s3://{bucket}/"))?;
    let mut config = S3Config::for_endpoint(target, endpoint, access_key_id, secret_access_key);
    config.region = Some("us-east-1".into());
    let store = S3ObjectStore::new(config).await?;
    if store.check().await.is_ok() {
        return Ok(());
    }
    store.client().create_bucket().bucket(bucket).send().await.map_err(|e| {
        crate::Error::invalid(
            format!("bucket {bucket} on {endpoint}"),
            format!("create it: {}", aws_sdk_s3::error::DisplayErrorContext(&e)),
        )
    })?;
    Ok(())
}

//! Where backups live, as a user names it (`--target`, a policy) and as it travels to the
//! replica servers that upload and the meta state that keeps policies: a URL plus the S3
//! settings, serialisable, opened into an [`ObjectStore`] by [`open_target`].

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::{LocalObjectStore, ObjectStore};

/// A backup target: `s3://bucket/prefix` (with the `s3` feature) or a local directory
/// (`file:///absolute/dir`, or an absolute path).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub url: String,
    /// An S3-compatible server (`http://127.0.0.1:9000`), addressed path-style; `None` for AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Else the process's `AWS_REGION` / profile, else `us-east-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Explicit keys (both or neither). `None`: whoever opens the target uses its own chain
    /// (environment, then profile files) — on a replica server, the server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for TargetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetSpec")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What a target URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    S3,
    Local(PathBuf),
}

impl TargetSpec {
    /// A target with no S3 settings (a local directory, or S3 with the ambient chain).
    pub fn new(url: impl Into<String>) -> Self {
        TargetSpec {
            url: url.into(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
        }
    }

    /// Checks the URL and that keys come in pairs, naming what is wrong.
    pub fn kind(&self) -> Result<TargetKind> {
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return Err(Error::invalid(
                "backup target credentials",
                "give both an access key id and a secret access key, or neither".to_string(),
            ));
        }
        if self.url.starts_with("s3://") {
            return Ok(TargetKind::S3);
        }
        let path = self.url.strip_prefix("file://").unwrap_or(&self.url);
        if path.starts_with('/') {
            if self.endpoint.is_some() {
                return Err(Error::invalid(
                    "backup target",
                    format!("{:?} is a local directory; an S3 endpoint makes no sense with it", self.url),
                ));
            }
            return Ok(TargetKind::Local(PathBuf::from(path)));
        }
        Err(Error::invalid(
            "backup target",
            format!("{:?}: expected s3://bucket/prefix, file:///absolute/dir or an absolute path", self.url),
        ))
    }
}

/// Opens the store a target names and checks it is usable (the bucket or directory exists and
/// the credentials may use it), with an error naming the target if not.
pub async fn open_target(spec: &TargetSpec) -> Result<Arc<dyn ObjectStore>> {
    match spec.kind()? {
        TargetKind::Local(root) => Ok(Arc::new(LocalObjectStore::open(root).await?)),
        TargetKind::S3 => open_s3(spec).await,
    }
}

#[cfg(feature = "s3")]
async fn open_s3(spec: &TargetSpec) -> Result<Arc<dyn ObjectStore>> {
    use crate::s3::{S3Config, S3ObjectStore, S3Target, StaticCredentials};
    let mut config = S3Config::new(S3Target::parse(&spec.url)?);
    if let Some(endpoint) = &spec.endpoint {
        config.endpoint = Some(endpoint.trim_end_matches('/').to_string());
        config.path_style = true;
    }
    config.region = spec.region.clone();
    if let (Some(id), Some(secret)) = (&spec.access_key_id, &spec.secret_access_key) {
        config.credentials = Some(StaticCredentials {
            access_key_id: id.clone(),
            secret_access_key: secret.clone(),
            session_token: None,
        });
    }
    let store = S3ObjectStore::new(config).await?;
    store.check().await?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "s3"))]
async fn open_s3(spec: &TargetSpec) -> Result<Arc<dyn ObjectStore>> {
    Err(Error::invalid("backup target", format!("{:?}: built without S3 support", spec.url)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_classified_and_bad_ones_named() {
        assert_eq!(TargetSpec::new("s3://b/p").kind().unwrap(), TargetKind::S3);
        assert_eq!(TargetSpec::new("file:///tmp/x").kind().unwrap(), TargetKind::Local("/tmp/x".into()));
        assert_eq!(TargetSpec::new("/tmp/x").kind().unwrap(), TargetKind::Local("/tmp/x".into()));
        let e = TargetSpec::new("relative/dir").kind().unwrap_err().to_string();
        assert!(e.contains("relative/dir") && e.contains("s3://"), "{e}");
        let mut half = TargetSpec::new("s3://b/p");
        half.access_key_id = Some("k".into());
        assert!(half.kind().unwrap_err().to_string().contains("both"));
    }

    #[test]
    fn secrets_are_not_printed() {
        let mut spec = TargetSpec::new("s3://b/p");
        spec.secret_access_key = Some("hunter2".into());
        assert!(!format!("{spec:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn a_missing_local_directory_is_named() {
        let e = open_target(&TargetSpec::new("/nonexistent/tern-target")).await.err().unwrap().to_string();
        assert!(e.contains("/nonexistent/tern-target"), "{e}");
    }
}

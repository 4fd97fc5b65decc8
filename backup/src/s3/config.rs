//! Where an S3 store points and how it authenticates: `s3://bucket/prefix` targets, endpoint,
//! region, addressing style, credentials, and the SDK client built from them.

use std::time::Duration;

use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::environment::region::EnvironmentVariableRegionProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::{ProfileFileCredentialsProvider, ProfileFileRegionProvider};
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    SharedCredentialsProvider,
};

use crate::error::{Error, Result};
use crate::retry::RetryPolicy;
use crate::store::{MultipartConfig, validate_prefix};

/// A bucket and a key prefix, parsed from `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Target {
    pub bucket: String,
    /// Empty, or ends with `/`.
    pub prefix: String,
}

impl S3Target {
    /// Parses `s3://bucket` or `s3://bucket/some/prefix` (a trailing `/` is optional).
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |why: &str| Error::invalid("S3 target", format!("{url:?}: {why}"));
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(bad("must start with s3://"));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        validate_bucket(bucket).map_err(|e| bad(&e))?;
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            validate_prefix(prefix)
                .map_err(|_| bad("the prefix must be a relative path without empty, '.' or '..' segments"))?;
        }
        Ok(S3Target {
            bucket: bucket.to_string(),
            prefix: if prefix.is_empty() { String::new() } else { format!("{prefix}/") },
        })
    }
}

impl std::fmt::Display for S3Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// S3's bucket naming rules (the subset that matters for addressing): 3 to 63 lowercase
/// letters, digits, `.` and `-`, starting and ending with a letter or digit.
fn validate_bucket(bucket: &str) -> Result<(), String> {
    if !(3..=63).contains(&bucket.len()) {
        return Err(format!("bucket name {bucket:?} must be 3 to 63 characters"));
    }
    if !bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-') {
        return Err(format!("bucket name {bucket:?} may hold only lowercase letters, digits, '.' and '-'"));
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !edge_ok(bucket.chars().next()) || !edge_ok(bucket.chars().last()) {
        return Err(format!("bucket name {bucket:?} must start and end with a letter or digit"));
    }
    Ok(())
}

/// An access key given explicitly (flags), bypassing the environment and profiles.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Everything an [`crate::S3ObjectStore`] needs.
#[derive(Debug, Clone)]
pub struct S3Config {
    pub target: S3Target,
    /// `http://127.0.0.1:9000` for S3-compatible servers; `None` for AWS itself.
    pub endpoint: Option<String>,
    /// Region; else `AWS_REGION` / `AWS_DEFAULT_REGION`, else the profile's, else `us-east-1`.
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most S3-compatible servers need.
    pub path_style: bool,
    /// Explicit credentials; else the environment (`AWS_ACCESS_KEY_ID`, …), else the profile.
    pub credentials: Option<StaticCredentials>,
    /// The profile to read (else `AWS_PROFILE`, else `default`).
    pub profile: Option<String>,
    pub multipart: MultipartConfig,
    /// Keys per listing request (S3 caps it at 1000).
    pub list_page_size: u32,
    /// Retries of each request (the SDK's own retries are off: one policy, one classification).
    pub retry: RetryPolicy,
    pub connect_timeout: Duration,
    /// How long a response may stall before the attempt fails (retryable).
    pub read_timeout: Duration,
}

impl S3Config {
    /// A config for `target` with defaults: AWS endpoint, virtual-hosted addressing, the
    /// environment/profile credential chain.
    pub fn new(target: S3Target) -> Self {
        S3Config {
            target,
            endpoint: None,
            region: None,
            path_style: false,
            credentials: None,
            profile: None,
            multipart: MultipartConfig::default(),
            list_page_size: 1000,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
        }
    }

    /// A config for an S3-compatible server at `endpoint`, path-style, with explicit keys.
    pub fn for_endpoint(
        target: S3Target,
        endpoint: &str,
        access_key_id: &str,
        secret_access_key: &str,
    ) -> Self {
        S3Config {
            endpoint: Some(endpoint.trim_end_matches('/').to_string()),
            path_style: true,
            credentials: Some(StaticCredentials {
                access_key_id: access_key_id.to_string(),
                secret_access_key: secret_access_key.to_string(),
                session_token: None,
            }),
            ..S3Config::new(target)
        }
    }

    pub fn validate(&self) -> Result<()> {
        self.multipart.validate()?;
        if self.multipart.part_size_bytes < MultipartConfig::S3_MIN_PART_BYTES {
            return Err(Error::invalid(
                "multipart part size",
                format!(
                    "{} bytes is below S3's minimum part size of {} bytes",
                    self.multipart.part_size_bytes,
                    MultipartConfig::S3_MIN_PART_BYTES
                ),
            ));
        }
        if !(1..=1000).contains(&self.list_page_size) {
            return Err(Error::invalid(
                "list page size",
                format!("{} is not in 1..=1000", self.list_page_size),
            ));
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(Error::invalid(
                "S3 endpoint",
                format!("{endpoint:?} must start with http:// or https://"),
            ));
        }
        Ok(())
    }

    /// The endpoint as shown in messages.
    pub fn endpoint_name(&self) -> String {
        self.endpoint.clone().unwrap_or_else(|| "the AWS S3 endpoint".to_string())
    }

    /// Builds the SDK client. Reads the environment and profile files when credentials or
    /// region are not explicit; never the instance metadata service (no surprise network).
    pub(crate) async fn client(&self) -> Result<aws_sdk_s3::Client> {
        self.validate()?;
        let region = RegionProviderChain::first_try(self.region.clone().map(Region::new))
            .or_else(EnvironmentVariableRegionProvider::new())
            .or_else(profile_region(self.profile.as_deref()))
            .region()
            .await
            .unwrap_or_else(|| Region::new("us-east-1"));
        let credentials = match &self.credentials {
            Some(c) => SharedCredentialsProvider::new(Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.clone(),
                c.session_token.clone(),
                None,
                "tern-explicit",
            )),
            None => {
                let mut profile = ProfileFileCredentialsProvider::builder();
                if let Some(name) = &self.profile {
                    profile = profile.profile_name(name);
                }
                SharedCredentialsProvider::new(
                    CredentialsProviderChain::first_try(
                        "environment",
                        EnvironmentVariableCredentialsProvider::new(),
                    )
                    .or_else("profile", profile.build()),
                )
            }
        };
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(region)
            .credentials_provider(credentials)
            .force_path_style(self.path_style)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(self.connect_timeout)
                    .read_timeout(self.read_timeout)
                    .build(),
            )
            // Checksums only where S3 requires them: S3-compatible servers differ in support
            // for the newer CRC headers; backups carry their own SHA-256 in the key.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &self.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Ok(aws_sdk_s3::Client::from_conf(builder.build()))
    }
}

fn profile_region(profile: Option<&str>) -> ProfileFileRegionProvider {
    let mut b = ProfileFileRegionProvider::builder();
    if let Some(name) = profile {
        b = b.profile_name(name);
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets_and_names_what_is_wrong() {
        let t = S3Target::parse("s3://tern-backups/prod/eu/").expect("valid");
        assert_eq!(t.bucket, "tern-backups");
        assert_eq!(t.prefix, "prod/eu/");
        assert_eq!(t.to_string(), "s3://tern-backups/prod/eu/");
        let t = S3Target::parse("s3://tern-backups").expect("valid");
        assert_eq!(t.prefix, "");
        assert_eq!(S3Target::parse("s3://abc/x").expect("valid").prefix, "x/");

        for (url, needle) in [
            ("http://b/x", "must start with s3://"),
            ("s3://", "3 to 63"),
            ("s3://Upper/x", "lowercase"),
            ("s3://-bucket/x", "start and end"),
            ("s3://bucket/../x", "relative path"),
            ("s3://bucket//x", "relative path"),
        ] {
            let err = S3Target::parse(url).expect_err(url).to_string();
            assert!(err.contains(needle), "{url}: {err}");
            assert!(err.contains(url), "{url}: {err}");
        }
    }

    #[test]
    fn config_rejects_tiny_parts_and_bad_endpoints() {
        let target = S3Target::parse("s3://bucket").expect("valid");
        let mut c = S3Config::for_endpoint(target, "http://127.0.0.1:1", "k", "s");
        assert!(c.validate().is_ok());
        c.multipart.part_size_bytes = 1024;
        assert!(c.validate().expect_err("tiny").to_string().contains("minimum part size"));
        c.multipart = MultipartConfig::default();
        c.endpoint = Some("127.0.0.1:9000".into());
        assert!(c.validate().expect_err("scheme").to_string().contains("http://"));
        assert!(!format!("{:?}", c.credentials).contains("\"s\""), "secret redacted");
    }
}

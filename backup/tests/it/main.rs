//! tern-backup's integration tests (one binary). The S3 tests start real servers (s3s-fs and
//! moto, installed by scripts/install-test-deps.sh) on 127.0.0.1 and fail if they are missing.

mod backups;
mod s3_servers;
mod stores;

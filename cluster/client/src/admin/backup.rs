//! Backups through the admin client: [`AdminClient`] is the cluster the backup coordinator
//! (`tern_backup::take`) talks to — the table and its primaries from the meta servers, and
//! `ReplicaBackup.BackupPartition` on a partition's primary (a server-streaming call: progress,
//! then the partition's manifest entry). Also the protobuf forms of a backup target and a
//! partition's manifest entry, used by the replica server too (the only conversions).

use async_trait::async_trait;
use tern_backup::model::{Checksum, FileEntry, PartitionManifest, PartitionUpload, TimetagRange};
use tern_backup::{BackupCluster, ClusterTable, PartitionJob, PartitionProgress, TargetSpec};
use tern_core::{Error, Gpid, Result};
use tern_proto::convert::gpid_to_pb;
use tern_proto::pb;
use tern_proto::pb::replica_backup_client::ReplicaBackupClient;
use tern_proto::status::from_status;

use super::AdminClient;

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// A target as it travels in a request (its keys too, when the caller gave them).
pub fn target_to_pb(t: &TargetSpec) -> pb::BackupTarget {
    pb::BackupTarget {
        url: t.url.clone(),
        endpoint: t.endpoint.clone().unwrap_or_default(),
        region: t.region.clone().unwrap_or_default(),
        access_key_id: t.access_key_id.clone().unwrap_or_default(),
        secret_access_key: t.secret_access_key.clone().unwrap_or_default(),
    }
}

pub fn target_from_pb(t: Option<&pb::BackupTarget>) -> Result<TargetSpec> {
    let t = t.ok_or_else(|| Error::InvalidArgument("a backup request without a target".into()))?;
    let spec = TargetSpec {
        url: t.url.clone(),
        endpoint: non_empty(&t.endpoint),
        region: non_empty(&t.region),
        access_key_id: non_empty(&t.access_key_id),
        secret_access_key: non_empty(&t.secret_access_key),
    };
    spec.kind().map_err(|e| Error::InvalidArgument(e.to_string()))?;
    Ok(spec)
}

pub fn backed_up_to_pb(u: &PartitionUpload) -> pb::BackedUpPartition {
    let p = &u.partition;
    pb::BackedUpPartition {
        index: p.index,
        decree: p.decree,
        has_timetags: p.timetags.is_some(),
        timetag_min: p.timetags.map_or(0, |t| t.min),
        timetag_max: p.timetags.map_or(0, |t| t.max),
        files: p
            .files
            .iter()
            .map(|f| pb::BackupFile {
                name: f.name.clone(),
                size_bytes: f.size_bytes,
                sha256: f.sha256.to_hex(),
            })
            .collect(),
        files_uploaded: u.files_uploaded,
        files_skipped: u.files_skipped,
        bytes_uploaded: u.bytes_uploaded,
        bytes_skipped: u.bytes_skipped,
    }
}

pub fn backed_up_from_pb(p: pb::BackedUpPartition) -> Result<PartitionUpload> {
    let files = p
        .files
        .into_iter()
        .map(|f| {
            let sha256: Checksum = f.sha256.parse().map_err(|e: tern_backup::Error| {
                Error::corruption(format!("checksum of backed-up file {}: {e}", f.name))
            })?;
            Ok(FileEntry { name: f.name, size_bytes: f.size_bytes, sha256 })
        })
        .collect::<Result<_>>()?;
    Ok(PartitionUpload {
        partition: PartitionManifest {
            index: p.index,
            decree: p.decree,
            timetags: p.has_timetags.then_some(TimetagRange { min: p.timetag_min, max: p.timetag_max }),
            files,
        },
        files_uploaded: p.files_uploaded,
        files_skipped: p.files_skipped,
        bytes_uploaded: p.bytes_uploaded,
        bytes_skipped: p.bytes_skipped,
    })
}

/// A cluster error as the backup coordinator classifies it: retryable by its code.
fn cluster_error(doing: String) -> impl FnOnce(Error) -> tern_backup::Error {
    move |e| tern_backup::Error::Cluster { retryable: e.is_retryable(), doing, detail: e.to_string() }
}

impl AdminClient {
    /// Backs up one partition on the replica server at `primary` (which must be its primary),
    /// calling `progress` as it reports; answers with its manifest entry.
    pub async fn backup_partition_on(
        &self,
        primary: &str,
        gpid: Gpid,
        job: &PartitionJob,
        progress: &(dyn Fn(PartitionProgress) + Send + Sync),
    ) -> Result<PartitionUpload> {
        let mut client = ReplicaBackupClient::new(crate::Pool::new().channel(primary)?);
        let req = pb::BackupPartitionRequest {
            gpid: Some(gpid_to_pb(gpid)),
            backup_id: job.backup_id.to_string(),
            target: Some(target_to_pb(&job.target)),
            limit_bytes_per_sec: job.limit_bytes_per_sec.unwrap_or(0),
        };
        let mut stream = client.backup_partition(req).await.map_err(|s| from_status(&s))?.into_inner();
        while let Some(m) = stream.message().await.map_err(|s| from_status(&s))? {
            progress(PartitionProgress {
                files_total: m.files_total,
                files_done: m.files_done,
                bytes_total: m.bytes_total,
                bytes_done: m.bytes_done,
            });
            if let Some(done) = m.done {
                return backed_up_from_pb(done);
            }
        }
        Err(Error::Unavailable(format!("{primary} ended the backup of partition {gpid} without a result")))
    }
}

#[async_trait]
impl BackupCluster for AdminClient {
    async fn table(&self, table: &str) -> tern_backup::Result<ClusterTable> {
        let doing = format!("resolve table {table} for a backup");
        let route = self.describe_table(table).await.map_err(cluster_error(doing.clone()))?;
        let cluster = self.cluster_name().await.map_err(cluster_error(doing))?;
        let mut primaries = vec![None; route.table.partitions as usize];
        for config in &route.partitions {
            let i = config.gpid.partition.0 as usize;
            if let (Some(slot), Some(p)) = (primaries.get_mut(i), config.primary) {
                *slot = route.addresses.get(&p).cloned();
            }
        }
        Ok(ClusterTable {
            cluster,
            schema: tern_backup::model::TableSchema {
                name: route.table.name.clone(),
                partition_count: route.table.partitions,
                // Tables have no default TTL in the meta state yet (TTLs are per write).
                default_ttl_secs: None,
            },
            primaries,
        })
    }

    async fn backup_partition(
        &self,
        primary: &str,
        job: &PartitionJob,
        progress: &(dyn Fn(PartitionProgress) + Send + Sync),
    ) -> tern_backup::Result<PartitionUpload> {
        let doing = format!("back up partition {} of {} on {primary}", job.index, job.table);
        let route = self.describe_table(&job.table).await.map_err(cluster_error(doing.clone()))?;
        let gpid = Gpid::new(route.table.id.0, job.index);
        self.backup_partition_on(primary, gpid, job, progress).await.map_err(cluster_error(doing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_entries_survive_the_wire() -> Result<()> {
        let mut t = TargetSpec::new("s3://b/p");
        t.endpoint = Some("http://127.0.0.1:9".into());
        t.access_key_id = Some("k".into());
        t.secret_access_key = Some("s".into());
        assert_eq!(target_from_pb(Some(&target_to_pb(&t)))?, t);
        assert!(target_from_pb(Some(&pb::BackupTarget { url: "rel".into(), ..Default::default() })).is_err());

        let u = PartitionUpload {
            partition: PartitionManifest {
                index: 3,
                decree: 77,
                timetags: Some(TimetagRange { min: 1, max: 9 }),
                files: vec![FileEntry {
                    name: "1.sst".into(),
                    size_bytes: 5,
                    sha256: Checksum::of(b"hello"),
                }],
            },
            files_uploaded: 1,
            files_skipped: 0,
            bytes_uploaded: 5,
            bytes_skipped: 0,
        };
        assert_eq!(backed_up_from_pb(backed_up_to_pb(&u))?, u);
        Ok(())
    }
}

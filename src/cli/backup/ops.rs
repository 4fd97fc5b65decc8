//! `tern backup now` and `tern backup restore` register what they do with the meta servers as a
//! backup operation in use on their target (docs/backup.md invariant 5): a retention run there
//! waits for them, they wait for it, and retention keeps the backup a restore reads.

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use tern_backup::TargetSpec;
use tern_client::AdminClient;
use tern_client::admin::backup_policy::{BackupOpInfo, BackupOpKind};

/// The lease asked for; renewed every third of it while the work runs.
const LEASE: Duration = Duration::from_secs(60);

/// Runs `work` while registered as an operation of `kind` on `target`. Refused while a
/// retention run is in use there (the error says so and by whom).
pub async fn while_registered<T>(
    admin: &AdminClient,
    kind: BackupOpKind,
    target: &TargetSpec,
    table: &str,
    backup_id: Option<String>,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "this host".into());
    let verb = match kind {
        BackupOpKind::Backup => "tern backup now",
        BackupOpKind::Restore => "tern backup restore",
        BackupOpKind::Retention => "tern backup",
    };
    let op = BackupOpInfo {
        id: 0,
        kind,
        target_url: target.url.clone(),
        target_endpoint: target.endpoint.clone(),
        table: Some(table.to_string()),
        backup_id,
        policy: None,
        holder: format!("{verb} on {host} (pid {})", std::process::id()),
        lease_ms: LEASE.as_millis() as u64,
        started_ms: 0,
        lease_until_ms: 0,
    };
    let op = admin
        .begin_backup_op(&op)
        .await
        .context("the target is busy (try again when the retention run there has ended)")?;
    let renew = async {
        loop {
            tokio::time::sleep(LEASE / 3).await;
            if let Err(e) = admin.renew_backup_op(op.id, None).await {
                return e;
            }
        }
    };
    let result = tokio::select! {
        r = work => r,
        e = renew => Err(anyhow::Error::new(e).context("lost the registration of this run with the meta servers")),
    };
    if let Err(e) = admin.end_backup_op(op.id).await {
        tracing::warn!("end the registration of this run (it lapses with its lease): {e}");
    }
    result
}

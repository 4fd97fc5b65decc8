//! Garbage collection of replicas this server no longer serves.
//!
//! When the balancer moves a replica away, a decommission drains a server, or the meta server
//! replaces a member after a failure, the old replica stays open here, inactive, and its store
//! and log stay on disk; so do the replicas of a dropped table. Once its partition's
//! configuration has left this server out for `gc_removed_after` (and the replica is still
//! inactive: not learning its way back in), or `gc_removed_after` after the meta server said its
//! table was purged (dropped, recall window over; beacon answers list such tables), the
//! replica is stopped (its log reset, so that nothing of it is replayed into a later replica of
//! the partition here, and closed with its store) and its directory is moved to
//! `replicas/garbage/<gpid>.<unix seconds>`. Those are deleted after `garbage_retention`: an
//! operator can still copy data out of one until then (Pegasus keeps such replicas as `.gar`
//! directories for a day in the same way).
//!
//! Safe to interrupt anywhere: a crash before the move reopens the replica at start (and the
//! next round collects it again); a crash after it leaves a garbage directory, which is not a
//! replica (`Registry::open_existing` reads `replicas/<table>.<partition>` only).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tern_core::{Error, Gpid, Result};
use tern_storage::dir::sync_dir;
use tokio::sync::oneshot;

use tokio::sync::watch;

use super::registry::Registry;
use super::task::Input;

/// How often to look for replicas to collect and for expired garbage.
const PERIOD: Duration = Duration::from_secs(10);
/// How long a replica may take to stop before this round gives up on it.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn run(registry: Arc<Registry>, mut stopping: watch::Receiver<bool>) {
    let opts = registry.env().opts.clone();
    let mut interval =
        tokio::time::interval(PERIOD.min(opts.gc_removed_after).max(Duration::from_millis(100)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        collect_left_out(&registry).await;
        let (root, keep) = (garbage_dir(&registry), opts.garbage_retention);
        match tokio::task::spawn_blocking(move || delete_expired(&root, keep, SystemTime::now())).await {
            Ok(Err(e)) => tracing::warn!("deleting old garbage replicas: {e}"),
            Err(e) => tracing::warn!("deleting old garbage replicas: {e}"),
            Ok(Ok(())) => {}
        }
    }
}

fn garbage_dir(registry: &Registry) -> PathBuf {
    registry.env().opts.data_dir.join("replicas").join("garbage")
}

/// Stops every replica left out long enough and moves its directory to the garbage.
async fn collect_left_out(registry: &Registry) {
    let after = registry.env().opts.gc_removed_after;
    for g in registry.left_out_for(after) {
        let Some(handle) = registry.take_for_collection(g, after) else { continue };
        tracing::info!(gpid = %g, "replica left out of its partition for {after:?}: closing it");
        let (done, stopped) = oneshot::channel();
        handle.control(Input::Stop(done));
        drop(handle);
        let moved = match tokio::time::timeout(STOP_TIMEOUT, stopped).await {
            Ok(_) => {
                let (from, to) = (registry.replica_dir(g), garbage_dir(registry));
                tokio::task::spawn_blocking(move || move_to_garbage(&from, &to, g, SystemTime::now()))
                    .await
                    .map_err(|e| Error::invariant(format!("garbage move task: {e}")))
                    .and_then(|r| r)
            }
            Err(_) => Err(Error::Unavailable(format!("replica {g} did not stop within {STOP_TIMEOUT:?}"))),
        };
        match moved {
            Ok(to) => tracing::info!(gpid = %g, "replica moved to {}", to.display()),
            Err(e) => tracing::warn!(gpid = %g, "garbage-collecting the replica: {e}"),
        }
        registry.collected(g);
    }
}

fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::io(what.to_string(), e)
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Moves the replica directory `from` to `garbage/<gpid>.<now in unix seconds>`, durably.
pub(crate) fn move_to_garbage(from: &Path, garbage: &Path, g: Gpid, now: SystemTime) -> Result<PathBuf> {
    std::fs::create_dir_all(garbage).map_err(io(format!("create {}", garbage.display())))?;
    let to = garbage.join(format!("{g}.{}", unix_secs(now)));
    std::fs::rename(from, &to).map_err(io(format!("move {} to {}", from.display(), to.display())))?;
    if let Some(parent) = from.parent() {
        sync_dir(parent)?;
    }
    sync_dir(garbage)?;
    Ok(to)
}

/// Deletes the garbage directories (`<gpid>.<unix seconds>`) older than `keep`.
pub(crate) fn delete_expired(garbage: &Path, keep: Duration, now: SystemTime) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(garbage) else { return Ok(()) };
    for e in entries {
        let path = e.map_err(io(format!("list {}", garbage.display())))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let Some(moved_at) = name.rsplit_once('.').and_then(|(_, s)| s.parse::<u64>().ok()) else {
            continue; // not ours
        };
        if unix_secs(now).saturating_sub(moved_at) >= keep.as_secs() {
            std::fs::remove_dir_all(&path).map_err(io(format!("delete {}", path.display())))?;
            tracing::info!("deleted garbage replica {}", path.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_moved_durably_and_deleted_only_after_the_retention() {
        let tmp = tempfile::tempdir().unwrap();
        let replicas = tmp.path().join("replicas");
        let from = replicas.join("1.3");
        std::fs::create_dir_all(from.join("store")).unwrap();
        std::fs::write(from.join("store").join("data"), b"x").unwrap();
        let garbage = replicas.join("garbage");
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let to = move_to_garbage(&from, &garbage, Gpid::new(1, 3), t0).unwrap();
        assert_eq!(to, garbage.join("1.3.1000000"));
        assert!(!from.exists());
        assert_eq!(std::fs::read(to.join("store").join("data")).unwrap(), b"x");
        // Something else in the garbage directory is left alone.
        std::fs::write(garbage.join("README"), b"operator notes").unwrap();

        let day = Duration::from_secs(24 * 3600);
        delete_expired(&garbage, day, t0 + day - Duration::from_secs(1)).unwrap();
        assert!(to.exists(), "deleted before the retention was over");
        delete_expired(&garbage, day, t0 + day).unwrap();
        assert!(!to.exists(), "kept after the retention");
        assert!(garbage.join("README").exists());
    }
}

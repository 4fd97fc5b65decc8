//! Retention as a pure function: which manifests, intents and files to delete.
//!
//! Rules (docs/backup.md, "Retention"):
//! - policies apply per (cluster, table); a backup is kept if it is among the newest
//!   `keep_last`, or younger than `max_age` (either rule keeps it; with neither set, all are
//!   kept); the newest backup of each table is always kept (a table never loses its last
//!   restorable backup to age alone), and so is every backup in use (a restore reading it);
//! - an intent (`pending.json`) of a backup in use protects its files; an intent of a backup
//!   not in use is stale (the run died) and is deleted, and so is one whose manifest exists;
//! - a stored file is deleted only if no kept manifest and no protected intent references it.
//!
//! Executing a plan deletes manifests first, then intents, then files, so no kept manifest
//! ever references a missing file. The plan is only safe if nothing starts a backup on the
//! same target between listing and deleting (the caller, the meta server, serialises them).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};

use super::checksum::Checksum;
use super::layout::BackupId;
use super::manifest::Manifest;

/// How long to keep backups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionPolicy {
    /// Keep the newest N backups of each table.
    pub keep_last: Option<u32>,
    /// Keep backups younger than this.
    pub max_age: Option<Duration>,
}

/// What the store holds, as listed (manifests and intents parsed).
#[derive(Debug, Clone)]
pub struct RetentionInput<'a> {
    pub manifests: &'a [Manifest],
    /// Intents (`pending.json`) of backups not (yet) complete.
    pub pending: &'a [Manifest],
    /// Every `files/<sha256>` in the store.
    pub stored_files: &'a BTreeSet<Checksum>,
    /// Backups being written or read right now.
    pub in_use: &'a BTreeSet<BackupId>,
}

impl Default for RetentionInput<'_> {
    /// Nothing stored, nothing in use.
    fn default() -> Self {
        static NO_FILES: BTreeSet<Checksum> = BTreeSet::new();
        static NO_IDS: BTreeSet<BackupId> = BTreeSet::new();
        RetentionInput { manifests: &[], pending: &[], stored_files: &NO_FILES, in_use: &NO_IDS }
    }
}

/// What to delete, in this order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    pub delete_manifests: Vec<BackupId>,
    pub delete_pending: Vec<BackupId>,
    pub delete_files: Vec<Checksum>,
}

impl RetentionPlan {
    pub fn is_empty(&self) -> bool {
        self.delete_manifests.is_empty() && self.delete_pending.is_empty() && self.delete_files.is_empty()
    }
}

/// Decides what retention deletes at `now`.
pub fn plan_retention(
    input: &RetentionInput<'_>,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
) -> RetentionPlan {
    // Newest first within each table.
    let mut by_table: BTreeMap<(&str, &str), Vec<&Manifest>> = BTreeMap::new();
    for m in input.manifests {
        by_table.entry((m.cluster.as_str(), m.table.name.as_str())).or_default().push(m);
    }
    let mut kept: Vec<&Manifest> = Vec::new();
    let mut delete_manifests = Vec::new();
    for group in by_table.values_mut() {
        group.sort_by(|a, b| b.backup_id.cmp(&a.backup_id));
        for (rank, m) in group.iter().enumerate() {
            let by_count = policy.keep_last.is_some_and(|n| rank < n as usize);
            let by_age = policy.max_age.is_some_and(|age| now.signed_duration_since(m.created_at) <= age);
            let no_policy = policy.keep_last.is_none() && policy.max_age.is_none();
            let keep = rank == 0 || no_policy || by_count || by_age || input.in_use.contains(&m.backup_id);
            if keep {
                kept.push(m);
            } else {
                delete_manifests.push(m.backup_id.clone());
            }
        }
    }
    delete_manifests.sort();

    let complete: BTreeSet<&BackupId> = input.manifests.iter().map(|m| &m.backup_id).collect();
    let mut protected: BTreeSet<Checksum> = kept.iter().flat_map(|m| m.checksums()).collect();
    let mut delete_pending = Vec::new();
    for p in input.pending {
        if input.in_use.contains(&p.backup_id) && !complete.contains(&p.backup_id) {
            protected.extend(p.checksums());
        } else {
            delete_pending.push(p.backup_id.clone());
        }
    }
    delete_pending.sort();
    delete_pending.dedup();

    let delete_files = input.stored_files.iter().filter(|c| !protected.contains(c)).copied().collect();
    RetentionPlan { delete_manifests, delete_pending, delete_files }
}

/// Retention of one policy on a target other policies (or other clusters) share: only the
/// manifests `in_scope` accepts may be deleted, by `policy`; every other manifest is kept and
/// protects its files. Intents and files are decided over everything, as [`plan_retention`]
/// does (an intent not in use is stale whoever wrote it: the caller excludes backups on the
/// target while it runs, docs/backup.md invariant 5).
pub fn plan_scoped_retention(
    input: &RetentionInput<'_>,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    in_scope: &dyn Fn(&Manifest) -> bool,
) -> RetentionPlan {
    let scoped: Vec<Manifest> = input.manifests.iter().filter(|m| in_scope(m)).cloned().collect();
    let first = plan_retention(
        &RetentionInput { manifests: &scoped, in_use: input.in_use, ..RetentionInput::default() },
        policy,
        now,
    );
    let deleted: BTreeSet<&BackupId> = first.delete_manifests.iter().collect();
    let rest: Vec<Manifest> =
        input.manifests.iter().filter(|m| !deleted.contains(&m.backup_id)).cloned().collect();
    // With no rule, every remaining manifest is kept: what goes is what nothing kept uses.
    let second = plan_retention(
        &RetentionInput { manifests: &rest, ..input.clone() },
        &RetentionPolicy::default(),
        now,
    );
    RetentionPlan {
        delete_manifests: first.delete_manifests,
        delete_pending: second.delete_pending,
        delete_files: second.delete_files,
    }
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;

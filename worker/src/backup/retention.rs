//! Retention over a backup chain: which backups are kept, which are deleted, and which are
//! damaged and left for a person to look at.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration as ChronoDuration, Utc};
use serde::Serialize;

use super::manifest::{backup_dir, Checkpoint};
use super::read::{list_backups, verify_backup, BackupSummary};
use crate::error::{Error, Result};
use crate::storage::{ObjectInfo, Storage};

/// Default of the backup-cleanup task's `incompleteGracePeriod`.
pub const DEFAULT_INCOMPLETE_GRACE: &str = "24h";

/// What a retention run deleted and kept.
#[derive(Debug, Clone, Serialize)]
pub struct CleanupReport {
    pub chain: String,
    /// Every backup deleted: complete ones past the retention, then incomplete ones.
    pub deleted: Vec<String>,
    /// Of `deleted`, the incomplete backups whose last write was older than the grace period.
    pub deleted_incomplete: Vec<String>,
    pub kept: Vec<String>,
    /// Backups kept only because a kept incremental backup builds on them.
    pub kept_as_parents: Vec<String>,
    /// Complete backups that failed verification (or build on one that did): never counted
    /// as kept and never deleted by retention, so a person can look at them.
    pub damaged: Vec<String>,
}

/// What retention keeps of a chain.
#[derive(Debug, Clone)]
pub struct Retention {
    pub chain: String,
    /// Keep at most this many usable complete backups (the newest is always kept).
    pub keep_last: Option<u32>,
    /// Keep only usable complete backups this young (the newest is always kept).
    pub max_age: Option<ChronoDuration>,
    /// Incomplete backups whose last write is older than this are deleted.
    pub incomplete_grace: ChronoDuration,
}

/// Applies retention to one chain. Only *usable* complete backups count: their manifests and
/// every segment's checksum verify (what `verify-backup` checks), and so does every backup
/// they build on. The newest usable one is always kept, then the newest `keep_last` usable
/// ones within `max_age`; a backup a kept incremental builds on is never deleted; damaged
/// ones are reported and left alone. Incomplete backups of the chain (interrupted, never
/// resumed) are deleted once their last write is older than the grace period. Each deleted
/// backup loses its manifests first, so a partly deleted backup is never mistaken for a
/// complete one.
pub async fn apply_retention(storage: &Storage, retention: &Retention) -> Result<CleanupReport> {
    let t = retention;
    let max_age = t.max_age;
    let grace = t.incomplete_grace;
    let all = list_backups(storage).await?;
    let mut chain: Vec<&BackupSummary> = all
        .iter()
        .filter(|b| b.complete && b.chain.as_deref() == Some(t.chain.as_str()))
        .collect();
    chain.sort_by_key(|b| std::cmp::Reverse(b.completed_at));
    let parents: BTreeMap<&str, &str> = chain
        .iter()
        .filter_map(|b| b.parent.as_deref().map(|p| (b.backup_id.as_str(), p)))
        .collect();
    let mut verdicts: BTreeMap<String, bool> = BTreeMap::new();
    let now = Utc::now();
    let mut keep: BTreeSet<String> = BTreeSet::new();
    let mut damaged = Vec::new();
    let mut counted = 0u32;
    for b in &chain {
        let within_count = t.keep_last.is_none_or(|n| counted < n);
        let within_age = match (max_age, b.completed_at) {
            (Some(age), Some(done)) => now - done <= age,
            _ => true,
        };
        if !(counted == 0 || (within_count && within_age)) {
            continue;
        }
        if usable(storage, &b.backup_id, &parents, &mut verdicts).await? {
            keep.insert(b.backup_id.clone());
            counted += 1;
        } else {
            damaged.push(b.backup_id.clone());
        }
    }
    let mut kept_as_parents = Vec::new();
    let mut frontier: Vec<String> = keep.iter().chain(&damaged).cloned().collect();
    while let Some(id) = frontier.pop() {
        if let Some(p) = parents.get(id.as_str()) {
            if keep.insert((*p).to_string()) {
                kept_as_parents.push((*p).to_string());
                frontier.push((*p).to_string());
            }
        }
    }
    let mut deleted = Vec::new();
    for b in &chain {
        if keep.contains(&b.backup_id) || damaged.contains(&b.backup_id) {
            continue;
        }
        delete_backup(storage, &b.backup_id).await?;
        tracing::info!(backup_id = %b.backup_id, "deleted by retention");
        deleted.push(b.backup_id.clone());
    }
    let deleted_incomplete = remove_stale_incomplete(storage, &all, &t.chain, grace).await?;
    deleted.extend(deleted_incomplete.iter().cloned());
    Ok(CleanupReport {
        chain: t.chain.clone(),
        deleted,
        deleted_incomplete,
        kept: chain
            .iter()
            .filter(|b| keep.contains(&b.backup_id))
            .map(|b| b.backup_id.clone())
            .collect(),
        kept_as_parents,
        damaged,
    })
}

/// Whether backup `id` verifies (manifests, segment checksums and headers) and so does every
/// backup it builds on (`parents`); a parent that is gone makes it unusable too. Verdicts are
/// kept in `seen`.
async fn usable(
    storage: &Storage,
    id: &str,
    parents: &BTreeMap<&str, &str>,
    seen: &mut BTreeMap<String, bool>,
) -> Result<bool> {
    let mut lineage = vec![id.to_string()];
    while let Some(p) = lineage.last().and_then(|c| parents.get(c.as_str())) {
        if lineage.iter().any(|l| l == p) {
            break;
        }
        lineage.push((*p).to_string());
    }
    for b in &lineage {
        let ok = match seen.get(b) {
            Some(ok) => *ok,
            None => {
                let ok = match verify_backup(storage, b, false).await {
                    Ok(r) => {
                        for p in r.problems.iter().take(5) {
                            tracing::warn!(backup_id = %b, object = %p.object, problem = %p.problem, "retention: the backup does not verify");
                        }
                        r.ok
                    }
                    Err(
                        e @ (Error::Storage { .. }
                        | Error::StorageClient(_)
                        | Error::Connection { .. }),
                    ) => return Err(e),
                    Err(e) => {
                        tracing::warn!(backup_id = %b, error = %e, "retention: the backup does not verify");
                        false
                    }
                };
                seen.insert(b.clone(), ok);
                ok
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Deletes every object of backup `id`, its manifests first.
async fn delete_backup(storage: &Storage, id: &str) -> Result<()> {
    let dir = backup_dir(id);
    let mut objects = storage.list(&dir).await?;
    objects.sort_by_key(|o| !o.key.starts_with(&format!("{dir}manifest/")));
    for o in objects {
        storage.delete(&o.key).await?;
    }
    Ok(())
}

/// Deletes the incomplete backups of `chain` whose newest object is older than `grace`. The
/// chain of a backup no shard finished comes from its checkpoints; one whose chain is unknown
/// is left alone.
async fn remove_stale_incomplete(
    storage: &Storage,
    all: &[BackupSummary],
    chain: &str,
    grace: ChronoDuration,
) -> Result<Vec<String>> {
    let now = Utc::now();
    let mut removed = Vec::new();
    for b in all.iter().filter(|b| !b.complete) {
        let dir = backup_dir(&b.backup_id);
        let objects = storage.list(&dir).await?;
        let Some(last_write) = objects.iter().map(|o| o.last_modified).max() else {
            continue;
        };
        if now - last_write <= grace {
            continue;
        }
        let of_chain = match &b.chain {
            Some(c) => c == chain,
            None => checkpoint_chain(storage, &objects).await?.as_deref() == Some(chain),
        };
        if !of_chain {
            continue;
        }
        delete_backup(storage, &b.backup_id).await?;
        tracing::info!(backup_id = %b.backup_id, last_write = %last_write, "deleted by retention: incomplete past its grace period");
        removed.push(b.backup_id.clone());
    }
    Ok(removed)
}

/// The chain named by the first readable checkpoint among `objects`.
async fn checkpoint_chain(storage: &Storage, objects: &[ObjectInfo]) -> Result<Option<String>> {
    for o in objects.iter().filter(|o| o.key.contains("/checkpoint/")) {
        let Some(data) = storage.get(&o.key).await? else {
            continue;
        };
        if let Ok(c) = Checkpoint::from_json(&data, &o.key) {
            if c.chain.is_some() {
                return Ok(c.chain);
            }
        }
    }
    Ok(None)
}

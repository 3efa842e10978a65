//! Backups as use cases: a [`BackupTask`] in, a [`BackupReport`] out (what both `tidemark
//! backup` and `run --task` run), and retention over a chain ([`run_cleanup_task`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{Duration as ChronoDuration, Utc};
use serde::Serialize;

use super::signals::StopSignals;
use crate::backup::engine::{
    run_backup, BackupReport, BackupRequest, LiveProgress, DEFAULT_CONCURRENT_PARTITIONS,
    DEFAULT_SEGMENT_BYTES,
};
use crate::backup::format::Codec;
use crate::backup::manifest::backup_dir;
use crate::backup::read::{list_backups, verify_backup, BackupSummary};
use crate::backup::select::TopicFilter;
use crate::error::{Error, Result};
use crate::kafka::{kafka_config_with, GroupAdmin};
use crate::storage::open_location;
use crate::task::{BackupCleanupTask, BackupTask};

/// Environment variable the operator sets to the Job's name: the backup id shared by every
/// shard and retry of a run.
pub const ENV_BACKUP_ID: &str = "TIDEMARK_BACKUP_ID";
/// Kubernetes' index of an Indexed Job's pod.
pub const ENV_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";

/// `backup-YYYYMMDD-HHMMSS-<8 hex>`.
pub fn generate_backup_id() -> String {
    crate::snapshot::generate_id(Utc::now()).replacen("snap-", "backup-", 1)
}

/// Runs a backup task: what both `tidemark backup` and `run --task` do.
pub async fn run_backup_task(
    t: &BackupTask,
    credentials: Option<(String, String)>,
    signals: StopSignals,
    progress: Arc<LiveProgress>,
) -> Result<BackupReport> {
    t.validate()?;
    crate::metrics::WorkerMetrics::global().watch_backup(&progress);
    let backup_id = match &t.backup_id {
        Some(id) => id.clone(),
        None => match std::env::var(ENV_BACKUP_ID)
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            Some(id) => {
                crate::snapshot::validate_id(&id)
                    .map_err(|e| Error::invalid(format!("{ENV_BACKUP_ID}: {e}")))?;
                id
            }
            None => generate_backup_id(),
        },
    };
    let shard_index = match t.shard_index {
        Some(i) => i,
        None if t.shard_count > 1 => std::env::var(ENV_COMPLETION_INDEX)
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|i| *i < t.shard_count)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "shardCount is {} but no shardIndex is given and {ENV_COMPLETION_INDEX} is not a number below it",
                    t.shard_count
                ))
            })?,
        None => 0,
    };
    let filter = TopicFilter::new(&t.topics.include, &t.topics.exclude)
        .map_err(|e| Error::invalid(format!("topics: {e}")))?;
    let storage = open_location(&t.storage)?;
    let admin = GroupAdmin::connect(&kafka_config_with(&t.kafka, credentials)?).await?;
    let req = BackupRequest {
        backup_id,
        chain: t.chain.clone(),
        mode: t.mode,
        filter,
        include: t.topics.include.clone(),
        codec: Codec::from_task(t.compression, t.compression_level),
        segment_max_bytes: t.segment_max_bytes.unwrap_or(DEFAULT_SEGMENT_BYTES),
        segment_max_interval_ms: t.segment_max_interval_ms,
        max_concurrent_partitions: t
            .max_concurrent_partitions
            .unwrap_or(DEFAULT_CONCURRENT_PARTITIONS),
        rate_limit_records_per_sec: t.rate_limit_records_per_sec,
        rate_limit_bytes_per_sec: t.rate_limit_bytes_per_sec,
        capture_offsets: t.capture_offsets,
        shard_index,
        shard_count: t.shard_count,
        progress: Arc::clone(&progress),
        finish: signals.finish,
    };
    tracing::info!(backup_id = %req.backup_id, shard = shard_index, shards = t.shard_count, location = %storage.display(), "backup starting");
    run_backup(&admin, &storage, &req, signals.stop).await
}

/// The error of an interrupted backup run (exit code 75).
pub fn interrupted_error(r: &BackupReport) -> Error {
    Error::Interrupted(format!(
        "backup '{}' was stopped before it finished; its checkpoint ({}) holds {} records: run it again with the same backup id to resume",
        r.backup_id, r.manifest, r.records
    ))
}

/// Default of [`BackupCleanupTask::incomplete_grace_period`].
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

/// Applies retention to one chain. Only *usable* complete backups count: their manifests and
/// every segment's checksum verify (what `verify-backup` checks), and so does every backup
/// they build on. The newest usable one is always kept, then the newest `keep_last` usable
/// ones within `max_age`; a backup a kept incremental builds on is never deleted; damaged
/// ones are reported and left alone. Incomplete backups of the chain (interrupted, never
/// resumed) are deleted once their last write is older than the grace period. Each deleted
/// backup loses its manifests first, so a partly deleted backup is never mistaken for a
/// complete one.
pub async fn run_cleanup_task(t: &BackupCleanupTask) -> Result<CleanupReport> {
    t.validate()?;
    let storage = open_location(&t.storage)?;
    let max_age = t.max_age.as_deref().map(parse_age).transpose()?;
    let grace = parse_age(
        t.incomplete_grace_period
            .as_deref()
            .unwrap_or(DEFAULT_INCOMPLETE_GRACE),
    )?;
    let all = list_backups(&storage).await?;
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
        if usable(&storage, &b.backup_id, &parents, &mut verdicts).await? {
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
        delete_backup(&storage, &b.backup_id).await?;
        tracing::info!(backup_id = %b.backup_id, "deleted by retention");
        deleted.push(b.backup_id.clone());
    }
    let deleted_incomplete = remove_stale_incomplete(&storage, &all, &t.chain, grace).await?;
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
    storage: &crate::storage::Storage,
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
                    Err(e @ (Error::Storage { .. } | Error::Connection { .. })) => return Err(e),
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
async fn delete_backup(storage: &crate::storage::Storage, id: &str) -> Result<()> {
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
    storage: &crate::storage::Storage,
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
async fn checkpoint_chain(
    storage: &crate::storage::Storage,
    objects: &[crate::storage::ObjectInfo],
) -> Result<Option<String>> {
    for o in objects.iter().filter(|o| o.key.contains("/checkpoint/")) {
        let Some(data) = storage.get(&o.key).await? else {
            continue;
        };
        if let Ok(c) = crate::backup::manifest::Checkpoint::from_json(&data, &o.key) {
            if c.chain.is_some() {
                return Ok(c.chain);
            }
        }
    }
    Ok(None)
}

/// `30d`, `12h`, `90m`, `3600s`, `2w`.
pub fn parse_age(s: &str) -> Result<ChronoDuration> {
    let bad = || {
        Error::invalid(format!(
            "maxAge '{s}' is not a duration like 30d, 12h, 90m or 2w"
        ))
    };
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let d = match unit {
        "s" => ChronoDuration::try_seconds(n),
        "m" => ChronoDuration::try_minutes(n),
        "h" => ChronoDuration::try_hours(n),
        "d" => ChronoDuration::try_days(n),
        "w" => ChronoDuration::try_weeks(n),
        _ => None,
    };
    d.filter(|d| *d > ChronoDuration::zero()).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_age("30d").ok(), ChronoDuration::try_days(30));
        assert_eq!(parse_age("12h").ok(), ChronoDuration::try_hours(12));
        assert_eq!(parse_age("2w").ok(), ChronoDuration::try_weeks(2));
        for bad in ["", "d", "10", "10y", "-1d", "0h", "1.5d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn generated_ids_are_valid() {
        let id = generate_backup_id();
        assert!(id.starts_with("backup-"), "{id}");
        crate::snapshot::validate_id(&id).expect("valid");
    }
}

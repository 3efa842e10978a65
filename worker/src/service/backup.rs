//! Backups as use cases: a [`BackupTask`] in, a [`BackupReport`] out (what both `tidemark
//! backup` and `run --task` run), and a backup-cleanup task's retention over a chain
//! ([`run_cleanup_task`]).

use std::sync::Arc;

use chrono::Utc;

use super::signals::StopSignals;
use crate::backup::age::parse_age;
use crate::backup::engine::{
    run_backup, BackupReport, BackupRequest, LiveProgress, DEFAULT_CONCURRENT_PARTITIONS,
    DEFAULT_SEGMENT_BYTES,
};
use crate::backup::format::Codec;
use crate::backup::retention::{
    apply_retention, CleanupReport, Retention, DEFAULT_INCOMPLETE_GRACE,
};
use crate::backup::select::TopicFilter;
use crate::backup::{ENV_BACKUP_ID, ENV_COMPLETION_INDEX};
use crate::error::{Error, Result};
use crate::kafka::{kafka_config_with, GroupAdmin};
use crate::storage::open_location;
use crate::task::{BackupCleanupTask, BackupTask};

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

/// Applies the retention of a backup-cleanup task to its chain (see [`apply_retention`]).
#[tracing::instrument(name = "cleanup", skip_all, fields(chain = %t.chain))]
pub async fn run_cleanup_task(t: &BackupCleanupTask) -> Result<CleanupReport> {
    t.validate()?;
    let storage = open_location(&t.storage)?;
    let max_age = t.max_age.as_deref().map(parse_age).transpose()?;
    let incomplete_grace = parse_age(
        t.incomplete_grace_period
            .as_deref()
            .unwrap_or(DEFAULT_INCOMPLETE_GRACE),
    )?;
    let retention = Retention {
        chain: t.chain.clone(),
        keep_last: t.keep_last,
        max_age,
        incomplete_grace,
    };
    apply_retention(&storage, &retention).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid() {
        let id = generate_backup_id();
        assert!(id.starts_with("backup-"), "{id}");
        crate::snapshot::validate_id(&id).expect("valid");
    }
}

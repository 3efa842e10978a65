//! The backup engine.
//!
//! One assign-only consumer (read_committed, no group membership, nothing committed) reads the
//! shard's partitions on a dedicated thread and appends each record, byte for byte, to its
//! partition's open segment. Full segments are handed over a bounded channel to the async side,
//! which compresses them on the blocking pool (one segment per core at a time) and stores them
//! as they are compressed, a few at a time: the bounded hand-off is the memory bound (consumer
//! queues + open segments + segments in flight), whatever the amount of data. After each stored segment the partition's progress is applied in order and
//! the checkpoint is rewritten (at most once a second), so a run killed at any moment resumes
//! where the stored data ends. The manifest is written last.

mod buffers;
mod commit;
mod finish;
mod pipeline;
mod plan;
mod reader;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::format::Codec;
use super::manifest::{
    checkpoint_key, lease_key, manifest_key, Gaps, Manifest, PartitionDiscontinuity,
};
use super::select::TopicFilter;
use crate::error::{Error, Result};
use crate::kafka::GroupAdmin;
use crate::lease::Lease;
use crate::storage::Storage;
use crate::task::BackupMode;
use commit::{Committer, Sealed, IN_FLIGHT_SEGMENTS};
use finish::{interrupted_report, report_from_manifest};
use pipeline::Limits;
use reader::{LoopOptions, PartSpec, ReadStats};

pub use crate::progress::LiveProgress;

/// Default uncompressed size at which a segment is closed.
pub const DEFAULT_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
/// Default partitions read at once.
pub const DEFAULT_CONCURRENT_PARTITIONS: usize = 32;

/// What to back up and how.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    pub backup_id: String,
    pub chain: Option<String>,
    pub mode: BackupMode,
    pub filter: TopicFilter,
    /// The patterns as given, for messages.
    pub include: Vec<String>,
    pub codec: Codec,
    pub segment_max_bytes: u64,
    /// Close a segment when its records span this many milliseconds of record time.
    pub segment_max_interval_ms: Option<u64>,
    pub max_concurrent_partitions: usize,
    pub rate_limit_records_per_sec: Option<u64>,
    pub rate_limit_bytes_per_sec: Option<u64>,
    pub capture_offsets: bool,
    pub shard_index: u32,
    pub shard_count: u32,
    /// Updated while the backup runs.
    pub progress: Arc<LiveProgress>,
    /// Set (with the stop flag) when the user asked a continuous backup to end (Ctrl-C): it
    /// then writes its manifest. A stop without it (SIGTERM: an eviction, a drain, a deleted
    /// pod) is an interruption: what was read is stored, the checkpoint written, and the run
    /// ends [`interrupted`](BackupReport::interrupted), to be resumed.
    pub finish: Arc<AtomicBool>,
}

/// What a backup run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BackupReport {
    pub backup_id: String,
    /// This shard's manifest is written.
    pub complete: bool,
    /// The shard was already complete; nothing was read.
    pub already_complete: bool,
    /// Continued from a checkpoint of an interrupted run.
    pub resumed: bool,
    pub mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub shard_index: u32,
    pub shard_count: u32,
    pub topics: u64,
    pub partitions: u64,
    pub records: u64,
    pub bytes: u64,
    pub stored_bytes: u64,
    pub segments: u64,
    /// Records and bytes read by this run (a resumed run excludes what was stored before).
    pub records_this_run: u64,
    pub bytes_this_run: u64,
    pub groups_captured: u64,
    /// The key that wraps the backup's data key (absent: stored in the clear).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_key_id: Option<String>,
    pub duration_ms: u128,
    pub records_per_second: f64,
    pub mib_per_second: f64,
    pub manifest: String,
    pub warnings: Vec<String>,
    /// Partitions whose log broke since the parent backup (incremental backups).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub discontinuities: Vec<PartitionDiscontinuity>,
    /// Offsets without records, by cause, over the shard's partitions.
    pub gaps: Gaps,
    /// The run was stopped before it finished (not at the user's request): the checkpoint
    /// holds what was stored, and running it again resumes there.
    pub interrupted: bool,
    /// When the checkpoint was last written (an interrupted run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_at: Option<DateTime<Utc>>,
    /// Records the backup was behind the high watermarks at its last checkpoint (an
    /// interrupted run; offsets, so gaps count too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
}

/// Runs one shard of a backup to completion (or, in continuous mode, until `stop`), holding
/// the shard's lease: a second worker on the same shard fails with [`Error::LeaseHeld`], and a
/// run that loses its lease stops writing (see [`crate::lease`]).
pub async fn run_backup(
    admin: &GroupAdmin,
    storage: &Storage,
    req: &BackupRequest,
    stop: Arc<AtomicBool>,
) -> Result<BackupReport> {
    let (id, shard, count) = (req.backup_id.as_str(), req.shard_index, req.shard_count);
    let resource = format!(
        "backup '{id}' shard {}",
        super::manifest::shard_name(shard, count)
    );
    let lease = Lease::hold(storage, &lease_key(id, shard, count), &resource, &stop).await?;
    let result = backup_shard(admin, &lease.storage(), req, stop).await;
    lease.finish(result).await
}

#[tracing::instrument(
    name = "backup",
    skip_all,
    fields(backup_id = %req.backup_id, shard = req.shard_index, shards = req.shard_count)
)]
async fn backup_shard(
    admin: &GroupAdmin,
    storage: &Storage,
    req: &BackupRequest,
    stop: Arc<AtomicBool>,
) -> Result<BackupReport> {
    let started = Instant::now();
    let mkey = manifest_key(&req.backup_id, req.shard_index, req.shard_count);
    if let Some(m) = already_complete(storage, req, &mkey).await? {
        let mut r = report_from_manifest(&m, &mkey, started);
        r.already_complete = true;
        r.encryption_key_id = storage
            .backup_key_record(&req.backup_id)
            .await?
            .map(|k| k.key_id());
        return Ok(r);
    }
    // The data key exists before anything of the backup is written.
    let encryption_key_id = storage.begin_backup_encryption(&req.backup_id).await?;
    let mut warnings = Vec::new();
    let plan = plan::plan_shard(admin, storage, req, &mut warnings).await?;

    // Read, seal, store, checkpoint.
    let mut committer = Committer::new(storage, req, plan.started_at, &plan.specs, &plan.initial);
    committer.write_checkpoint().await?;
    let before_records: u64 = plan.specs.iter().map(|s| s.records).sum();
    let before_bytes: u64 = plan.specs.iter().map(|s| s.bytes).sum();
    let read = read_and_store(admin, req, plan.specs.clone(), &mut committer, &stop).await?;
    committer.write_checkpoint().await?;
    if committer.parts.iter().any(|p| !p.done) {
        if stop.load(Ordering::SeqCst) {
            let mut r = interrupted_report(admin, req, &committer, started, &read).await;
            r.resumed = plan.resumed;
            r.parent = plan.parent.map(|p| p.backup_id);
            r.topics = committer
                .parts
                .iter()
                .map(|p| p.topic.as_str())
                .collect::<BTreeSet<_>>()
                .len() as u64;
            r.records_this_run = r.records.saturating_sub(before_records);
            r.bytes_this_run = r.bytes.saturating_sub(before_bytes);
            r.warnings = warnings;
            return Ok(r);
        }
        // Only a failure of the reader gets here; the checkpoint lets a re-run continue.
        return Err(Error::Kafka(
            "the backup stopped before every partition was read; run it again to resume".into(),
        ));
    }

    // Topic metadata, captured offsets, manifest (last), then tidy up.
    let resumed = plan.resumed;
    let (manifest, groups_captured) =
        finish::write_manifest(admin, storage, req, plan, &committer, warnings).await?;
    let mut report = report_from_manifest(&manifest, &mkey, started);
    report.resumed = resumed;
    report.records_this_run = report.records.saturating_sub(before_records);
    report.bytes_this_run = report.bytes.saturating_sub(before_bytes);
    report.groups_captured = groups_captured;
    report.encryption_key_id = encryption_key_id;
    let secs = started.elapsed().as_secs_f64();
    if secs > 0.0 {
        report.records_per_second = read.records as f64 / secs;
        report.mib_per_second = read.bytes as f64 / secs / (1024.0 * 1024.0);
    }
    Ok(report)
}

/// The shard's manifest, if a run stored it before. A run that died right after its manifest
/// may have left its tidy-up undone: it is done now.
async fn already_complete(
    storage: &Storage,
    req: &BackupRequest,
    mkey: &str,
) -> Result<Option<Manifest>> {
    let Some(data) = storage.get(mkey).await? else {
        return Ok(None);
    };
    let m = Manifest::from_json(&data, mkey)?;
    commit::remove_strays(storage, &m).await?;
    storage
        .delete(&checkpoint_key(
            &req.backup_id,
            req.shard_index,
            req.shard_count,
        ))
        .await?;
    Ok(Some(m))
}

/// Reads the shard's partitions on a blocking thread while the sealed segments are stored and
/// applied here; on a failure of either side, the other is stopped.
async fn read_and_store(
    admin: &GroupAdmin,
    req: &BackupRequest,
    specs: Vec<PartSpec>,
    committer: &mut Committer<'_>,
    stop: &Arc<AtomicBool>,
) -> Result<ReadStats> {
    // Enough spare segments for the pipeline's churn (see `SegmentBuffers`).
    let buffers =
        buffers::SegmentBuffers::new(Limits::for_this_machine().in_flight + IN_FLIGHT_SEGMENTS);
    let options = LoopOptions {
        codec: req.codec,
        segment_max_bytes: req.segment_max_bytes.max(1),
        segment_max_interval_ms: req.segment_max_interval_ms,
        max_active: req.max_concurrent_partitions.max(1),
        rate_records: req.rate_limit_records_per_sec,
        rate_bytes: req.rate_limit_bytes_per_sec,
        continuous: req.mode == BackupMode::Continuous,
        finish: Arc::clone(&req.finish),
        progress: Arc::clone(&req.progress),
        buffers: buffers.clone(),
    };
    options
        .progress
        .partitions_total
        .store(specs.len() as u64, Ordering::Relaxed);
    if req.mode != BackupMode::Continuous {
        let total: i64 = specs.iter().map(|s| (s.target - s.next).max(0)).sum();
        options
            .progress
            .offsets_total
            .store(total as u64, Ordering::Relaxed);
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Sealed>(IN_FLIGHT_SEGMENTS);
    let config = admin.config().clone();
    let loop_stop = Arc::clone(stop);
    let span = tracing::info_span!(
        "backup_reader",
        backup_id = %req.backup_id,
        shard = req.shard_index,
        partitions = specs.len()
    );
    // A thread of its own, named, so its CPU time shows apart from the encoders' in `top -H`
    // and the benchmark's per-thread figures.
    let (done_tx, reader) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("backup-reader".into())
        .spawn(move || {
            let read = span.in_scope(|| reader::consume(&config, specs, &options, &tx, &loop_stop));
            let _ = done_tx.send(read);
        })
        .map_err(|e| Error::Kafka(format!("cannot start the backup reader thread: {e}")))?;
    let stopped = || Error::Kafka("the backup reader stopped unexpectedly".into());
    if let Err(e) = commit::store_all(committer, &mut rx, &buffers).await {
        stop.store(true, Ordering::SeqCst);
        drop(rx);
        let _ = reader.await;
        return Err(e);
    }
    reader.await.map_err(|_| stopped())?
}

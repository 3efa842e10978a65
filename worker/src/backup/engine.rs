//! The backup engine.
//!
//! One assign-only consumer (read_committed, no group membership, nothing committed) reads the
//! shard's partitions on a dedicated thread and appends each record, byte for byte, to its
//! partition's open segment. Full segments are handed over a bounded channel to the async side,
//! which compresses them on the blocking pool and stores them, a few at a time: the bounded
//! hand-off is the memory bound (consumer queues + open segments + segments in flight), whatever
//! the amount of data. After each stored segment the partition's progress is applied in order and
//! the checkpoint is rewritten (at most once a second), so a run killed at any moment resumes
//! where the stored data ends. The manifest is written last.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message, Timestamp};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use super::format::{Codec, SegmentWriter, TimestampType};
use super::manifest::{
    checkpoint_key, lease_key, manifest_key, offsets_key, partition_dir, segment_key, Checkpoint,
    CheckpointPartition, Discontinuity, DiscontinuityKind, GapCause, Gaps, Manifest, PartitionData,
    PartitionDiscontinuity, SegmentEntry, TopicData, FORMAT,
};
use super::read::{complete_backups, load_manifests};
use super::select::TopicFilter;
use crate::error::{Error, Result};
use crate::failpoints::crash_at;
use crate::groups::read_committed;
use crate::kafka::{GroupAdmin, KafkaConfig, OffsetSpec, TopicPartition};
use crate::lease::Lease;
use crate::snapshot::{GroupSnapshot, OffsetSnapshot};
use crate::storage::Storage;
use crate::task::BackupMode;

/// Default uncompressed size at which a segment is closed.
pub const DEFAULT_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
/// Default partitions read at once.
pub const DEFAULT_CONCURRENT_PARTITIONS: usize = 32;
/// Segments being compressed or stored at once (each holds at most a segment's bytes twice).
const IN_FLIGHT_SEGMENTS: usize = 2;
/// Budget for librdkafka's pre-fetch queue (one queue for all partitions read at once).
const PREFETCH_BUDGET_KB: usize = 64 * 1024;
/// Budget for the open (not yet sealed) segments of the partitions read at once.
const OPEN_SEGMENT_BUDGET: u64 = 64 * 1024 * 1024;
/// Room reserved in a new segment beyond its size limit, for the record that crosses it.
const SEGMENT_SLACK: u64 = 256 * 1024;
/// How often the checkpoint is rewritten while segments are being stored.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// How often progress is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// In continuous mode, the checkpoint is rewritten at least this often, even when idle.
const CHECKPOINT_REFRESH: Duration = Duration::from_secs(600);
/// In continuous mode, an open segment is stored after this long even if not full.
const CONTINUOUS_FLUSH: Duration = Duration::from_secs(30);

/// Live counters of a running backup, for progress bars and logs (relaxed atomics).
#[derive(Debug, Default)]
pub struct LiveProgress {
    pub records: std::sync::atomic::AtomicU64,
    pub bytes: std::sync::atomic::AtomicU64,
    /// Offsets passed (records and gaps), and the total to pass (0 in continuous mode).
    pub offsets_done: std::sync::atomic::AtomicU64,
    pub offsets_total: std::sync::atomic::AtomicU64,
    pub partitions_done: std::sync::atomic::AtomicU64,
    pub partitions_total: std::sync::atomic::AtomicU64,
}

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

/// One partition to read.
#[derive(Debug, Clone)]
struct PartSpec {
    topic: String,
    partition: i32,
    /// Where reading starts (resume point).
    next: i64,
    /// Exclusive end (`i64::MAX` in continuous mode).
    target: i64,
    /// State stored before this run (from the checkpoint).
    records: u64,
    bytes: u64,
    gaps: Gaps,
    /// The topic is compacted (its gaps are expected).
    compacted: bool,
}

/// Cumulative state of a partition after a sealed segment.
#[derive(Debug, Clone)]
struct Progress {
    next_offset: i64,
    records: u64,
    bytes: u64,
    gaps: Gaps,
    /// Set when the partition is finished, with its end offset.
    end_offset: Option<i64>,
}

/// A closed segment (or a final progress note without one) on its way to storage.
struct Sealed {
    part: usize,
    seq: u64,
    writer: Option<SegmentWriter>,
    progress: Progress,
}

struct Stored {
    part: usize,
    seq: u64,
    entry: Option<SegmentEntry>,
    progress: Progress,
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

async fn backup_shard(
    admin: &GroupAdmin,
    storage: &Storage,
    req: &BackupRequest,
    stop: Arc<AtomicBool>,
) -> Result<BackupReport> {
    let started = Instant::now();
    let (id, shard, count) = (req.backup_id.as_str(), req.shard_index, req.shard_count);
    let mkey = manifest_key(id, shard, count);
    if let Some(data) = storage.get(&mkey).await? {
        let m = Manifest::from_json(&data, &mkey)?;
        // A run that died right after its manifest may have left its tidy-up undone.
        remove_strays(storage, &m).await?;
        storage.delete(&checkpoint_key(id, shard, count)).await?;
        let mut r = report_from_manifest(&m, &mkey, started);
        r.already_complete = true;
        return Ok(r);
    }
    let mut warnings = Vec::new();

    // What to read: the selected topics' partitions dealt to shards in a stable order.
    let all_topics = admin.list_topics().await?;
    let selected: Vec<String> = req
        .filter
        .select(&all_topics)
        .into_iter()
        .cloned()
        .collect();
    if selected.is_empty() {
        return Err(Error::invalid(format!(
            "no topic matches include {:?} (minus the excludes); the cluster has {} topics",
            req.include,
            all_topics.len()
        )));
    }
    let mut topics: BTreeMap<String, TopicData> = BTreeMap::new();
    let mut all_parts: Vec<TopicPartition> = Vec::new();
    // Topic ids tell a re-created topic from the one the parent backed up; optional.
    let mut topic_ids = admin.topic_ids(&selected).await.unwrap_or_default();
    for t in &selected {
        let layout = admin.topic_layout(t).await?;
        let configs = match admin.topic_configs(t).await {
            Ok(c) => c,
            Err(e) => {
                warnings.push(format!(
                    "the configs of topic '{t}' could not be read ({e}); a restore that creates it will use broker defaults"
                ));
                BTreeMap::new()
            }
        };
        all_parts.extend(layout.partitions.iter().map(|p| (t.clone(), *p)));
        topics.insert(
            t.clone(),
            TopicData {
                topic_id: topic_ids.remove(t),
                partitions: i32::try_from(layout.partitions.len()).unwrap_or(i32::MAX),
                replication_factor: layout.replication_factor,
                configs,
                partition_data: BTreeMap::new(),
            },
        );
    }
    all_parts.sort();
    let mine: Vec<TopicPartition> = all_parts
        .into_iter()
        .enumerate()
        .filter(|(i, _)| (*i as u64) % u64::from(count) == u64::from(shard))
        .map(|(_, tp)| tp)
        .collect();

    // Resume from a checkpoint, or start from the log start / the parent's end.
    let ckey = checkpoint_key(id, shard, count);
    let checkpoint = match storage.get(&ckey).await? {
        Some(data) => Some(Checkpoint::from_json(&data, &ckey)?),
        None => None,
    };
    let resumed = checkpoint.is_some();
    if let Some(c) = &checkpoint {
        remove_unlisted_segments(storage, id, c, &mine).await?;
    }
    let started_at = checkpoint
        .as_ref()
        .and_then(|c| c.started_at)
        .unwrap_or_else(Utc::now);
    let parent = match (req.mode, &req.chain) {
        (BackupMode::Incremental, Some(chain)) => {
            let found = complete_backups(storage)
                .await?
                .into_iter()
                .filter(|b| b.chain.as_deref() == Some(chain.as_str()) && b.backup_id != id)
                .max_by_key(|b| b.completed_at);
            if found.is_none() {
                warnings.push(format!(
                    "no complete backup of chain '{chain}' yet: this incremental backup starts from the log start"
                ));
            }
            found
        }
        _ => None,
    };
    let parent_ends = match &parent {
        None => ParentEnds::default(),
        Some(p) => ParentEnds::of(&load_manifests(storage, &p.backup_id).await?),
    };
    let (starts, ends) = tokio::try_join!(
        admin.list_offsets_isolated(&mine, OffsetSpec::Earliest, false),
        admin.list_offsets(&mine, OffsetSpec::Latest)
    )?;
    let mut specs = Vec::with_capacity(mine.len());
    let mut initial: BTreeMap<TopicPartition, PartitionData> = BTreeMap::new();
    for ((tp, s), e) in mine.iter().zip(starts).zip(ends) {
        let log_start = s?.offset;
        let lso = e?.offset;
        if log_start < 0 || lso < log_start {
            // Kafka never answers so for a partition it serves; a backup that trusted it would
            // find nothing to read and call itself complete.
            return Err(Error::Kafka(format!(
                "{}-{}: the broker answered an impossible range (log start {log_start}, end {lso}); run the backup again",
                tp.0, tp.1
            )));
        }
        let before = checkpoint
            .as_ref()
            .and_then(|c| c.partitions.get(&tp.0))
            .and_then(|m| m.get(&tp.1));
        let (data, next) = match before {
            Some(cp) => {
                if let Some(d) = &cp.data.discontinuity {
                    warnings.push(discontinuity_warning(tp, d));
                }
                (cp.data.clone(), cp.next_offset)
            }
            None => {
                let (start, discontinuity) = parent_ends.start(tp, &topics, log_start, lso);
                if let Some(d) = &discontinuity {
                    warnings.push(discontinuity_warning(tp, d));
                }
                let target = match req.mode {
                    BackupMode::Continuous => i64::MAX,
                    _ => lso.max(start),
                };
                (
                    PartitionData {
                        start_offset: start,
                        end_offset: target,
                        discontinuity,
                        ..PartitionData::default()
                    },
                    start,
                )
            }
        };
        let mut gaps = data.gaps.clone();
        if next < log_start {
            warnings.push(format!(
                "{}-{}: offsets {next}..{log_start} were deleted by retention before they were backed up",
                tp.0, tp.1
            ));
            gaps.add_as(next, log_start, GapCause::Retention);
        }
        specs.push(PartSpec {
            topic: tp.0.clone(),
            partition: tp.1,
            next: next.max(log_start),
            target: data.end_offset,
            records: data.records,
            bytes: data.bytes,
            gaps,
            compacted: topics.get(&tp.0).is_some_and(|t| is_compacted(&t.configs)),
        });
        initial.insert(tp.clone(), data);
    }

    // Read, seal, store, checkpoint.
    let mut committer = Committer {
        storage,
        id,
        shard,
        count,
        started_at,
        chain: req.chain.clone(),
        parts: specs
            .iter()
            .map(|s| PartCommit {
                topic: s.topic.clone(),
                partition: s.partition,
                data: initial
                    .get(&(s.topic.clone(), s.partition))
                    .cloned()
                    .unwrap_or_default(),
                next_offset: s.next,
                next_seq: 0,
                pending: BTreeMap::new(),
                done: false,
            })
            .collect(),
        last_write: Instant::now(),
        written_at: Utc::now(),
        dirty: false,
    };
    committer.write_checkpoint().await?;
    let before_records: u64 = specs.iter().map(|s| s.records).sum();
    let before_bytes: u64 = specs.iter().map(|s| s.bytes).sum();

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
    let loop_stop = Arc::clone(&stop);
    let reader =
        tokio::task::spawn_blocking(move || consume(&config, specs, &options, &tx, &loop_stop));

    let names: Vec<TopicPartition> = committer
        .parts
        .iter()
        .map(|p| (p.topic.clone(), p.partition))
        .collect();
    let mut uploads = FuturesUnordered::new();
    let mut open = true;
    let mut failure: Option<Error> = None;
    while open || !uploads.is_empty() {
        tokio::select! {
            sealed = rx.recv(), if open && uploads.len() < IN_FLIGHT_SEGMENTS => match sealed {
                Some(s) => uploads.push(store_segment(storage, id, &names, s)),
                None => open = false,
            },
            Some(done) = uploads.next(), if !uploads.is_empty() => match done {
                Ok(s) => {
                    committer.apply(s);
                    if let Err(e) = committer.maybe_checkpoint().await {
                        failure = Some(e);
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            },
        }
    }
    if let Some(e) = failure {
        stop.store(true, Ordering::SeqCst);
        drop(rx);
        let _ = reader.await;
        return Err(e);
    }
    let read = reader
        .await
        .map_err(|e| Error::Kafka(format!("the backup reader stopped unexpectedly: {e}")))??;
    committer.write_checkpoint().await?;
    if committer.parts.iter().any(|p| !p.done) {
        if stop.load(Ordering::SeqCst) {
            let mut r = interrupted_report(admin, req, &committer, started, &read).await;
            r.resumed = resumed;
            r.parent = parent.map(|p| p.backup_id);
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
    for p in &committer.parts {
        if let Some(td) = topics.get_mut(&p.topic) {
            td.partition_data.insert(p.partition, p.data.clone());
        }
    }
    topics.retain(|_, td| !td.partition_data.is_empty());
    warnings.extend(unexplained_gap_warnings(&topics));
    let (offsets, groups_captured) = if req.capture_offsets {
        capture_offsets(admin, storage, req, &mine, &mut warnings).await?
    } else {
        (None, 0)
    };
    let mut manifest = Manifest {
        format: FORMAT.to_string(),
        backup_id: id.to_string(),
        chain: req.chain.clone(),
        parent: parent.map(|p| p.backup_id),
        mode: mode_name(req.mode).to_string(),
        shard_index: shard,
        shard_count: count,
        cluster: admin.config().bootstrap_servers.clone(),
        started_at,
        completed_at: Utc::now(),
        compression: req.codec.name().to_string(),
        compression_level: match req.codec {
            Codec::Zstd { level } => Some(level),
            _ => None,
        },
        isolation: "read_committed".into(),
        topics,
        totals: Default::default(),
        offsets,
        warnings: warnings.clone(),
    };
    manifest.compute_totals();
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::Kafka(format!("failed to encode the manifest: {e}")))?;
    crash_at("before-manifest");
    storage.put_once(&mkey, Bytes::from(json)).await?;
    crash_at("after-manifest");
    remove_strays(storage, &manifest).await?;
    storage.delete(&ckey).await?;

    let mut report = report_from_manifest(&manifest, &mkey, started);
    report.resumed = resumed;
    report.records_this_run = report.records.saturating_sub(before_records);
    report.bytes_this_run = report.bytes.saturating_sub(before_bytes);
    report.groups_captured = groups_captured;
    let secs = started.elapsed().as_secs_f64();
    if secs > 0.0 {
        report.records_per_second = read.records as f64 / secs;
        report.mib_per_second = read.bytes as f64 / secs / (1024.0 * 1024.0);
    }
    Ok(report)
}

/// Where the parent backup of an incremental backup ended, per partition, and its topic ids.
#[derive(Debug, Default)]
struct ParentEnds {
    ends: HashMap<TopicPartition, i64>,
    topic_ids: HashMap<String, String>,
}

impl ParentEnds {
    fn of(manifests: &[Manifest]) -> ParentEnds {
        let mut p = ParentEnds::default();
        for m in manifests {
            for (t, td) in &m.topics {
                if let Some(id) = &td.topic_id {
                    p.topic_ids.insert(t.clone(), id.clone());
                }
                for (part, d) in &td.partition_data {
                    p.ends.insert((t.clone(), *part), d.end_offset);
                }
            }
        }
        p
    }

    /// Where an incremental backup starts a partition whose log now spans
    /// `[log_start, end)`: at the parent's end, unless the log no longer continues there.
    /// A topic with another id, or whose end is before the parent's end, was re-created; a log
    /// starting after the parent's end was truncated past it. Both start at the log start.
    fn start(
        &self,
        tp: &TopicPartition,
        topics: &BTreeMap<String, TopicData>,
        log_start: i64,
        end: i64,
    ) -> (i64, Option<Discontinuity>) {
        let Some(&parent_end) = self.ends.get(tp) else {
            return (log_start, None);
        };
        let now_id = topics.get(&tp.0).and_then(|t| t.topic_id.as_ref());
        let other_id = matches!((self.topic_ids.get(&tp.0), now_id), (Some(a), Some(b)) if a != b);
        let kind = if other_id || end < parent_end {
            DiscontinuityKind::Recreated
        } else if log_start > parent_end {
            DiscontinuityKind::Truncated
        } else {
            return (parent_end, None);
        };
        (
            log_start,
            Some(Discontinuity {
                kind,
                parent_end,
                new_start: log_start,
            }),
        )
    }
}

#[cfg(test)]
mod parent_end_tests {
    use super::*;

    fn parent(end: i64, id: Option<&str>) -> ParentEnds {
        ParentEnds {
            ends: HashMap::from([(("t".to_string(), 0), end)]),
            topic_ids: id
                .map(|i| HashMap::from([("t".to_string(), i.to_string())]))
                .unwrap_or_default(),
        }
    }

    fn now(id: Option<&str>) -> BTreeMap<String, TopicData> {
        BTreeMap::from([(
            "t".to_string(),
            TopicData {
                topic_id: id.map(str::to_string),
                ..TopicData::default()
            },
        )])
    }

    fn kind(d: Option<Discontinuity>) -> Option<DiscontinuityKind> {
        d.map(|d| d.kind)
    }

    #[test]
    fn an_incremental_backup_continues_where_its_parent_ended() {
        let tp = ("t".to_string(), 0);
        let (start, d) = parent(30, Some("A")).start(&tp, &now(Some("A")), 0, 50);
        assert_eq!((start, d), (30, None));
        // A partition the parent did not have starts at its log start.
        let (start, d) = parent(30, None).start(&("t".to_string(), 1), &now(None), 4, 9);
        assert_eq!((start, d), (4, None));
    }

    #[test]
    fn a_recreated_topic_is_told_by_its_id_or_by_an_end_before_the_parents() {
        let tp = ("t".to_string(), 0);
        // Another id, refilled past the parent's end.
        let (start, d) = parent(30, Some("A")).start(&tp, &now(Some("B")), 0, 40);
        assert_eq!((start, kind(d)), (0, Some(DiscontinuityKind::Recreated)));
        assert_eq!(d.map(|d| (d.parent_end, d.new_start)), Some((30, 0)));
        // No ids: the end is before the parent's end.
        let (start, d) = parent(30, None).start(&tp, &now(None), 0, 10);
        assert_eq!((start, kind(d)), (0, Some(DiscontinuityKind::Recreated)));
    }

    #[test]
    fn a_log_truncated_past_the_parents_end_starts_at_the_new_log_start() {
        let tp = ("t".to_string(), 0);
        let (start, d) = parent(30, Some("A")).start(&tp, &now(Some("A")), 45, 60);
        assert_eq!((start, kind(d)), (45, Some(DiscontinuityKind::Truncated)));
        assert_eq!(d.map(|d| (d.parent_end, d.new_start)), Some((30, 45)));
        // Truncated exactly up to the parent's end: nothing was lost, no discontinuity.
        let (start, d) = parent(30, Some("A")).start(&tp, &now(Some("A")), 30, 60);
        assert_eq!((start, d), (30, None));
    }
}

fn discontinuity_warning(tp: &TopicPartition, d: &Discontinuity) -> String {
    match d.kind {
        DiscontinuityKind::Recreated => format!(
            "{}-{}: the topic was re-created since the parent backup (which ended at offset {}); this backup starts the new log at offset {}",
            tp.0, tp.1, d.parent_end, d.new_start
        ),
        DiscontinuityKind::Truncated => format!(
            "{}-{}: offsets {}..{} were deleted since the parent backup ended (the log was truncated past its end); this backup starts at offset {}",
            tp.0, tp.1, d.parent_end, d.new_start, d.new_start
        ),
    }
}

/// One warning per partition of a topic that is not compacted with gaps nothing explains.
fn unexplained_gap_warnings(topics: &BTreeMap<String, TopicData>) -> Vec<String> {
    let mut out = Vec::new();
    for (t, td) in topics {
        for (p, d) in &td.partition_data {
            if d.gaps.unexplained == 0 {
                continue;
            }
            let ranges: Vec<String> = d
                .gaps
                .ranges
                .iter()
                .filter(|(from, to)| to - from > 1)
                .take(5)
                .map(|(from, to)| format!("{from}..{to}"))
                .collect();
            out.push(format!(
                "{t}-{p}: {} offsets hold no record and nothing explains it (cleanup.policy is not compact): records the broker lost or skipped, or aborted transactions (gaps {})",
                d.gaps.unexplained,
                ranges.join(", ")
            ));
        }
    }
    out
}

/// The report of a run stopped before it finished: what the checkpoint holds, when it was
/// written, and how far behind the high watermarks it is.
async fn interrupted_report(
    admin: &GroupAdmin,
    req: &BackupRequest,
    committer: &Committer<'_>,
    started: Instant,
    read: &ReadStats,
) -> BackupReport {
    let names: Vec<TopicPartition> = committer
        .parts
        .iter()
        .map(|p| (p.topic.clone(), p.partition))
        .collect();
    let lag = match admin
        .list_offsets_isolated(&names, OffsetSpec::Latest, false)
        .await
    {
        Ok(ends) => ends
            .into_iter()
            .zip(&committer.parts)
            .map(|(e, p)| e.map(|e| (e.offset - p.next_offset).max(0) as u64))
            .sum::<Result<u64>>()
            .ok(),
        Err(e) => {
            tracing::warn!(error = %e, "the lag of the interrupted backup could not be measured");
            None
        }
    };
    let mut r = BackupReport {
        backup_id: req.backup_id.clone(),
        mode: mode_name(req.mode).to_string(),
        chain: req.chain.clone(),
        shard_index: req.shard_index,
        shard_count: req.shard_count,
        partitions: committer.parts.len() as u64,
        duration_ms: started.elapsed().as_millis(),
        manifest: checkpoint_key(&req.backup_id, req.shard_index, req.shard_count),
        interrupted: true,
        checkpoint_at: Some(committer.written_at),
        lag,
        ..BackupReport::default()
    };
    for p in &committer.parts {
        r.records += p.data.records;
        r.bytes += p.data.bytes;
        r.stored_bytes += p.data.stored_bytes;
        r.segments += p.data.segments.len() as u64;
        r.gaps.absorb(&p.data.gaps);
    }
    let secs = started.elapsed().as_secs_f64();
    if secs > 0.0 {
        r.records_per_second = read.records as f64 / secs;
        r.mib_per_second = read.bytes as f64 / secs / (1024.0 * 1024.0);
    }
    r
}

fn mode_name(mode: BackupMode) -> &'static str {
    match mode {
        BackupMode::OneShot => "one_shot",
        BackupMode::Continuous => "continuous",
        BackupMode::Incremental => "incremental",
    }
}

fn report_from_manifest(m: &Manifest, key: &str, started: Instant) -> BackupReport {
    BackupReport {
        backup_id: m.backup_id.clone(),
        complete: true,
        mode: m.mode.clone(),
        chain: m.chain.clone(),
        parent: m.parent.clone(),
        shard_index: m.shard_index,
        shard_count: m.shard_count,
        topics: m.totals.topics,
        partitions: m.totals.partitions,
        records: m.totals.records,
        bytes: m.totals.bytes,
        stored_bytes: m.totals.stored_bytes,
        segments: m.totals.segments,
        duration_ms: started.elapsed().as_millis(),
        manifest: key.to_string(),
        warnings: m.warnings.clone(),
        discontinuities: m.discontinuities(),
        gaps: m.totals.gaps.clone(),
        ..BackupReport::default()
    }
}

/// Compresses and stores one sealed segment.
async fn store_segment(
    storage: &Storage,
    id: &str,
    parts: &[TopicPartition],
    s: Sealed,
) -> Result<Stored> {
    let entry = match s.writer {
        None => None,
        Some(writer) => {
            let Some(first) = writer.first_offset() else {
                return Err(Error::Kafka("an empty segment was sealed".into()));
            };
            let (topic, partition) = &parts[s.part];
            let key = segment_key(id, topic, *partition, first);
            let (data, stats) = tokio::task::spawn_blocking(move || writer.finish())
                .await
                .map_err(|e| Error::Kafka(format!("segment encoding stopped: {e}")))?
                .map_err(|e| Error::Kafka(format!("cannot encode segment '{key}': {e}")))?;
            #[cfg(feature = "failpoints")]
            crash_in_the_middle_of_storing(storage, &key, &data).await;
            storage.put_large(&key, Bytes::from(data)).await?;
            crash_at("segment-stored");
            Some(SegmentEntry { key, stats })
        }
    };
    Ok(Stored {
        part: s.part,
        seq: s.seq,
        entry,
        progress: s.progress,
    })
}

/// The `segment-upload` crash point (tests only): half of the segment's bytes stored under its
/// key, as a store without atomic writes could leave it, then abort.
#[cfg(feature = "failpoints")]
async fn crash_in_the_middle_of_storing(storage: &Storage, key: &str, data: &[u8]) {
    if crate::failpoints::due("segment-upload") {
        let _ = storage
            .put(key, Bytes::copy_from_slice(&data[..data.len() / 2]))
            .await;
        crate::failpoints::abort(&format!("in the middle of storing {key}"));
    }
}

struct PartCommit {
    topic: String,
    partition: i32,
    data: PartitionData,
    next_offset: i64,
    next_seq: u64,
    pending: BTreeMap<u64, Stored>,
    done: bool,
}

/// Applies stored segments to each partition's data in order and writes the checkpoint.
struct Committer<'a> {
    storage: &'a Storage,
    id: &'a str,
    shard: u32,
    count: u32,
    started_at: DateTime<Utc>,
    chain: Option<String>,
    parts: Vec<PartCommit>,
    last_write: Instant,
    /// When the checkpoint was last written.
    written_at: DateTime<Utc>,
    dirty: bool,
}

impl Committer<'_> {
    fn apply(&mut self, s: Stored) {
        let p = &mut self.parts[s.part];
        p.pending.insert(s.seq, s);
        while let Some(s) = p.pending.remove(&p.next_seq) {
            if let Some(entry) = s.entry {
                p.data.stored_bytes += entry.stats.stored_bytes;
                p.data.segments.push(entry);
            }
            p.data.records = s.progress.records;
            p.data.bytes = s.progress.bytes;
            p.data.gaps = s.progress.gaps;
            p.next_offset = s.progress.next_offset;
            if let Some(end) = s.progress.end_offset {
                p.data.end_offset = end;
                p.done = true;
            }
            p.next_seq += 1;
            self.dirty = true;
        }
    }

    async fn maybe_checkpoint(&mut self) -> Result<()> {
        if self.dirty && self.last_write.elapsed() >= CHECKPOINT_EVERY {
            self.write_checkpoint().await?;
        }
        Ok(())
    }

    async fn write_checkpoint(&mut self) -> Result<()> {
        let mut partitions: BTreeMap<String, BTreeMap<i32, CheckpointPartition>> = BTreeMap::new();
        for p in &self.parts {
            partitions.entry(p.topic.clone()).or_default().insert(
                p.partition,
                CheckpointPartition {
                    next_offset: p.next_offset,
                    data: p.data.clone(),
                },
            );
        }
        let cp = Checkpoint {
            format: FORMAT.to_string(),
            backup_id: self.id.to_string(),
            shard_index: self.shard,
            shard_count: self.count,
            started_at: Some(self.started_at),
            chain: self.chain.clone(),
            partitions,
        };
        let json = serde_json::to_vec(&cp)
            .map_err(|e| Error::Kafka(format!("failed to encode the checkpoint: {e}")))?;
        self.storage
            .put(
                &checkpoint_key(self.id, self.shard, self.count),
                Bytes::from(json),
            )
            .await?;
        crash_at("checkpoint");
        self.last_write = Instant::now();
        self.written_at = Utc::now();
        self.dirty = false;
        Ok(())
    }
}

/// Deletes segment objects of this shard's partitions that the manifest does not list: what an
/// interrupted run stored but never checkpointed and the resumed run wrote differently.
async fn remove_strays(storage: &Storage, m: &Manifest) -> Result<()> {
    for (topic, td) in &m.topics {
        for (p, d) in &td.partition_data {
            let keep: BTreeSet<&str> = d.segments.iter().map(|s| s.key.as_str()).collect();
            for o in storage
                .list(&partition_dir(&m.backup_id, topic, *p))
                .await?
            {
                if !keep.contains(o.key.as_str()) {
                    tracing::info!(key = %o.key, "removing a segment an interrupted run left behind");
                    storage.delete(&o.key).await?;
                }
            }
        }
    }
    Ok(())
}

/// Before a resumed run writes: deletes the segment objects of this shard's partitions that the
/// checkpoint does not list (what the interrupted run stored after its last checkpoint, perhaps
/// torn), so that segments, which are created once and never replaced, can be written again.
/// Only the lease holder gets here: nobody else writes these partitions.
async fn remove_unlisted_segments(
    storage: &Storage,
    id: &str,
    checkpoint: &Checkpoint,
    mine: &[TopicPartition],
) -> Result<()> {
    for (topic, p) in mine {
        let keep: BTreeSet<&str> = checkpoint
            .partitions
            .get(topic)
            .and_then(|m| m.get(p))
            .map(|c| c.data.segments.iter().map(|s| s.key.as_str()).collect())
            .unwrap_or_default();
        for o in storage.list(&partition_dir(id, topic, *p)).await? {
            if !keep.contains(o.key.as_str()) {
                tracing::info!(key = %o.key, "removing a segment the interrupted run stored after its last checkpoint");
                storage.delete(&o.key).await?;
            }
        }
    }
    Ok(())
}

/// Stores the committed offsets of every group on this shard's partitions (snapshot format).
async fn capture_offsets(
    admin: &GroupAdmin,
    storage: &Storage,
    req: &BackupRequest,
    mine: &[TopicPartition],
    warnings: &mut Vec<String>,
) -> Result<(Option<String>, u64)> {
    let wanted: BTreeSet<&TopicPartition> = mine.iter().collect();
    let groups: Vec<String> = admin
        .list_groups()
        .await?
        .into_iter()
        .map(|g| g.group_id)
        .collect();
    let read_at = Utc::now();
    let committed = match read_committed(admin, &groups, 16).await {
        Ok(c) => c,
        Err(e) => {
            warnings.push(format!("consumer offsets were not captured: {e}"));
            return Ok((None, 0));
        }
    };
    let mut snap_groups = BTreeMap::new();
    for (g, offsets) in committed.offsets {
        let on_mine: Vec<_> = offsets
            .into_iter()
            .filter(|o| wanted.contains(&(o.topic.clone(), o.partition)))
            .collect();
        if !on_mine.is_empty() {
            snap_groups.insert(
                g,
                GroupSnapshot::from_committed(&on_mine, read_at.timestamp_millis()),
            );
        }
    }
    let n = snap_groups.len() as u64;
    let key = offsets_key(&req.backup_id, req.shard_index, req.shard_count);
    let snap = OffsetSnapshot {
        snapshot_id: format!("{}-offsets", req.backup_id),
        timestamp: read_at,
        cluster: admin.config().bootstrap_servers.clone(),
        description: Some(format!(
            "Consumer offsets captured with backup {}",
            req.backup_id
        )),
        groups: snap_groups,
    };
    storage.put(&key, Bytes::from(snap.to_json()?)).await?;
    Ok((Some(key), n))
}

#[derive(Debug, Clone)]
struct LoopOptions {
    codec: Codec,
    segment_max_bytes: u64,
    segment_max_interval_ms: Option<u64>,
    max_active: usize,
    rate_records: Option<u64>,
    rate_bytes: Option<u64>,
    continuous: bool,
    /// With the stop flag: the user ends a continuous backup (else a stop interrupts it).
    finish: Arc<AtomicBool>,
    progress: Arc<LiveProgress>,
}

/// Records and bytes the reader read.
#[derive(Debug, Default)]
struct ReadStats {
    records: u64,
    bytes: u64,
}

struct PartState {
    spec: PartSpec,
    writer: Option<SegmentWriter>,
    opened: Instant,
    seq: u64,
    assigned: bool,
    done: bool,
}

/// The reader: runs on its own thread until every partition reached its end (or `stop`).
fn consume(
    config: &KafkaConfig,
    specs: Vec<PartSpec>,
    opts: &LoopOptions,
    tx: &tokio::sync::mpsc::Sender<Sealed>,
    stop: &AtomicBool,
) -> Result<ReadStats> {
    let reading_at_once = opts.max_active.min(specs.len().max(1));
    // Open segments share a budget too, so memory stays bounded however many partitions are
    // read at once: segments close earlier (never below 1 MiB) when many are open.
    let segment_cap = (OPEN_SEGMENT_BUDGET / reading_at_once as u64)
        .max(1024 * 1024)
        .min(opts.segment_max_bytes);
    let reader = crate::kafka::Reader {
        group_id: "tidemark-backup",
        isolation: crate::kafka::Isolation::ReadCommitted,
        offset_reset: "earliest",
        partition_eof: false,
    };
    let tuning = [
        // librdkafka applies this to the consumer's one queue (not per partition); above it,
        // fetching pauses for fetch.queue.backoff.ms (1 s by default), which stalls a reader
        // that is briefly behind, so the pause is kept short.
        ("queued.max.messages.kbytes", PREFETCH_BUDGET_KB.to_string()),
        ("fetch.queue.backoff.ms", "10".to_string()),
        ("fetch.max.bytes", "16777216".to_string()),
        ("fetch.wait.max.ms", "100".to_string()),
    ];
    let consumer: BaseConsumer = config
        .consumer_config(&reader, &tuning)
        .create()
        .map_err(|e| Error::Kafka(format!("failed to create the backup reader: {e}")))?;
    let mut index: HashMap<String, HashMap<i32, usize>> = HashMap::new();
    let mut states: Vec<PartState> = specs
        .into_iter()
        .enumerate()
        .map(|(i, spec)| {
            index
                .entry(spec.topic.clone())
                .or_default()
                .insert(spec.partition, i);
            PartState {
                spec,
                writer: None,
                opened: Instant::now(),
                seq: 0,
                assigned: false,
                done: false,
            }
        })
        .collect();
    let send = |s: Sealed| -> Result<()> {
        tx.blocking_send(s)
            .map_err(|_| Error::Kafka("the backup writer stopped; the reader ends too".into()))
    };
    let mut stats = ReadStats::default();
    let mut queue: std::collections::VecDeque<usize> = (0..states.len()).collect();
    let mut active = 0usize;
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let mut last_idle_check = Instant::now();
    let mut last_refresh = Instant::now();
    let total = states.len();
    let mut finished = 0usize;

    let progress_done = Arc::clone(&opts.progress);
    // Finishes partition `i`: seals its open segment, records the trailing gap, unassigns it.
    let finish = |st: &mut PartState, consumer: &BaseConsumer, end: i64| -> Result<Vec<Sealed>> {
        let mut out = Vec::new();
        if let Some(w) = st.writer.take() {
            out.push(Sealed {
                part: usize::MAX,
                seq: st.seq,
                writer: Some(w),
                progress: progress(&st.spec, None),
            });
            st.seq += 1;
        }
        progress_done
            .partitions_done
            .fetch_add(1, Ordering::Relaxed);
        if end != i64::MAX {
            let from = st.spec.next;
            if end > from {
                progress_done
                    .offsets_done
                    .fetch_add((end - from) as u64, Ordering::Relaxed);
            }
            ended_at(&mut st.spec, end);
        }
        let end = if end == i64::MAX { st.spec.next } else { end };
        out.push(Sealed {
            part: usize::MAX,
            seq: st.seq,
            writer: None,
            progress: progress(&st.spec, Some(end)),
        });
        st.seq += 1;
        st.done = true;
        if st.assigned {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&st.spec.topic, st.spec.partition);
            consumer.incremental_unassign(&tpl).map_err(|e| {
                Error::Kafka(format!(
                    "cannot stop reading {}-{}: {e}",
                    st.spec.topic, st.spec.partition
                ))
            })?;
            st.assigned = false;
        }
        Ok(out)
    };

    loop {
        // Partitions with nothing to read finish at once; others are assigned up to the limit.
        while active < opts.max_active {
            let Some(i) = queue.pop_front() else { break };
            let st = &mut states[i];
            if st.spec.next >= st.spec.target {
                let target = st.spec.target;
                for mut s in finish(st, &consumer, target)? {
                    s.part = i;
                    send(s)?;
                }
                finished += 1;
                continue;
            }
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(
                &st.spec.topic,
                st.spec.partition,
                Offset::Offset(st.spec.next),
            )
            .map_err(|e| {
                Error::Kafka(format!(
                    "cannot read {}-{}: {e}",
                    st.spec.topic, st.spec.partition
                ))
            })?;
            consumer.incremental_assign(&tpl).map_err(|e| {
                Error::Kafka(format!(
                    "cannot read {}-{}: {e}",
                    st.spec.topic, st.spec.partition
                ))
            })?;
            st.assigned = true;
            active += 1;
        }
        if finished == total {
            break;
        }
        if stop.load(Ordering::SeqCst) {
            if opts.continuous && opts.finish.load(Ordering::SeqCst) {
                // The user ends a continuous backup: every partition ends where it is.
                for (i, st) in states.iter_mut().enumerate() {
                    if !st.done {
                        for mut s in finish(st, &consumer, i64::MAX)? {
                            s.part = i;
                            send(s)?;
                        }
                    }
                }
            } else {
                // Interrupted: what was read is stored and checkpointed, to be resumed.
                for (i, st) in states.iter_mut().enumerate() {
                    if let Some(w) = st.writer.take() {
                        send(Sealed {
                            part: i,
                            seq: st.seq,
                            writer: Some(w),
                            progress: progress(&st.spec, None),
                        })?;
                        st.seq += 1;
                    }
                }
            }
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let Some(&i) = index.get(m.topic()).and_then(|t| t.get(&m.partition())) else {
                    continue;
                };
                let st = &mut states[i];
                let off = m.offset();
                if st.done || off < st.spec.next {
                    continue;
                }
                if off >= st.spec.target {
                    let target = st.spec.target;
                    for mut s in finish(st, &consumer, target)? {
                        s.part = i;
                        send(s)?;
                    }
                    active -= 1;
                    finished += 1;
                    continue;
                }
                let (ts, ts_type) = match m.timestamp() {
                    Timestamp::CreateTime(t) => (t, TimestampType::CreateTime),
                    Timestamp::LogAppendTime(t) => (t, TimestampType::LogAppendTime),
                    Timestamp::NotAvailable => (-1, TimestampType::NotAvailable),
                };
                let headers: Vec<(&str, Option<&[u8]>)> = match m.headers() {
                    None => Vec::new(),
                    Some(h) => h.iter().map(|h| (h.key, h.value)).collect(),
                };
                let size = m.key().map_or(0, <[u8]>::len)
                    + m.payload().map_or(0, <[u8]>::len)
                    + headers
                        .iter()
                        .map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len))
                        .sum::<usize>();
                if st.writer.is_none() {
                    // Room for a full segment and its last record: never moved while filled.
                    let room = segment_cap.saturating_add(SEGMENT_SLACK) as usize;
                    st.writer = Some(SegmentWriter::with_capacity(opts.codec, room));
                    st.opened = Instant::now();
                }
                let writer = st
                    .writer
                    .as_mut()
                    .ok_or_else(|| Error::Kafka("no open segment".into()))?;
                writer
                    .push(off, ts, ts_type, m.key(), m.payload(), &headers)
                    .map_err(|e| {
                        Error::Kafka(format!(
                            "cannot store {}-{} offset {off}: {e}",
                            st.spec.topic, st.spec.partition
                        ))
                    })?;
                crash_at("record");
                let live = &opts.progress;
                live.records.fetch_add(1, Ordering::Relaxed);
                live.bytes.fetch_add(size as u64, Ordering::Relaxed);
                live.offsets_done
                    .fetch_add((off + 1 - st.spec.next) as u64, Ordering::Relaxed);
                passed(&mut st.spec, off, size as u64);
                stats.records += 1;
                stats.bytes += size as u64;
                let span_full = match (
                    opts.segment_max_interval_ms,
                    writer.min_timestamp(),
                    writer.max_timestamp(),
                ) {
                    (Some(limit), Some(lo), Some(hi)) => hi.saturating_sub(lo) >= limit as i64,
                    _ => false,
                };
                if writer.uncompressed_bytes() >= segment_cap || span_full {
                    let w = st.writer.take();
                    send(Sealed {
                        part: i,
                        seq: st.seq,
                        writer: w,
                        progress: progress(&st.spec, None),
                    })?;
                    st.seq += 1;
                }
                if st.spec.next >= st.spec.target {
                    let target = st.spec.target;
                    for mut s in finish(st, &consumer, target)? {
                        s.part = i;
                        send(s)?;
                    }
                    active -= 1;
                    finished += 1;
                }
                throttle(opts, &stats, started, stop);
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => {
                let fatal = matches!(e.rdkafka_error_code(), Some(c) if is_fatal(c));
                if fatal {
                    return Err(Error::Kafka(format!("the backup reader failed: {e}")));
                }
                tracing::warn!(error = %e, "backup reader: retrying after a Kafka error");
            }
            None => {}
        }
        // Idle or not, now and then: partitions whose position passed their end (the last
        // offsets were transaction markers or aborted records), and in continuous mode, old
        // open segments.
        if last_idle_check.elapsed() >= Duration::from_millis(500) {
            last_idle_check = Instant::now();
            if let Ok(positions) = consumer.position() {
                for e in positions.elements() {
                    let Some(&i) = index.get(e.topic()).and_then(|t| t.get(&e.partition())) else {
                        continue;
                    };
                    let st = &mut states[i];
                    if let Offset::Offset(pos) = e.offset() {
                        if !st.done && st.assigned && pos >= st.spec.target {
                            let target = st.spec.target;
                            for mut s in finish(st, &consumer, target)? {
                                s.part = i;
                                send(s)?;
                            }
                            active -= 1;
                            finished += 1;
                        }
                    }
                }
            }
            if opts.continuous && last_refresh.elapsed() >= CHECKPOINT_REFRESH {
                // A progress note of a partition without an open segment (its progress is all
                // stored) rewrites the checkpoint: an idle continuous backup still shows that
                // it lives, so retention never takes it for an abandoned one.
                if let Some((i, st)) = states
                    .iter_mut()
                    .enumerate()
                    .find(|(_, st)| !st.done && st.writer.is_none())
                {
                    send(Sealed {
                        part: i,
                        seq: st.seq,
                        writer: None,
                        progress: progress(&st.spec, None),
                    })?;
                    st.seq += 1;
                    last_refresh = Instant::now();
                }
            }
            if opts.continuous {
                for (i, st) in states.iter_mut().enumerate() {
                    if st.writer.is_some() && st.opened.elapsed() >= CONTINUOUS_FLUSH {
                        let w = st.writer.take();
                        send(Sealed {
                            part: i,
                            seq: st.seq,
                            writer: w,
                            progress: progress(&st.spec, None),
                        })?;
                        st.seq += 1;
                    }
                }
            }
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            tracing::info!(
                records = stats.records,
                bytes = stats.bytes,
                partitions_done = finished,
                partitions = total,
                "backup progress"
            );
        }
    }
    Ok(stats)
}

/// A record at `off` of `size` bytes was read: the offsets before it that hold no record are a
/// gap, classified by [`GapCause::between_records`].
fn passed(spec: &mut PartSpec, off: i64, size: u64) {
    if off > spec.next {
        let cause = GapCause::between_records(spec.next, off, spec.compacted);
        spec.gaps.add_as(spec.next, off, cause);
    }
    spec.next = off + 1;
    spec.records += 1;
    spec.bytes += size;
}

/// The partition ends at `end`: offsets after the last record read are a gap (the last offsets
/// held transaction markers or aborted records, or were lost).
fn ended_at(spec: &mut PartSpec, end: i64) {
    if end > spec.next {
        let cause = GapCause::between_records(spec.next, end, spec.compacted);
        spec.gaps.add_as(spec.next, end, cause);
    }
    spec.next = spec.next.max(end);
}

/// Whether a topic with these configs is compacted (`cleanup.policy` contains `compact`).
fn is_compacted(configs: &BTreeMap<String, String>) -> bool {
    configs
        .get("cleanup.policy")
        .is_some_and(|p| p.split(',').any(|v| v.trim() == "compact"))
}

fn progress(spec: &PartSpec, end: Option<i64>) -> Progress {
    Progress {
        next_offset: spec.next,
        records: spec.records,
        bytes: spec.bytes,
        gaps: spec.gaps.clone(),
        end_offset: end,
    }
}

/// Errors after which reading cannot go on.
fn is_fatal(code: rdkafka::types::RDKafkaErrorCode) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        code,
        C::SaslAuthenticationFailed
            | C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::GroupAuthorizationFailed
            | C::Fatal
            | C::Authentication
    )
}

/// Sleeps as long as the configured rates require.
fn throttle(opts: &LoopOptions, stats: &ReadStats, started: Instant, stop: &AtomicBool) {
    let due = |done: u64, rate: Option<u64>| -> Duration {
        match rate {
            Some(r) if r > 0 => Duration::from_secs_f64(done as f64 / r as f64),
            _ => Duration::ZERO,
        }
    };
    let wanted = due(stats.records, opts.rate_records).max(due(stats.bytes, opts.rate_bytes));
    let mut elapsed = started.elapsed();
    while wanted > elapsed && !stop.load(Ordering::Relaxed) {
        std::thread::sleep((wanted - elapsed).min(Duration::from_millis(200)));
        elapsed = started.elapsed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(compacted: bool) -> PartSpec {
        PartSpec {
            topic: "t".into(),
            partition: 0,
            next: 0,
            target: 22,
            records: 0,
            bytes: 0,
            gaps: Gaps::default(),
            compacted,
        }
    }

    /// Feeds a synthetic stream of record offsets, then the partition's end, through the
    /// accounting the reader applies to each record.
    fn account(mut s: PartSpec, offsets: &[i64], end: i64) -> PartSpec {
        for &o in offsets {
            passed(&mut s, o, 10);
        }
        ended_at(&mut s, end);
        s
    }

    #[test]
    fn offsets_without_records_are_counted_and_classified() {
        // 4 and 21 alone (where a transaction marker sits), 7..10 and 12..20 missing.
        let offsets = [0, 1, 2, 3, 5, 6, 10, 11, 20];
        let s = account(spec(false), &offsets, 22);
        assert_eq!((s.records, s.bytes, s.next), (9, 90, 22));
        let g = &s.gaps;
        assert_eq!(g.ranges, vec![(4, 5), (7, 10), (12, 20), (21, 22)]);
        assert_eq!((g.count, g.offsets), (4, 13));
        assert_eq!((g.markers, g.unexplained), (2, 11));
        assert_eq!((g.compacted, g.retention), (0, 0));

        // The same stream in a compacted topic: every gap is compaction.
        let s = account(spec(true), &offsets, 22);
        assert_eq!(
            (s.gaps.compacted, s.gaps.unexplained, s.gaps.markers),
            (13, 0, 0)
        );

        // Without gaps: nothing counted.
        let s = account(spec(false), &[0, 1, 2], 3);
        assert_eq!(s.gaps, Gaps::default());
    }

    #[test]
    fn only_cleanup_policies_with_compact_are_compacted() {
        let configs = |v: &str| BTreeMap::from([("cleanup.policy".to_string(), v.to_string())]);
        assert!(is_compacted(&configs("compact")));
        assert!(is_compacted(&configs("compact,delete")));
        assert!(is_compacted(&configs("delete, compact")));
        assert!(!is_compacted(&configs("delete")));
        assert!(!is_compacted(&BTreeMap::new()));
    }

    #[test]
    fn unexplained_gaps_are_warned_about_per_partition() {
        let mut gaps = Gaps::default();
        gaps.add_as(4, 5, GapCause::Marker);
        gaps.add_as(7, 10, GapCause::Unexplained);
        let mut quiet = Gaps::default();
        quiet.add_as(3, 9, GapCause::Compacted);
        let topic = |g: Gaps| TopicData {
            partitions: 1,
            partition_data: BTreeMap::from([(
                0,
                PartitionData {
                    gaps: g,
                    ..PartitionData::default()
                },
            )]),
            ..TopicData::default()
        };
        let topics = BTreeMap::from([
            ("orders".to_string(), topic(gaps)),
            ("changelog".to_string(), topic(quiet)),
        ]);
        let w = unexplained_gap_warnings(&topics);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("orders-0: 3 offsets hold no record"),
            "{w:?}"
        );
        assert!(w[0].ends_with("(gaps 7..10)"), "{w:?}");
    }
}

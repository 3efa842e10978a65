//! Writing the selected records to the target, exactly once across crashes.
//!
//! Each target partition is a *lane*: the units (source partitions) aimed at it are written one
//! after another in a fixed order, so what a lane must hold is one deterministic sequence. One
//! producer serves every lane; it is idempotent (`acks=all`), so within a partition what lands
//! is always a prefix of what was sent, in order, without duplicates. With `acks=1` the producer
//! keeps one request in flight per connection and never retries, for the same property.
//!
//! Progress is the offset mapping itself: the delivery report of every record gives its exact
//! target offset, and the runs built from them are checkpointed (in the backup storage under
//! `restores/<id>/checkpoint.json`, or a local file). Before a unit's first record is sent, its
//! start offset in the target is checkpointed. After a crash, the records that landed after the
//! last checkpoint are read back from the target and matched one by one (key, value, timestamp)
//! against the sequence; sending resumes right after the last one found. So every selected
//! record is in the target exactly once, and a target that holds anything else (another writer)
//! is reported instead of being written over.
//!
//! The finished mapping is stored last (`restores/<id>/mapping.json`, `complete: true`); a
//! restore whose mapping is complete is not run again.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::mapping::{
    checkpoint_key, mapping_key, restore_dir, Fingerprint, OffsetMapping, PartitionMapping,
    MAPPING_FORMAT,
};
use super::plan::{RestorePlan, Unit, Window};
use crate::backup::format::{DecodedSegment, RecordRef, TimestampType};
use crate::backup::read::read_segment_reusing;
use crate::error::{Error, Result};
use crate::failpoints::crash_at;
use crate::kafka::{GroupAdmin, Isolation, KafkaConfig, OffsetSpec, ProducerAcks, Reader};
use crate::lease::Lease;
use crate::storage::{BufferPool, Storage};
use crate::task::{Acks, ExistingData, HeaderStyle, RestoreTask};

/// Version tag of the checkpoint document.
pub const CHECKPOINT_FORMAT: &str = "tidemark-restore-checkpoint/1";
/// Bytes librdkafka may hold in its send queue (bounds memory at any data size).
const QUEUE_KBYTES: &str = "16384";
/// How long a partition's end offset must stay still before the tail of an interrupted run is
/// read (requests of a killed process may still be landing).
const SETTLE: Duration = Duration::from_millis(500);
const SETTLE_MAX: Duration = Duration::from_secs(30);
/// Memory for segments read ahead and being sent, shared by every lane: a stored object until
/// it is decompressed, a decoded block until the sender has handed all its records to the
/// producer (a lane reads its next segment while the sender works through its earlier ones).
/// A segment larger than this is read alone.
const SEGMENT_MEMORY_BYTES: u64 = 64 << 20;
/// Spare buffers of each kind (stored objects, decompressed blocks) kept for reuse: at most as
/// many as the memory budget lets be in use at once.
const SEGMENT_BUFFERS: usize = 16;
/// Progress is logged this often.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Live counters of a running restore (relaxed atomics), for progress bars and logs.
#[derive(Debug, Default)]
pub struct LiveProgress {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub records_total: AtomicU64,
    pub bytes_total: AtomicU64,
    pub partitions_done: AtomicU64,
    pub partitions_total: AtomicU64,
}

/// How a restore runs.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    pub restore_id: String,
    pub task: RestoreTask,
    pub progress: Arc<LiveProgress>,
}

/// What a restore did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreReport {
    pub restore_id: String,
    pub backup_id: String,
    /// The backups restored, oldest first (the chain up to `backup_id`, or that one alone).
    pub links: Vec<String>,
    pub target_cluster: String,
    /// Every selected record is in the target and the mapping is stored.
    pub complete: bool,
    /// The restore had finished before; nothing was written.
    pub already_complete: bool,
    /// Continued an interrupted run.
    pub resumed: bool,
    pub topics: u64,
    pub partitions: u64,
    /// Records selected, and records in the target (all runs).
    pub records_total: u64,
    pub records: u64,
    pub bytes_total: u64,
    pub bytes: u64,
    /// Written by this run.
    pub records_this_run: u64,
    pub bytes_this_run: u64,
    /// Records of an interrupted run found in the target and matched on resume.
    pub records_found_on_resume: u64,
    pub topics_created: Vec<String>,
    /// Target partitions emptied first (`existing_data: purge`), with the records removed.
    pub partitions_purged: Vec<String>,
    pub duration_ms: u128,
    pub records_per_second: f64,
    pub mib_per_second: f64,
    /// Object key of the offset mapping.
    pub offset_mapping: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset_report: Option<String>,
    pub warnings: Vec<String>,
}

/// A unit's progress in the checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitCheckpoint {
    /// Target offset where the unit's first record goes (recorded before it is sent).
    pub target_start: i64,
    pub done: bool,
    /// Payload bytes confirmed.
    pub bytes: u64,
    /// Records confirmed so far.
    pub mapping: PartitionMapping,
}

/// The checkpoint of a running or interrupted restore.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: String,
    pub backup_id: String,
    pub restore_id: String,
    /// Fingerprint of what decides the restored content; a checkpoint is only resumed by the
    /// same selection.
    pub config_hash: String,
    pub start_time: DateTime<Utc>,
    pub last_checkpoint_time: DateTime<Utc>,
    pub records_restored: u64,
    pub bytes_restored: u64,
    /// Per source partition (`topic/partition`).
    pub units: BTreeMap<String, UnitCheckpoint>,
}

/// Where the checkpoint lives.
#[derive(Debug, Clone)]
pub enum CheckpointStore {
    Storage { storage: Storage, key: String },
    File(PathBuf),
}

impl CheckpointStore {
    pub fn describe(&self) -> String {
        match self {
            CheckpointStore::Storage { storage, key } => format!("{}/{key}", storage.display()),
            CheckpointStore::File(p) => p.display().to_string(),
        }
    }

    pub async fn load(&self) -> Result<Option<Checkpoint>> {
        let data = match self {
            CheckpointStore::Storage { storage, key } => {
                storage.get(key).await?.map(|b| b.to_vec())
            }
            CheckpointStore::File(p) => match std::fs::read(p) {
                Ok(d) => Some(d),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Err(Error::Io {
                        path: p.clone(),
                        source: e,
                    })
                }
            },
        };
        match data {
            None => Ok(None),
            Some(d) => serde_json::from_slice(&d)
                .map(Some)
                .map_err(|e| Error::Malformed {
                    kind: "restore checkpoint",
                    file: self.describe(),
                    reason: e.to_string(),
                }),
        }
    }

    pub async fn save(&self, c: &Checkpoint) -> Result<()> {
        let data = serde_json::to_vec_pretty(c).map_err(|e| Error::Malformed {
            kind: "restore checkpoint",
            file: self.describe(),
            reason: e.to_string(),
        })?;
        match self {
            CheckpointStore::Storage { storage, key } => storage.put(key, Bytes::from(data)).await,
            CheckpointStore::File(p) => {
                let io = |e: std::io::Error| Error::Io {
                    path: p.clone(),
                    source: e,
                };
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let tmp = p.with_extension("tmp");
                std::fs::write(&tmp, &data).map_err(io)?;
                std::fs::rename(&tmp, p).map_err(io)
            }
        }
    }

    pub async fn delete(&self) -> Result<()> {
        match self {
            CheckpointStore::Storage { storage, key } => storage.delete(key).await.map(|_| ()),
            CheckpointStore::File(p) => match std::fs::remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
                    path: p.clone(),
                    source: e,
                }),
                _ => Ok(()),
            },
        }
    }
}

/// The checkpoint store a task uses.
pub fn checkpoint_store(storage: &Storage, t: &RestoreTask, restore_id: &str) -> CheckpointStore {
    match &t.checkpoint_state {
        Some(path) => CheckpointStore::File(PathBuf::from(path)),
        None => CheckpointStore::Storage {
            storage: storage.clone(),
            key: checkpoint_key(&t.backup_id, restore_id),
        },
    }
}

/// Fingerprint of the selection (what a resumed run must share with the first one).
pub fn config_hash(t: &RestoreTask, restore_id: &str) -> String {
    let key = format!("{restore_id}\n{}", t.selection_key());
    format!("{:08x}", crc32c::crc32c(key.as_bytes()))
}

/// The state of the target partitions before writing, per lane.
#[derive(Debug, Clone, Default)]
pub struct TargetState {
    /// Where the next record of each lane goes.
    pub lane_start: HashMap<(String, i32), i64>,
    pub created: Vec<String>,
    pub purged: Vec<String>,
    /// Problems that stop the restore (validation reports them all).
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    /// Per target topic: partitions, and records already in the partitions written.
    pub topics: BTreeMap<String, (Option<i32>, Option<u64>, String)>,
}

/// Checks (and, unless `dry_run`, prepares) the target: topics exist with enough partitions or
/// are created from the backed-up metadata; partitions not yet started by this restore are
/// empty, or appended to, or purged, as `existing_data` says.
pub async fn prepare_targets(
    admin: &GroupAdmin,
    plan: &RestorePlan,
    t: &RestoreTask,
    started: &BTreeMap<String, UnitCheckpoint>,
    dry_run: bool,
) -> Result<TargetState> {
    let mut st = TargetState::default();
    let started_lanes: std::collections::HashSet<(String, i32)> = plan
        .units
        .iter()
        .filter(|u| started.contains_key(&u.key()))
        .map(|u| (u.target_topic.clone(), u.target_partition))
        .collect();
    let existing = admin.list_topics().await?;
    for target in plan.targets.values() {
        let needed = target.partitions_written.iter().max().copied().unwrap_or(0) + 1;
        if !existing.contains(&target.name) {
            if !t.create_topics {
                st.problems.push(format!(
                    "target topic '{}' does not exist: create it, or set create_topics to create it from the backup ({} partitions, replication factor {})",
                    target.name,
                    target.backup_partitions.max(needed),
                    target.backup_replication_factor.max(1)
                ));
                st.topics
                    .insert(target.name.clone(), (None, None, "missing".into()));
                continue;
            }
            let partitions = target.backup_partitions.max(needed);
            st.topics.insert(
                target.name.clone(),
                (Some(partitions), Some(0), "will be created".into()),
            );
            // Shards create the topics they write to; one that another shard created first
            // (with the same partition count: see `deal_to_shard`) is used as it is.
            let create = async {
                let rf = target.backup_replication_factor.max(1);
                let c = &target.backup_configs;
                if t.shard_count > 1 {
                    admin
                        .create_topic_if_missing(&target.name, partitions, rf, c)
                        .await
                } else {
                    admin
                        .create_topic(&target.name, partitions, rf, c)
                        .await
                        .map(|_| true)
                }
            };
            if !dry_run && create.await? {
                st.created.push(target.name.clone());
            }
            for p in &target.partitions_written {
                st.lane_start.insert((target.name.clone(), *p), 0);
            }
            continue;
        }
        let layout = admin.topic_layout(&target.name).await?;
        let count = layout.partitions.len() as i32;
        let missing: Vec<i32> = target
            .partitions_written
            .iter()
            .copied()
            .filter(|p| !layout.partitions.contains(p))
            .collect();
        if !missing.is_empty() {
            st.problems.push(format!(
                "target topic '{}' has {count} partitions; the restore writes to partition{} {} (use partition_mapping, or add partitions)",
                target.name,
                if missing.len() > 1 { "s" } else { "" },
                missing.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")
            ));
            st.topics
                .insert(target.name.clone(), (Some(count), None, "exists".into()));
            continue;
        }
        let tps: Vec<(String, i32)> = target
            .partitions_written
            .iter()
            .map(|p| (target.name.clone(), *p))
            .collect();
        let earliest = admin
            .list_offsets_isolated(&tps, OffsetSpec::Earliest, false)
            .await?;
        let latest = admin
            .list_offsets_isolated(&tps, OffsetSpec::Latest, false)
            .await?;
        let mut held = 0u64;
        let mut non_empty = Vec::new();
        for ((tp, e), l) in tps.iter().zip(earliest).zip(latest) {
            let (e, l) = (e?.offset, l?.offset);
            let records = (l - e).max(0) as u64;
            if started_lanes.contains(tp) {
                continue;
            }
            held += records;
            if records > 0 {
                non_empty.push((tp.clone(), records, l));
            }
            st.lane_start.insert(tp.clone(), l);
        }
        st.topics.insert(
            target.name.clone(),
            (Some(count), Some(held), "exists".into()),
        );
        if non_empty.is_empty() {
            continue;
        }
        let list = non_empty
            .iter()
            .map(|((t, p), n, _)| format!("{t}-{p} ({n} records)"))
            .collect::<Vec<_>>()
            .join(", ");
        match t.existing_data {
            ExistingData::Refuse => st.problems.push(format!(
                "target partitions already hold records: {list}; restoring would mix them with the backup's. Choose existing_data: append (add after them) or purge (delete them first), or restore to another topic (topic_mapping)"
            )),
            ExistingData::Append => st
                .warnings
                .push(format!("appending after the records already in {list}")),
            ExistingData::Purge => {
                if !dry_run {
                    let upto: Vec<((String, i32), i64)> =
                        non_empty.iter().map(|(tp, _, l)| (tp.clone(), *l)).collect();
                    admin.delete_records(&upto).await?;
                }
                for ((t, p), n, _) in &non_empty {
                    st.purged.push(format!("{t}-{p} ({n} records)"));
                }
            }
        }
    }
    Ok(st)
}

/// One unit's live state, shared with the delivery callback.
#[derive(Debug)]
struct UnitState {
    mapping: PartitionMapping,
    /// Sent, not yet reported: (source offset, timestamp, payload bytes), in send order.
    inflight: VecDeque<(i64, i64, u64)>,
    /// Selected and handed to the sender, not yet sent.
    queued: usize,
    bytes: u64,
    error: Option<String>,
    done: bool,
    target_start: i64,
    started: bool,
}

struct Shared {
    units: Vec<Mutex<UnitState>>,
    records: AtomicU64,
    bytes: AtomicU64,
    progress: Arc<LiveProgress>,
    failed: AtomicBool,
}

struct DeliveryContext {
    shared: Arc<Shared>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, unit: usize) {
        let Some(slot) = self.shared.units.get(unit) else {
            return;
        };
        let mut u = match slot.lock() {
            Ok(u) => u,
            Err(p) => p.into_inner(),
        };
        let Some((source, ts, bytes)) = u.inflight.pop_front() else {
            return;
        };
        match result {
            Ok(m) if u.error.is_none() => {
                // A retried batch the broker already had may come back without its offset
                // (-1). A lane's records land one after another in a partition only this
                // restore writes, so it is the offset after the previous one; the final check
                // compares the partition's end with the plan.
                let target = if m.offset() >= 0 {
                    m.offset()
                } else {
                    u.mapping.target_end
                };
                u.mapping.push(source, target, ts);
                u.bytes += bytes;
                self.shared.records.fetch_add(1, Ordering::Relaxed);
                self.shared.bytes.fetch_add(bytes, Ordering::Relaxed);
                self.shared.progress.records.fetch_add(1, Ordering::Relaxed);
                self.shared
                    .progress
                    .bytes
                    .fetch_add(bytes, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err((e, m)) => {
                if u.error.is_none() {
                    u.error = Some(format!(
                        "the record at source offset {source} could not be written to {}-{}: {e}",
                        m.topic(),
                        m.partition()
                    ));
                }
                self.shared.failed.store(true, Ordering::SeqCst);
            }
        }
    }
}

fn lock(m: &Mutex<UnitState>) -> std::sync::MutexGuard<'_, UnitState> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Header names for the original offset.
pub(crate) fn header_names(
    style: HeaderStyle,
) -> (&'static str, &'static str, Option<&'static str>) {
    match style {
        HeaderStyle::Original => ("x-original-offset", "x-original-timestamp", None),
        HeaderStyle::KafkaBackup => (
            "x-kafka-backup-offset",
            "x-kafka-backup-timestamp",
            Some("x-kafka-backup-partition"),
        ),
    }
}

/// Runs a restore to completion. `stop` ends it early (SIGTERM): what was sent is confirmed and
/// checkpointed, and the run fails as [`Error::Partial`] so that running it again resumes.
/// The restore id's lease is held throughout: a second worker on it fails with
/// [`Error::LeaseHeld`], and a run that loses its lease stops (see [`crate::lease`]).
pub async fn run_restore(
    admin: &GroupAdmin,
    storage: &Storage,
    plan: &RestorePlan,
    req: &RestoreRequest,
    stop: Arc<AtomicBool>,
) -> Result<RestoreReport> {
    let key = format!(
        "{}lease.json",
        restore_dir(&req.task.backup_id, &req.restore_id)
    );
    let resource = format!("restore '{}'", req.restore_id);
    let lease = Lease::hold(storage, &key, &resource, &stop).await?;
    let result = restore_under_lease(admin, &lease.storage(), plan, req, stop).await;
    lease.finish(result).await
}

async fn restore_under_lease(
    admin: &GroupAdmin,
    storage: &Storage,
    plan: &RestorePlan,
    req: &RestoreRequest,
    stop: Arc<AtomicBool>,
) -> Result<RestoreReport> {
    let t = &req.task;
    let started = Instant::now();
    let cluster = t.kafka.bootstrap_servers.join(",");
    let mkey = mapping_key(&t.backup_id, &req.restore_id);
    let mut report = RestoreReport {
        restore_id: req.restore_id.clone(),
        backup_id: t.backup_id.clone(),
        target_cluster: cluster.clone(),
        topics: plan.targets.len() as u64,
        partitions: plan.units.len() as u64,
        records_total: plan.records,
        bytes_total: plan.bytes,
        offset_mapping: mkey.clone(),
        links: plan.links.clone(),
        warnings: plan.warnings.clone(),
        ..RestoreReport::default()
    };
    let fingerprint = Fingerprint::of(t);
    let cluster_id = admin.cluster_id().await;
    if let Some(data) = storage.get(&mkey).await? {
        let m = OffsetMapping::from_json(&data, &mkey)?;
        if m.complete {
            same_restore(&m, &mkey, &fingerprint, cluster_id.as_deref(), &cluster)?;
            report.complete = true;
            report.already_complete = true;
            report.records = m.partitions.iter().map(|p| p.records).sum();
            report.bytes = plan.bytes;
            report.duration_ms = started.elapsed().as_millis();
            return Ok(report);
        }
    }
    let store = checkpoint_store(storage, t, &req.restore_id);
    let hash = config_hash(t, &req.restore_id);
    let checkpoint = match store.load().await? {
        Some(c) if c.config_hash != hash || c.backup_id != t.backup_id => {
            return Err(Error::invalid(format!(
                "the checkpoint {} belongs to another restore configuration (restore '{}' of backup '{}'); keep the configuration of the interrupted run to resume it, or delete the checkpoint (or give another restore id) to start over",
                store.describe(),
                c.restore_id,
                c.backup_id
            )))
        }
        Some(c) => {
            report.resumed = true;
            tracing::info!(
                checkpoint = %store.describe(),
                records = c.records_restored,
                partitions_started = c.units.len(),
                "loaded checkpoint: resuming"
            );
            c
        }
        None => Checkpoint {
            format: CHECKPOINT_FORMAT.into(),
            backup_id: t.backup_id.clone(),
            restore_id: req.restore_id.clone(),
            config_hash: hash,
            start_time: Utc::now(),
            last_checkpoint_time: Utc::now(),
            records_restored: 0,
            bytes_restored: 0,
            units: BTreeMap::new(),
        },
    };
    // Unit states, from the checkpoint where it has them.
    let mut states = Vec::with_capacity(plan.units.len());
    let mut already = 0u64;
    let mut already_bytes = 0u64;
    for u in &plan.units {
        let state = match checkpoint.units.get(&u.key()) {
            Some(c) => {
                already += c.mapping.records;
                already_bytes += c.bytes;
                UnitState {
                    mapping: c.mapping.clone(),
                    inflight: VecDeque::new(),
                    queued: 0,
                    bytes: c.bytes,
                    error: None,
                    done: c.done,
                    target_start: c.target_start,
                    started: true,
                }
            }
            None => UnitState {
                mapping: PartitionMapping {
                    era: u.era,
                    ..PartitionMapping::new(
                        (&u.source_topic, u.source_partition),
                        (&u.target_topic, u.target_partition),
                        0,
                    )
                },
                inflight: VecDeque::new(),
                queued: 0,
                bytes: 0,
                error: None,
                done: false,
                target_start: 0,
                started: false,
            },
        };
        states.push(Mutex::new(state));
    }
    let progress = Arc::clone(&req.progress);
    progress
        .records_total
        .store(plan.records, Ordering::Relaxed);
    progress.bytes_total.store(plan.bytes, Ordering::Relaxed);
    progress.records.store(already, Ordering::Relaxed);
    progress.bytes.store(already_bytes, Ordering::Relaxed);
    progress
        .partitions_total
        .store(plan.units.len() as u64, Ordering::Relaxed);
    let shared = Arc::new(Shared {
        units: states,
        records: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        progress: Arc::clone(&progress),
        failed: AtomicBool::new(false),
    });

    // The producer connects and acquires its producer id while the targets are prepared.
    let config = admin.config().clone();
    let delivery = DeliveryThread::start(make_producer(&config, t, Arc::clone(&shared))?)?;
    let producer = Arc::clone(&delivery.producer);
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "producer started"
    );

    let targets = prepare_targets(admin, plan, t, &checkpoint.units, false).await?;
    if !targets.problems.is_empty() {
        return Err(Error::invalid(targets.problems.join("; ")));
    }
    report.topics_created = targets.created.clone();
    report.partitions_purged = targets.purged.clone();
    report.warnings.extend(targets.warnings.iter().cloned());
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "targets prepared"
    );
    if !targets.created.is_empty() {
        wait_for_topics(admin, &targets.created).await?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "created topics ready"
        );
    }

    // Lanes: units grouped by target partition, in plan order.
    let mut lanes: Vec<((String, i32), Vec<usize>)> = Vec::new();
    for (i, u) in plan.units.iter().enumerate() {
        let key = (u.target_topic.clone(), u.target_partition);
        match lanes.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(i),
            None => lanes.push((key, vec![i])),
        }
    }
    let ckpt = Arc::new(tokio::sync::Mutex::new(()));
    let ctx = Arc::new(LaneContext {
        storage: storage.clone(),
        plan_units: plan.units.clone(),
        window: plan.window,
        headers: t
            .include_original_offset_header
            .then_some(t.original_header_style),
        shared: Arc::clone(&shared),
        producer: Arc::clone(&producer),
        config: config.clone(),
        lane_start: targets.lane_start.clone(),
        batch: t
            .produce_batch_size
            .unwrap_or(crate::task::DEFAULT_PRODUCE_BATCH),
        limiter: RateLimiter::new(t.rate_limit_records_per_sec, t.rate_limit_bytes_per_sec),
        stop: Arc::clone(&stop),
        found_on_resume: AtomicU64::new(0),
        queue_full_us: AtomicU64::new(0),
        handle: tokio::runtime::Handle::current(),
        store: store.clone(),
        checkpoint: Arc::new(Mutex::new(checkpoint.clone())),
        ckpt_lock: ckpt,
        segment_memory: Arc::new(tokio::sync::Semaphore::new(
            (SEGMENT_MEMORY_BYTES / 1024) as usize,
        )),
        objects: Arc::new(BufferPool::new(SEGMENT_BUFFERS)),
        blocks: Arc::new(BufferPool::new(SEGMENT_BUFFERS)),
        sender: SendQueue::new(lanes.len()),
    });
    let sender = {
        let ctx = Arc::clone(&ctx);
        std::thread::Builder::new()
            .name("restore-send".into())
            .spawn(move || run_sender(&ctx))
            .map_err(|e| Error::Kafka(format!("cannot start the restore's sender thread: {e}")))?
    };
    let next_lane = Arc::new(AtomicUsize::new(0));
    let lanes = Arc::new(lanes);
    let workers = t
        .max_concurrent_partitions
        .unwrap_or(crate::task::DEFAULT_RESTORE_CONCURRENCY)
        .min(lanes.len())
        .max(1);
    let mut workers_left = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let ctx = Arc::clone(&ctx);
        let lanes = Arc::clone(&lanes);
        let next = Arc::clone(&next_lane);
        workers_left.spawn_blocking(move || -> Result<()> {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((key, units)) = lanes.get(i) else {
                    return Ok(());
                };
                run_lane(&ctx, i, key, units)?;
                if ctx.stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
            }
        });
    }
    // Checkpoint and log while the lanes run.
    let interval = checkpoint_interval(t);
    let mut last_ckpt = Instant::now();
    let mut last_log = Instant::now();
    let mut result: Result<()> = Ok(());
    loop {
        let due = (last_ckpt + interval).min(last_log + LOG_EVERY);
        tokio::select! {
            joined = workers_left.join_next() => {
                let failure = match joined {
                    None => break,
                    Some(Ok(Ok(()))) => None,
                    Some(Ok(Err(e))) => Some(e),
                    Some(Err(e)) => Some(Error::Kafka(format!("a restore worker failed: {e}"))),
                };
                if let Some(e) = failure {
                    if result.is_ok() {
                        result = Err(e);
                    }
                    stop.store(true, Ordering::SeqCst);
                }
                continue;
            }
            () = tokio::time::sleep_until(due.into()) => {}
        }
        if last_ckpt.elapsed() >= interval {
            write_checkpoint(&ctx).await?;
            last_ckpt = Instant::now();
        }
        if last_log.elapsed() >= LOG_EVERY {
            last_log = Instant::now();
            tracing::info!(
                records = progress.records.load(Ordering::Relaxed),
                of = plan.records,
                bytes = progress.bytes.load(Ordering::Relaxed),
                partitions_done = progress.partitions_done.load(Ordering::Relaxed),
                partitions = plan.units.len(),
                "restore progress"
            );
        }
    }
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "lanes done"
    );
    // The lanes are done: whatever the sender still holds (after a stop) is dropped.
    ctx.sender.close();
    let joined = tokio::task::spawn_blocking(move || sender.join())
        .await
        .map_err(|e| Error::Kafka(format!("the restore's sender did not stop: {e}")))?;
    if joined.is_err() && result.is_ok() {
        result = Err(Error::Kafka("the restore's sender thread failed".into()));
    }
    // Everything sent is confirmed or failed once the queue is empty.
    let p = Arc::clone(&producer);
    let flushed = tokio::task::spawn_blocking(move || flush_all(&p))
        .await
        .map_err(|e| Error::Kafka(format!("flushing the producer did not complete: {e}")))?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "producer flushed"
    );
    write_checkpoint(&ctx).await?;
    result?;
    flushed?;
    if let Some(e) = first_error(&shared) {
        return Err(Error::Kafka(format!(
            "{e}; the records confirmed so far are checkpointed: run the restore again to resume"
        )));
    }
    if stop.load(Ordering::Relaxed) {
        return Err(Error::Partial(format!(
            "restore '{}' stopped before it finished ({} of {} records in the target); run it again to resume",
            req.restore_id,
            progress.records.load(Ordering::Relaxed),
            plan.records
        )));
    }
    // Every unit done: check the lanes' ends and store the mapping.
    let mut partitions = Vec::new();
    for s in &shared.units {
        let u = lock(s);
        partitions.push(u.mapping.clone());
    }
    check_target_ends(admin, plan, &partitions).await?;
    let mapping = OffsetMapping {
        format: MAPPING_FORMAT.into(),
        backup_id: t.backup_id.clone(),
        restore_id: req.restore_id.clone(),
        target_cluster: cluster,
        created_at: Utc::now(),
        complete: true,
        fingerprint: Some(fingerprint),
        target_cluster_id: cluster_id,
        partitions,
    };
    let restored: u64 = mapping.partitions.iter().map(|p| p.records).sum();
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "lane ends checked"
    );
    crash_at("restore-before-mapping");
    let json = serde_json::to_vec_pretty(&mapping).map_err(|e| Error::Malformed {
        kind: "offset mapping",
        file: mkey.clone(),
        reason: e.to_string(),
    })?;
    storage.put_once(&mkey, Bytes::from(json.clone())).await?;
    crash_at("restore-after-mapping");
    if let Some(path) = &t.offset_report {
        std::fs::write(path, &json).map_err(|e| Error::Io {
            path: PathBuf::from(path),
            source: e,
        })?;
        report.offset_report = Some(path.clone());
    }
    store.delete().await?;
    report.complete = true;
    report.records = restored;
    report.bytes = progress.bytes.load(Ordering::Relaxed);
    report.records_this_run = shared.records.load(Ordering::Relaxed);
    report.bytes_this_run = shared.bytes.load(Ordering::Relaxed);
    report.records_found_on_resume = ctx.found_on_resume.load(Ordering::Relaxed);
    report.duration_ms = started.elapsed().as_millis();
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    report.records_per_second = report.records_this_run as f64 / secs;
    report.mib_per_second = report.bytes_this_run as f64 / secs / (1024.0 * 1024.0);
    Ok(report)
}

/// A completed restore is only "already complete" for the same request: other settings, or
/// another target cluster, are invalid input naming what differs (nothing is written or
/// committed). A mapping stored before fingerprints were kept is taken as it is.
fn same_restore(
    m: &OffsetMapping,
    key: &str,
    fingerprint: &Fingerprint,
    cluster_id: Option<&str>,
    cluster: &str,
) -> Result<()> {
    let mut differs = match &m.fingerprint {
        Some(earlier) => fingerprint.differences(earlier),
        None => Vec::new(),
    };
    let other_cluster = match (m.target_cluster_id.as_deref(), cluster_id) {
        (Some(a), Some(b)) => a != b,
        _ => m.fingerprint.is_some() && !same_servers(&m.target_cluster, cluster),
    };
    if other_cluster {
        differs.push(format!(
            "target cluster: {} (id {}) -> {cluster} (id {})",
            m.target_cluster,
            m.target_cluster_id.as_deref().unwrap_or("unknown"),
            cluster_id.unwrap_or("unknown")
        ));
    }
    if differs.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "restore '{}' of backup '{}' already completed ({key}) with other settings; {}. Run it with the settings it completed with, or give this restore another id (--restore-id)",
        m.restore_id,
        m.backup_id,
        differs.join("; ")
    )))
}

/// Whether two bootstrap lists name the same servers (order aside).
fn same_servers(a: &str, b: &str) -> bool {
    let set = |s: &str| {
        let mut v: Vec<String> = s.split(',').map(|x| x.trim().to_lowercase()).collect();
        v.sort();
        v
    };
    set(a) == set(b)
}

fn first_error(shared: &Shared) -> Option<String> {
    shared.units.iter().find_map(|u| lock(u).error.clone())
}

fn flush_all(p: &BaseProducer<DeliveryContext>) -> Result<()> {
    loop {
        match p.flush(Duration::from_secs(1)) {
            Ok(()) => return Ok(()),
            Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)) => {
                if p.in_flight_count() == 0 {
                    return Ok(());
                }
            }
            Err(e) => return Err(Error::Kafka(format!("flushing the producer failed: {e}"))),
        }
    }
}

/// Waits until freshly created topics show up in metadata with their partitions.
async fn wait_for_topics(admin: &GroupAdmin, topics: &[String]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    for t in topics {
        loop {
            match admin.topic_layout(t).await {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    Ok(())
}

/// After the restore, the target against the plan: every unit confirmed the records the plan
/// selected for it, and each target partition ends exactly where those records end (its first
/// restored offset plus the planned records). A partition that ends later holds records this
/// restore did not write (another writer, or a second restore of the same id); one that ends
/// earlier lost records.
async fn check_target_ends(
    admin: &GroupAdmin,
    plan: &RestorePlan,
    parts: &[PartitionMapping],
) -> Result<()> {
    // Per target partition: first restored offset and planned records.
    let mut lanes: BTreeMap<(String, i32), (i64, u64)> = BTreeMap::new();
    for (u, m) in plan.units.iter().zip(parts) {
        if m.records != u.records {
            return Err(Error::VerificationFailed(format!(
                "{} selected {} records for {}-{} but {} were confirmed",
                u.key(),
                u.records,
                u.target_topic,
                u.target_partition,
                m.records
            )));
        }
        if let Some((first, _)) = m.target_range() {
            let lane = lanes
                .entry((u.target_topic.clone(), u.target_partition))
                .or_insert((first, 0));
            lane.0 = lane.0.min(first);
            lane.1 += u.records;
        }
    }
    let tps: Vec<(String, i32)> = lanes.keys().cloned().collect();
    let latest = admin
        .list_offsets_isolated(&tps, OffsetSpec::Latest, false)
        .await?;
    for (tp, end) in tps.iter().zip(latest) {
        let end = end?.offset;
        let (first, records) = lanes[tp];
        let expected = first + records as i64;
        if end > expected {
            return Err(Error::VerificationFailed(format!(
                "{}-{} ends at offset {end}, but this restore's {records} records there end at {expected}: something else wrote to it during the restore (another writer, or a second run of this restore); restore to an empty partition with no other writer",
                tp.0, tp.1
            )));
        }
        if end < expected && !last_record_present(admin, tp, end, expected).await? {
            return Err(Error::VerificationFailed(format!(
                "{}-{} ends at offset {end}, before the restore's last record at {}: records are missing from the target",
                tp.0,
                tp.1,
                expected - 1
            )));
        }
    }
    Ok(())
}

/// Some brokers report an end offset that trails the last batch: reads from just before it to
/// the end, and whether the last record is at `expected - 1` (an error when there are more).
async fn last_record_present(
    admin: &GroupAdmin,
    tp: &(String, i32),
    end: i64,
    expected: i64,
) -> Result<bool> {
    let config = admin.config().clone();
    let (topic, partition) = tp.clone();
    tokio::task::spawn_blocking(move || -> Result<bool> {
        let mut reader = TailReader::open(&config, &topic, partition, (end - 1).max(0))?;
        let mut last = None;
        while let Some(found) = reader.next()? {
            last = Some(found.offset);
        }
        match last {
            Some(last) if last >= expected => Err(Error::VerificationFailed(format!(
                "{topic}-{partition} holds a record at offset {last}, after this restore's last record at {}: something else wrote to it during the restore (another writer, or a second run of this restore); restore to an empty partition with no other writer",
                expected - 1
            ))),
            Some(last) => Ok(last == expected - 1),
            None => Ok(false),
        }
    })
    .await
    .map_err(|e| Error::Kafka(format!("reading the target back did not complete: {e}")))?
}

fn make_producer(
    config: &KafkaConfig,
    t: &RestoreTask,
    shared: Arc<Shared>,
) -> Result<BaseProducer<DeliveryContext>> {
    let acks = match t.acks {
        Acks::All => ProducerAcks::All,
        Acks::Leader => ProducerAcks::Leader,
    };
    // Sparse connections make the idempotent producer wait up to a second for a broker
    // connection before it can acquire its producer id; a restore connects right away.
    let tuning = [
        ("queue.buffering.max.kbytes", QUEUE_KBYTES.to_string()),
        ("enable.sparse.connections", "false".to_string()),
        ("message.max.bytes", "67108864".to_string()),
        (
            "batch.num.messages",
            t.produce_batch_size
                .unwrap_or(crate::task::DEFAULT_PRODUCE_BATCH)
                .to_string(),
        ),
    ];
    // The user's properties are in `config` (from the task); the guarantees are set last.
    config
        .producer_config(acks, &tuning)
        .create_with_context(DeliveryContext { shared })
        .map_err(|e| Error::Kafka(format!("cannot create the producer: {e}")))
}

/// The restore's producer and the thread that serves its delivery reports. Stopping it (on
/// drop) takes at most [`DELIVERY_POLL`], where rdkafka's `ThreadedProducer` waits up to 100 ms
/// for its thread at the end of every restore.
struct DeliveryThread {
    producer: Arc<BaseProducer<DeliveryContext>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How long one poll of the delivery reports lasts (`BaseProducer::poll` serves reports until
/// its timeout is over).
const DELIVERY_POLL: Duration = Duration::from_millis(10);

impl DeliveryThread {
    fn start(producer: BaseProducer<DeliveryContext>) -> Result<DeliveryThread> {
        let producer = Arc::new(producer);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let producer = Arc::clone(&producer);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("restore-delivery".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        producer.poll(DELIVERY_POLL);
                    }
                })
                .map_err(|e| {
                    Error::Kafka(format!("cannot start the delivery report thread: {e}"))
                })?
        };
        Ok(DeliveryThread {
            producer,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for DeliveryThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::warn!("the restore's delivery report thread panicked");
            }
        }
    }
}

struct LaneContext {
    storage: Storage,
    plan_units: Vec<Unit>,
    window: Window,
    headers: Option<HeaderStyle>,
    shared: Arc<Shared>,
    producer: Arc<BaseProducer<DeliveryContext>>,
    config: KafkaConfig,
    lane_start: HashMap<(String, i32), i64>,
    batch: usize,
    limiter: RateLimiter,
    stop: Arc<AtomicBool>,
    found_on_resume: AtomicU64,
    /// Microseconds the sender slept on a full producer queue.
    queue_full_us: AtomicU64,
    handle: tokio::runtime::Handle,
    store: CheckpointStore,
    checkpoint: Arc<Mutex<Checkpoint>>,
    ckpt_lock: Arc<tokio::sync::Mutex<()>>,
    /// [`SEGMENT_MEMORY_BYTES`] in KiB permits.
    segment_memory: Arc<tokio::sync::Semaphore>,
    /// Buffers of stored objects already decoded, reused so reading a segment needs no fresh
    /// pages (fresh memory costs the kernel a page fault and a cleared page per 4 KiB).
    objects: Arc<BufferPool>,
    /// Buffers of decompressed blocks already sent, reused likewise. Kept apart from
    /// `objects`: a block is several times larger than its object, and a block decompressed
    /// into an object's buffer would have to grow it, into fresh pages.
    blocks: Arc<BufferPool>,
    /// The segments' selected records waiting for [`run_sender`], per lane in order.
    sender: SendQueue,
}

/// Work for the one thread that hands records to the producer ([`run_sender`]): per lane, its
/// segments' selected records in order.
struct SendQueue {
    jobs: Mutex<SendJobs>,
    ready: std::sync::Condvar,
}

struct SendJobs {
    lanes: Vec<VecDeque<SendJob>>,
    /// No more jobs will come: the sender ends once it has none.
    closed: bool,
}

/// One segment's selected records for a unit.
struct SendJob {
    unit: usize,
    loaded: Loaded,
    /// Indexes into the segment, ascending.
    selected: Vec<u32>,
    /// How many of `selected` are sent.
    sent: usize,
}

impl SendQueue {
    fn new(lanes: usize) -> Self {
        SendQueue {
            jobs: Mutex::new(SendJobs {
                lanes: (0..lanes).map(|_| VecDeque::new()).collect(),
                closed: false,
            }),
            ready: std::sync::Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SendJobs> {
        match self.jobs.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn push(&self, lane: usize, job: SendJob) {
        let mut jobs = self.lock();
        if let Some(q) = jobs.lanes.get_mut(lane) {
            q.push_back(job);
        }
        drop(jobs);
        self.ready.notify_one();
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

/// Copies the live unit states into the checkpoint and writes it (one writer at a time).
async fn write_checkpoint(ctx: &LaneContext) -> Result<()> {
    let _one = ctx.ckpt_lock.lock().await;
    let doc = {
        let mut c = match ctx.checkpoint.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        let mut records = 0;
        let mut bytes = 0;
        for (u, s) in ctx.plan_units.iter().zip(&ctx.shared.units) {
            let s = lock(s);
            if !s.started {
                continue;
            }
            records += s.mapping.records;
            bytes += s.bytes;
            c.units.insert(
                u.key(),
                UnitCheckpoint {
                    target_start: s.target_start,
                    done: s.done,
                    bytes: s.bytes,
                    mapping: s.mapping.clone(),
                },
            );
        }
        c.records_restored = records;
        c.bytes_restored = bytes;
        c.last_checkpoint_time = Utc::now();
        c.clone()
    };
    ctx.store.save(&doc).await?;
    crash_at("restore-checkpoint");
    Ok(())
}

/// Writes one lane's units in order (on a blocking thread).
fn run_lane(ctx: &LaneContext, lane: usize, key: &(String, i32), units: &[usize]) -> Result<()> {
    let mut next_target = ctx.lane_start.get(key).copied();
    for &i in units {
        if ctx.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let unit = &ctx.plan_units[i];
        let (done, started) = {
            let s = lock(&ctx.shared.units[i]);
            (s.done, s.started)
        };
        if done {
            next_target = Some(lock(&ctx.shared.units[i]).mapping.target_end);
            ctx.shared
                .progress
                .partitions_done
                .fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if !started {
            let start = next_target.ok_or_else(|| {
                Error::Kafka(format!("no start offset is known for {}-{}", key.0, key.1))
            })?;
            {
                let mut s = lock(&ctx.shared.units[i]);
                s.started = true;
                s.target_start = start;
                s.mapping.target_end = start;
            }
            // The start is durable before the first record is sent.
            ctx.handle.block_on(write_checkpoint(ctx))?;
        }
        write_unit(ctx, lane, i, unit, started)?;
        if ctx.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        next_target = Some(lock(&ctx.shared.units[i]).mapping.target_end);
        ctx.shared
            .progress
            .partitions_done
            .fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Reads a unit's segments and sends its selected records after the last one confirmed; for a
/// unit an interrupted run started, first matches what already landed.
fn write_unit(ctx: &LaneContext, lane: usize, i: usize, unit: &Unit, resumed: bool) -> Result<()> {
    let last_confirmed = lock(&ctx.shared.units[i])
        .mapping
        .runs
        .last()
        .map(|r| r.source_last());
    let mut tail: Option<TailReader> = if resumed {
        let from = lock(&ctx.shared.units[i]).mapping.target_end;
        Some(TailReader::open(
            &ctx.config,
            &unit.target_topic,
            unit.target_partition,
            from,
        )?)
    } else {
        None
    };
    let segs = &unit.segments;
    let mut prefetch = segs.first().map(|s| spawn_read(ctx, s.clone()));
    for idx in 0..segs.len() {
        let Some(current) = prefetch.take() else {
            break;
        };
        if let Some(next) = segs.get(idx + 1) {
            if last_confirmed.is_none_or(|c| next.stats.last_offset > c) {
                prefetch = Some(spawn_read(ctx, next.clone()));
            } else {
                prefetch = Some(SegmentRead::Skipped);
            }
        }
        let loaded = match current {
            SegmentRead::Skipped => continue,
            SegmentRead::Pending(h) => ctx
                .handle
                .block_on(h)
                .map_err(|e| Error::Kafka(format!("reading a segment did not complete: {e}")))??,
        };
        let selected =
            match select_records(i, unit, &loaded.segment, ctx, last_confirmed, &mut tail) {
                Ok(selected) => selected,
                Err(e) => {
                    loaded.release(ctx);
                    return Err(e);
                }
            };
        if selected.is_empty() {
            loaded.release(ctx);
        } else {
            lock(&ctx.shared.units[i]).queued += selected.len();
            ctx.sender.push(
                lane,
                SendJob {
                    unit: i,
                    loaded,
                    selected,
                    sent: 0,
                },
            );
        }
        if ctx.stop.load(Ordering::Relaxed) || ctx.shared.failed.load(Ordering::Relaxed) {
            return Ok(());
        }
    }
    if let Some(mut reader) = tail {
        if let Some(extra) = reader.next()? {
            return Err(Error::VerificationFailed(format!(
                "{}-{} holds a record at offset {} after every record of {} the restore selects: something else writes to this partition; stop it, then restore to an empty partition",
                unit.target_topic, unit.target_partition, extra.offset, unit.key()
            )));
        }
    }
    // Wait for the unit's records to be confirmed.
    loop {
        {
            let mut s = lock(&ctx.shared.units[i]);
            if let Some(e) = &s.error {
                return Err(Error::Kafka(format!(
                    "{e}; the records confirmed so far are checkpointed: run the restore again to resume"
                )));
            }
            if s.queued == 0 && s.inflight.is_empty() {
                s.done = true;
                return Ok(());
            }
        }
        if ctx.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The indexes of one segment's records to send: those after `last_confirmed` inside the
/// window; on resume, the first of them are matched against what the interrupted run left in
/// the target (`tail`, cleared once it runs out) and recorded instead of sent.
fn select_records(
    i: usize,
    unit: &Unit,
    segment: &DecodedSegment,
    ctx: &LaneContext,
    last_confirmed: Option<i64>,
    tail: &mut Option<TailReader>,
) -> Result<Vec<u32>> {
    let mut selected = Vec::with_capacity(segment.len());
    for (n, r) in segment.iter().enumerate() {
        if last_confirmed.is_some_and(|c| r.offset <= c) || !ctx.window.contains(r.timestamp) {
            continue;
        }
        if let Some(reader) = tail.as_mut() {
            match reader.next()? {
                Some(found) => {
                    check_same(unit, &r, &found)?;
                    let mut s = lock(&ctx.shared.units[i]);
                    let bytes = r.payload_bytes();
                    s.mapping.push(r.offset, found.offset, r.timestamp);
                    s.bytes += bytes;
                    ctx.shared.progress.records.fetch_add(1, Ordering::Relaxed);
                    ctx.shared
                        .progress
                        .bytes
                        .fetch_add(bytes, Ordering::Relaxed);
                    ctx.found_on_resume.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                None => *tail = None,
            }
        }
        // A segment holds at most `MAX_BLOCK_BYTES` of records, far fewer than u32::MAX.
        selected.push(n as u32);
    }
    Ok(selected)
}

enum SegmentRead {
    Skipped,
    Pending(tokio::task::JoinHandle<Result<Loaded>>),
}

/// A segment read and decoded, holding its share of [`SEGMENT_MEMORY_BYTES`].
struct Loaded {
    segment: DecodedSegment,
    _memory: tokio::sync::OwnedSemaphorePermit,
}

impl Loaded {
    /// Gives the decompression buffer back for the next segment, then the memory permit.
    fn release(self, ctx: &LaneContext) {
        let (block, object) = self.segment.into_buffers();
        ctx.blocks.give(block);
        if let Some(object) = object {
            ctx.objects.give(object);
        }
    }
}

/// Reads and decodes a segment on the runtime once the memory it needs is free (what the
/// stored object and its decompressed block take, at most the whole budget).
fn spawn_read(ctx: &LaneContext, entry: crate::backup::manifest::SegmentEntry) -> SegmentRead {
    let storage = ctx.storage.clone();
    let memory = Arc::clone(&ctx.segment_memory);
    let objects = Arc::clone(&ctx.objects);
    let blocks = Arc::clone(&ctx.blocks);
    let compressed = entry.stats.codec != "none";
    let need = entry.stats.stored_bytes
        + if compressed {
            entry.stats.uncompressed_bytes
        } else {
            0
        };
    let permits = need.div_ceil(1024).clamp(1, SEGMENT_MEMORY_BYTES / 1024) as u32;
    SegmentRead::Pending(ctx.handle.spawn(async move {
        let mut permit = memory
            .acquire_many_owned(permits)
            .await
            .map_err(|e| Error::Kafka(format!("segment memory budget closed: {e}")))?;
        let buffer = if compressed {
            blocks.take()
        } else {
            Vec::new()
        };
        let (segment, object) =
            read_segment_reusing(&storage, &entry, buffer, objects.take()).await?;
        if let Some(object) = object {
            objects.give(object);
            // The stored object is gone once decompressed: only the block stays in use.
            let stored = entry.stats.stored_bytes.div_ceil(1024) as usize;
            if stored < permit.num_permits() {
                drop(permit.split(stored));
            }
        }
        Ok(Loaded {
            segment,
            _memory: permit,
        })
    }))
}

/// A record found in the target on resume must be the one the sequence expects.
fn check_same(unit: &Unit, expected: &RecordRef<'_>, found: &Found) -> Result<()> {
    let ts_ok = expected.timestamp_type == TimestampType::LogAppendTime
        || expected.timestamp < 0
        || found.timestamp == expected.timestamp
        || found.log_append_time;
    if found.key.as_deref() == expected.key && found.value.as_deref() == expected.value && ts_ok {
        return Ok(());
    }
    Err(Error::VerificationFailed(format!(
        "{}-{} offset {} does not hold the record the restore wrote there (source {} offset {}): something else wrote to this partition while the restore was interrupted; restore to an empty partition (existing_data: purge) or another topic",
        unit.target_topic,
        unit.target_partition,
        found.offset,
        unit.key(),
        expected.offset
    )))
}

/// The one thread that hands records to the producer: it takes the lanes in turn, up to
/// `batch` records of a lane's oldest job at each turn, as a bare loop over the partitions
/// would. Every partition's queue in librdkafka keeps filling (an idempotent producer has one
/// request per partition in flight, so throughput comes from many partitions at once), and the
/// records are copied into librdkafka from one thread only. Ends once the queue is closed and
/// empty; after a stop or a failure it drops what is left.
fn run_sender(ctx: &LaneContext) {
    /// Should the sender die, the lanes waiting for it stop instead of waiting forever.
    struct Halt<'a>(&'a LaneContext);
    impl Drop for Halt<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.shared.failed.store(true, Ordering::SeqCst);
                self.0.stop.store(true, Ordering::SeqCst);
            }
        }
    }
    let _halt = Halt(ctx);
    let mut turn = 0usize;
    let mut first = true;
    let mut idle = Duration::ZERO;
    loop {
        let (lane, mut job) = {
            let mut jobs = ctx.sender.lock();
            loop {
                let halted =
                    ctx.stop.load(Ordering::Relaxed) || ctx.shared.failed.load(Ordering::Relaxed);
                if halted {
                    for q in &mut jobs.lanes {
                        for job in q.drain(..) {
                            let left = job.selected.len() - job.sent;
                            let mut s = lock(&ctx.shared.units[job.unit]);
                            s.queued = s.queued.saturating_sub(left);
                            drop(s);
                            job.loaded.release(ctx);
                        }
                    }
                }
                // The lane whose partition has the fewest records outstanding: the queue's room
                // goes where a partition would otherwise run dry, not to a deep backlog.
                let n = jobs.lanes.len();
                let next = (0..n)
                    .map(|k| (turn + k) % n)
                    .filter_map(|l| {
                        let job = jobs.lanes[l].front()?;
                        Some((l, lock(&ctx.shared.units[job.unit]).inflight.len()))
                    })
                    .min_by_key(|&(_, outstanding)| outstanding)
                    .map(|(l, _)| l);
                if let Some(l) = next {
                    if let Some(job) = jobs.lanes[l].pop_front() {
                        break (l, job);
                    }
                }
                if jobs.closed {
                    tracing::debug!(
                        idle_ms = idle.as_millis() as u64,
                        queue_full_ms = ctx.queue_full_us.load(Ordering::Relaxed) / 1000,
                        "sender finished"
                    );
                    return;
                }
                let waiting = Instant::now();
                jobs = match ctx
                    .sender
                    .ready
                    .wait_timeout(jobs, Duration::from_millis(50))
                {
                    Ok((g, _)) => g,
                    Err(p) => p.into_inner().0,
                };
                if !first {
                    idle += waiting.elapsed();
                }
            }
        };
        if first {
            first = false;
            tracing::debug!(lane, "first records handed to the producer");
        }
        turn = lane + 1;
        let end = (job.sent + ctx.batch).min(job.selected.len());
        let wanted = end - job.sent;
        let sent = send_chunk(ctx, &job, end);
        job.sent += sent;
        if sent == wanted && job.sent < job.selected.len() {
            // More of this job at the lane's next turn, before its later jobs.
            let mut jobs = ctx.sender.lock();
            if let Some(q) = jobs.lanes.get_mut(lane) {
                q.push_front(job);
            }
        } else {
            let left = job.selected.len() - job.sent;
            if left > 0 {
                // Stopped or failed part-way: the rest is never sent.
                let mut s = lock(&ctx.shared.units[job.unit]);
                s.queued = s.queued.saturating_sub(left);
            }
            job.loaded.release(ctx);
        }
    }
}

/// Sends `job.selected[job.sent..end]`; returns how many were handed to the producer (fewer
/// after a stop, a failure or an error, which is recorded in the unit's state).
fn send_chunk(ctx: &LaneContext, job: &SendJob, end: usize) -> usize {
    let i = job.unit;
    let unit = &ctx.plan_units[i];
    let segment = &job.loaded.segment;
    let chunk = &job.selected[job.sent..end];
    let records: Vec<RecordRef<'_>> = chunk
        .iter()
        .filter_map(|&n| segment.get(n as usize))
        .collect();
    let bytes: u64 = records.iter().map(RecordRef::payload_bytes).sum();
    ctx.limiter.wait(records.len() as u64, bytes, &ctx.stop);
    {
        let mut s = lock(&ctx.shared.units[i]);
        for r in &records {
            s.inflight
                .push_back((r.offset, r.timestamp, r.payload_bytes()));
        }
        s.queued = s.queued.saturating_sub(records.len());
    }
    let names = header_names(ctx.headers.unwrap_or_default());
    for (n, r) in records.iter().enumerate() {
        let mut rec: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(&unit.target_topic, i).partition(unit.target_partition);
        // librdkafka allocates a header list per record that has one: only when needed.
        if r.header_count() > 0 || ctx.headers.is_some() {
            let extra = if ctx.headers.is_some() { 3 } else { 0 };
            let mut headers = OwnedHeaders::new_with_capacity(r.header_count() + extra);
            for (key, value) in r.headers() {
                headers = headers.insert(Header { key, value });
            }
            if ctx.headers.is_some() {
                let offset_text = r.offset.to_string();
                let ts_text = r.timestamp.to_string();
                headers = headers.insert(Header {
                    key: names.0,
                    value: Some(offset_text.as_bytes()),
                });
                headers = headers.insert(Header {
                    key: names.1,
                    value: Some(ts_text.as_bytes()),
                });
                if let Some(p) = names.2 {
                    let part_text = unit.source_partition.to_string();
                    headers = headers.insert(Header {
                        key: p,
                        value: Some(part_text.as_bytes()),
                    });
                }
            }
            rec = rec.headers(headers);
        }
        if let Some(k) = r.key {
            rec = rec.key(k);
        }
        if let Some(v) = r.value {
            rec = rec.payload(v);
        }
        if r.timestamp >= 0 {
            rec = rec.timestamp(r.timestamp);
        }
        loop {
            match ctx.producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    let t0 = Instant::now();
                    std::thread::sleep(Duration::from_millis(1));
                    ctx.queue_full_us
                        .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
                    if ctx.shared.failed.load(Ordering::Relaxed) {
                        drop_unsent(ctx, i, records.len() - n);
                        return n;
                    }
                }
                Err((e, _)) => {
                    drop_unsent(ctx, i, records.len() - n);
                    let mut s = lock(&ctx.shared.units[i]);
                    if s.error.is_none() {
                        s.error = Some(format!(
                            "cannot send source {} offset {} to {}-{}: {e}",
                            unit.key(),
                            r.offset,
                            unit.target_topic,
                            unit.target_partition
                        ));
                    }
                    ctx.shared.failed.store(true, Ordering::SeqCst);
                    return n;
                }
            }
        }
        crash_at("restore-record");
    }
    records.len()
}

/// Removes the last `n` in-flight entries (records never handed to the producer).
fn drop_unsent(ctx: &LaneContext, i: usize, n: usize) {
    let mut s = lock(&ctx.shared.units[i]);
    for _ in 0..n {
        s.inflight.pop_back();
    }
}

/// A record read back from the target.
struct Found {
    offset: i64,
    timestamp: i64,
    log_append_time: bool,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

/// Reads what an interrupted run left in a target partition, from a given offset to the end.
struct TailReader {
    consumer: BaseConsumer,
    end: i64,
    next_offset: i64,
}

impl TailReader {
    fn open(config: &KafkaConfig, topic: &str, partition: i32, from: i64) -> Result<TailReader> {
        // The restore's own writes, which are not transactional: everything up to the end.
        let reader = Reader {
            group_id: "tidemark-restore-resume",
            isolation: Isolation::ReadUncommitted,
            offset_reset: "error",
            partition_eof: true,
        };
        let cc = config.consumer_config(&reader, &[("fetch.wait.max.ms", "50".into())]);
        let consumer: BaseConsumer = cc.create().map_err(|e| {
            Error::Kafka(format!(
                "cannot create a reader for {topic}-{partition}: {e}"
            ))
        })?;
        // Requests of a killed run may still be landing: wait until the end stops moving.
        let deadline = Instant::now() + SETTLE_MAX;
        let mut end = watermark(&consumer, topic, partition)?;
        loop {
            std::thread::sleep(SETTLE);
            let again = watermark(&consumer, topic, partition)?;
            if again == end || Instant::now() > deadline {
                end = again;
                break;
            }
            end = again;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(from))
            .map_err(|e| Error::Kafka(e.to_string()))?;
        consumer
            .assign(&tpl)
            .map_err(|e| Error::Kafka(format!("cannot read {topic}-{partition}: {e}")))?;
        tracing::info!(
            topic,
            partition,
            from,
            end,
            "reading what the interrupted run wrote"
        );
        Ok(TailReader {
            consumer,
            end,
            next_offset: from,
        })
    }

    /// The next record, or `None` at the end.
    fn next(&mut self) -> Result<Option<Found>> {
        if self.next_offset >= self.end {
            // The watermark may trail the last batch on some brokers; a final poll decides.
            return self.poll_once(Duration::from_millis(200));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(f) = self.poll_once(Duration::from_millis(500))? {
                return Ok(Some(f));
            }
            if self.next_offset >= self.end {
                return Ok(None);
            }
            if Instant::now() > deadline {
                return Err(Error::Kafka(format!(
                    "reading the target back timed out at offset {}",
                    self.next_offset
                )));
            }
        }
    }

    fn poll_once(&mut self, wait: Duration) -> Result<Option<Found>> {
        match self.consumer.poll(wait) {
            None => Ok(None),
            Some(Err(KafkaError::PartitionEOF(_))) => {
                self.end = self.end.min(self.next_offset);
                Ok(None)
            }
            Some(Err(e)) => Err(Error::Kafka(format!("reading the target back failed: {e}"))),
            Some(Ok(m)) => {
                self.next_offset = m.offset() + 1;
                let (ts, kind) = TimestampType::split_kafka(m.timestamp());
                Ok(Some(Found {
                    offset: m.offset(),
                    timestamp: ts,
                    log_append_time: kind == TimestampType::LogAppendTime,
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                }))
            }
        }
    }
}

fn watermark(c: &BaseConsumer, topic: &str, partition: i32) -> Result<i64> {
    c.fetch_watermarks(topic, partition, Duration::from_secs(10))
        .map(|(_, high)| high)
        .map_err(|e| {
            Error::Kafka(format!(
                "cannot read the end offset of {topic}-{partition}: {e}"
            ))
        })
}

/// Records/s and bytes/s limits shared by every lane.
struct RateLimiter {
    started: Instant,
    records: AtomicU64,
    bytes: AtomicU64,
    max_records: Option<u64>,
    max_bytes: Option<u64>,
}

impl RateLimiter {
    fn new(max_records: Option<u64>, max_bytes: Option<u64>) -> Self {
        RateLimiter {
            started: Instant::now(),
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            max_records: max_records.filter(|r| *r > 0),
            max_bytes: max_bytes.filter(|r| *r > 0),
        }
    }

    /// Accounts for `records`/`bytes` about to be sent and sleeps until the rates allow them.
    fn wait(&self, records: u64, bytes: u64, stop: &AtomicBool) {
        if self.max_records.is_none() && self.max_bytes.is_none() {
            return;
        }
        let r = self.records.fetch_add(records, Ordering::Relaxed);
        let b = self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let due = |done: u64, rate: Option<u64>| match rate {
            Some(rate) => Duration::from_secs_f64(done as f64 / rate as f64),
            None => Duration::ZERO,
        };
        let wanted = due(r, self.max_records).max(due(b, self.max_bytes));
        while wanted > self.started.elapsed() && !stop.load(Ordering::Relaxed) {
            std::thread::sleep((wanted - self.started.elapsed()).min(Duration::from_millis(100)));
        }
    }
}

/// How often a restore checkpoints its progress: `checkpoint_interval_secs`, else
/// [`DEFAULT_CHECKPOINT_SECS`](crate::task::DEFAULT_CHECKPOINT_SECS).
fn checkpoint_interval(t: &RestoreTask) -> Duration {
    Duration::from_secs(
        t.checkpoint_interval_secs
            .unwrap_or(crate::task::DEFAULT_CHECKPOINT_SECS),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_without_an_interval_checkpoints_every_60_seconds() {
        let config = |restore: &str| {
            let text = format!(
                "mode: restore\nbackup_id: b1\ntarget:\n  bootstrap_servers: [kafka:9092]\nstorage:\n  backend: filesystem\n  path: /data\n{restore}"
            );
            super::super::config::parse_config(&text, "restore.yaml", |_| None)
                .expect("parses")
                .task
        };
        let documented = config("restore:\n  checkpoint_interval_secs: 60\n");
        assert_eq!(checkpoint_interval(&documented), Duration::from_secs(60));
        for omitted in [config(""), config("restore:\n  dry_run: false\n")] {
            assert_eq!(
                checkpoint_interval(&omitted),
                checkpoint_interval(&documented),
                "an omitted checkpoint_interval_secs is the documented default"
            );
        }
    }

    #[test]
    fn the_rate_limiter_spreads_records_over_time() {
        let l = RateLimiter::new(Some(1000), None);
        let stop = AtomicBool::new(false);
        let t = Instant::now();
        for _ in 0..4 {
            l.wait(100, 0, &stop);
        }
        // 300 records were due before the 4th batch: 0.3 s at 1000/s
        assert!(
            t.elapsed() >= Duration::from_millis(290),
            "{:?}",
            t.elapsed()
        );
        let free = RateLimiter::new(None, None);
        let t = Instant::now();
        free.wait(1_000_000, 1 << 30, &stop);
        assert!(t.elapsed() < Duration::from_millis(50));
    }

    #[test]
    fn header_styles_name_the_headers() {
        assert_eq!(header_names(HeaderStyle::Original).0, "x-original-offset");
        assert_eq!(
            header_names(HeaderStyle::KafkaBackup),
            (
                "x-kafka-backup-offset",
                "x-kafka-backup-timestamp",
                Some("x-kafka-backup-partition")
            )
        );
    }

    #[tokio::test]
    async fn checkpoint_files_round_trip_atomically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::File(dir.path().join("sub/ckpt.json"));
        assert!(store.load().await.expect("load").is_none());
        let mut m = PartitionMapping::new(("a", 0), ("b", 0), 5);
        m.push(0, 5, 1);
        let c = Checkpoint {
            format: CHECKPOINT_FORMAT.into(),
            backup_id: "b".into(),
            restore_id: "r".into(),
            config_hash: "h".into(),
            start_time: Utc::now(),
            last_checkpoint_time: Utc::now(),
            records_restored: 1,
            bytes_restored: 3,
            units: [(
                "a/0".to_string(),
                UnitCheckpoint {
                    target_start: 5,
                    done: false,
                    bytes: 3,
                    mapping: m,
                },
            )]
            .into_iter()
            .collect(),
        };
        store.save(&c).await.expect("save");
        assert_eq!(store.load().await.expect("load"), Some(c));
        store.delete().await.expect("delete");
        store.delete().await.expect("deleting twice is fine");
        assert!(store.load().await.expect("load").is_none());
    }
}

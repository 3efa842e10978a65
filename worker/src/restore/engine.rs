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

mod authenticate;
mod checkpoint;
mod lanes;
mod producer;
mod sender;
mod tail;
mod targets;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::Utc;
use serde::Serialize;

use super::mapping::{mapping_key, restore_dir, Fingerprint, OffsetMapping, MAPPING_FORMAT};
use super::plan::RestorePlan;
use crate::error::{Error, Result};
use crate::failpoints::crash_at;
use crate::kafka::GroupAdmin;
use crate::lease::Lease;
use crate::storage::Storage;
use crate::task::RestoreTask;
use lanes::LaneContext;
use producer::{first_error, lock, make_producer, DeliveryThread, Shared};

pub use self::checkpoint::{
    checkpoint_store, config_hash, Checkpoint, CheckpointStore, UnitCheckpoint, CHECKPOINT_FORMAT,
};
pub(crate) use self::producer::header_names;
pub use self::targets::{prepare_targets, TargetState};
pub use crate::progress::LiveProgress;

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
    let storage = lease.storage();
    let run = Run {
        admin,
        storage: &storage,
        plan,
        req,
        stop: &stop,
        started: Instant::now(),
    };
    let result = restore_under_lease(&run).await;
    lease.finish(result).await
}

/// What one restore run works with, handed from phase to phase.
struct Run<'a> {
    admin: &'a GroupAdmin,
    storage: &'a Storage,
    plan: &'a RestorePlan,
    req: &'a RestoreRequest,
    stop: &'a Arc<AtomicBool>,
    started: Instant,
}

impl Run<'_> {
    /// Logs how long the run has taken at the end of a phase.
    fn phase_done(&self, phase: &'static str) {
        tracing::debug!(
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            "{phase}"
        );
    }
}

#[tracing::instrument(
    name = "restore",
    skip_all,
    fields(restore_id = %run.req.restore_id, backup_id = %run.req.task.backup_id)
)]
async fn restore_under_lease(run: &Run<'_>) -> Result<RestoreReport> {
    let (admin, storage, plan, req) = (run.admin, run.storage, run.plan, run.req);
    let t = &req.task;
    let mut report = first_report(run);
    let fingerprint = Fingerprint::of(t);
    let cluster_id = admin.cluster_id().await;
    if already_complete(run, &fingerprint, cluster_id.as_deref(), &mut report).await? {
        return Ok(report);
    }
    let store = checkpoint_store(storage, t, &req.restore_id);
    let (checkpoint, resumed) = checkpoint::load_or_start(&store, t, &req.restore_id).await?;
    report.resumed = resumed;
    if authenticate::authenticate_segments(storage, plan).await? > 0 {
        run.phase_done("segments authenticated");
    }
    let shared = Arc::new(start_progress(run, &checkpoint));

    // The producer connects and acquires its producer id while the targets are prepared.
    let producer = make_producer(admin.config(), t, Arc::clone(&shared))?;
    let delivery = DeliveryThread::start(producer, &req.restore_id)?;
    run.phase_done("producer started");
    let targets = prepare(run, &checkpoint, &mut report).await?;
    let ctx = Arc::new(LaneContext::new(
        run,
        &delivery.producer,
        targets.lane_start,
        store.clone(),
        checkpoint,
    ));
    lanes::run_lanes(&ctx, t, run.started).await?;
    if let Some(e) = first_error(&shared) {
        return Err(Error::Kafka(format!(
            "{e}; the records confirmed so far are checkpointed: run the restore again to resume"
        )));
    }
    let progress = &req.progress;
    if run.stop.load(Ordering::Relaxed) {
        return Err(Error::Partial(format!(
            "restore '{}' stopped before it finished ({} of {} records in the target); run it again to resume",
            req.restore_id,
            progress.records.load(Ordering::Relaxed),
            plan.records
        )));
    }
    let (mapping, json) = store_mapping(run, &shared, fingerprint, cluster_id).await?;
    if let Some(path) = &t.offset_report {
        std::fs::write(path, &json).map_err(|e| Error::Io {
            path: PathBuf::from(path),
            source: e,
        })?;
        report.offset_report = Some(path.clone());
    }
    store.delete().await?;
    report.complete = true;
    report.records = mapping.partitions.iter().map(|p| p.records).sum();
    report.bytes = progress.bytes.load(Ordering::Relaxed);
    report.records_this_run = shared.records.load(Ordering::Relaxed);
    report.bytes_this_run = shared.bytes.load(Ordering::Relaxed);
    report.records_found_on_resume = ctx.found_on_resume.load(Ordering::Relaxed);
    report.duration_ms = run.started.elapsed().as_millis();
    let secs = run.started.elapsed().as_secs_f64().max(1e-9);
    report.records_per_second = report.records_this_run as f64 / secs;
    report.mib_per_second = report.bytes_this_run as f64 / secs / (1024.0 * 1024.0);
    Ok(report)
}

/// The report before anything is done: what the plan selects.
fn first_report(run: &Run<'_>) -> RestoreReport {
    let (t, plan) = (&run.req.task, run.plan);
    RestoreReport {
        restore_id: run.req.restore_id.clone(),
        backup_id: t.backup_id.clone(),
        target_cluster: t.kafka.bootstrap_servers.join(","),
        topics: plan.targets.len() as u64,
        partitions: plan.units.len() as u64,
        records_total: plan.records,
        bytes_total: plan.bytes,
        offset_mapping: mapping_key(&t.backup_id, &run.req.restore_id),
        links: plan.links.clone(),
        warnings: plan.warnings.clone(),
        ..RestoreReport::default()
    }
}

/// Whether the restore completed before (its mapping is stored complete, for the same
/// request): the report then says so and nothing is written.
async fn already_complete(
    run: &Run<'_>,
    fingerprint: &Fingerprint,
    cluster_id: Option<&str>,
    report: &mut RestoreReport,
) -> Result<bool> {
    let mkey = &report.offset_mapping;
    let Some(data) = run.storage.get(mkey).await? else {
        return Ok(false);
    };
    let m = OffsetMapping::from_json(&data, mkey)?;
    if !m.complete {
        return Ok(false);
    }
    same_restore(&m, mkey, fingerprint, cluster_id, &report.target_cluster)?;
    report.complete = true;
    report.already_complete = true;
    report.records = m.partitions.iter().map(|p| p.records).sum();
    report.bytes = run.plan.bytes;
    report.duration_ms = run.started.elapsed().as_millis();
    Ok(true)
}

/// The units' live state (from the checkpoint where it has them), with the progress counters
/// set to what the plan selects and the checkpoint holds.
fn start_progress(run: &Run<'_>, checkpoint: &Checkpoint) -> Shared {
    let plan = run.plan;
    let (states, already, already_bytes) = checkpoint::unit_states(plan, checkpoint);
    let progress = Arc::clone(&run.req.progress);
    progress
        .records_total
        .store(plan.records, Ordering::Relaxed);
    progress.bytes_total.store(plan.bytes, Ordering::Relaxed);
    progress.records.store(already, Ordering::Relaxed);
    progress.bytes.store(already_bytes, Ordering::Relaxed);
    progress
        .partitions_total
        .store(plan.units.len() as u64, Ordering::Relaxed);
    Shared {
        units: states,
        records: std::sync::atomic::AtomicU64::new(0),
        bytes: std::sync::atomic::AtomicU64::new(0),
        progress,
        failed: AtomicBool::new(false),
    }
}

/// Prepares the target for the units the checkpoint has not started; a problem or a config the
/// target would refuse stops the restore before it creates a topic or writes a record. Waits
/// for the topics it created.
async fn prepare(
    run: &Run<'_>,
    checkpoint: &Checkpoint,
    report: &mut RestoreReport,
) -> Result<TargetState> {
    let t = &run.req.task;
    let targets = prepare_targets(run.admin, run.plan, t, &checkpoint.units, false).await?;
    if targets.blocked() {
        return Err(blocked(&targets));
    }
    report.topics_created = targets.created.clone();
    report.partitions_purged = targets.purged.clone();
    report.warnings.extend(targets.warnings.iter().cloned());
    run.phase_done("targets prepared");
    if !targets.created.is_empty() {
        targets::wait_for_topics(run.admin, &targets.created).await?;
        run.phase_done("created topics ready");
    }
    Ok(targets)
}

/// Why a restore whose target `targets` describes cannot start.
fn blocked(targets: &TargetState) -> Error {
    let mut why: Vec<String> = targets.refused.iter().map(|r| r.describe()).collect();
    if !why.is_empty() {
        why.push(
            "create the topic on the target with configs it accepts and run the restore again (a topic that exists is written to as it is)"
                .into(),
        );
    }
    why.extend(targets.problems.iter().cloned());
    Error::invalid(format!(
        "{}; this run created no topic and wrote no record",
        why.join("; ")
    ))
}

/// Every unit done: checks the lanes' ends against the plan and stores the complete offset
/// mapping (with its JSON, for the offset report).
#[tracing::instrument(name = "restore_finish", skip_all, fields(restore_id = %run.req.restore_id))]
async fn store_mapping(
    run: &Run<'_>,
    shared: &Shared,
    fingerprint: Fingerprint,
    cluster_id: Option<String>,
) -> Result<(OffsetMapping, Vec<u8>)> {
    let t = &run.req.task;
    let mut partitions = Vec::new();
    for s in &shared.units {
        let u = lock(s);
        partitions.push(u.mapping.clone());
    }
    targets::check_target_ends(run.admin, run.plan, &partitions).await?;
    let mkey = mapping_key(&t.backup_id, &run.req.restore_id);
    let mapping = OffsetMapping {
        format: MAPPING_FORMAT.into(),
        backup_id: t.backup_id.clone(),
        restore_id: run.req.restore_id.clone(),
        target_cluster: t.kafka.bootstrap_servers.join(","),
        created_at: Utc::now(),
        complete: true,
        fingerprint: Some(fingerprint),
        target_cluster_id: cluster_id,
        partitions,
    };
    run.phase_done("lane ends checked");
    crash_at("restore-before-mapping");
    let json = serde_json::to_vec_pretty(&mapping)
        .map_err(|e| Error::malformed_json("offset mapping", mkey.clone(), e))?;
    run.storage
        .put_once(&mkey, Bytes::from(json.clone()))
        .await?;
    crash_at("restore-after-mapping");
    Ok((mapping, json))
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

//! KafkaBackup as a [`RunKind`], with two ways to run:
//!
//! - **Without a schedule**, the shared one-run-per-[`RunId`] reconcile
//!   ([`worker::run_once`]): one Job (an Indexed Job of `parallelism` shards) per run. The
//!   shards' results are summed ([`combine_shards`](RunKind::combine_shards)); the backup is
//!   complete only when every shard reported its part complete.
//! - **With a schedule**, a CronJob ([`crate::build::cronjob`]) applied on every reconcile (so
//!   `suspend` and spec changes reach it); the status follows the CronJob and its Jobs, found by
//!   label: the newest finished one's pods give the last backup's results (read once per Job).
//!   A spec change keeps the backups still running under the old spec (and their task
//!   ConfigMap) until they end.
//!
//! Either way, after each successful backup with `spec.retention`, one cleanup Job runs the
//! retention task ([`ensure_cleanup`]); `status.cleanup` records it, so it is created once.
//! The `last*` fields and counts describe the newest finished backup and outlive runs.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tidemark::task::{ResultBackup, TaskResult, PHASE_COMPLETED, PHASE_FAILED};

use super::status::{self as st, clamp, JobEnd, Outcome, Reasons, ShardResult};
use super::{worker, Context, Error, RunKind, RUNNING_POLL};
use crate::build::backup::{cleanup_config_map, cleanup_job, COMPONENT};
use crate::build::{self, cronjob, label_value, RunId, WorkerKind, OWNER_KIND_LABEL};
use crate::build::{OWNER_NAME_LABEL, RUN_LABEL};
use crate::crd::backup::{BackupMode, CleanupStatus, KafkaBackupStatus, LastRun, ShardCounts};
use crate::crd::status::{Phase, RunStatus};
use crate::crd::KafkaBackup;
use crate::metrics::{JOB_CREATED, JOB_FAILED, JOB_SUCCEEDED};

/// The kind, as metrics and logs name it.
pub const KIND: &str = "KafkaBackup";

/// Reason of a successful backup.
pub const REASON_BACKUP_COMPLETED: &str = "BackupCompleted";
/// Reason of a backup whose worker ended without reporting it complete (and without an error).
pub const REASON_BACKUP_INCOMPLETE: &str = "BackupIncomplete";
/// Reason of a scheduled backup waiting for its first run.
pub const REASON_SCHEDULED: &str = "Scheduled";
/// Reason of a scheduled backup whose schedule is suspended.
pub const REASON_SUSPENDED: &str = "Suspended";
/// Event reason when a scheduled Job starts.
pub const REASON_BACKUP_STARTED: &str = "BackupStarted";
/// Event reason when a retention cleanup Job is created.
pub const REASON_CLEANUP_CREATED: &str = "CleanupJobCreated";
/// Event reason when a cleanup Job's result was read (what it deleted).
pub const REASON_CLEANUP_COMPLETED: &str = "CleanupCompleted";
/// Warning Event reason when a cleanup Job failed or left no result.
pub const REASON_CLEANUP_FAILED: &str = "CleanupFailed";
/// Warning Event reason when a cleanup found complete backups that fail verification.
pub const REASON_DAMAGED_BACKUPS: &str = "DamagedBackups";
/// Warning Event reason when a backup has offsets without records that nothing explains.
pub const REASON_UNEXPLAINED_GAPS: &str = "UnexplainedGaps";
/// Warning Event reason when the Job of a running continuous backup was gone and created again.
pub const REASON_JOB_RECREATED: &str = "JobRecreated";

/// How often an idle scheduled backup is looked at again, besides the CronJob's watch events.
pub const SCHEDULE_POLL: Duration = Duration::from_secs(300);

impl RunKind for KafkaBackup {
    type Status = KafkaBackupStatus;

    const SCHEDULED: bool = true;

    fn status(&self) -> Option<&KafkaBackupStatus> {
        self.status.as_ref()
    }

    fn common(status: &KafkaBackupStatus) -> &RunStatus {
        &status.common
    }

    fn common_mut(status: &mut KafkaBackupStatus) -> &mut RunStatus {
        &mut status.common
    }

    /// The newest finished backup's fields carry over from the current status.
    fn new_run_status(&self) -> KafkaBackupStatus {
        let Some(s) = &self.status else {
            return KafkaBackupStatus::default();
        };
        KafkaBackupStatus {
            last_backup_id: s.last_backup_id.clone(),
            last_successful_time: s.last_successful_time.clone(),
            last_run: s.last_run.clone(),
            topics: s.topics,
            partitions: s.partitions,
            records: s.records,
            bytes: s.bytes,
            stored_bytes: s.stored_bytes,
            segments: s.segments,
            groups_captured: s.groups_captured,
            shards: s.shards.clone(),
            cleanup: s.cleanup.clone(),
            gap_offsets: s.gap_offsets,
            unexplained_gap_offsets: s.unexplained_gap_offsets,
            ..KafkaBackupStatus::default()
        }
    }

    fn describe(&self) -> String {
        let backup = match self.spec.mode {
            BackupMode::OneShot => "a one-shot backup",
            BackupMode::Continuous => "a continuous backup",
            BackupMode::Incremental => "an incremental backup",
        };
        match self.shards() {
            1 => backup.to_string(),
            n => format!("{backup} of {n} shards"),
        }
    }

    fn record_result(&self, status: &mut KafkaBackupStatus, result: &TaskResult) -> Reasons {
        let backup = result.backup.as_ref();
        let count = |f: fn(&ResultBackup) -> u64| backup.map(|b| clamp(f(b)));
        status.last_backup_id = backup
            .map(|b| b.backup_id.clone())
            .filter(|id| !id.is_empty());
        status.topics = count(|b| b.topics);
        status.partitions = count(|b| b.partitions);
        status.records = count(|b| b.records);
        status.bytes = count(|b| b.bytes);
        status.stored_bytes = count(|b| b.stored_bytes);
        status.segments = count(|b| b.segments);
        status.groups_captured = count(|b| b.groups_captured);
        status.discontinuities = count(|b| b.discontinuities).filter(|n| *n > 0);
        status.gap_offsets = count(|b| b.gap_offsets);
        status.unexplained_gap_offsets = count(|b| b.unexplained_gap_offsets);
        let complete = backup.is_some_and(|b| b.complete);
        Reasons {
            succeeded: REASON_BACKUP_COMPLETED.to_string(),
            failed: (!complete && result.error.is_none())
                .then(|| REASON_BACKUP_INCOMPLETE.to_string()),
        }
    }

    fn combine_shards(
        &self,
        status: &mut KafkaBackupStatus,
        shards: Vec<ShardResult>,
    ) -> Result<TaskResult, String> {
        let (counts, result) = combine(shards);
        status.shards = Some(counts);
        result
    }

    async fn after_run(&self, ctx: &Context, status: &mut KafkaBackupStatus) -> Result<(), Error> {
        let common = &status.common;
        if let (Some(job_name), Some(ready)) = (common.job_name.clone(), st::ready(common)) {
            let outcome = Outcome {
                succeeded: common.phase == Some(Phase::Completed),
                reason: ready.reason.clone(),
                message: ready.message.clone(),
            };
            let at = common.completion_time.clone();
            record_last_run(status, &job_name, &outcome, at);
        }
        warn_of_unexplained_gaps(self, ctx, status).await;
        ensure_cleanup(self, ctx, status).await
    }

    async fn reconcile(&self, ctx: &Context) -> Result<Action, Error> {
        let run = worker::validated_run(self, ctx).await?;
        if self.spec.schedule.is_some() {
            return reconcile_scheduled(self, ctx, run).await;
        }
        // The schedule was removed: its CronJob goes (its running Job with it).
        if let Some(cron_job) = self.status.as_ref().and_then(|s| s.cron_job_name.as_ref()) {
            let ns = build::namespace(self).map_err(Error::Build)?;
            let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
            worker::delete(&api, cron_job, "CronJob", &ns).await?;
        }
        let current = self.status.clone().unwrap_or_default();
        let this_run = current.common.run.as_deref() == Some(run.to_string().as_str());
        match (this_run, current.common.phase, &current.common.job_name) {
            (true, Some(Phase::Running), Some(job)) if self.spec.mode == BackupMode::Continuous => {
                if let Some(action) = keep_continuous_running(self, ctx, run, job).await? {
                    return Ok(action);
                }
            }
            (true, Some(Phase::Completed | Phase::Failed), _) if cleanup_pending(&current) => {
                let mut status = current.clone();
                observe_cleanup(self, ctx, &mut status).await?;
                worker::write_status(self, ctx, status, None).await?;
                return Ok(Action::await_change());
            }
            _ => {}
        }
        worker::run_once(self, ctx, run).await
    }
}

/// The shard counts of a backup and its result: the shards' counts summed, `Completed` only
/// when every shard reported its part complete. One shard's result is its own (made `Failed`
/// when it is not complete); with several, the message sums them up or names the first shard
/// that did not complete, and the error is that shard's.
pub fn combine(shards: Vec<ShardResult>) -> (ShardCounts, Result<TaskResult, String>) {
    let complete = |r: &TaskResult| {
        r.phase == PHASE_COMPLETED && r.backup.as_ref().is_some_and(|b| b.complete)
    };
    let total = shards.len();
    let completed = shards
        .iter()
        .filter(|s| s.result.as_ref().is_ok_and(complete))
        .count();
    let counts = ShardCounts {
        total: clamp(total as u64),
        completed: clamp(completed as u64),
        failed: clamp((total - completed) as u64),
    };
    if total <= 1 {
        let result = st::single_result(shards).map(|r| {
            let done = complete(&r);
            st::failed_unless_complete(r, done, "backup")
        });
        return (counts, result);
    }
    if shards.iter().all(|s| s.result.is_err()) {
        let why = shards
            .iter()
            .filter_map(|s| {
                s.result
                    .as_ref()
                    .err()
                    .map(|e| format!("shard {}: {e}", s.index))
            })
            .next()
            .unwrap_or_default();
        return (counts, Err(format!("no shard left a result ({why})")));
    }
    let mut sum = ResultBackup {
        complete: completed == total,
        ..ResultBackup::default()
    };
    for b in shards
        .iter()
        .filter_map(|s| s.result.as_ref().ok()?.backup.as_ref())
    {
        if sum.backup_id.is_empty() {
            sum.backup_id = b.backup_id.clone();
        }
        sum.topics = sum.topics.max(b.topics);
        sum.partitions = sum.partitions.saturating_add(b.partitions);
        sum.records = sum.records.saturating_add(b.records);
        sum.bytes = sum.bytes.saturating_add(b.bytes);
        sum.stored_bytes = sum.stored_bytes.saturating_add(b.stored_bytes);
        sum.segments = sum.segments.saturating_add(b.segments);
        sum.groups_captured = sum.groups_captured.max(b.groups_captured);
        sum.discontinuities = sum.discontinuities.saturating_add(b.discontinuities);
        sum.gap_offsets = sum.gap_offsets.saturating_add(b.gap_offsets);
        sum.unexplained_gap_offsets = sum
            .unexplained_gap_offsets
            .saturating_add(b.unexplained_gap_offsets);
    }
    let first_failure = shards
        .iter()
        .find(|s| !s.result.as_ref().is_ok_and(complete));
    let (phase, message, error) = match first_failure {
        None => (
            PHASE_COMPLETED,
            format!(
                "backup {} complete: {} records ({} bytes, {} stored) in {} segments from {} partitions, {total} shards",
                sum.backup_id, sum.records, sum.bytes, sum.stored_bytes, sum.segments, sum.partitions
            ),
            None,
        ),
        Some(shard) => {
            let (why, error) = match &shard.result {
                Ok(r) => (r.message.clone(), r.error.clone()),
                Err(why) => (why.clone(), None),
            };
            (
                PHASE_FAILED,
                format!(
                    "{} of {total} shards did not complete; shard {}: {why}",
                    total - completed,
                    shard.index
                ),
                error,
            )
        }
    };
    let result = TaskResult {
        phase: phase.to_string(),
        operation: Some("backup".into()),
        message,
        backup: Some(sum),
        error,
        ..TaskResult::default()
    };
    (counts, Ok(result))
}

/// Records how the backup of Job `job_name` ended (`at`: when) as the newest finished one.
fn record_last_run(
    status: &mut KafkaBackupStatus,
    job_name: &str,
    outcome: &Outcome,
    at: Option<String>,
) {
    if outcome.succeeded {
        status.last_successful_time = at.clone();
    }
    // The id is the Job's name, also when the worker could not report it.
    status
        .last_backup_id
        .get_or_insert_with(|| job_name.to_string());
    status.last_run = Some(LastRun {
        job_name: job_name.to_string(),
        phase: if outcome.succeeded {
            Phase::Completed
        } else {
            Phase::Failed
        },
        reason: st::cap(&outcome.reason, st::MAX_STATUS_REASON),
        message: st::cap(&outcome.message, st::MAX_STATUS_MESSAGE),
        completion_time: at,
    });
}

/// After the newest backup succeeded, the retention cleanup Job (and the ConfigMap with its
/// task), once per backup: `status.cleanup` records the backup it followed. Nothing without
/// `spec.retention`.
pub async fn ensure_cleanup(
    cr: &KafkaBackup,
    ctx: &Context,
    status: &mut KafkaBackupStatus,
) -> Result<(), Error> {
    let succeeded = status
        .last_run
        .as_ref()
        .is_some_and(|r| r.phase == Phase::Completed);
    let Some(backup_id) = status.last_backup_id.clone().filter(|_| succeeded) else {
        return Ok(());
    };
    if status
        .cleanup
        .as_ref()
        .is_some_and(|c| c.backup_id == backup_id)
    {
        return Ok(());
    }
    let config_map = cleanup_config_map(cr).map_err(Error::Build)?;
    let job = cleanup_job(cr, &backup_id, &ctx.config).map_err(Error::Build)?;
    let (Some(config_map), Some(job)) = (config_map, job) else {
        return Ok(());
    };
    let ns = build::namespace(cr).map_err(Error::Build)?;
    worker::apply_child(cr, ctx, &ns, &config_map).await?;
    worker::apply_child(cr, ctx, &ns, &job).await?;
    let job_name = job.name_any();
    let note = format!(
        "Job {job_name} applies the retention of chain {} after backup {backup_id}",
        crate::build::backup::chain(cr).map_err(Error::Build)?
    );
    ctx.publish(
        cr,
        EventType::Normal,
        REASON_CLEANUP_CREATED,
        "CreateCleanupJob",
        &note,
    )
    .await;
    status.cleanup = Some(CleanupStatus {
        backup_id,
        job_name,
        ..CleanupStatus::default()
    });
    Ok(())
}

/// Whether the cleanup Job in `status` has not been seen to end yet.
fn cleanup_pending(status: &KafkaBackupStatus) -> bool {
    status.cleanup.as_ref().is_some_and(|c| c.phase.is_none())
}

/// A Warning Event when the newest finished backup has offsets without records that nothing
/// explains (its status says how many).
async fn warn_of_unexplained_gaps(cr: &KafkaBackup, ctx: &Context, status: &KafkaBackupStatus) {
    let Some(n) = status.unexplained_gap_offsets.filter(|n| *n > 0) else {
        return;
    };
    let id = status.last_backup_id.as_deref().unwrap_or("-");
    let note = format!(
        "backup {id}: {n} offsets of topics that are not compacted hold no record and nothing explains it (records the broker lost or skipped, or aborted transactions); the backup report lists the partitions and ranges"
    );
    ctx.publish(
        cr,
        EventType::Warning,
        REASON_UNEXPLAINED_GAPS,
        "ObserveJob",
        &note,
    )
    .await;
}

/// Reads the result of the cleanup Job in `status` once it ended: what it deleted and which
/// backups it found damaged go to `status.cleanup`, with an Event (a Warning when backups are
/// damaged or the Job failed). A Job that is gone counts as ended without a result.
pub async fn observe_cleanup(
    cr: &KafkaBackup,
    ctx: &Context,
    status: &mut KafkaBackupStatus,
) -> Result<(), Error> {
    let Some(cleanup) = status.cleanup.as_mut() else {
        return Ok(());
    };
    let ns = build::namespace(cr).map_err(Error::Build)?;
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let job = jobs
        .get_opt(&cleanup.job_name)
        .await
        .map_err(|source| Error::Fetch {
            what: format!("Job {ns}/{}", cleanup.job_name),
            source,
        })?;
    let end = match &job {
        None => None,
        Some(job) => match st::job_end(job) {
            None => return Ok(()),
            Some(end) => Some(end),
        },
    };
    let result = match end {
        None => Err(format!("its Job {} is gone", cleanup.job_name)),
        Some(_) => worker::job_results(ctx, &ns, &cleanup.job_name, 1)
            .await?
            .into_iter()
            .next()
            .map_or_else(|| Err("no result".to_string()), |s| s.result),
    };
    let (type_, reason, note) = record_cleanup(cleanup, &end, result);
    ctx.publish(cr, type_, reason, "ObserveCleanup", &note)
        .await;
    Ok(())
}

/// Fills `cleanup` from how its Job ended (`None`: gone) and its result; returns the Event.
pub fn record_cleanup(
    cleanup: &mut CleanupStatus,
    end: &Option<JobEnd>,
    result: Result<TaskResult, String>,
) -> (EventType, &'static str, String) {
    let succeeded = matches!(end, Some(JobEnd::Complete))
        && result.as_ref().is_ok_and(|r| r.phase == PHASE_COMPLETED);
    cleanup.phase = Some(if succeeded {
        Phase::Completed
    } else {
        Phase::Failed
    });
    let job = cleanup.job_name.clone();
    match result {
        Ok(r) => {
            let b = r.backup.clone().unwrap_or_default();
            cleanup.deleted = b.deleted.clone();
            cleanup.deleted_count = Some(clamp(b.deleted_total.max(b.deleted.len() as u64)));
            cleanup.damaged = b.damaged.clone();
            cleanup.message = Some(r.message.clone());
            if !succeeded {
                return (
                    EventType::Warning,
                    REASON_CLEANUP_FAILED,
                    format!("cleanup Job {job} failed: {}", r.message),
                );
            }
            let deleted = if b.deleted.is_empty() {
                "deleted no backup".to_string()
            } else {
                format!(
                    "deleted {} backups: {}",
                    b.deleted_total.max(b.deleted.len() as u64),
                    b.deleted.join(", ")
                )
            };
            if b.damaged.is_empty() {
                (
                    EventType::Normal,
                    REASON_CLEANUP_COMPLETED,
                    format!("cleanup Job {job} {deleted}"),
                )
            } else {
                (
                    EventType::Warning,
                    REASON_DAMAGED_BACKUPS,
                    format!(
                        "cleanup Job {job} {deleted}; backups that fail verification were neither counted nor deleted: {}",
                        b.damaged.join(", ")
                    ),
                )
            }
        }
        Err(why) => {
            cleanup.message = Some(format!("no result was read: {why}"));
            (
                EventType::Warning,
                REASON_CLEANUP_FAILED,
                format!("cleanup Job {job} ended without a result ({why}); see its pod's log"),
            )
        }
    }
}

/// Keeps the Job of a running continuous backup going: a Job that is gone (deleted by hand,
/// or collected) is created again under the same name, so its pods resume the same backup
/// from its checkpoint; while it runs, the newest interrupted worker's checkpoint time and lag
/// go to the status. `None` when the Job has ended: the run's usual observation records it.
async fn keep_continuous_running(
    cr: &KafkaBackup,
    ctx: &Context,
    run: RunId,
    job_name: &str,
) -> Result<Option<Action>, Error> {
    let ns = build::namespace(cr).map_err(Error::Build)?;
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let job = jobs
        .get_opt(job_name)
        .await
        .map_err(|source| Error::Fetch {
            what: format!("Job {ns}/{job_name}"),
            source,
        })?;
    let Some(job) = job else {
        let job = build::job::job(cr, run, &ctx.config).map_err(Error::Build)?;
        worker::apply_task_children(cr, ctx, run).await?;
        worker::apply_child(cr, ctx, &ns, &job).await?;
        let note = format!(
            "the Job {job_name} of continuous backup run {run} was gone; it was created again and resumes the backup from its checkpoint"
        );
        ctx.publish(
            cr,
            EventType::Warning,
            REASON_JOB_RECREATED,
            "ObserveJob",
            &note,
        )
        .await;
        return Ok(Some(Action::requeue(RUNNING_POLL)));
    };
    if st::job_end(&job).is_some() {
        return Ok(None);
    }
    let shards = worker::job_results(ctx, &ns, job_name, st::job_shards(&job)).await?;
    let mut status = cr.status.clone().unwrap_or_default();
    record_checkpoints(&mut status, &shards);
    worker::write_status(cr, ctx, status, None).await?;
    Ok(Some(Action::requeue(RUNNING_POLL)))
}

/// The checkpoint time and lag of a running continuous backup, from its interrupted workers'
/// results: the newest checkpoint of each shard; the time is the oldest of them (every shard
/// has checkpointed since) and the lag their sum.
pub fn record_checkpoints(status: &mut KafkaBackupStatus, shards: &[ShardResult]) {
    let points: Vec<(String, u64)> = shards
        .iter()
        .filter_map(|s| {
            let b = s.result.as_ref().ok()?.backup.as_ref()?;
            Some((b.checkpoint_time.clone()?, b.lag.unwrap_or(0)))
        })
        .collect();
    if points.is_empty() {
        return;
    }
    status.last_checkpoint_time = points.iter().map(|(t, _)| t.clone()).min();
    status.lag = Some(clamp(points.iter().map(|(_, l)| *l).sum()));
}

/// The backup Jobs of a scheduled KafkaBackup, as the scheduled reconcile found them.
pub struct Observed<'a> {
    /// The CronJob, as applied (with its status).
    pub cron_job: &'a CronJob,
    /// The newest backup Job, running or ended.
    pub newest: Option<&'a Job>,
    /// The newest ended backup Job, when its results are not in the status yet: how it ended
    /// and its shards' results.
    pub ended: Option<(&'a Job, JobEnd, Vec<ShardResult>)>,
}

/// When `job` ended: its `completionTime`, else the time of its `Failed` condition.
fn ended_at(job: &Job) -> Option<String> {
    let status = job.status.as_ref()?;
    if let Some(t) = &status.completion_time {
        return Some(st::timestamp(t));
    }
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Failed" && c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(st::timestamp)
}

/// The newest ended Job among `jobs` (oldest first) when the status does not describe it yet:
/// not the `recorded` run's Job, and not one that ended before it (the recorded Job may be gone
/// while older ones remain).
pub fn unrecorded_end<'a>(
    jobs: &'a [Job],
    recorded: Option<&LastRun>,
) -> Option<(&'a Job, JobEnd)> {
    let (job, end) = jobs
        .iter()
        .rev()
        .find_map(|j| st::job_end(j).map(|end| (j, end)))?;
    let Some(recorded) = recorded else {
        return Some((job, end));
    };
    if recorded.job_name == job.name_any() {
        return None;
    }
    // RFC 3339 timestamps of one format order as text.
    let older = match (ended_at(job), &recorded.completion_time) {
        (Some(ended), Some(before)) => ended <= *before,
        _ => false,
    };
    (!older).then_some((job, end))
}

/// The status of a scheduled KafkaBackup in run `run`, from what the reconcile `seen`, and the
/// outcome of a backup whose results were read now. Phase: Suspended, Running (a backup Job
/// runs) or Scheduled. Conditions: Suspended, or the running Job (Reconciling), or the newest
/// backup's outcome (a failed one is Stalled until a later backup succeeds), or Scheduled
/// when none has run yet.
pub fn scheduled_status(
    cr: &KafkaBackup,
    run: RunId,
    seen: Observed<'_>,
    now: &str,
) -> (KafkaBackupStatus, Option<Outcome>) {
    let mut status = cr.new_run_status();
    let previous = cr.status.as_ref();
    let cron_job_name = seen.cron_job.name_any();
    let schedule = cr.spec.schedule.clone().unwrap_or_default();
    status.cron_job_name = Some(cron_job_name.clone());
    status.last_schedule_time = seen
        .cron_job
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .map(st::timestamp)
        .or_else(|| previous.and_then(|s| s.last_schedule_time.clone()));

    let fresh = seen.ended.map(|(job, end, shards)| {
        let job_name = job.name_any();
        let result = cr.combine_shards(&mut status, shards);
        let outcome = st::outcome(cr, &mut status, &job_name, &end, result);
        record_last_run(&mut status, &job_name, &outcome, ended_at(job));
        outcome
    });

    let active = seen.newest.filter(|j| st::job_end(j).is_none());
    let common = &mut status.common;
    common.observed_generation = cr.metadata.generation;
    common.run = Some(run.to_string());
    common.job_name = seen.newest.map(|j| j.name_any());
    common.start_time = seen
        .newest
        .and_then(|j| j.status.as_ref()?.start_time.as_ref())
        .map(st::timestamp);
    common.completion_time = seen.newest.and_then(ended_at);
    let on_schedule = format!("on schedule '{schedule}' (CronJob {cron_job_name})");
    let (phase, flags, reason, message) = if cr.spec.suspend {
        (
            Phase::Suspended,
            [true, false, false],
            REASON_SUSPENDED.to_string(),
            format!("backups {on_schedule} are suspended"),
        )
    } else if let Some(job) = active {
        (
            Phase::Running,
            [false, true, false],
            st::REASON_JOB_RUNNING.to_string(),
            format!(
                "Job {} is running {} {on_schedule} (run {run})",
                job.name_any(),
                cr.describe()
            ),
        )
    } else if let Some(last) = &status.last_run {
        let next = format!("the next backup runs {on_schedule}");
        match last.phase {
            Phase::Completed => (
                Phase::Scheduled,
                [true, false, false],
                last.reason.clone(),
                format!("{}; {next}", last.message),
            ),
            _ => (
                Phase::Scheduled,
                [false, false, true],
                last.reason.clone(),
                format!("backup {} failed: {}; {next}", last.job_name, last.message),
            ),
        }
    } else {
        (
            Phase::Scheduled,
            [true, false, false],
            REASON_SCHEDULED.to_string(),
            format!("backups run {on_schedule}; none has run yet"),
        )
    };
    let common = &mut status.common;
    common.phase = Some(phase);
    let previous_conditions = previous.map_or(&[][..], |s| s.common.conditions.as_slice());
    common.conditions = st::conditions(cr, previous_conditions, now, flags, &reason, &message);
    (status, fresh)
}

/// The reconcile of a scheduled KafkaBackup: apply the worker ServiceAccount,
/// the run's task ConfigMap and the CronJob; stop nothing that runs, but delete the task
/// ConfigMaps no backup Job needs any more; read the newest ended backup's results once;
/// create its cleanup Job; write the status.
async fn reconcile_scheduled(cr: &KafkaBackup, ctx: &Context, run: RunId) -> Result<Action, Error> {
    let ns = build::namespace(cr).map_err(Error::Build)?;
    worker::apply_task_children(cr, ctx, run).await?;
    let cron_job = cronjob::cron_job(cr, run, &ctx.config)
        .map_err(Error::Build)?
        .ok_or(Error::Build(build::Error::MissingField("spec.schedule")))?;
    let cron_job = worker::apply_child(cr, ctx, &ns, &cron_job).await?;

    // The backup Jobs: the CronJob's, and those of earlier runs without a schedule.
    let selector = format!(
        "{OWNER_KIND_LABEL}={KIND},{OWNER_NAME_LABEL}={},app.kubernetes.io/component={COMPONENT}",
        label_value(&cr.name_any())
    );
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let mut jobs = jobs
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| Error::Fetch {
            what: format!("the backup Jobs of {KIND} {ns}/{}", cr.name_any()),
            source,
        })?
        .items;
    jobs.sort_by_key(|j| {
        (
            j.metadata.creation_timestamp.as_ref().map(|t| t.0),
            j.name_any(),
        )
    });

    // Task ConfigMaps of earlier runs go once no running backup mounts them.
    let needed: BTreeSet<String> = jobs
        .iter()
        .filter(|j| st::job_end(j).is_none())
        .filter_map(|j| j.labels().get(RUN_LABEL).cloned())
        .chain([run.to_string()])
        .collect();
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let tasks = config_maps
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| Error::Fetch {
            what: format!("the task ConfigMaps of {KIND} {ns}/{}", cr.name_any()),
            source,
        })?;
    for task in &tasks.items {
        if task
            .labels()
            .get(RUN_LABEL)
            .is_some_and(|r| !needed.contains(r))
        {
            worker::delete(&config_maps, &task.name_any(), "ConfigMap", &ns).await?;
        }
    }

    let current = cr.status.clone().unwrap_or_default();
    let newest = jobs.last();
    let ended = match unrecorded_end(&jobs, current.last_run.as_ref()) {
        Some((job, end)) => {
            let shards =
                worker::job_results(ctx, &ns, &job.name_any(), st::job_shards(job)).await?;
            Some((job, end, shards))
        }
        None => None,
    };
    let seen = Observed {
        cron_job: &cron_job,
        newest,
        ended,
    };
    let (mut status, fresh) = scheduled_status(cr, run, seen, &st::now());
    if fresh.is_some() {
        warn_of_unexplained_gaps(cr, ctx, &status).await;
    }
    if cleanup_pending(&status) {
        observe_cleanup(cr, ctx, &mut status).await?;
    }
    ensure_cleanup(cr, ctx, &mut status).await?;

    let started = status.common.phase == Some(Phase::Running)
        && status.common.job_name != current.common.job_name;
    let settled =
        status.common.phase != current.common.phase || status.common.run != current.common.run;
    let (event, outcome) = match &fresh {
        Some(o) if o.succeeded => (
            Some((EventType::Normal, "JobSucceeded")),
            Some(JOB_SUCCEEDED),
        ),
        Some(_) => (Some((EventType::Warning, "JobFailed")), Some(JOB_FAILED)),
        None if started => (
            Some((EventType::Normal, REASON_BACKUP_STARTED)),
            Some(JOB_CREATED),
        ),
        None if settled && cr.spec.suspend => (Some((EventType::Normal, REASON_SUSPENDED)), None),
        None if settled => (Some((EventType::Normal, REASON_SCHEDULED)), None),
        None => (None, None),
    };
    let running = status.common.phase == Some(Phase::Running);
    let event = event.map(|(type_, reason)| (type_, reason, "ObserveSchedule"));
    if worker::write_status(cr, ctx, status, event).await? {
        if let Some(outcome) = outcome {
            ctx.metrics.job(KIND, outcome);
        }
    }
    Ok(Action::requeue(if running {
        RUNNING_POLL
    } else {
        SCHEDULE_POLL
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::build::fixtures::*;

    /// A shard's worker result ([`backup_result`]).
    fn shard_result(index: u32, id: &str, records: u64, complete: bool) -> ShardResult {
        ShardResult {
            index,
            result: Ok(
                serde_json::from_value(backup_result(index, id, records, complete))
                    .expect("result"),
            ),
        }
    }

    #[test]
    fn the_shards_of_a_backup_are_summed() {
        let shards = (0..3)
            .map(|i| shard_result(i, "b-1", 1000 * u64::from(i + 1), true))
            .collect();
        let (counts, result) = combine(shards);
        assert_eq!(
            counts,
            ShardCounts {
                total: 3,
                completed: 3,
                failed: 0
            }
        );
        let result = result.expect("a result");
        assert_eq!(result.phase, PHASE_COMPLETED);
        let b = result.backup.expect("backup");
        assert_eq!(b.backup_id, "b-1");
        assert!(b.complete);
        assert_eq!(
            (b.records, b.bytes, b.stored_bytes, b.segments, b.partitions),
            (6000, 600_000, 180_000, 6, 12)
        );
        // A topic or a group may span shards: the most any shard saw, not a sum.
        assert_eq!((b.topics, b.groups_captured), (2, 3));
        assert_eq!(
            result.message,
            "backup b-1 complete: 6000 records (600000 bytes, 180000 stored) in 6 segments from 12 partitions, 3 shards"
        );
    }

    #[test]
    fn one_failed_shard_fails_the_backup_with_its_error() {
        let shards = vec![
            shard_result(0, "b-1", 10, true),
            shard_result(1, "b-1", 3, false),
            ShardResult {
                index: 2,
                result: Err("no terminated worker container was found".into()),
            },
        ];
        let (counts, result) = combine(shards);
        assert_eq!((counts.completed, counts.failed), (1, 2));
        let result = result.expect("a result");
        assert_eq!(result.phase, PHASE_FAILED);
        assert_eq!(
            result.message,
            "2 of 3 shards did not complete; shard 1: shard 1/3: the bucket refused a write"
        );
        assert_eq!(
            result.error.map(|e| e.kind).as_deref(),
            Some("storage_error")
        );
        let b = result.backup.expect("backup");
        assert!(!b.complete);
        assert_eq!(b.records, 13, "what the shards did store is still counted");

        let none = (0..2)
            .map(|index| ShardResult {
                index,
                result: Err("no terminated worker container was found".into()),
            })
            .collect();
        let (counts, result) = combine(none);
        assert_eq!(counts.failed, 2);
        assert_eq!(
            result.expect_err("no result"),
            "no shard left a result (shard 0: no terminated worker container was found)"
        );
    }

    #[test]
    fn a_single_shard_must_report_its_backup_complete() {
        let (counts, result) = combine(vec![shard_result(0, "b-1", 5, true)]);
        assert_eq!(counts.total, 1);
        assert_eq!(
            result.expect("result").message,
            "shard 0/3 of backup b-1: 5 records"
        );

        let mut incomplete = shard_result(0, "b-1", 5, true);
        if let Ok(r) = incomplete.result.as_mut() {
            r.backup = None;
        }
        let (counts, result) = combine(vec![incomplete]);
        assert_eq!(counts.failed, 1);
        let result = result.expect("result");
        assert_eq!(result.phase, PHASE_FAILED);
        assert!(result
            .message
            .ends_with("the worker did not report the backup complete"));
        let cr = kb(BACKUP_ONE_SHOT_PVC);
        let mut status = KafkaBackupStatus::default();
        let reasons = cr.record_result(&mut status, &result);
        assert_eq!(reasons.failed.as_deref(), Some(REASON_BACKUP_INCOMPLETE));
        assert_eq!(status.records, None, "no counts without a backup block");
    }

    fn cron_job(last_schedule: Option<&str>) -> CronJob {
        serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "events-hourly-1a2b3c4d", "namespace": "kafka-backup"},
            "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": {}}}},
            "status": match last_schedule {
                Some(t) => json!({"lastScheduleTime": t}),
                None => json!({}),
            }
        }))
        .expect("cron job")
    }

    /// A Job of the CronJob of `cr`, started at `start`, ended by `end` if given.
    fn job(cr: &KafkaBackup, name: &str, start: &str, end: Option<(&str, &str, &str)>) -> Job {
        serde_json::from_value(backup_job(cr, name, "g1-r0", start, end)).expect("job")
    }

    const RUN: RunId = RunId {
        generation: 1,
        run: 0,
    };
    const NOW: &str = "2024-12-01T13:00:00Z";

    fn ready(status: &KafkaBackupStatus) -> (String, String, String) {
        let c = st::ready(&status.common).expect("Ready");
        (c.status.clone(), c.reason.clone(), c.message.clone())
    }

    fn flags(status: &KafkaBackupStatus) -> Vec<(String, String)> {
        status
            .common
            .conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect()
    }

    fn pair(t: &str, s: &str) -> (String, String) {
        (t.to_string(), s.to_string())
    }

    #[test]
    fn a_schedule_that_has_not_run_yet_is_ready() {
        let cr = kb(BACKUP_HOURLY_INCREMENTAL_GCS);
        let cron = cron_job(None);
        let seen = Observed {
            cron_job: &cron,
            newest: None,
            ended: None,
        };
        let (status, fresh) = scheduled_status(&cr, RUN, seen, NOW);
        assert_eq!(fresh, None);
        assert_eq!(status.common.phase, Some(Phase::Scheduled));
        assert_eq!(status.common.run.as_deref(), Some("g1-r0"));
        assert_eq!(
            status.cron_job_name.as_deref(),
            Some("events-hourly-1a2b3c4d")
        );
        assert_eq!(
            ready(&status),
            (
                "True".into(),
                REASON_SCHEDULED.into(),
                "backups run on schedule '0 * * * *' (CronJob events-hourly-1a2b3c4d); none has run yet".into()
            )
        );
        assert_eq!(
            flags(&status),
            [
                pair("Ready", "True"),
                pair("Reconciling", "False"),
                pair("Stalled", "False")
            ]
        );

        let mut suspended = cr.clone();
        suspended.spec.suspend = true;
        let seen = Observed {
            cron_job: &cron,
            newest: None,
            ended: None,
        };
        let (status, _) = scheduled_status(&suspended, RUN, seen, NOW);
        assert_eq!(status.common.phase, Some(Phase::Suspended));
        assert_eq!(ready(&status).1, REASON_SUSPENDED);
    }

    #[test]
    fn a_running_scheduled_backup_is_reconciling() {
        let cr = kb(BACKUP_HOURLY_INCREMENTAL_GCS);
        let cron = cron_job(Some("2024-12-01T12:00:00Z"));
        let running = job(
            &cr,
            "events-hourly-1a2b3c4d-28886400",
            "2024-12-01T12:00:05Z",
            None,
        );
        let seen = Observed {
            cron_job: &cron,
            newest: Some(&running),
            ended: None,
        };
        let (status, _) = scheduled_status(&cr, RUN, seen, NOW);
        assert_eq!(status.common.phase, Some(Phase::Running));
        assert_eq!(
            status.common.job_name.as_deref(),
            Some("events-hourly-1a2b3c4d-28886400")
        );
        assert_eq!(
            status.common.start_time.as_deref(),
            Some("2024-12-01T12:00:05Z")
        );
        assert_eq!(status.common.completion_time, None);
        assert_eq!(
            status.last_schedule_time.as_deref(),
            Some("2024-12-01T12:00:00Z")
        );
        assert_eq!(
            flags(&status),
            [
                pair("Ready", "False"),
                pair("Reconciling", "True"),
                pair("Stalled", "False")
            ]
        );
        assert_eq!(
            ready(&status).2,
            "Job events-hourly-1a2b3c4d-28886400 is running an incremental backup of 3 shards on schedule '0 * * * *' (CronJob events-hourly-1a2b3c4d) (run g1-r0)"
        );
    }

    #[test]
    fn an_ended_scheduled_backup_is_recorded_once() {
        let cr = kb(BACKUP_HOURLY_INCREMENTAL_GCS);
        let cron = cron_job(Some("2024-12-01T12:00:00Z"));
        let name = "events-hourly-1a2b3c4d-28886400";
        let done = job(
            &cr,
            name,
            "2024-12-01T12:00:05Z",
            Some(("Complete", "CompletionsReached", "2024-12-01T12:20:00Z")),
        );
        let shards = (0..3).map(|i| shard_result(i, name, 100, true)).collect();
        let seen = Observed {
            cron_job: &cron,
            newest: Some(&done),
            ended: Some((&done, JobEnd::Complete, shards)),
        };
        let (status, fresh) = scheduled_status(&cr, RUN, seen, NOW);
        assert!(fresh.expect("an outcome").succeeded);
        assert_eq!(status.common.phase, Some(Phase::Scheduled));
        assert_eq!(status.last_backup_id.as_deref(), Some(name));
        assert_eq!(status.records, Some(300));
        assert_eq!(
            status.shards,
            Some(ShardCounts {
                total: 3,
                completed: 3,
                failed: 0
            })
        );
        assert_eq!(
            status.last_successful_time.as_deref(),
            Some("2024-12-01T12:20:00Z")
        );
        let last = status.last_run.clone().expect("last run");
        assert_eq!(
            (last.phase, last.reason.as_str()),
            (Phase::Completed, REASON_BACKUP_COMPLETED)
        );
        let (ok, reason, message) = ready(&status);
        assert_eq!(
            (ok.as_str(), reason.as_str()),
            ("True", REASON_BACKUP_COMPLETED)
        );
        assert!(
            message.ends_with(
                "; the next backup runs on schedule '0 * * * *' (CronJob events-hourly-1a2b3c4d)"
            ),
            "{message}"
        );

        // Seen again later: the results are kept without reading the pods again.
        let mut cr = cr;
        cr.status = Some(status.clone());
        let seen = Observed {
            cron_job: &cron,
            newest: Some(&done),
            ended: None,
        };
        let (again, fresh) = scheduled_status(&cr, RUN, seen, "2024-12-01T14:00:00Z");
        assert_eq!(fresh, None);
        assert_eq!(again, status, "nothing to write");
    }

    #[test]
    fn only_a_backup_newer_than_the_recorded_one_is_read() {
        let cr = kb(BACKUP_DAILY_S3);
        let done = |name: &str, day: u32| {
            job(
                &cr,
                name,
                &format!("2024-12-{day:02}T02:00:00Z"),
                Some((
                    "Complete",
                    "CompletionsReached",
                    &format!("2024-12-{day:02}T02:30:00Z"),
                )),
            )
        };
        let running = job(&cr, "b-4", "2024-12-04T02:00:00Z", None);
        let jobs = [done("b-1", 1), done("b-2", 2), running];
        let recorded = |name: &str, day: u32| LastRun {
            job_name: name.into(),
            phase: Phase::Completed,
            reason: REASON_BACKUP_COMPLETED.into(),
            message: "done".into(),
            completion_time: Some(format!("2024-12-{day:02}T02:30:00Z")),
        };
        let name = |found: Option<(&Job, JobEnd)>| found.map(|(j, _)| j.name_any());
        assert_eq!(name(unrecorded_end(&jobs, None)).as_deref(), Some("b-2"));
        assert_eq!(
            name(unrecorded_end(&jobs, Some(&recorded("b-1", 1)))).as_deref(),
            Some("b-2")
        );
        assert_eq!(name(unrecorded_end(&jobs, Some(&recorded("b-2", 2)))), None);
        // b-3 was recorded and is gone (history limit, TTL): b-2 is older, not news.
        assert_eq!(name(unrecorded_end(&jobs, Some(&recorded("b-3", 3)))), None);
        assert_eq!(name(unrecorded_end(&jobs[2..], None)), None);
    }

    #[test]
    fn a_failed_scheduled_backup_stalls_until_a_later_one_succeeds() {
        let cr = kb(BACKUP_DAILY_S3);
        let cron = cron_job(Some("2024-12-01T02:00:00Z"));
        let name = "payments-nightly-1a2b3c4d-28885800";
        let failed = job(
            &cr,
            name,
            "2024-12-01T02:00:03Z",
            Some(("Failed", "BackoffLimitExceeded", "2024-12-01T02:10:00Z")),
        );
        let end = JobEnd::Failed {
            reason: "BackoffLimitExceeded".into(),
            message: "Job has reached the specified backoff limit".into(),
        };
        let shards = vec![shard_result(0, name, 7, false)];
        let seen = Observed {
            cron_job: &cron,
            newest: Some(&failed),
            ended: Some((&failed, end, shards)),
        };
        let (status, fresh) = scheduled_status(&cr, RUN, seen, NOW);
        assert!(!fresh.expect("outcome").succeeded);
        assert_eq!(status.common.phase, Some(Phase::Scheduled));
        assert_eq!(
            status.common.completion_time.as_deref(),
            Some("2024-12-01T02:10:00Z")
        );
        assert_eq!(status.last_successful_time, None);
        assert_eq!(
            status.last_run.as_ref().map(|r| r.phase),
            Some(Phase::Failed)
        );
        assert_eq!(
            flags(&status),
            [
                pair("Ready", "False"),
                pair("Reconciling", "False"),
                pair("Stalled", "True")
            ]
        );
        let (_, reason, message) = ready(&status);
        assert_eq!(reason, "StorageError");
        assert!(
            message.starts_with(&format!(
                "backup {name} failed: shard 0/3: the bucket refused a write"
            )),
            "{message}"
        );
    }

    #[test]
    fn the_last_backup_outlives_a_new_run() {
        let mut cr = kb(BACKUP_ONE_SHOT_PVC);
        let status: Value = json!({
            "phase": "Completed", "run": "g1-r0", "lastBackupId": "b-1", "records": 5,
            "lastRun": {"jobName": "b-1", "phase": "Completed", "reason": "BackupCompleted",
                        "message": "done"},
            "cleanup": {"backupId": "b-1", "jobName": "c-1"},
            "cronJobName": "gone", "lastScheduleTime": "2024-12-01T02:00:00Z"
        });
        cr.status = Some(serde_json::from_value(status).expect("status"));
        let next = cr.new_run_status();
        assert_eq!(next.last_backup_id.as_deref(), Some("b-1"));
        assert_eq!(next.records, Some(5));
        assert!(next.last_run.is_some() && next.cleanup.is_some());
        assert_eq!(next.common, RunStatus::default());
        assert_eq!((next.cron_job_name, next.last_schedule_time), (None, None));
    }
}

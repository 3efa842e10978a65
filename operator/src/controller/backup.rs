//! KafkaBackup as a [`RunKind`], with two ways to run:
//!
//! - **Without a schedule**, the shared one-run-per-[`RunId`] reconcile
//!   ([`worker::run_once`]): one Job (an Indexed Job of `parallelism` shards) per run. The
//!   shards' results are summed ([`combine_shards`](RunKind::combine_shards)); the backup is
//!   complete only when every shard reported its part complete. A continuous backup runs until
//!   the user ends it; an edit or `suspend: true` first asks it to finish (its manifest
//!   written) and waits, bounded, for its Job to complete (`finish_previous_continuous`);
//!   suspended, it runs nothing (`suspend_continuous`).
//! - **With a schedule**, a CronJob ([`crate::build::cronjob`]) applied on every reconcile (so
//!   `suspend` and spec changes reach it); the status follows the CronJob and its Jobs, found by
//!   label: the newest finished one's pods give the last backup's results (read once per Job).
//!   Its pods hold the result finalizer, so a Job deleted by the history limit (in the
//!   background) is still read from its pods ([`gone_job`]); pods of recorded (or older) Jobs
//!   are released after the status is written.
//!   A spec change keeps the backups still running under the old spec (and their task
//!   ConfigMap) until they end.
//!
//! Either way, after each successful backup with `spec.retention`, one cleanup Job runs the
//! retention task ([`ensure_cleanup`]); `status.cleanup` records it, so it is created once.
//! The `last*` fields and counts describe the newest finished backup and outlive runs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use tidemark_task::{BackupMode as TaskBackupMode, Task, TaskWork, FINISH_FILE_NAME};
use tidemark_task::{ResultBackup, TaskResult, PHASE_COMPLETED, PHASE_FAILED};

use super::status::{self as st, clamp, JobEnd, Outcome, Reasons, ShardResult};
use super::{drill, stop, worker, Context, Error, RunKind, RUNNING_POLL, SECRET_POLL};
use crate::build::backup::{cleanup_config_map, cleanup_job, COMPONENT};
use crate::build::job::{COMPLETION_INDEX_LABEL, CONTAINER_NAME, JOB_NAME_LABEL};
use crate::build::TASK_FILE_NAME;
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
/// Event reason when a continuous backup the user ended is asked to finish (write its manifest).
pub const REASON_FINISH_REQUESTED: &str = "FinishRequested";
/// Warning Event reason when a continuous backup asked to finish did not in time.
pub const REASON_FINISH_TIMED_OUT: &str = "FinishTimedOut";

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
            encryption_key_id: s.encryption_key_id.clone(),
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
            drill: s.drill.clone(),
            last_drill: s.last_drill.clone(),
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
        status.encryption_key_id = backup.and_then(|b| b.encryption_key_id.clone());
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
        drill::apply_health(self, status, &st::now());
        warn_of_unexplained_gaps(self, ctx, status).await;
        ensure_cleanup(self, ctx, status).await
    }

    /// The drills first ([`drill::reconcile`]), then the backups from the status as the drills
    /// left it.
    async fn reconcile(&self, ctx: &Context) -> Result<Action, Error> {
        if self.metadata.deletion_timestamp.is_some() {
            return finish_on_delete(self, ctx).await;
        }
        let run = worker::validated_run(self, ctx).await?;
        let drilled = drill::reconcile(self, ctx).await?;
        let action = reconcile_backups(&drilled.cr, ctx, run).await?;
        Ok(sooner(action, drilled.requeue))
    }
}

/// `action`, or a look again after `requeue` when that comes sooner than the backups asked.
fn sooner(action: Action, requeue: Option<Duration>) -> Action {
    let Some(wait) = requeue else {
        return action;
    };
    if action == Action::await_change() {
        return Action::requeue(wait);
    }
    // The backups' polls, shortest first; any other action is kept.
    for poll in [SECRET_POLL, RUNNING_POLL, SCHEDULE_POLL] {
        if action == Action::requeue(poll) {
            return Action::requeue(wait.min(poll));
        }
    }
    action
}

/// The backups of a valid KafkaBackup in run `run`: on a schedule, or once per run.
async fn reconcile_backups(cr: &KafkaBackup, ctx: &Context, run: RunId) -> Result<Action, Error> {
    if cr.spec.schedule.is_some() {
        return reconcile_scheduled(cr, ctx, run).await;
    }
    // The schedule was removed: its CronJob goes (its running Job with it).
    if let Some(cron_job) = cr.status.as_ref().and_then(|s| s.cron_job_name.as_ref()) {
        let ns = build::namespace(cr).map_err(Error::Build)?;
        let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
        worker::delete(&api, cron_job, "CronJob", &ns).await?;
    }
    let current = cr.status.clone().unwrap_or_default();
    if let Some(action) = finish_previous_continuous(cr, ctx, run, &current).await? {
        return Ok(action);
    }
    if cr.spec.suspend {
        return suspend_continuous(cr, ctx, run, &current).await;
    }
    let this_run = current.common.run.as_deref() == Some(run.to_string().as_str());
    match (this_run, current.common.phase, &current.common.job_name) {
        (true, Some(Phase::Running), Some(job)) if cr.spec.mode == BackupMode::Continuous => {
            if let Some(action) = keep_continuous_running(cr, ctx, run, job).await? {
                return Ok(action);
            }
        }
        (true, Some(Phase::Completed | Phase::Failed), _) if cleanup_pending(&current) => {
            let mut status = current.clone();
            let held = observe_cleanup(cr, ctx, &mut status).await?;
            worker::write_status(cr, ctx, status, None).await?;
            if let Some((pods, job)) = held {
                let ns = build::namespace(cr).map_err(Error::Build)?;
                worker::release_all(ctx, &ns, &pods, job.as_ref()).await?;
            }
            return Ok(Action::await_change());
        }
        _ => {}
    }
    worker::run_once(cr, ctx, run).await
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
        // Every shard wraps with the key of one task; the first that reports it speaks for all.
        if sum.encryption_key_id.is_none() {
            sum.encryption_key_id = b.encryption_key_id.clone();
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
            let (message, error) = st::shard_failure(shard, total, completed, None);
            (PHASE_FAILED, message, error)
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

/// What a recorded Job left holding its result: its pods and the Job (`None`: gone), whose
/// [`RESULT_FINALIZER`](crate::build::job::RESULT_FINALIZER)s go once the status is written
/// ([`worker::release_all`]).
pub type Held = (Vec<Pod>, Option<Job>);

/// Reads the result of the cleanup Job in `status` once it ended: what it deleted and which
/// backups it found damaged go to `status.cleanup`, with an Event (a Warning when backups are
/// damaged or the Job failed). A Job that is gone (its TTL, garbage collection) is read from
/// its pod, which the result finalizer keeps: a cleanup that succeeded is recorded as such; a
/// gone Job whose pod still runs is waited for; one with no pod left counts as ended without a
/// result. Returns what to release once the status is written (`None`: nothing recorded).
pub async fn observe_cleanup(
    cr: &KafkaBackup,
    ctx: &Context,
    status: &mut KafkaBackupStatus,
) -> Result<Option<Held>, Error> {
    let Some(cleanup) = status.cleanup.as_mut() else {
        return Ok(None);
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
    let end = job.as_ref().and_then(st::job_end);
    if end.is_none()
        && job
            .as_ref()
            .is_some_and(|j| j.meta().deletion_timestamp.is_none())
    {
        return Ok(None);
    }
    let pods = worker::job_pods(ctx, &ns, &cleanup.job_name).await?;
    if end.is_none() && !pods.iter().all(worker_ended) {
        return Ok(None);
    }
    let result = st::single_result(st::shard_results(&pods, 1));
    let completed = result.as_ref().is_ok_and(|r| r.phase == PHASE_COMPLETED);
    // A Job gone (or being deleted) before it ended is judged by its pod's result.
    let end = end.or_else(|| completed.then_some(JobEnd::Complete));
    let result = match (&job, result) {
        (None, Err(why)) if pods.is_empty() => Err(format!(
            "its Job {} is gone and left no pod ({why})",
            cleanup.job_name
        )),
        (_, result) => result,
    };
    let (type_, reason, note) = record_cleanup(cleanup, &end, result);
    ctx.publish(cr, type_, reason, "ObserveCleanup", &note)
        .await;
    Ok(Some((pods, job)))
}

/// Whether the worker container of `pod` has ended (or the pod has: it will not run again).
pub fn worker_ended(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"))
        || status
            .container_statuses
            .iter()
            .flatten()
            .filter(|c| c.name == CONTAINER_NAME)
            .any(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some()))
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
    hold_for_finish(cr, ctx, &ns).await?;
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let job = worker::get_job(&jobs, job_name, &ns).await?;
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
    let pods = worker::job_pods(ctx, &ns, job_name).await?;
    if let Some(problem) = worker::pod_secret_problem(ctx, &ns, &pods).await? {
        let field = worker::secret_field(cr, &problem);
        let mut status = cr.status.clone().unwrap_or_default();
        status.common.conditions = st::secret_conditions(cr, job_name, &problem, field, &st::now());
        let event = (EventType::Warning, problem.reason, "ObservePod");
        worker::write_status(cr, ctx, status, Some(event)).await?;
        return Ok(Some(Action::requeue(SECRET_POLL)));
    }
    let shards = worker::pod_results(&pods, job_name, st::job_shards(&job));
    // The Secret fixed and the pod started: plain Running again.
    let mut status = cr.status.clone().unwrap_or_default();
    let event = worker::stalled_on_secret(cr).then(|| {
        status.common = st::running(cr, run, job_name, &st::now()).common;
        (EventType::Normal, "PodStarting", "ObservePod")
    });
    record_checkpoints(&mut status, &shards);
    worker::write_status(cr, ctx, status, event).await?;
    Ok(Some(Action::requeue(RUNNING_POLL)))
}

/// How long a continuous backup the user ended (a new run, `suspend`) is given to finish
/// writing its manifest before its Job is stopped anyway (left resumable, without a manifest):
/// the request reaches the pod within the kubelet's sync period (about a minute), then the
/// worker stores what it read and writes the manifest.
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(300);
/// How often a finishing continuous backup is looked at.
pub const FINISH_POLL: Duration = Duration::from_secs(10);

/// Before a continuous backup whose run the user ended (the spec changed, or `suspend: true`)
/// is stopped, it is asked to finish ([`finish_job`]) and the new run waits, `Reconciling`
/// with `WaitingForPreviousRun`, until the Job completes (the usual observation then records
/// the complete backup) or [`FINISH_TIMEOUT`] has passed since the request (Warning Event
/// `FinishTimedOut`; it is then stopped as any superseded run). `None` when there is nothing to
/// finish or to wait for.
async fn finish_previous_continuous(
    cr: &KafkaBackup,
    ctx: &Context,
    run: RunId,
    current: &KafkaBackupStatus,
) -> Result<Option<Action>, Error> {
    let common = &current.common;
    let (Some(Phase::Running), Some(old_run), Some(job_name)) = (
        common.phase,
        common.run.as_deref(),
        common.job_name.as_deref(),
    ) else {
        return Ok(None);
    };
    if old_run == run.to_string() {
        return Ok(None);
    }
    match finish_job(cr, ctx, old_run, job_name).await? {
        Finish::Nothing | Finish::TimedOut => Ok(None),
        Finish::Waiting => Ok(Some(Action::requeue(FINISH_POLL))),
        Finish::Requested(left) => {
            let status = stop::waiting(cr, current, run, &left, &st::now());
            let event = (EventType::Normal, REASON_FINISH_REQUESTED, "FinishBackup");
            worker::write_status(cr, ctx, status, Some(event)).await?;
            Ok(Some(Action::requeue(FINISH_POLL)))
        }
    }
}

/// Where asking a continuous backup's Job to finish stands.
#[derive(Debug, PartialEq, Eq)]
enum Finish {
    /// No continuous backup Job of that run is running.
    Nothing,
    /// Asked now; the text says what runs and for how long it may.
    Requested(String),
    /// Asked before; it may still finish.
    Waiting,
    /// Asked [`FINISH_TIMEOUT`] ago or more (a Warning Event said so).
    TimedOut,
}

/// Asks the continuous backup Job `job_name` of `cr`'s run `run` to finish: the `finish` key
/// is added to the run's task ConfigMap (mounted in its pods, where the worker looks for it),
/// then the worker stores what it read, writes the manifest and exits 0.
async fn finish_job(
    cr: &KafkaBackup,
    ctx: &Context,
    run: &str,
    job_name: &str,
) -> Result<Finish, Error> {
    let ns = build::namespace(cr).map_err(Error::Build)?;
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let job = worker::get_job(&jobs, job_name, &ns).await?;
    if job.as_ref().is_none_or(|j| st::job_end(j).is_some()) {
        return Ok(Finish::Nothing);
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let task_name = build::kind_child_name::<KafkaBackup>(&cr.name_any(), &format!("task-{run}"));
    let task = config_maps
        .get_opt(&task_name)
        .await
        .map_err(|source| Error::Fetch {
            what: format!("ConfigMap {ns}/{task_name}"),
            source,
        })?;
    let Some(task) = task.filter(continuous_task) else {
        return Ok(Finish::Nothing);
    };
    let now = st::now();
    let requested = task
        .data
        .as_ref()
        .and_then(|d| d.get(FINISH_FILE_NAME))
        .cloned();
    let Some(requested) = requested else {
        request_finish(&config_maps, &task_name, &ns, &now).await?;
        return Ok(Finish::Requested(format!(
            "continuous backup Job {job_name} was asked to finish (store what it read and write its manifest) and is given up to {} minutes",
            FINISH_TIMEOUT.as_secs() / 60
        )));
    };
    if !finish_timed_out(&requested, &now) {
        return Ok(Finish::Waiting);
    }
    let note = format!(
        "continuous backup Job {job_name} did not finish within {} minutes of the request ({requested}); it is stopped and left resumable without a manifest",
        FINISH_TIMEOUT.as_secs() / 60
    );
    ctx.publish(
        cr,
        EventType::Warning,
        REASON_FINISH_TIMED_OUT,
        "FinishBackup",
        &note,
    )
    .await;
    Ok(Finish::TimedOut)
}

/// Finalizer on a KafkaBackup while a continuous backup of it runs: deleting the resource then
/// first asks the backup to finish ([`finish_on_delete`]), so that what it read is a complete,
/// restorable backup, instead of its Job being stopped mid-run.
pub const FINISH_FINALIZER: &str = "tidemark.dev/finish-backup";

/// Puts [`FINISH_FINALIZER`] on `cr` (a running continuous backup) when it lacks it.
async fn hold_for_finish(cr: &KafkaBackup, ctx: &Context, ns: &str) -> Result<(), Error> {
    if cr.finalizers().iter().any(|f| f == FINISH_FINALIZER) {
        return Ok(());
    }
    let mut finalizers = cr.finalizers().to_vec();
    finalizers.push(FINISH_FINALIZER.to_string());
    patch_finalizers(cr, ctx, ns, finalizers).await
}

/// Sets `cr`'s finalizers to `finalizers` (a merge patch guarded by its resourceVersion, so a
/// concurrent change fails it and the reconcile retries).
async fn patch_finalizers(
    cr: &KafkaBackup,
    ctx: &Context,
    ns: &str,
    finalizers: Vec<String>,
) -> Result<(), Error> {
    let api: Api<KafkaBackup> = Api::namespaced(ctx.client.clone(), ns);
    let patch = serde_json::json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": cr.resource_version()}
    });
    let name = cr.name_any();
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| Error::Apply {
            what: format!("the finalizers of {KIND} {ns}/{name}"),
            source,
        })?;
    Ok(())
}

/// A KafkaBackup being deleted while its continuous backup runs: the backup is asked to finish
/// ([`finish_job`]) and given up to [`FINISH_TIMEOUT`]; then [`FINISH_FINALIZER`] goes and the
/// deletion proceeds (its Jobs are collected with it). Nothing else runs for a resource being
/// deleted.
async fn finish_on_delete(cr: &KafkaBackup, ctx: &Context) -> Result<Action, Error> {
    if !cr.finalizers().iter().any(|f| f == FINISH_FINALIZER) {
        return Ok(Action::await_change());
    }
    let ns = build::namespace(cr).map_err(Error::Build)?;
    let common = cr.status.as_ref().map(|s| &s.common);
    let running = common
        .filter(|c| c.phase == Some(Phase::Running))
        .and_then(|c| Some((c.run.as_deref()?, c.job_name.as_deref()?)));
    if let Some((run, job_name)) = running {
        match finish_job(cr, ctx, run, job_name).await? {
            Finish::Nothing | Finish::TimedOut => {}
            Finish::Waiting => return Ok(Action::requeue(FINISH_POLL)),
            Finish::Requested(left) => {
                let note = format!("{KIND} {} is being deleted: {left}", cr.name_any());
                ctx.publish(
                    cr,
                    EventType::Normal,
                    REASON_FINISH_REQUESTED,
                    "FinishBackup",
                    &note,
                )
                .await;
                return Ok(Action::requeue(FINISH_POLL));
            }
        }
    }
    let rest: Vec<String> = cr
        .finalizers()
        .iter()
        .filter(|f| *f != FINISH_FINALIZER)
        .cloned()
        .collect();
    patch_finalizers(cr, ctx, &ns, rest).await?;
    Ok(Action::await_change())
}

/// Whether `task` (a run's task ConfigMap) holds a continuous backup task.
fn continuous_task(task: &ConfigMap) -> bool {
    let yaml = task.data.as_ref().and_then(|d| d.get(TASK_FILE_NAME));
    yaml.and_then(|y| Task::parse(y.as_bytes(), TASK_FILE_NAME).ok())
        .is_some_and(
            |t| matches!(t.work, TaskWork::Backup(b) if b.mode == TaskBackupMode::Continuous),
        )
}

/// Whether [`FINISH_TIMEOUT`] has passed between `requested` and `now` (RFC 3339); a request
/// whose time cannot be read counts as timed out.
pub fn finish_timed_out(requested: &str, now: &str) -> bool {
    let parse = |t: &str| t.parse::<k8s_openapi::jiff::Timestamp>().ok();
    match (parse(requested), parse(now)) {
        (Some(requested), Some(now)) => {
            now.as_second() - requested.as_second() >= FINISH_TIMEOUT.as_secs() as i64
        }
        _ => true,
    }
}

/// Adds the `finish` key (the time of the request) to the task ConfigMap `name`, with a merge
/// patch that leaves the task as it is.
async fn request_finish(api: &Api<ConfigMap>, name: &str, ns: &str, at: &str) -> Result<(), Error> {
    let patch = serde_json::json!({"data": {FINISH_FILE_NAME: at}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| Error::Apply {
            what: format!("the finish request in ConfigMap {ns}/{name}"),
            source,
        })?;
    tracing::info!(config_map = name, "asked a continuous backup to finish");
    Ok(())
}

/// A continuous backup with `suspend: true`: the runs it supersedes stop (a running one was
/// first asked to finish, [`finish_previous_continuous`], so its backup is complete), then the
/// phase is `Suspended` and nothing runs. Unsuspending starts a new run: a new backup of the
/// chain, from the log start as every continuous backup.
async fn suspend_continuous(
    cr: &KafkaBackup,
    ctx: &Context,
    run: RunId,
    current: &KafkaBackupStatus,
) -> Result<Action, Error> {
    let this_run = current.common.run.as_deref() == Some(run.to_string().as_str());
    if this_run && current.common.phase == Some(Phase::Suspended) {
        return Ok(Action::await_change());
    }
    if cr.status.is_some() {
        if let Some(action) = worker::supersede(cr, ctx, current, run).await? {
            return Ok(action);
        }
    }
    let mut status = cr.new_run_status();
    let last = status
        .last_backup_id
        .as_deref()
        .map_or(String::new(), |id| format!("; the last backup is {id}"));
    let message =
        format!("continuous backup suspended{last}; set spec.suspend: false to start a new one");
    let common = &mut status.common;
    common.phase = Some(Phase::Suspended);
    common.run = Some(run.to_string());
    common.observed_generation = cr.metadata.generation;
    let previous = current.common.conditions.as_slice();
    common.conditions = st::conditions(
        cr,
        previous,
        &st::now(),
        [true, false, false],
        REASON_SUSPENDED,
        &message,
    );
    let event = (EventType::Normal, REASON_SUSPENDED, "Suspend");
    worker::write_status(cr, ctx, status, Some(event)).await?;
    Ok(Action::await_change())
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

/// `pods` grouped by the Job they belong to (the Job controller's job-name label).
pub fn pods_by_job(pods: Vec<Pod>) -> BTreeMap<String, Vec<Pod>> {
    let mut groups: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
    for pod in pods {
        if let Some(job) = pod.labels().get(JOB_NAME_LABEL).cloned() {
            groups.entry(job).or_default().push(pod);
        }
    }
    groups
}

/// A backup Job that is gone (a CronJob's history limit deletes in the background, so its
/// pods, held by the result finalizer, outlive it) as its `pods` show it, for the scheduled
/// reconcile to record like any ended Job: `None` while a worker still runs. It ended
/// `Complete` when every shard's worker reported its part complete, else `Failed` with
/// `JobDeleted`; it was created when its first pod was, and ended when its last worker did. Its
/// shards are those of `cr`'s run `run` when the pods are of that run, else as many as its
/// pods' completion indexes show.
pub fn gone_job(cr: &KafkaBackup, run: RunId, name: &str, pods: &[Pod]) -> Option<Job> {
    if pods.is_empty() || !pods.iter().all(worker_ended) {
        return None;
    }
    let pod_run = pods.iter().find_map(|p| p.labels().get(RUN_LABEL).cloned());
    let indexed = pods
        .iter()
        .filter_map(|p| p.labels().get(COMPLETION_INDEX_LABEL)?.parse::<u32>().ok())
        .max()
        .map_or(1, |i| i.saturating_add(1));
    let shards = if pod_run.as_deref() == Some(run.to_string().as_str()) {
        cr.shards().max(indexed)
    } else {
        indexed
    };
    let (_, result) = combine(st::shard_results(pods, shards));
    let complete = result.is_ok_and(|r| r.phase == PHASE_COMPLETED);
    let created = pods
        .iter()
        .filter_map(|p| p.metadata.creation_timestamp.clone())
        .min_by_key(|t| t.0);
    let ended = pods
        .iter()
        .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.clone())
        .max_by_key(|t| t.0);
    let (type_, reason, message) = if complete {
        ("Complete", "CompletionsReached", String::new())
    } else {
        (
            "Failed",
            st::REASON_JOB_DELETED,
            format!("Job {name} was deleted before its result was read, and its pods show no complete backup"),
        )
    };
    let mut job = Job::default();
    job.metadata.name = Some(name.to_string());
    job.metadata.creation_timestamp = created.clone();
    job.metadata.labels = pod_run.map(|r| [(RUN_LABEL.to_string(), r)].into());
    if shards > 1 {
        let spec = job.spec.get_or_insert_with(Default::default);
        spec.completion_mode = Some("Indexed".into());
        spec.completions = i32::try_from(shards).ok();
    }
    job.status = Some(JobStatus {
        start_time: created,
        completion_time: ended.clone().filter(|_| complete),
        conditions: Some(vec![JobCondition {
            type_: type_.into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: ended,
            ..JobCondition::default()
        }]),
        ..JobStatus::default()
    });
    Some(job)
}

/// Whether `job` ended and is the `recorded` backup or ended before it: its result is in the
/// status, or never will be (only the newest ended backup is read), so its pods may go.
pub fn recorded_or_older(job: &Job, recorded: Option<&LastRun>) -> bool {
    let Some(recorded) = recorded else {
        return false;
    };
    if st::job_end(job).is_none() {
        return false;
    }
    recorded.job_name == job.name_any()
        || matches!((ended_at(job), &recorded.completion_time), (Some(ended), Some(before)) if ended <= *before)
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
    drill::apply_health(cr, &mut status, now);
    (status, fresh)
}

/// While the newest scheduled backup runs, a worker pod the kubelet cannot start for want of a
/// Secret or key makes `status` `Stalled` with that reason and message (the Job kept, as for
/// any run); the Warning Event to publish with it. The next reconcile after the Secret is fixed
/// computes the conditions afresh.
async fn stall_on_secret(
    cr: &KafkaBackup,
    ctx: &Context,
    ns: &str,
    pods: &BTreeMap<String, Vec<Pod>>,
    status: &mut KafkaBackupStatus,
) -> Result<Option<(EventType, &'static str, &'static str)>, Error> {
    let (Some(Phase::Running), Some(job_name)) = (status.common.phase, &status.common.job_name)
    else {
        return Ok(None);
    };
    let of_job = pods.get(job_name).map_or(&[][..], Vec::as_slice);
    let Some(problem) = worker::pod_secret_problem(ctx, ns, of_job).await? else {
        return Ok(None);
    };
    let field = worker::secret_field(cr, &problem);
    status.common.conditions = st::secret_conditions(cr, job_name, &problem, field, &st::now());
    Ok(Some((EventType::Warning, problem.reason, "ObservePod")))
}

/// The reconcile of a scheduled KafkaBackup: apply the worker ServiceAccount,
/// the run's task ConfigMap and the CronJob; stop nothing that runs, but delete the task
/// ConfigMaps no backup Job needs any more; read the newest ended backup's results once;
/// create its cleanup Job; write the status (`Stalled` while a worker pod waits for a Secret).
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

    // The backups' pods, held by the result finalizer: they give the results, also of a Job
    // that is gone.
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pods = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| Error::Fetch {
            what: format!("the backup pods of {KIND} {ns}/{}", cr.name_any()),
            source,
        })?
        .items;
    let pods = pods_by_job(pods);
    let known: BTreeSet<String> = jobs.iter().map(ResourceExt::name_any).collect();
    let gone = pods
        .iter()
        .filter(|(name, _)| !known.contains(*name))
        .filter_map(|(name, pods)| gone_job(cr, run, name, pods));
    jobs.extend(gone);
    jobs.sort_by_key(|j| {
        (
            j.metadata.creation_timestamp.as_ref().map(|t| t.0),
            j.name_any(),
        )
    });

    let current = cr.status.clone().unwrap_or_default();
    let newest = jobs.last();
    let ended = unrecorded_end(&jobs, current.last_run.as_ref()).map(|(job, end)| {
        let of_job = pods.get(&job.name_any()).map_or(&[][..], Vec::as_slice);
        (job, end, st::shard_results(of_job, st::job_shards(job)))
    });
    let seen = Observed {
        cron_job: &cron_job,
        newest,
        ended,
    };
    let (mut status, fresh) = scheduled_status(cr, run, seen, &st::now());
    let secret_event = stall_on_secret(cr, ctx, &ns, &pods, &mut status).await?;
    if fresh.is_some() {
        warn_of_unexplained_gaps(cr, ctx, &status).await;
    }
    let cleanup_held = if cleanup_pending(&status) {
        observe_cleanup(cr, ctx, &mut status).await?
    } else {
        None
    };
    ensure_cleanup(cr, ctx, &mut status).await?;
    let recorded = status.last_run.clone();

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
    let event = secret_event.or(event);
    if worker::write_status(cr, ctx, status, event).await? {
        if let Some(outcome) = outcome {
            ctx.metrics.job(KIND, outcome);
        }
        // Each scheduled backup that starts gives up what the spec gives up, said once per Job
        // as for a run's Job (TLS verification off).
        if started {
            for w in crate::validate::warnings(cr) {
                ctx.publish(
                    cr,
                    EventType::Warning,
                    w.reason,
                    "ObserveSchedule",
                    &w.message,
                )
                .await;
            }
        }
    }
    // Results now in the status (or never to be read) release their pods and Jobs.
    for job in jobs
        .iter()
        .filter(|j| recorded_or_older(j, recorded.as_ref()))
    {
        let of_job = pods.get(&job.name_any()).map_or(&[][..], Vec::as_slice);
        let real = known.contains(&job.name_any()).then_some(job);
        worker::release_all(ctx, &ns, of_job, real).await?;
    }
    if let Some((pods, job)) = cleanup_held {
        worker::release_all(ctx, &ns, &pods, job.as_ref()).await?;
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

    /// A pod of Job `job` of run g1-r0 (shard `index`), created at `created`, its worker
    /// terminated at `finished` with `result`, or running.
    fn pod(job: &str, index: u32, created: &str, ended: Option<(&str, Value)>) -> Pod {
        let state = match &ended {
            Some((at, r)) => json!({"terminated": {"exitCode": 0, "finishedAt": at,
                                                   "message": r.to_string()}}),
            None => json!({"running": {}}),
        };
        serde_json::from_value(json!({
            "metadata": {"name": format!("{job}-{index}"), "creationTimestamp": created,
                         "labels": {"batch.kubernetes.io/job-name": job,
                                    "batch.kubernetes.io/job-completion-index": index.to_string(),
                                    "tidemark.dev/run": "g1-r0"}},
            "status": {"phase": if ended.is_some() { "Succeeded" } else { "Running" },
                       "containerStatuses": [{"name": "tidemark", "image": "", "imageID": "",
                                              "ready": false, "restartCount": 0, "state": state}]}
        }))
        .expect("pod")
    }

    #[test]
    fn a_gone_job_is_read_from_its_pods_once_every_worker_ended() {
        let cr = kb(BACKUP_HOURLY_INCREMENTAL_GCS);
        let name = "events-hourly-1a2b3c4d-28886400";
        let done = |i: u32, at: &str| {
            pod(
                name,
                i,
                "2024-12-01T12:00:01Z",
                Some((at, backup_result(i, name, 10, true))),
            )
        };
        let mut pods = vec![
            done(0, "2024-12-01T12:10:00Z"),
            done(1, "2024-12-01T12:20:00Z"),
            pod(name, 2, "2024-12-01T12:00:02Z", None),
        ];
        assert_eq!(gone_job(&cr, RUN, name, &pods), None, "shard 2 still runs");

        pods[2] = done(2, "2024-12-01T12:15:00Z");
        let read = gone_job(&cr, RUN, name, &pods).expect("ended");
        assert_eq!(st::job_end(&read), Some(JobEnd::Complete));
        assert_eq!(st::job_shards(&read), 3);
        assert_eq!(ended_at(&read).as_deref(), Some("2024-12-01T12:20:00Z"));
        assert_eq!(
            read.labels().get(RUN_LABEL).map(String::as_str),
            Some("g1-r0")
        );

        // A shard missing or not complete: the Job was deleted before the backup completed.
        let deleted = gone_job(&cr, RUN, name, &pods[..2]).expect("ended");
        match st::job_end(&deleted) {
            Some(JobEnd::Failed { reason, .. }) => assert_eq!(reason, st::REASON_JOB_DELETED),
            other => panic!("{other:?}"),
        }
        let recorded = LastRun {
            job_name: "another".into(),
            phase: Phase::Completed,
            reason: REASON_BACKUP_COMPLETED.into(),
            message: "done".into(),
            completion_time: Some("2024-12-01T12:20:00Z".into()),
        };
        assert!(recorded_or_older(&deleted, Some(&recorded)));
        assert!(!recorded_or_older(&deleted, None), "nothing recorded yet");
        let running = job(&cr, name, "2024-12-01T12:00:00Z", None);
        assert!(
            !recorded_or_older(&running, Some(&recorded)),
            "a running Job is never released"
        );
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

//! The restore drills of a KafkaBackup (`spec.drill`), reconciled before its backups on every
//! reconcile of the resource:
//!
//! 1. **Count** the successful backups since the newest drill started (from `status.lastRun`,
//!    which the backup reconcile writes once per finished backup).
//! 2. **Observe** the running drill Job: once it ended, its pod's result (the worker's
//!    `TaskResult.drill`) becomes `status.lastDrill`, with a `DrillSucceeded` Event or a
//!    `DrillFailed` Warning Event and the drill gauges. While it runs, a pod that cannot start
//!    for want of a Secret is reported (`status.drill.waiting`, `DrillSecretMissing`), and the
//!    Job looked at again, as pods are not watched.
//! 3. **Start** a drill when one is due and none runs (at most one at a time): on
//!    `spec.drill.schedule` (croner, in UTC; a time missed while a drill ran or the drills were
//!    suspended runs once) or after `afterEveryBackups` successful backups, once a complete
//!    backup exists. The drill task ConfigMap is applied, then the Job.
//! 4. **Health**: the `DrillVerified` condition follows `status.lastDrill`; a failed drill (or
//!    one over `maxRpoSeconds`/`maxRtoSeconds`) also turns an otherwise ready KafkaBackup
//!    `Ready=False`/`Stalled=True`, so Argo CD and Flux show it Degraded, until a drill succeeds
//!    ([`apply_health`], also applied by the backup reconcile to every status it computes).
//!
//! The status is written once when anything changed; the reconcile of the backups then goes on
//! from the status as written.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::{tz::TimeZone, Timestamp};
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use tidemark_task::{ResultDrill, TaskResult, PHASE_COMPLETED};

use super::backup::{worker_ended, Held};
use super::status::{self as st, clamp, JobEnd};
use super::{worker, Context, Error, RUNNING_POLL, SECRET_POLL};
use crate::build::drill::{drill_config_map, drill_id, drill_job};
use crate::build::{self};
use crate::crd::backup::{DrillSpec, DrillStatus, KafkaBackupStatus, LastDrill};
use crate::crd::status::{Condition, Phase};
use crate::crd::KafkaBackup;
use crate::metrics::DrillFigures;

/// The condition that says whether the newest drill verified the backup within its limits.
pub const DRILL_VERIFIED: &str = "DrillVerified";
/// Reason (condition and Event) of a drill that verified the backup within its limits.
pub const REASON_DRILL_SUCCEEDED: &str = "DrillSucceeded";
/// Reason (condition and Warning Event) of a drill that failed: records that did not match,
/// offsets that did not check, a corrupted segment, or a Job that failed.
pub const REASON_DRILL_FAILED: &str = "DrillFailed";
/// Condition reason of a drill whose RPO exceeded `spec.drill.maxRpoSeconds`.
pub const REASON_RPO_EXCEEDED: &str = "DrillRpoExceeded";
/// Condition reason of a drill whose restore exceeded `spec.drill.maxRtoSeconds`.
pub const REASON_RTO_EXCEEDED: &str = "DrillRtoExceeded";
/// Event reason when a drill Job is created.
pub const REASON_DRILL_STARTED: &str = "DrillStarted";
/// Condition reason (and Warning Event) while the running drill's pod cannot start because a
/// Secret or entry it references is missing.
pub const REASON_DRILL_SECRET_MISSING: &str = "DrillSecretMissing";
/// The reasons a failed drill puts on `Ready` and `Stalled`.
pub const FAILED_REASONS: [&str; 4] = [
    REASON_DRILL_FAILED,
    REASON_RPO_EXCEEDED,
    REASON_RTO_EXCEEDED,
    REASON_DRILL_SECRET_MISSING,
];

/// The longest a scheduled drill waits to be looked at again (the watch events of the
/// resource and its Jobs come in between).
pub const DRILL_POLL: Duration = Duration::from_secs(300);

/// What [`reconcile`] leaves: the resource with its status as written, and when to look again
/// for the next scheduled drill.
pub struct Reconciled {
    pub cr: KafkaBackup,
    pub requeue: Option<Duration>,
}

/// One reconcile of `cr`'s drills (see the module documentation). Nothing without
/// `spec.drill`, or before the resource has a status (its first reconcile writes one).
pub async fn reconcile(cr: &KafkaBackup, ctx: &Context) -> Result<Reconciled, Error> {
    let unchanged = || Reconciled {
        cr: cr.clone(),
        requeue: None,
    };
    let Some(current) = cr.status.as_ref() else {
        return Ok(unchanged());
    };
    let enabled = cr.spec.drill.is_some();
    let mut drill = current.drill.clone().unwrap_or_default();
    let shown = current
        .common
        .conditions
        .iter()
        .any(|c| c.type_ == DRILL_VERIFIED);
    // Without spec.drill, a drill still running is recorded and a stale condition removed.
    if !enabled && !running(&drill) && !shown {
        return Ok(unchanged());
    }
    let spec = cr.spec.drill.clone().unwrap_or_default();
    let spec = &spec;
    let ns = build::namespace(cr).map_err(Error::Build)?;
    let now = Timestamp::now();
    let now_text = text(now);
    let mut status = current.clone();
    if enabled {
        drill.since.get_or_insert_with(|| now_text.clone());
        count_backups(&mut drill, &status);
    }

    let mut events = Vec::new();
    let mut held = None;
    if let Some(job_name) = drill.job_name.clone().filter(|_| running(&drill)) {
        match observe(ctx, &ns, &job_name).await? {
            Some((end, result, h)) => {
                let last = record(cr, &mut drill, &job_name, &end, result, &now_text);
                drill.waiting = None;
                events.push(drill_event(&last));
                status.last_drill = Some(last);
                held = Some(h);
            }
            None => {
                let waiting = waiting_for_secret(ctx, &ns, &job_name).await?;
                if waiting.is_some() && waiting != drill.waiting {
                    let note = st::cap(waiting.as_deref().unwrap_or_default(), st::MAX_EVENT_NOTE);
                    events.push((EventType::Warning, REASON_DRILL_SECRET_MISSING, note));
                }
                drill.waiting = waiting;
            }
        }
    }
    if enabled && !running(&drill) && due(spec, &drill, &status, now) {
        events.push(start(cr, ctx, &ns, &mut drill, &now_text).await?);
    }
    drill.next_schedule_time = next_due(spec, &drill).map(text);
    status.drill = (enabled || running(&drill)).then(|| drill.clone());
    apply_health(cr, &mut status, &now_text);

    if &status != current {
        worker::write_status(cr, ctx, status.clone(), None).await?;
        for (type_, reason, note) in events {
            ctx.publish(cr, type_, reason, "ObserveDrill", &note).await;
        }
    }
    if let Some(figures) = status.last_drill.as_ref().and_then(figures) {
        ctx.metrics.drill(&ns, &cr.name_any(), figures);
    }
    if let Some((pods, job)) = held {
        worker::release_all(ctx, &ns, &pods, job.as_ref()).await?;
    }
    // A running drill is looked at again: its pod may wait for a Secret (the pod is not
    // watched); else the next scheduled drill's time.
    let requeue = if running(&drill) {
        Some(if drill.waiting.is_some() {
            SECRET_POLL
        } else {
            RUNNING_POLL
        })
    } else {
        (enabled && !spec.suspend)
            .then(|| next_due(spec, &drill))
            .flatten()
            .map(|next| wait_until(now, next))
    };
    let mut cr = cr.clone();
    cr.status = Some(status);
    Ok(Reconciled { cr, requeue })
}

fn running(drill: &DrillStatus) -> bool {
    drill.phase == Some(Phase::Running)
}

/// `t` as status text (RFC 3339, whole seconds, UTC).
fn text(t: Timestamp) -> String {
    st::timestamp(&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t))
}

/// Status text as a time.
fn parse(t: &str) -> Option<Timestamp> {
    t.parse().ok()
}

/// How long from `now` until `next`, at most [`DRILL_POLL`] and at least a second.
fn wait_until(now: Timestamp, next: Timestamp) -> Duration {
    let secs = next.as_second().saturating_sub(now.as_second()).max(1);
    Duration::from_secs(u64::try_from(secs).unwrap_or(1)).min(DRILL_POLL)
}

/// Counts the newest backup in `status.lastRun` once, when it succeeded.
pub fn count_backups(drill: &mut DrillStatus, status: &KafkaBackupStatus) {
    let Some(last) = status
        .last_run
        .as_ref()
        .filter(|r| r.phase == Phase::Completed)
    else {
        return;
    };
    if drill.counted_backup.as_deref() != Some(last.job_name.as_str()) {
        drill.counted_backup = Some(last.job_name.clone());
        drill.backups_since_drill = drill.backups_since_drill.saturating_add(1);
    }
}

/// The cron schedule of `spec.drill.schedule` (validated before any reconcile gets here).
fn cron(schedule: &str) -> Option<croner::Cron> {
    let schedule = if schedule.trim().eq_ignore_ascii_case("@midnight") {
        "0 0 * * *"
    } else {
        schedule
    };
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(schedule)
        .ok()
}

/// When the next scheduled drill is due: the first time of the schedule after the newest
/// drill started (or after drills were first seen). `None` without a schedule.
pub fn next_due(spec: &DrillSpec, drill: &DrillStatus) -> Option<Timestamp> {
    let cron = cron(spec.schedule.as_deref()?)?;
    let from = drill.start_time.as_deref().or(drill.since.as_deref())?;
    let from = parse(from)?.to_zoned(TimeZone::UTC);
    cron.find_next_occurrence(&from, false)
        .ok()
        .map(|z| z.timestamp())
}

/// Whether a drill is due at `now` (none running): not suspended, a complete backup exists,
/// and the schedule's time has come or `afterEveryBackups` backups succeeded since the newest
/// drill started.
pub fn due(
    spec: &DrillSpec,
    drill: &DrillStatus,
    status: &KafkaBackupStatus,
    now: Timestamp,
) -> bool {
    if spec.suspend || status.last_successful_time.is_none() {
        return false;
    }
    if let Some(n) = spec.after_every_backups {
        return drill.backups_since_drill >= i64::from(n.max(1));
    }
    next_due(spec, drill).is_some_and(|next| next <= now)
}

/// Creates the next drill: its task ConfigMap and Job, numbered after the drills started so
/// far; `drill` records it. Returns its Event.
async fn start(
    cr: &KafkaBackup,
    ctx: &Context,
    ns: &str,
    drill: &mut DrillStatus,
    now: &str,
) -> Result<(EventType, &'static str, String), Error> {
    let n = drill.started.saturating_add(1);
    let id = drill_id(cr, n).map_err(Error::Build)?;
    let config_map = drill_config_map(cr, &id).map_err(Error::Build)?;
    let job = drill_job(cr, n, &ctx.config).map_err(Error::Build)?;
    let (Some(config_map), Some(job)) = (config_map, job) else {
        return Err(Error::Build(build::Error::MissingField("spec.drill")));
    };
    worker::apply_child(cr, ctx, ns, &config_map).await?;
    worker::apply_child(cr, ctx, ns, &job).await?;
    let job_name = job.name_any();
    let why = match cr.spec.drill.as_ref().and_then(|d| d.after_every_backups) {
        Some(n) => format!("after {n} successful backups"),
        None => "on schedule".to_string(),
    };
    *drill = DrillStatus {
        job_name: Some(job_name.clone()),
        drill_id: Some(id.clone()),
        phase: Some(Phase::Running),
        start_time: Some(now.to_string()),
        started: n,
        backups_since_drill: 0,
        ..drill.clone()
    };
    Ok((
        EventType::Normal,
        REASON_DRILL_STARTED,
        format!(
            "Job {job_name} runs restore drill {id} {why}: the newest complete backup of chain {} into scratch topics",
            build::backup::chain(cr).map_err(Error::Build)?
        ),
    ))
}

/// Why the pod of the running drill Job `job_name` cannot start, when a Secret or entry it
/// references is missing (what the kubelet reports; the operator never reads Secrets).
async fn waiting_for_secret(
    ctx: &Context,
    ns: &str,
    job_name: &str,
) -> Result<Option<String>, Error> {
    let pods = worker::job_pods(ctx, ns, job_name).await?;
    let problem = worker::pod_secret_problem(ctx, ns, &pods).await?;
    Ok(problem.map(|p| {
        format!(
            "the pod of drill Job {job_name} cannot start: {} (Secret {}); it starts once the Secret exists",
            p.kubelet_message, p.secret
        )
    }))
}

/// Reads the drill Job `job_name` once it ended: how (`None`: gone), its pod's result, and
/// what holds it. A Job gone before it ended is judged by its pod's result; one whose pod
/// still runs is waited for. `None` while it runs.
async fn observe(
    ctx: &Context,
    ns: &str,
    job_name: &str,
) -> Result<Option<(Option<JobEnd>, Result<TaskResult, String>, Held)>, Error> {
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    let job = worker::get_job(&jobs, job_name, ns).await?;
    let end = job.as_ref().and_then(st::job_end);
    if end.is_none()
        && job
            .as_ref()
            .is_some_and(|j| j.meta().deletion_timestamp.is_none())
    {
        return Ok(None);
    }
    let pods = worker::job_pods(ctx, ns, job_name).await?;
    if end.is_none() && !pods.iter().all(worker_ended) {
        return Ok(None);
    }
    let result = st::single_result(st::shard_results(&pods, 1));
    let completed = result.as_ref().is_ok_and(|r| r.phase == PHASE_COMPLETED);
    let end = end.or_else(|| completed.then_some(JobEnd::Complete));
    let result = match (&job, result) {
        (None, Err(why)) if pods.is_empty() => Err(format!(
            "its Job {job_name} is gone and left no pod ({why})"
        )),
        (_, result) => result,
    };
    Ok(Some((end, result, (pods, job))))
}

/// The drill of Job `job_name` ended (`end`, `None`: gone) with `result` at `now`: what
/// `status.lastDrill` says of it. `drill` marks it Completed or Failed.
pub fn record(
    cr: &KafkaBackup,
    drill: &mut DrillStatus,
    job_name: &str,
    end: &Option<JobEnd>,
    result: Result<TaskResult, String>,
    now: &str,
) -> LastDrill {
    let spec = cr.spec.drill.clone().unwrap_or_default();
    let found = result.as_ref().ok().and_then(|r| r.drill.clone());
    let d = found.clone().unwrap_or_default();
    let job_ok = matches!(end, Some(JobEnd::Complete))
        && result.as_ref().is_ok_and(|r| r.phase == PHASE_COMPLETED);
    let over = |value: Option<f64>, max: Option<i64>| match (value, max) {
        (Some(v), Some(m)) => v > m as f64,
        _ => false,
    };
    let rpo_over = over(d.rpo_seconds, spec.max_rpo_seconds);
    let rto_over = found.is_some() && over(Some(d.rto_seconds), spec.max_rto_seconds);
    let verified = job_ok && d.verified && found.is_some();
    let id = d.drill_id.clone();
    let of = format!("drill {id} of backup {}", d.backup_id);
    let (reason, message) = if rpo_over {
        (
            REASON_RPO_EXCEEDED,
            format!(
                "{of}: the newest backed-up record was {:.0} s old, over spec.drill.maxRpoSeconds {}",
                d.rpo_seconds.unwrap_or_default(),
                spec.max_rpo_seconds.unwrap_or_default()
            ),
        )
    } else if rto_over {
        (
            REASON_RTO_EXCEEDED,
            format!(
                "{of}: the restore took {:.1} s, over spec.drill.maxRtoSeconds {}",
                d.rto_seconds,
                spec.max_rto_seconds.unwrap_or_default()
            ),
        )
    } else if verified {
        (REASON_DRILL_SUCCEEDED, succeeded_message(&of, &d))
    } else {
        (
            REASON_DRILL_FAILED,
            failed_message(job_name, end, &result, &d),
        )
    };
    let failed = reason != REASON_DRILL_SUCCEEDED;
    drill.phase = Some(if failed {
        Phase::Failed
    } else {
        Phase::Completed
    });
    LastDrill {
        time: Some(now.to_string()),
        job_name: job_name.to_string(),
        drill_id: found
            .as_ref()
            .map(|d| d.drill_id.clone())
            .filter(|i| !i.is_empty())
            .or_else(|| drill.drill_id.clone()),
        backup_id: found
            .as_ref()
            .map(|d| d.backup_id.clone())
            .filter(|b| !b.is_empty()),
        records: found.as_ref().map(|d| clamp(d.records)),
        bytes: found.as_ref().map(|d| clamp(d.bytes)),
        partitions: found.as_ref().map(|d| clamp(d.partitions)),
        verified: !failed,
        rto_seconds: found.as_ref().map(|d| d.rto_seconds),
        rpo_seconds: d.rpo_seconds,
        throughput: found.as_ref().map(|d| clamp(d.bytes_per_second)),
        failures: d.failures.clone(),
        cleaned_up: found.as_ref().map(|d| d.cleaned_up),
        reason: reason.to_string(),
        message: st::cap(&message, st::MAX_STATUS_MESSAGE),
    }
}

fn succeeded_message(of: &str, d: &ResultDrill) -> String {
    let rpo = d
        .rpo_seconds
        .map(|r| format!(", RPO {r:.0} s"))
        .unwrap_or_default();
    let cleanup = if d.cleaned_up {
        "scratch topics and groups deleted"
    } else {
        "some scratch topics or groups were left behind (see the drill report)"
    };
    format!(
        "{of} verified {} records ({} bytes) in {} partitions and the offsets of {} groups; RTO {:.1} s{rpo}, {} bytes/s; {cleanup}",
        d.records, d.bytes, d.partitions, d.groups_checked, d.rto_seconds, d.bytes_per_second
    )
}

fn failed_message(
    job_name: &str,
    end: &Option<JobEnd>,
    result: &Result<TaskResult, String>,
    d: &ResultDrill,
) -> String {
    let why = match (result, end) {
        (Ok(r), _) if !r.message.is_empty() => r.message.clone(),
        (Ok(_), Some(JobEnd::Failed { reason, message })) => format!("{reason}: {message}"),
        (Ok(_), _) => "the worker did not report the drill verified".to_string(),
        (Err(why), _) => format!("no result was read ({why}); see the pod's log"),
    };
    let failures = if d.failures.is_empty() {
        String::new()
    } else {
        format!(
            " ({} failures: {})",
            d.failures_total.max(d.failures.len() as u64),
            d.failures.join("; ")
        )
    };
    format!("drill Job {job_name} failed: {why}{failures}")
}

/// The Event of a recorded drill.
fn drill_event(last: &LastDrill) -> (EventType, &'static str, String) {
    let note = st::cap(&last.message, st::MAX_EVENT_NOTE);
    if last.verified {
        (EventType::Normal, REASON_DRILL_SUCCEEDED, note)
    } else {
        (EventType::Warning, REASON_DRILL_FAILED, note)
    }
}

/// What the drill gauges show of `last`.
fn figures(last: &LastDrill) -> Option<DrillFigures> {
    let time = parse(last.time.as_deref()?)?;
    Some(DrillFigures {
        time: time.as_second() as f64,
        rto_seconds: last.rto_seconds,
        rpo_seconds: last.rpo_seconds,
        verified: last.verified,
    })
}

/// The `DrillVerified` condition and the health of `status`, from `status.lastDrill` (or,
/// while the running drill's pod waits for a missing Secret, from `status.drill.waiting`): no
/// condition without `spec.drill` or before the first drill ended; a failed drill turns a
/// `Ready` status `Ready=False`/`Stalled=True` with its reason and message, and a later
/// successful one gives `Ready` back (with the newest backup's outcome, `status.lastRun`).
pub fn apply_health(cr: &KafkaBackup, status: &mut KafkaBackupStatus, now: &str) {
    let generation = cr.metadata.generation;
    let conditions = &mut status.common.conditions;
    let previous = conditions
        .iter()
        .find(|c| c.type_ == DRILL_VERIFIED)
        .cloned();
    conditions.retain(|c| c.type_ != DRILL_VERIFIED);
    if cr.spec.drill.is_none() {
        return;
    }
    let waiting = status.drill.as_ref().and_then(|d| d.waiting.clone());
    let last = match (waiting, status.last_drill.as_ref()) {
        (Some(message), _) => LastDrill {
            verified: false,
            reason: REASON_DRILL_SECRET_MISSING.to_string(),
            message,
            ..LastDrill::default()
        },
        (None, Some(last)) => last.clone(),
        (None, None) => return,
    };
    let last = &last;
    let verified = if last.verified { "True" } else { "False" };
    let transition = previous
        .filter(|c| c.status == verified)
        .map_or_else(|| now.to_string(), |c| c.last_transition_time);
    conditions.push(Condition {
        type_: DRILL_VERIFIED.to_string(),
        status: verified.to_string(),
        reason: last.reason.clone(),
        message: last.message.clone(),
        last_transition_time: transition,
        observed_generation: generation,
    });
    let flag = |conditions: &[Condition], type_: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status == "True", c.reason.clone()))
    };
    let ready = flag(conditions, st::READY);
    let reconciling = flag(conditions, st::RECONCILING).is_some_and(|(on, _)| on);
    let stalled = flag(conditions, st::STALLED);
    if !last.verified && ready.as_ref().is_some_and(|(on, _)| *on) && !reconciling {
        set(
            conditions,
            st::READY,
            false,
            &last.reason,
            &last.message,
            now,
        );
        set(
            conditions,
            st::STALLED,
            true,
            &last.reason,
            &last.message,
            now,
        );
        return;
    }
    let drill_stalled = stalled
        .as_ref()
        .is_some_and(|(on, reason)| *on && FAILED_REASONS.contains(&reason.as_str()));
    let backup_ok = status
        .last_run
        .as_ref()
        .filter(|r| r.phase == Phase::Completed);
    if let (true, true, Some(run)) = (last.verified, drill_stalled, backup_ok) {
        let (reason, message) = (run.reason.clone(), run.message.clone());
        set(conditions, st::READY, true, &reason, &message, now);
        set(conditions, st::STALLED, false, &reason, &message, now);
    }
}

/// Sets the condition `type_` in `conditions` (keeping its transition time while its status
/// holds).
fn set(
    conditions: &mut [Condition],
    type_: &str,
    on: bool,
    reason: &str,
    message: &str,
    now: &str,
) {
    let status = if on { "True" } else { "False" };
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status != status {
            c.last_transition_time = now.to_string();
        }
        c.status = status.to_string();
        c.reason = reason.to_string();
        c.message = message.to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::*;

    fn at(t: &str) -> Timestamp {
        t.parse().expect("a time")
    }

    fn spec(schedule: Option<&str>, after: Option<i32>) -> DrillSpec {
        DrillSpec {
            schedule: schedule.map(str::to_string),
            after_every_backups: after,
            ..DrillSpec::default()
        }
    }

    #[test]
    fn a_schedule_counts_from_the_newest_drill_or_from_when_drills_were_first_seen() {
        let mut drill = DrillStatus {
            since: Some("2024-12-01T00:00:00Z".into()),
            ..DrillStatus::default()
        };
        let weekly = spec(Some("0 4 * * 0"), None);
        assert_eq!(next_due(&weekly, &drill), Some(at("2024-12-01T04:00:00Z")));
        drill.start_time = Some("2024-12-01T04:00:00Z".into());
        assert_eq!(next_due(&weekly, &drill), Some(at("2024-12-08T04:00:00Z")));
        for (macro_, next) in [
            ("@midnight", "2024-12-02T00:00:00Z"),
            ("@daily", "2024-12-02T00:00:00Z"),
            ("@hourly", "2024-12-01T05:00:00Z"),
            ("@weekly", "2024-12-08T00:00:00Z"),
        ] {
            assert_eq!(
                next_due(&spec(Some(macro_), None), &drill),
                Some(at(next)),
                "{macro_}"
            );
        }
        assert_eq!(next_due(&spec(None, Some(3)), &drill), None);
    }

    #[test]
    fn a_drill_is_due_only_once_a_backup_succeeded() {
        let drill = DrillStatus {
            since: Some("2024-12-01T00:00:00Z".into()),
            backups_since_drill: 2,
            ..DrillStatus::default()
        };
        let mut status = KafkaBackupStatus::default();
        let now = at("2024-12-01T05:00:00Z");
        let weekly = spec(Some("0 4 * * 0"), None);
        assert!(!due(&weekly, &drill, &status, now), "no backup yet");
        status.last_successful_time = Some("2024-12-01T03:00:00Z".into());
        assert!(due(&weekly, &drill, &status, now));
        assert!(!due(&weekly, &drill, &status, at("2024-12-01T03:59:59Z")));
        assert!(due(&spec(None, Some(2)), &drill, &status, now));
        assert!(!due(&spec(None, Some(3)), &drill, &status, now));
        let mut suspended = spec(None, Some(2));
        suspended.suspend = true;
        assert!(!due(&suspended, &drill, &status, now));
    }

    #[test]
    fn a_drill_over_max_rto_fails_and_one_without_a_result_says_why() {
        let mut cr = kb(BACKUP_DRILL);
        if let Some(d) = cr.spec.drill.as_mut() {
            d.max_rpo_seconds = None;
            d.max_rto_seconds = Some(10);
        }
        let result = TaskResult {
            phase: PHASE_COMPLETED.into(),
            drill: Some(ResultDrill {
                drill_id: "1-x".into(),
                backup_id: "b-1".into(),
                verified: true,
                rto_seconds: 12.5,
                ..ResultDrill::default()
            }),
            ..TaskResult::default()
        };
        let mut drill = DrillStatus::default();
        let end = Some(JobEnd::Complete);
        let last = record(
            &cr,
            &mut drill,
            "j",
            &end,
            Ok(result),
            "2024-12-01T05:00:00Z",
        );
        assert!(!last.verified);
        assert_eq!(last.reason, REASON_RTO_EXCEEDED);
        assert!(
            last.message
                .contains("the restore took 12.5 s, over spec.drill.maxRtoSeconds 10"),
            "{}",
            last.message
        );
        assert_eq!(drill.phase, Some(Phase::Failed));

        let gone = record(
            &cr,
            &mut drill,
            "j",
            &None,
            Err("no terminated worker container was found".into()),
            "2024-12-01T05:00:00Z",
        );
        assert_eq!(gone.reason, REASON_DRILL_FAILED);
        assert_eq!(gone.records, None);
        assert!(
            gone.message.starts_with(
                "drill Job j failed: no result was read (no terminated worker container was found)"
            ),
            "{}",
            gone.message
        );
    }
}

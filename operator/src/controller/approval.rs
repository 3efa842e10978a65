//! Plan, then approve (`spec.approval: Manual`), between a run's start and its Job: [`gate`]
//! runs in [`super::worker::run_once`] just before a run that has not started would start.
//!
//! 1. No plan for the run yet: the planning Job ([`crate::build::approval`]) is applied; the
//!    run is `Pending` with `Planning` (an Event says so).
//! 2. The planning Job ended: its result's plan goes into `status.plan` (hash, key, created,
//!    expires, summary, counts), the phase becomes `AwaitingApproval` with the condition
//!    `AwaitingApproval=True`, and an Event `PlanReady` says how to approve. A planning Job that
//!    failed fails the run (`PlanFailed`), like a failed run.
//! 3. Waiting: the annotation `tidemark.dev/approve` naming the plan's hash lets the run start
//!    (its task carries `approvedPlan`); a value naming another hash is ignored with one
//!    Warning Event per value (`ApprovalIgnored`); a plan older than `spec.approvalTimeout` is
//!    made again (`PlanExpired`).
//!
//! A run whose worker refuses the approved plan because the cluster no longer matches it (exit
//! 15) plans again and waits again ([`plan_changed`], Event `PlanInvalidated`); a new
//! generation is a new run, so a spec change plans again too. Nothing here runs for an
//! `Automatic` resource, whatever its annotations say.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tidemark_task::durations::parse_age;
use tidemark_task::{ResultPlan, TaskResult, PHASE_COMPLETED};

use super::status::{self as st, clamp};
use super::{worker, Context, Error, RunKind, POD_START_POLL, PREVIOUS_RUN_POLL, SECRET_POLL};
use crate::build::approval::{plan_config_map_name, planning_children};
use crate::build::job::RESULT_FINALIZER;
use crate::build::{self, RunId, RUN_ANNOTATION};
use crate::crd::approval::{approval_timeout, PlanStatus, APPROVE_ANNOTATION};
use crate::crd::status::{Condition, Phase, RunStatus};

/// The condition a `Manual` run has while its plan waits for a person.
pub const AWAITING_APPROVAL: &str = "AwaitingApproval";
/// A planning Job runs.
pub const REASON_PLANNING: &str = "Planning";
/// The plan is in `status.plan`, waiting for its approval (condition reason and Event).
pub const REASON_PLAN_READY: &str = "PlanReady";
/// The planning Job failed, or left no plan: the run failed.
pub const REASON_PLAN_FAILED: &str = "PlanFailed";
/// `tidemark.dev/approve` named the plan's hash: the run starts.
pub const REASON_PLAN_APPROVED: &str = "PlanApproved";
/// `tidemark.dev/approve` named another hash: ignored (a Warning Event per value).
pub const REASON_APPROVAL_IGNORED: &str = "ApprovalIgnored";
/// The plan was not approved within `spec.approvalTimeout`: planned again.
pub const REASON_PLAN_EXPIRED: &str = "PlanExpired";
/// The run refused the approved plan (the cluster changed what it depends on): planned again.
pub const REASON_PLAN_INVALIDATED: &str = "PlanInvalidated";

/// Longest wait before a plan waiting for approval is looked at again (its expiry, an
/// annotation change or a spec change wake it sooner).
const AWAITING_POLL: Duration = Duration::from_secs(3600);

/// What a `Manual` run does next, from its plan (`status.plan` of this run), the approval
/// annotation and the clock ([`stage`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Apply planning Job `attempt`; `why` is the re-plan's Event (reason), if it is one.
    Plan {
        attempt: i64,
        why: Option<&'static str>,
    },
    /// The planning Job `.0` runs (or has ended, to be recorded).
    Planning(String),
    /// The plan is approved: start the run.
    Approved,
    /// The annotation names another hash, not warned about yet.
    Ignored(String),
    /// Waiting for an approval, at most this long (then the plan expires).
    Waiting(Duration),
}

/// What a `Manual` run does next: `plan` is `status.plan` when it is this run's, `approve` the
/// [`APPROVE_ANNOTATION`] value.
pub fn stage(plan: Option<&PlanStatus>, approve: Option<&str>, now: Timestamp) -> Stage {
    let Some(plan) = plan else {
        return Stage::Plan {
            attempt: 1,
            why: None,
        };
    };
    let attempt = plan.attempt.unwrap_or(1);
    let Some(hash) = plan.hash.as_deref() else {
        return match &plan.job_name {
            Some(job) => Stage::Planning(job.clone()),
            None => Stage::Plan { attempt, why: None },
        };
    };
    let expires = plan
        .expires
        .as_deref()
        .and_then(|e| e.parse::<Timestamp>().ok());
    let left = expires.map(|e| now.duration_until(e));
    if left.is_some_and(|l| l <= SignedDuration::ZERO) {
        return Stage::Plan {
            attempt: attempt + 1,
            why: Some(REASON_PLAN_EXPIRED),
        };
    }
    match approve.map(str::trim) {
        Some(value) if value == hash => Stage::Approved,
        Some(value) if plan.ignored_approval.as_deref() != Some(value) => {
            Stage::Ignored(value.to_string())
        }
        _ => Stage::Waiting(
            left.and_then(|l| Duration::try_from(l).ok())
                .map_or(AWAITING_POLL, |l| l.min(AWAITING_POLL)),
        ),
    }
}

/// The plan of `cr`'s run `run` in `status`, if it is that run's.
fn run_plan<K: RunKind>(status: &K::Status, run: RunId) -> Option<&PlanStatus> {
    K::plan(status).filter(|p| p.run.as_deref() == Some(run.to_string().as_str()))
}

/// Whether `cr`'s runs wait for an approval.
pub fn manual<K: RunKind>(cr: &K) -> bool {
    cr.approval().is_some_and(|(a, _)| a.is_manual())
}

/// Before run `run` of `cr` starts: `None` starts it (an `Automatic` resource, or an approved
/// plan); else the action while it plans or waits (the status says which).
pub async fn gate<K: RunKind>(cr: &K, ctx: &Context, run: RunId) -> Result<Option<Action>, Error> {
    if !manual(cr) {
        return Ok(None);
    }
    let current = cr.status().cloned().unwrap_or_default();
    let plan = run_plan::<K>(&current, run);
    let approve = cr.annotations().get(APPROVE_ANNOTATION).map(String::as_str);
    match stage(plan, approve, Timestamp::now()) {
        Stage::Plan { attempt, why } => {
            let note = why.map(|reason| (reason, replan_note(reason, plan)));
            start_planning(cr, ctx, run, attempt, note).await.map(Some)
        }
        Stage::Planning(job) => observe_planning(cr, ctx, &current, &job).await.map(Some),
        Stage::Approved => {
            if let Some(job) = plan.and_then(|p| p.job_name.as_deref()) {
                release_planning_job(cr, ctx, job).await?;
            }
            let hash = plan.and_then(|p| p.hash.clone()).unwrap_or_default();
            let note = format!("plan {hash} of run {run} is approved; its Job starts");
            ctx.publish(
                cr,
                EventType::Normal,
                REASON_PLAN_APPROVED,
                "Approve",
                &note,
            )
            .await;
            Ok(None)
        }
        Stage::Ignored(value) => ignore(cr, ctx, &current, &value).await.map(Some),
        Stage::Waiting(left) => Ok(Some(Action::requeue(left))),
    }
}

/// Before the approved run starts: the planning Job `job_name` and its pods lose their result
/// finalizer if they still hold it (the operator may have stopped between recording the plan
/// and releasing them). A Job without it means its pods were released first.
async fn release_planning_job<K: RunKind>(
    cr: &K,
    ctx: &Context,
    job_name: &str,
) -> Result<(), Error> {
    let ns = build::namespace(cr).map_err(Error::Build)?;
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let job = worker::get_job(&jobs, job_name, &ns).await?;
    let held = |j: &Job| j.finalizers().iter().any(|f| f == RESULT_FINALIZER);
    if let Some(job) = job.filter(held) {
        let pods = worker::job_pods(ctx, &ns, job_name).await?;
        worker::release_all(ctx, &ns, &pods, Some(&job)).await?;
    }
    Ok(())
}

/// The Event note of a re-plan for `reason`.
fn replan_note(reason: &str, plan: Option<&PlanStatus>) -> String {
    let hash = plan.and_then(|p| p.hash.as_deref()).unwrap_or("-");
    match reason {
        REASON_PLAN_EXPIRED => format!(
            "plan {hash} was not approved before it expired ({}); planning again",
            plan.and_then(|p| p.expires.as_deref()).unwrap_or("-")
        ),
        _ => format!("plan {hash} is planned again"),
    }
}

/// Applies planning Job `attempt` of run `run` (the worker ServiceAccount, its RoleBinding
/// where the storage needs one, the task ConfigMap with `planOut`, the Job), then writes the
/// `Planning` status; `replan` is the Event of a plan made again (else `Planning`).
async fn start_planning<K: RunKind>(
    cr: &K,
    ctx: &Context,
    run: RunId,
    attempt: i64,
    replan: Option<(&'static str, String)>,
) -> Result<Action, Error> {
    let ns = build::namespace(cr).map_err(Error::Build)?;
    let config = &ctx.config;
    let (config_map, job) = planning_children(cr, run, attempt, config).map_err(Error::Build)?;
    let service_account = build::service_account::worker_service_account(&ns, config);
    worker::apply::<ServiceAccount>(ctx, &ns, &service_account).await?;
    if let Some(binding) = build::rbac::worker_role_binding(cr, config).map_err(Error::Build)? {
        worker::apply_child::<K, RoleBinding>(cr, ctx, &ns, &binding).await?;
    }
    worker::apply_child(cr, ctx, &ns, &config_map).await?;
    worker::apply_child(cr, ctx, &ns, &job).await?;
    let status = planning_status(cr, run, attempt, &job.name_any(), &st::now());
    let event = replan
        .as_ref()
        .map_or(REASON_PLANNING, |(reason, _)| reason);
    if worker::write_status(cr, ctx, status, None).await? {
        let note = match &replan {
            Some((_, note)) => note.clone(),
            None => format!("Job {} plans run {run}; nothing is changed", job.name_any()),
        };
        let type_ = if replan.is_some() {
            EventType::Warning
        } else {
            EventType::Normal
        };
        ctx.publish(cr, type_, event, "Plan", &note).await;
    }
    Ok(Action::requeue(POD_START_POLL))
}

/// The status of run `run` while planning Job `job_name` (plan `attempt`) runs: `Pending`,
/// `Reconciling` with `Planning`, `status.plan` naming the run, attempt and Job.
pub fn planning_status<K: RunKind>(
    cr: &K,
    run: RunId,
    attempt: i64,
    job_name: &str,
    now: &str,
) -> K::Status {
    let message = format!(
        "Job {job_name} is planning {} (run {run}); nothing is changed until the plan is approved",
        cr.describe()
    );
    let previous = st::current(cr).map_or(&[][..], |c| c.conditions.as_slice());
    let mut status = cr.new_run_status();
    *K::common_mut(&mut status) = RunStatus {
        phase: Some(Phase::Pending),
        observed_generation: cr.meta().generation,
        run: Some(run.to_string()),
        conditions: st::conditions(
            cr,
            previous,
            now,
            [false, true, false],
            REASON_PLANNING,
            &message,
        ),
        ..RunStatus::default()
    };
    K::set_plan(
        &mut status,
        Some(PlanStatus {
            run: Some(run.to_string()),
            attempt: Some(attempt),
            job_name: Some(job_name.to_string()),
            ..PlanStatus::default()
        }),
    );
    status
}

/// Looks at the planning Job `job_name`: still running, looked at again; ended, its plan (or
/// failure) recorded, its Job and pods released and its task ConfigMap deleted.
async fn observe_planning<K: RunKind>(
    cr: &K,
    ctx: &Context,
    current: &K::Status,
    job_name: &str,
) -> Result<Action, Error> {
    let ns = build::namespace(cr).map_err(Error::Build)?;
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let job = worker::get_job(&jobs, job_name, &ns).await?;
    let end = job.as_ref().and_then(st::job_end);
    if job.is_some() && end.is_none() {
        return watch_planning_pods(cr, ctx, current, job_name).await;
    }
    let pods = worker::job_pods(ctx, &ns, job_name).await?;
    let result = st::single_result(worker::pod_results(&pods, job_name, 1));
    let timeout = cr.approval().and_then(|(_, t)| t);
    let now = st::now();
    let (status, event) = match planned(result, end.as_ref(), job_name) {
        Ok(plan) => {
            let status = awaiting_status(cr, current, &plan, timeout, &now);
            let note = st::ready(K::common(&status))
                .map(|c| c.message.clone())
                .unwrap_or_default();
            (status, (EventType::Normal, REASON_PLAN_READY, note))
        }
        Err(why) => {
            let status = plan_failed_status(cr, current, &why, &now);
            (status, (EventType::Warning, REASON_PLAN_FAILED, why))
        }
    };
    if worker::write_status(cr, ctx, status, None).await? {
        ctx.publish(cr, event.0, event.1, "ObservePlan", &event.2)
            .await;
    }
    worker::release_all(ctx, &ns, &pods, job.as_ref()).await?;
    if let Some(run) = K::plan(current).and_then(|p| Some((p.run.as_deref()?, p.attempt?))) {
        if let Some(run_id) = RunId::parse(run.0) {
            let name = plan_config_map_name::<K>(&cr.name_any(), run_id, run.1);
            let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
            worker::delete(&api, &name, "ConfigMap", &ns).await?;
        }
    }
    Ok(if event.1 == REASON_PLAN_FAILED {
        Action::await_change()
    } else {
        Action::requeue(AWAITING_POLL)
    })
}

/// While the planning Job `job_name` runs: a worker pod the kubelet cannot start for want of a
/// Secret or one of its keys stalls the run (`Stalled` with `SecretNotFound` or `KeyNotFound`,
/// a Warning Event; the Job is kept and the pod starts once the Secret is fixed), as it does a
/// run's Job; once no pod says so, the run is `Planning` again.
async fn watch_planning_pods<K: RunKind>(
    cr: &K,
    ctx: &Context,
    current: &K::Status,
    job_name: &str,
) -> Result<Action, Error> {
    let ns = build::namespace(cr).map_err(Error::Build)?;
    let pods = worker::job_pods(ctx, &ns, job_name).await?;
    let now = st::now();
    if let Some(problem) = worker::pod_secret_problem(ctx, &ns, &pods).await? {
        let field = worker::secret_field(cr, &problem);
        let mut status = current.clone();
        K::common_mut(&mut status).conditions =
            st::secret_conditions(cr, job_name, &problem, field, &now);
        let event = (EventType::Warning, problem.reason, "ObservePlan");
        worker::write_status(cr, ctx, status, Some(event)).await?;
        return Ok(Action::requeue(SECRET_POLL));
    }
    let plan =
        K::plan(current).and_then(|p| Some((p.run.as_deref().and_then(RunId::parse)?, p.attempt?)));
    if let (true, Some((run, attempt))) = (worker::stalled_on_secret(cr), plan) {
        let status = planning_status(cr, run, attempt, job_name, &now);
        let event = (EventType::Normal, "PodStarting", "ObservePlan");
        worker::write_status(cr, ctx, status, Some(event)).await?;
    }
    Ok(Action::requeue(POD_START_POLL))
}

/// The plan of a planning Job that ended with `end` (`None`: it is gone) and left `result`,
/// or why there is none.
fn planned(
    result: Result<TaskResult, String>,
    end: Option<&st::JobEnd>,
    job_name: &str,
) -> Result<ResultPlan, String> {
    let logs = format!("see kubectl logs job/{job_name}");
    let result =
        result.map_err(|why| format!("planning Job {job_name} left no result: {why}; {logs}"))?;
    if result.phase != PHASE_COMPLETED {
        return Err(format!(
            "planning Job {job_name} failed: {}",
            result.message
        ));
    }
    if let Some(st::JobEnd::Failed { reason, message }) = end {
        return Err(format!(
            "planning Job {job_name} failed ({reason}: {message}); {logs}"
        ));
    }
    result
        .plan
        .ok_or_else(|| format!("planning Job {job_name} reported no plan; {logs}"))
}

/// `created` + `timeout` (a duration like `24h`; the default when absent or unreadable), or
/// `now` + `timeout` when `created` is not a time.
pub fn expires(created: &str, timeout: Option<&str>, now: &str) -> String {
    let seconds = parse_age(approval_timeout(timeout))
        .or_else(|_| parse_age(approval_timeout(None)))
        .map_or(86_400, |d| d.num_seconds());
    let start = created
        .parse::<Timestamp>()
        .or_else(|_| now.parse::<Timestamp>())
        .unwrap_or_else(|_| Timestamp::now());
    let end = start
        .checked_add(SignedDuration::from_secs(seconds))
        .unwrap_or(start);
    st::timestamp(&Time(end))
}

/// `result` as `status.plan` of the run `current` describes, expiring after `timeout`.
pub fn plan_status(
    result: &ResultPlan,
    current: Option<&PlanStatus>,
    timeout: Option<&str>,
    now: &str,
) -> PlanStatus {
    let nonzero = |n: u64| (n > 0).then(|| clamp(n));
    PlanStatus {
        groups: clamp(result.groups),
        partitions: clamp(result.partitions),
        hash: Some(result.hash.clone()),
        key: Some(result.key.clone()),
        created: Some(result.created.clone()),
        expires: Some(expires(&result.created, timeout, now)),
        run: current.and_then(|p| p.run.clone()),
        attempt: current.and_then(|p| p.attempt),
        job_name: current.and_then(|p| p.job_name.clone()),
        summary: Some(st::cap(&result.summary, 1024)),
        records: nonzero(result.records),
        bytes: nonzero(result.bytes),
        topics: nonzero(result.topics),
        offsets: nonzero(result.offsets),
        topics_to_create: result.topics_to_create.clone(),
        topics_to_create_total: nonzero(result.topics_to_create_total),
        refused_configs: result.refused_configs.clone(),
        active_groups: result.active_groups.clone(),
        active_groups_total: nonzero(result.active_groups_total),
        safety_snapshot_id: result.safety_snapshot_id.clone(),
        ignored_approval: None,
    }
}

/// The status of a run whose plan `result` waits for approval: `AwaitingApproval`, the three
/// conditions False with `PlanReady` and a message naming the hash and how to approve, and
/// `AwaitingApproval=True`.
pub fn awaiting_status<K: RunKind>(
    cr: &K,
    current: &K::Status,
    result: &ResultPlan,
    timeout: Option<&str>,
    now: &str,
) -> K::Status {
    let plan = plan_status(result, K::plan(current), timeout, now);
    let kind = K::kind(&()).to_ascii_lowercase();
    let message = format!(
        "plan {} is ready: {}. Review status.plan (the whole plan is at {} in the storage), then approve it: kubectl annotate {kind} {} tidemark.dev/approve={} --overwrite (or commit the annotation); it expires at {}",
        result.hash,
        result.summary,
        result.key,
        cr.name_any(),
        result.hash,
        plan.expires.as_deref().unwrap_or("-"),
    );
    let mut status = current.clone();
    let previous = K::common(current).conditions.clone();
    let common = K::common_mut(&mut status);
    common.phase = Some(Phase::AwaitingApproval);
    common.observed_generation = cr.meta().generation;
    let mut conditions = st::conditions(
        cr,
        &previous,
        now,
        [false, false, false],
        REASON_PLAN_READY,
        &message,
    );
    conditions.push(awaiting_condition(cr, &previous, &message, now));
    common.conditions = conditions;
    K::set_plan(&mut status, Some(plan));
    status
}

/// `AwaitingApproval=True` with `PlanReady`, keeping its transition time from `previous`.
fn awaiting_condition<K: RunKind>(
    cr: &K,
    previous: &[Condition],
    message: &str,
    now: &str,
) -> Condition {
    let since = previous
        .iter()
        .find(|c| c.type_ == AWAITING_APPROVAL && c.status == "True")
        .map_or_else(|| now.to_string(), |c| c.last_transition_time.clone());
    Condition {
        type_: AWAITING_APPROVAL.to_string(),
        status: "True".to_string(),
        reason: REASON_PLAN_READY.to_string(),
        message: st::cap(message, st::MAX_STATUS_MESSAGE),
        last_transition_time: since,
        observed_generation: cr.meta().generation,
    }
}

/// The run failed because its plan could not be made (`why`): `Failed`, `Stalled` with
/// `PlanFailed` and how to run it again.
pub fn plan_failed_status<K: RunKind>(
    cr: &K,
    current: &K::Status,
    why: &str,
    now: &str,
) -> K::Status {
    let next = RunId::of(cr).map_or(1, |r| r.run + 1);
    let message = format!(
        "{why}. Nothing was changed; to plan again, fix the cause and bump the annotation: kubectl annotate {} {} {RUN_ANNOTATION}={next} --overwrite",
        K::kind(&()).to_ascii_lowercase(),
        cr.name_any()
    );
    let mut status = current.clone();
    let previous = K::common(current).conditions.clone();
    let common = K::common_mut(&mut status);
    common.phase = Some(Phase::Failed);
    common.job_name = K::plan(current).and_then(|p| p.job_name.clone());
    common.completion_time = Some(now.to_string());
    common.conditions = st::conditions(
        cr,
        &previous,
        now,
        [false, false, true],
        REASON_PLAN_FAILED,
        &message,
    );
    status
}

/// Records `value` of the approval annotation as ignored (it names another hash) and publishes
/// one Warning Event about it.
async fn ignore<K: RunKind>(
    cr: &K,
    ctx: &Context,
    current: &K::Status,
    value: &str,
) -> Result<Action, Error> {
    let mut status = current.clone();
    let mut plan = K::plan(current).cloned().unwrap_or_default();
    let hash = plan.hash.clone().unwrap_or_default();
    plan.ignored_approval = Some(value.to_string());
    K::set_plan(&mut status, Some(plan));
    if worker::write_status(cr, ctx, status, None).await? {
        let note = format!(
            "tidemark.dev/approve is '{}', not the hash of the plan waiting for approval ({hash}): ignored, nothing runs. Approve the plan in status.plan with tidemark.dev/approve={hash}",
            st::cap(value, 80)
        );
        ctx.publish(
            cr,
            EventType::Warning,
            REASON_APPROVAL_IGNORED,
            "Approve",
            &note,
        )
        .await;
    }
    Ok(Action::requeue(POD_START_POLL))
}

/// After the run Job of a `Manual` run ended: when its worker refused the approved plan (exit
/// 15: the cluster no longer matches it; nothing was changed), the run is not recorded as
/// failed: it goes back to `Pending` with `PlanInvalidated` (a Warning Event) and the next plan
/// attempt, which the next reconcile makes ([`gate`]; a KafkaRestore resolves its backup
/// first), and `Some` action is returned. `None` for any other end, recorded as usual.
pub async fn plan_changed<K: RunKind>(
    cr: &K,
    ctx: &Context,
    current: &K::Status,
    result: &Result<TaskResult, String>,
) -> Result<Option<Action>, Error> {
    let refused = result.as_ref().ok().and_then(|r| {
        r.error
            .as_ref()
            .filter(|e| e.exit_code == tidemark_task::exit::PLAN_CHANGED)
            .map(|_| r.message.clone())
    });
    let Some(message) = refused.filter(|_| manual(cr)) else {
        return Ok(None);
    };
    let Some(run) = K::common(current).run.as_deref().and_then(RunId::parse) else {
        return Ok(None);
    };
    let status = invalidated_status(cr, current, run, &message, &st::now());
    let note = st::ready(K::common(&status))
        .map(|c| c.message.clone())
        .unwrap_or_default();
    if worker::write_status(cr, ctx, status, None).await? {
        ctx.publish(
            cr,
            EventType::Warning,
            REASON_PLAN_INVALIDATED,
            "ObserveJob",
            &note,
        )
        .await;
    }
    Ok(Some(Action::requeue(PREVIOUS_RUN_POLL)))
}

/// The status of run `run` whose worker refused its approved plan (`why`): `Pending`,
/// `Reconciling` with `PlanInvalidated`, and `status.plan` asking for the next attempt.
pub fn invalidated_status<K: RunKind>(
    cr: &K,
    current: &K::Status,
    run: RunId,
    why: &str,
    now: &str,
) -> K::Status {
    let old = run_plan::<K>(current, run);
    let hash = old.and_then(|p| p.hash.as_deref()).unwrap_or("-");
    let attempt = old.and_then(|p| p.attempt).unwrap_or(1) + 1;
    let message = format!(
        "the run refused plan {hash}: {why}. Nothing was changed; the run is planned again and waits for a new approval"
    );
    let mut status = current.clone();
    let previous = K::common(current).conditions.clone();
    let common = K::common_mut(&mut status);
    common.phase = Some(Phase::Pending);
    common.job_name = None;
    common.start_time = None;
    common.completion_time = None;
    common.conditions = st::conditions(
        cr,
        &previous,
        now,
        [false, true, false],
        REASON_PLAN_INVALIDATED,
        &message,
    );
    K::set_plan(
        &mut status,
        Some(PlanStatus {
            run: Some(run.to_string()),
            attempt: Some(attempt),
            ..PlanStatus::default()
        }),
    );
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(hash: Option<&str>, expires: &str) -> PlanStatus {
        PlanStatus {
            hash: hash.map(str::to_string),
            expires: Some(expires.into()),
            run: Some("g1-r0".into()),
            attempt: Some(2),
            job_name: Some("j-plan2".into()),
            ..PlanStatus::default()
        }
    }

    #[test]
    fn the_stage_follows_the_plan_the_annotation_and_the_clock() {
        let now: Timestamp = "2024-12-01T12:00:00Z".parse().expect("time");
        let later = "2024-12-01T13:00:00Z";
        let earlier = "2024-12-01T11:00:00Z";
        let hash = "0123456789abcdef";
        assert_eq!(
            stage(None, Some(hash), now),
            Stage::Plan {
                attempt: 1,
                why: None
            }
        );
        assert_eq!(
            stage(Some(&plan(None, later)), Some(hash), now),
            Stage::Planning("j-plan2".into())
        );
        let ready = plan(Some(hash), later);
        assert_eq!(stage(Some(&ready), Some(hash), now), Stage::Approved);
        assert_eq!(
            stage(Some(&ready), Some(" 0123456789abcdef\n"), now),
            Stage::Approved
        );
        assert_eq!(
            stage(Some(&ready), None, now),
            Stage::Waiting(Duration::from_secs(3600))
        );
        assert_eq!(
            stage(Some(&ready), Some("fedcba9876543210"), now),
            Stage::Ignored("fedcba9876543210".into())
        );
        let warned = PlanStatus {
            ignored_approval: Some("fedcba9876543210".into()),
            ..ready.clone()
        };
        assert!(matches!(
            stage(Some(&warned), Some("fedcba9876543210"), now),
            Stage::Waiting(_)
        ));
        // Expired: planned again, even when approved at last.
        assert_eq!(
            stage(Some(&plan(Some(hash), earlier)), Some(hash), now),
            Stage::Plan {
                attempt: 3,
                why: Some(REASON_PLAN_EXPIRED)
            }
        );
    }

    #[test]
    fn a_plan_expires_after_the_approval_timeout() {
        let now = "2024-12-01T12:00:00Z";
        assert_eq!(expires(now, None, now), "2024-12-02T12:00:00Z");
        assert_eq!(expires(now, Some("90m"), now), "2024-12-01T13:30:00Z");
        assert_eq!(
            expires("not a time", Some("1h"), now),
            "2024-12-01T13:00:00Z"
        );
    }
}

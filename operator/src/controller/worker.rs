//! The reconcile every [`RunKind`] shares, one run per [`RunId`] (generation +
//! `tidemark.dev/run`): validate → build and server-side apply the worker ServiceAccount, RBAC,
//! task ConfigMap and Job → status Running; while the Job runs, its pods' status tells whether
//! the kubelet cannot start a worker for want of a Secret (the operator never reads Secrets);
//! once the Job has ended, read the worker's result from its pod and write the final status. A finished run is
//! never run again, and a Job deleted mid-run is reported, never recreated.
//!
//! The steps are public so that a kind with another way to run (a scheduled KafkaBackup's
//! CronJob) or a step of its own before a run starts (a KafkaRestore resolving its KafkaBackup,
//! only while [`run_started`] is false) is built from the same pieces: [`validated_run`],
//! [`apply_task_children`], [`job_results`] (one result per shard of an
//! Indexed Job), [`apply`], [`delete`] and [`write_status`].

use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::instrument;

use super::approval;
use super::status as st;
use super::SECRET_POLL;
use super::{stop, Context, Error, RunKind, POD_START_POLL, PREVIOUS_RUN_POLL, RUNNING_POLL};
use crate::build::job::RESULT_FINALIZER;
use crate::build::{self, RunId, FIELD_MANAGER};
use crate::crd::status::{Phase, RunStatus};
use crate::metrics::{JOB_CREATED, JOB_DELETED, JOB_FAILED, JOB_SUCCEEDED};
use crate::validate::{referenced_secrets, validate, warnings};
use tidemark_task::PHASE_COMPLETED;

pub use crate::build::job::JOB_NAME_LABEL;

/// Reconciles one resource of kind `K` ([`RunKind::reconcile`]), timing it.
#[instrument(skip(ctx, obj), fields(kind = %K::kind(&()), resource = %obj.name_any(), namespace = obj.namespace().unwrap_or_default()))]
pub async fn reconcile<K: RunKind>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(&K::kind(&()));
    let result = obj.reconcile(&ctx).await;
    if result.is_ok() {
        ctx.succeeded(obj.as_ref());
    }
    result
}

/// The reconcile of a kind that runs once per [`RunId`]: [`validated_run`], then [`run_once`].
pub async fn reconcile_run<K: RunKind>(cr: &K, ctx: &Context) -> Result<Action, Error> {
    let run = validated_run(cr, ctx).await?;
    run_once(cr, ctx, run).await
}

/// Validates `cr` (no client) and returns its current run; an invalid spec is reported with
/// `Stalled` (and an Event) and returned as [`Error::InvalidSpec`].
pub async fn validated_run<K: RunKind>(cr: &K, ctx: &Context) -> Result<RunId, Error> {
    let problems = validate(cr);
    if let Some(first) = problems.first() {
        if cr.status().is_some() {
            // Nothing of the resource runs while its spec is invalid.
            let jobs = stop::other_run_jobs(cr, ctx, None).await?;
            stop::stop_other_runs(cr, ctx, &jobs, None).await?;
        }
        let message = problems
            .iter()
            .map(|p| p.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        if cr.meta().namespace.is_some() {
            let status = st::stalled(cr, RunId::of(cr).ok(), first.reason, &message, &st::now());
            write_status(
                cr,
                ctx,
                status,
                Some((EventType::Warning, first.reason, "Validate")),
            )
            .await?;
        }
        return Err(Error::InvalidSpec {
            reason: first.reason,
            message,
        });
    }
    RunId::of(cr).map_err(Error::Build)
}

/// Where `run` of a resource stands, by its status `common`.
enum RunState<'a> {
    /// It finished (Completed or Failed): each run executes once.
    Finished,
    /// Its Job `.0` is running.
    Running(&'a str),
    /// It has not started (or stalled before its Job).
    NotStarted,
}

fn run_state(common: &RunStatus, run: RunId) -> RunState<'_> {
    if common.run.as_deref() != Some(run.to_string().as_str()) {
        return RunState::NotStarted;
    }
    match (common.phase, common.job_name.as_deref()) {
        (Some(Phase::Completed | Phase::Failed), _) => RunState::Finished,
        (Some(Phase::Running), Some(job)) => RunState::Running(job),
        _ => RunState::NotStarted,
    }
}

/// Whether `run` of `cr` has started its Job (it runs or has finished): [`run_once`] then only
/// observes it or leaves it alone, and builds nothing.
pub fn run_started<K: RunKind>(cr: &K, run: RunId) -> bool {
    cr.status()
        .is_some_and(|s| !matches!(run_state(K::common(s), run), RunState::NotStarted))
}

/// Runs `run` of `cr` once: starts its Job (when [`RunKind::before_start`] lets it), observes
/// it while it runs, and records how it ended; a finished run is left alone.
pub async fn run_once<K: RunKind>(cr: &K, ctx: &Context, run: RunId) -> Result<Action, Error> {
    let current = cr.status().cloned().unwrap_or_default();
    let common = K::common(&current);

    match run_state(common, run) {
        RunState::Finished => return release_finished(cr, ctx, common).await,
        RunState::Running(job) => return observe(cr, ctx, &current, job).await,
        RunState::NotStarted => {}
    }
    if cr.status().is_some() && common.run.as_deref() != Some(run.to_string().as_str()) {
        if let Some(action) = supersede(cr, ctx, &current, run).await? {
            return Ok(action);
        }
    }
    if let Some(action) = cr.before_start(ctx, run).await? {
        return Ok(action);
    }
    if let Some(action) = approval::gate(cr, ctx, run).await? {
        return Ok(action);
    }
    start(cr, ctx, run).await
}

/// Before `run` starts, the runs it supersedes stop ([`stop::stop_other_runs`]): `None` once
/// they are gone (and the previous run's task ConfigMap deleted), else the action while `run`
/// waits. A previous run that ended before it was recorded is recorded first.
pub async fn supersede<K: RunKind>(
    cr: &K,
    ctx: &Context,
    current: &K::Status,
    run: RunId,
) -> Result<Option<Action>, Error> {
    let common = K::common(current);
    let jobs = stop::other_run_jobs(cr, ctx, Some(run)).await?;
    let unrecorded = jobs.iter().find(|j| {
        common.phase == Some(Phase::Running)
            && common.job_name.as_deref() == Some(j.name_any().as_str())
            && j.meta().deletion_timestamp.is_none()
            && st::job_end(j).is_some()
    });
    if let Some(job) = unrecorded {
        observe_job(cr, ctx, current, job).await?;
        return Ok(Some(Action::requeue(PREVIOUS_RUN_POLL)));
    }
    if let Some(left) = stop::stop_other_runs(cr, ctx, &jobs, Some(run)).await? {
        let status = stop::waiting(cr, current, run, &left, &st::now());
        let event = (
            EventType::Normal,
            st::REASON_WAITING_FOR_PREVIOUS_RUN,
            "StopRun",
        );
        write_status(cr, ctx, status, Some(event)).await?;
        return Ok(Some(Action::requeue(PREVIOUS_RUN_POLL)));
    }
    if let Some(old_run) = &common.run {
        delete_task_config_map(cr, ctx, old_run).await?;
    }
    Ok(None)
}

/// A finished run's Job and pods lose their result finalizer (the result is in the status;
/// the operator may have stopped between writing it and releasing them).
async fn release_finished<K: RunKind>(
    cr: &K,
    ctx: &Context,
    common: &RunStatus,
) -> Result<Action, Error> {
    let Some(job_name) = common.job_name.as_deref() else {
        return Ok(Action::await_change());
    };
    let ns = build::namespace(cr).map_err(Error::Build)?;
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let job = get_job(&jobs, job_name, &ns).await?;
    let held = |j: &Job| j.finalizers().iter().any(|f| f == RESULT_FINALIZER);
    if job.as_ref().is_none_or(held) {
        release_pods(ctx, &ns, &job_pods(ctx, &ns, job_name).await?).await?;
    }
    if let Some(job) = &job {
        stop::release(&jobs, job).await?;
    }
    Ok(Action::await_change())
}

/// Applies the children and marks the run Running. Secrets are not looked at: the Job names
/// them, and a missing one shows in its pod's status ([`watch_pods`]).
async fn start<K: RunKind>(cr: &K, ctx: &Context, run: RunId) -> Result<Action, Error> {
    let ns = build::namespace(cr).map_err(Error::Build)?;
    let job = build::job::job(cr, run, &ctx.config).map_err(Error::Build)?;
    apply_task_children(cr, ctx, run).await?;
    apply_child(cr, ctx, &ns, &job).await?;

    // Status.
    let job_name = job.name_any();
    let status = st::running(cr, run, &job_name, &st::now());
    let message = st::ready(K::common(&status))
        .map(|c| c.message.clone())
        .unwrap_or_default();
    let changed = write_status(cr, ctx, status, None).await?;
    if changed {
        ctx.metrics.job(&K::kind(&()), JOB_CREATED);
        ctx.publish(cr, EventType::Normal, "JobCreated", "CreateJob", &message)
            .await;
        for w in warnings(cr) {
            ctx.publish(cr, EventType::Warning, w.reason, "CreateJob", &w.message)
                .await;
        }
    }
    Ok(Action::requeue(RUNNING_POLL))
}

/// Builds and applies what the worker of `cr`'s run `run` needs besides its Job: the worker
/// ServiceAccount of the namespace, the worker RoleBinding to the install's worker ClusterRole
/// (ConfigMap storage only; the operator creates no Role) and the task ConfigMap.
pub async fn apply_task_children<K: RunKind>(
    cr: &K,
    ctx: &Context,
    run: RunId,
) -> Result<(), Error> {
    let ns = build::namespace(cr).map_err(Error::Build)?;
    let config = &ctx.config;
    let service_account = build::service_account::worker_service_account(&ns, config);
    let binding = build::rbac::worker_role_binding(cr, config).map_err(Error::Build)?;
    let task = build::task::task_config_map(cr, run).map_err(Error::Build)?;

    apply::<ServiceAccount>(ctx, &ns, &service_account).await?;
    if let Some(binding) = &binding {
        apply_child::<K, RoleBinding>(cr, ctx, &ns, binding).await?;
    }
    apply_child(cr, ctx, &ns, &task).await?;
    Ok(())
}

/// The pods of the Job `job_name` (also those left after the Job was deleted).
pub async fn job_pods(ctx: &Context, ns: &str, job_name: &str) -> Result<Vec<Pod>, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let list = pods
        .list(&ListParams::default().labels(&format!("{JOB_NAME_LABEL}={job_name}")))
        .await
        .map_err(|source| Error::Fetch {
            what: format!("the pods of Job {ns}/{job_name}"),
            source,
        })?;
    Ok(list.items)
}

/// The result of each of `shards` shards among a Job's `pods`, read from their termination
/// messages.
pub fn pod_results(pods: &[Pod], job_name: &str, shards: u32) -> Vec<st::ShardResult> {
    let results = st::shard_results(pods, shards);
    for shard in &results {
        if let Err(why) = &shard.result {
            tracing::warn!(job = job_name, shard = shard.index, reason = %why, "no worker result");
        }
    }
    results
}

/// The result of each shard of the Job `job_name`, read from its pods' termination messages.
pub async fn job_results(
    ctx: &Context,
    ns: &str,
    job_name: &str,
    shards: u32,
) -> Result<Vec<st::ShardResult>, Error> {
    let pods = job_pods(ctx, ns, job_name).await?;
    Ok(pod_results(&pods, job_name, shards))
}

/// Removes the result finalizer from `pods` ([`stop::release`]).
async fn release_pods(ctx: &Context, ns: &str, pods: &[Pod]) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    for pod in pods {
        stop::release(&api, pod).await?;
    }
    Ok(())
}

/// The Job `name`, if it exists.
pub(super) async fn get_job(api: &Api<Job>, name: &str, ns: &str) -> Result<Option<Job>, Error> {
    api.get_opt(name).await.map_err(|source| Error::Fetch {
        what: format!("Job {ns}/{name}"),
        source,
    })
}

/// Looks at the Job of the running run: still running, ended, or gone.
async fn observe<K: RunKind>(
    cr: &K,
    ctx: &Context,
    current: &K::Status,
    job_name: &str,
) -> Result<Action, Error> {
    let ns = build::namespace(cr).map_err(Error::Build)?;
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    match get_job(&jobs, job_name, &ns).await? {
        Some(job) => observe_job(cr, ctx, current, &job).await,
        None => record(cr, ctx, current, job_name, None).await,
    }
}

/// Looks at `job`, the Job of the run `current` describes: a Job still running is looked at
/// again later; an ended one (also one being deleted) has its result recorded.
async fn observe_job<K: RunKind>(
    cr: &K,
    ctx: &Context,
    current: &K::Status,
    job: &Job,
) -> Result<Action, Error> {
    if st::job_end(job).is_none() && job.meta().deletion_timestamp.is_none() {
        return watch_pods(cr, ctx, &job.name_any()).await;
    }
    record(cr, ctx, current, &job.name_any(), Some(job)).await
}

/// While the Job `job_name` of `cr`'s current run runs: a worker pod the kubelet cannot start
/// because a Secret or one of its keys is missing (the pod status says which for env, the
/// kubelet's `FailedMount` Events for a Secret volume) stalls the run
/// with that message and a Warning Event, the Job kept (the kubelet retries, so fixing the
/// Secret is enough); once no pod says so any more, the run is plain Running again. Pods not
/// started yet are looked at again soon ([`POD_START_POLL`]).
async fn watch_pods<K: RunKind>(cr: &K, ctx: &Context, job_name: &str) -> Result<Action, Error> {
    let ns = build::namespace(cr).map_err(Error::Build)?;
    let pods = job_pods(ctx, &ns, job_name).await?;
    let Ok(run) = RunId::of(cr) else {
        return Ok(Action::requeue(RUNNING_POLL));
    };
    if let Some(problem) = pod_secret_problem(ctx, &ns, &pods).await? {
        let field = secret_field(cr, &problem);
        let status = st::stalled_on_secret(cr, run, job_name, &problem, field, &st::now());
        let event = (EventType::Warning, problem.reason, "ObservePod");
        write_status(cr, ctx, status, Some(event)).await?;
        return Ok(Action::requeue(SECRET_POLL));
    }
    if stalled_on_secret(cr) {
        let status = st::running(cr, run, job_name, &st::now());
        write_status(
            cr,
            ctx,
            status,
            Some((EventType::Normal, "PodStarting", "ObservePod")),
        )
        .await?;
    }
    let starting = pods.is_empty()
        || pods
            .iter()
            .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending"));
    Ok(Action::requeue(if starting {
        POD_START_POLL
    } else {
        RUNNING_POLL
    }))
}

/// A worker container among `pods` the kubelet cannot start because a Secret or one of its keys
/// is missing: from the pod status (`CreateContainerConfigError`, env from a Secret) or, for a
/// pod still `ContainerCreating`, from the kubelet's `FailedMount` Events (a Secret volume).
pub async fn pod_secret_problem(
    ctx: &Context,
    ns: &str,
    pods: &[Pod],
) -> Result<Option<st::SecretProblem>, Error> {
    match st::secret_problem(pods) {
        Some(problem) => Ok(Some(problem)),
        None => mount_problem(ctx, ns, pods).await,
    }
}

/// The spec field of `cr` that names the Secret of `problem`.
pub fn secret_field<K: RunKind>(cr: &K, problem: &st::SecretProblem) -> Option<&'static str> {
    referenced_secrets(cr)
        .into_iter()
        .find(|r| r.name == problem.secret)
        .map(|r| r.field)
}

/// Whether `cr`'s status is `Stalled` on a missing Secret or key.
pub fn stalled_on_secret<K: RunKind>(cr: &K) -> bool {
    st::current(cr)
        .and_then(|c| {
            c.conditions
                .iter()
                .find(|c| c.type_ == st::STALLED && c.status == "True")
        })
        .is_some_and(|c| {
            c.reason == st::REASON_SECRET_NOT_FOUND || c.reason == st::REASON_KEY_NOT_FOUND
        })
}

/// How many pods waiting for their volumes have their Events read per reconcile.
const MOUNT_PODS_LOOKED_AT: usize = 2;

/// A Secret volume the kubelet cannot mount for one of `pods` still `ContainerCreating`, read
/// from the `FailedMount` Events it writes on the pod (the pod status does not say). A refused
/// Event list (an install whose RBAC predates the rule) is logged and treated as nothing seen.
async fn mount_problem(
    ctx: &Context,
    ns: &str,
    pods: &[Pod],
) -> Result<Option<st::SecretProblem>, Error> {
    let api: Api<Event> = Api::namespaced(ctx.client.clone(), ns);
    for pod in st::pods_waiting_for_volumes(pods)
        .into_iter()
        .take(MOUNT_PODS_LOOKED_AT)
    {
        let name = pod.name_any();
        let fields = format!(
            "involvedObject.kind=Pod,involvedObject.name={name},reason={}",
            st::FAILED_MOUNT
        );
        let events = match api.list(&ListParams::default().fields(&fields)).await {
            Ok(list) => list.items,
            Err(kube::Error::Api(e)) if e.code == 403 => {
                tracing::warn!(pod = %name, "may not list the pod's Events: a Secret volume that cannot be mounted is not reported");
                return Ok(None);
            }
            Err(source) => {
                return Err(Error::Fetch {
                    what: format!("the Events of pod {ns}/{name}"),
                    source,
                })
            }
        };
        if let Some(problem) = st::mount_problem(pod, &events, k8s_openapi::jiff::Timestamp::now())
        {
            return Ok(Some(problem));
        }
    }
    Ok(None)
}

/// Records how the run whose Job is `job_name` ended, then releases its Job's and pods' result
/// finalizers. `job` is the Job, `None` when it is gone: a Job gone (or being deleted) before it
/// ended counts as `Complete` when its pods (kept by their finalizer) show every shard
/// completed, else the run failed with `JobDeleted`.
async fn record<K: RunKind>(
    cr: &K,
    ctx: &Context,
    current: &K::Status,
    job_name: &str,
    job: Option<&Job>,
) -> Result<Action, Error> {
    let ns = build::namespace(cr).map_err(Error::Build)?;
    let pods = job_pods(ctx, &ns, job_name).await?;
    let shards = job.map_or_else(|| cr.shards(), st::job_shards);
    let mut base = current.clone();
    let result = cr.combine_shards(&mut base, pod_results(&pods, job_name, shards));
    let end = job.and_then(st::job_end).or_else(|| {
        let completed = result.as_ref().is_ok_and(|r| r.phase == PHASE_COMPLETED);
        completed.then_some(st::JobEnd::Complete)
    });
    if let Some(action) = approval::plan_changed(cr, ctx, current, &result).await? {
        release_all(ctx, &ns, &pods, job).await?;
        return Ok(action);
    }
    let kind = K::kind(&());
    let Some(end) = end else {
        let status = st::job_deleted(cr, current, job_name, &st::now());
        let event = (EventType::Warning, st::REASON_JOB_DELETED, "ObserveJob");
        if write_status(cr, ctx, status, Some(event)).await? {
            ctx.metrics.job(&kind, JOB_DELETED);
        }
        release_all(ctx, &ns, &pods, job).await?;
        return Ok(Action::await_change());
    };
    let (mut status, succeeded) = st::finished(cr, &base, job_name, &end, result, &st::now());
    cr.after_run(ctx, &mut status).await?;
    let (type_, reason, outcome) = if succeeded {
        (EventType::Normal, "JobSucceeded", JOB_SUCCEEDED)
    } else {
        (EventType::Warning, "JobFailed", JOB_FAILED)
    };
    if write_status(cr, ctx, status, Some((type_, reason, "ObserveJob"))).await? {
        ctx.metrics.job(&kind, outcome);
    }
    release_all(ctx, &ns, &pods, job).await?;
    Ok(Action::await_change())
}

/// Releases the result finalizers of a recorded run: its pods first, its Job last (a Job
/// without one means its pods were released too).
pub async fn release_all(
    ctx: &Context,
    ns: &str,
    pods: &[Pod],
    job: Option<&Job>,
) -> Result<(), Error> {
    release_pods(ctx, ns, pods).await?;
    if let Some(job) = job {
        let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
        stop::release(&jobs, job).await?;
    }
    Ok(())
}

/// Deletes the task ConfigMap of `cr`'s run `run` (absent is fine).
pub async fn delete_task_config_map<K: RunKind>(
    cr: &K,
    ctx: &Context,
    run: &str,
) -> Result<(), Error> {
    let ns = build::namespace(cr).map_err(Error::Build)?;
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let task = build::kind_child_name::<K>(&cr.name_any(), &format!("task-{run}"));
    delete(&config_maps, &task, "ConfigMap", &ns).await
}

/// Deletes the child `name` of kind `kind` in the background (absent is fine).
pub async fn delete<K>(api: &Api<K>, name: &str, kind: &str, ns: &str) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {
            tracing::info!(kind, name, "deleted a child that is no longer wanted");
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(Error::Delete {
            what: format!("{kind} {ns}/{name}"),
            source,
        }),
    }
}

/// Server-side applies `obj`, a child of `cr`, like [`apply`] — unless an object of its name
/// exists that `cr` does not control (another resource's child, or an object of someone
/// else): that one is never adopted or changed; `cr` is stalled with `ChildConflict` (and an
/// Event) naming it and its owner, and [`Error::ChildConflict`] returned.
pub async fn apply_child<K, C>(cr: &K, ctx: &Context, ns: &str, obj: &C) -> Result<C, Error>
where
    K: RunKind,
    C: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<C> = Api::namespaced(ctx.client.clone(), ns);
    let name = obj.name_any();
    let kind = C::kind(&()).to_string();
    let existing = api.get_opt(&name).await.map_err(|source| Error::Fetch {
        what: format!("{kind} {ns}/{name}"),
        source,
    })?;
    let uid = cr.meta().uid.as_deref().unwrap_or_default();
    if let Some(message) = existing.and_then(|e| st::foreign_child(e.meta(), &kind, uid)) {
        let reason = st::REASON_CHILD_CONFLICT;
        let status = st::stalled(cr, RunId::of(cr).ok(), reason, &message, &st::now());
        write_status(
            cr,
            ctx,
            status,
            Some((EventType::Warning, reason, "ApplyChild")),
        )
        .await?;
        return Err(Error::ChildConflict { message });
    }
    apply(ctx, ns, obj).await
}

/// Server-side applies `obj` under [`FIELD_MANAGER`], taking over conflicting fields.
pub async fn apply<K>(ctx: &Context, ns: &str, obj: &K) -> Result<K, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let name = obj.name_any();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(|source| Error::Apply {
        what: format!("{} {ns}/{name}", K::kind(&())),
        source,
    })
}

/// Writes `status` with server-side apply when it differs from the current one, then publishes
/// `event` (type, reason, action) with the Ready condition's message. Returns whether anything
/// was written.
pub async fn write_status<K: RunKind>(
    cr: &K,
    ctx: &Context,
    status: K::Status,
    event: Option<(EventType, &str, &str)>,
) -> Result<bool, Error> {
    if cr.status() == Some(&status) {
        return Ok(false);
    }
    let ns = build::namespace(cr).map_err(Error::Build)?;
    let name = cr.name_any();
    // Through the kind's API resource: `K` may be a view of the stored object (a resolved
    // KafkaRestore), and only the status is written.
    let resource = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &resource);
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| Error::Status {
        what: format!("{} {ns}/{name}", K::kind(&())),
        source,
    })?;
    let common = K::common(&status);
    let ready = st::ready(common);
    let message = ready.map(|c| c.message.clone()).unwrap_or_default();
    tracing::info!(
        phase = ?common.phase,
        reason = ready.map_or("", |c| c.reason.as_str()),
        run = common.run.as_deref().unwrap_or(""),
        "status updated"
    );
    if let Some((type_, reason, action)) = event {
        ctx.publish(cr, type_, reason, action, &message).await;
    }
    Ok(true)
}

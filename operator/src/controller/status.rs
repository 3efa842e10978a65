//! Pure status computation shared by every [`RunKind`]: the status of each state of a run
//! (stalled, running, finished, Job deleted), Kubernetes-style conditions that keep their
//! `lastTransitionTime` while their status does not change, and the outcome of a finished Job
//! read from the worker's termination message ([`TaskResult`]); each kind adds its own results
//! ([`RunKind::record_result`]). No client here.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::{Resource, ResourceExt};
use tidemark_task::{TaskResult, PHASE_COMPLETED, PHASE_FAILED};

use super::RunKind;
use crate::build::job::{COMPLETION_INDEX_LABEL, CONTAINER_NAME};
use crate::build::{RunId, RUN_ANNOTATION};
use crate::crd::status::{Condition, Phase, RunStatus};

/// `Ready`: the run finished successfully.
pub const READY: &str = "Ready";
/// `Reconciling` (kstatus): a worker Job is running.
pub const RECONCILING: &str = "Reconciling";
/// `Stalled` (kstatus): the run cannot start until someone changes something.
pub const STALLED: &str = "Stalled";

/// Conditions that only their own part of a reconcile changes, carried over unchanged by every
/// status computed here: a KafkaBackup's `DrillVerified` ([`super::drill`]).
pub const KEPT_CONDITIONS: [&str; 1] = [super::drill::DRILL_VERIFIED];

/// Reason while the worker Job runs.
pub const REASON_JOB_RUNNING: &str = "JobRunning";
/// Reason when the Job of a running run disappeared.
pub const REASON_JOB_DELETED: &str = "JobDeleted";
/// Reason when a Job failed without a more precise cause from the worker.
pub const REASON_JOB_FAILED: &str = "JobFailed";
/// Reason when a Job succeeded but left no readable result.
pub const REASON_RESULT_MISSING: &str = "ResultMissing";
/// A Secret the worker pod references does not exist (the kubelet says so in the pod status).
pub const REASON_SECRET_NOT_FOUND: &str = "SecretNotFound";
/// A Secret the worker pod references lacks an entry (the kubelet says so in the pod status).
pub const REASON_KEY_NOT_FOUND: &str = "KeyNotFound";
/// The kubelet's waiting reason of a container whose env or volumes cannot be built.
pub const CREATE_CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";
/// The reason of the Events the kubelet writes on a pod whose volume it cannot mount (a Secret
/// volume whose Secret or key is missing); the pod stays `ContainerCreating`.
pub const FAILED_MOUNT: &str = "FailedMount";
/// A `FailedMount` Event older than this is not believed: the kubelet repeats a mount that
/// still fails at least every ~2 minutes, updating the Event.
pub const FAILED_MOUNT_MAX_AGE_SECS: i64 = 10 * 60;

/// Longest condition message (and other free-text status field) the operator writes, in bytes:
/// what Kubernetes allows in a `metav1.Condition` message. Longer text is cut ([`cap`]).
pub const MAX_STATUS_MESSAGE: usize = 32 * 1024;
/// Longest reason the operator writes, in bytes (a `metav1.Condition` reason's limit).
pub const MAX_STATUS_REASON: usize = 1024;
/// Longest Event note, in bytes: Kubernetes refuses an `events.k8s.io/v1` note over 1 KiB.
pub const MAX_EVENT_NOTE: usize = 1024;
/// What ends a text [`cap`] cut.
pub const TRUNCATED: &str = " ... [truncated]";

/// `text` in at most `max` bytes: as is when it fits, else cut on a character boundary and
/// ended with [`TRUNCATED`].
pub fn cap(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(TRUNCATED.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{TRUNCATED}", &text[..end])
}

/// A new run waits for the Jobs and pods of the runs it supersedes to be gone.
pub const REASON_WAITING_FOR_PREVIOUS_RUN: &str = "WaitingForPreviousRun";
/// A child's name is taken by an object this resource does not control.
pub const REASON_CHILD_CONFLICT: &str = "ChildConflict";

/// Why the existing object `kind` `ns/name` (its `meta`) is not a child of the resource with
/// uid `uid`, for a `ChildConflict` message; `None` when the resource controls it (its
/// controller owner reference has that uid).
pub fn foreign_child(meta: &ObjectMeta, kind: &str, uid: &str) -> Option<String> {
    let name = meta.name.as_deref().unwrap_or_default();
    let ns = meta.namespace.as_deref().unwrap_or_default();
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    let owner = match controller {
        Some(o) if o.uid == uid => return None,
        Some(o) => format!("is owned by {} {} (uid {})", o.kind, o.name, o.uid),
        None => "has no owner".to_string(),
    };
    Some(format!(
        "{kind} {ns}/{name} already exists and {owner}; it is left as it is. Delete or rename that {kind}, or rename this resource"
    ))
}

/// The current time as a Kubernetes timestamp (RFC 3339, whole seconds, UTC).
pub fn now() -> String {
    timestamp(&Time(k8s_openapi::jiff::Timestamp::now()))
}

/// The three conditions every status carries, each keeping its previous `lastTransitionTime`
/// when its status is unchanged.
struct Conditions<'a> {
    previous: &'a [Condition],
    generation: Option<i64>,
    now: &'a str,
    out: Vec<Condition>,
}

impl<'a> Conditions<'a> {
    fn new<K: Resource>(cr: &K, previous: &'a [Condition], now: &'a str) -> Self {
        Conditions {
            previous,
            generation: cr.meta().generation,
            now,
            out: Vec::new(),
        }
    }

    fn set(mut self, type_: &str, status: bool, reason: &str, message: &str) -> Self {
        let status = if status { "True" } else { "False" };
        let last_transition_time = self
            .previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map_or_else(|| self.now.to_string(), |c| c.last_transition_time.clone());
        self.out.push(Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: cap(reason, MAX_STATUS_REASON),
            message: cap(message, MAX_STATUS_MESSAGE),
            last_transition_time,
            observed_generation: self.generation,
        });
        self
    }

    /// Ready, Reconciling, Stalled with one reason and message, then the [`KEPT_CONDITIONS`]
    /// as they were.
    fn all(
        self,
        ready: bool,
        reconciling: bool,
        stalled: bool,
        reason: &str,
        msg: &str,
    ) -> Vec<Condition> {
        let previous = self.previous;
        let mut out = self
            .set(READY, ready, reason, msg)
            .set(RECONCILING, reconciling, reason, msg)
            .set(STALLED, stalled, reason, msg)
            .out;
        out.extend(
            previous
                .iter()
                .filter(|c| KEPT_CONDITIONS.contains(&c.type_.as_str()))
                .cloned(),
        );
        out
    }
}

/// The three conditions (`Ready`, `Reconciling`, `Stalled`) with these statuses, one reason and
/// message, each keeping its `lastTransitionTime` from `previous` while its status holds.
pub fn conditions<K: Resource>(
    cr: &K,
    previous: &[Condition],
    now: &str,
    [ready, reconciling, stalled]: [bool; 3],
    reason: &str,
    message: &str,
) -> Vec<Condition> {
    Conditions::new(cr, previous, now).all(ready, reconciling, stalled, reason, message)
}

/// A Kubernetes timestamp as status text (RFC 3339, whole seconds, UTC).
pub fn timestamp(time: &Time) -> String {
    time.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The run part of `cr`'s current status, if any.
pub fn current<K: RunKind>(cr: &K) -> Option<&RunStatus> {
    cr.status().map(K::common)
}

fn previous<K: RunKind>(cr: &K) -> &[Condition] {
    current(cr).map_or(&[], |s| s.conditions.as_slice())
}

/// `plan` (`status.plan`) when it is the plan of `cr`'s current run: a run waiting for, or
/// executing, an approved plan keeps it in every status it writes.
pub fn same_run_plan<K: Resource>(
    cr: &K,
    plan: Option<&crate::crd::approval::PlanStatus>,
) -> Option<crate::crd::approval::PlanStatus> {
    let run = RunId::of(cr).ok()?.to_string();
    plan.filter(|p| p.run.as_deref() == Some(run.as_str()))
        .cloned()
}

/// A new run's status: the kind's fields from [`RunKind::new_run_status`] and `common`.
fn new_run<K: RunKind>(cr: &K, common: RunStatus) -> K::Status {
    let mut status = cr.new_run_status();
    *K::common_mut(&mut status) = common;
    status
}

/// Pending and `Stalled=True` with `reason`: the run cannot start (invalid spec, missing Secret).
pub fn stalled<K: RunKind>(
    cr: &K,
    run: Option<RunId>,
    reason: &str,
    message: &str,
    now: &str,
) -> K::Status {
    new_run(
        cr,
        RunStatus {
            phase: Some(Phase::Pending),
            observed_generation: cr.meta().generation,
            run: run.map(|r| r.to_string()),
            conditions: Conditions::new(cr, previous(cr), now)
                .all(false, false, true, reason, message),
            ..RunStatus::default()
        },
    )
}

/// Running: the Job `job_name` of `run` was applied. Keeps the start time of the same run.
pub fn running<K: RunKind>(cr: &K, run: RunId, job_name: &str, now: &str) -> K::Status {
    let run_text = run.to_string();
    let start_time = current(cr)
        .filter(|s| s.run.as_deref() == Some(run_text.as_str()))
        .and_then(|s| s.start_time.clone())
        .unwrap_or_else(|| now.to_string());
    let message = format!(
        "Job {job_name} is running {} (run {run_text})",
        cr.describe()
    );
    new_run(
        cr,
        RunStatus {
            phase: Some(Phase::Running),
            observed_generation: cr.meta().generation,
            run: Some(run_text),
            job_name: Some(job_name.to_string()),
            start_time: Some(start_time),
            conditions: Conditions::new(cr, previous(cr), now).all(
                false,
                true,
                false,
                REASON_JOB_RUNNING,
                &message,
            ),
            ..RunStatus::default()
        },
    )
}

/// Failed with `JobDeleted`: the Job of a running run is gone; it is never recreated.
pub fn job_deleted<K: RunKind>(
    cr: &K,
    current: &K::Status,
    job_name: &str,
    now: &str,
) -> K::Status {
    let next_run = RunId::of(cr).map_or(1, |r| r.run + 1);
    let message = format!(
        "Job {job_name} was deleted before it finished; the run is not retried. To run again, bump the annotation: kubectl annotate {} {} {RUN_ANNOTATION}={next_run} --overwrite",
        K::kind(&()).to_ascii_lowercase(),
        cr.name_any()
    );
    let mut status = current.clone();
    let common = K::common_mut(&mut status);
    common.phase = Some(Phase::Failed);
    common.completion_time = Some(now.to_string());
    common.conditions = Conditions::new(cr, &K::common(current).conditions, now).all(
        false,
        false,
        true,
        REASON_JOB_DELETED,
        &message,
    );
    status
}

/// A worker container the kubelet cannot start because of a Secret, read from the pod status
/// (the operator never reads Secrets): its pod, the reason (`SecretNotFound` or `KeyNotFound`),
/// the Secret's name and the kubelet's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretProblem {
    pub pod: String,
    pub reason: &'static str,
    pub secret: String,
    pub kubelet_message: String,
}

/// The first worker container among `pods` waiting with [`CREATE_CONTAINER_CONFIG_ERROR`]
/// because of a Secret: the kubelet writes `secret "NAME" not found` for a missing Secret and
/// `couldn't find key KEY in Secret NAMESPACE/NAME` for a missing entry. Other config errors
/// (and a Secret volume that cannot be mounted, which the kubelet reports only in Events, the
/// pod staying `ContainerCreating`) are not recognised here.
pub fn secret_problem(pods: &[Pod]) -> Option<SecretProblem> {
    pods.iter().find_map(|pod| {
        let status = pod.status.as_ref()?;
        let containers = status.init_container_statuses.iter().flatten();
        containers
            .chain(status.container_statuses.iter().flatten())
            .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
            .filter(|w| w.reason.as_deref() == Some(CREATE_CONTAINER_CONFIG_ERROR))
            .find_map(|w| {
                let message = w.message.as_deref()?.trim();
                let (reason, secret) = parse_secret_message(message)?;
                Some(SecretProblem {
                    pod: pod.name_any(),
                    reason,
                    secret,
                    kubelet_message: cap(message, MAX_EVENT_NOTE),
                })
            })
    })
}

/// The worker pods among `pods` whose containers wait for their volumes (`ContainerCreating`
/// in a `Pending` pod): where the kubelet reports a Secret volume it cannot mount, in Events
/// only.
pub fn pods_waiting_for_volumes(pods: &[Pod]) -> Vec<&Pod> {
    pods.iter()
        .filter(|pod| {
            let Some(status) = pod.status.as_ref() else {
                return false;
            };
            status.phase.as_deref() == Some("Pending")
                && status
                    .container_statuses
                    .iter()
                    .flatten()
                    .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
                    .any(|w| w.reason.as_deref() == Some("ContainerCreating"))
        })
        .collect()
}

/// A Secret volume of `pod` the kubelet cannot mount, from the `FailedMount` `events` it wrote
/// on the pod (the newest one younger than [`FAILED_MOUNT_MAX_AGE_SECS`] at `now`):
/// `MountVolume.SetUp failed for volume "V" : secret "S" not found` for a missing Secret,
/// `... : references non-existent secret key: K` for a missing key (the Secret's name is then
/// read from the pod's own volume `V`). Other mount failures are not recognised.
pub fn mount_problem(
    pod: &Pod,
    events: &[Event],
    now: k8s_openapi::jiff::Timestamp,
) -> Option<SecretProblem> {
    let pod_name = pod.name_any();
    let mut recent: Vec<(k8s_openapi::jiff::Timestamp, &str)> = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some(FAILED_MOUNT))
        .filter(|e| e.involved_object.name.as_deref() == Some(pod_name.as_str()))
        .filter_map(|e| Some((event_time(e)?, e.message.as_deref()?.trim())))
        .filter(|(at, _)| now.duration_since(*at).as_secs() <= FAILED_MOUNT_MAX_AGE_SECS)
        .collect();
    recent.sort_by_key(|e| std::cmp::Reverse(e.0));
    recent.into_iter().find_map(|(_, message)| {
        let (volume, why) = parse_mount_message(message)?;
        let (reason, secret, note) = match parse_secret_message(why) {
            Some((reason, secret)) => (reason, secret, message.to_string()),
            None => {
                let key = why
                    .strip_prefix("references non-existent secret key:")?
                    .trim();
                let secret = volume_secret(pod, volume)?;
                let note = format!("{message} (Secret {secret} has no key {key})");
                (REASON_KEY_NOT_FOUND, secret, note)
            }
        };
        Some(SecretProblem {
            pod: pod_name.clone(),
            reason,
            secret,
            kubelet_message: cap(&note, MAX_EVENT_NOTE),
        })
    })
}

/// When the kubelet last wrote `event`.
fn event_time(event: &Event) -> Option<k8s_openapi::jiff::Timestamp> {
    let series = event
        .series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref());
    [
        series.map(|t| t.0),
        event.last_timestamp.as_ref().map(|t| t.0),
        event.event_time.as_ref().map(|t| t.0),
        event.first_timestamp.as_ref().map(|t| t.0),
    ]
    .into_iter()
    .flatten()
    .max()
}

/// The volume and the cause of a kubelet `MountVolume.SetUp failed for volume "V" : CAUSE`.
fn parse_mount_message(message: &str) -> Option<(&str, &str)> {
    let rest = message.strip_prefix("MountVolume.SetUp failed for volume \"")?;
    let (volume, tail) = rest.split_once('"')?;
    let cause = tail.trim_start().strip_prefix(':')?.trim();
    Some((volume, cause))
}

/// The Secret that `pod`'s volume `volume` mounts.
fn volume_secret(pod: &Pod, volume: &str) -> Option<String> {
    pod.spec
        .as_ref()?
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == volume)?
        .secret
        .as_ref()?
        .secret_name
        .clone()
}

/// The reason and Secret name of a kubelet config-error message about a Secret.
fn parse_secret_message(message: &str) -> Option<(&'static str, String)> {
    if let Some(rest) = message.strip_prefix("couldn't find key ") {
        let (_, secret) = rest.split_once(" in Secret ")?;
        let name = secret.rsplit('/').next()?.trim();
        return Some((REASON_KEY_NOT_FOUND, name.to_string()));
    }
    let rest = message
        .strip_prefix("secret \"")
        .or_else(|| message.strip_prefix("secrets \""))?;
    let (name, tail) = rest.split_once('"')?;
    tail.trim()
        .starts_with("not found")
        .then(|| (REASON_SECRET_NOT_FOUND, name.to_string()))
}

/// Still Running with its Job kept, but `Stalled=True` with the reason of `problem`: the worker
/// pod cannot start until the Secret is fixed (the kubelet retries, so the pod starts then
/// without anything else to do). `field` is the spec field that names the Secret, if known.
pub fn stalled_on_secret<K: RunKind>(
    cr: &K,
    run: RunId,
    job_name: &str,
    problem: &SecretProblem,
    field: Option<&str>,
    now: &str,
) -> K::Status {
    let mut status = running(cr, run, job_name, now);
    K::common_mut(&mut status).conditions = secret_conditions(cr, job_name, problem, field, now);
    status
}

/// The conditions of a run whose worker pod (of Job `job_name`) waits for the Secret of
/// `problem`: `Stalled=True` with its reason, the kubelet's text and the spec `field`.
pub fn secret_conditions<K: RunKind>(
    cr: &K,
    job_name: &str,
    problem: &SecretProblem,
    field: Option<&str>,
    now: &str,
) -> Vec<Condition> {
    let by = field
        .map(|f| format!(" (named by {f})"))
        .unwrap_or_default();
    let message = format!(
        "the worker pod {} cannot start: {}{by}. The Job {job_name} is kept: once the Secret \
         exists with that key in namespace {}, the kubelet starts the pod",
        problem.pod,
        problem.kubelet_message,
        cr.namespace().unwrap_or_default()
    );
    Conditions::new(cr, previous(cr), now).all(false, false, true, problem.reason, &message)
}

/// How a Job ended, from its conditions; `None` while it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobEnd {
    Complete,
    /// The Job's `Failed` condition reason and message (e.g. `BackoffLimitExceeded`).
    Failed {
        reason: String,
        message: String,
    },
}

/// The end of `job`: a `Complete` or `Failed` condition with status `True`.
pub fn job_end(job: &Job) -> Option<JobEnd> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .filter(|c| c.status == "True")
        .find_map(|c| match c.type_.as_str() {
            "Complete" => Some(JobEnd::Complete),
            "Failed" => Some(JobEnd::Failed {
                reason: c.reason.clone().unwrap_or_default(),
                message: c.message.clone().unwrap_or_default(),
            }),
            _ => None,
        })
}

/// The worker's result: the termination message of the newest terminated `tidemark`
/// container among `pods`, parsed; `Err` says why there is none.
pub fn task_result<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> Result<TaskResult, String> {
    let newest = pods
        .into_iter()
        .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
        .flatten()
        .filter(|c| c.name == CONTAINER_NAME)
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref())
        .max_by_key(|t| t.finished_at.as_ref().map(|f| f.0));
    let Some(terminated) = newest else {
        return Err("no terminated worker container was found".into());
    };
    let message = terminated.message.as_deref().unwrap_or("").trim();
    if message.is_empty() {
        return Err(format!(
            "the worker container exited with code {} without a result",
            terminated.exit_code
        ));
    }
    serde_json::from_str::<TaskResult>(message)
        .map_err(|e| format!("the worker's result is not readable ({e})"))
}

/// The result of one shard of a Job: the newest among the pods of its completion index.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardResult {
    /// The completion index (0 for a Job that is not Indexed).
    pub index: u32,
    /// The worker's result, or why there is none.
    pub result: Result<TaskResult, String>,
}

/// The message and error of a sharded run that did not complete: `completed` of `total` shards
/// did, and `shard` is the first that did not. A shard whose worker said Completed without
/// finishing its share is described by `not_done` after its message.
pub fn shard_failure(
    shard: &ShardResult,
    total: usize,
    completed: usize,
    not_done: Option<&str>,
) -> (String, Option<tidemark_task::ResultError>) {
    let (why, error) = match (&shard.result, not_done) {
        (Ok(r), Some(note)) if r.phase == PHASE_COMPLETED => {
            (format!("{}; {note}", r.message), r.error.clone())
        }
        (Ok(r), _) => (r.message.clone(), r.error.clone()),
        (Err(why), _) => (why.clone(), None),
    };
    let message = format!(
        "{} of {total} shards did not complete; shard {}: {why}",
        total - completed,
        shard.index
    );
    (message, error)
}

/// The shards of `job`: its `completions` when it is an Indexed Job, else 1.
pub fn job_shards(job: &Job) -> u32 {
    job.spec
        .as_ref()
        .filter(|s| s.completion_mode.as_deref() == Some("Indexed"))
        .and_then(|s| s.completions)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1)
        .max(1)
}

/// The result of each of `shards` shards among the pods of a Job: pods are grouped by their
/// completion index (a pod without one is shard 0), and each shard's result is the newest of
/// its pods' ([`task_result`]).
pub fn shard_results(pods: &[Pod], shards: u32) -> Vec<ShardResult> {
    let index_of = |pod: &Pod| {
        pod.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(COMPLETION_INDEX_LABEL))
            .and_then(|i| i.parse::<u32>().ok())
            .unwrap_or(0)
    };
    (0..shards.max(1))
        .map(|index| ShardResult {
            index,
            result: task_result(pods.iter().filter(|p| index_of(p) == index)),
        })
        .collect()
}

/// The result of a Job with one shard (the first, if there are more).
pub fn single_result(shards: Vec<ShardResult>) -> Result<TaskResult, String> {
    shards.into_iter().next().map_or_else(
        || Err("no terminated worker container was found".to_string()),
        |s| s.result,
    )
}

/// `snapshot_not_found` → `SnapshotNotFound`.
fn camel_case(label: &str) -> String {
    label
        .split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// The reasons a kind gives for a finished run, from the worker's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reasons {
    /// The reason of a successful run (e.g. `SnapshotCreated`, `OffsetsReset`).
    pub succeeded: String,
    /// The reason of a failed run when the kind knows better than the worker's error label
    /// (e.g. `VerificationFailed`).
    pub failed: Option<String>,
}

/// How a run ended: whether it succeeded, and the reason and message of its conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The worker reported `Completed` and the Job completed.
    pub succeeded: bool,
    /// The reason of the run's conditions (e.g. `BackupCompleted`, `JobFailed`).
    pub reason: String,
    /// Their message (the worker's, or why there is no result).
    pub message: String,
}

/// The outcome of the run whose Job `job_name` ended with `end`, given the worker's `result`,
/// which the kind records in `status` ([`RunKind::record_result`]). The run succeeded when the
/// worker reported `Completed` and the Job completed.
pub fn outcome<K: RunKind>(
    cr: &K,
    status: &mut K::Status,
    job_name: &str,
    end: &JobEnd,
    result: Result<TaskResult, String>,
) -> Outcome {
    let logs = format!("see kubectl logs job/{job_name}");
    let (succeeded, reason, message) = match (end, result) {
        (end, Ok(result)) => {
            let reasons = cr.record_result(status, &result);
            let worker_ok = result.phase == PHASE_COMPLETED;
            let succeeded = worker_ok && *end == JobEnd::Complete;
            let reason = if succeeded {
                reasons.succeeded
            } else if let Some(reason) = reasons.failed {
                reason
            } else if let (false, Some(error)) = (worker_ok, &result.error) {
                camel_case(&error.kind)
            } else {
                REASON_JOB_FAILED.to_string()
            };
            let message = match end {
                JobEnd::Failed { reason, message } if worker_ok => format!(
                    "Job {job_name} failed ({reason}: {message}) after the worker reported: {}",
                    result.message
                ),
                _ => result.message.clone(),
            };
            (succeeded, reason, message)
        }
        (JobEnd::Complete, Err(why)) => (
            false,
            REASON_RESULT_MISSING.to_string(),
            format!("Job {job_name} completed but {why}; {logs}"),
        ),
        (JobEnd::Failed { reason, message }, Err(why)) => (
            false,
            REASON_JOB_FAILED.to_string(),
            format!("Job {job_name} failed ({reason}: {message}) and {why}; {logs}"),
        ),
    };
    Outcome {
        succeeded,
        reason,
        message,
    }
}

/// The finished status of the run whose Job `job_name` ended with `end`, given the worker's
/// `result` ([`outcome`]). Returns the status and whether the run succeeded.
pub fn finished<K: RunKind>(
    cr: &K,
    current: &K::Status,
    job_name: &str,
    end: &JobEnd,
    result: Result<TaskResult, String>,
    now: &str,
) -> (K::Status, bool) {
    let mut status = current.clone();
    K::common_mut(&mut status).completion_time = Some(now.to_string());
    let Outcome {
        succeeded,
        reason,
        message,
    } = outcome(cr, &mut status, job_name, end, result);
    let common = K::common_mut(&mut status);
    common.phase = Some(if succeeded {
        Phase::Completed
    } else {
        Phase::Failed
    });
    common.conditions = Conditions::new(cr, &K::common(current).conditions, now)
        // A failed run will not progress until the spec or run annotation changes: Stalled, so
        // kstatus (Flux) and Argo CD report it as failed rather than healthy.
        .all(succeeded, false, !succeeded, &reason, &message);
    (status, succeeded)
}

/// `result`, made `Failed` when the worker reported `Completed` although its `what` (backup,
/// restore) is not `complete`, with why added to the message.
pub fn failed_unless_complete(mut result: TaskResult, complete: bool, what: &str) -> TaskResult {
    if result.phase == PHASE_COMPLETED && !complete {
        result.phase = PHASE_FAILED.to_string();
        result.message = format!(
            "{}; the worker did not report the {what} complete",
            result.message
        );
    }
    result
}

/// A worker count as a status integer (saturating).
pub fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The `Ready` condition of a run's status, if any.
pub fn ready(status: &RunStatus) -> Option<&Condition> {
    status.conditions.iter().find(|c| c.type_ == READY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::*;
    use crate::crd::KafkaOffsetRollbackStatus;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus,
    };

    fn pod(finished: i64, message: Option<&str>) -> Pod {
        Pod {
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    name: CONTAINER_NAME.into(),
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: 1,
                            finished_at: Some(Time(
                                k8s_openapi::jiff::Timestamp::from_second(finished).expect("time"),
                            )),
                            message: message.map(String::from),
                            ..ContainerStateTerminated::default()
                        }),
                        ..ContainerState::default()
                    }),
                    ..ContainerStatus::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn the_newest_terminated_container_wins() {
        let pods = [
            pod(100, Some(r#"{"phase":"Failed","message":"first attempt"}"#)),
            pod(
                200,
                Some(r#"{"phase":"Completed","message":"second attempt"}"#),
            ),
        ];
        assert_eq!(
            task_result(&pods).expect("result").message,
            "second attempt"
        );
        let err = task_result(&[pod(1, Some("not json"))]).expect_err("garbled");
        assert!(err.contains("not readable"), "{err}");
        let err = task_result(&[pod(1, None)]).expect_err("missing");
        assert!(err.contains("exited with code 1 without a result"), "{err}");
        assert!(task_result(&[]).is_err());
    }

    fn indexed_pod(index: u32, finished: i64, message: &str) -> Pod {
        let mut pod = pod(finished, Some(message));
        pod.metadata.labels = Some(
            [(COMPLETION_INDEX_LABEL.to_string(), index.to_string())]
                .into_iter()
                .collect(),
        );
        pod
    }

    #[test]
    fn shards_are_the_newest_result_of_each_completion_index() {
        let pods = [
            indexed_pod(0, 100, r#"{"phase":"Failed","message":"first attempt"}"#),
            indexed_pod(2, 150, r#"{"phase":"Completed","message":"shard 2"}"#),
            indexed_pod(0, 200, r#"{"phase":"Completed","message":"retried"}"#),
        ];
        let shards = shard_results(&pods, 3);
        let messages: Vec<Result<String, String>> = shards
            .iter()
            .map(|s| s.result.clone().map(|r| r.message))
            .collect();
        assert_eq!(
            messages,
            [
                Ok("retried".to_string()),
                Err("no terminated worker container was found".to_string()),
                Ok("shard 2".to_string()),
            ]
        );
        assert_eq!(
            shards.iter().map(|s| s.index).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        // Pods of a Job that is not Indexed are one shard.
        let plain = [
            pod(300, Some(r#"{"phase":"Completed","message":"newest"}"#)),
            pod(100, Some(r#"{"phase":"Failed","message":"oldest"}"#)),
        ];
        let one = single_result(shard_results(&plain, 1)).expect("a result");
        assert_eq!(one.message, "newest");
        assert!(single_result(Vec::new()).is_err());
    }

    #[test]
    fn the_kubelets_secret_messages_name_the_secret() {
        assert_eq!(
            parse_secret_message("secret \"kafka-creds\" not found"),
            Some((REASON_SECRET_NOT_FOUND, "kafka-creds".to_string()))
        );
        assert_eq!(
            parse_secret_message("couldn't find key password in Secret kafka/kafka-creds"),
            Some((REASON_KEY_NOT_FOUND, "kafka-creds".to_string()))
        );
        assert_eq!(
            parse_secret_message("configmap \"task\" not found"),
            None,
            "not about a Secret"
        );
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": {"phase": "Pending", "containerStatuses": [{
                "name": "tidemark", "image": "", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"waiting": {
                    "reason": "CreateContainerConfigError",
                    "message": "secret \"kafka-creds\" not found"}}}]}
        }))
        .expect("pod");
        let problem = secret_problem(&[pod]).expect("a problem");
        assert_eq!(problem.pod, "p");
        assert_eq!(problem.secret, "kafka-creds");
        assert_eq!(problem.reason, REASON_SECRET_NOT_FOUND);
    }

    /// A worker pod `ContainerCreating` with the Secret volume `kafka-ca` (Secret `ca-bundle`).
    fn pod_creating() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "tidemark"}], "volumes": [
                {"name": "task", "configMap": {"name": "t"}},
                {"name": "kafka-ca", "secret": {"secretName": "ca-bundle"}}]},
            "status": {"phase": "Pending", "containerStatuses": [{
                "name": "tidemark", "image": "", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}
        }))
        .expect("pod")
    }

    fn failed_mount(pod: &str, message: &str, at: &str) -> Event {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("{pod}.1")},
            "involvedObject": {"kind": "Pod", "name": pod},
            "reason": "FailedMount", "type": "Warning", "message": message,
            "lastTimestamp": at
        }))
        .expect("event")
    }

    #[test]
    fn the_kubelets_failed_mount_events_name_the_secret_and_key() {
        let pod = pod_creating();
        assert_eq!(
            pods_waiting_for_volumes(std::slice::from_ref(&pod)).len(),
            1
        );
        let now: k8s_openapi::jiff::Timestamp = "2024-12-01T12:05:00Z".parse().expect("time");
        let key = failed_mount(
            "p",
            "MountVolume.SetUp failed for volume \"kafka-ca\" : references non-existent secret key: ca.crt",
            "2024-12-01T12:04:00Z",
        );
        let problem = mount_problem(&pod, &[key], now).expect("a problem");
        assert_eq!(problem.reason, REASON_KEY_NOT_FOUND);
        assert_eq!(problem.secret, "ca-bundle");
        assert!(problem
            .kubelet_message
            .contains("Secret ca-bundle has no key ca.crt"));

        let missing = failed_mount(
            "p",
            "MountVolume.SetUp failed for volume \"kafka-ca\" : secret \"ca-bundle\" not found",
            "2024-12-01T12:04:30Z",
        );
        let problem = mount_problem(&pod, &[missing], now).expect("a problem");
        assert_eq!(problem.reason, REASON_SECRET_NOT_FOUND);
        assert_eq!(problem.secret, "ca-bundle");

        // Old Events, another pod's, and other mount failures say nothing.
        let old = failed_mount(
            "p",
            "MountVolume.SetUp failed for volume \"kafka-ca\" : secret \"ca-bundle\" not found",
            "2024-12-01T11:00:00Z",
        );
        assert_eq!(mount_problem(&pod, &[old], now), None);
        let other = failed_mount(
            "q",
            "MountVolume.SetUp failed for volume \"kafka-ca\" : secret \"ca-bundle\" not found",
            "2024-12-01T12:04:30Z",
        );
        assert_eq!(mount_problem(&pod, &[other], now), None);
        let pvc = failed_mount(
            "p",
            "MountVolume.SetUp failed for volume \"data\" : timed out waiting for the condition",
            "2024-12-01T12:04:30Z",
        );
        assert_eq!(mount_problem(&pod, &[pvc], now), None);

        // A pod already running is not looked at.
        let mut running = pod_creating();
        running.status.as_mut().expect("status").phase = Some("Running".into());
        assert!(pods_waiting_for_volumes(&[running]).is_empty());
    }

    #[test]
    fn indexed_jobs_have_one_shard_per_completion() {
        let job = |mode: Option<&str>, completions: Option<i32>| Job {
            spec: Some(k8s_openapi::api::batch::v1::JobSpec {
                completion_mode: mode.map(String::from),
                completions,
                ..Default::default()
            }),
            ..Job::default()
        };
        assert_eq!(job_shards(&job(Some("Indexed"), Some(3))), 3);
        assert_eq!(job_shards(&job(Some("NonIndexed"), Some(3))), 1);
        assert_eq!(job_shards(&job(None, None)), 1);
        assert_eq!(job_shards(&Job::default()), 1);
    }

    #[test]
    fn transition_times_are_kept_while_a_condition_holds() {
        let mut cr = korb(QUICK_SNAPSHOT);
        let first = stalled(
            &cr,
            None,
            REASON_SECRET_NOT_FOUND,
            "missing",
            "2024-01-01T00:00:00Z",
        );
        cr.status = Some(first.clone());
        let again = stalled(
            &cr,
            None,
            REASON_SECRET_NOT_FOUND,
            "missing",
            "2024-01-01T00:05:00Z",
        );
        assert_eq!(first, again, "nothing changed, nothing to write");
        let run = RunId::of(&cr).expect("run");
        let next = running(&cr, run, "quick-snapshot-g1-r0", "2024-01-01T00:06:00Z");
        let time = |s: &KafkaOffsetRollbackStatus, t: &str| {
            s.common
                .conditions
                .iter()
                .find(|c| c.type_ == t)
                .map(|c| c.last_transition_time.clone())
        };
        // Ready stays False: its transition time is kept; Stalled and Reconciling flip.
        assert_eq!(time(&next, READY).as_deref(), Some("2024-01-01T00:00:00Z"));
        assert_eq!(
            time(&next, STALLED).as_deref(),
            Some("2024-01-01T00:06:00Z")
        );
        assert_eq!(
            time(&next, RECONCILING).as_deref(),
            Some("2024-01-01T00:06:00Z")
        );
    }

    #[test]
    fn failure_reasons_come_from_the_worker_or_the_job() {
        let cr = korb(EMERGENCY_ROLLBACK);
        let current = KafkaOffsetRollbackStatus::default();
        let failed = JobEnd::Failed {
            reason: "PodFailurePolicy".into(),
            message: "exit code 3".into(),
        };
        let result: TaskResult = serde_json::from_str(
            r#"{"phase":"Failed","operation":"rollback","snapshotId":"s1","message":"snapshot s1 not found","error":{"kind":"snapshot_not_found","exitCode":3}}"#,
        )
        .expect("result");
        let (status, ok) = finished(&cr, &current, "j", &failed, Ok(result), "t");
        assert!(!ok);
        let cond = ready(&status.common).expect("ready");
        assert_eq!(
            (cond.status.as_str(), cond.reason.as_str()),
            ("False", "SnapshotNotFound")
        );
        assert_eq!(cond.message, "snapshot s1 not found");

        let (status, _) = finished(&cr, &current, "j", &failed, Err("no result".into()), "t");
        let cond = ready(&status.common).expect("ready");
        assert_eq!(cond.reason, REASON_JOB_FAILED);
        assert_eq!(
            cond.message,
            "Job j failed (PodFailurePolicy: exit code 3) and no result; see kubectl logs job/j"
        );
        let (status, _) = finished(&cr, &current, "j", &JobEnd::Complete, Err("x".into()), "t");
        assert_eq!(ready_reason(&status), REASON_RESULT_MISSING);
        assert_eq!(status.common.phase, Some(Phase::Failed));
    }

    fn ready_reason(status: &KafkaOffsetRollbackStatus) -> &str {
        ready(&status.common).map_or("", |c| c.reason.as_str())
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary_with_a_marker() {
        assert_eq!(cap("short", 10), "short");
        let exact = "x".repeat(32);
        assert_eq!(cap(&exact, 32), exact);
        let long = "é".repeat(100); // two bytes each
        let cut = cap(&long, 41);
        assert!(cut.len() <= 41, "{}", cut.len());
        assert!(cut.ends_with(TRUNCATED), "{cut}");
        assert!(cut.starts_with("éé"), "{cut}");
        // A condition never carries more than the cap, however long the message.
        let cr = korb(QUICK_SNAPSHOT);
        let huge = "m".repeat(100 * 1024);
        let status = stalled(&cr, None, REASON_SECRET_NOT_FOUND, &huge, "t");
        for c in &status.common.conditions {
            assert!(c.message.len() <= MAX_STATUS_MESSAGE, "{}", c.message.len());
            assert!(c.message.ends_with(TRUNCATED));
        }
    }

    #[test]
    fn only_a_child_the_resource_controls_is_its_own() {
        let meta = |owners: serde_json::Value| -> ObjectMeta {
            serde_json::from_value(serde_json::json!({
                "name": "orders-kr-g1-r0", "namespace": "ns", "ownerReferences": owners
            }))
            .expect("meta")
        };
        let owner = |uid: &str, controller: bool| {
            serde_json::json!({"apiVersion": "tidemark.dev/v1alpha1", "kind": "KafkaOffsetReset",
                               "name": "orders", "uid": uid, "controller": controller})
        };
        assert_eq!(
            foreign_child(&meta(serde_json::json!([owner("me", true)])), "Job", "me"),
            None
        );
        assert_eq!(
            foreign_child(&meta(serde_json::json!([owner("other", true)])), "Job", "me")
                .as_deref(),
            Some("Job ns/orders-kr-g1-r0 already exists and is owned by KafkaOffsetReset orders (uid other); it is left as it is. Delete or rename that Job, or rename this resource")
        );
        // A reference that is not the controller does not make it ours.
        let message = foreign_child(&meta(serde_json::json!([owner("me", false)])), "Job", "me");
        assert!(message.expect("foreign").contains("has no owner"));
        let message = foreign_child(&meta(serde_json::Value::Null), "Job", "me");
        assert!(message.expect("foreign").contains("has no owner"));
    }

    #[test]
    fn labels_become_reasons() {
        assert_eq!(camel_case("snapshot_not_found"), "SnapshotNotFound");
        assert_eq!(camel_case("tls_failed"), "TlsFailed");
    }
}

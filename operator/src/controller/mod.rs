//! The controllers, one per kind (a kube-runtime `Controller` each), and what they share: the
//! [`RunKind`] view of a kind that runs as worker Jobs (each kind's module implements it; the
//! reconcile in [`worker`] is written once against it, and a kind may replace it — a
//! KafkaBackup with a schedule runs a CronJob, see [`backup`]; a KafkaRestore first resolves the
//! KafkaBackup it names, see [`restore`]), the [`Context`], the [`Error`] of a
//! reconcile with its metric label, and the error policy (an invalid spec waits for a change, a
//! missing Secret or referenced resource is polled, API errors back off).

pub mod approval;
pub mod backup;
pub mod drill;
pub mod reset;
pub mod restore;
pub mod rollback;
pub mod status;
pub mod stop;
pub mod sweep;
pub mod worker;

#[cfg(test)]
mod scenarios;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::NamespaceResourceScope;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tidemark_task::TaskResult;

use crate::build::{RunId, WorkerKind, OWNER_KIND_LABEL};
use crate::config::OperatorConfig;
use crate::crd::approval::{Approval, PlanStatus};
use crate::crd::status::RunStatus;
use crate::crd::{KafkaBackup, KafkaOffsetReset, KafkaOffsetRollback, KafkaRestore};
use crate::metrics::Metrics;
use crate::validate::SpecChecks;
use status::{Reasons, ShardResult};

/// Every kind the operator runs a controller for ([`run`]), as metrics and logs name them.
pub const KINDS: [&str; 4] = [backup::KIND, reset::KIND, rollback::KIND, restore::KIND];

/// What the shared reconcile ([`worker::reconcile`]) needs from a kind beyond its builders
/// ([`WorkerKind`]) and checks ([`SpecChecks`]): its status type, which embeds the shared
/// [`RunStatus`], and how the worker's result fills in the kind's own status fields.
pub trait RunKind:
    WorkerKind
    + SpecChecks
    + Resource<Scope = NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The kind's status: [`RunStatus`] (flattened) plus its own results.
    type Status: Clone + Default + PartialEq + Serialize + std::fmt::Debug + Send + Sync;

    /// `status`, if any.
    fn status(&self) -> Option<&Self::Status>;

    /// The run part of a status.
    fn common(status: &Self::Status) -> &RunStatus;

    /// The run part of a status, to change it.
    fn common_mut(status: &mut Self::Status) -> &mut RunStatus;

    /// The status of a new run before any result: the kind's fields known from the spec (the
    /// run part is filled in by the caller).
    fn new_run_status(&self) -> Self::Status;

    /// What a run does, for the Running condition: `operation snapshot`, `reset toEarliest`.
    fn describe(&self) -> String;

    /// Copies the worker's `result` into the kind's fields of `status`, and says which reason
    /// a successful (or failed) run gets.
    fn record_result(&self, status: &mut Self::Status, result: &TaskResult) -> Reasons;

    /// `spec.approval` and `spec.approvalTimeout`, for a kind whose runs may wait for a person
    /// to approve their plan ([`approval`]). Default `None`: never.
    fn approval(&self) -> Option<(Approval, Option<&str>)> {
        None
    }

    /// `status.plan` (the plan of a run that waits for approval), if the kind has one.
    fn plan(_status: &Self::Status) -> Option<&PlanStatus> {
        None
    }

    /// Sets `status.plan` (nothing for a kind without one).
    fn set_plan(_status: &mut Self::Status, _plan: Option<PlanStatus>) {}

    /// Whether resources of the kind may run on a schedule: the controller then also owns (and
    /// watches) CronJobs.
    const SCHEDULED: bool = false;

    /// Reconciles the resource. The default runs each [`RunId`] once
    /// ([`worker::reconcile_run`]).
    fn reconcile(&self, ctx: &Context) -> impl Future<Output = Result<Action, Error>> + Send {
        worker::reconcile_run(self, ctx)
    }

    /// Whether run `run` starts now: called just before its children are applied, once the
    /// runs it supersedes have stopped. `None` starts it; else the action while it waits (the
    /// kind has written why in the status). The default starts at once; a KafkaOffsetRollback
    /// waits for the snapshot it names ([`rollback`]).
    fn before_start(
        &self,
        _ctx: &Context,
        _run: RunId,
    ) -> impl Future<Output = Result<Option<Action>, Error>> + Send {
        async { Ok(None) }
    }

    /// Combines the results of an ended Job's shards (one per completion index; a Job that is
    /// not Indexed has one) into the run's result, recording in `status` what the kind reports
    /// about its shards. The default takes the first shard's result.
    fn combine_shards(
        &self,
        _status: &mut Self::Status,
        shards: Vec<ShardResult>,
    ) -> Result<TaskResult, String> {
        status::single_result(shards)
    }

    /// What the kind does once a run has ended, before its final `status` is written: fill in
    /// fields that depend on the outcome, create follow-up children. The default does nothing.
    fn after_run(
        &self,
        _ctx: &Context,
        _status: &mut Self::Status,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        async { Ok(()) }
    }
}

/// A kind a controller watches: a [`RunKind`] that the API server stores, listed and watched
/// whole. (A [`RunKind`] may also be a view the pipeline builds from one, such as a resolved
/// KafkaRestore.)
pub trait ControlledKind: RunKind + Serialize + DeserializeOwned {}

impl<K: RunKind + Serialize + DeserializeOwned> ControlledKind for K {}

/// How often a run whose worker pod waits for a Secret is looked at again (the operator cannot
/// read or watch Secrets; the pod's status says when it starts).
pub const SECRET_POLL: Duration = Duration::from_secs(30);
/// How often a running Job whose pods have not all started is looked at again: a pod the
/// kubelet cannot start for want of a Secret is reported within this time.
pub const POD_START_POLL: Duration = Duration::from_secs(10);
/// How often a resource waiting for a referenced resource (a KafkaRestore for its
/// KafkaBackup's first completed backup) is checked again.
pub const REFERENCE_POLL: Duration = Duration::from_secs(30);
/// How often a run waiting for the runs it supersedes to stop is looked at again, besides the
/// watch events of their Jobs.
pub const PREVIOUS_RUN_POLL: Duration = Duration::from_secs(5);
/// How often a running Job is looked at again, besides the Job's own watch events.
pub const RUNNING_POLL: Duration = Duration::from_secs(60);
/// First and longest delay before retrying after an API error.
const BACKOFF_MIN: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Why a reconcile failed. Each variant is one step of the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec cannot run (the `Stalled` condition says why); waits for a change.
    #[error("invalid spec ({reason}): {message}")]
    InvalidSpec {
        reason: &'static str,
        message: String,
    },
    /// A referenced resource is missing or not ready (a KafkaRestore's KafkaBackup without a
    /// completed backup; the `Stalled` condition says which); polled.
    #[error("waiting for a referenced resource ({reason}): {message}")]
    MissingReference {
        reason: &'static str,
        message: String,
    },
    /// A child's name is taken by an object the resource does not control (the `Stalled`
    /// condition names it and its owner); nothing is applied over it, and it is polled.
    #[error("child conflict: {message}")]
    ChildConflict { message: String },
    /// A child could not be built from a spec that passed validation.
    #[error("failed to build the children")]
    Build(#[source] crate::build::Error),
    /// Reading an object failed.
    #[error("failed to read {what}")]
    Fetch {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// Server-side apply of a child failed.
    #[error("failed to apply {what}")]
    Apply {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// Deleting a superseded child failed.
    #[error("failed to delete {what}")]
    Delete {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// Writing the status failed.
    #[error("failed to write the status of {what}")]
    Status {
        what: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// A short stable label, for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::InvalidSpec { .. } => "invalid_spec",
            Error::MissingReference { .. } => "missing_reference",
            Error::ChildConflict { .. } => "child_conflict",
            Error::Build(_) => "build",
            Error::Fetch { .. } => "fetch",
            Error::Apply { .. } => "apply",
            Error::Delete { .. } => "delete",
            Error::Status { .. } => "status",
        }
    }
}

/// What every reconcile gets: the client, the Event recorder, the operator configuration and
/// the metrics.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub config: OperatorConfig,
    pub metrics: Arc<Metrics>,
    /// Consecutive API failures per object (`namespace/name`), for the retry backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context whose Events are reported as `reporter` (the operator's name and pod).
    pub fn new(
        client: Client,
        config: OperatorConfig,
        metrics: Arc<Metrics>,
        reporter: Reporter,
    ) -> Self {
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config,
            metrics,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes an Event about `obj`; a failure is logged, never fatal (status carries the
    /// same information).
    pub async fn publish<K>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
    ) where
        K: Resource<DynamicType = ()>,
    {
        let event = Event {
            type_,
            reason: status::cap(reason, 128),
            note: Some(status::cap(note, status::MAX_EVENT_NOTE)),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(%error, reason, "failed to publish an Event");
        }
    }

    fn key<K: Resource>(obj: &K) -> String {
        format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
    }

    /// Forgets the failures of `obj` after a successful reconcile.
    pub fn succeeded<K: Resource>(&self, obj: &K) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&Self::key(obj));
        }
    }

    /// The delay before retrying `obj` after one more failure: 5 s, doubling, at most 5 min.
    fn backoff<K: Resource>(&self, obj: &K) -> Duration {
        let n = match self.failures.lock() {
            Ok(mut failures) => {
                let n = failures.entry(Self::key(obj)).or_insert(0);
                *n = n.saturating_add(1);
                *n
            }
            Err(_) => 1,
        };
        BACKOFF_MIN
            .saturating_mul(1u32 << (n - 1).min(10))
            .min(BACKOFF_MAX)
    }
}

/// Error policy of every controller: an invalid spec waits for a change, a missing or unready
/// referenced resource is checked again in [`REFERENCE_POLL`], anything else (API errors) retries with backoff.
pub fn error_policy<K>(obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    ctx.metrics
        .reconcile_failure(&K::kind(&()), error.metric_label());
    match error {
        Error::InvalidSpec { .. } | Error::Build(_) => Action::await_change(),
        Error::MissingReference { .. } | Error::ChildConflict { .. } => {
            Action::requeue(REFERENCE_POLL)
        }
        _ => {
            let delay = ctx.backoff(obj.as_ref());
            tracing::warn!(
                error = %error,
                cause = %source_chain(error),
                retry_in_seconds = delay.as_secs(),
                "reconcile failed"
            );
            Action::requeue(delay)
        }
    }
}

/// The `source()` chain of `error`, joined with `: `.
pub fn source_chain(error: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut next = error.source();
    while let Some(e) = next {
        let text = e.to_string();
        // Many errors repeat their source in their own message; keep each text once.
        if !parts.last().is_some_and(|p: &String| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// Runs every controller until `shutdown` resolves: for each watch scope of the configuration
/// (every namespace, or each configured namespace in turn), one controller per kind whose
/// watches of the resources and of their Jobs, ConfigMaps and CronJobs are all in that scope.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let shutdown = shutdown.shared();
    let mut controllers = vec![sweep::run(ctx.clone(), shutdown.clone()).boxed()];
    for ns in ctx.config.watch_scopes() {
        controllers
            .push(controller::<KafkaBackup>(ctx.clone(), ns.clone(), shutdown.clone()).boxed());
        controllers.push(
            controller::<KafkaOffsetRollback>(ctx.clone(), ns.clone(), shutdown.clone()).boxed(),
        );
        controllers.push(
            controller::<KafkaOffsetReset>(ctx.clone(), ns.clone(), shutdown.clone()).boxed(),
        );
        controllers.push(controller::<KafkaRestore>(ctx.clone(), ns, shutdown.clone()).boxed());
    }
    futures::future::join_all(controllers).await;
}

/// The watched APIs of one controller of kind `K` in one scope (`None`: all namespaces): the
/// resources, their Jobs and ConfigMaps, and (for a kind that runs on a schedule) CronJobs.
struct Watched<K> {
    resources: Api<K>,
    jobs: Api<Job>,
    config_maps: Api<ConfigMap>,
    cron_jobs: Option<Api<CronJob>>,
}

impl<K: RunKind> Watched<K> {
    fn new(client: &Client, ns: Option<&str>) -> Self {
        Watched {
            resources: api::<K>(client, ns),
            jobs: api::<Job>(client, ns),
            config_maps: api::<ConfigMap>(client, ns),
            cron_jobs: K::SCHEDULED.then(|| api::<CronJob>(client, ns)),
        }
    }
}

/// The controller of kind `K` in namespace `ns` (or all namespaces): the resources, and the
/// Jobs, task ConfigMaps (and, for a kind that runs on a schedule, CronJobs) labelled as its
/// children, until `shutdown` resolves.
async fn controller<K: ControlledKind>(
    ctx: Arc<Context>,
    ns: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let watched = Watched::<K>::new(&ctx.client, ns.as_deref());
    // Only this kind's children are watched (and cached).
    let children =
        watcher::Config::default().labels(&format!("{OWNER_KIND_LABEL}={}", K::kind(&())));
    let mut controller =
        Controller::new(watched.resources, watcher::Config::default().any_semantic())
            .owns(watched.jobs, children.clone())
            .owns(watched.config_maps, children.clone());
    if let Some(cron_jobs) = watched.cron_jobs {
        controller = controller.owns(cron_jobs, children);
    }
    controller
        .graceful_shutdown_on(shutdown)
        .run(worker::reconcile::<K>, error_policy::<K>, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(object = %obj, "reconciled"),
                Err(error) => tracing::debug!(%error, "reconcile error"),
            }
        })
        .await;
}

/// The API of `K` in namespace `ns`, or in all namespaces.
fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

#[cfg(test)]
mod watch_scope_tests {
    use super::*;
    use crate::config::ENV_WATCH_NAMESPACE;
    use http::{Request, Response};
    use kube::client::Body;

    fn client() -> Client {
        let (service, _handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        Client::new(service, "default")
    }

    fn config(list: &str) -> OperatorConfig {
        OperatorConfig::from_lookup(|k| (k == ENV_WATCH_NAMESPACE).then(|| list.to_string()))
            .expect("valid")
    }

    fn urls<K: RunKind>(watched: &Watched<K>) -> Vec<String> {
        let mut urls = vec![
            watched.resources.resource_url().to_string(),
            watched.jobs.resource_url().to_string(),
            watched.config_maps.resource_url().to_string(),
        ];
        urls.extend(
            watched
                .cron_jobs
                .iter()
                .map(|a| a.resource_url().to_string()),
        );
        urls
    }

    #[tokio::test]
    async fn each_listed_namespace_gets_watches_of_every_child_kind_in_that_namespace_only() {
        let client = client();
        let config = config("team-a,team-b");
        let scopes = config.watch_scopes();
        assert_eq!(scopes.len(), 2);
        for (scope, ns) in scopes.iter().zip(["team-a", "team-b"]) {
            let backup = urls(&Watched::<KafkaBackup>::new(&client, scope.as_deref()));
            let restore = urls(&Watched::<KafkaRestore>::new(&client, scope.as_deref()));
            // A backup also watches its CronJobs; a restore has no schedule.
            assert_eq!(backup.len(), 4, "{backup:?}");
            assert_eq!(restore.len(), 3, "{restore:?}");
            for url in backup.iter().chain(&restore) {
                assert!(url.contains(&format!("/namespaces/{ns}/")), "{url}");
            }
        }
    }

    #[tokio::test]
    async fn no_watch_namespace_watches_every_namespace() {
        let client = client();
        let scopes = OperatorConfig::default().watch_scopes();
        assert_eq!(scopes, [None]);
        for url in urls(&Watched::<KafkaOffsetReset>::new(&client, None)) {
            assert!(!url.contains("/namespaces/"), "{url}");
        }
    }
}

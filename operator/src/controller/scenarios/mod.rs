//! Scenario tests of the reconcile against a tower-test mock API server, one module per kind:
//! each scenario lists the exact API calls expected, in order (method, path, key parts of the
//! body), with realistic replies; a missing call or an extra one fails the test within a short
//! timeout. This module is the mock server and the helpers every kind's scenarios share.

mod approval;
mod backup;
mod drill;
mod reset;
mod restore;
mod rollback;
mod runs;
mod sweep;

use std::panic::resume_unwind;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::Client;
use serde_json::{json, Value};
use tower_test::mock;

use super::worker::reconcile;
use super::{error_policy, Context, ControlledKind, Error};
use crate::config::OperatorConfig;
use crate::metrics::Metrics;

type Handle = mock::Handle<Request<Body>, Response<Body>>;
type Check = Box<dyn Fn(&Value, &str) + Send>;

const NS: &str = "kafka-backup";
const TIMEOUT: Duration = Duration::from_secs(2);

/// What the mock API server answers.
enum Reply {
    /// This status and body.
    Json(StatusCode, Value),
    /// The request body back (what a server-side apply or an Event create returns).
    Echo,
    /// `obj` with the `status` of the request (what a status patch returns).
    WithStatus(Value),
}

/// One expected API call.
struct Call {
    /// Calls made just before this one (the read of a child before it is applied).
    before: Vec<Call>,
    method: Method,
    path: String,
    check: Check,
    reply: Reply,
}

impl Call {
    fn new(method: Method, path: impl Into<String>, reply: Reply) -> Self {
        Call {
            before: Vec::new(),
            method,
            path: path.into(),
            check: Box::new(|_, _| {}),
            reply,
        }
    }

    /// Adds `check` to the checks of the request (body, query).
    fn check(mut self, check: impl Fn(&Value, &str) + Send + 'static) -> Self {
        let previous = self.check;
        self.check = Box::new(move |body, query| {
            previous(body, query);
            check(body, query);
        });
        self
    }
}

fn not_found(kind: &str, name: &str) -> Reply {
    Reply::Json(
        StatusCode::NOT_FOUND,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("{kind} \"{name}\" not found"), "reason": "NotFound", "code": 404
        }),
    )
}

fn get(path: impl Into<String>, reply: Reply) -> Call {
    Call::new(Method::GET, path, reply)
}

/// A server-side apply of a namespaced child, under the operator's field manager; a child the
/// resource owns (anything but the shared worker ServiceAccount) is read first, and is not
/// there yet ([`Call::existing`] answers otherwise).
fn apply(path: impl Into<String>, check: impl Fn(&Value) + Send + 'static) -> Call {
    let path = path.into();
    let mut call = Call::new(Method::PATCH, path.clone(), Reply::Echo).check(move |body, query| {
        assert!(query.contains("fieldManager=tidemark-operator"), "{query}");
        assert!(query.contains("force=true"), "{query}");
        check(body);
    });
    if !path.contains("/serviceaccounts/") {
        let name = path.rsplit('/').next().unwrap_or_default().to_string();
        call.before.push(get(path, not_found("object", &name)));
    }
    call
}

impl Call {
    /// This apply's read of the child answered with `obj` (an existing child).
    fn existing(mut self, obj: Value) -> Self {
        if let Some(read) = self.before.first_mut() {
            read.reply = Reply::Json(StatusCode::OK, obj);
        }
        self
    }
}

/// `calls` with the calls each makes before it ([`Call::before`]) in their place.
fn flatten(calls: Vec<Call>) -> Vec<Call> {
    let mut out = Vec::new();
    for mut call in calls {
        let before = std::mem::take(&mut call.before);
        out.extend(flatten(before));
        out.push(call);
    }
    out
}

fn status_path<K: ControlledKind>(name: &str) -> String {
    format!(
        "/apis/tidemark.dev/v1alpha1/namespaces/{NS}/{}/{name}/status",
        K::plural(&())
    )
}

/// The status patch (server-side apply); `check` sees the status.
fn status<K: ControlledKind>(cr: &K, check: impl Fn(&Value) + Send + 'static) -> Call {
    let name = cr.meta().name.clone().expect("name");
    let obj = serde_json::to_value(cr).expect("cr");
    let kind = K::kind(&()).to_string();
    Call::new(
        Method::PATCH,
        status_path::<K>(&name),
        Reply::WithStatus(obj),
    )
    .check(move |body, query| {
        assert!(query.contains("fieldManager=tidemark-operator"), "{query}");
        assert_eq!(body["kind"], kind.as_str());
        check(&body["status"]);
    })
}

/// An Event about a resource of `kind` with `reason` and `type_`.
fn event(kind: impl Into<String>, type_: &'static str, reason: &'static str) -> Call {
    let kind = kind.into();
    Call::new(
        Method::POST,
        format!("/apis/events.k8s.io/v1/namespaces/{NS}/events"),
        Reply::Echo,
    )
    .check(move |body, _| {
        assert_eq!(body["reason"], reason, "{body}");
        assert_eq!(body["type"], type_, "{body}");
        assert_eq!(body["regarding"]["kind"], kind.as_str(), "{body}");
    })
}

/// The condition `type_` of a status.
fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

fn assert_condition(status: &Value, type_: &str, value: &str, reason: &str) {
    let c = condition(status, type_);
    assert_eq!(c["status"], value, "{type_}: {c}");
    assert_eq!(c["reason"], reason, "{type_}: {c}");
    assert!(
        c["lastTransitionTime"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{c}"
    );
}

/// Asserts the three conditions: `Ready`, `Reconciling` and `Stalled` with these statuses, all
/// with `reason`.
fn assert_conditions(status: &Value, [ready, reconciling, stalled]: [bool; 3], reason: &str) {
    let text = |b: bool| if b { "True" } else { "False" };
    assert_condition(status, "Ready", text(ready), reason);
    assert_condition(status, "Reconciling", text(reconciling), reason);
    assert_condition(status, "Stalled", text(stalled), reason);
}

/// Answers `calls` in order, then makes sure nothing else is asked.
async fn serve(mut handle: Handle, calls: Vec<Call>) {
    for (i, call) in flatten(calls).into_iter().enumerate() {
        let expected = format!("call #{i}: {} {}", call.method, call.path);
        let (request, send) = match tokio::time::timeout(TIMEOUT, handle.next_request()).await {
            Ok(Some(next)) => next,
            Ok(None) | Err(_) => panic!("{expected} was never made"),
        };
        let query = request.uri().query().unwrap_or("").to_string();
        assert_eq!(
            (request.method(), request.uri().path()),
            (&call.method, call.path.as_str()),
            "{expected} expected, got {} {}",
            request.method(),
            request.uri()
        );
        let bytes = request.into_body().collect_bytes().await.expect("body");
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON body")
        };
        (call.check)(&body, &query);
        let (code, reply) = match call.reply {
            Reply::Json(code, value) => (code, value),
            Reply::Echo => (StatusCode::OK, body),
            Reply::WithStatus(mut obj) => {
                obj["status"] = body["status"].clone();
                (StatusCode::OK, obj)
            }
        };
        let response = Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(&reply).expect("json")))
            .expect("response");
        send.send_response(response);
    }
    if let Ok(Some((request, _))) = tokio::time::timeout(TIMEOUT, handle.next_request()).await {
        panic!("unexpected call {} {}", request.method(), request.uri());
    }
}

/// A context on a mock client.
fn context() -> (Arc<Context>, Handle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let ctx = Context::new(
        client,
        OperatorConfig::default(),
        Arc::new(Metrics::default()),
        "tidemark-operator".to_string().into(),
    );
    (Arc::new(ctx), handle)
}

/// Reconciles `cr` once against `calls`; returns the result, the action the error policy
/// picks for an error, and the metrics.
async fn scenario<K: ControlledKind>(
    cr: K,
    calls: Vec<Call>,
) -> (Result<Action, Error>, Option<Action>, Arc<Metrics>) {
    let (ctx, handle) = context();
    let server = tokio::spawn(serve(handle, calls));
    let cr = Arc::new(cr);
    let result = tokio::time::timeout(TIMEOUT * 2, reconcile(cr.clone(), ctx.clone())).await;
    let policy = match &result {
        Ok(Err(e)) => Some(error_policy(cr, e, ctx.clone())),
        _ => None,
    };
    let metrics = ctx.metrics.clone();
    drop(ctx);
    if let Err(e) = server.await {
        if e.is_panic() {
            resume_unwind(e.into_panic());
        }
    }
    let result = result.expect("reconcile finished");
    (result, policy, metrics)
}

fn path(group_version: &str, resource: &str, name: &str) -> String {
    let prefix = if group_version == "v1" {
        "/api/v1".to_string()
    } else {
        format!("/apis/{group_version}")
    };
    format!("{prefix}/namespaces/{NS}/{resource}/{name}")
}

/// `cr` with the status of run `run` in `phase`, its Job `job`.
fn with_status<K: ControlledKind>(cr: K, run: &str, phase: &str, job: &str) -> K {
    let mut value = serde_json::to_value(&cr).expect("cr");
    value["status"] = json!({
        "phase": phase, "run": run, "observedGeneration": 1,
        "jobName": job, "startTime": "2024-12-01T12:00:00Z",
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "JobRunning", "message": "running",
             "lastTransitionTime": "2024-12-01T12:00:00Z"},
            {"type": "Reconciling", "status": "True", "reason": "JobRunning", "message": "running",
             "lastTransitionTime": "2024-12-01T12:00:00Z"},
            {"type": "Stalled", "status": "False", "reason": "JobRunning", "message": "running",
             "lastTransitionTime": "2024-12-01T11:00:00Z"}
        ]
    });
    serde_json::from_value(value).expect("a resource with a status")
}

fn job_reply(name: &str, condition: Option<(&str, &str)>) -> Reply {
    let conditions: Vec<Value> = condition
        .map(|(type_, reason)| {
            json!({"type": type_, "status": "True", "reason": reason,
                   "message": format!("{reason} happened"),
                   "lastTransitionTime": "2024-12-01T12:01:00Z"})
        })
        .into_iter()
        .collect();
    Reply::Json(
        StatusCode::OK,
        json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": NS, "uid": "j0b"},
            "spec": {"template": {"spec": {"containers": [{"name": "tidemark"}]}}},
            "status": {"conditions": conditions}
        }),
    )
}

/// The pods of Job `job`: one terminated `tidemark` container per `(finishedAt, message)`.
fn pods_call(job: &str, containers: &[(&str, Option<Value>)]) -> Call {
    let pods: Vec<(Option<u32>, &str, Option<Value>)> = containers
        .iter()
        .map(|(finished, message)| (None, *finished, message.clone()))
        .collect();
    indexed_pods_call(job, &pods)
}

/// The pods of Job `job`: one terminated `tidemark` container per `(completion index,
/// finishedAt, message)`, the index as the Job controller labels it (none: not Indexed).
fn indexed_pods_call(job: &str, containers: &[(Option<u32>, &str, Option<Value>)]) -> Call {
    let items = indexed_pods(job, containers);
    let selector = format!("labelSelector=batch.kubernetes.io%2Fjob-name%3D{job}");
    get(
        format!("/api/v1/namespaces/{NS}/pods"),
        Reply::Json(
            StatusCode::OK,
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}),
        ),
    )
    .check(move |_, query| assert!(query.contains(&selector), "{query}"))
}

/// The pods of Job `job` as [`indexed_pods_call`] answers them.
fn indexed_pods(job: &str, containers: &[(Option<u32>, &str, Option<Value>)]) -> Vec<Value> {
    containers
        .iter()
        .enumerate()
        .map(|(i, (index, finished, message))| {
            let mut terminated =
                json!({"exitCode": 0, "finishedAt": finished, "reason": "Completed"});
            if let Some(m) = message {
                terminated["message"] = json!(m.to_string());
            }
            let mut labels = json!({"batch.kubernetes.io/job-name": job});
            if let Some(index) = index {
                labels["batch.kubernetes.io/job-completion-index"] = json!(index.to_string());
            }
            json!({
                "metadata": {"name": format!("{job}-{i}"), "namespace": NS, "labels": labels},
                "status": {"phase": "Failed", "containerStatuses": [{
                    "name": "tidemark", "image": "tidemark", "imageID": "", "ready": false,
                    "restartCount": 0, "state": {"terminated": terminated}
                }]}
            })
        })
        .collect()
}

/// The reads of a Job `job` that ended with `condition` (`(type, reason)`): the Job, then its
/// pods, one terminated worker container per `(finishedAt, result)`.
fn ended_job(
    job: &str,
    condition: (&str, &str),
    containers: &[(&str, Option<Value>)],
) -> Vec<Call> {
    vec![
        get(
            path("batch/v1", "jobs", job),
            job_reply(job, Some(condition)),
        ),
        pods_call(job, containers),
    ]
}

/// The label selector of the Jobs and pods of `cr`'s runs, as a query.
fn owner_query<K: ControlledKind>(cr: &K) -> String {
    format!(
        "labelSelector=tidemark.dev%2Fowner-kind%3D{}%2Ctidemark.dev%2Fowner-name%3D{}",
        K::kind(&()),
        cr.meta().name.clone().expect("name")
    )
}

/// The list of `cr`'s Jobs (by its owner labels), answered with `items`.
fn list_run_jobs<K: ControlledKind>(cr: &K, items: Vec<Value>) -> Call {
    let query = owner_query(cr);
    get(
        format!("/apis/batch/v1/namespaces/{NS}/jobs"),
        Reply::Json(
            StatusCode::OK,
            json!({"apiVersion": "batch/v1", "kind": "JobList", "metadata": {}, "items": items}),
        ),
    )
    .check(move |_, q| assert!(q.contains(&query), "{q}"))
}

/// The list of `cr`'s worker pods (by its owner labels), answered with `items`.
fn list_run_pods<K: ControlledKind>(cr: &K, items: Vec<Value>) -> Call {
    let query = owner_query(cr);
    get(
        format!("/api/v1/namespaces/{NS}/pods"),
        Reply::Json(
            StatusCode::OK,
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}),
        ),
    )
    .check(move |_, q| assert!(q.contains(&query), "{q}"))
}

/// The calls before a new run of `cr` starts when nothing of its previous run `run` is left:
/// its Jobs and pods are listed (none of another run), and the previous run's task ConfigMap
/// is deleted in the background (answered with `config_map`).
fn superseded_run<K: ControlledKind>(cr: &K, run: &str, config_map: Reply) -> Vec<Call> {
    let name = cr.meta().name.clone().expect("name");
    let task = format!("{name}-{}-task-{run}", K::TAG);
    vec![
        list_run_jobs(cr, vec![]),
        list_run_pods(cr, vec![]),
        Call::new(Method::DELETE, path("v1", "configmaps", &task), config_map).check(
            |body: &Value, _: &str| assert_eq!(body["propagationPolicy"], "Background", "{body}"),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Scenarios every kind goes through the same way; each kind's module runs them on its resources.

/// The name of `cr` and the Job of its run `g1-r0`.
fn name_and_job<K: ControlledKind>(cr: &K) -> (String, String) {
    let name = cr.meta().name.clone().expect("name");
    let run = crate::build::RunId {
        generation: 1,
        run: 0,
    };
    let job = cr.job_name(run).expect("a Job name");
    (name, job)
}

/// The Job of `cr`'s running run was deleted, and no pod of it shows a result: Failed with
/// `JobDeleted` and Stalled, with the command that runs it again; never recreated.
async fn job_deleted_mid_run<K: ControlledKind>(cr: K) {
    let (name, job) = name_and_job(&cr);
    let cr = with_status(cr, "g1-r0", "Running", &job);
    let kind = K::kind(&()).to_string();
    let annotate = format!(
        "kubectl annotate {} {name} tidemark.dev/run=1 --overwrite",
        kind.to_ascii_lowercase()
    );
    let job_name = job.clone();
    let calls = vec![
        get(path("batch/v1", "jobs", &job), not_found("jobs", &job)),
        pods_call(&job, &[]),
        status(&cr, move |s| {
            assert_eq!(s["phase"], "Failed");
            assert_eq!(s["run"], "g1-r0");
            assert_eq!(s["jobName"], job_name.as_str());
            assert_conditions(s, [false, false, true], "JobDeleted");
            assert!(s["completionTime"].is_string());
            let message = condition(s, "Ready")["message"].as_str().expect("message");
            assert!(
                message.contains("was deleted before it finished"),
                "{message}"
            );
            assert!(message.contains(&annotate), "{message}");
        }),
        event(kind.clone(), "Warning", "JobDeleted"),
    ];
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
    assert_eq!(metrics.job_count(&kind, "deleted"), 1);
}

/// The Job of `cr`'s running run failed and its pod left no result: Failed and Stalled with
/// `JobFailed`, the Job's reason, and where the logs are.
async fn failed_job_without_a_result<K: ControlledKind>(cr: K) {
    let (_, job) = name_and_job(&cr);
    let cr = with_status(cr, "g1-r0", "Running", &job);
    let logs = format!("kubectl logs job/{job}");
    let mut calls = ended_job(
        &job,
        ("Failed", "DeadlineExceeded"),
        &[("2024-12-01T12:03:00Z", None)],
    );
    calls.extend([
        status(&cr, move |s| {
            assert_eq!(s["phase"], "Failed");
            assert_conditions(s, [false, false, true], "JobFailed");
            let message = condition(s, "Ready")["message"].as_str().expect("message");
            assert!(message.contains("DeadlineExceeded"), "{message}");
            assert!(message.contains(&logs), "{message}");
        }),
        event(K::kind(&()), "Warning", "JobFailed"),
    ]);
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
    assert_eq!(metrics.job_count(&K::kind(&()), "failed"), 1);
}

/// A finished run (Completed or Failed) of `cr` is not run again, and nothing is written: its
/// Job is only read, for a result finalizer left behind (it has none).
async fn finished_runs_make_no_calls<K: ControlledKind>(cr: K) {
    let (_, job) = name_and_job(&cr);
    for phase in ["Completed", "Failed"] {
        let cr = with_status(cr.clone(), "g1-r0", phase, &job);
        let calls = vec![get(
            path("batch/v1", "jobs", &job),
            job_reply(&job, Some(("Complete", "CompletionsReached"))),
        )];
        let (result, _, _) = scenario(cr, calls).await;
        assert_eq!(result.expect("reconciled"), Action::await_change());
    }
}

/// The pods of Job `job` whose `tidemark` container is in `state` (one pod), in pod `phase`.
fn waiting_pods_call(job: &str, phase: &str, state: Value) -> Call {
    let pod = json!({
        "metadata": {"name": format!("{job}-x7k2p"), "namespace": NS,
                     "labels": {"batch.kubernetes.io/job-name": job}},
        "status": {"phase": phase, "containerStatuses": [{
            "name": "tidemark", "image": "tidemark", "imageID": "", "ready": false,
            "restartCount": 0, "state": state
        }]}
    });
    let selector = format!("labelSelector=batch.kubernetes.io%2Fjob-name%3D{job}");
    get(
        format!("/api/v1/namespaces/{NS}/pods"),
        Reply::Json(
            StatusCode::OK,
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [pod]}),
        ),
    )
    .check(move |_, query| assert!(query.contains(&selector), "{query}"))
}

/// The state the kubelet writes for a container it cannot create: `waiting` with
/// `CreateContainerConfigError` and `message`.
fn config_error(message: &str) -> Value {
    json!({"waiting": {"reason": "CreateContainerConfigError", "message": message}})
}

/// The Job of `cr`'s running run is still running and its pod runs: the Job and its pods are
/// read, nothing written, look again later.
async fn a_running_job_is_only_read<K: ControlledKind>(cr: K) {
    let (_, job) = name_and_job(&cr);
    let cr = with_status(cr, "g1-r0", "Running", &job);
    let calls = vec![
        get(path("batch/v1", "jobs", &job), job_reply(&job, None)),
        waiting_pods_call(
            &job,
            "Running",
            json!({"running": {"startedAt": "2024-12-01T12:00:05Z"}}),
        ),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(
        result.expect("reconciled"),
        Action::requeue(super::RUNNING_POLL)
    );
}

/// The worker pod of `cr`'s running run cannot start: the kubelet wrote `kubelet_message` (a
/// missing Secret or key) in its status. The run stays Running with its Job, `Stalled` with
/// `reason` and a message holding the kubelet's text and the spec `field` naming the Secret,
/// a Warning Event; looked at again in [`super::SECRET_POLL`]. Once the Secret is fixed and
/// the pod runs, the run is plain Running again (and an unchanged stall writes nothing).
async fn a_pod_waiting_for_a_secret_stalls_the_run<K: ControlledKind>(
    cr: K,
    reason: &'static str,
    kubelet_message: &'static str,
    field: &'static str,
) {
    let (_, job) = name_and_job(&cr);
    let running = with_status(cr, "g1-r0", "Running", &job);
    let job_name = job.clone();
    let calls = vec![
        get(path("batch/v1", "jobs", &job), job_reply(&job, None)),
        waiting_pods_call(&job, "Pending", config_error(kubelet_message)),
        status(&running, move |s| {
            assert_eq!(s["phase"], "Running");
            assert_eq!(s["jobName"], job_name.as_str());
            assert_conditions(s, [false, false, true], reason);
            let message = condition(s, "Stalled")["message"].as_str().expect("text");
            assert!(message.contains(kubelet_message), "{message}");
            assert!(message.contains(field), "{message}");
            assert!(message.contains("is kept"), "{message}");
        }),
        event(K::kind(&()), "Warning", reason).check(move |body, _| {
            let note = body["note"].as_str().expect("note");
            assert!(note.contains(kubelet_message), "{body}");
        }),
    ];
    let (result, _, _) = scenario(running.clone(), calls).await;
    assert_eq!(
        result.expect("reconciled"),
        Action::requeue(super::SECRET_POLL)
    );

    // The stall as written: the same pod status again changes nothing.
    let mut stalled = serde_json::to_value(&running).expect("cr");
    let problem = crate::controller::status::SecretProblem {
        pod: format!("{job}-x7k2p"),
        reason,
        secret: String::new(),
        kubelet_message: kubelet_message.to_string(),
    };
    let run = crate::build::RunId::of(&running).expect("run");
    let stalled_status = crate::controller::status::stalled_on_secret(
        &running,
        run,
        &job,
        &problem,
        Some(field),
        "2024-12-01T12:01:00Z",
    );
    stalled["status"] = serde_json::to_value(&stalled_status).expect("status");
    let stalled: K = serde_json::from_value(stalled).expect("stalled cr");
    let calls = vec![
        get(path("batch/v1", "jobs", &job), job_reply(&job, None)),
        waiting_pods_call(&job, "Pending", config_error(kubelet_message)),
    ];
    let (result, _, _) = scenario(stalled.clone(), calls).await;
    assert_eq!(
        result.expect("reconciled"),
        Action::requeue(super::SECRET_POLL)
    );

    // The Secret fixed: the kubelet starts the container; Running and no longer Stalled.
    let calls = vec![
        get(path("batch/v1", "jobs", &job), job_reply(&job, None)),
        waiting_pods_call(
            &job,
            "Running",
            json!({"running": {"startedAt": "2024-12-01T12:02:00Z"}}),
        ),
        status(&stalled, |s| {
            assert_eq!(s["phase"], "Running");
            assert_conditions(s, [false, true, false], "JobRunning");
        }),
        event(K::kind(&()), "Normal", "PodStarting"),
    ];
    let (result, _, _) = scenario(stalled, calls).await;
    assert_eq!(
        result.expect("reconciled"),
        Action::requeue(super::RUNNING_POLL)
    );
}

/// A pod not started yet without a config error (`ContainerCreating`): nothing written, looked
/// at again soon ([`super::POD_START_POLL`]).
async fn a_starting_pod_is_looked_at_again_soon<K: ControlledKind>(cr: K) {
    let (_, job) = name_and_job(&cr);
    let cr = with_status(cr, "g1-r0", "Running", &job);
    let calls = vec![
        get(path("batch/v1", "jobs", &job), job_reply(&job, None)),
        waiting_pods_call(
            &job,
            "Pending",
            json!({"waiting": {"reason": "ContainerCreating"}}),
        ),
        failed_mount_events_call(&format!("{job}-x7k2p"), vec![]),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(
        result.expect("reconciled"),
        Action::requeue(super::POD_START_POLL)
    );
}

/// The list of the kubelet's `FailedMount` Events on pod `pod`, answered with `items`.
fn failed_mount_events_call(pod: &str, items: Vec<Value>) -> Call {
    let selector = format!(
        "fieldSelector=involvedObject.kind%3DPod%2CinvolvedObject.name%3D{pod}%2Creason%3DFailedMount"
    );
    get(
        format!("/api/v1/namespaces/{NS}/events"),
        Reply::Json(
            StatusCode::OK,
            json!({"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": items}),
        ),
    )
    .check(move |_, query| assert!(query.contains(&selector), "{query}"))
}

/// The worker pod of `cr`'s running run stays `ContainerCreating`: its volume `kafka-ca`
/// mounts the Secret `secret`, and the kubelet's `FailedMount` Event says `kubelet_message`
/// (the pod status says nothing). The run stays Running with its Job, `Stalled` with `reason`
/// and a message naming the Secret (and `key`, when given) and the spec `field`, a Warning
/// Event; looked at again in [`super::SECRET_POLL`].
async fn a_pod_waiting_for_a_secret_volume_stalls_the_run<K: ControlledKind>(
    cr: K,
    reason: &'static str,
    kubelet_message: &'static str,
    secret: &'static str,
    field: &'static str,
) {
    let (_, job) = name_and_job(&cr);
    let running = with_status(cr, "g1-r0", "Running", &job);
    let pod_name = format!("{job}-x7k2p");
    let pod = json!({
        "metadata": {"name": pod_name, "namespace": NS,
                     "labels": {"batch.kubernetes.io/job-name": job}},
        "spec": {"containers": [{"name": "tidemark"}], "volumes": [
            {"name": "task", "configMap": {"name": job}},
            {"name": "kafka-ca", "secret": {"secretName": secret, "optional": false}}]},
        "status": {"phase": "Pending", "containerStatuses": [{
            "name": "tidemark", "image": "tidemark", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}
        }]}
    });
    let selector = format!("labelSelector=batch.kubernetes.io%2Fjob-name%3D{job}");
    let pods = get(
        format!("/api/v1/namespaces/{NS}/pods"),
        Reply::Json(
            StatusCode::OK,
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [pod]}),
        ),
    )
    .check(move |_, query| assert!(query.contains(&selector), "{query}"));
    let seen = k8s_openapi::jiff::Timestamp::now().to_string();
    let stale = "2024-01-01T00:00:00Z";
    let failed = |at: &str, message: &str| {
        json!({"metadata": {"name": format!("{pod_name}.{at}")},
               "involvedObject": {"kind": "Pod", "name": pod_name},
               "reason": "FailedMount", "type": "Warning", "message": message,
               "lastTimestamp": at})
    };
    let events = vec![
        // An old Event about another cause is not believed.
        failed(
            stale,
            "MountVolume.SetUp failed for volume \"kafka-ca\" : secret \"old\" not found",
        ),
        failed(&seen, kubelet_message),
    ];
    let job_name = job.clone();
    let calls = vec![
        get(path("batch/v1", "jobs", &job), job_reply(&job, None)),
        pods,
        failed_mount_events_call(&pod_name, events),
        status(&running, move |s| {
            assert_eq!(s["phase"], "Running");
            assert_eq!(s["jobName"], job_name.as_str());
            assert_conditions(s, [false, false, true], reason);
            let message = condition(s, "Stalled")["message"].as_str().expect("text");
            assert!(message.contains(kubelet_message), "{message}");
            assert!(message.contains(secret), "{message}");
            assert!(message.contains(field), "{message}");
            assert!(message.contains("is kept"), "{message}");
        }),
        event(K::kind(&()), "Warning", reason).check(move |body, _| {
            let note = body["note"].as_str().expect("note");
            assert!(note.contains(kubelet_message), "{body}");
        }),
    ];
    let (result, _, _) = scenario(running, calls).await;
    assert_eq!(
        result.expect("reconciled"),
        Action::requeue(super::SECRET_POLL)
    );
}

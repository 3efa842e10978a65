//! Scenarios of what every kind's runs share: children named apart by kind and never taken
//! from another owner, a new run that starts only once the previous one has stopped, and a
//! result kept by the result finalizer until it is recorded.

use std::sync::{Arc, Mutex};

use kube::runtime::controller::Action;
use kube::Resource;
use serde_json::{json, Value};

use super::*;
use crate::build::fixtures::*;
use crate::build::rbac::worker_rbac_name;
use crate::build::task::task_config_map_name;
use crate::build::{RunId, WorkerKind};
use crate::controller::{PREVIOUS_RUN_POLL, REFERENCE_POLL, RUNNING_POLL};
use crate::crd::{KafkaOffsetReset, KafkaOffsetRollback};

const RUN: RunId = RunId {
    generation: 1,
    run: 0,
};
const FINALIZER: &str = "tidemark.dev/result";

/// `cr` renamed `name`.
fn named<K: ControlledKind>(mut cr: K, name: &str) -> K {
    cr.meta_mut().name = Some(name.to_string());
    cr
}

/// The calls that start run `g1-r0` of `cr` after `before` (its reads): the worker
/// ServiceAccount, the worker RoleBinding when `rbac`, the task ConfigMap and the Job
/// are applied (each owned child read first), then status Running and an Event. The name of each
/// owned child applied is pushed to `seen`.
fn start_calls<K: ControlledKind>(
    cr: &K,
    before: Vec<Call>,
    rbac: bool,
    seen: &Arc<Mutex<Vec<String>>>,
) -> Vec<Call> {
    let name = cr.meta().name.clone().expect("name");
    let record = |seen: &Arc<Mutex<Vec<String>>>| {
        let seen = seen.clone();
        move |body: &Value| {
            let child = format!("{}/{}", body["kind"], body["metadata"]["name"]);
            seen.lock().expect("lock").push(child);
        }
    };
    let mut calls = before;
    calls.push(apply(
        path("v1", "serviceaccounts", "tidemark-worker"),
        |_| {},
    ));
    if rbac {
        let rbac_group = "rbac.authorization.k8s.io/v1";
        let role = worker_rbac_name::<K>(&name);
        calls.push(apply(path(rbac_group, "rolebindings", &role), record(seen)));
    }
    let task = task_config_map_name::<K>(&name, RUN);
    calls.push(apply(path("v1", "configmaps", &task), record(seen)));
    let job = cr.job_name(RUN).expect("a Job name");
    let finalizers = record(seen);
    calls.push(apply(path("batch/v1", "jobs", &job), move |body| {
        // The Job and its pods keep the run's result until it is recorded.
        assert_eq!(body["metadata"]["finalizers"], json!([FINALIZER]), "{body}");
        assert_eq!(
            body["spec"]["template"]["metadata"]["finalizers"],
            json!([FINALIZER]),
            "{body}"
        );
        finalizers(body);
    }));
    calls.push(status(cr, |s| {
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["run"], "g1-r0");
    }));
    calls.push(event(K::kind(&()), "Normal", "JobCreated"));
    calls
}

// Hole: a KafkaBackup, a KafkaRestore, a KafkaOffsetReset and a KafkaOffsetRollback all named
// `orders` in one namespace each get their own Job, task ConfigMap (and worker RBAC), and all
// of them run.
#[tokio::test]
async fn same_named_resources_of_every_kind_get_distinct_children_and_all_run() {
    let seen = Arc::new(Mutex::new(Vec::new()));

    let backup = named(kb(BACKUP_ONE_SHOT_PVC), "orders");
    let calls = start_calls(&backup, vec![], false, &seen);
    let (result, _, _) = scenario(backup, calls).await;
    assert_eq!(
        result.expect("the backup runs"),
        Action::requeue(RUNNING_POLL)
    );

    let restore = named(kr(RESTORE_FULL), "orders");
    let kafka_backup = get(
        path("tidemark.dev/v1alpha1", "kafkabackups", "orders-snapshot"),
        Reply::Json(
            StatusCode::OK,
            serde_json::to_value(orders_backup("orders-snapshot-g1-r0-3c9a7e10", "Completed"))
                .expect("kb"),
        ),
    );
    let calls = start_calls(&restore, vec![kafka_backup], false, &seen);
    let (result, _, _) = scenario(restore, calls).await;
    assert_eq!(
        result.expect("the restore runs"),
        Action::requeue(RUNNING_POLL)
    );

    let reset = named(kor(RESET_DRY_RUN), "orders");
    let calls = start_calls(&reset, vec![], false, &seen);
    let (result, _, _) = scenario(reset, calls).await;
    assert_eq!(
        result.expect("the reset runs"),
        Action::requeue(RUNNING_POLL)
    );

    let rollback = named(korb(QUICK_SNAPSHOT), "orders");
    let calls = start_calls(&rollback, vec![], true, &seen);
    let (result, _, _) = scenario(rollback, calls).await;
    assert_eq!(
        result.expect("the rollback runs"),
        Action::requeue(RUNNING_POLL)
    );

    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 4 * 2 + 1, "{seen:?}");
    let mut distinct = seen.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), seen.len(), "a child is shared: {seen:?}");
    for tag in ["kb", "kr", "kor", "korb"] {
        let jobs = seen
            .iter()
            .filter(|c| c.starts_with("\"Job\"/\"orders-") && c.contains(&format!("-{tag}-g1-r0")))
            .count();
        assert_eq!(jobs, 1, "one Job tagged {tag}: {seen:?}");
    }
}

/// A Job `name` of run `run` of `cr` as the API server returns it: controlled by `owner_uid`,
/// with the result finalizer when `finalizer`, ended by `end` (`(type, reason)`), being deleted
/// when `deleting`.
fn run_job<K: ControlledKind>(
    cr: &K,
    name: &str,
    run: &str,
    owner_uid: &str,
    end: Option<(&str, &str)>,
    deleting: bool,
    finalizer: bool,
) -> Value {
    let mut job = match job_reply(name, end) {
        Reply::Json(_, job) => job,
        _ => unreachable!("job_reply answers JSON"),
    };
    let owner = cr.meta().name.clone().expect("name");
    job["metadata"]["resourceVersion"] = json!("7");
    job["metadata"]["labels"] = json!({
        "tidemark.dev/owner-kind": K::kind(&()), "tidemark.dev/owner-name": owner,
        "tidemark.dev/run": run
    });
    job["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "tidemark.dev/v1alpha1", "kind": K::kind(&()), "name": owner,
        "uid": owner_uid, "controller": true, "blockOwnerDeletion": true
    }]);
    if finalizer {
        job["metadata"]["finalizers"] = json!([FINALIZER]);
    }
    if deleting {
        job["metadata"]["deletionTimestamp"] = json!("2024-12-01T12:05:00Z");
    }
    job
}

/// A worker pod of Job `job` of run `run` of `cr`, in `phase`, its container terminated with
/// `result` as termination message when given, with the result finalizer.
fn run_pod<K: ControlledKind>(
    cr: &K,
    job: &str,
    run: &str,
    phase: &str,
    result: Option<Value>,
) -> Value {
    let owner = cr.meta().name.clone().expect("name");
    let state = match result {
        Some(r) => json!({"terminated": {"exitCode": 0, "reason": "Completed",
                                         "finishedAt": "2024-12-01T12:01:06Z",
                                         "message": r.to_string()}}),
        None => json!({"running": {"startedAt": "2024-12-01T12:00:10Z"}}),
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("{job}-x1"), "namespace": NS, "resourceVersion": "9",
            "finalizers": ["batch.kubernetes.io/job-tracking", FINALIZER],
            "labels": {"batch.kubernetes.io/job-name": job,
                       "tidemark.dev/owner-kind": K::kind(&()),
                       "tidemark.dev/owner-name": owner, "tidemark.dev/run": run}
        },
        "status": {"phase": phase, "containerStatuses": [{
            "name": "tidemark", "image": "tidemark", "imageID": "", "ready": false,
            "restartCount": 0, "state": state
        }]}
    })
}

/// The merge patch that removes the result finalizer from `obj` (at its resourceVersion),
/// keeping the others; answered with `obj`.
pub(super) fn release(obj: &Value, resource_path: String, keep: Value) -> Call {
    let version = obj["metadata"]["resourceVersion"].clone();
    Call::new(
        Method::PATCH,
        resource_path,
        Reply::Json(StatusCode::OK, obj.clone()),
    )
    .check(move |body, _| {
        assert_eq!(body["metadata"]["finalizers"], keep, "{body}");
        assert_eq!(body["metadata"]["resourceVersion"], version, "{body}");
    })
}

fn deleted() -> Reply {
    Reply::Json(
        StatusCode::OK,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
    )
}

/// The foreground delete of the Job `job`.
fn delete_foreground(job: &str) -> Call {
    Call::new(Method::DELETE, path("batch/v1", "jobs", job), deleted()).check(|body, _| {
        assert_eq!(body["propagationPolicy"], "Foreground", "{body}");
    })
}

/// The background delete of the ConfigMap `name`.
fn delete_config_map(name: &str, reply: Reply) -> Call {
    Call::new(Method::DELETE, path("v1", "configmaps", name), reply)
        .check(|body, _| assert_eq!(body["propagationPolicy"], "Background", "{body}"))
}

// Hole: the Job's name is taken by an object of another owner. Nothing is applied over it; the
// resource stalls with ChildConflict naming it and its owner, and is looked at again later.
#[tokio::test]
async fn a_job_name_taken_by_a_foreign_object_stalls_with_the_conflict() {
    let cr = kor(RESET_DRY_RUN);
    let job = cr.job_name(RUN).expect("name");
    let foreign = run_job(&cr, &job, "g1-r0", "someone-else", None, false, false);
    let mut foreign = foreign;
    foreign["metadata"]["ownerReferences"][0]["kind"] = json!("KafkaRestore");
    let calls = vec![
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path("v1", "configmaps", "plan-payments-rewind-kor-task-g1-r0"),
            |_| {},
        ),
        // Only read: no apply follows.
        get(
            path("batch/v1", "jobs", &job),
            Reply::Json(StatusCode::OK, foreign),
        ),
        status(&cr, move |s| {
            assert_eq!(s["phase"], "Pending");
            assert!(s.get("jobName").is_none(), "{s}");
            assert_conditions(s, [false, false, true], "ChildConflict");
            assert_eq!(
                condition(s, "Stalled")["message"],
                "Job kafka-backup/plan-payments-rewind-kor-g1-r0 already exists and is owned by KafkaRestore plan-payments-rewind (uid someone-else); it is left as it is. Delete or rename that Job, or rename this resource"
            );
        }),
        event("KafkaOffsetReset", "Warning", "ChildConflict"),
    ];
    let (result, policy, _) = scenario(cr, calls).await;
    assert_eq!(
        result.expect_err("conflict").metric_label(),
        "child_conflict"
    );
    assert_eq!(policy, Some(Action::requeue(REFERENCE_POLL)));
}

// A child the resource already controls (a re-applied task ConfigMap) is applied as usual.
#[tokio::test]
async fn a_child_the_resource_controls_is_applied_again() {
    let cr = kor(RESET_DRY_RUN);
    let uid = cr.meta().uid.clone().expect("uid");
    let job = cr.job_name(RUN).expect("name");
    let task = "plan-payments-rewind-kor-task-g1-r0";
    let mine = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": task, "namespace": NS, "ownerReferences": [{
            "apiVersion": "tidemark.dev/v1alpha1", "kind": "KafkaOffsetReset",
            "name": "plan-payments-rewind", "uid": uid, "controller": true}]}});
    let calls = vec![
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(path("v1", "configmaps", task), |_| {}).existing(mine),
        apply(path("batch/v1", "jobs", &job), |_| {}),
        status(&cr, |s| assert_eq!(s["phase"], "Running")),
        event("KafkaOffsetReset", "Normal", "JobCreated"),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
}

/// `RESET_DRY_RUN` running its run `g1-r0`, edited to generation 2.
fn edited_while_running() -> (KafkaOffsetReset, String) {
    let cr = kor(RESET_DRY_RUN);
    let job = cr.job_name(RUN).expect("name");
    let mut cr = with_status(cr, "g1-r0", "Running", &job);
    cr.metadata.generation = Some(2);
    (cr, job)
}

// Hole: the spec is edited while its Job runs. The old Job is deleted with foreground
// propagation (its finalizers released) and the new run waits, Reconciling with
// WaitingForPreviousRun; only once the old Job is gone and none of its pods runs is the new
// Job created.
#[tokio::test]
async fn a_spec_edit_while_running_waits_until_the_old_job_is_gone() {
    let (cr, job) = edited_while_running();
    let uid = cr.meta().uid.clone().expect("uid");
    let old = run_job(&cr, &job, "g1-r0", &uid, None, false, true);
    let pod = run_pod(&cr, &job, "g1-r0", "Running", None);
    let pod_path = path("v1", "pods", &format!("{job}-x1"));
    let calls = vec![
        list_run_jobs(&cr, vec![old.clone()]),
        release(&old, path("batch/v1", "jobs", &job), json!([])),
        delete_foreground(&job),
        delete_config_map("plan-payments-rewind-kor-task-g1-r0", deleted()),
        list_run_pods(&cr, vec![pod.clone()]),
        release(&pod, pod_path, json!(["batch.kubernetes.io/job-tracking"])),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Pending");
            assert_eq!(s["run"], "g1-r0", "the previous run is still named: {s}");
            assert_eq!(s["observedGeneration"], 2);
            assert_conditions(s, [false, true, false], "WaitingForPreviousRun");
            let message = condition(s, "Reconciling")["message"]
                .as_str()
                .expect("message");
            assert_eq!(
                message,
                "run g2-r0 starts once the previous run has stopped: Job plan-payments-rewind-kor-g1-r0 is being deleted; 1 of its worker pods still run"
            );
        }),
        event("KafkaOffsetReset", "Normal", "WaitingForPreviousRun"),
    ];
    let (result, _, _) = scenario(cr.clone(), calls).await;
    assert_eq!(result.expect("waits"), Action::requeue(PREVIOUS_RUN_POLL));

    // Still being deleted (foreground: its pod is terminating): still waiting, nothing new.
    let mut waiting = cr.clone();
    if let Some(s) = waiting.status.as_mut() {
        s.common.phase = Some(crate::crd::status::Phase::Pending);
    }
    let deleting = run_job(&cr, &job, "g1-r0", &uid, None, true, false);
    let calls = vec![
        list_run_jobs(&cr, vec![deleting]),
        delete_config_map("plan-payments-rewind-kor-task-g1-r0", not_found("x", "y")),
        list_run_pods(&cr, vec![]),
        status(&waiting, |s| {
            assert_conditions(s, [false, true, false], "WaitingForPreviousRun");
        }),
        event("KafkaOffsetReset", "Normal", "WaitingForPreviousRun"),
    ];
    let (result, _, _) = scenario(waiting.clone(), calls).await;
    assert_eq!(result.expect("waits"), Action::requeue(PREVIOUS_RUN_POLL));

    // Gone: the new run starts.
    let next = RunId {
        generation: 2,
        run: 0,
    };
    let new_job = cr.job_name(next).expect("name");
    let mut calls = superseded_run(&waiting, "g1-r0", not_found("x", "y"));
    calls.extend([
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path("v1", "configmaps", "plan-payments-rewind-kor-task-g2-r0"),
            |_| {},
        ),
        apply(path("batch/v1", "jobs", &new_job), |_| {}),
        status(&waiting, |s| {
            assert_eq!(s["phase"], "Running");
            assert_eq!(s["run"], "g2-r0");
        }),
        event("KafkaOffsetReset", "Normal", "JobCreated"),
    ]);
    let (result, _, _) = scenario(waiting, calls).await;
    assert_eq!(result.expect("starts"), Action::requeue(RUNNING_POLL));
}

// Hole: an edit to an invalid spec while the Job runs stops the Job (foreground) and stalls,
// instead of leaving it running without a status that names it.
#[tokio::test]
async fn an_invalid_edit_while_running_stops_the_job_and_stalls() {
    let (cr, job) = edited_while_running();
    let uid = cr.meta().uid.clone().expect("uid");
    let mut value = serde_json::to_value(&cr).expect("cr");
    value["spec"]["consumerGroupPattern"] = json!("payments-(");
    let cr: KafkaOffsetReset = serde_json::from_value(value).expect("cr");
    let old = run_job(&cr, &job, "g1-r0", &uid, None, false, true);
    let calls = vec![
        list_run_jobs(&cr, vec![old.clone()]),
        release(&old, path("batch/v1", "jobs", &job), json!([])),
        delete_foreground(&job),
        delete_config_map("plan-payments-rewind-kor-task-g1-r0", deleted()),
        list_run_pods(&cr, vec![]),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Pending");
            assert_conditions(s, [false, false, true], "InvalidField");
        }),
        event("KafkaOffsetReset", "Warning", "InvalidField"),
    ];
    let (result, policy, _) = scenario(cr, calls).await;
    assert_eq!(result.expect_err("invalid").metric_label(), "invalid_spec");
    assert_eq!(policy, Some(Action::await_change()));
}

// A previous run whose Job ended before the edit was seen is recorded first, never lost.
#[tokio::test]
async fn a_previous_run_that_ended_unseen_is_recorded_before_it_is_replaced() {
    let (cr, job) = edited_while_running();
    let uid = cr.meta().uid.clone().expect("uid");
    let ended = run_job(
        &cr,
        &job,
        "g1-r0",
        &uid,
        Some(("Complete", "CompletionsReached")),
        false,
        false,
    );
    let result = json!({"phase": "Completed", "operation": "reset", "message": "planned 2 groups"});
    let calls = vec![
        list_run_jobs(&cr, vec![ended]),
        pods_call(&job, &[("2024-12-01T12:01:06Z", Some(result))]),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Completed");
            assert_eq!(s["run"], "g1-r0");
        }),
        event("KafkaOffsetReset", "Normal", "JobSucceeded"),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(
        result.expect("recorded"),
        Action::requeue(PREVIOUS_RUN_POLL)
    );
}

/// `QUICK_SNAPSHOT` running its run `g1-r0`, and the worker's result of a snapshot.
fn running_snapshot() -> (KafkaOffsetRollback, String, Value) {
    let cr = korb(QUICK_SNAPSHOT);
    let job = cr.job_name(RUN).expect("name");
    let cr = with_status(cr, "g1-r0", "Running", &job);
    let result = json!({
        "phase": "Completed", "operation": "snapshot", "snapshotId": "quick-snapshot-001",
        "message": "Snapshot quick-snapshot-001 created successfully: 1 group, 3 partitions",
        "snapshotData": {"groups": 1, "totalPartitions": 3, "timestamp": "2024-12-01T12:01:05Z"}
    });
    (cr, job, result)
}

fn assert_snapshot_created(s: &Value) {
    assert_eq!(s["phase"], "Completed", "{s}");
    assert_eq!(s["snapshotId"], "quick-snapshot-001");
    assert_eq!(s["snapshotData"]["totalPartitions"], 3);
    assert_conditions(s, [true, false, false], "SnapshotCreated");
}

// Hole: the Job succeeded and is gone (TTL 0, garbage collection) before the operator saw it;
// its pod, kept by the result finalizer, still has the result: Succeeded with it, and the pod's
// finalizer is released.
#[tokio::test]
async fn a_job_gone_after_success_is_recorded_from_its_kept_pod() {
    let (cr, job, result) = running_snapshot();
    let pod = run_pod(&cr, &job, "g1-r0", "Succeeded", Some(result));
    let calls = vec![
        get(path("batch/v1", "jobs", &job), not_found("jobs", &job)),
        get(
            format!("/api/v1/namespaces/{NS}/pods"),
            Reply::Json(
                StatusCode::OK,
                json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [pod.clone()]}),
            ),
        ),
        status(&cr, assert_snapshot_created),
        event("KafkaOffsetRollback", "Normal", "JobSucceeded"),
        release(
            &pod,
            path("v1", "pods", &format!("{job}-x1")),
            json!(["batch.kubernetes.io/job-tracking"]),
        ),
    ];
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
    assert_eq!(metrics.job_count("KafkaOffsetRollback", "succeeded"), 1);
    assert_eq!(metrics.job_count("KafkaOffsetRollback", "deleted"), 0);
}

// Hole: the Job ended and is being deleted (its TTL ran out) but the result finalizer holds it:
// the result is read and recorded first, then the pod's and the Job's finalizers are released.
#[tokio::test]
async fn a_job_being_deleted_is_read_before_its_finalizer_is_released() {
    let (cr, job, result) = running_snapshot();
    let uid = cr.meta().uid.clone().expect("uid");
    let held = run_job(
        &cr,
        &job,
        "g1-r0",
        &uid,
        Some(("Complete", "CompletionsReached")),
        true,
        true,
    );
    let pod = run_pod(&cr, &job, "g1-r0", "Succeeded", Some(result));
    let calls = vec![
        get(
            path("batch/v1", "jobs", &job),
            Reply::Json(StatusCode::OK, held.clone()),
        ),
        get(
            format!("/api/v1/namespaces/{NS}/pods"),
            Reply::Json(
                StatusCode::OK,
                json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [pod.clone()]}),
            ),
        ),
        status(&cr, assert_snapshot_created),
        event("KafkaOffsetRollback", "Normal", "JobSucceeded"),
        release(
            &pod,
            path("v1", "pods", &format!("{job}-x1")),
            json!(["batch.kubernetes.io/job-tracking"]),
        ),
        release(&held, path("batch/v1", "jobs", &job), json!([])),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
}

// The operator stopped after writing a result but before releasing the finalizers: the finished
// run's Job and pods are released on the next reconcile.
#[tokio::test]
async fn a_finished_run_releases_a_finalizer_left_behind() {
    let (cr, job, result) = running_snapshot();
    let uid = cr.meta().uid.clone().expect("uid");
    let cr = with_status(cr, "g1-r0", "Completed", &job);
    let held = run_job(
        &cr,
        &job,
        "g1-r0",
        &uid,
        Some(("Complete", "CompletionsReached")),
        false,
        true,
    );
    let pod = run_pod(&cr, &job, "g1-r0", "Succeeded", Some(result));
    let calls = vec![
        get(
            path("batch/v1", "jobs", &job),
            Reply::Json(StatusCode::OK, held.clone()),
        ),
        get(
            format!("/api/v1/namespaces/{NS}/pods"),
            Reply::Json(
                StatusCode::OK,
                json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [pod.clone()]}),
            ),
        ),
        release(
            &pod,
            path("v1", "pods", &format!("{job}-x1")),
            json!(["batch.kubernetes.io/job-tracking"]),
        ),
        release(&held, path("batch/v1", "jobs", &job), json!([])),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
}

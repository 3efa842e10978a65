//! Scenarios of the KafkaOffsetReset reconcile: the same pipeline as KafkaOffsetRollback, with
//! the reset's own task, RBAC and status (plan, group counts, safety snapshot).

use kube::runtime::controller::Action;
use serde_json::{json, Value};

use super::*;
use crate::build::fixtures::*;
use crate::build::reset::safety_snapshot_id;
use crate::build::RunId;
use crate::controller::RUNNING_POLL;

const KIND: &str = "KafkaOffsetReset";

/// An Event about the KafkaOffsetReset.
fn event(type_: &'static str, reason: &'static str) -> Call {
    super::event(KIND, type_, reason)
}

const RUN: RunId = RunId {
    generation: 1,
    run: 0,
};

/// A worker result of a reset: `groups` group results, the first `failed` of them failed.
fn reset_result(phase: &str, dry_run: bool, groups: usize, failed: usize) -> Value {
    let group_results: Vec<Value> = (0..groups)
        .map(|i| {
            if i < failed {
                json!({"group": format!("group-{i}"), "status": "failed", "partitions": 0,
                       "error": "group has 2 active members; stop its consumers first"})
            } else {
                let status = if dry_run { "planned" } else { "reset" };
                json!({"group": format!("group-{i}"), "status": status, "partitions": 6})
            }
        })
        .collect();
    let ok = (groups - failed) as u64;
    json!({
        "phase": phase,
        "operation": if dry_run { "reset-plan" } else { "reset" },
        "message": format!("{ok} of {groups} groups reset"),
        "reset": {
            "dryRun": dry_run, "groupsTotal": groups, "groupsReset": ok,
            "groupsFailed": failed, "partitionsPlanned": ok * 6,
            "offsetsReset": if dry_run { 0 } else { ok * 6 }, "offsetsPerSecond": 1234,
            "totalGroupResults": groups, "groupResults": group_results
        }
    })
}

// (a) A new reset: its Secrets are checked, the worker ServiceAccount, task ConfigMap (with the
// run's safety snapshot id) and Job are applied, and the status says Running.
#[tokio::test]
async fn a_new_reset_checks_secrets_applies_children_and_runs() {
    let cr = kor(RESET_TO_DATETIME);
    let snapshot_id = safety_snapshot_id(&cr, RUN).expect("id");
    let mut calls = Vec::new();
    calls.extend([
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |body| {
            assert_eq!(body["kind"], "ServiceAccount");
        }),
        apply(
            path("v1", "configmaps", "replay-orders-kor-task-g1-r0"),
            move |body| {
                assert_eq!(
                    body["metadata"]["ownerReferences"][0]["kind"],
                    "KafkaOffsetReset"
                );
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(task.contains("kind: offsetReset"), "{task}");
                assert!(task.contains("type: toDatetime"), "{task}");
                assert!(
                    task.contains(&format!("snapshotId: {snapshot_id}")),
                    "{task}"
                );
                assert!(!task.contains("czNudGluZWw"), "{task}");
            },
        ),
        apply(
            path("batch/v1", "jobs", "replay-orders-kor-g1-r0"),
            |body| {
                assert_eq!(body["kind"], "Job");
                assert_eq!(
                    body["metadata"]["labels"]["tidemark.dev/owner-kind"],
                    "KafkaOffsetReset"
                );
                let container = &body["spec"]["template"]["spec"]["containers"][0];
                assert_eq!(
                    container["args"],
                    json!(["run", "--task", "/etc/tidemark/task/task.yaml"])
                );
            },
        ),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Running");
            assert_eq!(s["run"], "g1-r0");
            assert_eq!(s["jobName"], "replay-orders-kor-g1-r0");
            assert_eq!(s["dryRun"], false);
            assert!(
                s.get("snapshotId").is_none(),
                "not before the worker reports it: {s}"
            );
            assert_conditions(s, [false, true, false], "JobRunning");
            assert_eq!(
                condition(s, "Reconciling")["message"],
                "Job replay-orders-kor-g1-r0 is running reset toDatetime (run g1-r0)"
            );
        }),
        event("Normal", "JobCreated"),
    ]);
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
    assert_eq!(metrics.job_count(KIND, "created"), 1);
    assert_eq!(metrics.job_count("KafkaOffsetRollback", "created"), 0);
}

// (a') A snapshot into a ConfigMap gets a worker RoleBinding to the install's worker
// ClusterRole, before the Job; no Role is created.
#[tokio::test]
async fn a_config_map_snapshot_binds_the_worker_cluster_role() {
    let cr = kor(RESET_FROM_SNAPSHOT);
    let rbac = "rbac.authorization.k8s.io/v1";
    let calls = vec![
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path(rbac, "rolebindings", "restore-before-change-kor-snapshots"),
            |body| {
                assert_eq!(body["subjects"][0]["name"], "tidemark-worker");
                assert_eq!(
                    body["roleRef"],
                    json!({"apiGroup": "rbac.authorization.k8s.io",
                           "kind": "ClusterRole", "name": "tidemark-worker"})
                );
            },
        ),
        apply(
            path("v1", "configmaps", "restore-before-change-kor-task-g1-r0"),
            |body| {
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(task.contains("type: fromSnapshot"), "{task}");
                assert!(task.contains("snapshotId: before-change"), "{task}");
            },
        ),
        apply(
            path("batch/v1", "jobs", "restore-before-change-kor-g1-r0"),
            |body| {
                assert_eq!(
                    body["spec"]["template"]["spec"]["automountServiceAccountToken"],
                    true
                );
            },
        ),
        status(&cr, |s| assert_eq!(s["phase"], "Running")),
        event("Normal", "JobCreated"),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
}

// (b) The Job succeeded: status Completed with the group counts, the plan, the throughput and
// the safety snapshot id the worker reports.
#[tokio::test]
async fn a_successful_reset_completes_with_groups_plan_and_snapshot() {
    let cr = kor(RESET_TO_DATETIME);
    let snapshot_id = safety_snapshot_id(&cr, RUN).expect("id");
    let cr = with_status(cr, "g1-r0", "Running", "replay-orders-kor-g1-r0");
    let mut result = reset_result("Completed", false, 2, 0);
    result["snapshotId"] = json!(snapshot_id);
    let job = "replay-orders-kor-g1-r0";
    let expected_id = snapshot_id.clone();
    let mut calls = ended_job(
        job,
        ("Complete", "CompletionsReached"),
        &[("2024-12-01T12:01:06Z", Some(result))],
    );
    calls.extend([
        status(&cr, move |s| {
            assert_eq!(s["phase"], "Completed");
            assert_eq!(s["snapshotId"], expected_id.as_str());
            assert_eq!(s["dryRun"], false);
            assert_eq!(s["plan"], json!({"groups": 2, "partitions": 12}));
            assert_eq!(s["groupsTotal"], 2);
            assert_eq!(s["groupsReset"], 2);
            assert_eq!(s["groupsFailed"], 0);
            assert_eq!(s["offsetsReset"], 12);
            assert_eq!(s["offsetsPerSecond"], 1234);
            assert_eq!(
                s["groupResults"][1],
                json!({"group": "group-1", "status": "reset", "partitions": 6})
            );
            assert_eq!(s["startTime"], "2024-12-01T12:00:00Z");
            assert!(s["completionTime"].is_string());
            assert_conditions(s, [true, false, false], "OffsetsReset");
            assert_eq!(condition(s, "Ready")["message"], "2 of 2 groups reset");
        }),
        event("Normal", "JobSucceeded"),
    ]);
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
    assert_eq!(metrics.job_count(KIND, "succeeded"), 1);
}

// (c) Some groups failed: Failed and Stalled with the worker's reason; the failed groups are
// listed (at most 50) and the safety snapshot is still reported, so the part that was reset can
// be rolled back.
#[tokio::test]
async fn a_failed_reset_fails_and_stalls_with_the_snapshot_to_undo_it() {
    let cr = kor(RESET_FROM_FILE);
    let snapshot_id = safety_snapshot_id(&cr, RUN).expect("id");
    let cr = with_status(cr, "g1-r0", "Running", "apply-offsets-plan-kor-g1-r0");
    let mut result = reset_result("Failed", false, 80, 3);
    result["snapshotId"] = json!(snapshot_id);
    result["error"] = json!({"kind": "partial_failure", "exitCode": 10});
    result["message"] = json!("3 of 80 groups failed: their consumers are still running");
    let job = "apply-offsets-plan-kor-g1-r0";
    let expected_id = snapshot_id.clone();
    let mut calls = ended_job(
        job,
        ("Failed", "BackoffLimitExceeded"),
        &[("2024-12-01T12:03:00Z", Some(result))],
    );
    calls.extend([
        status(&cr, move |s| {
            assert_eq!(s["phase"], "Failed");
            assert_eq!(s["snapshotId"], expected_id.as_str());
            assert_eq!(s["groupsFailed"], 3);
            assert_eq!(s["groupsReset"], 77);
            assert_eq!(s["plan"], json!({"groups": 80, "partitions": 462}));
            let listed = s["groupResults"].as_array().expect("groupResults");
            assert_eq!(listed.len(), 50, "capped at 50");
            assert_eq!(s["totalGroupResults"], 80);
            assert_eq!(listed[0]["status"], "failed");
            assert!(listed[0]["error"]
                .as_str()
                .is_some_and(|e| e.contains("active members")));
            assert_conditions(s, [false, false, true], "PartialFailure");
            assert_eq!(
                condition(s, "Ready")["message"],
                "3 of 80 groups failed: their consumers are still running"
            );
        }),
        event("Warning", "JobFailed"),
    ]);
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
    assert_eq!(metrics.job_count(KIND, "failed"), 1);
}

// (c') A Job that failed without a result: Failed, JobFailed, pointing at the logs.
#[tokio::test]
async fn a_failed_reset_without_a_result_says_so() {
    failed_job_without_a_result(kor(RESET_SHIFT_BY)).await;
}

// (d) A dry run: no Secret, no Role, no storage; it completes with the plan and no snapshot.
#[tokio::test]
async fn a_dry_run_plans_and_reports_without_a_snapshot() {
    let cr = kor(RESET_DRY_RUN);
    let calls = vec![
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path("v1", "configmaps", "plan-payments-rewind-kor-task-g1-r0"),
            |body| {
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(task.contains("dryRun: true"), "{task}");
                assert!(task.contains("groupsRegex: payments-.*"), "{task}");
                assert!(!task.contains("storage"), "{task}");
                assert!(!task.contains("snapshotId"), "{task}");
            },
        ),
        apply(
            path("batch/v1", "jobs", "plan-payments-rewind-kor-g1-r0"),
            |body| {
                assert_eq!(
                    body["spec"]["template"]["spec"]["automountServiceAccountToken"],
                    false
                );
            },
        ),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Running");
            assert_eq!(s["dryRun"], true);
            assert_eq!(
                condition(s, "Reconciling")["message"],
                "Job plan-payments-rewind-kor-g1-r0 is running reset toEarliest (dry run) (run g1-r0)"
            );
        }),
        event("Normal", "JobCreated"),
    ];
    let (result, _, _) = scenario(cr.clone(), calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));

    let cr = with_status(cr, "g1-r0", "Running", "plan-payments-rewind-kor-g1-r0");
    let mut result = reset_result("Completed", true, 3, 0);
    result["reset"]["groupResults"][0]["plan"] = json!([
        {"topic": "payments", "partition": 0, "current": 120, "target": 0, "action": "rewind"},
        {"topic": "payments", "partition": 1, "target": 0, "action": "set"}
    ]);
    // A worker that names the id it would have used still leaves no snapshot to roll back to.
    result["snapshotId"] = json!("never-stored");
    let job = "plan-payments-rewind-kor-g1-r0";
    let mut calls = ended_job(
        job,
        ("Complete", "CompletionsReached"),
        &[("2024-12-01T12:01:06Z", Some(result))],
    );
    calls.extend([
        status(&cr, |s| {
            assert_eq!(s["phase"], "Completed");
            assert_eq!(s["dryRun"], true);
            assert_eq!(s["plan"], json!({"groups": 3, "partitions": 18}));
            assert_eq!(s["groupResults"][0]["status"], "planned");
            assert_eq!(
                s["groupResults"][0]["plan"],
                json!([
                    {"topic": "payments", "partition": 0, "current": 120, "target": 0, "action": "rewind"},
                    {"topic": "payments", "partition": 1, "target": 0, "action": "set"}
                ])
            );
            assert!(s["groupResults"][1].get("plan").is_none(), "{s}");
            assert_eq!(s["offsetsReset"], 0);
            assert!(s.get("snapshotId").is_none(), "{s}");
            assert_condition(s, "Ready", "True", "ResetPlanned");
        }),
        event("Normal", "JobSucceeded"),
    ]);
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
}

// (f) The Job of a running reset was deleted: Failed JobDeleted, never recreated.
#[tokio::test]
async fn a_reset_job_deleted_mid_run_fails_and_is_not_recreated() {
    job_deleted_mid_run(kor(RESET_SHIFT_BY)).await;
}

// (g) A spec edit after a finished reset is a new run: the old Job and task go, and the new run
// gets its own safety snapshot id.
#[tokio::test]
async fn a_spec_edit_after_a_reset_starts_a_new_run_with_a_new_snapshot_id() {
    let mut cr = with_status(
        kor(RESET_SHIFT_BY),
        "g1-r0",
        "Completed",
        "rewind-billing-kor-g1-r0",
    );
    cr.metadata.generation = Some(2);
    if let Some(s) = cr.status.as_mut() {
        s.snapshot_id = Some("rewind-billing-reset-g1-r0-00000000".into());
        s.groups_reset = Some(1);
    }
    let new_id = safety_snapshot_id(
        &cr,
        RunId {
            generation: 2,
            run: 0,
        },
    )
    .expect("id");
    assert_ne!(new_id, safety_snapshot_id(&cr, RUN).expect("id"));
    let mut calls = superseded_run(&cr, "g1-r0", not_found("x", "y"));
    calls.extend([
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path("v1", "configmaps", "rewind-billing-kor-task-g2-r0"),
            move |body| {
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(task.contains(&format!("snapshotId: {new_id}")), "{task}");
            },
        ),
        apply(path("batch/v1", "jobs", "rewind-billing-kor-g2-r0"), |_| {}),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Running");
            assert_eq!(s["run"], "g2-r0");
            assert!(
                s.get("snapshotId").is_none(),
                "the old run's results go: {s}"
            );
            assert!(s.get("groupsReset").is_none(), "{s}");
        }),
        event("Normal", "JobCreated"),
    ]);
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
}

// (h) What the worker would refuse (a pattern that is no regex) stalls before any Job, naming the
// spec field.
#[tokio::test]
async fn an_invalid_pattern_stalls_and_awaits_a_change() {
    let cr = kor(&RESET_DRY_RUN.replace("\"payments-.*\"", "\"payments-(\""));
    let calls = vec![
        status(&cr, |s| {
            assert_eq!(s["phase"], "Pending");
            assert_condition(s, "Stalled", "True", "InvalidField");
            let message = condition(s, "Stalled")["message"]
                .as_str()
                .expect("message");
            assert!(
                message.starts_with("spec.consumerGroupPattern is not a valid regex"),
                "{message}"
            );
        }),
        event("Warning", "InvalidField"),
    ];
    let (result, policy, _) = scenario(cr, calls).await;
    assert_eq!(result.expect_err("invalid").metric_label(), "invalid_spec");
    assert_eq!(policy, Some(Action::await_change()));
}

// A validation message of 100 KiB (a huge client property name, echoed by the message) reaches
// no condition or Event note whole: each is cut under its cap, with a marker. (A huge pattern
// is refused by its size alone, in a short message.)
#[tokio::test]
async fn a_huge_validation_message_is_capped_in_status_and_event() {
    let key = format!("{}.password", "x".repeat(100 * 1024));
    let mut cr = kor(RESET_DRY_RUN);
    cr.spec
        .kafka_cluster
        .properties
        .insert(key.clone(), "1".to_string());
    let long = crate::validate::validate(&cr)
        .first()
        .map(|p| p.message.len())
        .expect("a problem");
    assert!(long > 100 * 1024, "the message itself is long: {long}");
    let calls = vec![
        status(&cr, |s| {
            assert_condition(s, "Stalled", "True", "SecretInProperties");
            for c in s["conditions"].as_array().expect("conditions") {
                let message = c["message"].as_str().expect("message");
                assert!(
                    message.len() <= crate::controller::status::MAX_STATUS_MESSAGE,
                    "{}",
                    message.len()
                );
                assert!(message.ends_with(" ... [truncated]"), "{message}");
            }
        }),
        event("Warning", "SecretInProperties").check(|body, _| {
            let note = body["note"].as_str().expect("note");
            assert!(note.len() <= 1024, "{}", note.len());
            assert!(
                note.starts_with("spec.kafkaCluster.properties['xxx"),
                "{note}"
            );
        }),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect_err("invalid").metric_label(), "invalid_spec");
}

// A finished reset is not run again.
#[tokio::test]
async fn a_finished_reset_makes_no_calls() {
    finished_runs_make_no_calls(kor(RESET_DRY_RUN)).await;
}

// A reset Job still running: one read, no writes, look again later.
#[tokio::test]
async fn a_running_reset_job_is_only_read() {
    super::a_running_job_is_only_read(kor(RESET_FROM_FILE)).await;
}

// (e) The worker pod cannot start for want of the storage Secret: Stalled, the Job kept.
#[tokio::test]
async fn a_pod_waiting_for_a_missing_secret_stalls_the_reset() {
    super::a_pod_waiting_for_a_secret_stalls_the_run(
        kor(RESET_TO_DATETIME),
        "SecretNotFound",
        "secret \"s3-credentials\" not found",
        "spec.storage.s3.credentialsSecret",
    )
    .await;
}

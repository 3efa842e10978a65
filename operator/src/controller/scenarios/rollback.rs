//! Scenarios of the KafkaOffsetRollback reconcile.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use serde_json::{json, Value};

use super::*;
use crate::build::fixtures::*;
use crate::controller::RUNNING_POLL;

const KIND: &str = "KafkaOffsetRollback";

/// An Event about the KafkaOffsetRollback.
fn event(type_: &'static str, reason: &'static str) -> Call {
    super::event(KIND, type_, reason)
}

// (a) A new resource (its Secret never read): the worker ServiceAccount, task ConfigMap and Job
// are applied, and the status says Running.
#[tokio::test]
async fn a_new_resource_applies_children_and_runs() {
    let cr = korb(PRE_MIGRATION_SNAPSHOT);
    let calls = vec![
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |body| {
            assert_eq!(body["kind"], "ServiceAccount");
            assert_eq!(body["automountServiceAccountToken"], false);
        }),
        apply(
            path("v1", "configmaps", "pre-migration-snapshot-korb-task-g1-r0"),
            |body| {
                assert_eq!(
                    body["metadata"]["ownerReferences"][0]["name"],
                    "pre-migration-snapshot"
                );
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(task.contains("operation: snapshot"), "{task}");
                assert!(
                    task.contains("s3://kafka-snapshots/offset-snapshots"),
                    "{task}"
                );
            },
        ),
        apply(
            path("batch/v1", "jobs", "pre-migration-snapshot-korb-g1-r0"),
            |body| {
                assert_eq!(body["kind"], "Job");
                assert_eq!(body["metadata"]["ownerReferences"][0]["controller"], true);
                let container = &body["spec"]["template"]["spec"]["containers"][0];
                assert_eq!(
                    container["args"],
                    json!(["run", "--task", "/etc/tidemark/task/task.yaml"])
                );
                assert_eq!(
                    container["env"][1]["valueFrom"]["secretKeyRef"]["name"],
                    "kafka-credentials"
                );
            },
        ),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Running");
            assert_eq!(s["run"], "g1-r0");
            assert_eq!(s["jobName"], "pre-migration-snapshot-korb-g1-r0");
            assert_eq!(s["snapshotId"], "pre-migration-20241201-1200");
            assert_eq!(s["operation"], "snapshot");
            assert_eq!(s["observedGeneration"], 1);
            assert!(s["startTime"].is_string());
            assert_conditions(s, [false, true, false], "JobRunning");
        }),
        event("Normal", "JobCreated"),
    ];
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
    assert_eq!(metrics.job_count("KafkaOffsetRollback", "created"), 1);
}

// (a'') TLS verification skipped through kafkaCluster.tlsInsecureSkipVerify: the task carries
// it, and creating the Job raises a Warning Event naming the field.
#[tokio::test]
async fn skipping_tls_verification_raises_a_warning_event() {
    let cr = korb(&EMERGENCY_ROLLBACK.replace(
        "    securityProtocol: SASL_SSL\n",
        "    securityProtocol: SASL_SSL\n    tlsInsecureSkipVerify: true\n",
    ));
    let calls = vec![
        // A rollback first looks for a resource taking its snapshot: none.
        list_rollbacks(std::slice::from_ref(&cr)),
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path("v1", "configmaps", "emergency-rollback-korb-task-g1-r0"),
            |body| {
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(task.contains("tlsInsecureSkipVerify: true"), "{task}");
                assert!(
                    task.contains("safetySnapshotId: emergency-rollback-rollback-g1-r0-"),
                    "{task}"
                );
            },
        ),
        apply(
            path("batch/v1", "jobs", "emergency-rollback-korb-g1-r0"),
            |_| {},
        ),
        status(&cr, |s| assert_eq!(s["phase"], "Running")),
        event("Normal", "JobCreated"),
        event("Warning", "InsecureTls").check(|body, _| {
            assert_eq!(body["type"], "Warning", "{body}");
            assert_eq!(body["reason"], "InsecureTls", "{body}");
            assert!(
                body["note"]
                    .as_str()
                    .is_some_and(|n| n.contains("spec.kafkaCluster.tlsInsecureSkipVerify")),
                "{body}"
            );
        }),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
}

// (a') ConfigMap storage also gets a RoleBinding of the worker ServiceAccount to the
// install's worker ClusterRole, before the Job; the operator creates no Role.
#[tokio::test]
async fn config_map_storage_binds_the_worker_cluster_role() {
    let cr = korb(QUICK_SNAPSHOT);
    let calls = vec![
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path(
                "rbac.authorization.k8s.io/v1",
                "rolebindings",
                "quick-snapshot-korb-snapshots",
            ),
            |body| {
                assert_eq!(body["subjects"][0]["name"], "tidemark-worker");
                assert_eq!(body["roleRef"]["kind"], "ClusterRole");
                assert_eq!(body["roleRef"]["name"], "tidemark-worker");
            },
        ),
        apply(
            path("v1", "configmaps", "quick-snapshot-korb-task-g1-r0"),
            |_| {},
        ),
        apply(
            path("batch/v1", "jobs", "quick-snapshot-korb-g1-r0"),
            |_| {},
        ),
        status(&cr, |s| assert_eq!(s["phase"], "Running")),
        event("Normal", "JobCreated"),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
}

// (b) The Job succeeded: the worker's result gives the generated snapshot id and snapshotData.
#[tokio::test]
async fn a_successful_job_completes_the_run_with_snapshot_data() {
    let cr = korb(&QUICK_SNAPSHOT.replace("  snapshotId: \"quick-snapshot-001\"\n", ""));
    assert_eq!(cr.spec.snapshot_id, None);
    let cr = with_status(cr, "g1-r0", "Running", "quick-snapshot-korb-g1-r0");
    let result = json!({
        "phase": "Completed", "operation": "snapshot", "snapshotId": "snapshot-20241201-120105",
        "message": "Snapshot snapshot-20241201-120105 created successfully: 1 group, 3 partitions",
        "snapshotData": {"groups": 1, "totalPartitions": 3, "timestamp": "2024-12-01T12:01:05Z"}
    });
    let job = "quick-snapshot-korb-g1-r0";
    let mut calls = ended_job(
        job,
        ("Complete", "CompletionsReached"),
        &[("2024-12-01T12:01:06Z", Some(result))],
    );
    calls.extend([
        status(&cr, |s| {
            assert_eq!(s["phase"], "Completed");
            assert_eq!(s["run"], "g1-r0");
            assert_eq!(s["snapshotId"], "snapshot-20241201-120105");
            assert_eq!(
                s["snapshotData"],
                json!({"groups": 1, "totalPartitions": 3, "timestamp": "2024-12-01T12:01:05Z"})
            );
            assert_eq!(s["startTime"], "2024-12-01T12:00:00Z");
            assert!(s["completionTime"].is_string());
            assert_condition(s, "Ready", "True", "SnapshotCreated");
            assert!(condition(s, "Ready")["message"]
                .as_str()
                .is_some_and(|m| m.contains("1 group, 3 partitions")));
            assert_condition(s, "Reconciling", "False", "SnapshotCreated");
            assert_condition(s, "Stalled", "False", "SnapshotCreated");
            // Stalled stayed False: its transition time is kept.
            assert_eq!(
                condition(s, "Stalled")["lastTransitionTime"],
                "2024-12-01T11:00:00Z"
            );
        }),
        event("Normal", "JobSucceeded"),
    ]);
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
    assert_eq!(metrics.job_count("KafkaOffsetRollback", "succeeded"), 1);
}

// (b') A rollback's result names the safety snapshot of the offsets it replaced: the status
// shows it, so that a rollback to it undoes the rollback.
#[tokio::test]
async fn a_rollback_shows_its_safety_snapshot() {
    let cr = with_status(
        korb(EMERGENCY_ROLLBACK),
        "g1-r0",
        "Running",
        "emergency-rollback-g1-r0",
    );
    let result = json!({
        "phase": "Completed", "operation": "rollback", "snapshotId": "pre-migration-20241201-1200",
        "message": "Rolled back 1 group (3 offsets) to snapshot pre-migration-20241201-1200; verified; the offsets it replaced are in snapshot emergency-rollback-rollback-g1-r0-1a2b3c4d",
        "groupsRolledBack": 1, "groupsFailed": 0,
        "safetySnapshotId": "emergency-rollback-rollback-g1-r0-1a2b3c4d"
    });
    let mut calls = ended_job(
        "emergency-rollback-g1-r0",
        ("Complete", "CompletionsReached"),
        &[("2024-12-01T12:01:06Z", Some(result))],
    );
    calls.extend([
        status(&cr, |s| {
            assert_eq!(s["phase"], "Completed");
            assert_eq!(
                s["safetySnapshotId"],
                "emergency-rollback-rollback-g1-r0-1a2b3c4d"
            );
            assert_eq!(s["snapshotId"], "pre-migration-20241201-1200");
            assert_condition(s, "Ready", "True", "RolledBack");
        }),
        event("Normal", "JobSucceeded"),
    ]);
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
}

// (c) A strict verify that finds differences fails, listing them.
#[tokio::test]
async fn a_strict_verify_with_differences_fails_and_lists_them() {
    let cr = with_status(
        korb(VERIFY_ROLLBACK),
        "g1-r0",
        "Running",
        "verify-rollback-korb-g1-r0",
    );
    let differences: Vec<Value> = (0..60)
        .map(|p| json!({"group": "order-processor", "topic": "orders", "partition": p, "expected": 100, "actual": 140}))
        .collect();
    let result = json!({
        "phase": "Failed", "operation": "verify", "snapshotId": "pre-migration-20241201-1200",
        "message": "Mismatch with snapshot pre-migration-20241201-1200 (strict): 60 of 60 partitions in 1 of 1 group",
        "snapshotData": {"groups": 1, "totalPartitions": 60, "timestamp": "2024-12-01T12:00:00Z"},
        "verification": {"matched": false, "totalDifferences": 75, "differences": differences},
        "error": {"kind": "verification_failed", "exitCode": 11}
    });
    let job = "verify-rollback-korb-g1-r0";
    let mut calls = ended_job(
        job,
        ("Failed", "PodFailurePolicy"),
        &[("2024-12-01T12:01:06Z", Some(result))],
    );
    calls.extend([
        status(&cr, |s| {
            assert_eq!(s["phase"], "Failed");
            let v = &s["verificationResult"];
            assert_eq!(v["matched"], false);
            assert_eq!(v["totalDifferences"], 75);
            let listed = v["differences"].as_array().expect("differences");
            assert_eq!(listed.len(), 50, "capped at 50");
            assert_eq!(
                listed[0],
                json!({"group": "order-processor", "topic": "orders", "partition": 0, "expected": 100, "actual": 140})
            );
            assert_condition(s, "Ready", "False", "VerificationFailed");
            assert_condition(s, "Stalled", "True", "VerificationFailed");
        }),
        event("Warning", "JobFailed"),
    ]);
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
    assert_eq!(metrics.job_count("KafkaOffsetRollback", "failed"), 1);
}

// (c') Not strict: the same differences complete the run, matched=false.
#[tokio::test]
async fn a_lenient_verify_with_differences_completes() {
    let cr = korb(&VERIFY_ROLLBACK.replace("strict: true", "strict: false"));
    let cr = with_status(cr, "g1-r0", "Running", "verify-rollback-korb-g1-r0");
    let result = json!({
        "phase": "Completed", "operation": "verify", "snapshotId": "pre-migration-20241201-1200",
        "message": "Mismatch with snapshot pre-migration-20241201-1200: 1 of 3 partitions in 1 of 1 group",
        "verification": {"matched": false, "totalDifferences": 1,
            "differences": [{"group": "order-processor", "topic": "orders", "partition": 2, "expected": 5}]}
    });
    let job = "verify-rollback-korb-g1-r0";
    let mut calls = ended_job(
        job,
        ("Complete", "CompletionsReached"),
        &[("2024-12-01T12:01:06Z", Some(result))],
    );
    calls.extend([
        status(&cr, |s| {
            assert_eq!(s["phase"], "Completed");
            assert_eq!(s["verificationResult"]["matched"], false);
            assert_eq!(s["verificationResult"]["differences"][0]["partition"], 2);
            assert_condition(s, "Ready", "True", "OffsetsDiffer");
        }),
        event("Normal", "JobSucceeded"),
    ]);
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
}

// (d) The Job failed: the worker's error becomes the reason; the newest pod's result counts.
#[tokio::test]
async fn a_failed_job_fails_the_run_with_a_warning_event() {
    let cr = with_status(
        korb(EMERGENCY_ROLLBACK),
        "g1-r0",
        "Running",
        "emergency-rollback-korb-g1-r0",
    );
    let old = json!({"phase": "Failed", "message": "older attempt", "error": {"kind": "kafka_error", "exitCode": 9}});
    let newest = json!({
        "phase": "Failed", "operation": "rollback", "snapshotId": "pre-migration-20241201-1200",
        "message": "failed to connect to kafka:9092: broker transport failure",
        "error": {"kind": "connection_failed", "exitCode": 5}
    });
    let job = "emergency-rollback-korb-g1-r0";
    let mut calls = ended_job(
        job,
        ("Failed", "BackoffLimitExceeded"),
        &[
            ("2024-12-01T12:03:00Z", Some(newest)),
            ("2024-12-01T12:01:00Z", Some(old)),
        ],
    );
    calls.extend([
        status(&cr, |s| {
            assert_eq!(s["phase"], "Failed");
            assert_condition(s, "Ready", "False", "ConnectionFailed");
            assert_condition(s, "Stalled", "True", "ConnectionFailed");
            assert_eq!(
                condition(s, "Ready")["message"],
                "failed to connect to kafka:9092: broker transport failure"
            );
            assert_condition(s, "Reconciling", "False", "ConnectionFailed");
            assert!(s["completionTime"].is_string());
        }),
        event("Warning", "JobFailed"),
    ]);
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
}

// (d') A failed Job without a readable result still fails the run, with a clear message.
#[tokio::test]
async fn a_failed_job_without_a_result_says_so() {
    failed_job_without_a_result(korb(EMERGENCY_ROLLBACK)).await;
}

// (f) A spec edit after a completed run starts a new run: the old Job and task ConfigMap go,
// new ones are applied, status Running for the new run.
#[tokio::test]
async fn a_spec_edit_after_completion_starts_a_new_run() {
    let mut cr = with_status(
        korb(QUICK_SNAPSHOT),
        "g1-r0",
        "Completed",
        "quick-snapshot-korb-g1-r0",
    );
    cr.metadata.generation = Some(2);
    if let Some(s) = cr.status.as_mut() {
        s.snapshot_data = Some(crate::crd::rollback::SnapshotData {
            groups: 1,
            total_partitions: 3,
            timestamp: "2024-12-01T12:01:05Z".into(),
        });
    }
    let mut calls = superseded_run(
        &cr,
        "g1-r0",
        not_found("configmaps", "quick-snapshot-korb-task-g1-r0"),
    );
    calls.extend([
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path(
                "rbac.authorization.k8s.io/v1",
                "rolebindings",
                "quick-snapshot-korb-snapshots",
            ),
            |_| {},
        ),
        apply(
            path("v1", "configmaps", "quick-snapshot-korb-task-g2-r0"),
            |body| {
                assert_eq!(body["metadata"]["labels"]["tidemark.dev/run"], "g2-r0");
            },
        ),
        apply(
            path("batch/v1", "jobs", "quick-snapshot-korb-g2-r0"),
            |_| {},
        ),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Running");
            assert_eq!(s["run"], "g2-r0");
            assert_eq!(s["observedGeneration"], 2);
            assert_eq!(s["jobName"], "quick-snapshot-korb-g2-r0");
            assert!(
                s.get("snapshotData").is_none(),
                "the old run's results go: {s}"
            );
            assert!(s.get("completionTime").is_none(), "{s}");
            assert_ne!(s["startTime"], "2024-12-01T12:00:00Z");
        }),
        event("Normal", "JobCreated"),
    ]);
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
}

// Bumping the run annotation is a new run too.
#[tokio::test]
async fn a_bumped_run_annotation_starts_a_new_run() {
    let mut cr = with_status(
        korb(CLEANUP_OLD_SNAPSHOT),
        "g1-r0",
        "Failed",
        "cleanup-old-snapshot-korb-g1-r0",
    );
    cr.metadata.annotations = Some([("tidemark.dev/run".to_string(), "1".to_string())].into());
    let mut calls = superseded_run(&cr, "g1-r0", not_found("jobs", "x"));
    calls.extend([
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path(
                "rbac.authorization.k8s.io/v1",
                "rolebindings",
                "cleanup-old-snapshot-korb-snapshots",
            ),
            |_| {},
        ),
        apply(
            path("v1", "configmaps", "cleanup-old-snapshot-korb-task-g1-r1"),
            |_| {},
        ),
        apply(
            path("batch/v1", "jobs", "cleanup-old-snapshot-korb-g1-r1"),
            |_| {},
        ),
        status(&cr, |s| assert_eq!(s["run"], "g1-r1")),
        event("Normal", "JobCreated"),
    ]);
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
}

// The Job of a running run was deleted: Failed JobDeleted, never recreated.
#[tokio::test]
async fn a_job_deleted_mid_run_fails_the_run_and_is_not_recreated() {
    job_deleted_mid_run(korb(EMERGENCY_ROLLBACK)).await;
}

// A finished run is not run again, and nothing is written.
#[tokio::test]
async fn a_finished_run_makes_no_calls() {
    finished_runs_make_no_calls(korb(QUICK_SNAPSHOT)).await;
}

// A Job still running: one read, no writes, look again later.
#[tokio::test]
async fn a_running_job_is_only_read() {
    super::a_running_job_is_only_read(korb(QUICK_SNAPSHOT)).await;
}

// An invalid spec stalls and waits for a change; no child is built.
#[tokio::test]
async fn an_invalid_spec_stalls_and_awaits_a_change() {
    let mut cr = korb(QUICK_SNAPSHOT);
    cr.metadata.annotations = Some([("tidemark.dev/run".to_string(), "twice".to_string())].into());
    let calls = vec![
        status(&cr, |s| {
            assert_eq!(s["phase"], "Pending");
            assert_condition(s, "Stalled", "True", "InvalidRunAnnotation");
            assert!(s.get("run").is_none(), "{s}");
        }),
        event("Warning", "InvalidRunAnnotation"),
    ];
    let (result, policy, _) = scenario(cr, calls).await;
    assert_eq!(result.expect_err("invalid").metric_label(), "invalid_spec");
    assert_eq!(policy, Some(Action::await_change()));
}

// API errors retry with a growing backoff.
#[tokio::test]
async fn api_errors_back_off() {
    let (ctx, _handle) = context();
    let cr = Arc::new(korb(QUICK_SNAPSHOT));
    let err = || Error::Apply {
        what: "Job".into(),
        source: kube::Error::Api(Box::new(
            kube::core::Status::failure("boom", "InternalError").with_code(500),
        )),
    };
    assert_eq!(
        error_policy(cr.clone(), &err(), ctx.clone()),
        Action::requeue(Duration::from_secs(5))
    );
    assert_eq!(
        error_policy(cr.clone(), &err(), ctx.clone()),
        Action::requeue(Duration::from_secs(10))
    );
    ctx.succeeded(cr.as_ref());
    assert_eq!(
        error_policy(cr, &err(), ctx),
        Action::requeue(Duration::from_secs(5))
    );
}

// ---------------------------------------------------------------------------------------------
// The workflow example: a snapshot, then a rollback and a verify naming its snapshotId, applied
// in one manifest, in whatever order the operator sees them.

use std::sync::Mutex;

use http::StatusCode;

use crate::controller::rollback::{
    REASON_SNAPSHOT_NOT_TAKEN, REASON_WAITING_FOR_SNAPSHOT, SNAPSHOT_POLL,
};
use crate::crd::rollback::Operation;
use crate::crd::KafkaOffsetRollback;

const WORKFLOW: &str = include_str!("../../../tests/fixtures/rollback/workflow-example.yaml");

/// A status the operator wrote, kept for the next step.
type Slot = Arc<Mutex<Option<Value>>>;

/// The three resources of the manifest as the API server returns them (each its own uid):
/// `step1-snapshot`, `step2-rollback`, `step3-verify`.
fn workflow() -> Vec<KafkaOffsetRollback> {
    WORKFLOW
        .split("\n---\n")
        .filter(|doc| doc.contains("kind: KafkaOffsetRollback"))
        .enumerate()
        .map(|(i, doc)| {
            let mut cr = korb(doc);
            cr.metadata.uid = Some(format!("5eed0003-0000-4000-8000-00000000000{i}"));
            cr
        })
        .collect()
}

fn by_name<'a>(crs: &'a mut [KafkaOffsetRollback], name: &str) -> &'a mut KafkaOffsetRollback {
    crs.iter_mut()
        .find(|c| c.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no {name}"))
}

/// The list of the namespace's KafkaOffsetRollbacks, answered with `items`.
fn list_rollbacks(items: &[KafkaOffsetRollback]) -> Call {
    get(
        format!("/apis/tidemark.dev/v1alpha1/namespaces/{NS}/kafkaoffsetrollbacks"),
        Reply::Json(
            StatusCode::OK,
            json!({"apiVersion": "tidemark.dev/v1alpha1", "kind": "KafkaOffsetRollbackList",
                   "metadata": {}, "items": items}),
        ),
    )
}

/// The status write of `cr`, kept in `slot`, after `check`.
fn kept_status(
    cr: &KafkaOffsetRollback,
    slot: &Slot,
    check: impl Fn(&Value) + Send + 'static,
) -> Call {
    let slot = slot.clone();
    status(cr, move |s| {
        check(s);
        *slot.lock().expect("slot") = Some(s.clone());
    })
}

/// `cr` with the status kept in `slot`, as the next reconcile reads it.
fn with_kept(cr: &KafkaOffsetRollback, slot: &Slot) -> KafkaOffsetRollback {
    let mut value = serde_json::to_value(cr).expect("cr");
    value["status"] = slot
        .lock()
        .expect("slot")
        .take()
        .expect("a status was written");
    serde_json::from_value(value).expect("a resource with a status")
}

/// The calls that start run g1-r0 of `cr` (ConfigMap storage, no Secret): its worker RBAC,
/// task and Job, then Running.
fn start_calls(cr: &KafkaOffsetRollback, slot: &Slot) -> Vec<Call> {
    let name = cr.metadata.name.clone().expect("name");
    let op = cr.spec.operation.as_str();
    let rbac = |kind: &str| {
        path(
            "rbac.authorization.k8s.io/v1",
            kind,
            &format!("{name}-korb-snapshots"),
        )
    };
    vec![
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(rbac("rolebindings"), |_| {}),
        apply(
            path("v1", "configmaps", &format!("{name}-korb-task-g1-r0")),
            move |body| {
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(task.contains(&format!("operation: {op}")), "{task}");
                assert!(task.contains("before-change"), "{task}");
            },
        ),
        apply(
            path("batch/v1", "jobs", &format!("{name}-korb-g1-r0")),
            |_| {},
        ),
        kept_status(cr, slot, |s| {
            assert_eq!(s["phase"], "Running");
            assert_conditions(s, [false, true, false], "JobRunning");
        }),
        event("Normal", "JobCreated"),
    ]
}

/// The operator sees `name` for the first time, or again while it waits: a snapshot starts its
/// Job; a rollback or verify lists the namespace's KafkaOffsetRollbacks and starts once the
/// snapshot is taken, else waits for it; a verify also waits while the rollback runs.
async fn see(crs: &mut [KafkaOffsetRollback], name: &str) {
    let cr = by_name(crs, name).clone();
    let slot = Slot::default();
    let operation = cr.spec.operation;
    let taken = by_name(crs, "step1-snapshot")
        .status
        .as_ref()
        .is_some_and(|s| s.snapshot_data.is_some());
    let rolled_back = by_name(crs, "step2-rollback")
        .status
        .as_ref()
        .is_some_and(|s| s.common.phase == Some(crate::crd::status::Phase::Completed));
    let mut calls = Vec::new();
    if operation != Operation::Snapshot {
        calls.push(list_rollbacks(crs));
    }
    let waits_for = match operation {
        Operation::Snapshot => None,
        _ if !taken => {
            Some("snapshot 'before-change' is being taken by KafkaOffsetRollback 'step1-snapshot'")
        }
        Operation::Verify if !rolled_back => Some(
            "this verify waits for KafkaOffsetRollback 'step2-rollback' to finish rolling back",
        ),
        _ => None,
    };
    let expected = if let Some(waits_for) = waits_for {
        calls.extend([
            kept_status(&cr, &slot, move |s| {
                assert_eq!(s["phase"], "Pending");
                assert_eq!(s["run"], "g1-r0");
                assert!(s.get("jobName").is_none(), "{s}");
                assert_conditions(s, [false, true, false], REASON_WAITING_FOR_SNAPSHOT);
                let message = condition(s, "Ready")["message"].as_str().expect("message");
                assert!(message.contains(waits_for), "{message}");
            }),
            event("Normal", REASON_WAITING_FOR_SNAPSHOT),
        ]);
        Action::requeue(SNAPSHOT_POLL)
    } else {
        calls.extend(start_calls(&cr, &slot));
        Action::requeue(RUNNING_POLL)
    };
    let (result, _, _) = scenario(cr.clone(), calls).await;
    assert_eq!(result.expect("reconciled"), expected, "{name}");
    *by_name(crs, name) = with_kept(&cr, &slot);
}

/// The Job of `name`'s run ends with the worker's `result`: Completed with `reason`.
async fn job_ends(
    crs: &mut [KafkaOffsetRollback],
    name: &str,
    result: Value,
    reason: &'static str,
) {
    let cr = by_name(crs, name).clone();
    let slot = Slot::default();
    let job = format!("{name}-korb-g1-r0");
    let mut calls = ended_job(
        &job,
        ("Complete", "CompletionsReached"),
        &[("2024-12-01T12:01:06Z", Some(result))],
    );
    calls.extend([
        kept_status(&cr, &slot, move |s| {
            assert_eq!(s["phase"], "Completed");
            assert_eq!(s["snapshotId"], "before-change");
            assert_condition(s, "Ready", "True", reason);
        }),
        event("Normal", "JobSucceeded"),
    ]);
    let (result, _, _) = scenario(cr.clone(), calls).await;
    assert_eq!(
        result.expect("reconciled"),
        Action::await_change(),
        "{name}"
    );
    *by_name(crs, name) = with_kept(&cr, &slot);
}

/// The workflow, the operator seeing the resources first in `order`: whatever it sees first,
/// the rollback and the verify wait for the snapshot, then run, and all three complete.
async fn workflow_in_order(order: [&str; 3]) {
    let mut crs = workflow();
    for name in order {
        see(&mut crs, name).await;
    }
    let snapshot = json!({
        "phase": "Completed", "operation": "snapshot", "snapshotId": "before-change",
        "message": "Snapshot before-change created successfully: 1 group, 3 partitions",
        "snapshotData": {"groups": 1, "totalPartitions": 3, "timestamp": "2024-12-01T12:01:05Z"}
    });
    job_ends(&mut crs, "step1-snapshot", snapshot, "SnapshotCreated").await;
    // Polled again: the snapshot is taken, so the rollback starts; the verify waits for it to
    // finish, then starts.
    see(&mut crs, "step2-rollback").await;
    see(&mut crs, "step3-verify").await;
    let rollback = json!({
        "phase": "Completed", "operation": "rollback", "snapshotId": "before-change",
        "message": "Rolled back 1 group (3 offsets) to snapshot before-change",
        "groupsRolledBack": 1, "groupsFailed": 0
    });
    job_ends(&mut crs, "step2-rollback", rollback, "RolledBack").await;
    see(&mut crs, "step3-verify").await;
    let verify = json!({
        "phase": "Completed", "operation": "verify", "snapshotId": "before-change",
        "message": "Offsets match snapshot before-change: 3 partitions in 1 group",
        "verification": {"matched": true, "totalDifferences": 0, "differences": []}
    });
    job_ends(&mut crs, "step3-verify", verify, "Verified").await;
    for cr in &crs {
        let status = cr.status.as_ref().expect("a status");
        assert_eq!(
            status.common.phase,
            Some(crate::crd::status::Phase::Completed),
            "{:?}",
            cr.metadata.name
        );
    }
}

#[tokio::test]
async fn the_workflow_completes_when_the_snapshot_is_seen_first() {
    workflow_in_order(["step1-snapshot", "step2-rollback", "step3-verify"]).await;
}

#[tokio::test]
async fn the_workflow_completes_when_the_rollback_is_seen_first() {
    workflow_in_order(["step2-rollback", "step3-verify", "step1-snapshot"]).await;
}

#[tokio::test]
async fn the_workflow_completes_when_the_verify_is_seen_first() {
    workflow_in_order(["step3-verify", "step1-snapshot", "step2-rollback"]).await;
}

/// `cr` with `status` (JSON) set.
fn with_json_status(cr: &KafkaOffsetRollback, status: Value) -> KafkaOffsetRollback {
    let mut value = serde_json::to_value(cr).expect("cr");
    value["status"] = status;
    serde_json::from_value(value).expect("a resource with a status")
}

/// Conditions `Ready`, `Reconciling`, `Stalled` with these statuses, `reason` and `message`,
/// all since `since`.
fn conditions_json(statuses: [&str; 3], reason: &str, message: &str, since: &str) -> Value {
    let types = ["Ready", "Reconciling", "Stalled"];
    Value::Array(
        types
            .iter()
            .zip(statuses)
            .map(|(t, s)| {
                json!({"type": t, "status": s, "reason": reason, "message": message,
                       "lastTransitionTime": since, "observedGeneration": 1})
            })
            .collect(),
    )
}

// The run that was to take the snapshot failed: a rollback waiting for it fails at once, saying
// why and how to run it again; no Job.
#[tokio::test]
async fn a_rollback_whose_snapshot_run_failed_fails_without_a_job() {
    let mut crs = workflow();
    let failed = json!({
        "phase": "Failed", "run": "g1-r0", "observedGeneration": 1, "operation": "snapshot",
        "snapshotId": "before-change", "jobName": "step1-snapshot-korb-g1-r0",
        "conditions": conditions_json(["False", "False", "True"], "ConnectionFailed",
            "failed to connect to kafka:9092", "2024-12-01T12:00:00Z")
    });
    let snapshot = with_json_status(by_name(&mut crs, "step1-snapshot"), failed);
    *by_name(&mut crs, "step1-snapshot") = snapshot;
    let cr = by_name(&mut crs, "step2-rollback").clone();
    let calls = vec![
        list_rollbacks(&crs),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Failed");
            assert_eq!(s["run"], "g1-r0");
            assert!(s.get("jobName").is_none(), "{s}");
            assert!(s["completionTime"].is_string(), "{s}");
            assert_conditions(s, [false, false, true], REASON_SNAPSHOT_NOT_TAKEN);
            let message = condition(s, "Ready")["message"].as_str().expect("message");
            assert!(message.contains("snapshot 'before-change' was to be taken by KafkaOffsetRollback 'step1-snapshot', whose run failed (ConnectionFailed: failed to connect to kafka:9092)"), "{message}");
            assert!(message.contains("kubectl annotate kafkaoffsetrollback step2-rollback tidemark.dev/run=1 --overwrite"), "{message}");
        }),
        event("Warning", REASON_SNAPSHOT_NOT_TAKEN),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
}

// A snapshot that is not taken within the bound (its resource stalled on a missing Secret):
// the waiting verify fails after SNAPSHOT_WAIT; before it, it keeps waiting.
#[tokio::test]
async fn a_snapshot_not_taken_in_time_fails_the_wait() {
    let mut crs = workflow();
    let stalled = json!({
        "phase": "Pending", "run": "g1-r0", "observedGeneration": 1, "operation": "snapshot",
        "snapshotId": "before-change",
        "conditions": conditions_json(["False", "False", "True"], "SecretNotFound",
            "Secret 'kafka-credentials' referenced by spec.kafkaCluster.saslSecret not found", "2024-12-01T12:00:00Z")
    });
    let snapshot = with_json_status(by_name(&mut crs, "step1-snapshot"), stalled);
    *by_name(&mut crs, "step1-snapshot") = snapshot;
    let waiting_since = |since: &str| {
        json!({
            "phase": "Pending", "run": "g1-r0", "observedGeneration": 1, "operation": "verify",
            "snapshotId": "before-change",
            "conditions": conditions_json(["False", "True", "False"], REASON_WAITING_FOR_SNAPSHOT,
                "waiting", since)
        })
    };
    let minutes_ago = |m: i64| {
        let t = k8s_openapi::jiff::Timestamp::now()
            - k8s_openapi::jiff::SignedDuration::from_secs(m * 60);
        crate::controller::status::timestamp(&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            t,
        ))
    };

    // Waiting for 9 minutes: still waiting, and saying for what.
    let cr = with_json_status(
        by_name(&mut crs, "step3-verify"),
        waiting_since(&minutes_ago(9)),
    );
    let since = minutes_ago(9);
    let calls = vec![
        list_rollbacks(&crs),
        status(&cr, move |s| {
            assert_conditions(s, [false, true, false], REASON_WAITING_FOR_SNAPSHOT);
            assert_eq!(
                condition(s, "Reconciling")["lastTransitionTime"],
                since.as_str()
            );
            let message = condition(s, "Ready")["message"].as_str().expect("message");
            assert!(message.contains("SecretNotFound"), "{message}");
            assert!(message.contains("for at most 10 minutes"), "{message}");
        }),
        event("Normal", REASON_WAITING_FOR_SNAPSHOT),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(SNAPSHOT_POLL));

    // Waiting for 11 minutes: the verify fails.
    let cr = with_json_status(
        by_name(&mut crs, "step3-verify"),
        waiting_since(&minutes_ago(11)),
    );
    let calls = vec![
        list_rollbacks(&crs),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Failed");
            assert_conditions(s, [false, false, true], REASON_SNAPSHOT_NOT_TAKEN);
            let message = condition(s, "Ready")["message"].as_str().expect("message");
            assert!(message.contains("snapshot 'before-change' was not taken within 10 minutes: KafkaOffsetRollback 'step1-snapshot' is still Pending, SecretNotFound"), "{message}");
        }),
        event("Warning", REASON_SNAPSHOT_NOT_TAKEN),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
}

// No resource takes the snapshot, and the rollback is not new: it runs at once (the snapshot
// was taken before; if it is missing, the worker fails the run with SnapshotNotFound).
#[tokio::test]
async fn a_rollback_of_a_snapshot_no_resource_takes_runs_at_once() {
    let mut crs = workflow();
    let cr = by_name(&mut crs, "step2-rollback").clone();
    let slot = Slot::default();
    let mut calls = vec![list_rollbacks(&crs[1..])];
    calls.extend(start_calls(&cr, &slot));
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
}

// A completed snapshot of a fixed id, edited (a new generation): the new run would fail with
// "already exists", so it is refused with SnapshotExists, keeping what the snapshot holds; the
// refusal holds on the next reconcile, without a write.
#[tokio::test]
async fn an_edited_snapshot_with_a_taken_id_is_refused() {
    let mut cr = by_name(&mut workflow(), "step1-snapshot").clone();
    let completed = json!({
        "phase": "Completed", "run": "g1-r0", "observedGeneration": 1, "operation": "snapshot",
        "snapshotId": "before-change", "jobName": "step1-snapshot-korb-g1-r0",
        "snapshotData": {"groups": 1, "totalPartitions": 3, "timestamp": "2024-12-01T12:01:05Z"},
        "conditions": conditions_json(["True", "False", "False"], "SnapshotCreated", "done",
            "2024-12-01T12:01:06Z")
    });
    cr = with_json_status(&cr, completed);
    cr.metadata.generation = Some(2);
    cr.spec.consumer_groups.push("other-group".into());
    let slot = Slot::default();
    let calls = vec![
        list_run_jobs(&cr, vec![]),
        list_run_pods(&cr, vec![]),
        kept_status(&cr, &slot, |s| {
            assert_eq!(s["phase"], "Pending");
            assert_eq!(s["run"], "g2-r0");
            assert_conditions(s, [false, false, true], "SnapshotExists");
            assert_eq!(s["snapshotData"]["timestamp"], "2024-12-01T12:01:05Z");
            let message = condition(s, "Ready")["message"].as_str().expect("message");
            assert!(message.contains("snapshot 'before-change' was taken at 2024-12-01T12:01:05Z by this resource and is never overwritten"), "{message}");
            assert!(message.contains("change spec.snapshotId"), "{message}");
        }),
        event("Warning", "SnapshotExists"),
    ];
    let (result, policy, _) = scenario(cr.clone(), calls).await;
    assert_eq!(result.expect_err("refused").metric_label(), "invalid_spec");
    assert_eq!(policy, Some(Action::await_change()));

    let cr = with_kept(&cr, &slot);
    let calls = vec![list_run_jobs(&cr, vec![]), list_run_pods(&cr, vec![])];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(
        result.expect_err("still refused").metric_label(),
        "invalid_spec"
    );
}

// A new resource as the API server shows it before the operator's first status write (the
// CRD's default status: generation 0 observed, Ready Unknown): it runs like one without a
// status, after looking for Jobs of earlier runs (none), and the default is replaced.
#[tokio::test]
async fn a_new_resource_with_the_default_status_runs() {
    let cr = by_name(&mut workflow(), "step1-snapshot").clone();
    let cr = with_json_status(&cr, crate::crd::default_status());
    assert_eq!(
        cr.status
            .as_ref()
            .and_then(|s| s.common.observed_generation),
        Some(0)
    );
    let slot = Slot::default();
    let mut calls = vec![list_run_jobs(&cr, vec![]), list_run_pods(&cr, vec![])];
    calls.extend(start_calls(&cr, &slot));
    let (result, _, _) = scenario(cr.clone(), calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
    let written = with_kept(&cr, &slot);
    let status = written.status.expect("a status");
    assert_eq!(status.common.observed_generation, Some(1));
    assert!(
        status
            .common
            .conditions
            .iter()
            .all(|c| c.status != "Unknown" && c.last_transition_time != "1970-01-01T00:00:00Z"),
        "{:?}",
        status.common.conditions
    );
}

// (e) The worker pod waits for a missing Secret (the kubelet's CreateContainerConfigError):
// Stalled with SecretNotFound naming it, the Job kept; the Secret created, Running again.
#[tokio::test]
async fn a_pod_waiting_for_a_missing_secret_stalls_the_run() {
    super::a_pod_waiting_for_a_secret_stalls_the_run(
        korb(PRE_MIGRATION_SNAPSHOT),
        "SecretNotFound",
        "secret \"kafka-credentials\" not found",
        "spec.kafkaCluster.saslSecret",
    )
    .await;
}

// (e') A Secret without the key the Job's secretKeyRef names: KeyNotFound, the key named.
#[tokio::test]
async fn a_pod_waiting_for_a_missing_secret_key_stalls_the_run() {
    super::a_pod_waiting_for_a_secret_stalls_the_run(
        korb(PRE_MIGRATION_SNAPSHOT),
        "KeyNotFound",
        "couldn't find key password in Secret kafka-backup/kafka-credentials",
        "spec.kafkaCluster.saslSecret",
    )
    .await;
}

// (e'') A Secret volume the kubelet cannot mount: the pod stays ContainerCreating and only
// the kubelet's FailedMount Events say why. Stalled naming the Secret and the key.
#[tokio::test]
async fn a_pod_waiting_for_a_secret_volume_stalls_the_run() {
    super::a_pod_waiting_for_a_secret_volume_stalls_the_run(
        korb(PRE_MIGRATION_SNAPSHOT),
        "KeyNotFound",
        "MountVolume.SetUp failed for volume \"kafka-ca\" : references non-existent secret key: ca.crt",
        "kafka-credentials",
        "spec.kafkaCluster.saslSecret",
    )
    .await;
    super::a_pod_waiting_for_a_secret_volume_stalls_the_run(
        korb(PRE_MIGRATION_SNAPSHOT),
        "SecretNotFound",
        "MountVolume.SetUp failed for volume \"kafka-ca\" : secret \"kafka-credentials\" not found",
        "kafka-credentials",
        "spec.kafkaCluster.saslSecret",
    )
    .await;
}

// (e'') A pod still being created is looked at again soon, nothing written.
#[tokio::test]
async fn a_starting_pod_is_looked_at_again_soon() {
    super::a_starting_pod_is_looked_at_again_soon(korb(PRE_MIGRATION_SNAPSHOT)).await;
}

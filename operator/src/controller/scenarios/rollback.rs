//! Scenarios of the KafkaOffsetRollback reconcile.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use serde_json::{json, Value};

use super::*;
use crate::build::fixtures::*;
use crate::controller::{RUNNING_POLL, SECRET_POLL};

const KIND: &str = "KafkaOffsetRollback";

/// An Event about the KafkaOffsetRollback.
fn event(type_: &'static str, reason: &'static str) -> Call {
    super::event(KIND, type_, reason)
}

// (a) A new resource: its Secret is checked, the worker ServiceAccount, task ConfigMap and Job
// are applied, and the status says Running.
#[tokio::test]
async fn a_new_resource_checks_secrets_applies_children_and_runs() {
    let cr = korb(PRE_MIGRATION_SNAPSHOT);
    let calls = vec![
        get(
            path("v1", "secrets", "kafka-credentials"),
            secret("kafka-credentials", &["username", "password"]),
        ),
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
        get(
            path("v1", "secrets", "kafka-credentials"),
            secret("kafka-credentials", &["username", "password"]),
        ),
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

// (a') ConfigMap storage also gets the worker Role and RoleBinding, before the Job.
#[tokio::test]
async fn config_map_storage_gets_a_worker_role() {
    let cr = korb(QUICK_SNAPSHOT);
    let calls = vec![
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path(
                "rbac.authorization.k8s.io/v1",
                "roles",
                "quick-snapshot-korb-worker",
            ),
            |body| {
                assert_eq!(
                    body["rules"][0]["resourceNames"],
                    json!(["offset-snapshots"])
                );
            },
        ),
        apply(
            path(
                "rbac.authorization.k8s.io/v1",
                "rolebindings",
                "quick-snapshot-korb-worker",
            ),
            |body| {
                assert_eq!(body["subjects"][0]["name"], "tidemark-worker");
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

// (e) A missing Secret stalls the run: no Job, a clear condition, polled again.
#[tokio::test]
async fn a_missing_secret_stalls_without_a_job() {
    let cr = korb(PRE_MIGRATION_SNAPSHOT);
    let mut calls = vec![get(
        path("v1", "secrets", "kafka-credentials"),
        not_found("secrets", "kafka-credentials"),
    )];
    calls.extend(stalled_on_a_secret(
        &cr,
        "SecretNotFound",
        "Secret 'kafka-credentials' referenced by spec.kafkaCluster.saslSecret not found in namespace kafka-backup",
    ));
    let (result, policy, metrics) = scenario(cr, calls).await;
    let err = result.expect_err("stalled");
    assert_eq!(err.metric_label(), "missing_secret");
    assert_eq!(policy, Some(Action::requeue(SECRET_POLL)));
    assert_eq!(
        metrics.failure_count("KafkaOffsetRollback", "missing_secret"),
        1
    );
}

// (e') A Secret without an entry the worker reads: KeyNotFound; the values never leak.
#[tokio::test]
async fn a_missing_secret_key_is_named_and_values_never_leak() {
    let cr = korb(PRE_MIGRATION_SNAPSHOT);
    let mut calls = vec![get(
        path("v1", "secrets", "kafka-credentials"),
        secret("kafka-credentials", &["username"]),
    )];
    calls.extend(stalled_on_a_secret(
        &cr,
        "KeyNotFound",
        "Secret 'kafka-credentials' referenced by spec.kafkaCluster.saslSecret has no key 'password'",
    ));
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(
        result.expect_err("stalled").metric_label(),
        "missing_secret"
    );
}

// (e'') Stalled again with nothing changed: no write, no Event.
#[tokio::test]
async fn an_unchanged_stall_writes_nothing() {
    let mut cr = korb(PRE_MIGRATION_SNAPSHOT);
    let run = crate::build::RunId::of(&cr).expect("run");
    cr.status = Some(crate::controller::status::stalled(
        &cr,
        Some(run),
        "SecretNotFound",
        "Secret 'kafka-credentials' referenced by spec.kafkaCluster.saslSecret not found in namespace kafka-backup",
        "2024-12-01T12:00:00Z",
    ));
    let calls = vec![get(
        path("v1", "secrets", "kafka-credentials"),
        not_found("secrets", "kafka-credentials"),
    )];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(
        result.expect_err("stalled").metric_label(),
        "missing_secret"
    );
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
                "roles",
                "quick-snapshot-korb-worker",
            ),
            |_| {},
        ),
        apply(
            path(
                "rbac.authorization.k8s.io/v1",
                "rolebindings",
                "quick-snapshot-korb-worker",
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
                "roles",
                "cleanup-old-snapshot-korb-worker",
            ),
            |_| {},
        ),
        apply(
            path(
                "rbac.authorization.k8s.io/v1",
                "rolebindings",
                "cleanup-old-snapshot-korb-worker",
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

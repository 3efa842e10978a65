//! Scenarios of the KafkaRestore reconcile: a `backupRef.name` is resolved through its
//! KafkaBackup (one read) before a run starts, then the shared one-run pipeline with the
//! restore's task and status (progress, offset mapping, groups, safety snapshot, validation).

use kube::runtime::controller::Action;
use serde_json::{json, Value};

use super::*;
use crate::build::fixtures::*;
use crate::controller::restore::{REASON_KAFKA_BACKUP_NOT_FOUND, REASON_NO_COMPLETED_BACKUP};
use crate::controller::{REFERENCE_POLL, RUNNING_POLL};
use crate::crd::KafkaRestore;

const KIND: &str = "KafkaRestore";

/// The newest completed backup of the KafkaBackup `orders-snapshot` in these scenarios.
const ORDERS_BACKUP: &str = "orders-snapshot-g1-r0-3c9a7e10";

/// An Event about the KafkaRestore.
fn event(type_: &'static str, reason: &'static str) -> Call {
    super::event(KIND, type_, reason)
}

/// The read of the KafkaBackup `orders-snapshot`, answered with `reply`.
fn get_kafka_backup(reply: Reply) -> Call {
    get(
        path("tidemark.dev/v1alpha1", "kafkabackups", "orders-snapshot"),
        reply,
    )
}

/// The KafkaBackup `orders-snapshot` whose newest backup `id` ended in `phase`.
fn kafka_backup(id: &str, phase: &str) -> Reply {
    Reply::Json(
        StatusCode::OK,
        serde_json::to_value(orders_backup(id, phase)).expect("kb"),
    )
}

/// `cr` with `status` (JSON) as its status.
fn with_restore_status(cr: KafkaRestore, status: Value) -> KafkaRestore {
    let mut value = serde_json::to_value(&cr).expect("cr");
    value["status"] = status;
    serde_json::from_value(value).expect("a KafkaRestore with a status")
}

/// `cr` with the status of its running run `g1-r0` (Job `<name>-kr-g1-r0`) on backup `backup`.
fn running(cr: KafkaRestore, backup: &str) -> KafkaRestore {
    let name = cr.metadata.name.clone().expect("name");
    let mut cr = with_status(cr, "g1-r0", "Running", &format!("{name}-kr-g1-r0"));
    if let Some(s) = cr.status.as_mut() {
        s.backup_id = Some(backup.into());
        s.restore_id = Some(format!("kr-{RESTORE_UID}"));
    }
    cr
}

/// A worker result of a restore.
fn restore_result(restored: u64, groups_translated: u64, groups_failed: u64) -> Value {
    let restore_id = format!("kr-{RESTORE_UID}");
    json!({
        "phase": "Completed", "operation": "restore",
        "snapshotId": format!("{restore_id}-before-offsets"),
        "message": format!("Restore {restore_id} of backup {ORDERS_BACKUP}: {restored} of 1000 records in 6 partitions"),
        "restore": {
            "restoreId": restore_id, "dryRun": false, "complete": restored == 1000,
            "topics": 2, "partitions": 6, "recordsTotal": 1000, "recordsRestored": restored,
            "bytesTotal": 100000, "bytesRestored": restored * 100,
            "offsetMapping": format!("backups/{ORDERS_BACKUP}/restores/{restore_id}/mapping.json"),
            "groupsTranslated": groups_translated, "groupsFailed": groups_failed
        }
    })
}

// (a) A new restore by KafkaBackup: the KafkaBackup is read, the task names its newest completed
// backup, its PVC and the resource's restore id, the Job is applied and the status says Running
// with the backup it restores.
#[tokio::test]
async fn a_new_restore_resolves_its_kafka_backup_and_runs_one_job() {
    let cr = kr(RESTORE_FULL);
    let calls = vec![
        get_kafka_backup(kafka_backup(ORDERS_BACKUP, "Completed")),
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path("v1", "configmaps", "orders-full-restore-kr-task-g1-r0"),
            |body| {
                assert_eq!(
                    body["metadata"]["ownerReferences"][0]["kind"],
                    "KafkaRestore"
                );
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(task.contains("kind: restore"), "{task}");
                assert!(
                    task.contains(&format!("backupId: {ORDERS_BACKUP}")),
                    "{task}"
                );
                assert!(
                    task.contains(&format!("restoreId: kr-{RESTORE_UID}")),
                    "{task}"
                );
                assert!(task.contains("url: /var/lib/tidemark/orders"), "{task}");
                assert!(task.contains("createTopics: true"), "{task}");
                assert!(task.contains("existingData: refuse"), "{task}");
            },
        ),
        apply(
            path("batch/v1", "jobs", "orders-full-restore-kr-g1-r0"),
            |body| {
                assert_eq!(
                    body["metadata"]["labels"]["app.kubernetes.io/component"],
                    "restore"
                );
                let pod = &body["spec"]["template"]["spec"];
                assert_eq!(pod["automountServiceAccountToken"], false);
                assert_eq!(
                    pod["volumes"][2]["persistentVolumeClaim"]["claimName"],
                    "kafka-backups"
                );
            },
        ),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Running");
            assert_eq!(s["run"], "g1-r0");
            assert_eq!(s["jobName"], "orders-full-restore-kr-g1-r0");
            assert_eq!(s["backupId"], ORDERS_BACKUP);
            assert_eq!(s["kafkaBackup"], "orders-snapshot");
            assert_eq!(s["restoreId"], format!("kr-{RESTORE_UID}").as_str());
            assert_eq!(s["dryRun"], false);
            assert!(
                s.get("progress").is_none(),
                "not before the worker reports: {s}"
            );
            assert_conditions(s, [false, true, false], "JobRunning");
            assert_eq!(
                condition(s, "Reconciling")["message"],
                format!("Job orders-full-restore-kr-g1-r0 is running a restore of backup {ORDERS_BACKUP} of KafkaBackup orders-snapshot (run g1-r0)").as_str()
            );
        }),
        event("Normal", "JobCreated"),
    ];
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
    assert_eq!(metrics.job_count(KIND, "created"), 1);
}

// (a') A backup named by id in its storage: no KafkaBackup is read; the Kafka and storage Secrets
// are checked and wired by reference.
#[tokio::test]
async fn a_restore_from_a_backup_id_checks_its_secrets_and_converts_the_window() {
    let cr = kr(RESTORE_PITR_NEW_TOPIC);
    let mut calls = Vec::new();
    calls.extend([
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path(
                "v1",
                "configmaps",
                "transactions-before-incident-kr-task-g1-r0",
            ),
            |body| {
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(task.contains("backupId: payments-nightly-2b1e4c7d-29000000"));
                assert!(task.contains("timeWindowStart: 1736899200000"), "{task}");
                assert!(task.contains("timeWindowEnd: 1736953200000"), "{task}");
                assert!(
                    task.contains("transactions: transactions-recovered"),
                    "{task}"
                );
                assert!(task.contains("url: s3://kafka-backups/payments"), "{task}");
                assert!(!task.contains("czNudGluZWw"), "{task}");
            },
        ),
        apply(
            path("batch/v1", "jobs", "transactions-before-incident-kr-g1-r0"),
            |body| {
                let container = &body["spec"]["template"]["spec"]["containers"][0];
                assert_eq!(
                    container["envFrom"][0]["secretRef"]["name"],
                    "s3-credentials"
                );
                assert!(!body.to_string().contains("czNudGluZWw"), "{body}");
            },
        ),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Running");
            assert_eq!(s["backupId"], "payments-nightly-2b1e4c7d-29000000");
            assert!(s.get("kafkaBackup").is_none(), "{s}");
        }),
        event("Normal", "JobCreated"),
    ]);
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
}

// (b) The Job succeeded: Completed with the worker's progress, offset mapping, groups and safety
// snapshot. A running run is not resolved again (no KafkaBackup read).
#[tokio::test]
async fn a_successful_restore_completes_with_progress_mapping_and_snapshot() {
    let cr = running(kr(RESTORE_THREE_PHASE), ORDERS_BACKUP);
    let job = "orders-three-phase-kr-g1-r0";
    let mut calls = ended_job(
        job,
        ("Complete", "CompletionsReached"),
        &[("2024-12-01T12:20:00Z", Some(restore_result(1000, 2, 0)))],
    );
    calls.extend([
        status(&cr, |s| {
            assert_eq!(s["phase"], "Completed");
            assert_eq!(s["backupId"], ORDERS_BACKUP);
            assert_eq!(
                s["progress"],
                json!({"recordsRestored": 1000, "recordsTotal": 1000, "bytesRestored": 100000,
                       "bytesTotal": 100000, "percent": "100%"})
            );
            assert_eq!((&s["topics"], &s["partitions"]), (&json!(2), &json!(6)));
            assert_eq!(
                s["offsetMapping"],
                format!("backups/{ORDERS_BACKUP}/restores/kr-{RESTORE_UID}/mapping.json").as_str()
            );
            assert_eq!(
                (&s["groupsTranslated"], &s["groupsFailed"]),
                (&json!(2), &json!(0))
            );
            assert_eq!(
                s["snapshotId"],
                format!("kr-{RESTORE_UID}-before-offsets").as_str()
            );
            assert_eq!(s["startTime"], "2024-12-01T12:00:00Z");
            assert!(s["completionTime"].is_string());
            assert_conditions(s, [true, false, false], "RestoreCompleted");
        }),
        event("Normal", "JobSucceeded"),
    ]);
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
    assert_eq!(metrics.job_count(KIND, "succeeded"), 1);
}

// (b') Two shards (an Indexed Job): the pods' results are summed, the restore id is the common
// one, and shard 0's group counts and safety snapshot are reported (it alone translates).
#[tokio::test]
async fn a_sharded_restore_sums_its_pods_and_reports_shard_0s_groups() {
    let yaml = RESTORE_THREE_PHASE.replace(
        "  createTopics: true\n",
        "  createTopics: true\n  shards: 2\n",
    );
    let cr = running(kr(&yaml), ORDERS_BACKUP);
    let job = "orders-three-phase-kr-g1-r0";
    let shard = |i: u32, groups: u64| {
        let mut r = restore_result(1000, groups, 0);
        let id = format!("kr-{RESTORE_UID}-s{i}-of-2");
        r["restore"]["offsetMapping"] = json!(format!(
            "backups/{ORDERS_BACKUP}/restores/{id}/mapping.json"
        ));
        r["restore"]["restoreId"] = json!(id);
        r["restore"]["recordsTotal"] = json!(500);
        r["restore"]["recordsRestored"] = json!(500);
        r["restore"]["bytesTotal"] = json!(50_000);
        r["restore"]["bytesRestored"] = json!(50_000);
        r["restore"]["partitions"] = json!(3);
        r["restore"]["complete"] = json!(true);
        if i > 0 {
            r.as_object_mut().map(|o| o.remove("snapshotId"));
        }
        r
    };
    let Reply::Json(code, mut indexed) = job_reply(job, Some(("Complete", "CompletionsReached")))
    else {
        panic!("a Job body")
    };
    indexed["spec"]["completionMode"] = json!("Indexed");
    indexed["spec"]["completions"] = json!(2);
    let calls = vec![
        get(path("batch/v1", "jobs", job), Reply::Json(code, indexed)),
        indexed_pods_call(
            job,
            &[
                (Some(1), "2024-12-01T12:15:00Z", Some(shard(1, 0))),
                (Some(0), "2024-12-01T12:20:00Z", Some(shard(0, 2))),
            ],
        ),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Completed", "{s}");
            assert_eq!(s["restoreId"], format!("kr-{RESTORE_UID}").as_str());
            assert_eq!(
                s["progress"],
                json!({"recordsRestored": 1000, "recordsTotal": 1000, "bytesRestored": 100000,
                       "bytesTotal": 100000, "percent": "100%"})
            );
            assert_eq!(s["partitions"], 6);
            assert_eq!(
                (&s["groupsTranslated"], &s["groupsFailed"]),
                (&json!(2), &json!(0))
            );
            assert_eq!(
                s["snapshotId"],
                format!("kr-{RESTORE_UID}-before-offsets").as_str()
            );
            assert_conditions(s, [true, false, false], "RestoreCompleted");
        }),
        event("Normal", "JobSucceeded"),
    ];
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
    assert_eq!(metrics.job_count(KIND, "succeeded"), 1);
}

// (c) Some groups could not be committed (exit 10 fails the Job at once): Failed and Stalled with
// GroupsFailed; the data is in and the safety snapshot is reported.
#[tokio::test]
async fn failed_groups_fail_the_restore_and_keep_the_snapshot() {
    let cr = running(kr(RESTORE_THREE_PHASE), ORDERS_BACKUP);
    let job = "orders-three-phase-kr-g1-r0";
    let mut result = restore_result(1000, 1, 1);
    result["message"] = json!("Restore done; 1 of 2 groups translated (header-based), 1 failed");
    let mut calls = ended_job(
        job,
        ("Failed", "PodFailurePolicy"),
        &[("2024-12-01T12:20:00Z", Some(result))],
    );
    calls.extend([
        status(&cr, |s| {
            assert_eq!(s["phase"], "Failed");
            assert_eq!(s["groupsFailed"], 1);
            assert_eq!(s["progress"]["percent"], "100%");
            assert!(s["snapshotId"].is_string(), "{s}");
            assert_conditions(s, [false, false, true], "GroupsFailed");
            assert_eq!(
                condition(s, "Ready")["message"],
                "Job orders-three-phase-kr-g1-r0 failed (PodFailurePolicy: PodFailurePolicy happened) after the worker reported: Restore done; 1 of 2 groups translated (header-based), 1 failed"
            );
        }),
        event("Warning", "JobFailed"),
    ]);
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
    assert_eq!(metrics.job_count(KIND, "failed"), 1);
}

// (c') A worker stopped before the end (deadline) that still reported Completed: Failed,
// RestoreIncomplete, with the progress so far.
#[tokio::test]
async fn an_incomplete_restore_fails_with_its_progress() {
    let cr = running(kr(RESTORE_FULL), ORDERS_BACKUP);
    let mut calls = ended_job(
        "orders-full-restore-kr-g1-r0",
        ("Complete", "CompletionsReached"),
        &[("2024-12-01T12:20:00Z", Some(restore_result(420, 0, 0)))],
    );
    calls.extend([
        status(&cr, |s| {
            assert_eq!(s["phase"], "Failed");
            assert_eq!(s["progress"]["percent"], "42%");
            assert_eq!(s["progress"]["recordsRestored"], 420);
            assert_conditions(s, [false, false, true], "RestoreIncomplete");
            let message = condition(s, "Ready")["message"].as_str().expect("message");
            assert!(
                message.ends_with("; the worker did not report the restore complete"),
                "{message}"
            );
        }),
        event("Warning", "JobFailed"),
    ]);
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
}

// (d) A KafkaBackup that does not exist: Stalled, no Job, polled again.
#[tokio::test]
async fn a_missing_kafka_backup_stalls_the_restore() {
    let cr = kr(RESTORE_FULL);
    let calls = vec![
        get_kafka_backup(not_found("kafkabackups", "orders-snapshot")),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Pending");
            assert_eq!(s["run"], "g1-r0");
            assert!(s.get("jobName").is_none(), "{s}");
            assert_eq!(s["kafkaBackup"], "orders-snapshot");
            assert_conditions(s, [false, false, true], REASON_KAFKA_BACKUP_NOT_FOUND);
            assert_eq!(
                condition(s, "Stalled")["message"],
                "KafkaBackup 'orders-snapshot' named by spec.backupRef.name not found in namespace kafka-backup; create it, or give spec.backupRef.backupId and spec.backupRef.storage instead of name"
            );
        }),
        event("Warning", REASON_KAFKA_BACKUP_NOT_FOUND),
    ];
    let (result, policy, metrics) = scenario(cr, calls).await;
    assert_eq!(
        result.expect_err("stalled").metric_label(),
        "missing_reference"
    );
    assert_eq!(policy, Some(Action::requeue(REFERENCE_POLL)));
    assert_eq!(metrics.failure_count(KIND, "missing_reference"), 1);
    assert_eq!(metrics.job_count(KIND, "created"), 0);
}

// (d') A KafkaBackup whose newest backup failed: Stalled with NoCompletedBackup, naming it and
// why; the same status again writes nothing (and publishes no second Event).
#[tokio::test]
async fn a_kafka_backup_without_a_completed_backup_stalls_the_restore() {
    let cr = kr(RESTORE_THREE_PHASE);
    let failed = "orders-snapshot-g1-r0-3c9a7e10";
    let calls = vec![
        get_kafka_backup(kafka_backup(failed, "Failed")),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Pending");
            assert_conditions(s, [false, false, true], REASON_NO_COMPLETED_BACKUP);
            let message = condition(s, "Stalled")["message"]
                .as_str()
                .expect("message");
            assert!(
                message.starts_with("KafkaBackup 'orders-snapshot' named by spec.backupRef.name has no completed backup to restore: its newest backup orders-snapshot-g1-r0-3c9a7e10 ended Failed (StorageError: the bucket refused a write)"),
                "{message}"
            );
            assert!(message.ends_with("or set spec.backupRef.backupId to one of its backups"));
        }),
        event("Warning", REASON_NO_COMPLETED_BACKUP),
    ];
    let (result, policy, _) = scenario(cr.clone(), calls).await;
    assert_eq!(
        result.expect_err("stalled").metric_label(),
        "missing_reference"
    );
    assert_eq!(policy, Some(Action::requeue(REFERENCE_POLL)));

    // Polled again, still without a completed backup: one read, nothing written.
    let stalled = crate::controller::status::stalled(
        &cr,
        crate::build::RunId::of(&cr).ok(),
        REASON_NO_COMPLETED_BACKUP,
        &crate::controller::restore::resolve(&cr, Some(&orders_backup(failed, "Failed")))
            .map(|_| ())
            .expect_err("unresolved")
            .message,
        "2024-12-01T12:00:00Z",
    );
    let mut again = cr.clone();
    again.status = Some(stalled);
    let calls = vec![get_kafka_backup(kafka_backup(failed, "Failed"))];
    let (result, _, _) = scenario(again.clone(), calls).await;
    assert_eq!(
        result.expect_err("still stalled").metric_label(),
        "missing_reference"
    );

    // Once the KafkaBackup has a completed backup, the restore starts.
    let calls = vec![
        get_kafka_backup(kafka_backup(ORDERS_BACKUP, "Completed")),
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path("v1", "configmaps", "orders-three-phase-kr-task-g1-r0"),
            |_| {},
        ),
        apply(
            path("batch/v1", "jobs", "orders-three-phase-kr-g1-r0"),
            |_| {},
        ),
        status(&again, |s| {
            assert_eq!(s["phase"], "Running");
            assert_eq!(s["backupId"], ORDERS_BACKUP);
            assert_conditions(s, [false, true, false], "JobRunning");
        }),
        event("Normal", "JobCreated"),
    ];
    let (result, _, _) = scenario(again, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
}

// (e) A dry run: the task asks for validate-restore of the chosen backup (even while the
// KafkaBackup's newest backup failed); it completes with the validation and the totals.
#[tokio::test]
async fn a_dry_run_validates_and_reports_without_writing() {
    let cr = kr(RESTORE_DRY_RUN);
    let chosen = "orders-snapshot-g1-r0-6f1c2a9e";
    let calls = vec![
        get_kafka_backup(kafka_backup("orders-snapshot-g2-r0-3c9a7e10", "Failed")),
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path("v1", "configmaps", "orders-partition-2-check-kr-task-g1-r0"),
            move |body| {
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(task.contains("dryRun: true"), "{task}");
                assert!(task.contains(&format!("backupId: {chosen}")), "{task}");
                assert!(task.contains("consumerGroupStrategy: manual"), "{task}");
            },
        ),
        apply(
            path("batch/v1", "jobs", "orders-partition-2-check-kr-g1-r0"),
            |_| {},
        ),
        status(&cr, move |s| {
            assert_eq!(s["phase"], "Running");
            assert_eq!(s["dryRun"], true);
            assert_eq!(s["backupId"], chosen);
            assert_eq!(
                condition(s, "Reconciling")["message"],
                format!("Job orders-partition-2-check-kr-g1-r0 is running a dry run (validate-restore) of backup {chosen} of KafkaBackup orders-snapshot (run g1-r0)").as_str()
            );
        }),
        event("Normal", "JobCreated"),
    ];
    let (result, _, _) = scenario(cr.clone(), calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));

    let cr = running(cr, chosen);
    let validation = "VALID: 1 topic, 1 partition, 5000 records, 512000 bytes";
    let result = json!({
        "phase": "Completed", "operation": "validate-restore", "message": validation,
        "restore": {"restoreId": format!("kr-{RESTORE_UID}"), "dryRun": true, "complete": false,
                    "topics": 1, "partitions": 1, "recordsTotal": 5000, "recordsRestored": 0,
                    "bytesTotal": 512000, "bytesRestored": 0, "groupsTranslated": 0,
                    "groupsFailed": 0, "validation": validation}
    });
    let mut calls = ended_job(
        "orders-partition-2-check-kr-g1-r0",
        ("Complete", "CompletionsReached"),
        &[("2024-12-01T12:01:00Z", Some(result))],
    );
    calls.extend([
        status(&cr, move |s| {
            assert_eq!(s["phase"], "Completed");
            assert_eq!(s["dryRun"], true);
            assert_eq!(s["validation"], validation);
            assert_eq!(
                s["progress"],
                json!({"recordsRestored": 0, "recordsTotal": 5000, "bytesRestored": 0,
                       "bytesTotal": 512000})
            );
            assert!(s.get("offsetMapping").is_none(), "{s}");
            assert!(s.get("groupsTranslated").is_none(), "{s}");
            assert!(s.get("snapshotId").is_none(), "{s}");
            assert_conditions(s, [true, false, false], "RestoreValidated");
        }),
        event("Normal", "JobSucceeded"),
    ]);
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
}

// (e') A dry run the worker finds invalid (exit 2 fails the Job at once): Failed and Stalled with
// InvalidInput and the worker's message.
#[tokio::test]
async fn an_invalid_dry_run_fails_with_the_workers_reason() {
    let cr = running(kr(RESTORE_DRY_RUN), "orders-snapshot-g1-r0-6f1c2a9e");
    let message = "INVALID: no segment of orders partition 2 overlaps the time window";
    let result = json!({
        "phase": "Failed", "operation": "validate-restore", "message": message,
        "error": {"kind": "invalid_input", "exitCode": 2}
    });
    let mut calls = ended_job(
        "orders-partition-2-check-kr-g1-r0",
        ("Failed", "PodFailurePolicy"),
        &[("2024-12-01T12:01:00Z", Some(result))],
    );
    calls.extend([
        status(&cr, move |s| {
            assert_eq!(s["phase"], "Failed");
            assert_eq!(s["dryRun"], true);
            assert!(s.get("progress").is_none(), "{s}");
            assert_conditions(s, [false, false, true], "InvalidInput");
            assert_eq!(condition(s, "Ready")["message"], message);
        }),
        event("Warning", "JobFailed"),
    ]);
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
    assert_eq!(metrics.job_count(KIND, "failed"), 1);
}

/// `RESTORE_FULL` after its run `g1-r0` on [`ORDERS_BACKUP`] ended in `phase` (a real restore
/// unless `dry_run`), at `generation` with the run annotation `run`.
fn after_run(phase: &str, dry_run: bool, generation: i64, run: Option<&str>) -> KafkaRestore {
    let yaml = if dry_run {
        RESTORE_FULL.replace(
            "  createTopics: true\n",
            "  createTopics: true\n  dryRun: true\n",
        )
    } else {
        RESTORE_FULL.to_string()
    };
    let condition = |type_: &str, status: &str| {
        json!({"type": type_, "status": status, "reason": "RestoreCompleted",
               "message": "restored", "lastTransitionTime": "2024-12-01T12:20:00Z",
               "observedGeneration": 1})
    };
    let mut cr = with_restore_status(
        kr(&yaml),
        json!({
            "phase": phase, "run": "g1-r0", "observedGeneration": 1,
            "jobName": "orders-full-restore-kr-g1-r0", "backupId": ORDERS_BACKUP,
            "kafkaBackup": "orders-snapshot", "restoreId": format!("kr-{RESTORE_UID}"),
            "dryRun": dry_run,
            "progress": {"recordsRestored": 1000, "recordsTotal": 1000, "bytesRestored": 1,
                         "bytesTotal": 1, "percent": "100%"},
            "conditions": [condition("Ready", "True"), condition("Reconciling", "False"),
                           condition("Stalled", "False")]
        }),
    );
    cr.metadata.generation = Some(generation);
    if let Some(run) = run {
        cr.metadata.annotations = Some([("tidemark.dev/run".to_string(), run.to_string())].into());
    }
    cr
}

/// The calls of a new run `run` of `RESTORE_FULL` after its run `g1-r0`: the KafkaBackup (whose
/// newest backup is now a later one) is read, the old Job and task go, and the new task names
/// the backup the first run used, with the same restore id.
fn rerun_on_the_same_backup(cr: &KafkaRestore, run: &'static str) -> Vec<Call> {
    let gone = || not_found("x", "y");
    let mut calls = vec![get_kafka_backup(kafka_backup(
        "orders-snapshot-g5-r0-3c9a7e10",
        "Completed",
    ))];
    calls.extend(superseded_run(cr, "g1-r0", gone()));
    calls.extend([
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path(
                "v1",
                "configmaps",
                &format!("orders-full-restore-kr-task-{run}"),
            ),
            |body| {
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(
                    task.contains(&format!("backupId: {ORDERS_BACKUP}")),
                    "{task}"
                );
                assert!(
                    task.contains(&format!("restoreId: kr-{RESTORE_UID}")),
                    "{task}"
                );
            },
        ),
        apply(
            path("batch/v1", "jobs", &format!("orders-full-restore-kr-{run}")),
            |_| {},
        ),
        status(cr, move |s| {
            assert_eq!(s["phase"], "Running");
            assert_eq!(s["run"], run);
            assert_eq!(s["backupId"], ORDERS_BACKUP);
            assert!(s.get("progress").is_none(), "the old run's results go: {s}");
        }),
        event("Normal", "JobCreated"),
    ]);
    calls
}

// (f) A restore runs once: a spec edit after it completed records the new generation (so kstatus
// sees it observed) and starts nothing; an Event says how to run it again.
#[tokio::test]
async fn a_spec_edit_after_a_completed_restore_is_recorded_not_run() {
    let cr = after_run("Completed", false, 2, None);
    let calls = vec![
        status(&cr, |s| {
            assert_eq!(s["phase"], "Completed");
            assert_eq!(s["run"], "g1-r0");
            assert_eq!(s["observedGeneration"], 2);
            assert_eq!(s["progress"]["percent"], "100%");
            for c in s["conditions"].as_array().expect("conditions") {
                assert_eq!(c["observedGeneration"], 2, "{c}");
                assert_eq!(c["lastTransitionTime"], "2024-12-01T12:20:00Z", "{c}");
            }
            assert_condition(s, "Ready", "True", "RestoreCompleted");
        }),
        event("Normal", "SpecChangeNotRun").check(|body, _| {
            let note = body["note"].as_str().expect("note");
            assert!(
                note.starts_with(
                    "The restore completed in run g1-r0; generation 2 is recorded, not run"
                ),
                "{note}"
            );
            assert!(
                note.ends_with(
                    "kubectl annotate kafkarestore orders-full-restore tidemark.dev/run=1 --overwrite"
                ),
                "{note}"
            );
        }),
    ];
    let (result, _, metrics) = scenario(cr.clone(), calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
    assert_eq!(metrics.job_count(KIND, "created"), 0);

    // Once recorded, nothing more happens.
    let mut recorded = cr;
    if let Some(s) = recorded.status.as_mut() {
        s.common.observed_generation = Some(2);
        for c in &mut s.common.conditions {
            c.observed_generation = Some(2);
        }
    }
    let (result, _, _) = scenario(recorded, vec![]).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
}

// (f2) Bumping the run annotation runs a completed restore again on purpose: on the backup it
// restored (not the KafkaBackup's newer one) and with the same restore id, so the worker reports
// the data already complete.
#[tokio::test]
async fn a_bumped_run_annotation_runs_a_completed_restore_again_on_the_same_backup() {
    let cr = after_run("Completed", false, 1, Some("1"));
    let calls = rerun_on_the_same_backup(&cr, "g1-r1");
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
}

// (f3) A spec edit after a failed restore (e.g. more memory) is a new run that resumes the same
// restore: same backup, same restore id.
#[tokio::test]
async fn a_spec_edit_after_a_failed_restore_resumes_it() {
    let cr = after_run("Failed", false, 2, None);
    let calls = rerun_on_the_same_backup(&cr, "g2-r0");
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
}

// (f4) A completed dry run does not count as the restore: removing dryRun runs it.
#[tokio::test]
async fn removing_dry_run_after_a_validation_runs_the_restore() {
    let mut cr = after_run("Completed", true, 2, None);
    cr.spec.dry_run = false;
    let calls = rerun_on_the_same_backup(&cr, "g2-r0");
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
}

// (h) What the worker refuses once the backup is resolved (a reserved target topic name) stalls
// before any Job, naming the spec field, and waits for a change.
#[tokio::test]
async fn a_task_the_worker_refuses_stalls_after_resolution() {
    let yaml = RESTORE_FULL.replace(
        "  createTopics: true\n",
        "  createTopics: true\n  topicMapping:\n    orders: \"..\"\n",
    );
    let cr = kr(&yaml);
    let calls = vec![
        get_kafka_backup(kafka_backup(ORDERS_BACKUP, "Completed")),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Pending");
            assert_eq!(s["backupId"], ORDERS_BACKUP);
            assert_condition(s, "Stalled", "True", "InvalidField");
            let message = condition(s, "Stalled")["message"]
                .as_str()
                .expect("message");
            assert!(message.starts_with("spec.topicMapping.orders"), "{message}");
        }),
        event("Warning", "InvalidField"),
    ];
    let (result, policy, _) = scenario(cr, calls).await;
    assert_eq!(result.expect_err("invalid").metric_label(), "invalid_spec");
    assert_eq!(policy, Some(Action::await_change()));
}

// The Job of a running restore was deleted: Failed JobDeleted, never recreated.
#[tokio::test]
async fn a_restore_job_deleted_mid_run_fails_and_is_not_recreated() {
    job_deleted_mid_run(kr(RESTORE_FULL)).await;
}

// A Job that failed without a result: Failed, JobFailed, pointing at the logs.
#[tokio::test]
async fn a_failed_restore_without_a_result_says_so() {
    failed_job_without_a_result(kr(RESTORE_THREE_PHASE)).await;
}

// A finished restore is not run again (and its KafkaBackup is not read).
#[tokio::test]
async fn a_finished_restore_makes_no_calls() {
    finished_runs_make_no_calls(kr(RESTORE_FULL)).await;
}

// A restore Job still running: one read, no writes, look again later.
#[tokio::test]
async fn a_running_restore_job_is_only_read() {
    super::a_running_job_is_only_read(kr(RESTORE_DRY_RUN)).await;
}

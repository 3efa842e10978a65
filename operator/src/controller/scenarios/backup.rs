//! Scenarios of the KafkaBackup reconcile: without a schedule the shared one-run pipeline with
//! an Indexed Job and summed shard results; with a schedule a CronJob and a status that follows
//! its Jobs; retention cleanup Jobs, once per successful backup.

use kube::runtime::controller::Action;
use serde_json::{json, Value};

use super::*;
use crate::build::backup::cleanup_job_name;
use crate::build::cronjob::cron_job_name;
use crate::build::fixtures::*;
use crate::build::{RunId, WorkerKind};
use crate::controller::backup::{FINISH_FINALIZER, SCHEDULE_POLL};
use crate::controller::RUNNING_POLL;
use crate::crd::KafkaBackup;

const KIND: &str = "KafkaBackup";

/// An Event about the KafkaBackup.
fn event(type_: &'static str, reason: &'static str) -> Call {
    super::event(KIND, type_, reason)
}

const RUN: RunId = RunId {
    generation: 1,
    run: 0,
};

/// `yaml` without its retention block.
fn without_retention(yaml: &str) -> String {
    let start = yaml.find("  retention:\n").expect("a retention block");
    let rest = &yaml[start + "  retention:\n".len()..];
    let end = rest
        .find(|c: char| c != ' ')
        .map(|_| {
            rest.lines()
                .take_while(|l| l.starts_with("    "))
                .map(|l| l.len() + 1)
                .sum::<usize>()
        })
        .unwrap_or(0);
    format!("{}{}", &yaml[..start], &rest[end..])
}

fn list(kind: &str, items: Vec<Value>) -> Reply {
    Reply::Json(
        StatusCode::OK,
        json!({"apiVersion": "v1", "kind": kind, "metadata": {}, "items": items}),
    )
}

/// The label selector of `name`'s backup Jobs and task ConfigMaps.
fn assert_backup_selector(name: &'static str) -> impl Fn(&Value, &str) + Send {
    move |_, query| {
        assert!(
            query.contains("tidemark.dev%2Fowner-kind%3DKafkaBackup"),
            "{query}"
        );
        assert!(
            query.contains(&format!("tidemark.dev%2Fowner-name%3D{name}")),
            "{query}"
        );
        assert!(
            query.contains("app.kubernetes.io%2Fcomponent%3Dbackup"),
            "{query}"
        );
    }
}

/// The listing of `name`'s backup Jobs, answered with `jobs`.
fn list_jobs(name: &'static str, jobs: Vec<Value>) -> Call {
    get(
        format!("/apis/batch/v1/namespaces/{NS}/jobs"),
        list("JobList", jobs),
    )
    .check(assert_backup_selector(name))
}

/// The listing of `name`'s task ConfigMaps, one per run in `runs`.
fn list_tasks(name: &'static str, runs: &[&str]) -> Call {
    let items = runs
        .iter()
        .map(|run| {
            json!({"metadata": {"name": format!("{name}-kb-task-{run}"), "namespace": NS,
                                "labels": {"tidemark.dev/run": run}}})
        })
        .collect();
    get(
        format!("/api/v1/namespaces/{NS}/configmaps"),
        list("ConfigMapList", items),
    )
    .check(assert_backup_selector(name))
}

/// The listing of `name`'s backup pods, answered with `pods`.
fn list_pods(name: &'static str, pods: Vec<Value>) -> Call {
    get(
        format!("/api/v1/namespaces/{NS}/pods"),
        list("PodList", pods),
    )
    .check(assert_backup_selector(name))
}

/// `cr` with `status` (JSON) as its status.
fn with_backup_status(cr: KafkaBackup, status: Value) -> KafkaBackup {
    let mut value = serde_json::to_value(&cr).expect("cr");
    value["status"] = status;
    serde_json::from_value(value).expect("a KafkaBackup with a status")
}

/// The container of a Job (or CronJob job template) body.
fn pod_spec(job_spec: &Value) -> &Value {
    &job_spec["template"]["spec"]
}

// (a) A new one-shot backup: the task ConfigMap names no backup id, the Job's pods take it from
// their Job's name, and the status says Running.
#[tokio::test]
async fn a_new_one_shot_backup_runs_one_job() {
    let cr = kb(BACKUP_ONE_SHOT_PVC);
    let job = cr.job_name(RUN).expect("name");
    let job_path = path("batch/v1", "jobs", &job);
    let expected_job = job.clone();
    let calls = vec![
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path("v1", "configmaps", "orders-snapshot-kb-task-g1-r0"),
            |body| {
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(task.contains("kind: backup"), "{task}");
                assert!(
                    task.contains("chain: kafka-backup-orders-snapshot"),
                    "{task}"
                );
                assert!(task.contains("shardCount: 1"), "{task}");
                assert!(!task.contains("backupId"), "{task}");
            },
        ),
        apply(job_path, |body| {
            assert_eq!(
                body["metadata"]["labels"]["app.kubernetes.io/component"],
                "backup"
            );
            assert!(body["spec"].get("completionMode").is_none(), "{body}");
            let pod = pod_spec(&body["spec"]);
            assert_eq!(pod["automountServiceAccountToken"], false);
            let env = &pod["containers"][0]["env"];
            assert_eq!(
                env,
                &json!([{"name": "TIDEMARK_BACKUP_ID", "valueFrom": {"fieldRef": {
                    "fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}}},
                    {"name": "TIDEMARK_METRICS_ADDR", "value": "0.0.0.0:9090"},
                    {"name": "TIDEMARK_LOG_FORMAT", "value": "json"}])
            );
            let port = &pod["containers"][0]["ports"][0];
            assert_eq!(
                port,
                &json!({"name": "metrics", "containerPort": 9090, "protocol": "TCP"})
            );
        }),
        status(&cr, move |s| {
            assert_eq!(s["phase"], "Running");
            assert_eq!(s["jobName"], expected_job.as_str());
            assert!(s.get("cronJobName").is_none(), "{s}");
            assert_conditions(s, [false, true, false], "JobRunning");
            assert_eq!(
                condition(s, "Reconciling")["message"],
                format!("Job {expected_job} is running a one-shot backup (run g1-r0)").as_str()
            );
        }),
        event("Normal", "JobCreated"),
    ];
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
    assert_eq!(metrics.job_count(KIND, "created"), 1);
}

// (a') parallelism 3 without a schedule: an Indexed Job of 3 pods.
#[tokio::test]
async fn a_sharded_backup_runs_an_indexed_job() {
    let cr = kb(&without_schedule(BACKUP_HOURLY_INCREMENTAL_GCS));
    let job = cr.job_name(RUN).expect("name");
    let calls = vec![
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path("v1", "configmaps", "events-hourly-kb-task-g1-r0"),
            |body| {
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(task.contains("shardCount: 3"), "{task}");
                assert!(task.contains("mode: incremental"), "{task}");
                assert!(!task.contains("shardIndex"), "{task}");
            },
        ),
        apply(path("batch/v1", "jobs", &job), |body| {
            let spec = &body["spec"];
            assert_eq!(spec["completionMode"], "Indexed");
            assert_eq!(
                (&spec["completions"], &spec["parallelism"]),
                (&json!(3), &json!(3))
            );
        }),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Running");
            assert!(condition(s, "Reconciling")["message"]
                .as_str()
                .is_some_and(|m| m.contains("an incremental backup of 3 shards")));
        }),
        event("Normal", "JobCreated"),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
}

// (b) A finished Indexed Job: each shard's newest result, summed; the backup id is the Job's
// name; Completed.
#[tokio::test]
async fn a_finished_indexed_job_sums_its_shards() {
    let cr = kb(&without_retention(&without_schedule(
        BACKUP_HOURLY_INCREMENTAL_GCS,
    )));
    let job = cr.job_name(RUN).expect("name");
    let cr = with_status(cr, "g1-r0", "Running", &job);
    let done = backup_job(
        &cr,
        &job,
        "g1-r0",
        "2024-12-01T12:00:00Z",
        Some(("Complete", "CompletionsReached", "2024-12-01T12:30:00Z")),
    );
    let id = job.clone();
    let calls = vec![
        get(
            path("batch/v1", "jobs", &job),
            Reply::Json(StatusCode::OK, done),
        ),
        indexed_pods_call(
            &job,
            &[
                // Shard 1 failed once and was retried; the retry's result counts.
                (
                    Some(1),
                    "2024-12-01T12:10:00Z",
                    Some(backup_result(1, &job, 7, false)),
                ),
                (
                    Some(0),
                    "2024-12-01T12:20:00Z",
                    Some(backup_result(0, &job, 1000, true)),
                ),
                (
                    Some(1),
                    "2024-12-01T12:25:00Z",
                    Some(backup_result(1, &job, 2000, true)),
                ),
                (
                    Some(2),
                    "2024-12-01T12:29:00Z",
                    Some(backup_result(2, &job, 3000, true)),
                ),
            ],
        ),
        status(&cr, move |s| {
            assert_eq!(s["phase"], "Completed");
            assert_eq!(s["lastBackupId"], id.as_str());
            assert_eq!(s["records"], 6000);
            assert_eq!(s["bytes"], 600_000);
            assert_eq!(s["storedBytes"], 180_000);
            assert_eq!(s["segments"], 6);
            assert_eq!(s["partitions"], 12);
            assert_eq!(s["topics"], 2);
            assert_eq!(s["groupsCaptured"], 3);
            assert_eq!(
                s["shards"],
                json!({"total": 3, "completed": 3, "failed": 0})
            );
            assert_eq!(s["lastSuccessfulTime"], s["completionTime"]);
            assert_eq!(s["lastRun"]["phase"], "Completed");
            assert_eq!(s["lastRun"]["jobName"], id.as_str());
            assert!(s.get("cleanup").is_none(), "no retention: {s}");
            assert_conditions(s, [true, false, false], "BackupCompleted");
            assert_eq!(
                condition(s, "Ready")["message"],
                format!("backup {id} complete: 6000 records (600000 bytes, 180000 stored) in 6 segments from 12 partitions, 3 shards").as_str()
            );
        }),
        event("Normal", "JobSucceeded"),
    ];
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
    assert_eq!(metrics.job_count(KIND, "succeeded"), 1);
}

// (c) One shard failed: the backup is Failed and Stalled with that shard's error, the shard
// counts say which, and no cleanup runs even with retention.
#[tokio::test]
async fn one_failed_shard_fails_the_backup() {
    let cr = kb(&without_schedule(BACKUP_HOURLY_INCREMENTAL_GCS));
    let job = cr.job_name(RUN).expect("name");
    let cr = with_status(cr, "g1-r0", "Running", &job);
    let failed = backup_job(
        &cr,
        &job,
        "g1-r0",
        "2024-12-01T12:00:00Z",
        Some(("Failed", "BackoffLimitExceeded", "2024-12-01T12:40:00Z")),
    );
    let calls = vec![
        get(
            path("batch/v1", "jobs", &job),
            Reply::Json(StatusCode::OK, failed),
        ),
        indexed_pods_call(
            &job,
            &[
                (
                    Some(0),
                    "2024-12-01T12:20:00Z",
                    Some(backup_result(0, &job, 1000, true)),
                ),
                (
                    Some(1),
                    "2024-12-01T12:39:00Z",
                    Some(backup_result(1, &job, 5, false)),
                ),
                (
                    Some(2),
                    "2024-12-01T12:29:00Z",
                    Some(backup_result(2, &job, 3000, true)),
                ),
            ],
        ),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Failed");
            assert_eq!(
                s["shards"],
                json!({"total": 3, "completed": 2, "failed": 1})
            );
            assert_eq!(s["records"], 4005);
            assert_eq!(s["lastRun"]["phase"], "Failed");
            assert!(s.get("lastSuccessfulTime").is_none(), "{s}");
            assert!(s.get("cleanup").is_none(), "{s}");
            assert_conditions(s, [false, false, true], "StorageError");
            assert_eq!(
                condition(s, "Ready")["message"],
                "1 of 3 shards did not complete; shard 1: shard 1/3: the bucket refused a write"
            );
        }),
        event("Warning", "JobFailed"),
    ];
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
    assert_eq!(metrics.job_count(KIND, "failed"), 1);
}

// (d) Retention: the successful backup is followed by one cleanup Job (its task in its own
// ConfigMap), recorded in the status; the finished run is then left alone.
#[tokio::test]
async fn retention_creates_one_cleanup_job_per_backup() {
    let cr = kb(&without_schedule(BACKUP_DAILY_S3));
    let job = cr.job_name(RUN).expect("name");
    let cleanup = cleanup_job_name("payments-nightly", &job);
    let cr = with_status(cr, "g1-r0", "Running", &job);
    let done = backup_job(
        &cr,
        &job,
        "g1-r0",
        "2024-12-01T02:00:00Z",
        Some(("Complete", "CompletionsReached", "2024-12-01T02:30:00Z")),
    );
    let mut result = backup_result(0, &job, 42, true);
    result["message"] = json!("backup complete: 42 records");
    let (id, cleanup_name) = (job.clone(), cleanup.clone());
    let calls = vec![
        get(
            path("batch/v1", "jobs", &job),
            Reply::Json(StatusCode::OK, done),
        ),
        pods_call(&job, &[("2024-12-01T02:29:00Z", Some(result))]),
        apply(
            path("v1", "configmaps", "payments-nightly-kb-cleanup-task"),
            |body| {
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(task.contains("kind: backupCleanup"), "{task}");
                assert!(
                    task.contains("chain: kafka-backup-payments-nightly"),
                    "{task}"
                );
                assert!(task.contains("keepLast: 7"), "{task}");
                assert!(!task.contains("czNudGluZWw"), "{task}");
            },
        ),
        apply(path("batch/v1", "jobs", &cleanup), move |body| {
            assert_eq!(
                body["metadata"]["labels"]["app.kubernetes.io/component"],
                "backup-cleanup"
            );
            assert_eq!(
                body["metadata"]["labels"]["tidemark.dev/backup-id"],
                id.as_str()
            );
            assert_eq!(body["metadata"]["ownerReferences"][0]["kind"], KIND);
            assert_eq!(body["spec"]["ttlSecondsAfterFinished"], 86400);
            let pod = pod_spec(&body["spec"]);
            assert_eq!(
                pod["volumes"][0]["configMap"]["name"],
                "payments-nightly-kb-cleanup-task"
            );
            assert!(!body.to_string().contains("KAFKA_PASSWORD"), "{body}");
        }),
        event("Normal", "CleanupJobCreated"),
        status(&cr, move |s| {
            assert_eq!(s["phase"], "Completed");
            assert_eq!(s["records"], 42);
            assert_eq!(
                s["cleanup"],
                json!({"backupId": job.as_str(), "jobName": cleanup_name.as_str()})
            );
            assert_conditions(s, [true, false, false], "BackupCompleted");
        }),
        event("Normal", "JobSucceeded"),
    ];
    let (result, _, _) = scenario(cr.clone(), calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());

    // Once recorded, the run is finished: no second cleanup Job.
    let backup_id = cr.job_name(RUN).expect("name");
    let mut done = cr;
    if let Some(s) = done.status.as_mut() {
        s.common.phase = Some(crate::crd::status::Phase::Completed);
        s.last_backup_id = Some(backup_id.clone());
        s.last_run = Some(crate::crd::backup::LastRun {
            job_name: backup_id.clone(),
            phase: crate::crd::status::Phase::Completed,
            reason: "BackupCompleted".into(),
            message: "backup complete: 42 records".into(),
            completion_time: None,
        });
        s.cleanup = Some(crate::crd::backup::CleanupStatus {
            backup_id,
            job_name: cleanup.clone(),
            phase: Some(crate::crd::status::Phase::Completed),
            ..Default::default()
        });
    }
    // (Its Job is only read, for a result finalizer left behind: it has none.)
    let job = done.job_name(RUN).expect("name");
    let calls = vec![get(
        path("batch/v1", "jobs", &job),
        job_reply(&job, Some(("Complete", "CompletionsReached"))),
    )];
    let (result, _, _) = scenario(done, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
}

// (e) With a schedule: the CronJob is applied (Forbid, suspend false, the Indexed job
// template) and no Job is created; the status says Scheduled.
#[tokio::test]
async fn a_scheduled_backup_applies_a_cron_job_and_no_job() {
    let cr = kb(BACKUP_DAILY_S3);
    let cron = cron_job_name(&cr).expect("name");
    let expected_cron = cron.clone();
    let mut calls = Vec::new();
    calls.extend([
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path("v1", "configmaps", "payments-nightly-kb-task-g1-r0"),
            |body| {
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(task.contains("compressionLevel: 6"), "{task}");
            },
        ),
        apply(path("batch/v1", "cronjobs", &cron), |body| {
            assert_eq!(body["kind"], "CronJob");
            let spec = &body["spec"];
            assert_eq!(spec["schedule"], "0 2 * * *");
            assert_eq!(spec["suspend"], false);
            assert_eq!(spec["concurrencyPolicy"], "Forbid");
            assert_eq!(spec["startingDeadlineSeconds"], 3600);
            let template = &spec["jobTemplate"];
            assert_eq!(template["metadata"]["labels"]["tidemark.dev/run"], "g1-r0");
            let pod = pod_spec(&template["spec"]);
            assert_eq!(
                pod["volumes"][0]["configMap"]["name"],
                "payments-nightly-kb-task-g1-r0"
            );
            assert!(body.to_string().contains("TIDEMARK_BACKUP_ID"), "{body}");
            assert!(!body.to_string().contains("czNudGluZWw"), "{body}");
        }),
        list_jobs("payments-nightly", vec![]),
        list_tasks("payments-nightly", &["g1-r0"]),
        list_pods("payments-nightly", vec![]),
        status(&cr, move |s| {
            assert_eq!(s["phase"], "Scheduled");
            assert_eq!(s["run"], "g1-r0");
            assert_eq!(s["cronJobName"], expected_cron.as_str());
            assert!(s.get("jobName").is_none(), "{s}");
            assert_conditions(s, [true, false, false], "Scheduled");
        }),
        event("Normal", "Scheduled"),
    ]);
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(SCHEDULE_POLL));
    assert_eq!(metrics.job_count(KIND, "created"), 0);
}

/// The status of a scheduled daily S3 backup in run `run`, its newest backup `last` done.
fn scheduled(cr: KafkaBackup, run: &str, last: &str) -> KafkaBackup {
    let cron = cron_job_name(&cr).expect("name");
    with_backup_status(
        cr,
        json!({
            "phase": "Scheduled", "run": run, "observedGeneration": 1, "jobName": last,
            "cronJobName": cron, "lastBackupId": last, "records": 10,
            "lastSuccessfulTime": "2024-11-30T02:30:00Z",
            "lastRun": {"jobName": last, "phase": "Completed", "reason": "BackupCompleted",
                        "message": "backup complete: 10 records",
                        "completionTime": "2024-11-30T02:30:00Z"},
            "cleanup": {"backupId": last, "jobName": "payments-nightly-cleanup-0",
                        "phase": "Completed"},
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "BackupCompleted",
                 "message": "done", "lastTransitionTime": "2024-11-30T02:30:00Z"},
                {"type": "Reconciling", "status": "False", "reason": "BackupCompleted",
                 "message": "done", "lastTransitionTime": "2024-11-30T02:30:00Z"},
                {"type": "Stalled", "status": "False", "reason": "BackupCompleted",
                 "message": "done", "lastTransitionTime": "2024-11-30T02:30:00Z"}
            ]
        }),
    )
}

// (f) suspend toggled: the CronJob is patched with suspend true; the finished Job's results are
// not read again; the old run's task ConfigMap goes (no Job runs it).
#[tokio::test]
async fn toggling_suspend_patches_the_cron_job() {
    let mut cr = kb(&BACKUP_DAILY_S3.replace(
        "  schedule: \"0 2 * * *\"\n",
        "  schedule: \"0 2 * * *\"\n  suspend: true\n",
    ));
    cr.metadata.generation = Some(2);
    let cron = cron_job_name(&cr).expect("name");
    let last = format!("{cron}-28885800");
    let cr = scheduled(cr, "g1-r0", &last);
    let done = backup_job(
        &cr,
        &last,
        "g1-r0",
        "2024-11-30T02:00:00Z",
        Some(("Complete", "CompletionsReached", "2024-11-30T02:30:00Z")),
    );
    let mut calls = Vec::new();
    calls.extend([
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path("v1", "configmaps", "payments-nightly-kb-task-g2-r0"),
            |_| {},
        ),
        apply(path("batch/v1", "cronjobs", &cron), |body| {
            assert_eq!(body["spec"]["suspend"], true);
            assert_eq!(
                body["spec"]["jobTemplate"]["metadata"]["labels"]["tidemark.dev/run"],
                "g2-r0"
            );
        }),
        list_jobs("payments-nightly", vec![done]),
        list_tasks("payments-nightly", &["g1-r0", "g2-r0"]),
        Call::new(
            Method::DELETE,
            path("v1", "configmaps", "payments-nightly-kb-task-g1-r0"),
            Reply::Json(
                StatusCode::OK,
                json!({"kind": "Status", "status": "Success"}),
            ),
        ),
        list_pods("payments-nightly", vec![]),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Suspended");
            assert_eq!(s["run"], "g2-r0");
            assert_eq!(s["observedGeneration"], 2);
            assert_eq!(s["records"], 10, "the last backup is kept");
            assert_eq!(s["lastRun"]["phase"], "Completed");
            assert_conditions(s, [true, false, false], "Suspended");
        }),
        event("Normal", "Suspended"),
    ]);
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(SCHEDULE_POLL));
}

// (g) A scheduled Job ended: its shards' results are read once, summed into the status, and its
// cleanup Job is created; a Job of the old run still running keeps its task ConfigMap.
#[tokio::test]
async fn a_finished_scheduled_job_is_recorded_and_cleaned_up_after() {
    let mut cr = kb(BACKUP_HOURLY_INCREMENTAL_GCS);
    cr.metadata.generation = Some(2);
    let cron = cron_job_name(&cr).expect("name");
    let old = format!("{cron}-28886340");
    let newest = format!("{cron}-28886400");
    let cr = scheduled(cr, "g1-r0", &old);
    let still_running = backup_job(
        &cr,
        &format!("{cron}-28886280"),
        "g1-r0",
        "2024-12-01T10:00:00Z",
        None,
    );
    let old_done = backup_job(
        &cr,
        &old,
        "g1-r0",
        "2024-12-01T11:00:00Z",
        Some(("Complete", "CompletionsReached", "2024-12-01T11:20:00Z")),
    );
    let new_done = backup_job(
        &cr,
        &newest,
        "g2-r0",
        "2024-12-01T12:00:00Z",
        Some(("Complete", "CompletionsReached", "2024-12-01T12:20:00Z")),
    );
    let cleanup = cleanup_job_name("events-hourly", &newest);
    let (id, cleanup_name) = (newest.clone(), cleanup.clone());
    let calls = vec![
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path("v1", "configmaps", "events-hourly-kb-task-g2-r0"),
            |_| {},
        ),
        apply(path("batch/v1", "cronjobs", &cron), |_| {}),
        list_jobs("events-hourly", vec![still_running, old_done, new_done]),
        list_tasks("events-hourly", &["g1-r0", "g2-r0"]),
        list_pods(
            "events-hourly",
            indexed_pods(
                &newest,
                &[
                    (
                        Some(0),
                        "2024-12-01T12:10:00Z",
                        Some(backup_result(0, &newest, 10, true)),
                    ),
                    (
                        Some(1),
                        "2024-12-01T12:15:00Z",
                        Some(backup_result(1, &newest, 20, true)),
                    ),
                    (
                        Some(2),
                        "2024-12-01T12:19:00Z",
                        Some(backup_result(2, &newest, 30, true)),
                    ),
                ],
            ),
        ),
        apply(
            path("v1", "configmaps", "events-hourly-kb-cleanup-task"),
            |body| {
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(task.contains("maxAge: 14d"), "{task}");
            },
        ),
        apply(path("batch/v1", "jobs", &cleanup), |_| {}),
        event("Normal", "CleanupJobCreated"),
        status(&cr, move |s| {
            assert_eq!(s["phase"], "Scheduled");
            assert_eq!(s["run"], "g2-r0");
            assert_eq!(s["jobName"], id.as_str());
            assert_eq!(s["lastBackupId"], id.as_str());
            assert_eq!(s["records"], 60);
            assert_eq!(
                s["shards"],
                json!({"total": 3, "completed": 3, "failed": 0})
            );
            assert_eq!(s["lastSuccessfulTime"], "2024-12-01T12:20:00Z");
            assert_eq!(s["startTime"], "2024-12-01T12:00:00Z");
            assert_eq!(s["completionTime"], "2024-12-01T12:20:00Z");
            assert_eq!(
                s["cleanup"],
                json!({"backupId": id.as_str(), "jobName": cleanup_name.as_str()})
            );
            assert_conditions(s, [true, false, false], "BackupCompleted");
        }),
        event("Normal", "JobSucceeded"),
    ];
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(SCHEDULE_POLL));
    assert_eq!(metrics.job_count(KIND, "succeeded"), 1);
}

/// A scheduled backup `cr` (run g1-r0) whose CronJob has just started a Job after one that
/// completed and was recorded: `cr` with that status, the started Job's name, and the calls of
/// the reconcile up to the listing of its task ConfigMaps.
fn started_scheduled_job(cr: KafkaBackup) -> (KafkaBackup, String, Vec<Call>) {
    let cron = cron_job_name(&cr).expect("name");
    let last = format!("{cron}-28885800");
    let started = format!("{cron}-28887240");
    let cr = scheduled(cr, "g1-r0", &last);
    let done = backup_job(
        &cr,
        &last,
        "g1-r0",
        "2024-11-30T02:00:00Z",
        Some(("Complete", "CompletionsReached", "2024-11-30T02:30:00Z")),
    );
    let running = backup_job(&cr, &started, "g1-r0", "2024-12-01T02:00:02Z", None);
    let calls = vec![
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path("v1", "configmaps", "payments-nightly-kb-task-g1-r0"),
            |_| {},
        ),
        apply(path("batch/v1", "cronjobs", &cron), |_| {}),
        list_jobs("payments-nightly", vec![done, running]),
        list_tasks("payments-nightly", &["g1-r0"]),
    ];
    (cr, started, calls)
}

// (g2) The CronJob started a backup: the status says Running (Reconciling) and a
// `BackupStarted` Event marks the transition; the recorded backup is not read again.
#[tokio::test]
async fn a_started_scheduled_job_is_running_with_an_event() {
    let cr = kb(BACKUP_DAILY_S3);
    let (cr, started, mut calls) = started_scheduled_job(cr);
    let job_name = started.clone();
    calls.extend([
        list_pods("payments-nightly", vec![]),
        status(&cr, move |s| {
            assert_eq!(s["phase"], "Running");
            assert_eq!(s["jobName"], job_name.as_str());
            assert_eq!(s["startTime"], "2024-12-01T02:00:02Z");
            assert_eq!(
                s["lastRun"]["phase"], "Completed",
                "the last backup is kept"
            );
            assert_conditions(s, [false, true, false], "JobRunning");
        }),
        event("Normal", "BackupStarted"),
    ]);
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
    assert_eq!(metrics.job_count(KIND, "created"), 1);
}

// (g2') The CronJob started a backup whose pod cannot mount the TLS Secret: the kubelet says so
// only in a FailedMount Event. The status is Running but Stalled with KeyNotFound naming the
// Secret, its key and spec.kafkaCluster.tlsSecret, with a Warning Event; the Job is kept.
#[tokio::test]
async fn a_scheduled_backup_whose_pod_waits_for_a_secret_volume_stalls() {
    let cr = kb(BACKUP_DAILY_S3);
    let (cr, started, mut calls) = started_scheduled_job(cr);
    let pod_name = format!("{started}-0-x7k2p");
    let pod = json!({
        "metadata": {"name": pod_name, "namespace": NS,
                     "labels": {"batch.kubernetes.io/job-name": started}},
        "spec": {"containers": [{"name": "tidemark"}], "volumes": [
            {"name": "kafka-tls", "secret": {"secretName": "kafka-tls"}}]},
        "status": {"phase": "Pending", "containerStatuses": [{
            "name": "tidemark", "image": "tidemark", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}
    });
    let message =
        "MountVolume.SetUp failed for volume \"kafka-tls\" : references non-existent secret key: ca.crt";
    let failed_mount = json!({
        "metadata": {"name": format!("{pod_name}.1")},
        "involvedObject": {"kind": "Pod", "name": pod_name},
        "reason": "FailedMount", "type": "Warning", "message": message,
        "lastTimestamp": k8s_openapi::jiff::Timestamp::now().to_string()
    });
    let job_name = started.clone();
    calls.extend([
        list_pods("payments-nightly", vec![pod]),
        get(
            format!("/api/v1/namespaces/{NS}/events"),
            list("EventList", vec![failed_mount]),
        ),
        status(&cr, move |s| {
            assert_eq!(s["phase"], "Running");
            assert_eq!(s["jobName"], job_name.as_str());
            assert_eq!(
                s["lastRun"]["phase"], "Completed",
                "the last backup is kept"
            );
            assert_conditions(s, [false, false, true], "KeyNotFound");
            let text = condition(s, "Stalled")["message"].as_str().expect("text");
            assert!(
                text.contains("Secret kafka-tls has no key ca.crt"),
                "{text}"
            );
            assert!(text.contains("spec.kafkaCluster.tlsSecret"), "{text}");
            assert!(text.contains("is kept"), "{text}");
        }),
        event("Warning", "KeyNotFound"),
    ]);
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
}

// (g2'') A scheduled backup with TLS verification off: each Job the CronJob starts is announced
// with the InsecureTls Warning, as a run's Job is.
#[tokio::test]
async fn a_started_scheduled_job_without_tls_verification_warns() {
    let yaml = BACKUP_DAILY_S3.replace(
        "    securityProtocol: SASL_SSL\n",
        "    securityProtocol: SASL_SSL\n    tlsInsecureSkipVerify: true\n",
    );
    assert_ne!(yaml, BACKUP_DAILY_S3);
    let cr = kb(&yaml);
    let (cr, _, mut calls) = started_scheduled_job(cr);
    calls.extend([
        list_pods("payments-nightly", vec![]),
        status(&cr, |s| assert_eq!(s["phase"], "Running")),
        event("Normal", "BackupStarted"),
        event("Warning", "InsecureTls").check(|body, _| {
            let note = body["note"].as_str().expect("note");
            assert!(note.contains("tlsInsecureSkipVerify"), "{body}");
        }),
    ]);
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
}

// (g3) A scheduled backup failed: its result is read once, the status stays Scheduled but
// Stalled (with the worker's reason) until a later backup succeeds, a Warning `JobFailed` Event
// says so, and no cleanup runs after a failed backup.
#[tokio::test]
async fn a_failed_scheduled_job_stalls_with_a_warning_event() {
    let cr = kb(BACKUP_DAILY_S3);
    let cron = cron_job_name(&cr).expect("name");
    let last = format!("{cron}-28885800");
    let failed_name = format!("{cron}-28887240");
    let cr = scheduled(cr, "g1-r0", &last);
    let done = backup_job(
        &cr,
        &last,
        "g1-r0",
        "2024-11-30T02:00:00Z",
        Some(("Complete", "CompletionsReached", "2024-11-30T02:30:00Z")),
    );
    let failed = backup_job(
        &cr,
        &failed_name,
        "g1-r0",
        "2024-12-01T02:00:02Z",
        Some(("Failed", "BackoffLimitExceeded", "2024-12-01T02:09:00Z")),
    );
    let job_name = failed_name.clone();
    let mut calls = Vec::new();
    calls.extend([
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path("v1", "configmaps", "payments-nightly-kb-task-g1-r0"),
            |_| {},
        ),
        apply(path("batch/v1", "cronjobs", &cron), |_| {}),
        list_jobs("payments-nightly", vec![done, failed]),
        list_tasks("payments-nightly", &["g1-r0"]),
        list_pods(
            "payments-nightly",
            indexed_pods(
                &failed_name,
                &[(
                    None,
                    "2024-12-01T02:08:00Z",
                    Some(backup_result(0, &failed_name, 7, false)),
                )],
            ),
        ),
        status(&cr, move |s| {
            assert_eq!(s["phase"], "Scheduled");
            assert_eq!(s["jobName"], job_name.as_str());
            assert_eq!(s["lastRun"]["phase"], "Failed");
            assert_eq!(s["lastSuccessfulTime"], "2024-11-30T02:30:00Z");
            assert_conditions(s, [false, false, true], "StorageError");
        }),
        event("Warning", "JobFailed"),
    ]);
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(SCHEDULE_POLL));
    assert_eq!(metrics.job_count(KIND, "failed"), 1);
}

// (i) A cron expression that is no schedule stalls before anything is applied.
#[tokio::test]
async fn an_invalid_schedule_stalls_and_awaits_a_change() {
    let cr = kb(&BACKUP_DAILY_S3.replace("\"0 2 * * *\"", "\"0 2 31 2 *\""));
    let calls = vec![
        status(&cr, |s| {
            assert_eq!(s["phase"], "Pending");
            assert_condition(s, "Stalled", "True", "InvalidSchedule");
            let message = condition(s, "Stalled")["message"]
                .as_str()
                .expect("message");
            assert!(
                message.starts_with(
                    "spec.schedule '0 2 31 2 *' is not a valid cron schedule: it never fires"
                ),
                "{message}"
            );
        }),
        event("Warning", "InvalidSchedule"),
    ];
    let (result, policy, _) = scenario(cr, calls).await;
    assert_eq!(result.expect_err("invalid").metric_label(), "invalid_spec");
    assert_eq!(policy, Some(Action::await_change()));
}

// (j) The schedule removed: the CronJob goes, and the backup runs once as a Job.
#[tokio::test]
async fn removing_the_schedule_deletes_the_cron_job_and_runs_once() {
    let mut cr = kb(&without_schedule(BACKUP_DAILY_S3));
    cr.metadata.generation = Some(2);
    let cron = cron_job_name(&cr).expect("name");
    let last = format!("{cron}-28885800");
    let cr = scheduled(cr, "g1-r0", &last);
    let job = cr
        .job_name(RunId {
            generation: 2,
            run: 0,
        })
        .expect("name");
    let gone = || {
        Reply::Json(
            StatusCode::OK,
            json!({"kind": "Status", "status": "Success"}),
        )
    };
    let mut calls = vec![Call::new(
        Method::DELETE,
        path("batch/v1", "cronjobs", &cron),
        gone(),
    )];
    // The CronJob's last Job is the CronJob's, not a run of the resource: not stopped here.
    let cron_owned = json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": last, "namespace": NS, "uid": "j1",
                     "labels": {"tidemark.dev/run": "g1-r0"},
                     "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                                          "name": cron, "uid": "c1", "controller": true}]}});
    calls.push(list_run_jobs(&cr, vec![cron_owned]));
    calls.push(list_run_pods(&cr, vec![]));
    calls.push(
        Call::new(
            Method::DELETE,
            path("v1", "configmaps", "payments-nightly-kb-task-g1-r0"),
            gone(),
        )
        .check(|body, _| assert_eq!(body["propagationPolicy"], "Background")),
    );
    calls.extend([
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path("v1", "configmaps", "payments-nightly-kb-task-g2-r0"),
            |_| {},
        ),
        apply(path("batch/v1", "jobs", &job), |_| {}),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Running");
            assert_eq!(s["run"], "g2-r0");
            assert!(s.get("cronJobName").is_none(), "{s}");
            assert_eq!(s["records"], 10, "the last backup is kept");
        }),
        event("Normal", "JobCreated"),
    ]);
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
}

// (k) The Job of a running one-shot backup was deleted: Failed JobDeleted, never recreated.
#[tokio::test]
async fn a_backup_job_deleted_mid_run_fails_and_is_not_recreated() {
    job_deleted_mid_run(kb(BACKUP_ONE_SHOT_PVC)).await;
}

// A one-shot Job that failed without a result: Failed, JobFailed, pointing at the logs.
#[tokio::test]
async fn a_failed_backup_without_a_result_says_so() {
    failed_job_without_a_result(kb(BACKUP_ONE_SHOT_PVC)).await;
}

// A finished one-shot backup is not run again.
#[tokio::test]
async fn a_finished_backup_makes_no_calls() {
    finished_runs_make_no_calls(kb(BACKUP_ONE_SHOT_PVC)).await;
}

// A one-shot backup Job still running: one read, no writes, look again later.
#[tokio::test]
async fn a_running_backup_job_is_only_read() {
    super::a_running_job_is_only_read(kb(BACKUP_ONE_SHOT_PVC)).await;
}

// (l) The Job of a running continuous backup is gone (deleted by hand, collected): it is
// created again under the same name, so its pods resume the same backup from its checkpoint;
// the run stays Running, never Completed or Failed.
#[tokio::test]
async fn a_continuous_backup_whose_job_is_gone_runs_again_under_the_same_name() {
    let cr = kb(BACKUP_CONTINUOUS_AZURE);
    let job = cr.job_name(RUN).expect("name");
    let mut cr = with_status(cr, "g1-r0", "Running", &job);
    cr.metadata.finalizers = Some(vec![FINISH_FINALIZER.to_string()]);
    let calls = vec![
        get(path("batch/v1", "jobs", &job), not_found("jobs", &job)),
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path("v1", "configmaps", "audit-stream-kb-task-g1-r0"),
            |body| {
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(task.contains("mode: continuous"), "{task}");
            },
        ),
        apply(path("batch/v1", "jobs", &job), |body| {
            // The whole task ConfigMap is mounted: a `finish` key added later becomes a file.
            let task = &body["spec"]["template"]["spec"]["volumes"][0];
            assert_eq!(task["name"], "task", "{task}");
            assert!(task["configMap"].get("items").is_none(), "{task}");
            let rules = &body["spec"]["podFailurePolicy"]["rules"];
            assert_eq!(
                rules[1],
                json!({"action": "Ignore", "onExitCodes": {"containerName": "tidemark",
                        "operator": "In", "values": [75]}}),
                "{rules}"
            );
        }),
        event("Warning", "JobRecreated"),
    ];
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
    assert_eq!(metrics.job_count(KIND, "deleted"), 0);
}

// (m) A running continuous backup whose worker was interrupted (SIGTERM, exit 75) and
// replaced: its checkpoint time and lag reach the status; the run stays Running.
#[tokio::test]
async fn a_continuous_backups_last_checkpoint_and_lag_reach_the_status() {
    let cr = kb(BACKUP_CONTINUOUS_AZURE);
    let job = cr.job_name(RUN).expect("name");
    let cr = with_status(cr, "g1-r0", "Running", &job);
    let mut interrupted = backup_result(0, &job, 500, false);
    interrupted["error"] = json!({"kind": "backup_interrupted", "exitCode": 75});
    interrupted["backup"]["checkpointTime"] = json!("2024-12-01T12:30:00Z");
    interrupted["backup"]["lag"] = json!(42);
    let mut cr = cr;
    cr.metadata.resource_version = Some("41".into());
    let calls = vec![
        // A running continuous backup holds its resource: deleting it asks it to finish first.
        Call::new(
            Method::PATCH,
            "/apis/tidemark.dev/v1alpha1/namespaces/kafka-backup/kafkabackups/audit-stream",
            Reply::Json(StatusCode::OK, serde_json::to_value(&cr).expect("cr")),
        )
        .check(|body, _| {
            assert_eq!(
                body["metadata"]["finalizers"],
                json!([FINISH_FINALIZER]),
                "{body}"
            );
            assert_eq!(body["metadata"]["resourceVersion"], "41", "{body}");
        }),
        get(path("batch/v1", "jobs", &job), job_reply(&job, None)),
        pods_call(&job, &[("2024-12-01T12:30:01Z", Some(interrupted))]),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Running");
            assert_eq!(s["lastCheckpointTime"], "2024-12-01T12:30:00Z");
            assert_eq!(s["lag"], 42);
        }),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
}

// (m') A running continuous backup whose pod cannot start for want of its storage Secret (the
// kubelet's CreateContainerConfigError): Stalled with SecretNotFound naming it and
// spec.storage.azure.credentialsSecret, a Warning Event, the Job kept; once the Secret exists
// and the pod runs, plain Running again with a PodStarting Event.
#[tokio::test]
async fn a_continuous_backup_whose_pod_waits_for_a_secret_stalls_until_it_exists() {
    let cr = kb(BACKUP_CONTINUOUS_AZURE);
    let job = cr.job_name(RUN).expect("name");
    let mut cr = with_status(cr, "g1-r0", "Running", &job);
    cr.metadata.resource_version = Some("41".into());
    cr.metadata.finalizers = Some(vec![FINISH_FINALIZER.to_string()]);
    let waiting = json!({"waiting": {"reason": "CreateContainerConfigError",
                                     "message": "secret \"azure-storage\" not found"}});
    let pod = |state: Value| {
        get(
            format!("/api/v1/namespaces/{NS}/pods"),
            list(
                "PodList",
                vec![json!({
                    "metadata": {"name": format!("{job}-0-x7k2p"), "namespace": NS,
                                 "labels": {"batch.kubernetes.io/job-name": job}},
                    "status": {"phase": if state.get("running").is_some() { "Running" } else { "Pending" },
                               "containerStatuses": [{
                        "name": "tidemark", "image": "tidemark", "imageID": "", "ready": false,
                        "restartCount": 0, "state": state}]}
                })],
            ),
        )
    };
    let calls = vec![
        get(path("batch/v1", "jobs", &job), job_reply(&job, None)),
        pod(waiting.clone()),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Running");
            assert_conditions(s, [false, false, true], "SecretNotFound");
            let text = condition(s, "Stalled")["message"].as_str().expect("text");
            assert!(
                text.contains("secret \"azure-storage\" not found"),
                "{text}"
            );
            assert!(
                text.contains("spec.storage.azure.credentialsSecret"),
                "{text}"
            );
        }),
        event("Warning", "SecretNotFound"),
    ];
    let (result, _, _) = scenario(cr.clone(), calls).await;
    assert_eq!(
        result.expect("reconciled"),
        Action::requeue(super::super::SECRET_POLL)
    );

    // As written: the Secret created, the pod runs; Running again, the stall gone.
    let problem = crate::controller::status::SecretProblem {
        pod: format!("{job}-0-x7k2p"),
        reason: "SecretNotFound",
        secret: "azure-storage".into(),
        kubelet_message: "secret \"azure-storage\" not found".into(),
    };
    let mut stalled = cr.clone();
    if let Some(s) = stalled.status.as_mut() {
        s.common.conditions = crate::controller::status::secret_conditions(
            &cr,
            &job,
            &problem,
            Some("spec.storage.azure.credentialsSecret"),
            "2024-12-01T12:01:00Z",
        );
    }
    let calls = vec![
        get(path("batch/v1", "jobs", &job), job_reply(&job, None)),
        pod(json!({"running": {"startedAt": "2024-12-01T12:02:00Z"}})),
        status(&stalled, |s| {
            assert_eq!(s["phase"], "Running");
            assert_conditions(s, [false, true, false], "JobRunning");
        }),
        event("Normal", "PodStarting"),
    ];
    let (result, _, _) = scenario(stalled, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
}

/// `cr` (the daily sample without its schedule) after its backup `job` completed, its cleanup
/// Job `cleanup` created and not yet seen to end.
fn after_backup_with_cleanup(job: &str, cleanup: &str) -> KafkaBackup {
    let cr = kb(&without_schedule(BACKUP_DAILY_S3));
    let mut cr = with_status(cr, "g1-r0", "Completed", job);
    if let Some(s) = cr.status.as_mut() {
        s.last_backup_id = Some(job.to_string());
        s.cleanup = Some(crate::crd::backup::CleanupStatus {
            backup_id: job.to_string(),
            job_name: cleanup.to_string(),
            ..Default::default()
        });
    }
    cr
}

// (n) The cleanup Job ended: what it deleted (and the damaged backups it left) is read back
// from its pod into status.cleanup, with an Event naming them; then nothing more is read.
#[tokio::test]
async fn a_cleanup_jobs_result_reaches_the_status_and_an_event() {
    let cr = kb(&without_schedule(BACKUP_DAILY_S3));
    let job = cr.job_name(RUN).expect("name");
    let cleanup = cleanup_job_name("payments-nightly", &job);
    let cr = after_backup_with_cleanup(&job, &cleanup);
    let result = json!({
        "phase": "Completed", "operation": "backup-cleanup",
        "message": "Retention for chain kafka-backup-payments-nightly: deleted 2 backups, kept 7 backups",
        "backup": {"backupId": "", "complete": false, "topics": 0, "partitions": 0, "records": 0,
                   "bytes": 0, "storedBytes": 0, "segments": 0, "groupsCaptured": 0,
                   "deleted": ["old-1", "stale-2"], "deletedTotal": 2, "damaged": ["bad-3"]}
    });
    let calls = vec![
        get(
            path("batch/v1", "jobs", &cleanup),
            job_reply(&cleanup, Some(("Complete", "CompletionsReached"))),
        ),
        pods_call(&cleanup, &[("2024-12-01T02:40:00Z", Some(result))]),
        event("Warning", "DamagedBackups").check(|body, _| {
            let note = body["note"].as_str().expect("note");
            assert!(note.contains("deleted 2 backups: old-1, stale-2"), "{note}");
            assert!(note.contains("bad-3"), "{note}");
        }),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Completed");
            let c = &s["cleanup"];
            assert_eq!(c["phase"], "Completed");
            assert_eq!(c["deleted"], json!(["old-1", "stale-2"]));
            assert_eq!(c["deletedCount"], 2);
            assert_eq!(c["damaged"], json!(["bad-3"]));
        }),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
}

// (o) A cleanup Job still running is only read; one that failed is a Warning.
#[tokio::test]
async fn a_failed_cleanup_job_is_a_warning() {
    let cr = kb(&without_schedule(BACKUP_DAILY_S3));
    let job = cr.job_name(RUN).expect("name");
    let cleanup = cleanup_job_name("payments-nightly", &job);
    let cr = after_backup_with_cleanup(&job, &cleanup);
    let calls = vec![get(
        path("batch/v1", "jobs", &cleanup),
        job_reply(&cleanup, None),
    )];
    let (result, _, _) = scenario(cr.clone(), calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());

    let calls = vec![
        get(
            path("batch/v1", "jobs", &cleanup),
            job_reply(&cleanup, Some(("Failed", "BackoffLimitExceeded"))),
        ),
        pods_call(&cleanup, &[("2024-12-01T02:40:00Z", None)]),
        event("Warning", "CleanupFailed"),
        status(&cr, |s| {
            assert_eq!(s["cleanup"]["phase"], "Failed");
            assert!(s["cleanup"].get("deleted").is_none(), "{s}");
        }),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
}

// (p) A finished backup with offsets that nothing explains: counted in the status, and a
// Warning Event says so.
#[tokio::test]
async fn unexplained_gaps_reach_the_status_with_a_warning() {
    let cr = kb(BACKUP_ONE_SHOT_PVC);
    let job = cr.job_name(RUN).expect("name");
    let cr = with_status(cr, "g1-r0", "Running", &job);
    let mut result = backup_result(0, &job, 42, true);
    result["backup"]["gapOffsets"] = json!(9);
    result["backup"]["unexplainedGapOffsets"] = json!(7);
    let calls = vec![
        get(
            path("batch/v1", "jobs", &job),
            job_reply(&job, Some(("Complete", "CompletionsReached"))),
        ),
        pods_call(&job, &[("2024-12-01T02:29:00Z", Some(result))]),
        event("Warning", "UnexplainedGaps").check(|body, _| {
            let note = body["note"].as_str().expect("note");
            assert!(note.contains("7 offsets"), "{note}");
        }),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Completed");
            assert_eq!(s["gapOffsets"], 9);
            assert_eq!(s["unexplainedGapOffsets"], 7);
        }),
        event("Normal", "JobSucceeded"),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
}

/// A pod of backup Job `job` of run `run` of `cr` as the API server returns it: created at
/// `created`, holding the result finalizer, its worker terminated at `finished` with `result`
/// (running when `None`).
fn held_pod(
    cr: &KafkaBackup,
    job: &str,
    run: &str,
    created: &str,
    finished: &str,
    result: Option<Value>,
) -> Value {
    let (phase, state) = match result {
        Some(r) => (
            "Succeeded",
            json!({"terminated": {"exitCode": 0, "reason": "Completed",
                                  "finishedAt": finished, "message": r.to_string()}}),
        ),
        None => ("Running", json!({"running": {"startedAt": created}})),
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("{job}-p0"), "namespace": NS, "resourceVersion": "11",
            "creationTimestamp": created,
            "finalizers": ["tidemark.dev/result"],
            "labels": {"batch.kubernetes.io/job-name": job,
                       "tidemark.dev/owner-kind": KIND,
                       "tidemark.dev/owner-name": cr.metadata.name,
                       "app.kubernetes.io/component": "backup", "tidemark.dev/run": run}
        },
        "status": {"phase": phase, "containerStatuses": [{
            "name": "tidemark", "image": "tidemark", "imageID": "", "ready": false,
            "restartCount": 0, "state": state
        }]}
    })
}

/// The release of `pod`'s result finalizer.
fn release_pod(pod: &Value) -> Call {
    let name = pod["metadata"]["name"]
        .as_str()
        .expect("pod name")
        .to_string();
    super::runs::release(pod, path("v1", "pods", &name), json!([]))
}

// Hole: a scheduled backup succeeded and its Job was deleted by the CronJob's history limit
// (background propagation) before the operator saw it. Its pod, held by the result finalizer,
// still has the result: the backup is recorded as succeeded (not failed, not lost), its cleanup
// Job created, and then the finalizers of the recorded Job's pod and of an older one are
// released; the pod of the Job still running keeps its finalizer.
#[tokio::test]
async fn a_scheduled_backup_whose_job_was_collected_is_recorded_from_its_pod() {
    let cr = kb(BACKUP_DAILY_S3);
    let cron = cron_job_name(&cr).expect("name");
    let last = format!("{cron}-28885800");
    let gone = format!("{cron}-28887240");
    let next = format!("{cron}-28888680");
    let cr = scheduled(cr, "g1-r0", &last);
    let done = backup_job(
        &cr,
        &last,
        "g1-r0",
        "2024-11-30T02:00:00Z",
        Some(("Complete", "CompletionsReached", "2024-11-30T02:30:00Z")),
    );
    let running = backup_job(&cr, &next, "g1-r0", "2024-12-02T02:00:01Z", None);
    let old_pod = held_pod(
        &cr,
        &last,
        "g1-r0",
        "2024-11-30T02:00:01Z",
        "2024-11-30T02:29:00Z",
        Some(backup_result(0, &last, 10, true)),
    );
    let gone_pod = held_pod(
        &cr,
        &gone,
        "g1-r0",
        "2024-12-01T02:00:01Z",
        "2024-12-01T02:40:00Z",
        Some(backup_result(0, &gone, 42, true)),
    );
    let running_pod = held_pod(&cr, &next, "g1-r0", "2024-12-02T02:00:02Z", "", None);
    let cleanup = cleanup_job_name("payments-nightly", &gone);
    let id = gone.clone();
    let mut calls = Vec::new();
    calls.extend([
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path("v1", "configmaps", "payments-nightly-kb-task-g1-r0"),
            |_| {},
        ),
        apply(path("batch/v1", "cronjobs", &cron), |body| {
            let pod = &body["spec"]["jobTemplate"]["spec"]["template"]["metadata"];
            assert_eq!(pod["finalizers"], json!(["tidemark.dev/result"]), "{body}");
        }),
        list_jobs("payments-nightly", vec![done, running]),
        list_tasks("payments-nightly", &["g1-r0"]),
        list_pods(
            "payments-nightly",
            vec![old_pod.clone(), gone_pod.clone(), running_pod],
        ),
        apply(
            path("v1", "configmaps", "payments-nightly-kb-cleanup-task"),
            |_| {},
        ),
        apply(path("batch/v1", "jobs", &cleanup), |body| {
            assert_eq!(
                body["metadata"]["finalizers"],
                json!(["tidemark.dev/result"])
            );
        }),
        event("Normal", "CleanupJobCreated"),
        status(&cr, move |s| {
            assert_eq!(s["phase"], "Running", "the next backup runs: {s}");
            assert_eq!(s["lastBackupId"], id.as_str());
            assert_eq!(s["records"], 42);
            assert_eq!(s["lastRun"]["jobName"], id.as_str());
            assert_eq!(s["lastRun"]["phase"], "Completed");
            assert_eq!(s["lastRun"]["reason"], "BackupCompleted");
            assert_eq!(s["lastSuccessfulTime"], "2024-12-01T02:40:00Z");
        }),
        event("Normal", "JobSucceeded"),
        release_pod(&old_pod),
        release_pod(&gone_pod),
    ]);
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
    assert_eq!(metrics.job_count(KIND, "succeeded"), 1);
    assert_eq!(metrics.job_count(KIND, "failed"), 0);
}

// Hole: the cleanup Job succeeded and is gone (its TTL) before the operator read it; its pod,
// held by the result finalizer, has the result: the cleanup is recorded Completed with what it
// deleted, and only then is the pod's finalizer released.
#[tokio::test]
async fn a_cleanup_whose_job_is_gone_is_recorded_from_its_pod() {
    let cr = kb(&without_schedule(BACKUP_DAILY_S3));
    let job = cr.job_name(RUN).expect("name");
    let cleanup = cleanup_job_name("payments-nightly", &job);
    let cr = after_backup_with_cleanup(&job, &cleanup);
    let result = json!({
        "phase": "Completed", "operation": "backup-cleanup",
        "message": "Retention for chain kafka-backup-payments-nightly: deleted 1 backup, kept 7 backups",
        "backup": {"backupId": "", "complete": false, "topics": 0, "partitions": 0, "records": 0,
                   "bytes": 0, "storedBytes": 0, "segments": 0, "groupsCaptured": 0,
                   "deleted": ["old-1"], "deletedTotal": 1}
    });
    let mut pod = held_pod(
        &cr,
        &cleanup,
        "g1-r0",
        "2024-12-01T02:31:00Z",
        "2024-12-01T02:40:00Z",
        Some(result),
    );
    pod["metadata"]["labels"]["app.kubernetes.io/component"] = json!("backup-cleanup");
    let items = vec![pod.clone()];
    let selector = format!("labelSelector=batch.kubernetes.io%2Fjob-name%3D{cleanup}");
    let calls = vec![
        get(
            path("batch/v1", "jobs", &cleanup),
            not_found("jobs", &cleanup),
        ),
        get(
            format!("/api/v1/namespaces/{NS}/pods"),
            list("PodList", items),
        )
        .check(move |_, q| assert!(q.contains(&selector), "{q}")),
        event("Normal", "CleanupCompleted").check(|body, _| {
            let note = body["note"].as_str().expect("note");
            assert!(note.contains("deleted 1 backups: old-1"), "{note}");
        }),
        status(&cr, |s| {
            let c = &s["cleanup"];
            assert_eq!(c["phase"], "Completed", "{s}");
            assert_eq!(c["deleted"], json!(["old-1"]));
        }),
        release_pod(&pod),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
}

/// The continuous Azure sample edited (generation 2) while its run g1-r0 runs its Job: the
/// resource, the Job's name, and the g1-r0 task ConfigMap as the API server returns it, with
/// the `finish` request made at `finish` if given.
fn continuous_edited(suspend: bool, finish: Option<&str>) -> (KafkaBackup, String, Value) {
    let yaml = if suspend {
        BACKUP_CONTINUOUS_AZURE.replace(
            "  mode: continuous\n",
            "  mode: continuous\n  suspend: true\n",
        )
    } else {
        BACKUP_CONTINUOUS_AZURE.to_string()
    };
    let first = kb(&yaml);
    let job = first.job_name(RUN).expect("name");
    let mut task =
        serde_json::to_value(crate::build::task::task_config_map(&first, RUN).expect("task"))
            .expect("json");
    if let Some(at) = finish {
        task["data"]["finish"] = json!(at);
    }
    let mut cr = first;
    cr.metadata.generation = Some(2);
    (with_status(cr, "g1-r0", "Running", &job), job, task)
}

/// The reads of a running continuous backup's Job and of its run's task ConfigMap `task`.
fn finishing_reads(job: &str, task: Value) -> Vec<Call> {
    vec![
        get(path("batch/v1", "jobs", job), job_reply(job, None)),
        get(
            path("v1", "configmaps", "audit-stream-kb-task-g1-r0"),
            Reply::Json(StatusCode::OK, task),
        ),
    ]
}

// Hole: the user ends a running continuous backup with an edit (a new run) or `suspend: true`:
// before anything is stopped, the backup is asked to finish — the `finish` key is added to its
// run's task ConfigMap (mounted in its pod) with a merge patch that leaves the task alone — and
// the new run waits (WaitingForPreviousRun, an Event); nothing is deleted yet. Looked at again
// within the time allowed, it only waits.
#[tokio::test]
async fn a_continuous_backup_the_user_ends_is_asked_to_finish_before_it_stops() {
    for suspend in [false, true] {
        let (cr, job, task) = continuous_edited(suspend, None);
        let mut calls = finishing_reads(&job, task.clone());
        calls.extend([
            Call::new(
                Method::PATCH,
                path("v1", "configmaps", "audit-stream-kb-task-g1-r0"),
                Reply::Json(StatusCode::OK, task),
            )
            .check(|body, query| {
                assert!(!query.contains("fieldManager"), "a merge patch: {query}");
                assert!(body["data"]["finish"].is_string(), "{body}");
                assert!(body["data"].get("task.yaml").is_none(), "{body}");
            }),
            status(&cr, |s| {
                assert_eq!(s["phase"], "Pending");
                assert_eq!(s["run"], "g1-r0", "the running run is still the one named");
                assert_conditions(s, [false, true, false], "WaitingForPreviousRun");
                let message = condition(s, "Ready")["message"].as_str().expect("message");
                assert!(message.contains("was asked to finish"), "{message}");
            }),
            event("Normal", "FinishRequested"),
        ]);
        let (result, _, _) = scenario(cr, calls).await;
        assert_eq!(
            result.expect("reconciled"),
            Action::requeue(crate::controller::backup::FINISH_POLL)
        );

        // Asked a moment ago: it is given time, nothing else happens.
        let (cr, job, task) = continuous_edited(suspend, Some(&st_now()));
        let (result, _, _) = scenario(cr, finishing_reads(&job, task)).await;
        assert_eq!(
            result.expect("reconciled"),
            Action::requeue(crate::controller::backup::FINISH_POLL)
        );
    }
}

// Hole: the user deletes a running continuous backup: the resource stays (its finalizer) while
// the backup is asked to finish, like an edit; once its Job completed (or the time allowed has
// passed), the finalizer goes and the deletion proceeds. Other finalizers stay.
#[tokio::test]
async fn a_deleted_continuous_backup_finishes_before_the_resource_goes() {
    let deleting = |finish: Option<&str>| {
        let (mut cr, job, task) = continuous_edited(false, finish);
        cr.metadata.generation = Some(1);
        cr.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        cr.metadata.finalizers = Some(vec!["example.com/other".into(), FINISH_FINALIZER.into()]);
        cr.metadata.resource_version = Some("77".into());
        (cr, job, task)
    };
    let cr_path = "/apis/tidemark.dev/v1alpha1/namespaces/kafka-backup/kafkabackups/audit-stream";

    // Asked to finish.
    let (cr, job, task) = deleting(None);
    let mut calls = finishing_reads(&job, task.clone());
    calls.extend([
        Call::new(
            Method::PATCH,
            path("v1", "configmaps", "audit-stream-kb-task-g1-r0"),
            Reply::Json(StatusCode::OK, task),
        )
        .check(|body, _| assert!(body["data"]["finish"].is_string(), "{body}")),
        event("Normal", "FinishRequested"),
    ]);
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(
        result.expect("reconciled"),
        Action::requeue(crate::controller::backup::FINISH_POLL)
    );

    // Still finishing: only looked at.
    let (cr, job, task) = deleting(Some(&st_now()));
    let (result, _, _) = scenario(cr, finishing_reads(&job, task)).await;
    assert_eq!(
        result.expect("reconciled"),
        Action::requeue(crate::controller::backup::FINISH_POLL)
    );

    // Its Job completed: the finalizer goes, the other one stays.
    let (cr, job, _) = deleting(Some(&st_now()));
    let reply = serde_json::to_value(&cr).expect("cr");
    let calls = vec![
        get(
            path("batch/v1", "jobs", &job),
            job_reply(&job, Some(("Complete", "CompletionsReached"))),
        ),
        Call::new(Method::PATCH, cr_path, Reply::Json(StatusCode::OK, reply)).check(|body, _| {
            assert_eq!(
                body["metadata"]["finalizers"],
                json!(["example.com/other"]),
                "{body}"
            );
            assert_eq!(body["metadata"]["resourceVersion"], "77", "{body}");
        }),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());

    // Without the finalizer (nothing ran, or it was released): nothing at all.
    let (mut cr, _, _) = deleting(None);
    cr.metadata.finalizers = None;
    let (result, _, _) = scenario(cr, vec![]).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
}

fn st_now() -> String {
    crate::controller::status::now()
}

// Hole: a continuous backup asked to finish did not within the time allowed (its pod cannot
// see the request, the worker hangs): a Warning says so, and it is stopped as any superseded
// run (foreground delete, its task ConfigMap deleted), left resumable.
#[tokio::test]
async fn a_continuous_backup_that_does_not_finish_in_time_is_stopped() {
    let (cr, job, task) = continuous_edited(false, Some("2024-12-01T12:00:00Z"));
    let uid = cr.metadata.uid.clone().expect("uid");
    let mut running = match job_reply(&job, None) {
        Reply::Json(_, j) => j,
        _ => unreachable!("JSON"),
    };
    running["metadata"]["labels"] = json!({
        "tidemark.dev/owner-kind": KIND, "tidemark.dev/owner-name": "audit-stream",
        "tidemark.dev/run": "g1-r0"
    });
    running["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "tidemark.dev/v1alpha1", "kind": KIND, "name": "audit-stream",
        "uid": uid, "controller": true
    }]);
    let mut calls = finishing_reads(&job, task);
    calls.extend([
        event("Warning", "FinishTimedOut"),
        list_run_jobs(&cr, vec![running]),
        Call::new(
            Method::DELETE,
            path("batch/v1", "jobs", &job),
            Reply::Json(
                StatusCode::OK,
                json!({"kind": "Status", "status": "Success"}),
            ),
        )
        .check(|body, _| assert_eq!(body["propagationPolicy"], "Foreground", "{body}")),
        Call::new(
            Method::DELETE,
            path("v1", "configmaps", "audit-stream-kb-task-g1-r0"),
            Reply::Json(
                StatusCode::OK,
                json!({"kind": "Status", "status": "Success"}),
            ),
        ),
        list_run_pods(&cr, vec![]),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Pending");
            assert_conditions(s, [false, true, false], "WaitingForPreviousRun");
        }),
        event("Normal", "WaitingForPreviousRun"),
    ]);
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(
        result.expect("reconciled"),
        Action::requeue(crate::controller::PREVIOUS_RUN_POLL)
    );
}

// A suspended continuous backup: once its finished run is recorded and stopped (nothing of it
// left), the phase is Suspended, Ready, and no Job is created; seen again, nothing is called.
#[tokio::test]
async fn a_suspended_continuous_backup_runs_nothing() {
    let yaml = BACKUP_CONTINUOUS_AZURE.replace(
        "  mode: continuous\n",
        "  mode: continuous\n  suspend: true\n",
    );
    let mut cr = kb(&yaml);
    let job = cr.job_name(RUN).expect("name");
    cr.metadata.generation = Some(2);
    let mut cr = with_status(cr, "g1-r0", "Completed", &job);
    if let Some(s) = cr.status.as_mut() {
        s.last_backup_id = Some(job.clone());
    }
    let id = job.clone();
    let mut calls = superseded_run(
        &cr,
        "g1-r0",
        Reply::Json(
            StatusCode::OK,
            json!({"kind": "Status", "status": "Success"}),
        ),
    );
    calls.extend([
        status(&cr, move |s| {
            assert_eq!(s["phase"], "Suspended");
            assert_eq!(s["run"], "g2-r0");
            assert_eq!(s["observedGeneration"], 2);
            assert_eq!(
                s["lastBackupId"],
                id.as_str(),
                "the finished backup is kept"
            );
            assert!(s.get("jobName").is_none(), "{s}");
            assert_conditions(s, [true, false, false], "Suspended");
        }),
        event("Normal", "Suspended"),
    ]);
    let (result, _, _) = scenario(cr.clone(), calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());

    let mut suspended = cr;
    if let Some(s) = suspended.status.as_mut() {
        s.common.phase = Some(crate::crd::status::Phase::Suspended);
        s.common.run = Some("g2-r0".into());
    }
    let (result, _, _) = scenario(suspended, vec![]).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
}

// Hole: the continuous backup asked to finish completed (its manifest written): the new run
// first records it — Completed with its counts, as a complete backup — and only then, on the
// next look, stops its Job and starts.
#[tokio::test]
async fn a_finished_continuous_backup_is_recorded_complete_before_the_next_run() {
    let (cr, job, _) = continuous_edited(false, Some("2024-12-01T12:00:00Z"));
    let uid = cr.metadata.uid.clone().expect("uid");
    let mut done = match job_reply(&job, Some(("Complete", "CompletionsReached"))) {
        Reply::Json(_, j) => j,
        _ => unreachable!("JSON"),
    };
    done["metadata"]["labels"] = json!({
        "tidemark.dev/owner-kind": KIND, "tidemark.dev/owner-name": "audit-stream",
        "tidemark.dev/run": "g1-r0"
    });
    done["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "tidemark.dev/v1alpha1", "kind": KIND, "name": "audit-stream",
        "uid": uid, "controller": true
    }]);
    let id = job.clone();
    let calls = vec![
        get(
            path("batch/v1", "jobs", &job),
            Reply::Json(StatusCode::OK, done.clone()),
        ),
        list_run_jobs(&cr, vec![done]),
        pods_call(
            &job,
            &[(
                "2024-12-01T12:03:00Z",
                Some(backup_result(0, &job, 900, true)),
            )],
        ),
        status(&cr, move |s| {
            assert_eq!(s["phase"], "Completed", "{s}");
            assert_eq!(s["run"], "g1-r0");
            assert_eq!(s["lastBackupId"], id.as_str());
            assert_eq!(s["records"], 900);
            assert_eq!(s["lastRun"]["phase"], "Completed");
        }),
        event("Normal", "JobSucceeded"),
    ];
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(
        result.expect("reconciled"),
        Action::requeue(crate::controller::PREVIOUS_RUN_POLL)
    );
    assert_eq!(metrics.job_count(KIND, "succeeded"), 1);
}

// (h) The worker pod of a backup cannot start for want of a SASL key: Stalled, the Job kept.
#[tokio::test]
async fn a_pod_waiting_for_a_missing_secret_key_stalls_the_backup() {
    super::a_pod_waiting_for_a_secret_stalls_the_run(
        kb(&without_schedule(BACKUP_DAILY_S3)),
        "KeyNotFound",
        "couldn't find key username in Secret kafka-backup/kafka-credentials",
        "spec.kafkaCluster.saslSecret",
    )
    .await;
}

// A scheduled backup with drills whose newest drill failed: the drills' part changes nothing
// (no drill due), and the scheduled status keeps status.drill and status.lastDrill, shows
// DrillVerified False and stays Stalled with the drill's reason although its backups succeed.
#[tokio::test]
async fn a_scheduled_backup_stays_stalled_after_a_failed_drill() {
    let yaml = BACKUP_DRILL.replace(
        "    schedule: \"0 4 * * 0\"\n",
        "    afterEveryBackups: 100\n",
    );
    let cr = kb(&yaml);
    let cron = cron_job_name(&cr).expect("name");
    let last = format!("{cron}-28885800");
    let drill_failed = |type_: &str, status: &str| {
        json!({"type": type_, "status": status, "reason": "DrillFailed",
               "message": "drill Job d failed: 2 partitions differ",
               "lastTransitionTime": "2024-11-30T04:00:00Z", "observedGeneration": 1})
    };
    let cr = with_backup_status(
        cr,
        json!({
            "phase": "Scheduled", "run": "g1-r0", "observedGeneration": 1, "jobName": last,
            "cronJobName": cron, "lastBackupId": last, "records": 10,
            "lastSuccessfulTime": "2024-11-30T02:30:00Z",
            "lastRun": {"jobName": last, "phase": "Completed", "reason": "BackupCompleted",
                        "message": "backup complete: 10 records",
                        "completionTime": "2024-11-30T02:30:00Z"},
            "drill": {"jobName": "d", "drillId": "1-x", "phase": "Failed", "started": 1,
                      "since": "2024-11-01T00:00:00Z", "startTime": "2024-11-30T03:00:00Z",
                      "backupsSinceDrill": 0, "countedBackup": last},
            "lastDrill": {"jobName": "d", "verified": false, "reason": "DrillFailed",
                          "message": "drill Job d failed: 2 partitions differ"},
            "conditions": [
                drill_failed("Ready", "False"),
                {"type": "Reconciling", "status": "False", "reason": "BackupCompleted",
                 "message": "done", "lastTransitionTime": "2024-11-30T02:30:00Z",
                 "observedGeneration": 1},
                drill_failed("Stalled", "True"),
                drill_failed("DrillVerified", "False"),
            ]
        }),
    );
    let calls = vec![
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path("v1", "configmaps", "orders-drilled-kb-task-g1-r0"),
            |_| {},
        ),
        apply(path("batch/v1", "cronjobs", &cron), |_| {}),
        list_jobs("orders-drilled", vec![]),
        list_tasks("orders-drilled", &["g1-r0"]),
        list_pods("orders-drilled", vec![]),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Scheduled");
            assert_eq!(s["lastDrill"]["reason"], "DrillFailed");
            assert_eq!(s["drill"]["phase"], "Failed");
            assert_condition(s, "Ready", "False", "DrillFailed");
            assert_condition(s, "Stalled", "True", "DrillFailed");
            assert_condition(s, "DrillVerified", "False", "DrillFailed");
            assert_eq!(
                condition(s, "DrillVerified")["lastTransitionTime"],
                "2024-11-30T04:00:00Z",
                "the condition did not change"
            );
        }),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(SCHEDULE_POLL));
}

// (e1) An encrypted backup: the key its shards report wrapping the data key with is the
// status's encryptionKeyId (never key material: the worker reports an id).
#[tokio::test]
async fn a_finished_encrypted_backup_records_its_key_id() {
    let mut cr = kb(&without_retention(&without_schedule(BACKUP_ENCRYPTED)));
    cr.spec.parallelism = 2;
    let job = cr.job_name(RUN).expect("name");
    let cr = with_status(cr, "g1-r0", "Running", &job);
    let done = backup_job(
        &cr,
        &job,
        "g1-r0",
        "2024-12-01T12:00:00Z",
        Some(("Complete", "CompletionsReached", "2024-12-01T12:30:00Z")),
    );
    let encrypted = |index: u32, records: u64| {
        let mut result = backup_result(index, &job, records, true);
        result["backup"]["encryptionKeyId"] = json!("key-2026-12");
        Some(result)
    };
    let calls = vec![
        get(
            path("batch/v1", "jobs", &job),
            Reply::Json(StatusCode::OK, done),
        ),
        indexed_pods_call(
            &job,
            &[
                (Some(0), "2024-12-01T12:20:00Z", encrypted(0, 1000)),
                (Some(1), "2024-12-01T12:25:00Z", encrypted(1, 2000)),
            ],
        ),
        status(&cr, move |s| {
            assert_eq!(s["phase"], "Completed");
            assert_eq!(s["records"], 3000);
            assert_eq!(s["encryptionKeyId"], "key-2026-12");
            assert_conditions(s, [true, false, false], "BackupCompleted");
        }),
        event("Normal", "JobSucceeded"),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
}

// (e2) The key Secret of an encrypted scheduled backup does not exist: the pod waits for its
// volume, and the backup stalls naming spec.encryption.secretRef.
#[tokio::test]
async fn a_scheduled_backup_whose_key_secret_is_missing_stalls_naming_the_field() {
    // Named as the other scheduled scenarios' backup, whose calls it shares.
    let yaml = BACKUP_ENCRYPTED.replace("name: customers-encrypted", "name: payments-nightly");
    let cr = kb(&without_retention(&yaml));
    let (cr, started, mut calls) = started_scheduled_job(cr);
    let pod_name = format!("{started}-0-x7k2p");
    let pod = json!({
        "metadata": {"name": pod_name, "namespace": NS,
                     "labels": {"batch.kubernetes.io/job-name": started}},
        "spec": {"containers": [{"name": "tidemark"}], "volumes": [
            {"name": "encryption-keys", "secret": {"secretName": "tidemark-backup-keys"}}]},
        "status": {"phase": "Pending", "containerStatuses": [{
            "name": "tidemark", "image": "tidemark", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}
    });
    let message = "MountVolume.SetUp failed for volume \"encryption-keys\" : secret \"tidemark-backup-keys\" not found";
    let failed_mount = json!({
        "metadata": {"name": format!("{pod_name}.1")},
        "involvedObject": {"kind": "Pod", "name": pod_name},
        "reason": "FailedMount", "type": "Warning", "message": message,
        "lastTimestamp": k8s_openapi::jiff::Timestamp::now().to_string()
    });
    calls.extend([
        list_pods("payments-nightly", vec![pod]),
        get(
            format!("/api/v1/namespaces/{NS}/events"),
            list("EventList", vec![failed_mount]),
        ),
        status(&cr, move |s| {
            assert_conditions(s, [false, false, true], "SecretNotFound");
            let text = condition(s, "Stalled")["message"].as_str().expect("text");
            assert!(text.contains("tidemark-backup-keys"), "{text}");
            assert!(text.contains("spec.encryption.secretRef"), "{text}");
        }),
        event("Warning", "SecretNotFound"),
    ]);
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
}

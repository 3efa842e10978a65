//! Scenarios of a KafkaBackup's restore drills: a drill Job on schedule or after every N
//! successful backups, never a second while one runs, and the drill's result in
//! `status.lastDrill`, the `DrillVerified` condition, the health and the Events. The backup is
//! a finished one-shot backup, so the backups' part of each reconcile is one read of its Job.

use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use serde_json::{json, Value};

use super::*;
use crate::build::drill::{drill_id, drill_job_name};
use crate::build::fixtures::*;
use crate::build::{RunId, WorkerKind};
use crate::controller::{RUNNING_POLL, SECRET_POLL};
use crate::crd::KafkaBackup;

const KIND: &str = "KafkaBackup";
const RUN: RunId = RunId {
    generation: 1,
    run: 0,
};

fn event(type_: &'static str, reason: &'static str) -> Call {
    super::event(KIND, type_, reason)
}

/// The one-shot PVC backup with `drill` (YAML lines under `drill:`), its backup Completed
/// (Ready) and `drill_status` as `status.drill`, with `last_drill` as `status.lastDrill`.
fn drilled(drill: &str, drill_status: Value, last_drill: Option<Value>) -> KafkaBackup {
    let cr = kb(&format!("{BACKUP_ONE_SHOT_PVC}  drill:\n{drill}"));
    let job = cr.job_name(RUN).expect("name");
    let ready = |type_: &str, status: &str| {
        json!({"type": type_, "status": status, "reason": "BackupCompleted",
               "message": "backup complete", "lastTransitionTime": "2024-12-01T12:20:00Z",
               "observedGeneration": 1})
    };
    let mut drill_status = drill_status;
    if drill_status.get("countedBackup").is_none() {
        drill_status["countedBackup"] = json!(job);
    }
    let mut status = json!({
        "phase": "Completed", "run": "g1-r0", "observedGeneration": 1, "jobName": job,
        "startTime": "2024-12-01T12:00:00Z", "completionTime": "2024-12-01T12:20:00Z",
        "lastBackupId": job, "lastSuccessfulTime": "2024-12-01T12:20:00Z", "records": 10,
        "lastRun": {"jobName": job, "phase": "Completed", "reason": "BackupCompleted",
                    "message": "backup complete", "completionTime": "2024-12-01T12:20:00Z"},
        "conditions": [ready("Ready", "True"), ready("Reconciling", "False"),
                       ready("Stalled", "False")],
        "drill": drill_status,
    });
    if let Some(last) = last_drill {
        status["lastDrill"] = last;
    }
    let mut value = serde_json::to_value(&cr).expect("cr");
    value["status"] = status;
    serde_json::from_value(value).expect("a KafkaBackup with a status")
}

/// The backups' part of the reconcile of a finished one-shot backup: its Job is read.
fn backup_job_read(cr: &KafkaBackup) -> Call {
    let job = cr.job_name(RUN).expect("name");
    get(
        path("batch/v1", "jobs", &job),
        job_reply(&job, Some(("Complete", "CompletionsReached"))),
    )
}

/// `t` as status text.
fn text(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The apply of the drill task ConfigMap and of drill Job number `n`.
fn drill_applies(cr: &KafkaBackup, n: i64) -> Vec<Call> {
    let id = drill_id(cr, n).expect("id");
    let job = drill_job_name(cr, n).expect("name");
    let task_id = id.clone();
    let job_id = id.clone();
    vec![
        apply(
            path("v1", "configmaps", "orders-snapshot-kb-drill-task"),
            move |body| {
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(task.contains("kind: drill"), "{task}");
                assert!(task.contains(&format!("drillId: {task_id}")), "{task}");
                assert!(
                    task.contains("chain: kafka-backup-orders-snapshot"),
                    "{task}"
                );
                assert!(!task.contains("backupId"), "{task}");
            },
        ),
        apply(path("batch/v1", "jobs", &job), move |body| {
            let labels = &body["metadata"]["labels"];
            assert_eq!(labels["app.kubernetes.io/component"], "backup-drill");
            assert_eq!(labels["tidemark.dev/drill-id"], job_id.as_str());
            assert!(labels.get("tidemark.dev/run").is_none(), "{labels}");
            assert_eq!(
                body["metadata"]["finalizers"],
                json!(["tidemark.dev/result"])
            );
            let pod = &body["spec"]["template"]["spec"];
            assert_eq!(
                pod["volumes"][0]["configMap"]["name"],
                "orders-snapshot-kb-drill-task"
            );
        }),
    ]
}

// A scheduled drill whose time has come creates its task ConfigMap and Job, records it as
// running with a DrillStarted Event, and leaves the finished backup alone.
#[tokio::test]
async fn a_scheduled_drill_creates_its_job_when_due() {
    // Sundays at 04:00: 2024-12-01 was a Sunday, long past.
    let cr = drilled(
        "    schedule: \"0 4 * * 0\"\n",
        json!({"since": "2024-12-01T00:00:00Z", "started": 2}),
        None,
    );
    let job = drill_job_name(&cr, 3).expect("name");
    let id = drill_id(&cr, 3).expect("id");
    let mut calls = drill_applies(&cr, 3);
    let expected = job.clone();
    calls.push(status(&cr, move |s| {
        let d = &s["drill"];
        assert_eq!(d["phase"], "Running");
        assert_eq!(d["jobName"], expected.as_str());
        assert_eq!(d["drillId"], id.as_str());
        assert_eq!(d["started"], 3);
        assert_eq!(d["backupsSinceDrill"], 0);
        let next: Timestamp = d["nextScheduleTime"]
            .as_str()
            .expect("next")
            .parse()
            .expect("a time");
        assert!(next > Timestamp::now(), "{next}");
        assert!(s.get("lastDrill").is_none(), "{s}");
        assert_conditions(s, [true, false, false], "BackupCompleted");
    }));
    calls.push(event("Normal", "DrillStarted"));
    calls.push(backup_job_read(&cr));
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
}

// A drill not yet due creates nothing; the reconcile looks again when it is due (at most
// every 5 minutes).
#[tokio::test]
async fn a_scheduled_drill_not_yet_due_waits() {
    let now = Timestamp::now();
    let cr = drilled(
        "    schedule: \"0 4 1 1 *\"\n",
        json!({"since": text(now)}),
        None,
    );
    let calls = vec![
        status(&cr, |s| {
            assert!(s["drill"]["nextScheduleTime"].is_string(), "{s}");
            assert!(s["drill"].get("jobName").is_none(), "{s}");
        }),
        backup_job_read(&cr),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(
        result.expect("reconciled"),
        Action::requeue(crate::controller::drill::DRILL_POLL)
    );
}

// A drill that comes due while the previous one runs waits: the running Job is only read,
// nothing is created, nothing written.
#[tokio::test]
async fn no_second_drill_starts_while_one_runs() {
    let cr = drilled(
        "    schedule: \"0 4 * * 0\"\n",
        json!({"since": "2024-12-01T00:00:00Z", "started": 1, "phase": "Running",
               "jobName": "orders-snapshot-kb-drill-1-x", "drillId": "1-x",
               "startTime": "2024-12-01T04:00:00Z",
               "nextScheduleTime": "2024-12-08T04:00:00Z"}),
        None,
    );
    // The schedule's next time (2024-12-08) is long past: due, but one runs.
    let running = "orders-snapshot-kb-drill-1-x";
    let calls = vec![
        get(path("batch/v1", "jobs", running), job_reply(running, None)),
        waiting_pods_call(running, "Running", json!({"running": {}})),
        backup_job_read(&cr),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
}

/// A drill result as the worker writes it to the termination message.
fn drill_result(phase: &str, verified: bool, rpo: f64, failures: &[&str]) -> Value {
    json!({
        "phase": phase, "operation": "drill",
        "message": if verified { "drill 1-x verified" } else { "drill 1-x: 2 partitions differ from the backup" },
        "drill": {
            "drillId": "1-x", "backupId": "orders-snapshot-kb-g1-r0-x", "prefix": "drill-1-x-",
            "topics": 2, "partitions": 6, "records": 1200, "bytes": 480000,
            "verified": verified, "rtoSeconds": 12.5, "rpoSeconds": rpo,
            "bytesPerSecond": 38400, "groupsChecked": 3, "failures": failures,
            "failuresTotal": failures.len(), "cleanedUp": true
        }
    })
}

/// `cr`'s drill 1 ran since a minute ago (the schedule's next time is days away).
fn running_drill(drill: &str) -> KafkaBackup {
    let started = text(Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(60));
    drilled(
        drill,
        json!({"since": "2024-12-01T00:00:00Z", "started": 1, "phase": "Running",
               "jobName": "orders-snapshot-kb-drill-1-x", "drillId": "1-x",
               "startTime": started}),
        None,
    )
}

/// The reads of the drill Job that ended with `condition`, its pod with `result`.
fn ended_drill(condition: (&str, &str), result: Value) -> Vec<Call> {
    ended_job(
        "orders-snapshot-kb-drill-1-x",
        condition,
        &[("2024-12-01T12:40:00Z", Some(result))],
    )
}

// A drill Job that verified the backup: its figures go to status.lastDrill, DrillVerified is
// True, a DrillSucceeded Event and the gauges say so; the backup stays Ready.
#[tokio::test]
async fn a_verified_drill_reaches_last_drill_the_condition_and_the_gauges() {
    let cr = running_drill("    schedule: \"0 4 * * 0\"\n    maxRpoSeconds: 7200\n");
    let mut calls = ended_drill(
        ("Complete", "CompletionsReached"),
        drill_result("Completed", true, 3600.0, &[]),
    );
    calls.push(status(&cr, |s| {
        let last = &s["lastDrill"];
        assert_eq!(last["jobName"], "orders-snapshot-kb-drill-1-x");
        assert_eq!(last["backupId"], "orders-snapshot-kb-g1-r0-x");
        assert_eq!(last["records"], 1200);
        assert_eq!(last["bytes"], 480000);
        assert_eq!(last["partitions"], 6);
        assert_eq!(last["verified"], true);
        assert_eq!(last["rtoSeconds"], 12.5);
        assert_eq!(last["rpoSeconds"], 3600.0);
        assert_eq!(last["throughput"], 38400);
        assert_eq!(last["cleanedUp"], true);
        assert!(last["time"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert_eq!(s["drill"]["phase"], "Completed");
        assert_condition(s, "DrillVerified", "True", "DrillSucceeded");
        let message = condition(s, "DrillVerified")["message"]
            .as_str()
            .unwrap_or("");
        assert!(message.contains("verified 1200 records"), "{message}");
        assert_conditions(s, [true, false, false], "BackupCompleted");
    }));
    calls.push(event("Normal", "DrillSucceeded"));
    calls.push(backup_job_read(&cr));
    let (result, _, metrics) = scenario(cr, calls).await;
    let action = result.expect("reconciled");
    assert_ne!(
        action,
        Action::await_change(),
        "the next drill is scheduled"
    );
    let figures = metrics
        .drill_figures(NS, "orders-snapshot")
        .expect("gauges");
    assert!(figures.verified);
    assert_eq!(
        (figures.rto_seconds, figures.rpo_seconds),
        (Some(12.5), Some(3600.0))
    );
    assert!(figures.time > 1.7e9);
}

// A drill whose records did not match (exit 11, the Job failed at once): DrillVerified False
// with DrillFailed, a Warning Event naming the failures, and the KafkaBackup Stalled (Argo CD
// Degraded, kstatus Failed) although its backup completed.
#[tokio::test]
async fn a_failed_drill_turns_the_condition_false_with_a_warning() {
    let cr = running_drill("    schedule: \"0 4 * * 0\"\n");
    let mut calls = ended_drill(
        ("Failed", "PodFailurePolicy"),
        drill_result(
            "Failed",
            false,
            60.0,
            &["orders-2: 3 records differ from the backup (digest)"],
        ),
    );
    calls.push(status(&cr, |s| {
        assert_eq!(s["lastDrill"]["verified"], false);
        assert_eq!(
            s["lastDrill"]["failures"],
            json!(["orders-2: 3 records differ from the backup (digest)"])
        );
        assert_eq!(s["drill"]["phase"], "Failed");
        assert_condition(s, "DrillVerified", "False", "DrillFailed");
        assert_condition(s, "Ready", "False", "DrillFailed");
        assert_condition(s, "Stalled", "True", "DrillFailed");
        assert_condition(s, "Reconciling", "False", "BackupCompleted");
        let message = condition(s, "Stalled")["message"].as_str().unwrap_or("");
        assert!(
            message.contains("orders-2: 3 records differ from the backup"),
            "{message}"
        );
        assert_eq!(s["phase"], "Completed", "the backup itself completed");
    }));
    calls.push(event("Warning", "DrillFailed"));
    calls.push(backup_job_read(&cr));
    let (result, _, metrics) = scenario(cr, calls).await;
    result.expect("reconciled");
    assert!(
        !metrics
            .drill_figures(NS, "orders-snapshot")
            .expect("gauges")
            .verified
    );
}

// A drill that verified every record but found the newest backed-up record older than
// maxRpoSeconds (the worker exits 11 with its result filled): the condition is False with
// DrillRpoExceeded, and the Event is a DrillFailed warning.
#[tokio::test]
async fn a_drill_over_max_rpo_turns_the_condition_false() {
    let cr = running_drill("    schedule: \"0 4 * * 0\"\n    maxRpoSeconds: 7200\n");
    let mut calls = ended_drill(
        ("Failed", "PodFailurePolicy"),
        drill_result("Failed", true, 40000.0, &[]),
    );
    calls.push(status(&cr, |s| {
        assert_eq!(s["lastDrill"]["verified"], false);
        assert_eq!(s["lastDrill"]["rpoSeconds"], 40000.0);
        assert_condition(s, "DrillVerified", "False", "DrillRpoExceeded");
        let message = condition(s, "DrillVerified")["message"]
            .as_str()
            .unwrap_or("");
        assert!(
            message.contains("40000 s old, over spec.drill.maxRpoSeconds 7200"),
            "{message}"
        );
        assert_condition(s, "Stalled", "True", "DrillRpoExceeded");
    }));
    calls.push(event("Warning", "DrillFailed"));
    calls.push(backup_job_read(&cr));
    let (result, _, _) = scenario(cr, calls).await;
    result.expect("reconciled");
}

// A later drill that succeeds gives Ready back, with the newest backup's own reason.
#[tokio::test]
async fn a_successful_drill_after_a_failed_one_makes_the_backup_ready_again() {
    let cr = running_drill("    schedule: \"0 4 * * 0\"\n");
    let mut value = serde_json::to_value(&cr).expect("cr");
    let stalled = |type_: &str, status: &str| {
        json!({"type": type_, "status": status, "reason": "DrillFailed", "message": "bad",
               "lastTransitionTime": "2024-12-01T13:00:00Z", "observedGeneration": 1})
    };
    value["status"]["conditions"] = json!([
        stalled("Ready", "False"),
        {"type": "Reconciling", "status": "False", "reason": "BackupCompleted",
         "message": "backup complete", "lastTransitionTime": "2024-12-01T12:20:00Z"},
        stalled("Stalled", "True"),
        stalled("DrillVerified", "False"),
    ]);
    value["status"]["lastDrill"] = json!({"jobName": "old", "verified": false,
                                          "reason": "DrillFailed", "message": "bad"});
    let cr: KafkaBackup = serde_json::from_value(value).expect("cr");
    let mut calls = ended_drill(
        ("Complete", "CompletionsReached"),
        drill_result("Completed", true, 60.0, &[]),
    );
    calls.push(status(&cr, |s| {
        assert_condition(s, "DrillVerified", "True", "DrillSucceeded");
        assert_condition(s, "Ready", "True", "BackupCompleted");
        assert_condition(s, "Stalled", "False", "BackupCompleted");
        assert_eq!(condition(s, "Ready")["message"], "backup complete");
    }));
    calls.push(event("Normal", "DrillSucceeded"));
    calls.push(backup_job_read(&cr));
    let (result, _, _) = scenario(cr, calls).await;
    result.expect("reconciled");
}

// afterEveryBackups 2: the second successful backup since the last drill starts one; the
// first only counts.
#[tokio::test]
async fn after_every_n_backups_a_drill_follows_the_nth() {
    let job_of_backup = kb(BACKUP_ONE_SHOT_PVC).job_name(RUN).expect("name");
    // One counted already (an earlier backup); the newest is not counted yet: the 2nd.
    let cr = drilled(
        "    afterEveryBackups: 2\n",
        json!({"since": "2024-12-01T00:00:00Z", "started": 0, "backupsSinceDrill": 1,
               "countedBackup": "orders-snapshot-kb-g0-r0-earlier"}),
        None,
    );
    let mut calls = drill_applies(&cr, 1);
    let counted = job_of_backup.clone();
    calls.push(status(&cr, move |s| {
        let d = &s["drill"];
        assert_eq!(d["phase"], "Running");
        assert_eq!(d["started"], 1);
        assert_eq!(d["backupsSinceDrill"], 0);
        assert_eq!(d["countedBackup"], counted.as_str());
        assert!(d.get("nextScheduleTime").is_none(), "{d}");
    }));
    calls.push(event("Normal", "DrillStarted"));
    calls.push(backup_job_read(&cr));
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));

    // The first backup after a drill only counts.
    let cr = drilled(
        "    afterEveryBackups: 2\n",
        json!({"since": "2024-12-01T00:00:00Z", "started": 1, "phase": "Completed",
               "backupsSinceDrill": 0, "countedBackup": "orders-snapshot-kb-g0-r0-earlier"}),
        None,
    );
    let calls = vec![
        status(&cr, move |s| {
            assert_eq!(s["drill"]["backupsSinceDrill"], 1);
            assert_eq!(s["drill"]["countedBackup"], job_of_backup.as_str());
            assert_eq!(s["drill"]["started"], 1);
        }),
        backup_job_read(&cr),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
}

// A suspended drill schedule starts nothing, even when due.
#[tokio::test]
async fn a_suspended_drill_starts_nothing() {
    let cr = drilled(
        "    schedule: \"0 4 * * 0\"\n    suspend: true\n",
        json!({"since": "2024-12-01T00:00:00Z", "nextScheduleTime": "2024-12-01T04:00:00Z"}),
        None,
    );
    let calls = vec![backup_job_read(&cr)];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
}

// The drill pod cannot start: the drill cluster's SASL Secret is missing. The drill Job is kept
// (its pod starts once the Secret exists); DrillVerified is False with DrillSecretMissing and the
// kubelet's message, the resource Stalled, and a Warning Event says so once.
#[tokio::test]
async fn a_drill_pod_waiting_for_a_missing_secret_is_reported() {
    let cr = running_drill("    schedule: \"0 4 * * 0\"\n");
    let job = "orders-snapshot-kb-drill-1-x";
    let missing = "secret \"kafka-staging-credentials\" not found";
    let calls = vec![
        get(path("batch/v1", "jobs", job), job_reply(job, None)),
        waiting_pods_call(job, "Pending", config_error(missing)),
        status(&cr, move |s| {
            let waiting = s["drill"]["waiting"].as_str().expect("waiting");
            assert!(waiting.contains(missing), "{waiting}");
            assert!(waiting.contains("kafka-staging-credentials"), "{waiting}");
            assert_eq!(s["drill"]["phase"], "Running");
            assert_condition(s, "DrillVerified", "False", "DrillSecretMissing");
            assert_condition(s, "Stalled", "True", "DrillSecretMissing");
            assert_condition(s, "Ready", "False", "DrillSecretMissing");
        }),
        event("Warning", "DrillSecretMissing"),
        backup_job_read(&cr),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(SECRET_POLL));
}

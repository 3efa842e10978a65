//! GitOps health of the statuses the operator writes, for every kind and every state a run
//! goes through: the statuses come from the operator's own status functions (the ones its
//! reconcile writes with), applied to the resources in `config/samples/`.
//!
//! - **Flux** reads status with kstatus. [`kstatus`] is kstatus' `status.Compute` for a custom
//!   resource (sigs.k8s.io/cli-utils `pkg/kstatus/status`: `checkGenericProperties` —
//!   deletion, `observedGeneration` against `generation`, `Reconciling`/`Stalled` — then, as
//!   custom kinds have no type-specific rules, `checkReadyCondition`, else Current), and each
//!   state must compute to what a person expects (a running Job InProgress, a completed run
//!   Current, a failed or stalled one Failed).
//! - **Argo CD** runs `docs/gitops/argocd-health.lua`. The test runs that script with Debian's
//!   `lua5.4` (or `$TIDEMARK_LUA`) on the same objects, converted to Lua tables, in an
//!   environment like Argo CD's (the base functions and `table` only, no `string` library, so
//!   that a script relying on it fails here as it would there), and checks the health and
//!   message of each.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use kube::ResourceExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tidemark::task::{ResultBackup, ResultError, ResultPlan, ResultRestore, TaskResult};
use tidemark_operator::build::{RunId, WorkerKind};
use tidemark_operator::controller::backup::{scheduled_status, Observed};
use tidemark_operator::controller::drill;
use tidemark_operator::controller::status::{self as st, JobEnd, ShardResult};
use tidemark_operator::controller::ControlledKind;
use tidemark_operator::controller::{approval, rollback};
use tidemark_operator::crd::approval::Approval;
use tidemark_operator::crd::{KafkaBackup, KafkaOffsetReset, KafkaOffsetRollback, KafkaRestore};

const NOW: &str = "2024-12-01T12:00:00Z";
const LATER: &str = "2024-12-01T12:20:00Z";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The sample `config/samples/<file>`, in namespace `kafka-backup` at generation 1, as the API
/// server returns it.
fn sample<K: DeserializeOwned + kube::Resource<DynamicType = ()>>(file: &str) -> K {
    let path = repo().join("config/samples").join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("failed to read {}: {e}", path.display()));
    let mut cr: K = serde_yaml_ng::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not a {}: {e}", path.display(), K::kind(&())));
    let meta = cr.meta_mut();
    meta.namespace = Some("kafka-backup".into());
    meta.uid = Some("0b5c1c2e-7a43-4a8e-9f0e-4a1d2c3b4a5f".into());
    meta.generation = Some(1);
    cr
}

/// `cr` as JSON with `status`.
fn with_status<K: Serialize, S: Serialize>(cr: &K, status: &S) -> Value {
    let mut value = serde_json::to_value(cr).expect("resource as JSON");
    value["status"] = serde_json::to_value(status).expect("status as JSON");
    value
}

/// One object in one state, and the health Flux and Argo CD must see.
struct Case {
    name: String,
    object: Value,
    kstatus: &'static str,
    argo: &'static str,
    /// Text Argo CD's message must contain.
    message: String,
}

fn case(name: impl Into<String>, object: Value, kstatus: &'static str, argo: &'static str) -> Case {
    Case {
        name: name.into(),
        object,
        kstatus,
        argo,
        message: String::new(),
    }
}

impl Case {
    fn message(mut self, text: impl Into<String>) -> Self {
        self.message = text.into();
        self
    }
}

fn failed_result(message: &str) -> TaskResult {
    TaskResult {
        phase: "Failed".into(),
        message: message.into(),
        error: Some(ResultError {
            kind: "connection_failed".into(),
            exit_code: 5,
        }),
        ..TaskResult::default()
    }
}

fn backoff() -> JobEnd {
    JobEnd::Failed {
        reason: "BackoffLimitExceeded".into(),
        message: "Job has reached the specified backoff limit".into(),
    }
}

/// The `default` of `status` in `kind`'s generated CRD.
fn crd_default_status(kind: &str) -> Value {
    let crd = tidemark_operator::crd::all()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .expect("the CRD");
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("a schema");
    schema
        .properties
        .as_ref()
        .and_then(|p| p.get("status"))
        .and_then(|s| s.default.as_ref())
        .map(|d| d.0.clone())
        .unwrap_or_else(|| panic!("{kind}: the CRD has no default status"))
}

/// Every state of one run of `cr`: no status yet, stalled on an invalid spec, running,
/// completed (`completed`), failed (`failed`), its Job deleted mid-run, and a spec edit the
/// operator has not seen yet.
fn run_states<K: ControlledKind>(cr: K, completed: TaskResult, failed: TaskResult) -> Vec<Case> {
    let kind = K::kind(&()).to_string();
    let run = RunId::of(&cr).expect("a run");
    let job = cr.job_name(run).expect("a Job name");
    let mut cases = Vec::new();

    cases.push(
        case(
            format!("{kind} without a status"),
            serde_json::to_value(&cr).expect("json"),
            // kstatus' documented corner case: before the controller writes any condition, a
            // custom resource computes as Current.
            "Current",
            "Progressing",
        )
        .message("Waiting for the Tidemark operator"),
    );

    // What the API server returns before the operator's first status write: the CRD's default
    // status (generation 0 observed, Ready Unknown). Not yet observed, so in progress to both.
    let mut defaulted = serde_json::to_value(&cr).expect("json");
    defaulted["status"] = crd_default_status(&kind);
    cases.push(
        case(
            format!("{kind} with the CRD's default status, not yet observed"),
            defaulted,
            "InProgress",
            "Progressing",
        )
        .message("Waiting for the Tidemark operator to report a status"),
    );

    // An invalid spec, as `validated_run` reports it: the operator's own validation.
    let mut invalid = cr.clone();
    invalid
        .annotations_mut()
        .insert("tidemark.dev/run".into(), "soon".into());
    let problems = tidemark_operator::validate::validate(&invalid);
    let first = problems.first().expect("the run annotation is refused");
    let message = problems
        .iter()
        .map(|p| p.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let stalled = st::stalled(
        &invalid,
        RunId::of(&invalid).ok(),
        first.reason,
        &message,
        NOW,
    );
    cases.push(
        case(
            format!("{kind} stalled on an invalid spec"),
            with_status(&invalid, &stalled),
            "Failed",
            "Degraded",
        )
        .message(format!("InvalidRunAnnotation: {message}")),
    );

    // A referenced Secret is missing, as `check_secrets` reports it.
    let missing = st::stalled(
        &cr,
        Some(run),
        st::REASON_SECRET_NOT_FOUND,
        "Secret 'kafka-credentials' referenced by spec.kafkaCluster.saslSecret not found in namespace kafka-backup",
        NOW,
    );
    cases.push(
        case(
            format!("{kind} stalled on a missing Secret"),
            with_status(&cr, &missing),
            "Failed",
            "Degraded",
        )
        .message("SecretNotFound: Secret 'kafka-credentials'"),
    );

    let running = st::running(&cr, run, &job, NOW);
    let running_object = with_status(&cr, &running);
    let running_cr: K =
        serde_json::from_value(running_object.clone()).expect("a resource with a status");
    cases.push(
        case(
            format!("{kind} running"),
            running_object,
            "InProgress",
            "Progressing",
        )
        .message(format!("JobRunning: Job {job} is running")),
    );

    let (done, ok) = st::finished(
        &running_cr,
        &running,
        &job,
        &JobEnd::Complete,
        Ok(completed),
        LATER,
    );
    assert!(ok, "{kind}: the completed result succeeds");
    let done_object = with_status(&running_cr, &done);
    cases.push(case(
        format!("{kind} completed"),
        done_object.clone(),
        "Current",
        "Healthy",
    ));

    let mut edited = done_object;
    edited["metadata"]["generation"] = json!(2);
    cases.push(
        case(
            format!("{kind} edited, not yet observed"),
            edited,
            "InProgress",
            "Progressing",
        )
        .message("observe generation 2"),
    );

    let (bad, ok) = st::finished(
        &running_cr,
        &running,
        &job,
        &backoff(),
        Ok(failed.clone()),
        LATER,
    );
    assert!(!ok, "{kind}: the failed result fails");
    cases.push(
        case(
            format!("{kind} failed"),
            with_status(&running_cr, &bad),
            "Failed",
            "Degraded",
        )
        .message(format!("ConnectionFailed: {}", failed.message)),
    );

    let (no_result, _) = st::finished(
        &running_cr,
        &running,
        &job,
        &backoff(),
        Err("no terminated worker container was found".into()),
        LATER,
    );
    cases.push(
        case(
            format!("{kind} failed without a result"),
            with_status(&running_cr, &no_result),
            "Failed",
            "Degraded",
        )
        .message("JobFailed: "),
    );

    let deleted = st::job_deleted(&running_cr, &running, &job, LATER);
    cases.push(
        case(
            format!("{kind} with its Job deleted mid-run"),
            with_status(&running_cr, &deleted),
            "Failed",
            "Degraded",
        )
        .message("JobDeleted: "),
    );
    cases
}

fn backup_result(id: &str, complete: bool) -> TaskResult {
    TaskResult {
        phase: if complete { "Completed" } else { "Failed" }.into(),
        operation: Some("backup".into()),
        message: format!("Backup {id}: 1000 records in 3 partitions of 1 topic"),
        backup: Some(ResultBackup {
            backup_id: id.into(),
            complete,
            topics: 1,
            partitions: 3,
            records: 1000,
            bytes: 100_000,
            stored_bytes: 30_000,
            segments: 3,
            groups_captured: 1,
            ..ResultBackup::default()
        }),
        error: (!complete).then(|| ResultError {
            kind: "storage_unreachable".into(),
            exit_code: 7,
        }),
        ..TaskResult::default()
    }
}

fn backup_cases() -> Vec<Case> {
    let cr: KafkaBackup = sample("kafkabackup-one-shot-pvc.yaml");
    let mut cases = run_states(
        cr,
        backup_result("orders-snapshot-g1-r0", true),
        failed_result("failed to connect to Kafka at kafka-0.kafka:9092: timed out"),
    );
    cases.extend(scheduled_cases());
    cases.extend(drill_cases());
    cases
}

/// `status.lastDrill` of a drill that verified the backup (`reason` DrillSucceeded) or failed
/// with `reason`.
fn last_drill(verified: bool, reason: &str, message: &str) -> Value {
    json!({"time": "2024-12-01T04:05:00Z", "jobName": "orders-drilled-kb-drill-1-1a2b3c4d",
           "drillId": "1-1a2b3c4d", "backupId": "orders-drilled-1a2b3c4d-28885800",
           "records": 1200, "bytes": 480000, "partitions": 6, "verified": verified,
           "rtoSeconds": 12.5, "rpoSeconds": 3600.0, "throughput": 38400,
           "reason": reason, "message": message})
}

/// A KafkaBackup with restore drills, after its newest drill verified the backup, failed, or
/// exceeded `maxRpoSeconds`: a failed drill makes an otherwise ready backup Failed (kstatus)
/// and Degraded (Argo CD) until a drill succeeds; a backup running meanwhile is in progress.
fn drill_cases() -> Vec<Case> {
    let cr: KafkaBackup = sample("kafkabackup-drill.yaml");
    let run = RunId::of(&cr).expect("run");
    let cron: k8s_openapi::api::batch::v1::CronJob = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "orders-drilled-1a2b3c4d", "namespace": "kafka-backup"},
        "spec": {"schedule": "0 */6 * * *", "jobTemplate": {"spec": {"template": {}}}},
        "status": {"lastScheduleTime": "2024-12-01T06:00:00Z"}
    }))
    .expect("cron job");
    let after = |last: Value| -> KafkaBackup {
        let mut value = serde_json::to_value(&cr).expect("json");
        value["status"] = json!({"lastDrill": last});
        serde_json::from_value(value).expect("a KafkaBackup with a status")
    };
    let running_job: k8s_openapi::api::batch::v1::Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "orders-drilled-1a2b3c4d-28885806", "namespace": "kafka-backup",
                     "creationTimestamp": "2024-12-01T06:00:00Z",
                     "labels": {"tidemark.dev/run": "g1-r0"}},
        "spec": {"template": {"spec": {"containers": [{"name": "tidemark"}]}}},
        "status": {"startTime": "2024-12-01T06:00:02Z"}
    }))
    .expect("job");
    let failed =
        "drill Job orders-drilled-kb-drill-1-1a2b3c4d failed: 2 partitions differ from the backup";
    let over = "drill 1-1a2b3c4d of backup orders-drilled-1a2b3c4d-28885800: the newest backed-up record was 40000 s old, over spec.drill.maxRpoSeconds 28800";
    let mut cases = Vec::new();
    for (name, last, newest, kstatus, argo, message) in [
        (
            "its last drill verified",
            last_drill(
                true,
                "DrillSucceeded",
                "drill 1-1a2b3c4d verified 1200 records",
            ),
            None,
            "Current",
            "Healthy",
            "Scheduled: ".to_string(),
        ),
        (
            "its last drill failed",
            last_drill(false, "DrillFailed", failed),
            None,
            "Failed",
            "Degraded",
            format!("DrillFailed: {failed}"),
        ),
        (
            "its last drill over maxRpoSeconds",
            last_drill(false, "DrillRpoExceeded", over),
            None,
            "Failed",
            "Degraded",
            format!("DrillRpoExceeded: {over}"),
        ),
        (
            "a backup running after a failed drill",
            last_drill(false, "DrillFailed", failed),
            Some(&running_job),
            "InProgress",
            "Progressing",
            "JobRunning: ".to_string(),
        ),
    ] {
        let cr = after(last);
        let seen = Observed {
            cron_job: &cron,
            newest,
            ended: None,
        };
        let status = scheduled_status(&cr, run, seen, NOW).0;
        cases.push(
            case(
                format!("KafkaBackup with drills, {name}"),
                with_status(&cr, &status),
                kstatus,
                argo,
            )
            .message(message),
        );
    }

    // A one-shot backup that completed, then its drill failed.
    let mut once = cr.clone();
    once.spec.schedule = None;
    let job = once.job_name(run).expect("a Job name");
    let running = st::running(&once, run, &job, NOW);
    let (mut done, ok) = st::finished(
        &once,
        &running,
        &job,
        &JobEnd::Complete,
        Ok(backup_result(&job, true)),
        LATER,
    );
    assert!(ok);
    done.last_drill =
        Some(serde_json::from_value(last_drill(false, "DrillFailed", failed)).expect("lastDrill"));
    drill::apply_health(&once, &mut done, LATER);
    cases.push(
        case(
            "KafkaBackup completed once, then its drill failed",
            with_status(&once, &done),
            "Failed",
            "Degraded",
        )
        .message(format!("DrillFailed: {failed}")),
    );
    cases
}

/// A scheduled KafkaBackup between and during runs ([`scheduled_status`]).
fn scheduled_cases() -> Vec<Case> {
    let cr: KafkaBackup = sample("kafkabackup-daily-s3.yaml");
    let run = RunId::of(&cr).expect("run");
    let cron: k8s_openapi::api::batch::v1::CronJob = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "payments-nightly-1a2b3c4d", "namespace": "kafka-backup"},
        "spec": {"schedule": "0 2 * * *", "jobTemplate": {"spec": {"template": {}}}},
        "status": {"lastScheduleTime": "2024-12-01T02:00:00Z"}
    }))
    .expect("cron job");
    let job = |name: &str, end: Option<(&str, &str)>| -> k8s_openapi::api::batch::v1::Job {
        let mut status = json!({"startTime": "2024-12-01T02:00:03Z"});
        if let Some((type_, reason)) = end {
            status["conditions"] = json!([{"type": type_, "status": "True", "reason": reason,
                "message": format!("{reason} happened"),
                "lastTransitionTime": "2024-12-01T02:20:00Z"}]);
            if type_ == "Complete" {
                status["completionTime"] = json!("2024-12-01T02:20:00Z");
            }
        }
        serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "kafka-backup",
                         "creationTimestamp": "2024-12-01T02:00:00Z",
                         "labels": {"tidemark.dev/run": "g1-r0"}},
            "spec": {"template": {"spec": {"containers": [{"name": "tidemark"}]}}},
            "status": status
        }))
        .expect("job")
    };
    let name = "payments-nightly-1a2b3c4d-28885800";
    let mut cases = Vec::new();

    let idle = |cr: &KafkaBackup, seen: Observed<'_>| scheduled_status(cr, run, seen, NOW).0;
    let waiting = idle(
        &cr,
        Observed {
            cron_job: &cron,
            newest: None,
            ended: None,
        },
    );
    cases.push(
        case(
            "KafkaBackup scheduled, none run yet",
            with_status(&cr, &waiting),
            "Current",
            "Healthy",
        )
        .message("Scheduled: backups run on schedule '0 2 * * *'"),
    );

    let running_job = job(name, None);
    let running = idle(
        &cr,
        Observed {
            cron_job: &cron,
            newest: Some(&running_job),
            ended: None,
        },
    );
    cases.push(
        case(
            "KafkaBackup scheduled, a backup running",
            with_status(&cr, &running),
            "InProgress",
            "Progressing",
        )
        .message(format!("JobRunning: Job {name} is running")),
    );

    let done_job = job(name, Some(("Complete", "CompletionsReached")));
    let shard = |result: TaskResult| {
        vec![ShardResult {
            index: 0,
            result: Ok(result),
        }]
    };
    let done = idle(
        &cr,
        Observed {
            cron_job: &cron,
            newest: Some(&done_job),
            ended: Some((
                &done_job,
                JobEnd::Complete,
                shard(backup_result(name, true)),
            )),
        },
    );
    cases.push(
        case(
            "KafkaBackup scheduled, idle after a successful backup",
            with_status(&cr, &done),
            "Current",
            "Healthy",
        )
        .message("BackupCompleted: "),
    );

    let failed_job = job(name, Some(("Failed", "BackoffLimitExceeded")));
    let failed = idle(
        &cr,
        Observed {
            cron_job: &cron,
            newest: Some(&failed_job),
            ended: Some((&failed_job, backoff(), shard(backup_result(name, false)))),
        },
    );
    cases.push(
        case(
            "KafkaBackup scheduled, its last backup failed",
            with_status(&cr, &failed),
            "Failed",
            "Degraded",
        )
        .message(format!("StorageUnreachable: backup {name} failed")),
    );

    let mut suspended_cr = cr.clone();
    suspended_cr.spec.suspend = true;
    let suspended = idle(
        &suspended_cr,
        Observed {
            cron_job: &cron,
            newest: Some(&done_job),
            ended: None,
        },
    );
    cases.push(
        case(
            "KafkaBackup with its schedule suspended",
            with_status(&suspended_cr, &suspended),
            "Current",
            "Suspended",
        )
        .message("Suspended: backups on schedule '0 2 * * *'"),
    );
    cases
}

fn restore_cases() -> Vec<Case> {
    let cr: KafkaRestore = sample("kafkarestore-full.yaml");
    let completed = TaskResult {
        phase: "Completed".into(),
        operation: Some("restore".into()),
        message: "Restored 1000 records".into(),
        restore: Some(ResultRestore {
            restore_id: "kr-0b5c1c2e".into(),
            complete: true,
            topics: 1,
            partitions: 3,
            records_total: 1000,
            records_restored: 1000,
            bytes_total: 100_000,
            bytes_restored: 100_000,
            ..ResultRestore::default()
        }),
        ..TaskResult::default()
    };
    let mut cases = run_states(
        cr.clone(),
        completed.clone(),
        failed_result("failed to connect to Kafka at kafka-0.kafka:9092: timed out"),
    );

    // A spec edit after a completed restore is recorded, not run: the new generation is
    // observed, and the resource stays healthy.
    let run = RunId::of(&cr).expect("run");
    let job = cr.job_name(run).expect("job");
    let running = st::running(&cr, run, &job, NOW);
    let (done, _) = st::finished(&cr, &running, &job, &JobEnd::Complete, Ok(completed), LATER);
    let mut edited = cr.clone();
    edited.status = Some(done);
    edited.metadata.generation = Some(2);
    let run = RunId::of(&edited).expect("run");
    let settled = tidemark_operator::controller::restore::settled(&edited, run)
        .expect("a completed restore settles");
    cases.push(case(
        "KafkaRestore edited after it completed",
        with_status(&edited, &settled),
        "Current",
        "Healthy",
    ));
    cases
}

fn reset_cases() -> Vec<Case> {
    let cr: KafkaOffsetReset = sample("kafkaoffsetreset-shift-by.yaml");
    let completed = TaskResult {
        phase: "Completed".into(),
        operation: Some("reset".into()),
        snapshot_id: Some("rewind-billing-before-reset".into()),
        message: "Reset 1 group".into(),
        ..TaskResult::default()
    };
    run_states(
        cr,
        completed,
        failed_result("failed to connect to Kafka at kafka.kafka.svc:9092: timed out"),
    )
}

fn rollback_cases() -> Vec<Case> {
    let cr: KafkaOffsetRollback = sample("kafkaoffsetrollback-rollback.yaml");
    let completed = TaskResult {
        phase: "Completed".into(),
        operation: Some("rollback".into()),
        snapshot_id: Some("before-change".into()),
        message: "Rolled back 1 group".into(),
        groups_rolled_back: Some(1),
        groups_failed: Some(0),
        ..TaskResult::default()
    };
    let run = RunId::of(&cr).expect("a run");
    let mut cases = run_states(
        cr.clone(),
        completed,
        failed_result("failed to connect to Kafka at kafka.kafka.svc:9092: timed out"),
    );
    // Applied with the snapshot it names: waiting for it, then giving up on it.
    let waiting =
        rollback::waiting_for_snapshot(&cr, run, "snapshot 'before-change' is being taken", NOW);
    cases.push(
        case(
            "KafkaOffsetRollback waiting for its snapshot",
            with_status(&cr, &waiting),
            "InProgress",
            "Progressing",
        )
        .message("WaitingForSnapshot: snapshot 'before-change' is being taken"),
    );
    let gave_up =
        rollback::snapshot_not_taken(&cr, run, "snapshot 'before-change' was not taken", LATER);
    cases.push(
        case(
            "KafkaOffsetRollback whose snapshot was not taken",
            with_status(&cr, &gave_up),
            "Failed",
            "Degraded",
        )
        .message("SnapshotNotTaken: snapshot 'before-change' was not taken"),
    );
    cases
}

/// A `Manual` run of `cr` (planned by planning Job `job` with `plan`): planning, waiting for
/// approval (Argo CD `Suspended`; kstatus InProgress, as Ready is False), refused by its run and
/// planned again, and a failed planning Job.
fn approval_states<K: ControlledKind>(cr: K, plan: ResultPlan) -> Vec<Case> {
    let kind = K::kind(&()).to_string();
    let run = RunId::of(&cr).expect("a run");
    let job = format!("{}-plan1", cr.job_name(run).expect("a Job name"));
    let planning = approval::planning_status(&cr, run, 1, &job, NOW);
    let awaiting = approval::awaiting_status(&cr, &planning, &plan, None, LATER);
    let invalidated =
        approval::invalidated_status(&cr, &awaiting, run, "the cluster changed", LATER);
    let failed = approval::plan_failed_status(&cr, &planning, "planning Job failed", LATER);
    vec![
        case(
            format!("{kind} planning"),
            with_status(&cr, &planning),
            "InProgress",
            "Progressing",
        )
        .message("Planning: Job"),
        case(
            format!("{kind} awaiting approval"),
            with_status(&cr, &awaiting),
            "InProgress",
            "Suspended",
        )
        .message(format!("PlanReady: plan {} is ready", plan.hash)),
        case(
            format!("{kind} whose run refused its plan"),
            with_status(&cr, &invalidated),
            "InProgress",
            "Progressing",
        )
        .message("PlanInvalidated: the run refused plan"),
        case(
            format!("{kind} whose planning Job failed"),
            with_status(&cr, &failed),
            "Failed",
            "Degraded",
        )
        .message("PlanFailed: planning Job failed"),
    ]
}

fn approval_cases() -> Vec<Case> {
    let plan = ResultPlan {
        hash: "3f9a1c0e5b7d2e48".into(),
        key: "plans/u/g1-r0-1.json".into(),
        created: NOW.into(),
        summary: "reset 1 group on 6 partitions".into(),
        groups: 1,
        offsets: 6,
        ..ResultPlan::default()
    };
    let mut cases = approval_states(
        sample::<KafkaOffsetReset>("kafkaoffsetreset-approved.yaml"),
        plan.clone(),
    );
    let mut rollback: KafkaOffsetRollback = sample("kafkaoffsetrollback-rollback.yaml");
    rollback.spec.approval = Approval::Manual;
    cases.extend(approval_states(rollback, plan.clone()));
    let mut restore: KafkaRestore = sample("kafkarestore-pitr-new-topic.yaml");
    restore.spec.approval = Approval::Manual;
    cases.extend(approval_states(restore, plan));
    cases
}

fn all_cases() -> Vec<Case> {
    let mut cases = backup_cases();
    cases.extend(restore_cases());
    cases.extend(reset_cases());
    cases.extend(rollback_cases());
    cases.extend(approval_cases());
    cases
}

// ---------------------------------------------------------------------------------------------
// kstatus

/// kstatus' `status.Compute` for a custom resource, with its message.
fn kstatus(obj: &Value) -> (&'static str, String) {
    // checkGenericProperties: deletion first.
    if obj["metadata"]["deletionTimestamp"]
        .as_str()
        .is_some_and(|t| !t.is_empty())
    {
        return ("Terminating", "Resource scheduled for deletion".into());
    }
    // checkGeneration: only when both fields exist.
    if let (Some(generation), Some(observed)) = (
        obj["metadata"]["generation"].as_i64(),
        obj["status"]["observedGeneration"].as_i64(),
    ) {
        if observed != generation {
            return (
                "InProgress",
                format!(
                    "{} generation is {generation}, but latest observed generation is {observed}",
                    obj["kind"].as_str().unwrap_or("")
                ),
            );
        }
    }
    let conditions = obj["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // The standard conditions, in the order they are listed.
    for c in &conditions {
        let message = c["message"].as_str().unwrap_or("").to_string();
        match (c["type"].as_str(), c["status"].as_str()) {
            (Some("Reconciling"), Some("True")) => return ("InProgress", message),
            (Some("Stalled"), Some("True")) => return ("Failed", message),
            _ => {}
        }
    }
    // No type-specific rules for custom kinds; then checkReadyCondition.
    for c in &conditions {
        if c["type"] != "Ready" {
            continue;
        }
        let message = c["message"].as_str().unwrap_or("").to_string();
        match c["status"].as_str() {
            Some("True") => return ("Current", "Resource is Ready".into()),
            Some("False") | Some("Unknown") => return ("InProgress", message),
            _ => {}
        }
    }
    ("Current", "Resource is current".into())
}

#[test]
fn kstatus_reads_every_state_of_every_kind_as_expected() {
    let cases = all_cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let (status, message) = kstatus(&c.object);
        if status != c.kstatus {
            failures.push(format!(
                "{}: kstatus {status} ({message}), expected {}",
                c.name, c.kstatus
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn kstatus_sees_deletion_and_the_generation_first() {
    let cr: KafkaOffsetRollback = sample("kafkaoffsetrollback-rollback.yaml");
    let run = RunId::of(&cr).expect("run");
    let mut obj = with_status(&cr, &st::running(&cr, run, "j", NOW));
    obj["metadata"]["deletionTimestamp"] = json!("2024-12-01T12:30:00Z");
    assert_eq!(kstatus(&obj).0, "Terminating");
    obj["metadata"]["deletionTimestamp"] = Value::Null;
    obj["metadata"]["generation"] = json!(3);
    let (status, message) = kstatus(&obj);
    assert_eq!(status, "InProgress");
    assert_eq!(
        message,
        "KafkaOffsetRollback generation is 3, but latest observed generation is 1"
    );
}

/// What kstatus needs from a status, checked on every status the operator writes: the
/// generation it describes, each of `Ready`, `Reconciling` and `Stalled` exactly once with
/// `True` or `False`, never Reconciling and Stalled at once, Ready only when neither, and each
/// condition stamped with the generation and an RFC 3339 transition time.
#[test]
fn every_status_is_kstatus_friendly() {
    for c in all_cases() {
        let Some(status) = c.object.get("status") else {
            continue;
        };
        if status["observedGeneration"] == 0 {
            // The CRD's default status, not one the operator writes.
            continue;
        }
        let generation = c.object["metadata"]["generation"].as_i64();
        let observed = status["observedGeneration"].as_i64();
        assert!(observed.is_some(), "{}: no observedGeneration", c.name);
        let conditions = status["conditions"].as_array().expect("conditions");
        let value = |t: &str| {
            let found: Vec<&Value> = conditions.iter().filter(|x| x["type"] == t).collect();
            assert_eq!(found.len(), 1, "{}: {t} once in {conditions:?}", c.name);
            let s = found[0]["status"].as_str().expect("status");
            assert!(s == "True" || s == "False", "{}: {t}={s}", c.name);
            assert!(
                found[0]["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "{}: {t} has a reason",
                c.name
            );
            let time = found[0]["lastTransitionTime"].as_str().expect("time");
            assert!(
                chrono::DateTime::parse_from_rfc3339(time).is_ok(),
                "{}: {time}",
                c.name
            );
            assert_eq!(
                found[0]["observedGeneration"].as_i64(),
                observed,
                "{}: {t} observedGeneration",
                c.name
            );
            s == "True"
        };
        let (ready, reconciling, stalled) =
            (value("Ready"), value("Reconciling"), value("Stalled"));
        assert!(!(reconciling && stalled), "{}", c.name);
        assert!(!ready || (!reconciling && !stalled), "{}", c.name);
        if !c.name.contains("not yet observed") {
            assert_eq!(observed, generation, "{}", c.name);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Argo CD

/// `value` as a Lua table constructor (JSON null: nil).
fn lua_literal(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("nil"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => lua_string(s, out),
        Value::Array(items) => {
            out.push('{');
            for item in items {
                lua_literal(item, out);
                out.push(',');
            }
            out.push('}');
        }
        Value::Object(map) => {
            out.push('{');
            for (k, v) in map {
                if v.is_null() {
                    continue;
                }
                out.push('[');
                lua_string(k, out);
                out.push_str("]=");
                lua_literal(v, out);
                out.push(',');
            }
            out.push('}');
        }
    }
}

fn lua_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\{}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Runs the health script on each object, as Argo CD does: `obj` a global, the chunk's return
/// value the health. Returns `(status, message)` per object.
fn argo_health(script: &Path, objects: &[&Value]) -> Vec<(String, String)> {
    let lua = std::env::var("TIDEMARK_LUA").unwrap_or_else(|_| "lua5.4".into());
    let mut harness = String::from(
        "-- Argo CD runs health scripts without the standard libraries but base and table:\n\
         -- strings get no methods, and only these globals exist.\n\
         getmetatable('').__index = nil\n\
         local script = ...\n\
         local base = {'assert', 'error', 'ipairs', 'next', 'pairs', 'pcall', 'rawequal',\n\
                       'rawget', 'rawset', 'select', 'tonumber', 'tostring', 'type'}\n\
         local objects = {\n",
    );
    for obj in objects {
        harness.push_str("  ");
        lua_literal(obj, &mut harness);
        harness.push_str(",\n");
    }
    harness.push_str(
        "}\n\
         local out = io.stdout\n\
         for _, obj in ipairs(objects) do\n\
           local env = { obj = obj, table = table }\n\
           for _, name in ipairs(base) do env[name] = _G[name] end\n\
           local chunk = assert(loadfile(script, 't', env))\n\
           local hs = chunk()\n\
           assert(type(hs) == 'table', 'the script returned no table')\n\
           out:write(tostring(hs.status), '\\t', tostring(hs.message or ''), '\\n')\n\
         end\n",
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let harness_path = dir.path().join("harness.lua");
    std::fs::write(&harness_path, harness).expect("write the harness");
    let output = match Command::new(&lua).arg(&harness_path).arg(script).output() {
        Ok(output) => output,
        Err(e) => panic!(
            "failed to run {lua} ({e}); install Debian's lua5.4 (apt-get install lua5.4, as \
             scripts/install-test-tools.sh does) or set TIDEMARK_LUA to a Lua 5.4 interpreter"
        ),
    };
    assert!(
        output.status.success(),
        "{lua} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let results: Vec<(String, String)> = stdout
        .lines()
        .map(|l| {
            let (s, m) = l.split_once('\t').unwrap_or((l, ""));
            (s.to_string(), m.to_string())
        })
        .collect();
    assert_eq!(results.len(), objects.len(), "{stdout}");
    results
}

fn script() -> PathBuf {
    repo().join("docs/gitops/argocd-health.lua")
}

#[test]
fn argo_cd_health_of_every_state_of_every_kind() {
    let cases = all_cases();
    let objects: Vec<&Value> = cases.iter().map(|c| &c.object).collect();
    let results = argo_health(&script(), &objects);
    let mut failures = Vec::new();
    for (c, (status, message)) in cases.iter().zip(&results) {
        if status != c.argo || !message.contains(&c.message) {
            failures.push(format!(
                "{}: {status} '{message}', expected {} with '{}'",
                c.name, c.argo, c.message
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every health Argo CD can show for these kinds is reached.
    for health in ["Healthy", "Progressing", "Degraded", "Suspended"] {
        assert!(
            results.iter().any(|(s, _)| s == health),
            "no state is {health}"
        );
    }
}

#[test]
fn argo_cd_health_of_statuses_the_operator_never_writes_is_safe() {
    let objects = [
        json!({"kind": "KafkaBackup", "metadata": {"generation": 1}, "status": {}}),
        json!({"kind": "KafkaBackup", "metadata": {"generation": 1},
               "status": {"phase": "Pending"}}),
        json!({"kind": "KafkaRestore", "metadata": {"generation": 1},
               "status": {"phase": "Failed", "observedGeneration": 1}}),
        json!({"kind": "KafkaRestore", "status": {"phase": "Completed",
               "conditions": [{"type": "Ready", "status": "True"}]}}),
        // A failed drill without the Stalled the operator adds: still Degraded.
        json!({"kind": "KafkaBackup", "status": {"phase": "Scheduled",
               "conditions": [{"type": "Ready", "status": "True"},
                              {"type": "DrillVerified", "status": "False",
                               "reason": "DrillFailed", "message": "2 partitions differ"}]}}),
    ];
    let refs: Vec<&Value> = objects.iter().collect();
    let results = argo_health(&script(), &refs);
    let statuses: Vec<&str> = results.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        statuses,
        [
            "Progressing",
            "Progressing",
            "Degraded",
            "Healthy",
            "Degraded"
        ]
    );
    assert_eq!(results[1].1, "Phase Pending");
    assert_eq!(results[3].1, "Ready");
    assert_eq!(results[4].1, "DrillFailed: 2 partitions differ");
}

/// The ```yaml blocks of a Markdown text.
fn yaml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_start() == "```yaml" => current = Some(String::new()),
            Some(block) if line.trim_start() == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn the_gitops_guide_installs_the_tested_script_for_every_kind() {
    let guide = std::fs::read_to_string(repo().join("docs/gitops.md")).expect("docs/gitops.md");
    let script = std::fs::read_to_string(script()).expect("script");
    let argocd_cm = yaml_blocks(&guide)
        .into_iter()
        .find(|b| b.contains("name: argocd-cm") && b.contains("resource.customizations.health."))
        .expect("docs/gitops.md shows the argocd-cm entries");
    let cm: Value = serde_yaml_ng::from_str(&argocd_cm).expect("the argocd-cm block is YAML");
    assert_eq!(cm["kind"], "ConfigMap");
    for kind in [
        "KafkaBackup",
        "KafkaRestore",
        "KafkaOffsetReset",
        "KafkaOffsetRollback",
    ] {
        let key = format!("resource.customizations.health.tidemark.dev_{kind}");
        // Copying the block installs exactly the script tested here, for each kind.
        assert_eq!(
            cm["data"][&key].as_str(),
            Some(script.as_str()),
            "docs/gitops.md: {key} is not docs/gitops/argocd-health.lua"
        );
    }
    // The wildcard form (resource.customizations) carries the same script.
    let wildcard = yaml_blocks(&guide)
        .into_iter()
        .find(|b| b.contains("tidemark.dev/*"))
        .expect("docs/gitops.md shows the wildcard form");
    let cm: Value = serde_yaml_ng::from_str(&wildcard).expect("YAML");
    let nested: Value = serde_yaml_ng::from_str(
        cm["data"]["resource.customizations"]
            .as_str()
            .expect("resource.customizations"),
    )
    .expect("resource.customizations is YAML");
    assert_eq!(
        nested["tidemark.dev/*"]["health.lua"].as_str(),
        Some(script.as_str())
    );
}

//! Scenarios of plan, then approve (`spec.approval: Manual`) on a KafkaOffsetReset: the planning
//! Job, AwaitingApproval, an approval for another hash ignored (one Warning Event, no Job), the
//! right hash running the plan to Succeeded, an expired plan and a refused plan (exit 15)
//! planned again, a spec change planning again, and the annotation on an Automatic resource
//! changing nothing.

use kube::runtime::controller::Action;
use serde_json::json;

use super::*;
use crate::build::fixtures::*;
use crate::build::RunId;
use crate::controller::approval::{awaiting_status, planning_status};
use crate::controller::{POD_START_POLL, RUNNING_POLL};
use crate::crd::approval::APPROVE_ANNOTATION;
use crate::crd::KafkaOffsetReset;
use tidemark_task::ResultPlan;

const KIND: &str = "KafkaOffsetReset";
const NOW: &str = "2024-12-01T12:00:00Z";
const HASH: &str = "3f9a1c0e5b7d2e48";
const OTHER: &str = "0000000000000000";
const RUN: RunId = RunId {
    generation: 1,
    run: 0,
};

fn event(type_: &'static str, reason: &'static str) -> Call {
    super::event(KIND, type_, reason)
}

/// The sample Manual reset, as the API server returns it, with `approve` annotated.
fn manual(approve: Option<&str>) -> KafkaOffsetReset {
    let mut cr = kor(RESET_APPROVED);
    if let Some(value) = approve {
        cr.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(APPROVE_ANNOTATION.into(), value.into());
    }
    cr
}

fn uid(cr: &KafkaOffsetReset) -> String {
    cr.metadata.uid.clone().expect("uid")
}

/// The worker's result of a planning Job: plan `HASH` under the key of plan `attempt`.
fn plan_result(cr: &KafkaOffsetReset, attempt: i64, created: &str) -> ResultPlan {
    ResultPlan {
        hash: HASH.into(),
        key: format!("plans/{}/g1-r0-{attempt}.json", uid(cr)),
        created: created.into(),
        summary: "reset 1 group on 6 partitions to 2024-12-01T00:00:00.000Z".into(),
        groups: 1,
        offsets: 6,
        active_groups: vec!["fulfilment".into()],
        active_groups_total: 1,
        safety_snapshot_id: Some("rewind-fulfilment-reset-g1-r0-1a2b3c4d".into()),
        ..ResultPlan::default()
    }
}

/// `cr` with the status of planning Job `attempt` running.
fn planning(cr: KafkaOffsetReset, attempt: i64) -> KafkaOffsetReset {
    let job = format!("rewind-fulfilment-kor-g1-r0-plan{attempt}");
    let status = planning_status(&cr, RUN, attempt, &job, NOW);
    KafkaOffsetReset {
        status: Some(status),
        ..cr
    }
}

/// `cr` waiting for the approval of plan `attempt`, which expires at `expires`.
fn awaiting(cr: KafkaOffsetReset, attempt: i64, expires: &str) -> KafkaOffsetReset {
    let planned = planning(cr, attempt);
    let result = plan_result(&planned, attempt, NOW);
    let current = planned.status.clone().expect("status");
    let mut status = awaiting_status(&planned, &current, &result, Some("12h"), NOW);
    if let Some(plan) = status.plan.as_mut() {
        plan.expires = Some(expires.into());
    }
    KafkaOffsetReset {
        status: Some(status),
        ..planned
    }
}

/// The calls that apply planning Job `attempt` of run g1-r0 and write the Planning status.
fn plan_calls(cr: &KafkaOffsetReset, attempt: i64, reason: &'static str) -> Vec<Call> {
    let key = format!("plans/{}/g1-r0-{attempt}.json", uid(cr));
    let job = format!("rewind-fulfilment-kor-g1-r0-plan{attempt}");
    let job_name = job.clone();
    let type_ = if reason == "Planning" {
        "Normal"
    } else {
        "Warning"
    };
    vec![
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path(
                "v1",
                "configmaps",
                &format!("rewind-fulfilment-kor-task-g1-r0-plan{attempt}"),
            ),
            move |body| {
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(task.contains(&format!("planOut: {key}")), "{task}");
                assert!(!task.contains("approvedPlan"), "{task}");
                assert_eq!(
                    body["metadata"]["labels"]["tidemark.dev/plan"],
                    attempt.to_string()
                );
            },
        ),
        apply(path("batch/v1", "jobs", &job), move |body| {
            assert_eq!(body["kind"], "Job");
            assert_eq!(body["metadata"]["labels"]["tidemark.dev/run"], "g1-r0");
            assert_eq!(
                body["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"],
                format!("rewind-fulfilment-kor-task-g1-r0-plan{attempt}")
            );
        }),
        status(cr, move |s| {
            assert_eq!(s["phase"], "Pending");
            assert_eq!(s["run"], "g1-r0");
            assert!(s.get("jobName").is_none(), "no run Job yet: {s}");
            assert_eq!(s["plan"]["attempt"], attempt);
            assert_eq!(s["plan"]["jobName"], job_name.as_str());
            assert!(s["plan"].get("hash").is_none(), "{s}");
            assert_conditions(s, [false, true, false], "Planning");
        }),
        event(type_, reason),
    ]
}

// A new Manual reset runs a planning Job (planOut, nothing changed), not the reset: Pending,
// Reconciling with Planning, an Event.
#[tokio::test]
async fn a_manual_reset_plans_first() {
    let cr = manual(None);
    let calls = plan_calls(&cr, 1, "Planning");
    let (result, _, metrics) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(POD_START_POLL));
    assert_eq!(metrics.job_count(KIND, "created"), 0, "no run Job");
}

// The planning Job ended with a plan: AwaitingApproval with status.plan (hash, key, expiry,
// counts), AwaitingApproval=True, a PlanReady Event saying how to approve; the planning
// ConfigMap is deleted.
#[tokio::test]
async fn a_finished_planning_job_awaits_approval() {
    let cr = planning(manual(None), 1);
    let job = "rewind-fulfilment-kor-g1-r0-plan1";
    let result = json!({
        "phase": "Completed", "operation": "reset", "message": "planned",
        "plan": plan_result(&cr, 1, NOW)
    });
    let key = format!("plans/{}/g1-r0-1.json", uid(&cr));
    let mut calls = ended_job(
        job,
        ("Complete", "CompletionsReached"),
        &[("2024-12-01T12:01:00Z", Some(result))],
    );
    let annotate = format!(
        "kubectl annotate kafkaoffsetreset rewind-fulfilment tidemark.dev/approve={HASH} --overwrite"
    );
    let note = annotate.clone();
    calls.extend([
        status(&cr, move |s| {
            assert_eq!(s["phase"], "AwaitingApproval");
            assert_eq!(s["run"], "g1-r0");
            let plan = &s["plan"];
            assert_eq!(plan["hash"], HASH);
            assert_eq!(plan["key"], key.as_str());
            assert_eq!(plan["created"], NOW);
            assert_eq!(plan["expires"], "2024-12-02T00:00:00Z", "12h later");
            assert_eq!(
                (plan["groups"].clone(), plan["partitions"].clone()),
                (json!(1), json!(6))
            );
            assert_eq!(plan["activeGroups"], json!(["fulfilment"]));
            assert_eq!(
                plan["safetySnapshotId"],
                "rewind-fulfilment-reset-g1-r0-1a2b3c4d"
            );
            assert_conditions(s, [false, false, false], "PlanReady");
            assert_condition(s, "AwaitingApproval", "True", "PlanReady");
            let message = condition(s, "Ready")["message"].as_str().expect("text");
            assert!(message.contains(&annotate), "{message}");
        }),
        event("Normal", "PlanReady").check(move |body, _| {
            let text = body["note"].as_str().expect("note");
            assert!(text.contains(&note), "{text}");
        }),
        Call::new(
            Method::DELETE,
            path("v1", "configmaps", "rewind-fulfilment-kor-task-g1-r0-plan1"),
            not_found("configmaps", "x"),
        ),
    ]);
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(
        result.expect("reconciled"),
        Action::requeue(std::time::Duration::from_secs(3600))
    );
}

// A planning Job still running is only read; one whose pod waits for a missing Secret stalls
// the run (the Job kept), and once the Secret is fixed the run is Planning again.
#[tokio::test]
async fn a_planning_pod_waiting_for_a_secret_stalls_the_run_until_it_starts() {
    let cr = planning(manual(None), 1);
    let job = "rewind-fulfilment-kor-g1-r0-plan1";
    let running = json!({"running": {"startedAt": "2024-12-01T12:00:05Z"}});
    let calls = vec![
        get(path("batch/v1", "jobs", job), job_reply(job, None)),
        waiting_pods_call(job, "Running", running.clone()),
    ];
    let (result, _, _) = scenario(cr.clone(), calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(POD_START_POLL));

    let kubelet = "secret \"s3-credentials\" not found";
    let calls = vec![
        get(path("batch/v1", "jobs", job), job_reply(job, None)),
        waiting_pods_call(job, "Pending", config_error(kubelet)),
        status(&cr, move |s| {
            assert_eq!(s["phase"], "Pending");
            assert_eq!(s["plan"]["jobName"], job);
            assert_conditions(s, [false, false, true], "SecretNotFound");
            let message = condition(s, "Stalled")["message"].as_str().expect("text");
            assert!(message.contains(kubelet), "{message}");
        }),
        event("Warning", "SecretNotFound"),
    ];
    let (result, _, _) = scenario(cr.clone(), calls).await;
    assert_eq!(
        result.expect("reconciled"),
        Action::requeue(crate::controller::SECRET_POLL)
    );

    // Fixed: Planning again.
    let mut stalled = cr;
    if let Some(s) = stalled.status.as_mut() {
        let problem = crate::controller::status::SecretProblem {
            pod: format!("{job}-x7k2p"),
            reason: "SecretNotFound",
            secret: "s3-credentials".into(),
            kubelet_message: kubelet.into(),
        };
        s.common.conditions =
            crate::controller::status::secret_conditions(&manual(None), job, &problem, None, NOW);
    }
    let calls = vec![
        get(path("batch/v1", "jobs", job), job_reply(job, None)),
        waiting_pods_call(job, "Running", running),
        status(&stalled, |s| {
            assert_eq!(s["phase"], "Pending");
            assert_conditions(s, [false, true, false], "Planning");
        }),
        event("Normal", "PodStarting"),
    ];
    let (result, _, _) = scenario(stalled, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(POD_START_POLL));
}

// A planning Job that fails fails the run with PlanFailed (Stalled), nothing changed.
#[tokio::test]
async fn a_failed_planning_job_fails_the_run() {
    let cr = planning(manual(None), 1);
    let job = "rewind-fulfilment-kor-g1-r0-plan1";
    let result = json!({
        "phase": "Failed", "operation": "reset", "message": "failed to connect to Kafka",
        "error": {"kind": "connection", "exitCode": 5}
    });
    let mut calls = ended_job(
        job,
        ("Failed", "BackoffLimitExceeded"),
        &[("2024-12-01T12:01:00Z", Some(result))],
    );
    calls.extend([
        status(&cr, |s| {
            assert_eq!(s["phase"], "Failed");
            assert_eq!(s["jobName"], "rewind-fulfilment-kor-g1-r0-plan1");
            assert_conditions(s, [false, false, true], "PlanFailed");
            let message = condition(s, "Ready")["message"].as_str().expect("text");
            assert!(message.contains("failed to connect to Kafka"), "{message}");
            assert!(message.contains("Nothing was changed"), "{message}");
        }),
        event("Warning", "PlanFailed"),
        Call::new(
            Method::DELETE,
            path("v1", "configmaps", "rewind-fulfilment-kor-task-g1-r0-plan1"),
            not_found("configmaps", "x"),
        ),
    ]);
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
}

// An approval naming another hash is ignored: recorded, one Warning Event, no Job. The same
// value again writes and publishes nothing.
#[tokio::test]
async fn an_approval_of_another_hash_is_ignored_once() {
    let cr = awaiting(manual(Some(OTHER)), 1, "2099-01-01T00:00:00Z");
    let calls = vec![
        status(&cr, |s| {
            assert_eq!(s["phase"], "AwaitingApproval");
            assert_eq!(s["plan"]["ignoredApproval"], OTHER);
            assert_eq!(s["plan"]["hash"], HASH);
        }),
        event("Warning", "ApprovalIgnored").check(|body, _| {
            let text = body["note"].as_str().expect("note");
            assert!(text.contains(OTHER) && text.contains(HASH), "{text}");
        }),
    ];
    let (result, _, metrics) = scenario(cr.clone(), calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(POD_START_POLL));
    assert_eq!(metrics.job_count(KIND, "created"), 0);

    let mut warned = cr;
    if let Some(plan) = warned.status.as_mut().and_then(|s| s.plan.as_mut()) {
        plan.ignored_approval = Some(OTHER.into());
    }
    let (result, _, _) = scenario(warned, vec![]).await;
    assert_eq!(
        result.expect("reconciled"),
        Action::requeue(std::time::Duration::from_secs(3600)),
        "waits, no call"
    );
}

// Waiting without an approval makes no call.
#[tokio::test]
async fn a_plan_waiting_for_approval_makes_no_call() {
    let cr = awaiting(manual(None), 1, "2099-01-01T00:00:00Z");
    let (result, _, _) = scenario(cr, vec![]).await;
    assert_eq!(
        result.expect("reconciled"),
        Action::requeue(std::time::Duration::from_secs(3600))
    );
}

// The right hash runs exactly that plan: an Event, the run's task with approvedPlan {key, hash},
// a Job of its own for plan 1, Running with the plan kept; then Succeeded.
#[tokio::test]
async fn the_approved_hash_runs_the_plan_to_success() {
    let cr = awaiting(manual(Some(HASH)), 1, "2099-01-01T00:00:00Z");
    let key = format!("plans/{}/g1-r0-1.json", uid(&cr));
    let job = "rewind-fulfilment-kor-g1-r0-run1";
    // Its planning Job still holds its result (the operator stopped before releasing it): it
    // is released first.
    let plan_job = "rewind-fulfilment-kor-g1-r0-plan1";
    let held = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": plan_job, "namespace": NS, "uid": "p1an",
                     "resourceVersion": "7", "finalizers": ["tidemark.dev/result"]},
        "status": {"conditions": [{"type": "Complete", "status": "True"}]}
    });
    let calls = vec![
        get(
            path("batch/v1", "jobs", plan_job),
            Reply::Json(StatusCode::OK, held),
        ),
        pods_call(plan_job, &[]),
        Call::new(
            Method::PATCH,
            path("batch/v1", "jobs", plan_job),
            Reply::Echo,
        )
        .check(|body, _| {
            assert_eq!(body["metadata"]["finalizers"], json!([]), "{body}");
            assert_eq!(body["metadata"]["resourceVersion"], "7", "{body}");
        }),
        event("Normal", "PlanApproved"),
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path("v1", "configmaps", "rewind-fulfilment-kor-task-g1-r0"),
            move |body| {
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(task.contains("approvedPlan:"), "{task}");
                assert!(task.contains(&format!("key: {key}")), "{task}");
                assert!(task.contains(&format!("hash: {HASH}")), "{task}");
                assert!(!task.contains("planOut"), "{task}");
            },
        ),
        apply(path("batch/v1", "jobs", job), |_| {}),
        status(&cr, move |s| {
            assert_eq!(s["phase"], "Running");
            assert_eq!(s["jobName"], job);
            assert_eq!(s["plan"]["hash"], HASH, "the approved plan stays shown");
            assert_conditions(s, [false, true, false], "JobRunning");
        }),
        event("Normal", "JobCreated"),
    ];
    let (result, _, metrics) = scenario(cr.clone(), calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
    assert_eq!(metrics.job_count(KIND, "created"), 1);

    // The run Job completes: Succeeded, the plan's hash still in status.plan.
    let mut running = cr;
    let run_status = crate::controller::status::running(&running, RUN, job, NOW);
    running.status = Some(run_status);
    let done = json!({
        "phase": "Completed", "operation": "reset", "message": "1 of 1 groups reset",
        "snapshotId": "rewind-fulfilment-reset-g1-r0-1a2b3c4d",
        "reset": {"dryRun": false, "groupsTotal": 1, "groupsReset": 1, "groupsFailed": 0,
                  "partitionsPlanned": 6, "offsetsReset": 6, "offsetsPerSecond": 100,
                  "totalGroupResults": 1,
                  "groupResults": [{"group": "fulfilment", "status": "reset", "partitions": 6}]},
        "plan": {"hash": HASH, "key": "k", "created": NOW, "summary": "s"}
    });
    let mut calls = ended_job(
        job,
        ("Complete", "CompletionsReached"),
        &[("2024-12-01T13:00:00Z", Some(done))],
    );
    calls.extend([
        status(&running, |s| {
            assert_eq!(s["phase"], "Completed");
            assert_conditions(s, [true, false, false], "OffsetsReset");
            assert_eq!(s["plan"]["hash"], HASH);
            assert_eq!(s["plan"]["partitions"], 6);
        }),
        event("Normal", "JobSucceeded"),
    ]);
    let (result, _, metrics) = scenario(running, calls).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
    assert_eq!(metrics.job_count(KIND, "succeeded"), 1);
}

// A plan not approved before it expires is made again (plan 2, a PlanExpired Event), even when
// its approval comes late.
#[tokio::test]
async fn an_expired_plan_is_planned_again() {
    for approve in [None, Some(HASH)] {
        let cr = awaiting(manual(approve), 1, "2024-12-02T00:00:00Z");
        let calls = plan_calls(&cr, 2, "PlanExpired");
        let (result, _, metrics) = scenario(cr, calls).await;
        assert_eq!(result.expect("reconciled"), Action::requeue(POD_START_POLL));
        assert_eq!(metrics.job_count(KIND, "created"), 0);
    }
}

// The run refuses the approved plan (exit 15, the cluster changed): nothing is recorded as
// failed; plan 2 is made and the run waits again (PlanInvalidated).
#[tokio::test]
async fn a_run_refusing_its_plan_plans_again() {
    let approved = awaiting(manual(Some(HASH)), 1, "2099-01-01T00:00:00Z");
    let job = "rewind-fulfilment-kor-g1-r0-run1";
    let mut running = approved.clone();
    running.status = Some(crate::controller::status::running(&approved, RUN, job, NOW));
    let refused = json!({
        "phase": "Failed", "operation": "reset",
        "message": "group fulfilment has 2 active members now; the plan expected none",
        "error": {"kind": "plan_changed", "exitCode": 15}
    });
    let mut calls = ended_job(
        job,
        ("Failed", "PodFailurePolicy"),
        &[("2024-12-01T13:00:00Z", Some(refused))],
    );
    calls.extend([
        status(&running, |s| {
            assert_eq!(s["phase"], "Pending");
            assert!(s.get("jobName").is_none(), "{s}");
            assert_eq!(s["plan"]["attempt"], 2);
            assert!(s["plan"].get("hash").is_none(), "{s}");
            assert_conditions(s, [false, true, false], "PlanInvalidated");
            let message = condition(s, "Ready")["message"].as_str().expect("text");
            assert!(message.contains("2 active members"), "{message}");
            assert!(message.contains(HASH), "{message}");
        }),
        event("Warning", "PlanInvalidated"),
    ]);
    let (result, _, metrics) = scenario(running.clone(), calls).await;
    assert_eq!(
        result.expect("reconciled"),
        Action::requeue(crate::controller::PREVIOUS_RUN_POLL)
    );
    assert_eq!(metrics.job_count(KIND, "failed"), 0);

    // The next reconcile makes plan 2.
    let status = crate::controller::approval::invalidated_status(
        &running,
        running.status.as_ref().expect("status"),
        RUN,
        "the cluster changed",
        NOW,
    );
    let invalidated = KafkaOffsetReset {
        status: Some(status),
        ..running
    };
    let calls = plan_calls(&invalidated, 2, "Planning");
    let (result, _, _) = scenario(invalidated, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(POD_START_POLL));
}

// A spec change is a new run: the old run's Jobs stop, and the new generation is planned.
#[tokio::test]
async fn a_spec_change_plans_again() {
    let mut cr = awaiting(manual(Some(HASH)), 1, "2099-01-01T00:00:00Z");
    cr.metadata.generation = Some(2);
    let key = format!("plans/{}/g2-r0-1.json", uid(&cr));
    let mut calls = superseded_run(&cr, "g1-r0", not_found("configmaps", "x"));
    calls.extend([
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path("v1", "configmaps", "rewind-fulfilment-kor-task-g2-r0-plan1"),
            move |body| {
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(task.contains(&format!("planOut: {key}")), "{task}");
            },
        ),
        apply(
            path("batch/v1", "jobs", "rewind-fulfilment-kor-g2-r0-plan1"),
            |_| {},
        ),
        status(&cr, |s| {
            assert_eq!(s["run"], "g2-r0");
            assert_eq!(s["phase"], "Pending");
            assert!(s["plan"].get("hash").is_none(), "the old plan is gone: {s}");
        }),
        event("Normal", "Planning"),
    ]);
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(POD_START_POLL));
}

// On an Automatic resource the approval annotation changes nothing: the reset runs at once
// with its usual task and Job, and a finished run is not run again.
#[tokio::test]
async fn the_approval_annotation_on_an_automatic_reset_changes_nothing() {
    let mut cr = kor(RESET_SHIFT_BY);
    cr.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(APPROVE_ANNOTATION.into(), HASH.into());
    let calls = vec![
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path("v1", "configmaps", "rewind-billing-kor-task-g1-r0"),
            |body| {
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(
                    !task.contains("planOut") && !task.contains("approvedPlan"),
                    "{task}"
                );
            },
        ),
        apply(path("batch/v1", "jobs", "rewind-billing-kor-g1-r0"), |_| {}),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Running");
            assert!(s.get("plan").is_none(), "{s}");
        }),
        event("Normal", "JobCreated"),
    ];
    let (result, _, _) = scenario(cr.clone(), calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));

    // Finished (also a finished Manual run): only its Job is read.
    for finished in [cr, manual(Some(HASH))] {
        let job = "rewind-x-kor-g1-r0";
        let done = with_status(finished, "g1-r0", "Completed", job);
        let calls = vec![get(
            path("batch/v1", "jobs", job),
            job_reply(job, Some(("Complete", "CompletionsReached"))),
        )];
        let (result, _, _) = scenario(done, calls).await;
        assert_eq!(result.expect("reconciled"), Action::await_change());
    }
}

// ---------------------------------------------------------------------------------------------
// A KafkaRestore naming a KafkaBackup: planned on the backup resolved then, and run on that same
// backup once approved, even when a newer one completed meanwhile.

const ORDERS_BACKUP: &str = "orders-snapshot-g1-r0-3c9a7e10";
const NEWER_BACKUP: &str = "orders-snapshot-g2-r0-3c9a7e10";

fn get_kafka_backup(id: &str) -> Call {
    get(
        path("tidemark.dev/v1alpha1", "kafkabackups", "orders-snapshot"),
        Reply::Json(
            StatusCode::OK,
            serde_json::to_value(orders_backup(id, "Completed")).expect("kb"),
        ),
    )
}

fn manual_restore() -> crate::crd::KafkaRestore {
    let mut cr = kr(RESTORE_FULL);
    cr.spec.approval = crate::crd::approval::Approval::Manual;
    cr
}

#[tokio::test]
async fn a_manual_restore_plans_its_resolved_backup_and_runs_that_backup_once_approved() {
    let cr = manual_restore();
    let key = format!("plans/{RESTORE_UID}/g1-r0-1.json");
    let calls = vec![
        get_kafka_backup(ORDERS_BACKUP),
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path(
                "v1",
                "configmaps",
                "orders-full-restore-kr-task-g1-r0-plan1",
            ),
            move |body| {
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(task.contains(&format!("planOut: {key}")), "{task}");
                assert!(
                    task.contains(&format!("backupId: {ORDERS_BACKUP}")),
                    "{task}"
                );
            },
        ),
        apply(
            path("batch/v1", "jobs", "orders-full-restore-kr-g1-r0-plan1"),
            |_| {},
        ),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Pending");
            assert_eq!(s["backupId"], ORDERS_BACKUP);
            assert_eq!(s["kafkaBackup"], "orders-snapshot");
            assert_conditions(s, [false, true, false], "Planning");
        }),
        super::event("KafkaRestore", "Normal", "Planning"),
    ];
    let (result, _, _) = scenario(cr.clone(), calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(POD_START_POLL));

    // Planned and approved; a newer backup completed meanwhile: the plan's backup runs.
    let resolved = crate::build::restore::ResolvedRestore {
        restore: cr.clone(),
        backup: crate::build::restore::ResolvedBackup {
            kafka_backup: "orders-snapshot".into(),
            backup_id: ORDERS_BACKUP.into(),
            storage: orders_backup(ORDERS_BACKUP, "Completed").spec.storage,
            encryption: None,
        },
    };
    let job = "orders-full-restore-kr-g1-r0-plan1";
    let planning = planning_status(&resolved, RUN, 1, job, NOW);
    let result = ResultPlan {
        hash: HASH.into(),
        key: format!("plans/{RESTORE_UID}/g1-r0-1.json"),
        created: NOW.into(),
        summary: "restore 1000 records into 6 partitions".into(),
        records: 1000,
        partitions: 6,
        ..ResultPlan::default()
    };
    let mut awaiting = awaiting_status(&resolved, &planning, &result, None, NOW);
    if let Some(plan) = awaiting.plan.as_mut() {
        plan.expires = Some("2099-01-01T00:00:00Z".into());
    }
    let mut approved = cr;
    approved.status = Some(awaiting);
    approved
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(APPROVE_ANNOTATION.into(), HASH.into());
    let calls = vec![
        get_kafka_backup(NEWER_BACKUP),
        get(path("batch/v1", "jobs", job), not_found("jobs", job)),
        super::event("KafkaRestore", "Normal", "PlanApproved"),
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path("v1", "configmaps", "orders-full-restore-kr-task-g1-r0"),
            |body| {
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(
                    task.contains(&format!("backupId: {ORDERS_BACKUP}")),
                    "{task}"
                );
                assert!(task.contains(&format!("hash: {HASH}")), "{task}");
            },
        ),
        apply(
            path("batch/v1", "jobs", "orders-full-restore-kr-g1-r0-run1"),
            |_| {},
        ),
        status(&approved, |s| {
            assert_eq!(s["phase"], "Running");
            assert_eq!(s["backupId"], ORDERS_BACKUP);
            assert_eq!(s["plan"]["records"], 1000);
        }),
        super::event("KafkaRestore", "Normal", "JobCreated"),
    ];
    let (result, _, _) = scenario(approved, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RUNNING_POLL));
}

// ---------------------------------------------------------------------------------------------
// A KafkaOffsetRollback rollback: the snapshot wait comes first, then the plan; its ConfigMap
// storage gets the worker RoleBinding before the planning Job.

#[tokio::test]
async fn a_manual_rollback_plans_after_its_snapshot_wait() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let mut cr = korb(include_str!(
        "../../../../config/samples/kafkaoffsetrollback-rollback.yaml"
    ));
    cr.spec.approval = crate::crd::approval::Approval::Manual;
    cr.metadata.creation_timestamp = Some(Time("2024-12-01T11:00:00Z".parse().expect("time")));
    let uid = cr.metadata.uid.clone().expect("uid");
    let list = get(
        format!("/apis/tidemark.dev/v1alpha1/namespaces/{NS}/kafkaoffsetrollbacks"),
        Reply::Json(
            StatusCode::OK,
            json!({"apiVersion": "tidemark.dev/v1alpha1", "kind": "KafkaOffsetRollbackList",
                   "metadata": {}, "items": []}),
        ),
    );
    let calls = vec![
        list,
        apply(path("v1", "serviceaccounts", "tidemark-worker"), |_| {}),
        apply(
            path(
                "rbac.authorization.k8s.io/v1",
                "rolebindings",
                "before-change-rollback-korb-snapshots",
            ),
            |body| assert_eq!(body["roleRef"]["name"], "tidemark-worker"),
        ),
        apply(
            path(
                "v1",
                "configmaps",
                "before-change-rollback-korb-task-g1-r0-plan1",
            ),
            move |body| {
                let task = body["data"]["task.yaml"].as_str().expect("task");
                assert!(task.contains("operation: rollback"), "{task}");
                assert!(
                    task.contains(&format!("planOut: plans/{uid}/g1-r0-1.json")),
                    "{task}"
                );
            },
        ),
        apply(
            path(
                "batch/v1",
                "jobs",
                "before-change-rollback-korb-g1-r0-plan1",
            ),
            |_| {},
        ),
        status(&cr, |s| {
            assert_eq!(s["phase"], "Pending");
            assert_eq!(s["operation"], "rollback");
            assert_conditions(s, [false, true, false], "Planning");
        }),
        super::event("KafkaOffsetRollback", "Normal", "Planning"),
    ];
    let (result, _, _) = scenario(cr, calls).await;
    assert_eq!(result.expect("reconciled"), Action::requeue(POD_START_POLL));
}

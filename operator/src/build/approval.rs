//! The children of a run that waits for approval (`spec.approval: Manual`): its planning Job
//! `<cr>-<tag>-<run>-plan<n>` with its task ConfigMap, whose task is the run's own task with
//! `planOut` (the worker plans, stores the plan under that key of the task's storage and changes
//! nothing); and, once approved, the run's task with `approvedPlan {key, hash}` in the Job
//! `<cr>-<tag>-<run>-run<n>` (a new name for each plan, so a run refused for a changed cluster
//! is never mistaken for the next one). Pure: the approval itself (status, annotation, clock) is
//! judged by the controller.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Resource, ResourceExt};
use tidemark_task::{ApprovedPlan, Task, TaskWork};

use super::job::{hold_results, job_with, run_parts, JobParts};
use super::task::task_config_map_with;
use super::{kind_child_name, labels, name, Error, RunId, WorkerKind};
use crate::config::OperatorConfig;
use crate::crd::approval::{Approval, PlanStatus, APPROVE_ANNOTATION};

/// Label on a planning Job (and its pods and task ConfigMap) with its plan attempt.
pub const PLAN_LABEL: &str = "tidemark.dev/plan";

/// The plan a run executes once approved, and which plan of the run it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovedRun {
    pub plan: ApprovedPlan,
    pub attempt: i64,
}

/// The approved plan of `cr`'s run `run`, given its `approval` and its `plan` (`status.plan`):
/// `Manual`, a plan of this run with a hash and a key, and the annotation
/// [`APPROVE_ANNOTATION`] naming that hash. `None` otherwise (an `Automatic` run, or no
/// approval yet).
pub fn approved_run<K: Resource>(
    cr: &K,
    approval: Approval,
    plan: Option<&PlanStatus>,
    run: RunId,
) -> Option<ApprovedRun> {
    if !approval.is_manual() {
        return None;
    }
    let plan = plan.filter(|p| p.run.as_deref() == Some(run.to_string().as_str()))?;
    let hash = plan.hash.as_deref()?;
    let key = plan.key.clone()?;
    let approved = cr.annotations().get(APPROVE_ANNOTATION)?;
    (approved.trim() == hash).then(|| ApprovedRun {
        plan: ApprovedPlan {
            key,
            hash: hash.to_string(),
        },
        attempt: plan.attempt.unwrap_or(1),
    })
}

/// Where plan `attempt` of `cr`'s run `run` is stored, relative to its storage:
/// `plans/<uid>/<run>-<attempt>.json` (the uid keeps resources of one name, or a re-created one,
/// apart in a shared storage).
pub fn plan_key<K: Resource>(cr: &K, run: RunId, attempt: i64) -> Result<String, Error> {
    let uid = cr
        .meta()
        .uid
        .as_deref()
        .ok_or(Error::MissingMetadata("metadata.uid"))?;
    Ok(format!("plans/{uid}/{run}-{attempt}.json"))
}

/// The planning Job of plan `attempt` of `cr_name`'s run `run`: `<cr>-<tag>-<run>-plan<n>`.
pub fn plan_job_name<K: WorkerKind>(cr_name: &str, run: RunId, attempt: i64) -> String {
    kind_child_name::<K>(cr_name, &format!("{run}-plan{attempt}"))
}

/// Its task ConfigMap: `<cr>-<tag>-task-<run>-plan<n>`.
pub fn plan_config_map_name<K: WorkerKind>(cr_name: &str, run: RunId, attempt: i64) -> String {
    kind_child_name::<K>(cr_name, &format!("task-{run}-plan{attempt}"))
}

/// The Job that executes plan `attempt` of `cr_name`'s run `run` once approved:
/// `<cr>-<tag>-<run>-run<n>`.
pub fn approved_job_name<K: WorkerKind>(cr_name: &str, run: RunId, attempt: i64) -> String {
    kind_child_name::<K>(cr_name, &format!("{run}-run{attempt}"))
}

/// Sets the plan fields of a restore, offset reset or offset rollback `task`: `plan_out` (only
/// plan) or `approved` (execute that plan). Other tasks have none: an
/// [`Error::InvalidField`].
pub fn set_plan_fields(
    task: &mut Task,
    plan_out: Option<String>,
    approved: Option<ApprovedPlan>,
) -> Result<(), Error> {
    match &mut task.work {
        TaskWork::Restore(t) => (t.plan_out, t.approved_plan) = (plan_out, approved),
        TaskWork::OffsetReset(t) => (t.plan_out, t.approved_plan) = (plan_out, approved),
        TaskWork::OffsetRollback(t) => (t.plan_out, t.approved_plan) = (plan_out, approved),
        _ => {
            return Err(Error::InvalidField {
                field: "spec.approval",
                reason: "is Manual for a task that is not planned".into(),
            })
        }
    }
    Ok(())
}

/// The task ConfigMap and planning Job of plan `attempt` of `cr`'s run `run`: the run's task
/// with `planOut` ([`plan_key`]), one pod (a plan covers the whole run), labelled with the run
/// and [`PLAN_LABEL`], holding its result like a run's Job.
pub fn planning_children<K: WorkerKind>(
    cr: &K,
    run: RunId,
    attempt: i64,
    config: &OperatorConfig,
) -> Result<(ConfigMap, Job), Error> {
    let cr_name = name(cr)?;
    let mut task = cr.task(run)?;
    set_plan_fields(&mut task, Some(plan_key(cr, run, attempt)?), None)?;
    let mut labels = labels(cr, K::COMPONENT, run);
    labels.insert(PLAN_LABEL.to_string(), attempt.to_string());
    let config_map_name = plan_config_map_name::<K>(&cr_name, run, attempt);
    let config_map = task_config_map_with(cr, &config_map_name, labels.clone(), &task)?;
    let parts = JobParts {
        labels,
        task_config_map: config_map_name,
        shards: 1,
        ..run_parts(cr, run)?
    };
    let mut job = job_with(
        cr,
        &plan_job_name::<K>(&cr_name, run, attempt),
        &parts,
        config,
    )?;
    hold_results(&mut job);
    Ok((config_map, job))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::job::job;
    use super::super::task::task_config_map;
    use super::*;
    use crate::crd::KafkaOffsetReset;

    const RUN: RunId = RunId {
        generation: 1,
        run: 0,
    };

    fn manual_reset(hash: Option<&str>, approve: Option<&str>) -> KafkaOffsetReset {
        let mut cr = kor(RESET_TO_DATETIME);
        cr.spec.approval = Approval::Manual;
        if let Some(a) = approve {
            cr.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(APPROVE_ANNOTATION.into(), a.into());
        }
        if let Some(h) = hash {
            cr.status = Some(crate::crd::KafkaOffsetResetStatus {
                plan: Some(PlanStatus {
                    hash: Some(h.into()),
                    key: Some("plans/u/g1-r0-2.json".into()),
                    run: Some("g1-r0".into()),
                    attempt: Some(2),
                    ..PlanStatus::default()
                }),
                ..Default::default()
            });
        }
        cr
    }

    fn reset_task(cm: &ConfigMap) -> tidemark_task::OffsetResetTask {
        match parse_task(cm).work {
            TaskWork::OffsetReset(t) => t,
            other => panic!("a reset task: {other:?}"),
        }
    }

    #[test]
    fn the_planning_job_plans_the_runs_own_task_and_holds_no_secret() {
        let cr = manual_reset(None, None);
        let (cm, job) = planning_children(&cr, RUN, 1, &OperatorConfig::default()).expect("ok");
        assert_eq!(
            cm.metadata.name.as_deref(),
            Some("replay-orders-kor-task-g1-r0-plan1")
        );
        assert_eq!(
            job.metadata.name.as_deref(),
            Some("replay-orders-kor-g1-r0-plan1")
        );
        let task = reset_task(&cm);
        let key = format!(
            "plans/{}/g1-r0-1.json",
            cr.metadata.uid.as_deref().expect("uid")
        );
        assert_eq!(task.plan_out.as_deref(), Some(key.as_str()));
        assert_eq!(task.approved_plan, None);
        // Everything else is the run's own task.
        let mut run_task = reset_task(&task_config_map(&cr, RUN).expect("run task"));
        run_task.plan_out = Some(key);
        assert_eq!(task, run_task);
        let labels = job.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels["tidemark.dev/run"], "g1-r0");
        assert_eq!(labels[PLAN_LABEL], "1");
        assert_eq!(
            job.metadata.finalizers,
            Some(vec![super::super::job::RESULT_FINALIZER.to_string()])
        );
        let pod = pod(&job);
        let volumes = pod.volumes.as_ref().expect("volumes");
        let task_volume = volumes.iter().find(|v| v.name == "task").expect("task");
        assert_eq!(
            task_volume.config_map.as_ref().map(|c| c.name.as_str()),
            Some("replay-orders-kor-task-g1-r0-plan1")
        );
        // Secrets reach the worker by reference only, never inline.
        let yaml = serde_yaml_ng::to_string(&(&cm, &job)).expect("yaml");
        assert!(!yaml.contains("czNudGluZWw"), "{yaml}");
        for env in container(&job).env.iter().flatten() {
            assert!(env.value.is_none() || env.value_from.is_none(), "{env:?}");
            if env.name.starts_with("KAFKA_") && env.name != "KAFKA_SASL_MECHANISM" {
                assert!(env.value_from.is_some(), "{env:?}");
            }
        }
    }

    #[test]
    fn only_the_approved_hash_puts_approved_plan_in_the_run_task() {
        let config = OperatorConfig::default();
        // Not approved (no annotation, another hash): the plain run, no plan fields.
        for cr in [
            manual_reset(Some("0123456789abcdef"), None),
            manual_reset(Some("0123456789abcdef"), Some("fedcba9876543210")),
        ] {
            assert_eq!(
                approved_run(
                    &cr,
                    cr.spec.approval,
                    cr.status.as_ref().and_then(|s| s.plan.as_ref()),
                    RUN
                ),
                None
            );
            let task = reset_task(&task_config_map(&cr, RUN).expect("task"));
            assert_eq!((task.plan_out, task.approved_plan), (None, None));
        }
        let cr = manual_reset(Some("0123456789abcdef"), Some("0123456789abcdef"));
        let task = reset_task(&task_config_map(&cr, RUN).expect("task"));
        assert_eq!(task.plan_out, None);
        assert_eq!(
            task.approved_plan,
            Some(ApprovedPlan {
                key: "plans/u/g1-r0-2.json".into(),
                hash: "0123456789abcdef".into()
            })
        );
        let job = job(&cr, RUN, &config).expect("job");
        assert_eq!(
            job.metadata.name.as_deref(),
            Some("replay-orders-kor-g1-r0-run2")
        );
        // A plan of another run approves nothing.
        let mut next = cr.clone();
        next.metadata.generation = Some(2);
        let run2 = RunId::of(&next).expect("run");
        assert_eq!(
            approved_run(
                &next,
                next.spec.approval,
                next.status.as_ref().and_then(|s| s.plan.as_ref()),
                run2
            ),
            None
        );
        // On an Automatic resource the annotation does nothing.
        let mut automatic = cr.clone();
        automatic.spec.approval = Approval::Automatic;
        let task = reset_task(&task_config_map(&automatic, RUN).expect("task"));
        assert_eq!(task.approved_plan, None);
        assert_eq!(
            job_name(&automatic),
            "replay-orders-kor-g1-r0",
            "the usual Job"
        );
    }

    fn job_name(cr: &KafkaOffsetReset) -> String {
        job(cr, RUN, &OperatorConfig::default())
            .expect("job")
            .name_any()
    }
}

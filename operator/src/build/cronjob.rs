//! The CronJob of a [`WorkerKind`] that runs on a schedule ([`WorkerKind::schedule`]): its job
//! template is exactly the Job one run would get ([`job::job_spec`] of [`job::run_parts`],
//! Indexed when the kind has shards, its pods holding their results with the
//! [`RESULT_FINALIZER`](super::job::RESULT_FINALIZER)), so every Job the CronJob creates runs the run's
//! task. One
//! backup at a time (`concurrencyPolicy: Forbid`), `suspend` from the spec, owned by the
//! resource.
//!
//! The CronJob's name carries [`instance_hash`](super::instance_hash): the Jobs it creates are
//! named `<cronjob>-<minutes since the epoch>`, and those names must not repeat across
//! namespaces or a re-created resource (a backup's id is its Job's name).

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::job::{hold_pod_results, job_spec, run_parts};
use super::{instance_hash, kind_child_name_within, name, namespace, owner_reference};
use super::{Error, RunId, WorkerKind};
use crate::config::OperatorConfig;

/// Longest CronJob name: the Jobs it creates add `-` and an 8-to-10-digit minute count, and
/// must stay within 63 characters.
pub const MAX_CRON_JOB_NAME: usize = 52;

/// How late a missed run may still start (the operator or the control plane may be down at the
/// scheduled time): one hour, so a daily backup is not skipped for a short outage.
pub const STARTING_DEADLINE_SECONDS: i64 = 3600;

/// Finished Jobs of each outcome the CronJob keeps (their pods hold the results the status is
/// read from; `ttlSecondsAfterFinished` also applies).
pub const JOBS_HISTORY_LIMIT: i32 = 3;

/// Name of the CronJob of `cr`: `<name>-<tag>-<hash>` (≤ [`MAX_CRON_JOB_NAME`] characters).
pub fn cron_job_name<K: WorkerKind>(cr: &K) -> Result<String, Error> {
    let hash = instance_hash(cr)?;
    Ok(kind_child_name_within::<K>(
        &name(cr)?,
        &format!("{hash:08x}"),
        MAX_CRON_JOB_NAME,
    ))
}

/// The CronJob that runs `cr`'s run `run` on its schedule; `None` when `cr` has no schedule.
pub fn cron_job<K: WorkerKind>(
    cr: &K,
    run: RunId,
    config: &OperatorConfig,
) -> Result<Option<CronJob>, Error> {
    let Some(schedule) = cr.schedule() else {
        return Ok(None);
    };
    let parts = run_parts(cr, run)?;
    let mut spec = job_spec(cr, &parts, config)?;
    hold_pod_results(&mut spec, cr.meta().uid.as_deref());
    Ok(Some(CronJob {
        metadata: ObjectMeta {
            name: Some(cron_job_name(cr)?),
            namespace: Some(namespace(cr)?),
            labels: Some(parts.labels.clone()),
            owner_references: Some(vec![owner_reference(cr)?]),
            ..ObjectMeta::default()
        },
        spec: Some(CronJobSpec {
            schedule: schedule.cron.to_string(),
            suspend: Some(schedule.suspend),
            concurrency_policy: Some("Forbid".into()),
            starting_deadline_seconds: Some(STARTING_DEADLINE_SECONDS),
            successful_jobs_history_limit: Some(JOBS_HISTORY_LIMIT),
            failed_jobs_history_limit: Some(JOBS_HISTORY_LIMIT),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(parts.labels.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(spec),
            },
            ..CronJobSpec::default()
        }),
        ..CronJob::default()
    }))
}

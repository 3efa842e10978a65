//! Stopping the runs a new one supersedes, and releasing a run's result. A resource's runs
//! never overlap: before a new run starts (a spec edit, a bumped `tidemark.dev/run`) or when
//! the spec becomes invalid, the Jobs of its other runs are deleted with foreground
//! propagation, and the new run starts only once those Jobs are gone and none of their pods
//! still runs ([`stop_other_runs`]; meanwhile the status says it waits, `WaitingForPreviousRun`).
//! Their Jobs and pods are found by the owner labels, so a Job the status no longer names (an
//! edit to an invalid spec, then a valid one) is stopped too.
//!
//! A run's Job and pods carry the [`RESULT_FINALIZER`] until the result is in the status
//! ([`release`]); a stopped run's result is not wanted, so stopping releases them too.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::status as st;
use super::{worker, Context, Error, RunKind};
use crate::build::job::RESULT_FINALIZER;
use crate::build::{self, label_value, RunId, OWNER_KIND_LABEL, OWNER_NAME_LABEL, RUN_LABEL};

/// The label selector of every Job and pod of `cr`'s runs.
fn owner_selector<K: RunKind>(cr: &K) -> String {
    format!(
        "{OWNER_KIND_LABEL}={},{OWNER_NAME_LABEL}={}",
        K::kind(&()),
        label_value(&cr.name_any())
    )
}

/// Whether `labels` name a run other than `except` (any run when `None`).
fn other_run(labels: &std::collections::BTreeMap<String, String>, except: Option<RunId>) -> bool {
    labels
        .get(RUN_LABEL)
        .is_some_and(|r| except.is_none_or(|e| *r != e.to_string()))
}

/// The Jobs `cr` controls of runs other than `except` (of every run when `None`).
pub async fn other_run_jobs<K: RunKind>(
    cr: &K,
    ctx: &Context,
    except: Option<RunId>,
) -> Result<Vec<Job>, Error> {
    let ns = build::namespace(cr).map_err(Error::Build)?;
    let uid = cr.meta().uid.clone().unwrap_or_default();
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let list = api
        .list(&ListParams::default().labels(&owner_selector(cr)))
        .await
        .map_err(|source| Error::Fetch {
            what: format!("the Jobs of {} {ns}/{}", K::kind(&()), cr.name_any()),
            source,
        })?;
    Ok(list
        .items
        .into_iter()
        .filter(|j| {
            j.owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && o.uid == uid)
        })
        .filter(|j| other_run(j.labels(), except))
        .collect())
}

/// Stops the runs of `cr` other than `except` (every run when `None`), given their `jobs`
/// ([`other_run_jobs`]): each Job's result finalizer is released, the Job deleted with foreground
/// propagation (its pods go before it) and its task ConfigMap deleted; the finalizers of their
/// pods are released. Returns what is still there (for the `WaitingForPreviousRun` message),
/// `None` once every such Job is gone and none of their pods runs.
pub async fn stop_other_runs<K: RunKind>(
    cr: &K,
    ctx: &Context,
    jobs: &[Job],
    except: Option<RunId>,
) -> Result<Option<String>, Error> {
    let ns = build::namespace(cr).map_err(Error::Build)?;
    let job_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    for job in jobs {
        release(&job_api, job).await?;
        if job.meta().deletion_timestamp.is_none() {
            delete_foreground(&job_api, &job.name_any(), &ns).await?;
        }
        if let Some(run) = job.labels().get(RUN_LABEL) {
            worker::delete_task_config_map(cr, ctx, run).await?;
        }
    }
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pods = pod_api
        .list(&ListParams::default().labels(&owner_selector(cr)))
        .await
        .map_err(|source| Error::Fetch {
            what: format!("the pods of {} {ns}/{}", K::kind(&()), cr.name_any()),
            source,
        })?;
    let mut running = 0;
    for pod in pods.items.iter().filter(|p| other_run(p.labels(), except)) {
        release(&pod_api, pod).await?;
        if !terminated(pod) {
            running += 1;
        }
    }
    let mut left: Vec<String> = jobs
        .iter()
        .map(|j| format!("Job {} is being deleted", j.name_any()))
        .collect();
    if running > 0 {
        left.push(format!("{running} of its worker pods still run"));
    }
    Ok((!left.is_empty()).then(|| left.join("; ")))
}

/// Whether `pod` has ended (its containers run no more).
fn terminated(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed")
}

/// Deletes the Job `name` with foreground propagation: it stays (with a deletion timestamp)
/// until its pods are gone. Absent is fine.
async fn delete_foreground(api: &Api<Job>, name: &str, ns: &str) -> Result<(), Error> {
    match api.delete(name, &DeleteParams::foreground()).await {
        Ok(_) => {
            tracing::info!(
                job = name,
                "deleted the Job of a superseded run (foreground)"
            );
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(Error::Delete {
            what: format!("Job {ns}/{name}"),
            source,
        }),
    }
}

/// Removes the [`RESULT_FINALIZER`] from `obj` (a run's Job or pod), keeping any other
/// finalizer; the patch carries `obj`'s resourceVersion, so a concurrent change fails it
/// (and the reconcile retries) rather than being undone. Nothing when it has none; gone is
/// fine.
pub async fn release<K>(api: &Api<K>, obj: &K) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let finalizers = obj.finalizers();
    if !finalizers.iter().any(|f| f == RESULT_FINALIZER) {
        return Ok(());
    }
    let rest: Vec<&String> = finalizers
        .iter()
        .filter(|f| *f != RESULT_FINALIZER)
        .collect();
    let patch = serde_json::json!({
        "metadata": {"finalizers": rest, "resourceVersion": obj.resource_version()}
    });
    let name = obj.name_any();
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(Error::Apply {
            what: format!(
                "the removal of finalizer {RESULT_FINALIZER} from {} {name}",
                K::kind(&())
            ),
            source,
        }),
    }
}

/// The status of `cr` while its run `run` waits for the runs it supersedes to stop: `current`
/// (which still names the previous run) Pending and `Reconciling` with
/// `WaitingForPreviousRun` and `left` (what still runs).
pub fn waiting<K: RunKind>(
    cr: &K,
    current: &K::Status,
    run: RunId,
    left: &str,
    now: &str,
) -> K::Status {
    let mut status = current.clone();
    let previous = K::common(current).conditions.clone();
    let common = K::common_mut(&mut status);
    let message = format!("run {run} starts once the previous run has stopped: {left}");
    common.phase = Some(crate::crd::status::Phase::Pending);
    common.observed_generation = cr.meta().generation;
    common.conditions = st::conditions(
        cr,
        &previous,
        now,
        [false, true, false],
        st::REASON_WAITING_FOR_PREVIOUS_RUN,
        &message,
    );
    status
}

//! Releases the results no one will record. A run's Jobs and pods carry the
//! [`RESULT_FINALIZER`] until the operator has written their result into the resource's status
//! ([`super::worker`]); once the resource itself is deleted there is no status to write, and
//! nothing reconciles it any more, so its Jobs and pods would stay `Terminating` for ever (and a
//! new resource of the same name would find its Job names taken). Every [`SWEEP_PERIOD`] the
//! operator lists the held Jobs and pods of each kind in the namespaces it watches and releases
//! those whose resource is gone or being deleted:
//!
//! - a Job by its controller owner reference (the resource's uid);
//! - a pod by its [`OWNER_UID_LABEL`]; a pod without it (made before the label existed) by its
//!   owner-name label, released only when no resource of that name is left in its namespace.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Resource, ResourceExt};

use super::{api, stop, Context, ControlledKind, Error};
use crate::build::job::{OWNER_UID_LABEL, RESULT_FINALIZER};
use crate::build::{label_value, OWNER_KIND_LABEL, OWNER_NAME_LABEL};
use crate::crd::{KafkaBackup, KafkaOffsetReset, KafkaOffsetRollback, KafkaRestore};

/// How often held Jobs and pods are looked at.
pub const SWEEP_PERIOD: Duration = Duration::from_secs(60);

/// The resources of one kind that still exist (not being deleted), by namespace.
#[derive(Debug, Default)]
pub struct Live {
    /// `(namespace, uid)`.
    uids: BTreeSet<(String, String)>,
    /// `(namespace, owner-name label value)`.
    names: BTreeSet<(String, String)>,
}

impl Live {
    /// The live resources among `all`.
    pub fn of<K: Resource>(all: &[K]) -> Self {
        let mut live = Live::default();
        for r in all.iter().filter(|r| r.meta().deletion_timestamp.is_none()) {
            let ns = r.namespace().unwrap_or_default();
            if let Some(uid) = &r.meta().uid {
                live.uids.insert((ns.clone(), uid.clone()));
            }
            live.names.insert((ns, label_value(&r.name_any())));
        }
        live
    }
}

/// Whether `obj` holds a result.
fn held<K: Resource>(obj: &K) -> bool {
    obj.meta()
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == RESULT_FINALIZER)
}

/// Whether held Job `job` of kind `kind`'s resource belongs to none that is live.
pub fn orphaned_job(job: &Job, kind: &str, live: &Live) -> bool {
    let ns = job.namespace().unwrap_or_default();
    let owner = job
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == kind);
    match owner {
        Some(o) => !live.uids.contains(&(ns, o.uid.clone())),
        // Not ours to judge (a Job of a CronJob holds nothing itself).
        None => false,
    }
}

/// Whether held pod `pod` belongs to no live resource.
pub fn orphaned_pod(pod: &Pod, live: &Live) -> bool {
    let ns = pod.namespace().unwrap_or_default();
    let labels = pod.labels();
    if let Some(uid) = labels.get(OWNER_UID_LABEL) {
        return !live.uids.contains(&(ns, uid.clone()));
    }
    match labels.get(OWNER_NAME_LABEL) {
        Some(name) => !live.names.contains(&(ns, name.clone())),
        None => false,
    }
}

/// Releases the held Jobs and pods of kind `K` whose resource is gone, in every watched
/// namespace; returns how many.
pub async fn sweep_kind<K: ControlledKind>(ctx: &Context) -> Result<usize, Error> {
    let mut released = 0;
    for ns in ctx.config.watch_scopes() {
        released += sweep_scope::<K>(ctx, ns.as_deref()).await?;
    }
    Ok(released)
}

/// [`sweep_kind`] in one namespace (`None`: all).
async fn sweep_scope<K: ControlledKind>(ctx: &Context, ns: Option<&str>) -> Result<usize, Error> {
    let client = &ctx.client;
    let kind = K::kind(&()).to_string();
    let resources = api::<K>(client, ns)
        .list(&ListParams::default())
        .await
        .map_err(|source| Error::Fetch {
            what: format!("the {kind} resources"),
            source,
        })?;
    let live = Live::of(&resources.items);
    let selector = ListParams::default().labels(&format!("{OWNER_KIND_LABEL}={kind}"));
    let jobs = api::<Job>(client, ns)
        .list(&selector)
        .await
        .map_err(|source| Error::Fetch {
            what: format!("the Jobs of {kind} resources"),
            source,
        })?;
    let pods = api::<Pod>(client, ns)
        .list(&selector)
        .await
        .map_err(|source| Error::Fetch {
            what: format!("the pods of {kind} resources"),
            source,
        })?;
    let mut released = 0;
    for pod in pods
        .items
        .iter()
        .filter(|p| held(*p) && orphaned_pod(p, &live))
    {
        let pods: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        stop::release(&pods, pod).await?;
        tracing::info!(kind = %kind, pod = %pod.name_any(), "released the result of a pod whose resource is gone");
        released += 1;
    }
    for job in jobs
        .items
        .iter()
        .filter(|j| held(*j) && orphaned_job(j, &kind, &live))
    {
        let jobs: Api<Job> = Api::namespaced(client.clone(), &job.namespace().unwrap_or_default());
        stop::release(&jobs, job).await?;
        tracing::info!(kind = %kind, job = %job.name_any(), "released the result of a Job whose resource is gone");
        released += 1;
    }
    Ok(released)
}

/// Sweeps every kind once.
pub async fn sweep(ctx: &Context) {
    let results = [
        sweep_kind::<KafkaBackup>(ctx).await,
        sweep_kind::<KafkaRestore>(ctx).await,
        sweep_kind::<KafkaOffsetReset>(ctx).await,
        sweep_kind::<KafkaOffsetRollback>(ctx).await,
    ];
    for error in results.into_iter().filter_map(Result::err) {
        tracing::warn!(%error, "releasing the results of deleted resources failed; trying again later");
    }
}

/// Sweeps every [`SWEEP_PERIOD`] (first at once) until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()>) {
    let mut tick = tokio::time::interval(SWEEP_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tick.tick() => sweep(&ctx).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};

    use super::*;

    fn backup(name: &str, uid: &str, deleting: bool) -> KafkaBackup {
        let mut cr = crate::build::fixtures::orders_backup("b1", "Completed");
        cr.metadata.name = Some(name.into());
        cr.metadata.namespace = Some("ns".into());
        cr.metadata.uid = Some(uid.into());
        if deleting {
            cr.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        }
        cr
    }

    fn job(owner_uid: &str) -> Job {
        let mut job = Job::default();
        job.metadata.namespace = Some("ns".into());
        job.metadata.owner_references = Some(vec![OwnerReference {
            kind: "KafkaBackup".into(),
            uid: owner_uid.into(),
            controller: Some(true),
            ..OwnerReference::default()
        }]);
        job
    }

    fn pod(labels: &[(&str, &str)]) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.namespace = Some("ns".into());
        pod.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        pod
    }

    #[test]
    fn only_the_children_of_gone_or_deleted_resources_are_orphans() {
        let live = Live::of(&[
            backup("orders", "u-live", false),
            backup("old", "u-deleting", true),
        ]);
        assert!(!orphaned_job(&job("u-live"), "KafkaBackup", &live));
        assert!(orphaned_job(&job("u-deleting"), "KafkaBackup", &live));
        assert!(orphaned_job(&job("u-gone"), "KafkaBackup", &live));
        // Another kind's owner is not judged.
        assert!(!orphaned_job(&job("u-gone"), "KafkaRestore", &live));

        assert!(!orphaned_pod(&pod(&[(OWNER_UID_LABEL, "u-live")]), &live));
        assert!(orphaned_pod(&pod(&[(OWNER_UID_LABEL, "u-gone")]), &live));
        // A pod of an earlier resource of the same name: its uid tells.
        assert!(orphaned_pod(
            &pod(&[(OWNER_UID_LABEL, "u-earlier"), (OWNER_NAME_LABEL, "orders")]),
            &live
        ));
        // Without the uid label, only the name is known.
        assert!(!orphaned_pod(&pod(&[(OWNER_NAME_LABEL, "orders")]), &live));
        assert!(orphaned_pod(&pod(&[(OWNER_NAME_LABEL, "old")]), &live));
        assert!(!orphaned_pod(&pod(&[]), &live));
    }
}

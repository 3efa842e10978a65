// The sweep of results no one will record: the held Jobs and pods of a deleted resource are
// released, those of a live one (also a new resource of the same name) are kept.

use http::StatusCode;
use serde_json::{json, Value};

use super::runs::release;
use super::*;
use crate::build::fixtures::orders_backup;
use crate::controller::sweep::sweep_kind;
use crate::crd::KafkaBackup;

fn list(path: &str, kind: &str, items: Vec<Value>) -> Call {
    get(
        path,
        Reply::Json(
            StatusCode::OK,
            json!({"apiVersion": "v1", "kind": kind, "metadata": {}, "items": items}),
        ),
    )
}

/// A held Job of the KafkaBackup `uid`.
fn held_job(name: &str, uid: &str) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": NS, "resourceVersion": "7",
                     "finalizers": ["tidemark.dev/result"],
                     "labels": {"tidemark.dev/owner-kind": "KafkaBackup"},
                     "ownerReferences": [{"apiVersion": "tidemark.dev/v1alpha1",
                         "kind": "KafkaBackup", "name": "orders", "uid": uid,
                         "controller": true}]}
    })
}

/// A held pod of the KafkaBackup `uid` (finalizers `finalizers`).
fn held_pod(name: &str, uid: &str, finalizers: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "resourceVersion": "9",
                     "finalizers": finalizers,
                     "labels": {"tidemark.dev/owner-kind": "KafkaBackup",
                                "tidemark.dev/owner-name": "orders",
                                "tidemark.dev/owner-uid": uid}}
    })
}

#[tokio::test]
async fn the_results_of_a_deleted_resource_are_released_and_a_live_ones_kept() {
    // `orders` was deleted and applied again: the new one has another uid.
    let mut live: KafkaBackup = orders_backup("b1", "Running");
    live.metadata.uid = Some("uid-new".into());
    let old_job = held_job("orders-kb-g1-r0", "uid-old");
    let old_pod = held_pod(
        "orders-kb-g1-r0-x",
        "uid-old",
        json!(["batch.kubernetes.io/job-tracking", "tidemark.dev/result"]),
    );
    let new_job = held_job("orders-kb-g1-r1", "uid-new");
    let new_pod = held_pod(
        "orders-kb-g1-r1-y",
        "uid-new",
        json!(["tidemark.dev/result"]),
    );
    let calls = vec![
        list(
            "/apis/tidemark.dev/v1alpha1/kafkabackups",
            "KafkaBackupList",
            vec![serde_json::to_value(&live).expect("cr")],
        ),
        list(
            "/apis/batch/v1/jobs",
            "JobList",
            vec![old_job.clone(), new_job],
        )
        .check(|_, query| assert!(query.contains("owner-kind%3DKafkaBackup"), "{query}")),
        list("/api/v1/pods", "PodList", vec![old_pod.clone(), new_pod]),
        // Only the old resource's pod and Job lose the finalizer; other finalizers stay.
        release(
            &old_pod,
            path("v1", "pods", "orders-kb-g1-r0-x"),
            json!(["batch.kubernetes.io/job-tracking"]),
        ),
        release(
            &old_job,
            path("batch/v1", "jobs", "orders-kb-g1-r0"),
            json!([]),
        ),
    ];
    let (ctx, handle) = context();
    let server = tokio::spawn(serve(handle, calls));
    let released = sweep_kind::<KafkaBackup>(&ctx).await.expect("swept");
    drop(ctx);
    if let Err(e) = server.await {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    assert_eq!(released, 2);
}

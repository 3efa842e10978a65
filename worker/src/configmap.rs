//! Snapshots kept in one Kubernetes ConfigMap, one `<snapshotId>.json` entry per snapshot.
//! Contract: the ConfigMap is created on the first save; an entry is added or removed with a
//! JSON merge patch that carries the `resourceVersion` read just before, so a concurrent writer
//! makes the API server answer 409 Conflict (then we re-read and retry, never losing its entry);
//! an existing entry is never overwritten; a save that would take the ConfigMap past
//! [`CONFIGMAP_MAX_BYTES`] is refused before anything is written. Needs `get`, `create` and
//! `patch` on that one ConfigMap.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::error::{Error, Result};

/// Largest total size (keys plus values, in bytes) tidemark lets a snapshot ConfigMap reach.
/// Kubernetes refuses ConfigMaps over 1 MiB (1,048,576 bytes); this keeps room for metadata.
pub const CONFIGMAP_MAX_BYTES: usize = 1_000_000;

pub use crate::error::CONFIGMAP_SCHEME;

/// Field manager recorded by the API server for tidemark's writes.
pub const FIELD_MANAGER: &str = "tidemark";

/// How many times a write is attempted when the ConfigMap changes underneath it (409).
const WRITE_ATTEMPTS: u32 = 5;

/// One ConfigMap holding snapshot documents.
#[derive(Clone)]
pub struct ConfigMapStore {
    api: Api<ConfigMap>,
    namespace: String,
    name: String,
    location: String,
}

impl std::fmt::Debug for ConfigMapStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigMapStore")
            .field("location", &self.location)
            .finish()
    }
}

/// Whether a write succeeded or must be retried on a fresh read.
enum Attempt<T> {
    Done(T),
    Conflict,
}

impl ConfigMapStore {
    /// The ConfigMap `namespace/name`, reached through `client`.
    pub fn new(client: kube::Client, namespace: &str, name: &str) -> Self {
        ConfigMapStore {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: name.to_string(),
            location: format!("{CONFIGMAP_SCHEME}{namespace}/{name}"),
        }
    }

    /// Like [`Self::new`], with a client from the pod's service account (or `KUBECONFIG`
    /// outside a cluster).
    pub async fn connect(namespace: &str, name: &str) -> Result<Self> {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| {
                Error::kube(
                    format!("{CONFIGMAP_SCHEME}{namespace}/{name}"),
                    format!(
                        "no access to the Kubernetes API (in-cluster service account or KUBECONFIG): {e}"
                    ),
                    e,
                )
            })?;
        Ok(Self::new(client, namespace, name))
    }

    /// `configmap://<namespace>/<name>`.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The data key of a snapshot: `<id>.json`.
    pub fn key(id: &str) -> String {
        format!("{id}.json")
    }

    fn storage_error(&self, action: &str, e: kube::Error) -> Error {
        let reason = match &e {
            kube::Error::Api(s) if s.is_forbidden() => format!(
                "{action} ConfigMap '{}' was forbidden: {}; the worker's ServiceAccount needs get, create and patch on configmaps/{} in namespace '{}'",
                self.name, s.message, self.name, self.namespace
            ),
            kube::Error::Api(s) => format!(
                "{action} ConfigMap '{}' failed: {} ({} {})",
                self.name, s.message, s.code, s.reason
            ),
            other => format!("{action} ConfigMap '{}' failed: {other}", self.name),
        };
        Error::kube(self.location.clone(), reason, e)
    }

    async fn read(&self) -> Result<Option<ConfigMap>> {
        self.api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.storage_error("reading", e))
    }

    /// The value of `<id>.json`, or `None` when the ConfigMap or the entry does not exist.
    #[tracing::instrument(name = "configmap.get", skip_all, fields(configmap = %self.location, snapshot_id = %id))]
    pub async fn get(&self, id: &str) -> Result<Option<String>> {
        Ok(self
            .read()
            .await?
            .and_then(|cm| cm.data)
            .and_then(|mut d| d.remove(&Self::key(id))))
    }

    /// Every `*.json` entry as (snapshot id, document), sorted by id; an absent ConfigMap is
    /// empty.
    #[tracing::instrument(name = "configmap.entries", skip_all, fields(configmap = %self.location))]
    pub async fn entries(&self) -> Result<Vec<(String, String)>> {
        let data = self
            .read()
            .await?
            .and_then(|cm| cm.data)
            .unwrap_or_default();
        Ok(data
            .into_iter()
            .filter_map(|(k, v)| k.strip_suffix(".json").map(|id| (id.to_string(), v)))
            .collect())
    }

    /// Adds `<id>.json` = `document`, creating the ConfigMap if needed. `Ok(false)` when the
    /// entry already exists (it is left as it was); [`Error::InvalidInput`] when the ConfigMap
    /// would grow past [`CONFIGMAP_MAX_BYTES`].
    #[tracing::instrument(name = "configmap.put", skip_all, fields(configmap = %self.location, snapshot_id = %id))]
    pub async fn put_new(&self, id: &str, document: &str) -> Result<bool> {
        let key = Self::key(id);
        self.retry_on_conflict("writing", || async {
            match self.read().await? {
                None => {
                    self.check_size(id, &key, document, 0)?;
                    let cm = ConfigMap {
                        metadata: ObjectMeta {
                            name: Some(self.name.clone()),
                            namespace: Some(self.namespace.clone()),
                            labels: Some(BTreeMap::from([(
                                "app.kubernetes.io/managed-by".to_string(),
                                "tidemark".to_string(),
                            )])),
                            ..ObjectMeta::default()
                        },
                        data: Some(BTreeMap::from([(key.clone(), document.to_string())])),
                        ..ConfigMap::default()
                    };
                    let pp = PostParams {
                        field_manager: Some(FIELD_MANAGER.into()),
                        ..PostParams::default()
                    };
                    match self.api.create(&pp, &cm).await {
                        Ok(_) => Ok(Attempt::Done(true)),
                        // Someone else created it first: read it again.
                        Err(kube::Error::Api(s)) if s.is_already_exists() || s.is_conflict() => {
                            Ok(Attempt::Conflict)
                        }
                        Err(e) => Err(self.storage_error("creating", e)),
                    }
                }
                Some(cm) => {
                    if cm.data.as_ref().is_some_and(|d| d.contains_key(&key)) {
                        return Ok(Attempt::Done(false));
                    }
                    self.check_size(id, &key, document, used_bytes(&cm))?;
                    let patch = json!({
                        "metadata": { "resourceVersion": cm.metadata.resource_version },
                        "data": { key.as_str(): document },
                    });
                    self.patch(patch).await
                }
            }
        })
        .await
    }

    /// Removes `<id>.json`; `Ok(false)` when the ConfigMap or the entry does not exist.
    #[tracing::instrument(name = "configmap.delete", skip_all, fields(configmap = %self.location, snapshot_id = %id))]
    pub async fn delete(&self, id: &str) -> Result<bool> {
        let key = Self::key(id);
        self.retry_on_conflict("writing", || async {
            let Some(cm) = self.read().await? else {
                return Ok(Attempt::Done(false));
            };
            if !cm.data.as_ref().is_some_and(|d| d.contains_key(&key)) {
                return Ok(Attempt::Done(false));
            }
            let patch = json!({
                "metadata": { "resourceVersion": cm.metadata.resource_version },
                "data": { key.as_str(): null },
            });
            self.patch(patch).await
        })
        .await
    }

    /// A merge patch guarded by the `resourceVersion` it carries.
    async fn patch(&self, patch: serde_json::Value) -> Result<Attempt<bool>> {
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        match self.api.patch(&self.name, &pp, &Patch::Merge(&patch)).await {
            Ok(_) => Ok(Attempt::Done(true)),
            Err(kube::Error::Api(s)) if s.is_conflict() || s.is_not_found() => {
                Ok(Attempt::Conflict)
            }
            Err(e) => Err(self.storage_error("updating", e)),
        }
    }

    async fn retry_on_conflict<T, F, Fut>(&self, action: &str, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Attempt<T>>>,
    {
        for n in 0..WRITE_ATTEMPTS {
            match attempt().await? {
                Attempt::Done(v) => return Ok(v),
                Attempt::Conflict => {
                    tracing::info!(location = %self.location, attempt = n + 1, "ConfigMap changed while {action}; retrying");
                    tokio::time::sleep(Duration::from_millis(10 << n)).await;
                }
            }
        }
        Err(Error::Storage {
            location: self.location.clone(),
            reason: format!(
                "{action} ConfigMap '{}' failed: it changed underneath every one of {WRITE_ATTEMPTS} attempts (409 Conflict); try again",
                self.name
            ),
        })
    }

    fn check_size(&self, id: &str, key: &str, document: &str, used: usize) -> Result<()> {
        let added = key.len() + document.len();
        if used + added <= CONFIGMAP_MAX_BYTES {
            return Ok(());
        }
        let holding = if used > 0 {
            format!(" (it already holds {used} bytes)")
        } else {
            String::new()
        };
        Err(Error::invalid(format!(
            "snapshot '{id}' is {} bytes; ConfigMap '{}'{holding} would exceed the 1 MiB ConfigMap limit — use storageType s3, gcs, azure or pvc for snapshots this large",
            document.len(),
            self.name
        )))
    }
}

/// Bytes counted against the ConfigMap size limit: every key and value of `data` and
/// `binaryData`.
fn used_bytes(cm: &ConfigMap) -> usize {
    let data: usize = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    let binary: usize = cm
        .binary_data
        .iter()
        .flatten()
        .map(|(k, v)| k.len() + v.0.len())
        .sum();
    data + binary
}

#[cfg(test)]
mod tests {
    //! The API call sequences, against kube's tower-test mock: every request is checked
    //! (method, path and query, body) and answered with what an API server sends.

    use super::*;
    use crate::snapshot::{OffsetSnapshot, SnapshotStore};
    use http::{Method, Request, Response};
    use kube::client::Body;
    use serde_json::Value;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    const CM: &str = "/api/v1/namespaces/payments/configmaps/offset-snapshots";
    const CREATE: &str = "/api/v1/namespaces/payments/configmaps?&fieldManager=tidemark";
    const PATCH: &str =
        "/api/v1/namespaces/payments/configmaps/offset-snapshots?&fieldManager=tidemark";

    /// One expected request and the answer to it.
    struct Exchange {
        method: Method,
        uri: &'static str,
        body: Option<Value>,
        status: u16,
        response: Value,
    }

    fn get(status: u16, response: Value) -> Exchange {
        Exchange {
            method: Method::GET,
            uri: CM,
            body: None,
            status,
            response,
        }
    }

    fn patch(body: Value, status: u16, response: Value) -> Exchange {
        Exchange {
            method: Method::PATCH,
            uri: PATCH,
            body: Some(body),
            status,
            response,
        }
    }

    fn create(body: Value, status: u16, response: Value) -> Exchange {
        Exchange {
            method: Method::POST,
            uri: CREATE,
            body: Some(body),
            status,
            response,
        }
    }

    /// A ConfigMap as the API server returns it.
    fn config_map(resource_version: &str, data: &[(&str, &str)]) -> Value {
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "offset-snapshots",
                "namespace": "payments",
                "uid": "3f1c1d9e-6a0b-4f4e-9d0b-2d6f8f1b7c11",
                "resourceVersion": resource_version,
                "creationTimestamp": "2024-12-01T12:00:00Z",
                "labels": { "app.kubernetes.io/managed-by": "tidemark" }
            },
            "data": data
        })
    }

    /// A `Status` failure as the API server returns it.
    fn status(code: u16, reason: &str, message: &str) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "details": { "name": "offset-snapshots", "kind": "configmaps" },
            "code": code
        })
    }

    fn not_found() -> Value {
        status(404, "NotFound", "configmaps \"offset-snapshots\" not found")
    }

    fn conflict() -> Value {
        status(
            409,
            "Conflict",
            "Operation cannot be fulfilled on configmaps \"offset-snapshots\": the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    async fn serve(mut handle: Handle, script: Vec<Exchange>) {
        for (i, ex) in script.into_iter().enumerate() {
            let (request, respond) = handle
                .next_request()
                .await
                .unwrap_or_else(|| panic!("request {i} ({} {}) never came", ex.method, ex.uri));
            assert_eq!(request.method(), ex.method, "request {i}");
            assert_eq!(request.uri().to_string(), ex.uri, "request {i}");
            if ex.method == Method::PATCH {
                assert_eq!(
                    request.headers().get("content-type").map(|v| v.as_bytes()),
                    Some(&b"application/merge-patch+json"[..]),
                    "request {i}"
                );
            }
            let body = request
                .into_body()
                .collect_bytes()
                .await
                .expect("request body");
            match &ex.body {
                None => assert!(body.is_empty(), "request {i} has a body"),
                Some(want) => {
                    let got: Value = serde_json::from_slice(&body).expect("JSON request body");
                    assert_eq!(&got, want, "request {i} body");
                }
            }
            let answer = serde_json::to_vec(&ex.response).expect("encode response");
            respond.send_response(
                Response::builder()
                    .status(ex.status)
                    .header("content-type", "application/json")
                    .body(Body::from(answer))
                    .expect("response"),
            );
        }
    }

    /// Runs `op` against a store whose API server follows `script` exactly: a missing request
    /// times out, an extra one fails (the mock is gone).
    async fn scenario<T, F, Fut>(script: Vec<Exchange>, op: F) -> T
    where
        F: FnOnce(SnapshotStore) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        let store =
            SnapshotStore::config_map(ConfigMapStore::new(client, "payments", "offset-snapshots"));
        let server = tokio::spawn(serve(handle, script));
        let out = tokio::time::timeout(Duration::from_secs(10), op(store))
            .await
            .expect("the operation finished");
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("every expected request was made")
            .expect("the API server script passed");
        out
    }

    fn snapshot(id: &str) -> OffsetSnapshot {
        OffsetSnapshot::from_json(
            format!(
                r#"{{"snapshotId": "{id}", "timestamp": "2024-12-01T12:00:00Z", "cluster": "kafka:9092",
                     "groups": {{"order-processor": {{"topics": {{"orders": {{"0": {{"offset": 1000, "metadata": "", "timestamp": 1733054400000}}}}}}}}}}}}"#
            )
            .as_bytes(),
            "test",
        )
        .expect("snapshot")
    }

    fn doc(id: &str) -> String {
        String::from_utf8(snapshot(id).to_json().expect("encode")).expect("utf8")
    }

    #[tokio::test]
    async fn save_creates_the_config_map_when_missing() {
        let s = doc("pre-migration-20241201");
        let script = vec![
            get(404, not_found()),
            create(
                json!({
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": "offset-snapshots",
                        "namespace": "payments",
                        "labels": { "app.kubernetes.io/managed-by": "tidemark" }
                    },
                    "data": { "pre-migration-20241201.json": s }
                }),
                201,
                config_map("1", &[("pre-migration-20241201.json", &s)]),
            ),
        ];
        scenario(script, |store| async move {
            store
                .save(&snapshot("pre-migration-20241201"))
                .await
                .expect("saved");
        })
        .await;
    }

    #[tokio::test]
    async fn save_adds_an_entry_guarded_by_the_resource_version() {
        let old = doc("old");
        let new = doc("new");
        let script = vec![
            get(200, config_map("7", &[("old.json", &old)])),
            patch(
                json!({
                    "metadata": { "resourceVersion": "7" },
                    "data": { "new.json": new }
                }),
                200,
                config_map("8", &[("old.json", &old), ("new.json", &new)]),
            ),
        ];
        scenario(script, |store| async move {
            store.save(&snapshot("new")).await.expect("saved");
        })
        .await;
    }

    #[tokio::test]
    async fn save_never_overwrites_an_entry() {
        let s = doc("s1");
        let script = vec![get(200, config_map("7", &[("s1.json", &s)]))];
        let err = scenario(script, |store| async move {
            store.save(&snapshot("s1")).await.expect_err("exists")
        })
        .await;
        assert_eq!(err.exit_code(), 2);
        assert_eq!(
            err.to_string(),
            "invalid input: snapshot 's1' already exists in configmap://payments/offset-snapshots; choose another --snapshot-id or delete the old one first"
        );
    }

    #[tokio::test]
    async fn a_conflicting_write_is_retried_on_a_fresh_read() {
        let a = doc("a");
        let b = doc("b");
        let mine = doc("mine");
        let script = vec![
            get(200, config_map("7", &[("a.json", &a)])),
            patch(
                json!({ "metadata": { "resourceVersion": "7" }, "data": { "mine.json": mine } }),
                409,
                conflict(),
            ),
            // Another writer added b.json meanwhile; it is kept (the patch only adds mine.json).
            get(200, config_map("9", &[("a.json", &a), ("b.json", &b)])),
            patch(
                json!({ "metadata": { "resourceVersion": "9" }, "data": { "mine.json": mine } }),
                200,
                config_map(
                    "10",
                    &[("a.json", &a), ("b.json", &b), ("mine.json", &mine)],
                ),
            ),
        ];
        scenario(script, |store| async move {
            store.save(&snapshot("mine")).await.expect("saved");
        })
        .await;
    }

    #[tokio::test]
    async fn losing_the_create_race_adds_to_the_winners_config_map() {
        let theirs = doc("theirs");
        let mine = doc("mine");
        let script = vec![
            get(404, not_found()),
            create(
                json!({
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": "offset-snapshots",
                        "namespace": "payments",
                        "labels": { "app.kubernetes.io/managed-by": "tidemark" }
                    },
                    "data": { "mine.json": mine }
                }),
                409,
                status(
                    409,
                    "AlreadyExists",
                    "configmaps \"offset-snapshots\" already exists",
                ),
            ),
            get(200, config_map("3", &[("theirs.json", &theirs)])),
            patch(
                json!({ "metadata": { "resourceVersion": "3" }, "data": { "mine.json": mine } }),
                200,
                config_map("4", &[("theirs.json", &theirs), ("mine.json", &mine)]),
            ),
        ];
        scenario(script, |store| async move {
            store.save(&snapshot("mine")).await.expect("saved");
        })
        .await;
    }

    #[tokio::test]
    async fn endless_conflicts_give_up_with_a_storage_error() {
        let mut script = Vec::new();
        for rv in 0..WRITE_ATTEMPTS {
            let rv: &'static str = Box::leak(rv.to_string().into_boxed_str());
            script.push(get(200, config_map(rv, &[])));
            script.push(patch(
                json!({ "metadata": { "resourceVersion": rv }, "data": { "s1.json": doc("s1") } }),
                409,
                conflict(),
            ));
        }
        let err = scenario(script, |store| async move {
            store.save(&snapshot("s1")).await.expect_err("gives up")
        })
        .await;
        assert_eq!(err.exit_code(), 7, "{err}");
        assert!(err.to_string().contains("409 Conflict"), "{err}");
    }

    #[tokio::test]
    async fn too_large_snapshots_are_refused_before_writing() {
        // 950 kB already stored: a second snapshot of ~60 kB does not fit.
        let filler = "x".repeat(950_000);
        let mut big = snapshot("big");
        let group = big.groups["order-processor"].clone();
        for i in 0..400 {
            big.groups.insert(format!("group-{i:04}"), group.clone());
        }
        let size = big.to_json().expect("encode").len();
        assert!(size > 50_000, "{size}");
        let script = vec![get(200, config_map("5", &[("filler.json", &filler)]))];
        let err = scenario(script, |store| {
            let big = big.clone();
            async move { store.save(&big).await.expect_err("too large") }
        })
        .await;
        assert_eq!(err.exit_code(), 2);
        assert_eq!(
            err.to_string(),
            format!("invalid input: snapshot 'big' is {size} bytes; ConfigMap 'offset-snapshots' (it already holds 950011 bytes) would exceed the 1 MiB ConfigMap limit — use storageType s3, gcs, azure or pvc for snapshots this large")
        );

        // Alone over the limit: refused before the ConfigMap is created.
        let mut huge = snapshot("huge");
        for i in 0..10_000 {
            huge.groups.insert(format!("group-{i:05}"), group.clone());
        }
        let script = vec![get(404, not_found())];
        let err = scenario(script, |store| async move {
            store.save(&huge).await.expect_err("too large")
        })
        .await;
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string()
                .contains("ConfigMap 'offset-snapshots' would exceed the 1 MiB ConfigMap limit"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn load_reads_one_entry() {
        let s = doc("s1");
        let script = vec![get(
            200,
            config_map("7", &[("s1.json", &s), ("s2.json", "{}")]),
        )];
        let snap = scenario(script, |store| async move { store.load("s1").await }).await;
        assert_eq!(snap.expect("loaded"), snapshot("s1"));
    }

    #[tokio::test]
    async fn loading_a_missing_snapshot_is_not_found() {
        let s = doc("s1");
        let script = vec![
            get(200, config_map("7", &[("s1.json", &s)])),
            get(404, not_found()),
        ];
        let errs = scenario(script, |store| async move {
            (
                store.load("nope").await.expect_err("no entry"),
                store.load("s1").await.expect_err("no ConfigMap"),
            )
        })
        .await;
        for err in [errs.0, errs.1] {
            assert_eq!(err.exit_code(), 3, "{err}");
            assert!(
                err.to_string().contains("not found in configmap://payments/offset-snapshots; its snapshots are the ConfigMap's <snapshotId>.json keys: run `kubectl describe configmap offset-snapshots -n payments`"),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn a_damaged_entry_is_malformed_and_named() {
        let script = vec![get(
            200,
            config_map("7", &[("s1.json", "{\"snapshotId\": 3")]),
        )];
        let err = scenario(script, |store| async move {
            store.load("s1").await.expect_err("malformed")
        })
        .await;
        assert_eq!(err.exit_code(), 8);
        assert!(
            err.to_string()
                .contains("malformed snapshot 'configmap://payments/offset-snapshots/s1.json'"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn list_parses_every_json_entry() {
        let mut newer = snapshot("newer");
        newer.timestamp += chrono::Duration::hours(1);
        let newer = String::from_utf8(newer.to_json().expect("encode")).expect("utf8");
        let older = doc("older");
        let script = vec![
            get(
                200,
                config_map(
                    "7",
                    &[
                        ("older.json", &older),
                        ("newer.json", &newer),
                        ("broken.json", "not json"),
                        ("README", "not a snapshot"),
                    ],
                ),
            ),
            get(404, not_found()),
        ];
        let ((snaps, unreadable), (none, nothing)) = scenario(script, |store| async move {
            (
                store.list().await.expect("listed"),
                store.list().await.expect("listed"),
            )
        })
        .await;
        let ids: Vec<&str> = snaps.iter().map(|s| s.snapshot_id.as_str()).collect();
        assert_eq!(ids, ["newer", "older"]);
        assert_eq!(unreadable.len(), 1);
        assert_eq!(
            unreadable[0].file,
            "configmap://payments/offset-snapshots/broken.json"
        );
        assert!(none.is_empty() && nothing.is_empty());
    }

    #[tokio::test]
    async fn exists_checks_the_entry() {
        let s = doc("s1");
        let script = vec![
            get(200, config_map("7", &[("s1.json", &s)])),
            get(200, config_map("7", &[("s1.json", &s)])),
        ];
        let (yes, no) = scenario(script, |store| async move {
            (
                store.exists("s1").await.expect("exists"),
                store.exists("s2").await.expect("exists"),
            )
        })
        .await;
        assert!(yes && !no);
    }

    #[tokio::test]
    async fn delete_removes_only_that_key() {
        let a = doc("a");
        let b = doc("b");
        let script = vec![
            get(200, config_map("7", &[("a.json", &a), ("b.json", &b)])),
            patch(
                json!({ "metadata": { "resourceVersion": "7" }, "data": { "a.json": null } }),
                409,
                conflict(),
            ),
            get(200, config_map("8", &[("a.json", &a), ("b.json", &b)])),
            patch(
                json!({ "metadata": { "resourceVersion": "8" }, "data": { "a.json": null } }),
                200,
                config_map("9", &[("b.json", &b)]),
            ),
            // Deleting again: the entry is gone.
            get(200, config_map("9", &[("b.json", &b)])),
            // The ConfigMap is gone.
            get(404, not_found()),
        ];
        let (first, again, gone) = scenario(script, |store| async move {
            (
                store.delete("a").await,
                store.delete("a").await.expect_err("already deleted"),
                store.delete("a").await.expect_err("no ConfigMap"),
            )
        })
        .await;
        first.expect("deleted");
        assert_eq!(again.exit_code(), 3);
        assert_eq!(gone.exit_code(), 3);
    }

    #[tokio::test]
    async fn a_refused_api_call_is_the_source_of_the_error_and_the_read_runs_in_a_span() {
        use std::error::Error as _;
        let (spans, _guard) = crate::trace_capture::Spans::install();
        let script = vec![get(
            403,
            status(403, "Forbidden", "configmaps is forbidden"),
        )];
        let err = scenario(script, |store| async move {
            store.load("s1").await.expect_err("forbidden")
        })
        .await;
        assert_eq!((err.exit_code(), err.label()), (7, "storage_unreachable"));
        let source = err.source().expect("the Kubernetes API error is kept");
        assert!(
            matches!(source.downcast_ref::<kube::Error>(), Some(kube::Error::Api(s)) if s.code == 403),
            "{source:?}"
        );
        let read = spans.named("configmap.get");
        assert_eq!(read.len(), 1, "{read:?}");
        assert_eq!(read[0]["snapshot_id"], "s1");
        assert_eq!(
            read[0]["configmap"],
            "configmap://payments/offset-snapshots"
        );
    }

    #[tokio::test]
    async fn forbidden_names_the_missing_permission() {
        let script = vec![get(
            403,
            status(
                403,
                "Forbidden",
                "configmaps \"offset-snapshots\" is forbidden: User \"system:serviceaccount:payments:tidemark-worker\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"payments\"",
            ),
        )];
        let err = scenario(script, |store| async move {
            store.load("s1").await.expect_err("forbidden")
        })
        .await;
        assert_eq!(err.exit_code(), 7);
        let msg = err.to_string();
        assert!(
            msg.starts_with("storage unreachable at configmap://payments/offset-snapshots: reading ConfigMap 'offset-snapshots' was forbidden"),
            "{msg}"
        );
        assert!(
            msg.contains("needs get, create and patch on configmaps/offset-snapshots in namespace 'payments'"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn an_in_cluster_style_client_builds_its_tls_stack() {
        // The worker's TLS stack must be usable without installing a crypto provider by hand.
        let mut config = kube::Config::new("https://127.0.0.1:6443".parse().expect("url"));
        config.default_namespace = "payments".into();
        kube::Client::try_from(config).expect("client with rustls");
    }
}

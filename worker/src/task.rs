//! The task document: what the operator asks a worker Job to do (`tidemark run --task FILE`),
//! and the compact result the worker reports back through the container's termination message.
//!
//! The operator renders a [`Task`] from a custom resource into a ConfigMap mounted into the Job;
//! credentials never appear in it (SASL from `KAFKA_USERNAME`/`KAFKA_PASSWORD` env set from
//! Secrets, TLS as files in a mounted Secret, cloud credentials from the provider's env vars).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version tag of the task document format.
pub const TASK_API_VERSION: &str = "tidemark.dev/task-v1";

/// Largest result the worker writes to the termination message (Kubernetes keeps 4096 bytes).
pub const MAX_RESULT_BYTES: usize = 4096;

/// One unit of work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Task {
    /// Always [`TASK_API_VERSION`].
    pub api_version: String,
    /// The resource the task was rendered from, `namespace/name`, for logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(flatten)]
    pub work: TaskWork,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum TaskWork {
    /// A KafkaOffsetRollback operation.
    OffsetRollback(OffsetRollbackTask),
}

/// snapshot | rollback | verify | delete of an offset snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OffsetRollbackTask {
    pub operation: RollbackOperation,
    /// Needed by every operation but delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaTarget>,
    pub storage: StorageTarget,
    /// snapshot: the groups to capture; rollback/verify: the subset to act on (empty = all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumer_groups: Vec<String>,
    /// Required except for snapshot, where a missing id is generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// verify: also count partitions committed now but absent from the snapshot, and fail on
    /// any difference.
    #[serde(default)]
    pub strict: bool,
    /// rollback: re-read and compare afterwards (default true).
    #[serde(default = "yes")]
    pub verify_after_rollback: bool,
}

fn yes() -> bool {
    true
}

/// The four operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RollbackOperation {
    Snapshot,
    Rollback,
    Verify,
    Delete,
}

/// How to reach Kafka; secrets come from the environment and mounted files only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaTarget {
    pub bootstrap_servers: Vec<String>,
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    pub security_protocol: String,
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, when SASL is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_mechanism: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_ca_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_certificate_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_key_location: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

/// Where snapshots are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum StorageTarget {
    /// A `--path` style location: directory (e.g. a mounted PVC), s3://, gs://, az://.
    Location {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        s3_region: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        s3_endpoint: Option<String>,
        #[serde(default)]
        s3_path_style: bool,
        #[serde(default)]
        allow_http: bool,
    },
    /// A ConfigMap, one `<snapshotId>.json` entry per snapshot.
    ConfigMap { namespace: String, name: String },
}

/// What the worker reports back (JSON, at most [`MAX_RESULT_BYTES`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskResult {
    /// `Completed` or `Failed`.
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// One line for the Ready condition's message.
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_data: Option<ResultSnapshotData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<ResultVerification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_rolled_back: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_failed: Option<u64>,
    /// Set when the task failed: the error's label and exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ResultError>,
}

/// Counts of a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultSnapshotData {
    pub groups: u64,
    pub total_partitions: u64,
    pub timestamp: String,
}

/// A verification outcome, with differences truncated to fit the termination message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultVerification {
    pub matched: bool,
    pub total_differences: u64,
    /// The first differences (as many as fit).
    #[serde(default)]
    pub differences: Vec<ResultDifference>,
}

/// One difference: group, topic, partition, expected, actual.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultDifference {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<i64>,
}

/// Why a task failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultError {
    pub kind: String,
    pub exit_code: i32,
}

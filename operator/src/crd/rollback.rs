//! `KafkaOffsetRollback` (korb): take, apply, verify or delete an offset snapshot.

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{JobOptions, KafkaClusterSpec, StorageSpec};
use super::status::{Condition, Phase};

/// Snapshot ids: what `tidemark` accepts, and a valid ConfigMap key once `.json` is appended.
pub const SNAPSHOT_ID_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,247}$";

/// Take, apply, verify or delete a consumer-group offset snapshot.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "tidemark.dev",
    version = "v1alpha1",
    kind = "KafkaOffsetRollback",
    plural = "kafkaoffsetrollbacks",
    shortname = "korb",
    category = "tidemark",
    namespaced,
    status = "KafkaOffsetRollbackStatus",
    printcolumn = r#"{"name":"Operation","type":"string","jsonPath":".spec.operation"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Snapshot","type":"string","jsonPath":".status.snapshotId"}"#,
    printcolumn = r#"{"name":"Matched","type":"boolean","jsonPath":".status.verificationResult.matched"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    cel
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.operation == 'delete' || has(self.kafkaCluster)").message("kafkaCluster is required for snapshot, rollback and verify").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("self.operation == 'snapshot' || has(self.snapshotId)").message("snapshotId is required for rollback, verify and delete").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("self.operation != 'snapshot' || (has(self.consumerGroups) && size(self.consumerGroups) > 0)").message("consumerGroups must name at least one group for snapshot").reason(Reason::FieldValueRequired))]
pub struct KafkaOffsetRollbackSpec {
    /// The cluster (not needed for delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_cluster: Option<KafkaClusterSpec>,

    /// Groups to snapshot; for rollback and verify, the subset of the snapshot's groups to act
    /// on (default: all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(g, size(g) > 0)").message("consumer group names must not be empty"))]
    pub consumer_groups: Vec<String>,

    /// snapshot, rollback, verify or delete.
    pub operation: Operation,

    /// Snapshot to create (generated when omitted) or to act on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,247}$"))]
    #[x_kube(validation = Rule::new("!self.contains('..')").message("snapshotId must not contain '..'"))]
    pub snapshot_id: Option<String>,

    /// Where snapshots are kept.
    pub storage: StorageSpec,

    /// Options of the verify operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyOptions>,

    /// Compute resources of the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Job options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobOptions>,
}

/// What a KafkaOffsetRollback does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Operation {
    Snapshot,
    Rollback,
    Verify,
    Delete,
}

impl Operation {
    /// The spelling used in the spec and by the worker.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Snapshot => "snapshot",
            Operation::Rollback => "rollback",
            Operation::Verify => "verify",
            Operation::Delete => "delete",
        }
    }
}

/// Options of the verify operation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyOptions {
    /// Fail when offsets differ (the phase becomes Failed), and also count partitions committed
    /// now but absent from the snapshot as differences.
    #[serde(default)]
    pub strict: bool,
}

/// Observed state of a KafkaOffsetRollback.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaOffsetRollbackStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
    /// The snapshot acted on (the generated id for a snapshot without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// The worker Job of the current run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_data: Option<SnapshotData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_result: Option<VerificationResult>,
    /// Rollback: groups rolled back and failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_rolled_back: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_failed: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// What a snapshot holds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotData {
    pub groups: i64,
    pub total_partitions: i64,
    pub timestamp: String,
}

/// Outcome of comparing current offsets with a snapshot.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerificationResult {
    pub matched: bool,
    /// Differences (at most 50 listed; `totalDifferences` counts all).
    #[serde(default)]
    pub differences: Vec<OffsetDifference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_differences: Option<i64>,
}

/// One partition whose committed offset differs from the snapshot.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OffsetDifference {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<i64>,
}

//! Plan, then approve: `spec.approval` and `spec.approvalTimeout` of KafkaRestore,
//! KafkaOffsetReset and KafkaOffsetRollback (operation rollback), and the plan a `Manual`
//! resource reports in `status.plan` while it waits for the annotation
//! [`APPROVE_ANNOTATION`]` = <plan hash>`.

use serde::{Deserialize, Serialize};

/// The annotation that approves a plan: its value is the hash in `status.plan.hash`.
pub const APPROVE_ANNOTATION: &str = "tidemark.dev/approve";

/// `spec.approvalTimeout` when not given: a plan older than this is made again.
pub const DEFAULT_APPROVAL_TIMEOUT: &str = "24h";

/// Whether a run waits for a person to approve its plan.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum Approval {
    /// Run at once (the default).
    #[default]
    Automatic,
    /// Plan first (a planning Job that changes nothing), report the plan in `status.plan`, and
    /// run exactly that plan once the resource carries `tidemark.dev/approve: <plan hash>`.
    Manual,
}

impl Approval {
    /// Whether the run waits for an approval.
    pub fn is_manual(&self) -> bool {
        *self == Approval::Manual
    }

    /// Whether it is the default (not written back).
    pub fn is_automatic(&self) -> bool {
        *self == Approval::Automatic
    }
}

/// `spec.approvalTimeout`, or its default.
pub fn approval_timeout(value: Option<&str>) -> &str {
    value.unwrap_or(DEFAULT_APPROVAL_TIMEOUT)
}

/// A plan: what a run will change (or, for a KafkaOffsetReset that is not `Manual`, what its
/// last run changed: only `groups` and `partitions`). With `spec.approval: Manual` it is the
/// plan the planning Job stored, which the run executes once approved; the whole plan is in the
/// resource's storage under `key`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanStatus {
    /// Consumer groups whose offsets change.
    #[serde(default)]
    pub groups: i64,
    /// A KafkaOffsetReset or KafkaOffsetRollback: partitions whose committed offset changes; a
    /// KafkaRestore: partitions written.
    #[serde(default)]
    pub partitions: i64,
    /// The plan's hash (16 hex digits): approve it with `kubectl annotate <kind> <name>
    /// tidemark.dev/approve=<hash>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Where the whole plan is, relative to the resource's storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// When the plan was made (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// When it expires (`created` + `spec.approvalTimeout`): an unapproved plan is then made
    /// again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// The run the plan is for (`status.run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Plans made for this run so far (1, then one more for each plan made again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i64>,
    /// The planning Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// One line saying what executing the plan does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// A KafkaRestore: records and bytes to write, topics written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<i64>,
    /// A KafkaRestore: partitions whose committed offset its consumer-group phase changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsets: Option<i64>,
    /// A KafkaRestore: topics it creates (the first 20; `topicsToCreateTotal` counts all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics_to_create: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics_to_create_total: Option<i64>,
    /// A KafkaRestore: topic configs the target would refuse, as `topic: config`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_configs: Vec<String>,
    /// Groups with active members when planned (the first 20; `activeGroupsTotal` counts all):
    /// the run would refuse them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_groups_total: Option<i64>,
    /// The safety snapshot the run takes before it changes any offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_snapshot_id: Option<String>,
    /// The last `tidemark.dev/approve` value that named another hash (it was ignored, with one
    /// Warning Event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored_approval: Option<String>,
}

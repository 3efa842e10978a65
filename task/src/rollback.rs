//! A KafkaOffsetRollback operation: snapshot | rollback | verify | delete of an offset snapshot.

use serde::{Deserialize, Serialize};

use crate::field::{field_error, field_invalid};
use crate::ids::validate_id;
use crate::target::{KafkaTarget, StorageTarget};
use crate::Result;

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
    #[serde(default = "crate::yes")]
    pub verify_after_rollback: bool,
    /// rollback: id of the safety snapshot of the offsets it replaces (default: generated). An
    /// existing snapshot with this id is kept: a retried run keeps what its first attempt stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_snapshot_id: Option<String>,
    /// Plan only: write the full plan to this key of the task's storage and report its hash and
    /// summary ([`crate::ResultPlan`]); nothing is changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_out: Option<String>,
    /// Execute exactly this approved plan; refuse (exit [`crate::exit::PLAN_CHANGED`]) when the
    /// cluster no longer matches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_plan: Option<crate::plan::ApprovedPlan>,
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

impl OffsetRollbackTask {
    /// Checks the fields the operation needs: `kafka` for all but delete, `snapshotId` (a valid
    /// id) for all but snapshot, `consumerGroups` for snapshot, and a usable storage target.
    pub fn validate(&self) -> Result<()> {
        let op = self.operation.as_str();
        match &self.kafka {
            None if self.operation != RollbackOperation::Delete => {
                return Err(field_error(
                    "kafka",
                    format!("is required for operation {op}"),
                ));
            }
            None => {}
            Some(k) => k.validate()?,
        }
        match &self.snapshot_id {
            None if self.operation != RollbackOperation::Snapshot => {
                return Err(field_error(
                    "snapshotId",
                    format!("is required for operation {op}"),
                ));
            }
            None => {}
            Some(id) => {
                validate_id(id).map_err(|e| field_invalid("snapshotId", e))?;
            }
        }
        if let Some(i) = self
            .consumer_groups
            .iter()
            .position(|g| g.trim().is_empty())
        {
            return Err(field_error(
                &format!("consumerGroups[{i}]"),
                "is empty; name a consumer group",
            ));
        }
        if self.operation == RollbackOperation::Snapshot && self.consumer_groups.is_empty() {
            return Err(field_error(
                "consumerGroups",
                "is required for operation snapshot: list the groups to capture",
            ));
        }
        crate::plan::validate_plan_fields(self.plan_out.as_deref(), self.approved_plan.as_ref())?;
        if (self.plan_out.is_some() || self.approved_plan.is_some())
            && self.operation != RollbackOperation::Rollback
        {
            return Err(field_error(
                if self.plan_out.is_some() {
                    "planOut"
                } else {
                    "approvedPlan"
                },
                format!("is set for operation {op}; only a rollback is planned and approved"),
            ));
        }
        self.storage.validate()
    }
}

impl RollbackOperation {
    /// The operation as written in the task and the CR: `snapshot`, `rollback`, `verify`,
    /// `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            RollbackOperation::Snapshot => "snapshot",
            RollbackOperation::Rollback => "rollback",
            RollbackOperation::Verify => "verify",
            RollbackOperation::Delete => "delete",
        }
    }
}

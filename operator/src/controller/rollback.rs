//! KafkaOffsetRollback as a [`RunKind`]: its status carries the operation and snapshot id from
//! the spec, and from the worker's result the snapshot's counts, the verification outcome
//! (at most [`MAX_DIFFERENCES`] differences) and the rollback counts. The reconcile itself is
//! [`super::worker::reconcile`].

use tidemark::task::TaskResult;

use super::status::{clamp, Reasons};
use super::RunKind;
use crate::crd::rollback::{OffsetDifference, Operation, SnapshotData, VerificationResult};
use crate::crd::status::RunStatus;
use crate::crd::{KafkaOffsetRollback, KafkaOffsetRollbackStatus};

/// The kind, as metrics and logs name it.
pub const KIND: &str = "KafkaOffsetRollback";

/// A verify found differences (strict: the run failed).
pub const REASON_VERIFICATION_FAILED: &str = "VerificationFailed";
/// A non-strict verify found differences: the run completed, offsets differ.
pub const REASON_OFFSETS_DIFFER: &str = "OffsetsDiffer";

/// Most differences listed in `status.verificationResult.differences`.
pub const MAX_DIFFERENCES: usize = 50;

impl RunKind for KafkaOffsetRollback {
    type Status = KafkaOffsetRollbackStatus;

    fn status(&self) -> Option<&KafkaOffsetRollbackStatus> {
        self.status.as_ref()
    }

    fn common(status: &KafkaOffsetRollbackStatus) -> &RunStatus {
        &status.common
    }

    fn common_mut(status: &mut KafkaOffsetRollbackStatus) -> &mut RunStatus {
        &mut status.common
    }

    fn new_run_status(&self) -> KafkaOffsetRollbackStatus {
        KafkaOffsetRollbackStatus {
            operation: Some(self.spec.operation),
            snapshot_id: self.spec.snapshot_id.clone(),
            ..KafkaOffsetRollbackStatus::default()
        }
    }

    fn describe(&self) -> String {
        format!("operation {}", self.spec.operation.as_str())
    }

    fn record_result(
        &self,
        status: &mut KafkaOffsetRollbackStatus,
        result: &TaskResult,
    ) -> Reasons {
        if let Some(id) = &result.snapshot_id {
            status.snapshot_id = Some(id.clone());
        }
        status.snapshot_data = result.snapshot_data.as_ref().map(|d| SnapshotData {
            groups: clamp(d.groups),
            total_partitions: clamp(d.total_partitions),
            timestamp: d.timestamp.clone(),
        });
        status.verification_result = result.verification.as_ref().map(|v| VerificationResult {
            matched: v.matched,
            differences: v
                .differences
                .iter()
                .take(MAX_DIFFERENCES)
                .map(|d| OffsetDifference {
                    group: d.group.clone(),
                    topic: d.topic.clone(),
                    partition: d.partition,
                    expected: d.expected,
                    actual: d.actual,
                })
                .collect(),
            total_differences: Some(clamp(v.total_differences)),
        });
        status.groups_rolled_back = result.groups_rolled_back.map(clamp);
        status.groups_failed = result.groups_failed.map(clamp);
        status.safety_snapshot_id = result.safety_snapshot_id.clone();
        let matched = result.verification.as_ref().is_none_or(|v| v.matched);
        let succeeded = match self.spec.operation {
            Operation::Snapshot => "SnapshotCreated",
            Operation::Rollback => "RolledBack",
            Operation::Verify if matched => "Verified",
            Operation::Verify => REASON_OFFSETS_DIFFER,
            Operation::Delete => "SnapshotDeleted",
        };
        Reasons {
            succeeded: succeeded.to_string(),
            failed: (!matched).then(|| REASON_VERIFICATION_FAILED.to_string()),
        }
    }
}

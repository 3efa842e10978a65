//! KafkaOffsetReset as a [`RunKind`]: its status carries whether the run is a dry run, and from
//! the worker's result the plan, the group counts, the throughput, the per-group outcomes (at
//! most [`MAX_GROUP_RESULTS`]) and the id of the safety snapshot that undoes the reset. The
//! reconcile itself is [`super::worker::reconcile`].

use tidemark_task::TaskResult;

use super::status::{clamp, Reasons};
use super::RunKind;
use crate::build::WorkerKind;
use crate::crd::approval::{Approval, PlanStatus};
use crate::crd::common::EncryptionSpec;
use crate::crd::reset::{GroupResult, PartitionPlan, ResetPlan};
use crate::crd::status::RunStatus;
use crate::crd::{KafkaOffsetReset, KafkaOffsetResetStatus};

/// The kind, as metrics and logs name it.
pub const KIND: &str = "KafkaOffsetReset";

/// Reason of a completed reset.
pub const REASON_OFFSETS_RESET: &str = "OffsetsReset";
/// Reason of a completed dry run.
pub const REASON_RESET_PLANNED: &str = "ResetPlanned";

/// Most per-group outcomes listed in `status.groupResults`.
pub const MAX_GROUP_RESULTS: usize = 50;
/// Partitions of one group's dry-run plan kept in the status at most.
pub const MAX_PLAN_PARTITIONS: usize = tidemark_task::MAX_RESULT_PLAN_PARTITIONS;

impl RunKind for KafkaOffsetReset {
    type Status = KafkaOffsetResetStatus;

    fn status(&self) -> Option<&KafkaOffsetResetStatus> {
        self.status.as_ref()
    }

    fn common(status: &KafkaOffsetResetStatus) -> &RunStatus {
        &status.common
    }

    fn common_mut(status: &mut KafkaOffsetResetStatus) -> &mut RunStatus {
        &mut status.common
    }

    /// Whether it is a dry run, and the plan of the run (`spec.approval: Manual`).
    fn new_run_status(&self) -> KafkaOffsetResetStatus {
        KafkaOffsetResetStatus {
            dry_run: Some(self.spec.dry_run),
            // Only a run that uses the storage uses its keys.
            encryption_key_id: WorkerKind::encryption(self).and_then(EncryptionSpec::key_id),
            plan: super::status::same_run_plan(
                self,
                self.status.as_ref().and_then(|s| s.plan.as_ref()),
            ),
            ..KafkaOffsetResetStatus::default()
        }
    }

    fn approval(&self) -> Option<(Approval, Option<&str>)> {
        Some((self.spec.approval, self.spec.approval_timeout.as_deref()))
    }

    fn plan(status: &Self::Status) -> Option<&PlanStatus> {
        status.plan.as_ref()
    }

    fn set_plan(status: &mut Self::Status, plan: Option<PlanStatus>) {
        let plan = plan.map(|mut p| {
            // Its partitions are those whose committed offset changes.
            if let Some(offsets) = p.offsets.take() {
                p.partitions = offsets;
            }
            p
        });
        status.plan = plan;
    }

    fn describe(&self) -> String {
        let dry_run = if self.spec.dry_run { " (dry run)" } else { "" };
        format!("reset {}{dry_run}", self.spec.reset_strategy.as_str())
    }

    fn record_result(&self, status: &mut KafkaOffsetResetStatus, result: &TaskResult) -> Reasons {
        // Only a safety snapshot is reported here: it is what undoes this reset. (A dry run
        // or `snapshotBeforeReset: false` stores none.)
        if self.spec.takes_snapshot() {
            if let Some(id) = &result.snapshot_id {
                status.snapshot_id = Some(id.clone());
            }
        }
        let dry_run = match &result.reset {
            Some(reset) => {
                status.dry_run = Some(reset.dry_run);
                // A dry run counts the groups that would change; a real run, those reset and
                // those that failed (the plan changed them, or tried to).
                let planned_groups = if reset.dry_run {
                    reset.groups_reset
                } else {
                    reset.groups_reset.saturating_add(reset.groups_failed)
                };
                // An approved run keeps its plan's hash and summary next to what it changed.
                status.plan = Some(ResetPlan {
                    groups: clamp(planned_groups),
                    partitions: clamp(reset.partitions_planned),
                    ..status.plan.take().unwrap_or_default()
                });
                status.groups_total = Some(clamp(reset.groups_total));
                status.groups_reset = Some(clamp(reset.groups_reset));
                status.groups_failed = Some(clamp(reset.groups_failed));
                status.offsets_reset = Some(clamp(reset.offsets_reset));
                status.offsets_per_second = Some(clamp(reset.offsets_per_second));
                status.group_results = reset
                    .group_results
                    .iter()
                    .take(MAX_GROUP_RESULTS)
                    .map(|g| GroupResult {
                        group: g.group.clone(),
                        status: g.status.clone(),
                        partitions: clamp(g.partitions),
                        error: g.error.clone(),
                        plan: g
                            .plan
                            .iter()
                            .take(MAX_PLAN_PARTITIONS)
                            .map(|p| PartitionPlan {
                                topic: p.topic.clone(),
                                partition: p.partition,
                                current: p.current,
                                target: p.target,
                                action: p.action.clone(),
                            })
                            .collect(),
                    })
                    .collect();
                status.total_group_results = Some(clamp(
                    reset
                        .total_group_results
                        .max(reset.group_results.len() as u64),
                ));
                reset.dry_run
            }
            None => self.spec.dry_run,
        };
        Reasons {
            succeeded: if dry_run {
                REASON_RESET_PLANNED
            } else {
                REASON_OFFSETS_RESET
            }
            .to_string(),
            failed: None,
        }
    }
}

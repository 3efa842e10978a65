//! KafkaOffsetRollback: the operation's fields, the snapshot id, and a snapshot the run would
//! overwrite.

use super::*;

impl SpecChecks for KafkaOffsetRollback {
    fn kafka_cluster(&self) -> Option<&KafkaClusterSpec> {
        self.spec.kafka_cluster.as_ref()
    }

    fn spec_problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let spec = &self.spec;
        let op = spec.operation.as_str();
        match &spec.kafka_cluster {
            None if spec.operation != Operation::Delete => problems.push(Problem::new(
                REASON_MISSING_FIELD,
                format!("spec.kafkaCluster is required for operation {op}"),
            )),
            None => {}
            Some(cluster) => cluster_problems(cluster, &mut problems),
        }

        match &spec.snapshot_id {
            None if spec.operation != Operation::Snapshot => problems.push(Problem::new(
                REASON_MISSING_FIELD,
                format!("spec.snapshotId is required for operation {op}"),
            )),
            None => {}
            Some(id) => problems.extend(snapshot_id_problem("spec.snapshotId", id)),
        }
        if spec.description.is_some() && spec.operation != Operation::Snapshot {
            problems.push(Problem::new(
                REASON_UNUSED_FIELD,
                format!("spec.description is only stored by operation snapshot, not {op}: remove it or change spec.operation"),
            ));
        }
        if spec.operation == Operation::Snapshot && spec.consumer_groups.is_empty() {
            problems.push(Problem::new(
                REASON_MISSING_FIELD,
                "spec.consumerGroups must name at least one group for operation snapshot",
            ));
        }

        match &spec.storage {
            None => problems.push(Problem::new(
                REASON_MISSING_FIELD,
                format!(
                    "spec.storage is required for operation {op}: say where snapshots are kept"
                ),
            )),
            Some(storage) => storage_problems("spec.storage", storage, &mut problems),
        }
        encryption_problems(
            spec.encryption.as_ref(),
            spec.storage.as_ref().map(|s| s.storage_type),
            &mut problems,
        );
        problems.extend(snapshot_exists_problem(self));
        let refused = (spec.operation != Operation::Rollback).then(|| {
            (
                REASON_UNUSED_FIELD,
                format!("spec.approval Manual is only used with operation rollback, not {op}: {op} changes no offsets"),
            )
        });
        problems.extend(approval::approval_problems(
            spec.approval,
            spec.approval_timeout.as_deref(),
            refused,
        ));
        problems
    }
}

/// `cr`'s status when it is a snapshot of a fixed id that a run of it has taken: a completed
/// run recorded what the snapshot holds (`snapshotData`) under that id.
pub fn taken_snapshot(cr: &KafkaOffsetRollback) -> Option<&KafkaOffsetRollbackStatus> {
    let id = cr.spec.snapshot_id.as_deref()?;
    let status = cr.status.as_ref()?;
    (cr.spec.operation == Operation::Snapshot
        && status.operation == Some(Operation::Snapshot)
        && status.snapshot_id.as_deref() == Some(id)
        && status.snapshot_data.is_some())
    .then_some(status)
}

/// A new run (a changed spec, a bumped run annotation) of a snapshot whose fixed id a run of
/// it took already: snapshots are never overwritten, so it is refused rather than failing with
/// "already exists". The same manifest applied again changes no generation and runs nothing.
fn snapshot_exists_problem(cr: &KafkaOffsetRollback) -> Option<Problem> {
    let status = taken_snapshot(cr)?;
    let run = RunId::of(cr).ok()?.to_string();
    let this_run = status.common.run.as_deref() == Some(run.as_str());
    if this_run && status.common.phase != Some(Phase::Pending) {
        return None;
    }
    let id = status.snapshot_id.as_deref().unwrap_or_default();
    let taken = status
        .snapshot_data
        .as_ref()
        .map_or_else(String::new, |d| format!(" at {}", d.timestamp));
    Some(Problem::new(
        REASON_SNAPSHOT_EXISTS,
        format!(
            "snapshot '{id}' was taken{taken} by this resource and is never overwritten, so run {run} does not take it again. To take another snapshot, change spec.snapshotId (or remove it for a generated id); to keep this one, revert the change"
        ),
    ))
}

//! KafkaOffsetRollback as a [`RunKind`]: its status carries the operation and snapshot id from
//! the spec, and from the worker's result the snapshot's counts, the verification outcome
//! (at most [`MAX_DIFFERENCES`] differences) and the rollback counts. The reconcile itself is
//! [`super::worker::reconcile`].
//!
//! A rollback or verify may be applied together with the snapshot it names (one manifest
//! holding all three): before its Job starts, [`RunKind::before_start`] looks for the
//! KafkaOffsetRollbacks of its namespace that take that snapshot into the same storage
//! ([`snapshot_wait`], no client). While one of them has not taken it, the run waits
//! (`WaitingForSnapshot`, looked at again every [`SNAPSHOT_POLL`]), for at most
//! [`SNAPSHOT_WAIT`]; a snapshot whose run failed, or that is not taken in time, fails the run
//! with `SnapshotNotTaken`. With none taking it, the run starts (the snapshot was taken before,
//! by another resource or the CLI), after at most [`SNAPSHOT_GRACE`] from the resource's
//! creation for a snapshot resource applied with it to appear.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tidemark_task::TaskResult;

use super::status::{self as st, clamp, Reasons};
use super::{worker, Context, Error, RunKind};
use crate::build::{self, RunId, RUN_ANNOTATION};
use crate::crd::approval::{Approval, PlanStatus};
use crate::crd::common::EncryptionSpec;
use crate::crd::rollback::{OffsetDifference, Operation, SnapshotData, VerificationResult};
use crate::crd::status::{Condition, Phase, RunStatus};
use crate::crd::{KafkaOffsetRollback, KafkaOffsetRollbackStatus};
use crate::validate::taken_snapshot;

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

    /// The operation and snapshot id; a snapshot whose id was taken already keeps what it
    /// holds (`snapshotData`), which is how a later run of it is refused
    /// ([`crate::validate::REASON_SNAPSHOT_EXISTS`]).
    fn new_run_status(&self) -> KafkaOffsetRollbackStatus {
        KafkaOffsetRollbackStatus {
            operation: Some(self.spec.operation),
            snapshot_id: self.spec.snapshot_id.clone(),
            encryption_key_id: self
                .spec
                .encryption
                .as_ref()
                .and_then(EncryptionSpec::key_id),
            snapshot_data: taken_snapshot(self).and_then(|s| s.snapshot_data.clone()),
            plan: st::same_run_plan(self, self.status.as_ref().and_then(|s| s.plan.as_ref())),
            ..KafkaOffsetRollbackStatus::default()
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

    async fn before_start(&self, ctx: &Context, run: RunId) -> Result<Option<Action>, Error> {
        if !waits_for_snapshot(self) {
            return Ok(None);
        }
        let ns = build::namespace(self).map_err(Error::Build)?;
        let api: Api<KafkaOffsetRollback> = Api::namespaced(ctx.client.clone(), &ns);
        let all = api
            .list(&ListParams::default())
            .await
            .map_err(|source| Error::Fetch {
                what: format!("the KafkaOffsetRollbacks of namespace {ns}"),
                source,
            })?;
        let now = st::now();
        match snapshot_wait(self, &all.items, Timestamp::now()) {
            SnapshotWait::Start => Ok(None),
            SnapshotWait::Wait(message) => {
                let status = waiting_for_snapshot(self, run, &message, &now);
                let event = (
                    EventType::Normal,
                    REASON_WAITING_FOR_SNAPSHOT,
                    "WaitForSnapshot",
                );
                worker::write_status(self, ctx, status, Some(event)).await?;
                Ok(Some(Action::requeue(SNAPSHOT_POLL)))
            }
            SnapshotWait::GiveUp(message) => {
                let status = snapshot_not_taken(self, run, &message, &now);
                let event = (
                    EventType::Warning,
                    REASON_SNAPSHOT_NOT_TAKEN,
                    "WaitForSnapshot",
                );
                worker::write_status(self, ctx, status, Some(event)).await?;
                Ok(Some(Action::await_change()))
            }
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

/// A rollback or verify waits while a KafkaOffsetRollback of its namespace takes the snapshot.
pub const REASON_WAITING_FOR_SNAPSHOT: &str = "WaitingForSnapshot";
/// The snapshot a rollback or verify waited for was not taken: the run that takes it failed, or
/// did not take it within [`SNAPSHOT_WAIT`].
pub const REASON_SNAPSHOT_NOT_TAKEN: &str = "SnapshotNotTaken";
/// How often a run waiting for its snapshot looks again.
pub const SNAPSHOT_POLL: Duration = Duration::from_secs(10);
/// The longest a rollback or verify waits for a snapshot being taken.
pub const SNAPSHOT_WAIT: Duration = Duration::from_secs(600);
/// How long after its creation a rollback or verify that finds no resource taking its snapshot
/// waits for one applied with it to appear, before it runs with the snapshot already stored.
pub const SNAPSHOT_GRACE: Duration = Duration::from_secs(15);

/// What a rollback or verify does about the snapshot it names before its Job starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotWait {
    /// Start: the snapshot was taken, or no resource takes it (it is already stored, or
    /// missing: the worker says so).
    Start,
    /// Wait: the message says for what.
    Wait(String),
    /// Fail the run: the snapshot will not be taken (why, and what to do).
    GiveUp(String),
}

/// Whether `cr` is a rollback or verify of a named snapshot.
fn waits_for_snapshot(cr: &KafkaOffsetRollback) -> bool {
    matches!(cr.spec.operation, Operation::Rollback | Operation::Verify)
        && cr.spec.snapshot_id.is_some()
}

/// The Ready condition of a status, as `reason: message`.
fn ready_text(status: &RunStatus) -> String {
    st::ready(status).map_or_else(
        || "no status yet".to_string(),
        |c| format!("{}: {}", c.reason, c.message),
    )
}

/// Where a producer of `cr`'s snapshot stands.
enum Producer {
    /// It took the snapshot.
    Taken,
    /// Its run failed without taking it (`reason: message`).
    Failed(String),
    /// It has not taken it yet (what it is doing).
    Busy(String),
}

fn producer_state(p: &KafkaOffsetRollback, id: &str) -> Producer {
    let Some(status) = &p.status else {
        return Producer::Busy("not started yet".into());
    };
    let common = &status.common;
    let same_id = status.snapshot_id.as_deref() == Some(id);
    if same_id && (common.phase == Some(Phase::Completed) || status.snapshot_data.is_some()) {
        return Producer::Taken;
    }
    let current = common.observed_generation == p.metadata.generation;
    match common.phase {
        Some(Phase::Failed) if current => Producer::Failed(ready_text(common)),
        Some(phase) => Producer::Busy(format!("{phase:?}, {}", ready_text(common))),
        None => Producer::Busy("not started yet".into()),
    }
}

/// When `cr` started waiting for its snapshot: its `WaitingForSnapshot` condition's transition
/// time, else `now`.
fn waiting_since(cr: &KafkaOffsetRollback, now: Timestamp) -> Timestamp {
    cr.status
        .as_ref()
        .and_then(|s| {
            s.common.conditions.iter().find(|c| {
                c.type_ == st::RECONCILING
                    && c.status == "True"
                    && c.reason == REASON_WAITING_FOR_SNAPSHOT
            })
        })
        .and_then(|c| c.last_transition_time.parse().ok())
        .unwrap_or(now)
}

/// The command that runs `cr` again.
fn rerun_command(cr: &KafkaOffsetRollback) -> String {
    let next = RunId::of(cr).map_or(1, |r| r.run + 1);
    format!(
        "kubectl annotate kafkaoffsetrollback {} {RUN_ANNOTATION}={next} --overwrite",
        cr.name_any()
    )
}

/// Whether rollback or verify `cr` starts now, waits for the snapshot it names, or gives up,
/// given `all` the KafkaOffsetRollbacks of its namespace at `now`: those that take the same
/// snapshot id into the same storage are its producers.
pub fn snapshot_wait(
    cr: &KafkaOffsetRollback,
    all: &[KafkaOffsetRollback],
    now: Timestamp,
) -> SnapshotWait {
    let Some(id) = cr
        .spec
        .snapshot_id
        .as_deref()
        .filter(|_| waits_for_snapshot(cr))
    else {
        return SnapshotWait::Start;
    };
    let op = cr.spec.operation.as_str();
    let ns = cr.namespace().unwrap_or_default();
    let producers: Vec<(String, Producer)> = all
        .iter()
        .filter(|p| {
            p.spec.operation == Operation::Snapshot
                && p.spec.snapshot_id.as_deref() == Some(id)
                && p.spec.storage == cr.spec.storage
                && p.metadata.deletion_timestamp.is_none()
                && p.name_any() != cr.name_any()
        })
        .map(|p| (p.name_any(), producer_state(p, id)))
        .collect();
    if producers.is_empty() {
        let created = cr.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let young = created
            .is_some_and(|t| now.as_second() - t.as_second() < clamp(SNAPSHOT_GRACE.as_secs()));
        return if young {
            SnapshotWait::Wait(format!(
                "no KafkaOffsetRollback in namespace {ns} takes snapshot '{id}' yet; this {op} waits up to {} s after its creation for one applied with it, then runs with the snapshot in spec.storage",
                SNAPSHOT_GRACE.as_secs()
            ))
        } else {
            after_rollbacks(cr, all, id, now)
        };
    }
    if producers.iter().any(|(_, p)| matches!(p, Producer::Taken)) {
        return after_rollbacks(cr, all, id, now);
    }
    let waited = now.as_second() - waiting_since(cr, now).as_second();
    let busy = producers.iter().find_map(|(name, p)| match p {
        Producer::Busy(what) => Some((name, what)),
        _ => None,
    });
    match busy {
        Some((name, what)) if waited < clamp(SNAPSHOT_WAIT.as_secs()) => {
            SnapshotWait::Wait(format!(
                "snapshot '{id}' is being taken by KafkaOffsetRollback '{name}' ({what}); this {op} starts once it is taken (checked every {} s, for at most {} minutes)",
                SNAPSHOT_POLL.as_secs(),
                SNAPSHOT_WAIT.as_secs() / 60
            ))
        }
        Some((name, what)) => SnapshotWait::GiveUp(format!(
            "snapshot '{id}' was not taken within {} minutes: KafkaOffsetRollback '{name}' is still {what}; this {op} did not run. Once the snapshot is taken, run it again: {}",
            SNAPSHOT_WAIT.as_secs() / 60,
            rerun_command(cr)
        )),
        None => {
            let (name, why) = producers
                .iter()
                .find_map(|(name, p)| match p {
                    Producer::Failed(why) => Some((name.as_str(), why.as_str())),
                    _ => None,
                })
                .unwrap_or_default();
            SnapshotWait::GiveUp(format!(
                "snapshot '{id}' was to be taken by KafkaOffsetRollback '{name}', whose run failed ({why}); this {op} did not run. Once the snapshot is taken, run it again: {}",
                rerun_command(cr)
            ))
        }
    }
}

/// Once its snapshot is taken, a verify also waits while a rollback of the same snapshot into
/// the same storage has not finished (applied with it, the verify checks what the rollback did),
/// for at most [`SNAPSHOT_WAIT`]; then it runs and reports what it finds. A rollback starts.
fn after_rollbacks(
    cr: &KafkaOffsetRollback,
    all: &[KafkaOffsetRollback],
    id: &str,
    now: Timestamp,
) -> SnapshotWait {
    if cr.spec.operation != Operation::Verify {
        return SnapshotWait::Start;
    }
    let running = all.iter().find(|p| {
        p.spec.operation == Operation::Rollback
            && p.spec.snapshot_id.as_deref() == Some(id)
            && p.spec.storage == cr.spec.storage
            && p.metadata.deletion_timestamp.is_none()
            && !rollback_finished(p)
    });
    let waited = now.as_second() - waiting_since(cr, now).as_second();
    match running {
        Some(r) if waited < clamp(SNAPSHOT_WAIT.as_secs()) => SnapshotWait::Wait(format!(
            "snapshot '{id}' is taken; this verify waits for KafkaOffsetRollback '{}' to finish rolling back to it ({}), checked every {} s for at most {} minutes",
            r.name_any(),
            r.status.as_ref().map_or_else(|| "no status yet".to_string(), |s| ready_text(&s.common)),
            SNAPSHOT_POLL.as_secs(),
            SNAPSHOT_WAIT.as_secs() / 60
        )),
        _ => SnapshotWait::Start,
    }
}

/// Whether rollback `p`'s current run has ended (Completed or Failed).
fn rollback_finished(p: &KafkaOffsetRollback) -> bool {
    p.status.as_ref().is_some_and(|s| {
        s.common.observed_generation == p.metadata.generation
            && matches!(s.common.phase, Some(Phase::Completed | Phase::Failed))
    })
}

/// `cr`'s conditions before a wait: only those of the same wait, so that the `Reconciling`
/// transition time says when the wait began.
fn wait_conditions(cr: &KafkaOffsetRollback) -> Vec<Condition> {
    cr.status
        .as_ref()
        .map(|s| {
            s.common
                .conditions
                .iter()
                .filter(|c| c.reason == REASON_WAITING_FOR_SNAPSHOT)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Pending and `Reconciling` with `WaitingForSnapshot`: run `run` waits for its snapshot.
pub fn waiting_for_snapshot(
    cr: &KafkaOffsetRollback,
    run: RunId,
    message: &str,
    now: &str,
) -> KafkaOffsetRollbackStatus {
    let mut status = cr.new_run_status();
    status.common = RunStatus {
        phase: Some(Phase::Pending),
        observed_generation: cr.metadata.generation,
        run: Some(run.to_string()),
        conditions: st::conditions(
            cr,
            &wait_conditions(cr),
            now,
            [false, true, false],
            REASON_WAITING_FOR_SNAPSHOT,
            message,
        ),
        ..RunStatus::default()
    };
    status
}

/// Failed and `Stalled` with `SnapshotNotTaken`: run `run` gave up waiting for its snapshot,
/// without a Job.
pub fn snapshot_not_taken(
    cr: &KafkaOffsetRollback,
    run: RunId,
    message: &str,
    now: &str,
) -> KafkaOffsetRollbackStatus {
    let mut status = cr.new_run_status();
    status.common = RunStatus {
        phase: Some(Phase::Failed),
        observed_generation: cr.metadata.generation,
        run: Some(run.to_string()),
        completion_time: Some(now.to_string()),
        conditions: st::conditions(
            cr,
            &wait_conditions(cr),
            now,
            [false, false, true],
            REASON_SNAPSHOT_NOT_TAKEN,
            message,
        ),
        ..RunStatus::default()
    };
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::SignedDuration;

    // With no resource taking its snapshot, a rollback applied a moment ago waits briefly for
    // one applied with it; an older one runs at once.
    #[test]
    fn with_no_producer_only_a_new_rollback_waits_and_only_briefly() {
        let now = Timestamp::now();
        let mut cr = korb(EMERGENCY_ROLLBACK);
        cr.metadata.creation_timestamp = Some(Time(now - SignedDuration::from_secs(3)));
        let SnapshotWait::Wait(message) = snapshot_wait(&cr, &[], now) else {
            panic!("a new rollback waits");
        };
        assert!(
            message.contains("waits up to 15 s after its creation"),
            "{message}"
        );
        cr.metadata.creation_timestamp = Some(Time(now - SignedDuration::from_secs(20)));
        assert_eq!(snapshot_wait(&cr, &[], now), SnapshotWait::Start);

        // A snapshot of the same id into other storage is not its producer.
        let mut other = korb(PRE_MIGRATION_SNAPSHOT);
        other.metadata.name = Some("elsewhere".into());
        other.spec.snapshot_id = cr.spec.snapshot_id.clone();
        if let Some(s3) = other.spec.storage.as_mut().and_then(|s| s.s3.as_mut()) {
            s3.prefix = Some("other-snapshots".into());
        }
        assert_ne!(other.spec.storage, cr.spec.storage);
        assert_eq!(
            snapshot_wait(&cr, &[other.clone()], now),
            SnapshotWait::Start
        );
        other.spec.storage = cr.spec.storage.clone();
        assert!(matches!(
            snapshot_wait(&cr, &[other], now),
            SnapshotWait::Wait(m) if m.contains("being taken by KafkaOffsetRollback 'elsewhere' (not started yet)")
        ));
    }
}

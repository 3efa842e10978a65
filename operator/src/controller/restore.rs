//! KafkaRestore as a [`RunKind`].
//!
//! A restore runs once: after a run that restored (not a dry run) completed, a spec change
//! starts no new Job — unlike the other kinds, where each generation is a run — and its
//! generation is only recorded ([`settled`]), since a second run would commit phase three's
//! consumer offsets again over the groups' later progress. Bumping the `tidemark.dev/run`
//! annotation runs it again on purpose, as for every kind, and after a failed run or a dry run a
//! spec change is a new run.
//!
//! Before a run starts, a `backupRef.name` is resolved through the KafkaBackup it names
//! ([`resolve`], no client): its storage, and the backup `backupRef.backupId` names, else the
//! one an earlier run of this resource used ([`pinned_backup_id`]), else the KafkaBackup's newest
//! completed backup. A KafkaBackup that is missing or has no completed backup stalls the
//! restore, and it is looked at again every [`REFERENCE_POLL`]. The run itself is the shared
//! one-run-per-[`RunId`] pipeline ([`worker::run_once`]); a started run is never resolved again
//! (its Job already names its backup). From the worker's result the status gets the progress,
//! the offset mapping, the group counts, the safety snapshot and a dry run's validation. With
//! `spec.shards` above 1 the Job is Indexed and its pods' results are summed ([`combine`]):
//! each pod restores its share under its own restore id, and pod 0 alone translates the groups.

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tidemark_task::{ResultRestore, TaskResult, PHASE_COMPLETED, PHASE_FAILED};

use super::status::{self as st, clamp, Reasons, ShardResult};
use super::{worker, Context, Error, RunKind, REFERENCE_POLL};
use crate::build::restore::{
    backup_source, restore_id, BackupSource, ResolvedBackup, ResolvedRestore,
};
use crate::build::{self, RunId, RUN_ANNOTATION};
use crate::crd::approval::{Approval, PlanStatus};
use crate::crd::common::EncryptionSpec;
use crate::crd::restore::{KafkaRestoreStatus, RestoreProgress};
use crate::crd::status::{Phase, RunStatus};
use crate::crd::{KafkaBackup, KafkaRestore};

/// The kind, as metrics and logs name it.
pub const KIND: &str = "KafkaRestore";

/// Reason of a completed restore.
pub const REASON_RESTORE_COMPLETED: &str = "RestoreCompleted";
/// Reason of a completed dry run.
pub const REASON_RESTORE_VALIDATED: &str = "RestoreValidated";
/// Reason of a restore whose worker ended without reporting it complete (and without an error).
pub const REASON_RESTORE_INCOMPLETE: &str = "RestoreIncomplete";
/// Reason of a restore whose data is in but some consumer groups were not committed.
pub const REASON_GROUPS_FAILED: &str = "GroupsFailed";
/// The KafkaBackup in `backupRef.name` does not exist.
pub const REASON_KAFKA_BACKUP_NOT_FOUND: &str = "KafkaBackupNotFound";
/// The KafkaBackup in `backupRef.name` has no completed backup (yet).
pub const REASON_NO_COMPLETED_BACKUP: &str = "NoCompletedBackup";
/// Event reason when a spec change after a completed restore is recorded but not run.
pub const REASON_SPEC_CHANGE_NOT_RUN: &str = "SpecChangeNotRun";

/// Why the backup of a KafkaRestore cannot be resolved (yet): the reason and message of its
/// `Stalled` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unresolved {
    pub reason: &'static str,
    pub message: String,
}

/// The backup an earlier run of `cr` resolved through its KafkaBackup (`status.backupId`),
/// while `backupRef` still names that KafkaBackup and no `backupId`: later runs restore the
/// same backup, so they resume it or report it complete rather than restore a newer one.
pub fn pinned_backup_id(cr: &KafkaRestore) -> Option<&str> {
    let backup_ref = &cr.spec.backup_ref;
    let status = cr.status.as_ref()?;
    (backup_ref.backup_id.is_none()
        && backup_ref.name.is_some()
        && status.kafka_backup == backup_ref.name)
        .then_some(status.backup_id.as_deref())
        .flatten()
}

/// The newest completed backup of `kb` (`status.lastBackupId` when `status.lastRun` completed),
/// or why there is none, for a message.
pub fn completed_backup(kb: &KafkaBackup) -> Result<String, String> {
    let Some(status) = &kb.status else {
        return Err("it has not run yet".into());
    };
    let completed = match &status.last_run {
        Some(last) => last.phase == Phase::Completed,
        None => status.common.phase == Some(Phase::Completed),
    };
    match (&status.last_backup_id, completed, &status.last_run) {
        (Some(id), true, _) => Ok(id.clone()),
        (Some(id), false, Some(last)) => Err(format!(
            "its newest backup {id} ended {:?} ({}: {})",
            last.phase, last.reason, last.message
        )),
        (Some(id), false, None) => Err(format!("its newest backup {id} did not complete")),
        (None, _, _) => Err(match status.common.phase {
            Some(phase) => format!("no backup has finished yet (phase {phase:?})"),
            None => "it has not run yet".into(),
        }),
    }
}

/// `cr` with `backupRef.name` resolved through `kb`, that KafkaBackup (`None`: it does not
/// exist): its storage, and the backup `backupRef.backupId` names, else the pinned one
/// ([`pinned_backup_id`]), else `kb`'s newest completed backup. `None` when `cr`'s `backupRef`
/// names no KafkaBackup (its backup is inline: nothing to resolve).
pub fn resolve(
    cr: &KafkaRestore,
    kb: Option<&KafkaBackup>,
) -> Result<Option<ResolvedRestore>, Unresolved> {
    let Some(name) = cr.spec.backup_ref.name.as_deref() else {
        return Ok(None);
    };
    let ns = cr.metadata.namespace.as_deref().unwrap_or_default();
    let Some(kb) = kb else {
        return Err(Unresolved {
            reason: REASON_KAFKA_BACKUP_NOT_FOUND,
            message: format!(
                "KafkaBackup '{name}' named by spec.backupRef.name not found in namespace {ns}; create it, or give spec.backupRef.backupId and spec.backupRef.storage instead of name"
            ),
        });
    };
    let backup_id = match (&cr.spec.backup_ref.backup_id, pinned_backup_id(cr)) {
        (Some(id), _) => id.clone(),
        (None, Some(pinned)) => pinned.to_string(),
        (None, None) => completed_backup(kb).map_err(|why| Unresolved {
            reason: REASON_NO_COMPLETED_BACKUP,
            message: format!(
                "KafkaBackup '{name}' named by spec.backupRef.name has no completed backup to restore: {why}; the restore starts once it has one (checked every {} s), or set spec.backupRef.backupId to one of its backups",
                REFERENCE_POLL.as_secs()
            ),
        })?,
    };
    Ok(Some(ResolvedRestore {
        restore: cr.clone(),
        backup: ResolvedBackup {
            kafka_backup: name.to_string(),
            backup_id,
            storage: kb.spec.storage.clone(),
            encryption: kb.spec.encryption.clone(),
        },
    }))
}

/// When `cr`'s restore has completed (a run that was not a dry run) and `run` differs from that
/// run only by its generation (a spec change, no bumped `tidemark.dev/run`): its status with the
/// new generation recorded as observed, and nothing else to do. `None` when `run` runs.
pub fn settled(cr: &KafkaRestore, run: RunId) -> Option<KafkaRestoreStatus> {
    let status = cr.status.as_ref()?;
    let done = RunId::parse(status.common.run.as_deref()?)?;
    let completed = status.common.phase == Some(Phase::Completed) && status.dry_run == Some(false);
    if !completed || done.run != run.run {
        return None;
    }
    let mut settled = status.clone();
    let generation = cr.metadata.generation;
    settled.common.observed_generation = generation;
    for condition in &mut settled.common.conditions {
        condition.observed_generation = generation;
    }
    Some(settled)
}

/// `restored` of `total` as a whole percentage, e.g. `42%` (`100%` when there is nothing to
/// restore).
pub fn percent(restored: u64, total: u64) -> String {
    if total == 0 {
        return "100%".into();
    }
    let p = (u128::from(restored) * 100 / u128::from(total)).min(100);
    format!("{p}%")
}

/// The status of a new run of `cr` restoring the backup `source`: the backup as far as it is
/// known (named, resolved or pinned), the restore id and whether the run is a dry run.
pub fn run_status(cr: &KafkaRestore, source: BackupSource<'_>) -> KafkaRestoreStatus {
    let (kafka_backup, backup_id) = match source {
        BackupSource::Inline { backup_id, .. } => (None, Some(backup_id.to_string())),
        BackupSource::Resolved(r) => (Some(r.kafka_backup.clone()), Some(r.backup_id.clone())),
        BackupSource::Unresolved { kafka_backup } => (
            Some(kafka_backup.to_string()),
            cr.spec
                .backup_ref
                .backup_id
                .as_deref()
                .or(pinned_backup_id(cr))
                .map(str::to_string),
        ),
        BackupSource::Missing => (None, None),
    };
    let own = cr.spec.encryption.as_ref();
    let encryption_key_id = match source {
        BackupSource::Resolved(r) => own
            .or(r.encryption.as_ref())
            .and_then(EncryptionSpec::key_id),
        // A started run is not resolved again: the KafkaBackup's key id recorded when it was.
        BackupSource::Unresolved { .. } if own.is_none() => {
            cr.status.as_ref().and_then(|s| s.encryption_key_id.clone())
        }
        _ => own.and_then(EncryptionSpec::key_id),
    };
    KafkaRestoreStatus {
        backup_id,
        kafka_backup,
        encryption_key_id,
        restore_id: restore_id(cr).ok(),
        dry_run: Some(cr.spec.dry_run),
        plan: st::same_run_plan(cr, cr.status.as_ref().and_then(|s| s.plan.as_ref())),
        ..KafkaRestoreStatus::default()
    }
}

/// What a run of `cr` restoring the backup `source` does.
pub fn describe_run(cr: &KafkaRestore, source: BackupSource<'_>) -> String {
    let backup = match source {
        BackupSource::Inline { backup_id, .. } => format!("backup {backup_id}"),
        BackupSource::Resolved(r) => {
            format!("backup {} of KafkaBackup {}", r.backup_id, r.kafka_backup)
        }
        BackupSource::Unresolved { kafka_backup } => {
            match cr
                .spec
                .backup_ref
                .backup_id
                .as_deref()
                .or(pinned_backup_id(cr))
            {
                Some(id) => format!("backup {id} of KafkaBackup {kafka_backup}"),
                None => format!("the newest backup of KafkaBackup {kafka_backup}"),
            }
        }
        BackupSource::Missing => "a backup".into(),
    };
    if cr.spec.dry_run {
        return format!("a dry run (validate-restore) of {backup}");
    }
    match &cr.spec.consumer_groups {
        Some(g) if g.reset_offsets => format!(
            "a restore of {backup}, then {} consumer-offset translation",
            g.strategy.as_str()
        ),
        _ => format!("a restore of {backup}"),
    }
}

impl RunKind for KafkaRestore {
    type Status = KafkaRestoreStatus;

    fn status(&self) -> Option<&KafkaRestoreStatus> {
        self.status.as_ref()
    }

    fn common(status: &KafkaRestoreStatus) -> &RunStatus {
        &status.common
    }

    fn common_mut(status: &mut KafkaRestoreStatus) -> &mut RunStatus {
        &mut status.common
    }

    /// The backup as far as it is known (named or pinned), the restore id and whether the run
    /// is a dry run.
    fn new_run_status(&self) -> KafkaRestoreStatus {
        run_status(self, backup_source(self))
    }

    fn describe(&self) -> String {
        describe_run(self, backup_source(self))
    }

    fn approval(&self) -> Option<(Approval, Option<&str>)> {
        Some((self.spec.approval, self.spec.approval_timeout.as_deref()))
    }

    fn plan(status: &Self::Status) -> Option<&PlanStatus> {
        status.plan.as_ref()
    }

    fn set_plan(status: &mut Self::Status, plan: Option<PlanStatus>) {
        status.plan = plan;
    }

    fn record_result(&self, status: &mut KafkaRestoreStatus, result: &TaskResult) -> Reasons {
        let restore = result.restore.as_ref();
        let dry_run = restore.map_or(self.spec.dry_run, |r| r.dry_run);
        status.dry_run = Some(dry_run);
        if let Some(r) = restore {
            if !r.restore_id.is_empty() {
                status.restore_id = Some(r.restore_id.clone());
            }
            status.topics = Some(clamp(r.topics));
            status.partitions = Some(clamp(r.partitions));
            status.progress = Some(RestoreProgress {
                records_restored: clamp(r.records_restored),
                records_total: clamp(r.records_total),
                bytes_restored: clamp(r.bytes_restored),
                bytes_total: clamp(r.bytes_total),
                percent: (!r.dry_run).then(|| percent(r.records_restored, r.records_total)),
            });
            status.validation = r.validation.clone();
            if !r.dry_run {
                status.offset_mapping = r.offset_mapping.clone().filter(|m| !m.is_empty());
                status.groups_translated = Some(clamp(r.groups_translated));
                status.groups_failed = Some(clamp(r.groups_failed));
            }
        }
        // Only a safety snapshot the run stored is reported: it is what undoes phase three.
        if self.spec.takes_snapshot() && !dry_run {
            if let Some(id) = &result.snapshot_id {
                status.snapshot_id = Some(id.clone());
            }
        }
        let groups_failed = restore.is_some_and(|r| r.groups_failed > 0);
        let complete = restore.is_some_and(|r| r.complete);
        let failed = if groups_failed {
            Some(REASON_GROUPS_FAILED)
        } else if !dry_run && !complete && result.error.is_none() {
            Some(REASON_RESTORE_INCOMPLETE)
        } else {
            None
        };
        Reasons {
            succeeded: if dry_run {
                REASON_RESTORE_VALIDATED
            } else {
                REASON_RESTORE_COMPLETED
            }
            .to_string(),
            failed: failed.map(str::to_string),
        }
    }

    /// The shards' results summed ([`combine`]); a restore the worker reports `Completed` but
    /// not complete (stopped before the end) failed.
    fn combine_shards(
        &self,
        _status: &mut KafkaRestoreStatus,
        shards: Vec<ShardResult>,
    ) -> Result<TaskResult, String> {
        combine(shards)
    }

    async fn reconcile(&self, ctx: &Context) -> Result<Action, Error> {
        if let Some(status) = RunId::of(self).ok().and_then(|run| settled(self, run)) {
            let done = status.common.run.clone().unwrap_or_default();
            if worker::write_status(self, ctx, status, None).await? {
                let next = RunId::of(self).map_or(1, |r| r.run + 1);
                let note = format!(
                    "The restore completed in run {done}; generation {} is recorded, not run (a restore runs once). To run it again, bump the annotation: kubectl annotate kafkarestore {} {RUN_ANNOTATION}={next} --overwrite",
                    self.metadata.generation.unwrap_or_default(),
                    self.name_any()
                );
                ctx.publish(
                    self,
                    EventType::Normal,
                    REASON_SPEC_CHANGE_NOT_RUN,
                    "Reconcile",
                    &note,
                )
                .await;
            }
            return Ok(Action::await_change());
        }
        let run = worker::validated_run(self, ctx).await?;
        let Some(name) = self.spec.backup_ref.name.as_deref() else {
            return worker::run_once(self, ctx, run).await;
        };
        if worker::run_started(self, run) {
            // Its Job and task were built from the backup resolved when it started.
            return worker::run_once(self, ctx, run).await;
        }
        let ns = build::namespace(self).map_err(Error::Build)?;
        let backups: Api<KafkaBackup> = Api::namespaced(ctx.client.clone(), &ns);
        let kb = backups.get_opt(name).await.map_err(|source| Error::Fetch {
            what: format!("KafkaBackup {ns}/{name}"),
            source,
        })?;
        let resolved = match resolve(self, kb.as_ref()) {
            Ok(Some(resolved)) => resolved,
            Ok(None) => return worker::run_once(self, ctx, run).await,
            Err(Unresolved { reason, message }) => {
                let status = st::stalled(self, Some(run), reason, &message, &st::now());
                worker::write_status(
                    self,
                    ctx,
                    status,
                    Some((EventType::Warning, reason, "ResolveBackup")),
                )
                .await?;
                return Err(Error::MissingReference { reason, message });
            }
        };
        // The worker's own checks of the whole task, now that it can be built.
        let run = worker::validated_run(&resolved, ctx).await?;
        worker::run_once(&resolved, ctx, run).await
    }
}

/// Whether a shard's result is its part done: restored (or validated, in a dry run).
fn shard_done(r: &TaskResult) -> bool {
    r.phase == PHASE_COMPLETED && r.restore.as_ref().is_some_and(|x| x.dry_run || x.complete)
}

/// The shards' results as one: one shard's is its own (made `Failed` unless complete); with
/// several (each restored its share under `<restoreId>-s<i>-of-<n>`), records and bytes are
/// summed, the restore id is the shards' common one, and the first shard that did not complete
/// fails the run with its message and error.
pub fn combine(shards: Vec<ShardResult>) -> Result<TaskResult, String> {
    let total = shards.len();
    if total <= 1 {
        return st::single_result(shards).map(|r| {
            let done = shard_done(&r);
            st::failed_unless_complete(r, done, "restore")
        });
    }
    if shards.iter().all(|s| s.result.is_err()) {
        let why = shards
            .iter()
            .find_map(|s| {
                s.result
                    .as_ref()
                    .err()
                    .map(|e| format!("shard {}: {e}", s.index))
            })
            .unwrap_or_default();
        return Err(format!("no shard left a result ({why})"));
    }
    let completed = shards
        .iter()
        .filter(|s| s.result.as_ref().is_ok_and(shard_done))
        .count();
    let mut sum = ResultRestore {
        complete: completed == total,
        ..ResultRestore::default()
    };
    let mut mappings = Vec::new();
    for (index, r) in shards
        .iter()
        .filter_map(|s| Some((s.index, s.result.as_ref().ok()?.restore.as_ref()?)))
    {
        if sum.restore_id.is_empty() {
            let suffix = format!("-s{index}-of-{total}");
            sum.restore_id = r
                .restore_id
                .strip_suffix(&suffix)
                .unwrap_or(&r.restore_id)
                .to_string();
        }
        sum.dry_run |= r.dry_run;
        sum.topics = sum.topics.max(r.topics);
        sum.partitions = sum.partitions.saturating_add(r.partitions);
        sum.records_total = sum.records_total.saturating_add(r.records_total);
        sum.records_restored = sum.records_restored.saturating_add(r.records_restored);
        sum.bytes_total = sum.bytes_total.saturating_add(r.bytes_total);
        sum.bytes_restored = sum.bytes_restored.saturating_add(r.bytes_restored);
        // Shard 0 alone translates the groups (over every shard's mapping).
        sum.groups_translated = sum.groups_translated.saturating_add(r.groups_translated);
        sum.groups_failed = sum.groups_failed.saturating_add(r.groups_failed);
        mappings.extend(r.offset_mapping.iter().filter(|m| !m.is_empty()).cloned());
    }
    // Its safety snapshot is what undoes phase three.
    let snapshot_id = shards
        .iter()
        .find_map(|s| s.result.as_ref().ok()?.snapshot_id.clone());
    if sum.dry_run {
        sum.complete = false;
    }
    sum.offset_mapping = match mappings.len() {
        0 => None,
        1 => mappings.pop(),
        n => Some(format!(
            "{} (and {} more shards' mappings)",
            mappings[0],
            n - 1
        )),
    };
    let what = if sum.dry_run { "validated" } else { "restored" };
    let first_failure = shards
        .iter()
        .find(|s| !s.result.as_ref().is_ok_and(shard_done));
    let (phase, message, error) = match first_failure {
        None => (
            PHASE_COMPLETED,
            format!(
                "restore {}: {} of {} records {what} in {} partitions, {total} shards",
                sum.restore_id, sum.records_restored, sum.records_total, sum.partitions
            ),
            None,
        ),
        Some(shard) => {
            let not_done = "the worker did not report the restore complete";
            let (message, error) = st::shard_failure(shard, total, completed, Some(not_done));
            (PHASE_FAILED, message, error)
        }
    };
    Ok(TaskResult {
        phase: phase.to_string(),
        operation: Some(
            if sum.dry_run {
                "validate-restore"
            } else {
                "restore"
            }
            .into(),
        ),
        message,
        restore: Some(sum),
        snapshot_id,
        error,
        ..TaskResult::default()
    })
}

/// A resolved restore runs as its KafkaRestore: the same status, results and shards, with the
/// resolved backup in its status and description.
impl RunKind for ResolvedRestore {
    type Status = KafkaRestoreStatus;

    fn status(&self) -> Option<&KafkaRestoreStatus> {
        self.restore.status()
    }

    fn common(status: &KafkaRestoreStatus) -> &RunStatus {
        KafkaRestore::common(status)
    }

    fn common_mut(status: &mut KafkaRestoreStatus) -> &mut RunStatus {
        KafkaRestore::common_mut(status)
    }

    fn new_run_status(&self) -> KafkaRestoreStatus {
        run_status(&self.restore, self.source())
    }

    fn describe(&self) -> String {
        describe_run(&self.restore, self.source())
    }

    fn approval(&self) -> Option<(Approval, Option<&str>)> {
        self.restore.approval()
    }

    fn plan(status: &Self::Status) -> Option<&PlanStatus> {
        KafkaRestore::plan(status)
    }

    fn set_plan(status: &mut Self::Status, plan: Option<PlanStatus>) {
        KafkaRestore::set_plan(status, plan);
    }

    fn record_result(&self, status: &mut KafkaRestoreStatus, result: &TaskResult) -> Reasons {
        self.restore.record_result(status, result)
    }

    fn combine_shards(
        &self,
        status: &mut KafkaRestoreStatus,
        shards: Vec<ShardResult>,
    ) -> Result<TaskResult, String> {
        self.restore.combine_shards(status, shards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::*;
    use crate::crd::restore::KafkaRestoreStatus;

    fn restore_result(dry_run: bool, complete: bool, groups_failed: u64) -> TaskResult {
        TaskResult {
            phase: "Completed".into(),
            operation: Some(
                if dry_run {
                    "validate-restore"
                } else {
                    "restore"
                }
                .into(),
            ),
            snapshot_id: Some("kr-x-before-offsets".into()),
            message: "done".into(),
            restore: Some(ResultRestore {
                restore_id: format!("kr-{RESTORE_UID}"),
                dry_run,
                complete,
                topics: 2,
                partitions: 6,
                records_total: 1000,
                records_restored: if dry_run { 0 } else { 421 },
                bytes_total: 100_000,
                bytes_restored: if dry_run { 0 } else { 42_100 },
                offset_mapping: (!dry_run).then(|| "backups/b/restores/r/mapping.json".into()),
                groups_translated: 2,
                groups_failed,
                validation: dry_run.then(|| "VALID: 2 topics".into()),
            }),
            ..TaskResult::default()
        }
    }

    #[test]
    fn a_kafka_backup_resolves_to_its_storage_and_newest_completed_backup() {
        let cr = kr(RESTORE_FULL);
        let kb = orders_backup("orders-snapshot-g1-r0-3c9a7e10", "Completed");
        let resolved = resolve(&cr, Some(&kb)).expect("resolved").expect("named");
        assert_eq!(
            resolved.backup,
            ResolvedBackup {
                kafka_backup: "orders-snapshot".into(),
                backup_id: "orders-snapshot-g1-r0-3c9a7e10".into(),
                storage: kb.spec.storage.clone(),
                encryption: None,
            }
        );
        // The resource itself is unchanged.
        assert_eq!(resolved.restore.spec, cr.spec);
        assert_eq!(resolved.restore.metadata, cr.metadata);

        // backupRef.backupId chooses another backup of it, even one the status does not name.
        let chosen = kr(RESTORE_DRY_RUN);
        let failed = orders_backup("orders-snapshot-g2-r0-3c9a7e10", "Failed");
        let resolved = resolve(&chosen, Some(&failed)).expect("resolved");
        assert_eq!(
            resolved.map(|r| r.backup.backup_id),
            Some("orders-snapshot-g1-r0-6f1c2a9e".into())
        );
    }

    #[test]
    fn a_missing_or_unfinished_kafka_backup_is_named_in_the_message() {
        let cr = kr(RESTORE_FULL);
        assert_eq!(
            resolve(&cr, None).map(|_| ()),
            Err(Unresolved {
                reason: REASON_KAFKA_BACKUP_NOT_FOUND,
                message: "KafkaBackup 'orders-snapshot' named by spec.backupRef.name not found in namespace kafka-backup; create it, or give spec.backupRef.backupId and spec.backupRef.storage instead of name".into(),
            })
        );
        let never_ran = kb(BACKUP_ONE_SHOT_PVC);
        let err = resolve(&cr, Some(&never_ran))
            .map(|_| ())
            .expect_err("no backup");
        assert_eq!(err.reason, REASON_NO_COMPLETED_BACKUP);
        assert_eq!(
            err.message,
            "KafkaBackup 'orders-snapshot' named by spec.backupRef.name has no completed backup to restore: it has not run yet; the restore starts once it has one (checked every 30 s), or set spec.backupRef.backupId to one of its backups"
        );

        let mut running = kb(BACKUP_ONE_SHOT_PVC);
        running.status =
            Some(serde_json::from_value(serde_json::json!({"phase": "Running"})).expect("status"));
        let err = resolve(&cr, Some(&running))
            .map(|_| ())
            .expect_err("running");
        assert!(
            err.message
                .contains("no backup has finished yet (phase Running)"),
            "{}",
            err.message
        );

        let failed = orders_backup("orders-snapshot-g1-r0-3c9a7e10", "Failed");
        let err = resolve(&cr, Some(&failed)).map(|_| ()).expect_err("failed");
        assert_eq!(err.reason, REASON_NO_COMPLETED_BACKUP);
        assert!(
            err.message.contains("its newest backup orders-snapshot-g1-r0-3c9a7e10 ended Failed (StorageError: the bucket refused a write)"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_restored_backup_is_kept_for_later_runs_of_the_resource() {
        let mut cr = kr(RESTORE_FULL);
        cr.status = Some(KafkaRestoreStatus {
            backup_id: Some("orders-snapshot-g1-r0-3c9a7e10".into()),
            kafka_backup: Some("orders-snapshot".into()),
            ..KafkaRestoreStatus::default()
        });
        assert_eq!(
            pinned_backup_id(&cr),
            Some("orders-snapshot-g1-r0-3c9a7e10")
        );
        let newer = orders_backup("orders-snapshot-g5-r0-3c9a7e10", "Completed");
        let resolved = resolve(&cr, Some(&newer)).expect("resolved");
        assert_eq!(
            resolved.map(|r| r.backup.backup_id),
            Some("orders-snapshot-g1-r0-3c9a7e10".into()),
            "the backup an earlier run restored, not the newest"
        );
        // Even while the KafkaBackup's newest backup failed.
        let failed = orders_backup("orders-snapshot-g6-r0-3c9a7e10", "Failed");
        assert!(resolve(&cr, Some(&failed)).is_ok());
        // A stalled status keeps it too.
        let stalled = st::stalled(&cr, None, "X", "y", "t");
        assert_eq!(
            stalled.backup_id.as_deref(),
            Some("orders-snapshot-g1-r0-3c9a7e10")
        );

        // Another KafkaBackup, or an explicit backupId, is not pinned.
        let mut other = cr.clone();
        other.spec.backup_ref.name = Some("payments-nightly".into());
        assert_eq!(pinned_backup_id(&other), None);
        let mut explicit = cr.clone();
        explicit.spec.backup_ref.backup_id = Some("orders-snapshot-g2-r0-3c9a7e10".into());
        assert_eq!(pinned_backup_id(&explicit), None);
        let resolved = resolve(&explicit, Some(&newer)).expect("resolved");
        assert_eq!(
            resolved.map(|r| r.backup.backup_id),
            Some("orders-snapshot-g2-r0-3c9a7e10".into())
        );
    }

    #[test]
    fn only_a_completed_restore_settles_spec_changes() {
        let at = |phase: Phase, dry_run: bool| {
            let mut cr = kr(RESTORE_FULL);
            cr.status = Some(KafkaRestoreStatus {
                common: RunStatus {
                    phase: Some(phase),
                    run: Some("g1-r0".into()),
                    observed_generation: Some(1),
                    ..RunStatus::default()
                },
                dry_run: Some(dry_run),
                ..KafkaRestoreStatus::default()
            });
            cr.metadata.generation = Some(3);
            cr
        };
        let edit = RunId {
            generation: 3,
            run: 0,
        };
        let bumped = RunId {
            generation: 3,
            run: 1,
        };
        let settled_status = settled(&at(Phase::Completed, false), edit).expect("settled");
        assert_eq!(settled_status.common.observed_generation, Some(3));
        assert_eq!(settled_status.common.run.as_deref(), Some("g1-r0"));
        assert_eq!(settled(&at(Phase::Completed, false), bumped), None);
        assert_eq!(settled(&at(Phase::Completed, true), edit), None);
        assert_eq!(settled(&at(Phase::Failed, false), edit), None);
        assert_eq!(settled(&at(Phase::Running, false), edit), None);
        assert_eq!(settled(&kr(RESTORE_FULL), edit), None);
    }

    #[test]
    fn percentages_are_whole_and_bounded() {
        assert_eq!(percent(0, 1000), "0%");
        assert_eq!(percent(421, 1000), "42%");
        assert_eq!(percent(999, 1000), "99%");
        assert_eq!(percent(1000, 1000), "100%");
        assert_eq!(percent(1200, 1000), "100%");
        assert_eq!(percent(0, 0), "100%");
        assert_eq!(percent(u64::MAX - 1, u64::MAX), "99%");
    }

    #[test]
    fn a_result_fills_the_restore_status() {
        let cr = kr(RESTORE_THREE_PHASE);
        let mut status = cr.new_run_status();
        assert_eq!(status.kafka_backup.as_deref(), Some("orders-snapshot"));
        assert_eq!(status.backup_id, None, "not resolved yet");
        assert_eq!(status.restore_id, Some(format!("kr-{RESTORE_UID}")));
        assert_eq!(status.dry_run, Some(false));
        let reasons = cr.record_result(&mut status, &restore_result(false, true, 0));
        assert_eq!(reasons.succeeded, REASON_RESTORE_COMPLETED);
        assert_eq!(reasons.failed, None);
        assert_eq!(
            status.progress,
            Some(RestoreProgress {
                records_restored: 421,
                records_total: 1000,
                bytes_restored: 42_100,
                bytes_total: 100_000,
                percent: Some("42%".into()),
            })
        );
        assert_eq!((status.topics, status.partitions), (Some(2), Some(6)));
        assert_eq!(
            status.offset_mapping.as_deref(),
            Some("backups/b/restores/r/mapping.json")
        );
        assert_eq!(
            (status.groups_translated, status.groups_failed),
            (Some(2), Some(0))
        );
        assert_eq!(status.snapshot_id.as_deref(), Some("kr-x-before-offsets"));
        assert_eq!(status.validation, None);

        let reasons = cr.record_result(&mut status, &restore_result(false, true, 1));
        assert_eq!(reasons.failed.as_deref(), Some(REASON_GROUPS_FAILED));
        let reasons = cr.record_result(&mut status, &restore_result(false, false, 0));
        assert_eq!(reasons.failed.as_deref(), Some(REASON_RESTORE_INCOMPLETE));

        // Without phase three, no snapshot is reported even if the worker names one.
        let full = kr(RESTORE_FULL);
        let mut status = full.new_run_status();
        full.record_result(&mut status, &restore_result(false, true, 0));
        assert_eq!(status.snapshot_id, None);
    }

    #[test]
    fn a_dry_run_reports_totals_and_its_validation_only() {
        let cr = kr(RESTORE_DRY_RUN);
        let mut status = cr.new_run_status();
        assert_eq!(
            status.backup_id.as_deref(),
            Some("orders-snapshot-g1-r0-6f1c2a9e"),
            "a backupId in the spec is known before resolution"
        );
        let reasons = cr.record_result(&mut status, &restore_result(true, false, 0));
        assert_eq!(reasons.succeeded, REASON_RESTORE_VALIDATED);
        assert_eq!(reasons.failed, None, "a dry run is never complete");
        assert_eq!(status.dry_run, Some(true));
        assert_eq!(status.validation.as_deref(), Some("VALID: 2 topics"));
        let progress = status.progress.expect("totals");
        assert_eq!((progress.records_total, progress.percent), (1000, None));
        assert_eq!(status.offset_mapping, None);
        assert_eq!(status.groups_translated, None);
        assert_eq!(status.snapshot_id, None);
    }

    #[test]
    fn a_completed_worker_that_did_not_finish_the_restore_failed() {
        let cr = kr(RESTORE_FULL);
        let shard = |r: TaskResult| {
            vec![ShardResult {
                index: 0,
                result: Ok(r),
            }]
        };
        let mut status = KafkaRestoreStatus::default();
        let r = cr
            .combine_shards(&mut status, shard(restore_result(false, false, 0)))
            .expect("a result");
        assert_eq!(r.phase, "Failed");
        assert_eq!(
            r.message,
            "done; the worker did not report the restore complete"
        );
        for ok in [
            restore_result(false, true, 0),
            restore_result(true, false, 0),
        ] {
            let r = cr.combine_shards(&mut status, shard(ok)).expect("a result");
            assert_eq!(r.phase, "Completed");
        }
        assert!(cr.combine_shards(&mut status, Vec::new()).is_err());
    }

    #[test]
    fn shards_results_are_summed_and_one_failed_shard_fails_the_run() {
        let part = |i: u32, restored: u64, complete: bool| {
            let mut r = restore_result(false, complete, 0);
            let x = r.restore.as_mut().expect("restore");
            x.restore_id = format!("kr-{RESTORE_UID}-s{i}-of-2");
            x.records_total = 500;
            x.records_restored = restored;
            x.bytes_restored = restored * 10;
            x.partitions = 3;
            x.offset_mapping = Some(format!("backups/b/restores/{}/mapping.json", x.restore_id));
            ShardResult {
                index: i,
                result: Ok(r),
            }
        };
        let mut first = part(0, 500, true);
        if let Ok(r) = first.result.as_mut() {
            r.restore.as_mut().expect("restore").groups_translated = 2;
        }
        let mut second = part(1, 500, true);
        if let Ok(r) = second.result.as_mut() {
            r.restore.as_mut().expect("restore").groups_translated = 0;
            r.snapshot_id = None;
        }
        let r = combine(vec![first, second]).expect("a result");
        assert_eq!(r.phase, "Completed", "{}", r.message);
        assert_eq!(
            r.snapshot_id.as_deref(),
            Some("kr-x-before-offsets"),
            "shard 0's safety snapshot"
        );
        let x = r.restore.expect("restore");
        assert_eq!((x.groups_translated, x.groups_failed), (2, 0));
        assert!(x.complete);
        assert_eq!(x.restore_id, format!("kr-{RESTORE_UID}"));
        assert_eq!((x.records_restored, x.records_total), (1000, 1000));
        assert_eq!((x.bytes_restored, x.partitions), (10_000, 6));
        assert_eq!(
            x.offset_mapping.as_deref(),
            Some(format!("backups/b/restores/kr-{RESTORE_UID}-s0-of-2/mapping.json (and 1 more shards' mappings)").as_str())
        );

        let mut failed = part(1, 120, false);
        if let Ok(r) = failed.result.as_mut() {
            r.phase = "Failed".into();
            r.message = "lease held by another worker".into();
        }
        let r = combine(vec![part(0, 500, true), failed]).expect("a result");
        assert_eq!(r.phase, "Failed");
        assert_eq!(
            r.message,
            "1 of 2 shards did not complete; shard 1: lease held by another worker"
        );
        let x = r.restore.expect("restore");
        assert!(!x.complete);
        assert_eq!(x.records_restored, 620);

        let gone = ShardResult {
            index: 1,
            result: Err("its pod is gone".into()),
        };
        let r = combine(vec![part(0, 500, true), gone]).expect("a result");
        assert_eq!(r.phase, "Failed");
        assert!(
            r.message.contains("shard 1: its pod is gone"),
            "{}",
            r.message
        );
    }

    #[test]
    fn a_run_describes_its_backup() {
        let resolved = resolve(
            &kr(RESTORE_THREE_PHASE),
            Some(&orders_backup(
                "orders-snapshot-g1-r0-3c9a7e10",
                "Completed",
            )),
        )
        .expect("resolved")
        .expect("named");
        assert_eq!(
            resolved.describe(),
            "a restore of backup orders-snapshot-g1-r0-3c9a7e10 of KafkaBackup orders-snapshot, then header-based consumer-offset translation"
        );
        assert_eq!(
            kr(RESTORE_PITR_NEW_TOPIC).describe(),
            "a restore of backup payments-nightly-2b1e4c7d-29000000"
        );
        assert_eq!(
            kr(RESTORE_DRY_RUN).describe(),
            "a dry run (validate-restore) of backup orders-snapshot-g1-r0-6f1c2a9e of KafkaBackup orders-snapshot"
        );
        assert_eq!(
            kr(RESTORE_FULL).describe(),
            "a restore of the newest backup of KafkaBackup orders-snapshot"
        );
    }
}

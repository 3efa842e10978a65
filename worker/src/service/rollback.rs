//! Offset snapshots and rollbacks as use cases: what `tidemark offset-rollback snapshot |
//! rollback | verify` and an offset-rollback task run. The cluster is reached only once the
//! snapshot is loaded and its groups checked, through `kafka` (so a missing snapshot is
//! reported before any connection is tried).

use crate::error::{Error, Result};
use crate::kafka::{GroupAdmin, KafkaConfig};
use crate::plan::check::check_preconditions;
use crate::plan::rollback::{check_snapshot, plan_rollback};
use crate::plan::store::{PlanLocation, StoredPlan};
use crate::rollback::{
    rollback, select_snapshot_groups, take_snapshot, verify_snapshot, RollbackReport, RunStatus,
    SnapshotOutcome, SnapshotRequest, VerifyReport,
};
use crate::snapshot::{generate_id, OffsetSnapshot, SafetySnapshot, SnapshotStore};

/// What a rollback restores, and how.
#[derive(Debug, Clone)]
pub struct RollbackRequest {
    pub snapshot_id: String,
    /// The snapshot's groups to roll back; empty: all of them.
    pub groups: Vec<String>,
    /// Check the offsets afterwards.
    pub verify: bool,
    pub concurrency: usize,
    /// The id of the safety snapshot of the offsets about to be replaced (generated if `None`).
    pub safety_snapshot_id: Option<String>,
    /// A retry finds the safety snapshot its first attempt stored and keeps it.
    pub reuse_safety_snapshot: bool,
}

/// Takes a snapshot of the selected groups' committed offsets into `store`.
pub async fn run_snapshot(
    store: &SnapshotStore,
    req: &SnapshotRequest,
    kafka: impl FnOnce() -> Result<KafkaConfig>,
) -> Result<SnapshotOutcome> {
    let admin = GroupAdmin::connect(&kafka()?).await?;
    take_snapshot(&admin, store, req).await
}

/// Rolls the groups of `req` back to the snapshot, after storing a safety snapshot of the
/// offsets it replaces; returns the snapshot with the report.
pub async fn run_rollback(
    store: &SnapshotStore,
    req: &RollbackRequest,
    kafka: impl FnOnce() -> Result<KafkaConfig>,
) -> Result<(OffsetSnapshot, RollbackReport)> {
    let snap = load_selected(store, &req.snapshot_id, &req.groups).await?;
    let admin = GroupAdmin::connect(&kafka()?).await?;
    let safety = SafetySnapshot {
        store: store.clone(),
        id: req.safety_snapshot_id.clone(),
        reuse_existing: req.reuse_safety_snapshot,
    };
    let report = rollback(
        &admin,
        &snap,
        &req.groups,
        req.verify,
        req.concurrency,
        Some(&safety),
    )
    .await?;
    Ok((snap, report))
}

/// Plans the rollback of `req` (changes nothing): per group the committed and the snapshot's
/// offsets, the groups left alone, the safety snapshot executing takes (`req`'s id, else one
/// generated now); written to `location`.
pub async fn plan_rollback_to(
    store: &SnapshotStore,
    req: &RollbackRequest,
    location: &PlanLocation,
    kafka: impl FnOnce() -> Result<KafkaConfig>,
) -> Result<StoredPlan> {
    let snap = load_selected(store, &req.snapshot_id, &req.groups).await?;
    let admin = GroupAdmin::connect(&kafka()?).await?;
    let safety_id = req
        .safety_snapshot_id
        .clone()
        .unwrap_or_else(|| generate_id(chrono::Utc::now()));
    let doc = plan_rollback(&admin, &snap, &req.groups, safety_id, req.concurrency).await?;
    location.write(&doc).await
}

/// Executes an approved rollback plan: the snapshot must still hold the plan's offsets and the
/// cluster its preconditions (else [`Error::PlanChanged`], nothing changed); then the plan's
/// groups are rolled back after the safety snapshot it names (`reuse_safety`: a retry keeps
/// what its first attempt stored).
pub async fn run_approved_rollback(
    store: &SnapshotStore,
    stored: &StoredPlan,
    verify: bool,
    concurrency: usize,
    reuse_safety: bool,
    kafka: impl FnOnce() -> Result<KafkaConfig>,
) -> Result<(OffsetSnapshot, RollbackReport)> {
    let changes = stored
        .doc
        .offsets
        .as_ref()
        .ok_or_else(|| Error::Malformed {
            kind: "plan",
            file: stored.key.clone(),
            reason: "an offset rollback plan without its offsets".into(),
        })?;
    let snapshot_id = changes
        .snapshot_id
        .clone()
        .ok_or_else(|| Error::Malformed {
            kind: "plan",
            file: stored.key.clone(),
            reason: "an offset rollback plan without its snapshotId".into(),
        })?;
    let groups: Vec<String> = changes.groups.iter().map(|g| g.group.clone()).collect();
    let snap = load_selected(store, &snapshot_id, &groups).await?;
    check_snapshot(changes, &snap)?;
    let admin = GroupAdmin::connect(&kafka()?).await?;
    // A retried Job of this plan finds its safety snapshot: what its first attempt committed
    // is the plan's own doing.
    let resumed = match &changes.safety_snapshot_id {
        Some(id) if reuse_safety && store.exists(id).await? => Some(changes),
        _ => None,
    };
    check_preconditions(&admin, &stored.doc.preconditions, concurrency, resumed).await?;
    let safety = SafetySnapshot {
        store: store.clone(),
        id: changes.safety_snapshot_id.clone(),
        reuse_existing: reuse_safety,
    };
    let report = rollback(&admin, &snap, &groups, verify, concurrency, Some(&safety)).await?;
    Ok((snap, report))
}

/// Compares the committed offsets of the snapshot's groups (`groups`: those only) with it;
/// `strict` also counts partitions the snapshot does not hold.
pub async fn run_verify(
    store: &SnapshotStore,
    snapshot_id: &str,
    groups: &[String],
    strict: bool,
    concurrency: usize,
    kafka: impl FnOnce() -> Result<KafkaConfig>,
) -> Result<(OffsetSnapshot, VerifyReport)> {
    let snap = load_selected(store, snapshot_id, groups).await?;
    let admin = GroupAdmin::connect(&kafka()?).await?;
    let report = verify_snapshot(&admin, &snap, groups, strict, concurrency).await?;
    Ok((snap, report))
}

/// Loads snapshot `id` and checks that it holds every group of `groups`.
async fn load_selected(
    store: &SnapshotStore,
    id: &str,
    groups: &[String],
) -> Result<OffsetSnapshot> {
    let snap = store.load(id).await?;
    select_snapshot_groups(&snap, groups)?;
    Ok(snap)
}

/// 0 on full success; 10 when any group failed; 11 when the post-rollback check found
/// differences.
pub fn rollback_exit_code(r: &RollbackReport) -> i32 {
    if r.status != RunStatus::Success {
        return Error::Partial(String::new()).exit_code();
    }
    if r.verification.as_ref().is_some_and(|v| !v.matched) {
        return Error::VerificationFailed(String::new()).exit_code();
    }
    0
}

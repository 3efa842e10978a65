//! The offset safety net: take a snapshot of committed offsets, roll groups back to it (only
//! inactive groups, as Kafka requires), and verify current offsets against it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use chrono::{SecondsFormat, Utc};
use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::groups::{read_committed, GroupSelector};
use crate::kafka::{CommittedOffset, GroupAdmin, GroupDescription, GroupState};
use crate::snapshot::{
    generate_id, validate_id, GroupSnapshot, OffsetSnapshot, SafetySnapshot, SafetyStored,
    SnapshotStore,
};

/// Kafka's refusal for groups with live members, word for word.
pub fn inactive_group_error(group: &str, state: GroupState) -> String {
    format!(
        "Assignments can only be reset if the group '{group}' is inactive, but the current state is {state}."
    )
}

/// What `snapshot` did.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotOutcome {
    pub snapshot_id: String,
    pub created_at: String,
    pub cluster: String,
    pub path: String,
    pub description: Option<String>,
    pub groups: usize,
    pub offsets: usize,
    pub group_names: Vec<String>,
    /// Groups matched by a pattern but holding no committed offsets (not in the snapshot).
    pub skipped_groups: Vec<String>,
    pub duration_ms: u128,
}

/// Inputs of `snapshot`.
#[derive(Debug, Clone)]
pub struct SnapshotRequest {
    pub selector: GroupSelector,
    pub snapshot_id: Option<String>,
    pub description: Option<String>,
    pub concurrency: usize,
}

/// Reads the selected groups' committed offsets and stores them as a new snapshot.
///
/// Explicitly named groups must have committed offsets (else `GroupNotFound`, nothing stored);
/// groups matched only by a pattern are skipped when they have none.
#[tracing::instrument(name = "snapshot.take", skip_all, fields(snapshot_id = tracing::field::Empty))]
pub async fn take_snapshot(
    admin: &GroupAdmin,
    store: &SnapshotStore,
    req: &SnapshotRequest,
) -> Result<SnapshotOutcome> {
    let started = Instant::now();
    let now = Utc::now();
    let snapshot_id = match &req.snapshot_id {
        Some(id) => {
            validate_id(id)?;
            id.clone()
        }
        None => generate_id(now),
    };
    tracing::Span::current().record("snapshot_id", snapshot_id.as_str());
    if store.exists(&snapshot_id).await? {
        return Err(Error::invalid(format!(
            "snapshot '{snapshot_id}' already exists in {}; choose another --snapshot-id",
            store.location()
        )));
    }
    let groups = req.selector.resolve(admin).await?;
    if groups.is_empty() {
        return Err(Error::invalid(
            "no consumer group matched the selection; nothing to snapshot",
        ));
    }
    let committed = read_committed(admin, &groups, req.concurrency).await?;
    let read_at = Utc::now().timestamp_millis();
    let missing: Vec<&String> = req
        .selector
        .names
        .iter()
        .filter(|g| committed.offsets.get(*g).is_none_or(Vec::is_empty))
        .collect();
    if let Some(first) = missing.first() {
        if missing.len() == 1 {
            return Err(Error::GroupNotFound((*first).clone()));
        }
        let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        return Err(Error::GroupNotFound(names.join("', '")));
    }
    let mut skipped = Vec::new();
    let mut snap_groups = BTreeMap::new();
    for (group, offsets) in &committed.offsets {
        if offsets.is_empty() {
            skipped.push(group.clone());
        } else {
            snap_groups.insert(
                group.clone(),
                GroupSnapshot::from_committed(offsets, read_at),
            );
        }
    }
    if snap_groups.is_empty() {
        return Err(Error::invalid(format!(
            "none of the {} selected consumer groups has committed offsets; nothing to snapshot",
            groups.len()
        )));
    }
    let snap = OffsetSnapshot {
        snapshot_id: snapshot_id.clone(),
        timestamp: now,
        cluster: admin.config().bootstrap_servers.clone(),
        description: req.description.clone(),
        groups: snap_groups,
    };
    store.save(&snap).await?;
    Ok(SnapshotOutcome {
        snapshot_id,
        created_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        cluster: snap.cluster.clone(),
        path: store.location().to_string(),
        description: snap.description.clone(),
        groups: snap.groups.len(),
        offsets: snap.offset_count(),
        group_names: snap.groups.keys().cloned().collect(),
        skipped_groups: skipped,
        duration_ms: started.elapsed().as_millis(),
    })
}

/// Overall status of a multi-group operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Success,
    PartialSuccess,
    Failed,
}

impl RunStatus {
    /// Success when nothing failed, failed when nothing succeeded, partial otherwise.
    pub fn from_counts(ok: usize, failed: usize) -> Self {
        match (ok, failed) {
            (_, 0) => RunStatus::Success,
            (0, _) => RunStatus::Failed,
            _ => RunStatus::PartialSuccess,
        }
    }

    /// Upper-case label for text reports.
    pub fn label(self) -> &'static str {
        match self {
            RunStatus::Success => "SUCCESS",
            RunStatus::PartialSuccess => "PARTIAL_SUCCESS",
            RunStatus::Failed => "FAILED",
        }
    }
}

/// What happened to one group during a rollback.
#[derive(Debug, Clone, Serialize)]
pub struct GroupOutcome {
    pub group: String,
    pub status: &'static str,
    pub state: Option<String>,
    pub offsets: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub partition_errors: Vec<String>,
    pub duration_ms: u128,
}

/// One partition whose committed offset differs from the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OffsetDifference {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    /// `None` when the snapshot has no offset for the partition (strict mode only).
    pub expected: Option<i64>,
    /// `None` when the group has no committed offset for the partition now.
    pub actual: Option<i64>,
}

/// Result of comparing current offsets with a snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub snapshot_id: String,
    pub matched: bool,
    pub strict: bool,
    pub groups_verified: usize,
    pub groups_mismatched: usize,
    pub partitions_checked: usize,
    pub differences: Vec<OffsetDifference>,
    pub duration_ms: u128,
}

/// Result of a rollback, with the verification that followed it.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub status: RunStatus,
    pub snapshot_id: String,
    pub snapshot_created_at: String,
    /// The snapshot of the offsets this rollback replaced (roll back to it to undo it); absent
    /// when nothing changed or no safety snapshot was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safety_snapshot_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safety_snapshot_path: Option<String>,
    pub total_groups: usize,
    pub groups_rolled_back: usize,
    pub groups_failed: usize,
    pub offsets_restored: usize,
    pub duration_ms: u128,
    pub group_outcomes: Vec<GroupOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerifyReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The snapshot's groups restricted to `only` (all when empty); naming a group the snapshot
/// does not hold is an error.
pub fn select_snapshot_groups<'a>(
    snap: &'a OffsetSnapshot,
    only: &[String],
) -> Result<Vec<(&'a String, &'a GroupSnapshot)>> {
    if only.is_empty() {
        return Ok(snap.groups.iter().collect());
    }
    let mut out = Vec::new();
    for g in only {
        match snap.groups.get_key_value(g) {
            Some(entry) => out.push(entry),
            None => {
                return Err(Error::invalid(format!(
                    "group '{g}' is not in snapshot '{}' (it holds: {})",
                    snap.snapshot_id,
                    snap.groups.keys().cloned().collect::<Vec<_>>().join(", ")
                )))
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

/// Commits the snapshot's offsets for every selected inactive group. Active groups get Kafka's
/// error and are left untouched; the others proceed. With `safety`, the committed offsets about
/// to change (partitions of the inactive groups whose offset differs from the snapshot's) are
/// stored first, so that rolling back to that snapshot undoes this rollback; when it cannot be
/// stored, nothing is changed. With `verify`, re-reads the rolled-back groups and compares them
/// with the snapshot.
#[tracing::instrument(name = "rollback", skip_all, fields(snapshot_id = %snap.snapshot_id))]
pub async fn rollback(
    admin: &GroupAdmin,
    snap: &OffsetSnapshot,
    only: &[String],
    verify: bool,
    concurrency: usize,
    safety: Option<&SafetySnapshot>,
) -> Result<RollbackReport> {
    let started = Instant::now();
    let selected = select_snapshot_groups(snap, only)?;
    let names: Vec<String> = selected.iter().map(|(g, _)| (*g).clone()).collect();
    let described = admin.describe_groups(&names).await?;
    let mut warnings = Vec::new();
    let stored = match safety {
        None => None,
        Some(safety) => {
            let inactive: Vec<(&String, &GroupSnapshot)> = selected
                .iter()
                .zip(&described)
                .filter(|(_, d)| d.as_ref().is_ok_and(|d| d.state.is_inactive()))
                .map(|(g, _)| *g)
                .collect();
            store_safety_snapshot(admin, snap, &inactive, safety, concurrency, &mut warnings)
                .await?
        }
    };
    let jobs = selected
        .into_iter()
        .zip(described)
        .map(|((group, gsnap), desc)| roll_back_group(admin, group, gsnap, desc));
    let mut outcomes: Vec<GroupOutcome> = stream::iter(jobs)
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    outcomes.sort_by(|a, b| a.group.cmp(&b.group));
    let ok: Vec<String> = outcomes
        .iter()
        .filter(|o| o.status == "success")
        .map(|o| o.group.clone())
        .collect();
    let failed = outcomes.len() - ok.len();
    let verification = if verify && !ok.is_empty() {
        Some(verify_snapshot(admin, snap, &ok, false, concurrency).await?)
    } else {
        None
    };
    Ok(RollbackReport {
        status: RunStatus::from_counts(ok.len(), failed),
        snapshot_id: snap.snapshot_id.clone(),
        snapshot_created_at: snap.timestamp.to_rfc3339_opts(SecondsFormat::Secs, true),
        safety_snapshot_id: stored.as_ref().map(|s| s.id.clone()),
        safety_snapshot_path: stored.map(|s| s.location),
        total_groups: outcomes.len(),
        groups_rolled_back: ok.len(),
        groups_failed: failed,
        offsets_restored: outcomes.iter().map(|o| o.offsets).sum(),
        duration_ms: started.elapsed().as_millis(),
        group_outcomes: outcomes,
        verification,
        warnings,
    })
}

/// Stores the committed offsets of `groups` (the inactive ones, which the rollback changes) on
/// the partitions whose offset differs from `snap`'s, as the safety snapshot.
#[tracing::instrument(name = "rollback.safety_snapshot", skip_all, fields(snapshot_id = %snap.snapshot_id))]
async fn store_safety_snapshot(
    admin: &GroupAdmin,
    snap: &OffsetSnapshot,
    groups: &[(&String, &GroupSnapshot)],
    safety: &SafetySnapshot,
    concurrency: usize,
    warnings: &mut Vec<String>,
) -> Result<Option<SafetyStored>> {
    let names: Vec<String> = groups.iter().map(|(g, _)| (*g).clone()).collect();
    let current = read_committed(admin, &names, concurrency).await?;
    let mut before = BTreeMap::new();
    let mut uncommitted = 0usize;
    for (group, gsnap) in groups {
        let now: BTreeMap<(&str, i32), &CommittedOffset> = current
            .offsets
            .get(*group)
            .map(|v| {
                v.iter()
                    .map(|o| ((o.topic.as_str(), o.partition), o))
                    .collect()
            })
            .unwrap_or_default();
        let mut changing = Vec::new();
        for target in gsnap.to_commits() {
            match now.get(&(target.topic.as_str(), target.partition)) {
                None => uncommitted += 1,
                Some(o) if o.offset != target.offset => changing.push((*o).clone()),
                Some(_) => {}
            }
        }
        before.insert((*group).clone(), changing);
    }
    let stored = safety
        .store(
            &admin.config().bootstrap_servers,
            format!("Before rollback to snapshot {}", snap.snapshot_id),
            before,
        )
        .await?;
    if uncommitted > 0 && !stored.as_ref().is_some_and(|s| s.reused) {
        warnings.push(format!(
            "{uncommitted} partitions had no committed offset before this rollback; rolling back to the safety snapshot leaves them at the snapshot's offsets (Kafka has no way to un-commit short of deleting the group's offsets)"
        ));
    }
    Ok(stored)
}

/// Commits `gsnap`'s offsets for `group` if `desc` says it is inactive.
#[tracing::instrument(name = "rollback.group", skip_all, fields(group = %group))]
async fn roll_back_group(
    admin: &GroupAdmin,
    group: &str,
    gsnap: &GroupSnapshot,
    desc: Result<GroupDescription>,
) -> GroupOutcome {
    let t = Instant::now();
    let commits = gsnap.to_commits();
    let mut outcome = GroupOutcome {
        group: group.to_string(),
        status: "failed",
        state: None,
        offsets: 0,
        error: None,
        partition_errors: Vec::new(),
        duration_ms: 0,
    };
    match desc {
        Err(e) => outcome.error = Some(e.to_string()),
        Ok(d) if !d.state.is_inactive() => {
            outcome.state = Some(d.state.to_string());
            outcome.error = Some(inactive_group_error(group, d.state));
        }
        Ok(d) => {
            outcome.state = Some(d.state.to_string());
            match admin.alter_offsets(group, &commits).await {
                Err(e) => outcome.error = Some(e.to_string()),
                Ok(failures) if failures.is_empty() => {
                    outcome.status = "success";
                    outcome.offsets = commits.len();
                }
                Ok(failures) => {
                    outcome.offsets = commits.len() - failures.len();
                    outcome.error = Some(format!(
                        "{} of {} partitions could not be committed",
                        failures.len(),
                        commits.len()
                    ));
                    outcome.partition_errors = failures
                        .iter()
                        .map(|f| format!("{}:{}: {}", f.topic, f.partition, f.error))
                        .collect();
                }
            }
        }
    }
    outcome.duration_ms = t.elapsed().as_millis();
    outcome
}

/// Compares the selected groups' committed offsets with the snapshot. Every snapshot partition
/// must hold the same offset; with `strict`, partitions committed now but absent from the
/// snapshot are differences too.
#[tracing::instrument(name = "rollback.verify", skip_all, fields(snapshot_id = %snap.snapshot_id))]
pub async fn verify_snapshot(
    admin: &GroupAdmin,
    snap: &OffsetSnapshot,
    only: &[String],
    strict: bool,
    concurrency: usize,
) -> Result<VerifyReport> {
    let started = Instant::now();
    let selected = select_snapshot_groups(snap, only)?;
    let names: Vec<String> = selected.iter().map(|(g, _)| (*g).clone()).collect();
    let current = read_committed(admin, &names, concurrency).await?;
    let mut differences = Vec::new();
    let mut mismatched = BTreeSet::new();
    let mut checked = 0;
    for (group, gsnap) in &selected {
        let now: BTreeMap<(&str, i32), &CommittedOffset> = current
            .offsets
            .get(*group)
            .map(|v| {
                v.iter()
                    .map(|o| ((o.topic.as_str(), o.partition), o))
                    .collect()
            })
            .unwrap_or_default();
        let mut expected_keys = BTreeSet::new();
        for (topic, parts) in &gsnap.topics {
            for (p, s) in parts {
                checked += 1;
                expected_keys.insert((topic.as_str(), *p));
                let actual = now.get(&(topic.as_str(), *p)).map(|o| o.offset);
                if actual != Some(s.offset) {
                    differences.push(OffsetDifference {
                        group: (*group).clone(),
                        topic: topic.clone(),
                        partition: *p,
                        expected: Some(s.offset),
                        actual,
                    });
                    mismatched.insert((*group).clone());
                }
            }
        }
        if strict {
            for ((topic, p), o) in &now {
                if !expected_keys.contains(&(*topic, *p)) {
                    checked += 1;
                    differences.push(OffsetDifference {
                        group: (*group).clone(),
                        topic: (*topic).to_string(),
                        partition: *p,
                        expected: None,
                        actual: Some(o.offset),
                    });
                    mismatched.insert((*group).clone());
                }
            }
        }
    }
    Ok(VerifyReport {
        snapshot_id: snap.snapshot_id.clone(),
        matched: differences.is_empty(),
        strict,
        groups_verified: selected.len(),
        groups_mismatched: mismatched.len(),
        partitions_checked: checked,
        differences,
        duration_ms: started.elapsed().as_millis(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_wording_for_active_groups() {
        assert_eq!(
            inactive_group_error("G", GroupState::Stable),
            "Assignments can only be reset if the group 'G' is inactive, but the current state is Stable."
        );
    }

    #[test]
    fn status_from_counts() {
        assert_eq!(RunStatus::from_counts(3, 0), RunStatus::Success);
        assert_eq!(RunStatus::from_counts(2, 1), RunStatus::PartialSuccess);
        assert_eq!(RunStatus::from_counts(0, 2), RunStatus::Failed);
        assert_eq!(RunStatus::from_counts(0, 0), RunStatus::Success);
    }

    #[test]
    fn selecting_groups_outside_the_snapshot_is_an_error() {
        let snap = OffsetSnapshot {
            snapshot_id: "s".into(),
            timestamp: Utc::now(),
            cluster: "k:9092".into(),
            description: None,
            groups: [("a".to_string(), GroupSnapshot::default())]
                .into_iter()
                .collect(),
        };
        assert_eq!(
            select_snapshot_groups(&snap, &[]).map(|v| v.len()).ok(),
            Some(1)
        );
        let err = select_snapshot_groups(&snap, &["b".into()]).expect_err("b is absent");
        assert!(
            err.to_string().contains("'b' is not in snapshot 's'"),
            "{err}"
        );
    }
}

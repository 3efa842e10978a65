//! An offset rollback's plan: per group, the committed offset of every partition the snapshot
//! holds and the snapshot's offset, the groups with active members (left alone), and the
//! safety snapshot executing stores first.

use std::collections::BTreeMap;

use super::{
    offsets_summary, CommittedAt, GroupChange, GroupCondition, OffsetChange, OffsetChanges,
    PlanDocument, PlanKind,
};
use crate::error::{Error, Result};
use crate::groups::read_committed;
use crate::kafka::{GroupAdmin, TopicPartition};
use crate::rollback::{inactive_group_error, select_snapshot_groups};
use crate::snapshot::OffsetSnapshot;

/// Reads the selected groups of `snap` (`only`; all when empty) and plans their rollback.
/// Changes nothing.
pub async fn plan_rollback(
    admin: &GroupAdmin,
    snap: &OffsetSnapshot,
    only: &[String],
    safety_snapshot_id: String,
    concurrency: usize,
) -> Result<PlanDocument> {
    let selected = select_snapshot_groups(snap, only)?;
    let names: Vec<String> = selected.iter().map(|(g, _)| (*g).clone()).collect();
    let (described, current) = tokio::try_join!(
        admin.describe_groups(&names),
        read_committed(admin, &names, concurrency)
    )?;
    let mut doc = PlanDocument::new(PlanKind::OffsetRollback, &admin.config().bootstrap_servers);
    let mut groups = Vec::with_capacity(selected.len());
    for ((group, gsnap), desc) in selected.into_iter().zip(described) {
        let state = desc?.state;
        let now: BTreeMap<TopicPartition, i64> = current
            .offsets
            .get(group)
            .map(|v| {
                v.iter()
                    .map(|o| ((o.topic.clone(), o.partition), o.offset))
                    .collect()
            })
            .unwrap_or_default();
        let partitions: Vec<OffsetChange> = gsnap
            .to_commits()
            .into_iter()
            .map(|c| OffsetChange {
                current: now.get(&(c.topic.clone(), c.partition)).copied(),
                topic: c.topic,
                partition: c.partition,
                target: c.offset,
                log_start: None,
                log_end: None,
            })
            .collect();
        doc.preconditions.groups.push(GroupCondition {
            group: group.clone(),
            inactive: state.is_inactive(),
            committed: partitions
                .iter()
                .map(|p| CommittedAt {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    offset: p.current,
                })
                .collect(),
        });
        groups.push(GroupChange {
            group: group.clone(),
            state: Some(state.to_string()),
            refused: (!state.is_inactive()).then(|| inactive_group_error(group, state)),
            partitions,
        });
    }
    let changes = OffsetChanges {
        strategy: format!("snapshot {}", snap.snapshot_id),
        snapshot_id: Some(snap.snapshot_id.clone()),
        safety_snapshot_id: Some(safety_snapshot_id),
        groups,
        warnings: Vec::new(),
    };
    doc.summary = offsets_summary(PlanKind::OffsetRollback, &changes);
    doc.offsets = Some(changes);
    Ok(doc)
}

/// Checks that `snap` (loaded again to execute) still holds exactly the plan's offsets for
/// the plan's groups: a snapshot deleted and stored again with other offsets is
/// [`Error::PlanChanged`].
pub fn check_snapshot(changes: &OffsetChanges, snap: &OffsetSnapshot) -> Result<()> {
    let mut diffs = Vec::new();
    for g in &changes.groups {
        let Some(gs) = snap.groups.get(&g.group) else {
            diffs.push(format!("group '{}' is no longer in it", g.group));
            continue;
        };
        let planned: Vec<(String, i32, i64)> = g
            .partitions
            .iter()
            .map(|p| (p.topic.clone(), p.partition, p.target))
            .collect();
        let stored: Vec<(String, i32, i64)> = gs
            .to_commits()
            .into_iter()
            .map(|c| (c.topic, c.partition, c.offset))
            .collect();
        if planned != stored {
            diffs.push(format!("group '{}' has other offsets", g.group));
        }
    }
    if diffs.is_empty() {
        return Ok(());
    }
    Err(Error::PlanChanged(format!(
        "snapshot '{}' no longer holds the offsets of the approved plan: {}; nothing was changed. Plan again and approve the new plan",
        snap.snapshot_id,
        diffs.join("; ")
    )))
}

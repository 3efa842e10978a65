//! An offset reset's plan: the reset engine's plan ([`ResetPlan`], what `offset-reset plan`
//! prints) as a document, and back as the plan the engine executes.

use std::collections::BTreeMap;

use super::{
    offsets_summary, CommittedAt, GroupChange, GroupCondition, OffsetChange, OffsetChanges,
    PartitionEnd, PlanDocument, PlanKind, TopicCondition,
};
use crate::kafka::CommittedOffset;
use crate::reset::{GroupPlan, PartitionPlan, ResetPlan};

/// The document of `plan`; `safety_snapshot_id` is the id executing stores the offsets it
/// replaces under (`None`: no safety snapshot).
pub fn reset_document(plan: &ResetPlan, safety_snapshot_id: Option<String>) -> PlanDocument {
    let mut doc = PlanDocument::new(PlanKind::OffsetReset, &plan.cluster);
    let changes = OffsetChanges {
        strategy: plan.strategy.clone(),
        snapshot_id: None,
        safety_snapshot_id,
        groups: plan.groups.iter().map(group_change).collect(),
        warnings: plan.warnings.clone(),
    };
    doc.preconditions.groups = plan
        .groups
        .iter()
        .map(|g| GroupCondition {
            group: g.group.clone(),
            inactive: g.refused.is_none() || !is_active_refusal(g),
            committed: g
                .partitions
                .iter()
                .map(|p| CommittedAt {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    offset: p.current,
                })
                .collect(),
        })
        .collect();
    doc.preconditions.topics = end_conditions(plan);
    doc.summary = offsets_summary(PlanKind::OffsetReset, &changes);
    doc.offsets = Some(changes);
    doc
}

/// The end offsets the plan's targets depend on: every changed partition whose target is the
/// log end it was planned with (`--to-latest`, `--to-current` without a commit, an offset
/// clamped to the end, a time after the last record). New records there would move such a
/// target; partitions with other targets do not depend on the log end.
fn end_conditions(plan: &ResetPlan) -> Vec<TopicCondition> {
    let mut ends: BTreeMap<&str, BTreeMap<i32, i64>> = BTreeMap::new();
    for g in plan.groups.iter().filter(|g| g.eligible()) {
        for p in g.changing().filter(|p| p.target == p.log_end) {
            ends.entry(&p.topic)
                .or_default()
                .insert(p.partition, p.log_end);
        }
    }
    ends.into_iter()
        .map(|(topic, parts)| TopicCondition {
            topic: topic.to_string(),
            exists: true,
            partitions: None,
            end_offsets: parts
                .into_iter()
                .map(|(partition, end)| PartitionEnd { partition, end })
                .collect(),
        })
        .collect()
}

/// Whether the engine left `g` alone because it has active members (its state says so).
fn is_active_refusal(g: &GroupPlan) -> bool {
    g.state
        .as_deref()
        .is_some_and(|s| !matches!(s, "Empty" | "Dead"))
}

fn group_change(g: &GroupPlan) -> GroupChange {
    GroupChange {
        group: g.group.clone(),
        state: g.state.clone(),
        refused: g.refused.clone(),
        partitions: g
            .partitions
            .iter()
            .map(|p| OffsetChange {
                topic: p.topic.clone(),
                partition: p.partition,
                current: p.current,
                target: p.target,
                log_start: Some(p.log_start),
                log_end: Some(p.log_end),
            })
            .collect(),
    }
}

/// The plan the reset engine executes: exactly the document's target offsets (never a fresh
/// resolution of its strategy), from the committed offsets its preconditions checked.
pub fn reset_plan_of(doc: &PlanDocument, changes: &OffsetChanges) -> ResetPlan {
    let groups = changes
        .groups
        .iter()
        .map(|g| GroupPlan {
            group: g.group.clone(),
            state: g.state.clone(),
            refused: g.refused.clone(),
            partitions: g
                .partitions
                .iter()
                .map(|p| {
                    PartitionPlan::new(
                        &(p.topic.clone(), p.partition),
                        p.current,
                        p.target,
                        (p.log_start.unwrap_or(0), p.log_end.unwrap_or(0)),
                    )
                })
                .collect(),
            committed: g
                .partitions
                .iter()
                .filter_map(|p| {
                    p.current.map(|offset| CommittedOffset {
                        topic: p.topic.clone(),
                        partition: p.partition,
                        offset,
                        metadata: String::new(),
                    })
                })
                .collect(),
        })
        .collect();
    ResetPlan {
        strategy: changes.strategy.clone(),
        cluster: doc.cluster.clone(),
        groups,
        warnings: changes.warnings.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reset::Action;

    #[test]
    fn a_reset_plan_survives_the_document_exactly() {
        let tp = ("orders".to_string(), 0);
        let plan = ResetPlan {
            strategy: "--to-latest".into(),
            cluster: "k:9092".into(),
            groups: vec![
                GroupPlan {
                    group: "a".into(),
                    state: Some("Empty".into()),
                    refused: None,
                    partitions: vec![
                        PartitionPlan::new(&tp, Some(4), 30, (0, 30)),
                        PartitionPlan::new(&("orders".into(), 1), None, 30, (0, 30)),
                    ],
                    committed: vec![CommittedOffset {
                        topic: "orders".into(),
                        partition: 0,
                        offset: 4,
                        metadata: String::new(),
                    }],
                },
                GroupPlan {
                    group: "live".into(),
                    state: Some("Stable".into()),
                    refused: Some("active".into()),
                    partitions: Vec::new(),
                    committed: Vec::new(),
                },
            ],
            warnings: vec!["w".into()],
        };
        let doc = reset_document(&plan, Some("snap-x".into()));
        assert_eq!(
            doc.preconditions
                .groups
                .iter()
                .map(|g| (g.group.as_str(), g.inactive))
                .collect::<Vec<_>>(),
            vec![("a", true), ("live", false)]
        );
        assert_eq!(
            doc.preconditions.topics,
            vec![TopicCondition {
                topic: "orders".into(),
                exists: true,
                partitions: None,
                end_offsets: vec![
                    PartitionEnd {
                        partition: 0,
                        end: 30
                    },
                    PartitionEnd {
                        partition: 1,
                        end: 30
                    }
                ],
            }],
            "to-latest targets depend on the log ends"
        );
        let changes = doc.offsets.clone().expect("offsets");
        let back = reset_plan_of(&doc, &changes);
        assert_eq!(back.groups[0].partitions, plan.groups[0].partitions);
        assert_eq!(back.groups[0].partitions[1].action, Action::Set);
        assert_eq!(back.groups[0].committed, plan.groups[0].committed);
        assert_eq!(back.groups[1].refused.as_deref(), Some("active"));
        assert_eq!(back.partitions_changing(), 2);
        assert_eq!(
            doc.summary,
            "Reset 1 group (2 offsets) --to-latest; 1 group left alone; safety snapshot snap-x first"
        );
    }
}

//! A restore's plan, made from what `validate-restore` reads: the backup chain, every source
//! partition restored with its records and bytes, the topics created, the source offsets phase
//! three translates; and as preconditions every target topic as it is (exists, partitions, the
//! end offsets of the partitions written).

use std::collections::BTreeSet;

use super::{
    count, CommittedAt, GroupCondition, PartitionEnd, PlanDocument, PlanKind, Preconditions,
    RestoreChanges, RestorePartition, SourceOffset, TopicCondition, TranslatedGroup,
};
use crate::error::{Error, Result};
use crate::restore::engine::TargetState;
use crate::restore::plan::{human_bytes, RestorePlan};
use crate::snapshot::OffsetSnapshot;

/// The plan of restoring `plan` (as validation built it) into the target found as `targets`,
/// translating `offsets` after; `restore_id` names the restore.
pub fn restore_document(
    plan: &RestorePlan,
    restore_id: &str,
    cluster: &str,
    targets: &TargetState,
    offsets: Option<&OffsetSnapshot>,
    warnings: &[String],
) -> PlanDocument {
    let mut doc = PlanDocument::new(PlanKind::Restore, cluster);
    let partitions = restore_partitions(plan);
    let topics_to_create: Vec<String> = targets
        .topics
        .iter()
        .filter(|(_, (_, _, state))| state == "will be created")
        .map(|(t, _)| t.clone())
        .collect();
    doc.preconditions.topics = plan
        .targets
        .values()
        .map(|target| {
            let found = targets.topics.get(&target.name);
            let exists = found.is_some_and(|(_, _, state)| state == "exists");
            TopicCondition {
                topic: target.name.clone(),
                exists,
                partitions: if exists {
                    found.and_then(|f| f.0)
                } else {
                    None
                },
                end_offsets: if exists {
                    target
                        .partitions_written
                        .iter()
                        .filter_map(|p| {
                            targets
                                .lane_start
                                .get(&(target.name.clone(), *p))
                                .map(|end| PartitionEnd {
                                    partition: *p,
                                    end: *end,
                                })
                        })
                        .collect()
                } else {
                    Vec::new()
                },
            }
        })
        .collect();
    let changes = RestoreChanges {
        backup_id: plan.backup_id.clone(),
        links: plan.links.clone(),
        restore_id: restore_id.to_string(),
        records: plan.records,
        bytes: plan.bytes,
        partitions,
        topics_to_create,
        refused_configs: targets.refused.clone(),
        translated_groups: offsets.map(|o| translated(plan, o)).unwrap_or_default(),
        warnings: warnings.to_vec(),
    };
    doc.summary = summary(&changes, plan.targets.len());
    doc.restore = Some(changes);
    doc
}

/// Every unit of `plan`: source partition (era) to target partition, records and bytes.
pub fn restore_partitions(plan: &RestorePlan) -> Vec<RestorePartition> {
    plan.units
        .iter()
        .map(|u| RestorePartition {
            source_topic: u.source_topic.clone(),
            source_partition: u.source_partition,
            era: u.era,
            target_topic: u.target_topic.clone(),
            target_partition: u.target_partition,
            records: u.records,
            bytes: u.bytes,
        })
        .collect()
}

/// The committed source offsets on the restored partitions, per group.
fn translated(plan: &RestorePlan, offsets: &OffsetSnapshot) -> Vec<TranslatedGroup> {
    let restored: BTreeSet<(&str, i32)> = plan
        .units
        .iter()
        .map(|u| (u.source_topic.as_str(), u.source_partition))
        .collect();
    offsets
        .groups
        .iter()
        .map(|(g, gs)| TranslatedGroup {
            group: g.clone(),
            source_offsets: gs
                .to_commits()
                .into_iter()
                .filter(|c| restored.contains(&(c.topic.as_str(), c.partition)))
                .map(|c| SourceOffset {
                    topic: c.topic,
                    partition: c.partition,
                    offset: c.offset,
                })
                .collect(),
        })
        .filter(|g| !g.source_offsets.is_empty())
        .collect()
}

fn summary(c: &RestoreChanges, topics: usize) -> String {
    let mut s = format!(
        "Restore {} ({}) of backup {} into {} of {}",
        count(c.records as usize, "record"),
        human_bytes(c.bytes),
        c.backup_id,
        count(c.partitions.len(), "partition"),
        count(topics, "topic")
    );
    if c.links.len() > 1 {
        s.push_str(&format!(" (chain of {} backups)", c.links.len()));
    }
    if !c.topics_to_create.is_empty() {
        s.push_str(&format!(
            "; create {}",
            count(c.topics_to_create.len(), "topic")
        ));
    }
    if !c.translated_groups.is_empty() {
        s.push_str(&format!(
            "; translate the offsets of {}",
            count(c.translated_groups.len(), "group")
        ));
    }
    if let Some(first) = c.refused_configs.first() {
        s.push_str(&format!(
            "; REFUSED: the target would refuse {} ({}{}), so executing it fails before creating any topic",
            count(c.refused_configs.len(), "topic config"),
            first.short(),
            if c.refused_configs.len() > 1 { ", ..." } else { "" }
        ));
    }
    s
}

/// Checks that the restore built now (from the backup and the task) is the approved one: same
/// backup chain, restore id, and every partition with the same records and bytes.
pub fn check_same_restore(c: &RestoreChanges, now: &RestorePlan, restore_id: &str) -> Result<()> {
    let mut diffs = Vec::new();
    if c.backup_id != now.backup_id || c.links != now.links {
        diffs.push(format!(
            "the restore is of backup {} ({}), the plan of backup {} ({})",
            now.backup_id,
            now.links.join(", "),
            c.backup_id,
            c.links.join(", ")
        ));
    }
    if c.restore_id != restore_id {
        diffs.push(format!(
            "the restore id is '{restore_id}', the plan's '{}'",
            c.restore_id
        ));
    }
    let fresh = restore_partitions(now);
    if fresh != c.partitions {
        let planned: BTreeSet<String> = c.partitions.iter().map(unit_text).collect();
        let changed: Vec<String> = fresh
            .iter()
            .map(unit_text)
            .filter(|u| !planned.contains(u))
            .take(5)
            .collect();
        diffs.push(format!(
            "the partitions restored differ from the plan's ({} now, {} planned{})",
            fresh.len(),
            c.partitions.len(),
            if changed.is_empty() {
                String::new()
            } else {
                format!("; not planned: {}", changed.join(", "))
            }
        ));
    }
    if diffs.is_empty() {
        return Ok(());
    }
    Err(Error::PlanChanged(format!(
        "the restore no longer matches the approved plan: {}; nothing was changed. Plan again and approve the new plan",
        diffs.join("; ")
    )))
}

/// The groups phase three commits, as templates for [`super::check::read_groups`]: each
/// translated group on the target partitions its source offsets map to.
pub fn group_templates(plan: &RestorePlan, changes: &RestoreChanges) -> Vec<GroupCondition> {
    let lanes: std::collections::BTreeMap<(&str, i32), (&str, i32)> = plan
        .units
        .iter()
        .map(|u| {
            (
                (u.source_topic.as_str(), u.source_partition),
                (u.target_topic.as_str(), u.target_partition),
            )
        })
        .collect();
    changes
        .translated_groups
        .iter()
        .map(|g| {
            let targets: BTreeSet<(&str, i32)> = g
                .source_offsets
                .iter()
                .filter_map(|o| lanes.get(&(o.topic.as_str(), o.partition)).copied())
                .collect();
            GroupCondition {
                group: g.group.clone(),
                inactive: true,
                committed: targets
                    .into_iter()
                    .map(|(topic, partition)| CommittedAt {
                        topic: topic.to_string(),
                        partition,
                        offset: None,
                    })
                    .collect(),
            }
        })
        .collect()
}

/// The preconditions left to check when this restore already started writing (a retried or
/// resumed run): the lanes in `started` end where this restore left them, a topic it was to
/// create and started writing to was created by it, and its groups are phase three's business.
pub fn without_started(pre: &Preconditions, started: &BTreeSet<(String, i32)>) -> Preconditions {
    let topics = pre
        .topics
        .iter()
        .filter(|t| t.exists || !started.iter().any(|(topic, _)| topic == &t.topic))
        .map(|t| TopicCondition {
            end_offsets: t
                .end_offsets
                .iter()
                .filter(|e| !started.contains(&(t.topic.clone(), e.partition)))
                .copied()
                .collect(),
            ..t.clone()
        })
        .collect();
    // Phase three of a restore that already wrote may have committed some groups: it refuses
    // active groups itself and reports them.
    Preconditions {
        groups: if started.is_empty() {
            pre.groups.clone()
        } else {
            Vec::new()
        },
        topics,
    }
}

fn unit_text(u: &RestorePartition) -> String {
    format!(
        "{}-{} -> {}-{} ({} records)",
        u.source_topic, u.source_partition, u.target_topic, u.target_partition, u.records
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_this_restore_started_are_not_preconditions_any_more() {
        let pre = Preconditions {
            groups: Vec::new(),
            topics: vec![
                TopicCondition {
                    topic: "new".into(),
                    exists: false,
                    partitions: None,
                    end_offsets: Vec::new(),
                },
                TopicCondition {
                    topic: "old".into(),
                    exists: true,
                    partitions: Some(2),
                    end_offsets: vec![
                        PartitionEnd {
                            partition: 0,
                            end: 5,
                        },
                        PartitionEnd {
                            partition: 1,
                            end: 7,
                        },
                    ],
                },
                TopicCondition {
                    topic: "untouched".into(),
                    exists: false,
                    partitions: None,
                    end_offsets: Vec::new(),
                },
            ],
        };
        let started: BTreeSet<(String, i32)> =
            [("new".to_string(), 0), ("old".to_string(), 1)].into();
        let left = without_started(&pre, &started);
        let names: Vec<&str> = left.topics.iter().map(|t| t.topic.as_str()).collect();
        assert_eq!(names, vec!["old", "untouched"]);
        assert_eq!(
            left.topics[0].end_offsets,
            vec![PartitionEnd {
                partition: 0,
                end: 5
            }]
        );
        assert_eq!(without_started(&pre, &BTreeSet::new()), pre);
    }
}

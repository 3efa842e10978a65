//! The preconditions of a plan read again from the cluster and compared with what the plan
//! found: any difference refuses the plan ([`Error::PlanChanged`]) before anything changes,
//! naming the group, topic or partition and what changed.

use std::collections::BTreeMap;

use super::{
    CommittedAt, GroupCondition, OffsetChanges, PartitionEnd, Preconditions, TopicCondition,
};
use crate::error::{Error, Result};
use crate::groups::read_committed;
use crate::kafka::{GroupAdmin, OffsetSpec, TopicPartition};

/// Differences listed at most in the message.
const MAX_LISTED: usize = 20;

/// The groups of `planned` as they are now: state, and committed offsets on the same
/// partitions.
pub async fn read_groups(
    admin: &GroupAdmin,
    planned: &[GroupCondition],
    concurrency: usize,
) -> Result<Vec<GroupCondition>> {
    if planned.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = planned.iter().map(|g| g.group.clone()).collect();
    let (described, committed) = tokio::try_join!(
        admin.describe_groups(&names),
        read_committed(admin, &names, concurrency)
    )?;
    let mut out = Vec::with_capacity(planned.len());
    for (g, desc) in planned.iter().zip(described) {
        let now: BTreeMap<TopicPartition, i64> = committed
            .offsets
            .get(&g.group)
            .map(|v| {
                v.iter()
                    .map(|o| ((o.topic.clone(), o.partition), o.offset))
                    .collect()
            })
            .unwrap_or_default();
        out.push(GroupCondition {
            group: g.group.clone(),
            inactive: desc?.state.is_inactive(),
            committed: g
                .committed
                .iter()
                .map(|c| CommittedAt {
                    topic: c.topic.clone(),
                    partition: c.partition,
                    offset: now.get(&(c.topic.clone(), c.partition)).copied(),
                })
                .collect(),
        });
    }
    Ok(out)
}

/// The topics of `planned` as they are now: whether they exist, their partition count, and
/// the end offsets of the same partitions.
pub async fn read_topics(
    admin: &GroupAdmin,
    planned: &[TopicCondition],
) -> Result<Vec<TopicCondition>> {
    if planned.is_empty() {
        return Ok(Vec::new());
    }
    let existing = admin.list_topics().await?;
    let mut out = Vec::with_capacity(planned.len());
    for t in planned {
        if !existing.contains(&t.topic) {
            out.push(TopicCondition {
                topic: t.topic.clone(),
                exists: false,
                partitions: None,
                end_offsets: Vec::new(),
            });
            continue;
        }
        let layout = admin.topic_layout(&t.topic).await?;
        let wanted: Vec<TopicPartition> = t
            .end_offsets
            .iter()
            .filter(|e| layout.partitions.contains(&e.partition))
            .map(|e| (t.topic.clone(), e.partition))
            .collect();
        let ends = if wanted.is_empty() {
            Vec::new()
        } else {
            admin
                .list_offsets_isolated(&wanted, OffsetSpec::Latest, false)
                .await?
        };
        let mut end_offsets = Vec::with_capacity(ends.len());
        for ((_, p), e) in wanted.iter().zip(ends) {
            end_offsets.push(PartitionEnd {
                partition: *p,
                end: e?.offset,
            });
        }
        out.push(TopicCondition {
            topic: t.topic.clone(),
            exists: true,
            partitions: Some(layout.partitions.len() as i32),
            end_offsets,
        });
    }
    Ok(out)
}

/// Reads the cluster and compares it with `planned`: [`Error::PlanChanged`] naming every
/// difference (the first [`MAX_LISTED`]), else `Ok`. `resumed`: the plan's offsets when an
/// earlier attempt of this very plan ran (its safety snapshot is stored) — a committed offset
/// already at the plan's target is then what that attempt did, not a change.
pub async fn check_preconditions(
    admin: &GroupAdmin,
    planned: &Preconditions,
    concurrency: usize,
    resumed: Option<&OffsetChanges>,
) -> Result<()> {
    let now = Preconditions {
        groups: read_groups(admin, &planned.groups, concurrency).await?,
        topics: read_topics(admin, &planned.topics).await?,
    };
    let diffs = differences(planned, &now, resumed);
    if diffs.is_empty() {
        return Ok(());
    }
    let more = diffs.len().saturating_sub(MAX_LISTED);
    let mut listed = diffs
        .into_iter()
        .take(MAX_LISTED)
        .collect::<Vec<_>>()
        .join("; ");
    if more > 0 {
        listed.push_str(&format!("; and {more} more"));
    }
    Err(Error::PlanChanged(format!(
        "the cluster no longer matches the approved plan: {listed}; nothing was changed. Plan again and approve the new plan"
    )))
}

/// Every difference between what a plan found and what is there now, one line each (with
/// `resumed`, see [`check_preconditions`]).
pub fn differences(
    planned: &Preconditions,
    now: &Preconditions,
    resumed: Option<&OffsetChanges>,
) -> Vec<String> {
    let targets: BTreeMap<(&str, &str, i32), i64> = resumed
        .map(|c| {
            c.groups
                .iter()
                .flat_map(|g| {
                    g.partitions
                        .iter()
                        .map(move |p| ((g.group.as_str(), p.topic.as_str(), p.partition), p.target))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for (p, n) in planned.groups.iter().zip(&now.groups) {
        let g = &p.group;
        match (p.inactive, n.inactive) {
            (true, false) => out.push(format!("group '{g}' has active members now")),
            (false, true) => out.push(format!(
                "group '{g}' had active members when planned and has none now"
            )),
            _ => {}
        }
        for (pc, nc) in p.committed.iter().zip(&n.committed) {
            let done = targets.get(&(g.as_str(), pc.topic.as_str(), pc.partition));
            if pc.offset != nc.offset && (done.is_none() || done.copied() != nc.offset) {
                out.push(format!(
                    "group '{g}' committed offset on {}-{} is {} (planned with {})",
                    pc.topic,
                    pc.partition,
                    offset_text(nc.offset),
                    offset_text(pc.offset)
                ));
            }
        }
    }
    for (p, n) in planned.topics.iter().zip(&now.topics) {
        let t = &p.topic;
        match (p.exists, n.exists) {
            (false, true) => {
                out.push(format!("topic '{t}' exists now (the plan creates it)"));
                continue;
            }
            (true, false) => {
                out.push(format!("topic '{t}' no longer exists"));
                continue;
            }
            (false, false) => continue,
            (true, true) => {}
        }
        if p.partitions.is_some() && p.partitions != n.partitions {
            out.push(format!(
                "topic '{t}' has {} partitions (planned with {})",
                n.partitions.unwrap_or(0),
                p.partitions.unwrap_or(0)
            ));
        }
        let ends: BTreeMap<i32, i64> = n.end_offsets.iter().map(|e| (e.partition, e.end)).collect();
        for e in &p.end_offsets {
            match ends.get(&e.partition) {
                None => out.push(format!("partition {t}-{} no longer exists", e.partition)),
                Some(now) if *now != e.end => out.push(format!(
                    "partition {t}-{} ends at offset {now} (planned with {})",
                    e.partition, e.end
                )),
                Some(_) => {}
            }
        }
    }
    out
}

fn offset_text(o: Option<i64>) -> String {
    o.map_or_else(|| "none".to_string(), |o| o.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(inactive: bool, offsets: &[Option<i64>]) -> GroupCondition {
        GroupCondition {
            group: "g".into(),
            inactive,
            committed: offsets
                .iter()
                .enumerate()
                .map(|(p, o)| CommittedAt {
                    topic: "t".into(),
                    partition: p as i32,
                    offset: *o,
                })
                .collect(),
        }
    }

    fn topic(exists: bool, ends: &[i64]) -> TopicCondition {
        TopicCondition {
            topic: "r".into(),
            exists,
            partitions: exists.then_some(ends.len() as i32),
            end_offsets: ends
                .iter()
                .enumerate()
                .map(|(p, e)| PartitionEnd {
                    partition: p as i32,
                    end: *e,
                })
                .collect(),
        }
    }

    #[test]
    fn every_difference_is_named() {
        let planned = Preconditions {
            groups: vec![group(true, &[Some(5), None])],
            topics: vec![topic(true, &[10, 20]), topic(false, &[])],
        };
        assert!(differences(&planned, &planned, None).is_empty());
        let mut created = topic(true, &[0]);
        created.topic = "r".into();
        let now = Preconditions {
            groups: vec![group(false, &[Some(7), None])],
            topics: vec![topic(true, &[10, 21]), created],
        };
        let d = differences(&planned, &now, None);
        assert_eq!(
            d,
            vec![
                "group 'g' has active members now".to_string(),
                "group 'g' committed offset on t-0 is 7 (planned with 5)".into(),
                "partition r-1 ends at offset 21 (planned with 20)".into(),
                "topic 'r' exists now (the plan creates it)".into(),
            ]
        );
    }

    #[test]
    fn a_resumed_plan_accepts_offsets_already_at_its_targets_only() {
        let planned = Preconditions {
            groups: vec![group(true, &[Some(5), Some(6)])],
            topics: Vec::new(),
        };
        let changes = OffsetChanges {
            groups: vec![super::super::GroupChange {
                group: "g".into(),
                partitions: (0..2)
                    .map(|p| super::super::OffsetChange {
                        topic: "t".into(),
                        partition: p,
                        current: Some(5 + i64::from(p)),
                        target: 20,
                        log_start: None,
                        log_end: None,
                    })
                    .collect(),
                ..Default::default()
            }],
            ..OffsetChanges::default()
        };
        // The first attempt moved t-0 to its target and stopped; someone moved t-1 elsewhere.
        let now = Preconditions {
            groups: vec![group(true, &[Some(20), Some(9)])],
            topics: Vec::new(),
        };
        assert_eq!(
            differences(&planned, &now, Some(&changes)),
            vec!["group 'g' committed offset on t-1 is 9 (planned with 6)".to_string()]
        );
        assert_eq!(differences(&planned, &now, None).len(), 2);
    }
}

//! What a backup shard reads: the selected topics' partitions dealt to shards in a stable
//! order, each from where the checkpoint, the parent backup or the log start says.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::commit::remove_unlisted_segments;
use super::reader::PartSpec;
use super::BackupRequest;
use crate::backup::manifest::{
    checkpoint_key, Checkpoint, Discontinuity, DiscontinuityKind, GapCause, Manifest,
    PartitionData, TopicData,
};
use crate::backup::read::{complete_backups, load_manifests, BackupSummary};
use crate::error::{Error, Result};
use crate::kafka::{GroupAdmin, OffsetSpec, TopicPartition};
use crate::storage::Storage;
use crate::task::BackupMode;

/// A shard's reading plan.
pub(super) struct ShardPlan {
    /// The selected topics' metadata (partition data is filled in at the end).
    pub(super) topics: BTreeMap<String, TopicData>,
    /// This shard's partitions.
    pub(super) mine: Vec<TopicPartition>,
    /// Continues a checkpoint of an interrupted run.
    pub(super) resumed: bool,
    pub(super) started_at: DateTime<Utc>,
    /// The backup an incremental backup continues.
    pub(super) parent: Option<BackupSummary>,
    /// Where each partition is read from and to.
    pub(super) specs: Vec<PartSpec>,
    /// Each partition's data stored before this run.
    pub(super) initial: BTreeMap<TopicPartition, PartitionData>,
}

/// Plans the shard: its partitions, the checkpoint to resume (segments it does not list are
/// deleted first), the parent of an incremental backup, and each partition's range.
#[tracing::instrument(name = "backup_plan", skip_all, fields(backup_id = %req.backup_id, shard = req.shard_index))]
pub(super) async fn plan_shard(
    admin: &GroupAdmin,
    storage: &Storage,
    req: &BackupRequest,
    warnings: &mut Vec<String>,
) -> Result<ShardPlan> {
    let (id, shard, count) = (req.backup_id.as_str(), req.shard_index, req.shard_count);
    let (topics, mine) = select_partitions(admin, req, warnings).await?;
    // Resume from a checkpoint, or start from the log start / the parent's end.
    let ckey = checkpoint_key(id, shard, count);
    let checkpoint = match storage.get(&ckey).await? {
        Some(data) => Some(Checkpoint::from_json(&data, &ckey)?),
        None => None,
    };
    if let Some(c) = &checkpoint {
        remove_unlisted_segments(storage, id, c, &mine).await?;
    }
    let started_at = checkpoint
        .as_ref()
        .and_then(|c| c.started_at)
        .unwrap_or_else(Utc::now);
    let parent = find_parent(storage, req, warnings).await?;
    let parent_ends = match &parent {
        None => ParentEnds::default(),
        Some(p) => ParentEnds::of(&load_manifests(storage, &p.backup_id).await?),
    };
    let start = Start {
        topics: &topics,
        checkpoint: checkpoint.as_ref(),
        parent_ends: &parent_ends,
    };
    let (specs, initial) = part_specs(admin, req, &mine, &start, warnings).await?;
    tracing::debug!(
        partitions = specs.len(),
        resumed = checkpoint.is_some(),
        "shard planned"
    );
    Ok(ShardPlan {
        topics,
        mine,
        resumed: checkpoint.is_some(),
        started_at,
        parent,
        specs,
        initial,
    })
}

/// The selected topics (with their metadata) and this shard's share of their partitions.
async fn select_partitions(
    admin: &GroupAdmin,
    req: &BackupRequest,
    warnings: &mut Vec<String>,
) -> Result<(BTreeMap<String, TopicData>, Vec<TopicPartition>)> {
    let all_topics = admin.list_topics().await?;
    let selected: Vec<String> = req
        .filter
        .select(&all_topics)
        .into_iter()
        .cloned()
        .collect();
    if selected.is_empty() {
        return Err(Error::invalid(format!(
            "no topic matches include {:?} (minus the excludes); the cluster has {} topics",
            req.include,
            all_topics.len()
        )));
    }
    let mut topics: BTreeMap<String, TopicData> = BTreeMap::new();
    let mut all_parts: Vec<TopicPartition> = Vec::new();
    // Topic ids tell a re-created topic from the one the parent backed up; optional.
    let mut topic_ids = admin.topic_ids(&selected).await.unwrap_or_default();
    for t in &selected {
        let layout = admin.topic_layout(t).await?;
        let configs = match admin.topic_configs(t).await {
            Ok(c) => c,
            Err(e) => {
                warnings.push(format!(
                    "the configs of topic '{t}' could not be read ({e}); a restore that creates it will use broker defaults"
                ));
                BTreeMap::new()
            }
        };
        all_parts.extend(layout.partitions.iter().map(|p| (t.clone(), *p)));
        topics.insert(
            t.clone(),
            TopicData {
                topic_id: topic_ids.remove(t),
                partitions: i32::try_from(layout.partitions.len()).unwrap_or(i32::MAX),
                replication_factor: layout.replication_factor,
                configs,
                partition_data: BTreeMap::new(),
            },
        );
    }
    all_parts.sort();
    let (shard, count) = (req.shard_index, req.shard_count);
    let mine: Vec<TopicPartition> = all_parts
        .into_iter()
        .enumerate()
        .filter(|(i, _)| (*i as u64) % u64::from(count) == u64::from(shard))
        .map(|(_, tp)| tp)
        .collect();
    Ok((topics, mine))
}

/// The newest complete backup of the chain an incremental backup continues.
async fn find_parent(
    storage: &Storage,
    req: &BackupRequest,
    warnings: &mut Vec<String>,
) -> Result<Option<BackupSummary>> {
    let (BackupMode::Incremental, Some(chain)) = (req.mode, &req.chain) else {
        return Ok(None);
    };
    let found = complete_backups(storage)
        .await?
        .into_iter()
        .filter(|b| b.chain.as_deref() == Some(chain.as_str()) && b.backup_id != req.backup_id)
        .max_by_key(|b| b.completed_at);
    if found.is_none() {
        warnings.push(format!(
            "no complete backup of chain '{chain}' yet: this incremental backup starts from the log start"
        ));
    }
    Ok(found)
}

/// What decides where a partition starts.
struct Start<'a> {
    topics: &'a BTreeMap<String, TopicData>,
    checkpoint: Option<&'a Checkpoint>,
    parent_ends: &'a ParentEnds,
}

/// Each partition's range to read (from the checkpoint, the parent's end or the log start, to
/// the last stable offset, or on in continuous mode) and its data stored before this run.
async fn part_specs(
    admin: &GroupAdmin,
    req: &BackupRequest,
    mine: &[TopicPartition],
    start: &Start<'_>,
    warnings: &mut Vec<String>,
) -> Result<(Vec<PartSpec>, BTreeMap<TopicPartition, PartitionData>)> {
    let (starts, ends) = tokio::try_join!(
        admin.list_offsets_isolated(mine, OffsetSpec::Earliest, false),
        admin.list_offsets(mine, OffsetSpec::Latest)
    )?;
    let mut specs = Vec::with_capacity(mine.len());
    let mut initial: BTreeMap<TopicPartition, PartitionData> = BTreeMap::new();
    for ((tp, s), e) in mine.iter().zip(starts).zip(ends) {
        let log_start = s?.offset;
        let lso = e?.offset;
        if log_start < 0 || lso < log_start {
            // Kafka never answers so for a partition it serves; a backup that trusted it would
            // find nothing to read and call itself complete.
            return Err(Error::Kafka(format!(
                "{}-{}: the broker answered an impossible range (log start {log_start}, end {lso}); run the backup again",
                tp.0, tp.1
            )));
        }
        let (data, next) = partition_start(req, tp, start, log_start, lso, warnings);
        let mut gaps = data.gaps.clone();
        if next < log_start {
            warnings.push(format!(
                "{}-{}: offsets {next}..{log_start} were deleted by retention before they were backed up",
                tp.0, tp.1
            ));
            gaps.add_as(next, log_start, GapCause::Retention);
        }
        specs.push(PartSpec {
            topic: tp.0.clone(),
            partition: tp.1,
            next: next.max(log_start),
            target: data.end_offset,
            records: data.records,
            bytes: data.bytes,
            gaps,
            compacted: start
                .topics
                .get(&tp.0)
                .is_some_and(|t| is_compacted(&t.configs)),
        });
        initial.insert(tp.clone(), data);
    }
    Ok((specs, initial))
}

/// A partition's data so far and where reading starts: the checkpoint's, or (a first run) the
/// parent's end or the log start, up to the last stable offset `lso`.
fn partition_start(
    req: &BackupRequest,
    tp: &TopicPartition,
    start: &Start<'_>,
    log_start: i64,
    lso: i64,
    warnings: &mut Vec<String>,
) -> (PartitionData, i64) {
    let before = start
        .checkpoint
        .and_then(|c| c.partitions.get(&tp.0))
        .and_then(|m| m.get(&tp.1));
    if let Some(cp) = before {
        if let Some(d) = &cp.data.discontinuity {
            warnings.push(discontinuity_warning(tp, d));
        }
        return (cp.data.clone(), cp.next_offset);
    }
    let (first, discontinuity) = start.parent_ends.start(tp, start.topics, log_start, lso);
    if let Some(d) = &discontinuity {
        warnings.push(discontinuity_warning(tp, d));
    }
    let target = match req.mode {
        BackupMode::Continuous => i64::MAX,
        _ => lso.max(first),
    };
    (
        PartitionData {
            start_offset: first,
            end_offset: target,
            discontinuity,
            ..PartitionData::default()
        },
        first,
    )
}

/// Where the parent backup of an incremental backup ended, per partition, and its topic ids.
#[derive(Debug, Default)]
struct ParentEnds {
    ends: HashMap<TopicPartition, i64>,
    topic_ids: HashMap<String, String>,
}

impl ParentEnds {
    fn of(manifests: &[Manifest]) -> ParentEnds {
        let mut p = ParentEnds::default();
        for m in manifests {
            for (t, td) in &m.topics {
                if let Some(id) = &td.topic_id {
                    p.topic_ids.insert(t.clone(), id.clone());
                }
                for (part, d) in &td.partition_data {
                    p.ends.insert((t.clone(), *part), d.end_offset);
                }
            }
        }
        p
    }

    /// Where an incremental backup starts a partition whose log now spans
    /// `[log_start, end)`: at the parent's end, unless the log no longer continues there.
    /// A topic with another id, or whose end is before the parent's end, was re-created; a log
    /// starting after the parent's end was truncated past it. Both start at the log start.
    fn start(
        &self,
        tp: &TopicPartition,
        topics: &BTreeMap<String, TopicData>,
        log_start: i64,
        end: i64,
    ) -> (i64, Option<Discontinuity>) {
        let Some(&parent_end) = self.ends.get(tp) else {
            return (log_start, None);
        };
        let now_id = topics.get(&tp.0).and_then(|t| t.topic_id.as_ref());
        let other_id = matches!((self.topic_ids.get(&tp.0), now_id), (Some(a), Some(b)) if a != b);
        let kind = if other_id || end < parent_end {
            DiscontinuityKind::Recreated
        } else if log_start > parent_end {
            DiscontinuityKind::Truncated
        } else {
            return (parent_end, None);
        };
        (
            log_start,
            Some(Discontinuity {
                kind,
                parent_end,
                new_start: log_start,
            }),
        )
    }
}

#[cfg(test)]
mod parent_end_tests {
    use super::*;

    fn parent(end: i64, id: Option<&str>) -> ParentEnds {
        ParentEnds {
            ends: HashMap::from([(("t".to_string(), 0), end)]),
            topic_ids: id
                .map(|i| HashMap::from([("t".to_string(), i.to_string())]))
                .unwrap_or_default(),
        }
    }

    fn now(id: Option<&str>) -> BTreeMap<String, TopicData> {
        BTreeMap::from([(
            "t".to_string(),
            TopicData {
                topic_id: id.map(str::to_string),
                ..TopicData::default()
            },
        )])
    }

    fn kind(d: Option<Discontinuity>) -> Option<DiscontinuityKind> {
        d.map(|d| d.kind)
    }

    #[test]
    fn an_incremental_backup_continues_where_its_parent_ended() {
        let tp = ("t".to_string(), 0);
        let (start, d) = parent(30, Some("A")).start(&tp, &now(Some("A")), 0, 50);
        assert_eq!((start, d), (30, None));
        // A partition the parent did not have starts at its log start.
        let (start, d) = parent(30, None).start(&("t".to_string(), 1), &now(None), 4, 9);
        assert_eq!((start, d), (4, None));
    }

    #[test]
    fn a_recreated_topic_is_told_by_its_id_or_by_an_end_before_the_parents() {
        let tp = ("t".to_string(), 0);
        // Another id, refilled past the parent's end.
        let (start, d) = parent(30, Some("A")).start(&tp, &now(Some("B")), 0, 40);
        assert_eq!((start, kind(d)), (0, Some(DiscontinuityKind::Recreated)));
        assert_eq!(d.map(|d| (d.parent_end, d.new_start)), Some((30, 0)));
        // No ids: the end is before the parent's end.
        let (start, d) = parent(30, None).start(&tp, &now(None), 0, 10);
        assert_eq!((start, kind(d)), (0, Some(DiscontinuityKind::Recreated)));
    }

    #[test]
    fn a_log_truncated_past_the_parents_end_starts_at_the_new_log_start() {
        let tp = ("t".to_string(), 0);
        let (start, d) = parent(30, Some("A")).start(&tp, &now(Some("A")), 45, 60);
        assert_eq!((start, kind(d)), (45, Some(DiscontinuityKind::Truncated)));
        assert_eq!(d.map(|d| (d.parent_end, d.new_start)), Some((30, 45)));
        // Truncated exactly up to the parent's end: nothing was lost, no discontinuity.
        let (start, d) = parent(30, Some("A")).start(&tp, &now(Some("A")), 30, 60);
        assert_eq!((start, d), (30, None));
    }
}

fn discontinuity_warning(tp: &TopicPartition, d: &Discontinuity) -> String {
    match d.kind {
        DiscontinuityKind::Recreated => format!(
            "{}-{}: the topic was re-created since the parent backup (which ended at offset {}); this backup starts the new log at offset {}",
            tp.0, tp.1, d.parent_end, d.new_start
        ),
        DiscontinuityKind::Truncated => format!(
            "{}-{}: offsets {}..{} were deleted since the parent backup ended (the log was truncated past its end); this backup starts at offset {}",
            tp.0, tp.1, d.parent_end, d.new_start, d.new_start
        ),
    }
}

/// Whether a topic with these configs is compacted (`cleanup.policy` contains `compact`).
fn is_compacted(configs: &BTreeMap<String, String>) -> bool {
    configs
        .get("cleanup.policy")
        .is_some_and(|p| p.split(',').any(|v| v.trim() == "compact"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cleanup_policies_with_compact_are_compacted() {
        let configs = |v: &str| BTreeMap::from([("cleanup.policy".to_string(), v.to_string())]);
        assert!(is_compacted(&configs("compact")));
        assert!(is_compacted(&configs("compact,delete")));
        assert!(is_compacted(&configs("delete, compact")));
        assert!(!is_compacted(&configs("delete")));
        assert!(!is_compacted(&BTreeMap::new()));
    }
}

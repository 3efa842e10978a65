//! What a backup stores besides its segments: the manifest (written last, atomically: a backup
//! without it is incomplete, never mistaken for a complete one), the checkpoint a crashed run
//! resumes from, and where everything lives.
//!
//! ```text
//! <location>/backups/<backup-id>/
//!   manifest/<shard>-of-<count>.json        one per shard; all present = complete
//!   checkpoint/<shard>-of-<count>.json      progress of a running or interrupted shard
//!   offsets/<shard>-of-<count>.json         consumer offsets on the shard's partitions
//!   topics/<topic>/<partition>/<first offset, 20 digits>.seg
//! ```

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::format::SegmentStats;
use crate::error::{Error, Result};

/// Version tag of the manifest and checkpoint documents.
pub const FORMAT: &str = "tidemark-backup/1";
/// Folder of all backups under a storage location.
pub const BACKUPS_DIR: &str = "backups";
/// Gap ranges kept per partition (the count and total always are exact).
pub const MAX_GAP_RANGES: usize = 100;

/// `backups/<id>/`
pub fn backup_dir(id: &str) -> String {
    format!("{BACKUPS_DIR}/{id}/")
}

/// `<shard>-of-<count>` with five digits each, so listings sort by shard.
pub fn shard_name(index: u32, count: u32) -> String {
    format!("{index:05}-of-{count:05}")
}

/// Key of a shard's manifest.
pub fn manifest_key(id: &str, index: u32, count: u32) -> String {
    format!(
        "{}manifest/{}.json",
        backup_dir(id),
        shard_name(index, count)
    )
}

/// Key of a shard's checkpoint.
pub fn checkpoint_key(id: &str, index: u32, count: u32) -> String {
    format!(
        "{}checkpoint/{}.json",
        backup_dir(id),
        shard_name(index, count)
    )
}

/// Key of a shard's lease (held by the one worker writing the shard).
pub fn lease_key(id: &str, index: u32, count: u32) -> String {
    format!("{}lease/{}.json", backup_dir(id), shard_name(index, count))
}

/// Key of a shard's captured consumer offsets.
pub fn offsets_key(id: &str, index: u32, count: u32) -> String {
    format!(
        "{}offsets/{}.json",
        backup_dir(id),
        shard_name(index, count)
    )
}

/// Key prefix of one partition's segments.
pub fn partition_dir(id: &str, topic: &str, partition: i32) -> String {
    format!("{}topics/{topic}/{partition}/", backup_dir(id))
}

/// Key of the segment whose first record is at `first_offset`.
pub fn segment_key(id: &str, topic: &str, partition: i32, first_offset: i64) -> String {
    format!(
        "{}{first_offset:020}.seg",
        partition_dir(id, topic, partition)
    )
}

/// Offsets in a partition's backed-up range that hold no record, counted and classified:
/// recorded, not errors, unless nothing explains them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gaps {
    /// Number of gap ranges.
    pub count: u64,
    /// Offsets in all gaps.
    pub offsets: u64,
    /// The first [`MAX_GAP_RANGES`] ranges, `[from, to)`.
    pub ranges: Vec<(i64, i64)>,
    /// Offsets removed by retention (or DeleteRecords) before the backup read them.
    #[serde(default)]
    pub retention: u64,
    /// Offsets without a record in a compacted topic (`cleanup.policy` contains `compact`).
    #[serde(default)]
    pub compacted: u64,
    /// One-offset gaps in a topic that is not compacted: where a transaction's commit or
    /// abort marker sits. A client reading committed records never sees markers, so such a
    /// gap cannot be told apart from a single missing record.
    #[serde(default)]
    pub markers: u64,
    /// Offsets that nothing above explains: records the broker lost or skipped (an unclean
    /// leader election, a broker fault), or aborted transactions' records.
    #[serde(default)]
    pub unexplained: u64,
}

/// Why offsets hold no record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapCause {
    Retention,
    Compacted,
    Marker,
    Unexplained,
}

impl GapCause {
    /// The cause of the gap `[from, to)` between records (or after the last one) of a
    /// partition whose topic is `compacted` or not.
    pub fn between_records(from: i64, to: i64, compacted: bool) -> GapCause {
        if compacted {
            GapCause::Compacted
        } else if to - from == 1 {
            GapCause::Marker
        } else {
            GapCause::Unexplained
        }
    }
}

impl Gaps {
    /// Records the gap `[from, to)` (ignored when empty) with no known cause.
    pub fn add(&mut self, from: i64, to: i64) {
        self.add_as(from, to, GapCause::Unexplained);
    }

    /// Records the gap `[from, to)` (ignored when empty) as due to `cause`.
    pub fn add_as(&mut self, from: i64, to: i64, cause: GapCause) {
        if to <= from {
            return;
        }
        let n = (to - from) as u64;
        self.count += 1;
        self.offsets += n;
        match cause {
            GapCause::Retention => self.retention += n,
            GapCause::Compacted => self.compacted += n,
            GapCause::Marker => self.markers += n,
            GapCause::Unexplained => self.unexplained += n,
        }
        if self.ranges.len() < MAX_GAP_RANGES {
            self.ranges.push((from, to));
        }
    }

    /// Adds the counts of `other` (ranges are not merged).
    pub fn absorb(&mut self, other: &Gaps) {
        self.count += other.count;
        self.offsets += other.offsets;
        self.retention += other.retention;
        self.compacted += other.compacted;
        self.markers += other.markers;
        self.unexplained += other.unexplained;
    }
}

/// One stored segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// Object key, relative to the storage location.
    pub key: String,
    #[serde(flatten)]
    pub stats: SegmentStats,
}

/// One partition's part of a backup (or of a checkpoint).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionData {
    /// First offset this backup covers (the log start, or where the parent backup ended).
    pub start_offset: i64,
    /// Offset this backup read up to (exclusive): the last stable offset read at the start
    /// for one-shot and incremental backups, where a continuous backup stopped.
    pub end_offset: i64,
    pub records: u64,
    /// Key, value and header bytes before compression.
    pub bytes: u64,
    pub stored_bytes: u64,
    pub gaps: Gaps,
    /// Segments in offset order.
    pub segments: Vec<SegmentEntry>,
    /// Set when an incremental backup found the partition's log did not continue where the
    /// parent backup ended (the topic was re-created, or truncated past that point).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discontinuity: Option<Discontinuity>,
}

/// How a partition's log broke between a parent backup and the incremental backup after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscontinuityKind {
    /// The topic was deleted and created again (another topic id, or an end offset before the
    /// parent's end): offsets start over, a new era of the partition.
    Recreated,
    /// Records after the parent's end were deleted (the log start moved past it): offsets
    /// continue, with a hole.
    Truncated,
}

impl DiscontinuityKind {
    pub fn name(self) -> &'static str {
        match self {
            DiscontinuityKind::Recreated => "recreated",
            DiscontinuityKind::Truncated => "truncated",
        }
    }
}

/// A [`Discontinuity`] with the partition it concerns (reports and status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionDiscontinuity {
    pub topic: String,
    pub partition: i32,
    #[serde(flatten)]
    pub discontinuity: Discontinuity,
}

/// `log broken since the parent backup: orders-0 re-created (parent ended at 5, new log start 0), …`
pub fn describe_discontinuities(list: &[PartitionDiscontinuity]) -> String {
    let parts: Vec<String> = list
        .iter()
        .map(|d| {
            format!(
                "{}-{} {} (parent ended at {}, new log start {})",
                d.topic,
                d.partition,
                match d.discontinuity.kind {
                    DiscontinuityKind::Recreated => "re-created",
                    DiscontinuityKind::Truncated => "truncated",
                },
                d.discontinuity.parent_end,
                d.discontinuity.new_start
            )
        })
        .collect();
    format!("log broken since the parent backup: {}", parts.join(", "))
}

/// Where an incremental backup found a partition's log broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discontinuity {
    pub kind: DiscontinuityKind,
    /// The offset the parent backup ended at (exclusive).
    pub parent_end: i64,
    /// The log start this backup started from.
    pub new_start: i64,
}

/// A backed-up topic: what re-creating it needs, and its partitions' data in this shard.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TopicData {
    /// The topic's id in the cluster (base64), when the broker reports one: an incremental
    /// backup that finds another id knows the topic was re-created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    /// Partition count of the topic when backed up.
    pub partitions: i32,
    pub replication_factor: i32,
    /// Topic configs that differ from the broker defaults.
    pub configs: BTreeMap<String, String>,
    /// This shard's partitions.
    pub partition_data: BTreeMap<i32, PartitionData>,
}

/// Totals over a manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub topics: u64,
    pub partitions: u64,
    pub records: u64,
    pub bytes: u64,
    pub stored_bytes: u64,
    pub segments: u64,
    /// Offsets without records over all partitions, by cause (no ranges).
    #[serde(default)]
    pub gaps: Gaps,
}

/// A shard's manifest: written once, last, when the shard's data is all stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub backup_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// The backup an incremental backup continues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// `one_shot`, `continuous` or `incremental`.
    pub mode: String,
    pub shard_index: u32,
    pub shard_count: u32,
    pub cluster: String,
    pub started_at: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
    /// `zstd`, `lz4` or `none`.
    pub compression: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression_level: Option<i32>,
    /// `read_committed`: aborted transactions are not in the backup.
    pub isolation: String,
    pub topics: BTreeMap<String, TopicData>,
    pub totals: Totals,
    /// Key of the captured consumer offsets (offset-rollback snapshot format), if captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsets: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Manifest {
    /// The partitions whose log broke since the parent backup.
    pub fn discontinuities(&self) -> Vec<PartitionDiscontinuity> {
        self.topics
            .iter()
            .flat_map(|(t, td)| {
                td.partition_data.iter().filter_map(move |(p, d)| {
                    d.discontinuity.map(|x| PartitionDiscontinuity {
                        topic: t.clone(),
                        partition: *p,
                        discontinuity: x,
                    })
                })
            })
            .collect()
    }

    /// Recomputes [`Manifest::totals`] from the partitions.
    pub fn compute_totals(&mut self) {
        let mut t = Totals {
            topics: self.topics.len() as u64,
            ..Totals::default()
        };
        for topic in self.topics.values() {
            for p in topic.partition_data.values() {
                t.partitions += 1;
                t.records += p.records;
                t.bytes += p.bytes;
                t.stored_bytes += p.stored_bytes;
                t.segments += p.segments.len() as u64;
                t.gaps.absorb(&p.gaps);
            }
        }
        self.totals = t;
    }

    /// Parses a manifest; `key` names it in errors.
    pub fn from_json(data: &[u8], key: &str) -> Result<Self> {
        let m: Manifest = serde_json::from_slice(data)
            .map_err(|e| Error::malformed_json("backup manifest", key, e))?;
        if m.format != FORMAT {
            return Err(Error::Malformed {
                kind: "backup manifest",
                file: key.to_string(),
                reason: format!(
                    "format '{}' is not one this version reads ('{FORMAT}')",
                    m.format
                ),
            });
        }
        Ok(m)
    }
}

/// A shard's progress, rewritten after every stored segment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: String,
    pub backup_id: String,
    pub shard_index: u32,
    pub shard_count: u32,
    pub started_at: Option<DateTime<Utc>>,
    /// The chain of the backup, so that retention finds an interrupted backup's chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// Per topic and partition: the data stored so far (segments contiguous from
    /// `start_offset`), and in `next_offset` where reading resumes.
    pub partitions: BTreeMap<String, BTreeMap<i32, CheckpointPartition>>,
}

/// One partition's progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointPartition {
    pub next_offset: i64,
    #[serde(flatten)]
    pub data: PartitionData,
}

impl Checkpoint {
    /// Parses a checkpoint; `key` names it in errors.
    pub fn from_json(data: &[u8], key: &str) -> Result<Self> {
        serde_json::from_slice(data).map_err(|e| Error::malformed_json("backup checkpoint", key, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_shard_and_offset() {
        assert_eq!(
            manifest_key("b1", 2, 12),
            "backups/b1/manifest/00002-of-00012.json"
        );
        assert_eq!(
            segment_key("b1", "orders", 3, 42),
            "backups/b1/topics/orders/3/00000000000000000042.seg"
        );
        assert!(segment_key("b", "t", 0, 9) < segment_key("b", "t", 0, 10));
    }

    #[test]
    fn gaps_keep_exact_totals_and_the_first_ranges() {
        let mut g = Gaps::default();
        g.add(5, 5);
        for i in 0..150 {
            g.add(i * 10, i * 10 + 2);
        }
        assert_eq!(g.count, 150);
        assert_eq!(g.offsets, 300);
        assert_eq!(g.ranges.len(), MAX_GAP_RANGES);
    }

    #[test]
    fn gaps_are_classified_and_earlier_documents_read_without_causes() {
        let mut g = Gaps::default();
        g.add_as(0, 10, GapCause::Retention);
        g.add_as(12, 13, GapCause::Marker);
        g.add(20, 25);
        assert_eq!((g.count, g.offsets), (3, 16));
        assert_eq!(
            (g.retention, g.markers, g.unexplained, g.compacted),
            (10, 1, 5, 0)
        );
        let mut total = Gaps::default();
        total.absorb(&g);
        total.absorb(&g);
        assert_eq!((total.offsets, total.unexplained), (32, 10));
        assert!(total.ranges.is_empty());
        let old: Gaps = serde_json::from_str(r#"{"count":1,"offsets":3,"ranges":[[4,7]]}"#)
            .expect("an earlier document");
        assert_eq!((old.offsets, old.unexplained), (3, 0));
        assert_eq!(GapCause::between_records(4, 5, false), GapCause::Marker);
        assert_eq!(
            GapCause::between_records(4, 9, false),
            GapCause::Unexplained
        );
        assert_eq!(GapCause::between_records(4, 5, true), GapCause::Compacted);
    }

    #[test]
    fn manifests_of_another_format_are_refused_by_name() {
        let err = Manifest::from_json(
            br#"{"format":"x"}"#,
            "backups/b/manifest/00000-of-00001.json",
        )
        .expect_err("refused");
        assert!(
            err.to_string()
                .contains("backups/b/manifest/00000-of-00001.json"),
            "{err}"
        );
    }
}

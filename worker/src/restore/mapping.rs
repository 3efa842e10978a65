//! The exact offset mapping of a restore: for every restored source partition, which target
//! offset each restored record received, stored as runs (a stretch where source and target
//! offsets both advance by one), so a partition restored without gaps is one entry however many
//! records it holds.
//!
//! Translation of a committed source offset `U` (the next record a group would read): the target
//! offset of the first restored record whose source offset is at least `U`, else the partition's
//! target end offset. This is exact with compaction gaps (an offset that no longer existed maps
//! to the next record that did) and with a PITR window (a group past the window's end lands at
//! the end of what was restored; a group before its start, on the first restored record).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backup::manifest::BACKUPS_DIR;
use crate::error::{Error, Result};
use crate::storage::Storage;

/// Version tag of the mapping document.
pub const MAPPING_FORMAT: &str = "tidemark-restore-mapping/1";

/// `backups/<backup>/restores/<restore>/`
pub fn restore_dir(backup_id: &str, restore_id: &str) -> String {
    format!(
        "{}restores/{restore_id}/",
        crate::backup::manifest::backup_dir(backup_id)
    )
}

/// Key of a restore's offset mapping.
pub fn mapping_key(backup_id: &str, restore_id: &str) -> String {
    format!("{}mapping.json", restore_dir(backup_id, restore_id))
}

/// Key of the record that a restore's consumer offsets were committed (phase three ran).
pub fn groups_key(backup_id: &str, restore_id: &str) -> String {
    format!("{}groups.json", restore_dir(backup_id, restore_id))
}

/// Key of a restore's checkpoint (when no local checkpoint file is configured).
pub fn checkpoint_key(backup_id: &str, restore_id: &str) -> String {
    format!("{}checkpoint.json", restore_dir(backup_id, restore_id))
}

/// A stretch of restored records whose source and target offsets both advance by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// Source offset of the first record.
    pub source: i64,
    /// Target offset of the first record.
    pub target: i64,
    /// Records in the run (at least 1).
    pub count: u64,
    /// Timestamps of the first and last record.
    pub first_timestamp: i64,
    pub last_timestamp: i64,
}

impl Run {
    /// Source offset of the last record.
    pub fn source_last(&self) -> i64 {
        self.source + self.count as i64 - 1
    }

    /// Target offset of the last record.
    pub fn target_last(&self) -> i64 {
        self.target + self.count as i64 - 1
    }
}

/// One source partition's mapping to its target partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMapping {
    pub source_topic: String,
    pub source_partition: i32,
    /// After a topic re-created within the restored chain: which era of the source partition
    /// (offsets start over in each); the newest is the one consumer offsets translate through.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub era: u32,
    pub target_topic: String,
    pub target_partition: i32,
    /// Records restored.
    pub records: u64,
    /// The target offset after the last restored record of this source partition (where it
    /// would have started when none was restored).
    pub target_end: i64,
    /// Runs in offset order.
    pub runs: Vec<Run>,
}

impl PartitionMapping {
    /// An empty mapping whose records will start at `target_start`.
    pub fn new(source: (&str, i32), target: (&str, i32), target_start: i64) -> PartitionMapping {
        PartitionMapping {
            source_topic: source.0.to_string(),
            source_partition: source.1,
            era: 0,
            target_topic: target.0.to_string(),
            target_partition: target.1,
            records: 0,
            target_end: target_start,
            runs: Vec::new(),
        }
    }

    /// Records that source offset `source` landed at target offset `target`. Calls come in
    /// offset order (both offsets increase).
    pub fn push(&mut self, source: i64, target: i64, timestamp: i64) {
        self.records += 1;
        self.target_end = target + 1;
        if let Some(last) = self.runs.last_mut() {
            if last.source_last() + 1 == source && last.target_last() + 1 == target {
                last.count += 1;
                last.last_timestamp = timestamp;
                return;
            }
        }
        self.runs.push(Run {
            source,
            target,
            count: 1,
            first_timestamp: timestamp,
            last_timestamp: timestamp,
        });
    }

    /// The target offset a group committed at source offset `committed` resumes from: the
    /// target offset of the first restored record at or after it, else [`Self::target_end`].
    pub fn translate(&self, committed: i64) -> i64 {
        let i = self.runs.partition_point(|r| r.source_last() < committed);
        match self.runs.get(i) {
            Some(r) if committed <= r.source => r.target,
            Some(r) => r.target + (committed - r.source),
            None => self.target_end,
        }
    }

    /// First and last source offsets restored.
    pub fn source_range(&self) -> Option<(i64, i64)> {
        Some((self.runs.first()?.source, self.runs.last()?.source_last()))
    }

    /// First and last target offsets written.
    pub fn target_range(&self) -> Option<(i64, i64)> {
        Some((self.runs.first()?.target, self.runs.last()?.target_last()))
    }

    /// Timestamps of the first and last restored record.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        Some((
            self.runs.first()?.first_timestamp,
            self.runs.last()?.last_timestamp,
        ))
    }
}

/// The mapping document of one restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetMapping {
    pub format: String,
    pub backup_id: String,
    pub restore_id: String,
    /// Bootstrap servers of the target.
    pub target_cluster: String,
    pub created_at: DateTime<Utc>,
    /// Whether the restore finished (an unfinished one maps what landed so far).
    pub complete: bool,
    /// What the restore was asked to do; a later run of the same restore id must ask the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
    /// The target cluster's id, when the cluster reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_cluster_id: Option<String>,
    /// Per source partition, in (topic, partition) order.
    pub partitions: Vec<PartitionMapping>,
}

impl OffsetMapping {
    /// Parses a mapping; `key` names it in errors.
    pub fn from_json(data: &[u8], key: &str) -> Result<Self> {
        let m: OffsetMapping = serde_json::from_slice(data)
            .map_err(|e| Error::malformed_json("offset mapping", key, e))?;
        if m.format != MAPPING_FORMAT {
            return Err(Error::Malformed {
                kind: "offset mapping",
                file: key.to_string(),
                reason: format!(
                    "format '{}' is not one this version reads ('{MAPPING_FORMAT}')",
                    m.format
                ),
            });
        }
        Ok(m)
    }

    /// The mapping of one source partition (its newest era, which captured offsets refer to).
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionMapping> {
        self.partitions
            .iter()
            .filter(|p| p.source_topic == topic && p.source_partition == partition)
            .max_by_key(|p| p.era)
    }

    /// Translates committed source offsets (`(topic, partition) -> offset`) of one group to
    /// target offsets. Source partitions the restore did not cover are returned in the second
    /// list. When several source partitions feed one target partition, the smallest translated
    /// offset wins (nothing is skipped), and a note says so.
    pub fn translate_group(&self, committed: &BTreeMap<(String, i32), i64>) -> Translation {
        let mut out = Translation::default();
        for ((topic, partition), offset) in committed {
            let Some(pm) = self.partition(topic, *partition) else {
                out.uncovered.push((topic.clone(), *partition));
                continue;
            };
            let target = pm.translate(*offset);
            let key = (pm.target_topic.clone(), pm.target_partition);
            out.rows.push(TranslatedOffset {
                source_topic: topic.clone(),
                source_partition: *partition,
                source_offset: *offset,
                target_topic: pm.target_topic.clone(),
                target_partition: pm.target_partition,
                target_offset: target,
            });
            match out.offsets.get_mut(&key) {
                Some(prev) => {
                    out.notes.push(format!(
                        "{}-{} receives several source partitions; the group resumes at the smaller translated offset",
                        key.0, key.1
                    ));
                    *prev = (*prev).min(target);
                }
                None => {
                    out.offsets.insert(key, target);
                }
            }
        }
        out
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What a restore was asked to do, kept with its completion: every setting that decides what
/// lands in the target or which consumer offsets are committed, and a hash over them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// crc32c of the settings' JSON.
    pub hash: String,
    /// Setting (as named in a restore configuration) -> value.
    pub settings: BTreeMap<String, serde_json::Value>,
}

impl Fingerprint {
    /// The fingerprint of `t`.
    pub fn of(t: &crate::task::RestoreTask) -> Fingerprint {
        let settings: BTreeMap<String, serde_json::Value> = [
            ("backup_id", serde_json::json!(t.backup_id)),
            ("chain", serde_json::json!(t.chain)),
            ("topics", serde_json::json!(t.topics)),
            ("time_window_start", serde_json::json!(t.time_window_start)),
            ("time_window_end", serde_json::json!(t.time_window_end)),
            ("source_partitions", serde_json::json!(t.source_partitions)),
            ("topic_mapping", serde_json::json!(t.topic_mapping)),
            ("partition_mapping", serde_json::json!(t.partition_mapping)),
            (
                "include_original_offset_header",
                serde_json::json!(t.include_original_offset_header),
            ),
            (
                "original_offset_header_style",
                serde_json::json!(t.original_header_style),
            ),
            (
                "consumer_group_strategy",
                serde_json::json!(t.consumer_group_strategy),
            ),
            (
                "reset_consumer_offsets",
                serde_json::json!(t.reset_consumer_offsets),
            ),
            ("consumer_groups", serde_json::json!(t.consumer_groups)),
            (
                "offsets_snapshot_id",
                serde_json::json!(t.offsets_snapshot_id),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let text = serde_json::to_string(&settings).unwrap_or_default();
        Fingerprint {
            hash: format!("{:08x}", crc32c::crc32c(text.as_bytes())),
            settings,
        }
    }

    /// The settings that differ from `earlier`: `name: earlier value -> this value`.
    pub fn differences(&self, earlier: &Fingerprint) -> Vec<String> {
        let null = serde_json::Value::Null;
        let mut names: Vec<&String> = self.settings.keys().collect();
        names.extend(earlier.settings.keys());
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter_map(|k| {
                let (a, b) = (
                    earlier.settings.get(k).unwrap_or(&null),
                    self.settings.get(k).unwrap_or(&null),
                );
                (a != b).then(|| format!("{k}: {a} -> {b}"))
            })
            .collect()
    }
}

/// One committed offset, translated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranslatedOffset {
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    pub target_topic: String,
    pub target_partition: i32,
    pub target_offset: i64,
}

/// A group's translated offsets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Translation {
    /// Target partition -> offset to commit.
    pub offsets: BTreeMap<(String, i32), i64>,
    /// Every source offset and what it became.
    pub rows: Vec<TranslatedOffset>,
    /// Committed source partitions the restore does not cover (left alone).
    pub uncovered: Vec<(String, i32)>,
    pub notes: Vec<String>,
}

/// The newest restore mapping of a backup, if it was ever restored.
pub async fn newest_mapping(storage: &Storage, backup_id: &str) -> Result<Option<OffsetMapping>> {
    let prefix = format!("{BACKUPS_DIR}/{backup_id}/restores/");
    let mut found: Option<OffsetMapping> = None;
    for o in storage.list(&prefix).await? {
        if !o.key.ends_with("/mapping.json") {
            continue;
        }
        let Some(data) = storage.get(&o.key).await? else {
            continue;
        };
        let m = OffsetMapping::from_json(&data, &o.key)?;
        if found.as_ref().is_none_or(|f| m.created_at > f.created_at) {
            found = Some(m);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(records: &[(i64, i64)]) -> PartitionMapping {
        let mut m = PartitionMapping::new(("orders", 0), ("orders-r", 0), 0);
        for (s, t) in records {
            m.push(*s, *t, 1000 + s);
        }
        m
    }

    #[test]
    fn contiguous_records_are_one_run() {
        let recs: Vec<(i64, i64)> = (0..10_000).map(|i| (i, i)).collect();
        let m = mapping(&recs);
        assert_eq!(m.runs.len(), 1);
        assert_eq!(m.records, 10_000);
        assert_eq!(m.target_end, 10_000);
        assert_eq!(m.source_range(), Some((0, 9_999)));
        assert_eq!(m.time_range(), Some((1000, 10_999)));
    }

    #[test]
    fn compaction_gaps_translate_to_the_next_restored_record() {
        // source offsets 0,1,2, 5,6, 9 (3,4,7,8 compacted away) land at 100..106
        let m = mapping(&[(0, 100), (1, 101), (2, 102), (5, 103), (6, 104), (9, 105)]);
        assert_eq!(m.runs.len(), 3);
        let t = |u| m.translate(u);
        assert_eq!(t(0), 100);
        assert_eq!(t(2), 102);
        assert_eq!(
            t(3),
            103,
            "a committed offset in a gap goes to the next record"
        );
        assert_eq!(t(4), 103);
        assert_eq!(t(5), 103);
        assert_eq!(t(6), 104);
        assert_eq!(t(7), 105);
        assert_eq!(t(9), 105);
        assert_eq!(t(10), 106, "past the last record: the target end");
        assert_eq!(t(1_000_000), 106);
    }

    #[test]
    fn a_pitr_window_maps_before_and_after_it() {
        // only source offsets 50..60 were in the window; they landed at 0..10
        let recs: Vec<(i64, i64)> = (50..60).map(|i| (i, i - 50)).collect();
        let m = mapping(&recs);
        assert_eq!(
            m.translate(0),
            0,
            "before the window: the first restored record"
        );
        assert_eq!(m.translate(55), 5);
        assert_eq!(m.translate(60), 10);
        assert_eq!(m.translate(75), 10, "after the window: the end");
    }

    #[test]
    fn an_empty_mapping_translates_to_its_start() {
        let m = PartitionMapping::new(("a", 1), ("b", 1), 42);
        assert_eq!(m.translate(7), 42);
        assert_eq!(m.source_range(), None);
    }

    #[test]
    fn groups_translate_and_uncovered_partitions_are_listed() {
        let mut doc = OffsetMapping {
            format: MAPPING_FORMAT.into(),
            backup_id: "b".into(),
            restore_id: "r".into(),
            target_cluster: "k:9092".into(),
            created_at: Utc::now(),
            complete: true,
            fingerprint: None,
            target_cluster_id: None,
            partitions: vec![mapping(&[(0, 0), (1, 1), (2, 2)])],
        };
        let mut second = PartitionMapping::new(("orders", 1), ("orders-r", 0), 3);
        second.push(0, 3, 5);
        doc.partitions.push(second);
        let committed: BTreeMap<(String, i32), i64> = [
            (("orders".to_string(), 0), 2),
            (("orders".to_string(), 1), 1),
            (("payments".to_string(), 0), 9),
        ]
        .into_iter()
        .collect();
        let t = doc.translate_group(&committed);
        assert_eq!(t.offsets.get(&("orders-r".to_string(), 0)), Some(&2));
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.uncovered, vec![("payments".to_string(), 0)]);
        assert_eq!(t.notes.len(), 1, "{:?}", t.notes);
        let json = serde_json::to_vec(&doc).expect("json");
        assert_eq!(OffsetMapping::from_json(&json, "m").expect("parses"), doc);
        let err = OffsetMapping::from_json(br#"{"format":"x"}"#, "restores/r/mapping.json")
            .expect_err("refused");
        assert!(err.to_string().contains("restores/r/mapping.json"), "{err}");
    }
}

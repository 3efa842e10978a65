//! A KafkaBackup run: copy topics' records (and the consumer offsets on them) into a backup.

use serde::{Deserialize, Serialize};

use crate::field::{field_error, field_invalid};
use crate::ids::validate_id;
use crate::target::{KafkaTarget, StorageTarget};
use crate::Result;

/// Copy topics' records (and the consumer offsets on them) into a backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupTask {
    pub kafka: KafkaTarget,
    /// Where the backup goes (a `location`; ConfigMaps are too small for records).
    pub storage: StorageTarget,
    /// The backup's id, the same for every shard and every retry of a run. A run whose shard of
    /// this id is already complete reads nothing and reports it as already complete (so a
    /// retried Job is harmless); a new backup needs a new id. When absent, the
    /// worker takes `TIDEMARK_BACKUP_ID` from its environment (the operator sets it to the
    /// Job's name, from the pod's `batch.kubernetes.io/job-name` label, so each scheduled Job of a
    /// CronJob is its own backup), else generates `backup-YYYYMMDD-HHMMSS-<8 hex>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// Topics: names, globs (`payments-*`) or `~regex`; internal topics only when named.
    pub topics: TopicSelection,
    /// `oneShot` (up to the high watermarks read at start), `continuous` (until stopped) or
    /// `incremental` (from where the chain's previous backup ended, up to the high watermarks).
    #[serde(default)]
    pub mode: BackupMode,
    /// Backups of one chain (incremental mode continues the newest complete backup of the chain).
    /// The operator uses the KafkaBackup's `<namespace>-<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// `zstd` (default), `lz4` or `none`.
    #[serde(default)]
    pub compression: Compression,
    /// zstd level 1-22 (default 1); ignored otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression_level: Option<i32>,
    /// Partitions backed up at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_partitions: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_records_per_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_bytes_per_sec: Option<u64>,
    /// Segment bounds: uncompressed bytes, and milliseconds of record time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_max_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_max_interval_ms: Option<u64>,
    /// Capture the committed offsets of groups on the backed-up topics (default true).
    #[serde(default = "crate::yes")]
    pub capture_offsets: bool,
    /// This pod's shard (Indexed Job: `JOB_COMPLETION_INDEX` when absent) and the shard count;
    /// partitions are dealt to shards in a stable order, and the shards together form one backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_index: Option<u32>,
    #[serde(default = "crate::one")]
    pub shard_count: u32,
}

/// Topic include/exclude patterns (as kafka-backup's configuration means them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopicSelection {
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// How far a backup reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum BackupMode {
    /// Up to the high watermarks read when the backup starts.
    #[default]
    OneShot,
    /// Until the worker is stopped.
    Continuous,
    /// From where the chain's newest complete backup ended, up to the high watermarks.
    Incremental,
}

impl BackupMode {
    /// The spelling used in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupMode::OneShot => "oneShot",
            BackupMode::Continuous => "continuous",
            BackupMode::Incremental => "incremental",
        }
    }
}

/// As configuration files and the CLI spell it: `one_shot`, `one-shot`, `oneShot`;
/// `continuous`; `incremental` (any case).
impl std::str::FromStr for BackupMode {
    type Err = String;
    fn from_str(m: &str) -> std::result::Result<Self, String> {
        match m.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "oneshot" => Ok(BackupMode::OneShot),
            "continuous" => Ok(BackupMode::Continuous),
            "incremental" => Ok(BackupMode::Incremental),
            _ => Err(format!(
                "backup mode '{m}' is not one of one_shot, continuous, incremental"
            )),
        }
    }
}

/// Segment compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum Compression {
    /// zstd (level `compressionLevel`, default 1).
    #[default]
    Zstd,
    /// lz4: faster, larger.
    Lz4,
    /// Uncompressed.
    None,
}

impl Compression {
    /// The spelling used in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
            Compression::None => "none",
        }
    }
}

/// `zstd`, `lz4` or `none` (any case).
impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(c: &str) -> std::result::Result<Self, String> {
        match c.to_ascii_lowercase().as_str() {
            "zstd" => Ok(Compression::Zstd),
            "lz4" => Ok(Compression::Lz4),
            "none" => Ok(Compression::None),
            _ => Err(format!("compression '{c}' is not one of zstd, lz4, none")),
        }
    }
}

impl BackupTask {
    /// Checks the storage (a location), the topic selection (at least one include), the shard
    /// (`shardIndex < shardCount`, 1-1000 shards), the id and chain names, and bounds.
    pub fn validate(&self) -> Result<()> {
        self.kafka.validate()?;
        match &self.storage {
            StorageTarget::Location { .. } => self.storage.validate()?,
            StorageTarget::ConfigMap { .. } => {
                return Err(field_error(
                    "storage",
                    "is a ConfigMap; backups need a PVC, s3, gcs or azure location",
                ))
            }
        }
        if let Some(id) = &self.backup_id {
            validate_id(id).map_err(|e| field_invalid("backupId", e))?;
        }
        if let Some(chain) = &self.chain {
            validate_id(chain).map_err(|e| field_invalid("chain", e))?;
        }
        if self.topics.include.iter().all(|t| t.trim().is_empty()) {
            return Err(field_error(
                "topics.include",
                "is empty: name topics, globs (orders-*) or ~regex",
            ));
        }
        crate::topics::TopicFilter::new(&self.topics.include, &self.topics.exclude)
            .map_err(|e| field_invalid("topics", e))?;
        if self.mode == BackupMode::Incremental && self.chain.is_none() {
            return Err(field_error("chain", "is required for incremental backups"));
        }
        if !(1..=1000).contains(&self.shard_count) {
            return Err(field_error(
                "shardCount",
                format!("is {}; use 1 to 1000", self.shard_count),
            ));
        }
        if let Some(i) = self.shard_index {
            if i >= self.shard_count {
                return Err(field_error(
                    "shardIndex",
                    format!("is {i}; it must be below shardCount ({})", self.shard_count),
                ));
            }
        }
        if let Some(level) = self.compression_level {
            if !(1..=22).contains(&level) {
                return Err(field_error(
                    "compressionLevel",
                    format!("is {level}; zstd levels are 1 to 22"),
                ));
            }
        }
        if self.max_concurrent_partitions == Some(0) {
            return Err(field_error(
                "maxConcurrentPartitions",
                "is 0; use 1 or more",
            ));
        }
        Ok(())
    }
}

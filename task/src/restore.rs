//! A KafkaRestore run: write a backup's records back to a cluster, exactly once, and optionally
//! put consumer groups back where they were (three-phase restore).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::backup::TopicSelection;
use crate::field::{field_error, field_invalid, TaskError};
use crate::ids::{validate_id, validate_report_key};
use crate::target::{KafkaTarget, StorageTarget};
use crate::Result;

/// Default of [`RestoreTask::max_concurrent_partitions`] (kafka-backup's default).
pub const DEFAULT_RESTORE_CONCURRENCY: usize = 4;
/// Default of [`RestoreTask::produce_batch_size`]: records handed to the producer per batch.
pub const DEFAULT_PRODUCE_BATCH: usize = 1000;
/// Default of [`RestoreTask::checkpoint_interval_secs`] (the restore configuration's default).
pub const DEFAULT_CHECKPOINT_SECS: u64 = 60;

/// Write a backup's records back to a cluster, exactly once, and optionally put consumer
/// groups back where they were (three-phase restore).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreTask {
    /// The target cluster.
    pub kafka: KafkaTarget,
    /// Where the backup is (a location).
    pub storage: StorageTarget,
    pub backup_id: String,
    /// `full` (default): a backup of an incremental chain is restored with every link before
    /// it, oldest first; `single`: only the named backup's own records.
    #[serde(default, skip_serializing_if = "ChainScope::is_full")]
    pub chain: ChainScope,
    /// Names this restore: its checkpoint and offset mapping live under
    /// `backups/<backupId>/restores/<restoreId>/`. A run with the id of an unfinished restore
    /// resumes it; of a finished one, reports it as already complete. Default: derived from the
    /// task's content (the same configuration resumes the same restore); the operator uses the
    /// KafkaRestore's uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_id: Option<String>,
    /// Backed-up topics to restore: names, globs or `~regex`; empty `include` means all.
    #[serde(default)]
    pub topics: TopicSelection,
    /// PITR window, epoch milliseconds, inclusive at both ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_window_start: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_window_end: Option<i64>,
    /// Only these source partitions (every selected topic); empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_partitions: Vec<i32>,
    /// Source topic -> target topic.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub topic_mapping: BTreeMap<String, String>,
    /// Source partition -> target partition (every selected topic); unmapped partitions keep
    /// their number.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub partition_mapping: BTreeMap<i32, i32>,
    /// Create missing target topics from the backed-up metadata (partitions, replication
    /// factor, configs).
    #[serde(default)]
    pub create_topics: bool,
    /// What to do with a target partition that already holds records.
    #[serde(default)]
    pub existing_data: ExistingData,
    #[serde(default)]
    pub consumer_group_strategy: GroupStrategy,
    /// Add the source offset and timestamp to each record as headers.
    #[serde(default)]
    pub include_original_offset_header: bool,
    /// Names of those headers.
    #[serde(default)]
    pub original_header_style: HeaderStyle,
    /// Validate and report, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// `all` (default, idempotent producer) or `1`.
    #[serde(default)]
    pub acks: Acks,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_partitions: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub produce_batch_size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_records_per_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_bytes_per_sec: Option<u64>,
    /// How often progress is checkpointed (default 60 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_interval_secs: Option<u64>,
    /// A local file for the checkpoint instead of the backup storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_state: Option<String>,
    /// Translate and commit consumer-group offsets after the data (phase three).
    #[serde(default)]
    pub reset_consumer_offsets: bool,
    /// Groups whose offsets are translated; empty means every group in the offsets source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumer_groups: Vec<String>,
    /// Translate this offset snapshot (in `storage`) instead of the offsets captured with the
    /// backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsets_snapshot_id: Option<String>,
    /// Store the offsets about to change before committing (default true).
    #[serde(default = "crate::yes")]
    pub snapshot_before_reset: bool,
    /// A local file to write the offset mapping report to (JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_report: Option<String>,
    /// A key of `storage` (e.g. `reports/orders-dr.json`) where a copy of the offset mapping
    /// report is stored once the data is in; created once (a re-run that finds the same report
    /// keeps it; other content under the key fails the task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_report_key: Option<String>,
    /// This pod's shard (Indexed Job: `JOB_COMPLETION_INDEX` when absent) and the shard count:
    /// the target partitions are dealt to shards in a stable order, and each shard restores
    /// its share as a restore of its own, `<restoreId>-s<index>-of-<count>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_index: Option<u32>,
    #[serde(default = "crate::one", skip_serializing_if = "is_one")]
    pub shard_count: u32,
    /// With several shards and consumer groups to translate: how long shard 0, its own share
    /// done, waits for the other shards' mappings before phase three (default 6 hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_wait_secs: Option<u64>,
    /// Plan only: write the full plan to this key of the task's storage and report its hash and
    /// summary ([`crate::ResultPlan`]); nothing is changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_out: Option<String>,
    /// Execute exactly this approved plan; refuse (exit [`crate::exit::PLAN_CHANGED`]) when the
    /// cluster no longer matches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_plan: Option<crate::plan::ApprovedPlan>,
}

/// The restore id of shard `index` of `count` of restore `base`.
pub fn shard_restore_id(base: &str, index: u32, count: u32) -> String {
    format!("{base}-s{index}-of-{count}")
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// Which links of an incremental backup chain a restore reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChainScope {
    /// The named backup and every backup it continues, oldest first (default).
    #[default]
    Full,
    /// The named backup alone.
    Single,
}

impl ChainScope {
    pub fn is_full(&self) -> bool {
        *self == ChainScope::Full
    }
}

/// What happens to a target partition that already holds records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum ExistingData {
    /// The restore fails before writing, naming the partitions.
    #[default]
    Refuse,
    /// The restored records go after what is there.
    Append,
    /// What is there is deleted first (Kafka's DeleteRecords).
    Purge,
}

impl ExistingData {
    /// The spelling used in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            ExistingData::Refuse => "refuse",
            ExistingData::Append => "append",
            ExistingData::Purge => "purge",
        }
    }
}

/// `refuse`, `append` or `purge` (any case).
impl std::str::FromStr for ExistingData {
    type Err = String;
    fn from_str(v: &str) -> std::result::Result<Self, String> {
        match v.to_ascii_lowercase().as_str() {
            "refuse" => Ok(ExistingData::Refuse),
            "append" => Ok(ExistingData::Append),
            "purge" => Ok(ExistingData::Purge),
            _ => Err(format!("'{v}' is not one of refuse, append, purge")),
        }
    }
}

/// How consumer-group offsets are handled (the kafka-backup restore configuration's strategies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum GroupStrategy {
    // Leave offsets alone (default).
    #[default]
    Skip,
    // Records carry their source offset in headers; offsets are translated exactly through
    // the restore's offset mapping.
    HeaderBased,
    // Offsets are translated through the timestamp of the record each committed offset points
    // at, looked up in the target like Kafka's `--to-datetime`.
    TimestampBased,
    // The mapping is rebuilt by reading the original-offset headers back from the target.
    ClusterScan,
    // Only report the mapping and the translated offsets; change nothing.
    Manual,
}

impl GroupStrategy {
    /// The spelling used in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupStrategy::Skip => "skip",
            GroupStrategy::HeaderBased => "header-based",
            GroupStrategy::TimestampBased => "timestamp-based",
            GroupStrategy::ClusterScan => "cluster-scan",
            GroupStrategy::Manual => "manual",
        }
    }
}

/// The kafka-backup restore configuration's strategy names (`header-based`; `header_based` and
/// `headerBased` also read).
impl std::str::FromStr for GroupStrategy {
    type Err = String;
    fn from_str(v: &str) -> std::result::Result<Self, String> {
        match v.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "skip" => Ok(GroupStrategy::Skip),
            "headerbased" => Ok(GroupStrategy::HeaderBased),
            "timestampbased" => Ok(GroupStrategy::TimestampBased),
            "clusterscan" => Ok(GroupStrategy::ClusterScan),
            "manual" => Ok(GroupStrategy::Manual),
            _ => Err(format!(
                "'{v}' is not one of skip, header-based, timestamp-based, cluster-scan, manual"
            )),
        }
    }
}

/// Names of the original-offset headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum HeaderStyle {
    // `x-original-offset`, `x-original-timestamp` (default).
    #[default]
    Original,
    // `x-kafka-backup-offset`, `x-kafka-backup-timestamp`, `x-kafka-backup-partition`.
    KafkaBackup,
}

/// `original` or `kafka-backup` (`kafka_backup` also read; any case).
impl std::str::FromStr for HeaderStyle {
    type Err = String;
    fn from_str(v: &str) -> std::result::Result<Self, String> {
        match v.to_ascii_lowercase().replace('_', "-").as_str() {
            "original" => Ok(HeaderStyle::Original),
            "kafka-backup" => Ok(HeaderStyle::KafkaBackup),
            _ => Err(format!("'{v}' is not one of original, kafka-backup")),
        }
    }
}

/// Producer acknowledgements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Acks {
    /// Every in-sync replica; the producer is idempotent.
    #[default]
    #[serde(rename = "all", alias = "-1")]
    All,
    /// The leader only.
    // Not idempotent, so one request is in flight per connection and a failed request ends
    // the run (a re-run resumes exactly).
    #[serde(rename = "1")]
    Leader,
}

/// `all` / `-1` or `1`; `0` is refused with why.
impl std::str::FromStr for Acks {
    type Err = String;
    fn from_str(v: &str) -> std::result::Result<Self, String> {
        match v.trim().to_ascii_lowercase().as_str() {
            "all" | "-1" => Ok(Acks::All),
            "1" => Ok(Acks::Leader),
            "0" => Err(
                "acks 0 cannot tell what landed, so a restore could not be exactly once; use all or 1"
                    .into(),
            ),
            _ => Err(format!("'{v}' is not one of all, 1")),
        }
    }
}

impl RestoreTask {
    /// Checks the storage (a location), the ids, the topic patterns and mappings, the window
    /// and bounds. Whether the backup holds what is asked is checked when it is read.
    pub fn validate(&self) -> Result<()> {
        self.kafka.validate()?;
        match &self.storage {
            StorageTarget::Location { .. } => self.storage.validate()?,
            StorageTarget::ConfigMap { .. } => {
                return Err(field_error(
                    "storage",
                    "is a ConfigMap; backups live in a PVC, s3, gcs or azure location",
                ))
            }
        }
        validate_id(&self.backup_id).map_err(|e| field_invalid("backupId", e))?;
        crate::plan::validate_plan_fields(self.plan_out.as_deref(), self.approved_plan.as_ref())?;
        if let Some(id) = &self.restore_id {
            validate_id(id).map_err(|e| field_invalid("restoreId", e))?;
        }
        if let Some(id) = &self.offsets_snapshot_id {
            validate_id(id).map_err(|e| field_invalid("offsetsSnapshotId", e))?;
        }
        crate::topics::TopicFilter::new(&self.topics.include, &self.topics.exclude)
            .map_err(|e| field_invalid("topics", e))?;
        if let (Some(s), Some(e)) = (self.time_window_start, self.time_window_end) {
            if s > e {
                return Err(field_error(
                    "timeWindowStart",
                    format!("({s}) is after {{timeWindowEnd}} ({e}): the window is empty"),
                ));
            }
        }
        for (field, v) in [
            ("timeWindowStart", self.time_window_start),
            ("timeWindowEnd", self.time_window_end),
        ] {
            if let Some(v) = v {
                if v < 0 {
                    return Err(field_error(
                        field,
                        format!("is {v}; give epoch milliseconds (0 or more)"),
                    ));
                }
            }
        }
        if let Some(p) = self.source_partitions.iter().find(|p| **p < 0) {
            return Err(field_error(
                "sourcePartitions",
                format!("holds {p}; partitions are 0 or more"),
            ));
        }
        for (from, to) in &self.partition_mapping {
            if *from < 0 || *to < 0 {
                return Err(field_error(
                    "partitionMapping",
                    format!("maps {from} to {to}; partitions are 0 or more"),
                ));
            }
        }
        for (from, to) in &self.topic_mapping {
            crate::reset_spec::validate_topic_name(to)
                .map_err(|e| field_invalid(&format!("topicMapping.{from}"), e))?;
        }
        for (field, v) in [
            ("maxConcurrentPartitions", self.max_concurrent_partitions),
            ("produceBatchSize", self.produce_batch_size),
        ] {
            if v == Some(0) {
                return Err(field_error(field, "is 0; use 1 or more"));
            }
        }
        if self.checkpoint_interval_secs == Some(0) {
            return Err(field_error("checkpointIntervalSecs", "is 0; use 1 or more"));
        }
        if let Some(key) = &self.offset_report_key {
            validate_report_key(key).map_err(|e| field_error("offsetReportKey", e))?;
        }
        if self.consumer_group_strategy == GroupStrategy::ClusterScan
            && !self.include_original_offset_header
        {
            return Err(field_error(
                "consumerGroupStrategy",
                "is cluster-scan, which reads the original-offset headers back from the target: set {includeOriginalOffsetHeader}",
            ));
        }
        if self.reset_consumer_offsets && self.consumer_group_strategy == GroupStrategy::Skip {
            return Err(field_error(
                "resetConsumerOffsets",
                "is true but {consumerGroupStrategy} is skip: choose header-based (exact), timestamp-based, cluster-scan or manual",
            ));
        }
        if let Some(g) = self.consumer_groups.iter().find(|g| g.trim().is_empty()) {
            return Err(field_error(
                "consumerGroups",
                format!("holds an empty name ('{g}')"),
            ));
        }
        self.validate_shards()
    }

    /// 1-1000 shards, `shardIndex < shardCount`; several shards store no single offset report.
    fn validate_shards(&self) -> Result<()> {
        let n = self.shard_count;
        if !(1..=1000).contains(&n) {
            return Err(field_error("shardCount", format!("is {n}; use 1 to 1000")));
        }
        if let Some(i) = self.shard_index.filter(|i| *i >= n) {
            return Err(field_error(
                "shardCount",
                format!("is {n}; shardIndex {i} must be below it"),
            ));
        }
        if self.shard_wait_secs == Some(0) {
            return Err(field_error("shardWaitSecs", "is 0; use 1 or more"));
        }
        if n > 1 && self.offset_report_key.is_some() {
            return Err(field_error(
                "shardCount",
                format!("is {n}, and an offset report is to be stored (offsetReportKey): each shard has its own offset mapping (restores/<restoreId>-s<index>-of-{n}/mapping.json); restore with one shard to store one report"),
            ));
        }
        Ok(())
    }

    /// How long shard 0 waits for the other shards before phase three, in seconds.
    pub fn shard_wait_secs(&self) -> u64 {
        self.shard_wait_secs.unwrap_or(6 * 3600)
    }

    /// The task one shard runs: with several shards, its index resolved (`shardIndex`, else
    /// `JOB_COMPLETION_INDEX`) and its restore id `<restoreId>-s<index>-of-<count>`, so shards
    /// never share a lease, checkpoint or mapping. One shard: the task as it is.
    pub fn for_shard(&self) -> Result<RestoreTask> {
        let n = self.shard_count;
        if n <= 1 {
            return Ok(self.clone());
        }
        let env = crate::env::ENV_COMPLETION_INDEX;
        let i = match self.shard_index {
            Some(i) => i,
            None => {
                let v = std::env::var(env).map_err(|_| {
                    field_error(
                        "shardIndex",
                        format!("is absent and {env} is not set; a restore of {n} shards needs the shard of this process"),
                    )
                })?;
                v.trim().parse::<u32>().map_err(|_| {
                    TaskError::Invalid(format!(
                        "{env} is '{v}'; expected a shard index (0 or more)"
                    ))
                })?
            }
        };
        let mut t = self.clone();
        t.shard_index = Some(i);
        t.restore_id = Some(shard_restore_id(&self.effective_restore_id(), i, n));
        t.validate_shards()?;
        Ok(t)
    }

    /// What decides the restored content (backup, target, selection, window, mappings,
    /// headers), as canonical JSON: the same selection restores the same records to the same
    /// places. Throttles, intervals and group settings are not part of it.
    pub fn selection_key(&self) -> String {
        let mut key = serde_json::json!({
            "backup": self.backup_id,
            "servers": self.kafka.bootstrap_servers,
            "topics": self.topics,
            "start": self.time_window_start,
            "end": self.time_window_end,
            "partitions": self.source_partitions,
            "topicMapping": self.topic_mapping,
            "partitionMapping": self.partition_mapping,
            "headers": self.include_original_offset_header,
            "style": self.original_header_style,
        });
        // Only a non-default chain scope joins the key, so existing restore ids stay as they were.
        if let (ChainScope::Single, Some(o)) = (self.chain, key.as_object_mut()) {
            o.insert("chain".into(), serde_json::json!(self.chain));
        }
        key.to_string()
    }

    /// The effective restore id: the given one, or `restore-<12 hex>` of a hash over
    /// [`selection_key`](Self::selection_key).
    pub fn effective_restore_id(&self) -> String {
        if let Some(id) = &self.restore_id {
            return id.clone();
        }
        let key = self.selection_key();
        let digest = crc32c::crc32c(key.as_bytes());
        let digest2 = crc32c::crc32c(format!("{digest}{key}").as_bytes());
        format!("restore-{digest:08x}{:04x}", digest2 & 0xffff)
    }
}

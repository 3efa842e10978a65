//! The task document: what the operator asks a worker Job to do (`tidemark run --task FILE`),
//! and the compact result the worker reports back through the container's termination message.
//!
//! The operator renders a [`Task`] from a custom resource into a ConfigMap mounted into the Job;
//! credentials never appear in it (SASL from `KAFKA_USERNAME`/`KAFKA_PASSWORD` env set from
//! Secrets, TLS as files in a mounted Secret, cloud credentials from the provider's env vars).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kafka::{SaslMechanism, SecurityProtocol};
use crate::snapshot::{validate_id, MAX_ID_LEN};

/// Why `key` is not a report key: `/`-separated segments of letters, digits, `.`, `_` and
/// `-`, none of them `.` or `..`, at most 1024 characters.
pub fn validate_report_key(key: &str) -> std::result::Result<(), String> {
    let fine = |seg: &str| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    if key.len() > 1024 || !key.split('/').all(fine) {
        return Err(format!(
            "is '{key}'; give a key relative to the storage such as reports/orders.json: segments of letters, digits, '.', '_' and '-' (not '.' or '..') joined by '/', at most 1024 characters"
        ));
    }
    Ok(())
}

/// Version tag of the task document format.
pub const TASK_API_VERSION: &str = "tidemark.dev/task-v1";

/// Largest result the worker writes to the termination message (Kubernetes keeps 4096 bytes).
pub const MAX_RESULT_BYTES: usize = 4096;
/// A file of this name next to the task file asks a continuous backup run by `tidemark run` to
/// finish: it stores what it read, writes its manifest and exits 0 (the operator adds it as a
/// key of the task ConfigMap, which is mounted as a directory).
pub const FINISH_FILE_NAME: &str = "finish";

/// One unit of work.
///
/// Unknown fields are refused by each [`TaskWork`] variant's own `deny_unknown_fields` (serde
/// cannot combine that attribute with `flatten` here: it would refuse the `kind` tag).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// Always [`TASK_API_VERSION`].
    pub api_version: String,
    /// The resource the task was rendered from, `namespace/name`, for logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(flatten)]
    pub work: TaskWork,
}

/// What to do.
// One task is parsed per process: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum TaskWork {
    /// A KafkaOffsetRollback operation.
    OffsetRollback(OffsetRollbackTask),
    /// A KafkaOffsetReset run.
    OffsetReset(OffsetResetTask),
    /// A KafkaBackup run (one shard of it when `shardCount > 1`).
    Backup(BackupTask),
    /// Retention for a KafkaBackup's backups: delete those beyond keepLast / older than maxAge.
    BackupCleanup(BackupCleanupTask),
    /// A KafkaRestore run (or its validation when `dryRun`).
    Restore(RestoreTask),
}

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
    /// zstd level 1-22 (default 3); ignored otherwise.
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
    #[serde(default = "yes")]
    pub capture_offsets: bool,
    /// This pod's shard (Indexed Job: `JOB_COMPLETION_INDEX` when absent) and the shard count;
    /// partitions are dealt to shards in a stable order, and the shards together form one backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_index: Option<u32>,
    #[serde(default = "one")]
    pub shard_count: u32,
}

fn one() -> u32 {
    1
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
#[serde(rename_all = "camelCase")]
pub enum BackupMode {
    #[default]
    OneShot,
    Continuous,
    Incremental,
}

/// Segment compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Compression {
    #[default]
    Zstd,
    Lz4,
    None,
}

/// Retention: which backups of a chain to delete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupCleanupTask {
    pub storage: StorageTarget,
    /// The chain whose backups are pruned (other backups in the storage are never touched).
    pub chain: String,
    /// Keep at least the newest N complete backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    /// Delete complete backups older than this (e.g. `30d`, `12h`); the newest is always kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    /// Delete incomplete backups of the chain (interrupted and never resumed) whose last write
    /// is older than this (default `24h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete_grace_period: Option<String>,
}

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
    #[serde(default = "yes")]
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
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub shard_count: u32,
    /// With several shards and consumer groups to translate: how long shard 0, its own share
    /// done, waits for the other shards' mappings before phase three (default 6 hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_wait_secs: Option<u64>,
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

/// A target partition that already holds records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExistingData {
    /// Refuse the restore, naming the partitions (default).
    #[default]
    Refuse,
    /// Add the restored records after what is there.
    Append,
    /// Delete what is there first (Kafka's DeleteRecords up to the end offset).
    Purge,
}

/// What happens to consumer-group offsets (the kafka-backup restore strategies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupStrategy {
    /// Leave offsets alone (default).
    #[default]
    Skip,
    /// Records carry their source offset in headers; offsets are translated exactly through
    /// the restore's offset mapping.
    HeaderBased,
    /// Offsets are translated through the timestamp of the record each committed offset points
    /// at, looked up in the target like Kafka's `--to-datetime`.
    TimestampBased,
    /// The mapping is rebuilt by reading the original-offset headers back from the target.
    ClusterScan,
    /// Only report the mapping and the translated offsets; change nothing.
    Manual,
}

/// Names of the original-offset headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeaderStyle {
    /// `x-original-offset`, `x-original-timestamp` (default).
    #[default]
    Original,
    /// `x-kafka-backup-offset`, `x-kafka-backup-timestamp`, `x-kafka-backup-partition`.
    KafkaBackup,
}

/// Producer acknowledgements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Acks {
    /// Every in-sync replica; the producer is idempotent.
    #[default]
    #[serde(rename = "all", alias = "-1")]
    All,
    /// The leader only; not idempotent, so one request is in flight per connection and a failed
    /// request ends the run (a re-run resumes exactly).
    #[serde(rename = "1")]
    Leader,
}

/// Default of [`OffsetResetTask::max_concurrent`]: groups reset at once.
pub const DEFAULT_RESET_CONCURRENCY: usize = 50;
/// Default of [`OffsetResetTask::max_retries`]: retries per partition after the first attempt.
pub const DEFAULT_RESET_RETRIES: u32 = 3;

/// Move consumer-group offsets, with Kafka's `--reset-offsets` semantics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OffsetResetTask {
    pub kafka: KafkaTarget,
    /// Groups by name (with `groupsRegex`, the union of both).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumer_groups: Vec<String>,
    /// Groups whose whole id matches this regex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_regex: Option<String>,
    /// Scope: `topic` (all its partitions) or `topic:0,1,2`; empty means every topic the group
    /// has committed offsets on (Kafka's `--all-topics`). Ignored by fromFile/fromSnapshot,
    /// whose documents name their partitions (a non-empty list narrows them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    /// Where the offsets go.
    pub strategy: ResetStrategy,
    /// Plan only; change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Groups reset at once.
    #[serde(default = "default_reset_concurrency")]
    pub max_concurrent: usize,
    /// Retries per partition (exponential backoff) after the first attempt.
    #[serde(default = "default_reset_retries")]
    pub max_retries: u32,
    /// Store an offset-rollback snapshot of the partitions about to change first (default true).
    #[serde(default = "yes")]
    pub snapshot_before_reset: bool,
    /// Where the safety snapshot goes (and where fromSnapshot reads); required when a snapshot
    /// is taken or read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageTarget>,
    /// Id of the safety snapshot. The operator picks one per run, so a retried Job finds the
    /// snapshot its first attempt stored and reuses it instead of capturing half-reset offsets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// Description of the safety snapshot, naming the run that takes it. When set, an existing
    /// snapshot `snapshotId` is reused only if it carries this description (a retry of the same
    /// run); one taken by anything else fails the task and nothing is changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_description: Option<String>,
}

fn default_reset_concurrency() -> usize {
    DEFAULT_RESET_CONCURRENCY
}

fn default_reset_retries() -> u32 {
    DEFAULT_RESET_RETRIES
}

/// Where a reset moves offsets to (one of Kafka's reset specs, or a stored plan).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum ResetStrategy {
    /// The log start offset.
    ToEarliest,
    /// The log end offset.
    ToLatest,
    /// The committed offset, or the log end offset where there is none.
    ToCurrent,
    /// This offset, clamped to the log.
    ToOffset { offset: i64 },
    /// Committed offset plus `shift` (may be negative), clamped to the log.
    ShiftBy { shift: i64 },
    /// The first offset at or after this time: ISO-8601 with milliseconds, optional zone (UTC
    /// if none), e.g. `2024-12-01T10:00:00.000` or `2024-12-01T10:00:00.000+01:00`.
    ToDatetime { datetime: String },
    /// The first offset at or after now minus this ISO-8601 duration (`PnDTnHnMnS`).
    ByDuration { duration: String },
    /// Kafka's reset CSV: `group,topic,partition,offset` lines (or `topic,partition,offset` with
    /// exactly one group).
    FromFile { csv: String },
    /// The offsets stored in an offset-rollback snapshot in `storage`.
    FromSnapshot { snapshot_id: String },
    /// The offsets captured with a backup in `storage` (a location), translated through the
    /// offset mapping of its newest restore (the CLI's `--backup-id`).
    FromBackup { backup_id: String },
}

impl ResetStrategy {
    /// The strategy's name as the CLI flag spells it (`to-earliest`, `shift-by`, ...).
    pub fn flag(&self) -> &'static str {
        match self {
            ResetStrategy::ToEarliest => "to-earliest",
            ResetStrategy::ToLatest => "to-latest",
            ResetStrategy::ToCurrent => "to-current",
            ResetStrategy::ToOffset { .. } => "to-offset",
            ResetStrategy::ShiftBy { .. } => "shift-by",
            ResetStrategy::ToDatetime { .. } => "to-datetime",
            ResetStrategy::ByDuration { .. } => "by-duration",
            ResetStrategy::FromFile { .. } => "from-file",
            ResetStrategy::FromSnapshot { .. } => "from-snapshot",
            ResetStrategy::FromBackup { .. } => "backup-id",
        }
    }
}

/// snapshot | rollback | verify | delete of an offset snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OffsetRollbackTask {
    pub operation: RollbackOperation,
    /// Needed by every operation but delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaTarget>,
    pub storage: StorageTarget,
    /// snapshot: the groups to capture; rollback/verify: the subset to act on (empty = all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumer_groups: Vec<String>,
    /// Required except for snapshot, where a missing id is generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// verify: also count partitions committed now but absent from the snapshot, and fail on
    /// any difference.
    #[serde(default)]
    pub strict: bool,
    /// rollback: re-read and compare afterwards (default true).
    #[serde(default = "yes")]
    pub verify_after_rollback: bool,
    /// rollback: id of the safety snapshot of the offsets it replaces (default: generated). An
    /// existing snapshot with this id is kept: a retried run keeps what its first attempt stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_snapshot_id: Option<String>,
}

fn yes() -> bool {
    true
}

/// The four operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RollbackOperation {
    Snapshot,
    Rollback,
    Verify,
    Delete,
}

/// How to reach Kafka; secrets come from the environment and mounted files only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaTarget {
    pub bootstrap_servers: Vec<String>,
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    pub security_protocol: String,
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, when SASL is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_mechanism: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_ca_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_certificate_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_key_location: Option<String>,
    /// Extra librdkafka properties; secret-bearing keys and those that would switch a
    /// guarantee off or load code are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    /// Connect over TLS without verifying the broker's certificate and host name.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls_insecure_skip_verify: bool,
}

/// Where snapshots are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum StorageTarget {
    /// A `--path` style location: directory (e.g. a mounted PVC), s3://, gs://, az://.
    Location {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        s3_region: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        s3_endpoint: Option<String>,
        #[serde(default)]
        s3_path_style: bool,
        #[serde(default)]
        allow_http: bool,
    },
    /// A ConfigMap, one `<snapshotId>.json` entry per snapshot.
    ConfigMap { namespace: String, name: String },
}

/// What the worker reports back (JSON, at most [`MAX_RESULT_BYTES`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskResult {
    /// `Completed` or `Failed`.
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// One line for the Ready condition's message.
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_data: Option<ResultSnapshotData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<ResultVerification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_rolled_back: Option<u64>,
    /// rollback: the snapshot of the offsets it replaced (roll back to it to undo the rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_snapshot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_failed: Option<u64>,
    /// What an offset reset planned or did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<ResultReset>,
    /// What a backup stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<ResultBackup>,
    /// What a restore did (or, in a dry run, would do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<ResultRestore>,
    /// Set when the task failed: the error's label and exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ResultError>,
}

/// A restore's summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultRestore {
    pub restore_id: String,
    /// Only validated; nothing was written.
    pub dry_run: bool,
    /// Whether every selected record is in the target.
    pub complete: bool,
    pub topics: u64,
    pub partitions: u64,
    /// Records selected (the whole restore).
    pub records_total: u64,
    /// Records in the target so far (including earlier attempts).
    pub records_restored: u64,
    pub bytes_total: u64,
    pub bytes_restored: u64,
    /// Object key of the offset mapping, relative to the storage location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_mapping: Option<String>,
    /// Groups whose offsets were translated (and committed unless a dry run or manual).
    pub groups_translated: u64,
    pub groups_failed: u64,
    /// One-line summary of a validation (dry run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<String>,
}

/// A backup's summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultBackup {
    pub backup_id: String,
    /// Whether this shard's part of the backup is complete (its manifest written).
    pub complete: bool,
    pub topics: u64,
    pub partitions: u64,
    pub records: u64,
    /// Record bytes (keys, values, headers) before compression.
    pub bytes: u64,
    /// Bytes written to storage.
    pub stored_bytes: u64,
    pub segments: u64,
    /// Consumer groups whose offsets were captured.
    pub groups_captured: u64,
    /// Backups deleted by a cleanup task (the first [`MAX_RESULT_IDS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<String>,
    /// Partitions an incremental backup started at a new log start because the topic was
    /// re-created or truncated since the parent backup (named in the message and manifest).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub discontinuities: u64,
    /// Backups a cleanup task deleted, all of them (`deleted` may be cut).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deleted_total: u64,
    /// Complete backups a cleanup task found damaged (not counted as kept; the first
    /// [`MAX_RESULT_IDS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<String>,
    /// Offsets in the backed-up ranges that hold no record (compaction, retention,
    /// transaction markers, unexplained).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gap_offsets: u64,
    /// Of those, the offsets nothing explains (a topic that is not compacted).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unexplained_gap_offsets: u64,
    /// When an interrupted backup last wrote its checkpoint (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_time: Option<String>,
    /// Offsets an interrupted backup was behind the high watermarks at its last checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
}

/// Ids listed at most in a result's lists of backups.
pub const MAX_RESULT_IDS: usize = 20;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// An offset reset's summary, with per-group results truncated to fit the termination message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultReset {
    /// Only planned; nothing was changed.
    pub dry_run: bool,
    /// Groups selected.
    pub groups_total: u64,
    /// Groups whose offsets were all committed (dry run: groups that would change).
    pub groups_reset: u64,
    /// Groups refused (active) or failed.
    pub groups_failed: u64,
    /// Partitions whose committed offset the plan changes.
    pub partitions_planned: u64,
    /// Offsets committed.
    pub offsets_reset: u64,
    /// Committed offsets per second over the run, rounded.
    pub offsets_per_second: u64,
    /// Number of per-group results before truncation.
    pub total_group_results: u64,
    /// The first per-group results (failed groups first, as many as fit).
    #[serde(default)]
    pub group_results: Vec<ResultGroup>,
}

/// One group's reset outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultGroup {
    pub group: String,
    /// `reset`, `planned`, `unchanged` or `failed`.
    pub status: String,
    /// Partitions committed (or planned, in a dry run).
    pub partitions: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A dry run: the first partitions the plan changes (at most
    /// [`MAX_RESULT_PLAN_PARTITIONS`]; fewer than `partitions` marks a cut).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<ResultPartitionPlan>,
}

/// Partitions listed at most in one group's plan in a result.
pub const MAX_RESULT_PLAN_PARTITIONS: usize = 10;

/// One partition of a planned reset: where its committed offset is and where it goes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultPartitionPlan {
    pub topic: String,
    pub partition: i32,
    /// The committed offset now (absent: none yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<i64>,
    pub target: i64,
    /// `set` (no committed offset yet), `forward` (records skipped) or `rewind` (records
    /// consumed again).
    pub action: String,
}

/// Counts of a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultSnapshotData {
    pub groups: u64,
    pub total_partitions: u64,
    pub timestamp: String,
}

/// A verification outcome, with differences truncated to fit the termination message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultVerification {
    pub matched: bool,
    pub total_differences: u64,
    /// The first differences (as many as fit).
    #[serde(default)]
    pub differences: Vec<ResultDifference>,
}

/// One difference: group, topic, partition, expected, actual.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultDifference {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<i64>,
}

/// Why a task failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultError {
    pub kind: String,
    pub exit_code: i32,
}

impl Task {
    /// Parses a task document, YAML or JSON (a document starting with `{` is read as JSON);
    /// `file` names it in errors. Unknown fields are refused. Does not [`validate`](Self::validate).
    pub fn parse(data: &[u8], file: &str) -> Result<Task> {
        let invalid = |reason: String| {
            Error::invalid(format!(
                "task file '{file}' is not a valid task document: {reason}"
            ))
        };
        crate::limits::check_size(data.len(), crate::limits::MAX_TASK_BYTES).map_err(invalid)?;
        let text = std::str::from_utf8(data).map_err(|e| invalid(e.to_string()))?;
        if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| invalid(e.to_string()))
        } else {
            crate::limits::check_yaml_expansion(text).map_err(invalid)?;
            serde_yaml_ng::from_str(text).map_err(|e| invalid(e.to_string()))
        }
    }

    /// Checks what serde cannot: the api version and each operation's required fields.
    /// Errors are [`Error::InvalidInput`] naming the field, e.g. `task field 'snapshotId' is
    /// required for operation rollback`.
    pub fn validate(&self) -> Result<()> {
        if self.api_version != TASK_API_VERSION {
            return Err(Error::invalid(format!(
                "task field 'apiVersion' is '{}'; this worker understands '{TASK_API_VERSION}'",
                self.api_version
            )));
        }
        match &self.work {
            TaskWork::OffsetRollback(t) => t.validate(),
            TaskWork::OffsetReset(t) => t.validate(),
            TaskWork::Backup(t) => t.validate(),
            TaskWork::BackupCleanup(t) => t.validate(),
            TaskWork::Restore(t) => t.validate(),
        }
    }

    /// The operation's name, for logs and results.
    pub fn operation(&self) -> &'static str {
        match &self.work {
            TaskWork::OffsetRollback(t) => t.operation.as_str(),
            TaskWork::OffsetReset(t) if t.dry_run => "reset-plan",
            TaskWork::OffsetReset(_) => "reset",
            TaskWork::Backup(_) => "backup",
            TaskWork::BackupCleanup(_) => "backup-cleanup",
            TaskWork::Restore(t) if t.dry_run => "validate-restore",
            TaskWork::Restore(_) => "restore",
        }
    }
}

/// An [`Error::InvalidInput`] about one task field.
fn field_error(field: &str, why: impl std::fmt::Display) -> Error {
    Error::invalid(format!("task field '{field}' {why}"))
}

impl OffsetRollbackTask {
    /// Checks the fields the operation needs: `kafka` for all but delete, `snapshotId` (a valid
    /// id) for all but snapshot, `consumerGroups` for snapshot, and a usable storage target.
    pub fn validate(&self) -> Result<()> {
        let op = self.operation.as_str();
        match &self.kafka {
            None if self.operation != RollbackOperation::Delete => {
                return Err(field_error(
                    "kafka",
                    format!("is required for operation {op}"),
                ));
            }
            None => {}
            Some(k) => k.validate()?,
        }
        match &self.snapshot_id {
            None if self.operation != RollbackOperation::Snapshot => {
                return Err(field_error(
                    "snapshotId",
                    format!("is required for operation {op}"),
                ));
            }
            None => {}
            Some(id) => {
                validate_id(id).map_err(|e| field_invalid("snapshotId", e))?;
            }
        }
        if let Some(i) = self
            .consumer_groups
            .iter()
            .position(|g| g.trim().is_empty())
        {
            return Err(field_error(
                &format!("consumerGroups[{i}]"),
                "is empty; name a consumer group",
            ));
        }
        if self.operation == RollbackOperation::Snapshot && self.consumer_groups.is_empty() {
            return Err(field_error(
                "consumerGroups",
                "is required for operation snapshot: list the groups to capture",
            ));
        }
        self.storage.validate()
    }
}

impl OffsetResetTask {
    /// Checks the selection (at least one group or a regex, no empty names), the bounds of
    /// `maxConcurrent` (1-1000) and `maxRetries` (0-100), the strategy's parameters, and that
    /// `storage` is given when a snapshot is taken or read. The strategy's datetime, duration
    /// and CSV are parsed again by the reset engine, which names the same fields.
    pub fn validate(&self) -> Result<()> {
        self.kafka.validate()?;
        crate::limits::check_list(self.consumer_groups.len())
            .map_err(|e| field_error("consumerGroups", e))?;
        crate::limits::check_list(self.topics.len()).map_err(|e| field_error("topics", e))?;
        if self.consumer_groups.is_empty() && self.groups_regex.is_none() {
            return Err(field_error(
                "consumerGroups",
                "is empty and no groupsRegex is given: select the groups to reset",
            ));
        }
        if let Some(i) = self
            .consumer_groups
            .iter()
            .position(|g| g.trim().is_empty())
        {
            return Err(field_error(
                &format!("consumerGroups[{i}]"),
                "is empty; name a consumer group",
            ));
        }
        if let Some(re) = &self.groups_regex {
            crate::limits::anchored_regex(re)
                .map_err(|e| field_error("groupsRegex", format!("is not a valid regex: {e}")))?;
        }
        for (i, topic) in self.topics.iter().enumerate() {
            crate::reset::spec::parse_topic_scope(topic)
                .map_err(|e| Error::invalid(format!("task field 'topics[{i}]': {e}")))?;
        }
        if !(1..=1000).contains(&self.max_concurrent) {
            return Err(field_error(
                "maxConcurrent",
                format!("is {}; use 1 to 1000", self.max_concurrent),
            ));
        }
        if self.max_retries > 100 {
            return Err(field_error(
                "maxRetries",
                format!("is {}; use 0 to 100", self.max_retries),
            ));
        }
        match &self.strategy {
            ResetStrategy::ToOffset { offset } if *offset < 0 => {
                return Err(field_error(
                    "strategy.offset",
                    format!("is {offset}; offsets are 0 or more"),
                ));
            }
            ResetStrategy::ToDatetime { datetime } => {
                crate::reset::spec::parse_datetime(datetime)
                    .map_err(|e| Error::invalid(format!("task field 'strategy.datetime': {e}")))?;
            }
            ResetStrategy::ByDuration { duration } => {
                crate::reset::spec::parse_duration(duration)
                    .map_err(|e| Error::invalid(format!("task field 'strategy.duration': {e}")))?;
            }
            ResetStrategy::FromFile { csv } => {
                let names = crate::groups::split_names(&self.consumer_groups);
                let single = match (names.as_slice(), &self.groups_regex) {
                    ([one], None) => Some(one.as_str()),
                    _ => None,
                };
                crate::reset::csv::parse_reset_csv(csv, "task field 'strategy.csv'", single)
                    .map_err(Error::invalid)?;
            }
            ResetStrategy::FromSnapshot { snapshot_id } => {
                validate_id(snapshot_id).map_err(|e| field_invalid("strategy.snapshotId", e))?;
            }
            ResetStrategy::FromBackup { backup_id } => {
                validate_id(backup_id).map_err(|e| field_invalid("strategy.backupId", e))?;
                match &self.storage {
                    Some(StorageTarget::Location { .. }) => {}
                    Some(StorageTarget::ConfigMap { .. }) => {
                        return Err(field_error(
                            "storage",
                            "is a ConfigMap; strategy fromBackup reads a backup and its restore's offset mapping from a PVC, s3, gcs or azure location",
                        ))
                    }
                    None => {
                        return Err(field_error(
                            "storage",
                            "is required to read the fromBackup backup and its restore's offset mapping",
                        ))
                    }
                }
            }
            _ => {}
        }
        if let Some(id) = &self.snapshot_id {
            validate_id(id).map_err(|e| field_invalid("snapshotId", e))?;
        }
        let needs_storage = matches!(self.strategy, ResetStrategy::FromSnapshot { .. })
            || (self.snapshot_before_reset && !self.dry_run);
        match &self.storage {
            Some(s) => s.validate(),
            None if needs_storage => Err(field_error(
                "storage",
                if matches!(self.strategy, ResetStrategy::FromSnapshot { .. }) {
                    "is required to read the fromSnapshot snapshot"
                } else {
                    "is required for the safety snapshot (or set snapshotBeforeReset: false)"
                },
            )),
            None => Ok(()),
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
        crate::backup::select::TopicFilter::new(&self.topics.include, &self.topics.exclude)
            .map_err(|e| Error::invalid(format!("task field 'topics': {e}")))?;
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
        if let Some(id) = &self.restore_id {
            validate_id(id).map_err(|e| field_invalid("restoreId", e))?;
        }
        if let Some(id) = &self.offsets_snapshot_id {
            validate_id(id).map_err(|e| field_invalid("offsetsSnapshotId", e))?;
        }
        crate::backup::select::TopicFilter::new(&self.topics.include, &self.topics.exclude)
            .map_err(|e| Error::invalid(format!("task field 'topics': {e}")))?;
        if let (Some(s), Some(e)) = (self.time_window_start, self.time_window_end) {
            if s > e {
                return Err(field_error(
                    "timeWindowStart",
                    format!("({s}) is after timeWindowEnd ({e}): the window is empty"),
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
            crate::reset::spec::validate_topic_name(to)
                .map_err(|e| Error::invalid(format!("task field 'topicMapping.{from}': {e}")))?;
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
                "is cluster-scan, which reads the original-offset headers back from the target: set includeOriginalOffsetHeader",
            ));
        }
        if self.reset_consumer_offsets && self.consumer_group_strategy == GroupStrategy::Skip {
            return Err(field_error(
                "resetConsumerOffsets",
                "is true but consumerGroupStrategy is skip: choose header-based (exact), timestamp-based, cluster-scan or manual",
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
        let env = crate::backup::ENV_COMPLETION_INDEX;
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
                    Error::invalid(format!(
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

impl BackupCleanupTask {
    /// Checks the chain name and that a retention rule is given.
    pub fn validate(&self) -> Result<()> {
        self.storage.validate()?;
        validate_id(&self.chain).map_err(|e| field_invalid("chain", e))?;
        if self.keep_last.is_none() && self.max_age.is_none() {
            return Err(field_error(
                "keepLast",
                "and maxAge are both absent: give at least one retention rule",
            ));
        }
        if self.keep_last == Some(0) {
            return Err(field_error("keepLast", "is 0; keep at least 1 backup"));
        }
        if let Some(age) = &self.max_age {
            crate::backup::age::parse_age(age).map_err(|e| field_invalid("maxAge", e))?;
        }
        if let Some(age) = &self.incomplete_grace_period {
            crate::backup::age::parse_age(age).map_err(|_| {
                field_error(
                    "incompleteGracePeriod",
                    format!("is '{age}', not a duration like 24h, 90m or 2d"),
                )
            })?;
        }
        Ok(())
    }
}

impl KafkaTarget {
    /// Checks that there are bootstrap servers, that the protocol and mechanism are known,
    /// and that no property carries a secret, switches a guarantee off or loads code.
    pub fn validate(&self) -> Result<()> {
        if self.bootstrap_servers.iter().all(|s| s.trim().is_empty()) {
            return Err(field_error(
                "kafka.bootstrapServers",
                "is empty; list at least one host:port",
            ));
        }
        self.security_protocol
            .parse::<SecurityProtocol>()
            .map_err(|e| field_invalid("kafka.securityProtocol", e))?;
        if let Some(m) = &self.sasl_mechanism {
            m.parse::<SaslMechanism>()
                .map_err(|e| field_invalid("kafka.saslMechanism", e))?;
        }
        if let Some(k) = self.properties.keys().find(|k| k.trim().is_empty()) {
            return Err(field_error(
                "kafka.properties",
                format!("has an empty key ('{k}')"),
            ));
        }
        for key in self.properties.keys() {
            if let Some(why) = crate::kafka::properties::refusal(key) {
                return Err(field_error(&format!("kafka.properties[{key}]"), why));
            }
        }
        if self.tls_insecure_skip_verify
            && !self
                .security_protocol
                .parse::<SecurityProtocol>()
                .is_ok_and(SecurityProtocol::uses_tls)
        {
            return Err(field_error(
                "kafka.tlsInsecureSkipVerify",
                "is only used with securityProtocol SSL or SASL_SSL",
            ));
        }
        Ok(())
    }
}

/// An [`Error::InvalidInput`] about one task field, carrying the message of the check that
/// refused it (without its `invalid input: ` prefix).
fn field_invalid(field: &str, e: Error) -> Error {
    match e {
        Error::InvalidInput(msg) => Error::invalid(format!("task field '{field}': {msg}")),
        other => other,
    }
}

impl StorageTarget {
    /// Checks that a location is given, or that the ConfigMap's name and namespace are valid
    /// Kubernetes names.
    pub fn validate(&self) -> Result<()> {
        match self {
            StorageTarget::Location { url, .. } => {
                if url.trim().is_empty() {
                    return Err(field_error("storage.url", "is empty"));
                }
            }
            StorageTarget::ConfigMap { namespace, name } => {
                if !is_dns_subdomain(name) {
                    return Err(field_error(
                        "storage.name",
                        format!("'{name}' is not a valid ConfigMap name (lower-case letters, digits, '-' and '.', at most 253 characters, starting and ending with a letter or digit)"),
                    ));
                }
                if !is_dns_label(namespace) {
                    return Err(field_error(
                        "storage.namespace",
                        format!("'{namespace}' is not a valid namespace name (lower-case letters, digits and '-', at most 63 characters, starting and ending with a letter or digit)"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

impl RollbackOperation {
    /// The operation as written in the task and the CR: `snapshot`, `rollback`, `verify`,
    /// `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            RollbackOperation::Snapshot => "snapshot",
            RollbackOperation::Rollback => "rollback",
            RollbackOperation::Verify => "verify",
            RollbackOperation::Delete => "delete",
        }
    }
}

/// [`TaskResult::phase`] of a task that succeeded.
pub const PHASE_COMPLETED: &str = "Completed";
/// [`TaskResult::phase`] of a task that failed.
pub const PHASE_FAILED: &str = "Failed";

impl TaskResult {
    /// The result as compact JSON of at most [`MAX_RESULT_BYTES`] bytes, always valid JSON.
    ///
    /// The message is made one line first. When the whole result does not fit, it is shortened
    /// in this order until it does: verification differences are dropped from the end
    /// (`totalDifferences` keeps the real count, so `differences.len() < totalDifferences`
    /// marks the truncation), then the message is cut (ending in `…`); as a last resort only
    /// the phase, operation, a fixed message and the error remain. A snapshot id longer than
    /// any valid one is cut to [`MAX_ID_LEN`] characters.
    pub fn to_bounded_json(&self) -> Vec<u8> {
        let mut r = self.clone();
        r.message = one_line(&r.message);
        if let Some(id) = &r.snapshot_id {
            // Longer ids are invalid anyway (and the message says so).
            let id: Vec<char> = id.chars().collect();
            r.snapshot_id = Some(cut(&id, MAX_ID_LEN));
        }
        let full = encode(&r);
        if full.len() <= MAX_RESULT_BYTES {
            return full;
        }
        if let Some(v) = r.verification.as_mut() {
            let all = std::mem::take(&mut v.differences);
            // The largest prefix of the differences that fits, by binary search on its length.
            let (mut lo, mut hi) = (0, all.len());
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                if let Some(v) = r.verification.as_mut() {
                    v.differences = all[..mid].to_vec();
                }
                if encode(&r).len() <= MAX_RESULT_BYTES {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            if let Some(v) = r.verification.as_mut() {
                v.differences = all[..lo].to_vec();
            }
            let out = encode(&r);
            if out.len() <= MAX_RESULT_BYTES {
                return out;
            }
        }
        if let Some(reset) = r.reset.as_mut() {
            // First the plans of the last groups go (their counts stay), then whole groups.
            let plans: Vec<Vec<ResultPartitionPlan>> = reset
                .group_results
                .iter_mut()
                .map(|g| std::mem::take(&mut g.plan))
                .collect();
            let keep_plans = |r: &mut TaskResult, k: usize| {
                if let Some(reset) = r.reset.as_mut() {
                    for (i, g) in reset.group_results.iter_mut().enumerate() {
                        g.plan = if i < k { plans[i].clone() } else { Vec::new() };
                    }
                }
            };
            let (mut lo, mut hi) = (0, plans.len());
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                keep_plans(&mut r, mid);
                if encode(&r).len() <= MAX_RESULT_BYTES {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            keep_plans(&mut r, lo);
            let out = encode(&r);
            if out.len() <= MAX_RESULT_BYTES {
                return out;
            }
        }
        if let Some(reset) = r.reset.as_mut() {
            let all = std::mem::take(&mut reset.group_results);
            let (mut lo, mut hi) = (0, all.len());
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                if let Some(reset) = r.reset.as_mut() {
                    reset.group_results = all[..mid].to_vec();
                }
                if encode(&r).len() <= MAX_RESULT_BYTES {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            if let Some(reset) = r.reset.as_mut() {
                reset.group_results = all[..lo].to_vec();
            }
            let out = encode(&r);
            if out.len() <= MAX_RESULT_BYTES {
                return out;
            }
        }
        let message: Vec<char> = r.message.chars().collect();
        let (mut lo, mut hi) = (0, message.len());
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            r.message = cut(&message, mid);
            if encode(&r).len() <= MAX_RESULT_BYTES {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        r.message = cut(&message, lo);
        let out = encode(&r);
        if out.len() <= MAX_RESULT_BYTES {
            return out;
        }
        encode(&TaskResult {
            phase: r.phase,
            operation: r.operation,
            message: "the result did not fit in the termination message; see the pod log".into(),
            error: r.error,
            ..TaskResult::default()
        })
    }
}

/// Compact JSON; these types always serialize (string keys only).
fn encode(r: &TaskResult) -> Vec<u8> {
    serde_json::to_vec(r).unwrap_or_else(|_| {
        br#"{"phase":"Failed","message":"the result could not be encoded"}"#.to_vec()
    })
}

/// `text` with line breaks and other control characters replaced by spaces.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// The first `n` characters, with `…` in place of the last kept one when anything was cut.
fn cut(chars: &[char], n: usize) -> String {
    if n >= chars.len() {
        return chars.iter().collect();
    }
    let mut s: String = chars[..n.saturating_sub(1)].iter().collect();
    if n > 0 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNAPSHOT_TASK: &str = r#"
apiVersion: tidemark.dev/task-v1
kind: offsetRollback
source: payments/pre-migration
operation: snapshot
kafka:
  bootstrapServers: ["kafka-0:9092", "kafka-1:9092"]
  securityProtocol: SASL_SSL
  saslMechanism: SCRAM-SHA-512
  sslCaLocation: /etc/tidemark/kafka-tls/ca.crt
  properties:
    client.id: tidemark
storage:
  type: configMap
  namespace: payments
  name: offset-snapshots
consumerGroups: [order-processor, payment-handler]
snapshotId: pre-migration-20241201
description: Before the migration
"#;

    fn parse(text: &str) -> Result<Task> {
        Task::parse(text.as_bytes(), "task.yaml")
    }

    #[test]
    fn parses_and_validates_a_yaml_task() {
        let task = parse(SNAPSHOT_TASK).expect("parses");
        task.validate().expect("valid");
        assert_eq!(task.source.as_deref(), Some("payments/pre-migration"));
        let TaskWork::OffsetRollback(t) = &task.work else {
            panic!("an offset-rollback task: {task:?}");
        };
        assert_eq!(t.operation, RollbackOperation::Snapshot);
        assert_eq!(t.consumer_groups.len(), 2);
        assert!(t.verify_after_rollback, "defaults to true");
        assert_eq!(
            t.storage,
            StorageTarget::ConfigMap {
                namespace: "payments".into(),
                name: "offset-snapshots".into()
            }
        );
        let kafka = t.kafka.as_ref().expect("kafka");
        assert_eq!(kafka.properties["client.id"], "tidemark");
        assert_eq!(task.operation(), "snapshot");
    }

    #[test]
    fn every_refused_property_fails_task_validation_naming_it() {
        for p in crate::kafka::properties::REFUSED_PROPERTIES {
            let key = if p.contains {
                format!("x.{}", p.key)
            } else {
                p.key.to_string()
            };
            let text = SNAPSHOT_TASK.replace("client.id: tidemark", &format!("{key}: \"v\""));
            let err = parse(&text).and_then(|t| t.validate()).expect_err(&key);
            assert_eq!(err.exit_code(), 2, "{key}");
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("task field 'kafka.properties[{key}]'")),
                "{msg}"
            );
            assert!(msg.contains(p.instead), "{msg}");
        }
    }

    #[test]
    fn tls_verification_is_skipped_only_by_its_own_field_and_only_with_tls() {
        let insecure = SNAPSHOT_TASK.replace(
            "  sslCaLocation: /etc/tidemark/kafka-tls/ca.crt\n",
            "  tlsInsecureSkipVerify: true\n",
        );
        let task = parse(&insecure).expect("parses");
        task.validate().expect("valid with SASL_SSL");
        let TaskWork::OffsetRollback(t) = &task.work else {
            panic!("an offset-rollback task: {task:?}");
        };
        let kafka = t.kafka.as_ref().expect("kafka");
        assert!(kafka.tls_insecure_skip_verify);
        let config = crate::run::kafka_config_with(kafka, Some(("u".into(), "p".into())))
            .expect("config")
            .admin_config();
        assert_eq!(
            config.get("enable.ssl.certificate.verification"),
            Some("false")
        );
        assert_eq!(
            config.get("ssl.endpoint.identification.algorithm"),
            Some("none")
        );

        let plain = insecure.replace(
            "securityProtocol: SASL_SSL",
            "securityProtocol: SASL_PLAINTEXT",
        );
        let err = parse(&plain)
            .and_then(|t| t.validate())
            .expect_err("no TLS");
        assert!(
            err.to_string().contains("kafka.tlsInsecureSkipVerify"),
            "{err}"
        );
    }

    #[test]
    fn storage_location_fields_are_camel_case() {
        let target = StorageTarget::Location {
            url: "s3://b/p".into(),
            s3_region: Some("eu-west-1".into()),
            s3_endpoint: None,
            s3_path_style: true,
            allow_http: false,
        };
        let json = serde_json::to_value(&target).expect("encode");
        assert_eq!(
            json,
            serde_json::json!({"type": "location", "url": "s3://b/p", "s3Region": "eu-west-1", "s3PathStyle": true, "allowHttp": false})
        );
        let snake = r#"{"type":"location","url":"s3://b/p","s3_region":"x"}"#;
        assert!(
            serde_json::from_str::<StorageTarget>(snake).is_err(),
            "one spelling only"
        );
    }

    #[test]
    fn json_round_trip_keeps_the_shape() {
        let task = parse(SNAPSHOT_TASK).expect("parses");
        let json = serde_json::to_string(&task).expect("encode");
        assert!(json.contains(r#""kind":"offsetRollback""#), "{json}");
        assert!(json.contains(r#""type":"configMap""#), "{json}");
        let back = Task::parse(json.as_bytes(), "task.json").expect("json parses");
        assert_eq!(back, task);
        // What the operator renders with serde_yaml_ng parses back to the same task.
        let yaml = serde_yaml_ng::to_string(&task).expect("yaml");
        assert_eq!(
            Task::parse(yaml.as_bytes(), "task.yaml").expect("yaml parses"),
            task
        );
    }

    #[test]
    fn unknown_fields_are_refused_at_every_level() {
        for (from, to) in [
            ("source:", "colour: blue\nsource:"),
            (
                "operation: snapshot",
                "operation: snapshot\nverify: {strict: true}",
            ),
            (
                "  securityProtocol:",
                "  password: hunter2\n  securityProtocol:",
            ),
            (
                "  name: offset-snapshots",
                "  name: offset-snapshots\n  key: x",
            ),
        ] {
            let text = SNAPSHOT_TASK.replacen(from, to, 1);
            let err = parse(&text).expect_err(to);
            assert_eq!(err.exit_code(), 2, "{to}: {err}");
            assert!(err.to_string().contains("unknown field"), "{to}: {err}");
            assert!(err.to_string().contains("task.yaml"), "{err}");
        }
    }

    #[test]
    fn malformed_documents_are_invalid_input() {
        for text in [
            "",
            "operation: [",
            "just a string",
            "{\"apiVersion\": 1}",
            &SNAPSHOT_TASK.replace("kind: offsetRollback", "kind: backup"),
            &SNAPSHOT_TASK.replace("operation: snapshot", "operation: explode"),
            &SNAPSHOT_TASK.replace("type: configMap", "type: floppy"),
        ] {
            let err = parse(text).expect_err(text);
            assert_eq!(err.label(), "invalid_input", "{text}: {err}");
        }
    }

    fn invalid(text: &str) -> String {
        let task = parse(text).expect("parses");
        let err = task.validate().expect_err("must be invalid");
        assert_eq!(err.exit_code(), 2, "{err}");
        err.to_string()
    }

    #[test]
    fn validation_names_the_field() {
        let with = |from: &str, to: &str| SNAPSHOT_TASK.replacen(from, to, 1);
        let cases = [
            (
                with("task-v1", "task-v2"),
                "task field 'apiVersion' is 'tidemark.dev/task-v2'",
            ),
            (
                with("operation: snapshot", "operation: rollback")
                    .replace("snapshotId: pre-migration-20241201", ""),
                "task field 'snapshotId' is required for operation rollback",
            ),
            (
                with("snapshotId: pre-migration-20241201", "snapshotId: ../etc"),
                "task field 'snapshotId': snapshot id '../etc' is invalid",
            ),
            (
                with("operation: snapshot", "operation: verify").replace(
                    "kafka:\n  bootstrapServers: [\"kafka-0:9092\", \"kafka-1:9092\"]\n  securityProtocol: SASL_SSL\n  saslMechanism: SCRAM-SHA-512\n  sslCaLocation: /etc/tidemark/kafka-tls/ca.crt\n  properties:\n    client.id: tidemark\n",
                    "",
                ),
                "task field 'kafka' is required for operation verify",
            ),
            (
                with("consumerGroups: [order-processor, payment-handler]", ""),
                "task field 'consumerGroups' is required for operation snapshot",
            ),
            (
                with("SASL_SSL", "TLS"),
                "task field 'kafka.securityProtocol': security protocol 'TLS'",
            ),
            (
                with("SCRAM-SHA-512", "GSSAPI"),
                "task field 'kafka.saslMechanism'",
            ),
            (
                with("[\"kafka-0:9092\", \"kafka-1:9092\"]", "[]"),
                "task field 'kafka.bootstrapServers' is empty",
            ),
            (
                with("name: offset-snapshots", "name: Offset_Snapshots"),
                "task field 'storage.name'",
            ),
            (
                with("namespace: payments", "namespace: a.b"),
                "task field 'storage.namespace'",
            ),
        ];
        for (text, want) in cases {
            let msg = invalid(&text);
            assert!(msg.contains(want), "want '{want}' in: {msg}");
        }
    }

    #[test]
    fn delete_needs_neither_kafka_nor_groups() {
        let text = r#"{"apiVersion": "tidemark.dev/task-v1", "kind": "offsetRollback",
            "operation": "delete", "snapshotId": "s1",
            "storage": {"type": "location", "url": "/data"}}"#;
        let task = parse(text).expect("parses as JSON");
        task.validate().expect("valid");
    }

    fn diff(i: usize) -> ResultDifference {
        ResultDifference {
            group: format!("group-{}", i % 7),
            topic: "orders-with-a-rather-long-topic-name".into(),
            partition: i as i32,
            expected: Some(1000 + i as i64),
            actual: (i % 3 != 0).then_some(i as i64),
        }
    }

    #[test]
    fn small_results_are_written_whole() {
        let r = TaskResult {
            phase: PHASE_COMPLETED.into(),
            operation: Some("verify".into()),
            snapshot_id: Some("s1".into()),
            message: "3 partitions differ\nfrom snapshot s1".into(),
            verification: Some(ResultVerification {
                matched: false,
                total_differences: 3,
                differences: (0..3).map(diff).collect(),
            }),
            ..TaskResult::default()
        };
        let out = r.to_bounded_json();
        let back: TaskResult = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(back.message, "3 partitions differ from snapshot s1");
        assert_eq!(back.verification, r.verification);
    }

    #[test]
    fn thousands_of_differences_are_truncated_to_fit() {
        let r = TaskResult {
            phase: PHASE_FAILED.into(),
            operation: Some("verify".into()),
            snapshot_id: Some("s1".into()),
            message: "5000 partitions differ from snapshot s1".into(),
            snapshot_data: Some(ResultSnapshotData {
                groups: 7,
                total_partitions: 5000,
                timestamp: "2024-12-01T12:00:00Z".into(),
            }),
            verification: Some(ResultVerification {
                matched: false,
                total_differences: 5000,
                differences: (0..5000).map(diff).collect(),
            }),
            error: Some(ResultError {
                kind: "verification_failed".into(),
                exit_code: 11,
            }),
            ..TaskResult::default()
        };
        let out = r.to_bounded_json();
        assert!(out.len() <= MAX_RESULT_BYTES, "{} bytes", out.len());
        let back: TaskResult = serde_json::from_slice(&out).expect("valid JSON");
        let v = back.verification.expect("verification kept");
        assert_eq!(v.total_differences, 5000);
        assert!(!v.differences.is_empty());
        assert!(v.differences.len() < 5000);
        assert_eq!(
            v.differences[..],
            r.verification.expect("v").differences[..v.differences.len()]
        );
        // As many as fit: one more would not.
        assert!(out.len() > MAX_RESULT_BYTES - 200, "{} bytes", out.len());
        assert_eq!(back.error, r.error);
        assert_eq!(back.snapshot_data, r.snapshot_data);
    }

    #[test]
    fn huge_messages_and_ids_are_cut() {
        let r = TaskResult {
            phase: PHASE_FAILED.into(),
            operation: Some("rollback".into()),
            snapshot_id: Some("x".repeat(10_000)),
            message: "é\"\\\n".repeat(5_000),
            error: Some(ResultError {
                kind: "kafka_error".into(),
                exit_code: 9,
            }),
            ..TaskResult::default()
        };
        let out = r.to_bounded_json();
        assert!(out.len() <= MAX_RESULT_BYTES, "{} bytes", out.len());
        let back: TaskResult = serde_json::from_slice(&out).expect("valid JSON");
        assert!(back.message.ends_with('…'), "{}", back.message);
        assert!(!back.message.contains('\n'));
        assert_eq!(
            back.snapshot_id.map(|id| id.chars().count()),
            Some(MAX_ID_LEN)
        );
        assert_eq!(back.error, r.error);
        assert_eq!(back.phase, PHASE_FAILED);

        let long_message = TaskResult {
            message: "m".repeat(10_000),
            snapshot_id: Some("s1".into()),
            ..r
        };
        let out = long_message.to_bounded_json();
        assert!(out.len() <= MAX_RESULT_BYTES);
        let back: TaskResult = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(back.snapshot_id.as_deref(), Some("s1"));
        assert!(back.message.len() > 3000, "the message keeps what fits");
    }

    #[test]
    fn reset_tasks_are_checked_before_anything_runs() {
        let base = "apiVersion: tidemark.dev/task-v1\nkind: offsetReset\n\
                    kafka: {bootstrapServers: [\"k:9092\"], securityProtocol: PLAINTEXT}\n\
                    storage: {type: location, url: /s}\n";
        let ok = format!(
            "{base}consumerGroups: [g]\ntopics: [\"orders:0,1\"]\nstrategy: {{type: toEarliest}}\n"
        );
        let task = parse(&ok).expect("parses");
        task.validate().expect("valid");
        assert_eq!(task.operation(), "reset");
        let TaskWork::OffsetReset(t) = &task.work else {
            panic!("a reset task: {task:?}");
        };
        assert_eq!((t.max_concurrent, t.max_retries), (50, 3));
        assert!(t.snapshot_before_reset && !t.dry_run);
        let cases = [
            ("strategy: {type: toEarliest}\n", "consumerGroups"),
            ("consumerGroups: [g]\nstrategy: {type: toDatetime, datetime: \"2024-13-01T00:00:00.000\"}\n", "strategy.datetime"),
            ("consumerGroups: [g]\nstrategy: {type: byDuration, duration: \"1h\"}\n", "strategy.duration"),
            ("consumerGroups: [g]\nstrategy: {type: fromFile, csv: \"g,orders,x,1\"}\n", "strategy.csv"),
            ("consumerGroups: [g]\ntopics: [\"orders:\"]\nstrategy: {type: toLatest}\n", "topics[0]"),
            ("consumerGroups: [g]\nstrategy: {type: toOffset, offset: -1}\n", "strategy.offset"),
            ("consumerGroups: [g]\nmaxConcurrent: 0\nstrategy: {type: toLatest}\n", "maxConcurrent"),
            ("groupsRegex: \"(\"\nstrategy: {type: toLatest}\n", "groupsRegex"),
        ];
        for (extra, field) in cases {
            let err = parse(&format!("{base}{extra}"))
                .and_then(|t| t.validate())
                .expect_err(extra);
            assert!(err.to_string().contains(field), "{extra}: {err}");
            assert_eq!(err.exit_code(), 2, "{extra}");
        }
        let no_storage = "apiVersion: tidemark.dev/task-v1\nkind: offsetReset\n\
                          kafka: {bootstrapServers: [\"k:9092\"], securityProtocol: PLAINTEXT}\n\
                          consumerGroups: [g]\nstrategy: {type: toLatest}\n";
        let err = parse(no_storage)
            .and_then(|t| t.validate())
            .expect_err("no storage");
        assert!(err.to_string().contains("'storage'"), "{err}");
        parse(&format!("{no_storage}dryRun: true\n"))
            .and_then(|t| t.validate())
            .expect("a dry run needs no storage");
    }

    #[test]
    fn reset_plans_are_cut_before_groups_to_fit_the_termination_message() {
        let plan: Vec<ResultPartitionPlan> = (0..MAX_RESULT_PLAN_PARTITIONS as i32)
            .map(|p| ResultPartitionPlan {
                topic: "payments-ledger-events".into(),
                partition: p,
                current: Some(1_000_000 + i64::from(p)),
                target: 0,
                action: "rewind".into(),
            })
            .collect();
        let groups: Vec<ResultGroup> = (0..40)
            .map(|i| ResultGroup {
                group: format!("payments-consumer-{i}"),
                status: "planned".into(),
                partitions: 12,
                error: None,
                plan: plan.clone(),
            })
            .collect();
        let result = TaskResult {
            phase: PHASE_COMPLETED.into(),
            message: "Dry run".into(),
            reset: Some(ResultReset {
                dry_run: true,
                groups_total: 40,
                total_group_results: 40,
                group_results: groups,
                ..ResultReset::default()
            }),
            ..TaskResult::default()
        };
        let bytes = result.to_bounded_json();
        assert!(bytes.len() <= MAX_RESULT_BYTES, "{}", bytes.len());
        let back: TaskResult = serde_json::from_slice(&bytes).expect("valid JSON");
        let reset = back.reset.expect("reset");
        // The first group keeps its whole plan; later ones lose theirs before any group goes.
        assert_eq!(reset.group_results[0].plan, plan);
        assert!(reset.group_results.iter().any(|g| g.plan.is_empty()));
        assert!(
            reset.group_results.len() > 20,
            "{}",
            reset.group_results.len()
        );
        assert_eq!(reset.total_group_results, 40);
    }
}

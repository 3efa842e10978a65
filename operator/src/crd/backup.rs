//! `KafkaBackup` (kb): copy topics' records, and the consumer offsets on them, into object
//! storage or a PVC — once per spec, or on a schedule — with optional retention.

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{EncryptionSpec, JobOptions, KafkaClusterSpec, StorageSpec};
use super::rollback::SNAPSHOT_ID_PATTERN;
use super::status::{Phase, RunStatus};

/// The mode and compression are the task contract's own types: the spec's value is the task's.
pub use tidemark_task::{BackupMode, Compression};

/// A topic name, glob (`payments-*`) or `~regex`: no whitespace.
pub const TOPIC_PATTERN: &str = r"^\S+$";

/// A five-field cron expression (minute, hour, day of month, month, day of week; month and day
/// names in their fields, `?` for "any" in the day fields), or one of Kubernetes' macros. The operator parses it for
/// real before the CronJob is built.
pub const SCHEDULE_PATTERN: &str = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[0-9*,/-]+\s+[0-9*,/-]+\s+[0-9*?,/-]+\s+[0-9A-Za-z*,/-]+\s+[0-9A-Za-z*?,/-]+)$";

/// A retention age: a whole number of seconds, minutes, hours, days or weeks, e.g. `90m`,
/// `12h`, `30d`, `2w` (what the worker's cleanup reads).
pub const MAX_AGE_PATTERN: &str = r"^[1-9][0-9]{0,5}[smhdw]$";

/// Default of `spec.parallelism`: one worker pod.
pub const DEFAULT_PARALLELISM: i32 = 1;
/// Most shards (pods of the Indexed Job) one backup may use.
pub const MAX_PARALLELISM: i32 = 100;

/// Back up Kafka topics.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "tidemark.dev",
    version = "v1alpha1",
    kind = "KafkaBackup",
    plural = "kafkabackups",
    shortname = "kb",
    category = "tidemark",
    namespaced,
    status = "KafkaBackupStatus",
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Last Backup","type":"string","jsonPath":".status.lastBackupId"}"#,
    printcolumn = r#"{"name":"Records","type":"integer","jsonPath":".status.records"}"#,
    printcolumn = r#"{"name":"Drill","type":"string","jsonPath":".status.conditions[?(@.type==\"DrillVerified\")].status"}"#,
    printcolumn = r#"{"name":"Key","type":"string","priority":1,"jsonPath":".status.encryptionKeyId"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    doc = "KafkaBackup (kb): copy the records of Kafka topics (and the committed offsets of the consumer groups on them) into a PVC, S3, GCS or Azure Blob Storage. Without a schedule, each change of the spec, or of the `tidemark.dev/run` annotation, runs one backup in a worker Job (an Indexed Job of `parallelism` shards); with a schedule, a CronJob runs one backup per tick. `retention` prunes the older backups of the resource's chain after each successful one.",
    cel
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(self.storage.storageType in ['configMap', 'configmap'])").message("storage.storageType configMap is not supported for backups (a ConfigMap holds at most 1 MiB): use pvc, s3, azure or gcs").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("!has(self.compressionLevel) || !has(self.compression) || self.compression == 'zstd'").message("compressionLevel is only used with compression zstd; remove it or set compression: zstd").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("!has(self.schedule) || !has(self.mode) || self.mode != 'continuous'").message("a continuous backup runs until it is stopped and cannot have a schedule; remove schedule or use mode oneShot or incremental").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("!has(self.suspend) || !self.suspend || has(self.schedule) || (has(self.mode) && self.mode == 'continuous')").message("suspend pauses a schedule or finishes a continuous backup, and is only used with schedule or mode continuous").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("!has(self.backupId) || !has(self.schedule)").message("backupId names one backup, and a schedule makes one per run: remove backupId (each scheduled backup is named after its Job) or schedule").reason(Reason::FieldValueForbidden))]
pub struct KafkaBackupSpec {
    /// The cluster whose topics are backed up.
    pub kafka_cluster: KafkaClusterSpec,

    /// The topics to back up.
    pub topics: TopicSelection,

    /// Where the backups go: pvc, s3, azure or gcs (a ConfigMap is too small for records).
    pub storage: StorageSpec,

    /// Encrypt the backups (every segment, the offsets, the manifests' sensitive parts) with a
    /// data key per backup, wrapped by a key from a Secret (`secretRef`) or AWS KMS
    /// (`kmsKeyId`). The backup, cleanup and drill Jobs all mount the Secret. Default: stored
    /// in the clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionSpec>,

    /// Segment compression: zstd (default), lz4 or none.
    #[serde(default)]
    pub compression: Compression,

    /// zstd level, 1 (fastest) to 22 (smallest); the worker's default is 1. Only with zstd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 22))]
    pub compression_level: Option<i32>,

    /// oneShot (default: up to the high watermarks read at the start), continuous (until the
    /// Job is stopped; no schedule) or incremental (from where the newest complete backup of
    /// this resource's chain ended, up to the high watermarks).
    #[serde(default)]
    pub mode: BackupMode,

    /// Run on this schedule (a CronJob): five cron fields — minute, hour, day of month, month,
    /// day of week — e.g. `0 2 * * *`, or @hourly, @daily, @weekly, @monthly, @yearly. Times are
    /// in the time zone of the cluster's kube-controller-manager (usually UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), regex(pattern = SCHEDULE_PATTERN))]
    pub schedule: Option<String>,

    /// The backup's id (default: the name of its Job, `<name>-kb-<run>-<hash>`), like the CLI's
    /// `--backup-id`; not with `schedule`, whose runs each need their own. Every shard and every
    /// run of the resource names this one backup: once it is complete, a later run (a spec
    /// change or a bumped `tidemark.dev/run`) reports it as already complete and reads nothing;
    /// give a new id for a new backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SNAPSHOT_ID_PATTERN))]
    #[x_kube(validation = Rule::new("!self.contains('..')").message("backupId must not contain '..'"))]
    pub backup_id: Option<String>,

    /// The chain the backups belong to (default `<namespace>-<name>`), like the CLI's
    /// `--chain`: incremental backups continue the newest complete backup of the chain, and
    /// retention prunes only its backups. Name it to continue a chain across re-created or
    /// renamed resources; two resources writing one chain in one storage interleave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SNAPSHOT_ID_PATTERN))]
    #[x_kube(validation = Rule::new("!self.contains('..')").message("chain must not contain '..'"))]
    pub chain: Option<String>,

    /// Pause the schedule (no new backup starts; a running one finishes), or, with mode
    /// continuous, finish the running backup (its manifest written) and start none until
    /// unset. Only with schedule or mode continuous.
    #[serde(default)]
    pub suspend: bool,

    /// Shards: the partitions are dealt to this many worker pods (an Indexed Job), which
    /// together write one backup (1 to 100, default 1).
    #[serde(default = "default_parallelism")]
    #[schemars(range(min = 1, max = 100))]
    pub parallelism: i32,

    /// Prune the older backups of this resource's chain after each successful backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionSpec>,

    /// Partitions each worker backs up at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_concurrent_partitions: Option<i32>,

    /// Throttle each worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,

    /// When a segment file is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<SegmentSpec>,

    /// Also capture the committed offsets of the consumer groups on the backed-up topics
    /// (default true), so that a restore can translate them.
    #[serde(default = "default_true")]
    pub capture_offsets: bool,

    /// Options of the worker Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobOptions>,

    /// Compute resources of each worker pod (default: the operator's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Restore drills: on a schedule or after every N successful backups, a drill Job restores
    /// the newest complete backup of the chain into scratch topics, reads every record back,
    /// compares it with the backup, checks the translated consumer offsets and deletes the
    /// scratch topics and groups again. At most one drill runs at a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillSpec>,
}

fn default_parallelism() -> i32 {
    DEFAULT_PARALLELISM
}

fn default_true() -> bool {
    true
}

/// Which topics a backup copies.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicSelection {
    /// Topic names, globs (`payments-*`) or regular expressions prefixed with `~`
    /// (`~orders-(eu|us)`). Internal topics are only backed up when named.
    #[schemars(length(min = 1, max = 1000), inner(length(min = 1, max = 1024), regex(pattern = TOPIC_PATTERN)))]
    pub include: Vec<String>,

    /// Topics to leave out, in the same forms (e.g. `__*`, `*-changelog`, `~.*-test$`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000), inner(length(min = 1, max = 1024), regex(pattern = TOPIC_PATTERN)))]
    pub exclude: Vec<String>,
}

/// Which backups of the chain to keep. The newest complete backup is always kept.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.keepLast) || has(self.maxAge)").message("retention needs keepLast, maxAge or both").reason(Reason::FieldValueRequired))]
pub struct RetentionSpec {
    /// Keep (at least) the newest N complete backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub keep_last: Option<i32>,

    /// Delete complete backups older than this: `s`, `m`, `h`, `d` or `w`, e.g. `12h`, `30d`,
    /// `2w`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = MAX_AGE_PATTERN))]
    pub max_age: Option<String>,

    /// Delete incomplete backups of this chain (interrupted and never resumed) once their last
    /// write is older than this (default `24h`), in the same form as `maxAge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = MAX_AGE_PATTERN))]
    pub incomplete_grace_period: Option<String>,
}

/// Throttles of each worker.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSpec {
    /// Records per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub records_per_sec: Option<i64>,

    /// Record bytes (before compression) per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub bytes_per_sec: Option<i64>,
}

/// Segment bounds: a segment is closed at whichever comes first.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SegmentSpec {
    /// Uncompressed bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_bytes: Option<i64>,

    /// Milliseconds of record time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_interval_ms: Option<i64>,
}

/// Observed state of a KafkaBackup.
///
/// Without a schedule, `phase` and the conditions describe the current run like every kind's.
/// With a schedule, `phase` is Scheduled (waiting for the next tick), Running (a Job of the
/// CronJob runs) or Suspended; `lastRun` is the outcome of the newest finished backup, and a
/// failed one makes `Ready` False and `Stalled` True until a later backup succeeds. The
/// `last*` fields, the counts and `shards` always describe the newest finished backup.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaBackupStatus {
    /// The run: phase, generation, run id, newest Job, times and conditions.
    #[serde(flatten)]
    pub common: RunStatus,
    /// The CronJob of a scheduled backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron_job_name: Option<String>,
    /// When the CronJob last started a backup (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<String>,
    /// Id of the newest finished backup (the name of its Job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_id: Option<String>,
    /// When the newest successful backup finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<String>,
    /// The key that wraps the newest finished backup's data key, as the worker reports it
    /// (the Secret entry's key id, or `aws-kms:<key>`); absent for a backup in the clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key_id: Option<String>,
    /// Outcome of the newest finished backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRun>,
    /// Topics in the newest finished backup (with several shards: the most any one shard
    /// covered, as a topic's partitions may be spread over shards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<i64>,
    /// Partitions in the newest finished backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i64>,
    /// Records in the newest finished backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<i64>,
    /// Record bytes (keys, values, headers) before compression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<i64>,
    /// Bytes written to storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_bytes: Option<i64>,
    /// Segment files written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<i64>,
    /// Consumer groups whose offsets were captured (with several shards: the most any one
    /// shard captured, as a group may commit on partitions of several shards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_captured: Option<i64>,
    /// Partitions the newest finished (incremental) backup started at a new log start,
    /// because the topic was re-created or truncated since the parent backup; the message of
    /// `lastRun` and the backup's manifest name them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discontinuities: Option<i64>,
    /// The shards (pods) of the newest finished backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<ShardCounts>,
    /// The retention cleanup Job created after the newest successful backup, and what it
    /// deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup: Option<CleanupStatus>,
    /// Offsets without a record in the newest finished backup's ranges (compaction,
    /// retention, transaction markers, unexplained).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap_offsets: Option<i64>,
    /// Of those, offsets nothing explains in topics that are not compacted: records the broker
    /// lost or skipped, or aborted transactions. Non-zero raises a Warning Event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unexplained_gap_offsets: Option<i64>,
    /// A continuous backup: when a worker last wrote its checkpoint before it was stopped
    /// (an eviction, a drain) and replaced (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checkpoint_time: Option<String>,
    /// A continuous backup: offsets it was behind the high watermarks at that checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// The drills of `spec.drill`: the newest drill Job and when the next one is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillStatus>,
    /// What the newest finished drill found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drill: Option<LastDrill>,
}

/// How the newest finished backup ended.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastRun {
    /// Its Job.
    pub job_name: String,
    /// Completed or Failed.
    pub phase: Phase,
    /// Why (the reason of the `Ready` condition it gave, e.g. `BackupCompleted`).
    pub reason: String,
    /// The worker's message.
    pub message: String,
    /// When it ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
}

/// Shards of one backup: the backup is complete only when every shard is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardCounts {
    /// Shards of the backup (`parallelism` when it ran).
    pub total: i64,
    /// Shards that reported their part complete.
    pub completed: i64,
    /// Shards that failed or left no result.
    pub failed: i64,
}

/// A retention cleanup Job.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CleanupStatus {
    /// The backup after which it was created (one cleanup Job per successful backup).
    pub backup_id: String,
    /// The cleanup Job.
    pub job_name: String,
    /// Completed or Failed once the Job ended (absent while it runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The backups it deleted (the first 20; `deletedCount` counts them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<String>,
    /// How many backups it deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_count: Option<i64>,
    /// Complete backups that failed verification: not counted as kept, not deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<String>,
    /// The worker's message (or why no result was read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A prefix of scratch topic and group names: letters, digits, `.`, `_`, `-` and `{id}` (the
/// drill id).
pub const DRILL_PREFIX_PATTERN: &str = r"^([A-Za-z0-9._-]|\{id\})+$";

/// Restore drills of a KafkaBackup's backups (`spec.drill`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.schedule) != has(self.afterEveryBackups)").message("drill needs exactly one of schedule (a cron schedule) and afterEveryBackups (a count of successful backups)").reason(Reason::FieldValueInvalid))]
pub struct DrillSpec {
    /// Run a drill on this schedule (five cron fields or a macro, as `spec.schedule`; in UTC).
    /// Not with `afterEveryBackups`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), regex(pattern = SCHEDULE_PATTERN))]
    pub schedule: Option<String>,

    /// Run a drill after every N successful backups (1 to 10000). Not with `schedule`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub after_every_backups: Option<i32>,

    /// The cluster the scratch topics are written to (default: the backup's `kafkaCluster`),
    /// with its Secrets wired in the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_cluster: Option<KafkaClusterSpec>,

    /// Prefix of the scratch topics and consumer groups; `{id}` is replaced by the drill id
    /// (default `drill-{id}-`). A drill refuses a prefix under which topics or groups exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 100), regex(pattern = DRILL_PREFIX_PATTERN))]
    pub topic_prefix: Option<String>,

    /// Translate the backup's captured consumer offsets into scratch groups and check them
    /// (default true).
    #[serde(default = "default_true")]
    pub check_offsets: bool,

    /// The drill fails when the newest backed-up record is older than this at drill time
    /// (seconds): `DrillVerified` turns False.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_rpo_seconds: Option<i64>,

    /// The drill fails when its restore takes longer than this (seconds): `DrillVerified`
    /// turns False.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_rto_seconds: Option<i64>,

    /// Compute resources of the drill pod (default: the operator's, not the backup's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Throttle the drill's restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,

    /// Partitions the drill restores at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_concurrent_partitions: Option<i32>,

    /// Options of the drill Job (default: the operator's, not the backup's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobOptions>,

    /// Start no new drill (a running one finishes); a drill that came due meanwhile runs once
    /// when unset.
    #[serde(default)]
    pub suspend: bool,
}

/// The drills of a KafkaBackup (`status.drill`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrillStatus {
    /// The newest drill Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// Its drill id (the prefix of its scratch topics has it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill_id: Option<String>,
    /// Running, Completed or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// When the newest drill Job was created (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// Drills started so far (numbers the drill Jobs).
    #[serde(default)]
    pub started: i64,
    /// When the operator first saw `spec.drill` (RFC 3339): a schedule counts from then until
    /// the first drill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// When the next scheduled drill is due (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<String>,
    /// Successful backups since the newest drill started (for `afterEveryBackups`).
    #[serde(default)]
    pub backups_since_drill: i64,
    /// The newest successful backup counted in `backupsSinceDrill` (its Job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted_backup: Option<String>,
    /// Why the running drill's pod cannot start: a Secret or entry it references is missing
    /// (the kubelet's message). The drill Job is kept; its pod starts once the Secret exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

/// What the newest finished drill found (`status.lastDrill`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastDrill {
    /// When it ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Its Job.
    pub job_name: String,
    /// The drill id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill_id: Option<String>,
    /// The backup drilled (the newest of its chain, restored with the links before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// Records restored and read back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<i64>,
    /// Record bytes restored and read back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<i64>,
    /// Partitions restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i64>,
    /// Every restored record matched the backup and every translated offset checked.
    pub verified: bool,
    /// Restore wall time, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_seconds: Option<f64>,
    /// Age of the newest backed-up record when the drill started, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_seconds: Option<f64>,
    /// Record bytes restored per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<i64>,
    /// What failed, one line each (the first 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// Whether the scratch topics and groups were all deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleaned_up: Option<bool>,
    /// The reason of the `DrillVerified` condition it gave (e.g. `DrillVerified`,
    /// `DrillFailed`, `RpoExceeded`).
    pub reason: String,
    /// The worker's message (or why no result was read).
    pub message: String,
}

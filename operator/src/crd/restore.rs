//! `KafkaRestore` (kr): write a backup's records back into a Kafka cluster — all of it, a
//! point-in-time window, some topics or partitions, under new names — exactly once, then
//! optionally put consumer groups where they were (three-phase restore), or only validate it
//! (`dryRun`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::approval::{Approval, PlanStatus};
use super::backup::{RateLimitSpec, MAX_AGE_PATTERN, TOPIC_PATTERN};
use super::common::{
    EncryptionSpec, JobOptions, KafkaClusterSpec, StorageSpec, DNS_SUBDOMAIN_PATTERN,
};
use super::rollback::SNAPSHOT_ID_PATTERN;
use super::status::RunStatus;

/// The restore's choices are the task contract's own types: the spec's value is the task's.
pub use tidemark_task::{Acks, ExistingData, GroupStrategy, HeaderStyle};

/// An RFC 3339 date-time with a zone, e.g. `2024-01-15T10:00:00Z`,
/// `2024-01-15T10:00:00.250+01:00`.
pub const RFC3339_PATTERN: &str = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";

/// A Kafka topic name: letters, digits, `.`, `_`, `-`, at most 249 characters.
pub const TOPIC_NAME_PATTERN: &str = r"^[A-Za-z0-9._-]{1,249}$";

/// A key in a storage: `/`-separated segments of letters, digits, `.`, `_` and `-` (a CEL
/// rule refuses `.` and `..` segments).
pub const REPORT_KEY_PATTERN: &str = r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$";

/// A partition number as a map key: `0`, `1`, … (no sign, no leading zero).
pub const PARTITION_KEY_PATTERN: &str = r"^(0|[1-9][0-9]{0,8})$";

/// Most partitions each worker restores at once (`spec.maxConcurrentPartitions`).
pub const MAX_CONCURRENT_PARTITIONS: i32 = 10_000;
/// Largest `spec.produceBatchSize`.
pub const MAX_PRODUCE_BATCH: i32 = 100_000;
/// Largest `spec.checkpointIntervalSecs` (a day).
pub const MAX_CHECKPOINT_INTERVAL_SECS: i64 = 86_400;

/// Restore a backup into a Kafka cluster.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "tidemark.dev",
    version = "v1alpha1",
    kind = "KafkaRestore",
    plural = "kafkarestores",
    shortname = "kr",
    category = "tidemark",
    namespaced,
    status = "KafkaRestoreStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Backup","type":"string","jsonPath":".status.backupId"}"#,
    printcolumn = r#"{"name":"Progress","type":"string","jsonPath":".status.progress.percent"}"#,
    printcolumn = r#"{"name":"Groups","type":"integer","jsonPath":".status.groupsTranslated"}"#,
    printcolumn = r#"{"name":"Plan","type":"string","jsonPath":".status.plan.hash"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    doc = "KafkaRestore (kr): write the records of a backup (a KafkaBackup's, or one named by id in a storage) back into a Kafka cluster exactly once — all of it, a point-in-time window, some topics or partitions, under new topic or partition numbers — then optionally translate and commit consumer-group offsets (three-phase restore, after a safety snapshot), or only validate it (dryRun). A restore runs once, in a worker Job: after it has completed, spec changes are recorded but not run (bump the `tidemark.dev/run` annotation to run it again); after a failed run or a dry run, a spec change runs it again. The restore id is `spec.restoreId` or the resource's (`kr-<uid>`), so a later run resumes an unfinished restore and reports a finished one as already complete.",
    cel
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.consumerGroups) || !has(self.consumerGroups.strategy) || self.consumerGroups.strategy != 'cluster-scan' || (has(self.includeOriginalOffsetHeader) && self.includeOriginalOffsetHeader)").message("consumerGroups.strategy cluster-scan reads the original-offset headers back from the target: set includeOriginalOffsetHeader: true").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("!has(self.originalHeaderStyle) || (has(self.includeOriginalOffsetHeader) && self.includeOriginalOffsetHeader)").message("originalHeaderStyle is only used with includeOriginalOffsetHeader: true; remove it or set includeOriginalOffsetHeader").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("!has(self.approval) || self.approval != 'Manual' || !has(self.dryRun) || !self.dryRun").message("approval Manual is not used with dryRun: a dry run changes nothing; remove one of them").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("!has(self.approval) || self.approval != 'Manual' || !has(self.shards) || self.shards <= 1").message("approval Manual plans the restore in one worker pod: use shards: 1").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("!has(self.shards) || self.shards <= 1 || !has(self.offsetReport)").message("shards above 1 store no single offsetReport (each shard has its own offset mapping); use shards: 1 with offsetReport").reason(Reason::FieldValueForbidden))]
pub struct KafkaRestoreSpec {
    /// The cluster the records are written to (and whose consumer groups are translated).
    pub kafka_cluster: KafkaClusterSpec,

    /// The backup to restore: a KafkaBackup of this namespace (`name`, optionally with a
    /// `backupId` of its), or a `backupId` in a `storage`.
    pub backup_ref: BackupRef,

    /// The keys of an encrypted backup: a Secret (`secretRef`) holding the key that wrapped
    /// its data key, or the AWS KMS key (`kmsKeyId`); the restore's checkpoint and offset
    /// mapping are encrypted with them too. Default: with `backupRef.name`, the KafkaBackup's
    /// `spec.encryption`; else none (a backup stored in the clear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionSpec>,

    /// Which backups of an incremental chain are restored: `full` (default) restores the
    /// backup with every backup it continues, oldest first (every record exactly once, one
    /// offset mapping); `single` restores that backup's own records alone.
    #[serde(default)]
    pub chain: RestoreChain,

    /// Backed-up topics to restore (default: all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<RestoreTopics>,

    /// Point-in-time window: only records whose timestamp lies within it (both ends inclusive,
    /// either may be left open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pitr: Option<PitrSpec>,

    /// Only these partitions of every selected topic (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10000), inner(range(min = 0)))]
    pub source_partitions: Vec<i32>,

    /// Source topic → target topic, e.g. `orders: orders-recovered` (unmapped topics keep
    /// their name).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 1000, "additionalProperties" = {"type": "string", "minLength": 1, "maxLength": 249, "pattern": TOPIC_NAME_PATTERN}))]
    #[x_kube(validation = Rule::new("self.all(k, k.size() <= 249 && k.matches('^[A-Za-z0-9._-]+$'))").message("topicMapping keys must be topic names: letters, digits, '.', '_' and '-', at most 249 characters"))]
    pub topic_mapping: BTreeMap<String, String>,

    /// Source partition → target partition, every selected topic, e.g. `"1": 2` (keys are
    /// partition numbers written as strings; unmapped partitions keep their number).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 10000, "additionalProperties" = {"type": "integer", "format": "int32", "minimum": 0}))]
    #[x_kube(validation = Rule::new("self.all(k, k.matches('^(0|[1-9][0-9]{0,8})$'))").message("partitionMapping keys must be partition numbers (0 or more, no sign or leading zero), e.g. \"0\": 3"))]
    pub partition_mapping: BTreeMap<String, i32>,

    /// Create missing target topics from the backed-up metadata (partitions, replication
    /// factor, configs).
    #[serde(default)]
    pub create_topics: bool,

    /// What to do with a target partition that already holds records: refuse (default; the
    /// restore fails naming the partitions), append (after them) or purge (delete them first).
    #[serde(default)]
    pub existing_data: ExistingData,

    /// Producer acknowledgements: `all` (default, idempotent producer) or `"1"` (leader only;
    /// quote it).
    #[serde(default)]
    pub acks: Acks,

    /// Consumer-group offsets after the data: leave them (skip, the default), translate and
    /// commit them (`resetOffsets`), or only report them (manual).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_groups: Option<ConsumerGroupsSpec>,

    /// Add each record's source offset and timestamp as headers (needed by strategy
    /// cluster-scan, and by applications that seek by original offset).
    #[serde(default)]
    pub include_original_offset_header: bool,

    /// Names of those headers: original (`x-original-offset`, `x-original-timestamp`; the
    /// default) or kafka-backup (`x-kafka-backup-offset`, `-timestamp`, `-partition`). Only
    /// with `includeOriginalOffsetHeader`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_header_style: Option<HeaderStyle>,

    /// Validate only (the worker's validate-restore): the status reports what would be restored
    /// and nothing is written.
    #[serde(default)]
    pub dry_run: bool,

    /// Partitions restored at once (the worker's default is 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_concurrent_partitions: Option<i32>,

    /// Records handed to the producer per batch (the worker's default is 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub produce_batch_size: Option<i32>,

    /// Throttle the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,

    /// Names the restore (default `kr-<uid>`, the resource's): its checkpoint and offset
    /// mapping live under `backups/<backupId>/restores/<restoreId>/` in the backup storage, like
    /// the CLI's `--restore-id`. A fixed id outlives the resource: a re-created KafkaRestore (or
    /// another one) with the same id resumes that restore, or reports it as already complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SNAPSHOT_ID_PATTERN))]
    #[x_kube(validation = Rule::new("!self.contains('..')").message("restoreId must not contain '..'"))]
    pub restore_id: Option<String>,

    /// A key in the backup storage (e.g. `reports/orders-dr.json`) where a copy of the
    /// restore's offset mapping report (JSON, source offset → target offset per partition) is
    /// stored once the data is in, like the restore configuration's `offset_report`. Created
    /// once: a re-run keeps the same report; a key holding something else fails the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = REPORT_KEY_PATTERN))]
    #[x_kube(validation = Rule::new("!self.contains('..') && self != '.' && !self.startsWith('./') && !self.endsWith('/.') && !self.contains('/./')").message("offsetReport must not contain '..' or '.' segments"))]
    pub offset_report: Option<String>,

    /// How often progress is checkpointed into the backup storage, in seconds (the worker's
    /// default is 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub checkpoint_interval_secs: Option<i64>,

    /// Shards: the target partitions are dealt to this many worker pods (an Indexed Job), as a
    /// KafkaBackup deals its partitions; each restores its share as a restore of its own,
    /// `<restoreId>-s<index>-of-<shards>` (1 to 100, default 1). Consumer groups are translated
    /// once, by shard 0 after every shard's data is in; `offsetReport` needs one shard.
    #[serde(default = "one_shard", skip_serializing_if = "is_one_shard")]
    #[schemars(range(min = 1, max = 100))]
    pub shards: i32,

    /// `Manual`: plan first and run only once a person approves the plan (the annotation
    /// `tidemark.dev/approve: <status.plan.hash>`); `Automatic` (the default): run at once.
    /// Not used with `dryRun`, nor with `shards` above 1.
    #[serde(default, skip_serializing_if = "Approval::is_automatic")]
    pub approval: Approval,

    /// How long a plan waits for its approval before it is made again, like `24h` (the
    /// default), `90m`, `2d` or `1w`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = MAX_AGE_PATTERN))]
    pub approval_timeout: Option<String>,

    /// Options of the worker Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobOptions>,

    /// Compute resources of the worker (default: the operator's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

fn default_true() -> bool {
    true
}

/// Which backup a restore reads.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.name) || has(self.storage)").message("backupRef needs name (a KafkaBackup in this namespace) or backupId and storage").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("!has(self.name) || !has(self.storage)").message("backupRef.storage is only used without backupRef.name: a KafkaBackup brings its own storage").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("!has(self.storage) || has(self.backupId)").message("backupRef.backupId is required with backupRef.storage").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("!has(self.storage) || !(self.storage.storageType in ['configMap', 'configmap'])").message("backupRef.storage.storageType configMap cannot hold backups: use pvc, s3, azure or gcs").reason(Reason::FieldValueForbidden))]
pub struct BackupRef {
    /// A KafkaBackup in this namespace: its storage, and its newest completed backup
    /// (`status.lastBackupId`) unless `backupId` names another of its backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: Option<String>,

    /// The backup id (e.g. `orders-snapshot-g1-r0-6f1c2a9e`, a KafkaBackup's Job name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SNAPSHOT_ID_PATTERN))]
    #[x_kube(validation = Rule::new("!self.contains('..')").message("backupRef.backupId must not contain '..'"))]
    pub backup_id: Option<String>,

    /// Where the backup is, when it is not named through a KafkaBackup: pvc, s3, azure or gcs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
}

/// Which backed-up topics a restore writes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreTopics {
    /// Topic names, globs (`payments-*`) or regular expressions prefixed with `~`
    /// (`~orders-(eu|us)`); empty means every backed-up topic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000), inner(length(min = 1, max = 1024), regex(pattern = TOPIC_PATTERN)))]
    pub include: Vec<String>,

    /// Topics to leave out, in the same forms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000), inner(length(min = 1, max = 1024), regex(pattern = TOPIC_PATTERN)))]
    pub exclude: Vec<String>,
}

/// A point-in-time window. Each end is an RFC 3339 date-time (`startTime`, `endTime`) or epoch
/// milliseconds (`startTimestampMs`, `endTimestampMs`), not both.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.startTime) || has(self.startTimestampMs) || has(self.endTime) || has(self.endTimestampMs)").message("pitr needs a start, an end or both (startTime/startTimestampMs, endTime/endTimestampMs)").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("!has(self.startTime) || !has(self.startTimestampMs)").message("pitr.startTime and pitr.startTimestampMs are two forms of the same bound: give one").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("!has(self.endTime) || !has(self.endTimestampMs)").message("pitr.endTime and pitr.endTimestampMs are two forms of the same bound: give one").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("!has(self.startTimestampMs) || !has(self.endTimestampMs) || self.startTimestampMs <= self.endTimestampMs").message("pitr.startTimestampMs is after pitr.endTimestampMs: the window is empty").reason(Reason::FieldValueInvalid))]
#[x_kube(validation = Rule::new("!has(self.startTime) || !has(self.endTime) || self.startTime <= self.endTime").message("pitr.startTime is after pitr.endTime: the window is empty").reason(Reason::FieldValueInvalid))]
pub struct PitrSpec {
    /// First instant restored (inclusive), RFC 3339, e.g. `2024-01-15T10:00:00Z`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"), regex(pattern = RFC3339_PATTERN))]
    pub start_time: Option<String>,

    /// Last instant restored (inclusive), RFC 3339, e.g. `2024-01-15T15:00:00Z`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"), regex(pattern = RFC3339_PATTERN))]
    pub end_time: Option<String>,

    /// First instant restored (inclusive), epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub start_timestamp_ms: Option<i64>,

    /// Last instant restored (inclusive), epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub end_timestamp_ms: Option<i64>,
}

/// Which links of an incremental backup chain a restore reads.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum RestoreChain {
    /// The backup and every backup before it in its chain.
    #[default]
    Full,
    /// The backup alone.
    Single,
}

/// Consumer-group offsets after the data (phase three).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.resetOffsets) && self.resetOffsets) || (has(self.strategy) && self.strategy != 'skip')").message("consumerGroups.resetOffsets needs a strategy other than skip: header-based (exact), timestamp-based, cluster-scan or manual").reason(Reason::FieldValueInvalid))]
#[x_kube(validation = Rule::new("((!has(self.groups) || size(self.groups) == 0) && !has(self.offsetsSnapshotId)) || (has(self.resetOffsets) && self.resetOffsets) || (has(self.strategy) && self.strategy == 'manual')").message("consumerGroups.groups and consumerGroups.offsetsSnapshotId are only used with resetOffsets: true or strategy manual").reason(Reason::FieldValueForbidden))]
pub struct ConsumerGroupsSpec {
    /// skip (default: offsets are left alone), header-based (exact, through the restore's
    /// offset mapping), timestamp-based (through record timestamps), cluster-scan (the mapping
    /// rebuilt from the original-offset headers in the target) or manual (report only).
    #[serde(default)]
    pub strategy: GroupStrategy,

    /// Translate the groups' committed offsets to the restored records and commit them, once
    /// every record is in. The groups must have no active members.
    #[serde(default)]
    pub reset_offsets: bool,

    /// Groups to translate (default: every group in the offsets source).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10000), inner(length(min = 1, max = 255)))]
    pub groups: Vec<String>,

    /// Translate the offsets of this offset snapshot (in the backup's storage) instead of
    /// those captured with the backup, e.g. one taken before the incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SNAPSHOT_ID_PATTERN))]
    #[x_kube(validation = Rule::new("!self.contains('..')").message("consumerGroups.offsetsSnapshotId must not contain '..'"))]
    pub offsets_snapshot_id: Option<String>,

    /// Snapshot the target offsets about to change before committing (default true): a
    /// KafkaOffsetRollback with operation rollback and `status.snapshotId` undoes phase three.
    #[serde(default = "default_true")]
    pub snapshot_before_reset: bool,
}

impl Default for ConsumerGroupsSpec {
    fn default() -> Self {
        ConsumerGroupsSpec {
            strategy: GroupStrategy::default(),
            reset_offsets: false,
            groups: Vec::new(),
            offsets_snapshot_id: None,
            snapshot_before_reset: true,
        }
    }
}

fn one_shard() -> i32 {
    1
}

fn is_one_shard(n: &i32) -> bool {
    *n == 1
}

impl KafkaRestoreSpec {
    /// Whether the run commits translated offsets after a safety snapshot.
    pub fn takes_snapshot(&self) -> bool {
        !self.dry_run
            && self
                .consumer_groups
                .as_ref()
                .is_some_and(|g| g.reset_offsets && g.snapshot_before_reset)
    }
}

/// Observed state of a KafkaRestore.
///
/// `backupId` (and `kafkaBackup`, when it came from one) say which backup the restore reads;
/// a backup resolved from a KafkaBackup's `status.lastBackupId` is kept for later runs of the
/// resource (after a failure, a dry run or a bumped `tidemark.dev/run`) while `backupRef` names
/// the same KafkaBackup, so a re-run resumes (or reports as complete) the same restore rather
/// than restoring a newer backup. After a completed restore, `observedGeneration` follows spec
/// changes while `run` stays the run that restored. The counts are the worker's, read when the
/// Job ends.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaRestoreStatus {
    /// The run: phase, generation, run id, Job, times and conditions.
    #[serde(flatten)]
    pub common: RunStatus,
    /// The backup restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// The KafkaBackup the backup was resolved through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_backup: Option<String>,
    /// The restore's id (`spec.restoreId`, else `kr-<uid>`): its checkpoint and offset mapping live under
    /// `backups/<backupId>/restores/<restoreId>/` in the backup storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_id: Option<String>,
    /// Whether the run only validated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// The key the run was given to wrap new data keys (its checkpoint and offset mapping), from
    /// `spec.encryption` or the KafkaBackup's: `aws-kms:<kmsKeyId>` or `secretRef.keyId`
    /// (absent with the single key of a Secret, or without encryption). Any key of the Secret
    /// or the KMS key unwraps the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key_id: Option<String>,
    /// Records and bytes restored of those selected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<RestoreProgress>,
    /// Target topics written (a dry run: that would be).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<i64>,
    /// Partitions written (a dry run: that would be).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i64>,
    /// Key of the restore's offset mapping in the backup storage (source offset → target
    /// offset; `tidemark show-offset-mapping --restore-id` reads it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_mapping: Option<String>,
    /// Consumer groups whose offsets were translated (and committed, unless manual).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_translated: Option<i64>,
    /// Consumer groups that could not be translated or committed (e.g. active members).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_failed: Option<i64>,
    /// The safety snapshot of the target offsets taken before phase three committed: a
    /// KafkaOffsetRollback with operation rollback, this snapshotId and the backup's storage
    /// undoes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// A dry run's one-line validation summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<String>,
    /// With `spec.approval: Manual`: the plan of the current run, waiting for (or given) its
    /// approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanStatus>,
}

/// How far a restore got.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreProgress {
    /// Records in the target (including earlier attempts of the same restore).
    pub records_restored: i64,
    /// Records selected.
    pub records_total: i64,
    /// Record bytes in the target.
    pub bytes_restored: i64,
    /// Record bytes selected.
    pub bytes_total: i64,
    /// `recordsRestored` of `recordsTotal`, e.g. `42%` (not set for a dry run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<String>,
}

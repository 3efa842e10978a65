//! `KafkaOffsetReset` (kor): move consumer-group offsets with Kafka's `--reset-offsets`
//! strategies (or to a stored plan), after snapshotting the offsets about to change so that a
//! KafkaOffsetRollback can undo it.

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::approval::Approval;
use super::backup::MAX_AGE_PATTERN;
use super::common::{EncryptionSpec, JobOptions, KafkaClusterSpec, StorageSpec};
use super::rollback::SNAPSHOT_ID_PATTERN;
use super::status::RunStatus;

/// A topic, or a topic and some of its partitions: `orders` or `orders:0,1,2`.
pub const TOPIC_SPEC_PATTERN: &str = r"^[A-Za-z0-9._-]{1,249}(:[0-9]{1,6}(,[0-9]{1,6})*)?$";

/// Kafka's `--to-datetime` format: ISO-8601 with milliseconds and an optional zone (UTC when
/// absent), e.g. `2024-12-01T10:00:00.000`, `2024-12-01T10:00:00.000Z`,
/// `2024-12-01T10:00:00.000+01:00`.
pub const DATETIME_PATTERN: &str = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{3}(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?$";

/// Kafka's `--by-duration` format, an ISO-8601 duration `PnDTnHnMnS`, e.g. `PT30M`, `P1DT12H`
/// or `PT0.5S` (only seconds may have a fraction). At least one amount must be given (a CEL rule
/// refuses `P` and `PT`).
pub const DURATION_PATTERN: &str =
    r"^P([0-9]{1,9}D)?(T([0-9]{1,9}H)?([0-9]{1,9}M)?([0-9]{1,9}(\.[0-9]{1,9})?S)?)?$";

/// Largest inline reset CSV: the task ConfigMap that carries it holds at most 1 MiB.
pub const MAX_OFFSETS_CSV: usize = 512 * 1024;

/// Default of `spec.maxConcurrent`: groups reset at once.
pub const DEFAULT_MAX_CONCURRENT: i32 = 50;
/// Default of `spec.maxRetries`: retries per partition after the first attempt.
pub const DEFAULT_MAX_RETRIES: i32 = 3;

/// Reset consumer-group offsets, after a safety snapshot.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "tidemark.dev",
    version = "v1alpha1",
    kind = "KafkaOffsetReset",
    plural = "kafkaoffsetresets",
    shortname = "kor",
    category = "tidemark",
    namespaced,
    status = "KafkaOffsetResetStatus",
    printcolumn = r#"{"name":"Strategy","type":"string","jsonPath":".spec.resetStrategy"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Groups","type":"integer","jsonPath":".status.groupsReset"}"#,
    printcolumn = r#"{"name":"Failed","type":"integer","jsonPath":".status.groupsFailed"}"#,
    printcolumn = r#"{"name":"Snapshot","type":"string","jsonPath":".status.snapshotId"}"#,
    printcolumn = r#"{"name":"Plan","type":"string","jsonPath":".status.plan.hash"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    doc = "KafkaOffsetReset (kor): move the committed offsets of consumer groups (to the earliest or latest offset, a fixed offset, a shift, a point in time, a CSV plan or a stored snapshot), first snapshotting the offsets about to change so that a KafkaOffsetRollback can undo it. Each change of the spec, or of the `tidemark.dev/run` annotation, runs the reset once in a worker Job.",
    cel
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.consumerGroups) && size(self.consumerGroups) > 0) || has(self.consumerGroupPattern)").message("consumerGroups or consumerGroupPattern is required: select the groups to reset").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("self.resetStrategy != 'toOffset' || has(self.offset)").message("offset is required when resetStrategy is toOffset").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("self.resetStrategy != 'shiftBy' || has(self.shiftBy)").message("shiftBy is required when resetStrategy is shiftBy").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("self.resetStrategy != 'toDatetime' || has(self.datetime)").message("datetime is required when resetStrategy is toDatetime").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("self.resetStrategy != 'byDuration' || has(self.duration)").message("duration is required when resetStrategy is byDuration").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("self.resetStrategy != 'fromFile' || has(self.offsetsCsv)").message("offsetsCsv is required when resetStrategy is fromFile").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("self.resetStrategy != 'fromSnapshot' || has(self.fromSnapshotId)").message("fromSnapshotId is required when resetStrategy is fromSnapshot").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("!has(self.offset) || self.resetStrategy == 'toOffset'").message("offset is only used with resetStrategy toOffset; remove it or change resetStrategy").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("!has(self.shiftBy) || self.resetStrategy == 'shiftBy'").message("shiftBy is only used with resetStrategy shiftBy; remove it or change resetStrategy").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("!has(self.datetime) || self.resetStrategy == 'toDatetime'").message("datetime is only used with resetStrategy toDatetime; remove it or change resetStrategy").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("!has(self.duration) || self.resetStrategy == 'byDuration'").message("duration is only used with resetStrategy byDuration; remove it or change resetStrategy").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("!has(self.offsetsCsv) || self.resetStrategy == 'fromFile'").message("offsetsCsv is only used with resetStrategy fromFile; remove it or change resetStrategy").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("!has(self.fromSnapshotId) || self.resetStrategy == 'fromSnapshot'").message("fromSnapshotId is only used with resetStrategy fromSnapshot; remove it or change resetStrategy").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("self.resetStrategy != 'fromBackup' || has(self.backupId)").message("backupId is required when resetStrategy is fromBackup").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("!has(self.backupId) || self.resetStrategy == 'fromBackup'").message("backupId is only used with resetStrategy fromBackup; remove it or change resetStrategy").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("self.resetStrategy != 'fromBackup' || (has(self.storage) && !(self.storage.storageType in ['configMap', 'configmap']))").message("resetStrategy fromBackup reads the backup and its restore's offset mapping from storage: set storage to the backup's pvc, s3, azure or gcs location").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("!has(self.snapshotId) || !has(self.snapshotBeforeReset) || self.snapshotBeforeReset").message("snapshotId names the safety snapshot: remove it or set snapshotBeforeReset: true").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("has(self.storage) || self.resetStrategy != 'fromSnapshot'").message("storage is required when resetStrategy is fromSnapshot: it is where the snapshot is read from").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("has(self.storage) || (has(self.dryRun) && self.dryRun) || (has(self.snapshotBeforeReset) && !self.snapshotBeforeReset)").message("storage is required for the safety snapshot taken before the reset (snapshotBeforeReset defaults to true): set storage, or snapshotBeforeReset: false to reset without a way back").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("!has(self.approval) || self.approval != 'Manual' || has(self.storage)").message("approval Manual needs storage: the plan is stored there before it is approved").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("!has(self.encryption) || !has(self.storage) || !(self.storage.storageType in ['configMap', 'configmap'])").message("encryption is not used with storageType configMap (a ConfigMap holds snapshots in the clear): use pvc, s3, azure or gcs, or remove encryption").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("!has(self.approval) || self.approval != 'Manual' || !has(self.dryRun) || !self.dryRun").message("approval Manual is not used with dryRun: a dry run changes nothing; remove one of them").reason(Reason::FieldValueForbidden))]
pub struct KafkaOffsetResetSpec {
    /// The cluster whose consumer groups are reset.
    pub kafka_cluster: KafkaClusterSpec,

    /// Groups to reset, by name (with `consumerGroupPattern`, the union of both). The groups
    /// must have no active members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10000), inner(length(min = 1, max = 255)))]
    pub consumer_groups: Vec<String>,

    /// Groups to reset, by a regular expression that must match the whole group id (e.g.
    /// `payments-.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub consumer_group_pattern: Option<String>,

    /// Scope: `topic` (all its partitions) or `topic:0,1,2`. Empty means every topic the group
    /// has committed offsets on (Kafka's `--all-topics`). With fromFile and fromSnapshot, whose
    /// documents name their partitions, a non-empty list narrows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10000), inner(regex(pattern = TOPIC_SPEC_PATTERN)))]
    pub topics: Vec<String>,

    /// Where the offsets go: toEarliest, toLatest, toCurrent, toOffset (`offset`), shiftBy
    /// (`shiftBy`), toDatetime (`datetime`), byDuration (`duration`), fromFile (`offsetsCsv`),
    /// fromSnapshot (`fromSnapshotId`) or fromBackup (`backupId`).
    pub reset_strategy: ResetStrategy,

    /// toOffset: the offset, clamped to each partition's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub offset: Option<i64>,

    /// shiftBy: added to each committed offset (negative moves back), clamped to the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift_by: Option<i64>,

    /// toDatetime: the first offset at or after this time, ISO-8601 with milliseconds and an
    /// optional zone (UTC if none), e.g. `2024-12-01T10:00:00.000`,
    /// `2024-12-01T10:00:00.000Z` or `2024-12-01T10:00:00.000+01:00`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DATETIME_PATTERN))]
    pub datetime: Option<String>,

    /// byDuration: the first offset at or after now minus this ISO-8601 duration
    /// (`PnDTnHnMnS`, e.g. `PT30M`, `P1DT12H` or `PT0.5S`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("self != 'P' && !self.endsWith('T')").message("duration must give at least one amount after P or T, e.g. PT30M or P1DT12H"))]
    pub duration: Option<String>,

    /// fromFile: Kafka's reset CSV inline, one `group,topic,partition,offset` line per
    /// partition (or `topic,partition,offset` when exactly one group is selected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_OFFSETS_CSV))]
    pub offsets_csv: Option<String>,

    /// fromSnapshot: the id of an offset snapshot in `storage` whose offsets are applied (for
    /// example a KafkaOffsetRollback snapshot, or a reset's own `status.snapshotId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SNAPSHOT_ID_PATTERN))]
    #[x_kube(validation = Rule::new("!self.contains('..')").message("fromSnapshotId must not contain '..'"))]
    pub from_snapshot_id: Option<String>,

    /// fromBackup: a backup id in `storage` (its location) whose captured consumer offsets are
    /// translated through the offset mapping of its newest restore and committed, like the
    /// CLI's `--backup-id`; restore the backup first (a KafkaRestore, or `tidemark restore`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SNAPSHOT_ID_PATTERN))]
    #[x_kube(validation = Rule::new("!self.contains('..')").message("backupId must not contain '..'"))]
    pub backup_id: Option<String>,

    /// The id of the safety snapshot (default `<name>-reset-<run>-<hash>`, one per run), e.g.
    /// to name it in a KafkaOffsetRollback applied with this resource. It is taken once: a
    /// retried Job of the same run reuses it, and a later run (spec change or bumped
    /// `tidemark.dev/run`) that finds it fails without changing anything: give it a new id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SNAPSHOT_ID_PATTERN))]
    #[x_kube(validation = Rule::new("!self.contains('..')").message("snapshotId must not contain '..'"))]
    pub snapshot_id: Option<String>,

    /// Plan only: the status reports the groups and partitions the reset would change, and
    /// nothing is changed (no snapshot is taken either).
    #[serde(default)]
    pub dry_run: bool,

    /// Groups reset at once (1 to 1000).
    #[serde(default = "default_max_concurrent")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_concurrent: i32,

    /// Retries per partition, with exponential backoff, after the first attempt (0 to 100).
    #[serde(default = "default_max_retries")]
    #[schemars(range(min = 0, max = 100))]
    pub max_retries: i32,

    /// Snapshot the offsets about to change before resetting them (into `storage`), so that a
    /// KafkaOffsetRollback with operation rollback and `status.snapshotId` undoes the reset.
    #[serde(default = "default_true")]
    pub snapshot_before_reset: bool,

    /// Where the safety snapshot is stored, and where fromSnapshot reads. Required unless
    /// `dryRun` is true or `snapshotBeforeReset` is false (and the strategy is not
    /// fromSnapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,

    /// Encrypt the safety snapshot, and read an encrypted snapshot (fromSnapshot) or backup
    /// (fromBackup), with a data key wrapped by a key from a Secret (`secretRef`) or AWS KMS
    /// (`kmsKeyId`): the same block as the KafkaBackup's. Only with a pvc, s3, azure or gcs
    /// storage (a ConfigMap holds snapshots in the clear). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionSpec>,

    /// `Manual`: plan first and run only once a person approves the plan (the annotation
    /// `tidemark.dev/approve: <status.plan.hash>`); `Automatic` (the default): run at once.
    /// Manual needs `storage` (the plan is stored there) and is not used with `dryRun`.
    #[serde(default, skip_serializing_if = "Approval::is_automatic")]
    pub approval: Approval,

    /// How long a plan waits for its approval before it is made again, like `24h` (the
    /// default), `90m`, `2d` or `1w`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = MAX_AGE_PATTERN))]
    pub approval_timeout: Option<String>,

    /// Compute resources of the worker (default: the operator's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Options of the worker Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobOptions>,
}

fn default_max_concurrent() -> i32 {
    DEFAULT_MAX_CONCURRENT
}

fn default_max_retries() -> i32 {
    DEFAULT_MAX_RETRIES
}

fn default_true() -> bool {
    true
}

/// Where a KafkaOffsetReset moves offsets to (Kafka's `--reset-offsets` specs, or a plan).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ResetStrategy {
    ToEarliest,
    ToLatest,
    ToCurrent,
    ToOffset,
    ShiftBy,
    ToDatetime,
    ByDuration,
    FromFile,
    FromSnapshot,
    FromBackup,
}

impl ResetStrategy {
    /// The spelling used in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            ResetStrategy::ToEarliest => "toEarliest",
            ResetStrategy::ToLatest => "toLatest",
            ResetStrategy::ToCurrent => "toCurrent",
            ResetStrategy::ToOffset => "toOffset",
            ResetStrategy::ShiftBy => "shiftBy",
            ResetStrategy::ToDatetime => "toDatetime",
            ResetStrategy::ByDuration => "byDuration",
            ResetStrategy::FromFile => "fromFile",
            ResetStrategy::FromSnapshot => "fromSnapshot",
            ResetStrategy::FromBackup => "fromBackup",
        }
    }
}

impl KafkaOffsetResetSpec {
    /// Whether the run stores a safety snapshot before changing anything.
    pub fn takes_snapshot(&self) -> bool {
        self.snapshot_before_reset && !self.dry_run
    }
}

/// Observed state of a KafkaOffsetReset.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaOffsetResetStatus {
    /// The run: phase, generation, run id, Job, times and conditions.
    #[serde(flatten)]
    pub common: RunStatus,
    /// Whether the run only planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// What the reset changes (a dry run: would change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<ResetPlan>,
    /// Groups selected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_total: Option<i64>,
    /// Groups whose offsets were all committed (a dry run: groups that would change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_reset: Option<i64>,
    /// Groups refused (active members) or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_failed: Option<i64>,
    /// Offsets committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsets_reset: Option<i64>,
    /// Committed offsets per second over the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsets_per_second: Option<i64>,
    /// Per-group outcomes, failed groups first (at most 50 listed; `totalGroupResults` counts
    /// all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_results: Vec<GroupResult>,
    /// Number of per-group outcomes before the list was cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_group_results: Option<i64>,
    /// The safety snapshot of the offsets before the reset: a KafkaOffsetRollback with
    /// operation rollback, this snapshotId and the same storage undoes the reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// The key the run was given to wrap new data keys, from `spec.encryption`:
    /// `aws-kms:<kmsKeyId>` or `secretRef.keyId` (absent with the single key of a Secret, or
    /// without encryption).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key_id: Option<String>,
}

/// The groups and partitions a reset changes, and (with `spec.approval: Manual`) the plan
/// waiting for approval.
pub type ResetPlan = super::approval::PlanStatus;

/// One group's outcome.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupResult {
    pub group: String,
    /// `reset`, `planned`, `unchanged` or `failed`.
    pub status: String,
    /// Partitions committed (a dry run: planned).
    pub partitions: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A dry run: the first partitions the plan changes, each with its committed offset now,
    /// its target and the action (at most 10 per group, and only as many groups' plans as fit in
    /// the worker's result; fewer entries than `partitions` marks a cut).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<PartitionPlan>,
}

/// One partition of a planned reset.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartitionPlan {
    pub topic: String,
    pub partition: i32,
    /// The committed offset now (absent: the group has none on this partition yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<i64>,
    /// The offset the reset commits.
    pub target: i64,
    /// `set` (no committed offset yet), `forward` (records are skipped) or `rewind` (records
    /// are consumed again).
    pub action: String,
}

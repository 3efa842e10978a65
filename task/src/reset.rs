//! A KafkaOffsetReset run: move consumer-group offsets, with Kafka's `--reset-offsets` semantics.

use serde::{Deserialize, Serialize};

use crate::field::{field_error, field_invalid, FieldError, TaskError};
use crate::ids::validate_id;
use crate::target::{KafkaTarget, StorageTarget};
use crate::Result;

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
    #[serde(default = "crate::yes")]
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
    /// Plan only: write the full plan to this key of the task's storage and report its hash and
    /// summary ([`crate::ResultPlan`]); nothing is changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_out: Option<String>,
    /// Execute exactly this approved plan; refuse (exit [`crate::exit::PLAN_CHANGED`]) when the
    /// cluster no longer matches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_plan: Option<crate::plan::ApprovedPlan>,
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

impl OffsetResetTask {
    /// Checks the selection (at least one group or a regex, no empty names), the bounds of
    /// `maxConcurrent` (1-1000) and `maxRetries` (0-100), the strategy's parameters, and that
    /// `storage` is given when a snapshot is taken or read. The strategy's datetime, duration
    /// and CSV are parsed again by the reset engine, which names the same fields.
    pub fn validate(&self) -> Result<()> {
        self.kafka.validate()?;
        crate::plan::validate_plan_fields(self.plan_out.as_deref(), self.approved_plan.as_ref())?;
        if self.storage.is_none() {
            if self.plan_out.is_some() {
                return Err(field_error(
                    "planOut",
                    "needs {storage}: the plan is stored there",
                ));
            }
            if self.approved_plan.is_some() {
                return Err(field_error(
                    "approvedPlan",
                    "needs {storage}: the plan is read from there",
                ));
            }
        }
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
            crate::reset_spec::parse_topic_scope(topic)
                .map_err(|e| field_invalid(&format!("topics[{i}]"), e))?;
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
                crate::reset_spec::parse_datetime(datetime)
                    .map_err(|e| field_invalid("strategy.datetime", e))?;
            }
            ResetStrategy::ByDuration { duration } => {
                crate::reset_spec::parse_duration(duration)
                    .map_err(|e| field_invalid("strategy.duration", e))?;
            }
            ResetStrategy::FromFile { csv } => {
                let names = split_names(&self.consumer_groups);
                let single = match (names.as_slice(), &self.groups_regex) {
                    ([one], None) => Some(one.as_str()),
                    _ => None,
                };
                // Named without a source, the parser's message is what follows the field's name
                // (`: <why>` or `line <n>: <why>`).
                crate::reset_csv::parse_reset_csv(csv, "", single).map_err(|e| {
                    TaskError::Field(FieldError {
                        path: "strategy.csv".into(),
                        reason: e.trim_start().to_string(),
                    })
                })?;
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

/// Group names from `--groups` style lists: each entry may hold several names separated by
/// commas; names are trimmed and empty ones dropped.
pub fn split_names(raw: &[String]) -> Vec<String> {
    raw.iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

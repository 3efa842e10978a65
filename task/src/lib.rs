//! The task contract between the Tidemark operator and its worker: the task document the operator
//! renders from a custom resource (`tidemark run --task FILE`), the compact result the worker
//! reports back through the container's termination message, the exit codes, and the rules both
//! sides check (ids, durations, topic patterns, refused Kafka properties).
//!
//! The operator renders a [`Task`] from a custom resource into a ConfigMap mounted into the Job;
//! credentials never appear in it (SASL from `KAFKA_USERNAME`/`KAFKA_PASSWORD` env set from
//! Secrets, TLS as files in a mounted Secret, cloud credentials from the provider's env vars).
//!
//! Nothing here talks to Kafka or to storage: the crate depends on serde, regex, chrono and
//! thiserror only (and schemars behind the `schema` feature), so the operator links it without
//! the worker's Kafka and storage clients. One module per task kind; validation errors name the
//! task document's own field ([`FieldError`]), which the operator maps to its spec fields.

use serde::{Deserialize, Serialize};

pub mod backup;
pub mod cleanup;
pub mod drill;
pub mod durations;
pub mod enums;
pub mod env;
pub mod exit;
pub mod field;
pub mod ids;
pub mod limits;
pub mod plan;
pub mod properties;
pub mod reset;
pub mod reset_csv;
pub mod reset_spec;
pub mod restore;
pub mod result;
pub mod rollback;
pub mod target;
pub mod topics;

pub use backup::*;
pub use cleanup::*;
pub use drill::*;
pub use enums::{SaslMechanism, SecurityProtocol};
pub use field::{FieldError, Result, TaskError};
pub use ids::{validate_report_key, MAX_ID_LEN};
pub use plan::*;
pub use reset::*;
pub use restore::*;
pub use result::*;
pub use rollback::*;
pub use target::*;

use field::field_error;

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
    /// A restore drill of a KafkaBackup's newest backup into scratch topics.
    Drill(DrillTask),
}

impl Task {
    /// Parses a task document, YAML or JSON (a document starting with `{` is read as JSON);
    /// `file` names it in errors. Unknown fields are refused. Does not [`validate`](Self::validate).
    pub fn parse(data: &[u8], file: &str) -> Result<Task> {
        let invalid = |reason: String| {
            TaskError::Invalid(format!(
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
    /// Errors are [`TaskError::Field`] naming the field, e.g. `task field 'snapshotId' is
    /// required for operation rollback`.
    pub fn validate(&self) -> Result<()> {
        if self.api_version != TASK_API_VERSION {
            return Err(field_error(
                "apiVersion",
                format!(
                    "is '{}'; this worker understands '{TASK_API_VERSION}'",
                    self.api_version
                ),
            ));
        }
        match &self.work {
            TaskWork::OffsetRollback(t) => t.validate(),
            TaskWork::OffsetReset(t) => t.validate(),
            TaskWork::Backup(t) => t.validate(),
            TaskWork::BackupCleanup(t) => t.validate(),
            TaskWork::Restore(t) => t.validate(),
            TaskWork::Drill(t) => t.validate(),
        }
    }

    /// The operation's name, for logs and results.
    pub fn operation(&self) -> &'static str {
        match &self.work {
            TaskWork::OffsetRollback(t) if t.plan_out.is_some() => "rollback-plan",
            TaskWork::OffsetRollback(t) => t.operation.as_str(),
            TaskWork::OffsetReset(t) if t.plan_out.is_some() => "reset-plan",
            TaskWork::OffsetReset(t) if t.dry_run => "reset-plan",
            TaskWork::OffsetReset(_) => "reset",
            TaskWork::Backup(_) => "backup",
            TaskWork::BackupCleanup(_) => "backup-cleanup",
            TaskWork::Restore(t) if t.dry_run || t.plan_out.is_some() => "validate-restore",
            TaskWork::Restore(_) => "restore",
            TaskWork::Drill(_) => "drill",
        }
    }
}

/// serde default: `true`.
pub(crate) fn yes() -> bool {
    true
}

/// serde default: `1`.
pub(crate) fn one() -> u32 {
    1
}

#[cfg(test)]
mod tests;

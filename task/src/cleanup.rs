//! Retention for a KafkaBackup's backups: delete those beyond keepLast / older than maxAge.

use serde::{Deserialize, Serialize};

use crate::durations::parse_age;
use crate::field::{field_error, field_invalid};
use crate::ids::validate_id;
use crate::target::StorageTarget;
use crate::Result;

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
            parse_age(age).map_err(|e| field_invalid("maxAge", e))?;
        }
        if let Some(age) = &self.incomplete_grace_period {
            parse_age(age).map_err(|_| {
                field_error(
                    "incompleteGracePeriod",
                    format!("is '{age}', not a duration like 24h, 90m or 2d"),
                )
            })?;
        }
        Ok(())
    }
}

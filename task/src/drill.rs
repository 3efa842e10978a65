//! A restore drill: prove a backup restorable by restoring it into scratch topics, reading every
//! record back and comparing it with the backup, checking the translated consumer offsets, and
//! deleting the scratch topics and groups again (also after a failure).

use serde::{Deserialize, Serialize};

use crate::backup::TopicSelection;
use crate::field::{field_error, field_invalid};
use crate::ids::{validate_id, validate_report_key};
use crate::target::{KafkaTarget, StorageTarget};
use crate::Result;

/// Default of [`DrillTask::topic_prefix`]: `{id}` is replaced by the drill id.
pub const DEFAULT_DRILL_PREFIX: &str = "drill-{id}-";
/// The placeholder in [`DrillTask::topic_prefix`] replaced by the drill id.
pub const DRILL_ID_PLACEHOLDER: &str = "{id}";

/// Restore a backup into scratch topics, verify it, clean up.
///
/// The drill never writes to a topic or consumer group whose name does not start with the
/// expanded prefix, and refuses (before writing anything) a prefix under which a topic or group
/// already exists on the target cluster that the drill did not create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DrillTask {
    /// The cluster the scratch topics are written to (the operator's default: the backup's own).
    pub kafka: KafkaTarget,
    /// Where the backups are (a location).
    pub storage: StorageTarget,
    /// The backup to drill (its whole incremental chain). Default: the newest complete backup
    /// in `storage` (of `chain` when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// With no `backupId`: pick the newest complete backup of this chain (the operator uses the
    /// KafkaBackup's `<namespace>-<name>`, as its backup tasks do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// Names this drill (default: generated from the time). Also its restore id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill_id: Option<String>,
    /// Prefix of the scratch topic and consumer group names; [`DRILL_ID_PLACEHOLDER`] is
    /// replaced by the drill id (default [`DEFAULT_DRILL_PREFIX`]).
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// Backed-up topics to drill; empty `include` means all.
    #[serde(default)]
    pub topics: TopicSelection,
    /// Translate the backup's captured consumer offsets into prefixed scratch groups and check
    /// them (default true).
    #[serde(default = "crate::yes")]
    pub check_offsets: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_partitions: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_records_per_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_bytes_per_sec: Option<u64>,
    /// The drill fails (exit [`crate::exit::VERIFICATION_FAILED`]) when the newest backed-up
    /// record is older than this at drill time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rpo_seconds: Option<u64>,
    /// The drill fails (exit [`crate::exit::VERIFICATION_FAILED`]) when the restore took longer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rto_seconds: Option<u64>,
    /// Drill only the records of this PITR window (epoch milliseconds, inclusive at both ends),
    /// as a restore with the same window would restore them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_window_start: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_window_end: Option<i64>,
    /// A key of `storage` where the full drill report (JSON) is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_key: Option<String>,
}

fn default_prefix() -> String {
    DEFAULT_DRILL_PREFIX.to_string()
}

impl DrillTask {
    /// Checks the ids, the prefix (it must contain [`DRILL_ID_PLACEHOLDER`] or be at least 3
    /// characters, and expand to a valid topic name prefix), the topics and the limits.
    pub fn validate(&self) -> Result<()> {
        self.kafka.validate()?;
        if matches!(self.storage, StorageTarget::ConfigMap { .. }) {
            return Err(field_error(
                "storage",
                "is a ConfigMap; backups live in a PVC, s3, gcs or azure location",
            ));
        }
        self.storage.validate()?;
        for (field, id) in [
            ("backupId", &self.backup_id),
            ("chain", &self.chain),
            ("drillId", &self.drill_id),
        ] {
            if let Some(id) = id {
                validate_id(id).map_err(|e| field_invalid(field, e))?;
            }
        }
        let sample = self.prefix_for("x");
        if sample.len() < 3
            || !sample
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(field_error(
                "topicPrefix",
                format!(
                    "is '{}'; use at least 3 characters of letters, digits, '.', '_' and '-' (with {DRILL_ID_PLACEHOLDER} for the drill id), such as '{DEFAULT_DRILL_PREFIX}'",
                    self.topic_prefix
                ),
            ));
        }
        crate::topics::TopicFilter::new(&self.topics.include, &self.topics.exclude)
            .map_err(|e| field_invalid("topics", e))?;
        if self.max_concurrent_partitions == Some(0) {
            return Err(field_error(
                "maxConcurrentPartitions",
                "is 0; use 1 or more",
            ));
        }
        if let (Some(start), Some(end)) = (self.time_window_start, self.time_window_end) {
            if start > end {
                return Err(field_error(
                    "timeWindowEnd",
                    format!("is {end}, before timeWindowStart {start}"),
                ));
            }
        }
        if let Some(key) = &self.report_key {
            validate_report_key(key).map_err(|e| field_invalid("reportKey", e))?;
        }
        Ok(())
    }

    /// The prefix with the drill id in place of [`DRILL_ID_PLACEHOLDER`].
    pub fn prefix_for(&self, drill_id: &str) -> String {
        self.topic_prefix.replace(DRILL_ID_PLACEHOLDER, drill_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(prefix: &str) -> DrillTask {
        serde_json::from_value(serde_json::json!({
            "kafka": {"bootstrapServers": ["k:9092"], "securityProtocol": "PLAINTEXT"},
            "storage": {"type": "location", "url": "/backups"},
            "topicPrefix": prefix,
        }))
        .expect("a drill task")
    }

    #[test]
    fn the_prefix_takes_the_drill_id_and_must_be_a_usable_topic_prefix() {
        assert_eq!(task("drill-{id}-").prefix_for("d1"), "drill-d1-");
        task("drill-{id}-").validate().expect("the default prefix");
        for bad in ["", "{id}", "a b-", "x/"] {
            let e = task(bad).validate().expect_err(bad).to_string();
            assert!(e.contains("topicPrefix"), "{bad}: {e}");
        }
        let d: DrillTask = serde_json::from_value(serde_json::json!({
            "kafka": {"bootstrapServers": ["k:9092"], "securityProtocol": "PLAINTEXT"},
            "storage": {"type": "location", "url": "/backups"},
        }))
        .expect("defaults");
        assert_eq!(d.topic_prefix, DEFAULT_DRILL_PREFIX);
        assert!(d.check_offsets);
    }
}

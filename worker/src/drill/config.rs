//! `tidemark drill --config FILE`: the restore configuration's layout (`target`, `storage`, an
//! optional `backup_id`) with a `drill:` section of the drill's settings, turned into the same
//! [`DrillTask`] the operator sends.
//!
//! ```yaml
//! mode: drill                      # optional
//! backup_id: backup-2025-01-15     # optional: the newest complete backup (of drill.chain)
//! target:                          # where the scratch topics go
//!   bootstrap_servers: [kafka-1:9092]
//!   security: {security_protocol: SASL_SSL, sasl_mechanism: PLAIN,
//!              sasl_username: drill-user, sasl_password: ${KAFKA_PASSWORD}}
//!   topics: {include: [orders, "events-*"], exclude: ["*-internal"]}
//! storage: {backend: s3, bucket: kafka-backups, region: us-east-1, prefix: prod}
//! drill:
//!   drill_id: weekly-2025-01-20    # default: generated from the time
//!   topic_prefix: "drill-{id}-"    # {id}: the drill id
//!   chain: prod-orders             # with no backup_id: the newest complete backup of this chain
//!   check_offsets: true
//!   max_rpo_seconds: 3600
//!   max_rto_seconds: 900
//!   report_key: drills/weekly-2025-01-20.json
//!   max_concurrent_partitions: 4
//!   rate_limit_records_per_sec: 50000
//!   rate_limit_bytes_per_sec: 52428800
//!   time_window_start: 1705312800000   # PITR window, epoch ms, inclusive
//!   time_window_end: 1705316400000
//! ```

use serde::Deserialize;

use crate::backup::config::{kafka_target, storage_target, StorageSection, TopicSelectionYaml};
use crate::error::{Error, Result};
use crate::restore::config::Target;
use crate::task::{DrillTask, TopicSelection, DEFAULT_DRILL_PREFIX};
use tidemark_task::TaskError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    backup_id: Option<String>,
    target: Target,
    storage: StorageSection,
    #[serde(default)]
    drill: DrillSection,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DrillSection {
    #[serde(default)]
    drill_id: Option<String>,
    #[serde(default)]
    topic_prefix: Option<String>,
    #[serde(default)]
    chain: Option<String>,
    #[serde(default)]
    check_offsets: Option<bool>,
    #[serde(default)]
    max_rpo_seconds: Option<u64>,
    #[serde(default)]
    max_rto_seconds: Option<u64>,
    #[serde(default)]
    report_key: Option<String>,
    #[serde(default)]
    max_concurrent_partitions: Option<usize>,
    #[serde(default)]
    rate_limit_records_per_sec: Option<u64>,
    #[serde(default)]
    rate_limit_bytes_per_sec: Option<u64>,
    #[serde(default)]
    time_window_start: Option<i64>,
    #[serde(default)]
    time_window_end: Option<i64>,
    #[serde(default)]
    topics: Option<TopicSelectionYaml>,
}

/// A parsed drill configuration: the task, and SASL credentials when the file gives them.
#[derive(Debug, Clone)]
pub struct DrillConfig {
    pub task: DrillTask,
    pub credentials: Option<(String, String)>,
}

/// What the command line sets over the file (`--backup-id`, `--prefix`, `--drill-id`).
#[derive(Debug, Clone, Default)]
pub struct DrillOverrides {
    pub backup_id: Option<String>,
    pub prefix: Option<String>,
    pub drill_id: Option<String>,
}

/// Parses a drill configuration and applies `overrides`; `file` names it in errors. `${VAR}` in
/// credentials is read from `env`. The task is validated.
pub fn parse_config(
    text: &str,
    file: &str,
    overrides: &DrillOverrides,
    env: impl Fn(&str) -> Option<String>,
) -> Result<DrillConfig> {
    let bad = |reason: String| Error::Malformed {
        kind: "drill configuration",
        file: file.to_string(),
        reason,
    };
    crate::limits::check_size(text.len(), crate::limits::MAX_CONFIG_BYTES).map_err(bad)?;
    crate::limits::check_yaml_expansion(text).map_err(bad)?;
    let f: File = serde_yaml_ng::from_str(text).map_err(|e| bad(e.to_string()))?;
    if let Some(mode) = f.mode.as_deref().filter(|m| *m != "drill") {
        return Err(bad(format!(
            "mode is '{mode}'; a drill configuration has `mode: drill` (or none)"
        )));
    }
    let storage = storage_target(&f.storage).map_err(bad)?;
    let (kafka, credentials) = kafka_target(
        &f.target.bootstrap_servers,
        &f.target.security,
        &f.target.properties,
        "target",
        &env,
    )
    .map_err(bad)?;
    let d = &f.drill;
    let topics = match (&f.target.topics, &d.topics) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "target.topics and drill.topics are both set; give the topics to drill once".into(),
            ))
        }
        (Some(t), None) | (None, Some(t)) => TopicSelection {
            include: t.include.clone(),
            exclude: t.exclude.clone(),
        },
        (None, None) => TopicSelection::default(),
    };
    let task = DrillTask {
        kafka,
        storage,
        backup_id: overrides.backup_id.clone().or(f.backup_id),
        chain: d.chain.clone(),
        drill_id: overrides.drill_id.clone().or(d.drill_id.clone()),
        topic_prefix: overrides
            .prefix
            .clone()
            .or(d.topic_prefix.clone())
            .unwrap_or_else(|| DEFAULT_DRILL_PREFIX.to_string()),
        topics,
        check_offsets: d.check_offsets.unwrap_or(true),
        max_concurrent_partitions: d.max_concurrent_partitions,
        rate_limit_records_per_sec: d.rate_limit_records_per_sec,
        rate_limit_bytes_per_sec: d.rate_limit_bytes_per_sec,
        max_rpo_seconds: d.max_rpo_seconds,
        max_rto_seconds: d.max_rto_seconds,
        time_window_start: d.time_window_start,
        time_window_end: d.time_window_end,
        report_key: d.report_key.clone(),
    };
    task.validate().map_err(|e| bad(config_message(&e)))?;
    Ok(DrillConfig { task, credentials })
}

/// Task field → configuration key, for errors in the file's terms.
const CONFIG_NAMES: &[(&str, &str)] = &[
    ("backupId", "backup_id"),
    ("chain", "drill.chain"),
    ("drillId", "drill.drill_id"),
    ("topicPrefix", "drill.topic_prefix"),
    ("maxConcurrentPartitions", "drill.max_concurrent_partitions"),
    ("reportKey", "drill.report_key"),
    ("timeWindowEnd", "drill.time_window_end"),
    ("kafka.bootstrapServers", "target.bootstrap_servers"),
    (
        "kafka.securityProtocol",
        "target.security.security_protocol",
    ),
    ("kafka.saslMechanism", "target.security.sasl_mechanism"),
    ("topics", "topics"),
];

fn config_message(error: &TaskError) -> String {
    crate::restore::config::message_in_terms(CONFIG_NAMES, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
mode: drill
backup_id: backup-2025-01-15
target:
  bootstrap_servers: [kafka-1:9092]
  security:
    security_protocol: SASL_SSL
    sasl_mechanism: PLAIN
    sasl_username: drill-user
    sasl_password: ${KAFKA_PASSWORD}
  topics:
    include: [orders, "events-*"]
    exclude: ["*-internal"]
storage:
  backend: s3
  bucket: kafka-backups
  region: us-east-1
  prefix: prod
drill:
  drill_id: weekly-1
  topic_prefix: "dr-{id}-"
  chain: prod-orders
  check_offsets: false
  max_rpo_seconds: 3600
  max_rto_seconds: 900
  report_key: drills/weekly-1.json
  max_concurrent_partitions: 4
  rate_limit_records_per_sec: 50000
  rate_limit_bytes_per_sec: 52428800
  time_window_start: 1705312800000
  time_window_end: 1705316400000
"#;

    fn env(var: &str) -> Option<String> {
        (var == "KAFKA_PASSWORD").then(|| "s3cret".to_string())
    }

    #[test]
    fn every_setting_of_the_drill_section_is_read() {
        let c = parse_config(FULL, "drill.yaml", &DrillOverrides::default(), env).expect("parses");
        let t = &c.task;
        assert_eq!(c.credentials, Some(("drill-user".into(), "s3cret".into())));
        assert_eq!(t.backup_id.as_deref(), Some("backup-2025-01-15"));
        assert_eq!(t.drill_id.as_deref(), Some("weekly-1"));
        assert_eq!(t.prefix_for("weekly-1"), "dr-weekly-1-");
        assert_eq!(t.chain.as_deref(), Some("prod-orders"));
        assert!(!t.check_offsets);
        assert_eq!(
            (t.max_rpo_seconds, t.max_rto_seconds),
            (Some(3600), Some(900))
        );
        assert_eq!(t.report_key.as_deref(), Some("drills/weekly-1.json"));
        assert_eq!(t.max_concurrent_partitions, Some(4));
        assert_eq!(t.rate_limit_records_per_sec, Some(50_000));
        assert_eq!(t.rate_limit_bytes_per_sec, Some(52_428_800));
        assert_eq!(
            (t.time_window_start, t.time_window_end),
            (Some(1_705_312_800_000), Some(1_705_316_400_000))
        );
        assert_eq!(t.topics.include, vec!["orders", "events-*"]);
        assert!(
            matches!(&t.storage, crate::task::StorageTarget::Location { url, .. } if url == "s3://kafka-backups/prod"),
            "{:?}",
            t.storage
        );
        assert!(
            !format!("{t:?}").contains("s3cret"),
            "no secret in the task"
        );
    }

    #[test]
    fn flags_override_the_file_and_defaults_apply() {
        let o = DrillOverrides {
            backup_id: Some("b9".into()),
            prefix: Some("x-{id}.".into()),
            drill_id: Some("d9".into()),
        };
        let t = parse_config(FULL, "drill.yaml", &o, env)
            .expect("parses")
            .task;
        assert_eq!(t.backup_id.as_deref(), Some("b9"));
        assert_eq!(t.drill_id.as_deref(), Some("d9"));
        assert_eq!(t.prefix_for("d9"), "x-d9.");
        let minimal =
            "target: {bootstrap_servers: ['k:9092']}\nstorage: {backend: filesystem, path: /b}\n";
        let t = parse_config(minimal, "d.yaml", &DrillOverrides::default(), env)
            .expect("minimal")
            .task;
        assert_eq!(t.backup_id, None);
        assert_eq!(t.topic_prefix, DEFAULT_DRILL_PREFIX);
        assert!(t.check_offsets);
    }

    #[test]
    fn mistakes_name_the_file_and_the_key() {
        let base =
            "target: {bootstrap_servers: ['k:9092']}\nstorage: {backend: filesystem, path: /b}\n";
        for (text, want) in [
            (format!("mode: restore\n{base}"), "mode is 'restore'"),
            (format!("{base}drill: {{topic_prefix: 'a b'}}\n"), "drill.topic_prefix"),
            (format!("{base}drill: {{drill_id: '-x'}}\n"), "drill.drill_id"),
            (format!("{base}drill: {{max_concurrent_partitions: 0}}\n"), "drill.max_concurrent_partitions"),
            (format!("{base}drill: {{time_window_start: 5, time_window_end: 4}}\n"), "drill.time_window_end"),
            (format!("{base}drill: {{surprise: 1}}\n"), "surprise"),
            (
                "target: {bootstrap_servers: ['k:9092'], topics: {include: [a]}}\nstorage: {backend: filesystem, path: /b}\ndrill: {topics: {include: [b]}}\n".to_string(),
                "both set",
            ),
        ] {
            let e = parse_config(&text, "d.yaml", &DrillOverrides::default(), env)
                .expect_err(&text)
                .to_string();
            assert!(e.contains("d.yaml") && e.contains(want), "{text}: {e}");
        }
    }
}

//! `tidemark restore --config FILE`: the kafka-backup restore configuration (`mode: restore`,
//! `backup_id`, `target`, `storage`, `restore`), every option of its reference, turned into the
//! same [`RestoreTask`] the operator sends.
//!
//! ```yaml
//! mode: restore
//! backup_id: backup-2025-01-15
//! target:
//!   bootstrap_servers: [kafka-1:9092]
//!   security: {security_protocol: SASL_SSL, sasl_mechanism: PLAIN,
//!              sasl_username: restore-user, sasl_password: ${KAFKA_PASSWORD}}
//!   topics: {include: [orders, "events-*", "~transactions-\\d+"], exclude: ["*-internal"]}
//! storage: {backend: s3, bucket: kafka-backups, region: us-east-1, prefix: prod}
//! restore:
//!   chain: full                           # full (the chain up to backup_id) | single (that link alone)
//!   time_window_start: 1705312800000      # epoch ms, inclusive
//!   time_window_end: 1705316400000        # epoch ms, inclusive
//!   source_partitions: [0, 1, 2]
//!   topic_mapping: {orders: orders-recovered}
//!   partition_mapping: {0: 0, 1: 2}
//!   consumer_group_strategy: header-based # skip | header-based | timestamp-based | cluster-scan | manual
//!                                         # (absent: skip, or header-based with reset_consumer_offsets)
//!   include_original_offset_header: true
//!   original_offset_header_style: original   # original (x-original-*) | kafka-backup (x-kafka-backup-*)
//!   dry_run: false
//!   max_concurrent_partitions: 4
//!   produce_batch_size: 1000
//!   rate_limit_records_per_sec: 50000
//!   rate_limit_bytes_per_sec: 104857600
//!   checkpoint_state: /var/lib/tidemark/restore-checkpoint.json
//!   checkpoint_interval_secs: 60
//!   reset_consumer_offsets: false
//!   consumer_groups: []
//!   offset_report: /var/lib/tidemark/offset-mapping.json
//!   create_topics: true                   # from the backed-up topic metadata
//!   existing_data: refuse                 # refuse | append | purge
//!   acks: all                             # all (idempotent) | 1
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::backup::config::TopicSelectionYaml;
use crate::backup::config::{kafka_target, storage_target, Security, StorageSection};
use crate::error::{Error, Result};
use crate::task::{
    Acks, ChainScope, ExistingData, GroupStrategy, HeaderStyle, RestoreTask, TopicSelection,
};
use tidemark_task::field::rename;
use tidemark_task::TaskError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    mode: String,
    backup_id: String,
    #[serde(default)]
    restore_id: Option<String>,
    target: Target,
    storage: StorageSection,
    #[serde(default)]
    restore: RestoreSection,
}

/// The `target` section: the cluster written to (also read by the drill configuration).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Target {
    pub(crate) bootstrap_servers: Vec<String>,
    #[serde(default)]
    pub(crate) security: Security,
    #[serde(default)]
    pub(crate) topics: Option<TopicSelectionYaml>,
    #[serde(default)]
    pub(crate) properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreSection {
    /// `full` (the backup with every link of its chain before it) or `single`.
    #[serde(default)]
    chain: ChainScope,
    #[serde(default)]
    time_window_start: Option<i64>,
    #[serde(default)]
    time_window_end: Option<i64>,
    #[serde(default)]
    source_partitions: Vec<i32>,
    #[serde(default)]
    topic_mapping: BTreeMap<String, String>,
    #[serde(default)]
    partition_mapping: BTreeMap<i32, i32>,
    #[serde(default)]
    consumer_group_strategy: Option<String>,
    #[serde(default)]
    include_original_offset_header: bool,
    #[serde(default)]
    original_offset_header_style: Option<String>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    max_concurrent_partitions: Option<usize>,
    #[serde(default)]
    produce_batch_size: Option<usize>,
    #[serde(default)]
    rate_limit_records_per_sec: Option<u64>,
    #[serde(default)]
    rate_limit_bytes_per_sec: Option<u64>,
    #[serde(default)]
    checkpoint_state: Option<String>,
    #[serde(default)]
    checkpoint_interval_secs: Option<u64>,
    #[serde(default)]
    reset_consumer_offsets: bool,
    #[serde(default)]
    consumer_groups: Vec<String>,
    #[serde(default)]
    offsets_snapshot_id: Option<String>,
    #[serde(default)]
    snapshot_before_reset: Option<bool>,
    #[serde(default)]
    offset_report: Option<String>,
    #[serde(default)]
    create_topics: bool,
    #[serde(default)]
    existing_data: Option<String>,
    #[serde(default)]
    acks: Option<serde_yaml_ng::Value>,
}

/// A parsed configuration: the task, and SASL credentials when the file gives them.
#[derive(Debug, Clone)]
pub struct RestoreConfig {
    pub task: RestoreTask,
    pub credentials: Option<(String, String)>,
}

/// Parses a restore configuration; `file` names it in errors. `${VAR}` in credentials is read
/// from `env`. The task is validated, so every mistake is reported before anything is read.
pub fn parse_config(
    text: &str,
    file: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<RestoreConfig> {
    let bad = |reason: String| Error::Malformed {
        kind: "restore configuration",
        file: file.to_string(),
        reason,
    };
    crate::limits::check_size(text.len(), crate::limits::MAX_CONFIG_BYTES).map_err(bad)?;
    crate::limits::check_yaml_expansion(text).map_err(bad)?;
    let f: File = serde_yaml_ng::from_str(text).map_err(|e| bad(e.to_string()))?;
    if f.mode != "restore" {
        return Err(bad(format!(
            "mode is '{}'; a restore configuration has `mode: restore`",
            f.mode
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
    let r = &f.restore;
    let topics = f
        .target
        .topics
        .as_ref()
        .map(|t| TopicSelection {
            include: t.include.clone(),
            exclude: t.exclude.clone(),
        })
        .unwrap_or_default();
    let task = RestoreTask {
        kafka,
        storage,
        backup_id: f.backup_id.clone(),
        chain: r.chain,
        restore_id: f.restore_id.clone(),
        topics,
        time_window_start: r.time_window_start,
        time_window_end: r.time_window_end,
        source_partitions: r.source_partitions.clone(),
        topic_mapping: r.topic_mapping.clone(),
        partition_mapping: r.partition_mapping.clone(),
        create_topics: r.create_topics,
        existing_data: match r.existing_data.as_deref() {
            None => ExistingData::Refuse,
            Some(v) => parse_existing(v).map_err(|e| bad(format!("restore.existing_data: {e}")))?,
        },
        consumer_group_strategy: match r.consumer_group_strategy.as_deref() {
            // Automatic offset reset without a strategy: the restore's exact offset mapping.
            None if r.reset_consumer_offsets => GroupStrategy::HeaderBased,
            None => GroupStrategy::Skip,
            Some(v) => parse_strategy(v)
                .map_err(|e| bad(format!("restore.consumer_group_strategy: {e}")))?,
        },
        include_original_offset_header: r.include_original_offset_header,
        original_header_style: match r.original_offset_header_style.as_deref() {
            None => HeaderStyle::Original,
            Some(v) => parse_header_style(v)
                .map_err(|e| bad(format!("restore.original_offset_header_style: {e}")))?,
        },
        dry_run: r.dry_run,
        acks: match &r.acks {
            None => Acks::All,
            Some(v) => parse_acks(v).map_err(|e| bad(format!("restore.acks: {e}")))?,
        },
        max_concurrent_partitions: r.max_concurrent_partitions,
        produce_batch_size: r.produce_batch_size,
        rate_limit_records_per_sec: r.rate_limit_records_per_sec,
        rate_limit_bytes_per_sec: r.rate_limit_bytes_per_sec,
        checkpoint_interval_secs: r.checkpoint_interval_secs,
        checkpoint_state: r.checkpoint_state.clone(),
        reset_consumer_offsets: r.reset_consumer_offsets,
        consumer_groups: r.consumer_groups.clone(),
        offsets_snapshot_id: r.offsets_snapshot_id.clone(),
        snapshot_before_reset: r.snapshot_before_reset.unwrap_or(true),
        offset_report: r.offset_report.clone(),
        offset_report_key: None,
        shard_index: None,
        shard_count: 1,
        shard_wait_secs: None,
        plan_out: None,
        approved_plan: None,
    };
    task.validate().map_err(|e| bad(config_message(&e)))?;
    Ok(RestoreConfig { task, credentials })
}

/// Task validation speaks of task fields (`timeWindowStart`); a configuration file's reader
/// knows them as `restore.time_window_start`: task path prefix → configuration key.
const CONFIG_NAMES: &[(&str, &str)] = &[
    ("timeWindowStart", "restore.time_window_start"),
    ("timeWindowEnd", "restore.time_window_end"),
    ("sourcePartitions", "restore.source_partitions"),
    ("partitionMapping", "restore.partition_mapping"),
    ("topicMapping", "restore.topic_mapping"),
    (
        "maxConcurrentPartitions",
        "restore.max_concurrent_partitions",
    ),
    ("produceBatchSize", "restore.produce_batch_size"),
    ("checkpointIntervalSecs", "restore.checkpoint_interval_secs"),
    ("consumerGroupStrategy", "restore.consumer_group_strategy"),
    (
        "includeOriginalOffsetHeader",
        "restore.include_original_offset_header",
    ),
    ("resetConsumerOffsets", "restore.reset_consumer_offsets"),
    ("consumerGroups", "restore.consumer_groups"),
    ("backupId", "backup_id"),
    ("restoreId", "restore_id"),
    ("offsetsSnapshotId", "restore.offsets_snapshot_id"),
    ("kafka.bootstrapServers", "target.bootstrap_servers"),
    (
        "kafka.securityProtocol",
        "target.security.security_protocol",
    ),
    ("kafka.saslMechanism", "target.security.sasl_mechanism"),
    ("topics", "target.topics"),
];

/// The task's refusal in the configuration file's terms ([`CONFIG_NAMES`]; a field it does
/// not name is quoted by its task path).
fn config_message(error: &TaskError) -> String {
    message_in_terms(CONFIG_NAMES, error)
}

/// A task's refusal in a configuration file's terms: `names` maps task paths to its keys.
pub(crate) fn message_in_terms(names: &[(&str, &str)], error: &TaskError) -> String {
    match error.field() {
        Some(field) => {
            let name = rename(names, &field.path).unwrap_or_else(|| format!("'{}'", field.path));
            let message = field.message_with(&name, |path| rename(names, path));
            format!("invalid input: {message}")
        }
        None => error.to_string(),
    }
}

/// `refuse`, `append` or `purge`.
pub fn parse_existing(v: &str) -> std::result::Result<ExistingData, String> {
    v.parse()
}

/// The kafka-backup restore configuration's strategy names (`header-based`; `header_based` and `headerBased` also read).
pub fn parse_strategy(v: &str) -> std::result::Result<GroupStrategy, String> {
    v.parse()
}

/// `original` (`x-original-offset`, `x-original-timestamp`) or `kafka-backup`
/// (`x-kafka-backup-offset`, `-timestamp`, `-partition`).
pub fn parse_header_style(v: &str) -> std::result::Result<HeaderStyle, String> {
    v.parse()
}

/// `all` / `-1` or `1`.
pub fn parse_acks_str(v: &str) -> std::result::Result<Acks, String> {
    v.parse()
}

fn parse_acks(v: &serde_yaml_ng::Value) -> std::result::Result<Acks, String> {
    match v {
        serde_yaml_ng::Value::String(s) => parse_acks_str(s),
        serde_yaml_ng::Value::Number(n) => parse_acks_str(&n.to_string()),
        other => Err(format!("{other:?} is not one of all, 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
mode: restore
backup_id: "backup-2025-01-15"
target:
  bootstrap_servers: [kafka-1:9092, kafka-2:9092]
  security:
    security_protocol: SASL_SSL
    sasl_mechanism: PLAIN
    sasl_username: restore-user
    sasl_password: ${KAFKA_PASSWORD}
    ssl_ca_location: /etc/ssl/ca.pem
  topics:
    include: [orders, payments, "events-*", "~transactions-\\d+"]
    exclude: ["*-internal", "__*"]
storage:
  backend: s3
  bucket: kafka-backups
  region: us-east-1
  prefix: prod-cluster
restore:
  time_window_start: 1705312800000
  time_window_end: 1705316400000
  source_partitions: [0, 1, 2]
  topic_mapping:
    orders: orders-recovered
  partition_mapping:
    0: 0
    1: 2
  consumer_group_strategy: header-based
  include_original_offset_header: true
  dry_run: false
  max_concurrent_partitions: 4
  produce_batch_size: 1000
  rate_limit_records_per_sec: 50000
  checkpoint_state: /var/lib/kafka-backup/restore-checkpoint.json
  checkpoint_interval_secs: 60
  reset_consumer_offsets: false
  consumer_groups: []
  offset_report: /var/lib/kafka-backup/offset-mapping.json
"#;

    fn env(var: &str) -> Option<String> {
        (var == "KAFKA_PASSWORD").then(|| "s3cret".to_string())
    }

    #[test]
    fn every_option_of_the_reference_is_read() {
        let c = parse_config(FULL, "restore.yaml", env).expect("parses");
        let t = &c.task;
        assert_eq!(
            c.credentials,
            Some(("restore-user".into(), "s3cret".into()))
        );
        assert_eq!(t.backup_id, "backup-2025-01-15");
        assert_eq!(t.kafka.bootstrap_servers.len(), 2);
        assert_eq!(t.topics.include.len(), 4);
        assert_eq!(t.topics.exclude, vec!["*-internal", "__*"]);
        assert_eq!(t.time_window_start, Some(1_705_312_800_000));
        assert_eq!(t.time_window_end, Some(1_705_316_400_000));
        assert_eq!(t.source_partitions, vec![0, 1, 2]);
        assert_eq!(t.topic_mapping["orders"], "orders-recovered");
        assert_eq!(t.partition_mapping[&1], 2);
        assert_eq!(t.consumer_group_strategy, GroupStrategy::HeaderBased);
        assert!(t.include_original_offset_header);
        assert_eq!(t.max_concurrent_partitions, Some(4));
        assert_eq!(t.produce_batch_size, Some(1000));
        assert_eq!(t.rate_limit_records_per_sec, Some(50_000));
        assert_eq!(t.checkpoint_interval_secs, Some(60));
        assert_eq!(
            t.checkpoint_state.as_deref(),
            Some("/var/lib/kafka-backup/restore-checkpoint.json")
        );
        assert_eq!(
            t.offset_report.as_deref(),
            Some("/var/lib/kafka-backup/offset-mapping.json")
        );
        assert_eq!(t.acks, Acks::All);
        assert_eq!(t.existing_data, ExistingData::Refuse);
        assert!(
            !format!("{t:?}").contains("s3cret"),
            "no secret in the task"
        );
    }

    #[test]
    fn the_same_configuration_resumes_the_same_restore() {
        let a = parse_config(FULL, "restore.yaml", env)
            .expect("parses")
            .task;
        let mut b = a.clone();
        b.rate_limit_records_per_sec = Some(1);
        b.checkpoint_interval_secs = Some(5);
        assert_eq!(
            a.effective_restore_id(),
            b.effective_restore_id(),
            "throttles and intervals do not change what is restored"
        );
        assert!(a.effective_restore_id().starts_with("restore-"));
        crate::snapshot::validate_id(&a.effective_restore_id()).expect("a valid id");
        let mut c = a.clone();
        c.time_window_end = Some(1_705_316_400_001);
        assert_ne!(a.effective_restore_id(), c.effective_restore_id());
        let mut d = a.clone();
        d.restore_id = Some("dr-1".into());
        assert_eq!(d.effective_restore_id(), "dr-1");
    }

    #[test]
    fn the_minimal_guide_example_restores_everything() {
        let text = "mode: restore\nbackup_id: b1\ntarget:\n  bootstrap_servers: [localhost:9092]\n  topics:\n    include: ['*']\nstorage:\n  backend: filesystem\n  path: /data\n";
        let c = parse_config(text, "f", env).expect("parses");
        assert_eq!(c.task.consumer_group_strategy, GroupStrategy::Skip);
        assert!(c.task.snapshot_before_reset);
        let no_topics = "mode: restore\nbackup_id: b1\ntarget:\n  bootstrap_servers: [k:9092]\nstorage: {backend: filesystem, path: /d}\nrestore: {acks: 1, existing_data: append, original_offset_header_style: kafka-backup}\n";
        let c = parse_config(no_topics, "f", env).expect("parses");
        assert!(c.task.topics.include.is_empty());
        assert_eq!(c.task.acks, Acks::Leader);
        assert_eq!(c.task.existing_data, ExistingData::Append);
        assert_eq!(c.task.original_header_style, HeaderStyle::KafkaBackup);
    }

    #[test]
    fn an_automatic_offset_reset_without_a_strategy_translates_exactly() {
        let text = "mode: restore\nbackup_id: b1\ntarget:\n  bootstrap_servers: [k:9092]\nstorage: {backend: filesystem, path: /d}\nrestore:\n  reset_consumer_offsets: true\n  consumer_groups:\n    - my-consumer-group\n    - another-group\n";
        let t = parse_config(text, "f", env).expect("parses").task;
        assert!(t.reset_consumer_offsets);
        assert_eq!(t.consumer_group_strategy, GroupStrategy::HeaderBased);
        assert_eq!(
            t.consumer_groups,
            vec!["my-consumer-group", "another-group"]
        );
        assert!(t.snapshot_before_reset, "a safety snapshot first");
        let skip = text.replace(
            "  reset_consumer_offsets: true\n",
            "  reset_consumer_offsets: true\n  consumer_group_strategy: skip\n",
        );
        let err = parse_config(&skip, "f", env).expect_err("skip says leave groups alone");
        assert!(
            err.to_string().contains(
                "restore.reset_consumer_offsets is true but restore.consumer_group_strategy is skip"
            ),
            "{err}"
        );
    }

    #[test]
    fn mistakes_name_the_file_and_the_option() {
        let cases = [
            (
                FULL.replace("mode: restore", "mode: backup"),
                "mode is 'backup'",
            ),
            (
                FULL.replace(
                    "time_window_end: 1705316400000",
                    "time_window_end: 1705312700000",
                ),
                "restore.time_window_start (1705312800000) is after restore.time_window_end",
            ),
            (
                FULL.replace("header-based", "by-magic"),
                "restore.consumer_group_strategy: 'by-magic'",
            ),
            (
                FULL.replace("produce_batch_size: 1000", "produce_batch_size: 0"),
                "restore.produce_batch_size is 0",
            ),
            (
                FULL.replace("dry_run: false", "dry_runn: false"),
                "unknown field `dry_runn`",
            ),
            (
                FULL.replace("orders: orders-recovered", "orders: 'bad name!'"),
                "restore.topic_mapping.orders: ",
            ),
            (
                FULL.replace("    1: 2", "    1: -2"),
                "restore.partition_mapping maps 1 to -2",
            ),
            (
                FULL.replace("\"~transactions-\\\\d+\"", "\"~([\""),
                "target.topics",
            ),
            (
                FULL.replace("dry_run: false", "acks: 0"),
                "acks 0 cannot tell what landed",
            ),
            (
                FULL.replace(
                    "consumer_group_strategy: header-based",
                    "consumer_group_strategy: skip",
                )
                .replace(
                    "reset_consumer_offsets: false",
                    "reset_consumer_offsets: true",
                ),
                "restore.reset_consumer_offsets is true but restore.consumer_group_strategy is skip",
            ),
            (
                FULL.replace(
                    "include_original_offset_header: true",
                    "include_original_offset_header: false",
                )
                .replace("header-based", "cluster-scan"),
                "set restore.include_original_offset_header",
            ),
        ];
        for (text, want) in cases {
            let err = parse_config(&text, "restore.yaml", env).expect_err(want);
            let msg = err.to_string();
            assert!(
                msg.contains("restore.yaml") && msg.contains(want),
                "{want}: {msg}"
            );
            assert_eq!(err.exit_code(), 8, "{msg}");
        }
    }
}

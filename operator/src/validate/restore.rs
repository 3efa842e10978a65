//! KafkaRestore: the backup reference, the point-in-time window, mappings, consumer groups,
//! bounds, and what the restore task's own validation refuses.

use super::*;
use crate::build::restore::ResolvedRestore;
use crate::crd::restore::KafkaRestoreSpec;

/// The spec fields of a KafkaRestore behind the fields of its restore task.
const RESTORE_FIELDS: &[(&str, &str)] = &[
    ("kafka", "spec.kafkaCluster"),
    ("storage.url", "spec.backupRef.storage"),
    ("storage.encryption", "spec.encryption"),
    ("storage", "spec.backupRef.storage"),
    ("backupId", "spec.backupRef.backupId"),
    ("restoreId", "the restore id (kr-<uid>)"),
    ("timeWindowStart", "spec.pitr start"),
    ("timeWindowEnd", "spec.pitr end"),
    ("consumerGroupStrategy", "spec.consumerGroups.strategy"),
    ("resetConsumerOffsets", "spec.consumerGroups.resetOffsets"),
    ("consumerGroups", "spec.consumerGroups.groups"),
    ("offsetsSnapshotId", "spec.consumerGroups.offsetsSnapshotId"),
    ("rateLimitRecordsPerSec", "spec.rateLimit.recordsPerSec"),
    ("rateLimitBytesPerSec", "spec.rateLimit.bytesPerSec"),
    ("shardCount", "spec.shards"),
];

/// [`RESTORE_FIELDS`] of a restore whose backup a KafkaBackup named: its storage is that
/// KafkaBackup's, and its backup id the one resolved.
const RESOLVED_FIELDS: &[(&str, &str)] = &[
    (
        "storage.encryption",
        "spec.encryption (else the KafkaBackup's in spec.backupRef.name)",
    ),
    (
        "storage.url",
        "the storage of the KafkaBackup in spec.backupRef.name",
    ),
    (
        "storage",
        "the storage of the KafkaBackup in spec.backupRef.name",
    ),
    (
        "backupId",
        "the backup id resolved through spec.backupRef.name",
    ),
];

impl SpecChecks for KafkaRestore {
    fn kafka_cluster(&self) -> Option<&KafkaClusterSpec> {
        Some(&self.spec.kafka_cluster)
    }

    /// The spec's problems; once the task can be built (a backup named inline), what the
    /// worker refuses.
    fn spec_problems(&self) -> Vec<Problem> {
        let mut problems = restore_spec_problems(&self.spec);
        if problems.is_empty() {
            problems.extend(worker_problem(self, RESTORE_FIELDS));
        }
        problems
    }
}

/// A restore from a KafkaBackup, once resolved: the same checks, and the worker's own of the
/// whole task.
impl SpecChecks for ResolvedRestore {
    fn kafka_cluster(&self) -> Option<&KafkaClusterSpec> {
        Some(&self.restore.spec.kafka_cluster)
    }

    fn spec_problems(&self) -> Vec<Problem> {
        let mut problems = restore_spec_problems(&self.restore.spec);
        if problems.is_empty() {
            let fields: Vec<(&str, &str)> = RESOLVED_FIELDS
                .iter()
                .chain(RESTORE_FIELDS)
                .copied()
                .collect();
            problems.extend(worker_problem(self, &fields));
        }
        problems
    }
}

/// What is wrong with `spec` itself.
fn restore_spec_problems(spec: &KafkaRestoreSpec) -> Vec<Problem> {
    let mut problems = Vec::new();
    cluster_problems(&spec.kafka_cluster, &mut problems);
    backup_ref_problems(spec, &mut problems);
    encryption_problems(spec.encryption.as_ref(), None, &mut problems);
    window_problems(spec, &mut problems);
    selection_problems(spec, &mut problems);
    group_problems(spec, &mut problems);
    bound_problems(spec, &mut problems);
    let refused = if spec.dry_run {
        Some((
            REASON_UNUSED_FIELD,
            "spec.approval Manual is not used with spec.dryRun: a dry run changes nothing; remove one of them".to_string(),
        ))
    } else if spec.shards > 1 {
        Some((
            REASON_UNUSED_FIELD,
            format!("spec.approval Manual plans the restore in one worker pod, and spec.shards is {}: use shards: 1", spec.shards),
        ))
    } else {
        None
    };
    problems.extend(approval::approval_problems(
        spec.approval,
        spec.approval_timeout.as_deref(),
        refused,
    ));
    problems
}

/// `backupRef`: a KafkaBackup by name, or a backup id in a storage; the restore id and the
/// offset report key.
fn backup_ref_problems(spec: &KafkaRestoreSpec, problems: &mut Vec<Problem>) {
    // backupRef: a KafkaBackup by name, or a backup id in a storage.
    let backup_ref = &spec.backup_ref;
    match (&backup_ref.name, &backup_ref.storage) {
        (None, None) => problems.push(Problem::new(
            REASON_MISSING_FIELD,
            "spec.backupRef needs name (a KafkaBackup in this namespace) or backupId and storage",
        )),
        (Some(_), Some(_)) => problems.push(Problem::new(
            REASON_UNUSED_FIELD,
            "spec.backupRef.storage is only used without spec.backupRef.name: a KafkaBackup brings its own storage",
        )),
        (None, Some(storage)) => {
            if backup_ref.backup_id.is_none() {
                problems.push(Problem::new(
                    REASON_MISSING_FIELD,
                    "spec.backupRef.backupId is required with spec.backupRef.storage",
                ));
            }
            if storage.storage_type.normalized() == StorageType::ConfigMap {
                problems.push(Problem::new(
                    REASON_UNSUPPORTED_STORAGE,
                    "spec.backupRef.storage.storageType configMap cannot hold backups: use pvc, s3, azure or gcs",
                ));
            } else {
                storage_problems("spec.backupRef.storage", storage, problems);
            }
        }
        (Some(_), None) => {}
    }
    if let Some(id) = &backup_ref.backup_id {
        problems.extend(id_problem(
            REASON_INVALID_FIELD,
            "spec.backupRef.backupId",
            id,
        ));
    }
    if let Some(id) = &spec.restore_id {
        problems.extend(id_problem(REASON_INVALID_FIELD, "spec.restoreId", id));
    }
    if let Some(key) = &spec.offset_report {
        if let Err(why) = tidemark_task::validate_report_key(key) {
            problems.push(Problem::new(
                REASON_INVALID_FIELD,
                format!("spec.offsetReport {why}"),
            ));
        }
    }
}

/// `pitr`: each end in one form, a real date-time, not before 1970, start <= end.
fn window_problems(spec: &KafkaRestoreSpec, problems: &mut Vec<Problem>) {
    // The window: each end in one form, a real date-time, not before 1970, start <= end.
    if let Some(pitr) = &spec.pitr {
        let mut ends = Vec::new();
        for (end, time, ms) in [
            ("start", &pitr.start_time, pitr.start_timestamp_ms),
            ("end", &pitr.end_time, pitr.end_timestamp_ms),
        ] {
            if time.is_some() && ms.is_some() {
                problems.push(Problem::new(
                    REASON_UNUSED_FIELD,
                    format!(
                        "spec.pitr.{end}Time and spec.pitr.{end}TimestampMs are two forms of the same bound: give one"
                    ),
                ));
            }
            let value = match time {
                Some(text) => match crate::build::restore::epoch_ms(text) {
                    Ok(v) => Some(v),
                    Err(why) => {
                        problems.push(Problem::new(
                            REASON_INVALID_FIELD,
                            format!("spec.pitr.{end}Time {why}"),
                        ));
                        None
                    }
                },
                None => ms,
            };
            if let Some(v) = value.filter(|v| *v < 0) {
                problems.push(Problem::new(
                    REASON_INVALID_FIELD,
                    format!(
                        "spec.pitr {end} is {v} ms, before 1970-01-01T00:00:00Z; record timestamps are epoch milliseconds, 0 or more"
                    ),
                ));
            }
            ends.push(value);
        }
        match (ends[0], ends[1]) {
            (None, None) if pitr.start_time.is_none() && pitr.end_time.is_none() => {
                problems.push(Problem::new(
                    REASON_MISSING_FIELD,
                    "spec.pitr needs a start, an end or both (startTime or startTimestampMs, endTime or endTimestampMs)",
                ))
            }
            (Some(start), Some(end)) if start > end => problems.push(Problem::new(
                REASON_INVALID_FIELD,
                format!(
                    "spec.pitr starts after it ends ({start} ms > {end} ms): the window is empty"
                ),
            )),
            _ => {}
        }
    }
}

/// What is read and where it goes: source partitions, the partition mapping, topic patterns.
fn selection_problems(spec: &KafkaRestoreSpec, problems: &mut Vec<Problem>) {
    if let Some(p) = spec.source_partitions.iter().find(|p| **p < 0) {
        problems.push(Problem::new(
            REASON_INVALID_FIELD,
            format!("spec.sourcePartitions holds {p}; partitions are 0 or more"),
        ));
    }
    if let Err(crate::build::Error::InvalidField { field, reason }) =
        crate::build::restore::partition_mapping(&spec.partition_mapping)
    {
        problems.push(Problem::new(
            REASON_INVALID_FIELD,
            format!("{field} {reason}"),
        ));
    }
    if let Some((from, to)) = spec.partition_mapping.iter().find(|(_, to)| **to < 0) {
        problems.push(Problem::new(
            REASON_INVALID_FIELD,
            format!("spec.partitionMapping maps {from} to {to}; partitions are 0 or more"),
        ));
    }
    if let Some(topics) = &spec.topics {
        for (list, entries) in [("include", &topics.include), ("exclude", &topics.exclude)] {
            problems.extend(topic_pattern_problems(
                &format!("spec.topics.{list}"),
                list,
                entries,
            ));
        }
    }
}

/// Consumer groups and the original-offset headers they may need.
fn group_problems(spec: &KafkaRestoreSpec, problems: &mut Vec<Problem>) {
    // Consumer groups and headers.
    let groups = spec.consumer_groups.clone().unwrap_or_default();
    if groups.reset_offsets && groups.strategy == GroupStrategy::Skip {
        problems.push(Problem::new(
            REASON_INVALID_FIELD,
            "spec.consumerGroups.resetOffsets needs a strategy other than skip: header-based (exact), timestamp-based, cluster-scan or manual",
        ));
    }
    if (!groups.groups.is_empty() || groups.offsets_snapshot_id.is_some())
        && !groups.reset_offsets
        && groups.strategy != GroupStrategy::Manual
    {
        problems.push(Problem::new(
            REASON_UNUSED_FIELD,
            "spec.consumerGroups.groups and spec.consumerGroups.offsetsSnapshotId are only used with resetOffsets: true or strategy manual",
        ));
    }
    if groups.strategy == GroupStrategy::ClusterScan && !spec.include_original_offset_header {
        problems.push(Problem::new(
            REASON_MISSING_FIELD,
            "spec.consumerGroups.strategy cluster-scan reads the original-offset headers back from the target: set spec.includeOriginalOffsetHeader: true",
        ));
    }
    if spec.original_header_style.is_some() && !spec.include_original_offset_header {
        problems.push(Problem::new(
            REASON_UNUSED_FIELD,
            "spec.originalHeaderStyle is only used with spec.includeOriginalOffsetHeader: true",
        ));
    }
    if let Some(id) = &groups.offsets_snapshot_id {
        problems.extend(snapshot_id_problem(
            "spec.consumerGroups.offsetsSnapshotId",
            id,
        ));
    }
}

/// Concurrency, batch, checkpoint, shard and rate bounds.
fn bound_problems(spec: &KafkaRestoreSpec, problems: &mut Vec<Problem>) {
    if let Some(n) = spec.max_concurrent_partitions {
        problems.extend(range_problem(
            "spec.maxConcurrentPartitions",
            n,
            1..=MAX_CONCURRENT_PARTITIONS,
        ));
    }
    if let Some(n) = spec.produce_batch_size {
        problems.extend(range_problem(
            "spec.produceBatchSize",
            n,
            1..=MAX_PRODUCE_BATCH,
        ));
    }
    if let Some(n) = spec.checkpoint_interval_secs {
        problems.extend(range_problem(
            "spec.checkpointIntervalSecs",
            n,
            1..=MAX_CHECKPOINT_INTERVAL_SECS,
        ));
    }
    problems.extend(range_problem(
        "spec.shards",
        spec.shards,
        1..=crate::crd::backup::MAX_PARALLELISM,
    ));
    let rate = spec.rate_limit.clone().unwrap_or_default();
    for (field, value) in [
        ("spec.rateLimit.recordsPerSec", rate.records_per_sec),
        ("spec.rateLimit.bytesPerSec", rate.bytes_per_sec),
    ] {
        if let Some(value) = value {
            problems.extend(range_problem(field, value, 1..=i64::MAX));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::*;
    use crate::controller::restore::resolve;
    use crate::validate::tests::assert_one_problem;

    fn problems(yaml: &str) -> Vec<Problem> {
        validate(&kr(yaml))
    }

    /// A restore sample naming a KafkaBackup, resolved through the KafkaBackup
    /// `orders-snapshot`.
    fn resolved(yaml: &str) -> ResolvedRestore {
        resolve(
            &kr(yaml),
            Some(&orders_backup(
                "orders-snapshot-g1-r0-3c9a7e10",
                "Completed",
            )),
        )
        .expect("resolved")
        .expect("a backupRef.name")
    }

    /// The problems of `yaml` as the controller checks it before its Job is built: resolved
    /// when it names a KafkaBackup.
    fn resolved_problems(yaml: &str) -> Vec<Problem> {
        if kr(yaml).spec.backup_ref.name.is_some() {
            validate(&resolved(yaml))
        } else {
            problems(yaml)
        }
    }

    #[test]
    fn every_restore_sample_is_valid_before_and_after_resolution() {
        for yaml in [
            RESTORE_FULL,
            RESTORE_PITR_NEW_TOPIC,
            RESTORE_THREE_PHASE,
            RESTORE_DRY_RUN,
        ] {
            assert_eq!(problems(yaml), [], "{yaml}");
            assert_eq!(resolved_problems(yaml), [], "{yaml}");
        }
    }

    #[test]
    fn what_the_schema_requires_of_a_restore_is_checked_again() {
        // Manifests the CRD's rules reject, as if stored before those rules existed.
        let pitr = RESTORE_PITR_NEW_TOPIC;
        let three = RESTORE_THREE_PHASE;
        let cases = [
            (
                RESTORE_FULL.replace("  backupRef:\n    name: orders-snapshot\n", "  backupRef: {}\n"),
                REASON_MISSING_FIELD,
                "spec.backupRef needs name (a KafkaBackup in this namespace) or backupId and storage",
            ),
            (
                pitr.replace("  backupRef:\n", "  backupRef:\n    name: payments-nightly\n"),
                REASON_UNUSED_FIELD,
                "spec.backupRef.storage is only used without spec.backupRef.name",
            ),
            (
                pitr.replace("    backupId: payments-nightly-2b1e4c7d-29000000\n", ""),
                REASON_MISSING_FIELD,
                "spec.backupRef.backupId is required with spec.backupRef.storage",
            ),
            (
                three.replace("  createTopics: true\n", "  createTopics: true\n  restoreId: a..b\n"),
                REASON_INVALID_FIELD,
                "spec.restoreId 'a..b' is invalid",
            ),
            (
                three.replace("  createTopics: true\n", "  createTopics: true\n  offsetReport: reports/../x.json\n"),
                REASON_INVALID_FIELD,
                "spec.offsetReport is 'reports/../x.json'",
            ),
            (
                pitr.replace("      storageType: s3\n", "      storageType: configMap\n"),
                REASON_UNSUPPORTED_STORAGE,
                "spec.backupRef.storage.storageType configMap cannot hold backups",
            ),
            (
                pitr.replace("      storageType: s3\n", "      storageType: gcs\n"),
                REASON_MISSING_FIELD,
                "spec.backupRef.storage.gcs is required when storageType is gcs",
            ),
            (
                RESTORE_DRY_RUN.replace("orders-snapshot-g1-r0-6f1c2a9e", "a..b"),
                REASON_INVALID_FIELD,
                "spec.backupRef.backupId 'a..b' is invalid",
            ),
            (
                pitr.replace("    endTime: \"2025-01-15T15:00:00Z\"\n", "    endTime: \"2025-01-15T15:00:00Z\"\n    endTimestampMs: 5\n"),
                REASON_UNUSED_FIELD,
                "spec.pitr.endTime and spec.pitr.endTimestampMs are two forms of the same bound",
            ),
            (
                pitr.replace("2025-01-15T00:00:00Z", "2025-01-16T00:00:00Z"),
                REASON_INVALID_FIELD,
                "spec.pitr starts after it ends (1736985600000 ms > 1736953200000 ms)",
            ),
            (
                pitr.replace("2025-01-15T00:00:00Z", "2025-01-15 00:00"),
                REASON_INVALID_FIELD,
                "spec.pitr.startTime '2025-01-15 00:00' is not an RFC 3339 date-time",
            ),
            (
                pitr.replace(
                    "    startTime: \"2025-01-15T00:00:00Z\"\n    endTime: \"2025-01-15T15:00:00Z\"\n",
                    "    {}\n",
                ).replace("  pitr:\n    {}\n", "  pitr: {}\n"),
                REASON_MISSING_FIELD,
                "spec.pitr needs a start, an end or both",
            ),
            (
                RESTORE_DRY_RUN.replace("    \"2\": 0\n", "    \"02\": 0\n"),
                REASON_INVALID_FIELD,
                "spec.partitionMapping has the key '02', which is not a partition number",
            ),
            (
                RESTORE_DRY_RUN.replace("    \"2\": 0\n", "    \"2\": -3\n"),
                REASON_INVALID_FIELD,
                "spec.partitionMapping maps 2 to -3; partitions are 0 or more",
            ),
            (
                RESTORE_DRY_RUN.replace("  sourcePartitions:\n    - 2\n", "  sourcePartitions:\n    - -2\n"),
                REASON_INVALID_FIELD,
                "spec.sourcePartitions holds -2",
            ),
            (
                three.replace("    strategy: header-based\n", "    strategy: skip\n"),
                REASON_INVALID_FIELD,
                "spec.consumerGroups.resetOffsets needs a strategy other than skip",
            ),
            (
                three.replace("    resetOffsets: true\n", ""),
                REASON_UNUSED_FIELD,
                "spec.consumerGroups.groups and spec.consumerGroups.offsetsSnapshotId are only used with resetOffsets: true or strategy manual",
            ),
            (
                three
                    .replace("    strategy: header-based\n", "    strategy: cluster-scan\n")
                    .replace("  includeOriginalOffsetHeader: true\n  originalHeaderStyle: original\n", ""),
                REASON_MISSING_FIELD,
                "spec.consumerGroups.strategy cluster-scan reads the original-offset headers back from the target",
            ),
            (
                three.replace("  includeOriginalOffsetHeader: true\n", ""),
                REASON_UNUSED_FIELD,
                "spec.originalHeaderStyle is only used with spec.includeOriginalOffsetHeader: true",
            ),
            (
                three.replace("    snapshotBeforeReset: true\n", "    snapshotBeforeReset: true\n    offsetsSnapshotId: a..b\n"),
                REASON_INVALID_SNAPSHOT_ID,
                "spec.consumerGroups.offsetsSnapshotId 'a..b' is invalid",
            ),
            (
                RESTORE_FULL.replace("maxConcurrentPartitions: 8", "maxConcurrentPartitions: 0"),
                REASON_INVALID_FIELD,
                "spec.maxConcurrentPartitions is 0; use 1 to 10000",
            ),
            (
                pitr.replace("checkpointIntervalSecs: 30", "checkpointIntervalSecs: 0"),
                REASON_INVALID_FIELD,
                "spec.checkpointIntervalSecs is 0; use 1 to 86400",
            ),
            (
                pitr.replace("recordsPerSec: 50000", "recordsPerSec: 0"),
                REASON_INVALID_FIELD,
                "spec.rateLimit.recordsPerSec is 0",
            ),
            (
                three.replace("      - \"*-retry\"\n", "      - \"~(\"\n"),
                REASON_INVALID_FIELD,
                "spec.topics.exclude[0] is invalid: exclude pattern '~(' is not a valid regex",
            ),
            (
                pitr.replace(
                    "    saslSecret:\n      name: kafka-credentials\n      mechanism: SCRAM-SHA-512\n",
                    "",
                ),
                REASON_MISSING_FIELD,
                "spec.kafkaCluster.saslSecret is required with securityProtocol SASL_SSL",
            ),
        ];
        for (yaml, reason, message) in cases {
            assert_one_problem(&problems(&yaml), reason, message);
        }
    }

    #[test]
    fn shards_are_bounded_and_refuse_an_offset_report() {
        let with = |yaml: &str, shards: &str| {
            yaml.replace(
                "  createTopics: true\n",
                &format!("  createTopics: true\n  shards: {shards}\n"),
            )
        };
        assert_eq!(resolved_problems(&with(RESTORE_FULL, "4")), []);
        let problems = resolved_problems(&with(RESTORE_FULL, "0"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].message, "spec.shards is 0; use 1 to 100");
        assert_eq!(resolved_problems(&with(RESTORE_THREE_PHASE, "2")), []);
        let report = with(RESTORE_FULL, "2\n  offsetReport: reports/r.json");
        let problems = resolved_problems(&report);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].reason, REASON_INVALID_FIELD);
        assert!(
            problems[0]
                .message
                .starts_with("spec.shards is 2, and an offset report is to be stored"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn what_the_worker_refuses_is_named_by_its_spec_field() {
        // A target topic Kafka reserves: only the worker's own check knows.
        let yaml = RESTORE_PITR_NEW_TOPIC.replace("transactions-recovered", "..");
        let problems = problems(&yaml);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].reason, REASON_INVALID_FIELD);
        assert!(
            problems[0]
                .message
                .starts_with("spec.topicMapping.transactions: topic name '..' is not allowed"),
            "{}",
            problems[0].message
        );
        // By name, the worker's check runs once the backup is resolved.
        let yaml = RESTORE_FULL.replace(
            "  createTopics: true\n",
            "  createTopics: true\n  topicMapping:\n    orders: \"..\"\n",
        );
        assert_eq!(
            validate(&kr(&yaml)),
            [],
            "nothing to build the task from yet"
        );
        let problems = resolved_problems(&yaml);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.starts_with("spec.topicMapping.orders"));

        let field = |f| spec_field(RESTORE_FIELDS, f);
        assert_eq!(field("storage.url"), "spec.backupRef.storage");
        assert_eq!(field("backupId"), "spec.backupRef.backupId");
        assert_eq!(field("consumerGroups"), "spec.consumerGroups.groups");
        assert_eq!(
            field("consumerGroupStrategy"),
            "spec.consumerGroups.strategy"
        );
        assert_eq!(field("topicMapping.orders"), "spec.topicMapping.orders");
        assert_eq!(
            field("kafka.bootstrapServers"),
            "spec.kafkaCluster.bootstrapServers"
        );
    }

    #[test]
    fn a_restore_references_the_secrets_its_job_uses() {
        assert_eq!(
            referenced_secrets(&kr(RESTORE_PITR_NEW_TOPIC))
                .iter()
                .map(|r| (r.field, r.name.as_str()))
                .collect::<Vec<_>>(),
            [
                ("spec.kafkaCluster.tlsSecret", "kafka-tls"),
                ("spec.kafkaCluster.saslSecret", "kafka-credentials"),
                (
                    "spec.backupRef.storage.s3.credentialsSecret",
                    "s3-credentials"
                ),
            ]
        );
        // Before resolution the storage of a KafkaBackup is unknown; after, its Secret is the
        // KafkaBackup's.
        let by_name = RESTORE_FULL;
        assert_eq!(referenced_secrets(&kr(by_name)), []);
        assert_eq!(referenced_secrets(&resolved(by_name)), []);
        let mut backup = kb(BACKUP_DAILY_S3);
        backup.metadata.name = Some("orders-snapshot".into());
        backup.status = orders_backup("b1", "Completed").status;
        let cr = resolve(&kr(by_name), Some(&backup))
            .expect("resolved")
            .expect("named");
        assert_eq!(
            referenced_secrets(&cr),
            [SecretReference {
                field:
                    "spec.storage.s3.credentialsSecret of the KafkaBackup in spec.backupRef.name",
                name: "s3-credentials".into(),
                keys: vec![],
            }]
        );
    }
}

//! KafkaOffsetReset: the group selection, the strategy's parameters, the storage of the
//! safety snapshot, and what the reset task's own validation refuses.

use super::*;

impl SpecChecks for KafkaOffsetReset {
    fn kafka_cluster(&self) -> Option<&KafkaClusterSpec> {
        Some(&self.spec.kafka_cluster)
    }

    fn spec_problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let spec = &self.spec;
        cluster_problems(&spec.kafka_cluster, &mut problems);
        if spec.consumer_groups.is_empty() && spec.consumer_group_pattern.is_none() {
            problems.push(Problem::new(
                REASON_MISSING_FIELD,
                "spec.consumerGroups or spec.consumerGroupPattern must select at least one group",
            ));
        }

        // Each strategy's parameter, and no parameter of another strategy.
        let strategy = spec.reset_strategy;
        let parameters = [
            (ResetStrategy::ToOffset, "offset", spec.offset.is_some()),
            (ResetStrategy::ShiftBy, "shiftBy", spec.shift_by.is_some()),
            (
                ResetStrategy::ToDatetime,
                "datetime",
                spec.datetime.is_some(),
            ),
            (
                ResetStrategy::ByDuration,
                "duration",
                spec.duration.is_some(),
            ),
            (
                ResetStrategy::FromFile,
                "offsetsCsv",
                spec.offsets_csv.is_some(),
            ),
            (
                ResetStrategy::FromSnapshot,
                "fromSnapshotId",
                spec.from_snapshot_id.is_some(),
            ),
            (
                ResetStrategy::FromBackup,
                "backupId",
                spec.backup_id.is_some(),
            ),
        ];
        for (owner, field, set) in parameters {
            if owner == strategy && !set {
                problems.push(Problem::new(
                    REASON_MISSING_FIELD,
                    format!(
                        "spec.{field} is required for resetStrategy {}",
                        owner.as_str()
                    ),
                ));
            } else if owner != strategy && set {
                problems.push(Problem::new(
                    REASON_UNUSED_FIELD,
                    format!(
                        "spec.{field} is only used with resetStrategy {}, not {}; remove it or change resetStrategy",
                        owner.as_str(),
                        strategy.as_str()
                    ),
                ));
            }
        }
        if let Some(offset) = spec.offset.filter(|o| *o < 0) {
            problems.push(Problem::new(
                REASON_INVALID_FIELD,
                format!("spec.offset is {offset}; offsets are 0 or more"),
            ));
        }
        if let Some(id) = &spec.from_snapshot_id {
            problems.extend(snapshot_id_problem("spec.fromSnapshotId", id));
        }
        if let Some(id) = &spec.backup_id {
            problems.extend(id_problem(REASON_INVALID_FIELD, "spec.backupId", id));
        }
        if let Some(id) = &spec.snapshot_id {
            problems.extend(snapshot_id_problem("spec.snapshotId", id));
            if !spec.snapshot_before_reset {
                problems.push(Problem::new(
                    REASON_UNUSED_FIELD,
                    "spec.snapshotId names the safety snapshot: remove it or set snapshotBeforeReset: true",
                ));
            }
        }
        problems.extend(range_problem(
            "spec.maxConcurrent",
            spec.max_concurrent,
            1..=1000,
        ));
        problems.extend(range_problem("spec.maxRetries", spec.max_retries, 0..=100));

        match &spec.storage {
            None if strategy == ResetStrategy::FromBackup => problems.push(Problem::new(
                REASON_MISSING_FIELD,
                "spec.storage is required for resetStrategy fromBackup: it is the backup's location, holding its restore's offset mapping",
            )),
            Some(storage)
                if strategy == ResetStrategy::FromBackup
                    && storage.storage_type.normalized() == StorageType::ConfigMap =>
            {
                problems.push(Problem::new(
                    REASON_UNSUPPORTED_STORAGE,
                    "spec.storage.storageType configMap cannot hold backups: resetStrategy fromBackup needs the backup's pvc, s3, azure or gcs location",
                ))
            }
            None if strategy == ResetStrategy::FromSnapshot => problems.push(Problem::new(
                REASON_MISSING_FIELD,
                "spec.storage is required for resetStrategy fromSnapshot: it is where the snapshot is read from",
            )),
            None if spec.takes_snapshot() => problems.push(Problem::new(
                REASON_MISSING_FIELD,
                "spec.storage is required for the safety snapshot taken before the reset; set storage, or snapshotBeforeReset: false to reset without a way back",
            )),
            None => {}
            Some(storage) => storage_problems("spec.storage", storage, &mut problems),
        }
        encryption_problems(
            spec.encryption.as_ref(),
            spec.storage.as_ref().map(|s| s.storage_type),
            &mut problems,
        );

        let refused = if spec.storage.is_none() {
            Some((
                REASON_MISSING_FIELD,
                "spec.approval Manual needs spec.storage: the plan is stored there before it is approved".to_string(),
            ))
        } else if spec.dry_run {
            Some((
                REASON_UNUSED_FIELD,
                "spec.approval Manual is not used with spec.dryRun: a dry run changes nothing; remove one of them".to_string(),
            ))
        } else {
            None
        };
        problems.extend(approval::approval_problems(
            spec.approval,
            spec.approval_timeout.as_deref(),
            refused,
        ));
        if problems.is_empty() {
            problems.extend(worker_problem(self, RESET_FIELDS));
        }
        problems
    }
}

/// The spec fields of a KafkaOffsetReset behind the fields of its task document.
const RESET_FIELDS: &[(&str, &str)] = &[
    ("groupsRegex", "spec.consumerGroupPattern"),
    ("strategy.offset", "spec.offset"),
    ("strategy.datetime", "spec.datetime"),
    ("strategy.duration", "spec.duration"),
    ("strategy.csv", "spec.offsetsCsv"),
    ("strategy.snapshotId", "spec.fromSnapshotId"),
    ("strategy.backupId", "spec.backupId"),
    ("snapshotId", "the safety snapshot id"),
    ("kafka", "spec.kafkaCluster"),
    ("storage.name", "spec.storage.configMap.name"),
    ("storage.namespace", "metadata.namespace"),
    ("storage.url", "spec.storage"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::*;
    use crate::validate::tests::assert_one_problem;

    fn problems(yaml: &str) -> Vec<Problem> {
        validate(&kor(yaml))
    }

    #[test]
    fn every_reset_sample_is_valid() {
        for yaml in [
            RESET_DRY_RUN,
            RESET_TO_DATETIME,
            RESET_SHIFT_BY,
            RESET_FROM_SNAPSHOT,
            RESET_FROM_FILE,
        ] {
            assert_eq!(problems(yaml), [], "{yaml}");
        }
    }

    #[test]
    fn what_the_schema_requires_of_a_reset_is_checked_again() {
        // Manifests the CRD's rules reject, as if stored before those rules existed.
        let cases = [
            (
                RESET_SHIFT_BY.replace("  shiftBy: -500\n", ""),
                REASON_MISSING_FIELD,
                "spec.shiftBy is required for resetStrategy shiftBy",
            ),
            (
                RESET_FROM_BACKUP.replace("  backupId: orders-snapshot-g1-r0-3c9a7e10\n", ""),
                REASON_MISSING_FIELD,
                "spec.backupId is required for resetStrategy fromBackup",
            ),
            (
                RESET_FROM_BACKUP.replace(
                    "    storageType: s3\n    s3:\n      bucket: kafka-backups\n      region: eu-west-1\n      prefix: orders\n",
                    "    storageType: configMap\n    configMap:\n      name: offset-snapshots\n",
                ),
                REASON_UNSUPPORTED_STORAGE,
                "resetStrategy fromBackup needs the backup's pvc, s3, azure or gcs location",
            ),
            (
                RESET_FROM_BACKUP.replace("  storage:\n    storageType: s3\n    s3:\n      bucket: kafka-backups\n      region: eu-west-1\n      prefix: orders\n", "  snapshotBeforeReset: false\n").replace("  snapshotId: orders-dr-before-groups\n", ""),
                REASON_MISSING_FIELD,
                "spec.storage is required for resetStrategy fromBackup",
            ),
            (
                RESET_SHIFT_BY.replace("  shiftBy: -500\n", "  shiftBy: -500\n  snapshotId: a..b\n"),
                REASON_INVALID_SNAPSHOT_ID,
                "spec.snapshotId 'a..b' is invalid",
            ),
            (
                RESET_SHIFT_BY.replace("  shiftBy: -500\n", "  shiftBy: -500\n  offset: 3\n"),
                REASON_UNUSED_FIELD,
                "spec.offset is only used with resetStrategy toOffset, not shiftBy",
            ),
            (
                RESET_FROM_FILE.replace("  consumerGroups:\n    - order-processor\n", ""),
                REASON_MISSING_FIELD,
                "spec.consumerGroups or spec.consumerGroupPattern must select at least one group",
            ),
            (
                RESET_SHIFT_BY.replace(
                    "  storage:\n    storageType: pvc\n    pvc:\n      claimName: offset-backups\n      path: resets\n",
                    "",
                ),
                REASON_MISSING_FIELD,
                "spec.storage is required for the safety snapshot",
            ),
            (
                RESET_FROM_SNAPSHOT
                    .replace(
                        "  storage:\n    storageType: configMap\n    configMap:\n      name: offset-snapshots\n",
                        "",
                    )
                    .replace("  resetStrategy:", "  snapshotBeforeReset: false\n  resetStrategy:"),
                REASON_MISSING_FIELD,
                "spec.storage is required for resetStrategy fromSnapshot",
            ),
            (
                RESET_FROM_SNAPSHOT.replace("before-change", "a..b"),
                REASON_INVALID_SNAPSHOT_ID,
                "spec.fromSnapshotId 'a..b' is invalid",
            ),
            (
                RESET_DRY_RUN.replace("  dryRun: true\n", "  dryRun: true\n  maxConcurrent: 0\n"),
                REASON_INVALID_FIELD,
                "spec.maxConcurrent is 0; use 1 to 1000",
            ),
            (
                RESET_DRY_RUN.replace("  dryRun: true\n", "  dryRun: true\n  maxRetries: 101\n"),
                REASON_INVALID_FIELD,
                "spec.maxRetries is 101; use 0 to 100",
            ),
            (
                RESET_TO_DATETIME.replace(
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
        let mut negative = kor(RESET_DRY_RUN);
        negative.spec.reset_strategy = ResetStrategy::ToOffset;
        negative.spec.offset = Some(-4);
        let problems = validate(&negative);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            problems[0].message,
            "spec.offset is -4; offsets are 0 or more"
        );
    }

    #[test]
    fn what_the_worker_refuses_is_named_by_its_spec_field() {
        let problems = problems(&RESET_DRY_RUN.replace("payments-.*", "payments-[a-"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].reason, REASON_INVALID_FIELD);
        assert!(
            problems[0]
                .message
                .starts_with("spec.consumerGroupPattern is not a valid regex"),
            "{}",
            problems[0].message
        );
        let spec_field = |f| spec_field(RESET_FIELDS, f);
        assert_eq!(spec_field("strategy.csv"), "spec.offsetsCsv");
        assert_eq!(spec_field("consumerGroups[2]"), "spec.consumerGroups[2]");
        assert_eq!(
            spec_field("kafka.bootstrapServers"),
            "spec.kafkaCluster.bootstrapServers"
        );
        assert_eq!(spec_field("snapshotIdentity"), "spec.snapshotIdentity");
    }

    #[test]
    fn a_reset_references_the_secrets_its_job_uses() {
        assert_eq!(
            referenced_secrets(&kor(RESET_TO_DATETIME)),
            [
                SecretReference {
                    field: "spec.kafkaCluster.tlsSecret",
                    name: "kafka-tls".into(),
                    keys: vec!["ca.crt".into()],
                },
                SecretReference {
                    field: "spec.kafkaCluster.saslSecret",
                    name: "kafka-credentials".into(),
                    keys: vec!["username".into(), "password".into()],
                },
                SecretReference {
                    field: "spec.storage.s3.credentialsSecret",
                    name: "s3-credentials".into(),
                    keys: vec![],
                },
            ]
        );
        // A dry run does not touch its storage, so its credentials are not needed.
        let dry_run = RESET_TO_DATETIME.replace(
            "  maxConcurrent: 20\n",
            "  maxConcurrent: 20\n  dryRun: true\n",
        );
        assert_eq!(
            referenced_secrets(&kor(&dry_run))
                .iter()
                .map(|r| r.field)
                .collect::<Vec<_>>(),
            [
                "spec.kafkaCluster.tlsSecret",
                "spec.kafkaCluster.saslSecret"
            ]
        );
    }
}

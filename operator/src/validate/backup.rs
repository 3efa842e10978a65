//! KafkaBackup: the schedule, mode, compression, parallelism, retention and what the backup
//! and cleanup tasks' own validation refuses.

use super::*;
use crate::crd::backup::DrillSpec;

/// The spec fields of a KafkaBackup behind the fields of its backup and cleanup tasks.
const BACKUP_FIELDS: &[(&str, &str)] = &[
    ("kafka", "spec.kafkaCluster"),
    ("storage.encryption", "spec.encryption"),
    ("storage.url", "spec.storage"),
    ("storage", "spec.storage"),
    ("chain", "the backup chain (<namespace>-<name>)"),
    ("shardCount", "spec.parallelism"),
    ("keepLast", "spec.retention.keepLast"),
    ("maxAge", "spec.retention.maxAge"),
    ("rateLimitRecordsPerSec", "spec.rateLimit.recordsPerSec"),
    ("rateLimitBytesPerSec", "spec.rateLimit.bytesPerSec"),
    ("segmentMaxBytes", "spec.segment.maxBytes"),
    ("segmentMaxIntervalMs", "spec.segment.maxIntervalMs"),
];

/// The spec fields behind the fields of a drill task.
const DRILL_FIELDS: &[(&str, &str)] = &[
    (
        "kafka",
        "spec.drill.kafkaCluster (default spec.kafkaCluster)",
    ),
    ("storage.url", "spec.storage"),
    ("storage.encryption", "spec.encryption"),
    ("storage", "spec.storage"),
    ("chain", "the backup chain (<namespace>-<name>)"),
    ("drillId", "the drill id"),
    ("topicPrefix", "spec.drill.topicPrefix"),
    (
        "maxConcurrentPartitions",
        "spec.drill.maxConcurrentPartitions",
    ),
];

/// What is wrong with `spec.drill` that the schema may not have refused (a manifest stored
/// before its rules existed) or cannot see (a schedule that never fires).
fn drill_problems(drill: &DrillSpec, problems: &mut Vec<Problem>) {
    // The drill cluster is checked like spec.kafkaCluster, and named as itself.
    if let Some(cluster) = &drill.kafka_cluster {
        let mut found = Vec::new();
        cluster_problems(cluster, &mut found);
        problems.extend(found.into_iter().map(|p| {
            Problem {
                message: p
                    .message
                    .replace("spec.kafkaCluster.", "spec.drill.kafkaCluster."),
                ..p
            }
        }));
    }
    match (&drill.schedule, drill.after_every_backups) {
        (Some(_), Some(_)) => problems.push(Problem::new(
            REASON_INVALID_FIELD,
            "spec.drill needs exactly one of schedule and afterEveryBackups, not both",
        )),
        (None, None) => problems.push(Problem::new(
            REASON_MISSING_FIELD,
            "spec.drill needs schedule (a cron schedule) or afterEveryBackups (a count of successful backups)",
        )),
        _ => {}
    }
    if let Some(schedule) = &drill.schedule {
        if let Err(why) = parse_schedule(schedule) {
            problems.push(Problem::new(
                REASON_INVALID_SCHEDULE,
                format!(
                    "spec.drill.schedule '{schedule}' is not a valid cron schedule: {why}; e.g. '0 4 * * 0' (Sundays at 04:00 UTC) or @weekly"
                ),
            ));
        }
    }
    if let Some(n) = drill.after_every_backups {
        problems.extend(range_problem("spec.drill.afterEveryBackups", n, 1..=10_000));
    }
    if let Some(n) = drill.max_concurrent_partitions {
        problems.extend(range_problem(
            "spec.drill.maxConcurrentPartitions",
            n,
            1..=10_000,
        ));
    }
    let rate = drill.rate_limit.clone().unwrap_or_default();
    for (field, value) in [
        ("spec.drill.maxRpoSeconds", drill.max_rpo_seconds),
        ("spec.drill.maxRtoSeconds", drill.max_rto_seconds),
        ("spec.drill.rateLimit.recordsPerSec", rate.records_per_sec),
        ("spec.drill.rateLimit.bytesPerSec", rate.bytes_per_sec),
    ] {
        if let Some(value) = value {
            problems.extend(range_problem(field, value, 1..=i64::MAX));
        }
    }
}

/// The macros a CronJob schedule may be instead of five fields.
const SCHEDULE_MACROS: &[&str] = &[
    "yearly", "annually", "monthly", "weekly", "daily", "midnight", "hourly",
];

/// Month names a schedule's month field may use.
const MONTH_NAMES: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// Day names a schedule's day-of-week field may use.
const DAY_NAMES: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Parses a CronJob schedule the way Kubernetes reads it: one of its macros (`@daily`, ...), or
/// five fields — minute, hour, day of month, month, day of week — with numbers, ranges, steps,
/// lists, `*`, `?` in the day fields, and month and day names in their own fields; and checks
/// that it fires at all (`0 0 30 2 *` never does). `Err` says what is wrong.
pub fn parse_schedule(schedule: &str) -> Result<(), String> {
    let schedule = schedule.trim();
    if let Some(name) = schedule.strip_prefix('@') {
        return if SCHEDULE_MACROS.contains(&name.to_ascii_lowercase().as_str()) {
            Ok(())
        } else {
            Err(format!(
                "'@{name}' is not a schedule macro (use @hourly, @daily, @weekly, @monthly or @yearly)"
            ))
        };
    }
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "it has {} fields; a schedule has 5: minute hour day-of-month month day-of-week (no seconds, no year)",
            fields.len()
        ));
    }
    const FIELD_NAMES: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];
    for (i, field) in fields.iter().enumerate() {
        let names = match i {
            3 => MONTH_NAMES,
            4 => DAY_NAMES,
            _ => &[],
        };
        let bad = field
            .split(|c: char| !c.is_ascii_alphabetic())
            .find(|w| !w.is_empty() && !names.contains(&w.to_ascii_uppercase().as_str()));
        if let Some(word) = bad {
            return Err(format!(
                "the {} field '{field}' has '{word}', which is not a number{}",
                FIELD_NAMES[i],
                match i {
                    3 => " or a month name (JAN-DEC)",
                    4 => " or a day name (SUN-SAT)",
                    _ => "",
                }
            ));
        }
    }
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    let cron = parser.parse(schedule).map_err(|e| e.to_string())?;
    // Any date would do: four years hold every day of the year, 29 February included.
    let start = k8s_openapi::jiff::civil::date(2001, 1, 1).at(0, 0, 0, 0);
    cron.find_next_occurrence(&start, true)
        .map(|_| ())
        .map_err(|_| "it never fires (no date matches its day, month and weekday)".to_string())
}

impl SpecChecks for KafkaBackup {
    fn kafka_cluster(&self) -> Option<&KafkaClusterSpec> {
        Some(&self.spec.kafka_cluster)
    }

    fn spec_problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let spec = &self.spec;
        cluster_problems(&spec.kafka_cluster, &mut problems);
        for (field, id) in [
            ("spec.backupId", &spec.backup_id),
            ("spec.chain", &spec.chain),
        ] {
            if let Some(id) = id {
                problems.extend(id_problem(REASON_INVALID_FIELD, field, id));
            }
        }
        if spec.backup_id.is_some() && spec.schedule.is_some() {
            problems.push(Problem::new(
                REASON_UNUSED_FIELD,
                "spec.backupId names one backup, and spec.schedule makes one per run: remove backupId (each scheduled backup is named after its Job) or schedule",
            ));
        }
        if spec.storage.storage_type.normalized() == StorageType::ConfigMap {
            problems.push(Problem::new(
                REASON_UNSUPPORTED_STORAGE,
                "spec.storage.storageType configMap is not supported for backups (a ConfigMap holds at most 1 MiB): use pvc, s3, azure or gcs",
            ));
        } else {
            storage_problems("spec.storage", &spec.storage, &mut problems);
        }
        encryption_problems(spec.encryption.as_ref(), None, &mut problems);

        let topics = &spec.topics;
        if topics.include.is_empty() {
            problems.push(Problem::new(
                REASON_MISSING_FIELD,
                "spec.topics.include must name at least one topic, glob (orders-*) or ~regex",
            ));
        }
        for (list, entries) in [("include", &topics.include), ("exclude", &topics.exclude)] {
            problems.extend(topic_pattern_problems(
                &format!("spec.topics.{list}"),
                list,
                entries,
            ));
        }

        if let Some(level) = spec.compression_level {
            if spec.compression != Compression::Zstd {
                problems.push(Problem::new(
                    REASON_UNUSED_FIELD,
                    format!(
                        "spec.compressionLevel is only used with compression zstd, not {}; remove it or set compression: zstd",
                        spec.compression.as_str()
                    ),
                ));
            }
            problems.extend(range_problem("spec.compressionLevel", level, 1..=22));
        }

        match &spec.schedule {
            Some(schedule) => {
                if let Err(why) = parse_schedule(schedule) {
                    problems.push(Problem::new(
                        REASON_INVALID_SCHEDULE,
                        format!(
                            "spec.schedule '{schedule}' is not a valid cron schedule: {why}; e.g. '0 2 * * *' (daily at 02:00) or @hourly"
                        ),
                    ));
                }
                if spec.mode == BackupMode::Continuous {
                    problems.push(Problem::new(
                        REASON_INVALID_FIELD,
                        "spec.schedule cannot be used with mode continuous: a continuous backup runs until it is stopped; remove schedule or use mode oneShot or incremental",
                    ));
                }
            }
            None if spec.suspend && spec.mode != BackupMode::Continuous => {
                problems.push(Problem::new(
                    REASON_UNUSED_FIELD,
                    "spec.suspend is only used with spec.schedule (it pauses the schedule) or mode continuous (it finishes the running backup)",
                ))
            }
            None => {}
        }

        problems.extend(range_problem(
            "spec.parallelism",
            spec.parallelism,
            1..=MAX_PARALLELISM,
        ));
        if let Some(n) = spec.max_concurrent_partitions {
            problems.extend(range_problem("spec.maxConcurrentPartitions", n, 1..=10_000));
        }
        let rate = spec.rate_limit.clone().unwrap_or_default();
        let segment = spec.segment.clone().unwrap_or_default();
        for (field, value) in [
            ("spec.rateLimit.recordsPerSec", rate.records_per_sec),
            ("spec.rateLimit.bytesPerSec", rate.bytes_per_sec),
            ("spec.segment.maxBytes", segment.max_bytes),
            ("spec.segment.maxIntervalMs", segment.max_interval_ms),
        ] {
            if let Some(value) = value {
                problems.extend(range_problem(field, value, 1..=i64::MAX));
            }
        }

        if let Some(retention) = &spec.retention {
            if retention.keep_last.is_none() && retention.max_age.is_none() {
                problems.push(Problem::new(
                    REASON_MISSING_FIELD,
                    "spec.retention needs keepLast, maxAge or both",
                ));
            }
            if let Some(n) = retention.keep_last {
                problems.extend(range_problem("spec.retention.keepLast", n, 1..=10_000));
            }
            if let Some(age) = &retention.max_age {
                // The worker's own parser, which the cleanup task runs.
                if let Err(why) = parse_age(age) {
                    problems.push(Problem::new(
                        REASON_INVALID_FIELD,
                        format!("spec.retention.{why}"),
                    ));
                }
            }
        }

        if let Some(drill) = &spec.drill {
            drill_problems(drill, &mut problems);
        }

        if problems.is_empty() {
            problems.extend(worker_problem(self, BACKUP_FIELDS));
        }
        if problems.is_empty() {
            let id = crate::build::drill::drill_id(self, 1).unwrap_or_else(|_| "1".into());
            if let Ok(Some(task)) = crate::build::drill::drill_task(self, &id) {
                problems.extend(task_problem(&task, DRILL_FIELDS));
            }
        }
        if problems.is_empty() {
            if let Ok(Some(task)) = crate::build::backup::cleanup_task(self) {
                problems.extend(task_problem(&task, BACKUP_FIELDS));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::*;
    use crate::validate::tests::assert_one_problem;

    fn problems(yaml: &str) -> Vec<Problem> {
        validate(&kb(yaml))
    }

    #[test]
    fn every_backup_sample_is_valid() {
        for yaml in [
            BACKUP_ONE_SHOT_PVC,
            BACKUP_DAILY_S3,
            BACKUP_HOURLY_INCREMENTAL_GCS,
            BACKUP_CONTINUOUS_AZURE,
        ] {
            assert_eq!(problems(yaml), [], "{yaml}");
        }
    }

    #[test]
    fn a_drill_is_checked_and_its_problems_name_the_drill_fields() {
        assert_eq!(problems(BACKUP_DRILL), []);
        let drill = "  drill:\n    schedule: \"0 4 * * 0\"\n";
        let cases = [
            (
                BACKUP_DRILL.replace(drill, "  drill:\n    schedule: \"0 4 31 2 *\"\n"),
                REASON_INVALID_SCHEDULE,
                "spec.drill.schedule '0 4 31 2 *' is not a valid cron schedule: it never fires",
            ),
            (
                BACKUP_DRILL.replace(
                    drill,
                    "  drill:\n    schedule: \"0 4 * * 0\"\n    afterEveryBackups: 3\n",
                ),
                REASON_INVALID_FIELD,
                "spec.drill needs exactly one of schedule and afterEveryBackups, not both",
            ),
            (
                BACKUP_DRILL.replace(drill, "  drill:\n"),
                REASON_MISSING_FIELD,
                "spec.drill needs schedule (a cron schedule) or afterEveryBackups",
            ),
            (
                BACKUP_DRILL.replace(drill, "  drill:\n    afterEveryBackups: 0\n"),
                REASON_INVALID_FIELD,
                "spec.drill.afterEveryBackups is 0; use 1 to 10000",
            ),
            (
                BACKUP_DRILL.replace("maxRpoSeconds: 28800", "maxRpoSeconds: -5"),
                REASON_INVALID_FIELD,
                "spec.drill.maxRpoSeconds is -5",
            ),
            (
                BACKUP_DRILL.replace("topicPrefix: \"drill-{id}-\"", "topicPrefix: \"{id}\""),
                REASON_INVALID_FIELD,
                "spec.drill.topicPrefix",
            ),
            (
                BACKUP_DRILL.replace(
                    "        - kafka-staging-0.kafka-staging:9093\n",
                    "        - kafka-staging-0.kafka-staging:9093\n      properties:\n        sasl.password: hunter2\n",
                ),
                REASON_SECRET_IN_PROPERTIES,
                "spec.drill.kafkaCluster.properties['sasl.password'] carries a secret",
            ),
        ];
        for (yaml, reason, message) in cases {
            assert_one_problem(&problems(&yaml), reason, message);
        }
    }

    #[test]
    fn schedules_are_read_as_a_cron_job_reads_them() {
        for ok in [
            "0 2 * * *",
            "*/15 * * * *",
            "0 0 1 JAN,jul *",
            "30 4 * * MON-FRI",
            "0 0 ? * SUN",
            "0 9-17/2 1,15 * *",
            "0 0 29 2 *",
            " 0 2  * * * ",
            "@daily",
            "@Hourly",
            "@midnight",
            "@annually",
        ] {
            assert_eq!(parse_schedule(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("61 * * * *", ""),
            ("0 24 * * *", ""),
            ("0 0 0 * *", ""),
            ("0 0 * 13 *", ""),
            ("0 0 * * 8", ""),
            ("* * * *", "it has 4 fields; a schedule has 5"),
            ("0 0 0 * * *", "it has 6 fields; a schedule has 5: minute hour day-of-month month day-of-week (no seconds, no year)"),
            ("@every 5m", "'@every 5m' is not a schedule macro"),
            ("@reboot", "'@reboot' is not a schedule macro"),
            ("0 0 L * *", "the day-of-month field 'L' has 'L', which is not a number"),
            ("0 0 * * 5L", "the day-of-week field '5L' has 'L', which is not a number or a day name (SUN-SAT)"),
            ("0 0 * JAN-FOO *", "the month field 'JAN-FOO' has 'FOO', which is not a number or a month name (JAN-DEC)"),
            ("0 0 * MON *", "has 'MON', which is not a number or a month name"),
            ("0 0 31 2 *", "it never fires"),
            ("0 0 30 FEB *", "it never fires"),
        ] {
            let err = parse_schedule(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn what_the_schema_requires_of_a_backup_is_checked_again() {
        // Manifests the CRD's rules reject, as if stored before those rules existed.
        let daily = BACKUP_DAILY_S3;
        let cases = [
            (
                daily.replace("spec:\n", "spec:\n  backupId: payments-once\n"),
                REASON_UNUSED_FIELD,
                "spec.backupId names one backup, and spec.schedule makes one per run",
            ),
            (
                BACKUP_ONE_SHOT_PVC.replace("spec:\n", "spec:\n  chain: a..b\n"),
                REASON_INVALID_FIELD,
                "spec.chain 'a..b' is invalid",
            ),
            (
                BACKUP_ONE_SHOT_PVC.replace(
                    "    storageType: pvc\n    pvc:\n      claimName: kafka-backups\n      path: orders\n",
                    "    storageType: configMap\n    configMap:\n      name: backups\n",
                ),
                REASON_UNSUPPORTED_STORAGE,
                "spec.storage.storageType configMap is not supported for backups",
            ),
            (
                daily.replace("\"0 2 * * *\"", "\"0 2 * *\""),
                REASON_INVALID_SCHEDULE,
                "spec.schedule '0 2 * *' is not a valid cron schedule: it has 4 fields",
            ),
            (
                daily.replace("\"0 2 * * *\"", "\"0 25 * * *\""),
                REASON_INVALID_SCHEDULE,
                "spec.schedule '0 25 * * *' is not a valid cron schedule",
            ),
            (
                BACKUP_CONTINUOUS_AZURE.replace("  mode: continuous\n", "  mode: continuous\n  schedule: \"@daily\"\n"),
                REASON_INVALID_FIELD,
                "spec.schedule cannot be used with mode continuous",
            ),
            (
                BACKUP_ONE_SHOT_PVC.replace("  mode: oneShot\n", "  mode: oneShot\n  suspend: true\n"),
                REASON_UNUSED_FIELD,
                "spec.suspend is only used with spec.schedule (it pauses the schedule) or mode continuous",
            ),
            (
                BACKUP_CONTINUOUS_AZURE.replace("  compression: lz4\n", "  compression: lz4\n  compressionLevel: 3\n"),
                REASON_UNUSED_FIELD,
                "spec.compressionLevel is only used with compression zstd, not lz4",
            ),
            (
                daily.replace("compressionLevel: 6", "compressionLevel: 23"),
                REASON_INVALID_FIELD,
                "spec.compressionLevel is 23; use 1 to 22",
            ),
            (
                BACKUP_HOURLY_INCREMENTAL_GCS.replace("parallelism: 3", "parallelism: 0"),
                REASON_INVALID_FIELD,
                "spec.parallelism is 0; use 1 to 100",
            ),
            (
                daily.replace("keepLast: 7", "keepLast: 0"),
                REASON_INVALID_FIELD,
                "spec.retention.keepLast is 0; use 1 to 10000",
            ),
            (
                BACKUP_HOURLY_INCREMENTAL_GCS.replace("maxAge: 14d", "maxAge: 2y"),
                REASON_INVALID_FIELD,
                "spec.retention.maxAge '2y' is not a duration like 30d, 12h, 90m or 2w",
            ),
            (
                BACKUP_HOURLY_INCREMENTAL_GCS.replace("maxAge: 14d", "maxAge: 0d"),
                REASON_INVALID_FIELD,
                "spec.retention.maxAge '0d' is not a duration",
            ),
            (
                daily.replace("    keepLast: 7\n", "    {}\n").replace("  retention:\n    {}\n", "  retention: {}\n"),
                REASON_MISSING_FIELD,
                "spec.retention needs keepLast, maxAge or both",
            ),
            (
                BACKUP_ONE_SHOT_PVC.replace(
                    "    include:\n      - orders\n      - \"orders-*\"\n",
                    "    include: []\n",
                ),
                REASON_MISSING_FIELD,
                "spec.topics.include must name at least one topic",
            ),
            (
                BACKUP_ONE_SHOT_PVC.replace("      - \"*-retry\"\n", "      - \" \"\n"),
                REASON_INVALID_FIELD,
                "spec.topics.exclude[0] is invalid: exclude pattern ' ' is empty",
            ),
            (
                BACKUP_HOURLY_INCREMENTAL_GCS.replace("~events-(eu|us)-.*", "~events-(eu"),
                REASON_INVALID_FIELD,
                "spec.topics.include[0] is invalid: include pattern '~events-(eu' is not a valid regex: regex parse error:",
            ),
            (
                BACKUP_ONE_SHOT_PVC.replace("\"orders-*\"", "\"orders-[ab\""),
                REASON_INVALID_FIELD,
                "spec.topics.include[1] is invalid: include pattern 'orders-[ab' is not a valid glob",
            ),
            (
                BACKUP_CONTINUOUS_AZURE.replace("bytesPerSec: 10485760", "bytesPerSec: 0"),
                REASON_INVALID_FIELD,
                "spec.rateLimit.bytesPerSec is 0",
            ),
            (
                BACKUP_HOURLY_INCREMENTAL_GCS.replace("maxConcurrentPartitions: 8", "maxConcurrentPartitions: 0"),
                REASON_INVALID_FIELD,
                "spec.maxConcurrentPartitions is 0; use 1 to 10000",
            ),
            (
                daily.replace(
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
    fn a_backup_references_the_secrets_its_jobs_use() {
        assert_eq!(
            referenced_secrets(&kb(BACKUP_DAILY_S3))
                .iter()
                .map(|r| (r.field, r.name.as_str()))
                .collect::<Vec<_>>(),
            [
                ("spec.kafkaCluster.tlsSecret", "kafka-tls"),
                ("spec.kafkaCluster.saslSecret", "kafka-credentials"),
                ("spec.storage.s3.credentialsSecret", "s3-credentials"),
            ]
        );
        assert_eq!(referenced_secrets(&kb(BACKUP_ONE_SHOT_PVC)), []);
        assert_eq!(
            referenced_secrets(&kb(BACKUP_CONTINUOUS_AZURE)),
            [SecretReference {
                field: "spec.storage.azure.credentialsSecret",
                name: "azure-storage".into(),
                keys: vec![],
            }]
        );
    }

    #[test]
    fn task_fields_are_named_by_their_backup_spec_field() {
        assert_eq!(spec_field(BACKUP_FIELDS, "shardCount"), "spec.parallelism");
        assert_eq!(
            spec_field(BACKUP_FIELDS, "keepLast"),
            "spec.retention.keepLast"
        );
        assert_eq!(spec_field(BACKUP_FIELDS, "storage.url"), "spec.storage");
        assert_eq!(
            spec_field(BACKUP_FIELDS, "topics.include"),
            "spec.topics.include"
        );
        assert_eq!(
            spec_field(BACKUP_FIELDS, "kafka.securityProtocol"),
            "spec.kafkaCluster.securityProtocol"
        );
    }
}

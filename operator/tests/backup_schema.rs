//! KafkaBackup manifests against the generated CRD, checked the way an API server checks them
//! (structure with strict field validation, CEL rules, deserialization; see `common/mod.rs`):
//! every mode, compression, schedule form and retention rule is accepted, defaults are the
//! worker's, and malformed manifests are rejected, each for its own stated reason. (The samples
//! in `config/samples/` are checked by `schema.rs`.)

mod common;

use common::{assert_rejected, case, check_cel_rules, document, edit, Case, Layer};
use serde_json::json;
use tidemark_operator::crd::backup::{BackupMode, Compression};
use tidemark_operator::crd::status::Phase;
use tidemark_operator::crd::{KafkaBackup, KafkaBackupStatus};

/// Checks KafkaBackup manifests.
type Checker = common::Checker<KafkaBackup>;

/// A minimal backup: one topic, once, to S3.
const BASE: &str = r#"
apiVersion: tidemark.dev/v1alpha1
kind: KafkaBackup
metadata:
  name: orders
spec:
  kafkaCluster:
    bootstrapServers:
      - kafka:9092
  topics:
    include:
      - orders
  storage:
    storageType: s3
    s3:
      bucket: kafka-backups
"#;

/// `BASE` with `lines` added to the spec.
fn with(lines: &str) -> String {
    edit(BASE, "  topics:\n", &format!("{lines}  topics:\n"))
}

fn accepted(yaml: &str) -> KafkaBackup {
    Checker::new()
        .check(&document(yaml))
        .unwrap_or_else(|r| panic!("refused: {r:#?}\n{yaml}"))
}

/// The operator's checks of `cr` as the API server would store it.
fn operator_problems(mut cr: KafkaBackup) -> Vec<tidemark_operator::validate::Problem> {
    cr.metadata.namespace = Some("kafka-backup".into());
    cr.metadata.uid = Some("3c9a7e10-2b4d-4f6a-8e1c-5d7b9a0f2e64".into());
    tidemark_operator::validate::validate(&cr)
}

// ---------------------------------------------------------------------------------------------
// Accepted.

#[test]
fn defaults_are_those_of_the_worker() {
    let cr = accepted(BASE);
    let spec = &cr.spec;
    assert_eq!(spec.mode, BackupMode::OneShot);
    assert_eq!(spec.compression, Compression::Zstd);
    assert_eq!(spec.parallelism, 1);
    assert!(spec.capture_offsets);
    assert!(!spec.suspend);
    assert_eq!(spec.schedule, None);
    let worker: tidemark_task::BackupTask = serde_json::from_value(json!({
        "kafka": {"bootstrapServers": ["k:9092"], "securityProtocol": "PLAINTEXT"},
        "storage": {"type": "location", "url": "/b"},
        "topics": {"include": ["orders"]}
    }))
    .expect("a minimal backup task");
    assert_eq!(worker.mode, tidemark_task::BackupMode::OneShot);
    assert_eq!(worker.compression, tidemark_task::Compression::Zstd);
    assert_eq!(worker.shard_count, 1);
    assert!(worker.capture_offsets);
    // The API server fills them in from the schema too.
    let schema = Checker::new().schema().clone();
    let props = &schema["properties"]["spec"]["properties"];
    assert_eq!(props["mode"]["default"], json!("oneShot"));
    assert_eq!(props["compression"]["default"], json!("zstd"));
    assert_eq!(props["parallelism"]["default"], json!(1));
    assert_eq!(props["captureOffsets"]["default"], json!(true));
    assert_eq!(props["suspend"]["default"], json!(false));
}

#[test]
fn every_mode_compression_and_bound_is_accepted() {
    for (lines, mode, compression) in [
        ("", BackupMode::OneShot, Compression::Zstd),
        (
            "  mode: continuous\n",
            BackupMode::Continuous,
            Compression::Zstd,
        ),
        (
            "  mode: continuous\n  suspend: true\n",
            BackupMode::Continuous,
            Compression::Zstd,
        ),
        (
            "  mode: incremental\n  compression: lz4\n",
            BackupMode::Incremental,
            Compression::Lz4,
        ),
        (
            "  compression: none\n",
            BackupMode::OneShot,
            Compression::None,
        ),
        (
            "  compression: zstd\n  compressionLevel: 22\n",
            BackupMode::OneShot,
            Compression::Zstd,
        ),
        (
            "  compressionLevel: 1\n",
            BackupMode::OneShot,
            Compression::Zstd,
        ),
    ] {
        let cr = accepted(&with(lines));
        assert_eq!(
            (cr.spec.mode, cr.spec.compression),
            (mode, compression),
            "{lines}"
        );
    }
    let full = with(
        "  parallelism: 100\n  maxConcurrentPartitions: 64\n  captureOffsets: false\n  rateLimit:\n    recordsPerSec: 50000\n    bytesPerSec: 1048576\n  segment:\n    maxBytes: 268435456\n    maxIntervalMs: 600000\n  job:\n    backoffLimit: 6\n    ttlSecondsAfterFinished: 600\n  resources:\n    limits:\n      memory: 2Gi\n",
    );
    let cr = accepted(&full);
    assert_eq!(cr.spec.parallelism, 100);
    assert_eq!(
        cr.spec.segment.and_then(|s| s.max_interval_ms),
        Some(600_000)
    );
    let topics = edit(
        BASE,
        "      - orders\n",
        "      - orders\n      - \"payments-*\"\n      - \"~audit-(eu|us)\"\n      - __consumer_offsets\n    exclude:\n      - \"*-changelog\"\n      - \"~.*-test$\"\n",
    );
    let cr = accepted(&topics);
    assert_eq!(cr.spec.topics.include.len(), 4);
    assert_eq!(cr.spec.topics.exclude, ["*-changelog", "~.*-test$"]);
}

#[test]
fn schedules_in_five_fields_or_a_macro_are_accepted() {
    for schedule in [
        "0 2 * * *",
        "*/15 * * * *",
        "0 9-17/2 1,15 * *",
        "30 4 * JAN,JUL MON-FRI",
        "0 0 ? * sun",
        "@hourly",
        "@daily",
        "@weekly",
        "@monthly",
        "@yearly",
        "@annually",
        "@midnight",
    ] {
        let yaml = with(&format!("  schedule: \"{schedule}\"\n  suspend: true\n"));
        let cr = accepted(&yaml);
        assert_eq!(cr.spec.schedule.as_deref(), Some(schedule));
        assert_eq!(operator_problems(cr), [], "{schedule}");
    }
}

#[test]
fn retention_takes_a_count_an_age_or_both() {
    for (lines, keep, age) in [
        ("    keepLast: 7\n", Some(7), None),
        ("    maxAge: 30d\n", None, Some("30d")),
        ("    keepLast: 1\n    maxAge: 12h\n", Some(1), Some("12h")),
        ("    maxAge: 90m\n", None, Some("90m")),
        ("    maxAge: 2w\n", None, Some("2w")),
    ] {
        let cr = accepted(&with(&format!("  retention:\n{lines}")));
        let retention = cr.spec.retention.clone().expect("retention");
        assert_eq!(
            (retention.keep_last, retention.max_age.as_deref()),
            (keep, age)
        );
        assert_eq!(operator_problems(cr), []);
    }
}

#[test]
fn a_drill_on_a_schedule_or_after_every_n_backups_is_accepted_with_the_workers_defaults() {
    let cr = accepted(&with("  drill:\n    schedule: \"@weekly\"\n"));
    let drill = cr.spec.drill.clone().expect("a drill");
    assert_eq!(drill.schedule.as_deref(), Some("@weekly"));
    assert!(drill.check_offsets);
    assert!(!drill.suspend);
    assert_eq!(drill.topic_prefix, None, "the worker's drill-{{id}}-");
    assert_eq!(operator_problems(cr), []);

    let cr = accepted(&with(
        "  drill:\n    afterEveryBackups: 5\n    topicPrefix: dr.{id}_\n    checkOffsets: false\n    maxRpoSeconds: 3600\n    maxRtoSeconds: 600\n    maxConcurrentPartitions: 2\n    rateLimit:\n      recordsPerSec: 1000\n    resources:\n      limits:\n        memory: 256Mi\n    job:\n      activeDeadlineSeconds: 3600\n    suspend: true\n    kafkaCluster:\n      bootstrapServers:\n        - staging:9092\n",
    ));
    let drill = cr.spec.drill.clone().expect("a drill");
    assert_eq!(drill.after_every_backups, Some(5));
    assert_eq!(drill.topic_prefix.as_deref(), Some("dr.{id}_"));
    assert!(!drill.check_offsets && drill.suspend);
    assert_eq!(
        drill.kafka_cluster.map(|k| k.bootstrap_servers),
        Some(vec!["staging:9092".to_string()])
    );
    assert_eq!(operator_problems(cr), []);

    let schema = Checker::new().schema().clone();
    let props = &schema["properties"]["spec"]["properties"]["drill"]["properties"];
    assert_eq!(props["checkOffsets"]["default"], json!(true));
    assert_eq!(props["suspend"]["default"], json!(false));
}

#[test]
fn a_status_written_by_the_operator_matches_the_status_schema() {
    let mut doc = document(&with("  schedule: \"@daily\"\n"));
    doc["status"] = json!({
        "phase": "Scheduled", "observedGeneration": 1, "run": "g1-r0",
        "jobName": "orders-1a2b3c4d-28886400", "startTime": "2024-12-01T00:00:02Z",
        "completionTime": "2024-12-01T00:12:00Z", "cronJobName": "orders-1a2b3c4d",
        "lastScheduleTime": "2024-12-01T00:00:00Z", "lastBackupId": "orders-1a2b3c4d-28886400",
        "lastSuccessfulTime": "2024-12-01T00:12:00Z",
        "lastRun": {"jobName": "orders-1a2b3c4d-28886400", "phase": "Completed",
                    "reason": "BackupCompleted", "message": "backup complete",
                    "completionTime": "2024-12-01T00:12:00Z"},
        "topics": 1, "partitions": 12, "records": 1000000, "bytes": 250000000,
        "storedBytes": 61000000, "segments": 24, "groupsCaptured": 4,
        "shards": {"total": 1, "completed": 1, "failed": 0},
        "cleanup": {"backupId": "orders-1a2b3c4d-28886400", "jobName": "orders-cleanup-0a1b2c3d"},
        "drill": {"jobName": "orders-kb-drill-3-1a2b3c4d", "drillId": "3-1a2b3c4d",
                  "phase": "Completed", "startTime": "2024-12-01T04:00:00Z", "started": 3,
                  "since": "2024-11-01T10:00:00Z", "nextScheduleTime": "2024-12-08T04:00:00Z",
                  "backupsSinceDrill": 1, "countedBackup": "orders-1a2b3c4d-28886400"},
        "lastDrill": {"time": "2024-12-01T04:05:00Z", "jobName": "orders-kb-drill-3-1a2b3c4d",
                      "drillId": "3-1a2b3c4d", "backupId": "orders-1a2b3c4d-28885000",
                      "records": 1000000, "bytes": 250000000, "partitions": 12,
                      "verified": false, "rtoSeconds": 181.25, "rpoSeconds": 14400.5,
                      "throughput": 1379310, "failures": ["orders-3: 2 records differ"],
                      "cleanedUp": true, "reason": "DrillFailed", "message": "drill failed"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "BackupCompleted",
                        "message": "backup complete", "lastTransitionTime": "2024-12-01T00:12:00Z",
                        "observedGeneration": 1},
                       {"type": "DrillVerified", "status": "False", "reason": "DrillFailed",
                        "message": "drill failed", "lastTransitionTime": "2024-12-01T04:05:00Z",
                        "observedGeneration": 1}]
    });
    let cr = Checker::new()
        .check(&doc)
        .unwrap_or_else(|r| panic!("refused: {r:#?}"));
    let status: KafkaBackupStatus = cr.status.expect("status");
    assert_eq!(status.common.phase, Some(Phase::Scheduled));
    assert_eq!(status.records, Some(1_000_000));
    assert_eq!(status.shards.map(|s| s.completed), Some(1));
    assert_eq!(status.last_run.map(|r| r.phase), Some(Phase::Completed));
    let last = status.last_drill.expect("lastDrill");
    assert_eq!(
        (last.rto_seconds, last.rpo_seconds),
        (Some(181.25), Some(14400.5))
    );
    assert_eq!(status.drill.map(|d| d.started), Some(3));
    for phase in ["Pending", "Running", "Completed", "Failed", "Suspended"] {
        doc["status"]["phase"] = json!(phase);
        Checker::new()
            .check(&doc)
            .unwrap_or_else(|r| panic!("{phase} refused: {r:#?}"));
    }
}

#[test]
fn printer_columns_show_mode_schedule_phase_last_backup_and_records() {
    let crd = tidemark_operator::crd::all()
        .into_iter()
        .find(|c| c.spec.names.kind == "KafkaBackup")
        .expect("the CRD");
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("kafkabackups.tidemark.dev")
    );
    assert_eq!(crd.spec.names.short_names, Some(vec!["kb".to_string()]));
    assert_eq!(
        crd.spec.names.categories,
        Some(vec!["tidemark".to_string()])
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version
        .subresources
        .as_ref()
        .is_some_and(|s| s.status.is_some()));
    let columns: Vec<(String, String, String)> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.clone(), c.type_.clone(), c.json_path.clone()))
        .collect();
    let expected = [
        ("Mode", "string", ".spec.mode"),
        ("Schedule", "string", ".spec.schedule"),
        ("Phase", "string", ".status.phase"),
        ("Last Backup", "string", ".status.lastBackupId"),
        ("Records", "integer", ".status.records"),
        (
            "Drill",
            "string",
            r#".status.conditions[?(@.type=="DrillVerified")].status"#,
        ),
        ("Key", "string", ".status.encryptionKeyId"),
        (
            "Ready",
            "string",
            r#".status.conditions[?(@.type=="Ready")].status"#,
        ),
        (
            "Reason",
            "string",
            r#".status.conditions[?(@.type=="Ready")].reason"#,
        ),
        ("Age", "date", ".metadata.creationTimestamp"),
    ];
    assert_eq!(
        columns,
        expected.map(|(n, t, p)| (n.to_string(), t.to_string(), p.to_string()))
    );
}

#[test]
fn cel_rules_compile_and_fit_the_cost_budget() {
    let count = check_cel_rules(Checker::new().schema());
    assert!(count >= 15, "only {count} rules found");
}

// ---------------------------------------------------------------------------------------------
// Rejected.

fn malformed() -> Vec<Case> {
    use Layer::{Cel, Structure};
    let schedule = |s: &str| with(&format!("  schedule: \"{s}\"\n"));
    let configmap = edit(
        BASE,
        "    storageType: s3\n    s3:\n      bucket: kafka-backups\n",
        "    storageType: configMap\n    configMap:\n      name: backups\n",
    );
    vec![
        case(
            "a fixed backupId on a schedule",
            with("  schedule: \"0 2 * * *\"\n  backupId: nightly\n"),
            Cel,
            "backupId names one backup, and a schedule makes one per run",
        ),
        case(
            "a chain with a slash",
            with("  chain: a/b\n"),
            Structure,
            "/spec/chain",
        ),
        case(
            "a backupId with '..'",
            with("  backupId: a..b\n"),
            Cel,
            "backupId must not contain '..'",
        ),
        case(
            "no topics",
            edit(BASE, "  topics:\n    include:\n      - orders\n", ""),
            Structure,
            "/spec: \"topics\" is a required property",
        ),
        case(
            "topics without include",
            edit(
                BASE,
                "    include:\n      - orders\n",
                "    exclude:\n      - orders\n",
            ),
            Structure,
            "/spec/topics: \"include\" is a required property",
        ),
        case(
            "an empty include list",
            edit(BASE, "    include:\n      - orders\n", "    include: []\n"),
            Structure,
            "/spec/topics/include: [] has less than 1 item",
        ),
        case(
            "an empty topic name",
            edit(BASE, "      - orders\n", "      - \"\"\n"),
            Structure,
            "/spec/topics/include/0: \"\" is shorter than 1 character",
        ),
        case(
            "a topic pattern with a space",
            edit(BASE, "      - orders\n", "      - \"my orders\"\n"),
            Structure,
            "/spec/topics/include/0: \"my orders\" does not match",
        ),
        case(
            "configMap storage",
            configmap.clone(),
            Cel,
            "storage.storageType configMap is not supported for backups",
        ),
        case(
            "configmap storage (the alias)",
            configmap.replace("storageType: configMap", "storageType: configmap"),
            Cel,
            "storage.storageType configMap is not supported for backups",
        ),
        case(
            "compressionLevel with lz4",
            with("  compression: lz4\n  compressionLevel: 3\n"),
            Cel,
            "compressionLevel is only used with compression zstd",
        ),
        case(
            "compressionLevel with none",
            with("  compression: none\n  compressionLevel: 3\n"),
            Cel,
            "compressionLevel is only used with compression zstd",
        ),
        case(
            "compressionLevel 0",
            with("  compressionLevel: 0\n"),
            Structure,
            "/spec/compressionLevel: 0 is less than the minimum of 1",
        ),
        case(
            "compressionLevel 23",
            with("  compressionLevel: 23\n"),
            Structure,
            "/spec/compressionLevel: 23 is greater than the maximum of 22",
        ),
        case(
            "a schedule of four fields",
            schedule("0 2 * *"),
            Structure,
            "/spec/schedule: \"0 2 * *\" does not match",
        ),
        case(
            "a schedule with seconds",
            schedule("0 0 2 * * *"),
            Structure,
            "/spec/schedule: \"0 0 2 * * *\" does not match",
        ),
        case(
            "a schedule in words",
            schedule("every day at 2"),
            Structure,
            "/spec/schedule: \"every day at 2\" does not match",
        ),
        case(
            "@every is not a CronJob macro",
            schedule("@every 1h"),
            Structure,
            "/spec/schedule: \"@every 1h\" does not match",
        ),
        case(
            "Quartz's L in the day of month",
            schedule("0 0 L * *"),
            Structure,
            "/spec/schedule: \"0 0 L * *\" does not match",
        ),
        case(
            "a time zone inside the schedule",
            schedule("TZ=Europe/Paris 0 2 * * *"),
            Structure,
            "does not match",
        ),
        case(
            "an empty schedule",
            schedule(""),
            Structure,
            "/spec/schedule: \"\" is shorter than 1 character",
        ),
        case(
            "a schedule for a continuous backup",
            with("  mode: continuous\n  schedule: \"@hourly\"\n"),
            Cel,
            "a continuous backup runs until it is stopped and cannot have a schedule",
        ),
        case(
            "suspend without a schedule",
            with("  suspend: true\n"),
            Cel,
            "suspend pauses a schedule or finishes a continuous backup, and is only used with schedule or mode continuous",
        ),
        case(
            "parallelism 0",
            with("  parallelism: 0\n"),
            Structure,
            "/spec/parallelism: 0 is less than the minimum of 1",
        ),
        case(
            "parallelism 101",
            with("  parallelism: 101\n"),
            Structure,
            "/spec/parallelism: 101 is greater than the maximum of 100",
        ),
        case(
            "keepLast 0",
            with("  retention:\n    keepLast: 0\n"),
            Structure,
            "/spec/retention/keepLast: 0 is less than the minimum of 1",
        ),
        case(
            "maxAge in years",
            with("  retention:\n    maxAge: 2y\n"),
            Structure,
            "/spec/retention/maxAge: \"2y\" does not match",
        ),
        case(
            "maxAge in words",
            with("  retention:\n    maxAge: 30 days\n"),
            Structure,
            "/spec/retention/maxAge: \"30 days\" does not match",
        ),
        case(
            "maxAge zero",
            with("  retention:\n    maxAge: 0d\n"),
            Structure,
            "/spec/retention/maxAge: \"0d\" does not match",
        ),
        case(
            "maxAge in Go syntax",
            with("  retention:\n    maxAge: 720h0m\n"),
            Structure,
            "/spec/retention/maxAge: \"720h0m\" does not match",
        ),
        case(
            "retention without a rule",
            with("  retention: {}\n"),
            Cel,
            "retention needs keepLast, maxAge or both",
        ),
        case(
            "unknown mode",
            with("  mode: differential\n"),
            Structure,
            "/spec/mode: \"differential\" is not one of",
        ),
        case(
            "unknown compression",
            with("  compression: gzip\n"),
            Structure,
            "/spec/compression: \"gzip\" is not one of",
        ),
        case(
            "a rate limit of 0 records per second",
            with("  rateLimit:\n    recordsPerSec: 0\n"),
            Structure,
            "/spec/rateLimit/recordsPerSec: 0 is less than the minimum of 1",
        ),
        case(
            "a negative segment size",
            with("  segment:\n    maxBytes: -1\n"),
            Structure,
            "/spec/segment/maxBytes: -1 is less than the minimum of 1",
        ),
        case(
            "maxConcurrentPartitions 0",
            with("  maxConcurrentPartitions: 0\n"),
            Structure,
            "/spec/maxConcurrentPartitions: 0 is less than the minimum of 1",
        ),
        case(
            "no storage",
            edit(
                BASE,
                "  storage:\n    storageType: s3\n    s3:\n      bucket: kafka-backups\n",
                "",
            ),
            Structure,
            "/spec: \"storage\" is a required property",
        ),
        case(
            "no kafkaCluster",
            edit(
                BASE,
                "  kafkaCluster:\n    bootstrapServers:\n      - kafka:9092\n",
                "",
            ),
            Structure,
            "/spec: \"kafkaCluster\" is a required property",
        ),
        case(
            "storageType s3 without an s3 block",
            edit(BASE, "    s3:\n      bucket: kafka-backups\n", ""),
            Cel,
            "storage.s3 is required when storageType is s3",
        ),
        case(
            "misspelled field (strict field validation)",
            with("  compresion: lz4\n"),
            Structure,
            "Additional properties are not allowed ('compresion' was unexpected)",
        ),
        case(
            "a drill with both a schedule and afterEveryBackups",
            with("  drill:\n    schedule: \"@daily\"\n    afterEveryBackups: 2\n"),
            Cel,
            "drill needs exactly one of schedule (a cron schedule) and afterEveryBackups",
        ),
        case(
            "a drill with neither a schedule nor afterEveryBackups",
            with("  drill:\n    maxRpoSeconds: 60\n"),
            Cel,
            "drill needs exactly one of schedule (a cron schedule) and afterEveryBackups",
        ),
        case(
            "a drill after every 0 backups",
            with("  drill:\n    afterEveryBackups: 0\n"),
            Structure,
            "/spec/drill/afterEveryBackups",
        ),
        case(
            "a drill schedule in words",
            with("  drill:\n    schedule: every sunday\n"),
            Structure,
            "/spec/drill/schedule",
        ),
        case(
            "a drill topic prefix with a slash",
            with("  drill:\n    afterEveryBackups: 1\n    topicPrefix: drill/{id}\n"),
            Structure,
            "/spec/drill/topicPrefix",
        ),
        case(
            "a drill maxRpoSeconds of 0",
            with("  drill:\n    afterEveryBackups: 1\n    maxRpoSeconds: 0\n"),
            Structure,
            "/spec/drill/maxRpoSeconds",
        ),
        case(
            "a drill cluster without bootstrap servers",
            with("  drill:\n    afterEveryBackups: 1\n    kafkaCluster:\n      securityProtocol: SSL\n"),
            Structure,
            "/spec/drill/kafkaCluster: \"bootstrapServers\" is a required property",
        ),
        case(
            "a misspelled drill field (strict field validation)",
            with("  drill:\n    afterEveryBackups: 1\n    maxRpo: 60\n"),
            Structure,
            "Additional properties are not allowed ('maxRpo' was unexpected)",
        ),
        case(
            "parallelism as a string",
            with("  parallelism: \"3\"\n"),
            Structure,
            "/spec/parallelism: \"3\" is not of type",
        ),
    ]
}

#[test]
fn malformed_manifests_are_rejected_for_the_stated_reason() {
    let cases = malformed();
    assert!(cases.len() >= 15, "{}", cases.len());
    assert_rejected(&Checker::new(), &cases);
}

#[test]
fn what_the_schema_cannot_see_is_stalled_by_the_operator() {
    // Five fields of the right characters, but not a schedule a CronJob runs.
    for (schedule, why) in [
        (
            "61 * * * *",
            "spec.schedule '61 * * * *' is not a valid cron schedule",
        ),
        (
            "0 0 31 2 *",
            "spec.schedule '0 0 31 2 *' is not a valid cron schedule: it never fires",
        ),
        (
            "0 0 * * FOO",
            "has 'FOO', which is not a number or a day name (SUN-SAT)",
        ),
    ] {
        let cr = accepted(&with(&format!("  schedule: \"{schedule}\"\n")));
        let problems = operator_problems(cr);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].reason, "InvalidSchedule");
        assert!(problems[0].message.contains(why), "{}", problems[0].message);
    }

    // A ~regex that does not compile.
    let cr = accepted(&edit(BASE, "      - orders\n", "      - \"~orders-(\"\n"));
    let problems = operator_problems(cr);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].reason, "InvalidField");
    assert!(
        problems[0].message.starts_with(
            "spec.topics.include[0] is invalid: include pattern '~orders-(' is not a valid regex"
        ),
        "{}",
        problems[0].message
    );

    // Secrets in properties, as for every kind.
    let cr = accepted(&edit(
        BASE,
        "      - kafka:9092\n",
        "      - kafka:9092\n    properties:\n      sasl.password: hunter2\n",
    ));
    let problems = operator_problems(cr);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].reason, "SecretInProperties");
}

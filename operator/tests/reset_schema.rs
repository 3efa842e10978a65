//! KafkaOffsetReset manifests against the generated CRD, checked the way an API server checks
//! them (structure with strict field validation, CEL rules, deserialization; see
//! `common/mod.rs`): every strategy with its parameter is accepted, defaults are filled in, and
//! malformed manifests are rejected, each for its own stated reason. (The samples in
//! `config/samples/` are checked by `schema.rs`.)

mod common;

use common::{assert_rejected, case, check_cel_rules, document, edit, Case, Layer};
use serde_json::json;
use tidemark_operator::crd::reset::ResetStrategy;
use tidemark_operator::crd::{KafkaOffsetReset, KafkaOffsetResetStatus};

/// Checks KafkaOffsetReset manifests.
type Checker = common::Checker<KafkaOffsetReset>;

/// A minimal reset: toEarliest of one group, snapshot into a ConfigMap.
const BASE: &str = r#"
apiVersion: tidemark.dev/v1alpha1
kind: KafkaOffsetReset
metadata:
  name: rewind
spec:
  kafkaCluster:
    bootstrapServers:
      - kafka:9092
  consumerGroups:
    - order-processor
  topics:
    - orders
  resetStrategy: toEarliest
  storage:
    storageType: configMap
    configMap:
      name: offset-snapshots
"#;

/// `BASE` with `resetStrategy: <strategy>` and the given parameter lines.
fn with_strategy(strategy: &str, parameter: &str) -> String {
    edit(
        BASE,
        "  resetStrategy: toEarliest\n",
        &format!("  resetStrategy: {strategy}\n{parameter}"),
    )
}

fn accepted(yaml: &str) -> KafkaOffsetReset {
    Checker::new()
        .check(&document(yaml))
        .unwrap_or_else(|r| panic!("refused: {r:#?}\n{yaml}"))
}

// ---------------------------------------------------------------------------------------------
// Accepted.

#[test]
fn every_strategy_with_its_parameter_is_accepted() {
    let cases = [
        (BASE.to_string(), ResetStrategy::ToEarliest),
        (with_strategy("toLatest", ""), ResetStrategy::ToLatest),
        (with_strategy("toCurrent", ""), ResetStrategy::ToCurrent),
        (
            with_strategy("toOffset", "  offset: 0\n"),
            ResetStrategy::ToOffset,
        ),
        (
            with_strategy("shiftBy", "  shiftBy: -100\n"),
            ResetStrategy::ShiftBy,
        ),
        (
            with_strategy("toDatetime", "  datetime: \"2024-12-01T10:00:00.000\"\n"),
            ResetStrategy::ToDatetime,
        ),
        (
            with_strategy("toDatetime", "  datetime: \"2024-12-01T10:00:00.000Z\"\n"),
            ResetStrategy::ToDatetime,
        ),
        (
            with_strategy(
                "toDatetime",
                "  datetime: \"2024-02-29T23:59:59.999-05:30\"\n",
            ),
            ResetStrategy::ToDatetime,
        ),
        (
            with_strategy("byDuration", "  duration: P1DT12H\n"),
            ResetStrategy::ByDuration,
        ),
        (
            with_strategy("byDuration", "  duration: PT0.5S\n"),
            ResetStrategy::ByDuration,
        ),
        (
            with_strategy("byDuration", "  duration: P7D\n"),
            ResetStrategy::ByDuration,
        ),
        (
            with_strategy(
                "fromFile",
                "  offsetsCsv: |\n    order-processor,orders,0,15\n",
            ),
            ResetStrategy::FromFile,
        ),
        (
            with_strategy("fromSnapshot", "  fromSnapshotId: before-change.v2_1\n"),
            ResetStrategy::FromSnapshot,
        ),
        (
            edit(
                &with_strategy(
                    "fromBackup",
                    "  backupId: orders-g1-r0-6f1c2a9e\n  snapshotId: before-replay\n",
                ),
                "    storageType: configMap\n    configMap:\n      name: offset-snapshots\n",
                "    storageType: s3\n    s3:\n      bucket: kafka-backups\n",
            ),
            ResetStrategy::FromBackup,
        ),
    ];
    for (yaml, strategy) in cases {
        assert_eq!(accepted(&yaml).spec.reset_strategy, strategy, "{yaml}");
    }
}

#[test]
fn defaults_are_those_of_the_worker() {
    let cr = accepted(BASE);
    let spec = &cr.spec;
    assert!(!spec.dry_run);
    assert!(spec.snapshot_before_reset);
    assert_eq!(spec.max_concurrent, 50);
    assert_eq!(spec.max_retries, 3);
    assert_eq!(
        spec.max_concurrent as usize,
        tidemark_task::DEFAULT_RESET_CONCURRENCY
    );
    assert_eq!(
        spec.max_retries as u32,
        tidemark_task::DEFAULT_RESET_RETRIES
    );
    // The API server fills them in from the schema too.
    let schema = Checker::new().schema().clone();
    let props = &schema["properties"]["spec"]["properties"];
    assert_eq!(props["dryRun"]["default"], json!(false));
    assert_eq!(props["maxConcurrent"]["default"], json!(50));
    assert_eq!(props["maxRetries"]["default"], json!(3));
    assert_eq!(props["snapshotBeforeReset"]["default"], json!(true));
}

#[test]
fn storage_is_optional_when_nothing_is_stored_or_read() {
    let no_storage = edit(
        BASE,
        "  storage:\n    storageType: configMap\n    configMap:\n      name: offset-snapshots\n",
        "",
    );
    let dry_run = edit(
        &no_storage,
        "  resetStrategy:",
        "  dryRun: true\n  resetStrategy:",
    );
    assert!(accepted(&dry_run).spec.storage.is_none());
    let unsafe_reset = edit(
        &no_storage,
        "  resetStrategy:",
        "  snapshotBeforeReset: false\n  resetStrategy:",
    );
    assert!(!accepted(&unsafe_reset).spec.snapshot_before_reset);
}

#[test]
fn a_pattern_alone_selects_the_groups() {
    let yaml = edit(
        BASE,
        "  consumerGroups:\n    - order-processor\n",
        "  consumerGroupPattern: \"orders-.*\"\n",
    );
    let cr = accepted(&yaml);
    assert!(cr.spec.consumer_groups.is_empty());
    assert_eq!(cr.spec.consumer_group_pattern.as_deref(), Some("orders-.*"));
    // Both together: the union.
    let both = edit(
        BASE,
        "  consumerGroups:\n",
        "  consumerGroupPattern: \"orders-.*\"\n  consumerGroups:\n",
    );
    accepted(&both);
}

#[test]
fn topics_may_name_partitions() {
    let yaml = edit(
        BASE,
        "    - orders\n",
        "    - orders\n    - \"payments:0,1,2\"\n    - _internal.events-v2:7\n",
    );
    assert_eq!(
        accepted(&yaml).spec.topics,
        ["orders", "payments:0,1,2", "_internal.events-v2:7"]
    );
}

#[test]
fn a_status_written_by_the_operator_matches_the_status_schema() {
    let mut doc = document(BASE);
    doc["status"] = json!({
        "phase": "Completed", "observedGeneration": 1, "run": "g1-r0",
        "jobName": "rewind-g1-r0", "startTime": "2024-12-01T12:00:00Z",
        "completionTime": "2024-12-01T12:01:00Z", "dryRun": false,
        "plan": {"groups": 1, "partitions": 3},
        "groupsTotal": 1, "groupsReset": 1, "groupsFailed": 0, "offsetsReset": 3,
        "offsetsPerSecond": 250,
        "groupResults": [{"group": "order-processor", "status": "reset", "partitions": 3}],
        "totalGroupResults": 1,
        "snapshotId": "rewind-reset-g1-r0-0a1b2c3d",
        "conditions": [{"type": "Ready", "status": "True", "reason": "OffsetsReset",
                        "message": "Reset 1 of 1 group", "lastTransitionTime": "2024-12-01T12:01:00Z",
                        "observedGeneration": 1}]
    });
    let cr = Checker::new()
        .check(&doc)
        .unwrap_or_else(|r| panic!("refused: {r:#?}"));
    let status: KafkaOffsetResetStatus = cr.status.expect("status");
    assert_eq!(status.plan.map(|p| p.partitions), Some(3));
    assert_eq!(status.common.run.as_deref(), Some("g1-r0"));
    assert_eq!(status.common.conditions[0].reason, "OffsetsReset");
}

#[test]
fn printer_columns_show_strategy_phase_groups_failed_and_snapshot() {
    let crd = tidemark_operator::crd::all()
        .into_iter()
        .find(|c| c.spec.names.kind == "KafkaOffsetReset")
        .expect("the CRD");
    assert_eq!(crd.spec.names.short_names, Some(vec!["kor".to_string()]));
    assert_eq!(
        crd.spec.names.categories,
        Some(vec!["tidemark".to_string()])
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    let columns: Vec<(String, String)> = crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.clone(), c.json_path.clone()))
        .collect();
    let expected = [
        ("Strategy", ".spec.resetStrategy"),
        ("Phase", ".status.phase"),
        ("Groups", ".status.groupsReset"),
        ("Failed", ".status.groupsFailed"),
        ("Snapshot", ".status.snapshotId"),
        ("Plan", ".status.plan.hash"),
        ("Ready", r#".status.conditions[?(@.type=="Ready")].status"#),
        ("Reason", r#".status.conditions[?(@.type=="Ready")].reason"#),
        ("Age", ".metadata.creationTimestamp"),
    ];
    assert_eq!(
        columns,
        expected.map(|(n, p)| (n.to_string(), p.to_string()))
    );
}

#[test]
fn cel_rules_compile_and_fit_the_cost_budget() {
    let count = check_cel_rules(Checker::new().schema());
    assert!(count >= 20, "only {count} rules found");
}

// ---------------------------------------------------------------------------------------------
// Rejected.

fn malformed() -> Vec<Case> {
    use Layer::{Cel, Structure};
    let no_storage = edit(
        BASE,
        "  storage:\n    storageType: configMap\n    configMap:\n      name: offset-snapshots\n",
        "",
    );
    vec![
        case(
            "fromBackup without backupId",
            with_strategy("fromBackup", ""),
            Cel,
            "backupId is required when resetStrategy is fromBackup",
        ),
        case(
            "fromBackup reading a ConfigMap",
            with_strategy("fromBackup", "  backupId: orders-g1-r0-6f1c2a9e\n"),
            Cel,
            "resetStrategy fromBackup reads the backup and its restore's offset mapping from storage",
        ),
        case(
            "backupId with another strategy",
            with_strategy("toEarliest", "  backupId: orders-g1-r0-6f1c2a9e\n"),
            Cel,
            "backupId is only used with resetStrategy fromBackup",
        ),
        case(
            "a named safety snapshot that is not taken",
            with_strategy("toEarliest", "  snapshotId: before-replay\n  snapshotBeforeReset: false\n"),
            Cel,
            "snapshotId names the safety snapshot",
        ),
        case(
            "toOffset without offset",
            with_strategy("toOffset", ""),
            Cel,
            "offset is required when resetStrategy is toOffset",
        ),
        case(
            "shiftBy without shiftBy",
            with_strategy("shiftBy", ""),
            Cel,
            "shiftBy is required when resetStrategy is shiftBy",
        ),
        case(
            "toDatetime without datetime",
            with_strategy("toDatetime", ""),
            Cel,
            "datetime is required when resetStrategy is toDatetime",
        ),
        case(
            "byDuration without duration",
            with_strategy("byDuration", ""),
            Cel,
            "duration is required when resetStrategy is byDuration",
        ),
        case(
            "fromFile without offsetsCsv",
            with_strategy("fromFile", ""),
            Cel,
            "offsetsCsv is required when resetStrategy is fromFile",
        ),
        case(
            "fromSnapshot without fromSnapshotId",
            with_strategy("fromSnapshot", ""),
            Cel,
            "fromSnapshotId is required when resetStrategy is fromSnapshot",
        ),
        case(
            "offset with toEarliest",
            edit(BASE, "  resetStrategy: toEarliest\n", "  resetStrategy: toEarliest\n  offset: 10\n"),
            Cel,
            "offset is only used with resetStrategy toOffset",
        ),
        case(
            "datetime with shiftBy",
            with_strategy(
                "shiftBy",
                "  shiftBy: 5\n  datetime: \"2024-12-01T10:00:00.000\"\n",
            ),
            Cel,
            "datetime is only used with resetStrategy toDatetime",
        ),
        case(
            "shiftBy with toOffset",
            with_strategy("toOffset", "  offset: 5\n  shiftBy: 5\n"),
            Cel,
            "shiftBy is only used with resetStrategy shiftBy",
        ),
        case(
            "duration with toDatetime",
            with_strategy(
                "toDatetime",
                "  datetime: \"2024-12-01T10:00:00.000\"\n  duration: PT1H\n",
            ),
            Cel,
            "duration is only used with resetStrategy byDuration",
        ),
        case(
            "offsetsCsv with fromSnapshot",
            with_strategy(
                "fromSnapshot",
                "  fromSnapshotId: s1\n  offsetsCsv: \"g,orders,0,1\"\n",
            ),
            Cel,
            "offsetsCsv is only used with resetStrategy fromFile",
        ),
        case(
            "fromSnapshotId with toLatest",
            with_strategy("toLatest", "  fromSnapshotId: s1\n"),
            Cel,
            "fromSnapshotId is only used with resetStrategy fromSnapshot",
        ),
        case(
            "datetime with a space instead of T",
            with_strategy("toDatetime", "  datetime: \"2024-12-01 10:00:00.000\"\n"),
            Structure,
            "/spec/datetime: \"2024-12-01 10:00:00.000\" does not match",
        ),
        case(
            "datetime without milliseconds",
            with_strategy("toDatetime", "  datetime: \"2024-12-01T10:00:00Z\"\n"),
            Structure,
            "/spec/datetime: \"2024-12-01T10:00:00Z\" does not match",
        ),
        case(
            "datetime in month 13",
            with_strategy("toDatetime", "  datetime: \"2024-13-01T10:00:00.000\"\n"),
            Structure,
            "/spec/datetime: \"2024-13-01T10:00:00.000\" does not match",
        ),
        case(
            "datetime with a named zone",
            with_strategy("toDatetime", "  datetime: \"2024-12-01T10:00:00.000 CET\"\n"),
            Structure,
            "/spec/datetime: \"2024-12-01T10:00:00.000 CET\" does not match",
        ),
        case(
            "duration in Go syntax",
            with_strategy("byDuration", "  duration: 1h30m\n"),
            Structure,
            "/spec/duration: \"1h30m\" does not match",
        ),
        case(
            "duration in weeks",
            with_strategy("byDuration", "  duration: P1W\n"),
            Structure,
            "/spec/duration: \"P1W\" does not match",
        ),
        case(
            "duration without an amount",
            with_strategy("byDuration", "  duration: PT\n"),
            Cel,
            "duration must give at least one amount after P or T",
        ),
        case(
            "negative offset",
            with_strategy("toOffset", "  offset: -1\n"),
            Structure,
            "/spec/offset: -1 is less than the minimum of 0",
        ),
        case(
            "maxConcurrent 0",
            edit(BASE, "  topics:", "  maxConcurrent: 0\n  topics:"),
            Structure,
            "/spec/maxConcurrent: 0 is less than the minimum of 1",
        ),
        case(
            "maxConcurrent 1001",
            edit(BASE, "  topics:", "  maxConcurrent: 1001\n  topics:"),
            Structure,
            "/spec/maxConcurrent: 1001 is greater than the maximum of 1000",
        ),
        case(
            "maxRetries 101",
            edit(BASE, "  topics:", "  maxRetries: 101\n  topics:"),
            Structure,
            "/spec/maxRetries: 101 is greater than the maximum of 100",
        ),
        case(
            "no groups",
            edit(BASE, "  consumerGroups:\n    - order-processor\n", ""),
            Cel,
            "consumerGroups or consumerGroupPattern is required",
        ),
        case(
            "an empty group list and no pattern",
            edit(
                BASE,
                "  consumerGroups:\n    - order-processor\n",
                "  consumerGroups: []\n",
            ),
            Cel,
            "consumerGroups or consumerGroupPattern is required",
        ),
        case(
            "an empty pattern",
            edit(
                BASE,
                "  consumerGroups:\n    - order-processor\n",
                "  consumerGroupPattern: \"\"\n",
            ),
            Structure,
            "/spec/consumerGroupPattern: \"\" is shorter than 1 character",
        ),
        case(
            "no storage for the safety snapshot",
            no_storage.clone(),
            Cel,
            "storage is required for the safety snapshot taken before the reset",
        ),
        case(
            "no storage with snapshotBeforeReset true",
            edit(
                &no_storage,
                "  resetStrategy:",
                "  snapshotBeforeReset: true\n  resetStrategy:",
            ),
            Cel,
            "storage is required for the safety snapshot taken before the reset",
        ),
        case(
            "fromSnapshot without storage",
            edit(
                &no_storage,
                "  resetStrategy: toEarliest\n",
                "  snapshotBeforeReset: false\n  resetStrategy: fromSnapshot\n  fromSnapshotId: s1\n",
            ),
            Cel,
            "storage is required when resetStrategy is fromSnapshot",
        ),
        case(
            "topic with an empty partition list",
            edit(BASE, "    - orders\n", "    - \"orders:\"\n"),
            Structure,
            "/spec/topics/0: \"orders:\" does not match",
        ),
        case(
            "topic with a partition that is not a number",
            edit(BASE, "    - orders\n", "    - \"orders:a\"\n"),
            Structure,
            "/spec/topics/0: \"orders:a\" does not match",
        ),
        case(
            "topic with a trailing comma",
            edit(BASE, "    - orders\n", "    - \"orders:0,\"\n"),
            Structure,
            "/spec/topics/0: \"orders:0,\" does not match",
        ),
        case(
            "topic with a space",
            edit(BASE, "    - orders\n", "    - \"my orders\"\n"),
            Structure,
            "/spec/topics/0: \"my orders\" does not match",
        ),
        case(
            "unknown strategy",
            with_strategy("toMiddle", ""),
            Structure,
            "/spec/resetStrategy: \"toMiddle\" is not one of",
        ),
        case(
            "kafka-consumer-groups spelling of a strategy",
            with_strategy("to-earliest", ""),
            Structure,
            "/spec/resetStrategy: \"to-earliest\" is not one of",
        ),
        case(
            "no kafkaCluster",
            edit(BASE, "  kafkaCluster:\n    bootstrapServers:\n      - kafka:9092\n", ""),
            Structure,
            "/spec: \"kafkaCluster\" is a required property",
        ),
        case(
            "no resetStrategy",
            edit(BASE, "  resetStrategy: toEarliest\n", ""),
            Structure,
            "/spec: \"resetStrategy\" is a required property",
        ),
        case(
            "fromSnapshotId with '..'",
            with_strategy("fromSnapshot", "  fromSnapshotId: a..b\n"),
            Cel,
            "fromSnapshotId must not contain '..'",
        ),
        case(
            "fromSnapshotId leaving the folder",
            with_strategy("fromSnapshot", "  fromSnapshotId: ../etc\n"),
            Structure,
            "/spec/fromSnapshotId: \"../etc\" does not match",
        ),
        case(
            "empty offsetsCsv",
            with_strategy("fromFile", "  offsetsCsv: \"\"\n"),
            Structure,
            "/spec/offsetsCsv: \"\" is shorter than 1 character",
        ),
        case(
            "offset as a string",
            with_strategy("toOffset", "  offset: \"100\"\n"),
            Structure,
            "/spec/offset: \"100\" is not of type",
        ),
        case(
            "misspelled field (strict field validation)",
            edit(BASE, "  resetStrategy:", "  dryrun: true\n  resetStrategy:"),
            Structure,
            "Additional properties are not allowed ('dryrun' was unexpected)",
        ),
        case(
            "storageType s3 without an s3 block",
            edit(BASE, "storageType: configMap", "storageType: s3"),
            Cel,
            "storage.s3 is required when storageType is s3",
        ),
        case(
            "SASL without saslSecret",
            edit(
                BASE,
                "      - kafka:9092\n",
                "      - kafka:9092\n    securityProtocol: SASL_SSL\n",
            ),
            Cel,
            "saslSecret is required when securityProtocol is SASL_PLAINTEXT or SASL_SSL",
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
    // A pattern that is not a regex passes the schema; the worker would refuse it, and the
    // operator says so before any Job runs, naming the spec field.
    let yaml = edit(
        BASE,
        "  consumerGroups:\n    - order-processor\n",
        "  consumerGroupPattern: \"orders-(\"\n",
    );
    let mut cr = accepted(&yaml);
    cr.metadata.namespace = Some("kafka-backup".into());
    cr.metadata.uid = Some("0b5c1c2e-7a43-4a8e-9f0e-4a1d2c3b4a5f".into());
    let problems = tidemark_operator::validate::validate(&cr);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].reason, "InvalidField");
    assert!(
        problems[0]
            .message
            .starts_with("spec.consumerGroupPattern is not a valid regex"),
        "{}",
        problems[0].message
    );

    // Secrets in properties, as for every kind.
    let yaml = edit(
        BASE,
        "      - kafka:9092\n",
        "      - kafka:9092\n    properties:\n      sasl.password: hunter2\n",
    );
    let mut cr = accepted(&yaml);
    cr.metadata.namespace = Some("kafka-backup".into());
    let problems = tidemark_operator::validate::validate(&cr);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].reason, "SecretInProperties");
}

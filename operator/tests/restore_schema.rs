//! KafkaRestore manifests against the generated CRD, checked the way an API server checks them
//! (structure with strict field validation, CEL rules, deserialization; see `common/mod.rs`):
//! both forms of `backupRef`, every enum value and both forms of each PITR bound are accepted,
//! defaults are the worker's, and malformed manifests are rejected, each for its own stated
//! reason. What the schema cannot see is stalled by the operator. (The samples in
//! `config/samples/` are checked by `schema.rs`.)

mod common;

use common::{assert_rejected, case, check_cel_rules, document, edit, Case, Layer};
use serde_json::json;
use tidemark_operator::crd::restore::{Acks, ExistingData, GroupStrategy, HeaderStyle};
use tidemark_operator::crd::status::Phase;
use tidemark_operator::crd::{KafkaRestore, KafkaRestoreStatus};

/// Checks KafkaRestore manifests.
type Checker = common::Checker<KafkaRestore>;

/// A minimal restore: the newest completed backup of a KafkaBackup.
const BASE: &str = r#"
apiVersion: tidemark.dev/v1alpha1
kind: KafkaRestore
metadata:
  name: orders
spec:
  kafkaCluster:
    bootstrapServers:
      - kafka:9092
  backupRef:
    name: orders-backup
"#;

/// The backupRef of [`BASE`].
const BY_NAME: &str = "  backupRef:\n    name: orders-backup\n";

/// A backupRef naming a backup id in S3.
const INLINE: &str = "  backupRef:\n    backupId: orders-g1-r0-6f1c2a9e\n    storage:\n      storageType: s3\n      s3:\n        bucket: kafka-backups\n";

/// `BASE` with `lines` added to the spec.
fn with(lines: &str) -> String {
    edit(BASE, BY_NAME, &format!("{BY_NAME}{lines}"))
}

/// `BASE` with `backup_ref` (spec lines) as its backupRef.
fn with_ref(backup_ref: &str) -> String {
    edit(BASE, BY_NAME, backup_ref)
}

/// `BASE` with `pitr:` holding `lines` (four-space indented).
fn with_pitr(lines: &str) -> String {
    with(&format!("  pitr:\n{lines}"))
}

fn accepted(yaml: &str) -> KafkaRestore {
    Checker::new()
        .check(&document(yaml))
        .unwrap_or_else(|r| panic!("refused: {r:#?}\n{yaml}"))
}

/// The operator's checks of `cr` as the API server would store it.
fn operator_problems(mut cr: KafkaRestore) -> Vec<tidemark_operator::validate::Problem> {
    cr.metadata.namespace = Some("kafka-backup".into());
    cr.metadata.uid = Some("9e8d7c6b-5a49-4f38-a726-15f4e3d2c1b0".into());
    tidemark_operator::validate::validate(&cr)
}

// ---------------------------------------------------------------------------------------------
// Accepted.

#[test]
fn defaults_are_those_of_the_worker() {
    let cr = accepted(BASE);
    let spec = &cr.spec;
    assert!(!spec.create_topics);
    assert_eq!(spec.existing_data, ExistingData::Refuse);
    assert_eq!(spec.acks, Acks::All);
    assert!(!spec.dry_run);
    assert!(!spec.include_original_offset_header);
    assert_eq!(spec.original_header_style, None);
    assert_eq!(spec.consumer_groups, None);
    assert_eq!(spec.topics, None);
    let groups = accepted(&with("  consumerGroups:\n    strategy: manual\n"))
        .spec
        .consumer_groups
        .expect("consumerGroups");
    assert!(
        groups.snapshot_before_reset,
        "the safety snapshot is on by default"
    );
    assert!(!groups.reset_offsets);

    let worker: tidemark_task::RestoreTask = serde_json::from_value(json!({
        "kafka": {"bootstrapServers": ["k:9092"], "securityProtocol": "PLAINTEXT"},
        "storage": {"type": "location", "url": "/b"},
        "backupId": "b1"
    }))
    .expect("a minimal restore task");
    assert!(!worker.create_topics);
    assert_eq!(worker.existing_data, tidemark_task::ExistingData::Refuse);
    assert_eq!(worker.acks, tidemark_task::Acks::All);
    assert_eq!(
        worker.consumer_group_strategy,
        tidemark_task::GroupStrategy::Skip
    );
    assert_eq!(
        worker.original_header_style,
        tidemark_task::HeaderStyle::Original
    );
    assert!(worker.snapshot_before_reset);
    assert!(
        worker.topics.include.is_empty(),
        "empty include: every topic"
    );

    // The API server fills them in from the schema too.
    let schema = Checker::new().schema().clone();
    let props = &schema["properties"]["spec"]["properties"];
    assert_eq!(props["createTopics"]["default"], json!(false));
    assert_eq!(props["existingData"]["default"], json!("refuse"));
    assert_eq!(props["acks"]["default"], json!("all"));
    assert_eq!(props["dryRun"]["default"], json!(false));
    let groups = &props["consumerGroups"]["properties"];
    assert_eq!(groups["strategy"]["default"], json!("skip"));
    assert_eq!(groups["snapshotBeforeReset"]["default"], json!(true));
    assert!(
        props.get("resolvedBackup").is_none(),
        "the controller's resolution is not part of the schema"
    );
}

#[test]
fn a_backup_by_kafka_backup_or_by_id_in_a_storage_is_accepted() {
    let cr = accepted(BASE);
    assert_eq!(cr.spec.backup_ref.name.as_deref(), Some("orders-backup"));
    let cr = accepted(&with_ref(
        "  backupRef:\n    name: orders-backup\n    backupId: orders-backup-g3-r0-1a2b3c4d\n",
    ));
    assert_eq!(
        cr.spec.backup_ref.backup_id.as_deref(),
        Some("orders-backup-g3-r0-1a2b3c4d")
    );
    for storage in [
        "      storageType: s3\n      s3:\n        bucket: kafka-backups\n        prefix: prod\n",
        "      storageType: gcs\n      gcs:\n        bucket: kafka-backups\n",
        "      storageType: azure\n      azure:\n        container: backups\n",
        "      storageType: pvc\n      pvc:\n        claimName: kafka-backups\n        path: orders\n",
    ] {
        let yaml = with_ref(&format!(
            "  backupRef:\n    backupId: orders-g1-r0-6f1c2a9e\n    storage:\n{storage}"
        ));
        let cr = accepted(&yaml);
        assert!(cr.spec.backup_ref.storage.is_some());
        assert_eq!(operator_problems(cr), [], "{storage}");
    }
}

#[test]
fn every_option_and_enum_value_is_accepted() {
    for (lines, existing, acks) in [
        ("", ExistingData::Refuse, Acks::All),
        ("  existingData: append\n", ExistingData::Append, Acks::All),
        (
            "  existingData: purge\n  acks: \"1\"\n",
            ExistingData::Purge,
            Acks::Leader,
        ),
        ("  acks: all\n", ExistingData::Refuse, Acks::All),
    ] {
        let cr = accepted(&with(lines));
        assert_eq!((cr.spec.existing_data, cr.spec.acks), (existing, acks));
    }
    for (strategy, expected) in [
        ("skip", GroupStrategy::Skip),
        ("header-based", GroupStrategy::HeaderBased),
        ("timestamp-based", GroupStrategy::TimestampBased),
        ("cluster-scan", GroupStrategy::ClusterScan),
        ("manual", GroupStrategy::Manual),
    ] {
        let yaml = with(&format!(
            "  includeOriginalOffsetHeader: true\n  consumerGroups:\n    strategy: {strategy}\n"
        ));
        let cr = accepted(&yaml);
        assert_eq!(cr.spec.consumer_groups.map(|g| g.strategy), Some(expected));
    }
    for (style, expected) in [
        ("original", HeaderStyle::Original),
        ("kafka-backup", HeaderStyle::KafkaBackup),
    ] {
        let yaml = with(&format!(
            "  includeOriginalOffsetHeader: true\n  originalHeaderStyle: {style}\n"
        ));
        assert_eq!(accepted(&yaml).spec.original_header_style, Some(expected));
    }

    let full = with(concat!(
        "  topics:\n    include:\n      - orders\n      - \"payments-*\"\n      - \"~audit-(eu|us)\"\n    exclude:\n      - \"*-test\"\n",
        "  sourcePartitions: [0, 1, 2]\n",
        "  topicMapping:\n    orders: orders-recovered\n    payments.v1: payments_v1-clone\n",
        "  partitionMapping:\n    \"0\": 0\n    \"1\": 2\n    \"10\": 4\n",
        "  createTopics: true\n",
        "  includeOriginalOffsetHeader: true\n",
        "  consumerGroups:\n    strategy: header-based\n    resetOffsets: true\n    groups: [billing, audit]\n    offsetsSnapshotId: before-incident\n    snapshotBeforeReset: false\n",
        "  maxConcurrentPartitions: 10000\n  produceBatchSize: 100000\n",
        "  rateLimit:\n    recordsPerSec: 50000\n    bytesPerSec: 10485760\n",
        "  checkpointIntervalSecs: 86400\n",
        "  job:\n    backoffLimit: 6\n    activeDeadlineSeconds: 86400\n  resources:\n    limits:\n      memory: 2Gi\n",
    ));
    let cr = accepted(&full);
    let spec = &cr.spec;
    assert_eq!(spec.source_partitions, [0, 1, 2]);
    assert_eq!(spec.topic_mapping["payments.v1"], "payments_v1-clone");
    assert_eq!(spec.partition_mapping["10"], 4);
    let groups = spec.consumer_groups.clone().expect("groups");
    assert_eq!(groups.groups, ["billing", "audit"]);
    assert!(!groups.snapshot_before_reset);
    assert_eq!(operator_problems(cr), []);

    // Shards, with or without consumer groups (translated once, by shard 0).
    for lines in [
        "  shards: 100\n",
        "  shards: 4\n  consumerGroups:\n    strategy: header-based\n    resetOffsets: true\n",
    ] {
        let cr = accepted(&with(lines));
        assert!(cr.spec.shards > 1);
        assert_eq!(operator_problems(cr), []);
    }
    assert_eq!(accepted(BASE).spec.shards, 1, "one shard by default");
}

#[test]
fn each_pitr_bound_takes_an_rfc3339_time_or_epoch_milliseconds() {
    for (lines, start, end) in [
        (
            "    startTime: \"2024-01-15T10:00:00Z\"\n    endTime: \"2024-01-15T11:00:00Z\"\n",
            Some(1_705_312_800_000),
            Some(1_705_316_400_000),
        ),
        (
            "    startTimestampMs: 1705312800000\n    endTimestampMs: 1705316400000\n",
            Some(1_705_312_800_000),
            Some(1_705_316_400_000),
        ),
        (
            "    endTimestampMs: 1705330800000\n",
            None,
            Some(1_705_330_800_000),
        ),
        (
            "    startTime: \"2024-01-15T10:00:00.250Z\"\n",
            Some(1_705_312_800_250),
            None,
        ),
        (
            "    startTime: \"2024-01-15T10:00:00Z\"\n    endTimestampMs: 1705316400000\n",
            Some(1_705_312_800_000),
            Some(1_705_316_400_000),
        ),
        // Compared as instants, not as text: 12:00+03:00 is 09:00Z, before 10:00Z.
        (
            "    startTime: \"2024-01-15T12:00:00+03:00\"\n    endTime: \"2024-01-15T10:00:00Z\"\n",
            Some(1_705_309_200_000),
            Some(1_705_312_800_000),
        ),
        // Equal ends: one instant.
        (
            "    startTimestampMs: 5\n    endTimestampMs: 5\n",
            Some(5),
            Some(5),
        ),
    ] {
        let cr = accepted(&with_pitr(lines));
        let window =
            tidemark_operator::build::restore::window(cr.spec.pitr.as_ref()).expect("a window");
        assert_eq!(window, (start, end), "{lines}");
        assert_eq!(operator_problems(cr), [], "{lines}");
    }
}

#[test]
fn a_status_written_by_the_operator_matches_the_status_schema() {
    let mut doc = document(BASE);
    doc["status"] = json!({
        "phase": "Completed", "observedGeneration": 1, "run": "g1-r0",
        "jobName": "orders-g1-r0", "startTime": "2024-12-01T00:00:02Z",
        "completionTime": "2024-12-01T00:12:00Z",
        "backupId": "orders-backup-g1-r0-1a2b3c4d", "kafkaBackup": "orders-backup",
        "restoreId": "kr-9e8d7c6b-5a49-4f38-a726-15f4e3d2c1b0", "dryRun": false,
        "progress": {"recordsRestored": 420, "recordsTotal": 1000, "bytesRestored": 42000,
                     "bytesTotal": 100000, "percent": "42%"},
        "topics": 2, "partitions": 6,
        "offsetMapping": "backups/orders-backup-g1-r0-1a2b3c4d/restores/kr-9e8d7c6b-5a49-4f38-a726-15f4e3d2c1b0/mapping.json",
        "groupsTranslated": 3, "groupsFailed": 0,
        "snapshotId": "kr-9e8d7c6b-5a49-4f38-a726-15f4e3d2c1b0-before-offsets",
        "validation": "VALID: 2 topics, 6 partitions, 1000 records",
        "conditions": [{"type": "Ready", "status": "True", "reason": "RestoreCompleted",
                        "message": "restored", "lastTransitionTime": "2024-12-01T00:12:00Z",
                        "observedGeneration": 1}]
    });
    let cr = Checker::new()
        .check(&doc)
        .unwrap_or_else(|r| panic!("refused: {r:#?}"));
    let status: KafkaRestoreStatus = cr.status.expect("status");
    assert_eq!(status.common.phase, Some(Phase::Completed));
    assert_eq!(
        status.progress.and_then(|p| p.percent).as_deref(),
        Some("42%")
    );
    assert_eq!(status.groups_translated, Some(3));
    for phase in ["Pending", "Running", "Failed"] {
        doc["status"]["phase"] = json!(phase);
        Checker::new()
            .check(&doc)
            .unwrap_or_else(|r| panic!("{phase} refused: {r:#?}"));
    }
}

#[test]
fn printer_columns_show_phase_backup_progress_and_groups() {
    let crd = tidemark_operator::crd::all()
        .into_iter()
        .find(|c| c.spec.names.kind == "KafkaRestore")
        .expect("the CRD");
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("kafkarestores.tidemark.dev")
    );
    assert_eq!(crd.spec.names.short_names, Some(vec!["kr".to_string()]));
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
        ("Phase", "string", ".status.phase"),
        ("Backup", "string", ".status.backupId"),
        ("Progress", "string", ".status.progress.percent"),
        ("Groups", "integer", ".status.groupsTranslated"),
        ("Plan", "string", ".status.plan.hash"),
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
    assert!(count >= 20, "only {count} rules found");
}

// ---------------------------------------------------------------------------------------------
// Rejected.

fn malformed() -> Vec<Case> {
    use Layer::{Cel, Structure};
    let storage = |lines: &str| {
        with_ref(&format!(
            "  backupRef:\n    backupId: orders-g1-r0-6f1c2a9e\n    storage:\n{lines}"
        ))
    };
    let groups = |lines: &str| with(&format!("  consumerGroups:\n{lines}"));
    vec![
        case(
            "no backupRef",
            edit(BASE, BY_NAME, ""),
            Structure,
            "/spec: \"backupRef\" is a required property",
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
            "an offsetReport leaving its folder",
            with("  offsetReport: reports/../../etc/x.json\n"),
            Cel,
            "offsetReport must not contain '..' or '.' segments",
        ),
        case(
            "an offsetReport with a space",
            with("  offsetReport: my report.json\n"),
            Structure,
            "/spec/offsetReport",
        ),
        case(
            "a restoreId with a slash",
            with("  restoreId: a/b\n"),
            Structure,
            "/spec/restoreId",
        ),
        case(
            "an empty backupRef",
            with_ref("  backupRef: {}\n"),
            Cel,
            "backupRef needs name (a KafkaBackup in this namespace) or backupId and storage",
        ),
        case(
            "a backupId alone",
            with_ref("  backupRef:\n    backupId: orders-g1-r0-6f1c2a9e\n"),
            Cel,
            "backupRef needs name (a KafkaBackup in this namespace) or backupId and storage",
        ),
        case(
            "a KafkaBackup and a storage",
            with_ref(&edit(
                INLINE,
                "  backupRef:\n",
                "  backupRef:\n    name: orders-backup\n",
            )),
            Cel,
            "backupRef.storage is only used without backupRef.name",
        ),
        case(
            "a storage without a backupId",
            storage("      storageType: s3\n      s3:\n        bucket: kafka-backups\n")
                .replace("    backupId: orders-g1-r0-6f1c2a9e\n", ""),
            Cel,
            "backupRef.backupId is required with backupRef.storage",
        ),
        case(
            "backups in a ConfigMap",
            storage("      storageType: configMap\n      configMap:\n        name: backups\n"),
            Cel,
            "backupRef.storage.storageType configMap cannot hold backups",
        ),
        case(
            "storageType s3 without an s3 block",
            storage("      storageType: s3\n"),
            Cel,
            "storage.s3 is required when storageType is s3",
        ),
        case(
            "a KafkaBackup name in capitals",
            with_ref("  backupRef:\n    name: Orders\n"),
            Structure,
            "/spec/backupRef/name: \"Orders\" does not match",
        ),
        case(
            "a backupId with a slash",
            with_ref("  backupRef:\n    name: orders-backup\n    backupId: a/b\n"),
            Structure,
            "/spec/backupRef/backupId: \"a/b\" does not match",
        ),
        case(
            "a backupId with ..",
            with_ref("  backupRef:\n    name: orders-backup\n    backupId: a..b\n"),
            Cel,
            "backupRef.backupId must not contain '..'",
        ),
        case(
            "an empty pitr",
            with("  pitr: {}\n"),
            Cel,
            "pitr needs a start, an end or both",
        ),
        case(
            "both forms of the start",
            with_pitr("    startTime: \"2024-01-15T10:00:00Z\"\n    startTimestampMs: 1705312800000\n"),
            Cel,
            "pitr.startTime and pitr.startTimestampMs are two forms of the same bound: give one",
        ),
        case(
            "both forms of the end",
            with_pitr("    endTime: \"2024-01-15T10:00:00Z\"\n    endTimestampMs: 1705312800000\n"),
            Cel,
            "pitr.endTime and pitr.endTimestampMs are two forms of the same bound: give one",
        ),
        case(
            "a start after the end, in milliseconds",
            with_pitr("    startTimestampMs: 1705316400000\n    endTimestampMs: 1705312800000\n"),
            Cel,
            "pitr.startTimestampMs is after pitr.endTimestampMs: the window is empty",
        ),
        case(
            "a start after the end, as times in two zones",
            with_pitr("    startTime: \"2024-01-15T12:00:00+01:00\"\n    endTime: \"2024-01-15T10:30:00Z\"\n"),
            Cel,
            "pitr.startTime is after pitr.endTime: the window is empty",
        ),
        case(
            "a time without a zone",
            with_pitr("    startTime: \"2024-01-15T10:00:00\"\n"),
            Structure,
            "/spec/pitr/startTime: \"2024-01-15T10:00:00\" does not match",
        ),
        case(
            "a time with a space",
            with_pitr("    endTime: \"2024-01-15 10:00:00Z\"\n"),
            Structure,
            "/spec/pitr/endTime: \"2024-01-15 10:00:00Z\" does not match",
        ),
        case(
            "a date without a time",
            with_pitr("    endTime: \"2024-01-15\"\n"),
            Structure,
            "/spec/pitr/endTime: \"2024-01-15\" does not match",
        ),
        case(
            "epoch seconds written as a time",
            with_pitr("    startTime: \"1705312800\"\n"),
            Structure,
            "/spec/pitr/startTime: \"1705312800\" does not match",
        ),
        case(
            "negative milliseconds",
            with_pitr("    startTimestampMs: -1\n"),
            Structure,
            "/spec/pitr/startTimestampMs: -1 is less than the minimum of 0",
        ),
        case(
            "milliseconds as a string",
            with_pitr("    endTimestampMs: \"1705312800000\"\n"),
            Structure,
            "/spec/pitr/endTimestampMs: \"1705312800000\" is not of type",
        ),
        case(
            "a negative source partition",
            with("  sourcePartitions: [0, -1]\n"),
            Structure,
            "/spec/sourcePartitions/1: -1 is less than the minimum of 0",
        ),
        case(
            "a partition mapping to a negative partition",
            with("  partitionMapping:\n    \"0\": -1\n"),
            Structure,
            "/spec/partitionMapping/0: -1 is less than the minimum of 0",
        ),
        case(
            "a partition mapping key that is no number",
            with("  partitionMapping:\n    first: 1\n"),
            Cel,
            "partitionMapping keys must be partition numbers",
        ),
        case(
            "a negative partition mapping key",
            with("  partitionMapping:\n    \"-1\": 1\n"),
            Cel,
            "partitionMapping keys must be partition numbers",
        ),
        case(
            "a partition mapping key with a leading zero",
            with("  partitionMapping:\n    \"01\": 1\n"),
            Cel,
            "partitionMapping keys must be partition numbers",
        ),
        case(
            "a target topic with a space",
            with("  topicMapping:\n    orders: orders recovered\n"),
            Structure,
            "/spec/topicMapping/orders: \"orders recovered\" does not match",
        ),
        case(
            "a source topic with a slash",
            with("  topicMapping:\n    orders/eu: orders-eu\n"),
            Cel,
            "topicMapping keys must be topic names",
        ),
        case(
            "a topic pattern with a space",
            with("  topics:\n    include:\n      - \"my orders\"\n"),
            Structure,
            "/spec/topics/include/0: \"my orders\" does not match",
        ),
        case(
            "unknown existingData",
            with("  existingData: overwrite\n"),
            Structure,
            "/spec/existingData: \"overwrite\" is not one of",
        ),
        case(
            "acks 1 without quotes",
            with("  acks: 1\n"),
            Structure,
            "/spec/acks: 1 is not of type \"string\"",
        ),
        case(
            "acks 0",
            with("  acks: \"0\"\n"),
            Structure,
            "/spec/acks: \"0\" is not one of",
        ),
        case(
            "unknown consumer group strategy",
            groups("    strategy: offset-based\n"),
            Structure,
            "/spec/consumerGroups/strategy: \"offset-based\" is not one of",
        ),
        case(
            "resetOffsets with strategy skip",
            groups("    strategy: skip\n    resetOffsets: true\n"),
            Cel,
            "consumerGroups.resetOffsets needs a strategy other than skip",
        ),
        case(
            "resetOffsets without a strategy",
            groups("    resetOffsets: true\n"),
            Cel,
            "consumerGroups.resetOffsets needs a strategy other than skip",
        ),
        case(
            "groups without resetOffsets",
            groups("    strategy: header-based\n    groups: [billing]\n"),
            Cel,
            "consumerGroups.groups and consumerGroups.offsetsSnapshotId are only used with resetOffsets: true or strategy manual",
        ),
        case(
            "an offsets snapshot without resetOffsets",
            groups("    strategy: timestamp-based\n    offsetsSnapshotId: before\n"),
            Cel,
            "only used with resetOffsets: true or strategy manual",
        ),
        case(
            "an empty group name",
            groups("    strategy: manual\n    groups: [\"\"]\n"),
            Structure,
            "/spec/consumerGroups/groups/0: \"\" is shorter than 1 character",
        ),
        case(
            "an offsets snapshot id with ..",
            groups("    strategy: header-based\n    resetOffsets: true\n    offsetsSnapshotId: a..b\n"),
            Cel,
            "consumerGroups.offsetsSnapshotId must not contain '..'",
        ),
        case(
            "cluster-scan without original-offset headers",
            groups("    strategy: cluster-scan\n    resetOffsets: true\n"),
            Cel,
            "consumerGroups.strategy cluster-scan reads the original-offset headers back from the target: set includeOriginalOffsetHeader: true",
        ),
        case(
            "cluster-scan with headers switched off",
            with("  includeOriginalOffsetHeader: false\n  consumerGroups:\n    strategy: cluster-scan\n"),
            Cel,
            "set includeOriginalOffsetHeader: true",
        ),
        case(
            "a header style without headers",
            with("  originalHeaderStyle: kafka-backup\n"),
            Cel,
            "originalHeaderStyle is only used with includeOriginalOffsetHeader: true",
        ),
        case(
            "unknown header style",
            with("  includeOriginalOffsetHeader: true\n  originalHeaderStyle: confluent\n"),
            Structure,
            "/spec/originalHeaderStyle: \"confluent\" is not one of",
        ),
        case(
            "maxConcurrentPartitions 0",
            with("  maxConcurrentPartitions: 0\n"),
            Structure,
            "/spec/maxConcurrentPartitions: 0 is less than the minimum of 1",
        ),
        case(
            "produceBatchSize 0",
            with("  produceBatchSize: 0\n"),
            Structure,
            "/spec/produceBatchSize: 0 is less than the minimum of 1",
        ),
        case(
            "produceBatchSize beyond 100000",
            with("  produceBatchSize: 100001\n"),
            Structure,
            "/spec/produceBatchSize: 100001 is greater than the maximum of 100000",
        ),
        case(
            "checkpointIntervalSecs 0",
            with("  checkpointIntervalSecs: 0\n"),
            Structure,
            "/spec/checkpointIntervalSecs: 0 is less than the minimum of 1",
        ),
        case(
            "checkpointIntervalSecs beyond a day",
            with("  checkpointIntervalSecs: 86401\n"),
            Structure,
            "/spec/checkpointIntervalSecs: 86401 is greater than the maximum of 86400",
        ),
        case(
            "a rate limit of 0 bytes per second",
            with("  rateLimit:\n    bytesPerSec: 0\n"),
            Structure,
            "/spec/rateLimit/bytesPerSec: 0 is less than the minimum of 1",
        ),
        case(
            "a backoffLimit beyond 100",
            with("  job:\n    backoffLimit: 101\n"),
            Structure,
            "/spec/job/backoffLimit: 101 is greater than the maximum of 100",
        ),
        case(
            "SASL without a Secret",
            edit(
                BASE,
                "      - kafka:9092\n",
                "      - kafka:9092\n    securityProtocol: SASL_SSL\n",
            ),
            Cel,
            "saslSecret is required when securityProtocol is SASL_PLAINTEXT or SASL_SSL",
        ),
        case(
            "misspelled field (strict field validation)",
            with("  dryrun: true\n"),
            Structure,
            "Additional properties are not allowed ('dryrun' was unexpected)",
        ),
        case(
            "the controller's resolution in a manifest",
            with("  resolvedBackup:\n    backupId: x\n"),
            Structure,
            "Additional properties are not allowed ('resolvedBackup' was unexpected)",
        ),
        case(
            "no shard",
            with("  shards: 0\n"),
            Structure,
            "/spec/shards: 0 is less than the minimum of 1",
        ),
        case(
            "more shards than a backup may use",
            with("  shards: 101\n"),
            Structure,
            "/spec/shards: 101 is greater than the maximum of 100",
        ),
        case(
            "shards storing one offset report",
            with("  shards: 2\n  offsetReport: reports/r.json\n"),
            Cel,
            "shards above 1 store no single offsetReport",
        ),
        case(
            "dryRun as a string",
            with("  dryRun: \"yes\"\n"),
            Structure,
            "/spec/dryRun: \"yes\" is not of type",
        ),
    ]
}

#[test]
fn malformed_manifests_are_rejected_for_the_stated_reason() {
    let cases = malformed();
    assert!(cases.len() >= 40, "{}", cases.len());
    assert_rejected(&Checker::new(), &cases);
}

#[test]
fn what_the_schema_cannot_see_is_stalled_by_the_operator() {
    let one = |yaml: &str| {
        let problems = operator_problems(accepted(yaml));
        assert_eq!(problems.len(), 1, "{problems:?}");
        problems.into_iter().next().expect("a problem")
    };

    // A start in one form after an end in the other.
    let p = one(&with_pitr(
        "    startTime: \"2024-01-15T11:00:00Z\"\n    endTimestampMs: 1705312800000\n",
    ));
    assert_eq!(p.reason, "InvalidField");
    assert_eq!(
        p.message,
        "spec.pitr starts after it ends (1705316400000 ms > 1705312800000 ms): the window is empty"
    );

    // A time before 1970.
    let p = one(&with_pitr("    startTime: \"1969-12-31T23:59:59Z\"\n"));
    assert_eq!(p.reason, "InvalidField");
    assert!(
        p.message
            .starts_with("spec.pitr start is -1000 ms, before 1970"),
        "{}",
        p.message
    );

    // A ~regex that does not compile.
    let p = one(&with("  topics:\n    exclude:\n      - \"~orders-(\"\n"));
    assert_eq!(p.reason, "InvalidField");
    assert!(
        p.message.starts_with(
            "spec.topics.exclude[0] is invalid: exclude pattern '~orders-(' is not a valid regex"
        ),
        "{}",
        p.message
    );

    // What only the worker's own validation knows, named by the spec field: a target topic
    // name Kafka reserves.
    let p = one(&edit(
        &with("  topicMapping:\n    orders: \"..\"\n"),
        BY_NAME,
        INLINE,
    ));
    assert_eq!(p.reason, "InvalidField");
    assert!(
        p.message.starts_with("spec.topicMapping.orders"),
        "{}",
        p.message
    );
    assert!(p.message.contains("'..' are reserved"), "{}", p.message);

    // Secrets in properties, as for every kind.
    let p = one(&edit(
        BASE,
        "      - kafka:9092\n",
        "      - kafka:9092\n    properties:\n      sasl.password: hunter2\n",
    ));
    assert_eq!(p.reason, "SecretInProperties");
    assert!(!p.message.contains("hunter2"));
}

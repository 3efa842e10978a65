//! Every example of the KafkaOffsetRollback reference (apiVersion changed to
//! `tidemark.dev/v1alpha1`, otherwise verbatim) and every manifest in `config/samples/` is
//! accepted by the generated CRD the way an API server would check it: the OpenAPI structure
//! (with strict field validation, as `kubectl apply` does), the CEL rules, and deserialization
//! into the Rust type. Malformed manifests are rejected, each for its own stated reason.

mod common;

use std::path::Path;

use common::{assert_rejected, case, check_cel_rules, document, documents, edit, Case, Layer};
use tidemark_operator::crd::{
    KafkaBackup, KafkaOffsetReset, KafkaOffsetRollback, KafkaOffsetRollbackStatus, KafkaRestore,
};

/// Checks KafkaOffsetRollback manifests.
type Checker = common::Checker<KafkaOffsetRollback>;

// ---------------------------------------------------------------------------------------------
// The reference's examples, verbatim but for the apiVersion.

/// "Overview": a skeleton whose spec is only a placeholder (`# Operation configuration`). It is
/// accepted by the schema and stalled by the operator; see
/// `overview_skeleton_is_accepted_and_then_stalled_by_the_operator`.
const OVERVIEW: &str = include_str!("fixtures/rollback/overview.yaml");

const FULL_SPECIFICATION: &str = include_str!("fixtures/rollback/full-specification.yaml");

const OPERATION_SNAPSHOT: &str = include_str!("fixtures/rollback/operation-snapshot.yaml");

const OPERATION_ROLLBACK: &str = include_str!("fixtures/rollback/operation-rollback.yaml");

const OPERATION_VERIFY: &str = include_str!("fixtures/rollback/operation-verify.yaml");

const OPERATION_DELETE: &str = include_str!("fixtures/rollback/operation-delete.yaml");

const PRE_MIGRATION_SNAPSHOT: &str = include_str!("fixtures/rollback/pre-migration-snapshot.yaml");

const EMERGENCY_ROLLBACK: &str = include_str!("fixtures/rollback/emergency-rollback.yaml");

const VERIFICATION_AFTER_ROLLBACK: &str =
    include_str!("fixtures/rollback/verification-after-rollback.yaml");

const SNAPSHOT_TO_CONFIGMAP: &str = include_str!("fixtures/rollback/snapshot-to-configmap.yaml");

const DELETE_OLD_SNAPSHOTS: &str = include_str!("fixtures/rollback/delete-old-snapshots.yaml");

const WORKFLOW_EXAMPLE: &str = include_str!("fixtures/rollback/workflow-example.yaml");

/// The reference's "Status" block.
const STATUS: &str = include_str!("fixtures/rollback/status.yaml");

/// Every complete example of the reference, by section title.
const REFERENCE_EXAMPLES: &[(&str, &str)] = &[
    ("Full Specification", FULL_SPECIFICATION),
    ("Operations / snapshot", OPERATION_SNAPSHOT),
    ("Operations / rollback", OPERATION_ROLLBACK),
    ("Operations / verify", OPERATION_VERIFY),
    ("Operations / delete", OPERATION_DELETE),
    ("Examples / Pre-Migration Snapshot", PRE_MIGRATION_SNAPSHOT),
    ("Examples / Emergency Rollback", EMERGENCY_ROLLBACK),
    (
        "Examples / Verification After Rollback",
        VERIFICATION_AFTER_ROLLBACK,
    ),
    ("Examples / Snapshot to ConfigMap", SNAPSHOT_TO_CONFIGMAP),
    ("Operations / Delete Old Snapshots", DELETE_OLD_SNAPSHOTS),
    ("Workflow Example", WORKFLOW_EXAMPLE),
];

// ---------------------------------------------------------------------------------------------
// Accepted.

#[test]
fn every_reference_example_is_accepted_as_is() {
    let checker = Checker::new();
    let mut count = 0;
    for (title, yaml) in REFERENCE_EXAMPLES {
        for doc in documents(yaml) {
            let name = doc["metadata"]["name"].as_str().unwrap_or("?").to_string();
            match checker.check(&doc) {
                Ok(cr) => {
                    assert_eq!(cr.metadata.name.as_deref(), Some(name.as_str()));
                    // No information is lost between the manifest and the Rust type, apart
                    // from comments and defaults the schema fills in.
                    let back = serde_json::to_value(&cr).expect("serializes");
                    assert_eq!(
                        back["spec"]["operation"], doc["spec"]["operation"],
                        "{title}"
                    );
                    assert_eq!(back["spec"]["storage"], doc["spec"]["storage"], "{title}");
                }
                Err(rejections) => {
                    panic!("reference example '{title}' ({name}) refused: {rejections:#?}")
                }
            }
            count += 1;
        }
    }
    assert_eq!(count, 13, "11 examples, the workflow holding 3 documents");
}

#[test]
fn reference_storage_blocks_deserialize_as_documented() {
    let checker = Checker::new();
    let full = checker
        .check(&document(FULL_SPECIFICATION))
        .expect("accepted");
    let spec = &full.spec;
    let kafka = spec.kafka_cluster.as_ref().expect("kafkaCluster");
    assert_eq!(kafka.bootstrap_servers.len(), 2);
    let tls = kafka.tls_secret.as_ref().expect("tlsSecret");
    assert_eq!(
        (tls.name.as_str(), tls.ca_key.as_deref()),
        ("kafka-tls", Some("ca.crt"))
    );
    let sasl = kafka.sasl_secret.as_ref().expect("saslSecret");
    assert_eq!(sasl.mechanism.as_str(), "SCRAM-SHA-256");
    let storage = spec.storage.as_ref().expect("storage");
    assert!(storage.s3.is_some() && storage.config_map.is_some());
    assert_eq!(
        spec.job.as_ref().and_then(|j| j.ttl_seconds_after_finished),
        Some(3600)
    );
    assert!(spec.verify.as_ref().is_some_and(|v| v.strict));

    // saslSecret with only name and mechanism: the keys default to username/password.
    let pre = checker
        .check(&document(PRE_MIGRATION_SNAPSHOT))
        .expect("accepted");
    let sasl = pre
        .spec
        .kafka_cluster
        .as_ref()
        .and_then(|k| k.sasl_secret.as_ref())
        .expect("saslSecret");
    assert_eq!(sasl.username_key_or_default(), "username");
    assert_eq!(sasl.password_key_or_default(), "password");

    // delete without kafkaCluster.
    let cleanup = checker
        .check(&document(DELETE_OLD_SNAPSHOTS))
        .expect("accepted");
    assert!(cleanup.spec.kafka_cluster.is_none());
}

#[test]
fn storage_type_configmap_in_lower_case_is_an_alias() {
    // The Full Specification's comment spells it `configmap`; both spellings are accepted.
    let checker = Checker::new();
    let yaml = edit(
        SNAPSHOT_TO_CONFIGMAP,
        "storageType: configMap",
        "storageType: configmap",
    );
    let cr = checker.check(&document(&yaml)).expect("accepted");
    assert_eq!(
        cr.spec
            .storage
            .as_ref()
            .expect("storage")
            .storage_type
            .normalized(),
        tidemark_operator::crd::common::StorageType::ConfigMap
    );
}

#[test]
fn reference_status_block_matches_the_status_schema() {
    let checker = Checker::new();
    let mut doc = document(SNAPSHOT_TO_CONFIGMAP);
    doc["status"] = document(STATUS)["status"].clone();
    let cr = checker
        .check(&doc)
        .expect("a resource with the reference's status is valid");
    let status: KafkaOffsetRollbackStatus = cr.status.expect("status");
    assert_eq!(
        status.snapshot_data.as_ref().map(|d| d.total_partitions),
        Some(12)
    );
    assert_eq!(
        status.verification_result.as_ref().map(|v| v.matched),
        Some(true)
    );
    assert_eq!(status.common.conditions[0].reason, "SnapshotCreated");
}

#[test]
fn overview_skeleton_is_accepted_and_then_stalled_by_the_operator() {
    // The Overview block is a skeleton (`operation` alone, "# Operation configuration"). The
    // schema accepts it like every other reference example; the operator's validation then names
    // each missing piece (a Stalled condition, no Job) instead of kubectl refusing it.
    let cr = Checker::new()
        .check(&document(OVERVIEW))
        .expect("the skeleton is accepted by the schema");
    let mut cr = cr;
    cr.metadata.namespace = Some("kafka-backup".into());
    let problems = tidemark_operator::validate::validate(&cr);
    let text = format!("{problems:?}");
    assert!(
        text.contains("spec.kafkaCluster is required for operation snapshot"),
        "{text}"
    );
    assert!(
        text.contains("spec.consumerGroups must name at least one group for operation snapshot"),
        "{text}"
    );
    assert!(
        text.contains("spec.storage is required for operation snapshot"),
        "{text}"
    );
}

#[test]
fn every_sample_manifest_is_accepted() {
    let rollbacks = Checker::new();
    let resets = common::Checker::<KafkaOffsetReset>::new();
    let backups = common::Checker::<KafkaBackup>::new();
    let restores = common::Checker::<KafkaRestore>::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/samples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("config/samples")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml")
                && p.file_name().is_some_and(|n| n != "kustomization.yaml")
        })
        .collect();
    files.sort();
    let mut operations = Vec::new();
    let mut strategies = Vec::new();
    let mut modes = Vec::new();
    let mut restore_kinds = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("readable");
        for doc in documents(&text) {
            // Samples leave the namespace to `kubectl apply -n`; the API server adds a uid.
            assert!(
                doc["metadata"].get("namespace").is_none(),
                "{}",
                path.display()
            );
            let problems = match doc["kind"].as_str() {
                Some("KafkaOffsetRollback") => {
                    let mut cr = rollbacks
                        .check(&doc)
                        .unwrap_or_else(|r| panic!("{} refused: {r:#?}", path.display()));
                    cr.metadata.namespace = Some("kafka-backup".into());
                    operations.push(cr.spec.operation.as_str());
                    tidemark_operator::validate::validate(&cr)
                }
                Some("KafkaOffsetReset") => {
                    let mut cr = resets
                        .check(&doc)
                        .unwrap_or_else(|r| panic!("{} refused: {r:#?}", path.display()));
                    cr.metadata.namespace = Some("kafka-backup".into());
                    cr.metadata.uid = Some("0b5c1c2e-7a43-4a8e-9f0e-4a1d2c3b4a5f".into());
                    strategies.push(if cr.spec.approval.is_manual() {
                        "toDatetime, approved"
                    } else if cr.spec.encryption.is_some() {
                        "fromBackup, encrypted"
                    } else {
                        cr.spec.reset_strategy.as_str()
                    });
                    tidemark_operator::validate::validate(&cr)
                }
                Some("KafkaBackup") => {
                    let mut cr = backups
                        .check(&doc)
                        .unwrap_or_else(|r| panic!("{} refused: {r:#?}", path.display()));
                    cr.metadata.namespace = Some("kafka-backup".into());
                    cr.metadata.uid = Some("3c9a7e10-2b4d-4f6a-8e1c-5d7b9a0f2e64".into());
                    let schedule = if cr.spec.schedule.is_some() {
                        "scheduled"
                    } else {
                        "once"
                    };
                    modes.push(format!("{} {schedule}", cr.spec.mode.as_str()));
                    tidemark_operator::validate::validate(&cr)
                }
                Some("KafkaRestore") => {
                    let mut cr = restores
                        .check(&doc)
                        .unwrap_or_else(|r| panic!("{} refused: {r:#?}", path.display()));
                    cr.metadata.namespace = Some("kafka-backup".into());
                    cr.metadata.uid = Some("9e8d7c6b-5a49-4f38-a726-15f4e3d2c1b0".into());
                    let spec = &cr.spec;
                    let by = if spec.backup_ref.name.is_some() {
                        "KafkaBackup"
                    } else {
                        "backupId"
                    };
                    let kind = if spec.dry_run {
                        "dry run"
                    } else if spec
                        .consumer_groups
                        .as_ref()
                        .is_some_and(|g| g.reset_offsets)
                    {
                        "three-phase"
                    } else if spec.pitr.is_some() {
                        "pitr"
                    } else {
                        "full"
                    };
                    restore_kinds.push(format!("{kind} from {by}"));
                    tidemark_operator::validate::validate(&cr)
                }
                other => panic!("{}: unexpected kind {other:?}", path.display()),
            };
            assert!(
                problems.is_empty(),
                "{} fails the operator's checks: {problems:?}",
                path.display()
            );
        }
    }
    operations.sort();
    assert_eq!(
        operations,
        ["delete", "rollback", "snapshot", "snapshot", "verify"]
    );
    modes.sort();
    assert_eq!(
        modes,
        [
            "continuous once",
            "incremental scheduled",
            "incremental scheduled",
            "incremental scheduled",
            "oneShot once",
            "oneShot once",
            "oneShot scheduled"
        ]
    );
    restore_kinds.sort();
    assert_eq!(
        restore_kinds,
        [
            "dry run from KafkaBackup",
            "full from KafkaBackup",
            "full from KafkaBackup",
            "pitr from backupId",
            "three-phase from KafkaBackup"
        ]
    );
    strategies.sort();
    assert_eq!(
        strategies,
        [
            "fromBackup",
            "fromBackup, encrypted",
            "fromFile",
            "fromSnapshot",
            "shiftBy",
            "toDatetime",
            "toDatetime, approved",
            "toEarliest"
        ]
    );

    let kustomization =
        std::fs::read_to_string(dir.join("kustomization.yaml")).expect("kustomization.yaml");
    for path in &files {
        let name = path.file_name().expect("name").to_string_lossy();
        assert!(
            kustomization.contains(name.as_ref()),
            "config/samples/kustomization.yaml does not list {name}"
        );
    }
}

#[test]
fn cel_rules_compile_and_fit_the_cost_budget() {
    let count = check_cel_rules(Checker::new().schema());
    assert!(count >= 15, "only {count} rules found");
}

// ---------------------------------------------------------------------------------------------
// Rejected.

fn malformed() -> Vec<Case> {
    let snapshot = SNAPSHOT_TO_CONFIGMAP;
    let sasl = PRE_MIGRATION_SNAPSHOT;
    let full = FULL_SPECIFICATION;
    use Layer::{Cel, Structure};
    vec![
        case(
            "unknown operation",
            edit(snapshot, "operation: snapshot", "operation: restore"),
            Structure,
            "/spec/operation: \"restore\" is not one of",
        ),
        case(
            "rollback without snapshotId",
            edit(OPERATION_ROLLBACK, "  snapshotId: \"pre-migration-20241201\"\n", ""),
            Cel,
            "snapshotId is required for rollback, verify and delete",
        ),
        case(
            "a description on a rollback",
            edit(OPERATION_ROLLBACK, "  snapshotId: \"pre-migration-20241201\"\n", "  snapshotId: \"pre-migration-20241201\"\n  description: never stored\n"),
            Cel,
            "description is only stored by operation snapshot",
        ),
        case(
            "verify.afterRollback not a boolean",
            edit(OPERATION_ROLLBACK, "  snapshotId: \"pre-migration-20241201\"\n", "  snapshotId: \"pre-migration-20241201\"\n  verify:\n    afterRollback: sometimes\n"),
            Structure,
            "/spec/verify/afterRollback",
        ),
        case(
            "verify without kafkaCluster",
            edit(OPERATION_VERIFY, "  kafkaCluster:\n    bootstrapServers:\n      - kafka:9092\n", ""),
            Cel,
            "kafkaCluster is required for rollback and verify",
        ),
        case(
            "unknown storageType",
            edit(snapshot, "storageType: configMap", "storageType: ftp"),
            Structure,
            "/spec/storage/storageType: \"ftp\" is not one of",
        ),
        case(
            "s3 without bucket",
            edit(sasl, "      bucket: kafka-snapshots\n", ""),
            Structure,
            "/spec/storage/s3: \"bucket\" is a required property",
        ),
        case(
            "storageType s3 without an s3 block",
            edit(
                sasl,
                "    s3:\n      bucket: kafka-snapshots\n      region: us-west-2\n      prefix: offset-snapshots\n",
                "",
            ),
            Cel,
            "storage.s3 is required when storageType is s3",
        ),
        case(
            "storageType pvc without a pvc block",
            edit(snapshot, "storageType: configMap", "storageType: pvc"),
            Cel,
            "storage.pvc is required when storageType is pvc",
        ),
        case(
            "negative backoffLimit",
            edit(full, "backoffLimit: 3", "backoffLimit: -1"),
            Structure,
            "/spec/job/backoffLimit: -1 is less than the minimum of 0",
        ),
        case(
            "activeDeadlineSeconds 0",
            edit(full, "activeDeadlineSeconds: 600", "activeDeadlineSeconds: 0"),
            Structure,
            "/spec/job/activeDeadlineSeconds: 0 is less than the minimum of 1",
        ),
        case(
            "negative ttlSecondsAfterFinished",
            edit(full, "ttlSecondsAfterFinished: 3600", "ttlSecondsAfterFinished: -5"),
            Structure,
            "/spec/job/ttlSecondsAfterFinished: -5 is less than the minimum of 0",
        ),
        case(
            "snapshotId with '..' inside",
            edit(snapshot, "quick-snapshot-001", "quick..001"),
            Cel,
            "snapshotId must not contain '..'",
        ),
        case(
            "snapshotId leaving the folder",
            edit(snapshot, "quick-snapshot-001", "../etc/passwd"),
            Structure,
            "/spec/snapshotId: \"../etc/passwd\" does not match",
        ),
        case(
            "snapshotId with '/'",
            edit(snapshot, "quick-snapshot-001", "team/quick-001"),
            Structure,
            "/spec/snapshotId: \"team/quick-001\" does not match",
        ),
        case(
            "empty bootstrapServers",
            edit(snapshot, "    bootstrapServers:\n      - kafka:9092\n", "    bootstrapServers: []\n"),
            Structure,
            "/spec/kafkaCluster/bootstrapServers: [] has less than 1 item",
        ),
        case(
            "bootstrap server without a port",
            edit(snapshot, "- kafka:9092", "- kafka"),
            Cel,
            "every bootstrap server must be host:port",
        ),
        case(
            "bootstrap server as a URL",
            edit(snapshot, "- kafka:9092", "- kafka://broker:9092"),
            Cel,
            "every bootstrap server must be host:port",
        ),
        case(
            "SASL_SSL without saslSecret",
            edit(
                sasl,
                "    saslSecret:\n      name: kafka-credentials\n      mechanism: SCRAM-SHA-256\n",
                "",
            ),
            Cel,
            "saslSecret is required when securityProtocol is SASL_PLAINTEXT or SASL_SSL",
        ),
        case(
            "saslSecret with PLAINTEXT",
            edit(sasl, "securityProtocol: SASL_SSL", "securityProtocol: PLAINTEXT"),
            Cel,
            "saslSecret is only used with securityProtocol SASL_PLAINTEXT or SASL_SSL",
        ),
        case(
            "unknown SASL mechanism",
            edit(sasl, "mechanism: SCRAM-SHA-256", "mechanism: GSSAPI"),
            Structure,
            "/spec/kafkaCluster/saslSecret/mechanism: \"GSSAPI\" is not one of",
        ),
        case(
            "unknown securityProtocol",
            edit(sasl, "securityProtocol: SASL_SSL", "securityProtocol: TLS"),
            Structure,
            "/spec/kafkaCluster/securityProtocol: \"TLS\" is not one of",
        ),
        case(
            "tlsSecret with a plaintext protocol",
            edit(full, "securityProtocol: SASL_SSL", "securityProtocol: SASL_PLAINTEXT"),
            Cel,
            "tlsSecret and caSecret are only used with securityProtocol SSL or SASL_SSL",
        ),
        case(
            "client certificate without its key",
            edit(full, "      caKey: ca.crt\n", "      caKey: ca.crt\n      certKey: tls.crt\n"),
            Cel,
            "tlsSecret.certKey and tlsSecret.keyKey go together",
        ),
        case(
            "rollback without storage",
            edit(
                OPERATION_ROLLBACK,
                "  storage:\n    storageType: configMap\n    configMap:\n      name: offset-snapshots\n",
                "",
            ),
            Cel,
            "storage is required for rollback, verify and delete",
        ),
        case(
            "empty consumer group name",
            edit(snapshot, "- my-small-group", "- \"\""),
            Structure,
            "/spec/consumerGroups/0: \"\" is shorter than 1 character",
        ),
        case(
            "Secret name that is not a DNS name",
            edit(sasl, "name: kafka-credentials", "name: Kafka_Credentials"),
            Structure,
            "/spec/kafkaCluster/saslSecret/name: \"Kafka_Credentials\" does not match",
        ),
        case(
            "ConfigMap name with a space",
            edit(snapshot, "name: offset-snapshots", "name: offset snapshots"),
            Structure,
            "/spec/storage/configMap/name: \"offset snapshots\" does not match",
        ),
        case(
            "plain-HTTP S3 endpoint without allowHttp",
            edit(
                sasl,
                "      prefix: offset-snapshots\n",
                "      prefix: offset-snapshots\n      endpoint: http://minio:9000\n",
            ),
            Cel,
            "storage.s3.allowHttp must be true to use a plain-HTTP endpoint",
        ),
        case(
            "pvc path climbing out of the volume",
            edit(
                snapshot,
                "    storageType: configMap\n    configMap:\n      name: offset-snapshots\n",
                "    storageType: pvc\n    pvc:\n      claimName: backups\n      path: snaps/../../etc\n",
            ),
            Cel,
            "storage.pvc.path must not contain '..'",
        ),
        case(
            "misspelled field (strict field validation)",
            edit(snapshot, "snapshotId:", "snapshotID:"),
            Structure,
            "Additional properties are not allowed ('snapshotID' was unexpected)",
        ),
        case(
            "string where a number belongs",
            edit(full, "backoffLimit: 3", "backoffLimit: three"),
            Structure,
            "/spec/job/backoffLimit: \"three\" is not of type",
        ),
        case(
            "the reference's original apiVersion",
            edit(snapshot, "tidemark.dev/v1alpha1", "kafka.oso.sh/v1alpha1"),
            Structure,
            "/apiVersion: \"kafka.oso.sh/v1alpha1\" is not one of",
        ),
    ]
}

#[test]
fn malformed_manifests_are_rejected_for_the_stated_reason() {
    let cases = malformed();
    assert!(cases.len() >= 15);
    assert_rejected(&Checker::new(), &cases);
}

#[test]
fn secrets_in_properties_pass_the_schema_but_not_the_operator() {
    // The schema cannot know which librdkafka keys carry secrets; the operator's validation
    // refuses them before anything is built.
    let yaml = edit(
        SNAPSHOT_TO_CONFIGMAP,
        "      - kafka:9092\n",
        "      - kafka:9092\n    properties:\n      sasl.password: hunter2\n",
    );
    let mut cr = Checker::new()
        .check(&document(&yaml))
        .expect("structurally fine");
    cr.metadata.namespace = Some("kafka-backup".into());
    let problems = tidemark_operator::validate::validate(&cr);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].reason, "SecretInProperties");
}

// ---------------------------------------------------------------------------------------------
// What every kind shows before and after the operator writes a status.

/// `doc` with the CRD's default status, as the API server returns a resource the operator has
/// not written a status for yet; checked against `K`'s schema and read as `K`.
fn with_default_status<K>(mut doc: serde_json::Value) -> K
where
    K: kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned,
{
    let crd = tidemark_operator::crd::all()
        .into_iter()
        .find(|c| c.spec.names.kind == K::kind(&()))
        .expect("the CRD");
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("a schema");
    let default = schema
        .properties
        .as_ref()
        .and_then(|p| p.get("status"))
        .and_then(|s| s.default.as_ref())
        .unwrap_or_else(|| panic!("{}: status has no default", K::kind(&())));
    doc["status"] = default.0.clone();
    common::Checker::<K>::new()
        .check(&doc)
        .unwrap_or_else(|r| panic!("{}: default status refused: {r:#?}", K::kind(&())))
}

// `kubectl get` shows READY and REASON, from the Ready condition, on every kind (before AGE).
#[test]
fn every_kind_shows_the_ready_condition_in_columns() {
    for crd in tidemark_operator::crd::all() {
        let kind = &crd.spec.names.kind;
        let columns: Vec<(String, String)> = crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| (c.name.clone(), c.json_path.clone()))
            .collect();
        let tail: Vec<(&str, &str)> = columns[columns.len() - 3..]
            .iter()
            .map(|(n, p)| (n.as_str(), p.as_str()))
            .collect();
        assert_eq!(
            tail,
            [
                ("Ready", r#".status.conditions[?(@.type=="Ready")].status"#),
                ("Reason", r#".status.conditions[?(@.type=="Ready")].reason"#),
                ("Age", ".metadata.creationTimestamp"),
            ],
            "{kind}"
        );
    }
}

// A resource the operator has not reconciled yet reads as in progress: the CRD's default status
// says generation 0 is observed (kstatus: InProgress, where no status at all computes as
// Current) and Ready is Unknown, WaitingForOperator. It is valid against each kind's schema.
#[test]
fn a_resource_without_a_status_from_the_operator_shows_it_waits() {
    let korb: KafkaOffsetRollback = with_default_status(document(SNAPSHOT_TO_CONFIGMAP));
    let status = korb.status.expect("the default status");
    assert_eq!(status.common.observed_generation, Some(0));
    assert_eq!(status.common.phase, None);
    let ready = &status.common.conditions[0];
    assert_eq!(
        (
            ready.type_.as_str(),
            ready.status.as_str(),
            ready.reason.as_str()
        ),
        ("Ready", "Unknown", "WaitingForOperator")
    );
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/samples");
    let sample = |file: &str| {
        let path = samples.join(file);
        document(&std::fs::read_to_string(&path).expect("a sample"))
    };
    let kb: KafkaBackup = with_default_status(sample("kafkabackup-daily-s3.yaml"));
    let kr: KafkaRestore = with_default_status(sample("kafkarestore-full.yaml"));
    let kor: KafkaOffsetReset = with_default_status(sample("kafkaoffsetreset-shift-by.yaml"));
    assert_eq!(
        kb.status.and_then(|s| s.common.observed_generation),
        Some(0)
    );
    assert_eq!(
        kr.status.and_then(|s| s.common.observed_generation),
        Some(0)
    );
    assert_eq!(
        kor.status.and_then(|s| s.common.observed_generation),
        Some(0)
    );
}

//! `spec.encryption` of KafkaBackup, KafkaRestore, KafkaOffsetRollback and KafkaOffsetReset against the generated
//! CRDs, checked the way an API server checks them (see `common/mod.rs`): a Secret of keys, a
//! KMS key, or both, are accepted; a block naming no key, a bad Secret name or key id, a KMS key
//! id with spaces, unknown fields and (for snapshots) a ConfigMap storage are refused, each for
//! its own stated reason; and the status field the operator writes is in the status schema.

mod common;

use common::{assert_rejected, case, document, edit, Case, Layer};
use serde_json::json;
use tidemark_operator::crd::{KafkaBackup, KafkaOffsetReset, KafkaOffsetRollback, KafkaRestore};

const BACKUP: &str = r#"
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

const RESTORE: &str = r#"
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

const ROLLBACK: &str = r#"
apiVersion: tidemark.dev/v1alpha1
kind: KafkaOffsetRollback
metadata:
  name: orders
spec:
  operation: snapshot
  kafkaCluster:
    bootstrapServers:
      - kafka:9092
  consumerGroups:
    - orders-app
  storage:
    storageType: s3
    s3:
      bucket: kafka-snapshots
"#;

const RESET: &str = r#"
apiVersion: tidemark.dev/v1alpha1
kind: KafkaOffsetReset
metadata:
  name: orders
spec:
  kafkaCluster:
    bootstrapServers:
      - kafka:9092
  consumerGroups:
    - orders-app
  resetStrategy: fromBackup
  backupId: orders-nightly
  storage:
    storageType: s3
    s3:
      bucket: kafka-backups
"#;

/// `base` with `block` (lines indented under `spec:`) added to its spec.
fn with(base: &str, block: &str) -> String {
    edit(base, "spec:\n", &format!("spec:\n{block}"))
}

/// The encryption blocks every kind accepts, and what they deserialize to.
fn accepted_blocks() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "  encryption:\n    secretRef:\n      name: backup-keys\n",
            json!({"secretRef": {"name": "backup-keys"}}),
        ),
        (
            "  encryption:\n    secretRef:\n      name: backup-keys\n      keyId: key-2026_12.v2\n",
            json!({"secretRef": {"name": "backup-keys", "keyId": "key-2026_12.v2"}}),
        ),
        (
            "  encryption:\n    kmsKeyId: arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab\n",
            json!({"kmsKeyId": "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}),
        ),
        (
            "  encryption:\n    kmsKeyId: alias/tidemark\n    secretRef:\n      name: backup-keys\n",
            json!({"kmsKeyId": "alias/tidemark", "secretRef": {"name": "backup-keys"}}),
        ),
    ]
}

#[test]
fn a_secret_a_kms_key_or_both_are_accepted_by_every_kind() {
    let backups = common::Checker::<KafkaBackup>::new();
    let restores = common::Checker::<KafkaRestore>::new();
    let rollbacks = common::Checker::<KafkaOffsetRollback>::new();
    let resets = common::Checker::<KafkaOffsetReset>::new();
    for (block, expected) in accepted_blocks() {
        let kb = backups
            .check(&document(&with(BACKUP, block)))
            .unwrap_or_else(|r| panic!("refused: {r:#?}\n{block}"));
        let kr = restores
            .check(&document(&with(RESTORE, block)))
            .unwrap_or_else(|r| panic!("refused: {r:#?}\n{block}"));
        let korb = rollbacks
            .check(&document(&with(ROLLBACK, block)))
            .unwrap_or_else(|r| panic!("refused: {r:#?}\n{block}"));
        let kor = resets
            .check(&document(&with(RESET, block)))
            .unwrap_or_else(|r| panic!("refused: {r:#?}\n{block}"));
        for got in [
            serde_json::to_value(&kb.spec.encryption),
            serde_json::to_value(&kr.spec.encryption),
            serde_json::to_value(&korb.spec.encryption),
            serde_json::to_value(&kor.spec.encryption),
        ] {
            assert_eq!(got.expect("json"), expected, "{block}");
        }
    }
    // Without the block: stored in the clear.
    let kb = backups.check(&document(BACKUP)).expect("plain");
    assert_eq!(kb.spec.encryption, None);
}

/// The malformed blocks every kind refuses, with the layer and the reason.
fn malformed(base: &str) -> Vec<Case> {
    use Layer::{Cel, Structure};
    vec![
        case(
            "an empty encryption block",
            with(base, "  encryption: {}\n"),
            Cel,
            "encryption needs secretRef (a Secret of keys), kmsKeyId (an AWS KMS key) or both",
        ),
        case(
            "a secretRef without a name",
            with(base, "  encryption:\n    secretRef:\n      keyId: k1\n"),
            Structure,
            "/spec/encryption/secretRef: \"name\" is a required property",
        ),
        case(
            "a Secret name that is not a DNS subdomain",
            with(
                base,
                "  encryption:\n    secretRef:\n      name: Backup_Keys\n",
            ),
            Structure,
            "/spec/encryption/secretRef/name",
        ),
        case(
            "an empty Secret name",
            with(base, "  encryption:\n    secretRef:\n      name: \"\"\n"),
            Structure,
            "/spec/encryption/secretRef/name",
        ),
        case(
            "a key id with a slash",
            with(
                base,
                "  encryption:\n    secretRef:\n      name: keys\n      keyId: ../k1\n",
            ),
            Structure,
            "/spec/encryption/secretRef/keyId",
        ),
        case(
            "a key id starting with a dot",
            with(
                base,
                "  encryption:\n    secretRef:\n      name: keys\n      keyId: .k1\n",
            ),
            Structure,
            "/spec/encryption/secretRef/keyId",
        ),
        case(
            "a key id of 129 characters",
            with(
                base,
                &format!(
                    "  encryption:\n    secretRef:\n      name: keys\n      keyId: {}\n",
                    "k".repeat(129)
                ),
            ),
            Structure,
            "/spec/encryption/secretRef/keyId",
        ),
        case(
            "a KMS key id with a space",
            with(base, "  encryption:\n    kmsKeyId: \"alias/my key\"\n"),
            Structure,
            "/spec/encryption/kmsKeyId",
        ),
        case(
            "key material inline",
            with(
                base,
                "  encryption:\n    secretRef:\n      name: keys\n    key: c2VjcmV0\n",
            ),
            Structure,
            "/spec/encryption",
        ),
    ]
}

#[test]
fn malformed_encryption_blocks_are_rejected_for_the_stated_reason() {
    assert_rejected(&common::Checker::<KafkaBackup>::new(), &malformed(BACKUP));
    assert_rejected(&common::Checker::<KafkaRestore>::new(), &malformed(RESTORE));
    assert_rejected(
        &common::Checker::<KafkaOffsetRollback>::new(),
        &malformed(ROLLBACK),
    );
    assert_rejected(
        &common::Checker::<KafkaOffsetReset>::new(),
        &malformed(RESET),
    );
}

#[test]
fn snapshots_in_a_config_map_are_never_encrypted() {
    let config_map = edit(
        ROLLBACK,
        "    storageType: s3\n    s3:\n      bucket: kafka-snapshots\n",
        "    storageType: configMap\n    configMap:\n      name: offset-snapshots\n",
    );
    assert_rejected(
        &common::Checker::<KafkaOffsetRollback>::new(),
        &[case(
            "an encrypted snapshot in a ConfigMap",
            with(&config_map, "  encryption:\n    kmsKeyId: alias/k\n"),
            Layer::Cel,
            "encryption is not used with storageType configMap",
        )],
    );
    // A reset from a snapshot in a ConfigMap, with keys.
    let config_map = edit(
        &edit(
            RESET,
            "  resetStrategy: fromBackup\n  backupId: orders-nightly\n",
            "  resetStrategy: fromSnapshot\n  fromSnapshotId: before-change\n",
        ),
        "    storageType: s3\n    s3:\n      bucket: kafka-backups\n",
        "    storageType: configMap\n    configMap:\n      name: offset-snapshots\n",
    );
    assert!(common::Checker::<KafkaOffsetReset>::new()
        .check(&document(&config_map))
        .is_ok());
    assert_rejected(
        &common::Checker::<KafkaOffsetReset>::new(),
        &[case(
            "a reset with keys and a ConfigMap storage",
            with(&config_map, "  encryption:\n    kmsKeyId: alias/k\n"),
            Layer::Cel,
            "encryption is not used with storageType configMap",
        )],
    );
}

#[test]
fn the_key_id_is_part_of_every_status_schema() {
    for kind in [
        "KafkaBackup",
        "KafkaRestore",
        "KafkaOffsetRollback",
        "KafkaOffsetReset",
    ] {
        let schema = common::crd_schema(kind);
        let field = &schema["properties"]["status"]["properties"]["encryptionKeyId"];
        assert_eq!(field["type"], "string", "{kind}: {schema}");
    }
}

#[test]
fn a_backups_key_is_a_wide_printer_column() {
    let crd = tidemark_operator::crd::all()
        .into_iter()
        .find(|c| c.spec.names.kind == "KafkaBackup")
        .expect("KafkaBackup CRD");
    let column = crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .find(|c| c.json_path == ".status.encryptionKeyId")
        .expect("a Key column");
    assert_eq!(column.name, "Key");
    assert_eq!(column.priority, Some(1), "only with -o wide");
}

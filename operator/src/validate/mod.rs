//! Synchronous checks of a resource before anything is built: what the CRD schema cannot
//! express (secret-bearing or spec-managed Kafka properties, the run annotation, what the
//! worker would refuse) plus the schema's own requirements again, for resources stored before a
//! stricter CRD was installed. Each problem is a stable `reason` for the `Stalled` condition
//! and a message a person can act on, naming the field. Also lists the Secrets (and their keys)
//! a resource references, so the controller can check they exist without ever reading a value.

use std::fmt;
use std::ops::RangeInclusive;

use croner::parser::{CronParser, Seconds, Year};
use kube::Resource;
use tidemark_task::durations::parse_age;
use tidemark_task::topics::TopicFilter;

use crate::build::{RunId, WorkerKind, RUN_ANNOTATION};
use crate::crd::backup::{BackupMode, Compression, MAX_PARALLELISM};
use crate::crd::common::{
    EncryptionSpec, KafkaClusterSpec, StorageSpec, StorageType, DEFAULT_CA_KEY,
};
use crate::crd::reset::ResetStrategy;
use crate::crd::restore::{
    GroupStrategy, MAX_CHECKPOINT_INTERVAL_SECS, MAX_CONCURRENT_PARTITIONS, MAX_PRODUCE_BATCH,
};
use crate::crd::rollback::{Operation, SNAPSHOT_ID_PATTERN};
use crate::crd::status::Phase;
use crate::crd::{
    KafkaBackup, KafkaOffsetReset, KafkaOffsetRollback, KafkaOffsetRollbackStatus, KafkaRestore,
};

mod approval;
mod backup;
mod reset;
mod restore;
mod rollback;

pub use backup::parse_schedule;
pub use rollback::taken_snapshot;

/// A property key carries a secret.
pub const REASON_SECRET_IN_PROPERTIES: &str = "SecretInProperties";
/// A property key is set from the spec's own fields.
pub const REASON_PROPERTY_MANAGED_BY_SPEC: &str = "PropertyManagedBySpec";
/// A property key would switch a guarantee off or load code
/// ([`tidemark_task::properties::REFUSED_PROPERTIES`]).
pub const REASON_UNSAFE_PROPERTY: &str = "UnsafeProperty";
/// `kafkaCluster.tlsInsecureSkipVerify` is on: the reason of the Warning Event each run raises.
pub const REASON_INSECURE_TLS: &str = "InsecureTls";
/// The `tidemark.dev/run` annotation is not a whole number.
pub const REASON_INVALID_RUN_ANNOTATION: &str = "InvalidRunAnnotation";
/// A field the operation needs is missing.
pub const REASON_MISSING_FIELD: &str = "MissingField";
/// A field is set that the chosen strategy does not use.
pub const REASON_UNUSED_FIELD: &str = "UnusedField";
/// A field holds a value the worker refuses (out of range, not a valid regex, ...).
pub const REASON_INVALID_FIELD: &str = "InvalidField";
/// The snapshot id could escape its folder or is not a valid ConfigMap key.
pub const REASON_INVALID_SNAPSHOT_ID: &str = "InvalidSnapshotId";
/// The resource has no namespace (it is namespaced).
pub const REASON_MISSING_NAMESPACE: &str = "MissingNamespace";
/// The schedule is not a cron expression a CronJob runs.
pub const REASON_INVALID_SCHEDULE: &str = "InvalidSchedule";
/// The storage type cannot hold what the kind stores.
pub const REASON_UNSUPPORTED_STORAGE: &str = "UnsupportedStorage";
/// A snapshot of a fixed id that a run of the resource took already: never taken again.
pub const REASON_SNAPSHOT_EXISTS: &str = "SnapshotExists";

/// One reason the resource cannot run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Stable CamelCase reason, used as the condition reason and in Events.
    pub reason: &'static str,
    /// What is wrong and what to do, naming the field.
    pub message: String,
}

impl Problem {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Problem {
            reason,
            message: message.into(),
        }
    }
}

/// A Secret a resource references and the entries the worker will read from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretReference {
    /// The spec field that names it, e.g. `spec.kafkaCluster.saslSecret`.
    pub field: &'static str,
    /// Secret name, in the resource's namespace.
    pub name: String,
    /// Entries that must exist. Empty for Secrets passed whole as environment (`envFrom`):
    /// only their existence is checked.
    pub keys: Vec<String>,
}

/// librdkafka properties that carry a secret. Any key containing `password` or `secret` is
/// refused as well.
const SECRET_PROPERTIES: &[&str] = &["sasl.jaas.config", "ssl.key.pem", "sasl.oauthbearer.config"];

/// librdkafka properties the operator sets from the spec, and the field to use instead.
const MANAGED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "kafkaCluster.bootstrapServers"),
    ("metadata.broker.list", "kafkaCluster.bootstrapServers"),
    ("security.protocol", "kafkaCluster.securityProtocol"),
    ("sasl.mechanism", "kafkaCluster.saslSecret.mechanism"),
    ("sasl.mechanisms", "kafkaCluster.saslSecret.mechanism"),
    ("sasl.username", "kafkaCluster.saslSecret"),
    (
        "ssl.ca.location",
        "kafkaCluster.caSecret or kafkaCluster.tlsSecret",
    ),
    ("ssl.certificate.location", "kafkaCluster.tlsSecret.certKey"),
    ("ssl.key.location", "kafkaCluster.tlsSecret.keyKey"),
    ("ssl_key", "kafkaCluster.tlsSecret.keyKey"),
];

/// Whether a librdkafka property key carries a secret (`sasl.password`, `ssl.key.password`,
/// `sasl.jaas.config`, `ssl.key.pem`, …). Such keys are refused by [`validate`] and dropped
/// from the task by the builder.
pub fn is_secret_property(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    key.contains("password") || key.contains("secret") || SECRET_PROPERTIES.contains(&key.as_str())
}

/// The checks of one kind's spec; [`validate`] adds those every kind shares.
pub trait SpecChecks: Resource {
    /// Everything wrong with the spec that the schema does not (or might not) catch.
    fn spec_problems(&self) -> Vec<Problem>;

    /// The Kafka cluster the resource's worker connects to, if any.
    fn kafka_cluster(&self) -> Option<&KafkaClusterSpec>;
}

/// What `cr` asks for that runs but gives up a guarantee (TLS verification off): each is
/// published as a Warning Event when a run's Job is created.
pub fn warnings<K: SpecChecks>(cr: &K) -> Vec<Problem> {
    cr.kafka_cluster()
        .filter(|c| c.tls_insecure_skip_verify && c.security_protocol.uses_tls())
        .map(|_| {
            Problem::new(
                REASON_INSECURE_TLS,
                "spec.kafkaCluster.tlsInsecureSkipVerify is true: the worker connects without verifying the brokers' TLS certificates and host names",
            )
        })
        .into_iter()
        .collect()
}

/// Everything wrong with `cr` that the schema does not (or might not) catch; empty when it can
/// run.
pub fn validate<K: SpecChecks>(cr: &K) -> Vec<Problem> {
    let mut problems = Vec::new();
    if cr.meta().namespace.is_none() {
        problems.push(Problem::new(
            REASON_MISSING_NAMESPACE,
            "the resource has no metadata.namespace",
        ));
    }
    if let Err(e) = RunId::of(cr) {
        let value = cr
            .meta()
            .annotations
            .as_ref()
            .and_then(|a| a.get(RUN_ANNOTATION))
            .cloned()
            .unwrap_or_default();
        problems.push(Problem::new(
            REASON_INVALID_RUN_ANNOTATION,
            format!(
                "annotation {RUN_ANNOTATION} is '{value}'; set it to a whole number (bump it to run again): {e}"
            ),
        ));
    }
    problems.extend(cr.spec_problems());
    problems
}

/// `spec.kafkaCluster`: brokers, the SASL Secret its protocol needs, and properties that carry
/// secrets or that the spec's own fields set.
fn cluster_problems(cluster: &KafkaClusterSpec, problems: &mut Vec<Problem>) {
    if cluster.bootstrap_servers.is_empty() {
        problems.push(Problem::new(
            REASON_MISSING_FIELD,
            "spec.kafkaCluster.bootstrapServers must list at least one host:port",
        ));
    }
    if cluster.security_protocol.uses_sasl() && cluster.sasl_secret.is_none() {
        problems.push(Problem::new(
            REASON_MISSING_FIELD,
            format!(
                "spec.kafkaCluster.saslSecret is required with securityProtocol {}",
                cluster.security_protocol.as_str()
            ),
        ));
    }
    for key in cluster.properties.keys() {
        let lower = key.trim().to_ascii_lowercase();
        if is_secret_property(key) {
            problems.push(Problem::new(
                REASON_SECRET_IN_PROPERTIES,
                format!(
                    "spec.kafkaCluster.properties['{key}'] carries a secret; remove it and reference a Secret instead (kafkaCluster.saslSecret for SASL credentials, kafkaCluster.tlsSecret for TLS keys)"
                ),
            ));
        } else if let Some((_, field)) = MANAGED_PROPERTIES.iter().find(|(k, _)| *k == lower) {
            problems.push(Problem::new(
                REASON_PROPERTY_MANAGED_BY_SPEC,
                format!(
                    "spec.kafkaCluster.properties['{key}'] is set by the operator; use spec.{field} instead"
                ),
            ));
        } else if let Some(why) = tidemark_task::properties::refusal(key) {
            problems.push(Problem::new(
                REASON_UNSAFE_PROPERTY,
                format!("spec.kafkaCluster.properties['{key}'] {why}"),
            ));
        }
    }
    if cluster.tls_insecure_skip_verify && !cluster.security_protocol.uses_tls() {
        problems.push(Problem::new(
            REASON_INVALID_FIELD,
            "spec.kafkaCluster.tlsInsecureSkipVerify is only used with securityProtocol SSL or SASL_SSL",
        ));
    }
}

/// A storage block (`storage_field`, e.g. `spec.storage`): the block of the chosen storage type is
/// present.
fn storage_problems(storage_field: &str, storage: &StorageSpec, problems: &mut Vec<Problem>) {
    let (present, field) = match storage.storage_type.normalized() {
        StorageType::Pvc => (storage.pvc.is_some(), "pvc"),
        StorageType::S3 => (storage.s3.is_some(), "s3"),
        StorageType::Azure => (storage.azure.is_some(), "azure"),
        StorageType::Gcs => (storage.gcs.is_some(), "gcs"),
        StorageType::ConfigMap | StorageType::ConfigMapLower => {
            (storage.config_map.is_some(), "configMap")
        }
    };
    if !present {
        problems.push(Problem::new(
            REASON_MISSING_FIELD,
            format!("{storage_field}.{field} is required when storageType is {field}"),
        ));
    }
}

/// `spec.encryption`, when set: a key source is named, the Secret's name and key id are
/// valid, the KMS key id is plausible, and the storage can hold encrypted data (`storage_type`,
/// when known; a ConfigMap cannot). The schema checks the same; a resource stored before it
/// did is stalled here.
fn encryption_problems(
    encryption: Option<&EncryptionSpec>,
    storage_type: Option<StorageType>,
    problems: &mut Vec<Problem>,
) {
    let Some(encryption) = encryption else {
        return;
    };
    if encryption.secret_ref.is_none() && encryption.kms_key_id.is_none() {
        problems.push(Problem::new(
            REASON_MISSING_FIELD,
            "spec.encryption needs secretRef (a Secret of keys), kmsKeyId (an AWS KMS key) or both",
        ));
    }
    if let Some(secret) = &encryption.secret_ref {
        if !is_dns_subdomain(&secret.name) {
            problems.push(Problem::new(
                REASON_INVALID_FIELD,
                format!(
                    "spec.encryption.secretRef.name '{}' is not a valid Secret name (lower-case letters, digits, '-' and '.', at most 253 characters, starting and ending with a letter or digit)",
                    secret.name
                ),
            ));
        }
        if let Some(id) = &secret.key_id {
            if let Err(why) = tidemark_task::check_key_id(id) {
                problems.push(Problem::new(
                    REASON_INVALID_FIELD,
                    format!("spec.encryption.secretRef.keyId {why}"),
                ));
            }
        }
    }
    if let Some(kms) = &encryption.kms_key_id {
        if kms.trim().is_empty() || kms.len() > 2048 || kms.chars().any(char::is_whitespace) {
            problems.push(Problem::new(
                REASON_INVALID_FIELD,
                "spec.encryption.kmsKeyId is not a KMS key id, ARN or alias (non-empty, no spaces, at most 2048 characters)",
            ));
        }
    }
    if storage_type.map(StorageType::normalized) == Some(StorageType::ConfigMap) {
        problems.push(Problem::new(
            REASON_UNSUPPORTED_STORAGE,
            "spec.encryption is not used with spec.storage.storageType configMap (a ConfigMap holds snapshots in the clear): use pvc, s3, azure or gcs, or remove spec.encryption",
        ));
    }
}

/// RFC 1123 subdomain (a Secret's name): dot-separated labels of lower-case letters, digits
/// and `-`, at most 253 characters.
fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A problem with the snapshot id in `field` (`spec.snapshotId`, `spec.fromSnapshotId`).
fn snapshot_id_problem(field: &str, id: &str) -> Option<Problem> {
    id_problem(REASON_INVALID_SNAPSHOT_ID, field, id)
}

/// A problem with the id (of a snapshot, of a backup) in `field`, with `reason`: ids must be
/// valid for the worker's storage and never escape their folder.
fn id_problem(reason: &'static str, field: &str, id: &str) -> Option<Problem> {
    (!is_valid_snapshot_id(id)).then(|| {
        Problem::new(
            reason,
            format!(
                "{field} '{id}' is invalid: use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 248 characters, without '..' (pattern {SNAPSHOT_ID_PATTERN})"
            ),
        )
    })
}

/// What the worker's own task validation would refuse (e.g. a `consumerGroupPattern` that is
/// not a valid regex), found before any Job runs, with the task's field names replaced by the
/// spec's (`fields`: task field prefix → spec field; others become `spec.<field>`). `None` when
/// the worker accepts the task, or when it cannot be built yet (the controller reports a build
/// error then).
fn worker_problem<K: WorkerKind>(cr: &K, fields: &[(&str, &str)]) -> Option<Problem> {
    let run = RunId::of(cr).ok()?;
    task_problem(&cr.task(run).ok()?, fields)
}

/// What the worker's validation refuses in `task`, named by spec field ([`worker_problem`]).
fn task_problem(task: &tidemark_task::Task, fields: &[(&str, &str)]) -> Option<Problem> {
    let error = task.validate().err()?;
    let message = match error.field() {
        Some(field) => field.message_with(&spec_field(fields, &field.path), |path| {
            Some(spec_field(fields, path))
        }),
        None => error.message(),
    };
    Some(Problem::new(REASON_INVALID_FIELD, message))
}

/// The spec field behind `task_field`, by `fields` (task field prefix → spec field).
fn spec_field(fields: &[(&str, &str)], task_field: &str) -> String {
    tidemark_task::field::rename(fields, task_field).unwrap_or_else(|| format!("spec.{task_field}"))
}

/// `field` holds `value` outside `range`.
fn range_problem<T>(field: &str, value: T, range: RangeInclusive<T>) -> Option<Problem>
where
    T: PartialOrd + fmt::Display,
{
    (!range.contains(&value)).then(|| {
        Problem::new(
            REASON_INVALID_FIELD,
            format!(
                "{field} is {value}; use {} to {}",
                range.start(),
                range.end()
            ),
        )
    })
}

/// The entries of a topic `list` (`include` or `exclude`) in `field` that the worker's own
/// parser refuses (an exact name, a glob or a whole-name `~regex`), one problem each.
fn topic_pattern_problems(field: &str, list: &str, entries: &[String]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let one = std::slice::from_ref(entry);
        let parsed = match list {
            "include" => TopicFilter::new(one, &[]),
            _ => TopicFilter::new(&[], one),
        };
        if let Err(e) = parsed {
            // Regex errors span lines; a condition message is one.
            let e = e.split_whitespace().collect::<Vec<_>>().join(" ");
            problems.push(Problem::new(
                REASON_INVALID_FIELD,
                format!("{field}[{i}] is invalid: {e}"),
            ));
        }
    }
    problems
}

/// `^[A-Za-z0-9][A-Za-z0-9._-]{0,247}$` without `..` (the schema's rule, checked again).
fn is_valid_snapshot_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 248
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !id.contains("..")
}

/// The Secrets the worker Job of `cr` will use (exactly those the Job builder wires in: the
/// Kafka Secrets of [`WorkerKind::kafka_cluster`] and the credentials of
/// [`WorkerKind::storage`]), with the entries it reads. The operator never reads a Secret: when
/// the kubelet reports one missing in a worker pod's status, this names the spec field.
pub fn referenced_secrets<K: WorkerKind>(cr: &K) -> Vec<SecretReference> {
    let mut refs = Vec::new();
    if let Some(cluster) = cr.kafka_cluster() {
        let protocol = cluster.security_protocol;
        if protocol.uses_tls() {
            if let Some(tls) = &cluster.tls_secret {
                let mut keys = Vec::new();
                if cluster.ca_secret.is_none() {
                    keys.push(tls.ca_key_or_default().to_string());
                }
                if let (Some(cert), Some(key)) = (&tls.cert_key, &tls.key_key) {
                    keys.push(cert.clone());
                    keys.push(key.clone());
                }
                if !keys.is_empty() {
                    refs.push(SecretReference {
                        field: "spec.kafkaCluster.tlsSecret",
                        name: tls.name.clone(),
                        keys,
                    });
                }
            }
            if let Some(ca) = &cluster.ca_secret {
                refs.push(SecretReference {
                    field: "spec.kafkaCluster.caSecret",
                    name: ca.name.clone(),
                    keys: vec![ca.key.clone().unwrap_or_else(|| DEFAULT_CA_KEY.into())],
                });
            }
        }
        if protocol.uses_sasl() {
            if let Some(sasl) = &cluster.sasl_secret {
                refs.push(SecretReference {
                    field: "spec.kafkaCluster.saslSecret",
                    name: sasl.name.clone(),
                    keys: vec![
                        sasl.username_key_or_default().to_string(),
                        sasl.password_key_or_default().to_string(),
                    ],
                });
            }
        }
    }
    let storage = cr.storage().ok().flatten();
    let credentials = storage.and_then(|storage| match storage.storage_type.normalized() {
        StorageType::S3 => storage
            .s3
            .as_ref()
            .and_then(|s| s.credentials_secret.as_ref()),
        StorageType::Azure => storage
            .azure
            .as_ref()
            .and_then(|s| s.credentials_secret.as_ref()),
        StorageType::Gcs => storage
            .gcs
            .as_ref()
            .and_then(|s| s.credentials_secret.as_ref()),
        _ => None,
    });
    if let (Some(storage), Some(secret)) = (storage, credentials) {
        refs.push(SecretReference {
            field: cr.storage_credentials_field(storage.storage_type),
            name: secret.name.clone(),
            keys: Vec::new(),
        });
    }
    // Mounted whole (every entry is a key): only its existence is the kubelet's to check; a
    // keyId it does not hold is the worker's error, naming the key.
    if let Some(secret) = cr.encryption().and_then(|e| e.secret_ref.as_ref()) {
        refs.push(SecretReference {
            field: cr.encryption_secret_field(),
            name: secret.name.clone(),
            keys: Vec::new(),
        });
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::*;

    fn reasons(problems: &[Problem]) -> Vec<&'static str> {
        problems.iter().map(|p| p.reason).collect()
    }

    /// `problems` is exactly one problem with `reason`, whose message contains `message`.
    pub(super) fn assert_one_problem(problems: &[Problem], reason: &str, message: &str) {
        assert_eq!(reasons(problems), [reason], "{problems:?}");
        assert!(
            problems[0].message.contains(message),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn every_reference_example_is_valid() {
        for yaml in [
            PRE_MIGRATION_SNAPSHOT,
            FULL_SPECIFICATION,
            CREATE_SNAPSHOT,
            EMERGENCY_ROLLBACK,
            VERIFY_ROLLBACK,
            QUICK_SNAPSHOT,
            DELETE_SNAPSHOT,
            CLEANUP_OLD_SNAPSHOT,
            MTLS_PVC,
        ] {
            assert_eq!(validate(&korb(yaml)), [], "{yaml}");
        }
    }

    #[test]
    fn secret_bearing_properties_are_refused() {
        for key in [
            "sasl.password",
            "SSL.KEY.PASSWORD",
            "ssl.keystore.password",
            "ssl.truststore.password",
            "sasl.jaas.config",
            "ssl.key.pem",
            "sasl.oauthbearer.client.secret",
        ] {
            let yaml = VERIFY_ROLLBACK.replace(
                "      - kafka:9092\n",
                &format!("      - kafka:9092\n    properties:\n      {key}: hunter2\n"),
            );
            let problems = validate(&korb(&yaml));
            assert_eq!(reasons(&problems), [REASON_SECRET_IN_PROPERTIES], "{key}");
            assert!(problems[0].message.contains(key), "{}", problems[0].message);
            assert!(
                !problems[0].message.contains("hunter2"),
                "values are never echoed"
            );
        }
        assert!(!is_secret_property("client.id"));
        assert!(!is_secret_property("sasl.kerberos.service.name"));
    }

    /// A key the worker's table refuses, spelled as it would be set.
    fn refused_key(p: &tidemark_task::properties::RefusedProperty) -> String {
        if p.contains {
            format!("x.{}", p.key)
        } else {
            p.key.to_string()
        }
    }

    #[test]
    fn every_unsafe_property_stalls_naming_it_and_what_to_use_instead() {
        for p in tidemark_task::properties::REFUSED_PROPERTIES {
            let key = refused_key(p);
            let mut rollback = korb(VERIFY_ROLLBACK);
            let cluster = rollback.spec.kafka_cluster.as_mut().expect("kafkaCluster");
            cluster.properties.insert(key.clone(), "v".into());
            let mut restore = kr(RESTORE_FULL);
            restore
                .spec
                .kafka_cluster
                .properties
                .insert(key.clone(), "v".into());
            for problems in [validate(&rollback), validate(&restore)] {
                if key == "security.protocol" {
                    // Set by the spec's own field; refused as such.
                    assert_one_problem(
                        &problems,
                        REASON_PROPERTY_MANAGED_BY_SPEC,
                        "spec.kafkaCluster.securityProtocol",
                    );
                    continue;
                }
                assert_one_problem(
                    &problems,
                    REASON_UNSAFE_PROPERTY,
                    &format!("spec.kafkaCluster.properties['{key}'] {}", p.risk),
                );
                assert!(problems[0].message.contains(p.instead), "{problems:?}");
            }
        }
    }

    #[test]
    fn skipping_tls_verification_is_a_field_that_warns() {
        let mut cr = korb(VERIFY_ROLLBACK);
        assert_eq!(warnings(&cr), []);
        let cluster = cr.spec.kafka_cluster.as_mut().expect("kafkaCluster");
        cluster.tls_insecure_skip_verify = true;
        // Without TLS the field means nothing: refused, as the schema does.
        assert_one_problem(
            &validate(&cr),
            REASON_INVALID_FIELD,
            "spec.kafkaCluster.tlsInsecureSkipVerify is only used with securityProtocol SSL or SASL_SSL",
        );
        let cluster = cr.spec.kafka_cluster.as_mut().expect("kafkaCluster");
        cluster.security_protocol = crate::crd::common::SecurityProtocol::Ssl;
        assert_eq!(validate(&cr), []);
        let warned = warnings(&cr);
        assert_eq!(reasons(&warned), [REASON_INSECURE_TLS]);
        assert!(warned[0]
            .message
            .contains("spec.kafkaCluster.tlsInsecureSkipVerify"));
        // The worker's task carries it.
        let cluster = cr.spec.kafka_cluster.as_ref().expect("kafkaCluster");
        assert!(crate::build::task::kafka_target(cluster).tls_insecure_skip_verify);
    }

    #[test]
    fn spec_managed_properties_are_refused() {
        let yaml = VERIFY_ROLLBACK.replace(
            "      - kafka:9092\n",
            "      - kafka:9092\n    properties:\n      security.protocol: SSL\n      client.id: ok\n",
        );
        let problems = validate(&korb(&yaml));
        assert_eq!(reasons(&problems), [REASON_PROPERTY_MANAGED_BY_SPEC]);
        assert!(
            problems[0]
                .message
                .contains("spec.kafkaCluster.securityProtocol"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn what_the_schema_requires_is_checked_again() {
        // Manifests the CRD's CEL rules reject, as if stored before those rules existed.
        let cases = [
            (
                VERIFY_ROLLBACK.replace("  kafkaCluster:\n    bootstrapServers:\n      - kafka:9092\n", ""),
                REASON_MISSING_FIELD,
                "spec.kafkaCluster is required for operation verify",
            ),
            (
                EMERGENCY_ROLLBACK.replace("  snapshotId: \"pre-migration-20241201-1200\"\n", ""),
                REASON_MISSING_FIELD,
                "spec.snapshotId is required for operation rollback",
            ),
            (
                QUICK_SNAPSHOT.replace("quick-snapshot-001", "a..b"),
                REASON_INVALID_SNAPSHOT_ID,
                "spec.snapshotId 'a..b' is invalid",
            ),
            (
                QUICK_SNAPSHOT.replace("  consumerGroups:\n    - my-small-group\n", ""),
                REASON_MISSING_FIELD,
                "spec.consumerGroups must name at least one group",
            ),
            (
                EMERGENCY_ROLLBACK.replace("  operation: rollback\n", "  operation: rollback\n  description: why\n"),
                REASON_UNUSED_FIELD,
                "spec.description is only stored by operation snapshot, not rollback",
            ),
            (
                PRE_MIGRATION_SNAPSHOT.replace(
                    "    saslSecret:\n      name: kafka-credentials\n      mechanism: SCRAM-SHA-256\n",
                    "",
                ),
                REASON_MISSING_FIELD,
                "spec.kafkaCluster.saslSecret is required with securityProtocol SASL_SSL",
            ),
            (
                QUICK_SNAPSHOT.replace("    configMap:\n      name: offset-snapshots\n", ""),
                REASON_MISSING_FIELD,
                "spec.storage.configMap is required when storageType is configMap",
            ),
        ];
        for (yaml, reason, message) in cases {
            assert_one_problem(&validate(&korb(&yaml)), reason, message);
        }
    }

    #[test]
    fn a_bad_encryption_block_stalls_naming_its_field() {
        use crate::crd::common::{EncryptionSecretRef, EncryptionSpec};
        let secret = |name: &str, key_id: Option<&str>| EncryptionSpec {
            secret_ref: Some(EncryptionSecretRef {
                name: name.into(),
                key_id: key_id.map(str::to_string),
            }),
            kms_key_id: None,
        };
        let cases = [
            (
                EncryptionSpec {
                    secret_ref: None,
                    kms_key_id: None,
                },
                REASON_MISSING_FIELD,
                "spec.encryption needs secretRef (a Secret of keys), kmsKeyId (an AWS KMS key) or both",
            ),
            (
                secret("", None),
                REASON_INVALID_FIELD,
                "spec.encryption.secretRef.name '' is not a valid Secret name",
            ),
            (
                secret("Backup_Keys", None),
                REASON_INVALID_FIELD,
                "spec.encryption.secretRef.name 'Backup_Keys' is not a valid Secret name",
            ),
            (
                secret("backup-keys", Some("../etc")),
                REASON_INVALID_FIELD,
                "spec.encryption.secretRef.keyId '../etc' is not a key id",
            ),
            (
                secret("backup-keys", Some(".hidden")),
                REASON_INVALID_FIELD,
                "spec.encryption.secretRef.keyId '.hidden' is not a key id",
            ),
            (
                EncryptionSpec {
                    secret_ref: None,
                    kms_key_id: Some("alias/my key".into()),
                },
                REASON_INVALID_FIELD,
                "spec.encryption.kmsKeyId is not a KMS key id, ARN or alias",
            ),
        ];
        for (encryption, reason, message) in cases {
            let mut backup = kb(BACKUP_ENCRYPTED);
            backup.spec.encryption = Some(encryption.clone());
            let mut restore = kr(RESTORE_PITR_NEW_TOPIC);
            restore.spec.encryption = Some(encryption.clone());
            let mut rollback = korb(ROLLBACK_ENCRYPTED);
            rollback.spec.encryption = Some(encryption.clone());
            let mut reset = kor(RESET_ENCRYPTED);
            reset.spec.encryption = Some(encryption);
            for problems in [
                validate(&backup),
                validate(&restore),
                validate(&rollback),
                validate(&reset),
            ] {
                assert_one_problem(&problems, reason, message);
            }
        }
        // The samples' blocks, a KMS key alone, and both together, are fine.
        assert_eq!(validate(&kb(BACKUP_ENCRYPTED)), []);
        assert_eq!(validate(&korb(ROLLBACK_ENCRYPTED)), []);
        assert_eq!(validate(&kor(RESET_ENCRYPTED)), []);
        let mut kms = kr(RESTORE_PITR_NEW_TOPIC);
        kms.spec.encryption = Some(EncryptionSpec {
            secret_ref: None,
            kms_key_id: Some("arn:aws:kms:eu-west-1:111122223333:key/1234abcd".into()),
        });
        assert_eq!(validate(&kms), []);
    }

    #[test]
    fn encrypted_snapshots_in_a_config_map_stall() {
        use crate::crd::common::EncryptionSpec;
        let mut cr = korb(QUICK_SNAPSHOT);
        cr.spec.encryption = Some(EncryptionSpec {
            secret_ref: None,
            kms_key_id: Some("alias/snapshots".into()),
        });
        assert_one_problem(
            &validate(&cr),
            REASON_UNSUPPORTED_STORAGE,
            "spec.encryption is not used with spec.storage.storageType configMap",
        );
        let mut reset = kor(RESET_FROM_SNAPSHOT);
        reset.spec.encryption = cr.spec.encryption.clone();
        assert_one_problem(
            &validate(&reset),
            REASON_UNSUPPORTED_STORAGE,
            "spec.encryption is not used with spec.storage.storageType configMap",
        );
    }

    #[test]
    fn a_bad_run_annotation_is_reported() {
        let mut cr = korb(QUICK_SNAPSHOT);
        cr.metadata.annotations = Some([(RUN_ANNOTATION.to_string(), "twice".to_string())].into());
        let problems = validate(&cr);
        assert_eq!(reasons(&problems), [REASON_INVALID_RUN_ANNOTATION]);
        assert!(problems[0].message.contains("'twice'"));
    }

    #[test]
    fn referenced_secrets_with_default_and_custom_keys() {
        assert_eq!(
            referenced_secrets(&korb(PRE_MIGRATION_SNAPSHOT)),
            [SecretReference {
                field: "spec.kafkaCluster.saslSecret",
                name: "kafka-credentials".into(),
                keys: vec!["username".into(), "password".into()],
            }]
        );
        assert_eq!(
            referenced_secrets(&korb(FULL_SPECIFICATION)),
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
            ]
        );
        assert_eq!(
            referenced_secrets(&korb(MTLS_PVC)),
            [
                SecretReference {
                    field: "spec.kafkaCluster.tlsSecret",
                    name: "client-tls".into(),
                    keys: vec!["tls.crt".into(), "tls.key".into()],
                },
                SecretReference {
                    field: "spec.kafkaCluster.caSecret",
                    name: "cluster-ca".into(),
                    keys: vec!["ca.pem".into()],
                },
            ]
        );
        for yaml in [QUICK_SNAPSHOT, VERIFY_ROLLBACK, CLEANUP_OLD_SNAPSHOT] {
            assert_eq!(referenced_secrets(&korb(yaml)), []);
        }
        let s3 = PRE_MIGRATION_SNAPSHOT.replace(
            "      prefix: offset-snapshots",
            "      prefix: offset-snapshots\n      credentialsSecret: {name: s3-credentials}",
        );
        let refs = referenced_secrets(&korb(&s3));
        assert_eq!(
            refs.last(),
            Some(&SecretReference {
                field: "spec.storage.s3.credentialsSecret",
                name: "s3-credentials".into(),
                keys: vec![],
            })
        );
    }

    #[test]
    fn delete_references_no_kafka_secret() {
        let yaml = DELETE_SNAPSHOT.replace(
            "      - kafka:9092\n",
            "      - kafka:9092\n    securityProtocol: SASL_SSL\n    saslSecret: {name: kafka-credentials}\n",
        );
        assert_eq!(referenced_secrets(&korb(&yaml)), []);
    }
}

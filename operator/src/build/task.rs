//! The ConfigMap `<cr>-task-<run>` that carries a run's task document
//! ([`tidemark_task::Task`], rendered by each kind's [`WorkerKind::task`]) to the worker as
//! `task.yaml`, owned by the resource, and the parts every task shares: how the worker reaches
//! Kafka and where it keeps snapshots. The task holds no secret: SASL credentials reach the
//! worker as environment variables, TLS material as files whose paths the task names, and
//! secret-bearing `properties` are dropped.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tidemark_task::{Encryption, KafkaTarget, StorageTarget, Task};

use super::{kind_child_name, labels, name, namespace, owner_reference, Error, RunId, WorkerKind};
use super::{CA_DIR, DATA_DIR, ENCRYPTION_DIR, TASK_FILE_NAME, TLS_DIR};
use crate::crd::common::{EncryptionSpec, KafkaClusterSpec, StorageSpec, StorageType};
use crate::validate::is_secret_property;

/// Name of the task ConfigMap of `cr_name`'s run `run`: `<cr>-<tag>-task-<run>` (≤ 63
/// characters).
pub fn task_config_map_name<K: WorkerKind>(cr_name: &str, run: RunId) -> String {
    kind_child_name::<K>(cr_name, &format!("task-{run}"))
}

/// `namespace/name` of `cr`, the task's `source`.
pub fn source<K: WorkerKind>(cr: &K) -> Result<String, Error> {
    Ok(format!("{}/{}", namespace(cr)?, name(cr)?))
}

/// How the worker reaches Kafka; the PEM paths match the volumes [`super::job`] mounts.
pub fn kafka_target(cluster: &KafkaClusterSpec) -> KafkaTarget {
    let protocol = cluster.security_protocol;
    let tls = protocol.uses_tls();
    let ca_location = if !tls {
        None
    } else if cluster.ca_secret.is_some() {
        Some(format!("{CA_DIR}/ca.crt"))
    } else {
        cluster
            .tls_secret
            .as_ref()
            .map(|_| format!("{TLS_DIR}/ca.crt"))
    };
    let client_pair = cluster
        .tls_secret
        .as_ref()
        .filter(|t| tls && t.cert_key.is_some() && t.key_key.is_some());
    KafkaTarget {
        bootstrap_servers: cluster.bootstrap_servers.clone(),
        security_protocol: protocol.as_str().to_string(),
        sasl_mechanism: cluster
            .sasl_secret
            .as_ref()
            .filter(|_| protocol.uses_sasl())
            .map(|s| s.mechanism.as_str().to_string()),
        ssl_ca_location: ca_location,
        ssl_certificate_location: client_pair.map(|_| format!("{TLS_DIR}/tls.crt")),
        ssl_key_location: client_pair.map(|_| format!("{TLS_DIR}/tls.key")),
        properties: cluster
            .properties
            .iter()
            .filter(|(k, _)| !is_secret_property(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        tls_insecure_skip_verify: tls && cluster.tls_insecure_skip_verify,
    }
}

/// The task's keys of `spec`: the mounted Secret's path ([`ENCRYPTION_DIR`], as
/// [`super::job`] mounts it) and key id, and the KMS key id. Names only, never key material.
pub fn encryption_target(spec: &EncryptionSpec) -> Encryption {
    Encryption {
        key_file: spec.secret_ref.as_ref().map(|_| ENCRYPTION_DIR.to_string()),
        key_id: spec.secret_ref.as_ref().and_then(|s| s.key_id.clone()),
        kms_key_id: spec.kms_key_id.clone(),
    }
}

/// Where the worker keeps its data: a location URL, encrypted with `encryption`'s keys when
/// given, or the ConfigMap in `namespace` (never encrypted: `encryption` is refused there).
pub fn storage_target(
    storage: &StorageSpec,
    namespace: &str,
    encryption: Option<&EncryptionSpec>,
) -> Result<StorageTarget, Error> {
    let mut target = plain_storage_target(storage, namespace)?;
    match (&mut target, encryption) {
        (_, None) => {}
        (StorageTarget::Location { encryption, .. }, Some(spec)) => {
            *encryption = Some(encryption_target(spec));
        }
        (StorageTarget::ConfigMap { .. }, Some(_)) => {
            return Err(Error::InvalidField {
                field: "spec.encryption",
                reason: "is not used with storageType configMap (a ConfigMap holds its documents in the clear)".into(),
            })
        }
    }
    Ok(target)
}

/// [`storage_target`] without encryption.
fn plain_storage_target(storage: &StorageSpec, namespace: &str) -> Result<StorageTarget, Error> {
    let location = |url: String| StorageTarget::Location {
        url,
        s3_region: None,
        s3_endpoint: None,
        s3_path_style: false,
        allow_http: false,
        encryption: None,
    };
    Ok(match storage.storage_type.normalized() {
        StorageType::S3 => {
            let s3 = storage
                .s3
                .as_ref()
                .ok_or(Error::MissingField("spec.storage.s3"))?;
            StorageTarget::Location {
                url: join_url("s3", &s3.bucket, s3.prefix.as_deref()),
                s3_region: s3.region.clone(),
                s3_endpoint: s3.endpoint.clone(),
                s3_path_style: s3.path_style.unwrap_or(false),
                allow_http: s3.allow_http.unwrap_or(false),
                encryption: None,
            }
        }
        StorageType::Gcs => {
            let gcs = storage
                .gcs
                .as_ref()
                .ok_or(Error::MissingField("spec.storage.gcs"))?;
            location(join_url("gs", &gcs.bucket, gcs.prefix.as_deref()))
        }
        StorageType::Azure => {
            let azure = storage
                .azure
                .as_ref()
                .ok_or(Error::MissingField("spec.storage.azure"))?;
            let mut target = location(join_url("az", &azure.container, azure.prefix.as_deref()));
            if let StorageTarget::Location { allow_http, .. } = &mut target {
                *allow_http = azure
                    .endpoint
                    .as_deref()
                    .is_some_and(|e| e.starts_with("http://"));
            }
            target
        }
        StorageType::Pvc => {
            let pvc = storage
                .pvc
                .as_ref()
                .ok_or(Error::MissingField("spec.storage.pvc"))?;
            let path = pvc.path.as_deref().unwrap_or("").trim_matches('/');
            if path.is_empty() {
                location(DATA_DIR.to_string())
            } else {
                location(format!("{DATA_DIR}/{path}"))
            }
        }
        StorageType::ConfigMap | StorageType::ConfigMapLower => {
            let cm = storage
                .config_map
                .as_ref()
                .ok_or(Error::MissingField("spec.storage.configMap"))?;
            StorageTarget::ConfigMap {
                namespace: namespace.to_string(),
                name: cm.name.clone(),
            }
        }
    })
}

/// `scheme://bucket[/prefix]`, with the prefix's surrounding slashes removed.
fn join_url(scheme: &str, bucket: &str, prefix: Option<&str>) -> String {
    match prefix
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
    {
        Some(prefix) => format!("{scheme}://{bucket}/{prefix}"),
        None => format!("{scheme}://{bucket}"),
    }
}

/// The ConfigMap `<cr>-task-<run>` holding `task.yaml`, in the resource's namespace, labelled
/// like the Job and owned by the resource.
pub fn task_config_map<K: WorkerKind>(cr: &K, run: RunId) -> Result<ConfigMap, Error> {
    let mut task = cr.task(run)?;
    if let Some(approved) = cr.approved_run(run) {
        super::approval::set_plan_fields(&mut task, None, Some(approved.plan))?;
    }
    task_config_map_with(
        cr,
        &task_config_map_name::<K>(&name(cr)?, run),
        labels(cr, K::COMPONENT, run),
        &task,
    )
}

/// The ConfigMap `config_map_name` holding `task` as `task.yaml`, in `cr`'s namespace, with
/// `labels`, owned by `cr`.
pub fn task_config_map_with<K: WorkerKind>(
    cr: &K,
    config_map_name: &str,
    labels: BTreeMap<String, String>,
    task: &Task,
) -> Result<ConfigMap, Error> {
    let yaml = serde_yaml_ng::to_string(task).map_err(Error::SerializeTask)?;
    Ok(ConfigMap {
        metadata: ObjectMeta {
            name: Some(config_map_name.to_string()),
            namespace: Some(namespace(cr)?),
            labels: Some(labels),
            owner_references: Some(vec![owner_reference(cr)?]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(TASK_FILE_NAME.to_string(), yaml)])),
        ..ConfigMap::default()
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use tidemark_task::{OffsetRollbackTask, RollbackOperation, TaskWork, TASK_API_VERSION};

    fn parse_back(cm: &ConfigMap) -> Task {
        parse_task(cm)
    }

    fn run() -> RunId {
        RunId {
            generation: 1,
            run: 0,
        }
    }

    #[test]
    fn pre_migration_snapshot_round_trips_through_the_config_map() {
        let cr = korb(PRE_MIGRATION_SNAPSHOT);
        let cm = task_config_map(&cr, run()).expect("builds");
        assert_eq!(
            cm.metadata.name.as_deref(),
            Some("pre-migration-snapshot-korb-task-g1-r0")
        );
        assert_eq!(cm.metadata.namespace.as_deref(), Some("kafka-backup"));
        let owners = cm.metadata.owner_references.as_ref().expect("owner");
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].name, "pre-migration-snapshot");
        assert_eq!(owners[0].controller, Some(true));
        let labels = cm.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels["tidemark.dev/run"], "g1-r0");
        assert_eq!(labels["tidemark.dev/owner-kind"], "KafkaOffsetRollback");

        let expected = Task {
            api_version: TASK_API_VERSION.into(),
            source: Some("kafka-backup/pre-migration-snapshot".into()),
            work: TaskWork::OffsetRollback(OffsetRollbackTask {
                operation: RollbackOperation::Snapshot,
                kafka: Some(KafkaTarget {
                    bootstrap_servers: vec!["kafka:9092".into()],
                    security_protocol: "SASL_SSL".into(),
                    sasl_mechanism: Some("SCRAM-SHA-256".into()),
                    ssl_ca_location: None,
                    ssl_certificate_location: None,
                    ssl_key_location: None,
                    properties: BTreeMap::new(),
                    tls_insecure_skip_verify: false,
                }),
                storage: StorageTarget::Location {
                    url: "s3://kafka-snapshots/offset-snapshots".into(),
                    s3_region: Some("us-west-2".into()),
                    s3_endpoint: None,
                    s3_path_style: false,
                    allow_http: false,
                    encryption: None,
                },
                consumer_groups: vec![
                    "order-processor".into(),
                    "payment-handler".into(),
                    "notification-service".into(),
                    "analytics-consumer".into(),
                ],
                snapshot_id: Some("pre-migration-20241201-1200".into()),
                description: None,
                strict: false,
                verify_after_rollback: true,
                safety_snapshot_id: None,
                plan_out: None,
                approved_plan: None,
            }),
        };
        assert_eq!(parse_back(&cm), expected);
    }

    fn work(yaml: &str) -> OffsetRollbackTask {
        let cm = task_config_map(&korb(yaml), run()).expect("builds");
        match parse_back(&cm).work {
            TaskWork::OffsetRollback(t) => t,
            other => panic!("an offset-rollback task: {other:?}"),
        }
    }

    #[test]
    fn full_specification_uses_the_s3_block_and_the_tls_ca() {
        let t = work(FULL_SPECIFICATION);
        let kafka = t.kafka.expect("kafka");
        assert_eq!(
            kafka.bootstrap_servers,
            ["kafka-0.kafka.svc:9092", "kafka-1.kafka.svc:9092"]
        );
        assert_eq!(
            kafka.ssl_ca_location.as_deref(),
            Some("/etc/tidemark/tls/ca.crt")
        );
        assert_eq!(kafka.ssl_certificate_location, None);
        assert_eq!(kafka.sasl_mechanism.as_deref(), Some("SCRAM-SHA-256"));
        // storageType s3 wins over the configMap block that is also present.
        assert!(
            matches!(t.storage, StorageTarget::Location { ref url, .. } if url == "s3://kafka-offset-snapshots/snapshots")
        );
        assert!(t.strict, "verify.strict is carried even for snapshot");
    }

    #[test]
    fn config_map_storage_names_the_namespace() {
        for yaml in [
            CREATE_SNAPSHOT,
            QUICK_SNAPSHOT,
            DELETE_SNAPSHOT,
            CLEANUP_OLD_SNAPSHOT,
        ] {
            let t = work(yaml);
            assert_eq!(
                t.storage,
                StorageTarget::ConfigMap {
                    namespace: "kafka-backup".into(),
                    name: "offset-snapshots".into()
                }
            );
        }
    }

    #[test]
    fn rollback_and_verify_carry_groups_and_strictness() {
        let t = work(EMERGENCY_ROLLBACK);
        assert_eq!(t.operation, RollbackOperation::Rollback);
        assert_eq!(t.consumer_groups, ["order-processor"]);
        assert_eq!(
            t.snapshot_id.as_deref(),
            Some("pre-migration-20241201-1200")
        );
        assert!(t.verify_after_rollback);
        assert!(!t.strict);
        let safety = t
            .safety_snapshot_id
            .expect("a rollback names its safety snapshot");
        assert!(
            safety.starts_with("emergency-rollback-rollback-g1-r0-"),
            "{safety}"
        );
        tidemark_task::ids::validate_id(&safety).expect("a valid snapshot id");

        let t = work(VERIFY_ROLLBACK);
        assert_eq!(t.operation, RollbackOperation::Verify);
        assert!(t.strict);
        let kafka = t.kafka.expect("kafka");
        assert_eq!(kafka.security_protocol, "PLAINTEXT");
        assert_eq!(kafka.sasl_mechanism, None);
    }

    #[test]
    fn snapshot_description_and_rollback_without_verification_reach_the_task() {
        let described = QUICK_SNAPSHOT.replace(
            "  operation: snapshot\n",
            "  operation: snapshot\n  description: Before the 2.4 deploy\n",
        );
        assert_ne!(
            described, QUICK_SNAPSHOT,
            "the fixture has an operation line"
        );
        let t = work(&described);
        assert_eq!(t.description.as_deref(), Some("Before the 2.4 deploy"));
        assert_eq!(work(QUICK_SNAPSHOT).description, None);

        let unverified = EMERGENCY_ROLLBACK.replace(
            "  operation: rollback\n",
            "  operation: rollback\n  verify:\n    afterRollback: false\n",
        );
        assert_ne!(
            unverified, EMERGENCY_ROLLBACK,
            "the fixture has an operation line"
        );
        let t = work(&unverified);
        assert!(
            !t.verify_after_rollback,
            "verify.afterRollback: false is honoured"
        );
        // verify: {strict: true} alone keeps the check after a rollback.
        let strict = EMERGENCY_ROLLBACK.replace(
            "  operation: rollback\n",
            "  operation: rollback\n  verify:\n    strict: true\n",
        );
        assert!(work(&strict).verify_after_rollback);
    }

    #[test]
    fn delete_needs_no_kafka() {
        for yaml in [DELETE_SNAPSHOT, CLEANUP_OLD_SNAPSHOT] {
            let t = work(yaml);
            assert_eq!(t.operation, RollbackOperation::Delete);
            assert_eq!(t.kafka, None);
            assert!(t.consumer_groups.is_empty());
        }
    }

    #[test]
    fn mutual_tls_and_pvc_paths_point_at_the_mounts() {
        let t = work(MTLS_PVC);
        let kafka = t.kafka.expect("kafka");
        assert_eq!(kafka.security_protocol, "SSL");
        assert_eq!(
            kafka.ssl_ca_location.as_deref(),
            Some("/etc/tidemark/ca/ca.crt")
        );
        assert_eq!(
            kafka.ssl_certificate_location.as_deref(),
            Some("/etc/tidemark/tls/tls.crt")
        );
        assert_eq!(
            kafka.ssl_key_location.as_deref(),
            Some("/etc/tidemark/tls/tls.key")
        );
        assert_eq!(kafka.properties["client.id"], "tidemark");
        assert!(
            matches!(t.storage, StorageTarget::Location { ref url, .. } if url == "/var/lib/tidemark/clusters/prod")
        );
    }

    #[test]
    fn object_store_urls() {
        let spec = |yaml: &str| -> StorageSpec { serde_yaml_ng::from_str(yaml).expect("storage") };
        let url = |yaml: &str| match storage_target(&spec(yaml), "ns", None).expect("target") {
            StorageTarget::Location { url, .. } => url,
            other => panic!("not a location: {other:?}"),
        };
        assert_eq!(url("{storageType: gcs, gcs: {bucket: b1}}"), "gs://b1");
        assert_eq!(
            url("{storageType: azure, azure: {container: c1, prefix: /a/b/}}"),
            "az://c1/a/b"
        );
        assert_eq!(
            url("{storageType: pvc, pvc: {claimName: data}}"),
            "/var/lib/tidemark"
        );
        let minio = storage_target(
            &spec("{storageType: s3, s3: {bucket: b1, endpoint: 'http://minio:9000', pathStyle: true, allowHttp: true}}"),
            "ns",
            None,
        )
        .expect("target");
        assert_eq!(
            minio,
            StorageTarget::Location {
                url: "s3://b1".into(),
                s3_region: None,
                s3_endpoint: Some("http://minio:9000".into()),
                s3_path_style: true,
                allow_http: true,
                encryption: None,
            }
        );
        let lower = storage_target(
            &spec("{storageType: configmap, configMap: {name: snaps}}"),
            "ns",
            None,
        )
        .expect("alias");
        assert_eq!(
            lower,
            StorageTarget::ConfigMap {
                namespace: "ns".into(),
                name: "snaps".into()
            }
        );
        let err = storage_target(&spec("{storageType: s3}"), "ns", None).expect_err("no s3 block");
        assert_eq!(
            err.to_string(),
            "failed to build: spec.storage.s3 is required"
        );
    }

    #[test]
    fn secret_properties_never_reach_the_task() {
        let yaml = VERIFY_ROLLBACK.replace(
            "      - kafka:9092\n",
            "      - kafka:9092\n    properties:\n      sasl.password: s3ntinel-Pa55\n      ssl.key.password: s3ntinel-Pa55\n      client.id: ok\n",
        );
        let cm = task_config_map(&korb(&yaml), run()).expect("builds");
        let text = serde_yaml_ng::to_string(&cm).expect("yaml");
        assert!(!text.contains("s3ntinel-Pa55"), "{text}");
        assert!(text.contains("client.id: ok"), "{text}");
    }

    #[test]
    fn missing_metadata_is_refused() {
        let mut cr = korb(QUICK_SNAPSHOT);
        cr.metadata.namespace = None;
        let err = task_config_map(&cr, run()).expect_err("no namespace");
        assert_eq!(err.label(), "missing_metadata");
    }
}

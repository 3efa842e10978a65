//! The worker Job of one run of any [`WorkerKind`]: `tidemark run --task
//! /etc/tidemark/task/task.yaml` in a locked-down, non-root pod, with the task ConfigMap, TLS
//! Secrets, the encryption key Secret and PVC storage mounted, SASL credentials as
//! `secretKeyRef` env, cloud credentials via `envFrom`, and a controller owner reference to the
//! resource. Secret values never appear.
//!
//! A kind with shards ([`WorkerKind::shards`]) gets an Indexed Job, one pod per shard. What
//! differs between a resource's Jobs ([`JobParts`]: labels, task ConfigMap, Kafka or not,
//! shards, extra env) is kept apart from the resource's own wiring ([`job_spec`]), which a
//! CronJob's job template and a backup's retention cleanup Job share.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, EnvVar, EnvVarSource, KeyToPath, LocalObjectReference,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    SeccompProfile, SecretEnvSource, SecretKeySelector, SecretVolumeSource, SecurityContext,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::rbac::worker_config_map;
use super::task::task_config_map_name;
use super::{kind_child_name, labels, name, namespace, owner_reference, Error, RunId, WorkerKind};
use super::{CA_DIR, DATA_DIR, ENCRYPTION_DIR, TASK_DIR, TASK_PATH, TLS_DIR};
use crate::config::OperatorConfig;
use crate::crd::common::{
    CredentialsSecretRef, EncryptionSpec, KafkaClusterSpec, StorageSpec, StorageType,
};

/// Label the Job controller puts on a Job's pods, with the Job's name.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// Label the Job controller puts on the pods of an Indexed Job, with their completion index.
pub const COMPLETION_INDEX_LABEL: &str = "batch.kubernetes.io/job-completion-index";

/// Name of the worker container (and of the exit-code rules of the pod failure policy).
pub const CONTAINER_NAME: &str = "tidemark";
/// UID and GID the worker runs as (the image's non-root user).
pub const WORKER_UID: i64 = 65532;
/// Where the container writes its result (the operator reads it from the pod status).
pub const TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// Mode of mounted Secret files: readable by the owner and by the pod's `fsGroup`.
const SECRET_FILE_MODE: i32 = 0o440;
/// The volume of the encryption key Secret (`spec.encryption.secretRef`).
pub const ENCRYPTION_VOLUME: &str = "encryption-keys";

/// Worker exit codes that no retry can fix (invalid input, snapshot or group not found, SASL
/// authentication failed, malformed snapshot, verification differences, TLS setup): the pod
/// failure policy fails the Job at once instead of spending `backoffLimit` on them.
pub const PERMANENT_EXIT_CODES: [i32; 8] = tidemark_task::exit::PERMANENT;

/// [`PERMANENT_EXIT_CODES`] plus 10, a partial failure (some consumer groups were not changed),
/// for kinds that change consumer offsets: their status lists what failed, and bumping the run
/// annotation runs them again on purpose, instead of the Job controller retrying at once.
pub const PARTIAL_FAILURE_EXIT_CODES: [i32; 9] = tidemark_task::exit::PERMANENT_OR_PARTIAL;

/// Port of the worker's Prometheus endpoint (`/metrics`), named [`METRICS_PORT_NAME`].
pub const METRICS_PORT: i32 = 9090;
/// Name of the worker container's metrics port, for a PodMonitor.
pub const METRICS_PORT_NAME: &str = "metrics";
/// The worker's log format variable: worker pods log JSON lines, like the operator.
pub const ENV_LOG_FORMAT: &str = "TIDEMARK_LOG_FORMAT";

/// Environment variable with the SASL username.
pub const ENV_KAFKA_USERNAME: &str = "KAFKA_USERNAME";
/// Environment variable with the SASL password.
pub const ENV_KAFKA_PASSWORD: &str = "KAFKA_PASSWORD";
/// Environment variable with the SASL mechanism (also in the task).
pub const ENV_KAFKA_SASL_MECHANISM: &str = "KAFKA_SASL_MECHANISM";

/// Finalizer on a run's Job and on its pods: they stay until the operator has read the run's
/// result (the Job's conditions, the pods' termination messages) and written it into the
/// status, even when the Job's `ttlSecondsAfterFinished` or a garbage collection deletes them
/// first. The operator removes it once the result is recorded, or when it stops the run.
pub const RESULT_FINALIZER: &str = "tidemark.dev/result";

/// Name of the Job of `cr_name`'s run `run`: `<cr>-<tag>-<run>` (≤ 63 characters).
pub fn job_name<K: WorkerKind + ?Sized>(cr_name: &str, run: RunId) -> String {
    kind_child_name::<K>(cr_name, &run.to_string())
}

/// What distinguishes one worker Job of a resource from another: the resource's own wiring
/// (Kafka and storage Secrets, volumes, resources, Job options) is the same for all of them.
#[derive(Clone, Debug, PartialEq)]
pub struct JobParts {
    /// Labels of the Job and of its pods.
    pub labels: BTreeMap<String, String>,
    /// The ConfigMap whose `task.yaml` is mounted at [`TASK_DIR`].
    pub task_config_map: String,
    /// Whether the worker connects to Kafka (only then are the Kafka Secrets wired in).
    pub kafka: bool,
    /// Worker pods; more than one makes an Indexed Job (`completions` = `parallelism` =
    /// shards), whose pods find their shard in `JOB_COMPLETION_INDEX`.
    pub shards: u32,
    /// Environment variables besides the Kafka and storage ones.
    pub env: Vec<EnvVar>,
}

/// The parts of the Job of `cr`'s run `run`: the run's labels and task ConfigMap, the kind's
/// Kafka connection, shards and environment.
pub fn run_parts<K: WorkerKind>(cr: &K, run: RunId) -> Result<JobParts, Error> {
    Ok(JobParts {
        labels: labels(cr, K::COMPONENT, run),
        task_config_map: task_config_map_name::<K>(&name(cr)?, run),
        kafka: cr.kafka_cluster().is_some(),
        shards: cr.shards(),
        env: cr.worker_env(),
    })
}

/// The worker Job of `cr`'s run `run`, named by [`WorkerKind::job_name`]; it and its pods
/// carry the [`RESULT_FINALIZER`].
pub fn job<K: WorkerKind>(cr: &K, run: RunId, config: &OperatorConfig) -> Result<Job, Error> {
    let job_name = match cr.approved_run(run) {
        Some(approved) => {
            super::approval::approved_job_name::<K>(&name(cr)?, run, approved.attempt)
        }
        None => cr.job_name(run)?,
    };
    let mut job = job_with(cr, &job_name, &run_parts(cr, run)?, config)?;
    hold_results(&mut job);
    Ok(job)
}

/// Label on the pods that hold a result: the uid of the resource they run for, so that the
/// pods of a deleted resource are told from those of a new one of the same name
/// ([`crate::controller::sweep`]).
pub const OWNER_UID_LABEL: &str = "tidemark.dev/owner-uid";

/// Puts the [`RESULT_FINALIZER`] on `job` and on its pods ([`hold_pod_results`]).
pub fn hold_results(job: &mut Job) {
    job.metadata.finalizers = Some(vec![RESULT_FINALIZER.to_string()]);
    let owner = job
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.clone());
    if let Some(spec) = job.spec.as_mut() {
        hold_pod_results(spec, owner.as_deref());
    }
}

/// Puts the [`RESULT_FINALIZER`] on the pod template of `spec`: the Job controller copies a
/// pod template's finalizers to the pods it creates (the CronJob controller does not copy a job
/// template's own finalizers to its Jobs, so a scheduled backup's results are held by its pods).
/// The pods are labelled with `owner_uid`, the resource's uid ([`OWNER_UID_LABEL`]).
pub fn hold_pod_results(spec: &mut JobSpec, owner_uid: Option<&str>) {
    let meta = spec
        .template
        .metadata
        .get_or_insert_with(ObjectMeta::default);
    meta.finalizers = Some(vec![RESULT_FINALIZER.to_string()]);
    if let Some(uid) = owner_uid {
        meta.labels
            .get_or_insert_with(Default::default)
            .insert(OWNER_UID_LABEL.to_string(), uid.to_string());
    }
}

/// A worker Job of `cr` named `job_name`, made of `parts`, owned by `cr`.
pub fn job_with<K: WorkerKind>(
    cr: &K,
    job_name: &str,
    parts: &JobParts,
    config: &OperatorConfig,
) -> Result<Job, Error> {
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(job_name.to_string()),
            namespace: Some(namespace(cr)?),
            labels: Some(parts.labels.clone()),
            owner_references: Some(vec![owner_reference(cr)?]),
            ..ObjectMeta::default()
        },
        spec: Some(job_spec(cr, parts, config)?),
        ..Job::default()
    })
}

/// The spec of a worker Job of `cr` made of `parts` (also the job template of a CronJob).
pub fn job_spec<K: WorkerKind>(
    cr: &K,
    parts: &JobParts,
    config: &OperatorConfig,
) -> Result<JobSpec, Error> {
    let mut volumes = vec![
        Volume {
            name: "task".into(),
            // Every key is a file: `task.yaml`, and the `finish` request a continuous backup
            // looks for (a key added later appears within the kubelet's sync period).
            config_map: Some(ConfigMapVolumeSource {
                name: parts.task_config_map.clone(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        // Scratch space, bounded: past the limit the kubelet evicts the pod instead of letting
        // it fill the node's disk (the root filesystem is read-only).
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(config.worker_tmp_size_limit.clone()),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        },
    ];
    let mut mounts = vec![mount("task", TASK_DIR, true), mount("tmp", "/tmp", false)];
    let mut env = Vec::new();
    let mut env_from = Vec::new();

    // A run without a Kafka connection (a snapshot delete) gets no Kafka credentials either.
    if let Some(cluster) = cr.kafka_cluster().filter(|_| parts.kafka) {
        kafka_wiring(cluster, &mut volumes, &mut mounts, &mut env);
    }
    if let Some(storage) = cr.storage()? {
        storage_wiring(storage, &mut volumes, &mut mounts, &mut env, &mut env_from);
    }
    if let Some(encryption) = cr.encryption() {
        encryption_wiring(encryption, &mut volumes, &mut mounts);
    }
    env.extend(parts.env.iter().cloned());
    // Every worker serves its progress on /metrics and logs JSON lines.
    env.push(plain_env(
        tidemark_task::env::ENV_METRICS_ADDR,
        &format!("0.0.0.0:{METRICS_PORT}"),
    ));
    env.push(plain_env(ENV_LOG_FORMAT, "json"));
    let uses_api = worker_config_map(cr)?.is_some();

    let job_options = cr.job_options().cloned().unwrap_or_default();
    let defaults = &config.job_defaults;
    let container = Container {
        name: CONTAINER_NAME.into(),
        image: Some(config.worker_image.clone()),
        image_pull_policy: Some(config.image_pull_policy.clone()),
        command: Some(vec!["tidemark".into()]),
        args: Some(vec!["run".into(), "--task".into(), TASK_PATH.into()]),
        ports: Some(vec![ContainerPort {
            name: Some(METRICS_PORT_NAME.into()),
            container_port: METRICS_PORT,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        env: Some(env),
        env_from: (!env_from.is_empty()).then_some(env_from),
        resources: Some(
            cr.resources()
                .cloned()
                .unwrap_or_else(|| config.default_resources.clone()),
        ),
        volume_mounts: Some(mounts),
        termination_message_path: Some(TERMINATION_MESSAGE_PATH.into()),
        termination_message_policy: Some("File".into()),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };

    // One pod per shard, each run once to completion (retried within backoffLimit).
    let shards = (parts.shards > 1).then(|| i32::try_from(parts.shards).unwrap_or(i32::MAX));
    Ok(JobSpec {
        backoff_limit: Some(job_options.backoff_limit.unwrap_or(defaults.backoff_limit)),
        active_deadline_seconds: job_options.active_deadline_seconds.or(defaults
            .active_deadline_seconds
            .filter(|_| !cr.runs_until_stopped())),
        ttl_seconds_after_finished: Some(
            job_options
                .ttl_seconds_after_finished
                .unwrap_or(defaults.ttl_seconds_after_finished),
        ),
        pod_failure_policy: Some(pod_failure_policy(
            cr.permanent_exit_codes(),
            cr.resumable_exit_codes(),
        )),
        completion_mode: shards.map(|_| "Indexed".to_string()),
        completions: shards,
        parallelism: shards,
        template: PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(parts.labels.clone()),
                ..ObjectMeta::default()
            }),
            spec: Some(PodSpec {
                restart_policy: Some("Never".into()),
                service_account_name: Some(config.worker_service_account.clone()),
                // The token is mounted only when the worker talks to the API server.
                automount_service_account_token: Some(uses_api),
                enable_service_links: Some(false),
                image_pull_secrets: (!config.image_pull_secrets.is_empty()).then(|| {
                    config
                        .image_pull_secrets
                        .iter()
                        .map(|name| LocalObjectReference { name: name.clone() })
                        .collect()
                }),
                security_context: Some(PodSecurityContext {
                    run_as_non_root: Some(true),
                    run_as_user: Some(WORKER_UID),
                    run_as_group: Some(WORKER_UID),
                    fs_group: Some(WORKER_UID),
                    seccomp_profile: Some(SeccompProfile {
                        type_: "RuntimeDefault".into(),
                        localhost_profile: None,
                    }),
                    ..PodSecurityContext::default()
                }),
                containers: vec![container],
                volumes: Some(volumes),
                ..PodSpec::default()
            }),
        },
        ..JobSpec::default()
    })
}

/// Evictions and preemptions do not count as failures, nor do the `resumable` worker exit codes
/// (a run stopped by SIGTERM that resumes from its checkpoint); the `permanent` ones fail the
/// Job.
fn pod_failure_policy(permanent: &[i32], resumable: &[i32]) -> PodFailurePolicy {
    let on_exit = |action: &str, codes: &[i32]| PodFailurePolicyRule {
        action: action.into(),
        on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
            container_name: Some(CONTAINER_NAME.into()),
            operator: "In".into(),
            values: codes.to_vec(),
        }),
        on_pod_conditions: None,
    };
    let mut rules = vec![PodFailurePolicyRule {
        action: "Ignore".into(),
        on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
        }]),
        on_exit_codes: None,
    }];
    if !resumable.is_empty() {
        rules.push(on_exit("Ignore", resumable));
    }
    rules.push(on_exit("FailJob", permanent));
    PodFailurePolicy { rules }
}

/// TLS Secrets as read-only files (the task's `ssl*Location`s point at them) and SASL
/// credentials as `secretKeyRef` env, exactly as [`super::task::kafka_target`] expects.
fn kafka_wiring(
    cluster: &KafkaClusterSpec,
    volumes: &mut Vec<Volume>,
    mounts: &mut Vec<VolumeMount>,
    env: &mut Vec<EnvVar>,
) {
    let protocol = cluster.security_protocol;
    if protocol.uses_tls() {
        if let Some(tls) = &cluster.tls_secret {
            let mut items = Vec::new();
            if cluster.ca_secret.is_none() {
                items.push(key_to_path(tls.ca_key_or_default(), "ca.crt"));
            }
            if let (Some(cert), Some(key)) = (&tls.cert_key, &tls.key_key) {
                items.push(key_to_path(cert, "tls.crt"));
                items.push(key_to_path(key, "tls.key"));
            }
            if !items.is_empty() {
                volumes.push(secret_volume("kafka-tls", &tls.name, items));
                mounts.push(mount("kafka-tls", TLS_DIR, true));
            }
        }
        if let Some(ca) = &cluster.ca_secret {
            volumes.push(secret_volume(
                "kafka-ca",
                &ca.name,
                vec![key_to_path(ca.key_or_default(), "ca.crt")],
            ));
            mounts.push(mount("kafka-ca", CA_DIR, true));
        }
    }
    if protocol.uses_sasl() {
        if let Some(sasl) = &cluster.sasl_secret {
            env.push(secret_env(
                ENV_KAFKA_USERNAME,
                &sasl.name,
                sasl.username_key_or_default(),
            ));
            env.push(secret_env(
                ENV_KAFKA_PASSWORD,
                &sasl.name,
                sasl.password_key_or_default(),
            ));
            env.push(plain_env(ENV_KAFKA_SASL_MECHANISM, sasl.mechanism.as_str()));
        }
    }
}

/// The PVC volume, the cloud credentials Secret (`envFrom`) and the non-secret Azure settings
/// the task has no field for.
fn storage_wiring(
    storage: &StorageSpec,
    volumes: &mut Vec<Volume>,
    mounts: &mut Vec<VolumeMount>,
    env: &mut Vec<EnvVar>,
    env_from: &mut Vec<EnvFromSource>,
) {
    let mut credentials: Option<&CredentialsSecretRef> = None;
    match storage.storage_type.normalized() {
        StorageType::Pvc => {
            if let Some(pvc) = &storage.pvc {
                volumes.push(Volume {
                    name: "storage".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: pvc.claim_name.clone(),
                        read_only: None,
                    }),
                    ..Volume::default()
                });
                mounts.push(mount("storage", DATA_DIR, false));
            }
        }
        StorageType::S3 => {
            credentials = storage
                .s3
                .as_ref()
                .and_then(|s| s.credentials_secret.as_ref())
        }
        StorageType::Gcs => {
            credentials = storage
                .gcs
                .as_ref()
                .and_then(|s| s.credentials_secret.as_ref())
        }
        StorageType::Azure => {
            if let Some(azure) = &storage.azure {
                if let Some(account) = &azure.account_name {
                    env.push(plain_env("AZURE_STORAGE_ACCOUNT_NAME", account));
                }
                if let Some(endpoint) = &azure.endpoint {
                    env.push(plain_env("AZURE_STORAGE_ENDPOINT", endpoint));
                }
                credentials = azure.credentials_secret.as_ref();
            }
        }
        StorageType::ConfigMap | StorageType::ConfigMapLower => {}
    }
    if let Some(secret) = credentials {
        env_from.push(EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: secret.name.clone(),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        });
    }
}

/// The encryption Secret, whole and read-only at [`ENCRYPTION_DIR`]: every entry a file named
/// by its key id, as [`super::task::encryption_target`] names the directory (the worker picks
/// the key a backup was wrapped with). A KMS key needs no mount: the worker reaches KMS with
/// the pod's AWS credentials (its service account's, e.g. IRSA).
fn encryption_wiring(
    encryption: &EncryptionSpec,
    volumes: &mut Vec<Volume>,
    mounts: &mut Vec<VolumeMount>,
) {
    if let Some(secret) = &encryption.secret_ref {
        volumes.push(Volume {
            name: ENCRYPTION_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.name.clone()),
                items: None,
                default_mode: Some(SECRET_FILE_MODE),
                optional: Some(false),
            }),
            ..Volume::default()
        });
        mounts.push(mount(ENCRYPTION_VOLUME, ENCRYPTION_DIR, true));
    }
}

fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn key_to_path(key: &str, path: &str) -> KeyToPath {
    KeyToPath {
        key: key.into(),
        path: path.into(),
        mode: None,
    }
}

fn secret_volume(volume: &str, secret: &str, items: Vec<KeyToPath>) -> Volume {
    Volume {
        name: volume.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            items: Some(items),
            default_mode: Some(SECRET_FILE_MODE),
            optional: Some(false),
        }),
        ..Volume::default()
    }
}

fn secret_env(var: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: var.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn plain_env(var: &str, value: &str) -> EnvVar {
    EnvVar {
        name: var.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::super::fixtures::*;
    use super::super::task::task_config_map;
    use super::*;

    fn env_map(container: &Container) -> BTreeMap<String, EnvVar> {
        container
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.clone()))
            .collect()
    }

    /// The names of the env vars besides the ones every worker gets (metrics, log format).
    fn own_env(container: &Container) -> Vec<String> {
        env_map(container)
            .into_keys()
            .filter(|k| k != "TIDEMARK_METRICS_ADDR" && k != "TIDEMARK_LOG_FORMAT")
            .collect()
    }

    const RUN: RunId = RunId {
        generation: 1,
        run: 0,
    };

    fn build(yaml: &str) -> Job {
        job(&korb(yaml), RUN, &OperatorConfig::default()).expect("builds")
    }

    fn mounts(job: &Job) -> BTreeMap<String, (String, bool)> {
        container(job)
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| {
                (
                    m.mount_path.clone(),
                    (m.name.clone(), m.read_only.unwrap_or(false)),
                )
            })
            .collect()
    }

    fn volume<'a>(job: &'a Job, name: &str) -> &'a Volume {
        pod(job)
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
    }

    fn secret_ref(env: &EnvVar) -> (&str, &str) {
        let r = env
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("secretKeyRef");
        (r.name.as_str(), r.key.as_str())
    }

    #[test]
    fn every_reference_example_builds_a_locked_down_job() {
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
            let cr = korb(yaml);
            let job = build(yaml);
            let cr_name = cr.metadata.name.clone().expect("name");
            let name = job.metadata.name.clone().expect("job name");
            assert_eq!(name, format!("{cr_name}-korb-g1-r0"));
            // The Job and its pods keep the result until the operator has recorded it.
            let held = Some(vec![RESULT_FINALIZER.to_string()]);
            assert_eq!(job.metadata.finalizers, held);
            let template = job.spec.as_ref().and_then(|s| s.template.metadata.as_ref());
            assert_eq!(template.and_then(|m| m.finalizers.clone()), held);
            assert!(name.len() <= 63);
            assert_eq!(job.metadata.namespace, cr.metadata.namespace);

            let owner = &job.metadata.owner_references.as_ref().expect("owner")[0];
            assert_eq!(
                (owner.kind.as_str(), owner.name.as_str()),
                ("KafkaOffsetRollback", cr_name.as_str())
            );
            assert_eq!(owner.controller, Some(true));
            assert_eq!(owner.block_owner_deletion, Some(true));

            let labels = job.metadata.labels.as_ref().expect("labels");
            for (k, v) in [
                ("app.kubernetes.io/name", "tidemark"),
                ("app.kubernetes.io/instance", cr_name.as_str()),
                ("app.kubernetes.io/component", "offset-rollback"),
                ("app.kubernetes.io/managed-by", "tidemark-operator"),
                ("tidemark.dev/owner-kind", "KafkaOffsetRollback"),
                ("tidemark.dev/owner-name", cr_name.as_str()),
                ("tidemark.dev/run", "g1-r0"),
            ] {
                assert_eq!(labels.get(k).map(String::as_str), Some(v), "{k}");
            }
            // The pods have the Job's labels, and the uid of the resource they hold a result for.
            let template = &job.spec.as_ref().expect("spec").template;
            let mut pod_labels = labels.clone();
            pod_labels.insert(OWNER_UID_LABEL.to_string(), owner.uid.clone());
            assert_eq!(
                template.metadata.as_ref().and_then(|m| m.labels.as_ref()),
                Some(&pod_labels)
            );

            let c = container(&job);
            assert_eq!(c.command.as_deref(), Some(&["tidemark".to_string()][..]));
            assert_eq!(
                c.args.clone().expect("args"),
                ["run", "--task", "/etc/tidemark/task/task.yaml"]
            );
            assert_eq!(
                c.termination_message_path.as_deref(),
                Some("/dev/termination-log")
            );
            assert_eq!(c.termination_message_policy.as_deref(), Some("File"));
            let sc = c
                .security_context
                .as_ref()
                .expect("container securityContext");
            assert_eq!(sc.read_only_root_filesystem, Some(true));
            assert_eq!(sc.allow_privilege_escalation, Some(false));
            assert_eq!(sc.run_as_non_root, Some(true));
            assert_eq!(
                sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
                Some(vec!["ALL".to_string()])
            );

            let p = pod(&job);
            assert_eq!(p.restart_policy.as_deref(), Some("Never"));
            assert_eq!(p.service_account_name.as_deref(), Some("tidemark-worker"));
            let psc = p.security_context.as_ref().expect("pod securityContext");
            assert_eq!(psc.run_as_non_root, Some(true));
            assert_eq!(psc.run_as_user, Some(65532));
            assert_eq!(psc.fs_group, Some(65532));
            assert_eq!(
                psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
                Some("RuntimeDefault")
            );

            let m = mounts(&job);
            assert_eq!(m["/etc/tidemark/task"], ("task".to_string(), true));
            assert_eq!(m["/tmp"], ("tmp".to_string(), false));
            let task_volume = volume(&job, "task").config_map.as_ref().expect("configMap");
            assert_eq!(task_volume.name, format!("{cr_name}-korb-task-g1-r0"));
            let tmp = volume(&job, "tmp")
                .empty_dir
                .as_ref()
                .expect("/tmp emptyDir");
            assert_eq!(tmp.size_limit.as_ref().map(|q| q.0.as_str()), Some("1Gi"));

            // The task ConfigMap the Job mounts is the one the task builder makes.
            let cm = task_config_map(&cr, RUN).expect("task config map");
            assert_eq!(cm.metadata.name.as_ref(), Some(&task_volume.name));
        }
    }

    #[test]
    fn every_worker_serves_metrics_on_a_named_port_and_logs_json() {
        for yaml in [
            QUICK_SNAPSHOT,
            PRE_MIGRATION_SNAPSHOT,
            MTLS_PVC,
            DELETE_SNAPSHOT,
        ] {
            let job = build(yaml);
            let c = container(&job);
            let env = env_map(c);
            assert_eq!(
                env["TIDEMARK_METRICS_ADDR"].value.as_deref(),
                Some("0.0.0.0:9090")
            );
            assert_eq!(env["TIDEMARK_LOG_FORMAT"].value.as_deref(), Some("json"));
            let ports = c.ports.as_ref().expect("ports");
            assert_eq!(ports.len(), 1);
            assert_eq!(ports[0].name.as_deref(), Some("metrics"));
            assert_eq!(ports[0].container_port, 9090);
            assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
            // The address the Job sets is the one the worker reads.
            assert!(env.contains_key(tidemark_task::env::ENV_METRICS_ADDR));
            // A PodMonitor selects worker pods by this label.
            let labels = pod_labels(&job);
            assert_eq!(
                labels
                    .get("app.kubernetes.io/managed-by")
                    .map(String::as_str),
                Some("tidemark-operator")
            );
        }
    }

    fn pod_labels(job: &Job) -> BTreeMap<String, String> {
        job.spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default()
    }

    #[test]
    fn sasl_credentials_are_secret_key_refs_with_default_keys() {
        let job = build(PRE_MIGRATION_SNAPSHOT);
        let env = env_map(container(&job));
        assert_eq!(
            secret_ref(&env["KAFKA_USERNAME"]),
            ("kafka-credentials", "username")
        );
        assert_eq!(
            secret_ref(&env["KAFKA_PASSWORD"]),
            ("kafka-credentials", "password")
        );
        assert_eq!(
            env["KAFKA_SASL_MECHANISM"].value.as_deref(),
            Some("SCRAM-SHA-256")
        );
        assert!(env["KAFKA_PASSWORD"].value.is_none());
        // No TLS Secret: the system CAs are used; no extra mounts.
        assert_eq!(mounts(&job).len(), 2);
        assert_eq!(pod(&job).automount_service_account_token, Some(false));
        assert!(container(&job).env_from.is_none());
    }

    #[test]
    fn custom_sasl_keys_are_honoured() {
        let yaml = PRE_MIGRATION_SNAPSHOT.replace(
            "      mechanism: SCRAM-SHA-256",
            "      mechanism: PLAIN\n      usernameKey: user\n      passwordKey: pass",
        );
        let env = env_map(container(&build(&yaml)));
        assert_eq!(
            secret_ref(&env["KAFKA_USERNAME"]),
            ("kafka-credentials", "user")
        );
        assert_eq!(
            secret_ref(&env["KAFKA_PASSWORD"]),
            ("kafka-credentials", "pass")
        );
        assert_eq!(env["KAFKA_SASL_MECHANISM"].value.as_deref(), Some("PLAIN"));
    }

    #[test]
    fn full_specification_mounts_the_ca_and_takes_resources_and_job_options() {
        let job = build(FULL_SPECIFICATION);
        assert_eq!(
            mounts(&job)["/etc/tidemark/tls"],
            ("kafka-tls".to_string(), true)
        );
        let tls = volume(&job, "kafka-tls").secret.as_ref().expect("secret");
        assert_eq!(tls.secret_name.as_deref(), Some("kafka-tls"));
        assert_eq!(tls.default_mode, Some(0o440));
        let items = tls.items.as_ref().expect("items");
        assert_eq!(items.len(), 1);
        assert_eq!(
            (items[0].key.as_str(), items[0].path.as_str()),
            ("ca.crt", "ca.crt")
        );

        let resources = container(&job).resources.as_ref().expect("resources");
        let limits = resources.limits.as_ref().expect("limits");
        assert_eq!(limits["cpu"].0, "200m");
        assert_eq!(limits["memory"].0, "256Mi");
        assert_eq!(
            resources.requests.as_ref().expect("requests")["cpu"].0,
            "100m"
        );

        let spec = job.spec.as_ref().expect("spec");
        assert_eq!(spec.backoff_limit, Some(3));
        assert_eq!(spec.active_deadline_seconds, Some(600));
        assert_eq!(spec.ttl_seconds_after_finished, Some(3600));
        // The unused configMap block does not turn on API access.
        assert_eq!(pod(&job).automount_service_account_token, Some(false));
    }

    #[test]
    fn defaults_come_from_the_operator_config() {
        let job = build(QUICK_SNAPSHOT);
        let spec = job.spec.as_ref().expect("spec");
        assert_eq!(spec.backoff_limit, Some(3));
        assert_eq!(spec.active_deadline_seconds, None);
        assert_eq!(spec.ttl_seconds_after_finished, Some(86400));
        let c = container(&job);
        assert_eq!(
            c.resources.as_ref(),
            Some(&crate::config::default_resources())
        );
        assert_eq!(
            c.image.as_deref(),
            Some(
                format!(
                    "ghcr.io/tidemark-dev/tidemark:{}",
                    env!("CARGO_PKG_VERSION")
                )
                .as_str()
            )
        );
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(
            own_env(c),
            Vec::<String>::new(),
            "PLAINTEXT and a ConfigMap need no env"
        );

        let config = OperatorConfig {
            worker_image: "registry.local/tidemark:dev".into(),
            image_pull_policy: "Always".into(),
            image_pull_secrets: vec!["regcred".into()],
            worker_service_account: "kafka-ops".into(),
            job_defaults: crate::config::JobDefaults {
                backoff_limit: 1,
                active_deadline_seconds: Some(300),
                ttl_seconds_after_finished: 60,
            },
            worker_tmp_size_limit: Quantity("256Mi".into()),
            ..OperatorConfig::default()
        };
        let job = super::job(&korb(QUICK_SNAPSHOT), RUN, &config).expect("builds");
        let tmp = volume(&job, "tmp")
            .empty_dir
            .as_ref()
            .expect("/tmp emptyDir");
        assert_eq!(tmp.size_limit, Some(Quantity("256Mi".into())));
        let spec = job.spec.as_ref().expect("spec");
        assert_eq!(
            (
                spec.backoff_limit,
                spec.active_deadline_seconds,
                spec.ttl_seconds_after_finished
            ),
            (Some(1), Some(300), Some(60))
        );
        assert_eq!(
            container(&job).image.as_deref(),
            Some("registry.local/tidemark:dev")
        );
        assert_eq!(pod(&job).service_account_name.as_deref(), Some("kafka-ops"));
        assert_eq!(
            pod(&job).image_pull_secrets.as_ref().expect("pull secrets")[0].name,
            "regcred"
        );
    }

    #[test]
    fn config_map_storage_mounts_the_service_account_token() {
        for yaml in [
            CREATE_SNAPSHOT,
            QUICK_SNAPSHOT,
            DELETE_SNAPSHOT,
            CLEANUP_OLD_SNAPSHOT,
        ] {
            assert_eq!(
                pod(&build(yaml)).automount_service_account_token,
                Some(true)
            );
        }
        for yaml in [PRE_MIGRATION_SNAPSHOT, VERIFY_ROLLBACK, MTLS_PVC] {
            assert_eq!(
                pod(&build(yaml)).automount_service_account_token,
                Some(false)
            );
        }
    }

    #[test]
    fn delete_gets_no_kafka_credentials() {
        let yaml = DELETE_SNAPSHOT.replace(
            "      - kafka:9092\n",
            "      - kafka:9092\n    securityProtocol: SASL_SSL\n    saslSecret: {name: kafka-credentials}\n",
        );
        let job = build(&yaml);
        assert_eq!(own_env(container(&job)), Vec::<String>::new());
        assert_eq!(mounts(&job).len(), 2);
    }

    #[test]
    fn mutual_tls_ca_secret_and_pvc_are_mounted() {
        let job = build(MTLS_PVC);
        let m = mounts(&job);
        assert_eq!(m["/etc/tidemark/tls"], ("kafka-tls".to_string(), true));
        assert_eq!(m["/etc/tidemark/ca"], ("kafka-ca".to_string(), true));
        assert_eq!(m["/var/lib/tidemark"], ("storage".to_string(), false));

        let tls = volume(&job, "kafka-tls").secret.as_ref().expect("secret");
        let items: Vec<(&str, &str)> = tls
            .items
            .iter()
            .flatten()
            .map(|i| (i.key.as_str(), i.path.as_str()))
            .collect();
        // The CA comes from caSecret, so tlsSecret only provides the client pair.
        assert_eq!(items, [("tls.crt", "tls.crt"), ("tls.key", "tls.key")]);
        let ca = volume(&job, "kafka-ca").secret.as_ref().expect("secret");
        assert_eq!(ca.secret_name.as_deref(), Some("cluster-ca"));
        let ca_items = ca.items.as_ref().expect("items");
        assert_eq!(
            (ca_items[0].key.as_str(), ca_items[0].path.as_str()),
            ("ca.pem", "ca.crt")
        );

        let pvc = volume(&job, "storage")
            .persistent_volume_claim
            .as_ref()
            .expect("pvc");
        assert_eq!(pvc.claim_name, "offset-backups");
        assert_eq!(
            own_env(container(&job)),
            Vec::<String>::new(),
            "SSL without SASL has no env"
        );
    }

    #[test]
    fn cloud_credentials_come_from_env_from() {
        let yaml = PRE_MIGRATION_SNAPSHOT.replace(
            "      prefix: offset-snapshots",
            "      prefix: offset-snapshots\n      credentialsSecret: {name: s3-credentials}",
        );
        let job = build(&yaml);
        let from = container(&job).env_from.clone().expect("envFrom");
        assert_eq!(from.len(), 1);
        assert_eq!(
            from[0].secret_ref.as_ref().map(|s| s.name.as_str()),
            Some("s3-credentials")
        );

        let azure = QUICK_SNAPSHOT.replace(
            "    storageType: configMap\n    configMap:\n      name: offset-snapshots",
            "    storageType: azure\n    azure:\n      container: snaps\n      accountName: tidemarkprod\n      credentialsSecret: {name: azure-key}",
        );
        let job = build(&azure);
        let c = container(&job);
        assert_eq!(
            env_map(c)["AZURE_STORAGE_ACCOUNT_NAME"].value.as_deref(),
            Some("tidemarkprod")
        );
        assert_eq!(
            c.env_from.as_ref().expect("envFrom")[0]
                .secret_ref
                .as_ref()
                .map(|s| s.name.as_str()),
            Some("azure-key")
        );
    }

    #[test]
    fn permanent_failures_fail_the_job_and_evictions_are_ignored() {
        let job = build(EMERGENCY_ROLLBACK);
        let policy = job
            .spec
            .as_ref()
            .and_then(|s| s.pod_failure_policy.as_ref())
            .expect("policy");
        assert_eq!(policy.rules[0].action, "Ignore");
        assert_eq!(policy.rules[1].action, "FailJob");
        let codes = policy.rules[1].on_exit_codes.as_ref().expect("exit codes");
        assert_eq!(codes.container_name.as_deref(), Some("tidemark"));
        assert_eq!(codes.values, [2, 3, 4, 6, 8, 11, 13, 15]);
    }

    #[test]
    fn no_secret_value_appears_in_the_job_or_task() {
        // The only way a secret could reach the operator is inline in the spec; the password
        // properties are dropped and Secrets are only referenced by name and key.
        let sentinel = "s3ntinel-Pa55w0rd";
        let yaml = FULL_SPECIFICATION.replace(
            "      - kafka-1.kafka.svc:9092\n",
            &format!(
                "      - kafka-1.kafka.svc:9092\n    properties:\n      sasl.password: {sentinel}\n      sasl.jaas.config: 'org.apache.kafka.common.security.scram.ScramLoginModule required username=\"u\" password=\"{sentinel}\";'\n      ssl.key.password: {sentinel}\n"
            ),
        );
        let cr = korb(&yaml);
        let job_yaml =
            serde_yaml_ng::to_string(&job(&cr, RUN, &OperatorConfig::default()).expect("job"))
                .expect("yaml");
        let cm_yaml =
            serde_yaml_ng::to_string(&task_config_map(&cr, RUN).expect("cm")).expect("yaml");
        assert!(!job_yaml.contains(sentinel), "{job_yaml}");
        assert!(!cm_yaml.contains(sentinel), "{cm_yaml}");
        assert!(!cm_yaml.contains("password"), "{cm_yaml}");
    }

    #[test]
    fn long_names_are_shortened() {
        let long = "a".repeat(120);
        let yaml = QUICK_SNAPSHOT.replace("name: quick-snapshot", &format!("name: {long}"));
        let job = build(&yaml);
        let name = job.metadata.name.expect("name");
        assert!(name.len() <= 63, "{name}");
        assert!(name.ends_with("-g1-r0"));
        let labels = job.metadata.labels.expect("labels");
        assert!(labels.values().all(|v| v.len() <= 63));
    }
}

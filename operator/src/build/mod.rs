//! Pure builders of the children of a custom resource (one module per built kind: Jobs, CronJobs,
//! task ConfigMaps, worker RBAC, the worker ServiceAccount; one module per custom resource kind
//! for its task), and what they share: the [`WorkerKind`] view of a resource that runs as
//! worker Jobs, the run id, child names, labels, the owner reference and the worker's file
//! layout. Nothing here talks to the API server; the controller applies what these functions
//! return.

pub mod approval;
pub mod backup;
pub mod cronjob;
pub mod drill;
pub mod job;
pub mod rbac;
pub mod reset;
pub mod restore;
pub mod rollback;
pub mod service_account;
pub mod task;

#[cfg(test)]
mod encryption_tests;

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};
use tidemark_task::Task;

use crate::crd::common::{EncryptionSpec, JobOptions, KafkaClusterSpec, StorageSpec, StorageType};

/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "tidemark-operator";

/// Annotation holding a run counter: bump it (`kubectl annotate … tidemark.dev/run=2
/// --overwrite`) to run an unchanged spec again.
pub const RUN_ANNOTATION: &str = "tidemark.dev/run";
/// Label naming the kind of the owning resource.
pub const OWNER_KIND_LABEL: &str = "tidemark.dev/owner-kind";
/// Label naming the owning resource (shortened with a hash past 63 characters).
pub const OWNER_NAME_LABEL: &str = "tidemark.dev/owner-name";
/// Label with the [`RunId`] a child belongs to.
pub const RUN_LABEL: &str = "tidemark.dev/run";

/// Where the task document is mounted in the worker.
pub const TASK_DIR: &str = "/etc/tidemark/task";
/// The entry of the task ConfigMap, and the file name under [`TASK_DIR`].
pub const TASK_FILE_NAME: &str = "task.yaml";
/// The `--task` argument of the worker.
pub const TASK_PATH: &str = "/etc/tidemark/task/task.yaml";
/// Where `kafkaCluster.tlsSecret` is mounted (`ca.crt`, `tls.crt`, `tls.key`).
pub const TLS_DIR: &str = "/etc/tidemark/tls";
/// Where `kafkaCluster.caSecret` is mounted (`ca.crt`).
pub const CA_DIR: &str = "/etc/tidemark/ca";
/// Where `encryption.secretRef` is mounted, whole (one file per key, named by its key id).
pub const ENCRYPTION_DIR: &str = "/etc/tidemark/encryption";
/// Where a `pvc` storage volume is mounted.
pub const DATA_DIR: &str = "/var/lib/tidemark";

/// Longest name of a child the operator creates: a DNS-1123 label, so that it also fits in a
/// label value (a Job's pods carry its name in the `job-name` label).
pub const MAX_CHILD_NAME: usize = 63;

/// Why a child could not be built. Each variant is a spec or metadata problem the validation
/// step reports first; the builders refuse rather than guess.
#[derive(Debug)]
pub enum Error {
    /// The resource has no `metadata.name`, `metadata.namespace` or `metadata.uid`.
    MissingMetadata(&'static str),
    /// `metadata.annotations["tidemark.dev/run"]` is not a whole number.
    InvalidRunAnnotation(String),
    /// A block the spec needs is absent (e.g. `storage.s3` for storageType s3).
    MissingField(&'static str),
    /// A field holds a value the task cannot carry (e.g. a negative count).
    InvalidField { field: &'static str, reason: String },
    /// The task document could not be serialized.
    SerializeTask(serde_yaml_ng::Error),
}

impl Error {
    /// A short stable label, for metrics and Events.
    pub fn label(&self) -> &'static str {
        match self {
            Error::MissingMetadata(_) => "missing_metadata",
            Error::InvalidRunAnnotation(_) => "invalid_run_annotation",
            Error::MissingField(_) => "missing_field",
            Error::InvalidField { .. } => "invalid_field",
            Error::SerializeTask(_) => "serialize_task",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::MissingMetadata(field) => {
                write!(f, "failed to build: the resource has no {field}")
            }
            Error::InvalidRunAnnotation(value) => write!(
                f,
                "failed to build: annotation {RUN_ANNOTATION} is '{value}', not a whole number"
            ),
            Error::MissingField(field) => write!(f, "failed to build: {field} is required"),
            Error::InvalidField { field, reason } => {
                write!(f, "failed to build: {field} {reason}")
            }
            Error::SerializeTask(e) => write!(f, "failed to serialize the task document: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::SerializeTask(e) => Some(e),
            _ => None,
        }
    }
}

/// One execution of a resource's operation: its `metadata.generation` and the
/// [`RUN_ANNOTATION`] counter (0 when absent). A new spec or a bumped counter is a new run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunId {
    pub generation: i64,
    pub run: u64,
}

impl RunId {
    /// The run id of `obj` as it is now.
    pub fn of<K: Resource>(obj: &K) -> Result<RunId, Error> {
        let run = match obj.annotations().get(RUN_ANNOTATION) {
            None => 0,
            Some(value) => value
                .trim()
                .parse::<u64>()
                .map_err(|_| Error::InvalidRunAnnotation(value.clone()))?,
        };
        Ok(RunId {
            generation: obj.meta().generation.unwrap_or(0),
            run,
        })
    }

    /// The run id written as `g<generation>-r<run>` (a status's `run`), if `text` is one.
    pub fn parse(text: &str) -> Option<RunId> {
        let (generation, run) = text.strip_prefix('g')?.split_once("-r")?;
        Some(RunId {
            generation: generation.parse().ok()?,
            run: run.parse().ok()?,
        })
    }
}

/// `g<generation>-r<run>`, e.g. `g3-r0`: used in child names and the [`RUN_LABEL`].
impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "g{}-r{}", self.generation, self.run)
    }
}

/// `<base>-<suffix>` as a DNS-1123 label of at most [`MAX_CHILD_NAME`] characters. Dots in
/// `base` become `-`; when too long, `base` is cut and an 8-hex-digit hash of the whole base is
/// added, so distinct long names stay distinct.
pub fn child_name(base: &str, suffix: &str) -> String {
    child_name_within(base, suffix, MAX_CHILD_NAME)
}

/// The name of a child of a resource of kind `K` named `cr_name`: [`child_name`] with the kind's
/// [`WorkerKind::TAG`] before `suffix` (`orders-kr-g1-r0`), so that resources of different
/// kinds with one name never share a child. The tag and suffix are never cut.
pub fn kind_child_name<K: WorkerKind + ?Sized>(cr_name: &str, suffix: &str) -> String {
    kind_child_name_within::<K>(cr_name, suffix, MAX_CHILD_NAME)
}

/// [`kind_child_name`] with at most `max` characters.
pub fn kind_child_name_within<K: WorkerKind + ?Sized>(
    cr_name: &str,
    suffix: &str,
    max: usize,
) -> String {
    child_name_within(cr_name, &format!("{}-{suffix}", K::TAG), max)
}

/// [`child_name`] with at most `max` characters (a CronJob's name leaves room for the suffix
/// its Jobs get).
pub fn child_name_within(base: &str, suffix: &str, max: usize) -> String {
    let clean: String = base
        .chars()
        .map(|c| {
            if c == '.' {
                '-'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    let full = format!("{clean}-{suffix}");
    if full.len() <= max {
        return full;
    }
    let hash = format!("{:08x}", fnv1a(base.as_bytes()));
    let room = max.saturating_sub(suffix.len() + hash.len() + 2);
    let cut = clean[..room.min(clean.len())].trim_end_matches('-');
    format!("{cut}-{hash}-{suffix}")
}

/// A label value for `name` (≤ 63 characters, shortened with a hash like [`child_name`]).
pub fn label_value(name: &str) -> String {
    if name.len() <= MAX_CHILD_NAME {
        return name.to_string();
    }
    let hash = format!("{:08x}", fnv1a(name.as_bytes()));
    let cut = name[..MAX_CHILD_NAME - hash.len() - 1].trim_end_matches(['-', '.', '_']);
    format!("{cut}-{hash}")
}

/// `value` as an unsigned count, or an [`Error::InvalidField`] naming `field` (the schema
/// refuses negative values; a resource stored before it did is refused here, never wrapped).
fn count<V, T>(value: V, field: &'static str) -> Result<T, Error>
where
    V: Copy + fmt::Display,
    T: TryFrom<V>,
{
    T::try_from(value).map_err(|_| Error::InvalidField {
        field,
        reason: format!("is {value}; it cannot be negative"),
    })
}

/// An optional `value` (at least 1 by the schema) as a task count, refused like [`count`].
fn positive<T: TryFrom<i64>>(value: Option<i64>, field: &'static str) -> Result<Option<T>, Error> {
    value.map(|v| count(v, field)).transpose()
}

/// 32-bit FNV-1a: a stable, dependency-free hash for name suffixes (not for security).
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// A hash of `obj`'s namespace, name and uid: the same for the life of one resource, different
/// for another resource or the same name re-created. Part of ids that must not collide in
/// storage shared between namespaces and re-created resources (a reset's safety snapshot, a
/// backup's id).
pub fn instance_hash<K: Resource>(obj: &K) -> Result<u32, Error> {
    let ns = namespace(obj)?;
    let name = name(obj)?;
    let uid = obj
        .meta()
        .uid
        .as_deref()
        .ok_or(Error::MissingMetadata("metadata.uid"))?;
    Ok(fnv1a(format!("{ns}/{name}/{uid}").as_bytes()))
}

/// Labels of every child of `obj` for one run: [`owner_labels`] plus [`RUN_LABEL`].
pub fn labels<K>(obj: &K, component: &str, run: RunId) -> BTreeMap<String, String>
where
    K: Resource<DynamicType = ()>,
{
    let mut labels = owner_labels(obj, component);
    labels.insert(RUN_LABEL.to_string(), run.to_string());
    labels
}

/// Labels of a child of `obj` that outlives single runs (its worker RoleBinding): the
/// `app.kubernetes.io/*` set plus [`OWNER_KIND_LABEL`] and [`OWNER_NAME_LABEL`].
pub fn owner_labels<K>(obj: &K, component: &str) -> BTreeMap<String, String>
where
    K: Resource<DynamicType = ()>,
{
    let name = label_value(&obj.name_any());
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "tidemark".to_string()),
        ("app.kubernetes.io/instance".to_string(), name.clone()),
        (
            "app.kubernetes.io/component".to_string(),
            component.to_string(),
        ),
        (
            "app.kubernetes.io/part-of".to_string(),
            "tidemark".to_string(),
        ),
        (
            "app.kubernetes.io/managed-by".to_string(),
            FIELD_MANAGER.to_string(),
        ),
        (OWNER_KIND_LABEL.to_string(), K::kind(&()).to_string()),
        (OWNER_NAME_LABEL.to_string(), name),
    ])
}

/// The controller owner reference to `obj` (`controller: true`, `blockOwnerDeletion: true`), so
/// its children are garbage-collected with it and re-trigger its reconcile.
pub fn owner_reference<K>(obj: &K) -> Result<OwnerReference, Error>
where
    K: Resource<DynamicType = ()>,
{
    if obj.meta().name.is_none() {
        return Err(Error::MissingMetadata("metadata.name"));
    }
    let owner = obj
        .controller_owner_ref(&())
        .ok_or(Error::MissingMetadata("metadata.uid"))?;
    Ok(OwnerReference {
        block_owner_deletion: Some(true),
        ..owner
    })
}

/// What the builders need from a kind that runs as one worker Job per run: the builders of the
/// Job, the task ConfigMap and the worker RBAC are written once against this trait.
pub trait WorkerKind: Resource<DynamicType = ()> {
    /// `app.kubernetes.io/component` of the children, e.g. `offset-rollback`.
    const COMPONENT: &'static str;

    /// The kind's short name (`kb`, `kr`, `kor`, `korb`), part of every child's name
    /// ([`kind_child_name`]).
    const TAG: &'static str;

    /// The cluster the worker connects to; `None` when the run needs no Kafka connection (then
    /// no Kafka Secret is wired in either).
    fn kafka_cluster(&self) -> Option<&KafkaClusterSpec>;

    /// The storage the worker uses; `Ok(None)` when the run uses none, `Err` when the run needs
    /// one and the spec has none.
    fn storage(&self) -> Result<Option<&StorageSpec>, Error>;

    /// The keys of the data in [`storage`](Self::storage) (`spec.encryption`, or what the
    /// resource inherits): its Secret is mounted into every worker Job at
    /// [`ENCRYPTION_DIR`] and the task's storage names that path. `None`: in the clear.
    fn encryption(&self) -> Option<&EncryptionSpec>;

    /// The field that names [`encryption`](Self::encryption)'s Secret, for messages
    /// (default `spec.encryption.secretRef`).
    fn encryption_secret_field(&self) -> &'static str {
        "spec.encryption.secretRef"
    }

    /// What the worker does in a `configMap` storage (ignored for other storage types).
    fn config_map_access(&self) -> ConfigMapAccess;

    /// `spec.job`.
    fn job_options(&self) -> Option<&JobOptions>;

    /// `spec.resources`.
    fn resources(&self) -> Option<&ResourceRequirements>;

    /// The task document of run `run`, exactly as the worker will read it.
    fn task(&self, run: RunId) -> Result<Task, Error>;

    /// Worker exit codes that fail the Job at once instead of being retried
    /// (default [`job::PERMANENT_EXIT_CODES`]).
    fn permanent_exit_codes(&self) -> &'static [i32] {
        &job::PERMANENT_EXIT_CODES
    }

    /// Worker exit codes of a run that was stopped and resumes from its checkpoint: the pod
    /// is replaced without counting against `backoffLimit` (default none).
    fn resumable_exit_codes(&self) -> &'static [i32] {
        &[]
    }

    /// Whether a run goes on until it is stopped (a continuous backup): the operator's
    /// default `activeDeadlineSeconds` does not apply to its Job (default false).
    fn runs_until_stopped(&self) -> bool {
        false
    }

    /// The approved plan run `run` executes (`spec.approval: Manual`, approved): its task gets
    /// `approvedPlan` and its Job a name of its own per plan ([`approval`]). Default none.
    fn approved_run(&self, _run: RunId) -> Option<approval::ApprovedRun> {
        None
    }

    /// The name of the Job of run `run` (default [`job::job_name`]: `<name>-<tag>-<run>`).
    fn job_name(&self, run: RunId) -> Result<String, Error> {
        let name = self.meta().name.as_deref();
        Ok(job::job_name::<Self>(
            name.ok_or(Error::MissingMetadata("metadata.name"))?,
            run,
        ))
    }

    /// Worker pods of one run: more than one makes the Job an Indexed Job with one pod per
    /// shard, each finding its shard in `JOB_COMPLETION_INDEX` (default 1).
    fn shards(&self) -> u32 {
        1
    }

    /// Environment variables the worker container gets besides the Kafka and storage ones
    /// (default none).
    fn worker_env(&self) -> Vec<EnvVar> {
        Vec::new()
    }

    /// When the run repeats on a schedule (a CronJob) instead of running once (default never).
    fn schedule(&self) -> Option<Schedule<'_>> {
        None
    }

    /// The field that names the credentials Secret of a [`storage`](Self::storage) of type
    /// `storage_type`, for messages (default `spec.storage.<type>.credentialsSecret`).
    fn storage_credentials_field(&self, storage_type: StorageType) -> &'static str {
        match storage_type.normalized() {
            StorageType::S3 => "spec.storage.s3.credentialsSecret",
            StorageType::Azure => "spec.storage.azure.credentialsSecret",
            StorageType::Gcs => "spec.storage.gcs.credentialsSecret",
            _ => "spec.storage",
        }
    }
}

/// A cron schedule of a resource's runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule<'a> {
    /// The cron expression, as Kubernetes' CronJob reads it.
    pub cron: &'a str,
    /// No new run starts while true.
    pub suspend: bool,
}

/// What a run's worker does in a ConfigMap storage: anything but `None` gets the worker
/// RoleBinding (the worker ClusterRole grants `get`, `patch`, `create`) and an API token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigMapAccess {
    /// Nothing (no RoleBinding, no API token).
    None,
    /// Reads snapshots (`get`).
    Read,
    /// Changes entries of an existing ConfigMap (`get`, `patch`).
    Write,
    /// Stores snapshots, creating the ConfigMap on first use (`get`, `patch`, `create`).
    Create,
}

/// `spec.storage` when a run needs one: the schema may let a resource omit it (a KafkaOffsetRollback
/// `snapshot` skeleton), and validation stalls such a resource before anything is built.
pub fn required_storage(storage: Option<&StorageSpec>) -> Result<&StorageSpec, Error> {
    storage.ok_or(Error::MissingField("spec.storage"))
}

/// `metadata.namespace` of `obj`.
pub fn namespace<K: Resource>(obj: &K) -> Result<String, Error> {
    obj.meta()
        .namespace
        .clone()
        .ok_or(Error::MissingMetadata("metadata.namespace"))
}

/// `metadata.name` of `obj`.
pub fn name<K: Resource>(obj: &K) -> Result<String, Error> {
    obj.meta()
        .name
        .clone()
        .ok_or(Error::MissingMetadata("metadata.name"))
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Test fixtures: the KafkaOffsetRollback reference examples (shared with the schema tests in
    //! `tests/fixtures/rollback/`) and the KafkaOffsetReset, KafkaBackup and KafkaRestore samples
    //! (`config/samples/`), with the metadata the API server adds.

    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec};
    use tidemark_task::Task;

    use crate::crd::{KafkaBackup, KafkaOffsetReset, KafkaOffsetRollback, KafkaRestore};

    /// The pod spec of a built Job.
    pub fn pod(job: &Job) -> &PodSpec {
        job.spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .expect("pod spec")
    }

    /// The worker container of a built Job.
    pub fn container(job: &Job) -> &Container {
        &pod(job).containers[0]
    }

    /// The task in a task ConfigMap, parsed and validated by the worker's own code.
    pub fn parse_task(cm: &ConfigMap) -> Task {
        let yaml = &cm.data.as_ref().expect("data")[super::TASK_FILE_NAME];
        let task =
            Task::parse(yaml.as_bytes(), super::TASK_FILE_NAME).expect("the worker parses it");
        task.validate().expect("the worker accepts it");
        task
    }

    /// A manifest as the API server returns it: namespace `kafka-backup` (unless set),
    /// a uid and generation 1.
    pub fn korb(yaml: &str) -> KafkaOffsetRollback {
        let mut cr: KafkaOffsetRollback = serde_yaml_ng::from_str(yaml).expect("valid manifest");
        let meta = &mut cr.metadata;
        meta.namespace.get_or_insert_with(|| "kafka-backup".into());
        meta.uid = Some("0b5c1c2e-7a43-4a8e-9f0e-4a1d2c3b4a5f".into());
        meta.generation = Some(1);
        cr
    }

    /// A KafkaOffsetReset manifest as the API server returns it, like [`korb`].
    pub fn kor(yaml: &str) -> KafkaOffsetReset {
        let mut cr: KafkaOffsetReset = serde_yaml_ng::from_str(yaml).expect("valid manifest");
        let meta = &mut cr.metadata;
        meta.namespace.get_or_insert_with(|| "kafka-backup".into());
        meta.uid = Some("7d2f4b8a-51c3-4e0a-b6a1-2c9e8f7d6a50".into());
        meta.generation = Some(1);
        cr
    }

    /// A KafkaBackup manifest as the API server returns it, like [`korb`].
    pub fn kb(yaml: &str) -> KafkaBackup {
        let mut cr: KafkaBackup = serde_yaml_ng::from_str(yaml).expect("valid manifest");
        let meta = &mut cr.metadata;
        meta.namespace.get_or_insert_with(|| "kafka-backup".into());
        meta.uid = Some("3c9a7e10-2b4d-4f6a-8e1c-5d7b9a0f2e64".into());
        meta.generation = Some(1);
        cr
    }

    /// A KafkaRestore manifest as the API server returns it, like [`korb`].
    pub fn kr(yaml: &str) -> KafkaRestore {
        let mut cr: KafkaRestore = serde_yaml_ng::from_str(yaml).expect("valid manifest");
        let meta = &mut cr.metadata;
        meta.namespace.get_or_insert_with(|| "kafka-backup".into());
        meta.uid = Some(RESTORE_UID.into());
        meta.generation = Some(1);
        cr
    }

    /// The uid [`kr`] gives a KafkaRestore.
    pub const RESTORE_UID: &str = "9e8d7c6b-5a49-4f38-a726-15f4e3d2c1b0";

    /// Everything of the KafkaBackup `orders-snapshot` ([`BACKUP_ONE_SHOT_PVC`]), by name,
    /// creating topics, with Job options and resources.
    pub const RESTORE_FULL: &str = include_str!("../../../config/samples/kafkarestore-full.yaml");

    /// A window in RFC 3339 into a renamed topic, over SASL_SSL, from a backup id in S3 with a
    /// credentials Secret; rate limit and checkpoint interval.
    pub const RESTORE_PITR_NEW_TOPIC: &str =
        include_str!("../../../config/samples/kafkarestore-pitr-new-topic.yaml");

    /// header-based with original-offset headers, offsets reset for two groups after a safety
    /// snapshot; the KafkaBackup `orders-snapshot` by name.
    pub const RESTORE_THREE_PHASE: &str =
        include_str!("../../../config/samples/kafkarestore-three-phase.yaml");

    /// Dry run of one partition into partition 0 of a new topic, up to an epoch-ms end; a
    /// KafkaBackup by name with an explicit backup id; strategy manual.
    pub const RESTORE_DRY_RUN: &str =
        include_str!("../../../config/samples/kafkarestore-dry-run.yaml");

    /// The KafkaBackup `orders-snapshot` ([`BACKUP_ONE_SHOT_PVC`]) whose newest backup `id`
    /// ended in `phase` (`Completed` or `Failed`), as the operator's status says it.
    pub fn orders_backup(id: &str, phase: &str) -> KafkaBackup {
        let mut value = serde_json::to_value(kb(BACKUP_ONE_SHOT_PVC)).expect("kb");
        let (reason, message) = match phase {
            "Completed" => ("BackupCompleted", format!("backup {id}: 1000 records")),
            _ => ("StorageError", "the bucket refused a write".to_string()),
        };
        value["status"] = serde_json::json!({
            "phase": phase, "run": "g1-r0", "jobName": id, "lastBackupId": id,
            "lastRun": {"jobName": id, "phase": phase, "reason": reason, "message": message,
                        "completionTime": "2024-12-01T02:10:00Z"},
            "records": 1000
        });
        serde_json::from_value(value).expect("a KafkaBackup with a status")
    }

    /// One-shot, PLAINTEXT, to a PVC.
    pub const BACKUP_ONE_SHOT_PVC: &str =
        include_str!("../../../config/samples/kafkabackup-one-shot-pvc.yaml");

    /// Daily at 02:00, zstd level 6, SASL_SSL with a TLS CA, to S3 with a credentials Secret,
    /// retention keepLast 7.
    pub const BACKUP_DAILY_S3: &str =
        include_str!("../../../config/samples/kafkabackup-daily-s3.yaml");

    /// Incremental, hourly, 3 shards, to GCS with a credentials Secret, retention maxAge.
    pub const BACKUP_HOURLY_INCREMENTAL_GCS: &str =
        include_str!("../../../config/samples/kafkabackup-hourly-incremental-gcs.yaml");

    /// Continuous, lz4, to Azure with an account name and a credentials Secret.
    pub const BACKUP_CONTINUOUS_AZURE: &str =
        include_str!("../../../config/samples/kafkabackup-continuous-azure.yaml");

    /// Incremental every six hours to S3, with a weekly restore drill into a staging cluster.
    pub const BACKUP_DRILL: &str = include_str!("../../../config/samples/kafkabackup-drill.yaml");

    /// Incremental, nightly, to S3, encrypted with the key `key-2026-12` of the Secret
    /// `tidemark-backup-keys`, retention keepLast 14.
    pub const BACKUP_ENCRYPTED: &str =
        include_str!("../../../config/samples/kafkabackup-encrypted.yaml");

    /// A restore of the KafkaBackup `customers-encrypted` that names no keys of its own.
    pub const RESTORE_ENCRYPTED: &str =
        include_str!("../../../config/samples/kafkarestore-encrypted.yaml");

    /// A snapshot to S3 encrypted with a KMS key, and the Secret for older snapshots.
    pub const ROLLBACK_ENCRYPTED: &str =
        include_str!("../../../config/samples/kafkaoffsetrollback-snapshot-encrypted.yaml");

    /// A Kafka property value that no rendered object may hold.
    pub const SENTINEL: &str = "s3ntinel-Pa55w0rd";

    /// `yaml` with secret-bearing Kafka properties holding [`SENTINEL`], and `client.id:
    /// <client_id>`, added after the bootstrap server line `broker`.
    pub fn with_secret_properties(yaml: &str, broker: &str, client_id: &str) -> String {
        let line = format!("      - {broker}\n");
        assert!(yaml.contains(&line), "no '{broker}' in the manifest");
        yaml.replacen(
            &line,
            &format!(
                "{line}    properties:\n      sasl.password: {SENTINEL}\n      ssl.key.password: {SENTINEL}\n      client.id: {client_id}\n"
            ),
            1,
        )
    }

    /// No `rendered` object holds [`SENTINEL`], and the `task` ConfigMap (YAML) mentions no
    /// password but keeps the harmless `client.id`.
    pub fn assert_no_secret(rendered: &[String], task: &str, client_id: &str) {
        for text in rendered.iter().map(String::as_str).chain([task]) {
            assert!(!text.contains(SENTINEL), "{text}");
        }
        assert!(!task.contains("password"), "{task}");
        assert!(task.contains(&format!("client.id: {client_id}")), "{task}");
    }

    /// `yaml` without its `schedule:` line: the same backup, run once.
    pub fn without_schedule(yaml: &str) -> String {
        let line = yaml
            .lines()
            .find(|l| l.starts_with("  schedule:"))
            .expect("a schedule line");
        yaml.replace(&format!("{line}\n"), "")
    }

    /// A worker result of shard `index` (of 3) of backup `id`: `records` records, complete, or
    /// failed with a storage error.
    pub fn backup_result(index: u32, id: &str, records: u64, complete: bool) -> serde_json::Value {
        let mut result = serde_json::json!({
            "phase": if complete { "Completed" } else { "Failed" },
            "operation": "backup",
            "message": format!("shard {index}/3 of backup {id}: {records} records"),
            "backup": {"backupId": id, "complete": complete, "topics": 2, "partitions": 4,
                       "records": records, "bytes": records * 100, "storedBytes": records * 30,
                       "segments": 2, "groupsCaptured": 3}
        });
        if !complete {
            result["error"] = serde_json::json!({"kind": "storage_error", "exitCode": 7});
            result["message"] =
                serde_json::json!(format!("shard {index}/3: the bucket refused a write"));
        }
        result
    }

    /// A backup Job of `cr` as the API server returns it: its labels (run `run`), its shards,
    /// created (and started) at `created`, ended by `end` (`(type, reason, time)`) if given.
    pub fn backup_job(
        cr: &KafkaBackup,
        name: &str,
        run: &str,
        created: &str,
        end: Option<(&str, &str, &str)>,
    ) -> serde_json::Value {
        use super::WorkerKind;
        let mut status = serde_json::json!({"startTime": created});
        if let Some((type_, reason, time)) = end {
            status["conditions"] = serde_json::json!([{
                "type": type_, "status": "True", "reason": reason,
                "message": format!("{reason} happened"), "lastTransitionTime": time
            }]);
            if type_ == "Complete" {
                status["completionTime"] = serde_json::json!(time);
            }
        }
        let shards = cr.shards();
        let mut spec =
            serde_json::json!({"template": {"spec": {"containers": [{"name": "tidemark"}]}}});
        if shards > 1 {
            spec["completionMode"] = serde_json::json!("Indexed");
            spec["completions"] = serde_json::json!(shards);
            spec["parallelism"] = serde_json::json!(shards);
        }
        serde_json::json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {
                "name": name, "namespace": cr.metadata.namespace, "uid": format!("uid-{name}"),
                "creationTimestamp": created,
                "labels": {"tidemark.dev/owner-kind": "KafkaBackup",
                           "tidemark.dev/owner-name": cr.metadata.name,
                           "app.kubernetes.io/component": "backup", "tidemark.dev/run": run}
            },
            "spec": spec,
            "status": status
        })
    }

    /// Dry run, toEarliest, groups by pattern, no storage.
    pub const RESET_DRY_RUN: &str =
        include_str!("../../../config/samples/kafkaoffsetreset-dry-run.yaml");

    /// toDatetime over SASL_SSL with a TLS CA, topics with partitions, snapshot to S3 with a
    /// credentials Secret, Job options.
    pub const RESET_TO_DATETIME: &str =
        include_str!("../../../config/samples/kafkaoffsetreset-to-datetime.yaml");

    /// shiftBy -500 with the snapshot on a PVC.
    pub const RESET_SHIFT_BY: &str =
        include_str!("../../../config/samples/kafkaoffsetreset-shift-by.yaml");

    /// fromBackup with a named safety snapshot, S3 storage.
    pub const RESET_FROM_BACKUP: &str =
        include_str!("../../../config/samples/kafkaoffsetreset-from-backup.yaml");

    /// fromSnapshot `before-change`, ConfigMap storage.
    pub const RESET_FROM_SNAPSHOT: &str =
        include_str!("../../../config/samples/kafkaoffsetreset-from-snapshot.yaml");

    /// toDatetime with `approval: Manual` (a 12h approval timeout), snapshot on a PVC.
    pub const RESET_APPROVED: &str =
        include_str!("../../../config/samples/kafkaoffsetreset-approved.yaml");

    /// fromBackup of the encrypted KafkaBackup's backup, with its key Secret and key id.
    pub const RESET_ENCRYPTED: &str =
        include_str!("../../../config/samples/kafkaoffsetreset-from-encrypted-backup.yaml");

    /// fromFile with an inline CSV, ConfigMap storage.
    pub const RESET_FROM_FILE: &str =
        include_str!("../../../config/samples/kafkaoffsetreset-from-file.yaml");

    pub const PRE_MIGRATION_SNAPSHOT: &str =
        include_str!("../../tests/fixtures/rollback/pre-migration-snapshot.yaml");

    pub const FULL_SPECIFICATION: &str =
        include_str!("../../tests/fixtures/rollback/full-specification.yaml");

    pub const CREATE_SNAPSHOT: &str =
        include_str!("../../tests/fixtures/rollback/operation-snapshot.yaml");

    pub const EMERGENCY_ROLLBACK: &str =
        include_str!("../../tests/fixtures/rollback/emergency-rollback.yaml");

    pub const VERIFY_ROLLBACK: &str =
        include_str!("../../tests/fixtures/rollback/verification-after-rollback.yaml");

    pub const QUICK_SNAPSHOT: &str =
        include_str!("../../tests/fixtures/rollback/snapshot-to-configmap.yaml");

    pub const DELETE_SNAPSHOT: &str =
        include_str!("../../tests/fixtures/rollback/operation-delete.yaml");

    pub const CLEANUP_OLD_SNAPSHOT: &str =
        include_str!("../../tests/fixtures/rollback/delete-old-snapshots.yaml");

    /// Not from the reference: mutual TLS with a separate CA Secret, PVC storage and a cloud
    /// credentials Secret in an unused block.
    pub const MTLS_PVC: &str = r#"
apiVersion: tidemark.dev/v1alpha1
kind: KafkaOffsetRollback
metadata:
  name: mtls-pvc
  namespace: payments
spec:
  kafkaCluster:
    bootstrapServers: ["kafka-0.kafka:9093", "kafka-1.kafka:9093"]
    securityProtocol: SSL
    tlsSecret:
      name: client-tls
      certKey: tls.crt
      keyKey: tls.key
    caSecret:
      name: cluster-ca
      key: ca.pem
    properties:
      client.id: tidemark
  consumerGroups: [billing]
  operation: rollback
  snapshotId: nightly-001
  storage:
    storageType: pvc
    pvc:
      claimName: offset-backups
      path: clusters/prod
"#;
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn run_ids_come_from_generation_and_annotation() {
        let mut cr = korb(QUICK_SNAPSHOT);
        assert_eq!(RunId::of(&cr).expect("run id").to_string(), "g1-r0");
        cr.metadata.generation = Some(4);
        cr.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(RUN_ANNOTATION.into(), " 7 ".into());
        assert_eq!(
            RunId::of(&cr).expect("run id"),
            RunId {
                generation: 4,
                run: 7
            }
        );
        cr.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(RUN_ANNOTATION.into(), "again".into());
        let err = RunId::of(&cr).expect_err("not a number");
        assert_eq!(err.label(), "invalid_run_annotation");
        assert!(err.to_string().contains("'again'"), "{err}");
    }

    #[test]
    fn run_ids_read_back_from_their_text() {
        let id = RunId {
            generation: 12,
            run: 3,
        };
        assert_eq!(RunId::parse(&id.to_string()), Some(id));
        for bad in [
            "", "g1", "g1-", "g-r0", "1-r0", "g1-r-1", "gx-r0", "g1-r0-x",
        ] {
            assert_eq!(RunId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn child_names_fit_in_a_label_and_stay_distinct() {
        assert_eq!(
            child_name("quick-snapshot", "g1-r0"),
            "quick-snapshot-g1-r0"
        );
        assert_eq!(child_name("a.b", "g1-r0"), "a-b-g1-r0");
        let long_a = format!("{}-a", "x".repeat(240));
        let long_b = format!("{}-b", "x".repeat(240));
        let a = child_name(&long_a, "task-g12-r3");
        let b = child_name(&long_b, "task-g12-r3");
        assert!(
            a.len() <= MAX_CHILD_NAME && b.len() <= MAX_CHILD_NAME,
            "{a} {b}"
        );
        assert_ne!(a, b);
        assert!(a.ends_with("-task-g12-r3"), "{a}");
        // Exactly at the limit: kept as is.
        let fits = "y".repeat(MAX_CHILD_NAME - "-g1-r0".len());
        assert_eq!(child_name(&fits, "g1-r0").len(), MAX_CHILD_NAME);
        assert!(!child_name(&format!("{fits}y"), "g1-r0").contains("yy-g1"));
    }

    /// Whether `name` is a DNS-1123 label, and so also a valid label value.
    fn is_label(name: &str) -> bool {
        let edge =
            |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        name.len() <= MAX_CHILD_NAME
            && edge(name.chars().next())
            && edge(name.chars().last())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    }

    /// Every child name of a resource of each kind named `name`.
    fn children_named(name: &str) -> Vec<(&'static str, String)> {
        use crate::crd::{KafkaBackup, KafkaOffsetReset, KafkaOffsetRollback, KafkaRestore};
        let run = RunId {
            generation: 12,
            run: 3,
        };
        let mut backup = kb(BACKUP_HOURLY_INCREMENTAL_GCS);
        backup.metadata.name = Some(name.to_string());
        let mut names = vec![
            ("kb job", backup.job_name(run).expect("name")),
            ("kb cron", cronjob::cron_job_name(&backup).expect("name")),
            ("kb cleanup task", backup::cleanup_config_map_name(name)),
            (
                "kb cleanup",
                backup::cleanup_job_name(name, "some-backup-id"),
            ),
        ];
        fn of<K: WorkerKind>(
            tag: &'static str,
            name: &str,
            run: RunId,
        ) -> Vec<(&'static str, String)> {
            vec![
                (tag, job::job_name::<K>(name, run)),
                (tag, task::task_config_map_name::<K>(name, run)),
                (tag, rbac::worker_rbac_name::<K>(name)),
            ]
        }
        names.extend(of::<KafkaBackup>("kb", name, run));
        names.extend(of::<KafkaRestore>("kr", name, run));
        names.extend(of::<KafkaOffsetReset>("kor", name, run));
        names.extend(of::<KafkaOffsetRollback>("korb", name, run));
        names
    }

    #[test]
    fn children_of_every_kind_are_distinct_labels_that_carry_the_kind() {
        let long = |end: &str| format!("{}{end}", "orders.eu-west.".repeat(17));
        for name in ["orders", "a.b", &long("a"), &long("b"), &"z".repeat(253)] {
            let names = children_named(name);
            for (what, child) in &names {
                assert!(is_label(child), "{what}: {child} ({} chars)", child.len());
            }
            let mut distinct: Vec<&String> = names.iter().map(|(_, n)| n).collect();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), names.len(), "{names:?}");
            // Each kind's children carry its tag, also when the name is cut.
            for (tag, child) in names.iter().filter(|(t, _)| !t.contains(' ')) {
                assert!(child.contains(&format!("-{tag}-")), "{tag}: {child}");
            }
        }
        // Two long names that share their first 63 characters stay apart.
        let a = children_named(&long("a"));
        let b = children_named(&long("b"));
        for ((_, x), (_, y)) in a.iter().zip(&b) {
            assert_ne!(x, y);
        }
        assert_eq!(
            job::job_name::<crate::crd::KafkaRestore>(
                "orders",
                RunId {
                    generation: 1,
                    run: 0
                }
            ),
            "orders-kr-g1-r0"
        );
    }

    #[test]
    fn label_values_are_shortened_with_a_hash() {
        assert_eq!(label_value("short"), "short");
        let long = "n".repeat(100);
        let v = label_value(&long);
        assert_eq!(v.len(), MAX_CHILD_NAME);
        assert_ne!(v, label_value(&"n".repeat(101)));
    }

    #[test]
    fn owner_reference_is_a_blocking_controller_reference() {
        let cr = korb(QUICK_SNAPSHOT);
        let owner = owner_reference(&cr).expect("owner");
        assert_eq!(owner.api_version, "tidemark.dev/v1alpha1");
        assert_eq!(owner.kind, "KafkaOffsetRollback");
        assert_eq!(owner.name, "quick-snapshot");
        assert_eq!(owner.uid, "0b5c1c2e-7a43-4a8e-9f0e-4a1d2c3b4a5f");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, Some(true));

        let mut no_uid = cr;
        no_uid.metadata.uid = None;
        let err = owner_reference(&no_uid).expect_err("no uid");
        assert_eq!(
            err.to_string(),
            "failed to build: the resource has no metadata.uid"
        );
    }
}

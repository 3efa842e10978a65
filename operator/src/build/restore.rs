//! KafkaRestore as a [`WorkerKind`]: its task document (a restore task: the backup and where it
//! is, the topic and partition selection, the PITR window in epoch milliseconds, the topic and
//! partition mappings, what to do with existing data, the consumer-group phase, throttles) and
//! the backup it reads ([`backup_source`]: named in the spec inline, or a KafkaBackup's that the
//! controller resolved before anything is built — a [`ResolvedRestore`], the value the builders
//! take for such a restore).
//!
//! The restore id is the resource's, `kr-<uid>` ([`restore_id`]): every retried pod of a Job and
//! every later run of the resource names the same restore, so an interrupted restore resumes
//! from its checkpoint and a finished one is reported as already complete, never written twice.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::NamespaceResourceScope;
use kube::Resource;
use tidemark_task::{
    ChainScope, RestoreTask, Task, TaskWork, TopicSelection as TaskTopics, TASK_API_VERSION,
};

use super::job::PARTIAL_FAILURE_EXIT_CODES;
use super::task::{kafka_target, source, storage_target};
use super::{count, namespace, positive, ConfigMapAccess, Error, RunId, WorkerKind};
use crate::crd::backup::MAX_PARALLELISM;
use crate::crd::common::{EncryptionSpec, JobOptions, KafkaClusterSpec, StorageSpec, StorageType};
use crate::crd::restore::{PitrSpec, RestoreChain};
use crate::crd::KafkaRestore;

/// `app.kubernetes.io/component` of a KafkaRestore's children.
pub const COMPONENT: &str = "restore";

/// The restore id of `cr`: `spec.restoreId`, else `kr-<uid>`, the same for every Job and every
/// run of the resource, another for a re-created one.
pub fn restore_id(cr: &KafkaRestore) -> Result<String, Error> {
    if let Some(id) = &cr.spec.restore_id {
        return Ok(id.clone());
    }
    let uid = cr
        .metadata
        .uid
        .as_deref()
        .ok_or(Error::MissingMetadata("metadata.uid"))?;
    Ok(format!("kr-{uid}"))
}

/// A backup resolved through the KafkaBackup `backupRef.name` names.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedBackup {
    /// The KafkaBackup.
    pub kafka_backup: String,
    /// The backup id.
    pub backup_id: String,
    /// The KafkaBackup's storage.
    pub storage: StorageSpec,
    /// The KafkaBackup's `spec.encryption`: the restore's keys when it names none itself.
    pub encryption: Option<EncryptionSpec>,
}

/// A KafkaRestore whose `backupRef.name` the controller has resolved through that KafkaBackup
/// (`controller::restore::resolve`): the value the builders turn into the Job, task and RBAC
/// of such a restore. It is the KafkaRestore in every respect but the backup it reads, which
/// is [`backup`](Self::backup) (the spec names only the KafkaBackup). A restore whose
/// `backupRef` names its backup and storage inline is built from the KafkaRestore itself.
#[derive(Clone, Debug)]
pub struct ResolvedRestore {
    /// The resource.
    pub restore: KafkaRestore,
    /// The backup it restores.
    pub backup: ResolvedBackup,
}

impl ResolvedRestore {
    /// Where its backup comes from (always [`BackupSource::Resolved`]).
    pub fn source(&self) -> BackupSource<'_> {
        BackupSource::Resolved(&self.backup)
    }

    /// Whether its keys are the KafkaBackup's (it has no `spec.encryption` of its own).
    fn inherits_encryption(&self) -> bool {
        self.restore.spec.encryption.is_none() && self.backup.encryption.is_some()
    }
}

/// Its API identity and metadata are the KafkaRestore's: children are owned by, events and
/// status written to, the resource itself.
impl Resource for ResolvedRestore {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        KafkaRestore::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        KafkaRestore::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        KafkaRestore::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        KafkaRestore::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.restore.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.restore.metadata
    }
}

/// Where the backup of a KafkaRestore comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BackupSource<'a> {
    /// `backupRef.backupId` in `backupRef.storage`.
    Inline {
        backup_id: &'a str,
        storage: &'a StorageSpec,
    },
    /// `backupRef.name`, resolved by the controller (a [`ResolvedRestore`]).
    Resolved(&'a ResolvedBackup),
    /// `backupRef.name` before it is resolved.
    Unresolved { kafka_backup: &'a str },
    /// Neither (the schema refuses it; validation stalls it).
    Missing,
}

/// The backup `cr` restores, as far as its spec says: never [`BackupSource::Resolved`] (that
/// is a [`ResolvedRestore`]'s).
pub fn backup_source(cr: &KafkaRestore) -> BackupSource<'_> {
    let backup_ref = &cr.spec.backup_ref;
    match (&backup_ref.name, &backup_ref.backup_id, &backup_ref.storage) {
        (Some(name), _, _) => BackupSource::Unresolved { kafka_backup: name },
        (None, Some(backup_id), Some(storage)) => BackupSource::Inline { backup_id, storage },
        _ => BackupSource::Missing,
    }
}

/// `text`, an RFC 3339 date-time, as epoch milliseconds (fractions below a millisecond are
/// dropped); `Err` says why it is not one.
pub fn epoch_ms(text: &str) -> Result<i64, String> {
    text.parse::<Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|e| {
            format!("'{text}' is not an RFC 3339 date-time such as 2024-01-15T10:00:00Z ({e})")
        })
}

/// The PITR window of `pitr` in epoch milliseconds: each end from its date-time or its
/// millisecond form (the date-time wins if, against the schema, both are given).
pub fn window(pitr: Option<&PitrSpec>) -> Result<(Option<i64>, Option<i64>), Error> {
    let Some(pitr) = pitr else {
        return Ok((None, None));
    };
    let bound = |time: &Option<String>, ms: Option<i64>, field: &'static str| match time {
        Some(text) => epoch_ms(text)
            .map(Some)
            .map_err(|reason| Error::InvalidField { field, reason }),
        None => Ok(ms),
    };
    Ok((
        bound(
            &pitr.start_time,
            pitr.start_timestamp_ms,
            "spec.pitr.startTime",
        )?,
        bound(&pitr.end_time, pitr.end_timestamp_ms, "spec.pitr.endTime")?,
    ))
}

/// `spec.partitionMapping` with its keys read as partition numbers.
pub fn partition_mapping(mapping: &BTreeMap<String, i32>) -> Result<BTreeMap<i32, i32>, Error> {
    mapping
        .iter()
        .map(|(from, to)| {
            // Exactly `0`, `1`, …: no sign, no leading zero, so no two keys name one partition.
            let from = from
                .parse::<i32>()
                .ok()
                .filter(|p| *p >= 0 && p.to_string() == *from)
                .ok_or_else(|| Error::InvalidField {
                    field: "spec.partitionMapping",
                    reason: format!("has the key '{from}', which is not a partition number"),
                })?;
            Ok((from, *to))
        })
        .collect()
}

impl WorkerKind for KafkaRestore {
    const COMPONENT: &'static str = COMPONENT;
    const TAG: &'static str = "kr";

    fn kafka_cluster(&self) -> Option<&KafkaClusterSpec> {
        Some(&self.spec.kafka_cluster)
    }

    /// The backup's storage: `backupRef.storage` (a `backupRef.name` is built as a
    /// [`ResolvedRestore`]).
    fn storage(&self) -> Result<Option<&StorageSpec>, Error> {
        source_storage(backup_source(self))
    }

    /// Backups never live in a ConfigMap: no API access.
    fn config_map_access(&self) -> ConfigMapAccess {
        ConfigMapAccess::None
    }

    /// `spec.encryption` (a `backupRef.name` is built as a [`ResolvedRestore`], which falls
    /// back to the KafkaBackup's).
    fn encryption(&self) -> Option<&EncryptionSpec> {
        self.spec.encryption.as_ref()
    }

    fn job_options(&self) -> Option<&JobOptions> {
        self.spec.job.as_ref()
    }

    fn shards(&self) -> u32 {
        let max = u32::try_from(MAX_PARALLELISM).unwrap_or(1);
        u32::try_from(self.spec.shards).unwrap_or(1).clamp(1, max)
    }

    fn resources(&self) -> Option<&ResourceRequirements> {
        self.spec.resources.as_ref()
    }

    /// A partial failure (some consumer groups not committed) is not retried by the Job
    /// controller: the status names it, and a bumped run annotation runs phase three again
    /// (the data is then reported as already complete).
    fn permanent_exit_codes(&self) -> &'static [i32] {
        &PARTIAL_FAILURE_EXIT_CODES
    }

    fn storage_credentials_field(&self, storage_type: StorageType) -> &'static str {
        credentials_field(backup_source(self), storage_type)
    }

    fn approved_run(&self, run: RunId) -> Option<super::approval::ApprovedRun> {
        super::approval::approved_run(
            self,
            self.spec.approval,
            self.status.as_ref().and_then(|s| s.plan.as_ref()),
            run,
        )
    }

    fn task(&self, _run: RunId) -> Result<Task, Error> {
        restore_task(self, backup_source(self), self.encryption(), self.shards())
    }
}

/// The same restore with its backup resolved: everything but the backup is the KafkaRestore's
/// (a test builds one both ways and compares them).
impl WorkerKind for ResolvedRestore {
    const COMPONENT: &'static str = COMPONENT;
    const TAG: &'static str = KafkaRestore::TAG;

    fn kafka_cluster(&self) -> Option<&KafkaClusterSpec> {
        Some(&self.restore.spec.kafka_cluster)
    }

    /// The KafkaBackup's storage.
    fn storage(&self) -> Result<Option<&StorageSpec>, Error> {
        source_storage(self.source())
    }

    fn config_map_access(&self) -> ConfigMapAccess {
        self.restore.config_map_access()
    }

    /// The restore's own `spec.encryption`, else the KafkaBackup's: a backup made with
    /// encryption is read with its keys unless the restore names others.
    fn encryption(&self) -> Option<&EncryptionSpec> {
        self.restore
            .spec
            .encryption
            .as_ref()
            .or(self.backup.encryption.as_ref())
    }

    fn encryption_secret_field(&self) -> &'static str {
        if self.inherits_encryption() {
            "spec.encryption.secretRef of the KafkaBackup in spec.backupRef.name"
        } else {
            "spec.encryption.secretRef"
        }
    }

    fn job_options(&self) -> Option<&JobOptions> {
        self.restore.job_options()
    }

    fn shards(&self) -> u32 {
        self.restore.shards()
    }

    fn resources(&self) -> Option<&ResourceRequirements> {
        self.restore.resources()
    }

    fn permanent_exit_codes(&self) -> &'static [i32] {
        self.restore.permanent_exit_codes()
    }

    fn storage_credentials_field(&self, storage_type: StorageType) -> &'static str {
        credentials_field(self.source(), storage_type)
    }

    fn approved_run(&self, run: RunId) -> Option<super::approval::ApprovedRun> {
        self.restore.approved_run(run)
    }

    fn task(&self, _run: RunId) -> Result<Task, Error> {
        restore_task(
            &self.restore,
            self.source(),
            self.encryption(),
            self.shards(),
        )
    }
}

/// The storage of the backup `source`; an unresolved KafkaBackup has none yet.
fn source_storage(source: BackupSource<'_>) -> Result<Option<&StorageSpec>, Error> {
    match source {
        BackupSource::Inline { storage, .. } => Ok(Some(storage)),
        BackupSource::Resolved(resolved) => Ok(Some(&resolved.storage)),
        BackupSource::Unresolved { .. } | BackupSource::Missing => {
            Err(Error::MissingField("spec.backupRef.storage"))
        }
    }
}

/// The field naming the credentials Secret of the backup `source`'s storage, for messages.
fn credentials_field(source: BackupSource<'_>, storage_type: StorageType) -> &'static str {
    // A KafkaBackup's storage, resolved or not (a started run is not resolved again).
    let named = matches!(
        source,
        BackupSource::Resolved(_) | BackupSource::Unresolved { .. }
    );
    match (storage_type.normalized(), named) {
        (StorageType::S3, false) => "spec.backupRef.storage.s3.credentialsSecret",
        (StorageType::Azure, false) => "spec.backupRef.storage.azure.credentialsSecret",
        (StorageType::Gcs, false) => "spec.backupRef.storage.gcs.credentialsSecret",
        (StorageType::S3, true) => {
            "spec.storage.s3.credentialsSecret of the KafkaBackup in spec.backupRef.name"
        }
        (StorageType::Azure, true) => {
            "spec.storage.azure.credentialsSecret of the KafkaBackup in spec.backupRef.name"
        }
        (StorageType::Gcs, true) => {
            "spec.storage.gcs.credentialsSecret of the KafkaBackup in spec.backupRef.name"
        }
        (_, false) => "spec.backupRef.storage",
        (_, true) => "the storage of the KafkaBackup in spec.backupRef.name",
    }
}

/// The task of restore `cr` reading the backup `source` with the keys of `encryption`, with
/// `shards` pods.
fn restore_task(
    cr: &KafkaRestore,
    backup: BackupSource<'_>,
    encryption: Option<&EncryptionSpec>,
    shards: u32,
) -> Result<Task, Error> {
    let spec = &cr.spec;
    let (backup_id, storage) = match backup {
        BackupSource::Inline { backup_id, storage } => (backup_id, storage),
        BackupSource::Resolved(r) => (r.backup_id.as_str(), &r.storage),
        BackupSource::Unresolved { .. } | BackupSource::Missing => {
            return Err(Error::MissingField("spec.backupRef.backupId"))
        }
    };
    let (start, end) = window(spec.pitr.as_ref())?;
    let topics = spec.topics.clone().unwrap_or_default();
    let groups = spec.consumer_groups.clone().unwrap_or_default();
    let rate = spec.rate_limit.clone().unwrap_or_default();
    Ok(Task {
        api_version: TASK_API_VERSION.to_string(),
        source: Some(source(cr)?),
        work: TaskWork::Restore(RestoreTask {
            kafka: kafka_target(&spec.kafka_cluster),
            storage: storage_target(storage, &namespace(cr)?, encryption)?,
            backup_id: backup_id.to_string(),
            chain: match spec.chain {
                RestoreChain::Full => ChainScope::Full,
                RestoreChain::Single => ChainScope::Single,
            },
            restore_id: Some(restore_id(cr)?),
            topics: TaskTopics {
                include: topics.include,
                exclude: topics.exclude,
            },
            time_window_start: start,
            time_window_end: end,
            source_partitions: spec.source_partitions.clone(),
            topic_mapping: spec.topic_mapping.clone(),
            partition_mapping: partition_mapping(&spec.partition_mapping)?,
            create_topics: spec.create_topics,
            existing_data: spec.existing_data,
            consumer_group_strategy: groups.strategy,
            include_original_offset_header: spec.include_original_offset_header,
            original_header_style: spec.original_header_style.unwrap_or_default(),
            dry_run: spec.dry_run,
            acks: spec.acks,
            max_concurrent_partitions: spec
                .max_concurrent_partitions
                .map(|v| count(v, "spec.maxConcurrentPartitions"))
                .transpose()?,
            produce_batch_size: spec
                .produce_batch_size
                .map(|v| count(v, "spec.produceBatchSize"))
                .transpose()?,
            rate_limit_records_per_sec: positive(
                rate.records_per_sec,
                "spec.rateLimit.recordsPerSec",
            )?,
            rate_limit_bytes_per_sec: positive(rate.bytes_per_sec, "spec.rateLimit.bytesPerSec")?,
            checkpoint_interval_secs: positive(
                spec.checkpoint_interval_secs,
                "spec.checkpointIntervalSecs",
            )?,
            // The checkpoint lives in the backup storage, next to the offset mapping, so
            // that any pod can resume it.
            checkpoint_state: None,
            reset_consumer_offsets: groups.reset_offsets,
            consumer_groups: groups.groups,
            offsets_snapshot_id: groups.offsets_snapshot_id,
            snapshot_before_reset: groups.snapshot_before_reset,
            offset_report: None,
            offset_report_key: spec.offset_report.clone(),
            // An Indexed Job's pod reads its shard from JOB_COMPLETION_INDEX.
            shard_index: None,
            shard_count: shards,
            shard_wait_secs: None,
            plan_out: None,
            approved_plan: None,
        }),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar};
    use tidemark_task::{KafkaTarget, StorageTarget};

    use super::super::fixtures::*;
    use super::super::job::job;
    use super::super::rbac::worker_role_binding;
    use super::super::task::task_config_map;
    use super::*;
    use crate::config::OperatorConfig;
    use crate::controller::restore::resolve;
    use tidemark_task::{
        Acks as TaskAcks, ExistingData as TaskExistingData, GroupStrategy as TaskStrategy,
        HeaderStyle as TaskHeaderStyle,
    };

    const RUN: RunId = RunId {
        generation: 1,
        run: 0,
    };

    /// The backup the KafkaBackup `orders-snapshot` resolves to in these tests.
    const ORDERS_BACKUP: &str = "orders-snapshot-g1-r0-3c9a7e10";

    /// `yaml` as the API server returns it, its `backupRef.name` resolved through the
    /// KafkaBackup `orders-snapshot` whose newest backup is [`ORDERS_BACKUP`].
    fn restore(yaml: &str) -> ResolvedRestore {
        resolve(&kr(yaml), Some(&orders_backup(ORDERS_BACKUP, "Completed")))
            .expect("resolved")
            .expect("a backupRef.name")
    }

    /// `yaml` built as the controller builds it: resolved ([`restore`]) when its `backupRef`
    /// names a KafkaBackup, else as it is.
    fn either<T>(
        yaml: &str,
        resolved: impl FnOnce(&ResolvedRestore) -> T,
        inline: impl FnOnce(&KafkaRestore) -> T,
    ) -> T {
        let cr = kr(yaml);
        if cr.spec.backup_ref.name.is_some() {
            resolved(&restore(yaml))
        } else {
            inline(&cr)
        }
    }

    /// The restore task in the ConfigMap of `cr`, parsed and validated by the worker's code.
    fn parse_back(cm: &ConfigMap) -> RestoreTask {
        match parse_task(cm).work {
            TaskWork::Restore(t) => t,
            other => panic!("a restore task: {other:?}"),
        }
    }

    fn work(yaml: &str) -> RestoreTask {
        let cm = either(
            yaml,
            |r| task_config_map(r, RUN),
            |k| task_config_map(k, RUN),
        );
        parse_back(&cm.expect("builds"))
    }

    fn build(yaml: &str) -> Job {
        let config = OperatorConfig::default();
        either(yaml, |r| job(r, RUN, &config), |k| job(k, RUN, &config)).expect("builds")
    }

    fn env(c: &Container) -> BTreeMap<&str, &EnvVar> {
        c.env
            .iter()
            .flatten()
            .map(|e| (e.name.as_str(), e))
            .collect()
    }

    fn plaintext(servers: &[&str]) -> KafkaTarget {
        KafkaTarget {
            bootstrap_servers: servers.iter().map(|s| s.to_string()).collect(),
            security_protocol: "PLAINTEXT".into(),
            sasl_mechanism: None,
            ssl_ca_location: None,
            ssl_certificate_location: None,
            ssl_key_location: None,
            properties: BTreeMap::new(),
            tls_insecure_skip_verify: false,
        }
    }

    fn location(url: &str) -> StorageTarget {
        StorageTarget::Location {
            url: url.into(),
            s3_region: None,
            s3_endpoint: None,
            s3_path_style: false,
            allow_http: false,
            encryption: None,
        }
    }

    /// Every spec field set (not a sample: no real restore sets them all at once).
    const EVERY_FIELD: &str = r#"
apiVersion: tidemark.dev/v1alpha1
kind: KafkaRestore
metadata:
  name: every-field
spec:
  kafkaCluster:
    bootstrapServers: ["kafka-0.kafka:9092"]
    properties:
      client.id: tidemark-restore
  backupRef:
    backupId: orders-g7-r0-0a1b2c3d
    storage:
      storageType: s3
      s3:
        bucket: kafka-backups
        region: us-east-1
        prefix: /prod/
        endpoint: "http://minio.minio:9000"
        pathStyle: true
        allowHttp: true
  chain: single
  topics:
    include: [orders, "payments-*", "~audit-(eu|us)"]
    exclude: ["*-test"]
  pitr:
    startTime: "2024-01-15T10:00:00.250+01:00"
    endTimestampMs: 1705316400000
  sourcePartitions: [0, 1, 2]
  topicMapping:
    orders: orders-recovered
    payments-eu: payments-eu-clone
  partitionMapping:
    "0": 0
    "1": 2
    "2": 4
  createTopics: true
  existingData: purge
  acks: "1"
  includeOriginalOffsetHeader: true
  originalHeaderStyle: kafka-backup
  consumerGroups:
    strategy: cluster-scan
    resetOffsets: true
    groups: [billing, audit]
    offsetsSnapshotId: before-incident
    snapshotBeforeReset: false
  dryRun: false
  maxConcurrentPartitions: 12
  produceBatchSize: 5000
  rateLimit:
    recordsPerSec: 50000
    bytesPerSec: 10485760
  checkpointIntervalSecs: 60
  job:
    backoffLimit: 5
  resources:
    limits:
      memory: 2Gi
"#;

    #[test]
    fn every_field_maps_into_the_restore_task() {
        let cm = task_config_map(&kr(EVERY_FIELD), RUN).expect("builds");
        assert_eq!(
            cm.metadata.name.as_deref(),
            Some("every-field-kr-task-g1-r0")
        );
        let labels = cm.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels["app.kubernetes.io/component"], "restore");
        assert_eq!(labels["tidemark.dev/owner-kind"], "KafkaRestore");
        let owner = &cm.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("KafkaRestore", "every-field")
        );
        let task = parse_task(&cm);
        assert_eq!(task.source.as_deref(), Some("kafka-backup/every-field"));
        assert_eq!(task.operation(), "restore");

        let mut kafka = plaintext(&["kafka-0.kafka:9092"]);
        kafka
            .properties
            .insert("client.id".into(), "tidemark-restore".into());
        let expected = RestoreTask {
            kafka,
            storage: StorageTarget::Location {
                url: "s3://kafka-backups/prod".into(),
                s3_region: Some("us-east-1".into()),
                s3_endpoint: Some("http://minio.minio:9000".into()),
                s3_path_style: true,
                allow_http: true,
                encryption: None,
            },
            backup_id: "orders-g7-r0-0a1b2c3d".into(),
            chain: ChainScope::Single,
            restore_id: Some(format!("kr-{RESTORE_UID}")),
            topics: TaskTopics {
                include: vec![
                    "orders".into(),
                    "payments-*".into(),
                    "~audit-(eu|us)".into(),
                ],
                exclude: vec!["*-test".into()],
            },
            // 10:00:00.250+01:00 is 09:00:00.250Z.
            time_window_start: Some(1_705_309_200_250),
            time_window_end: Some(1_705_316_400_000),
            source_partitions: vec![0, 1, 2],
            topic_mapping: BTreeMap::from([
                ("orders".into(), "orders-recovered".into()),
                ("payments-eu".into(), "payments-eu-clone".into()),
            ]),
            partition_mapping: BTreeMap::from([(0, 0), (1, 2), (2, 4)]),
            create_topics: true,
            existing_data: TaskExistingData::Purge,
            consumer_group_strategy: TaskStrategy::ClusterScan,
            include_original_offset_header: true,
            original_header_style: TaskHeaderStyle::KafkaBackup,
            dry_run: false,
            acks: TaskAcks::Leader,
            max_concurrent_partitions: Some(12),
            produce_batch_size: Some(5000),
            rate_limit_records_per_sec: Some(50_000),
            rate_limit_bytes_per_sec: Some(10_485_760),
            checkpoint_interval_secs: Some(60),
            checkpoint_state: None,
            reset_consumer_offsets: true,
            consumer_groups: vec!["billing".into(), "audit".into()],
            offsets_snapshot_id: Some("before-incident".into()),
            snapshot_before_reset: false,
            offset_report: None,
            offset_report_key: None,
            shard_index: None,
            shard_count: 1,
            shard_wait_secs: None,
            plan_out: None,
            approved_plan: None,
        };
        assert_eq!(parse_back(&cm), expected);
    }

    #[test]
    fn a_minimal_restore_gets_the_workers_defaults() {
        let yaml = "apiVersion: tidemark.dev/v1alpha1\nkind: KafkaRestore\nmetadata:\n  name: minimal\nspec:\n  kafkaCluster:\n    bootstrapServers: [kafka:9092]\n  backupRef:\n    name: orders-snapshot\n";
        let t = work(yaml);
        let worker: RestoreTask = serde_json::from_value(serde_json::json!({
            "kafka": {"bootstrapServers": ["kafka:9092"], "securityProtocol": "PLAINTEXT"},
            "storage": {"type": "location", "url": "/var/lib/tidemark/orders"},
            "backupId": ORDERS_BACKUP,
            "restoreId": format!("kr-{RESTORE_UID}"),
        }))
        .expect("the worker's defaults");
        assert_eq!(t, worker);
    }

    #[test]
    fn a_restore_of_an_incremental_kafka_backup_restores_its_whole_chain() {
        // An hourly incremental KafkaBackup whose newest backup is the third link of its chain.
        let newest = "orders-hourly-g1-r2-77aa0b1c";
        let mut value = serde_json::to_value(kb(BACKUP_HOURLY_INCREMENTAL_GCS)).expect("kb");
        value["metadata"]["name"] = "orders-snapshot".into();
        value["status"] = serde_json::json!({
            "phase": "Scheduled", "lastBackupId": newest,
            "lastRun": {"jobName": newest, "phase": "Completed", "reason": "BackupCompleted",
                        "message": "backup complete", "completionTime": "2024-12-01T03:00:05Z"}
        });
        let incremental: crate::crd::KafkaBackup =
            serde_json::from_value(value).expect("a KafkaBackup");
        let yaml = "apiVersion: tidemark.dev/v1alpha1\nkind: KafkaRestore\nmetadata:\n  name: chain\nspec:\n  kafkaCluster:\n    bootstrapServers: [kafka:9092]\n  backupRef:\n    name: orders-snapshot\n";
        let render = |yaml: &str| {
            let cr = resolve(&kr(yaml), Some(&incremental))
                .expect("resolved")
                .expect("named");
            parse_back(&task_config_map(&cr, RUN).expect("builds"))
        };
        let t = render(yaml);
        assert_eq!(t.backup_id, newest, "the newest link of the chain");
        assert_eq!(
            t.chain,
            ChainScope::Full,
            "restoring the newest link restores every link before it"
        );
        // The task the worker reads asks for the chain (the default is not left implicit
        // in the operator's own types).
        let single = render(&format!("{yaml}  chain: single\n"));
        assert_eq!(single.chain, ChainScope::Single);
        assert_eq!(single.backup_id, newest);
    }

    #[test]
    fn a_full_restore_reads_the_kafka_backups_storage_and_newest_backup() {
        let t = work(RESTORE_FULL);
        assert_eq!(t.backup_id, ORDERS_BACKUP);
        assert_eq!(t.storage, location("/var/lib/tidemark/orders"));
        assert_eq!(
            t.kafka,
            plaintext(&["kafka-0.kafka:9092", "kafka-1.kafka:9092"])
        );
        assert!(t.create_topics);
        assert_eq!(t.existing_data, TaskExistingData::Refuse);
        assert!(t.topics.include.is_empty(), "every backed-up topic");
        assert_eq!(t.max_concurrent_partitions, Some(8));
        assert_eq!((t.time_window_start, t.time_window_end), (None, None));
        assert_eq!(t.consumer_group_strategy, TaskStrategy::Skip);
        assert!(!t.reset_consumer_offsets);

        // The Job mounts the KafkaBackup's PVC (read-write: the checkpoint and the offset
        // mapping are written next to the backup) and needs no API token.
        let cr = restore(RESTORE_FULL);
        let job = build(RESTORE_FULL);
        assert_eq!(
            job.metadata.name.as_deref(),
            Some("orders-full-restore-kr-g1-r0")
        );
        let labels = job.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels["app.kubernetes.io/component"], "restore");
        let c = container(&job);
        assert_eq!(
            c.args.clone().expect("args"),
            ["run", "--task", "/etc/tidemark/task/task.yaml"]
        );
        let mounts: Vec<(&str, Option<bool>)> = c
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| (m.mount_path.as_str(), m.read_only))
            .collect();
        assert_eq!(
            mounts,
            [
                ("/etc/tidemark/task", Some(true)),
                ("/tmp", None),
                ("/var/lib/tidemark", None)
            ]
        );
        let claim = pod(&job)
            .volumes
            .iter()
            .flatten()
            .find_map(|v| v.persistent_volume_claim.as_ref())
            .expect("a PVC volume");
        assert_eq!(claim.claim_name, "kafka-backups");
        assert_eq!(pod(&job).automount_service_account_token, Some(false));
        assert_eq!(
            worker_role_binding(&cr, &OperatorConfig::default()).expect("builds"),
            None
        );
        let spec = job.spec.as_ref().expect("spec");
        assert_eq!(spec.backoff_limit, Some(4));
        assert_eq!(spec.completion_mode, None, "one pod");
        // A partial failure (exit 10) fails the Job at once, like the other permanent codes.
        let policy = spec.pod_failure_policy.as_ref().expect("policy");
        assert_eq!(policy.rules[1].action, "FailJob");
        let codes = &policy.rules[1]
            .on_exit_codes
            .as_ref()
            .expect("codes")
            .values;
        assert!(codes.contains(&10) && codes.contains(&2), "{codes:?}");
        let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
        assert_eq!(limits.map(|l| l["memory"].0.as_str()), Some("1Gi"));
    }

    #[test]
    fn a_pitr_restore_into_a_new_topic_converts_the_window_and_wires_its_secrets() {
        let t = work(RESTORE_PITR_NEW_TOPIC);
        assert_eq!(t.backup_id, "payments-nightly-2b1e4c7d-29000000");
        assert_eq!(t.time_window_start, Some(1_736_899_200_000));
        assert_eq!(t.time_window_end, Some(1_736_953_200_000));
        assert_eq!(t.topics.include, ["transactions"]);
        assert_eq!(t.topic_mapping["transactions"], "transactions-recovered");
        assert!(t.create_topics);
        assert_eq!(t.rate_limit_records_per_sec, Some(50_000));
        assert_eq!(t.checkpoint_interval_secs, Some(30));
        assert_eq!(t.kafka.security_protocol, "SASL_SSL");
        assert_eq!(t.kafka.sasl_mechanism.as_deref(), Some("SCRAM-SHA-512"));
        assert_eq!(
            t.kafka.ssl_ca_location.as_deref(),
            Some("/etc/tidemark/tls/ca.crt")
        );
        assert!(
            matches!(t.storage, StorageTarget::Location { ref url, ref s3_region, .. } if url == "s3://kafka-backups/payments" && s3_region.as_deref() == Some("eu-west-1"))
        );

        let job = build(RESTORE_PITR_NEW_TOPIC);
        let c = container(&job);
        let vars = env(c);
        let password = vars["KAFKA_PASSWORD"]
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("secretKeyRef");
        assert_eq!(
            (password.name.as_str(), password.key.as_str()),
            ("kafka-credentials", "password")
        );
        assert_eq!(
            c.env_from.as_ref().expect("envFrom")[0]
                .secret_ref
                .as_ref()
                .map(|s| s.name.as_str()),
            Some("s3-credentials")
        );
        assert!(pod(&job)
            .volumes
            .iter()
            .flatten()
            .any(|v| v.name == "kafka-tls"));
    }

    #[test]
    fn a_three_phase_restore_translates_the_groups_after_a_safety_snapshot() {
        let t = work(RESTORE_THREE_PHASE);
        assert_eq!(t.consumer_group_strategy, TaskStrategy::HeaderBased);
        assert!(t.reset_consumer_offsets);
        assert_eq!(t.consumer_groups, ["order-processor", "order-auditor"]);
        assert!(t.snapshot_before_reset);
        assert!(t.include_original_offset_header);
        assert_eq!(t.original_header_style, TaskHeaderStyle::Original);
        assert_eq!(t.topics.exclude, ["*-retry"]);
        assert!(kr(RESTORE_THREE_PHASE).spec.takes_snapshot());
    }

    #[test]
    fn a_dry_run_validates_one_partition_of_a_chosen_backup() {
        let t = work(RESTORE_DRY_RUN);
        assert!(t.dry_run);
        assert_eq!(
            t.backup_id, "orders-snapshot-g1-r0-6f1c2a9e",
            "backupRef.backupId wins over the KafkaBackup's newest backup"
        );
        assert_eq!(t.storage, location("/var/lib/tidemark/orders"));
        assert_eq!(t.source_partitions, [2]);
        assert_eq!(t.partition_mapping, BTreeMap::from([(2, 0)]));
        assert_eq!(t.time_window_end, Some(1_736_953_200_000));
        assert_eq!(t.consumer_group_strategy, TaskStrategy::Manual);
        let task = parse_task(&task_config_map(&restore(RESTORE_DRY_RUN), RUN).expect("cm"));
        assert_eq!(task.operation(), "validate-restore");
        assert!(!kr(RESTORE_DRY_RUN).spec.takes_snapshot());
    }

    #[test]
    fn the_restore_id_is_the_resources_for_every_run() {
        let resolved = restore(RESTORE_FULL);
        let cr = resolved.restore.clone();
        let id = restore_id(&cr).expect("id");
        assert_eq!(id, format!("kr-{RESTORE_UID}"));
        tidemark_task::ids::validate_id(&id).expect("a valid restore id");
        let later = RunId {
            generation: 4,
            run: 2,
        };
        for run in [RUN, later] {
            let task = match resolved.task(run).expect("task").work {
                TaskWork::Restore(t) => t,
                other => panic!("{other:?}"),
            };
            assert_eq!(task.restore_id.as_deref(), Some(id.as_str()));
            assert_eq!(task.effective_restore_id(), id);
        }
        let mut recreated = cr.clone();
        recreated.metadata.uid = Some("a-new-uid".into());
        assert_ne!(restore_id(&recreated).expect("id"), id);
        let mut no_uid = cr;
        no_uid.metadata.uid = None;
        assert_eq!(
            restore_id(&no_uid).expect_err("no uid").label(),
            "missing_metadata"
        );
    }

    #[test]
    fn a_named_restore_id_and_an_offset_report_reach_the_task_and_the_status() {
        let yaml = RESTORE_THREE_PHASE.replace(
            "  createTopics: true\n",
            "  createTopics: true\n  restoreId: orders-dr-2024-12\n  offsetReport: reports/orders-dr.json\n  checkpointIntervalSecs: 60\n",
        );
        assert_ne!(
            yaml, RESTORE_THREE_PHASE,
            "the sample has a createTopics line"
        );
        let cr = kr(&yaml);
        assert_eq!(restore_id(&cr).expect("id"), "orders-dr-2024-12");
        let t = work(&yaml);
        assert_eq!(t.restore_id.as_deref(), Some("orders-dr-2024-12"));
        assert_eq!(t.effective_restore_id(), "orders-dr-2024-12");
        assert_eq!(
            t.offset_report_key.as_deref(),
            Some("reports/orders-dr.json")
        );
        assert_eq!(t.checkpoint_interval_secs, Some(60));
        // The uid no longer names it: a re-created resource with the same id resumes it.
        let mut recreated = cr.clone();
        recreated.metadata.uid = Some("a-new-uid".into());
        assert_eq!(restore_id(&recreated).expect("id"), "orders-dr-2024-12");
        // Without them, the defaults stay.
        let t = work(RESTORE_THREE_PHASE);
        assert_eq!(t.offset_report_key, None);
        assert_eq!(t.restore_id, Some(format!("kr-{RESTORE_UID}")));
    }

    #[test]
    fn shards_make_an_indexed_job_whose_pods_share_the_restore_task() {
        let yaml = RESTORE_FULL.replace(
            "  createTopics: true\n",
            "  createTopics: true\n  shards: 3\n",
        );
        assert_ne!(yaml, RESTORE_FULL, "the sample has a createTopics line");
        let job = build(&yaml);
        let spec = job.spec.as_ref().expect("spec");
        assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
        assert_eq!((spec.completions, spec.parallelism), (Some(3), Some(3)));
        let t = work(&yaml);
        assert_eq!(t.shard_count, 3);
        assert_eq!(t.shard_index, None, "each pod reads JOB_COMPLETION_INDEX");
        assert_eq!(t.restore_id, Some(format!("kr-{RESTORE_UID}")));
        let mut second = t.clone();
        second.shard_index = Some(1);
        assert_eq!(
            second.for_shard().expect("shard 1").restore_id,
            Some(format!("kr-{RESTORE_UID}-s1-of-3")),
            "each shard restores under a restore id of its own"
        );
        // One shard (the default): a plain Job and the task as before.
        let job = build(RESTORE_FULL);
        assert_eq!(job.spec.as_ref().expect("spec").completion_mode, None);
        assert_eq!(work(RESTORE_FULL).shard_count, 1);
    }

    #[test]
    fn shards_translate_groups_but_refuse_an_offset_report() {
        let yaml = RESTORE_THREE_PHASE.replace(
            "  createTopics: true\n",
            "  createTopics: true\n  shards: 2\n",
        );
        let task = match restore(&yaml).task(RUN).expect("task").work {
            TaskWork::Restore(t) => t,
            other => panic!("{other:?}"),
        };
        assert!(task.reset_consumer_offsets);
        assert_eq!(task.shard_count, 2);
        task.validate().expect("shard 0 translates the groups once");
        let yaml = RESTORE_FULL.replace(
            "  createTopics: true\n",
            "  createTopics: true\n  shards: 2\n  offsetReport: reports/r.json\n",
        );
        let task = match restore(&yaml).task(RUN).expect("task").work {
            TaskWork::Restore(t) => t,
            other => panic!("{other:?}"),
        };
        let e = task.validate().expect_err("a report with shards");
        assert!(e.to_string().contains("offsetReportKey"), "{e}");
    }

    #[test]
    fn a_resolved_restore_builds_what_the_same_restore_named_inline_builds() {
        // Through a KafkaBackup whose storage is S3 with a credentials Secret, sharded (the
        // KafkaRestore's own settings must all reach the Job through the resolved view).
        let mut kb = kb(BACKUP_DAILY_S3);
        kb.metadata.name = Some("orders-snapshot".into());
        kb.status = orders_backup(ORDERS_BACKUP, "Completed").status;
        let named = kr(&RESTORE_THREE_PHASE.replace(
            "  createTopics: true\n",
            "  createTopics: true\n  shards: 3\n  job:\n    backoffLimit: 2\n",
        ));
        let resolved = resolve(&named, Some(&kb))
            .expect("resolved")
            .expect("named");
        let mut inline = named.clone();
        inline.spec.backup_ref = crate::crd::restore::BackupRef {
            name: None,
            backup_id: Some(ORDERS_BACKUP.into()),
            storage: Some(kb.spec.storage.clone()),
        };
        let config = OperatorConfig::default();
        let json = |v: &Job| serde_json::to_value(v).expect("json");
        assert_eq!(
            json(&job(&resolved, RUN, &config).expect("job")),
            json(&job(&inline, RUN, &config).expect("job"))
        );
        assert_eq!(
            task_config_map(&resolved, RUN).expect("task"),
            task_config_map(&inline, RUN).expect("task")
        );
        assert_eq!(
            worker_role_binding(&resolved, &config).expect("rbac"),
            worker_role_binding(&inline, &config).expect("rbac")
        );
        assert_eq!(resolved.shards(), 3);
        // Only where the credentials are named differs.
        assert_eq!(
            resolved.storage_credentials_field(StorageType::S3),
            "spec.storage.s3.credentialsSecret of the KafkaBackup in spec.backupRef.name"
        );
        assert_eq!(
            inline.storage_credentials_field(StorageType::S3),
            "spec.backupRef.storage.s3.credentialsSecret"
        );
        // A started run is observed without resolving again: still the KafkaBackup's field.
        assert_eq!(
            named.storage_credentials_field(StorageType::S3),
            "spec.storage.s3.credentialsSecret of the KafkaBackup in spec.backupRef.name"
        );
    }

    #[test]
    fn an_unresolved_kafka_backup_builds_nothing() {
        let cr = kr(RESTORE_FULL);
        assert_eq!(
            backup_source(&cr),
            BackupSource::Unresolved {
                kafka_backup: "orders-snapshot"
            }
        );
        assert_eq!(
            cr.storage().expect_err("unresolved").label(),
            "missing_field"
        );
        assert_eq!(
            cr.task(RUN).expect_err("unresolved").label(),
            "missing_field"
        );
        assert!(job(&cr, RUN, &OperatorConfig::default()).is_err());
        // An inline backupRef needs no resolution.
        let inline = kr(RESTORE_PITR_NEW_TOPIC);
        assert!(matches!(
            backup_source(&inline),
            BackupSource::Inline {
                backup_id: "payments-nightly-2b1e4c7d-29000000",
                ..
            }
        ));
        assert!(resolve(&inline, None)
            .expect("nothing to resolve")
            .is_none());
    }

    #[test]
    fn no_secret_value_appears_in_any_rendered_object() {
        let yaml = with_secret_properties(
            RESTORE_PITR_NEW_TOPIC,
            "kafka-1.kafka:9093",
            "tidemark-restore",
        );
        let cr = kr(&yaml);
        let rendered =
            [
                serde_yaml_ng::to_string(&job(&cr, RUN, &OperatorConfig::default()).expect("job"))
                    .expect("yaml"),
            ];
        let task =
            serde_yaml_ng::to_string(&task_config_map(&cr, RUN).expect("task")).expect("yaml");
        assert_no_secret(&rendered, &task, "tidemark-restore");
        // The task names the credentials only as files and environment, never their values.
        assert!(!task.contains("AWS_SECRET_ACCESS_KEY"), "{task}");
    }

    #[test]
    fn times_and_partition_keys_are_read_exactly() {
        assert_eq!(epoch_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            epoch_ms("2024-01-15T10:00:00.999999Z"),
            Ok(1_705_312_800_999)
        );
        assert_eq!(epoch_ms("2024-01-15t10:00:00z"), Ok(1_705_312_800_000));
        assert_eq!(epoch_ms("1969-12-31T23:59:59Z"), Ok(-1000));
        for bad in [
            "2024-01-15T10:00:00",
            "2024-02-30T00:00:00Z",
            "yesterday",
            "",
        ] {
            let why = epoch_ms(bad).expect_err(bad);
            assert!(
                why.starts_with(&format!("'{bad}' is not an RFC 3339 date-time")),
                "{why}"
            );
        }
        assert_eq!(
            partition_mapping(&BTreeMap::from([("0".into(), 3), ("17".into(), 1)])).expect("ok"),
            BTreeMap::from([(0, 3), (17, 1)])
        );
        for bad in ["-1", "+1", "01", "one", "", "2147483648"] {
            let err = partition_mapping(&BTreeMap::from([(bad.to_string(), 0)])).expect_err(bad);
            assert_eq!(
                err.to_string(),
                format!("failed to build: spec.partitionMapping has the key '{bad}', which is not a partition number")
            );
        }
        let mut cr = kr(RESTORE_PITR_NEW_TOPIC);
        if let Some(p) = cr.spec.pitr.as_mut() {
            p.start_time = Some("2025-01-15T25:00:00Z".into());
        }
        let err = cr.task(RUN).expect_err("no such hour");
        assert!(
            err.to_string()
                .starts_with("failed to build: spec.pitr.startTime '2025-01-15T25:00:00Z' is not"),
            "{err}"
        );
    }

    #[test]
    fn negative_counts_are_refused_rather_than_wrapped() {
        let mut cr = kr(RESTORE_PITR_NEW_TOPIC);
        cr.spec.checkpoint_interval_secs = Some(-1);
        let err = cr.task(RUN).expect_err("negative");
        assert_eq!(err.label(), "invalid_field");
        assert!(
            err.to_string()
                .contains("spec.checkpointIntervalSecs is -1"),
            "{err}"
        );
        let mut cr = kr(RESTORE_PITR_NEW_TOPIC);
        cr.spec.produce_batch_size = Some(-3);
        assert!(cr
            .task(RUN)
            .expect_err("negative")
            .to_string()
            .contains("spec.produceBatchSize is -3"));
    }
}

//! KafkaBackup as a [`WorkerKind`]: its task document (a backup task: topics, mode, chain,
//! compression, throttles, segment bounds, shard count), its shards (an Indexed Job of
//! `parallelism` pods), its schedule (a CronJob), and the retention cleanup that follows a
//! successful backup (a BackupCleanup task in its own ConfigMap, run by a Job per backup).
//!
//! A backup's id is the name of its Job: every pod gets it as `TIDEMARK_BACKUP_ID` from its
//! `batch.kubernetes.io/job-name` label, so all shards and every retried pod of one Job write
//! the same backup, and each Job a CronJob creates is a backup of its own. The task names no
//! id. The names of a KafkaBackup's Jobs carry [`instance_hash`] (the CronJob's name does, for
//! the Jobs it creates), so two resources of the same name in different namespaces, or a
//! re-created one, never write to the same id in a shared bucket.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, EnvVar, EnvVarSource, ObjectFieldSelector, ResourceRequirements,
};
use tidemark_task::MAX_ID_LEN;
use tidemark_task::{
    BackupCleanupTask, BackupTask, Task, TaskWork, TopicSelection as TaskTopics, TASK_API_VERSION,
};

use super::job::{hold_results, job_with, JobParts, JOB_NAME_LABEL};
use super::task::{kafka_target, source, storage_target, task_config_map_with};
use super::{count, fnv1a, instance_hash, kind_child_name, label_value, name, namespace, positive};
use super::{owner_labels, ConfigMapAccess, Error, RunId, Schedule, WorkerKind};
use crate::config::OperatorConfig;
use crate::crd::backup::{BackupMode, Compression, MAX_PARALLELISM};
use crate::crd::common::{EncryptionSpec, JobOptions, KafkaClusterSpec, StorageSpec};
use crate::crd::KafkaBackup;

/// `app.kubernetes.io/component` of a KafkaBackup's backup Jobs, CronJob and task ConfigMaps.
pub const COMPONENT: &str = "backup";
/// `app.kubernetes.io/component` of its retention cleanup Jobs and their ConfigMap.
pub const CLEANUP_COMPONENT: &str = "backup-cleanup";
/// The worker's environment variable with the backup id (`TIDEMARK_BACKUP_ID`).
pub const ENV_BACKUP_ID: &str = tidemark_task::env::ENV_BACKUP_ID;
/// Label of a cleanup Job naming the backup after which it runs.
pub const BACKUP_ID_LABEL: &str = "tidemark.dev/backup-id";

/// The chain of `cr`'s backups, `spec.chain` or `<namespace>-<name>`: incremental backups continue the newest
/// complete backup of the chain, and retention prunes only the chain's backups. Cut, with a
/// hash of the whole, when longer than a valid id.
pub fn chain(cr: &KafkaBackup) -> Result<String, Error> {
    if let Some(named) = &cr.spec.chain {
        return Ok(named.clone());
    }
    let full = format!("{}-{}", namespace(cr)?, name(cr)?);
    if full.len() <= MAX_ID_LEN {
        return Ok(full);
    }
    let hash = fnv1a(full.as_bytes());
    let cut = full[..MAX_ID_LEN - 9].trim_end_matches(['-', '.']);
    Ok(format!("{cut}-{hash:08x}"))
}

/// The backup id env of every backup pod: the pod's `batch.kubernetes.io/job-name` label.
pub fn backup_id_env() -> EnvVar {
    EnvVar {
        name: ENV_BACKUP_ID.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: format!("metadata.labels['{JOB_NAME_LABEL}']"),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

impl WorkerKind for KafkaBackup {
    const COMPONENT: &'static str = COMPONENT;
    const TAG: &'static str = "kb";

    fn kafka_cluster(&self) -> Option<&KafkaClusterSpec> {
        Some(&self.spec.kafka_cluster)
    }

    fn storage(&self) -> Result<Option<&StorageSpec>, Error> {
        Ok(Some(&self.spec.storage))
    }

    fn encryption(&self) -> Option<&EncryptionSpec> {
        self.spec.encryption.as_ref()
    }

    /// Backups never use a ConfigMap (the schema and validation refuse one): no API access.
    fn config_map_access(&self) -> ConfigMapAccess {
        ConfigMapAccess::None
    }

    fn job_options(&self) -> Option<&JobOptions> {
        self.spec.job.as_ref()
    }

    fn resources(&self) -> Option<&ResourceRequirements> {
        self.spec.resources.as_ref()
    }

    /// `<name>-kb-<run>-<hash>`, e.g. `orders-kb-g1-r0-6f1c2a9e`: the backup's id.
    fn job_name(&self, run: RunId) -> Result<String, Error> {
        let hash = instance_hash(self)?;
        Ok(kind_child_name::<Self>(
            &name(self)?,
            &format!("{run}-{hash:08x}"),
        ))
    }

    fn shards(&self) -> u32 {
        let max = u32::try_from(MAX_PARALLELISM).unwrap_or(1);
        u32::try_from(self.spec.parallelism)
            .unwrap_or(1)
            .clamp(1, max)
    }

    fn worker_env(&self) -> Vec<EnvVar> {
        vec![backup_id_env()]
    }

    /// A backup stopped by SIGTERM (an eviction, a drain, a node shutdown) stores what it read
    /// and its checkpoint and exits 75: its replacement pod resumes there.
    fn resumable_exit_codes(&self) -> &'static [i32] {
        &[tidemark_task::exit::INTERRUPTED]
    }

    fn runs_until_stopped(&self) -> bool {
        self.spec.mode == BackupMode::Continuous
    }

    fn schedule(&self) -> Option<Schedule<'_>> {
        self.spec.schedule.as_deref().map(|cron| Schedule {
            cron,
            suspend: self.spec.suspend,
        })
    }

    fn task(&self, _run: RunId) -> Result<Task, Error> {
        let spec = &self.spec;
        let rate = spec.rate_limit.clone().unwrap_or_default();
        let segment = spec.segment.clone().unwrap_or_default();
        Ok(Task {
            api_version: TASK_API_VERSION.to_string(),
            source: Some(source(self)?),
            work: TaskWork::Backup(BackupTask {
                kafka: kafka_target(&spec.kafka_cluster),
                storage: storage_target(
                    &spec.storage,
                    &namespace(self)?,
                    spec.encryption.as_ref(),
                )?,
                // spec.backupId, else each pod takes its Job's name from TIDEMARK_BACKUP_ID.
                backup_id: spec.backup_id.clone(),
                topics: TaskTopics {
                    include: spec.topics.include.clone(),
                    exclude: spec.topics.exclude.clone(),
                },
                mode: spec.mode,
                chain: Some(chain(self)?),
                compression: spec.compression,
                compression_level: spec
                    .compression_level
                    .filter(|_| spec.compression == Compression::Zstd),
                max_concurrent_partitions: spec
                    .max_concurrent_partitions
                    .map(|v| count(v, "spec.maxConcurrentPartitions"))
                    .transpose()?,
                rate_limit_records_per_sec: positive(
                    rate.records_per_sec,
                    "spec.rateLimit.recordsPerSec",
                )?,
                rate_limit_bytes_per_sec: positive(
                    rate.bytes_per_sec,
                    "spec.rateLimit.bytesPerSec",
                )?,
                segment_max_bytes: positive(segment.max_bytes, "spec.segment.maxBytes")?,
                segment_max_interval_ms: positive(
                    segment.max_interval_ms,
                    "spec.segment.maxIntervalMs",
                )?,
                capture_offsets: spec.capture_offsets,
                // An Indexed Job's pod reads its shard from JOB_COMPLETION_INDEX.
                shard_index: None,
                shard_count: self.shards(),
            }),
        })
    }
}

/// The retention task of `cr`: prune its chain by `spec.retention`; `None` without retention.
pub fn cleanup_task(cr: &KafkaBackup) -> Result<Option<Task>, Error> {
    let Some(retention) = &cr.spec.retention else {
        return Ok(None);
    };
    Ok(Some(Task {
        api_version: TASK_API_VERSION.to_string(),
        source: Some(source(cr)?),
        work: TaskWork::BackupCleanup(BackupCleanupTask {
            storage: storage_target(
                &cr.spec.storage,
                &namespace(cr)?,
                cr.spec.encryption.as_ref(),
            )?,
            chain: chain(cr)?,
            keep_last: retention
                .keep_last
                .map(|n| count(n, "spec.retention.keepLast"))
                .transpose()?,
            max_age: retention.max_age.clone(),
            incomplete_grace_period: retention.incomplete_grace_period.clone(),
        }),
    }))
}

/// Name of the ConfigMap with `cr_name`'s retention task: `<cr>-kb-cleanup-task`.
pub fn cleanup_config_map_name(cr_name: &str) -> String {
    kind_child_name::<KafkaBackup>(cr_name, "cleanup-task")
}

/// The ConfigMap with `cr`'s retention task (the current spec's: every cleanup Job applies the
/// rules in force when it runs); `None` without retention.
pub fn cleanup_config_map(cr: &KafkaBackup) -> Result<Option<ConfigMap>, Error> {
    let Some(task) = cleanup_task(cr)? else {
        return Ok(None);
    };
    task_config_map_with(
        cr,
        &cleanup_config_map_name(&name(cr)?),
        owner_labels(cr, CLEANUP_COMPONENT),
        &task,
    )
    .map(Some)
}

/// Name of the cleanup Job that follows backup `backup_id` of `cr_name`:
/// `<cr>-kb-cleanup-<hash of the id>`, the same every time (it is created once).
pub fn cleanup_job_name(cr_name: &str, backup_id: &str) -> String {
    kind_child_name::<KafkaBackup>(
        cr_name,
        &format!("cleanup-{:08x}", fnv1a(backup_id.as_bytes())),
    )
}

/// The cleanup Job that follows the successful backup `backup_id`: the worker runs the
/// retention task with the storage wiring of the backups (no Kafka, no shards), and the Job is
/// removed `ttlSecondsAfterFinished` after it ends; it and its pod hold the result
/// ([`hold_results`]) until the operator has recorded it. `None` without retention.
pub fn cleanup_job(
    cr: &KafkaBackup,
    backup_id: &str,
    config: &OperatorConfig,
) -> Result<Option<Job>, Error> {
    if cr.spec.retention.is_none() {
        return Ok(None);
    }
    let cr_name = name(cr)?;
    let mut labels: BTreeMap<String, String> = owner_labels(cr, CLEANUP_COMPONENT);
    labels.insert(BACKUP_ID_LABEL.to_string(), label_value(backup_id));
    let parts = JobParts {
        labels,
        task_config_map: cleanup_config_map_name(&cr_name),
        kafka: false,
        shards: 1,
        env: Vec::new(),
    };
    let mut job = job_with(cr, &cleanup_job_name(&cr_name, backup_id), &parts, config)?;
    hold_results(&mut job);
    Ok(Some(job))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::batch::v1::CronJob;
    use k8s_openapi::api::core::v1::Container;
    use tidemark_task::{KafkaTarget, StorageTarget};

    use super::super::cronjob::{cron_job, cron_job_name, MAX_CRON_JOB_NAME};
    use super::super::fixtures::*;
    use super::super::job::{job, RESULT_FINALIZER};
    use super::super::rbac::worker_role_binding;
    use super::super::task::task_config_map;
    use super::*;
    use tidemark_task::{BackupMode as TaskMode, Compression as TaskCompression};

    const RUN: RunId = RunId {
        generation: 1,
        run: 0,
    };

    /// The backup task in the ConfigMap of `yaml`, parsed and validated by the worker's code.
    fn work(yaml: &str) -> BackupTask {
        match parse_task(&task_config_map(&kb(yaml), RUN).expect("builds")).work {
            TaskWork::Backup(t) => t,
            other => panic!("a backup task: {other:?}"),
        }
    }

    fn build(yaml: &str) -> Job {
        job(&kb(yaml), RUN, &OperatorConfig::default()).expect("builds")
    }

    fn cron(yaml: &str) -> CronJob {
        cron_job(&kb(yaml), RUN, &OperatorConfig::default())
            .expect("builds")
            .expect("a schedule")
    }

    fn env(c: &Container) -> BTreeMap<&str, &EnvVar> {
        c.env
            .iter()
            .flatten()
            .map(|e| (e.name.as_str(), e))
            .collect()
    }

    /// The backup id env: the pod's Job name label, through the downward API.
    fn assert_backup_id_from_job_name(c: &Container) {
        let id = env(c)[ENV_BACKUP_ID];
        assert_eq!(id.value, None);
        let field = id
            .value_from
            .as_ref()
            .and_then(|v| v.field_ref.as_ref())
            .expect("a fieldRef");
        assert_eq!(
            field.field_path,
            "metadata.labels['batch.kubernetes.io/job-name']"
        );
    }

    #[test]
    fn a_one_shot_backup_to_a_pvc_round_trips_through_the_config_map() {
        let cr = kb(BACKUP_ONE_SHOT_PVC);
        let cm = task_config_map(&cr, RUN).expect("builds");
        assert_eq!(
            cm.metadata.name.as_deref(),
            Some("orders-snapshot-kb-task-g1-r0")
        );
        let labels = cm.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels["app.kubernetes.io/component"], "backup");
        assert_eq!(labels["tidemark.dev/owner-kind"], "KafkaBackup");
        let expected = BackupTask {
            kafka: KafkaTarget {
                bootstrap_servers: vec!["kafka-0.kafka:9092".into(), "kafka-1.kafka:9092".into()],
                security_protocol: "PLAINTEXT".into(),
                sasl_mechanism: None,
                ssl_ca_location: None,
                ssl_certificate_location: None,
                ssl_key_location: None,
                properties: BTreeMap::new(),
                tls_insecure_skip_verify: false,
            },
            storage: StorageTarget::Location {
                url: "/var/lib/tidemark/orders".into(),
                s3_region: None,
                s3_endpoint: None,
                s3_path_style: false,
                allow_http: false,
                encryption: None,
            },
            backup_id: None,
            topics: TaskTopics {
                include: vec!["orders".into(), "orders-*".into()],
                exclude: vec!["*-retry".into()],
            },
            mode: TaskMode::OneShot,
            chain: Some("kafka-backup-orders-snapshot".into()),
            compression: TaskCompression::Zstd,
            compression_level: None,
            max_concurrent_partitions: None,
            rate_limit_records_per_sec: None,
            rate_limit_bytes_per_sec: None,
            segment_max_bytes: None,
            segment_max_interval_ms: None,
            capture_offsets: true,
            shard_index: None,
            shard_count: 1,
        };
        assert_eq!(work(BACKUP_ONE_SHOT_PVC), expected);
    }

    #[test]
    fn a_named_backup_id_and_chain_reach_the_task_and_the_retention() {
        let yaml = BACKUP_ONE_SHOT_PVC.replace(
            "spec:\n",
            "spec:\n  backupId: orders-before-migration\n  chain: orders\n  retention:\n    keepLast: 3\n",
        );
        assert_ne!(yaml, BACKUP_ONE_SHOT_PVC);
        let t = work(&yaml);
        assert_eq!(t.backup_id.as_deref(), Some("orders-before-migration"));
        assert_eq!(t.chain.as_deref(), Some("orders"));
        let cr = kb(&yaml);
        let Some(Task {
            work: TaskWork::BackupCleanup(cleanup),
            ..
        }) = cleanup_task(&cr).expect("builds")
        else {
            panic!("a cleanup task")
        };
        assert_eq!(cleanup.chain, "orders", "retention prunes the named chain");
        // A scheduled backup keeps its Job's name as id, in the named chain.
        let scheduled = BACKUP_DAILY_S3.replace("spec:\n", "spec:\n  chain: payments\n");
        let t = work(&scheduled);
        assert_eq!(t.backup_id, None);
        assert_eq!(t.chain.as_deref(), Some("payments"));
    }

    #[test]
    fn a_one_shot_job_takes_its_backup_id_from_its_name() {
        let cr = kb(BACKUP_ONE_SHOT_PVC);
        let job = build(BACKUP_ONE_SHOT_PVC);
        let hash = instance_hash(&cr).expect("hash");
        let name = job.metadata.name.clone().expect("name");
        assert_eq!(name, format!("orders-snapshot-kb-g1-r0-{hash:08x}"));
        assert_eq!(cr.job_name(RUN).expect("name"), name);
        tidemark_task::ids::validate_id(&name).expect("the Job's name is a valid backup id");

        let spec = job.spec.as_ref().expect("spec");
        assert_eq!(spec.completion_mode, None, "one shard: not Indexed");
        assert_eq!((spec.completions, spec.parallelism), (None, None));
        let c = container(&job);
        assert_backup_id_from_job_name(c);
        assert_eq!(
            c.args.clone().expect("args"),
            ["run", "--task", "/etc/tidemark/task/task.yaml"]
        );
        let mounts: Vec<&str> = c
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.mount_path.as_str())
            .collect();
        assert_eq!(mounts, ["/etc/tidemark/task", "/tmp", "/var/lib/tidemark"]);
        // A backup needs no Kubernetes API: no RoleBinding, no token.
        assert_eq!(pod(&job).automount_service_account_token, Some(false));
        assert_eq!(
            worker_role_binding(&cr, &OperatorConfig::default()).expect("builds"),
            None
        );
        assert!(cron_job(&cr, RUN, &OperatorConfig::default())
            .expect("builds")
            .is_none());
    }

    #[test]
    fn backup_ids_differ_across_namespaces_and_re_created_resources() {
        let cr = kb(BACKUP_ONE_SHOT_PVC);
        let id = cr.job_name(RUN).expect("id");
        let mut elsewhere = cr.clone();
        elsewhere.metadata.namespace = Some("other".into());
        let mut recreated = cr.clone();
        recreated.metadata.uid = Some("a-new-uid".into());
        let next = RunId {
            generation: 1,
            run: 1,
        };
        for other in [
            elsewhere.job_name(RUN),
            recreated.job_name(RUN),
            cr.job_name(next),
            cron_job_name(&cr),
            cron_job_name(&elsewhere),
        ] {
            assert_ne!(other.expect("name"), id);
        }
        assert_ne!(
            cron_job_name(&cr).expect("name"),
            cron_job_name(&recreated).expect("name")
        );
    }

    #[test]
    fn three_shards_make_an_indexed_job_whose_pods_share_the_task() {
        let yaml = without_schedule(BACKUP_HOURLY_INCREMENTAL_GCS);
        let job = build(&yaml);
        let spec = job.spec.as_ref().expect("spec");
        assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
        assert_eq!((spec.completions, spec.parallelism), (Some(3), Some(3)));
        assert_backup_id_from_job_name(container(&job));

        let t = work(&yaml);
        assert_eq!(t.shard_count, 3);
        assert_eq!(t.shard_index, None, "each pod reads JOB_COMPLETION_INDEX");
        assert_eq!(t.backup_id, None, "each pod reads TIDEMARK_BACKUP_ID");
        assert_eq!(t.mode, TaskMode::Incremental);
        assert_eq!(t.chain.as_deref(), Some("kafka-backup-events-hourly"));
        assert_eq!(t.topics.include, ["~events-(eu|us)-.*"]);
        assert_eq!(t.max_concurrent_partitions, Some(8));
        assert_eq!(
            t.storage,
            StorageTarget::Location {
                url: "gs://kafka-backups-events/hourly".into(),
                s3_region: None,
                s3_endpoint: None,
                s3_path_style: false,
                allow_http: false,
                encryption: None,
            }
        );
        let from = container(&job).env_from.clone().expect("envFrom");
        assert_eq!(
            from[0].secret_ref.as_ref().map(|s| s.name.as_str()),
            Some("gcs-credentials")
        );
    }

    #[test]
    fn a_schedule_makes_a_cron_job_with_the_same_job_inside() {
        let cr = kb(BACKUP_HOURLY_INCREMENTAL_GCS);
        let cron_job = cron(BACKUP_HOURLY_INCREMENTAL_GCS);
        let name = cron_job.metadata.name.clone().expect("name");
        assert_eq!(name, cron_job_name(&cr).expect("name"));
        assert!(name.starts_with("events-hourly-") && name.len() <= MAX_CRON_JOB_NAME);
        assert_eq!(cron_job.metadata.namespace.as_deref(), Some("kafka-backup"));
        let owner = &cron_job.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("KafkaBackup", Some(true))
        );
        let spec = cron_job.spec.as_ref().expect("spec");
        assert_eq!(spec.schedule, "0 * * * *");
        assert_eq!(spec.suspend, Some(false));
        assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
        assert_eq!(spec.starting_deadline_seconds, Some(3600));
        assert_eq!(spec.successful_jobs_history_limit, Some(3));
        assert_eq!(spec.failed_jobs_history_limit, Some(3));

        // The job template is the Job a run without a schedule gets: Indexed, same task, same
        // labels (the Jobs it creates are found by them).
        let template = &spec.job_template;
        let one_shot = job(&cr, RUN, &OperatorConfig::default()).expect("job");
        // Its pods hold their results too (the CronJob's Jobs carry no finalizer of their own).
        assert_eq!(template.spec.as_ref(), one_shot.spec.as_ref());
        assert_eq!(
            template
                .metadata
                .as_ref()
                .and_then(|m| m.finalizers.as_ref()),
            None
        );
        let pod_meta = template
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref());
        assert_eq!(
            pod_meta.and_then(|m| m.finalizers.clone()),
            Some(vec![RESULT_FINALIZER.to_string()])
        );
        assert_eq!(
            template.metadata.as_ref().and_then(|m| m.labels.as_ref()),
            one_shot.metadata.labels.as_ref()
        );
        let labels = cron_job.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels["tidemark.dev/run"], "g1-r0");
        let job_spec = template.spec.as_ref().expect("job spec");
        assert_eq!(job_spec.completion_mode.as_deref(), Some("Indexed"));
        let pod = job_spec.template.spec.as_ref().expect("pod");
        assert_backup_id_from_job_name(&pod.containers[0]);
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "task")
            .and_then(|v| v.config_map.as_ref())
            .expect("task volume");
        assert_eq!(volume.name, "events-hourly-kb-task-g1-r0");

        let suspended = BACKUP_HOURLY_INCREMENTAL_GCS
            .replace("  parallelism: 3\n", "  parallelism: 3\n  suspend: true\n");
        assert_eq!(cron(&suspended).spec.and_then(|s| s.suspend), Some(true));
    }

    #[test]
    fn the_daily_s3_backup_wires_its_secrets_by_reference() {
        let spec = cron(BACKUP_DAILY_S3).spec.expect("spec");
        assert_eq!(spec.schedule, "0 2 * * *");
        let job_spec = spec.job_template.spec.expect("job spec");
        assert_eq!(job_spec.completion_mode, None);
        assert_eq!(job_spec.backoff_limit, Some(2));
        assert_eq!(job_spec.active_deadline_seconds, Some(14400));
        let pod = job_spec.template.spec.expect("pod");
        let c = &pod.containers[0];
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
        assert_eq!(pod.automount_service_account_token, Some(false));

        let t = work(BACKUP_DAILY_S3);
        assert_eq!(t.compression, TaskCompression::Zstd);
        assert_eq!(t.compression_level, Some(6));
        assert_eq!(t.kafka.sasl_mechanism.as_deref(), Some("SCRAM-SHA-512"));
        assert_eq!(
            t.kafka.ssl_ca_location.as_deref(),
            Some("/etc/tidemark/tls/ca.crt")
        );
        assert!(
            matches!(t.storage, StorageTarget::Location { ref url, ref s3_region, .. } if url == "s3://kafka-backups/payments" && s3_region.as_deref() == Some("eu-west-1"))
        );
        assert_eq!(t.topics.exclude, ["__*", "*-changelog"]);
    }

    #[test]
    fn a_continuous_backup_carries_its_throttles_and_segment_bounds() {
        let t = work(BACKUP_CONTINUOUS_AZURE);
        assert_eq!(t.mode, TaskMode::Continuous);
        assert_eq!(t.compression, TaskCompression::Lz4);
        assert!(!t.capture_offsets);
        assert_eq!(t.rate_limit_bytes_per_sec, Some(10_485_760));
        assert_eq!(t.rate_limit_records_per_sec, None);
        assert_eq!(t.segment_max_bytes, Some(134_217_728));
        assert_eq!(t.segment_max_interval_ms, Some(60_000));
        assert!(
            matches!(t.storage, StorageTarget::Location { ref url, .. } if url == "az://kafka-backups/audit")
        );
        let job = build(BACKUP_CONTINUOUS_AZURE);
        let vars = env(container(&job));
        assert_eq!(
            vars["AZURE_STORAGE_ACCOUNT_NAME"].value.as_deref(),
            Some("tidemarkbackups")
        );
        assert_backup_id_from_job_name(container(&job));
        assert_eq!(job.spec.and_then(|s| s.backoff_limit), Some(10));

        // A level is only a zstd setting: it is not passed along with lz4.
        let mut cr = kb(BACKUP_CONTINUOUS_AZURE);
        cr.spec.compression_level = Some(9);
        match cr.task(RUN).expect("task").work {
            TaskWork::Backup(t) => assert_eq!(t.compression_level, None),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retention_runs_a_cleanup_job_per_backup_with_its_own_task() {
        let cr = kb(BACKUP_DAILY_S3);
        let cm = cleanup_config_map(&cr).expect("builds").expect("retention");
        assert_eq!(
            cm.metadata.name.as_deref(),
            Some("payments-nightly-kb-cleanup-task")
        );
        let labels = cm.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels["app.kubernetes.io/component"], "backup-cleanup");
        assert!(!labels.contains_key("tidemark.dev/run"));
        match parse_task(&cm).work {
            TaskWork::BackupCleanup(t) => {
                assert_eq!(t.chain, "kafka-backup-payments-nightly");
                assert_eq!(t.keep_last, Some(7));
                assert_eq!(t.max_age, None);
                assert!(
                    matches!(t.storage, StorageTarget::Location { ref url, .. } if url == "s3://kafka-backups/payments")
                );
            }
            other => panic!("a cleanup task: {other:?}"),
        }

        let id = "payments-nightly-3c9a7e10-29000000";
        let job = cleanup_job(&cr, id, &OperatorConfig::default())
            .expect("builds")
            .expect("retention");
        let name = job.metadata.name.clone().expect("name");
        assert_eq!(name, cleanup_job_name("payments-nightly", id));
        assert!(name.starts_with("payments-nightly-kb-cleanup-") && name.len() <= 63);
        assert_ne!(name, cleanup_job_name("payments-nightly", "another-id"));
        let labels = job.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels["app.kubernetes.io/component"], "backup-cleanup");
        assert_eq!(labels[BACKUP_ID_LABEL], id);
        let owner = &job.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(owner.kind, "KafkaBackup");
        let spec = job.spec.as_ref().expect("spec");
        assert_eq!(spec.ttl_seconds_after_finished, Some(86400));
        assert_eq!(spec.completion_mode, None);
        // The Job and its pod keep the cleanup's result until the operator has recorded it.
        let held = Some(vec![RESULT_FINALIZER.to_string()]);
        assert_eq!(job.metadata.finalizers, held);
        let template = spec.template.metadata.as_ref();
        assert_eq!(template.and_then(|m| m.finalizers.clone()), held);
        let c = container(&job);
        // Storage only: the S3 credentials, no Kafka Secrets, no backup id, no TLS files.
        let vars = env(c);
        assert!(!vars.contains_key("KAFKA_PASSWORD"));
        assert!(!vars.contains_key(ENV_BACKUP_ID));
        assert!(c.env_from.is_some());
        let volume = pod(&job)
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "task")
            .and_then(|v| v.config_map.as_ref())
            .expect("task volume");
        assert_eq!(volume.name, "payments-nightly-kb-cleanup-task");
        assert!(pod(&job)
            .volumes
            .iter()
            .flatten()
            .all(|v| v.name != "kafka-tls"));

        let age = kb(BACKUP_HOURLY_INCREMENTAL_GCS);
        match cleanup_task(&age).expect("builds").expect("retention").work {
            TaskWork::BackupCleanup(t) => {
                assert_eq!((t.keep_last, t.max_age.as_deref()), (None, Some("14d")));
            }
            other => panic!("{other:?}"),
        }
        let none = kb(BACKUP_ONE_SHOT_PVC);
        assert_eq!(cleanup_task(&none).expect("builds"), None);
        assert_eq!(cleanup_config_map(&none).expect("builds"), None);
        assert_eq!(
            cleanup_job(&none, "x", &OperatorConfig::default()).expect("builds"),
            None
        );
    }

    #[test]
    fn no_secret_value_appears_in_any_rendered_object() {
        let yaml = with_secret_properties(BACKUP_DAILY_S3, "kafka-1.kafka:9093", "tidemark-backup");
        let cr = kb(&yaml);
        let config = OperatorConfig::default();
        let rendered = [
            serde_yaml_ng::to_string(&job(&cr, RUN, &config).expect("job")),
            serde_yaml_ng::to_string(&cron_job(&cr, RUN, &config).expect("cron job")),
            serde_yaml_ng::to_string(&cleanup_config_map(&cr).expect("cleanup task")),
            serde_yaml_ng::to_string(&cleanup_job(&cr, "b1", &config).expect("cleanup job")),
        ]
        .map(|text| text.expect("yaml"));
        let task =
            serde_yaml_ng::to_string(&task_config_map(&cr, RUN).expect("task")).expect("yaml");
        assert_no_secret(&rendered, &task, "tidemark-backup");
    }

    #[test]
    fn long_names_give_valid_chains_and_short_enough_children() {
        let long = "b".repeat(253);
        let mut cr = kb(BACKUP_HOURLY_INCREMENTAL_GCS);
        cr.metadata.name = Some(long.clone());
        let chain = chain(&cr).expect("chain");
        assert!(chain.len() <= MAX_ID_LEN, "{}", chain.len());
        tidemark_task::ids::validate_id(&chain).expect("a valid chain");
        let mut other = cr.clone();
        other.metadata.name = Some(format!("{}c", "b".repeat(252)));
        assert_ne!(chain, super::chain(&other).expect("chain"));

        let job_name = cr.job_name(RUN).expect("name");
        assert!(job_name.len() <= 63, "{job_name}");
        tidemark_task::ids::validate_id(&job_name).expect("a valid backup id");
        let cron = cron_job_name(&cr).expect("name");
        assert!(cron.len() <= MAX_CRON_JOB_NAME, "{cron}");
        // The Jobs of the CronJob: `<cronjob>-<minutes>`.
        let scheduled = format!("{cron}-29000000");
        assert!(scheduled.len() <= 63);
        tidemark_task::ids::validate_id(&scheduled).expect("a valid backup id");
        assert!(cleanup_job_name(&long, &scheduled).len() <= 63);
    }

    #[test]
    fn negative_counts_are_refused_rather_than_wrapped() {
        let mut cr = kb(BACKUP_CONTINUOUS_AZURE);
        cr.spec.rate_limit = Some(crate::crd::backup::RateLimitSpec {
            records_per_sec: Some(-5),
            bytes_per_sec: None,
        });
        let err = cr.task(RUN).expect_err("negative");
        assert_eq!(err.label(), "invalid_field");
        assert!(
            err.to_string()
                .contains("spec.rateLimit.recordsPerSec is -5"),
            "{err}"
        );
    }
    /// The rules of the pod failure policy of `job`: (action, pod condition or exit codes).
    fn rules(job: &Job) -> Vec<(String, String)> {
        let policy = job
            .spec
            .as_ref()
            .and_then(|s| s.pod_failure_policy.as_ref())
            .expect("a pod failure policy");
        policy
            .rules
            .iter()
            .map(|r| {
                let on = match (&r.on_pod_conditions, &r.on_exit_codes) {
                    (Some(c), _) => c[0].type_.clone(),
                    (_, Some(e)) => format!("{} {:?}", e.operator, e.values),
                    _ => String::new(),
                };
                (r.action.clone(), on)
            })
            .collect()
    }

    #[test]
    fn an_interrupted_backup_pod_is_replaced_without_counting_a_failure() {
        let mut config = OperatorConfig::default();
        config.job_defaults.active_deadline_seconds = Some(3600);
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        for yaml in [BACKUP_CONTINUOUS_AZURE, BACKUP_ONE_SHOT_PVC] {
            let job = job(&kb(yaml), RUN, &config).expect("builds");
            assert_eq!(
                rules(&job),
                [
                    pair("Ignore", "DisruptionTarget"),
                    pair("Ignore", "In [75]"),
                    pair("FailJob", "In [2, 3, 4, 6, 8, 11, 13, 15]"),
                ],
                "evictions and SIGTERMed workers (exit 75, resumable) do not count against backoffLimit"
            );
        }
        let continuous = job(&kb(BACKUP_CONTINUOUS_AZURE), RUN, &config).expect("builds");
        let spec = continuous.spec.as_ref().expect("spec");
        assert_eq!(
            spec.backoff_limit,
            Some(10),
            "the resource's own backoffLimit"
        );
        assert_eq!(
            spec.active_deadline_seconds, None,
            "a continuous backup runs until it is stopped: no default deadline"
        );
        let one_shot = job(&kb(BACKUP_ONE_SHOT_PVC), RUN, &config).expect("builds");
        assert_eq!(
            one_shot
                .spec
                .as_ref()
                .and_then(|s| s.active_deadline_seconds),
            Some(3600)
        );
        let mut explicit = kb(BACKUP_CONTINUOUS_AZURE);
        if let Some(j) = explicit.spec.job.as_mut() {
            j.active_deadline_seconds = Some(60);
        }
        let explicit = job(&explicit, RUN, &config).expect("builds");
        assert_eq!(
            explicit
                .spec
                .as_ref()
                .and_then(|s| s.active_deadline_seconds),
            Some(60),
            "a deadline the resource sets itself is kept"
        );
    }
}

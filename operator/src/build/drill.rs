//! A KafkaBackup's restore drills (`spec.drill`): the drill task (restore the newest complete
//! backup of the resource's chain, from the backup's storage, into prefixed scratch topics on
//! the drill's cluster, verify, clean up) in its own ConfigMap, and one Job per drill, numbered
//! by the drills started so far. The drill Job has the drill's own resources, Job options and
//! throttles; its Kafka Secrets (the drill cluster's, by default the backup's) and storage
//! Secrets are wired by reference exactly as for a backup Job.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use tidemark_task::{
    DrillTask, Task, TaskWork, TopicSelection as TaskTopics, DEFAULT_DRILL_PREFIX, TASK_API_VERSION,
};

use super::backup::chain;
use super::job::{hold_results, job_with, JobParts};
use super::task::{kafka_target, source, storage_target, task_config_map_with};
use super::{count, instance_hash, kind_child_name, label_value, name, namespace, positive};
use super::{owner_labels, Error};
use crate::config::OperatorConfig;
use crate::crd::backup::{BackupMode, DrillSpec};
use crate::crd::KafkaBackup;

/// `app.kubernetes.io/component` of a KafkaBackup's drill Jobs and their task ConfigMap.
pub const COMPONENT: &str = "backup-drill";
/// Label of a drill Job naming its drill id.
pub const DRILL_ID_LABEL: &str = "tidemark.dev/drill-id";

/// The id of `cr`'s drill number `n`: `<n>-<hash of the resource>`, e.g. `3-1a2b3c4d`, short
/// (it is part of every scratch topic name) and unique across resources and re-created ones.
pub fn drill_id(cr: &KafkaBackup, n: i64) -> Result<String, Error> {
    Ok(format!("{n}-{:08x}", instance_hash(cr)?))
}

/// Name of the drill Job number `n` of `cr`: `<name>-kb-drill-<drill id>`.
pub fn drill_job_name(cr: &KafkaBackup, n: i64) -> Result<String, Error> {
    Ok(kind_child_name::<KafkaBackup>(
        &name(cr)?,
        &format!("drill-{}", drill_id(cr, n)?),
    ))
}

/// Name of the ConfigMap with `cr_name`'s drill task: `<cr>-kb-drill-task` (one drill runs at
/// a time, and each gets the task of the spec in force when it starts).
pub fn drill_config_map_name(cr_name: &str) -> String {
    kind_child_name::<KafkaBackup>(cr_name, "drill-task")
}

/// The drill task of `cr`'s drill `drill_id`: its storage and chain are the backup's, the
/// cluster the drill's (default the backup's); `None` without `spec.drill`.
pub fn drill_task(cr: &KafkaBackup, drill_id: &str) -> Result<Option<Task>, Error> {
    let Some(drill) = &cr.spec.drill else {
        return Ok(None);
    };
    let rate = drill.rate_limit.clone().unwrap_or_default();
    let max_rpo = drill
        .max_rpo_seconds
        .map(|v| count(v, "spec.drill.maxRpoSeconds"))
        .transpose()?;
    let max_rto = drill
        .max_rto_seconds
        .map(|v| count(v, "spec.drill.maxRtoSeconds"))
        .transpose()?;
    Ok(Some(Task {
        api_version: TASK_API_VERSION.to_string(),
        source: Some(source(cr)?),
        work: TaskWork::Drill(DrillTask {
            kafka: kafka_target(
                drill
                    .kafka_cluster
                    .as_ref()
                    .unwrap_or(&cr.spec.kafka_cluster),
            ),
            storage: storage_target(
                &cr.spec.storage,
                &namespace(cr)?,
                cr.spec.encryption.as_ref(),
            )?,
            backup_id: None,
            chain: Some(chain(cr)?),
            drill_id: Some(drill_id.to_string()),
            topic_prefix: drill
                .topic_prefix
                .clone()
                .unwrap_or_else(|| DEFAULT_DRILL_PREFIX.to_string()),
            topics: TaskTopics::default(),
            check_offsets: drill.check_offsets,
            max_concurrent_partitions: drill
                .max_concurrent_partitions
                .map(|v| count(v, "spec.drill.maxConcurrentPartitions"))
                .transpose()?,
            rate_limit_records_per_sec: positive(
                rate.records_per_sec,
                "spec.drill.rateLimit.recordsPerSec",
            )?,
            rate_limit_bytes_per_sec: positive(
                rate.bytes_per_sec,
                "spec.drill.rateLimit.bytesPerSec",
            )?,
            max_rpo_seconds: max_rpo,
            max_rto_seconds: max_rto,
            report_key: None,
            time_window_start: None,
            time_window_end: None,
        }),
    }))
}

/// The ConfigMap with the task of `cr`'s drill `drill_id`; `None` without `spec.drill`.
pub fn drill_config_map(cr: &KafkaBackup, drill_id: &str) -> Result<Option<ConfigMap>, Error> {
    let Some(task) = drill_task(cr, drill_id)? else {
        return Ok(None);
    };
    task_config_map_with(
        cr,
        &drill_config_map_name(&name(cr)?),
        owner_labels(cr, COMPONENT),
        &task,
    )
    .map(Some)
}

/// `cr` as its drill Job sees it: the drill's cluster, resources and Job options in place of
/// the backup's, one pod, no continuous mode (the operator's deadline applies). Only the Job
/// builder reads it; nothing is stored.
fn drill_view(cr: &KafkaBackup, drill: &DrillSpec) -> KafkaBackup {
    let mut view = cr.clone();
    let spec = &mut view.spec;
    if let Some(cluster) = &drill.kafka_cluster {
        spec.kafka_cluster = cluster.clone();
    }
    spec.resources = drill.resources.clone();
    spec.job = drill.job.clone();
    spec.parallelism = 1;
    spec.mode = BackupMode::OneShot;
    view
}

/// The Job of `cr`'s drill number `n`: the worker runs the drill task with the drill's Kafka
/// wiring and the backup's storage wiring; it and its pod hold the result ([`hold_results`])
/// until the operator has recorded it. `None` without `spec.drill`.
pub fn drill_job(cr: &KafkaBackup, n: i64, config: &OperatorConfig) -> Result<Option<Job>, Error> {
    let Some(drill) = &cr.spec.drill else {
        return Ok(None);
    };
    let cr_name = name(cr)?;
    let id = drill_id(cr, n)?;
    let mut labels: BTreeMap<String, String> = owner_labels(cr, COMPONENT);
    labels.insert(DRILL_ID_LABEL.to_string(), label_value(&id));
    let parts = JobParts {
        labels,
        task_config_map: drill_config_map_name(&cr_name),
        kafka: true,
        shards: 1,
        env: Vec::new(),
    };
    let view = drill_view(cr, drill);
    let mut job = job_with(&view, &drill_job_name(cr, n)?, &parts, config)?;
    hold_results(&mut job);
    Ok(Some(job))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::EnvVar;
    use tidemark_task::StorageTarget;

    use super::super::fixtures::*;
    use super::super::job::RESULT_FINALIZER;
    use super::*;

    fn drill_of(task: &Task) -> &DrillTask {
        match &task.work {
            TaskWork::Drill(d) => d,
            other => panic!("not a drill task: {other:?}"),
        }
    }

    fn env(job: &Job) -> BTreeMap<String, EnvVar> {
        container(job)
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.clone()))
            .collect()
    }

    #[test]
    fn the_drill_task_restores_the_backups_chain_into_the_drill_cluster() {
        let cr = kb(BACKUP_DRILL);
        let cm = drill_config_map(&cr, "3-1a2b3c4d")
            .expect("built")
            .expect("a drill");
        assert_eq!(
            cm.metadata.name.as_deref(),
            Some("orders-drilled-kb-drill-task")
        );
        let labels = cm.metadata.labels.clone().expect("labels");
        assert_eq!(labels["app.kubernetes.io/component"], COMPONENT);
        let task = parse_task(&cm);
        let d = drill_of(&task);
        assert_eq!(d.drill_id.as_deref(), Some("3-1a2b3c4d"));
        assert_eq!(d.chain.as_deref(), Some("kafka-backup-orders-drilled"));
        assert_eq!(d.backup_id, None, "the newest complete backup of the chain");
        assert_eq!(d.topic_prefix, "drill-{id}-");
        assert_eq!(d.prefix_for("3-1a2b3c4d"), "drill-3-1a2b3c4d-");
        assert!(d.check_offsets);
        assert_eq!(
            (d.max_rpo_seconds, d.max_rto_seconds),
            (Some(28800), Some(1800))
        );
        assert_eq!(d.max_concurrent_partitions, Some(4));
        assert_eq!(d.rate_limit_bytes_per_sec, Some(52_428_800));
        assert_eq!(
            d.kafka.bootstrap_servers,
            ["kafka-staging-0.kafka-staging:9093"]
        );
        match &d.storage {
            StorageTarget::Location { url, .. } => {
                assert_eq!(url, "s3://kafka-backups/orders")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn without_a_drill_cluster_the_drill_uses_the_backups() {
        let yaml = BACKUP_DRILL.replace(
            "    kafkaCluster:\n      bootstrapServers:\n        - kafka-staging-0.kafka-staging:9093\n      securityProtocol: SASL_SSL\n      tlsSecret:\n        name: kafka-staging-tls\n      saslSecret:\n        name: kafka-staging-credentials\n        mechanism: SCRAM-SHA-512\n",
            "",
        );
        let cr = kb(&yaml);
        assert!(cr
            .spec
            .drill
            .as_ref()
            .is_some_and(|d| d.kafka_cluster.is_none()));
        let task = drill_task(&cr, "1-x").expect("built").expect("a drill");
        assert_eq!(
            drill_of(&task).kafka.bootstrap_servers,
            ["kafka-0.kafka:9093"]
        );
        let job = drill_job(&cr, 1, &OperatorConfig::default())
            .expect("built")
            .expect("a job");
        let env = env(&job);
        let secret = |name: &str| {
            env[name]
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
                .map(|s| s.name.clone())
        };
        assert_eq!(
            secret("KAFKA_USERNAME").as_deref(),
            Some("kafka-credentials")
        );
    }

    #[test]
    fn the_drill_job_has_its_own_resources_and_the_drill_clusters_secrets() {
        let cr = kb(BACKUP_DRILL);
        let config = OperatorConfig::default();
        let job = drill_job(&cr, 3, &config).expect("built").expect("a job");
        let id = drill_id(&cr, 3).expect("id");
        assert!(id.starts_with("3-") && id.len() == 10, "{id}");
        assert_eq!(
            job.metadata.name.as_deref(),
            Some(format!("orders-drilled-kb-drill-{id}").as_str())
        );
        let labels = job.metadata.labels.clone().expect("labels");
        assert_eq!(labels["app.kubernetes.io/component"], COMPONENT);
        assert_eq!(labels[DRILL_ID_LABEL], id);
        assert_eq!(
            job.metadata.owner_references.as_ref().expect("owner")[0].kind,
            "KafkaBackup"
        );
        assert_eq!(
            job.metadata.finalizers.as_deref(),
            Some(&[RESULT_FINALIZER.to_string()][..])
        );
        let spec = job.spec.as_ref().expect("spec");
        assert_eq!(spec.completion_mode, None, "one pod");
        // The drill's Job options are the operator's, not the backup's (backoffLimit 2, 4 h).
        assert_eq!(spec.backoff_limit, Some(config.job_defaults.backoff_limit));
        assert_ne!(spec.active_deadline_seconds, Some(14_400));
        let c = container(&job);
        let resources = c.resources.as_ref().expect("resources");
        let limits = resources.limits.as_ref().expect("limits");
        assert_eq!(limits["memory"].0, "512Mi");
        assert_eq!(
            resources.requests.as_ref().expect("requests")["cpu"].0,
            "250m"
        );
        assert_eq!(
            pod(&job)
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == "task")
                .and_then(|v| v.config_map.as_ref())
                .map(|c| c.name.as_str()),
            Some("orders-drilled-kb-drill-task")
        );
        // The drill cluster's Secrets, by reference; the storage's as for a backup.
        let env = env(&job);
        let secret = |name: &str| {
            env[name]
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
                .map(|s| s.name.clone())
        };
        assert_eq!(
            secret("KAFKA_USERNAME").as_deref(),
            Some("kafka-staging-credentials")
        );
        assert_eq!(
            secret("KAFKA_PASSWORD").as_deref(),
            Some("kafka-staging-credentials")
        );
        assert!(env
            .values()
            .all(|e| e.value.as_deref() != Some("s3-credentials")));
        let tls = pod(&job)
            .volumes
            .iter()
            .flatten()
            .find_map(|v| v.secret.as_ref().and_then(|s| s.secret_name.clone()))
            .expect("a Secret volume");
        assert_eq!(tls, "kafka-staging-tls");
        // No backup id env: a drill writes no backup.
        assert!(!env.contains_key("TIDEMARK_BACKUP_ID"));
    }

    #[test]
    fn no_secret_value_reaches_the_drill_task_or_job() {
        let line = "        - kafka-staging-0.kafka-staging:9093\n";
        let yaml = BACKUP_DRILL.replacen(
            line,
            &format!(
                "{line}      properties:\n        sasl.password: {SENTINEL}\n        ssl.key.password: {SENTINEL}\n        client.id: drill-client\n"
            ),
            1,
        );
        let cr = kb(&yaml);
        assert!(
            cr.spec
                .drill
                .as_ref()
                .and_then(|d| d.kafka_cluster.as_ref())
                .is_some_and(|k| k.properties.contains_key("sasl.password")),
            "{yaml}"
        );
        let cm = drill_config_map(&cr, "1-x").expect("built").expect("cm");
        let job = drill_job(&cr, 1, &OperatorConfig::default())
            .expect("built")
            .expect("job");
        let task = cm.data.clone().expect("data")["task.yaml"].clone();
        let rendered = vec![
            serde_json::to_string(&job).expect("json"),
            serde_json::to_string(&cm).expect("json"),
        ];
        assert_no_secret(&rendered, &task, "drill-client");
    }

    #[test]
    fn a_backup_without_drill_builds_no_drill() {
        let cr = kb(BACKUP_DAILY_S3);
        assert_eq!(drill_task(&cr, "1-x").expect("ok"), None);
        assert_eq!(drill_config_map(&cr, "1-x").expect("ok"), None);
        assert_eq!(
            drill_job(&cr, 1, &OperatorConfig::default()).expect("ok"),
            None
        );
    }
}

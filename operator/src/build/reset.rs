//! KafkaOffsetReset as a [`WorkerKind`]: its task document (an offset-reset task: selection,
//! strategy and its parameter, dry run, concurrency, retries, storage and the safety snapshot
//! id), and what it does in a ConfigMap storage (stores the safety snapshot, reads a
//! fromSnapshot plan).
//!
//! The safety snapshot id is chosen here, once per run and deterministically
//! ([`safety_snapshot_id`]): a retried Job of the same run finds the snapshot its first attempt
//! stored and reuses it, instead of capturing half-reset offsets.

use k8s_openapi::api::core::v1::ResourceRequirements;
use tidemark_task::TASK_API_VERSION;
use tidemark_task::{OffsetResetTask, ResetStrategy as TaskStrategy, Task, TaskWork};

use super::task::{kafka_target, source, storage_target};
use super::{count, instance_hash, name, namespace, required_storage};
use super::{ConfigMapAccess, Error, RunId, WorkerKind};
use crate::crd::common::{EncryptionSpec, JobOptions, KafkaClusterSpec, StorageSpec};
use crate::crd::reset::ResetStrategy;
use crate::crd::KafkaOffsetReset;

/// `app.kubernetes.io/component` of a KafkaOffsetReset's children.
pub const COMPONENT: &str = "offset-reset";

/// Worker exit codes that fail a reset's Job at once: the usual permanent ones
/// ([`super::job::PERMANENT_EXIT_CODES`]) plus 10, a partial failure. A reset that changed some
/// groups must not be re-run by the Job controller: the retry would plan again from offsets it
/// already moved (a shiftBy would shift those groups twice). The status lists the failed groups;
/// bumping the run annotation runs it again on purpose.
pub const RESET_PERMANENT_EXIT_CODES: [i32; 9] = super::job::PARTIAL_FAILURE_EXIT_CODES;

/// Longest part of the resource name kept in a safety snapshot id.
const MAX_NAME_IN_ID: usize = 100;

/// The id of the safety snapshot of `cr`'s run `run`: `<name>-reset-<run>-<hash>`, e.g.
/// `orders-replay-reset-g1-r0-6f1c2a9e`, where the hash covers the namespace, the name and the
/// uid. The same run always gets the same id; another run, another resource, or the same name
/// re-created (a new uid) never does, so a stale snapshot is never mistaken for this run's. The
/// id is valid for `tidemark_task::ids::validate_id` and, with `.json`, as a ConfigMap key.
pub fn safety_snapshot_id(cr: &KafkaOffsetReset, run: RunId) -> Result<String, Error> {
    let cr_name = name(cr)?;
    let hash = instance_hash(cr)?;
    // A DNS subdomain: letters, digits, '-' and '.', never '..'; cut, it must still end on a
    // letter or digit.
    let cut = &cr_name[..cr_name.len().min(MAX_NAME_IN_ID)];
    let cut = cut.trim_end_matches(['-', '.']);
    Ok(format!("{cut}-reset-{run}-{hash:08x}"))
}

/// The strategy and its parameter, as the worker's task spells it.
fn strategy(cr: &KafkaOffsetReset) -> Result<TaskStrategy, Error> {
    let spec = &cr.spec;
    let missing = Error::MissingField;
    Ok(match spec.reset_strategy {
        ResetStrategy::ToEarliest => TaskStrategy::ToEarliest,
        ResetStrategy::ToLatest => TaskStrategy::ToLatest,
        ResetStrategy::ToCurrent => TaskStrategy::ToCurrent,
        ResetStrategy::ToOffset => TaskStrategy::ToOffset {
            offset: spec.offset.ok_or(missing("spec.offset"))?,
        },
        ResetStrategy::ShiftBy => TaskStrategy::ShiftBy {
            shift: spec.shift_by.ok_or(missing("spec.shiftBy"))?,
        },
        ResetStrategy::ToDatetime => TaskStrategy::ToDatetime {
            datetime: spec.datetime.clone().ok_or(missing("spec.datetime"))?,
        },
        ResetStrategy::ByDuration => TaskStrategy::ByDuration {
            duration: spec.duration.clone().ok_or(missing("spec.duration"))?,
        },
        ResetStrategy::FromFile => TaskStrategy::FromFile {
            csv: spec.offsets_csv.clone().ok_or(missing("spec.offsetsCsv"))?,
        },
        ResetStrategy::FromSnapshot => TaskStrategy::FromSnapshot {
            snapshot_id: spec
                .from_snapshot_id
                .clone()
                .ok_or(missing("spec.fromSnapshotId"))?,
        },
        ResetStrategy::FromBackup => TaskStrategy::FromBackup {
            backup_id: spec.backup_id.clone().ok_or(missing("spec.backupId"))?,
        },
    })
}

impl WorkerKind for KafkaOffsetReset {
    const COMPONENT: &'static str = COMPONENT;
    const TAG: &'static str = "kor";

    fn kafka_cluster(&self) -> Option<&KafkaClusterSpec> {
        Some(&self.spec.kafka_cluster)
    }

    /// The keys of `storage`: mounted and named only by a run that uses the storage.
    fn encryption(&self) -> Option<&EncryptionSpec> {
        match self.storage() {
            Ok(Some(_)) => self.spec.encryption.as_ref(),
            _ => None,
        }
    }

    /// Used to store the safety snapshot and to read a fromSnapshot plan; a run doing neither
    /// (a dry run, or `snapshotBeforeReset: false`) neither mounts nor names it.
    fn storage(&self) -> Result<Option<&StorageSpec>, Error> {
        let spec = &self.spec;
        if spec.takes_snapshot()
            || matches!(
                spec.reset_strategy,
                ResetStrategy::FromSnapshot | ResetStrategy::FromBackup
            )
        {
            required_storage(spec.storage.as_ref()).map(Some)
        } else {
            Ok(None)
        }
    }

    fn config_map_access(&self) -> ConfigMapAccess {
        if self.spec.takes_snapshot() {
            ConfigMapAccess::Create
        } else if self.spec.reset_strategy == ResetStrategy::FromSnapshot {
            ConfigMapAccess::Read
        } else {
            ConfigMapAccess::None
        }
    }

    fn job_options(&self) -> Option<&JobOptions> {
        self.spec.job.as_ref()
    }

    fn resources(&self) -> Option<&ResourceRequirements> {
        self.spec.resources.as_ref()
    }

    fn permanent_exit_codes(&self) -> &'static [i32] {
        &RESET_PERMANENT_EXIT_CODES
    }

    fn approved_run(&self, run: RunId) -> Option<super::approval::ApprovedRun> {
        super::approval::approved_run(
            self,
            self.spec.approval,
            self.status.as_ref().and_then(|s| s.plan.as_ref()),
            run,
        )
    }

    fn task(&self, run: RunId) -> Result<Task, Error> {
        let spec = &self.spec;
        let ns = namespace(self)?;
        let storage = self
            .storage()?
            .map(|s| storage_target(s, &ns, spec.encryption.as_ref()))
            .transpose()?;
        let (snapshot_id, snapshot_description) = if spec.takes_snapshot() {
            let id = match &spec.snapshot_id {
                Some(named) => named.clone(),
                None => safety_snapshot_id(self, run)?,
            };
            // Names the run, so that only its own retries reuse a snapshot with this id.
            let description = format!(
                "Before offset reset by KafkaOffsetReset {}, run {run} (uid {})",
                source(self)?,
                self.metadata.uid.as_deref().unwrap_or("none")
            );
            (Some(id), Some(description))
        } else {
            (None, None)
        };
        Ok(Task {
            api_version: TASK_API_VERSION.to_string(),
            source: Some(source(self)?),
            work: TaskWork::OffsetReset(OffsetResetTask {
                kafka: kafka_target(&spec.kafka_cluster),
                consumer_groups: spec.consumer_groups.clone(),
                groups_regex: spec.consumer_group_pattern.clone(),
                topics: spec.topics.clone(),
                strategy: strategy(self)?,
                dry_run: spec.dry_run,
                max_concurrent: count(spec.max_concurrent, "spec.maxConcurrent")?,
                max_retries: count(spec.max_retries, "spec.maxRetries")?,
                snapshot_before_reset: spec.snapshot_before_reset,
                storage,
                snapshot_id,
                snapshot_description,
                plan_out: None,
                approved_plan: None,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::fixtures::*;
    use super::super::job::job;
    use super::super::rbac::worker_role_binding;
    use super::super::task::task_config_map;
    use super::*;
    use crate::config::OperatorConfig;
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::ConfigMap;
    use tidemark_task::{KafkaTarget, StorageTarget, DEFAULT_RESET_CONCURRENCY};

    const RUN: RunId = RunId {
        generation: 1,
        run: 0,
    };

    /// The reset task in the ConfigMap, parsed and validated by the worker's own code.
    fn parse_back(cm: &ConfigMap) -> OffsetResetTask {
        match parse_task(cm).work {
            TaskWork::OffsetReset(t) => t,
            other => panic!("an offset-reset task: {other:?}"),
        }
    }

    fn work(yaml: &str) -> OffsetResetTask {
        parse_back(&task_config_map(&kor(yaml), RUN).expect("builds"))
    }

    fn build(yaml: &str) -> Job {
        job(&kor(yaml), RUN, &OperatorConfig::default()).expect("builds")
    }

    fn mount_paths(job: &Job) -> Vec<String> {
        container(job)
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.mount_path.clone())
            .collect()
    }

    #[test]
    fn to_datetime_with_an_s3_snapshot_round_trips_through_the_config_map() {
        let cr = kor(RESET_TO_DATETIME);
        let cm = task_config_map(&cr, RUN).expect("builds");
        assert_eq!(
            cm.metadata.name.as_deref(),
            Some("replay-orders-kor-task-g1-r0")
        );
        let labels = cm.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels["tidemark.dev/owner-kind"], "KafkaOffsetReset");
        assert_eq!(labels["app.kubernetes.io/component"], "offset-reset");
        let owner = &cm.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("KafkaOffsetReset", "replay-orders")
        );

        let expected = OffsetResetTask {
            kafka: KafkaTarget {
                bootstrap_servers: vec!["kafka-0.kafka:9093".into()],
                security_protocol: "SASL_SSL".into(),
                sasl_mechanism: Some("SCRAM-SHA-512".into()),
                ssl_ca_location: Some("/etc/tidemark/tls/ca.crt".into()),
                ssl_certificate_location: None,
                ssl_key_location: None,
                properties: BTreeMap::new(),
                tls_insecure_skip_verify: false,
            },
            consumer_groups: vec!["order-processor".into(), "order-auditor".into()],
            groups_regex: None,
            topics: vec!["orders".into(), "payments:0,1,2".into()],
            strategy: TaskStrategy::ToDatetime {
                datetime: "2024-12-01T10:00:00.000+01:00".into(),
            },
            dry_run: false,
            max_concurrent: 20,
            max_retries: 5,
            snapshot_before_reset: true,
            storage: Some(StorageTarget::Location {
                url: "s3://kafka-offsets/resets".into(),
                s3_region: Some("eu-west-1".into()),
                s3_endpoint: None,
                s3_path_style: false,
                allow_http: false,
                encryption: None,
            }),
            snapshot_id: Some(safety_snapshot_id(&cr, RUN).expect("id")),
            snapshot_description: Some(
                "Before offset reset by KafkaOffsetReset kafka-backup/replay-orders, run g1-r0 (uid 7d2f4b8a-51c3-4e0a-b6a1-2c9e8f7d6a50)".into(),
            ),
            plan_out: None,
            approved_plan: None,
        };
        assert_eq!(parse_back(&cm), expected);
    }

    #[test]
    fn every_strategy_carries_its_parameter() {
        let cases: [(&str, TaskStrategy); 9] = [
            (RESET_DRY_RUN, TaskStrategy::ToEarliest),
            (
                &RESET_DRY_RUN.replace("toEarliest", "toLatest"),
                TaskStrategy::ToLatest,
            ),
            (
                &RESET_DRY_RUN.replace("toEarliest", "toCurrent"),
                TaskStrategy::ToCurrent,
            ),
            (
                &RESET_DRY_RUN.replace(
                    "resetStrategy: toEarliest",
                    "resetStrategy: toOffset\n  offset: 1200",
                ),
                TaskStrategy::ToOffset { offset: 1200 },
            ),
            (RESET_SHIFT_BY, TaskStrategy::ShiftBy { shift: -500 }),
            (
                RESET_TO_DATETIME,
                TaskStrategy::ToDatetime {
                    datetime: "2024-12-01T10:00:00.000+01:00".into(),
                },
            ),
            (
                &RESET_DRY_RUN.replace(
                    "resetStrategy: toEarliest",
                    "resetStrategy: byDuration\n  duration: PT30M",
                ),
                TaskStrategy::ByDuration {
                    duration: "PT30M".into(),
                },
            ),
            (
                RESET_FROM_FILE,
                TaskStrategy::FromFile {
                    csv: "order-processor,orders,0,1500\norder-processor,orders,1,1498\n".into(),
                },
            ),
            (
                RESET_FROM_SNAPSHOT,
                TaskStrategy::FromSnapshot {
                    snapshot_id: "before-change".into(),
                },
            ),
        ];
        for (yaml, strategy) in cases {
            assert_eq!(work(yaml).strategy, strategy, "{yaml}");
        }
    }

    #[test]
    fn a_dry_run_plans_without_storage_or_snapshot() {
        let t = work(RESET_DRY_RUN);
        assert!(t.dry_run);
        assert_eq!(t.snapshot_id, None, "a dry run takes no snapshot");
        assert_eq!(t.storage, None, "and does not touch its storage");
        assert_eq!(t.groups_regex.as_deref(), Some("payments-.*"));
        assert!(t.consumer_groups.is_empty());
        assert!(t.topics.is_empty(), "all topics");
        assert_eq!(t.max_concurrent, DEFAULT_RESET_CONCURRENCY);
        assert_eq!(t.max_retries, 3);

        let cr = kor(RESET_DRY_RUN);
        assert_eq!(
            worker_role_binding(&cr, &OperatorConfig::default()).expect("builds"),
            None
        );
        let job = build(RESET_DRY_RUN);
        assert_eq!(pod(&job).automount_service_account_token, Some(false));
        assert_eq!(mount_paths(&job), ["/etc/tidemark/task", "/tmp"]);
    }

    #[test]
    fn from_snapshot_reads_its_config_map_and_takes_a_snapshot_first() {
        let cr = kor(RESET_FROM_SNAPSHOT);
        let t = work(RESET_FROM_SNAPSHOT);
        assert_eq!(
            t.storage,
            Some(StorageTarget::ConfigMap {
                namespace: "kafka-backup".into(),
                name: "offset-snapshots".into()
            })
        );
        assert!(t.snapshot_id.is_some(), "the safety snapshot comes first");
        assert!(worker_role_binding(&cr, &OperatorConfig::default())
            .expect("builds")
            .is_some());
        assert_eq!(
            pod(&build(RESET_FROM_SNAPSHOT)).automount_service_account_token,
            Some(true)
        );

        // Without a safety snapshot, reading the plan is all it does.
        let read_only = RESET_FROM_SNAPSHOT.replace(
            "  resetStrategy: fromSnapshot",
            "  snapshotBeforeReset: false\n  resetStrategy: fromSnapshot",
        );
        let t = work(&read_only);
        assert_eq!(t.snapshot_id, None);
        assert!(!t.snapshot_before_reset);
        assert!(
            worker_role_binding(&kor(&read_only), &OperatorConfig::default())
                .expect("builds")
                .is_some(),
            "reading the plan needs the API too"
        );
    }

    #[test]
    fn from_backup_reads_the_backup_location_and_names_its_safety_snapshot() {
        let t = work(RESET_FROM_BACKUP);
        assert_eq!(
            t.strategy,
            TaskStrategy::FromBackup {
                backup_id: "orders-snapshot-g1-r0-3c9a7e10".into()
            }
        );
        assert!(
            matches!(t.storage, Some(StorageTarget::Location { ref url, .. }) if url == "s3://kafka-backups/orders"),
            "{:?}",
            t.storage
        );
        assert_eq!(t.snapshot_id.as_deref(), Some("orders-dr-before-groups"));
        let description = t.snapshot_description.expect("names its run");
        assert!(
            description.contains("kafka-backup/orders-dr-groups, run g1-r0"),
            "{description}"
        );
        // Another run of the resource describes its snapshot otherwise, so it never reuses the
        // first run's.
        let later = RunId {
            generation: 2,
            run: 0,
        };
        let TaskWork::OffsetReset(t2) = kor(RESET_FROM_BACKUP).task(later).expect("task").work
        else {
            panic!("a reset task")
        };
        assert_eq!(t2.snapshot_id.as_deref(), Some("orders-dr-before-groups"));
        assert_ne!(
            t2.snapshot_description.as_deref(),
            Some(description.as_str())
        );
        // Without a name, the id is the run's own.
        let unnamed = RESET_FROM_BACKUP.replace("  snapshotId: orders-dr-before-groups\n", "");
        let t = work(&unnamed);
        assert!(
            t.snapshot_id
                .as_deref()
                .is_some_and(|id| id.starts_with("orders-dr-groups-reset-g1-r0-")),
            "{:?}",
            t.snapshot_id
        );
    }

    #[test]
    fn snapshot_before_reset_false_needs_no_storage() {
        let yaml = RESET_SHIFT_BY.replace(
            "  snapshotBeforeReset: true\n",
            "  snapshotBeforeReset: false\n",
        );
        let t = work(&yaml);
        assert_eq!((t.storage, t.snapshot_id), (None, None));
        let job = build(&yaml);
        assert!(!mount_paths(&job).contains(&"/var/lib/tidemark".to_string()));
    }

    #[test]
    fn a_pvc_snapshot_store_is_mounted_and_named_in_the_task() {
        let job = build(RESET_SHIFT_BY);
        assert!(mount_paths(&job).contains(&"/var/lib/tidemark".to_string()));
        let t = work(RESET_SHIFT_BY);
        assert!(
            matches!(t.storage, Some(StorageTarget::Location { ref url, .. }) if url == "/var/lib/tidemark/resets")
        );
    }

    #[test]
    fn the_job_runs_the_task_as_a_locked_down_worker() {
        let job = build(RESET_TO_DATETIME);
        assert_eq!(
            job.metadata.name.as_deref(),
            Some("replay-orders-kor-g1-r0")
        );
        let labels = job.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels["app.kubernetes.io/component"], "offset-reset");
        assert_eq!(labels["tidemark.dev/owner-kind"], "KafkaOffsetReset");
        let c = container(&job);
        assert_eq!(
            c.args.clone().expect("args"),
            ["run", "--task", "/etc/tidemark/task/task.yaml"]
        );
        assert_eq!(
            c.security_context
                .as_ref()
                .and_then(|s| s.read_only_root_filesystem),
            Some(true)
        );
        let env: BTreeMap<_, _> = c
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.as_str(), e))
            .collect();
        let password = env["KAFKA_PASSWORD"]
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
        assert!(mount_paths(&job).contains(&"/etc/tidemark/tls".to_string()));
        let spec = job.spec.as_ref().expect("spec");
        assert_eq!(spec.backoff_limit, Some(2));
        assert_eq!(spec.active_deadline_seconds, Some(1800));
        // A partial failure (exit 10) is not retried by the Job controller.
        let policy = spec.pod_failure_policy.as_ref().expect("policy");
        assert_eq!(policy.rules[1].action, "FailJob");
        let codes = policy.rules[1].on_exit_codes.as_ref().expect("exit codes");
        assert_eq!(codes.values, [2, 3, 4, 6, 8, 10, 11, 13, 15]);
        // S3 needs no API access.
        assert_eq!(pod(&job).automount_service_account_token, Some(false));
    }

    #[test]
    fn no_secret_value_appears_in_any_rendered_object() {
        let yaml =
            with_secret_properties(RESET_TO_DATETIME, "kafka-0.kafka:9093", "tidemark-reset");
        let cr = kor(&yaml);
        let job = job(&cr, RUN, &OperatorConfig::default()).expect("job");
        let cm = task_config_map(&cr, RUN).expect("task");
        let role = worker_role_binding(&kor(RESET_FROM_SNAPSHOT), &OperatorConfig::default())
            .expect("binding");
        assert_no_secret(
            &[
                serde_yaml_ng::to_string(&job).expect("yaml"),
                serde_yaml_ng::to_string(&role).expect("yaml"),
            ],
            &serde_yaml_ng::to_string(&cm).expect("yaml"),
            "tidemark-reset",
        );
    }

    #[test]
    fn safety_snapshot_ids_are_stable_per_run_and_distinct_otherwise() {
        let cr = kor(RESET_TO_DATETIME);
        let id = safety_snapshot_id(&cr, RUN).expect("id");
        assert!(id.starts_with("replay-orders-reset-g1-r0-"), "{id}");
        assert_eq!(id.len(), "replay-orders-reset-g1-r0-".len() + 8);
        tidemark_task::ids::validate_id(&id).expect("a valid snapshot id");
        assert_eq!(safety_snapshot_id(&cr, RUN).expect("id"), id, "stable");

        let next_run = RunId {
            generation: 1,
            run: 1,
        };
        assert_ne!(safety_snapshot_id(&cr, next_run).expect("id"), id);
        let mut recreated = cr.clone();
        recreated.metadata.uid = Some("a-new-uid".into());
        assert_ne!(safety_snapshot_id(&recreated, RUN).expect("id"), id);
        let mut elsewhere = cr.clone();
        elsewhere.metadata.namespace = Some("other".into());
        assert_ne!(safety_snapshot_id(&elsewhere, RUN).expect("id"), id);

        // The longest names are cut, and the id stays valid (also as a ConfigMap key).
        let mut long = cr;
        long.metadata.name = Some(format!("{}-.x", "a".repeat(99)));
        let id = safety_snapshot_id(&long, RUN).expect("id");
        tidemark_task::ids::validate_id(&id).expect("valid");
        assert!(
            id.starts_with(&format!("{}-reset-", "a".repeat(99))),
            "{id}"
        );
        assert!(id.len() + ".json".len() <= 253);
    }

    #[test]
    fn negative_counts_are_refused_rather_than_wrapped() {
        let mut cr = kor(RESET_DRY_RUN);
        cr.spec.max_concurrent = -1;
        let err = cr.task(RUN).expect_err("negative");
        assert_eq!(err.label(), "invalid_field");
        assert!(
            err.to_string().contains("spec.maxConcurrent is -1"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_parameter_is_named() {
        let mut cr = kor(RESET_SHIFT_BY);
        cr.spec.shift_by = None;
        let err = cr.task(RUN).expect_err("no shift");
        assert_eq!(err.to_string(), "failed to build: spec.shiftBy is required");
    }
}

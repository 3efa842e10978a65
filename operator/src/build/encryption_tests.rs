//! `spec.encryption` in what the builders make: every worker Job that reads or writes the
//! resource's data (backup, scheduled backup, retention cleanup, drill, restore with its
//! planning and sharded Jobs, offset rollback, offset reset that uses its storage) mounts the key
//! Secret whole and read-only, and its task names only that path, the key id and the KMS key; a
//! restore through `backupRef.name` uses the KafkaBackup's keys unless it names its own.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PodSpec};
use tidemark_task::{Encryption, StorageTarget, Task, TaskWork};

use super::approval::planning_children;
use super::backup::{cleanup_config_map, cleanup_job};
use super::cronjob::cron_job;
use super::drill::{drill_config_map, drill_job};
use super::fixtures::*;
use super::job::job;
use super::task::task_config_map;
use super::{RunId, ENCRYPTION_DIR};
use crate::config::OperatorConfig;
use crate::controller::restore::resolve;
use crate::crd::approval::Approval;
use crate::crd::backup::DrillSpec;
use crate::crd::common::{EncryptionSecretRef, EncryptionSpec};
use crate::crd::{KafkaBackup, KafkaOffsetReset, KafkaRestore};

const RUN: RunId = RunId {
    generation: 1,
    run: 0,
};

/// The Secret of [`BACKUP_ENCRYPTED`] and its key id.
const KEYS: &str = "tidemark-backup-keys";
const KEY_ID: &str = "key-2026-12";

fn config() -> OperatorConfig {
    OperatorConfig::default()
}

/// Asserts that `pod` mounts the Secret `secret` whole, read-only, at [`ENCRYPTION_DIR`] in
/// its worker container, with the mode of the other Secret mounts, and that nothing else
/// (env, envFrom, args) references it.
fn assert_keys_mounted(pod: &PodSpec, secret: &str) {
    let volumes: Vec<_> = pod
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some(secret))
        .collect();
    assert_eq!(volumes.len(), 1, "{:?}", pod.volumes);
    let source = volumes[0].secret.as_ref().expect("secret volume");
    assert_eq!(source.items, None, "every key of the Secret is a file");
    assert_eq!(source.default_mode, Some(0o440));
    assert_eq!(source.optional, Some(false));
    let container = &pod.containers[0];
    let mounts: Vec<_> = container
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| m.name == volumes[0].name)
        .collect();
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0].mount_path, ENCRYPTION_DIR);
    assert_eq!(mounts[0].read_only, Some(true));
    assert_nothing_else_references(pod, secret);
}

/// No env var, envFrom or argument of `pod` names `secret` or the encryption directory.
fn assert_nothing_else_references(pod: &PodSpec, secret: &str) {
    let container = &pod.containers[0];
    let env = serde_json::to_string(&container.env).expect("env");
    let env_from = serde_json::to_string(&container.env_from).expect("envFrom");
    let args = serde_json::to_string(&container.args).expect("args");
    for text in [env, env_from, args] {
        assert!(!text.contains(secret), "{text}");
        assert!(!text.contains(ENCRYPTION_DIR), "{text}");
    }
    assert_eq!(
        container.args.as_deref(),
        Some(
            &[
                "run".to_string(),
                "--task".into(),
                "/etc/tidemark/task/task.yaml".into()
            ][..]
        )
    );
}

/// No volume of `pod` is a key Secret.
fn assert_no_keys_mounted(pod: &PodSpec) {
    let mounts = &pod.containers[0].volume_mounts;
    assert!(
        mounts
            .iter()
            .flatten()
            .all(|m| m.mount_path != ENCRYPTION_DIR),
        "{mounts:?}"
    );
}

fn job_pod(job: &Job) -> &PodSpec {
    pod(job)
}

/// The storage encryption of the task in `cm`, and the task's whole YAML.
fn task_encryption(cm: &ConfigMap) -> (Option<Encryption>, String) {
    let yaml = cm
        .data
        .as_ref()
        .and_then(|d| d.get("task.yaml"))
        .cloned()
        .expect("task.yaml");
    let task: Task = parse_task(cm);
    let storage = match task.work {
        TaskWork::Backup(t) => t.storage,
        TaskWork::BackupCleanup(t) => t.storage,
        TaskWork::Drill(t) => t.storage,
        TaskWork::Restore(t) => t.storage,
        TaskWork::OffsetRollback(t) => t.storage,
        TaskWork::OffsetReset(t) => t.storage.expect("a reset that uses its storage"),
    };
    match storage {
        StorageTarget::Location { encryption, .. } => (encryption, yaml),
        other => panic!("not a location: {other:?}"),
    }
}

/// The key Secret's path and key id, nothing else.
fn secret_keys(key_id: Option<&str>, kms: Option<&str>) -> Option<Encryption> {
    Some(Encryption {
        key_file: Some(ENCRYPTION_DIR.into()),
        key_id: key_id.map(str::to_string),
        kms_key_id: kms.map(str::to_string),
    })
}

/// [`BACKUP_ENCRYPTED`] with a drill after every backup.
fn encrypted_backup_with_drill() -> KafkaBackup {
    let mut cr = kb(BACKUP_ENCRYPTED);
    cr.spec.drill = Some(DrillSpec {
        after_every_backups: Some(1),
        ..DrillSpec::default()
    });
    cr
}

#[test]
fn every_job_of_an_encrypted_backup_mounts_the_key_secret_read_only() {
    let cr = encrypted_backup_with_drill();
    // The scheduled backup's job template.
    let cron = cron_job(&cr, RUN, &config())
        .expect("builds")
        .expect("scheduled");
    let template = cron
        .spec
        .expect("spec")
        .job_template
        .spec
        .expect("job spec");
    assert_keys_mounted(template.template.spec.as_ref().expect("pod"), KEYS);
    // The same backup run once, in three shards.
    let mut once = kb(&without_schedule(BACKUP_ENCRYPTED));
    once.spec.parallelism = 3;
    let backup = job(&once, RUN, &config()).expect("builds");
    assert_eq!(
        backup.spec.as_ref().and_then(|s| s.completions),
        Some(3),
        "an Indexed Job"
    );
    assert_keys_mounted(job_pod(&backup), KEYS);
    // Retention cleanup and the drill.
    let cleanup = cleanup_job(&cr, "customers-encrypted-g1-r0-1", &config())
        .expect("builds")
        .expect("retention");
    assert_keys_mounted(job_pod(&cleanup), KEYS);
    let drill = drill_job(&cr, 1, &config())
        .expect("builds")
        .expect("drill");
    assert_keys_mounted(job_pod(&drill), KEYS);
}

#[test]
fn an_encrypted_backups_tasks_name_only_the_mounted_path_and_key_id() {
    let cr = encrypted_backup_with_drill();
    let config_maps = [
        task_config_map(&cr, RUN).expect("backup task"),
        cleanup_config_map(&cr).expect("builds").expect("cleanup"),
        drill_config_map(&cr, "1-abc")
            .expect("builds")
            .expect("drill"),
    ];
    for cm in &config_maps {
        let (encryption, yaml) = task_encryption(cm);
        assert_eq!(encryption, secret_keys(Some(KEY_ID), None), "{yaml}");
        assert!(
            !yaml.contains(KEYS),
            "the Secret's name is not needed: {yaml}"
        );
    }
}

#[test]
fn a_backup_without_encryption_mounts_no_keys() {
    let cr = kb(&without_schedule(BACKUP_DAILY_S3));
    assert_no_keys_mounted(job_pod(&job(&cr, RUN, &config()).expect("builds")));
    let (encryption, _) = task_encryption(&task_config_map(&cr, RUN).expect("task"));
    assert_eq!(encryption, None);
}

/// [`RESTORE_ENCRYPTED`] resolved through [`BACKUP_ENCRYPTED`] (its backup named by id).
fn resolved_restore(edit: impl FnOnce(&mut KafkaRestore)) -> super::restore::ResolvedRestore {
    let mut cr = kr(RESTORE_ENCRYPTED);
    cr.spec.backup_ref.backup_id = Some("customers-encrypted-g1-r0-1".into());
    edit(&mut cr);
    resolve(&cr, Some(&kb(BACKUP_ENCRYPTED)))
        .expect("resolved")
        .expect("named")
}

#[test]
fn a_restore_through_backup_ref_uses_the_kafka_backups_keys() {
    let resolved = resolved_restore(|_| {});
    assert_eq!(resolved.restore.spec.encryption, None);
    assert_keys_mounted(job_pod(&job(&resolved, RUN, &config()).expect("job")), KEYS);
    let (encryption, yaml) = task_encryption(&task_config_map(&resolved, RUN).expect("task"));
    assert_eq!(encryption, secret_keys(Some(KEY_ID), None), "{yaml}");

    // Sharded: every pod of the Indexed Job has the keys.
    let sharded = resolved_restore(|cr| cr.spec.shards = 3);
    let job = job(&sharded, RUN, &config()).expect("job");
    assert_eq!(job.spec.as_ref().and_then(|s| s.completions), Some(3));
    assert_keys_mounted(job_pod(&job), KEYS);

    // Planned for approval: the planning Job reads the backup too.
    let manual = resolved_restore(|cr| cr.spec.approval = Approval::Manual);
    let (cm, planning) = planning_children(&manual, RUN, 1, &config()).expect("planning");
    assert_keys_mounted(job_pod(&planning), KEYS);
    assert_eq!(task_encryption(&cm).0, secret_keys(Some(KEY_ID), None));
}

#[test]
fn a_restores_own_keys_win_over_the_kafka_backups() {
    let resolved = resolved_restore(|cr| {
        cr.spec.encryption = Some(EncryptionSpec {
            secret_ref: Some(EncryptionSecretRef {
                name: "restore-keys".into(),
                key_id: None,
            }),
            kms_key_id: None,
        })
    });
    let job = job(&resolved, RUN, &config()).expect("job");
    assert_keys_mounted(job_pod(&job), "restore-keys");
    let mounted = serde_json::to_string(&job_pod(&job).volumes).expect("volumes");
    assert!(!mounted.contains(KEYS), "{mounted}");
    let (encryption, _) = task_encryption(&task_config_map(&resolved, RUN).expect("task"));
    assert_eq!(encryption, secret_keys(None, None));
}

#[test]
fn a_restore_of_an_inline_backup_uses_its_own_keys_only() {
    let cr = kr(RESTORE_PITR_NEW_TOPIC);
    assert_no_keys_mounted(job_pod(&job(&cr, RUN, &config()).expect("job")));
    let mut own = cr.clone();
    own.spec.encryption = Some(EncryptionSpec {
        secret_ref: Some(EncryptionSecretRef {
            name: KEYS.into(),
            key_id: Some(KEY_ID.into()),
        }),
        kms_key_id: None,
    });
    assert_keys_mounted(job_pod(&job(&own, RUN, &config()).expect("job")), KEYS);
    let (encryption, _) = task_encryption(&task_config_map(&own, RUN).expect("task"));
    assert_eq!(encryption, secret_keys(Some(KEY_ID), None));
}

#[test]
fn an_encrypted_snapshot_mounts_the_secret_and_names_the_kms_key() {
    let cr = korb(ROLLBACK_ENCRYPTED);
    let job = job(&cr, RUN, &config()).expect("job");
    assert_keys_mounted(job_pod(&job), KEYS);
    let (encryption, _) = task_encryption(&task_config_map(&cr, RUN).expect("task"));
    assert_eq!(
        encryption,
        secret_keys(None, Some("alias/tidemark-snapshots"))
    );
}

#[test]
fn a_kms_key_alone_mounts_nothing_and_runs_as_the_worker_service_account() {
    // KMS is reached with the pod's own AWS credentials: IRSA annotates the worker
    // ServiceAccount, which every worker Job runs as.
    let mut cr = korb(ROLLBACK_ENCRYPTED);
    if let Some(e) = cr.spec.encryption.as_mut() {
        e.secret_ref = None;
    }
    let config = OperatorConfig {
        worker_service_account: "kafka-backup-irsa".into(),
        ..OperatorConfig::default()
    };
    let job = job(&cr, RUN, &config).expect("job");
    let pod = job_pod(&job);
    assert_no_keys_mounted(pod);
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("kafka-backup-irsa")
    );
    let (encryption, _) = task_encryption(&task_config_map(&cr, RUN).expect("task"));
    assert_eq!(
        encryption,
        Some(Encryption {
            key_file: None,
            key_id: None,
            kms_key_id: Some("alias/tidemark-snapshots".into()),
        })
    );
}

#[test]
fn encryption_with_config_map_storage_is_not_built() {
    let mut cr = korb(QUICK_SNAPSHOT);
    cr.spec.encryption = Some(EncryptionSpec {
        secret_ref: None,
        kms_key_id: Some("alias/k".into()),
    });
    let err = task_config_map(&cr, RUN).expect_err("a ConfigMap is never encrypted");
    assert!(err.to_string().contains("spec.encryption"), "{err}");
}

#[test]
fn the_key_secret_is_a_referenced_secret_named_by_its_field() {
    use crate::validate::{referenced_secrets, SecretReference};
    let backup = referenced_secrets(&kb(BACKUP_ENCRYPTED));
    assert_eq!(
        backup.last(),
        Some(&SecretReference {
            field: "spec.encryption.secretRef",
            name: KEYS.into(),
            keys: vec![],
        })
    );
    let inherited = resolved_restore(|_| {});
    assert_eq!(
        referenced_secrets(&inherited).last(),
        Some(&SecretReference {
            field: "spec.encryption.secretRef of the KafkaBackup in spec.backupRef.name",
            name: KEYS.into(),
            keys: vec![],
        })
    );
    // Mounted whole: only the Secret's existence is the kubelet's to check.
    assert_eq!(
        referenced_secrets(&korb(ROLLBACK_ENCRYPTED)).last(),
        Some(&SecretReference {
            field: "spec.encryption.secretRef",
            name: KEYS.into(),
            keys: vec![],
        })
    );
}

#[test]
fn restores_and_rollbacks_show_the_configured_key_in_their_status() {
    use crate::controller::restore::run_status;
    use crate::controller::RunKind;
    // Inherited from the KafkaBackup.
    let resolved = resolved_restore(|_| {});
    let status = run_status(&resolved.restore, resolved.source());
    assert_eq!(status.encryption_key_id.as_deref(), Some(KEY_ID));
    // Its own KMS key wins.
    let kms = resolved_restore(|cr| {
        cr.spec.encryption = Some(EncryptionSpec {
            secret_ref: None,
            kms_key_id: Some("alias/restores".into()),
        })
    });
    let status = run_status(&kms.restore, kms.source());
    assert_eq!(
        status.encryption_key_id.as_deref(),
        Some("aws-kms:alias/restores")
    );
    // A started run is not resolved again: the KafkaBackup's key id recorded then is kept.
    let mut started = resolved.restore.clone();
    started.status = Some(crate::crd::restore::KafkaRestoreStatus {
        encryption_key_id: Some(KEY_ID.into()),
        ..Default::default()
    });
    let status = run_status(&started, super::restore::backup_source(&started));
    assert_eq!(status.encryption_key_id.as_deref(), Some(KEY_ID));
    // No keys: nothing shown.
    let plain = kr(RESTORE_PITR_NEW_TOPIC);
    let status = run_status(&plain, super::restore::backup_source(&plain));
    assert_eq!(status.encryption_key_id, None);
    // A rollback: the KMS key wraps new data keys.
    let status = korb(ROLLBACK_ENCRYPTED).new_run_status();
    assert_eq!(
        status.encryption_key_id.as_deref(),
        Some("aws-kms:alias/tidemark-snapshots")
    );
    // Nothing else of the spec's keys reaches a status.
    let text = serde_json::to_string(&status).expect("status");
    assert!(!text.contains(KEYS), "{text}");
}

#[test]
fn a_reset_of_an_encrypted_backup_mounts_the_keys_and_seals_its_safety_snapshot_with_them() {
    use crate::controller::RunKind;
    let cr = kor(RESET_ENCRYPTED);
    let job = job(&cr, RUN, &config()).expect("job");
    assert_keys_mounted(job_pod(&job), KEYS);
    let cm = task_config_map(&cr, RUN).expect("task");
    let (encryption, yaml) = task_encryption(&cm);
    assert_eq!(encryption, secret_keys(Some(KEY_ID), None));
    assert!(!yaml.contains(KEYS), "{yaml}");
    match parse_task(&cm).work {
        TaskWork::OffsetReset(t) => assert!(t.snapshot_id.is_some(), "a safety snapshot: {t:?}"),
        other => panic!("an offset-reset task: {other:?}"),
    }
    let status = cr.new_run_status();
    assert_eq!(status.encryption_key_id.as_deref(), Some(KEY_ID));
    let text = serde_json::to_string(&status).expect("status");
    assert!(!text.contains(KEYS), "{text}");
}

#[test]
fn a_reset_that_uses_no_storage_mounts_no_keys_and_shows_none() {
    use crate::controller::RunKind;
    // A dry run of toEarliest reads nothing from storage and stores no snapshot.
    let mut cr: KafkaOffsetReset = kor(RESET_ENCRYPTED);
    cr.spec.reset_strategy = crate::crd::reset::ResetStrategy::ToEarliest;
    cr.spec.backup_id = None;
    cr.spec.dry_run = true;
    let job = job(&cr, RUN, &config()).expect("job");
    assert_no_keys_mounted(job_pod(&job));
    assert_nothing_else_references(job_pod(&job), KEYS);
    match parse_task(&task_config_map(&cr, RUN).expect("task")).work {
        TaskWork::OffsetReset(t) => assert_eq!(t.storage, None),
        other => panic!("an offset-reset task: {other:?}"),
    }
    assert_eq!(cr.new_run_status().encryption_key_id, None);
}

#[test]
fn a_reset_with_encryption_and_config_map_storage_is_not_built() {
    let mut cr = kor(RESET_FROM_SNAPSHOT);
    cr.spec.encryption = Some(EncryptionSpec {
        secret_ref: None,
        kms_key_id: Some("alias/k".into()),
    });
    let err = task_config_map(&cr, RUN).expect_err("a ConfigMap is never encrypted");
    assert!(err.to_string().contains("spec.encryption"), "{err}");
}

//! `tidemark run --task FILE`: runs one task document rendered by the operator and reports
//! back. Contract: the task is parsed and validated before anything is touched; a compact
//! [`TaskResult`] of at most [`MAX_RESULT_BYTES`](crate::task::MAX_RESULT_BYTES) is written to the result file (the
//! container's termination message) whatever happens — phase `Failed` with the error's label
//! and exit code on any failure; one JSON line `{"result": …, "report": …}` with the full
//! report goes to stdout (the pod log); the exit code is the documented one (README "Exit
//! codes"). A result file that cannot be written is logged and does not change the exit code.

use std::path::Path;

use chrono::{SecondsFormat, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::groups::{split_names, GroupSelector, DEFAULT_CONCURRENCY};
use crate::kafka::KafkaConfig;
pub use crate::kafka::{kafka_config, kafka_config_with};
use crate::plan::store::StoredPlan;
use crate::rollback::{RollbackReport, RunStatus, SnapshotRequest, VerifyReport};
use crate::service::backup::{interrupted_error, run_backup_task};
use crate::service::open_snapshot_store;
use crate::service::rollback::{
    rollback_exit_code, run_rollback, run_snapshot, run_verify, RollbackRequest,
};
use crate::service::signals::{stop_on_signal, stop_or_finish_on_signal, StopSignals};
use crate::snapshot::{generate_id, OffsetSnapshot};
use crate::task::{
    OffsetResetTask, OffsetRollbackTask, RestoreTask, ResultDifference, ResultError, ResultGroup,
    ResultPartitionPlan, ResultReset, ResultRestore, ResultSnapshotData, ResultVerification,
    RollbackOperation, Task, TaskResult, TaskWork, FINISH_FILE_NAME, PHASE_COMPLETED, PHASE_FAILED,
};

/// Where the result goes by default: the file Kubernetes turns into the container's
/// termination message.
pub const DEFAULT_RESULT_FILE: &str = "/dev/termination-log";

/// Environment variable overriding the result file (CLI: `--result-file`).
pub const ENV_RESULT_FILE: &str = "TIDEMARK_RESULT_FILE";

/// What a task that ran to the end produced.
#[derive(Debug, Clone)]
pub struct TaskOutcome {
    /// The compact result, before it is cut to [`MAX_RESULT_BYTES`](crate::task::MAX_RESULT_BYTES).
    pub result: TaskResult,
    /// The operation's full report: what `--format json` prints for the matching CLI verb.
    pub report: serde_json::Value,
    /// 0, or the code of the failure the report describes (10: some groups were not rolled
    /// back; 11: differences found by a strict verify or after a rollback).
    pub exit_code: i32,
}

/// Runs the task in `task_file`, writes its result to `result_file` and prints the report.
/// `Ok(code)` when the task ran (its exit code); `Err` when it could not run or failed, after
/// the failed result was written.
pub async fn run_task(task_file: &Path, result_file: &Path) -> Result<i32> {
    let mut failed = TaskResult {
        phase: PHASE_FAILED.into(),
        ..TaskResult::default()
    };
    let outcome = match load_task(task_file) {
        Err(e) => Err(e),
        Ok(task) => match &task.work {
            TaskWork::OffsetReset(t) => {
                tracing::info!(
                    source = task.source.as_deref().unwrap_or("-"),
                    operation = task.operation(),
                    strategy = t.strategy.flag(),
                    "running task"
                );
                failed.operation = Some(task.operation().to_string());
                failed.snapshot_id = t.snapshot_id.clone();
                run_offset_reset(t).await
            }
            TaskWork::Backup(t) => {
                tracing::info!(
                    source = task.source.as_deref().unwrap_or("-"),
                    operation = "backup",
                    "running task"
                );
                failed.operation = Some("backup".into());
                run_backup(t, &task_file.with_file_name(FINISH_FILE_NAME)).await
            }
            TaskWork::Restore(t) => {
                tracing::info!(
                    source = task.source.as_deref().unwrap_or("-"),
                    operation = task.operation(),
                    backup_id = %t.backup_id,
                    "running task"
                );
                failed.operation = Some(task.operation().to_string());
                run_restore(t).await
            }
            TaskWork::BackupCleanup(t) => {
                tracing::info!(source = task.source.as_deref().unwrap_or("-"), operation = "backup-cleanup", chain = %t.chain, "running task");
                failed.operation = Some("backup-cleanup".into());
                run_cleanup(t).await
            }
            TaskWork::OffsetRollback(t) => {
                // Validation guarantees an id for every operation but snapshot, where one is made
                // up now so that even a failure reports it.
                let snapshot_id = t
                    .snapshot_id
                    .clone()
                    .unwrap_or_else(|| generate_id(Utc::now()));
                tracing::info!(
                    source = task.source.as_deref().unwrap_or("-"),
                    operation = task.operation(),
                    snapshot_id = %snapshot_id,
                    "running task"
                );
                failed.operation = Some(task.operation().to_string());
                failed.snapshot_id = Some(snapshot_id.clone());
                run_offset_rollback(t, &snapshot_id).await
            }
            TaskWork::Drill(t) => {
                tracing::info!(
                    source = task.source.as_deref().unwrap_or("-"),
                    operation = "drill",
                    "running task"
                );
                failed.operation = Some("drill".into());
                run_drill(t).await
            }
        },
    };
    let (result, report, ret) = match outcome {
        Ok(o) => (o.result, o.report, Ok(o.exit_code)),
        Err(e) => {
            failed.message = e.to_string();
            failed.error = Some(result_error(&e));
            (failed, serde_json::Value::Null, Err(e))
        }
    };
    let bounded = result.to_bounded_json();
    write_result(result_file, &bounded);
    let written: serde_json::Value =
        serde_json::from_slice(&bounded).unwrap_or(serde_json::Value::Null);
    println!(
        "{}",
        serde_json::json!({ "result": written, "report": report })
    );
    ret
}

/// How often a continuous backup looks for the finish request.
pub const FINISH_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Watches for `path` (the operator's finish request, [`FINISH_FILE_NAME`]) every
/// [`FINISH_POLL`]: once it exists, the backup is asked to finish as Ctrl-C asks it (it stores
/// what it read and writes its manifest). Stops watching when the backup stops for another
/// reason.
fn finish_on_request(path: std::path::PathBuf, signals: StopSignals) {
    use std::sync::atomic::Ordering;
    tokio::spawn(async move {
        while !signals.stop.load(Ordering::SeqCst) {
            if path.exists() {
                tracing::warn!(file = %path.display(), "finish requested: storing what was read and writing the manifest");
                signals.finish.store(true, Ordering::SeqCst);
                signals.stop.store(true, Ordering::SeqCst);
                return;
            }
            tokio::time::sleep(FINISH_POLL).await;
        }
    });
}

/// Reads, parses and validates a task document.
pub fn load_task(path: &Path) -> Result<Task> {
    let data = crate::limits::read_limited(path, crate::limits::MAX_TASK_BYTES)?;
    let task = Task::parse(&data, &path.display().to_string())?;
    task.validate()?;
    Ok(task)
}

/// Writes the result; a failure is logged, never fatal (the exit code still tells the outcome).
fn write_result(path: &Path, data: &[u8]) {
    if let Err(e) = std::fs::write(path, data) {
        tracing::error!(
            path = %path.display(),
            error = %e,
            "failed to write the task result; the exit code still reports the outcome"
        );
    }
}

fn result_error(e: &Error) -> ResultError {
    ResultError {
        kind: e.label().to_string(),
        exit_code: e.exit_code(),
    }
}

fn to_report<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// Runs an offset reset (plan only when `dryRun`; the stored plan only with `planOut`; exactly
/// the approved plan with `approvedPlan`) and turns its report into the result.
async fn run_offset_reset(t: &OffsetResetTask) -> Result<TaskOutcome> {
    use crate::service::reset::{plan_reset_task, run_approved_reset_task, run_reset_task};
    if let Some(key) = &t.plan_out {
        return Ok(plan_outcome("reset-plan", plan_reset_task(t, key).await?));
    }
    if let Some(approved) = &t.approved_plan {
        let (report, stored) = run_approved_reset_task(t, approved).await?;
        return Ok(with_plan(reset_outcome(&report), &stored));
    }
    Ok(reset_outcome(&run_reset_task(t).await?))
}

/// The result of a task that only planned: the plan's bounded summary; nothing changed.
fn plan_outcome(operation: &str, stored: StoredPlan) -> TaskOutcome {
    let plan = stored.doc.result(&stored.hash, &stored.key);
    TaskOutcome {
        result: TaskResult {
            phase: PHASE_COMPLETED.into(),
            operation: Some(operation.into()),
            message: format!(
                "Plan {} stored at {}: {}; nothing was changed",
                stored.hash, stored.key, stored.doc.summary
            ),
            plan: Some(plan),
            ..TaskResult::default()
        },
        report: to_report(&serde_json::json!({
            "hash": stored.hash,
            "key": stored.key,
            "plan": stored.doc,
        })),
        exit_code: 0,
    }
}

/// `outcome` of executing the approved plan `stored`: its result names the plan.
fn with_plan(mut outcome: TaskOutcome, stored: &StoredPlan) -> TaskOutcome {
    outcome.result.plan = Some(stored.doc.result(&stored.hash, &stored.key));
    outcome
}

/// A reset is `Failed` with exit 10 when any group was not reset; a dry run always completes.
fn reset_outcome(report: &crate::reset::ResetReport) -> TaskOutcome {
    let failed: Vec<String> = report
        .outcomes_failed_first()
        .into_iter()
        .filter(|o| o.status == "failed")
        .map(|o| format!("{}: {}", o.group, o.error.as_deref().unwrap_or("failed")))
        .collect();
    let mut message = if report.dry_run {
        format!(
            "Dry run ({}): {} to change in {} of {}; nothing changed",
            report.strategy,
            count(report.partitions_planned, "partition"),
            report.successful_groups,
            count(report.total_groups, "group")
        )
    } else {
        format!(
            "Reset {} of {} ({}, {})",
            report.successful_groups,
            count(report.total_groups, "group"),
            count(report.total_offsets_reset, "offset"),
            report.strategy
        )
    };
    if let Some(id) = &report.snapshot_id {
        message.push_str(&format!("; safety snapshot {id}"));
    }
    if !failed.is_empty() {
        message.push_str(&format!("; not reset: {}", failed.join("; ")));
    }
    let failure = (!report.dry_run && report.status != crate::reset::ResetStatus::Success)
        .then(|| Error::Partial(message.clone()));
    let group_results: Vec<ResultGroup> = report
        .outcomes_failed_first()
        .into_iter()
        .map(|o| ResultGroup {
            group: o.group.clone(),
            status: match o.status {
                "success" => "reset".to_string(),
                other => other.to_string(),
            },
            partitions: if report.dry_run {
                o.partitions.iter().filter(|p| p.changes()).count() as u64
            } else {
                o.offsets_reset as u64
            },
            error: o.error.clone(),
            plan: if report.dry_run {
                result_plan(&o.partitions)
            } else {
                Vec::new()
            },
        })
        .collect();
    finish(
        TaskResult {
            phase: PHASE_COMPLETED.into(),
            operation: Some(
                if report.dry_run {
                    "reset-plan"
                } else {
                    "reset"
                }
                .into(),
            ),
            snapshot_id: report.snapshot_id.clone(),
            message,
            groups_failed: Some(report.failed_groups as u64),
            reset: Some(ResultReset {
                dry_run: report.dry_run,
                groups_total: report.total_groups as u64,
                groups_reset: report.successful_groups as u64,
                groups_failed: report.failed_groups as u64,
                partitions_planned: report.partitions_planned as u64,
                offsets_reset: report.total_offsets_reset as u64,
                offsets_per_second: report.performance.offsets_per_second.round() as u64,
                total_group_results: group_results.len() as u64,
                group_results,
            }),
            ..TaskResult::default()
        },
        to_report(report),
        failure,
    )
}

/// Runs one shard of a backup. An interrupted run (SIGTERM) reports `Failed` with the
/// `backup_interrupted` error, its checkpoint time and lag, and exits 75: resumable. A
/// continuous backup also finishes (manifest, exit 0) once `finish_file` appears
/// ([`finish_on_request`]).
async fn run_backup(t: &crate::task::BackupTask, finish_file: &Path) -> Result<TaskOutcome> {
    let signals = stop_or_finish_on_signal();
    if t.mode == crate::task::BackupMode::Continuous {
        finish_on_request(finish_file.to_path_buf(), signals.clone());
    }
    let r = run_backup_task(t, None, signals, Default::default()).await?;
    let shard = if r.shard_count > 1 {
        format!(" shard {} of {}", r.shard_index + 1, r.shard_count)
    } else {
        String::new()
    };
    let mut message = if r.interrupted {
        interrupted_error(&r).to_string()
    } else if r.already_complete {
        format!(
            "Backup {} shard {} of {} was already complete",
            r.backup_id,
            r.shard_index + 1,
            r.shard_count
        )
    } else {
        format!(
            "Backup {}{shard}: {} in {} of {}, {} stored in {}",
            r.backup_id,
            count(r.records as usize, "record"),
            count(r.partitions as usize, "partition"),
            count(r.topics as usize, "topic"),
            r.stored_bytes,
            count(r.segments as usize, "segment"),
        )
    };
    if !r.discontinuities.is_empty() {
        message += &format!(
            "; {}",
            crate::backup::manifest::describe_discontinuities(&r.discontinuities)
        );
    }
    if r.gaps.unexplained > 0 {
        message.push_str(&format!(
            "; {} offsets hold no record and nothing explains it",
            r.gaps.unexplained
        ));
    }
    let (phase, error, exit_code) = if r.interrupted {
        let e = interrupted_error(&r);
        (PHASE_FAILED, Some(result_error(&e)), e.exit_code())
    } else {
        (PHASE_COMPLETED, None, 0)
    };
    Ok(TaskOutcome {
        result: TaskResult {
            phase: phase.into(),
            operation: Some("backup".into()),
            message,
            backup: Some(crate::task::ResultBackup {
                backup_id: r.backup_id.clone(),
                complete: r.complete,
                topics: r.topics,
                partitions: r.partitions,
                records: r.records,
                bytes: r.bytes,
                stored_bytes: r.stored_bytes,
                segments: r.segments,
                groups_captured: r.groups_captured,
                encryption_key_id: r.encryption_key_id.clone(),
                discontinuities: r.discontinuities.len() as u64,
                gap_offsets: r.gaps.offsets,
                unexplained_gap_offsets: r.gaps.unexplained,
                checkpoint_time: r
                    .checkpoint_at
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
                lag: r.lag,
                ..Default::default()
            }),
            error,
            ..TaskResult::default()
        },
        report: to_report(&r),
        exit_code,
    })
}

/// A restore drill: its report once it has started, whether it verified or not.
async fn run_drill(t: &crate::task::DrillTask) -> Result<TaskOutcome> {
    let report = crate::drill::run_drill(t, None, stop_on_signal()).await?;
    Ok(TaskOutcome {
        result: report.to_result(),
        report: to_report(&report),
        exit_code: report.exit_code(),
    })
}

/// The operator's restore task: a dry run validates; `planOut` plans; `approvedPlan` runs
/// exactly the approved plan; otherwise the restore runs.
async fn run_restore(t: &RestoreTask) -> Result<TaskOutcome> {
    use crate::plan::store::PlanLocation;
    use crate::service::restore::{plan_restore, run_approved_restore};
    if let Some(key) = &t.plan_out {
        let location = PlanLocation::in_task_storage(&t.storage, key, "planOut")?;
        let (v, stored) = plan_restore(t, None, &location).await?;
        let mut o = plan_outcome("validate-restore", stored);
        o.result.restore = Some(ResultRestore {
            restore_id: v.restore_id.clone(),
            dry_run: true,
            topics: v.topics_to_restore as u64,
            partitions: v.partitions_to_restore as u64,
            records_total: v.records_to_restore,
            bytes_total: v.bytes_to_restore,
            validation: Some(validation_line(&v)),
            ..ResultRestore::default()
        });
        return Ok(o);
    }
    if let Some(approved) = &t.approved_plan {
        let location =
            PlanLocation::in_task_storage(&t.storage, &approved.key, "approvedPlan.key")?;
        let stop = stop_on_signal();
        let (r, stored) = run_approved_restore(
            t,
            None,
            &location,
            Some(&approved.hash),
            stop,
            Default::default(),
        )
        .await?;
        return Ok(with_plan(restore_outcome(&r), &stored));
    }
    if t.dry_run {
        let v = crate::service::restore::validate_task(t, None).await;
        let message = validation_line(&v);
        let report = serde_json::to_value(&v).unwrap_or_default();
        if !v.valid {
            return Err(Error::invalid(message));
        }
        return Ok(TaskOutcome {
            result: TaskResult {
                phase: PHASE_COMPLETED.into(),
                operation: Some("validate-restore".into()),
                message: message.clone(),
                restore: Some(ResultRestore {
                    restore_id: v.restore_id.clone(),
                    dry_run: true,
                    complete: false,
                    topics: v.topics_to_restore as u64,
                    partitions: v.partitions_to_restore as u64,
                    records_total: v.records_to_restore,
                    bytes_total: v.bytes_to_restore,
                    validation: Some(message),
                    ..ResultRestore::default()
                }),
                ..TaskResult::default()
            },
            report,
            exit_code: 0,
        });
    }
    let stop = stop_on_signal();
    let r = crate::service::restore::run_restore_task(t, None, stop, Default::default()).await?;
    Ok(restore_outcome(&r))
}

/// What a restore that ran reports.
fn restore_outcome(r: &crate::service::restore::FullReport) -> TaskOutcome {
    let g = r.consumer_groups.as_ref();
    let message = format!(
        "Restore {} of backup {}: {} of {} records in {} partitions{}{}",
        r.restore.restore_id,
        r.restore.backup_id,
        r.restore.records,
        r.restore.records_total,
        r.restore.partitions,
        if r.restore.already_complete {
            " (already complete)"
        } else {
            ""
        },
        match g {
            Some(g) => format!(
                "; {} of {} groups translated ({}), {} failed",
                g.groups_translated, g.groups_total, g.strategy, g.groups_failed
            ),
            None => String::new(),
        }
    );
    let exit_code = crate::service::restore::exit_code(r);
    TaskOutcome {
        result: TaskResult {
            phase: PHASE_COMPLETED.into(),
            operation: Some("restore".into()),
            snapshot_id: g
                .and_then(|g| g.reset.as_ref())
                .and_then(|r| r.snapshot_id.clone()),
            message,
            restore: Some(ResultRestore {
                restore_id: r.restore.restore_id.clone(),
                dry_run: false,
                complete: r.restore.complete,
                topics: r.restore.topics,
                partitions: r.restore.partitions,
                records_total: r.restore.records_total,
                records_restored: r.restore.records,
                bytes_total: r.restore.bytes_total,
                bytes_restored: r.restore.bytes,
                offset_mapping: Some(r.restore.offset_mapping.clone()),
                groups_translated: g.map_or(0, |g| g.groups_translated as u64),
                groups_failed: g.map_or(0, |g| g.groups_failed as u64),
                validation: None,
            }),
            ..TaskResult::default()
        },
        report: serde_json::to_value(r).unwrap_or_default(),
        exit_code,
    }
}

fn validation_line(v: &crate::restore::plan::ValidationReport) -> String {
    if v.valid {
        format!(
            "Restore of backup {} is valid: {} records ({}) in {} partitions of {} topics",
            v.backup_id,
            v.records_to_restore,
            crate::restore::plan::human_bytes(v.bytes_to_restore),
            v.partitions_to_restore,
            v.topics_to_restore
        )
    } else {
        format!(
            "Restore of backup {} is invalid: {}",
            v.backup_id,
            v.reasons().join("; ")
        )
    }
}

/// Applies retention to a backup chain.
async fn run_cleanup(t: &crate::task::BackupCleanupTask) -> Result<TaskOutcome> {
    use crate::task::MAX_RESULT_IDS;
    let r = crate::service::backup::run_cleanup_task(t).await?;
    let mut message = format!(
        "Retention for chain {}: deleted {}, kept {}",
        r.chain,
        count(r.deleted.len(), "backup"),
        count(r.kept.len(), "backup")
    );
    if !r.deleted.is_empty() {
        message.push_str(&format!(" (deleted: {})", r.deleted.join(", ")));
    }
    if !r.damaged.is_empty() {
        message.push_str(&format!(
            "; damaged, not counted as kept: {}",
            r.damaged.join(", ")
        ));
    }
    Ok(TaskOutcome {
        result: TaskResult {
            phase: PHASE_COMPLETED.into(),
            operation: Some("backup-cleanup".into()),
            message,
            backup: Some(crate::task::ResultBackup {
                deleted: r.deleted.iter().take(MAX_RESULT_IDS).cloned().collect(),
                deleted_total: r.deleted.len() as u64,
                damaged: r.damaged.iter().take(MAX_RESULT_IDS).cloned().collect(),
                ..Default::default()
            }),
            ..TaskResult::default()
        },
        report: to_report(&r),
        exit_code: 0,
    })
}

/// Runs one offset-rollback operation against the snapshot `snapshot_id`.
async fn run_offset_rollback(t: &OffsetRollbackTask, snapshot_id: &str) -> Result<TaskOutcome> {
    let store = open_snapshot_store(&t.storage).await?;
    let base = TaskResult {
        phase: PHASE_COMPLETED.into(),
        operation: Some(t.operation.as_str().to_string()),
        snapshot_id: Some(snapshot_id.to_string()),
        ..TaskResult::default()
    };
    match t.operation {
        RollbackOperation::Snapshot => {
            let selector = GroupSelector::new(&t.consumer_groups, None, false)?;
            let req = SnapshotRequest {
                selector,
                snapshot_id: Some(snapshot_id.to_string()),
                description: t.description.clone(),
                concurrency: DEFAULT_CONCURRENCY,
            };
            let outcome = run_snapshot(&store, &req, || task_kafka(t)).await?;
            Ok(TaskOutcome {
                result: TaskResult {
                    message: format!(
                        "Snapshot {snapshot_id} created successfully: {}, {}",
                        count(outcome.groups, "group"),
                        count(outcome.offsets, "partition")
                    ),
                    snapshot_data: Some(ResultSnapshotData {
                        groups: outcome.groups as u64,
                        total_partitions: outcome.offsets as u64,
                        timestamp: outcome.created_at.clone(),
                    }),
                    ..base
                },
                report: to_report(&outcome),
                exit_code: 0,
            })
        }
        RollbackOperation::Rollback if t.plan_out.is_some() || t.approved_plan.is_some() => {
            rollback_with_plan(t, &store, snapshot_id, base).await
        }
        RollbackOperation::Rollback => {
            let req = RollbackRequest {
                snapshot_id: snapshot_id.to_string(),
                groups: split_names(&t.consumer_groups),
                verify: t.verify_after_rollback,
                concurrency: DEFAULT_CONCURRENCY,
                safety_snapshot_id: t.safety_snapshot_id.clone(),
                reuse_safety_snapshot: t.safety_snapshot_id.is_some(),
            };
            let (snap, report) = run_rollback(&store, &req, || task_kafka(t)).await?;
            Ok(rollback_outcome(base, &snap, &report))
        }
        RollbackOperation::Verify => {
            let only = split_names(&t.consumer_groups);
            let (snap, report) = run_verify(
                &store,
                snapshot_id,
                &only,
                t.strict,
                DEFAULT_CONCURRENCY,
                || task_kafka(t),
            )
            .await?;
            Ok(verify_outcome(base, &snap, &report))
        }
        RollbackOperation::Delete => {
            store.delete(snapshot_id).await?;
            Ok(TaskOutcome {
                result: TaskResult {
                    message: format!("Snapshot {snapshot_id} deleted from {}", store.location()),
                    ..base
                },
                report: serde_json::json!({
                    "status": "deleted",
                    "snapshot_id": snapshot_id,
                    "path": store.location(),
                }),
                exit_code: 0,
            })
        }
    }
}

/// A rollback task with `planOut` (plan only) or `approvedPlan` (exactly that plan).
async fn rollback_with_plan(
    t: &OffsetRollbackTask,
    store: &crate::snapshot::SnapshotStore,
    snapshot_id: &str,
    base: TaskResult,
) -> Result<TaskOutcome> {
    use crate::plan::store::PlanLocation;
    use crate::plan::PlanKind;
    use crate::service::rollback::{plan_rollback_to, run_approved_rollback};
    if let Some(key) = &t.plan_out {
        let location = PlanLocation::in_task_storage(&t.storage, key, "planOut")?;
        let req = RollbackRequest {
            snapshot_id: snapshot_id.to_string(),
            groups: split_names(&t.consumer_groups),
            verify: t.verify_after_rollback,
            concurrency: DEFAULT_CONCURRENCY,
            safety_snapshot_id: t.safety_snapshot_id.clone(),
            reuse_safety_snapshot: false,
        };
        let stored = plan_rollback_to(store, &req, &location, || task_kafka(t)).await?;
        let mut o = plan_outcome("rollback-plan", stored);
        o.result.snapshot_id = Some(snapshot_id.to_string());
        return Ok(o);
    }
    let Some(approved) = &t.approved_plan else {
        return Err(Error::invalid(
            "a rollback task without planOut or approvedPlan",
        ));
    };
    let location = PlanLocation::in_task_storage(&t.storage, &approved.key, "approvedPlan.key")?;
    let stored = location
        .read_approved(Some(&approved.hash), PlanKind::OffsetRollback)
        .await?;
    let (snap, report) = run_approved_rollback(
        store,
        &stored,
        t.verify_after_rollback,
        DEFAULT_CONCURRENCY,
        true,
        || task_kafka(t),
    )
    .await?;
    Ok(with_plan(rollback_outcome(base, &snap, &report), &stored))
}

/// A verify is `Failed` (exit 11) only when strict; a non-strict verify that finds
/// differences is `Completed` with `matched: false` and exit 0.
fn verify_outcome(base: TaskResult, snap: &OffsetSnapshot, report: &VerifyReport) -> TaskOutcome {
    let id = &report.snapshot_id;
    let mode = if report.strict { " (strict)" } else { "" };
    let message = if report.matched {
        format!(
            "Offsets match snapshot {id}{mode}: {} of {} checked",
            count(report.partitions_checked, "partition"),
            count(report.groups_verified, "group")
        )
    } else {
        format!(
            "Mismatch with snapshot {id}{mode}: {} of {} in {} of {}",
            report.differences.len(),
            count(report.partitions_checked, "partition"),
            report.groups_mismatched,
            count(report.groups_verified, "group")
        )
    };
    let failure =
        (!report.matched && report.strict).then(|| Error::VerificationFailed(message.clone()));
    finish(
        TaskResult {
            message,
            snapshot_data: Some(snapshot_data(snap)),
            verification: Some(verification(report)),
            ..base
        },
        to_report(report),
        failure,
    )
}

/// A rollback is `Failed` with exit 10 when any group was not rolled back, and with exit 11
/// when the verification that followed found differences.
fn rollback_outcome(
    base: TaskResult,
    snap: &OffsetSnapshot,
    report: &RollbackReport,
) -> TaskOutcome {
    let id = &report.snapshot_id;
    let differences = report
        .verification
        .as_ref()
        .map_or(0, |v| v.differences.len());
    let message = if report.status != RunStatus::Success {
        let failed: Vec<String> = report
            .group_outcomes
            .iter()
            .filter(|o| o.status != "success")
            .map(|o| format!("{}: {}", o.group, o.error.as_deref().unwrap_or("failed")))
            .collect();
        format!(
            "Rolled back {} of {} to snapshot {id}; failed: {}",
            report.groups_rolled_back,
            count(report.total_groups, "group"),
            failed.join("; ")
        )
    } else if differences > 0 {
        format!(
            "Rolled back {} to snapshot {id}, but the check afterwards found {} differing",
            count(report.groups_rolled_back, "group"),
            count(differences, "partition")
        )
    } else {
        format!(
            "Rolled back {} ({}) to snapshot {id}{}",
            count(report.groups_rolled_back, "group"),
            count(report.offsets_restored, "offset"),
            if report.verification.is_some() {
                "; verified"
            } else {
                ""
            }
        )
    };
    let message = match &report.safety_snapshot_id {
        Some(safety) => format!("{message}; the offsets it replaced are in snapshot {safety}"),
        None => message,
    };
    let failure = match rollback_exit_code(report) {
        0 => None,
        10 => Some(Error::Partial(message.clone())),
        _ => Some(Error::VerificationFailed(message.clone())),
    };
    finish(
        TaskResult {
            message,
            snapshot_data: Some(snapshot_data(snap)),
            verification: report.verification.as_ref().map(verification),
            groups_rolled_back: Some(report.groups_rolled_back as u64),
            groups_failed: Some(report.groups_failed as u64),
            safety_snapshot_id: report.safety_snapshot_id.clone(),
            ..base
        },
        to_report(report),
        failure,
    )
}

/// Sets the phase, error and exit code from `failure`.
fn finish(
    mut result: TaskResult,
    report: serde_json::Value,
    failure: Option<Error>,
) -> TaskOutcome {
    let exit_code = match &failure {
        Some(e) => {
            result.phase = PHASE_FAILED.into();
            result.error = Some(result_error(e));
            e.exit_code()
        }
        None => 0,
    };
    TaskOutcome {
        result,
        report,
        exit_code,
    }
}

/// The first partitions a group's plan changes, as a result lists them.
fn result_plan(partitions: &[crate::reset::PartitionPlan]) -> Vec<ResultPartitionPlan> {
    use crate::reset::Action;
    partitions
        .iter()
        .filter(|p| p.changes())
        .take(crate::task::MAX_RESULT_PLAN_PARTITIONS)
        .map(|p| ResultPartitionPlan {
            topic: p.topic.clone(),
            partition: p.partition,
            current: p.current,
            target: p.target,
            action: match p.action {
                Action::Set => "set",
                Action::Forward => "forward",
                Action::Rewind => "rewind",
                Action::Unchanged => "unchanged",
            }
            .into(),
        })
        .collect()
}

/// `1 group`, `2 groups`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn snapshot_data(snap: &OffsetSnapshot) -> ResultSnapshotData {
    ResultSnapshotData {
        groups: snap.groups.len() as u64,
        total_partitions: snap.offset_count() as u64,
        timestamp: snap.timestamp.to_rfc3339_opts(SecondsFormat::Secs, true),
    }
}

fn verification(v: &VerifyReport) -> ResultVerification {
    ResultVerification {
        matched: v.matched,
        total_differences: v.differences.len() as u64,
        differences: v
            .differences
            .iter()
            .map(|d| ResultDifference {
                group: d.group.clone(),
                topic: d.topic.clone(),
                partition: d.partition,
                expected: d.expected,
                actual: d.actual,
            })
            .collect(),
    }
}

/// The connection of an offset-rollback task, which needs one for every operation but delete.
fn task_kafka(t: &OffsetRollbackTask) -> Result<KafkaConfig> {
    let kafka = t.kafka.as_ref().ok_or_else(|| {
        Error::invalid(format!(
            "task field 'kafka' is required for operation {}",
            t.operation.as_str()
        ))
    })?;
    kafka_config(kafka)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollback::{GroupOutcome, OffsetDifference};

    fn snap() -> OffsetSnapshot {
        OffsetSnapshot::from_json(
            br#"{"snapshotId": "s1", "timestamp": "2024-12-01T12:00:00Z", "cluster": "k:9092",
                 "groups": {"a": {"topics": {"t": {"0": {"offset": 5}, "1": {"offset": 6}}}},
                            "b": {"topics": {"t": {"0": {"offset": 7}}}}}}"#,
            "s1.json",
        )
        .expect("snapshot")
    }

    fn base() -> TaskResult {
        TaskResult {
            phase: PHASE_COMPLETED.into(),
            operation: Some("verify".into()),
            snapshot_id: Some("s1".into()),
            ..TaskResult::default()
        }
    }

    fn verify_report(strict: bool, differences: usize) -> VerifyReport {
        VerifyReport {
            snapshot_id: "s1".into(),
            matched: differences == 0,
            strict,
            groups_verified: 2,
            groups_mismatched: usize::from(differences > 0),
            partitions_checked: 3,
            differences: (0..differences)
                .map(|p| OffsetDifference {
                    group: "a".into(),
                    topic: "t".into(),
                    partition: p as i32,
                    expected: Some(5),
                    actual: None,
                })
                .collect(),
            duration_ms: 1,
        }
    }

    #[test]
    fn verify_fails_only_when_strict() {
        let ok = verify_outcome(base(), &snap(), &verify_report(true, 0));
        assert_eq!((ok.result.phase.as_str(), ok.exit_code), ("Completed", 0));
        assert_eq!(
            ok.result.snapshot_data,
            Some(ResultSnapshotData {
                groups: 2,
                total_partitions: 3,
                timestamp: "2024-12-01T12:00:00Z".into()
            })
        );

        let lenient = verify_outcome(base(), &snap(), &verify_report(false, 2));
        assert_eq!(
            (lenient.result.phase.as_str(), lenient.exit_code),
            ("Completed", 0)
        );
        let v = lenient.result.verification.expect("verification");
        assert!(!v.matched);
        assert_eq!(v.total_differences, 2);
        assert!(lenient.result.error.is_none());

        let strict = verify_outcome(base(), &snap(), &verify_report(true, 2));
        assert_eq!(
            (strict.result.phase.as_str(), strict.exit_code),
            ("Failed", 11)
        );
        let err = strict.result.error.expect("error");
        assert_eq!(
            (err.kind.as_str(), err.exit_code),
            ("verification_failed", 11)
        );
        assert!(
            strict.result.message.starts_with(
                "Mismatch with snapshot s1 (strict): 2 of 3 partitions in 1 of 2 groups"
            ),
            "{}",
            strict.result.message
        );
    }

    fn rollback_report(failed: usize, verification: Option<VerifyReport>) -> RollbackReport {
        let outcome = |group: &str, ok: bool| {
            GroupOutcome {
            group: group.into(),
            status: if ok { "success" } else { "failed" },
            state: Some(if ok { "Empty" } else { "Stable" }.into()),
            offsets: if ok { 2 } else { 0 },
            error: (!ok).then(|| format!("Assignments can only be reset if the group '{group}' is inactive, but the current state is Stable.")),
            partition_errors: Vec::new(),
            duration_ms: 1,
        }
        };
        RollbackReport {
            status: match failed {
                0 => RunStatus::Success,
                1 => RunStatus::PartialSuccess,
                _ => RunStatus::Failed,
            },
            snapshot_id: "s1".into(),
            snapshot_created_at: "2024-12-01T12:00:00Z".into(),
            safety_snapshot_id: Some("before-s1".into()),
            safety_snapshot_path: Some("/backups".into()),
            total_groups: 2,
            groups_rolled_back: 2 - failed,
            groups_failed: failed,
            offsets_restored: 2 * (2 - failed),
            duration_ms: 1,
            group_outcomes: vec![outcome("a", failed < 2), outcome("b", failed == 0)],
            verification,
            warnings: Vec::new(),
        }
    }

    #[test]
    fn rollback_phases_and_codes() {
        let ok = rollback_outcome(
            base(),
            &snap(),
            &rollback_report(0, Some(verify_report(false, 0))),
        );
        assert_eq!((ok.result.phase.as_str(), ok.exit_code), ("Completed", 0));
        assert_eq!(ok.result.groups_rolled_back, Some(2));
        assert_eq!(ok.result.groups_failed, Some(0));
        assert!(
            ok.result
                .message
                .ends_with("; verified; the offsets it replaced are in snapshot before-s1"),
            "{}",
            ok.result.message
        );
        assert_eq!(ok.result.safety_snapshot_id.as_deref(), Some("before-s1"));

        let partial = rollback_outcome(base(), &snap(), &rollback_report(1, None));
        assert_eq!(
            (partial.result.phase.as_str(), partial.exit_code),
            ("Failed", 10)
        );
        assert_eq!(
            partial.result.error.as_ref().map(|e| e.kind.as_str()),
            Some("partial_failure")
        );
        assert!(
            partial.result.message.contains("Rolled back 1 of 2 groups to snapshot s1; failed: b: Assignments can only be reset"),
            "{}",
            partial.result.message
        );

        let drifted = rollback_outcome(
            base(),
            &snap(),
            &rollback_report(0, Some(verify_report(false, 1))),
        );
        assert_eq!(
            (drifted.result.phase.as_str(), drifted.exit_code),
            ("Failed", 11)
        );
        assert_eq!(
            drifted.result.verification.map(|v| v.total_differences),
            Some(1)
        );
    }
}

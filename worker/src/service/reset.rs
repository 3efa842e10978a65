//! Offset resets as use cases: a reset task in, a [`ResetReport`] out; the strategy of a task
//! or of the CLI's flags turned into the planner's form ([`resolve_strategy`]).

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::Utc;

use super::open_snapshot_store;
use crate::error::{Error, Result};
use crate::groups::{split_names, GroupSelector};
use crate::kafka::{kafka_config, GroupAdmin};
use crate::plan::check::check_preconditions;
use crate::plan::reset::{reset_document, reset_plan_of};
use crate::plan::store::{PlanLocation, StoredPlan};
use crate::plan::PlanKind;
use crate::reset::csv::{parse_reset_csv, CsvOffset};
use crate::reset::engine::{
    dry_run_report, execute, prepare, ResetReport, ResetRequest, SafetySnapshot,
};
use crate::reset::plan::{Explicit, ResetPlan, Strategy};
use crate::reset::spec::{parse_datetime, parse_duration, parse_topic_scope};
use crate::restore::groups::explicit_from_backup;
use crate::snapshot::generate_id;
use crate::snapshot::{OffsetSnapshot, SnapshotStore};
use crate::storage::{open_location, Storage};
use crate::task::{ApprovedPlan, OffsetResetTask, ResetStrategy};

/// The report of a prepared plan: the plan alone (`dry_run`), else the change, after the
/// safety snapshot. What `offset-reset execute`, `offset-reset-bulk` and a reset task do.
pub async fn apply(
    admin: &GroupAdmin,
    plan: &ResetPlan,
    safety: &SafetySnapshot,
    req: &ResetRequest,
    dry_run: bool,
    started: Instant,
) -> Result<ResetReport> {
    if dry_run {
        Ok(dry_run_report(plan, started))
    } else {
        execute(admin, plan, safety, req, started).await
    }
}

/// Runs an offset reset task: the plan only when `dryRun`, else the change. The safety
/// snapshot goes to the task's storage under the task's `snapshotId`; a retried Job finds it
/// there and keeps it.
pub async fn run_reset_task(t: &OffsetResetTask) -> Result<ResetReport> {
    let started = Instant::now();
    let store = match &t.storage {
        Some(s) => Some(open_snapshot_store(s).await?),
        None => None,
    };
    let req = task_request(t, store.as_ref(), !t.dry_run).await?;
    let safety = match (&store, t.snapshot_before_reset && !t.dry_run) {
        (Some(store), true) => SafetySnapshot::Take {
            store: store.clone(),
            id: t.snapshot_id.clone(),
            reuse_existing: true,
            description: t.snapshot_description.clone(),
        },
        (None, true) => {
            return Err(Error::invalid(
                "task field 'storage' is required for the safety snapshot (or set snapshotBeforeReset: false)",
            ))
        }
        (_, false) => SafetySnapshot::Skip,
    };
    let admin = GroupAdmin::connect(&kafka_config(&t.kafka)?).await?;
    let plan = prepare(&admin, &req).await?;
    apply(&admin, &plan, &safety, &req, t.dry_run, started).await
}

/// A reset task with `planOut`: plans as a dry run does and stores the plan under that key of
/// the task's storage (created once: a re-run keeps the plan there). Changes nothing in Kafka.
pub async fn plan_reset_task(t: &OffsetResetTask, key: &str) -> Result<StoredPlan> {
    let storage = t
        .storage
        .as_ref()
        .ok_or_else(|| Error::invalid("task field 'planOut' needs task field 'storage'"))?;
    let location = PlanLocation::in_task_storage(storage, key, "planOut")?;
    let store = open_snapshot_store(storage).await?;
    let req = task_request(t, Some(&store), false).await?;
    let admin = GroupAdmin::connect(&kafka_config(&t.kafka)?).await?;
    let plan = prepare(&admin, &req).await?;
    let safety_id = t.snapshot_before_reset.then(|| {
        t.snapshot_id
            .clone()
            .unwrap_or_else(|| generate_id(Utc::now()))
    });
    location.write(&reset_document(&plan, safety_id)).await
}

/// A reset task with `approvedPlan`: executes exactly the stored plan (see
/// [`execute_approved_reset`]); the safety snapshot it names goes to the task's storage.
pub async fn run_approved_reset_task(
    t: &OffsetResetTask,
    approved: &ApprovedPlan,
) -> Result<(ResetReport, StoredPlan)> {
    let storage = t
        .storage
        .as_ref()
        .ok_or_else(|| Error::invalid("task field 'approvedPlan' needs task field 'storage'"))?;
    let location = PlanLocation::in_task_storage(storage, &approved.key, "approvedPlan.key")?;
    let stored = location
        .read_approved(Some(&approved.hash), PlanKind::OffsetReset)
        .await?;
    let store = open_snapshot_store(storage).await?;
    let admin = GroupAdmin::connect(&kafka_config(&t.kafka)?).await?;
    let safety = approved_safety(&stored, Some(store), true, t.snapshot_description.clone())?;
    let report = execute_approved_reset(
        &admin,
        &stored,
        &safety,
        t.max_concurrent,
        t.max_retries,
        t.dry_run,
    )
    .await?;
    Ok((report, stored))
}

/// The safety snapshot an approved reset or rollback plan names, stored in `store`
/// (`reuse_existing`: a retried Job keeps what its first attempt stored).
pub fn approved_safety(
    stored: &StoredPlan,
    store: Option<SnapshotStore>,
    reuse_existing: bool,
    description: Option<String>,
) -> Result<SafetySnapshot> {
    let id = stored
        .doc
        .offsets
        .as_ref()
        .and_then(|o| o.safety_snapshot_id.clone());
    match (id, store) {
        (None, _) => Ok(SafetySnapshot::Skip),
        (Some(id), Some(store)) => Ok(SafetySnapshot::Take {
            store,
            id: Some(id),
            reuse_existing,
            description,
        }),
        (Some(id), None) => Err(Error::invalid(format!(
            "the approved plan takes safety snapshot '{id}' first: pass --path, where it is stored"
        ))),
    }
}

/// Executes an approved reset plan: its preconditions are checked against the cluster (any
/// difference is [`Error::PlanChanged`], nothing changed), then exactly its target offsets are
/// committed after its safety snapshot; `dry_run` stops after the check. When the safety
/// snapshot is reused and already stored (a retried Job), offsets already at the plan's targets
/// are accepted.
pub async fn execute_approved_reset(
    admin: &GroupAdmin,
    stored: &StoredPlan,
    safety: &SafetySnapshot,
    concurrency: usize,
    max_retries: u32,
    dry_run: bool,
) -> Result<ResetReport> {
    let started = Instant::now();
    let changes = stored
        .doc
        .offsets
        .as_ref()
        .ok_or_else(|| Error::Malformed {
            kind: "plan",
            file: stored.key.clone(),
            reason: "an offset reset plan without its offsets".into(),
        })?;
    // A retried Job of this plan finds its safety snapshot: what its first attempt committed
    // is the plan's own doing.
    let resumed = match safety {
        SafetySnapshot::Take {
            store,
            id: Some(id),
            reuse_existing: true,
            ..
        } if store.exists(id).await? => Some(changes),
        _ => None,
    };
    check_preconditions(admin, &stored.doc.preconditions, concurrency, resumed).await?;
    let plan = reset_plan_of(&stored.doc, changes);
    let req = ResetRequest {
        selector: None,
        scope: Vec::new(),
        strategy: Strategy::Current,
        strategy_label: changes.strategy.clone(),
        concurrency,
        max_retries,
        baseline: None,
    };
    apply(admin, &plan, safety, &req, dry_run, started).await
}

/// The reset request of a task: groups, topics and strategy; `with_baseline`: a retried Job
/// plans from the safety snapshot its first attempt stored.
async fn task_request(
    t: &OffsetResetTask,
    store: Option<&SnapshotStore>,
    with_baseline: bool,
) -> Result<ResetRequest> {
    let names = split_names(&t.consumer_groups);
    let single_group = match (names.as_slice(), &t.groups_regex) {
        ([one], None) => Some(one.as_str()),
        _ => None,
    };
    let (strategy, label) = match &t.strategy {
        ResetStrategy::FromBackup { backup_id } => {
            let storage = t
                .storage
                .as_ref()
                .map(open_location)
                .transpose()?
                .ok_or_else(|| {
                    Error::invalid("task field 'storage' is required by strategy fromBackup")
                })?;
            backup_strategy(&storage, backup_id).await?
        }
        other => {
            resolve_strategy(
                other,
                Origin::Task,
                "task field 'strategy.csv'",
                single_group,
                store,
            )
            .await?
        }
    };
    let scope = t
        .topics
        .iter()
        .enumerate()
        .map(|(i, topic)| {
            parse_topic_scope(topic)
                .map_err(|e| Error::invalid(format!("task field 'topics[{i}]': {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    // A retried Job finds the safety snapshot its first attempt stored: plan from it.
    let baseline = match (store, &t.snapshot_id) {
        (Some(store), Some(id)) if t.snapshot_before_reset && with_baseline => {
            if store.exists(id).await? {
                let snap = store.load(id).await?;
                owned_snapshot(&snap, t)?;
                tracing::info!(snapshot_id = %id, "safety snapshot exists: an earlier attempt ran; planning from its offsets");
                Some(snap)
            } else {
                None
            }
        }
        _ => None,
    };
    Ok(ResetRequest {
        selector: Some(GroupSelector::new(
            &t.consumer_groups,
            t.groups_regex.as_deref(),
            false,
        )?),
        scope,
        strategy,
        strategy_label: label,
        concurrency: t.max_concurrent,
        max_retries: t.max_retries,
        baseline,
    })
}

/// An existing safety snapshot may be reused only by a retry of the run that took it: when the
/// task names its run in `snapshotDescription`, a snapshot with another description (a named
/// id used before, by another run or by hand) is refused before anything changes.
fn owned_snapshot(snap: &OffsetSnapshot, t: &OffsetResetTask) -> Result<()> {
    match &t.snapshot_description {
        Some(mine) if snap.description.as_deref() != Some(mine.as_str()) => {
            Err(Error::invalid(format!(
                "task field 'snapshotId': the safety snapshot '{}' already exists and was not taken by this run ({}); a named safety snapshot is taken once: choose another snapshotId",
                snap.snapshot_id,
                snap.description.as_deref().unwrap_or("no description")
            )))
        }
        _ => Ok(()),
    }
}

/// The strategy of `--backup-id` (a task's `fromBackup`): the offsets the newest restore of
/// the backup translates each group's committed offsets to, and its label.
pub async fn backup_strategy(storage: &Storage, backup_id: &str) -> Result<(Strategy, String)> {
    Ok((
        Strategy::Explicit(explicit_from_backup(storage, backup_id).await?),
        format!("--backup-id {backup_id}"),
    ))
}

/// Where a strategy came from, so errors name the flag or the task field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Cli,
    Task,
}

impl Origin {
    fn name(self, flag: &str, field: &str) -> String {
        match self {
            Origin::Cli => format!("--{flag}"),
            Origin::Task => format!("task field '{field}'"),
        }
    }
}

/// Turns a strategy into the planner's form and its label (`--to-offset 5`): parses times,
/// durations and CSV, loads a snapshot from `store`. `csv_source` names the CSV in errors;
/// `single_group` allows its three-column form.
pub async fn resolve_strategy(
    s: &ResetStrategy,
    origin: Origin,
    csv_source: &str,
    single_group: Option<&str>,
    store: Option<&SnapshotStore>,
) -> Result<(Strategy, String)> {
    Ok(match s {
        ResetStrategy::ToEarliest => (Strategy::Earliest, "--to-earliest".into()),
        ResetStrategy::ToLatest => (Strategy::Latest, "--to-latest".into()),
        ResetStrategy::ToCurrent => (Strategy::Current, "--to-current".into()),
        ResetStrategy::ToOffset { offset } => {
            if *offset < 0 {
                return Err(Error::invalid(format!(
                    "{}: {offset} is negative",
                    origin.name("to-offset", "strategy.offset")
                )));
            }
            (Strategy::Offset(*offset), format!("--to-offset {offset}"))
        }
        ResetStrategy::ShiftBy { shift } => {
            (Strategy::ShiftBy(*shift), format!("--shift-by {shift}"))
        }
        ResetStrategy::ToDatetime { datetime } => {
            let ms = parse_datetime(datetime).map_err(|e| {
                Error::invalid(format!(
                    "{}: {e}",
                    origin.name("to-datetime", "strategy.datetime")
                ))
            })?;
            (Strategy::Time(ms), format!("--to-datetime {datetime}"))
        }
        ResetStrategy::ByDuration { duration } => {
            let back = parse_duration(duration).map_err(|e| {
                Error::invalid(format!(
                    "{}: {e}",
                    origin.name("by-duration", "strategy.duration")
                ))
            })?;
            let ms = Utc::now().timestamp_millis().saturating_sub(back);
            (Strategy::Time(ms), format!("--by-duration {duration}"))
        }
        ResetStrategy::FromFile { csv } => {
            let rows = parse_reset_csv(csv, csv_source, single_group).map_err(|reason| {
                Error::Malformed {
                    kind: "reset plan",
                    file: csv_source.to_string(),
                    reason,
                }
            })?;
            (
                Strategy::Explicit(explicit_from_csv(csv_source.to_string(), &rows)),
                format!("--from-file {csv_source}"),
            )
        }
        ResetStrategy::FromSnapshot { snapshot_id } => {
            let Some(store) = store else {
                return Err(Error::invalid(format!(
                    "{} {snapshot_id}: {}",
                    origin.name("from-snapshot", "strategy.snapshotId"),
                    match origin {
                        Origin::Cli => "pass --path, the storage location holding the snapshot",
                        Origin::Task => "the task names no storage to read it from",
                    }
                )));
            };
            let snap = store.load(snapshot_id).await?;
            (
                Strategy::Explicit(explicit_from_snapshot(&snap)),
                format!("--from-snapshot {snapshot_id}"),
            )
        }
        // It reads a backup location, not a snapshot store: its callers resolve it themselves.
        ResetStrategy::FromBackup { backup_id } => {
            return Err(Error::invalid(format!(
                "{} {backup_id}: a backup's offsets are read from its storage location",
                origin.name("backup-id", "strategy.backupId")
            )))
        }
    })
}

/// Target offsets of a parsed CSV plan.
pub fn explicit_from_csv(source: String, rows: &[CsvOffset]) -> Explicit {
    let mut offsets: BTreeMap<String, BTreeMap<(String, i32), i64>> = BTreeMap::new();
    for r in rows {
        offsets
            .entry(r.group.clone())
            .or_default()
            .insert((r.topic.clone(), r.partition), r.offset);
    }
    Explicit { source, offsets }
}

/// Target offsets of a stored snapshot.
pub fn explicit_from_snapshot(snap: &OffsetSnapshot) -> Explicit {
    let offsets = snap
        .groups
        .iter()
        .map(|(g, gs)| {
            let m = gs
                .to_commits()
                .into_iter()
                .map(|c| ((c.topic, c.partition), c.offset))
                .collect();
            (g.clone(), m)
        })
        .collect();
    Explicit {
        source: format!("snapshot '{}'", snap.snapshot_id),
        offsets,
    }
}

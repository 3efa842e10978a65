//! The `offset-reset plan|execute|script` and `offset-reset-bulk` commands: flags to a
//! [`ResetRequest`], then plan, dry run or execute (through [`crate::service::reset`]), and
//! print.

use std::path::Path;
use std::time::Instant;

use chrono::Utc;

use super::plan::{announce, print_written, Approved};
use super::{kafka_config, open_storage_at, open_store_at, print_json};
use super::{Format, ResetArgs, ResetExecArgs, ResetScriptArgs, ResetSpecArgs};
use crate::error::{Error, Result};
use crate::groups::{split_names, GroupSelector};
use crate::kafka::GroupAdmin;
use crate::plan::reset::reset_document;
use crate::plan::store::PlanLocation;
use crate::plan::PlanKind;
use crate::reset::csv::{write_reset_csv, CsvOffset};
use crate::reset::engine::{
    dry_run_report, prepare, ResetReport, ResetRequest, ResetStatus, SafetySnapshot,
};
use crate::reset::plan::{ResetPlan, Strategy};
use crate::reset::render::{plan_table, report_box};
use crate::reset::script::{reset_script, ScriptContext, ScriptEntry};
use crate::reset::spec::parse_topic_scope;
use crate::service::reset::{
    apply, approved_safety, backup_strategy, execute_approved_reset, resolve_strategy, Origin,
};
use crate::snapshot::generate_id;
use crate::task::ResetStrategy;

// Exit code of a run in which some groups were not reset.
use tidemark_task::exit::PARTIAL as EXIT_PARTIAL;

/// `offset-reset plan`: print the plan; change nothing.
pub async fn plan(a: ResetArgs) -> Result<i32> {
    let started = Instant::now();
    let (admin, req) = setup(&a).await?;
    let plan = prepare(&admin, &req).await?;
    export(&a, &plan)?;
    match a.format.format {
        Format::Json => print_json(&dry_run_report(&plan, started))?,
        Format::Text => {
            print!("{}", plan_table(&plan, true));
            println!("\nDry run: nothing was changed. `offset-reset execute` with the same flags applies this plan.");
        }
    }
    Ok(0)
}

/// `offset-reset execute` (`bulk == false`: the plan table is printed too) and
/// `offset-reset-bulk`: a safety snapshot, then the change; only the plan with `--dry-run`.
/// `--execute` is accepted and changes nothing (kafka-consumer-groups habits).
pub async fn execute(a: ResetExecArgs, bulk: bool) -> Result<i32> {
    if let Some(path) = &a.plan.approved_plan {
        return execute_approved(&a, path).await;
    }
    if let Some(path) = &a.plan.plan_out {
        return plan_out(&a, path).await;
    }
    let started = Instant::now();
    let safety = safety_snapshot(&a)?;
    let (admin, mut req) = setup(&a.reset).await?;
    req.max_retries = a.max_retries;
    let plan = prepare(&admin, &req).await?;
    export(&a.reset, &plan)?;
    let text = a.reset.format.format == Format::Text;
    if text && !bulk {
        print!("{}", plan_table(&plan, false));
        println!();
    }
    let report = apply(&admin, &plan, &safety, &req, a.dry_run, started).await?;
    match a.reset.format.format {
        Format::Json => print_json(&report)?,
        Format::Text => print!("{}", report_box(&report)),
    }
    Ok(exit_code(&report))
}

/// `--plan-out FILE`: the plan, with the safety snapshot's id executing takes (`--snapshot-id`
/// or one generated now), written to FILE; nothing changed.
async fn plan_out(a: &ResetExecArgs, path: &Path) -> Result<i32> {
    let safety_id = match safety_snapshot(a)? {
        SafetySnapshot::Take { id, .. } => Some(id.unwrap_or_else(|| generate_id(Utc::now()))),
        SafetySnapshot::Skip => None,
    };
    let (admin, req) = setup(&a.reset).await?;
    let plan = prepare(&admin, &req).await?;
    export(&a.reset, &plan)?;
    if a.reset.format.format == Format::Text {
        print!("{}", plan_table(&plan, true));
        println!();
    }
    let stored = PlanLocation::File(path.to_path_buf())
        .write(&reset_document(&plan, safety_id))
        .await?;
    print_written(a.reset.format.format, &stored)?;
    Ok(0)
}

/// `--approved-plan FILE`: exactly the plan's offsets, once its hash (`--plan-hash`) and
/// preconditions hold; with `--dry-run`, only the checks.
async fn execute_approved(a: &ResetExecArgs, path: &Path) -> Result<i32> {
    let stored = PlanLocation::File(path.to_path_buf())
        .read_approved(a.plan.plan_hash.as_deref(), PlanKind::OffsetReset)
        .await?;
    let store = match &a.reset.storage.path {
        Some(p) => Some(open_store_at(p, &a.reset.storage.endpoint)?),
        None => None,
    };
    let safety = approved_safety(&stored, store, false, None)?;
    let admin = GroupAdmin::connect(&kafka_config(&a.reset.kafka)?).await?;
    let report = execute_approved_reset(
        &admin,
        &stored,
        &safety,
        a.reset.max_concurrent,
        a.max_retries,
        a.dry_run,
    )
    .await?;
    match a.reset.format.format {
        Format::Json => print_json(&Approved::new(&stored, &report))?,
        Format::Text => {
            announce(Format::Text, &stored);
            print!("{}", report_box(&report));
        }
    }
    Ok(exit_code(&report))
}

/// Where the safety snapshot goes: `--path`, unless a dry run or `--no-snapshot`.
fn safety_snapshot(a: &ResetExecArgs) -> Result<SafetySnapshot> {
    if a.dry_run || a.no_snapshot {
        return Ok(SafetySnapshot::Skip);
    }
    let Some(path) = &a.reset.storage.path else {
        return Err(Error::invalid(
            "a reset stores a safety snapshot of the offsets about to change first: pass --path (or --no-snapshot to reset without one, or --dry-run to only see the plan)",
        ));
    };
    Ok(SafetySnapshot::Take {
        store: open_store_at(path, &a.reset.storage.endpoint)?,
        id: a.snapshot_id.clone(),
        reuse_existing: false,
        description: None,
    })
}

/// 0 when every group was reset (or it was a dry run), 10 otherwise.
fn exit_code(r: &ResetReport) -> i32 {
    if r.dry_run || r.status == ResetStatus::Success {
        0
    } else {
        EXIT_PARTIAL
    }
}

/// `offset-reset script`: a bash script of kafka-consumer-groups commands for the plan.
pub async fn script(a: ResetScriptArgs) -> Result<i32> {
    if a.output.is_none() && a.reset.format.format == Format::Json {
        return Err(Error::invalid(
            "--format json prints a summary, so the script needs --output FILE",
        ));
    }
    let (admin, req) = setup(&a.reset).await?;
    let plan = prepare(&admin, &req).await?;
    export(&a.reset, &plan)?;
    let entries: Vec<ScriptEntry> = plan
        .rows()
        .filter(|(_, p)| p.changes())
        .map(|(g, p)| ScriptEntry {
            group: g.to_string(),
            topic: p.topic.clone(),
            partition: p.partition,
            current: p.current,
            target: p.target,
        })
        .collect();
    let ctx = ScriptContext {
        bootstrap_servers: plan.cluster.clone(),
        strategy: plan.strategy.clone(),
        generated_at: Utc::now(),
        command_config: a.command_config.clone(),
    };
    let text = reset_script(&entries, &ctx);
    let refused: Vec<(&str, &str)> = plan
        .groups
        .iter()
        .filter_map(|g| g.refused.as_deref().map(|r| (g.group.as_str(), r)))
        .collect();
    match &a.output {
        None => print!("{text}"),
        Some(path) => {
            write_file(path, text.as_bytes())?;
            set_executable(path);
        }
    }
    for (g, why) in &refused {
        eprintln!("Warn: group '{g}' is not in the script: {why}");
    }
    for w in &plan.warnings {
        eprintln!("Warn: {w}");
    }
    if let Some(path) = &a.output {
        match a.reset.format.format {
            Format::Json => print_json(&serde_json::json!({
                "output": path.display().to_string(),
                "commands": entries.len(),
                "refused_groups": refused.iter().map(|(g, why)| serde_json::json!({"group": g, "error": why})).collect::<Vec<_>>(),
                "warnings": plan.warnings,
            }))?,
            Format::Text => println!(
                "Wrote {} ({} commands). Review it, stop the groups' consumers, then run: bash {}",
                path.display(),
                entries.len(),
                crate::kmap::shell_quote(&path.display().to_string())
            ),
        }
    }
    Ok(0)
}

/// Parses and checks every flag that needs no cluster, then connects.
async fn setup(a: &ResetArgs) -> Result<(GroupAdmin, ResetRequest)> {
    let names = split_names(&a.groups.groups);
    let single_group = match (
        names.as_slice(),
        &a.groups.groups_regex,
        a.groups.all_groups,
    ) {
        ([one], None, false) => Some(one.clone()),
        _ => None,
    };
    let (strategy, label) = match (&a.spec.backup_id, flags_strategy(&a.spec)) {
        (Some(id), Err(_)) => {
            let Some(path) = &a.storage.path else {
                return Err(Error::invalid(format!(
                    "--backup-id {id}: pass --path, the storage location holding the backup and its restore's offset mapping"
                )));
            };
            let storage = open_storage_at(path, &a.storage.endpoint)?;
            backup_strategy(&storage, id).await?
        }
        (_, spec) => {
            let (spec, csv_source) = spec?;
            let store = match (&spec, &a.storage.path) {
                (ResetStrategy::FromSnapshot { .. }, Some(path)) => {
                    Some(open_store_at(path, &a.storage.endpoint)?)
                }
                _ => None,
            };
            resolve_strategy(
                &spec,
                Origin::Cli,
                &csv_source,
                single_group.as_deref(),
                store.as_ref(),
            )
            .await?
        }
    };
    let documented = matches!(strategy, Strategy::Explicit(_));
    let selector = if names.is_empty() && a.groups.groups_regex.is_none() && !a.groups.all_groups {
        if !documented {
            return Err(Error::invalid(
                "no consumer groups selected: pass --groups, --groups-regex or --all-groups",
            ));
        }
        None
    } else {
        Some(GroupSelector::new(
            &a.groups.groups,
            a.groups.groups_regex.as_deref(),
            a.groups.all_groups,
        )?)
    };
    if !documented && a.scope.topics.is_empty() && !a.scope.all_topics {
        return Err(Error::invalid(
            "One of the reset scopes should be defined: --all-topics, --topic.",
        ));
    }
    let scope = a
        .scope
        .topics
        .iter()
        .map(|t| parse_topic_scope(t).map_err(|e| Error::invalid(format!("--topic: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    let admin = GroupAdmin::connect(&kafka_config(&a.kafka)?).await?;
    Ok((
        admin,
        ResetRequest {
            selector,
            scope,
            strategy,
            strategy_label: label,
            concurrency: a.max_concurrent,
            max_retries: crate::task::DEFAULT_RESET_RETRIES,
            baseline: None,
        },
    ))
}

/// The strategy the flags choose, as the task document spells it, and the CSV's source name.
fn flags_strategy(s: &ResetSpecArgs) -> Result<(ResetStrategy, String)> {
    let plain = |st| Ok((st, String::new()));
    if s.to_earliest {
        return plain(ResetStrategy::ToEarliest);
    }
    if s.to_latest {
        return plain(ResetStrategy::ToLatest);
    }
    if s.to_current {
        return plain(ResetStrategy::ToCurrent);
    }
    if let Some(offset) = s.to_offset {
        return plain(ResetStrategy::ToOffset { offset });
    }
    if let Some(shift) = s.shift_by {
        return plain(ResetStrategy::ShiftBy { shift });
    }
    if let Some(datetime) = &s.to_datetime {
        return plain(ResetStrategy::ToDatetime {
            datetime: datetime.clone(),
        });
    }
    if let Some(duration) = &s.by_duration {
        return plain(ResetStrategy::ByDuration {
            duration: duration.clone(),
        });
    }
    if let Some(file) = &s.from_file {
        let csv = crate::limits::read_text_limited(file, crate::limits::MAX_CSV_BYTES)?;
        return Ok((ResetStrategy::FromFile { csv }, file.display().to_string()));
    }
    if let Some(snapshot_id) = &s.from_snapshot {
        return plain(ResetStrategy::FromSnapshot {
            snapshot_id: snapshot_id.clone(),
        });
    }
    Err(Error::invalid(
        "choose one reset spec: --to-earliest, --to-latest, --to-current, --to-offset, --shift-by, --to-datetime, --by-duration, --from-file, --from-snapshot or --backup-id",
    ))
}

/// `--export FILE`: the plan's target offsets as Kafka's reset CSV.
fn export(a: &ResetArgs, plan: &ResetPlan) -> Result<()> {
    let Some(path) = &a.export else {
        return Ok(());
    };
    let rows: Vec<CsvOffset> = plan
        .rows()
        .map(|(g, p)| CsvOffset {
            group: g.to_string(),
            topic: p.topic.clone(),
            partition: p.partition,
            offset: p.target,
        })
        .collect();
    write_file(path, write_reset_csv(&rows).as_bytes())
}

fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    std::fs::write(path, data).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Makes a written script executable; failing to is not an error (`bash FILE` still works).
fn set_executable(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755));
    }
}

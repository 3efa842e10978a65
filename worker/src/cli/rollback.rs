//! The `offset-rollback` verbs (snapshot, list, show, rollback, verify, delete, import) and
//! `offsets export`: flags to a request, the use case, the report printed.

use std::io::Write as _;
use std::path::Path;

use chrono::{SecondsFormat, Utc};

use super::plan::{announce, print_written, Approved};
use super::*;
use super::{human_time, kafka_config, open_store, print_json};
use crate::error::{Error, Result};
use crate::groups::{read_committed, GroupSelector};
use crate::kafka::GroupAdmin;
use crate::kmap::{restore_script, KmapFile};
use crate::plan::store::PlanLocation;
use crate::plan::PlanKind;
use crate::report::{opt_offset, thousands, truncate, BoxReport};
use crate::rollback::{RollbackReport, RunStatus, SnapshotOutcome, SnapshotRequest, VerifyReport};
use crate::service::rollback::{
    plan_rollback_to, rollback_exit_code, run_approved_rollback, run_rollback, run_snapshot,
    run_verify, RollbackRequest,
};
use crate::snapshot::{generate_id, validate_id, OffsetSnapshot};

pub(super) async fn cmd_snapshot(a: SnapshotArgs) -> Result<i32> {
    let selector = GroupSelector::new(
        &a.groups.groups,
        a.groups.groups_regex.as_deref(),
        a.groups.all_groups,
    )?;
    if let Some(id) = &a.snapshot_id {
        validate_id(id)?;
    }
    let store = open_store(&a.storage)?;
    let req = SnapshotRequest {
        selector,
        snapshot_id: a.snapshot_id,
        description: a.description,
        concurrency: a.max_concurrent,
    };
    let outcome = run_snapshot(&store, &req, || kafka_config(&a.kafka)).await?;
    match a.format.format {
        Format::Json => print_json(&outcome)?,
        Format::Text => print!("{}", snapshot_text(&outcome)),
    }
    Ok(0)
}

fn snapshot_text(o: &SnapshotOutcome) -> String {
    let created = chrono::DateTime::parse_from_rfc3339(&o.created_at)
        .map(|t| human_time(&t.with_timezone(&Utc)))
        .unwrap_or_else(|_| o.created_at.clone());
    let mut s = format!(
        "Creating offset snapshot for {} consumer groups...\n\nSnapshot created successfully!\n",
        o.groups + o.skipped_groups.len()
    );
    s += &format!("  Snapshot ID: {}\n", o.snapshot_id);
    s += &format!("  Created at:  {created}\n");
    s += &format!("  Groups:      {}\n", o.groups);
    s += &format!("  Offsets:     {}\n", o.offsets);
    if let Some(d) = &o.description {
        s += &format!("  Description: {d}\n");
    }
    if !o.skipped_groups.is_empty() {
        s += &format!(
            "  Skipped:     {} group(s) without committed offsets: {}\n",
            o.skipped_groups.len(),
            truncate(&o.skipped_groups.join(", "), 200)
        );
    }
    s += &format!(
        "\nTo rollback to this snapshot, run:\n  tidemark offset-rollback rollback --path {} --snapshot-id {}\n",
        o.path, o.snapshot_id
    );
    s
}

pub(super) async fn cmd_list(a: ListArgs) -> Result<i32> {
    let store = open_store(&a.storage)?;
    let (snaps, unreadable) = store.list().await?;
    for u in &unreadable {
        eprintln!(
            "warning: skipping unreadable snapshot {}: {}",
            u.file, u.error
        );
    }
    match a.format.format {
        Format::Json => {
            let summaries: Vec<_> = snaps
                .iter()
                .map(crate::snapshot::SnapshotSummary::from)
                .collect();
            print_json(&serde_json::json!({
                "path": store.location(),
                "total": summaries.len(),
                "snapshots": summaries,
                "unreadable": unreadable,
            }))?;
        }
        Format::Text => {
            if snaps.is_empty() {
                println!("No offset snapshots in {}.", store.location());
                return Ok(0);
            }
            println!("Available offset snapshots:\n");
            println!(
                "{:<40} {:<24} {:>8} {:>8}  DESCRIPTION",
                "SNAPSHOT ID", "CREATED AT", "GROUPS", "OFFSETS"
            );
            println!(
                "{} {} {} {}  {}",
                "-".repeat(40),
                "-".repeat(24),
                "-".repeat(8),
                "-".repeat(8),
                "-".repeat(30)
            );
            for s in &snaps {
                println!(
                    "{:<40} {:<24} {:>8} {:>8}  {}",
                    s.snapshot_id,
                    human_time(&s.timestamp),
                    s.groups.len(),
                    s.offset_count(),
                    truncate(s.description.as_deref().unwrap_or(""), 30)
                );
            }
            println!(
                "\nTotal: {} snapshot{}",
                snaps.len(),
                if snaps.len() == 1 { "" } else { "s" }
            );
        }
    }
    Ok(0)
}

pub(super) async fn cmd_show(a: ShowArgs) -> Result<i32> {
    let store = open_store(&a.storage)?;
    let snap = store.load(&a.snapshot_id).await?;
    match a.format.format {
        Format::Json => print_json(&snap)?,
        Format::Text => print!("{}", show_text(&snap)),
    }
    Ok(0)
}

fn show_text(snap: &OffsetSnapshot) -> String {
    let mut b = BoxReport::new("OFFSET SNAPSHOT DETAILS");
    b.line(format!("Snapshot ID: {}", snap.snapshot_id))
        .line(format!("Created:     {}", human_time(&snap.timestamp)))
        .line(format!("Cluster:     {}", snap.cluster))
        .line(format!("Groups:      {}", snap.groups.len()))
        .line(format!("Offsets:     {}", snap.offset_count()))
        .line(format!(
            "Description: {}",
            snap.description.as_deref().unwrap_or("-")
        ))
        .heavy()
        .line("Consumer Groups");
    for (group, g) in &snap.groups {
        b.light()
            .line(format!("Group: {group}"))
            .line(format!("  Partitions: {}", g.partition_count()));
        for (topic, parts) in &g.topics {
            for (p, s) in parts {
                let meta = if s.metadata.is_empty() {
                    String::new()
                } else {
                    format!(" (metadata: {})", s.metadata)
                };
                b.line(format!("    {topic}:{p} -> offset {}{meta}", s.offset));
            }
        }
    }
    b.render()
}

pub(super) async fn cmd_rollback(a: RollbackArgs) -> Result<i32> {
    let store = open_store(&a.storage)?;
    if let Some(path) = &a.approved_plan {
        return rollback_approved(&a, &store, path).await;
    }
    let snapshot_id = a
        .snapshot_id
        .clone()
        .ok_or_else(|| Error::invalid("--snapshot-id is required (or --approved-plan FILE)"))?;
    let req = RollbackRequest {
        snapshot_id,
        groups: crate::groups::split_names(&a.groups),
        verify: a.verify && !a.no_verify,
        concurrency: a.max_concurrent,
        safety_snapshot_id: a.safety_snapshot_id.clone(),
        reuse_safety_snapshot: false,
    };
    if let Some(path) = &a.plan_out {
        let location = PlanLocation::File(path.clone());
        let stored = plan_rollback_to(&store, &req, &location, || kafka_config(&a.kafka)).await?;
        print_written(a.format.format, &stored)?;
        return Ok(0);
    }
    let (snap, report) = run_rollback(&store, &req, || kafka_config(&a.kafka)).await?;
    print_rollback(&a, &snap, &report, &req.groups)
}

/// `rollback --approved-plan FILE`: exactly the plan's groups and offsets, after the safety
/// snapshot it names, once its hash (`--plan-hash`) and preconditions hold.
async fn rollback_approved(
    a: &RollbackArgs,
    store: &crate::snapshot::SnapshotStore,
    path: &Path,
) -> Result<i32> {
    let stored = PlanLocation::File(path.to_path_buf())
        .read_approved(a.plan_hash.as_deref(), PlanKind::OffsetRollback)
        .await?;
    let (snap, report) = run_approved_rollback(
        store,
        &stored,
        a.verify && !a.no_verify,
        a.max_concurrent,
        false,
        || kafka_config(&a.kafka),
    )
    .await?;
    if a.format.format == Format::Json {
        print_json(&Approved::new(&stored, &report))?;
        return Ok(rollback_exit_code(&report));
    }
    announce(a.format.format, &stored);
    let groups: Vec<String> = report
        .group_outcomes
        .iter()
        .map(|o| o.group.clone())
        .collect();
    print_rollback(a, &snap, &report, &groups)
}

/// Prints a rollback's report; the exit code.
fn print_rollback(
    a: &RollbackArgs,
    snap: &OffsetSnapshot,
    report: &RollbackReport,
    groups: &[String],
) -> Result<i32> {
    let selected_offsets: usize = crate::rollback::select_snapshot_groups(snap, groups)?
        .iter()
        .map(|(_, g)| g.partition_count())
        .sum();
    match a.format.format {
        Format::Json => print_json(report)?,
        Format::Text => {
            println!("Rolling back to snapshot: {}", snap.snapshot_id);
            println!("  Created: {}", human_time(&snap.timestamp));
            println!("  Groups: {}", report.total_groups);
            println!("  Offsets: {selected_offsets}\n");
            print!("{}", rollback_text(report));
            if let Some(id) = &report.safety_snapshot_id {
                println!(
                    "\nSafety snapshot: {id} (the offsets this rollback replaced; to undo it: tidemark offset-rollback rollback -p {} -s {id})",
                    a.storage.path
                );
            }
            for w in &report.warnings {
                println!("Warning: {w}");
            }
            if let Some(v) = &report.verification {
                println!();
                print!("{}", verify_text(v));
            }
        }
    }
    Ok(rollback_exit_code(report))
}

fn rollback_text(r: &RollbackReport) -> String {
    let mark = match r.status {
        RunStatus::Success => "✓",
        RunStatus::PartialSuccess => "⚠",
        RunStatus::Failed => "✗",
    };
    let mut b = BoxReport::new("ROLLBACK RESULT");
    b.line(format!("Status: {mark} {}", r.status.label()))
        .light()
        .field("Groups Rolled Back", thousands(r.groups_rolled_back as i64))
        .field("Groups Failed", thousands(r.groups_failed as i64))
        .field("Offsets Restored", thousands(r.offsets_restored as i64))
        .field(
            "Safety Snapshot",
            r.safety_snapshot_id
                .as_deref()
                .unwrap_or("none (nothing changed)"),
        )
        .field(
            "Duration",
            format!("{} ms", thousands(r.duration_ms as i64)),
        );
    let failed: Vec<_> = r
        .group_outcomes
        .iter()
        .filter(|o| o.status != "success")
        .collect();
    if !failed.is_empty() {
        b.light().line("Failed groups");
        for o in failed {
            b.line(format!(
                "  {}: {}",
                o.group,
                o.error.as_deref().unwrap_or("failed")
            ));
            for pe in &o.partition_errors {
                b.line(format!("    {pe}"));
            }
        }
    }
    b.render()
}

pub(super) async fn cmd_verify(a: VerifyArgs) -> Result<i32> {
    let only = crate::groups::split_names(&a.groups);
    let store = open_store(&a.storage)?;
    let (_, report) = run_verify(
        &store,
        &a.snapshot_id,
        &only,
        a.strict,
        a.max_concurrent,
        || kafka_config(&a.kafka),
    )
    .await?;
    match a.format.format {
        Format::Json => print_json(&report)?,
        Format::Text => print!("{}", verify_text(&report)),
    }
    Ok(if report.matched {
        0
    } else {
        Error::VerificationFailed(String::new()).exit_code()
    })
}

fn verify_text(v: &VerifyReport) -> String {
    let mut b = BoxReport::new("VERIFICATION RESULT");
    if v.matched {
        b.line("✓ VERIFIED - All offsets match snapshot");
    } else {
        b.line(format!(
            "✗ MISMATCH - {} partition{} differ from snapshot {}",
            v.differences.len(),
            if v.differences.len() == 1 { "" } else { "s" },
            v.snapshot_id
        ));
    }
    b.light()
        .field("Groups Verified", v.groups_verified)
        .field("Groups Mismatched", v.groups_mismatched)
        .field("Partitions Checked", v.partitions_checked)
        .field(
            "Mode",
            if v.strict {
                "strict"
            } else {
                "snapshot partitions"
            },
        );
    let mut s = b.render();
    if !v.differences.is_empty() {
        let gw = v
            .differences
            .iter()
            .map(|d| d.group.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let tw = v
            .differences
            .iter()
            .map(|d| d.topic.len())
            .max()
            .unwrap_or(5)
            .max(5);
        s += &format!(
            "\n{:<gw$}  {:<tw$}  {:>9}  {:>12}  {:>12}\n",
            "GROUP", "TOPIC", "PARTITION", "EXPECTED", "ACTUAL"
        );
        for d in &v.differences {
            s += &format!(
                "{:<gw$}  {:<tw$}  {:>9}  {:>12}  {:>12}\n",
                d.group,
                d.topic,
                d.partition,
                opt_offset(d.expected),
                opt_offset(d.actual)
            );
        }
    }
    s
}

pub(super) async fn cmd_delete(a: DeleteArgs) -> Result<i32> {
    let store = open_store(&a.storage)?;
    store.delete(&a.snapshot_id).await?;
    match a.format.format {
        Format::Json => print_json(&serde_json::json!({
            "status": "deleted",
            "snapshot_id": a.snapshot_id,
            "path": store.location(),
        }))?,
        Format::Text => println!(
            "Deleted snapshot {} from {}.",
            a.snapshot_id,
            store.location()
        ),
    }
    Ok(0)
}

pub(super) async fn cmd_import(a: ImportArgs) -> Result<i32> {
    let file = a.kmap.display().to_string();
    let data = crate::limits::read_limited(&a.kmap, crate::limits::MAX_SNAPSHOT_BYTES)?;
    let kmap = KmapFile::from_json(&data, &file)?;
    let id = a.snapshot_id.unwrap_or_else(|| generate_id(Utc::now()));
    let description = a
        .description
        .or_else(|| Some(format!("Imported from kmap file {file}")));
    let snap = kmap.to_snapshot(&id, description)?;
    let store = open_store(&a.storage)?;
    store.save(&snap).await?;
    let outcome = SnapshotOutcome {
        snapshot_id: snap.snapshot_id.clone(),
        created_at: snap.timestamp.to_rfc3339_opts(SecondsFormat::Secs, true),
        cluster: snap.cluster.clone(),
        path: store.location().to_string(),
        description: snap.description.clone(),
        groups: snap.groups.len(),
        offsets: snap.offset_count(),
        group_names: snap.groups.keys().cloned().collect(),
        skipped_groups: Vec::new(),
        duration_ms: 0,
    };
    match a.format.format {
        Format::Json => print_json(&outcome)?,
        Format::Text => print!("{}", snapshot_text(&outcome)),
    }
    Ok(0)
}

pub(super) async fn cmd_export(a: ExportArgs) -> Result<i32> {
    let all =
        a.groups.all_groups || (a.groups.groups.is_empty() && a.groups.groups_regex.is_none());
    let selector = GroupSelector::new(&a.groups.groups, a.groups.groups_regex.as_deref(), all)?;
    let admin = GroupAdmin::connect(&kafka_config(&a.kafka)?).await?;
    let groups = selector.resolve(&admin).await?;
    let committed = read_committed(&admin, &groups, a.max_concurrent).await?;
    for name in &selector.names {
        if committed.offsets.get(name).is_none_or(Vec::is_empty) {
            return Err(Error::GroupNotFound(name.clone()));
        }
    }
    let exported: Vec<String> = committed
        .offsets
        .iter()
        .filter(|(_, o)| !o.is_empty())
        .map(|(g, _)| g.clone())
        .collect();
    for (name, desc) in exported.iter().zip(admin.describe_groups(&exported).await?) {
        match desc {
            Ok(d) if !d.state.is_inactive() => eprintln!(
                "warning: group '{name}' is active ({}, {} member(s)); its offsets may move after this export",
                d.state, d.members
            ),
            Ok(_) => {}
            Err(e) => eprintln!("warning: could not read the state of group '{name}': {e}"),
        }
    }
    let skipped = committed.offsets.len() - exported.len();
    let file = KmapFile::from_committed(
        &admin.config().bootstrap_servers,
        Utc::now(),
        &committed.offsets,
    );
    let json = serde_json::to_vec_pretty(&file).map_err(|e| Error::encode("offsets", e))?;
    match &a.output {
        Some(path) => write_file_atomic(path, &json, false)?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&json)
                .and_then(|_| out.write_all(b"\n"))
                .map_err(|source| Error::Io {
                    path: "<stdout>".into(),
                    source,
                })?;
        }
    }
    if let Some(path) = &a.restore_script {
        write_file_atomic(path, restore_script(&file, Utc::now()).as_bytes(), true)?;
    }
    eprintln!(
        "Exported {} group(s), {} partition offset(s){}{}",
        file.consumer_groups.len(),
        file.offset_count(),
        if skipped > 0 {
            format!("; skipped {skipped} group(s) without committed offsets")
        } else {
            String::new()
        },
        a.output
            .as_ref()
            .map(|p| format!(" to {}", p.display()))
            .unwrap_or_default()
    );
    Ok(0)
}

/// Writes through a temporary file in the same directory and renames it into place.
fn write_file_atomic(path: &Path, data: &[u8], executable: bool) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid(format!("'{}' is not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, data).map_err(io)?;
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

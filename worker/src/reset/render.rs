//! Text output of resets: the plan table (one section per group: topic, partition, current,
//! target, action) and the boxed bulk report.

use std::fmt::Write as _;

use super::engine::ResetReport;
use super::plan::ResetPlan;
use crate::report::{opt_offset, thousands, truncate, BoxReport};

/// Warnings shown in text before "... and N more" (JSON has them all).
const MAX_WARNINGS_SHOWN: usize = 20;
/// Failed groups listed in the box before "... and N more".
const MAX_FAILURES_SHOWN: usize = 20;

/// The plan table, with the plan's warnings when `with_warnings` (a report box that follows
/// prints them otherwise).
pub fn plan_table(plan: &ResetPlan, with_warnings: bool) -> String {
    let mut out = String::new();
    let rule = "═".repeat(78);
    let thin = "─".repeat(78);
    let _ = writeln!(out, "Offset Reset Plan ({})", plan.strategy);
    let _ = writeln!(out, "{rule}");
    let topic_w = plan
        .groups
        .iter()
        .flat_map(|g| g.partitions.iter().map(|p| p.topic.chars().count()))
        .max()
        .unwrap_or(5)
        .clamp(5, 40);
    for g in &plan.groups {
        let _ = writeln!(out);
        let state = g.state.as_deref().unwrap_or("unknown");
        let _ = writeln!(out, "Consumer Group: {} ({state})", g.group);
        let _ = writeln!(out, "{thin}");
        if let Some(why) = &g.refused {
            let _ = writeln!(out, "  NOT RESET: {why}");
            if g.partitions.is_empty() {
                continue;
            }
        }
        if g.partitions.is_empty() {
            let _ = writeln!(out, "  (no partitions in scope)");
            continue;
        }
        let _ = writeln!(
            out,
            "{:<topic_w$}  {:>9}  {:>12}  {:>12}  Action",
            "Topic", "Partition", "Current", "Target"
        );
        let _ = writeln!(out, "{thin}");
        for p in &g.partitions {
            let delta = match p.current {
                Some(c) if c != p.target => format!(" ({:+})", p.target - c),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "{:<topic_w$}  {:>9}  {:>12}  {:>12}  {}{delta}",
                truncate(&p.topic, topic_w),
                p.partition,
                opt_offset(p.current),
                p.target,
                p.action.label()
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Total partitions to reset: {}",
        thousands(plan.partitions_changing() as i64)
    );
    if with_warnings {
        warnings_block(&mut out, &plan.warnings);
    }
    out
}

fn warnings_block(out: &mut String, warnings: &[String]) {
    for w in warnings.iter().take(MAX_WARNINGS_SHOWN) {
        let _ = writeln!(out, "Warn: {w}");
    }
    if warnings.len() > MAX_WARNINGS_SHOWN {
        let _ = writeln!(
            out,
            "Warn: ... and {} more warnings (--format json lists all)",
            warnings.len() - MAX_WARNINGS_SHOWN
        );
    }
}

/// The boxed report of a run (or of a dry run).
pub fn report_box(r: &ResetReport) -> String {
    let title = if r.dry_run {
        "OFFSET RESET PLAN (DRY RUN)"
    } else {
        "BULK OFFSET RESET REPORT"
    };
    let mut b = BoxReport::new(title);
    let status = if r.dry_run {
        format!("{} (dry run: nothing was changed)", r.status.label())
    } else {
        r.status.label().to_string()
    };
    b.line(format!("Status: {status}"))
        .line(format!("Strategy: {}", r.strategy))
        .light()
        .field("Total Groups", thousands(r.total_groups as i64))
        .field(
            if r.dry_run { "Ready" } else { "Successful" },
            thousands(r.successful_groups as i64),
        )
        .field(
            if r.dry_run { "Refused" } else { "Failed" },
            thousands(r.failed_groups as i64),
        )
        .field("Partitions Planned", thousands(r.partitions_planned as i64));
    if !r.dry_run {
        b.field("Total Offsets", thousands(r.total_offsets_reset as i64));
    }
    b.field(
        "Duration",
        format!("{} ms", thousands(r.duration_ms as i64)),
    );
    if !r.dry_run {
        let p = &r.performance;
        b.light()
            .line("Performance")
            .field(
                "Throughput",
                format!("{:.1} offsets/sec", p.offsets_per_second),
            )
            .field("Avg Latency", format!("{:.1} ms", p.avg_latency_ms))
            .field("P50 Latency", format!("{:.1} ms", p.p50_latency_ms))
            .field("P99 Latency", format!("{:.1} ms", p.p99_latency_ms))
            .field("Max Concurrency", p.max_concurrency);
    }
    if let Some(id) = &r.snapshot_id {
        b.light().field(
            "Safety Snapshot",
            if r.snapshot_reused {
                format!("{id} (kept from an earlier attempt)")
            } else {
                id.clone()
            },
        );
    }
    let failed: Vec<_> = r
        .outcomes_failed_first()
        .into_iter()
        .filter(|o| o.status == "failed")
        .collect();
    if !failed.is_empty() {
        b.light().line(if r.dry_run {
            "Groups that would not be reset"
        } else {
            "Failed groups"
        });
        for o in failed.iter().take(MAX_FAILURES_SHOWN) {
            b.line(format!(
                "  {}: {}",
                o.group,
                o.error.as_deref().unwrap_or("failed")
            ));
            for e in o.partition_errors.iter().take(3) {
                b.line(format!("    {e}"));
            }
        }
        if failed.len() > MAX_FAILURES_SHOWN {
            b.line(format!(
                "  ... and {} more (--format json lists all)",
                failed.len() - MAX_FAILURES_SHOWN
            ));
        }
    }
    let mut out = b.render();
    warnings_block(&mut out, &r.warnings);
    if r.dry_run {
        let _ = writeln!(
            out,
            "\nDry run: nothing was changed. Add --execute to apply this plan."
        );
    } else if let Some(cmd) = &r.rollback_command {
        let lead = match r.status {
            crate::rollback::RunStatus::Success => "To undo this reset, run:",
            _ => "Some groups were not reset. To return every changed group to where it was, run:",
        };
        let _ = writeln!(out, "\n{lead}\n  {cmd}");
    }
    out
}

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
        format!("{} (nothing was changed)", r.status.label())
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
            "\nDry run: nothing was changed. Run the same command without --dry-run to apply this plan."
        );
    } else if let Some(cmd) = &r.rollback_command {
        let lead = match r.status {
            super::engine::ResetStatus::Success => "To undo this reset, run:",
            _ => "Some groups were not reset. To return every changed group to where it was, run:",
        };
        let _ = writeln!(out, "\n{lead}\n  {cmd}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reset::engine::dry_run_report;
    use crate::reset::plan::{Action, GroupPlan, PartitionPlan};

    fn plan() -> ResetPlan {
        let part = |p: i32, current: Option<i64>, target: i64, action| PartitionPlan {
            topic: "orders".into(),
            partition: p,
            current,
            target,
            log_start: 0,
            log_end: 100,
            action,
        };
        ResetPlan {
            strategy: "--to-offset 40".into(),
            cluster: "k:9092".into(),
            groups: vec![
                GroupPlan {
                    group: "billing".into(),
                    state: Some("Empty".into()),
                    refused: None,
                    partitions: vec![
                        part(0, Some(50), 40, Action::Rewind),
                        part(1, None, 40, Action::Set),
                        part(2, Some(40), 40, Action::Unchanged),
                    ],
                    committed: Vec::new(),
                },
                GroupPlan {
                    group: "live".into(),
                    state: Some("Stable".into()),
                    refused: Some("Assignments can only be reset if the group 'live' is inactive, but the current state is Stable.".into()),
                    partitions: vec![part(0, Some(10), 40, Action::Forward)],
                    committed: Vec::new(),
                },
            ],
            warnings: vec!["New offset (400) is higher than latest offset for topic partition orders-3. Value will be set to 100.".into()],
        }
    }

    #[test]
    fn the_plan_table_shows_every_partition_and_refusal() {
        let text = plan_table(&plan(), true);
        for want in [
            "Offset Reset Plan (--to-offset 40)",
            "Consumer Group: billing (Empty)",
            "orders          0            50            40  REWIND (-10)",
            "orders          1             -            40  SET",
            "orders          2            40            40  UNCHANGED",
            "NOT RESET: Assignments can only be reset if the group 'live'",
            "Total partitions to reset: 2",
            "Warn: New offset (400) is higher than latest offset",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!plan_table(&plan(), false).contains("Warn:"));
    }

    #[test]
    fn the_dry_run_box_is_80_columns_and_says_nothing_changed() {
        let report = dry_run_report(&plan(), std::time::Instant::now());
        assert_eq!(report.failed_groups, 1);
        assert_eq!(report.partitions_planned, 2);
        let text = report_box(&report);
        for line in text
            .lines()
            .filter(|l| l.starts_with('║') || l.starts_with('╔'))
        {
            assert_eq!(line.chars().count(), 80, "{line}");
        }
        assert!(text.contains("OFFSET RESET PLAN (DRY RUN)"), "{text}");
        assert!(text.contains("Groups that would not be reset"), "{text}");
        assert!(
            text.contains("Status: DRY RUN (nothing was changed)"),
            "{text}"
        );
        assert!(!text.contains("SUCCESS"), "{text}");
        assert!(
            text.contains("Run the same command without --dry-run to apply this plan."),
            "{text}"
        );
        assert_eq!(
            serde_json::to_value(&report).expect("json")["status"],
            "dry_run"
        );
    }
}

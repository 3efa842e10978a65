//! Bulk consumer-offset reset benchmark on a real broker (tansu).
//!
//! `cargo bench -p tidemark-tests --bench reset --profile dev` (or without `--profile dev` for
//! an optimised build) — optional env: BENCH_RESET_GROUPS (500), BENCH_RESET_PARTITIONS (20),
//! BENCH_RESET_BASELINE_GROUPS (50), BENCH_RESET_RUNS (3).
//!
//! Seeds BENCH_RESET_GROUPS groups × BENCH_RESET_PARTITIONS committed offsets on one topic, then
//! times the real CLI the way it is meant to be used: `offset-reset-bulk --groups-regex
//! 'bench-reset-.*' --all-topics --to-offset N --execute --path DIR --format json`, safety
//! snapshot included, BENCH_RESET_RUNS times with N alternating (10, 20, …) so every run moves
//! every offset; the median is reported. Every run is checked: the report (all groups
//! successful, every offset reset), the safety snapshot it stored (every group, at the offsets
//! before the run) and the committed offsets read back from the broker.
//!
//! References, timed in the same run and checked the same way:
//! - the one-group-at-a-time loop in this same process (already connected, so no start-up):
//!   for each group, describe it (refuse an active one), read its committed offsets (what a
//!   safety snapshot needs), commit the new ones — each request awaited before the next. Each
//!   bulk run is paired with one such loop over every group, in alternating order, and the
//!   ratio of their medians is the goal's figure (≥ 50× at 2 ms round trip);
//! - the sequential loop people write with a per-group tool — one `offset-reset execute
//!   --groups G` process per group, on BENCH_RESET_BASELINE_GROUPS groups, scaled per group to
//!   all groups (goal ≥ 50×);
//! - the bulk command with `--max-concurrent 1` (one process, groups read and committed one at
//!   a time).
//!
//! Goals are reported as PASS or FAIL; a wrong result panics.
//!
//! With BENCH_RTT_MS=N the broker sits behind a proxy adding N ms to every round trip (see
//! `tidemark_tests::latency`); the figure is printed with the results.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use serde_json::Value;
use tidemark::kafka::{CommittedOffset, GroupAdmin};
use tidemark_tests::{
    commit_groups, commits, committed_map, connect_admin, create_and_fill, env_usize, latency,
    time_cli, Tansu,
};

const BIN: &str = env!("CARGO_BIN_EXE_tidemark-under-test");
const TOPIC: &str = "bench-reset";
/// Records per partition: the log end every target stays below (no clamping).
const RECORDS: usize = 50;
/// Where every group starts.
const SEED_OFFSET: i64 = 40;
const GOAL_SPEEDUP: f64 = 50.0;
/// Goal for bulk vs the one-group-at-a-time loop in one process (at 2 ms round trip).
const GOAL_VS_IN_PROCESS: f64 = 50.0;
const GOAL_OFFSETS_PER_SEC: f64 = 5000.0;

/// Target offset of the `n`-th reset of the run: alternating, so each reset changes every offset.
fn target(n: usize) -> i64 {
    [10, 20][n % 2]
}

/// One bulk run's figures.
struct Bulk {
    target: i64,
    wall: Duration,
    report_ms: f64,
    report_ops: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_concurrency: u64,
    snapshot: String,
}

impl Bulk {
    fn wall_ops(&self, offsets: usize) -> f64 {
        offsets as f64 / self.wall.as_secs_f64()
    }
}

fn f64_of(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("report field {what} is not a number: {v}"))
}

fn bulk_args(bs: &str, path: &str, target: i64, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "offset-reset-bulk",
        "--bootstrap-servers",
        bs,
        "--groups-regex",
        "bench-reset-.*",
        "--all-topics",
        "--to-offset",
        &target.to_string(),
        "--path",
        path,
        "--format",
        "json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn run(args: &[String]) -> (Duration, Value) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    time_cli(BIN, &args)
}

/// The report without its per-group outcomes, except failed ones (for assertion messages).
fn summary(report: &Value) -> Value {
    let mut r = report.clone();
    if let Some(outcomes) = r.get_mut("group_outcomes").and_then(Value::as_array_mut) {
        outcomes.retain(|o| o["status"] == "failed");
        outcomes.truncate(3);
    }
    r
}

/// Checks an executed reset's report: every group successful, every offset reset, a safety
/// snapshot stored.
fn check_report(report: &Value, groups: usize, partitions: usize, what: &str) {
    let s = summary(report);
    assert_eq!(report["dry_run"], false, "{what}: {s}");
    assert_eq!(report["status"], "success", "{what}: {s}");
    assert_eq!(report["total_groups"], groups as u64, "{what}: {s}");
    assert_eq!(report["successful_groups"], groups as u64, "{what}: {s}");
    assert_eq!(report["failed_groups"], 0, "{what}: {s}");
    assert_eq!(
        report["total_offsets_reset"],
        (groups * partitions) as u64,
        "{what}: {s}"
    );
    assert!(report["snapshot_id"].is_string(), "{what}: {s}");
}

/// Checks the safety snapshot a run stored: every group in `groups`, every partition at `before`.
fn check_snapshot(store: &Path, id: &str, groups: &[String], partitions: usize, before: i64) {
    let file = store.join("snapshots").join(format!("{id}.json"));
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("safety snapshot {}: {e}", file.display()));
    let snap: Value = serde_json::from_str(&text).expect("snapshot JSON");
    let stored = snap["groups"].as_object().expect("snapshot groups");
    assert_eq!(stored.len(), groups.len(), "groups in snapshot {id}");
    for g in groups {
        let parts = stored[g]["topics"][TOPIC]
            .as_object()
            .unwrap_or_else(|| panic!("snapshot {id} lacks {g}/{TOPIC}"));
        assert_eq!(parts.len(), partitions, "snapshot {id}: {g}");
        for (p, o) in parts {
            assert_eq!(o["offset"], before, "snapshot {id}: {g} {TOPIC}-{p}");
        }
    }
}

/// Reads every group's committed offsets back from the broker; all must be `target`.
async fn check_committed(admin: &GroupAdmin, groups: &[String], partitions: usize, target: i64) {
    let read: Vec<_> = stream::iter(groups.iter())
        .map(|g| async move { (g, committed_map(admin, g).await) })
        .buffer_unordered(50)
        .collect()
        .await;
    for (g, offsets) in read {
        assert_eq!(offsets.len(), partitions, "{g}: {offsets:?}");
        for ((t, p), o) in &offsets {
            assert_eq!(*o, target, "{g} {t}-{p} committed {o}, expected {target}");
        }
    }
}

/// The one-group-at-a-time loop in this process: per group, describe it, read its committed
/// offsets, commit every one of them to `to`; each request awaited before the next.
async fn in_process_loop(admin: &GroupAdmin, groups: &[String], to: i64) -> Duration {
    let started = Instant::now();
    for g in groups {
        let described = admin
            .describe_groups(std::slice::from_ref(g))
            .await
            .expect("describe");
        let state = described[0].as_ref().expect("described").state;
        assert!(state.is_inactive(), "{g} is {state}");
        let current = admin.committed_offsets(g).await.expect("read committed");
        let moved: Vec<CommittedOffset> = current
            .into_iter()
            .map(|o| CommittedOffset { offset: to, ..o })
            .collect();
        let failures = admin.alter_offsets(g, &moved).await.expect("commit");
        assert!(failures.is_empty(), "{g}: {failures:?}");
    }
    started.elapsed()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

/// One `offset-reset-bulk --execute` run to `to`, its report and safety snapshot checked.
async fn bulk_run(
    bs: &str,
    dir: &Path,
    groups: &[String],
    n_parts: usize,
    to: i64,
    before: i64,
) -> Bulk {
    let path = dir.to_str().expect("utf8 path");
    let (wall, r) = run(&bulk_args(bs, path, to, &["--execute"]));
    check_report(&r, groups.len(), n_parts, "offset-reset-bulk");
    let snapshot = r["snapshot_id"].as_str().unwrap_or_default().to_string();
    check_snapshot(dir, &snapshot, groups, n_parts, before);
    let p = &r["performance"];
    Bulk {
        target: to,
        wall,
        report_ms: f64_of(&r["duration_ms"], "duration_ms"),
        report_ops: f64_of(&p["offsets_per_second"], "offsets_per_second"),
        p50_ms: f64_of(&p["p50_latency_ms"], "p50_latency_ms"),
        p99_ms: f64_of(&p["p99_latency_ms"], "p99_latency_ms"),
        max_concurrency: p["max_concurrency"].as_u64().unwrap_or_default(),
        snapshot,
    }
}

#[tokio::main]
async fn main() {
    let n_groups = env_usize("BENCH_RESET_GROUPS", 500).max(1);
    let n_parts = env_usize("BENCH_RESET_PARTITIONS", 20).max(1);
    let n_base = env_usize("BENCH_RESET_BASELINE_GROUPS", 50).clamp(1, n_groups);
    let n_runs = env_usize("BENCH_RESET_RUNS", 3).max(1);
    let n_offsets = n_groups * n_parts;

    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_and_fill(&bs, TOPIC, n_parts as i32, RECORDS).await;
    let admin = connect_admin(&bs).await;
    let groups: Vec<String> = (0..n_groups)
        .map(|i| format!("bench-reset-{i:04}"))
        .collect();
    let seed = Instant::now();
    commit_groups(
        &admin,
        &groups,
        &commits(TOPIC, &vec![SEED_OFFSET; n_parts]),
        100,
    )
    .await;
    println!(
        "seeded {n_groups} groups x {n_parts} partitions in {:.2} s",
        seed.elapsed().as_secs_f64()
    );
    let store = tempfile::tempdir().expect("tempdir");
    let dir = store.path();
    let path = dir.to_str().expect("utf8 path");

    // A dry run first: plans every group, changes nothing (and warms the binary up).
    let (plan_time, plan) = run(&bulk_args(&bs, path, target(0), &["--dry-run"]));
    assert_eq!(plan["dry_run"], true, "{}", summary(&plan));
    assert_eq!(plan["total_groups"], n_groups as u64, "{}", summary(&plan));
    assert_eq!(plan["partitions_planned"], n_offsets as u64);
    check_committed(&admin, &groups, n_parts, SEED_OFFSET).await;

    let mut resets = 0usize;
    let mut before = SEED_OFFSET;
    let mut bulk = Vec::with_capacity(n_runs);
    let mut loops = Vec::with_capacity(n_runs);
    for i in 0..n_runs {
        // Paired, alternating order: bulk first in even pairs, the loop first in odd ones.
        for bulk_now in [i % 2 == 0, i % 2 == 1] {
            let to = target(resets);
            resets += 1;
            if bulk_now {
                bulk.push(bulk_run(&bs, dir, &groups, n_parts, to, before).await);
                check_committed(&admin, &groups, n_parts, to).await;
            } else {
                let took = in_process_loop(&admin, &groups, to).await;
                check_committed(&admin, &groups, n_parts, to).await;
                loops.push(took.as_secs_f64());
            }
            before = to;
        }
    }

    // Reference 1: the bulk command with one group in flight at a time.
    let to = target(resets);
    resets += 1;
    let (seq_wall, seq) = run(&bulk_args(
        &bs,
        path,
        to,
        &["--execute", "--max-concurrent", "1"],
    ));
    check_report(
        &seq,
        n_groups,
        n_parts,
        "offset-reset-bulk --max-concurrent 1",
    );
    let seq_snapshot = seq["snapshot_id"].as_str().unwrap_or_default();
    check_snapshot(dir, seq_snapshot, &groups, n_parts, before);
    check_committed(&admin, &groups, n_parts, to).await;
    before = to;
    let seq_report_ms = f64_of(&seq["duration_ms"], "duration_ms");
    let seq_p50 = f64_of(&seq["performance"]["p50_latency_ms"], "p50_latency_ms");

    // Reference 2: one `offset-reset execute` process per group, one after the other.
    let to = target(resets);
    let base_groups = &groups[..n_base];
    let mut loop_time = Duration::ZERO;
    let mut per_process = Vec::with_capacity(n_base);
    for g in base_groups {
        let args: Vec<String> = [
            "offset-reset",
            "execute",
            "--bootstrap-servers",
            &bs,
            "--groups",
            g,
            "--all-topics",
            "--to-offset",
            &to.to_string(),
            "--execute",
            "--path",
            path,
            "--format",
            "json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (wall, r) = run(&args);
        check_report(
            &r,
            1,
            n_parts,
            &format!("offset-reset execute --groups {g}"),
        );
        let snapshot = r["snapshot_id"].as_str().unwrap_or_default();
        check_snapshot(dir, snapshot, std::slice::from_ref(g), n_parts, before);
        loop_time += wall;
        per_process.push(wall.as_secs_f64() * 1000.0);
    }
    check_committed(&admin, base_groups, n_parts, to).await;

    let per_group_ms = loop_time.as_secs_f64() * 1000.0 / n_base as f64;
    let loop_scaled_s = per_group_ms * n_groups as f64 / 1000.0;
    let bulk_wall_s = median(bulk.iter().map(|b| b.wall.as_secs_f64()).collect());
    let bulk_wall_ops = median(bulk.iter().map(|b| b.wall_ops(n_offsets)).collect());
    let bulk_report_ops = median(bulk.iter().map(|b| b.report_ops).collect());
    let bulk_report_ms = median(bulk.iter().map(|b| b.report_ms).collect());
    let p50 = median(bulk.iter().map(|b| b.p50_ms).collect());
    let p99 = median(bulk.iter().map(|b| b.p99_ms).collect());
    let max_conc = median(bulk.iter().map(|b| b.max_concurrency as f64).collect());
    let vs_loop = loop_scaled_s / bulk_wall_s;
    let vs_seq = seq_wall.as_secs_f64() / bulk_wall_s;
    let loop_s = median(loops.clone());
    let vs_in_process = loop_s / bulk_wall_s;
    let rtt = latency::rtt_from_env();

    println!();
    println!(
        "offset-reset benchmark — {}",
        tidemark_tests::bench::build_description(BIN)
    );
    println!(
        "{n_groups} groups x {n_parts} partitions = {n_offsets} offsets per reset; {n_runs} bulk runs paired with {n_runs} in-process loops (alternating order), medians reported"
    );
    println!("{}", latency::describe(rtt));
    println!("load average: {}", tidemark_tests::bench::load_average());
    println!();
    println!("  offset-reset-bulk --execute (safety snapshot, default --max-concurrent), every run checked:");
    println!(
        "  {:>3}  {:>6}  {:>8}  {:>9}  {:>10}  {:>10}  {:>7}  {:>7}  {:>4}  snapshot",
        "run", "to", "wall s", "report ms", "ops/s wall", "ops/s rep.", "p50 ms", "p99 ms", "conc"
    );
    for (i, b) in bulk.iter().enumerate() {
        println!(
            "  {:>3}  {:>6}  {:>8.3}  {:>9.0}  {:>10.0}  {:>10.0}  {:>7.2}  {:>7.2}  {:>4}  {}",
            i + 1,
            b.target,
            b.wall.as_secs_f64(),
            b.report_ms,
            b.wall_ops(n_offsets),
            b.report_ops,
            b.p50_ms,
            b.p99_ms,
            b.max_concurrency,
            b.snapshot
        );
    }
    println!();
    let row = |name: &str, value: String| println!("  {name:<52} {value}");
    row("offsets reset per run", format!("{n_offsets}"));
    row(
        "bulk dry run (plan only, nothing changed), wall",
        format!("{:.3} s", plan_time.as_secs_f64()),
    );
    row("bulk wall time (median)", format!("{bulk_wall_s:.3} s"));
    row(
        "bulk report duration_ms (median)",
        format!("{bulk_report_ms:.0} ms"),
    );
    row(
        "bulk offsets/s, wall (median)",
        format!("{bulk_wall_ops:.0}"),
    );
    row(
        "bulk offsets/s, report (median)",
        format!("{bulk_report_ops:.0}"),
    );
    row(
        "bulk p50 / p99 group commit latency (median)",
        format!("{p50:.2} / {p99:.2} ms"),
    );
    row("bulk max concurrency (median)", format!("{max_conc:.0}"));
    row(
        "in-process one-group-at-a-time loop, wall (median)",
        format!(
            "{loop_s:.3} s  ({:.2} ms/group = 3 requests, {:.2} ms each; runs {})",
            loop_s * 1000.0 / n_groups as f64,
            loop_s * 1000.0 / n_groups as f64 / 3.0,
            loops
                .iter()
                .map(|s| format!("{s:.3}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
    row(
        "bulk --max-concurrent 1 (one process), wall",
        format!(
            "{:.3} s  (report {seq_report_ms:.0} ms, {:.0} offsets/s, p50 {seq_p50:.2} ms)",
            seq_wall.as_secs_f64(),
            n_offsets as f64 / seq_wall.as_secs_f64()
        ),
    );
    row(
        &format!("sequential CLI loop, per group ({n_base} groups)"),
        format!(
            "{per_group_ms:.1} ms  (median process {:.1} ms)",
            median(per_process)
        ),
    );
    row(
        &format!("sequential CLI loop scaled to {n_groups} groups"),
        format!(
            "{loop_scaled_s:.2} s  ({:.0} offsets/s)",
            n_offsets as f64 / loop_scaled_s
        ),
    );
    println!();
    row(
        "speed-up vs sequential CLI loop (goal >= 50x)",
        format!("{vs_loop:.1}x  {}", verdict(vs_loop >= GOAL_SPEEDUP)),
    );
    row(
        &format!(
            "speed-up vs in-process loop at {:.1} ms RTT (goal >= 50x at 2 ms)",
            rtt.map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        ),
        format!(
            "{vs_in_process:.1}x  {}",
            verdict(vs_in_process >= GOAL_VS_IN_PROCESS)
        ),
    );
    row(
        "speed-up vs bulk --max-concurrent 1 (reference)",
        format!("{vs_seq:.1}x"),
    );
    row(
        "offsets/s, wall (goal >= 5,000)",
        format!(
            "{bulk_wall_ops:.0}  {}",
            verdict(bulk_wall_ops >= GOAL_OFFSETS_PER_SEC)
        ),
    );
    row(
        "offsets/s, report (goal >= 5,000)",
        format!(
            "{bulk_report_ops:.0}  {}",
            verdict(bulk_report_ops >= GOAL_OFFSETS_PER_SEC)
        ),
    );
}

//! Offset snapshot and rollback benchmark on a real broker (tansu).
//!
//! `cargo bench -p tidemark-tests --bench offsets` — optional env: BENCH_GROUPS (1000),
//! BENCH_PARTITIONS (20), BENCH_BASELINE_GROUPS (100).
//!
//! Seeds BENCH_GROUPS groups × BENCH_PARTITIONS committed offsets, then times the real CLI:
//! `offset-rollback snapshot --all-groups`, and `rollback` (with its verification) after every
//! offset was moved. The baseline is the straightforward rdkafka approach — one consumer
//! instance per group reading (`committed`) and committing (`commit`) its offsets — timed on
//! BENCH_BASELINE_GROUPS groups in the same run and scaled per group.
//!
//! BENCH_OFFSETS_RUNS (1) repeats snapshot + rollback; BENCH_OFFSETS_BINS (comma-separated
//! paths) names builds of `tidemark` to time instead, in the same invocation and alternating
//! order (a paired comparison of two builds). BENCH_RTT_MS injects a round trip in front of the broker (see
//! `tidemark_tests::latency`); the figure is printed with the results.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tidemark::kafka::{CommittedOffset, GroupAdmin, KafkaConfig};
use tidemark_tests::{
    commit_groups, commits, create_and_fill, env_usize, latency, time_cli, Tansu,
};

const BIN: &str = env!("CARGO_BIN_EXE_tidemark-under-test");

fn offsets(topic: &str, partitions: usize, base: i64) -> Vec<CommittedOffset> {
    let values: Vec<i64> = (0..partitions as i64).map(|p| base + p).collect();
    commits(topic, &values)
}

fn baseline(
    bootstrap: &str,
    groups: &[String],
    topic: &str,
    partitions: usize,
) -> (Duration, Duration) {
    let mut read = Duration::ZERO;
    let mut write = Duration::ZERO;
    for g in groups {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", g)
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p as i32);
        }
        let t = Instant::now();
        let got = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed");
        read += t.elapsed();
        let mut commit = TopicPartitionList::new();
        for e in got.elements() {
            let off = match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            };
            commit
                .add_partition_offset(topic, e.partition(), Offset::Offset(off + 1))
                .expect("tpl");
        }
        let t = Instant::now();
        consumer.commit(&commit, CommitMode::Sync).expect("commit");
        write += t.elapsed();
    }
    (read, write)
}

/// Snapshot of every group (id `id`), every offset moved to `moved + partition`, rollback to
/// the snapshot with its verification; both commands' reports checked. Returns their times.
#[allow(clippy::too_many_arguments)]
async fn snapshot_and_rollback(
    bin: &str,
    bs: &str,
    path: &str,
    id: &str,
    admin: &GroupAdmin,
    groups: &[String],
    (topic, n_parts): (&str, usize),
    moved: i64,
) -> (Duration, Duration) {
    let n_groups = groups.len();
    let (snap_time, snap) = time_cli(
        bin,
        &[
            "offset-rollback",
            "snapshot",
            "-p",
            path,
            "--all-groups",
            "--bootstrap-servers",
            bs,
            "-s",
            id,
            "--max-concurrent",
            "100",
            "-f",
            "json",
        ],
    );
    assert_eq!(snap["groups"], n_groups as u64);
    assert_eq!(snap["offsets"], (n_groups * n_parts) as u64);

    commit_groups(admin, groups, &offsets(topic, n_parts, moved), 100).await;
    let (rb_time, rb) = time_cli(
        bin,
        &[
            "offset-rollback",
            "rollback",
            "-p",
            path,
            "-s",
            id,
            "--bootstrap-servers",
            bs,
            "--max-concurrent",
            "100",
            "-f",
            "json",
        ],
    );
    assert_eq!(rb["status"], "success");
    assert_eq!(rb["offsets_restored"], (n_groups * n_parts) as u64);
    assert_eq!(rb["verification"]["matched"], true);
    (snap_time, rb_time)
}

#[tokio::main]
async fn main() {
    let n_groups = env_usize("BENCH_GROUPS", 1000);
    let n_parts = env_usize("BENCH_PARTITIONS", 20);
    let n_base = env_usize("BENCH_BASELINE_GROUPS", 100).min(n_groups);
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    let topic = "bench-offsets";
    create_and_fill(&bs, topic, n_parts as i32, 1).await;
    let admin = GroupAdmin::connect(&KafkaConfig::new(bs.clone()))
        .await
        .expect("connect");
    let groups: Vec<String> = (0..n_groups)
        .map(|i| format!("bench-group-{i:04}"))
        .collect();
    let seed = Instant::now();
    commit_groups(&admin, &groups, &offsets(topic, n_parts, 100), 100).await;
    println!(
        "seeded {n_groups} groups x {n_parts} partitions in {:?}",
        seed.elapsed()
    );

    let store = tempfile::tempdir().expect("tempdir");
    let path = store.path().to_str().expect("utf8");
    // The binary under test, or the builds named in BENCH_OFFSETS_BINS (comma-separated
    // paths), run in the same invocation in alternating order for a paired comparison.
    let listed = std::env::var("BENCH_OFFSETS_BINS").unwrap_or_default();
    let mut bins: Vec<(&str, &str)> = listed
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(|b| (b, b))
        .collect();
    if bins.is_empty() {
        bins.push(("this build", BIN));
    }
    let n_runs = env_usize("BENCH_OFFSETS_RUNS", 1).max(1);
    // (label, snapshot s, rollback s) per run.
    let mut timed: Vec<(&str, f64, f64)> = Vec::new();
    let mut moved = 5000;
    for run in 0..n_runs * bins.len() {
        let (label, bin) = bins[(run + run / bins.len()) % bins.len()];
        let (snap_time, rb_time) = snapshot_and_rollback(
            bin,
            &bs,
            path,
            &format!("bench-{run}"),
            &admin,
            &groups,
            (topic, n_parts),
            moved,
        )
        .await;
        moved += 1000;
        timed.push((label, snap_time.as_secs_f64(), rb_time.as_secs_f64()));
    }
    let (snap_time, rb_time) = (
        Duration::from_secs_f64(timed[0].1),
        Duration::from_secs_f64(timed[0].2),
    );

    let (b_read, b_write) = baseline(&bs, &groups[..n_base], topic, n_parts);
    let per = |d: Duration, n: usize| d.as_secs_f64() * 1000.0 / n as f64;
    println!();
    println!(
        "offsets benchmark: {n_groups} groups x {n_parts} partitions = {} offsets",
        n_groups * n_parts
    );
    println!("{}", latency::describe(latency::rtt_from_env()));
    println!("load average: {}", tidemark_tests::bench::load_average());
    if timed.len() > 1 {
        println!("  runs in order (snapshot s, rollback + verify s):");
        for (label, s, r) in &timed {
            println!("    {s:>7.3}  {r:>7.3}  {label}");
        }
        for (label, _) in &bins {
            let mine = |f: fn(&(&str, f64, f64)) -> f64| {
                tidemark_tests::bench::median(
                    timed.iter().filter(|t| t.0 == *label).map(f).collect(),
                )
            };
            println!(
                "  median snapshot {:.3} s, rollback + verify {:.3} s: {label}",
                mine(|t| t.1),
                mine(|t| t.2)
            );
        }
    }
    println!(
        "  tidemark snapshot (CLI, end to end):  {:>8.2} s  ({:.2} ms/group)   target <= 5 s",
        snap_time.as_secs_f64(),
        per(snap_time, n_groups)
    );
    println!(
        "  tidemark rollback + verify (CLI):     {:>8.2} s  ({:.2} ms/group)   target <= 10 s",
        rb_time.as_secs_f64(),
        per(rb_time, n_groups)
    );
    println!(
        "  baseline rdkafka consumer per group:  read {:.2} ms/group, commit {:.2} ms/group ({n_base} groups)",
        per(b_read, n_base),
        per(b_write, n_base)
    );
    println!(
        "  baseline scaled to {n_groups} groups:       read {:.2} s, commit {:.2} s",
        per(b_read, n_base) * n_groups as f64 / 1000.0,
        per(b_write, n_base) * n_groups as f64 / 1000.0
    );
}

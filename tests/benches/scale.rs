//! Scale benchmark: backup and restore cost against data size and partition count, on a real
//! broker (tansu on loopback), with a table and a PNG plot of the results.
//!
//! `cargo bench -p tidemark-tests --bench scale` (add `--profile dev` for a quick unoptimised
//! build). Optional env:
//!
//! - `BENCH_SCALE_SIZES_MB` (`1024,4096,16384`): the sizes of the size series, MiB of record data
//!   (key + value + header bytes); empty skips the series;
//! - `BENCH_SCALE_SIZE_PARTITIONS` (8): partitions of the topic in the size series;
//! - `BENCH_SCALE_PARTITIONS` (`8,32,128,256`): the partition counts of the partition series;
//!   empty skips the series;
//! - `BENCH_SCALE_PARTITIONS_MB` (1024): MiB of record data in every partition-series run (a
//!   point that both series share is measured once);
//! - `BENCH_SCALE_RUNS` (1): backups and restores measured per point; the fastest run counts for
//!   throughput, the largest peak RSS for memory;
//! - `BENCH_SCALE_ENGINE` (`memory`): tansu's storage engine, `memory` (every record in the
//!   broker's RAM: the broker holds one copy of the data at a time, so the largest size must fit
//!   in RAM beside everything else) or `sqlite` (a database file under `BENCH_SCALE_DIR`: slower,
//!   but bounded by disk);
//! - `BENCH_SCALE_CODEC` (`lz4`): the backups' `--compression`;
//! - `BENCH_SCALE_CONCURRENCY` (8): the restore's `restore.max_concurrent_partitions`;
//! - `BENCH_SCALE_BACKUP_ARGS`, `BENCH_SCALE_RESTORE_ARGS`: extra arguments for every `tidemark
//!   backup` / `tidemark restore` run (whitespace-separated);
//! - `BENCH_SCALE_DIR` (the system temporary directory): where the backups (and the sqlite
//!   database) are written, each deleted once its point is done;
//! - `BENCH_SCALE_OUT` (`<system temporary directory>/tidemark-bench-scale`): where the results
//!   are written: `scale.png` (the plot), `scale.csv` (one row per measured run) and
//!   `scale.txt` (the table and the goals, as printed). docs/perf/ holds the committed ones,
//!   made with `BENCH_SCALE_OUT=../docs/perf` (the bench runs in tests/);
//! - `BENCH_SCALE_TRACE=1`: print each run's resident set and CPU time every second, its
//!   busiest threads, and its stderr.
//!
//! What it measures, for every point (a data size and a partition count):
//!
//! 1. A fresh broker; a topic filled with the backup benchmark's ~1 KiB order events (keys, a
//!    `trace-id` header on every 4th record; every partition ends with a single-record batch, as
//!    tansu's high watermark is the last batch's base offset + 1). The producer generates the
//!    records as it goes and keeps per partition only a count and a fingerprint sum, so the
//!    benchmark's memory does not grow with the size.
//! 2. Backup: the real CLI (`tidemark-under-test backup --compression lz4`, with
//!    `-X fetch.wait.max.ms=5` as in the backup benchmark: tansu holds every fetch for the whole
//!    wait) into a fresh directory, under the measuring helper (wall time, user + system CPU, the
//!    process's own peak RSS from `wait4`, its VmHWM polled every 10 ms). Checked: the report's
//!    record and byte counts, and the backup read back through the library one segment at a time
//!    (offsets from 0 without a gap, per partition the record count and a SHA-256-based
//!    fingerprint sum of keys, values and headers equal to what was produced).
//! 3. The source topic is deleted (the broker holds one copy at a time), then restore: the real
//!    CLI (`restore --config FILE`, filesystem storage, `topic_mapping` to a fresh topic,
//!    `create_topics`, `max_concurrent_partitions` 8), measured the same way. Checked: the
//!    report's counts, and the target read back by a plain consumer with a bounded prefetch
//!    queue (32 MiB), per partition: offsets from 0 without a gap, the record count, the
//!    fingerprint sum and the timestamp sum equal to the source's. The benchmark's own peak RSS
//!    during each check is printed (it stays flat whatever the size).
//! 4. The table: per point and operation, wall seconds, MiB/s, seconds per GiB, CPU seconds
//!    (and per GiB), peak RSS, the broker's CPU, and the 1-minute load average before and after
//!    the run (the machine may be shared: wall-clock figures move with the load; CPU seconds per
//!    GiB much less).
//! 5. The goals, PASS/FAIL (a miss does not panic): seconds per GiB within 15 % across the
//!    sizes (largest / smallest ≤ 1.15, per operation), peak RSS ≤ 256 MiB at every size and
//!    partition count, throughput at the largest partition count ≥ 0.8× the smallest's.
//! 6. The plot (`scale.png`): MiB/s and peak RSS against size and against partitions.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use tidemark::backup::read::{load_manifests, read_segment};
use tidemark::storage::{Storage, StorageOptions};
use tidemark_tests::bench::{
    args_from_env, build_description, create_topic, delete_topic, fingerprint, load1, load_average,
    measure_helper_if_asked, proc_status_kib, produce, read_back, reset_peak_rss, run_measured,
    verdict, Measured, Produced, MIB,
};
use tidemark_tests::{env_usize, Tansu};

const BIN: &str = env!("CARGO_BIN_EXE_tidemark-under-test");
const SOURCE: &str = "bench-scale";
const BACKUP_ID: &str = "scale";
const GIB: f64 = 1024.0 * MIB;

const GOAL_LINEAR: f64 = 1.15;
const GOAL_RSS_MIB: f64 = 256.0;
const GOAL_PARTITIONS: f64 = 0.8;

// ---------------------------------------------------------------------------------------------
// Settings

#[derive(Clone, Copy, PartialEq)]
enum Engine {
    Memory,
    Sqlite,
}

struct Settings {
    sizes_mb: Vec<u64>,
    size_partitions: usize,
    partitions: Vec<usize>,
    partitions_mb: u64,
    runs: usize,
    engine: Engine,
    codec: String,
    concurrency: usize,
    backup_args: Vec<String>,
    restore_args: Vec<String>,
    dir: PathBuf,
    out: PathBuf,
    trace: bool,
}

fn list_from_env(var: &str, default: &str) -> Vec<u64> {
    std::env::var(var)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("{var}: '{s}' is not a whole number"))
                .max(1)
        })
        .collect()
}

impl Settings {
    fn from_env() -> Settings {
        let engine = match std::env::var("BENCH_SCALE_ENGINE").as_deref() {
            Err(_) | Ok("memory") => Engine::Memory,
            Ok("sqlite") => Engine::Sqlite,
            Ok(other) => panic!("BENCH_SCALE_ENGINE: '{other}' is neither memory nor sqlite"),
        };
        Settings {
            sizes_mb: list_from_env("BENCH_SCALE_SIZES_MB", "1024,4096,16384"),
            size_partitions: env_usize("BENCH_SCALE_SIZE_PARTITIONS", 8).clamp(1, 10_000),
            partitions: list_from_env("BENCH_SCALE_PARTITIONS", "8,32,128,256")
                .into_iter()
                .map(|p| p.min(10_000) as usize)
                .collect(),
            partitions_mb: env_usize("BENCH_SCALE_PARTITIONS_MB", 1024).max(1) as u64,
            runs: env_usize("BENCH_SCALE_RUNS", 1).max(1),
            engine,
            codec: std::env::var("BENCH_SCALE_CODEC").unwrap_or_else(|_| "lz4".into()),
            concurrency: env_usize("BENCH_SCALE_CONCURRENCY", 8).max(1),
            backup_args: args_from_env("BENCH_SCALE_BACKUP_ARGS"),
            restore_args: args_from_env("BENCH_SCALE_RESTORE_ARGS"),
            dir: std::env::var_os("BENCH_SCALE_DIR").map_or_else(std::env::temp_dir, Into::into),
            out: std::env::var_os("BENCH_SCALE_OUT").map_or_else(
                || std::env::temp_dir().join("tidemark-bench-scale"),
                Into::into,
            ),
            trace: std::env::var("BENCH_SCALE_TRACE").is_ok_and(|v| v == "1"),
        }
    }

    fn engine_name(&self) -> &'static str {
        match self.engine {
            Engine::Memory => "memory",
            Engine::Sqlite => "sqlite",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Results

/// One measured backup or restore.
struct OpRun {
    op: &'static str,
    run: usize,
    proc: Measured,
    load_before: f64,
    load_after: f64,
    /// Reading the output back and comparing it (not part of the figures).
    check: Duration,
    /// The benchmark's own peak RSS while it checked, KiB.
    checker_kib: u64,
}

impl OpRun {
    fn wall(&self) -> f64 {
        self.proc.wall.as_secs_f64()
    }

    fn cpu(&self) -> f64 {
        self.proc.user + self.proc.sys
    }

    fn rss_mib(&self) -> f64 {
        self.proc.maxrss_kib as f64 / 1024.0
    }
}

/// One data size and partition count, measured.
struct Point {
    mb: u64,
    partitions: usize,
    bytes: u64,
    records: u64,
    produce: Duration,
    /// The broker's resident set once the source was produced, KiB.
    broker_kib: u64,
    stored: u64,
    runs: Vec<OpRun>,
}

impl Point {
    fn gib(&self) -> f64 {
        self.bytes as f64 / GIB
    }

    /// The fastest run of `op`.
    fn best(&self, op: &str) -> Option<&OpRun> {
        self.runs
            .iter()
            .filter(|r| r.op == op)
            .min_by(|a, b| a.wall().total_cmp(&b.wall()))
    }

    fn mib_s(&self, op: &str) -> f64 {
        self.best(op)
            .map_or(0.0, |r| self.bytes as f64 / MIB / r.wall())
    }

    fn s_per_gib(&self, op: &str) -> f64 {
        self.best(op).map_or(0.0, |r| r.wall() / self.gib())
    }

    /// The largest peak RSS of `op`'s runs, MiB.
    fn rss_mib(&self, op: &str) -> f64 {
        self.runs
            .iter()
            .filter(|r| r.op == op)
            .map(OpRun::rss_mib)
            .fold(0.0, f64::max)
    }
}

// ---------------------------------------------------------------------------------------------
// Backup

/// Per partition, the sum of the backed-up records' timestamps (what a restored copy must hold).
type Timestamps = Vec<u64>;

fn backup_args(s: &Settings, bs: &str, path: &str, id: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        "backup",
        "--bootstrap-servers",
        bs,
        "--path",
        path,
        "--topics",
        SOURCE,
        "-X",
        "fetch.wait.max.ms=5",
        "--backup-id",
        id,
        "--compression",
        &s.codec,
        "--format",
        "json",
    ]
    .map(String::from)
    .to_vec();
    args.extend(s.backup_args.iter().cloned());
    args
}

/// Reads a backup back through the library, one segment at a time, and compares it with what
/// was produced; returns the per-partition timestamp sums.
async fn check_backup(dir: &Path, produced: &Produced) -> Timestamps {
    let storage = Storage::open(dir.to_str().expect("utf8"), &StorageOptions::default())
        .expect("open backup storage");
    let manifests = load_manifests(&storage, BACKUP_ID).await.expect("manifest");
    assert_eq!(manifests.len(), 1, "one shard");
    let topic = manifests[0]
        .topics
        .get(SOURCE)
        .unwrap_or_else(|| panic!("no {SOURCE} in the manifest"));
    let n = produced.records.len();
    assert_eq!(topic.partition_data.len(), n, "partitions in the backup");
    let mut timestamps = vec![0u64; n];
    for (p, ts) in timestamps.iter_mut().enumerate() {
        let pd = &topic.partition_data[&(p as i32)];
        let want = produced.records[p];
        assert_eq!(
            (pd.start_offset, pd.end_offset, pd.records),
            (0, want as i64, want),
            "{SOURCE}-{p}: range in the manifest"
        );
        let mut next = 0i64;
        let mut fp = 0u64;
        for seg in &pd.segments {
            for r in read_segment(&storage, seg)
                .await
                .unwrap_or_else(|e| panic!("{SOURCE}-{p}: {e}"))
            {
                assert_eq!(r.offset, next, "{SOURCE}-{p}: offsets in the backup");
                next += 1;
                let headers: Vec<(&str, Option<&[u8]>)> = r
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_deref()))
                    .collect();
                fp = fp.wrapping_add(fingerprint(r.key.as_deref(), r.value.as_deref(), &headers));
                *ts = ts.wrapping_add(r.timestamp as u64);
            }
        }
        assert_eq!(next, want as i64, "{SOURCE}-{p}: records in the backup");
        assert_eq!(
            fp, produced.fingerprints[p],
            "{SOURCE}-{p}: the backup holds other records than were produced"
        );
    }
    timestamps
}

/// One measured backup into `dir`, checked; returns it, its stored bytes and the timestamps.
async fn backup_once(
    s: &Settings,
    bs: &str,
    broker_pid: &str,
    dir: &Path,
    run: usize,
    produced: &Produced,
) -> (OpRun, u64, Timestamps) {
    std::fs::create_dir_all(dir).expect("backup dir");
    let path = dir.to_str().expect("utf8");
    let load_before = load1();
    let proc = run_measured(BIN, &backup_args(s, bs, path, BACKUP_ID), broker_pid);
    let load_after = load1();
    if s.trace {
        proc.print_trace(&format!("backup {run}"));
    }
    let r = proc.json("backup");
    let total = produced.total_records();
    assert_eq!(r["complete"], true, "backup: {r}");
    assert_eq!(r["records"], total, "backup: records in the report");
    assert_eq!(r["bytes"], produced.bytes, "backup: bytes in the report");
    let stored = r["stored_bytes"].as_u64().expect("stored_bytes");
    let started = Instant::now();
    reset_peak_rss();
    let timestamps = check_backup(dir, produced).await;
    let run_out = OpRun {
        op: "backup",
        run,
        proc,
        load_before,
        load_after,
        check: started.elapsed(),
        checker_kib: proc_status_kib("self", "VmHWM:"),
    };
    (run_out, stored, timestamps)
}

// ---------------------------------------------------------------------------------------------
// Restore

/// A YAML string (JSON's quoting is valid YAML).
fn yaml_str(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// Writes the restore configuration for `target` and returns its path.
fn write_config(s: &Settings, store: &Path, bs: &str, restore_id: &str, target: &str) -> String {
    let text = format!(
        "mode: restore\n\
         backup_id: {BACKUP_ID}\n\
         restore_id: {restore_id}\n\
         target:\n  \
           bootstrap_servers: [{}]\n  \
           topics:\n    include: [{SOURCE}]\n\
         storage:\n  backend: filesystem\n  path: {}\n\
         restore:\n  \
           topic_mapping:\n    {SOURCE}: {target}\n  \
           create_topics: true\n  \
           max_concurrent_partitions: {}\n",
        yaml_str(bs),
        yaml_str(store.to_str().expect("utf8")),
        s.concurrency,
    );
    let path = store.join(format!("{restore_id}.yaml"));
    std::fs::write(&path, text).expect("write the restore configuration");
    path.to_str().expect("utf8").to_string()
}

/// Reads `topic` back with a plain consumer (prefetch bounded to 32 MiB) and checks, per
/// partition: offsets from 0 without a gap, the produced count, fingerprint sum and timestamp
/// sum, and nothing more (a short read past the last record).
fn check_target(bs: &str, topic: &str, produced: &Produced, timestamps: &Timestamps) {
    let got = read_back(bs, topic, &produced.records, Duration::from_secs(120));
    assert_eq!(
        got.fingerprints, produced.fingerprints,
        "{topic}: keys/values/headers per partition"
    );
    assert_eq!(
        &got.timestamps, timestamps,
        "{topic}: timestamps per partition"
    );
}

/// One measured restore from `store` into a fresh topic, checked, then the topic deleted.
async fn restore_once(
    s: &Settings,
    bs: &str,
    broker_pid: &str,
    store: &Path,
    run: usize,
    produced: &Produced,
    timestamps: &Timestamps,
) -> OpRun {
    let restore_id = format!("scale-r{run}");
    let target = format!("{SOURCE}-restored-{run}");
    let cfg = write_config(s, store, bs, &restore_id, &target);
    let mut args: Vec<String> = ["restore", "--config", &cfg, "-f", "json"]
        .map(String::from)
        .to_vec();
    args.extend(s.restore_args.iter().cloned());
    let load_before = load1();
    let proc = run_measured(BIN, &args, broker_pid);
    let load_after = load1();
    if s.trace {
        proc.print_trace(&restore_id);
    }
    let r = proc.json(&format!("restore {restore_id}"));
    assert_eq!(r["complete"], true, "{restore_id}: {r}");
    assert_eq!(
        r["records"],
        produced.total_records(),
        "{restore_id}: records in the report"
    );
    assert_eq!(
        r["bytes"], produced.bytes,
        "{restore_id}: bytes in the report"
    );
    let started = Instant::now();
    reset_peak_rss();
    check_target(bs, &target, produced, timestamps);
    let run_out = OpRun {
        op: "restore",
        run,
        proc,
        load_before,
        load_after,
        check: started.elapsed(),
        checker_kib: proc_status_kib("self", "VmHWM:"),
    };
    delete_topic(bs, &target).await;
    run_out
}

// ---------------------------------------------------------------------------------------------
// One point

fn print_run(p: &Point, r: &OpRun) {
    println!(
        "  {} run {}: {:.2} s, {:.1} MiB/s, {:.2} s/GiB, CPU {:.2} s, peak RSS {:.1} MiB, broker CPU {:.2} s, load {:.2} -> {:.2}; checked in {:.1} s (checker peak RSS {:.0} MiB)",
        r.op,
        r.run,
        r.wall(),
        p.bytes as f64 / MIB / r.wall(),
        r.wall() / p.gib(),
        r.cpu(),
        r.rss_mib(),
        r.proc.broker_cpu,
        r.load_before,
        r.load_after,
        r.check.as_secs_f64(),
        r.checker_kib as f64 / 1024.0
    );
}

async fn measure_point(s: &Settings, mb: u64, partitions: usize) -> Point {
    println!(
        "point: {mb} MiB over {partitions} partitions (tansu {} engine), load {}",
        s.engine_name(),
        load_average()
    );
    let kafka = match s.engine {
        Engine::Memory => Tansu::start(),
        Engine::Sqlite => Tansu::start_sqlite(),
    };
    let bs = kafka.bootstrap();
    let broker_pid = kafka.server.pid().to_string();
    create_topic(&bs, SOURCE, partitions).await;
    let produced = produce(&bs, SOURCE, partitions, mb * 1024 * 1024);
    let broker_kib = proc_status_kib(&broker_pid, "VmRSS:");
    println!(
        "  produced {} records, {:.1} MiB in {:.1} s ({:.1} MiB/s); broker RSS {:.0} MiB",
        produced.total_records(),
        produced.bytes as f64 / MIB,
        produced.wall.as_secs_f64(),
        produced.bytes as f64 / MIB / produced.wall.as_secs_f64(),
        broker_kib as f64 / 1024.0
    );
    let store = tempfile::Builder::new()
        .prefix("tidemark-bench-scale-")
        .tempdir_in(&s.dir)
        .expect("tempdir");
    let mut point = Point {
        mb,
        partitions,
        bytes: produced.bytes,
        records: produced.total_records(),
        produce: produced.wall,
        broker_kib,
        stored: 0,
        runs: Vec::new(),
    };
    // The first backup is kept for the restores; later ones go once checked.
    let mut timestamps = Vec::new();
    for run in 1..=s.runs {
        let dir = if run == 1 {
            store.path().to_path_buf()
        } else {
            store.path().join(format!("run-{run}"))
        };
        let (r, stored, ts) = backup_once(s, &bs, &broker_pid, &dir, run, &produced).await;
        print_run(&point, &r);
        if run == 1 {
            timestamps = ts;
            point.stored = stored;
        } else {
            std::fs::remove_dir_all(&dir).expect("remove a checked backup");
        }
        point.runs.push(r);
    }
    // The broker holds one copy of the data at a time.
    delete_topic(&bs, SOURCE).await;
    for run in 1..=s.runs {
        let r = restore_once(
            s,
            &bs,
            &broker_pid,
            store.path(),
            run,
            &produced,
            &timestamps,
        )
        .await;
        print_run(&point, &r);
        point.runs.push(r);
    }
    point
}

// ---------------------------------------------------------------------------------------------
// Report

fn table(s: &Settings, points: &BTreeMap<(u64, usize), Point>) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "  {:>7} {:>5} {:<7} {:>3} {:>8} {:>7} {:>6} {:>7} {:>9} {:>7} {:>7} {:>8} {:>11} {:>7}",
        "GiB",
        "parts",
        "op",
        "run",
        "wall s",
        "MiB/s",
        "s/GiB",
        "CPU s",
        "CPU s/GiB",
        "RSS MiB",
        "VmHWM",
        "broker s",
        "load1 b->a",
        "check s"
    );
    for p in points.values() {
        for r in &p.runs {
            let _ = writeln!(
                t,
                "  {:>7.2} {:>5} {:<7} {:>3} {:>8.2} {:>7.1} {:>6.2} {:>7.2} {:>9.2} {:>7.1} {:>7.1} {:>8.2} {:>5.2}->{:<5.2} {:>7.1}",
                p.gib(),
                p.partitions,
                r.op,
                r.run,
                r.wall(),
                p.bytes as f64 / MIB / r.wall(),
                r.wall() / p.gib(),
                r.cpu(),
                r.cpu() / p.gib(),
                r.rss_mib(),
                r.proc.sampled_hwm_kib as f64 / 1024.0,
                r.proc.broker_cpu,
                r.load_before,
                r.load_after,
                r.check.as_secs_f64()
            );
        }
    }
    let _ = writeln!(t);
    for p in points.values() {
        let _ = writeln!(
            t,
            "  {:.2} GiB / {} partitions: {} records, produced in {:.1} s, broker RSS after producing {:.0} MiB, backup stored {:.1} MiB ({}), checker peak RSS {:.0} MiB",
            p.gib(),
            p.partitions,
            p.records,
            p.produce.as_secs_f64(),
            p.broker_kib as f64 / 1024.0,
            p.stored as f64 / MIB,
            s.codec,
            p.runs.iter().map(|r| r.checker_kib).max().unwrap_or(0) as f64 / 1024.0
        );
    }
    t
}

/// The goals, one line each.
fn goals(s: &Settings, points: &BTreeMap<(u64, usize), Point>) -> String {
    let mut t = String::new();
    let mut row = |name: String, value: String| {
        let _ = writeln!(t, "  {name:<70} {value}");
    };
    let sizes: Vec<&Point> = s
        .sizes_mb
        .iter()
        .filter_map(|mb| points.get(&(*mb, s.size_partitions)))
        .collect();
    for op in ["backup", "restore"] {
        if sizes.len() < 2 {
            row(
                format!("{op}: s/GiB across sizes (goal largest/smallest <= {GOAL_LINEAR})"),
                "n/a (fewer than two sizes)".into(),
            );
            continue;
        }
        let v: Vec<f64> = sizes.iter().map(|p| p.s_per_gib(op)).collect();
        let cpu: Vec<f64> = sizes
            .iter()
            .filter_map(|p| p.best(op).map(|r| r.cpu() / p.gib()))
            .collect();
        let spread = |v: &[f64]| {
            v.iter().copied().fold(0.0, f64::max) / v.iter().copied().fold(f64::INFINITY, f64::min)
        };
        let list = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.2}"))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        row(
            format!("{op}: s/GiB across sizes (goal largest/smallest <= {GOAL_LINEAR})"),
            format!(
                "{} -> {:.2}  {}",
                list(&v),
                spread(&v),
                verdict(spread(&v) <= GOAL_LINEAR)
            ),
        );
        row(
            format!("{op}: CPU s/GiB across sizes (no goal; steadier under load)"),
            format!("{} -> {:.2}", list(&cpu), spread(&cpu)),
        );
    }
    let rss = points
        .values()
        .flat_map(|p| p.runs.iter())
        .map(OpRun::rss_mib)
        .fold(0.0, f64::max);
    row(
        format!("peak RSS, every size and partition count (goal <= {GOAL_RSS_MIB:.0} MiB)"),
        format!("{rss:.1} MiB  {}", verdict(rss <= GOAL_RSS_MIB)),
    );
    let (lo, hi) = (
        s.partitions.iter().min().copied(),
        s.partitions.iter().max().copied(),
    );
    for op in ["backup", "restore"] {
        let pair = lo.zip(hi).filter(|(lo, hi)| lo < hi).and_then(|(lo, hi)| {
            Some((
                points.get(&(s.partitions_mb, lo))?,
                points.get(&(s.partitions_mb, hi))?,
            ))
        });
        let name = format!(
            "{op}: MiB/s at {} / at {} partitions (goal >= {GOAL_PARTITIONS})",
            hi.unwrap_or(0),
            lo.unwrap_or(0)
        );
        match pair {
            Some((a, b)) => {
                let ratio = b.mib_s(op) / a.mib_s(op);
                row(
                    name,
                    format!(
                        "{:.1} / {:.1} = {ratio:.2}  {}",
                        b.mib_s(op),
                        a.mib_s(op),
                        verdict(ratio >= GOAL_PARTITIONS)
                    ),
                );
            }
            None => row(name, "n/a (fewer than two partition counts)".into()),
        }
    }
    t
}

fn csv(points: &BTreeMap<(u64, usize), Point>) -> String {
    let mut t = String::from(
        "mib,partitions,bytes,records,op,run,wall_s,mib_s,s_per_gib,cpu_s,rss_mib,vmhwm_mib,broker_cpu_s,load1_before,load1_after,check_s,checker_rss_mib\n",
    );
    for p in points.values() {
        for r in &p.runs {
            let _ = writeln!(
                t,
                "{},{},{},{},{},{},{:.3},{:.2},{:.3},{:.3},{:.1},{:.1},{:.3},{:.2},{:.2},{:.2},{:.1}",
                p.mb,
                p.partitions,
                p.bytes,
                p.records,
                r.op,
                r.run,
                r.wall(),
                p.bytes as f64 / MIB / r.wall(),
                r.wall() / p.gib(),
                r.cpu(),
                r.rss_mib(),
                r.proc.sampled_hwm_kib as f64 / 1024.0,
                r.proc.broker_cpu,
                r.load_before,
                r.load_after,
                r.check.as_secs_f64(),
                r.checker_kib as f64 / 1024.0
            );
        }
    }
    t
}

fn main() {
    measure_helper_if_asked();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(bench());
}

async fn bench() {
    let s = Settings::from_env();
    let build = build_description(BIN).replace(
        "tansu memory engine",
        &format!("tansu {} engine", s.engine_name()),
    );
    let load_before = load_average();
    let started = Instant::now();
    let mut wanted: Vec<(u64, usize)> = s
        .sizes_mb
        .iter()
        .map(|mb| (*mb, s.size_partitions))
        .collect();
    wanted.extend(s.partitions.iter().map(|p| (s.partitions_mb, *p)));
    // Smallest first: a run stopped early still leaves the most points.
    wanted.sort_by_key(|(mb, _)| *mb);
    let mut points: BTreeMap<(u64, usize), Point> = BTreeMap::new();
    for key in wanted {
        if points.contains_key(&key) {
            continue;
        }
        let p = measure_point(&s, key.0, key.1).await;
        points.insert(key, p);
        // Written after every point, so a long run that is stopped still leaves its results.
        write_results(&s, &build, &load_before, started, &points, false);
    }
    write_results(&s, &build, &load_before, started, &points, true);
}

/// Writes scale.txt, scale.csv and scale.png to `BENCH_SCALE_OUT`; prints the report when
/// `last`.
fn write_results(
    s: &Settings,
    build: &str,
    load_before: &str,
    started: Instant,
    points: &BTreeMap<(u64, usize), Point>,
    last: bool,
) {
    let mut report = String::new();
    let _ = writeln!(report, "scale benchmark — {build}");
    let _ = writeln!(
        report,
        "load average (1/5/15 min) before: {load_before}, after: {}; {:.0} s in all",
        load_average(),
        started.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        report,
        "sizes {:?} MiB over {} partitions; partitions {:?} at {} MiB; {} run(s) per point; backup --compression {}, restore max_concurrent_partitions {}",
        s.sizes_mb, s.size_partitions, s.partitions, s.partitions_mb, s.runs, s.codec, s.concurrency
    );
    if !s.backup_args.is_empty() || !s.restore_args.is_empty() {
        let _ = writeln!(
            report,
            "extra arguments: backup {:?}, restore {:?}",
            s.backup_args, s.restore_args
        );
    }
    let _ = writeln!(
        report,
        "MiB/s and s/GiB: record bytes (key + value + headers) / the process's wall time; RSS = ru_maxrss of the process alone (wait4), VmHWM = /proc polled every 10 ms; load1 b->a = 1-minute load average before -> after the run"
    );
    let _ = writeln!(report);
    report.push_str(&table(s, points));
    let _ = writeln!(report);
    report.push_str(&goals(s, points));
    let _ = writeln!(
        report,
        "  correctness (every run): reports' counts; backups read back segment by segment and restored topics read back, per partition offsets from 0, counts, fingerprints (and timestamps) equal to the source"
    );
    if last {
        println!();
        print!("{report}");
    }

    std::fs::create_dir_all(&s.out).expect("BENCH_SCALE_OUT directory");
    std::fs::write(s.out.join("scale.txt"), &report).expect("write scale.txt");
    std::fs::write(s.out.join("scale.csv"), csv(points)).expect("write scale.csv");
    let png = s.out.join("scale.png");
    let title = format!(
        "tidemark scale: tansu {} engine, {}, backup {}, load1 {:.1}-{:.1}",
        s.engine_name(),
        if cfg!(debug_assertions) {
            "dev build"
        } else {
            "release build"
        },
        s.codec,
        points
            .values()
            .flat_map(|p| p.runs.iter())
            .map(|r| r.load_before.min(r.load_after))
            .fold(f64::INFINITY, f64::min),
        points
            .values()
            .flat_map(|p| p.runs.iter())
            .map(|r| r.load_before.max(r.load_after))
            .fold(0.0, f64::max),
    );
    plot::draw(&png, &title, s, points).unwrap_or_else(|e| panic!("plot {}: {e}", png.display()));
    if last {
        println!(
            "written: {}, scale.csv and scale.txt beside it",
            png.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The plot

mod plot {
    //! The plot: four charts (MiB/s and peak RSS against size and against partitions) drawn by
    //! plotters onto an RGB buffer whose text comes from an 8x8 bitmap font (so no system font
    //! is needed), encoded as PNG.

    use std::collections::BTreeMap;
    use std::path::Path;

    use plotters::prelude::*;
    use plotters_backend::text_anchor::{HPos, VPos};
    use plotters_backend::{
        BackendColor, BackendCoord, BackendTextStyle, DrawingBackend, DrawingErrorKind,
    };

    use super::{Point, Settings, GOAL_RSS_MIB};

    /// An RGB canvas.
    pub struct Canvas {
        w: u32,
        h: u32,
        px: Vec<u8>,
    }

    impl Canvas {
        fn new(w: u32, h: u32) -> Canvas {
            Canvas {
                w,
                h,
                px: vec![255; (w * h * 3) as usize],
            }
        }

        fn put(&mut self, (x, y): BackendCoord, c: BackendColor) {
            if x < 0 || y < 0 || x >= self.w as i32 || y >= self.h as i32 {
                return;
            }
            let i = ((y as u32 * self.w + x as u32) * 3) as usize;
            let a = c.alpha.clamp(0.0, 1.0);
            for (k, v) in [c.rgb.0, c.rgb.1, c.rgb.2].into_iter().enumerate() {
                let old = f64::from(self.px[i + k]);
                self.px[i + k] = (old * (1.0 - a) + f64::from(v) * a).round() as u8;
            }
        }
    }

    /// The drawing backend over a [`Canvas`].
    pub struct Backend<'a>(&'a mut Canvas);

    /// Glyph scale for a font size (8x8 glyphs, at least 1x). Plotters lays text out with its
    /// own estimate (about 0.45 × size per character without a font engine): a glyph 8 pixels
    /// wide per 17.6 of size keeps legends and labels inside the boxes it computes.
    fn scale(size: f64) -> i32 {
        ((size / 17.6).round() as i32).max(1)
    }

    fn text_size(text: &str, size: f64) -> (i32, i32) {
        let s = scale(size);
        (text.chars().count() as i32 * 8 * s, 8 * s)
    }

    impl DrawingBackend for Backend<'_> {
        type ErrorType = std::io::Error;

        fn get_size(&self) -> (u32, u32) {
            (self.0.w, self.0.h)
        }

        fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<std::io::Error>> {
            Ok(())
        }

        fn present(&mut self) -> Result<(), DrawingErrorKind<std::io::Error>> {
            Ok(())
        }

        fn draw_pixel(
            &mut self,
            point: BackendCoord,
            color: BackendColor,
        ) -> Result<(), DrawingErrorKind<std::io::Error>> {
            self.0.put(point, color);
            Ok(())
        }

        fn draw_text<S: BackendTextStyle>(
            &mut self,
            text: &str,
            style: &S,
            pos: BackendCoord,
        ) -> Result<(), DrawingErrorKind<std::io::Error>> {
            let color = style.color();
            let s = scale(style.size());
            let (w, h) = text_size(text, style.size());
            let dx = match style.anchor().h_pos {
                HPos::Left => 0,
                HPos::Right => -w,
                HPos::Center => -w / 2,
            };
            let dy = match style.anchor().v_pos {
                VPos::Top => 0,
                VPos::Center => -h / 2,
                VPos::Bottom => -h,
            };
            let trans = style.transform();
            let basic = &font8x8::legacy::BASIC_LEGACY;
            for (i, ch) in text.chars().enumerate() {
                let glyph = basic.get(ch as usize).unwrap_or(&basic[b'?' as usize]);
                for (row, bits) in glyph.iter().enumerate() {
                    for col in 0..8 {
                        if bits >> col & 1 == 0 {
                            continue;
                        }
                        for sy in 0..s {
                            for sx in 0..s {
                                let x = (i as i32 * 8 + col) * s + sx + dx;
                                let y = row as i32 * s + sy + dy;
                                let (x, y) = trans.transform(x, y);
                                self.0.put((pos.0 + x, pos.1 + y), color);
                            }
                        }
                    }
                }
            }
            Ok(())
        }

        fn estimate_text_size<S: BackendTextStyle>(
            &self,
            text: &str,
            style: &S,
        ) -> Result<(u32, u32), DrawingErrorKind<std::io::Error>> {
            let (w, h) = text_size(text, style.size());
            Ok((w as u32, h as u32))
        }
    }

    type Series = Vec<(&'static str, RGBColor, Vec<(f64, f64)>)>;

    /// One chart: lines with points, log2 x axis, an optional horizontal goal line.
    fn chart<DB: DrawingBackend>(
        area: &DrawingArea<DB, plotters::coord::Shift>,
        caption: &str,
        x_desc: &str,
        y_desc: &str,
        series: &Series,
        goal: Option<f64>,
    ) -> Result<(), Box<dyn std::error::Error>>
    where
        DB::ErrorType: 'static,
    {
        let xs = series.iter().flat_map(|(_, _, v)| v.iter().map(|p| p.0));
        let (x_min, x_max) = xs.fold((f64::INFINITY, 0.0f64), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        });
        let y_max = series
            .iter()
            .flat_map(|(_, _, v)| v.iter().map(|p| p.1))
            .chain(goal)
            .fold(1.0f64, f64::max)
            * 1.15;
        let x_range = (x_min.max(1e-3) / 1.5)..(x_max.max(x_min * 2.0) * 1.5);
        let mut c = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 35))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(x_range.log_scale(), 0.0..y_max)?;
        c.configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .label_style(("sans-serif", 18))
            .axis_desc_style(("sans-serif", 18))
            .x_label_formatter(&|x| {
                if *x >= 10.0 {
                    format!("{x:.0}")
                } else {
                    format!("{x:.2}")
                        .trim_end_matches('0')
                        .trim_end_matches('.')
                        .to_string()
                }
            })
            .y_label_formatter(&|y| format!("{y:.0}"))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        if let Some(g) = goal {
            let (lo, hi) = (x_min.max(1e-3) / 1.5, x_max.max(x_min * 2.0) * 1.5);
            c.draw_series(LineSeries::new(
                vec![(lo, g), (hi, g)],
                RGBColor(200, 0, 0).stroke_width(1),
            ))?
            .label(format!("goal <= {g:.0} MiB"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(200, 0, 0)));
        }
        for (name, color, points) in series {
            let color = *color;
            c.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            c.draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))?;
        }
        c.configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font(("sans-serif", 18))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    }

    const BACKUP: RGBColor = RGBColor(31, 119, 180);
    const RESTORE: RGBColor = RGBColor(230, 120, 20);

    /// Draws the four charts into `png`.
    pub fn draw(
        png: &Path,
        title: &str,
        s: &Settings,
        points: &BTreeMap<(u64, usize), Point>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let mut canvas = Canvas::new(1400, 1000);
        {
            let root = Backend(&mut canvas).into_drawing_area();
            let root = root.titled(title, ("sans-serif", 35))?;
            let cells = root.split_evenly((2, 2));
            let by_size: Vec<&Point> = s
                .sizes_mb
                .iter()
                .filter_map(|mb| points.get(&(*mb, s.size_partitions)))
                .collect();
            let by_parts: Vec<&Point> = s
                .partitions
                .iter()
                .filter_map(|p| points.get(&(s.partitions_mb, *p)))
                .collect();
            let series = |pts: &[&Point],
                          x: &dyn Fn(&Point) -> f64,
                          y: &dyn Fn(&Point, &str) -> f64|
             -> Series {
                ["backup", "restore"]
                    .iter()
                    .zip([BACKUP, RESTORE])
                    .map(|(op, color)| {
                        (*op, color, pts.iter().map(|&p| (x(p), y(p, op))).collect())
                    })
                    .collect()
            };
            let gib = |p: &Point| p.gib();
            let parts = |p: &Point| p.partitions as f64;
            let mib_s = |p: &Point, op: &str| p.mib_s(op);
            let rss = |p: &Point, op: &str| p.rss_mib(op);
            let size_note = format!("{} partitions", s.size_partitions);
            let parts_note = if s.partitions_mb.is_multiple_of(1024) {
                format!("{} GiB", s.partitions_mb / 1024)
            } else {
                format!("{} MiB", s.partitions_mb)
            };
            if !by_size.is_empty() {
                chart(
                    &cells[0],
                    &format!("throughput vs data size ({size_note})"),
                    "GiB of record data (log scale)",
                    "MiB/s",
                    &series(&by_size, &gib, &mib_s),
                    None,
                )?;
                chart(
                    &cells[2],
                    &format!("peak RSS vs data size ({size_note})"),
                    "GiB of record data (log scale)",
                    "peak RSS, MiB",
                    &series(&by_size, &gib, &rss),
                    Some(GOAL_RSS_MIB),
                )?;
            }
            if !by_parts.is_empty() {
                chart(
                    &cells[1],
                    &format!("throughput vs partitions ({parts_note})"),
                    "partitions (log scale)",
                    "MiB/s",
                    &series(&by_parts, &parts, &mib_s),
                    None,
                )?;
                chart(
                    &cells[3],
                    &format!("peak RSS vs partitions ({parts_note})"),
                    "partitions (log scale)",
                    "peak RSS, MiB",
                    &series(&by_parts, &parts, &rss),
                    Some(GOAL_RSS_MIB),
                )?;
            }
            root.present()?;
        }
        let file = std::io::BufWriter::new(std::fs::File::create(png)?);
        let mut enc = png::Encoder::new(file, canvas.w, canvas.h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header()?;
        w.write_image_data(&canvas.px)?;
        w.finish()?;
        Ok(())
    }
}

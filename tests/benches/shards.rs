//! Parallel restore across pods: one backup restored by one shard, then by two shards at once
//! (the two pods of an Indexed Job: `run --task` with `shardCount: 2` and JOB_COMPLETION_INDEX
//! 0 and 1, each with its own lease and checkpoint), on a real broker (tansu).
//!
//! `cargo bench -p tidemark-tests --bench shards` — optional env: BENCH_SHARDS_MB (128 MiB of
//! record data), BENCH_SHARDS_PARTITIONS (8), BENCH_SHARDS_PAIRS (2 pairs of runs, in
//! alternating order), BENCH_SHARDS_PIN (1: with at least 2 CPUs, the broker is pinned to CPU 0
//! and the restoring processes — this benchmark and its children — to CPU 1; 0: no pinning),
//! BENCH_RTT_MS (round trip injected in front of the broker, see `tidemark_tests::latency`).
//!
//! Every restore is read back with a plain consumer and compared with what was produced: per
//! partition the same number of records from offset 0 without a gap and the same keys, values
//! and headers (fingerprints). Reported: wall time and MiB/s of each run, CPU seconds of the
//! shards and of the broker, how busy each pinned CPU was, and 2 shards' throughput over one
//! shard's (goal ≥ 1.6× where the broker is not the limit) with PASS/FAIL. The busy fractions
//! say which one is the limit: a CPU near 100 % busy cannot give a second shard anything.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tidemark_tests::bench::{
    build_description, cpu_secs, create_topic, load_average, median, produce, read_back, verdict,
    Produced,
};
use tidemark_tests::records::delete_topic;
use tidemark_tests::{env_usize, latency, Tansu};

const BIN: &str = env!("CARGO_BIN_EXE_tidemark-under-test");
const SOURCE: &str = "bench-shards";
const BACKUP_ID: &str = "bench-shards";
const GOAL: f64 = 1.6;

/// One restore by `shards` processes at once.
struct Run {
    shards: u32,
    wall: Duration,
    shard_cpu: f64,
    broker_cpu: f64,
    read_back: Duration,
}

/// Pins every thread of process `pid` to `cpu`.
fn pin_process(pid: u32, cpu: usize) {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .expect("run taskset (util-linux)");
    assert!(status.success(), "taskset -a -p -c {cpu} {pid}: {status}");
}

/// Pins this process (and the children it starts from now on) to `cpu`.
fn pin_self(cpu: usize) {
    pin_process(std::process::id(), cpu);
}

/// User + system CPU seconds of the children this process has waited for (`cutime` and
/// `cstime` in `/proc/self/stat`, USER_HZ = 100).
fn children_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // Fields 16 and 17; `rest` starts at field 3.
    let ticks = |i: usize| fields.get(i).and_then(|s| s.parse::<f64>().ok());
    (ticks(13).expect("cutime") + ticks(14).expect("cstime")) / 100.0
}

fn task_yaml(bs: &str, store: &Path, restore_id: &str, target: &str, shards: u32) -> String {
    let shard_line = if shards > 1 {
        format!("shardCount: {shards}\n")
    } else {
        String::new()
    };
    format!(
        "apiVersion: tidemark.dev/task-v1\n\
         kind: restore\n\
         source: default/bench-shards\n\
         kafka:\n  bootstrapServers: [\"{bs}\"]\n  securityProtocol: PLAINTEXT\n\
         storage:\n  type: location\n  url: {}\n\
         backupId: {BACKUP_ID}\n\
         restoreId: {restore_id}\n\
         topicMapping: {{{SOURCE}: {target}}}\n\
         createTopics: true\n\
         {shard_line}",
        store.display()
    )
}

/// Restores the backup into `target` with `shards` processes started together; returns the
/// wall time from the first start to the last exit and the processes' CPU seconds.
fn restore(bs: &str, dir: &Path, store: &Path, target: &str, shards: u32) -> (Duration, f64) {
    let yaml = task_yaml(bs, store, target, target, shards);
    let task = dir.join(format!("{target}.yaml"));
    std::fs::write(&task, yaml).expect("write the task");
    let cpu0 = children_cpu();
    let started = Instant::now();
    let children: Vec<_> = (0..shards)
        .map(|i| {
            let result = dir.join(format!("{target}-{i}.result"));
            let child = Command::new(BIN)
                .arg("run")
                .arg("--task")
                .arg(&task)
                .arg("--result-file")
                .arg(&result)
                .env("JOB_COMPLETION_INDEX", i.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start a shard");
            (i, result, child)
        })
        .collect();
    for (i, result, child) in children {
        let out = child.wait_with_output().expect("wait for a shard");
        let text = std::fs::read_to_string(&result).unwrap_or_default();
        assert!(
            out.status.success(),
            "shard {i} of {shards} into {target}: {}\nresult: {text}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let r: serde_json::Value = serde_json::from_str(&text).expect("result JSON");
        let summary = &r["restore"];
        assert_eq!(summary["complete"], true, "shard {i}: {r}");
        assert_eq!(
            summary["recordsRestored"], summary["recordsTotal"],
            "shard {i}: {r}"
        );
    }
    (started.elapsed(), children_cpu() - cpu0)
}

/// Reads `topic` back and checks it holds exactly what was produced.
fn check_target(bs: &str, topic: &str, partitions: usize, produced: &Produced) -> Duration {
    let started = Instant::now();
    assert_eq!(produced.records.len(), partitions, "{topic}: partitions");
    let got = read_back(bs, topic, &produced.records, Duration::from_secs(60));
    assert_eq!(
        got.fingerprints, produced.fingerprints,
        "{topic}: keys/values/headers"
    );
    started.elapsed()
}

fn backup(bs: &str, store: &Path) {
    let out = Command::new(BIN)
        .args(["backup", "--bootstrap-servers", bs, "-p"])
        .arg(store)
        .args(["--topics", SOURCE, "--backup-id", BACKUP_ID])
        .output()
        .expect("run the backup");
    assert!(
        out.status.success(),
        "backup: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::main]
async fn main() {
    let mib = env_usize("BENCH_SHARDS_MB", 128).max(1) as u64;
    let partitions = env_usize("BENCH_SHARDS_PARTITIONS", 8).max(2);
    let pairs = env_usize("BENCH_SHARDS_PAIRS", 2).max(1);
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let pin = env_usize("BENCH_SHARDS_PIN", 1) == 1 && cpus >= 2;

    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    let broker_pid = kafka.server.pid();
    if pin {
        pin_process(broker_pid, 0);
        pin_self(1);
    }
    create_topic(&bs, SOURCE, partitions).await;
    let produced = produce(&bs, SOURCE, partitions, mib << 20);
    let work = tempfile::tempdir().expect("tempdir");
    let store = work.path().join("store");
    backup(&bs, &store);

    let mut runs = Vec::new();
    for pair in 0..pairs {
        let order: [u32; 2] = if pair % 2 == 0 { [1, 2] } else { [2, 1] };
        for shards in order {
            let target = format!("{SOURCE}-p{pair}-s{shards}");
            let broker0 = cpu_secs(&broker_pid.to_string());
            let (wall, shard_cpu) = restore(&bs, work.path(), &store, &target, shards);
            let broker_cpu = cpu_secs(&broker_pid.to_string()) - broker0;
            let read_back = check_target(&bs, &target, partitions, &produced);
            delete_topic(&bs, &target).await;
            runs.push(Run {
                shards,
                wall,
                shard_cpu,
                broker_cpu,
                read_back,
            });
        }
    }

    let rtt = latency::rtt_from_env();
    let mib_s = |r: &Run| produced.bytes as f64 / (1 << 20) as f64 / r.wall.as_secs_f64();
    println!();
    println!("shard restore benchmark — {}", build_description(BIN));
    println!(
        "{:.0} MiB, {} records in {partitions} partitions; {pairs} pairs (1 shard, 2 shards) in alternating order; load average {}",
        produced.bytes as f64 / (1 << 20) as f64,
        produced.total_records(),
        load_average()
    );
    println!("{}", latency::describe(rtt));
    println!(
        "pinning ({cpus} CPUs): {}",
        if pin {
            "broker on CPU 0; this benchmark, its shards and the latency proxy (if any) on CPU 1 (pinning reserves nothing: other processes share both)"
        } else {
            "none"
        }
    );
    println!();
    println!(
        "  {:>6}  {:>7}  {:>7}  {:>11}  {:>11}  {:>9}  {:>11}  {:>9}",
        "shards",
        "wall s",
        "MiB/s",
        "shard CPU s",
        "shards busy",
        "broker s",
        "broker busy",
        "check s"
    );
    for r in &runs {
        let w = r.wall.as_secs_f64();
        println!(
            "  {:>6}  {:>7.2}  {:>7.1}  {:>11.2}  {:>10.0}%  {:>9.2}  {:>10.0}%  {:>9.2}",
            r.shards,
            w,
            mib_s(r),
            r.shard_cpu,
            100.0 * r.shard_cpu / w,
            r.broker_cpu,
            100.0 * r.broker_cpu / w,
            r.read_back.as_secs_f64()
        );
    }
    let med = |n: u32, f: &dyn Fn(&Run) -> f64| {
        median(runs.iter().filter(|r| r.shards == n).map(f).collect())
    };
    let one = med(1, &mib_s);
    let two = med(2, &mib_s);
    let ratio = two / one;
    println!();
    println!("  1 shard (median):   {one:.1} MiB/s");
    println!("  2 shards (median):  {two:.1} MiB/s");
    println!(
        "  2 shards / 1 shard (goal >= {GOAL}x where the broker is not the limit): {ratio:.2}x  {}",
        verdict(ratio >= GOAL)
    );
    for n in [1, 2] {
        println!(
            "  busy with {n} shard{}: shards' CPU {:.0}%, broker's CPU {:.0}% (100% = one CPU)",
            if n == 1 { "" } else { "s" },
            med(n, &|r: &Run| 100.0 * r.shard_cpu / r.wall.as_secs_f64()),
            med(n, &|r: &Run| 100.0 * r.broker_cpu / r.wall.as_secs_f64()),
        );
    }
}

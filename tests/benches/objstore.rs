//! Object storage benchmark: backup to and restore from an S3 server on loopback against the
//! same backup and restore on a local directory (tansu, memory engine, loopback).
//!
//! `cargo bench -p tidemark-tests --bench objstore` (or `--profile dev` for a quick build).
//! Optional env:
//!
//! - `BENCH_OBJSTORE_MB` (256): MiB of record data (key + value + header bytes) to produce;
//! - `BENCH_OBJSTORE_PARTITIONS` (8): partitions of the topic;
//! - `BENCH_OBJSTORE_RUNS` (3): paired runs; each backs up to both places and restores from
//!   both, local first in odd runs and S3 first in even ones;
//! - `BENCH_OBJSTORE_CODEC` (`lz4`): the backup's `--compression`;
//! - `BENCH_OBJSTORE_ARGS`: extra arguments for every `tidemark backup` run (whitespace-separated,
//!   e.g. `--segment-max-bytes 33554432` for segments that go up in several parts);
//! - `BENCH_OBJSTORE_DIR` (the system temporary directory): where the local backups and the S3
//!   server's files are written (each deleted once checked);
//! - `BENCH_OBJSTORE_BIN`: another `tidemark` binary to measure (e.g. a copy built from an
//!   earlier commit) instead of the one this benchmark was built with;
//! - `BENCH_OBJSTORE_TRACE=1`: print each process's resident set and CPU time every second and
//!   its stderr.
//!
//! What it measures:
//!
//! 1. Source: a topic of 8 partitions (by default) filled with the backup benchmark's ~1 KiB
//!    order events, every partition ending with a single-record batch (tansu's high watermark is
//!    the last batch's base offset + 1).
//! 2. The S3 server: s3s-fs from crates.io (a Rust S3 server keeping each object in a file,
//!    checking every request's SigV4 signature), on loopback, its files on the same disk as the
//!    local backups: what the storage client costs, not a Python mock's speed.
//! 3. Per run, with the real CLI (`tidemark-under-test`): `backup` of the topic to a fresh id on
//!    a local directory and on `s3://tidemark-test/bench` (`fetch.wait.max.ms=5` for the reader,
//!    as the backup benchmark does: tansu holds every fetch for the whole wait), then `restore`
//!    of each into a fresh topic (`max_concurrent_partitions: 8`, `create_topics`). Wall time,
//!    MiB/s, CPU time of `tidemark` and of the S3 server, peak RSS of `tidemark` (`ru_maxrss`
//!    from `wait4` in the measuring helper, see `tidemark_tests::bench::run_measured`).
//! 4. Correctness: every report shows the produced record and byte counts; every backup is read
//!    back through the library from where it was written (offsets contiguous from 0, a
//!    SHA-256-based fingerprint of every key, value and header, per partition); every restored
//!    topic is read back with a plain consumer and compared (counts from offset 0, fingerprints,
//!    timestamps). A wrong result panics.
//! 5. The ratio S3 / local of each pair (local wall / S3 wall), its median over the runs for
//!    backup and for restore, PASS/FAIL against 0.8, and the peak RSS against 256 MiB. A missed
//!    goal does not panic.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tidemark::backup::read::{load_manifests, read_segment};
use tidemark::storage::{Storage, StorageOptions};
use tidemark_tests::bench::{
    args_from_env, build_description, cpu_secs, create_topic, delete_topic, fingerprint,
    load_average, measure_helper_if_asked, median, produce, read_back, run_measured, verdict,
    Measured, Produced, MIB,
};
use tidemark_tests::objstore::{S3Server, BUCKET};
use tidemark_tests::{env_usize, Tansu};

/// The `tidemark` binary measured: `BENCH_OBJSTORE_BIN`, else the one built with this benchmark.
fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("BENCH_OBJSTORE_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_tidemark-under-test").to_string())
    })
}
const TOPIC: &str = "bench-objstore";
/// Where the S3 backups live in the bucket.
const PREFIX: &str = "bench";

const GOAL_RATIO: f64 = 0.8;
const GOAL_RSS_MIB: f64 = 256.0;

/// Partitions of the topic: `BENCH_OBJSTORE_PARTITIONS` (8).
fn partitions() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| env_usize("BENCH_OBJSTORE_PARTITIONS", 8).clamp(1, 10_000))
}

/// Where a backup goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Local,
    S3,
}

impl Place {
    fn name(self) -> &'static str {
        match self {
            Place::Local => "local",
            Place::S3 => "s3",
        }
    }
}

/// The places of the run, alternating which goes first.
fn order(run: usize) -> [Place; 2] {
    if run % 2 == 1 {
        [Place::Local, Place::S3]
    } else {
        [Place::S3, Place::Local]
    }
}

struct Bench<'a> {
    bs: String,
    broker_pid: String,
    s3: &'a S3Server,
    local_root: PathBuf,
    codec: String,
    extra_args: Vec<String>,
    trace: bool,
    produced: Produced,
}

/// One measured `tidemark` run.
struct Timed {
    place: Place,
    run: usize,
    proc: Measured,
    /// CPU seconds the S3 server used meanwhile.
    server_cpu: f64,
}

impl Bench<'_> {
    fn location(&self, place: Place) -> String {
        match place {
            Place::Local => self.local_root.to_str().expect("utf8").to_string(),
            Place::S3 => self.s3.location(PREFIX),
        }
    }

    fn storage(&self, place: Place) -> Storage {
        match place {
            Place::Local => Storage::open(&self.location(place), &StorageOptions::default())
                .expect("open the local backups"),
            Place::S3 => self.s3.open(PREFIX),
        }
    }

    fn measure(&self, place: Place, run: usize, args: &[String], what: &str) -> Timed {
        let server0 = cpu_secs(&self.s3.server.pid().to_string());
        let proc = run_measured(bin(), args, &self.broker_pid);
        let server_cpu = cpu_secs(&self.s3.server.pid().to_string()) - server0;
        if self.trace {
            proc.print_trace(what);
        }
        Timed {
            place,
            run,
            proc,
            server_cpu,
        }
    }

    async fn backup(&self, place: Place, run: usize) -> Timed {
        let id = backup_id(place, run);
        let mut args: Vec<String> = ["backup", "--bootstrap-servers", &self.bs, "--path"]
            .map(String::from)
            .to_vec();
        args.push(self.location(place));
        args.extend(
            [
                "--topics",
                TOPIC,
                "-X",
                "fetch.wait.max.ms=5",
                "--backup-id",
                &id,
                "--compression",
                &self.codec,
                "--format",
                "json",
            ]
            .map(String::from),
        );
        args.extend(self.extra_args.iter().cloned());
        let t = self.measure(place, run, &args, &format!("backup {id}"));
        let r = t.proc.json(&format!("backup {id}"));
        let p = &self.produced;
        assert_eq!(r["complete"], true, "{id}: {r}");
        assert_eq!(r["records"], p.total_records(), "{id}: records");
        assert_eq!(r["bytes"], p.bytes, "{id}: bytes");
        t
    }

    /// Reads the backup back from where it was written and compares it with what was produced;
    /// returns the wrapping sum of the timestamps per partition, for checking a restore.
    async fn check_backup(&self, place: Place, run: usize) -> Vec<u64> {
        let id = backup_id(place, run);
        let storage = self.storage(place);
        let manifests = load_manifests(&storage, &id).await.expect("manifest");
        assert_eq!(manifests.len(), 1, "{id}: one shard");
        let topic = manifests[0]
            .topics
            .get(TOPIC)
            .unwrap_or_else(|| panic!("{id}: no {TOPIC} in the manifest"));
        assert_eq!(topic.partition_data.len(), partitions(), "{id}: partitions");
        let mut timestamps = vec![0u64; partitions()];
        for (p, ts) in timestamps.iter_mut().enumerate() {
            let pd = &topic.partition_data[&(p as i32)];
            let (mut next, mut fp) = (0i64, 0u64);
            for seg in &pd.segments {
                for r in read_segment(&storage, seg)
                    .await
                    .unwrap_or_else(|e| panic!("{id}: {e}"))
                {
                    assert_eq!(r.offset, next, "{id}: {TOPIC}-{p} offsets");
                    next += 1;
                    let headers: Vec<(&str, Option<&[u8]>)> = r
                        .headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_deref()))
                        .collect();
                    fp = fp.wrapping_add(fingerprint(
                        r.key.as_deref(),
                        r.value.as_deref(),
                        &headers,
                    ));
                    *ts = ts.wrapping_add(r.timestamp as u64);
                }
            }
            assert_eq!(
                next as u64, self.produced.records[p],
                "{id}: {TOPIC}-{p} records"
            );
            assert_eq!(
                fp, self.produced.fingerprints[p],
                "{id}: {TOPIC}-{p} holds other records than were produced"
            );
        }
        timestamps
    }

    fn restore_config(&self, place: Place, run: usize, target: &str) -> String {
        let storage = match place {
            Place::Local => format!(
                "storage:\n  backend: filesystem\n  path: {}\n",
                yaml_str(&self.location(place))
            ),
            Place::S3 => format!(
                "storage:\n  backend: s3\n  bucket: {BUCKET}\n  prefix: {PREFIX}\n  region: \
                 us-east-1\n  endpoint: {}\n  path_style: true\n  allow_http: true\n",
                yaml_str(&self.s3.endpoint())
            ),
        };
        let text = format!(
            "mode: restore\n\
             backup_id: {}\n\
             restore_id: r-{}-{run}\n\
             target:\n  bootstrap_servers: [{}]\n  topics:\n    include: [{TOPIC}]\n\
             {storage}\
             restore:\n  topic_mapping:\n    {TOPIC}: {target}\n  create_topics: true\n  \
             max_concurrent_partitions: 8\n",
            backup_id(place, run),
            place.name(),
            yaml_str(&self.bs),
        );
        let path = self
            .local_root
            .join(format!("restore-{}-{run}.yaml", place.name()));
        std::fs::write(&path, text).expect("write the restore configuration");
        path.to_str().expect("utf8").to_string()
    }

    async fn restore(&self, place: Place, run: usize, timestamps: &[u64]) -> Timed {
        let target = format!("{TOPIC}-{}-{run}", place.name());
        let cfg = self.restore_config(place, run, &target);
        let args: Vec<String> = ["restore", "--config", &cfg, "-f", "json"]
            .map(String::from)
            .to_vec();
        let t = self.measure(place, run, &args, &format!("restore {target}"));
        let r = t.proc.json(&format!("restore {target}"));
        let p = &self.produced;
        assert_eq!(r["complete"], true, "{target}: {r}");
        assert_eq!(r["records"], p.total_records(), "{target}: records");
        assert_eq!(r["bytes"], p.bytes, "{target}: bytes");
        check_target(&self.bs, &target, p, timestamps);
        delete_topic(&self.bs, &target).await;
        t
    }

    /// Removes the run's backups (the S3 server's files directly: it keeps one per object).
    fn remove_backups(&self, run: usize) {
        for place in [Place::Local, Place::S3] {
            let dir = match place {
                Place::Local => self.local_root.join("backups").join(backup_id(place, run)),
                Place::S3 => self
                    .s3
                    .dir
                    .path()
                    .join("data")
                    .join(BUCKET)
                    .join(PREFIX)
                    .join("backups")
                    .join(backup_id(place, run)),
            };
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

fn backup_id(place: Place, run: usize) -> String {
    format!("b-{}-{run}", place.name())
}

fn yaml_str(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// Reads `topic` back with a plain consumer: per partition the produced count from offset 0,
/// the same fingerprints and timestamps, nothing more.
fn check_target(bs: &str, topic: &str, produced: &Produced, timestamps: &[u64]) {
    let got = read_back(bs, topic, &produced.records, Duration::from_secs(60));
    assert_eq!(
        got.fingerprints, produced.fingerprints,
        "{topic}: fingerprints"
    );
    assert_eq!(got.timestamps, timestamps, "{topic}: timestamps");
}

fn main() {
    measure_helper_if_asked();
    let parent = std::env::var_os("BENCH_OBJSTORE_DIR").map(PathBuf::from);
    let s3 = S3Server::start_s3s_fs(parent.as_deref());
    // The restore configuration names the endpoint; the credentials come from the environment
    // of every `tidemark` process (set before any other thread runs).
    for (k, v) in s3.env() {
        std::env::set_var(k, v);
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(bench(&s3, parent.as_deref()));
}

async fn bench(s3: &S3Server, parent: Option<&Path>) {
    let mb = env_usize("BENCH_OBJSTORE_MB", 256).max(1);
    let runs = env_usize("BENCH_OBJSTORE_RUNS", 3).max(1);
    let load_before = load_average();
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_topic(&bs, TOPIC, partitions()).await;
    let produced = produce(&bs, TOPIC, partitions(), mb as u64 * 1024 * 1024);
    println!(
        "produced {} records, {:.1} MiB in {:.2} s",
        produced.total_records(),
        produced.bytes as f64 / MIB,
        produced.wall.as_secs_f64()
    );
    let local = match parent {
        Some(p) => tempfile::tempdir_in(p),
        None => tempfile::tempdir(),
    }
    .expect("tempdir");
    let bench = Bench {
        bs,
        broker_pid: kafka.server.pid().to_string(),
        s3,
        local_root: local.path().to_path_buf(),
        codec: std::env::var("BENCH_OBJSTORE_CODEC").unwrap_or_else(|_| "lz4".into()),
        extra_args: args_from_env("BENCH_OBJSTORE_ARGS"),
        trace: std::env::var("BENCH_OBJSTORE_TRACE").is_ok_and(|v| v == "1"),
        produced,
    };
    let (mut backups, mut restores) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let mut stamps = Vec::new();
        for place in order(run) {
            let t = bench.backup(place, run).await;
            println!(
                "run {run}: backup to {} {:.2} s, RSS {:.1} MiB (load {})",
                place.name(),
                t.proc.wall.as_secs_f64(),
                t.proc.maxrss_kib as f64 / 1024.0,
                load_average()
            );
            stamps.push((place, bench.check_backup(place, run).await));
            backups.push(t);
        }
        for place in order(run) {
            let ts = &stamps.iter().find(|(p, _)| *p == place).expect("checked").1;
            let t = bench.restore(place, run, ts).await;
            println!(
                "run {run}: restore from {} {:.2} s, RSS {:.1} MiB (load {})",
                place.name(),
                t.proc.wall.as_secs_f64(),
                t.proc.maxrss_kib as f64 / 1024.0,
                load_average()
            );
            restores.push(t);
        }
        bench.remove_backups(run);
    }
    report(&bench, &backups, &restores, runs, &load_before);
}

fn report(bench: &Bench, backups: &[Timed], restores: &[Timed], runs: usize, load_before: &str) {
    let bytes = bench.produced.bytes;
    let mib_s = |t: &Timed| bytes as f64 / MIB / t.proc.wall.as_secs_f64();
    println!();
    println!("object storage benchmark — {}", build_description(bin()));
    println!(
        "load average (1/5/15 min) before: {load_before}, after: {}",
        load_average()
    );
    println!(
        "topic {TOPIC}: {} partitions, {} records, {:.1} MiB; --compression {}; S3: s3s-fs on \
         loopback ({}); local: {}",
        partitions(),
        bench.produced.total_records(),
        bytes as f64 / MIB,
        bench.codec,
        bench.s3.endpoint(),
        bench.local_root.display()
    );
    if !bench.extra_args.is_empty() {
        println!("extra backup arguments: {:?}", bench.extra_args);
    }
    println!("{runs} paired run(s), local first in odd runs, S3 first in even ones");
    println!();
    println!(
        "  {:<3} {:<8} {:<6} {:>7} {:>8} {:>8} {:>8} {:>9}",
        "run", "what", "where", "wall s", "MiB/s", "CPU s", "S3 CPU", "RSS MiB"
    );
    for (what, list) in [("backup", backups), ("restore", restores)] {
        for t in list {
            println!(
                "  {:<3} {:<8} {:<6} {:>7.2} {:>8.1} {:>8.2} {:>8.2} {:>9.1}",
                t.run,
                what,
                t.place.name(),
                t.proc.wall.as_secs_f64(),
                mib_s(t),
                t.proc.user + t.proc.sys,
                t.server_cpu,
                t.proc.maxrss_kib as f64 / 1024.0
            );
        }
    }
    println!();
    let row = |name: &str, value: String| println!("  {name:<52} {value}");
    let mut rss_worst = 0.0f64;
    for (what, list) in [("backup", backups), ("restore", restores)] {
        let ratios: Vec<f64> = (1..=runs)
            .map(|run| {
                let wall = |place| {
                    list.iter()
                        .find(|t| t.run == run && t.place == place)
                        .expect("both places measured")
                        .proc
                        .wall
                        .as_secs_f64()
                };
                wall(Place::Local) / wall(Place::S3)
            })
            .collect();
        let ratio = median(ratios.clone());
        let rss = list
            .iter()
            .map(|t| t.proc.maxrss_kib as f64 / 1024.0)
            .fold(0.0, f64::max);
        rss_worst = rss_worst.max(rss);
        let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        row(
            &format!("{what} S3 / local, median of pairs (goal >= {GOAL_RATIO})"),
            format!(
                "{ratio:.2} [{}]  {}",
                shown.join(" "),
                verdict(ratio >= GOAL_RATIO)
            ),
        );
        row(
            &format!("{what} peak RSS, largest run"),
            format!("{rss:.1} MiB"),
        );
    }
    row(
        &format!("peak RSS over every run (goal <= {GOAL_RSS_MIB:.0} MiB)"),
        format!("{rss_worst:.1} MiB  {}", verdict(rss_worst <= GOAL_RSS_MIB)),
    );
    row(
        "correctness (every run)",
        "reports match; every backup read back where it was written and every restored topic \
         read back, matched record by record (fingerprints, timestamps)"
            .to_string(),
    );
}

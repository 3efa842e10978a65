//! Backup throughput and memory benchmark on a real broker (tansu, memory engine, loopback).
//!
//! `cargo bench -p tidemark-tests --bench backup --profile dev` (or without `--profile dev` for
//! an optimised build). Optional env:
//!
//! - `BENCH_BACKUP_MB` (1024): MiB of record data (key + value + header bytes) to produce;
//! - `BENCH_BACKUP_PARTITIONS` (8): partitions of the topic;
//! - `BENCH_BACKUP_RUNS` (2): how many times the baseline and every backup are measured, in
//!   alternating order (odd runs: baseline first; even runs: the backups first); the ratios
//!   judged against the goals are the medians of the per-run (paired) ratios, the largest peak
//!   RSS counts for memory;
//! - `BENCH_BACKUP_CODECS` (`none,zstd,lz4`): the `--compression` values to run; `zstd:N` adds
//!   `--compression-level N` (e.g. `none,zstd:1,zstd:3` compares levels);
//!   A `+enc` suffix (`zstd+enc`) runs that backup encrypted with a key file (the bench's own
//!   key), reads it back and verifies it with the key, and compares it with the same codec
//!   without encryption, run by run (goal: >= 0.9 of its throughput);
//! - `BENCH_BACKUP_COMPARE_BIN`: the path of another `tidemark` build (e.g. the one before a
//!   change); every codec is then also backed up by it (labelled `codec@before`, in alternating
//!   order with this build's), and read back and verified by this build;
//! - `BENCH_BACKUP_ARGS`: extra arguments for every `tidemark backup` run (whitespace-separated,
//!   e.g. `--segment-max-bytes 4194304 --max-concurrent-partitions 4`);
//! - `BENCH_BACKUP_PROPERTIES` (`fetch.wait.max.ms=5`; tansu holds every fetch for the whole
//!   wait, so the reader's 100 ms would be all either side measures): comma-separated librdkafka
//!   `key=value` properties given to both
//!   the baseline consumer and (as `-X key=value`) the backup's reader, after their own settings
//!   (e.g. `fetch.wait.max.ms=5,fetch.queue.backoff.ms=10`);
//! - `BENCH_BACKUP_DIR` (the system temporary directory): where the backups are written (each
//!   in a fresh temporary directory, deleted once checked);
//! - `BENCH_BACKUP_TRACE=1`: print each backup's resident set and CPU time every second, its
//!   user/system time, page faults, context switches and busiest threads, and its stderr (add
//!   `-v` to `BENCH_BACKUP_ARGS` for the engine's progress log).
//!
//! What it measures, in one run:
//!
//! 1. Produce: a topic of 8 partitions (by default) filled with ~1 KiB JSON-like order events
//!    (keys, a `trace-id` header on every 4th record, random ids and a random signature so it
//!    compresses like real data, not like zeros) by an rdkafka producer with large batches, linger
//!    and no producer compression (the broker holds raw bytes). Every partition ends with a
//!    single-record batch, because tansu's high watermark is the last batch's base offset + 1.
//! 2. Baseline: what `kcat -C -e` does (Debian's kcat cannot talk to tansu) — a bare rdkafka
//!    `BaseConsumer` assigned to every partition from the beginning, reading until each reports
//!    end-of-partition, summing key + value + header bytes. It uses the client settings of the
//!    backup's reader (`consume()` in worker/src/backup/engine.rs): read_committed,
//!    `fetch.max.bytes`, `queued.max.messages.kbytes` and `fetch.wait.max.ms` — tansu holds every
//!    fetch for the full `fetch.wait.max.ms`, so that value bounds both sides alike.
//!    A reference consumer, the same loop with librdkafka's own prefetch settings (only
//!    `fetch.wait.max.ms` and the isolation level set), is timed too: it shows what the reader's
//!    prefetch settings cost, which the ratio to the baseline cannot.
//! 3. The real CLI (`tidemark-under-test`, the `tidemark` entry point): `backup --compression
//!    none`, `zstd` (its default level) and `lz4`, each to a fresh backup id in a temporary directory on
//!    local disk. Wall time of the process, MiB/s (record bytes / wall), the ratio to the
//!    baseline, stored size, CPU time and peak RSS. Peak RSS is the backup process's own
//!    `ru_maxrss` from `wait4(pid)`, taken by a small measuring helper (this binary re-executed)
//!    that spawns and reaps it: not `RUSAGE_CHILDREN` (the maximum over every child so far), and
//!    not `wait4` from the benchmark itself, because at `execve` Linux folds the high-water RSS
//!    of the spawning process into the child's `ru_maxrss`. The helper also polls the child's
//!    `/proc/<pid>/status` VmHWM every 10 ms as a cross-check.
//! 4. Correctness: every backup's report must show the produced record and byte counts; every
//!    backup is read back through the library and its records compared with what was produced
//!    (offsets contiguous from 0, a SHA-256-based fingerprint of every key, value and header);
//!    `verify-backup --deep` runs (timed) on every backup. A wrong result panics.
//! 5. CPU per GiB of record data, each side: the baseline consumer's (user + system over all
//!    threads of this process while it reads, `getrusage`) and each backup's (user + system of
//!    the backup process, `wait4`), with the broker's beside them.
//! 6. A table with PASS/FAIL per goal: backup none ≥ 0.9× the baseline, zstd ≥ 0.95× (medians
//!    of the paired ratios), peak RSS ≤ 256 MiB. A missed goal does not panic.
//!
//! Each backup is deleted once checked, so the disk never holds more than one.

use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tidemark::backup::read::{load_manifests, read_segment};
use tidemark::storage::{Storage, StorageOptions};
use tidemark_tests::bench::{
    args_from_env, best, build_description, cpu_per_gib, cpu_secs, create_topic, disk_usage,
    fingerprint, load_average, measure_helper_if_asked, median, num, per_run, produce,
    properties_from_env, run_measured, self_cpu_secs, verdict, Measured, Produced, MIB,
};
use tidemark_tests::{env_usize, Tansu};

const BIN: &str = env!("CARGO_BIN_EXE_tidemark-under-test");
const TOPIC: &str = "bench-backup";
/// Partitions of the topic: `BENCH_BACKUP_PARTITIONS` (8).
fn partitions() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| env_usize("BENCH_BACKUP_PARTITIONS", 8).clamp(1, 10_000))
}

// The backup reader's client settings (engine.rs `consume()`), mirrored by the baseline.
const FETCH_MAX_BYTES: &str = "16777216";
const FETCH_WAIT_MAX_MS: &str = "100";
/// engine.rs `PREFETCH_BUDGET_KB`, shared by the partitions read at once.
const PREFETCH_BUDGET_KB: usize = 64 * 1024;

const GOAL_RATIO_NONE: f64 = 0.9;
const GOAL_RATIO_ZSTD: f64 = 0.95;
const GOAL_RSS_MIB: f64 = 256.0;
/// Throughput of an encrypted backup or restore against the same run without encryption.
const GOAL_ENCRYPTED: f64 = 0.9;

// ---------------------------------------------------------------------------------------------
// Measuring

/// `queued.max.messages.kbytes` as engine.rs sets it: the whole budget, since librdkafka
/// applies it to the consumer's one queue, not per partition.
fn prefetch_kb() -> usize {
    PREFETCH_BUDGET_KB
}

/// `BENCH_BACKUP_PROPERTIES` as key/value pairs.
/// Unset: `fetch.wait.max.ms=5` — tansu holds every fetch for the full wait (100 ms, the
/// reader's own setting for real brokers), which would measure that wait on both sides and
/// nothing else; an empty value keeps the reader's settings.
fn extra_properties() -> Vec<(String, String)> {
    if std::env::var_os("BENCH_BACKUP_PROPERTIES").is_none() {
        return vec![("fetch.wait.max.ms".to_string(), "5".to_string())];
    }
    properties_from_env("BENCH_BACKUP_PROPERTIES")
}

/// One baseline read.
struct Consumed {
    wall: Duration,
    records: u64,
    bytes: u64,
    cpu: f64,
    broker_cpu: f64,
}

/// The bare consumer loop (what `kcat -C -e` does), with the backup reader's settings.
///
/// With `reader_settings` false it is the reference: librdkafka's own prefetch settings
/// (`queued.max.messages.kbytes`, `fetch.max.bytes` left at their defaults), the same
/// `fetch.wait.max.ms` and isolation level — what the reader's prefetch settings cost.
fn baseline(bs: &str, produced: &Produced, broker_pid: &str, reader_settings: bool) -> Consumed {
    let cpu0 = self_cpu_secs();
    let broker0 = cpu_secs(broker_pid);
    let started = Instant::now();
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bs)
        .set("group.id", "bench-backup-baseline")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", FETCH_WAIT_MAX_MS);
    if reader_settings {
        cfg.set("queued.max.messages.kbytes", prefetch_kb().to_string())
            .set("fetch.max.bytes", FETCH_MAX_BYTES);
    }
    for (k, v) in extra_properties() {
        cfg.set(k, v);
    }
    let consumer: BaseConsumer = cfg.create().expect("baseline consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions() {
        tpl.add_partition_offset(TOPIC, p as i32, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut records = vec![0u64; partitions()];
    let mut at_end = vec![false; partitions()];
    let mut bytes = 0u64;
    let mut last = Instant::now();
    while at_end.iter().any(|e| !e) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let p = m.partition() as usize;
                assert_eq!(
                    m.offset(),
                    records[p] as i64,
                    "baseline: {TOPIC}-{p} offsets"
                );
                records[p] += 1;
                bytes +=
                    (m.key().map_or(0, <[u8]>::len) + m.payload().map_or(0, <[u8]>::len)) as u64;
                if let Some(h) = m.headers() {
                    for h in h.iter() {
                        bytes += (h.key.len() + h.value.map_or(0, <[u8]>::len)) as u64;
                    }
                }
                last = Instant::now();
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                let p = p as usize;
                if records[p] >= produced.records[p] {
                    at_end[p] = true;
                }
            }
            Some(Err(e)) => panic!("baseline consumer: {e}"),
            None => assert!(
                last.elapsed() < Duration::from_secs(120),
                "baseline consumer: nothing read for 2 minutes ({records:?} of {:?})",
                produced.records
            ),
        }
    }
    let wall = started.elapsed();
    let out = Consumed {
        wall,
        records: records.iter().sum(),
        bytes,
        cpu: self_cpu_secs() - cpu0,
        broker_cpu: cpu_secs(broker_pid) - broker0,
    };
    assert_eq!(records, produced.records, "baseline: records per partition");
    assert_eq!(bytes, produced.bytes, "baseline: record bytes");
    out
}

/// Reads a backup back through the library and compares it with what was produced: every
/// partition from offset 0 without a gap, the same records (fingerprints) and counts.
async fn check_content(dir: &Path, id: &str, produced: &Produced, encrypted: bool) {
    let options = StorageOptions {
        encryption: encrypted.then(|| tidemark::task::Encryption {
            key_file: Some(bench_key_file().to_str().expect("utf8").into()),
            ..Default::default()
        }),
        ..StorageOptions::default()
    };
    let storage =
        Storage::open(dir.to_str().expect("utf8"), &options).expect("open backup storage");
    let manifests = load_manifests(&storage, id).await.expect("manifest");
    assert_eq!(manifests.len(), 1, "{id}: one shard");
    let m = &manifests[0];
    let topic = m
        .topics
        .get(TOPIC)
        .unwrap_or_else(|| panic!("{id}: no {TOPIC} in the manifest"));
    assert_eq!(topic.partition_data.len(), partitions(), "{id}: partitions");
    for p in 0..partitions() {
        let pd = &topic.partition_data[&(p as i32)];
        let n = produced.records[p];
        assert_eq!(
            (pd.start_offset, pd.end_offset, pd.records),
            (0, n as i64, n),
            "{id}: {TOPIC}-{p} range"
        );
        let mut next = 0i64;
        let mut fp = 0u64;
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
                fp = fp.wrapping_add(fingerprint(r.key.as_deref(), r.value.as_deref(), &headers));
            }
        }
        assert_eq!(next, n as i64, "{id}: {TOPIC}-{p} records read back");
        assert_eq!(
            fp, produced.fingerprints[p],
            "{id}: {TOPIC}-{p} holds other records than were produced"
        );
    }
}

/// One backup run and its checks.
struct BackupRun {
    codec: String,
    run: usize,
    proc: Measured,
    report_ms: f64,
    report_mib_s: f64,
    stored: u64,
    on_disk: u64,
    segments: u64,
    verify: Duration,
    verify_ms: f64,
}

impl BackupRun {
    fn mib_s(&self, bytes: u64) -> f64 {
        bytes as f64 / MIB / self.proc.wall.as_secs_f64()
    }
}

#[allow(clippy::too_many_arguments)]
async fn backup_once(
    bs: &str,
    root: &Path,
    codec: &str,
    run: usize,
    produced: &Produced,
    broker_pid: &str,
    extra_args: &[String],
    trace: bool,
) -> BackupRun {
    // `codec@before`: the same backup by the build named in `BENCH_BACKUP_COMPARE_BIN`.
    let (bin, spec) = match codec.strip_suffix(BEFORE) {
        Some(spec) => (compare_bin().expect(COMPARE_BIN), spec),
        None => (BIN.to_string(), codec),
    };
    let (spec, encrypted) = match spec.strip_suffix(ENCRYPTED) {
        Some(spec) => (spec, true),
        None => (spec, false),
    };
    let key_args: Vec<String> = if encrypted {
        vec![
            "--encryption-key-file".into(),
            bench_key_file().to_str().expect("utf8").into(),
        ]
    } else {
        Vec::new()
    };
    let id = format!("bench-{}-{run}", codec.replace([':', '@', '+'], "-"));
    let dir = root.join(&id);
    std::fs::create_dir_all(&dir).expect("backup dir");
    let path = dir.to_str().expect("utf8").to_string();
    let mut args: Vec<String> = [
        "backup",
        "--bootstrap-servers",
        bs,
        "--path",
        &path,
        "--topics",
        TOPIC,
    ]
    .map(String::from)
    .to_vec();
    for (k, v) in extra_properties() {
        args.extend(["-X".to_string(), format!("{k}={v}")]);
    }
    args.extend(["--backup-id", &id, "--format", "json"].map(String::from));
    args.extend(codec_args(spec));
    args.extend(key_args.iter().cloned());
    args.extend(extra_args.iter().cloned());
    let proc = run_measured(&bin, &args, broker_pid);
    if trace {
        proc.print_trace(&id);
    }
    let r = proc.json(&format!("backup {id}"));
    let total = produced.total_records();
    assert_eq!(r["complete"], true, "{id}: {r}");
    assert_eq!(r["records"], total, "{id}: records in the report");
    assert_eq!(r["records_this_run"], total, "{id}: records_this_run");
    assert_eq!(r["bytes"], produced.bytes, "{id}: bytes in the report");
    assert_eq!(r["partitions"], partitions() as u64, "{id}: partitions");
    if encrypted {
        assert_eq!(r["encryption_key_id"], "bench", "{id}: encrypted");
    }
    let stored = r["stored_bytes"].as_u64().expect("stored_bytes");
    let segments = r["segments"].as_u64().expect("segments");
    let on_disk = disk_usage(&dir);
    assert!(
        on_disk >= stored,
        "{id}: {on_disk} bytes on disk, report says {stored} stored"
    );
    check_content(&dir, &id, produced, encrypted).await;
    let mut verify_args: Vec<String> = [
        "verify-backup",
        "--path",
        &path,
        "--backup-id",
        &id,
        "--deep",
        "--format",
        "json",
    ]
    .map(String::from)
    .to_vec();
    verify_args.extend(key_args);
    let verify = run_measured(BIN, &verify_args, broker_pid);
    let v = verify.json(&format!("verify-backup --deep {id}"));
    assert_eq!(v["ok"], true, "{id}: verify-backup: {v}");
    assert_eq!(v["records_checked"], total, "{id}: verify-backup records");
    assert_eq!(
        v["segments_checked"], segments,
        "{id}: verify-backup segments"
    );
    let run_out = BackupRun {
        codec: codec.to_string(),
        run,
        report_ms: num(&r["duration_ms"], "duration_ms"),
        report_mib_s: num(&r["mib_per_second"], "mib_per_second"),
        stored,
        on_disk,
        segments,
        verify: verify.wall,
        verify_ms: num(&v["duration_ms"], "duration_ms"),
        proc,
    };
    std::fs::remove_dir_all(&dir).expect("remove the checked backup");
    run_out
}

/// `--compression` (and, for `zstd:N`, `--compression-level`) for a `BENCH_BACKUP_CODECS` entry.
fn codec_args(spec: &str) -> Vec<String> {
    match spec.split_once(':') {
        Some((codec, level)) => ["--compression", codec, "--compression-level", level]
            .map(String::from)
            .to_vec(),
        None => vec!["--compression".to_string(), spec.to_string()],
    }
}

/// The label suffix of encrypted backups.
const ENCRYPTED: &str = "+enc";

/// The key file encrypted backups use: `bench`, 32 fixed bytes, in a directory of this process.
fn bench_key_file() -> &'static Path {
    static FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tidemark-bench-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("key dir");
        let file = dir.join("bench");
        std::fs::write(&file, [0x5au8; 32]).expect("write the bench key");
        file
    })
}

/// The label suffix of the backups made by the build named in [`COMPARE_BIN`].
const BEFORE: &str = "@before";
/// Another `tidemark` build (e.g. the one before a change), run beside [`BIN`] on every codec.
const COMPARE_BIN: &str = "BENCH_BACKUP_COMPARE_BIN";

fn compare_bin() -> Option<String> {
    std::env::var(COMPARE_BIN).ok().filter(|s| !s.is_empty())
}

/// The goal for a `BENCH_BACKUP_CODECS` entry's ratio to the baseline, if it has one.
fn goal_for(spec: &str) -> Option<f64> {
    if spec.ends_with(BEFORE) || spec.ends_with(ENCRYPTED) {
        return None;
    }
    match spec.split(':').next() {
        Some("none") => Some(GOAL_RATIO_NONE),
        Some("zstd") => Some(GOAL_RATIO_ZSTD),
        _ => None,
    }
}

fn main() {
    measure_helper_if_asked();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(bench());
}

/// One run's baseline and reference consumers.
fn consumers(run: usize, bs: &str, produced: &Produced, broker_pid: &str) -> (Consumed, Consumed) {
    let b = baseline(bs, produced, broker_pid, true);
    println!(
        "run {run}: baseline consumer {} records in {:.2} s ({:.1} MiB/s)",
        b.records,
        b.wall.as_secs_f64(),
        b.bytes as f64 / MIB / b.wall.as_secs_f64()
    );
    let r = baseline(bs, produced, broker_pid, false);
    println!(
        "run {run}: reference consumer (librdkafka default prefetch) {} records in {:.2} s ({:.1} MiB/s)",
        r.records,
        r.wall.as_secs_f64(),
        r.bytes as f64 / MIB / r.wall.as_secs_f64()
    );
    (b, r)
}

async fn bench() {
    let mb = env_usize("BENCH_BACKUP_MB", 1024).max(1);
    let runs = env_usize("BENCH_BACKUP_RUNS", 2).max(1);
    let codecs: Vec<String> = std::env::var("BENCH_BACKUP_CODECS")
        .unwrap_or_else(|_| "none,zstd,lz4".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .flat_map(|c| match compare_bin() {
            Some(_) => vec![c.clone(), format!("{c}{BEFORE}")],
            None => vec![c],
        })
        .collect();
    let extra_args = args_from_env("BENCH_BACKUP_ARGS");
    let trace = std::env::var("BENCH_BACKUP_TRACE").is_ok_and(|v| v == "1");
    let mut build = build_description(BIN);
    if let Some(before) = compare_bin() {
        build = format!("{build}; @before: {before}");
    }
    let load_before = load_average();

    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    let broker_pid = kafka.server.pid().to_string();
    create_topic(&bs, TOPIC, partitions()).await;
    let broker_cpu0 = cpu_secs(&broker_pid);
    let produced = produce(&bs, TOPIC, partitions(), mb as u64 * 1024 * 1024);
    let produce_broker_cpu = cpu_secs(&broker_pid) - broker_cpu0;
    let total = produced.total_records();
    let data_mib = produced.bytes as f64 / MIB;
    println!(
        "produced {total} records, {data_mib:.1} MiB in {:.2} s ({:.1} MiB/s; generating + fingerprinting {:.2} s of it; broker CPU {:.1} s)",
        produced.wall.as_secs_f64(),
        data_mib / produced.wall.as_secs_f64(),
        produced.generating.as_secs_f64(),
        produce_broker_cpu
    );

    let store = tempfile::Builder::new()
        .prefix("tidemark-bench-backup-")
        .tempdir_in(
            std::env::var_os("BENCH_BACKUP_DIR").map_or_else(std::env::temp_dir, Into::into),
        )
        .expect("tempdir");
    let root = store.path();
    let mut bases = Vec::with_capacity(runs);
    let mut refs = Vec::with_capacity(runs);
    let mut backups: Vec<BackupRun> = Vec::new();
    for run in 1..=runs {
        // Alternating order: odd runs measure the consumers first, even runs the backups first.
        let consumers_first = run % 2 == 1;
        if consumers_first {
            let (b, r) = consumers(run, &bs, &produced, &broker_pid);
            bases.push(b);
            refs.push(r);
        }
        // Alternating order among the backups too: reversed on even runs.
        let order: Vec<&String> = if consumers_first {
            codecs.iter().collect()
        } else {
            codecs.iter().rev().collect()
        };
        for codec in order {
            let r = backup_once(
                &bs,
                root,
                codec,
                run,
                &produced,
                &broker_pid,
                &extra_args,
                trace,
            )
            .await;
            println!(
                "run {run}: backup --compression {codec} {:.2} s ({:.1} MiB/s), peak RSS {:.1} MiB; verify-backup --deep {:.2} s",
                r.proc.wall.as_secs_f64(),
                r.mib_s(produced.bytes),
                r.proc.maxrss_kib as f64 / 1024.0,
                r.verify.as_secs_f64()
            );
            backups.push(r);
        }
        if !consumers_first {
            let (b, r) = consumers(run, &bs, &produced, &broker_pid);
            bases.push(b);
            refs.push(r);
        }
    }

    let base_mib_s = |b: &Consumed| b.bytes as f64 / MIB / b.wall.as_secs_f64();
    let base_best = best(bases.iter().map(base_mib_s));
    let base_median = median(bases.iter().map(base_mib_s).collect());
    let props = extra_properties();
    let prefetch = props
        .iter()
        .find(|(k, _)| k == "queued.max.messages.kbytes")
        .map_or(prefetch_kb().to_string(), |(_, v)| v.clone());
    let setting = |key: &str, default: &str| {
        props
            .iter()
            .find(|(k, _)| k == key)
            .map_or(default.to_string(), |(_, v)| v.clone())
    };

    println!();
    println!("backup benchmark — {build}");
    println!(
        "load average (1/5/15 min) before: {load_before}, after: {}",
        load_average()
    );
    println!(
        "topic {TOPIC}: {} partitions, {total} records, {data_mib:.1} MiB key+value+header bytes (avg {:.0} B/record, {} with a header)",
        partitions(),
        produced.bytes as f64 / total as f64,
        produced.headers
    );
    println!(
        "reader settings, baseline and backup alike: isolation.level=read_committed fetch.max.bytes={} queued.max.messages.kbytes={prefetch} fetch.wait.max.ms={}",
        setting("fetch.max.bytes", FETCH_MAX_BYTES),
        setting("fetch.wait.max.ms", FETCH_WAIT_MAX_MS),
    );
    if !props.is_empty() {
        println!("  (BENCH_BACKUP_PROPERTIES: {props:?})");
    }
    println!(
        "  tansu answers every fetch only after the full fetch.wait.max.ms, so each fetch round trip takes at least that long"
    );
    if !extra_args.is_empty() {
        println!("extra backup arguments: {extra_args:?}");
    }
    println!("backups written under {}", root.display());
    println!(
        "{runs} run(s); throughput: the fastest run; peak RSS: the largest; RSS = ru_maxrss of the backup process alone (wait4 in a measuring helper), VmHWM = its /proc status polled every 10 ms"
    );
    println!();
    println!(
        "  {:<3} {:<22} {:>7} {:>8} {:>6} {:>8} {:>9} {:>6} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "run",
        "what",
        "wall s",
        "MiB/s",
        "ratio",
        "rep MiB/s",
        "stored MiB",
        "segs",
        "RSS MiB",
        "VmHWM",
        "CPU s",
        "broker s",
        "verify s"
    );
    for run in 1..=runs {
        let b = &bases[run - 1];
        for (what, c) in [
            ("baseline consumer", b),
            ("reference consumer", &refs[run - 1]),
        ] {
            println!(
                "  {:<3} {:<22} {:>7.2} {:>8.1} {:>6.2} {:>8} {:>9} {:>6} {:>8} {:>8} {:>8.2} {:>8.2} {:>9}",
                run,
                what,
                c.wall.as_secs_f64(),
                base_mib_s(c),
                base_mib_s(c) / base_mib_s(b),
                "-",
                "-",
                "-",
                "-",
                "-",
                c.cpu,
                c.broker_cpu,
                "-"
            );
        }
        for r in backups.iter().filter(|r| r.run == run) {
            let mib_s = r.mib_s(produced.bytes);
            println!(
                "  {:<3} {:<22} {:>7.2} {:>8.1} {:>6.2} {:>8.1} {:>9.1} {:>6} {:>8.1} {:>8.1} {:>8.2} {:>8.2} {:>9.2}",
                run,
                format!("backup {}", r.codec),
                r.proc.wall.as_secs_f64(),
                mib_s,
                mib_s / base_mib_s(b),
                r.report_mib_s,
                r.stored as f64 / MIB,
                r.segments,
                r.proc.maxrss_kib as f64 / 1024.0,
                r.proc.sampled_hwm_kib as f64 / 1024.0,
                r.proc.user + r.proc.sys,
                r.proc.broker_cpu,
                r.verify.as_secs_f64()
            );
        }
    }
    println!();
    let row = |name: &str, value: String| println!("  {name:<56} {value}");
    row(
        "produce (rdkafka, 1 MB batches, linger 20 ms, no compression)",
        format!(
            "{:.2} s  ({:.1} MiB/s)",
            produced.wall.as_secs_f64(),
            data_mib / produced.wall.as_secs_f64()
        ),
    );
    row(
        "baseline consumer MiB/s (best / median)",
        format!("{base_best:.1} / {base_median:.1}"),
    );
    let ref_best = best(refs.iter().map(base_mib_s));
    row(
        "reference consumer, librdkafka default prefetch (best)",
        format!(
            "{ref_best:.1} MiB/s ({:.2}x the baseline; what the reader's prefetch settings cost)",
            ref_best / base_best
        ),
    );
    let base_cpu = median(
        bases
            .iter()
            .map(|b| cpu_per_gib(b.cpu, produced.bytes))
            .collect(),
    );
    row(
        "baseline consumer CPU-s/GiB, user+sys all threads (median)",
        format!(
            "{base_cpu:.2}  (broker meanwhile {:.2})",
            median(
                bases
                    .iter()
                    .map(|b| cpu_per_gib(b.broker_cpu, produced.bytes))
                    .collect()
            )
        ),
    );
    let mut rss_worst = 0.0f64;
    for codec in &codecs {
        let mine: Vec<&BackupRun> = backups.iter().filter(|r| &r.codec == codec).collect();
        let best_mib_s = best(mine.iter().map(|r| r.mib_s(produced.bytes)));
        let med = median(mine.iter().map(|r| r.mib_s(produced.bytes)).collect());
        let wall = mine
            .iter()
            .map(|r| r.proc.wall.as_secs_f64())
            .fold(f64::INFINITY, f64::min);
        let rss = mine
            .iter()
            .map(|r| r.proc.maxrss_kib as f64 / 1024.0)
            .fold(0.0, f64::max);
        rss_worst = rss_worst.max(rss);
        let stored = mine.first().map_or(0, |r| r.stored);
        let on_disk = mine.first().map_or(0, |r| r.on_disk);
        let verify = mine
            .iter()
            .map(|r| r.verify.as_secs_f64())
            .fold(f64::INFINITY, f64::min);
        let verify_ms = mine
            .iter()
            .map(|r| r.verify_ms)
            .fold(f64::INFINITY, f64::min);
        let report_ms = mine
            .iter()
            .map(|r| r.report_ms)
            .fold(f64::INFINITY, f64::min);
        let ratio = best_mib_s / base_best;
        row(
            &format!("backup --compression {codec}: wall (best), MiB/s best / median"),
            format!(
                "{wall:.2} s (report {:.2} s), {best_mib_s:.1} / {med:.1} MiB/s",
                report_ms / 1000.0
            ),
        );
        row(
            &format!("backup --compression {codec}: stored (on disk)"),
            format!(
                "{:.1} MiB ({:.1} MiB); record bytes / stored = {:.2}",
                stored as f64 / MIB,
                on_disk as f64 / MIB,
                produced.bytes as f64 / stored.max(1) as f64
            ),
        );
        row(
            &format!("verify-backup --deep ({codec}), wall (report)"),
            format!("{verify:.2} s ({:.2} s)", verify_ms / 1000.0),
        );
        // Paired: each run's backup against the same run's baseline.
        let paired: Vec<f64> = mine
            .iter()
            .map(|r| r.mib_s(produced.bytes) / base_mib_s(&bases[r.run - 1]))
            .collect();
        let paired_text = per_run(&paired);
        let paired_median = median(paired);
        let n = mine.len();
        match goal_for(codec) {
            Some(g) => row(
                &format!("backup {codec} / baseline, median of {n} paired (goal >= {g})"),
                format!(
                    "{paired_median:.2}  {}  (per run: {paired_text}; best/best {ratio:.2})",
                    verdict(paired_median >= g)
                ),
            ),
            None => row(
                &format!("backup {codec} / baseline, median of {n} paired (no goal)"),
                format!("{paired_median:.2}  (per run: {paired_text}; best/best {ratio:.2})"),
            ),
        }
        let cpu = median(
            mine.iter()
                .map(|r| cpu_per_gib(r.proc.user + r.proc.sys, produced.bytes))
                .collect(),
        );
        let broker = median(
            mine.iter()
                .map(|r| cpu_per_gib(r.proc.broker_cpu, produced.bytes))
                .collect(),
        );
        row(
            &format!("backup {codec} CPU-s/GiB, user+sys all threads (median)"),
            format!(
                "{cpu:.2}  ({:.2}x the baseline consumer's; broker meanwhile {broker:.2})",
                cpu / base_cpu.max(f64::MIN_POSITIVE)
            ),
        );
        row(
            &format!("backup {codec} peak RSS, largest run (goal <= {GOAL_RSS_MIB:.0} MiB)"),
            format!("{rss:.1} MiB  {}", verdict(rss <= GOAL_RSS_MIB)),
        );
    }
    // Encryption's cost: each `X+enc` backup against the same run's `X`.
    for codec in codecs.iter().filter(|c| c.ends_with(ENCRYPTED)) {
        let plain = codec.trim_end_matches(ENCRYPTED);
        let paired: Vec<f64> = backups
            .iter()
            .filter(|r| &r.codec == codec)
            .filter_map(|e| {
                let p = backups
                    .iter()
                    .find(|p| p.codec == plain && p.run == e.run)?;
                Some(p.proc.wall.as_secs_f64() / e.proc.wall.as_secs_f64())
            })
            .collect();
        if paired.is_empty() {
            continue;
        }
        let text = per_run(&paired);
        let m = median(paired);
        row(
            &format!("backup {codec} / {plain}, median of paired runs (goal >= {GOAL_ENCRYPTED})"),
            format!(
                "{m:.2}  {}  (per run: {text})",
                verdict(m >= GOAL_ENCRYPTED)
            ),
        );
    }
    row(
        &format!("peak RSS over every backup (goal <= {GOAL_RSS_MIB:.0} MiB)"),
        format!("{rss_worst:.1} MiB  {}", verdict(rss_worst <= GOAL_RSS_MIB)),
    );
    row(
        "correctness (every backup)",
        format!(
            "{total} records / {} bytes in each report, content read back and matched, verify-backup --deep ok",
            produced.bytes
        ),
    );
}

//! Restore throughput and memory benchmark on a real broker (tansu, memory engine, loopback).
//!
//! `cargo bench -p tidemark-tests --bench restore --profile dev` (or without `--profile dev` for
//! an optimised build). Optional env:
//!
//! - `BENCH_RESTORE_MB` (512): MiB of record data (key + value + header bytes) to produce;
//! - `BENCH_RESTORE_PARTITIONS` (8): partitions of the topic;
//! - `BENCH_RESTORE_RUNS` (2): how many times the baseline and the restore are measured, each
//!   into a fresh target topic; the fastest run counts for throughput, the largest peak RSS for
//!   memory;
//! - `BENCH_RESTORE_CONCURRENCY` (8): the restore's `restore.max_concurrent_partitions`;
//! - `BENCH_RESTORE_PROPERTIES`: comma-separated librdkafka `key=value` properties given to both
//!   the baseline producer and (as `target.properties` in the configuration) the restore, after
//!   their own settings (e.g. `linger.ms=20,enable.sparse.connections=false`; a value cannot hold a
//!   comma);
//! - `BENCH_RESTORE_ARGS`: extra arguments for every `tidemark restore` run (whitespace-separated,
//!   e.g. `-v` for the engine's progress log, or `-vv -X debug=eos,topic -X log_level=7` for
//!   the restore producer's librdkafka log, shown with `BENCH_RESTORE_TRACE=1`);
//! - `BENCH_RESTORE_DIR` (the system temporary directory): where the backup is written;
//! - `BENCH_RESTORE_CODEC` (`lz4`): the backup's `--compression` (`none` shows what reading and
//!   decompressing the segments costs the restore: the baseline sends records from memory);
//! - `BENCH_RESTORE_ENCRYPTED=1`: the source is also backed up encrypted (a key file of the
//!   bench's own), and every run also restores that backup (in alternating order with the one
//!   in the clear); the summary compares the two run by run (goal: >= 0.9);
//! - `BENCH_RESTORE_WARMUP` (1): 0 skips the untimed warm-up copy (see 2.);
//! - `BENCH_RESTORE_TRACE=1`: print each restore's resident set and CPU time every second, its
//!   user/system time, page faults, context switches and busiest threads, and its stderr.
//! - `BENCH_RESTORE_AB`: instead of the measurement below, the A/B of the baseline (see
//!   [`ab`]): a comma-separated list of variants (`base,no-ts,no-headers,book,poll10,sender,segments,all,restore`,
//!   or `every` for all of them), each measured `BENCH_RESTORE_RUNS` times in alternating order.
//!
//! What it measures, in one run:
//!
//! 1. Source: a topic of 8 partitions (by default) filled with the backup benchmark's ~1 KiB
//!    order events (keys, a `trace-id` header on every 4th record), every partition ending with
//!    a single-record batch (tansu's high watermark is the last batch's base offset + 1), backed
//!    up once with the real CLI (`backup --compression lz4`). The backup is read back through
//!    the library into memory and checked against what was produced (offsets contiguous, a
//!    SHA-256-based fingerprint of every key, value and header).
//! 2. Baseline: what `kcat -P` does (Debian's kcat cannot talk to tansu) — one loop handing the
//!    same records (key, value, headers, timestamp; already decoded, in memory) to a bare rdkafka
//!    `ThreadedProducer`, 1000 records of one partition after 1000 of the next, into a fresh
//!    topic with the same partitions. It uses the restore producer's settings (`make_producer()`
//!    in worker/src/restore/engine.rs): `enable.idempotence=true`, `acks=all`,
//!    `queue.buffering.max.kbytes=16384`, `enable.sparse.connections=false`, `batch.num.messages=1000`, `message.max.bytes`. Before
//!    the clock starts, the producer sends one record to a scratch topic and waits for it, so it
//!    has its producer id and connection (the restore pays for its own start-up inside its
//!    time: process start, manifest, topic creation, producer id). Timed from the first send
//!    to the end of `flush()`; every delivery report is counted and any error
//!    fails the benchmark. One untimed copy comes first (a warm-up: tansu's first copy of the
//!    data is slower than later ones, which reuse the memory of the deleted topics).
//! 3. The real CLI (`tidemark-under-test`, the `tidemark` entry point): `restore --config FILE
//!    -f json` with a kafka-backup restore configuration (filesystem storage, `topic_mapping` to a fresh
//!    topic, `create_topics: true`, `max_concurrent_partitions: 8`). Wall time of the process
//!    (reading the manifest, creating the topic, checkpoints and the offset mapping included),
//!    MiB/s and records/s, the ratio to the baseline, CPU time and peak RSS. Peak RSS is the
//!    restore process's own `ru_maxrss` from `wait4(pid)` in the measuring helper (see
//!    `tidemark_tests::bench::run_measured`), with its VmHWM polled every 10 ms as a
//!    cross-check. For both the baseline and the restore, a watcher polls the target's high
//!    watermarks every 5 ms and notes when the first records reached the broker (`1st rec s`):
//!    the time either side spends before it writes anything (for an idempotent producer,
//!    librdkafka's producer id handshake).
//! 4. Correctness: every restore's report must show the produced record and byte counts, and
//!    the target topic, read back with a plain consumer (`fetch.wait.max.ms=5`), must hold per
//!    partition the same number of records from offset 0 without a gap, with the same keys,
//!    values and headers (fingerprints) and timestamps. A wrong result panics.
//! 5. A table with PASS/FAIL per goal: restore ≥ 0.8× the baseline, restore CPU per GiB ≤ 1.3×
//!    the baseline's (user + system of every thread: the benchmark process's own `getrusage`
//!    over the baseline's timed loop, the restore process's `wait4`; medians), peak RSS ≤ 256
//!    MiB. A missed goal does not panic.
//!
//! Target topics are deleted once checked, so the broker holds at most the source and one copy.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use serde_json::Value;
use tidemark::backup::format::Record;
use tidemark::backup::read::{load_manifests, read_segment};
use tidemark::storage::{Storage, StorageOptions};
use tidemark_tests::bench::{
    args_from_env, best, build_description, busiest_threads, cpu_secs, create_topic, delete_topic,
    disk_usage, fingerprint, load_average, measure_helper_if_asked, median, num, per_run, produce,
    properties_from_env, read_back, run_measured, self_cpu_secs, thread_cpu_secs, verdict,
    Deliveries, Measured, Produced, MIB,
};
use tidemark_tests::{env_usize, time_cli, Tansu};

#[path = "restore/ab.rs"]
mod ab;

const BIN: &str = env!("CARGO_BIN_EXE_tidemark-under-test");
const SOURCE: &str = "bench-restore";
/// One partition the baseline producer sends a record to before its timed loop.
const WARM_TOPIC: &str = "bench-restore-warm";
const BACKUP_ID: &str = "b";

/// The id of the source's encrypted backup (`BENCH_RESTORE_ENCRYPTED=1`).
const BACKUP_ID_ENCRYPTED: &str = "bench-source-enc";
/// Throughput of an encrypted restore against the same run's restore in the clear.
const GOAL_ENCRYPTED: f64 = 0.9;

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

/// Partitions of the topic: `BENCH_RESTORE_PARTITIONS` (8).
fn partitions() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| env_usize("BENCH_RESTORE_PARTITIONS", 8).clamp(1, 10_000))
}

// The restore producer's settings (engine.rs `make_producer()`), mirrored by the baseline.
const QUEUE_KBYTES: &str = "16384";
const MESSAGE_MAX_BYTES: &str = "67108864";
/// `batch.num.messages`: the restore's `produce_batch_size` default (task.rs
/// `DEFAULT_PRODUCE_BATCH`), also how many records of one partition the baseline sends before
/// moving to the next.
const BATCH: usize = tidemark::task::DEFAULT_PRODUCE_BATCH;

const GOAL_RATIO: f64 = 0.8;
const GOAL_RSS_MIB: f64 = 256.0;
/// Restore CPU per GiB over the baseline's (user + system, every thread of either side).
const GOAL_CPU: f64 = 1.3;

/// `BENCH_RESTORE_PROPERTIES` as key/value pairs.
fn extra_properties() -> Vec<(String, String)> {
    properties_from_env("BENCH_RESTORE_PROPERTIES")
}

// ---------------------------------------------------------------------------------------------
// The source

/// The backup's records in memory, per partition in offset order, and what a restored copy must
/// hold per partition.
struct Source {
    records: Vec<Vec<Record>>,
    /// Wrapping sum of the records' timestamps, per partition.
    timestamps: Vec<u64>,
}

fn headers_of(r: &Record) -> Vec<(&str, Option<&[u8]>)> {
    r.headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_deref()))
        .collect()
}

/// Reads the backup back through the library into memory and checks it against what was
/// produced: every partition from offset 0 without a gap, the same records and counts.
async fn load_source(dir: &Path, produced: &Produced) -> Source {
    let storage = Storage::open(dir.to_str().expect("utf8"), &StorageOptions::default())
        .expect("open backup storage");
    let manifests = load_manifests(&storage, BACKUP_ID).await.expect("manifest");
    assert_eq!(manifests.len(), 1, "one shard");
    let topic = manifests[0]
        .topics
        .get(SOURCE)
        .unwrap_or_else(|| panic!("no {SOURCE} in the manifest"));
    assert_eq!(topic.partition_data.len(), partitions(), "partitions");
    let mut out = Source {
        records: Vec::with_capacity(partitions()),
        timestamps: vec![0; partitions()],
    };
    for p in 0..partitions() {
        let pd = &topic.partition_data[&(p as i32)];
        let mut records: Vec<Record> = Vec::with_capacity(produced.records[p] as usize);
        let mut fp = 0u64;
        for seg in &pd.segments {
            for r in read_segment(&storage, seg)
                .await
                .unwrap_or_else(|e| panic!("{SOURCE}-{p}: {e}"))
            {
                assert_eq!(r.offset, records.len() as i64, "{SOURCE}-{p} offsets");
                fp = fp.wrapping_add(fingerprint(
                    r.key.as_deref(),
                    r.value.as_deref(),
                    &headers_of(&r),
                ));
                out.timestamps[p] = out.timestamps[p].wrapping_add(r.timestamp as u64);
                records.push(r);
            }
        }
        assert_eq!(
            records.len() as u64,
            produced.records[p],
            "{SOURCE}-{p}: records in the backup"
        );
        assert_eq!(
            fp, produced.fingerprints[p],
            "{SOURCE}-{p}: the backup holds other records than were produced"
        );
        out.records.push(records);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Measuring

/// One timed run (baseline or restore) into `topic`.
struct Run {
    topic: String,
    wall: Duration,
    /// CPU seconds of the producing side (the benchmark process for the baseline).
    cpu: f64,
    broker_cpu: f64,
    /// The restore process, for the restore.
    proc: Option<Measured>,
    report_ms: f64,
    report_mib_s: f64,
    /// Reading the target back (correctness check, not timed into the figures).
    check: Duration,
    /// When the first records reached the broker (see [`Landing`]).
    first_landed: Option<Duration>,
}

impl Run {
    fn mib_s(&self, bytes: u64) -> f64 {
        bytes as f64 / MIB / self.wall.as_secs_f64()
    }

    fn records_s(&self, records: u64) -> f64 {
        records as f64 / self.wall.as_secs_f64()
    }
}

/// The baseline producer: the restore producer's settings, then `BENCH_RESTORE_PROPERTIES`.
fn baseline_producer(bs: &str) -> ThreadedProducer<Deliveries> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bs)
        .set("queue.buffering.max.kbytes", QUEUE_KBYTES)
        .set("enable.sparse.connections", "false")
        .set("message.max.bytes", MESSAGE_MAX_BYTES)
        .set("batch.num.messages", BATCH.to_string())
        .set("enable.idempotence", "true")
        .set("acks", "all");
    for (k, v) in extra_properties() {
        cfg.set(k, v);
    }
    cfg.create_with_context(Deliveries::default())
        .expect("baseline producer")
}

fn send_record(producer: &ThreadedProducer<Deliveries>, topic: &str, partition: i32, r: &Record) {
    let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).partition(partition);
    if !r.headers.is_empty() {
        let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        rec = rec.headers(headers);
    }
    if let Some(k) = &r.key {
        rec = rec.key(k.as_slice());
    }
    if let Some(v) = &r.value {
        rec = rec.payload(v.as_slice());
    }
    if r.timestamp >= 0 {
        rec = rec.timestamp(r.timestamp);
    }
    loop {
        match producer.send(rec) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                rec = back;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => panic!("baseline: produce to {topic}-{partition}: {e}"),
        }
    }
}

/// `BENCH_RESTORE_TRACE=1`.
fn trace() -> bool {
    std::env::var("BENCH_RESTORE_TRACE").is_ok_and(|v| v == "1")
}

/// Sends one record to [`WARM_TOPIC`] and waits for it: the idempotent producer's id handshake
/// and the connection happen before the timed loop.
fn warm_up_producer(producer: &ThreadedProducer<Deliveries>) {
    let rec: BaseRecord<'_, str, str> = BaseRecord::to(WARM_TOPIC).partition(0).payload("warm");
    producer
        .send(rec)
        .map_err(|(e, _)| e)
        .expect("baseline: warm-up record");
    producer
        .flush(Duration::from_secs(30))
        .expect("baseline: warm-up flush");
    let ok = producer.context().ok.swap(0, Ordering::Relaxed);
    assert_eq!(ok, 1, "baseline: warm-up record delivered");
}

/// The bare producer loop (what `kcat -P` does) over the records in memory, into `topic`
/// (already created): [`BATCH`] records of one partition, then of the next, round after round.
fn baseline(bs: &str, topic: &str, source: &Source, broker_pid: &str) -> (Duration, f64, f64) {
    let producer = baseline_producer(bs);
    // Untimed: one record to a scratch topic, so the loop starts with the producer id acquired
    // and the broker connected (a process of its own would pay that too; the restore does).
    warm_up_producer(&producer);
    let total: usize = source.records.iter().map(Vec::len).sum();
    let cpu0 = self_cpu_secs();
    let broker0 = cpu_secs(broker_pid);
    let threads0 = thread_cpu_secs();
    let started = Instant::now();
    let mut next = vec![0usize; source.records.len()];
    loop {
        let mut sent = false;
        for (p, records) in source.records.iter().enumerate() {
            let end = (next[p] + BATCH).min(records.len());
            for r in &records[next[p]..end] {
                send_record(&producer, topic, p as i32, r);
            }
            sent |= end > next[p];
            next[p] = end;
        }
        if !sent {
            break;
        }
    }
    producer
        .flush(Duration::from_secs(600))
        .expect("baseline: flush");
    let wall = started.elapsed();
    let cpu = self_cpu_secs() - cpu0;
    if trace() {
        let busiest = busiest_threads(&threads0, &thread_cpu_secs());
        println!(
            "  [baseline] busiest threads: {}",
            busiest
                .iter()
                .take(6)
                .map(|(n, c)| format!("{n} {c:.2} s"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let broker_cpu = cpu_secs(broker_pid) - broker0;
    let ctx = producer.context();
    let failed = ctx.failed.load(Ordering::Relaxed);
    assert_eq!(
        failed,
        0,
        "baseline: {failed} records were not delivered; first error: {:?}",
        ctx.first_error
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    );
    assert_eq!(
        ctx.ok.load(Ordering::Relaxed),
        total as u64,
        "baseline: delivery reports"
    );
    (wall, cpu, broker_cpu)
}

/// Watches `topic` from another thread and notes when its first records reach the broker (a
/// partition's high watermark above 0, polled every 5 ms; the topic is looked for in the
/// cluster's metadata first, so the watch never creates it): how long a run takes to get going.
struct Landing {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Option<Duration>>,
}

impl Landing {
    fn start(bs: &str, topic: &str) -> Landing {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bs)
            .create()
            .expect("watermark watcher");
        let topic = topic.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let started = Instant::now();
        let handle = std::thread::spawn(move || {
            let timeout = Duration::from_secs(1);
            let mut exists = false;
            while !flag.load(Ordering::Relaxed) {
                if !exists {
                    exists = consumer.fetch_metadata(None, timeout).is_ok_and(|m| {
                        m.topics()
                            .iter()
                            .any(|t| t.name() == topic && !t.partitions().is_empty())
                    });
                }
                if exists {
                    for p in 0..partitions() {
                        if let Ok((_, high)) = consumer.fetch_watermarks(&topic, p as i32, timeout)
                        {
                            if high > 0 {
                                return Some(started.elapsed());
                            }
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            None
        });
        Landing { stop, handle }
    }

    fn finish(self) -> Option<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("watermark watcher")
    }
}

/// A YAML string (JSON's quoting is valid YAML).
fn yaml_str(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// Writes the kafka-backup restore configuration for `target` and returns its path.
fn write_config(
    dir: &Path,
    bs: &str,
    store: &Path,
    restore_id: &str,
    target: &str,
    encrypted: bool,
) -> String {
    let (backup_id, encryption) = if encrypted {
        (
            BACKUP_ID_ENCRYPTED,
            format!(
                "  encryption:\n    key_file: {}\n",
                yaml_str(bench_key_file().to_str().expect("utf8"))
            ),
        )
    } else {
        (BACKUP_ID, String::new())
    };
    let props = extra_properties();
    let properties = if props.is_empty() {
        String::new()
    } else {
        let mut s = "  properties:\n".to_string();
        for (k, v) in &props {
            s.push_str(&format!("    {}: {}\n", yaml_str(k), yaml_str(v)));
        }
        s
    };
    let text = format!(
        "mode: restore\n\
         backup_id: {backup_id}\n\
         restore_id: {restore_id}\n\
         target:\n  \
           bootstrap_servers: [{}]\n  \
           topics:\n    include: [{SOURCE}]\n\
         {properties}\
         storage:\n  backend: filesystem\n  path: {}\n\
         {encryption}\
         restore:\n  \
           topic_mapping:\n    {SOURCE}: {target}\n  \
           create_topics: true\n  \
           max_concurrent_partitions: {}\n",
        yaml_str(bs),
        yaml_str(store.to_str().expect("utf8")),
        env_usize("BENCH_RESTORE_CONCURRENCY", 8).max(1),
    );
    let path = dir.join(format!("{restore_id}.yaml"));
    std::fs::write(&path, text).expect("write the restore configuration");
    path.to_str().expect("utf8").to_string()
}

/// Reads `topic` back with a plain consumer and checks it holds `source`: per partition the
/// same count from offset 0 without a gap, the same keys, values and headers (fingerprints) and
/// timestamps, and nothing more.
fn check_target(bs: &str, topic: &str, produced: &Produced, source: &Source) -> Duration {
    check_target_with(bs, topic, produced, source, true)
}

/// [`check_target`], the contents (fingerprints, timestamps) compared only when `exact` (the
/// A/B's `no-ts` and `no-headers` variants send records without them; counts and offsets are
/// checked all the same).
fn check_target_with(
    bs: &str,
    topic: &str,
    produced: &Produced,
    source: &Source,
    exact: bool,
) -> Duration {
    let started = Instant::now();
    let got = read_back(bs, topic, &produced.records, Duration::from_secs(60));
    for p in 0..got.records.len() {
        assert!(
            !exact || got.fingerprints[p] == produced.fingerprints[p],
            "{topic}-{p} holds other keys/values/headers than the source"
        );
        assert!(
            !exact || got.timestamps[p] == source.timestamps[p],
            "{topic}-{p} holds other timestamps than the source"
        );
    }
    started.elapsed()
}

#[allow(clippy::too_many_arguments)]
async fn restore_once(
    bs: &str,
    root: &Path,
    run: usize,
    produced: &Produced,
    source: &Source,
    broker_pid: &str,
    extra_args: &[String],
    trace: bool,
    encrypted: bool,
) -> Run {
    let tag = if encrypted { "-enc" } else { "" };
    let restore_id = format!("bench-r{run}{tag}");
    let target = format!("{SOURCE}-restored-{run}{tag}");
    let cfg = write_config(root, bs, root, &restore_id, &target, encrypted);
    let mut args: Vec<String> = ["restore", "--config", &cfg, "-f", "json"]
        .map(String::from)
        .to_vec();
    args.extend(extra_args.iter().cloned());
    let landing = Landing::start(bs, &target);
    let proc = run_measured(BIN, &args, broker_pid);
    let first_landed = landing.finish();
    if trace {
        proc.print_trace(&restore_id);
    }
    let r = proc.json(&format!("restore {restore_id}"));
    let total = produced.total_records();
    assert_eq!(r["complete"], true, "{restore_id}: {r}");
    assert_eq!(r["records"], total, "{restore_id}: records in the report");
    assert_eq!(
        r["records_this_run"], total,
        "{restore_id}: records_this_run"
    );
    assert_eq!(
        r["bytes"], produced.bytes,
        "{restore_id}: bytes in the report"
    );
    assert_eq!(
        r["topics_created"][0], target,
        "{restore_id}: topic created"
    );
    let check = check_target(bs, &target, produced, source);
    delete_topic(bs, &target).await;
    Run {
        topic: target,
        wall: proc.wall,
        cpu: proc.user + proc.sys,
        broker_cpu: proc.broker_cpu,
        report_ms: num(&r["duration_ms"], "duration_ms"),
        report_mib_s: num(&r["mib_per_second"], "mib_per_second"),
        check,
        first_landed,
        proc: Some(proc),
    }
}

async fn baseline_once(
    bs: &str,
    run: usize,
    produced: &Produced,
    source: &Source,
    broker_pid: &str,
) -> Run {
    let topic = format!("{SOURCE}-baseline-{run}");
    create_topic(bs, &topic, partitions()).await;
    let landing = Landing::start(bs, &topic);
    let (wall, cpu, broker_cpu) = baseline(bs, &topic, source, broker_pid);
    let first_landed = landing.finish();
    let check = check_target(bs, &topic, produced, source);
    delete_topic(bs, &topic).await;
    Run {
        topic,
        wall,
        cpu,
        broker_cpu,
        proc: None,
        report_ms: 0.0,
        report_mib_s: 0.0,
        check,
        first_landed,
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

async fn bench() {
    let mb = env_usize("BENCH_RESTORE_MB", 512).max(1);
    let runs = env_usize("BENCH_RESTORE_RUNS", 2).max(1);
    let extra_args = args_from_env("BENCH_RESTORE_ARGS");
    let trace = trace();
    let warmup = env_usize("BENCH_RESTORE_WARMUP", 1) > 0;
    let codec = std::env::var("BENCH_RESTORE_CODEC").unwrap_or_else(|_| "lz4".into());
    let build = build_description(BIN);
    let load_before = load_average();

    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    let broker_pid = kafka.server.pid().to_string();
    create_topic(&bs, SOURCE, partitions()).await;
    create_topic(&bs, WARM_TOPIC, 1).await;
    let produced = produce(&bs, SOURCE, partitions(), mb as u64 * 1024 * 1024);
    let total = produced.total_records();
    let data_mib = produced.bytes as f64 / MIB;
    println!(
        "produced {total} records, {data_mib:.1} MiB in {:.2} s ({:.1} MiB/s)",
        produced.wall.as_secs_f64(),
        data_mib / produced.wall.as_secs_f64(),
    );

    let store = tempfile::Builder::new()
        .prefix("tidemark-bench-restore-")
        .tempdir_in(
            std::env::var_os("BENCH_RESTORE_DIR").map_or_else(std::env::temp_dir, Into::into),
        )
        .expect("tempdir");
    let root = store.path();
    let root_s = root.to_str().expect("utf8");
    let (backup_wall, b) = time_cli(
        BIN,
        &[
            "backup",
            "--bootstrap-servers",
            &bs,
            "--path",
            root_s,
            "--topics",
            SOURCE,
            "--backup-id",
            BACKUP_ID,
            "--compression",
            &codec,
            "-f",
            "json",
        ],
    );
    assert_eq!(b["complete"], true, "backup: {b}");
    assert_eq!(b["records"], total, "backup: records");
    assert_eq!(b["bytes"], produced.bytes, "backup: bytes");
    let stored = b["stored_bytes"].as_u64().expect("stored_bytes");
    let segments = b["segments"].as_u64().expect("segments");
    println!(
        "backup --compression {codec}: {:.2} s, {:.1} MiB stored in {segments} segments ({:.1} MiB on disk)",
        backup_wall.as_secs_f64(),
        stored as f64 / MIB,
        disk_usage(root) as f64 / MIB
    );
    let encrypted = std::env::var("BENCH_RESTORE_ENCRYPTED").is_ok_and(|v| v == "1");
    if encrypted {
        let key = bench_key_file().to_str().expect("utf8").to_string();
        let (wall, e) = time_cli(
            BIN,
            &[
                "backup",
                "--bootstrap-servers",
                &bs,
                "--path",
                root_s,
                "--topics",
                SOURCE,
                "--backup-id",
                BACKUP_ID_ENCRYPTED,
                "--compression",
                &codec,
                "--encryption-key-file",
                &key,
                "-f",
                "json",
            ],
        );
        assert_eq!(e["complete"], true, "encrypted backup: {e}");
        assert_eq!(e["records"], total, "encrypted backup: records");
        assert_eq!(e["encryption_key_id"], "bench", "encrypted backup: {e}");
        println!(
            "backup --compression {codec} encrypted: {:.2} s (in the clear: {:.2} s)",
            wall.as_secs_f64(),
            backup_wall.as_secs_f64()
        );
    }
    let loading = Instant::now();
    let source = load_source(root, &produced).await;
    println!(
        "backup read back into memory and checked in {:.2} s",
        loading.elapsed().as_secs_f64()
    );

    if let Ok(names) = std::env::var("BENCH_RESTORE_AB") {
        if warmup {
            baseline_once(&bs, 0, &produced, &source, &broker_pid).await;
        }
        ab::run(&names, runs, &bs, root, &produced, &source, &broker_pid).await;
        println!(
            "load average (1/5/15 min) before: {load_before}, after: {}",
            load_average()
        );
        return;
    }
    if warmup {
        // The broker's first copy of the data costs more (fresh memory) than later ones, which
        // reuse what deleted topics freed: one untimed copy first, so every measured run is alike.
        let w = baseline_once(&bs, 0, &produced, &source, &broker_pid).await;
        println!(
            "warm-up: baseline producer into a scratch topic {:.2} s ({:.1} MiB/s; not counted), broker CPU {:.2} s",
            w.wall.as_secs_f64(),
            w.mib_s(produced.bytes),
            w.broker_cpu
        );
    }
    let mut bases: Vec<Run> = Vec::with_capacity(runs);
    let mut restores: Vec<Run> = Vec::with_capacity(runs);
    let mut encrypted_runs: Vec<Run> = Vec::with_capacity(runs);
    for run in 1..=runs {
        let b = baseline_once(&bs, run, &produced, &source, &broker_pid).await;
        println!(
            "run {run}: baseline producer {total} records in {:.2} s ({:.1} MiB/s, {:.0} records/s) into {}; read back and matched in {:.2} s",
            b.wall.as_secs_f64(),
            b.mib_s(produced.bytes),
            b.records_s(total),
            b.topic,
            b.check.as_secs_f64()
        );
        bases.push(b);
        // Alternating order: the encrypted restore first on even runs.
        let once = |sealed: bool| {
            restore_once(
                &bs,
                root,
                run,
                &produced,
                &source,
                &broker_pid,
                &extra_args,
                trace,
                sealed,
            )
        };
        if encrypted && run % 2 == 0 {
            encrypted_runs.push(once(true).await);
        }
        let r = once(false).await;
        if encrypted && run % 2 == 1 {
            encrypted_runs.push(once(true).await);
        }
        let proc = r.proc.as_ref().expect("restore process");
        println!(
            "run {run}: restore {:.2} s ({:.1} MiB/s, {:.0} records/s; report {:.2} s), peak RSS {:.1} MiB into {}; read back and matched in {:.2} s",
            r.wall.as_secs_f64(),
            r.mib_s(produced.bytes),
            r.records_s(total),
            r.report_ms / 1000.0,
            proc.maxrss_kib as f64 / 1024.0,
            r.topic,
            r.check.as_secs_f64()
        );
        restores.push(r);
    }

    let mib_s = |r: &Run| r.mib_s(produced.bytes);
    let rec_s = |r: &Run| r.records_s(total);
    let base_best = best(bases.iter().map(mib_s));
    let base_rec_best = best(bases.iter().map(rec_s));
    let rest_best = best(restores.iter().map(mib_s));
    let rest_rec_best = best(restores.iter().map(rec_s));
    let rss_worst = restores
        .iter()
        .filter_map(|r| r.proc.as_ref())
        .map(|p| p.maxrss_kib as f64 / 1024.0)
        .fold(0.0, f64::max);
    let props = extra_properties();

    println!();
    println!("restore benchmark — {build}");
    println!(
        "load average (1/5/15 min) before: {load_before}, after: {}",
        load_average()
    );
    println!(
        "topic {SOURCE}: {} partitions, {total} records, {data_mib:.1} MiB key+value+header bytes (avg {:.0} B/record, {} with a header); backup {codec}, {:.1} MiB stored, {segments} segments",
        partitions(),
        produced.bytes as f64 / total as f64,
        produced.headers,
        stored as f64 / MIB
    );
    println!(
        "producer settings, baseline and restore alike: enable.idempotence=true acks=all queue.buffering.max.kbytes={QUEUE_KBYTES} enable.sparse.connections=false batch.num.messages={BATCH} message.max.bytes={MESSAGE_MAX_BYTES} (librdkafka defaults otherwise)"
    );
    if !props.is_empty() {
        println!("  (BENCH_RESTORE_PROPERTIES: {props:?})");
    }
    println!(
        "restore: max_concurrent_partitions {}, create_topics, topic_mapping to a fresh topic per run",
        env_usize("BENCH_RESTORE_CONCURRENCY", 8).max(1)
    );
    if !extra_args.is_empty() {
        println!("extra restore arguments: {extra_args:?}");
    }
    println!(
        "{runs} run(s); throughput: the fastest run; peak RSS: the largest; RSS = ru_maxrss of the restore process alone (wait4 in a measuring helper), VmHWM = its /proc status polled every 10 ms"
    );
    println!(
        "1st rec s: when the target's first records reached the broker (a high watermark above 0, polled every 5 ms), from the first send (baseline) or the process start (restore)"
    );
    println!();
    println!(
        "  {:<3} {:<18} {:>7} {:>8} {:>10} {:>6} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "run",
        "what",
        "wall s",
        "MiB/s",
        "records/s",
        "ratio",
        "1st rec s",
        "report s",
        "RSS MiB",
        "VmHWM",
        "CPU s",
        "broker s"
    );
    let landed = |r: &Run| {
        r.first_landed
            .map_or("-".to_string(), |d| format!("{:.2}", d.as_secs_f64()))
    };
    for run in 1..=runs {
        let b = &bases[run - 1];
        println!(
            "  {:<3} {:<18} {:>7.2} {:>8.1} {:>10.0} {:>6.2} {:>9} {:>9} {:>8} {:>8} {:>8.2} {:>8.2}",
            run,
            "baseline producer",
            b.wall.as_secs_f64(),
            mib_s(b),
            rec_s(b),
            1.0,
            landed(b),
            "-",
            "-",
            "-",
            b.cpu,
            b.broker_cpu
        );
        let r = &restores[run - 1];
        let p = r.proc.as_ref().expect("restore process");
        println!(
            "  {:<3} {:<18} {:>7.2} {:>8.1} {:>10.0} {:>6.2} {:>9} {:>9.2} {:>8.1} {:>8.1} {:>8.2} {:>8.2}",
            run,
            "restore",
            r.wall.as_secs_f64(),
            mib_s(r),
            rec_s(r),
            mib_s(r) / mib_s(b),
            landed(r),
            r.report_ms / 1000.0,
            p.maxrss_kib as f64 / 1024.0,
            p.sampled_hwm_kib as f64 / 1024.0,
            r.cpu,
            r.broker_cpu
        );
    }
    println!();
    let row = |name: &str, value: String| println!("  {name:<52} {value}");
    row(
        "baseline producer MiB/s, records/s (best)",
        format!(
            "{base_best:.1} MiB/s, {base_rec_best:.0} records/s (median {:.1} MiB/s)",
            median(bases.iter().map(mib_s).collect())
        ),
    );
    row(
        "restore MiB/s, records/s (best)",
        format!(
            "{rest_best:.1} MiB/s, {rest_rec_best:.0} records/s (median {:.1} MiB/s; engine's own figure {:.1} MiB/s)",
            median(restores.iter().map(mib_s).collect()),
            best(restores.iter().map(|r| r.report_mib_s))
        ),
    );
    let first = |runs: &[Run]| {
        runs.iter()
            .filter_map(|r| r.first_landed)
            .map(|d| d.as_secs_f64())
            .fold(f64::INFINITY, f64::min)
    };
    row(
        "first records in the target after (best)",
        format!(
            "baseline {:.2} s from the first send, restore {:.2} s from the process start",
            first(&bases),
            first(&restores)
        ),
    );
    let ratio = rest_best / base_best;
    row(
        &format!("restore / baseline (goal >= {GOAL_RATIO})"),
        format!("{ratio:.2}  {}", verdict(ratio >= GOAL_RATIO)),
    );
    let gib = produced.bytes as f64 / (1024.0 * MIB);
    let base_cpu = median(bases.iter().map(|r| r.cpu).collect()) / gib;
    let rest_cpu = median(restores.iter().map(|r| r.cpu).collect()) / gib;
    row(
        "CPU-s per GiB (median; user + system, every thread)",
        format!(
            "baseline {base_cpu:.2}, restore {rest_cpu:.2}; broker meanwhile: baseline {:.2}, restore {:.2}",
            median(bases.iter().map(|r| r.broker_cpu).collect()) / gib,
            median(restores.iter().map(|r| r.broker_cpu).collect()) / gib
        ),
    );
    let cpu_ratio = rest_cpu / base_cpu;
    row(
        &format!("restore / baseline CPU per GiB (goal <= {GOAL_CPU})"),
        format!("{cpu_ratio:.2}  {}", verdict(cpu_ratio <= GOAL_CPU)),
    );
    if !encrypted_runs.is_empty() {
        let paired: Vec<f64> = restores
            .iter()
            .zip(&encrypted_runs)
            .map(|(p, e)| p.wall.as_secs_f64() / e.wall.as_secs_f64())
            .collect();
        let text = per_run(&paired);
        let m = median(paired);
        row(
            &format!("encrypted restore / in the clear, paired (goal >= {GOAL_ENCRYPTED})"),
            format!(
                "{m:.2}  {}  (per run: {text})",
                verdict(m >= GOAL_ENCRYPTED)
            ),
        );
        let enc_cpu = median(encrypted_runs.iter().map(|r| r.cpu).collect()) / gib;
        let enc_rss = encrypted_runs
            .iter()
            .filter_map(|r| r.proc.as_ref())
            .map(|p| p.maxrss_kib as f64 / 1024.0)
            .fold(0.0, f64::max);
        row(
            "encrypted restore CPU-s/GiB (median), peak RSS",
            format!("{enc_cpu:.2} (in the clear {rest_cpu:.2}), {enc_rss:.1} MiB"),
        );
    }
    row(
        &format!("restore peak RSS, largest run (goal <= {GOAL_RSS_MIB:.0} MiB)"),
        format!("{rss_worst:.1} MiB  {}", verdict(rss_worst <= GOAL_RSS_MIB)),
    );
    row(
        "correctness (every run)",
        format!(
            "{total} records / {} bytes in each restore report; every target read back with the same records per partition (offsets from 0, keys, values, headers, timestamps)",
            produced.bytes
        ),
    );
}

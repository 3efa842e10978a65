//! The A/B of the baseline (`BENCH_RESTORE_AB`): the bare producer loop given, one at a time,
//! what the restore does per record, and the CPU each one costs this process (every thread:
//! the loop, librdkafka's broker and poll threads), so the restore's extra CPU per GiB can be
//! put on its causes.
//!
//! Variants (each from `base`, the benchmark's baseline: explicit partition, CreateTime
//! timestamps, the records' own headers, a `ThreadedProducer`):
//! - `no-ts`, `no-headers`: without timestamps or without headers (what those cost);
//! - `book`: the restore's delivery bookkeeping: a per-message opaque (the unit), the unit's
//!   in-flight list pushed under its lock before each chunk is sent and popped by each report,
//!   which extends the unit's offset mapping (engine/producer.rs `DeliveryContext`);
//! - `poll10`: a `BaseProducer` served by its own thread polling every 10 ms (the restore's
//!   delivery thread) instead of the `ThreadedProducer`;
//! - `sender`: the restore's thread structure: one thread per partition (its lane) hands
//!   chunks of [`BATCH`] records to one sender thread through a queue;
//! - `segments`: as `sender`, the lanes reading the records from the backup's lz4 segments
//!   (the library's `read_segment_reusing`, buffers reused) instead of from memory;
//! - `all`: `book` + `poll10` + `segments`; `restore`: the real CLI, measured as in the
//!   benchmark (user + system of its process from `wait4`).
//!
//! Every run writes a fresh topic that is read back and compared, then deleted.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::{Condvar, Mutex};

use rdkafka::producer::{BaseProducer, DeliveryResult, ProducerContext};
use rdkafka::ClientContext;
use tidemark::backup::format::DecodedSegment;
use tidemark::backup::manifest::SegmentEntry;
use tidemark::backup::read::read_segment_reusing;
use tidemark::restore::mapping::PartitionMapping;
use tidemark_tests::bench::self_cpu_secs;

use super::*;

/// A record as the A/B loops hand it to librdkafka (its opaque: the record's index).
type AbRecord<'a> = BaseRecord<'a, [u8], [u8], usize>;

/// One run's wall seconds, CPU seconds and broker CPU seconds.
type Measures = (f64, f64, f64);

/// What one variant does per record.
#[derive(Clone, Copy, Debug, Default)]
struct Features {
    timestamps: bool,
    headers: bool,
    book: bool,
    poll10: bool,
    sender: bool,
    segments: bool,
}

const VARIANTS: &[&str] = &[
    "base",
    "no-ts",
    "no-headers",
    "book",
    "poll10",
    "sender",
    "segments",
    "all",
    "restore",
];

fn features(name: &str) -> Option<Features> {
    let base = Features {
        timestamps: true,
        headers: true,
        ..Features::default()
    };
    Some(match name {
        "base" => base,
        "no-ts" => Features {
            timestamps: false,
            ..base
        },
        "no-headers" => Features {
            headers: false,
            ..base
        },
        "book" => Features { book: true, ..base },
        "poll10" => Features {
            poll10: true,
            ..base
        },
        "sender" => Features {
            sender: true,
            ..base
        },
        "segments" => Features {
            sender: true,
            segments: true,
            ..base
        },
        "all" => Features {
            book: true,
            poll10: true,
            sender: true,
            segments: true,
            ..base
        },
        _ => return None,
    })
}

/// A unit's bookkeeping, as the restore keeps it.
struct Book {
    inflight: VecDeque<(i64, i64, u64)>,
    mapping: PartitionMapping,
}

struct AbContext {
    ok: AtomicU64,
    failed: AtomicU64,
    units: Option<Vec<Mutex<Book>>>,
}

impl ClientContext for AbContext {}

impl ProducerContext for AbContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, unit: usize) {
        match result {
            Ok(m) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                if let Some(units) = &self.units {
                    let mut u = units[unit].lock().expect("book");
                    if let Some((source, ts, _)) = u.inflight.pop_front() {
                        u.mapping.push(source, m.offset(), ts);
                    }
                }
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The producer of one variant run: threaded, or a base producer with its own poll thread.
enum AbProducer {
    Threaded(ThreadedProducer<AbContext>),
    Polled {
        producer: Arc<BaseProducer<AbContext>>,
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    },
}

impl AbProducer {
    fn new(bs: &str, f: Features) -> AbProducer {
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
        let ctx = AbContext {
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            units: f.book.then(|| {
                (0..partitions())
                    .map(|p| {
                        Mutex::new(Book {
                            inflight: VecDeque::new(),
                            mapping: PartitionMapping::new((SOURCE, p as i32), ("ab", p as i32), 0),
                        })
                    })
                    .collect()
            }),
        };
        if !f.poll10 {
            return AbProducer::Threaded(cfg.create_with_context(ctx).expect("A/B producer"));
        }
        let producer: Arc<BaseProducer<AbContext>> =
            Arc::new(cfg.create_with_context(ctx).expect("A/B producer"));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (producer, stop) = (Arc::clone(&producer), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    producer.poll(Duration::from_millis(10));
                }
            })
        };
        AbProducer::Polled {
            producer,
            stop,
            thread: Some(thread),
        }
    }

    /// rdkafka's own `send`, whose error hands the record back.
    #[allow(clippy::result_large_err)]
    fn send<'a>(&self, rec: AbRecord<'a>) -> Result<(), (KafkaError, AbRecord<'a>)> {
        match self {
            AbProducer::Threaded(p) => p.send(rec),
            AbProducer::Polled { producer, .. } => producer.send(rec),
        }
    }

    fn flush(&self) {
        match self {
            AbProducer::Threaded(p) => p.flush(Duration::from_secs(600)),
            AbProducer::Polled { producer, .. } => producer.flush(Duration::from_secs(600)),
        }
        .expect("A/B: flush");
    }

    fn context(&self) -> &AbContext {
        match self {
            AbProducer::Threaded(p) => p.context(),
            AbProducer::Polled { producer, .. } => producer.context(),
        }
    }
}

impl Drop for AbProducer {
    fn drop(&mut self) {
        if let AbProducer::Polled { stop, thread, .. } = self {
            stop.store(true, Ordering::Relaxed);
            if let Some(t) = thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// One record as the restore hands it over: key, value, headers, timestamp.
struct Rec<'a, H> {
    offset: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers: H,
    header_count: usize,
    timestamp: i64,
    bytes: u64,
}

/// Sends a chunk of one partition's records (`unit` = partition), with the variant's features.
fn send_chunk<'a, H>(
    producer: &AbProducer,
    topic: &str,
    unit: usize,
    f: Features,
    records: Vec<Rec<'a, H>>,
) where
    H: Iterator<Item = (&'a str, Option<&'a [u8]>)>,
{
    if let Some(units) = &producer.context().units {
        let mut u = units[unit].lock().expect("book");
        for r in &records {
            u.inflight.push_back((r.offset, r.timestamp, r.bytes));
        }
    }
    for r in records {
        let mut rec: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(topic, unit).partition(unit as i32);
        if f.headers && r.header_count > 0 {
            let mut headers = OwnedHeaders::new_with_capacity(r.header_count);
            for (key, value) in r.headers {
                headers = headers.insert(Header { key, value });
            }
            rec = rec.headers(headers);
        }
        if let Some(k) = r.key {
            rec = rec.key(k);
        }
        if let Some(v) = r.value {
            rec = rec.payload(v);
        }
        if f.timestamps && r.timestamp >= 0 {
            rec = rec.timestamp(r.timestamp);
        }
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => panic!("A/B: produce to {topic}-{unit}: {e}"),
            }
        }
    }
}

fn memory_records(
    records: &[Record],
) -> impl Iterator<Item = Rec<'_, impl Iterator<Item = (&str, Option<&[u8]>)>>> {
    records.iter().map(|r| Rec {
        offset: r.offset,
        key: r.key.as_deref(),
        value: r.value.as_deref(),
        headers: r.headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())),
        header_count: r.headers.len(),
        timestamp: r.timestamp,
        bytes: 0,
    })
}

/// Work for the sender: a chunk of one lane's records.
enum Job {
    Memory {
        start: usize,
        end: usize,
    },
    Segment {
        seg: Arc<DecodedSegment>,
        start: usize,
        end: usize,
    },
}

struct Queue {
    lanes: Mutex<(Vec<VecDeque<Job>>, usize)>,
    ready: Condvar,
    room: Condvar,
}

/// Chunks a lane may have waiting (about two segments).
const LANE_DEPTH: usize = 8;

impl Queue {
    fn push(&self, lane: usize, job: Job) {
        let mut g = self.lanes.lock().expect("queue");
        while g.0[lane].len() >= LANE_DEPTH {
            g = self.room.wait(g).expect("queue");
        }
        g.0[lane].push_back(job);
        drop(g);
        self.ready.notify_one();
    }

    fn lane_done(&self) {
        self.lanes.lock().expect("queue").1 -= 1;
        self.ready.notify_all();
    }

    /// The next job, lanes in turn after `turn`; `None` once every lane is done and drained.
    fn next(&self, turn: usize) -> Option<(usize, Job)> {
        let mut g = self.lanes.lock().expect("queue");
        loop {
            let n = g.0.len();
            if let Some(l) = (0..n).map(|k| (turn + k) % n).find(|&l| !g.0[l].is_empty()) {
                let job = g.0[l].pop_front();
                drop(g);
                self.room.notify_all();
                return job.map(|j| (l, j));
            }
            if g.1 == 0 {
                return None;
            }
            g = self.ready.wait(g).expect("queue");
        }
    }
}

/// The backup's segments per partition, for `segments`.
struct Segments {
    storage: Storage,
    partitions: Vec<Vec<SegmentEntry>>,
}

async fn load_segments(dir: &Path) -> Segments {
    let storage = Storage::open(dir.to_str().expect("utf8"), &StorageOptions::default())
        .expect("open backup storage");
    let manifests = load_manifests(&storage, BACKUP_ID).await.expect("manifest");
    let topic = &manifests[0].topics[SOURCE];
    let partitions = (0..partitions())
        .map(|p| topic.partition_data[&(p as i32)].segments.clone())
        .collect();
    Segments {
        storage,
        partitions,
    }
}

/// A lane: its partition's records as chunks of [`BATCH`], from memory or from the segments.
fn run_lane(
    lane: usize,
    f: Features,
    source: &Source,
    segments: &Segments,
    queue: &Queue,
    handle: &tokio::runtime::Handle,
) {
    if !f.segments {
        let n = source.records[lane].len();
        for start in (0..n).step_by(BATCH) {
            let end = (start + BATCH).min(n);
            queue.push(lane, Job::Memory { start, end });
        }
        return;
    }
    let (mut block, mut object) = (Vec::new(), Vec::new());
    let mut spare: Vec<Arc<DecodedSegment>> = Vec::new();
    for entry in &segments.partitions[lane] {
        // A segment the sender is done with gives its buffers back.
        spare.retain(|s| Arc::strong_count(s) > 1);
        let (seg, obj) = handle
            .block_on(read_segment_reusing(
                &segments.storage,
                entry,
                std::mem::take(&mut block),
                std::mem::take(&mut object),
            ))
            .expect("A/B: read a segment");
        if let Some(o) = obj {
            object = o;
        }
        let seg = Arc::new(seg);
        for start in (0..seg.len()).step_by(BATCH) {
            let end = (start + BATCH).min(seg.len());
            queue.push(
                lane,
                Job::Segment {
                    seg: Arc::clone(&seg),
                    start,
                    end,
                },
            );
        }
        spare.push(seg);
        if let Some(i) = spare.iter().position(|s| Arc::strong_count(s) == 1) {
            if let Ok(s) = Arc::try_unwrap(spare.swap_remove(i)) {
                block = s.into_buffers().0;
            }
        }
    }
}

/// The sender: jobs in turn, each chunk handed to the producer.
fn run_sender(producer: &AbProducer, topic: &str, f: Features, source: &Source, queue: &Queue) {
    let mut turn = 0;
    while let Some((lane, job)) = queue.next(turn) {
        turn = lane + 1;
        match job {
            Job::Memory { start, end } => send_chunk(
                producer,
                topic,
                lane,
                f,
                memory_records(&source.records[lane][start..end]).collect(),
            ),
            Job::Segment { seg, start, end } => {
                let records = (start..end).filter_map(|i| seg.get(i)).map(|r| Rec {
                    offset: r.offset,
                    key: r.key,
                    value: r.value,
                    headers: r.headers(),
                    header_count: r.header_count(),
                    timestamp: r.timestamp,
                    bytes: r.payload_bytes(),
                });
                send_chunk(producer, topic, lane, f, records.collect());
            }
        }
    }
}

/// One run of a variant into `topic`: (wall, CPU seconds of this process, broker CPU).
fn run_variant(
    bs: &str,
    topic: &str,
    f: Features,
    source: &Source,
    segments: &Segments,
    broker_pid: &str,
) -> (Duration, f64, f64) {
    let producer = AbProducer::new(bs, f);
    let warm: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(WARM_TOPIC, 0)
        .partition(0)
        .payload(b"warm".as_slice());
    producer
        .send(warm)
        .map_err(|(e, _)| e)
        .expect("A/B: warm-up record");
    producer.flush();
    producer.context().ok.store(0, Ordering::Relaxed);
    let total: usize = source.records.iter().map(Vec::len).sum();
    let handle = tokio::runtime::Handle::current();
    let cpu0 = self_cpu_secs();
    let broker0 = cpu_secs(broker_pid);
    let started = Instant::now();
    if f.sender {
        let queue = Queue {
            lanes: Mutex::new((
                (0..partitions()).map(|_| VecDeque::new()).collect(),
                partitions(),
            )),
            ready: Condvar::new(),
            room: Condvar::new(),
        };
        std::thread::scope(|s| {
            for lane in 0..partitions() {
                let (queue, handle) = (&queue, &handle);
                s.spawn(move || {
                    run_lane(lane, f, source, segments, queue, handle);
                    queue.lane_done();
                });
            }
            s.spawn(|| run_sender(&producer, topic, f, source, &queue));
        });
    } else {
        let mut next = vec![0usize; source.records.len()];
        loop {
            let mut sent = false;
            for (p, records) in source.records.iter().enumerate() {
                let end = (next[p] + BATCH).min(records.len());
                send_chunk(
                    &producer,
                    topic,
                    p,
                    f,
                    memory_records(&records[next[p]..end]).collect(),
                );
                sent |= end > next[p];
                next[p] = end;
            }
            if !sent {
                break;
            }
        }
    }
    producer.flush();
    let wall = started.elapsed();
    let cpu = self_cpu_secs() - cpu0;
    let broker = cpu_secs(broker_pid) - broker0;
    let ctx = producer.context();
    assert_eq!(
        ctx.failed.load(Ordering::Relaxed),
        0,
        "A/B: failed deliveries"
    );
    assert_eq!(
        ctx.ok.load(Ordering::Relaxed),
        total as u64,
        "A/B: deliveries"
    );
    if let Some(units) = &ctx.units {
        let mapped: u64 = units
            .iter()
            .map(|u| u.lock().expect("book").mapping.records)
            .sum();
        assert_eq!(mapped, total as u64, "A/B: records mapped");
    }
    (wall, cpu, broker)
}

/// Runs the A/B: `names` in alternating order, `runs` rounds; prints each run and a table.
pub(super) async fn run(
    names: &str,
    runs: usize,
    bs: &str,
    root: &Path,
    produced: &Produced,
    source: &Source,
    broker_pid: &str,
) {
    let mut names: Vec<&str> = if names.trim() == "every" {
        VARIANTS.to_vec()
    } else {
        names
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect()
    };
    for n in &names {
        assert!(
            *n == "restore" || features(n).is_some(),
            "BENCH_RESTORE_AB: unknown variant {n} (one of {VARIANTS:?}, or every)"
        );
    }
    let segments = load_segments(root).await;
    let gib = produced.bytes as f64 / (1024.0 * MIB);
    let mut results: Vec<(String, Vec<Measures>)> =
        names.iter().map(|n| (n.to_string(), Vec::new())).collect();
    let mut k = 0;
    for round in 1..=runs {
        let order: Vec<usize> = if round % 2 == 1 {
            (0..names.len()).collect()
        } else {
            (0..names.len()).rev().collect()
        };
        for i in order {
            k += 1;
            let name = names[i];
            let (wall, cpu, broker) = if name == "restore" {
                let r = restore_once(
                    bs,
                    root,
                    100 + k,
                    produced,
                    source,
                    broker_pid,
                    &[],
                    false,
                    false,
                )
                .await;
                (r.wall, r.cpu, r.broker_cpu)
            } else {
                let f = features(name).expect("variant");
                let topic = format!("{SOURCE}-ab-{k}");
                create_topic(bs, &topic, partitions()).await;
                let (wall, cpu, broker) = tokio::task::block_in_place(|| {
                    run_variant(bs, &topic, f, source, &segments, broker_pid)
                });
                check_target_with(bs, &topic, produced, source, f.timestamps && f.headers);
                delete_topic(bs, &topic).await;
                (wall, cpu, broker)
            };
            println!(
                "A/B round {round} {name:<11} wall {:.2} s, CPU {cpu:.2} s ({:.2} CPU-s/GiB), broker {broker:.2} s; load {}",
                wall.as_secs_f64(),
                cpu / gib,
                load_average()
            );
            results[i].1.push((wall.as_secs_f64(), cpu, broker));
        }
    }
    names.clear();
    let med = |v: &[Measures], f: fn(&Measures) -> f64| median(v.iter().map(f).collect());
    let base_cpu = results
        .iter()
        .find(|(n, _)| n == "base")
        .map(|(_, v)| med(v, |r| r.1));
    println!();
    println!(
        "A/B of the baseline, {:.1} MiB, {} partitions, medians of {runs} run(s) in alternating order (CPU: user + system of the producing process, every thread)",
        produced.bytes as f64 / MIB,
        partitions()
    );
    println!(
        "  {:<11} {:>7} {:>8} {:>10} {:>9} {:>9}",
        "variant", "wall s", "CPU s", "CPU-s/GiB", "vs base", "broker s"
    );
    for (name, v) in &results {
        let cpu = med(v, |r| r.1);
        println!(
            "  {:<11} {:>7.2} {:>8.2} {:>10.2} {:>9} {:>9.2}",
            name,
            med(v, |r| r.0),
            cpu,
            cpu / gib,
            base_cpu.map_or("-".into(), |b| format!("{:.2}x", cpu / b)),
            med(v, |r| r.2)
        );
    }
}

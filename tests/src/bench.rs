//! Helpers shared by the benchmarks (tests/benches): a deterministic generator of ~1 KiB
//! order events and the producer that fills a topic with them, a record fingerprint, and the
//! measuring helper that runs a `tidemark` process and reports its wall time, CPU time and own
//! peak RSS.
//!
//! A benchmark that uses [`run_measured`] must call [`measure_helper_if_asked`] first thing in
//! its `main`: the measuring helper is the benchmark binary re-executed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use serde_json::Value;

/// Bytes in a MiB, as f64.
pub const MIB: f64 = 1024.0 * 1024.0;

// ---------------------------------------------------------------------------------------------
// Data

/// splitmix64: a fast deterministic generator, so every run produces the same topic.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const TYPES: &[&str] = &[
    "order_created",
    "order_paid",
    "order_shipped",
    "order_cancelled",
    "cart_updated",
    "refund_issued",
];
const TIERS: &[&str] = &["bronze", "silver", "gold", "platinum"];
const REGIONS: &[&str] = &[
    "eu-west-1",
    "eu-central-1",
    "us-east-1",
    "us-west-2",
    "ap-southeast-1",
];
const PRODUCTS: &[&str] = &[
    "wireless mouse",
    "usb-c cable",
    "mechanical keyboard",
    "27in monitor",
    "laptop stand",
    "noise cancelling headphones",
    "webcam",
    "desk lamp",
    "ergonomic chair",
    "ssd 1tb",
    "hdmi adapter",
    "phone case",
];
const WORDS: &[&str] = &[
    "please",
    "deliver",
    "to",
    "the",
    "back",
    "door",
    "fragile",
    "gift",
    "wrap",
    "call",
    "before",
    "arrival",
    "leave",
    "with",
    "neighbour",
    "thanks",
    "urgent",
    "weekend",
    "office",
    "reception",
];
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// One record being produced (buffers reused from record to record).
#[derive(Default)]
pub struct Gen {
    pub key: String,
    pub value: String,
    pub trace: Option<String>,
}

impl Gen {
    /// Fills record `seq`: a 900–1150 byte order event, its customer id as key, and a
    /// `trace-id` header on every 4th record.
    pub fn fill(&mut self, rng: &mut Rng, seq: u64) {
        let customer = rng.below(100_000);
        let target = 900 + rng.below(251) as usize;
        self.key.clear();
        let _ = write!(self.key, "cust-{customer:06}");
        let v = &mut self.value;
        v.clear();
        let _ = write!(
            v,
            r#"{{"event_id":"{:016x}{:016x}","seq":{seq},"ts":{},"type":"{}","source":"checkout-service","version":3,"customer":{{"id":"cust-{customer:06}","tier":"{}","region":"{}","email":"user{customer}@example.com"}},"items":["#,
            rng.next_u64(),
            rng.next_u64(),
            1_700_000_000_000u64 + seq * 3 + rng.below(3),
            rng.pick(TYPES),
            rng.pick(TIERS),
            rng.pick(REGIONS),
        );
        let mut first = true;
        while v.len() + 260 < target {
            if !first {
                v.push(',');
            }
            first = false;
            let _ = write!(
                v,
                r#"{{"sku":"SKU-{:05}","name":"{}","qty":{},"price_cents":{}}}"#,
                rng.below(100_000),
                rng.pick(PRODUCTS),
                1 + rng.below(5),
                99 + rng.below(50_000)
            );
        }
        v.push_str(r#"],"comment":""#);
        while v.len() + 100 < target {
            v.push_str(rng.pick(WORDS));
            v.push(' ');
        }
        v.push_str(r#"","signature":""#);
        for _ in 0..7 {
            let mut bits = rng.next_u64();
            for _ in 0..10 {
                v.push(B64[(bits & 63) as usize] as char);
                bits >>= 6;
            }
        }
        v.push_str(r#""}"#);
        self.trace = if seq & 3 == 0 {
            Some(format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64()))
        } else {
            None
        };
    }

    pub fn bytes(&self) -> u64 {
        let header = self
            .trace
            .as_ref()
            .map_or(0, |t| TRACE_HEADER.len() + t.len());
        (self.key.len() + self.value.len() + header) as u64
    }
}

pub const TRACE_HEADER: &str = "trace-id";

/// A 64-bit fingerprint of one record's key, value and headers (length-prefixed, SHA-256).
pub fn fingerprint(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&str, Option<&[u8]>)],
) -> u64 {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut field = |b: Option<&[u8]>| match b {
        None => ctx.update(&u64::MAX.to_le_bytes()),
        Some(b) => {
            ctx.update(&(b.len() as u64).to_le_bytes());
            ctx.update(b);
        }
    };
    field(key);
    field(value);
    for (k, v) in headers {
        field(Some(k.as_bytes()));
        field(*v);
    }
    let d = ctx.finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d.as_ref()[..8]);
    u64::from_le_bytes(first)
}

/// What was produced, per partition: record count and the (wrapping) sum of the records'
/// fingerprints — independent of the order, so a producer retry cannot make it wrong.
pub struct Produced {
    pub records: Vec<u64>,
    pub fingerprints: Vec<u64>,
    pub bytes: u64,
    pub headers: u64,
    pub wall: Duration,
    pub generating: Duration,
}

impl Produced {
    pub fn total_records(&self) -> u64 {
        self.records.iter().sum()
    }
}

/// Counts deliveries; remembers the first failure.
#[derive(Default)]
pub struct Deliveries {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

/// Creates `topic` with `partitions` partitions (replication factor 1).
pub async fn create_topic(bs: &str, topic: &str, partitions: usize) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bs)
        .create()
        .expect("admin client");
    let topic = NewTopic::new(topic, partitions as i32, TopicReplication::Fixed(1));
    for r in admin
        .create_topics(
            &[topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topics request")
    {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }
}

fn send(producer: &ThreadedProducer<Deliveries>, topic: &str, g: &Gen, partition: i32) {
    let mut rec = BaseRecord::to(topic)
        .partition(partition)
        .key(g.key.as_str())
        .payload(g.value.as_str());
    if let Some(t) = &g.trace {
        rec = rec.headers(OwnedHeaders::new().insert(Header {
            key: TRACE_HEADER,
            value: Some(t.as_str()),
        }));
    }
    loop {
        match producer.send(rec) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                rec = r;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => panic!("produce to {topic}-{partition}: {e}"),
        }
    }
}

/// Produces at least `target_bytes` of record data round-robin over the partitions, then one
/// single-record batch per partition.
pub fn produce(bs: &str, topic: &str, partitions: usize, target_bytes: u64) -> Produced {
    let producer: ThreadedProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", bs)
        .set("compression.type", "none")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .set("queue.buffering.max.kbytes", "262144")
        .create_with_context(Deliveries::default())
        .expect("producer");
    let mut rng = Rng(0x7469_6465_6d61_726b);
    let mut g = Gen::default();
    let mut out = Produced {
        records: vec![0; partitions],
        fingerprints: vec![0; partitions],
        bytes: 0,
        headers: 0,
        wall: Duration::ZERO,
        generating: Duration::ZERO,
    };
    let started = Instant::now();
    let mut seq = 0u64;
    let mut one = |g: &mut Gen, out: &mut Produced, seq: u64, p: usize| {
        let t = Instant::now();
        g.fill(&mut rng, seq);
        let headers: Vec<(&str, Option<&[u8]>)> = g
            .trace
            .as_ref()
            .map(|t| (TRACE_HEADER, Some(t.as_bytes())))
            .into_iter()
            .collect();
        let fp = fingerprint(Some(g.key.as_bytes()), Some(g.value.as_bytes()), &headers);
        out.generating += t.elapsed();
        out.fingerprints[p] = out.fingerprints[p].wrapping_add(fp);
        out.records[p] += 1;
        out.bytes += g.bytes();
        out.headers += headers.len() as u64;
        send(&producer, topic, g, p as i32);
    };
    while out.bytes < target_bytes {
        one(&mut g, &mut out, seq, seq as usize % partitions);
        seq += 1;
    }
    producer.flush(Duration::from_secs(300)).expect("flush");
    // One record per partition, each alone in its batch: tansu's high watermark is the last
    // batch's base offset + 1.
    for p in 0..partitions {
        one(&mut g, &mut out, seq, p);
        seq += 1;
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    out.wall = started.elapsed();
    let ctx = producer.context();
    let failed = ctx.failed.load(Ordering::Relaxed);
    assert_eq!(
        failed,
        0,
        "{failed} records were not delivered; first error: {:?}",
        ctx.first_error
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    );
    assert_eq!(ctx.ok.load(Ordering::Relaxed), seq, "delivered records");
    out
}

/// The comma-separated librdkafka `key=value` properties in the environment variable `var`.
pub fn properties_from_env(var: &str) -> Vec<(String, String)> {
    std::env::var(var)
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .unwrap_or_else(|| panic!("{var}: '{kv}' is not key=value"));
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat` (USER_HZ = 100).
pub fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| -> f64 {
        fields
            .get(i)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 (utime, stime); `rest` starts at field 3.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds (user + system, every thread) this process has used, from `getrusage`.
#[allow(unsafe_code)]
pub fn self_cpu_secs() -> f64 {
    // SAFETY: `rusage` is a plain C struct for which all-zero bytes are a valid value, and the
    // pointer is to a live local of that type.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let r = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(r, 0, "getrusage: {}", std::io::Error::last_os_error());
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The whitespace-separated words of the environment variable `var` (extra CLI arguments).
pub fn args_from_env(var: &str) -> Vec<String> {
    std::env::var(var)
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// What a benchmark binary was built as, for its report: `profile: … (target/…, debug
/// assertions on|off), tansu memory engine on loopback, N CPUs`. `bin` is the binary under
/// test (its directory names the profile).
pub fn build_description(bin: &str) -> String {
    let out_dir = std::path::Path::new(bin)
        .parent()
        .and_then(std::path::Path::file_name)
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_default();
    let profile = match out_dir.as_str() {
        "debug" => "dev",
        "release" => "release (cargo bench default)",
        other => other,
    };
    let assertions = if cfg!(debug_assertions) { "on" } else { "off" };
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    format!(
        "profile: {profile} (target/{out_dir}, debug assertions {assertions}), tansu memory engine on loopback, {cpus} CPUs"
    )
}

/// The 1, 5 and 15 minute load averages, space-separated.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU seconds of every thread of this process, by thread id: (name, seconds).
pub fn thread_cpu_secs() -> std::collections::BTreeMap<String, (String, f64)> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for entry in dir.flatten() {
        let tid = entry.file_name().to_string_lossy().into_owned();
        let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        out.insert(
            tid.clone(),
            (
                name.trim().to_string(),
                cpu_secs(&format!("self/task/{tid}")),
            ),
        );
    }
    out
}

/// The threads that used the most CPU between two [`thread_cpu_secs`] readings, busiest first.
pub fn busiest_threads(
    before: &std::collections::BTreeMap<String, (String, f64)>,
    after: &std::collections::BTreeMap<String, (String, f64)>,
) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = after
        .iter()
        .map(|(tid, (name, cpu))| {
            let was = before.get(tid).map_or(0.0, |(_, c)| *c);
            (name.clone(), cpu - was)
        })
        .filter(|(_, d)| *d > 0.0)
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}

/// A finished child process and what it used.
pub struct Measured {
    pub wall: Duration,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// `ru_maxrss` of the measured process alone (from `wait4` in the measuring helper), KiB.
    pub maxrss_kib: u64,
    /// Largest VmHWM seen while polling `/proc/<pid>/status` every 10 ms, KiB.
    pub sampled_hwm_kib: u64,
    pub user: f64,
    pub sys: f64,
    pub minor_faults: u64,
    pub voluntary_switches: u64,
    pub broker_cpu: f64,
    /// (seconds since start, VmRSS KiB, CPU seconds) once a second.
    pub trace: Vec<(f64, u64, f64)>,
    /// CPU seconds per thread (name, seconds), busiest first, sampled every 100 ms.
    pub threads: Vec<(String, f64)>,
}

impl Measured {
    /// With `trace`: the resident set and CPU time every second, user/system time, page faults,
    /// context switches, the busiest threads, and stderr, each line prefixed with `[label]`.
    pub fn print_trace(&self, label: &str) {
        println!("  [{label}] RSS / CPU every second:");
        for (t, rss, cpu) in &self.trace {
            println!(
                "    t={t:>6.1}s  VmRSS {:>7.1} MiB  CPU {cpu:>6.2} s",
                *rss as f64 / 1024.0
            );
        }
        println!(
            "  [{label}] CPU user {:.2} s, system {:.2} s, {} minor page faults, {} voluntary context switches; busiest threads: {}",
            self.user,
            self.sys,
            self.minor_faults,
            self.voluntary_switches,
            self.threads
                .iter()
                .take(8)
                .map(|(n, c)| format!("{n} {c:.2} s"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if !self.stderr.is_empty() {
            println!("  [{label}] stderr:\n{}", self.stderr);
        }
    }

    /// stdout as JSON; panics (with both streams) unless the process exited 0.
    pub fn json(&self, what: &str) -> Value {
        assert_eq!(
            self.code, 0,
            "{what} exited {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "{what}: stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Set (to a result file) when this binary runs as the measuring helper.
const MEASURE_ENV: &str = "TIDEMARK_BENCH_MEASURE_TO";

/// Waits for our child `pid` and returns its wait status and its own resource usage.
#[allow(unsafe_code)]
fn wait_rusage(pid: u32) -> (libc::c_int, libc::rusage) {
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is a plain C struct for which all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live locals of the right types; `pid` is a child of
        // this process that nothing else waits for (std's `Child` is never waited on).
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if r == pid as libc::pid_t {
            return (status, usage);
        }
        let err = std::io::Error::last_os_error();
        assert!(
            err.kind() == std::io::ErrorKind::Interrupted,
            "wait4({pid}): {err}"
        );
    }
}

/// `VmHWM` and `VmRSS` (KiB) from a `/proc/<pid>/status` text.
fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU seconds of every thread of `pid` so far (`/proc/<pid>/task/<tid>/stat`), by thread id,
/// with the thread's name; threads that ended keep their last reading.
fn thread_cpu(pid: u32, threads: &mut BTreeMap<String, (String, f64)>) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    for t in tasks.flatten() {
        let tid = t.file_name().to_string_lossy().into_owned();
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let name = stat
            .split_once('(')
            .and_then(|(_, rest)| rest.rsplit_once(')'))
            .map_or(String::new(), |(n, _)| n.to_string());
        let cpu = cpu_secs(&format!("{pid}/task/{tid}"));
        threads.insert(tid, (name, cpu));
    }
}

/// Runs the measuring helper instead of the benchmark when this process is one (see
/// [`run_measured`]); returns otherwise. Call it first thing in a benchmark's `main`.
pub fn measure_helper_if_asked() {
    if let Some(out) = std::env::var_os(MEASURE_ENV) {
        measure_helper(out);
    }
}

/// The measuring helper: this binary re-executed with [`MEASURE_ENV`] set runs the command after
/// `--` (stdio inherited), polls its VmHWM, reaps it with `wait4` and writes what it used to the
/// file named by [`MEASURE_ENV`], then exits with its exit code.
///
/// Why a helper: at `execve` Linux folds the high-water RSS of the address space being replaced
/// into the new program's `ru_maxrss` — for a child spawned by the benchmark that is the
/// benchmark's own peak (hundreds of MiB: producer and consumer buffers), so `wait4` from there
/// would report that instead of the measured process's. The helper is small, so its child's `ru_maxrss` is
/// the child's own peak.
fn measure_helper(out: std::ffi::OsString) -> ! {
    let mut args = std::env::args_os().skip_while(|a| a != "--").skip(1);
    let program = args.next().expect("measuring helper: no command after --");
    let started = Instant::now();
    let child = Command::new(program)
        .args(args)
        .env_remove(MEASURE_ENV)
        .spawn()
        .expect("measuring helper: spawn");
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    let sampler = std::thread::spawn(move || {
        let mut hwm = 0u64;
        let mut trace = Vec::new();
        let mut next_trace = Duration::ZERO;
        let mut next_threads = Duration::ZERO;
        let mut threads: BTreeMap<String, (String, f64)> = BTreeMap::new();
        while !flag.load(Ordering::Relaxed) {
            let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                break;
            };
            // A zombie has no memory lines any more.
            let Some(h) = status_kib(&status, "VmHWM:") else {
                break;
            };
            hwm = hwm.max(h);
            let at = started.elapsed();
            if at >= next_threads {
                next_threads += Duration::from_millis(100);
                thread_cpu(pid, &mut threads);
            }
            if at >= next_trace {
                next_trace += Duration::from_secs(1);
                let rss = status_kib(&status, "VmRSS:").unwrap_or(0);
                trace.push(serde_json::json!([
                    at.as_secs_f64(),
                    rss,
                    cpu_secs(&pid.to_string())
                ]));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        (hwm, trace, threads)
    });
    let (status, usage) = wait_rusage(pid);
    let wall = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let (hwm, trace, threads) = sampler.join().expect("sampler");
    let mut threads: Vec<(String, f64)> = threads.into_values().collect();
    threads.sort_by(|a, b| b.1.total_cmp(&a.1));
    drop(child);
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let result = serde_json::json!({
        "code": code,
        "wall_s": wall.as_secs_f64(),
        "maxrss_kib": usage.ru_maxrss,
        "sampled_hwm_kib": hwm,
        "user_s": secs(usage.ru_utime),
        "sys_s": secs(usage.ru_stime),
        "minor_faults": usage.ru_minflt,
        "voluntary_switches": usage.ru_nvcsw,
        "trace": trace,
        "threads": threads,
    });
    std::fs::write(&out, result.to_string()).expect("measuring helper: write the result");
    std::process::exit(code);
}

/// Runs the `tidemark` binary at `bin` with `args` (the caller's credential and location
/// variables cleared, as `run_cli` does) under the measuring helper: wall time, CPU time and
/// peak RSS of the `tidemark` process alone, and the CPU time the broker (`broker_pid`) used
/// meanwhile.
pub fn run_measured(bin: &str, args: &[String], broker_pid: &str) -> Measured {
    let result = tempfile::NamedTempFile::new().expect("result file");
    let mut cmd = Command::new(std::env::current_exe().expect("this benchmark's path"));
    cmd.arg("--")
        .arg(bin)
        .args(args)
        .env(MEASURE_ENV, result.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "KAFKA_USERNAME",
        "KAFKA_PASSWORD",
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_SECURITY_PROTOCOL",
        "KAFKA_SASL_MECHANISM",
        "TIDEMARK_PATH",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    let broker0 = cpu_secs(broker_pid);
    let out = cmd.output().expect("run the measuring helper");
    let broker_cpu = cpu_secs(broker_pid) - broker0;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let text = std::fs::read_to_string(result.path()).unwrap_or_default();
    let m: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "measuring helper for {args:?} left no result ({e}; exit {:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        )
    });
    let f = |k: &str| m[k].as_f64().unwrap_or_default();
    Measured {
        wall: Duration::from_secs_f64(f("wall_s")),
        code: m["code"].as_i64().unwrap_or(-1) as i32,
        stdout,
        stderr,
        maxrss_kib: m["maxrss_kib"].as_u64().unwrap_or_default(),
        sampled_hwm_kib: m["sampled_hwm_kib"].as_u64().unwrap_or_default(),
        user: f("user_s"),
        sys: f("sys_s"),
        minor_faults: m["minor_faults"].as_u64().unwrap_or_default(),
        voluntary_switches: m["voluntary_switches"].as_u64().unwrap_or_default(),
        broker_cpu,
        trace: m["trace"]
            .as_array()
            .map(|t| {
                t.iter()
                    .map(|s| {
                        (
                            s[0].as_f64().unwrap_or_default(),
                            s[1].as_u64().unwrap_or_default(),
                            s[2].as_f64().unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        threads: m["threads"]
            .as_array()
            .map(|t| {
                t.iter()
                    .map(|s| {
                        (
                            s[0].as_str().unwrap_or_default().to_string(),
                            s[1].as_f64().unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Total size of the files under `dir`.
pub fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => total += disk_usage(&e.path()),
                Ok(_) => total += e.metadata().map_or(0, |m| m.len()),
                Err(_) => {}
            }
        }
    }
    total
}

/// A number field of a JSON report (panics naming it otherwise).
pub fn num(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("report field {what} is not a number: {v}"))
}

/// Ratios of paired runs as a report shows them: two decimals each, in run order.
pub fn per_run(ratios: &[f64]) -> String {
    ratios
        .iter()
        .map(|p| format!("{p:.2}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

pub fn best(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(0.0, f64::max)
}

pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

/// Deletes `topic`; a failure is printed, not fatal (the broker keeps the topic).
pub async fn delete_topic(bs: &str, topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bs)
        .create()
        .expect("admin client");
    match admin
        .delete_topics(
            &[topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(60))),
        )
        .await
    {
        Ok(rs) => {
            for r in rs {
                if let Err((t, e)) = r {
                    println!("  (could not delete {t}: {e}; the broker keeps it)");
                }
            }
        }
        Err(e) => println!("  (could not delete {topic}: {e}; the broker keeps it)"),
    }
}

/// The 1-minute load average.
pub fn load1() -> f64 {
    load_average()
        .split_whitespace()
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0.0)
}

/// A `kB` field (`VmRSS:`, `VmHWM:`) of `/proc/<pid>/status`, in KiB (0 if unreadable).
pub fn proc_status_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| status_kib(&s, field))
        .unwrap_or(0)
}

/// Resets this process's peak resident set (`VmHWM`) to its current size, so a later
/// `proc_status_kib("self", "VmHWM:")` tells the peak of what ran in between.
pub fn reset_peak_rss() {
    // "5" resets the peak RSS (Linux 4.0+); where it is refused the peak stays the whole run's.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU seconds per GiB of record data.
pub fn cpu_per_gib(cpu_secs: f64, bytes: u64) -> f64 {
    cpu_secs / (bytes as f64 / (1024.0 * 1024.0 * 1024.0)).max(f64::MIN_POSITIVE)
}

/// What a topic held when read back ([`read_back`]), per partition: records (from offset 0
/// without a gap), the sum of their fingerprints and of their timestamps.
pub struct ReadBack {
    pub records: Vec<u64>,
    pub fingerprints: Vec<u64>,
    pub timestamps: Vec<u64>,
}

/// Reads `topic` back from offset 0 with a plain consumer (`fetch.wait.max.ms=5`, prefetch
/// bounded to 32 MiB) until every partition `p` holds `expected[p]` records and nothing more
/// arrives for 300 ms; panics on a gap in the offsets, on a partition holding more than
/// expected, and when nothing is read for `idle`. tansu's high watermark can trail the last
/// record, so the read goes by what arrives, not by the watermark.
pub fn read_back(bs: &str, topic: &str, expected: &[u64], idle: Duration) -> ReadBack {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers as _, Message as _};
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bs)
        .set("group.id", "bench-read-back")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "5")
        .set("queued.max.messages.kbytes", "32768")
        .create()
        .expect("read-back consumer");
    let n = expected.len();
    let mut tpl = TopicPartitionList::new();
    for p in 0..n {
        tpl.add_partition_offset(topic, p as i32, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut got = ReadBack {
        records: vec![0; n],
        fingerprints: vec![0; n],
        timestamps: vec![0; n],
    };
    let mut last = Instant::now();
    // Done once every partition holds its records; then a short extra read for anything more.
    let mut done_at: Option<Instant> = None;
    loop {
        if done_at.is_none() && got.records == expected {
            done_at = Some(Instant::now());
        }
        if done_at.is_some_and(|d| d.elapsed() > Duration::from_millis(300)) {
            return got;
        }
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                let p = m.partition() as usize;
                assert_eq!(m.offset(), got.records[p] as i64, "{topic}-{p} offsets");
                got.records[p] += 1;
                assert!(
                    got.records[p] <= expected[p],
                    "{topic}-{p} holds more records than the source ({})",
                    expected[p]
                );
                let headers: Vec<(&str, Option<&[u8]>)> = m
                    .headers()
                    .map(|h| h.iter().map(|h| (h.key, h.value)).collect())
                    .unwrap_or_default();
                got.fingerprints[p] =
                    got.fingerprints[p].wrapping_add(fingerprint(m.key(), m.payload(), &headers));
                got.timestamps[p] =
                    got.timestamps[p].wrapping_add(m.timestamp().to_millis().unwrap_or(-1) as u64);
                last = Instant::now();
            }
            Some(Err(KafkaError::PartitionEOF(_))) | None => assert!(
                last.elapsed() < idle,
                "{topic}: nothing read for {idle:?} ({:?} of {expected:?})",
                got.records
            ),
            Some(Err(e)) => panic!("reading {topic} back: {e}"),
        }
    }
}

//! The fault suite: backups and restores while the network and the broker misbehave.
//!
//! A tansu broker with sqlite storage (its data survives a restart) sits behind a fault-injecting
//! proxy and advertises the proxy's address, so every Kafka connection of the `tidemark` process
//! goes through it; an S3 server (moto) sits behind a second proxy, named as the S3 endpoint.
//! The proxies add latency, reset connections every N KiB and stall all traffic for a while;
//! the broker is killed (SIGKILL) and restarted mid-run. Each run must end with every record
//! exactly once, or with a clear error after which running the same command again does. The
//! backup is read back segment by segment, the restored target record by record (until it goes
//! quiet: tansu's high watermark is not exact after multi-record batches), and compared with
//! what was produced. Each test prints and asserts its figures: faults injected, runs, records
//! lost and records duplicated. `FAULTS_LOG=<RUST_LOG filter>` prints each run's log.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tidemark_tests::objstore::{S3Server, BUCKET};
use tidemark_tests::proxy::{FaultProxy, Faults};
use tidemark_tests::records::{create_topic, read_backup_in, read_topic, record_of, Records};
use tidemark_tests::{free_port, Tansu};

const BIN: &str = env!("CARGO_BIN_EXE_tidemark-under-test");
/// A run that takes longer than this hangs.
const RUN_DEADLINE: Duration = Duration::from_secs(120);
/// Records per partition of the source topic.
const PER_PARTITION: usize = 800;
const PARTITIONS: i32 = 3;
/// Faults each test must inject at least.
const MIN_FAULTS: u64 = 20;
/// Where backups live in the bucket.
const PREFIX: &str = "faults";

/// The broker and the S3 server, each behind its own fault proxy.
struct Rig {
    kafka: Tansu,
    broker: FaultProxy,
    s3: S3Server,
    store: FaultProxy,
    kills: u64,
    runs: u64,
}

impl Rig {
    fn start() -> Rig {
        let port = free_port();
        let broker = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], port)));
        let kafka = Tansu::start_sqlite_advertising(port, broker.port);
        let s3 = S3Server::start();
        let store = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], s3.server.port)));
        Rig {
            kafka,
            broker,
            s3,
            store,
            kills: 0,
            runs: 0,
        }
    }

    /// The proxy's address: clients bootstrap through it and the broker advertises it.
    fn bootstrap(&self) -> String {
        self.broker.addr()
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.store.addr())
    }

    /// The S3 settings of a `tidemark` process, with the store proxy as endpoint.
    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = self.s3.env();
        for (k, v) in &mut env {
            if *k == "TIDEMARK_S3_ENDPOINT" {
                *v = self.endpoint();
            }
        }
        env
    }

    fn location(&self) -> String {
        self.s3.location(PREFIX)
    }

    /// Turns every fault on: latency, resets and stalls towards the broker and the store.
    fn misbehave(&self) {
        self.broker.set_faults(Faults {
            latency: Duration::from_millis(2),
            reset_every: Some(160 * 1024),
            stall_every: Some(400 * 1024),
            stall_for: Duration::from_secs(1),
            budget: Some(12),
            ..Faults::default()
        });
        self.store.set_faults(Faults {
            latency: Duration::from_millis(2),
            reset_every: Some(96 * 1024),
            stall_every: Some(300 * 1024),
            stall_for: Duration::from_secs(1),
            budget: Some(12),
            ..Faults::default()
        });
    }

    /// Turns every fault off (set-up and checks).
    fn behave(&self) {
        self.broker.set_faults(Faults::default());
        self.store.set_faults(Faults::default());
    }

    /// Kills the broker (SIGKILL), leaves it down for `down`, starts it again on its data.
    fn kill_broker(&mut self, down: Duration) {
        self.kafka.kill();
        self.kills += 1;
        std::thread::sleep(down);
        self.kafka.start_again();
    }

    fn faults(&self) -> (u64, u64, u64) {
        let (b, s) = (self.broker.stats(), self.store.stats());
        (b.resets + s.resets, b.stalls + s.stalls, self.kills)
    }

    /// Runs `tidemark args` (`during` runs while it does), then again while it fails with a
    /// clear error, at most three times; panics on a hang, a crash or an unclear error.
    fn run_until_done(
        &mut self,
        what: &str,
        args: &[&str],
        during: impl FnOnce(&mut Rig),
    ) -> serde_json::Value {
        let mut during = Some(during);
        for attempt in 1..=3 {
            let started = Instant::now();
            let out = self.run(args, |rig| {
                if let Some(f) = during.take() {
                    f(rig);
                }
            });
            self.runs += 1;
            eprintln!(
                "{what}: attempt {attempt} took {:?}, faults so far {:?}",
                started.elapsed(),
                self.faults()
            );
            if std::env::var_os("FAULTS_LOG").is_some() {
                eprintln!("{what}: stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
            }
            if out.code == 0 {
                return serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
                    panic!("{what}: stdout is not JSON ({e}): {}", out.stdout)
                });
            }
            let error = clear_error(what, &out);
            eprintln!(
                "{what}: attempt {attempt} ended with exit {}: {error}",
                out.code
            );
        }
        panic!("{what}: three runs did not complete");
    }

    fn run(&mut self, args: &[&str], during: impl FnOnce(&mut Rig)) -> Output {
        let dir = tempfile::tempdir().expect("tempdir");
        let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .stdout(File::create(&out).expect("stdout file"))
            .stderr(File::create(&err).expect("stderr file"));
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
        cmd.envs(self.env());
        if let Ok(level) = std::env::var("FAULTS_LOG") {
            cmd.env("RUST_LOG", level);
        }
        let mut child = cmd.spawn().expect("start tidemark");
        let kills = self.kills;
        during(self);
        let running = child.try_wait().expect("wait for tidemark").is_none();
        assert!(
            running || self.kills == kills,
            "tidemark {args:?} ended before the broker was killed: kill earlier or slow it down"
        );
        let started = Instant::now();
        let status: ExitStatus = loop {
            if let Some(s) = child.try_wait().expect("wait for tidemark") {
                break s;
            }
            if started.elapsed() > RUN_DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "tidemark {args:?} hung for {RUN_DEADLINE:?}; stderr:\n{}",
                    std::fs::read_to_string(&err).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Output {
            code: status.code().unwrap_or(-1),
            stdout: std::fs::read_to_string(&out).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err).unwrap_or_default(),
        }
    }

    /// Prints and asserts the figures of a test.
    fn report(&self, test: &str, tally: Tally) {
        let (resets, stalls, kills) = self.faults();
        let faults = resets + stalls + kills;
        println!(
            "fault suite ({test}): faults injected {faults} (connection resets {resets}, stalls {stalls}, broker kills {kills}), runs {}, records checked {}, records lost {}, records duplicated {}",
            self.runs, tally.checked, tally.lost, tally.duplicated
        );
        assert!(
            faults >= MIN_FAULTS,
            "{test}: only {faults} faults injected"
        );
        assert!(kills >= 1, "{test}: the broker was killed mid-run");
        assert_eq!((tally.lost, tally.duplicated), (0, 0), "{test}");
    }
}

#[derive(Debug)]
struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A failed run must say what failed in a line of its own, without a panic or a signal.
fn clear_error(what: &str, out: &Output) -> String {
    assert!(
        out.code > 0,
        "{what}: died without an exit code\n{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("panicked"),
        "{what}: panicked\n{}",
        out.stderr
    );
    out.stderr
        .lines()
        .rev()
        .find(|l| l.to_ascii_lowercase().contains("error"))
        .unwrap_or_else(|| panic!("{what}: exit {} without an error\n{}", out.code, out.stderr))
        .to_string()
}

/// Records lost and duplicated (by key: each produced record has its own).
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    checked: u64,
    lost: u64,
    duplicated: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.checked += other.checked;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
    }
}

/// Compares `got` (partitions of `got_topic`) with `want` (of `want_topic`): every wanted record
/// once, same key, value, headers and timestamp, in order; `offsets` also compares offsets.
fn tally(
    what: &str,
    got: &Records,
    got_topic: &str,
    want: &Records,
    want_topic: &str,
    offsets: bool,
) -> Tally {
    let mut t = Tally::default();
    for p in 0..PARTITIONS {
        let empty = Vec::new();
        let w = want.get(&(want_topic.to_string(), p)).unwrap_or(&empty);
        let g = got.get(&(got_topic.to_string(), p)).unwrap_or(&empty);
        let mut seen: BTreeMap<&Option<Vec<u8>>, u64> = BTreeMap::new();
        for r in g {
            *seen.entry(&r.key).or_default() += 1;
        }
        let (mut lost, mut duplicated) = (0, 0);
        for r in w {
            match seen.get(&r.key).copied().unwrap_or(0) {
                0 => lost += 1,
                n => duplicated += n - 1,
            }
        }
        assert_eq!(
            g.len() as u64 + lost,
            w.len() as u64 + duplicated,
            "{what}: partition {p} holds records never produced"
        );
        if lost == 0 && duplicated == 0 {
            for (a, b) in g.iter().zip(w) {
                assert_eq!(
                    (&a.key, &a.value, &a.headers, a.timestamp),
                    (&b.key, &b.value, &b.headers, b.timestamp),
                    "{what}: partition {p}"
                );
                if offsets {
                    assert_eq!(a.offset, b.offset, "{what}: partition {p}");
                }
            }
        }
        t.add(Tally {
            checked: w.len() as u64,
            lost,
            duplicated,
        });
    }
    eprintln!("{what}: {t:?}");
    t
}

/// Creates `topic` and writes [`PER_PARTITION`] numbered records to each partition, every record
/// in its own batch (a resumed read may start at any offset, and tansu skips from an offset inside
/// a batch to the next batch). Returns them as a consumer reads them.
async fn produce(bs: &str, topic: &str) -> Records {
    create_topic(bs, topic, PARTITIONS, &[]).await;
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bs)
        .set("batch.num.messages", "1")
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    let mut pending = Vec::new();
    for part in 0..PARTITIONS {
        for i in 0..PER_PARTITION {
            let key = format!("k-{part}-{i:05}");
            let value = value(part, i);
            let seq = i.to_string();
            let rec = FutureRecord::to(topic)
                .partition(part)
                .key(&key)
                .payload(&value)
                .timestamp(1_700_000_000_000 + i as i64 * 10)
                .headers(OwnedHeaders::new().insert(Header {
                    key: "seq",
                    value: Some(&seq),
                }));
            let delivery = p
                .send_result(rec)
                .unwrap_or_else(|(e, _)| panic!("queue a record for {topic}: {e}"));
            pending.push(delivery);
        }
    }
    for d in futures::future::join_all(pending).await {
        d.expect("delivery")
            .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
    }
    p.flush(Duration::from_secs(10)).expect("flush");
    let records = read_topic(bs, topic, PARTITIONS);
    for part in 0..PARTITIONS {
        let keys: Vec<String> = records[&(topic.to_string(), part)]
            .iter()
            .map(|r| String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned())
            .collect();
        let want: Vec<String> = (0..PER_PARTITION)
            .map(|i| format!("k-{part}-{i:05}"))
            .collect();
        assert_eq!(
            keys, want,
            "the source partition {part} holds what was produced"
        );
    }
    records
}

/// Record `i` of partition `part`: its name, then 100-600 bytes that do not compress (so the
/// segments the store proxy carries are as large as the records).
fn value(part: i32, i: usize) -> Vec<u8> {
    let mut v = format!("v-{part}-{i}-").into_bytes();
    let mut x = (part as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i as u64;
    for _ in 0..100 + i * 37 % 500 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(x as u8);
    }
    v
}

/// Every record of `topic`, read from the beginning until no record has come for 3 s (15 s
/// while a partition has given none yet: a new consumer may take a few seconds to fetch it).
fn read_until_quiet(bs: &str, topic: &str) -> Records {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bs)
        .set("group.id", "fault-suite-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out: Records = BTreeMap::new();
    let started = Instant::now();
    let mut last = Instant::now();
    let quiet = |out: &Records, last: Instant| {
        let all = out.len() == PARTITIONS as usize;
        last.elapsed() >= Duration::from_secs(if all { 3 } else { 15 })
    };
    while !quiet(&out, last) {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "reading {topic} never went quiet"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last = Instant::now();
                out.entry((topic.to_string(), m.partition()))
                    .or_default()
                    .push(record_of(&m));
            }
            Some(Err(e)) => eprintln!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

fn backup_args<'a>(
    rig_bs: &'a str,
    location: &'a str,
    id: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "backup",
        "--bootstrap-servers",
        rig_bs,
        "--path",
        location,
        "--topics",
        "ledger",
        "--backup-id",
        id,
        "--segment-max-bytes",
        "32768",
        // Fetch responses smaller than the proxy's reset interval, so each reset cuts one
        // response and the retry gets through; and reconnections within a second (librdkafka
        // backs off up to 10 s after repeated disconnections by default).
        "-X",
        "max.partition.fetch.bytes=32768",
        "-X",
        "fetch.max.bytes=65536",
        "-X",
        "message.max.bytes=65536",
        "-X",
        "reconnect.backoff.max.ms=1000",
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    args
}

/// A completed backup `id` holds every source record once, at its offset.
async fn check_backup(rig: &Rig, id: &str, report: &serde_json::Value, want: &Records) -> Tally {
    assert_eq!(report["complete"], true, "{id}: {report}");
    rig.behave();
    let (manifests, got) = read_backup_in(&rig.s3.open(PREFIX), id).await;
    let t = tally(id, &got, "ledger", want, "ledger", true);
    if t.lost + t.duplicated > 0 {
        // What the backup believed it had to read, for whoever looks into it.
        for m in &manifests {
            for (p, d) in &m.topics["ledger"].partition_data {
                eprintln!(
                    "{id}: partition {p}: start {} end {} segments {}",
                    d.start_offset,
                    d.end_offset,
                    d.segments.len()
                );
            }
        }
        eprintln!("{id}: report {report}");
    }
    t
}

/// A completed restore's `target` holds every source record once, in order.
fn check_restore(rig: &Rig, target: &str, report: &serde_json::Value, want: &Records) -> Tally {
    assert_eq!(report["complete"], true, "{target}: {report}");
    rig.behave();
    let got = read_until_quiet(&rig.bootstrap(), target);
    tally(target, &got, target, want, "ledger", false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_through_faults_hold_every_record_once() {
    let mut rig = Rig::start();
    let bs = rig.bootstrap();
    let want = produce(&bs, "ledger").await;
    let location = rig.location();
    let mut total = Tally::default();

    // Latency, resets and stalls on both paths.
    rig.misbehave();
    let report = rig.run_until_done(
        "backup net",
        &backup_args(&bs, &location, "net", &[]),
        |_| {},
    );
    total.add(check_backup(&rig, "net", &report, &want).await);

    // The broker killed twice mid-backup (throttled, so the kills land inside the run).
    for (id, after) in [("kill-early", 300), ("kill-late", 1000)] {
        rig.misbehave();
        let args = backup_args(
            &bs,
            &location,
            id,
            &["--rate-limit-records-per-sec", "1500"],
        );
        let report = rig.run_until_done(id, &args, |rig| {
            std::thread::sleep(Duration::from_millis(after));
            rig.kill_broker(Duration::from_millis(1500));
        });
        total.add(check_backup(&rig, id, &report, &want).await);
    }
    // A reset that hits the one request object_store never retries (the bulk delete that
    // removes the checkpoint after the manifest is written): the worker retries it, so the run
    // completes at once.
    rig.behave();
    rig.store.set_faults(Faults {
        reset_on: Some(b"?delete".to_vec()),
        budget: Some(1),
        ..Faults::default()
    });
    let (resets, runs) = (rig.store.stats().resets, rig.runs);
    let report = rig.run_until_done(
        "tidy-up",
        &backup_args(&bs, &location, "tidy-up", &[]),
        |_| {},
    );
    assert_eq!(rig.store.stats().resets, resets + 1, "the delete was reset");
    assert_eq!(
        rig.runs,
        runs + 1,
        "the reset delete was retried within the run"
    );
    total.add(check_backup(&rig, "tidy-up", &report, &want).await);
    rig.report("backup", total);
}

/// A restore configuration reading backup `base` from the S3 server through the store proxy and
/// restoring `ledger` as `target`.
fn restore_config(rig: &Rig, dir: &std::path::Path, target: &str, extra: &str) -> String {
    let text = format!(
        "mode: restore\nbackup_id: base\ntarget:\n  bootstrap_servers: [{bs}]\n  topics:\n    include: [ledger]\n  properties:\n    reconnect.backoff.max.ms: '1000'\nstorage:\n  backend: s3\n  bucket: {BUCKET}\n  prefix: {PREFIX}\n  region: us-east-1\n  endpoint: {endpoint}\n  path_style: true\n  allow_http: true\nrestore:\n  topic_mapping:\n    ledger: {target}\n  create_topics: true\n  produce_batch_size: 100\n  checkpoint_interval_secs: 1\n{extra}",
        bs = rig.bootstrap(),
        endpoint = rig.endpoint(),
    );
    let p = dir.join(format!("{target}.yaml"));
    std::fs::write(&p, text).expect("write config");
    p.to_str().expect("utf8").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_through_faults_put_every_record_once() {
    let mut rig = Rig::start();
    let bs = rig.bootstrap();
    let want = produce(&bs, "ledger").await;
    let location = rig.location();
    let base = rig.run_until_done(
        "backup base",
        &backup_args(&bs, &location, "base", &[]),
        |_| {},
    );
    assert_eq!(base["complete"], true, "{base}");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut total = Tally::default();

    // Latency, resets and stalls on both paths.
    rig.misbehave();
    let cfg = restore_config(&rig, dir.path(), "ledger-net", "");
    let report = rig.run_until_done(
        "restore net",
        &["restore", "--config", &cfg, "-f", "json"],
        |_| {},
    );
    total.add(check_restore(&rig, "ledger-net", &report, &want));

    // The broker killed twice mid-restore (throttled, so the kills land inside the run).
    for (target, after) in [("ledger-kill-early", 400), ("ledger-kill-late", 1100)] {
        rig.misbehave();
        let cfg = restore_config(
            &rig,
            dir.path(),
            target,
            "  rate_limit_records_per_sec: 1500\n",
        );
        let report = rig.run_until_done(
            target,
            &["restore", "--config", &cfg, "-f", "json"],
            |rig| {
                std::thread::sleep(Duration::from_millis(after));
                rig.kill_broker(Duration::from_millis(1500));
            },
        );
        total.add(check_restore(&rig, target, &report, &want));
    }
    // A reset that hits the bulk delete of the checkpoint after the mapping is written: the
    // worker retries it, so the run completes at once, without writing anything twice.
    rig.behave();
    rig.store.set_faults(Faults {
        reset_on: Some(b"?delete".to_vec()),
        budget: Some(1),
        ..Faults::default()
    });
    let (resets, runs) = (rig.store.stats().resets, rig.runs);
    let cfg = restore_config(&rig, dir.path(), "ledger-tidy-up", "");
    let report = rig.run_until_done(
        "restore tidy-up",
        &["restore", "--config", &cfg, "-f", "json"],
        |_| {},
    );
    assert_eq!(rig.store.stats().resets, resets + 1, "the delete was reset");
    assert_eq!(
        rig.runs,
        runs + 1,
        "the reset delete was retried within the run"
    );
    total.add(check_restore(&rig, "ledger-tidy-up", &report, &want));
    rig.report("restore", total);
}

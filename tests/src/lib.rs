//! Test harness: starts the real servers the integration tests talk to, each on a free
//! loopback port, and stops them when dropped.
//!
//! Tools are looked up in `$TIDEMARK_TOOLS/bin` (default `~/.cache/tidemark/tools/bin`), then on
//! `PATH`. A missing tool fails the test with the command that installs it; nothing is skipped.

pub mod bench;
pub mod kms;
pub mod latency;
pub mod objstore;
pub mod proxy;
pub mod records;
pub mod slowdown;
pub mod sparse;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The command that installs every tool the tests need.
pub const INSTALL_HINT: &str = "run `bash scripts/install-test-tools.sh` from the repository root";

/// The directory tools are cached in.
pub fn tools_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("TIDEMARK_TOOLS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    PathBuf::from(home).join(".cache/tidemark/tools")
}

/// Finds an executable in the tools cache or on PATH, or panics with the install hint.
pub fn find_tool(name: &str) -> PathBuf {
    let cached = tools_dir().join("bin").join(name);
    if cached.is_file() {
        return cached;
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "test tool '{name}' not found in {} or on PATH; {INSTALL_HINT}",
        tools_dir().join("bin").display()
    );
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    listener.local_addr().expect("local address").port()
}

/// Waits until something accepts TCP connections on `port`, or panics after `timeout`.
pub fn wait_for_port(port: u16, timeout: Duration, what: &str, child: &mut Child) {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early with {status}");
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on port {port} within {timeout:?}");
}

/// A child process that is killed when dropped, with its log file kept for debugging.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Server {
    /// Spawns `cmd` with stdout/stderr to `log`, then waits for `port` to accept connections.
    pub fn spawn(mut cmd: Command, port: u16, log: PathBuf, what: &str) -> Server {
        let out = std::fs::File::create(&log).expect("create server log file");
        let err = out.try_clone().expect("clone log handle");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {what}: {e}; {INSTALL_HINT}"));
        wait_for_port(port, Duration::from_secs(60), what, &mut child);
        Server { child, port, log }
    }

    /// The process id (for reading its `/proc/<pid>` accounting).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the process (SIGKILL) and waits for it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A tansu Kafka broker on loopback.
#[derive(Debug)]
pub struct Tansu {
    pub server: Server,
    pub dir: tempfile::TempDir,
    storage: String,
    authentication: bool,
    /// The port the broker names in its metadata (its own, or a proxy's in front of it).
    advertised_port: u16,
    /// The latency proxy in front of the broker when `BENCH_RTT_MS` asks for one (see
    /// [`latency`]); clients then bootstrap through it.
    latency_proxy: Option<proxy::FaultProxy>,
}

impl Tansu {
    /// A broker with in-memory storage (behind a latency proxy when `BENCH_RTT_MS` is set).
    pub fn start() -> Tansu {
        if let Some(rtt) = latency::rtt_from_env() {
            return Self::start_with_rtt(rtt);
        }
        Self::launch(
            "memory://tansu/".to_string(),
            false,
            tempfile::tempdir().expect("tempdir"),
        )
    }

    /// A broker whose state lives in a sqlite file (survives restarts; needed for SCRAM users).
    pub fn start_sqlite() -> Tansu {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = format!("sqlite://{}", dir.path().join("tansu.db").display());
        Self::launch(storage, false, dir)
    }

    /// A broker with sqlite storage on `port` that advertises `advertised_port` (a proxy in
    /// front of it, through which every client then talks to it after bootstrapping).
    pub fn start_sqlite_advertising(port: u16, advertised_port: u16) -> Tansu {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = format!("sqlite://{}", dir.path().join("tansu.db").display());
        let server = spawn_tansu_advertising(&storage, false, port, advertised_port, dir.path());
        Tansu {
            server,
            dir,
            storage,
            authentication: false,
            advertised_port,
            latency_proxy: None,
        }
    }

    /// A broker with in-memory storage behind a proxy that adds `rtt` to every round trip; it
    /// advertises the proxy, so every client connection goes through it.
    pub fn start_with_rtt(rtt: Duration) -> Tansu {
        let port = free_port();
        let proxy = latency::latency_proxy(port, rtt);
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = "memory://tansu/".to_string();
        let server = spawn_tansu_advertising(&storage, false, port, proxy.port, dir.path());
        println!("{}", latency::describe(Some(rtt)));
        Tansu {
            server,
            dir,
            storage,
            authentication: false,
            advertised_port: proxy.port,
            latency_proxy: Some(proxy),
        }
    }

    fn launch(storage: String, authentication: bool, dir: tempfile::TempDir) -> Tansu {
        let port = free_port();
        let server = spawn_tansu(&storage, authentication, port, dir.path());
        Tansu {
            server,
            dir,
            storage,
            authentication,
            advertised_port: port,
            latency_proxy: None,
        }
    }

    /// `127.0.0.1:PORT` (the latency proxy's, when there is one).
    pub fn bootstrap(&self) -> String {
        match &self.latency_proxy {
            Some(proxy) => proxy.addr(),
            None => format!("127.0.0.1:{}", self.server.port),
        }
    }

    /// Creates a SCRAM user (broker must run without authentication).
    pub fn create_user(&self, name: &str, password: &str) {
        let status = Command::new(find_tool("tansu"))
            .args(["user", "create", "--broker"])
            .arg(format!("tcp://{}", self.bootstrap()))
            .args([name, password])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run tansu user create");
        assert!(
            status.success(),
            "tansu user create {name} failed: {status}"
        );
    }

    /// Restarts the broker on the same port and storage, with or without SASL authentication.
    pub fn restart(&mut self, authentication: bool) {
        self.kill();
        self.authentication = authentication;
        self.start_again();
    }

    /// Kills the broker (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self) {
        self.server.stop();
    }

    /// Starts the broker again on the same port, storage and advertised address (after
    /// [`Self::kill`]).
    pub fn start_again(&mut self) {
        self.server = spawn_tansu_advertising(
            &self.storage,
            self.authentication,
            self.server.port,
            self.advertised_port,
            self.dir.path(),
        );
    }
}

fn spawn_tansu(storage: &str, authentication: bool, port: u16, dir: &Path) -> Server {
    spawn_tansu_advertising(storage, authentication, port, port, dir)
}

fn spawn_tansu_advertising(
    storage: &str,
    authentication: bool,
    port: u16,
    advertised_port: u16,
    dir: &Path,
) -> Server {
    let url = format!("tcp://127.0.0.1:{port}");
    let advertised = format!("tcp://127.0.0.1:{advertised_port}");
    let mut cmd = Command::new(find_tool("tansu"));
    // tansu opens a sqlite:// path relative to its working directory (an absolute path is
    // re-rooted under it), so run it next to the database file and pass just the file name.
    let storage = match storage.strip_prefix("sqlite://").map(Path::new) {
        Some(db) => match (db.parent(), db.file_name()) {
            (Some(parent), Some(name)) => {
                cmd.current_dir(parent);
                format!("sqlite://{}", name.to_string_lossy())
            }
            _ => storage.to_string(),
        },
        None => storage.to_string(),
    };
    cmd.args([
        "broker",
        "--listener-url",
        &url,
        "--advertised-listener-url",
        &advertised,
    ])
    .args(["--storage-engine", &storage]);
    if authentication {
        cmd.arg("--authentication");
    }
    cmd.env("RUST_LOG", "warn");
    // Each broker its own cluster id, as real clusters have (tansu's default is shared).
    cmd.env("CLUSTER_ID", format!("tansu-{port}"));
    let log = dir.join(format!("tansu-{port}-{}.log", unique()));
    Server::spawn(cmd, port, log, "tansu broker")
}

/// A process-unique suffix for file names.
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Output of one `tidemark` run.
#[derive(Debug)]
pub struct CliOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// stdout parsed as JSON (panics with both streams on failure).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs the `tidemark` binary at `bin` with `args` and extra environment variables; the
/// credential and location variables of the calling environment are cleared first.
pub fn run_cli(bin: &str, args: &[&str], env: &[(&str, &str)]) -> CliOutput {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    for var in [
        "KAFKA_USERNAME",
        "KAFKA_PASSWORD",
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_SECURITY_PROTOCOL",
        "KAFKA_SASL_MECHANISM",
        "TIDEMARK_PATH",
        "TIDEMARK_ENCRYPTION_KEY_FILE",
        "TIDEMARK_ENCRYPTION_KEY_ID",
        "TIDEMARK_KMS_KEY_ID",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run tidemark");
    CliOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// One `tidemark run --task`: its output, the result it wrote, the result file's bytes and the
/// `report` half of its stdout line.
#[derive(Debug)]
pub struct TaskRun {
    pub out: CliOutput,
    pub result: tidemark::task::TaskResult,
    pub raw: Vec<u8>,
    pub report: serde_json::Value,
}

/// Writes `yaml` to `<dir>/<name>.yaml`, runs it with the `tidemark` binary `bin` and
/// `--result-file <dir>/<name>.result`, and checks what every run must satisfy: a result file of
/// valid JSON within [`tidemark::task::MAX_RESULT_BYTES`], the same result on stdout, and a
/// phase and error exit code matching the process's exit code.
pub fn run_task(bin: &str, dir: &Path, name: &str, yaml: &str, env: &[(&str, &str)]) -> TaskRun {
    use tidemark::task::{TaskResult, MAX_RESULT_BYTES};
    let task = dir.join(format!("{name}.yaml"));
    let result_file = dir.join(format!("{name}.result"));
    std::fs::write(&task, yaml).expect("write task");
    let out = run_cli(
        bin,
        &[
            "run",
            "--task",
            task.to_str().expect("utf8"),
            "--result-file",
            result_file.to_str().expect("utf8"),
        ],
        env,
    );
    let raw = std::fs::read(&result_file)
        .unwrap_or_else(|e| panic!("{name}: no result file ({e}): {out:?}"));
    assert!(
        raw.len() <= MAX_RESULT_BYTES,
        "{name}: result is {} bytes",
        raw.len()
    );
    let result: TaskResult = serde_json::from_slice(&raw)
        .unwrap_or_else(|e| panic!("{name}: result is not a TaskResult ({e}): {raw:?}"));
    assert_eq!(
        out.stdout.lines().count(),
        1,
        "{name}: stdout is one JSON line: {out:?}"
    );
    let line = out.json();
    assert_eq!(
        line["result"],
        serde_json::from_slice::<serde_json::Value>(&raw).expect("json"),
        "{name}: stdout carries the written result"
    );
    let want_phase = if out.code == 0 { "Completed" } else { "Failed" };
    assert_eq!(result.phase, want_phase, "{name}: {out:?}");
    match &result.error {
        Some(e) => assert_eq!(e.exit_code, out.code, "{name}"),
        None => assert_eq!(out.code, 0, "{name}"),
    }
    TaskRun {
        report: line["report"].clone(),
        out,
        result,
        raw,
    }
}

/// Creates `topic` with `partitions` partitions and writes `per_partition` records to each,
/// ending every partition with a single-record batch so the broker's high watermark is exact.
pub async fn create_and_fill(bootstrap: &str, topic: &str, partitions: i32, per_partition: usize) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
    use rdkafka::ClientConfig;

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topics request");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }
    if per_partition == 0 {
        return;
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for p in 0..partitions {
        for i in 0..per_partition.saturating_sub(1) {
            let payload = format!("{topic}-{p}-{i}");
            producer
                .send(
                    FutureRecord::to(topic)
                        .partition(p)
                        .key(&payload)
                        .payload(&payload),
                    Duration::from_secs(10),
                )
                .await
                .unwrap_or_else(|(e, _)| panic!("produce to {topic}:{p}: {e}"));
        }
        producer.flush(Duration::from_secs(10)).expect("flush");
        let last = format!("{topic}-{p}-last");
        producer
            .send(
                FutureRecord::to(topic)
                    .partition(p)
                    .key(&last)
                    .payload(&last),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce to {topic}:{p}: {e}"));
        producer.flush(Duration::from_secs(10)).expect("flush");
    }
}

/// A consumer subscribed to `topics` in `group`, polling on its own thread until dropped, so
/// the group has a live member (state Stable).
#[derive(Debug)]
pub struct LiveConsumer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LiveConsumer {
    pub fn start(bootstrap: &str, group: &str, topics: &[&str]) -> LiveConsumer {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::ClientConfig;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;

        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "5")
            .set("session.timeout.ms", "10000")
            .create()
            .expect("consumer");
        consumer.subscribe(topics).expect("subscribe");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let _ = consumer.poll(Duration::from_millis(50));
            }
            consumer.unsubscribe();
        });
        LiveConsumer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for LiveConsumer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A tansu broker reachable only through TLS: tansu 0.6 cannot enable its own TLS listener
/// (its `--cert` and `--key` flags are declared mutually exclusive), so a `socat` TLS
/// terminator with a freshly generated CA and server certificate fronts it, and the broker
/// advertises the TLS port. Clients do a real TLS handshake and certificate verification.
#[derive(Debug)]
pub struct TlsTansu {
    pub broker: Server,
    pub proxy: Server,
    pub dir: tempfile::TempDir,
    /// CA certificate (PEM) that signed the server certificate.
    pub ca: PathBuf,
    /// A CA that did not sign it, for handshake-failure tests.
    pub other_ca: PathBuf,
}

impl TlsTansu {
    pub fn start() -> TlsTansu {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let openssl = find_tool("openssl");
        let run = |args: &[&str]| {
            let out = Command::new(&openssl)
                .args(args)
                .current_dir(d)
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        for ca in ["ca", "other-ca"] {
            run(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=tidemark-test-{ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.crt"),
            ]);
        }
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            d.join("san.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("write san.cnf");
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.cnf",
            "-out",
            "server.crt",
        ]);
        let inner = free_port();
        let outer = free_port();
        let broker = spawn_tansu_advertising("memory://tansu/", false, inner, outer, d);
        let mut cmd = Command::new(find_tool("socat"));
        cmd.arg(format!(
            "OPENSSL-LISTEN:{outer},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
            d.join("server.crt").display(),
            d.join("server.key").display()
        ))
        .arg(format!("TCP:127.0.0.1:{inner}"));
        let log = d.join(format!("socat-{outer}-{}.log", unique()));
        let proxy = Server::spawn(cmd, outer, log, "socat TLS terminator");
        TlsTansu {
            broker,
            proxy,
            ca: d.join("ca.crt"),
            other_ca: d.join("other-ca.crt"),
            dir,
        }
    }

    /// `127.0.0.1:TLS_PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.proxy.port)
    }
}

/// A consumer-group admin client for test set-up (plaintext, 10 s request timeout).
pub async fn connect_admin(bootstrap: &str) -> tidemark::kafka::GroupAdmin {
    let mut cfg = tidemark::kafka::KafkaConfig::new(bootstrap);
    cfg.request_timeout = Duration::from_secs(10);
    tidemark::kafka::GroupAdmin::connect(&cfg)
        .await
        .expect("connect admin")
}

/// Offsets for partitions 0, 1, … of `topic`, with empty commit metadata.
pub fn commits(topic: &str, offsets: &[i64]) -> Vec<tidemark::kafka::CommittedOffset> {
    offsets
        .iter()
        .enumerate()
        .map(|(p, o)| tidemark::kafka::CommittedOffset {
            topic: topic.into(),
            partition: p as i32,
            offset: *o,
            metadata: String::new(),
        })
        .collect()
}

/// Commits `offsets` for `group`, failing the test on any partition failure.
pub async fn commit(
    admin: &tidemark::kafka::GroupAdmin,
    group: &str,
    offsets: &[tidemark::kafka::CommittedOffset],
) {
    let failures = admin
        .alter_offsets(group, offsets)
        .await
        .expect("commit offsets");
    assert!(failures.is_empty(), "partition failures: {failures:?}");
}

/// The committed offsets of `group`, keyed by (topic, partition).
pub async fn committed_map(
    admin: &tidemark::kafka::GroupAdmin,
    group: &str,
) -> std::collections::BTreeMap<(String, i32), i64> {
    admin
        .committed_offsets(group)
        .await
        .expect("read committed")
        .into_iter()
        .map(|o| ((o.topic, o.partition), o.offset))
        .collect()
}

/// A benchmark size from the environment, or `default` when unset or not a number.
pub fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Commits `offsets` for every group in `groups`, `concurrency` groups at once, failing on any
/// error or partition failure.
pub async fn commit_groups(
    admin: &tidemark::kafka::GroupAdmin,
    groups: &[String],
    offsets: &[tidemark::kafka::CommittedOffset],
    concurrency: usize,
) {
    use futures::stream::{self, StreamExt};

    let results: Vec<_> = stream::iter(groups.iter())
        .map(|g| async move { (g, admin.alter_offsets(g, offsets).await) })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for (g, r) in results {
        let failures = r.unwrap_or_else(|e| panic!("commit offsets for {g}: {e}"));
        assert!(failures.is_empty(), "{g}: partition failures: {failures:?}");
    }
}

/// Runs the `tidemark` binary at `bin` (as [`run_cli`] does) and times it end to end; panics
/// unless it exits 0 with a JSON report on stdout.
pub fn time_cli(bin: &str, args: &[&str]) -> (Duration, serde_json::Value) {
    let start = Instant::now();
    let out = run_cli(bin, args, &[]);
    let elapsed = start.elapsed();
    assert!(
        out.code == 0,
        "tidemark {args:?} exited {}: {}\n{}",
        out.code,
        out.stdout,
        out.stderr
    );
    (elapsed, out.json())
}

/// The committed offsets of `topic`'s partitions in `map` (from [`committed_map`]), in
/// partition order.
pub fn topic_offsets(
    map: &std::collections::BTreeMap<(String, i32), i64>,
    topic: &str,
) -> Vec<i64> {
    map.iter()
        .filter(|((t, _), _)| t == topic)
        .map(|(_, o)| *o)
        .collect()
}

/// Waits up to 30 s until `group` is active (`want_active`) or inactive.
pub async fn wait_for_state(admin: &tidemark::kafka::GroupAdmin, group: &str, want_active: bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let d = admin
            .describe_groups(&[group.to_string()])
            .await
            .expect("describe");
        let state = d[0].as_ref().expect("group description").state;
        if state.is_inactive() != want_active {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "group {group} stuck in {state}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

//! Test harness: starts the real servers the integration tests talk to, each on a free
//! loopback port, and stops them when dropped.
//!
//! Tools are looked up in `$TIDEMARK_TOOLS/bin` (default `~/.cache/tidemark/tools/bin`), then on
//! `PATH`. A missing tool fails the test with the command that installs it; nothing is skipped.

pub mod objstore;

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
}

impl Tansu {
    /// A broker with in-memory storage.
    pub fn start() -> Tansu {
        Self::launch("memory://tansu/".to_string(), false, tempfile::tempdir().expect("tempdir"))
    }

    /// A broker whose state lives in a sqlite file (survives restarts; needed for SCRAM users).
    pub fn start_sqlite() -> Tansu {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = format!("sqlite://{}", dir.path().join("tansu.db").display());
        Self::launch(storage, false, dir)
    }

    fn launch(storage: String, authentication: bool, dir: tempfile::TempDir) -> Tansu {
        let port = free_port();
        let server = spawn_tansu(&storage, authentication, port, dir.path());
        Tansu {
            server,
            dir,
            storage,
            authentication,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.server.port)
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
        assert!(status.success(), "tansu user create {name} failed: {status}");
    }

    /// Restarts the broker on the same port and storage, with or without SASL authentication.
    pub fn restart(&mut self, authentication: bool) {
        self.server.stop();
        self.authentication = authentication;
        self.server = spawn_tansu(&self.storage, authentication, self.server.port, self.dir.path());
    }
}

fn spawn_tansu(storage: &str, authentication: bool, port: u16, dir: &Path) -> Server {
    let url = format!("tcp://127.0.0.1:{port}");
    let mut cmd = Command::new(find_tool("tansu"));
    cmd.args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
        .args(["--storage-engine", storage]);
    if authentication {
        cmd.arg("--authentication");
    }
    cmd.env("RUST_LOG", "warn");
    let log = dir.join(format!("tansu-{port}-{}.log", unique()));
    Server::spawn(cmd, port, log, "tansu broker")
}

/// A process-unique suffix for file names.
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

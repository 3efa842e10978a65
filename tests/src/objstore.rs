//! Object storage servers for tests (S3-compatible, Azurite, GCS emulator), each on a free
//! loopback port with one empty bucket or container, stopped when dropped.
//!
//! Each server hands out what a test needs to open a [`Storage`] on it: a location URL,
//! [`StorageOptions`] and [`CloudSettings`]. Nothing goes through process environment variables,
//! so tests can run in parallel threads.
//!
//! * S3: moto (`moto_server -H 127.0.0.1 -p PORT`); the bucket is created with an unsigned
//!   `PUT /bucket`, which moto accepts. Any access key works.
//! * S3, fast: s3s-fs (`s3s-fs --host 127.0.0.1 --port PORT --access-key K --secret-key S
//!   ROOT`, from crates.io), a Rust server that keeps each object in a file under `ROOT/BUCKET`
//!   and checks every request's SigV4 signature with the test credentials; for benchmarks,
//!   where moto (Python) would measure itself. [`S3Server::start_s3s_fs`].
//! * Azure: Azurite (`azurite-blob --blobHost 127.0.0.1 --blobPort PORT --inMemoryPersistence
//!   --skipApiVersionCheck --loose --disableTelemetry`), reached path-style at
//!   `http://127.0.0.1:PORT/devstoreaccount1` with the well-known development account key; the
//!   container is created with a SharedKey-signed `PUT /devstoreaccount1/NAME?restype=container`.
//! * GCS: fake-gcs-server (`fake-gcs-server -scheme http -backend memory -host 127.0.0.1
//!   -port PORT -public-host 127.0.0.1:PORT`); the bucket is created through its JSON API
//!   (`POST /storage/v1/b`) and requests are unsigned. Its XML API, which `object_store`'s GCS
//!   client uses, serves GET, HEAD, list and DELETE, but not a plain object PUT: see
//!   [`GcsEmulator`].

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use tidemark::storage::{CloudSettings, Storage, StorageOptions};

use crate::{find_tool, free_port, unique, Server};

/// The bucket (or container) every server starts with.
pub const BUCKET: &str = "tidemark-test";

/// Azurite's documented development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's documented development account key (public, not a secret).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Options for a plain-HTTP loopback endpoint.
fn loopback_options() -> StorageOptions {
    StorageOptions {
        allow_http: true,
        ..StorageOptions::default()
    }
}

fn location(scheme: &str, prefix: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        format!("{scheme}://{BUCKET}")
    } else {
        format!("{scheme}://{BUCKET}/{prefix}")
    }
}

/// The access key the S3 servers are started with (moto accepts any).
const S3_ACCESS_KEY: &str = "tidemark-test";
/// The secret key that goes with [`S3_ACCESS_KEY`] (a test value, not a secret).
const S3_SECRET_KEY: &str = "tidemark-test-secret";

/// An S3 server (moto, or s3s-fs) with bucket [`BUCKET`].
#[derive(Debug)]
pub struct S3Server {
    pub server: Server,
    pub dir: tempfile::TempDir,
    /// The port clients are pointed at: the server's own, or a front's set by
    /// [`S3Server::reach_through`].
    endpoint_port: u16,
}

impl S3Server {
    /// Starts moto and creates the bucket.
    pub fn start() -> S3Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut cmd = Command::new(find_tool("moto_server"));
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir.path());
        let log = dir.path().join(format!("moto-{port}-{}.log", unique()));
        let server = Server::spawn(cmd, port, log, "moto_server (S3)");
        let (status, body) = http(port, "PUT", &format!("/{BUCKET}"), &[], b"");
        assert!(
            status == 200 || status == 409,
            "moto: creating bucket {BUCKET} gave HTTP {status}: {body}"
        );
        S3Server {
            endpoint_port: server.port,
            server,
            dir,
        }
    }

    /// Starts s3s-fs with its objects under a fresh directory in `parent` (the system
    /// temporary directory when `None`), bucket [`BUCKET`] created, requests signed with the
    /// test credentials checked.
    pub fn start_s3s_fs(parent: Option<&std::path::Path>) -> S3Server {
        let dir = match parent {
            Some(p) => tempfile::tempdir_in(p),
            None => tempfile::tempdir(),
        }
        .expect("tempdir");
        let root = dir.path().join("data");
        // A bucket is a directory of the root.
        std::fs::create_dir_all(root.join(BUCKET)).expect("create the bucket directory");
        let port = free_port();
        let mut cmd = Command::new(find_tool("s3s-fs"));
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(&root)
            .env("RUST_LOG", "warn")
            .current_dir(dir.path());
        let log = dir.path().join(format!("s3s-fs-{port}-{}.log", unique()));
        let server = Server::spawn(cmd, port, log, "s3s-fs (S3)");
        S3Server {
            endpoint_port: server.port,
            server,
            dir,
        }
    }

    /// Points clients at `port` (a proxy in front of the server) instead of the server itself.
    pub fn reach_through(&mut self, port: u16) {
        self.endpoint_port = port;
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.endpoint_port)
    }

    /// `s3://BUCKET/prefix`.
    pub fn location(&self, prefix: &str) -> String {
        location("s3", prefix)
    }

    /// Endpoint, region, path-style and plain HTTP.
    pub fn options(&self) -> StorageOptions {
        StorageOptions {
            s3_region: Some("us-east-1".into()),
            s3_endpoint: Some(self.endpoint()),
            s3_path_style: true,
            ..loopback_options()
        }
    }

    /// Static test credentials (moto accepts any; s3s-fs is started with them).
    pub fn settings(&self) -> CloudSettings {
        CloudSettings {
            s3_access_key_id: Some(S3_ACCESS_KEY.into()),
            s3_secret_access_key: Some(S3_SECRET_KEY.into()),
            ..CloudSettings::default()
        }
    }

    /// A [`Storage`] rooted at `prefix` in the bucket.
    pub fn open(&self, prefix: &str) -> Storage {
        Storage::open_with(&self.location(prefix), &self.options(), &self.settings())
            .expect("open S3 storage")
    }

    /// The same configuration as environment variables, for a `tidemark` child process.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("TIDEMARK_S3_ENDPOINT", self.endpoint()),
            ("TIDEMARK_S3_PATH_STYLE", "true".into()),
            ("TIDEMARK_ALLOW_HTTP", "true".into()),
        ]
    }
}

/// An Azurite blob service with container [`BUCKET`].
#[derive(Debug)]
pub struct Azurite {
    pub server: Server,
    pub dir: tempfile::TempDir,
}

impl Azurite {
    /// Starts Azurite (in memory, no telemetry) and creates the container.
    pub fn start() -> Azurite {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut cmd = Command::new(find_tool("azurite-blob"));
        cmd.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args(["--inMemoryPersistence", "--skipApiVersionCheck", "--loose"])
            .arg("--disableTelemetry")
            .current_dir(dir.path());
        let log = dir.path().join(format!("azurite-{port}-{}.log", unique()));
        let server = Server::spawn(cmd, port, log, "azurite-blob (Azure)");
        create_azure_container(port, BUCKET);
        Azurite { server, dir }
    }

    /// `http://127.0.0.1:PORT/devstoreaccount1` (path-style account).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", self.server.port)
    }

    /// `az://BUCKET/prefix`.
    pub fn location(&self, prefix: &str) -> String {
        location("az", prefix)
    }

    /// Plain HTTP.
    pub fn options(&self) -> StorageOptions {
        loopback_options()
    }

    /// Endpoint and the development account's key.
    pub fn settings(&self) -> CloudSettings {
        CloudSettings {
            azure_endpoint: Some(self.endpoint()),
            azure_account: Some(AZURITE_ACCOUNT.into()),
            azure_access_key: Some(AZURITE_KEY.into()),
            ..CloudSettings::default()
        }
    }

    /// A [`Storage`] rooted at `prefix` in the container.
    pub fn open(&self, prefix: &str) -> Storage {
        Storage::open_with(&self.location(prefix), &self.options(), &self.settings())
            .expect("open Azure storage")
    }

    /// The same configuration as environment variables, for a `tidemark` child process.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT.into()),
            ("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY.into()),
            ("AZURE_STORAGE_ENDPOINT", self.endpoint()),
            ("TIDEMARK_ALLOW_HTTP", "true".into()),
        ]
    }
}

/// Creates a blob container with a SharedKey-signed request (Azurite rejects anonymous ones).
fn create_azure_container(port: u16, container: &str) {
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let version = "2021-08-06";
    // Verb, then 11 empty standard headers (Content-Length is empty when zero).
    let string_to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n\
         /{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{container}\nrestype:container"
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(AZURITE_KEY).expect("decode the Azurite key");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let signature = b64.encode(ring::hmac::sign(&key, string_to_sign.as_bytes()).as_ref());
    let authorization = format!("SharedKey {AZURITE_ACCOUNT}:{signature}");
    let (status, body) = http(
        port,
        "PUT",
        &format!("/{AZURITE_ACCOUNT}/{container}?restype=container"),
        &[
            ("x-ms-date", &date),
            ("x-ms-version", version),
            ("Authorization", &authorization),
        ],
        b"",
    );
    assert!(
        status == 201 || status == 409,
        "azurite: creating container {container} gave HTTP {status}: {body}"
    );
}

/// A fake-gcs-server with bucket [`BUCKET`], on plain HTTP, without authentication.
///
/// `object_store`'s GCS client speaks the XML API. fake-gcs-server (v1.54.0, the release the
/// PyPI wrapper ships) serves its GET, HEAD, list (`list-type=2`) and DELETE, but answers a
/// plain `PUT /bucket/object` (no `uploadType`, not a signed URL) with `400 invalid uploadType`,
/// and the XML multipart initiate (`POST /bucket/object?uploads`) the same way: XML object
/// uploads are not implemented upstream (fake-gcs-server issue #331, PR #1164 open; later
/// releases still take a `PUT` without `uploadType` only as a signed-URL upload). No other
/// emulator the package registries carry does better: gcp-storage-emulator takes the XML `PUT`
/// but answers it without the `ETag` that `object_store` requires, and serves neither HEAD nor
/// the XML list. Tests therefore seed objects with [`GcsEmulator::upload`] (JSON media upload)
/// and pin the write gap in `storage_backends::gcs_put_is_not_served_by_emulator`.
#[derive(Debug)]
pub struct GcsEmulator {
    pub server: Server,
    pub dir: tempfile::TempDir,
}

impl GcsEmulator {
    /// Starts fake-gcs-server (in memory) and creates the bucket.
    pub fn start() -> GcsEmulator {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let data = dir.path().join("seed");
        std::fs::create_dir_all(&data).expect("create the emulator's seed directory");
        let mut cmd = Command::new(find_tool("fake-gcs-server"));
        cmd.args([
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            "127.0.0.1",
        ])
        .args(["-port", &port.to_string()])
        .args(["-public-host", &format!("127.0.0.1:{port}")])
        .args(["-external-url", &format!("http://127.0.0.1:{port}")])
        .arg("-data")
        .arg(&data)
        .args(["-log-level", "warn"])
        .current_dir(dir.path());
        let log = dir.path().join(format!("fake-gcs-{port}-{}.log", unique()));
        let server = Server::spawn(cmd, port, log, "fake-gcs-server (GCS)");
        let body = format!("{{\"name\":\"{BUCKET}\"}}");
        let (status, text) = http(
            port,
            "POST",
            "/storage/v1/b?project=tidemark-test",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        assert!(
            status == 200 || status == 409,
            "fake-gcs-server: creating bucket {BUCKET} gave HTTP {status}: {text}"
        );
        GcsEmulator { server, dir }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    /// `gs://BUCKET/prefix`.
    pub fn location(&self, prefix: &str) -> String {
        location("gs", prefix)
    }

    /// Plain HTTP.
    pub fn options(&self) -> StorageOptions {
        loopback_options()
    }

    /// The emulator's endpoint, unsigned requests (no credentials, no metadata server).
    pub fn settings(&self) -> CloudSettings {
        CloudSettings {
            gcs_endpoint: Some(self.endpoint()),
            anonymous: true,
            ..CloudSettings::default()
        }
    }

    /// A [`Storage`] rooted at `prefix` in the bucket.
    pub fn open(&self, prefix: &str) -> Storage {
        Storage::open_with(&self.location(prefix), &self.options(), &self.settings())
            .expect("open GCS storage")
    }

    /// The same configuration as environment variables, for a `tidemark` child process.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("GOOGLE_BASE_URL", self.endpoint()),
            ("GOOGLE_SKIP_SIGNATURE", "true".into()),
            ("TIDEMARK_ALLOW_HTTP", "true".into()),
        ]
    }

    /// Stores an object through the emulator's JSON API (`uploadType=media`); `name` is the
    /// full object name in the bucket.
    pub fn upload(&self, name: &str, data: &[u8]) {
        let path = format!(
            "/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={}",
            percent_encode(name)
        );
        let headers = [("Content-Type", "application/octet-stream")];
        let (status, text) = http(self.server.port, "POST", &path, &headers, data);
        assert!(
            status == 200,
            "fake-gcs-server: uploading {name} gave HTTP {status}: {text}"
        );
    }
}

/// Percent-encodes everything but unreserved characters (for query values).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One HTTP/1.1 request to `127.0.0.1:port` (connection closed after it). Returns the status
/// and the raw response body as text, for setting up emulators without a client library.
///
/// A server that has just opened its port may still reset the first connections, so I/O
/// failures are retried for a few seconds; callers treat "already exists" answers as success,
/// since a retried request may have been processed before its answer was lost.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut last = None;
    for _ in 0..25 {
        match try_http(port, method, path, headers, body) {
            Ok(answer) => return answer,
            Err(e) => {
                last = Some(e);
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    panic!(
        "{method} {path} to 127.0.0.1:{port} kept failing: {}",
        last.map_or_else(|| "no attempt".to_string(), |e| e.to_string())
    );
}

fn try_http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("malformed HTTP response: {text}"),
            )
        })?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

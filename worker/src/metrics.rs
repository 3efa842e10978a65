//! Opt-in Prometheus endpoint of the worker: with `TIDEMARK_METRICS_ADDR` set (e.g.
//! `0.0.0.0:9090`, as the operator's Jobs do), `GET /metrics` serves the process' progress in
//! the Prometheus/OpenMetrics text format while it runs, and `GET /health` a JSON status
//! (`{"status":"ok",...}`, 503 once the command failed). Without it nothing listens.
//!
//! The counters are read at scrape time from the live progress of the backup or restore that
//! is running ([`WorkerMetrics::watch_backup`], [`WorkerMetrics::watch_restore`]), so the
//! engines keep their own relaxed atomics and know nothing of Prometheus. Every name the worker
//! exposes is in [`METRIC_NAMES`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::error::{Error, Result};

/// Listen address of the metrics endpoint (`host:port`); unset or empty: no endpoint.
pub use tidemark_task::env::ENV_METRICS_ADDR;

/// Content type of `/metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `tidemark_worker_info{version}`: always 1.
pub const INFO: &str = "tidemark_worker_info";
/// `tidemark_worker_phase{operation,phase}`: 1 for the current phase (running, completed,
/// failed), 0 for the others.
pub const PHASE: &str = "tidemark_worker_phase";
/// `tidemark_worker_start_time_seconds`: when the process started (Unix time).
pub const START_TIME: &str = "tidemark_worker_start_time_seconds";
/// `tidemark_worker_records_total{operation}`: records read (backup) or written (restore).
pub const RECORDS: &str = "tidemark_worker_records_total";
/// `tidemark_worker_bytes_total{operation}`: payload bytes of those records.
pub const BYTES: &str = "tidemark_worker_bytes_total";
/// `tidemark_worker_partitions_done{operation}`: partitions finished.
pub const PARTITIONS_DONE: &str = "tidemark_worker_partitions_done";
/// `tidemark_worker_partitions_selected{operation}`: partitions this process works on.
pub const PARTITIONS_SELECTED: &str = "tidemark_worker_partitions_selected";
/// `tidemark_worker_progress_ratio{operation}`: 0 to 1 (backup: offsets passed of those to
/// pass; restore: records written of those selected). Absent while the total is unknown (a
/// continuous backup has none).
pub const PROGRESS: &str = "tidemark_worker_progress_ratio";

/// Every metric name the worker exposes, as a query writes it.
pub const METRIC_NAMES: [&str; 8] = [
    INFO,
    PHASE,
    START_TIME,
    RECORDS,
    BYTES,
    PARTITIONS_DONE,
    PARTITIONS_SELECTED,
    PROGRESS,
];

/// The phases `tidemark_worker_phase` reports.
pub const PHASES: [&str; 3] = ["running", "completed", "failed"];

/// The live counters of the operation being watched.
#[derive(Clone, Debug)]
enum Source {
    Backup(Arc<crate::backup::engine::LiveProgress>),
    Restore(Arc<crate::restore::engine::LiveProgress>),
}

/// One reading of a [`Source`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Reading {
    records: u64,
    bytes: u64,
    partitions_done: u64,
    partitions_selected: u64,
    progress: Option<f64>,
}

fn ratio(done: u64, total: u64) -> Option<f64> {
    (total > 0).then(|| (done as f64 / total as f64).min(1.0))
}

impl Source {
    fn read(&self) -> Reading {
        match self {
            Source::Backup(p) => Reading {
                records: p.records.load(Ordering::Relaxed),
                bytes: p.bytes.load(Ordering::Relaxed),
                partitions_done: p.partitions_done.load(Ordering::Relaxed),
                partitions_selected: p.partitions_total.load(Ordering::Relaxed),
                progress: ratio(
                    p.offsets_done.load(Ordering::Relaxed),
                    p.offsets_total.load(Ordering::Relaxed),
                ),
            },
            Source::Restore(p) => Reading {
                records: p.records.load(Ordering::Relaxed),
                bytes: p.bytes.load(Ordering::Relaxed),
                partitions_done: p.partitions_done.load(Ordering::Relaxed),
                partitions_selected: p.partitions_total.load(Ordering::Relaxed),
                progress: ratio(
                    p.records.load(Ordering::Relaxed),
                    p.records_total.load(Ordering::Relaxed),
                ),
            },
        }
    }
}

#[derive(Debug)]
struct State {
    operation: String,
    phase: &'static str,
    start_time: i64,
    source: Option<Source>,
}

/// What the worker reports: the operation, its phase and its live counters. Cheap to clone
/// (shared state); [`WorkerMetrics::global`] is the process' own.
#[derive(Clone, Debug)]
pub struct WorkerMetrics {
    state: Arc<Mutex<State>>,
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        WorkerMetrics {
            state: Arc::new(Mutex::new(State {
                operation: "unknown".into(),
                phase: PHASES[0],
                start_time: chrono::Utc::now().timestamp(),
                source: None,
            })),
        }
    }
}

impl WorkerMetrics {
    /// The process' metrics, which the endpoint serves and the commands feed.
    pub fn global() -> &'static WorkerMetrics {
        static GLOBAL: OnceLock<WorkerMetrics> = OnceLock::new();
        GLOBAL.get_or_init(WorkerMetrics::default)
    }

    fn with_state(&self, f: impl FnOnce(&mut State)) {
        // A poisoned lock only means a panic elsewhere; the state itself stays usable.
        let mut state = match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut state);
    }

    /// The command `operation` (e.g. `backup`, `run`) is running.
    pub fn start(&self, operation: &str) {
        self.with_state(|s| {
            s.operation = operation.to_string();
            s.phase = PHASES[0];
        });
    }

    /// Reports the counters of the backup `progress` from now on.
    pub fn watch_backup(&self, progress: &Arc<crate::backup::engine::LiveProgress>) {
        self.with_state(|s| {
            s.operation = "backup".into();
            s.source = Some(Source::Backup(Arc::clone(progress)));
        });
    }

    /// Reports the counters of the restore `progress` from now on.
    pub fn watch_restore(&self, progress: &Arc<crate::restore::engine::LiveProgress>) {
        self.with_state(|s| {
            s.operation = "restore".into();
            s.source = Some(Source::Restore(Arc::clone(progress)));
        });
    }

    /// The command ended: `completed` when `succeeded`, else `failed`.
    pub fn finish(&self, succeeded: bool) {
        self.with_state(|s| s.phase = if succeeded { PHASES[1] } else { PHASES[2] });
    }

    /// A registry that reads these metrics at every scrape.
    pub fn registry(&self) -> Registry {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(WorkerCollector(self.clone())));
        registry
    }

    /// The metrics in the text format.
    pub fn encode(&self) -> std::result::Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry())?;
        Ok(text)
    }

    fn snapshot(&self) -> (String, &'static str, i64, Option<Reading>) {
        let mut out = (String::new(), PHASES[0], 0, None);
        self.with_state(|s| {
            out = (
                s.operation.clone(),
                s.phase,
                s.start_time,
                s.source.as_ref().map(Source::read),
            );
        });
        out
    }
}

/// Reads a [`WorkerMetrics`] at scrape time.
#[derive(Debug)]
struct WorkerCollector(WorkerMetrics);

/// `name` without the `_total` a counter's samples get, or `_info` an info's: the descriptor
/// name the encoder extends.
fn family(name: &str, metric_type: MetricType) -> &str {
    let suffix = match metric_type {
        MetricType::Counter => "_total",
        MetricType::Info => "_info",
        _ => "",
    };
    name.strip_suffix(suffix).unwrap_or(name)
}

impl Collector for WorkerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::result::Result<(), std::fmt::Error> {
        let (operation, phase, start_time, reading) = self.0.snapshot();
        let by_operation = vec![("operation", operation.clone())];

        let info = Info::new(vec![("version", env!("CARGO_PKG_VERSION").to_string())]);
        info.encode(encoder.encode_descriptor(
            family(INFO, MetricType::Info),
            "The tidemark worker's version",
            None,
            MetricType::Info,
        )?)?;

        let mut phases = encoder.encode_descriptor(
            PHASE,
            "1 for the worker's current phase (running, completed, failed), 0 for the others",
            None,
            MetricType::Gauge,
        )?;
        for p in PHASES {
            let labels = vec![("operation", operation.clone()), ("phase", p.to_string())];
            ConstGauge::new(i64::from(p == phase)).encode(phases.encode_family(&labels)?)?;
        }

        ConstGauge::new(start_time).encode(encoder.encode_descriptor(
            START_TIME,
            "When the worker process started, in seconds since the Unix epoch",
            None,
            MetricType::Gauge,
        )?)?;

        let Some(r) = reading else {
            return Ok(());
        };
        let counters = [
            (
                RECORDS,
                "Records read (backup) or written (restore) by this process",
                r.records,
            ),
            (BYTES, "Payload bytes of those records", r.bytes),
        ];
        for (name, help, value) in counters {
            let mut m = encoder.encode_descriptor(
                family(name, MetricType::Counter),
                help,
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(value).encode(m.encode_family(&by_operation)?)?;
        }
        let gauges = [
            (
                PARTITIONS_DONE,
                "Partitions this process has finished",
                r.partitions_done,
            ),
            (
                PARTITIONS_SELECTED,
                "Partitions this process works on",
                r.partitions_selected,
            ),
        ];
        for (name, help, value) in gauges {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX))
                .encode(m.encode_family(&by_operation)?)?;
        }
        if let Some(progress) = r.progress {
            let mut m = encoder.encode_descriptor(
                PROGRESS,
                "Progress from 0 to 1 (backup: offsets passed of those to pass; restore: records written of those selected)",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(progress).encode(m.encode_family(&by_operation)?)?;
        }
        Ok(())
    }
}

/// The listen address in `value` (the content of [`ENV_METRICS_ADDR`]); `None` when empty.
pub fn parse_address(value: Option<&str>) -> Result<Option<SocketAddr>> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            Error::invalid(format!(
                "{ENV_METRICS_ADDR} '{text}': expected host:port, e.g. 0.0.0.0:9090"
            ))
        }),
    }
}

/// The answer to `method path`.
fn respond(metrics: &WorkerMetrics, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &'static str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(content_type),
        );
        response
    };
    let plain = "text/plain; charset=utf-8";
    if method != Method::GET && method != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            plain,
            "method not allowed\n".into(),
        );
    }
    match path {
        "/metrics" => match metrics.encode() {
            Ok(text) => reply(StatusCode::OK, CONTENT_TYPE, text),
            Err(_) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                plain,
                "failed to encode metrics\n".into(),
            ),
        },
        "/health" => {
            let (status, body) = health(metrics);
            reply(status, "application/json", body)
        }
        _ => reply(StatusCode::NOT_FOUND, plain, "not found\n".into()),
    }
}

/// The answer to `GET /health`: 200 and `{"status":"ok",...}` while the command runs or after
/// it succeeded, 503 and `"status":"failed"` once it failed; with the operation, its phase and
/// the records and partitions done so far.
fn health(metrics: &WorkerMetrics) -> (StatusCode, String) {
    let (operation, phase, start_time, reading) = metrics.snapshot();
    let failed = phase == PHASES[2];
    let r = reading.unwrap_or_default();
    let body = serde_json::json!({
        "status": if failed { "failed" } else { "ok" },
        "operation": operation,
        "phase": phase,
        "version": env!("CARGO_PKG_VERSION"),
        "start_time": start_time,
        "records": r.records,
        "partitions_done": r.partitions_done,
        "partitions_selected": r.partitions_selected,
    });
    let status = if failed {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, format!("{body}\n"))
}

/// Serves `metrics` on `listener` until the task is dropped (the process ends).
pub async fn serve(listener: TcpListener, metrics: WorkerMetrics) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::debug!(%error, "metrics: failed to accept a connection");
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let response = respond(&metrics, request.method(), request.uri().path());
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "metrics: connection ended with an error");
            }
        });
    }
}

/// Starts the endpoint when [`ENV_METRICS_ADDR`] is set: binds it (a bad address or a port in
/// use is an error before any work starts) and serves [`WorkerMetrics::global`] in the
/// background. Returns the bound address.
pub async fn serve_from_env() -> Result<Option<SocketAddr>> {
    let value = std::env::var(ENV_METRICS_ADDR).ok();
    let Some(address) = parse_address(value.as_deref())? else {
        return Ok(None);
    };
    let listener = TcpListener::bind(address).await.map_err(|e| {
        Error::invalid_with(
            format!("{ENV_METRICS_ADDR} '{address}': cannot listen there"),
            e,
        )
    })?;
    let bound = listener.local_addr().unwrap_or(address);
    tokio::spawn(serve(listener, WorkerMetrics::global().clone()));
    tracing::info!(address = %bound, "serving metrics on /metrics and health on /health");
    Ok(Some(bound))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(address: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: worker\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("request");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        response
    }

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }

    #[tokio::test]
    async fn a_scrape_over_http_reads_the_live_backup_counters() {
        let metrics = WorkerMetrics::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(serve(listener, metrics.clone()));

        metrics.start("run");
        let before = get(address, "/metrics").await;
        assert!(before.starts_with("HTTP/1.1 200 OK"), "{before}");
        assert!(
            before.contains("content-type: application/openmetrics-text"),
            "{before}"
        );
        let version = format!(
            "tidemark_worker_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(before.contains(&version), "{before}");
        assert_eq!(
            sample(
                &before,
                r#"tidemark_worker_phase{operation="run",phase="running"}"#
            ),
            Some(1.0)
        );
        assert!(!before.contains(RECORDS), "no counters before a source");

        let progress = Arc::new(crate::backup::engine::LiveProgress::default());
        metrics.watch_backup(&progress);
        progress.records.store(1500, Ordering::Relaxed);
        progress.bytes.store(3_000_000, Ordering::Relaxed);
        progress.offsets_done.store(250, Ordering::Relaxed);
        progress.offsets_total.store(1000, Ordering::Relaxed);
        progress.partitions_done.store(2, Ordering::Relaxed);
        progress.partitions_total.store(8, Ordering::Relaxed);
        let text = get(address, "/metrics").await;
        for (series, value) in [
            (
                r#"tidemark_worker_records_total{operation="backup"}"#,
                1500.0,
            ),
            (r#"tidemark_worker_bytes_total{operation="backup"}"#, 3e6),
            (
                r#"tidemark_worker_partitions_done{operation="backup"}"#,
                2.0,
            ),
            (
                r#"tidemark_worker_partitions_selected{operation="backup"}"#,
                8.0,
            ),
            (
                r#"tidemark_worker_progress_ratio{operation="backup"}"#,
                0.25,
            ),
            (
                r#"tidemark_worker_phase{operation="backup",phase="running"}"#,
                1.0,
            ),
            (
                r#"tidemark_worker_phase{operation="backup",phase="failed"}"#,
                0.0,
            ),
        ] {
            assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
        }
        assert!(
            text.contains("# TYPE tidemark_worker_records counter"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"), "{text}");

        // Later scrapes see later values, and the end of the run.
        progress.records.store(4000, Ordering::Relaxed);
        metrics.finish(true);
        let text = get(address, "/metrics").await;
        assert_eq!(
            sample(
                &text,
                r#"tidemark_worker_records_total{operation="backup"}"#
            ),
            Some(4000.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"tidemark_worker_phase{operation="backup",phase="completed"}"#
            ),
            Some(1.0)
        );

        let missing = get(address, "/nothing").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        server.abort();
    }

    #[test]
    fn a_restore_reports_records_of_those_selected() {
        let metrics = WorkerMetrics::default();
        let progress = Arc::new(crate::restore::engine::LiveProgress::default());
        metrics.watch_restore(&progress);
        progress.records.store(30, Ordering::Relaxed);
        progress.records_total.store(40, Ordering::Relaxed);
        metrics.finish(false);
        let text = metrics.encode().expect("encodes");
        assert_eq!(
            sample(
                &text,
                r#"tidemark_worker_progress_ratio{operation="restore"}"#
            ),
            Some(0.75)
        );
        assert_eq!(
            sample(
                &text,
                r#"tidemark_worker_phase{operation="restore",phase="failed"}"#
            ),
            Some(1.0)
        );
        // Nothing selected yet: no ratio rather than a division by zero.
        progress.records_total.store(0, Ordering::Relaxed);
        let text = metrics.encode().expect("encodes");
        assert!(!text.contains(PROGRESS), "{text}");
    }

    #[test]
    fn health_is_ok_until_the_command_fails() {
        let metrics = WorkerMetrics::default();
        metrics.start("restore");
        let progress = Arc::new(crate::restore::engine::LiveProgress::default());
        metrics.watch_restore(&progress);
        progress.records.store(30, Ordering::Relaxed);
        let (status, body) = health(&metrics);
        assert_eq!(status, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(json["status"], "ok", "{json}");
        assert_eq!(json["operation"], "restore", "{json}");
        assert_eq!(json["records"], 30, "{json}");
        metrics.finish(false);
        let (status, body) = health(&metrics);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            (&json["status"], &json["phase"]),
            (&"failed".into(), &"failed".into())
        );
    }

    #[test]
    fn every_exposed_name_is_listed() {
        let metrics = WorkerMetrics::default();
        metrics.watch_restore(&Arc::new(crate::restore::engine::LiveProgress {
            records_total: 1.into(),
            ..Default::default()
        }));
        let text = metrics.encode().expect("encodes");
        let exposed: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        let listed: std::collections::BTreeSet<&str> = METRIC_NAMES.into_iter().collect();
        assert_eq!(exposed, listed);
    }

    #[test]
    fn the_address_is_host_and_port() {
        assert_eq!(parse_address(None).expect("unset"), None);
        assert_eq!(parse_address(Some(" ")).expect("empty"), None);
        assert_eq!(
            parse_address(Some("0.0.0.0:9090")).expect("valid"),
            Some("0.0.0.0:9090".parse().expect("address"))
        );
        let err = parse_address(Some("9090")).expect_err("no host");
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains("TIDEMARK_METRICS_ADDR '9090'"),
            "{err}"
        );
    }
}

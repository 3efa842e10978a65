//! The Grafana dashboard (`docs/observability/grafana-dashboard.json`) queries only metrics and
//! labels the code exposes, and `docs/observability.md` documents every metric: the names are
//! taken from what the operator's and the worker's registries actually encode, not from a list.
//! A `tidemark` process started with `TIDEMARK_METRICS_ADDR` serves its backup's progress over
//! HTTP while it runs, answers `GET /health` there with its status, and refuses a malformed
//! address before doing anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use serde_json::Value;
use tidemark::metrics::WorkerMetrics;
use tidemark_operator::metrics::{Metrics, JOB_CREATED};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Sample name → label names, from an OpenMetrics text.
fn samples(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = out.entry(line[..name_end].to_string()).or_default();
        if line[name_end..].starts_with('{') {
            let body = &line[name_end + 1..line.find('}').expect("closing brace")];
            for pair in body.split(',').filter(|p| !p.is_empty()) {
                let (k, _) = pair.split_once('=').expect("label=value");
                labels.insert(k.to_string());
            }
        }
    }
    out
}

/// Everything the operator and a worker expose, with every series present.
fn exposed() -> BTreeMap<String, BTreeSet<String>> {
    let mut registry = Registry::default();
    let metrics = Metrics::default()
        .register(&mut registry)
        .init_kinds(&tidemark_operator::controller::KINDS);
    drop(metrics.reconcile("KafkaBackup"));
    metrics.reconcile_failure("KafkaBackup", "apply");
    metrics.job("KafkaBackup", JOB_CREATED);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("operator metrics");
    let mut all = samples(&text);

    let worker = WorkerMetrics::default();
    let progress = Arc::new(tidemark::backup::engine::LiveProgress::default());
    progress.offsets_total.store(10, Ordering::Relaxed);
    worker.watch_backup(&progress);
    let text = worker.encode().expect("worker metrics");
    for (name, labels) in samples(&text) {
        all.entry(name).or_default().extend(labels);
    }
    all
}

/// Labels Prometheus adds when it scrapes a pod or a Service.
const TARGET_LABELS: [&str; 6] = [
    "namespace",
    "pod",
    "container",
    "endpoint",
    "job",
    "instance",
];

/// PromQL functions and keywords the dashboard may use.
const PROMQL_WORDS: [&str; 12] = [
    "sum",
    "max",
    "count",
    "rate",
    "increase",
    "histogram_quantile",
    "time",
    "by",
    "without",
    "label_values",
    "and",
    "or",
];

/// Removes `"…"` strings, `[…]` ranges and `$variables`; returns what is left and the label
/// names of every `{…}` selector, with the metric each selects.
fn scan(expr: &str) -> (String, Vec<(String, String)>) {
    let mut rest = String::new();
    let mut selectors = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += 1;
                }
                i += 1;
            }
            '[' => {
                while i < chars.len() && chars[i] != ']' {
                    i += 1;
                }
                i += 1;
            }
            '$' => {
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            '{' => {
                let metric: String = rest
                    .chars()
                    .rev()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                let mut body = String::new();
                i += 1;
                while i < chars.len() && chars[i] != '}' {
                    if chars[i] == '"' {
                        i += 1;
                        while i < chars.len() && chars[i] != '"' {
                            i += 1;
                        }
                    } else {
                        body.push(chars[i]);
                    }
                    i += 1;
                }
                i += 1;
                for matcher in body.split(',') {
                    let label: String = matcher
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !label.is_empty() {
                        selectors.push((metric.clone(), label));
                    }
                }
            }
            c => {
                rest.push(c);
                i += 1;
            }
        }
    }
    (rest, selectors)
}

fn identifiers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars().chain([' ']) {
        if c.is_alphanumeric() || c == '_' || c == ':' || (c == '.' && !current.is_empty()) {
            current.push(c);
        } else if !current.is_empty() {
            let word = std::mem::take(&mut current);
            let numeric = word
                .chars()
                .next()
                .is_some_and(|f| f.is_ascii_digit() || f == '.');
            if !numeric {
                out.push(word);
            }
        }
    }
    out
}

/// Every PromQL expression of the dashboard: panel targets and variable queries.
fn expressions(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    fn panels<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            panels(&p["panels"], out);
        }
    }
    let mut all = Vec::new();
    panels(&dashboard["panels"], &mut all);
    for p in all {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("every target has a PromQL expr");
            out.push((format!("panel '{}'", p["title"]), expr.to_string()));
        }
    }
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if v["type"] == "query" {
            let query = v["query"]["query"]
                .as_str()
                .or(v["query"].as_str())
                .expect("query");
            out.push((format!("variable '{}'", v["name"]), query.to_string()));
        }
    }
    out
}

fn dashboard() -> Value {
    let path = repo().join("docs/observability/grafana-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("the dashboard");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// The labels a metric family exposes: its samples' labels (a histogram's `_bucket` adds `le`).
fn family_labels(exposed: &BTreeMap<String, BTreeSet<String>>, metric: &str) -> BTreeSet<String> {
    exposed.get(metric).cloned().unwrap_or_default()
}

#[test]
fn the_dashboard_queries_only_what_the_code_exposes() {
    let exposed = exposed();
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "tidemark");
    let expressions = expressions(&dashboard);
    assert!(expressions.len() >= 15, "{expressions:?}");
    let mut used = BTreeSet::new();
    let mut failures = Vec::new();
    for (place, expr) in &expressions {
        let (rest, selectors) = scan(expr);
        let mut metrics_here = BTreeSet::new();
        for word in identifiers(&rest) {
            if word.starts_with("tidemark_") {
                if exposed.contains_key(&word) {
                    metrics_here.insert(word.clone());
                    used.insert(word);
                } else {
                    failures.push(format!("{place}: {word} is not exposed ({expr})"));
                }
            } else if !PROMQL_WORDS.contains(&word.as_str())
                && !TARGET_LABELS.contains(&word.as_str())
                && !exposed.values().any(|labels| labels.contains(&word))
            {
                failures.push(format!(
                    "{place}: '{word}' is neither PromQL nor a label ({expr})"
                ));
            }
        }
        if metrics_here.is_empty() {
            failures.push(format!("{place}: queries no tidemark metric ({expr})"));
        }
        for (metric, label) in selectors {
            let labels = family_labels(&exposed, &metric);
            if !labels.contains(&label) && !TARGET_LABELS.contains(&label.as_str()) {
                failures.push(format!("{place}: {metric} has no label {label} ({expr})"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every family appears on the dashboard at least once.
    let families: BTreeSet<String> = exposed
        .keys()
        .map(|n| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n)
                .to_string()
        })
        .collect();
    for family in families {
        assert!(
            used.iter().any(|u| u.starts_with(&family)),
            "the dashboard never shows {family}"
        );
    }
}

#[test]
fn the_scanner_finds_metrics_labels_and_ignores_strings_and_ranges() {
    let (rest, selectors) = scan(
        r#"sum by (kind) (rate(tidemark_worker_jobs_total{outcome=~"failed|deleted", kind!="x"}[$__rate_interval]))"#,
    );
    assert_eq!(
        identifiers(&rest),
        ["sum", "by", "kind", "rate", "tidemark_worker_jobs_total"]
    );
    assert_eq!(
        selectors,
        [
            (
                "tidemark_worker_jobs_total".to_string(),
                "outcome".to_string()
            ),
            ("tidemark_worker_jobs_total".to_string(), "kind".to_string())
        ]
    );
    assert_eq!(
        identifiers("histogram_quantile(0.95, x)"),
        ["histogram_quantile", "x"]
    );
}

#[test]
fn the_observability_guide_documents_every_metric() {
    let guide = std::fs::read_to_string(repo().join("docs/observability.md"))
        .expect("docs/observability.md");
    for name in exposed().keys() {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        assert!(
            guide.contains(&format!("`{family}`")),
            "docs/observability.md does not document {family}"
        );
    }
    for name in tidemark::metrics::METRIC_NAMES {
        assert!(guide.contains(&format!("`{name}`")), "{name}");
    }
    assert!(guide.contains(tidemark::metrics::ENV_METRICS_ADDR));
}

/// `GET /metrics` on `port`, or `None` while nothing answers.
fn scrape(port: u16) -> Option<String> {
    get(port, "/metrics")
}

/// `GET path` on `port` over loopback, or `None` while nothing answers.
fn get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: worker\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// Kills the child when dropped, so a failing assertion leaves no process behind.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_backup_process_serves_its_progress_while_it_runs() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = tempfile::tempdir().expect("temp dir");
    // A broker that refuses connections keeps the backup waiting for metadata (30 s) after it
    // started: long enough to scrape it.
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_tidemark-under-test"))
        .args([
            "backup",
            "--bootstrap-servers",
            "127.0.0.1:1",
            "--topics",
            "orders",
        ])
        .arg("--path")
        .arg(dir.path())
        .env(
            tidemark::metrics::ENV_METRICS_ADDR,
            format!("127.0.0.1:{port}"),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tidemark runs");
    let _running = Running(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let text = loop {
        if let Some(text) = scrape(port).filter(|t| t.contains("operation=\"backup\"")) {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no backup metrics on port {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    for series in [
        r#"tidemark_worker_phase{operation="backup",phase="running"} 1"#,
        r#"tidemark_worker_records_total{operation="backup"} 0"#,
        r#"tidemark_worker_bytes_total{operation="backup"} 0"#,
    ] {
        assert!(text.contains(series), "{series} missing from\n{text}");
    }
    assert!(text.contains(&format!(
        "tidemark_worker_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
}

#[test]
fn a_bad_metrics_address_fails_before_any_work() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tidemark-under-test"))
        .arg("list")
        .arg("--path")
        .arg(dir.path())
        .env(tidemark::metrics::ENV_METRICS_ADDR, "9090")
        .output()
        .expect("tidemark runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("TIDEMARK_METRICS_ADDR '9090': expected host:port"),
        "{stderr}"
    );
}

/// `curl http://localhost:9090/health` against a running backup: 200 and a JSON status naming
/// the operation, its phase and the records it has backed up so far.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_backup_answers_health_checks_on_the_metrics_port() {
    use tidemark_tests::records::{create_topic, produce_varied, producer};
    let kafka = tidemark_tests::Tansu::start();
    let bs = kafka.bootstrap();
    create_topic(&bs, "health", 1, &[]).await;
    produce_varied(&producer(&bs), "health", 0, 0, 40).await;
    let port = tidemark_tests::free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    // A continuous backup runs until stopped.
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_tidemark-under-test"))
        .args(["backup", "--bootstrap-servers", &bs, "--topics", "health"])
        .args(["--mode", "continuous", "--chain", "health", "--path"])
        .arg(dir.path())
        .env(
            tidemark::metrics::ENV_METRICS_ADDR,
            format!("127.0.0.1:{port}"),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tidemark runs");
    let _running = Running(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (head, status) = loop {
        if let Some(response) = get(port, "/health") {
            let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
            let status: Value = serde_json::from_str(body.trim())
                .unwrap_or_else(|e| panic!("/health is JSON ({e}): {response}"));
            if status["operation"] == "backup" && status["records"] == 40 {
                break (head.to_string(), status);
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no healthy backup of 40 records on port {port}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_eq!(status["status"], "ok", "{status}");
    assert_eq!(status["phase"], "running", "{status}");
    assert_eq!(status["partitions_selected"], 1, "{status}");
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"), "{status}");
}

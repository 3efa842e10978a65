//! The backup and restore engines log inside `tracing` spans: one per phase (plan, targets,
//! lanes, checkpoint, finish) and one per thread they start (the backup's reader, the
//! restore's lanes, sender and delivery thread), each naming the backup or restore and, for a
//! lane, its target topic and partition. Checked on the JSON log of real runs against tansu.

use std::collections::BTreeMap;

use serde_json::Value;
use tidemark_tests::records::delete_topic;
use tidemark_tests::{create_and_fill, run_cli, CliOutput, Tansu};

const BIN: &str = env!("CARGO_BIN_EXE_tidemark-under-test");

/// Per span name, the fields of every instance of it that some log line was written in.
type SpansSeen = BTreeMap<String, Vec<BTreeMap<String, String>>>;

/// Runs the CLI with debug logs as JSON and returns the spans its log lines were written in.
fn run_logged(args: &[&str]) -> (CliOutput, SpansSeen) {
    let mut all = vec!["--log-format", "json"];
    all.extend_from_slice(args);
    let out = run_cli(BIN, &all, &[("RUST_LOG", "tidemark=debug")]);
    assert_eq!(
        out.code, 0,
        "exit code\nstdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    let mut spans = SpansSeen::new();
    for line in out.stderr.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        for span in event["spans"].as_array().into_iter().flatten() {
            let Some(fields) = span.as_object() else {
                continue;
            };
            let fields: BTreeMap<String, String> = fields
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_string)))
                .collect();
            let name = fields.get("name").cloned().unwrap_or_default();
            let seen = spans.entry(name).or_default();
            if !seen.contains(&fields) {
                seen.push(fields);
            }
        }
    }
    (out, spans)
}

/// Every span of `names` was entered with (at least) the fields `want`.
fn assert_spans(spans: &SpansSeen, names: &[&str], want: &[(&str, &str)]) {
    for name in names {
        let found = spans.get(*name).is_some_and(|all| {
            all.iter().any(|f| {
                want.iter()
                    .all(|(k, v)| f.get(*k).map(String::as_str) == Some(*v))
            })
        });
        assert!(
            found,
            "no '{name}' span with {want:?}; spans seen: {spans:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_phases_and_threads_log_inside_spans_naming_the_run() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_and_fill(&bs, "spans", 2, 40).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store_s = store.to_str().expect("utf8");
    let backup_args = [
        "backup",
        "--bootstrap-servers",
        &bs,
        "--path",
        store_s,
        "--topics",
        "spans",
        "--backup-id",
        "b1",
        "-f",
        "json",
    ];
    let (backup, spans) = run_logged(&backup_args);
    assert_eq!(backup.json()["records"], 80, "{}", backup.stdout);
    let backup_phases = [
        "backup_plan",
        "backup_reader",
        "backup_store",
        "backup_checkpoint",
        "backup_finish",
    ];
    assert_spans(&spans, &backup_phases, &[("backup_id", "b1")]);
    assert_spans(&spans, &["backup"], &[("backup_id", "b1"), ("shard", "0")]);

    delete_topic(&bs, "spans").await;
    let cfg = dir.path().join("r.yaml");
    let text = format!(
        "mode: restore\nbackup_id: b1\ntarget:\n  bootstrap_servers: [{bs}]\nstorage:\n  backend: filesystem\n  path: {store_s}\nrestore:\n  create_topics: true\n"
    );
    std::fs::write(&cfg, text).expect("write config");
    let cfg = cfg.to_str().expect("utf8");
    let restore_args = [
        "restore",
        "--config",
        cfg,
        "--restore-id",
        "r1",
        "-f",
        "json",
    ];
    let (restore, spans) = run_logged(&restore_args);
    let j = restore.json();
    assert_eq!(
        (&j["complete"], &j["records"]),
        (&true.into(), &80.into()),
        "{j}"
    );
    let restore_phases = [
        "restore_lanes",
        "restore_sender",
        "restore_delivery",
        "restore_checkpoint",
        "restore_finish",
    ];
    assert_spans(&spans, &restore_phases, &[("restore_id", "r1")]);
    assert_spans(
        &spans,
        &["restore"],
        &[("restore_id", "r1"), ("backup_id", "b1")],
    );
    assert_spans(&spans, &["restore_prepare_targets"], &[("backup_id", "b1")]);
    for partition in ["0", "1"] {
        let lane = [
            ("restore_id", "r1"),
            ("topic", "spans"),
            ("partition", partition),
        ];
        assert_spans(&spans, &["restore_lane"], &lane);
    }
}

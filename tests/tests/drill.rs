//! End-to-end tests of restore drills (`tidemark drill --config FILE` and a `drill` task run by
//! `tidemark run --task`) against a real Kafka-protocol broker (tansu) with filesystem storage.
//! Each drill's findings are checked against what was produced (record counts, the offsets the
//! groups had, the clock), and the cluster is listed afterwards: no topic or group is left
//! under the drill's prefix, and the source topics and groups read the same as before.

use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureRecord, Producer};
use tidemark::task::{TaskResult, MAX_RESULT_BYTES};
use tidemark_tests::records::{
    compact_backup_topic, create_topic, produce_varied, producer, read_topic, Records,
};
use tidemark_tests::{
    commit, commits, committed_map, connect_admin as admin, run_cli, CliOutput, Tansu,
};

const BIN: &str = env!("CARGO_BIN_EXE_tidemark-under-test");

fn cli(args: &[&str]) -> CliOutput {
    run_cli(BIN, args, &[])
}

fn expect_code(out: &CliOutput, code: i32) {
    assert_eq!(
        out.code, code,
        "exit code\nstdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
}

fn backup(bs: &str, path: &str, topics: &str, id: &str) {
    let out = cli(&[
        "backup",
        "--bootstrap-servers",
        bs,
        "--path",
        path,
        "--topics",
        topics,
        "--backup-id",
        id,
        "--segment-max-bytes",
        "30000",
        "-f",
        "json",
    ]);
    expect_code(&out, 0);
}

/// Writes a drill configuration and returns its path.
fn config(dir: &Path, name: &str, bs: &str, store: &str, drill: &str) -> String {
    let text = format!(
        "mode: drill\ntarget:\n  bootstrap_servers: [{bs}]\nstorage:\n  backend: filesystem\n  path: {store}\ndrill:\n{drill}"
    );
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write config");
    p.to_str().expect("utf8").to_string()
}

/// Every topic and consumer group of the cluster whose name starts with `prefix`.
async fn under_prefix(bs: &str, prefix: &str) -> Vec<String> {
    let a = admin(bs).await;
    let mut names: Vec<String> = a
        .list_topics()
        .await
        .expect("topics")
        .into_iter()
        .filter(|t| t.starts_with(prefix))
        .collect();
    names.extend(
        a.list_groups()
            .await
            .expect("groups")
            .into_iter()
            .map(|g| g.group_id)
            .filter(|g| g.starts_with(prefix)),
    );
    names
}

/// The source side the drill must leave alone: records of `topics` and offsets of `groups`.
async fn source_state(
    bs: &str,
    topics: &[(&str, i32)],
    groups: &[&str],
) -> (Records, Vec<std::collections::BTreeMap<(String, i32), i64>>) {
    let mut records = Records::new();
    for (t, n) in topics {
        records.extend(read_topic(bs, t, *n));
    }
    let a = admin(bs).await;
    let mut offsets = Vec::new();
    for g in groups {
        offsets.push(committed_map(&a, g).await);
    }
    (records, offsets)
}

/// Produces one record stamped now to `topic`-`partition` in a batch of its own; returns its
/// timestamp (ms).
async fn produce_now(bs: &str, topic: &str, partition: i32) -> i64 {
    let p = producer(bs);
    let now = chrono::Utc::now().timestamp_millis();
    p.send(
        FutureRecord::<[u8], [u8]>::to(topic)
            .partition(partition)
            .key(&b"newest"[..])
            .payload(&b"the newest record"[..])
            .timestamp(now),
        Duration::from_secs(10),
    )
    .await
    .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
    p.flush(Duration::from_secs(10)).expect("flush");
    now
}

fn group_check<'a>(j: &'a serde_json::Value, group: &str) -> &'a serde_json::Value {
    j["group_checks"]
        .as_array()
        .expect("group_checks")
        .iter()
        .find(|g| g["group"] == group)
        .unwrap_or_else(|| panic!("no check of group {group}: {j}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_of_a_compacted_backup_verifies_checks_offsets_and_leaves_no_trace() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_topic(&bs, "orders", 2, &[]).await;
    create_topic(&bs, "accounts", 1, &[("cleanup.policy", "compact")]).await;
    let p = producer(&bs);
    produce_varied(&p, "orders", 0, 0, 120).await;
    produce_varied(&p, "orders", 1, 0, 80).await;
    produce_varied(&p, "accounts", 0, 0, 90).await;
    let newest = produce_now(&bs, "orders", 1).await;
    let a = admin(&bs).await;
    commit(&a, "billing", &commits("orders", &[10, 20])).await;
    // 31 is compacted away in the backup: the group resumes at source 32.
    commit(&a, "ledger", &commits("accounts", &[31])).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store_s = store.to_str().expect("utf8");
    backup(&bs, store_s, "orders,accounts", "b1");
    compact_backup_topic(&store, "b1", "accounts").await;
    let topics = [("orders", 2), ("accounts", 1)];
    let before = source_state(&bs, &topics, &["billing", "ledger"]).await;

    let cfg = config(
        dir.path(),
        "d.yaml",
        &bs,
        store_s,
        "  max_rpo_seconds: 3600\n  max_rto_seconds: 600\n",
    );
    let started = Instant::now();
    let start_ms = chrono::Utc::now().timestamp_millis();
    let out = cli(&["drill", "--config", &cfg, "--drill-id", "d1", "-f", "json"]);
    let wall = started.elapsed().as_secs_f64();
    let end_ms = chrono::Utc::now().timestamp_millis();
    expect_code(&out, 0);
    // A drill that verified logs no error (reaching a partition's end is not one).
    assert!(
        !out.stderr.contains("ERROR"),
        "a successful drill logged errors:\n{}",
        out.stderr
    );
    let j = out.json();
    assert_eq!(j["status"], "verified", "{j}");
    assert_eq!(j["verified"], true);
    assert_eq!(j["backup_id"], "b1", "the newest complete backup");
    assert_eq!(j["prefix"], "drill-d1-");
    // orders: 120 + 81; accounts: 60 of 90 survive compaction.
    assert_eq!(j["records"], 120 + 81 + 60, "{j}");
    let checks = j["partition_checks"].as_array().expect("checks");
    assert_eq!(checks.len(), 3, "{j}");
    for c in checks {
        assert_eq!(c["matched"], true, "{c}");
        assert_eq!(c["records"], c["expected_records"], "{c}");
    }
    let acc = checks
        .iter()
        .find(|c| c["topic"] == "drill-d1-accounts")
        .expect("accounts checked");
    assert_eq!(acc["records"], 60);
    // The translated offsets, as committed to the scratch groups and read back.
    let billing = group_check(&j, "billing");
    assert_eq!(billing["scratch_group"], "drill-d1-billing");
    assert_eq!(billing["matched"], true);
    let offsets: Vec<(String, i64, i64)> = billing["committed"]
        .as_array()
        .expect("committed")
        .iter()
        .map(|r| {
            (
                r["topic"].as_str().expect("topic").to_string(),
                r["partition"].as_i64().expect("partition"),
                r["offset"].as_i64().expect("offset"),
            )
        })
        .collect();
    assert_eq!(
        offsets,
        vec![
            ("drill-d1-orders".to_string(), 0, 10),
            ("drill-d1-orders".to_string(), 1, 20)
        ]
    );
    // Source 32 is the 22nd surviving record of accounts: scratch offset 21.
    let ledger = group_check(&j, "ledger");
    assert_eq!(ledger["committed"][0]["topic"], "drill-d1-accounts");
    assert_eq!(ledger["committed"][0]["offset"], 21, "{ledger}");
    assert_eq!(j["groups_checked"], 2);
    // RTO: the restore's wall time, inside the command's. RPO: drill start minus the newest
    // record's timestamp.
    let rto = j["rto_seconds"].as_f64().expect("rto");
    assert!(rto > 0.0 && rto <= wall, "rto {rto} within {wall}");
    let rpo = j["rpo_seconds"].as_f64().expect("rpo");
    let (lo, hi) = (
        (start_ms - newest) as f64 / 1000.0,
        (end_ms - newest) as f64 / 1000.0,
    );
    assert!(
        rpo >= lo - 1.0 && rpo <= hi + 1.0,
        "rpo {rpo} in [{lo}, {hi}]"
    );
    assert!(j["bytes_per_second"].as_u64().expect("bps") > 0);
    // Everything gone, nothing else touched.
    assert_eq!(j["cleaned_up"], true, "{j}");
    assert_eq!(under_prefix(&bs, "drill-d1-").await, Vec::<String>::new());
    let after = source_state(&bs, &topics, &["billing", "ledger"]).await;
    assert_eq!(after.0, before.0, "source records unchanged");
    assert_eq!(after.1, before.1, "source offsets unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_over_a_corrupted_segment_fails_naming_it_and_still_cleans_up() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_topic(&bs, "orders", 2, &[]).await;
    let p = producer(&bs);
    produce_varied(&p, "orders", 0, 0, 150).await;
    produce_varied(&p, "orders", 1, 0, 150).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store_s = store.to_str().expect("utf8");
    backup(&bs, store_s, "orders", "b1");
    // Damage the last segment of partition 1: partition 0 restores before the drill fails.
    let manifests =
        tidemark::backup::read::load_manifests(&tidemark_tests::records::storage(&store), "b1")
            .await
            .expect("manifests");
    let seg = manifests[0].topics["orders"].partition_data[&1]
        .segments
        .last()
        .expect("a segment")
        .key
        .clone();
    let file = store.join(&seg);
    let mut bytes = std::fs::read(&file).expect("segment file");
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 8] {
        *b ^= 0x5a;
    }
    std::fs::write(&file, &bytes).expect("corrupt it");

    let cfg = config(dir.path(), "d.yaml", &bs, store_s, "  drill_id: bad1\n");
    let out = cli(&["drill", "--config", &cfg, "-b", "b1", "-f", "json"]);
    expect_code(&out, 8);
    let j = out.json();
    assert_eq!(j["status"], "failed");
    assert_eq!(j["verified"], false);
    assert_eq!(j["error"]["exit_code"], 8, "{j}");
    assert_eq!(j["error"]["kind"], "malformed_file");
    let first = j["failures"][0].as_str().expect("a failure");
    assert!(first.contains(&seg), "names {seg}: {first}");
    assert!(out.stderr.contains(&seg), "{}", out.stderr);
    assert_eq!(j["cleaned_up"], true, "{j}");
    assert_eq!(under_prefix(&bs, "drill-bad1-").await, Vec::<String>::new());

    // The same drill as a task: the termination result is a failed drill, filled.
    let task = format!(
        "apiVersion: tidemark.dev/task-v1\nkind: drill\nkafka:\n  bootstrapServers: [\"{bs}\"]\n  securityProtocol: PLAINTEXT\nstorage:\n  type: location\n  url: {store_s}\ndrillId: bad2\n"
    );
    let task_file = dir.path().join("bad2.yaml");
    let result_file = dir.path().join("bad2.result");
    std::fs::write(&task_file, task).expect("write task");
    let out = cli(&[
        "run",
        "--task",
        task_file.to_str().expect("utf8"),
        "--result-file",
        result_file.to_str().expect("utf8"),
    ]);
    expect_code(&out, 8);
    let result: TaskResult =
        serde_json::from_slice(&std::fs::read(&result_file).expect("result file"))
            .expect("a TaskResult");
    assert_eq!(result.phase, "Failed");
    assert_eq!(result.error.as_ref().map(|e| e.exit_code), Some(8));
    let d = result.drill.expect("drill filled on failure");
    assert_eq!((d.drill_id.as_str(), d.backup_id.as_str()), ("bad2", "b1"));
    assert!(!d.verified && d.cleaned_up, "{d:?}");
    assert!(
        d.failures_total >= 1 && d.failures[0].contains(&seg),
        "{d:?}"
    );
    assert!(result.message.contains(&seg), "{}", result.message);
    assert_eq!(under_prefix(&bs, "drill-bad2-").await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_prefix_is_refused_with_nothing_written_and_an_old_backup_fails_its_rpo() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_topic(&bs, "orders", 1, &[]).await;
    create_topic(&bs, "dr-x-leftover", 1, &[]).await;
    let p = producer(&bs);
    // Records stamped in 2023: the backup's newest record is years old.
    produce_varied(&p, "orders", 0, 0, 40).await;
    let a = admin(&bs).await;
    commit(&a, "billing", &commits("orders", &[7])).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store_s = store.to_str().expect("utf8");
    backup(&bs, store_s, "orders", "b1");
    let topics_before = a.list_topics().await.expect("topics");
    let groups_before = a.list_groups().await.expect("groups");
    let billing_before = committed_map(&a, "billing").await;

    let cfg = config(
        dir.path(),
        "d.yaml",
        &bs,
        store_s,
        "  topic_prefix: 'dr-{id}-'\n  max_rpo_seconds: 60\n",
    );
    let out = cli(&["drill", "--config", &cfg, "--drill-id", "x"]);
    expect_code(&out, 2);
    assert!(out.stderr.contains("dr-x-leftover"), "{}", out.stderr);
    assert!(
        out.stderr.contains("refused, nothing was written"),
        "{}",
        out.stderr
    );
    assert_eq!(a.list_topics().await.expect("topics"), topics_before);
    assert_eq!(a.list_groups().await.expect("groups"), groups_before);
    assert!(
        !store.join("backups/b1/restores/x").exists(),
        "no restore state written"
    );

    // Another id: the data verifies, but the RPO is over its limit.
    let out = cli(&["drill", "--config", &cfg, "--drill-id", "y", "-f", "json"]);
    expect_code(&out, 11);
    let j = out.json();
    assert_eq!(j["verified"], true, "{j}");
    assert_eq!(j["error"]["kind"], "verification_failed");
    let failures = j["failures"].to_string();
    assert!(failures.contains("maxRpoSeconds 60"), "{failures}");
    assert!(j["rpo_seconds"].as_f64().expect("rpo") > 86_400.0 * 365.0);
    assert_eq!(j["cleaned_up"], true);
    assert_eq!(under_prefix(&bs, "dr-y-").await, Vec::<String>::new());
    assert_eq!(committed_map(&a, "billing").await, billing_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_task_of_a_pitr_window_reports_through_the_termination_result() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_topic(&bs, "events", 1, &[]).await;
    let p = producer(&bs);
    const BASE: i64 = 1_700_000_000_000;
    for i in 0..100i64 {
        if i == 99 {
            p.flush(Duration::from_secs(10)).expect("flush");
        }
        p.send(
            FutureRecord::<[u8], [u8]>::to("events")
                .partition(0)
                .key(format!("k{i}").as_bytes())
                .payload(format!("v{i}").as_bytes())
                .timestamp(BASE + i * 1000),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
    }
    p.flush(Duration::from_secs(10)).expect("flush");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store_s = store.to_str().expect("utf8");
    backup(&bs, store_s, "events", "b1");

    let task = format!(
        "apiVersion: tidemark.dev/task-v1\nkind: drill\nsource: ns/kb\nkafka:\n  bootstrapServers: [\"{bs}\"]\n  securityProtocol: PLAINTEXT\nstorage:\n  type: location\n  url: {store_s}\ndrillId: pitr1\ntimeWindowStart: {}\ntimeWindowEnd: {}\nreportKey: drills/pitr1.json\n",
        BASE + 20_000,
        BASE + 59_000
    );
    let task_file = dir.path().join("drill.yaml");
    let result_file = dir.path().join("drill.result");
    std::fs::write(&task_file, task).expect("write task");
    let out = cli(&[
        "run",
        "--task",
        task_file.to_str().expect("utf8"),
        "--result-file",
        result_file.to_str().expect("utf8"),
    ]);
    expect_code(&out, 0);
    let raw = std::fs::read(&result_file).expect("result file");
    assert!(raw.len() <= MAX_RESULT_BYTES);
    let result: TaskResult = serde_json::from_slice(&raw).expect("a TaskResult");
    assert_eq!(result.phase, "Completed", "{result:?}");
    assert_eq!(result.operation.as_deref(), Some("drill"));
    let d = result.drill.expect("drill filled");
    assert_eq!(d.drill_id, "pitr1");
    assert_eq!(d.backup_id, "b1");
    assert_eq!(d.prefix, "drill-pitr1-");
    assert_eq!(
        (d.topics, d.partitions, d.records),
        (1, 1, 40),
        "the window's records"
    );
    // Keys k20..k59 and values v20..v59: 3 bytes each.
    assert_eq!(d.bytes, 40 * 6);
    assert!(d.verified && d.cleaned_up);
    assert!(d.rto_seconds > 0.0);
    assert!(d.rpo_seconds.expect("rpo") > 0.0);
    assert!(d.failures.is_empty() && d.failures_total == 0);
    let line: serde_json::Value = out.json();
    assert_eq!(
        line["report"]["partition_checks"][0]["expected_records"],
        40
    );
    // The full report is stored where the task asked.
    let stored: serde_json::Value = serde_json::from_slice(
        &std::fs::read(store.join("drills/pitr1.json")).expect("stored report"),
    )
    .expect("json");
    assert_eq!(stored["records"], 40);
    assert_eq!(stored["verified"], true);
    assert_eq!(
        under_prefix(&bs, "drill-pitr1-").await,
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_takes_the_newest_complete_backup_of_its_chain_with_every_link() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_topic(&bs, "orders", 1, &[]).await;
    create_topic(&bs, "misc", 1, &[]).await;
    let p = producer(&bs);
    produce_varied(&p, "orders", 0, 0, 60).await;
    produce_varied(&p, "misc", 0, 0, 5).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store_s = store.to_str().expect("utf8");
    let incremental = |id: &str| {
        let out = cli(&[
            "backup",
            "--bootstrap-servers",
            &bs,
            "--path",
            store_s,
            "--topics",
            "orders",
            "--backup-id",
            id,
            "--mode",
            "incremental",
            "--chain",
            "prod",
            "-f",
            "json",
        ]);
        expect_code(&out, 0);
    };
    incremental("c1");
    produce_varied(&p, "orders", 0, 60, 40).await;
    incremental("c2");
    // The newest backup of the location, but of no chain: not the one drilled.
    backup(&bs, store_s, "misc", "z9");

    let cfg = config(
        dir.path(),
        "d.yaml",
        &bs,
        store_s,
        "  chain: prod\n  drill_id: ch1\n",
    );
    let out = cli(&["drill", "--config", &cfg, "-f", "json"]);
    expect_code(&out, 0);
    let j = out.json();
    assert_eq!(j["backup_id"], "c2", "{j}");
    assert_eq!(j["links"], serde_json::json!(["c1", "c2"]));
    assert_eq!(j["records"], 100, "both links restored: {j}");
    assert_eq!(j["scratch_topics"], serde_json::json!(["drill-ch1-orders"]));
    assert_eq!(j["verified"], true);
    assert_eq!(j["cleaned_up"], true);
    assert_eq!(under_prefix(&bs, "drill-ch1-").await, Vec::<String>::new());
}

//! Incremental backup chains against a real Kafka-protocol broker (tansu) with filesystem
//! storage: restoring a link restores the chain up to it (every record exactly once, one offset
//! mapping), a single link restores alone, a topic re-created between links is detected and
//! both of its eras come back in order, and a completed restore re-run with other settings is
//! refused. Every check reads the target back and compares record by record (key, value,
//! headers, timestamp).

use std::path::Path;

use tidemark::backup::format::Record;
use tidemark_tests::records::{
    create_topic, delete_topic, produce_varied, producer, read_topic, Records,
};
use tidemark_tests::{commit, commits, committed_map, connect_admin, run_cli, CliOutput, Tansu};

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

/// One incremental backup of chain `chain` (the first of a chain starts at the log start).
fn backup(bs: &str, store: &str, topics: &str, chain: &str, id: &str) -> serde_json::Value {
    let out = cli(&[
        "backup",
        "--bootstrap-servers",
        bs,
        "--path",
        store,
        "--topics",
        topics,
        "--backup-id",
        id,
        "--mode",
        "incremental",
        "--chain",
        chain,
        "--segment-max-bytes",
        "20000",
        "-f",
        "json",
    ]);
    expect_code(&out, 0);
    out.json()
}

/// Writes a restore configuration and returns its path.
fn config(dir: &Path, name: &str, bs: &str, store: &str, backup_id: &str, restore: &str) -> String {
    let text = format!(
        "mode: restore\nbackup_id: {backup_id}\ntarget:\n  bootstrap_servers: [{bs}]\nstorage:\n  backend: filesystem\n  path: {store}\nrestore:\n  checkpoint_interval_secs: 1\n  create_topics: true\n{restore}"
    );
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write config");
    p.to_str().expect("utf8").to_string()
}

/// A run killed (as `kill -9` would) once `point` is reached; the next run resumes it.
fn crash_at(cfg: &str, point: &str) {
    let crashed = run_cli(
        BIN,
        &["restore", "--config", cfg],
        &[("TIDEMARK_CRASH_AT", point)],
    );
    assert!(
        crashed.code != 0 && crashed.stderr.contains("TIDEMARK_CRASH_AT"),
        "{point}: the run must die\n{}",
        crashed.stderr
    );
}

fn restore(cfg: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["restore", "--config", cfg, "-f", "json"];
    args.extend_from_slice(extra);
    let out = cli(&args);
    expect_code(&out, 0);
    out.json()
}

/// The records of one partition, in offset order.
fn of(r: &Records, topic: &str, partition: i32) -> Vec<Record> {
    r.get(&(topic.to_string(), partition))
        .cloned()
        .unwrap_or_default()
}

/// `got` holds exactly `want`, in order: same key, value, headers and timestamp.
fn same_records(got: &[Record], want: &[Record], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: record count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.key, w.key, "{what}: key of record {i}");
        assert_eq!(g.value, w.value, "{what}: value of record {i}");
        assert_eq!(g.headers, w.headers, "{what}: headers of record {i}");
        assert_eq!(g.timestamp, w.timestamp, "{what}: timestamp of record {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_link_restores_its_chain_exactly_once() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_topic(&bs, "orders", 2, &[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store_s = store.to_str().expect("utf8");
    let p = producer(&bs);
    let a = connect_admin(&bs).await;

    // Three links: the full backup, then two incremental ones with records produced between.
    produce_varied(&p, "orders", 0, 0, 40).await;
    produce_varied(&p, "orders", 1, 0, 30).await;
    let first = backup(&bs, store_s, "orders", "nightly", "n1");
    assert!(first.get("parent").is_none(), "{first}");
    produce_varied(&p, "orders", 0, 40, 30).await;
    produce_varied(&p, "orders", 1, 30, 20).await;
    let second = backup(&bs, store_s, "orders", "nightly", "n2");
    assert_eq!(second["parent"], "n1", "{second}");
    assert_eq!(second["records"], 50, "only what came after n1: {second}");
    produce_varied(&p, "orders", 0, 70, 30).await;
    produce_varied(&p, "orders", 1, 50, 10).await;
    // The group had read 20 records of partition 0 and 55 of partition 1 when n3 captured it.
    commit(&a, "billing", &commits("orders", &[20, 55])).await;
    let third = backup(&bs, store_s, "orders", "nightly", "n3");
    assert_eq!(third["parent"], "n2", "{third}");
    assert_eq!(third["records"], 40, "{third}");
    let source = read_topic(&bs, "orders", 2);
    assert_eq!(of(&source, "orders", 0).len(), 100);
    assert_eq!(of(&source, "orders", 1).len(), 60);

    // list and describe show the chain.
    let list = cli(&["list", "--path", store_s, "-f", "json"]);
    expect_code(&list, 0);
    let lj = list.json();
    let parent_of = |id: &str| {
        lj["backups"]
            .as_array()
            .expect("backups")
            .iter()
            .find(|b| b["backup_id"] == id)
            .map(|b| b["parent"].clone())
    };
    assert_eq!(parent_of("n3"), Some(serde_json::json!("n2")), "{lj}");
    assert_eq!(parent_of("n2"), Some(serde_json::json!("n1")), "{lj}");
    let described = cli(&[
        "describe",
        "--path",
        store_s,
        "--backup-id",
        "n3",
        "-f",
        "json",
    ]);
    expect_code(&described, 0);
    assert_eq!(
        described.json()["links"],
        serde_json::json!(["n1", "n2", "n3"])
    );
    let text = cli(&["describe", "--path", store_s, "--backup-id", "n3"]);
    expect_code(&text, 0);
    assert!(
        text.stdout.contains("3 links, oldest first: n1 > n2 > n3"),
        "{}",
        text.stdout
    );

    // Restoring n3 restores n1, n2 and n3: every record once, in order, and the group
    // translated through one mapping over the three links.
    let cfg = config(
        dir.path(),
        "all.yaml",
        &bs,
        store_s,
        "n3",
        "  topic_mapping: {orders: orders-all}\n  produce_batch_size: 1\n  consumer_group_strategy: header-based\n  reset_consumer_offsets: true\n  consumer_groups: [billing]\n",
    );
    // Killed in the middle of the second link's records, then resumed.
    crash_at(&cfg, "restore-record:85");
    let j = restore(&cfg, &[]);
    assert_eq!(j["resumed"], true, "{j}");
    assert_eq!(j["links"], serde_json::json!(["n1", "n2", "n3"]), "{j}");
    assert_eq!(j["records"], 160, "{j}");
    let all = read_topic(&bs, "orders-all", 2);
    for part in 0..2 {
        same_records(
            &of(&all, "orders-all", part),
            &of(&source, "orders", part),
            &format!("chain n3, partition {part}"),
        );
    }
    let offsets = committed_map(&a, "billing").await;
    assert_eq!(offsets.get(&("orders-all".to_string(), 0)), Some(&20));
    assert_eq!(offsets.get(&("orders-all".to_string(), 1)), Some(&55));

    // Restoring n2 gives exactly the records up to n2.
    let cfg = config(
        dir.path(),
        "upto2.yaml",
        &bs,
        store_s,
        "n2",
        "  topic_mapping: {orders: orders-upto2}\n",
    );
    let j = restore(&cfg, &[]);
    assert_eq!(j["links"], serde_json::json!(["n1", "n2"]), "{j}");
    let upto2 = read_topic(&bs, "orders-upto2", 2);
    same_records(
        &of(&upto2, "orders-upto2", 0),
        &of(&source, "orders", 0)[..70],
        "chain n2, partition 0",
    );
    same_records(
        &of(&upto2, "orders-upto2", 1),
        &of(&source, "orders", 1)[..50],
        "chain n2, partition 1",
    );

    // A single link restores alone.
    let cfg = config(
        dir.path(),
        "only3.yaml",
        &bs,
        store_s,
        "n3",
        "  topic_mapping: {orders: orders-only3}\n",
    );
    let j = restore(&cfg, &["--single-link"]);
    assert_eq!(j["links"], serde_json::json!(["n3"]), "{j}");
    let only3 = read_topic(&bs, "orders-only3", 2);
    same_records(
        &of(&only3, "orders-only3", 0),
        &of(&source, "orders", 0)[70..],
        "link n3 alone, partition 0",
    );
    same_records(
        &of(&only3, "orders-only3", 1),
        &of(&source, "orders", 1)[50..],
        "link n3 alone, partition 1",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_recreated_between_links_restores_both_eras_in_order() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_topic(&bs, "events", 1, &[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store_s = store.to_str().expect("utf8");
    let p = producer(&bs);

    produce_varied(&p, "events", 0, 0, 30).await;
    backup(&bs, store_s, "events", "ev", "e1");
    let era1 = of(&read_topic(&bs, "events", 1), "events", 0);
    assert_eq!(era1.len(), 30);

    // Deleted and created again, and refilled past where e1 ended: only the topic id tells.
    delete_topic(&bs, "events").await;
    create_topic(&bs, "events", 1, &[]).await;
    produce_varied(&p, "events", 0, 1000, 40).await;
    let second = backup(&bs, store_s, "events", "ev", "e2");
    assert_eq!(
        second["discontinuities"],
        serde_json::json!([{"topic": "events", "partition": 0, "kind": "recreated",
                            "parent_end": 30, "new_start": 0}]),
        "{second}"
    );
    assert_eq!(
        second["records"], 40,
        "the new log from its start: {second}"
    );
    assert!(
        second["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("re-created"))),
        "{second}"
    );
    let described = cli(&["describe", "--path", store_s, "--backup-id", "e2"]);
    expect_code(&described, 0);
    assert!(
        described.stdout.contains("topic re-created"),
        "{}",
        described.stdout
    );
    produce_varied(&p, "events", 0, 1040, 10).await;
    let third = backup(&bs, store_s, "events", "ev", "e3");
    assert!(third.get("discontinuities").is_none(), "{third}");
    let era2 = of(&read_topic(&bs, "events", 1), "events", 0);
    assert_eq!(era2.len(), 50);

    let cfg = config(
        dir.path(),
        "ev.yaml",
        &bs,
        store_s,
        "e3",
        "  topic_mapping: {events: events-all}\n  produce_batch_size: 1\n",
    );
    // Killed in the second era, then resumed.
    crash_at(&cfg, "restore-record:45");
    let j = restore(&cfg, &[]);
    assert_eq!(j["resumed"], true, "{j}");
    assert_eq!(j["records"], 80, "{j}");
    let got = of(&read_topic(&bs, "events-all", 1), "events-all", 0);
    let want: Vec<Record> = era1.iter().chain(era2.iter()).cloned().collect();
    same_records(&got, &want, "both eras of events-0");
    // One offset mapping: each era maps exactly, the newer one after the older.
    let m = cli(&[
        "show-offset-mapping",
        "-p",
        store_s,
        "-b",
        "e3",
        "-f",
        "json",
    ]);
    expect_code(&m, 0);
    let rows = m.json()["partitions"].clone();
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (&rows[0]["source_first"], &rows[0]["target_first"]),
        (&serde_json::json!(0), &serde_json::json!(0)),
        "{rows:?}"
    );
    assert_eq!(
        (&rows[1]["source_first"], &rows[1]["target_first"]),
        (&serde_json::json!(0), &serde_json::json!(30)),
        "{rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_restore_rerun_with_other_settings_is_refused() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_topic(&bs, "stock", 1, &[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store_s = store.to_str().expect("utf8");
    let p = producer(&bs);
    produce_varied(&p, "stock", 0, 0, 50).await;
    let a = connect_admin(&bs).await;
    commit(&a, "pickers", &commits("stock", &[20])).await;
    backup(&bs, store_s, "stock", "st", "s1");

    let settings = "  produce_batch_size: 1\n  consumer_group_strategy: header-based\n  reset_consumer_offsets: true\n  consumer_groups: [pickers]\n";
    let cfg = config(
        dir.path(),
        "r.yaml",
        &bs,
        store_s,
        "s1",
        &format!("  topic_mapping: {{stock: stock-copy}}\n{settings}"),
    );
    let first = restore(&cfg, &["--restore-id", "r1"]);
    assert_eq!(first["complete"], true, "{first}");
    let copy = ("stock-copy".to_string(), 0);
    assert_eq!(committed_map(&a, "pickers").await.get(&copy), Some(&20));
    // The group reads on in the restored topic.
    commit(
        &a,
        "pickers",
        &[tidemark::kafka::CommittedOffset {
            topic: "stock-copy".into(),
            partition: 0,
            offset: 35,
            metadata: String::new(),
        }],
    )
    .await;

    // The same restore again: already complete, and no offset is committed again.
    let again = restore(&cfg, &["--restore-id", "r1"]);
    assert_eq!(again["already_complete"], true, "{again}");
    assert_eq!(
        committed_map(&a, "pickers").await.get(&copy),
        Some(&35),
        "an identical re-run commits nothing"
    );

    // The same restore id with another topic mapping: invalid input naming the mapping.
    let other = config(
        dir.path(),
        "other.yaml",
        &bs,
        store_s,
        "s1",
        &format!("  topic_mapping: {{stock: stock-elsewhere}}\n{settings}"),
    );
    let out = cli(&["restore", "--config", &other, "--restore-id", "r1"]);
    expect_code(&out, 2);
    assert!(
        out.stderr.contains("topic_mapping")
            && out.stderr.contains("stock-copy")
            && out.stderr.contains("stock-elsewhere"),
        "{}",
        out.stderr
    );
    assert_eq!(
        committed_map(&a, "pickers").await.get(&copy),
        Some(&35),
        "a refused re-run commits nothing"
    );
    let topics = a.list_topics().await.expect("topics");
    assert!(
        !topics.contains(&"stock-elsewhere".to_string()),
        "a refused re-run creates nothing: {topics:?}"
    );

    // The same restore id against another cluster: invalid input naming the target cluster.
    let other_kafka = Tansu::start();
    let other_bs = other_kafka.bootstrap();
    let moved = config(
        dir.path(),
        "moved.yaml",
        &other_bs,
        store_s,
        "s1",
        &format!("  topic_mapping: {{stock: stock-copy}}\n{settings}"),
    );
    let out = cli(&["restore", "--config", &moved, "--restore-id", "r1"]);
    expect_code(&out, 2);
    assert!(out.stderr.contains("target cluster"), "{}", out.stderr);
}

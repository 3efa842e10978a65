//! End-to-end tests of `tidemark restore`, `validate-restore`, `show-offset-mapping` and
//! `three-phase-restore` against a real Kafka-protocol broker (tansu) with filesystem storage.
//! Every test reads the target back with a plain consumer and compares each record (key, value,
//! headers, timestamp) with what was produced, and every group's committed offsets with what a
//! consumer must read next.

use std::path::Path;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureRecord, Producer};
use rdkafka::ClientConfig;
use tidemark::backup::format::Record;
use tidemark_tests::records::{
    create_topic, delete_topic, produce_varied, producer, read_backup, read_topic, Records,
};
use tidemark_tests::{
    commit, commits, committed_map, connect_admin as admin, run_cli, CliOutput, Tansu,
};

const BIN: &str = env!("CARGO_BIN_EXE_tidemark-under-test");

fn cli(args: &[&str], env: &[(&str, &str)]) -> CliOutput {
    run_cli(BIN, args, env)
}

fn expect_code(out: &CliOutput, code: i32) {
    assert_eq!(
        out.code, code,
        "exit code\nstdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
}

fn backup(bs: &str, path: &str, topics: &str, id: &str) {
    let out = cli(
        &[
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
        ],
        &[],
    );
    expect_code(&out, 0);
}

/// Writes a restore configuration (kafka-backup's layout) and returns its path.
fn config(
    dir: &Path,
    name: &str,
    bs: &str,
    store: &str,
    backup_id: &str,
    topics: &str,
    restore: &str,
) -> String {
    let text = format!(
        "mode: restore\nbackup_id: {backup_id}\ntarget:\n  bootstrap_servers: [{bs}]\n  topics:\n    include: [{topics}]\nstorage:\n  backend: filesystem\n  path: {store}\nrestore:\n  checkpoint_interval_secs: 1\n{restore}"
    );
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write config");
    p.to_str().expect("utf8").to_string()
}

/// What a restored record must equal: the source record's key, value, headers (plus the
/// original-offset headers when asked) and timestamp; offsets differ.
fn same_content(got: &Record, want: &Record, extra_headers: &[(&str, String)]) {
    assert_eq!(got.key, want.key, "key of source offset {}", want.offset);
    assert_eq!(
        got.value, want.value,
        "value of source offset {}",
        want.offset
    );
    assert_eq!(
        got.timestamp, want.timestamp,
        "timestamp of source offset {}",
        want.offset
    );
    let mut headers = want.headers.clone();
    for (k, v) in extra_headers {
        headers.push((k.to_string(), Some(v.as_bytes().to_vec())));
    }
    assert_eq!(
        got.headers, headers,
        "headers of source offset {}",
        want.offset
    );
}

fn all_of(r: &Records, topic: &str, partition: i32) -> Vec<Record> {
    r.get(&(topic.to_string(), partition))
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_delete_restore_gives_back_every_record() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_topic(&bs, "orders", 3, &[]).await;
    let p = producer(&bs);
    for part in 0..3 {
        produce_varied(&p, "orders", part, 0, 250).await;
    }
    // One 1 MiB value.
    p.send(
        FutureRecord::<[u8], [u8]>::to("orders")
            .partition(1)
            .key(&b"big"[..])
            .payload(&vec![7u8; 1 << 20][..])
            .timestamp(1_700_000_999_000),
        Duration::from_secs(10),
    )
    .await
    .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
    p.flush(Duration::from_secs(10)).expect("flush");
    produce_varied(&p, "orders", 1, 250, 1).await;
    let before = read_topic(&bs, "orders", 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store_s = store.to_str().expect("utf8");
    backup(&bs, store_s, "orders", "b1");

    delete_topic(&bs, "orders").await;
    let cfg = config(
        dir.path(),
        "r.yaml",
        &bs,
        store_s,
        "b1",
        "orders",
        "  create_topics: true\n  produce_batch_size: 100\n",
    );
    let v = cli(&["validate-restore", "--config", &cfg, "-f", "json"], &[]);
    expect_code(&v, 0);
    let vj = v.json();
    assert_eq!(vj["records_to_restore"], 752, "{vj}");
    assert_eq!(vj["targets"][0]["state"], "will be created", "{vj}");
    let out = cli(&["restore", "--config", &cfg, "-f", "json"], &[]);
    expect_code(&out, 0);
    let j = out.json();
    assert_eq!(j["complete"], true, "{j}");
    assert_eq!(j["records"], 752);
    assert_eq!(j["topics_created"][0], "orders");

    let after = read_topic(&bs, "orders", 3);
    for part in 0..3 {
        let want = all_of(&before, "orders", part);
        let got = all_of(&after, "orders", part);
        assert_eq!(got.len(), want.len(), "partition {part}");
        for (g, w) in got.iter().zip(&want) {
            same_content(g, w, &[]);
            assert_eq!(g.offset, w.offset, "no gaps: offsets equal");
        }
    }

    // The mapping: one run per partition, source and target ranges equal.
    let m = cli(
        &[
            "show-offset-mapping",
            "-p",
            store_s,
            "-b",
            "b1",
            "-f",
            "json",
        ],
        &[],
    );
    expect_code(&m, 0);
    let mj = m.json();
    assert_eq!(mj["complete"], true);
    for row in mj["partitions"].as_array().expect("rows") {
        assert_eq!(row["runs"], 1, "{row}");
        assert_eq!(row["source_first"], row["target_first"]);
        assert_eq!(row["source_last"], row["target_last"]);
    }
    let text = cli(&["show-offset-mapping", "-p", store_s, "-b", "b1"], &[]);
    expect_code(&text, 0);
    assert!(
        text.stdout.contains("OFFSET MAPPING REPORT") && text.stdout.contains("orders/1"),
        "{}",
        text.stdout
    );
    let csv = cli(
        &[
            "show-offset-mapping",
            "-p",
            store_s,
            "-b",
            "b1",
            "-f",
            "csv",
        ],
        &[],
    );
    expect_code(&csv, 0);
    assert!(
        csv.stdout
            .lines()
            .any(|l| l.starts_with("orders,1,orders,1,0,251,0,251,252,")),
        "{}",
        csv.stdout
    );

    // Running it again changes nothing: the restore is complete.
    let again = cli(&["restore", "--config", &cfg, "-f", "json"], &[]);
    expect_code(&again, 0);
    assert_eq!(again.json()["already_complete"], true);
    // A new restore of the same backup into the now non-empty topic is refused, naming it
    // (the count is the broker's end offset minus its start; tansu's end offset trails a
    // multi-record last batch, so only the partition is asserted).
    let cfg2 = config(
        dir.path(),
        "r2.yaml",
        &bs,
        store_s,
        "b1",
        "orders",
        "  create_topics: true\n",
    );
    let refused = cli(
        &["restore", "--config", &cfg2, "--restore-id", "second"],
        &[],
    );
    expect_code(&refused, 2);
    assert!(
        refused
            .stderr
            .contains("target partitions already hold records: orders-0 (")
            && refused.stderr.contains("existing_data"),
        "{}",
        refused.stderr
    );
    let unchanged = read_topic(&bs, "orders", 3);
    assert_eq!(unchanged, after, "a refused restore writes nothing");

    // Purge deletes the records there first with Kafka's DeleteRecords. tansu 0.6 does not
    // implement DeleteRecords: the restore must stop before writing anything, naming the
    // partition and the way out.
    let cfg3 = config(
        dir.path(),
        "r3.yaml",
        &bs,
        store_s,
        "b1",
        "orders",
        "  existing_data: purge\n  source_partitions: [0]\n",
    );
    let purged = cli(
        &["restore", "--config", &cfg3, "--restore-id", "purge"],
        &[],
    );
    expect_code(&purged, 9);
    assert!(
        purged
            .stderr
            .contains("failed to delete records of orders-0")
            && purged.stderr.contains("nothing was written"),
        "{}",
        purged.stderr
    );
    assert_eq!(
        read_topic(&bs, "orders", 3),
        after,
        "a failed purge writes nothing"
    );
    // Append: the backup's records after what is there.
    let cfg4 = config(
        dir.path(),
        "r4.yaml",
        &bs,
        store_s,
        "b1",
        "orders",
        "  existing_data: append\n  source_partitions: [2]\n",
    );
    let appended = cli(
        &["restore", "--config", &cfg4, "--restore-id", "append"],
        &[],
    );
    expect_code(&appended, 0);
    let p2 = all_of(&read_topic(&bs, "orders", 3), "orders", 2);
    let want2 = all_of(&before, "orders", 2);
    assert_eq!(p2.len(), 2 * want2.len());
    for (g, w) in p2[want2.len()..].iter().zip(&want2) {
        same_content(g, w, &[]);
    }
}

/// Epoch ms of record 0 in the topics `fill_timed` writes; record `i` is stamped `i` seconds later.
const BASE: i64 = 1_700_000_000_000;

/// Creates `topic` and writes `n` records to each partition: key `key(partition, i)`, value
/// `value(i)`, timestamp `BASE + i * 1000`; each partition ends with a single-record batch
/// (tansu's end offset is its last batch's base offset + 1).
async fn fill_timed(
    bs: &str,
    topic: &str,
    partitions: i32,
    n: i64,
    key: impl Fn(i32, i64) -> String,
    value: impl Fn(i64) -> String,
) {
    create_topic(bs, topic, partitions, &[]).await;
    let p = producer(bs);
    for part in 0..partitions {
        for i in 0..n {
            if i == n - 1 {
                p.flush(Duration::from_secs(10)).expect("flush");
            }
            p.send(
                FutureRecord::<[u8], [u8]>::to(topic)
                    .partition(part)
                    .key(key(part, i).as_bytes())
                    .payload(value(i).as_bytes())
                    .timestamp(BASE + i * 1000),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
        }
        p.flush(Duration::from_secs(10)).expect("flush");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pitr_bounds_are_inclusive_and_remaps_land_where_asked() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    fill_timed(
        &bs,
        "events",
        2,
        100,
        |p, i| format!("k{p}-{i}"),
        |i| format!("v{i}"),
    )
    .await;
    let before = read_topic(&bs, "events", 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store_s = store.to_str().expect("utf8");
    backup(&bs, store_s, "events", "b1");

    // [base+20s, base+40s] inclusive, partition 0 only, to events-pitr partition 1.
    let (start, end) = (BASE + 20_000, BASE + 40_000);
    let restore = format!(
        "  time_window_start: {start}\n  time_window_end: {end}\n  source_partitions: [0]\n  topic_mapping:\n    events: events-pitr\n  partition_mapping:\n    0: 1\n  create_topics: true\n  include_original_offset_header: true\n"
    );
    let cfg = config(
        dir.path(),
        "pitr.yaml",
        &bs,
        store_s,
        "b1",
        "events",
        &restore,
    );
    let v = cli(&["validate-restore", "--config", &cfg, "-f", "yaml"], &[]);
    expect_code(&v, 0);
    assert!(v.stdout.contains("records_to_restore: 21"), "{}", v.stdout);
    let out = cli(&["restore", "--config", &cfg, "-f", "json"], &[]);
    expect_code(&out, 0);
    let after = read_topic(&bs, "events-pitr", 2);
    assert!(
        all_of(&after, "events-pitr", 0).is_empty(),
        "nothing lands in partition 0"
    );
    let got = all_of(&after, "events-pitr", 1);
    let want: Vec<Record> = all_of(&before, "events", 0)
        .into_iter()
        .filter(|r| r.timestamp >= start && r.timestamp <= end)
        .collect();
    assert_eq!(want.len(), 21, "both bounds are records");
    assert_eq!(got.len(), 21);
    assert_eq!(
        got[0].timestamp, start,
        "start bound included to the millisecond"
    );
    assert_eq!(
        got[20].timestamp, end,
        "end bound included to the millisecond"
    );
    for (g, w) in got.iter().zip(&want) {
        same_content(
            g,
            w,
            &[
                ("x-original-offset", w.offset.to_string()),
                ("x-original-timestamp", w.timestamp.to_string()),
            ],
        );
    }

    // One millisecond narrower at each end drops both bound records; kafka-backup's header names.
    let restore = format!(
        "  time_window_start: {}\n  time_window_end: {}\n  source_partitions: [1]\n  topic_mapping:\n    events: events-narrow\n  create_topics: true\n  include_original_offset_header: true\n  original_offset_header_style: kafka-backup\n",
        start + 1,
        end - 1
    );
    let cfg = config(
        dir.path(),
        "narrow.yaml",
        &bs,
        store_s,
        "b1",
        "events",
        &restore,
    );
    expect_code(&cli(&["restore", "--config", &cfg], &[]), 0);
    let narrow = all_of(&read_topic(&bs, "events-narrow", 2), "events-narrow", 1);
    assert_eq!(narrow.len(), 19);
    assert_eq!(narrow[0].timestamp, start + 1000);
    let w = &all_of(&before, "events", 1)[21];
    same_content(
        &narrow[0],
        w,
        &[
            ("x-kafka-backup-offset", "21".into()),
            ("x-kafka-backup-timestamp", w.timestamp.to_string()),
            ("x-kafka-backup-partition", "1".into()),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_killed_anywhere_resumes_exactly_once() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_topic(&bs, "ledger", 2, &[]).await;
    let p = producer(&bs);
    for part in 0..2 {
        produce_varied(&p, "ledger", part, 0, 400).await;
    }
    let before = read_topic(&bs, "ledger", 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store_s = store.to_str().expect("utf8");
    backup(&bs, store_s, "ledger", "b1");
    for (i, point) in [
        "restore-record:1",
        "restore-record:350",
        "restore-checkpoint:3",
        "restore-before-mapping:1",
        "restore-after-mapping:1",
    ]
    .iter()
    .enumerate()
    {
        let target = format!("ledger-{i}");
        let restore = format!(
            "  topic_mapping:\n    ledger: {target}\n  create_topics: true\n  produce_batch_size: 50\n  max_concurrent_partitions: 1\n"
        );
        let cfg = config(
            dir.path(),
            &format!("c{i}.yaml"),
            &bs,
            store_s,
            "b1",
            "ledger",
            &restore,
        );
        let crashed = cli(
            &["restore", "--config", &cfg],
            &[("TIDEMARK_CRASH_AT", point)],
        );
        assert_ne!(
            crashed.code, 0,
            "{point}: the run must die\n{}",
            crashed.stderr
        );
        assert!(
            crashed.stderr.contains("TIDEMARK_CRASH_AT"),
            "{point}: {}",
            crashed.stderr
        );
        let resumed = cli(&["restore", "--config", &cfg, "-f", "json"], &[]);
        expect_code(&resumed, 0);
        let j = resumed.json();
        assert_eq!(j["records"], 800, "{point}: {j}");
        let after = read_topic(&bs, &target, 2);
        for part in 0..2 {
            let want = all_of(&before, "ledger", part);
            let got = all_of(&after, &target, part);
            assert_eq!(
                got.len(),
                want.len(),
                "{point}: partition {part} holds each record once"
            );
            for (g, w) in got.iter().zip(&want) {
                same_content(g, w, &[]);
            }
        }
    }
}

/// Reads the first record a group's consumer gets from `topic` (assign-only at the group's
/// committed offsets, as a restarted consumer would resume).
fn first_record_for_group(bs: &str, group: &str, topic: &str, partition: i32) -> Option<Record> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bs)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let committed = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed");
    c.assign(&committed).expect("assign");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                return Some(Record {
                    offset: m.offset(),
                    timestamp: tidemark::backup::format::TimestampType::split_kafka(m.timestamp())
                        .0,
                    timestamp_type: tidemark::backup::format::TimestampType::split_kafka(
                        m.timestamp(),
                    )
                    .1,
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers: Vec::new(),
                })
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return None,
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    panic!("no record and no end of partition within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_phase_restore_puts_each_group_on_the_record_it_had_not_read() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    fill_timed(
        &bs,
        "payments",
        2,
        200,
        |p, i| format!("p{p}-{i}"),
        |i| format!("amount {i}"),
    )
    .await;
    let a = admin(&bs).await;
    // Three groups: mid-way, at the start, and one that had read everything of partition 1.
    commit(&a, "billing", &commits("payments", &[120, 37])).await;
    commit(&a, "audit", &commits("payments", &[0, 0])).await;
    commit(&a, "late", &commits("payments", &[10, 200])).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store_s = store.to_str().expect("utf8");
    backup(&bs, store_s, "payments", "b1");

    // The disaster: the topic is gone, the groups' offsets point into nothing.
    delete_topic(&bs, "payments").await;
    // produce_batch_size 1: tansu's end offset is its last batch's base offset + 1, and phase
    // three clamps offsets to the end offset as Kafka's tool does; one record per batch keeps
    // tansu's end offset exact.
    let restore = "  create_topics: true\n  produce_batch_size: 1\n  consumer_group_strategy: header-based\n  consumer_groups: [billing, audit, late]\n";
    let cfg = config(
        dir.path(),
        "3p.yaml",
        &bs,
        store_s,
        "b1",
        "payments",
        restore,
    );
    let out = cli(
        &["three-phase-restore", "--config", &cfg, "-f", "json"],
        &[],
    );
    expect_code(&out, 0);
    let j = out.json();
    assert_eq!(j["consumer_groups"]["groups_translated"], 3, "{j}");
    assert_eq!(j["consumer_groups"]["reset"]["status"], "success", "{j}");
    for (group, part, want_key) in [
        ("billing", 0, Some("p0-120")),
        ("billing", 1, Some("p1-37")),
        ("audit", 0, Some("p0-0")),
        ("late", 0, Some("p0-10")),
        ("late", 1, None),
    ] {
        let first = first_record_for_group(&bs, group, "payments", part);
        assert_eq!(
            first.as_ref().and_then(|r| r.key.clone()),
            want_key.map(|k| k.as_bytes().to_vec()),
            "{group} partition {part}"
        );
    }

    // A PITR-truncated restore to a new topic: records 50..=149 of each partition. A group
    // before the window starts at its first record, inside it at its own record, past it at
    // the end.
    let restore = format!(
        "  time_window_start: {}\n  time_window_end: {}\n  topic_mapping:\n    payments: payments-pitr\n  create_topics: true\n  produce_batch_size: 1\n  consumer_group_strategy: header-based\n  reset_consumer_offsets: true\n  consumer_groups: [billing, audit, late]\n",
        BASE + 50_000,
        BASE + 149_000
    );
    let cfg = config(
        dir.path(),
        "pitr.yaml",
        &bs,
        store_s,
        "b1",
        "payments",
        &restore,
    );
    let out = cli(&["restore", "--config", &cfg, "-f", "json"], &[]);
    expect_code(&out, 0);
    for (group, part, want_key) in [
        ("billing", 0, Some("p0-120")),
        ("billing", 1, Some("p1-50")),
        ("audit", 0, Some("p0-50")),
        ("late", 0, Some("p0-50")),
        ("late", 1, None),
    ] {
        let first = first_record_for_group(&bs, group, "payments-pitr", part);
        assert_eq!(
            first.as_ref().and_then(|r| r.key.clone()),
            want_key.map(|k| k.as_bytes().to_vec()),
            "pitr: {group} partition {part}"
        );
    }
    let offsets = committed_map(&a, "billing").await;
    assert_eq!(offsets.get(&("payments-pitr".to_string(), 0)), Some(&70));
    assert_eq!(offsets.get(&("payments-pitr".to_string(), 1)), Some(&0));

    // Manual: the translation is reported, nothing committed.
    let restore = "  topic_mapping:\n    payments: payments-manual\n  create_topics: true\n  produce_batch_size: 1\n  consumer_group_strategy: manual\n  consumer_groups: [billing]\n";
    let cfg = config(
        dir.path(),
        "manual.yaml",
        &bs,
        store_s,
        "b1",
        "payments",
        restore,
    );
    let out = cli(&["restore", "--config", &cfg], &[]);
    expect_code(&out, 0);
    assert!(
        out.stdout
            .contains("--group billing --topic payments-manual:0 --reset-offsets --to-offset 120"),
        "{}",
        out.stdout
    );
    assert!(!committed_map(&a, "billing")
        .await
        .contains_key(&("payments-manual".to_string(), 0)));

    // offset-reset-bulk --backup-id: the captured offsets through the newest restore's mapping
    // (the manual one, into payments-manual), for the selected groups only.
    let bulk = cli(
        &[
            "offset-reset-bulk",
            "--path",
            store_s,
            "--backup-id",
            "b1",
            "--groups",
            "billing",
            "--bootstrap-servers",
            &bs,
            "--execute",
            "-f",
            "json",
        ],
        &[],
    );
    expect_code(&bulk, 0);
    assert_eq!(bulk.json()["total_groups"], 1, "{}", bulk.stdout);
    let offsets = committed_map(&a, "billing").await;
    assert_eq!(offsets.get(&("payments-manual".to_string(), 0)), Some(&120));
    assert_eq!(offsets.get(&("payments-manual".to_string(), 1)), Some(&37));
    assert!(committed_map(&a, "audit")
        .await
        .keys()
        .all(|(t, _)| t != "payments-manual"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_restore_configurations_name_the_problem_and_change_nothing() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_topic(&bs, "stock", 2, &[]).await;
    let p = producer(&bs);
    for part in 0..2 {
        produce_varied(&p, "stock", part, 0, 50).await;
    }
    create_topic(&bs, "small", 1, &[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store_s = store.to_str().expect("utf8");
    backup(&bs, store_s, "stock", "b1");
    let before = read_topic(&bs, "stock", 2);
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("missing backup", "b9".into(), "stock", "  create_topics: true\n"),
        ("unknown topic", "b1".into(), "nope-*", "  create_topics: true\n"),
        ("absent partition", "b1".into(), "stock", "  source_partitions: [7]\n"),
        ("empty window", "b1".into(), "stock", "  time_window_start: 1000\n  time_window_end: 2000\n"),
        ("non-empty target", "b1".into(), "stock", ""),
        ("missing target", "b1".into(), "stock", "  topic_mapping:\n    stock: stock-new\n"),
        ("too few partitions", "b1".into(), "stock", "  topic_mapping:\n    stock: small\n"),
        ("mapping of another topic", "b1".into(), "stock", "  topic_mapping:\n    other: x\n"),
        ("no captured offsets", "b1".into(), "stock", "  topic_mapping:\n    stock: stock-new\n  create_topics: true\n  produce_batch_size: 1\n  consumer_group_strategy: header-based\n  reset_consumer_offsets: true\n  offsets_snapshot_id: snap-missing\n"),
    ];
    let wants = [
        "backup 'b9' not found",
        "no topic of backup 'b1' matches",
        "source_partitions names partition 7",
        "no record is stamped within the time window 1000",
        "target partitions already hold records: stock-0 (50 records), stock-1 (50 records)",
        "target topic 'stock-new' does not exist",
        "target topic 'small' has 1 partitions; the restore writes to partition 1",
        "topic_mapping names 'other'",
        "snap-missing",
    ];
    for ((what, id, topics, restore), want) in cases.iter().zip(wants) {
        let cfg = config(dir.path(), "bad.yaml", &bs, store_s, id, topics, restore);
        let v = cli(&["validate-restore", "--config", &cfg, "-f", "json"], &[]);
        expect_code(&v, 2);
        let j = v.json();
        assert_eq!(j["status"], "invalid", "{what}: {j}");
        let problems = j["problems"].to_string();
        assert!(
            problems.contains(want),
            "{what}: want '{want}' in {problems}"
        );
        let text = cli(&["validate-restore", "--config", &cfg], &[]);
        assert!(text.stdout.contains("✗ INVALID"), "{what}: {}", text.stdout);
        let r = cli(&["restore", "--config", &cfg], &[]);
        assert_ne!(r.code, 0, "{what}: restore must refuse");
        assert!(r.stderr.contains(want), "{what}: {}", r.stderr);
    }
    // Nothing changed: the source is intact, no topic was created.
    assert_eq!(read_topic(&bs, "stock", 2), before);
    let topics = admin(&bs).await.list_topics().await.expect("topics");
    assert!(!topics.contains(&"stock-new".to_string()), "{topics:?}");
    // A malformed file names the option.
    let cfg = config(
        dir.path(),
        "typo.yaml",
        &bs,
        store_s,
        "b1",
        "stock",
        "  time_window_strat: 5\n",
    );
    let r = cli(&["restore", "--config", &cfg], &[]);
    expect_code(&r, 8);
    assert!(
        r.stderr.contains("unknown field `time_window_strat`") && r.stderr.contains("typo.yaml"),
        "{}",
        r.stderr
    );
    // The backup itself still reads back whole.
    let (_, recs) = read_backup(&store, "b1").await;
    assert_eq!(recs.values().map(Vec::len).sum::<usize>(), 100);
}

/// Rewrites backup `id` as a backup of a compacted topic would look: the records at offsets
/// `o % 3 == 1` are gone (gaps, recorded in the manifest), everything else byte for byte.
async fn compact_backup(store: &Path, id: &str) {
    use tidemark::backup::format::{Codec, SegmentWriter};
    use tidemark::backup::manifest::Manifest;
    let s = tidemark_tests::records::storage(store);
    let manifests = tidemark::backup::read::load_manifests(&s, id)
        .await
        .expect("manifests");
    for mut m in manifests {
        for td in m.topics.values_mut() {
            for pd in td.partition_data.values_mut() {
                pd.records = 0;
                pd.bytes = 0;
                pd.gaps = Default::default();
                let mut prev_end = pd.start_offset;
                for seg in &mut pd.segments {
                    let recs = tidemark::backup::read::read_segment(&s, seg)
                        .await
                        .expect("segment");
                    let mut w = SegmentWriter::new(Codec::Lz4);
                    for r in recs.iter().filter(|r| r.offset % 3 != 1) {
                        pd.gaps.add(prev_end, r.offset);
                        prev_end = r.offset + 1;
                        pd.records += 1;
                        pd.bytes += r.payload_bytes();
                        w.push_record(r).expect("push");
                    }
                    let (bytes, stats) = w.finish().expect("finish");
                    s.put(&seg.key, bytes.into()).await.expect("put");
                    seg.stats = stats;
                }
                pd.gaps.add(prev_end, pd.end_offset);
            }
        }
        m.compute_totals();
        let key = tidemark::backup::manifest::manifest_key(id, m.shard_index, m.shard_count);
        let json = serde_json::to_vec(&m).expect("json");
        Manifest::from_json(&json, &key).expect("still a manifest");
        s.put(&key, json.into()).await.expect("put manifest");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_gaps_translate_exactly_with_every_strategy() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    fill_timed(
        &bs,
        "accounts",
        1,
        90,
        |_, i| format!("acct-{i}"),
        |i| format!("balance {i}"),
    )
    .await;
    let a = admin(&bs).await;
    // 31 was compacted away: the group resumes at 32. 60 survives.
    commit(&a, "ledger", &commits("accounts", &[31])).await;
    commit(&a, "report", &commits("accounts", &[60])).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store_s = store.to_str().expect("utf8");
    backup(&bs, store_s, "accounts", "b1");
    compact_backup(&store, "b1").await;
    let verify = cli(&["verify-backup", "-p", store_s, "-b", "b1", "--deep"], &[]);
    expect_code(&verify, 0);

    for (i, strategy) in ["header-based", "cluster-scan", "timestamp-based"]
        .iter()
        .enumerate()
    {
        let target = format!("accounts-{i}");
        let restore = format!(
            "  topic_mapping:\n    accounts: {target}\n  create_topics: true\n  produce_batch_size: 1\n  include_original_offset_header: true\n  consumer_group_strategy: {strategy}\n  reset_consumer_offsets: true\n"
        );
        let cfg = config(
            dir.path(),
            &format!("{strategy}.yaml"),
            &bs,
            store_s,
            "b1",
            "accounts",
            &restore,
        );
        let out = cli(&["restore", "--config", &cfg, "-f", "json"], &[]);
        expect_code(&out, 0);
        let j = out.json();
        assert_eq!(j["records"], 60, "{strategy}: 2 of every 3 records: {j}");
        let offsets = committed_map(&a, "ledger").await;
        // Source 32 is the 22nd surviving record: target offset 21.
        assert_eq!(
            offsets.get(&(target.clone(), 0)),
            Some(&21),
            "{strategy}: {j}"
        );
        let first = first_record_for_group(&bs, "ledger", &target, 0).expect("a record");
        assert_eq!(first.key.as_deref(), Some(&b"acct-32"[..]), "{strategy}");
        let first = first_record_for_group(&bs, "report", &target, 0).expect("a record");
        assert_eq!(first.key.as_deref(), Some(&b"acct-60"[..]), "{strategy}");
        let m = cli(
            &[
                "show-offset-mapping",
                "-p",
                store_s,
                "-b",
                "b1",
                "-f",
                "json",
            ],
            &[],
        );
        expect_code(&m, 0);
        // runs: {0}, {2,3}, {5,6}, ... {86,87} (29 pairs), {89}
        assert_eq!(m.json()["partitions"][0]["runs"], 31, "{}", m.stdout);
    }
}

/// `show-offset-mapping --format table`: the plain layout, a table per topic whose rows are each
/// backed-up partition's first and last offset and record count, as the broker holds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_mapping_table_lists_each_partitions_backed_up_offsets() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_topic(&bs, "clicks", 2, &[]).await;
    create_topic(&bs, "users", 1, &[]).await;
    let p = producer(&bs);
    produce_varied(&p, "clicks", 0, 0, 30).await;
    produce_varied(&p, "clicks", 1, 0, 45).await;
    produce_varied(&p, "users", 0, 0, 12).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().to_str().expect("utf8");
    backup(&bs, store, "clicks,users", "plain");

    let out = cli(
        &[
            "show-offset-mapping",
            "-p",
            store,
            "-b",
            "plain",
            "-f",
            "table",
        ],
        &[],
    );
    expect_code(&out, 0);
    let mut lines = out.stdout.lines();
    assert_eq!(
        lines.next(),
        Some("Offset Mapping: plain"),
        "{}",
        out.stdout
    );
    // Per topic: the rows under its header, as (partition, first, last, count).
    let mut got: Vec<(String, Vec<i64>)> = Vec::new();
    let mut topic = None;
    for line in lines {
        if let Some(t) = line.strip_prefix("Topic: ") {
            topic = Some(t.to_string());
        } else if let (Some(t), Some(Ok(_))) = (
            &topic,
            line.split_whitespace().next().map(str::parse::<i64>),
        ) {
            let cells = line.split_whitespace().map(|c| c.parse().expect("number"));
            got.push((t.clone(), cells.collect()));
        }
    }
    let mut want = Vec::new();
    for (topic, partitions) in [("clicks", 2), ("users", 1)] {
        for ((t, partition), records) in read_topic(&bs, topic, partitions) {
            let first = records.first().expect("records").offset;
            let last = records.last().expect("records").offset;
            want.push((
                t,
                vec![i64::from(partition), first, last, records.len() as i64],
            ));
        }
    }
    assert_eq!(got, want, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("Partition  First Offset  Last Offset  Record Count"),
        "{}",
        out.stdout
    );
}

/// The debug log's `elapsed_ms` of the first line holding `phase` (colours removed).
fn phase_ms(stderr: &str, phase: &str) -> u64 {
    let mut plain = String::with_capacity(stderr.len());
    let mut escape = false;
    for c in stderr.chars() {
        match c {
            '\u{1b}' => escape = true,
            'm' if escape => escape = false,
            _ if escape => {}
            _ => plain.push(c),
        }
    }
    plain
        .lines()
        .find(|l| l.contains(phase))
        .and_then(|l| l.split("elapsed_ms=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no '{phase}' with elapsed_ms in the log:\n{stderr}"))
}

/// A broker whose reported end trails the restore's last batch (tansu reports the last batch's
/// base offset + 1) has each partition's end read back after the restore. The restore's own
/// records are all acknowledged by then, so the read waits on nothing: 24 partitions are
/// checked in well under a second (waiting 0.5 s for each end to settle, 8 at a time, took
/// over 2 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_check_reads_trailing_partitions_back_without_waiting() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_topic(&bs, "wide", 24, &[]).await;
    let p = producer(&bs);
    for part in 0..24 {
        produce_varied(&p, "wide", part, 0, 20).await;
    }
    let before = read_topic(&bs, "wide", 24);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store_s = store.to_str().expect("utf8");
    backup(&bs, store_s, "wide", "b1");
    let cfg = config(
        dir.path(),
        "r.yaml",
        &bs,
        store_s,
        "b1",
        "wide",
        "  create_topics: true\n  topic_mapping:\n    wide: wide-copy\n",
    );
    let out = cli(&["restore", "--config", &cfg, "-f", "json", "-vv"], &[]);
    expect_code(&out, 0);
    assert_eq!(out.json()["records"], 480, "{}", out.stdout);
    let after = read_topic(&bs, "wide-copy", 24);
    for part in 0..24 {
        let want = all_of(&before, "wide", part);
        let got = all_of(&after, "wide-copy", part);
        assert_eq!(got.len(), want.len(), "partition {part}");
        for (g, w) in got.iter().zip(&want) {
            same_content(g, w, &[]);
        }
    }
    let check =
        phase_ms(&out.stderr, "lane ends checked") - phase_ms(&out.stderr, "producer flushed");
    assert!(
        check < 1000,
        "the end check of 24 partitions took {check} ms\n{}",
        out.stderr
    );
}

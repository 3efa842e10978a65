//! End-to-end tests of `tidemark offset-reset` and `offset-reset-bulk` against a real
//! Kafka-protocol broker (tansu) on loopback, through the real CLI binary. Every test reads the
//! committed offsets back from the broker and compares them with what Kafka's rules give.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, SecondsFormat, TimeZone, Utc};
use tidemark_tests::{
    commit, commits, committed_map, connect_admin as admin, create_and_fill, run_cli,
    topic_offsets, wait_for_state, CliOutput, LiveConsumer, Tansu,
};

const BIN: &str = env!("CARGO_BIN_EXE_tidemark-under-test");

fn cli(args: &[&str]) -> CliOutput {
    run_cli(BIN, args, &[])
}

/// `offset-reset <verb> --bootstrap-servers BS <args>`.
fn reset(verb: &str, bs: &str, args: &[&str]) -> CliOutput {
    let mut all = vec!["offset-reset", verb, "--bootstrap-servers", bs];
    all.extend_from_slice(args);
    cli(&all)
}

fn expect_code(out: &CliOutput, code: i32) {
    assert_eq!(
        out.code, code,
        "exit code\nstdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
}

/// Writes `n` records to `topic`:`partition` stamped `first_ms`, `first_ms + step_ms`, ...,
/// ending with a single-record batch so the broker's high watermark is exact.
async fn produce_stamped(
    bs: &str,
    topic: &str,
    partition: i32,
    n: i64,
    first_ms: i64,
    step_ms: i64,
) {
    use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bs)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for i in 0..n {
        let payload = format!("{topic}-{partition}-{i}");
        if i == n - 1 {
            producer.flush(Duration::from_secs(10)).expect("flush");
        }
        producer
            .send(
                FutureRecord::to(topic)
                    .partition(partition)
                    .key(&payload)
                    .payload(&payload)
                    .timestamp(first_ms + i * step_ms),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kafka_spec_lands_exactly_where_kafka_puts_it() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_and_fill(&bs, "orders", 3, 30).await;
    let admin = admin(&bs).await;
    let store = tempfile::tempdir().expect("tempdir");
    let path = store.path().to_str().expect("utf8");

    // (args, expected offsets of orders-0..2 after executing from committed [5, 10, 15])
    let table: Vec<(Vec<&str>, Vec<i64>)> = vec![
        (vec!["--to-earliest"], vec![0, 0, 0]),
        (vec!["--to-latest"], vec![30, 30, 30]),
        (vec!["--to-current"], vec![5, 10, 15]),
        (vec!["--to-offset", "12"], vec![12, 12, 12]),
        (vec!["--shift-by", "3"], vec![8, 13, 18]),
        (vec!["--shift-by", "-7"], vec![0, 3, 8]),
    ];
    for (i, (spec, want)) in table.iter().enumerate() {
        let group = format!("spec-{i}");
        commit(&admin, &group, &commits("orders", &[5, 10, 15])).await;
        let mut args = vec![
            "--groups",
            &group,
            "--topic",
            "orders",
            "--execute",
            "--path",
            path,
        ];
        args.extend_from_slice(spec);
        let out = reset("execute", &bs, &args);
        expect_code(&out, 0);
        let got = committed_map(&admin, &group).await;
        assert_eq!(
            &topic_offsets(&got, "orders"),
            want,
            "{spec:?}\n{}",
            out.stdout
        );
    }

    // --to-current on a partition the group never committed: the log end.
    commit(&admin, "partial", &commits("orders", &[4])).await;
    let out = reset(
        "execute",
        &bs,
        &[
            "-g",
            "partial",
            "--topic",
            "orders",
            "--to-current",
            "--execute",
            "--no-snapshot",
        ],
    );
    expect_code(&out, 0);
    assert_eq!(
        topic_offsets(&committed_map(&admin, "partial").await, "orders"),
        vec![4, 30, 30]
    );

    // --topic t:p narrows to those partitions; the others keep their offsets.
    commit(&admin, "narrow", &commits("orders", &[5, 10, 15])).await;
    let out = reset(
        "execute",
        &bs,
        &[
            "-g",
            "narrow",
            "--topic",
            "orders:0,2",
            "--to-offset",
            "1",
            "--execute",
            "--no-snapshot",
        ],
    );
    expect_code(&out, 0);
    assert_eq!(
        topic_offsets(&committed_map(&admin, "narrow").await, "orders"),
        vec![1, 10, 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_specs_find_the_first_record_at_or_after_the_time() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    // events-0: 40 records one minute apart starting 60 minutes ago; events-1 stays empty.
    create_and_fill(&bs, "events", 2, 0).await;
    let base = Utc::now().timestamp_millis() - 60 * 60_000;
    produce_stamped(&bs, "events", 0, 40, base, 60_000).await;
    let admin = admin(&bs).await;
    let group = "timed";
    let set = |offs: [i64; 2]| {
        let admin = admin.clone();
        async move { commit(&admin, group, &commits("events", &offs)).await }
    };

    // To the millisecond, in another zone: record 7 is stamped base + 7 min exactly.
    let at7: DateTime<FixedOffset> = FixedOffset::east_opt(3600)
        .expect("zone")
        .timestamp_millis_opt(base + 7 * 60_000)
        .single()
        .expect("time");
    let text = at7.to_rfc3339_opts(SecondsFormat::Millis, false);
    assert!(text.ends_with("+01:00"), "{text}");
    for (when, want) in [
        (text.clone(), 7),
        (
            // One millisecond later: the next record.
            (at7 + chrono::Duration::milliseconds(1)).to_rfc3339_opts(SecondsFormat::Millis, false),
            8,
        ),
    ] {
        set([39, 0]).await;
        let out = reset(
            "execute",
            &bs,
            &[
                "-g",
                group,
                "--topic",
                "events",
                "--to-datetime",
                &when,
                "--execute",
                "--no-snapshot",
            ],
        );
        expect_code(&out, 0);
        let got = topic_offsets(&committed_map(&admin, group).await, "events");
        assert_eq!(got, vec![want, 0], "{when}\n{}", out.stdout);
        // events-1 is empty: Kafka's notice, and the log end (0).
        assert!(
            out.stdout.contains(
                "Partition 1 from topic events is empty. Falling back to latest known offset."
            ),
            "{}",
            out.stdout
        );
    }

    // Without a zone the time is UTC.
    let utc = Utc
        .timestamp_millis_opt(base + 20 * 60_000)
        .single()
        .expect("time")
        .format("%Y-%m-%dT%H:%M:%S%.3f")
        .to_string();
    set([0, 0]).await;
    let out = reset(
        "execute",
        &bs,
        &[
            "-g",
            group,
            "--topic",
            "events:0",
            "--to-datetime",
            &utc,
            "--execute",
            "--no-snapshot",
        ],
    );
    expect_code(&out, 0);
    assert_eq!(
        topic_offsets(&committed_map(&admin, group).await, "events")[0],
        20
    );

    // --by-duration PT30M: now - 30 min lies between records 30 and 31 (the clock moved on
    // since `base` was taken, by well under a minute).
    set([0, 0]).await;
    let out = reset(
        "execute",
        &bs,
        &[
            "-g",
            group,
            "--topic",
            "events:0",
            "--by-duration",
            "PT30M",
            "--execute",
            "--no-snapshot",
        ],
    );
    expect_code(&out, 0);
    assert_eq!(
        topic_offsets(&committed_map(&admin, group).await, "events")[0],
        31,
        "{}",
        out.stdout
    );

    // After every record: the log end, with Kafka's notice.
    set([3, 0]).await;
    let out = reset(
        "execute",
        &bs,
        &[
            "-g",
            group,
            "--topic",
            "events:0",
            "--to-datetime",
            "2099-01-01T00:00:00.000Z",
            "--execute",
            "--no-snapshot",
        ],
    );
    expect_code(&out, 0);
    assert_eq!(
        topic_offsets(&committed_map(&admin, group).await, "events")[0],
        40
    );
    assert!(
        out.stdout.contains(
            "Partition 0 from topic events is empty. Falling back to latest known offset."
        ),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_targets_are_clamped_with_kafkas_warnings() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_and_fill(&bs, "orders", 2, 10).await;
    let admin = admin(&bs).await;
    commit(&admin, "high", &commits("orders", &[2, 3])).await;
    let out = reset(
        "execute",
        &bs,
        &[
            "-g",
            "high",
            "--topic",
            "orders",
            "--to-offset",
            "500",
            "--execute",
            "--no-snapshot",
        ],
    );
    expect_code(&out, 0);
    assert_eq!(
        topic_offsets(&committed_map(&admin, "high").await, "orders"),
        vec![10, 10]
    );
    assert!(
        out.stdout.contains("New offset (500) is higher than latest offset for topic partition orders-0. Value will be set to 10."),
        "{}",
        out.stdout
    );

    commit(&admin, "low", &commits("orders", &[2, 3])).await;
    let out = reset(
        "execute",
        &bs,
        &[
            "-g",
            "low",
            "--topic",
            "orders",
            "--shift-by",
            "-5",
            "--execute",
            "--no-snapshot",
        ],
    );
    expect_code(&out, 0);
    assert_eq!(
        topic_offsets(&committed_map(&admin, "low").await, "orders"),
        vec![0, 0]
    );
    assert!(
        out.stdout.contains("New offset (-2) is lower than earliest offset for topic partition orders-1. Value will be set to 0."),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_groups_are_refused_while_the_others_are_reset() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_and_fill(&bs, "orders", 2, 10).await;
    let admin = admin(&bs).await;
    commit(&admin, "live-group", &commits("orders", &[4, 4])).await;
    commit(&admin, "idle-group", &commits("orders", &[4, 4])).await;
    let _consumer = LiveConsumer::start(&bs, "live-group", &["orders"]);
    wait_for_state(&admin, "live-group", true).await;
    let store = tempfile::tempdir().expect("tempdir");
    let path = store.path().to_str().expect("utf8");

    let out = cli(&[
        "offset-reset-bulk",
        "--bootstrap-servers",
        &bs,
        "--groups",
        "live-group,idle-group",
        "--all-topics",
        "--to-earliest",
        "--execute",
        "--path",
        path,
        "--format",
        "json",
    ]);
    expect_code(&out, 10);
    let report = out.json();
    assert_eq!(report["status"], "partial_success");
    assert_eq!(report["successful_groups"], 1);
    assert_eq!(report["failed_groups"], 1);
    let live = report["group_outcomes"]
        .as_array()
        .expect("outcomes")
        .iter()
        .find(|o| o["group"] == "live-group")
        .expect("live-group outcome");
    let msg = live["error"].as_str().expect("error");
    assert!(
        msg.starts_with("Assignments can only be reset if the group 'live-group' is inactive, but the current state is"),
        "{msg}"
    );
    assert!(
        report["rollback_command"]
            .as_str()
            .expect("rollback command")
            .contains("offset-rollback rollback"),
        "{report}"
    );
    assert_eq!(
        topic_offsets(&committed_map(&admin, "live-group").await, "orders"),
        vec![4, 4]
    );
    assert_eq!(
        topic_offsets(&committed_map(&admin, "idle-group").await, "orders"),
        vec![0, 0]
    );
    // The safety snapshot holds only the group that was changed.
    let snap: serde_json::Value = serde_json::from_slice(
        &std::fs::read(store.path().join("snapshots").join(format!(
            "{}.json",
            report["snapshot_id"].as_str().expect("snapshot id")
        )))
        .expect("snapshot file"),
    )
    .expect("snapshot json");
    let groups: Vec<&String> = snap["groups"].as_object().expect("groups").keys().collect();
    assert_eq!(groups, vec!["idle-group"]);

    // Text output names the refused group and prints the way back.
    commit(&admin, "idle-group", &commits("orders", &[4, 4])).await;
    let out = cli(&[
        "offset-reset-bulk",
        "--bootstrap-servers",
        &bs,
        "-g",
        "live-group,idle-group",
        "--all-topics",
        "--to-earliest",
        "--execute",
        "--path",
        path,
    ]);
    expect_code(&out, 10);
    assert!(out.stdout.contains("PARTIAL_SUCCESS"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("live-group: Assignments can only be reset"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("tidemark offset-rollback rollback --path"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_and_plans_change_nothing() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_and_fill(&bs, "orders", 3, 10).await;
    let admin = admin(&bs).await;
    commit(&admin, "g", &commits("orders", &[5, 6, 7])).await;
    let before = committed_map(&admin, "g").await;

    let plan = reset("plan", &bs, &["-g", "g", "--all-topics", "--to-earliest"]);
    expect_code(&plan, 0);
    for row in [
        "orders          0             5             0  REWIND (-5)",
        "Total partitions to reset: 3",
        "Dry run: nothing was changed.",
    ] {
        assert!(
            plan.stdout.contains(row),
            "missing {row:?} in\n{}",
            plan.stdout
        );
    }
    let dry = reset(
        "execute",
        &bs,
        &["-g", "g", "--all-topics", "--to-latest", "--dry-run"],
    );
    expect_code(&dry, 0);
    for want in ["Status: DRY RUN", "Dry run: nothing was changed"] {
        assert!(dry.stdout.contains(want), "{want}: {}", dry.stdout);
    }
    assert!(!dry.stdout.contains("SUCCESS"), "{}", dry.stdout);
    let bulk = cli(&[
        "offset-reset-bulk",
        "--bootstrap-servers",
        &bs,
        "-g",
        "g",
        "--all-topics",
        "--to-offset",
        "1",
        "--dry-run",
        "--format",
        "json",
    ]);
    expect_code(&bulk, 0);
    assert_eq!(bulk.json()["status"], "dry_run");
    assert_eq!(bulk.json()["dry_run"], true);
    assert_eq!(bulk.json()["partitions_planned"], 3);
    assert_eq!(bulk.json()["total_offsets_reset"], 0);
    let plan_json = reset(
        "plan",
        &bs,
        &["-g", "g", "--all-topics", "--to-earliest", "-f", "json"],
    );
    expect_code(&plan_json, 0);
    assert_eq!(
        plan_json.json()["status"],
        "dry_run",
        "{}",
        plan_json.stdout
    );
    assert_eq!(committed_map(&admin, "g").await, before, "nothing changed");
}

/// `offset-reset execute` and `offset-reset-bulk` change offsets without `--execute` (which
/// is still accepted), after a safety snapshot that puts the group back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_and_bulk_change_offsets_by_default() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_and_fill(&bs, "orders", 3, 10).await;
    let admin = admin(&bs).await;
    commit(&admin, "g", &commits("orders", &[5, 6, 7])).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_str().expect("utf8");

    // Without --path (and without --dry-run or --no-snapshot) there is nowhere to keep the
    // safety snapshot: refused, nothing changed.
    let out = reset(
        "execute",
        &bs,
        &["-g", "g", "--all-topics", "--to-offset", "1"],
    );
    expect_code(&out, 2);
    assert!(
        out.stderr.contains("pass --path (or --no-snapshot"),
        "{}",
        out.stderr
    );
    assert_eq!(
        topic_offsets(&committed_map(&admin, "g").await, "orders"),
        vec![5, 6, 7]
    );

    let out = reset(
        "execute",
        &bs,
        &[
            "-g",
            "g",
            "--all-topics",
            "--to-offset",
            "1",
            "-p",
            path,
            "-s",
            "before-1",
        ],
    );
    expect_code(&out, 0);
    assert!(out.stdout.contains("Status: SUCCESS"), "{}", out.stdout);
    assert_eq!(
        topic_offsets(&committed_map(&admin, "g").await, "orders"),
        vec![1, 1, 1]
    );

    let bulk = cli(&[
        "offset-reset-bulk",
        "--bootstrap-servers",
        &bs,
        "-g",
        "g",
        "--all-topics",
        "--to-offset",
        "2",
        "-p",
        path,
        "-f",
        "json",
    ]);
    expect_code(&bulk, 0);
    assert_eq!(bulk.json()["status"], "success", "{}", bulk.stdout);
    assert_eq!(bulk.json()["dry_run"], false);
    assert_eq!(bulk.json()["total_offsets_reset"], 3);
    assert_eq!(
        topic_offsets(&committed_map(&admin, "g").await, "orders"),
        vec![2, 2, 2]
    );

    // --execute is accepted and means the same.
    let out = reset(
        "execute",
        &bs,
        &[
            "-g",
            "g",
            "--all-topics",
            "--to-offset",
            "3",
            "-p",
            path,
            "--execute",
        ],
    );
    expect_code(&out, 0);
    assert_eq!(
        topic_offsets(&committed_map(&admin, "g").await, "orders"),
        vec![3, 3, 3]
    );

    // The first reset's safety snapshot holds the offsets before it.
    let out = cli(&[
        "offset-rollback",
        "rollback",
        "-p",
        path,
        "-s",
        "before-1",
        "--bootstrap-servers",
        &bs,
    ]);
    expect_code(&out, 0);
    assert_eq!(
        topic_offsets(&committed_map(&admin, "g").await, "orders"),
        vec![5, 6, 7]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_plans_and_snapshots_drive_resets() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_and_fill(&bs, "orders", 3, 20).await;
    create_and_fill(&bs, "payments", 2, 20).await;
    let admin = admin(&bs).await;
    commit(&admin, "a", &commits("orders", &[10, 11, 12])).await;
    commit(&admin, "b", &commits("payments", &[13, 14])).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_str().expect("utf8");
    let csv = dir.path().join("plan.csv");
    let csv_s = csv.to_str().expect("utf8");

    // Plan a shift for both groups and export it; nothing changes yet.
    let plan = reset(
        "plan",
        &bs,
        &[
            "-g",
            "a,b",
            "--all-topics",
            "--shift-by",
            "-4",
            "--export",
            csv_s,
        ],
    );
    expect_code(&plan, 0);
    let text = std::fs::read_to_string(&csv).expect("csv");
    assert_eq!(
        text,
        "a,orders,0,6\na,orders,1,7\na,orders,2,8\nb,payments,0,9\nb,payments,1,10\n"
    );
    assert_eq!(
        topic_offsets(&committed_map(&admin, "a").await, "orders"),
        vec![10, 11, 12]
    );

    // Execute the exported plan; the groups come from the file.
    let out = reset(
        "execute",
        &bs,
        &[
            "--from-file",
            csv_s,
            "--execute",
            "--path",
            path,
            "--format",
            "json",
        ],
    );
    expect_code(&out, 0);
    let report = out.json();
    assert_eq!(report["total_offsets_reset"], 5);
    let snapshot_id = report["snapshot_id"]
        .as_str()
        .expect("snapshot id")
        .to_string();
    assert_eq!(
        topic_offsets(&committed_map(&admin, "a").await, "orders"),
        vec![6, 7, 8]
    );
    assert_eq!(
        topic_offsets(&committed_map(&admin, "b").await, "payments"),
        vec![9, 10]
    );

    // The safety snapshot undoes it exactly, through the rollback toolkit...
    let rb = cli(&[
        "offset-rollback",
        "rollback",
        "--path",
        path,
        "--snapshot-id",
        &snapshot_id,
        "--bootstrap-servers",
        &bs,
    ]);
    expect_code(&rb, 0);
    assert_eq!(
        topic_offsets(&committed_map(&admin, "a").await, "orders"),
        vec![10, 11, 12]
    );
    assert_eq!(
        topic_offsets(&committed_map(&admin, "b").await, "payments"),
        vec![13, 14]
    );

    // ... and --from-snapshot can move groups to a snapshot through the reset machinery.
    commit(&admin, "a", &commits("orders", &[0, 0, 0])).await;
    let out = reset(
        "execute",
        &bs,
        &[
            "-g",
            "a",
            "--from-snapshot",
            &snapshot_id,
            "--path",
            path,
            "--execute",
            "--format",
            "json",
        ],
    );
    expect_code(&out, 0);
    assert_eq!(
        topic_offsets(&committed_map(&admin, "a").await, "orders"),
        vec![10, 11, 12]
    );
    // Its own safety snapshot holds exactly the partitions it changed, at their old offsets.
    let second = out.json()["snapshot_id"].as_str().expect("id").to_string();
    let show = cli(&[
        "offset-rollback",
        "show",
        "--path",
        path,
        "--snapshot-id",
        &second,
        "--format",
        "json",
    ]);
    expect_code(&show, 0);
    let groups = &show.json()["groups"];
    assert_eq!(groups.as_object().map(|g| g.len()), Some(1), "{groups}");
    let a = &groups["a"]["topics"]["orders"];
    for p in ["0", "1", "2"] {
        assert_eq!(a[p]["offset"], 0, "{a}");
    }

    // Single-group three-column CSV (Kafka's own single-group export).
    std::fs::write(&csv, "orders,0,3\norders,2,4\n").expect("write csv");
    let out = reset(
        "execute",
        &bs,
        &[
            "-g",
            "a",
            "--from-file",
            csv_s,
            "--execute",
            "--no-snapshot",
        ],
    );
    expect_code(&out, 0);
    assert_eq!(
        topic_offsets(&committed_map(&admin, "a").await, "orders"),
        vec![3, 11, 4]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_error_that_changes_nothing() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_and_fill(&bs, "orders", 2, 10).await;
    let admin = admin(&bs).await;
    commit(&admin, "g", &commits("orders", &[5, 6])).await;
    let before = committed_map(&admin, "g").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_str().expect("utf8");
    let csv = dir.path().join("bad.csv");
    std::fs::write(&csv, "g,orders,0,1\ng,orders,1,2\ng,orders,one,3\n").expect("csv");
    let csv_s = csv.to_str().expect("utf8");
    let unknown_csv = dir.path().join("unknown.csv");
    std::fs::write(&unknown_csv, "g,orders,0,1\ng,orders,7,2\n").expect("csv");
    let unknown_csv_s = unknown_csv.to_str().expect("utf8");

    // (args, exit code, text expected on stderr)
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec![
                "-g",
                "g",
                "--topic",
                "orders",
                "--to-earliest",
                "--to-latest",
                "--execute",
                "--path",
                path,
            ],
            2,
            "cannot be used with",
        ),
        (
            vec![
                "-g",
                "g",
                "--topic",
                "orders",
                "--to-datetime",
                "2024-13-01T10:00:00.000",
                "--execute",
                "--path",
                path,
            ],
            2,
            "--to-datetime",
        ),
        (
            vec![
                "-g",
                "g",
                "--topic",
                "orders",
                "--to-datetime",
                "yesterday",
                "--execute",
                "--path",
                path,
            ],
            2,
            "'yesterday'",
        ),
        (
            vec![
                "-g",
                "g",
                "--topic",
                "orders",
                "--by-duration",
                "1 hour",
                "--execute",
                "--path",
                path,
            ],
            2,
            "--by-duration",
        ),
        (
            vec![
                "-g",
                "g",
                "--topic",
                "nope",
                "--to-earliest",
                "--execute",
                "--path",
                path,
            ],
            2,
            "topic 'nope' does not exist",
        ),
        (
            vec![
                "-g",
                "g",
                "--topic",
                "orders:5",
                "--to-earliest",
                "--execute",
                "--path",
                path,
            ],
            2,
            "partition 5 does not exist",
        ),
        (
            vec![
                "-g",
                "g",
                "--topic",
                "orders:x",
                "--to-earliest",
                "--execute",
                "--path",
                path,
            ],
            2,
            "Invalid partition 'x'",
        ),
        (
            vec!["--from-file", csv_s, "--execute", "--path", path],
            8,
            "line 3",
        ),
        (
            vec!["--from-file", unknown_csv_s, "--execute", "--path", path],
            2,
            "orders-7, which does not exist",
        ),
        (
            vec!["-g", "g", "--to-earliest", "--execute", "--path", path],
            2,
            "One of the reset scopes should be defined",
        ),
        (
            vec!["-g", "g", "--topic", "orders", "--to-earliest", "--execute"],
            2,
            "pass --path (or --no-snapshot",
        ),
        (
            vec![
                "-g",
                "g",
                "--from-snapshot",
                "missing",
                "--execute",
                "--path",
                path,
            ],
            3,
            "snapshot 'missing' not found",
        ),
        (
            vec!["-g", "g", "--backup-id", "b1", "--path", path],
            3,
            "backup 'b1' not found",
        ),
    ];
    for (args, code, text) in &cases {
        let out = reset("execute", &bs, args);
        assert_eq!(
            out.code, *code,
            "{args:?}\nstdout:\n{}\nstderr:\n{}",
            out.stdout, out.stderr
        );
        assert!(
            out.stderr.contains(text),
            "{args:?}: expected {text:?} in\n{}",
            out.stderr
        );
        assert_eq!(
            committed_map(&admin, "g").await,
            before,
            "{args:?} changed offsets"
        );
    }
    // The misspelt topic was not created by looking it up.
    assert!(!admin
        .list_topics()
        .await
        .expect("topics")
        .contains(&"nope".to_string()));
    // shift-by on a partition without a committed offset refuses that group only.
    commit(&admin, "half", &commits("orders", &[5])).await;
    let out = reset(
        "execute",
        &bs,
        &[
            "-g",
            "g,half",
            "--topic",
            "orders",
            "--shift-by",
            "1",
            "--execute",
            "--no-snapshot",
        ],
    );
    expect_code(&out, 10);
    assert!(
        out.stdout.contains(
            "Cannot shift offset for partition orders-1 since there is no current committed offset"
        ),
        "{}",
        out.stdout
    );
    assert_eq!(
        topic_offsets(&committed_map(&admin, "half").await, "orders"),
        vec![5]
    );
    assert_eq!(
        topic_offsets(&committed_map(&admin, "g").await, "orders"),
        vec![6, 7]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_script_holds_one_kafka_command_per_changed_partition() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_and_fill(&bs, "orders", 3, 10).await;
    let admin = admin(&bs).await;
    commit(&admin, "g", &commits("orders", &[5, 6, 7])).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("reset.sh");
    let out = reset(
        "script",
        &bs,
        &[
            "-g",
            "g",
            "--topic",
            "orders",
            "--to-offset",
            "6",
            "-o",
            script.to_str().expect("utf8"),
        ],
    );
    expect_code(&out, 0);
    assert!(out.stdout.contains("2 commands"), "{}", out.stdout);
    // A stand-in kafka-consumer-groups.sh records its arguments.
    let log = dir.path().join("calls.log");
    let tool = dir.path().join("kcg.sh");
    std::fs::write(
        &tool,
        format!("#!/usr/bin/env bash\necho \"$*\" >> {}\n", log.display()),
    )
    .expect("tool");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let run = std::process::Command::new("bash")
        .arg(&script)
        .env("KAFKA_CONSUMER_GROUPS", &tool)
        .output()
        .expect("run script");
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        run.status.success(),
        "{}\n{}\n{calls}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(lines.len(), 2, "{calls}");
    assert!(
        lines[0].contains("--group g --topic orders:0 --reset-offsets --to-offset 6 --execute"),
        "{calls}"
    );
    assert!(
        lines[1].contains("--topic orders:2 --reset-offsets --to-offset 6"),
        "{calls}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l.contains(&format!("--bootstrap-server {bs}"))),
        "{calls}"
    );
    // Writing the script changed nothing.
    assert_eq!(
        topic_offsets(&committed_map(&admin, "g").await, "orders"),
        vec![5, 6, 7]
    );
}

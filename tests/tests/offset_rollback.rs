//! End-to-end tests of `tidemark offset-rollback` and `tidemark offsets` against a real
//! Kafka-protocol broker (tansu) on loopback, through the real CLI binary.

use std::time::{Duration, Instant};

use tidemark::kafka::{CommittedOffset, GroupAdmin, KafkaConfig};
use tidemark_tests::{
    commit, commits, committed_map, connect_admin as admin, create_and_fill, run_cli,
    wait_for_state, CliOutput, LiveConsumer, Tansu,
};

const BIN: &str = env!("CARGO_BIN_EXE_tidemark-under-test");

fn cli(args: &[&str]) -> CliOutput {
    run_cli(BIN, args, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_change_rollback_verify() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    let store = tempfile::tempdir().expect("tempdir");
    let path = store.path().to_str().expect("utf8 path");
    create_and_fill(&bs, "orders", 3, 20).await;
    create_and_fill(&bs, "payments", 2, 10).await;
    let admin = admin(&bs).await;
    commit(&admin, "order-processor", &commits("orders", &[5, 7, 9])).await;
    commit(&admin, "payment-handler", &commits("payments", &[3, 4])).await;
    let before_op = committed_map(&admin, "order-processor").await;

    let snap = cli(&[
        "offset-rollback",
        "snapshot",
        "--path",
        path,
        "--groups",
        "order-processor,payment-handler",
        "--bootstrap-servers",
        &bs,
        "--description",
        "before the bad deploy",
        "--format",
        "json",
    ]);
    assert_eq!(snap.code, 0, "{snap:?}");
    let doc = snap.json();
    let id = doc["snapshot_id"]
        .as_str()
        .expect("snapshot_id")
        .to_string();
    assert!(id.starts_with("snap-"), "{id}");
    assert_eq!(doc["groups"], 2);
    assert_eq!(doc["offsets"], 5);

    // The stored document has the documented shape, metadata included.
    let stored: serde_json::Value = serde_json::from_slice(
        &std::fs::read(store.path().join("snapshots").join(format!("{id}.json")))
            .expect("read stored"),
    )
    .expect("stored json");
    assert_eq!(stored["snapshotId"], id.as_str());
    assert_eq!(stored["cluster"], bs.as_str());
    assert_eq!(stored["description"], "before the bad deploy");
    assert_eq!(
        stored["groups"]["order-processor"]["topics"]["orders"]["2"]["offset"],
        9
    );
    // Commit metadata is stored as read; tansu never returns it (Kafka does), so it is "" here.
    assert!(stored["groups"]["order-processor"]["topics"]["orders"]["1"]["metadata"].is_string());

    // A botched reset moves both groups.
    commit(&admin, "order-processor", &commits("orders", &[0, 0, 20])).await;
    commit(&admin, "payment-handler", &commits("payments", &[10, 10])).await;

    let verify = cli(&[
        "offset-rollback",
        "verify",
        "-p",
        path,
        "-s",
        &id,
        "--bootstrap-servers",
        &bs,
    ]);
    assert_eq!(
        verify.code, 11,
        "verify must fail before rollback: {verify:?}"
    );

    let rb = cli(&[
        "offset-rollback",
        "rollback",
        "-p",
        path,
        "-s",
        &id,
        "--bootstrap-servers",
        &bs,
        "--verify",
        "-f",
        "json",
    ]);
    assert_eq!(rb.code, 0, "{rb:?}");
    let report = rb.json();
    assert_eq!(report["status"], "success");
    assert_eq!(report["groups_rolled_back"], 2);
    assert_eq!(report["offsets_restored"], 5);
    assert_eq!(report["verification"]["matched"], true);
    assert_eq!(committed_map(&admin, "order-processor").await, before_op);

    let verify = cli(&[
        "offset-rollback",
        "verify",
        "-p",
        path,
        "-s",
        &id,
        "--bootstrap-servers",
        &bs,
    ]);
    assert_eq!(verify.code, 0, "{verify:?}");
    assert!(
        verify
            .stdout
            .contains("✓ VERIFIED - All offsets match snapshot"),
        "{}",
        verify.stdout
    );

    // Text report of rollback in the boxed style.
    let rb_text = cli(&[
        "offset-rollback",
        "rollback",
        "-p",
        path,
        "-s",
        &id,
        "--bootstrap-servers",
        &bs,
    ]);
    assert_eq!(rb_text.code, 0, "{rb_text:?}");
    assert!(rb_text.stdout.contains("ROLLBACK RESULT"));
    assert!(rb_text.stdout.contains("Status: ✓ SUCCESS"));
    assert!(rb_text.stdout.contains("Groups Rolled Back: 2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_each_changed_partition_and_strict_mode() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    let store = tempfile::tempdir().expect("tempdir");
    let path = store.path().to_str().expect("utf8 path");
    create_and_fill(&bs, "events", 4, 5).await;
    create_and_fill(&bs, "extra", 1, 5).await;
    let admin = admin(&bs).await;
    commit(&admin, "g1", &commits("events", &[1, 2, 3, 4])).await;
    let snap = cli(&[
        "offset-rollback",
        "snapshot",
        "-p",
        path,
        "-g",
        "g1",
        "--bootstrap-servers",
        &bs,
        "-s",
        "before-change",
    ]);
    assert_eq!(snap.code, 0, "{snap:?}");
    assert!(
        snap.stdout.contains("Snapshot ID: before-change"),
        "{}",
        snap.stdout
    );

    // One partition moves.
    commit(
        &admin,
        "g1",
        &[CommittedOffset {
            topic: "events".into(),
            partition: 2,
            offset: 5,
            metadata: String::new(),
        }],
    )
    .await;
    let v = cli(&[
        "offset-rollback",
        "verify",
        "-p",
        path,
        "-s",
        "before-change",
        "--bootstrap-servers",
        &bs,
        "-f",
        "json",
    ]);
    assert_eq!(v.code, 11, "{v:?}");
    let doc = v.json();
    assert_eq!(doc["matched"], false);
    assert_eq!(
        doc["differences"],
        serde_json::json!([{ "group": "g1", "topic": "events", "partition": 2, "expected": 3, "actual": 5 }])
    );
    let text = cli(&[
        "offset-rollback",
        "verify",
        "-p",
        path,
        "-s",
        "before-change",
        "--bootstrap-servers",
        &bs,
    ]);
    assert_eq!(text.code, 11);
    assert!(
        text.stdout.contains("MISMATCH - 1 partition differ"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["g1", "events", "2", "3", "5"]),
        "{}",
        text.stdout
    );

    // Restore it, then commit a partition the snapshot never had: only --strict fails.
    commit(
        &admin,
        "g1",
        &[CommittedOffset {
            topic: "events".into(),
            partition: 2,
            offset: 3,
            metadata: "m2".into(),
        }],
    )
    .await;
    commit(
        &admin,
        "g1",
        &[CommittedOffset {
            topic: "extra".into(),
            partition: 0,
            offset: 2,
            metadata: String::new(),
        }],
    )
    .await;
    let lax = cli(&[
        "offset-rollback",
        "verify",
        "-p",
        path,
        "-s",
        "before-change",
        "--bootstrap-servers",
        &bs,
    ]);
    assert_eq!(lax.code, 0, "{lax:?}");
    let strict = cli(&[
        "offset-rollback",
        "verify",
        "-p",
        path,
        "-s",
        "before-change",
        "--bootstrap-servers",
        &bs,
        "--strict",
        "-f",
        "json",
    ]);
    assert_eq!(strict.code, 11, "{strict:?}");
    assert_eq!(
        strict.json()["differences"],
        serde_json::json!([{ "group": "g1", "topic": "extra", "partition": 0, "expected": null, "actual": 2 }])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_refuses_active_group_and_rolls_back_the_others() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    let store = tempfile::tempdir().expect("tempdir");
    let path = store.path().to_str().expect("utf8 path");
    create_and_fill(&bs, "live-topic", 2, 10).await;
    create_and_fill(&bs, "idle-topic", 2, 10).await;
    let admin = admin(&bs).await;
    commit(&admin, "live-group", &commits("live-topic", &[2, 3])).await;
    commit(&admin, "idle-group", &commits("idle-topic", &[4, 5])).await;
    let snap = cli(&[
        "offset-rollback",
        "snapshot",
        "-p",
        path,
        "--groups-regex",
        ".*-group",
        "--bootstrap-servers",
        &bs,
        "-f",
        "json",
    ]);
    assert_eq!(snap.code, 0, "{snap:?}");
    let id = snap.json()["snapshot_id"].as_str().expect("id").to_string();
    assert_eq!(snap.json()["groups"], 2);

    commit(&admin, "live-group", &commits("live-topic", &[9, 9])).await;
    commit(&admin, "idle-group", &commits("idle-topic", &[9, 9])).await;
    let live_before = committed_map(&admin, "live-group").await;

    let _consumer = LiveConsumer::start(&bs, "live-group", &["live-topic"]);
    wait_for_state(&admin, "live-group", true).await;

    let rb = cli(&[
        "offset-rollback",
        "rollback",
        "-p",
        path,
        "-s",
        &id,
        "--bootstrap-servers",
        &bs,
        "-f",
        "json",
    ]);
    assert_eq!(rb.code, 10, "partial rollback exits 10: {rb:?}");
    let doc = rb.json();
    assert_eq!(doc["status"], "partial_success");
    assert_eq!(doc["groups_rolled_back"], 1);
    assert_eq!(doc["groups_failed"], 1);
    let outcomes = doc["group_outcomes"].as_array().expect("outcomes");
    let live = outcomes
        .iter()
        .find(|o| o["group"] == "live-group")
        .expect("live outcome");
    assert_eq!(live["status"], "failed");
    let state = live["state"].as_str().expect("state");
    assert_eq!(
        live["error"],
        format!("Assignments can only be reset if the group 'live-group' is inactive, but the current state is {state}.")
    );
    assert_eq!(
        committed_map(&admin, "live-group").await,
        live_before,
        "active group untouched"
    );
    let idle = committed_map(&admin, "idle-group").await;
    assert_eq!(
        idle.values().copied().collect::<Vec<_>>(),
        vec![4, 5],
        "idle group rolled back"
    );
    assert_eq!(
        doc["verification"]["matched"], true,
        "verification covers the rolled-back group"
    );

    let text = cli(&[
        "offset-rollback",
        "rollback",
        "-p",
        path,
        "-s",
        &id,
        "--bootstrap-servers",
        &bs,
        "-g",
        "live-group",
    ]);
    assert_eq!(text.code, 10);
    assert!(text.stdout.contains("Status: ✗ FAILED"), "{}", text.stdout);
    assert!(
        text.stdout
            .contains("live-group: Assignments can only be reset"),
        "{}",
        text.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_show_delete_and_error_exit_codes() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    let store = tempfile::tempdir().expect("tempdir");
    let path = store.path().to_str().expect("utf8 path");
    create_and_fill(&bs, "t", 2, 3).await;
    let admin = admin(&bs).await;
    commit(&admin, "a", &commits("t", &[1, 2])).await;
    commit(&admin, "b", &commits("t", &[2])).await;

    let mut ids = Vec::new();
    for (i, d) in ["first", "second", "third"].iter().enumerate() {
        let out = cli(&[
            "offset-rollback",
            "snapshot",
            "-p",
            path,
            "-g",
            "a,b",
            "--bootstrap-servers",
            &bs,
            "-d",
            d,
            "-f",
            "json",
        ]);
        assert_eq!(out.code, 0, "{out:?}");
        ids.push(out.json()["snapshot_id"].as_str().expect("id").to_string());
        if i < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let list = cli(&["offset-rollback", "list", "-p", path, "-f", "json"]);
    assert_eq!(list.code, 0, "{list:?}");
    let listed: Vec<String> = list.json()["snapshots"]
        .as_array()
        .expect("array")
        .iter()
        .map(|s| s["snapshot_id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(
        listed,
        vec![ids[2].clone(), ids[1].clone(), ids[0].clone()],
        "newest first"
    );
    let text = cli(&["offset-rollback", "list", "-p", path]);
    assert!(text.stdout.contains("SNAPSHOT ID"), "{}", text.stdout);
    assert!(
        text.stdout.contains("Total: 3 snapshots"),
        "{}",
        text.stdout
    );

    let show = cli(&["offset-rollback", "show", "-p", path, "-s", &ids[0]]);
    assert_eq!(show.code, 0, "{show:?}");
    assert!(show.stdout.contains("OFFSET SNAPSHOT DETAILS"));
    assert!(show.stdout.contains("Group: a"));
    assert!(show.stdout.contains("t:1 -> offset 2"), "{}", show.stdout);
    assert!(show.stdout.contains("Description: first"));

    let del = cli(&["offset-rollback", "delete", "-p", path, "-s", &ids[0]]);
    assert_eq!(del.code, 0, "{del:?}");
    assert!(!store
        .path()
        .join("snapshots")
        .join(format!("{}.json", ids[0]))
        .exists());

    // Snapshot not found: exit 3, suggests list.
    let nf = cli(&["offset-rollback", "show", "-p", path, "-s", &ids[0]]);
    assert_eq!(nf.code, 3, "{nf:?}");
    assert!(
        nf.stderr.contains("not found") && nf.stderr.contains("offset-rollback list"),
        "{}",
        nf.stderr
    );
    let nf = cli(&["offset-rollback", "delete", "-p", path, "-s", "never-was"]);
    assert_eq!(nf.code, 3);

    // Ids that could escape the storage prefix: exit 2, nothing touched.
    for bad in ["../x", "a/b", "..", "/etc/passwd"] {
        let out = cli(&["offset-rollback", "delete", "-p", path, "-s", bad]);
        assert_eq!(out.code, 2, "{bad}: {out:?}");
    }

    // Group without committed offsets: exit 4, nothing stored.
    let before = std::fs::read_dir(store.path().join("snapshots"))
        .expect("dir")
        .count();
    let ng = cli(&[
        "offset-rollback",
        "snapshot",
        "-p",
        path,
        "-g",
        "a,ghost",
        "--bootstrap-servers",
        &bs,
    ]);
    assert_eq!(ng.code, 4, "{ng:?}");
    assert!(
        ng.stderr.contains("consumer group 'ghost' not found"),
        "{}",
        ng.stderr
    );
    assert_eq!(
        std::fs::read_dir(store.path().join("snapshots"))
            .expect("dir")
            .count(),
        before
    );

    // Malformed snapshot file: exit 8 naming the file.
    std::fs::write(store.path().join("snapshots/broken.json"), b"{not json").expect("write");
    let bad = cli(&["offset-rollback", "show", "-p", path, "-s", "broken"]);
    assert_eq!(bad.code, 8, "{bad:?}");
    assert!(
        bad.stderr.contains("snapshots/broken.json"),
        "{}",
        bad.stderr
    );
    let list = cli(&["offset-rollback", "list", "-p", path]);
    assert_eq!(
        list.code, 0,
        "an unreadable snapshot does not hide the others"
    );
    assert!(list.stderr.contains("broken.json"), "{}", list.stderr);

    // Duplicate id is refused, the original kept.
    let dup = cli(&[
        "offset-rollback",
        "snapshot",
        "-p",
        path,
        "-g",
        "a",
        "--bootstrap-servers",
        &bs,
        "-s",
        &ids[1],
    ]);
    assert_eq!(dup.code, 2, "{dup:?}");
    assert!(dup.stderr.contains("already exists"));

    // JSON errors for automation.
    let js = cli(&[
        "offset-rollback",
        "show",
        "-p",
        path,
        "-s",
        "nope",
        "-f",
        "json",
    ]);
    assert_eq!(js.code, 3);
    assert_eq!(js.json()["error"]["kind"], "snapshot_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_broker_and_storage_fail_with_their_codes() {
    let store = tempfile::tempdir().expect("tempdir");
    let path = store.path().to_str().expect("utf8 path");
    let closed = format!("127.0.0.1:{}", tidemark_tests::free_port());
    let started = Instant::now();
    let out = cli(&[
        "offset-rollback",
        "snapshot",
        "-p",
        path,
        "-g",
        "g",
        "--bootstrap-servers",
        &closed,
        "--request-timeout",
        "3",
    ]);
    assert_eq!(out.code, 5, "{out:?}");
    assert!(
        out.stderr.contains("failed to connect to Kafka"),
        "{}",
        out.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );

    let closed_s3 = format!("http://127.0.0.1:{}", tidemark_tests::free_port());
    let out = cli(&[
        "offset-rollback",
        "list",
        "-p",
        "s3://bucket/prefix",
        "--s3-endpoint",
        &closed_s3,
        "--allow-http",
        "--s3-region",
        "us-east-1",
    ]);
    assert_eq!(out.code, 7, "{out:?}");
    assert!(out.stderr.contains("s3://bucket/prefix"), "{}", out.stderr);

    let out = cli(&[
        "offset-rollback",
        "snapshot",
        "-p",
        path,
        "-g",
        "g",
        "--bootstrap-servers",
        "nohostport",
    ]);
    assert_eq!(out.code, 2, "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_sha_512_cluster_and_wrong_password() {
    let mut kafka = Tansu::start_sqlite();
    let bs = kafka.bootstrap();
    kafka.create_user("alice", "alice-secret");
    create_and_fill(&bs, "secure-topic", 2, 5).await;
    {
        let plain = admin(&bs).await;
        commit(&plain, "secure-group", &commits("secure-topic", &[1, 2])).await;
    }
    kafka.restart(true);
    let store = tempfile::tempdir().expect("tempdir");
    let path = store.path().to_str().expect("utf8 path");
    let good = [
        ("KAFKA_USERNAME", "alice"),
        ("KAFKA_PASSWORD", "alice-secret"),
        ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
    ];
    let sasl = [
        "--bootstrap-servers",
        bs.as_str(),
        "--security-protocol",
        "SASL_PLAINTEXT",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        extra
            .iter()
            .chain(sasl.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let args = with(&[
        "offset-rollback",
        "snapshot",
        "-p",
        path,
        "-g",
        "secure-group",
        "-s",
        "secure-snap",
        "-f",
        "json",
    ]);
    let snap = run_cli(
        BIN,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &good,
    );
    assert_eq!(snap.code, 0, "{snap:?}");
    assert_eq!(snap.json()["offsets"], 2);

    // Move the group with a SCRAM-authenticated library client, then roll back over SCRAM.
    let mut cfg = KafkaConfig::new(bs.as_str());
    cfg.security_protocol = tidemark::kafka::SecurityProtocol::SaslPlaintext;
    cfg.sasl = Some(tidemark::kafka::SaslCredentials {
        mechanism: tidemark::kafka::SaslMechanism::ScramSha512,
        username: "alice".into(),
        password: "alice-secret".into(),
    });
    cfg.request_timeout = Duration::from_secs(10);
    let secure = GroupAdmin::connect(&cfg)
        .await
        .expect("SCRAM admin connects");
    // Verify over SCRAM sees a change made over SCRAM. (Rollback's group-state check cannot
    // run here: tansu's sqlite engine drops the connection when describing a group that has
    // commits; rollback is covered on the memory engine above.)
    let args = with(&[
        "offset-rollback",
        "verify",
        "-p",
        path,
        "-s",
        "secure-snap",
        "-f",
        "json",
    ]);
    let same = run_cli(
        BIN,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &good,
    );
    assert_eq!(same.code, 0, "{same:?}");
    commit(&secure, "secure-group", &commits("secure-topic", &[4, 2])).await;
    let moved = run_cli(
        BIN,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &good,
    );
    assert_eq!(moved.code, 11, "{moved:?}");
    assert_eq!(
        moved.json()["differences"],
        serde_json::json!([{ "group": "secure-group", "topic": "secure-topic", "partition": 0, "expected": 1, "actual": 4 }])
    );

    let args = with(&[
        "offset-rollback",
        "verify",
        "-p",
        path,
        "-s",
        "secure-snap",
        "--request-timeout",
        "10",
    ]);
    let bad = run_cli(
        BIN,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &[
            ("KAFKA_USERNAME", "alice"),
            ("KAFKA_PASSWORD", "wrong-password"),
            ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
        ],
    );
    assert_eq!(bad.code, 6, "{bad:?}");
    assert!(
        bad.stderr.contains("SASL authentication failed"),
        "{}",
        bad.stderr
    );
    assert!(
        !bad.stderr.contains("wrong-password") && !bad.stdout.contains("wrong-password"),
        "password leaked"
    );

    let args = with(&["offset-rollback", "verify", "-p", path, "-s", "secure-snap"]);
    let missing = run_cli(
        BIN,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
    );
    assert_eq!(missing.code, 2, "{missing:?}");
    assert!(
        missing.stderr.contains("KAFKA_USERNAME"),
        "{}",
        missing.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kmap_export_script_and_import() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    let dir = tempfile::tempdir().expect("tempdir");
    create_and_fill(&bs, "orders", 2, 5).await;
    create_and_fill(&bs, "payments", 1, 5).await;
    let admin = admin(&bs).await;
    commit(&admin, "my-consumer-group", &commits("orders", &[3, 4])).await;
    commit(&admin, "my-consumer-group", &commits("payments", &[2])).await;
    commit(&admin, "other", &commits("orders", &[1])).await;

    let json = dir.path().join("consumer-offsets.json");
    let script = dir.path().join("restore-offsets.sh");
    let out = cli(&[
        "offsets",
        "export",
        "--bootstrap-servers",
        &bs,
        "-o",
        json.to_str().expect("utf8"),
        "--restore-script",
        script.to_str().expect("utf8"),
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("read")).expect("json");
    assert_eq!(doc["cluster"], bs.as_str());
    let groups = doc["consumer_groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 2);
    let g = groups
        .iter()
        .find(|g| g["group"] == "my-consumer-group")
        .expect("group");
    assert_eq!(
        g["topics"]["orders"],
        serde_json::json!([{"partition":0,"offset":3},{"partition":1,"offset":4}])
    );
    assert_eq!(
        g["topics"]["payments"],
        serde_json::json!([{"partition":0,"offset":2}])
    );

    // Run the script against a stand-in for kafka-consumer-groups.sh that records each call
    // and fails one of them: the script must continue, summarise and exit non-zero.
    let log = dir.path().join("calls.log");
    let fake = dir.path().join("fake-kcg.sh");
    std::fs::write(
        &fake,
        format!(
            "#!/usr/bin/env bash\nprev=''; file=''; for a in \"$@\"; do [ \"$prev\" = --from-file ] && file=\"$a\"; prev=\"$a\"; done\necho \"ARGS $*\" >> {log}\ncat \"$file\" >> {log}\ngrep -q '^payments,' \"$file\" && exit 1\nexit 0\n",
            log = log.display()
        ),
    )
    .expect("write fake");
    std::process::Command::new("chmod")
        .args(["+x", fake.to_str().expect("utf8")])
        .status()
        .expect("chmod");
    let run = std::process::Command::new("bash")
        .arg(&script)
        .env("BOOTSTRAP_SERVERS", "target:9092")
        .env("KAFKA_CONSUMER_GROUPS", &fake)
        .output()
        .expect("run script");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("Summary: 2 of 3 group/topic restores succeeded, 1 failed"),
        "{stdout}"
    );
    let calls = std::fs::read_to_string(&log).expect("calls");
    assert!(
        calls.contains(
            "--bootstrap-server target:9092 --group my-consumer-group --reset-offsets --from-file"
        ),
        "{calls}"
    );
    assert!(calls.contains("orders,0,3\norders,1,4\n"), "{calls}");
    assert!(calls.contains("--group other --reset-offsets"), "{calls}");
    assert!(calls.contains("--execute"), "{calls}");

    // Import the exported file as a snapshot and verify it against the live offsets.
    let store = dir.path().join("store");
    let path = store.to_str().expect("utf8");
    let imp = cli(&[
        "offset-rollback",
        "import",
        "-p",
        path,
        "--kmap",
        json.to_str().expect("utf8"),
        "-s",
        "from-kmap",
        "-f",
        "json",
    ]);
    assert_eq!(imp.code, 0, "{imp:?}");
    assert_eq!(imp.json()["offsets"], 4);
    let v = cli(&[
        "offset-rollback",
        "verify",
        "-p",
        path,
        "-s",
        "from-kmap",
        "--bootstrap-servers",
        &bs,
    ]);
    assert_eq!(v.code, 0, "{v:?}");

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, b"{\"timestamp\":\"x\"}").expect("write");
    let out = cli(&[
        "offset-rollback",
        "import",
        "-p",
        path,
        "--kmap",
        bad.to_str().expect("utf8"),
    ]);
    assert_eq!(out.code, 8, "{out:?}");
    assert!(out.stderr.contains("bad.json"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_workflow_script_extracts_snapshot_id_with_jq() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    let dir = tempfile::tempdir().expect("tempdir");
    create_and_fill(&bs, "orders", 1, 3).await;
    let admin = admin(&bs).await;
    commit(&admin, "order-processor", &commits("orders", &[2])).await;
    let script = format!(
        r#"set -e
STORAGE_PATH="{dir}"
BOOTSTRAP="{bs}"
CONSUMER_GROUPS="order-processor"
"{bin}" offset-rollback snapshot \
  --path "$STORAGE_PATH" \
  --groups "$CONSUMER_GROUPS" \
  --bootstrap-servers "$BOOTSTRAP" \
  --description "Pre-restore" \
  --format json > {dir}/snapshot.json
SNAPSHOT_ID=$(jq -r '.snapshot_id' {dir}/snapshot.json)
"{bin}" offset-rollback rollback --path "$STORAGE_PATH" --snapshot-id "$SNAPSHOT_ID" --bootstrap-servers "$BOOTSTRAP" --verify
echo "ID=$SNAPSHOT_ID"
"#,
        dir = dir.path().display(),
        bin = BIN
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ID="))
        .expect("id line");
    assert!(
        id.starts_with("snap-") && id.len() == "snap-20241129-143052-a1b2c3d4".len(),
        "{id}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_cluster_with_ca_and_handshake_failure() {
    let kafka = tidemark_tests::TlsTansu::start();
    let tls = kafka.bootstrap();
    let store = tempfile::tempdir().expect("tempdir");
    let path = store.path().to_str().expect("utf8 path");
    let ca = kafka.ca.to_str().expect("utf8");
    let snap_args = |ca: &str| {
        vec![
            "offset-rollback".to_string(),
            "snapshot".into(),
            "-p".into(),
            path.into(),
            "--all-groups".into(),
            "--bootstrap-servers".into(),
            tls.clone(),
            "--security-protocol".into(),
            "SSL".into(),
            "--ssl-ca-location".into(),
            ca.into(),
            "--request-timeout".into(),
            "10".into(),
            "-f".into(),
            "json".into(),
        ]
    };
    // Commit over TLS with the library, then snapshot and verify over TLS with the CLI.
    let mut cfg = KafkaConfig::new(tls.as_str());
    cfg.security_protocol = tidemark::kafka::SecurityProtocol::Ssl;
    cfg.tls.ca_location = Some(ca.to_string());
    cfg.request_timeout = Duration::from_secs(10);
    let admin = GroupAdmin::connect(&cfg).await.expect("TLS admin connects");
    {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        let topics: AdminClient<rdkafka::client::DefaultClientContext> =
            cfg.client_config().create().expect("TLS topic admin");
        let created = topics
            .create_topics(
                &[NewTopic::new("tls-topic", 2, TopicReplication::Fixed(1))],
                &AdminOptions::new(),
            )
            .await
            .expect("create topic over TLS");
        assert!(created.iter().all(Result::is_ok), "{created:?}");
    }
    commit(&admin, "tls-group", &commits("tls-topic", &[7, 8])).await;
    let args = snap_args(ca);
    let snap = cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(snap.code, 0, "{snap:?}");
    assert_eq!(snap.json()["offsets"], 2);
    let id = snap.json()["snapshot_id"].as_str().expect("id").to_string();
    let v = cli(&[
        "offset-rollback",
        "verify",
        "-p",
        path,
        "-s",
        &id,
        "--bootstrap-servers",
        &tls,
        "--security-protocol",
        "SSL",
        "--ssl-ca-location",
        ca,
    ]);
    assert_eq!(v.code, 0, "{v:?}");

    // A CA that did not sign the broker's certificate: TLS error, exit 13.
    let args = snap_args(kafka.other_ca.to_str().expect("utf8"));
    let bad = cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(bad.code, 13, "{bad:?}");
    assert!(bad.stderr.contains("TLS"), "{}", bad.stderr);

    // A CA file that does not exist: invalid input before any connection.
    let args = snap_args("/nonexistent/ca.pem");
    let missing = cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(missing.code, 2, "{missing:?}");
    assert!(
        missing.stderr.contains("/nonexistent/ca.pem"),
        "{}",
        missing.stderr
    );
}

/// The offsets of `group` in the stored snapshot document `id`, keyed by (topic, partition).
fn stored_offsets(
    store: &std::path::Path,
    id: &str,
    group: &str,
) -> std::collections::BTreeMap<(String, i32), i64> {
    let doc: serde_json::Value = serde_json::from_slice(
        &std::fs::read(store.join("snapshots").join(format!("{id}.json"))).expect("read snapshot"),
    )
    .expect("snapshot json");
    let mut out = std::collections::BTreeMap::new();
    let Some(topics) = doc["groups"][group]["topics"].as_object() else {
        return out;
    };
    for (topic, parts) in topics {
        for (p, s) in parts.as_object().expect("partitions") {
            out.insert(
                (topic.clone(), p.parse().expect("partition")),
                s["offset"].as_i64().expect("offset"),
            );
        }
    }
    out
}

// A rollback first stores the offsets it is about to replace (exactly the partitions whose
// offset changes), reports that safety snapshot, and rolling back to it undoes the rollback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_keeps_a_safety_snapshot_that_undoes_it() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    let store = tempfile::tempdir().expect("tempdir");
    let path = store.path().to_str().expect("utf8 path");
    create_and_fill(&bs, "ledger", 3, 20).await;
    let admin = admin(&bs).await;
    commit(&admin, "ledger-reader", &commits("ledger", &[4, 5, 6])).await;
    commit(&admin, "ledger-audit", &commits("ledger", &[1, 2, 3])).await;
    let snap = cli(&[
        "offset-rollback",
        "snapshot",
        "-p",
        path,
        "--groups",
        "ledger-reader,ledger-audit",
        "--bootstrap-servers",
        &bs,
        "-f",
        "json",
    ]);
    assert_eq!(snap.code, 0, "{snap:?}");
    let id = snap.json()["snapshot_id"].as_str().expect("id").to_string();

    // The groups move on; partition 1 of the reader stays where the snapshot has it.
    commit(&admin, "ledger-reader", &commits("ledger", &[10, 5, 15])).await;
    commit(&admin, "ledger-audit", &commits("ledger", &[7, 8, 9])).await;
    let groups = ["ledger-reader", "ledger-audit"];
    let mut before = Vec::new();
    for g in groups {
        before.push(committed_map(&admin, g).await);
    }

    let rb = cli(&[
        "offset-rollback",
        "rollback",
        "-p",
        path,
        "-s",
        &id,
        "--bootstrap-servers",
        &bs,
        "-f",
        "json",
    ]);
    assert_eq!(rb.code, 0, "{rb:?}");
    let report = rb.json();
    assert_eq!(report["status"], "success");
    let safety = report["safety_snapshot_id"]
        .as_str()
        .unwrap_or_else(|| panic!("safety_snapshot_id in {report}"))
        .to_string();
    assert_ne!(safety, id);
    assert_eq!(report["safety_snapshot_path"], path);

    // The safety snapshot holds exactly the offsets the rollback replaced.
    for (g, was) in groups.iter().zip(&before) {
        let target = stored_offsets(store.path(), &id, g);
        let kept = stored_offsets(store.path(), &safety, g);
        let replaced: std::collections::BTreeMap<(String, i32), i64> = was
            .iter()
            .filter(|(tp, o)| target.get(*tp) != Some(*o))
            .map(|(tp, o)| (tp.clone(), *o))
            .collect();
        assert_eq!(kept, replaced, "group {g}");
        assert_eq!(committed_map(&admin, g).await, target, "rolled back {g}");
    }
    assert_eq!(
        stored_offsets(store.path(), &safety, "ledger-reader").len(),
        2,
        "the unchanged partition is not in the safety snapshot"
    );

    // Rolling back to the safety snapshot restores the offsets from before the rollback.
    let undo = cli(&[
        "offset-rollback",
        "rollback",
        "-p",
        path,
        "-s",
        &safety,
        "--bootstrap-servers",
        &bs,
    ]);
    assert_eq!(undo.code, 0, "{undo:?}");
    assert!(
        undo.stdout.contains("Safety snapshot: "),
        "the text report names the undo's own safety snapshot: {}",
        undo.stdout
    );
    for (g, was) in groups.iter().zip(&before) {
        assert_eq!(&committed_map(&admin, g).await, was, "undone {g}");
    }
}

/// A snapshot the kafka-backup operator stored directly under its prefix
/// (`<prefix>/<snapshotId>.json`, its JSON shape) is listed, shown, verified and rolled back to
/// like one of ours, by the CLI and by the task a KafkaOffsetRollback Job runs; a JSON file
/// beside it that is no snapshot is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_stored_directly_under_the_prefix_is_listed_verified_and_rolled_back_to() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    let store = tempfile::tempdir().expect("tempdir");
    let path = store.path().to_str().expect("utf8 path");
    create_and_fill(&bs, "orders", 2, 20).await;
    create_and_fill(&bs, "payments", 1, 10).await;
    let admin = admin(&bs).await;
    commit(&admin, "order-processor", &commits("orders", &[15, 18])).await;
    commit(&admin, "payment-handler", &commits("payments", &[9])).await;

    let id = "pre-migration-20241201";
    let at = |offset: i64| serde_json::json!({"offset": offset, "metadata": "", "timestamp": 1_701_432_000_000i64});
    let document = serde_json::json!({
        "snapshotId": id,
        "timestamp": "2024-12-01T12:00:00Z",
        "cluster": bs,
        "groups": {
            "order-processor": {"topics": {"orders": {"0": at(4), "1": at(6)}}},
            "payment-handler": {"topics": {"payments": {"0": at(2)}}}
        }
    });
    let file = store.path().join(format!("{id}.json"));
    std::fs::write(&file, serde_json::to_vec_pretty(&document).expect("json")).expect("write");
    std::fs::write(store.path().join("notes.json"), br#"{"owner": "team-a"}"#).expect("write");

    let list = cli(&["offset-rollback", "list", "-p", path, "-f", "json"]);
    assert_eq!(list.code, 0, "{list:?}");
    let listed = list.json();
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["snapshots"][0]["snapshot_id"], id, "{listed}");
    assert_eq!(listed["snapshots"][0]["offsets"], 3, "{listed}");
    assert_eq!(listed["unreadable"], serde_json::json!([]), "{listed}");

    let show = cli(&[
        "offset-rollback",
        "show",
        "-p",
        path,
        "-s",
        id,
        "-f",
        "json",
    ]);
    assert_eq!(show.code, 0, "{show:?}");
    assert_eq!(show.json()["groups"], document["groups"], "{show:?}");

    let verify = |expect: i32| {
        let out = cli(&[
            "offset-rollback",
            "verify",
            "-p",
            path,
            "-s",
            id,
            "--bootstrap-servers",
            &bs,
        ]);
        assert_eq!(out.code, expect, "{out:?}");
    };
    verify(11);

    let rb = cli(&[
        "offset-rollback",
        "rollback",
        "-p",
        path,
        "-s",
        id,
        "--bootstrap-servers",
        &bs,
        "-f",
        "json",
    ]);
    assert_eq!(rb.code, 0, "{rb:?}");
    assert_eq!(rb.json()["offsets_restored"], 3, "{rb:?}");
    let want = |topic: &str, offsets: &[(i32, i64)]| {
        offsets
            .iter()
            .map(|(p, o)| ((topic.to_string(), *p), *o))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(
        committed_map(&admin, "order-processor").await,
        want("orders", &[(0, 4), (1, 6)])
    );
    assert_eq!(
        committed_map(&admin, "payment-handler").await,
        want("payments", &[(0, 2)])
    );
    verify(0);

    // The worker's task, as the operator runs it: the same snapshot, found under the prefix.
    commit(&admin, "payment-handler", &commits("payments", &[7])).await;
    let run = |operation: &str| {
        let yaml = format!(
            "apiVersion: tidemark.dev/task-v1\nkind: offsetRollback\noperation: {operation}\n\
             snapshotId: {id}\nkafka:\n  bootstrapServers: [\"{bs}\"]\n  securityProtocol: PLAINTEXT\n\
             storage:\n  type: location\n  url: {path}\n"
        );
        let run = tidemark_tests::run_task(BIN, store.path(), operation, &yaml, &[]);
        assert_eq!(run.out.code, 0, "{operation}: {:?}", run.out);
        serde_json::from_slice::<serde_json::Value>(&run.raw).expect("result json")
    };
    let verified = run("verify");
    assert_eq!(verified["verification"]["matched"], false, "{verified}");
    let rolled_back = run("rollback");
    assert_eq!(rolled_back["phase"], "Completed", "{rolled_back}");
    assert_eq!(
        committed_map(&admin, "payment-handler").await,
        want("payments", &[(0, 2)])
    );
    assert_eq!(run("verify")["verification"]["matched"], true);

    // Deleting it removes the file it was read from; the other file stays.
    let delete = cli(&["offset-rollback", "delete", "-p", path, "-s", id]);
    assert_eq!(delete.code, 0, "{delete:?}");
    assert!(!file.exists());
    assert!(store.path().join("notes.json").is_file());
}

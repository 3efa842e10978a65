//! End-to-end tests of `tidemark backup`, `list`, `describe` and `verify-backup` against a real
//! Kafka-protocol broker (tansu) with filesystem storage. Every test compares what the backup
//! holds, record by record and byte by byte, with what a plain consumer reads from the broker.

use std::time::Duration;

use rdkafka::producer::{FutureRecord, Producer};
use tidemark::backup::format::Record;
use tidemark::backup::read::{load_manifests, read_segment};
use tidemark_tests::records::{
    assert_same, create_topic, produce_varied, producer, read_backup, read_topic, storage,
};
use tidemark_tests::{commit, commits, connect_admin as admin, run_cli, CliOutput, Tansu};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_round_trip_byte_exact_with_every_codec() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_topic(&bs, "varied", 6, &[]).await;
    create_topic(
        &bs,
        "appended",
        2,
        &[("message.timestamp.type", "LogAppendTime")],
    )
    .await;
    let p = producer(&bs);
    for part in 0..6 {
        produce_varied(&p, "varied", part, 0, 120).await;
    }
    for part in 0..2 {
        produce_varied(&p, "appended", part, 0, 30).await;
    }
    // One 1 MiB value (and a second record after it, alone in its batch).
    let big = vec![0xA5u8; 1024 * 1024];
    p.send(
        FutureRecord::to("varied")
            .partition(0)
            .key("big")
            .payload(&big[..]),
        Duration::from_secs(10),
    )
    .await
    .unwrap_or_else(|(e, _)| panic!("produce big: {e}"));
    p.flush(Duration::from_secs(10)).expect("flush");
    produce_varied(&p, "varied", 0, 1000, 1).await;
    let mut want = read_topic(&bs, "varied", 6);
    // tansu 0.6 ignores message.timestamp.type=LogAppendTime (records keep CreateTime); the
    // topic is still backed up and compared as the broker serves it, and the segment format's
    // unit tests cover LogAppendTime records.
    let appended = read_topic(&bs, "appended", 2);
    want.extend(appended);
    assert!(
        want[&("varied".to_string(), 0)]
            .iter()
            .any(|r| r.value.as_ref().is_some_and(|v| v.len() == 1024 * 1024)),
        "the 1 MiB record is in the topic"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    for codec in ["zstd", "lz4", "none"] {
        let id = format!("rt-{codec}");
        let out = cli(&[
            "backup",
            "--bootstrap-servers",
            &bs,
            "--path",
            dir.path().to_str().expect("utf8"),
            "--topics",
            "varied,appended",
            "--backup-id",
            &id,
            "--compression",
            codec,
            "--segment-max-bytes",
            "40000",
            "--format",
            "json",
        ]);
        expect_code(&out, 0);
        let report = out.json();
        assert_eq!(report["complete"], true);
        assert_eq!(
            report["records"].as_u64(),
            Some(want.values().map(|v| v.len() as u64).sum()),
            "{report}"
        );
        let (manifests, got) = read_backup(dir.path(), &id).await;
        assert_same(&got, &want);
        let m = &manifests[0];
        assert_eq!(m.compression, codec);
        assert_eq!(m.topics["varied"].partitions, 6);
        // The PITR index: min/max timestamps over the records, not first/last.
        let mut min_not_first = 0;
        for (part, d) in &m.topics["varied"].partition_data {
            assert!(
                d.segments.len() >= 2,
                "small segments: {}",
                d.segments.len()
            );
            let recs = &got[&("varied".to_string(), *part)];
            for s in &d.segments {
                let inside: Vec<&Record> = recs
                    .iter()
                    .filter(|r| r.offset >= s.stats.first_offset && r.offset <= s.stats.last_offset)
                    .collect();
                assert_eq!(inside.len() as u64, s.stats.records);
                let lo = inside.iter().map(|r| r.timestamp).min();
                let hi = inside.iter().map(|r| r.timestamp).max();
                assert_eq!(
                    (Some(s.stats.min_timestamp), Some(s.stats.max_timestamp)),
                    (lo, hi)
                );
                if inside.first().map(|r| r.timestamp) != lo {
                    min_not_first += 1;
                }
            }
        }
        assert!(
            min_not_first > 0,
            "out-of-order timestamps make min differ from first"
        );
        let verify = cli(&[
            "verify-backup",
            "-p",
            dir.path().to_str().expect("utf8"),
            "-b",
            &id,
            "--deep",
        ]);
        expect_code(&verify, 0);
    }
    // describe and list show it.
    let path = dir.path().to_str().expect("utf8");
    let list = cli(&["list", "-p", path]);
    expect_code(&list, 0);
    assert!(
        list.stdout.contains("rt-zstd") && list.stdout.contains("complete"),
        "{}",
        list.stdout
    );
    let describe = cli(&["describe", "-p", path, "-b", "rt-zstd"]);
    expect_code(&describe, 0);
    assert!(
        describe.stdout.contains("Topic: varied"),
        "{}",
        describe.stdout
    );
    let yaml = cli(&["describe", "-p", path, "-b", "rt-zstd", "-f", "yaml"]);
    expect_code(&yaml, 0);
    assert!(
        yaml.stdout.contains("backup_id: rt-zstd"),
        "{}",
        yaml.stdout
    );
}

/// A topic of `partitions` × `n` records of about 200 bytes.
async fn fill(bs: &str, topic: &str, partitions: i32, n: usize) {
    create_topic(bs, topic, partitions, &[]).await;
    let p = producer(bs);
    for part in 0..partitions {
        produce_varied(&p, topic, part, 0, n).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_killed_anywhere_resumes_to_the_same_content() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    fill(&bs, "crashy", 3, 1500).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_str().expect("utf8");
    let backup = |id: &str, env: &[(&str, &str)]| {
        let mut args = vec![
            "backup",
            "--bootstrap-servers",
            &bs,
            "--path",
            path,
            "--topics",
            "crashy",
            "--backup-id",
            id,
            "--segment-max-bytes",
            "65536",
            "--format",
            "json",
        ];
        if !env.is_empty() {
            // Slow enough (about 1.5 s) that the checkpoint is rewritten mid-run.
            args.extend(["--rate-limit-records-per-sec", "3000"]);
        }
        run_cli(BIN, &args, env)
    };
    expect_code(&backup("reference", &[]), 0);
    let (_, reference) = read_backup(dir.path(), "reference").await;
    assert_eq!(reference.values().map(Vec::len).sum::<usize>(), 4500);

    for point in [
        "record:2000",
        "segment-upload:4",
        "segment-stored:6",
        "checkpoint:2",
        "before-manifest:1",
        "after-manifest:1",
    ] {
        let id = format!("crash-{}", point.replace(':', "-"));
        let crashed = backup(&id, &[("TIDEMARK_CRASH_AT", point)]);
        assert_ne!(
            crashed.code, 0,
            "{point}: the run was meant to die: {crashed:?}"
        );
        if point != "after-manifest:1" {
            let list = cli(&["list", "-p", path, "-f", "json"]);
            let backups = list.json()["backups"].clone();
            let entry = backups
                .as_array()
                .expect("backups")
                .iter()
                .find(|b| b["backup_id"] == id.as_str())
                .cloned();
            if let Some(e) = entry {
                assert_eq!(
                    e["complete"], false,
                    "{point}: a torn backup is not complete"
                );
            }
            let describe = cli(&["describe", "-p", path, "-b", &id]);
            assert_ne!(describe.code, 0, "{point}: describing a torn backup fails");
        }
        let resumed = backup(&id, &[]);
        expect_code(&resumed, 0);
        let (_, got) = read_backup(dir.path(), &id).await;
        assert_same(&got, &reference);
        expect_code(&cli(&["verify-backup", "-p", path, "-b", &id, "--deep"]), 0);
        // Nothing but the manifest's segments is left under the backup's topics.
        let s = storage(dir.path());
        let manifests = load_manifests(&s, &id).await.expect("manifests");
        let listed: Vec<String> = manifests
            .iter()
            .flat_map(|m| m.topics.values().flat_map(|t| t.partition_data.values()))
            .flat_map(|d| d.segments.iter().map(|s| s.key.clone()))
            .collect();
        let mut stored: Vec<String> = s
            .list(&format!("backups/{id}/topics/"))
            .await
            .expect("list")
            .into_iter()
            .map(|o| o.key)
            .collect();
        stored.sort();
        let mut listed_sorted = listed.clone();
        listed_sorted.sort();
        assert_eq!(stored, listed_sorted, "{point}: stray objects");
        assert!(
            s.list(&format!("backups/{id}/checkpoint/"))
                .await
                .expect("list")
                .is_empty(),
            "{point}: the checkpoint is removed once complete"
        );
    }

    // The records/s limit holds: 4,500 records at 3,000/s take at least 1.5 s (a lower bound,
    // so a slow machine cannot fail it).
    let started = std::time::Instant::now();
    let throttled = run_cli(
        BIN,
        &[
            "backup",
            "--bootstrap-servers",
            &bs,
            "--path",
            path,
            "--topics",
            "crashy",
            "--backup-id",
            "throttled",
            "--rate-limit-records-per-sec",
            "3000",
        ],
        &[],
    );
    expect_code(&throttled, 0);
    assert!(
        started.elapsed() >= Duration::from_millis(1450),
        "{:?}",
        started.elapsed()
    );

    // A real SIGKILL at an arbitrary moment of a throttled run.
    let mut child = std::process::Command::new(BIN)
        .args([
            "backup",
            "--bootstrap-servers",
            &bs,
            "--path",
            path,
            "--topics",
            "crashy",
            "--backup-id",
            "sigkill",
            "--segment-max-bytes",
            "65536",
            "--rate-limit-records-per-sec",
            "3000",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    tokio::time::sleep(Duration::from_millis(700)).await;
    child.kill().expect("kill -9");
    let _ = child.wait();
    expect_code(&backup("sigkill", &[]), 0);
    let (_, got) = read_backup(dir.path(), "sigkill").await;
    assert_same(&got, &reference);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_backups_copy_only_new_records_and_capture_offsets() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    fill(&bs, "events", 2, 200).await;
    let admin = admin(&bs).await;
    commit(&admin, "event-reader", &commits("events", &[150, 20])).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_str().expect("utf8");
    let inc = |id: &str| {
        cli(&[
            "backup",
            "--bootstrap-servers",
            &bs,
            "--path",
            path,
            "--topics",
            "events",
            "--backup-id",
            id,
            "--mode",
            "incremental",
            "--chain",
            "hourly",
            "--format",
            "json",
        ])
    };
    let first = inc("hourly-1");
    expect_code(&first, 0);
    assert_eq!(first.json()["records"], 400);
    assert!(
        first.stdout.contains("starts from the log start"),
        "{}",
        first.stdout
    );

    let p = producer(&bs);
    for part in 0..2 {
        produce_varied(&p, "events", part, 200, 50).await;
    }
    let second = inc("hourly-2");
    expect_code(&second, 0);
    let r = second.json();
    assert_eq!(r["records"], 100, "only the new records: {r}");
    assert_eq!(r["parent"], "hourly-1");
    let (manifests, got) = read_backup(dir.path(), "hourly-2").await;
    let all = read_topic(&bs, "events", 2);
    for ((t, part), recs) in &got {
        let want: Vec<Record> = all[&(t.clone(), *part)]
            .iter()
            .filter(|r| r.offset >= 200)
            .cloned()
            .collect();
        assert_eq!(recs, &want, "{t}-{part}");
    }
    let d = &manifests[0].topics["events"].partition_data[&0];
    assert_eq!((d.start_offset, d.end_offset), (200, 250));
    // Nothing new: an empty incremental backup.
    let third = inc("hourly-3");
    expect_code(&third, 0);
    assert_eq!(third.json()["records"], 0);

    // The consumer offsets on the backed-up topic were captured in snapshot format.
    let m = &load_manifests(&storage(dir.path()), "hourly-1")
        .await
        .expect("m")[0];
    let key = m.offsets.as_ref().expect("offsets captured");
    let snap = tidemark::snapshot::OffsetSnapshot::from_json(
        &std::fs::read(dir.path().join(key)).expect("offsets file"),
        key,
    )
    .expect("snapshot format");
    let g = &snap.groups["event-reader"].topics["events"];
    assert_eq!((g[&0].offset, g[&1].offset), (150, 20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_is_reported_naming_the_object_and_bad_input_is_refused() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    fill(&bs, "ledger", 2, 300).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_str().expect("utf8");
    let out = cli(&[
        "backup",
        "--bootstrap-servers",
        &bs,
        "--path",
        path,
        "--topics",
        "ledger",
        "--backup-id",
        "b1",
        "--segment-max-bytes",
        "20000",
    ]);
    expect_code(&out, 0);
    assert!(out.stdout.contains("BACKUP REPORT"), "{}", out.stdout);
    let s = storage(dir.path());
    let m = &load_manifests(&s, "b1").await.expect("manifests")[0];
    let victim = m.topics["ledger"].partition_data[&1].segments[1].clone();
    let file = dir.path().join(&victim.key);
    let mut bytes = std::fs::read(&file).expect("segment");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&file, &bytes).expect("corrupt it");

    for deep in [false, true] {
        let mut args = vec!["verify-backup", "-p", path, "-b", "b1"];
        if deep {
            args.push("--deep");
        }
        let v = cli(&args);
        expect_code(&v, 11);
        assert!(v.stdout.contains(&victim.key), "deep={deep}: {}", v.stdout);
        assert!(v.stderr.contains(&victim.key), "deep={deep}: {}", v.stderr);
    }
    let err = read_segment(&s, &victim)
        .await
        .expect_err("a read fails too");
    assert!(err.to_string().contains(&victim.key), "{err}");
    std::fs::remove_file(&file).expect("remove");
    let v = cli(&["verify-backup", "-p", path, "-b", "b1", "-f", "json"]);
    expect_code(&v, 11);
    assert!(v.stdout.contains("the segment is missing"), "{}", v.stdout);

    // Bad input: nothing matches, incremental without a chain, unknown backup, bad config.
    let none = cli(&[
        "backup",
        "--bootstrap-servers",
        &bs,
        "--path",
        path,
        "--topics",
        "nope-*",
    ]);
    expect_code(&none, 2);
    assert!(none.stderr.contains("no topic matches"), "{}", none.stderr);
    let chainless = cli(&[
        "backup",
        "--bootstrap-servers",
        &bs,
        "--path",
        path,
        "--topics",
        "ledger",
        "--mode",
        "incremental",
    ]);
    expect_code(&chainless, 2);
    assert!(chainless.stderr.contains("chain"), "{}", chainless.stderr);
    let unknown = cli(&["describe", "-p", path, "-b", "missing"]);
    expect_code(&unknown, 3);
    assert!(
        unknown.stderr.contains("backup 'missing' not found"),
        "{}",
        unknown.stderr
    );
    let cfg = dir.path().join("backup.yaml");
    std::fs::write(&cfg, "mode: backup\nsource:\n  bootstrap_servers: [x:1]\n  topics: {include: [a]}\nstorage: {backend: ftp}\n").expect("cfg");
    let bad = cli(&["backup", "--config", cfg.to_str().expect("utf8")]);
    expect_code(&bad, 8);
    assert!(
        bad.stderr.contains("storage.backend 'ftp'"),
        "{}",
        bad.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_form_one_backup_and_continuous_backups_end_cleanly_on_sigterm() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    fill(&bs, "sharded", 3, 400).await;
    let want = read_topic(&bs, "sharded", 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_str().expect("utf8");
    let shard = |i: &str| {
        cli(&[
            "backup",
            "--bootstrap-servers",
            &bs,
            "--path",
            path,
            "--topics",
            "sharded",
            "--backup-id",
            "split",
            "--shard-count",
            "2",
            "--shard-index",
            i,
            "--format",
            "json",
        ])
    };
    let first = shard("1");
    expect_code(&first, 0);
    assert_eq!(
        first.json()["partitions"],
        1,
        "3 partitions dealt to 2 shards"
    );
    let half = cli(&["describe", "-p", path, "-b", "split"]);
    expect_code(&half, 2);
    assert!(
        half.stderr
            .contains("1 of 2 shards finished (missing shard 0)"),
        "{}",
        half.stderr
    );
    expect_code(&shard("0"), 0);
    let (manifests, got) = read_backup(dir.path(), "split").await;
    assert_eq!(manifests.len(), 2);
    assert_same(&got, &want);
    expect_code(
        &cli(&["verify-backup", "-p", path, "-b", "split", "--deep"]),
        0,
    );

    // Continuous: runs until SIGTERM, then stores what it read and writes its manifest.
    let child = std::process::Command::new(BIN)
        .args([
            "backup",
            "--bootstrap-servers",
            &bs,
            "--path",
            path,
            "--topics",
            "sharded",
            "--backup-id",
            "live",
            "--mode",
            "continuous",
            "--format",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let p = producer(&bs);
    produce_varied(&p, "sharded", 2, 400, 25).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["complete"], true);
    assert_eq!(report["mode"], "continuous");
    let (manifests, got) = read_backup(dir.path(), "live").await;
    let now = read_topic(&bs, "sharded", 3);
    for ((t, part), d) in &manifests[0].topics["sharded"]
        .partition_data
        .iter()
        .map(|(p, d)| (("sharded".to_string(), *p), d))
        .collect::<Vec<_>>()
    {
        let want: Vec<Record> = now[&(t.clone(), *part)]
            .iter()
            .filter(|r| r.offset < d.end_offset)
            .cloned()
            .collect();
        assert_eq!(
            got.get(&(t.clone(), *part)).cloned().unwrap_or_default(),
            want,
            "{t}-{part}"
        );
        assert!(
            d.end_offset >= 400,
            "{t}-{part} read at least what was there at the start"
        );
    }
    assert_eq!(
        manifests[0].topics["sharded"].partition_data[&2].end_offset, 425,
        "records produced while it ran are in it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_backups_but_never_a_kept_backups_parent() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    fill(&bs, "kept", 1, 20).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_str().expect("utf8");
    let p = producer(&bs);
    for (i, mode) in ["one-shot", "one-shot", "one-shot"].iter().enumerate() {
        let id = format!("daily-{i}");
        expect_code(
            &cli(&[
                "backup",
                "--bootstrap-servers",
                &bs,
                "--path",
                path,
                "--topics",
                "kept",
                "--backup-id",
                &id,
                "--mode",
                mode,
                "--chain",
                "daily",
            ]),
            0,
        );
        let id = format!("inc-{i}");
        expect_code(
            &cli(&[
                "backup",
                "--bootstrap-servers",
                &bs,
                "--path",
                path,
                "--topics",
                "kept",
                "--backup-id",
                &id,
                "--mode",
                "incremental",
                "--chain",
                "inc",
            ]),
            0,
        );
        produce_varied(&p, "kept", 0, 20 + i * 5, 5).await;
    }
    let run_cleanup = |chain: &str, keep: u32| {
        let task = dir.path().join(format!("cleanup-{chain}.yaml"));
        std::fs::write(
            &task,
            format!(
                "apiVersion: tidemark.dev/task-v1\nkind: backupCleanup\nstorage: {{type: location, url: {path}}}\nchain: {chain}\nkeepLast: {keep}\n"
            ),
        )
        .expect("task");
        let result = dir.path().join(format!("cleanup-{chain}.result"));
        let out = cli(&[
            "run",
            "--task",
            task.to_str().expect("utf8"),
            "--result-file",
            result.to_str().expect("utf8"),
        ]);
        expect_code(&out, 0);
        out.json()["report"].clone()
    };
    let daily = run_cleanup("daily", 2);
    assert_eq!(daily["deleted"], serde_json::json!(["daily-0"]), "{daily}");
    assert!(
        storage(dir.path())
            .list("backups/daily-0/")
            .await
            .expect("list")
            .is_empty(),
        "every object of daily-0 is gone"
    );
    let inc = run_cleanup("inc", 1);
    assert_eq!(inc["deleted"], serde_json::json!([]), "{inc}");
    assert_eq!(
        inc["kept_as_parents"],
        serde_json::json!(["inc-1", "inc-0"]),
        "{inc}"
    );
    let list = cli(&["list", "-p", path, "-f", "json"]);
    let ids: Vec<String> = list.json()["backups"]
        .as_array()
        .expect("backups")
        .iter()
        .map(|b| b["backup_id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        !ids.contains(&"daily-0".to_string()) && ids.contains(&"daily-1".to_string()),
        "{ids:?}"
    );
}

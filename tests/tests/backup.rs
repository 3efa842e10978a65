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
async fn shards_form_one_backup() {
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
}

/// Sends `signal` to `child` and waits for it.
fn signal_and_wait(child: std::process::Child, signal: &str) -> std::process::Output {
    let sent = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    child.wait_with_output().expect("wait")
}

fn spawn(args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    std::process::Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// A continuous backup goes on across SIGTERM (an eviction, a drain): the interrupted run
/// stores what it read and its checkpoint, reports the checkpoint time and lag, and exits 75;
/// run again, it resumes there and keeps backing up, until Ctrl-C ends it with its manifest.
/// Every record is in the backup exactly once across the two runs, including those produced
/// while it was stopped and after it restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigtermed_continuous_backup_resumes_and_keeps_backing_up() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    fill(&bs, "live", 3, 200).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_str().expect("utf8");
    let p = producer(&bs);

    // The first run, as the operator's Job runs it: `run --task`, the id from the env.
    let task = dir.path().join("task.yaml");
    std::fs::write(
        &task,
        format!(
            "apiVersion: tidemark.dev/task-v1\nkind: backup\n\
             kafka:\n  bootstrapServers: [\"{bs}\"]\n  securityProtocol: PLAINTEXT\n\
             storage:\n  type: location\n  url: {path}\n\
             topics: {{include: [live]}}\nmode: continuous\nchain: default-live\n"
        ),
    )
    .expect("task");
    let result_file = dir.path().join("result.json");
    let first = spawn(
        &[
            "run",
            "--task",
            task.to_str().expect("utf8"),
            "--result-file",
            result_file.to_str().expect("utf8"),
        ],
        &[("TIDEMARK_BACKUP_ID", "live-g1-r0")],
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    produce_varied(&p, "live", 2, 200, 25).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let out = signal_and_wait(first, "-TERM");
    assert_eq!(
        out.status.code(),
        Some(75),
        "SIGTERM: interrupted, resumable\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&result_file).expect("result")).expect("json");
    assert_eq!(result["phase"], "Failed", "{result}");
    assert_eq!(result["error"]["kind"], "backup_interrupted", "{result}");
    assert_eq!(result["error"]["exitCode"], 75, "{result}");
    assert_eq!(result["backup"]["complete"], false, "{result}");
    assert_eq!(result["backup"]["records"], 625, "{result}");
    assert!(result["backup"]["checkpointTime"].is_string(), "{result}");
    assert_eq!(
        result["backup"]["lag"], 0,
        "nothing was left unread: {result}"
    );
    let none = cli(&["describe", "-p", path, "-b", "live-g1-r0"]);
    expect_code(&none, 2);
    assert!(
        none.stderr.contains("is incomplete"),
        "no manifest after SIGTERM: {}",
        none.stderr
    );

    // Records produced while it was stopped, then the second run resumes and keeps going.
    produce_varied(&p, "live", 1, 200, 10).await;
    let second = spawn(
        &[
            "backup",
            "--bootstrap-servers",
            &bs,
            "--path",
            path,
            "--topics",
            "live",
            "--backup-id",
            "live-g1-r0",
            "--mode",
            "continuous",
            "--chain",
            "default-live",
            "--format",
            "json",
        ],
        &[],
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    produce_varied(&p, "live", 0, 200, 15).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let out = signal_and_wait(second, "-INT");
    assert!(
        out.status.success(),
        "Ctrl-C ends a continuous backup\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["complete"], true, "{report}");
    assert_eq!(report["resumed"], true, "{report}");
    assert_eq!(report["records_this_run"], 25, "{report}");
    let (manifests, got) = read_backup(dir.path(), "live-g1-r0").await;
    let want = read_topic(&bs, "live", 3);
    assert_same(&got, &want);
    let ends: Vec<i64> = (0..3)
        .map(|p| manifests[0].topics["live"].partition_data[&p].end_offset)
        .collect();
    assert_eq!(ends, [215, 210, 225]);
    assert_eq!(manifests[0].totals.records, 650);
}

/// A continuous backup run as the operator's Job runs it (`run --task`) ends when asked to
/// finish (a `finish` file next to its task, as the operator's request appears in the mounted
/// task ConfigMap): it stores what it read, writes its manifest and exits 0 with a complete
/// result, and the backup holds every record produced, also those produced while it ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuous_backup_asked_to_finish_writes_its_manifest() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    fill(&bs, "ending", 2, 100).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_str().expect("utf8");
    let p = producer(&bs);
    let task = dir.path().join("task.yaml");
    std::fs::write(
        &task,
        format!(
            "apiVersion: tidemark.dev/task-v1\nkind: backup\n\
             kafka:\n  bootstrapServers: [\"{bs}\"]\n  securityProtocol: PLAINTEXT\n\
             storage:\n  type: location\n  url: {path}\n\
             topics: {{include: [ending]}}\nmode: continuous\nchain: default-ending\n"
        ),
    )
    .expect("task");
    let result_file = dir.path().join("result.json");
    let mut child = spawn(
        &[
            "run",
            "--task",
            task.to_str().expect("utf8"),
            "--result-file",
            result_file.to_str().expect("utf8"),
        ],
        &[("TIDEMARK_BACKUP_ID", "ending-g1-r0")],
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    produce_varied(&p, "ending", 1, 100, 20).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        child.try_wait().expect("wait").is_none(),
        "a continuous backup runs until asked to finish"
    );
    std::fs::write(dir.path().join("finish"), "requested by the test").expect("finish");
    let mut waited = Duration::ZERO;
    while child.try_wait().expect("wait").is_none() {
        assert!(
            waited < Duration::from_secs(60),
            "the backup did not finish within 60 s of the request"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        waited += Duration::from_millis(200);
    }
    let out = child.wait_with_output().expect("output");
    assert!(
        out.status.success(),
        "asked to finish: exit 0\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&result_file).expect("result")).expect("json");
    assert_eq!(result["phase"], "Completed", "{result}");
    assert_eq!(result["backup"]["complete"], true, "{result}");
    assert_eq!(result["backup"]["records"], 220, "{result}");
    let (manifests, got) = read_backup(dir.path(), "ending-g1-r0").await;
    let want = read_topic(&bs, "ending", 2);
    assert_same(&got, &want);
    assert_eq!(manifests[0].totals.records, 220);
    let described = cli(&["describe", "-p", path, "-b", "ending-g1-r0"]);
    expect_code(&described, 0);
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

/// Retention counts only backups that verify: `keepLast: 1` with a damaged newest backup (a
/// byte flipped in a segment) keeps the previous one and leaves the damaged one alone, not
/// counted; an incomplete backup (killed before its manifest) is deleted once its last write is
/// older than the grace period, a younger one is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_counts_only_backups_that_verify_and_removes_stale_incomplete_ones() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    fill(&bs, "ret", 1, 30).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_str().expect("utf8");
    let p = producer(&bs);
    let backup = |id: &str, env: &[(&str, &str)]| {
        run_cli(
            BIN,
            &[
                "backup",
                "--bootstrap-servers",
                &bs,
                "--path",
                path,
                "--topics",
                "ret",
                "--backup-id",
                id,
                "--chain",
                "r",
                "--compression",
                "none",
                "--format",
                "json",
            ],
            env,
        )
    };
    expect_code(&backup("ret-0", &[]), 0);
    let (_, good) = read_backup(dir.path(), "ret-0").await;
    produce_varied(&p, "ret", 0, 30, 5).await;
    expect_code(&backup("ret-1", &[]), 0);
    for id in ["stale-2", "fresh-3"] {
        let crashed = backup(id, &[("TIDEMARK_CRASH_AT", "before-manifest:1")]);
        assert_ne!(crashed.code, 0, "{}", crashed.stderr);
    }

    // Flip one byte in the middle of ret-1's segment.
    let seg_dir = dir.path().join("backups/ret-1/topics/ret/0");
    let seg = std::fs::read_dir(&seg_dir)
        .expect("segments")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .expect("a segment");
    let mut bytes = std::fs::read(&seg).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&seg, bytes).expect("write");
    expect_code(&cli(&["verify-backup", "-p", path, "-b", "ret-1"]), 11);

    // stale-2 was last written two days ago.
    let stale = dir.path().join("backups/stale-2");
    let touched = std::process::Command::new("find")
        .arg(&stale)
        .args([
            "-type",
            "f",
            "-exec",
            "touch",
            "-d",
            "2 days ago",
            "{}",
            "+",
        ])
        .status()
        .expect("find -exec touch");
    assert!(touched.success());

    let task = dir.path().join("cleanup.yaml");
    std::fs::write(
        &task,
        format!(
            "apiVersion: tidemark.dev/task-v1\nkind: backupCleanup\nstorage: {{type: location, url: {path}}}\nchain: r\nkeepLast: 1\n"
        ),
    )
    .expect("task");
    let result_file = dir.path().join("cleanup.result");
    let out = cli(&[
        "run",
        "--task",
        task.to_str().expect("utf8"),
        "--result-file",
        result_file.to_str().expect("utf8"),
    ]);
    expect_code(&out, 0);
    let report = out.json()["report"].clone();
    assert_eq!(report["kept"], serde_json::json!(["ret-0"]), "{report}");
    assert_eq!(report["damaged"], serde_json::json!(["ret-1"]), "{report}");
    assert_eq!(
        report["deleted"],
        serde_json::json!(["stale-2"]),
        "{report}"
    );
    assert_eq!(
        report["deleted_incomplete"],
        serde_json::json!(["stale-2"]),
        "{report}"
    );
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&result_file).expect("result")).expect("json");
    assert_eq!(result["backup"]["deleted"], serde_json::json!(["stale-2"]));
    assert_eq!(result["backup"]["deletedTotal"], 1);
    assert_eq!(result["backup"]["damaged"], serde_json::json!(["ret-1"]));

    let s = storage(dir.path());
    assert!(s.list("backups/stale-2/").await.expect("list").is_empty());
    assert!(!s.list("backups/fresh-3/").await.expect("list").is_empty());
    assert!(!s.list("backups/ret-1/").await.expect("list").is_empty());
    let (_, still) = read_backup(dir.path(), "ret-0").await;
    assert_same(&still, &good);
}

/// The records of partition 0 of `topic`, as a plain consumer reads them, each offset once
/// (tansu serves the batches after a batch that skips offsets twice to a plain consumer).
fn read_once(bs: &str, topic: &str) -> tidemark_tests::records::Records {
    let mut all = read_topic(bs, topic, 1);
    for records in all.values_mut() {
        let mut seen = std::collections::BTreeSet::new();
        records.retain(|r| seen.insert(r.offset));
    }
    all
}

fn offsets_of(bs: &str, topic: &str) -> Vec<i64> {
    read_once(bs, topic)[&(topic.to_string(), 0)]
        .iter()
        .map(|r| r.offset)
        .collect()
}

/// A broker that serves a batch whose records skip offsets (written by hand: records four
/// offsets apart): on a topic that is not compacted, the backup counts the skipped offsets as
/// unexplained — report, manifest, task result — and warns. The backup still holds every record
/// the broker serves. (tansu describes no topic config, so a compacted topic cannot be told
/// apart here; the classification of compacted topics is unit-tested in the engine.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_whose_broker_skips_offsets_reports_the_unexplained_gap() {
    use tidemark_tests::sparse::produce_sparse;
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_topic(&bs, "holes", 1, &[]).await;
    let p = producer(&bs);
    produce_varied(&p, "holes", 0, 0, 5).await;
    assert_eq!(
        produce_sparse(&bs, "holes", 0, &[0, 4], 4),
        0,
        "the broker took the batch"
    );
    // Single-record batches after it (a fetch from inside a batch is not what is tested).
    for i in 5..8 {
        produce_varied(&p, "holes", 0, i, 1).await;
    }
    let served = offsets_of(&bs, "holes");
    assert_eq!(
        served,
        [0, 1, 2, 3, 4, 5, 9, 10, 11, 12],
        "the broker skips 6..9"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_str().expect("utf8");
    let out = cli(&[
        "backup",
        "--bootstrap-servers",
        &bs,
        "--path",
        path,
        "--topics",
        "holes",
        "--backup-id",
        "gaps",
        "--format",
        "json",
    ]);
    expect_code(&out, 0);
    let report = out.json();
    assert_eq!(report["records"], 10, "{report}");
    assert_eq!(report["gaps"]["offsets"], 3, "{report}");
    assert_eq!(report["gaps"]["unexplained"], 3, "{report}");
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("holes-0: 3 offsets hold no record and nothing explains it")
            && warnings.contains("(gaps 6..9)"),
        "{warnings}"
    );
    let (_, got) = read_backup(dir.path(), "gaps").await;
    let want = read_once(&bs, "holes");
    assert_same(&got, &want);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("backups/gaps/manifest/00000-of-00001.json"))
            .expect("manifest"),
    )
    .expect("json");
    let gaps = |t: &str| manifest["topics"][t]["partition_data"]["0"]["gaps"].clone();
    assert_eq!(gaps("holes")["ranges"], serde_json::json!([[6, 9]]));
    assert_eq!(
        (&gaps("holes")["unexplained"], &gaps("holes")["compacted"]),
        (&serde_json::json!(3), &serde_json::json!(0))
    );
    assert_eq!(manifest["totals"]["gaps"]["unexplained"], 3);

    // The operator's Jobs: the task result carries the figures.
    let task = dir.path().join("task.yaml");
    std::fs::write(
        &task,
        format!(
            "apiVersion: tidemark.dev/task-v1\nkind: backup\n\
             kafka:\n  bootstrapServers: [\"{bs}\"]\n  securityProtocol: PLAINTEXT\n\
             storage:\n  type: location\n  url: {path}\n\
             backupId: gaps-task\ntopics: {{include: [holes]}}\n"
        ),
    )
    .expect("task");
    let result_file = dir.path().join("result.json");
    let out = cli(&[
        "run",
        "--task",
        task.to_str().expect("utf8"),
        "--result-file",
        result_file.to_str().expect("utf8"),
    ]);
    expect_code(&out, 0);
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&result_file).expect("result")).expect("json");
    assert_eq!(result["backup"]["gapOffsets"], 3, "{result}");
    assert_eq!(result["backup"]["unexplainedGapOffsets"], 3, "{result}");
}

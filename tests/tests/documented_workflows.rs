//! The kafka-backup documentation's restore configurations and example scripts, as users copy
//! them (fixtures in `tests/fixtures/`), against `tidemark`: every configuration parses with
//! the meaning the documentation gives it; the complete ones run on a real Kafka-protocol
//! broker (tansu) with only addresses, paths and bucket names replaced; the example scripts run
//! under bash with `kafka-backup` on `PATH` pointing at `tidemark`. Consumer offsets are read
//! back from the broker and compared with what the documentation says they become.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use tidemark::restore::config::parse_config;
use tidemark::task::{GroupStrategy, RestoreTask, StorageTarget};
use tidemark_tests::objstore::{http, S3Server};
use tidemark_tests::records::{assert_same, create_topic, read_topic};
use tidemark_tests::{
    commit, commits, committed_map, connect_admin as admin, create_and_fill, run_cli,
    topic_offsets, CliOutput, LiveConsumer, Tansu,
};

const BIN: &str = env!("CARGO_BIN_EXE_tidemark-under-test");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn fixture(rel: &str) -> String {
    let path = fixtures().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

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

/// The credentials the documented configurations take from the environment.
fn env(var: &str) -> Option<String> {
    match var {
        "KAFKA_PASSWORD" => Some("kafka-secret".into()),
        "CONFLUENT_KEY" => Some("confluent-key".into()),
        "CONFLUENT_SECRET" => Some("confluent-secret".into()),
        _ => None,
    }
}

/// The smallest complete file a fragment of the documentation (a `restore:`, `target:` or
/// `topics:` section alone) is read in.
const BASE: &str = "mode: restore\nbackup_id: b1\ntarget:\n  bootstrap_servers: [localhost:9092]\nstorage:\n  backend: filesystem\n  path: /data\n";

/// A complete configuration as it is; a fragment inside [`BASE`] (`topics` under `target`).
fn complete(text: &str) -> String {
    use serde_yaml_ng::{Mapping, Value};
    let doc: Mapping = serde_yaml_ng::from_str(text).expect("the example is YAML");
    if doc.contains_key("mode") {
        return text.to_string();
    }
    let mut base: Mapping = serde_yaml_ng::from_str(BASE).expect("base");
    for (k, v) in doc {
        let (section, v) = match k.as_str() {
            Some("topics") => ("target", Value::Mapping(Mapping::from_iter([(k, v)]))),
            Some(other) => (other, v),
            None => panic!("a non-string key in the example"),
        };
        match (base.get_mut(section), v) {
            (Some(Value::Mapping(into)), Value::Mapping(from)) => into.extend(from),
            (_, v) => {
                base.insert(Value::from(section), v);
            }
        }
    }
    serde_yaml_ng::to_string(&base).expect("yaml")
}

fn storage_url(t: &RestoreTask) -> String {
    match &t.storage {
        StorageTarget::Location { url, .. } => url.clone(),
        other => panic!("not a location: {other:?}"),
    }
}

type Check = fn(&RestoreTask, &Option<(String, String)>);

/// Every configuration the documentation shows, and what it must mean.
fn documented_meanings() -> Vec<(&'static str, Check)> {
    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }
    fn map(v: &[(&str, &str)]) -> BTreeMap<String, String> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }
    vec![
        ("full-restore.yaml", |t, _| {
            assert_eq!(t.backup_id, "backup-2025-01-15");
            assert_eq!(t.kafka.bootstrap_servers, s(&["localhost:9092"]));
            assert_eq!(t.topics.include, s(&["*"]));
            assert_eq!(storage_url(t), "/var/lib/kafka-backup/data");
            assert_eq!(t.consumer_group_strategy, GroupStrategy::Skip);
            assert!(!t.reset_consumer_offsets);
        }),
        ("time-windowed-restore.yaml", |t, _| {
            assert_eq!(t.time_window_start, Some(1_705_312_800_000));
            assert_eq!(t.time_window_end, Some(1_705_316_400_000));
        }),
        ("filtered-restore.yaml", |t, _| {
            assert_eq!(t.topics.include, s(&["orders", "payments-*"]));
            assert_eq!(t.topics.exclude, s(&["*-test"]));
            assert_eq!(t.source_partitions, vec![0, 1]);
        }),
        ("remapped-restore.yaml", |t, _| {
            assert_eq!(
                t.topic_mapping,
                map(&[
                    ("orders", "orders-recovered"),
                    ("payments", "payments-clone")
                ])
            );
            assert_eq!(
                t.partition_mapping,
                BTreeMap::from([(0, 0), (1, 2), (2, 4)])
            );
        }),
        ("dry-run-mode.yaml", |t, _| assert!(t.dry_run)),
        ("complete-reference.yaml", |t, creds| {
            assert_eq!(
                creds,
                &Some(("restore-user".to_string(), "kafka-secret".to_string()))
            );
            assert_eq!(
                t.kafka.bootstrap_servers,
                s(&["kafka-1:9092", "kafka-2:9092"])
            );
            assert_eq!(
                t.topics.include,
                s(&["orders", "payments", "events-*", "~transactions-\\d+"])
            );
            assert_eq!(t.topics.exclude, s(&["*-internal", "__*"]));
            assert_eq!(storage_url(t), "s3://kafka-backups/prod-cluster");
            assert_eq!(t.time_window_start, Some(1_705_312_800_000));
            assert_eq!(t.time_window_end, Some(1_705_316_400_000));
            assert_eq!(t.source_partitions, vec![0, 1, 2]);
            assert_eq!(t.topic_mapping, map(&[("orders", "orders-recovered")]));
            assert_eq!(t.partition_mapping, BTreeMap::from([(0, 0), (1, 2)]));
            assert_eq!(t.consumer_group_strategy, GroupStrategy::HeaderBased);
            assert!(t.include_original_offset_header);
            assert!(!t.dry_run);
            assert_eq!(t.max_concurrent_partitions, Some(4));
            assert_eq!(t.produce_batch_size, Some(1000));
            assert_eq!(t.rate_limit_records_per_sec, Some(50_000));
            assert_eq!(
                t.checkpoint_state.as_deref(),
                Some("/var/lib/kafka-backup/restore-checkpoint.json")
            );
            assert_eq!(t.checkpoint_interval_secs, Some(60));
            assert!(!t.reset_consumer_offsets);
            assert!(t.consumer_groups.is_empty());
            assert_eq!(
                t.offset_report.as_deref(),
                Some("/var/lib/kafka-backup/offset-mapping.json")
            );
        }),
        ("pitr-last-hour.yaml", |t, _| {
            assert_eq!(t.time_window_start, Some(1_705_309_200_000));
            assert_eq!(t.time_window_end, Some(1_705_312_800_000));
        }),
        ("pitr-specific-day.yaml", |t, _| {
            assert_eq!(t.time_window_start, Some(1_705_276_800_000));
            assert_eq!(t.time_window_end, Some(1_705_363_199_999));
        }),
        ("pitr-before-corruption.yaml", |t, _| {
            assert_eq!(
                t.time_window_start, None,
                "from the beginning of the backup"
            );
            assert_eq!(t.time_window_end, Some(1_705_330_800_000));
        }),
        ("topics-glob.yaml", |t, _| {
            assert_eq!(
                t.topics.include,
                s(&["orders", "payments-*", "*-events", "??-topic"])
            );
        }),
        ("topics-regex.yaml", |t, _| {
            assert_eq!(
                t.topics.include,
                s(&["~orders-\\d+", "~^(payments|billing)$", "~.*-v[0-9]+$"])
            );
        }),
        ("topics-include-exclude.yaml", |t, _| {
            assert_eq!(t.topics.include, s(&["*"]));
            assert_eq!(t.topics.exclude, s(&["__*", "*-changelog", "~.*-test$"]));
        }),
        ("partition-filtering.yaml", |t, _| {
            assert_eq!(t.source_partitions, vec![0, 1, 2]);
        }),
        ("partition-remapping.yaml", |t, _| {
            assert_eq!(
                t.partition_mapping,
                BTreeMap::from([(0, 0), (1, 2), (2, 4)])
            );
        }),
        ("topic-remapping.yaml", |t, _| {
            assert_eq!(
                t.topic_mapping,
                map(&[
                    ("orders", "orders-recovered"),
                    ("payments", "payments-backup"),
                    ("events", "events-clone")
                ])
            );
        }),
        ("strategy-skip.yaml", |t, _| {
            assert_eq!(t.consumer_group_strategy, GroupStrategy::Skip);
            assert!(!t.reset_consumer_offsets);
        }),
        ("strategy-header-based.yaml", |t, _| {
            assert_eq!(t.consumer_group_strategy, GroupStrategy::HeaderBased);
            assert!(t.include_original_offset_header);
            assert!(!t.reset_consumer_offsets);
        }),
        ("strategy-timestamp-based.yaml", |t, _| {
            assert_eq!(t.consumer_group_strategy, GroupStrategy::TimestampBased);
        }),
        ("strategy-manual.yaml", |t, _| {
            assert_eq!(t.consumer_group_strategy, GroupStrategy::Manual);
            assert_eq!(t.offset_report.as_deref(), Some("./offset-mapping.json"));
        }),
        ("automatic-offset-reset.yaml", |t, _| {
            assert!(t.reset_consumer_offsets);
            assert_eq!(
                t.consumer_group_strategy,
                GroupStrategy::HeaderBased,
                "translated through the restore's exact offset mapping"
            );
            assert_eq!(
                t.consumer_groups,
                s(&["my-consumer-group", "another-group"])
            );
            assert!(t.snapshot_before_reset, "a safety snapshot first");
        }),
        ("checkpointing.yaml", |t, _| {
            assert_eq!(
                t.checkpoint_state.as_deref(),
                Some("/var/lib/kafka-backup/restore-checkpoint.json")
            );
            assert_eq!(t.checkpoint_interval_secs, Some(60));
        }),
        ("use-case-disaster-recovery.yaml", |t, _| {
            assert_eq!(t.topics.include, s(&["orders"]));
            assert_eq!(storage_url(t), "s3://kafka-backups");
            assert_eq!(t.consumer_group_strategy, GroupStrategy::Skip);
        }),
        ("use-case-point-in-time-recovery.yaml", |t, _| {
            assert_eq!(t.topics.include, s(&["transactions"]));
            assert_eq!(t.time_window_start, None);
            assert_eq!(t.time_window_end, Some(1_705_330_800_000));
            assert_eq!(
                t.topic_mapping,
                map(&[("transactions", "transactions-recovered")])
            );
            assert!(!t.dry_run);
        }),
        ("use-case-environment-cloning.yaml", |t, _| {
            assert_eq!(t.kafka.bootstrap_servers, s(&["staging-kafka:9092"]));
            assert_eq!(
                t.topic_mapping,
                map(&[
                    ("orders", "orders-staging"),
                    ("payments", "payments-staging"),
                    ("inventory", "inventory-staging")
                ])
            );
            assert_eq!(t.consumer_group_strategy, GroupStrategy::TimestampBased);
            assert!(!t.reset_consumer_offsets, "no group is changed");
            assert_eq!(t.rate_limit_records_per_sec, Some(10_000));
        }),
        ("use-case-partition-recovery.yaml", |t, _| {
            assert_eq!(t.topics.include, s(&["high-volume-topic"]));
            assert_eq!(t.source_partitions, vec![2]);
            assert_eq!(storage_url(t), "/var/lib/kafka-backup");
            assert_eq!(t.consumer_group_strategy, GroupStrategy::Skip);
        }),
        ("use-case-cross-cluster-migration.yaml", |t, creds| {
            assert_eq!(
                creds,
                &Some(("confluent-key".to_string(), "confluent-secret".to_string()))
            );
            assert_eq!(t.topics.include, s(&["*"]));
            assert_eq!(t.topics.exclude, s(&["__*"]));
            assert_eq!(t.consumer_group_strategy, GroupStrategy::HeaderBased);
            assert!(t.include_original_offset_header);
            assert_eq!(t.max_concurrent_partitions, Some(8));
        }),
        ("restore-to-different-topic.yaml", |t, _| {
            assert_eq!(t.topic_mapping, map(&[("orders", "orders-recovered")]));
        }),
        ("rate-limiting.yaml", |t, _| {
            assert_eq!(t.rate_limit_records_per_sec, Some(50_000));
        }),
        ("checkpointing-local-file.yaml", |t, _| {
            assert_eq!(t.checkpoint_state.as_deref(), Some("./checkpoint.json"));
            assert_eq!(t.checkpoint_interval_secs, Some(60));
        }),
        ("automatic-reset-header-based.yaml", |t, _| {
            assert_eq!(t.consumer_group_strategy, GroupStrategy::HeaderBased);
            assert!(t.reset_consumer_offsets);
            assert_eq!(
                t.consumer_groups,
                s(&["order-processor", "payment-service", "analytics-consumer"])
            );
        }),
        ("three-phase-restore.yaml", |t, _| {
            assert_eq!(t.backup_id, "production-backup-001");
            assert_eq!(t.kafka.bootstrap_servers, s(&["kafka-dr:9092"]));
            assert_eq!(storage_url(t), "s3://my-kafka-backups");
            assert_eq!(t.consumer_group_strategy, GroupStrategy::HeaderBased);
            assert!(t.reset_consumer_offsets);
            assert_eq!(
                t.consumer_groups,
                s(&["order-processor", "payment-service", "analytics-consumer"])
            );
        }),
    ]
}

#[test]
fn every_documented_restore_configuration_parses_with_its_meaning() {
    let meanings = documented_meanings();
    let mut files: Vec<String> = std::fs::read_dir(fixtures().join("restore-configs"))
        .expect("fixtures")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut named: Vec<String> = meanings.iter().map(|(f, _)| f.to_string()).collect();
    named.sort();
    assert_eq!(files, named, "every fixture has its meaning checked");
    for (file, check) in meanings {
        let text = complete(&fixture(&format!("restore-configs/{file}")));
        let c = parse_config(&text, file, env)
            .unwrap_or_else(|e| panic!("{file} does not parse: {e}\n{text}"));
        check(&c.task, &c.credentials);
    }
}

fn backup(bs: &str, path: &str, topics: &str, id: &str, env: &[(&str, &str)]) {
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
            "-f",
            "json",
        ],
        env,
    );
    expect_code(&out, 0);
}

/// Writes `text` with each `(from, to)` replaced to `dir/name`; returns the path.
fn write_replaced(dir: &Path, name: &str, text: &str, replace: &[(&str, &str)]) -> String {
    let mut text = text.to_string();
    for (from, to) in replace {
        assert!(text.contains(from), "{from:?} is not in {name}");
        text = text.replace(from, to);
    }
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.to_str().expect("utf8").to_string()
}

/// tansu's end offset is its last batch's base offset + 1, and the offsets a restore commits
/// are clamped to the end offset as Kafka's tool does: one record per produce batch keeps
/// tansu's end offset exact. A command-line property, so the configuration stays as written.
const ONE_RECORD_BATCHES: [&str; 2] = ["-X", "batch.num.messages=1"];

/// The documentation's automatic offset reset, in its full restore configuration, restores a
/// backup into another cluster and commits the listed groups' offsets there; a group not
/// listed is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_automatic_offset_reset_configuration_commits_the_listed_groups() {
    let source = Tansu::start();
    let target = Tansu::start();
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    create_and_fill(&src, "orders", 2, 100).await;
    let a = admin(&src).await;
    commit(&a, "my-consumer-group", &commits("orders", &[40, 70])).await;
    commit(&a, "another-group", &commits("orders", &[0, 100])).await;
    commit(&a, "not-listed", &commits("orders", &[10, 10])).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("data");
    let store_s = store.to_str().expect("utf8");
    backup(&src, store_s, "orders", "backup-2025-01-15", &[]);

    // The target cluster has the topic, empty, and has never seen the groups.
    create_topic(&dst, "orders", 2, &[]).await;
    let text = format!(
        "{}\n{}",
        fixture("restore-configs/full-restore.yaml"),
        fixture("restore-configs/automatic-offset-reset.yaml")
    );
    let cfg = write_replaced(
        dir.path(),
        "restore.yaml",
        &text,
        &[
            ("localhost:9092", &dst),
            ("/var/lib/kafka-backup/data", store_s),
        ],
    );
    let mut args = vec!["restore", "--config", &cfg, "-f", "json"];
    args.extend(ONE_RECORD_BATCHES);
    let out = cli(&args, &[]);
    expect_code(&out, 0);
    let j = out.json();
    assert_eq!(j["consumer_groups"]["reset"]["status"], "success", "{j}");
    assert_eq!(j["consumer_groups"]["reset"]["successful_groups"], 2, "{j}");

    assert_same(
        &read_topic(&dst, "orders", 2),
        &read_topic(&src, "orders", 2),
    );
    let b = admin(&dst).await;
    assert_eq!(
        topic_offsets(&committed_map(&b, "my-consumer-group").await, "orders"),
        vec![40, 70]
    );
    assert_eq!(
        topic_offsets(&committed_map(&b, "another-group").await, "orders"),
        vec![0, 100]
    );
    assert!(committed_map(&b, "not-listed").await.is_empty());
}

/// The documentation's complete filesystem examples and its three-phase restore from S3 (with
/// the bucket it names), run as written, each into a cluster holding the empty topics: the
/// full restore, one partition's recovery, and the data then the listed groups' offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_complete_configurations_restore_what_they_say() {
    let source = Tansu::start();
    let target = Tansu::start();
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    let dir = tempfile::tempdir().expect("tempdir");

    // The full restore: every backed-up topic.
    create_and_fill(&src, "events", 2, 15).await;
    let full = dir.path().join("full");
    let full_s = full.to_str().expect("utf8");
    backup(&src, full_s, "events", "backup-2025-01-15", &[]);
    create_topic(&dst, "events", 2, &[]).await;
    let cfg = write_replaced(
        dir.path(),
        "full.yaml",
        &fixture("restore-configs/full-restore.yaml"),
        &[
            ("localhost:9092", &dst),
            ("/var/lib/kafka-backup/data", full_s),
        ],
    );
    expect_code(&cli(&["restore", "--config", &cfg], &[]), 0);
    assert_same(
        &read_topic(&dst, "events", 2),
        &read_topic(&src, "events", 2),
    );

    // One partition's recovery: partition 2 of high-volume-topic, and nothing else.
    create_and_fill(&src, "high-volume-topic", 3, 50).await;
    let store = dir.path().join("kafka-backup");
    let store_s = store.to_str().expect("utf8");
    backup(&src, store_s, "high-volume-topic", "backup-2025-01-15", &[]);
    create_topic(&dst, "high-volume-topic", 3, &[]).await;
    let cfg = write_replaced(
        dir.path(),
        "partition.yaml",
        &fixture("restore-configs/use-case-partition-recovery.yaml"),
        &[("localhost:9092", &dst), ("/var/lib/kafka-backup", store_s)],
    );
    expect_code(&cli(&["restore", "--config", &cfg], &[]), 0);
    let mut want = read_topic(&src, "high-volume-topic", 3);
    want.retain(|(_, p), _| *p == 2);
    assert_same(&read_topic(&dst, "high-volume-topic", 3), &want);

    // The three-phase restore from S3: data, then the listed groups' offsets.
    let s3 = S3Server::start();
    let (status, body) = http(s3.server.port, "PUT", "/my-kafka-backups", &[], b"");
    assert!(
        status == 200 || status == 409,
        "bucket: HTTP {status}: {body}"
    );
    let s3_env_owned = s3.env();
    let s3_env: Vec<(&str, &str)> = s3_env_owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    create_and_fill(&src, "orders", 2, 60).await;
    create_and_fill(&src, "payments", 1, 30).await;
    let a = admin(&src).await;
    commit(&a, "order-processor", &commits("orders", &[25, 60])).await;
    commit(&a, "payment-service", &commits("payments", &[12])).await;
    commit(&a, "analytics-consumer", &commits("orders", &[1, 2])).await;
    commit(&a, "unlisted", &commits("orders", &[5, 5])).await;
    backup(
        &src,
        "s3://my-kafka-backups",
        "orders,payments",
        "production-backup-001",
        &s3_env,
    );
    create_topic(&dst, "orders", 2, &[]).await;
    create_topic(&dst, "payments", 1, &[]).await;
    let cfg = write_replaced(
        dir.path(),
        "three-phase-restore.yaml",
        &fixture("restore-configs/three-phase-restore.yaml"),
        &[("kafka-dr:9092", &dst)],
    );
    let mut args = vec!["three-phase-restore", "--config", &cfg, "-f", "json"];
    args.extend(ONE_RECORD_BATCHES);
    let out = cli(&args, &s3_env);
    expect_code(&out, 0);
    assert_same(
        &read_topic(&dst, "orders", 2),
        &read_topic(&src, "orders", 2),
    );
    assert_same(
        &read_topic(&dst, "payments", 1),
        &read_topic(&src, "payments", 1),
    );
    let b = admin(&dst).await;
    for (group, topic, want) in [
        ("order-processor", "orders", vec![25, 60]),
        ("payment-service", "payments", vec![12]),
        ("analytics-consumer", "orders", vec![1, 2]),
    ] {
        assert_eq!(
            topic_offsets(&committed_map(&b, group).await, topic),
            want,
            "{group}"
        );
    }
    assert!(committed_map(&b, "unlisted").await.is_empty());
}

/// A directory with `kafka-backup` pointing at `tidemark`, for `PATH`.
fn kafka_backup_on_path(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    std::os::unix::fs::symlink(BIN, bin.join("kafka-backup")).expect("symlink");
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs `script` with bash in `dir`. The documentation's scripts name a variable `GROUPS`,
/// which bash reserves for the user's group ids (an assignment to it is silently ignored);
/// bash reads `BASH_ENV` first, and there `GROUPS` is unset so it becomes an ordinary
/// variable, as the scripts' authors meant. The scripts themselves stay as written.
fn run_script(dir: &Path, script: &str, path_var: &str) -> CliOutput {
    let prelude = dir.join("prelude.sh");
    std::fs::write(&prelude, "unset GROUPS\n").expect("prelude");
    let out = Command::new("bash")
        .arg(script)
        .current_dir(dir)
        .env("PATH", path_var)
        .env("BASH_ENV", &prelude)
        .env_remove("RUST_LOG")
        .env_remove("TIDEMARK_PATH")
        .output()
        .expect("run bash");
    CliOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The topic a restore of `backup_id` writes to, holding `existing` records already, so that
/// every source offset U lands at U + `existing`.
fn restore_config(dir: &Path, bs: &str, store: &str, backup_id: &str) -> String {
    let text = format!(
        "mode: restore\nbackup_id: {backup_id}\ntarget:\n  bootstrap_servers: [{bs}]\n  topics:\n    include: [orders]\nstorage:\n  backend: filesystem\n  path: {store}\nrestore:\n  topic_mapping:\n    orders: orders-restored\n  existing_data: append\n  produce_batch_size: 1\n"
    );
    let path = dir.join("restore-config.yaml");
    std::fs::write(&path, text).expect("restore config");
    path.to_str().expect("utf8").to_string()
}

/// The documentation's complete restore workflow: snapshot, restore, bulk reset from the
/// backup's offset mapping, check the JSON status. The groups end on the restored records they
/// had not read, and the snapshot holds where they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_complete_restore_workflow_script_moves_the_groups() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_and_fill(&bs, "orders", 3, 30).await;
    let a = admin(&bs).await;
    commit(&a, "order-processor", &commits("orders", &[10, 20, 30])).await;
    commit(&a, "inventory-service", &commits("orders", &[0, 5, 29])).await;
    commit(
        &a,
        "notification-handler",
        &commits("orders", &[30, 30, 30]),
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("storage");
    let store_s = store.to_str().expect("utf8");
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).expect("tmp");
    let tmp_s = format!("{}/", tmp.display());
    backup(&bs, store_s, "orders", "backup-20241128", &[]);
    // The restored topic already holds 4 records per partition: source offset U lands at U + 4.
    create_and_fill(&bs, "orders-restored", 3, 4).await;
    restore_config(dir.path(), &bs, store_s, "backup-20241128");

    let script = write_replaced(
        dir.path(),
        "workflow.sh",
        &fixture("workflows/complete-restore-workflow.sh"),
        &[
            (
                "STORAGE_PATH=\"/backup/storage\"",
                &format!("STORAGE_PATH=\"{store_s}\""),
            ),
            (
                "BOOTSTRAP=\"kafka1:9092,kafka2:9092,kafka3:9092\"",
                &format!("BOOTSTRAP=\"{bs}\""),
            ),
            ("/tmp/snapshot.json", &format!("{tmp_s}snapshot.json")),
            (
                "/tmp/reset-result.json",
                &format!("{tmp_s}reset-result.json"),
            ),
        ],
    );
    let out = run_script(dir.path(), &script, &kafka_backup_on_path(dir.path()));
    expect_code(&out, 0);
    assert!(
        out.stdout.contains("Restore completed successfully!"),
        "{}",
        out.stdout
    );
    let reset: serde_json::Value = serde_json::from_slice(
        &std::fs::read(tmp.join("reset-result.json")).expect("reset result"),
    )
    .expect("json");
    assert_eq!(reset["status"], "success", "{reset}");
    assert_eq!(reset["total_groups"], 3, "{reset}");

    for (group, want) in [
        ("order-processor", vec![14, 24, 34]),
        ("inventory-service", vec![4, 9, 33]),
        ("notification-handler", vec![34, 34, 34]),
    ] {
        let offsets = committed_map(&a, group).await;
        assert_eq!(topic_offsets(&offsets, "orders-restored"), want, "{group}");
    }
    // The workflow's snapshot holds the offsets before it: a rollback to it is possible.
    let snap: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.join("snapshot.json")).expect("snapshot result"))
            .expect("json");
    let id = snap["snapshot_id"].as_str().expect("snapshot id");
    assert!(
        out.stdout.contains(&format!("Created snapshot: {id}")),
        "{}",
        out.stdout
    );
    assert_eq!(snap["groups"], 3, "{snap}");
    assert_eq!(snap["description"], "Pre-restore for backup-20241128");
    let show = cli(
        &[
            "offset-rollback",
            "show",
            "-p",
            store_s,
            "-s",
            id,
            "-f",
            "json",
        ],
        &[],
    );
    expect_code(&show, 0);
    assert!(show.stdout.contains("order-processor"), "{}", show.stdout);
}

/// The documentation's bulk reset with error handling: silent when every group was reset (the
/// groups end where the offset mapping puts them); when a group is in use, the command's exit
/// code (10) and its JSON report are passed on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bulk_reset_script_resets_or_passes_the_failure_on() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_and_fill(&bs, "orders", 2, 20).await;
    let a = admin(&bs).await;
    commit(&a, "group1", &commits("orders", &[3, 4])).await;
    commit(&a, "group2", &commits("orders", &[20, 0])).await;
    commit(&a, "group3", &commits("orders", &[7, 7])).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("storage");
    let store_s = store.to_str().expect("utf8");
    backup(&bs, store_s, "orders", "backup-123", &[]);
    create_and_fill(&bs, "orders-restored", 2, 4).await;
    let cfg = restore_config(dir.path(), &bs, store_s, "backup-123");
    expect_code(&cli(&["restore", "--config", &cfg], &[]), 0);

    let script = write_replaced(
        dir.path(),
        "bulk.sh",
        &fixture("workflows/bulk-reset-with-error-handling.sh"),
        &[("/backup/storage", store_s), ("kafka:9092", &bs)],
    );
    let path_var = kafka_backup_on_path(dir.path());
    let out = run_script(dir.path(), &script, &path_var);
    expect_code(&out, 0);
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("", ""),
        "nothing to report"
    );
    for (group, want) in [
        ("group1", vec![7, 8]),
        ("group2", vec![24, 4]),
        ("group3", vec![11, 11]),
    ] {
        let offsets = committed_map(&a, group).await;
        assert_eq!(topic_offsets(&offsets, "orders-restored"), want, "{group}");
    }

    // group3 is in use: it is not reset, the script says so and exits with the command's code.
    commit(&a, "group3", &commits("orders-restored", &[0, 0])).await;
    let _live = LiveConsumer::start(&bs, "group3", &["orders-restored"]);
    tidemark_tests::wait_for_state(&a, "group3", true).await;
    let out = run_script(dir.path(), &script, &path_var);
    expect_code(&out, 10);
    assert!(
        out.stdout.contains("Command failed with exit code 10"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("\"failed_groups\": 1"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("group3"), "{}", out.stdout);
}

/// Writes one record per timestamp to partition 0 of a new `topic`, the last in a batch of
/// its own (tansu's end offset is its last batch's base offset + 1).
async fn produce_at(bs: &str, topic: &str, stamps: &[i64]) {
    use rdkafka::producer::{FutureRecord, Producer};
    create_topic(bs, topic, 1, &[]).await;
    let p = tidemark_tests::records::producer(bs);
    for (i, ts) in stamps.iter().enumerate() {
        if i + 1 == stamps.len() {
            p.flush(std::time::Duration::from_secs(10)).expect("flush");
        }
        let v = format!("{topic}-{i}");
        p.send(
            FutureRecord::to(topic)
                .partition(0)
                .key(&v)
                .payload(&v)
                .timestamp(*ts),
            std::time::Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
    }
    p.flush(std::time::Duration::from_secs(10)).expect("flush");
}

/// The documentation's use cases that restore from S3 (bucket `kafka-backups`, one backup):
/// disaster recovery of `orders`, point-in-time recovery of `transactions` up to 15:00 into a
/// new topic, and cloning three topics under new names with timestamp-based offsets but no
/// offset reset (no group is touched).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_s3_use_cases_restore_what_they_say() {
    let source = Tansu::start();
    let target = Tansu::start();
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    let dir = tempfile::tempdir().expect("tempdir");
    let s3 = S3Server::start();
    let (status, body) = http(s3.server.port, "PUT", "/kafka-backups", &[], b"");
    assert!(
        status == 200 || status == 409,
        "bucket: HTTP {status}: {body}"
    );
    let s3_env_owned = s3.env();
    let s3_env: Vec<(&str, &str)> = s3_env_owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    create_and_fill(&src, "orders", 2, 20).await;
    create_and_fill(&src, "payments", 1, 10).await;
    create_and_fill(&src, "inventory", 1, 5).await;
    // 14:00, 14:59:59.999, 15:00 (inclusive end), 15:00:00.001, 16:00.
    let cutoff = 1_705_330_800_000;
    produce_at(
        &src,
        "transactions",
        &[
            cutoff - 3_600_000,
            cutoff - 1,
            cutoff,
            cutoff + 1,
            cutoff + 3_600_000,
        ],
    )
    .await;
    let a = admin(&src).await;
    commit(&a, "order-processor", &commits("orders", &[3, 4])).await;
    backup(
        &src,
        "s3://kafka-backups",
        "orders,payments,inventory,transactions",
        "backup-2025-01-15",
        &s3_env,
    );
    let before = |topic: &str, parts: i32| read_topic(&src, topic, parts);
    let rename =
        |r: tidemark_tests::records::Records, to: &str| -> tidemark_tests::records::Records {
            r.into_iter()
                .map(|((_, p), recs)| ((to.to_string(), p), recs))
                .collect()
        };
    for (topic, parts) in [
        ("orders", 2),
        ("transactions-recovered", 1),
        ("orders-staging", 2),
        ("payments-staging", 1),
        ("inventory-staging", 1),
    ] {
        create_topic(&dst, topic, parts, &[]).await;
    }
    let run = |file: &str, from: &str| {
        let cfg = write_replaced(
            dir.path(),
            file,
            &fixture(&format!("restore-configs/{file}")),
            &[(from, &dst)],
        );
        expect_code(&cli(&["restore", "--config", &cfg], &s3_env), 0);
    };

    run("use-case-disaster-recovery.yaml", "localhost:9092");
    assert_same(&read_topic(&dst, "orders", 2), &before("orders", 2));

    run("use-case-point-in-time-recovery.yaml", "localhost:9092");
    let mut want = rename(before("transactions", 1), "transactions-recovered");
    for recs in want.values_mut() {
        recs.retain(|r| r.timestamp <= cutoff);
    }
    assert_eq!(want.values().map(Vec::len).sum::<usize>(), 3);
    assert_same(&read_topic(&dst, "transactions-recovered", 1), &want);

    run("use-case-environment-cloning.yaml", "staging-kafka:9092");
    for (from, to, parts) in [
        ("orders", "orders-staging", 2),
        ("payments", "payments-staging", 1),
        ("inventory", "inventory-staging", 1),
    ] {
        assert_same(
            &read_topic(&dst, to, parts),
            &rename(before(from, parts), to),
        );
    }
    assert!(
        committed_map(&admin(&dst).await, "order-processor")
            .await
            .is_empty(),
        "no offset reset was asked for"
    );
}

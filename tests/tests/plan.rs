//! Plan, then approve, end to end against a real Kafka-protocol broker (tansu) on loopback,
//! through the real binary: `--plan-out` / `planOut` writes a plan and changes nothing (topics
//! and offsets read before and after); `--approved-plan` / `approvedPlan` executes exactly the
//! plan (offsets equal the planned targets, restored records equal the backup's); a cluster that
//! changed in between, a tampered plan file or a wrong hash is refused with exit 15 and nothing
//! changes.

use std::collections::BTreeMap;
use std::path::Path;

use tidemark::task::TaskResult;
use tidemark_tests::records::{create_topic, delete_topic, read_topic};
use tidemark_tests::{
    commit, commits, committed_map, connect_admin as admin, create_and_fill, run_cli,
    topic_offsets, wait_for_state, CliOutput, LiveConsumer, Tansu,
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

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

/// The log end offsets of `topic`'s partitions, in partition order.
async fn ends(admin: &tidemark::kafka::GroupAdmin, topic: &str, partitions: i32) -> Vec<i64> {
    let tps: Vec<(String, i32)> = (0..partitions).map(|p| (topic.to_string(), p)).collect();
    admin
        .list_offsets_isolated(&tps, tidemark::kafka::OffsetSpec::Latest, false)
        .await
        .expect("list offsets")
        .into_iter()
        .map(|o| o.expect("offset").offset)
        .collect()
}

async fn topics(admin: &tidemark::kafka::GroupAdmin) -> Vec<String> {
    let mut t = admin.list_topics().await.expect("topics");
    t.retain(|n| !n.starts_with("__"));
    t.sort();
    t
}

/// Writes one more record (a single-record batch) to each partition of `topic`.
async fn produce_more(bs: &str, topic: &str, partitions: i32) {
    use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
    let p: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bs)
        .create()
        .expect("producer");
    for part in 0..partitions {
        p.send(
            FutureRecord::to(topic)
                .partition(part)
                .key("more")
                .payload("more"),
            std::time::Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
        p.flush(std::time::Duration::from_secs(10)).expect("flush");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_reset_commits_exactly_its_plan_and_refuses_a_changed_cluster() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_and_fill(&bs, "orders", 2, 20).await;
    let admin = admin(&bs).await;
    commit(&admin, "billing", &commits("orders", &[5, 7])).await;
    let work = tempfile::tempdir().expect("tempdir");
    let store = work.path().join("store");
    let plan = work.path().join("reset-plan.json");
    let reset_flags = [
        "offset-reset",
        "execute",
        "--bootstrap-servers",
        &bs,
        "-g",
        "billing",
        "--topic",
        "orders",
        "--to-latest",
        "-p",
        s(&store),
        "--plan-out",
        s(&plan),
        "-f",
        "json",
    ];

    // Planning changes nothing in Kafka.
    let (topics_before, ends_before) = (topics(&admin).await, ends(&admin, "orders", 2).await);
    let out = cli(&reset_flags);
    expect_code(&out, 0);
    let j = out.json();
    let hash = j["hash"].as_str().expect("hash").to_string();
    assert_eq!(hash.len(), 16, "{j}");
    assert_eq!(
        (j["groups"].as_u64(), j["offsets"].as_u64()),
        (Some(1), Some(2))
    );
    let safety = j["safetySnapshotId"]
        .as_str()
        .expect("safety id")
        .to_string();
    assert_eq!(
        topic_offsets(&committed_map(&admin, "billing").await, "orders"),
        vec![5, 7],
        "planning commits nothing"
    );
    assert_eq!(topics(&admin).await, topics_before);
    assert_eq!(ends(&admin, "orders", 2).await, ends_before);
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&plan).expect("plan file")).expect("plan json");
    assert_eq!(doc["apiVersion"], "tidemark.dev/plan/v1");
    assert_eq!(doc["kind"], "offsetReset");
    assert_eq!(doc["offsets"]["groups"][0]["partitions"][0]["target"], 20);
    assert_eq!(
        cli(&["offset-rollback", "show", "-p", s(&store), "-s", &safety]).code,
        3,
        "planning takes no safety snapshot"
    );

    // A new record on orders-0: --to-latest would now give 21 there, so the plan is refused.
    produce_more(&bs, "orders", 1).await;
    let approved = |hash: &str| {
        cli(&[
            "offset-reset",
            "execute",
            "--bootstrap-servers",
            &bs,
            "-p",
            s(&store),
            "--approved-plan",
            s(&plan),
            "--plan-hash",
            hash,
            "-f",
            "json",
        ])
    };
    let out = approved(&hash);
    expect_code(&out, 15);
    assert!(
        out.stderr
            .contains("partition orders-0 ends at offset 21 (planned with 20)"),
        "{}",
        out.stderr
    );
    assert_eq!(
        topic_offsets(&committed_map(&admin, "billing").await, "orders"),
        vec![5, 7],
        "a refused plan commits nothing"
    );

    // Plan again; a commit to the group in between refuses it too, naming the partition.
    let out = cli(&reset_flags);
    expect_code(&out, 0);
    let hash = out.json()["hash"].as_str().expect("hash").to_string();
    commit(&admin, "billing", &commits("orders", &[6, 7])).await;
    let out = approved(&hash);
    expect_code(&out, 15);
    assert!(
        out.stderr
            .contains("group 'billing' committed offset on orders-0 is 6 (planned with 5)"),
        "{}",
        out.stderr
    );
    assert_eq!(
        topic_offsets(&committed_map(&admin, "billing").await, "orders"),
        vec![6, 7]
    );

    // Plan again; a wrong hash and a tampered file are refused; the approved plan executes.
    let out = cli(&reset_flags);
    expect_code(&out, 0);
    let hash = out.json()["hash"].as_str().expect("hash").to_string();
    let out = approved("0000000000000000");
    expect_code(&out, 15);
    assert!(
        out.stderr.contains("not the approved 0000000000000000"),
        "{}",
        out.stderr
    );
    let original = std::fs::read_to_string(&plan).expect("plan");
    let tampered = original.replacen("\"target\": 21", "\"target\": 2", 1);
    assert_ne!(tampered, original, "the plan lists target 21");
    std::fs::write(&plan, &tampered).expect("tamper");
    expect_code(&approved(&hash), 15);
    assert_eq!(
        topic_offsets(&committed_map(&admin, "billing").await, "orders"),
        vec![6, 7]
    );
    std::fs::write(&plan, &original).expect("restore the plan");
    let out = approved(&hash);
    expect_code(&out, 0);
    let j = out.json();
    assert_eq!(j["plan"]["hash"], hash.as_str(), "{j}");
    assert_eq!(j["snapshot_id"], serde_json::json!(safety_of(&original)));
    assert_eq!(
        topic_offsets(&committed_map(&admin, "billing").await, "orders"),
        vec![21, 20],
        "exactly the planned targets"
    );
    let shown = cli(&[
        "offset-rollback",
        "show",
        "-p",
        s(&store),
        "-s",
        &safety_of(&original),
        "-f",
        "json",
    ]);
    expect_code(&shown, 0);
    assert!(shown.stdout.contains("billing"), "{}", shown.stdout);
}

fn safety_of(plan: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(plan).expect("plan json");
    v["offsets"]["safetySnapshotId"]
        .as_str()
        .expect("safety snapshot id")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_rollback_commits_its_plan_after_the_named_safety_snapshot() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_and_fill(&bs, "orders", 2, 20).await;
    let admin = admin(&bs).await;
    commit(&admin, "billing", &commits("orders", &[5, 7])).await;
    let work = tempfile::tempdir().expect("tempdir");
    let store = work.path().join("store");
    let plan = work.path().join("rollback-plan.json");
    let snap = cli(&[
        "offset-rollback",
        "snapshot",
        "-p",
        s(&store),
        "--bootstrap-servers",
        &bs,
        "-g",
        "billing",
        "-s",
        "before",
    ]);
    expect_code(&snap, 0);
    commit(&admin, "billing", &commits("orders", &[10, 12])).await;
    let plan_it = || {
        cli(&[
            "offset-rollback",
            "rollback",
            "-p",
            s(&store),
            "--bootstrap-servers",
            &bs,
            "-s",
            "before",
            "--safety-snapshot-id",
            "undo-1",
            "--plan-out",
            s(&plan),
            "-f",
            "json",
        ])
    };
    let approved = |hash: &str| {
        cli(&[
            "offset-rollback",
            "rollback",
            "-p",
            s(&store),
            "--bootstrap-servers",
            &bs,
            "--approved-plan",
            s(&plan),
            "--plan-hash",
            hash,
            "-f",
            "json",
        ])
    };

    let out = plan_it();
    expect_code(&out, 0);
    let j = out.json();
    let hash = j["hash"].as_str().expect("hash").to_string();
    assert_eq!(j["safetySnapshotId"], "undo-1");
    assert_eq!(j["offsets"], 2, "{j}");
    assert_eq!(
        topic_offsets(&committed_map(&admin, "billing").await, "orders"),
        vec![10, 12],
        "planning commits nothing"
    );

    // A commit in between: refused, nothing changed, no safety snapshot taken.
    commit(&admin, "billing", &commits("orders", &[11, 12])).await;
    let out = approved(&hash);
    expect_code(&out, 15);
    assert!(
        out.stderr
            .contains("group 'billing' committed offset on orders-0 is 11 (planned with 10)"),
        "{}",
        out.stderr
    );
    assert_eq!(
        topic_offsets(&committed_map(&admin, "billing").await, "orders"),
        vec![11, 12]
    );
    expect_code(
        &cli(&["offset-rollback", "show", "-p", s(&store), "-s", "undo-1"]),
        3,
    );

    let out = plan_it();
    expect_code(&out, 0);
    let hash = out.json()["hash"].as_str().expect("hash").to_string();
    let out = approved(&hash);
    expect_code(&out, 0);
    let j = out.json();
    assert_eq!(j["plan"]["hash"], hash.as_str(), "{j}");
    assert_eq!(j["safety_snapshot_id"], "undo-1", "{j}");
    assert_eq!(
        topic_offsets(&committed_map(&admin, "billing").await, "orders"),
        vec![5, 7],
        "the snapshot's offsets, as planned"
    );
    let undo = cli(&[
        "offset-rollback",
        "show",
        "-p",
        s(&store),
        "-s",
        "undo-1",
        "-f",
        "json",
    ]);
    expect_code(&undo, 0);
    let u = undo.json();
    assert_eq!(
        u["groups"]["billing"]["topics"]["orders"]["0"]["offset"], 11,
        "{u}"
    );
}

/// Backs up `orders` as backup `b1` into `store`.
fn back_up_orders(bs: &str, store: &Path) {
    expect_code(
        &cli(&[
            "backup",
            "--bootstrap-servers",
            bs,
            "-p",
            s(store),
            "--topics",
            "orders",
            "--backup-id",
            "b1",
        ]),
        0,
    );
}

/// A restore configuration of backup `b1` of `orders` into `orders-copy`.
fn restore_config(dir: &Path, bs: &str, store: &Path) -> String {
    let text = format!(
        "mode: restore\nbackup_id: b1\ntarget:\n  bootstrap_servers: [{bs}]\n  topics:\n    include: [orders]\nstorage:\n  backend: filesystem\n  path: {}\nrestore:\n  create_topics: true\n  produce_batch_size: 1\n  topic_mapping:\n    orders: orders-copy\n",
        store.display()
    );
    let p = dir.join("restore.yaml");
    std::fs::write(&p, text).expect("write config");
    s(&p).to_string()
}

fn values(r: &tidemark_tests::records::Records, topic: &str) -> BTreeMap<i32, Vec<Vec<u8>>> {
    r.iter()
        .filter(|((t, _), _)| t == topic)
        .map(|((_, p), recs)| {
            (
                *p,
                recs.iter()
                    .map(|r| r.value.clone().unwrap_or_default())
                    .collect(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_restore_writes_its_plan_and_refuses_a_target_created_since() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_and_fill(&bs, "orders", 2, 15).await;
    let admin = admin(&bs).await;
    let work = tempfile::tempdir().expect("tempdir");
    let store = work.path().join("store");
    let plan = work.path().join("restore-plan.json");
    back_up_orders(&bs, &store);
    let cfg = restore_config(work.path(), &bs, &store);

    let before = topics(&admin).await;
    let out = cli(&[
        "restore",
        "--config",
        &cfg,
        "--plan-out",
        s(&plan),
        "-f",
        "json",
    ]);
    expect_code(&out, 0);
    let j = out.json();
    let hash = j["hash"].as_str().expect("hash").to_string();
    assert_eq!(
        (j["records"].as_u64(), j["partitions"].as_u64()),
        (Some(30), Some(2))
    );
    assert_eq!(j["topicsToCreate"][0], "orders-copy", "{j}");
    assert_eq!(topics(&admin).await, before, "planning creates nothing");
    let approved = || {
        cli(&[
            "restore",
            "--config",
            &cfg,
            "--approved-plan",
            s(&plan),
            "--plan-hash",
            &hash,
            "-f",
            "json",
        ])
    };

    // The target topic the plan creates exists now: refused, nothing written to it.
    create_topic(&bs, "orders-copy", 2, &[]).await;
    let out = approved();
    expect_code(&out, 15);
    assert!(
        out.stderr
            .contains("topic 'orders-copy' exists now (the plan creates it)"),
        "{}",
        out.stderr
    );
    assert_eq!(
        ends(&admin, "orders-copy", 2).await,
        vec![0, 0],
        "nothing written"
    );

    // As planned again: the restore runs and writes exactly the backup's records.
    delete_topic(&bs, "orders-copy").await;
    let out = approved();
    expect_code(&out, 0);
    let j = out.json();
    assert_eq!(j["plan"]["hash"], hash.as_str(), "{j}");
    assert_eq!(j["records"], 30, "{j}");
    let source = read_topic(&bs, "orders", 2);
    let copy = read_topic(&bs, "orders-copy", 2);
    assert_eq!(values(&copy, "orders-copy"), values(&source, "orders"));
}

/// Rewrites the plain manifest of backup `b1` in `store` so that it records `configs` for
/// `orders` (as a backup of a cluster with those topic configs would).
fn set_backed_up_configs(store: &Path, configs: serde_json::Value) {
    let path = store.join("backups/b1/manifest/00000-of-00001.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("manifest")).expect("manifest json");
    m["topics"]["orders"]["configs"] = configs;
    std::fs::write(&path, serde_json::to_vec_pretty(&m).expect("encode")).expect("write manifest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_plan_lists_the_configs_the_target_would_refuse_and_the_restore_creates_nothing()
{
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_and_fill(&bs, "orders", 2, 15).await;
    let admin = admin(&bs).await;
    let work = tempfile::tempdir().expect("tempdir");
    let store = work.path().join("store");
    let plan = work.path().join("restore-plan.json");
    back_up_orders(&bs, &store);
    let cfg = restore_config(work.path(), &bs, &store);
    let plan_out = || {
        cli(&[
            "restore",
            "--config",
            &cfg,
            "--plan-out",
            s(&plan),
            "-f",
            "json",
        ])
    };
    let stored_plan = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&plan).expect("plan")).expect("plan json")
    };

    // Configs the target accepts: none is listed.
    set_backed_up_configs(
        &store,
        serde_json::json!({"cleanup.policy": "compact,delete", "retention.ms": "604800000"}),
    );
    let out = plan_out();
    expect_code(&out, 0);
    assert_eq!(
        out.json()["refusedConfigs"],
        serde_json::Value::Null,
        "{}",
        out.stdout
    );
    assert_eq!(
        stored_plan()["restore"]["refusedConfigs"],
        serde_json::Value::Null
    );

    // A misspelt policy, a misspelt name, more in-sync replicas than the topic will have, and
    // records older than the topic accepts.
    set_backed_up_configs(
        &store,
        serde_json::json!({"cleanup.policy": "compactt", "retension.ms": "1000",
            "min.insync.replicas": "2", "segment.bytes": "1073741824",
            "message.timestamp.before.max.ms": "1"}),
    );
    let before = topics(&admin).await;
    let text = cli(&["restore", "--config", &cfg, "--plan-out", s(&plan)]);
    expect_code(&text, 0);
    assert!(
        text.stdout
            .contains("✗ orders-copy: retension.ms=1000: not a topic config (did you mean")
            && text.stdout.contains(
                "Executing this plan fails (exit 2) before it creates any topic: the target would refuse the configs above"
            ),
        "{}",
        text.stdout
    );
    let out = plan_out();
    expect_code(&out, 0);
    let j = out.json();
    assert_eq!(
        j["refusedConfigs"],
        serde_json::json!([
            "orders-copy: cleanup.policy",
            "orders-copy: retension.ms",
            "orders-copy: min.insync.replicas",
            "orders-copy: message.timestamp.before.max.ms"
        ]),
        "{j}"
    );
    let summary = j["summary"].as_str().expect("summary");
    assert!(
        summary
            .contains("the target would refuse 4 topic configs (orders-copy: cleanup.policy, ...)"),
        "{summary}"
    );
    let refused = stored_plan()["restore"]["refusedConfigs"].clone();
    let reason = |config: &str| -> String {
        let c = refused
            .as_array()
            .expect("refusedConfigs")
            .iter()
            .find(|c| c["config"] == config)
            .unwrap_or_else(|| panic!("{config} not refused: {refused}"));
        assert_eq!(c["topic"], "orders-copy", "{c}");
        format!(
            "{}={}: {}",
            config,
            c["value"].as_str().unwrap_or("?"),
            c["reason"].as_str().unwrap_or("?")
        )
    };
    assert_eq!(
        reason("cleanup.policy"),
        "cleanup.policy=compactt: 'compactt' is not one of compact, delete"
    );
    assert_eq!(
        reason("retension.ms"),
        "retension.ms=1000: not a topic config (did you mean retention.ms?)"
    );
    assert_eq!(
        reason("min.insync.replicas"),
        "min.insync.replicas=2: above the replication factor 1 the topic is created with: the topic would refuse every acks=all write"
    );
    assert!(
        reason("message.timestamp.before.max.ms")
            .starts_with("message.timestamp.before.max.ms=1: the oldest record restored is "),
        "{refused}"
    );
    assert_eq!(refused.as_array().map(Vec::len), Some(4), "{refused}");

    // validate-restore says the same, in its text report too, and exits 2.
    let out = cli(&["validate-restore", "--config", &cfg]);
    expect_code(&out, 2);
    assert!(
        out.stdout.contains("TOPIC CONFIGS THE TARGET WOULD REFUSE")
            && out.stdout.contains("orders-copy: cleanup.policy=compactt"),
        "{}",
        out.stdout
    );

    // The restore, planned or not, fails before creating the topic, naming topic and config.
    let hash = j["hash"].as_str().expect("hash").to_string();
    let approved = cli(&[
        "restore",
        "--config",
        &cfg,
        "--approved-plan",
        s(&plan),
        "--plan-hash",
        &hash,
    ]);
    for out in [cli(&["restore", "--config", &cfg]), approved] {
        expect_code(&out, 2);
        assert!(
            out.stderr.contains(
                "topic 'orders-copy' would be created with cleanup.policy=compactt, which the target refuses"
            ) && out.stderr.contains("min.insync.replicas=2")
                && out.stderr.contains("this run created no topic and wrote no record"),
            "{}",
            out.stderr
        );
        assert_eq!(topics(&admin).await, before, "no topic created");
    }

    // A config outside Kafka's reference that the target reports for its own topics (a
    // vendor's) is taken as known. (tansu reports only the configs a topic was created with,
    // so the topic it is read from, the first by name, is given one.)
    create_topic(
        &bs,
        "a-vendor-topic",
        1,
        &[("confluent.tier.enable", "true")],
    )
    .await;
    set_backed_up_configs(&store, serde_json::json!({"confluent.tier.enable": "true"}));
    let out = plan_out();
    expect_code(&out, 0);
    assert_eq!(
        out.json()["refusedConfigs"],
        serde_json::Value::Null,
        "{}",
        out.stdout
    );
    set_backed_up_configs(
        &store,
        serde_json::json!({"confluent.tier.enablee": "true"}),
    );
    let out = plan_out();
    expect_code(&out, 0);
    assert_eq!(
        out.json()["refusedConfigs"],
        serde_json::json!(["orders-copy: confluent.tier.enablee"]),
        "{}",
        out.stdout
    );

    // A topic that exists is written to as it is: its backed-up configs are not checked.
    create_topic(&bs, "orders-copy", 2, &[]).await;
    let out = plan_out();
    expect_code(&out, 0);
    assert_eq!(
        out.json()["refusedConfigs"],
        serde_json::Value::Null,
        "{}",
        out.stdout
    );
    let warnings = stored_plan()["restore"]["warnings"].to_string();
    assert!(
        warnings.contains("the backed-up configs of orders-copy are neither applied nor checked"),
        "{warnings}"
    );
    expect_code(&cli(&["restore", "--config", &cfg]), 0);
    let source = read_topic(&bs, "orders", 2);
    let copy = read_topic(&bs, "orders-copy", 2);
    assert_eq!(values(&copy, "orders-copy"), values(&source, "orders"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_that_cannot_start_creates_none_of_its_topics() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_and_fill(&bs, "orders", 2, 5).await;
    create_and_fill(&bs, "payments", 2, 5).await;
    let admin = admin(&bs).await;
    let work = tempfile::tempdir().expect("tempdir");
    let store = work.path().join("store");
    expect_code(
        &cli(&[
            "backup",
            "--bootstrap-servers",
            &bs,
            "-p",
            s(&store),
            "--topics",
            "orders,payments",
            "--backup-id",
            "b2",
        ]),
        0,
    );
    // orders-copy is to be created; payments-copy exists with too few partitions.
    create_topic(&bs, "payments-copy", 1, &[]).await;
    let cfg = work.path().join("restore.yaml");
    std::fs::write(
        &cfg,
        format!(
            "mode: restore\nbackup_id: b2\ntarget:\n  bootstrap_servers: [{bs}]\nstorage:\n  backend: filesystem\n  path: {}\nrestore:\n  create_topics: true\n  topic_mapping:\n    orders: orders-copy\n    payments: payments-copy\n",
            store.display()
        ),
    )
    .expect("write config");
    let before = topics(&admin).await;
    let out = cli(&["restore", "--config", s(&cfg)]);
    expect_code(&out, 2);
    assert!(
        out.stderr.contains(
            "target topic 'payments-copy' has 1 partitions; the restore writes to partition 1"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(
        topics(&admin).await,
        before,
        "orders-copy is not created while payments-copy stops the restore"
    );
}

/// One `tidemark run --task` with its result (checked by [`tidemark_tests::run_task`]).
fn run_task(dir: &Path, name: &str, yaml: &str) -> (CliOutput, TaskResult) {
    let run = tidemark_tests::run_task(BIN, dir, name, yaml, &[]);
    (run.out, run.result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_tasks_plan_then_execute_the_approved_plan() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_and_fill(&bs, "orders", 2, 20).await;
    let admin = admin(&bs).await;
    commit(&admin, "billing", &commits("orders", &[5, 7])).await;
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    let storage = dir.join("storage");
    let task = |extra: &str| {
        format!(
            "apiVersion: tidemark.dev/task-v1\nkind: offsetReset\nsource: default/reset\nkafka:\n  bootstrapServers: [\"{bs}\"]\n  securityProtocol: PLAINTEXT\nstorage:\n  type: location\n  url: {}\nconsumerGroups: [billing]\ntopics: [orders]\nstrategy: {{type: toLatest}}\nsnapshotId: kor-uid-1\n{extra}",
            storage.display()
        )
    };

    let (out, r) = run_task(dir, "plan", &task("planOut: plans/uid-1/1.json\n"));
    expect_code(&out, 0);
    assert_eq!(r.operation.as_deref(), Some("reset-plan"));
    let p = r.plan.clone().expect("plan in the result");
    assert_eq!(p.key, "plans/uid-1/1.json");
    assert_eq!((p.groups, p.offsets), (1, 2));
    assert_eq!(p.safety_snapshot_id.as_deref(), Some("kor-uid-1"));
    assert!(!p.created.is_empty() && !p.summary.is_empty(), "{p:?}");
    let stored = std::fs::read(storage.join("plans/uid-1/1.json")).expect("stored plan");
    assert_eq!(tidemark::plan::plan_hash(&stored), p.hash);
    assert_eq!(
        topic_offsets(&committed_map(&admin, "billing").await, "orders"),
        vec![5, 7]
    );
    // An identical re-run keeps the stored plan.
    let (out, again) = run_task(dir, "plan-again", &task("planOut: plans/uid-1/1.json\n"));
    expect_code(&out, 0);
    assert_eq!(again.plan.expect("plan").hash, p.hash);

    let (out, r) = run_task(
        dir,
        "wrong",
        &task("approvedPlan: {key: plans/uid-1/1.json, hash: \"0000000000000000\"}\n"),
    );
    expect_code(&out, 15);
    assert_eq!(
        r.error.as_ref().map(|e| e.kind.as_str()),
        Some("plan_changed")
    );
    assert_eq!(
        topic_offsets(&committed_map(&admin, "billing").await, "orders"),
        vec![5, 7]
    );

    // A first attempt that stored the plan's safety snapshot, committed orders-0 and died: its
    // retry accepts what it did and finishes the plan.
    expect_code(
        &cli(&[
            "offset-rollback",
            "snapshot",
            "-p",
            s(&storage),
            "--bootstrap-servers",
            &bs,
            "-g",
            "billing",
            "-s",
            "kor-uid-1",
        ]),
        0,
    );
    commit(&admin, "billing", &commits("orders", &[20])).await;
    let approved = task(&format!(
        "approvedPlan: {{key: plans/uid-1/1.json, hash: \"{}\"}}\n",
        p.hash
    ));
    for attempt in ["approved", "approved-again"] {
        let (out, r) = run_task(dir, attempt, &approved);
        expect_code(&out, 0);
        assert_eq!(r.operation.as_deref(), Some("reset"));
        assert_eq!(
            r.plan.as_ref().map(|x| x.hash.as_str()),
            Some(p.hash.as_str())
        );
        assert_eq!(r.snapshot_id.as_deref(), Some("kor-uid-1"));
        assert_eq!(
            topic_offsets(&committed_map(&admin, "billing").await, "orders"),
            vec![20, 20],
            "{attempt}"
        );
    }
    // The safety snapshot is the first attempt's: the offsets before the plan.
    let shown = cli(&[
        "offset-rollback",
        "show",
        "-p",
        s(&storage),
        "-s",
        "kor-uid-1",
        "-f",
        "json",
    ]);
    expect_code(&shown, 0);
    assert_eq!(
        shown.json()["groups"]["billing"]["topics"]["orders"]["1"]["offset"],
        7
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_and_rollback_tasks_plan_then_execute_the_approved_plan() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_and_fill(&bs, "orders", 2, 10).await;
    let admin = admin(&bs).await;
    // Captured with the backup; phase three translates billing's only.
    commit(&admin, "billing", &commits("orders", &[4, 6])).await;
    commit(&admin, "other", &commits("orders", &[1, 1])).await;
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    let storage = dir.join("storage");
    expect_code(
        &cli(&[
            "backup",
            "--bootstrap-servers",
            &bs,
            "-p",
            s(&storage),
            "--topics",
            "orders",
            "--backup-id",
            "b1",
        ]),
        0,
    );
    let head = |kind: &str| {
        format!(
            "apiVersion: tidemark.dev/task-v1\nkind: {kind}\nsource: default/x\nkafka:\n  bootstrapServers: [\"{bs}\"]\n  securityProtocol: PLAINTEXT\nstorage:\n  type: location\n  url: {}\n",
            storage.display()
        )
    };
    let restore = |extra: &str| {
        format!(
            "{}backupId: b1\nrestoreId: kr-1\ntopicMapping: {{orders: orders-copy}}\ncreateTopics: true\nproduceBatchSize: 1\nresetConsumerOffsets: true\nconsumerGroupStrategy: header-based\nconsumerGroups: [billing]\n{extra}",
            head("restore")
        )
    };
    let (out, r) = run_task(dir, "rplan", &restore("planOut: plans/kr/1.json\n"));
    expect_code(&out, 0);
    let p = r.plan.clone().expect("plan");
    assert_eq!(
        (p.records, p.partitions, p.topics_to_create_total),
        (20, 2, 1)
    );
    assert_eq!(
        (p.groups, p.offsets),
        (1, 2),
        "billing's two source offsets"
    );
    let stored: serde_json::Value = serde_json::from_slice(
        &std::fs::read(storage.join("plans/kr/1.json")).expect("stored plan"),
    )
    .expect("json");
    assert_eq!(
        stored["restore"]["translatedGroups"],
        serde_json::json!([{"group": "billing", "sourceOffsets": [
            {"topic": "orders", "partition": 0, "offset": 4},
            {"topic": "orders", "partition": 1, "offset": 6}]}])
    );
    assert!(!topics(&admin).await.contains(&"orders-copy".to_string()));
    let stored_json = |k: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(storage.join(k)).expect("stored plan")).expect("json")
    };
    assert_eq!(
        stored_json("plans/kr/1.json")["preconditions"]["groups"][0]["inactive"],
        true
    );
    let approved_restore = restore(&format!(
        "approvedPlan: {{key: plans/kr/1.json, hash: \"{}\"}}\n",
        p.hash
    ));
    // billing gains a live member: phase three could not move it, so the plan is refused.
    {
        let _live = LiveConsumer::start(&bs, "billing", &["orders"]);
        wait_for_state(&admin, "billing", true).await;
        let (out, r) = run_task(dir, "rrun-live", &approved_restore);
        expect_code(&out, 15);
        assert!(
            r.message.contains("group 'billing' has active members now"),
            "{}",
            r.message
        );
        assert!(!topics(&admin).await.contains(&"orders-copy".to_string()));
    }
    wait_for_state(&admin, "billing", false).await;
    let (out, r) = run_task(dir, "rrun", &approved_restore);
    expect_code(&out, 0);
    assert_eq!(
        r.plan.as_ref().map(|x| x.hash.as_str()),
        Some(p.hash.as_str())
    );
    assert_eq!(r.restore.as_ref().map(|x| x.records_restored), Some(20));
    let copy = read_topic(&bs, "orders-copy", 2);
    let source = read_topic(&bs, "orders", 2);
    assert_eq!(values(&copy, "orders-copy"), values(&source, "orders"));
    assert_eq!(
        topic_offsets(&committed_map(&admin, "billing").await, "orders-copy"),
        vec![4, 6],
        "phase three ran as planned"
    );
    assert!(topic_offsets(&committed_map(&admin, "other").await, "orders-copy").is_empty());
    // A retried Job of the same approved restore: the topic it created and the records it wrote
    // are its own; it finds the restore complete and writes nothing again.
    let (out, r) = run_task(dir, "rrun-again", &approved_restore);
    expect_code(&out, 0);
    assert!(r.message.contains("already complete"), "{}", r.message);
    let copy = read_topic(&bs, "orders-copy", 2);
    assert_eq!(values(&copy, "orders-copy"), values(&source, "orders"));

    // A rollback task: plan, then the approved plan.
    commit(&admin, "billing", &commits("orders", &[2, 3])).await;
    let snap = format!(
        "{}operation: snapshot\nconsumerGroups: [billing]\nsnapshotId: s1\n",
        head("offsetRollback")
    );
    expect_code(&run_task(dir, "snap", &snap).0, 0);
    commit(&admin, "billing", &commits("orders", &[8, 9])).await;
    let rollback = |extra: &str| {
        format!(
            "{}operation: rollback\nsnapshotId: s1\nsafetySnapshotId: korb-1\n{extra}",
            head("offsetRollback")
        )
    };
    let (out, r) = run_task(dir, "rbplan", &rollback("planOut: plans/korb/1.json\n"));
    expect_code(&out, 0);
    let p = r.plan.clone().expect("plan");
    assert_eq!(p.safety_snapshot_id.as_deref(), Some("korb-1"));
    assert_eq!(
        topic_offsets(&committed_map(&admin, "billing").await, "orders"),
        vec![8, 9]
    );
    let approved_rollback = rollback(&format!(
        "approvedPlan: {{key: plans/korb/1.json, hash: \"{}\"}}\n",
        p.hash
    ));
    for attempt in ["rbrun", "rbrun-again"] {
        let (out, r) = run_task(dir, attempt, &approved_rollback);
        expect_code(&out, 0);
        assert_eq!(
            r.plan.as_ref().map(|x| x.hash.as_str()),
            Some(p.hash.as_str())
        );
        assert_eq!(r.safety_snapshot_id.as_deref(), Some("korb-1"), "{attempt}");
        assert_eq!(
            topic_offsets(&committed_map(&admin, "billing").await, "orders"),
            vec![2, 3],
            "{attempt}"
        );
    }
    let shown = cli(&[
        "offset-rollback",
        "show",
        "-p",
        s(&storage),
        "-s",
        "korb-1",
        "-f",
        "json",
    ]);
    expect_code(&shown, 0);
    assert_eq!(
        shown.json()["groups"]["billing"]["topics"]["orders"]["0"]["offset"],
        8
    );
}

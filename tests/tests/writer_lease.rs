//! One writer at a time, end to end on a real broker (tansu) with filesystem storage: two
//! `tidemark` processes started at once on one backup id and shard, or on one restore id, leave
//! every record exactly once in the backup or the target, and the second is refused with exit 14
//! and a message naming the holder; a restore whose target partition received records from
//! someone else fails its final check.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rdkafka::producer::FutureRecord;
use tidemark_tests::records::{
    assert_same, create_topic, produce_varied, producer, read_backup, read_topic, Records,
};
use tidemark_tests::{CliOutput, Tansu};

const BIN: &str = env!("CARGO_BIN_EXE_tidemark-under-test");

fn spawn(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("TIDEMARK_PATH")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tidemark")
}

fn finish(child: Child) -> CliOutput {
    let out = child.wait_with_output().expect("wait for tidemark");
    CliOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs two copies of a command started at once; returns (the one that ran, the one refused).
fn race(args: &[&str]) -> (CliOutput, CliOutput) {
    let a = spawn(args);
    let b = spawn(args);
    let (a, b) = (finish(a), finish(b));
    let show = |o: &CliOutput| format!("exit {}\n{}\n{}", o.code, o.stdout, o.stderr);
    match (a.code, b.code) {
        (0, 14) => (a, b),
        (14, 0) => (b, a),
        _ => panic!(
            "one run must succeed and the other be refused with 14:\n--- first: {}\n--- second: {}",
            show(&a),
            show(&b)
        ),
    }
}

fn assert_refused(out: &CliOutput, resource: &str) {
    let err = &out.stderr;
    assert!(
        err.contains(&format!(
            "another worker holds the lease on {resource}: host '"
        )) && err.contains(" pid ")
            && err.contains("and it expires at"),
        "{err}"
    );
}

fn lease(store: &Path, key: &str) -> serde_json::Value {
    let data = std::fs::read(store.join(key)).expect("the lease object");
    serde_json::from_slice(&data).expect("lease JSON")
}

async fn fill(bs: &str, topic: &str) -> Records {
    create_topic(bs, topic, 2, &[]).await;
    let p = producer(bs);
    for part in 0..2 {
        produce_varied(&p, topic, part, 0, 600).await;
    }
    read_topic(bs, topic, 2)
}

fn backup_args<'a>(bs: &'a str, store: &'a str, id: &'a str) -> Vec<&'a str> {
    vec![
        "backup",
        "--bootstrap-servers",
        bs,
        "--path",
        store,
        "--topics",
        "orders",
        "--backup-id",
        id,
        "--segment-max-bytes",
        "30000",
        "-f",
        "json",
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_backups_of_one_shard_write_it_once_and_one_is_refused() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    let source = fill(&bs, "orders").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store_s = store.to_str().expect("utf8");
    let mut args = backup_args(&bs, store_s, "b1");
    // Slow enough that the two runs overlap.
    args.extend(["--rate-limit-records-per-sec", "600"]);
    let (ran, refused) = race(&args);
    assert_refused(&refused, "backup 'b1' shard 00000-of-00001");
    assert_eq!(ran.json()["records"], 1200, "{}", ran.stdout);

    let (manifests, backed_up) = read_backup(&store, "b1").await;
    assert_eq!(manifests.len(), 1);
    assert_same(&backed_up, &source);
    // Released on its clean exit.
    let l = lease(&store, "backups/b1/lease/00000-of-00001.json");
    assert_eq!(l["released"], true, "{l}");
}

/// Writes a restore configuration and returns its path.
fn restore_config(dir: &Path, bs: &str, store: &str, target: &str, extra: &str) -> String {
    let text = format!(
        "mode: restore\nbackup_id: b1\ntarget:\n  bootstrap_servers: [{bs}]\n  topics:\n    include: [orders]\nstorage:\n  backend: filesystem\n  path: {store}\nrestore:\n  checkpoint_interval_secs: 1\n  topic_mapping:\n    orders: {target}\n  produce_batch_size: 50\n{extra}"
    );
    let p = dir.join(format!("{target}.yaml"));
    std::fs::write(&p, text).expect("write config");
    p.to_str().expect("utf8").to_string()
}

fn assert_each_once(got: &Records, want: &Records, target: &str) {
    for part in 0..2 {
        let w = &want[&("orders".to_string(), part)];
        let g = got
            .get(&(target.to_string(), part))
            .cloned()
            .unwrap_or_default();
        assert_eq!(g.len(), w.len(), "{target}-{part} holds each record once");
        for (g, w) in g.iter().zip(w) {
            assert_eq!(
                (&g.key, &g.value, g.timestamp, &g.headers),
                (&w.key, &w.value, w.timestamp, &w.headers),
                "{target}-{part}: source offset {}",
                w.offset
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_restores_of_one_id_write_every_record_once_and_one_is_refused() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    let source = fill(&bs, "orders").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store_s = store.to_str().expect("utf8");
    let out = finish(spawn(&backup_args(&bs, store_s, "b1")));
    assert_eq!(out.code, 0, "{}", out.stderr);

    let cfg = restore_config(
        dir.path(),
        &bs,
        store_s,
        "orders-copy",
        "  create_topics: true\n  rate_limit_records_per_sec: 500\n",
    );
    let (ran, refused) = race(&["restore", "--config", &cfg, "-f", "json"]);
    let j = ran.json();
    assert_eq!(j["records"], 1200, "{j}");
    let restore_id = j["restore_id"].as_str().expect("restore id").to_string();
    assert_refused(&refused, &format!("restore '{restore_id}'"));
    assert_each_once(&read_topic(&bs, "orders-copy", 2), &source, "orders-copy");
    let l = lease(
        &store,
        &format!("backups/b1/restores/{restore_id}/lease.json"),
    );
    assert_eq!(l["released"], true, "{l}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_whose_target_gets_other_records_fails_its_final_check() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    fill(&bs, "orders").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store_s = store.to_str().expect("utf8");
    let out = finish(spawn(&backup_args(&bs, store_s, "b1")));
    assert_eq!(out.code, 0, "{}", out.stderr);
    create_topic(&bs, "orders-busy", 2, &[]).await;
    let cfg = restore_config(
        dir.path(),
        &bs,
        store_s,
        "orders-busy",
        "  rate_limit_records_per_sec: 400\n",
    );
    let restore = spawn(&["restore", "--config", &cfg, "-f", "json"]);
    // Another producer writes to partition 1 while the restore runs.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let p = producer(&bs);
    for i in 0..3 {
        let key = format!("intruder-{i}");
        p.send(
            FutureRecord::<str, str>::to("orders-busy")
                .partition(1)
                .key(&key)
                .payload("not from the backup"),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
    }
    let out = finish(restore);
    assert_eq!(out.code, 11, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("orders-busy-1 ")
            && out
                .stderr
                .contains("something else wrote to it during the restore"),
        "{}",
        out.stderr
    );
    // No mapping is stored for it: the restore is not recorded as complete.
    let restores = store.join("backups/b1/restores");
    let mappings: Vec<_> = walk(&restores)
        .into_iter()
        .filter(|p| p.ends_with("mapping.json"))
        .collect();
    assert!(mappings.is_empty(), "{mappings:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

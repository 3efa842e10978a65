//! S3 throttling: backups and restores through a front that answers `503 SlowDown` (as S3 does
//! when a prefix gets more requests than it can take) complete with every record, because each
//! throttled request is sent again after a backoff; throttling that never stops ends the run
//! with an error that says so. The S3 server is s3s-fs on loopback, the front
//! `tidemark_tests::slowdown::SlowDown` (a small HTTP proxy that counts what it throttled).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tidemark_tests::objstore::{S3Server, BUCKET};
use tidemark_tests::records::{
    create_topic, produce_varied, producer, read_backup_in, read_topic, Records,
};
use tidemark_tests::slowdown::{SlowDown, SlowDownStats, Throttle};
use tidemark_tests::{run_cli, Tansu};

const BIN: &str = env!("CARGO_BIN_EXE_tidemark-under-test");
const PREFIX: &str = "throttled";
const PARTITIONS: i32 = 3;
const PER_PARTITION: usize = 300;

/// s3s-fs with the throttling front in front of it (clients are pointed at the front).
fn s3_behind_front() -> (S3Server, SlowDown) {
    let mut s3 = S3Server::start_s3s_fs(None);
    let front = SlowDown::start(SocketAddr::from(([127, 0, 0, 1], s3.server.port)));
    s3.reach_through(front.port);
    (s3, front)
}

fn env_of(s3: &S3Server) -> Vec<(&'static str, String)> {
    s3.env()
}

fn run(args: &[&str], s3: &S3Server) -> tidemark_tests::CliOutput {
    let env = env_of(s3);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_cli(BIN, args, &env)
}

/// Every throttled request was sent again until it got through.
fn assert_recovered(what: &str, stats: SlowDownStats) {
    println!(
        "{what}: {} requests, {} answered 503 SlowDown ({} distinct requests), {} forwarded; \
         {} of the throttled requests sent again and served",
        stats.requests,
        stats.throttled,
        stats.throttled_requests,
        stats.forwarded,
        stats.recovered_requests
    );
    assert!(
        stats.throttled >= 10,
        "{what}: too little throttling: {stats:?}"
    );
    assert_eq!(
        stats.recovered_requests, stats.throttled_requests,
        "{what}: a throttled request was not sent again: {stats:?}"
    );
}

/// The records of `got` under the topic name of `want` (a restore renames the topic).
fn renamed(got: Records, to: &str) -> Records {
    got.into_iter()
        .map(|((_, p), r)| ((to.to_string(), p), r))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_through_slowdown_keep_every_record() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_topic(&bs, "ledger", PARTITIONS, &[]).await;
    let p = producer(&bs);
    for part in 0..PARTITIONS {
        produce_varied(&p, "ledger", part, 0, PER_PARTITION).await;
    }
    let want = read_topic(&bs, "ledger", PARTITIONS);
    assert_eq!(want.values().map(Vec::len).sum::<usize>(), 900);

    let (s3, front) = s3_behind_front();
    // Two 503s in a row for every third request: each is retried twice before it gets through.
    front.set(Throttle::EveryNth { every: 3, times: 2 });
    let location = s3.location(PREFIX);
    let out = run(
        &[
            "backup",
            "--bootstrap-servers",
            &bs,
            "--path",
            &location,
            "--topics",
            "ledger",
            "--backup-id",
            "b1",
            "--segment-max-bytes",
            "32768",
            "--format",
            "json",
        ],
        &s3,
    );
    assert_eq!(out.code, 0, "backup: {}\n{}", out.stdout, out.stderr);
    let report = out.json();
    assert_eq!(report["complete"], true, "{report}");
    assert_eq!(report["records"], 900, "{report}");
    assert_recovered("backup", front.stats());

    // Read back through the throttling front too: reads are retried the same way.
    let (_, got) = read_backup_in(&s3.open(PREFIX), "b1").await;
    tidemark_tests::records::assert_same(&got, &want);

    // Every request of the restore counts as new (the reads above were seen already).
    front.set(Throttle::EveryNth { every: 3, times: 2 });
    let before = front.stats();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("restore.yaml");
    std::fs::write(
        &config,
        format!(
            "mode: restore\nbackup_id: b1\ntarget:\n  bootstrap_servers: [\"{bs}\"]\n\
             storage:\n  backend: s3\n  bucket: {BUCKET}\n  prefix: {PREFIX}\n  region: \
             us-east-1\n  endpoint: \"{}\"\n  path_style: true\n  allow_http: true\n\
             restore:\n  topic_mapping: {{ledger: ledger-restored}}\n  create_topics: true\n",
            s3.endpoint()
        ),
    )
    .expect("write the restore configuration");
    let out = run(
        &[
            "restore",
            "--config",
            config.to_str().expect("utf8"),
            "-f",
            "json",
        ],
        &s3,
    );
    assert_eq!(out.code, 0, "restore: {}\n{}", out.stdout, out.stderr);
    let report = out.json();
    assert_eq!(report["complete"], true, "{report}");
    assert_eq!(report["records"], 900, "{report}");
    let after = front.stats();
    assert_recovered(
        "restore",
        SlowDownStats {
            requests: after.requests - before.requests,
            throttled: after.throttled - before.throttled,
            forwarded: after.forwarded - before.forwarded,
            throttled_requests: after.throttled_requests - before.throttled_requests,
            recovered_requests: after.recovered_requests - before.recovered_requests,
        },
    );
    let restored = read_topic(&bs, "ledger-restored", PARTITIONS);
    tidemark_tests::records::assert_same(&renamed(restored, "ledger"), &want);
}

/// A large object goes up in parts; the parts and the completion are throttled too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_segment_goes_up_in_parts_through_slowdown() {
    let (s3, front) = s3_behind_front();
    front.set(Throttle::EveryNth { every: 2, times: 2 });
    let storage = s3.open(PREFIX);
    let len = tidemark::storage::MULTIPART_THRESHOLD + 3 * tidemark::storage::PART_BYTES + 12345;
    let data = Bytes::from(
        (0..len)
            .map(|i| (i * 7 + i / 4096) as u8)
            .collect::<Vec<_>>(),
    );
    storage
        .put_large(
            "backups/b/topics/t/0/00000000000000000000.seg",
            data.clone(),
        )
        .await
        .expect("put_large through the front");
    let stats = front.stats();
    // Start, 6 parts, complete: 8 requests, every other one throttled twice.
    assert!(stats.throttled >= 6, "{stats:?}");
    assert_eq!(
        stats.recovered_requests, stats.throttled_requests,
        "{stats:?}"
    );
    front.set(Throttle::Off);
    let key = "backups/b/topics/t/0/00000000000000000000.seg";
    let back = storage.get(key).await.expect("read back").expect("stored");
    assert!(back == data, "the object read back differs");

    // Create-only like a single conditional PUT: the same bytes again are accepted, other
    // bytes refused naming the key, and the object is left as it was.
    storage
        .put_large(key, data.clone())
        .await
        .expect("the same bytes again");
    let other = Bytes::from(vec![0xA5u8; len]);
    match storage.put_large(key, other).await {
        Err(tidemark::error::Error::VerificationFailed(m)) => assert!(m.contains(key), "{m}"),
        r => panic!("expected a refusal, got {r:?}"),
    }
    let back = storage.get(key).await.expect("read back").expect("stored");
    assert!(back == data, "the object was overwritten");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_that_never_stops_fails_with_a_clear_error() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_topic(&bs, "ledger", 1, &[]).await;
    produce_varied(&producer(&bs), "ledger", 0, 0, 50).await;
    let (s3, front) = s3_behind_front();
    front.set(Throttle::Always);
    let location = s3.location(PREFIX);
    let started = Instant::now();
    let out = run(
        &[
            "backup",
            "--bootstrap-servers",
            &bs,
            "--path",
            &location,
            "--topics",
            "ledger",
            "--backup-id",
            "b1",
        ],
        &s3,
    );
    let took = started.elapsed();
    let stats = front.stats();
    println!(
        "never-ending throttling: exit {} after {took:?}, {} requests answered 503: {}",
        out.code,
        stats.throttled,
        out.stderr.trim()
    );
    assert_eq!(
        out.code, 7,
        "exit code of a storage failure: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("kept throttling") && out.stderr.contains("SlowDown"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(&location), "{}", out.stderr);
    // Retried (4 retries per request), and given up on within the retry budget.
    assert!(stats.throttled >= 5, "{stats:?}");
    assert_eq!(stats.forwarded, 0, "{stats:?}");
    assert!(took < Duration::from_secs(90), "took {took:?}");
    // Nothing was stored.
    front.set(Throttle::Off);
    assert!(s3.open(PREFIX).list("").await.expect("list").is_empty());
}

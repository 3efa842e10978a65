//! Create-only objects and writer leases on every backend: a local directory, moto (S3),
//! Azurite (Azure Blob) and fake-gcs-server (GCS, as far as the emulator serves writes: see
//! `gcs_conditional_writes_are_not_served_by_emulator`). A missing server binary fails the test
//! with the install command; nothing is skipped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tidemark::lease::{Holder, Lease, LeaseRecord, LeaseTiming};
use tidemark::storage::{Storage, StorageOptions};
use tidemark::Error;
use tidemark_tests::objstore::{Azurite, GcsEmulator, S3Server, BUCKET};

fn bytes(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

/// Segments (`put_large`) and manifests (`put_once`): created once; the same bytes again are
/// accepted (a retry after a crash), other bytes are refused naming the key, and the stored
/// object is unchanged.
async fn create_only(storage: &Storage) {
    let what = storage.display().to_string();
    let segment = "backups/b/topics/t/0/00000000000000000000.seg";
    let manifest = "backups/b/manifest/00000-of-00001.json";
    let seg = bytes(3 * 4096 + 100, 1);
    let man = Bytes::from_static(b"{\"backup_id\":\"b\"}");
    storage
        .put_large(segment, seg.clone())
        .await
        .unwrap_or_else(|e| panic!("{what}: first segment write: {e}"));
    storage
        .put_once(manifest, man.clone())
        .await
        .unwrap_or_else(|e| panic!("{what}: first manifest write: {e}"));
    storage
        .put_large(segment, seg.clone())
        .await
        .unwrap_or_else(|e| panic!("{what}: identical segment retry: {e}"));
    storage
        .put_once(manifest, man.clone())
        .await
        .unwrap_or_else(|e| panic!("{what}: identical manifest retry: {e}"));
    for (key, result) in [
        (
            segment,
            storage.put_large(segment, bytes(3 * 4096 + 100, 2)).await,
        ),
        (
            manifest,
            storage
                .put_once(manifest, Bytes::from_static(b"{\"backup_id\":\"x\"}"))
                .await,
        ),
    ] {
        let err = result.expect_err("other content must be refused");
        assert_eq!(err.exit_code(), 11, "{what}: {err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("refusing to overwrite '{key}'")) && msg.contains(&what),
            "{what}: {msg}"
        );
    }
    assert_eq!(
        storage.get(segment).await.expect("get"),
        Some(seg),
        "{what}"
    );
    assert_eq!(
        storage.get(manifest).await.expect("get"),
        Some(man),
        "{what}"
    );
}

fn holder(name: &str) -> Holder {
    Holder {
        host: name.to_string(),
        token: format!("{name}-{:08x}", rand_token()),
        ..Holder::current()
    }
}

fn rand_token() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7)
}

const KEY: &str = "backups/b/lease/00000-of-00001.json";
const RESOURCE: &str = "backup 'b' shard 00000-of-00001";

async fn stored(storage: &Storage) -> LeaseRecord {
    let data = storage
        .get(KEY)
        .await
        .expect("get lease")
        .expect("lease exists");
    serde_json::from_slice(&data).expect("lease JSON")
}

fn held_by(err: &Error, host: &str) {
    assert_eq!(err.exit_code(), 14, "{err}");
    assert_eq!(err.label(), "lease_held");
    let msg = err.to_string();
    assert!(
        msg.contains(RESOURCE) && msg.contains(&format!("host '{host}'")),
        "{msg}"
    );
}

/// Acquire, refusal naming the holder and expiry, renewal, takeover after expiry (one winner of
/// two), lost-lease detection by the heartbeat with writes stopped, release.
async fn lease_protocol(storage: &Storage) {
    let what = storage.display().to_string();
    let timing = LeaseTiming::new(Duration::from_secs(2));
    let first = Lease::acquire(storage, KEY, RESOURCE, holder("worker-a"), timing)
        .await
        .unwrap_or_else(|e| panic!("{what}: acquire: {e}"));
    let record = first.record().await;
    assert_eq!(stored(storage).await, record, "{what}");

    // A second worker is refused, naming the holder and the expiry.
    let err = Lease::acquire(storage, KEY, RESOURCE, holder("worker-b"), timing)
        .await
        .expect_err("held");
    held_by(&err, "worker-a");
    let expiry = record
        .expires_at
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert!(err.to_string().contains(&expiry), "{what}: {err}");

    // Renewal moves the expiry and keeps others out past the first expiry.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    first
        .renew()
        .await
        .unwrap_or_else(|e| panic!("{what}: renew: {e}"));
    let renewed = stored(storage).await;
    assert!(renewed.expires_at > record.expires_at, "{what}");
    assert_eq!(renewed.holder, record.holder);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let err = Lease::acquire(storage, KEY, RESOURCE, holder("worker-b"), timing)
        .await
        .expect_err("still held after the first expiry");
    held_by(&err, "worker-a");
    first
        .storage()
        .put("backups/b/checkpoint/x.json", Bytes::from_static(b"{}"))
        .await
        .unwrap_or_else(|e| panic!("{what}: a holder writes: {e}"));

    // Not renewed: expired; of two workers taking it over at once, exactly one wins.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (b, c) = tokio::join!(
        Lease::acquire(storage, KEY, RESOURCE, holder("worker-b"), timing),
        Lease::acquire(storage, KEY, RESOURCE, holder("worker-c"), timing)
    );
    let (mut winner, loser, winner_host) = match (b, c) {
        (Ok(l), Err(e)) => (l, e, "worker-b"),
        (Err(e), Ok(l)) => (l, e, "worker-c"),
        (b, c) => panic!(
            "{what}: exactly one takeover must win: {:?} / {:?}",
            b.map(|_| ()),
            c.map(|_| ())
        ),
    };
    held_by(&loser, winner_host);

    // The old holder finds out when it renews, and its writes stop.
    let lost = first.renew().await.expect_err("taken over");
    held_by(&lost, winner_host);
    assert!(lost.to_string().contains("lost its lease"), "{lost}");
    let refused = first
        .storage()
        .put("backups/b/checkpoint/x.json", Bytes::from_static(b"{}"))
        .await
        .expect_err("fenced");
    assert_eq!(refused.exit_code(), 14, "{refused}");

    // The heartbeat renews in the background, and detects a takeover.
    let stop = Arc::new(AtomicBool::new(false));
    winner.start_heartbeat(Arc::clone(&stop));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!stop.load(Ordering::SeqCst), "{what}: renewed, not lost");
    assert!(
        stored(storage).await.renewed_at > winner.record().await.acquired_at,
        "{what}: the heartbeat renewed"
    );
    winner
        .storage()
        .put("backups/b/checkpoint/x.json", Bytes::from_static(b"{}"))
        .await
        .unwrap_or_else(|e| panic!("{what}: still held: {e}"));
    let mut intruder = stored(storage).await;
    intruder.holder = holder("worker-d");
    storage
        .put(
            KEY,
            Bytes::from(serde_json::to_vec(&intruder).expect("encode")),
        )
        .await
        .expect("overwrite the lease");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        stop.load(Ordering::SeqCst),
        "{what}: the heartbeat saw the loss"
    );
    let refused = winner
        .storage()
        .delete("backups/b/checkpoint/x.json")
        .await
        .expect_err("fenced");
    held_by(&refused, "worker-d");
    let finished = winner
        .finish::<()>(Err(Error::Kafka("stopped".into())))
        .await;
    held_by(&finished.expect_err("the lease error wins"), "worker-d");

    // A released lease is free at once.
    storage.delete(KEY).await.expect("clear");
    let e = Lease::acquire(storage, KEY, RESOURCE, holder("worker-e"), timing)
        .await
        .expect("acquire");
    e.release().await.expect("release");
    assert!(stored(storage).await.released, "{what}");
    let f = Lease::acquire(storage, KEY, RESOURCE, holder("worker-f"), timing)
        .await
        .unwrap_or_else(|e| panic!("{what}: a released lease is free: {e}"));
    f.release().await.expect("release");
}

fn local() -> (tempfile::TempDir, Storage) {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(
        &dir.path().join("store").display().to_string(),
        &StorageOptions::default(),
    )
    .expect("open");
    (dir, storage)
}

#[tokio::test]
async fn filesystem_objects_are_created_once() {
    let (_dir, storage) = local();
    create_only(&storage).await;
}

#[tokio::test]
async fn filesystem_leases() {
    let (dir, storage) = local();
    lease_protocol(&storage).await;
    // The lock sidecar is not an object.
    let keys: Vec<String> = storage
        .list("")
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert!(keys.iter().all(|k| !k.contains('#')), "{keys:?}");
    assert!(dir.path().join("store/backups/b/lease").is_dir());
}

#[tokio::test]
async fn s3_objects_are_created_once() {
    let s3 = S3Server::start();
    create_only(&s3.open("create")).await;
}

#[tokio::test]
async fn s3_leases() {
    let s3 = S3Server::start();
    lease_protocol(&s3.open("lease")).await;
}

#[tokio::test]
async fn azure_objects_are_created_once() {
    let azure = Azurite::start();
    create_only(&azure.open("create")).await;
}

#[tokio::test]
async fn azure_leases() {
    let azure = Azurite::start();
    lease_protocol(&azure.open("lease")).await;
}

/// fake-gcs-server does not serve the XML object PUT that `object_store`'s GCS client sends, so
/// neither create-only objects nor leases can be exercised against it; this pins that the
/// attempt is a storage error naming the location (not a silent success), for the conditional
/// create (`x-goog-if-generation-match: 0`) a lease starts with.
#[tokio::test]
async fn gcs_conditional_writes_are_not_served_by_emulator() {
    let gcs = GcsEmulator::start();
    let storage = gcs.open("lease");
    let err = Lease::acquire(
        &storage,
        KEY,
        RESOURCE,
        holder("worker-a"),
        LeaseTiming::new(Duration::from_secs(2)),
    )
    .await
    .expect_err("the emulator refuses the XML PUT");
    match err.storage_parts() {
        Some((location, reason)) => {
            assert_eq!(location, format!("gs://{BUCKET}/lease"));
            assert!(reason.contains("400"), "{reason}");
        }
        other => panic!("expected a storage error, got {other:?}"),
    }
}

//! Offset snapshots through the real CLI on every storage backend: a local directory, an S3
//! server (moto), Azurite and a GCS emulator, each against a real broker (tansu).

use tidemark::kafka::GroupAdmin;
use tidemark_tests::objstore::{Azurite, GcsEmulator, S3Server, BUCKET};
use tidemark_tests::{
    commit, commits, committed_map, connect_admin, create_and_fill, run_cli, CliOutput, Tansu,
};

const BIN: &str = env!("CARGO_BIN_EXE_tidemark-under-test");

struct Cluster {
    _kafka: Tansu,
    bs: String,
    admin: GroupAdmin,
}

async fn cluster() -> Cluster {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    create_and_fill(&bs, "orders", 3, 10).await;
    let admin = connect_admin(&bs).await;
    set(&admin, &[4, 5, 6]).await;
    Cluster {
        _kafka: kafka,
        bs,
        admin,
    }
}

async fn set(admin: &GroupAdmin, offsets: &[i64]) {
    commit(admin, "order-processor", &commits("orders", offsets)).await;
}

async fn current(admin: &GroupAdmin) -> Vec<i64> {
    committed_map(admin, "order-processor")
        .await
        .into_values()
        .collect()
}

fn cli(args: &[&str], env: &[(&'static str, String)]) -> CliOutput {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_cli(BIN, args, &env)
}

/// list → show → (offsets move) → verify fails → rollback → verify passes → delete → gone.
/// Lists, shows, verifies and rolls back to stored snapshot `id`, then deletes it. A rollback
/// first stores a safety snapshot of the offsets it replaces: where the storage takes writes
/// (`writable`), that snapshot remains at the end; where it does not, the rollback fails and
/// changes nothing.
async fn exercise_stored_snapshot(
    c: &Cluster,
    path: &str,
    env: &[(&'static str, String)],
    id: &str,
    writable: bool,
) {
    let list = cli(&["offset-rollback", "list", "-p", path, "-f", "json"], env);
    assert_eq!(list.code, 0, "{list:?}");
    assert_eq!(
        list.json()["snapshots"][0]["snapshot_id"],
        id,
        "{}",
        list.stdout
    );
    assert_eq!(list.json()["snapshots"][0]["offsets"], 3);

    let show = cli(
        &[
            "offset-rollback",
            "show",
            "-p",
            path,
            "-s",
            id,
            "-f",
            "json",
        ],
        env,
    );
    assert_eq!(show.code, 0, "{show:?}");
    let doc = show.json();
    assert_eq!(doc["snapshotId"], id);
    assert_eq!(
        doc["groups"]["order-processor"]["topics"]["orders"]["1"]["offset"],
        5
    );

    set(&c.admin, &[0, 0, 0]).await;
    let v = cli(
        &[
            "offset-rollback",
            "verify",
            "-p",
            path,
            "-s",
            id,
            "--bootstrap-servers",
            &c.bs,
        ],
        env,
    );
    assert_eq!(v.code, 11, "{v:?}");
    let rb = cli(
        &[
            "offset-rollback",
            "rollback",
            "-p",
            path,
            "-s",
            id,
            "--bootstrap-servers",
            &c.bs,
            "-f",
            "json",
        ],
        env,
    );
    let safety = if writable {
        assert_eq!(rb.code, 0, "{rb:?}");
        assert_eq!(rb.json()["verification"]["matched"], true);
        assert_eq!(current(&c.admin).await, vec![4, 5, 6]);
        let safety = rb.json()["safety_snapshot_id"].as_str().map(str::to_string);
        assert!(safety.is_some(), "{}", rb.stdout);
        safety
    } else {
        assert_eq!(rb.code, 7, "no safety snapshot can be stored: {rb:?}");
        assert!(rb.stderr.contains(path), "{}", rb.stderr);
        assert_eq!(current(&c.admin).await, vec![0, 0, 0], "nothing changed");
        None
    };

    let del = cli(&["offset-rollback", "delete", "-p", path, "-s", id], env);
    assert_eq!(del.code, 0, "{del:?}");
    let gone = cli(&["offset-rollback", "show", "-p", path, "-s", id], env);
    assert_eq!(gone.code, 3, "{gone:?}");
    let list = cli(&["offset-rollback", "list", "-p", path, "-f", "json"], env);
    let left: Vec<String> = list.json()["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .map(|s| s["snapshot_id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(
        left,
        safety.into_iter().collect::<Vec<_>>(),
        "{}",
        list.stdout
    );
}

async fn snapshot_round_trip(path: &str, env: &[(&'static str, String)]) {
    let c = cluster().await;
    let snap = cli(
        &[
            "offset-rollback",
            "snapshot",
            "-p",
            path,
            "-g",
            "order-processor",
            "--bootstrap-servers",
            &c.bs,
            "-d",
            "backend round trip",
            "-f",
            "json",
        ],
        env,
    );
    assert_eq!(snap.code, 0, "{snap:?}");
    let id = snap.json()["snapshot_id"].as_str().expect("id").to_string();
    exercise_stored_snapshot(&c, path, env, &id, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_snapshots_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("file://{}", dir.path().join("nested/store").display());
    snapshot_round_trip(&url, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_snapshots_round_trip() {
    let s3 = S3Server::start();
    snapshot_round_trip(&s3.location("team-a/offsets"), &s3.env()).await;
}

/// A snapshot the kafka-backup operator stored directly under its prefix
/// (`<prefix>/<snapshotId>.json`) is read there like ours; an object in a folder below that looks
/// like a snapshot is not taken for one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_snapshots_stored_directly_under_the_prefix_round_trip() {
    let s3 = S3Server::start();
    let c = cluster().await;
    let local = tempfile::tempdir().expect("tempdir");
    let id = "pre-migration-20241201";
    let snap = cli(
        &[
            "offset-rollback",
            "snapshot",
            "-p",
            local.path().to_str().expect("utf8"),
            "-g",
            "order-processor",
            "-s",
            id,
            "--bootstrap-servers",
            &c.bs,
        ],
        &[],
    );
    assert_eq!(snap.code, 0, "{snap:?}");
    let bytes =
        std::fs::read(local.path().join("snapshots").join(format!("{id}.json"))).expect("read");
    let storage = s3.open("team-a/offsets");
    storage
        .put(&format!("{id}.json"), bytes.clone().into())
        .await
        .expect("put");
    let other = String::from_utf8(bytes)
        .expect("utf8")
        .replace(id, "not-at-the-top");
    storage
        .put("backups/b1/not-at-the-top.json", other.into_bytes().into())
        .await
        .expect("put");
    exercise_stored_snapshot(&c, &s3.location("team-a/offsets"), &s3.env(), id, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_snapshots_round_trip() {
    let az = Azurite::start();
    snapshot_round_trip(&az.location("team-a/offsets"), &az.env()).await;
}

/// The GCS emulator cannot accept the XML-API object upload the GCS client sends (see
/// `tidemark_tests::objstore::GcsEmulator`), so the snapshot document written by a real CLI run
/// on disk is loaded into the emulator byte for byte, then every reading and deleting verb runs
/// against GCS. The write is asserted to fail as a storage error that changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_snapshots_round_trip_reads_and_deletes() {
    let gcs = GcsEmulator::start();
    let c = cluster().await;
    let local = tempfile::tempdir().expect("tempdir");
    let local_path = local.path().to_str().expect("utf8");
    let snap = cli(
        &[
            "offset-rollback",
            "snapshot",
            "-p",
            local_path,
            "-g",
            "order-processor",
            "--bootstrap-servers",
            &c.bs,
            "-f",
            "json",
        ],
        &[],
    );
    assert_eq!(snap.code, 0, "{snap:?}");
    let id = snap.json()["snapshot_id"].as_str().expect("id").to_string();
    let bytes =
        std::fs::read(local.path().join("snapshots").join(format!("{id}.json"))).expect("read");
    gcs.upload(&format!("team-a/offsets/snapshots/{id}.json"), &bytes);

    let path = gcs.location("team-a/offsets");
    assert_eq!(path, format!("gs://{BUCKET}/team-a/offsets"));
    exercise_stored_snapshot(&c, &path, &gcs.env(), &id, false).await;

    let write = cli(
        &[
            "offset-rollback",
            "snapshot",
            "-p",
            &path,
            "-g",
            "order-processor",
            "--bootstrap-servers",
            &c.bs,
            "-s",
            "w",
        ],
        &gcs.env(),
    );
    assert_eq!(write.code, 7, "the emulator refuses XML uploads: {write:?}");
    assert!(write.stderr.contains(&path), "{}", write.stderr);
    let list = cli(
        &["offset-rollback", "list", "-p", &path, "-f", "json"],
        &gcs.env(),
    );
    assert_eq!(
        list.json()["total"],
        0,
        "a failed write leaves nothing behind"
    );
}

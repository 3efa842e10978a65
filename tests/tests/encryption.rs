//! Encryption at rest, end to end against tansu and every storage backend's emulator: backups
//! sealed with a key from a key file (a mounted Secret's layout) restore byte for byte, the
//! stored bytes hold none of the records, and every kind of tampering (wrong or missing key,
//! a flipped bit, a swapped or replayed segment, a cut or edited manifest, a segment put back in
//! the clear) stops the restore before anything reaches the target; keys rotate and re-wrap
//! without rewriting segments; backups stored in the clear stay readable.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use tidemark::backup::format::Record;
use tidemark::storage::Storage;
use tidemark_tests::kms::KmsServer;
use tidemark_tests::objstore::{Azurite, GcsEmulator, S3Server, BUCKET};
use tidemark_tests::records::{
    create_topic, produce_varied, producer, read_backup_in, read_topic, Records,
};
use tidemark_tests::{run_cli, CliOutput, Tansu};

const BIN: &str = env!("CARGO_BIN_EXE_tidemark-under-test");
const PARTITIONS: i32 = 3;
const PER_PARTITION: usize = 120;

fn cli(args: &[&str], env: &[(&str, String)]) -> CliOutput {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_cli(BIN, args, &env)
}

fn expect_code(out: &CliOutput, code: i32, what: &str) {
    assert_eq!(
        out.code, code,
        "{what}: exit code\nstdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
}

/// A key file named `id` in `dir` holding 32 bytes derived from `seed` (base64, as a Secret
/// created from `openssl rand -base64 32` holds it).
fn write_key(dir: &Path, id: &str, seed: u8) {
    use base64::Engine;
    std::fs::create_dir_all(dir).expect("key dir");
    let key: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(29).wrapping_add(seed))
        .collect();
    let text = base64::engine::general_purpose::STANDARD.encode(key);
    std::fs::write(dir.join(id), format!("{text}\n")).expect("write key");
}

/// A source topic `orders` of varied records (null keys, tombstones, headers, out-of-order
/// timestamps), and what a plain consumer reads of it.
async fn source(bs: &str) -> Records {
    create_topic(bs, "orders", PARTITIONS, &[]).await;
    let p = producer(bs);
    for part in 0..PARTITIONS {
        produce_varied(&p, "orders", part, 0, PER_PARTITION).await;
    }
    read_topic(bs, "orders", PARTITIONS)
}

fn backup(
    bs: &str,
    path: &str,
    id: &str,
    keys: Option<&Path>,
    env: &[(&str, String)],
) -> CliOutput {
    let mut args = vec![
        "backup",
        "--bootstrap-servers",
        bs,
        "--path",
        path,
        "--topics",
        "orders",
        "--backup-id",
        id,
        "--compression",
        "none",
        "--segment-max-bytes",
        "40000",
        "-f",
        "json",
    ];
    let keys_s;
    if let Some(k) = keys {
        keys_s = k.to_str().expect("utf8").to_string();
        args.extend(["--encryption-key-file", keys_s.as_str()]);
    }
    cli(&args, env)
}

/// Where a round trip's keys come from, in each form a user gives them.
struct KeySource {
    /// Backup flags.
    flags: Vec<String>,
    /// The `storage.encryption` lines of a restore configuration.
    yaml: String,
    /// The same for the library.
    settings: tidemark::task::Encryption,
    /// What a worker needs in its environment to reach the keys.
    env: Vec<(&'static str, String)>,
    /// The backup's reported `encryption_key_id`.
    reported: String,
}

impl KeySource {
    fn file(keys: &Path) -> KeySource {
        let path = keys.to_str().expect("utf8").to_string();
        KeySource {
            flags: vec!["--encryption-key-file".into(), path.clone()],
            yaml: format!("  encryption:\n    key_file: {path}\n"),
            settings: tidemark::task::Encryption {
                key_file: Some(path),
                ..Default::default()
            },
            env: vec![],
            reported: "k1".into(),
        }
    }
}

/// A restore configuration of backup `id` into `target`, with `storage` as its storage section
/// body and the key file `keys`.
fn restore_config(
    dir: &Path,
    bs: &str,
    storage: &str,
    id: &str,
    target: &str,
    keys: Option<&Path>,
) -> String {
    let encryption = keys
        .map(|k| format!("  encryption:\n    key_file: {}\n", k.display()))
        .unwrap_or_default();
    restore_config_with(dir, bs, storage, id, target, &encryption)
}

/// [`restore_config`] with `encryption` as the storage section's encryption lines.
fn restore_config_with(
    dir: &Path,
    bs: &str,
    storage: &str,
    id: &str,
    target: &str,
    encryption: &str,
) -> String {
    let text = format!(
        "mode: restore\nbackup_id: {id}\ntarget:\n  bootstrap_servers: [{bs}]\n  topics:\n    include: [orders]\nstorage:\n{storage}{encryption}restore:\n  topic_mapping:\n    orders: {target}\n  create_topics: true\n  produce_batch_size: 100\n  checkpoint_interval_secs: 1\n"
    );
    let p = dir.join(format!("{target}.yaml"));
    std::fs::write(&p, text).expect("write config");
    p.to_str().expect("utf8").to_string()
}

/// What a record must keep through a round trip: key, value, headers and timestamp.
type Content = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Option<Vec<u8>>)>,
    i64,
);

/// What must survive a round trip, per partition in offset order.
fn content(r: &Records, topic: &str) -> Vec<Vec<Content>> {
    (0..PARTITIONS)
        .map(|p| {
            r.get(&(topic.to_string(), p))
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|x: &Record| {
                    (
                        x.key.clone(),
                        x.value.clone(),
                        x.headers.clone(),
                        x.timestamp,
                    )
                })
                .collect()
        })
        .collect()
}

/// Byte strings of the source that a backup in the clear (uncompressed) stores verbatim: every
/// record key, and every value of at least 24 bytes.
fn needles(r: &Records) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for recs in r.values() {
        for x in recs {
            if let Some(k) = &x.key {
                out.push(k.clone());
            }
            if let Some(v) = x.value.as_ref().filter(|v| v.len() >= 24) {
                out.push(v.clone());
            }
        }
    }
    out
}

/// The stored objects (as stored) that hold any of `needles`.
async fn objects_holding(storage: &Storage, needles: &[Vec<u8>]) -> Vec<String> {
    let mut found = Vec::new();
    for o in storage.list("").await.expect("list") {
        let data = storage
            .get_stored(&o.key)
            .await
            .expect("read stored")
            .expect("listed object exists");
        if needles
            .iter()
            .any(|n| data.windows(n.len()).any(|w| w == n.as_slice()))
        {
            found.push(o.key);
        }
    }
    found
}

fn topic_exists(bs: &str, topic: &str) -> bool {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bs)
        .create()
        .expect("consumer");
    let md = c
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    md.topics()
        .iter()
        .any(|t| t.name() == topic && !t.partitions().is_empty())
}

struct Backend {
    name: &'static str,
    /// `--path` of the backup.
    location: String,
    /// The restore configuration's storage section.
    section: String,
    env: Vec<(&'static str, String)>,
    /// A handle without keys, to read what is stored.
    storage: Storage,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_backups_restore_on_every_backend_and_store_no_record_in_the_clear() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    write_key(&keys, "k1", 1);
    round_trip_on_every_backend(&dir, KeySource::file(&keys)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_encrypted_with_kms_restore_on_every_backend() {
    let kms = KmsServer::start();
    let key = kms.create_key();
    // The library reads GCS in this process: its KMS client takes the environment.
    let _env = KmsServer::exclusive().await;
    kms.export_env();
    let dir = tempfile::tempdir().expect("tempdir");
    let source = KeySource {
        flags: vec!["--kms-key-id".into(), key.alias.clone()],
        yaml: format!("  encryption:\n    kms_key_id: {}\n", key.alias),
        settings: tidemark::task::Encryption {
            kms_key_id: Some(key.alias.clone()),
            ..Default::default()
        },
        env: kms.env(),
        reported: format!("aws-kms:{}", key.arn),
    };
    round_trip_on_every_backend(&dir, source).await;
}

/// Backs up, scans, restores (GCS: reads back) and verifies on every backend with `key`.
async fn round_trip_on_every_backend(dir: &tempfile::TempDir, key: KeySource) {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    let before = source(&bs).await;
    let needles = needles(&before);

    let s3 = S3Server::start();
    let azurite = Azurite::start();
    let gcs = GcsEmulator::start();
    let fs_root = dir.path().join("store");
    let fs_s = fs_root.to_str().expect("utf8").to_string();
    let backends = vec![
        Backend {
            name: "filesystem",
            location: fs_s.clone(),
            section: format!("  backend: filesystem\n  path: {fs_s}\n"),
            env: vec![],
            storage: Storage::open(&fs_s, &Default::default()).expect("fs"),
        },
        Backend {
            name: "s3",
            location: s3.location("enc"),
            section: format!("  backend: s3\n  bucket: {BUCKET}\n  prefix: enc\n"),
            env: s3.env(),
            storage: s3.open("enc"),
        },
        Backend {
            name: "azure",
            location: azurite.location("enc"),
            section: format!("  backend: azure\n  container: {BUCKET}\n  prefix: enc\n"),
            env: azurite.env(),
            storage: azurite.open("enc"),
        },
        Backend {
            name: "gcs",
            location: gcs.location("enc"),
            section: format!("  backend: gcs\n  bucket: {BUCKET}\n  prefix: enc\n"),
            env: gcs.env(),
            storage: gcs.open("enc"),
        },
    ];

    // The scan finds records in a backup stored in the clear: it can fail.
    let clear_root = dir.path().join("clear");
    let clear_s = clear_root.to_str().expect("utf8");
    expect_code(&backup(&bs, clear_s, "plain", None, &[]), 0, "clear backup");
    let clear = Storage::open(clear_s, &Default::default()).expect("clear");
    assert!(
        !objects_holding(&clear, &needles).await.is_empty(),
        "an uncompressed backup in the clear holds the records verbatim"
    );

    for b in &backends {
        let env: Vec<(&str, String)> = b.env.iter().chain(&key.env).cloned().collect();
        if b.name == "gcs" {
            // fake-gcs-server does not serve the object PUT that writes go through (see
            // storage_backends::gcs_put_is_not_served_by_emulator): the filesystem backup's
            // objects are uploaded as stored, and everything below reads them from GCS.
            let fs = &backends[0].storage;
            for o in fs.list("backups/b1/").await.expect("list") {
                let data = fs.get_stored(&o.key).await.expect("read").expect("exists");
                gcs.upload(&format!("enc/{}", o.key), &data);
            }
        } else {
            let mut args: Vec<&str> = vec![
                "backup",
                "--bootstrap-servers",
                &bs,
                "--path",
                &b.location,
                "--topics",
                "orders",
                "--backup-id",
                "b1",
                "--compression",
                "none",
                "--segment-max-bytes",
                "40000",
                "-f",
                "json",
            ];
            args.extend(key.flags.iter().map(String::as_str));
            let out = cli(&args, &env);
            expect_code(&out, 0, b.name);
            let j = out.json();
            assert_eq!(
                j["encryption_key_id"],
                key.reported.as_str(),
                "{}: {j}",
                b.name
            );
            assert_eq!(
                j["records"],
                (PER_PARTITION as u64) * PARTITIONS as u64,
                "{j}"
            );
        }

        // Nothing of the records is stored in the clear; the layout says what is sealed.
        let stored = b.storage.list("").await.expect("list");
        assert!(
            stored.iter().any(|o| o.key == "backups/b1/encryption.json"),
            "{}: {stored:?}",
            b.name
        );
        assert_eq!(
            objects_holding(&b.storage, &needles).await,
            Vec::<String>::new(),
            "{}: objects holding record bytes in the clear",
            b.name
        );
        for o in &stored {
            let raw = b
                .storage
                .get_stored(&o.key)
                .await
                .expect("raw")
                .expect("exists");
            if o.key.ends_with(".seg") || o.key.contains("/offsets/") {
                assert!(
                    raw.starts_with(b"TDMKSEAL"),
                    "{}: {} is not sealed",
                    b.name,
                    o.key
                );
            }
            if o.key.contains("/manifest/") {
                let m: serde_json::Value = serde_json::from_slice(&raw).expect("manifest is JSON");
                assert_eq!(
                    m["authentication"]["algorithm"], "HMAC-SHA256",
                    "{}",
                    b.name
                );
                assert!(m["topics"]["orders"].is_object(), "manifest stays readable");
            }
        }

        if b.name == "gcs" {
            // A restore writes its lease and checkpoint, which the emulator cannot store: the
            // backup is read back through the library with the key instead.
            let options = tidemark::storage::StorageOptions {
                encryption: Some(key.settings.clone()),
                ..gcs.options()
            };
            let keyed = Storage::open_with(&b.location, &options, &gcs.settings()).expect("gcs");
            let (_, read) = read_backup_in(&keyed, "b1").await;
            assert_eq!(content(&read, "orders"), content(&before, "orders"), "gcs");
        } else {
            // Restored byte for byte, through a configuration naming the key file.
            let target = format!("orders-{}", b.name);
            let cfg = restore_config_with(dir.path(), &bs, &b.section, "b1", &target, &key.yaml);
            let out = cli(&["restore", "--config", &cfg, "-f", "json"], &env);
            expect_code(&out, 0, b.name);
            let after = read_topic(&bs, &target, PARTITIONS);
            assert_eq!(
                content(&after, &target),
                content(&before, "orders"),
                "{}: restored records differ",
                b.name
            );
        }

        // verify-backup authenticates every object with the key, and says it cannot without.
        let path = b.location.as_str();
        let mut args: Vec<&str> = vec![
            "verify-backup",
            "-p",
            path,
            "-b",
            "b1",
            "--deep",
            "-f",
            "json",
        ];
        args.extend(key.flags.iter().map(String::as_str));
        let v = cli(&args, &env);
        expect_code(&v, 0, b.name);
        assert_eq!(v.json()["content_checked"], true);
        let v = cli(&["verify-backup", "-p", path, "-b", "b1"], &b.env);
        expect_code(&v, 2, b.name);
        assert!(
            v.stderr
                .contains(&format!("encrypted with key '{}'", key.reported)),
            "{}",
            v.stderr
        );
    }
}

/// A copy of the directory tree `from` at `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).expect("copy");
        }
    }
}

/// The segment files of `partition` in backup `id`, in offset order.
fn segments(store: &Path, id: &str, partition: i32) -> Vec<PathBuf> {
    let dir = store.join(format!("backups/{id}/topics/orders/{partition}"));
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .collect();
    out.sort();
    out
}

fn rel(store: &Path, p: &Path) -> String {
    p.strip_prefix(store)
        .expect("inside")
        .to_str()
        .expect("utf8")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_and_wrong_keys_stop_a_restore_before_anything_is_written() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    source(&bs).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    write_key(&keys, "k1", 1);
    let good = dir.path().join("good");
    let good_s = good.to_str().expect("utf8");
    expect_code(&backup(&bs, good_s, "b1", Some(&keys), &[]), 0, "b1");
    expect_code(&backup(&bs, good_s, "b2", Some(&keys), &[]), 0, "b2");
    let clear = dir.path().join("clear");
    expect_code(
        &backup(&bs, clear.to_str().expect("utf8"), "b1", None, &[]),
        0,
        "clear",
    );
    let wrong = dir.path().join("wrong");
    write_key(&wrong, "k1", 2);
    let other = dir.path().join("other");
    write_key(&other, "k2", 3);
    assert!(
        segments(&good, "b1", 2).len() >= 2,
        "several segments per partition"
    );

    type Damage = Box<dyn Fn(&Path) -> String>;
    // (case, damage to a copy of the store returning the object that must be named, key
    // directory, exit code, words the error must hold)
    let cases: Vec<(&str, Damage, Option<&Path>, i32, &str)> = vec![
        (
            "wrong-key",
            Box::new(|_: &Path| "backups/b1/encryption.json".to_string()),
            Some(&wrong),
            8,
            "authentication failed",
        ),
        (
            "missing-key",
            Box::new(|_: &Path| "'k1'".to_string()),
            Some(&other),
            2,
            "does not hold",
        ),
        (
            "no-key",
            Box::new(|_: &Path| "encrypted with key 'k1'".to_string()),
            None,
            2,
            "--encryption-key-file",
        ),
        (
            "flipped-bit",
            Box::new(|s: &Path| {
                let seg = segments(s, "b1", 2).pop().expect("segment");
                let mut data = std::fs::read(&seg).expect("read");
                let at = data.len() / 2;
                data[at] ^= 0x10;
                std::fs::write(&seg, data).expect("write");
                rel(s, &seg)
            }),
            Some(&keys),
            8,
            "authentication failed",
        ),
        (
            "swapped",
            Box::new(|s: &Path| {
                let segs = segments(s, "b1", 1);
                std::fs::copy(&segs[0], &segs[1]).expect("swap");
                rel(s, &segs[1])
            }),
            Some(&keys),
            8,
            "authentication failed",
        ),
        (
            "replayed",
            Box::new(|s: &Path| {
                let from = segments(s, "b2", 0).remove(0);
                let to = segments(s, "b1", 0).remove(0);
                std::fs::copy(&from, &to).expect("replay");
                rel(s, &to)
            }),
            Some(&keys),
            8,
            "authentication failed",
        ),
        (
            "in-the-clear",
            Box::new(move |s: &Path| {
                let to = segments(s, "b1", 0).remove(0);
                let from = s.parent().expect("parent").join("clear").join(rel(s, &to));
                std::fs::copy(&from, &to).expect("downgrade");
                rel(s, &to)
            }),
            Some(&keys),
            8,
            "stored in the clear",
        ),
        (
            "cut-manifest",
            Box::new(|s: &Path| {
                let m = s.join("backups/b1/manifest/00000-of-00001.json");
                let data = std::fs::read(&m).expect("read");
                std::fs::write(&m, &data[..data.len() / 2]).expect("cut");
                "backups/b1/manifest/00000-of-00001.json".to_string()
            }),
            Some(&keys),
            8,
            "authentication failed",
        ),
        (
            "segment-dropped-from-manifest",
            Box::new(|s: &Path| {
                let m = s.join("backups/b1/manifest/00000-of-00001.json");
                let mut doc: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&m).expect("read")).expect("json");
                let segs = doc["topics"]["orders"]["partition_data"]["1"]["segments"]
                    .as_array_mut()
                    .expect("segments");
                segs.pop();
                std::fs::write(&m, serde_json::to_vec_pretty(&doc).expect("json")).expect("write");
                "backups/b1/manifest/00000-of-00001.json".to_string()
            }),
            Some(&keys),
            8,
            "MAC does not match",
        ),
    ];
    for (name, damage, key_dir, code, words) in cases {
        let store = dir.path().join(name);
        copy_dir(&good, &store);
        let named = damage(&store);
        let target = format!("restored-{name}");
        let section = format!("  backend: filesystem\n  path: {}\n", store.display());
        let cfg = restore_config(dir.path(), &bs, &section, "b1", &target, key_dir);
        let out = cli(&["restore", "--config", &cfg], &[]);
        expect_code(&out, code, name);
        assert!(
            out.stderr.contains(&named) && out.stderr.contains(words),
            "{name}: the error must name {named} and say '{words}':\n{}",
            out.stderr
        );
        assert!(!topic_exists(&bs, &target), "{name}: {target} was created");
    }

    // verify-backup finds a flipped bit and names the segment, exit 8.
    let flipped = dir.path().join("flipped-bit");
    let seg = rel(
        &flipped,
        &segments(&flipped, "b1", 2).pop().expect("segment"),
    );
    let v = cli(
        &[
            "verify-backup",
            "-p",
            flipped.to_str().expect("utf8"),
            "-b",
            "b1",
            "--encryption-key-file",
            keys.to_str().expect("utf8"),
        ],
        &[],
    );
    expect_code(&v, 8, "verify-backup");
    assert!(
        v.stdout.contains(&seg) && v.stderr.contains("authentication failed"),
        "{}\n{}",
        v.stdout,
        v.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_and_rewrap_without_rewriting_segments_and_clear_backups_stay_readable() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    let before = source(&bs).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store_s = store.to_str().expect("utf8");
    let section = format!("  backend: filesystem\n  path: {store_s}\n");
    // Keys as a Secret mounted with two data items: the old key and the new one.
    let old_only = dir.path().join("old");
    write_key(&old_only, "k1", 1);
    let both = dir.path().join("both");
    write_key(&both, "k1", 1);
    write_key(&both, "k2", 2);
    let new_only = dir.path().join("new");
    write_key(&new_only, "k2", 2);

    expect_code(&backup(&bs, store_s, "clear", None, &[]), 0, "clear");
    expect_code(&backup(&bs, store_s, "old", Some(&old_only), &[]), 0, "old");
    let env = [("TIDEMARK_ENCRYPTION_KEY_ID", "k2".to_string())];
    let out = backup(&bs, store_s, "new", Some(&both), &env);
    expect_code(&out, 0, "new");
    assert_eq!(out.json()["encryption_key_id"], "k2");
    // An offset snapshot sealed under a data key of its own, wrapped by k1.
    let admin = tidemark_tests::connect_admin(&bs).await;
    tidemark_tests::commit(
        &admin,
        "billing",
        &tidemark_tests::commits("orders", &[7, 8, 9]),
    )
    .await;
    let old_s = old_only.to_str().expect("utf8");
    let snap = cli(
        &[
            "offset-rollback",
            "snapshot",
            "--bootstrap-servers",
            &bs,
            "--path",
            store_s,
            "--groups",
            "billing",
            "--snapshot-id",
            "s1",
            "--encryption-key-file",
            old_s,
            "-f",
            "json",
        ],
        &[],
    );
    expect_code(&snap, 0, "snapshot");
    let sealed = std::fs::read(store.join("snapshots/s1.json")).expect("snapshot file");
    assert!(sealed.starts_with(b"TDMKSEAL"), "the snapshot is sealed");
    assert!(
        !sealed.windows(7).any(|w| w == b"billing"),
        "no group name in the clear"
    );
    let segs_before: Vec<Vec<u8>> = segments(&store, "old", 0)
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect();

    // Without the old key the old backup cannot be read (the crypto-shredding property) and
    // the error says which key is missing.
    let cfg = restore_config(
        dir.path(),
        &bs,
        &section,
        "old",
        "shredded",
        Some(&new_only),
    );
    let out = cli(&["restore", "--config", &cfg], &[]);
    expect_code(&out, 2, "old backup without k1");
    assert!(out.stderr.contains("'k1'"), "{}", out.stderr);
    assert!(!topic_exists(&bs, "shredded"));

    // Re-wrap everything under k2, with both keys at hand.
    let keys_s = both.to_str().expect("utf8");
    let r = cli(
        &[
            "rewrap-keys",
            "-p",
            store_s,
            "--all",
            "--encryption-key-file",
            keys_s,
            "--encryption-key-id",
            "k2",
            "-f",
            "json",
        ],
        &[],
    );
    expect_code(&r, 0, "rewrap");
    let j = r.json();
    assert_eq!(j["key_id"], "k2", "{j}");
    assert_eq!(j["rewrapped"][0]["object"], "old", "{j}");
    assert_eq!(j["rewrapped"][0]["from"], "k1", "{j}");
    assert_eq!(j["current"][0], "new", "{j}");
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(store.join("backups/old/encryption.json")).expect("key object"),
    )
    .expect("json");
    assert_eq!(record["data_key"]["key_id"], "k2");
    assert!(record["rewrapped_at"].is_string());
    let segs_after: Vec<Vec<u8>> = segments(&store, "old", 0)
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect();
    assert_eq!(
        segs_after, segs_before,
        "segments are not rewritten by a re-wrap"
    );

    assert!(
        j["rewrapped"]
            .as_array()
            .expect("rewrapped")
            .iter()
            .any(|x| x["object"] == "snapshots/s1.json" && x["from"] == "k1"),
        "{j}"
    );
    // `list` tells which key wraps each backup, without any key.
    let l = cli(&["list", "--path", store_s, "-f", "json"], &[]);
    expect_code(&l, 0, "list");
    let listed = l.json();
    let key_of = |id: &str| {
        listed["backups"]
            .as_array()
            .expect("backups")
            .iter()
            .find(|b| b["backup_id"] == id)
            .map(|b| b["encryption_key_id"].clone())
    };
    assert_eq!(key_of("old"), Some(serde_json::json!("k2")), "{listed}");
    assert_eq!(key_of("new"), Some(serde_json::json!("k2")), "{listed}");
    assert_eq!(key_of("clear"), Some(serde_json::Value::Null), "{listed}");
    let new_s = new_only.to_str().expect("utf8");
    let show = cli(
        &[
            "offset-rollback",
            "show",
            "-s",
            "s1",
            "--path",
            store_s,
            "--encryption-key-file",
            new_s,
            "-f",
            "json",
        ],
        &[],
    );
    expect_code(&show, 0, "show the re-wrapped snapshot with k2 alone");
    assert!(show.stdout.contains("billing"), "{}", show.stdout);
    let show = cli(
        &["offset-rollback", "show", "-s", "s1", "--path", store_s],
        &[],
    );
    expect_code(&show, 2, "a sealed snapshot without keys");
    assert!(
        show.stderr.contains("encrypted with key 'k2'"),
        "{}",
        show.stderr
    );

    // Now k1 can go: every backup restores with k2 alone, and the one in the clear too.
    for id in ["old", "new", "clear"] {
        let target = format!("back-{id}");
        let cfg = restore_config(dir.path(), &bs, &section, id, &target, Some(&new_only));
        let out = cli(&["restore", "--config", &cfg, "-f", "json"], &[]);
        expect_code(&out, 0, id);
        let after = read_topic(&bs, &target, PARTITIONS);
        assert_eq!(content(&after, &target), content(&before, "orders"), "{id}");
    }
}

/// `run --task` of `yaml` (a task document as the operator renders it): the exit, and the
/// result the worker wrote (checked by [`tidemark_tests::run_task`]).
fn run_task(dir: &Path, name: &str, yaml: &str) -> (CliOutput, tidemark::task::TaskResult) {
    let run = tidemark_tests::run_task(BIN, dir, name, yaml, &[]);
    (run.out, run.result)
}

/// A task document of `kind` against `bs`, its storage the location `store` with the key file
/// `keys` (the encryption Secret's mount, as a KafkaOffsetReset or KafkaRestore with
/// `spec.encryption` renders it) or without keys.
fn task_doc(kind: &str, bs: &str, store: &Path, keys: Option<&Path>, body: &str) -> String {
    let encryption = keys
        .map(|k| format!("  encryption:\n    keyFile: {}\n", k.display()))
        .unwrap_or_default();
    format!(
        "apiVersion: tidemark.dev/task-v1\nkind: {kind}\nsource: default/{kind}-enc\n\
         kafka:\n  bootstrapServers: [\"{bs}\"]\n  securityProtocol: PLAINTEXT\n\
         storage:\n  type: location\n  url: {}\n{encryption}{body}",
        store.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_from_an_encrypted_backup_reads_it_with_the_keys_and_seals_its_safety_snapshot() {
    use tidemark_tests::{commit, commits, committed_map, topic_offsets};
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    source(&bs).await;
    let admin = tidemark_tests::connect_admin(&bs).await;
    commit(&admin, "order-processor", &commits("orders", &[5, 7, 9])).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    write_key(&keys, "k1", 1);
    let store = dir.path().join("store");
    let store_s = store.to_str().expect("utf8");
    expect_code(&backup(&bs, store_s, "b1", Some(&keys), &[]), 0, "backup");

    // The restore translates the group through an offset mapping it stores sealed.
    let restore = task_doc(
        "restore",
        &bs,
        &store,
        Some(&keys),
        "backupId: b1\nrestoreId: kr-1\ntopicMapping: {orders: orders-copy}\ncreateTopics: true\n\
         produceBatchSize: 1\nconsumerGroupStrategy: header-based\nresetConsumerOffsets: true\n",
    );
    let (out, result) = run_task(dir.path(), "restore", &restore);
    expect_code(&out, 0, "restore");
    let mapping_key = result
        .restore
        .as_ref()
        .and_then(|r| r.offset_mapping.clone())
        .expect("an offset mapping");
    let mapping = std::fs::read(store.join(&mapping_key)).expect("mapping");
    assert!(mapping.starts_with(b"TDMKSEAL"), "the mapping is sealed");
    assert!(
        !mapping.windows(15).any(|w| w == b"order-processor"),
        "no group name in the clear"
    );

    // The group moved on since; the reset puts it back where the backup says.
    commit(
        &admin,
        "order-processor",
        &commits("orders-copy", &[0, 0, 0]),
    )
    .await;
    let reset = |keys: Option<&Path>| {
        task_doc(
            "offsetReset",
            &bs,
            &store,
            keys,
            "consumerGroups: [order-processor]\nstrategy: {type: fromBackup, backupId: b1}\n\
             snapshotId: dr-before-groups\nsnapshotDescription: before the reset\n",
        )
    };
    // Without the keys: refused naming what is encrypted, nothing committed or stored.
    let (out, result) = run_task(dir.path(), "reset-no-keys", &reset(None));
    expect_code(&out, 2, "a reset of an encrypted backup without keys");
    assert!(
        result.message.contains("backups/b1/") && result.message.contains("is encrypted"),
        "{}",
        result.message
    );
    let now = committed_map(&admin, "order-processor").await;
    assert_eq!(topic_offsets(&now, "orders-copy"), vec![0, 0, 0]);
    assert!(!store.join("snapshots/dr-before-groups.json").exists());

    // With them: the translated offsets are committed after a sealed safety snapshot.
    let (out, result) = run_task(dir.path(), "reset", &reset(Some(&keys)));
    expect_code(&out, 0, "a reset of an encrypted backup with its keys");
    assert_eq!(result.snapshot_id.as_deref(), Some("dr-before-groups"));
    let now = committed_map(&admin, "order-processor").await;
    assert_eq!(topic_offsets(&now, "orders-copy"), vec![5, 7, 9]);
    let snapshot = std::fs::read(store.join("snapshots/dr-before-groups.json")).expect("snapshot");
    assert!(
        snapshot.starts_with(b"TDMKSEAL"),
        "the safety snapshot is sealed"
    );
    assert!(
        !snapshot.windows(15).any(|w| w == b"order-processor"),
        "no group name in the clear"
    );
    // The snapshot undoes the reset with the same keys, and only with them.
    let show = cli(
        &[
            "offset-rollback",
            "show",
            "-s",
            "dr-before-groups",
            "--path",
            store_s,
            "--encryption-key-file",
            keys.to_str().expect("utf8"),
            "-f",
            "json",
        ],
        &[],
    );
    expect_code(&show, 0, "show the safety snapshot");
    assert!(show.stdout.contains("order-processor"), "{}", show.stdout);
}

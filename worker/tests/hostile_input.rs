//! Hostile input: every parser of user- or storage-supplied bytes (segment decoder, manifest,
//! checkpoint, snapshot, kmap file, task document, reset-plan CSV, restore configuration) is fed
//! random and mutated inputs. Each must return (never panic), refuse with an error that names the
//! file it was given, and allocate no more than a bound proportional to the input: this binary
//! installs a counting global allocator and measures, per thread, the peak of live heap bytes
//! while a parser runs.
//!
//! Case counts are bounded (`CASES` per property, about a second each); set `PROPTEST_CASES` for a
//! longer run.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use proptest::prelude::*;
use proptest::test_runner::Config;

use tidemark::backup::format::{
    check_segment, decode_segment_shared, Codec, SegmentWriter, TimestampType, HEADER_LEN,
};
use tidemark::backup::manifest::{Checkpoint, Manifest};
use tidemark::kmap::KmapFile;
use tidemark::reset::csv::parse_reset_csv;
use tidemark::restore::config::parse_config;
use tidemark::snapshot::OffsetSnapshot;
use tidemark::task::Task;

// ---------------------------------------------------------------------------------------------
// Counting allocator

/// Counts this thread's live heap bytes and their peak; only the bookkeeping differs from
/// `System`.
struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grew(n: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get().saturating_add(n);
        live.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

fn shrank(n: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(n)));
}

// SAFETY: every call is passed to `System` unchanged; the counters are `const`-initialised
// thread-locals (no allocation) updated with `try_with`, so they cannot recurse or panic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrank(layout.size());
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Old and new block both exist for a moment.
        grew(new_size);
        shrank(layout.size());
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the peak of heap bytes it held at once.
fn measured<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get).saturating_sub(base);
    (out, peak)
}

/// The memory any parser may use for `len` input bytes: `per_byte` per byte plus a fixed
/// allowance (serde preallocates at most 1 MiB from a size hint).
fn budget(len: usize, per_byte: usize) -> usize {
    len.saturating_mul(per_byte) + (2 << 20)
}

/// Per input byte, what a text parser may hold (a YAML document becomes an event list first).
const TEXT_PER_BYTE: usize = 512;

// ---------------------------------------------------------------------------------------------
// Mutations

/// One edit of a valid encoding; positions are fractions of the current length.
#[derive(Debug, Clone)]
enum Edit {
    Flip {
        at: f64,
        bit: u8,
    },
    Set {
        at: f64,
        byte: u8,
    },
    Truncate {
        at: f64,
    },
    Insert {
        at: f64,
        bytes: Vec<u8>,
    },
    Remove {
        at: f64,
        n: usize,
    },
    Duplicate {
        at: f64,
        n: usize,
    },
    /// Writes a huge or edge number in decimal (for text) at a position.
    Number {
        at: f64,
        n: u64,
    },
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = 0.0..1.0f64;
    let edge = prop_oneof![
        Just(u64::MAX),
        Just(i64::MAX as u64),
        Just(u32::MAX as u64),
        Just(1u64 << 30),
        Just(1u64 << 31),
        any::<u64>(),
    ];
    prop_oneof![
        (at.clone(), 0..8u8).prop_map(|(at, bit)| Edit::Flip { at, bit }),
        (at.clone(), any::<u8>()).prop_map(|(at, byte)| Edit::Set { at, byte }),
        at.clone().prop_map(|at| Edit::Truncate { at }),
        (at.clone(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Edit::Insert { at, bytes }),
        (at.clone(), 1..32usize).prop_map(|(at, n)| Edit::Remove { at, n }),
        (at.clone(), 1..64usize).prop_map(|(at, n)| Edit::Duplicate { at, n }),
        (at, edge).prop_map(|(at, n)| Edit::Number { at, n }),
    ]
}

fn apply(data: &mut Vec<u8>, edits: &[Edit]) {
    for e in edits {
        let pos = |at: f64, len: usize| ((at * len as f64) as usize).min(len);
        let len = data.len();
        match e {
            Edit::Flip { at, bit } => {
                if len > 0 {
                    let i = pos(*at, len - 1);
                    data[i] ^= 1 << bit;
                }
            }
            Edit::Set { at, byte } => {
                if len > 0 {
                    let i = pos(*at, len - 1);
                    data[i] = *byte;
                }
            }
            Edit::Truncate { at } => data.truncate(pos(*at, len)),
            Edit::Insert { at, bytes } => {
                let i = pos(*at, len);
                data.splice(i..i, bytes.iter().copied());
            }
            Edit::Remove { at, n } => {
                let i = pos(*at, len);
                data.drain(i..(i + n).min(len));
            }
            Edit::Duplicate { at, n } => {
                let i = pos(*at, len);
                let copy: Vec<u8> = data[i..(i + n).min(len)].to_vec();
                data.splice(i..i, copy);
            }
            Edit::Number { at, n } => {
                let i = pos(*at, len);
                data.splice(i..i, n.to_string().into_bytes());
            }
        }
    }
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(edit(), 1..6)
}

/// Text nested `depth` times: JSON arrays or objects, YAML flow or block sequences.
fn deep(kind: u8, depth: usize) -> Vec<u8> {
    let s = match kind % 4 {
        0 => format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
        1 => format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)),
        2 => format!("a: {}{}", "[".repeat(depth), "]".repeat(depth)),
        // Indentation grows with depth: kept shallower so the text stays small.
        _ => (0..depth.min(300))
            .map(|i| format!("{}- \n", "  ".repeat(i)))
            .collect(),
    };
    s.into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Valid starting points

const TASK_YAML: &str = r#"
apiVersion: tidemark.dev/task-v1
kind: offsetRollback
source: payments/pre-migration
operation: snapshot
kafka:
  bootstrapServers: ["kafka-0:9092", "kafka-1:9092"]
  securityProtocol: SASL_SSL
  saslMechanism: SCRAM-SHA-512
  properties:
    client.id: tidemark
storage:
  type: configMap
  namespace: payments
  name: offset-snapshots
consumerGroups: [order-processor, payment-handler]
snapshotId: pre-migration-20241201
"#;

const TASK_JSON: &str = r#"{"apiVersion": "tidemark.dev/task-v1", "kind": "offsetRollback",
 "operation": "snapshot", "kafka": {"bootstrapServers": ["kafka-0:9092"],
 "securityProtocol": "PLAINTEXT"},
 "storage": {"type": "configMap", "namespace": "payments", "name": "offset-snapshots"},
 "consumerGroups": ["order-processor"], "snapshotId": "pre-migration-20241201"}"#;

const SNAPSHOT: &str = r#"{
  "snapshotId": "pre-migration-20241201",
  "timestamp": "2024-12-01T12:00:00Z",
  "cluster": "kafka:9092",
  "groups": {
    "order-processor": {"topics": {"orders": {
      "0": {"offset": 1000, "metadata": "", "timestamp": 1701432000000},
      "1": {"offset": 2000, "metadata": "x", "timestamp": 1701432000000}}}}
  }
}"#;

const KMAP: &str = r#"{
  "timestamp": "2026-01-20T15:30:04Z",
  "cluster": "localhost:9092",
  "consumer_groups": [
    {"group": "my-consumer-group",
     "topics": {"orders": [{"partition": 0, "offset": 12345}, {"partition": 1, "offset": 67890}]},
     "timestamp": "2026-01-20T15:30:04Z"}
  ]
}"#;

const CSV: &str = "group,topic,partition,offset\n\
orders-app,orders,0,42\n\
\"a,b\",orders,1,7\r\n\
\"say \"\"hi\"\"\",payments,0,0\n";

const MANIFEST: &str = r#"{"format": "tidemark-backup/1", "backup_id": "b1", "mode": "one_shot",
 "shard_index": 0, "shard_count": 1, "cluster": "kafka:9092",
 "started_at": "2026-01-20T15:30:04Z", "completed_at": "2026-01-20T15:31:04Z",
 "compression": "zstd", "isolation": "read_committed",
 "topics": {"orders": {"partitions": 1, "replication_factor": 1, "configs": {},
   "partition_data": {"0": {"start_offset": 0, "end_offset": 2, "records": 2, "bytes": 10,
     "stored_bytes": 100, "gaps": {"count": 0, "offsets": 0, "ranges": [[5, 6]]}, "segments": []}}}},
 "totals": {"topics": 1, "partitions": 1, "records": 2, "bytes": 10, "stored_bytes": 100,
   "segments": 0}}"#;

const CHECKPOINT: &str = r#"{"format": "tidemark-backup/1", "backup_id": "b1", "shard_index": 0,
 "shard_count": 1, "started_at": null, "partitions": {"orders": {"0": {"next_offset": 2,
 "start_offset": 0, "end_offset": 2, "records": 2, "bytes": 10, "stored_bytes": 100,
 "gaps": {"count": 0, "offsets": 0, "ranges": [[5, 6]]}, "segments": []}}}}"#;

const RESTORE_CONFIG: &str = r#"
mode: restore
backup_id: "backup-2025-01-15"
target:
  bootstrap_servers: [kafka-1:9092, kafka-2:9092]
  security:
    security_protocol: SASL_SSL
    sasl_mechanism: PLAIN
    sasl_username: restore-user
    sasl_password: ${KAFKA_PASSWORD}
  topics:
    include: [orders, payments, "events-*", "~transactions-\\d+"]
    exclude: ["*-internal", "__*"]
storage:
  backend: s3
  bucket: kafka-backups
  region: us-east-1
  prefix: prod-cluster
restore:
  time_window_start: 1705312800000
  time_window_end: 1705316400000
  source_partitions: [0, 1, 2]
  topic_mapping:
    orders: orders-recovered
  consumer_group_strategy: header-based
  max_concurrent_partitions: 4
"#;

fn env(var: &str) -> Option<String> {
    (var == "KAFKA_PASSWORD").then(|| "s3cret".to_string())
}

/// A parser under test: its name, a valid input, and the call (file name given as `FILE`).
type Parse = fn(&[u8]) -> Result<(), String>;

/// The file name every parser is given; every error must contain it.
const FILE: &str = "hostile-input.file";

fn utf8(data: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(data).map_err(|e| format!("{FILE}: {e}"))
}

fn parsers() -> Vec<(&'static str, &'static str, Parse)> {
    vec![
        ("task yaml", TASK_YAML, |d| {
            Task::parse(d, FILE).map(drop).map_err(|e| e.to_string())
        }),
        ("task json", TASK_JSON, |d| {
            Task::parse(d, FILE).map(drop).map_err(|e| e.to_string())
        }),
        ("snapshot", SNAPSHOT, |d| {
            OffsetSnapshot::from_json(d, FILE)
                .map(drop)
                .map_err(|e| e.to_string())
        }),
        ("kmap", KMAP, |d| {
            KmapFile::from_json(d, FILE)
                .map(drop)
                .map_err(|e| e.to_string())
        }),
        ("reset csv", CSV, |d| {
            parse_reset_csv(utf8(d)?, FILE, None).map(drop)
        }),
        ("manifest", MANIFEST, |d| {
            Manifest::from_json(d, FILE)
                .map(drop)
                .map_err(|e| e.to_string())
        }),
        ("checkpoint", CHECKPOINT, |d| {
            Checkpoint::from_json(d, FILE)
                .map(drop)
                .map_err(|e| e.to_string())
        }),
        ("restore config", RESTORE_CONFIG, |d| {
            parse_config(utf8(d)?, FILE, env)
                .map(drop)
                .map_err(|e| e.to_string())
        }),
    ]
}

/// Runs one parser on `data`: it returns, names the file in any error, stays within budget.
fn check_text(name: &str, parse: Parse, data: &[u8]) -> Result<(), TestCaseError> {
    let (result, peak) = measured(|| parse(data));
    prop_assert!(
        peak <= budget(data.len(), TEXT_PER_BYTE),
        "{name}: {peak} bytes held for a {}-byte input",
        data.len()
    );
    if let Err(e) = result {
        prop_assert!(
            e.contains(FILE),
            "{name}: error does not name the file: {e}"
        );
        prop_assert!(
            e.len() < 64 * 1024 + data.len(),
            "{name}: error of {} bytes",
            e.len()
        );
    }
    Ok(())
}

const CASES: u32 = 256;

fn config() -> Config {
    Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    }
}

#[test]
fn every_starting_point_is_valid() {
    for (name, valid, parse) in parsers() {
        parse(valid.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_documents_are_refused_cleanly(which in 0..8usize, edits in edits()) {
        let (name, valid, parse) = parsers()[which];
        let mut data = valid.as_bytes().to_vec();
        apply(&mut data, &edits);
        check_text(name, parse, &data)?;
    }

    #[test]
    fn random_bytes_are_refused_cleanly(which in 0..8usize, data in prop::collection::vec(any::<u8>(), 0..512)) {
        let (name, _, parse) = parsers()[which];
        check_text(name, parse, &data)?;
    }

    #[test]
    fn deep_nesting_is_refused_cleanly(which in 0..8usize, kind in any::<u8>(), depth in 1..4_000usize) {
        let (name, _, parse) = parsers()[which];
        check_text(name, parse, &deep(kind, depth))?;
    }
}

// ---------------------------------------------------------------------------------------------
// Segments

const SEGMENT: &str = "backups/b1/topics/orders/0/00000000000000000042.seg";

/// Memory a decode may hold per input byte, by codec: the index of an uncompressed block (at
/// most one entry per 6 bytes); an LZ4 block expands at most 255 times; a zstd frame at most
/// 32768 times (one 4-byte RLE block per 128 KiB).
fn segment_per_byte(codec: u8) -> usize {
    match codec {
        1 => 32_768 * 10,
        2 => 255 * 10,
        _ => 10,
    }
}

#[derive(Debug, Clone)]
struct Rec {
    delta: i64,
    ts: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn rec() -> impl Strategy<Value = Rec> {
    let bytes = || prop::option::of(prop::collection::vec(any::<u8>(), 0..40));
    (
        1..1000i64,
        any::<i64>(),
        bytes(),
        bytes(),
        prop::collection::vec(("[a-z]{0,6}", bytes()), 0..3),
    )
        .prop_map(|(delta, ts, key, value, headers)| Rec {
            delta,
            ts,
            key,
            value,
            headers,
        })
}

fn encode(codec: u8, records: &[Rec]) -> Vec<u8> {
    let codec = match codec {
        1 => Codec::Zstd { level: 1 },
        2 => Codec::Lz4,
        _ => Codec::None,
    };
    let mut w = SegmentWriter::new(codec);
    let mut offset = 41i64;
    for r in records {
        offset += r.delta;
        let headers: Vec<(&str, Option<&[u8]>)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        w.push(
            offset,
            r.ts,
            TimestampType::CreateTime,
            r.key.as_deref(),
            r.value.as_deref(),
            &headers,
        )
        .expect("push");
    }
    w.finish().expect("finish").0
}

/// Rewrites the trailing checksum so that a mutation reaches the checks behind it.
fn fix_checksum(data: &mut [u8]) {
    if data.len() >= HEADER_LEN + 4 {
        let at = data.len() - 4;
        let crc = crc32c::crc32c(&data[..at]);
        data[at..].copy_from_slice(&crc.to_le_bytes());
    }
}

fn check_segment_bytes(codec: u8, data: Vec<u8>) -> Result<(), TestCaseError> {
    let len = data.len();
    let (result, peak) = measured(|| {
        let header = check_segment(&data, SEGMENT).map(drop);
        let full = decode_segment_shared(bytes::Bytes::from(data), SEGMENT, Vec::new()).map(drop);
        (header, full)
    });
    prop_assert!(
        peak <= budget(len, segment_per_byte(codec)),
        "{peak} bytes held decoding a {len}-byte segment"
    );
    for e in [result.0.err(), result.1.err()].into_iter().flatten() {
        let msg = e.to_string();
        prop_assert!(
            msg.contains(SEGMENT),
            "error does not name the object: {msg}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_segments_are_refused_cleanly(
        codec in 0..3u8,
        records in prop::collection::vec(rec(), 1..12),
        edits in edits(),
        fix in any::<bool>(),
    ) {
        let mut data = encode(codec, &records);
        apply(&mut data, &edits);
        if fix {
            fix_checksum(&mut data);
        }
        check_segment_bytes(codec, data)?;
    }

    #[test]
    fn forged_header_fields_are_refused_cleanly(
        codec in 0..3u8,
        records in prop::collection::vec(rec(), 1..6),
        field in prop::sample::select(vec![6usize, 12, 16, 24, 32, 40, 48, 56]),
        value in prop_oneof![any::<u64>(), Just(u64::MAX), Just(1 << 30), Just((1 << 30) + 1), 0..4096u64],
    ) {
        let mut data = encode(codec, &records);
        let width = match field { 6 => 2, 12 => 4, _ => 8 };
        data[field..field + width].copy_from_slice(&value.to_le_bytes()[..width]);
        fix_checksum(&mut data);
        check_segment_bytes(codec, data)?;
    }

    #[test]
    fn random_segments_are_refused_cleanly(codec in 0..3u8, body in prop::collection::vec(any::<u8>(), 0..256)) {
        // A plausible header (magic, version, length) over random bytes.
        let mut data = encode(codec, &[Rec { delta: 1, ts: 0, key: None, value: None, headers: vec![] }]);
        data.truncate(HEADER_LEN);
        data[56..64].copy_from_slice(&(body.len() as u64).to_le_bytes());
        data.extend_from_slice(&body);
        data.extend_from_slice(&[0; 4]);
        fix_checksum(&mut data);
        check_segment_bytes(codec, data)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions found by the properties above

/// A segment whose zstd frame declares 1 GiB of content but holds one 128 KiB RLE block: 17
/// bytes of frame. The decoder used to reserve the declared gigabyte before inflating anything.
#[test]
fn a_small_zstd_frame_declaring_a_gigabyte_is_refused_before_allocating() {
    let declared: u64 = 1 << 30;
    let mut frame = vec![0x28, 0xB5, 0x2F, 0xFD]; // zstd magic
    frame.push(0xE0); // 8-byte content size, single segment, no checksum, no dictionary
    frame.extend_from_slice(&declared.to_le_bytes());
    let block_header: u32 = 1 | (1 << 1) | ((128 << 10) << 3); // last, RLE, 128 KiB
    frame.extend_from_slice(&block_header.to_le_bytes()[..3]);
    frame.push(0);
    let one = Rec {
        delta: 1,
        ts: 0,
        key: None,
        value: Some(vec![0; 64]),
        headers: vec![],
    };
    let mut data = encode(1, &[one]);
    data.truncate(HEADER_LEN);
    data[48..56].copy_from_slice(&declared.to_le_bytes());
    data[56..64].copy_from_slice(&(frame.len() as u64).to_le_bytes());
    data.extend_from_slice(&frame);
    data.extend_from_slice(&[0; 4]);
    fix_checksum(&mut data);
    let len = data.len();
    let (result, peak) =
        measured(|| decode_segment_shared(bytes::Bytes::from(data), SEGMENT, Vec::new()));
    let Err(err) = result else {
        panic!("a 17-byte frame cannot hold 1 GiB")
    };
    let err = err.to_string();
    assert!(err.contains(SEGMENT) && err.contains("zstd"), "{err}");
    assert!(
        peak < 1 << 20,
        "{peak} bytes held to refuse a {len}-byte segment"
    );
}

/// Each document parser refuses an input past its limit, however valid, naming file and limit.
#[test]
fn documents_over_their_size_limit_are_refused_naming_the_limit() {
    use tidemark::limits::{MAX_CONFIG_BYTES, MAX_CSV_BYTES, MAX_SNAPSHOT_BYTES, MAX_TASK_BYTES};
    let limit = |name: &str| match name {
        "task yaml" | "task json" => MAX_TASK_BYTES,
        "snapshot" | "kmap" => MAX_SNAPSHOT_BYTES,
        "reset csv" => MAX_CSV_BYTES,
        "restore config" => MAX_CONFIG_BYTES,
        _ => usize::MAX,
    };
    for (name, valid, parse) in parsers() {
        let max = limit(name);
        if max == usize::MAX {
            continue;
        }
        // Trailing blank lines are valid in every one of these formats.
        let mut data = valid.as_bytes().to_vec();
        data.resize(max + 1, b'\n');
        let err = parse(&data).expect_err(name);
        assert!(
            err.contains(FILE) && err.contains(&format!("limit of {max} bytes")),
            "{name}: {err}"
        );
        // Without the limit the padded document parses: shown at the limit (the small ones;
        // parsing 64 MiB of padding takes seconds in a debug build).
        if max <= 1 << 20 {
            data.truncate(max);
            parse(&data).unwrap_or_else(|e| panic!("{name} at its limit: {e}"));
        }
    }
}

/// A topic pattern list or a consumer-group list longer than the limit is refused.
#[test]
fn lists_over_their_limit_are_refused() {
    use tidemark::limits::MAX_LIST_ENTRIES;
    let many: Vec<String> = (0..=MAX_LIST_ENTRIES).map(|i| format!("t{i}")).collect();
    let err = tidemark::backup::select::TopicFilter::new(&many, &[])
        .map(drop)
        .expect_err("too many include patterns");
    assert!(
        err.contains("include list") && err.contains("limit"),
        "{err}"
    );
    let ok = tidemark::backup::select::TopicFilter::new(&many[1..], &[]);
    assert!(ok.is_ok());
    let err = tidemark::groups::GroupSelector::new(&many, None, false)
        .map(drop)
        .expect_err("too many groups")
        .to_string();
    assert!(err.contains("--groups") && err.contains("limit"), "{err}");
}

/// A short regex whose compiled program is huge is refused by the size limit.
#[test]
fn a_regex_over_the_compiled_size_limit_is_refused() {
    let err = tidemark::groups::GroupSelector::new(&[], Some(r"\w{100}"), false)
        .map(drop)
        .expect_err("too big")
        .to_string();
    assert!(
        err.contains("--groups-regex") && err.contains("size limit"),
        "{err}"
    );
}

/// YAML aliases that expand exponentially ("billion laughs") are refused within the memory
/// budget, naming the file. Found here: the task parser buffers the whole document (its `kind`
/// tag selects the type), aliases expanded, before the YAML parser's own repetition limit
/// stopped it; a 5 KB document held 4.6 GB for 156 s, a 500-byte one 6 MB.
#[test]
fn exponential_yaml_aliases_are_refused() {
    let bomb = |width: usize, levels: usize, at: &str| {
        let mut doc = format!("{at}a0: &a0 [{}]\n", vec!["x"; width].join(", "));
        for i in 1..levels {
            let refs = vec![format!("*a{}", i - 1); 9].join(", ");
            doc.push_str(&format!("{at}a{i}: &a{i} [{refs}]\n"));
        }
        doc
    };
    let flat = bomb(9, 10, "");
    let wide = bomb(1000, 50, "");
    // Under a field the restore configuration keeps as a YAML value.
    let config = format!("{RESTORE_CONFIG}  acks:\n{}", bomb(9, 10, "    "));
    for (name, _, parse) in parsers() {
        if !matches!(name, "task yaml" | "restore config") {
            continue;
        }
        for doc in [&flat, &wide, &config] {
            let started = std::time::Instant::now();
            let (result, peak) = measured(|| parse(doc.as_bytes()));
            let err = result.expect_err(name);
            assert!(err.contains(FILE), "{name}: {err}");
            assert!(
                peak <= budget(doc.len(), TEXT_PER_BYTE),
                "{name}: {peak} bytes"
            );
            assert!(
                started.elapsed().as_secs() < 5,
                "{name}: {:?}",
                started.elapsed()
            );
        }
    }
}

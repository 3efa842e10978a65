//! Record-level helpers shared by the backup and restore tests: topics, a producer of varied
//! records (null keys, tombstones, empty values, null header values, duplicate header keys,
//! out-of-order timestamps), a plain reader, and a backup reader.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tidemark::backup::format::{Record, TimestampType};
use tidemark::backup::manifest::Manifest;
use tidemark::backup::read::{load_manifests, read_segment};
use tidemark::storage::{Storage, StorageOptions};

/// Records per (topic, partition), in offset order.
pub type Records = BTreeMap<(String, i32), Vec<Record>>;

/// A filesystem storage location.
pub fn storage(path: &Path) -> Storage {
    Storage::open(path.to_str().expect("utf8"), &StorageOptions::default()).expect("storage")
}

pub async fn create_topic(bs: &str, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bs)
        .create()
        .expect("admin client");
    let mut t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    for r in admin
        .create_topics(&[t], &AdminOptions::new())
        .await
        .expect("create topics")
    {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }
}

/// A consumed message as a [`Record`], byte for byte.
pub fn record_of<M: Message>(m: &M) -> Record {
    let (timestamp, timestamp_type) = TimestampType::split_kafka(m.timestamp());
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default();
    Record {
        offset: m.offset(),
        timestamp,
        timestamp_type,
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        headers,
    }
}

/// Deletes `topic` and waits until the broker's metadata no longer lists it.
pub async fn delete_topic(bs: &str, topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let a: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bs)
        .create()
        .expect("admin");
    for r in a
        .delete_topics(&[topic], &AdminOptions::new())
        .await
        .expect("delete topics")
    {
        r.unwrap_or_else(|(t, e)| panic!("delete {t}: {e}"));
    }
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bs)
        .create()
        .expect("consumer");
    for _ in 0..100 {
        let md = c
            .fetch_metadata(None, Duration::from_secs(5))
            .expect("metadata");
        if !md.topics().iter().any(|t| t.name() == topic) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("topic {topic} still listed after deletion");
}

pub fn producer(bs: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bs)
        .set("linger.ms", "5")
        .set("message.max.bytes", "8000000")
        .create()
        .expect("producer")
}

/// Record `i` of a partition: null keys every 5th, tombstones every 7th, empty values every
/// 11th, headers with a null value and a duplicate key every 3rd, timestamps not in order.
pub async fn produce_varied(
    p: &FutureProducer,
    topic: &str,
    partition: i32,
    from: usize,
    n: usize,
) {
    let base = 1_700_000_000_000i64;
    for i in from..from + n {
        if i == from + n - 1 {
            // The last record alone in its batch, so the high watermark is exact.
            p.flush(Duration::from_secs(10)).expect("flush");
        }
        let key = format!("key-{partition}-{i}");
        let value: Vec<u8> = (0..(i * 37 % 2000)).map(|b| (b * 31 + i) as u8).collect();
        let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .partition(partition)
            .timestamp(base + (i as i64 * 1000) - if i % 4 == 0 { 5000 } else { 0 });
        if i % 5 != 0 {
            rec = rec.key(key.as_bytes());
        }
        if i % 7 != 0 {
            rec = rec.payload(if i % 11 == 0 { &[][..] } else { &value[..] });
        }
        if i % 3 == 0 {
            rec = rec.headers(
                OwnedHeaders::new()
                    .insert(Header {
                        key: "trace",
                        value: Some(key.as_bytes()),
                    })
                    .insert(Header {
                        key: "empty-value",
                        value: None::<&[u8]>,
                    })
                    .insert(Header {
                        key: "trace",
                        value: Some(&b"second"[..]),
                    }),
            );
        }
        p.send(rec, Duration::from_secs(10))
            .await
            .unwrap_or_else(|(e, _)| panic!("produce to {topic}:{partition}: {e}"));
    }
    p.flush(Duration::from_secs(10)).expect("flush");
}

/// Every record of `topic` as a plain read_committed consumer sees it.
pub fn read_topic(bs: &str, topic: &str, partitions: i32) -> Records {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bs)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out: Records = BTreeMap::new();
    let mut eof = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while eof.len() < partitions as usize {
        assert!(
            std::time::Instant::now() < deadline,
            "reading {topic} timed out"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                out.entry((topic.to_string(), m.partition()))
                    .or_default()
                    .push(record_of(&m));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                eof.insert(p);
            }
            Some(Err(e)) => panic!("consume {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// Every record a backup holds, read through the library (checksums verified).
pub async fn read_backup(path: &Path, id: &str) -> (Vec<Manifest>, Records) {
    read_backup_in(&storage(path), id).await
}

/// Every record a backup in storage `s` holds, read through the library (checksums verified).
pub async fn read_backup_in(s: &Storage, id: &str) -> (Vec<Manifest>, Records) {
    let manifests = load_manifests(s, id).await.expect("load manifests");
    let mut out: Records = BTreeMap::new();
    for m in &manifests {
        for (topic, td) in &m.topics {
            for (p, d) in &td.partition_data {
                let recs = out.entry((topic.clone(), *p)).or_default();
                for seg in &d.segments {
                    recs.extend(read_segment(s, seg).await.expect("read segment"));
                }
            }
        }
    }
    (manifests, out)
}

pub fn assert_same(got: &Records, want: &Records) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys()
            .filter(|k| !want[*k].is_empty())
            .collect::<Vec<_>>()
    );
    for (tp, w) in want {
        let g = got.get(tp).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(g.len(), w.len(), "{tp:?}: record count");
        for (a, b) in g.iter().zip(w) {
            assert_eq!(a, b, "{tp:?} offset {}", b.offset);
        }
    }
}

/// Rewrites `topic` in backup `id` (in the filesystem location `store`) as a backup of a
/// compacted topic would hold it: the records at offsets `o % 3 == 1` are gone (gaps, recorded
/// in the manifest), everything else byte for byte; the backup's other topics are untouched.
pub async fn compact_backup_topic(store: &Path, id: &str, topic: &str) {
    use tidemark::backup::format::{Codec, SegmentWriter};
    let s = storage(store);
    for mut m in load_manifests(&s, id).await.expect("manifests") {
        let Some(td) = m.topics.get_mut(topic) else {
            continue;
        };
        for pd in td.partition_data.values_mut() {
            pd.records = 0;
            pd.bytes = 0;
            pd.gaps = Default::default();
            let mut prev_end = pd.start_offset;
            for seg in &mut pd.segments {
                let recs = read_segment(&s, seg).await.expect("segment");
                let mut w = SegmentWriter::new(Codec::Lz4);
                for r in recs.iter().filter(|r| r.offset % 3 != 1) {
                    pd.gaps.add(prev_end, r.offset);
                    prev_end = r.offset + 1;
                    pd.records += 1;
                    pd.bytes += r.payload_bytes();
                    w.push_record(r).expect("push");
                }
                let (bytes, stats) = w.finish().expect("finish");
                s.put(&seg.key, bytes.into()).await.expect("put");
                seg.stats = stats;
            }
            pd.gaps.add(prev_end, pd.end_offset);
        }
        m.compute_totals();
        let key = tidemark::backup::manifest::manifest_key(id, m.shard_index, m.shard_count);
        let json = serde_json::to_vec(&m).expect("json");
        Manifest::from_json(&json, &key).expect("still a manifest");
        s.put(&key, json.into()).await.expect("put manifest");
    }
}

//! Reading the scratch partitions back: every record from the start of the partition until it
//! goes quiet (past the end the broker reports, and nothing more for [`QUIET`]), digested as
//! the backup's side is ([`PartitionDigest`]).

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};

use super::digest::{Digests, PartitionDigest};
use crate::backup::format::TimestampType;
use crate::error::{Error, Result};
use crate::kafka::{Isolation, KafkaConfig, Reader};

/// How long a partition must stay silent, past its reported end, before it is read to the end.
pub const QUIET: Duration = Duration::from_secs(1);
/// How long one partition may take to read back.
const READ_LIMIT: Duration = Duration::from_secs(900);
/// Partitions read back at once.
const READERS: usize = 8;

/// Reads every partition of `partitions` back (`group_id` names the assign-only readers, which
/// never join or commit), at most [`READERS`] at once.
pub async fn read_back(
    config: &KafkaConfig,
    group_id: &str,
    partitions: &[(String, i32)],
) -> Result<Digests> {
    let mut out = Digests::new();
    for chunk in partitions.chunks(READERS) {
        let mut set = tokio::task::JoinSet::new();
        for (topic, partition) in chunk.iter().cloned() {
            let (config, group) = (config.clone(), group_id.to_string());
            let span = tracing::info_span!("drill_read_back", topic = %topic, partition);
            set.spawn_blocking(move || {
                span.in_scope(|| {
                    read_partition(&config, &group, &topic, partition)
                        .map(|d| ((topic, partition), d))
                })
            });
        }
        while let Some(joined) = set.join_next().await {
            let (key, digest) = joined.map_err(|e| {
                Error::kafka_thread("reading a scratch partition back did not complete", e)
            })??;
            out.insert(key, digest);
        }
    }
    Ok(out)
}

/// Reads `topic`-`partition` from offset 0 until it goes quiet.
fn read_partition(
    config: &KafkaConfig,
    group_id: &str,
    topic: &str,
    partition: i32,
) -> Result<PartitionDigest> {
    // No end-of-partition events: the end is where the partition goes quiet past its reported
    // high watermark (librdkafka's client would also log each such event as an error).
    let consumer = config.create_consumer(
        &Reader {
            group_id,
            isolation: Isolation::ReadCommitted,
            offset_reset: "earliest",
            partition_eof: false,
        },
        &[("fetch.wait.max.ms", "50".into())],
        format_args!("cannot create a reader for {topic}-{partition}"),
    )?;
    let (_, high) = consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .map_err(|e| Error::kafka(format!("cannot read the end of {topic}-{partition}"), e))?;
    crate::kafka::assign_from(&consumer, topic, partition, 0)?;
    let mut digest = PartitionDigest::default();
    let started = Instant::now();
    let mut last_record = Instant::now();
    let mut next = 0i64;
    loop {
        if started.elapsed() > READ_LIMIT {
            return Err(Error::Kafka(format!(
                "reading {topic}-{partition} back timed out at offset {next} after {} s",
                READ_LIMIT.as_secs()
            )));
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                next = m.offset() + 1;
                last_record = Instant::now();
                let (timestamp, _) = TimestampType::split_kafka(m.timestamp());
                let headers: Vec<(&str, Option<&[u8]>)> = m
                    .headers()
                    .map(|h| h.iter().map(|h| (h.key, h.value)).collect())
                    .unwrap_or_default();
                digest.add(m.key(), m.payload(), headers, timestamp);
            }
            None | Some(Err(KafkaError::PartitionEOF(_))) => {
                if next >= high && last_record.elapsed() >= QUIET {
                    return Ok(digest);
                }
            }
            Some(Err(e)) => {
                return Err(Error::kafka(
                    format!("reading {topic}-{partition} back failed at offset {next}"),
                    e,
                ))
            }
        }
    }
}

//! Reading back what an interrupted run left in a target partition, and matching it against
//! the records the restore meant to write there; and reading back the end of partitions whose
//! reported end trails the restore's last record.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::backup::format::{RecordRef, TimestampType};
use crate::error::{Error, Result};
use crate::kafka::{Isolation, KafkaConfig, Reader};
use crate::restore::plan::Unit;

/// How long a partition's end offset must stay still before the tail of an interrupted run is
/// read (requests of a killed process may still be landing).
const SETTLE: Duration = Duration::from_millis(500);
const SETTLE_MAX: Duration = Duration::from_secs(30);

/// A record read back from the target.
pub(super) struct Found {
    pub(super) offset: i64,
    timestamp: i64,
    log_append_time: bool,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

/// Reads what an interrupted run left in a target partition, from a given offset to the end.
pub(super) struct TailReader {
    consumer: BaseConsumer,
    end: i64,
    next_offset: i64,
}

impl TailReader {
    pub(super) fn open(
        config: &KafkaConfig,
        topic: &str,
        partition: i32,
        from: i64,
    ) -> Result<TailReader> {
        // The restore's own writes, which are not transactional: everything up to the end.
        let consumer = config.partition_reader(
            "tidemark-restore-resume",
            Isolation::ReadUncommitted,
            "error",
            topic,
            partition,
        )?;
        // Requests of a killed run may still be landing: wait until the end stops moving.
        let deadline = Instant::now() + SETTLE_MAX;
        let mut end = watermark(&consumer, topic, partition)?;
        loop {
            std::thread::sleep(SETTLE);
            let again = watermark(&consumer, topic, partition)?;
            if again == end || Instant::now() > deadline {
                end = again;
                break;
            }
            end = again;
        }
        crate::kafka::assign_from(&consumer, topic, partition, from)?;
        tracing::info!(
            topic,
            partition,
            from,
            end,
            "reading what the interrupted run wrote"
        );
        Ok(TailReader {
            consumer,
            end,
            next_offset: from,
        })
    }

    /// The next record, or `None` at the end.
    pub(super) fn next(&mut self) -> Result<Option<Found>> {
        if self.next_offset >= self.end {
            // The watermark may trail the last batch on some brokers; a final poll decides.
            return self.poll_once(Duration::from_millis(200));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(f) = self.poll_once(Duration::from_millis(500))? {
                return Ok(Some(f));
            }
            if self.next_offset >= self.end {
                return Ok(None);
            }
            if Instant::now() > deadline {
                return Err(Error::Kafka(format!(
                    "reading the target back timed out at offset {}",
                    self.next_offset
                )));
            }
        }
    }

    fn poll_once(&mut self, wait: Duration) -> Result<Option<Found>> {
        match self.consumer.poll(wait) {
            None => Ok(None),
            Some(Err(KafkaError::PartitionEOF(_))) => {
                self.end = self.end.min(self.next_offset);
                Ok(None)
            }
            Some(Err(e)) => Err(Error::kafka("reading the target back failed", e)),
            Some(Ok(m)) => {
                self.next_offset = m.offset() + 1;
                let (ts, kind) = TimestampType::split_kafka(m.timestamp());
                Ok(Some(Found {
                    offset: m.offset(),
                    timestamp: ts,
                    log_append_time: kind == TimestampType::LogAppendTime,
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                }))
            }
        }
    }
}

/// How long the partitions read back by [`read_to_last`] may all stay quiet before their ends
/// are taken as reached (a broker whose reported end trails its last batch signals no end of
/// partition there).
const QUIET: Duration = Duration::from_secs(1);

/// Reads back partitions of `topic` whose reported end trails the restore's last record: each
/// `(partition, from, last)` from offset `from` until its record at offset `last` (or a later
/// one) is seen, its end is reached, or nothing arrives for [`QUIET`]. One reader serves them
/// all, and no end offset is waited on to settle: every record of the restore is acknowledged,
/// none can still be landing. Returns, per partition, the offset of the last record seen.
pub(super) fn read_to_last(
    config: &KafkaConfig,
    topic: &str,
    parts: &[(i32, i64, i64)],
) -> Result<Vec<Option<i64>>> {
    let reader = Reader {
        group_id: "tidemark-restore-verify",
        // The restore's own writes, which are not transactional: everything up to the end.
        isolation: Isolation::ReadUncommitted,
        offset_reset: "error",
        partition_eof: true,
    };
    let consumer = config.create_consumer(
        &reader,
        &[("fetch.wait.max.ms", "50".into())],
        format_args!("cannot create a reader for {topic}"),
    )?;
    let mut tpl = TopicPartitionList::new();
    for (p, from, _) in parts {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*from))
            .map_err(|e| Error::kafka("", e))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| Error::kafka(format!("cannot read {topic}"), e))?;
    let slot = |p: i32| parts.iter().position(|(q, _, _)| *q == p);
    let mut seen: Vec<Option<i64>> = vec![None; parts.len()];
    let mut open = vec![true; parts.len()];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut news = Instant::now();
    while open.contains(&true) && news.elapsed() < QUIET {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                if let Some(i) = slot(m.partition()) {
                    seen[i] = Some(seen[i].map_or(m.offset(), |s| s.max(m.offset())));
                    open[i] &= m.offset() < parts[i].2;
                }
                news = Instant::now();
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                if let Some(i) = slot(p) {
                    open[i] = false;
                }
            }
            Some(Err(e)) => return Err(Error::kafka(format!("reading {topic} back failed"), e)),
            None => {}
        }
        if Instant::now() > deadline {
            return Err(Error::Kafka(format!("reading {topic} back timed out")));
        }
    }
    Ok(seen)
}

fn watermark(c: &BaseConsumer, topic: &str, partition: i32) -> Result<i64> {
    c.fetch_watermarks(topic, partition, Duration::from_secs(10))
        .map(|(_, high)| high)
        .map_err(|e| {
            Error::kafka(
                format!("cannot read the end offset of {topic}-{partition}"),
                e,
            )
        })
}

/// A record found in the target on resume must be the one the sequence expects.
pub(super) fn check_same(unit: &Unit, expected: &RecordRef<'_>, found: &Found) -> Result<()> {
    let ts_ok = expected.timestamp_type == TimestampType::LogAppendTime
        || expected.timestamp < 0
        || found.timestamp == expected.timestamp
        || found.log_append_time;
    if found.key.as_deref() == expected.key && found.value.as_deref() == expected.value && ts_ok {
        return Ok(());
    }
    Err(Error::VerificationFailed(format!(
        "{}-{} offset {} does not hold the record the restore wrote there (source {} offset {}): something else wrote to this partition while the restore was interrupted; restore to an empty partition (existing_data: purge) or another topic",
        unit.target_topic,
        unit.target_partition,
        found.offset,
        unit.key(),
        expected.offset
    )))
}

//! Offsets for a point in time (`--to-datetime`, `--by-duration`), looked up as Kafka does and
//! then checked against the records themselves.
//!
//! Kafka answers "the first offset whose timestamp is at or after T" from its time index. A
//! correct answer `o` has a record at `o` stamped at or after T and a predecessor stamped before
//! T; we read both. When a broker's answer fails that check, the offset is found by a binary
//! search over fetched record timestamps instead (exact when timestamps grow with offsets) and a
//! warning says so. Reading records uses a plain assign-only consumer: no group is joined and
//! nothing is committed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::error::{Error, Result};
use crate::kafka::{GroupAdmin, KafkaConfig, OffsetSpec, TopicPartition};

/// Partitions looked up at once (each with its own short-lived reader).
const LOOKUP_CONCURRENCY: usize = 8;

/// The offset chosen for one partition, and why it may deserve a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeOffset {
    pub offset: i64,
    /// Kafka's "falling back to latest" notice, or a note that the broker's answer was wrong.
    pub warning: Option<String>,
}

/// First offset and log end of a partition: `[start, end)` holds its records.
pub type LogRange = (i64, i64);

/// Kafka's notice for a partition without a record at or after the time, word for word.
pub fn fallback_to_latest_warning(topic: &str, partition: i32) -> String {
    format!(
        "Partition {partition} from topic {topic} is empty. Falling back to latest known offset."
    )
}

/// For each partition, the first offset whose record timestamp is at or after `timestamp_ms`,
/// or the log end offset when there is none (with Kafka's warning).
///
/// `ranges` must hold the `[log start, log end)` of every partition.
pub async fn offsets_for_time(
    admin: &GroupAdmin,
    partitions: &[TopicPartition],
    timestamp_ms: i64,
    ranges: &HashMap<TopicPartition, LogRange>,
) -> Result<HashMap<TopicPartition, TimeOffset>> {
    let answers = admin
        .list_offsets_isolated(partitions, OffsetSpec::Timestamp(timestamp_ms), false)
        .await?;
    let mut work = Vec::with_capacity(partitions.len());
    for (tp, answer) in partitions.iter().zip(answers) {
        let answer = answer?;
        let range = *ranges.get(tp).ok_or_else(|| {
            Error::Kafka(format!(
                "no log offsets known for {}-{}; cannot look up a time there",
                tp.0, tp.1
            ))
        })?;
        work.push((tp.clone(), answer.offset, range));
    }
    let config = admin.config().clone();
    stream::iter(work)
        .map(|(tp, broker_answer, range)| {
            let config = config.clone();
            async move {
                let found = tokio::task::spawn_blocking(move || {
                    let reader = RecordReader::new(&config, &tp.0, tp.1)?;
                    let found = locate(&reader, &tp, broker_answer, range, timestamp_ms)?;
                    Ok::<_, Error>((tp, found))
                })
                .await
                .map_err(|e| Error::kafka_thread("timestamp lookup did not complete", e))??;
                Ok::<_, Error>(found)
            }
        })
        .buffer_unordered(LOOKUP_CONCURRENCY)
        .try_collect()
        .await
}

/// Something that can tell the first record at or after an offset: `(offset, timestamp)`.
trait Records {
    fn first_at_or_after(&self, offset: i64) -> Result<Option<(i64, i64)>>;
}

/// Checks the broker's answer and falls back to a binary search when it is wrong.
fn locate(
    records: &impl Records,
    tp: &TopicPartition,
    broker_answer: i64,
    (start, end): LogRange,
    ts: i64,
) -> Result<TimeOffset> {
    let latest = |warning: Option<String>| TimeOffset {
        offset: end,
        warning: Some(warning.unwrap_or_else(|| fallback_to_latest_warning(&tp.0, tp.1))),
    };
    if end <= start {
        return Ok(latest(None));
    }
    let wrong = match check_answer(records, broker_answer, (start, end), ts)? {
        None if broker_answer < 0 => return Ok(latest(None)),
        None => {
            return Ok(TimeOffset {
                offset: broker_answer,
                warning: None,
            })
        }
        Some(reason) => reason,
    };
    let found = binary_search(records, (start, end), ts)?;
    let note = format!(
        "the broker answered offset {broker_answer} for {} on {}-{}, but {wrong}; offset {} was found by a binary search over record timestamps instead (exact when timestamps grow with offsets)",
        iso(ts),
        tp.0,
        tp.1,
        if found == end {
            format!("{found} (the log end: no record at or after that time)")
        } else {
            found.to_string()
        },
    );
    let warning = if found == end {
        // Kafka's own notice first, so scripts watching for it see it whoever found the end.
        format!("{} ({note})", fallback_to_latest_warning(&tp.0, tp.1))
    } else {
        note
    };
    Ok(TimeOffset {
        offset: found,
        warning: Some(warning),
    })
}

/// `None` when the broker's answer holds up; otherwise what is wrong with it.
fn check_answer(
    records: &impl Records,
    answer: i64,
    (start, end): LogRange,
    ts: i64,
) -> Result<Option<String>> {
    if answer < 0 {
        // "No record at or after ts": the last record must be older.
        return Ok(match records.first_at_or_after(end - 1)? {
            Some((o, t)) if o == end - 1 && t >= ts => Some(format!(
                "the record at offset {o} has timestamp {} (not before {})",
                iso(t),
                iso(ts)
            )),
            _ => None,
        });
    }
    if answer < start || answer >= end {
        return Ok(Some(format!("that is outside the log [{start}, {end})")));
    }
    match records.first_at_or_after(answer)? {
        Some((o, t)) if o == answer && t >= ts => {}
        Some((o, t)) if o == answer => {
            return Ok(Some(format!(
                "the record there has timestamp {}, before {}",
                iso(t),
                iso(ts)
            )))
        }
        _ => return Ok(Some(format!("there is no record at offset {answer}"))),
    }
    if answer == start {
        return Ok(None);
    }
    Ok(match records.first_at_or_after(answer - 1)? {
        Some((o, t)) if o == answer - 1 && t >= ts => Some(format!(
            "the record before it (offset {o}) has timestamp {}, already at or after {}",
            iso(t),
            iso(ts)
        )),
        // A record older than ts, or a gap before the answer (compaction, transaction markers).
        _ => None,
    })
}

/// The smallest offset `o` in `[start, end]` whose first record at or after it is stamped at or
/// after `ts` (or absent): that record's offset, or `end`.
fn binary_search(records: &impl Records, (start, end): LogRange, ts: i64) -> Result<i64> {
    let reached = |o: i64| -> Result<Option<Option<i64>>> {
        Ok(match records.first_at_or_after(o)? {
            Some((off, t)) if off < end && t >= ts => Some(Some(off)),
            Some((off, _)) if off < end => None,
            _ => Some(None),
        })
    };
    let (mut lo, mut hi) = (start, end);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if reached(mid)?.is_some() {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    if lo >= end {
        return Ok(end);
    }
    Ok(reached(lo)?.flatten().unwrap_or(end))
}

fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// An assign-only consumer of one partition that reads single records by offset.
struct RecordReader {
    consumer: BaseConsumer,
    topic: String,
    partition: i32,
    timeout: Duration,
}

impl RecordReader {
    fn new(config: &KafkaConfig, topic: &str, partition: i32) -> Result<Self> {
        let reader = crate::kafka::Reader {
            group_id: "tidemark-offset-lookup",
            isolation: crate::kafka::Isolation::ReadUncommitted,
            offset_reset: "earliest",
            partition_eof: true,
        };
        let tuning = [
            ("fetch.wait.max.ms", "10".to_string()),
            ("max.partition.fetch.bytes", "65536".to_string()),
            ("queued.max.messages.kbytes", "1024".to_string()),
        ];
        let consumer = config.create_consumer(
            &reader,
            &tuning,
            format_args!("failed to create a record reader"),
        )?;
        Ok(RecordReader {
            consumer,
            topic: topic.to_string(),
            partition,
            timeout: config.request_timeout,
        })
    }
}

impl Records for RecordReader {
    fn first_at_or_after(&self, offset: i64) -> Result<Option<(i64, i64)>> {
        let what = || format!("{}-{} at offset {offset}", self.topic, self.partition);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, self.partition, Offset::Offset(offset))
            .map_err(|e| Error::kafka(format!("cannot read {}", what()), e))?;
        self.consumer
            .assign(&tpl)
            .map_err(|e| Error::kafka(format!("cannot read {}", what()), e))?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Kafka(format!(
                    "no record or end of partition seen reading {} within {} s",
                    what(),
                    self.timeout.as_secs()
                )));
            }
            match self.consumer.poll(left.min(Duration::from_millis(200))) {
                None => continue,
                Some(Ok(m)) => {
                    if m.topic() != self.topic
                        || m.partition() != self.partition
                        || m.offset() < offset
                    {
                        continue;
                    }
                    let ts = m.timestamp().to_millis().unwrap_or(-1);
                    return Ok(Some((m.offset(), ts)));
                }
                Some(Err(KafkaError::PartitionEOF(p))) if p == self.partition => return Ok(None),
                Some(Err(KafkaError::PartitionEOF(_))) => continue,
                Some(Err(e)) => {
                    return Err(Error::kafka(format!("failed to read {}", what()), e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A log as (offset, timestamp) pairs, with a counter of reads.
    struct Log {
        records: Vec<(i64, i64)>,
        reads: Cell<usize>,
    }

    impl Log {
        fn new(records: Vec<(i64, i64)>) -> Self {
            Log {
                records,
                reads: Cell::new(0),
            }
        }
        fn range(&self) -> LogRange {
            (
                self.records.first().map_or(0, |r| r.0),
                self.records.last().map_or(0, |r| r.0 + 1),
            )
        }
    }

    impl Records for Log {
        fn first_at_or_after(&self, offset: i64) -> Result<Option<(i64, i64)>> {
            self.reads.set(self.reads.get() + 1);
            Ok(self.records.iter().copied().find(|(o, _)| *o >= offset))
        }
    }

    fn tp() -> TopicPartition {
        ("orders".to_string(), 3)
    }

    /// Offsets 0..n stamped 1000, 2000, ...
    fn regular(n: i64) -> Log {
        Log::new((0..n).map(|o| (o, (o + 1) * 1000)).collect())
    }

    #[test]
    fn a_correct_broker_answer_is_kept_after_two_reads() {
        let log = regular(100);
        let got = locate(&log, &tp(), 41, log.range(), 42_000).expect("lookup");
        assert_eq!(
            got,
            TimeOffset {
                offset: 41,
                warning: None
            }
        );
        assert_eq!(log.reads.get(), 2, "the record and its predecessor");
    }

    #[test]
    fn a_wrong_answer_falls_back_to_binary_search_with_a_warning() {
        // A broker answering 0 whatever the time.
        let log = regular(1000);
        let got = locate(&log, &tp(), 0, log.range(), 500_500).expect("lookup");
        assert_eq!(got.offset, 500, "first record stamped at or after 500.5 s");
        let w = got.warning.expect("warned");
        assert!(w.contains("broker answered offset 0"), "{w}");
        assert!(w.contains("orders-3"), "{w}");
        assert!(
            log.reads.get() < 20,
            "binary search, {} reads",
            log.reads.get()
        );
    }

    #[test]
    fn binary_search_is_exact_at_every_boundary() {
        let log = regular(37);
        for ts in [
            0, 999, 1000, 1001, 17_000, 17_001, 36_999, 37_000, 37_001, 99_000,
        ] {
            let want = log
                .records
                .iter()
                .find(|(_, t)| *t >= ts)
                .map_or(37, |(o, _)| *o);
            assert_eq!(
                binary_search(&log, log.range(), ts).expect("search"),
                want,
                "ts {ts}"
            );
        }
    }

    #[test]
    fn gaps_from_compaction_are_handled() {
        // Offsets 10, 13, 14, 20 only; log ends at 25 (a marker at 24 for example).
        let log = Log::new(vec![(10, 1000), (13, 2000), (14, 3000), (20, 4000)]);
        let range = (10, 25);
        assert_eq!(binary_search(&log, range, 2500).expect("search"), 14);
        assert_eq!(binary_search(&log, range, 1500).expect("search"), 13);
        assert_eq!(binary_search(&log, range, 5000).expect("search"), 25);
        // A correct answer right after a gap is accepted (its predecessor cannot be read).
        let got = locate(&log, &tp(), 13, range, 1500).expect("lookup");
        assert_eq!(
            got,
            TimeOffset {
                offset: 13,
                warning: None
            }
        );
    }

    #[test]
    fn no_record_after_the_time_means_log_end_with_kafkas_warning() {
        let log = regular(10);
        let got = locate(&log, &tp(), -1, log.range(), 50_000).expect("lookup");
        assert_eq!(got.offset, 10);
        assert_eq!(
            got.warning.as_deref(),
            Some("Partition 3 from topic orders is empty. Falling back to latest known offset.")
        );
        // An empty partition too, without reading anything.
        let empty = Log::new(vec![]);
        let got = locate(&empty, &tp(), -1, (7, 7), 1).expect("lookup");
        assert_eq!(got.offset, 7);
        assert_eq!(empty.reads.get(), 0);
    }

    #[test]
    fn a_wrong_no_record_answer_is_caught() {
        let log = regular(10);
        let got = locate(&log, &tp(), -1, log.range(), 5_000).expect("lookup");
        assert_eq!(got.offset, 4);
        assert!(got.warning.expect("warned").contains("binary search"));
    }

    #[test]
    fn an_answer_whose_predecessor_is_newer_is_rejected() {
        let log = regular(10);
        let got = locate(&log, &tp(), 8, log.range(), 5_000).expect("lookup");
        assert_eq!(got.offset, 4);
        let w = got.warning.expect("warned");
        assert!(w.contains("record before it (offset 7)"), "{w}");
    }

    #[test]
    fn a_time_before_every_record_is_the_log_start() {
        let log = Log::new((5..15).map(|o| (o, o * 10)).collect());
        let got = locate(&log, &tp(), 5, log.range(), 0).expect("lookup");
        assert_eq!(
            got,
            TimeOffset {
                offset: 5,
                warning: None
            }
        );
        let got = locate(&log, &tp(), 0, log.range(), 0).expect("lookup");
        assert_eq!(got.offset, 5, "an answer below the log start is wrong");
    }
}

//! The reader: one assign-only consumer on its own thread reads the shard's partitions (a few
//! at a time) and appends each record, byte for byte, to its partition's open segment; full
//! segments, and a final progress note per partition, go to the writer over a bounded channel.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message, Timestamp};
use rdkafka::{Offset, TopicPartitionList};

use super::commit::{Progress, Sealed};
use crate::backup::format::{Codec, SegmentWriter, TimestampType};
use crate::backup::manifest::{GapCause, Gaps};
use crate::error::{Error, Result};
use crate::failpoints::crash_at;
use crate::kafka::{Isolation, KafkaConfig, Reader};
use crate::progress::LiveProgress;
use crate::throttle::Throttle;

/// Budget for librdkafka's pre-fetch queue (one queue for all partitions read at once).
const PREFETCH_BUDGET_KB: usize = 64 * 1024;
/// Budget for the open (not yet sealed) segments of the partitions read at once.
const OPEN_SEGMENT_BUDGET: u64 = 64 * 1024 * 1024;
/// Room reserved in a new segment beyond its size limit, for the record that crosses it.
const SEGMENT_SLACK: u64 = 256 * 1024;
/// How often progress is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// In continuous mode, the checkpoint is rewritten at least this often, even when idle.
const CHECKPOINT_REFRESH: Duration = Duration::from_secs(600);
/// In continuous mode, an open segment is stored after this long even if not full.
const CONTINUOUS_FLUSH: Duration = Duration::from_secs(30);
/// How often partitions that passed their end without a record, and (continuous mode) old
/// open segments, are looked for.
const IDLE_CHECK: Duration = Duration::from_millis(500);

/// The backup's reader: committed records only, no group membership, nothing committed.
const READER: Reader<'static> = Reader {
    group_id: "tidemark-backup",
    isolation: Isolation::ReadCommitted,
    offset_reset: "earliest",
    partition_eof: false,
};

/// The reader's librdkafka settings (the user's properties may override them).
fn reader_tuning() -> [(&'static str, String); 4] {
    [
        // librdkafka applies this to the consumer's one queue (not per partition); above it,
        // fetching pauses for fetch.queue.backoff.ms (1 s by default), which stalls a reader
        // that is briefly behind, so the pause is kept short.
        ("queued.max.messages.kbytes", PREFETCH_BUDGET_KB.to_string()),
        ("fetch.queue.backoff.ms", "10".to_string()),
        ("fetch.max.bytes", "16777216".to_string()),
        ("fetch.wait.max.ms", "100".to_string()),
    ]
}

/// One partition to read.
#[derive(Debug, Clone)]
pub(super) struct PartSpec {
    pub(super) topic: String,
    pub(super) partition: i32,
    /// Where reading starts (resume point).
    pub(super) next: i64,
    /// Exclusive end (`i64::MAX` in continuous mode).
    pub(super) target: i64,
    /// State stored before this run (from the checkpoint).
    pub(super) records: u64,
    pub(super) bytes: u64,
    pub(super) gaps: Gaps,
    /// The topic is compacted (its gaps are expected).
    pub(super) compacted: bool,
}

#[derive(Debug, Clone)]
pub(super) struct LoopOptions {
    pub(super) codec: Codec,
    pub(super) segment_max_bytes: u64,
    pub(super) segment_max_interval_ms: Option<u64>,
    pub(super) max_active: usize,
    pub(super) rate_records: Option<u64>,
    pub(super) rate_bytes: Option<u64>,
    pub(super) continuous: bool,
    /// With the stop flag: the user ends a continuous backup (else a stop interrupts it).
    pub(super) finish: Arc<AtomicBool>,
    pub(super) progress: Arc<LiveProgress>,
    /// Where segments take their memory from (and the writer side gives it back).
    pub(super) buffers: super::buffers::SegmentBuffers,
}

/// Records and bytes the reader read.
#[derive(Debug, Default)]
pub(super) struct ReadStats {
    pub(super) records: u64,
    pub(super) bytes: u64,
}

struct PartState {
    spec: PartSpec,
    writer: Option<SegmentWriter>,
    opened: Instant,
    seq: u64,
    assigned: bool,
    done: bool,
}

/// The reader: runs on its own thread until every partition reached its end (or `stop`).
pub(super) fn consume(
    config: &KafkaConfig,
    specs: Vec<PartSpec>,
    opts: &LoopOptions,
    tx: &tokio::sync::mpsc::Sender<Sealed>,
    stop: &AtomicBool,
) -> Result<ReadStats> {
    let consumer = config.create_consumer(
        &READER,
        &reader_tuning(),
        format_args!("failed to create the backup reader"),
    )?;
    let mut r = ShardReader::new(specs, opts, tx, stop);
    loop {
        r.assign_more(&consumer)?;
        if r.finished == r.states.len() {
            break;
        }
        if stop.load(Ordering::SeqCst) {
            r.stopped(&consumer)?;
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => r.record(&consumer, &m)?,
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => {
                let fatal = matches!(e.rdkafka_error_code(), Some(c) if is_fatal(c));
                if fatal {
                    return Err(Error::kafka("the backup reader failed", e));
                }
                tracing::warn!(error = %e, "backup reader: retrying after a Kafka error");
            }
            None => {}
        }
        if r.last_idle_check.elapsed() >= IDLE_CHECK {
            r.last_idle_check = Instant::now();
            r.idle_check(&consumer)?;
        }
        r.log_progress();
    }
    tracing::debug!(
        records = r.stats.records,
        bytes = r.stats.bytes,
        "reader finished"
    );
    Ok(r.stats)
}

/// The reader's state across partitions.
struct ShardReader<'a> {
    opts: &'a LoopOptions,
    tx: &'a tokio::sync::mpsc::Sender<Sealed>,
    states: Vec<PartState>,
    /// Topic and partition to index in `states`.
    index: HashMap<String, HashMap<i32, usize>>,
    /// Partitions not yet assigned, in order.
    queue: VecDeque<usize>,
    active: usize,
    finished: usize,
    /// Size at which a segment is sealed.
    segment_cap: u64,
    stats: ReadStats,
    throttle: Throttle,
    stop: &'a AtomicBool,
    last_progress: Instant,
    last_idle_check: Instant,
    last_refresh: Instant,
}

impl<'a> ShardReader<'a> {
    fn new(
        specs: Vec<PartSpec>,
        opts: &'a LoopOptions,
        tx: &'a tokio::sync::mpsc::Sender<Sealed>,
        stop: &'a AtomicBool,
    ) -> Self {
        let reading_at_once = opts.max_active.min(specs.len().max(1));
        // Open segments share a budget too, so memory stays bounded however many partitions
        // are read at once: segments close earlier (never below 1 MiB) when many are open.
        let segment_cap = (OPEN_SEGMENT_BUDGET / reading_at_once as u64)
            .max(1024 * 1024)
            .min(opts.segment_max_bytes);
        let mut index: HashMap<String, HashMap<i32, usize>> = HashMap::new();
        let states: Vec<PartState> = specs
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                index
                    .entry(spec.topic.clone())
                    .or_default()
                    .insert(spec.partition, i);
                PartState {
                    spec,
                    writer: None,
                    opened: Instant::now(),
                    seq: 0,
                    assigned: false,
                    done: false,
                }
            })
            .collect();
        ShardReader {
            opts,
            tx,
            queue: (0..states.len()).collect(),
            states,
            index,
            active: 0,
            finished: 0,
            segment_cap,
            stats: ReadStats::default(),
            throttle: Throttle::new(opts.rate_records, opts.rate_bytes),
            stop,
            last_progress: Instant::now(),
            last_idle_check: Instant::now(),
            last_refresh: Instant::now(),
        }
    }

    fn send(&self, s: Sealed) -> Result<()> {
        self.tx
            .blocking_send(s)
            .map_err(|_| Error::Kafka("the backup writer stopped; the reader ends too".into()))
    }

    /// Hands partition `i`'s open segment (or, without one, a progress note) to the writer.
    fn send_segment(&mut self, i: usize, writer: Option<SegmentWriter>) -> Result<()> {
        let st = &mut self.states[i];
        let sealed = Sealed {
            part: i,
            seq: st.seq,
            writer,
            progress: progress(&st.spec, None),
        };
        st.seq += 1;
        self.send(sealed)
    }

    /// Partitions with nothing to read finish at once; others are assigned up to the limit.
    fn assign_more(&mut self, consumer: &BaseConsumer) -> Result<()> {
        while self.active < self.opts.max_active {
            let Some(i) = self.queue.pop_front() else {
                break;
            };
            let st = &mut self.states[i];
            if st.spec.next >= st.spec.target {
                let target = st.spec.target;
                self.finish_part(consumer, i, target)?;
                self.finished += 1;
                continue;
            }
            let cannot_read = |e| {
                Error::kafka(
                    format!("cannot read {}-{}", st.spec.topic, st.spec.partition),
                    e,
                )
            };
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(
                &st.spec.topic,
                st.spec.partition,
                Offset::Offset(st.spec.next),
            )
            .map_err(cannot_read)?;
            consumer.incremental_assign(&tpl).map_err(cannot_read)?;
            st.assigned = true;
            self.active += 1;
        }
        Ok(())
    }

    /// Finishes partition `i` at `end` (`i64::MAX`: where it is): seals its open segment,
    /// records the trailing gap, unassigns it, and sends a final progress note.
    fn finish_part(&mut self, consumer: &BaseConsumer, i: usize, end: i64) -> Result<()> {
        let live = &self.opts.progress;
        let st = &mut self.states[i];
        let segment = st.writer.take().map(|w| {
            let s = Sealed {
                part: i,
                seq: st.seq,
                writer: Some(w),
                progress: progress(&st.spec, None),
            };
            st.seq += 1;
            s
        });
        live.partitions_done.fetch_add(1, Ordering::Relaxed);
        if end != i64::MAX {
            let from = st.spec.next;
            if end > from {
                live.offsets_done
                    .fetch_add((end - from) as u64, Ordering::Relaxed);
            }
            ended_at(&mut st.spec, end);
        }
        let end = if end == i64::MAX { st.spec.next } else { end };
        let note = Sealed {
            part: i,
            seq: st.seq,
            writer: None,
            progress: progress(&st.spec, Some(end)),
        };
        st.seq += 1;
        st.done = true;
        if st.assigned {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&st.spec.topic, st.spec.partition);
            consumer.incremental_unassign(&tpl).map_err(|e| {
                Error::kafka(
                    format!(
                        "cannot stop reading {}-{}",
                        st.spec.topic, st.spec.partition
                    ),
                    e,
                )
            })?;
            st.assigned = false;
        }
        if let Some(s) = segment {
            self.send(s)?;
        }
        self.send(note)
    }

    /// Partition `i`, being read, reached its target: finished, and its slot freed.
    fn reached_target(&mut self, consumer: &BaseConsumer, i: usize) -> Result<()> {
        let target = self.states[i].spec.target;
        self.finish_part(consumer, i, target)?;
        self.active -= 1;
        self.finished += 1;
        Ok(())
    }

    /// A stop: the user ends a continuous backup (every partition ends where it is), or the
    /// run is interrupted (what was read is stored and checkpointed, to be resumed).
    fn stopped(&mut self, consumer: &BaseConsumer) -> Result<()> {
        if self.opts.continuous && self.opts.finish.load(Ordering::SeqCst) {
            for i in 0..self.states.len() {
                if !self.states[i].done {
                    self.finish_part(consumer, i, i64::MAX)?;
                }
            }
        } else {
            for i in 0..self.states.len() {
                if let Some(w) = self.states[i].writer.take() {
                    self.send_segment(i, Some(w))?;
                }
            }
        }
        Ok(())
    }

    /// One record read: appended to its partition's open segment (opened if needed), which is
    /// sealed once full; the partition finishes at its target.
    fn record(&mut self, consumer: &BaseConsumer, m: &BorrowedMessage<'_>) -> Result<()> {
        let Some(&i) = self
            .index
            .get(m.topic())
            .and_then(|t| t.get(&m.partition()))
        else {
            return Ok(());
        };
        let st = &mut self.states[i];
        let off = m.offset();
        if st.done || off < st.spec.next {
            return Ok(());
        }
        if off >= st.spec.target {
            return self.reached_target(consumer, i);
        }
        let (ts, ts_type) = match m.timestamp() {
            Timestamp::CreateTime(t) => (t, TimestampType::CreateTime),
            Timestamp::LogAppendTime(t) => (t, TimestampType::LogAppendTime),
            Timestamp::NotAvailable => (-1, TimestampType::NotAvailable),
        };
        let headers: Vec<(&str, Option<&[u8]>)> = match m.headers() {
            None => Vec::new(),
            Some(h) => h.iter().map(|h| (h.key, h.value)).collect(),
        };
        let size = m.key().map_or(0, <[u8]>::len)
            + m.payload().map_or(0, <[u8]>::len)
            + headers
                .iter()
                .map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len))
                .sum::<usize>();
        if st.writer.is_none() {
            // Room for a full segment and its last record: never moved while filled.
            let room = self.segment_cap.saturating_add(SEGMENT_SLACK) as usize;
            st.writer = Some(SegmentWriter::with_buffer(
                self.opts.codec,
                self.opts.buffers.take(),
                room,
            ));
            st.opened = Instant::now();
        }
        let writer = st
            .writer
            .as_mut()
            .ok_or_else(|| Error::Kafka("no open segment".into()))?;
        writer
            .push(off, ts, ts_type, m.key(), m.payload(), &headers)
            .map_err(|e| {
                Error::kafka_request(
                    format!(
                        "cannot store {}-{} offset {off}",
                        st.spec.topic, st.spec.partition
                    ),
                    e,
                )
            })?;
        crash_at("record");
        let live = &self.opts.progress;
        live.records.fetch_add(1, Ordering::Relaxed);
        live.bytes.fetch_add(size as u64, Ordering::Relaxed);
        live.offsets_done
            .fetch_add((off + 1 - st.spec.next) as u64, Ordering::Relaxed);
        passed(&mut st.spec, off, size as u64);
        self.stats.records += 1;
        self.stats.bytes += size as u64;
        let span_full = match (
            self.opts.segment_max_interval_ms,
            writer.min_timestamp(),
            writer.max_timestamp(),
        ) {
            (Some(limit), Some(lo), Some(hi)) => hi.saturating_sub(lo) >= limit as i64,
            _ => false,
        };
        if writer.uncompressed_bytes() >= self.segment_cap || span_full {
            let w = st.writer.take();
            self.send_segment(i, w)?;
        }
        if self.states[i].spec.next >= self.states[i].spec.target {
            self.reached_target(consumer, i)?;
        }
        self.throttle
            .wait_for(self.stats.records, self.stats.bytes, self.stop);
        Ok(())
    }

    /// Idle or not, now and then: partitions whose position passed their end (the last
    /// offsets were transaction markers or aborted records), and in continuous mode, old
    /// open segments.
    fn idle_check(&mut self, consumer: &BaseConsumer) -> Result<()> {
        if let Ok(positions) = consumer.position() {
            for e in positions.elements() {
                let Some(&i) = self
                    .index
                    .get(e.topic())
                    .and_then(|t| t.get(&e.partition()))
                else {
                    continue;
                };
                let st = &self.states[i];
                if let Offset::Offset(pos) = e.offset() {
                    if !st.done && st.assigned && pos >= st.spec.target {
                        self.reached_target(consumer, i)?;
                    }
                }
            }
        }
        if self.opts.continuous {
            self.refresh_and_flush()?;
        }
        Ok(())
    }

    /// Continuous mode: rewrites the checkpoint now and then even when idle, and stores open
    /// segments that have been open too long.
    fn refresh_and_flush(&mut self) -> Result<()> {
        if self.last_refresh.elapsed() >= CHECKPOINT_REFRESH {
            // A progress note of a partition without an open segment (its progress is all
            // stored) rewrites the checkpoint: an idle continuous backup still shows that
            // it lives, so retention never takes it for an abandoned one.
            if let Some(i) = self
                .states
                .iter()
                .position(|st| !st.done && st.writer.is_none())
            {
                self.send_segment(i, None)?;
                self.last_refresh = Instant::now();
            }
        }
        for i in 0..self.states.len() {
            let st = &mut self.states[i];
            if st.writer.is_some() && st.opened.elapsed() >= CONTINUOUS_FLUSH {
                let w = st.writer.take();
                self.send_segment(i, w)?;
            }
        }
        Ok(())
    }

    fn log_progress(&mut self) {
        if self.last_progress.elapsed() >= PROGRESS_EVERY {
            self.last_progress = Instant::now();
            tracing::info!(
                records = self.stats.records,
                bytes = self.stats.bytes,
                partitions_done = self.finished,
                partitions = self.states.len(),
                "backup progress"
            );
        }
    }
}

/// A record at `off` of `size` bytes was read: the offsets before it that hold no record are a
/// gap, classified by [`GapCause::between_records`].
fn passed(spec: &mut PartSpec, off: i64, size: u64) {
    if off > spec.next {
        let cause = GapCause::between_records(spec.next, off, spec.compacted);
        spec.gaps.add_as(spec.next, off, cause);
    }
    spec.next = off + 1;
    spec.records += 1;
    spec.bytes += size;
}

/// The partition ends at `end`: offsets after the last record read are a gap (the last offsets
/// held transaction markers or aborted records, or were lost).
fn ended_at(spec: &mut PartSpec, end: i64) {
    if end > spec.next {
        let cause = GapCause::between_records(spec.next, end, spec.compacted);
        spec.gaps.add_as(spec.next, end, cause);
    }
    spec.next = spec.next.max(end);
}

fn progress(spec: &PartSpec, end: Option<i64>) -> Progress {
    Progress {
        next_offset: spec.next,
        records: spec.records,
        bytes: spec.bytes,
        gaps: spec.gaps.clone(),
        end_offset: end,
    }
}

/// Errors after which reading cannot go on.
fn is_fatal(code: rdkafka::types::RDKafkaErrorCode) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        code,
        C::SaslAuthenticationFailed
            | C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::GroupAuthorizationFailed
            | C::Fatal
            | C::Authentication
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(compacted: bool) -> PartSpec {
        PartSpec {
            topic: "t".into(),
            partition: 0,
            next: 0,
            target: 22,
            records: 0,
            bytes: 0,
            gaps: Gaps::default(),
            compacted,
        }
    }

    /// Feeds a synthetic stream of record offsets, then the partition's end, through the
    /// accounting the reader applies to each record.
    fn account(mut s: PartSpec, offsets: &[i64], end: i64) -> PartSpec {
        for &o in offsets {
            passed(&mut s, o, 10);
        }
        ended_at(&mut s, end);
        s
    }

    #[test]
    fn offsets_without_records_are_counted_and_classified() {
        // 4 and 21 alone (where a transaction marker sits), 7..10 and 12..20 missing.
        let offsets = [0, 1, 2, 3, 5, 6, 10, 11, 20];
        let s = account(spec(false), &offsets, 22);
        assert_eq!((s.records, s.bytes, s.next), (9, 90, 22));
        let g = &s.gaps;
        assert_eq!(g.ranges, vec![(4, 5), (7, 10), (12, 20), (21, 22)]);
        assert_eq!((g.count, g.offsets), (4, 13));
        assert_eq!((g.markers, g.unexplained), (2, 11));
        assert_eq!((g.compacted, g.retention), (0, 0));

        // The same stream in a compacted topic: every gap is compaction.
        let s = account(spec(true), &offsets, 22);
        assert_eq!(
            (s.gaps.compacted, s.gaps.unexplained, s.gaps.markers),
            (13, 0, 0)
        );

        // Without gaps: nothing counted.
        let s = account(spec(false), &[0, 1, 2], 3);
        assert_eq!(s.gaps, Gaps::default());
    }
}

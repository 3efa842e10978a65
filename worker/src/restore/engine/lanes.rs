//! The lanes: each target partition's units written one after another, on blocking threads
//! that read the segments (ahead, within a memory budget), select the records to send and
//! queue them for the sender, while the runtime checkpoints and logs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, Producer};
use tracing::Instrument;

use super::checkpoint::{checkpoint_interval, Checkpoint, CheckpointStore, CheckpointWriter};
use super::producer::{flush_all, lock, DeliveryContext, Shared};
use super::sender::{run_sender, SendJob, SendQueue};
use super::tail::{check_same, TailReader};
use super::Run;
use crate::backup::format::DecodedSegment;
use crate::backup::read::read_segment_reusing;
use crate::error::{Error, Result};
use crate::kafka::KafkaConfig;
use crate::restore::plan::{RestorePlan, Unit, Window};
use crate::storage::{BufferPool, Storage};
use crate::task::{HeaderStyle, RestoreTask};
use crate::throttle::SharedThrottle;

/// Memory for segments read ahead and being sent, shared by every lane: a stored object until
/// it is decompressed, a decoded block until the sender has handed all its records to the
/// producer (a lane reads its next segment while the sender works through its earlier ones).
/// A segment larger than this is read alone.
const SEGMENT_MEMORY_BYTES: u64 = 64 << 20;
/// Spare buffers of each kind (stored objects, decompressed blocks) kept for reuse: at most as
/// many as the memory budget lets be in use at once.
const SEGMENT_BUFFERS: usize = 16;
/// Progress is logged this often.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// A target partition and the units (indexes into the plan) written to it, in plan order.
pub(super) type Lane = ((String, i32), Vec<usize>);

pub(super) struct LaneContext {
    pub(super) restore_id: String,
    pub(super) storage: Storage,
    pub(super) plan_units: Vec<Unit>,
    /// Units grouped by target partition, in plan order.
    pub(super) lanes: Vec<Lane>,
    pub(super) window: Window,
    pub(super) headers: Option<HeaderStyle>,
    pub(super) shared: Arc<Shared>,
    pub(super) producer: Arc<BaseProducer<DeliveryContext>>,
    pub(super) config: KafkaConfig,
    pub(super) lane_start: HashMap<(String, i32), i64>,
    pub(super) batch: usize,
    pub(super) limiter: SharedThrottle,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) found_on_resume: AtomicU64,
    /// Microseconds the sender slept on a full producer queue.
    pub(super) queue_full_us: AtomicU64,
    pub(super) handle: tokio::runtime::Handle,
    checkpoint: CheckpointWriter,
    /// [`SEGMENT_MEMORY_BYTES`] in KiB permits.
    segment_memory: Arc<tokio::sync::Semaphore>,
    /// Buffers of stored objects already decoded, reused so reading a segment needs no fresh
    /// pages (fresh memory costs the kernel a page fault and a cleared page per 4 KiB).
    objects: Arc<BufferPool>,
    /// Buffers of decompressed blocks already sent, reused likewise. Kept apart from
    /// `objects`: a block is several times larger than its object, and a block decompressed
    /// into an object's buffer would have to grow it, into fresh pages.
    blocks: Arc<BufferPool>,
    /// The segments' selected records waiting for [`run_sender`], per lane in order.
    pub(super) sender: SendQueue,
}

impl LaneContext {
    /// The lanes' shared state: the plan's units grouped by target partition, each lane
    /// starting at `lane_start` unless the checkpoint has it started.
    pub(super) fn new(
        run: &Run<'_>,
        producer: &Arc<BaseProducer<DeliveryContext>>,
        lane_start: HashMap<(String, i32), i64>,
        store: CheckpointStore,
        checkpoint: Checkpoint,
    ) -> LaneContext {
        let t = &run.req.task;
        let lanes = group_lanes(run.plan);
        LaneContext {
            restore_id: run.req.restore_id.clone(),
            storage: run.storage.clone(),
            plan_units: run.plan.units.clone(),
            window: run.plan.window,
            headers: t
                .include_original_offset_header
                .then_some(t.original_header_style),
            shared: Arc::clone(&producer.context().shared),
            producer: Arc::clone(producer),
            config: run.admin.config().clone(),
            lane_start,
            batch: t
                .produce_batch_size
                .unwrap_or(crate::task::DEFAULT_PRODUCE_BATCH),
            limiter: SharedThrottle::new(t.rate_limit_records_per_sec, t.rate_limit_bytes_per_sec),
            stop: Arc::clone(run.stop),
            found_on_resume: AtomicU64::new(0),
            queue_full_us: AtomicU64::new(0),
            handle: tokio::runtime::Handle::current(),
            checkpoint: CheckpointWriter::new(&run.req.restore_id, store, checkpoint, run.plan),
            segment_memory: Arc::new(tokio::sync::Semaphore::new(
                (SEGMENT_MEMORY_BYTES / 1024) as usize,
            )),
            objects: Arc::new(BufferPool::new(SEGMENT_BUFFERS)),
            blocks: Arc::new(BufferPool::new(SEGMENT_BUFFERS)),
            sender: SendQueue::new(lanes.len()),
            lanes,
        }
    }
}

impl LaneContext {
    /// Writes the checkpoint from the units' live state.
    async fn write_checkpoint(&self) -> Result<()> {
        self.checkpoint.write(&self.shared.units).await
    }
}

/// Lanes: units grouped by target partition, in plan order.
fn group_lanes(plan: &RestorePlan) -> Vec<Lane> {
    let mut lanes: Vec<Lane> = Vec::new();
    for (i, u) in plan.units.iter().enumerate() {
        let key = (u.target_topic.clone(), u.target_partition);
        match lanes.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(i),
            None => lanes.push((key, vec![i])),
        }
    }
    lanes
}

/// Runs every lane to its end (or a stop or failure): the sender thread and the lane workers
/// run while this checkpoints and logs; then the sender ends, the producer is flushed and the
/// checkpoint written a last time. The first failure of a lane or of the sender is returned.
#[tracing::instrument(name = "restore_lanes", skip_all, fields(restore_id = %ctx.restore_id, lanes = ctx.lanes.len()))]
pub(super) async fn run_lanes(
    ctx: &Arc<LaneContext>,
    t: &RestoreTask,
    started: Instant,
) -> Result<()> {
    let sender = {
        let ctx = Arc::clone(ctx);
        let span = tracing::info_span!("restore_sender", restore_id = %ctx.restore_id);
        std::thread::Builder::new()
            .name("restore-send".into())
            .spawn(move || span.in_scope(|| run_sender(&ctx)))
            .map_err(|e| Error::Kafka(format!("cannot start the restore's sender thread: {e}")))?
    };
    let mut workers = spawn_lane_workers(ctx, t);
    let mut failure = watch_lanes(ctx, &mut workers, checkpoint_interval(t)).await?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "lanes done"
    );
    // The lanes are done: whatever the sender still holds (after a stop) is dropped.
    ctx.sender.close();
    let joined = tokio::task::spawn_blocking(move || sender.join())
        .await
        .map_err(|e| Error::kafka_thread("the restore's sender did not stop", e))?;
    if joined.is_err() && failure.is_none() {
        failure = Some(Error::Kafka("the restore's sender thread failed".into()));
    }
    // Everything sent is confirmed or failed once the queue is empty.
    let p = Arc::clone(&ctx.producer);
    let flushed = tokio::task::spawn_blocking(move || flush_all(&p))
        .await
        .map_err(|e| Error::kafka_thread("flushing the producer did not complete", e))?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "producer flushed"
    );
    ctx.write_checkpoint().await?;
    if let Some(e) = failure {
        return Err(e);
    }
    flushed
}

/// Starts the lane workers (`max_concurrent_partitions` of them), each taking the next lane
/// not yet taken until none is left.
fn spawn_lane_workers(ctx: &Arc<LaneContext>, t: &RestoreTask) -> tokio::task::JoinSet<Result<()>> {
    let next_lane = Arc::new(AtomicUsize::new(0));
    let workers = t
        .max_concurrent_partitions
        .unwrap_or(crate::task::DEFAULT_RESTORE_CONCURRENCY)
        .min(ctx.lanes.len())
        .max(1);
    let mut set = tokio::task::JoinSet::new();
    let parent = tracing::Span::current();
    for _ in 0..workers {
        let ctx = Arc::clone(ctx);
        let next = Arc::clone(&next_lane);
        let parent = parent.clone();
        set.spawn_blocking(move || -> Result<()> {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((key, units)) = ctx.lanes.get(i) else {
                    return Ok(());
                };
                let _span = tracing::info_span!(
                    parent: &parent,
                    "restore_lane",
                    restore_id = %ctx.restore_id,
                    lane = i,
                    topic = %key.0,
                    partition = key.1
                )
                .entered();
                tracing::debug!(units = units.len(), "lane started");
                run_lane(&ctx, i, key, units)?;
                if ctx.stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
            }
        });
    }
    set
}

/// Checkpoints and logs while the lane workers run; returns once all have ended, with the
/// first failure among them (after which the others are told to stop).
async fn watch_lanes(
    ctx: &LaneContext,
    workers: &mut tokio::task::JoinSet<Result<()>>,
    interval: Duration,
) -> Result<Option<Error>> {
    let progress = &ctx.shared.progress;
    let mut last_ckpt = Instant::now();
    let mut last_log = Instant::now();
    let mut failure: Option<Error> = None;
    loop {
        let due = (last_ckpt + interval).min(last_log + LOG_EVERY);
        tokio::select! {
            joined = workers.join_next() => {
                let failed = match joined {
                    None => break,
                    Some(Ok(Ok(()))) => None,
                    Some(Ok(Err(e))) => Some(e),
                    Some(Err(e)) => Some(Error::kafka_thread("a restore worker failed", e)),
                };
                if let Some(e) = failed {
                    if failure.is_none() {
                        failure = Some(e);
                    }
                    ctx.stop.store(true, Ordering::SeqCst);
                }
                continue;
            }
            () = tokio::time::sleep_until(due.into()) => {}
        }
        if last_ckpt.elapsed() >= interval {
            ctx.write_checkpoint().await?;
            last_ckpt = Instant::now();
        }
        if last_log.elapsed() >= LOG_EVERY {
            last_log = Instant::now();
            tracing::info!(
                records = progress.records.load(Ordering::Relaxed),
                of = progress.records_total.load(Ordering::Relaxed),
                bytes = progress.bytes.load(Ordering::Relaxed),
                partitions_done = progress.partitions_done.load(Ordering::Relaxed),
                partitions = ctx.plan_units.len(),
                "restore progress"
            );
        }
    }
    Ok(failure)
}

/// Writes one lane's units in order (on a blocking thread).
fn run_lane(ctx: &LaneContext, lane: usize, key: &(String, i32), units: &[usize]) -> Result<()> {
    let mut next_target = ctx.lane_start.get(key).copied();
    for &i in units {
        if ctx.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let unit = &ctx.plan_units[i];
        let (done, started) = {
            let s = lock(&ctx.shared.units[i]);
            (s.done, s.started)
        };
        if done {
            next_target = Some(lock(&ctx.shared.units[i]).mapping.target_end);
            ctx.shared
                .progress
                .partitions_done
                .fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if !started {
            let start = next_target.ok_or_else(|| {
                Error::Kafka(format!("no start offset is known for {}-{}", key.0, key.1))
            })?;
            {
                let mut s = lock(&ctx.shared.units[i]);
                s.started = true;
                s.target_start = start;
                s.mapping.target_end = start;
            }
            // The start is durable before the first record is sent.
            ctx.handle.block_on(ctx.write_checkpoint())?;
        }
        write_unit(ctx, lane, i, unit, started)?;
        if ctx.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        next_target = Some(lock(&ctx.shared.units[i]).mapping.target_end);
        ctx.shared
            .progress
            .partitions_done
            .fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Reads a unit's segments and sends its selected records after the last one confirmed; for a
/// unit an interrupted run started, first matches what already landed.
fn write_unit(ctx: &LaneContext, lane: usize, i: usize, unit: &Unit, resumed: bool) -> Result<()> {
    let last_confirmed = lock(&ctx.shared.units[i])
        .mapping
        .runs
        .last()
        .map(|r| r.source_last());
    let mut tail: Option<TailReader> = if resumed {
        let from = lock(&ctx.shared.units[i]).mapping.target_end;
        Some(TailReader::open(
            &ctx.config,
            &unit.target_topic,
            unit.target_partition,
            from,
        )?)
    } else {
        None
    };
    if !queue_segments(ctx, lane, i, unit, last_confirmed, &mut tail)? {
        return Ok(());
    }
    if let Some(mut reader) = tail {
        if let Some(extra) = reader.next()? {
            return Err(Error::VerificationFailed(format!(
                "{}-{} holds a record at offset {} after every record of {} the restore selects: something else writes to this partition; stop it, then restore to an empty partition",
                unit.target_topic, unit.target_partition, extra.offset, unit.key()
            )));
        }
    }
    wait_confirmed(ctx, i)
}

/// Reads the unit's segments (the next one ahead while this one is selected from) and queues
/// their selected records for the sender. `false` when a stop or a failure ended it early.
fn queue_segments(
    ctx: &LaneContext,
    lane: usize,
    i: usize,
    unit: &Unit,
    last_confirmed: Option<i64>,
    tail: &mut Option<TailReader>,
) -> Result<bool> {
    let segs = &unit.segments;
    let mut prefetch = segs.first().map(|s| spawn_read(ctx, s.clone()));
    for idx in 0..segs.len() {
        let Some(current) = prefetch.take() else {
            break;
        };
        if let Some(next) = segs.get(idx + 1) {
            if last_confirmed.is_none_or(|c| next.stats.last_offset > c) {
                prefetch = Some(spawn_read(ctx, next.clone()));
            } else {
                prefetch = Some(SegmentRead::Skipped);
            }
        }
        let loaded = match current {
            SegmentRead::Skipped => continue,
            SegmentRead::Pending(h) => ctx
                .handle
                .block_on(h)
                .map_err(|e| Error::kafka_thread("reading a segment did not complete", e))??,
        };
        let selected = match select_records(i, unit, &loaded.segment, ctx, last_confirmed, tail) {
            Ok(selected) => selected,
            Err(e) => {
                loaded.release(ctx);
                return Err(e);
            }
        };
        if selected.is_empty() {
            loaded.release(ctx);
        } else {
            lock(&ctx.shared.units[i]).queued += selected.len();
            ctx.sender.push(
                lane,
                SendJob {
                    unit: i,
                    loaded,
                    selected,
                    sent: 0,
                },
            );
        }
        if ctx.stop.load(Ordering::Relaxed) || ctx.shared.failed.load(Ordering::Relaxed) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Waits for the unit's records to be confirmed, then marks it done.
fn wait_confirmed(ctx: &LaneContext, i: usize) -> Result<()> {
    loop {
        {
            let mut s = lock(&ctx.shared.units[i]);
            if let Some(e) = &s.error {
                return Err(Error::Kafka(format!(
                    "{e}; the records confirmed so far are checkpointed: run the restore again to resume"
                )));
            }
            if s.queued == 0 && s.inflight.is_empty() {
                s.done = true;
                return Ok(());
            }
        }
        if ctx.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The indexes of one segment's records to send: those after `last_confirmed` inside the
/// window; on resume, the first of them are matched against what the interrupted run left in
/// the target (`tail`, cleared once it runs out) and recorded instead of sent.
fn select_records(
    i: usize,
    unit: &Unit,
    segment: &DecodedSegment,
    ctx: &LaneContext,
    last_confirmed: Option<i64>,
    tail: &mut Option<TailReader>,
) -> Result<Vec<u32>> {
    let mut selected = Vec::with_capacity(segment.len());
    for (n, r) in segment.iter().enumerate() {
        if last_confirmed.is_some_and(|c| r.offset <= c) || !ctx.window.contains(r.timestamp) {
            continue;
        }
        if let Some(reader) = tail.as_mut() {
            match reader.next()? {
                Some(found) => {
                    check_same(unit, &r, &found)?;
                    let mut s = lock(&ctx.shared.units[i]);
                    let bytes = r.payload_bytes();
                    s.mapping.push(r.offset, found.offset, r.timestamp);
                    s.bytes += bytes;
                    ctx.shared.progress.records.fetch_add(1, Ordering::Relaxed);
                    ctx.shared
                        .progress
                        .bytes
                        .fetch_add(bytes, Ordering::Relaxed);
                    ctx.found_on_resume.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                None => *tail = None,
            }
        }
        // A segment holds at most `MAX_BLOCK_BYTES` of records, far fewer than u32::MAX.
        selected.push(n as u32);
    }
    Ok(selected)
}

enum SegmentRead {
    Skipped,
    Pending(tokio::task::JoinHandle<Result<Loaded>>),
}

/// A segment read and decoded, holding its share of [`SEGMENT_MEMORY_BYTES`].
pub(super) struct Loaded {
    pub(super) segment: DecodedSegment,
    _memory: tokio::sync::OwnedSemaphorePermit,
}

impl Loaded {
    /// Gives the decompression buffer back for the next segment, then the memory permit.
    pub(super) fn release(self, ctx: &LaneContext) {
        let (block, object) = self.segment.into_buffers();
        ctx.blocks.give(block);
        if let Some(object) = object {
            ctx.objects.give(object);
        }
    }
}

/// Reads and decodes a segment on the runtime once the memory it needs is free (what the
/// stored object and its decompressed block take, at most the whole budget).
fn spawn_read(ctx: &LaneContext, entry: crate::backup::manifest::SegmentEntry) -> SegmentRead {
    let storage = ctx.storage.clone();
    let memory = Arc::clone(&ctx.segment_memory);
    let objects = Arc::clone(&ctx.objects);
    let blocks = Arc::clone(&ctx.blocks);
    let compressed = entry.stats.codec != "none";
    let need = entry.stats.stored_bytes
        + if compressed {
            entry.stats.uncompressed_bytes
        } else {
            0
        };
    let permits = need.div_ceil(1024).clamp(1, SEGMENT_MEMORY_BYTES / 1024) as u32;
    SegmentRead::Pending(
        ctx.handle.spawn(
            async move {
                let mut permit = memory
                    .acquire_many_owned(permits)
                    .await
                    .map_err(|e| Error::Kafka(format!("segment memory budget closed: {e}")))?;
                let buffer = if compressed {
                    blocks.take()
                } else {
                    Vec::new()
                };
                let (segment, object) =
                    read_segment_reusing(&storage, &entry, buffer, objects.take()).await?;
                if let Some(object) = object {
                    objects.give(object);
                    // The stored object is gone once decompressed: only the block stays in use.
                    let stored = entry.stats.stored_bytes.div_ceil(1024) as usize;
                    if stored < permit.num_permits() {
                        drop(permit.split(stored));
                    }
                }
                Ok(Loaded {
                    segment,
                    _memory: permit,
                })
            }
            .instrument(tracing::Span::current()),
        ),
    )
}

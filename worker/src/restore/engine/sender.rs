//! The one thread that hands the lanes' selected records to the producer.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;

use super::lanes::{LaneContext, Loaded};
use super::producer::{header_names, lock};
use crate::backup::format::RecordRef;
use crate::failpoints::crash_at;
use crate::restore::plan::Unit;

/// Work for the one thread that hands records to the producer ([`run_sender`]): per lane, its
/// segments' selected records in order.
pub(super) struct SendQueue {
    jobs: Mutex<SendJobs>,
    ready: Condvar,
}

struct SendJobs {
    lanes: Vec<VecDeque<SendJob>>,
    /// No more jobs will come: the sender ends once it has none.
    closed: bool,
}

/// One segment's selected records for a unit.
pub(super) struct SendJob {
    pub(super) unit: usize,
    pub(super) loaded: Loaded,
    /// Indexes into the segment, ascending.
    pub(super) selected: Vec<u32>,
    /// How many of `selected` are sent.
    pub(super) sent: usize,
}

impl SendQueue {
    pub(super) fn new(lanes: usize) -> Self {
        SendQueue {
            jobs: Mutex::new(SendJobs {
                lanes: (0..lanes).map(|_| VecDeque::new()).collect(),
                closed: false,
            }),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SendJobs> {
        match self.jobs.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub(super) fn push(&self, lane: usize, job: SendJob) {
        let mut jobs = self.lock();
        if let Some(q) = jobs.lanes.get_mut(lane) {
            q.push_back(job);
        }
        drop(jobs);
        self.ready.notify_one();
    }

    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

/// The one thread that hands records to the producer: it takes the lanes in turn, up to
/// `batch` records of a lane's oldest job at each turn, as a bare loop over the partitions
/// would. Every partition's queue in librdkafka keeps filling (an idempotent producer has one
/// request per partition in flight, so throughput comes from many partitions at once), and the
/// records are copied into librdkafka from one thread only. Ends once the queue is closed and
/// empty; after a stop or a failure it drops what is left.
pub(super) fn run_sender(ctx: &LaneContext) {
    /// Should the sender die, the lanes waiting for it stop instead of waiting forever.
    struct Halt<'a>(&'a LaneContext);
    impl Drop for Halt<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.shared.failed.store(true, Ordering::SeqCst);
                self.0.stop.store(true, Ordering::SeqCst);
            }
        }
    }
    let _halt = Halt(ctx);
    let mut turn = 0usize;
    let mut first = true;
    let mut idle = Duration::ZERO;
    loop {
        let Some((lane, mut job)) = next_job(ctx, turn, first, &mut idle) else {
            return;
        };
        if first {
            first = false;
            tracing::debug!(lane, "first records handed to the producer");
        }
        turn = lane + 1;
        let end = (job.sent + ctx.batch).min(job.selected.len());
        let wanted = end - job.sent;
        let sent = send_chunk(ctx, &job, end);
        job.sent += sent;
        if sent == wanted && job.sent < job.selected.len() {
            // More of this job at the lane's next turn, before its later jobs.
            let mut jobs = ctx.sender.lock();
            if let Some(q) = jobs.lanes.get_mut(lane) {
                q.push_front(job);
            }
        } else {
            let left = job.selected.len() - job.sent;
            if left > 0 {
                // Stopped or failed part-way: the rest is never sent.
                let mut s = lock(&ctx.shared.units[job.unit]);
                s.queued = s.queued.saturating_sub(left);
            }
            job.loaded.release(ctx);
        }
    }
}

/// Waits for the next job to send (its lane and the job), from the lane after `turn` whose
/// partition has the fewest records outstanding; `None` once the queue is closed and empty.
/// After a stop or a failure, drops every job waiting.
fn next_job(
    ctx: &LaneContext,
    turn: usize,
    first: bool,
    idle: &mut Duration,
) -> Option<(usize, SendJob)> {
    let mut jobs = ctx.sender.lock();
    loop {
        let halted = ctx.stop.load(Ordering::Relaxed) || ctx.shared.failed.load(Ordering::Relaxed);
        if halted {
            drop_all(ctx, &mut jobs);
        }
        // The lane whose partition has the fewest records outstanding: the queue's room
        // goes where a partition would otherwise run dry, not to a deep backlog.
        let n = jobs.lanes.len();
        let next = (0..n)
            .map(|k| (turn + k) % n)
            .filter_map(|l| {
                let job = jobs.lanes[l].front()?;
                Some((l, lock(&ctx.shared.units[job.unit]).inflight.len()))
            })
            .min_by_key(|&(_, outstanding)| outstanding)
            .map(|(l, _)| l);
        if let Some(l) = next {
            if let Some(job) = jobs.lanes[l].pop_front() {
                return Some((l, job));
            }
        }
        if jobs.closed {
            tracing::debug!(
                idle_ms = idle.as_millis() as u64,
                queue_full_ms = ctx.queue_full_us.load(Ordering::Relaxed) / 1000,
                "sender finished"
            );
            return None;
        }
        let waiting = Instant::now();
        jobs = match ctx
            .sender
            .ready
            .wait_timeout(jobs, Duration::from_millis(50))
        {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        };
        if !first {
            *idle += waiting.elapsed();
        }
    }
}

/// Drops every job waiting (a stop or a failure): their records are never sent.
fn drop_all(ctx: &LaneContext, jobs: &mut SendJobs) {
    for q in &mut jobs.lanes {
        for job in q.drain(..) {
            let left = job.selected.len() - job.sent;
            let mut s = lock(&ctx.shared.units[job.unit]);
            s.queued = s.queued.saturating_sub(left);
            drop(s);
            job.loaded.release(ctx);
        }
    }
}

/// Sends `job.selected[job.sent..end]`; returns how many were handed to the producer (fewer
/// after a stop, a failure or an error, which is recorded in the unit's state).
fn send_chunk(ctx: &LaneContext, job: &SendJob, end: usize) -> usize {
    let i = job.unit;
    let unit = &ctx.plan_units[i];
    let segment = &job.loaded.segment;
    let chunk = &job.selected[job.sent..end];
    let records: Vec<RecordRef<'_>> = chunk
        .iter()
        .filter_map(|&n| segment.get(n as usize))
        .collect();
    let bytes: u64 = records.iter().map(RecordRef::payload_bytes).sum();
    ctx.limiter.wait(records.len() as u64, bytes, &ctx.stop);
    {
        let mut s = lock(&ctx.shared.units[i]);
        for r in &records {
            s.inflight
                .push_back((r.offset, r.timestamp, r.payload_bytes()));
        }
        s.queued = s.queued.saturating_sub(records.len());
    }
    let names = header_names(ctx.headers.unwrap_or_default());
    for (n, r) in records.iter().enumerate() {
        let mut rec: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(&unit.target_topic, i).partition(unit.target_partition);
        // librdkafka allocates a header list per record that has one: only when needed.
        if r.header_count() > 0 || ctx.headers.is_some() {
            rec = rec.headers(record_headers(ctx, unit, r, names));
        }
        if let Some(k) = r.key {
            rec = rec.key(k);
        }
        if let Some(v) = r.value {
            rec = rec.payload(v);
        }
        if r.timestamp >= 0 {
            rec = rec.timestamp(r.timestamp);
        }
        if !produce(ctx, i, rec, r, records.len() - n) {
            return n;
        }
        crash_at("restore-record");
    }
    records.len()
}

/// A record's headers: its own, then the original offset headers when asked for.
#[inline]
fn record_headers(
    ctx: &LaneContext,
    unit: &Unit,
    r: &RecordRef<'_>,
    names: (&'static str, &'static str, Option<&'static str>),
) -> OwnedHeaders {
    let extra = if ctx.headers.is_some() { 3 } else { 0 };
    let mut headers = OwnedHeaders::new_with_capacity(r.header_count() + extra);
    for (key, value) in r.headers() {
        headers = headers.insert(Header { key, value });
    }
    if ctx.headers.is_some() {
        let offset_text = r.offset.to_string();
        let ts_text = r.timestamp.to_string();
        headers = headers.insert(Header {
            key: names.0,
            value: Some(offset_text.as_bytes()),
        });
        headers = headers.insert(Header {
            key: names.1,
            value: Some(ts_text.as_bytes()),
        });
        if let Some(p) = names.2 {
            let part_text = unit.source_partition.to_string();
            headers = headers.insert(Header {
                key: p,
                value: Some(part_text.as_bytes()),
            });
        }
    }
    headers
}

/// Hands one record of unit `i` to the producer, waiting while its queue is full. `false`
/// when it was not sent (a failure elsewhere, or an error, recorded in the unit's state): the
/// `unsent` records from this one on are dropped from the unit's in-flight list.
#[inline]
fn produce(
    ctx: &LaneContext,
    i: usize,
    mut rec: BaseRecord<'_, [u8], [u8], usize>,
    r: &RecordRef<'_>,
    unsent: usize,
) -> bool {
    loop {
        match ctx.producer.send(rec) {
            Ok(()) => return true,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                rec = back;
                let t0 = Instant::now();
                std::thread::sleep(Duration::from_millis(1));
                ctx.queue_full_us
                    .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
                if ctx.shared.failed.load(Ordering::Relaxed) {
                    drop_unsent(ctx, i, unsent);
                    return false;
                }
            }
            Err((e, _)) => {
                drop_unsent(ctx, i, unsent);
                let unit = &ctx.plan_units[i];
                let mut s = lock(&ctx.shared.units[i]);
                if s.error.is_none() {
                    s.error = Some(format!(
                        "cannot send source {} offset {} to {}-{}: {e}",
                        unit.key(),
                        r.offset,
                        unit.target_topic,
                        unit.target_partition
                    ));
                }
                ctx.shared.failed.store(true, Ordering::SeqCst);
                return false;
            }
        }
    }
}

/// Removes the last `n` in-flight entries (records never handed to the producer).
fn drop_unsent(ctx: &LaneContext, i: usize, n: usize) {
    let mut s = lock(&ctx.shared.units[i]);
    for _ in 0..n {
        s.inflight.pop_back();
    }
}

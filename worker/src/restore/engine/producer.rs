//! The restore's one producer: its configuration, the delivery reports that record where each
//! record landed, and the thread that serves them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use crate::error::{Error, Result};
use crate::kafka::{KafkaConfig, ProducerAcks};
use crate::progress::LiveProgress;
use crate::restore::mapping::PartitionMapping;
use crate::task::{Acks, HeaderStyle, RestoreTask};

/// Bytes librdkafka may hold in its send queue (bounds memory at any data size).
const QUEUE_KBYTES: &str = "16384";

/// One unit's live state, shared with the delivery callback.
#[derive(Debug)]
pub(super) struct UnitState {
    pub(super) mapping: PartitionMapping,
    /// Sent, not yet reported: (source offset, timestamp, payload bytes), in send order.
    pub(super) inflight: VecDeque<(i64, i64, u64)>,
    /// Selected and handed to the sender, not yet sent.
    pub(super) queued: usize,
    pub(super) bytes: u64,
    pub(super) error: Option<String>,
    pub(super) done: bool,
    pub(super) target_start: i64,
    pub(super) started: bool,
}

pub(super) struct Shared {
    pub(super) units: Vec<Mutex<UnitState>>,
    pub(super) records: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) progress: Arc<LiveProgress>,
    pub(super) failed: AtomicBool,
}

pub(super) struct DeliveryContext {
    pub(super) shared: Arc<Shared>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, unit: usize) {
        let Some(slot) = self.shared.units.get(unit) else {
            return;
        };
        let mut u = match slot.lock() {
            Ok(u) => u,
            Err(p) => p.into_inner(),
        };
        let Some((source, ts, bytes)) = u.inflight.pop_front() else {
            return;
        };
        match result {
            Ok(m) if u.error.is_none() => {
                // A retried batch the broker already had may come back without its offset
                // (-1). A lane's records land one after another in a partition only this
                // restore writes, so it is the offset after the previous one; the final check
                // compares the partition's end with the plan.
                let target = if m.offset() >= 0 {
                    m.offset()
                } else {
                    u.mapping.target_end
                };
                u.mapping.push(source, target, ts);
                u.bytes += bytes;
                self.shared.records.fetch_add(1, Ordering::Relaxed);
                self.shared.bytes.fetch_add(bytes, Ordering::Relaxed);
                self.shared.progress.records.fetch_add(1, Ordering::Relaxed);
                self.shared
                    .progress
                    .bytes
                    .fetch_add(bytes, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err((e, m)) => {
                if u.error.is_none() {
                    u.error = Some(format!(
                        "the record at source offset {source} could not be written to {}-{}: {e}",
                        m.topic(),
                        m.partition()
                    ));
                }
                self.shared.failed.store(true, Ordering::SeqCst);
            }
        }
    }
}

#[inline]
pub(super) fn lock(m: &Mutex<UnitState>) -> std::sync::MutexGuard<'_, UnitState> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Header names for the original offset.
pub(crate) fn header_names(
    style: HeaderStyle,
) -> (&'static str, &'static str, Option<&'static str>) {
    match style {
        HeaderStyle::Original => ("x-original-offset", "x-original-timestamp", None),
        HeaderStyle::KafkaBackup => (
            "x-kafka-backup-offset",
            "x-kafka-backup-timestamp",
            Some("x-kafka-backup-partition"),
        ),
    }
}

pub(super) fn first_error(shared: &Shared) -> Option<String> {
    shared.units.iter().find_map(|u| lock(u).error.clone())
}

pub(super) fn flush_all(p: &BaseProducer<DeliveryContext>) -> Result<()> {
    loop {
        match p.flush(Duration::from_secs(1)) {
            Ok(()) => return Ok(()),
            Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)) => {
                if p.in_flight_count() == 0 {
                    return Ok(());
                }
            }
            Err(e) => return Err(Error::kafka("flushing the producer failed", e)),
        }
    }
}

pub(super) fn make_producer(
    config: &KafkaConfig,
    t: &RestoreTask,
    shared: Arc<Shared>,
) -> Result<BaseProducer<DeliveryContext>> {
    let acks = match t.acks {
        Acks::All => ProducerAcks::All,
        Acks::Leader => ProducerAcks::Leader,
    };
    // Sparse connections make the idempotent producer wait up to a second for a broker
    // connection before it can acquire its producer id; a restore connects right away.
    let tuning = [
        ("queue.buffering.max.kbytes", QUEUE_KBYTES.to_string()),
        ("enable.sparse.connections", "false".to_string()),
        ("message.max.bytes", "67108864".to_string()),
        (
            "batch.num.messages",
            t.produce_batch_size
                .unwrap_or(crate::task::DEFAULT_PRODUCE_BATCH)
                .to_string(),
        ),
    ];
    // The user's properties are in `config` (from the task); the guarantees are set last.
    config
        .producer_config(acks, &tuning)
        .create_with_context(DeliveryContext { shared })
        .map_err(|e| Error::kafka("cannot create the producer", e))
}

/// The restore's producer and the thread that serves its delivery reports. Stopping it (on
/// drop) takes at most [`DELIVERY_POLL`], where rdkafka's `ThreadedProducer` waits up to 100 ms
/// for its thread at the end of every restore.
pub(super) struct DeliveryThread {
    pub(super) producer: Arc<BaseProducer<DeliveryContext>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How long one poll of the delivery reports lasts (`BaseProducer::poll` serves reports until
/// its timeout is over).
const DELIVERY_POLL: Duration = Duration::from_millis(10);

impl DeliveryThread {
    pub(super) fn start(
        producer: BaseProducer<DeliveryContext>,
        restore_id: &str,
    ) -> Result<DeliveryThread> {
        let producer = Arc::new(producer);
        let stop = Arc::new(AtomicBool::new(false));
        let span = tracing::info_span!("restore_delivery", restore_id);
        let thread = {
            let producer = Arc::clone(&producer);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("restore-delivery".into())
                .spawn(move || {
                    let _span = span.entered();
                    while !stop.load(Ordering::Relaxed) {
                        producer.poll(DELIVERY_POLL);
                    }
                    tracing::debug!("delivery report thread stopped");
                })
                .map_err(|e| {
                    Error::Kafka(format!("cannot start the delivery report thread: {e}"))
                })?
        };
        Ok(DeliveryThread {
            producer,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for DeliveryThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::warn!("the restore's delivery report thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_styles_name_the_headers() {
        assert_eq!(header_names(HeaderStyle::Original).0, "x-original-offset");
        assert_eq!(
            header_names(HeaderStyle::KafkaBackup),
            (
                "x-kafka-backup-offset",
                "x-kafka-backup-timestamp",
                Some("x-kafka-backup-partition")
            )
        );
    }
}

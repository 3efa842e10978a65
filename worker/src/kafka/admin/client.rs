//! The one librdkafka admin client behind every [`GroupAdmin`](super::GroupAdmin) clone, and
//! its polling thread. Contract: [`Inner::dispatch`] issues a request with an opaque id and
//! returns a [`Reply`] its answer arrives on; the polling thread routes answers by that id, and
//! log and error events to the client context; dropping the last clone stops the thread, then
//! releases the queues and the client.

use std::collections::HashMap;
use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::admin::AdminClient;
use rdkafka::error::KafkaError;
use rdkafka::ClientContext;
use rdkafka_sys::types::RDKafkaErrorCode;
use tokio::sync::oneshot;

use super::context::{creation_error, request_failed, Ctx, FailureClass};
use super::ffi::{Event, Handles, Polled, Queue, Request};
use super::lock;
use crate::error::Result;
use crate::kafka::KafkaConfig;

/// How long the polling thread blocks in one `rd_kafka_queue_poll`.
const POLL_INTERVAL_MS: c_int = 100;
/// Length of one metadata round trip while `connect` probes the cluster; between slices it
/// checks for authentication and TLS failures so those fail fast.
const PROBE_SLICE: Duration = Duration::from_millis(500);

/// Shared state behind [`GroupAdmin`](super::GroupAdmin). In `Drop` the polling thread is
/// stopped; then the handles drop (the queues, then the client; see [`Handles`]).
pub(super) struct Inner {
    shutdown: Arc<AtomicBool>,
    poller: Option<JoinHandle<()>>,
    pending: Arc<PendingMap>,
    next_id: AtomicU64,
    handles: Handles,
}

type PendingMap = Mutex<HashMap<u64, oneshot::Sender<Event>>>;

impl Inner {
    pub(super) fn new(config: &KafkaConfig) -> Result<Inner> {
        // An admin tool never creates topics by asking about them (set by admin_config).
        let client: AdminClient<Ctx> = config
            .admin_config()
            .create_with_context(Ctx::new(config))
            .map_err(creation_error)?;
        let mut inner = Inner {
            shutdown: Arc::new(AtomicBool::new(false)),
            poller: None,
            pending: Arc::new(Mutex::new(HashMap::new())),
            next_id: AtomicU64::new(1),
            handles: Handles::new(client)?,
        };
        let poller = {
            let queue = Arc::clone(inner.handles.queue());
            let pending = Arc::clone(&inner.pending);
            let ctx = Arc::clone(inner.client().inner().context());
            let shutdown = Arc::clone(&inner.shutdown);
            std::thread::Builder::new()
                .name("tidemark-admin-poll".into())
                .spawn(move || poll_loop(&queue, &pending, &ctx, &shutdown))
                .map_err(|e| request_failed("failed to start the admin polling thread", e))?
        };
        inner.poller = Some(poller);
        Ok(inner)
    }

    pub(super) fn client(&self) -> &AdminClient<Ctx> {
        self.handles.client()
    }

    pub(super) fn ctx(&self) -> &Ctx {
        self.client().inner().context()
    }

    /// Registers the answer slot and issues `request` (with its timeout, opaque id and
    /// isolation level). Everything non-`Send` stays inside this call.
    pub(super) fn dispatch<R: Request>(&self, request: &R, timeout: Duration) -> Result<Reply> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        lock(&self.pending).insert(id, sender);
        let slot = PendingSlot {
            id,
            pending: Arc::clone(&self.pending),
        };
        let started = Instant::now();
        self.handles.send(request, timeout, id)?;
        Ok(Reply {
            receiver,
            started,
            _slot: slot,
        })
    }

    /// Blocking: asks for broker-only metadata in short slices until the cluster answers, the
    /// timeout passes, or librdkafka reports rejected credentials or a failed TLS handshake.
    pub(super) fn probe_cluster(&self, timeout: Duration) -> std::result::Result<(), ProbeFailure> {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut last = (
            RDKafkaErrorCode::OperationTimedOut,
            "Local: Timed out".to_string(),
        );
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(ProbeFailure {
                    code: last.0,
                    message: last.1,
                    started,
                });
            }
            let slice = (deadline - now).min(PROBE_SLICE);
            match self.handles.broker_metadata(slice) {
                Ok(()) => return Ok(()),
                Err(failure) => last = failure,
            }
            if let Some((class, reason)) = self.ctx().recorded_since(started) {
                if class != FailureClass::Connection {
                    let code = match class {
                        FailureClass::Authentication => RDKafkaErrorCode::Authentication,
                        _ => RDKafkaErrorCode::SSL,
                    };
                    return Err(ProbeFailure {
                        code,
                        message: reason,
                        started,
                    });
                }
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::Release);
        self.handles.queue().wake();
        if let Some(poller) = self.poller.take() {
            if poller.join().is_err() {
                tracing::warn!("the Kafka admin polling thread panicked");
            }
        }
        lock(&self.pending).clear();
        // `handles` drops next: the forward is undone, the queues and the client released.
    }
}

/// The polling thread: routes answers to their waiting requests by opaque id, and log and error
/// events to the client context.
fn poll_loop(queue: &Queue, pending: &PendingMap, ctx: &Ctx, shutdown: &AtomicBool) {
    while !shutdown.load(Ordering::Acquire) {
        match queue.poll(POLL_INTERVAL_MS) {
            None => {}
            Some(Polled::Log {
                level,
                facility,
                message,
            }) => ctx.emit_log(level, facility.trim(), message.trim()),
            Some(Polled::Error { code, reason }) => {
                ctx.error(KafkaError::Global(code), reason.trim());
            }
            Some(Polled::Answer(id, event)) => {
                let sender = lock(pending).remove(&id);
                if let Some(sender) = sender {
                    // A dropped receiver (cancelled request) hands the event back; it is freed.
                    let _ = sender.send(event);
                }
            }
        }
    }
}

/// Where a request's answer will arrive. Dropping it (e.g. a cancelled future) frees the slot;
/// a late answer is then destroyed by the polling thread.
pub(super) struct Reply {
    pub receiver: oneshot::Receiver<Event>,
    pub started: Instant,
    _slot: PendingSlot,
}

struct PendingSlot {
    id: u64,
    pending: Arc<PendingMap>,
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        lock(&self.pending).remove(&self.id);
    }
}

/// Why the connection check failed.
pub(super) struct ProbeFailure {
    pub code: RDKafkaErrorCode,
    pub message: String,
    pub started: Instant,
}

//! The bounded pipeline between the reader and the committer, in two stages: sealed segments are
//! encoded (compressed, on the blocking pool) up to [`Limits::encoders`] at a time, and encoded
//! segments are stored as store slots free up. The stages are separate so a slow store (an fsync,
//! an upload) does not hold up compression of the segments behind it, and compression does not
//! wait for a store to start. Memory stays bounded: at most [`Limits::in_flight`] segments are
//! taken from the reader's channel and not yet stored (being encoded, encoded and waiting, or
//! being stored); beyond that the channel fills and the reader waits.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use futures::stream::{FuturesUnordered, StreamExt};

use super::commit::Sealed;
use crate::error::Result;

/// One step of the pipeline for one segment.
pub(super) type Step<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// How much work the pipeline holds at once.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Segments being encoded at once.
    pub(super) encoders: usize,
    /// Segments taken from the channel and not yet stored, whatever their stage.
    pub(super) in_flight: usize,
}

impl Limits {
    /// One encoder per core (at most 3), and two more segments than encoders in flight, so
    /// stores overlap the encoding of the next segments. At the 8 MiB default segment size that
    /// is at most 5 segments and their compressed copies (~50 MiB) beside the reader's 64 MiB
    /// of open segments and 64 MiB of prefetched records.
    pub(super) fn for_this_machine() -> Limits {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let encoders = cores.clamp(1, 3);
        Limits {
            encoders,
            in_flight: encoders + 2,
        }
    }
}

/// The two stages, per segment.
pub(super) trait Stages {
    type Encoded: Send;
    type Stored;
    fn encode(&self, sealed: Sealed) -> Step<'_, Self::Encoded>;
    fn store(&self, encoded: Self::Encoded) -> Step<'_, Self::Stored>;
}

/// Runs sealed segments from `rx` through `stages` within `limits`, handing each stored one to
/// `stored` (in the order stores complete), until the channel is closed and everything is
/// stored, or a step or `stored` fails (that error is returned; nothing more is taken).
pub(super) async fn drive<S: Stages>(
    stages: &S,
    rx: &mut tokio::sync::mpsc::Receiver<Sealed>,
    limits: Limits,
    mut stored: impl AsyncFnMut(S::Stored) -> Result<()>,
) -> Result<()> {
    let encoders = limits.encoders.max(1);
    let in_flight = limits.in_flight.max(encoders);
    let mut encoding = FuturesUnordered::new();
    let mut encoded: VecDeque<S::Encoded> = VecDeque::new();
    let mut storing = FuturesUnordered::new();
    let mut open = true;
    loop {
        while let Some(e) = encoded.pop_front() {
            storing.push(stages.store(e));
        }
        let held = encoding.len() + storing.len();
        if !open && held == 0 {
            return Ok(());
        }
        let take = open && encoding.len() < encoders && held < in_flight;
        tokio::select! {
            sealed = rx.recv(), if take => match sealed {
                Some(s) => encoding.push(stages.encode(s)),
                None => open = false,
            },
            Some(e) = encoding.next(), if !encoding.is_empty() => encoded.push_back(e?),
            Some(s) = storing.next(), if !storing.is_empty() => stored(s?).await?,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::backup::engine::commit::Progress;
    use crate::backup::manifest::Gaps;
    use crate::error::Error;

    fn sealed(part: usize, seq: u64) -> Sealed {
        Sealed {
            part,
            seq,
            writer: None,
            progress: Progress {
                next_offset: seq as i64,
                records: seq,
                bytes: seq,
                gaps: Gaps::default(),
                end_offset: None,
            },
        }
    }

    /// Encodes at once (or fails on `fail_at`); stores wait until the test opens their gate.
    #[derive(Default)]
    struct Gated {
        encoded: AtomicUsize,
        fail_at: Option<u64>,
        gates: Mutex<Vec<(u64, tokio::sync::oneshot::Sender<()>)>>,
    }

    impl Stages for Gated {
        type Encoded = (usize, u64);
        type Stored = (usize, u64);
        fn encode(&self, s: Sealed) -> Step<'_, (usize, u64)> {
            Box::pin(async move {
                if Some(s.seq) == self.fail_at {
                    return Err(Error::Kafka(format!("cannot encode segment {}", s.seq)));
                }
                tokio::task::yield_now().await;
                self.encoded.fetch_add(1, Ordering::SeqCst);
                Ok((s.part, s.seq))
            })
        }
        fn store(&self, e: (usize, u64)) -> Step<'_, (usize, u64)> {
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.gates.lock().expect("lock").push((e.1, tx));
            Box::pin(async move {
                rx.await.map_err(|_| Error::Kafka("gate dropped".into()))?;
                Ok(e)
            })
        }
    }

    /// Lets the scheduled tasks run until nothing moves.
    async fn settle() {
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[tokio::test]
    async fn a_slow_store_holds_no_more_than_the_limit_and_encoding_goes_on_meanwhile() {
        let stages = Arc::new(Gated::default());
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Sealed>(2);
        let limits = Limits {
            encoders: 2,
            in_flight: 4,
        };
        let done = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&sent);
        let feeder = tokio::spawn(async move {
            for seq in 0..10u64 {
                tx.send(sealed((seq % 2) as usize, seq))
                    .await
                    .expect("send");
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        let driver = drive(&*stages, &mut rx, limits, async |st| {
            done.lock().expect("lock").push(st);
            Ok(())
        });
        let control = async {
            settle().await;
            // Every store waits: the pipeline holds `in_flight` segments, all of them encoded
            // (the encoders did not wait for a store slot), and the channel holds 2 more; the
            // reader waits for room.
            assert_eq!(stages.encoded.load(Ordering::SeqCst), 4);
            assert_eq!(stages.gates.lock().expect("lock").len(), 4);
            assert_eq!(sent.load(Ordering::SeqCst), 4 + 2);
            assert!(done.lock().expect("lock").is_empty());

            // Stores complete newest first: each completion lets one more segment in, no more.
            loop {
                let gate = stages.gates.lock().expect("lock").pop();
                let Some((_, g)) = gate else { break };
                g.send(()).expect("open the gate");
                settle().await;
                let held = sent.load(Ordering::SeqCst) - done.lock().expect("lock").len();
                assert!(held <= 4 + 2, "{held} segments held");
            }
        };
        let (driven, ()) = tokio::join!(driver, control);
        driven.expect("drive");
        feeder.await.expect("feeder");
        let mut stored: Vec<u64> = done.lock().expect("lock").iter().map(|(_, s)| *s).collect();
        assert_ne!(
            stored,
            (0..10).collect::<Vec<_>>(),
            "stores completed out of order"
        );
        stored.sort_unstable();
        assert_eq!(
            stored,
            (0..10).collect::<Vec<_>>(),
            "each segment stored once"
        );
    }

    #[tokio::test]
    async fn a_failed_encoding_stops_the_pipeline_with_its_error() {
        let stages = Gated {
            fail_at: Some(1),
            ..Gated::default()
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Sealed>(8);
        for seq in 0..4 {
            tx.send(sealed(0, seq)).await.expect("send");
        }
        drop(tx);
        let limits = Limits {
            encoders: 1,
            in_flight: 2,
        };
        let err = drive(&stages, &mut rx, limits, async |_| Ok(()))
            .await
            .expect_err("an encoding failed");
        assert!(err.to_string().contains("cannot encode segment 1"), "{err}");
    }
}

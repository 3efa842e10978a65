//! The process's stop signals, as the flags a backup or a restore watches.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The stop flags of a backup: `stop` on SIGTERM or Ctrl-C; `finish` too on Ctrl-C (SIGINT).
#[derive(Debug, Clone, Default)]
pub struct StopSignals {
    pub stop: Arc<AtomicBool>,
    /// The user asked a continuous backup to end (it then writes its manifest).
    pub finish: Arc<AtomicBool>,
}

/// [`StopSignals`] set by the process's signals: SIGTERM (what Kubernetes sends on an
/// eviction, a drain or a deleted pod) interrupts a backup, which stores what it read and its
/// checkpoint and exits 75, to be resumed; Ctrl-C (SIGINT) also ends a continuous backup, which
/// then writes its manifest.
pub fn stop_or_finish_on_signal() -> StopSignals {
    let signals = StopSignals::default();
    let (stop, finish) = (Arc::clone(&signals.stop), Arc::clone(&signals.finish));
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {
                    tracing::warn!("SIGTERM: storing what was read and the checkpoint; running the backup again resumes there");
                }
                _ = tokio::signal::ctrl_c() => {
                    tracing::warn!("interrupted: storing what was read; a continuous backup writes its manifest");
                    finish.store(true, Ordering::SeqCst);
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            finish.store(true, Ordering::SeqCst);
        }
        stop.store(true, Ordering::SeqCst);
    });
    signals
}

/// Sets the returned flag on SIGTERM or Ctrl-C (a restore then stops and can be resumed;
/// backups use [`stop_or_finish_on_signal`]).
pub fn stop_on_signal() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::warn!("stop requested: finishing the segments in flight and writing a checkpoint");
        flag.store(true, Ordering::SeqCst);
    });
    stop
}

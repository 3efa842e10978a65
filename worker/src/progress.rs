//! Live counters of a running backup or restore (relaxed atomics), read by progress bars, logs
//! and the metrics endpoint while the engine updates them.

use std::sync::atomic::AtomicU64;

/// What a running backup or restore has done so far. A backup counts offsets (records and
/// gaps) against `offsets_total` (0 in continuous mode); a restore counts records against
/// `records_total`. Counters a kind does not use stay 0.
#[derive(Debug, Default)]
pub struct LiveProgress {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    /// Records and bytes to restore (restores).
    pub records_total: AtomicU64,
    pub bytes_total: AtomicU64,
    /// Offsets passed (records and gaps), and the total to pass (backups).
    pub offsets_done: AtomicU64,
    pub offsets_total: AtomicU64,
    pub partitions_done: AtomicU64,
    pub partitions_total: AtomicU64,
}

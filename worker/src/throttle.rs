//! Records/s and bytes/s limits: the one arithmetic behind `rate_limit_records_per_sec` and
//! `rate_limit_bytes_per_sec` of backups and restores. Work done since a start is due at
//! `done / rate` seconds; a caller ahead of that sleeps (in short slices, so a stop is seen).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest single sleep, so a stop is noticed quickly.
const SLICE: Duration = Duration::from_millis(100);

/// Rates measured from the moment the throttle was made. A rate of zero is no limit.
#[derive(Debug, Clone)]
pub struct Throttle {
    started: Instant,
    max_records: Option<u64>,
    max_bytes: Option<u64>,
}

impl Throttle {
    pub fn new(max_records: Option<u64>, max_bytes: Option<u64>) -> Self {
        Throttle {
            started: Instant::now(),
            max_records: max_records.filter(|r| *r > 0),
            max_bytes: max_bytes.filter(|r| *r > 0),
        }
    }

    /// Neither rate is limited: [`wait_for`](Self::wait_for) never sleeps.
    #[inline]
    pub fn is_unlimited(&self) -> bool {
        self.max_records.is_none() && self.max_bytes.is_none()
    }

    /// Sleeps until `records` and `bytes` (counted since the start) are within the rates, or
    /// `stop` is set.
    #[inline]
    pub fn wait_for(&self, records: u64, bytes: u64, stop: &AtomicBool) {
        if self.is_unlimited() {
            return;
        }
        self.sleep_until_due(records, bytes, stop);
    }

    fn sleep_until_due(&self, records: u64, bytes: u64, stop: &AtomicBool) {
        let due = |done: u64, rate: Option<u64>| match rate {
            Some(rate) => Duration::from_secs_f64(done as f64 / rate as f64),
            None => Duration::ZERO,
        };
        let wanted = due(records, self.max_records).max(due(bytes, self.max_bytes));
        let mut elapsed = self.started.elapsed();
        while wanted > elapsed && !stop.load(Ordering::Relaxed) {
            std::thread::sleep((wanted - elapsed).min(SLICE));
            elapsed = self.started.elapsed();
        }
    }
}

/// A [`Throttle`] shared by several threads, which count what they send into it.
#[derive(Debug)]
pub struct SharedThrottle {
    throttle: Throttle,
    records: AtomicU64,
    bytes: AtomicU64,
}

impl SharedThrottle {
    pub fn new(max_records: Option<u64>, max_bytes: Option<u64>) -> Self {
        SharedThrottle {
            throttle: Throttle::new(max_records, max_bytes),
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    /// Accounts for `records`/`bytes` about to be sent and sleeps until the rates allow what
    /// was sent before them.
    #[inline]
    pub fn wait(&self, records: u64, bytes: u64, stop: &AtomicBool) {
        if self.throttle.is_unlimited() {
            return;
        }
        let r = self.records.fetch_add(records, Ordering::Relaxed);
        let b = self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.throttle.sleep_until_due(r, b, stop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limiter_spreads_records_over_time() {
        let l = SharedThrottle::new(Some(1000), None);
        let stop = AtomicBool::new(false);
        let t = Instant::now();
        for _ in 0..4 {
            l.wait(100, 0, &stop);
        }
        // 300 records were due before the 4th batch: 0.3 s at 1000/s
        assert!(
            t.elapsed() >= Duration::from_millis(290),
            "{:?}",
            t.elapsed()
        );
        let free = SharedThrottle::new(None, None);
        let t = Instant::now();
        free.wait(1_000_000, 1 << 30, &stop);
        assert!(t.elapsed() < Duration::from_millis(50));
    }

    #[test]
    fn a_throttle_waits_until_the_work_done_is_due() {
        let stop = AtomicBool::new(false);
        let t = Instant::now();
        // 2,000 bytes at 10,000 bytes/s are due after 0.2 s; records are not limited.
        Throttle::new(Some(0), Some(10_000)).wait_for(1_000_000, 2_000, &stop);
        assert!(
            t.elapsed() >= Duration::from_millis(190),
            "{:?}",
            t.elapsed()
        );
        // A stop ends the wait at once.
        stop.store(true, Ordering::Relaxed);
        let t = Instant::now();
        Throttle::new(Some(1), None).wait_for(100, 0, &stop);
        assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
    }
}

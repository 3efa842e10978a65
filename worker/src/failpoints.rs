//! Crash points for the crash-and-resume tests, compiled in only with the `failpoints` cargo
//! feature (which the tests crate turns on for the binary it runs). Without it every point is an
//! empty inline function: the release binary and the image neither read the environment nor can
//! abort here.
//!
//! With the feature, `TIDEMARK_CRASH_AT=<point>:<n>` makes the process abort (no cleanup, as
//! `kill -9` would) the n-th time it reaches `<point>`. Backup: `record` (after a record is added
//! to an open segment), `segment-upload` (half of a segment's bytes written, as a store without
//! atomic writes could leave it), `segment-stored`, `checkpoint`, `before-manifest`,
//! `after-manifest`. Restore: `restore-record` (a record handed to the producer),
//! `restore-checkpoint` (a checkpoint written), `restore-before-mapping`,
//! `restore-after-mapping`. Unset, a point costs one relaxed load.
//!
//! This module uses nothing but `std`, so a test can compile it on its own, with and without
//! the feature, and look at what each build contains.

/// Whether this is the time `point` is to crash.
#[cfg(feature = "failpoints")]
pub fn due(point: &str) -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PLAN: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let plan = PLAN.get_or_init(|| {
        let v = std::env::var("TIDEMARK_CRASH_AT").ok()?;
        let (name, n) = v.split_once(':').unwrap_or((v.as_str(), "1"));
        Some((name.to_string(), n.parse().ok()?))
    });
    match plan {
        Some((name, n)) if name == point => HITS.fetch_add(1, Ordering::Relaxed) + 1 == *n,
        _ => false,
    }
}

/// Aborts the process, saying where.
#[cfg(feature = "failpoints")]
pub fn abort(at: &str) -> ! {
    eprintln!("TIDEMARK_CRASH_AT: aborting {at}");
    std::process::abort()
}

/// Aborts the process if this is the time `point` is to crash.
#[cfg(feature = "failpoints")]
pub fn crash_at(point: &str) {
    if due(point) {
        abort(&format!("at {point}"));
    }
}

/// Without the `failpoints` feature: never.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn crash_at(_point: &str) {}

//! Restore drills: prove a backup restorable by restoring it (its whole incremental chain) into
//! scratch topics under a prefix, reading every record back and comparing it with the backup,
//! committing the translated consumer offsets to scratch groups and reading them back, then
//! deleting the scratch topics and groups again, also after a failure.
//!
//! - [`config`]: `tidemark drill --config FILE` (the restore configuration's layout with a
//!   `drill:` section) into a [`DrillTask`](crate::task::DrillTask).
//! - [`engine`]: the drill's phases ([`run_drill`]).
//! - [`digest`]: per-partition counts and digests, and their comparison.
//! - [`readback`]: reading scratch partitions back until they go quiet.
//! - [`report`]: the full report, its compact result and its text box.

pub mod config;
pub mod digest;
pub mod engine;
pub mod readback;
pub mod report;

pub use engine::run_drill;
pub use report::DrillReport;

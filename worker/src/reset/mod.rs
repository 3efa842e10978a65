//! Offset reset: Kafka's `kafka-consumer-groups.sh --reset-offsets`, rule for rule, for many
//! groups at once, with a plan, a dry run and a safety snapshot before any change.
//!
//! - [`spec`], [`csv`]: the user's reset parameters and Kafka's reset CSV.
//! - [`lookup`]: offsets for a point in time, checked against the records.
//! - [`plan`]: what each partition moves to (pure, with Kafka's clamping and warnings).
//! - [`engine`]: reads what a plan needs from the cluster, snapshots, commits with retries.
//! - [`render`]: the plan table and the boxed report; [`script`]: a kafka-consumer-groups script.

pub mod csv;
pub mod engine;
pub mod lookup;
pub mod plan;
pub mod render;
pub mod script;
pub mod spec;

pub use engine::{
    dry_run_report, execute, prepare, ResetReport, ResetRequest, ResetStatus, SafetySnapshot,
};
pub use plan::{Action, GroupPlan, PartitionPlan, ResetPlan, Strategy};

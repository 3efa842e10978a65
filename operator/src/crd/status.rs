//! Status vocabulary shared by every kind: phases and Kubernetes-style conditions that kstatus
//! (Flux) and Argo CD understand.

use serde::{Deserialize, Serialize};

/// Lifecycle of one run; a KafkaBackup with a schedule is `Scheduled` (waiting for its next
/// run) or `Suspended` (its schedule paused) between runs; a run with `spec.approval: Manual`
/// is `AwaitingApproval` while its plan waits for a person.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum Phase {
    Pending,
    Running,
    Completed,
    Failed,
    Scheduled,
    Suspended,
    AwaitingApproval,
}

/// A Kubernetes-style condition (`Ready`, `Reconciling`, `Stalled`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// What every kind's status says about its current run: which run, its phase, its worker Job,
/// when it started and ended, and the conditions. Flattened into each kind's status, next to
/// the kind's own results.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunStatus {
    /// Pending, Running, Completed or Failed (a scheduled KafkaBackup: Scheduled, Suspended or
    /// Running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The run this status describes, `g<generation>-r<run annotation>` (e.g. `g2-r0`): each
    /// run executes once; a new spec or a bumped `tidemark.dev/run` annotation is a new run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// The worker Job of the current run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// When the current run's Job was created (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When the current run ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// `Ready`, plus kstatus' `Reconciling` and `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

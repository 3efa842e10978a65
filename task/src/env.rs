//! Environment variables the operator sets on a worker Job and the worker reads.

/// The operator sets it to the Job's name: the backup id shared by every shard and retry of a
/// run.
pub const ENV_BACKUP_ID: &str = "TIDEMARK_BACKUP_ID";
/// Kubernetes' index of an Indexed Job's pod.
pub const ENV_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";
/// Listen address of the worker's metrics endpoint (`host:port`); unset or empty: no endpoint.
pub const ENV_METRICS_ADDR: &str = "TIDEMARK_METRICS_ADDR";

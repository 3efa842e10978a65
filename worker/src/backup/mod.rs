//! Backups: the segment object format, topic selection, and the engine that copies records
//! into storage and back.

pub mod age;
pub mod config;
pub mod engine;
pub mod format;
pub mod lz4;
pub mod manifest;
pub mod read;
pub mod retention;
pub mod select;

/// Environment variable the operator sets to the Job's name: the backup id shared by every
/// shard and retry of a run.
pub const ENV_BACKUP_ID: &str = "TIDEMARK_BACKUP_ID";
/// Kubernetes' index of an Indexed Job's pod.
pub const ENV_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";

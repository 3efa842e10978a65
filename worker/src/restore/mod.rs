//! Restores: a backup's records written back to a cluster exactly once, with the exact offset
//! mapping that puts consumer groups back where they were (three-phase restore).
//!
//! - [`config`]: the kafka-backup restore configuration file.
//! - [`configs`]: the topic configs a restore creates topics with, checked before it creates any.
//! - [`plan`]: what a restore selects from a backup (topics, partitions, PITR window, mappings)
//!   and what the target must look like; `validate-restore`'s report.
//! - [`engine`]: producing, checkpointing and resuming exactly once.
//! - [`mapping`]: the source -> target offset mapping, as runs, and its translation rule.
//! - [`groups`]: consumer-group strategies and phase three (offsets translated and committed).
//! - The `restore` verbs are in [`crate::cli`], the use cases in [`crate::service::restore`].

pub mod config;
pub mod configs;
pub mod engine;
pub mod groups;
pub mod mapping;
pub mod plan;

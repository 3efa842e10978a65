//! Tidemark worker library: Kafka and storage access and the offset safety tools behind the
//! `tidemark` CLI. The operator runs this same code inside Kubernetes Jobs.

pub mod backup;
pub mod cli;
pub mod configmap;
pub mod crypto;
pub mod drill;
pub mod error;
pub mod failpoints;
pub mod groups;
pub mod kafka;
pub mod kmap;
pub mod lease;
pub mod limits;
pub mod malloc;
pub mod metrics;
pub mod plan;
pub mod progress;
pub mod report;
pub mod reset;
pub mod restore;
pub mod rollback;
pub mod run;
pub mod service;
pub mod snapshot;
pub mod storage;
pub mod task;
pub mod throttle;
#[cfg(test)]
mod trace_capture;

pub use error::{Error, Result};

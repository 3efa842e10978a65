//! Tidemark worker library: Kafka and storage access and the offset safety tools behind the
//! `tidemark` CLI. The operator runs this same code inside Kubernetes Jobs.

pub mod error;
pub mod kafka;
pub mod storage;

pub use error::{Error, Result};

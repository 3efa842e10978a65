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
pub mod rewrap;
pub mod select;

pub use tidemark_task::env::{ENV_BACKUP_ID, ENV_COMPLETION_INDEX};

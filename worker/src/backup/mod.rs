//! Backups: the segment object format, topic selection, and the engine that copies records
//! into storage and back.

pub mod config;
pub mod engine;
pub mod format;
pub mod lz4;
pub mod manifest;
pub mod read;
pub mod select;

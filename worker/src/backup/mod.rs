//! Backups: the segment object format, topic selection, and the engine that copies records
//! into storage and back.

pub mod format;
pub mod select;
pub mod cli;
pub mod config;
pub mod engine;
pub mod manifest;
pub mod read;

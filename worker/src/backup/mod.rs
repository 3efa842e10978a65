//! Backups: the segment object format, topic selection, and the engine that copies records
//! into storage and back.

pub mod format;
pub mod select;

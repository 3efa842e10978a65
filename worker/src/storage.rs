//! Storage locations (PLACEHOLDER: signatures only; being implemented).

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::error::{Error, Result};

/// Options for cloud locations that a URL cannot carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageOptions {
    pub s3_region: Option<String>,
    pub s3_endpoint: Option<String>,
    pub s3_path_style: bool,
    pub allow_http: bool,
}

/// One listed object, with its key relative to the location's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
}

/// A storage location: local directory, file://, s3://, gs:// or az://.
#[derive(Debug, Clone)]
pub struct Storage {
    display: String,
}

impl Storage {
    /// Opens a location from `--path`.
    pub fn open(location: &str, options: &StorageOptions) -> Result<Self> {
        let _ = options;
        Err(Error::invalid(format!("unsupported location {location}")))
    }
    /// The location as the user gave it (no credentials).
    pub fn display(&self) -> &str {
        &self.display
    }
    /// Reads an object; `Ok(None)` when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let _ = key;
        Ok(None)
    }
    /// Writes an object atomically (readers see the old or the new content, never a torn one).
    pub async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let _ = (key, data);
        Ok(())
    }
    /// Deletes an object; `Ok(false)` when it did not exist.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let _ = key;
        Ok(false)
    }
    /// Lists objects under `prefix` (recursively), keys relative to the root.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let _ = prefix;
        Ok(vec![])
    }
}

//! Where a plan lives: a local file (the CLI's `--plan-out` / `--approved-plan`), or a key of a
//! task's storage location (`planOut` / `approvedPlan.key`). A stored plan is created once: a
//! planning run that finds its key taken keeps what is there and reports that plan's hash.

use std::path::{Path, PathBuf};

use super::{check_hash, plan_hash, PlanDocument, PlanKind};
use crate::error::{Error, Result};
use crate::storage::{open_location, Storage};
use crate::task::StorageTarget;

/// The largest plan document read (a restore of many thousands of partitions stays far below).
pub const MAX_PLAN_BYTES: usize = 64 * 1024 * 1024;

/// A plan's place.
#[derive(Debug, Clone)]
pub enum PlanLocation {
    File(PathBuf),
    Key { storage: Storage, key: String },
}

/// A plan as read or written: the document, its hash and its key (or file name).
#[derive(Debug, Clone)]
pub struct StoredPlan {
    pub doc: PlanDocument,
    pub hash: String,
    pub key: String,
}

impl PlanLocation {
    /// `key` of a task's storage; `field` names the task field in errors. A ConfigMap holds
    /// offset snapshots only, so a plan needs a storage location.
    pub fn in_task_storage(target: &StorageTarget, key: &str, field: &str) -> Result<Self> {
        match target {
            StorageTarget::ConfigMap { namespace, name } => Err(Error::invalid(format!(
                "task field '{field}': the plan is stored in the task's storage, and a ConfigMap ({namespace}/{name}) holds offset snapshots only; use a storage location (pvc, s3, azure, gcs)"
            ))),
            StorageTarget::Location { .. } => Ok(PlanLocation::Key {
                storage: open_location(target)?,
                key: key.to_string(),
            }),
        }
    }

    /// How messages name it.
    pub fn describe(&self) -> String {
        match self {
            PlanLocation::File(p) => format!("'{}'", p.display()),
            PlanLocation::Key { storage, key } => format!("'{key}' in {}", storage.display()),
        }
    }

    /// What a result names: the file or the key.
    pub fn key(&self) -> String {
        match self {
            PlanLocation::File(p) => p.display().to_string(),
            PlanLocation::Key { key, .. } => key.clone(),
        }
    }

    async fn read(&self) -> Result<Option<Vec<u8>>> {
        match self {
            PlanLocation::File(p) => {
                if !p.exists() {
                    return Ok(None);
                }
                crate::limits::read_limited(p, MAX_PLAN_BYTES).map(Some)
            }
            PlanLocation::Key { storage, key } => Ok(storage.get(key).await?.map(|b| b.to_vec())),
        }
    }

    /// Writes `doc`: a file is replaced (atomically); a storage key is created once, and a key
    /// already taken keeps its plan, which is returned instead.
    pub async fn write(&self, doc: &PlanDocument) -> Result<StoredPlan> {
        let bytes = doc.to_bytes()?;
        match self {
            PlanLocation::File(p) => write_file_atomic(p, &bytes)?,
            PlanLocation::Key { storage, key } => {
                if let Some(existing) = storage.get(key).await? {
                    tracing::info!(key = %key, "the plan exists: an earlier run made it; keeping it");
                    let doc = PlanDocument::parse(&existing, key, doc.kind)?;
                    return Ok(StoredPlan {
                        hash: plan_hash(&existing),
                        doc,
                        key: key.clone(),
                    });
                }
                storage.put_once(key, bytes.clone().into()).await?;
            }
        }
        Ok(StoredPlan {
            hash: plan_hash(&bytes),
            doc: doc.clone(),
            key: self.key(),
        })
    }

    /// Reads the approved plan: missing, or not of hash `approved` (when given), is
    /// [`Error::PlanChanged`]; then it is parsed as a `kind` plan.
    pub async fn read_approved(
        &self,
        approved: Option<&str>,
        kind: PlanKind,
    ) -> Result<StoredPlan> {
        let Some(bytes) = self.read().await? else {
            return Err(Error::PlanChanged(format!(
                "the approved plan {} does not exist; nothing was changed. Plan again and approve the new plan",
                self.describe()
            )));
        };
        if let Some(h) = approved {
            check_hash(&bytes, h, &self.describe())?;
        }
        Ok(StoredPlan {
            doc: PlanDocument::parse(&bytes, &self.key(), kind)?,
            hash: plan_hash(&bytes),
            key: self.key(),
        })
    }
}

/// Writes `data` to `path` through a temporary file in the same directory, fsynced, then
/// renamed over it.
fn write_file_atomic(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid(format!("'{}' is not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(data).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

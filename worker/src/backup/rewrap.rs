//! Key rotation: wrapping the data keys of encrypted backups (and of sealed snapshots) under the
//! current key-encryption key. A backup's segments are never rewritten: only its small key
//! object changes. A snapshot carries its data key in its envelope, so it is sealed again.

use serde::Serialize;

use super::manifest::BACKUPS_DIR;
use crate::error::{Error, Result};
use crate::storage::{Rewrap, Storage};

/// What a re-wrap did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RewrapReport {
    /// The key that now wraps them.
    pub key_id: String,
    pub rewrapped: Vec<Rewrapped>,
    /// Backups (and snapshots) already wrapped by that key.
    pub current: Vec<String>,
    /// Backups named that are stored in the clear.
    pub clear: Vec<String>,
}

/// One data key wrapped anew.
#[derive(Debug, Clone, Serialize)]
pub struct Rewrapped {
    /// The backup id, or the snapshot's key.
    pub object: String,
    pub from: String,
    pub to: String,
}

/// Re-wraps the data keys of `ids` (with `all`: of every encrypted backup, and every sealed
/// snapshot) under the storage handle's current key. The old keys must still be available.
pub async fn rewrap(storage: &Storage, ids: &[String], all: bool) -> Result<RewrapReport> {
    let vault = storage
        .vault()
        .ok_or_else(|| Error::invalid("re-wrapping needs the keys"))?;
    let mut report = RewrapReport {
        key_id: vault.key_id(),
        ..RewrapReport::default()
    };
    let ids: Vec<String> = if all {
        encrypted_backups(storage).await?
    } else {
        ids.to_vec()
    };
    for id in &ids {
        crate::snapshot::validate_id(id)?;
        if storage
            .list(&format!("{BACKUPS_DIR}/{id}/"))
            .await?
            .is_empty()
        {
            return Err(Error::BackupNotFound {
                id: id.clone(),
                location: storage.display().to_string(),
            });
        }
        match storage.rewrap_backup(id).await? {
            Rewrap::Clear => report.clear.push(id.clone()),
            Rewrap::Current(_) => report.current.push(id.clone()),
            Rewrap::Rewrapped { from, to } => {
                tracing::info!(backup_id = %id, from = %from, to = %to, "data key re-wrapped");
                report.rewrapped.push(Rewrapped {
                    object: id.clone(),
                    from,
                    to,
                });
            }
        }
    }
    if all {
        rewrap_snapshots(storage, &mut report).await?;
    }
    Ok(report)
}

/// Ids of the backups in `storage` that have a key object.
async fn encrypted_backups(storage: &Storage) -> Result<Vec<String>> {
    Ok(storage
        .list(&format!("{BACKUPS_DIR}/"))
        .await?
        .into_iter()
        .filter_map(|o| {
            let rest = o.key.strip_prefix(&format!("{BACKUPS_DIR}/"))?;
            let id = rest.strip_suffix("/encryption.json")?;
            (!id.contains('/')).then(|| id.to_string())
        })
        .collect())
}

/// Seals again, under the current key, every snapshot that carries a data key of its own
/// wrapped by another key.
async fn rewrap_snapshots(storage: &Storage, report: &mut RewrapReport) -> Result<()> {
    let mut keys: Vec<String> = storage
        .list("snapshots/")
        .await?
        .into_iter()
        .map(|o| o.key)
        .collect();
    keys.extend(
        storage
            .list_folder("")
            .await?
            .into_iter()
            .map(|o| o.key)
            .filter(|k| k.ends_with(".json")),
    );
    for key in keys {
        if let Some(from) = storage.rewrap_object(&key).await? {
            report.rewrapped.push(Rewrapped {
                object: key,
                from,
                to: report.key_id.clone(),
            });
        }
    }
    Ok(())
}

//! Before the records of an encrypted backup are written anywhere, every segment the restore
//! reads is opened once: a segment altered, swapped for another, replayed from another backup,
//! cut short or missing stops the restore before a topic is created or a record sent. A backup
//! stored in the clear is not read twice (its checksums are checked as its segments are sent).

use std::collections::BTreeSet;

use futures::{StreamExt, TryStreamExt};

use crate::error::{Error, Result};
use crate::restore::plan::RestorePlan;
use crate::storage::Storage;

/// Segments opened at once.
const AT_ONCE: usize = 4;

/// Opens every segment of `plan` that belongs to an encrypted backup; the first that does not
/// authenticate (or is missing) is the error, as is an encrypted backup read without keys.
pub async fn authenticate_segments(storage: &Storage, plan: &RestorePlan) -> Result<u64> {
    let mut encrypted = BTreeSet::new();
    for link in &plan.links {
        if let Some(record) = storage.backup_key_record(link).await? {
            if storage.vault().is_none() {
                return Err(Error::invalid(format!(
                    "backup '{link}' in {} is encrypted with key '{}'; give the key with --encryption-key-file or --kms-key-id (storage.encryption, spec.encryption)",
                    storage.display(),
                    record.key_id()
                )));
            }
            encrypted.insert(link.as_str());
        }
    }
    if encrypted.is_empty() {
        return Ok(0);
    }
    let keys: Vec<&str> = plan
        .units
        .iter()
        .flat_map(|u| u.segments.iter())
        .filter(|s| {
            s.key
                .strip_prefix("backups/")
                .and_then(|rest| rest.split('/').next())
                .is_some_and(|id| encrypted.contains(id))
        })
        .map(|s| s.key.as_str())
        .collect();
    let count = keys.len() as u64;
    futures::stream::iter(keys)
        .map(|key| async move {
            match storage.get(key).await? {
                Some(_) => Ok(()),
                None => Err(Error::Tampered {
                    object: format!("'{key}' in {}", storage.display()),
                    reason: "the segment is missing: the manifest lists it".into(),
                }),
            }
        })
        .buffer_unordered(AT_ONCE)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(count)
}

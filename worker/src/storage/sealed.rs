//! Encryption on a storage handle (see [`crate::crypto`]): objects are sealed on their way out
//! and opened on their way in, by key ([`crate::crypto::sealing`]); manifests and checkpoints of
//! an encrypted backup carry a MAC. The data key of each backup is read once from its key object
//! and kept by the handle's [`Vault`].

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::locations::normalize_key;
use super::Storage;
use crate::crypto::envelope::{self, KeySlot};
use crate::crypto::{
    backup_key_context, backup_key_object, sealing, DataKey, Sealing, Vault, WrappedKey,
    KEY_PROVIDER_AWS_KMS,
};
use crate::error::{Error, Result};

/// `format` of a backup's key object.
pub const KEY_RECORD_FORMAT: &str = "tidemark-encryption/1";
/// The one algorithm objects are sealed with.
pub const ALGORITHM: &str = "AES-256-GCM";
/// The MAC of manifests and checkpoints.
pub const MAC_ALGORITHM: &str = "HMAC-SHA256";
/// Objects above this size are sealed and opened on a blocking thread.
const BLOCKING_ABOVE: usize = 256 * 1024;

/// The content of an object on its way to storage.
enum Outgoing {
    /// Shared with others: sealed into a new buffer.
    Shared(Bytes),
    /// Given up by its owner: sealed where it is.
    Owned(Vec<u8>),
}

impl Outgoing {
    fn len(&self) -> usize {
        match self {
            Outgoing::Shared(b) => b.len(),
            Outgoing::Owned(v) => v.len(),
        }
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Outgoing::Shared(b) => b,
            Outgoing::Owned(v) => Bytes::from(v),
        }
    }
}

/// `backups/<id>/encryption.json`: the backup's data key, wrapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub format: String,
    pub backup_id: String,
    pub algorithm: String,
    pub created_at: DateTime<Utc>,
    /// When the data key was last wrapped under another key-encryption key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrapped_at: Option<DateTime<Utc>>,
    pub data_key: WrappedKey,
}

impl KeyRecord {
    /// The key-encryption key as reports show it: a key file's id, or `aws-kms:<arn>`.
    pub fn key_id(&self) -> String {
        shown_key_id(&self.data_key)
    }
}

/// How reports name the key that wraps `w`.
pub fn shown_key_id(w: &WrappedKey) -> String {
    if w.provider == KEY_PROVIDER_AWS_KMS {
        format!("{KEY_PROVIDER_AWS_KMS}:{}", w.key_id)
    } else {
        w.key_id.clone()
    }
}

/// What [`Storage::rewrap_backup`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrap {
    /// The backup is stored in the clear.
    Clear,
    /// Its data key was already wrapped by the current key.
    Current(String),
    /// Its data key is now wrapped by `to` instead of `from`.
    Rewrapped { from: String, to: String },
}

/// The `authentication` member of a MACed document.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Authentication {
    algorithm: String,
    mac: String,
}

/// A backup's documents that carry a MAC: `backups/<id>/manifest/…` and `…/checkpoint/…`.
fn authenticated_document(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("backups/")?;
    let (id, rest) = rest.split_once('/')?;
    (rest.starts_with("manifest/") || rest.starts_with("checkpoint/")).then_some(id)
}

impl Storage {
    /// The encryption of this handle, if the location is encrypted.
    pub fn vault(&self) -> Option<&Arc<Vault>> {
        self.vault.as_ref()
    }

    /// An object's bytes as stored: a sealed object is not opened, a MAC not checked.
    pub async fn get_stored(&self, key: &str) -> Result<Option<Bytes>> {
        self.get_raw(key).await
    }

    /// `'key' in <location>`, for messages.
    fn object(&self, key: &str) -> String {
        format!("'{key}' in {}", self.display)
    }

    fn tampered(&self, key: &str, reason: impl Into<String>) -> Error {
        Error::Tampered {
            object: self.object(key),
            reason: reason.into(),
        }
    }

    /// What is stored for `data` written under `key`: sealed, MACed, or as it is.
    pub(super) async fn sealed(&self, key: &str, data: Bytes) -> Result<Bytes> {
        self.sealed_from(key, Outgoing::Shared(data)).await
    }

    /// [`sealed`](Self::sealed) of a buffer its owner gives up: sealed where it is, so no
    /// second buffer of its size is made (the returned bytes are that buffer).
    pub(super) async fn sealed_owned(&self, key: &str, data: Vec<u8>) -> Result<Bytes> {
        self.sealed_from(key, Outgoing::Owned(data)).await
    }

    async fn sealed_from(&self, key: &str, data: Outgoing) -> Result<Bytes> {
        let Some(vault) = self.vault.clone() else {
            return Ok(data.into_bytes());
        };
        let key = normalize_key(key, false)?;
        let (slot, dek) = match sealing(&key) {
            Sealing::Plain => {
                let data = data.into_bytes();
                return match authenticated_document(&key) {
                    Some(id) => self.with_mac(&vault, &key, id, data).await,
                    None => Ok(data),
                };
            }
            Sealing::Backup(id) => match self.backup_key(&vault, &id).await? {
                Some(dek) => (KeySlot::Backup, dek),
                None => own_key(&vault, &key).await?,
            },
            Sealing::Own => own_key(&vault, &key).await?,
        };
        let len = data.len();
        let seal = move || match data {
            Outgoing::Shared(data) => envelope::seal(&key, &slot, &dek, &data),
            Outgoing::Owned(data) => envelope::seal_owned(&key, &slot, &dek, data),
        };
        let sealed = if len > BLOCKING_ABOVE {
            tokio::task::spawn_blocking(seal)
                .await
                .map_err(|e| Error::invalid(format!("sealing an object did not complete: {e}")))??
        } else {
            seal()?
        };
        Ok(Bytes::from(sealed))
    }

    /// The content of `data` read from `key`: opened when sealed, its MAC checked when it is a
    /// document of an encrypted backup.
    pub(super) async fn opened(&self, key: &str, data: Bytes) -> Result<Bytes> {
        let key = normalize_key(key, false)?;
        if !envelope::is_sealed(&data) {
            return self.opened_clear(&key, data).await;
        }
        let Some(vault) = self.vault.clone() else {
            return Err(self.needs_key(&key, &data).await);
        };
        let env = envelope::parse(&data).map_err(|why| self.tampered(&key, why))?;
        let dek = match &env.slot {
            KeySlot::Backup => {
                let Sealing::Backup(id) = sealing(&key) else {
                    return Err(self.tampered(
                        &key,
                        "it is sealed with a backup's data key but is not part of a backup: it was moved here",
                    ));
                };
                self.backup_key(&vault, &id).await?.ok_or_else(|| {
                    self.tampered(
                        &key,
                        format!(
                            "it is sealed with the data key of backup '{id}', whose key object '{}' is missing",
                            backup_key_object(&id)
                        ),
                    )
                })?
            }
            KeySlot::Own(w) => Arc::new(vault.unwrap(w, &key, &self.object(&key)).await?),
        };
        let mut buf: Vec<u8> = match data.try_into_mut() {
            Ok(m) => m.into(),
            Err(shared) => shared.to_vec(),
        };
        let opened = if buf.len() > BLOCKING_ABOVE {
            let k = key.clone();
            tokio::task::spawn_blocking(move || {
                envelope::open_in_place(&k, &env, &dek, &mut buf).map(|()| buf)
            })
            .await
            .map_err(|e| Error::invalid(format!("opening an object did not complete: {e}")))?
        } else {
            envelope::open_in_place(&key, &env, &dek, &mut buf).map(|()| buf)
        };
        opened
            .map(Bytes::from)
            .map_err(|why| self.tampered(&key, why))
    }

    /// An object read in the clear: refused where its backup seals everything, its MAC checked
    /// when it is a document of an encrypted backup.
    async fn opened_clear(&self, key: &str, data: Bytes) -> Result<Bytes> {
        let Some(vault) = self.vault.clone() else {
            return Ok(data);
        };
        if let Some(id) = authenticated_document(key) {
            return self.checked_mac(&vault, key, id, data).await;
        }
        if let Sealing::Backup(id) = sealing(key) {
            // A missing key still tells that the backup is encrypted.
            let encrypted = match self.backup_key(&vault, &id).await {
                Ok(k) => k.is_some(),
                Err(_) => true,
            };
            if encrypted {
                return Err(self.tampered(
                    key,
                    format!("it is stored in the clear, but backup '{id}' is encrypted and seals every such object: it was replaced"),
                ));
            }
        }
        Ok(data)
    }

    /// The error for a sealed object read without any key configured, naming its key.
    async fn needs_key(&self, key: &str, data: &[u8]) -> Error {
        let named = match envelope::parse(data).map(|e| e.slot) {
            Ok(KeySlot::Own(w)) => Some(shown_key_id(&w)),
            Ok(KeySlot::Backup) => match sealing(key) {
                Sealing::Backup(id) => self
                    .backup_key_record(&id)
                    .await
                    .ok()
                    .flatten()
                    .map(|r| r.key_id()),
                _ => None,
            },
            Err(_) => None,
        };
        let with = named
            .map(|k| format!(" with key '{k}'"))
            .unwrap_or_default();
        Error::invalid(format!(
            "{} is encrypted{with}; give the key with --encryption-key-file or --kms-key-id (spec.encryption)",
            self.object(key)
        ))
    }

    /// The data key of backup `id`: `None` when the backup is stored in the clear (it has no
    /// key object).
    async fn backup_key(&self, vault: &Vault, id: &str) -> Result<Option<Arc<DataKey>>> {
        if let Some(known) = vault.cached(id) {
            return Ok(known);
        }
        let Some(record) = self.backup_key_record(id).await? else {
            vault.remember(id, None);
            return Ok(None);
        };
        let key = Arc::new(self.unwrap_record(vault, &record).await?);
        vault.remember(id, Some(key.clone()));
        Ok(Some(key))
    }

    async fn unwrap_record(&self, vault: &Vault, record: &KeyRecord) -> Result<DataKey> {
        let object = backup_key_object(&record.backup_id);
        vault
            .unwrap(
                &record.data_key,
                &backup_key_context(&record.backup_id),
                &self.object(&object),
            )
            .await
    }

    /// Backup `id`'s key object, `None` for a backup stored in the clear.
    pub async fn backup_key_record(&self, id: &str) -> Result<Option<KeyRecord>> {
        let key = backup_key_object(id);
        let Some(data) = self.get_raw(&key).await? else {
            return Ok(None);
        };
        let record: KeyRecord = serde_json::from_slice(&data)
            .map_err(|e| Error::malformed_json("backup key object", &key, e))?;
        if record.format != KEY_RECORD_FORMAT || record.backup_id != id {
            return Err(self.tampered(
                &key,
                format!(
                    "it is not the key object of backup '{id}' (format '{}', backup '{}')",
                    record.format, record.backup_id
                ),
            ));
        }
        Ok(Some(record))
    }

    /// Makes (or, when another shard or an earlier attempt made it, reads) the data key of
    /// backup `id`, before anything of the backup is written. Returns the key id that wraps it,
    /// or `None` when the location is not encrypted or the backup was started in the clear
    /// (it is finished in the clear).
    pub async fn begin_backup_encryption(&self, id: &str) -> Result<Option<String>> {
        let Some(vault) = self.vault.clone() else {
            return Ok(None);
        };
        vault.forget(id);
        if let Some(record) = self.backup_key_record(id).await? {
            let key = self.unwrap_record(&vault, &record).await?;
            vault.remember(id, Some(Arc::new(key)));
            return Ok(Some(record.key_id()));
        }
        let started = self
            .list(&format!("backups/{id}/"))
            .await?
            .into_iter()
            .any(|o| {
                !o.key.starts_with(&format!("backups/{id}/lease/"))
                    && o.key != backup_key_object(id)
            });
        if started {
            // Another shard may have made the key object meanwhile.
            if let Some(record) = self.backup_key_record(id).await? {
                let key = self.unwrap_record(&vault, &record).await?;
                vault.remember(id, Some(Arc::new(key)));
                return Ok(Some(record.key_id()));
            }
            tracing::warn!(
                backup = id,
                "backup was started without encryption; it is finished without"
            );
            vault.remember(id, None);
            return Ok(None);
        }
        let (key, wrapped) = vault.new_data_key(&backup_key_context(id)).await?;
        let record = KeyRecord {
            format: KEY_RECORD_FORMAT.into(),
            backup_id: id.to_string(),
            algorithm: ALGORITHM.into(),
            created_at: Utc::now(),
            rewrapped_at: None,
            data_key: wrapped,
        };
        let json = serde_json::to_vec_pretty(&record)
            .map_err(|e| Error::encode("a backup key object", e))?;
        if self
            .put_new(&backup_key_object(id), Bytes::from(json))
            .await?
        {
            vault.remember(id, Some(Arc::new(key)));
            return Ok(Some(record.key_id()));
        }
        // Another shard made it first: use that one.
        let record = self.backup_key_record(id).await?.ok_or_else(|| {
            self.storage_error(format!(
                "'{}' was reported as existing but cannot be read back; run again",
                backup_key_object(id)
            ))
        })?;
        let key = self.unwrap_record(&vault, &record).await?;
        vault.remember(id, Some(Arc::new(key)));
        Ok(Some(record.key_id()))
    }

    /// Wraps backup `id`'s data key under the current key-encryption key, rewriting only its
    /// key object; the old key must still be available to unwrap it.
    pub async fn rewrap_backup(&self, id: &str) -> Result<Rewrap> {
        let vault = self.vault.clone().ok_or_else(|| {
            Error::invalid("re-wrapping needs the keys: give --encryption-key-file or --kms-key-id")
        })?;
        let Some(mut record) = self.backup_key_record(id).await? else {
            return Ok(Rewrap::Clear);
        };
        let from = record.key_id();
        if vault.is_current(&record.data_key) {
            return Ok(Rewrap::Current(from));
        }
        let key = self.unwrap_record(&vault, &record).await?;
        let wrapped = vault.wrap(&key, &backup_key_context(id)).await?;
        if wrapped.provider == record.data_key.provider && wrapped.key_id == record.data_key.key_id
        {
            return Ok(Rewrap::Current(from));
        }
        record.data_key = wrapped;
        record.rewrapped_at = Some(Utc::now());
        let json = serde_json::to_vec_pretty(&record)
            .map_err(|e| Error::encode("a backup key object", e))?;
        self.put(&backup_key_object(id), Bytes::from(json)).await?;
        vault.forget(id);
        Ok(Rewrap::Rewrapped {
            from,
            to: record.key_id(),
        })
    }

    /// Re-seals an object that carries its own data key (an offset snapshot, a plan) under the
    /// current key-encryption key, returning the key that wrapped it before; `None` when it is
    /// not sealed that way or already under the current key.
    pub async fn rewrap_object(&self, key: &str) -> Result<Option<String>> {
        let Some(vault) = self.vault.clone() else {
            return Ok(None);
        };
        let Some(raw) = self.get_raw(key).await? else {
            return Ok(None);
        };
        let from = match envelope::parse(&raw).map(|e| e.slot) {
            Ok(KeySlot::Own(w)) if !vault.is_current(&w) => shown_key_id(&w),
            _ => return Ok(None),
        };
        let content = self.opened(key, raw).await?;
        self.put(key, content).await?;
        Ok(Some(from))
    }

    /// `data` with an `authentication` member: HMAC-SHA256 over the document without it and
    /// its key, under a key derived from backup `id`'s data key. Documents of a backup in the
    /// clear are stored as they are.
    async fn with_mac(&self, vault: &Vault, key: &str, id: &str, data: Bytes) -> Result<Bytes> {
        let Some(dek) = self.backup_key(vault, id).await? else {
            return Ok(data);
        };
        let mut doc: serde_json::Value = serde_json::from_slice(&data)
            .map_err(|e| Error::malformed_json("document to authenticate", key, e))?;
        let Some(map) = doc.as_object_mut() else {
            return Err(Error::invalid(format!(
                "'{key}' is not a JSON object; it cannot carry a MAC"
            )));
        };
        map.remove("authentication");
        let mac = document_mac(&dek, key, &doc)?;
        if let Some(map) = doc.as_object_mut() {
            let auth = Authentication {
                algorithm: MAC_ALGORITHM.into(),
                mac,
            };
            map.insert(
                "authentication".into(),
                serde_json::to_value(auth).map_err(|e| Error::encode("a MAC", e))?,
            );
        }
        let out = serde_json::to_vec_pretty(&doc).map_err(|e| Error::encode("a document", e))?;
        Ok(Bytes::from(out))
    }

    /// Checks the MAC of a document of backup `id` read from `key`.
    async fn checked_mac(&self, vault: &Vault, key: &str, id: &str, data: Bytes) -> Result<Bytes> {
        let dek = match self.backup_key(vault, id).await {
            Ok(Some(dek)) => dek,
            Ok(None) => {
                // A backup in the clear: its documents carry no MAC.
                return Ok(data);
            }
            Err(Error::InvalidInput(why)) => {
                // The key is not available (rotated away, or shredded): the document is read
                // unverified, so listing and retention still work; its data cannot be read.
                tracing::debug!(key, reason = %why, "document read without checking its MAC");
                return Ok(data);
            }
            Err(e) => return Err(e),
        };
        let mut doc: serde_json::Value = serde_json::from_slice(&data)
            .map_err(|e| self.tampered(key, format!("it is not a JSON document: {e}")))?;
        let auth = doc
            .as_object_mut()
            .and_then(|m| m.remove("authentication"))
            .ok_or_else(|| {
                self.tampered(
                    key,
                    format!("it carries no MAC, but backup '{id}' is encrypted and authenticates its manifests and checkpoints"),
                )
            })?;
        let auth: Authentication = serde_json::from_value(auth).map_err(|e| {
            self.tampered(
                key,
                format!("its authentication member cannot be read: {e}"),
            )
        })?;
        if auth.algorithm != MAC_ALGORITHM {
            return Err(self.tampered(
                key,
                format!(
                    "its MAC algorithm '{}' is not {MAC_ALGORITHM}",
                    auth.algorithm
                ),
            ));
        }
        if !mac_matches(&dek, key, &doc, &auth.mac)? {
            return Err(self.tampered(
                key,
                "its MAC does not match its content: it was altered (segments added, removed or changed), cut short, or copied from another backup or shard",
            ));
        }
        Ok(data)
    }
}

/// A fresh data key of `key`'s own, wrapped for it.
async fn own_key(vault: &Vault, key: &str) -> Result<(KeySlot, Arc<DataKey>)> {
    let (dek, wrapped) = vault.new_data_key(key).await?;
    Ok((KeySlot::Own(wrapped), Arc::new(dek)))
}

/// The MAC key of backup documents: HKDF-SHA256 of the data key (no salt, info
/// `tidemark-document-mac/1`).
fn mac_key(dek: &DataKey) -> Result<ring::hmac::Key> {
    use ring::{hkdf, hmac};
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(dek.bytes());
    let info = [b"tidemark-document-mac/1".as_slice()];
    let okm = prk
        .expand(&info, hmac::HMAC_SHA256)
        .map_err(|_| Error::invalid("deriving a MAC key failed"))?;
    Ok(hmac::Key::from(okm))
}

/// What a document's MAC covers: `tidemark-document/1`, its key and its compact JSON (without
/// the `authentication` member), each after a zero byte.
fn mac_input(key: &str, doc: &serde_json::Value) -> Result<Vec<u8>> {
    let canonical = serde_json::to_vec(doc).map_err(|e| Error::encode("a document", e))?;
    let mut input = Vec::with_capacity(32 + key.len() + canonical.len());
    input.extend_from_slice(b"tidemark-document/1\0");
    input.extend_from_slice(key.as_bytes());
    input.push(0);
    input.extend_from_slice(&canonical);
    Ok(input)
}

/// HMAC-SHA256 (base64) of a document under `dek`'s MAC key.
fn document_mac(dek: &DataKey, key: &str, doc: &serde_json::Value) -> Result<String> {
    let tag = ring::hmac::sign(&mac_key(dek)?, &mac_input(key, doc)?);
    Ok(crate::crypto::encode_base64(tag.as_ref()))
}

/// Whether `mac` (base64) is the MAC of a document (compared in constant time).
fn mac_matches(dek: &DataKey, key: &str, doc: &serde_json::Value, mac: &str) -> Result<bool> {
    use base64::Engine;
    let Ok(tag) = base64::engine::general_purpose::STANDARD.decode(mac.as_bytes()) else {
        return Ok(false);
    };
    Ok(ring::hmac::verify(&mac_key(dek)?, &mac_input(key, doc)?, &tag).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageOptions;

    fn open(dir: &std::path::Path, keys: &std::path::Path) -> Storage {
        let options = StorageOptions {
            encryption: Some(tidemark_task::Encryption {
                key_file: Some(keys.display().to_string()),
                ..Default::default()
            }),
            ..StorageOptions::default()
        };
        Storage::open(&dir.join("store").display().to_string(), &options).expect("open")
    }

    fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().expect("dir");
        let keys = d.path().join("keys");
        std::fs::create_dir_all(&keys).expect("keys");
        std::fs::write(keys.join("k1"), [7u8; 32]).expect("key");
        (d, keys)
    }

    #[tokio::test]
    async fn shards_starting_together_share_one_data_key() {
        let (d, keys) = setup();
        let handles: Vec<Storage> = (0..4).map(|_| open(d.path(), &keys)).collect();
        let began =
            futures::future::join_all(handles.iter().map(|h| h.begin_backup_encryption("b1")))
                .await;
        for b in began {
            assert_eq!(b.expect("begin"), Some("k1".to_string()));
        }
        // What one shard seals, every other opens.
        let key = "backups/b1/topics/t/0/00000000000000000000.seg";
        handles[0]
            .put_once(key, Bytes::from_static(b"records"))
            .await
            .expect("put");
        for h in &handles[1..] {
            assert_eq!(
                h.get(key).await.expect("get"),
                Some(Bytes::from_static(b"records"))
            );
        }
        // A retry of the same create-once write is accepted though its sealed bytes differ.
        handles[1]
            .put_once(key, Bytes::from_static(b"records"))
            .await
            .expect("idempotent retry");
        let err = handles[2]
            .put_once(key, Bytes::from_static(b"other"))
            .await
            .expect_err("other content");
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
    }

    #[tokio::test]
    async fn a_backup_started_in_the_clear_is_finished_in_the_clear() {
        let (d, keys) = setup();
        let clear = Storage::open(
            &d.path().join("store").display().to_string(),
            &StorageOptions::default(),
        )
        .expect("open");
        clear
            .put(
                "backups/b1/checkpoint/00000-of-00001.json",
                Bytes::from_static(b"{}"),
            )
            .await
            .expect("checkpoint");
        let keyed = open(d.path(), &keys);
        assert_eq!(
            keyed.begin_backup_encryption("b1").await.expect("begin"),
            None
        );
        let key = "backups/b1/topics/t/0/00000000000000000000.seg";
        keyed
            .put_once(key, Bytes::from_static(b"x"))
            .await
            .expect("put");
        // Sealed under a data key of its own (the backup has none), so readable with the key only.
        let raw = keyed.get_stored(key).await.expect("raw").expect("exists");
        assert!(envelope::is_sealed(&raw));
        assert_eq!(
            keyed.get(key).await.expect("get"),
            Some(Bytes::from_static(b"x"))
        );
        assert!(keyed
            .backup_key_record("b1")
            .await
            .expect("record")
            .is_none());
    }

    #[tokio::test]
    async fn documents_of_an_encrypted_backup_need_their_mac() {
        let (d, keys) = setup();
        let s = open(d.path(), &keys);
        s.begin_backup_encryption("b1").await.expect("begin");
        let key = "backups/b1/manifest/00000-of-00001.json";
        s.put(key, Bytes::from_static(b"{\"format\":\"x\",\"n\":1}"))
            .await
            .expect("put");
        let stored: serde_json::Value =
            serde_json::from_slice(&s.get_stored(key).await.expect("raw").expect("exists"))
                .expect("json");
        assert_eq!(stored["authentication"]["algorithm"], MAC_ALGORITHM);
        assert_eq!(stored["n"], 1, "readable");
        s.get(key).await.expect("authenticates");
        // The same document under another shard's name, or without its MAC: refused.
        let raw = s.get_stored(key).await.expect("raw").expect("exists");
        let other = "backups/b1/manifest/00001-of-00002.json";
        std::fs::create_dir_all(d.path().join("store/backups/b1/manifest")).expect("dir");
        std::fs::write(d.path().join("store").join(other), &raw).expect("copy");
        let err = s.get(other).await.expect_err("moved");
        assert!(matches!(err, Error::Tampered { .. }), "{err}");
        std::fs::write(
            d.path().join("store").join(key),
            b"{\"format\":\"x\",\"n\":1}",
        )
        .expect("strip");
        let err = s.get(key).await.expect_err("no MAC");
        assert!(err.to_string().contains("carries no MAC"), "{err}");
    }
}

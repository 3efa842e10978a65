//! The key sources of one storage handle, and the data keys of the backups it has opened.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde::{Deserialize, Serialize};
use tidemark_task::Encryption;

use super::keyring::{Keyring, Unwrap};
use super::kms::KmsKeys;
use super::DataKey;
use crate::error::{Error, Result};

/// `provider` of a data key wrapped by a key file or Secret.
pub const KEY_PROVIDER_SECRET: &str = "secret";
/// `provider` of a data key wrapped by AWS KMS.
pub const KEY_PROVIDER_AWS_KMS: &str = "aws-kms";

/// A data key as stored: which key-encryption key wrapped it, and the wrapped bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// [`KEY_PROVIDER_SECRET`] or [`KEY_PROVIDER_AWS_KMS`].
    pub provider: String,
    /// The key file's id, or the KMS key's ARN.
    pub key_id: String,
    #[serde(with = "base64_bytes")]
    pub wrapped: Vec<u8>,
}

mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// What a storage handle encrypts with: its key sources, and the data keys of backups met so
/// far (`None`: the backup is stored in the clear).
pub struct Vault {
    settings: Encryption,
    keyring: Option<Keyring>,
    kms: tokio::sync::OnceCell<KmsKeys>,
    backups: Mutex<HashMap<String, Option<Arc<DataKey>>>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("keyring", &self.keyring)
            .field("kms_key_id", &self.settings.kms_key_id)
            .finish()
    }
}

impl Vault {
    /// Reads the key files `settings` names (a KMS client is made on first use).
    pub fn new(settings: &Encryption) -> Result<Vault> {
        settings
            .validate("encryption")
            .map_err(|e| Error::invalid(e.to_string()))?;
        let keyring = match &settings.key_file {
            Some(path) => Some(Keyring::load(Path::new(path), settings.key_id.as_deref())?),
            None => None,
        };
        Ok(Vault {
            settings: settings.clone(),
            keyring,
            kms: tokio::sync::OnceCell::new(),
            backups: Mutex::new(HashMap::new()),
        })
    }

    /// The key that wraps new data keys, as reports and status show it: the key file's id, or
    /// `aws-kms:<key>`.
    pub fn key_id(&self) -> String {
        match (&self.settings.kms_key_id, &self.keyring) {
            (Some(k), _) => format!("{KEY_PROVIDER_AWS_KMS}:{k}"),
            (None, Some(ring)) => ring.current().to_string(),
            (None, None) => String::new(),
        }
    }

    async fn kms(&self) -> Result<Option<&KmsKeys>> {
        match &self.settings.kms_key_id {
            Some(id) => Ok(Some(
                self.kms
                    .get_or_try_init(|| Box::pin(KmsKeys::connect(id)))
                    .await?,
            )),
            None => Ok(None),
        }
    }

    /// A fresh data key for `context` (a backup, or one object), wrapped by KMS when a KMS key
    /// is set, else by the key file's current key.
    pub async fn new_data_key(&self, context: &str) -> Result<(DataKey, WrappedKey)> {
        if let Some(kms) = self.kms().await? {
            // Boxed: the SDK's futures are deep, and every storage write may wait on one.
            let (dek, blob, arn) = Box::pin(kms.generate(context)).await?;
            return Ok((
                dek,
                WrappedKey {
                    provider: KEY_PROVIDER_AWS_KMS.into(),
                    key_id: arn,
                    wrapped: blob,
                },
            ));
        }
        let dek = DataKey::generate()?;
        let wrapped = self.wrap(&dek, context).await?;
        Ok((dek, wrapped))
    }

    /// Wraps an existing data key under the key new data keys use (a re-wrap).
    pub async fn wrap(&self, dek: &DataKey, context: &str) -> Result<WrappedKey> {
        if let Some(kms) = self.kms().await? {
            let (blob, arn) = Box::pin(kms.encrypt(dek, context)).await?;
            return Ok(WrappedKey {
                provider: KEY_PROVIDER_AWS_KMS.into(),
                key_id: arn,
                wrapped: blob,
            });
        }
        let ring = self
            .keyring
            .as_ref()
            .ok_or_else(|| Error::invalid("no encryption key is configured"))?;
        let (key_id, wrapped) = ring.wrap(dek, context)?;
        Ok(WrappedKey {
            provider: KEY_PROVIDER_SECRET.into(),
            key_id,
            wrapped,
        })
    }

    /// Whether `w` is wrapped by the key new data keys use (nothing to re-wrap).
    pub fn is_current(&self, w: &WrappedKey) -> bool {
        match (&self.settings.kms_key_id, &self.keyring) {
            // An alias cannot be told from the ARN without asking KMS: the re-wrap then
            // compares the ARN KMS reports.
            (Some(k), _) => {
                w.provider == KEY_PROVIDER_AWS_KMS
                    && (w.key_id == *k || w.key_id.ends_with(&format!(":key/{k}")))
            }
            (None, Some(ring)) => w.provider == KEY_PROVIDER_SECRET && w.key_id == ring.current(),
            (None, None) => false,
        }
    }

    /// Unwraps `w` for `context`; `object` names what is being opened (`'key' in location`).
    pub async fn unwrap(&self, w: &WrappedKey, context: &str, object: &str) -> Result<DataKey> {
        match w.provider.as_str() {
            KEY_PROVIDER_SECRET => {
                let Some(ring) = &self.keyring else {
                    return Err(Error::invalid(format!(
                        "{object} is encrypted with key '{}' from a key file; give that key with --encryption-key-file (encryption.secretRef)",
                        w.key_id
                    )));
                };
                match ring.unwrap(&w.key_id, &w.wrapped, context) {
                    Ok(dek) => Ok(dek),
                    Err(Unwrap::Missing) => Err(Error::invalid(format!(
                        "{object} is encrypted with key '{}', which the encryption key file does not hold (it holds {}); without that key the data cannot be read",
                        w.key_id,
                        ring.key_ids()
                    ))),
                    Err(Unwrap::Refused) => Err(Error::Tampered {
                        object: object.to_string(),
                        reason: format!(
                            "its data key does not unwrap under key '{}': the key file holds another key under that id, or the wrapped key was altered",
                            w.key_id
                        ),
                    }),
                }
            }
            KEY_PROVIDER_AWS_KMS => {
                if let Some(kms) = self.kms().await? {
                    return Box::pin(kms.decrypt(&w.key_id, &w.wrapped, context, object)).await;
                }
                let kms = Box::pin(KmsKeys::connect(&w.key_id)).await?;
                Box::pin(kms.decrypt(&w.key_id, &w.wrapped, context, object)).await
            }
            other => Err(Error::Tampered {
                object: object.to_string(),
                reason: format!(
                    "its data key names the key provider '{other}', which tidemark does not know"
                ),
            }),
        }
    }

    /// The data key of backup `id` when already looked up: `Some(None)` for a backup in the
    /// clear.
    pub(crate) fn cached(&self, id: &str) -> Option<Option<Arc<DataKey>>> {
        self.lock().get(id).cloned()
    }

    /// Remembers what backup `id` is encrypted with.
    pub(crate) fn remember(&self, id: &str, key: Option<Arc<DataKey>>) {
        self.lock().insert(id.to_string(), key);
    }

    /// Forgets backup `id` (it was deleted, or its key object replaced).
    pub(crate) fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<Arc<DataKey>>>> {
        match self.backups.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

/// Encodes bytes for JSON documents the way wrapped keys are.
pub fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

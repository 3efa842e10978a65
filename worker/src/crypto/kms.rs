//! AWS KMS as the source of data keys: `GenerateDataKey` makes a backup's data key, `Decrypt`
//! unwraps it, `Encrypt` wraps an existing data key under another KMS key (re-wrap). The
//! encryption context `{"tidemark": <context>}` binds a wrapped key to its backup or object.
//!
//! The client uses the standard AWS credential chain (environment, web identity — IRSA —,
//! profile, ECS and EC2 metadata) and region; `AWS_ENDPOINT_URL_KMS` / `AWS_ENDPOINT_URL`
//! point it at another endpoint.

use super::DataKey;
use crate::error::{Error, Result};

/// A KMS key (id, ARN, alias name or alias ARN) and a client to reach it.
#[derive(Debug)]
pub struct KmsKeys {
    key_id: String,
}

impl KmsKeys {
    /// A client for `key_id`; nothing is contacted yet.
    pub async fn connect(key_id: &str) -> Result<KmsKeys> {
        Ok(KmsKeys {
            key_id: key_id.to_string(),
        })
    }

    /// The key as configured.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// A fresh AES-256 data key: the plaintext, the ciphertext blob KMS can decrypt, and the
    /// key's ARN as KMS reports it (recorded, so that unwrapping names the exact key).
    pub async fn generate(&self, context: &str) -> Result<(DataKey, Vec<u8>, String)> {
        let _ = context;
        Err(Error::invalid(format!(
            "AWS KMS key '{}': KMS support is not built yet",
            self.key_id
        )))
    }

    /// Wraps an existing data key under this key (`Encrypt`): returns the blob and the key ARN.
    pub async fn encrypt(&self, key: &DataKey, context: &str) -> Result<(Vec<u8>, String)> {
        let _ = (key, context);
        Err(Error::invalid(format!(
            "AWS KMS key '{}': KMS support is not built yet",
            self.key_id
        )))
    }

    /// The data key in `blob`, wrapped by `key_arn` for `context` (`Decrypt`, with `KeyId`
    /// given so that a blob of another key is refused). `object` names what is being opened in
    /// messages.
    pub async fn decrypt(
        &self,
        key_arn: &str,
        blob: &[u8],
        context: &str,
        object: &str,
    ) -> Result<DataKey> {
        let _ = (key_arn, blob, context);
        Err(Error::invalid(format!(
            "{object}: AWS KMS key '{}': KMS support is not built yet",
            self.key_id
        )))
    }
}

//! Envelope encryption and tamper evidence for what a storage location holds.
//!
//! # Keys
//!
//! * **Key-encryption keys** (KEKs) never leave their source: a key file or a directory of them
//!   (a mounted Secret, [`keyring`]), or an AWS KMS key ([`kms`]). A KEK only wraps and unwraps
//!   data keys.
//! * **Data keys** (256 bits, fresh from the system's random source or from KMS
//!   `GenerateDataKey`) encrypt the objects. Every backup has one, stored wrapped in
//!   `backups/<id>/encryption.json` (all shards share it: the first shard creates it, the others
//!   read it). An object outside a backup (an offset snapshot, a plan) carries its own wrapped
//!   data key in its envelope. Re-wrapping a data key under another KEK rewrites only the small
//!   object that holds it, never the segments.
//!
//! # Objects
//!
//! A sealed object is an [`envelope`]: a short header, then the AES-256-GCM ciphertext and tag.
//! Its associated data is the object's key (relative to the location's root: it names the
//! backup, topic, partition and segment) and the header, so an object moved, swapped or replayed
//! from another backup fails authentication. Manifests and backup checkpoints stay readable
//! (listing, planning, retention and the operator read them without a key) and carry an
//! HMAC-SHA256 under a key derived from the backup's data key, over their whole content and
//! their key: segments deleted, added or reordered in a manifest are detected.
//!
//! Which objects are sealed is decided by their key ([`sealing`]); reading decides by content
//! (the envelope's magic), so a backup written in the clear stays readable with encryption
//! configured, while an object found in the clear inside an encrypted backup is refused.

pub mod envelope;
pub mod keyring;
pub mod kms;
mod vault;

pub use envelope::{Envelope, KeySlot, MAGIC};
pub use vault::{encode_base64, Vault, WrappedKey, KEY_PROVIDER_AWS_KMS, KEY_PROVIDER_SECRET};

use zeroize::Zeroizing;

/// A 256-bit data or key-encryption key, wiped from memory when dropped.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// The key in `bytes`, which must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<DataKey> {
        let array: [u8; 32] = bytes.try_into().ok()?;
        Some(DataKey(Zeroizing::new(array)))
    }

    /// A fresh key from the system's random source.
    pub fn generate() -> crate::Result<DataKey> {
        use ring::rand::SecureRandom;
        let mut key = Zeroizing::new([0u8; 32]);
        ring::rand::SystemRandom::new()
            .fill(key.as_mut())
            .map_err(|_| crate::Error::invalid("the system's random source failed"))?;
        Ok(DataKey(key))
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// How an object written under `key` is protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sealing {
    /// Stored as given: key objects, manifests and checkpoints of backups (those two carry a
    /// MAC), leases.
    Plain,
    /// Sealed under the data key of backup `id` (segments, captured offsets, restore files).
    Backup(String),
    /// Sealed under a data key of its own, wrapped in its envelope (snapshots, plans, reports).
    Own,
}

/// The prefix every backup lives under.
const BACKUPS: &str = "backups/";

/// Which protection an object written under `key` gets (a normalized key).
pub fn sealing(key: &str) -> Sealing {
    if let Some(rest) = key.strip_prefix(BACKUPS) {
        let mut parts = rest.split('/');
        let (Some(id), Some(first)) = (parts.next(), parts.next()) else {
            return Sealing::Own;
        };
        if id.is_empty() {
            return Sealing::Own;
        }
        return match first {
            "encryption.json" | "manifest" | "checkpoint" | "lease" => Sealing::Plain,
            _ => Sealing::Backup(id.to_string()),
        };
    }
    if key.ends_with(".lease") || key.starts_with("leases/") {
        return Sealing::Plain;
    }
    Sealing::Own
}

/// Key of a backup's data key object.
pub fn backup_key_object(backup_id: &str) -> String {
    format!("{BACKUPS}{backup_id}/encryption.json")
}

/// The context a backup's data key is bound to when wrapped (KMS encryption context, AEAD
/// associated data of a key-file wrap).
pub fn backup_key_context(backup_id: &str) -> String {
    format!("{BACKUPS}{backup_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_sealed_is_decided_by_the_key() {
        let b = |id: &str| Sealing::Backup(id.to_string());
        assert_eq!(
            sealing("backups/b1/topics/orders/0/00000000000000000000.seg"),
            b("b1")
        );
        assert_eq!(sealing("backups/b1/offsets/00000-of-00001.json"), b("b1"));
        assert_eq!(sealing("backups/b1/restores/r1/mapping.json"), b("b1"));
        assert_eq!(
            sealing("backups/b1/manifest/00000-of-00001.json"),
            Sealing::Plain
        );
        assert_eq!(
            sealing("backups/b1/checkpoint/00000-of-00001.json"),
            Sealing::Plain
        );
        assert_eq!(
            sealing("backups/b1/lease/00000-of-00001.json"),
            Sealing::Plain
        );
        assert_eq!(sealing("backups/b1/encryption.json"), Sealing::Plain);
        assert_eq!(sealing("snapshots/s1.json"), Sealing::Own);
        assert_eq!(sealing("s1.json"), Sealing::Own);
        assert_eq!(sealing("backups/x"), Sealing::Own);
    }
}

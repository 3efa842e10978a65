//! Key-encryption keys from files: one file, or a directory of them (a Kubernetes Secret mounted
//! as a volume: one file per data item, named by its key). A file's name is its key id; it holds
//! 32 bytes, raw, as 64 hex digits or in base64 (surrounding white space ignored).
//!
//! Wrapping a data key: AES-256-GCM under the key-encryption key, a random nonce, associated data
//! `tidemark-data-key/1`, the key id and the context the data key belongs to (its backup or
//! object), each after a zero byte. The wrapped form is nonce, ciphertext and tag (60 bytes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::SecureRandom;

use super::DataKey;
use crate::error::{Error, Result};

/// The keys of a key file or directory, and the one that wraps new data keys.
pub struct Keyring {
    source: PathBuf,
    keys: BTreeMap<String, DataKey>,
    current: String,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("source", &self.source)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .field("current", &self.current)
            .finish()
    }
}

/// The longest key file read.
const MAX_KEY_FILE: u64 = 4096;

impl Keyring {
    /// Reads the keys at `path` (a file or a directory); `current` picks the key for new data
    /// keys (required when there are several).
    pub fn load(path: &Path, current: Option<&str>) -> Result<Keyring> {
        let shown = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| {
            Error::invalid(format!("encryption key file '{shown}' cannot be read: {e}"))
        })?;
        let mut keys = BTreeMap::new();
        if meta.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| {
                Error::invalid(format!(
                    "encryption key directory '{shown}' cannot be listed: {e}"
                ))
            })?;
            for entry in entries {
                let entry = entry.map_err(|e| {
                    Error::invalid(format!(
                        "encryption key directory '{shown}' cannot be listed: {e}"
                    ))
                })?;
                let name = entry.file_name().to_string_lossy().into_owned();
                // A mounted Secret's bookkeeping entries (`..data`, `..2024_…`).
                if name.starts_with('.') {
                    continue;
                }
                let file = entry.path();
                if std::fs::metadata(&file)
                    .map(|m| m.is_dir())
                    .unwrap_or(false)
                {
                    continue;
                }
                let (id, key) = read_key_file(&file)?;
                keys.insert(id, key);
            }
            if keys.is_empty() {
                return Err(Error::invalid(format!(
                    "encryption key directory '{shown}' holds no key file (one file per key, named by its key id)"
                )));
            }
        } else {
            let (id, key) = read_key_file(path)?;
            keys.insert(id, key);
        }
        let current = match current {
            Some(id) if keys.contains_key(id) => id.to_string(),
            Some(id) => {
                return Err(Error::invalid(format!(
                    "encryption key id '{id}' is not in '{shown}', which holds {}",
                    names(&keys)
                )))
            }
            None if keys.len() == 1 => keys.keys().next().cloned().unwrap_or_default(),
            None => {
                return Err(Error::invalid(format!(
                    "'{shown}' holds several encryption keys ({}); name the one for new backups with --encryption-key-id (keyId)",
                    names(&keys)
                )))
            }
        };
        Ok(Keyring {
            source: path.to_path_buf(),
            keys,
            current,
        })
    }

    /// The key id new data keys are wrapped with.
    pub fn current(&self) -> &str {
        &self.current
    }

    /// Whether this keyring holds `key_id`.
    pub fn holds(&self, key_id: &str) -> bool {
        self.keys.contains_key(key_id)
    }

    /// The key ids held, for messages (`'a', 'b'`).
    pub fn key_ids(&self) -> String {
        names(&self.keys)
    }

    /// Wraps `dek` under the current key for `context`.
    pub fn wrap(&self, dek: &DataKey, context: &str) -> Result<(String, Vec<u8>)> {
        let kek = self.key(&self.current)?;
        let mut nonce = [0u8; NONCE_LEN];
        ring::rand::SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| Error::invalid("the system's random source failed"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + 48);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(dek.bytes());
        let tag = cipher(kek)
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(&self.current, context)),
                &mut out[NONCE_LEN..],
            )
            .map_err(|_| Error::invalid("AES-256-GCM refused to wrap a data key"))?;
        out.extend_from_slice(tag.as_ref());
        Ok((self.current.clone(), out))
    }

    /// Unwraps a data key wrapped by [`wrap`](Self::wrap) with `key_id` for `context`; `Err`
    /// with [`Unwrap::Missing`] when this keyring lacks the key, [`Unwrap::Refused`] when the
    /// wrapped key does not authenticate.
    pub fn unwrap(
        &self,
        key_id: &str,
        wrapped: &[u8],
        context: &str,
    ) -> std::result::Result<DataKey, Unwrap> {
        let kek = self.keys.get(key_id).ok_or(Unwrap::Missing)?;
        if wrapped.len() != NONCE_LEN + 32 + 16 {
            return Err(Unwrap::Refused);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&wrapped[..NONCE_LEN]);
        let mut buf = zeroize::Zeroizing::new(wrapped[NONCE_LEN..].to_vec());
        let plain = cipher(kek)
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(key_id, context)),
                &mut buf,
            )
            .map_err(|_| Unwrap::Refused)?;
        DataKey::from_slice(plain).ok_or(Unwrap::Refused)
    }

    fn key(&self, id: &str) -> Result<&DataKey> {
        self.keys
            .get(id)
            .ok_or_else(|| Error::invalid(format!("encryption key id '{id}' is not held")))
    }
}

/// Why a wrapped data key could not be unwrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unwrap {
    /// The key-encryption key is not held.
    Missing,
    /// The wrapped key does not authenticate under it (altered, or another key of that id).
    Refused,
}

fn aad(key_id: &str, context: &str) -> Vec<u8> {
    let mut aad = b"tidemark-data-key/1\0".to_vec();
    aad.extend_from_slice(key_id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(context.as_bytes());
    aad
}

fn cipher(key: &DataKey) -> LessSafeKey {
    LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key.bytes())
            .unwrap_or_else(|_| unreachable!("AES-256-GCM takes 32-byte keys")),
    )
}

fn names(keys: &BTreeMap<String, DataKey>) -> String {
    keys.keys()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One key file: its id (the file name) and its 32 bytes. Messages never show key material.
fn read_key_file(path: &Path) -> Result<(String, DataKey)> {
    let shown = path.display().to_string();
    let id = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    tidemark_task::check_key_id(&id).map_err(|why| {
        Error::invalid(format!(
            "encryption key file '{shown}': its name is the key id, and {why}"
        ))
    })?;
    let len = std::fs::metadata(path)
        .map_err(|e| Error::invalid(format!("encryption key file '{shown}' cannot be read: {e}")))?
        .len();
    if len > MAX_KEY_FILE {
        return Err(Error::invalid(format!(
            "encryption key file '{shown}' is {len} bytes; a key is 32 bytes (raw, 64 hex digits or base64)"
        )));
    }
    let raw = zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| {
        Error::invalid(format!("encryption key file '{shown}' cannot be read: {e}"))
    })?);
    let key = decode_key(&raw).ok_or_else(|| {
        Error::invalid(format!(
            "encryption key file '{shown}' does not hold a 32-byte key (raw, 64 hex digits or base64)"
        ))
    })?;
    Ok((id, key))
}

fn decode_key(raw: &[u8]) -> Option<DataKey> {
    if raw.len() == 32 {
        return DataKey::from_slice(raw);
    }
    let text = std::str::from_utf8(raw).ok()?.trim();
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        for (i, pair) in text.as_bytes().chunks(2).enumerate() {
            let s = std::str::from_utf8(pair).ok()?;
            bytes[i] = u8::from_str_radix(s, 16).ok()?;
        }
        return DataKey::from_slice(bytes.as_ref());
    }
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
    ] {
        if let Ok(bytes) = engine.decode(text) {
            let bytes = zeroize::Zeroizing::new(bytes);
            if let Some(k) = DataKey::from_slice(&bytes) {
                return Some(k);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, content: &[u8]) {
        std::fs::write(dir.join(name), content).expect("write key");
    }

    #[test]
    fn keys_are_read_raw_hex_or_base64_and_wrap_round_trips() {
        let d = tempfile::tempdir().expect("dir");
        write(d.path(), "raw", &[1u8; 32]);
        write(d.path(), "hex", "ab".repeat(32).as_bytes());
        write(
            d.path(),
            "b64",
            format!(
                "{}\n",
                base64::engine::general_purpose::STANDARD.encode([3u8; 32])
            )
            .as_bytes(),
        );
        write(d.path(), "..data", b"ignored");
        let ring = Keyring::load(d.path(), Some("hex")).expect("load");
        assert_eq!(ring.key_ids(), "'b64', 'hex', 'raw'");
        let dek = DataKey::generate().expect("dek");
        let (id, wrapped) = ring.wrap(&dek, "backups/b1").expect("wrap");
        assert_eq!(id, "hex");
        let back = ring.unwrap("hex", &wrapped, "backups/b1").expect("unwrap");
        assert_eq!(back.bytes(), dek.bytes());
        assert_eq!(
            ring.unwrap("hex", &wrapped, "backups/b2").err(),
            Some(Unwrap::Refused)
        );
        assert_eq!(
            ring.unwrap("raw", &wrapped, "backups/b1").err(),
            Some(Unwrap::Refused)
        );
        assert_eq!(
            ring.unwrap("gone", &wrapped, "backups/b1").err(),
            Some(Unwrap::Missing)
        );
    }

    #[test]
    fn bad_key_files_are_named_and_never_shown() {
        let d = tempfile::tempdir().expect("dir");
        write(d.path(), "short", b"c2VjcmV0LXZhbHVl");
        let err = Keyring::load(&d.path().join("short"), None)
            .expect_err("short")
            .to_string();
        assert!(err.contains("short") && err.contains("32-byte"), "{err}");
        assert!(!err.contains("c2VjcmV0"), "{err}");
        write(d.path(), "a", &[1u8; 32]);
        std::fs::remove_file(d.path().join("short")).expect("rm");
        write(d.path(), "b", &[2u8; 32]);
        let err = Keyring::load(d.path(), None)
            .expect_err("several")
            .to_string();
        assert!(
            err.contains("'a', 'b'") && err.contains("--encryption-key-id"),
            "{err}"
        );
        let err = Keyring::load(d.path(), Some("c"))
            .expect_err("unknown")
            .to_string();
        assert!(err.contains("'c' is not in"), "{err}");
        write(d.path(), "bad name", &[2u8; 32]);
        let err = Keyring::load(d.path(), Some("a"))
            .expect_err("name")
            .to_string();
        assert!(err.contains("bad name"), "{err}");
    }
}

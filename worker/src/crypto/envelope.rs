//! The sealed-object format (FORMAT.md, "Encryption"):
//!
//! ```text
//! offset  size  field
//! 0       8     magic "TDMKSEAL"
//! 8       1     version (1)
//! 9       1     key slot: 1 = the backup's data key, 2 = a data key of its own
//! 10      2     length L of the wrapped key (big-endian; 0 for slot 1)
//! 12      L     the wrapped key: JSON {"provider", "keyId", "wrapped"} (slot 2)
//! 12+L    12    nonce (random)
//! 24+L    n     AES-256-GCM ciphertext of the n-byte object
//! 24+L+n  16    tag
//! ```
//!
//! Associated data: `tidemark-sealed/1`, a zero byte, the object's key, a zero byte, then the
//! header (bytes 0 to 24+L): the key binds the object to its place, the header to its key slot.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::SecureRandom;

use super::{DataKey, WrappedKey};

/// The first bytes of every sealed object.
pub const MAGIC: &[u8; 8] = b"TDMKSEAL";
const VERSION: u8 = 1;
const SLOT_BACKUP: u8 = 1;
const SLOT_OWN: u8 = 2;
const FIXED: usize = 12;
const TAG_LEN: usize = 16;
/// The longest wrapped-key record accepted in a header.
const MAX_SLOT_LEN: usize = 8 * 1024;

/// Where an envelope's data key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySlot {
    /// The data key of the backup the object belongs to.
    Backup,
    /// A data key of the object's own, wrapped.
    Own(WrappedKey),
}

/// A parsed envelope header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub slot: KeySlot,
    /// Bytes before the ciphertext (header and nonce).
    pub header_len: usize,
}

/// Whether `bytes` begin like a sealed object.
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Bytes a sealed object adds to its content with `slot`.
pub fn overhead(slot_len: usize) -> usize {
    FIXED + slot_len + NONCE_LEN + TAG_LEN
}

fn aad(key: &str, header: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(20 + key.len() + header.len());
    aad.extend_from_slice(b"tidemark-sealed/1\0");
    aad.extend_from_slice(key.as_bytes());
    aad.push(0);
    aad.extend_from_slice(header);
    aad
}

fn cipher(dek: &DataKey) -> LessSafeKey {
    // A 32-byte key is always accepted by AES-256-GCM.
    LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, dek.bytes())
            .unwrap_or_else(|_| unreachable!("AES-256-GCM takes 32-byte keys")),
    )
}

/// Seals `plaintext`, stored under `key`, with `dek`; `slot` says where a reader finds `dek`.
pub fn seal(key: &str, slot: &KeySlot, dek: &DataKey, plaintext: &[u8]) -> crate::Result<Vec<u8>> {
    let header = header(slot)?;
    let mut out = Vec::with_capacity(header.len() + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&header);
    out.extend_from_slice(plaintext);
    seal_after_header(key, dek, out, header.len())
}

/// [`seal`] of a buffer given up by its owner, sealed where it is: the header is moved in
/// before the content and the tag appended, so no second buffer of the content's size is
/// made (the buffer grows once if it has no room for them).
pub fn seal_owned(
    key: &str,
    slot: &KeySlot,
    dek: &DataKey,
    mut plaintext: Vec<u8>,
) -> crate::Result<Vec<u8>> {
    let header = header(slot)?;
    plaintext.reserve_exact(header.len() + TAG_LEN);
    plaintext.splice(0..0, header.iter().copied());
    seal_after_header(key, dek, plaintext, header.len())
}

/// The header of an envelope for `slot`: magic, version, slot, and a fresh random nonce.
fn header(slot: &KeySlot) -> crate::Result<Vec<u8>> {
    let record = match slot {
        KeySlot::Backup => Vec::new(),
        KeySlot::Own(w) => serde_json::to_vec(w)
            .map_err(|e| crate::Error::invalid(format!("cannot encode a wrapped key: {e}")))?,
    };
    let slot_len = u16::try_from(record.len())
        .ok()
        .filter(|&n| usize::from(n) <= MAX_SLOT_LEN)
        .ok_or_else(|| crate::Error::invalid("a wrapped data key is too long for an envelope"))?;
    let mut nonce = [0u8; NONCE_LEN];
    ring::rand::SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| crate::Error::invalid("the system's random source failed"))?;
    let mut out = Vec::with_capacity(FIXED + record.len() + NONCE_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(match slot {
        KeySlot::Backup => SLOT_BACKUP,
        KeySlot::Own(_) => SLOT_OWN,
    });
    out.extend_from_slice(&slot_len.to_be_bytes());
    out.extend_from_slice(&record);
    out.extend_from_slice(&nonce);
    Ok(out)
}

/// Encrypts what follows the `header_len` bytes of header in `out` and appends the tag; the
/// nonce is the header's last bytes.
fn seal_after_header(
    key: &str,
    dek: &DataKey,
    mut out: Vec<u8>,
    header_len: usize,
) -> crate::Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&out[header_len - NONCE_LEN..header_len]);
    let aad = aad(key, &out[..header_len]);
    let tag = cipher(dek)
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad),
            &mut out[header_len..],
        )
        .map_err(|_| crate::Error::invalid("AES-256-GCM refused to seal an object"))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Reads the header of a sealed object; `Err` says what is wrong with it.
pub fn parse(bytes: &[u8]) -> Result<Envelope, String> {
    if !is_sealed(bytes) {
        return Err("it is not a sealed object".into());
    }
    if bytes.len() < FIXED {
        return Err(format!("its header is cut short ({} bytes)", bytes.len()));
    }
    if bytes[8] != VERSION {
        return Err(format!(
            "its envelope version {} is not known to this tidemark (1)",
            bytes[8]
        ));
    }
    let slot_len = usize::from(u16::from_be_bytes([bytes[10], bytes[11]]));
    if slot_len > MAX_SLOT_LEN {
        return Err(format!(
            "its wrapped key is {slot_len} bytes long, more than {MAX_SLOT_LEN}"
        ));
    }
    let header_len = FIXED + slot_len + NONCE_LEN;
    if bytes.len() < header_len + TAG_LEN {
        return Err(format!(
            "it is cut short: {} bytes, an envelope of this header has at least {}",
            bytes.len(),
            header_len + TAG_LEN
        ));
    }
    let slot = match (bytes[9], slot_len) {
        (SLOT_BACKUP, 0) => KeySlot::Backup,
        (SLOT_OWN, n) if n > 0 => {
            let w: WrappedKey = serde_json::from_slice(&bytes[FIXED..FIXED + n])
                .map_err(|e| format!("its wrapped key cannot be read: {e}"))?;
            KeySlot::Own(w)
        }
        (s, n) => return Err(format!("its key slot {s} with {n} bytes is not known")),
    };
    Ok(Envelope { slot, header_len })
}

/// Opens a sealed object read from `key` in place: on success `buf` holds the content.
/// `Err` is the reason authentication failed (wrong key, moved or altered object).
pub fn open_in_place(
    key: &str,
    envelope: &Envelope,
    dek: &DataKey,
    buf: &mut Vec<u8>,
) -> Result<(), String> {
    let h = envelope.header_len;
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&buf[h - NONCE_LEN..h]);
    let aad = aad(key, &buf[..h]);
    let plain_len = cipher(dek)
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad),
            &mut buf[h..],
        )
        .map_err(|_| {
            "its content does not authenticate under its data key: it was altered, moved from \
             another key or backup, or sealed with another key"
                .to_string()
        })?
        .len();
    buf.copy_within(h..h + plain_len, 0);
    buf.truncate(plain_len);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> KeySlot {
        KeySlot::Own(WrappedKey {
            provider: "secret".into(),
            key_id: "k1".into(),
            wrapped: vec![7; 60],
        })
    }

    #[test]
    fn a_sealed_object_opens_only_under_its_key_and_name() {
        let dek = DataKey::generate().expect("key");
        for slot in [KeySlot::Backup, own()] {
            let sealed =
                seal("backups/b/topics/t/0/1.seg", &slot, &dek, b"hello records").expect("seal");
            assert!(!sealed.windows(5).any(|w| w == b"hello"));
            let env = parse(&sealed).expect("parse");
            assert_eq!(env.slot, slot);
            let mut buf = sealed.clone();
            open_in_place("backups/b/topics/t/0/1.seg", &env, &dek, &mut buf).expect("open");
            assert_eq!(buf, b"hello records");
            // Another name, another key, a flipped bit: refused.
            let mut buf = sealed.clone();
            assert!(open_in_place("backups/b/topics/t/0/2.seg", &env, &dek, &mut buf).is_err());
            let mut buf = sealed.clone();
            let other = DataKey::generate().expect("key");
            assert!(open_in_place("backups/b/topics/t/0/1.seg", &env, &other, &mut buf).is_err());
            for i in [0usize, 9, sealed.len() / 2, sealed.len() - 1] {
                let mut buf = sealed.clone();
                buf[i] ^= 1;
                let opened = parse(&buf)
                    .and_then(|e| open_in_place("backups/b/topics/t/0/1.seg", &e, &dek, &mut buf));
                assert!(opened.is_err(), "bit flipped at {i}");
            }
        }
    }

    #[test]
    fn a_buffer_sealed_in_place_opens_like_a_copy_sealed_and_never_holds_two_copies() {
        let dek = DataKey::generate().expect("key");
        let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for slot in [KeySlot::Backup, own()] {
            // A buffer with no room to spare grows once; one with room is sealed where it is.
            for spare in [0usize, 4096] {
                let mut plain = Vec::with_capacity(content.len() + spare);
                plain.extend_from_slice(&content);
                let before = plain.as_ptr();
                let sealed =
                    seal_owned("backups/b/topics/t/0/1.seg", &slot, &dek, plain).expect("seal");
                if spare > 0 {
                    assert_eq!(sealed.as_ptr(), before, "sealed where it was");
                }
                assert_eq!(
                    sealed.len(),
                    seal("backups/b/topics/t/0/1.seg", &slot, &dek, &content)
                        .expect("seal")
                        .len()
                );
                let env = parse(&sealed).expect("parse");
                assert_eq!(env.slot, slot);
                let mut buf = sealed.clone();
                open_in_place("backups/b/topics/t/0/1.seg", &env, &dek, &mut buf).expect("open");
                assert_eq!(buf, content);
                let mut buf = sealed;
                assert!(open_in_place("backups/b/topics/t/0/2.seg", &env, &dek, &mut buf).is_err());
            }
        }
    }

    #[test]
    fn a_cut_envelope_is_refused_before_decrypting() {
        let dek = DataKey::generate().expect("key");
        let sealed = seal("k", &own(), &dek, b"x").expect("seal");
        for len in [3, 11, 20, sealed.len() - 2] {
            assert!(
                parse(&sealed[..len]).is_err() || {
                    let mut buf = sealed[..len].to_vec();
                    let e = parse(&buf).expect("parse");
                    open_in_place("k", &e, &dek, &mut buf).is_err()
                }
            );
        }
    }
}

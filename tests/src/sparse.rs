//! A produce request written by hand, whose record batch skips offsets: the batch's records
//! carry the offset deltas given (e.g. `[0, 4]`: two records four offsets apart), as a
//! compacted log serves them or as a broker that lost records would. The broker keeps the batch
//! as it is (its offsets span `lastOffsetDelta + 1`), so a consumer sees offsets jump.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// CRC-32C (Castagnoli), what a record batch's checksum uses.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A zigzag varint.
fn varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A v2 record batch of one record per delta in `deltas` (key `sparse-<delta>`), spanning
/// offsets `0..=last_delta` of its base.
pub fn sparse_batch(deltas: &[i32], last_delta: i32) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let mut records = Vec::new();
    for d in deltas {
        let key = format!("sparse-{d}");
        let value = format!("value at offset delta {d}");
        let mut r = vec![0u8]; // attributes
        varint(&mut r, 0); // timestamp delta
        varint(&mut r, i64::from(*d));
        varint(&mut r, key.len() as i64);
        r.extend_from_slice(key.as_bytes());
        varint(&mut r, value.len() as i64);
        r.extend_from_slice(value.as_bytes());
        varint(&mut r, 0); // headers
        varint(&mut records, r.len() as i64);
        records.extend_from_slice(&r);
    }
    let mut tail = Vec::new();
    tail.extend_from_slice(&0i16.to_be_bytes()); // attributes: no compression
    tail.extend_from_slice(&last_delta.to_be_bytes());
    tail.extend_from_slice(&now.to_be_bytes()); // base timestamp
    tail.extend_from_slice(&now.to_be_bytes()); // max timestamp
    tail.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    tail.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    tail.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    tail.extend_from_slice(&(deltas.len() as i32).to_be_bytes());
    tail.extend_from_slice(&records);
    let mut batch = Vec::new();
    batch.extend_from_slice(&0i64.to_be_bytes()); // base offset (the broker assigns it)
    batch.extend_from_slice(&((4 + 1 + 4 + tail.len()) as i32).to_be_bytes());
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    batch.push(2); // magic
    batch.extend_from_slice(&crc32c(&tail).to_be_bytes());
    batch.extend_from_slice(&tail);
    batch
}

/// Produces [`sparse_batch`]`(deltas, last_delta)` to `topic`-`partition` through the broker at
/// `bootstrap` (Produce v3, acks all) and returns the partition's error code (0: stored).
pub fn produce_sparse(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    deltas: &[i32],
    last_delta: i32,
) -> i16 {
    let batch = sparse_batch(deltas, last_delta);
    let mut body = Vec::new();
    body.extend_from_slice(&0i16.to_be_bytes()); // api key: Produce
    body.extend_from_slice(&3i16.to_be_bytes()); // version
    body.extend_from_slice(&7i32.to_be_bytes()); // correlation id
    string(&mut body, "tidemark-tests");
    body.extend_from_slice(&(-1i16).to_be_bytes()); // no transactional id
    body.extend_from_slice(&(-1i16).to_be_bytes()); // acks: all
    body.extend_from_slice(&10_000i32.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    string(&mut body, topic);
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&partition.to_be_bytes());
    body.extend_from_slice(&(batch.len() as i32).to_be_bytes());
    body.extend_from_slice(&batch);

    let mut conn = TcpStream::connect(bootstrap).expect("connect to the broker");
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    conn.write_all(&(body.len() as i32).to_be_bytes())
        .expect("write");
    conn.write_all(&body).expect("write");
    let mut size = [0u8; 4];
    conn.read_exact(&mut size).expect("response size");
    let mut resp = vec![0u8; i32::from_be_bytes(size) as usize];
    conn.read_exact(&mut resp).expect("response");
    // correlation id, topics (1), name, partitions (1), index, error code
    let name_len = i16::from_be_bytes([resp[8], resp[9]]) as usize;
    let at = 10 + name_len + 4 + 4;
    i16::from_be_bytes([resp[at], resp[at + 1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_is_crc32c() {
        // The check value of CRC-32C.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn varints_are_zigzag() {
        let enc = |v| {
            let mut out = Vec::new();
            varint(&mut out, v);
            out
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(-1), [1]);
        assert_eq!(enc(1), [2]);
        assert_eq!(enc(64), [0x80, 1]);
    }
}

//! What a drill compares per partition: the number of records, their record bytes and a digest
//! over each record's key, value, headers and timestamp in order ([`PartitionDigest`]); and the
//! comparison of what the backup holds with what was read back ([`compare`]).
//!
//! The digest is FNV-1a with 128 bits over an unambiguous encoding of each record (every field
//! length-prefixed, a null told apart from an empty value): it detects a changed, missing,
//! extra or reordered record; it is no defence against someone forging records on purpose.

use std::collections::BTreeMap;

use serde::Serialize;

const FNV_OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
const FNV_PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

/// Count, record bytes and digest of a sequence of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionDigest {
    pub records: u64,
    /// Keys, values and headers (names and values), as a restore counts them.
    pub bytes: u64,
    hash: u128,
}

impl Default for PartitionDigest {
    fn default() -> Self {
        PartitionDigest {
            records: 0,
            bytes: 0,
            hash: FNV_OFFSET,
        }
    }
}

impl PartitionDigest {
    /// Adds one record, after those added before.
    pub fn add<'a>(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
        timestamp: i64,
    ) {
        self.records += 1;
        self.field(key);
        self.field(value);
        let mut header_bytes = 0u64;
        let mut count = 0u64;
        let mut encoded = Vec::new();
        for (k, v) in headers {
            count += 1;
            header_bytes += k.len() as u64 + v.map_or(0, |v| v.len() as u64);
            encoded.push((k, v));
        }
        self.eat(&count.to_le_bytes());
        for (k, v) in encoded {
            self.field(Some(k.as_bytes()));
            self.field(v);
        }
        self.eat(&timestamp.to_le_bytes());
        self.bytes +=
            key.map_or(0, |k| k.len() as u64) + value.map_or(0, |v| v.len() as u64) + header_bytes;
    }

    /// The digest as 32 lowercase hex digits.
    pub fn hex(&self) -> String {
        format!("{:032x}", self.hash)
    }

    fn field(&mut self, v: Option<&[u8]>) {
        match v {
            None => self.eat(&[0]),
            Some(b) => {
                self.eat(&[1]);
                self.eat(&(b.len() as u64).to_le_bytes());
                self.eat(b);
            }
        }
    }

    fn eat(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.hash ^= u128::from(*b);
            self.hash = self.hash.wrapping_mul(FNV_PRIME);
        }
    }
}

/// A scratch partition: what the backup holds for it and what was read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionCheck {
    pub topic: String,
    pub partition: i32,
    pub expected_records: u64,
    pub records: u64,
    pub expected_digest: String,
    pub digest: String,
    pub bytes: u64,
    pub matched: bool,
}

/// Per-partition digests keyed by (scratch topic, partition).
pub type Digests = BTreeMap<(String, i32), PartitionDigest>;

/// Compares what the backup holds (`expected`) with what was read back (`actual`), partition by
/// partition: the checks, and one line per partition that differs. A partition read back that
/// the backup has nothing for differs when it holds records.
pub fn compare(expected: &Digests, actual: &Digests) -> (Vec<PartitionCheck>, Vec<String>) {
    let mut checks = Vec::new();
    let mut failures = Vec::new();
    let empty = PartitionDigest::default();
    let keys: std::collections::BTreeSet<&(String, i32)> =
        expected.keys().chain(actual.keys()).collect();
    for key in keys {
        let want = expected.get(key).unwrap_or(&empty);
        let got = actual.get(key).unwrap_or(&empty);
        let matched = want == got;
        let (topic, partition) = key;
        if got.records != want.records {
            failures.push(format!(
                "{topic}-{partition}: {} read back, {} in the backup",
                plural(got.records, "record"),
                want.records
            ));
        } else if !matched {
            failures.push(format!(
                "{topic}-{partition}: {} read back, but their digest {} differs from the backup's {}",
                plural(got.records, "record"),
                got.hex(),
                want.hex()
            ));
        }
        checks.push(PartitionCheck {
            topic: topic.clone(),
            partition: *partition,
            expected_records: want.records,
            records: got.records,
            expected_digest: want.hex(),
            digest: got.hex(),
            bytes: got.bytes,
            matched,
        });
    }
    (checks, failures)
}

fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Rec<'a> = (
        Option<&'a [u8]>,
        Option<&'a [u8]>,
        Vec<(&'a str, Option<&'a [u8]>)>,
        i64,
    );

    fn digest(records: &[Rec<'_>]) -> PartitionDigest {
        let mut d = PartitionDigest::default();
        for (k, v, h, t) in records {
            d.add(*k, *v, h.iter().copied(), *t);
        }
        d
    }

    fn key(t: &str, p: i32) -> (String, i32) {
        (t.to_string(), p)
    }

    #[test]
    fn the_digest_tells_apart_every_field_null_from_empty_and_order() {
        let base = digest(&[(Some(b"k"), Some(b"v"), vec![("h", None)], 1)]);
        assert_eq!(
            base,
            digest(&[(Some(b"k"), Some(b"v"), vec![("h", None)], 1)])
        );
        assert_eq!(base.records, 1);
        assert_eq!(base.bytes, 3);
        for other in [
            digest(&[(None, Some(b"v"), vec![("h", None)], 1)]),
            digest(&[(Some(b""), Some(b"v"), vec![("h", None)], 1)]),
            digest(&[(Some(b"k"), None, vec![("h", None)], 1)]),
            digest(&[(Some(b"k"), Some(b"v"), vec![("h", Some(b""))], 1)]),
            digest(&[(Some(b"k"), Some(b"v"), vec![], 1)]),
            digest(&[(Some(b"k"), Some(b"v"), vec![("h", None)], 2)]),
            // Bytes moved from the key to the value.
            digest(&[(Some(b"kv"), Some(b""), vec![("h", None)], 1)]),
        ] {
            assert_ne!(base.hex(), other.hex());
        }
        let a = (Some(&b"a"[..]), None, vec![], 1);
        let b = (Some(&b"b"[..]), None, vec![], 1);
        assert_ne!(
            digest(&[a.clone(), b.clone()]).hex(),
            digest(&[b, a]).hex(),
            "order counts"
        );
        assert_eq!(base.hex().len(), 32);
    }

    #[test]
    fn compare_names_each_partition_that_differs() {
        let one = digest(&[(Some(b"k"), Some(b"v"), vec![], 1)]);
        let other = digest(&[(Some(b"k"), Some(b"w"), vec![], 1)]);
        let two = digest(&[(Some(b"k"), Some(b"v"), vec![], 1), (None, None, vec![], 2)]);
        let expected: Digests = [
            (key("d-a", 0), one),
            (key("d-a", 1), one),
            (key("d-a", 2), two),
        ]
        .into_iter()
        .collect();
        let actual: Digests = [
            (key("d-a", 0), one),
            (key("d-a", 1), other),
            (key("d-a", 2), one),
            (key("d-a", 3), one),
        ]
        .into_iter()
        .collect();
        let (checks, failures) = compare(&expected, &actual);
        assert_eq!(
            checks.iter().map(|c| c.matched).collect::<Vec<_>>(),
            [true, false, false, false]
        );
        assert_eq!(failures.len(), 3, "{failures:?}");
        assert!(
            failures[0].starts_with("d-a-1: 1 record read back, but their digest"),
            "{}",
            failures[0]
        );
        assert_eq!(failures[1], "d-a-2: 1 record read back, 2 in the backup");
        assert_eq!(failures[2], "d-a-3: 1 record read back, 0 in the backup");
        let (_, none) = compare(&expected, &expected);
        assert!(none.is_empty());
    }
}

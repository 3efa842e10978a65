//! Reading backups: which exist (and which are complete), one backup's merged shards, its
//! records, and verification of every stored byte.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::format::{check_segment, decode_segment_shared, DecodedSegment, Record};
use super::manifest::{Manifest, SegmentEntry, BACKUPS_DIR};
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::task::ChainScope;

/// A backup as `list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BackupSummary {
    pub backup_id: String,
    /// Every shard's manifest is stored.
    pub complete: bool,
    pub shards: u32,
    pub shards_complete: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub mode: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub topics: Vec<String>,
    pub partitions: u64,
    pub records: u64,
    pub bytes: u64,
    pub stored_bytes: u64,
    pub segments: u64,
    /// The key that wraps an encrypted backup's data key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_key_id: Option<String>,
    /// Manifests that could not be read, with the reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// `<shard>-of-<count>` from `backups/<id>/manifest/<shard>-of-<count>.json`.
fn shard_of(key: &str) -> Option<(u32, u32)> {
    let name = key.rsplit('/').next()?.strip_suffix(".json")?;
    let (i, n) = name.split_once("-of-")?;
    Some((i.parse().ok()?, n.parse().ok()?))
}

/// Every backup under the location, complete or not, newest first.
pub async fn list_backups(storage: &Storage) -> Result<Vec<BackupSummary>> {
    let objects = storage.list(&format!("{BACKUPS_DIR}/")).await?;
    let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut encrypted = std::collections::BTreeSet::new();
    for o in objects {
        let mut parts = o.key.splitn(4, '/');
        let (Some(_), Some(id), Some(kind)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let entry = ids.entry(id.to_string()).or_default();
        if kind == "manifest" {
            entry.push(o.key.clone());
        } else if kind == "encryption.json" {
            encrypted.insert(id.to_string());
        }
    }
    let mut out = Vec::new();
    for (id, manifests) in ids {
        let encryption_key_id = if encrypted.contains(&id) {
            match storage.backup_key_record(&id).await {
                Ok(r) => r.map(|r| r.key_id()),
                Err(e) => Some(format!("unreadable ({e})")),
            }
        } else {
            None
        };
        let mut s = BackupSummary {
            backup_id: id.clone(),
            complete: false,
            shards: 0,
            shards_complete: 0,
            chain: None,
            parent: None,
            mode: None,
            started_at: None,
            completed_at: None,
            topics: Vec::new(),
            partitions: 0,
            records: 0,
            bytes: 0,
            stored_bytes: 0,
            segments: 0,
            encryption_key_id,
            problems: Vec::new(),
        };
        let mut topics = std::collections::BTreeSet::new();
        for key in &manifests {
            let data = match storage.get(key).await {
                Ok(Some(data)) => data,
                Ok(None) => continue,
                Err(e @ Error::Tampered { .. }) => {
                    s.problems.push(e.to_string());
                    continue;
                }
                Err(e) => return Err(e),
            };
            match Manifest::from_json(&data, key) {
                Err(e) => s.problems.push(e.to_string()),
                Ok(m) => {
                    s.shards = m.shard_count;
                    s.shards_complete += 1;
                    s.chain = m.chain.clone();
                    s.parent = m.parent.clone();
                    s.mode = Some(m.mode.clone());
                    s.started_at = Some(s.started_at.map_or(m.started_at, |t| t.min(m.started_at)));
                    s.completed_at = Some(
                        s.completed_at
                            .map_or(m.completed_at, |t| t.max(m.completed_at)),
                    );
                    topics.extend(m.topics.keys().cloned());
                    s.partitions += m.totals.partitions;
                    s.records += m.totals.records;
                    s.bytes += m.totals.bytes;
                    s.stored_bytes += m.totals.stored_bytes;
                    s.segments += m.totals.segments;
                }
            }
        }
        if s.shards == 0 {
            s.shards = manifests
                .iter()
                .filter_map(|k| shard_of(k))
                .map(|x| x.1)
                .max()
                .unwrap_or(1);
        }
        s.complete = s.problems.is_empty() && s.shards_complete == s.shards && s.shards > 0;
        s.topics = topics.into_iter().collect();
        out.push(s);
    }
    out.sort_by(|a, b| {
        b.started_at
            .cmp(&a.started_at)
            .then(b.backup_id.cmp(&a.backup_id))
    });
    Ok(out)
}

/// The complete backups under the location.
pub async fn complete_backups(storage: &Storage) -> Result<Vec<BackupSummary>> {
    Ok(list_backups(storage)
        .await?
        .into_iter()
        .filter(|b| b.complete)
        .collect())
}

/// Every shard manifest of a complete backup, in shard order.
///
/// A backup without manifests is [`Error::BackupNotFound`]; one with some shards missing is
/// [`Error::InvalidInput`] naming them (it is still being written, or a shard failed).
pub async fn load_manifests(storage: &Storage, id: &str) -> Result<Vec<Manifest>> {
    crate::snapshot::validate_id(id).map_err(|e| match e {
        Error::InvalidInput(m) => Error::invalid(m.replace("snapshot id", "backup id")),
        other => other,
    })?;
    let keys: Vec<String> = storage
        .list(&format!("{BACKUPS_DIR}/{id}/manifest/"))
        .await?
        .into_iter()
        .map(|o| o.key)
        .collect();
    if keys.is_empty() {
        let started = !storage
            .list(&format!("{BACKUPS_DIR}/{id}/"))
            .await?
            .is_empty();
        if started {
            return Err(Error::invalid(format!(
                "backup '{id}' in {} is incomplete: no shard has finished (it is running, or it was interrupted: run it again to resume)",
                storage.display()
            )));
        }
        return Err(Error::BackupNotFound {
            id: id.to_string(),
            location: storage.display().to_string(),
        });
    }
    let mut manifests = Vec::new();
    for key in &keys {
        let data = storage.get(key).await?.ok_or_else(|| Error::Storage {
            location: storage.display().to_string(),
            reason: format!("'{key}' disappeared while it was read"),
        })?;
        manifests.push(Manifest::from_json(&data, key)?);
    }
    manifests.sort_by_key(|m| m.shard_index);
    let count = manifests[0].shard_count;
    let have: Vec<u32> = manifests.iter().map(|m| m.shard_index).collect();
    if manifests.len() as u32 != count || manifests.iter().any(|m| m.shard_count != count) {
        let missing: Vec<String> = (0..count)
            .filter(|i| !have.contains(i))
            .map(|i| i.to_string())
            .collect();
        return Err(Error::invalid(format!(
            "backup '{id}' is incomplete: {} of {count} shards finished (missing shard {})",
            manifests.len(),
            missing.join(", ")
        )));
    }
    Ok(manifests)
}

/// One backup of a chain, with its shards' manifests.
#[derive(Debug, Clone)]
pub struct Link {
    pub backup_id: String,
    pub manifests: Vec<Manifest>,
}

/// Links a chain may have before it is taken for a loop of parents.
const MAX_LINKS: usize = 10_000;

/// The backups a restore of `id` reads, oldest first: with [`ChainScope::Full`], `id` and every
/// backup it continues (its `parent`, that one's parent, ...); with `Single`, `id` alone.
pub async fn load_chain(storage: &Storage, id: &str, scope: ChainScope) -> Result<Vec<Link>> {
    let mut links = vec![Link {
        backup_id: id.to_string(),
        manifests: load_manifests(storage, id).await?,
    }];
    loop {
        let child = &links[links.len() - 1];
        let parent = match scope {
            ChainScope::Full => child.manifests.iter().find_map(|m| m.parent.clone()),
            ChainScope::Single => None,
        };
        let Some(parent) = parent else {
            break;
        };
        if links.iter().any(|l| l.backup_id == parent) || links.len() >= MAX_LINKS {
            return Err(Error::invalid(format!(
                "backup '{}' names '{parent}' as its parent, which is already in its chain: the chain's manifests are inconsistent; restore one link alone with chain: single",
                child.backup_id
            )));
        }
        let manifests = load_manifests(storage, &parent).await.map_err(|e| {
            Error::invalid(format!(
                "backup '{}' continues backup '{parent}' (incremental chain), which cannot be read: {e}; restore '{}' alone with chain: single (--single-link)",
                child.backup_id, child.backup_id
            ))
        })?;
        links.push(Link {
            backup_id: parent,
            manifests,
        });
    }
    links.reverse();
    Ok(links)
}

/// Reads and decodes one segment, verifying its checksum and that it holds what the manifest
/// says (offsets and count); errors name the object.
pub async fn read_segment(storage: &Storage, entry: &SegmentEntry) -> Result<Vec<Record>> {
    let seg = read_segment_shared(storage, entry, Vec::new()).await?;
    Ok(seg.iter().map(|r| r.to_record()).collect())
}

/// [`read_segment`] without copying the records: they borrow from the object (uncompressed) or
/// from `buffer` filled with the decompressed block (see
/// [`decode_segment_shared`](super::format::decode_segment_shared)).
pub async fn read_segment_shared(
    storage: &Storage,
    entry: &SegmentEntry,
    buffer: Vec<u8>,
) -> Result<DecodedSegment> {
    read_segment_reusing(storage, entry, buffer, Vec::new())
        .await
        .map(|(seg, _)| seg)
}

/// [`read_segment_shared`] that also reads the object into `object` (on a local directory)
/// and gives that memory back when the decoded records do not point into it (a compressed
/// segment), for the next read.
pub async fn read_segment_reusing(
    storage: &Storage,
    entry: &SegmentEntry,
    buffer: Vec<u8>,
    object: Vec<u8>,
) -> Result<(DecodedSegment, Option<Vec<u8>>)> {
    let data = storage
        .get_into(&entry.key, object)
        .await?
        .ok_or_else(|| Error::Malformed {
            kind: "backup segment",
            file: entry.key.clone(),
            reason: "the object is missing".into(),
        })?;
    let seg = decode_segment_shared(data.clone(), &entry.key, buffer)
        .map_err(|e| Error::malformed_data("backup segment", entry.key.clone(), e))?;
    let stats = seg.stats();
    if stats.records != entry.stats.records
        || stats.first_offset != entry.stats.first_offset
        || stats.last_offset != entry.stats.last_offset
        || stats.crc32c != entry.stats.crc32c
    {
        return Err(Error::Malformed {
            kind: "backup segment",
            file: entry.key.clone(),
            reason: format!(
                "it holds {} records at offsets {}..={} (checksum {:#010x}) but the manifest lists {} at {}..={} ({:#010x})",
                stats.records, stats.first_offset, stats.last_offset, stats.crc32c,
                entry.stats.records, entry.stats.first_offset, entry.stats.last_offset, entry.stats.crc32c
            ),
        });
    }
    // Unique once decoded unless the records point into it.
    let object = data.try_into_mut().ok().map(Vec::from);
    Ok((seg, object))
}

/// One problem `verify-backup` found.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The object (or manifest) concerned.
    pub object: String,
    pub problem: String,
}

/// What `verify-backup` checked and found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyBackupReport {
    pub backup_id: String,
    pub deep: bool,
    pub ok: bool,
    pub shards: u32,
    pub partitions: u64,
    pub segments_checked: u64,
    pub records_checked: u64,
    pub bytes_checked: u64,
    pub problems: Vec<Problem>,
    /// Segments or documents that failed authentication (an encrypted backup altered).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub authentication_failures: u64,
    /// The key that wraps an encrypted backup's data key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key_id: Option<String>,
    /// False for an encrypted backup verified without its key: only the segments' presence was
    /// checked.
    pub content_checked: bool,
    pub duration_ms: u128,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Verifies a backup: every segment exists, its checksum holds and its header matches the
/// manifest; segments of a partition are in order, do not overlap and lie within the
/// partition's range; record counts add up. With `deep`, every record is decoded and its offset
/// checked (strictly increasing, within the segment's bounds).
pub async fn verify_backup(storage: &Storage, id: &str, deep: bool) -> Result<VerifyBackupReport> {
    let started = Instant::now();
    let manifests = load_manifests(storage, id).await?;
    let key_record = storage.backup_key_record(id).await?;
    // Without the key, an encrypted backup's segments can only be found, not read.
    let present: Option<std::collections::HashSet<String>> = match (&key_record, storage.vault()) {
        (Some(_), None) => Some(
            storage
                .list(&format!("{BACKUPS_DIR}/{id}/topics/"))
                .await?
                .into_iter()
                .map(|o| o.key)
                .collect(),
        ),
        _ => None,
    };
    let mut r = VerifyBackupReport {
        backup_id: id.to_string(),
        deep,
        ok: true,
        shards: manifests.len() as u32,
        partitions: 0,
        segments_checked: 0,
        records_checked: 0,
        bytes_checked: 0,
        problems: Vec::new(),
        authentication_failures: 0,
        encryption_key_id: key_record.as_ref().map(|k| k.key_id()),
        content_checked: present.is_none(),
        duration_ms: 0,
    };
    for m in &manifests {
        for (topic, td) in &m.topics {
            for (p, d) in &td.partition_data {
                r.partitions += 1;
                let name = format!("{topic}-{p}");
                let mut prev_last: Option<i64> = None;
                let mut records = 0u64;
                for seg in &d.segments {
                    r.segments_checked += 1;
                    let s = &seg.stats;
                    if s.first_offset < d.start_offset
                        || s.last_offset >= d.end_offset
                        || s.first_offset > s.last_offset
                    {
                        r.problems.push(Problem {
                            object: seg.key.clone(),
                            problem: format!(
                                "offsets {}..={} fall outside {name}'s range {}..{}",
                                s.first_offset, s.last_offset, d.start_offset, d.end_offset
                            ),
                        });
                    }
                    if let Some(prev) = prev_last {
                        if s.first_offset <= prev {
                            r.problems.push(Problem {
                                object: seg.key.clone(),
                                problem: format!(
                                    "starts at offset {} but the previous segment of {name} ends at {prev}",
                                    s.first_offset
                                ),
                            });
                        }
                    }
                    prev_last = Some(s.last_offset);
                    records += s.records;
                    let Some(data) =
                        fetch_for_verify(storage, seg, present.as_ref(), &mut r).await?
                    else {
                        continue;
                    };
                    r.bytes_checked += data.len() as u64;
                    if deep {
                        match decode_segment_shared(data.clone(), &seg.key, Vec::new()) {
                            Err(e) => r.problems.push(Problem {
                                object: seg.key.clone(),
                                problem: e.to_string(),
                            }),
                            Ok(recs) => {
                                r.records_checked += recs.len() as u64;
                                check_stats(&mut r.problems, seg, recs.stats());
                                let mut last: Option<i64> = None;
                                for rec in recs.iter() {
                                    if last.is_some_and(|l| rec.offset <= l)
                                        || rec.offset < s.first_offset
                                        || rec.offset > s.last_offset
                                    {
                                        r.problems.push(Problem {
                                            object: seg.key.clone(),
                                            problem: format!(
                                                "record at offset {} is out of order or outside {}..={}",
                                                rec.offset, s.first_offset, s.last_offset
                                            ),
                                        });
                                        break;
                                    }
                                    last = Some(rec.offset);
                                }
                                if recs.len() as u64 != s.records {
                                    r.problems.push(Problem {
                                        object: seg.key.clone(),
                                        problem: format!(
                                            "holds {} records, the manifest says {}",
                                            recs.len(),
                                            s.records
                                        ),
                                    });
                                }
                            }
                        }
                    } else {
                        match check_segment(&data, &seg.key) {
                            Err(e) => r.problems.push(Problem {
                                object: seg.key.clone(),
                                problem: e.to_string(),
                            }),
                            Ok(stats) => check_stats(&mut r.problems, seg, &stats),
                        }
                    }
                }
                if records != d.records {
                    r.problems.push(Problem {
                        object: format!(
                            "{name} in {}",
                            super::manifest::manifest_key(id, m.shard_index, m.shard_count)
                        ),
                        problem: format!(
                            "its segments hold {records} records, the manifest says {}",
                            d.records
                        ),
                    });
                }
            }
        }
    }
    r.ok = r.problems.is_empty();
    r.duration_ms = started.elapsed().as_millis();
    Ok(r)
}

/// A segment's content for verification: `None` when it is missing, fails authentication (both
/// noted as problems) or, for an encrypted backup read without its key, is only checked to be
/// among the `present` objects.
async fn fetch_for_verify(
    storage: &Storage,
    seg: &SegmentEntry,
    present: Option<&std::collections::HashSet<String>>,
    r: &mut VerifyBackupReport,
) -> Result<Option<bytes::Bytes>> {
    let missing = || Problem {
        object: seg.key.clone(),
        problem: "the segment is missing".into(),
    };
    if let Some(present) = present {
        if !present.contains(&seg.key) {
            r.problems.push(missing());
        }
        return Ok(None);
    }
    match storage.get(&seg.key).await {
        Ok(Some(data)) => Ok(Some(data)),
        Ok(None) => {
            r.problems.push(missing());
            Ok(None)
        }
        Err(Error::Tampered { reason, .. }) => {
            r.authentication_failures += 1;
            r.problems.push(Problem {
                object: seg.key.clone(),
                problem: format!("authentication failed: {reason}"),
            });
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn check_stats(
    problems: &mut Vec<Problem>,
    seg: &SegmentEntry,
    stats: &super::format::SegmentStats,
) {
    let m = &seg.stats;
    if stats.crc32c != m.crc32c
        || stats.records != m.records
        || stats.first_offset != m.first_offset
        || stats.last_offset != m.last_offset
        || stats.min_timestamp != m.min_timestamp
        || stats.max_timestamp != m.max_timestamp
    {
        problems.push(Problem {
            object: seg.key.clone(),
            problem: format!(
                "its header ({} records, offsets {}..={}, checksum {:#010x}) differs from the manifest ({} records, {}..={}, {:#010x})",
                stats.records, stats.first_offset, stats.last_offset, stats.crc32c,
                m.records, m.first_offset, m.last_offset, m.crc32c
            ),
        });
    }
}

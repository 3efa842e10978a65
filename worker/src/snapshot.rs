//! Offset snapshots: the stored document (snapshotId, timestamp, cluster, groups → topics →
//! partition → {offset, metadata, timestamp}) and where it is kept:
//! `<location>/snapshots/<snapshotId>.json` in a storage location, or the `<snapshotId>.json`
//! entry of a ConfigMap. Snapshots are never overwritten. Snapshots the kafka-backup operator
//! stored directly under its prefix (`<location>/<snapshotId>.json`) are read too: listed,
//! shown, verified, rolled back to and deleted like ours.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::configmap::ConfigMapStore;
use crate::error::{Error, Result};
use crate::kafka::CommittedOffset;
use crate::storage::Storage;

/// Folder, under the storage root, that holds snapshot documents.
pub const SNAPSHOT_DIR: &str = "snapshots";

/// Longest accepted snapshot id (a Kubernetes object name's limit).
pub use tidemark_task::ids::MAX_ID_LEN;

/// One stored snapshot of consumer-group offsets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OffsetSnapshot {
    pub snapshot_id: String,
    #[serde(with = "rfc3339")]
    pub timestamp: DateTime<Utc>,
    /// Bootstrap servers of the cluster the offsets were read from.
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub groups: BTreeMap<String, GroupSnapshot>,
}

/// The committed offsets of one group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSnapshot {
    pub topics: BTreeMap<String, BTreeMap<i32, PartitionSnapshot>>,
}

/// One partition's committed offset at snapshot time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionSnapshot {
    pub offset: i64,
    #[serde(default)]
    pub metadata: String,
    /// Epoch milliseconds at which the offset was read.
    #[serde(default)]
    pub timestamp: i64,
}

impl GroupSnapshot {
    /// Builds a group snapshot from committed offsets read at `read_at_ms`.
    pub fn from_committed(offsets: &[CommittedOffset], read_at_ms: i64) -> Self {
        let mut topics: BTreeMap<String, BTreeMap<i32, PartitionSnapshot>> = BTreeMap::new();
        for o in offsets {
            topics.entry(o.topic.clone()).or_default().insert(
                o.partition,
                PartitionSnapshot {
                    offset: o.offset,
                    metadata: o.metadata.clone(),
                    timestamp: read_at_ms,
                },
            );
        }
        GroupSnapshot { topics }
    }

    /// The offsets to commit to bring the group back to this snapshot.
    pub fn to_commits(&self) -> Vec<CommittedOffset> {
        self.topics
            .iter()
            .flat_map(|(topic, parts)| {
                parts.iter().map(move |(p, s)| CommittedOffset {
                    topic: topic.clone(),
                    partition: *p,
                    offset: s.offset,
                    metadata: s.metadata.clone(),
                })
            })
            .collect()
    }

    /// Number of partitions with an offset.
    pub fn partition_count(&self) -> usize {
        self.topics.values().map(BTreeMap::len).sum()
    }
}

impl OffsetSnapshot {
    /// Total partitions over all groups.
    pub fn offset_count(&self) -> usize {
        self.groups
            .values()
            .map(GroupSnapshot::partition_count)
            .sum()
    }

    /// Parses and validates a snapshot document; `file` names it in errors.
    pub fn from_json(data: &[u8], file: &str) -> Result<Self> {
        crate::limits::check_size(data.len(), crate::limits::MAX_SNAPSHOT_BYTES).map_err(
            |reason| Error::Malformed {
                kind: "snapshot",
                file: file.to_string(),
                reason,
            },
        )?;
        let snap: OffsetSnapshot =
            serde_json::from_slice(data).map_err(|e| Error::malformed_json("snapshot", file, e))?;
        snap.validate().map_err(|reason| Error::Malformed {
            kind: "snapshot",
            file: file.to_string(),
            reason,
        })?;
        Ok(snap)
    }

    /// Checks invariants serde cannot: a valid id, non-negative partitions and offsets.
    pub fn validate(&self) -> std::result::Result<(), String> {
        validate_id(&self.snapshot_id).map_err(|e| e.to_string())?;
        for (group, g) in &self.groups {
            if group.is_empty() {
                return Err("a group name is empty".into());
            }
            for (topic, parts) in &g.topics {
                if topic.is_empty() {
                    return Err(format!("group '{group}' has an empty topic name"));
                }
                for (p, s) in parts {
                    if *p < 0 {
                        return Err(format!(
                            "group '{group}' topic '{topic}' has partition {p} < 0"
                        ));
                    }
                    if s.offset < 0 {
                        return Err(format!(
                            "group '{group}' {topic}:{p} has offset {} < 0",
                            s.offset
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Pretty JSON, as stored.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|e| Error::encode("snapshot", e))
    }
}

/// Where an operation that moves committed offsets (reset, rollback) keeps the offsets it is
/// about to change, stored before it changes them, so that rolling back to it undoes the
/// operation.
#[derive(Debug, Clone)]
pub struct SafetySnapshot {
    pub store: SnapshotStore,
    /// Snapshot id (default: generated).
    pub id: Option<String>,
    /// An existing snapshot with this id is kept as it is rather than refused: a retried run
    /// keeps the offsets its first attempt captured.
    pub reuse_existing: bool,
}

/// A stored (or kept) safety snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyStored {
    pub id: String,
    /// The store's location.
    pub location: String,
    /// It existed (a retried run) and was kept as it was.
    pub reused: bool,
}

impl SafetySnapshot {
    /// Stores `before` (each group's committed offsets about to change) as a snapshot of
    /// `cluster`, `description` saying what changes them. `None` when there is nothing to
    /// store; an existing id is an error unless [`reuse_existing`](Self::reuse_existing).
    pub async fn store(
        &self,
        cluster: &str,
        description: String,
        before: BTreeMap<String, Vec<CommittedOffset>>,
    ) -> Result<Option<SafetyStored>> {
        let now = Utc::now();
        let id = match &self.id {
            Some(id) => {
                validate_id(id)?;
                id.clone()
            }
            None => generate_id(now),
        };
        let stored = |reused| SafetyStored {
            id: id.clone(),
            location: self.store.location().to_string(),
            reused,
        };
        if self.store.exists(&id).await? {
            if self.reuse_existing {
                self.store.load(&id).await?;
                return Ok(Some(stored(true)));
            }
            return Err(Error::invalid(format!(
                "snapshot '{id}' already exists in {}; choose another --snapshot-id",
                self.store.location()
            )));
        }
        let read_at = now.timestamp_millis();
        let groups: BTreeMap<String, GroupSnapshot> = before
            .into_iter()
            .filter(|(_, offsets)| !offsets.is_empty())
            .map(|(g, offsets)| (g, GroupSnapshot::from_committed(&offsets, read_at)))
            .collect();
        if groups.is_empty() {
            return Ok(None);
        }
        self.store
            .save(&OffsetSnapshot {
                snapshot_id: id.clone(),
                timestamp: now,
                cluster: cluster.to_string(),
                description: Some(description),
                groups,
            })
            .await?;
        Ok(Some(stored(false)))
    }
}

/// A new id: `snap-YYYYMMDD-HHMMSS-<8 hex>`.
pub fn generate_id(now: DateTime<Utc>) -> String {
    format!(
        "snap-{}-{:08x}",
        now.format("%Y%m%d-%H%M%S"),
        rand::random::<u32>()
    )
}

/// Accepts ids of 1..=253 characters from `[A-Za-z0-9._-]`, starting with a letter or digit
/// and never containing `..`, so an id can never leave the snapshot folder.
pub fn validate_id(id: &str) -> Result<()> {
    tidemark_task::ids::validate_id(id).map_err(Error::invalid)
}

/// Summary of a stored snapshot, for `list`.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotSummary {
    pub snapshot_id: String,
    pub created_at: String,
    pub cluster: String,
    pub groups: usize,
    pub offsets: usize,
    pub description: Option<String>,
}

impl From<&OffsetSnapshot> for SnapshotSummary {
    fn from(s: &OffsetSnapshot) -> Self {
        SnapshotSummary {
            snapshot_id: s.snapshot_id.clone(),
            created_at: s.timestamp.to_rfc3339_opts(SecondsFormat::Secs, true),
            cluster: s.cluster.clone(),
            groups: s.groups.len(),
            offsets: s.offset_count(),
            description: s.description.clone(),
        }
    }
}

/// A stored object that could not be read as a snapshot during `list`.
#[derive(Debug, Clone, Serialize)]
pub struct UnreadableSnapshot {
    pub file: String,
    pub error: String,
}

/// Snapshots in one place: a storage location (`<location>/snapshots/<id>.json`, and
/// `<location>/<id>.json` read as well) or a Kubernetes ConfigMap (`<id>.json` entries). Both behave alike: ids are validated, an existing
/// snapshot is never overwritten, a missing one is [`Error::SnapshotNotFound`], a damaged one
/// [`Error::Malformed`] naming it.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Objects(Storage),
    ConfigMap(Box<ConfigMapStore>),
}

impl SnapshotStore {
    /// Snapshots under `<storage>/snapshots/`.
    pub fn new(storage: Storage) -> Self {
        SnapshotStore {
            backend: Backend::Objects(storage),
        }
    }

    /// Snapshots as the entries of one ConfigMap.
    pub fn config_map(store: ConfigMapStore) -> Self {
        SnapshotStore {
            backend: Backend::ConfigMap(Box::new(store)),
        }
    }

    /// The location as the user gave it, or `configmap://<namespace>/<name>`.
    pub fn location(&self) -> &str {
        match &self.backend {
            Backend::Objects(storage) => storage.display(),
            Backend::ConfigMap(cm) => cm.location(),
        }
    }

    fn key(id: &str) -> String {
        format!("{SNAPSHOT_DIR}/{id}.json")
    }

    /// Where the kafka-backup operator keeps a snapshot: directly under its prefix.
    fn flat_key(id: &str) -> String {
        format!("{id}.json")
    }

    /// How a snapshot's object (or ConfigMap entry) is named in messages.
    pub fn file_name(&self, id: &str) -> String {
        let key = match &self.backend {
            Backend::Objects(_) => Self::key(id),
            Backend::ConfigMap(_) => ConfigMapStore::key(id),
        };
        self.object_name(&key)
    }

    fn not_found(&self, id: &str) -> Error {
        Error::SnapshotNotFound {
            id: id.to_string(),
            location: self.location().to_string(),
        }
    }

    /// The snapshot's document and its name for messages: ours first, else one stored
    /// directly under the location.
    async fn get(&self, id: &str) -> Result<Option<(String, Bytes)>> {
        match &self.backend {
            Backend::Objects(storage) => {
                if let Some(data) = storage.get(&Self::key(id)).await? {
                    return Ok(Some((self.file_name(id), data)));
                }
                let flat = Self::flat_key(id);
                Ok(storage
                    .get(&flat)
                    .await?
                    .filter(|data| claims_to_be_a_snapshot(data))
                    .map(|data| (self.object_name(&flat), data)))
            }
            Backend::ConfigMap(cm) => Ok(cm
                .get(id)
                .await?
                .map(|doc| (self.file_name(id), Bytes::from(doc)))),
        }
    }

    fn object_name(&self, key: &str) -> String {
        format!("{}/{key}", self.location().trim_end_matches('/'))
    }

    /// Whether a snapshot with this id exists.
    pub async fn exists(&self, id: &str) -> Result<bool> {
        validate_id(id)?;
        Ok(self.get(id).await?.is_some())
    }

    /// Stores a new snapshot; refuses to overwrite an existing one (conditional create, so two
    /// concurrent writers of one id cannot both succeed). A ConfigMap store also refuses a
    /// snapshot that would take the ConfigMap past its size limit.
    #[tracing::instrument(name = "snapshot.save", skip_all, fields(snapshot_id = %snap.snapshot_id, location = %self.location()))]
    pub async fn save(&self, snap: &OffsetSnapshot) -> Result<()> {
        validate_id(&snap.snapshot_id)?;
        let data = snap.to_json()?;
        let created = match &self.backend {
            Backend::Objects(storage) => {
                storage
                    .put_new(&Self::key(&snap.snapshot_id), Bytes::from(data))
                    .await?
            }
            Backend::ConfigMap(cm) => {
                let text = String::from_utf8(data).map_err(|e| Error::encode("snapshot", e))?;
                cm.put_new(&snap.snapshot_id, &text).await?
            }
        };
        if created {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "snapshot '{}' already exists in {}; choose another --snapshot-id or delete the old one first",
                snap.snapshot_id,
                self.location()
            )))
        }
    }

    /// Reads and validates a snapshot.
    #[tracing::instrument(name = "snapshot.load", skip_all, fields(snapshot_id = %id, location = %self.location()))]
    pub async fn load(&self, id: &str) -> Result<OffsetSnapshot> {
        validate_id(id)?;
        let (file, data) = self.get(id).await?.ok_or_else(|| self.not_found(id))?;
        let snap = OffsetSnapshot::from_json(&data, &file)?;
        if snap.snapshot_id != id {
            return Err(Error::Malformed {
                kind: "snapshot",
                file,
                reason: format!("it holds snapshotId '{}', not '{id}'", snap.snapshot_id),
            });
        }
        Ok(snap)
    }

    /// The stored documents as (file name for messages, contents).
    async fn documents(&self) -> Result<Vec<(String, Bytes)>> {
        match &self.backend {
            Backend::Objects(storage) => {
                let objects = storage.list(&format!("{SNAPSHOT_DIR}/")).await?;
                let mut out = Vec::new();
                for obj in objects {
                    let Some(name) = obj
                        .key
                        .strip_prefix(&format!("{SNAPSHOT_DIR}/"))
                        .and_then(|n| n.strip_suffix(".json"))
                    else {
                        continue;
                    };
                    if name.contains('/') {
                        continue;
                    }
                    if let Some(data) = storage.get(&obj.key).await? {
                        out.push((self.file_name(name), data));
                    }
                }
                self.flat_documents(storage, &mut out).await?;
                Ok(out)
            }
            Backend::ConfigMap(cm) => Ok(cm
                .entries()
                .await?
                .into_iter()
                .map(|(id, doc)| (self.file_name(&id), Bytes::from(doc)))
                .collect()),
        }
    }

    /// Adds to `out` the snapshots stored directly under the location (`<id>.json`) whose id is
    /// not already in `snapshots/`. Other JSON files may live there too: one is taken for a
    /// snapshot, readable or not, only when it is a JSON object with a `snapshotId`.
    async fn flat_documents(
        &self,
        storage: &Storage,
        out: &mut Vec<(String, Bytes)>,
    ) -> Result<()> {
        for obj in storage.list_folder("").await? {
            let Some(id) = obj.key.strip_suffix(".json") else {
                continue;
            };
            if validate_id(id).is_err() || out.iter().any(|(f, _)| *f == self.file_name(id)) {
                continue;
            }
            let Some(data) = storage.get(&obj.key).await? else {
                continue;
            };
            if claims_to_be_a_snapshot(&data) {
                out.push((self.object_name(&obj.key), data));
            }
        }
        Ok(())
    }

    /// All readable snapshots, newest first, plus the objects that could not be read.
    #[tracing::instrument(name = "snapshot.list", skip_all, fields(location = %self.location()))]
    pub async fn list(&self) -> Result<(Vec<OffsetSnapshot>, Vec<UnreadableSnapshot>)> {
        let mut snaps = Vec::new();
        let mut unreadable = Vec::new();
        for (file, data) in self.documents().await? {
            match OffsetSnapshot::from_json(&data, &file) {
                Ok(s) => snaps.push(s),
                Err(e) => unreadable.push(UnreadableSnapshot {
                    file,
                    error: e.to_string(),
                }),
            }
        }
        snaps.sort_by(|a, b| {
            b.timestamp
                .cmp(&a.timestamp)
                .then_with(|| b.snapshot_id.cmp(&a.snapshot_id))
        });
        Ok((snaps, unreadable))
    }

    /// Deletes a snapshot; `SnapshotNotFound` if it does not exist.
    #[tracing::instrument(name = "snapshot.delete", skip_all, fields(snapshot_id = %id, location = %self.location()))]
    pub async fn delete(&self, id: &str) -> Result<()> {
        validate_id(id)?;
        let deleted = match &self.backend {
            Backend::Objects(storage) => {
                // Both layouts, so that no copy of the id is left to be found.
                let ours = storage.delete(&Self::key(id)).await?;
                let flat = match storage.get(&Self::flat_key(id)).await? {
                    Some(data) if claims_to_be_a_snapshot(&data) => {
                        storage.delete(&Self::flat_key(id)).await?
                    }
                    _ => false,
                };
                ours || flat
            }
            Backend::ConfigMap(cm) => cm.delete(id).await?,
        };
        if deleted {
            Ok(())
        } else {
            Err(self.not_found(id))
        }
    }
}

/// Whether a file stored beside others (directly under a location) is meant as a snapshot: a
/// JSON object with a `snapshotId`. Such a file is a snapshot, readable or damaged; any other
/// file there is someone else's.
fn claims_to_be_a_snapshot(data: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(data)
        .is_ok_and(|doc| doc.contains_key("snapshotId"))
}

/// RFC 3339 with millisecond precision and a `Z` suffix; any RFC 3339 offset is accepted.
mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| serde::de::Error::custom(format!("timestamp '{s}' is not RFC 3339: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The snapshot example of the KafkaOffsetRollback reference, verbatim.
    const REFERENCE_SNAPSHOT: &str = r#"{
  "snapshotId": "pre-migration-20241201",
  "timestamp": "2024-12-01T12:00:00Z",
  "cluster": "kafka:9092",
  "groups": {
    "order-processor": {
      "topics": {
        "orders": {
          "0": {
            "offset": 1000,
            "metadata": "",
            "timestamp": 1701432000000
          },
          "1": {
            "offset": 2000,
            "metadata": "",
            "timestamp": 1701432000000
          }
        },
        "payments": {
          "0": {
            "offset": 500,
            "metadata": "",
            "timestamp": 1701432000000
          }
        }
      }
    },
    "payment-handler": {
      "topics": {
        "payments": {
          "0": {
            "offset": 500,
            "metadata": "",
            "timestamp": 1701432000000
          }
        }
      }
    }
  }
}"#;

    #[test]
    fn parses_the_reference_snapshot_exactly() {
        let snap = OffsetSnapshot::from_json(REFERENCE_SNAPSHOT.as_bytes(), "reference.json")
            .expect("reference snapshot parses");
        assert_eq!(snap.snapshot_id, "pre-migration-20241201");
        assert_eq!(snap.cluster, "kafka:9092");
        assert_eq!(snap.timestamp.timestamp_millis(), 1_733_054_400_000);
        assert_eq!(snap.groups.len(), 2);
        assert_eq!(snap.offset_count(), 4);
        let op = &snap.groups["order-processor"];
        assert_eq!(op.topics["orders"][&1].offset, 2000);
        assert_eq!(op.topics["payments"][&0].timestamp, 1_701_432_000_000);
        let commits = op.to_commits();
        assert_eq!(commits.len(), 3);
        assert_eq!(commits[0].topic, "orders");
        assert_eq!((commits[1].partition, commits[1].offset), (1, 2000));
    }

    #[test]
    fn round_trips_through_json() {
        let snap = OffsetSnapshot::from_json(REFERENCE_SNAPSHOT.as_bytes(), "reference.json")
            .expect("reference snapshot parses");
        let mut with_desc = snap.clone();
        with_desc.description = Some("before deploy".into());
        let bytes = with_desc.to_json().expect("encode");
        let back = OffsetSnapshot::from_json(&bytes, "x").expect("decode");
        assert_eq!(back, with_desc);
        let text = String::from_utf8(bytes).expect("utf8");
        assert!(text.contains("\"snapshotId\""));
        assert!(text.contains("\"description\": \"before deploy\""));
    }

    #[test]
    fn malformed_documents_name_the_file() {
        let err = OffsetSnapshot::from_json(b"{\"snapshotId\": 3}", "s3://b/snapshots/x.json")
            .expect_err("must fail");
        assert_eq!(err.exit_code(), 8);
        assert!(err.to_string().contains("s3://b/snapshots/x.json"), "{err}");
        let negative = REFERENCE_SNAPSHOT.replace("\"offset\": 500", "\"offset\": -5");
        let err = OffsetSnapshot::from_json(negative.as_bytes(), "f").expect_err("must fail");
        assert!(err.to_string().contains("< 0"), "{err}");
        let bad_partition = REFERENCE_SNAPSHOT.replace("\"1\": {", "\"one\": {");
        assert!(OffsetSnapshot::from_json(bad_partition.as_bytes(), "f").is_err());
    }

    #[test]
    fn generated_ids_have_the_documented_shape() {
        let now = DateTime::parse_from_rfc3339("2024-11-29T14:30:52Z")
            .expect("time")
            .with_timezone(&Utc);
        let id = generate_id(now);
        let re = regex::Regex::new(r"^snap-20241129-143052-[0-9a-f]{8}$").expect("regex");
        assert!(re.is_match(&id), "{id}");
        assert!(validate_id(&id).is_ok());
    }

    #[test]
    fn ids_that_could_escape_are_rejected() {
        for bad in [
            "",
            "..",
            "../x",
            "a/b",
            "a\\b",
            "/etc/passwd",
            ".hidden",
            "a..b",
            "a b",
            "x\u{0}",
            "snap?",
            "-flag",
        ] {
            let err = validate_id(bad).expect_err(bad);
            assert_eq!(err.exit_code(), 2, "{bad}");
        }
        assert!(validate_id(&"a".repeat(254)).is_err());
        for good in [
            "pre-migration-20241201",
            "snapshot-20241203-100000",
            "a",
            "v1.2_x",
        ] {
            assert!(validate_id(good).is_ok(), "{good}");
        }
    }

    #[tokio::test]
    async fn storing_loading_and_deleting_a_snapshot_run_in_spans_naming_it() -> Result<()> {
        let (spans, _guard) = crate::trace_capture::Spans::install();
        let dir = tempfile::tempdir().map_err(|e| Error::invalid(e.to_string()))?;
        let location = dir.path().display().to_string();
        let storage = Storage::open(&location, &crate::storage::StorageOptions::default())?;
        let store = SnapshotStore::new(storage);
        let snap = OffsetSnapshot::from_json(REFERENCE_SNAPSHOT.as_bytes(), "reference.json")?;
        store.save(&snap).await?;
        assert_eq!(store.load(&snap.snapshot_id).await?, snap);
        store.list().await?;
        store.delete(&snap.snapshot_id).await?;
        for name in ["snapshot.save", "snapshot.load", "snapshot.delete"] {
            let seen = spans.named(name);
            assert_eq!(seen.len(), 1, "{name}: {seen:?}");
            assert_eq!(seen[0]["snapshot_id"], "pre-migration-20241201", "{name}");
            assert_eq!(seen[0]["location"], store.location(), "{name}");
        }
        assert_eq!(spans.named("snapshot.list").len(), 1);
        Ok(())
    }
}

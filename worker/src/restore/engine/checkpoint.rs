//! The checkpoint of a running restore: each unit's start offset in the target and the records
//! confirmed so far, stored in the backup storage (or a local file) so that an interrupted run
//! resumes where it stopped.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::producer::{lock, UnitState};
use crate::error::{Error, Result};
use crate::failpoints::crash_at;
use crate::restore::mapping::{checkpoint_key, PartitionMapping};
use crate::restore::plan::RestorePlan;
use crate::storage::Storage;
use crate::task::RestoreTask;

/// Version tag of the checkpoint document.
pub const CHECKPOINT_FORMAT: &str = "tidemark-restore-checkpoint/1";

/// A unit's progress in the checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitCheckpoint {
    /// Target offset where the unit's first record goes (recorded before it is sent).
    pub target_start: i64,
    pub done: bool,
    /// Payload bytes confirmed.
    pub bytes: u64,
    /// Records confirmed so far.
    pub mapping: PartitionMapping,
}

/// The checkpoint of a running or interrupted restore.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: String,
    pub backup_id: String,
    pub restore_id: String,
    /// Fingerprint of what decides the restored content; a checkpoint is only resumed by the
    /// same selection.
    pub config_hash: String,
    pub start_time: DateTime<Utc>,
    pub last_checkpoint_time: DateTime<Utc>,
    pub records_restored: u64,
    pub bytes_restored: u64,
    /// Per source partition (`topic/partition`).
    pub units: BTreeMap<String, UnitCheckpoint>,
}

/// Where the checkpoint lives.
#[derive(Debug, Clone)]
pub enum CheckpointStore {
    Storage { storage: Storage, key: String },
    File(PathBuf),
}

impl CheckpointStore {
    pub fn describe(&self) -> String {
        match self {
            CheckpointStore::Storage { storage, key } => format!("{}/{key}", storage.display()),
            CheckpointStore::File(p) => p.display().to_string(),
        }
    }

    pub async fn load(&self) -> Result<Option<Checkpoint>> {
        let data = match self {
            CheckpointStore::Storage { storage, key } => {
                storage.get(key).await?.map(|b| b.to_vec())
            }
            CheckpointStore::File(p) => match std::fs::read(p) {
                Ok(d) => Some(d),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Err(Error::Io {
                        path: p.clone(),
                        source: e,
                    })
                }
            },
        };
        match data {
            None => Ok(None),
            Some(d) => serde_json::from_slice(&d)
                .map(Some)
                .map_err(|e| Error::malformed_json("restore checkpoint", self.describe(), e)),
        }
    }

    pub async fn save(&self, c: &Checkpoint) -> Result<()> {
        let data = serde_json::to_vec_pretty(c)
            .map_err(|e| Error::malformed_json("restore checkpoint", self.describe(), e))?;
        match self {
            CheckpointStore::Storage { storage, key } => storage.put(key, Bytes::from(data)).await,
            CheckpointStore::File(p) => {
                let io = |e: std::io::Error| Error::Io {
                    path: p.clone(),
                    source: e,
                };
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let tmp = p.with_extension("tmp");
                std::fs::write(&tmp, &data).map_err(io)?;
                std::fs::rename(&tmp, p).map_err(io)
            }
        }
    }

    pub async fn delete(&self) -> Result<()> {
        match self {
            CheckpointStore::Storage { storage, key } => storage.delete(key).await.map(|_| ()),
            CheckpointStore::File(p) => match std::fs::remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
                    path: p.clone(),
                    source: e,
                }),
                _ => Ok(()),
            },
        }
    }
}

/// The checkpoint store a task uses.
pub fn checkpoint_store(storage: &Storage, t: &RestoreTask, restore_id: &str) -> CheckpointStore {
    match &t.checkpoint_state {
        Some(path) => CheckpointStore::File(PathBuf::from(path)),
        None => CheckpointStore::Storage {
            storage: storage.clone(),
            key: checkpoint_key(&t.backup_id, restore_id),
        },
    }
}

/// Fingerprint of the selection (what a resumed run must share with the first one).
pub fn config_hash(t: &RestoreTask, restore_id: &str) -> String {
    let key = format!("{restore_id}\n{}", t.selection_key());
    format!("{:08x}", crc32c::crc32c(key.as_bytes()))
}

/// The checkpoint to continue from (and `true`), or a fresh one for a first run. A checkpoint
/// of another restore configuration is refused.
pub(super) async fn load_or_start(
    store: &CheckpointStore,
    t: &RestoreTask,
    restore_id: &str,
) -> Result<(Checkpoint, bool)> {
    let hash = config_hash(t, restore_id);
    match store.load().await? {
        Some(c) if c.config_hash != hash || c.backup_id != t.backup_id => {
            Err(Error::invalid(format!(
                "the checkpoint {} belongs to another restore configuration (restore '{}' of backup '{}'); keep the configuration of the interrupted run to resume it, or delete the checkpoint (or give another restore id) to start over",
                store.describe(),
                c.restore_id,
                c.backup_id
            )))
        }
        Some(c) => {
            tracing::info!(
                checkpoint = %store.describe(),
                records = c.records_restored,
                partitions_started = c.units.len(),
                "loaded checkpoint: resuming"
            );
            Ok((c, true))
        }
        None => Ok((
            Checkpoint {
                format: CHECKPOINT_FORMAT.into(),
                backup_id: t.backup_id.clone(),
                restore_id: restore_id.to_string(),
                config_hash: hash,
                start_time: Utc::now(),
                last_checkpoint_time: Utc::now(),
                records_restored: 0,
                bytes_restored: 0,
                units: BTreeMap::new(),
            },
            false,
        )),
    }
}

/// Each unit's live state, from the checkpoint where it has them, with the records and bytes
/// the checkpoint holds.
pub(super) fn unit_states(
    plan: &RestorePlan,
    checkpoint: &Checkpoint,
) -> (Vec<Mutex<UnitState>>, u64, u64) {
    let mut states = Vec::with_capacity(plan.units.len());
    let mut already = 0u64;
    let mut already_bytes = 0u64;
    for u in &plan.units {
        let state = match checkpoint.units.get(&u.key()) {
            Some(c) => {
                already += c.mapping.records;
                already_bytes += c.bytes;
                UnitState {
                    mapping: c.mapping.clone(),
                    inflight: VecDeque::new(),
                    queued: 0,
                    bytes: c.bytes,
                    error: None,
                    done: c.done,
                    target_start: c.target_start,
                    started: true,
                }
            }
            None => UnitState {
                mapping: PartitionMapping {
                    era: u.era,
                    ..PartitionMapping::new(
                        (&u.source_topic, u.source_partition),
                        (&u.target_topic, u.target_partition),
                        0,
                    )
                },
                inflight: VecDeque::new(),
                queued: 0,
                bytes: 0,
                error: None,
                done: false,
                target_start: 0,
                started: false,
            },
        };
        states.push(Mutex::new(state));
    }
    (states, already, already_bytes)
}

/// Writes the checkpoint of a running restore from its units' live state, one write at a time.
pub(super) struct CheckpointWriter {
    restore_id: String,
    store: CheckpointStore,
    doc: Mutex<Checkpoint>,
    one_at_a_time: tokio::sync::Mutex<()>,
    /// The units' keys in the checkpoint, in plan order.
    keys: Vec<String>,
}

impl CheckpointWriter {
    pub(super) fn new(
        restore_id: &str,
        store: CheckpointStore,
        doc: Checkpoint,
        plan: &RestorePlan,
    ) -> Self {
        CheckpointWriter {
            restore_id: restore_id.to_string(),
            store,
            doc: Mutex::new(doc),
            one_at_a_time: tokio::sync::Mutex::new(()),
            keys: plan.units.iter().map(|u| u.key()).collect(),
        }
    }

    /// Copies the started units' live state (in plan order) into the checkpoint and writes it.
    #[tracing::instrument(name = "restore_checkpoint", skip_all, fields(restore_id = %self.restore_id))]
    pub(super) async fn write(&self, units: &[Mutex<UnitState>]) -> Result<()> {
        let _one = self.one_at_a_time.lock().await;
        let doc = {
            let mut c = match self.doc.lock() {
                Ok(c) => c,
                Err(p) => p.into_inner(),
            };
            let mut records = 0;
            let mut bytes = 0;
            for (key, s) in self.keys.iter().zip(units) {
                let s = lock(s);
                if !s.started {
                    continue;
                }
                records += s.mapping.records;
                bytes += s.bytes;
                c.units.insert(
                    key.clone(),
                    UnitCheckpoint {
                        target_start: s.target_start,
                        done: s.done,
                        bytes: s.bytes,
                        mapping: s.mapping.clone(),
                    },
                );
            }
            c.records_restored = records;
            c.bytes_restored = bytes;
            c.last_checkpoint_time = Utc::now();
            c.clone()
        };
        self.store.save(&doc).await?;
        crash_at("restore-checkpoint");
        tracing::debug!(records = doc.records_restored, "checkpoint written");
        Ok(())
    }
}

/// How often a restore checkpoints its progress: `checkpoint_interval_secs`, else
/// [`DEFAULT_CHECKPOINT_SECS`](crate::task::DEFAULT_CHECKPOINT_SECS).
pub(super) fn checkpoint_interval(t: &RestoreTask) -> Duration {
    Duration::from_secs(
        t.checkpoint_interval_secs
            .unwrap_or(crate::task::DEFAULT_CHECKPOINT_SECS),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_without_an_interval_checkpoints_every_60_seconds() {
        let config = |restore: &str| {
            let text = format!(
                "mode: restore\nbackup_id: b1\ntarget:\n  bootstrap_servers: [kafka:9092]\nstorage:\n  backend: filesystem\n  path: /data\n{restore}"
            );
            crate::restore::config::parse_config(&text, "restore.yaml", |_| None)
                .expect("parses")
                .task
        };
        let documented = config("restore:\n  checkpoint_interval_secs: 60\n");
        assert_eq!(checkpoint_interval(&documented), Duration::from_secs(60));
        for omitted in [config(""), config("restore:\n  dry_run: false\n")] {
            assert_eq!(
                checkpoint_interval(&omitted),
                checkpoint_interval(&documented),
                "an omitted checkpoint_interval_secs is the documented default"
            );
        }
    }

    #[tokio::test]
    async fn checkpoint_files_round_trip_atomically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::File(dir.path().join("sub/ckpt.json"));
        assert!(store.load().await.expect("load").is_none());
        let mut m = PartitionMapping::new(("a", 0), ("b", 0), 5);
        m.push(0, 5, 1);
        let c = Checkpoint {
            format: CHECKPOINT_FORMAT.into(),
            backup_id: "b".into(),
            restore_id: "r".into(),
            config_hash: "h".into(),
            start_time: Utc::now(),
            last_checkpoint_time: Utc::now(),
            records_restored: 1,
            bytes_restored: 3,
            units: [(
                "a/0".to_string(),
                UnitCheckpoint {
                    target_start: 5,
                    done: false,
                    bytes: 3,
                    mapping: m,
                },
            )]
            .into_iter()
            .collect(),
        };
        store.save(&c).await.expect("save");
        assert_eq!(store.load().await.expect("load"), Some(c));
        store.delete().await.expect("delete");
        store.delete().await.expect("deleting twice is fine");
        assert!(store.load().await.expect("load").is_none());
    }
}

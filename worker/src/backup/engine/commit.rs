//! The writer side: sealed segments are compressed and stored a few at a time (a bounded
//! two-stage pipeline, [`super::pipeline`]), applied to their partition's data in order, and the
//! checkpoint rewritten (at most once a second), so a run killed at any moment resumes where the
//! stored data ends.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::buffers::SegmentBuffers;
use super::pipeline::{self, Limits, Stages, Step};
use super::reader::PartSpec;
use crate::backup::format::{SegmentStats, SegmentWriter};
use crate::backup::manifest::{
    checkpoint_key, partition_dir, segment_key, Checkpoint, CheckpointPartition, Gaps, Manifest,
    PartitionData, SegmentEntry, FORMAT,
};
use crate::error::{Error, Result};
use crate::failpoints::crash_at;
use crate::kafka::TopicPartition;
use crate::storage::Storage;
use bytes::Bytes;
use chrono::{DateTime, Utc};

/// Sealed segments waiting in the reader's channel for the pipeline to take them.
pub(super) const IN_FLIGHT_SEGMENTS: usize = 2;
/// How often the checkpoint is rewritten while segments are being stored.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Cumulative state of a partition after a sealed segment.
#[derive(Debug, Clone)]
pub(super) struct Progress {
    pub(super) next_offset: i64,
    pub(super) records: u64,
    pub(super) bytes: u64,
    pub(super) gaps: Gaps,
    /// Set when the partition is finished, with its end offset.
    pub(super) end_offset: Option<i64>,
}

/// A closed segment (or a final progress note without one) on its way to storage.
pub(super) struct Sealed {
    pub(super) part: usize,
    pub(super) seq: u64,
    pub(super) writer: Option<SegmentWriter>,
    pub(super) progress: Progress,
}

pub(super) struct Stored {
    part: usize,
    seq: u64,
    entry: Option<SegmentEntry>,
    progress: Progress,
}

/// Stores the sealed segments as they come (encoded and stored within the pipeline's
/// [`Limits`]), applying each to its partition in order and checkpointing, until the reader
/// closes the channel and everything is stored, or a store or checkpoint fails.
#[tracing::instrument(name = "backup_store", skip_all, fields(backup_id = %committer.id, shard = committer.shard))]
pub(super) async fn store_all(
    committer: &mut Committer<'_>,
    rx: &mut tokio::sync::mpsc::Receiver<Sealed>,
    buffers: &SegmentBuffers,
) -> Result<()> {
    let stages = SegmentStages {
        storage: committer.storage,
        buffers,
        id: committer.id,
        names: committer
            .parts
            .iter()
            .map(|p| (p.topic.clone(), p.partition))
            .collect(),
    };
    pipeline::drive(&stages, rx, Limits::for_this_machine(), async |done| {
        committer.apply(done);
        committer.maybe_checkpoint().await
    })
    .await?;
    tracing::debug!("every sealed segment stored");
    Ok(())
}

/// A sealed segment encoded: its object key, bytes and stats (none for a progress note).
pub(super) struct Encoded {
    part: usize,
    seq: u64,
    object: Option<(String, Vec<u8>, SegmentStats)>,
    progress: Progress,
}

/// Encoding on the blocking pool, storing in the backup's storage.
struct SegmentStages<'a> {
    storage: &'a Storage,
    buffers: &'a SegmentBuffers,
    id: &'a str,
    names: Vec<TopicPartition>,
}

impl Stages for SegmentStages<'_> {
    type Encoded = Encoded;
    type Stored = Stored;

    fn encode(&self, s: Sealed) -> Step<'_, Encoded> {
        Box::pin(encode_segment(self.id, &self.names, self.buffers, s))
    }

    fn store(&self, e: Encoded) -> Step<'_, Stored> {
        Box::pin(store_segment(self.storage, self.buffers, e))
    }
}

/// Compresses one sealed segment on the blocking pool.
async fn encode_segment(
    id: &str,
    parts: &[TopicPartition],
    buffers: &SegmentBuffers,
    s: Sealed,
) -> Result<Encoded> {
    let object = match s.writer {
        None => None,
        Some(writer) => {
            let Some(first) = writer.first_offset() else {
                return Err(Error::Kafka("an empty segment was sealed".into()));
            };
            let (topic, partition) = &parts[s.part];
            let key = segment_key(id, topic, *partition, first);
            let span = tracing::Span::current();
            let out = buffers.take();
            let (data, stats, spare) =
                tokio::task::spawn_blocking(move || span.in_scope(|| writer.finish_into(out)))
                    .await
                    .map_err(|e| Error::kafka_thread("segment encoding stopped", e))?
                    .map_err(|e| {
                        Error::kafka_request(format!("cannot encode segment '{key}'"), e)
                    })?;
            buffers.give(spare);
            Some((key, data, stats))
        }
    };
    Ok(Encoded {
        part: s.part,
        seq: s.seq,
        object,
        progress: s.progress,
    })
}

/// Stores one encoded segment.
async fn store_segment(storage: &Storage, buffers: &SegmentBuffers, e: Encoded) -> Result<Stored> {
    let entry = match e.object {
        None => None,
        Some((key, data, stats)) => {
            #[cfg(feature = "failpoints")]
            crash_in_the_middle_of_storing(storage, &key, &data).await;
            // Once written (sealed where they are on an encrypted location), the bytes' memory
            // serves a later segment.
            storage
                .put_large_with(&key, data, |stored| {
                    if let Ok(memory) = stored.try_into_mut() {
                        buffers.give(memory.into());
                    }
                })
                .await?;
            crash_at("segment-stored");
            Some(SegmentEntry { key, stats })
        }
    };
    Ok(Stored {
        part: e.part,
        seq: e.seq,
        entry,
        progress: e.progress,
    })
}

/// The `segment-upload` crash point (tests only): half of the segment's bytes stored under its
/// key, as a store without atomic writes could leave it, then abort.
#[cfg(feature = "failpoints")]
async fn crash_in_the_middle_of_storing(storage: &Storage, key: &str, data: &[u8]) {
    if crate::failpoints::due("segment-upload") {
        let _ = storage
            .put(key, Bytes::copy_from_slice(&data[..data.len() / 2]))
            .await;
        crate::failpoints::abort(&format!("in the middle of storing {key}"));
    }
}

pub(super) struct PartCommit {
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) data: PartitionData,
    pub(super) next_offset: i64,
    pub(super) next_seq: u64,
    pub(super) pending: BTreeMap<u64, Stored>,
    pub(super) done: bool,
}

/// Applies stored segments to each partition's data in order and writes the checkpoint.
pub(super) struct Committer<'a> {
    pub(super) storage: &'a Storage,
    pub(super) id: &'a str,
    pub(super) shard: u32,
    pub(super) count: u32,
    pub(super) started_at: DateTime<Utc>,
    pub(super) chain: Option<String>,
    pub(super) parts: Vec<PartCommit>,
    pub(super) last_write: Instant,
    /// When the checkpoint was last written.
    pub(super) written_at: DateTime<Utc>,
    pub(super) dirty: bool,
}

impl Committer<'_> {
    pub(super) fn apply(&mut self, s: Stored) {
        let p = &mut self.parts[s.part];
        p.pending.insert(s.seq, s);
        while let Some(s) = p.pending.remove(&p.next_seq) {
            if let Some(entry) = s.entry {
                p.data.stored_bytes += entry.stats.stored_bytes;
                p.data.segments.push(entry);
            }
            p.data.records = s.progress.records;
            p.data.bytes = s.progress.bytes;
            p.data.gaps = s.progress.gaps;
            p.next_offset = s.progress.next_offset;
            if let Some(end) = s.progress.end_offset {
                p.data.end_offset = end;
                p.done = true;
            }
            p.next_seq += 1;
            self.dirty = true;
        }
    }

    pub(super) async fn maybe_checkpoint(&mut self) -> Result<()> {
        if self.dirty && self.last_write.elapsed() >= CHECKPOINT_EVERY {
            self.write_checkpoint().await?;
        }
        Ok(())
    }

    #[tracing::instrument(name = "backup_checkpoint", skip_all, fields(backup_id = %self.id, shard = self.shard))]
    pub(super) async fn write_checkpoint(&mut self) -> Result<()> {
        let mut partitions: BTreeMap<String, BTreeMap<i32, CheckpointPartition>> = BTreeMap::new();
        for p in &self.parts {
            partitions.entry(p.topic.clone()).or_default().insert(
                p.partition,
                CheckpointPartition {
                    next_offset: p.next_offset,
                    data: p.data.clone(),
                },
            );
        }
        let cp = Checkpoint {
            format: FORMAT.to_string(),
            backup_id: self.id.to_string(),
            shard_index: self.shard,
            shard_count: self.count,
            started_at: Some(self.started_at),
            chain: self.chain.clone(),
            partitions,
        };
        let json = serde_json::to_vec(&cp).map_err(|e| Error::encode("the checkpoint", e))?;
        self.storage
            .put(
                &checkpoint_key(self.id, self.shard, self.count),
                Bytes::from(json),
            )
            .await?;
        crash_at("checkpoint");
        tracing::debug!("checkpoint written");
        self.last_write = Instant::now();
        self.written_at = Utc::now();
        self.dirty = false;
        Ok(())
    }
}

impl<'a> Committer<'a> {
    /// The partitions to read, each with the data stored before this run (`initial`).
    pub(super) fn new(
        storage: &'a Storage,
        req: &'a crate::backup::engine::BackupRequest,
        started_at: DateTime<Utc>,
        specs: &[PartSpec],
        initial: &BTreeMap<TopicPartition, PartitionData>,
    ) -> Self {
        Committer {
            storage,
            id: &req.backup_id,
            shard: req.shard_index,
            count: req.shard_count,
            started_at,
            chain: req.chain.clone(),
            parts: specs
                .iter()
                .map(|s| PartCommit {
                    topic: s.topic.clone(),
                    partition: s.partition,
                    data: initial
                        .get(&(s.topic.clone(), s.partition))
                        .cloned()
                        .unwrap_or_default(),
                    next_offset: s.next,
                    next_seq: 0,
                    pending: BTreeMap::new(),
                    done: false,
                })
                .collect(),
            last_write: Instant::now(),
            written_at: Utc::now(),
            dirty: false,
        }
    }
}

/// Deletes segment objects of this shard's partitions that the manifest does not list: what an
/// interrupted run stored but never checkpointed and the resumed run wrote differently.
pub(super) async fn remove_strays(storage: &Storage, m: &Manifest) -> Result<()> {
    for (topic, td) in &m.topics {
        for (p, d) in &td.partition_data {
            let keep: BTreeSet<&str> = d.segments.iter().map(|s| s.key.as_str()).collect();
            for o in storage
                .list(&partition_dir(&m.backup_id, topic, *p))
                .await?
            {
                if !keep.contains(o.key.as_str()) {
                    tracing::info!(key = %o.key, "removing a segment an interrupted run left behind");
                    storage.delete(&o.key).await?;
                }
            }
        }
    }
    Ok(())
}

/// Before a resumed run writes: deletes the segment objects of this shard's partitions that the
/// checkpoint does not list (what the interrupted run stored after its last checkpoint, perhaps
/// torn), so that segments, which are created once and never replaced, can be written again.
/// Only the lease holder gets here: nobody else writes these partitions.
pub(super) async fn remove_unlisted_segments(
    storage: &Storage,
    id: &str,
    checkpoint: &Checkpoint,
    mine: &[TopicPartition],
) -> Result<()> {
    for (topic, p) in mine {
        let keep: BTreeSet<&str> = checkpoint
            .partitions
            .get(topic)
            .and_then(|m| m.get(p))
            .map(|c| c.data.segments.iter().map(|s| s.key.as_str()).collect())
            .unwrap_or_default();
        for o in storage.list(&partition_dir(id, topic, *p)).await? {
            if !keep.contains(o.key.as_str()) {
                tracing::info!(key = %o.key, "removing a segment the interrupted run stored after its last checkpoint");
                storage.delete(&o.key).await?;
            }
        }
    }
    Ok(())
}

//! The segment object format: a run of one partition's records, stored byte for byte (offsets,
//! timestamps and their types, null-versus-empty keys and values, ordered headers with null
//! values and duplicate keys), compressed with one codec and sealed with a CRC-32C that every
//! read verifies. `docs/FORMAT.md` describes the layout for people writing their own readers.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//!  0  4  magic "TMSG"
//!  4  1  major version (1)      readers refuse a major version they do not know
//!  5  1  minor version (0)      compatible additions only
//!  6  2  header length (64)     the record block starts here
//!  8  1  codec                  0 none, 1 zstd, 2 lz4 (block format)
//!  9  1  flags                  must-understand bits; none defined in 1.0
//! 10  2  reserved               0; readers of 1.x ignore it
//! 12  4  record count           at least 1
//! 16  8  first offset           i64
//! 24  8  last offset            i64
//! 32  8  min timestamp          i64, over all records
//! 40  8  max timestamp          i64, over all records
//! 48  8  uncompressed length    the record block before compression
//! 56  8  stored length          the record block as stored
//! 64  …  record block           `stored length` bytes
//!  …  4  CRC-32C                over every byte before it
//! ```
//!
//! Each record in the (decompressed) block is: offset delta (varint, `offset - previous - 1`,
//! the first record's "previous" being `first offset - 1`), attributes (1 byte: timestamp type in
//! bits 0-1), timestamp delta (zigzag varint, from the previous record's timestamp, the first
//! from 0), key and value (varint `length + 1`, `0` for null), header count (varint), then per
//! header: key (varint length, UTF-8) and value (varint `length + 1`, `0` for null).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The segment magic, "TMSG".
pub const MAGIC: [u8; 4] = *b"TMSG";
/// The major format version this code writes and the only one it reads.
pub const FORMAT_MAJOR: u8 = 1;
/// The minor format version this code writes; readers accept any minor of their major.
pub const FORMAT_MINOR: u8 = 0;
/// Length of the fixed header written by this version.
pub const HEADER_LEN: usize = 64;
/// Length of the trailing checksum.
pub const CHECKSUM_LEN: usize = 4;
/// The largest record block (before compression) a segment may hold, 1 GiB. Writers refuse to
/// grow past it and readers refuse a header that claims more, so a hostile or corrupt object
/// can never make a reader allocate more than this.
pub const MAX_BLOCK_BYTES: u64 = 1 << 30;
/// The zstd level used when none is given. Chosen by measurement on the backup benchmark's
/// JSON-like records (tests/benches/backup.rs): level 1 stores them as small as level 3 does
/// (4.37:1 both) for about half the compression CPU; levels 4-6 cost 1.4-2.5x level 3's CPU for
/// at most 6 % smaller segments, and larger windows gain nothing on records that repeat within
/// a few KiB.
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

/// Codec ids as stored in the header.
const CODEC_NONE: u8 = 0;
const CODEC_ZSTD: u8 = 1;
const CODEC_LZ4: u8 = 2;

/// The fewest bytes one record takes in the block: offset delta, attributes, timestamp delta,
/// key, value and header count, one byte each.
const MIN_RECORD_BYTES: u64 = 6;
/// The fewest bytes one header takes: key length and value marker.
const MIN_HEADER_BYTES: usize = 2;
/// LZ4 cannot expand its input by more than this factor (one 255 run-length byte per 255 bytes).
const LZ4_MAX_RATIO: u64 = 255;
/// The most a zstd frame can expand: a 4-byte RLE block (3-byte header, 1 byte) stands for at
/// most 128 KiB. A header claiming more per stored byte is refused before any buffer is
/// reserved for the block.
pub const ZSTD_MAX_RATIO: u64 = 32 * 1024;
/// Timestamp type in the attributes byte.
const ATTR_TS_MASK: u8 = 0b11;

/// How a segment's record block is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Stored as is.
    None,
    /// Zstandard at `level` (1-22; [`DEFAULT_ZSTD_LEVEL`] by default).
    Zstd {
        /// Compression level, 1 to 22.
        level: i32,
    },
    /// LZ4 block format (no frame), pure Rust.
    Lz4,
}

impl Default for Codec {
    fn default() -> Self {
        Codec::Zstd {
            level: DEFAULT_ZSTD_LEVEL,
        }
    }
}

impl Codec {
    /// The codec a backup task asks for: its `compression` and, for zstd, `compressionLevel`.
    pub fn from_task(compression: crate::task::Compression, level: Option<i32>) -> Codec {
        match compression {
            crate::task::Compression::Zstd => Codec::Zstd {
                level: level.unwrap_or(DEFAULT_ZSTD_LEVEL),
            },
            crate::task::Compression::Lz4 => Codec::Lz4,
            crate::task::Compression::None => Codec::None,
        }
    }

    /// The codec's name as [`SegmentStats::codec`] records it: `zstd`, `lz4` or `none`.
    pub fn name(&self) -> &'static str {
        codec_name(self.id())
    }

    fn id(&self) -> u8 {
        match self {
            Codec::None => CODEC_NONE,
            Codec::Zstd { .. } => CODEC_ZSTD,
            Codec::Lz4 => CODEC_LZ4,
        }
    }
}

fn codec_name(id: u8) -> &'static str {
    match id {
        CODEC_ZSTD => "zstd",
        CODEC_LZ4 => "lz4",
        _ => "none",
    }
}

/// A record's timestamp type, as Kafka reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker when it appended the record.
    LogAppendTime,
    /// No timestamp (old message formats); the timestamp is then -1.
    NotAvailable,
}

impl TimestampType {
    /// The timestamp and its type from an rdkafka message timestamp (`NotAvailable` is -1).
    pub fn split_kafka(ts: rdkafka::Timestamp) -> (i64, TimestampType) {
        match ts {
            rdkafka::Timestamp::CreateTime(t) => (t, TimestampType::CreateTime),
            rdkafka::Timestamp::LogAppendTime(t) => (t, TimestampType::LogAppendTime),
            rdkafka::Timestamp::NotAvailable => (-1, TimestampType::NotAvailable),
        }
    }

    fn to_bits(self) -> u8 {
        match self {
            TimestampType::CreateTime => 0,
            TimestampType::LogAppendTime => 1,
            TimestampType::NotAvailable => 2,
        }
    }

    fn from_bits(bits: u8) -> Option<TimestampType> {
        match bits {
            0 => Some(TimestampType::CreateTime),
            1 => Some(TimestampType::LogAppendTime),
            2 => Some(TimestampType::NotAvailable),
            _ => None,
        }
    }
}

/// One Kafka record exactly as it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record's offset in its source partition.
    pub offset: i64,
    /// Milliseconds since the epoch (-1 when not available).
    pub timestamp: i64,
    /// What the timestamp means.
    pub timestamp_type: TimestampType,
    /// The key; `None` (null) is distinct from `Some(vec![])` (empty).
    pub key: Option<Vec<u8>>,
    /// The value; `None` (null, a tombstone) is distinct from empty.
    pub value: Option<Vec<u8>>,
    /// Headers in order, duplicate keys kept; a value may be null.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Record {
    /// Key, value and header bytes (header keys included): what backup and restore reports
    /// count, as [`RecordRef::payload_bytes`].
    pub fn payload_bytes(&self) -> u64 {
        let len = |v: &Option<Vec<u8>>| v.as_ref().map_or(0, Vec::len) as u64;
        len(&self.key)
            + len(&self.value)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() as u64 + len(v))
                .sum::<u64>()
    }
}

/// Stats of a finished segment, also what the manifest stores per segment (PITR index: MIN/MAX
/// timestamp over all records, not first/last).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SegmentStats {
    /// Records in the segment (at least 1).
    pub records: u64,
    /// Offset of the first record.
    pub first_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// Smallest timestamp of any record.
    pub min_timestamp: i64,
    /// Largest timestamp of any record.
    pub max_timestamp: i64,
    /// Length of the record block before compression (keys, values, headers and their framing).
    pub uncompressed_bytes: u64,
    /// Length of the whole segment object as stored.
    pub stored_bytes: u64,
    /// The object's CRC-32C (its last four bytes).
    pub crc32c: u32,
    /// `zstd`, `lz4` or `none`.
    pub codec: String,
}

/// Why a segment could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// A pushed record's offset is not above the previous record's.
    #[error(
        "record offset {offset} does not follow the segment's last offset {last}: offsets must increase"
    )]
    OffsetOrder {
        /// The refused offset.
        offset: i64,
        /// The segment's last offset.
        last: i64,
    },

    /// The record would take the segment past [`MAX_BLOCK_BYTES`] or 2^32-1 records (or is
    /// bigger than a segment can ever hold).
    #[error("{0}")]
    SegmentFull(String),

    /// `finish` was called on a writer without records.
    #[error("failed to finish segment: it has no records")]
    Empty,

    /// A zstd level outside 1-22.
    #[error("invalid zstd level {0}: zstd levels are 1 to 22")]
    InvalidLevel(i32),

    /// The compressor failed.
    #[error("failed to compress segment with {codec}: {reason}")]
    Compress {
        /// Codec name.
        codec: &'static str,
        /// What the compressor said.
        reason: String,
    },

    /// The object is damaged: bad magic, lengths, checksum, compressed data or records.
    #[error("segment '{name}' is corrupt: {reason}")]
    Corrupt {
        /// The object's path.
        name: String,
        /// What is wrong, with the numbers.
        reason: String,
    },

    /// The object was written by an incompatible (newer) format version.
    #[error(
        "segment '{name}' has format version {major}.{minor}; this tidemark reads version {FORMAT_MAJOR}.x only"
    )]
    UnsupportedVersion {
        /// The object's path.
        name: String,
        /// Major version found.
        major: u8,
        /// Minor version found.
        minor: u8,
    },

    /// The object uses a codec or flag this version does not know.
    #[error("segment '{name}' uses {what}, which this tidemark does not support")]
    Unsupported {
        /// The object's path.
        name: String,
        /// The unknown feature.
        what: String,
    },
}

impl FormatError {
    /// A stable short label for metrics, events and reports.
    pub fn label(&self) -> &'static str {
        match self {
            FormatError::OffsetOrder { .. } => "offset_order",
            FormatError::SegmentFull(_) => "segment_full",
            FormatError::Empty => "empty_segment",
            FormatError::InvalidLevel(_) => "invalid_level",
            FormatError::Compress { .. } => "compress",
            FormatError::Corrupt { .. } => "corrupt",
            FormatError::UnsupportedVersion { .. } => "unsupported_version",
            FormatError::Unsupported { .. } => "unsupported",
        }
    }

    /// Whether the object is damaged (as opposed to written by a newer version or refused on write).
    pub fn is_corrupt(&self) -> bool {
        matches!(self, FormatError::Corrupt { .. })
    }
}

fn corrupt(name: &str, reason: impl Into<String>) -> FormatError {
    FormatError::Corrupt {
        name: name.to_string(),
        reason: reason.into(),
    }
}

/// Builds one segment in memory: push records in offset order, then [`finish`](Self::finish).
pub struct SegmentWriter {
    codec: Codec,
    /// [`MAX_BLOCK_BYTES`], lower in tests.
    max_block: u64,
    /// [`HEADER_LEN`] bytes kept for the header, then the record block: an uncompressed
    /// segment is finished in place, without copying its records.
    block: Vec<u8>,
    records: u64,
    first_offset: Option<i64>,
    last_offset: Option<i64>,
    last_timestamp: i64,
    min_timestamp: Option<i64>,
    max_timestamp: Option<i64>,
}

impl fmt::Debug for SegmentWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentWriter")
            .field("codec", &self.codec)
            .field("records", &self.records)
            .field("uncompressed_bytes", &self.uncompressed_bytes())
            .field("first_offset", &self.first_offset)
            .field("last_offset", &self.last_offset)
            .finish()
    }
}

impl SegmentWriter {
    /// An empty segment that will be compressed with `codec`.
    pub fn new(codec: Codec) -> Self {
        Self::with_capacity(codec, 0)
    }

    /// [`new`](Self::new) with room for a record block of `bytes` (plus the header and the
    /// checksum), so a segment that stays within it is never moved while it grows.
    pub fn with_capacity(codec: Codec, bytes: usize) -> Self {
        Self::with_buffer(codec, Vec::new(), bytes)
    }

    /// [`with_capacity`](Self::with_capacity) in `buffer`'s memory (its content dropped): the
    /// memory of a segment stored earlier, so a segment of several MiB does not start in fresh
    /// pages the kernel has to map and clear one at a time.
    pub fn with_buffer(codec: Codec, mut buffer: Vec<u8>, bytes: usize) -> Self {
        buffer.clear();
        buffer.reserve(HEADER_LEN + bytes + CHECKSUM_LEN);
        let mut block = buffer;
        block.resize(HEADER_LEN, 0);
        SegmentWriter {
            codec,
            max_block: MAX_BLOCK_BYTES,
            block,
            records: 0,
            first_offset: None,
            last_offset: None,
            last_timestamp: 0,
            min_timestamp: None,
            max_timestamp: None,
        }
    }

    /// Appends one record; offsets must increase strictly (gaps allowed) — error otherwise.
    ///
    /// Also refuses a record that would take the block past [`MAX_BLOCK_BYTES`]; the segment
    /// is unchanged after any error.
    pub fn push(
        &mut self,
        offset: i64,
        timestamp: i64,
        ts_type: TimestampType,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> Result<(), FormatError> {
        let previous = match self.last_offset {
            Some(last) if offset <= last => {
                return Err(FormatError::OffsetOrder { offset, last });
            }
            Some(last) => i128::from(last),
            None => i128::from(offset) - 1,
        };
        if self.records >= u64::from(u32::MAX) {
            return Err(FormatError::SegmentFull(format!(
                "segment is full: it holds {} records, the most one segment can; finish it and start another",
                self.records
            )));
        }
        let start = self.block.len();
        // offset > previous, so the delta fits in u64 (at most 2^64 - 2).
        put_uvarint(&mut self.block, (i128::from(offset) - previous - 1) as u64);
        self.block.push(ts_type.to_bits());
        put_uvarint(
            &mut self.block,
            zigzag(timestamp.wrapping_sub(self.last_timestamp)),
        );
        put_nullable(&mut self.block, key);
        put_nullable(&mut self.block, value);
        put_uvarint(&mut self.block, headers.len() as u64);
        for (hkey, hvalue) in headers {
            put_uvarint(&mut self.block, hkey.len() as u64);
            self.block.extend_from_slice(hkey.as_bytes());
            put_nullable(&mut self.block, *hvalue);
        }
        if (self.block.len() - HEADER_LEN) as u64 > self.max_block {
            let needed = self.block.len() - start;
            self.block.truncate(start);
            let start = start - HEADER_LEN;
            return Err(FormatError::SegmentFull(if start == 0 {
                format!(
                    "record {offset} needs {needed} bytes, more than one segment can hold ({})",
                    self.max_block
                )
            } else {
                format!(
                    "segment is full: record {offset} needs {needed} bytes and the segment already has {start} of at most {}; finish it and start another",
                    self.max_block
                )
            }));
        }
        self.records += 1;
        self.first_offset.get_or_insert(offset);
        self.last_offset = Some(offset);
        self.last_timestamp = timestamp;
        self.min_timestamp = Some(self.min_timestamp.map_or(timestamp, |m| m.min(timestamp)));
        self.max_timestamp = Some(self.max_timestamp.map_or(timestamp, |m| m.max(timestamp)));
        Ok(())
    }

    /// Appends a [`Record`] (see [`push`](Self::push)).
    pub fn push_record(&mut self, record: &Record) -> Result<(), FormatError> {
        let headers: Vec<(&str, Option<&[u8]>)> = record
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        self.push(
            record.offset,
            record.timestamp,
            record.timestamp_type,
            record.key.as_deref(),
            record.value.as_deref(),
            &headers,
        )
    }

    /// Records pushed so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Length of the record block so far, before compression.
    pub fn uncompressed_bytes(&self) -> u64 {
        (self.block.len() - HEADER_LEN) as u64
    }

    /// Offset of the first record, if any.
    pub fn first_offset(&self) -> Option<i64> {
        self.first_offset
    }

    /// Offset of the last record, if any.
    pub fn last_offset(&self) -> Option<i64> {
        self.last_offset
    }

    /// Smallest timestamp so far.
    pub fn min_timestamp(&self) -> Option<i64> {
        self.min_timestamp
    }

    /// Largest timestamp so far.
    pub fn max_timestamp(&self) -> Option<i64> {
        self.max_timestamp
    }

    /// The codec [`finish`](Self::finish) will use.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Encodes (compresses) the segment: the object bytes and its stats. Deterministic: the same
    /// records and codec give the same bytes.
    pub fn finish(self) -> Result<(Vec<u8>, SegmentStats), FormatError> {
        self.finish_into(Vec::new())
            .map(|(data, stats, _spare)| (data, stats))
    }

    /// [`finish`](Self::finish), compressing into `out`'s memory (its content dropped); also
    /// gives back the buffer the encoding did not keep (the record block once compressed, or
    /// `out` when the segment is stored uncompressed), for the next segment.
    pub fn finish_into(
        self,
        spare: Vec<u8>,
    ) -> Result<(Vec<u8>, SegmentStats, Vec<u8>), FormatError> {
        let (Some(first_offset), Some(last_offset), Some(min_ts), Some(max_ts)) = (
            self.first_offset,
            self.last_offset,
            self.min_timestamp,
            self.max_timestamp,
        ) else {
            return Err(FormatError::Empty);
        };
        let records = u32::try_from(self.records)
            .map_err(|_| FormatError::SegmentFull(format!("{} records", self.records)))?;
        let uncompressed = self.uncompressed_bytes();
        let header = |stored: usize| -> [u8; HEADER_LEN] {
            let mut h = [0u8; HEADER_LEN];
            h[0..4].copy_from_slice(&MAGIC);
            h[4] = FORMAT_MAJOR;
            h[5] = FORMAT_MINOR;
            h[6..8].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
            h[8] = self.codec.id();
            // 9: flags, 10-11: reserved (0)
            h[12..16].copy_from_slice(&records.to_le_bytes());
            h[16..24].copy_from_slice(&first_offset.to_le_bytes());
            h[24..32].copy_from_slice(&last_offset.to_le_bytes());
            h[32..40].copy_from_slice(&min_ts.to_le_bytes());
            h[40..48].copy_from_slice(&max_ts.to_le_bytes());
            h[48..56].copy_from_slice(&uncompressed.to_le_bytes());
            h[56..64].copy_from_slice(&(stored as u64).to_le_bytes());
            h
        };
        let body = &self.block[HEADER_LEN..];
        let (mut out, spare) = match self.codec {
            // The records stay where they are; the header goes in the room kept for it.
            Codec::None => {
                let h = header(body.len());
                let mut block = self.block;
                block[..HEADER_LEN].copy_from_slice(&h);
                (block, spare)
            }
            // Compressed straight after the room kept for the header: no copy of the frame.
            Codec::Zstd { level } => {
                let mut out = zstd_compress_after_header(body, level, spare)?;
                let h = header(out.len() - HEADER_LEN);
                out[..HEADER_LEN].copy_from_slice(&h);
                (out, self.block)
            }
            Codec::Lz4 => {
                let stored = lz4_flex::block::compress(body);
                let mut out = spare;
                out.clear();
                out.reserve(HEADER_LEN + stored.len() + CHECKSUM_LEN);
                out.extend_from_slice(&header(stored.len()));
                out.extend_from_slice(&stored);
                (out, self.block)
            }
        };
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        let stats = SegmentStats {
            records: self.records,
            first_offset,
            last_offset,
            min_timestamp: min_ts,
            max_timestamp: max_ts,
            uncompressed_bytes: uncompressed,
            stored_bytes: out.len() as u64,
            crc32c: crc,
            codec: self.codec.name().to_string(),
        };
        Ok((out, stats, spare))
    }
}

/// A verified header: the stats and where the stored block lies.
struct Header {
    stats: SegmentStats,
    codec: u8,
    block_start: usize,
    block_end: usize,
}

/// Verifies magic, version, lengths and checksum, then decodes every record into owned copies.
/// `name` (the object's path) is in every error. (Readers use [`decode_segment_shared`]; the
/// tests compare whole records.)
#[cfg(test)]
fn decode_segment(data: &[u8], name: &str) -> Result<(SegmentStats, Vec<Record>), FormatError> {
    let seg = decode_segment_shared(bytes::Bytes::copy_from_slice(data), name, Vec::new())?;
    let records = seg.iter().map(|r| r.to_record()).collect();
    Ok((seg.stats, records))
}

/// [`decode_segment`] without copying a byte of the records: the result borrows keys, values
/// and headers from one block — the object itself when it is stored uncompressed, otherwise
/// `buffer` (any spare `Vec`, e.g. the one a finished segment gave back with
/// [`DecodedSegment::into_buffer`]) filled with the decompressed block. Every check of
/// [`decode_segment`] is made.
pub fn decode_segment_shared(
    data: bytes::Bytes,
    name: &str,
    mut buffer: Vec<u8>,
) -> Result<DecodedSegment, FormatError> {
    let header = read_header(&data, name)?;
    let stored = &data[header.block_start..header.block_end];
    let expected = header.stats.uncompressed_bytes;
    let block = match header.codec {
        CODEC_ZSTD => {
            zstd_decompress(stored, expected, &mut buffer).map_err(|e| corrupt(name, e))?;
            Block::Owned(buffer)
        }
        CODEC_LZ4 => {
            lz4_decompress(stored, expected, &mut buffer).map_err(|e| corrupt(name, e))?;
            Block::Owned(buffer)
        }
        _ => Block::Shared(data.slice(header.block_start..header.block_end), buffer),
    };
    let (index, headers) =
        decode_block(block.bytes(), &header.stats).map_err(|e| corrupt(name, e))?;
    Ok(DecodedSegment {
        stats: header.stats,
        block,
        index,
        headers,
    })
}

/// Where a decoded segment's record block lives.
enum Block {
    /// Decompressed into a buffer of our own.
    Owned(Vec<u8>),
    /// A slice of the (uncompressed) object; the spare buffer is kept to be given back.
    Shared(bytes::Bytes, Vec<u8>),
}

impl Block {
    fn bytes(&self) -> &[u8] {
        match self {
            Block::Owned(v) => v,
            Block::Shared(b, _) => b,
        }
    }
}

/// Marks a null key, value or header value in a [`Span`].
const NULL_LEN: u32 = u32::MAX;

/// A byte range of the block (blocks are at most [`MAX_BLOCK_BYTES`], so `u32` holds it).
#[derive(Clone, Copy, Debug)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    const NULL: Span = Span {
        start: 0,
        len: NULL_LEN,
    };

    fn get(self, block: &[u8]) -> Option<&[u8]> {
        if self.len == NULL_LEN {
            return None;
        }
        let start = self.start as usize;
        block.get(start..start + self.len as usize)
    }
}

/// One record of a decoded block: where its parts are.
#[derive(Clone, Copy, Debug)]
struct IndexEntry {
    offset: i64,
    timestamp: i64,
    key: Span,
    value: Span,
    /// Its headers: `headers[first..first + count]` of the segment.
    first_header: u32,
    header_count: u32,
    timestamp_type: TimestampType,
}

/// One header of a decoded block (the key checked to be UTF-8).
#[derive(Clone, Copy, Debug)]
struct HeaderEntry {
    key: Span,
    value: Span,
}

/// A verified, decoded segment whose records borrow from one block (see
/// [`decode_segment_shared`]).
pub struct DecodedSegment {
    stats: SegmentStats,
    block: Block,
    index: Vec<IndexEntry>,
    headers: Vec<HeaderEntry>,
}

impl fmt::Debug for DecodedSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecodedSegment")
            .field("stats", &self.stats)
            .field("records", &self.index.len())
            .finish()
    }
}

impl DecodedSegment {
    /// The segment's header stats.
    pub fn stats(&self) -> &SegmentStats {
        &self.stats
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether it holds no record (never true for a decoded segment).
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The `i`th record, if there is one.
    pub fn get(&self, i: usize) -> Option<RecordRef<'_>> {
        let e = self.index.get(i)?;
        let block = self.block.bytes();
        let first = e.first_header as usize;
        Some(RecordRef {
            offset: e.offset,
            timestamp: e.timestamp,
            timestamp_type: e.timestamp_type,
            key: e.key.get(block),
            value: e.value.get(block),
            headers: self
                .headers
                .get(first..first + e.header_count as usize)
                .unwrap_or_default(),
            block,
        })
    }

    /// The records in offset order.
    pub fn iter(&self) -> Records<'_> {
        Records { seg: self, next: 0 }
    }

    /// Bytes of memory it holds (block, index and headers), for memory budgets.
    pub fn memory(&self) -> usize {
        let block = match &self.block {
            Block::Owned(v) => v.capacity(),
            Block::Shared(b, spare) => b.len() + spare.capacity(),
        };
        block
            + self.index.capacity() * std::mem::size_of::<IndexEntry>()
            + self.headers.capacity() * std::mem::size_of::<HeaderEntry>()
    }

    /// Gives back the buffer the block was decompressed into (or the unused one it was given),
    /// for the next [`decode_segment_shared`].
    pub fn into_buffer(self) -> Vec<u8> {
        self.into_buffers().0
    }

    /// [`into_buffer`](Self::into_buffer), and for a segment stored uncompressed also the
    /// object's own memory when nothing else shares it (the records pointed into it), for the
    /// next read of an object.
    pub fn into_buffers(self) -> (Vec<u8>, Option<Vec<u8>>) {
        match self.block {
            Block::Owned(v) => (v, None),
            Block::Shared(object, v) => (v, object.try_into_mut().ok().map(Vec::from)),
        }
    }
}

/// The records of a [`DecodedSegment`] in offset order.
pub struct Records<'a> {
    seg: &'a DecodedSegment,
    next: usize,
}

impl<'a> Iterator for Records<'a> {
    type Item = RecordRef<'a>;

    fn next(&mut self) -> Option<RecordRef<'a>> {
        let r = self.seg.get(self.next)?;
        self.next += 1;
        Some(r)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.seg.len().saturating_sub(self.next);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Records<'_> {}

/// One record of a [`DecodedSegment`], borrowed.
#[derive(Clone, Copy, Debug)]
pub struct RecordRef<'a> {
    /// The record's offset in its source partition.
    pub offset: i64,
    /// Milliseconds since the epoch (-1 when not available).
    pub timestamp: i64,
    /// What the timestamp means.
    pub timestamp_type: TimestampType,
    /// The key; `None` is null, distinct from empty.
    pub key: Option<&'a [u8]>,
    /// The value; `None` is null (a tombstone), distinct from empty.
    pub value: Option<&'a [u8]>,
    headers: &'a [HeaderEntry],
    block: &'a [u8],
}

impl<'a> RecordRef<'a> {
    /// Number of headers.
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// The headers in order (duplicate keys kept; a value may be null).
    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&'a str, Option<&'a [u8]>)> + 'a {
        let block = self.block;
        self.headers.iter().map(move |h| {
            let key = h
                .key
                .get(block)
                .and_then(|k| std::str::from_utf8(k).ok())
                .unwrap_or_default();
            (key, h.value.get(block))
        })
    }

    /// Key, value and header bytes (keys and values of headers included).
    pub fn payload_bytes(&self) -> u64 {
        let len = |s: Option<&[u8]>| s.map_or(0, |b| b.len() as u64);
        len(self.key)
            + len(self.value)
            + self
                .headers()
                .map(|(k, v)| k.len() as u64 + len(v))
                .sum::<u64>()
    }

    /// An owned copy.
    pub fn to_record(&self) -> Record {
        Record {
            offset: self.offset,
            timestamp: self.timestamp,
            timestamp_type: self.timestamp_type,
            key: self.key.map(<[u8]>::to_vec),
            value: self.value.map(<[u8]>::to_vec),
            headers: self
                .headers()
                .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
                .collect(),
        }
    }
}

/// Reads only the header and verifies the checksum (for `verify-backup` without --deep).
pub fn check_segment(data: &[u8], name: &str) -> Result<SegmentStats, FormatError> {
    read_header(data, name).map(|h| h.stats)
}

fn le_u16(data: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([data[at], data[at + 1]])
}

fn le_u32(data: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&data[at..at + 4]);
    u32::from_le_bytes(b)
}

fn le_u64(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&data[at..at + 8]);
    u64::from_le_bytes(b)
}

fn le_i64(data: &[u8], at: usize) -> i64 {
    le_u64(data, at) as i64
}

/// Checks everything that does not need the record block decoded. Every index into `data` is
/// bounds-checked first (the minimum length, then the declared lengths against the real one).
fn read_header(data: &[u8], name: &str) -> Result<Header, FormatError> {
    let header_len = read_envelope(data, name)?;
    let frame = read_frame(data, name, header_len)?;
    // The bytes are what the writer wrote; what follows refuses what this version can't read
    // and values no writer produces.
    let codec = read_codec(data, name)?;
    let stats = read_stats(data, name)?;
    check_block_size(name, codec, &frame, stats.records)?;
    Ok(Header {
        stats: SegmentStats {
            records: stats.records,
            first_offset: stats.first_offset,
            last_offset: stats.last_offset,
            min_timestamp: stats.min_timestamp,
            max_timestamp: stats.max_timestamp,
            uncompressed_bytes: frame.uncompressed,
            stored_bytes: data.len() as u64,
            crc32c: frame.crc,
            codec: codec_name(codec).to_string(),
        },
        codec,
        block_start: header_len,
        block_end: frame.crc_at,
    })
}

/// The lengths and checksum a segment's header declares, checked against the object.
struct Frame {
    uncompressed: u64,
    stored: u64,
    /// Where the checksum starts (the end of the record block).
    crc_at: usize,
    crc: u32,
}

/// The record count, offsets and timestamps a segment's header declares.
struct DeclaredStats {
    records: u64,
    first_offset: i64,
    last_offset: i64,
    min_timestamp: i64,
    max_timestamp: i64,
}

/// Checks the minimum length, magic, major version and header length; returns the header length.
fn read_envelope(data: &[u8], name: &str) -> Result<usize, FormatError> {
    let min = HEADER_LEN + CHECKSUM_LEN;
    if data.len() < min {
        return Err(corrupt(
            name,
            format!(
                "truncated: {} bytes, a segment has at least {min}",
                data.len()
            ),
        ));
    }
    if data[0..4] != MAGIC {
        return Err(corrupt(
            name,
            format!(
                "bad magic 0x{} (expected 0x{}, \"TMSG\"): not a tidemark segment",
                hex(&data[0..4]),
                hex(&MAGIC)
            ),
        ));
    }
    let (major, minor) = (data[4], data[5]);
    if major != FORMAT_MAJOR {
        return Err(FormatError::UnsupportedVersion {
            name: name.to_string(),
            major,
            minor,
        });
    }
    let header_len = usize::from(le_u16(data, 6));
    if header_len < HEADER_LEN {
        return Err(corrupt(
            name,
            format!("header length {header_len} is below the minimum {HEADER_LEN}"),
        ));
    }
    Ok(header_len)
}

/// Checks the declared lengths against the object's and the checksum.
fn read_frame(data: &[u8], name: &str, header_len: usize) -> Result<Frame, FormatError> {
    let uncompressed = le_u64(data, 48);
    let stored = le_u64(data, 56);
    let declared = (header_len as u64)
        .checked_add(stored)
        .and_then(|n| n.checked_add(CHECKSUM_LEN as u64));
    if declared != Some(data.len() as u64) {
        let (what, declared) = match declared {
            Some(n) if n < data.len() as u64 => ("trailing bytes", n.to_string()),
            Some(n) => ("truncated", n.to_string()),
            None => ("truncated", "more than 2^64".to_string()),
        };
        return Err(corrupt(
            name,
            format!(
                "{what}: the header declares {declared} bytes (header {header_len}, block {stored}, checksum {CHECKSUM_LEN}), the object has {}",
                data.len()
            ),
        ));
    }
    let crc_at = data.len() - CHECKSUM_LEN;
    let stored_crc = le_u32(data, crc_at);
    let computed = crc32c::crc32c(&data[..crc_at]);
    if stored_crc != computed {
        return Err(corrupt(
            name,
            format!("checksum mismatch (stored 0x{stored_crc:08x}, computed 0x{computed:08x})"),
        ));
    }
    Ok(Frame {
        uncompressed,
        stored,
        crc_at,
        crc: stored_crc,
    })
}

/// The codec id (one this version reads) and flags (none defined).
fn read_codec(data: &[u8], name: &str) -> Result<u8, FormatError> {
    let codec = data[8];
    if !matches!(codec, CODEC_NONE | CODEC_ZSTD | CODEC_LZ4) {
        return Err(FormatError::Unsupported {
            name: name.to_string(),
            what: format!("codec id {codec}"),
        });
    }
    let flags = data[9];
    if flags != 0 {
        return Err(FormatError::Unsupported {
            name: name.to_string(),
            what: format!("flags 0x{flags:02x}"),
        });
    }
    Ok(codec)
}

/// Checks the record count, offsets and timestamps are ones a writer produces.
fn read_stats(data: &[u8], name: &str) -> Result<DeclaredStats, FormatError> {
    let records = u64::from(le_u32(data, 12));
    let first_offset = le_i64(data, 16);
    let last_offset = le_i64(data, 24);
    let min_timestamp = le_i64(data, 32);
    let max_timestamp = le_i64(data, 40);
    if records == 0 {
        return Err(corrupt(name, "the header says it holds no records"));
    }
    if first_offset > last_offset {
        return Err(corrupt(
            name,
            format!("first offset {first_offset} is after last offset {last_offset}"),
        ));
    }
    let span = i128::from(last_offset) - i128::from(first_offset) + 1;
    if records == 1 && span != 1 {
        return Err(corrupt(
            name,
            format!(
                "one record, but first offset {first_offset} and last offset {last_offset} differ"
            ),
        ));
    }
    if i128::from(records) > span {
        return Err(corrupt(
            name,
            format!(
                "{records} records cannot have distinct offsets from {first_offset} to {last_offset}"
            ),
        ));
    }
    if min_timestamp > max_timestamp {
        return Err(corrupt(
            name,
            format!("min timestamp {min_timestamp} is after max timestamp {max_timestamp}"),
        ));
    }
    Ok(DeclaredStats {
        records,
        first_offset,
        last_offset,
        min_timestamp,
        max_timestamp,
    })
}

/// Checks the record block's declared sizes: within the limit, room for the records, and an
/// expansion the codec can produce.
fn check_block_size(name: &str, codec: u8, frame: &Frame, records: u64) -> Result<(), FormatError> {
    let (uncompressed, stored) = (frame.uncompressed, frame.stored);
    if uncompressed > MAX_BLOCK_BYTES {
        return Err(corrupt(
            name,
            format!(
                "the record block claims {uncompressed} bytes uncompressed, more than the limit {MAX_BLOCK_BYTES}"
            ),
        ));
    }
    if records.saturating_mul(MIN_RECORD_BYTES) > uncompressed {
        return Err(corrupt(
            name,
            format!("{records} records cannot fit in a {uncompressed}-byte record block"),
        ));
    }
    match codec {
        CODEC_NONE if stored != uncompressed => {
            return Err(corrupt(
                name,
                format!("uncompressed block of {stored} bytes, the header says {uncompressed}"),
            ));
        }
        CODEC_LZ4 if uncompressed > stored.saturating_mul(LZ4_MAX_RATIO) => {
            return Err(corrupt(
                name,
                format!("lz4 cannot expand {stored} bytes to the {uncompressed} the header claims"),
            ));
        }
        CODEC_ZSTD if uncompressed > stored.saturating_mul(ZSTD_MAX_RATIO) => {
            return Err(corrupt(
                name,
                format!(
                    "zstd cannot expand {stored} bytes to the {uncompressed} the header claims"
                ),
            ));
        }
        _ => {}
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

thread_local! {
    /// This thread's zstd compression context and its level, kept from segment to segment: its
    /// tables are allocated once per encoding thread rather than once per segment. A frame does
    /// not depend on the context's history (each compression starts a new frame), so the bytes
    /// are those a fresh context writes.
    static ZSTD_CONTEXT: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

/// `body` compressed at `level` into one zstd frame (declaring its content size), placed after
/// [`HEADER_LEN`] zero bytes, with room left for the checksum.
fn zstd_compress_after_header(
    body: &[u8],
    level: i32,
    mut out: Vec<u8>,
) -> Result<Vec<u8>, FormatError> {
    if !(1..=22).contains(&level) {
        return Err(FormatError::InvalidLevel(level));
    }
    let failed = |e: std::io::Error| FormatError::Compress {
        codec: "zstd",
        reason: e.to_string(),
    };
    let bound = zstd::zstd_safe::compress_bound(body.len());
    out.clear();
    out.reserve(HEADER_LEN + bound + CHECKSUM_LEN);
    out.resize(HEADER_LEN, 0);
    let mut cursor = std::io::Cursor::new(out);
    cursor.set_position(HEADER_LEN as u64);
    ZSTD_CONTEXT.with(|cell| {
        let mut slot = cell.borrow_mut();
        if !matches!(&*slot, Some((l, _)) if *l == level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level).map_err(failed)?));
        }
        let Some((_, compressor)) = slot.as_mut() else {
            return Err(FormatError::Compress {
                codec: "zstd",
                reason: "no compression context".into(),
            });
        };
        compressor
            .compress_to_buffer(body, &mut cursor)
            .map_err(failed)
    })?;
    Ok(cursor.into_inner())
}

/// Decompresses the one zstd frame of a block into exactly `expected` bytes. The frame must
/// declare that content size and fill the block; the output buffer is reserved (not touched)
/// up front and zstd refuses to write past it, so a frame that would inflate further is
/// refused without being inflated.
fn zstd_decompress(stored: &[u8], expected: u64, out: &mut Vec<u8>) -> Result<(), String> {
    use zstd::zstd_safe;
    match zstd_safe::get_frame_content_size(stored) {
        Ok(Some(n)) if n == expected => {}
        Ok(Some(n)) => {
            return Err(format!(
                "the zstd frame declares {n} bytes of content, the header says {expected}"
            ));
        }
        Ok(None) => return Err("the zstd frame does not declare its content size".to_string()),
        Err(_) => return Err("the record block does not start with a zstd frame".to_string()),
    }
    match zstd_safe::find_frame_compressed_size(stored) {
        Ok(n) if n == stored.len() => {}
        Ok(n) => {
            return Err(format!(
                "{} bytes follow the zstd frame in the record block",
                stored.len() - n
            ));
        }
        Err(code) => {
            return Err(format!(
                "the zstd frame is malformed: {}",
                zstd_safe::get_error_name(code)
            ));
        }
    }
    out.clear();
    out.reserve_exact(expected as usize);
    let n = zstd::bulk::Decompressor::new()
        .and_then(|mut d| d.decompress_to_buffer(stored, out))
        .map_err(|e| format!("zstd data does not decompress into {expected} bytes: {e}"))?;
    if n as u64 != expected {
        return Err(format!(
            "zstd block decompresses to {n} bytes, the header says {expected}"
        ));
    }
    Ok(())
}

/// Decompresses an LZ4 block into exactly `expected` bytes (`out`'s old content is dropped
/// first; its memory is reused).
fn lz4_decompress(stored: &[u8], expected: u64, out: &mut Vec<u8>) -> Result<(), String> {
    use super::lz4::{decompress_block, Lz4Error};
    let n = usize::try_from(expected)
        .map_err(|_| Lz4Error::TooLarge)
        .and_then(|capacity| decompress_block(stored, capacity, out))
        .map_err(|e| match e {
            Lz4Error::TooLarge => format!("an lz4 block of {expected} bytes is too large"),
            Lz4Error::Malformed => format!(
                "lz4 data does not decompress into the {expected} bytes the header says: the block is malformed or expands to more"
            ),
        })?;
    if n as u64 != expected {
        return Err(format!(
            "lz4 block decompresses to {n} bytes, the header says {expected}"
        ));
    }
    Ok(())
}

/// Decodes the record block and checks it against the header's stats.
fn decode_block(
    block: &[u8],
    stats: &SegmentStats,
) -> Result<(Vec<IndexEntry>, Vec<HeaderEntry>), String> {
    let mut cur = Cursor { buf: block, pos: 0 };
    // The count was checked against the block's length; memory still grows only with the
    // records really decoded.
    let mut out = Vec::with_capacity(stats.records.min(1 << 16) as usize);
    let mut all_headers: Vec<HeaderEntry> = Vec::new();
    let mut previous = i128::from(stats.first_offset) - 1;
    let mut last_ts = 0i64;
    let (mut min_ts, mut max_ts) = (i64::MAX, i64::MIN);
    for i in 0..stats.records {
        let start = cur.pos;
        let at = |what: &str| format!("record {i} (at byte {start} of the block): {what}");
        let delta = cur
            .uvarint()
            .map_err(|e| at(&format!("offset delta: {e}")))?;
        let offset = previous + 1 + i128::from(delta);
        let offset = i64::try_from(offset)
            .map_err(|_| at(&format!("offset {offset} is beyond the 64-bit range")))?;
        if i == 0 && offset != stats.first_offset {
            return Err(at(&format!(
                "first offset {offset}, the header says {}",
                stats.first_offset
            )));
        }
        let attrs = cur.byte().map_err(|e| at(&format!("attributes: {e}")))?;
        let timestamp_type = match TimestampType::from_bits(attrs & ATTR_TS_MASK) {
            Some(t) if attrs & !ATTR_TS_MASK == 0 => t,
            _ => return Err(at(&format!("unknown attributes 0x{attrs:02x}"))),
        };
        let ts_delta = cur
            .uvarint()
            .map_err(|e| at(&format!("timestamp delta: {e}")))?;
        let timestamp = last_ts.wrapping_add(unzigzag(ts_delta));
        let key = cur.nullable_span().map_err(|e| at(&format!("key: {e}")))?;
        let value = cur
            .nullable_span()
            .map_err(|e| at(&format!("value: {e}")))?;
        let count = cur
            .uvarint()
            .map_err(|e| at(&format!("header count: {e}")))?;
        if count > (cur.remaining() / MIN_HEADER_BYTES) as u64 {
            return Err(at(&format!(
                "{count} headers cannot fit in the {} bytes left",
                cur.remaining()
            )));
        }
        let first_header = u32::try_from(all_headers.len())
            .map_err(|_| at("more headers than one segment can index"))?;
        for h in 0..count {
            let hkey = cur
                .string_span()
                .map_err(|e| at(&format!("header {h} key: {e}")))?;
            let hvalue = cur
                .nullable_span()
                .map_err(|e| at(&format!("header {h} value: {e}")))?;
            all_headers.push(HeaderEntry {
                key: hkey,
                value: hvalue,
            });
        }
        previous = i128::from(offset);
        last_ts = timestamp;
        min_ts = min_ts.min(timestamp);
        max_ts = max_ts.max(timestamp);
        out.push(IndexEntry {
            offset,
            timestamp,
            key,
            value,
            first_header,
            // count <= remaining / 2 < 2^31 (the block is at most 1 GiB).
            header_count: count as u32,
            timestamp_type,
        });
    }
    if cur.remaining() != 0 {
        return Err(format!(
            "{} bytes follow the last of the {} records in the block",
            cur.remaining(),
            stats.records
        ));
    }
    if previous != i128::from(stats.last_offset) {
        return Err(format!(
            "last record has offset {previous}, the header says {}",
            stats.last_offset
        ));
    }
    if (min_ts, max_ts) != (stats.min_timestamp, stats.max_timestamp) {
        return Err(format!(
            "records' timestamps span {min_ts} to {max_ts}, the header says {} to {}",
            stats.min_timestamp, stats.max_timestamp
        ));
    }
    Ok((out, all_headers))
}

/// Appends `v` as an unsigned LEB128 varint (7 bits a byte, low first, high bit = more).
fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends a nullable byte string: varint `len + 1` then the bytes, or varint 0 for null.
fn put_nullable(buf: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => buf.push(0),
        Some(b) => {
            put_uvarint(buf, b.len() as u64 + 1);
            buf.extend_from_slice(b);
        }
    }
}

/// Zigzag: 0, -1, 1, -2, … → 0, 1, 2, 3, …
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// A bounds-checked reader over the record block.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn byte(&mut self) -> Result<u8, String> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| "runs past the end of the block".to_string())?;
        self.pos += 1;
        Ok(b)
    }

    /// A canonical LEB128 varint of at most 10 bytes.
    fn uvarint(&mut self) -> Result<u64, String> {
        // Most varints of a block (lengths, deltas) are one byte.
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.byte()?;
            if i == 9 && b > 1 {
                return Err("varint overflows 64 bits".to_string());
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err("non-canonical varint".to_string());
                }
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".to_string())
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], String> {
        if len > self.remaining() as u64 {
            return Err(format!(
                "length {len} runs past the end of the block ({} bytes left)",
                self.remaining()
            ));
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(&self.buf[start..self.pos])
    }

    /// Where `take(len)` would land, as a span (the block is at most 1 GiB, so it fits).
    fn span(&mut self, len: u64) -> Result<Span, String> {
        let start = self.pos;
        self.take(len)?;
        Ok(Span {
            start: start as u32,
            len: len as u32,
        })
    }

    fn nullable_span(&mut self) -> Result<Span, String> {
        match self.uvarint()? {
            0 => Ok(Span::NULL),
            n => self.span(n - 1),
        }
    }

    fn string_span(&mut self) -> Result<Span, String> {
        let len = self.uvarint()?;
        let start = self.pos;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
        Ok(Span {
            start: start as u32,
            len: len as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const NAME: &str = "backups/b1/topics/orders/0/00000000000000000042.seg";

    fn codecs() -> Vec<Codec> {
        vec![
            Codec::None,
            Codec::Zstd { level: 1 },
            Codec::Zstd { level: 3 },
            Codec::Zstd { level: 22 },
            Codec::Lz4,
        ]
    }

    fn rec(
        offset: i64,
        timestamp: i64,
        timestamp_type: TimestampType,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> Record {
        Record {
            offset,
            timestamp,
            timestamp_type,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
                .collect(),
        }
    }

    /// Every edge the format must keep apart.
    fn edge_records() -> Vec<Record> {
        let big: Vec<u8> = (0..(1 << 20)).map(|i: u32| (i * 7 % 251) as u8).collect();
        use TimestampType::*;
        vec![
            rec(
                42,
                1_700_000_000_000,
                CreateTime,
                Some(b"k"),
                Some(b"v"),
                &[],
            ),
            // null vs empty key and value
            rec(43, 1_700_000_000_001, CreateTime, None, None, &[]),
            rec(44, 1_700_000_000_002, CreateTime, Some(b""), Some(b""), &[]),
            rec(45, 1_700_000_000_003, CreateTime, None, Some(b""), &[]),
            rec(46, 1_700_000_000_004, CreateTime, Some(b""), None, &[]),
            // headers: null and empty values, duplicate keys in order, unicode and empty keys
            rec(
                47,
                1_700_000_000_005,
                CreateTime,
                Some(b"k"),
                Some(b"v"),
                &[
                    ("trace", None),
                    ("trace", Some(b"")),
                    ("trace", Some(b"abc")),
                    ("ключ-🔑-鍵", Some("värde".as_bytes())),
                    ("", Some(b"\x00\xff")),
                ],
            ),
            // a 1 MiB value and key
            rec(
                48,
                1_700_000_000_006,
                CreateTime,
                Some(&big),
                Some(&big),
                &[],
            ),
            // offset gaps (compaction, transactions), out-of-order and negative timestamps
            rec(
                1_000,
                1_600_000_000_000,
                CreateTime,
                Some(b"old"),
                Some(b"x"),
                &[],
            ),
            rec(1_001, -5, CreateTime, Some(b"neg"), Some(b"x"), &[]),
            rec(5_000_000_000, -1, NotAvailable, None, Some(b"no ts"), &[]),
            rec(
                5_000_000_001,
                1_800_000_000_000,
                LogAppendTime,
                Some(b"l"),
                None,
                &[("h", None)],
            ),
            // timestamp extremes (deltas wrap around)
            rec(5_000_000_002, i64::MIN, CreateTime, None, None, &[]),
            rec(5_000_000_003, i64::MAX, CreateTime, None, None, &[]),
            rec(i64::MAX - 1, 0, CreateTime, None, None, &[]),
            rec(
                i64::MAX,
                i64::MIN,
                LogAppendTime,
                Some(&[0u8; 200]),
                None,
                &[],
            ),
        ]
    }

    #[test]
    fn an_uncompressed_object_comes_back_once_nothing_else_holds_it() {
        let records = edge_records();
        let (bytes, _) = encode(Codec::None, &records);
        let at = bytes.as_ptr();
        let spare = Vec::with_capacity(1 << 10);
        let seg = decode_segment_shared(bytes::Bytes::from(bytes), NAME, spare).expect("decode");
        assert_eq!(seg.len(), records.len());
        let (block, object) = seg.into_buffers();
        assert!(block.capacity() >= 1 << 10, "the spare buffer comes back");
        let object = object.expect("the object's memory comes back");
        assert_eq!(object.as_ptr(), at, "the same allocation, not a copy");
        // A compressed segment's block is its own buffer; there is no object to give back.
        let (bytes, _) = encode(Codec::Lz4, &records);
        let seg = decode_segment_shared(bytes::Bytes::from(bytes), NAME, object).expect("decode");
        let (block, object) = seg.into_buffers();
        assert!(object.is_none());
        assert!(block.len() >= records.len());
    }

    #[test]
    fn shared_decoding_borrows_and_reuses_buffers() {
        let records = edge_records();
        // A dirty, too-large buffer from an earlier segment must not leak into the next one.
        let mut buffer = vec![0xAB; 3 << 20];
        for codec in codecs() {
            let (bytes, stats) = encode(codec, &records);
            let data = bytes::Bytes::from(bytes);
            let seg = decode_segment_shared(data.clone(), NAME, buffer).expect("decode");
            assert_eq!(seg.stats(), &stats);
            assert_eq!(seg.len(), records.len());
            assert_eq!(seg.iter().len(), records.len());
            for (r, expected) in seg.iter().zip(&records) {
                assert_eq!(&r.to_record(), expected, "{codec:?}");
                assert_eq!(r.payload_bytes(), expected.payload_bytes());
            }
            if codec == Codec::None {
                // The records point into the object itself.
                let value = seg.get(0).and_then(|r| r.value).expect("value");
                let inside = data.as_ptr_range();
                assert!(inside.contains(&value.as_ptr()));
            }
            assert!(seg.memory() >= stats.uncompressed_bytes as usize);
            let (block, object) = seg.into_buffers();
            if codec == Codec::None {
                // Shared with `data` still: not handed back.
                assert!(object.is_none());
            }
            buffer = block;
        }
        assert!(buffer.capacity() >= 3 << 20, "the buffer comes back");
    }

    fn encode(codec: Codec, records: &[Record]) -> (Vec<u8>, SegmentStats) {
        let mut w = SegmentWriter::new(codec);
        for r in records {
            w.push_record(r).expect("push");
        }
        w.finish().expect("finish")
    }

    /// Recomputes the checksum after a test edits an object on purpose (a hostile writer).
    fn reseal(data: &mut [u8]) {
        let at = data.len() - CHECKSUM_LEN;
        let crc = crc32c::crc32c(&data[..at]);
        data[at..].copy_from_slice(&crc.to_le_bytes());
    }

    fn small_segment(codec: Codec) -> (Vec<u8>, Vec<Record>) {
        let records = vec![
            rec(
                7,
                1_000,
                TimestampType::CreateTime,
                Some(b"a"),
                Some(b"hello hello hello hello"),
                &[("h", None), ("h", Some(b"1"))],
            ),
            rec(9, 900, TimestampType::LogAppendTime, None, Some(b""), &[]),
            rec(
                10,
                -1,
                TimestampType::NotAvailable,
                Some(b""),
                None,
                &[("k", Some(b""))],
            ),
        ];
        let (bytes, _) = encode(codec, &records);
        (bytes, records)
    }

    fn corrupt_reason(err: FormatError) -> String {
        match err {
            FormatError::Corrupt { name, reason } => {
                assert_eq!(name, NAME);
                reason
            }
            other => panic!("expected a corrupt-segment error, got {other:?}"),
        }
    }

    #[test]
    fn every_codec_round_trips_every_edge_byte_for_byte() {
        let records = edge_records();
        for codec in codecs() {
            let (bytes, stats) = encode(codec, &records);
            let (read_stats, read) = decode_segment(&bytes, NAME).expect("decode");
            assert_eq!(read_stats, stats, "{codec:?}");
            assert_eq!(read.len(), records.len(), "{codec:?}");
            for (a, b) in read.iter().zip(&records) {
                assert_eq!(a, b, "{codec:?} offset {}", b.offset);
            }
            assert_eq!(check_segment(&bytes, NAME).expect("check"), stats);
        }
    }

    #[test]
    fn null_and_empty_stay_distinct() {
        for codec in codecs() {
            let (bytes, _) = encode(codec, &edge_records());
            let (_, read) = decode_segment(&bytes, NAME).expect("decode");
            assert_eq!((read[1].key.clone(), read[1].value.clone()), (None, None));
            assert_eq!(read[2].key.as_deref(), Some(&b""[..]));
            assert_eq!(read[2].value.as_deref(), Some(&b""[..]));
            assert_eq!(read[3].key, None);
            assert_eq!(read[3].value.as_deref(), Some(&b""[..]));
            assert_eq!(read[4].key.as_deref(), Some(&b""[..]));
            assert_eq!(read[4].value, None);
            let headers = &read[5].headers;
            assert_eq!(headers.len(), 5);
            assert_eq!(headers[0], ("trace".to_string(), None));
            assert_eq!(headers[1], ("trace".to_string(), Some(vec![])));
            assert_eq!(headers[2], ("trace".to_string(), Some(b"abc".to_vec())));
            assert_eq!(headers[3].0, "ключ-🔑-鍵");
            assert_eq!(headers[4], (String::new(), Some(vec![0, 0xff])));
            assert_eq!(read[6].value.as_ref().map(Vec::len), Some(1 << 20));
            assert_eq!(read[9].timestamp, -1);
            assert_eq!(read[9].timestamp_type, TimestampType::NotAvailable);
            assert_eq!(read[10].timestamp_type, TimestampType::LogAppendTime);
        }
    }

    #[test]
    fn stats_cover_all_records_not_just_first_and_last() {
        let records = vec![
            rec(10, 500, TimestampType::CreateTime, None, Some(b"a"), &[]),
            rec(11, 100, TimestampType::CreateTime, None, Some(b"b"), &[]),
            rec(15, 900, TimestampType::CreateTime, None, Some(b"c"), &[]),
            rec(20, 300, TimestampType::CreateTime, None, Some(b"d"), &[]),
        ];
        for codec in codecs() {
            let mut w = SegmentWriter::new(codec);
            assert_eq!(
                (w.records(), w.first_offset(), w.last_offset()),
                (0, None, None)
            );
            assert_eq!((w.min_timestamp(), w.max_timestamp()), (None, None));
            assert_eq!(w.uncompressed_bytes(), 0);
            let mut grown = 0;
            for r in &records {
                w.push_record(r).expect("push");
                assert!(w.uncompressed_bytes() > grown);
                grown = w.uncompressed_bytes();
            }
            assert_eq!(w.records(), 4);
            assert_eq!((w.first_offset(), w.last_offset()), (Some(10), Some(20)));
            assert_eq!(
                (w.min_timestamp(), w.max_timestamp()),
                (Some(100), Some(900))
            );
            assert_eq!(w.codec(), codec);
            let (bytes, stats) = w.finish().expect("finish");
            assert_eq!(
                stats,
                SegmentStats {
                    records: 4,
                    first_offset: 10,
                    last_offset: 20,
                    min_timestamp: 100,
                    max_timestamp: 900,
                    uncompressed_bytes: grown,
                    stored_bytes: bytes.len() as u64,
                    crc32c: u32::from_le_bytes(
                        bytes[bytes.len() - 4..].try_into().expect("4 bytes")
                    ),
                    codec: codec.name().to_string(),
                }
            );
        }
        assert_eq!(Codec::None.name(), "none");
        assert_eq!(Codec::Zstd { level: 9 }.name(), "zstd");
        assert_eq!(Codec::Lz4.name(), "lz4");
    }

    #[test]
    fn compression_shrinks_repetitive_records() {
        let value = b"{\"customer\":\"c-0001\",\"amount\":12.5,\"currency\":\"EUR\"}".repeat(20);
        let records: Vec<Record> = (0..500)
            .map(|i| {
                rec(
                    i,
                    1_700_000_000_000 + i,
                    TimestampType::CreateTime,
                    Some(b"k"),
                    Some(&value),
                    &[],
                )
            })
            .collect();
        let (plain, plain_stats) = encode(Codec::None, &records);
        for codec in [Codec::Zstd { level: 3 }, Codec::Lz4] {
            let (bytes, stats) = encode(codec, &records);
            assert!(
                bytes.len() * 10 < plain.len(),
                "{codec:?}: {} vs {}",
                bytes.len(),
                plain.len()
            );
            assert_eq!(stats.uncompressed_bytes, plain_stats.uncompressed_bytes);
        }
        // Contiguous offsets and close timestamps cost one byte each.
        assert_eq!(
            plain_stats.uncompressed_bytes,
            500 * (value.len() as u64 + 8) + 5
        );
    }

    #[test]
    fn encoding_is_deterministic() {
        let records = edge_records();
        for codec in codecs() {
            let (a, sa) = encode(codec, &records);
            let (b, sb) = encode(codec, &records);
            assert_eq!(a, b, "{codec:?}");
            assert_eq!(sa, sb);
        }
    }

    /// Each encoding thread keeps its zstd context and compresses into the object's buffer: the
    /// frames are still exactly what a fresh one-shot compression writes, whatever the thread
    /// compressed before and at whichever level.
    #[test]
    fn a_kept_zstd_context_writes_the_frames_a_fresh_one_does() {
        let records = edge_records();
        let mut plain = SegmentWriter::new(Codec::None);
        for r in &records {
            plain.push_record(r).expect("push");
        }
        let body = plain.block[HEADER_LEN..].to_vec();
        for level in [3, 1, 3, 19, 1] {
            let (bytes, stats) = encode(Codec::Zstd { level }, &records);
            let fresh = zstd::bulk::compress(&body, level).expect("compress");
            assert_eq!(
                &bytes[HEADER_LEN..bytes.len() - CHECKSUM_LEN],
                &fresh[..],
                "level {level}"
            );
            assert_eq!(stats.stored_bytes as usize, bytes.len());
            assert_eq!(check_segment(&bytes, NAME).expect("check"), stats);
            let (_, back) = decode_segment(&bytes, NAME).expect("decode");
            assert_eq!(back, records);
        }
        // Another thread (a fresh context) writes the same bytes.
        let here = encode(Codec::Zstd { level: 1 }, &records).0;
        let there = std::thread::spawn(move || encode(Codec::Zstd { level: 1 }, &records).0)
            .join()
            .expect("thread");
        assert_eq!(here, there);
    }

    #[test]
    fn offsets_must_increase_strictly_and_a_refused_push_changes_nothing() {
        let mut w = SegmentWriter::new(Codec::Lz4);
        w.push(5, 1, TimestampType::CreateTime, None, Some(b"a"), &[])
            .expect("first");
        let before = w.uncompressed_bytes();
        for bad in [5, 4, -1, i64::MIN] {
            let err = w
                .push(bad, 2, TimestampType::CreateTime, Some(b"zz"), None, &[])
                .expect_err("not increasing");
            assert!(matches!(err, FormatError::OffsetOrder { offset, last: 5 } if offset == bad));
            assert_eq!(err.label(), "offset_order");
            assert_eq!(
                err.to_string(),
                format!("record offset {bad} does not follow the segment's last offset 5: offsets must increase")
            );
        }
        assert_eq!((w.records(), w.uncompressed_bytes()), (1, before));
        assert_eq!(w.max_timestamp(), Some(1));
        w.push(6, 3, TimestampType::CreateTime, None, Some(b"b"), &[])
            .expect("next");
        let (bytes, stats) = w.finish().expect("finish");
        let (_, read) = decode_segment(&bytes, NAME).expect("decode");
        assert_eq!(
            read.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![5, 6]
        );
        assert_eq!((stats.min_timestamp, stats.max_timestamp), (1, 3));
    }

    #[test]
    fn a_full_segment_refuses_the_record_and_stays_valid() {
        let mut w = SegmentWriter::new(Codec::None);
        w.max_block = 100;
        w.push(0, 0, TimestampType::CreateTime, None, Some(&[1; 50]), &[])
            .expect("fits");
        let err = w
            .push(1, 0, TimestampType::CreateTime, None, Some(&[2; 50]), &[])
            .expect_err("too big");
        assert_eq!(err.label(), "segment_full");
        assert!(err.to_string().contains("segment is full"), "{err}");
        assert_eq!(w.records(), 1);
        let (bytes, stats) = w.finish().expect("finish");
        assert_eq!((stats.records, stats.last_offset), (1, 0));
        let mut fresh = SegmentWriter::new(Codec::None);
        fresh.max_block = 100;
        let err = fresh
            .push(0, 0, TimestampType::CreateTime, None, Some(&[3; 200]), &[])
            .expect_err("never fits");
        assert_eq!(
            err.to_string(),
            "record 0 needs 207 bytes, more than one segment can hold (100)"
        );
        assert_eq!(decode_segment(&bytes, NAME).expect("decode").1.len(), 1);
    }

    #[test]
    fn empty_segments_and_bad_levels_are_refused() {
        let err = SegmentWriter::new(Codec::Lz4).finish().expect_err("empty");
        assert!(matches!(err, FormatError::Empty));
        for level in [0, -1, 23] {
            let mut w = SegmentWriter::new(Codec::Zstd { level });
            w.push(0, 0, TimestampType::CreateTime, None, None, &[])
                .expect("push");
            let err = w.finish().expect_err("bad level");
            assert_eq!(
                err.to_string(),
                format!("invalid zstd level {level}: zstd levels are 1 to 22")
            );
        }
    }

    #[test]
    fn every_single_byte_corruption_is_detected() {
        for codec in codecs() {
            let (bytes, records) = small_segment(codec);
            assert_eq!(decode_segment(&bytes, NAME).expect("clean").1, records);
            for i in 0..bytes.len() {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut bad = bytes.clone();
                    bad[i] ^= flip;
                    let err = decode_segment(&bad, NAME)
                        .expect_err(&format!("{codec:?}: byte {i} ^ {flip:#x} not detected"));
                    assert!(err.to_string().contains(NAME), "{err}");
                    assert!(check_segment(&bad, NAME).is_err(), "{codec:?} byte {i}");
                }
            }
        }
    }

    #[test]
    fn checksum_mismatch_message_names_both_values() {
        let (mut bytes, _) = small_segment(Codec::Zstd { level: 3 });
        bytes[HEADER_LEN] ^= 0x10;
        let stored = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().expect("4 bytes"));
        let computed = crc32c::crc32c(&bytes[..bytes.len() - 4]);
        let err = decode_segment(&bytes, NAME).expect_err("corrupt");
        assert_eq!(
            err.to_string(),
            format!(
                "segment '{NAME}' is corrupt: checksum mismatch (stored 0x{stored:08x}, computed 0x{computed:08x})"
            )
        );
        assert_eq!(err.label(), "corrupt");
        assert!(err.is_corrupt());
    }

    #[test]
    fn truncation_at_every_length_and_trailing_bytes_are_detected() {
        for codec in codecs() {
            let (bytes, _) = small_segment(codec);
            for len in 0..bytes.len() {
                let err = decode_segment(&bytes[..len], NAME)
                    .expect_err(&format!("{codec:?}: truncation to {len} not detected"));
                let reason = corrupt_reason(err);
                assert!(
                    reason.contains("truncated") || reason.starts_with("bad magic"),
                    "{len}: {reason}"
                );
                assert!(check_segment(&bytes[..len], NAME).is_err());
            }
            let mut longer = bytes.clone();
            longer.push(0);
            let reason = corrupt_reason(decode_segment(&longer, NAME).expect_err("longer"));
            assert!(reason.starts_with("trailing bytes"), "{reason}");
        }
    }

    #[test]
    fn not_a_segment_and_newer_versions_are_named() {
        let reason = corrupt_reason(decode_segment(&[b'{'; 100], NAME).expect_err("json"));
        assert!(reason.starts_with("bad magic 0x7b7b7b7b"), "{reason}");

        let (mut bytes, _) = small_segment(Codec::None);
        bytes[4] = 2;
        bytes[5] = 7;
        let err = decode_segment(&bytes, NAME).expect_err("major 2");
        assert_eq!(
            err.to_string(),
            format!(
                "segment '{NAME}' has format version 2.7; this tidemark reads version 1.x only"
            )
        );
        assert_eq!(err.label(), "unsupported_version");
        assert!(!err.is_corrupt());
    }

    #[test]
    fn a_newer_minor_version_with_a_longer_header_is_read() {
        let (bytes, records) = small_segment(Codec::Lz4);
        let mut newer = bytes[..HEADER_LEN].to_vec();
        newer[5] = 3;
        newer[6..8].copy_from_slice(&(HEADER_LEN as u16 + 8).to_le_bytes());
        newer[10..12].copy_from_slice(&[0xab, 0xcd]); // reserved: ignored
        newer.extend_from_slice(b"newfield");
        newer.extend_from_slice(&bytes[HEADER_LEN..]);
        reseal(&mut newer);
        let (stats, read) = decode_segment(&newer, NAME).expect("minor 3 decodes");
        assert_eq!(read, records);
        assert_eq!(stats.stored_bytes, bytes.len() as u64 + 8);
    }

    #[test]
    fn unknown_codecs_and_flags_are_refused() {
        let (bytes, _) = small_segment(Codec::None);
        let mut codec = bytes.clone();
        codec[8] = 9;
        reseal(&mut codec);
        let err = decode_segment(&codec, NAME).expect_err("codec 9");
        assert_eq!(
            err.to_string(),
            format!("segment '{NAME}' uses codec id 9, which this tidemark does not support")
        );
        let mut flags = bytes;
        flags[9] = 0x04;
        reseal(&mut flags);
        let err = check_segment(&flags, NAME).expect_err("flags");
        assert!(err.to_string().contains("flags 0x04"), "{err}");
    }

    /// Sets a header field and reseals, as a hostile or buggy writer would.
    fn forged(bytes: &[u8], at: usize, field: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        out[at..at + field.len()].copy_from_slice(field);
        reseal(&mut out);
        out
    }

    #[test]
    fn hostile_headers_with_valid_checksums_are_refused() {
        let (bytes, _) = small_segment(Codec::None);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (forged(&bytes, 6, &10u16.to_le_bytes()), "header length 10"),
            (forged(&bytes, 6, &u16::MAX.to_le_bytes()), "truncated"),
            (
                forged(&bytes, 56, &u64::MAX.to_le_bytes()),
                "more than 2^64",
            ),
            (forged(&bytes, 12, &0u32.to_le_bytes()), "no records"),
            (
                forged(&bytes, 12, &u32::MAX.to_le_bytes()),
                "cannot have distinct offsets",
            ),
            (
                forged(&bytes, 12, &2u32.to_le_bytes()),
                "follow the last of the 2 records",
            ),
            (forged(&bytes, 12, &4u32.to_le_bytes()), "record 3"),
            (
                forged(&bytes, 16, &11i64.to_le_bytes()),
                "after last offset",
            ),
            (
                forged(&bytes, 16, &8i64.to_le_bytes()),
                "last record has offset 11, the header says 10",
            ),
            (
                forged(&bytes, 24, &11i64.to_le_bytes()),
                "last record has offset 10, the header says 11",
            ),
            (
                forged(&bytes, 32, &(-2i64).to_le_bytes()),
                "timestamps span -1 to 1000",
            ),
            (
                forged(&bytes, 40, &(-5i64).to_le_bytes()),
                "after max timestamp",
            ),
            (
                forged(&bytes, 48, &(MAX_BLOCK_BYTES + 1).to_le_bytes()),
                "more than the limit",
            ),
            (forged(&bytes, 48, &1u64.to_le_bytes()), "cannot fit"),
        ];
        for (data, expected) in cases {
            let reason = corrupt_reason(decode_segment(&data, NAME).expect_err(expected));
            assert!(
                reason.contains(expected),
                "expected '{expected}' in '{reason}'"
            );
        }
        // A one-record header that spans several offsets.
        let (one, _) = encode(
            Codec::None,
            &[rec(3, 0, TimestampType::CreateTime, None, None, &[])],
        );
        let reason = corrupt_reason(
            decode_segment(&forged(&one, 24, &9i64.to_le_bytes()), NAME).expect_err("span"),
        );
        assert!(
            reason.contains("one record, but first offset 3 and last offset 9"),
            "{reason}"
        );
    }

    /// A codec-none segment whose block is `block`, with consistent header fields.
    fn raw_segment(records: u32, first: i64, last: i64, block: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        out.extend_from_slice(&[CODEC_NONE, 0, 0, 0]);
        out.extend_from_slice(&records.to_le_bytes());
        out.extend_from_slice(&first.to_le_bytes());
        out.extend_from_slice(&last.to_le_bytes());
        out.extend_from_slice(&0i64.to_le_bytes());
        out.extend_from_slice(&0i64.to_le_bytes());
        out.extend_from_slice(&(block.len() as u64).to_le_bytes());
        out.extend_from_slice(&(block.len() as u64).to_le_bytes());
        out.extend_from_slice(block);
        out.extend_from_slice(&[0; 4]);
        reseal(&mut out);
        out
    }

    #[test]
    fn hostile_record_blocks_are_refused() {
        let pad = [0u8; 8];
        let with_pad = |b: &[u8]| [b, &pad[..]].concat();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            // key length far beyond the block
            (
                with_pad(&[0, 0, 0, 0xff, 0xff, 0x03]),
                "key: length 65534 runs past the end",
            ),
            // absurd header count
            (
                with_pad(&[0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]),
                "headers cannot fit",
            ),
            // header key that is not UTF-8
            (
                [&[0u8, 0, 0, 0, 0, 1, 2, 0xc3, 0x28, 0][..], &[0; 6][..]].concat(),
                "not UTF-8",
            ),
            // unknown attributes
            (with_pad(&[0, 0x03, 0, 0, 0, 0]), "unknown attributes 0x03"),
            (with_pad(&[0, 0x10, 0, 0, 0, 0]), "unknown attributes 0x10"),
            // varints: non-canonical and overlong
            (with_pad(&[0x80, 0x00, 0, 0, 0, 0]), "non-canonical varint"),
            ([&[0xffu8; 10][..], &[0x01]].concat(), "overflows 64 bits"),
            // offset delta beyond i64
            (
                with_pad(&[1, 0, 0, 0, 0, 0]),
                "first offset 1, the header says 0",
            ),
        ];
        for (block, expected) in cases {
            let data = raw_segment(1, 0, 0, &block);
            let reason = corrupt_reason(decode_segment(&data, NAME).expect_err(expected));
            assert!(
                reason.contains(expected),
                "expected '{expected}' in '{reason}'"
            );
        }
        // A record whose offset passes i64::MAX.
        let data = raw_segment(
            2,
            i64::MAX - 1,
            i64::MAX,
            &[0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        );
        let reason = corrupt_reason(decode_segment(&data, NAME).expect_err("overflow"));
        assert!(reason.contains("beyond the 64-bit range"), "{reason}");
    }

    /// The offset and size of a zstd frame header's content-size field (RFC 8878 3.1.1.1).
    fn zstd_content_size_field(frame: &[u8]) -> (usize, usize) {
        let descriptor = frame[4];
        let single_segment = descriptor & 0x20 != 0;
        let size = match descriptor >> 6 {
            0 if single_segment => 1,
            0 => 0,
            1 => 2,
            2 => 4,
            _ => 8,
        };
        let window = if single_segment { 0 } else { 1 };
        let dict = [0, 1, 2, 4][usize::from(descriptor & 3)];
        (5 + window + dict, size)
    }

    #[test]
    fn decompression_bombs_and_wrong_sizes_are_refused() {
        let zeros = vec![0u8; 10 << 20];
        let records = vec![rec(
            0,
            0,
            TimestampType::CreateTime,
            None,
            Some(&zeros),
            &[],
        )];
        for codec in [Codec::Zstd { level: 3 }, Codec::Lz4] {
            let (bytes, stats) = encode(codec, &records);
            assert!(
                stats.stored_bytes < 100_000,
                "{codec:?}: {}",
                stats.stored_bytes
            );
            // The header understates the decompressed size: refused before it is all produced.
            let small = forged(&bytes, 48, &6u64.to_le_bytes());
            let reason = corrupt_reason(decode_segment(&small, NAME).expect_err("bomb"));
            let expected = match codec {
                Codec::Lz4 => "lz4 data does not decompress into the 6 bytes",
                _ => "the zstd frame declares 10485769 bytes of content, the header says 6",
            };
            assert!(reason.starts_with(expected), "{codec:?}: {reason}");
            // The header overstates it.
            let big = forged(&bytes, 48, &(stats.uncompressed_bytes + 1).to_le_bytes());
            let reason = corrupt_reason(decode_segment(&big, NAME).expect_err("short"));
            let expected = match codec {
                Codec::Lz4 => "lz4 block decompresses to 10485769 bytes, the header says 10485770",
                _ => "the zstd frame declares 10485769 bytes of content, the header says 10485770",
            };
            assert_eq!(reason, expected, "{codec:?}");
        }
        // A zstd frame whose own header lies about its content size, agreeing with the
        // segment header: zstd stops at the reserved size instead of inflating 10 MiB.
        let (mut bytes, _) = encode(Codec::Zstd { level: 3 }, &records);
        let (at, size) = zstd_content_size_field(&bytes[HEADER_LEN..]);
        assert_eq!(size, 4, "a 10 MiB frame has a 4-byte content size");
        bytes[HEADER_LEN + at..HEADER_LEN + at + 4].copy_from_slice(&1000u32.to_le_bytes());
        let lying = forged(&bytes, 48, &1000u64.to_le_bytes());
        let reason = corrupt_reason(decode_segment(&lying, NAME).expect_err("lying frame"));
        assert!(
            reason.starts_with("zstd data does not decompress into 1000 bytes"),
            "{reason}"
        );
        // LZ4 cannot expand past 255:1, so such a claim is refused from the header alone.
        let (bytes, stats) = encode(Codec::Lz4, &records);
        let claim = (stats.stored_bytes - 68) * 255 + 1;
        let reason = corrupt_reason(
            check_segment(&forged(&bytes, 48, &claim.to_le_bytes()), NAME).expect_err("ratio"),
        );
        assert!(reason.contains("lz4 cannot expand"), "{reason}");
        // Garbage that is not compressed data at all.
        for (codec, expected) in [
            (
                CODEC_ZSTD,
                "the record block does not start with a zstd frame",
            ),
            (CODEC_LZ4, "lz4 data does not decompress"),
        ] {
            let mut data = raw_segment(1, 0, 0, &[0x5a; 40]);
            data[8] = codec;
            data[48..56].copy_from_slice(&100u64.to_le_bytes());
            reseal(&mut data);
            let reason = corrupt_reason(decode_segment(&data, NAME).expect_err("garbage"));
            assert!(reason.starts_with(expected), "{reason}");
        }
        // Bytes after the zstd frame, and a frame cut short.
        let (bytes, _) = encode(Codec::Zstd { level: 3 }, &records);
        let frame = &bytes[HEADER_LEN..bytes.len() - CHECKSUM_LEN];
        let with_block = |block: &[u8]| {
            let mut out = bytes[..HEADER_LEN].to_vec();
            out[56..64].copy_from_slice(&(block.len() as u64).to_le_bytes());
            out.extend_from_slice(block);
            out.extend_from_slice(&[0; 4]);
            reseal(&mut out);
            out
        };
        let reason = corrupt_reason(
            decode_segment(&with_block(&[frame, &[0]].concat()), NAME).expect_err("after frame"),
        );
        assert_eq!(reason, "1 bytes follow the zstd frame in the record block");
        let reason = corrupt_reason(
            decode_segment(&with_block(&frame[..frame.len() - 3]), NAME).expect_err("cut"),
        );
        assert!(
            reason.starts_with("the zstd frame is malformed"),
            "{reason}"
        );
    }

    fn random_bytes(rng: &mut StdRng, max: usize) -> Option<Vec<u8>> {
        match rng.random_range(0..10) {
            0 => None,
            1 => Some(Vec::new()),
            _ => {
                let len = rng.random_range(0..=max);
                let mut v = vec![0u8; len];
                rng.fill(&mut v[..]);
                Some(v)
            }
        }
    }

    fn random_record(rng: &mut StdRng, offset: i64) -> Record {
        let timestamp_type = match rng.random_range(0..10) {
            0 => TimestampType::NotAvailable,
            1 | 2 => TimestampType::LogAppendTime,
            _ => TimestampType::CreateTime,
        };
        let timestamp = match (timestamp_type, rng.random_range(0..20)) {
            (TimestampType::NotAvailable, _) => -1,
            (_, 0) => rng.random::<i64>(),
            (_, 1) => -rng.random_range(0..1_000_000),
            _ => 1_700_000_000_000 + rng.random_range(-60_000..60_000),
        };
        let headers = (0..rng.random_range(0..4))
            .map(|_| {
                let key: String = (0..rng.random_range(0..8))
                    .map(|_| {
                        *["a", "b", "é", "🔑", "-"]
                            .get(rng.random_range(0..5))
                            .unwrap_or(&"a")
                    })
                    .collect();
                (key, random_bytes(rng, 16))
            })
            .collect();
        Record {
            offset,
            timestamp,
            timestamp_type,
            key: random_bytes(rng, 24),
            value: random_bytes(rng, 300),
            headers,
        }
    }

    #[test]
    fn random_segments_round_trip_with_exact_stats() {
        let mut rng = StdRng::seed_from_u64(0x7d3a_2026);
        for round in 0..150 {
            let count = rng.random_range(1..200);
            let mut offset: i64 = rng.random_range(0..1_000_000_000);
            let mut records = Vec::with_capacity(count);
            for _ in 0..count {
                records.push(random_record(&mut rng, offset));
                offset += match rng.random_range(0..10) {
                    0 => rng.random_range(2..1_000_000),
                    _ => 1,
                };
            }
            let codec = match round % 3 {
                0 => Codec::None,
                1 => Codec::Zstd {
                    level: rng.random_range(1..=9),
                },
                _ => Codec::Lz4,
            };
            let (bytes, stats) = encode(codec, &records);
            assert_eq!(stats.records, count as u64);
            assert_eq!(stats.first_offset, records[0].offset);
            assert_eq!(stats.last_offset, records[count - 1].offset);
            let min = records.iter().map(|r| r.timestamp).min();
            let max = records.iter().map(|r| r.timestamp).max();
            assert_eq!(
                (Some(stats.min_timestamp), Some(stats.max_timestamp)),
                (min, max)
            );
            let (read_stats, read) = decode_segment(&bytes, NAME).expect("decode");
            assert_eq!(read_stats, stats, "round {round}");
            assert_eq!(read, records, "round {round} ({codec:?})");
            // A random corruption is always caught.
            let mut bad = bytes.clone();
            let at = rng.random_range(0..bad.len());
            bad[at] ^= rng.random_range(1..=255u8);
            assert!(
                decode_segment(&bad, NAME).is_err(),
                "round {round} byte {at}"
            );
        }
    }

    /// The worked example in docs/FORMAT.md, computed there independently of this code.
    const DOC_EXAMPLE_HEX: &str =
        "544d53470100400000000000020000002a000000000000002c00000000000000\
        f667e5cf8b0100000068e5cf8b0100001b000000000000001b00000000000000\
        000080a0abfef962026b03763102016800016802780101130001006ad2c1b6";

    fn doc_example_records() -> Vec<Record> {
        vec![
            rec(
                42,
                1_700_000_000_000,
                TimestampType::CreateTime,
                Some(b"k"),
                Some(b"v1"),
                &[("h", None), ("h", Some(b"x"))],
            ),
            rec(
                44,
                1_699_999_999_990,
                TimestampType::LogAppendTime,
                None,
                Some(b""),
                &[],
            ),
        ]
    }

    #[test]
    fn the_documented_example_is_byte_exact() {
        let (bytes, stats) = encode(Codec::None, &doc_example_records());
        assert_eq!(hex(&bytes), DOC_EXAMPLE_HEX.replace(' ', ""));
        assert_eq!(
            stats,
            SegmentStats {
                records: 2,
                first_offset: 42,
                last_offset: 44,
                min_timestamp: 1_699_999_999_990,
                max_timestamp: 1_700_000_000_000,
                uncompressed_bytes: 27,
                stored_bytes: 95,
                crc32c: 0xb6c1_d26a,
                codec: "none".to_string(),
            }
        );
        assert_eq!(
            decode_segment(&bytes, NAME).expect("decode").1,
            doc_example_records()
        );
    }

    #[test]
    fn varints_and_zigzag_round_trip_at_the_edges() {
        for v in [
            0u64,
            1,
            127,
            128,
            255,
            300,
            16_383,
            16_384,
            u64::MAX >> 1,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            put_uvarint(&mut buf, v);
            assert!(buf.len() <= 10);
            let mut cur = Cursor { buf: &buf, pos: 0 };
            assert_eq!(cur.uvarint().expect("varint"), v);
            assert_eq!(cur.remaining(), 0);
        }
        for v in [0i64, -1, 1, -64, 64, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!((zigzag(0), zigzag(-1), zigzag(1), zigzag(-2)), (0, 1, 2, 3));
    }

    #[test]
    fn serde_names_and_task_codecs() {
        assert_eq!(
            serde_json::to_string(&[
                TimestampType::CreateTime,
                TimestampType::LogAppendTime,
                TimestampType::NotAvailable
            ])
            .expect("json"),
            r#"["create_time","log_append_time","not_available"]"#
        );
        let (bytes, _) = small_segment(Codec::Lz4);
        let stats = check_segment(&bytes, NAME).expect("check");
        let json = serde_json::to_value(&stats).expect("json");
        assert_eq!(json["codec"], "lz4");
        assert_eq!(json["min_timestamp"], -1);
        let back: SegmentStats = serde_json::from_value(json).expect("back");
        assert_eq!(back, stats);

        use crate::task::Compression;
        assert_eq!(
            Codec::from_task(Compression::Zstd, None),
            Codec::Zstd { level: 1 }
        );
        assert_eq!(
            Codec::from_task(Compression::Zstd, Some(19)),
            Codec::Zstd { level: 19 }
        );
        assert_eq!(Codec::from_task(Compression::Lz4, Some(19)), Codec::Lz4);
        assert_eq!(Codec::from_task(Compression::None, None), Codec::None);
        assert_eq!(Codec::default(), Codec::Zstd { level: 1 });

        assert_eq!(
            TimestampType::split_kafka(rdkafka::Timestamp::LogAppendTime(5)),
            (5, TimestampType::LogAppendTime)
        );
        assert_eq!(
            TimestampType::split_kafka(rdkafka::Timestamp::CreateTime(-7)),
            (-7, TimestampType::CreateTime)
        );
        assert_eq!(
            TimestampType::split_kafka(rdkafka::Timestamp::NotAvailable),
            (-1, TimestampType::NotAvailable)
        );
    }

    /// A realistic ~50 MB partition run (JSON-like values, keys, two headers): prints encode
    /// and decode throughput per codec with `--nocapture`. Timing is not asserted.
    #[test]
    fn throughput_micro_check() {
        let mut rng = StdRng::seed_from_u64(50);
        let words = [
            "order", "customer", "amount", "EUR", "USD", "shipped", "pending", "sku",
        ];
        let mut records = Vec::new();
        let mut total = 0usize;
        let mut offset = 0i64;
        while total < 50 << 20 {
            let mut value = String::from("{");
            for _ in 0..rng.random_range(20..60) {
                let w = words[rng.random_range(0..words.len())];
                value.push_str(&format!("\"{w}\":{},", rng.random_range(0..100_000)));
            }
            value.push('}');
            let key = format!("customer-{}", rng.random_range(0..10_000));
            let r = rec(
                offset,
                1_700_000_000_000 + offset / 10,
                TimestampType::CreateTime,
                Some(key.as_bytes()),
                Some(value.as_bytes()),
                &[
                    ("trace-id", Some(b"4bf92f3577b34da6a3ce929d0e0e4736")),
                    ("source", Some(b"checkout")),
                ],
            );
            total += key.len() + value.len() + 56;
            records.push(r);
            offset += 1;
        }
        let mb = total as f64 / 1e6;
        for codec in [Codec::Zstd { level: 3 }, Codec::Lz4, Codec::None] {
            let start = std::time::Instant::now();
            let mut w = SegmentWriter::new(codec);
            for r in &records {
                w.push_record(r).expect("push");
            }
            let (bytes, stats) = w.finish().expect("finish");
            let encode = start.elapsed().as_secs_f64();
            let start = std::time::Instant::now();
            let (_, read) = decode_segment(&bytes, NAME).expect("decode");
            let decode = start.elapsed().as_secs_f64();
            assert_eq!(read.len(), records.len());
            println!(
                "{:>4}: {:.1} MB of records ({} records) -> {:.1} MB stored ({:.1}x); encode {:.0} MB/s, decode {:.0} MB/s",
                codec.name(),
                mb,
                records.len(),
                stats.stored_bytes as f64 / 1e6,
                stats.uncompressed_bytes as f64 / stats.stored_bytes as f64,
                mb / encode,
                mb / decode,
            );
        }
    }
}

//! Kafka's record batch, version 2 (magic 2): the on-disk and on-wire unit of records since
//! Kafka 0.11, which produce requests carry and fetch responses return.
//!
//! [`encode`] writes one batch into a caller's buffer; [`decode`] reads the batches of one
//! partition's fetched bytes, verifying each batch's CRC-32C, decompressing it (gzip, snappy
//! in both the raw and the xerial framing, LZ4 frames, zstd), skipping control batches and,
//! for `read_committed`, the records of aborted transactions.
//!
//! # Layout
//!
//! ```text
//! baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 (= 2) | crc u32
//! | attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64
//! | producerId i64 | producerEpoch i16 | baseSequence i32 | recordCount i32 | records...
//! ```
//!
//! `batchLength` counts the bytes after itself; the CRC covers `attributes` to the end. Each
//! record is `length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
//! keyLength varint | key | valueLength varint | value | headerCount varint | headers`, each
//! header `keyLength varint | key | valueLength varint | value`, all varints zigzag-encoded,
//! and a length of -1 meaning null. With compression, all records form one compressed block.
//!
//! # Untrusted input
//!
//! [`decode`] reads bytes from the network. It never panics on them, checks every count and
//! length against the bytes that remain before allocating for it, and caps what one batch
//! decompresses to at [`MAX_DECOMPRESSED`].

use std::collections::HashSet;
use std::ops::Range;

use bytes::{Buf, BufMut, Bytes, BytesMut};

mod compression;

/// The most bytes one batch may decompress to; a batch that holds more is refused.
pub(crate) const MAX_DECOMPRESSED: usize = 64 << 20;

/// The record batch format this module reads and writes.
const MAGIC: i8 = 2;
/// `baseOffset` and `batchLength`: the bytes before the part `batchLength` counts.
const LOG_OVERHEAD: usize = 12;
/// The header's size up to and including the record count, where the records start.
const HEADER_LEN: usize = 61;
/// The smallest valid `batchLength`: a header without records.
const MIN_BATCH_LENGTH: usize = HEADER_LEN - LOG_OVERHEAD;
/// Where the magic byte sits (in every message format version).
const MAGIC_AT: usize = 16;
/// Where the CRC sits.
const CRC_AT: usize = 17;
/// Where the CRC's coverage (the attributes) starts.
const ATTRIBUTES_AT: usize = 21;
/// The smallest encoded record: seven one-byte fields (length, attributes, timestamp delta,
/// offset delta, key length, value length, header count).
const MIN_RECORD_LEN: usize = 7;
/// The smallest encoded header: a key length and a value length.
const MIN_HEADER_LEN: usize = 2;
/// The most records room is made for before they are read.
const RESERVE_RECORDS: usize = 4096;
/// The most headers of a record room is made for before they are read.
const RESERVE_HEADERS: usize = 16;
/// Attribute bits 0-2: the compression codec.
const COMPRESSION_MASK: i16 = 0x07;
/// Attribute bit 3: the timestamps are the broker's log append time (`maxTimestamp`).
const LOG_APPEND_TIME_FLAG: i16 = 0x08;
/// Attribute bit 4: the batch is part of a transaction.
const TRANSACTIONAL_FLAG: i16 = 0x10;
/// Attribute bit 5: the batch holds control records (transaction markers).
const CONTROL_FLAG: i16 = 0x20;
/// `producerId`, `producerEpoch`, `baseSequence` and `partitionLeaderEpoch` when unset.
const NO_PRODUCER_ID: i64 = -1;
/// See [`NO_PRODUCER_ID`].
const NO_PRODUCER_EPOCH: i16 = -1;
/// See [`NO_PRODUCER_ID`].
const NO_SEQUENCE: i32 = -1;
/// See [`NO_PRODUCER_ID`].
const NO_PARTITION_LEADER_EPOCH: i32 = -1;
/// The type of an abort marker in a control record's key (`version i16 | type i16`).
const CONTROL_TYPE_ABORT: i16 = 0;

/// Compression of a batch: the attribute bits 0-2 hold [`Compression::id`]. Snappy is
/// written in the xerial framing of Kafka's Java client and read in that framing or raw; zstd
/// needs brokers of Kafka 2.1 or later.
pub(crate) use crate::options::Compression;

/// The idempotent producer's identity stamped on a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerStamp {
    /// The producer id the broker assigned (`InitProducerId`).
    pub(crate) producer_id: i64,
    /// The epoch of that producer id.
    pub(crate) producer_epoch: i16,
    /// The sequence number of the batch's first record for its partition.
    pub(crate) base_sequence: i32,
}

/// One record to encode.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutRecord<'a> {
    /// The key, or `None` for a null key.
    pub(crate) key: Option<&'a [u8]>,
    /// The value (an empty value is written as empty, not null).
    pub(crate) value: &'a [u8],
    /// The headers, in order: name and value.
    pub(crate) headers: &'a [(String, Vec<u8>)],
    /// The create time, in milliseconds since the Unix epoch.
    pub(crate) timestamp: i64,
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InRecord {
    /// The record's offset in its partition.
    pub(crate) offset: i64,
    /// The create time or, for topics with `LogAppendTime`, the broker's append time, in
    /// milliseconds since the Unix epoch.
    pub(crate) timestamp: i64,
    /// The key, or `None` for a null key.
    pub(crate) key: Option<Bytes>,
    /// The value; a null value decodes as empty.
    pub(crate) value: Bytes,
    /// The headers, in order: name (invalid UTF-8 replaced by U+FFFD) and value, `None` for
    /// a null value.
    pub(crate) headers: Vec<(String, Option<Vec<u8>>)>,
}

/// What one partition's fetched `records` bytes held.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    /// The records at or after the requested offset, in offset order, without control
    /// records and (for `read_committed`) without aborted ones.
    pub(crate) records: Vec<InRecord>,
    /// The offset after the last complete batch seen (so a consumer can move past a batch of
    /// only control records or of records below `from`), or `None` if no batch was complete.
    pub(crate) next_offset: Option<i64>,
}

/// Why a batch could not be read or written: with the batch's base offset where known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BatchError {
    /// The batch is not a v2 record batch (magic 0 and 1 are the message sets of brokers
    /// older than 0.11).
    #[error("batch at offset {offset}: unsupported magic {magic} (only record batch v2 is read)")]
    UnsupportedMagic {
        /// The batch's base offset.
        offset: i64,
        /// The magic byte found.
        magic: i8,
    },
    /// The stored CRC-32C does not match the batch's bytes.
    #[error(
        "batch at offset {offset}: CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"
    )]
    CrcMismatch {
        /// The batch's base offset.
        offset: i64,
        /// The CRC in the batch header.
        stored: u32,
        /// The CRC of the bytes.
        computed: u32,
    },
    /// The batch length is negative or too small for a batch header.
    #[error(
        "batch at offset {offset}: batch length {length} is below the {MIN_BATCH_LENGTH} bytes of a header"
    )]
    BatchLength {
        /// The batch's base offset.
        offset: i64,
        /// The batch length found.
        length: i32,
    },
    /// The attributes name a compression codec Kafka does not define.
    #[error("batch at offset {offset}: unknown compression codec {codec}")]
    UnknownCompression {
        /// The batch's base offset.
        offset: i64,
        /// The codec id found.
        codec: i16,
    },
    /// A header field is inconsistent (a negative record count, more records than the
    /// bytes can hold, offsets that overflow, bytes after the last record).
    #[error("batch at offset {offset}: {what}")]
    Malformed {
        /// The batch's base offset.
        offset: i64,
        /// What is wrong.
        what: String,
    },
    /// The compressed records could not be decompressed.
    #[error("batch at offset {offset}: {codec}: {reason}")]
    Decompress {
        /// The batch's base offset.
        offset: i64,
        /// The codec's name.
        codec: &'static str,
        /// The decompressor's complaint.
        reason: String,
    },
    /// The compressed records decompress to more than [`MAX_DECOMPRESSED`] bytes.
    #[error("batch at offset {offset}: decompressed size exceeds {} MiB", MAX_DECOMPRESSED >> 20)]
    DecompressedTooLarge {
        /// The batch's base offset.
        offset: i64,
    },
    /// A record is malformed.
    #[error("batch at offset {offset}: record {index}: {field}: {problem} at byte {at}")]
    Record {
        /// The batch's base offset.
        offset: i64,
        /// The record's index in its batch, from 0.
        index: usize,
        /// The field that could not be read.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
        /// Where the field starts, counted from the batch's first record (in the
        /// decompressed bytes for a compressed batch).
        at: usize,
    },
    /// [`encode`] was given no records.
    #[error("cannot encode a batch of no records")]
    EmptyBatch,
    /// [`encode`] was given more than a batch can hold.
    #[error("cannot encode the batch: {what}")]
    TooLarge {
        /// What exceeds Kafka's limits.
        what: &'static str,
    },
    /// The compressor failed.
    #[error("cannot encode the batch: {codec}: {reason}")]
    Compress {
        /// The codec's name.
        codec: &'static str,
        /// The compressor's complaint.
        reason: String,
    },
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/// Encodes `records` (non-empty) as one RecordBatch v2, base offset 0, appended to `out`.
///
/// The batch has `CreateTime` timestamps (the first record's as the base), partition leader
/// epoch -1, and the producer id, epoch and base sequence of `stamp` (or -1 for each). It is
/// not transactional. The records go straight into `out` when uncompressed; compressed, they
/// are laid out in a per-thread scratch buffer first and compressed into `out`.
///
/// # Errors
///
/// [`BatchError::EmptyBatch`] for no records, [`BatchError::TooLarge`] when a length or the
/// batch exceeds what Kafka's i32 fields hold, [`BatchError::Compress`] when the compressor
/// fails. On error `out` is left as it was.
pub(crate) fn encode(
    out: &mut BytesMut,
    records: &[OutRecord<'_>],
    compression: Compression,
    stamp: Option<ProducerStamp>,
) -> Result<(), BatchError> {
    let Some(first) = records.first() else {
        return Err(BatchError::EmptyBatch);
    };
    let count = i32::try_from(records.len()).map_err(|_| BatchError::TooLarge {
        what: "too many records",
    })?;
    let base_timestamp = first.timestamp;
    let max_timestamp = records.iter().fold(i64::MIN, |max, r| max.max(r.timestamp));
    let records_len = records_section_len(records, base_timestamp)?;

    let start = out.len();
    let reserve = if compression == Compression::None {
        HEADER_LEN + records_len
    } else {
        HEADER_LEN + records_len / 2
    };
    out.reserve(reserve);
    let stamp = stamp.unwrap_or(ProducerStamp {
        producer_id: NO_PRODUCER_ID,
        producer_epoch: NO_PRODUCER_EPOCH,
        base_sequence: NO_SEQUENCE,
    });
    out.put_i64(0); // base offset: the broker assigns offsets
    out.put_i32(0); // batch length, patched below
    out.put_i32(NO_PARTITION_LEADER_EPOCH);
    out.put_i8(MAGIC);
    out.put_u32(0); // CRC, patched below
    out.put_i16(compression.id()); // CreateTime, not transactional, not control
    out.put_i32(count - 1);
    out.put_i64(base_timestamp);
    out.put_i64(max_timestamp);
    out.put_i64(stamp.producer_id);
    out.put_i16(stamp.producer_epoch);
    out.put_i32(stamp.base_sequence);
    out.put_i32(count);

    if compression == Compression::None {
        put_records(out, records, base_timestamp);
    } else {
        let compressed = compression::with_scratch(records_len, |scratch| {
            put_records(scratch, records, base_timestamp);
            compression::compress(compression, scratch, out)
        });
        if let Err(reason) = compressed {
            out.truncate(start);
            return Err(BatchError::Compress {
                codec: compression.as_str(),
                reason,
            });
        }
    }

    let batch_length = match i32::try_from(out.len() - start - LOG_OVERHEAD) {
        Ok(length) => length,
        Err(_) => {
            out.truncate(start);
            return Err(BatchError::TooLarge {
                what: "the batch exceeds 2 GiB",
            });
        }
    };
    if let Some(field) = out.get_mut(start + 8..start + 12) {
        field.copy_from_slice(&batch_length.to_be_bytes());
    }
    let crc = out.get(start + ATTRIBUTES_AT..).map_or(0, crc32c::crc32c);
    if let Some(field) = out.get_mut(start + CRC_AT..start + ATTRIBUTES_AT) {
        field.copy_from_slice(&crc.to_be_bytes());
    }
    Ok(())
}

/// The encoded size of one record's body without compression, to let an accumulator cap batch
/// bytes before encoding.
///
/// An upper bound: it counts the record's length prefix and the largest timestamp and offset
/// deltas, so a batch of records is never larger than 61 header bytes plus the sum of their
/// estimates (before compression).
pub(crate) fn record_size_estimate(
    key: Option<&[u8]>,
    value: &[u8],
    headers: &[(String, Vec<u8>)],
) -> usize {
    // length prefix (at most 5), attributes, timestamp delta (at most 10), offset delta (5)
    let fixed: usize = 5 + 1 + 10 + 5;
    let key_len = key.map_or(1, |k| len_field(k.len()).saturating_add(k.len()));
    let value_len = len_field(value.len()).saturating_add(value.len());
    let headers_len = headers
        .iter()
        .fold(len_field(headers.len()), |sum, (k, v)| {
            sum.saturating_add(len_field(k.len()))
                .saturating_add(k.len())
                .saturating_add(len_field(v.len()))
                .saturating_add(v.len())
        });
    fixed
        .saturating_add(key_len)
        .saturating_add(value_len)
        .saturating_add(headers_len)
}

/// The bytes of the records section of `records` uncompressed, checking Kafka's limits.
fn records_section_len(
    records: &[OutRecord<'_>],
    base_timestamp: i64,
) -> Result<usize, BatchError> {
    let mut total: usize = 0;
    for (delta, record) in records.iter().enumerate() {
        let body = record_body_len(record, base_timestamp, delta)?;
        total = total
            .checked_add(varint_len(body))
            .and_then(|t| t.checked_add(usize::try_from(body).unwrap_or(usize::MAX)))
            .filter(|&t| t <= i32::MAX as usize - MIN_BATCH_LENGTH)
            .ok_or(BatchError::TooLarge {
                what: "the batch exceeds 2 GiB",
            })?;
    }
    Ok(total)
}

/// The size of a record after its length prefix, at offset delta `delta`.
fn record_body_len(
    record: &OutRecord<'_>,
    base_timestamp: i64,
    delta: usize,
) -> Result<i32, BatchError> {
    let too_large = || BatchError::TooLarge {
        what: "a record exceeds 2 GiB",
    };
    let delta = i32::try_from(delta).map_err(|_| too_large())?;
    let header_count = i32::try_from(record.headers.len()).map_err(|_| too_large())?;
    let fixed = 1 // attributes
        + varlong_len(record.timestamp.wrapping_sub(base_timestamp))
        + varint_len(delta)
        + varint_len(header_count);
    let key = record.key.map_or(Ok(1), |k| length_prefixed(k.len()))?;
    let value = length_prefixed(record.value.len())?;
    let mut len = fixed.checked_add(key).and_then(|l| l.checked_add(value));
    for (key, value) in record.headers {
        let header = length_prefixed(key.len())?.checked_add(length_prefixed(value.len())?);
        len = len.zip(header).and_then(|(l, h)| l.checked_add(h));
    }
    len.and_then(|l| i32::try_from(l).ok())
        .ok_or_else(too_large)
}

/// `len` bytes with their length varint, if `len` fits Kafka's i32 lengths.
fn length_prefixed(len: usize) -> Result<usize, BatchError> {
    let len32 = i32::try_from(len).map_err(|_| BatchError::TooLarge {
        what: "a key, value or header exceeds 2 GiB",
    })?;
    Ok(varint_len(len32) + len)
}

/// Writes the records of a batch (uncompressed) into `buf`.
fn put_records<B: BufMut>(buf: &mut B, records: &[OutRecord<'_>], base_timestamp: i64) {
    for (delta, record) in records.iter().enumerate() {
        // The lengths were checked by `records_section_len`, so none of these conversions fail.
        let offset_delta = i32::try_from(delta).unwrap_or(i32::MAX);
        let body = record_body_len(record, base_timestamp, delta).unwrap_or(0);
        put_varint(buf, body);
        buf.put_u8(0); // record attributes: unused
        put_varlong(buf, record.timestamp.wrapping_sub(base_timestamp));
        put_varint(buf, offset_delta);
        match record.key {
            None => put_varint(buf, -1),
            Some(key) => put_bytes(buf, key),
        }
        put_bytes(buf, record.value);
        put_varint(buf, i32::try_from(record.headers.len()).unwrap_or(0));
        for (key, value) in record.headers {
            put_bytes(buf, key.as_bytes());
            put_bytes(buf, value);
        }
    }
}

/// Writes `bytes` with their length varint.
fn put_bytes<B: BufMut>(buf: &mut B, bytes: &[u8]) {
    put_varint(buf, i32::try_from(bytes.len()).unwrap_or(i32::MAX));
    buf.put_slice(bytes);
}

/// Writes a zigzag varint.
fn put_varint<B: BufMut>(buf: &mut B, value: i32) {
    put_unsigned(buf, u64::from(((value << 1) ^ (value >> 31)) as u32));
}

/// Writes a zigzag varlong.
fn put_varlong<B: BufMut>(buf: &mut B, value: i64) {
    put_unsigned(buf, ((value << 1) ^ (value >> 63)) as u64);
}

/// Writes an unsigned LEB128 varint.
fn put_unsigned<B: BufMut>(buf: &mut B, mut value: u64) {
    if value < 0x80 {
        buf.put_u8(value as u8);
        return;
    }
    let mut tmp = [0u8; 10];
    let mut n = 0;
    for slot in tmp.iter_mut() {
        n += 1;
        if value < 0x80 {
            *slot = value as u8;
            break;
        }
        *slot = (value as u8) | 0x80;
        value >>= 7;
    }
    buf.put_slice(tmp.get(..n).unwrap_or(&tmp));
}

/// The encoded size of a zigzag varint.
fn varint_len(value: i32) -> usize {
    unsigned_len(u64::from(((value << 1) ^ (value >> 31)) as u32))
}

/// The encoded size of a zigzag varlong.
fn varlong_len(value: i64) -> usize {
    unsigned_len(((value << 1) ^ (value >> 63)) as u64)
}

/// The encoded size of an unsigned LEB128 varint.
fn unsigned_len(value: u64) -> usize {
    // 1 byte per started group of 7 bits, at least 1
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// The size of the length varint for a length of `len` (5 for lengths beyond i32).
fn len_field(len: usize) -> usize {
    i32::try_from(len).map_or(5, varint_len)
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// Decodes the record batches of one partition's fetch data: records at or after `from`, in
/// order.
///
/// Control batches (attribute bit 5) are skipped but still move `next_offset`. With `aborted`
/// (`read_committed`: the fetch response's `aborted_transactions` as (producer id, first
/// offset), in any order), the records of transactional batches of a producer with an
/// aborted transaction that started at or before the batch are left out, per KIP-98; that
/// producer's abort marker (a control record of type 0) ends its aborted range. "Before the
/// batch" compares the transaction's first offset with the batch's last offset, as Kafka's
/// Java consumer does (a transaction's first offset is the base offset of its producer's
/// first batch in it, so comparing with the base offset gives the same answer on real data).
/// A partial batch at the end of the data (the broker cuts at the fetch's max bytes) is
/// ignored.
///
/// Keys and values are slices of `data` for uncompressed batches, and of one buffer per batch
/// for compressed ones: no copy per record.
///
/// # Errors
///
/// A [`BatchError`] for the first batch that is not a v2 batch (magic 0 and 1 are not read),
/// fails its CRC check, does not decompress, or is malformed; the records of earlier batches
/// are not returned then.
pub(crate) fn decode(
    data: &Bytes,
    from: i64,
    aborted: Option<&[(i64, i64)]>,
) -> Result<Decoded, BatchError> {
    let mut decoded = Decoded::default();
    let mut aborts = aborted.map(Aborts::new);
    let mut pos = 0usize;
    while let Some(rest) = data.get(pos..) {
        let Some(&prefix) = rest.first_chunk::<LOG_OVERHEAD>() else {
            break; // a partial batch, or nothing
        };
        let mut prefix = &prefix[..];
        let base_offset = prefix.get_i64();
        let length = prefix.get_i32();
        if let Some(&magic) = rest.get(MAGIC_AT) {
            let magic = magic as i8;
            if magic != MAGIC {
                return Err(BatchError::UnsupportedMagic {
                    offset: base_offset,
                    magic,
                });
            }
        }
        let total = usize::try_from(length)
            .ok()
            .filter(|&l| l >= MIN_BATCH_LENGTH)
            .and_then(|l| l.checked_add(LOG_OVERHEAD))
            .ok_or(BatchError::BatchLength {
                offset: base_offset,
                length,
            })?;
        let Some(batch) = rest.get(..total) else {
            break; // a partial batch at the end
        };
        decode_batch(
            data,
            pos..pos + total,
            batch,
            base_offset,
            from,
            aborts.as_mut(),
            &mut decoded,
        )?;
        pos += total;
    }
    Ok(decoded)
}

/// Decodes `data` as a fuzz target would: must return, never panic, on any input.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn fuzz_decode(data: &[u8]) {
    let data = Bytes::copy_from_slice(data);
    let _ = decode(&data, 0, None);
    // read_committed with aborted transactions of the producer ids a small input may hold
    let _ = decode(&data, 1, Some(&[(0, 0), (1, 0), (-1, 0), (7, 3)]));
}

/// The header fields of a batch that decoding needs.
#[derive(Debug, Clone, Copy)]
struct Header {
    /// The first offset.
    base_offset: i64,
    /// The offset after the last.
    next_offset: i64,
    /// The codec of the records section.
    compression: Compression,
    /// The timestamp of every record with `LogAppendTime`.
    log_append_time: Option<i64>,
    /// Part of a transaction.
    transactional: bool,
    /// Holds control records.
    control: bool,
    /// The first record's timestamp.
    base_timestamp: i64,
    /// The producer id, -1 if none.
    producer_id: i64,
    /// The number of records.
    count: usize,
}

/// Decodes the complete batch `batch` (= `data[range]`) into `decoded`.
fn decode_batch(
    data: &Bytes,
    range: Range<usize>,
    batch: &[u8],
    base_offset: i64,
    from: i64,
    aborts: Option<&mut Aborts>,
    decoded: &mut Decoded,
) -> Result<(), BatchError> {
    let header = read_header(batch, base_offset)?;

    let mut skip = header.control;
    if let Some(aborts) = aborts
        && header.producer_id > NO_PRODUCER_ID
    {
        aborts.admit_up_to(header.next_offset - 1);
        if header.control {
            if is_abort_marker(data, &range, batch, &header)? {
                aborts.active.remove(&header.producer_id);
            }
        } else if header.transactional && aborts.active.contains(&header.producer_id) {
            skip = true;
        }
    }
    if !skip && header.next_offset > from && header.count > 0 {
        let records = records_of(data, &range, batch, &header)?;
        read_records(&records, &header, from, usize::MAX, &mut decoded.records)?;
    }
    decoded.next_offset = Some(header.next_offset);
    Ok(())
}

/// Reads and checks the header of the complete batch `batch`, and its CRC.
fn read_header(batch: &[u8], base_offset: i64) -> Result<Header, BatchError> {
    let malformed = |what: String| BatchError::Malformed {
        offset: base_offset,
        what,
    };
    let Some(&header) = batch.first_chunk::<HEADER_LEN>() else {
        // `decode` passes only batches of at least a header; this is for safety
        return Err(malformed("truncated header".to_owned()));
    };
    let mut h = &header[CRC_AT..];
    let stored = h.get_u32();
    let computed = batch.get(ATTRIBUTES_AT..).map_or(0, crc32c::crc32c);
    if stored != computed {
        return Err(BatchError::CrcMismatch {
            offset: base_offset,
            stored,
            computed,
        });
    }
    let attributes = h.get_i16();
    let last_offset_delta = h.get_i32();
    let base_timestamp = h.get_i64();
    let max_timestamp = h.get_i64();
    let producer_id = h.get_i64();
    let _producer_epoch = h.get_i16();
    let _base_sequence = h.get_i32();
    let count = h.get_i32();

    let codec = attributes & COMPRESSION_MASK;
    let compression = Compression::from_id(codec).ok_or(BatchError::UnknownCompression {
        offset: base_offset,
        codec,
    })?;
    let count =
        usize::try_from(count).map_err(|_| malformed(format!("negative record count {count}")))?;
    let next_offset = base_offset
        .checked_add(i64::from(last_offset_delta))
        .and_then(|last| last.checked_add(1))
        .ok_or_else(|| {
            malformed(format!(
                "last offset delta {last_offset_delta} overflows the offset"
            ))
        })?;
    Ok(Header {
        base_offset,
        next_offset,
        compression,
        log_append_time: (attributes & LOG_APPEND_TIME_FLAG != 0).then_some(max_timestamp),
        transactional: attributes & TRANSACTIONAL_FLAG != 0,
        control: attributes & CONTROL_FLAG != 0,
        base_timestamp,
        producer_id,
        count,
    })
}

/// The records section of a batch, decompressed if it is compressed.
fn records_of(
    data: &Bytes,
    range: &Range<usize>,
    batch: &[u8],
    header: &Header,
) -> Result<Bytes, BatchError> {
    let offset = header.base_offset;
    let records = match header.compression {
        Compression::None => data.slice(range.start + HEADER_LEN..range.end),
        codec => {
            let compressed = batch.get(HEADER_LEN..).unwrap_or_default();
            match compression::decompress(codec, compressed) {
                Ok(plain) => Bytes::from(plain),
                Err(compression::DecompressError::TooLarge) => {
                    return Err(BatchError::DecompressedTooLarge { offset });
                }
                Err(compression::DecompressError::Codec(reason)) => {
                    return Err(BatchError::Decompress {
                        offset,
                        codec: codec.as_str(),
                        reason,
                    });
                }
            }
        }
    };
    if header.count > records.len() / MIN_RECORD_LEN {
        return Err(BatchError::Malformed {
            offset,
            what: format!(
                "record count {} is more than {} bytes of records can hold",
                header.count,
                records.len()
            ),
        });
    }
    Ok(records)
}

/// Whether a control batch is an abort marker: its first record's key has type 0.
fn is_abort_marker(
    data: &Bytes,
    range: &Range<usize>,
    batch: &[u8],
    header: &Header,
) -> Result<bool, BatchError> {
    if header.count == 0 {
        return Ok(false);
    }
    let records = records_of(data, range, batch, header)?;
    let mut first = Vec::with_capacity(1);
    read_records(&records, header, i64::MIN, 1, &mut first)?;
    let kind = first
        .first()
        .and_then(|r| r.key.as_deref())
        .and_then(|key| key.get(2..4))
        .map(|t| i16::from_be_bytes([t[0], t[1]]));
    Ok(kind == Some(CONTROL_TYPE_ABORT))
}

/// Reads the records of `records` (a records section holding `header.count` records), pushing
/// those at or after `from` onto `out`. Stops after `limit` records (and then does not check
/// for bytes after them).
fn read_records(
    records: &Bytes,
    header: &Header,
    from: i64,
    limit: usize,
    out: &mut Vec<InRecord>,
) -> Result<(), BatchError> {
    let count = header.count.min(limit);
    let mut cursor = Cursor {
        buf: records,
        pos: 0,
        end: records.len(),
    };
    // Room for the records the count promises, but not more than a typical batch before
    // they are seen: what grows beyond is backed by parsed records.
    out.reserve(count.min(RESERVE_RECORDS));
    for index in 0..count {
        let record = read_record(&mut cursor, records, header, from).map_err(|fault| {
            BatchError::Record {
                offset: header.base_offset,
                index,
                field: fault.field,
                problem: fault.problem,
                at: fault.at,
            }
        })?;
        if let Some(record) = record {
            out.push(record);
        }
    }
    if count == header.count && cursor.pos != records.len() {
        return Err(BatchError::Malformed {
            offset: header.base_offset,
            what: format!(
                "{} bytes after the last of {} records",
                records.len() - cursor.pos.min(records.len()),
                header.count
            ),
        });
    }
    Ok(())
}

/// What is wrong with a record, and where.
#[derive(Debug, Clone, Copy)]
struct Fault {
    /// The field that could not be read.
    field: &'static str,
    /// What is wrong with it.
    problem: &'static str,
    /// Where the field starts.
    at: usize,
}

/// Problem: the field runs past its record or the batch.
const TRUNCATED: &str = "truncated";
/// Problem: a varint of more bytes than its type allows.
const VARINT_TOO_LONG: &str = "varint too long";
/// Problem: a length below -1, or a negative count.
const NEGATIVE: &str = "negative";
/// Problem: a length beyond the bytes that remain.
const LENGTH_EXCEEDS: &str = "length exceeds the bytes that remain";

/// A position in a records section, not beyond `end`.
#[derive(Debug)]
struct Cursor<'a> {
    /// The whole records section, so positions index it.
    buf: &'a [u8],
    /// The next byte to read.
    pos: usize,
    /// Where the current record ends (no read goes past it).
    end: usize,
}

impl Cursor<'_> {
    /// The bytes left before `end`.
    fn remaining(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    /// Reads one byte.
    fn byte(&mut self, field: &'static str) -> Result<u8, Fault> {
        match self.buf.get(self.pos) {
            Some(&b) if self.pos < self.end => {
                self.pos += 1;
                Ok(b)
            }
            _ => Err(Fault {
                field,
                problem: TRUNCATED,
                at: self.pos,
            }),
        }
    }

    /// Reads an unsigned LEB128 varint of at most `max` bytes.
    fn unsigned(&mut self, max: usize, field: &'static str) -> Result<u64, Fault> {
        let at = self.pos;
        let first = self.byte(field)?;
        if first < 0x80 {
            return Ok(u64::from(first));
        }
        let mut value = u64::from(first & 0x7f);
        let mut shift = 7;
        for _ in 1..max {
            let b = self.byte(field).map_err(|f| Fault { at, ..f })?;
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(value);
            }
            shift += 7;
        }
        Err(Fault {
            field,
            problem: VARINT_TOO_LONG,
            at,
        })
    }

    /// Reads a zigzag varint (at most 5 bytes; like Kafka, bits beyond 32 are dropped).
    fn varint(&mut self, field: &'static str) -> Result<i32, Fault> {
        let raw = self.unsigned(5, field)? as u32;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    /// Reads a zigzag varlong (at most 10 bytes).
    fn varlong(&mut self, field: &'static str) -> Result<i64, Fault> {
        let raw = self.unsigned(10, field)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// Reads a length (-1 for null) and that many bytes, as a range of `buf`.
    fn nullable(&mut self, field: &'static str) -> Result<Option<Range<usize>>, Fault> {
        let at = self.pos;
        match self.varint(field)? {
            -1 => Ok(None),
            len => {
                let len = usize::try_from(len).map_err(|_| Fault {
                    field,
                    problem: NEGATIVE,
                    at,
                })?;
                self.take(len, field, at).map(Some)
            }
        }
    }

    /// Takes `len` bytes, for a field whose length starts at `at`.
    fn take(&mut self, len: usize, field: &'static str, at: usize) -> Result<Range<usize>, Fault> {
        if len > self.remaining() {
            return Err(Fault {
                field,
                problem: LENGTH_EXCEEDS,
                at,
            });
        }
        let start = self.pos;
        self.pos += len;
        Ok(start..self.pos)
    }
}

/// Reads one record at `cursor`, returning it if its offset is at or after `from`.
fn read_record(
    cursor: &mut Cursor<'_>,
    records: &Bytes,
    header: &Header,
    from: i64,
) -> Result<Option<InRecord>, Fault> {
    let at = cursor.pos;
    let len = cursor.varint("record length")?;
    let len = usize::try_from(len).map_err(|_| Fault {
        field: "record length",
        problem: NEGATIVE,
        at,
    })?;
    let body = cursor.take(len, "record length", at)?;
    let mut r = Cursor {
        buf: cursor.buf,
        pos: body.start,
        end: body.end,
    };

    r.byte("attributes")?;
    let timestamp_delta = r.varlong("timestamp delta")?;
    let delta_at = r.pos;
    let offset_delta = r.varint("offset delta")?;
    let offset = header
        .base_offset
        .checked_add(i64::from(offset_delta))
        .ok_or(Fault {
            field: "offset delta",
            problem: "overflows the offset",
            at: delta_at,
        })?;
    let key = r.nullable("key")?;
    let value = r.nullable("value")?;
    let count_at = r.pos;
    let count = r.varint("header count")?;
    let count = usize::try_from(count).map_err(|_| Fault {
        field: "header count",
        problem: NEGATIVE,
        at: count_at,
    })?;
    if count > r.remaining() / MIN_HEADER_LEN {
        return Err(Fault {
            field: "header count",
            problem: "exceeds what the bytes that remain hold",
            at: count_at,
        });
    }
    let keep = offset >= from;
    let mut headers = Vec::with_capacity(if keep { count.min(RESERVE_HEADERS) } else { 0 });
    for _ in 0..count {
        let key_at = r.pos;
        let key_len = r.varint("header key")?;
        let key_len = usize::try_from(key_len).map_err(|_| Fault {
            field: "header key",
            problem: NEGATIVE,
            at: key_at,
        })?;
        let name = r.take(key_len, "header key", key_at)?;
        let value = r.nullable("header value")?;
        if keep {
            let name = String::from_utf8_lossy(r.buf.get(name).unwrap_or_default()).into_owned();
            let value = value.map(|v| r.buf.get(v).unwrap_or_default().to_vec());
            headers.push((name, value));
        }
    }
    if r.pos != body.end {
        return Err(Fault {
            field: "record length",
            problem: "does not match the record's fields",
            at,
        });
    }
    if !keep {
        return Ok(None);
    }
    Ok(Some(InRecord {
        offset,
        timestamp: header
            .log_append_time
            .unwrap_or(header.base_timestamp.wrapping_add(timestamp_delta)),
        key: key.map(|k| records.slice(k)),
        value: value.map_or_else(Bytes::new, |v| records.slice(v)),
        headers,
    }))
}

/// The `read_committed` state of KIP-98 while batches are read in order: the aborted
/// transactions not yet reached, and the producers inside an aborted transaction.
#[derive(Debug)]
struct Aborts {
    /// (producer id, first offset), by first offset.
    pending: Vec<(i64, i64)>,
    /// The first of `pending` not yet admitted.
    next: usize,
    /// The producers whose aborted transaction has started and not yet ended.
    active: HashSet<i64>,
}

impl Aborts {
    /// The state before the first batch, for the fetch response's aborted transactions.
    fn new(aborted: &[(i64, i64)]) -> Self {
        let mut pending = aborted.to_vec();
        pending.sort_unstable_by_key(|&(_, first_offset)| first_offset);
        Self {
            pending,
            next: 0,
            active: HashSet::new(),
        }
    }

    /// Marks the producers whose aborted transaction starts at or before `last_offset` (the
    /// last offset of the batch being read; Kafka's Java consumer does the same).
    fn admit_up_to(&mut self, last_offset: i64) {
        while let Some(&(producer_id, first_offset)) = self.pending.get(self.next) {
            if first_offset > last_offset {
                break;
            }
            self.active.insert(producer_id);
            self.next += 1;
        }
    }
}

#[cfg(test)]
mod tests;

//! The compression codecs of record batches, in the framings Kafka's clients use.
//!
//! - gzip: one gzip stream (concatenated members are read too).
//! - snappy: written in the xerial framing of the Java client (`snappy-java`): a 16-byte
//!   header (`0x82 "SNAPPY" 0x00`, version 1, compatible version 1) and blocks of 32 KiB
//!   input, each a big-endian i32 length and a raw snappy block. Read in that framing or as
//!   one raw snappy block, as librdkafka, Sarama and franz-go may write.
//! - lz4: an LZ4 frame; written with independent 64 KiB blocks and no checksums, like the
//!   Java client; read with either block mode, block and content checksums, content size.
//! - zstd: zstd frames (level 3 when writing, Kafka's default).
//!
//! Decompression stops at [`MAX_DECOMPRESSED`] bytes.

use std::cell::RefCell;
use std::io::{self, Read, Write};

use bytes::{BufMut, BytesMut};

use super::{Compression, MAX_DECOMPRESSED};

/// The magic at the start of a xerial snappy stream.
pub(crate) const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// The xerial header: magic, version 1, compatible version 1.
const XERIAL_HEADER_LEN: usize = 16;
/// The input bytes per xerial block (`snappy-java`'s default block size).
const XERIAL_BLOCK: usize = 32 * 1024;
/// More than any snappy block expands (a 2-byte copy element yields at most 11 bytes, a
/// 3-byte one 64, a literal its own length).
const SNAPPY_MAX_RATIO: usize = 32;
/// The zstd level Kafka uses by default.
const ZSTD_LEVEL: i32 = 3;
/// A scratch buffer bigger than this is not kept for the next batch.
const SCRATCH_KEEP: usize = 8 << 20;
/// The most the gzip trailer's size hint is believed, as a multiple of the compressed size.
const GZIP_HINT_RATIO: usize = 16;
/// The first buffer size when decompressing a stream of unknown size.
const MIN_CHUNK: usize = 16 * 1024;

/// Why a records section could not be decompressed.
#[derive(Debug)]
pub(crate) enum DecompressError {
    /// It decompresses to more than [`MAX_DECOMPRESSED`] bytes.
    TooLarge,
    /// The codec refused it, saying why.
    Codec(String),
}

impl From<io::Error> for DecompressError {
    fn from(e: io::Error) -> Self {
        Self::Codec(e.to_string())
    }
}

thread_local! {
    /// The uncompressed records of the batch being encoded, kept for the thread's next batch.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// A zstd compression context, kept: creating one costs more than a small batch.
    static ZSTD_COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    /// A zstd decompression context, kept for the same reason.
    static ZSTD_DECOMPRESSOR: RefCell<Option<zstd::zstd_safe::DCtx<'static>>> = const { RefCell::new(None) };
}

/// Runs `f` with an empty scratch buffer of at least `capacity` bytes: the thread's kept one,
/// or a new one if that is in use.
pub(crate) fn with_scratch<R>(capacity: usize, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            scratch.clear();
            scratch.reserve(capacity);
            let result = f(&mut scratch);
            scratch.clear();
            if scratch.capacity() > SCRATCH_KEEP {
                *scratch = Vec::new();
            }
            result
        }
        Err(_) => f(&mut Vec::with_capacity(capacity)),
    })
}

/// Compresses `src` with `codec`, appending to `out`. On error `out` may hold a part of the
/// output; the caller truncates it.
pub(crate) fn compress(codec: Compression, src: &[u8], out: &mut BytesMut) -> Result<(), String> {
    match codec {
        Compression::None => {
            out.put_slice(src);
            Ok(())
        }
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(out.writer(), flate2::Compression::default());
            encoder
                .write_all(src)
                .and_then(|()| encoder.finish())
                .map(drop)
                .map_err(|e| e.to_string())
        }
        Compression::Snappy => snappy_xerial(src, out),
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, out.writer());
            encoder.write_all(src).map_err(|e| e.to_string())?;
            encoder.finish().map(drop).map_err(|e| e.to_string())
        }
        Compression::Zstd => zstd_compress(src, out),
    }
}

/// Decompresses the records section `src`, of `codec`.
pub(crate) fn decompress(codec: Compression, src: &[u8]) -> Result<Vec<u8>, DecompressError> {
    match codec {
        Compression::None => {
            if src.len() > MAX_DECOMPRESSED {
                return Err(DecompressError::TooLarge);
            }
            Ok(src.to_vec())
        }
        Compression::Gzip => {
            // The trailer's ISIZE (the size modulo 4 GiB) is a hint, not trusted: at most
            // what a typical ratio gives, so a forged one costs no big buffer up front.
            let hint = src
                .last_chunk::<4>()
                .map_or(0, |&isize| u32::from_le_bytes(isize) as usize)
                .min(src.len().saturating_mul(GZIP_HINT_RATIO));
            read_capped(flate2::read::MultiGzDecoder::new(src), hint)
        }
        Compression::Snappy => {
            if src.starts_with(&XERIAL_MAGIC) {
                snappy_unxerial(src)
            } else {
                snappy_raw(src, Vec::new())
            }
        }
        Compression::Lz4 => read_capped(
            lz4_flex::frame::FrameDecoder::new(src),
            src.len().saturating_mul(4),
        ),
        Compression::Zstd => zstd_decompress(src),
    }
}

/// Reads `reader` to its end into a new buffer, refusing more than [`MAX_DECOMPRESSED`]
/// bytes. Starts with `hint` bytes of buffer (clamped) and doubles it as needed.
fn read_capped<R: Read>(mut reader: R, hint: usize) -> Result<Vec<u8>, DecompressError> {
    const LIMIT: usize = MAX_DECOMPRESSED + 1;
    let mut buf: Vec<u8> = Vec::new();
    let mut len = 0;
    let mut next = hint.clamp(MIN_CHUNK, LIMIT);
    loop {
        if len >= buf.len() {
            if len >= LIMIT {
                return Err(DecompressError::TooLarge);
            }
            let target = next.min(LIMIT);
            buf.reserve_exact(target - buf.len());
            buf.resize(target, 0);
            next = target.saturating_mul(2);
        }
        let Some(window) = buf.get_mut(len..) else {
            return Err(DecompressError::Codec(
                "decompressor overran its buffer".to_owned(),
            ));
        };
        match reader.read(window) {
            Ok(0) => break,
            Ok(n) => len = (len + n).min(buf.len()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    buf.truncate(len);
    Ok(buf)
}

/// Writes `src` as a xerial snappy stream.
fn snappy_xerial(src: &[u8], out: &mut BytesMut) -> Result<(), String> {
    out.put_slice(&XERIAL_MAGIC);
    out.put_i32(1); // version
    out.put_i32(1); // compatible version
    let mut encoder = snap::raw::Encoder::new();
    for block in src.chunks(XERIAL_BLOCK) {
        let at = out.len();
        let bound = snap::raw::max_compress_len(block.len());
        out.resize(at + 4 + bound, 0);
        let Some(dst) = out.get_mut(at + 4..) else {
            return Err("snappy output buffer".to_owned());
        };
        let n = encoder.compress(block, dst).map_err(|e| e.to_string())?;
        let length = i32::try_from(n).map_err(|e| e.to_string())?;
        out.truncate(at + 4 + n);
        if let Some(field) = out.get_mut(at..at + 4) {
            field.copy_from_slice(&length.to_be_bytes());
        }
    }
    Ok(())
}

/// Decompresses one raw snappy block, appending to `out`.
fn snappy_raw(block: &[u8], mut out: Vec<u8>) -> Result<Vec<u8>, DecompressError> {
    let len =
        snap::raw::decompress_len(block).map_err(|e| DecompressError::Codec(e.to_string()))?;
    let at = out.len();
    if len > MAX_DECOMPRESSED - at.min(MAX_DECOMPRESSED) {
        return Err(DecompressError::TooLarge);
    }
    // A snappy element of n bytes expands to at most 64: refuse a declared length that the
    // block cannot reach before zeroing a buffer for it.
    if len > block.len().saturating_mul(SNAPPY_MAX_RATIO) {
        return Err(DecompressError::Codec(format!(
            "declared length {len} is more than {} bytes can hold",
            block.len()
        )));
    }
    out.resize(at + len, 0);
    let dst = out.get_mut(at..).unwrap_or_default();
    let n = snap::raw::Decoder::new()
        .decompress(block, dst)
        .map_err(|e| DecompressError::Codec(e.to_string()))?;
    out.truncate(at + n);
    Ok(out)
}

/// Decompresses a xerial snappy stream (`src` starts with [`XERIAL_MAGIC`]).
fn snappy_unxerial(src: &[u8]) -> Result<Vec<u8>, DecompressError> {
    let mut rest = src
        .get(XERIAL_HEADER_LEN..)
        .ok_or_else(|| DecompressError::Codec("truncated xerial header".to_owned()))?;
    let mut out = Vec::new();
    while let Some((length, tail)) = rest.split_first_chunk::<4>() {
        let length = usize::try_from(i32::from_be_bytes(*length))
            .map_err(|_| DecompressError::Codec("negative xerial block length".to_owned()))?;
        let Some((block, tail)) = tail.split_at_checked(length) else {
            return Err(DecompressError::Codec(
                "xerial block length exceeds the bytes that remain".to_owned(),
            ));
        };
        if !block.is_empty() {
            out = snappy_raw(block, out)?;
        }
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(DecompressError::Codec(
            "truncated xerial block length".to_owned(),
        ));
    }
    Ok(out)
}

/// Compresses `src` as one zstd frame with the thread's kept context, appending to `out`.
fn zstd_compress(src: &[u8], out: &mut BytesMut) -> Result<(), String> {
    ZSTD_COMPRESSOR.with(|cell| {
        let mut fresh = None;
        let mut kept = cell.try_borrow_mut().ok();
        let slot = kept.as_deref_mut().unwrap_or(&mut fresh);
        if slot.is_none() {
            *slot = Some(zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(|e| e.to_string())?);
        }
        let Some(compressor) = slot.as_mut() else {
            return Err("no zstd context".to_owned());
        };
        let at = out.len();
        out.resize(at + zstd::zstd_safe::compress_bound(src.len()), 0);
        let dst = out.get_mut(at..).unwrap_or_default();
        let n = compressor
            .compress_to_buffer(src, dst)
            .map_err(|e| e.to_string())?;
        out.truncate(at + n);
        Ok(())
    })
}

/// Decompresses zstd frames with the thread's kept context: in one call into a buffer of the
/// frame's declared size when it has one, else (or when that fails, for several frames or
/// a corrupt one) as a stream.
fn zstd_decompress(src: &[u8]) -> Result<Vec<u8>, DecompressError> {
    ZSTD_DECOMPRESSOR.with(|cell| {
        let mut fresh = None;
        let mut kept = cell.try_borrow_mut().ok();
        let slot = kept.as_deref_mut().unwrap_or(&mut fresh);
        if slot.is_none() {
            *slot = zstd::zstd_safe::DCtx::try_create();
        }
        let Some(context) = slot.as_mut() else {
            return Err(DecompressError::Codec(
                "cannot create a zstd context".to_owned(),
            ));
        };
        if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(src) {
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            if size > MAX_DECOMPRESSED {
                return Err(DecompressError::TooLarge);
            }
            let mut out = Vec::with_capacity(size);
            if context.decompress(&mut out, src).is_ok() {
                return Ok(out);
            }
        }
        context
            .reset(zstd::zstd_safe::ResetDirective::SessionOnly)
            .map_err(|code| {
                DecompressError::Codec(zstd::zstd_safe::get_error_name(code).to_owned())
            })?;
        let decoder = zstd::stream::read::Decoder::with_context(src, context);
        read_capped(decoder, src.len().saturating_mul(4))
    })
}

//! One partition's record batches as a broker's Fetch answer carries them (RecordBatch v2,
//! any codec, from any producer): decoding never panics, never allocates what the bytes
//! merely claim, and stops at 64 MiB of decompressed records per batch.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    godev_kafka::__fuzz::decode_record_batches(bytes);
});

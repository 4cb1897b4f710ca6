//! The leader's SyncGroup assignment (consumer-protocol assignment, any version, from any
//! client): decoding never panics nor allocates what the bytes merely claim.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(pairs) = godev_kafka::__fuzz::decode_assignment(bytes) {
        // Every partition took its four bytes.
        assert!(
            pairs.len() <= bytes.len() / 4,
            "{} partitions from {} bytes",
            pairs.len(),
            bytes.len()
        );
    }
});

//! A member's JoinGroup metadata (consumer-protocol subscription, any version, from any
//! client): decoding never panics nor allocates what the bytes merely claim.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|metadata: &[u8]| {
    if let Ok(topics) = godev_kafka::__fuzz::decode_subscription(metadata) {
        // Every topic took at least its two length bytes.
        assert!(
            topics.len() <= metadata.len() / 2,
            "{} topics from {} bytes",
            topics.len(),
            metadata.len()
        );
    }
});

//! A record value read with the Go kit's tagged codec, as each of five event shapes:
//! decoding never panics, and whatever decodes re-encodes and decodes to the same event.
#![no_main]

use godev_kafka::event::Codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|value: &[u8]| {
    godev_kafka_fuzz::round_trip_all(Codec::Tagged, value);
});

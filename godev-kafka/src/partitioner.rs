//! Key to partition, exactly as the Java client's default partitioner does it.
//!
//! `partition = (murmur2(key) & 0x7fffffff) % partitions`, with the same murmur2 variant
//! (seed `0x9747b28c`) as `org.apache.kafka.common.utils.Utils.murmur2`, so records keyed the
//! same land on the same partition whichever client wrote them.

/// The Java client's 32-bit murmur2 hash of `data`.
///
/// # Examples
///
/// ```
/// use godev_kafka::partitioner::murmur2;
///
/// // Vector from the Java client's UtilsTest.
/// assert_eq!(murmur2(b"21"), -973932308);
/// ```
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h = SEED ^ length as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition the Java client picks for `key` among `partitions` partitions.
///
/// # Examples
///
/// ```
/// use godev_kafka::partitioner::partition_for_key;
///
/// assert_eq!(partition_for_key(b"1", 6), partition_for_key(b"1", 6));
/// assert!(partition_for_key(b"user-42", 6) < 6);
/// ```
///
/// # Panics
///
/// Panics when `partitions` is zero.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    assert!(partitions > 0, "a topic has at least one partition");
    (murmur2(key) & 0x7fff_ffff) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of `UtilsTest.testMurmur2` in the Apache Kafka Java client.
    #[test]
    fn murmur2_matches_the_java_client() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(
                murmur2(input),
                expected,
                "murmur2({:?})",
                String::from_utf8_lossy(input)
            );
        }
    }
}

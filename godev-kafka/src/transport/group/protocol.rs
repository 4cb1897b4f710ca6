//! The consumer protocol's member metadata, read and written by this project.
//!
//! A group member's JoinGroup metadata (`ConsumerProtocolSubscription`) and the assignment
//! the leader hands it in SyncGroup (`ConsumerProtocolAssignment`) are bytes that the broker
//! passes between clients untouched: they come from *another client*, which may be buggy or
//! hostile. Both formats are small and fully specified (a big-endian `i16` version, then
//! non-flexible fields; later versions only add fields at the end), so they are decoded here
//! with every count and length checked against the bytes that remain *before* anything is
//! allocated. (`kafka-protocol` 0.18 pre-allocates a `Vec` of whatever element count the
//! input declares: six bytes, `00 00 7f ff ff ff`, asked it for 68 GB and aborted the
//! process.)
//!
//! Layouts read (versions above 3 are read as 3, ignoring what follows):
//!
//! ```text
//! Subscription v0: topics [string], user_data bytes?
//!              v1: + owned_partitions [topic string, partitions [i32]]
//!              v2: + generation_id i32
//!              v3: + rack_id string?
//! Assignment v0..: assigned_partitions [topic string, partitions [i32]], user_data bytes?
//! ```
//!
//! This client writes version 0 of both, which every broker and client reads.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};

use crate::{Error, Result};

/// The consumer protocol version this client writes.
const WRITE_VERSION: i16 = 0;
/// The highest version whose fields this client knows.
const READ_VERSION: i16 = 3;

/// Why a member's metadata or assignment did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed {
    /// The field being read.
    pub(crate) field: &'static str,
    /// Its byte offset in the input.
    pub(crate) at: usize,
    /// What was wrong.
    pub(crate) problem: String,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` at byte {}: {}", self.field, self.at, self.problem)
    }
}

impl Malformed {
    fn into_error(self, what: &str) -> Error {
        Error::transport(format!("decode consumer-protocol {what}"), self, false)
    }
}

/// A bounds-checked reader over untrusted bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn malformed(&self, field: &'static str, problem: impl Into<String>) -> Malformed {
        Malformed {
            field,
            at: self.at,
            problem: problem.into(),
        }
    }

    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], Malformed> {
        if n > self.remaining() {
            return Err(self.malformed(
                field,
                format!("needs {n} bytes, {} remain", self.remaining()),
            ));
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    fn i16(&mut self, field: &'static str) -> Result<i16, Malformed> {
        let b = self.take(field, 2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, Malformed> {
        let b = self.take(field, 4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A non-nullable string (`i16` length, UTF-8).
    fn string(&mut self, field: &'static str) -> Result<String, Malformed> {
        match self.nullable_string(field)? {
            Some(s) => Ok(s),
            None => Err(self.malformed(field, "null where a string is required")),
        }
    }

    fn nullable_string(&mut self, field: &'static str) -> Result<Option<String>, Malformed> {
        let start = self.at;
        let len = self.i16(field)?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| self.malformed(field, "negative length"))?;
        let bytes = self.take(field, len)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| Malformed {
                field,
                at: start,
                problem: "not UTF-8".into(),
            })
    }

    /// Nullable bytes (`i32` length), skipped.
    fn skip_nullable_bytes(&mut self, field: &'static str) -> Result<(), Malformed> {
        let len = self.i32(field)?;
        if len == -1 {
            return Ok(());
        }
        let len = usize::try_from(len).map_err(|_| self.malformed(field, "negative length"))?;
        self.take(field, len).map(|_| ())
    }

    /// An array's element count (`i32`; -1 is null, read as empty), checked against the
    /// bytes left: each element takes at least `min_element` bytes.
    fn count(&mut self, field: &'static str, min_element: usize) -> Result<usize, Malformed> {
        let n = self.i32(field)?;
        if n == -1 {
            return Ok(0);
        }
        let n = usize::try_from(n).map_err(|_| self.malformed(field, "negative count"))?;
        if n.saturating_mul(min_element) > self.remaining() {
            return Err(self.malformed(
                field,
                format!(
                    "declares {n} elements of at least {min_element} bytes, {} bytes remain",
                    self.remaining()
                ),
            ));
        }
        Ok(n)
    }

    /// The version prefix, negative versions refused, newer ones read as [`READ_VERSION`].
    fn version(&mut self) -> Result<i16, Malformed> {
        let version = self.i16("version")?;
        if version < 0 {
            return Err(self.malformed("version", format!("negative version {version}")));
        }
        Ok(version.min(READ_VERSION))
    }

    /// `[topic string, partitions [i32]]`.
    fn topic_partitions(
        &mut self,
        field: &'static str,
    ) -> Result<Vec<(String, Vec<i32>)>, Malformed> {
        // A topic entry is at least a 2-byte string length and a 4-byte count.
        let n = self.count(field, 6)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let topic = self.string(field)?;
            let m = self.count(field, 4)?;
            let mut partitions = Vec::with_capacity(m);
            for _ in 0..m {
                partitions.push(self.i32(field)?);
            }
            out.push((topic, partitions));
        }
        Ok(out)
    }
}

/// The JoinGroup metadata of a member subscribed to `topics` (version 0).
pub(crate) fn encode_subscription(topics: &[String]) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(WRITE_VERSION);
    put_count(&mut buf, topics.len())?;
    for topic in topics {
        put_string(&mut buf, topic)?;
    }
    buf.put_i32(-1); // user_data: null
    Ok(buf.freeze())
}

/// The topics in a member's JoinGroup metadata, written by any client of any version.
///
/// # Errors
///
/// The bytes are not a consumer-protocol subscription: truncated, a count or length larger
/// than the bytes that follow, a negative version, or a topic name that is not UTF-8.
pub(crate) fn decode_subscription(metadata: &[u8]) -> Result<Vec<String>> {
    read_subscription(metadata).map_err(|e| e.into_error("subscription"))
}

fn read_subscription(metadata: &[u8]) -> Result<Vec<String>, Malformed> {
    let mut r = Reader::new(metadata);
    let version = r.version()?;
    let n = r.count("topics", 2)?;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        topics.push(r.string("topics")?);
    }
    r.skip_nullable_bytes("user_data")?;
    // segmentio/kafka-go (0.4.x) labels its subscription version 1 but ends it after
    // `user_data`, without the `owned_partitions` of version 1 (its issue #1156): such a
    // member owns nothing, as Sarama reads it. Only that exact shape is let through.
    let kafka_go = version == 1 && r.remaining() == 0;
    if version >= 1 && !kafka_go {
        r.topic_partitions("owned_partitions")?;
    }
    if version >= 2 {
        r.i32("generation_id")?;
    }
    if version >= 3 {
        r.nullable_string("rack_id")?;
    }
    Ok(topics)
}

/// The SyncGroup assignment bytes of topic → partitions (version 0).
pub(crate) fn encode_assignment(partitions: &BTreeMap<String, Vec<i32>>) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(WRITE_VERSION);
    put_count(&mut buf, partitions.len())?;
    for (topic, ps) in partitions {
        put_string(&mut buf, topic)?;
        put_count(&mut buf, ps.len())?;
        for p in ps {
            buf.put_i32(*p);
        }
    }
    buf.put_i32(-1); // user_data: null
    Ok(buf.freeze())
}

/// Topic and partition pairs of a SyncGroup assignment, written by any client of any
/// version (empty bytes: nothing assigned).
///
/// # Errors
///
/// As [`decode_subscription`], for an assignment.
pub(crate) fn decode_assignment(bytes: &[u8]) -> Result<Vec<(String, i32)>> {
    read_assignment(bytes).map_err(|e| e.into_error("assignment"))
}

fn read_assignment(bytes: &[u8]) -> Result<Vec<(String, i32)>, Malformed> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut r = Reader::new(bytes);
    r.version()?;
    let topics = r.topic_partitions("assigned_partitions")?;
    r.skip_nullable_bytes("user_data")?;
    Ok(topics
        .into_iter()
        .flat_map(|(topic, ps)| ps.into_iter().map(move |p| (topic.clone(), p)))
        .collect())
}

fn put_count(buf: &mut BytesMut, n: usize) -> Result<()> {
    let n = i32::try_from(n)
        .map_err(|_| Error::transport("encode consumer protocol", "too many elements", false))?;
    buf.put_i32(n);
    Ok(())
}

fn put_string(buf: &mut BytesMut, s: &str) -> Result<()> {
    let len = i16::try_from(s.len()).map_err(|_| {
        Error::transport(
            "encode consumer protocol",
            "string longer than 32767 bytes",
            false,
        )
    })?;
    buf.put_i16(len);
    buf.put_slice(s.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
    use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
    use kafka_protocol::messages::{
        ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
    };
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

    use super::*;

    fn sb(s: &str) -> StrBytes {
        StrBytes::from_string(s.to_owned())
    }

    /// `message` as the Java client writes it: the version, then the body of that version.
    fn versioned<M: Encodable>(version: i16, message: &M) -> Vec<u8> {
        let mut buf = BytesMut::new();
        buf.put_i16(version);
        message.encode(&mut buf, version).unwrap();
        buf.to_vec()
    }

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn round_trips_what_it_writes() {
        let topics = vec!["a".to_string(), "b".to_string()];
        let bytes = encode_subscription(&topics).unwrap();
        assert_eq!(&bytes[..2], &[0, 0], "version prefix");
        assert_eq!(decode_subscription(&bytes).unwrap(), topics);

        let mut parts = BTreeMap::new();
        parts.insert("a".to_string(), vec![0, 2]);
        parts.insert("b".to_string(), vec![1]);
        let bytes = encode_assignment(&parts).unwrap();
        assert_eq!(
            decode_assignment(&bytes).unwrap(),
            vec![("a".into(), 0), ("a".into(), 2), ("b".into(), 1)]
        );
        assert!(decode_assignment(&[]).unwrap().is_empty());
    }

    #[test]
    fn writes_what_kafka_protocol_reads() {
        let bytes = encode_subscription(&["t".into(), "u".into()]).unwrap();
        let mut body = bytes.slice(2..);
        let s = ConsumerProtocolSubscription::decode(&mut body, 0).unwrap();
        assert_eq!(s.topics, vec![sb("t"), sb("u")]);
        assert!(s.user_data.is_none());

        let mut parts = BTreeMap::new();
        parts.insert("t".to_string(), vec![3, 1]);
        let bytes = encode_assignment(&parts).unwrap();
        let mut body = bytes.slice(2..);
        let a = ConsumerProtocolAssignment::decode(&mut body, 0).unwrap();
        assert_eq!(a.assigned_partitions.len(), 1);
        assert_eq!(a.assigned_partitions[0].partitions, vec![3, 1]);
    }

    #[test]
    fn reads_every_version_other_clients_write() {
        let owned = vec![
            OwnedTopic::default()
                .with_topic(TopicName(sb("t")))
                .with_partitions(vec![0, 5]),
        ];
        let subscription = ConsumerProtocolSubscription::default()
            .with_topics(vec![sb("t"), sb("u")])
            .with_user_data(Some(Bytes::from_static(b"sticky")))
            .with_owned_partitions(owned)
            .with_generation_id(7)
            .with_rack_id(Some(sb("rack-1")));
        for version in 0..=3 {
            let bytes = versioned(version, &subscription);
            assert_eq!(
                decode_subscription(&bytes).unwrap(),
                ["t", "u"],
                "subscription v{version}"
            );
        }
        let assignment = ConsumerProtocolAssignment::default()
            .with_assigned_partitions(vec![
                AssignedTopic::default()
                    .with_topic(TopicName(sb("t")))
                    .with_partitions(vec![2, 4]),
            ])
            .with_user_data(Some(Bytes::from_static(b"x")));
        for version in 0..=3 {
            let bytes = versioned(version, &assignment);
            assert_eq!(
                decode_assignment(&bytes).unwrap(),
                [("t".to_string(), 2), ("t".to_string(), 4)],
                "assignment v{version}"
            );
        }
        // A version from the future: the fields this client knows, the rest ignored.
        let mut future = versioned(3, &subscription);
        future[1] = 9;
        future.extend_from_slice(b"new fields");
        assert_eq!(decode_subscription(&future).unwrap(), ["t", "u"]);
    }

    /// The inputs the fuzzing campaign of issue #12 found: each used to abort the process
    /// (allocation of 68 GB or 120 GB) or stop the consumer.
    #[test]
    fn hostile_inputs_are_errors_not_aborts() {
        let cases = [
            // topics: 2147483647 strings in 0 bytes.
            ("00 00 7f ff ff ff", "topics"),
            // v1: no topics, null user_data, owned_partitions: 2147483647 entries.
            (
                "00 01 00 00 00 00 ff ff ff ff 7f ff ff ff",
                "owned_partitions",
            ),
            // one topic of 5 bytes, 1 byte given.
            ("00 00 00 00 00 01 00 05 61", "topics"),
        ];
        for (input, field) in cases {
            let err = read_subscription(&hex(input)).unwrap_err();
            assert_eq!(err.field, field, "{input}: {err}");
            assert!(decode_subscription(&hex(input)).is_err());
        }
        let err = read_assignment(&hex("00 00 7f ff ff ff")).unwrap_err();
        assert_eq!(err.field, "assigned_partitions");
        assert!(
            err.problem.contains("2147483647 elements"),
            "{}",
            err.problem
        );
        // Partitions of one topic: 2147483647 of them in 0 bytes.
        let err = read_assignment(&hex("00 00 00 00 00 01 00 01 74 7f ff ff ff")).unwrap_err();
        assert_eq!(err.field, "assigned_partitions");
        for bad in ["ff ff 00 00 00 00", "00", "00 00 00 00 00 01 ff fe"] {
            assert!(read_subscription(&hex(bad)).is_err(), "{bad}");
            assert!(read_assignment(&hex(bad)).is_err(), "{bad}");
        }
    }

    /// kafka-go's JoinGroup metadata, byte for byte as 0.4.51 writes it: version 1, its
    /// topics, its user data, and nothing after (no `owned_partitions`).
    #[test]
    fn a_kafka_go_subscription_without_owned_partitions_is_read() {
        let mut bytes = vec![0, 1, 0, 0, 0, 1, 0, 6];
        bytes.extend_from_slice(b"orders");
        for user_data in [[0, 0, 0, 0], [0xff, 0xff, 0xff, 0xff]] {
            let mut metadata = bytes.clone();
            metadata.extend_from_slice(&user_data);
            assert_eq!(decode_subscription(&metadata).unwrap(), ["orders"]);
            // Versions 2 and later are not let through without their fields.
            metadata[1] = 2;
            assert!(decode_subscription(&metadata).is_err());
        }
    }

    #[test]
    fn every_prefix_of_a_valid_subscription_is_an_error_not_a_panic() {
        let subscription = ConsumerProtocolSubscription::default()
            .with_topics(vec![sb("topic-a"), sb("b")])
            .with_owned_partitions(vec![
                OwnedTopic::default()
                    .with_topic(TopicName(sb("b")))
                    .with_partitions(vec![1]),
            ])
            .with_generation_id(3);
        let bytes = versioned(2, &subscription);
        assert!(decode_subscription(&bytes).is_ok());
        for len in 0..bytes.len() {
            assert!(decode_subscription(&bytes[..len]).is_err(), "prefix {len}");
        }
    }
}

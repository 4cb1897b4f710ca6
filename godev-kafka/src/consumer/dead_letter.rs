use serde::{Deserialize, Serialize};

use crate::event::Timestamp;
use crate::transport::Record;

/// Why a record was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeadLetterReason {
    /// The value is not JSON of the consumer's codec, or has no tag.
    Malformed,
    /// No handler of the group claims the tag (with [`UnknownTagPolicy::DeadLetter`](crate::UnknownTagPolicy)).
    UnknownTag,
    /// The payload does not decode into the handler's event type.
    Undecodable,
    /// The handler returned a permanent error.
    Permanent,
    /// The handler kept failing until attempts or retry time ran out.
    RetriesExhausted,
    /// The handler panicked.
    Panicked,
    /// The value is larger than the consumer's `max_record_bytes`.
    Oversized,
}

/// The JSON value written to a dead-letter topic (`<topic>.dlq` by default).
///
/// The dead-letter record's Kafka key is the original key. The original value is kept byte
/// for byte: in `value` as a string when it is UTF-8, otherwise in `value_base64`; the same
/// holds for the key (`key` / `key_base64`).
///
/// ```json
/// {"origin_topic":"user-events","origin_partition":2,"origin_offset":41,
///  "group":"godev-kit-group","tag":"user.created","handler":"app::on_created",
///  "reason":"retries_exhausted","error":"database unavailable","attempts":5,
///  "failed_at":"2026-11-28T14:00:00.123Z","key":"1","value":"{\"id\":1,...}"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The topic the record was read from.
    pub origin_topic: String,
    /// Its partition.
    pub origin_partition: i32,
    /// Its offset.
    pub origin_offset: i64,
    /// The consumer group that gave up on it.
    pub group: String,
    /// The tag, when it could be read.
    pub tag: Option<String>,
    /// The handler, when one was chosen.
    pub handler: Option<String>,
    /// Why it was dead-lettered.
    pub reason: DeadLetterReason,
    /// The error text.
    pub error: String,
    /// How many times the handler was called.
    pub attempts: u32,
    /// When it was dead-lettered.
    pub failed_at: Timestamp,
    /// The original key, when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The original key in base64, when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_base64: Option<String>,
    /// The original value, when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The original value in base64, when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
}

impl DeadLetter {
    /// A dead letter for `record`, given up on by `group` for `reason`; tag, handler and
    /// attempts start empty.
    pub fn from_record(
        record: &Record,
        group: &str,
        reason: DeadLetterReason,
        error: String,
    ) -> Self {
        let (key, key_base64) = match &record.key {
            Some(bytes) => split_text(bytes),
            None => (None, None),
        };
        let (value, value_base64) = split_text(&record.value);
        Self {
            origin_topic: record.topic.clone(),
            origin_partition: record.partition,
            origin_offset: record.offset,
            group: group.to_owned(),
            tag: None,
            handler: None,
            reason,
            error,
            attempts: 0,
            failed_at: Timestamp::now(),
            key,
            key_base64,
            value,
            value_base64,
        }
    }

    /// The original key bytes.
    pub fn original_key(&self) -> Option<Vec<u8>> {
        match (&self.key, &self.key_base64) {
            (Some(text), _) => Some(text.clone().into_bytes()),
            (None, Some(encoded)) => base64::decode(encoded),
            (None, None) => None,
        }
    }

    /// The original value bytes (empty when the dead letter is damaged).
    pub fn original_value(&self) -> Vec<u8> {
        match (&self.value, &self.value_base64) {
            (Some(text), _) => text.clone().into_bytes(),
            (None, Some(encoded)) => base64::decode(encoded).unwrap_or_default(),
            (None, None) => Vec::new(),
        }
    }
}

fn split_text(bytes: &[u8]) -> (Option<String>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (Some(text.to_owned()), None),
        Err(_) => (None, Some(base64::encode(bytes))),
    }
}

/// Standard base64 with padding, for the non-UTF-8 bytes of dead letters.
mod base64 {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub(super) fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    pub(super) fn decode(text: &str) -> Option<Vec<u8>> {
        let text = text.trim_end_matches('=');
        let mut out = Vec::with_capacity(text.len() * 3 / 4);
        let (mut n, mut bits) = (0u32, 0);
        for c in text.bytes() {
            n = n << 6 | ALPHABET.iter().position(|a| *a == c)? as u32;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((n >> bits) as u8);
            }
        }
        Some(out)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn round_trips_every_length() {
            let data: Vec<u8> = (0..=255).collect();
            for len in 0..10 {
                let encoded = super::encode(&data[250 - len..250]);
                assert_eq!(super::decode(&encoded).unwrap(), &data[250 - len..250]);
            }
            assert_eq!(super::encode(b"foobar"), "Zm9vYmFy");
            assert_eq!(super::encode(b"fo"), "Zm8=");
        }
    }
}

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::{Deserialize, Serialize};

use crate::event::Timestamp;
use crate::transport::{Header, Record};

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

impl DeadLetterReason {
    /// The reason as the dead letter's JSON writes it (snake case), e.g. `retries_exhausted`.
    ///
    /// # Examples
    ///
    /// ```
    /// use godev_kafka::consumer::DeadLetterReason;
    /// assert_eq!(DeadLetterReason::UnknownTag.as_str(), "unknown_tag");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::Malformed => "malformed",
            DeadLetterReason::UnknownTag => "unknown_tag",
            DeadLetterReason::Undecodable => "undecodable",
            DeadLetterReason::Permanent => "permanent",
            DeadLetterReason::RetriesExhausted => "retries_exhausted",
            DeadLetterReason::Panicked => "panicked",
            DeadLetterReason::Oversized => "oversized",
        }
    }
}

/// The most bytes of a dead-letter record, its value and key together.
///
/// Kafka refuses a record batch larger than the topic's `max.message.bytes` (1 048 588 bytes
/// by default) and librdkafka a message larger than its `message.max.bytes` (1 000 000,
/// counting its own framing of the message): a dead letter above either would be refused on
/// every try and stall its partition. This limit passes both, with 10 KB left for a
/// message's framing and 58 KB for a batch's. A dead letter that would be larger is written
/// in bounded form (see [`DeadLetter`]).
pub(crate) const MAX_DEAD_LETTER_BYTES: usize = 990_000;

/// A key or value is kept as text when its JSON string is at most this many times its bytes:
/// quotes and backslashes (two bytes each) keep JSON values readable, control characters (six
/// bytes each, `\u0001`) send the bytes to base64 (four bytes for three).
const MAX_TEXT_INFLATION: usize = 2;

/// The most bytes of a tag kept in a dead letter (a tag comes from the record).
const MAX_TAG_BYTES: usize = 256;

/// The most bytes of an error text (or handler name) kept in a dead letter.
const MAX_ERROR_BYTES: usize = 4096;

/// The most bytes of a key, as JSON, the bounded form still holds.
const MAX_BOUNDED_KEY_BYTES: usize = 1024;

/// Writes padded standard base64; reads it with or without padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The JSON value written to a dead-letter topic (`<topic>.dlq` by default).
///
/// The dead-letter record's Kafka key is the original key. The original value is kept byte
/// for byte: in `value` as a string when it is UTF-8 and its JSON string is at most twice
/// its size, otherwise in `value_base64`; the same holds for the key (`key` /
/// `key_base64`). `value_len` and `key_len` are the original sizes in bytes. The original
/// record's headers, when it had any, are in `headers`, in their order, each value kept the
/// same way (`value` or `value_base64`; neither for a null value); a record without headers
/// gets no `headers` field.
///
/// ```json
/// {"origin_topic":"user-events","origin_partition":2,"origin_offset":41,
///  "group":"godev-kit-group","tag":"user.created","handler":"app::on_created",
///  "reason":"retries_exhausted","error":"database unavailable","attempts":5,
///  "failed_at":"2026-11-28T14:00:00.123Z","key":"1","value":"{\"id\":1,...}",
///  "key_len":1,"value_len":182,"headers":[{"key":"traceparent","value":"00-4bf9-01"}]}
/// ```
///
/// Headers may hold credentials: a dead-letter topic holds them as the origin topic did, so
/// give it the same access rules. Replay writes back the key and value, not the headers.
///
/// A dead letter stays within 990 000 bytes (value and key), below the broker's default
/// `max.message.bytes`: the tag is cut to 256 bytes and the error text to 4 KiB (with a
/// note of the full size), key, value and header values go to base64 when that makes the
/// letter fit, and otherwise the letter is written in **bounded form**: without the value
/// (`"value_omitted":true`) and the headers (`"headers_omitted":true` when there were some),
/// and without the key when it is over 1 KiB (`"key_omitted":true`, the Kafka key left out
/// too), keeping where the record was, why it failed and its sizes.
/// A letter the dead-letter topic refuses (too large for its limit, or any other refusal
/// that trying again would not change) is written in bounded form as well. A bounded letter
/// cannot be replayed: the original is still at `origin_offset` of `origin_topic`, for as
/// long as the topic's retention keeps it.
///
/// Letters written before `value_len`, `key_len`, `value_omitted`, `key_omitted`, `headers`
/// and `headers_omitted` existed read as they always did (the sizes absent, no headers, the
/// flags false).
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
    /// The original key as text (see the type's docs for when).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The original key in base64, when it is not kept as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_base64: Option<String>,
    /// The original value as text (see the type's docs for when).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The original value in base64, when it is not kept as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
    /// The size of the original key in bytes, when the record had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_len: Option<u64>,
    /// The size of the original value in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_len: Option<u64>,
    /// The letter is in bounded form: the value was left out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub value_omitted: bool,
    /// The bounded form left the key out too (it was over 1 KiB).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub key_omitted: bool,
    /// The original record's headers, in order; empty when it had none (or in bounded form).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<DeadLetterHeader>,
    /// The letter is in bounded form and the record had headers: they were left out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub headers_omitted: bool,
}

/// One header of the record a [`DeadLetter`] is about: its key, and its value as text when
/// it is UTF-8 and its JSON string is at most twice its size, otherwise in base64; neither
/// for a null value.
///
/// ```json
/// {"key":"traceparent","value":"00-4bf9-01"}
/// {"key":"signature","value_base64":"//4A"}
/// {"key":"tenant"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeadLetterHeader {
    /// The header's key.
    pub key: String,
    /// The value as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The value in base64, when it is not kept as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
}

impl DeadLetterHeader {
    /// `header` in a dead letter's form.
    pub fn from_header(header: &Header) -> Self {
        let (value, value_base64) = header.value.as_deref().map_or((None, None), compact);
        Self {
            key: header.key.clone(),
            value,
            value_base64,
        }
    }

    /// The original header: its value `None` when it was null (or its base64 is damaged).
    pub fn original(&self) -> Header {
        let value = match (&self.value, &self.value_base64) {
            (Some(text), _) => Some(text.clone().into_bytes()),
            (None, Some(encoded)) => BASE64.decode(encoded).ok(),
            (None, None) => None,
        };
        Header {
            key: self.key.clone(),
            value,
        }
    }
}

impl DeadLetter {
    /// A dead letter for `record`, given up on by `group` for `reason`; tag, handler and
    /// attempts start empty. Key, value and headers are kept in their compact form; a value
    /// larger than a dead letter can be is left out at once (bounded form).
    pub fn from_record(
        record: &Record,
        group: &str,
        reason: DeadLetterReason,
        error: String,
    ) -> Self {
        let (key, key_base64) = match &record.key {
            Some(bytes) => compact(bytes),
            None => (None, None),
        };
        let value_omitted = record.value.len() > MAX_DEAD_LETTER_BYTES;
        let (value, value_base64) = if value_omitted {
            (None, None)
        } else {
            compact(&record.value)
        };
        let mut letter = Self {
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
            key_len: record.key.as_ref().map(|k| k.len() as u64),
            value_len: Some(record.value.len() as u64),
            value_omitted,
            key_omitted: false,
            headers: record
                .headers
                .iter()
                .map(DeadLetterHeader::from_header)
                .collect(),
            headers_omitted: false,
        };
        if value_omitted {
            letter.make_bounded();
        }
        letter
    }

    /// The original key bytes (`None` also when the key was left out or is damaged).
    pub fn original_key(&self) -> Option<Vec<u8>> {
        match (&self.key, &self.key_base64) {
            (Some(text), _) => Some(text.clone().into_bytes()),
            (None, Some(encoded)) => BASE64.decode(encoded).ok(),
            (None, None) => None,
        }
    }

    /// The original headers, in order (none when the record had none or they were left
    /// out; see [`DeadLetterHeader::original`]).
    pub fn original_headers(&self) -> Vec<Header> {
        self.headers
            .iter()
            .map(DeadLetterHeader::original)
            .collect()
    }

    /// The original value bytes (empty when the value was left out or is damaged).
    pub fn original_value(&self) -> Vec<u8> {
        match (&self.value, &self.value_base64) {
            (Some(text), _) => text.clone().into_bytes(),
            (None, Some(encoded)) => BASE64.decode(encoded).unwrap_or_default(),
            (None, None) => Vec::new(),
        }
    }

    /// The original key and value, or why this letter cannot give them back byte for byte:
    /// it is in bounded form, its base64 is damaged, or its bytes do not match its sizes.
    pub(crate) fn original(&self) -> Result<(Option<Vec<u8>>, Vec<u8>), String> {
        if self.value_omitted || self.key_omitted {
            let what = if self.value_omitted { "value" } else { "key" };
            return Err(format!(
                "the dead letter is in bounded form: the original {what} was left out \
                 (value of {} bytes); read it at {}[{}]@{}",
                self.value_len
                    .map_or_else(|| "unknown".into(), |n| n.to_string()),
                self.origin_topic,
                self.origin_partition,
                self.origin_offset
            ));
        }
        let key = match (&self.key, &self.key_base64) {
            (Some(text), _) => Some(text.clone().into_bytes()),
            (None, Some(encoded)) => Some(
                BASE64
                    .decode(encoded)
                    .map_err(|e| format!("key_base64 is not base64: {e}"))?,
            ),
            (None, None) => None,
        };
        let value = match (&self.value, &self.value_base64) {
            (Some(text), _) => text.clone().into_bytes(),
            (None, Some(encoded)) => BASE64
                .decode(encoded)
                .map_err(|e| format!("value_base64 is not base64: {e}"))?,
            (None, None) => return Err("the dead letter has neither value nor value_base64".into()),
        };
        let mismatch = |what: &str, found: usize, said: u64| {
            format!("the {what} has {found} bytes, the dead letter says {said}")
        };
        if let Some(said) = self.value_len.filter(|n| *n != value.len() as u64) {
            return Err(mismatch("value", value.len(), said));
        }
        if let Some(said) = self.key_len {
            let found = key.as_ref().map_or(0, Vec::len);
            if key.is_none() || found as u64 != said {
                return Err(mismatch("key", found, said));
            }
        }
        Ok((key, value))
    }

    /// The dead-letter record for this letter, key and value, within
    /// [`MAX_DEAD_LETTER_BYTES`]: as it is when it fits, with key, value and header values in
    /// base64 when that makes it fit, otherwise in bounded form. Cuts the tag, handler and
    /// error text to their bounds first. `original_key` is the key of the record the letter
    /// is about.
    ///
    /// # Errors
    ///
    /// The letter does not serialize (it always does: its fields are strings and numbers).
    pub(crate) fn prepare_record(
        &mut self,
        original_key: Option<&[u8]>,
    ) -> serde_json::Result<(Option<Vec<u8>>, Vec<u8>)> {
        if let Some(tag) = &mut self.tag {
            bound_text(tag, MAX_TAG_BYTES);
        }
        if let Some(handler) = &mut self.handler {
            bound_text(handler, MAX_ERROR_BYTES);
        }
        bound_text(&mut self.error, MAX_ERROR_BYTES);
        if !self.value_omitted {
            let key_bytes = original_key.map_or(0, <[u8]>::len);
            let value = serde_json::to_vec(self)?;
            if value.len() + key_bytes <= MAX_DEAD_LETTER_BYTES {
                return Ok((original_key.map(<[u8]>::to_vec), value));
            }
            let mut shorter = shorter_in_base64(&mut self.key, &mut self.key_base64)
                | shorter_in_base64(&mut self.value, &mut self.value_base64);
            for header in &mut self.headers {
                shorter |= shorter_in_base64(&mut header.value, &mut header.value_base64);
            }
            if shorter {
                let value = serde_json::to_vec(self)?;
                if value.len() + key_bytes <= MAX_DEAD_LETTER_BYTES {
                    return Ok((original_key.map(<[u8]>::to_vec), value));
                }
            }
            self.make_bounded();
        }
        self.bounded_record(original_key)
    }

    /// Turns the letter into its bounded form: the value and the headers left out, the key
    /// too when it is over [`MAX_BOUNDED_KEY_BYTES`].
    pub(crate) fn make_bounded(&mut self) {
        self.value = None;
        self.value_base64 = None;
        self.value_omitted = true;
        if !self.headers.is_empty() {
            self.headers = Vec::new();
            self.headers_omitted = true;
        }
        let key_json = match (&self.key, &self.key_base64) {
            (Some(text), _) => escaped_len(text) + 2,
            (None, Some(encoded)) => encoded.len() + 2,
            (None, None) => 0,
        };
        if key_json > MAX_BOUNDED_KEY_BYTES {
            self.key = None;
            self.key_base64 = None;
            self.key_omitted = true;
        }
    }

    /// The record of the bounded form: the original key when the letter kept it.
    ///
    /// # Errors
    ///
    /// As [`DeadLetter::prepare_record`].
    pub(crate) fn bounded_record(
        &self,
        original_key: Option<&[u8]>,
    ) -> serde_json::Result<(Option<Vec<u8>>, Vec<u8>)> {
        debug_assert!(self.value_omitted, "make_bounded first");
        let key = original_key
            .filter(|_| !self.key_omitted)
            .map(<[u8]>::to_vec);
        Ok((key, serde_json::to_vec(self)?))
    }
}

/// `bytes` as (text, base64): text when it is UTF-8 and its JSON string is at most
/// [`MAX_TEXT_INFLATION`] times its size, base64 otherwise.
fn compact(bytes: &[u8]) -> (Option<String>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(text) if escaped_len(text) <= MAX_TEXT_INFLATION * bytes.len() => {
            (Some(text.to_owned()), None)
        }
        _ => (None, Some(BASE64.encode(bytes))),
    }
}

/// Moves `text` to `base64` when its base64 is shorter than its JSON string; says whether.
fn shorter_in_base64(text: &mut Option<String>, base64: &mut Option<String>) -> bool {
    match text {
        Some(t) if base64::encoded_len(t.len(), true).is_some_and(|n| n < escaped_len(t)) => {
            *base64 = Some(BASE64.encode(t.as_bytes()));
            *text = None;
            true
        }
        _ => false,
    }
}

/// The length of `text` as a JSON string as `serde_json` writes it, without the quotes.
fn escaped_len(text: &str) -> usize {
    text.bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0x00..=0x1f => 6,
            _ => 1,
        })
        .sum()
}

/// Cuts `text` to at most `max` bytes (at a character boundary), noting the full size.
fn bound_text(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let full = text.len();
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(&format!("… [cut, {full} bytes in all]"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: Option<Vec<u8>>, value: Vec<u8>) -> Record {
        Record::new("payments", 3, 41, key, value)
    }

    /// The metrics label of a reason is what the dead letter's JSON says.
    #[test]
    fn a_reason_as_str_is_its_json() {
        use DeadLetterReason::*;
        for reason in [
            Malformed,
            UnknownTag,
            Undecodable,
            Permanent,
            RetriesExhausted,
            Panicked,
            Oversized,
        ] {
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(json, format!("\"{}\"", reason.as_str()));
        }
    }

    fn letter(record: &Record, error: String) -> DeadLetter {
        DeadLetter::from_record(record, "g", DeadLetterReason::Malformed, error)
    }

    fn written_size((key, value): &(Option<Vec<u8>>, Vec<u8>)) -> usize {
        key.as_ref().map_or(0, Vec::len) + value.len()
    }

    /// Issue #12 F5: a 1 MiB value of 0x01 bytes was written as a 6.3 MB dead letter
    /// (`\u0001` escapes), refused by the broker forever.
    #[test]
    fn a_mebibyte_of_control_bytes_yields_a_bounded_letter_under_the_limit() {
        let record = record(Some(b"k".to_vec()), vec![0x01; 1 << 20]);
        let mut letter = letter(&record, "not JSON".into());
        let written = letter.prepare_record(record.key.as_deref()).unwrap();
        assert!(written_size(&written) < 2048, "{}", written_size(&written));
        let read: DeadLetter = serde_json::from_slice(&written.1).unwrap();
        assert!(read.value_omitted && !read.key_omitted);
        assert_eq!(
            (read.value.as_deref(), read.value_base64.as_deref()),
            (None, None)
        );
        assert_eq!((read.value_len, read.key_len), (Some(1 << 20), Some(1)));
        assert_eq!(
            (
                read.origin_topic.as_str(),
                read.origin_partition,
                read.origin_offset
            ),
            ("payments", 3, 41)
        );
        assert_eq!(
            (read.key.as_deref(), written.0.as_deref()),
            (Some("k"), Some(&b"k"[..]))
        );
        assert!(read.original().unwrap_err().contains("bounded form"));
    }

    #[test]
    fn control_bytes_that_fit_go_to_base64_and_come_back_byte_exact() {
        let value = vec![0x01; 600 * 1024];
        let record = record(None, value.clone());
        let mut letter = letter(&record, "not JSON".into());
        let written = letter.prepare_record(None).unwrap();
        // 600 KiB in base64 is 800 KiB; as `\u0001` text it would be 3.6 MiB.
        assert!(written_size(&written) < 600 * 1024 * 4 / 3 + 1024);
        let read: DeadLetter = serde_json::from_slice(&written.1).unwrap();
        assert!(!read.value_omitted && read.value.is_none());
        assert_eq!(read.original().unwrap(), (None, value));
    }

    #[test]
    fn text_stays_text_unless_escapes_more_than_double_it() {
        let json = br#"{"id":1,"note":"say \"hi\"\n"}"#.to_vec();
        assert_eq!(
            compact(&json),
            (Some(String::from_utf8(json.clone()).unwrap()), None)
        );
        assert_eq!(
            compact(b"\"\\\"\\"),
            (Some("\"\\\"\\".into()), None),
            "twice: text"
        );
        assert_eq!(
            compact(b"a\x01"),
            (None, Some("YQE=".into())),
            "over twice: base64"
        );
        assert_eq!(
            compact(&[0xff, 0xfe]),
            (None, Some("//4=".into())),
            "not UTF-8"
        );
        for text in ["plain", "q\"b\\n\nt\t\x01\x1f\u{7f}é"] {
            assert_eq!(
                escaped_len(text) + 2,
                serde_json::to_string(text).unwrap().len()
            );
        }
    }

    #[test]
    fn quote_heavy_text_that_only_fits_in_base64_is_moved_there() {
        // 700 000 quotes: 1.4 MB as a JSON string, 933 KB in base64.
        let value = vec![b'"'; 700_000];
        let record = record(None, value.clone());
        let mut letter = letter(&record, "not JSON".into());
        assert!(letter.value.is_some(), "compact form: text");
        let written = letter.prepare_record(None).unwrap();
        assert!(written_size(&written) <= MAX_DEAD_LETTER_BYTES);
        let read: DeadLetter = serde_json::from_slice(&written.1).unwrap();
        assert!(read.value_base64.is_some() && !read.value_omitted);
        assert_eq!(read.original().unwrap().1, value);
    }

    /// Issue #12 F5: a 1 MiB unknown tag was written three times over (tag, error, value):
    /// 3.3 MB.
    #[test]
    fn a_mebibyte_tag_and_error_are_cut_and_the_letter_bounded() {
        let tag = "t".repeat(1 << 20);
        let value = format!(r#"{{"event_type":"{tag}"}}"#).into_bytes();
        let record = record(Some(vec![b'k'; 4096]), value.clone());
        let mut letter = letter(&record, format!("no handler for `{tag}` in group `g`"));
        letter.reason = DeadLetterReason::UnknownTag;
        letter.tag = Some(tag);
        let written = letter.prepare_record(record.key.as_deref()).unwrap();
        assert!(
            written_size(&written) < 8 * 1024,
            "{}",
            written_size(&written)
        );
        let read: DeadLetter = serde_json::from_slice(&written.1).unwrap();
        let read_tag = read.tag.as_deref().unwrap();
        assert!(
            read_tag.starts_with("ttt")
                && read_tag.ends_with(&format!("[cut, {} bytes in all]", 1 << 20))
        );
        assert!(read_tag.len() < MAX_TAG_BYTES + 64);
        assert!(read.error.len() < MAX_ERROR_BYTES + 64);
        assert!(
            read.value_omitted && read.key_omitted,
            "a 4 KiB key is left out too"
        );
        assert_eq!(written.0, None, "and so is the Kafka key");
        assert_eq!(
            (read.value_len, read.key_len),
            (Some(value.len() as u64), Some(4096))
        );
    }

    #[test]
    fn a_letter_of_exactly_the_limit_is_written_as_it_is_one_byte_more_is_bounded() {
        let with_value = |n: usize| {
            let record = record(Some(b"key".to_vec()), vec![b'a'; n]);
            let mut letter = letter(&record, "not JSON".into());
            // `now` has as many fraction digits as it needs: one length for both letters.
            letter.failed_at = Timestamp::from_unix_nanos(1_700_000_000_123_456_789);
            letter
        };
        // The letter's own fields, measured with a value of as many digits in `value_len`.
        let overhead = serde_json::to_vec(&with_value(900_000)).unwrap().len() + 3 - 900_000;
        let fits = MAX_DEAD_LETTER_BYTES - overhead;
        let written = with_value(fits).prepare_record(Some(b"key")).unwrap();
        assert_eq!(written_size(&written), MAX_DEAD_LETTER_BYTES);
        let read: DeadLetter = serde_json::from_slice(&written.1).unwrap();
        assert_eq!(
            (read.value_omitted, read.value.map(|v| v.len())),
            (false, Some(fits))
        );

        let mut over = with_value(fits + 1);
        let written = over.prepare_record(Some(b"key")).unwrap();
        assert!(over.value_omitted && !over.key_omitted);
        assert!(written_size(&written) < 1024, "{}", written_size(&written));
    }

    #[test]
    fn a_letter_that_fits_is_written_as_it_is() {
        let record = record(Some(vec![0xff]), b"{\"id\":1}".to_vec());
        let mut letter = letter(&record, "boom".into());
        let before = letter.clone();
        let written = letter.prepare_record(record.key.as_deref()).unwrap();
        assert_eq!(written.0.as_deref(), Some(&[0xff][..]));
        assert_eq!(
            serde_json::from_slice::<DeadLetter>(&written.1).unwrap(),
            before
        );
        assert_eq!(
            before.original().unwrap(),
            (Some(vec![0xff]), b"{\"id\":1}".to_vec())
        );
    }

    #[test]
    fn letters_of_the_old_format_still_read_and_give_their_bytes_back() {
        // Written before the sizes and flags existed, with the hand-rolled base64.
        let old = r#"{"origin_topic":"payments","origin_partition":2,"origin_offset":17,"group":"g","tag":null,"handler":null,"reason":"permanent","error":"boom","attempts":1,"failed_at":"2026-01-01T00:00:00Z","key":"k1","value_base64":"//4A"}"#;
        let letter: DeadLetter = serde_json::from_str(old).unwrap();
        assert_eq!((letter.value_len, letter.value_omitted), (None, false));
        assert!(letter.headers.is_empty() && !letter.headers_omitted);
        assert_eq!(
            letter.original().unwrap(),
            (Some(b"k1".to_vec()), vec![0xff, 0xfe, 0x00])
        );
        assert_eq!(letter.original_value(), vec![0xff, 0xfe, 0x00]);
        let unpadded: DeadLetter = serde_json::from_str(&old.replace("//4A", "Zm8")).unwrap();
        assert_eq!(unpadded.original_value(), b"fo");
    }

    #[test]
    fn damaged_letters_say_why_they_cannot_give_their_bytes_back() {
        let record = record(Some(b"k".to_vec()), b"v".to_vec());
        let good = letter(&record, "boom".into());
        let mut bad_base64 = good.clone();
        (bad_base64.value, bad_base64.value_base64) = (None, Some("!!".into()));
        let mut no_value = good.clone();
        no_value.value = None;
        let mut wrong_size = good.clone();
        wrong_size.value_len = Some(2);
        let mut lost_key = good.clone();
        lost_key.key = None;
        for (letter, says) in [
            (bad_base64, "value_base64 is not base64"),
            (no_value, "neither value nor value_base64"),
            (wrong_size, "the value has 1 bytes, the dead letter says 2"),
            (lost_key, "the key has 0 bytes, the dead letter says 1"),
        ] {
            let error = letter.original().unwrap_err();
            assert!(error.contains(says), "{error}");
        }
    }

    #[test]
    fn headers_are_kept_in_order_with_repeats_null_and_binary_values() {
        let headers = [
            Header::new("hop", "gateway"),
            Header::new("hop", "billing"),
            Header::null("tenant"),
            Header::new("sig", vec![0xff, 0xfe, 0x00]),
            Header::new("empty", ""),
        ];
        let record = record(Some(b"k".to_vec()), b"{}".to_vec()).with_headers(headers.clone());
        let mut letter = letter(&record, "boom".into());
        let written = letter.prepare_record(record.key.as_deref()).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&written.1).unwrap();
        assert_eq!(
            json["headers"],
            serde_json::json!([
                {"key": "hop", "value": "gateway"},
                {"key": "hop", "value": "billing"},
                {"key": "tenant"},
                {"key": "sig", "value_base64": "//4A"},
                {"key": "empty", "value": ""},
            ])
        );
        let read: DeadLetter = serde_json::from_slice(&written.1).unwrap();
        assert_eq!(read.original_headers(), headers);
        assert!(!read.headers_omitted);
        assert_eq!(
            read.original().unwrap(),
            (Some(b"k".to_vec()), b"{}".to_vec()),
            "key and value as before"
        );
    }

    #[test]
    fn a_record_without_headers_gets_no_headers_field() {
        let record = record(None, b"{}".to_vec());
        let written = letter(&record, "boom".into()).prepare_record(None).unwrap();
        let text = String::from_utf8(written.1).unwrap();
        assert!(!text.contains("headers"), "{text}");
    }

    #[test]
    fn the_bounded_form_leaves_the_headers_out() {
        let big_value = record(None, vec![b'a'; MAX_DEAD_LETTER_BYTES + 1])
            .with_headers([Header::new("token", "secret")]);
        let written = letter(&big_value, "too big".into())
            .prepare_record(None)
            .unwrap();
        let read: DeadLetter = serde_json::from_slice(&written.1).unwrap();
        assert!(read.value_omitted && read.headers_omitted && read.headers.is_empty());
        assert!(!String::from_utf8(written.1).unwrap().contains("secret"));

        // Headers too large for a letter make it bounded as well.
        let big_headers = record(None, b"{}".to_vec())
            .with_headers([Header::new("big", vec![b'h'; MAX_DEAD_LETTER_BYTES])]);
        let mut letter = letter(&big_headers, "boom".into());
        let written = letter.prepare_record(None).unwrap();
        assert!(written_size(&written) < 1024, "{}", written_size(&written));
        assert!(letter.value_omitted && letter.headers_omitted);
    }

    #[test]
    fn bound_text_cuts_at_a_character_boundary() {
        let mut text = "é".repeat(10);
        bound_text(&mut text, 5);
        assert_eq!(text, "éé… [cut, 20 bytes in all]");
        let mut short = "short".to_owned();
        bound_text(&mut short, 5);
        assert_eq!(short, "short");
    }
}

use std::borrow::Cow;
use std::fmt;
use std::io::Write;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Event, Timestamp};

/// The member of a tagged record that holds the tag, as in the Go kit's events.
const TAG_FIELD: &str = "event_type";
/// The CloudEvents spec version this codec writes and accepts.
const SPEC_VERSION: &str = "1.0";

/// How an event is laid out in a record value.
///
/// Both layouts keep the tag inside the value, so consumers on any backend (and the Go kit)
/// can route a record without headers.
///
/// * [`Codec::CloudEvents`] (the default): CloudEvents 1.0 structured-mode JSON,
///   `{"specversion":"1.0","id":…,"source":…,"type":<tag>,"time":…,"datacontenttype":"application/json","data":<payload>}`.
/// * [`Codec::Tagged`]: the Go kit's layout, the payload's members with an `event_type` member
///   beside them. The tag is written right after a leading `id` member (where the Go kit's
///   structs put it) and first otherwise, so the bytes equal what Go's `encoding/json` writes
///   for the same struct.
///
/// # Examples
///
/// ```
/// use godev_kafka::{Event, event::Codec};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize, Event)]
/// #[event(topic = "user_events", name = "user.created")]
/// struct UserCreated { id: i64, user_id: i64 }
///
/// let bytes = Codec::Tagged.encode(&UserCreated { id: 1, user_id: 7 }, "svc").unwrap();
/// assert_eq!(bytes, br#"{"id":1,"event_type":"user.created","user_id":7}"#);
///
/// let decoded = Codec::Tagged.decode::<UserCreated>(&bytes).unwrap();
/// assert_eq!(decoded.data, UserCreated { id: 1, user_id: 7 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Codec {
    /// CloudEvents 1.0 structured-mode JSON.
    #[default]
    CloudEvents,
    /// The Go kit's JSON: payload members plus `event_type`.
    Tagged,
}

/// A record value whose tag has been read and whose payload has not been decoded yet.
#[derive(Debug, Clone)]
pub struct Envelope<'a, T> {
    /// The event-type tag.
    pub tag: Cow<'a, str>,
    /// The CloudEvents `id`, when the record has one.
    pub id: Option<Cow<'a, str>>,
    /// The CloudEvents `source`, when the record has one.
    pub source: Option<Cow<'a, str>>,
    /// The CloudEvents `time`, when the record has one.
    pub time: Option<Timestamp>,
    /// The payload: JSON text before decoding, the event after.
    pub data: T,
}

/// Why a record value could not be turned into an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The value is not JSON, or not the JSON object the codec expects.
    #[error("record value is not a valid {codec} record: {source}")]
    Malformed {
        /// The codec that was reading.
        codec: Codec,
        /// What the JSON parser said.
        source: serde_json::Error,
    },
    /// The value has no tag member (`type` or `event_type`).
    #[error("record value has no `{field}` member to route on")]
    MissingTag {
        /// The member that was looked for.
        field: &'static str,
    },
    /// The record carries a CloudEvents spec version this codec does not read.
    #[error("unsupported CloudEvents specversion `{found}`, expected `1.0`")]
    SpecVersion {
        /// The version found in the record.
        found: String,
    },
    /// The tag belongs to no shape of the target type.
    #[error("tag `{tag}` is not one of {expected:?}")]
    UnknownTag {
        /// The tag found in the record.
        tag: String,
        /// The tags the type knows.
        expected: &'static [&'static str],
    },
    /// The payload does not deserialize into the shape its tag names.
    #[error("payload of `{tag}` does not decode: {source}")]
    Payload {
        /// The tag whose shape was decoded.
        tag: String,
        /// What serde said.
        source: serde_json::Error,
    },
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::CloudEvents => "CloudEvents JSON",
            Codec::Tagged => "tagged JSON",
        })
    }
}

#[derive(Deserialize)]
struct CloudEventFields<'a> {
    #[serde(borrow)]
    specversion: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    source: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "type")]
    tag: Option<Cow<'a, str>>,
    time: Option<Timestamp>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct TaggedFields<'a> {
    #[serde(borrow)]
    event_type: Option<Cow<'a, str>>,
}

impl Codec {
    /// Encodes `event` as a record value; `source` fills the CloudEvents `source` attribute.
    ///
    /// # Errors
    ///
    /// Fails when the payload does not serialize, or, for [`Codec::Tagged`], when it does not
    /// serialize to a JSON object (there would be nowhere to put the tag).
    pub fn encode<E: Event>(&self, event: &E, source: &str) -> serde_json::Result<Vec<u8>> {
        match self {
            Codec::CloudEvents => encode_cloud_event(event, source),
            Codec::Tagged => encode_tagged(event),
        }
    }

    /// Reads the tag and the envelope attributes of a record value without decoding the payload.
    ///
    /// # Errors
    ///
    /// Fails when the value is not JSON of this codec's layout or has no tag.
    pub fn peek<'a>(&self, value: &'a [u8]) -> Result<Envelope<'a, &'a str>, DecodeError> {
        let malformed = |source| DecodeError::Malformed {
            codec: *self,
            source,
        };
        match self {
            Codec::CloudEvents => {
                let fields: CloudEventFields<'a> =
                    serde_json::from_slice(value).map_err(malformed)?;
                if let Some(found) = fields.specversion.filter(|v| v != SPEC_VERSION) {
                    return Err(DecodeError::SpecVersion {
                        found: found.into_owned(),
                    });
                }
                let tag = fields
                    .tag
                    .ok_or(DecodeError::MissingTag { field: "type" })?;
                Ok(Envelope {
                    tag,
                    id: fields.id,
                    source: fields.source,
                    time: fields.time,
                    data: fields.data.map_or("null", RawValue::get),
                })
            }
            Codec::Tagged => {
                let text = std::str::from_utf8(value).map_err(|e| {
                    malformed(serde::de::Error::custom(format_args!("not UTF-8: {e}")))
                })?;
                let fields: TaggedFields<'a> = serde_json::from_str(text).map_err(malformed)?;
                let tag = fields
                    .event_type
                    .ok_or(DecodeError::MissingTag { field: TAG_FIELD })?;
                Ok(Envelope {
                    tag,
                    id: None,
                    source: None,
                    time: None,
                    data: text,
                })
            }
        }
    }

    /// Decodes a record value into `E`.
    ///
    /// # Errors
    ///
    /// Everything [`Codec::peek`] reports, plus a tag `E` does not know and a payload that
    /// does not decode.
    pub fn decode<'a, E: Event>(&self, value: &'a [u8]) -> Result<Envelope<'a, E>, DecodeError> {
        let peeked = self.peek(value)?;
        let data = E::read_payload(&peeked.tag, peeked.data)?;
        Ok(Envelope {
            tag: peeked.tag,
            id: peeked.id,
            source: peeked.source,
            time: peeked.time,
            data,
        })
    }
}

fn encode_cloud_event<E: Event>(event: &E, source: &str) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(br#"{"specversion":"1.0","id":""#);
    write_event_id(&mut out);
    out.extend_from_slice(br#"","source":"#);
    serde_json::to_writer(&mut out, source)?;
    out.extend_from_slice(br#","type":"#);
    serde_json::to_writer(&mut out, event.tag())?;
    out.extend_from_slice(br#","time":""#);
    write!(out, "{}", Timestamp::now()).map_err(serde_json::Error::io)?;
    out.extend_from_slice(br#"","datacontenttype":"application/json","data":"#);
    event.write_payload(&mut out)?;
    out.push(b'}');
    Ok(out)
}

/// Writes the payload's members with the tag beside them, each member's value copied as the
/// JSON text the payload wrote: no trip through `serde_json::Value`, which would turn integers
/// beyond 64 bits into floats (and then the record would not decode into the event again).
fn encode_tagged<E: Event>(event: &E) -> serde_json::Result<Vec<u8>> {
    let mut payload = Vec::with_capacity(256);
    event.write_payload(&mut payload)?;
    let not_an_object = || {
        serde::ser::Error::custom(format_args!(
            "tagged JSON needs the payload of `{}` to be a JSON object",
            event.tag()
        ))
    };
    if payload.trim_ascii_start().first() != Some(&b'{') {
        return Err(not_an_object());
    }
    let Members(members) = serde_json::from_slice(&payload)?;
    let tag = serde_json::to_string(event.tag())?;
    // A member of the payload named like the tag gives way to the tag.
    let mut entries: Vec<(&str, &str)> = members
        .iter()
        .filter(|(key, _)| key != TAG_FIELD)
        .map(|(key, value)| (key.as_ref(), value.get()))
        .collect();
    let position = usize::from(members.first().is_some_and(|(key, _)| key == "id"));
    entries.insert(position.min(entries.len()), (TAG_FIELD, &tag));
    let mut out = Vec::with_capacity(payload.len() + TAG_FIELD.len() + tag.len() + 4);
    out.push(b'{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, key)?;
        out.push(b':');
        out.extend_from_slice(value.as_bytes());
    }
    out.push(b'}');
    Ok(out)
}

/// The members of a JSON object in their order, each value kept as its JSON text.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// A member name, borrowed unless it has escapes.
        #[derive(Deserialize)]
        struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Members<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Key(key)) = map.next_key()? {
                    members.push((key, map.next_value()?));
                }
                Ok(Members(members))
            }
        }

        deserializer.deserialize_map(Visitor)
    }
}

/// Appends a random 128-bit id in UUID version 4 text form.
fn write_event_id(out: &mut Vec<u8>) {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let state = std::collections::hash_map::RandomState::new();
    let word = |salt: u64| {
        let mut h = state.build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed) ^ salt);
        h.finish()
    };
    let bits = (u128::from(word(0x5eed)) << 64) | u128::from(word(0xfeed));
    let bits = (bits & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    for nibble in 0..32 {
        if matches!(nibble, 8 | 12 | 16 | 20) {
            out.push(b'-');
        }
        out.push(HEX[(bits >> (124 - 4 * nibble) & 0xf) as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize, godev_kafka_derive::Event)]
    #[event(crate = "crate", topic = "t", name = "wide")]
    struct Wide {
        big: u128,
        small: i128,
    }

    /// Issue #12 F2: integers beyond 64 bits came back as floats (`1.8446744073709552e+19`)
    /// from a trip through `serde_json::Value`, and the record no longer decoded.
    #[test]
    fn tagged_integers_beyond_64_bits_survive_a_decode_and_encode() {
        let record =
            br#"{"event_type":"wide","big":18446744073709551616,"small":-18446744073709551617}"#;
        let decoded = Codec::Tagged.decode::<Wide>(record).unwrap().data;
        assert_eq!(decoded.big, 18_446_744_073_709_551_616);
        let encoded = Codec::Tagged.encode(&decoded, "s").unwrap();
        assert_eq!(std::str::from_utf8(&encoded), std::str::from_utf8(record));
        assert_eq!(
            Codec::Tagged.decode::<Wide>(&encoded).unwrap().data,
            decoded
        );

        let extremes = Wide {
            big: u128::MAX,
            small: i128::MIN,
        };
        let encoded = Codec::Tagged.encode(&extremes, "s").unwrap();
        assert_eq!(
            std::str::from_utf8(&encoded).unwrap(),
            format!(
                r#"{{"event_type":"wide","big":{},"small":{}}}"#,
                u128::MAX,
                i128::MIN
            )
        );
        assert_eq!(
            Codec::Tagged.decode::<Wide>(&encoded).unwrap().data,
            extremes
        );
    }

    #[derive(Debug, Serialize, Deserialize, godev_kafka_derive::Event)]
    #[event(crate = "crate", topic = "t", name = "raw")]
    struct Raw {
        id: i64,
        number: Box<RawValue>,
        nested: Box<RawValue>,
    }

    #[test]
    fn tagged_json_numbers_of_any_size_are_copied_as_written() {
        let record = br#"{"id":7,"event_type":"raw","number":340282366920938463463374607431768211457123,"nested":{"x":[1e400,-0.0,18446744073709551616]}}"#;
        let decoded = Codec::Tagged.decode::<Raw>(record).unwrap().data;
        let encoded = Codec::Tagged.encode(&decoded, "s").unwrap();
        assert_eq!(std::str::from_utf8(&encoded), std::str::from_utf8(record));
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize, godev_kafka_derive::Event)]
    #[event(crate = "crate", topic = "t", name = "metric.sampled")]
    struct Sampled {
        ratio: f64,
    }

    /// Found by the `tagged_value` fuzz target: without serde_json's `float_roundtrip`, this
    /// value decoded one unit in the last place off (-1.0000000777777779e26 instead of the
    /// nearest float, -1.0000000777777777e26), and changed again on re-encode and decode.
    #[test]
    fn floats_survive_a_decode_and_encode_in_both_codecs() {
        let record = br#"{"event_type":"metric.sampled","ratio":-100000007777777777777777000.0}"#;
        let first = Codec::Tagged.decode::<Sampled>(record).unwrap().data;
        let nearest: f64 = "-100000007777777777777777000.0".parse().unwrap();
        assert_eq!(first.ratio, nearest, "the correctly rounded value");
        for codec in [Codec::Tagged, Codec::CloudEvents] {
            let encoded = codec.encode(&first, "s").unwrap();
            let again = codec.decode::<Sampled>(&encoded).unwrap().data;
            assert_eq!(again, first, "{codec:?}");
        }
    }

    #[test]
    fn tagged_encoding_puts_the_tag_after_a_leading_id_and_replaces_a_payload_event_type() {
        #[derive(Serialize, Deserialize, godev_kafka_derive::Event)]
        #[event(crate = "crate", topic = "t", name = "named")]
        struct Named {
            #[serde(rename = "id")]
            first: u8,
            event_type: String,
            #[serde(rename = "na\"me")]
            name: String,
        }
        let event = Named {
            first: 1,
            event_type: "stale".into(),
            name: "\u{1}x".into(),
        };
        let encoded = Codec::Tagged.encode(&event, "s").unwrap();
        assert_eq!(
            std::str::from_utf8(&encoded).unwrap(),
            r#"{"id":1,"event_type":"named","na\"me":"\u0001x"}"#
        );
    }

    #[test]
    fn event_ids_are_version_4_uuids_and_unique() {
        let id = || {
            let mut out = Vec::new();
            write_event_id(&mut out);
            String::from_utf8(out).unwrap()
        };
        let (a, b) = (id(), id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }
}

//! CloudEvents Kafka protocol binding headers for CloudEvents JSON values.

use confluent_kafka::common::header::{RecordHeader, RecordHeaders};

use crate::Codec;

/// The `content-type` of a structured-mode CloudEvents JSON record.
pub(crate) const CONTENT_TYPE: &str = "application/cloudevents+json; charset=UTF-8";

/// `ce_type`, `ce_id`, `ce_source`, `ce_specversion` and `content-type` when `value` is a
/// CloudEvents 1.0 JSON record (it has `type`, `id` and `source`), else no headers.
pub(crate) fn cloud_events(value: &[u8]) -> RecordHeaders {
    let Ok(event) = Codec::CloudEvents.peek(value) else {
        return RecordHeaders::new();
    };
    let (Some(id), Some(source)) = (&event.id, &event.source) else {
        return RecordHeaders::new();
    };
    let header = |key: &str, value: &str| RecordHeader::new(key.to_owned(), Some(value.into()));
    RecordHeaders::with_header_iter([
        header("ce_type", &event.tag),
        header("ce_id", id),
        header("ce_source", source),
        header("ce_specversion", "1.0"),
        header("content-type", CONTENT_TYPE),
    ])
}

#[cfg(test)]
mod tests {
    use confluent_kafka::common::header::{Header as _, Headers as _};

    use super::*;

    fn pairs(headers: &RecordHeaders) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|h| {
                (
                    h.key().to_owned(),
                    String::from_utf8(h.value().unwrap().to_vec()).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn cloud_events_values_get_the_binding_headers() {
        let value = br#"{"specversion":"1.0","id":"e-1","source":"svc","type":"user.created","time":"2024-01-01T00:00:00Z","datacontenttype":"application/json","data":{"user_id":1}}"#;
        assert_eq!(
            pairs(&cloud_events(value)),
            [
                ("ce_type", "user.created"),
                ("ce_id", "e-1"),
                ("ce_source", "svc"),
                ("ce_specversion", "1.0"),
                ("content-type", CONTENT_TYPE),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn other_values_get_none() {
        // The Go kit's tagged JSON: numeric id, no source, no `type`.
        let go = br#"{"id":17,"event_type":"user.created","user_id":1,"email":"a@b","data":null,"timestamp":"2024-01-01T00:00:00Z"}"#;
        assert!(pairs(&cloud_events(go)).is_empty());
        assert!(pairs(&cloud_events(b"not json")).is_empty());
        assert!(pairs(&cloud_events(br#"{"type":"x"}"#)).is_empty());
        // Another CloudEvents version is not labelled 1.0.
        let v03 = br#"{"specversion":"0.3","id":"1","source":"s","type":"t"}"#;
        assert!(pairs(&cloud_events(v03)).is_empty());
    }
}

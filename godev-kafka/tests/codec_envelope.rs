//! Envelope round trips for both codecs, and byte-compatibility with the Go kit's JSON.

use godev_kafka::Event;
use godev_kafka::event::{Codec, DecodeError, Timestamp};
use serde::{Deserialize, Serialize};

/// The Go kit's `entity.UserEvent` fields, in its struct order (id and event_type first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UserData {
    id: i64,
    user_id: i64,
    email: String,
    data: serde_json::Value,
    timestamp: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Event)]
#[event(topic = "user_events", key = "user_id")]
enum UserEvent {
    #[event(name = "user.created")]
    Created(UserData),
    #[event(name = "user.updated")]
    Updated(UserData),
    #[event(name = "user.deleted")]
    Deleted(UserData),
}

/// What Go's `json.Marshal` writes for a kit `UserEvent` (map keys sorted, time RFC 3339 nano).
const GO_USER_CREATED: &str = r#"{"id":1732800000123456789,"event_type":"user.created","user_id":1,"email":"user@example.com","data":{"name":"John Doe","source":"web"},"timestamp":"2024-11-28T13:20:00.1234567+07:00"}"#;
const GO_USER_DELETED_NO_DATA: &str = r#"{"id":1732800000000000000,"event_type":"user.deleted","user_id":1,"email":"user@example.com","data":null,"timestamp":"2024-11-28T06:20:00Z"}"#;

#[test]
fn go_kit_user_events_decode_and_encode_to_the_same_bytes() {
    for go_json in [GO_USER_CREATED, GO_USER_DELETED_NO_DATA] {
        let decoded = Codec::Tagged
            .decode::<UserEvent>(go_json.as_bytes())
            .unwrap();
        let encoded = Codec::Tagged.encode(&decoded.data, "ignored").unwrap();
        assert_eq!(String::from_utf8(encoded).unwrap(), go_json);
    }
}

#[test]
fn go_kit_json_routes_on_event_type() {
    let decoded = Codec::Tagged
        .decode::<UserEvent>(GO_USER_CREATED.as_bytes())
        .unwrap();
    assert_eq!(decoded.tag, "user.created");
    let UserEvent::Created(user) = decoded.data else {
        panic!("wrong variant: {:?}", decoded.data)
    };
    assert_eq!((user.user_id, user.email.as_str()), (1, "user@example.com"));
    assert_eq!(user.data["name"], "John Doe");
    assert_eq!(
        user.timestamp.to_string(),
        "2024-11-28T13:20:00.1234567+07:00"
    );
    let deleted = Codec::Tagged
        .decode::<UserEvent>(GO_USER_DELETED_NO_DATA.as_bytes())
        .unwrap();
    assert!(matches!(
        deleted.data,
        UserEvent::Deleted(UserData {
            data: serde_json::Value::Null,
            ..
        })
    ));
}

#[test]
fn cloud_events_round_trip_with_envelope_attributes() {
    let event = UserEvent::Updated(UserData {
        id: 5,
        user_id: 42,
        email: "x@example.com".into(),
        data: serde_json::json!({"plan": "pro"}),
        timestamp: Timestamp::from_unix_nanos(1_700_000_000_000_000_000),
    });
    let bytes = Codec::CloudEvents
        .encode(&event, "godev-kit/users")
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(value["specversion"], "1.0");
    assert_eq!(value["type"], "user.updated");
    assert_eq!(value["source"], "godev-kit/users");
    assert_eq!(value["datacontenttype"], "application/json");
    assert_eq!(value["data"]["user_id"], 42);
    assert_eq!(value["id"].as_str().unwrap().len(), 36);
    let envelope = Codec::CloudEvents.decode::<UserEvent>(&bytes).unwrap();
    assert_eq!(envelope.data, event);
    assert_eq!(envelope.tag, "user.updated");
    assert_eq!(envelope.source.as_deref(), Some("godev-kit/users"));
    assert_eq!(envelope.id.as_deref(), value["id"].as_str());
    let sent_at = envelope.time.unwrap().unix_nanos();
    assert!(
        (Timestamp::now().unix_nanos() - sent_at).abs() < 60_000_000_000,
        "time is the send time"
    );
}

#[test]
fn the_tag_is_read_without_decoding_the_payload() {
    // The payload does not fit UserData, yet the tag is readable: routing never decodes.
    let cloud = br#"{"specversion":"1.0","id":"1","source":"s","type":"user.created","data":{"unexpected":true}}"#;
    let peeked = Codec::CloudEvents.peek(cloud).unwrap();
    assert_eq!(
        (peeked.tag.as_ref(), peeked.data),
        ("user.created", r#"{"unexpected":true}"#)
    );
    let tagged = br#"{"event_type":"user.created","unexpected":true}"#;
    assert_eq!(Codec::Tagged.peek(tagged).unwrap().tag, "user.created");
    assert!(matches!(
        Codec::CloudEvents.decode::<UserEvent>(cloud),
        Err(DecodeError::Payload { ref tag, .. }) if tag == "user.created"
    ));
}

#[test]
fn decode_errors_say_what_is_wrong() {
    let cases: [(Codec, &[u8], &str); 6] = [
        (Codec::Tagged, b"not json", "not a valid tagged JSON record"),
        (Codec::Tagged, br#"{"id":1}"#, "no `event_type` member"),
        (
            Codec::CloudEvents,
            br#"{"specversion":"1.0","data":{}}"#,
            "no `type` member",
        ),
        (
            Codec::CloudEvents,
            br#"{"specversion":"0.3","type":"user.created"}"#,
            "unsupported CloudEvents specversion `0.3`",
        ),
        (
            Codec::Tagged,
            br#"{"event_type":"user.banned"}"#,
            "tag `user.banned` is not one of",
        ),
        (
            Codec::Tagged,
            br#"{"event_type":"user.created","id":"x"}"#,
            "payload of `user.created` does not decode",
        ),
    ];
    for (codec, input, expected) in cases {
        let error = codec.decode::<UserEvent>(input).unwrap_err().to_string();
        assert!(
            error.contains(expected),
            "{error:?} should contain {expected:?}"
        );
    }
}

#[test]
fn tagged_encoding_needs_an_object_payload() {
    #[derive(Debug, Serialize, Deserialize, Event)]
    #[event(topic = "t", name = "numbers")]
    struct Numbers(Vec<u32>);
    let error = Codec::Tagged.encode(&Numbers(vec![1]), "s").unwrap_err();
    assert!(error.to_string().contains("JSON object"), "{error}");
    assert!(Codec::CloudEvents.encode(&Numbers(vec![1]), "s").is_ok());
}

//! `#[derive(Event)]` on structs and enums: constants, tags, keys and payload round trips.

use godev_kafka::Event;
use godev_kafka::event::DecodeError;
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize, Event)]
#[event(topic = "user_events", name = "user.created", key = "user_id")]
struct UserCreated {
    user_id: i64,
    email: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, Event)]
#[event(topic = "audit", name = "audit.logged")]
struct Audited {
    line: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Failure {
    user_id: i64,
    reason: String,
}

#[derive(Debug, PartialEq, Event)]
#[event(topic = "translation_events", key = "user_id")]
enum TranslationEvent {
    #[event(name = "translation.completed")]
    Completed {
        user_id: i64,
        #[serde(rename = "wordCount")]
        words: u32,
    },
    #[event(name = "translation.failed")]
    Failed(Failure),
    #[event(name = "translation.retried", key = "job")]
    Retried { job: String, user_id: i64 },
    #[event(name = "translation.pair")]
    Pair(i64, String),
    #[event(name = "translation.heartbeat")]
    Heartbeat,
}

fn payload<E: Event>(event: &E) -> String {
    let mut out = Vec::new();
    event.write_payload(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn round_trip<E: Event + std::fmt::Debug + PartialEq>(event: E, json: &str) {
    assert_eq!(payload(&event), json);
    assert_eq!(E::read_payload(event.tag(), json).unwrap(), event);
}

#[test]
fn struct_constants_tag_and_key() {
    let event = UserCreated {
        user_id: 7,
        email: "a@example.com".into(),
    };
    assert_eq!(UserCreated::TOPIC, "user_events");
    assert_eq!(UserCreated::TAGS, &["user.created"]);
    assert_eq!(event.tag(), "user.created");
    assert_eq!(event.key(), Some(b"7".to_vec()));
    assert_eq!(Audited { line: "x".into() }.key(), None);
}

#[test]
fn struct_payload_round_trips() {
    round_trip(
        UserCreated {
            user_id: 7,
            email: "a@example.com".into(),
        },
        r#"{"user_id":7,"email":"a@example.com"}"#,
    );
}

#[test]
fn struct_rejects_other_tags_and_bad_payloads() {
    let error = UserCreated::read_payload("user.deleted", "{}").unwrap_err();
    assert!(
        matches!(&error, DecodeError::UnknownTag { tag, expected } if tag == "user.deleted" && *expected == ["user.created"]),
        "{error:?}"
    );
    let error = UserCreated::read_payload("user.created", r#"{"user_id":"x"}"#).unwrap_err();
    assert!(
        matches!(&error, DecodeError::Payload { tag, .. } if tag == "user.created"),
        "{error:?}"
    );
}

#[test]
fn enum_constants_and_tags() {
    assert_eq!(TranslationEvent::TOPIC, "translation_events");
    assert_eq!(
        TranslationEvent::TAGS,
        &[
            "translation.completed",
            "translation.failed",
            "translation.retried",
            "translation.pair",
            "translation.heartbeat",
        ]
    );
    assert_eq!(TranslationEvent::Heartbeat.tag(), "translation.heartbeat");
    assert_eq!(
        TranslationEvent::Pair(1, "x".into()).tag(),
        "translation.pair"
    );
}

#[test]
fn enum_keys_follow_the_enum_then_the_variant() {
    let completed = TranslationEvent::Completed {
        user_id: 7,
        words: 3,
    };
    assert_eq!(completed.key(), Some(b"7".to_vec()));
    // A newtype variant's key is the wrapped struct's field.
    let failed = TranslationEvent::Failed(Failure {
        user_id: 8,
        reason: "timeout".into(),
    });
    assert_eq!(failed.key(), Some(b"8".to_vec()));
    // A variant's own key wins over the enum's.
    let retried = TranslationEvent::Retried {
        job: "job-1".into(),
        user_id: 9,
    };
    assert_eq!(retried.key(), Some(b"job-1".to_vec()));
    // Variants without named fields are unkeyed.
    assert_eq!(TranslationEvent::Pair(1, "x".into()).key(), None);
    assert_eq!(TranslationEvent::Heartbeat.key(), None);
}

#[test]
fn enum_payloads_round_trip_by_shape() {
    round_trip(
        TranslationEvent::Completed {
            user_id: 7,
            words: 3,
        },
        r#"{"user_id":7,"wordCount":3}"#,
    );
    round_trip(
        TranslationEvent::Failed(Failure {
            user_id: 8,
            reason: "timeout".into(),
        }),
        r#"{"user_id":8,"reason":"timeout"}"#,
    );
    round_trip(
        TranslationEvent::Retried {
            job: "job-1".into(),
            user_id: 9,
        },
        r#"{"job":"job-1","user_id":9}"#,
    );
    round_trip(TranslationEvent::Pair(1, "x".into()), r#"[1,"x"]"#);
    round_trip(TranslationEvent::Heartbeat, "{}");
}

#[test]
fn unit_variant_also_decodes_from_null() {
    assert_eq!(
        TranslationEvent::read_payload("translation.heartbeat", "null").unwrap(),
        TranslationEvent::Heartbeat
    );
}

#[test]
fn enum_rejects_unknown_tags_and_mismatched_payloads() {
    let error = TranslationEvent::read_payload("translation.started", "{}").unwrap_err();
    assert!(
        matches!(&error, DecodeError::UnknownTag { tag, expected } if tag == "translation.started" && expected.len() == 5),
        "{error:?}"
    );
    let error = TranslationEvent::read_payload("translation.pair", "{}").unwrap_err();
    assert!(
        matches!(&error, DecodeError::Payload { tag, .. } if tag == "translation.pair"),
        "{error:?}"
    );
}

mod renamed_crate {
    extern crate godev_kafka as renamed;

    use renamed::Event;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize, Event)]
    #[event(crate = "renamed", topic = "t", name = "n", key = "id")]
    struct Renamed {
        id: u32,
    }

    #[derive(Debug, PartialEq, Event)]
    #[event(crate = "renamed", topic = "t")]
    enum RenamedEnum {
        #[event(name = "a")]
        A { id: u32 },
        #[event(name = "b")]
        B,
    }

    #[test]
    fn crate_path_can_be_overridden() {
        assert_eq!(Renamed { id: 1 }.key(), Some(b"1".to_vec()));
        assert_eq!(Renamed::TOPIC, "t");
        let mut out = Vec::new();
        RenamedEnum::A { id: 2 }.write_payload(&mut out).unwrap();
        assert_eq!(out, br#"{"id":2}"#);
        assert_eq!(
            RenamedEnum::read_payload("b", "{}").unwrap(),
            RenamedEnum::B
        );
    }
}

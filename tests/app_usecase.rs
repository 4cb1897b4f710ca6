//! The godev-kit use case and repository on the in-memory backend: event types, keys,
//! switches, raw messages, and handler logs without personal data.
//!
//! Run: `cargo test -p godev-kit --test app_usecase`

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use godev_kafka::event::Timestamp;
use godev_kafka::partitioner::partition_for_key;
use godev_kafka::transport::memory::MemoryTransport;
use godev_kafka::{Codec, Context, Manager, Producer, TopicMap};
use godev_kit::Error;
use godev_kit::entity::{TRANSLATION_COMPLETED, TRANSLATION_REQUESTED, UserData, UserEvent};
use godev_kit::repo::{KafkaManagerRepo, KafkaRepo};
use godev_kit::usecase::handled::wait_for_ids;
use godev_kit::usecase::{KafkaEventUseCase, handlers};
use serde_json::{Value, json};

const PARTITIONS: i32 = 6;

fn app() -> (MemoryTransport, Arc<KafkaManagerRepo>) {
    let transport = MemoryTransport::new(PARTITIONS);
    let topics = TopicMap::from_iter([
        ("user_events", "user-events"),
        ("translation_events", "translation-events"),
    ]);
    let shared = Arc::new(transport.clone());
    let producer = Producer::with_transport(shared.clone(), topics, Codec::Tagged, "t");
    let repo = KafkaManagerRepo::with_manager(Manager::new(shared, producer, "godev-kit"));
    (transport, Arc::new(repo))
}

#[tokio::test]
async fn unknown_event_types_are_refused_before_anything_is_sent() {
    let (transport, repo) = app();
    let events = KafkaEventUseCase::new(repo);
    let error = events
        .produce_user_event("user.banned", 1, "a@example.com", Value::Null)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::UnknownEventType { .. }));
    assert_eq!(
        error.to_string(),
        r#"unknown user event type `user.banned`; expected one of ["user.created", "user.updated", "user.deleted"]"#
    );
    let error = events
        .produce_translation_event("user.created", 1, "en", "es", "hi", "")
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("unknown translation event type `user.created`")
    );
    for topic in ["user-events", "translation-events"] {
        let total: i64 = (0..PARTITIONS)
            .map(|p| transport.end_offset(topic, p))
            .sum();
        assert_eq!(total, 0, "nothing sent to {topic}");
    }
}

#[tokio::test]
async fn a_users_translation_events_share_a_partition_unlike_the_go_kit_keys() {
    let (transport, repo) = app();
    let events = KafkaEventUseCase::new(repo);
    let mut go_split = 0;
    for user in 1..=20_i64 {
        let requested = events
            .produce_translation_event(TRANSLATION_REQUESTED, user, "en", "es", "Hello", "")
            .await
            .unwrap();
        let completed = events
            .produce_translation_event(TRANSLATION_COMPLETED, user, "en", "es", "Hello", "Hola")
            .await
            .unwrap();
        let key = user.to_string();
        assert_eq!(requested.delivery.partition, completed.delivery.partition);
        assert_eq!(
            requested.delivery.partition,
            partition_for_key(key.as_bytes(), PARTITIONS)
        );
        let record = &transport.records("translation-events", requested.delivery.partition)
            [requested.delivery.offset as usize];
        assert_eq!(record.key.as_deref(), Some(key.as_bytes()));
        assert!(completed.id > requested.id, "ids increase");
        // The Go kit's `<user_id>-<event_type>` keys.
        let go = |t: &str| partition_for_key(format!("{user}-{t}").as_bytes(), PARTITIONS);
        if go(TRANSLATION_REQUESTED) != go(TRANSLATION_COMPLETED) {
            go_split += 1;
        }
    }
    assert!(
        go_split > 0,
        "the Go kit's keys split some users' events over partitions"
    );
}

#[tokio::test]
async fn user_events_are_the_go_kits_json_keyed_by_user_id() {
    let (transport, repo) = app();
    let events = KafkaEventUseCase::new(repo);
    let sent = events
        .produce_user_event("user.created", 42, "u@example.com", json!({"name": "John"}))
        .await
        .unwrap();
    let record = &transport.records("user-events", sent.delivery.partition)[0];
    assert_eq!(record.key.as_deref(), Some(&b"42"[..]));
    let value: Value = serde_json::from_slice(&record.value).unwrap();
    let keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["id", "event_type", "user_id", "email", "data", "timestamp"]
    );
    assert_eq!(value["id"], sent.id);
    assert_eq!(value["event_type"], "user.created");
    let timestamp: Timestamp = value["timestamp"].as_str().unwrap().parse().unwrap();
    assert!((Timestamp::now().unix_nanos() - timestamp.unix_nanos()).abs() < 60_000_000_000);
}

#[tokio::test]
async fn send_message_json_encodes_and_the_switches_work() {
    let (transport, repo) = app();
    let delivery = repo
        .send_message("custom-topic", b"custom-key", &json!({"message": "Hello"}))
        .await
        .unwrap();
    let record = &transport.records("custom-topic", delivery.partition)[0];
    assert_eq!(record.key.as_deref(), Some(&b"custom-key"[..]));
    assert_eq!(record.value, br#"{"message":"Hello"}"#);
    let unkeyed = repo
        .send_message("custom-topic", b"", &"plain")
        .await
        .unwrap();
    let record = &transport.records("custom-topic", unkeyed.partition)[unkeyed.offset as usize];
    assert_eq!(
        (record.key.as_deref(), &record.value[..]),
        (None, &br#""plain""#[..])
    );

    repo.disable_producer();
    assert!(!repo.is_producer_enabled() && !repo.status().producer_enabled);
    assert!(repo.send_message("custom-topic", b"k", &1).await.is_err());
    repo.enable_producer();
    assert!(repo.send_message("custom-topic", b"k", &1).await.is_ok());

    let events = KafkaEventUseCase::new(repo.clone());
    events.consume_user_events().unwrap();
    events.consume_translation_events().unwrap();
    assert_eq!(repo.status().consumer_count, 2);
    repo.start_all_consumers();
    repo.disable_consumer().await.unwrap();
    assert!(!repo.is_consumer_enabled());
    // Produced while consumers are off: handled once they are on again.
    let mut reports = events.subscribe();
    let sent = events
        .produce_user_event("user.updated", 5, "x@example.com", Value::Null)
        .await
        .unwrap();
    repo.enable_consumer().await;
    assert!(repo.is_consumer_enabled());
    let handled = wait_for_ids(&mut reports, &[sent.id], Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(handled[0].event_type, "user.updated");
    repo.close().await.unwrap();
    assert!(!repo.is_producer_enabled(), "closed");
}

/// Collects what the fmt subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs_at(level: tracing::Level, run: impl FnOnce()) -> String {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, run);
    String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn handlers_log_no_personal_data_at_info() {
    let event = UserEvent::Created(UserData {
        id: 1,
        user_id: 9,
        email: "secret@example.com".into(),
        data: json!({"phone": "+1-555-0100"}),
        timestamp: Timestamp::now(),
    });
    let call = || {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(handlers::on_user_event(
                event.clone(),
                Context::for_test("user-events", "user.created"),
            ))
            .unwrap();
    };
    let info = logs_at(tracing::Level::INFO, call);
    assert!(
        info.contains("user event handled") && info.contains("user_id=9"),
        "{info}"
    );
    assert!(
        !info.contains("secret@example.com") && !info.contains("555"),
        "{info}"
    );
    let debug = logs_at(tracing::Level::DEBUG, call);
    assert!(
        debug.contains("secret@example.com"),
        "debug may show the payload: {debug}"
    );
}

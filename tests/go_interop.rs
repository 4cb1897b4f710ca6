//! Go and Rust share topics: a Go program on segmentio/kafka-go (the Go kit's library, in
//! `interop/go/`) writes the kit's `UserEvent`s that our consumer dispatches by `event_type`,
//! and reads ours back into the kit's struct; on each backend × broker pair (kafka-go speaks
//! to Kafka 3.9 and to Kafka 4).
//!
//! Run: `GODEV_KAFKA_BROKERS=127.0.0.1:9092 GODEV_KAFKA4_BROKERS=127.0.0.1:9094 cargo test -p godev-kit --features broker-tests,confluent --test go_interop`
//! (needs Go; the program is built once per run into the target directory).

mod support;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use godev_kafka::event::Timestamp;
use godev_kafka::{Codec, Config, testing};
use godev_kit::entity::{UserData, UserEvent};
use godev_kit::repo::{KafkaManagerRepo, KafkaRepo};
use godev_kit::usecase::KafkaEventUseCase;
use godev_kit::usecase::handled::wait_for_ids;
use serde_json::{Value, json};
use support::Backend;

on_each_backend!(
    go_kit_events_written_by_kafka_go_reach_our_user_handler_by_event_type,
    our_events_are_read_by_kafka_go_into_the_go_kit_struct,
);

/// Runs the Go program; its stdout, or a panic with its stderr.
async fn go(args: Vec<String>) -> String {
    let program = support::go::go_program();
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&program)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("interop {args:?} took more than 60 s"))
    .expect("run the Go program");
    assert!(
        output.status.success(),
        "interop {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// An app repository on the real broker through `backend`: Go-kit JSON, `user_events` →
/// `topic`, its own group.
async fn repo(backend: Backend, brokers: &str, topic: &str) -> Arc<KafkaManagerRepo> {
    let text = format!(
        r#"
        [kafka]
        brokers = [{brokers:?}]
        client = {client:?}
        group_id = {group:?}
        codec = "tagged"
        [kafka.topics]
        user_events = {topic:?}
        [kafka.consumer]
        session_timeout_ms = 6000
        heartbeat_interval_ms = 500
        commit_interval_ms = 200
        "#,
        client = backend.client(),
        group = testing::unique_name("go-interop"),
    );
    let config = Config::from_toml(&text, "go_interop", |_| None).expect("valid config");
    Arc::new(KafkaManagerRepo::new(&config).await.expect("connect"))
}

async fn go_kit_events_written_by_kafka_go_reach_our_user_handler_by_event_type(backend: Backend) {
    let brokers = backend.brokers().await;
    let topic = testing::unique_name("go-to-rust-user-events");
    testing::create_topic(&brokers, &topic, 2).await.unwrap();
    let mut written = Vec::new();
    for (event_type, data) in [("user.created", r#"{"plan":"free"}"#), ("user.deleted", "")] {
        let args = [
            "write",
            "-brokers",
            &brokers,
            "-topic",
            &topic,
            "-type",
            event_type,
            "-user",
            "7",
            "-email",
            "go@example.com",
            "-data",
            data,
        ];
        let line = go(args.iter().map(|s| s.to_string()).collect()).await;
        let value: Value = serde_json::from_str(line.trim()).expect("the JSON Go wrote");
        // The Go kit's UserEvent, as encoding/json writes it, decodes byte for byte.
        let decoded = Codec::Tagged
            .decode::<UserEvent>(line.trim().as_bytes())
            .expect("Go-kit JSON decodes");
        assert_eq!(
            Codec::Tagged.encode(&decoded.data, "").unwrap(),
            line.trim().as_bytes(),
            "and re-encodes to the same bytes"
        );
        written.push((value["id"].as_i64().unwrap(), event_type));
    }

    let repo = repo(backend, &brokers, &topic).await;
    let events = KafkaEventUseCase::new(repo.clone());
    let mut reports = events.subscribe();
    events.consume_user_events().unwrap();
    repo.start_all_consumers();
    let ids: Vec<i64> = written.iter().map(|(id, _)| *id).collect();
    let handled = wait_for_ids(&mut reports, &ids, Duration::from_secs(60))
        .await
        .unwrap_or_else(|missing| panic!("{missing}"));
    repo.close().await.unwrap();

    for (report, (id, event_type)) in handled.iter().zip(&written) {
        assert_eq!(report.id, *id);
        assert_eq!(report.event_type, *event_type, "dispatched by event_type");
        assert_eq!((report.user_id, report.topic.as_str()), (7, topic.as_str()));
    }
}

async fn our_events_are_read_by_kafka_go_into_the_go_kit_struct(backend: Backend) {
    let brokers = backend.brokers().await;
    let topic = testing::unique_name("rust-to-go-user-events");
    testing::create_topic(&brokers, &topic, 3).await.unwrap();
    let repo = repo(backend, &brokers, &topic).await;
    let events = KafkaEventUseCase::new(repo.clone());
    let created = events
        .produce_user_event(
            "user.created",
            7,
            "rust@example.com",
            json!({"plan": "pro", "n": 1}),
        )
        .await
        .unwrap();
    let deleted = events
        .produce_user_event("user.deleted", 7, "rust@example.com", Value::Null)
        .await
        .unwrap();
    // A hand-built event with a non-UTC offset, to check the timestamp survives Go's time.Time.
    let updated = UserEvent::Updated(UserData {
        id: 42,
        user_id: 7,
        email: "rust@example.com".into(),
        data: json!({"name": "Jane"}),
        timestamp: "2024-11-28T13:20:00.1234567+07:00"
            .parse::<Timestamp>()
            .unwrap(),
    });
    repo.send_event(&updated).await.unwrap();
    repo.close().await.unwrap();

    let out = go(["read", "-brokers", &brokers, "-topic", &topic, "-n", "3"]
        .iter()
        .map(|s| s.to_string())
        .collect())
    .await;
    let mut read: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    read.sort_by_key(|r| r["offset"].as_i64());
    assert_eq!(read.len(), 3, "{out}");
    for r in &read {
        assert_eq!(r["key"], "7", "keyed by the decimal user id");
        assert_eq!(
            r["partition"], read[0]["partition"],
            "one user, one partition"
        );
    }
    let events: Vec<&Value> = read.iter().map(|r| &r["event"]).collect();
    assert_eq!(events[0]["event_type"], "user.created");
    assert_eq!(events[0]["id"], created.id);
    assert_eq!(events[0]["email"], "rust@example.com");
    assert_eq!(events[0]["data"], json!({"n": 1, "plan": "pro"}));
    assert_eq!(events[1]["event_type"], "user.deleted");
    assert_eq!(events[1]["id"], deleted.id);
    assert_eq!(events[1]["data"], Value::Null);
    // Go decoded the whole struct and wrote it back: the same JSON we sent.
    let ours: Value = serde_json::from_slice(&Codec::Tagged.encode(&updated, "").unwrap()).unwrap();
    assert_eq!(events[2], &ours);
    assert_eq!(events[2]["timestamp"], "2024-11-28T13:20:00.1234567+07:00");
}

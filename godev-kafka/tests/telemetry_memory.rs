//! The metrics of issue #16 on the in-memory backend, read back from `metrics-util`'s
//! debugging recorder: after N handled, K retried and D dead-lettered records the counters
//! say exactly N, K and D.
//!
//! Run: `cargo test -p godev-kafka --features metrics --test telemetry_memory`. The recorder
//! is the process's global one, so this file holds one test.
#![cfg(feature = "metrics")]

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use godev_kafka::consumer::ConsumerSettings;
use godev_kafka::telemetry;
use godev_kafka::transport::memory::MemoryTransport;
use godev_kafka::{Consumer, Event, HandlerError, Producer, TopicMap, handler};
use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, Event)]
#[event(topic = "pings", name = "ping", key = "n")]
struct Ping {
    n: u64,
}

/// Pings whose first call failed.
static FAILED_ONCE: Mutex<Option<HashSet<u64>>> = Mutex::new(None);

/// Pings ending in 0 fail once, then pass; those ending in 5 fail for good; the rest pass.
#[handler]
async fn on_ping(ping: Ping) -> Result<(), HandlerError> {
    match ping.n % 10 {
        0 if FAILED_ONCE
            .lock()
            .unwrap()
            .get_or_insert_with(HashSet::new)
            .insert(ping.n) =>
        {
            Err(HandlerError::retriable("not yet"))
        }
        5 => Err(HandlerError::permanent("never")),
        _ => Ok(()),
    }
}

/// What the debugging recorder held: a series' key, its unit and description, its value.
type Snapshot = Vec<(
    CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
)>;

/// The sum of counter `name` over the series whose labels include `group` (when given).
fn counter(snapshot: &Snapshot, name: &str, group: Option<&str>) -> u64 {
    snapshot
        .iter()
        .filter(|(key, _, _, _)| key.key().name() == name)
        .filter(|(key, _, _, _)| {
            group.is_none_or(|g| {
                key.key()
                    .labels()
                    .any(|l| l.key() == "messaging.consumer.group.name" && l.value() == g)
            })
        })
        .map(|(_, _, _, value)| match value {
            DebugValue::Counter(n) => *n,
            other => panic!("{name} is not a counter: {other:?}"),
        })
        .sum()
}

/// The labels of every series of `name`, each sorted, for checking what they carry.
fn series(snapshot: &Snapshot, name: &str) -> Vec<Vec<(String, String)>> {
    snapshot
        .iter()
        .filter(|(key, _, _, _)| key.key().name() == name)
        .map(|(key, _, _, _)| {
            let mut labels: Vec<(String, String)> = key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            labels
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_say_exactly_what_was_handled_retried_and_dead_lettered() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this process");

    let transport = MemoryTransport::new(2);
    transport.create_topic("pings", 2);
    let producer = Producer::new(transport.clone(), TopicMap::default());
    // 100 pings: 10 fail once (K = 10 retries), 10 fail for good, so N = 90 handled; one
    // record that is not JSON: D = 10 + 1 dead letters.
    for n in 0..100 {
        producer.send(&Ping { n }).await.unwrap();
    }
    producer
        .send_raw("pings", Some(b"x"), b"not json".to_vec())
        .await
        .unwrap();
    let settings = ConsumerSettings {
        poll_wait: Duration::from_millis(10),
        commit_interval: Duration::from_millis(10),
        backoff: Duration::from_millis(1),
        ..ConsumerSettings::default()
    };
    let running = Consumer::builder(transport.clone(), "metered")
        .settings(settings)
        .handler::<on_ping>()
        .build()
        .unwrap()
        .start();
    let ends = [
        transport.end_offset("pings", 0),
        transport.end_offset("pings", 1),
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while (0..2).any(|p| transport.committed("metered", "pings", p) != Some(ends[p as usize])) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every record committed within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    running.shutdown().await.unwrap();

    let group = Some("metered");
    // One snapshot: taking one drains what the recorder holds.
    let snapshot = snapshotter.snapshot().into_vec();
    assert_eq!(counter(&snapshot, telemetry::CONSUMED_MESSAGES, group), 101);
    assert_eq!(counter(&snapshot, telemetry::HANDLED, group), 90);
    assert_eq!(counter(&snapshot, telemetry::RETRIES, group), 10);
    assert_eq!(counter(&snapshot, telemetry::DEAD_LETTERED, group), 11);
    assert_eq!(counter(&snapshot, telemetry::REBALANCES, group), 1);
    // 100 typed and 1 raw send of the test, and the 11 dead letters.
    assert_eq!(counter(&snapshot, telemetry::SENT_MESSAGES, None), 112);

    let reasons: HashSet<String> = series(&snapshot, telemetry::DEAD_LETTERED)
        .into_iter()
        .flat_map(|labels| labels.into_iter())
        .filter(|(k, _)| k == "godev_kafka.dead_letter.reason")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        reasons,
        HashSet::from(["permanent".to_owned(), "malformed".to_owned()])
    );
    for labels in series(&snapshot, telemetry::HANDLED) {
        let keys: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "godev_kafka.event.type",
                "messaging.consumer.group.name",
                "messaging.destination.name",
                "messaging.destination.partition.id",
                "messaging.system",
            ],
            "no key or payload among the labels"
        );
        assert!(labels.contains(&("godev_kafka.event.type".into(), "ping".into())));
    }
}

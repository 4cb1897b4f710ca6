//! The metrics of issue #16 on a real broker, on every backend: after N handled, K retried
//! and D dead-lettered records the counters say exactly N, K and D, and while a handler holds
//! a partition its lag gauge equals the end offset minus the committed offset read through
//! the admin helpers.
//!
//! Run: `GODEV_KAFKA_BROKERS=127.0.0.1:9092 GODEV_KAFKA4_BROKERS=127.0.0.1:9094 cargo test -p
//! godev-kit --features broker-tests,metrics,native,confluent --test kafka_metrics`

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use godev_kafka::{Consumer, Event, HandlerError, Producer, TopicMap, handler, telemetry, testing};
use serde::{Deserialize, Serialize};
use support::Backend;

#[derive(Debug, Serialize, Deserialize, Event)]
#[event(topic = "metered", name = "metered.ping", key = "n")]
struct Ping {
    n: u64,
}

/// Per real topic: the pings whose first call failed, and whether ping 20 may pass.
#[derive(Default)]
struct State {
    failed_once: BTreeSet<u64>,
    released: bool,
}

static STATE: Mutex<BTreeMap<String, State>> = Mutex::new(BTreeMap::new());

/// Pings ending in 0 fail once, those ending in 5 for good; ping 20 waits for its release.
#[handler]
async fn on_ping(ping: Ping, ctx: godev_kafka::Context) -> Result<(), HandlerError> {
    let topic = ctx.topic().to_owned();
    while ping.n == 20
        && !STATE
            .lock()
            .unwrap()
            .entry(topic.clone())
            .or_default()
            .released
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let first = STATE
        .lock()
        .unwrap()
        .entry(topic)
        .or_default()
        .failed_once
        .insert(ping.n);
    match ping.n % 10 {
        0 if first => Err(HandlerError::retriable("not yet")),
        5 => Err(HandlerError::permanent("never")),
        _ => Ok(()),
    }
}

on_each_backend!(counters_and_lag_say_what_the_consumer_did);

/// 40 pings on 2 partitions: 4 fail once (K = 4 retries), 4 for good (D = 4), N = 36.
async fn counters_and_lag_say_what_the_consumer_did(backend: Backend) {
    let kept = support::metrics::kept();
    let brokers = backend.brokers().await;
    let topic = testing::unique_name("metered");
    let group = testing::unique_name("metered-group");
    testing::create_topic(&brokers, &topic, 2).await.unwrap();
    let transport = backend.transport(&brokers).await;
    let topics = TopicMap::from_iter([("metered", topic.as_str())]);
    let producer = Producer::with_transport(
        transport.clone(),
        topics.clone(),
        godev_kafka::Codec::default(),
        "metrics-test",
    );
    for n in 0..40 {
        producer.send(&Ping { n }).await.unwrap();
    }
    let mut settings = backend.consumer_settings();
    settings.backoff = Duration::from_millis(10);
    let running = Consumer::builder_shared(transport.clone(), &group)
        .topics(topics)
        .settings(settings)
        .handler::<on_ping>()
        .build()
        .unwrap()
        .start();
    let by_group = ("messaging.consumer.group.name", group.as_str());

    // Ping 20 holds its partition: that partition's lag is its end offset minus its
    // committed offset (which cannot move while ping 20 is held).
    let held_key = Ping { n: 20 }.key().expect("pings are keyed");
    let held = godev_kafka::partitioner::partition_for_key(&held_key, 2);
    let lag_of_held = || {
        kept.gauges(
            telemetry::LAG,
            by_group,
            "messaging.destination.partition.id",
        )
        .get(&held.to_string())
        .copied()
    };
    let ends = testing::end_offsets(&brokers, &topic).await.unwrap();
    support::wait_until(
        "the held partition's lag equals its end minus its committed offset",
        Duration::from_secs(60),
        || async {
            let committed = testing::committed_offsets(&brokers, &group, &topic)
                .await
                .unwrap_or_default();
            let lag = lag_of_held();
            running.has_stopped()
                || committed.get(&held).is_some_and(|c| {
                    *c > 0 && lag == Some((ends[&held] - c) as f64) && lag > Some(0.0)
                })
        },
    )
    .await;
    assert!(!running.has_stopped(), "the consumer stopped");

    STATE
        .lock()
        .unwrap()
        .entry(topic.clone())
        .or_default()
        .released = true;
    support::wait_until(
        "every record committed",
        Duration::from_secs(60),
        || async {
            let committed = testing::committed_offsets(&brokers, &group, &topic)
                .await
                .unwrap_or_default();
            running.has_stopped() || ends.iter().all(|(p, end)| committed.get(p) == Some(end))
        },
    )
    .await;
    assert!(!running.has_stopped(), "the consumer stopped");
    support::wait_until("every lag back to 0", Duration::from_secs(30), || async {
        let lags = kept.gauges(
            telemetry::LAG,
            by_group,
            "messaging.destination.partition.id",
        );
        lags.len() == 2 && lags.values().all(|lag| *lag == 0.0)
    })
    .await;
    running.shutdown().await.unwrap();

    assert_eq!(kept.counter(telemetry::CONSUMED_MESSAGES, by_group), 40);
    assert_eq!(kept.counter(telemetry::HANDLED, by_group), 36);
    assert_eq!(kept.counter(telemetry::RETRIES, by_group), 4);
    assert_eq!(kept.counter(telemetry::DEAD_LETTERED, by_group), 4);
    let by_topic = ("messaging.destination.name", topic.as_str());
    assert_eq!(kept.counter(telemetry::SENT_MESSAGES, by_topic), 40);
    let dead_letters = format!("{topic}.dlq");
    let by_dlq = ("messaging.destination.name", dead_letters.as_str());
    assert_eq!(kept.counter(telemetry::SENT_MESSAGES, by_dlq), 4);
}

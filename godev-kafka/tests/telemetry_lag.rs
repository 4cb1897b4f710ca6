//! The consumer-lag gauge of issue #16 on the in-memory backend: while a handler holds a
//! partition, the gauge equals the end offset minus the committed offset, read through the
//! transport; it reaches 0 once everything is handled.
//!
//! Run: `cargo test -p godev-kafka --features metrics --test telemetry_lag`. The recorder is
//! the process's global one, so this file holds one test.
#![cfg(feature = "metrics")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use godev_kafka::consumer::ConsumerSettings;
use godev_kafka::telemetry;
use godev_kafka::transport::memory::MemoryTransport;
use godev_kafka::{Consumer, Event, HandlerError, Producer, TopicMap, handler};
use metrics::{SharedString, Unit};
use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, Event)]
#[event(topic = "lagging", name = "ping")]
struct Ping {
    n: u64,
}

/// Set once ping 10 may be handled.
static RELEASED: AtomicBool = AtomicBool::new(false);

#[handler]
async fn on_ping(ping: Ping) -> Result<(), HandlerError> {
    while ping.n == 10 && !RELEASED.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Gauge `name` of group `lagged` in `snapshot`, if it holds it.
fn gauge(
    snapshot: &[(CompositeKey, Option<Unit>, Option<SharedString>, DebugValue)],
    name: &str,
) -> Option<f64> {
    snapshot
        .iter()
        .find(|(key, _, _, _)| {
            key.key().name() == name
                && key
                    .key()
                    .labels()
                    .any(|l| l.key() == "messaging.consumer.group.name" && l.value() == "lagged")
        })
        .map(|(_, _, _, value)| match value {
            DebugValue::Gauge(v) => v.into_inner(),
            other => panic!("{name} is not a gauge: {other:?}"),
        })
}

/// Waits until gauges `names` say `expected`, failing after 10 s (they are set every commit
/// interval, 10 ms here).
async fn wait_for(snapshotter: &Snapshotter, names: [&str; 2], expected: [f64; 2]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut last = [None; 2];
    while last != expected.map(Some) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{names:?} {last:?}, not {expected:?}, after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        // One snapshot for both: a snapshot may take what the recorder holds.
        let snapshot = snapshotter.snapshot().into_vec();
        let now = [gauge(&snapshot, names[0]), gauge(&snapshot, names[1])];
        for (seen, now) in last.iter_mut().zip(now) {
            *seen = now.or(*seen);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lag_gauge_is_the_end_offset_minus_the_committed_offset() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this process");

    let transport = MemoryTransport::new(1);
    transport.create_topic("lagging", 1);
    let producer = Producer::new(transport.clone(), TopicMap::default());
    for n in 0..20 {
        producer.send(&Ping { n }).await.unwrap();
    }
    let settings = ConsumerSettings {
        poll_wait: Duration::from_millis(10),
        commit_interval: Duration::from_millis(10),
        ..ConsumerSettings::default()
    };
    let running = Consumer::builder(transport.clone(), "lagged")
        .settings(settings)
        .handler::<on_ping>()
        .build()
        .unwrap()
        .start();

    // Pings 0 to 9 handled and committed, ping 10 held: 10 records of 20 not handled. The
    // committed offset cannot move while ping 10 is held, so reading it after the gauge
    // compares the two at one point. The same 10 are in flight: ping 10 in its handler, the
    // others queued behind it.
    wait_for(
        &snapshotter,
        [telemetry::LAG, telemetry::IN_FLIGHT],
        [10.0, 10.0],
    )
    .await;
    let end = transport.end_offset("lagging", 0);
    let committed = transport.committed("lagged", "lagging", 0).unwrap();
    assert_eq!(
        (end, committed),
        (20, 10),
        "the gauge said end - committed = 10"
    );

    RELEASED.store(true, Ordering::SeqCst);
    wait_for(
        &snapshotter,
        [telemetry::LAG, telemetry::IN_FLIGHT],
        [0.0, 0.0],
    )
    .await;
    running.shutdown().await.unwrap();
    assert_eq!(transport.committed("lagged", "lagging", 0), Some(20));
}

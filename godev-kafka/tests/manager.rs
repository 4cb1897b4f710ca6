//! The manager on the in-memory backend: status against reality, switches, close.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use godev_kafka::consumer::ConsumerSettings;
use godev_kafka::transport::memory::MemoryTransport;
use godev_kafka::{Codec, Error, Event, HandlerError, Manager, Producer, TopicMap, handler};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, Event)]
#[event(topic = "pings", name = "ping", key = "n")]
struct Ping {
    n: u32,
}

static HANDLED: AtomicUsize = AtomicUsize::new(0);

#[handler]
async fn on_ping(_ping: Ping) -> Result<(), HandlerError> {
    HANDLED.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn status_switches_and_close_match_what_runs() {
    let transport = Arc::new(MemoryTransport::new(4));
    let topics = TopicMap::from_iter([("pings", "pings-manager")]);
    let producer = Producer::with_transport(
        transport.clone(),
        topics.clone(),
        Codec::CloudEvents,
        "test",
    );
    let manager = Manager::new(transport.clone(), producer, "pingers");
    let settings = ConsumerSettings {
        poll_wait: Duration::from_millis(10),
        commit_interval: Duration::from_millis(10),
        ..Default::default()
    };
    let consumer = manager
        .consumer_builder()
        .group("pingers")
        .topics(topics)
        .settings(settings)
        .handler::<on_ping>()
        .build()
        .unwrap();
    manager.add_consumer(consumer);

    let status = manager.status();
    assert_eq!(
        (
            status.producer_enabled,
            status.consumer_enabled,
            status.consumer_count
        ),
        (true, true, 1)
    );
    assert_eq!(
        (status.brokers, status.backend),
        (vec!["memory".to_owned()], "memory")
    );
    assert_eq!(status.consumers[0].topics, vec!["pings-manager"]);
    assert!(
        status.consumers[0].assigned.is_empty(),
        "nothing assigned before start"
    );

    manager.start_all();
    wait_until("all four partitions assigned", || {
        manager.status().consumers[0].assigned.len() == 4
    })
    .await;
    for n in 0..10 {
        manager.producer().send(&Ping { n }).await.unwrap();
    }
    wait_until("10 handled", || HANDLED.load(Ordering::SeqCst) == 10).await;

    manager.disable_consumers().await.unwrap();
    let status = manager.status();
    assert!(!status.consumer_enabled);
    assert!(
        status.consumers[0].assigned.is_empty(),
        "a disabled consumer owns nothing"
    );
    for n in 10..20 {
        manager.producer().send(&Ping { n }).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await; // give a wrongly running consumer time to act
    assert_eq!(
        HANDLED.load(Ordering::SeqCst),
        10,
        "no record handled while disabled"
    );

    manager.enable_consumers().await;
    wait_until("the 10 sent while disabled are handled", || {
        HANDLED.load(Ordering::SeqCst) == 20
    })
    .await;

    manager.disable_producer();
    let refused = manager.producer().send(&Ping { n: 99 }).await.unwrap_err();
    assert!(
        matches!(refused, Error::Send { ref source, .. } if matches!(**source, Error::Closed("producer"))),
        "{refused}"
    );
    assert!(!manager.status().producer_enabled);
    manager.enable_producer();
    manager.producer().send(&Ping { n: 20 }).await.unwrap();
    wait_until("21 handled", || HANDLED.load(Ordering::SeqCst) == 21).await;

    manager.close().await.unwrap();
    for partition in 0..4 {
        assert_eq!(
            transport.committed("pingers", "pings-manager", partition),
            Some(transport.end_offset("pings-manager", partition))
        );
    }
}

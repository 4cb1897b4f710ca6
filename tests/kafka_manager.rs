//! The manager on a real Kafka 3.9 broker: status against what runs, consumers switched off
//! and on without handling anything while off or losing anything after.
//!
//! Run: `GODEV_KAFKA_BROKERS=127.0.0.1:9092 cargo test -p godev-kit --test kafka_manager`

mod support;

use std::sync::Mutex;
use std::time::Duration;

use godev_kafka::{Config, Context, Event, HandlerError, Manager, handler, testing};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, Event)]
#[event(topic = "manager_pings", name = "ping", key = "n")]
struct Ping {
    n: u32,
}

static HANDLED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

#[handler]
async fn on_ping(ping: Ping, _ctx: Context) -> Result<(), HandlerError> {
    HANDLED.lock().unwrap().push(ping.n);
    Ok(())
}

fn handled() -> Vec<u32> {
    HANDLED.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_switched_off_handle_nothing_and_lose_nothing_when_switched_on() {
    let brokers = support::brokers().await;
    let topic = testing::unique_name("manager-pings");
    let group = testing::unique_name("manager-group");
    testing::create_topic(&brokers, &topic, 3)
        .await
        .expect("create topic");
    let toml = format!(
        "[kafka]\nbrokers = [{}]\ngroup_id = \"{group}\"\n[kafka.topics]\nmanager_pings = \"{topic}\"\n\
         [kafka.consumer]\nsession_timeout_ms = 6000\nheartbeat_interval_ms = 500\ncommit_interval_ms = 200\n",
        brokers
            .split(',')
            .map(|b| format!("\"{b}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let config = Config::from_toml(&toml, "test.toml", |_| None).expect("valid config");
    let manager = Manager::connect(&config).await.expect("connect");
    manager.add_consumer(
        manager
            .consumer_builder()
            .handler::<on_ping>()
            .build()
            .unwrap(),
    );

    let status = manager.status();
    assert_eq!((status.backend, status.consumer_count), ("kafka", 1));
    assert_eq!(
        status.brokers,
        brokers.split(',').map(str::to_owned).collect::<Vec<_>>()
    );
    assert_eq!(
        (
            status.consumers[0].group.as_str(),
            status.consumers[0].topics.clone()
        ),
        (group.as_str(), vec![topic.clone()])
    );

    manager.start_all();
    support::wait_until(
        "the member owns all three partitions",
        Duration::from_secs(60),
        || async { manager.status().consumers[0].assigned.len() == 3 },
    )
    .await;
    for n in 0..20 {
        manager.producer().send(&Ping { n }).await.unwrap();
    }
    support::wait_until("20 handled", Duration::from_secs(60), || async {
        handled().len() == 20
    })
    .await;

    manager.disable_consumers().await.unwrap();
    let status = manager.status();
    assert!(!status.consumer_enabled);
    assert!(
        status.consumers[0].assigned.is_empty(),
        "a disabled consumer owns nothing"
    );
    let committed = testing::committed_offsets(&brokers, &group, &topic)
        .await
        .unwrap();
    assert_eq!(
        committed,
        testing::end_offsets(&brokers, &topic).await.unwrap(),
        "disabling committed what was handled"
    );
    for n in 20..40 {
        manager.producer().send(&Ping { n }).await.unwrap();
    }
    // A negative check needs a window: what a wrongly running consumer would handle in it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        handled().len(),
        20,
        "nothing handled while consumers are disabled"
    );

    manager.enable_consumers().await;
    support::wait_until(
        "the 20 sent while disabled are handled",
        Duration::from_secs(60),
        || async { handled().len() == 40 },
    )
    .await;
    manager.close().await.unwrap();
    let mut all = handled();
    all.sort_unstable();
    assert_eq!(all, (0..40).collect::<Vec<_>>(), "every ping handled once");
    let committed = testing::committed_offsets(&brokers, &group, &topic)
        .await
        .unwrap();
    assert_eq!(
        committed,
        testing::end_offsets(&brokers, &topic).await.unwrap()
    );
}

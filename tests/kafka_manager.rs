//! The manager made from a config on real brokers: the backend `[kafka] client` names (or
//! `auto` finds), status against what runs, consumers switched off and on without handling
//! anything while off or losing anything after; on each backend × broker pair.
//!
//! Run: `GODEV_KAFKA_BROKERS=127.0.0.1:9092 GODEV_KAFKA4_BROKERS=127.0.0.1:9094 cargo test -p godev-kit --features broker-tests,confluent --test kafka_manager`

mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use godev_kafka::{Config, Context, Event, HandlerError, Manager, handler, testing};
use serde::{Deserialize, Serialize};
use support::Backend;

on_each_backend!(consumers_switched_off_handle_nothing_and_lose_nothing_when_switched_on);

#[derive(Debug, Serialize, Deserialize, Event)]
#[event(topic = "manager_pings", name = "ping", key = "n")]
struct Ping {
    n: u32,
}

/// Handled pings by topic: the tests of both backends run in one process.
static HANDLED: Mutex<BTreeMap<String, Vec<u32>>> = Mutex::new(BTreeMap::new());

#[handler]
async fn on_ping(ping: Ping, ctx: Context) -> Result<(), HandlerError> {
    let mut handled = HANDLED.lock().unwrap();
    handled
        .entry(ctx.topic().to_owned())
        .or_default()
        .push(ping.n);
    Ok(())
}

/// A config for `brokers` with `client`, group `group` and the logical topic mapped to `topic`.
fn config(brokers: &str, client: &str, group: &str, topic: &str) -> Config {
    let toml = format!(
        "[kafka]\nbrokers = [{}]\ngroup_id = \"{group}\"\nclient = \"{client}\"\n\
         [kafka.topics]\nmanager_pings = \"{topic}\"\n\
         [kafka.consumer]\nsession_timeout_ms = 6000\nheartbeat_interval_ms = 500\ncommit_interval_ms = 200\n",
        brokers
            .split(',')
            .map(|b| format!("\"{b}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Config::from_toml(&toml, "test.toml", |_| None).expect("valid config")
}

async fn consumers_switched_off_handle_nothing_and_lose_nothing_when_switched_on(backend: Backend) {
    let brokers = backend.brokers().await;
    let topic = testing::unique_name("manager-pings");
    let group = testing::unique_name("manager-group");
    let handled = || {
        HANDLED
            .lock()
            .unwrap()
            .get(&topic)
            .cloned()
            .unwrap_or_default()
    };
    testing::create_topic(&brokers, &topic, 3)
        .await
        .expect("create topic");
    let config = config(&brokers, backend.client(), &group, &topic);
    let manager = Manager::connect(&config).await.expect("connect");
    manager.add_consumer(
        manager
            .consumer_builder()
            .handler::<on_ping>()
            .build()
            .unwrap(),
    );

    let status = manager.status();
    assert_eq!(
        (status.backend, status.consumer_count),
        (backend.client(), 1)
    );
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

/// `client = "kafka"` pointed at Kafka 4 fails when the manager starts, saying which broker
/// version it found and what to do, instead of failing on the first send.
#[tokio::test(flavor = "multi_thread")]
async fn client_kafka_against_kafka_4_fails_at_start_up_naming_the_version_and_the_fix() {
    let brokers = testing::kafka4_broker()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let config = config(&brokers, "kafka", "unused", "unused");
    let error = Manager::connect(&config)
        .await
        .expect_err("the kafka backend cannot speak to Kafka 4");
    let message = error.to_string();
    assert!(message.contains("Kafka 4 or later"), "{message}");
    assert!(message.contains("client = \"confluent\""), "{message}");
    assert!(!error.is_retriable(), "{message}");
}

/// `client = "auto"` asks the broker: `native` for both when the build has it; else `kafka`
/// for Kafka 3.9 and `confluent` for Kafka 4.
#[tokio::test(flavor = "multi_thread")]
async fn client_auto_chooses_the_backend_the_broker_speaks() {
    let kafka3 = support::brokers().await;
    let manager = Manager::connect(&config(&kafka3, "auto", "unused", "unused"))
        .await
        .expect("auto on Kafka 3.9");
    let on_3 = if cfg!(feature = "native") {
        "native"
    } else {
        "kafka"
    };
    assert_eq!(manager.status().backend, on_3);
    manager.close().await.unwrap();

    let kafka4 = testing::kafka4_broker()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let chosen = Manager::connect(&config(&kafka4, "auto", "unused", "unused")).await;
    #[cfg(feature = "native")]
    {
        let manager = chosen.expect("auto on Kafka 4");
        assert_eq!(manager.status().backend, "native");
        manager.close().await.unwrap();
    }
    #[cfg(all(feature = "confluent", not(feature = "native")))]
    {
        let manager = chosen.expect("auto on Kafka 4");
        assert_eq!(manager.status().backend, "confluent");
        manager.close().await.unwrap();
    }
    #[cfg(not(any(feature = "confluent", feature = "native")))]
    {
        let message = chosen
            .expect_err("no backend for Kafka 4 in this build")
            .to_string();
        assert!(
            message.contains("enable the cargo feature `confluent`"),
            "{message}"
        );
    }
}

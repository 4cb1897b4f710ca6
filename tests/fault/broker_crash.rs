//! 1. The broker is SIGKILLed and restarted twice while 100k events are produced and consumed
//!    by a grouped consumer: no acknowledged event is lost, every acknowledged
//!    (partition, offset) holds the event the producer wrote there, and an idempotent
//!    producer (native, confluent) writes no event twice (event ids counted in the log).
//!    Every producer retries until its delivery timeout, so no send fails while each outage is
//!    well within it (the `kafka` backend's gave up after 5 retries before issue #15).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use godev_kafka::transport::Transport;
use godev_kafka::{Consumer, TopicMap, testing};

use super::{
    Progress, TOPIC, check_log, consume_to_end, consumer_settings, figure, handled, handled_count,
    on_tick, produce_stream, producer, sample,
};
use crate::support::own_broker::OwnBroker;
use crate::support::{self, Backend};

const EVENTS: u64 = 100_000;
const PARTITIONS: i32 = 6;
/// Kill the broker when this many sends have finished (acknowledged or failed).
const KILL_AT: [u64; 2] = [30_000, 65_000];
/// The request timeout of this test's transports.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How much longer than an outage the delivery timeout must be for the test to demand that
/// no send fails: a record sent just before the kill is retried through the outage, then
/// waits for the records queued before it and for the broker to lead its partitions again.
const DRAIN_MARGIN: Duration = Duration::from_secs(10);

/// How long a send of `backend` may take, retries included, as [`super::transport`] sets it:
/// the `kafka` backend's default (120 s), `4 × REQUEST_TIMEOUT` (plus the 5 ms linger for
/// `confluent`) for the others.
fn delivery_timeout(backend: Backend) -> Duration {
    match backend {
        Backend::Kafka => {
            godev_kafka::transport::kafka::KafkaOptions::new(["unused:9092"]).delivery_timeout
        }
        #[cfg(feature = "confluent")]
        Backend::Confluent => REQUEST_TIMEOUT * 4,
        #[cfg(feature = "native")]
        Backend::Native3 | Backend::Native4 => REQUEST_TIMEOUT * 4,
    }
}

pub fn test(backend: Backend) {
    // Each backend's broker version, on a port of its own (no shared broker is crashed).
    let broker = match backend {
        Backend::Kafka => OwnBroker::start("3.9", 19192),
        #[cfg(feature = "confluent")]
        Backend::Confluent => OwnBroker::start("4", 19194),
        #[cfg(feature = "native")]
        Backend::Native3 => OwnBroker::start("3.9", 19192),
        #[cfg(feature = "native")]
        Backend::Native4 => OwnBroker::start("4", 19194),
    };
    crate::runtime().block_on(run(backend, &broker));
}

async fn transport(backend: Backend, brokers: &str) -> Arc<dyn Transport> {
    super::transport(backend, brokers, "godev-kafka-fault-crash", REQUEST_TIMEOUT).await
}

async fn run(backend: Backend, broker: &OwnBroker) {
    let brokers = broker.address().to_owned();
    let topic = testing::unique_name(&format!("fault-crash-{}", backend.client()));
    let group = testing::unique_name(&format!("fault-crash-{}-group", backend.client()));
    testing::create_topic(&brokers, &topic, PARTITIONS)
        .await
        .expect("create topic");

    let consumer_transport = transport(backend, &brokers).await;
    let consumer = Consumer::builder_shared(consumer_transport, &group)
        .topics(TopicMap::from_iter([(TOPIC, topic.as_str())]))
        .settings(consumer_settings(backend, Duration::from_secs(6)))
        .handler::<on_tick>()
        .build()
        .unwrap();
    let running = consumer.start();
    support::wait_until("the consumer's assignment", Duration::from_secs(60), || {
        let n: usize = running.status().iter().map(|g| g.assigned.len()).sum();
        async move { n == PARTITIONS as usize }
    })
    .await;

    let producer_transport = transport(backend, &brokers).await;
    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    let production = tokio::spawn(produce_stream(
        producer(producer_transport.clone(), &topic),
        EVENTS,
        1000,
        Duration::from_millis(1),
        Duration::from_millis(250),
        progress.clone(),
    ));

    let monitor = tokio::spawn({
        let (progress, topic) = (progress.clone(), topic.clone());
        async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                eprintln!(
                    "{:>5.1}s: acked {}, send errors {}, handled {}",
                    started.elapsed().as_secs_f64(),
                    progress.acked.load(Ordering::Relaxed),
                    progress.failed.load(Ordering::Relaxed),
                    handled_count(&topic)
                );
            }
        }
    });
    let mut restarts = Vec::new();
    for at in KILL_AT {
        support::wait_until(
            &format!("{at} sends finished"),
            Duration::from_secs(180),
            || {
                let done = progress.acked.load(Ordering::Relaxed)
                    + progress.failed.load(Ordering::Relaxed);
                async move { done >= at }
            },
        )
        .await;
        let killed = Instant::now();
        tokio::task::block_in_place(|| broker.kill());
        let took = tokio::task::block_in_place(|| broker.restart());
        eprintln!(
            "broker SIGKILLed at {at} sends; answering again after {:.1}s (start {:.1}s)",
            killed.elapsed().as_secs_f64(),
            took.as_secs_f64()
        );
        restarts.push(killed.elapsed());
    }
    let sent = tokio::time::timeout(Duration::from_secs(240), production)
        .await
        .expect("production finished in time")
        .expect("producer task");
    let produced_in = started.elapsed();
    assert_eq!(sent.acked.len() + sent.failed.len(), EVENTS as usize);
    assert!(
        !sent.acked.is_empty(),
        "nothing was acknowledged at all: {} failed",
        sent.failed.len()
    );
    let longest = restarts.iter().max().copied().unwrap_or_default();
    let timeout = delivery_timeout(backend);
    if longest + DRAIN_MARGIN <= timeout {
        assert!(
            sent.failed.is_empty(),
            "{} sends failed through outages of at most {:.1}s, within the delivery timeout of \
             {timeout:?}: e.g. events {}",
            sent.failed.len(),
            longest.as_secs_f64(),
            sample(&sent.failed, 10)
        );
    } else {
        eprintln!(
            "an outage of {:.1}s is too close to the delivery timeout of {timeout:?} to demand \
             that no send fails ({} failed)",
            longest.as_secs_f64(),
            sent.failed.len()
        );
    }

    // The consumer read the whole log once the group committed up to its end.
    let records = consume_to_end(backend.client(), &brokers, &group, &topic, &running).await;
    let consumed_in = started.elapsed();
    monitor.abort();
    running.shutdown().await.expect("clean shutdown");

    let handled = handled(&topic);
    let log = check_log(backend.client(), backend, &topic, &handled, &sent, records);
    if log.redelivered > 0 || !log.written_twice.is_empty() {
        println!(
            "duplicates: {} deliveries of {} records handled again after a crash, e.g. (partition, offset) {}; events written more than once: {}",
            log.redelivered,
            log.again.len(),
            sample(&log.again, 10),
            sample(&log.written_twice, 20)
        );
    }
    figure(
        backend,
        "broker_crash",
        &[
            ("events", EVENTS.to_string()),
            ("acked", sent.acked.len().to_string()),
            ("send_errors", sent.failed.len().to_string()),
            ("unacked_but_written", log.unacked_arrived.to_string()),
            ("lost", log.lost.to_string()),
            ("misplaced", log.misplaced.to_string()),
            ("records_in_log", records.to_string()),
            ("handled", handled.len().to_string()),
            ("redelivered", log.redelivered.to_string()),
            ("written_twice", log.written_twice.len().to_string()),
            (
                "outages_s",
                restarts
                    .iter()
                    .map(|d| format!("{:.1}", d.as_secs_f64()))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("produced_s", format!("{:.1}", produced_in.as_secs_f64())),
            ("consumed_s", format!("{:.1}", consumed_in.as_secs_f64())),
        ],
    );
}

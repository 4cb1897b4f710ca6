//! Produce and consume N 1 KiB events through the `kafka` backend and print events/s for each.
//!
//! Run against a Kafka 3.9 broker (`dev/kafka start --version 3.9` prints its address):
//! `GODEV_KAFKA_BROKERS=127.0.0.1:9092 cargo run --release -p godev-kafka --features testing --example kafka_throughput -- 100000`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use godev_kafka::consumer::ConsumerSettings;
use godev_kafka::transport::Transport;
use godev_kafka::transport::kafka::{KafkaOptions, KafkaTransport};
use godev_kafka::{Codec, Consumer, Event, HandlerError, Producer, TopicMap, handler, testing};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(topic = "bench", name = "bench.event", key = "key")]
struct BenchEvent {
    key: u32,
    seq: u64,
    body: String,
}

static HANDLED: AtomicUsize = AtomicUsize::new(0);

#[handler]
async fn count(_event: BenchEvent) -> Result<(), HandlerError> {
    HANDLED.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Sends in flight at once: enough to fill the producer's batches.
const WINDOW: usize = 4096;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: usize = std::env::args().nth(1).map_or(Ok(100_000), |n| n.parse())?;
    let brokers = testing::broker().await?;
    let topic = testing::unique_name("throughput");
    testing::create_topic(&brokers, &topic, 6).await?;
    let transport: Arc<dyn Transport> =
        Arc::new(KafkaTransport::connect(KafkaOptions::new(brokers.split(','))).await?);
    let topics = TopicMap::from_iter([("bench", topic.clone())]);
    let producer = Producer::with_transport(
        transport.clone(),
        topics.clone(),
        Codec::CloudEvents,
        "bench",
    );
    let body = "x".repeat(800);
    let sample = producer_record_size(&BenchEvent {
        key: 0,
        seq: 0,
        body: body.clone(),
    });

    let started = Instant::now();
    let mut in_flight = tokio::task::JoinSet::new();
    for seq in 0..events as u64 {
        if in_flight.len() >= WINDOW {
            in_flight.join_next().await.expect("a send in flight")??;
        }
        let (producer, event) = (
            producer.clone(),
            BenchEvent {
                key: (seq % 1000) as u32,
                seq,
                body: body.clone(),
            },
        );
        in_flight.spawn(async move { producer.send(&event).await.map(|_| ()) });
    }
    while let Some(sent) = in_flight.join_next().await {
        sent??;
    }
    report("produce (acks=all)", events, sample, started.elapsed());

    let settings = ConsumerSettings {
        commit_interval: Duration::from_millis(500),
        ..ConsumerSettings::default()
    };
    let consumer = Consumer::builder_shared(transport, testing::unique_name("throughput-group"))
        .topics(topics)
        .settings(settings)
        .handler::<count>()
        .build()?;
    let started = Instant::now();
    let running = consumer.start();
    let deadline = started + Duration::from_secs(600);
    while HANDLED.load(Ordering::Relaxed) < events {
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {events} handled in 600 s",
                HANDLED.load(Ordering::Relaxed)
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    report(
        "consume + dispatch (group join included)",
        events,
        sample,
        started.elapsed(),
    );
    running.shutdown().await?;
    Ok(())
}

fn producer_record_size(event: &BenchEvent) -> usize {
    Codec::CloudEvents
        .encode(event, "bench")
        .map_or(0, |v| v.len())
}

fn report(what: &str, events: usize, record_bytes: usize, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    println!(
        "{what}: {events} events of {record_bytes} B in {seconds:.2} s = {:.0} events/s, {:.1} MB/s",
        events as f64 / seconds,
        (events * record_bytes) as f64 / seconds / 1e6
    );
}

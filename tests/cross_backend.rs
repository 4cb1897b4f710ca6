//! Records crossing backends, on the combinations that real brokers allow.
//!
//! | writer | broker | reader | result |
//! |---|---|---|---|
//! | confluent producer (CloudEvents + headers) | Kafka 3.9 | `kafka` backend consumer | dispatched, committed (headers dropped for the old fetch version; the tag is in the value) |
//! | `kafka` backend producer | Kafka 3.9 | confluent consumer (KIP-848) | refused: Kafka 3.9 does not serve KIP-848 groups by default, the join fails loudly |
//! | `kafka` backend producer | Kafka 4.x | — | impossible: `KafkaTransport::connect` refuses Kafka 4 (`tests/kafka_broker.rs`) |
//!
//! So the honest cross-backend path is: the confluent *producer* works on both broker
//! generations, and the `kafka` backend reads what it wrote on 3.9. The confluent *consumer*
//! needs Kafka 4, where the `kafka` backend cannot write, so foreign clients stand in for it:
//! kcat in `kafka_consumer::confluent_4::go_kit_json_from_kcat_is_dispatched_by_event_type`
//! and kafka-go in `go_interop::confluent_4::*`.
//!
//! Run: `GODEV_KAFKA_BROKERS=127.0.0.1:9092 GODEV_KAFKA4_BROKERS=127.0.0.1:9094 cargo test -p godev-kit --features broker-tests,confluent --test cross_backend`

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use godev_kafka::consumer::ConsumerSettings;
use godev_kafka::transport::detect::detect_broker;
use godev_kafka::transport::{GroupOptions, OutgoingRecord, Transport};
use godev_kafka::{Codec, Consumer, Context, Event, HandlerError, Producer, TopicMap, handler};
use serde::{Deserialize, Serialize};

fn settings() -> ConsumerSettings {
    ConsumerSettings {
        session_timeout: Duration::from_secs(6),
        heartbeat_interval: Duration::from_millis(500),
        rebalance_timeout: Duration::from_secs(20),
        // At most `rebalance_timeout` - `ConsumerSettings::SHUTDOWN_MARGIN`.
        shutdown_timeout: Duration::from_secs(10),
        commit_interval: Duration::from_millis(200),
        ..ConsumerSettings::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(topic = "orders", key = "order")]
enum OrderEvent {
    #[event(name = "order.placed")]
    Placed { order: u32, seq: u32 },
    #[event(name = "order.paid")]
    Paid { order: u32, seq: u32 },
}

/// Handled (real topic, order, seq, tag).
static ORDERS: Mutex<Vec<(String, u32, u32, String)>> = Mutex::new(Vec::new());

fn orders(topic: &str) -> Vec<(u32, u32, String)> {
    let orders = ORDERS.lock().unwrap();
    orders
        .iter()
        .filter(|o| o.0 == topic)
        .map(|o| (o.1, o.2, o.3.clone()))
        .collect()
}

#[handler]
async fn on_order(event: OrderEvent, ctx: Context) -> Result<(), HandlerError> {
    let (OrderEvent::Placed { order, seq } | OrderEvent::Paid { order, seq }) = event;
    ORDERS
        .lock()
        .unwrap()
        .push((ctx.topic().to_owned(), order, seq, ctx.tag().to_owned()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kafka_backend_dispatches_what_the_confluent_producer_wrote_on_kafka_3() {
    const ORDERS_N: u32 = 10;
    let brokers = support::brokers().await;
    let features = detect_broker(std::slice::from_ref(&brokers)).await.unwrap();
    assert!(
        !features.is_kafka4(),
        "GODEV_KAFKA_BROKERS must be Kafka 3.x: {features:?}"
    );
    let topic = godev_kafka::testing::unique_name("x-orders");
    let group = godev_kafka::testing::unique_name("x-orders-group");
    godev_kafka::testing::create_topic(&brokers, &topic, 3)
        .await
        .expect("create topic");
    let topics = TopicMap::from_iter([("orders", topic.clone())]);

    let writer = support::confluent_transport(&brokers).await;
    let producer = Producer::with_transport(
        writer.clone() as Arc<dyn Transport>,
        topics.clone(),
        Codec::CloudEvents,
        "confluent-writer",
    );
    for seq in 0..2 {
        for order in 0..ORDERS_N {
            let event = if seq == 0 {
                OrderEvent::Placed { order, seq }
            } else {
                OrderEvent::Paid { order, seq }
            };
            producer
                .send(&event)
                .await
                .expect("confluent producer on Kafka 3.9");
        }
    }

    let reader: Arc<dyn Transport> = support::transport(&brokers).await;
    let consumer = Consumer::builder_shared(reader, &group)
        .topics(topics)
        .settings(settings())
        .handler::<on_order>()
        .build()
        .unwrap();
    let running = consumer.start();
    let total = (ORDERS_N * 2) as usize;
    support::wait_until("every order handled", Duration::from_secs(60), || async {
        orders(&topic).len() >= total
    })
    .await;
    running.shutdown().await.unwrap();

    let mut handled = orders(&topic);
    assert_eq!(handled.len(), total, "each record once");
    // Same key, same partition, in order: each order's `placed` before its `paid`.
    handled.sort_by_key(|(order, seq, _)| (*order, *seq));
    for (order, seq, tag) in handled {
        let expected = if seq == 0 {
            "order.placed"
        } else {
            "order.paid"
        };
        assert_eq!(tag, expected, "order {order}");
    }
    let end = godev_kafka::testing::end_offsets(&brokers, &topic)
        .await
        .unwrap();
    let committed = godev_kafka::testing::committed_offsets(&brokers, &group, &topic)
        .await
        .unwrap();
    assert_eq!(committed, end);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_confluent_consumer_cannot_join_a_group_on_kafka_3_and_says_so() {
    let brokers = support::brokers().await;
    let topic = godev_kafka::testing::unique_name("x-kip848");
    godev_kafka::testing::create_topic(&brokers, &topic, 1)
        .await
        .expect("create topic");
    let writer: Arc<dyn Transport> = support::transport(&brokers).await;
    writer
        .produce(OutgoingRecord {
            topic: topic.clone(),
            partition: 0,
            key: None,
            value: b"{}".to_vec(),
        })
        .await
        .expect("kafka backend writes on 3.9");

    let transport = support::confluent_transport(&brokers).await;
    let mut options = GroupOptions::new(
        godev_kafka::testing::unique_name("x-kip848-group"),
        vec![topic],
    );
    options.rebalance_timeout = Duration::from_secs(10);
    let mut member = transport
        .join(options)
        .await
        .expect("the consumer is built");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let error = loop {
        match member.poll(Duration::from_millis(200)).await {
            Err(error) => break error,
            Ok(polled) => assert!(
                std::time::Instant::now() < deadline,
                "a KIP-848 member on Kafka 3.9 neither failed nor was refused; last poll: {polled:?}"
            ),
        }
    };
    let message = error.to_string();
    eprintln!("confluent consumer on Kafka 3.9: {message}");
    assert!(
        message.contains("does not support the new CONSUMER group protocol")
            && message.contains("needs Kafka 4.0+")
            && message.contains("`kafka` backend"),
        "the error says why and what to use instead: {message}"
    );
    assert!(
        !error.is_retriable(),
        "the runner stops instead of retrying forever"
    );
    let _ = member.leave().await;
}

//! A partition that the `kafka` backend cannot read stalls alone (issue #13): one
//! lz4-compressed batch written by kcat (the `kafka` crate reads only gzip and snappy) used to
//! stop the whole consumer, and the plain records of the other partition were never handled.
//! Now the other partition is handled, the consumer keeps going, the status names the
//! stalled partition and its offset, and the stall is logged at error.
//!
//! Run: `GODEV_KAFKA_BROKERS=127.0.0.1:9092 cargo test -p godev-kit --features broker-tests --test kafka_stalled_partition`

mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use godev_kafka::transport::{StalledPartition, TopicPartition};
use godev_kafka::{Codec, Consumer, Context, Event, HandlerError, TopicMap, handler, testing};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(topic = "orders", name = "order.placed", key = "order")]
struct OrderPlaced {
    order: u32,
}

/// Partition → the orders handled from it, in order.
static HANDLED: Mutex<BTreeMap<i32, Vec<u32>>> = Mutex::new(BTreeMap::new());

#[handler]
async fn on_order(event: OrderPlaced, ctx: Context) -> Result<(), HandlerError> {
    HANDLED
        .lock()
        .unwrap()
        .entry(ctx.partition())
        .or_default()
        .push(event.order);
    Ok(())
}

fn handled(partition: i32) -> Vec<u32> {
    HANDLED
        .lock()
        .unwrap()
        .get(&partition)
        .cloned()
        .unwrap_or_default()
}

/// Writes `orders` to `partition` of `topic` with kcat, compressed with `codec`.
fn kcat_orders(
    brokers: &str,
    topic: &str,
    partition: i32,
    codec: &str,
    orders: std::ops::Range<u32>,
) {
    let partition = partition.to_string();
    let lines: Vec<String> = orders
        .map(|order| format!(r#"{{"event_type":"order.placed","order":{order}}}"#))
        .collect();
    support::kcat_write(brokers, topic, &["-p", &partition, "-z", codec], &lines);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_lz4_batch_stalls_its_partition_alone_and_the_others_are_handled() {
    support::logs::capture();
    let brokers = support::brokers().await;
    let topic = testing::unique_name("stalled");
    testing::create_topic(&brokers, &topic, 2).await.unwrap();
    kcat_orders(&brokers, &topic, 0, "lz4", 0..3);
    kcat_orders(&brokers, &topic, 1, "none", 100..106);

    let transport = support::transport(&brokers).await;
    let group = testing::unique_name("stalled-group");
    let running = Consumer::builder_shared(transport, &group)
        .topics(TopicMap::from_iter([("orders", topic.as_str())]))
        .codec(Codec::Tagged)
        .settings(support::Backend::Kafka.consumer_settings())
        .handler::<on_order>()
        .build()
        .unwrap()
        .start();
    let stalled_status = || {
        running
            .status()
            .into_iter()
            .flat_map(|g| g.stalled)
            .collect::<Vec<StalledPartition>>()
    };
    support::wait_until(
        "partition 1 handled and partition 0 stalled",
        Duration::from_secs(60),
        || async {
            running.has_stopped() || (handled(1).len() == 6 && !stalled_status().is_empty())
        },
    )
    .await;
    assert!(!running.has_stopped(), "the consumer stopped");
    assert_eq!(handled(1), (100..106).collect::<Vec<_>>());
    let stalled = stalled_status();
    assert_eq!(stalled.len(), 1, "{stalled:?}");
    assert_eq!(stalled[0].partition, TopicPartition::new(topic.as_str(), 0));
    assert_eq!(stalled[0].offset, 0, "stalled at the lz4 batch");
    assert!(
        stalled[0].reason.contains("Unsupported compression format"),
        "{}",
        stalled[0].reason
    );
    let said = support::logs::logged(&group, "partition stalled");
    assert_eq!(said.len(), 1, "logged once: {said:?}");
    for field in [
        "ERROR",
        &format!("topic={topic}"),
        "partition=0",
        "offset=0",
    ] {
        assert!(said[0].contains(field), "{field} in {}", said[0]);
    }

    // The consumer keeps going on the partition it can read.
    kcat_orders(&brokers, &topic, 1, "gzip", 106..110);
    support::wait_until(
        "the next orders of partition 1",
        Duration::from_secs(30),
        || async { handled(1).len() == 10 || running.has_stopped() },
    )
    .await;
    assert_eq!(handled(1), (100..110).collect::<Vec<_>>());
    assert!(
        handled(0).is_empty(),
        "nothing of the lz4 batch was handled"
    );
    assert_eq!(
        stalled_status(),
        stalled,
        "still stalled, at the same offset"
    );
    let committed = testing::committed_offsets(&brokers, &group, &topic)
        .await
        .unwrap();
    assert_eq!(committed.get(&0), None, "nothing committed past the stall");
    running.shutdown().await.expect("clean shutdown");
}

//! Proof that the test broker is a real Kafka: create a topic, write and read it back with the
//! `kafka` crate alone, and check the offsets the broker reports.
//!
//! Run: `GODEV_KAFKA_BROKERS=127.0.0.1:9092 cargo test -p godev-kit --test kafka_broker`

mod support;

use std::collections::BTreeMap;

use godev_kafka::testing::{self, kafka};
use kafka::client::{FetchPartition, KafkaClient, RequiredAcks};
use kafka::producer::{Producer, Record};

#[tokio::test(flavor = "multi_thread")]
async fn a_real_broker_stores_and_serves_records() {
    let brokers = support::brokers().await;
    let topic = testing::unique_name("broker-proof");
    testing::create_topic(&brokers, &topic, 3)
        .await
        .expect("create topic");

    let hosts: Vec<String> = brokers.split(',').map(str::to_owned).collect();
    let t = topic.clone();
    // The kafka crate blocks: run it off the async workers.
    let fetched = tokio::task::spawn_blocking(move || {
        let mut producer = Producer::from_hosts(hosts.clone())
            .with_required_acks(RequiredAcks::All)
            .create()
            .expect("producer");
        for partition in 0..3 {
            for i in 0..4 {
                let value = format!("p{partition}-r{i}");
                producer
                    .send(
                        &Record::from_key_value(&t, format!("k{i}"), value)
                            .with_partition(partition),
                    )
                    .expect("send");
            }
        }
        let mut client = KafkaClient::new(hosts);
        client.load_metadata(&[&t]).expect("metadata");
        let requests: Vec<_> = (0..3).map(|p| FetchPartition::new(&t, p, 1)).collect();
        let mut fetched: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
        for response in client.fetch_messages(&requests).expect("fetch") {
            for topic in response.topics() {
                for partition in topic.partitions() {
                    let data = partition.data().expect("partition data");
                    for m in data.messages() {
                        let value = String::from_utf8(m.value.to_vec()).unwrap();
                        fetched
                            .entry(partition.partition())
                            .or_default()
                            .push((m.offset, value));
                    }
                }
            }
        }
        fetched
    })
    .await
    .unwrap();

    for partition in 0..3 {
        let expected: Vec<(i64, String)> =
            (1..4).map(|i| (i, format!("p{partition}-r{i}"))).collect();
        assert_eq!(
            fetched[&partition], expected,
            "partition {partition} from offset 1"
        );
    }
    let ends = testing::end_offsets(&brokers, &topic)
        .await
        .expect("end offsets");
    assert_eq!(ends, BTreeMap::from([(0, 4), (1, 4), (2, 4)]));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_transport_refuses_nothing_on_kafka_3() {
    let brokers = support::brokers().await;
    let transport = support::transport(&brokers).await;
    let topic = testing::unique_name("auto-created");
    use godev_kafka::transport::Transport;
    // Auto-creation through metadata, with the broker's default partition count.
    let count = transport
        .partition_count(&topic)
        .await
        .expect("partition count");
    assert!(count >= 1);
}

/// Kafka 4 removed the produce and fetch versions the `kafka` crate speaks; `connect` must say
/// so and point at the confluent backend. Needs `GODEV_KAFKA4_BROKERS` naming a Kafka 4
/// broker (`dev/test` starts one with `dev/kafka start --version 4` on 127.0.0.1:9094).
#[tokio::test(flavor = "multi_thread")]
async fn kafka_4_is_refused_with_the_way_out() {
    let brokers = std::env::var("GODEV_KAFKA4_BROKERS").expect(
        "GODEV_KAFKA4_BROKERS must name a Kafka 4 broker: run `dev/test`, or `dev/kafka start --version 4` and export GODEV_KAFKA4_BROKERS=127.0.0.1:9094",
    );
    let options = godev_kafka::transport::kafka::KafkaOptions::new(brokers.split(','));
    let error = godev_kafka::transport::kafka::KafkaTransport::connect(options)
        .await
        .expect_err("Kafka 4 must be refused");
    let message = error.to_string();
    assert!(message.contains("confluent"), "{message}");
    assert!(
        message.contains("Produce v3") || message.contains("Fetch v4"),
        "{message}"
    );
}

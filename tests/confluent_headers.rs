//! Records the `confluent` backend writes on Kafka 4 carry the CloudEvents Kafka headers,
//! read back with the `confluent-kafka` crate's own consumer; headers kcat writes reach the
//! handler's `Context`.
//!
//! Run: `GODEV_KAFKA4_BROKERS=127.0.0.1:9094 cargo test -p godev-kit --features broker-tests,confluent --test confluent_headers`

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use godev_kafka::transport::confluent::confluent_kafka::common::TopicPartition as KafkaPartition;
use godev_kafka::transport::confluent::confluent_kafka::common::header::{
    Header as _, Headers as _,
};
use godev_kafka::transport::confluent::confluent_kafka::common::serialization::ByteArrayDeserializer;
use godev_kafka::transport::confluent::confluent_kafka::consumer::{
    Consumer as _, ConsumerConfig, KafkaConsumer,
};
use godev_kafka::transport::{Header, Transport};
use godev_kafka::{Codec, Consumer, Context, Event, HandlerError, Producer, TopicMap, handler};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(topic = "users", name = "user.created", key = "user_id")]
struct UserCreated {
    user_id: u64,
    email: String,
}

type Headers = Vec<(String, String)>;

/// Every record of `topic` partition 0 from the beginning: (value, headers), read with the
/// crate's consumer on a manual assignment (no group).
async fn read_back(brokers: &str, topic: &str, count: usize) -> Vec<(String, Headers)> {
    let props = HashMap::from([
        ("bootstrap.servers".to_string(), brokers.to_string()),
        ("group.protocol".to_string(), "consumer".to_string()),
        ("auto.offset.reset".to_string(), "earliest".to_string()),
        ("enable.auto.commit".to_string(), "false".to_string()),
    ]);
    let mut consumer = KafkaConsumer::<Vec<u8>, Vec<u8>>::new(
        ConsumerConfig::new(&props).unwrap(),
        ByteArrayDeserializer::default(),
        ByteArrayDeserializer::default(),
    )
    .unwrap();
    consumer
        .assign(vec![KafkaPartition::new(topic, 0)])
        .await
        .unwrap();
    let mut records = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while records.len() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "read back {records:?}"
        );
        for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            let headers = r
                .headers()
                .iter()
                .map(|h| {
                    let value = h.value().map(|v| String::from_utf8_lossy(v).into_owned());
                    (h.key().to_owned(), value.unwrap_or_default())
                })
                .collect();
            let value = String::from_utf8_lossy(r.value().map_or(&[][..], |v| v)).into_owned();
            records.push((value, headers));
        }
    }
    consumer.close().await.unwrap();
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_events_records_carry_the_kafka_binding_headers_and_others_none() {
    let brokers = support::Backend::Confluent.brokers().await;
    let topic = godev_kafka::testing::unique_name("c-headers");
    let transport = support::confluent_transport(&brokers).await;
    transport.admin().create_topic(&topic, 1).await.unwrap();
    let topics = TopicMap::from_iter([("users", topic.clone())]);
    let dyn_transport = transport.clone() as Arc<dyn Transport>;
    let cloud = Producer::with_transport(
        dyn_transport.clone(),
        topics.clone(),
        Codec::CloudEvents,
        "svc-a",
    );
    let tagged = Producer::with_transport(dyn_transport, topics, Codec::Tagged, "svc-a");
    let event = UserCreated {
        user_id: 7,
        email: "a@example.com".into(),
    };
    cloud.send(&event).await.expect("send CloudEvents");
    tagged.send(&event).await.expect("send tagged");

    let records = read_back(&brokers, &topic, 2).await;
    let (value, headers) = &records[0];
    let envelope: serde_json::Value = serde_json::from_str(value).unwrap();
    assert_eq!(
        envelope["type"], "user.created",
        "the tag stays in the value"
    );
    let expected: Headers = [
        ("ce_type", "user.created"),
        ("ce_id", envelope["id"].as_str().unwrap()),
        ("ce_source", "svc-a"),
        ("ce_specversion", "1.0"),
        (
            "content-type",
            "application/cloudevents+json; charset=UTF-8",
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(headers, &expected);

    let (value, headers) = &records[1];
    assert!(value.contains(r#""event_type":"user.created""#), "{value}");
    transport.close().await.expect("close");
    assert!(
        headers.is_empty(),
        "the Go kit's JSON gets no headers: {headers:?}"
    );
}

/// The headers of each user handled: user id, `ctx.headers()`.
static SEEN: Mutex<Vec<(u64, Vec<Header>)>> = Mutex::new(Vec::new());

#[handler]
async fn on_user(event: UserCreated, ctx: Context) -> Result<(), HandlerError> {
    SEEN.lock()
        .unwrap()
        .push((event.user_id, ctx.headers().to_vec()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_written_by_kcat_reach_the_context() {
    use std::io::Write;
    let backend = support::Backend::Confluent;
    let brokers = backend.brokers().await;
    let topic = godev_kafka::testing::unique_name("c-kcat-headers");
    let transport = support::confluent_transport(&brokers).await;
    transport.admin().create_topic(&topic, 1).await.unwrap();
    let mut child = std::process::Command::new(support::kcat())
        .args(["-P", "-b", &brokers, "-t", &topic])
        .args([
            "-H",
            "hop=gateway",
            "-H",
            "tenant",
            "-H",
            "hop=billing",
            "-H",
            "empty=",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run kcat");
    {
        let mut stdin = child.stdin.take().unwrap();
        for user_id in 1..=2 {
            writeln!(
                stdin,
                r#"{{"event_type":"user.created","user_id":{user_id},"email":"u@example.com"}}"#
            )
            .unwrap();
        }
    }
    assert!(child.wait().unwrap().success(), "kcat produced the records");
    let running = Consumer::builder_shared(
        transport as Arc<dyn Transport>,
        godev_kafka::testing::unique_name("c-kcat-headers"),
    )
    .topics(TopicMap::from_iter([("users", topic.as_str())]))
    .codec(Codec::Tagged)
    .settings(backend.consumer_settings())
    .handler::<on_user>()
    .build()
    .unwrap()
    .start();
    support::wait_until("2 users handled", Duration::from_secs(60), || async {
        SEEN.lock().unwrap().len() >= 2 || running.has_stopped()
    })
    .await;
    assert!(!running.has_stopped(), "the consumer stopped");
    let expected = vec![
        Header::new("hop", "gateway"),
        Header::null("tenant"),
        Header::new("hop", "billing"),
        Header::new("empty", ""),
    ];
    assert_eq!(
        *SEEN.lock().unwrap(),
        [(1, expected.clone()), (2, expected)],
        "in order, with their values"
    );
    running.shutdown().await.unwrap();
}

//! Typed events through the `kafka` backend on a real Kafka 3.9 broker: derive, send, grouped
//! consumer, handlers, commits; and Go-kit JSON written by a foreign client (kcat).
//!
//! Run: `GODEV_KAFKA_BROKERS=127.0.0.1:9092 cargo test -p godev-kit --test kafka_consumer`

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use godev_kafka::consumer::ConsumerSettings;
use godev_kafka::transport::Transport;
use godev_kafka::{
    Codec, Consumer, Context, Event, HandlerError, Producer, TopicMap, handler, testing,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(topic = "accounts", key = "account")]
enum AccountEvent {
    #[event(name = "account.opened")]
    Opened { account: u32, seq: u32 },
    #[event(name = "account.credited")]
    Credited { account: u32, seq: u32 },
}

/// Handled records per real topic: (partition, offset, account, seq).
type Seen = Vec<(i32, i64, u32, u32)>;
static SEEN: Mutex<Option<HashMap<String, Seen>>> = Mutex::new(None);

fn seen(topic: &str) -> Seen {
    SEEN.lock()
        .unwrap()
        .as_ref()
        .and_then(|m| m.get(topic).cloned())
        .unwrap_or_default()
}

#[handler]
async fn on_account(event: AccountEvent, ctx: Context) -> Result<(), HandlerError> {
    let (AccountEvent::Opened { account, seq } | AccountEvent::Credited { account, seq }) = event;
    let mut seen = SEEN.lock().unwrap();
    let entry = seen
        .get_or_insert_with(HashMap::new)
        .entry(ctx.topic().to_owned())
        .or_default();
    entry.push((ctx.partition(), ctx.offset(), account, seq));
    Ok(())
}

fn settings() -> ConsumerSettings {
    ConsumerSettings {
        session_timeout: Duration::from_secs(6),
        heartbeat_interval: Duration::from_millis(500),
        rebalance_timeout: Duration::from_secs(20),
        commit_interval: Duration::from_millis(200),
        ..ConsumerSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_events_over_six_partitions_are_handled_once_in_order_and_committed() {
    const ACCOUNTS: u32 = 40;
    const PER_ACCOUNT: u32 = 25;
    let brokers = support::brokers().await;
    let topic = testing::unique_name("accounts");
    let group = testing::unique_name("accounts-group");
    testing::create_topic(&brokers, &topic, 6)
        .await
        .expect("create topic");
    let transport: Arc<dyn Transport> = support::transport(&brokers).await;
    let topics = TopicMap::from_iter([("accounts", topic.clone())]);

    let producer = Producer::with_transport(
        transport.clone(),
        topics.clone(),
        Codec::CloudEvents,
        "tests",
    );
    let sends = (0..PER_ACCOUNT).flat_map(|seq| {
        (0..ACCOUNTS).map(move |account| {
            if seq == 0 {
                AccountEvent::Opened { account, seq }
            } else {
                AccountEvent::Credited { account, seq }
            }
        })
    });
    let sends: Vec<_> = sends.collect();
    // One round at a time, its sends concurrent (each account once per round), so the
    // producer batches and each account's events still go out in order.
    for round in sends.chunks(ACCOUNTS as usize) {
        let tasks: Vec<_> = round
            .iter()
            .cloned()
            .map(|event| {
                let producer = producer.clone();
                tokio::spawn(async move { producer.send(&event).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().expect("send acknowledged");
        }
    }

    let consumer = Consumer::builder_shared(transport.clone(), &group)
        .topics(topics)
        .settings(settings())
        .handler::<on_account>()
        .build()
        .unwrap();
    let running = consumer.start();
    let total = (ACCOUNTS * PER_ACCOUNT) as usize;
    support::wait_until("every event handled", Duration::from_secs(60), || async {
        seen(&topic).len() >= total
    })
    .await;
    running.shutdown().await.expect("clean shutdown");

    let seen = seen(&topic);
    assert_eq!(seen.len(), total, "each event handled exactly once");
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let mut by_account: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (partition, offset, account, seq) in &seen {
        by_partition.entry(*partition).or_default().push(*offset);
        by_account.entry(*account).or_default().push(*seq);
    }
    assert_eq!(by_partition.len(), 6, "keys spread over all six partitions");
    for (partition, offsets) in &by_partition {
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "partition {partition} handled in offset order"
        );
    }
    for (account, seqs) in by_account {
        assert_eq!(
            seqs,
            (0..PER_ACCOUNT).collect::<Vec<_>>(),
            "account {account} in send order"
        );
    }
    let end = testing::end_offsets(&brokers, &topic).await.unwrap();
    let committed = testing::committed_offsets(&brokers, &group, &topic)
        .await
        .unwrap();
    assert_eq!(
        committed, end,
        "the group committed up to the end of every partition"
    );
}

/// The Go kit's `entity.UserEvent`, as Go's `encoding/json` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct GoUser {
    id: i64,
    user_id: i64,
    email: String,
    data: serde_json::Value,
    timestamp: godev_kafka::event::Timestamp,
}

#[derive(Debug, Clone, PartialEq, Event)]
#[event(topic = "go_user_events", key = "user_id")]
enum GoUserEvent {
    #[event(name = "user.created")]
    Created(GoUser),
    #[event(name = "user.deleted")]
    Deleted(GoUser),
}

static GO_SEEN: Mutex<Vec<(String, i64, String)>> = Mutex::new(Vec::new());

#[handler]
async fn on_go_user(event: GoUserEvent, ctx: Context) -> Result<(), HandlerError> {
    let (GoUserEvent::Created(user) | GoUserEvent::Deleted(user)) = event;
    GO_SEEN
        .lock()
        .unwrap()
        .push((ctx.tag().to_owned(), user.user_id, user.email));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_kit_json_from_kcat_is_dispatched_by_event_type() {
    let brokers = support::brokers().await;
    let topic = testing::unique_name("go-user-events");
    testing::create_topic(&brokers, &topic, 2)
        .await
        .expect("create topic");
    let lines = [
        r#"1:{"id":1732800000000000001,"event_type":"user.created","user_id":1,"email":"go@example.com","data":{"plan":"free"},"timestamp":"2024-11-28T13:20:00.5Z"}"#,
        r#"1:{"id":1732800000000000002,"event_type":"user.renamed","user_id":1,"email":"go@example.com","data":null,"timestamp":"2024-11-28T13:20:01Z"}"#,
        r#"1:{"id":1732800000000000003,"event_type":"user.deleted","user_id":1,"email":"go@example.com","data":null,"timestamp":"2024-11-28T13:20:02Z"}"#,
    ];
    support::kcat_produce(&brokers, &topic, &lines);

    let transport: Arc<dyn Transport> = support::transport(&brokers).await;
    let consumer = Consumer::builder_shared(transport, testing::unique_name("go-interop"))
        .topics(TopicMap::from_iter([("go_user_events", topic.clone())]))
        .codec(Codec::Tagged)
        .settings(settings())
        .handler::<on_go_user>()
        .build()
        .unwrap();
    let running = consumer.start();
    support::wait_until(
        "both known events handled",
        Duration::from_secs(60),
        || async { GO_SEEN.lock().unwrap().len() >= 2 },
    )
    .await;
    running.shutdown().await.unwrap();
    let seen = GO_SEEN.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            ("user.created".to_owned(), 1, "go@example.com".to_owned()),
            ("user.deleted".to_owned(), 1, "go@example.com".to_owned()),
        ],
        "user.renamed has no handler and is skipped; the others arrive in order (same key)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_reads_what_our_producer_wrote() {
    let brokers = support::brokers().await;
    let topic = testing::unique_name("to-kcat");
    testing::create_topic(&brokers, &topic, 1)
        .await
        .expect("create topic");
    let transport: Arc<dyn Transport> = support::transport(&brokers).await;
    let topics = TopicMap::from_iter([("go_user_events", topic.clone())]);
    let producer = Producer::with_transport(transport, topics, Codec::Tagged, "tests");
    let user = GoUser {
        id: 7,
        user_id: 42,
        email: "rust@example.com".into(),
        data: serde_json::json!({"from": "rust"}),
        timestamp: "2024-11-28T13:20:00Z".parse().unwrap(),
    };
    producer
        .send(&GoUserEvent::Created(user))
        .await
        .expect("acknowledged");
    producer
        .send_raw(&topic, Some(b"raw-key"), b"raw value".to_vec())
        .await
        .expect("acknowledged");

    let output = std::process::Command::new(support::kcat())
        .args([
            "-C",
            "-b",
            &brokers,
            "-t",
            &topic,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%k|%s\n",
        ])
        .output()
        .expect("run kcat");
    assert!(
        output.status.success(),
        "kcat: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        vec![
            r#"42|{"id":7,"event_type":"user.created","user_id":42,"email":"rust@example.com","data":{"from":"rust"},"timestamp":"2024-11-28T13:20:00Z"}"#,
            "raw-key|raw value",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_partitions_rebalance_the_group_and_the_new_ones_are_consumed() {
    let brokers = support::brokers().await;
    let topic = testing::unique_name("growing");
    let group = testing::unique_name("growing-group");
    testing::create_topic(&brokers, &topic, 2)
        .await
        .expect("create topic");
    let transport: Arc<dyn Transport> = support::transport(&brokers).await;
    let topics = TopicMap::from_iter([("accounts", topic.clone())]);
    let consumer = Consumer::builder_shared(transport.clone(), &group)
        .topics(topics.clone())
        .settings(settings())
        .handler::<on_account>()
        .build()
        .unwrap();
    let running = consumer.start();
    support::wait_until(
        "two partitions assigned",
        Duration::from_secs(60),
        || async { running.status()[0].assigned.len() == 2 },
    )
    .await;

    let mut command = std::process::Command::new("bash");
    command
        .arg(support::dev_kafka())
        .args(["tool", "--version", "3.9", "topics"])
        .args([
            "--bootstrap-server",
            &brokers,
            "--alter",
            "--topic",
            &topic,
            "--partitions",
            "4",
        ]);
    let output = tokio::task::spawn_blocking(move || command.output().expect("run dev/kafka tool"))
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "alter partitions: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    support::wait_until(
        "the group rebalanced onto four partitions",
        Duration::from_secs(60),
        || async { running.status()[0].assigned.len() == 4 },
    )
    .await;

    let producer = Producer::with_transport(transport, topics, Codec::CloudEvents, "tests");
    for account in 0..40 {
        producer
            .send(&AccountEvent::Opened { account, seq: 0 })
            .await
            .unwrap();
    }
    support::wait_until("all 40 handled", Duration::from_secs(60), || async {
        seen(&topic).len() == 40
    })
    .await;
    running.shutdown().await.unwrap();
    let partitions: std::collections::BTreeSet<i32> = seen(&topic).iter().map(|s| s.0).collect();
    assert!(
        partitions.iter().any(|p| *p >= 2),
        "records of the added partitions were handled: {partitions:?}"
    );
}

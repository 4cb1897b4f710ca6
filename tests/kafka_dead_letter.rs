//! Dead letters of hostile records, and replays of dead letters that cannot be replayed, on a
//! real broker (issue #12, F4 and F5): the `kafka` backend on Kafka 3.9.
//!
//! Run: `GODEV_KAFKA_BROKERS=127.0.0.1:9092 cargo test -p godev-kit --features broker-tests --test kafka_dead_letter`

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use godev_kafka::consumer::{
    ConsumerSettings, DeadLetter, DeadLetterReason, ReplayReport, replay_dead_letters,
};
use godev_kafka::transport::kafka::{KafkaOptions, KafkaTransport};
use godev_kafka::transport::{OutgoingRecord, Polled, Record, Transport};
use godev_kafka::{
    Codec, Consumer, Context, Event, HandlerError, TopicMap, UnknownTagPolicy, handler, testing,
};
use serde::{Deserialize, Serialize};
use support::Backend;

/// A topic's `max.message.bytes` that takes a 1 MiB value (the default, 1 048 588, does not).
const LARGE_TOPIC_LIMIT: usize = 4 << 20;
/// A dead-letter topic's `max.message.bytes` far below a dead letter's own limit (1 MB), so
/// that a letter which fits the framework's limit is still refused by the topic.
const SMALL_DLQ_LIMIT: usize = 16 << 10;

#[derive(Debug, Serialize, Deserialize, Event)]
#[event(topic = "pings", name = "dl.ping")]
struct Ping {
    n: u32,
}

/// The pings handled, per real topic (tests of this file share the process).
static HANDLED: Mutex<BTreeMap<String, Vec<u32>>> = Mutex::new(BTreeMap::new());

fn handled(topic: &str) -> Vec<u32> {
    HANDLED
        .lock()
        .unwrap()
        .get(topic)
        .cloned()
        .unwrap_or_default()
}

#[handler]
async fn on_ping(event: Ping, ctx: Context) -> Result<(), HandlerError> {
    HANDLED
        .lock()
        .unwrap()
        .entry(ctx.topic().to_owned())
        .or_default()
        .push(event.n);
    Ok(())
}

/// A `kafka` transport that fetches records of up to 8 MiB (the default, 1 MiB per
/// partition, cannot return a 1 MiB value with its headers) and gives up on a request after
/// `request_timeout`.
async fn transport(brokers: &str, request_timeout: Duration) -> Arc<KafkaTransport> {
    let mut options = KafkaOptions::new(brokers.split(','));
    options.client_id = "godev-kafka-tests".into();
    options.linger = Duration::from_millis(2);
    options.request_timeout = request_timeout;
    options.fetch_max_bytes = 8 << 20;
    Arc::new(
        KafkaTransport::connect(options)
            .await
            .expect("connect to the Kafka 3.9 test broker"),
    )
}

/// Creates `topic` with one partition and `max.message.bytes` = `limit`, with Kafka's tool.
async fn create_topic_with_limit(brokers: &str, topic: &str, limit: usize) {
    let limit = format!("max.message.bytes={limit}");
    let output = support::kafka_tool(
        Backend::Kafka,
        "topics",
        &[
            "--bootstrap-server",
            brokers.split(',').next().unwrap(),
            "--create",
            "--topic",
            topic,
            "--partitions",
            "1",
            "--replication-factor",
            "1",
            "--config",
            &limit,
        ],
    )
    .await;
    assert!(
        output.status.success(),
        "create {topic} with {limit}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Reads the first `n` records of `topic` with a group member of its own.
async fn read(transport: &dyn Transport, topic: &str, n: usize) -> Vec<Record> {
    let group = testing::unique_name("dl-reader");
    let mut member = transport
        .join(Backend::Kafka.group_options(&group, topic))
        .await
        .expect("join the reader group");
    let mut records: BTreeMap<(i32, i64), Record> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while records.len() < n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} records of {topic} read in 60 s",
            records.len()
        );
        if let Polled::Records(batch) = member.poll(Duration::from_millis(500)).await.unwrap() {
            for record in batch {
                records.insert((record.partition, record.offset), record);
            }
        }
    }
    member.leave().await.unwrap();
    records.into_values().collect()
}

/// Waits until `group` committed up to the end of every non-empty partition of `topic`.
async fn wait_committed_to_end(brokers: &str, group: &str, topic: &str) {
    let end: BTreeMap<i32, i64> = testing::end_offsets(brokers, topic)
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, end)| *end > 0)
        .collect();
    support::wait_until(
        &format!("{group} to commit to the end of {topic}"),
        Duration::from_secs(30),
        || async {
            testing::committed_offsets(brokers, group, topic)
                .await
                .is_ok_and(|committed| committed == end)
        },
    )
    .await;
}

/// Issue #12 F5: a 1 MiB value of 0x01 bytes became a 6.3 MB dead letter, a 1 MiB unknown
/// tag a 3.3 MB one; the broker refused them forever and their partition stalled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_records_are_dead_lettered_within_bounds_and_their_partition_moves_on() {
    let brokers = support::brokers().await;
    let topic = testing::unique_name("dl-hostile");
    let dlq = format!("{topic}.dlq");
    create_topic_with_limit(&brokers, &topic, LARGE_TOPIC_LIMIT).await;
    create_topic_with_limit(&brokers, &dlq, SMALL_DLQ_LIMIT).await;
    let transport = transport(&brokers, Duration::from_secs(20)).await;

    let control_bytes = vec![0x01; 1 << 20];
    let huge_tag = format!(r#"{{"event_type":"{}"}}"#, "t".repeat(1 << 20)).into_bytes();
    // Fits a dead letter (about 66 KB as text) but not this dead-letter topic.
    let mid_text = vec![b'x'; 64 << 10];
    // Six bytes of JSON escape per control byte: more than twice its size as text.
    let small_binary = b"\x01\x02\x03 bad".to_vec();
    let ping = |n: u32| Codec::Tagged.encode(&Ping { n }, "test").unwrap();
    let values = [
        control_bytes.clone(),
        ping(1),
        huge_tag.clone(),
        ping(3),
        mid_text.clone(),
        ping(5),
        small_binary.clone(),
        ping(7),
    ];
    for (offset, value) in values.iter().enumerate() {
        let record = OutgoingRecord {
            topic: topic.clone(),
            partition: 0,
            key: Some(b"k".to_vec()),
            value: value.clone(),
        };
        let written = transport.produce(record).await.expect("produce");
        assert_eq!(written, offset as i64);
    }

    let group = testing::unique_name("dl-hostile-group");
    let settings = ConsumerSettings {
        // Above the 1 MiB tag record, so that it reaches the unknown-tag policy.
        max_record_bytes: 2 << 20,
        ..Backend::Kafka.consumer_settings()
    };
    let running = Consumer::builder_shared(transport.clone(), &group)
        .topics(TopicMap::from_iter([("pings", topic.as_str())]))
        .codec(Codec::Tagged)
        .unknown_tag(UnknownTagPolicy::DeadLetter)
        .settings(settings)
        .handler::<on_ping>()
        .build()
        .unwrap()
        .start();
    support::wait_until(
        "the pings behind the hostile records to be handled",
        Duration::from_secs(60),
        || async {
            assert!(!running.has_stopped(), "{:?}", running.status());
            handled(&topic).len() >= 4
        },
    )
    .await;
    assert_eq!(handled(&topic), [1, 3, 5, 7], "each handled once, in order");
    wait_committed_to_end(&brokers, &group, &topic).await;
    running.shutdown().await.unwrap();

    let records = read(transport.as_ref(), &dlq, 4).await;
    let letters: Vec<DeadLetter> = records
        .iter()
        .map(|r| {
            assert!(r.value.len() <= SMALL_DLQ_LIMIT, "{} bytes", r.value.len());
            serde_json::from_slice(&r.value).expect("a dead letter")
        })
        .collect();
    let summary: Vec<_> = letters
        .iter()
        .map(|l| (l.origin_offset, l.reason, l.value_len, l.value_omitted))
        .collect();
    assert_eq!(
        summary,
        [
            (0, DeadLetterReason::Malformed, Some(1 << 20), true),
            (
                2,
                DeadLetterReason::UnknownTag,
                Some(huge_tag.len() as u64),
                true
            ),
            (4, DeadLetterReason::Malformed, Some(64 << 10), true),
            (
                6,
                DeadLetterReason::Malformed,
                Some(small_binary.len() as u64),
                false
            ),
        ],
        "(origin offset, reason, value size, value left out)"
    );
    for (letter, record) in letters.iter().zip(&records) {
        assert_eq!(
            (letter.origin_topic.as_str(), letter.origin_partition),
            (topic.as_str(), 0)
        );
        assert_eq!(letter.group, group);
        assert_eq!(
            (letter.key.as_deref(), record.key.as_deref()),
            (Some("k"), Some(&b"k"[..])),
            "the key is kept, in the letter and as the record's key"
        );
    }
    for bounded in &letters[..3] {
        assert_eq!((&bounded.value, &bounded.value_base64), (&None, &None));
    }
    let tag = letters[1].tag.as_deref().unwrap();
    assert!(
        tag.starts_with("ttt") && tag.len() < 400,
        "tag cut: {} bytes",
        tag.len()
    );
    assert!(letters[1].error.len() < 5000, "error cut");
    assert_eq!(letters[3].value, None, "control bytes go to base64");
    assert_eq!(letters[3].original_value(), small_binary, "byte-exact");
}

/// A dead letter as the consumer writes it, for `value` at `origin_topic[partition]@offset`.
fn letter(origin_topic: &str, partition: i32, offset: i64, value: &[u8]) -> Vec<u8> {
    let record = Record::new(
        origin_topic,
        partition,
        offset,
        Some(format!("key-{offset}").into_bytes()),
        value,
    );
    let letter = DeadLetter::from_record(&record, "g", DeadLetterReason::Permanent, "boom".into());
    serde_json::to_vec(&letter).unwrap()
}

/// Issue #12 F4: a dead letter with `"origin_partition": -1`, or with an origin topic that
/// does not exist, failed its produce; the replay stopped before committing, so every later
/// replay stopped at the same letter.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn good_dead_letters_behind_ones_that_cannot_be_replayed_are_replayed() {
    let brokers = support::brokers().await;
    let origin = testing::unique_name("dl-origin");
    let dlq = format!("{origin}.dlq");
    testing::create_topic(&brokers, &origin, 2).await.unwrap();
    testing::create_topic(&brokers, &dlq, 1).await.unwrap();
    // A topic name the broker cannot create: it collides with an existing one (`.` and `_`
    // are the same in metric names). The broker answers for the dead-letter topic meanwhile.
    let taken = testing::unique_name("dl.taken");
    testing::create_topic(&brokers, &taken, 1).await.unwrap();
    let colliding = taken.replace('.', "_");
    // Short, so that the metadata requests for the colliding topic give up soon.
    let transport = transport(&brokers, Duration::from_secs(5)).await;

    let negative = String::from_utf8(letter(&origin, 1, 11, b"negative"))
        .unwrap()
        .replace(r#""origin_partition":1,"#, r#""origin_partition": -1,"#);
    assert!(negative.contains(r#""origin_partition": -1"#));
    let letters = [
        letter(&origin, 0, 10, b"first"),
        negative.into_bytes(),
        letter(&origin, 1, 12, b"second"),
        letter("no such topic", 0, 13, b"illegal name"),
        letter(&colliding, 0, 14, b"colliding name"),
        letter(&origin, 0, 15, &[0xff, 0x00, 0x01]),
    ];
    for value in letters {
        let record = OutgoingRecord {
            topic: dlq.clone(),
            partition: 0,
            key: None,
            value,
        };
        transport
            .produce(record)
            .await
            .expect("produce a dead letter");
    }

    let group = testing::unique_name("dl-replayer");
    let report = replay_dead_letters(transport.clone(), &dlq, &group, Duration::from_secs(90))
        .await
        .expect("the replay goes past what it cannot replay");
    assert_eq!((report.replayed, report.unreadable), (3, 0), "{report:?}");
    let skipped: Vec<(i32, i64)> = report
        .skipped
        .iter()
        .map(|s| (s.partition, s.offset))
        .collect();
    assert_eq!(skipped, [(0, 1), (0, 3), (0, 4)], "{report:?}");
    for (skip, says) in report.skipped.iter().zip([
        "origin_partition -1 is not a partition",
        "has characters Kafka does not allow",
        "is not served by the brokers",
    ]) {
        assert!(
            skip.reason.contains(says),
            "{:?} should say {says:?}",
            skip.reason
        );
    }
    let replayed: Vec<(i32, Option<Vec<u8>>, Vec<u8>)> = read(transport.as_ref(), &origin, 3)
        .await
        .into_iter()
        .map(|r| (r.partition, r.key, r.value))
        .collect();
    assert_eq!(
        replayed,
        [
            (0, Some(b"key-10".to_vec()), b"first".to_vec()),
            (0, Some(b"key-15".to_vec()), vec![0xff, 0x00, 0x01]),
            (1, Some(b"key-12".to_vec()), b"second".to_vec()),
        ],
        "the good letters written back to their partitions, byte-exact"
    );
    wait_committed_to_end(&brokers, &group, &dlq).await;
    let end = testing::end_offsets(&brokers, &dlq).await.unwrap();
    assert_eq!(end, BTreeMap::from([(0, 6)]), "nothing deleted");

    let again = replay_dead_letters(transport.clone(), &dlq, &group, Duration::from_secs(30))
        .await
        .expect("a second replay");
    assert_eq!(again, ReplayReport::default(), "it starts after all six");
}

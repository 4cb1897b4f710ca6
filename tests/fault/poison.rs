//! 4. Poison records (bad JSON, bytes that are not text, an unknown tag with
//!    `UnknownTagPolicy::DeadLetter`, a permanent handler error, a panic, retries that run out,
//!    an undecodable payload) in a stream of good events: each poison record lands in
//!    `<topic>.dlq` with its metadata, every good event is handled, the consumer never stops.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use godev_kafka::consumer::{DeadLetter, DeadLetterReason};
use godev_kafka::transport::{Polled, Transport};
use godev_kafka::{
    Consumer, ConsumerSettings, Delivery, Producer, TopicMap, UnknownTagPolicy, testing,
};
use tokio::task::JoinSet;

use super::{
    BadTick, Doomed, Explosive, Flaky, Stray, TOPIC, Tick, consumer_settings, figure, handled,
    on_doomed, on_explosive, on_flaky, on_tick, producer, sample,
};
use crate::support::{self, Backend};

const PARTITIONS: i32 = 3;
const EVENTS: u64 = 1_400;
/// Every tenth event is poison, of the kinds in turn.
const KINDS: [Kind; 7] = [
    Kind::BadJson,
    Kind::NotText,
    Kind::UnknownTag,
    Kind::Permanent,
    Kind::Panic,
    Kind::Flaky,
    Kind::Undecodable,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    BadJson,
    NotText,
    UnknownTag,
    Permanent,
    Panic,
    Flaky,
    Undecodable,
}

impl Kind {
    fn of(id: u64) -> Option<Kind> {
        (id % 10 == 3).then(|| KINDS[(id / 10) as usize % KINDS.len()])
    }

    /// Reason, tag, handler (suffix) and attempts the dead letter must show.
    fn expected(
        self,
    ) -> (
        DeadLetterReason,
        Option<&'static str>,
        Option<&'static str>,
        u32,
    ) {
        match self {
            Kind::BadJson | Kind::NotText => (DeadLetterReason::Malformed, None, None, 0),
            Kind::UnknownTag => (DeadLetterReason::UnknownTag, Some("fault.unknown"), None, 0),
            Kind::Permanent => (
                DeadLetterReason::Permanent,
                Some("fault.permanent"),
                Some("on_doomed"),
                1,
            ),
            Kind::Panic => (
                DeadLetterReason::Panicked,
                Some("fault.panic"),
                Some("on_explosive"),
                1,
            ),
            Kind::Flaky => (
                DeadLetterReason::RetriesExhausted,
                Some("fault.flaky"),
                Some("on_flaky"),
                SETTINGS_ATTEMPTS,
            ),
            Kind::Undecodable => (
                DeadLetterReason::Undecodable,
                Some("fault.tick"),
                Some("on_tick"),
                0,
            ),
        }
    }
}

const SETTINGS_ATTEMPTS: u32 = 2;

/// A poison record as written: where, what, and its exact key and value bytes.
#[derive(Debug)]
struct Poison {
    kind: Kind,
    key: String,
    value: Vec<u8>,
}

pub fn test(backend: Backend) {
    // The panicking handler is expected: keep its panic messages out of the output.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let expected = info
            .payload()
            .downcast_ref::<String>()
            .is_some_and(|m| m.contains("blew up"));
        if !expected {
            default_hook(info);
        }
    }));
    crate::runtime().block_on(run(backend));
}

/// Sends event `id` (good or poison); answers where it went and, for poison, what it was.
async fn send(
    producer: &Producer,
    topic: &str,
    id: u64,
) -> (u64, godev_kafka::Result<Delivery>, Option<Poison>) {
    let tick = Tick::new(id);
    let key = tick.key.clone();
    let raw = |value: Vec<u8>| async {
        let result = producer
            .send_raw(topic, Some(key.as_bytes()), value.clone())
            .await;
        (result, value)
    };
    let (result, value) = match Kind::of(id) {
        None => (producer.send(&tick).await, Vec::new()),
        Some(Kind::BadJson) => raw(format!("{{\"id\": {id}, not json").into_bytes()).await,
        Some(Kind::NotText) => raw(vec![0xff, 0xfe, 0x00, 0x80, id as u8]).await,
        Some(kind) => {
            let (id, key) = (tick.id, tick.key.clone());
            let result = match kind {
                Kind::UnknownTag => producer.send(&Stray { id, key }).await,
                Kind::Permanent => producer.send(&Doomed { id, key }).await,
                Kind::Panic => producer.send(&Explosive { id, key }).await,
                Kind::Flaky => producer.send(&Flaky { id, key }).await,
                Kind::Undecodable => {
                    let id = format!("not a number {id}");
                    producer.send(&BadTick { id, key }).await
                }
                Kind::BadJson | Kind::NotText => unreachable!(),
            };
            // The value as written is read back from the dead letter's origin below.
            (result, Vec::new())
        }
    };
    let poison = Kind::of(id).map(|kind| Poison { kind, key, value });
    (id, result, poison)
}

async fn run(backend: Backend) {
    let brokers = backend.brokers().await;
    let topic = testing::unique_name(&format!("fault-poison-{}", backend.client()));
    let dlq = format!("{topic}.dlq");
    let group = testing::unique_name(&format!("fault-poison-{}-group", backend.client()));
    testing::create_topic(&brokers, &topic, PARTITIONS)
        .await
        .expect("create topic");
    testing::create_topic(&brokers, &dlq, 1)
        .await
        .expect("create the dead-letter topic");
    let transport: Arc<dyn Transport> = backend.transport(&brokers).await;
    let settings = ConsumerSettings {
        max_attempts: SETTINGS_ATTEMPTS,
        ..consumer_settings(backend, Duration::from_secs(6))
    };
    let consumer = Consumer::builder_shared(transport.clone(), &group)
        .topics(TopicMap::from_iter([(TOPIC, topic.as_str())]))
        .unknown_tag(UnknownTagPolicy::DeadLetter)
        .settings(settings)
        .handler::<on_tick>()
        .handler::<on_doomed>()
        .handler::<on_explosive>()
        .handler::<on_flaky>()
        .build()
        .unwrap();
    let running = consumer.start();

    let producer = producer(transport.clone(), &topic);
    let mut sends = JoinSet::new();
    for id in 0..EVENTS {
        let (producer, topic) = (producer.clone(), topic.clone());
        sends.spawn(async move { send(&producer, &topic, id).await });
    }
    let mut good: BTreeSet<u64> = BTreeSet::new();
    let mut poison: BTreeMap<(i32, i64), (u64, Poison)> = BTreeMap::new();
    while let Some(sent) = sends.join_next().await {
        let (id, result, bad) = sent.unwrap();
        let delivery = result.unwrap_or_else(|e| panic!("send of event {id}: {e}"));
        match bad {
            None => {
                good.insert(id);
            }
            Some(bad) => {
                poison.insert((delivery.partition, delivery.offset), (id, bad));
            }
        }
    }

    // Every good event handled, and the consumer still running.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            !running.has_stopped(),
            "the consumer stopped: {:?}",
            running.status()
        );
        let seen: BTreeSet<u64> = handled(&topic).iter().map(|h| h.id).collect();
        if good.is_subset(&seen) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "good events not handled: {}",
            sample(good.difference(&seen), 10)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let handled_ids: Vec<u64> = handled(&topic).iter().map(|h| h.id).collect();
    assert!(
        handled_ids.iter().all(|id| good.contains(id)),
        "a poison record reached on_tick"
    );

    // Read the dead letters back with a raw group member.
    let letters = read_dead_letters(backend, transport.as_ref(), &dlq, poison.len()).await;
    let mut by_origin: BTreeMap<(i32, i64), DeadLetter> = BTreeMap::new();
    for letter in letters {
        let origin = (letter.origin_partition, letter.origin_offset);
        assert!(
            poison.contains_key(&origin),
            "a dead letter for a good record: {letter:?}"
        );
        by_origin.insert(origin, letter);
    }
    let mut per_reason: BTreeMap<String, usize> = BTreeMap::new();
    for (origin, (id, bad)) in &poison {
        let letter = by_origin.get(origin).unwrap_or_else(|| {
            panic!("no dead letter for {:?} event {id} at {origin:?}", bad.kind)
        });
        let (reason, tag, handler, attempts) = bad.kind.expected();
        let what = format!("{:?} event {id}: {letter:?}", bad.kind);
        assert_eq!(letter.reason, reason, "{what}");
        assert_eq!(letter.origin_topic, topic, "{what}");
        assert_eq!(letter.group, group, "{what}");
        assert_eq!(letter.tag.as_deref(), tag, "{what}");
        match handler {
            Some(h) => assert!(
                letter.handler.as_deref().is_some_and(|n| n.ends_with(h)),
                "{what}"
            ),
            None => assert_eq!(letter.handler, None, "{what}"),
        }
        assert_eq!(letter.attempts, attempts, "{what}");
        assert!(!letter.error.is_empty(), "{what}");
        assert_eq!(letter.key.as_deref(), Some(bad.key.as_str()), "{what}");
        match bad.kind {
            Kind::BadJson => {
                assert_eq!(
                    letter.value.as_deref().map(str::as_bytes),
                    Some(&bad.value[..]),
                    "{what}"
                )
            }
            Kind::NotText => {
                assert_eq!(letter.value, None, "{what}");
                assert!(letter.value_base64.is_some(), "{what}");
            }
            _ => {
                let value: serde_json::Value =
                    serde_json::from_str(letter.value.as_deref().expect("value")).expect("JSON");
                assert_eq!(value["data"]["key"], bad.key.as_str(), "{what}");
            }
        }
        *per_reason.entry(format!("{reason:?}")).or_default() += 1;
    }

    // The group committed past everything, poison included.
    let ends = testing::end_offsets(&brokers, &topic).await.unwrap();
    support::wait_until(
        "the group to commit to the end of every partition",
        Duration::from_secs(30),
        || {
            let (brokers, group, topic) = (brokers.clone(), group.clone(), topic.clone());
            let ends = ends.clone();
            async move {
                testing::committed_offsets(&brokers, &group, &topic)
                    .await
                    .is_ok_and(|c| c == ends)
            }
        },
    )
    .await;
    assert!(!running.has_stopped(), "the consumer stopped");
    running.shutdown().await.expect("clean shutdown");
    figure(
        backend,
        "poison",
        &[
            ("events", EVENTS.to_string()),
            ("good", good.len().to_string()),
            ("good_handled", handled_ids.len().to_string()),
            ("poison", poison.len().to_string()),
            ("dead_letters", by_origin.len().to_string()),
            (
                "per_reason",
                per_reason
                    .iter()
                    .map(|(r, n)| format!("{r}:{n}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ],
    );
}

/// Reads `<topic>.dlq` from the start with a fresh group until `n` distinct letters arrived.
async fn read_dead_letters(
    backend: Backend,
    transport: &dyn Transport,
    dlq: &str,
    n: usize,
) -> Vec<DeadLetter> {
    let group = testing::unique_name("fault-dlq-reader");
    let mut member = transport
        .join(backend.group_options(&group, dlq))
        .await
        .expect("join the dead-letter reader");
    let mut letters: BTreeMap<(i32, i64), DeadLetter> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while letters.len() < n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} dead letters read",
            letters.len()
        );
        if let Polled::Records(records) = member.poll(Duration::from_millis(500)).await.unwrap() {
            for record in records {
                let letter: DeadLetter =
                    serde_json::from_slice(&record.value).expect("a dead letter is JSON");
                letters.insert((letter.origin_partition, letter.origin_offset), letter);
            }
        }
    }
    member.leave().await.unwrap();
    letters.into_values().collect()
}

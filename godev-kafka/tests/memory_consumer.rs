//! The consumer runner on the in-memory backend: dispatch, policies, groups, order, offsets.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use godev_kafka::consumer::{ConsumerSettings, DeadLetter, DeadLetterReason};
use godev_kafka::transport::memory::MemoryTransport;
use godev_kafka::{
    Consumer, Context, Event, HandlerError, Producer, TopicMap, UnknownTagPolicy, handler,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(topic = "orders", key = "order_id")]
enum OrderEvent {
    #[event(name = "order.placed")]
    Placed { order_id: u64, seq: u64 },
    #[event(name = "order.cancelled")]
    Cancelled { order_id: u64, seq: u64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(topic = "orders", name = "order.shipped", key = "order_id")]
struct OrderShipped {
    order_id: u64,
}

/// Handled records per real topic: (handler, partition, offset, order id, seq).
type Seen = Vec<(&'static str, i32, i64, u64, u64)>;
static SEEN: Mutex<Option<HashMap<String, Seen>>> = Mutex::new(None);

fn record(handler: &'static str, ctx: &Context, order_id: u64, seq: u64) {
    let mut seen = SEEN.lock().unwrap();
    let entry = seen
        .get_or_insert_with(HashMap::new)
        .entry(ctx.topic().to_owned())
        .or_default();
    entry.push((handler, ctx.partition(), ctx.offset(), order_id, seq));
}

fn seen(topic: &str) -> Seen {
    SEEN.lock()
        .unwrap()
        .as_ref()
        .and_then(|m| m.get(topic).cloned())
        .unwrap_or_default()
}

#[handler]
async fn on_order(event: OrderEvent, ctx: Context) -> Result<(), HandlerError> {
    let (OrderEvent::Placed { order_id, seq } | OrderEvent::Cancelled { order_id, seq }) = event;
    tokio::task::yield_now().await;
    record("on_order", &ctx, order_id, seq);
    Ok(())
}

#[handler(group = "other-group")]
async fn on_order_elsewhere(event: OrderEvent, ctx: Context) -> Result<(), HandlerError> {
    let (OrderEvent::Placed { order_id, seq } | OrderEvent::Cancelled { order_id, seq }) = event;
    record("on_order_elsewhere", &ctx, order_id, seq);
    Ok(())
}

#[handler]
async fn on_order_again(_event: OrderEvent) -> Result<(), HandlerError> {
    Ok(())
}

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

#[handler(max_attempts = 3, backoff_ms = 1)]
async fn flaky_shipping(event: OrderShipped, ctx: Context) -> Result<(), HandlerError> {
    FLAKY_CALLS.fetch_add(1, Ordering::SeqCst);
    if event.order_id == 13 {
        return Err(HandlerError::permanent("order 13 is cursed"));
    }
    if event.order_id == 66 {
        panic!("shipping label printer on fire");
    }
    if ctx.attempt() < 2 {
        return Err(std::io::Error::other("warehouse busy").into());
    }
    record(
        "flaky_shipping",
        &ctx,
        event.order_id,
        u64::from(ctx.attempt()),
    );
    Ok(())
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn unique_topic(name: &str) -> String {
    format!("{name}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn fast_settings() -> ConsumerSettings {
    ConsumerSettings {
        commit_interval: Duration::from_millis(20),
        poll_wait: Duration::from_millis(20),
        backoff: Duration::from_millis(1),
        shutdown_timeout: Duration::from_secs(5),
        ..ConsumerSettings::default()
    }
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn produce_orders(producer: &Producer, orders: u64, per_order: u64) {
    for seq in 0..per_order {
        for order_id in 0..orders {
            let event = if seq % 2 == 0 {
                OrderEvent::Placed { order_id, seq }
            } else {
                OrderEvent::Cancelled { order_id, seq }
            };
            producer.send(&event).await.unwrap();
        }
    }
}

fn setup(partitions: i32) -> (MemoryTransport, TopicMap, String, Producer) {
    let topic = unique_topic("orders");
    let transport = MemoryTransport::new(partitions);
    transport.create_topic(&topic, partitions);
    let topics = TopicMap::from_iter([("orders", topic.clone())]);
    let producer = Producer::new(transport.clone(), topics.clone());
    (transport, topics, topic, producer)
}

#[tokio::test]
async fn dispatches_each_tag_to_its_handler_and_commits_the_end() {
    let (transport, topics, topic, producer) = setup(3);
    produce_orders(&producer, 5, 4).await;
    let consumer = Consumer::builder(transport.clone(), "g1")
        .topics(topics)
        .settings(fast_settings())
        .handler::<on_order>()
        .build()
        .unwrap();
    let running = consumer.start();
    wait_until("20 orders handled", || seen(&topic).len() == 20).await;
    running.shutdown().await.unwrap();
    for partition in 0..3 {
        assert_eq!(
            transport.committed("g1", &topic, partition),
            Some(transport.end_offset(&topic, partition))
        );
    }
    let seen = seen(&topic);
    assert!(seen.iter().all(|(handler, ..)| *handler == "on_order"));
    // Keyed by order id: every event of an order sits in one partition, in send order.
    for order_id in 0..5 {
        let seqs: Vec<u64> = seen
            .iter()
            .filter(|s| s.3 == order_id)
            .map(|s| s.4)
            .collect();
        assert_eq!(seqs, vec![0, 1, 2, 3], "order {order_id}");
        let partitions: std::collections::HashSet<i32> = seen
            .iter()
            .filter(|s| s.3 == order_id)
            .map(|s| s.1)
            .collect();
        assert_eq!(partitions.len(), 1);
    }
}

#[tokio::test]
async fn each_group_gets_every_record() {
    let (transport, topics, topic, producer) = setup(2);
    produce_orders(&producer, 3, 2).await;
    let consumer = Consumer::builder(transport.clone(), "g-main")
        .topics(topics)
        .settings(fast_settings())
        .handler::<on_order>()
        .handler::<on_order_elsewhere>()
        .build()
        .unwrap();
    assert_eq!(consumer.groups(), vec!["g-main", "other-group"]);
    let running = consumer.start();
    wait_until("both groups handled all 6", || seen(&topic).len() == 12).await;
    running.shutdown().await.unwrap();
    let by_handler = |name| seen(&topic).iter().filter(|s| s.0 == name).count();
    assert_eq!(
        (by_handler("on_order"), by_handler("on_order_elsewhere")),
        (6, 6)
    );
}

#[test]
fn two_handlers_for_one_tag_in_one_group_are_refused() {
    let error = Consumer::builder(MemoryTransport::new(1), "g")
        .handler::<on_order>()
        .handler::<on_order_again>()
        .build()
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("on_order") && message.contains("on_order_again"),
        "{message}"
    );
    assert!(
        message.contains("order.placed") && message.contains("group `g`"),
        "{message}"
    );
}

#[tokio::test]
async fn unknown_tags_follow_the_policy() {
    for policy in [
        UnknownTagPolicy::Skip,
        UnknownTagPolicy::DeadLetter,
        UnknownTagPolicy::Fail,
    ] {
        let (transport, topics, topic, producer) = setup(1);
        producer
            .send(&OrderEvent::Placed {
                order_id: 1,
                seq: 0,
            })
            .await
            .unwrap();
        producer.send(&OrderShipped { order_id: 1 }).await.unwrap(); // no handler registered
        producer
            .send(&OrderEvent::Placed {
                order_id: 1,
                seq: 2,
            })
            .await
            .unwrap();
        let consumer = Consumer::builder(transport.clone(), "g")
            .topics(topics)
            .settings(fast_settings())
            .unknown_tag(policy)
            .handler::<on_order>()
            .build()
            .unwrap();
        let running = consumer.start();
        match policy {
            UnknownTagPolicy::Skip | UnknownTagPolicy::DeadLetter => {
                wait_until("both known records handled", || seen(&topic).len() == 2).await;
                running.shutdown().await.unwrap();
                assert_eq!(transport.committed("g", &topic, 0), Some(3));
                let dead = transport.records(&format!("{topic}.dlq"), 0);
                if policy == UnknownTagPolicy::Skip {
                    assert!(dead.is_empty());
                } else {
                    assert_eq!(dead.len(), 1);
                    let letter: DeadLetter = serde_json::from_slice(&dead[0].value).unwrap();
                    assert_eq!(
                        (letter.reason, letter.origin_offset),
                        (DeadLetterReason::UnknownTag, 1)
                    );
                    assert_eq!(letter.tag.as_deref(), Some("order.shipped"));
                }
            }
            UnknownTagPolicy::Fail => {
                wait_until("the consumer stopped", || running.has_stopped()).await;
                let error = running.shutdown().await.unwrap_err();
                assert!(error.to_string().contains("order.shipped"), "{error}");
                assert_eq!(seen(&topic).len(), 1);
                // Nothing past the unknown record is committed.
                assert_eq!(transport.committed("g", &topic, 0), Some(1));
            }
        }
    }
}

#[tokio::test]
async fn failures_are_retried_then_dead_lettered_and_the_consumer_goes_on() {
    let (transport, topics, topic, producer) = setup(1);
    for order_id in [1, 13, 66, 2] {
        producer.send(&OrderShipped { order_id }).await.unwrap();
    }
    producer
        .send_raw(&topic, Some(b"k"), b"not json".to_vec())
        .await
        .unwrap();
    producer
        .send_raw(&topic, None, vec![0xff, 0x00])
        .await
        .unwrap();
    producer.send(&OrderShipped { order_id: 3 }).await.unwrap();
    let consumer = Consumer::builder(transport.clone(), "g")
        .topics(topics)
        .settings(fast_settings())
        .handler::<flaky_shipping>()
        .build()
        .unwrap();
    let running = consumer.start();
    wait_until("all records committed", || {
        transport.committed("g", &topic, 0) == Some(7)
    })
    .await;
    running.shutdown().await.unwrap();
    let handled: Vec<(u64, u64)> = seen(&topic).iter().map(|s| (s.3, s.4)).collect();
    assert_eq!(
        handled,
        vec![(1, 2), (2, 2), (3, 2)],
        "(order, attempt that succeeded)"
    );
    let letters: Vec<DeadLetter> = transport
        .records(&format!("{topic}.dlq"), 0)
        .iter()
        .map(|r| serde_json::from_slice(&r.value).unwrap())
        .collect();
    let summary: Vec<(i64, DeadLetterReason, u32)> = letters
        .iter()
        .map(|l| (l.origin_offset, l.reason, l.attempts))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, DeadLetterReason::Permanent, 1),
            (2, DeadLetterReason::Panicked, 1),
            (4, DeadLetterReason::Malformed, 0),
            (5, DeadLetterReason::Malformed, 0),
        ]
    );
    assert!(letters[1].error.contains("printer on fire"));
    assert_eq!(letters[2].original_key(), Some(b"k".to_vec()));
    assert_eq!(letters[2].original_value(), b"not json");
    assert_eq!(
        letters[3].original_value(),
        vec![0xff, 0x00],
        "non-UTF-8 values survive byte-exact"
    );
}

#[tokio::test]
async fn two_members_split_partitions_and_one_takes_all_when_the_other_leaves() {
    let (transport, topics, topic, producer) = setup(4);
    let build = || {
        Consumer::builder(transport.clone(), "split")
            .topics(topics.clone())
            .settings(fast_settings())
            .handler::<on_order>()
            .build()
            .unwrap()
    };
    let first = build().start();
    let second = build().start();
    let assigned = |running: &godev_kafka::RunningConsumer| running.status()[0].assigned.len();
    wait_until("both members own two partitions", || {
        assigned(&first) == 2 && assigned(&second) == 2
    })
    .await;
    let mut owned: Vec<i32> = first.status()[0]
        .assigned
        .iter()
        .chain(&second.status()[0].assigned)
        .map(|tp| tp.partition)
        .collect();
    owned.sort();
    assert_eq!(
        owned,
        vec![0, 1, 2, 3],
        "each partition has exactly one owner"
    );
    produce_orders(&producer, 8, 2).await;
    wait_until("16 handled", || seen(&topic).len() == 16).await;
    second.shutdown().await.unwrap();
    wait_until("the first member owns all four", || assigned(&first) == 4).await;
    produce_orders(&producer, 8, 1).await;
    wait_until("24 handled", || seen(&topic).len() == 24).await;
    first.shutdown().await.unwrap();
    let mut offsets: Vec<(i32, i64)> = seen(&topic).iter().map(|s| (s.1, s.2)).collect();
    offsets.sort();
    offsets.dedup();
    assert_eq!(offsets.len(), 24, "no record handled twice");
}

#[tokio::test]
async fn committed_offsets_survive_a_restart_of_the_group() {
    let (transport, topics, topic, producer) = setup(2);
    let build = || {
        Consumer::builder(transport.clone(), "restart")
            .topics(topics.clone())
            .settings(fast_settings())
            .handler::<on_order>()
            .build()
            .unwrap()
    };
    produce_orders(&producer, 4, 1).await;
    let running = build().start();
    wait_until("4 handled", || seen(&topic).len() == 4).await;
    running.shutdown().await.unwrap();
    produce_orders(&producer, 4, 1).await;
    let running = build().start();
    wait_until("8 handled", || seen(&topic).len() == 8).await;
    running.shutdown().await.unwrap();
    let mut offsets: Vec<(i32, i64)> = seen(&topic).iter().map(|s| (s.1, s.2)).collect();
    offsets.sort();
    offsets.dedup();
    assert_eq!(
        offsets.len(),
        8,
        "the restarted group resumed where it committed"
    );
}

/// Shared state handed to handlers through the consumer.
struct Ledger(Mutex<Vec<u64>>);

#[handler]
async fn book(event: OrderShipped, ctx: Context) -> Result<(), HandlerError> {
    let ledger = ctx
        .state::<std::sync::Arc<Ledger>>()
        .ok_or_else(|| HandlerError::permanent("no ledger"))?;
    ledger.0.lock().unwrap().push(event.order_id);
    Ok(())
}

#[tokio::test]
async fn handlers_reach_the_state_the_consumer_was_given() {
    let (transport, topics, topic, producer) = setup(1);
    for order_id in [5, 6, 7] {
        producer.send(&OrderShipped { order_id }).await.unwrap();
    }
    let ledger = std::sync::Arc::new(Ledger(Mutex::new(Vec::new())));
    let consumer = Consumer::builder(transport.clone(), "stateful")
        .topics(topics)
        .settings(fast_settings())
        .state(ledger.clone())
        .handler::<book>()
        .build()
        .unwrap();
    let running = consumer.start();
    wait_until("three records committed", || {
        transport.committed("stateful", &topic, 0) == Some(3)
    })
    .await;
    running.shutdown().await.unwrap();
    assert_eq!(
        *ledger.0.lock().unwrap(),
        vec![5, 6, 7],
        "every handler call found the ledger"
    );
}

#[handler(dead_letter_topic = "shipping.failures", max_attempts = 1)]
async fn strict_shipping(_event: OrderShipped) -> Result<(), HandlerError> {
    Err(HandlerError::permanent("no carrier"))
}

#[tokio::test]
async fn a_handler_can_name_its_own_dead_letter_topic() {
    let (transport, topics, topic, producer) = setup(1);
    transport.create_topic("shipping.failures", 1);
    producer.send(&OrderShipped { order_id: 8 }).await.unwrap();
    producer
        .send_raw(&topic, None, b"{".to_vec())
        .await
        .unwrap();
    let consumer = Consumer::builder(transport.clone(), "strict")
        .topics(topics)
        .settings(fast_settings())
        .handler::<strict_shipping>()
        .build()
        .unwrap();
    let running = consumer.start();
    wait_until("both records committed", || {
        transport.committed("strict", &topic, 0) == Some(2)
    })
    .await;
    running.shutdown().await.unwrap();
    let failures = transport.records("shipping.failures", 0);
    assert_eq!(
        failures.len(),
        1,
        "the handler's failure goes to its own topic"
    );
    let letter: DeadLetter = serde_json::from_slice(&failures[0].value).unwrap();
    assert_eq!(
        (
            letter.reason,
            letter
                .handler
                .as_deref()
                .map(|h| h.ends_with("strict_shipping"))
        ),
        (DeadLetterReason::Permanent, Some(true))
    );
    assert_eq!(
        transport.records(&format!("{topic}.dlq"), 0).len(),
        1,
        "a record no handler was chosen for (malformed) goes to the topic's dead-letter topic"
    );
}

#[tokio::test]
async fn oversized_records_are_dead_lettered_without_decoding() {
    let (transport, topics, topic, producer) = setup(1);
    producer.send(&OrderShipped { order_id: 1 }).await.unwrap();
    producer
        .send_raw(&topic, Some(b"big"), vec![b'x'; 4096])
        .await
        .unwrap();
    producer.send(&OrderShipped { order_id: 2 }).await.unwrap();
    let settings = ConsumerSettings {
        max_record_bytes: 1024,
        ..fast_settings()
    };
    let consumer = Consumer::builder(transport.clone(), "sizes")
        .topics(topics)
        .settings(settings)
        .handler::<flaky_shipping>()
        .build()
        .unwrap();
    let running = consumer.start();
    wait_until("all three committed", || {
        transport.committed("sizes", &topic, 0) == Some(3)
    })
    .await;
    running.shutdown().await.unwrap();
    let dead = transport.records(&format!("{topic}.dlq"), 0);
    assert_eq!(dead.len(), 1);
    let letter: DeadLetter = serde_json::from_slice(&dead[0].value).unwrap();
    assert_eq!(
        (letter.reason, letter.origin_offset, letter.tag.clone()),
        (DeadLetterReason::Oversized, 1, None)
    );
    assert!(letter.error.contains("4096 bytes"), "{}", letter.error);
    assert_eq!(letter.original_value(), vec![b'x'; 4096], "kept byte-exact");
    let handled: Vec<u64> = seen(&topic).iter().map(|s| s.3).collect();
    assert_eq!(handled, vec![1, 2], "the records around it are handled");
}

static HUNG_ONCE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[handler]
async fn hangs_once(event: OrderShipped, ctx: Context) -> Result<(), HandlerError> {
    if event.order_id == 42 && !HUNG_ONCE.swap(true, Ordering::SeqCst) {
        std::future::pending::<()>().await; // a handler stuck for good, as on a dead socket
    }
    record("hangs_once", &ctx, event.order_id, 0);
    Ok(())
}

#[tokio::test]
async fn a_handler_stuck_past_max_poll_interval_gives_its_partition_up_and_the_record_is_read_again()
 {
    let (transport, topics, topic, producer) = setup(1);
    for order_id in [41, 42, 43] {
        producer.send(&OrderShipped { order_id }).await.unwrap();
    }
    let settings = ConsumerSettings {
        max_poll_interval: Duration::from_millis(300),
        ..fast_settings()
    };
    let consumer = Consumer::builder(transport.clone(), "stuck")
        .topics(topics)
        .settings(settings)
        .handler::<hangs_once>()
        .build()
        .unwrap();
    let running = consumer.start();
    wait_until("all three handled", || seen(&topic).len() == 3).await;
    wait_until("everything committed", || {
        transport.committed("stuck", &topic, 0) == Some(3)
    })
    .await;
    running.shutdown().await.unwrap();
    let handled: Vec<u64> = seen(&topic).iter().map(|s| s.3).collect();
    assert_eq!(
        handled,
        vec![41, 42, 43],
        "the stuck record was read again, in order, after rejoining"
    );
    assert!(HUNG_ONCE.load(Ordering::SeqCst), "the first call did hang");
}

//! What only the `native` backend does, on Kafka 3.9 and Kafka 4 (issue #13): batches in
//! every codec, written by kcat (a client that is not ours), are dispatched; headers kcat
//! writes reach the handler's `Context`; our producer's batches in every codec are read by
//! kcat; a 3 MiB record arrives through a 1 MiB per-partition fetch size; a batch that comes
//! back from the broker corrupt stalls its partition alone. That last test also runs on the
//! `confluent` backend (`confluent_4::`, issue #15), whose client fails every poll on such a
//! batch.
//!
//! Run: `GODEV_KAFKA_BROKERS=127.0.0.1:9092 GODEV_KAFKA4_BROKERS=127.0.0.1:9094 cargo test -p godev-kit --features broker-tests,native --test native_consumer`

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use godev_kafka::transport::native::{NativeOptions, NativeTransport};
use godev_kafka::transport::{Compression, Header, StalledPartition, TopicPartition, Transport};
use godev_kafka::{
    Codec, Consumer, Context, Event, HandlerError, KafkaCode, Producer, TopicMap, handler, testing,
};
use serde::{Deserialize, Serialize};
use support::Backend;
use support::corrupt_proxy::{CorruptProxy, Target};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(topic = "orders", name = "order.placed", key = "order")]
struct OrderPlaced {
    order: u32,
    note: String,
}

/// One handled order: partition, order number, length of its note.
type Seen = (i32, u32, usize);

/// One handled order's headers: partition, order number, `ctx.headers()`, `ctx.header("hop")`.
type SeenHeaders = (i32, u32, Vec<Header>, Option<Vec<u8>>);

/// Topic → the orders handled, in order of handling.
static HANDLED: Mutex<BTreeMap<String, Vec<Seen>>> = Mutex::new(BTreeMap::new());

/// Topic → the headers of the orders handled, in order of handling.
static HEADERS: Mutex<BTreeMap<String, Vec<SeenHeaders>>> = Mutex::new(BTreeMap::new());

#[handler]
async fn on_order(event: OrderPlaced, ctx: Context) -> Result<(), HandlerError> {
    HANDLED
        .lock()
        .unwrap()
        .entry(ctx.topic().to_owned())
        .or_default()
        .push((ctx.partition(), event.order, event.note.len()));
    HEADERS
        .lock()
        .unwrap()
        .entry(ctx.topic().to_owned())
        .or_default()
        .push((
            ctx.partition(),
            event.order,
            ctx.headers().to_vec(),
            ctx.header("hop").map(<[u8]>::to_vec),
        ));
    Ok(())
}

fn handled(topic: &str) -> Vec<Seen> {
    HANDLED
        .lock()
        .unwrap()
        .get(topic)
        .cloned()
        .unwrap_or_default()
}

/// Writes orders `range` to `partition` of `topic` with kcat, compressed with `codec`, each
/// with the `headers` (`name=value`, or `name` for a null value), in order.
fn kcat_orders(
    brokers: &str,
    topic: &str,
    partition: i32,
    codec: &str,
    headers: &[&str],
    range: std::ops::Range<u32>,
) {
    let partition = partition.to_string();
    let mut args = vec!["-p", partition.as_str(), "-z", codec];
    args.extend(headers.iter().flat_map(|h| ["-H", *h]));
    let lines: Vec<String> = range
        .map(|order| format!(r#"{{"event_type":"order.placed","order":{order},"note":"{codec}"}}"#))
        .collect();
    support::kcat_write(brokers, topic, &args, &lines);
}

fn consumer(transport: Arc<dyn Transport>, topic: &str, backend: Backend) -> Consumer {
    let mut settings = backend.consumer_settings();
    settings.max_record_bytes = 4 * 1024 * 1024;
    Consumer::builder_shared(transport, testing::unique_name("native-group"))
        .topics(TopicMap::from_iter([("orders", topic)]))
        .codec(Codec::Tagged)
        .settings(settings)
        .handler::<on_order>()
        .build()
        .unwrap()
}

// `native_3::` and `native_4::` of each test.
on_backends!(native_3 => Native3, native_4 => Native4; [
    batches_in_every_codec_written_by_kcat_are_dispatched,
    headers_written_by_kcat_reach_the_context,
    our_batches_in_every_codec_are_read_by_kcat,
    a_3_mib_record_arrives_through_a_1_mib_fetch_size,
    a_corrupt_batch_from_the_broker_stalls_its_partition_alone,
]);

// Issue #15: the same on the confluent backend, whose client, as the Java one, fails every
// poll on a corrupt batch until its partition is sought past or paused.
on_backends!(#[cfg(feature = "confluent")] confluent_4 => Confluent; [
    a_corrupt_batch_from_the_broker_stalls_its_partition_alone,
]);

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

async fn batches_in_every_codec_written_by_kcat_are_dispatched(backend: Backend) {
    let brokers = backend.brokers().await;
    let topic = testing::unique_name("native-codecs");
    testing::create_topic(&brokers, &topic, CODECS.len() as i32)
        .await
        .unwrap();
    for (partition, codec) in CODECS.iter().enumerate() {
        let first = partition as u32 * 10;
        kcat_orders(
            &brokers,
            &topic,
            partition as i32,
            codec,
            &[],
            first..first + 10,
        );
    }
    let running = consumer(backend.transport(&brokers).await, &topic, backend).start();
    support::wait_until("50 orders handled", Duration::from_secs(60), || async {
        handled(&topic).len() >= 50 || running.has_stopped()
    })
    .await;
    assert!(!running.has_stopped(), "the consumer stopped");
    let stalled: Vec<_> = running
        .status()
        .into_iter()
        .flat_map(|g| g.stalled)
        .collect();
    assert!(stalled.is_empty(), "{stalled:?}");
    let seen = handled(&topic);
    assert_eq!(seen.len(), 50, "each once: {seen:?}");
    for (partition, codec) in CODECS.iter().enumerate() {
        let first = partition as u32 * 10;
        let orders: Vec<u32> = seen
            .iter()
            .filter(|(p, _, _)| *p == partition as i32)
            .map(|(_, order, _)| *order)
            .collect();
        assert_eq!(
            orders,
            (first..first + 10).collect::<Vec<_>>(),
            "{codec}, in order"
        );
    }
    running.shutdown().await.unwrap();
}

/// Issue #13: kcat's headers, a repeated key, a null value, an empty one and a value holding
/// `=` among them, reach `Context::headers` in order, from a plain and a compressed batch.
async fn headers_written_by_kcat_reach_the_context(backend: Backend) {
    let brokers = backend.brokers().await;
    let topic = testing::unique_name("native-headers");
    testing::create_topic(&brokers, &topic, 2).await.unwrap();
    let written = [
        "trace=t-1",
        "hop=gateway",
        "tenant",
        "hop=billing",
        "empty=",
        "note=a=b",
    ];
    kcat_orders(&brokers, &topic, 0, "none", &written, 0..3);
    kcat_orders(&brokers, &topic, 1, "zstd", &written, 3..6);
    let running = consumer(backend.transport(&brokers).await, &topic, backend).start();
    let seen = || {
        HEADERS
            .lock()
            .unwrap()
            .get(&topic)
            .cloned()
            .unwrap_or_default()
    };
    support::wait_until("6 orders handled", Duration::from_secs(60), || async {
        seen().len() >= 6 || running.has_stopped()
    })
    .await;
    assert!(!running.has_stopped(), "the consumer stopped");
    let expected = vec![
        Header::new("trace", "t-1"),
        Header::new("hop", "gateway"),
        Header::null("tenant"),
        Header::new("hop", "billing"),
        Header::new("empty", ""),
        Header::new("note", "a=b"),
    ];
    let mut seen = seen();
    assert_eq!(seen.len(), 6, "each once: {seen:?}");
    seen.sort_by_key(|(_, order, _, _)| *order);
    for (partition, order, headers, hop) in seen {
        assert_eq!(partition, i32::from(order >= 3), "order {order}");
        assert_eq!(
            headers, expected,
            "order {order}: in order, with their values"
        );
        assert_eq!(
            hop.as_deref(),
            Some(&b"billing"[..]),
            "order {order}: the last hop"
        );
    }
    running.shutdown().await.unwrap();
}

async fn our_batches_in_every_codec_are_read_by_kcat(backend: Backend) {
    let brokers = backend.brokers().await;
    for (compression, name) in [
        (Compression::None, "none"),
        (Compression::Gzip, "gzip"),
        (Compression::Snappy, "snappy"),
        (Compression::Lz4, "lz4"),
        (Compression::Zstd, "zstd"),
    ] {
        let topic = testing::unique_name(&format!("native-write-{name}"));
        testing::create_topic(&brokers, &topic, 1).await.unwrap();
        let mut options = NativeOptions::new(brokers.split(','));
        options.compression = compression;
        options.linger = Duration::from_millis(20);
        let transport: Arc<dyn Transport> =
            Arc::new(NativeTransport::connect(options).await.unwrap());
        let producer = Producer::with_transport(
            transport.clone(),
            TopicMap::from_iter([("orders", topic.as_str())]),
            Codec::Tagged,
            "native-test",
        );
        // The partition count read first, so that no send waits for it: concurrent sends
        // reach the producer in the order they are polled, which is the order asserted below
        // (a send that waited for metadata could otherwise overtake another).
        transport.partition_count(&topic).await.unwrap();
        // Sent together, so that they share a batch, which the codec compresses.
        let sends: Vec<_> = (0..20u32)
            .map(|order| {
                let producer = &producer;
                async move {
                    producer
                        .send(&OrderPlaced {
                            order,
                            note: name.into(),
                        })
                        .await
                }
            })
            .collect();
        for result in futures_lite(sends).await {
            result.expect("acknowledged");
        }
        let text = support::kcat_read(&brokers, &topic).await;
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 20, "{name}: {text}");
        for (order, line) in lines.iter().enumerate() {
            assert_eq!(
                *line,
                format!(
                    r#"{order}|{{"event_type":"order.placed","order":{order},"note":"{name}"}}"#
                ),
                "{name}"
            );
        }
        transport.close().await.unwrap();
    }
}

/// Awaits every future of `futures`, all at once (no `futures` crate here).
async fn futures_lite<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, future) in out.iter_mut().zip(pinned.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|v| v.expect("ready")).collect()
}

async fn a_3_mib_record_arrives_through_a_1_mib_fetch_size(backend: Backend) {
    let brokers = backend.brokers().await;
    let topic = testing::unique_name("native-large");
    testing::create_topic(&brokers, &topic, 1).await.unwrap();
    let output = support::kafka_tool(
        backend,
        "configs",
        &[
            "--bootstrap-server",
            &brokers,
            "--alter",
            "--entity-type",
            "topics",
            "--entity-name",
            &topic,
            "--add-config",
            "max.message.bytes=8388608",
        ],
    )
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let options = NativeOptions::new(brokers.split(','));
    assert_eq!(
        options.fetch_partition_max_bytes,
        1024 * 1024,
        "the default"
    );
    let transport: Arc<dyn Transport> = Arc::new(NativeTransport::connect(options).await.unwrap());
    let producer = Producer::with_transport(
        transport.clone(),
        TopicMap::from_iter([("orders", topic.as_str())]),
        Codec::Tagged,
        "native-test",
    );
    let big = "x".repeat(3 * 1024 * 1024);
    producer
        .send(&OrderPlaced {
            order: 1,
            note: big.clone(),
        })
        .await
        .expect("the broker takes a 3 MiB record");
    producer
        .send(&OrderPlaced {
            order: 2,
            note: "small".into(),
        })
        .await
        .expect("acknowledged");
    let running = consumer(transport, &topic, backend).start();
    support::wait_until("both orders handled", Duration::from_secs(60), || async {
        handled(&topic).len() >= 2 || running.has_stopped()
    })
    .await;
    assert!(!running.has_stopped(), "the consumer stopped");
    assert_eq!(handled(&topic), vec![(0, 1, big.len()), (0, 2, 5)]);
    running.shutdown().await.unwrap();
}

/// Issue #13: a batch whose CRC-32C does not match stalls its partition at that batch, says
/// why in the status and at error in the log, and the other partitions are handled. A broker
/// checks CRCs on produce, so the batch is corrupted on its way back: [`CorruptProxy`] flips a
/// value byte of partition 1's batches from offset 10 on, between the consumer and the broker.
async fn a_corrupt_batch_from_the_broker_stalls_its_partition_alone(backend: Backend) {
    support::logs::capture();
    let brokers = backend.brokers().await;
    let topic = testing::unique_name("native-corrupt");
    testing::create_topic(&brokers, &topic, 3).await.unwrap();
    // Orders p00..p10 at offsets 0..10 of partition p; then 110..115 at offsets 10..15 of
    // partition 1, in later batches (another kcat run): the ones the proxy corrupts.
    for partition in 0..3 {
        let first = partition as u32 * 100;
        kcat_orders(&brokers, &topic, partition, "none", &[], first..first + 10);
    }
    kcat_orders(&brokers, &topic, 1, "none", &[], 110..115);
    let target = Target {
        topic: topic.clone(),
        partition: 1,
        from_offset: 10,
    };
    let proxy = CorruptProxy::start(&brokers, target).await;

    let transport = backend.transport(&proxy.addr()).await;
    let running = consumer(transport, &topic, backend).start();
    let group = running.status()[0].group.clone();
    let orders = |partition: i32| -> Vec<u32> {
        handled(&topic)
            .into_iter()
            .filter(|(p, _, _)| *p == partition)
            .map(|(_, order, _)| order)
            .collect()
    };
    let stalled = || -> Vec<StalledPartition> {
        running
            .status()
            .into_iter()
            .flat_map(|g| g.stalled)
            .collect()
    };
    support::wait_until(
        "partitions 0 and 2 handled, and partition 1 up to its corrupt batch and stalled",
        Duration::from_secs(60),
        || async {
            running.has_stopped()
                || (orders(0).len() >= 10
                    && orders(2).len() >= 10
                    && orders(1).len() >= 10
                    && !stalled().is_empty())
        },
    )
    .await;
    assert!(!running.has_stopped(), "the consumer stopped");
    assert!(proxy.corrupted() > 0, "the proxy corrupted no batch");
    assert_eq!(orders(0), (0..10).collect::<Vec<_>>());
    assert_eq!(orders(2), (200..210).collect::<Vec<_>>());
    let stalls = stalled();
    let why = match backend {
        #[cfg(feature = "confluent")]
        Backend::Confluent => "Record is corrupt (stored crc = ",
        _ => "CRC mismatch",
    };
    assert_eq!(stalls.len(), 1, "{stalls:?}");
    assert_eq!(stalls[0].partition, TopicPartition::new(topic.as_str(), 1));
    assert_eq!(stalls[0].offset, 10, "stalled at the corrupt batch");
    assert!(stalls[0].reason.contains(why), "{}", stalls[0].reason);
    let said = support::logs::logged(&group, "partition stalled");
    assert_eq!(said.len(), 1, "logged once: {said:?}");
    for field in [
        "ERROR",
        &format!("topic={topic}"),
        "partition=1",
        "offset=10",
        why,
    ] {
        assert!(said[0].contains(field), "{field} in {}", said[0]);
    }

    // The consumer goes on with partitions 0 and 2. The window of the checks below: these
    // orders come in fetch rounds after the stall, so had partition 1 still been read, its
    // corrupt records (handled, or dead-lettered when their value did not decode) would
    // have come in the same rounds.
    kcat_orders(&brokers, &topic, 0, "none", &[], 10..15);
    kcat_orders(&brokers, &topic, 2, "none", &[], 210..215);
    support::wait_until(
        "the next orders of partitions 0 and 2",
        Duration::from_secs(30),
        || async { (orders(0).len() >= 15 && orders(2).len() >= 15) || running.has_stopped() },
    )
    .await;
    assert!(!running.has_stopped(), "the consumer stopped");
    assert_eq!(orders(0), (0..15).collect::<Vec<_>>());
    assert_eq!(orders(2), (200..215).collect::<Vec<_>>());
    assert_eq!(
        orders(1),
        (100..110).collect::<Vec<_>>(),
        "partition 1 up to the corrupt batch, and nothing of it"
    );
    assert_eq!(stalled(), stalls, "still stalled, at the same offset");
    // A stall is not a dead letter: nothing was written to the dead-letter topic, which the
    // first dead letter would have created (the test brokers create topics on first use).
    let dead_letters = testing::end_offsets(&brokers, &format!("{topic}.dlq")).await;
    assert!(
        dead_letters
            .as_ref()
            .is_err_and(|e| e.kafka_code() == Some(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION)),
        "no dead-letter topic: {dead_letters:?}"
    );
    let committed = testing::committed_offsets(&brokers, &group, &topic)
        .await
        .unwrap();
    assert!(
        committed.get(&1).is_none_or(|&offset| offset <= 10),
        "nothing committed past the corrupt batch: {committed:?}"
    );
    running.shutdown().await.expect("clean shutdown");
}

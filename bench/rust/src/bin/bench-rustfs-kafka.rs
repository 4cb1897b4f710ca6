//! rustfs-kafka (1.4, a fork of the `kafka` crate rebuilt on kafka-protocol: Produce v9, Fetch
//! v12; synchronous, one blocking request at a time): its `BatchProducer` with its defaults
//! (acks = 1; a flush once 1 MiB, 16,384 records or 5 ms of linger are buffered, one Produce
//! request per broker; the crate's xxHash32 key partitioner; CreateTime timestamps, cargo
//! feature `producer_timestamp`) and its `Consumer` with a group
//! (offset storage only, as the `kafka` crate: the crate's group membership is a separate
//! low-level API that the `Consumer` does not use) reading all partitions, 1 MiB per partition
//! and fetch. Records are JSON-encoded / decoded with serde_json, as the other raw peers.
//!
//! Its consume of the benchmark's source topic fails: the crate decodes every record batch of
//! a partition's fetched data and fails the whole poll on a truncated last one, and the broker
//! cuts the data at the fetch size (inside a batch) whenever a partition holds more than that
//! past the fetch offset. `fetch_bytes=` (default 1 MiB) raises the fetch size per partition,
//! for trying it out: the whole topic then has to fit in one fetch response (at most the
//! broker's `fetch.max.bytes`, 55 MiB by default) — not the workload of the other peers.
//!
//! `bench-rustfs-kafka produce brokers=H:P topic=T n=200000`
//! `bench-rustfs-kafka consume brokers=H:P topic=T group=G n=200000`
//! `bench-rustfs-kafka latency brokers=H:P topic=T group=G rate=5000 secs=20`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use godev_kafka_bench::{Args, LatencyPlan, RawEvent, SEQ_BASE, Samples, emit, now_ns};
use rustfs_kafka::client::{KafkaClient, ProducerTimestamp};
use rustfs_kafka::consumer::{Consumer, FetchOffset, GroupOffsetStorage};
use rustfs_kafka::error::ProtocolError;
use rustfs_kafka::producer::{BatchProducer, ProduceConfirm, Record, RequiredAcks};
use serde_json::json;

fn hosts(args: &Args) -> Vec<String> {
    args.str("brokers").split(',').map(String::from).collect()
}

fn producer(args: &Args) -> BatchProducer {
    // CreateTime stamps every Produce request with the current time (by default the crate
    // sends timestamp 0, which time retention deletes); the producer builder has no setting
    // for it, the client has.
    let mut client = KafkaClient::new(hosts(args));
    client.set_producer_timestamp(Some(ProducerTimestamp::CreateTime));
    client
        .load_metadata_all()
        .unwrap_or_else(|e| fail("metadata", &e));
    BatchProducer::from_client(client)
        .with_required_acks(RequiredAcks::One)
        .with_ack_timeout(Duration::from_secs(30))
        .create()
        .unwrap_or_else(|e| fail("producer", &e))
}

fn consumer(args: &Args) -> Consumer {
    Consumer::from_hosts(hosts(args))
        .with_topic(args.str("topic"))
        .with_group(args.str("group"))
        .with_fallback_offset(FetchOffset::Earliest)
        .with_offset_storage(Some(GroupOffsetStorage::Kafka))
        .with_fetch_max_bytes_per_partition(args.num("fetch_bytes", 1024 * 1024) as i32)
        .with_fetch_max_wait_time(Duration::from_millis(100))
        .create()
        .unwrap_or_else(|e| fail("consumer", &e))
}

/// A client error: one clear line, then a non-zero exit (as on a broker it cannot talk to).
fn fail(what: &str, e: &dyn std::fmt::Display) -> ! {
    eprintln!("bench-rustfs-kafka: {what} failed: {e}");
    std::process::exit(1)
}

fn encode(seq: u64, sent_ns: u64, body: &str) -> (String, Vec<u8>) {
    let event = RawEvent::new(seq, sent_ns, body);
    (
        event.data.key.to_string(),
        serde_json::to_vec(&event).unwrap(),
    )
}

/// Buffers one record (the producer flushes by itself when its batch is full).
fn send(producer: &mut BatchProducer, topic: &str, seq: u64, sent_ns: u64, body: &str) {
    let (key, value) = encode(seq, sent_ns, body);
    producer
        .send(&Record::from_key_value(topic, key.as_bytes(), &value[..]))
        .unwrap_or_else(|e| fail("send", &e));
}

/// Sends what is buffered and checks that every partition acknowledged it.
fn flush(producer: &mut BatchProducer) {
    let confirms: Vec<ProduceConfirm> = producer.flush().unwrap_or_else(|e| fail("flush", &e));
    for confirm in confirms {
        for p in confirm.partition_confirms {
            if let Err(code) = p.offset {
                fail("produce", &format!("partition {}: {code:?}", p.partition));
            }
        }
    }
}

/// Polls until `each` returns false, with every decoded event; commits every 500 ms.
fn consume_loop(mut consumer: Consumer, mut each: impl FnMut(RawEvent) -> bool) {
    let mut committed = Instant::now();
    loop {
        let sets = consumer.poll().unwrap_or_else(|e| {
            // The crate decodes every batch of a partition's fetched data and fails the whole
            // poll on a truncated last one; Kafka cuts the data at the fetch size, so it returns
            // one whenever a partition holds more than that past the fetch offset.
            let hint = if matches!(e, rustfs_kafka::Error::Protocol(ProtocolError::Codec)) {
                " (a fetched partition's data ended inside a record batch, cut at the fetch size \
                 limit of fetch_bytes=, default 1 MiB: rustfs-kafka 1.4 rejects that)"
            } else {
                ""
            };
            fail("poll", &format!("{e}{hint}"))
        });
        for set in sets.iter_ref() {
            for m in set.messages() {
                let event: RawEvent = serde_json::from_slice(&m.value).expect("json");
                if event.event_type == "bench.event" && !each(event) {
                    return;
                }
            }
            consumer
                .consume_messageset_ref(&set)
                .unwrap_or_else(|e| fail("consume", &e));
        }
        if committed.elapsed() >= Duration::from_millis(500) {
            consumer
                .commit_consumed()
                .unwrap_or_else(|e| fail("commit", &e));
            committed = Instant::now();
        }
    }
}

fn main() {
    let args = Args::parse();
    let topic = args.str("topic");
    let body = RawEvent::body();
    match args.mode.as_str() {
        "produce" => {
            let n = args.num("n", 200_000);
            let mut producer = producer(&args);
            let value_bytes = encode(SEQ_BASE, now_ns(), &body).1.len();
            let started = Instant::now();
            for seq in SEQ_BASE..SEQ_BASE + n {
                send(&mut producer, &topic, seq, now_ns(), &body);
            }
            flush(&mut producer);
            let secs = started.elapsed().as_secs_f64();
            emit(json!({"mode": "produce", "n": n, "secs": secs, "value_bytes": value_bytes}));
        }
        "consume" => {
            let n = args.num("n", 200_000);
            let started = Instant::now();
            let consumer = consumer(&args);
            let mut first = None;
            let mut seen = 0u64;
            consume_loop(consumer, |_event| {
                first.get_or_insert_with(Instant::now);
                seen += 1;
                seen < n
            });
            let last = Instant::now();
            emit(
                json!({"mode": "consume", "n": n, "secs": (last - first.unwrap()).as_secs_f64(),
                        "secs_with_join": (last - started).as_secs_f64()}),
            );
        }
        "latency" => {
            let plan = LatencyPlan::from_args(&args);
            let samples = Arc::new(Mutex::new(Samples::default()));
            let handled = Arc::new(AtomicU64::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let consumer = consumer(&args);
            let reader = {
                let (samples, handled, stop) = (samples.clone(), handled.clone(), stop.clone());
                std::thread::spawn(move || {
                    consume_loop(consumer, |event| {
                        samples
                            .lock()
                            .unwrap()
                            .record(event.data.seq, event.data.sent_ns);
                        handled.fetch_add(1, Ordering::Relaxed);
                        !stop.load(Ordering::Relaxed)
                    })
                })
            };
            // The producer runs on its own thread (a flush blocks until the broker answers):
            // it buffers whatever is due and flushes it at once, so that nothing waits for the
            // 5 ms linger (which the crate checks only when a record is sent).
            let (tx, rx) = std::sync::mpsc::channel::<(u64, u64)>();
            let writer = {
                let mut producer = producer(&args);
                let (topic, body) = (topic.clone(), body.clone());
                std::thread::spawn(move || {
                    while let Ok((seq, sent_ns)) = rx.recv() {
                        send(&mut producer, &topic, seq, sent_ns, &body);
                        for (seq, sent_ns) in rx.try_iter() {
                            send(&mut producer, &topic, seq, sent_ns, &body);
                        }
                        flush(&mut producer);
                    }
                })
            };
            let (from, end) = plan.drive(
                |seq| tx.send((seq, now_ns())).unwrap(),
                || handled.load(Ordering::Relaxed) > 0,
            );
            drop(tx);
            writer.join().unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            while handled.load(Ordering::Relaxed) < end - SEQ_BASE && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            stop.store(true, Ordering::Relaxed);
            let mut result = samples.lock().unwrap().percentiles(from);
            result["mode"] = json!("latency");
            result["sent"] = json!(end - from);
            emit(result);
            // The reader stops at its next record; none may come, so do not wait for it.
            drop(reader);
        }
        other => panic!("unknown mode {other:?}"),
    }
}

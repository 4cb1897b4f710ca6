//! The raw `kafka` crate (0.10, the crate under this framework's `kafka` backend): its
//! `Producer::send_all` with batches of 500 keyed records (acks = 1), and its `Consumer` with a
//! group (offset storage only: the crate has no group membership) and 1 MiB per partition and
//! fetch, as the framework fetches. Records are JSON-encoded / decoded with serde_json.
//!
//! `bench-kafka-crate produce brokers=H:P topic=T n=200000`
//! `bench-kafka-crate consume brokers=H:P topic=T group=G n=200000`
//! `bench-kafka-crate latency brokers=H:P topic=T group=G rate=5000 secs=20`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use godev_kafka::testing::kafka;
use godev_kafka_bench::{Args, LatencyPlan, RawEvent, SEQ_BASE, Samples, emit, now_ns};
use kafka::client::{FetchOffset, GroupOffsetStorage, RequiredAcks};
use kafka::consumer::Consumer;
use kafka::producer::{Producer, Record};
use serde_json::json;

const BATCH: usize = 500;

fn producer(args: &Args) -> Producer {
    Producer::from_hosts(args.str("brokers").split(',').map(String::from).collect())
        .with_required_acks(RequiredAcks::One)
        .with_ack_timeout(Duration::from_secs(30))
        .create()
        .expect("producer")
}

fn consumer(args: &Args) -> Consumer {
    Consumer::from_hosts(args.str("brokers").split(',').map(String::from).collect())
        .with_topic(args.str("topic"))
        .with_group(args.str("group"))
        .with_fallback_offset(FetchOffset::Earliest)
        .with_offset_storage(Some(GroupOffsetStorage::Kafka))
        .with_fetch_max_bytes_per_partition(1024 * 1024)
        .with_fetch_max_wait_time(Duration::from_millis(100))
        .create()
        .expect("consumer")
}

fn encode(seq: u64, sent_ns: u64, body: &str) -> (String, Vec<u8>) {
    let event = RawEvent::new(seq, sent_ns, body);
    (event.data.key.to_string(), serde_json::to_vec(&event).unwrap())
}

/// Polls until `stop` says so; calls `each` with every decoded event; commits every 500 ms.
fn consume_loop(mut consumer: Consumer, mut each: impl FnMut(RawEvent) -> bool) {
    let mut committed = Instant::now();
    loop {
        let sets = consumer.poll().expect("poll");
        for set in sets.iter() {
            for m in set.messages() {
                let event: RawEvent = serde_json::from_slice(m.value).expect("json");
                if event.event_type == "bench.event" && !each(event) {
                    return;
                }
            }
            consumer.consume_messageset(set).expect("consume");
        }
        if committed.elapsed() >= Duration::from_millis(500) {
            consumer.commit_consumed().expect("commit");
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
            let mut seq = SEQ_BASE;
            while seq < SEQ_BASE + n {
                let batch: Vec<(String, Vec<u8>)> = (seq..(seq + BATCH as u64).min(SEQ_BASE + n))
                    .map(|s| encode(s, now_ns(), &body))
                    .collect();
                seq += batch.len() as u64;
                let records: Vec<Record<'_, &[u8], &[u8]>> = batch
                    .iter()
                    .map(|(k, v)| Record::from_key_value(topic.as_str(), k.as_bytes(), &v[..]))
                    .collect();
                for confirm in producer.send_all(&records).expect("send_all") {
                    for p in confirm.partition_confirms {
                        p.offset.expect("acknowledged");
                    }
                }
            }
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
            emit(json!({"mode": "consume", "n": n, "secs": (last - first.unwrap()).as_secs_f64(),
                        "secs_with_join": (last - started).as_secs_f64()}));
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
                        samples.lock().unwrap().record(event.data.seq, event.data.sent_ns);
                        handled.fetch_add(1, Ordering::Relaxed);
                        !stop.load(Ordering::Relaxed)
                    })
                })
            };
            // The producer sends what is due in batches from its own thread (send_all blocks).
            let (tx, rx) = std::sync::mpsc::channel::<(u64, u64)>();
            let writer = {
                let mut producer = producer(&args);
                let (topic, body) = (topic.clone(), body.clone());
                std::thread::spawn(move || {
                    while let Ok(first) = rx.recv() {
                        let mut seqs = vec![first];
                        seqs.extend(rx.try_iter().take(BATCH - 1));
                        let batch: Vec<(String, Vec<u8>)> =
                            seqs.iter().map(|(s, t)| encode(*s, *t, &body)).collect();
                        let records: Vec<Record<'_, &[u8], &[u8]>> = batch
                            .iter()
                            .map(|(k, v)| Record::from_key_value(topic.as_str(), k.as_bytes(), &v[..]))
                            .collect();
                        producer.send_all(&records).expect("send_all");
                    }
                })
            };
            let (from, end) = plan.drive(|seq| tx.send((seq, now_ns())).unwrap(), || handled.load(Ordering::Relaxed) > 0);
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

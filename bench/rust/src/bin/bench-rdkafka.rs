//! rdkafka (the `rdkafka` crate on the system librdkafka): a `BaseProducer` (acks = 1,
//! librdkafka's default linger of 5 ms, murmur2 partitioner as the Java client) and a
//! `BaseConsumer` in a group (auto commit every 500 ms). Records are JSON-encoded / decoded
//! with serde_json.
//!
//! `bench-rdkafka produce brokers=H:P topic=T n=200000`
//! `bench-rdkafka consume brokers=H:P topic=T group=G n=200000`
//! `bench-rdkafka latency brokers=H:P topic=T group=G rate=5000 secs=20`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use godev_kafka_bench::{Args, LatencyPlan, RawEvent, SEQ_BASE, Samples, emit, now_ns};
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use serde_json::json;

/// Counts failed deliveries.
#[derive(Debug, Default)]
struct Deliveries {
    failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn producer(args: &Args) -> BaseProducer<Deliveries> {
    ClientConfig::new()
        .set("bootstrap.servers", args.str("brokers"))
        .set("acks", "1")
        .set("partitioner", "murmur2_random")
        .create_with_context(Deliveries::default())
        .expect("producer")
}

fn consumer(args: &Args) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", args.str("brokers"))
        .set("group.id", args.str("group"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "500")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&args.str("topic")]).expect("subscribe");
    consumer
}

/// Queues one record, serving delivery reports while librdkafka's queue is full.
fn send(producer: &BaseProducer<Deliveries>, topic: &str, seq: u64, sent_ns: u64, body: &str) {
    let event = RawEvent::new(seq, sent_ns, body);
    let (key, value) = (event.data.key.to_string(), serde_json::to_vec(&event).unwrap());
    let mut record = BaseRecord::to(topic).key(&key).payload(&value);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                producer.poll(Duration::from_millis(5));
            }
            Err((e, _)) => panic!("send: {e}"),
        }
    }
}

/// Polls until `each` returns false, with every decoded event.
fn consume_loop(consumer: &BaseConsumer, mut each: impl FnMut(RawEvent) -> bool) {
    loop {
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m.expect("poll");
        let event: RawEvent = serde_json::from_slice(m.payload().unwrap_or_default()).expect("json");
        if event.event_type == "bench.event" && !each(event) {
            return;
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
            let producer = producer(&args);
            let value_bytes = serde_json::to_vec(&RawEvent::new(SEQ_BASE, now_ns(), &body)).unwrap().len();
            let started = Instant::now();
            for seq in SEQ_BASE..SEQ_BASE + n {
                send(&producer, &topic, seq, now_ns(), &body);
                producer.poll(Duration::ZERO);
            }
            producer.flush(Duration::from_secs(60)).expect("flush");
            let secs = started.elapsed().as_secs_f64();
            assert_eq!(producer.context().failed.load(Ordering::Relaxed), 0, "failed deliveries");
            emit(json!({"mode": "produce", "n": n, "secs": secs, "value_bytes": value_bytes}));
        }
        "consume" => {
            let n = args.num("n", 200_000);
            let started = Instant::now();
            let consumer = consumer(&args);
            let mut first = None;
            let mut seen = 0u64;
            consume_loop(&consumer, |_event| {
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
            let reader = {
                let consumer = consumer(&args);
                let (samples, handled, stop) = (samples.clone(), handled.clone(), stop.clone());
                std::thread::spawn(move || {
                    consume_loop(&consumer, |event| {
                        samples.lock().unwrap().record(event.data.seq, event.data.sent_ns);
                        handled.fetch_add(1, Ordering::Relaxed);
                        !stop.load(Ordering::Relaxed)
                    })
                })
            };
            let producer = producer(&args);
            let (from, end) = plan.drive(
                |seq| {
                    send(&producer, &topic, seq, now_ns(), &body);
                    producer.poll(Duration::ZERO);
                },
                || handled.load(Ordering::Relaxed) > 0,
            );
            producer.flush(Duration::from_secs(30)).expect("flush");
            let deadline = Instant::now() + Duration::from_secs(60);
            while handled.load(Ordering::Relaxed) < end - SEQ_BASE && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            stop.store(true, Ordering::Relaxed);
            let mut result = samples.lock().unwrap().percentiles(from);
            result["mode"] = json!("latency");
            result["sent"] = json!(end - from);
            emit(result);
            drop(reader);
        }
        other => panic!("unknown mode {other:?}"),
    }
}

//! This framework's peer: typed `Producer::send` and a grouped `Consumer` with a `#[handler]`,
//! on the `kafka` backend (acks = 1, linger 5 ms, 500 records per batch: the defaults but acks)
//! or, with `backend=confluent` (cargo feature `confluent`, Kafka 4.x), on the `confluent`
//! backend (acks = 1 and so idempotence off, linger 5 ms: the defaults but acks), or, with
//! `backend=native` (cargo feature `native`, Kafka 3.9 and 4.x), on the `native` backend
//! (the same: acks = 1, idempotence off, linger 5 ms, 1 MB batches).
//!
//! Every mode takes `backend=kafka|confluent|native` (default `kafka`).
//!
//! `bench-godev create brokers=H:P topic=T partitions=6`
//! `bench-godev produce brokers=H:P topic=T n=200000`
//! `bench-godev consume brokers=H:P topic=T group=G n=200000 [queue=256] [poll_ms=100]`
//! `bench-godev latency brokers=H:P topic=T rate=5000 secs=20 [histogram=1]` (histogram=1: a
//! fixed-size latency histogram instead of every sample, for the memory soak)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use godev_kafka::consumer::ConsumerSettings;
use godev_kafka::transport::Transport;
#[cfg(feature = "confluent")]
use godev_kafka::transport::confluent::{self, ConfluentOptions, ConfluentTransport};
use godev_kafka::transport::kafka::{Acks, KafkaOptions, KafkaTransport};
#[cfg(feature = "native")]
use godev_kafka::transport::native::{NativeOptions, NativeTransport};
use godev_kafka::{Codec, Consumer, Event, HandlerError, Producer, TopicMap, handler, testing};
use godev_kafka_bench::{Args, LatencyPlan, SEQ_BASE, Samples, VALUE_BYTES, emit, now_ns};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(topic = "bench", name = "bench.event", key = "key")]
struct BenchEvent {
    key: u32,
    seq: u64,
    sent_ns: u64,
    body: String,
}

impl BenchEvent {
    fn new(seq: u64, body: &str) -> Self {
        Self {
            key: (seq % 1000) as u32,
            seq,
            sent_ns: now_ns(),
            body: body.to_owned(),
        }
    }
}

const SOURCE: &str = "bench";

static HANDLED: AtomicU64 = AtomicU64::new(0);
static FIRST: OnceLock<Instant> = OnceLock::new();
static LAST: Mutex<Option<Instant>> = Mutex::new(None);
static SAMPLES: Mutex<Samples> = Mutex::new(Samples {
    samples: Vec::new(),
    buckets: Vec::new(),
});
static RECORD_LATENCY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[handler]
async fn count(event: BenchEvent) -> Result<(), HandlerError> {
    FIRST.get_or_init(Instant::now);
    if RECORD_LATENCY.load(Ordering::Relaxed) {
        SAMPLES.lock().unwrap().record(event.seq, event.sent_ns);
    }
    HANDLED.fetch_add(1, Ordering::Relaxed);
    *LAST.lock().unwrap() = Some(Instant::now());
    Ok(())
}

/// The padding that makes the CloudEvents JSON value 1 KiB.
fn body() -> String {
    let probe = Codec::CloudEvents
        .encode(&BenchEvent::new(SEQ_BASE, ""), SOURCE)
        .expect("encodes")
        .len();
    "x".repeat(VALUE_BYTES.saturating_sub(probe))
}

/// The transport of `backend=`, and the confluent one again to close it at the end.
struct Backend {
    transport: Arc<dyn Transport>,
    #[cfg(feature = "confluent")]
    confluent: Option<Arc<ConfluentTransport>>,
}

impl Backend {
    async fn connect(args: &Args) -> Self {
        let brokers = args.str("brokers");
        match backend(args) {
            "kafka" => {
                let mut options = KafkaOptions::new(brokers.split(','));
                options.acks = Acks::One;
                Self {
                    transport: Arc::new(KafkaTransport::connect(options).await.expect("connect")),
                    #[cfg(feature = "confluent")]
                    confluent: None,
                }
            }
            #[cfg(feature = "confluent")]
            "confluent" => {
                let mut options = ConfluentOptions::new(brokers.split(','));
                // acks = 1 as every peer; idempotence needs acks = all.
                options.acks = confluent::Acks::One;
                options.idempotence = false;
                let transport = Arc::new(ConfluentTransport::connect(options).await.expect("connect"));
                Self {
                    transport: transport.clone(),
                    confluent: Some(transport),
                }
            }
            #[cfg(feature = "native")]
            "native" => {
                let mut options = NativeOptions::new(brokers.split(','));
                // acks = 1 as every peer; idempotence needs acks = all.
                options.acks = Acks::One;
                options.idempotence = false;
                Self {
                    transport: Arc::new(NativeTransport::connect(options).await.expect("connect")),
                    #[cfg(feature = "confluent")]
                    confluent: None,
                }
            }
            other => panic!(
                "unknown backend={other} (kafka; confluent or native with the cargo feature of that name)"
            ),
        }
    }

    async fn close(&self) {
        #[cfg(feature = "confluent")]
        if let Some(confluent) = &self.confluent {
            confluent.close().await.expect("close");
        }
    }
}

fn backend(args: &Args) -> &str {
    args.get("backend").unwrap_or("kafka")
}

async fn create_topic(args: &Args, topic: &str, partitions: i32) {
    let brokers = args.str("brokers");
    match backend(args) {
        #[cfg(feature = "confluent")]
        "confluent" => {
            let admin = confluent::admin::Admin::for_brokers(&brokers).expect("admin");
            admin.create_topic(topic, partitions).await.expect("create topic");
            admin.close().await;
        }
        _ => testing::create_topic(&brokers, topic, partitions)
            .await
            .expect("create topic"),
    }
}

fn producer(transport: Arc<dyn Transport>, topic: &str) -> Producer {
    Producer::with_transport(
        transport,
        TopicMap::from_iter([("bench", topic.to_owned())]),
        Codec::CloudEvents,
        SOURCE,
    )
}

/// The consumer: default settings but a 500 ms commit interval; `queue=` (records queued per
/// partition) and `poll_ms=` (poll wait) override the defaults for the bottleneck experiment.
fn consumer(transport: Arc<dyn Transport>, topic: &str, args: &Args) -> Consumer {
    let defaults = ConsumerSettings::default();
    let settings = ConsumerSettings {
        commit_interval: Duration::from_millis(500),
        queue_capacity: args.num("queue", defaults.queue_capacity as u64) as usize,
        poll_wait: Duration::from_millis(args.num("poll_ms", defaults.poll_wait.as_millis() as u64)),
        ..defaults
    };
    let group = args.str("group");
    Consumer::builder_shared(transport, group)
        .topics(TopicMap::from_iter([("bench", topic.to_owned())]))
        .settings(settings)
        .handler::<count>()
        .build()
        .expect("consumer")
}

/// Sends in flight at once: enough to fill the producer's batches.
const WINDOW: usize = 4096;

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let topic = args.str("topic");
    match args.mode.as_str() {
        "create" => {
            create_topic(&args, &topic, args.num("partitions", 6) as i32).await;
        }
        "produce" => {
            let n = args.num("n", 200_000);
            let backend = Backend::connect(&args).await;
            let producer = producer(backend.transport.clone(), &topic);
            let body = body();
            let value_bytes = Codec::CloudEvents
                .encode(&BenchEvent::new(SEQ_BASE, &body), SOURCE)
                .unwrap()
                .len();
            let started = Instant::now();
            let mut in_flight: tokio::task::JoinSet<godev_kafka::Result<()>> = tokio::task::JoinSet::new();
            for seq in SEQ_BASE..SEQ_BASE + n {
                if in_flight.len() >= WINDOW {
                    in_flight.join_next().await.unwrap().unwrap().expect("send");
                }
                let (producer, event) = (producer.clone(), BenchEvent::new(seq, &body));
                in_flight.spawn(async move { producer.send(&event).await.map(|_| ()) });
            }
            while let Some(sent) = in_flight.join_next().await {
                sent.unwrap().expect("send");
            }
            let secs = started.elapsed().as_secs_f64();
            emit(json!({"mode": "produce", "n": n, "secs": secs, "value_bytes": value_bytes}));
            backend.close().await;
        }
        "consume" => {
            let n = args.num("n", 200_000);
            let backend = Backend::connect(&args).await;
            let consumer = consumer(backend.transport.clone(), &topic, &args);
            let started = Instant::now();
            let running = consumer.start();
            let deadline = started + Duration::from_secs(300);
            while HANDLED.load(Ordering::Relaxed) < n {
                assert!(Instant::now() < deadline, "only {} of {n} handled", HANDLED.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let last = LAST.lock().unwrap().expect("handled");
            let total = last - started;
            let steady = last - *FIRST.get().expect("handled");
            running.shutdown().await.expect("shutdown");
            emit(json!({"mode": "consume", "n": n, "secs": steady.as_secs_f64(),
                        "secs_with_join": total.as_secs_f64()}));
            backend.close().await;
        }
        "latency" => {
            let plan = LatencyPlan::from_args(&args);
            let backend = Backend::connect(&args).await;
            let producer = producer(backend.transport.clone(), &topic);
            let consumer = consumer(backend.transport.clone(), &topic, &args);
            if args.num("histogram", 0) == 1 {
                SAMPLES.lock().unwrap().bucketed();
            }
            RECORD_LATENCY.store(true, Ordering::Relaxed);
            let running = consumer.start();
            let body = body();
            let handle = tokio::runtime::Handle::current();
            let (from, end) = tokio::task::spawn_blocking(move || {
                plan.drive(
                    |seq| {
                        let (producer, event) = (producer.clone(), BenchEvent::new(seq, &body));
                        handle.spawn(async move { producer.send(&event).await.expect("send") });
                    },
                    || HANDLED.load(Ordering::Relaxed) > 0,
                )
            })
            .await
            .unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            while HANDLED.load(Ordering::Relaxed) < end - SEQ_BASE && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let mut result = SAMPLES.lock().unwrap().percentiles(from);
            result["mode"] = json!("latency");
            result["sent"] = json!(end - from);
            emit(result);
            running.shutdown().await.expect("shutdown");
            backend.close().await;
        }
        other => panic!("unknown mode {other:?}"),
    }
}

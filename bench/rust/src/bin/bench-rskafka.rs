//! rskafka (InfluxData's pure-Rust async client on tokio; Produce v3–7, Fetch v4): one
//! `PartitionClient` per partition, as its docs recommend, and no buffering of its own.
//!
//! - produce: a feeder thread encodes the records and hands each to its partition's task
//!   (partition = key mod partitions: the crate has no partitioner); every partition task sends
//!   what has queued up, up to 900 KB of values, as one uncompressed Produce request, one
//!   request in flight per partition and so six at once. The crate always asks for acks = all
//!   (it has no setting); on this single-node broker with replication factor 1 that waits for
//!   the same write as acks = 1.
//! - consume: the crate has no consumer groups (and no offset storage), so this peer reads every
//!   partition of the topic from its earliest offset (0) directly, one task per partition,
//!   fetching up to 1 MiB at a time with a 100 ms wait; while one fetch is in flight the task
//!   decodes and dispatches the records of the previous one. `group=` is ignored.
//! - latency: the same producer tasks at the paced rate (on partition clients of their own)
//!   and the same partition readers, from the start of the fresh topic.
//!
//! Records are JSON-encoded / decoded with serde_json, as the other raw peers.
//!
//! rskafka 0.6 leaves Nagle's algorithm on (no TCP_NODELAY) and writes a request's length and
//! body in two writes: on a connection with nothing else in flight the body then waits for the
//! broker's delayed ACK (about 40 ms on Linux). The latency run shows it (every produce request
//! takes about 40 ms); nothing in the crate's API turns it off.
//!
//! `bench-rskafka produce brokers=H:P topic=T n=200000`
//! `bench-rskafka consume brokers=H:P topic=T n=200000`
//! `bench-rskafka latency brokers=H:P topic=T rate=5000 secs=20`

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use godev_kafka_bench::{Args, LatencyPlan, RawEvent, SEQ_BASE, Samples, emit, now_ns};
use rskafka::BackoffConfig;
use rskafka::chrono::DateTime;
use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::{Record, RecordAndOffset};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Value bytes per Produce request at most (the broker takes batches up to 1 MiB).
const BATCH_BYTES: usize = 900_000;
/// Records queued per partition before the feeder waits.
const QUEUE: usize = 4096;
/// Largest fetch response per partition.
const FETCH_MAX_BYTES: i32 = 1024 * 1024;
/// How long the broker may hold a fetch that has nothing yet.
const FETCH_WAIT_MS: i32 = 100;

/// A client error: one clear line, then a non-zero exit (as on a broker it cannot talk to).
fn fail(what: &str, e: &dyn std::fmt::Display) -> ! {
    eprintln!("bench-rskafka: {what} failed: {e}");
    std::process::exit(1)
}

async fn client(args: &Args) -> Client {
    ClientBuilder::new(args.str("brokers").split(',').map(String::from).collect())
        // Retries give up after 30 s instead of never, so that a broker this crate cannot
        // talk to ends the run with an error.
        .backoff_config(BackoffConfig {
            deadline: Some(Duration::from_secs(30)),
            ..BackoffConfig::default()
        })
        .build()
        .await
        .unwrap_or_else(|e| fail("connect", &e))
}

/// One client per partition of `topic`, in partition order; each has its own connection.
async fn partitions(client: &Client, topic: &str) -> Vec<Arc<PartitionClient>> {
    let topics = client
        .list_topics()
        .await
        .unwrap_or_else(|e| fail("metadata", &e));
    let Some(found) = topics.into_iter().find(|t| t.name == topic) else {
        fail("metadata", &format!("no topic {topic}"));
    };
    let mut clients = Vec::new();
    for p in found.partitions {
        let pc = client
            .partition_client(topic.to_owned(), p, UnknownTopicHandling::Retry)
            .await
            .unwrap_or_else(|e| fail("partition client", &e));
        clients.push(Arc::new(pc));
    }
    clients
}

/// The record of `seq`, and the partition it goes to.
fn record(seq: u64, sent_ns: u64, body: &str, partitions: usize) -> (usize, Record) {
    let event = RawEvent::new(seq, sent_ns, body);
    let key = event.data.key;
    let record = Record {
        key: Some(key.to_string().into_bytes()),
        value: Some(serde_json::to_vec(&event).unwrap()),
        headers: BTreeMap::new(),
        timestamp: DateTime::from_timestamp_nanos(sent_ns as i64),
    };
    (key as usize % partitions, record)
}

/// Starts one producing task per partition; returns their queues. A task ends once its queue
/// is closed and drained.
fn producers(
    clients: &[Arc<PartitionClient>],
    tasks: &mut JoinSet<()>,
) -> Vec<mpsc::Sender<Record>> {
    clients
        .iter()
        .map(|pc| {
            let (tx, mut rx) = mpsc::channel::<Record>(QUEUE);
            let pc = pc.clone();
            tasks.spawn(async move {
                while let Some(first) = rx.recv().await {
                    let mut bytes = first.approximate_size();
                    let mut batch = vec![first];
                    while bytes < BATCH_BYTES {
                        let Ok(r) = rx.try_recv() else { break };
                        bytes += r.approximate_size();
                        batch.push(r);
                    }
                    let n = batch.len();
                    let offsets = pc
                        .produce(batch, Compression::NoCompression)
                        .await
                        .unwrap_or_else(|e| fail("produce", &e));
                    assert_eq!(offsets.len(), n, "acknowledged offsets");
                }
            });
            tx
        })
        .collect()
}

/// Decodes the records of one fetch and hands every bench event to `each`; false once `each`
/// asked to stop.
fn dispatch(
    records: Vec<RecordAndOffset>,
    each: &(dyn Fn(RawEvent) -> bool + Send + Sync),
) -> bool {
    for r in records {
        let event: RawEvent =
            serde_json::from_slice(r.record.value.as_deref().unwrap_or_default()).expect("json");
        if event.event_type == "bench.event" && !each(event) {
            return false;
        }
    }
    true
}

/// Starts one reading task per partition, from the partition's earliest offset, until `each`
/// returns false for some record or `stop` is set.
fn readers(
    clients: &[Arc<PartitionClient>],
    each: Arc<dyn Fn(RawEvent) -> bool + Send + Sync>,
    stop: Arc<AtomicBool>,
    tasks: &mut JoinSet<()>,
) {
    for pc in clients {
        let (pc, each, stop) = (pc.clone(), each.clone(), stop.clone());
        tasks.spawn(async move {
            let mut offset = pc
                .get_offset(OffsetAt::Earliest)
                .await
                .unwrap_or_else(|e| fail("list offsets", &e));
            let mut pending: Vec<RecordAndOffset> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                // The next fetch goes out before the previous one's records are dispatched.
                let fetch = pc.fetch_records(offset, 1..FETCH_MAX_BYTES, FETCH_WAIT_MS);
                let handle = async {
                    if !dispatch(std::mem::take(&mut pending), &*each) {
                        stop.store(true, Ordering::Relaxed);
                    }
                };
                let (fetched, ()) = tokio::join!(fetch, handle);
                let (records, _high_watermark) = fetched.unwrap_or_else(|e| fail("fetch", &e));
                if let Some(last) = records.last() {
                    offset = last.offset + 1;
                }
                pending = records;
            }
        });
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let topic = args.str("topic");
    let body = RawEvent::body();
    // "incl. join" of consume counts from here: metadata and connections (there is no group).
    let started = Instant::now();
    let client = client(&args).await;
    let clients = partitions(&client, &topic).await;
    let parts = clients.len();
    match args.mode.as_str() {
        "produce" => {
            let n = args.num("n", 200_000);
            let value_bytes = serde_json::to_vec(&RawEvent::new(SEQ_BASE, now_ns(), &body))
                .unwrap()
                .len();
            let started = Instant::now();
            let mut tasks = JoinSet::new();
            let queues = producers(&clients, &mut tasks);
            let feeder = std::thread::spawn(move || {
                for seq in SEQ_BASE..SEQ_BASE + n {
                    let (p, r) = record(seq, now_ns(), &body, parts);
                    queues[p].blocking_send(r).expect("queue");
                }
            });
            while let Some(done) = tasks.join_next().await {
                done.expect("producer task");
            }
            feeder.join().unwrap();
            let secs = started.elapsed().as_secs_f64();
            emit(json!({"mode": "produce", "n": n, "secs": secs, "value_bytes": value_bytes}));
        }
        "consume" => {
            let n = args.num("n", 200_000);
            let first: Arc<OnceLock<Instant>> = Arc::default();
            let last: Arc<OnceLock<Instant>> = Arc::default();
            let seen = Arc::new(AtomicU64::new(0));
            let each = {
                let (first, last, seen) = (first.clone(), last.clone(), seen.clone());
                Arc::new(move |_event: RawEvent| {
                    first.get_or_init(Instant::now);
                    let count = seen.fetch_add(1, Ordering::Relaxed) + 1;
                    if count >= n {
                        last.get_or_init(Instant::now);
                        return false;
                    }
                    true
                })
            };
            let mut tasks = JoinSet::new();
            readers(&clients, each, Arc::new(AtomicBool::new(false)), &mut tasks);
            while let Some(done) = tasks.join_next().await {
                done.expect("reader task");
            }
            let (first, last) = (*first.get().unwrap(), *last.get().unwrap());
            emit(
                json!({"mode": "consume", "n": n, "secs": (last - first).as_secs_f64(),
                        "secs_with_join": (last - started).as_secs_f64()}),
            );
        }
        "latency" => {
            let plan = LatencyPlan::from_args(&args);
            let samples = Arc::new(Mutex::new(Samples::default()));
            let handled = Arc::new(AtomicU64::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let mut reading = JoinSet::new();
            let each = {
                let (samples, handled) = (samples.clone(), handled.clone());
                Arc::new(move |event: RawEvent| {
                    samples
                        .lock()
                        .unwrap()
                        .record(event.data.seq, event.data.sent_ns);
                    handled.fetch_add(1, Ordering::Relaxed);
                    true
                })
            };
            readers(&clients, each, stop.clone(), &mut reading);
            // Producing needs partition clients of its own: every one has its own connection,
            // and the broker answers a connection's requests in order, so a produce behind a
            // fetch that waits for data would wait with it.
            let senders = partitions(&client, &topic).await;
            let mut producing = JoinSet::new();
            let queues = producers(&senders, &mut producing);
            let driver = {
                let handled = handled.clone();
                tokio::task::spawn_blocking(move || {
                    plan.drive(
                        |seq| {
                            let (p, r) = record(seq, now_ns(), &body, parts);
                            queues[p].blocking_send(r).expect("queue");
                        },
                        || handled.load(Ordering::Relaxed) > 0,
                    )
                })
            };
            let (from, end) = driver.await.expect("driver");
            while let Some(done) = producing.join_next().await {
                done.expect("producer task");
            }
            let deadline = Instant::now() + Duration::from_secs(60);
            while handled.load(Ordering::Relaxed) < end - SEQ_BASE && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            stop.store(true, Ordering::Relaxed);
            let mut result = samples.lock().unwrap().percentiles(from);
            result["mode"] = json!("latency");
            result["sent"] = json!(end - from);
            emit(result);
            // The readers end after their fetch in flight (at most FETCH_WAIT_MS).
            while let Some(done) = reading.join_next().await {
                done.expect("reader task");
            }
        }
        other => panic!("unknown mode {other:?}"),
    }
}

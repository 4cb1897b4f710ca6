//! The native producer against a scripted fake broker: the bounded buffer and `max_block`,
//! the delivery timeout, retries (same producer id, sequence and bytes), a new producer id
//! after the broker lost the sequence, the error codes that succeed or fail at once, and
//! the order of a partition's records across a retry.

use std::collections::VecDeque;
use std::future::Future;
use std::task::Poll;

use bytes::BytesMut;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::transport::connection::fake_broker::{
    listen, negotiate_with, read_request_v1, write_response,
};

/// Every wait of these tests ends well within this.
const DEADLINE: Duration = Duration::from_secs(10);

/// What the fake broker advertises: versions with request header v1 and response header v0
/// (Metadata and Produce are flexible from v9, InitProducerId from v2).
const APIS: &[(ApiKey, i16)] = &[
    (ApiKey::ApiVersions, 3),
    (ApiKey::Metadata, 4),
    (ApiKey::InitProducerId, 1),
    (ApiKey::Produce, 8),
];

/// The id the broker hands out first; each InitProducerId gets the next one.
const FIRST_PRODUCER_ID: i64 = 1000;

/// The offset of the first record the broker writes.
const FIRST_OFFSET: i64 = 100;

// ---------------------------------------------------------------------------------------
// The fake broker
// ---------------------------------------------------------------------------------------

/// How the broker answers one partition of a Produce request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Code(KafkaCode),
    /// No answer at all: a broker that never acknowledges.
    Silent,
}

const OK: Reply = Reply::Code(KafkaCode::NONE);

/// One partition's batch of a Produce request the broker read, and its answer.
#[derive(Debug, Clone)]
struct Produced {
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
    values: Vec<String>,
    bytes: Bytes,
    reply: Reply,
}

/// The broker's script (its replies to Produce, in turn, then `then`) and what it saw.
#[derive(Debug)]
struct Script {
    replies: VecDeque<Reply>,
    then: Reply,
    produced: Vec<Produced>,
    init_producer_ids: usize,
    next_offset: i64,
}

impl Script {
    fn answer(&mut self, request: &ProduceRequest) -> Option<ProduceResponse> {
        let mut silent = false;
        let mut topics = Vec::new();
        for topic in &request.topic_data {
            let mut partitions = Vec::new();
            for p in &topic.partition_data {
                let bytes = p.records.clone().expect("a batch");
                let decoded = batch::decode(&bytes, 0, None).expect("a valid batch");
                let values: Vec<String> = decoded
                    .records
                    .iter()
                    .map(|r| String::from_utf8(r.value.to_vec()).unwrap())
                    .collect();
                let reply = self.replies.pop_front().unwrap_or(self.then);
                let base = self.next_offset;
                if reply == OK {
                    self.next_offset += values.len() as i64;
                }
                let be = |at: usize, n: usize| bytes[at..at + n].to_vec();
                self.produced.push(Produced {
                    producer_id: i64::from_be_bytes(be(43, 8).try_into().unwrap()),
                    epoch: i16::from_be_bytes(be(51, 2).try_into().unwrap()),
                    base_sequence: i32::from_be_bytes(be(53, 4).try_into().unwrap()),
                    values,
                    bytes,
                    reply,
                });
                match reply {
                    Reply::Silent => silent = true,
                    Reply::Code(code) => partitions.push(
                        PartitionProduceResponse::default()
                            .with_index(p.index)
                            .with_error_code(code.code())
                            .with_base_offset(base),
                    ),
                }
            }
            topics.push(
                TopicProduceResponse::default()
                    .with_name(topic.name.clone())
                    .with_partition_responses(partitions),
            );
        }
        (!silent).then(|| ProduceResponse::default().with_responses(topics))
    }
}

/// A fake broker, node 1, leading partition 0 of every topic; serves until dropped.
struct Broker {
    addr: String,
    script: Arc<Mutex<Script>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Broker {
    /// Answers the Produce requests with `replies` in turn, then always with `then`.
    async fn start(replies: &[Reply], then: Reply) -> Self {
        let (listener, addr) = listen().await;
        let script = Arc::new(Mutex::new(Script {
            replies: replies.iter().copied().collect(),
            then,
            produced: Vec::new(),
            init_producer_ids: 0,
            next_offset: FIRST_OFFSET,
        }));
        let task = tokio::spawn(accept(listener, addr.clone(), script.clone()));
        Broker { addr, script, task }
    }

    fn produced(&self) -> Vec<Produced> {
        self.script.lock().unwrap().produced.clone()
    }

    fn init_producer_ids(&self) -> usize {
        self.script.lock().unwrap().init_producer_ids
    }

    /// Waits until the broker read `n` Produce batches.
    async fn until_produced(&self, n: usize) {
        within("the broker reading the batches", async {
            while self.produced().len() < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    }

    /// A producer on a cluster bootstrapped from this broker.
    fn producer(&self, settings: ProducerSettings) -> NativeProducer {
        let cluster = Cluster::new(
            std::slice::from_ref(&self.addr),
            "produce-test",
            Duration::from_secs(5),
        );
        NativeProducer::new(Arc::new(cluster), settings)
    }
}

async fn accept(listener: TcpListener, addr: String, script: Arc<Mutex<Script>>) {
    // Dropped with the task: the connections end with it.
    let mut connections = JoinSet::new();
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        connections.spawn(serve(stream, addr.clone(), script.clone()));
    }
}

/// One connection: ApiVersions, then requests until the client hangs up.
async fn serve(mut stream: TcpStream, addr: String, script: Arc<Mutex<Script>>) {
    negotiate_with(&mut stream, APIS).await;
    while let Ok((header, mut body)) = read_request_v1(&mut stream).await {
        let version = header.request_api_version;
        let mut out = BytesMut::new();
        match ApiKey::try_from(header.request_api_key).unwrap() {
            ApiKey::Metadata => {
                let request = MetadataRequest::decode(&mut body, version).unwrap();
                metadata(&addr, &request).encode(&mut out, version).unwrap();
            }
            ApiKey::InitProducerId => {
                let n = {
                    let mut script = script.lock().unwrap();
                    script.init_producer_ids += 1;
                    script.init_producer_ids as i64
                };
                InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(FIRST_PRODUCER_ID + n - 1))
                    .with_producer_epoch(0)
                    .encode(&mut out, version)
                    .unwrap();
            }
            ApiKey::Produce => {
                let request = ProduceRequest::decode(&mut body, version).unwrap();
                let Some(response) = script.lock().unwrap().answer(&request) else {
                    continue;
                };
                response.encode(&mut out, version).unwrap();
            }
            other => panic!("the fake broker does not answer {other:?}"),
        }
        write_response(&mut stream, header.correlation_id, &out).await;
    }
}

/// Node 1 at `addr`, leader of partition 0 of every topic asked for.
fn metadata(addr: &str, request: &MetadataRequest) -> MetadataResponse {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let topics = request
        .topics
        .iter()
        .flatten()
        .filter_map(|t| t.name.clone());
    MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(StrBytes::from_string(host.to_owned()))
                .with_port(port.parse().unwrap()),
        ])
        .with_topics(
            topics
                .map(|name| {
                    MetadataResponseTopic::default()
                        .with_name(Some(name))
                        .with_partitions(vec![
                            MetadataResponsePartition::default()
                                .with_partition_index(0)
                                .with_leader_id(BrokerId(1)),
                        ])
                })
                .collect(),
        )
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Idempotent, `acks = all`, no linger, large buffer and batches, long timeouts.
fn settings() -> ProducerSettings {
    ProducerSettings {
        acks: Acks::All,
        compression: Compression::None,
        linger: Duration::ZERO,
        batch_bytes: 1 << 20,
        max_in_flight: 5,
        request_timeout: Duration::from_secs(5),
        delivery_timeout: Duration::from_secs(30),
        retry_backoff: Duration::from_millis(10),
        buffer_bytes: 1 << 20,
        max_block: Duration::from_secs(5),
        idempotence: true,
    }
}

fn record(value: &str) -> OutgoingRecord {
    OutgoingRecord {
        topic: "t".to_owned(),
        partition: 0,
        key: None,
        value: value.as_bytes().to_vec(),
    }
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {DEADLINE:?}"))
}

/// Produces `value` and waits for the outcome, as an [`Error`] if it failed (the producer
/// may hand the record back with the error: `Error::from` makes that an `Error::Send`).
async fn produce(producer: &NativeProducer, value: &str) -> Result<i64> {
    within("the produce", producer.produce(record(value)))
        .await
        .map_err(Error::from)
}

/// Produces `values` in this order (each is queued before the next) and waits for all.
async fn produce_all(producer: &NativeProducer, values: &[&str]) -> Vec<Result<i64>> {
    let mut futures: Vec<_> = values
        .iter()
        .map(|v| Box::pin(producer.produce(record(v))))
        .collect();
    let mut results: Vec<Option<Result<i64>>> = values.iter().map(|_| None).collect();
    within(
        "the produces",
        std::future::poll_fn(|cx| {
            for (future, result) in futures.iter_mut().zip(&mut results) {
                if result.is_none()
                    && let Poll::Ready(r) = future.as_mut().poll(cx)
                {
                    *result = Some(r.map_err(Error::from));
                }
            }
            if results.iter().all(Option::is_some) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }),
    )
    .await;
    results.into_iter().map(Option::unwrap).collect()
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

/// A full buffer fails a send after `max_block` (retriable); a record larger than the whole
/// buffer fails at once (not retriable).
#[tokio::test]
async fn a_full_buffer_fails_a_send_after_max_block() {
    let broker = Broker::start(&[], Reply::Silent).await;
    let max_block = Duration::from_millis(200);
    let producer = Arc::new(broker.producer(ProducerSettings {
        buffer_bytes: 4096,
        max_block,
        ..settings()
    }));
    let big = "x".repeat(3000);
    let first = tokio::spawn({
        let (producer, big) = (producer.clone(), big.clone());
        async move { produce(&producer, &big).await }
    });
    broker.until_produced(1).await;

    let started = Instant::now();
    let e = produce(&producer, &big).await.unwrap_err();
    assert!(
        started.elapsed() >= max_block,
        "failed after {:?}",
        started.elapsed()
    );
    assert!(e.to_string().contains("buffer"), "{e}");
    assert!(e.is_retriable(), "{e}");
    assert!(!first.is_finished(), "the first record is still pending");

    let started = Instant::now();
    let e = produce(&producer, &"x".repeat(5000)).await.unwrap_err();
    assert!(started.elapsed() < max_block, "not at once");
    assert!(e.to_string().contains("buffer"), "{e}");
    assert!(!e.is_retriable(), "{e}");
    first.abort();
}

/// A record the broker never acknowledges fails with "delivery timeout" when it runs out:
/// not before, and not a request timeout later (the request in flight is given up).
#[tokio::test]
async fn an_unacknowledged_record_fails_at_the_delivery_timeout() {
    let broker = Broker::start(&[], Reply::Silent).await;
    let delivery_timeout = Duration::from_secs(1);
    let producer = broker.producer(ProducerSettings {
        request_timeout: Duration::from_secs(5),
        delivery_timeout,
        ..settings()
    });
    let started = Instant::now();
    let e = produce(&producer, "a").await.unwrap_err();
    let took = started.elapsed();
    // Waiting out the request (2 × 5 s) would take 10 s; 1 s of slack covers a busy machine.
    assert!(
        took >= delivery_timeout && took < delivery_timeout + Duration::from_secs(1),
        "failed after {took:?}"
    );
    assert!(e.to_string().contains("delivery timeout"), "{e}");
    assert!(!e.to_string().ends_with("last: "), "{e}");
}

/// A failed record comes back to its caller whole, in the very allocation it was given in:
/// the producer kept no copy of it.
#[tokio::test]
async fn a_failed_record_comes_back_uncopied() {
    let broker = Broker::start(&[], Reply::Code(KafkaCode::MESSAGE_TOO_LARGE)).await;
    let producer = broker.producer(settings());
    let sent = record("the value");
    let allocation = sent.value.as_ptr();
    let unsent = within("the produce", producer.produce(sent))
        .await
        .expect_err("the broker refuses it");
    assert_eq!(unsent.record, record("the value"));
    assert_eq!(
        unsent.record.value.as_ptr(),
        allocation,
        "the value was copied"
    );
    assert_eq!(
        unsent.error.kafka_code(),
        Some(KafkaCode::MESSAGE_TOO_LARGE)
    );
}

/// A retriable code is retried until the delivery timeout; the error keeps that code.
#[tokio::test]
async fn a_retriable_code_is_retried_until_the_delivery_timeout() {
    let broker = Broker::start(&[], Reply::Code(KafkaCode::NOT_LEADER_OR_FOLLOWER)).await;
    let delivery_timeout = Duration::from_secs(1);
    let producer = broker.producer(ProducerSettings {
        delivery_timeout,
        retry_backoff: Duration::from_millis(20),
        ..settings()
    });
    let started = Instant::now();
    let e = produce(&producer, "a").await.unwrap_err();
    assert!(
        started.elapsed() >= delivery_timeout,
        "failed after {:?}",
        started.elapsed()
    );
    assert!(broker.produced().len() >= 2, "retried");
    assert!(!e.to_string().ends_with("last: "), "{e}");
    assert_eq!(
        e.kafka_code(),
        Some(KafkaCode::NOT_LEADER_OR_FOLLOWER),
        "{e}"
    );
    assert!(e.to_string().contains("delivery timeout"), "{e}");
}

/// A retry re-sends the same bytes with the same producer id, epoch and sequence; each
/// record gets the broker's base offset plus its index in the batch.
#[tokio::test]
async fn a_retry_resends_the_same_batch_and_returns_the_brokers_offsets() {
    let broker = Broker::start(&[Reply::Code(KafkaCode::NOT_LEADER_OR_FOLLOWER)], OK).await;
    let producer = broker.producer(settings());
    let offsets: Vec<i64> = produce_all(&producer, &["a", "b"])
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(offsets, [FIRST_OFFSET, FIRST_OFFSET + 1]);

    let produced = broker.produced();
    assert_eq!(produced.len(), 2, "{produced:?}");
    let (first, retry) = (&produced[0], &produced[1]);
    assert_eq!(first.values, ["a", "b"]);
    assert_eq!(first.producer_id, FIRST_PRODUCER_ID);
    assert_eq!(
        (retry.producer_id, retry.epoch, retry.base_sequence),
        (first.producer_id, first.epoch, first.base_sequence)
    );
    assert_eq!(retry.bytes, first.bytes, "the very same batch");
    assert_eq!(broker.init_producer_ids(), 1);
}

/// After OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID or INVALID_PRODUCER_EPOCH the
/// producer takes a new producer id and re-sends with base sequence 0.
#[tokio::test]
async fn a_lost_sequence_takes_a_new_producer_id_and_restarts_at_zero() {
    for code in [
        KafkaCode::OUT_OF_ORDER_SEQUENCE_NUMBER,
        KafkaCode::UNKNOWN_PRODUCER_ID,
        KafkaCode::INVALID_PRODUCER_EPOCH,
    ] {
        let broker = Broker::start(&[OK, Reply::Code(code)], OK).await;
        let producer = broker.producer(settings());
        assert_eq!(produce(&producer, "first").await.unwrap(), FIRST_OFFSET);
        assert_eq!(
            produce(&producer, "second").await.unwrap(),
            FIRST_OFFSET + 1
        );

        assert_eq!(broker.init_producer_ids(), 2, "{code}: a new producer id");
        let seen: Vec<(i64, i32, Vec<String>, Reply)> = broker
            .produced()
            .into_iter()
            .map(|p| (p.producer_id, p.base_sequence, p.values, p.reply))
            .collect();
        let id = FIRST_PRODUCER_ID;
        assert_eq!(
            seen,
            [
                (id, 0, vec!["first".to_owned()], OK),
                (id, 1, vec!["second".to_owned()], Reply::Code(code)),
                (id + 1, 0, vec!["second".to_owned()], OK),
            ],
            "{code}"
        );
    }
}

/// DUPLICATE_SEQUENCE_NUMBER: the broker already wrote the batch; that is a success.
#[tokio::test]
async fn a_duplicate_sequence_is_a_success() {
    let broker = Broker::start(&[], Reply::Code(KafkaCode::DUPLICATE_SEQUENCE_NUMBER)).await;
    let producer = broker.producer(settings());
    assert_eq!(produce(&producer, "a").await.unwrap(), FIRST_OFFSET);
    assert_eq!(broker.produced().len(), 1);
}

/// A code retrying cannot mend fails the record at once, after one request.
#[tokio::test]
async fn a_non_retriable_code_fails_at_once() {
    for code in [
        KafkaCode::MESSAGE_TOO_LARGE,
        KafkaCode::RECORD_LIST_TOO_LARGE,
    ] {
        let broker = Broker::start(&[], Reply::Code(code)).await;
        let delivery_timeout = Duration::from_secs(30);
        let producer = broker.producer(ProducerSettings {
            delivery_timeout,
            ..settings()
        });
        let started = Instant::now();
        let e = produce(&producer, "a").await.unwrap_err();
        assert!(
            started.elapsed() < delivery_timeout / 10,
            "{code}: not at once"
        );
        assert_eq!(e.kafka_code(), Some(code), "{e}");
        assert!(!e.is_retriable(), "{e}");
        assert_eq!(broker.produced().len(), 1, "{code}: not retried");
    }
}

/// A partition's records are written in the order produced when its first batch is retried,
/// with contiguous sequences.
#[tokio::test]
async fn a_retried_batch_keeps_the_partitions_order() {
    let broker = Broker::start(&[Reply::Code(KafkaCode::NOT_LEADER_OR_FOLLOWER)], OK).await;
    let values = ["r0", "r1", "r2", "r3", "r4", "r5"];
    let producer = broker.producer(ProducerSettings {
        // Three records fill a batch.
        batch_bytes: 3 * batch::record_size_estimate(None, b"r0", &[]),
        ..settings()
    });
    let offsets: Vec<i64> = produce_all(&producer, &values)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        offsets,
        (0..6).map(|i| FIRST_OFFSET + i).collect::<Vec<_>>()
    );

    let produced = broker.produced();
    assert_eq!(
        produced.len(),
        3,
        "two batches, the first twice: {produced:?}"
    );
    assert_eq!(produced[0].values, ["r0", "r1", "r2"]);
    assert_eq!(
        produced[0].reply,
        Reply::Code(KafkaCode::NOT_LEADER_OR_FOLLOWER)
    );
    let accepted: Vec<&Produced> = produced.iter().filter(|p| p.reply == OK).collect();
    let written: Vec<&str> = accepted
        .iter()
        .flat_map(|p| p.values.iter().map(String::as_str))
        .collect();
    assert_eq!(written, values);
    let sequences: Vec<i32> = accepted.iter().map(|p| p.base_sequence).collect();
    assert_eq!(sequences, [0, 3]);
}

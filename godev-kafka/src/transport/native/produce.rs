//! The native producer: per-partition accumulators drained by one sender task that sends
//! each broker one Produce request for all its ready partitions, up to `max_in_flight`
//! requests per broker at once.
//!
//! # Guarantees
//!
//! - **Order.** A partition has at most one batch in flight; a batch that fails retriably
//!   goes back to the front of its partition's queue, so records of one partition are written
//!   in the order they were produced.
//! - **No duplicates (idempotence).** With idempotence (the default with `acks = all`) the
//!   producer asks for a producer id (InitProducerId) and stamps every batch with it and a
//!   sequence number per partition. A retry re-sends the same bytes with the same sequence,
//!   so the broker writes it once (a `DUPLICATE_SEQUENCE_NUMBER` answer is a success). If the
//!   broker forgot the producer (`UNKNOWN_PRODUCER_ID`) or a sequence is out of order, the
//!   producer takes a new id and numbers its unsent batches from zero.
//! - **Bounded.** Records wait in a buffer of `buffer_bytes`; `send` waits up to `max_block`
//!   for room, then fails. A record is retried until `delivery_timeout` after it was
//!   produced, then fails with the last error (the Java client's `delivery.timeout.ms`); a
//!   request still in flight then is given up, not waited out.
//!
//! Per record the producer takes one lock and keeps the record as it was handed over; the
//! values are copied only into the encoded batch. A record that fails is handed back to its
//! caller whole ([`Unsent`]), so nobody keeps a copy in case it does.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse,
    ProducerId, TopicName,
};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use super::batch::{self, OutRecord, ProducerStamp};
use crate::transport::connection::{Cluster, Purpose, sb};
use crate::transport::{Acks, Compression, OutgoingRecord, TopicPartition, Unsent};
use crate::{Error, KafkaCode, Result};

/// The highest Produce version asked for: v13 names topics by id only.
const MAX_PRODUCE_VERSION: i16 = 12;
/// How long past the request timeout (the broker's own wait for its replicas) a Produce
/// answer is waited for: a broker that hangs holds its batches that long, then they go to
/// the leader fresh metadata names.
const ANSWER_GRACE: Duration = Duration::from_secs(1);
/// How old the leaders the sender routes by may be; a retriable error reads them again.
const LEADERS_MAX_AGE: Duration = Duration::from_secs(300);

/// How the producer batches, sends and retries.
#[derive(Debug, Clone)]
pub(crate) struct ProducerSettings {
    pub(crate) acks: Acks,
    pub(crate) compression: Compression,
    pub(crate) linger: Duration,
    pub(crate) batch_bytes: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) delivery_timeout: Duration,
    pub(crate) retry_backoff: Duration,
    pub(crate) buffer_bytes: usize,
    pub(crate) max_block: Duration,
    pub(crate) idempotence: bool,
}

/// Why a batch failed, kept so that every record of it gets its own [`Error`].
#[derive(Debug, Clone)]
struct Failure {
    operation: String,
    code: Option<KafkaCode>,
    message: String,
    retriable: bool,
}

impl Failure {
    fn from_error(operation: &str, e: &Error) -> Self {
        Failure {
            operation: operation.to_owned(),
            code: e.kafka_code(),
            message: e.to_string(),
            retriable: e.is_retriable(),
        }
    }

    fn to_error(&self) -> Error {
        match self.code {
            Some(code) => Error::kafka_with(&self.operation, code.code(), Some(&self.message)),
            None => Error::transport(&self.operation, &self.message, self.retriable),
        }
    }
}

/// A batch's outcome: the base offset it was written at (-1 with `acks = none`), or why not.
type Outcome = std::result::Result<i64, Failure>;

/// What the callers of a failed batch learn: why, and their records to take back (each
/// `produce` call takes the one at its index).
#[derive(Debug, Clone)]
struct Refused {
    failure: Failure,
    records: Arc<Mutex<Vec<Option<OutgoingRecord>>>>,
}

/// A batch's outcome as its callers see it.
type Answer = std::result::Result<i64, Refused>;

/// Records of one partition sent together. Dropped unanswered (the sender task failed),
/// it answers its callers with their records.
#[derive(Debug)]
struct Batch {
    records: Vec<OutgoingRecord>,
    bytes: usize,
    /// When its first record was produced: linger and delivery timeout count from here.
    created: Instant,
    outcome: watch::Sender<Option<Answer>>,
    /// Not before this, after a retriable failure.
    retry_at: Option<Instant>,
    /// The encoded bytes, kept for retries (same producer id and sequence).
    encoded: Option<Bytes>,
    /// Why its last attempt failed, for the error if it expires before the next one.
    last_failure: Option<Failure>,
}

impl Drop for Batch {
    fn drop(&mut self) {
        if self.outcome.borrow().is_none() {
            let failure = Failure {
                operation: "produce".to_owned(),
                code: None,
                message: "the native producer stopped before the record was acknowledged"
                    .to_owned(),
                retriable: false,
            };
            self.answer(Err(failure));
        }
    }
}

impl Batch {
    /// Tells every caller of this batch how it went; a failure gives their records back.
    fn answer(&mut self, outcome: Outcome) {
        let answer = outcome.map_err(|failure| Refused {
            failure,
            records: Arc::new(Mutex::new(
                std::mem::take(&mut self.records)
                    .into_iter()
                    .map(Some)
                    .collect(),
            )),
        });
        let _ = self.outcome.send(Some(answer));
    }

    fn new(now: Instant) -> Self {
        Batch {
            records: Vec::new(),
            bytes: 0,
            created: now,
            outcome: watch::channel(None).0,
            retry_at: None,
            encoded: None,
            last_failure: None,
        }
    }
}

/// One partition's records: the batch being filled and those waiting to be sent.
#[derive(Debug, Default)]
struct Queue {
    open: Option<Batch>,
    ready: VecDeque<Batch>,
    in_flight: bool,
    next_sequence: i32,
}

#[derive(Debug, Default)]
struct State {
    queues: HashMap<TopicPartition, Queue>,
    /// Records produced and not yet resolved.
    pending: usize,
    /// Callers of `flush` waiting: linger is off while there are any.
    flushing: usize,
    /// The idempotent producer's id and epoch, once asked for.
    producer: Option<(i64, i16)>,
    /// In-flight requests per broker address.
    in_flight: HashMap<String, usize>,
}

#[derive(Debug)]
struct Shared {
    cluster: Arc<Cluster>,
    settings: ProducerSettings,
    state: Mutex<State>,
    /// The sender has work: a batch opened, closed, or a flush began.
    wake: Notify,
    /// Every produced record resolved.
    idle: Notify,
    /// Bytes of buffer left.
    buffer: Semaphore,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The producer of one native transport. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct NativeProducer {
    shared: Arc<Shared>,
    sender: tokio::task::JoinHandle<()>,
}

impl Drop for NativeProducer {
    fn drop(&mut self) {
        self.sender.abort();
    }
}

/// The bytes a record takes in the buffer and in a batch (an upper bound).
fn record_bytes(record: &OutgoingRecord) -> usize {
    batch::record_size_estimate(record.key.as_deref(), &record.value, &[])
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl NativeProducer {
    /// A producer on `cluster`; its sender task starts now.
    pub(crate) fn new(cluster: Arc<Cluster>, settings: ProducerSettings) -> Self {
        let permits = settings.buffer_bytes.min(Semaphore::MAX_PERMITS);
        let shared = Arc::new(Shared {
            cluster,
            settings,
            state: Mutex::default(),
            wake: Notify::new(),
            idle: Notify::new(),
            buffer: Semaphore::new(permits),
        });
        let sender = tokio::spawn(run_sender(shared.clone()));
        NativeProducer { shared, sender }
    }

    /// Queues `record` and resolves with its offset once the broker acknowledged it.
    ///
    /// # Errors
    ///
    /// The buffer stayed full for `max_block`, or the record's batch failed (retriable
    /// failures are retried until `delivery_timeout`); the record comes back in [`Unsent`].
    pub(crate) async fn produce(&self, record: OutgoingRecord) -> std::result::Result<i64, Unsent> {
        let shared = &self.shared;
        let size = record_bytes(&record);
        let refuse = |record: OutgoingRecord, message: String, retriable: bool| {
            let op = format!("produce to {}[{}]", record.topic, record.partition);
            Unsent::new(record, Error::transport(op, message, retriable))
        };
        // `buffer_bytes` is capped by `new` at what a semaphore holds, below 4 GiB.
        let permits = match u32::try_from(size) {
            Ok(permits) if size <= shared.settings.buffer_bytes => permits,
            _ => {
                let message = format!(
                    "the record takes {size} bytes, more than the whole producer buffer ({} \
                     bytes); raise buffer_bytes",
                    shared.settings.buffer_bytes
                );
                return Err(refuse(record, message, false));
            }
        };
        match tokio::time::timeout(
            shared.settings.max_block,
            shared.buffer.acquire_many(permits),
        )
        .await
        {
            Ok(Ok(permit)) => permit.forget(),
            Ok(Err(_)) => {
                return Err(Unsent::new(record, Error::Closed("native producer")));
            }
            Err(_) => {
                let message = format!(
                    "the producer's buffer ({} bytes) stayed full for {:?}",
                    shared.settings.buffer_bytes, shared.settings.max_block
                );
                return Err(refuse(record, message, true));
            }
        }
        let (mut outcome, index, wake) = {
            let mut state = shared.state();
            state.pending += 1;
            let queue = state
                .queues
                .entry(TopicPartition::new(record.topic.clone(), record.partition))
                .or_default();
            let mut wake = false;
            if queue
                .open
                .as_ref()
                .is_some_and(|b| b.bytes + size > shared.settings.batch_bytes)
            {
                queue.ready.extend(queue.open.take());
                wake = true;
            }
            let open = queue.open.get_or_insert_with(|| {
                wake = true;
                Batch::new(Instant::now())
            });
            let index = open.records.len() as i64;
            open.records.push(record);
            open.bytes += size;
            let outcome = open.outcome.subscribe();
            if open.bytes >= shared.settings.batch_bytes {
                queue.ready.extend(queue.open.take());
            }
            (outcome, index, wake)
        };
        if wake {
            shared.wake.notify_one();
        }
        // A batch answers before it is dropped (`Batch::drop`), so the value is there.
        let answer = outcome
            .wait_for(Option::is_some)
            .await
            .map(|answer| answer.clone())
            .ok()
            .flatten()
            .expect("a batch answers its callers before it is dropped");
        match answer {
            Ok(-1) => Ok(-1),
            Ok(base) => Ok(base + index),
            Err(refused) => {
                let record = refused
                    .records
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_mut(index as usize)
                    .and_then(Option::take)
                    .expect("each caller takes back only its own record");
                Err(Unsent::new(record, refused.failure.to_error()))
            }
        }
    }

    /// Waits until every record produced so far is resolved (linger is off meanwhile).
    pub(crate) async fn flush(&self) {
        let shared = &self.shared;
        shared.state().flushing += 1;
        loop {
            let idle = shared.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if shared.state().pending == 0 {
                break;
            }
            shared.wake.notify_one();
            idle.await;
        }
        shared.state().flushing -= 1;
    }
}

/// A batch on its way to the broker, with the partition it belongs to.
type Sending = (TopicPartition, Batch);

/// What a Produce request to one broker brought back.
struct Sent {
    broker: String,
    batches: Vec<Sending>,
    response: Result<Option<ProduceResponse>>,
}

/// The sender task: waits for work, sends what is ready, settles what comes back.
async fn run_sender(shared: Arc<Shared>) {
    let mut requests: JoinSet<Sent> = JoinSet::new();
    loop {
        let next = match send_ready(&shared, &mut requests).await {
            Ok(next) => next,
            Err(e) => {
                // No producer id or no metadata: nothing could be sent; try again shortly.
                tracing::debug!(error = %e, "native producer could not send");
                Some(Instant::now() + shared.settings.retry_backoff)
            }
        };
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shared.wake.notified() => {}
            () = sleep => {}
            Some(done) = requests.join_next() => {
                if let Ok(sent) = done {
                    settle(&shared, sent);
                }
            }
        }
    }
}

/// Closes batches whose linger is over, sends every partition's first ready batch whose
/// leader has room for a request, and answers when to look again (`None`: when woken).
async fn send_ready(shared: &Shared, requests: &mut JoinSet<Sent>) -> Result<Option<Instant>> {
    let settings = &shared.settings;
    let now = Instant::now();
    let mut next: Option<Instant> = None;
    let mut earliest = |at: Instant| next = Some(next.map_or(at, |n| n.min(at)));
    // The partitions with a batch to send now.
    let candidates: Vec<TopicPartition> = {
        let mut state = shared.state();
        let flushing = state.flushing > 0;
        let mut candidates = Vec::new();
        let mut expired = Vec::new();
        for (tp, queue) in &mut state.queues {
            if !queue.in_flight {
                // Batches that waited out the delivery timeout (no leader, no producer id).
                while queue
                    .ready
                    .front()
                    .is_some_and(|b| b.created + settings.delivery_timeout <= now)
                {
                    expired.extend(queue.ready.pop_front().map(|b| (tp.clone(), b)));
                }
                if let Some(front) = queue.ready.front() {
                    earliest(front.created + settings.delivery_timeout);
                }
            }
            if let Some(open) = &queue.open {
                let due = open.created + settings.linger;
                if flushing || due <= now {
                    queue.ready.extend(queue.open.take());
                } else {
                    earliest(due);
                }
            }
            if queue.in_flight {
                continue;
            }
            match queue.ready.front().and_then(|b| b.retry_at) {
                Some(at) if at > now => earliest(at),
                _ if !queue.ready.is_empty() => candidates.push(tp.clone()),
                _ => {}
            }
        }
        for (tp, mut batch) in expired {
            let failure = batch.last_failure.take().unwrap_or_else(|| Failure {
                operation: format!("produce to {tp}"),
                code: None,
                message: "it could not be sent (no leader or no producer id)".to_owned(),
                retriable: true,
            });
            let failure = expired_failure(settings.delivery_timeout, failure);
            resolve(shared, &mut state, batch, Err(failure));
            if settings.idempotence {
                reset_producer(&mut state);
            }
        }
        candidates
    };
    if candidates.is_empty() {
        return Ok(next);
    }
    let producer = if settings.idempotence {
        Some(producer_id(shared).await?)
    } else {
        None
    };
    let mut topics: Vec<String> = candidates.iter().map(|tp| tp.topic.clone()).collect();
    topics.sort_unstable();
    topics.dedup();
    let metadata = shared.cluster.metadata(&topics, LEADERS_MAX_AGE).await?;
    let mut by_broker: BTreeMap<String, Vec<Sending>> = BTreeMap::new();
    {
        let mut state = shared.state();
        for tp in candidates {
            let leader = metadata
                .get(&tp.topic)
                .and_then(|t| t.leaders.get(&tp.partition).copied().flatten())
                .and_then(|id| shared.cluster.broker(id));
            let Some(leader) = leader else {
                shared.cluster.invalidate(&tp.topic);
                earliest(now + settings.retry_backoff);
                continue;
            };
            let in_flight = state.in_flight.get(&leader).copied().unwrap_or(0);
            let already = by_broker.contains_key(&leader);
            if !already && in_flight >= settings.max_in_flight {
                continue; // woken when one of its requests settles
            }
            let state = &mut *state;
            let Some(queue) = state.queues.get_mut(&tp) else {
                continue;
            };
            let Some(mut batch) = queue.ready.pop_front() else {
                continue;
            };
            if batch.encoded.is_none() {
                let stamp = producer.map(|(producer_id, producer_epoch)| {
                    let base_sequence = queue.next_sequence;
                    let count = batch.records.len() as i32;
                    queue.next_sequence = base_sequence.checked_add(count).unwrap_or(0);
                    ProducerStamp {
                        producer_id,
                        producer_epoch,
                        base_sequence,
                    }
                });
                match encode(&batch.records, settings.compression, stamp) {
                    Ok(bytes) => batch.encoded = Some(bytes),
                    Err(message) => {
                        let failure = Failure {
                            operation: format!("produce to {tp}"),
                            code: None,
                            message,
                            retriable: false,
                        };
                        resolve(shared, state, batch, Err(failure));
                        continue;
                    }
                }
            }
            queue.in_flight = true;
            by_broker.entry(leader).or_default().push((tp, batch));
        }
        for broker in by_broker.keys() {
            *state.in_flight.entry(broker.clone()).or_default() += 1;
        }
    }
    for (broker, batches) in by_broker {
        let request = produce_request(settings, &batches);
        let cluster = shared.cluster.clone();
        // The broker answers within the request's own timeout; allow the answer
        // ANSWER_GRACE to travel, but not past the first delivery timeout of its batches.
        let expires = batches
            .iter()
            .map(|(_, batch)| batch.created + settings.delivery_timeout)
            .min();
        let left = expires.map_or(Duration::ZERO, |at| {
            at.saturating_duration_since(Instant::now())
        });
        let wait = (settings.request_timeout + ANSWER_GRACE).min(left);
        let acks = settings.acks;
        requests.spawn(async move {
            let response = send(&cluster, &broker, request, acks, wait).await;
            Sent {
                broker,
                batches,
                response,
            }
        });
    }
    Ok(next)
}

/// Encodes `records` as one batch.
fn encode(
    records: &[OutgoingRecord],
    compression: Compression,
    stamp: Option<ProducerStamp>,
) -> std::result::Result<Bytes, String> {
    let timestamp = now_millis();
    let out: Vec<OutRecord<'_>> = records
        .iter()
        .map(|r| OutRecord {
            key: r.key.as_deref(),
            value: &r.value,
            headers: &[],
            timestamp,
        })
        .collect();
    let mut buf = BytesMut::new();
    batch::encode(&mut buf, &out, compression, stamp).map_err(|e| e.to_string())?;
    Ok(buf.freeze())
}

fn produce_request(settings: &ProducerSettings, batches: &[Sending]) -> ProduceRequest {
    let mut topics: BTreeMap<&str, Vec<PartitionProduceData>> = BTreeMap::new();
    for (tp, batch) in batches {
        topics.entry(&tp.topic).or_default().push(
            PartitionProduceData::default()
                .with_index(tp.partition)
                .with_records(batch.encoded.clone()),
        );
    }
    ProduceRequest::default()
        .with_acks(match settings.acks {
            Acks::None => 0,
            Acks::One => 1,
            Acks::All => -1,
        })
        .with_timeout_ms(i32::try_from(settings.request_timeout.as_millis()).unwrap_or(i32::MAX))
        .with_topic_data(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    TopicProduceData::default()
                        .with_name(TopicName(sb(topic)))
                        .with_partition_data(partitions)
                })
                .collect(),
        )
}

/// Sends one Produce request to `broker` and waits up to `wait` for its answer; `None` for
/// `acks = none`, which the broker does not answer.
async fn send(
    cluster: &Cluster,
    broker: &str,
    request: ProduceRequest,
    acks: Acks,
    wait: Duration,
) -> Result<Option<ProduceResponse>> {
    let conn = cluster.connection(broker, Purpose::Produce).await?;
    let version = conn
        .version::<ProduceRequest>(ApiKey::Produce)?
        .min(MAX_PRODUCE_VERSION);
    if acks == Acks::None {
        conn.send_only(ApiKey::Produce, version, &request).await?;
        return Ok(None);
    }
    let response = conn
        .call(ApiKey::Produce, version, &request, Some(wait))
        .await?;
    Ok(Some(response))
}

/// Settles what a Produce request brought: each batch written, retried or failed.
fn settle(shared: &Shared, sent: Sent) {
    let Sent {
        broker,
        batches,
        response,
    } = sent;
    let mut answers: HashMap<(String, i32), (i16, i64, Option<String>)> = HashMap::new();
    let request_failure = match &response {
        Ok(Some(response)) => {
            for topic in &response.responses {
                for p in &topic.partition_responses {
                    answers.insert(
                        (topic.name.0.to_string(), p.index),
                        (
                            p.error_code,
                            p.base_offset,
                            p.error_message.as_ref().map(|m| m.to_string()),
                        ),
                    );
                }
            }
            None
        }
        Ok(None) => None,
        Err(e) => Some(e),
    };
    let mut state = shared.state();
    if let Some(n) = state.in_flight.get_mut(&broker) {
        *n = n.saturating_sub(1);
    }
    for (tp, batch) in batches {
        if let Some(queue) = state.queues.get_mut(&tp) {
            queue.in_flight = false;
        }
        let op = format!("produce to {tp}");
        let outcome = match (&response, request_failure) {
            (_, Some(e)) => Err(Failure::from_error(&op, e)),
            (Ok(None), None) => Ok(-1),
            _ => match answers.remove(&(tp.topic.clone(), tp.partition)) {
                None => Err(Failure {
                    operation: op,
                    code: None,
                    message: "the broker's answer left the partition out".to_owned(),
                    retriable: true,
                }),
                Some((0, base, _)) => Ok(base),
                // A retry of a batch the broker already wrote.
                Some((code, base, _))
                    if KafkaCode::new(code) == KafkaCode::DUPLICATE_SEQUENCE_NUMBER =>
                {
                    Ok(base)
                }
                Some((code, _, message)) => Err(Failure {
                    operation: op,
                    code: Some(KafkaCode::new(code)),
                    message: message.unwrap_or_default(),
                    retriable: KafkaCode::new(code).is_retriable(),
                }),
            },
        };
        match outcome {
            Ok(base) => resolve(shared, &mut state, batch, Ok(base)),
            Err(failure) => retry_or_fail(shared, &mut state, tp, batch, failure),
        }
    }
    drop(state);
    shared.wake.notify_one();
}

/// A failed batch goes back to the front of its queue while it may be retried; otherwise
/// its records fail.
fn retry_or_fail(
    shared: &Shared,
    state: &mut State,
    tp: TopicPartition,
    mut batch: Batch,
    failure: Failure,
) {
    let settings = &shared.settings;
    let sequence_lost = matches!(
        failure.code,
        Some(
            KafkaCode::UNKNOWN_PRODUCER_ID
                | KafkaCode::OUT_OF_ORDER_SEQUENCE_NUMBER
                | KafkaCode::INVALID_PRODUCER_EPOCH
        )
    );
    let retriable = failure.retriable || (settings.idempotence && sequence_lost);
    let expired = batch.created.elapsed() >= settings.delivery_timeout;
    if !retriable || expired {
        let failure = if expired {
            expired_failure(settings.delivery_timeout, failure)
        } else {
            failure
        };
        resolve(shared, state, batch, Err(failure));
        if settings.idempotence {
            // The broker may or may not have written it: the sequence is in doubt.
            reset_producer(state);
        }
        return;
    }
    tracing::debug!(partition = %tp, error = %failure.message, "produce failed; retrying");
    shared.cluster.invalidate(&tp.topic);
    if sequence_lost {
        reset_producer(state);
        batch.encoded = None;
    }
    batch.retry_at = Some(Instant::now() + settings.retry_backoff);
    batch.last_failure = Some(failure);
    state.queues.entry(tp).or_default().ready.push_front(batch);
}

/// `failure`, said of a batch whose delivery timeout ran out.
fn expired_failure(timeout: Duration, failure: Failure) -> Failure {
    let expired = format!("not acknowledged within the delivery timeout ({timeout:?})");
    Failure {
        // A broker's code says itself in the error; its message may be empty.
        message: match failure.message.as_str() {
            "" => expired,
            last => format!("{expired}; last: {last}"),
        },
        ..failure
    }
}

/// Forgets the producer id: the next send asks for a new one, and every batch not in flight
/// is numbered again from zero.
fn reset_producer(state: &mut State) {
    state.producer = None;
    for queue in state.queues.values_mut() {
        queue.next_sequence = 0;
        for batch in &mut queue.ready {
            batch.encoded = None;
        }
    }
}

/// Resolves every record of `batch` and gives its bytes back to the buffer.
fn resolve(shared: &Shared, state: &mut State, mut batch: Batch, outcome: Outcome) {
    let n = batch.records.len();
    batch.answer(outcome);
    // `bytes` is what its records took from the buffer when they were produced.
    shared.buffer.add_permits(batch.bytes);
    state.pending = state.pending.saturating_sub(n);
    if state.pending == 0 {
        shared.idle.notify_waiters();
    }
}

/// The idempotent producer's id and epoch, asked for once (and again after a reset).
async fn producer_id(shared: &Shared) -> Result<(i64, i16)> {
    if let Some(id) = shared.state().producer {
        return Ok(id);
    }
    let conn = shared.cluster.any().await?;
    let version = conn.version::<InitProducerIdRequest>(ApiKey::InitProducerId)?;
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(-1)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let response: InitProducerIdResponse = conn
        .call(ApiKey::InitProducerId, version, &request, None)
        .await?;
    if response.error_code != 0 {
        return Err(Error::kafka(
            format!("init producer id on {}", conn.addr()),
            response.error_code,
        ));
    }
    let id = (response.producer_id.0, response.producer_epoch);
    tracing::debug!(producer_id = id.0, epoch = id.1, "idempotent producer id");
    shared.state().producer = Some(id);
    Ok(id)
}

#[cfg(test)]
mod tests;

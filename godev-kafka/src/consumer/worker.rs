//! One ordered worker per assigned partition: dispatch, retries, dead letters.
//!
//! A record is finished when its handler succeeded, or it was skipped, or its dead letter
//! was acknowledged; only then does the commit position move past it. Dead letters are
//! written through a [`Producer`], so they are partitioned as every other record of the
//! framework (keyed by the record's key, unkeyed ones round-robin), and a dead-letter topic
//! with no partitions is an error, not a panic. A write that keeps failing is retried with
//! backoff for at most `max_retry_time` (the budget a handler gets for one record); then the
//! partition *stalls* at that record: logged at error, reported by [`Worker::stalled`],
//! nothing after it handled and nothing past it committed, until the partition is assigned
//! anew (next rebalance, or a restart) and its next owner reads the record again.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::ConsumerSettings;
use super::dead_letter::{DeadLetter, DeadLetterReason, MAX_DEAD_LETTER_BYTES};
use crate::backoff;
use crate::dispatch::{Context, HandlerError, HandlerFuture, Route, States};
use crate::telemetry::PartitionMetrics;
use crate::transport::{Record, StalledPartition, TopicPartition, Transport};
use crate::{Codec, Error, Producer, Router, UnknownTagPolicy};

/// What every worker of a group shares.
pub(crate) struct GroupEnv {
    pub(crate) group: String,
    pub(crate) router: Router,
    pub(crate) codec: Codec,
    pub(crate) unknown_tag: UnknownTagPolicy,
    pub(crate) settings: ConsumerSettings,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) states: States,
}

/// The runner's handle on one partition's worker.
pub(crate) struct Worker {
    pub(crate) queue: mpsc::Sender<Record>,
    /// Offset of the next record not yet handled (the commit position), -1 before any.
    pub(crate) done: Arc<AtomicI64>,
    pub(crate) stopping: Arc<AtomicBool>,
    pub(crate) task: JoinHandle<Result<(), Error>>,
    /// When the record in hand was taken, in milliseconds since [`epoch`] plus one; 0 when idle.
    busy_since: Arc<AtomicU64>,
    /// Set when the worker gave up on a record it could not finish (see [`Worker::stalled`]).
    stall: Arc<Mutex<Option<StalledPartition>>>,
}

/// The instant worker busy times are counted from.
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_mark() -> u64 {
    epoch().elapsed().as_millis() as u64 + 1
}

/// A record that was not finished because the worker was told to stop.
struct Interrupted;

enum Outcome {
    Done,
    Interrupted,
    /// The record cannot be finished for now (its dead letter could not be written): the
    /// worker stops at it, and this says why.
    Stalled(String),
    Fatal(Error),
}

impl Worker {
    pub(crate) fn spawn(env: Arc<GroupEnv>, partition: TopicPartition) -> Self {
        let (queue, mut records) = mpsc::channel::<Record>(env.settings.queue_capacity.max(1));
        let done = Arc::new(AtomicI64::new(-1));
        let stopping = Arc::new(AtomicBool::new(false));
        let busy_since = Arc::new(AtomicU64::new(0));
        let stall = Arc::new(Mutex::new(None));
        // Unkeyed dead letters of this partition start at its own number, then go round-robin.
        let out = Outputs {
            dead_letters: Producer::raw(env.transport.clone(), partition.partition.max(0) as u32),
            metrics: PartitionMetrics::new(&env.group, &partition.topic, partition.partition),
        };
        let span = tracing::info_span!("partition", group = %env.group, topic = %partition.topic, partition = partition.partition);
        let task = tokio::spawn({
            let (done, stopping, busy) = (done.clone(), stopping.clone(), busy_since.clone());
            let stall = stall.clone();
            async move {
                while let Some(record) = records.recv().await {
                    if stopping.load(Ordering::Acquire) {
                        break;
                    }
                    let offset = record.offset;
                    out.metrics.consumed();
                    busy.store(now_mark(), Ordering::Release);
                    // One span per record, a child of the partition's; the tag and the
                    // attempt are recorded once known. Never the key or the value.
                    let span = tracing::info_span!(
                        "process",
                        group = %env.group,
                        topic = %record.topic,
                        partition = record.partition,
                        offset = record.offset,
                        tag = tracing::field::Empty,
                        attempt = tracing::field::Empty,
                    );
                    let outcome = handle(&env, &out, record, &stopping).instrument(span).await;
                    busy.store(0, Ordering::Release);
                    match outcome {
                        Outcome::Done => done.store(offset + 1, Ordering::Release),
                        Outcome::Interrupted => break,
                        Outcome::Stalled(reason) => {
                            let stalled = StalledPartition::new(partition, offset, reason);
                            *stall.lock().unwrap_or_else(|p| p.into_inner()) = Some(stalled);
                            // Idle, not busy (so not a stuck handler): the queue fills, the
                            // runner pauses the partition's fetching, and the commit position
                            // stays at this record until the worker is stopped.
                            while sleep_unless_stopping(Duration::from_secs(60), &stopping)
                                .await
                                .is_ok()
                                && !records.is_closed()
                            {}
                            break;
                        }
                        Outcome::Fatal(error) => return Err(error),
                    }
                }
                Ok(())
            }
            .instrument(span)
        });
        Self {
            queue,
            done,
            stopping,
            task,
            busy_since,
            stall,
        }
    }

    /// Where and why the worker stopped at a record it could not finish, if it did: its
    /// dead letter could not be written within `max_retry_time`. The worker handles nothing
    /// more and its [`position`](Self::position) stays before that record until it is
    /// stopped, so the record is read again by the partition's next owner.
    pub(crate) fn stalled(&self) -> Option<StalledPartition> {
        self.stall.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How long the worker has been on its current record, if it is on one.
    pub(crate) fn busy_for(&self) -> Option<Duration> {
        let since = self.busy_since.load(Ordering::Acquire);
        (since != 0).then(|| Duration::from_millis(now_mark().saturating_sub(since)))
    }

    /// The commit position, once at least one record was handled.
    pub(crate) fn position(&self) -> Option<i64> {
        Some(self.done.load(Ordering::Acquire)).filter(|offset| *offset >= 0)
    }
}

/// Where a worker's results go besides the commit position.
struct Outputs {
    /// Writes the partition's dead letters.
    dead_letters: Producer,
    metrics: PartitionMetrics,
}

/// Handles one record to the end: handled, skipped or dead-lettered (through `out`).
async fn handle(env: &GroupEnv, out: &Outputs, record: Record, stopping: &AtomicBool) -> Outcome {
    let dead = |reason, error: String| DeadLetter::from_record(&record, &env.group, reason, error);
    if record.value.len() > env.settings.max_record_bytes {
        let error = format!(
            "value has {} bytes, more than max_record_bytes {}",
            record.value.len(),
            env.settings.max_record_bytes
        );
        return dead_letter(
            env,
            out,
            &record,
            dead(DeadLetterReason::Oversized, error),
            None,
            stopping,
        )
        .await;
    }
    let peeked = match env.codec.peek(&record.value) {
        Ok(peeked) => peeked,
        Err(error) => {
            return dead_letter(
                env,
                out,
                &record,
                dead(DeadLetterReason::Malformed, error.to_string()),
                None,
                stopping,
            )
            .await;
        }
    };
    let tag = peeked.tag.into_owned();
    tracing::Span::current().record("tag", tag.as_str());
    let Some(route) = env.router.route(&record.topic, &tag) else {
        return match env.unknown_tag {
            UnknownTagPolicy::Skip => {
                tracing::debug!(offset = record.offset, %tag, "no handler for tag; skipped");
                Outcome::Done
            }
            UnknownTagPolicy::DeadLetter => {
                let mut letter = dead(
                    DeadLetterReason::UnknownTag,
                    format!("no handler for `{tag}` in group `{}`", env.group),
                );
                letter.tag = Some(tag);
                dead_letter(env, out, &record, letter, None, stopping).await
            }
            UnknownTagPolicy::Fail => Outcome::Fatal(Error::UnhandledTag {
                topic: record.topic.clone(),
                partition: record.partition,
                offset: record.offset,
                tag,
            }),
        };
    };
    let (reason, error, attempts) = match call_with_retries(
        env,
        &out.metrics,
        route,
        &record,
        &tag,
        peeked.data,
        stopping,
    )
    .await
    {
        Ok(()) => return Outcome::Done,
        Err(Failure::Interrupted) => return Outcome::Interrupted,
        Err(Failure::Gave(reason, error, attempts)) => (reason, error, attempts),
    };
    let mut letter = dead(reason, error);
    letter.tag = Some(tag);
    letter.handler = Some(route.name().to_owned());
    letter.attempts = attempts;
    let handler_topic = route.options().dead_letter_topic;
    dead_letter(env, out, &record, letter, handler_topic, stopping).await
}

enum Failure {
    Interrupted,
    Gave(DeadLetterReason, String, u32),
}

async fn call_with_retries(
    env: &GroupEnv,
    metrics: &PartitionMetrics,
    route: &Route,
    record: &Record,
    tag: &str,
    data: &str,
    stopping: &AtomicBool,
) -> Result<(), Failure> {
    let options = route.options();
    let max_attempts = options
        .max_attempts
        .unwrap_or(env.settings.max_attempts)
        .max(1);
    let first_backoff = options.backoff.unwrap_or(env.settings.backoff);
    let started = Instant::now();
    let mut attempt = 1;
    loop {
        tracing::Span::current().record("attempt", attempt);
        let ctx = Context {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            key: record.key.clone(),
            headers: record.headers.clone(),
            tag: tag.to_owned(),
            group: env.group.clone(),
            attempt,
            states: env.states.clone(),
        };
        let future = route
            .dispatch(tag, data, ctx)
            .map_err(|error| Failure::Gave(DeadLetterReason::Undecodable, error.to_string(), 0))?;
        let called = Instant::now();
        let result = CatchUnwind(future).await;
        let failure = match &result {
            Ok(Ok(())) => None,
            Ok(Err(error)) if error.is_permanent() => Some("permanent"),
            Ok(Err(_)) => Some("handler_error"),
            Err(_) => Some("panic"),
        };
        metrics.processed(tag, called.elapsed(), failure);
        let error = match result {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) if error.is_permanent() => {
                return Err(Failure::Gave(
                    DeadLetterReason::Permanent,
                    error.to_string(),
                    attempt,
                ));
            }
            Ok(Err(error)) => error,
            Err(panic) => return Err(Failure::Gave(DeadLetterReason::Panicked, panic, attempt)),
        };
        let delay = backoff::exponential(first_backoff, env.settings.max_backoff, attempt);
        if attempt >= max_attempts || started.elapsed() + delay > env.settings.max_retry_time {
            return Err(Failure::Gave(
                DeadLetterReason::RetriesExhausted,
                error.to_string(),
                attempt,
            ));
        }
        tracing::warn!(offset = record.offset, attempt, error = %error, retry_in = ?delay, "handler failed; retrying");
        sleep_unless_stopping(delay, stopping)
            .await
            .map_err(|Interrupted| Failure::Interrupted)?;
        metrics.retried(tag);
        attempt += 1;
    }
}

async fn sleep_unless_stopping(delay: Duration, stopping: &AtomicBool) -> Result<(), Interrupted> {
    let deadline = Instant::now() + delay;
    while Instant::now() < deadline {
        if stopping.load(Ordering::Acquire) {
            return Err(Interrupted);
        }
        tokio::time::sleep(
            deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50)),
        )
        .await;
    }
    Ok(())
}

/// Writes `letter` to the record's dead-letter topic through `out.dead_letters` (the framework's
/// producer path: the partition of the record's key, unkeyed letters round-robin, an error
/// for a topic without partitions).
///
/// The letter is written in its compact form when that fits a dead letter's size limit,
/// otherwise in bounded form (without the value; see [`DeadLetter`]). A write the topic
/// refuses for good (too large for the topic's `max.message.bytes`, or another error that
/// trying again would not change) is tried once more in bounded form; from then on, and for
/// retriable failures (broker down, no partitions), it is retried with backoff for at most
/// `max_retry_time`, then the partition stalls ([`Outcome::Stalled`]). Either way the offset
/// is committed only once the dead letter is stored; a worker told to stop leaves the record
/// uncommitted, to be read again.
async fn dead_letter(
    env: &GroupEnv,
    out: &Outputs,
    record: &Record,
    mut letter: DeadLetter,
    handler_topic: Option<&str>,
    stopping: &AtomicBool,
) -> Outcome {
    let topic = handler_topic.map_or_else(
        || format!("{}{}", record.topic, env.settings.dead_letter_suffix),
        str::to_owned,
    );
    let encoded = |written: serde_json::Result<_>| {
        written.map_err(|source| Error::Encode {
            tag: "dead letter",
            source,
        })
    };
    let (mut key, mut value) = match encoded(letter.prepare_record(record.key.as_deref())) {
        Ok(written) => written,
        Err(error) => return Outcome::Fatal(error),
    };
    tracing::warn!(
        offset = record.offset,
        reason = ?letter.reason,
        error = %letter.error,
        dead_letter_topic = %topic,
        "record dead-lettered"
    );
    if letter.value_omitted {
        let why = format!("more than {MAX_DEAD_LETTER_BYTES} bytes in compact form");
        log_bounded(record, &topic, &letter, &why);
    }
    let budget = env.settings.max_retry_time;
    let started = Instant::now();
    let mut attempt = 1;
    loop {
        let error = match out
            .dead_letters
            .send_raw(&topic, key.as_deref(), value)
            .await
        {
            Ok(delivery) => {
                out.metrics.dead_lettered(letter.reason.as_str());
                tracing::debug!(
                    offset = record.offset,
                    dead_letter_topic = %topic,
                    dead_letter_partition = delivery.partition,
                    dead_letter_offset = delivery.offset,
                    "dead letter written"
                );
                return Outcome::Done;
            }
            // The producer hands the value back, so a retry needs no copy of it.
            Err(Error::Send {
                value: unsent,
                source,
                ..
            }) => {
                value = unsent;
                *source
            }
            // `send_raw` fails with `Error::Send` only.
            Err(error) => return Outcome::Fatal(error),
        };
        // Refused for good (a closed transport is no refusal: the worker is stopping).
        if !error.is_retriable() && !matches!(error, Error::Closed(_)) && !letter.value_omitted {
            letter.make_bounded();
            (key, value) = match encoded(letter.bounded_record(record.key.as_deref())) {
                Ok(written) => written,
                Err(error) => return Outcome::Fatal(error),
            };
            log_bounded(record, &topic, &letter, &error.to_string());
            continue;
        }
        let delay = backoff::exponential(env.settings.backoff, env.settings.max_backoff, attempt);
        let retried_for = started.elapsed();
        if retried_for + delay > budget {
            tracing::error!(
                offset = record.offset,
                dead_letter_topic = %topic,
                attempts = attempt,
                ?retried_for,
                max_retry_time = ?budget,
                error = %error,
                "dead letter not written within max_retry_time; the partition stalls at this \
                 record, uncommitted, and is read again when next assigned"
            );
            return Outcome::Stalled(format!(
                "the dead letter could not be written to `{topic}` within max_retry_time \
                 ({budget:?}, {attempt} attempts): {error}"
            ));
        }
        tracing::error!(
            offset = record.offset,
            dead_letter_topic = %topic,
            attempt,
            error = %error,
            retry_in = ?delay,
            "dead-letter write failed; retrying"
        );
        if sleep_unless_stopping(delay, stopping).await.is_err() {
            return Outcome::Interrupted;
        }
        attempt += 1;
    }
}

/// Says, at error, that the dead letter of `record` goes out without its value: where the
/// record is, how large, and why (never the payload).
fn log_bounded(record: &Record, dead_letter_topic: &str, letter: &DeadLetter, why: &str) {
    tracing::error!(
        topic = %record.topic,
        partition = record.partition,
        offset = record.offset,
        value_bytes = record.value.len(),
        key_bytes = record.key.as_ref().map_or(0, Vec::len),
        key_omitted = letter.key_omitted,
        headers_omitted = letter.headers_omitted,
        %dead_letter_topic,
        why,
        "dead letter in bounded form, without the original value: the record is still at \
         its offset in its topic, for as long as retention keeps it"
    );
}

/// Runs a handler future, turning a panic into an error message.
struct CatchUnwind(HandlerFuture);

impl Future for CatchUnwind {
    type Output = Result<Result<(), HandlerError>, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let future = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => Poll::Ready(Ok(result)),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "handler panicked".to_owned());
                Poll::Ready(Err(format!("handler panicked: {message}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicU32;

    use super::*;
    use crate::partitioner::partition_for_key;
    use crate::transport::memory::MemoryTransport;
    use crate::transport::{BoxFuture, GroupMember, GroupOptions, OutgoingRecord, Unsent};
    use crate::{Result, consumer::DeadLetter};

    /// The memory backend, except that every produce to `refused` fails as a broker that is
    /// away would fail it (retriable), counted in `refusals`.
    struct Refusing {
        memory: MemoryTransport,
        refused: String,
        refusals: AtomicU32,
    }

    impl Transport for Refusing {
        fn partition_count<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<i32>> {
            self.memory.partition_count(topic)
        }

        fn end_offsets<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<BTreeMap<i32, i64>>> {
            self.memory.end_offsets(topic)
        }

        fn create_topic<'a>(
            &'a self,
            topic: &'a str,
            partitions: i32,
        ) -> BoxFuture<'a, Result<()>> {
            Transport::create_topic(&self.memory, topic, partitions)
        }

        fn produce(
            &self,
            record: OutgoingRecord,
        ) -> BoxFuture<'_, std::result::Result<i64, Unsent>> {
            if record.topic != self.refused {
                return self.memory.produce(record);
            }
            self.refusals.fetch_add(1, Ordering::SeqCst);
            let error = Error::transport("produce", "the broker is away", true);
            Box::pin(async move { Err(Unsent::new(record, error)) })
        }

        fn join(&self, options: GroupOptions) -> BoxFuture<'_, Result<Box<dyn GroupMember>>> {
            self.memory.join(options)
        }

        fn name(&self) -> &'static str {
            "refusing"
        }

        fn brokers(&self) -> Vec<String> {
            self.memory.brokers()
        }
    }

    /// Retries a few milliseconds apart, for at most 200 ms per record.
    fn settings() -> ConsumerSettings {
        ConsumerSettings {
            backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            max_retry_time: Duration::from_millis(200),
            ..ConsumerSettings::default()
        }
    }

    /// A worker of group `g` for `orders` partition 0 on `transport`, with no handlers: every
    /// record that is not JSON is dead-lettered as malformed, to `orders.dlq`.
    fn worker(transport: Arc<dyn Transport>, settings: ConsumerSettings) -> Worker {
        let env = GroupEnv {
            group: "g".into(),
            router: Router::new("g"),
            codec: Codec::default(),
            unknown_tag: UnknownTagPolicy::Skip,
            settings,
            transport,
            states: States::default(),
        };
        Worker::spawn(Arc::new(env), TopicPartition::new("orders", 0))
    }

    /// A record of `orders` partition 0 that is not JSON.
    fn malformed(offset: i64, key: Option<&str>) -> Record {
        Record::new(
            "orders",
            0,
            offset,
            key.map(|k| k.as_bytes().to_vec()),
            b"not json".to_vec(),
        )
    }

    async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Issue #15: every unkeyed dead letter went to partition 0; they go round-robin, as the
    /// producer sends unkeyed records, and keyed ones to their key's partition.
    #[tokio::test]
    async fn unkeyed_dead_letters_spread_over_partitions() {
        let memory = MemoryTransport::new(1);
        memory.create_topic("orders.dlq", 3);
        let worker = worker(Arc::new(memory.clone()), settings());
        for offset in 0..6 {
            worker.queue.send(malformed(offset, None)).await.unwrap();
        }
        for offset in 6..8 {
            worker
                .queue
                .send(malformed(offset, Some("order-7")))
                .await
                .unwrap();
        }
        wait_until("all eight dead-lettered", || worker.position() == Some(8)).await;
        let origins = |partition| -> Vec<(i64, bool)> {
            memory
                .records("orders.dlq", partition)
                .iter()
                .map(|r| {
                    let letter: DeadLetter = serde_json::from_slice(&r.value).unwrap();
                    (letter.origin_offset, r.key.is_some())
                })
                .collect()
        };
        let keyed = partition_for_key(b"order-7", 3);
        for partition in 0..3 {
            let mut expected = vec![(partition as i64, false), (partition as i64 + 3, false)];
            if partition == keyed {
                expected.extend([(6, true), (7, true)]);
            }
            assert_eq!(
                origins(partition),
                expected,
                "dead-letter partition {partition}"
            );
        }
    }

    /// Issue #15: a dead-letter topic that reports no partitions made a keyed letter panic
    /// the worker (`partition_for_key(key, 0)`), which stopped the whole group. It is an error
    /// now: retried, then the partition stalls at the record, uncommitted.
    #[tokio::test]
    async fn a_dead_letter_topic_with_no_partitions_is_an_error_not_a_panic() {
        let memory = MemoryTransport::new(1);
        memory.create_topic("orders.dlq", 0);
        let worker = worker(Arc::new(memory.clone()), settings());
        worker
            .queue
            .send(malformed(0, Some("order-7")))
            .await
            .unwrap();
        wait_until("the partition stalls", || {
            worker.stalled().is_some() || worker.task.is_finished()
        })
        .await;
        assert!(!worker.task.is_finished(), "the worker stopped (panicked?)");
        let stall = worker.stalled().unwrap();
        assert_eq!((stall.partition.partition, stall.offset), (0, 0));
        assert!(
            stall.reason.contains("orders.dlq") && stall.reason.contains("no partitions"),
            "{}",
            stall.reason
        );
        assert_eq!(worker.position(), None, "nothing to commit");
    }

    /// Issue #15: a dead letter that could not be written was retried forever, silently as
    /// far as the status went. Now the retries stop after `max_retry_time`, the partition
    /// stalls at the record (reported, nothing after it handled, nothing committed), and a
    /// stop still ends the worker.
    #[tokio::test]
    async fn a_dead_letter_that_cannot_be_written_stalls_its_partition_after_bounded_retries() {
        let transport = Arc::new(Refusing {
            memory: MemoryTransport::new(1),
            refused: "orders.dlq".into(),
            refusals: AtomicU32::new(0),
        });
        let worker = worker(transport.clone(), settings());
        worker.queue.send(malformed(0, None)).await.unwrap();
        worker.queue.send(malformed(1, None)).await.unwrap();
        let started = Instant::now();
        wait_until("the partition stalls", || worker.stalled().is_some()).await;
        let stalled_after = started.elapsed();
        let stall = worker.stalled().unwrap();
        assert_eq!(stall.offset, 0, "stalled at the first record");
        assert!(
            stall.reason.contains("orders.dlq") && stall.reason.contains("the broker is away"),
            "{}",
            stall.reason
        );
        // max_retry_time is 200 ms; 2 s is all the slack a loaded test machine needs.
        assert!(stalled_after < Duration::from_secs(2), "{stalled_after:?}");
        let refusals = transport.refusals.load(Ordering::SeqCst);
        assert!(
            refusals >= 2,
            "retried before giving up: {refusals} attempts"
        );
        // Had it gone on retrying, at most 20 ms apart, 300 ms would show 15 more attempts.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            transport.refusals.load(Ordering::SeqCst),
            refusals,
            "no retries after the stall"
        );
        assert_eq!(worker.position(), None, "nothing committed past the record");
        assert_eq!(worker.busy_for(), None, "stalled is not a stuck handler");
        assert!(!worker.task.is_finished());
        // A stop (revocation, shutdown) ends the stalled worker at once.
        worker.stopping.store(true, Ordering::Release);
        drop(worker.queue);
        let ended = tokio::time::timeout(Duration::from_secs(2), worker.task).await;
        assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
        assert_eq!(
            transport.refusals.load(Ordering::SeqCst),
            refusals,
            "the second record was never dead-lettered"
        );
    }
}

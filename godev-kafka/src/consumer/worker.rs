//! One ordered worker per assigned partition: dispatch, retries, dead letters.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::ConsumerSettings;
use super::dead_letter::{DeadLetter, DeadLetterReason, MAX_DEAD_LETTER_BYTES};
use crate::dispatch::{Context, HandlerError, HandlerFuture, Route, States};
use crate::partitioner::partition_for_key;
use crate::transport::{OutgoingRecord, Record, TopicPartition, Transport};
use crate::{Codec, Error, Router, UnknownTagPolicy};

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
    Fatal(Error),
}

impl Worker {
    pub(crate) fn spawn(env: Arc<GroupEnv>, partition: TopicPartition) -> Self {
        let (queue, mut records) = mpsc::channel::<Record>(env.settings.queue_capacity.max(1));
        let done = Arc::new(AtomicI64::new(-1));
        let stopping = Arc::new(AtomicBool::new(false));
        let busy_since = Arc::new(AtomicU64::new(0));
        let span = tracing::info_span!("partition", group = %env.group, topic = %partition.topic, partition = partition.partition);
        let task = tokio::spawn({
            let (done, stopping, busy) = (done.clone(), stopping.clone(), busy_since.clone());
            async move {
                while let Some(record) = records.recv().await {
                    if stopping.load(Ordering::Acquire) {
                        break;
                    }
                    let offset = record.offset;
                    busy.store(now_mark(), Ordering::Release);
                    let outcome = handle(&env, record, &stopping).await;
                    busy.store(0, Ordering::Release);
                    match outcome {
                        Outcome::Done => done.store(offset + 1, Ordering::Release),
                        Outcome::Interrupted => break,
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
        }
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

/// Handles one record to the end: handled, skipped or dead-lettered.
async fn handle(env: &GroupEnv, record: Record, stopping: &AtomicBool) -> Outcome {
    let dead = |reason, error: String| DeadLetter::from_record(&record, &env.group, reason, error);
    if record.value.len() > env.settings.max_record_bytes {
        let error = format!(
            "value has {} bytes, more than max_record_bytes {}",
            record.value.len(),
            env.settings.max_record_bytes
        );
        return dead_letter(
            env,
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
                &record,
                dead(DeadLetterReason::Malformed, error.to_string()),
                None,
                stopping,
            )
            .await;
        }
    };
    let tag = peeked.tag.into_owned();
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
                dead_letter(env, &record, letter, None, stopping).await
            }
            UnknownTagPolicy::Fail => Outcome::Fatal(Error::UnhandledTag {
                topic: record.topic.clone(),
                partition: record.partition,
                offset: record.offset,
                tag,
            }),
        };
    };
    let (reason, error, attempts) =
        match call_with_retries(env, route, &record, &tag, peeked.data, stopping).await {
            Ok(()) => return Outcome::Done,
            Err(Failure::Interrupted) => return Outcome::Interrupted,
            Err(Failure::Gave(reason, error, attempts)) => (reason, error, attempts),
        };
    let mut letter = dead(reason, error);
    letter.tag = Some(tag);
    letter.handler = Some(route.name().to_owned());
    letter.attempts = attempts;
    let handler_topic = route.options().dead_letter_topic;
    dead_letter(env, &record, letter, handler_topic, stopping).await
}

enum Failure {
    Interrupted,
    Gave(DeadLetterReason, String, u32),
}

async fn call_with_retries(
    env: &GroupEnv,
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
        let error = match CatchUnwind(future).await {
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
        let delay = backoff(first_backoff, env.settings.max_backoff, attempt);
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
        attempt += 1;
    }
}

/// Exponential backoff with full jitter between half and all of the nominal delay.
fn backoff(first: Duration, max: Duration, attempt: u32) -> Duration {
    let nominal = first.saturating_mul(1 << (attempt - 1).min(20)).min(max);
    let jitter = jitter_fraction();
    nominal.mul_f64(0.5 + jitter / 2.0)
}

fn jitter_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
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

/// Writes `letter` to the record's dead-letter topic, retrying until it is acknowledged or
/// the worker is told to stop (then the record stays uncommitted and is read again).
///
/// The letter is written in its compact form when that fits a dead letter's size limit,
/// otherwise in bounded form (without the value; see [`DeadLetter`]). A write the topic
/// refuses for good (too large for the topic's `max.message.bytes`, or another error that
/// trying again would not change) is tried once more in bounded form; from then on, and for
/// retriable failures (broker down), it is retried with backoff: the offset is committed only
/// once the dead letter is stored.
async fn dead_letter(
    env: &GroupEnv,
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
    let mut attempt = 1;
    loop {
        let written = async {
            let partitions = env.transport.partition_count(&topic).await?;
            let partition = record
                .key
                .as_deref()
                .map_or(0, |key| partition_for_key(key, partitions));
            let out = OutgoingRecord {
                topic: topic.clone(),
                partition,
                key: key.clone(),
                value: value.clone(),
            };
            env.transport
                .produce(out)
                .await
                .map_err(|unsent| unsent.error)
        };
        match written.await {
            Ok(_) => return Outcome::Done,
            // Refused for good (a closed transport is no refusal: the worker is stopping).
            Err(error)
                if !error.is_retriable()
                    && !matches!(error, Error::Closed(_))
                    && !letter.value_omitted =>
            {
                letter.make_bounded();
                (key, value) = match encoded(letter.bounded_record(record.key.as_deref())) {
                    Ok(written) => written,
                    Err(error) => return Outcome::Fatal(error),
                };
                log_bounded(record, &topic, &letter, &error.to_string());
            }
            Err(error) => {
                let delay = backoff(env.settings.backoff, env.settings.max_backoff, attempt);
                tracing::error!(%topic, error = %error, retry_in = ?delay, "dead-letter write failed; retrying");
                if sleep_unless_stopping(delay, stopping).await.is_err() {
                    return Outcome::Interrupted;
                }
                attempt += 1;
            }
        }
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

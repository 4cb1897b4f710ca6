//! The producer thread: takes records from a bounded queue, batches them and writes them with
//! the `kafka` crate.
//!
//! # The queue
//!
//! `send` reserves a record's bytes (key, value and [`MESSAGE_OVERHEAD`]) in a buffer of
//! `buffer_bytes`, and gives them back once the record is answered. While there is room the
//! record is queued at once, so records keep the order of the calls; else `send` waits up to
//! `max_block` for room, then fails with an error naming the full buffer (back-pressure, not
//! unbounded memory). A record larger than the whole buffer fails at once.
//!
//! # Batches and retries
//!
//! The thread takes the first record, keeps collecting until `linger` passed or `batch_size`
//! records are in hand, writes the batch with `Producer::send_all` (one produce request per
//! leader), and resolves every record with its offset: the broker returns the base offset of
//! each partition's message set and the records of that partition follow it in order.
//! Retriable failures (leader moved, timeouts, network) refresh the metadata and retry the
//! failed records, `retry_backoff` after the first failure, the pause doubling up to
//! [`MAX_RETRY_BACKOFF`], with jitter. A record fails only once its delivery deadline
//! (`delivery_timeout` after it was queued) has passed: at the first failed try after it, or
//! before its first try if it waited that long in the queue. A try under way at the deadline
//! is not cut short (it ends within the request timeout).
//!
//! # A panic
//!
//! The thread's work runs under `catch_unwind`. A panic fails the records the thread held with
//! an error naming the panic (they may or may not have been written), answers the flushes it
//! held, and the thread starts over with a new client; the queue behind survives. Should the
//! thread end anyway, sends fail with an error saying why, not with `Error::Closed`.

use std::any::Any;
use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use kafka::client::{KafkaClient, RequiredAcks};
use kafka::producer::{Producer, Record as KafkaRecord};
use tokio::sync::{Semaphore, oneshot};

use super::client::{code_retriable, connection_lost, reconnect, to_error};
use super::{Acks, KafkaOptions};
use crate::transport::OutgoingRecord;
use crate::{Error, Result};

/// The bytes a v1 message takes besides its key and value (offset, size, crc, magic,
/// attributes, timestamp and the two lengths): what a record costs in the buffer on top.
pub(crate) const MESSAGE_OVERHEAD: usize = 34;
/// The longest pause between two tries of a record (unless `retry_backoff` is longer).
pub(crate) const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(1);

/// How the producer thread batches, retries and bounds its queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) linger: Duration,
    pub(crate) batch_size: usize,
    pub(crate) retry_backoff: Duration,
    pub(crate) delivery_timeout: Duration,
    pub(crate) buffer_bytes: usize,
    pub(crate) max_block: Duration,
}

impl Settings {
    fn new(options: &KafkaOptions) -> Self {
        Settings {
            linger: options.linger,
            batch_size: options.batch_size.max(1),
            retry_backoff: options.retry_backoff,
            delivery_timeout: options.delivery_timeout,
            // A semaphore holds fewer permits than a usize can count.
            buffer_bytes: options.buffer_bytes.clamp(1, Semaphore::MAX_PERMITS),
            max_block: options.max_block,
        }
    }
}

/// What the thread writes records with: the `kafka` crate's producer, or a test's script.
trait Writer {
    /// One try: for each of `records`, in order, its offset or why it was not written.
    fn write(&mut self, records: &[&OutgoingRecord]) -> Vec<Result<i64>>;

    /// Reads the metadata of `topics` again, after a retriable failure.
    fn refresh(&mut self, topics: &[&str]);
}

/// What the handles and the thread share.
#[derive(Debug)]
struct Shared {
    settings: Settings,
    /// One permit per byte of `buffer_bytes`; a queued record holds its bytes' worth.
    buffer: Semaphore,
    /// The answers of records the thread dropped while it panicked: it answers them once it
    /// caught the panic and knows what it said.
    orphans: Mutex<Vec<oneshot::Sender<Result<i64>>>>,
    /// Why the thread ended, once it did.
    ended: Mutex<Option<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// The error of a send or flush that finds the thread gone.
    fn gone(&self) -> Error {
        let why = lock(&self.ended)
            .clone()
            .unwrap_or_else(|| "it stopped answering".into());
        Error::transport(
            "produce",
            format!(
                "the kafka producer thread is gone: {why}; this transport cannot produce any \
                 more, connect a new one"
            ),
            false,
        )
    }
}

/// The answer to one send, and its bytes in the buffer, given back when it is answered or
/// dropped. Dropped unanswered while the thread panics, it leaves its answer to the thread.
#[derive(Debug)]
struct Reply {
    tx: Option<oneshot::Sender<Result<i64>>>,
    bytes: u32,
    shared: Arc<Shared>,
}

impl Reply {
    fn answer(mut self, result: Result<i64>) {
        // The room first: a caller that sends again once answered finds it.
        self.shared
            .buffer
            .add_permits(std::mem::take(&mut self.bytes) as usize);
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(result);
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        self.shared.buffer.add_permits(self.bytes as usize);
        if let Some(tx) = self.tx.take() {
            if thread::panicking() {
                lock(&self.shared.orphans).push(tx);
            } else {
                let _ = tx.send(Err(Error::transport(
                    "produce",
                    "the kafka producer let go of the record without an answer",
                    true,
                )));
            }
        }
    }
}

/// A record in the queue.
#[derive(Debug)]
pub(crate) struct Queued {
    /// The caller keeps the record too, and gets it back whole on failure once the thread has
    /// let go of it.
    record: Arc<OutgoingRecord>,
    /// When it fails unless written by then.
    deadline: Instant,
    reply: Reply,
}

impl Queued {
    fn answer(self, result: Result<i64>) {
        let Queued { record, reply, .. } = self;
        drop(record); // before the answer, so that the caller holds the only reference
        reply.answer(result);
    }
}

/// What the producer thread is asked to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Write a record, answer with its offset.
    Produce(Queued),
    /// Answer once everything sent before is answered.
    Flush(oneshot::Sender<()>),
}

/// The sending side of the producer thread.
#[derive(Debug)]
pub(crate) struct ProducerHandle {
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

impl ProducerHandle {
    /// Starts the producer thread on a `kafka` crate producer for `options`.
    pub(crate) fn spawn(
        options: &KafkaOptions,
        compression: kafka::client::Compression,
    ) -> Result<Self> {
        let mut make = kafka_writers(options, compression);
        let first = make()?;
        Self::start(Settings::new(options), first, make)
    }

    /// Starts the thread on `first`; it makes a new writer with `make` after a panic.
    fn start<W: Writer + Send + 'static>(
        settings: Settings,
        first: W,
        make: impl FnMut() -> Result<W> + Send + 'static,
    ) -> Result<Self> {
        let shared = Arc::new(Shared {
            settings,
            buffer: Semaphore::new(settings.buffer_bytes),
            orphans: Mutex::default(),
            ended: Mutex::default(),
        });
        let (commands, rx) = mpsc::channel();
        let thread_shared = shared.clone();
        thread::Builder::new()
            .name("godev-kafka-producer".into())
            .spawn(move || run(rx, first, make, thread_shared))
            .map_err(|e| Error::transport("start producer thread", e, false))?;
        Ok(Self { commands, shared })
    }

    /// Queues `record` and resolves with its offset. With room in the buffer the record is
    /// queued now, in the order of the calls; else the future waits up to `max_block` for
    /// room.
    ///
    /// # Errors
    ///
    /// The record is larger than the whole buffer, the buffer stayed full for `max_block`, or
    /// the record failed (a retriable failure once its delivery timeout ran out).
    pub(crate) fn send(
        &self,
        record: Arc<OutgoingRecord>,
    ) -> impl Future<Output = Result<i64>> + Send + '_ {
        let size = record.key.as_ref().map_or(0, Vec::len) + record.value.len() + MESSAGE_OVERHEAD;
        let buffer_bytes = self.shared.settings.buffer_bytes;
        let bytes = u32::try_from(size).ok().filter(|_| size <= buffer_bytes);
        let queued = bytes.and_then(|bytes| {
            let permit = self.shared.buffer.try_acquire_many(bytes).ok()?;
            permit.forget();
            Some(self.queue(record.clone(), bytes))
        });
        async move {
            let answer = match (queued, bytes) {
                (Some(queued), _) => queued?,
                (None, Some(bytes)) => self.queue_when_room(record, bytes).await?,
                (None, None) => {
                    return Err(Error::transport(
                        operation(&record),
                        format!(
                            "the record takes {size} bytes, more than the whole producer buffer \
                             ({buffer_bytes} bytes); raise buffer_bytes"
                        ),
                        false,
                    ));
                }
            };
            answer.await.unwrap_or_else(|_| Err(self.shared.gone()))
        }
    }

    /// Waits up to `max_block` for `bytes` of room, then queues `record`.
    async fn queue_when_room(
        &self,
        record: Arc<OutgoingRecord>,
        bytes: u32,
    ) -> Result<oneshot::Receiver<Result<i64>>> {
        let settings = &self.shared.settings;
        match tokio::time::timeout(settings.max_block, self.shared.buffer.acquire_many(bytes)).await
        {
            Ok(Ok(permit)) => permit.forget(),
            Ok(Err(_)) => return Err(self.shared.gone()),
            Err(_) => {
                return Err(Error::transport(
                    operation(&record),
                    format!(
                        "the producer's buffer ({} bytes) stayed full for {:?}: the brokers take \
                         records slower than they are produced, or not at all; raise \
                         buffer_bytes or max_block_ms, or produce less",
                        settings.buffer_bytes, settings.max_block
                    ),
                    true,
                ));
            }
        }
        self.queue(record, bytes)
    }

    /// Hands `record`, which holds `bytes` of the buffer, to the thread.
    fn queue(
        &self,
        record: Arc<OutgoingRecord>,
        bytes: u32,
    ) -> Result<oneshot::Receiver<Result<i64>>> {
        let (tx, rx) = oneshot::channel();
        let queued = Queued {
            record,
            deadline: Instant::now() + self.shared.settings.delivery_timeout,
            reply: Reply {
                tx: Some(tx),
                bytes,
                shared: self.shared.clone(),
            },
        };
        self.commands
            .send(Command::Produce(queued))
            .map_err(|_| self.shared.gone())?;
        Ok(rx)
    }

    /// Resolves once everything queued before is answered.
    ///
    /// # Errors
    ///
    /// The thread is gone.
    pub(crate) fn flush(&self) -> impl Future<Output = Result<()>> + Send + '_ {
        let (tx, rx) = oneshot::channel();
        let sent = self.commands.send(Command::Flush(tx)).is_ok();
        async move {
            if !sent {
                return Err(self.shared.gone());
            }
            rx.await.map_err(|_| self.shared.gone())
        }
    }
}

/// `produce to topic[partition]`, the operation of a record's errors.
fn operation(record: &OutgoingRecord) -> String {
    format!("produce to {}[{}]", record.topic, record.partition)
}

/// Says why the thread ended, and answers what it dropped, when the thread ends.
struct Ended(Arc<Shared>);

impl Drop for Ended {
    fn drop(&mut self) {
        let why = if thread::panicking() {
            "it panicked outside its guarded work (see the log)"
        } else {
            "it ended"
        };
        *lock(&self.0.ended) = Some(why.to_owned());
        for tx in lock(&self.0.orphans).drain(..) {
            let _ = tx.send(Err(self.0.gone()));
        }
    }
}

/// Whether the queue is still open.
enum Flow {
    Open,
    Closed,
}

/// The thread: rounds of [`round`] until every handle is gone, starting over after a panic.
fn run<W: Writer>(
    rx: mpsc::Receiver<Command>,
    first: W,
    mut make: impl FnMut() -> Result<W>,
    shared: Arc<Shared>,
) {
    // Dropped before `rx`, so that a send that finds the queue closed reads why.
    let _ended = Ended(shared.clone());
    let settings = shared.settings;
    let mut writer = Some(first);
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        let work = AssertUnwindSafe(|| round(&rx, &mut writer, &mut make, settings, &mut flushes));
        match panic::catch_unwind(work) {
            Ok(Flow::Open) => {}
            Ok(Flow::Closed) => return,
            Err(payload) => {
                let cause = panic_message(payload.as_ref());
                tracing::error!(
                    panic = %cause,
                    "the kafka producer thread panicked; the records it held fail and it starts \
                     over with a new client"
                );
                // Its state is unknown after a panic: the next try makes a new one.
                writer = None;
                for tx in lock(&shared.orphans).drain(..) {
                    let _ = tx.send(Err(Error::transport(
                        "produce",
                        format!(
                            "the kafka producer thread panicked while it held the record \
                             ({cause}); the record may or may not have been written; the thread \
                             started over with a new client"
                        ),
                        true,
                    )));
                }
                for tx in flushes.drain(..) {
                    let _ = tx.send(());
                }
            }
        }
    }
}

/// What a panic said.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Takes one batch from the queue (and the flushes that came with it), writes it and answers.
fn round<W: Writer>(
    rx: &mpsc::Receiver<Command>,
    writer: &mut Option<W>,
    make: &mut impl FnMut() -> Result<W>,
    settings: Settings,
    flushes: &mut Vec<oneshot::Sender<()>>,
) -> Flow {
    let Ok(first) = rx.recv() else {
        return Flow::Closed;
    };
    let mut flow = Flow::Open;
    let mut batch = Vec::new();
    let take = |command, batch: &mut Vec<Queued>, flushes: &mut Vec<_>| match command {
        Command::Produce(queued) => batch.push(queued),
        Command::Flush(tx) => flushes.push(tx),
    };
    take(first, &mut batch, flushes);
    let linger_end = Instant::now() + settings.linger;
    while flushes.is_empty() && batch.len() < settings.batch_size {
        match rx.recv_timeout(linger_end.saturating_duration_since(Instant::now())) {
            Ok(command) => take(command, &mut batch, flushes),
            Err(RecvTimeoutError::Timeout) => break,
            Err(RecvTimeoutError::Disconnected) => {
                flow = Flow::Closed;
                break;
            }
        }
    }
    if !batch.is_empty() {
        send_batch(writer, make, batch, settings);
    }
    for tx in flushes.drain(..) {
        let _ = tx.send(());
    }
    flow
}

/// Writes `batch`, retrying retriable failures until each record's deadline, and answers every
/// record.
fn send_batch<W: Writer>(
    slot: &mut Option<W>,
    make: &mut impl FnMut() -> Result<W>,
    batch: Vec<Queued>,
    settings: Settings,
) {
    let now = Instant::now();
    let (late, mut batch): (Vec<Queued>, Vec<Queued>) =
        batch.into_iter().partition(|q| q.deadline <= now);
    for queued in late {
        let error = Error::transport(
            operation(&queued.record),
            format!(
                "the record waited in the producer's queue for its whole delivery timeout \
                 ({:?}), behind records that kept failing, and was not tried",
                settings.delivery_timeout
            ),
            true,
        );
        queued.answer(Err(error));
    }
    let mut tries = 0u32;
    while !batch.is_empty() {
        tries += 1;
        let results = {
            let records: Vec<&OutgoingRecord> = batch.iter().map(|q| &*q.record).collect();
            match writer(slot, make) {
                Ok(writer) => writer.write(&records),
                Err(e) => records.iter().map(|_| Err(clone_error(&e))).collect(),
            }
        };
        let now = Instant::now();
        let mut retry = Vec::new();
        let mut last_error = None;
        // A record without a result (a writer's bug) is answered by its `Reply` when dropped.
        for (queued, result) in batch.into_iter().zip(results) {
            match result {
                Err(e) if e.is_retriable() && now < queued.deadline => {
                    retry.push(queued);
                    last_error = Some(e);
                }
                Err(e) if e.is_retriable() => {
                    queued.answer(Err(timed_out(e, settings.delivery_timeout, tries)));
                }
                result => queued.answer(result),
            }
        }
        let Some(error) = last_error else {
            return;
        };
        let earliest = retry.iter().map(|q| q.deadline).min().unwrap_or(now);
        let pause = backoff(settings.retry_backoff, tries).min(earliest - now);
        tracing::debug!(tries, records = retry.len(), %error, ?pause, "retrying produce");
        thread::sleep(pause);
        if let Some(writer) = slot.as_mut() {
            let mut topics: Vec<&str> = retry.iter().map(|q| q.record.topic.as_str()).collect();
            topics.sort_unstable();
            topics.dedup();
            writer.refresh(&topics);
        }
        batch = retry;
    }
}

/// The writer in `slot`, made anew if a panic took it.
fn writer<'w, W>(
    slot: &'w mut Option<W>,
    make: &mut impl FnMut() -> Result<W>,
) -> Result<&'w mut W> {
    if slot.is_none() {
        *slot = Some(make()?);
    }
    Ok(slot.as_mut().expect("a writer was just put there"))
}

/// The pause after the `tries`-th failed try: `first`, doubled per try up to
/// [`MAX_RETRY_BACKOFF`] (or `first`, if longer), with jitter ([`crate::backoff::exponential`]).
fn backoff(first: Duration, tries: u32) -> Duration {
    crate::backoff::exponential(first, MAX_RETRY_BACKOFF.max(first), tries)
}

/// `error`, the last of a record whose delivery timeout ran out, saying so.
fn timed_out(error: Error, timeout: Duration, tries: u32) -> Error {
    match error {
        Error::Transport {
            operation,
            message,
            retriable,
        } => Error::Transport {
            operation,
            message: format!(
                "{message} (still failing after {tries} tries when the delivery timeout of \
                 {timeout:?} ran out)"
            ),
            retriable,
        },
        other => other,
    }
}

/// The `kafka` crate's producer, and what it was asked to wait for.
struct KafkaWriter {
    producer: Producer,
    acks: Acks,
}

/// Makes `kafka` crate producers for `options`, each on a client of its own.
fn kafka_writers(
    options: &KafkaOptions,
    compression: kafka::client::Compression,
) -> impl FnMut() -> Result<KafkaWriter> + Send + 'static {
    let brokers = options.brokers.clone();
    let client_id = options.client_id.clone();
    let (acks, ack_timeout) = (options.acks, options.request_timeout);
    move || {
        let mut client = KafkaClient::new(brokers.clone());
        client.set_client_id(client_id.clone());
        let producer = Producer::from_client(client)
            .with_required_acks(match acks {
                Acks::None => RequiredAcks::None,
                Acks::One => RequiredAcks::One,
                Acks::All => RequiredAcks::All,
            })
            .with_ack_timeout(ack_timeout)
            .with_compression(compression)
            .with_client_id(client_id.clone())
            .create()
            .map_err(|e| to_error("create producer", &e))?;
        Ok(KafkaWriter { producer, acks })
    }
}

impl KafkaWriter {
    /// Loads metadata for topics of `records` the client does not know yet.
    fn ensure_metadata(&mut self, records: &[&OutgoingRecord]) {
        let missing: Vec<&str> = {
            let topics = self.producer.client().topics();
            let mut missing: Vec<&str> = records
                .iter()
                .filter(|r| {
                    topics
                        .partitions(&r.topic)
                        .and_then(|ps| ps.partition(r.partition))
                        .and_then(|p| p.leader())
                        .is_none()
                })
                .map(|r| r.topic.as_str())
                .collect();
            missing.sort_unstable();
            missing.dedup();
            missing
        };
        if !missing.is_empty() {
            self.refresh(&missing);
        }
    }
}

impl Writer for KafkaWriter {
    fn write(&mut self, records: &[&OutgoingRecord]) -> Vec<Result<i64>> {
        self.ensure_metadata(records);
        let result = {
            let records: Vec<KafkaRecord<'_, &[u8], &[u8]>> = records
                .iter()
                .map(|r| {
                    KafkaRecord::from_key_value(
                        r.topic.as_str(),
                        r.key.as_deref().unwrap_or_default(),
                        r.value.as_slice(),
                    )
                    .with_partition(r.partition)
                })
                .collect();
            self.producer.send_all(&records)
        };
        let confirms = match result {
            Ok(confirms) => confirms,
            Err(e) => {
                let error = to_error(format!("produce to {}", records[0].topic), &e);
                if connection_lost(&e) {
                    reconnect(self.producer.client_mut());
                }
                return records.iter().map(|_| Err(clone_error(&error))).collect();
            }
        };
        if self.acks == Acks::None {
            return records.iter().map(|_| Ok(-1)).collect();
        }
        let mut base: HashMap<(&str, i32), std::result::Result<i64, kafka::error::KafkaCode>> =
            HashMap::new();
        for confirm in &confirms {
            for p in &confirm.partition_confirms {
                base.insert((confirm.topic.as_str(), p.partition), p.offset);
            }
        }
        // Offsets follow the base offset in the order the records were given, per partition.
        let mut index: HashMap<(&str, i32), i64> = HashMap::new();
        records
            .iter()
            .map(|r| {
                let key = (r.topic.as_str(), r.partition);
                let n = index.entry(key).or_default();
                let nth = *n;
                *n += 1;
                match base.get(&key) {
                    Some(Ok(offset)) => Ok(offset + nth),
                    Some(Err(code)) => Err(Error::transport(
                        operation(r),
                        format!("{code:?}"),
                        code_retriable(*code),
                    )),
                    None => Err(Error::transport(
                        operation(r),
                        "no confirmation for the partition",
                        true,
                    )),
                }
            })
            .collect()
    }

    fn refresh(&mut self, topics: &[&str]) {
        if let Err(e) = self.producer.client_mut().load_metadata(topics) {
            tracing::debug!(error = %e, "metadata refresh for produce failed");
            if connection_lost(&e) {
                reconnect(self.producer.client_mut());
            }
        }
    }
}

/// A copy of a transport error (the producer answers many records with one error).
fn clone_error(e: &Error) -> Error {
    match e {
        Error::Transport {
            operation,
            message,
            retriable,
        } => Error::Transport {
            operation: operation.clone(),
            message: message.clone(),
            retriable: *retriable,
        },
        other => Error::transport("produce", other, other.is_retriable()),
    }
}

/// The producer thread on scripted writers (no broker): the delivery timeout, the bounded
/// queue, and a panic on the thread.
#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    type Script = Box<dyn FnMut(&[&OutgoingRecord]) -> Vec<Result<i64>> + Send>;

    /// A writer that does what its script says.
    struct Scripted(Script);

    impl Writer for Scripted {
        fn write(&mut self, records: &[&OutgoingRecord]) -> Vec<Result<i64>> {
            (self.0)(records)
        }

        fn refresh(&mut self, _: &[&str]) {}
    }

    fn settings() -> Settings {
        Settings {
            linger: Duration::ZERO,
            batch_size: 1,
            retry_backoff: Duration::from_millis(10),
            delivery_timeout: Duration::from_secs(5),
            buffer_bytes: 1 << 20,
            max_block: Duration::from_secs(1),
        }
    }

    /// 100 bytes of value and a 1-byte key: 135 bytes in the buffer.
    fn record() -> Arc<OutgoingRecord> {
        Arc::new(OutgoingRecord {
            topic: "t".into(),
            partition: 0,
            key: Some(b"k".to_vec()),
            value: vec![0; 100],
        })
    }
    const RECORD_BYTES: usize = 1 + 100 + MESSAGE_OVERHEAD;

    fn retriable() -> Error {
        Error::transport("produce to t", "No host reachable", true)
    }

    /// A thread whose writers all run `script`, never restarted.
    fn producer(settings: Settings, script: Script) -> ProducerHandle {
        ProducerHandle::start(settings, Scripted(script), || -> Result<Scripted> {
            panic!("no restart expected")
        })
        .unwrap()
    }

    /// Offsets 0, 1, 2, ... for every record written.
    fn offsets() -> impl FnMut(&[&OutgoingRecord]) -> Vec<Result<i64>> + Send {
        let mut next = 0;
        move |records| {
            records
                .iter()
                .map(|_| {
                    next += 1;
                    Ok(next - 1)
                })
                .collect()
        }
    }

    /// A broker unreachable for 800 ms: the old producer gave up after 1 + 5 tries 10 ms
    /// apart (60 ms); this one keeps trying within its 5 s delivery timeout, backing off.
    #[tokio::test]
    async fn a_kafka_producer_retries_until_its_delivery_timeout_not_a_count() {
        let tries = Arc::new(AtomicU32::new(0));
        let back_at = Instant::now() + Duration::from_millis(800);
        let mut ok = offsets();
        let counted = tries.clone();
        let handle = producer(
            settings(),
            Box::new(move |records| {
                counted.fetch_add(1, Ordering::Relaxed);
                if Instant::now() < back_at {
                    records.iter().map(|_| Err(retriable())).collect()
                } else {
                    ok(records)
                }
            }),
        );
        let offset = handle
            .send(record())
            .await
            .expect("written once the broker is back");
        assert_eq!(offset, 0);
        let tries = tries.load(Ordering::Relaxed);
        // Backoff from 10 ms doubling (times 0.5 to 1) reaches 800 ms in 7 to 9 tries (fewer
        // if the sleeps overrun on a busy machine); many more would be a retry loop without
        // backoff.
        assert!((2..=12).contains(&tries), "{tries} tries");
    }

    /// A record fails once its own deadline passed, counted from when it was queued: the
    /// second one, queued 200 ms later, fails no sooner than 400 ms after that.
    #[tokio::test]
    async fn a_kafka_producer_record_fails_only_once_its_own_delivery_timeout_passed() {
        let timeout = Duration::from_millis(400);
        let handle = producer(
            Settings {
                delivery_timeout: timeout,
                ..settings()
            },
            Box::new(|records| records.iter().map(|_| Err(retriable())).collect()),
        );
        let first_queued = Instant::now();
        let first = handle.send(record());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let second_queued = Instant::now();
        let second = handle.send(record());
        let (first, second) = tokio::join!(
            async {
                let error = first.await.unwrap_err();
                (error, first_queued.elapsed())
            },
            async {
                let error = second.await.unwrap_err();
                (error, second_queued.elapsed())
            }
        );
        for (error, took) in [first, second] {
            assert!(took >= timeout, "failed after {took:?}, before {timeout:?}");
            // The last backoff before the deadline is cut to it; the try after ends at once.
            assert!(
                took < timeout + Duration::from_secs(1),
                "failed {took:?} after it was queued"
            );
            assert!(error.is_retriable(), "{error}");
            let message = error.to_string();
            assert!(
                message.contains("No host reachable")
                    && message.contains("delivery timeout of 400ms"),
                "{message}"
            );
        }
    }

    /// A writer stuck on its first record: three records fill the buffer, the fourth send
    /// waits `max_block` and fails naming the full buffer, and a send waiting for room goes
    /// through once the writer moves again.
    #[tokio::test]
    async fn a_full_kafka_producer_queue_pushes_back() {
        let (open, gate) = mpsc::channel::<()>();
        let gate = Mutex::new(gate);
        let mut ok = offsets();
        let max_block = Duration::from_millis(300);
        let handle = producer(
            Settings {
                buffer_bytes: 3 * RECORD_BYTES,
                max_block,
                ..settings()
            },
            Box::new(move |records| {
                let _ = lock(&gate).recv();
                ok(records)
            }),
        );
        let queued = [
            handle.send(record()),
            handle.send(record()),
            handle.send(record()),
        ];
        let started = Instant::now();
        let full = tokio::time::timeout(Duration::from_secs(5), handle.send(record()))
            .await
            .expect("a send into a full buffer answers after max_block, not never")
            .expect_err("the buffer is full");
        assert!(started.elapsed() >= max_block, "{:?}", started.elapsed());
        assert!(full.is_retriable(), "{full}");
        let message = full.to_string();
        assert!(
            message.contains("buffer (405 bytes) stayed full for 300ms"),
            "{message}"
        );

        let waiting = handle.send(record());
        for _ in 0..4 {
            open.send(()).unwrap();
        }
        let [a, b, c] = queued;
        let (a, b, c, d) = tokio::join!(a, b, c, waiting);
        assert_eq!(
            (a.unwrap(), b.unwrap(), c.unwrap(), d.unwrap()),
            (0, 1, 2, 3)
        );
        assert_eq!(handle.shared.buffer.available_permits(), 3 * RECORD_BYTES);

        let huge = Arc::new(OutgoingRecord {
            value: vec![0; 3 * RECORD_BYTES],
            ..(*record()).clone()
        });
        let error = handle.send(huge).await.unwrap_err();
        assert!(!error.is_retriable());
        assert!(
            error
                .to_string()
                .contains("more than the whole producer buffer"),
            "{error}"
        );
    }

    /// The writer panics on its first record: that record fails with an error naming the
    /// panic (not `Closed`), the thread makes a new writer, and later sends and flushes work.
    #[tokio::test]
    async fn a_dead_kafka_producer_thread_is_an_error_not_closed_forever() {
        let made = Arc::new(AtomicU32::new(0));
        let script = || -> Script { Box::new(offsets()) };
        let make = {
            let made = made.clone();
            move || {
                made.fetch_add(1, Ordering::Relaxed);
                Ok(Scripted(script()))
            }
        };
        let first = Scripted(Box::new(|_| panic!("boom in the writer")));
        let handle = ProducerHandle::start(settings(), first, make).unwrap();

        let error = handle.send(record()).await.unwrap_err();
        assert!(!matches!(error, Error::Closed(_)), "{error}");
        assert!(error.is_retriable(), "{error}");
        let message = error.to_string();
        assert!(
            message.contains("panicked") && message.contains("boom in the writer"),
            "{message}"
        );
        assert_eq!(handle.shared.buffer.available_permits(), 1 << 20);

        for expected in 0..3 {
            let offset = handle
                .send(record())
                .await
                .expect("written by the new writer");
            assert_eq!(offset, expected);
        }
        handle.flush().await.expect("flush after the panic");
        assert_eq!(made.load(Ordering::Relaxed), 1, "one new writer");
    }
}

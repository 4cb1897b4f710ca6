//! The producer thread: batches records from a channel and writes them with the `kafka` crate.
//!
//! `produce` puts the record on a channel and waits for its oneshot. The thread takes the first
//! record, keeps collecting until `linger` passed or `batch_size` records are in hand, writes
//! the batch with `Producer::send_all` (one produce request per leader), and resolves every
//! record with its offset: the broker returns the base offset of each partition's message set
//! and the records of that partition follow it in order. Retriable failures (leader moved,
//! timeouts, network) refresh the metadata and retry the failed partitions, `retries` times
//! at most, `retry_backoff` apart.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use kafka::client::{KafkaClient, RequiredAcks};
use kafka::producer::{Producer, Record as KafkaRecord};
use tokio::sync::oneshot;

use super::client::{code_retriable, connection_lost, reconnect, to_error};
use super::{Acks, KafkaOptions};
use crate::transport::OutgoingRecord;
use crate::{Error, Result};

/// What the producer thread is asked to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Write a record, answer with its offset. The caller keeps the record too, and gets
    /// it back whole on failure once the thread has let go of it.
    Produce(Arc<OutgoingRecord>, oneshot::Sender<Result<i64>>),
    /// Answer once everything sent before is acknowledged.
    Flush(oneshot::Sender<()>),
}

/// The sending side of the producer thread.
#[derive(Debug, Clone)]
pub(crate) struct ProducerHandle {
    commands: mpsc::Sender<Command>,
}

impl ProducerHandle {
    /// Starts the producer thread on a producer built from `client`.
    pub(crate) fn spawn(
        client: KafkaClient,
        options: &KafkaOptions,
        compression: kafka::client::Compression,
    ) -> Result<Self> {
        let acks = match options.acks {
            Acks::None => RequiredAcks::None,
            Acks::One => RequiredAcks::One,
            Acks::All => RequiredAcks::All,
        };
        let producer = Producer::from_client(client)
            .with_required_acks(acks)
            .with_ack_timeout(options.request_timeout)
            .with_compression(compression)
            .with_client_id(options.client_id.clone())
            .create()
            .map_err(|e| to_error("create producer", &e))?;
        let (commands, rx) = mpsc::channel();
        let settings = Settings {
            linger: options.linger,
            batch_size: options.batch_size.max(1),
            retries: options.retries,
            retry_backoff: options.retry_backoff,
            acks: options.acks,
        };
        thread::Builder::new()
            .name("godev-kafka-producer".into())
            .spawn(move || run(producer, rx, settings))
            .map_err(|e| Error::transport("start producer thread", e, false))?;
        Ok(Self { commands })
    }

    /// Queues `record`; the receiver resolves with its offset.
    pub(crate) fn send(&self, record: Arc<OutgoingRecord>) -> oneshot::Receiver<Result<i64>> {
        let (tx, rx) = oneshot::channel();
        if let Err(mpsc::SendError(Command::Produce(_, tx))) =
            self.commands.send(Command::Produce(record, tx))
        {
            let _ = tx.send(Err(Error::Closed("kafka producer")));
        }
        rx
    }

    /// Resolves once everything queued before is acknowledged.
    pub(crate) fn flush(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let _ = self.commands.send(Command::Flush(tx));
        rx
    }
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    linger: Duration,
    batch_size: usize,
    retries: u32,
    retry_backoff: Duration,
    acks: Acks,
}

type Pending = (Arc<OutgoingRecord>, oneshot::Sender<Result<i64>>);

fn run(mut producer: Producer, rx: mpsc::Receiver<Command>, settings: Settings) {
    let mut batch: Vec<Pending> = Vec::new();
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut closed = false;
        match first {
            Command::Produce(r, tx) => batch.push((r, tx)),
            Command::Flush(tx) => flushes.push(tx),
        }
        let deadline = Instant::now() + settings.linger;
        while flushes.is_empty() && batch.len() < settings.batch_size {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Command::Produce(r, tx)) => batch.push((r, tx)),
                Ok(Command::Flush(tx)) => flushes.push(tx),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if !batch.is_empty() {
            send_batch(&mut producer, std::mem::take(&mut batch), settings);
        }
        for tx in flushes.drain(..) {
            let _ = tx.send(());
        }
        if closed {
            break;
        }
    }
}

/// Writes `batch`, retrying retriable failures, and answers every record.
fn send_batch(producer: &mut Producer, mut batch: Vec<Pending>, settings: Settings) {
    let mut attempt = 0u32;
    loop {
        ensure_metadata(producer, &batch);
        let (done, failed) = send_once(producer, batch, settings.acks);
        for (tx, result) in done {
            let _ = tx.send(result);
        }
        let Some((failed, error)) = failed else {
            return;
        };
        if !error.is_retriable() || attempt >= settings.retries {
            for (record, tx) in failed {
                drop(record); // before the answer, so the caller holds the only reference
                let _ = tx.send(Err(clone_error(&error)));
            }
            return;
        }
        attempt += 1;
        tracing::debug!(attempt, %error, "retrying produce");
        thread::sleep(settings.retry_backoff);
        let topics: Vec<String> = failed.iter().map(|(r, _)| r.topic.clone()).collect();
        let _ = producer.client_mut().load_metadata(&topics);
        batch = failed;
    }
}

/// Loads metadata for topics of `batch` the client does not know yet.
fn ensure_metadata(producer: &mut Producer, batch: &[Pending]) {
    let missing: Vec<&str> = {
        let topics = producer.client().topics();
        let mut missing: Vec<&str> = batch
            .iter()
            .filter(|(r, _)| {
                topics
                    .partitions(&r.topic)
                    .and_then(|ps| ps.partition(r.partition))
                    .and_then(|p| p.leader())
                    .is_none()
            })
            .map(|(r, _)| r.topic.as_str())
            .collect();
        missing.sort_unstable();
        missing.dedup();
        missing
    };
    if !missing.is_empty()
        && let Err(e) = producer.client_mut().load_metadata(&missing)
    {
        tracing::debug!(error = %e, "metadata refresh before produce failed");
        if connection_lost(&e) {
            reconnect(producer.client_mut());
        }
    }
}

type Answered = Vec<(oneshot::Sender<Result<i64>>, Result<i64>)>;

/// One produce round: answers for the records that are settled, and the records to retry
/// with the error that failed them.
fn send_once(
    producer: &mut Producer,
    batch: Vec<Pending>,
    acks: Acks,
) -> (Answered, Option<(Vec<Pending>, Error)>) {
    let result = {
        let records: Vec<KafkaRecord<'_, &[u8], &[u8]>> = batch
            .iter()
            .map(|(r, _)| {
                KafkaRecord::from_key_value(
                    r.topic.as_str(),
                    r.key.as_deref().unwrap_or_default(),
                    r.value.as_slice(),
                )
                .with_partition(r.partition)
            })
            .collect();
        producer.send_all(&records)
    };
    let confirms = match result {
        Ok(confirms) => confirms,
        Err(e) => {
            let error = to_error(format!("produce to {}", batch[0].0.topic), &e);
            if connection_lost(&e) {
                reconnect(producer.client_mut());
            }
            return (Vec::new(), Some((batch, error)));
        }
    };
    if acks == Acks::None {
        return (
            batch.into_iter().map(|(_, tx)| (tx, Ok(-1))).collect(),
            None,
        );
    }
    let mut base: HashMap<(&str, i32), std::result::Result<i64, kafka::error::KafkaCode>> =
        HashMap::new();
    for confirm in &confirms {
        for p in &confirm.partition_confirms {
            base.insert((confirm.topic.as_str(), p.partition), p.offset);
        }
    }
    // Offsets follow the base offset in the order the records were given, per partition.
    let mut index: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut outcome: Vec<std::result::Result<i64, Option<kafka::error::KafkaCode>>> = Vec::new();
    for (r, _) in &batch {
        let n = index.entry((r.topic.clone(), r.partition)).or_default();
        outcome.push(match base.get(&(r.topic.as_str(), r.partition)) {
            Some(Ok(offset)) => Ok(offset + *n),
            Some(Err(code)) => Err(Some(*code)),
            None => Err(None),
        });
        *n += 1;
    }
    drop(base);
    let mut done = Vec::new();
    let mut retry = Vec::new();
    let mut error = None;
    for ((record, tx), outcome) in batch.into_iter().zip(outcome) {
        match outcome {
            Ok(offset) => done.push((tx, Ok(offset))),
            Err(code) => {
                let op = format!("produce to {}[{}]", record.topic, record.partition);
                let e = match code {
                    Some(code) => Error::transport(op, format!("{code:?}"), code_retriable(code)),
                    None => Error::transport(op, "no confirmation for the partition", true),
                };
                if e.is_retriable() {
                    error.get_or_insert(e);
                    retry.push((record, tx));
                } else {
                    done.push((tx, Err(e)));
                }
            }
        }
    }
    let failed = error.map(|e| (retry, e));
    (done, failed)
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

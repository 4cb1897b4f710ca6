//! A KIP-848 group member: the crate's consumer on a driver task, and the rebalance listener
//! that holds a revocation until the runner has committed (see the
//! [module docs](super#revocation-before-the-partition-moves)).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use confluent_kafka::common::header::{Header as _, Headers as _};
use confluent_kafka::common::serialization::ByteArrayDeserializer;
use confluent_kafka::common::{Error as KafkaError, TopicPartition as KafkaPartition};
use confluent_kafka::consumer::{
    CloseOptions, Consumer as _, ConsumerConfig, ConsumerHandle, ConsumerRebalanceListener,
    ConsumerRecords, GroupMembershipOperation, KafkaConsumer, OffsetAndMetadata,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{ConfluentOptions, failed, from_kafka, millis, to_kafka};
use crate::transport::{
    BoxFuture, GroupMember, GroupOptions, Header, OffsetReset, PartitionProgress, Polled, Record,
    StalledPartition, TopicPartition,
};
use crate::{Error, Result};

type Reply<T> = oneshot::Sender<Result<T>>;
type ByteConsumer = KafkaConsumer<Vec<u8>, Vec<u8>>;

/// What the member asks of the consumer.
enum Command {
    /// Poll the consumer for at most the duration; the answer goes to the sender.
    Poll(Duration, Reply<Polled>),
    /// The runner polled again after a [`Polled::Revoked`]: the revocation may complete.
    RevocationDone,
    Commit(Vec<(TopicPartition, i64)>, Reply<()>),
    Pause(TopicPartition),
    Resume(TopicPartition),
    Seek(TopicPartition, i64),
    Leave(Reply<()>),
}

/// What the driver task and the rebalance listener share.
struct Shared {
    group: String,
    /// The member's commands, read by the driver between polls and by the listener while a
    /// revocation waits.
    commands: tokio::sync::Mutex<mpsc::UnboundedReceiver<Command>>,
    /// Rebalance steps from the listener (records and errors answer each poll's reply).
    events: mpsc::UnboundedSender<Polled>,
    /// Commands the listener took but only the driver can serve (leave, poll).
    deferred: Mutex<VecDeque<Command>>,
    close_timeout: Duration,
    /// Each owned partition's fetch position and high watermark, refreshed by the driver
    /// at most every [`PROGRESS_EVERY`].
    progress: Mutex<Vec<(TopicPartition, PartitionProgress)>>,
}

/// How often the driver asks the crate for positions and lags (from its last fetches: no
/// request to the broker).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// A member of a KIP-848 consumer group. See the [module docs](super).
pub(crate) struct ConfluentMember {
    commands: Option<mpsc::UnboundedSender<Command>>,
    events: mpsc::UnboundedReceiver<Polled>,
    /// The answer of a crate poll still running (a rebalance step came first).
    in_flight: Option<oneshot::Receiver<Result<Polled>>>,
    /// The last step handed out was a revocation: the next poll completes it.
    revoking: bool,
    handle: ConsumerHandle,
    driver: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ConfluentMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfluentMember").finish_non_exhaustive()
    }
}

impl ConfluentMember {
    /// Builds the consumer, subscribes with the listener and starts the driver task. The
    /// member joins the group on its first poll.
    pub(crate) async fn join(transport: &ConfluentOptions, options: GroupOptions) -> Result<Self> {
        let op = format!("join group {}", options.group);
        let mut props = transport.consumer_properties();
        let reset = match options.offset_reset {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        };
        props.extend([
            ("group.id".to_string(), options.group.clone()),
            ("group.protocol".into(), "consumer".into()),
            ("enable.auto.commit".into(), "false".into()),
            ("auto.offset.reset".into(), reset.into()),
            // KIP-848's rebalance timeout: how long a revocation may take.
            (
                "max.poll.interval.ms".into(),
                millis(options.rebalance_timeout).to_string(),
            ),
        ]);
        // Static membership as the Java client does it under KIP-848: closing such a member
        // tells the coordinator it leaves for now (member epoch -2), so its partitions wait
        // for it until the session timeout instead of moving at once.
        if let Some(instance) = &options.group_instance_id {
            props.insert("group.instance.id".into(), instance.clone());
        }
        let props = transport.with_extra(props);
        let config = ConsumerConfig::new(&props).map_err(|e| Error::Config {
            key: "kafka".into(),
            message: format!("the confluent consumer refuses its configuration: {e}"),
        })?;
        let mut consumer = ByteConsumer::new(
            config,
            ByteArrayDeserializer::default(),
            ByteArrayDeserializer::default(),
        )
        .map_err(|e| failed(&op, &e))?;
        let handle = consumer.handle();
        let (command_tx, command_rx) = mpsc::unbounded_channel();
        let (event_tx, event_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            group: options.group.clone(),
            commands: tokio::sync::Mutex::new(command_rx),
            events: event_tx,
            deferred: Mutex::new(VecDeque::new()),
            close_timeout: transport.request_timeout,
            progress: Mutex::new(Vec::new()),
        });
        let listener = Arc::new(Listener {
            shared: shared.clone(),
            handle: handle.clone(),
        });
        if let Err(e) = consumer
            .subscribe_with_topics_listener(options.topics.clone(), listener)
            .await
        {
            let _ = consumer.close().await;
            return Err(failed(op, &e));
        }
        let driver = tokio::spawn(drive(consumer, shared.clone()));
        Ok(Self {
            commands: Some(command_tx),
            events: event_rx,
            in_flight: None,
            revoking: false,
            handle,
            driver: Some(driver),
            shared,
        })
    }

    fn hand_out(&mut self, step: Polled) -> Polled {
        self.revoking = matches!(step, Polled::Revoked(_));
        step
    }

    fn send(&self, command: Command) -> Result<()> {
        self.commands
            .as_ref()
            .and_then(|c| c.send(command).ok())
            .ok_or(Error::Closed("confluent consumer"))
    }
}

impl GroupMember for ConfluentMember {
    fn poll(&mut self, wait: Duration) -> BoxFuture<'_, Result<Polled>> {
        Box::pin(async move {
            if std::mem::take(&mut self.revoking) {
                self.send(Command::RevocationDone)?;
            }
            // Rebalance steps come before the records of the crate poll that brought them.
            if let Ok(step) = self.events.try_recv() {
                return Ok(self.hand_out(step));
            }
            let mut answer = match self.in_flight.take() {
                Some(answer) => answer,
                None => {
                    let (reply, answer) = oneshot::channel();
                    self.send(Command::Poll(wait, reply))?;
                    answer
                }
            };
            tokio::select! {
                biased;
                step = self.events.recv() => {
                    self.in_flight = Some(answer);
                    step.map(|step| self.hand_out(step))
                        .ok_or(Error::Closed("confluent consumer"))
                }
                polled = &mut answer => polled.unwrap_or(Err(Error::Closed("confluent consumer"))),
            }
        })
    }

    fn pause(&mut self, partition: &TopicPartition) {
        let _ = self.send(Command::Pause(partition.clone()));
    }

    fn resume(&mut self, partition: &TopicPartition) {
        let _ = self.send(Command::Resume(partition.clone()));
    }

    fn seek(&mut self, partition: &TopicPartition, offset: i64) {
        let _ = self.send(Command::Seek(partition.clone(), offset));
    }

    fn commit<'a>(&'a mut self, offsets: &'a [(TopicPartition, i64)]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if offsets.is_empty() {
                return Ok(());
            }
            let (reply, answer) = oneshot::channel();
            self.send(Command::Commit(offsets.to_vec(), reply))?;
            answer
                .await
                .unwrap_or(Err(Error::Closed("confluent consumer")))
        })
    }

    fn leave(mut self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        let (reply, answer) = oneshot::channel();
        let sent = self.send(Command::Leave(reply));
        // Without a sender and a receiver, a revocation the close runs returns at once.
        self.commands = None;
        let driver = self.driver.take();
        drop(self);
        Box::pin(async move {
            sent?;
            let result = answer.await.unwrap_or(Ok(()));
            if let Some(driver) = driver {
                let _ = driver.await;
            }
            result
        })
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        let mut owned: Vec<TopicPartition> =
            self.handle.assignment().iter().map(from_kafka).collect();
        owned.sort();
        owned
    }

    fn member_id(&self) -> String {
        self.handle.group_metadata().member_id().to_owned()
    }

    fn progress(&self) -> Vec<(TopicPartition, PartitionProgress)> {
        lock(&self.shared.progress).clone()
    }
}

/// The driver task: owns the consumer and serves commands until the member leaves or is
/// dropped, then closes it (leaving the group).
async fn drive(mut consumer: ByteConsumer, shared: Arc<Shared>) {
    let mut progress_at: Option<std::time::Instant> = None;
    loop {
        let deferred = lock(&shared.deferred).pop_front();
        let command = match deferred {
            Some(command) => Some(command),
            None => shared.commands.lock().await.recv().await,
        };
        let Some(command) = command else {
            let _ = close(&mut consumer, &shared).await;
            return;
        };
        match command {
            Command::Poll(wait, reply) => {
                let polled = match consumer.poll(wait).await {
                    Ok(records) => {
                        if progress_at.is_none_or(|at| at.elapsed() >= PROGRESS_EVERY) {
                            progress_at = Some(std::time::Instant::now());
                            *lock(&shared.progress) = read_progress(&mut consumer).await;
                        }
                        Ok(to_polled(records))
                    }
                    Err(e) => match unreadable_partition(&mut consumer, &e) {
                        Some(tp) => Ok(stall(&mut consumer, &shared.group, tp, &e).await),
                        None => Err(poll_error(&shared.group, &e)),
                    },
                };
                let _ = reply.send(polled);
            }
            // Only meaningful inside a revocation; a late one is harmless.
            Command::RevocationDone => {}
            Command::Commit(offsets, reply) => {
                let epoch = consumer.group_metadata().generation_id();
                let result = consumer
                    .commit_sync_with_offsets(commit_map(&offsets))
                    .await;
                let _ = reply.send(result.map_err(|e| commit_error(&shared.group, epoch, &e)));
            }
            Command::Pause(tp) => log_failure("pause", &tp, consumer.pause(&[to_kafka(&tp)]).await),
            Command::Resume(tp) => {
                log_failure("resume", &tp, consumer.resume(&[to_kafka(&tp)]).await)
            }
            Command::Seek(tp, offset) => log_failure(
                "seek",
                &tp,
                consumer.seek_with_offset(to_kafka(&tp), offset).await,
            ),
            Command::Leave(reply) => {
                let _ = reply.send(close(&mut consumer, &shared).await);
                return;
            }
        }
    }
}

async fn close(consumer: &mut ByteConsumer, shared: &Shared) -> Result<()> {
    let options = CloseOptions::with_operation(GroupMembershipOperation::LeaveGroup)
        .with_timeout(shared.close_timeout);
    consumer
        .close_with_options(options)
        .await
        .map_err(|e| failed(format!("leave group {}", shared.group), &e))
}

/// The rebalance listener the crate calls inside its poll.
struct Listener {
    shared: Arc<Shared>,
    handle: ConsumerHandle,
}

#[async_trait]
impl ConsumerRebalanceListener for Listener {
    async fn on_partitions_revoked(
        &self,
        partitions: &[KafkaPartition],
    ) -> std::result::Result<(), KafkaError> {
        self.give_up(partitions).await;
        Ok(())
    }

    async fn on_partitions_assigned(
        &self,
        partitions: &[KafkaPartition],
    ) -> std::result::Result<(), KafkaError> {
        if !partitions.is_empty() {
            let mut added: Vec<TopicPartition> = partitions.iter().map(from_kafka).collect();
            added.sort();
            let _ = self.shared.events.send(Polled::Assigned(added));
        }
        Ok(())
    }

    async fn on_partitions_lost(
        &self,
        partitions: &[KafkaPartition],
    ) -> std::result::Result<(), KafkaError> {
        // Already someone else's: the runner still stops its workers; their commits fail
        // fenced, and the new owner reads from the last commit.
        self.give_up(partitions).await;
        Ok(())
    }
}

impl Listener {
    /// Reports the revocation, then serves the member's commands through the handle until its
    /// next poll (the runner has drained and committed) or its leave.
    async fn give_up(&self, partitions: &[KafkaPartition]) {
        if partitions.is_empty() {
            return;
        }
        let mut revoked: Vec<TopicPartition> = partitions.iter().map(from_kafka).collect();
        revoked.sort();
        tracing::debug!(group = %self.shared.group, partitions = ?revoked, "revocation waits for the runner");
        if self.shared.events.send(Polled::Revoked(revoked)).is_err() {
            return;
        }
        loop {
            let command = self.shared.commands.lock().await.recv().await;
            match command {
                None | Some(Command::RevocationDone) => return,
                Some(command @ (Command::Leave(_) | Command::Poll(..))) => {
                    lock(&self.shared.deferred).push_back(command);
                    return;
                }
                Some(Command::Commit(offsets, reply)) => {
                    let epoch = self.handle.group_metadata().generation_id();
                    let result = self
                        .handle
                        .commit_sync_with_offsets(commit_map(&offsets))
                        .await;
                    let _ =
                        reply.send(result.map_err(|e| commit_error(&self.shared.group, epoch, &e)));
                }
                Some(Command::Pause(tp)) => {
                    log_failure("pause", &tp, self.handle.pause(&[to_kafka(&tp)]).await)
                }
                Some(Command::Resume(tp)) => {
                    log_failure("resume", &tp, self.handle.resume(&[to_kafka(&tp)]).await)
                }
                Some(Command::Seek(tp, offset)) => log_failure(
                    "seek",
                    &tp,
                    self.handle.seek_with_offset(to_kafka(&tp), offset).await,
                ),
            }
        }
    }
}

fn to_polled(records: ConsumerRecords<Vec<u8>, Vec<u8>>) -> Polled {
    if records.is_empty() {
        return Polled::Idle;
    }
    Polled::Records(
        records
            .into_iter()
            .map(|r| Record {
                topic: r.topic().to_owned(),
                partition: r.partition(),
                offset: r.offset(),
                key: r.key().cloned(),
                value: r.value().cloned().unwrap_or_default(),
                headers: r
                    .headers()
                    .iter()
                    .map(|h| Header {
                        key: h.key().to_owned(),
                        value: h.value().map(<[u8]>::to_vec),
                    })
                    .collect(),
            })
            .collect(),
    )
}

/// Each owned partition's position and high watermark (position + lag), from what the
/// crate's last fetches said; a partition the crate knows no lag of yet is left out.
async fn read_progress(consumer: &mut ByteConsumer) -> Vec<(TopicPartition, PartitionProgress)> {
    let mut progress = Vec::new();
    for tp in consumer.assignment() {
        // Bounded: a partition whose position is not known yet would have the crate look
        // for it (committed offsets, a reset) for up to its API timeout.
        let Ok(position) = consumer
            .position_with_timeout(&tp, Duration::from_millis(10))
            .await
        else {
            continue;
        };
        if let Ok(Some(lag)) = consumer.current_lag(&tp).await {
            progress.push((
                from_kafka(&tp),
                PartitionProgress::new(position, position + lag),
            ));
        }
    }
    progress
}

/// The owned partition a failed poll names, if it names one: what is at its position cannot
/// be read (a corrupt batch, a record the crate cannot parse). The crate, as the Java client,
/// says so only in the message ("... fetching the next record from orders-3. If needed,
/// please seek past the record ..."), and fails every poll on it until the partition is
/// sought past or paused.
fn unreadable_partition(consumer: &mut ByteConsumer, e: &KafkaError) -> Option<KafkaPartition> {
    let message = e.to_string();
    consumer
        .assignment()
        .into_iter()
        .find(|tp| message.contains(&format!("from {tp}.")))
}

/// Pauses `tp`, which cannot be read at its position, so that the other partitions go on
/// (the crate drops what it fetched for a paused partition); answers the stall for the
/// runner to show. It stays paused while the member keeps it (rebalances are incremental);
/// its next owner reads it again.
async fn stall(
    consumer: &mut ByteConsumer,
    group: &str,
    tp: KafkaPartition,
    e: &KafkaError,
) -> Polled {
    let offset = consumer
        .position_with_timeout(&tp, Duration::from_secs(1))
        .await
        .unwrap_or(-1);
    if let Err(error) = consumer.pause(std::slice::from_ref(&tp)).await {
        tracing::warn!(%group, partition = %tp, %error, "could not pause an unreadable partition");
    }
    // The message says where; its causes say why (the CRC that did not match).
    let mut reason = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(inner) = cause {
        reason = format!("{reason}: {inner}");
        cause = inner.source();
    }
    Polled::Stalled(vec![StalledPartition::new(from_kafka(&tp), offset, reason)])
}

/// A failed poll; a broker without KIP-848 groups gets a hint at the backend that fits it.
fn poll_error(group: &str, e: &KafkaError) -> Error {
    if e.is_unsupported_version_error() {
        return Error::transport(
            format!("poll group {group}"),
            format!(
                "{e} (the confluent backend's consumer needs Kafka 4.0+; for older brokers use \
                 the `kafka` backend, `[kafka] client = \"kafka\"`)"
            ),
            false,
        );
    }
    failed(format!("poll group {group}"), e)
}

fn commit_map(offsets: &[(TopicPartition, i64)]) -> HashMap<KafkaPartition, OffsetAndMetadata> {
    offsets
        .iter()
        .filter_map(|(tp, offset)| Some((to_kafka(tp), OffsetAndMetadata::new(*offset).ok()?)))
        .collect()
}

/// A refused commit: fenced when the broker says the member no longer owns the partitions.
fn commit_error(group: &str, epoch: i32, e: &KafkaError) -> Error {
    let fenced = e.is_consumer_commit_failed_error()
        || e.is_stale_member_epoch_error()
        || e.is_fenced_member_epoch_error()
        || e.is_unknown_member_id_error()
        || e.is_illegal_generation_error();
    if fenced {
        tracing::debug!(group, error = %e, "commit fenced");
        Error::Fenced {
            group: group.to_owned(),
            generation: epoch,
        }
    } else {
        failed(format!("commit offsets of group {group}"), e)
    }
}

fn log_failure(what: &str, tp: &TopicPartition, result: std::result::Result<(), KafkaError>) {
    if let Err(error) = result {
        tracing::debug!(partition = %tp, error = %error, "{what} failed");
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

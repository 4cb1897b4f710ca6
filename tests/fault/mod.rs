//! What the fault tests share: the backends they run on, the events and handlers, where
//! handled records are recorded, producing with a count of acknowledged and failed sends, and
//! the figures they report.
//!
//! Every test is written once as `fn test(backend: Backend)` and runs on each backend with
//! its broker (see [`crate::support`]): the `kafka` backend on Kafka 3.9 and, with the feature
//! `confluent`, the `confluent` backend on Kafka 4. The assertions are the same for both; only
//! timing parameters that KIP-848 groups bound differently are adapted, where they are set.

#![allow(dead_code, unreachable_pub)]

pub mod broker_crash;
pub mod cluster;
pub mod member;
pub mod member_crash;
pub mod poison;
pub mod rolling_restart;
pub mod sigterm;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use godev_kafka::consumer::ConsumerSettings;
use godev_kafka::transport::Transport;
use godev_kafka::transport::kafka::{KafkaOptions, KafkaTransport};
use godev_kafka::{Codec, Context, Error, Event, HandlerError, Producer, TopicMap, handler};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::support::Backend;

/// Every backend this build tests, each on its broker.
pub fn backends() -> Vec<Backend> {
    vec![
        Backend::Kafka,
        #[cfg(feature = "confluent")]
        Backend::Confluent,
        #[cfg(feature = "native")]
        Backend::Native3,
        #[cfg(feature = "native")]
        Backend::Native4,
    ]
}

/// The prefix of `backend`'s test names and figures, as [`on_each_backend!`] names its
/// modules: `kafka_3` (Kafka 3.9) or `confluent_4` (Kafka 4).
///
/// [`on_each_backend!`]: crate::on_each_backend
pub fn prefix(backend: Backend) -> &'static str {
    match backend {
        Backend::Kafka => "kafka_3",
        #[cfg(feature = "confluent")]
        Backend::Confluent => "confluent_4",
        #[cfg(feature = "native")]
        Backend::Native3 => "native_3",
        #[cfg(feature = "native")]
        Backend::Native4 => "native_4",
    }
}

/// The backend whose [`prefix`] is `name` (how a member process is told its backend).
pub fn backend_named(name: &str) -> Option<Backend> {
    backends().into_iter().find(|b| prefix(*b) == name)
}

/// A transport of `backend` for `brokers`, whose requests time out after `request_timeout`.
///
/// The `kafka` backend's producer retries a send until its delivery timeout (the default,
/// 120 s after the send), 200 ms apart at first and doubling up to 1 s, then reports
/// [`Error::Send`]. The `confluent` backend's idempotent producer retries until its delivery
/// timeout (`linger + 4 × request_timeout`), without duplicates.
pub async fn transport(
    backend: Backend,
    brokers: &str,
    client_id: &str,
    request_timeout: Duration,
) -> Arc<dyn Transport> {
    match backend {
        Backend::Kafka => {
            let mut options = KafkaOptions::new(brokers.split(','));
            options.client_id = client_id.into();
            options.linger = Duration::from_millis(5);
            options.request_timeout = request_timeout;
            options.retry_backoff = Duration::from_millis(200);
            Arc::new(
                KafkaTransport::connect(options)
                    .await
                    .unwrap_or_else(|e| panic!("connect to {brokers}: {e}")),
            )
        }
        #[cfg(feature = "confluent")]
        Backend::Confluent => {
            use godev_kafka::transport::confluent::{ConfluentOptions, ConfluentTransport};
            let mut options = ConfluentOptions::new(brokers.split(','));
            options.client_id = client_id.into();
            options.linger = Duration::from_millis(5);
            options.request_timeout = request_timeout;
            // The fault tests' short sessions (see `consumer_settings`) are KIP-848 group
            // configs, which a join writes only when asked.
            options.set_group_timeouts = true;
            Arc::new(
                ConfluentTransport::connect(options)
                    .await
                    .unwrap_or_else(|e| panic!("connect to {brokers}: {e}")),
            )
        }
        #[cfg(feature = "native")]
        Backend::Native3 | Backend::Native4 => {
            use godev_kafka::transport::native::{NativeOptions, NativeTransport};
            let mut options = NativeOptions::new(brokers.split(','));
            options.client_id = client_id.into();
            options.linger = Duration::from_millis(5);
            options.request_timeout = request_timeout;
            options.delivery_timeout = request_timeout * 4;
            Arc::new(
                NativeTransport::connect(options)
                    .await
                    .unwrap_or_else(|e| panic!("connect to {brokers}: {e}")),
            )
        }
    }
}

/// The logical topic of every fault-test event; each test maps it to a topic of its own.
pub const TOPIC: &str = "fault_ticks";

/// The good event: small JSON, keyed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(topic = "fault_ticks", name = "fault.tick", key = "key")]
pub struct Tick {
    pub id: u64,
    pub key: String,
}

impl Tick {
    /// Event `id`, keyed over 1000 keys.
    pub fn new(id: u64) -> Self {
        Self {
            id,
            key: format!("k{}", id % 1000),
        }
    }
}

/// A `fault.tick` whose payload does not decode into [`Tick`] (the id is a string).
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(topic = "fault_ticks", name = "fault.tick", key = "key")]
pub struct BadTick {
    pub id: String,
    pub key: String,
}

/// Its handler fails permanently.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(topic = "fault_ticks", name = "fault.permanent", key = "key")]
pub struct Doomed {
    pub id: u64,
    pub key: String,
}

/// Its handler panics.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(topic = "fault_ticks", name = "fault.panic", key = "key")]
pub struct Explosive {
    pub id: u64,
    pub key: String,
}

/// Its handler always fails with a retriable error.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(topic = "fault_ticks", name = "fault.flaky", key = "key")]
pub struct Flaky {
    pub id: u64,
    pub key: String,
}

/// No handler claims its tag.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(topic = "fault_ticks", name = "fault.unknown", key = "key")]
pub struct Stray {
    pub id: u64,
    pub key: String,
}

/// One handled record: where it was and which event it held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Handled {
    pub partition: i32,
    pub offset: i64,
    pub id: u64,
}

/// Records handled in this process, per real topic (member processes write a file instead).
static SINK: Mutex<BTreeMap<String, Vec<Handled>>> = Mutex::new(BTreeMap::new());
/// A member process's output file.
static OUT: OnceLock<Mutex<File>> = OnceLock::new();
/// How long `on_tick` takes per record, in milliseconds.
static DELAY_MS: AtomicU64 = AtomicU64::new(0);

/// What this process handled on `topic` so far.
pub fn handled(topic: &str) -> Vec<Handled> {
    SINK.lock().unwrap().get(topic).cloned().unwrap_or_default()
}

/// How many records this process handled on `topic` so far.
pub fn handled_count(topic: &str) -> usize {
    SINK.lock().unwrap().get(topic).map_or(0, Vec::len)
}

/// Makes this process a member that writes to `file` (see [`member`]).
pub fn write_to(file: File, delay_ms: u64) {
    DELAY_MS.store(delay_ms, Ordering::Relaxed);
    assert!(OUT.set(Mutex::new(file)).is_ok(), "output set twice");
}

/// Appends one line to the member's output file in a single write, so that a SIGKILL never
/// leaves half a line.
pub fn out_line(line: String) {
    if let Some(out) = OUT.get() {
        let mut file = out.lock().unwrap();
        file.write_all(format!("{line}\n").as_bytes())
            .expect("write the member output");
    }
}

#[handler]
pub async fn on_tick(tick: Tick, ctx: Context) -> Result<(), HandlerError> {
    let delay = DELAY_MS.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if OUT.get().is_some() {
        out_line(format!(
            "H {} {} {} {}",
            now_ms(),
            ctx.partition(),
            ctx.offset(),
            tick.id
        ));
    } else {
        SINK.lock()
            .unwrap()
            .entry(ctx.topic().to_owned())
            .or_default()
            .push(Handled {
                partition: ctx.partition(),
                offset: ctx.offset(),
                id: tick.id,
            });
    }
    Ok(())
}

#[handler]
pub async fn on_doomed(event: Doomed) -> Result<(), HandlerError> {
    Err(HandlerError::permanent(format!(
        "event {} can never succeed",
        event.id
    )))
}

#[handler]
pub async fn on_explosive(event: Explosive) -> Result<(), HandlerError> {
    panic!("poison event {} blew up", event.id)
}

#[handler]
pub async fn on_flaky(event: Flaky) -> Result<(), HandlerError> {
    Err(HandlerError::retriable(format!(
        "event {} failed again",
        event.id
    )))
}

/// Milliseconds since the Unix epoch: member processes and the test share the clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Consumer settings with short timeouts: quick rebalances, frequent commits.
///
/// The heartbeat interval differs by backend. A classic group (`kafka`) heartbeats every
/// 300 ms. A KIP-848 group (`confluent`) takes its session timeout and heartbeat interval
/// from broker-side group configs, which [`transport`] opts in to write on join
/// (`ConfluentOptions::set_group_timeouts`); the broker refuses a heartbeat interval below
/// `group.consumer.min.heartbeat.interval.ms` (500 ms with `dev/kafka`), and a refusal would
/// leave the group on the broker's defaults (45 s session, 5 s heartbeat). So it heartbeats
/// every 500 ms, with the same session timeout.
pub fn consumer_settings(backend: Backend, session: Duration) -> ConsumerSettings {
    let heartbeat = match backend {
        Backend::Kafka => Duration::from_millis(300),
        #[cfg(feature = "confluent")]
        Backend::Confluent => Duration::from_millis(500),
        #[cfg(feature = "native")]
        Backend::Native3 | Backend::Native4 => Duration::from_millis(300),
    };
    ConsumerSettings {
        session_timeout: session,
        heartbeat_interval: heartbeat,
        // At least `shutdown_timeout` + `ConsumerSettings::SHUTDOWN_MARGIN`.
        rebalance_timeout: Duration::from_secs(15),
        poll_wait: Duration::from_millis(100),
        commit_interval: Duration::from_millis(100),
        max_attempts: 3,
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
        shutdown_timeout: Duration::from_secs(10),
        ..ConsumerSettings::default()
    }
}

/// A producer of fault-test events on `topic`.
pub fn producer(transport: Arc<dyn Transport>, topic: &str) -> Producer {
    Producer::with_transport(
        transport,
        TopicMap::from_iter([(TOPIC, topic)]),
        Codec::CloudEvents,
        "fault-tests",
    )
}

/// What the producer was told about its sends.
#[derive(Debug, Default, Clone)]
pub struct Sent {
    /// Acknowledged events: id → (partition, offset).
    pub acked: BTreeMap<u64, (i32, i64)>,
    /// Events whose send returned [`Error::Send`].
    pub failed: BTreeSet<u64>,
}

impl Sent {
    fn absorb(&mut self, results: Vec<(u64, godev_kafka::Result<godev_kafka::Delivery>)>) {
        for (id, result) in results {
            match result {
                Ok(delivery) => {
                    self.acked.insert(id, (delivery.partition, delivery.offset));
                }
                Err(Error::Send { .. }) => {
                    self.failed.insert(id);
                }
                Err(other) => panic!("send of event {id} failed without Error::Send: {other}"),
            }
        }
    }
}

/// Sends the events `ids` concurrently; answers each send's result.
pub async fn send_all(
    producer: &Producer,
    ids: Range<u64>,
) -> Vec<(u64, godev_kafka::Result<godev_kafka::Delivery>)> {
    let mut sends = JoinSet::new();
    for id in ids {
        let producer = producer.clone();
        sends.spawn(async move { (id, producer.send(&Tick::new(id)).await) });
    }
    let mut results = Vec::new();
    while let Some(result) = sends.join_next().await {
        results.push(result.expect("send task"));
    }
    results
}

/// Counters a background producer shares with the test.
#[derive(Debug, Default)]
pub struct Progress {
    pub acked: AtomicU64,
    pub failed: AtomicU64,
    pub stop: AtomicBool,
}

/// Sends events `0..total` in windows of `window`, one window per `period` at most, until
/// all are sent or `progress.stop` is set. A window with a failed send is followed by a
/// pause of `backoff`, as an application would back off. Answers what was acknowledged.
pub async fn produce_stream(
    producer: Producer,
    total: u64,
    window: u64,
    period: Duration,
    backoff: Duration,
    progress: Arc<Progress>,
) -> Sent {
    let mut sent = Sent::default();
    let mut next = 0;
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while next < total && !progress.stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        let end = (next + window).min(total);
        let results = send_all(&producer, next..end).await;
        let failed = results.iter().filter(|(_, r)| r.is_err()).count() as u64;
        progress
            .acked
            .fetch_add(end - next - failed, Ordering::Relaxed);
        progress.failed.fetch_add(failed, Ordering::Relaxed);
        sent.absorb(results);
        next = end;
        if failed > 0 {
            tokio::time::sleep(backoff).await;
        }
    }
    sent
}

/// Duplicates among handled records: (deliveries beyond the first per event, the events
/// handled more than once).
pub fn duplicates(handled: &[Handled]) -> (usize, BTreeMap<u64, usize>) {
    let mut per_id: BTreeMap<u64, usize> = BTreeMap::new();
    for h in handled {
        *per_id.entry(h.id).or_default() += 1;
    }
    let extra = per_id.values().map(|n| n - 1).sum();
    per_id.retain(|_, n| *n > 1);
    (extra, per_id)
}

/// Waits until the group of `running` committed `topic` up to its end offsets and this
/// process handled at least as many records as the log holds; panics naming `who` if the
/// consumer stops or 180 s pass. Answers how many records the log holds.
pub async fn consume_to_end(
    who: &str,
    brokers: &str,
    group: &str,
    topic: &str,
    running: &godev_kafka::consumer::RunningConsumer,
) -> i64 {
    let ends = godev_kafka::testing::end_offsets(brokers, topic)
        .await
        .expect("end offsets");
    let records: i64 = ends.values().sum();
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let committed = godev_kafka::testing::committed_offsets(brokers, group, topic)
            .await
            .unwrap_or_default();
        if committed == ends && handled_count(topic) as i64 >= records {
            return records;
        }
        assert!(
            !running.has_stopped(),
            "{who}: the consumer stopped: {:?}",
            running.status()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "{who}: the group did not consume the log: committed {committed:?}, ends {ends:?}, handled {}",
            handled_count(topic)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A fault test's log checked against what its producer was told (see [`check_log`]).
#[derive(Debug)]
pub struct LogCheck {
    /// Acknowledged events not in the log (0: asserted).
    pub lost: usize,
    /// Acknowledged events not at their acknowledged offset (0: asserted).
    pub misplaced: usize,
    /// Deliveries of records handled more than once.
    pub redelivered: usize,
    /// The (partition, offset) of records handled more than once.
    pub again: Vec<(i32, i64)>,
    /// Events written at more than one offset (a produce retry after a lost answer).
    pub written_twice: BTreeMap<u64, Vec<(i32, i64)>>,
    /// Events whose send failed that are in the log all the same.
    pub unacked_arrived: usize,
}

/// Checks the log of `topic` (`records` records, read through `handled`) against `sent`:
/// every offset handled, and always as the same event; every acknowledged event at its
/// acknowledged offset; none lost; and, for an idempotent producer (`native`, `confluent`),
/// none written twice. Panics naming `who`.
pub fn check_log(
    who: &str,
    backend: Backend,
    topic: &str,
    handled: &[Handled],
    sent: &Sent,
    records: i64,
) -> LogCheck {
    let mut at: BTreeMap<(i32, i64), u64> = BTreeMap::new();
    for h in handled {
        if let Some(other) = at.insert((h.partition, h.offset), h.id) {
            assert_eq!(
                other, h.id,
                "{who}: {topic}[{}]@{} handled as two events",
                h.partition, h.offset
            );
        }
    }
    assert_eq!(
        at.len() as i64,
        records,
        "{who}: every offset of the log was handled"
    );
    // Nothing reported as sent that the broker does not hold where the producer was told.
    let misplaced: Vec<_> = sent
        .acked
        .iter()
        .filter(|(id, pos)| at.get(pos) != Some(id))
        .map(|(id, pos)| (*id, *pos, at.get(pos).copied()))
        .collect();
    assert!(
        misplaced.is_empty(),
        "{who}: {} acknowledged events are not at their acknowledged offset (id, (partition, offset), found): {}",
        misplaced.len(),
        sample(&misplaced, 10)
    );
    let in_log: BTreeSet<u64> = at.values().copied().collect();
    let lost: Vec<u64> = sent
        .acked
        .keys()
        .filter(|id| !in_log.contains(id))
        .copied()
        .collect();
    assert!(
        lost.is_empty(),
        "{who}: lost acked events: {}",
        sample(&lost, 10)
    );
    let mut times: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    for h in handled {
        *times.entry((h.partition, h.offset)).or_default() += 1;
    }
    let again: Vec<(i32, i64)> = times
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(pos, _)| pos)
        .collect();
    let mut writes: BTreeMap<u64, Vec<(i32, i64)>> = BTreeMap::new();
    for (pos, id) in &at {
        writes.entry(*id).or_default().push(*pos);
    }
    let written_twice: BTreeMap<u64, Vec<(i32, i64)>> =
        writes.into_iter().filter(|(_, ps)| ps.len() > 1).collect();
    // The native and confluent producers are idempotent (acks all): their retries through
    // outages must not write an event twice. The `kafka` crate's producer is not, and may.
    let idempotent = !matches!(backend, Backend::Kafka);
    assert!(
        !idempotent || written_twice.is_empty(),
        "{who}: the idempotent producer wrote {} events more than once: {}",
        written_twice.len(),
        sample(&written_twice, 20)
    );
    LogCheck {
        lost: lost.len(),
        misplaced: misplaced.len(),
        redelivered: handled.len() - at.len(),
        again,
        written_twice,
        unacked_arrived: sent.failed.iter().filter(|id| in_log.contains(id)).count(),
    }
}

/// Prints one figure line of a test on `backend` (collected for the README's Reliability
/// table): `FIGURES kafka_3::<test>: key=value ...`.
pub fn figure(backend: Backend, test: &str, figures: &[(&str, String)]) {
    let list: Vec<String> = figures.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("FIGURES {}::{test}: {}", prefix(backend), list.join(" "));
}

/// Up to `n` items of a set, for messages.
pub fn sample<T: std::fmt::Debug>(items: impl IntoIterator<Item = T>, n: usize) -> String {
    let items: Vec<T> = items.into_iter().take(n + 1).collect();
    if items.len() > n {
        format!("{:?} ...", &items[..n])
    } else {
        format!("{items:?}")
    }
}

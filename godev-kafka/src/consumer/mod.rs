//! Grouped consumers: handlers registered per group, one ordered worker per partition.
//!
//! [`Consumer::builder`] collects `#[handler]`s. Each handler belongs to the consumer's
//! group unless its attribute names another (`#[handler(group = "mailer")]`); every group
//! becomes one member of that Kafka consumer group, subscribed to the topics of its handlers.
//!
//! # Guarantees
//!
//! - **At least once.** An offset is committed only after its record's handler returned `Ok`,
//!   or after the record was written to the dead-letter topic. A crash re-delivers what was
//!   not committed.
//! - **Order per partition.** Records of a partition are handled one after another; a retry
//!   holds its partition back while the others go on.
//! - **Bounded memory.** A partition whose queue is full stops being fetched until it drains.
//! - **Graceful stop.** On shutdown, and when a rebalance takes partitions away, workers
//!   finish their in-flight record (within `shutdown_timeout`, which must end before the
//!   rebalance deadline: see [`ConsumerSettings::SHUTDOWN_MARGIN`]), the handled prefix is
//!   committed, and only then are the partitions given up. Dropping the [`RunningConsumer`]
//!   stops it the same way, in the background.
//!
//! # Failure modes
//!
//! Records that cannot be handled never stop the consumer: malformed values, undecodable
//! payloads, permanent handler errors, exhausted retries, panics and oversized values go to
//! the dead-letter topic (`<topic>.dlq`) as a [`DeadLetter`]. Unknown tags follow the
//! [`UnknownTagPolicy`].

mod dead_letter;
mod replay;
mod runner;
mod settings;
mod worker;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use dead_letter::{DeadLetter, DeadLetterHeader, DeadLetterReason};
pub use replay::{ReplayReport, SkippedLetter, replay_dead_letters};
pub use settings::ConsumerSettings;

use crate::dispatch::{Handler, Route, Router, States, UnknownTagPolicy};
use crate::transport::{StalledPartition, TopicPartition, Transport};
use crate::{Codec, Config, Error, Result, TopicMap};
use worker::GroupEnv;

/// Builds a [`Consumer`].
///
/// # Examples
///
/// ```
/// use godev_kafka::{handler, Consumer, Event, HandlerError, TopicMap};
/// use godev_kafka::transport::memory::MemoryTransport;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize, Event)]
/// # #[event(topic = "user_events", name = "user.created")]
/// # struct UserCreated { user_id: i64 }
///
/// #[handler]
/// async fn on_created(_event: UserCreated) -> Result<(), HandlerError> { Ok(()) }
///
/// let consumer = Consumer::builder(MemoryTransport::new(3), "my-group")
///     .topics(TopicMap::from_iter([("user_events", "user-events")]))
///     .handler::<on_created>()
///     .build()
///     .unwrap();
/// assert_eq!(consumer.groups(), vec!["my-group"]);
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `.build()`"]
pub struct ConsumerBuilder {
    transport: Arc<dyn Transport>,
    group: String,
    topics: TopicMap,
    codec: Codec,
    unknown_tag: UnknownTagPolicy,
    settings: ConsumerSettings,
    routes: Vec<Route>,
    states: States,
}

impl std::fmt::Debug for dyn Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Transport({})", self.name())
    }
}

impl ConsumerBuilder {
    /// Takes the group, topic table, codec, unknown-tag policy and settings from `config`.
    pub fn config(self, config: &Config) -> Self {
        self.group(config.group_id())
            .topics(config.topic_map())
            .codec(config.codec())
            .unknown_tag(config.unknown_tag())
            .settings(config.consumer_settings())
    }

    /// The group of handlers that do not name one in their attribute.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// Resolves logical topics through `topics`.
    pub fn topics(mut self, topics: TopicMap) -> Self {
        self.topics = topics;
        self
    }

    /// Reads record values with `codec` (CloudEvents by default).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// What to do with records whose tag no handler claims (skip by default).
    pub fn unknown_tag(mut self, policy: UnknownTagPolicy) -> Self {
        self.unknown_tag = policy;
        self
    }

    /// Timeouts, retries, queues and commits.
    pub fn settings(mut self, settings: ConsumerSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Gives handlers a shared value of type `T`, found with [`Context::state`](crate::Context::state)
    /// (one value per type; a second call for the same type replaces the first).
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.states.insert(value);
        self
    }

    /// Registers the `#[handler]` function `H`.
    pub fn handler<H: Handler>(mut self) -> Self {
        self.routes.push(Route::of::<H>());
        self
    }

    /// Groups the handlers and checks them and the settings.
    ///
    /// # Errors
    ///
    /// [`Error::NoHandlers`] without handlers; [`Error::DuplicateHandler`] when two handlers
    /// take the same tag on the same topic in the same group; [`Error::Config`] when a
    /// handler's group is empty (the builder's group, for handlers that name none: there is
    /// no default group, so that two services cannot end up splitting one), or when
    /// `shutdown_timeout` does not end [`ConsumerSettings::SHUTDOWN_MARGIN`] before
    /// `rebalance_timeout`.
    pub fn build(self) -> Result<Consumer> {
        if self.routes.is_empty() {
            return Err(Error::NoHandlers);
        }
        self.settings.check()?;
        let mut routers: BTreeMap<String, Router> = BTreeMap::new();
        for route in &self.routes {
            let group = route.options().group.unwrap_or(&self.group);
            check_group(group)?;
            let topic = self.topics.resolve(route.logical_topic());
            routers
                .entry(group.to_owned())
                .or_insert_with(|| Router::new(group))
                .add(topic, *route)?;
        }
        Ok(Consumer {
            transport: self.transport,
            codec: self.codec,
            unknown_tag: self.unknown_tag,
            settings: self.settings,
            routers: routers.into_values().collect(),
            states: self.states,
        })
    }
}

/// A consumer group id must say which service's group it is: an empty one is refused.
fn check_group(group: &str) -> Result<()> {
    if group.trim().is_empty() {
        return Err(Error::Config {
            key: "group".to_owned(),
            message: "must not be empty; give the consumer its group id in \
                      `Consumer::builder(transport, \"my-service\")` or `.group(\"my-service\")`"
                .to_owned(),
        });
    }
    Ok(())
}

/// Handlers grouped by consumer group, ready to run.
#[derive(Debug, Clone)]
pub struct Consumer {
    transport: Arc<dyn Transport>,
    codec: Codec,
    unknown_tag: UnknownTagPolicy,
    settings: ConsumerSettings,
    routers: Vec<Router>,
    states: States,
}

impl Consumer {
    /// A builder for a consumer whose handlers join `group` unless they name another.
    pub fn builder(transport: impl Transport, group: impl Into<String>) -> ConsumerBuilder {
        Self::builder_shared(Arc::new(transport), group)
    }

    /// Like [`Consumer::builder`], on a transport shared with a producer.
    pub fn builder_shared(
        transport: Arc<dyn Transport>,
        group: impl Into<String>,
    ) -> ConsumerBuilder {
        ConsumerBuilder {
            transport,
            group: group.into(),
            topics: TopicMap::new(),
            codec: Codec::default(),
            unknown_tag: UnknownTagPolicy::default(),
            settings: ConsumerSettings::default(),
            routes: Vec::new(),
            states: States::default(),
        }
    }

    /// The consumer groups, sorted.
    pub fn groups(&self) -> Vec<&str> {
        self.routers.iter().map(Router::group).collect()
    }

    /// Each group with the real topics it subscribes to.
    pub fn group_topics(&self) -> Vec<(String, Vec<String>)> {
        self.routers
            .iter()
            .map(|r| (r.group().to_owned(), r.topics()))
            .collect()
    }

    /// Starts one group member per group, each on its own task.
    ///
    /// Must be called within a Tokio runtime. The consumer runs as long as the returned
    /// [`RunningConsumer`] lives: dropping it stops every group (see its docs).
    #[must_use = "the consumer stops when the `RunningConsumer` is dropped; keep it, and \
                  call `.shutdown().await` to stop"]
    pub fn start(&self) -> RunningConsumer {
        let (stop, stopped) = watch::channel(false);
        let groups = self
            .routers
            .iter()
            .map(|router| {
                let status = Arc::new(Mutex::new(GroupStatus {
                    group: router.group().to_owned(),
                    topics: router.topics(),
                    member_id: None,
                    assigned: Vec::new(),
                    stalled: Vec::new(),
                }));
                let env = Arc::new(GroupEnv {
                    group: router.group().to_owned(),
                    router: router.clone(),
                    codec: self.codec,
                    unknown_tag: self.unknown_tag,
                    settings: self.settings.clone(),
                    transport: self.transport.clone(),
                    states: self.states.clone(),
                });
                let task = tokio::spawn(runner::run(env, status.clone(), stopped.clone()));
                (status, task)
            })
            .collect();
        RunningConsumer { stop, groups }
    }
}

/// What one group of a running consumer is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupStatus {
    /// The consumer group.
    pub group: String,
    /// The real topics subscribed to.
    pub topics: Vec<String>,
    /// The member id, once joined.
    pub member_id: Option<String>,
    /// The partitions currently assigned, sorted.
    pub assigned: Vec<TopicPartition>,
    /// Assigned partitions the member stopped reading, and why (see
    /// [`Polled::Stalled`](crate::transport::Polled::Stalled)); the others are handled.
    pub stalled: Vec<StalledPartition>,
}

/// A running group: its status, shared with its task, and the task.
type GroupTask = (Arc<Mutex<GroupStatus>>, JoinHandle<Result<()>>);

/// A started consumer: status, and graceful shutdown.
///
/// Dropping it stops the consumer as [`shutdown`](Self::shutdown) does (stop fetching, let
/// in-flight handlers finish within `shutdown_timeout`, commit, leave the groups), but in
/// the background: nobody awaits the groups or sees their errors, and a runtime that ends
/// first cuts the drain short. Call `shutdown` to wait for it.
#[derive(Debug)]
pub struct RunningConsumer {
    stop: watch::Sender<bool>,
    groups: Vec<GroupTask>,
}

impl RunningConsumer {
    /// The status of every group.
    pub fn status(&self) -> Vec<GroupStatus> {
        self.groups
            .iter()
            .map(|(status, _)| status.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect()
    }

    /// Whether any group stopped on its own (an error, or the unknown-tag policy `fail`).
    pub fn has_stopped(&self) -> bool {
        self.groups.iter().any(|(_, task)| task.is_finished())
    }

    /// Stops fetching, lets in-flight handlers finish (within `shutdown_timeout`), commits
    /// the handled offsets and leaves the groups.
    ///
    /// # Errors
    ///
    /// The first error a group stopped with.
    pub async fn shutdown(mut self) -> Result<()> {
        self.stop.send_replace(true);
        let mut first_error = None;
        for (_, task) in std::mem::take(&mut self.groups) {
            let result = task
                .await
                .unwrap_or_else(|join| Err(Error::transport("consumer task", join, false)));
            if let Err(error) = result {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for RunningConsumer {
    /// Tells every group to stop; their tasks drain, commit and leave on their own.
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::HandlerError;
    use crate::transport::memory::MemoryTransport;
    use crate::transport::{BoxFuture, GroupMember, GroupOptions, Polled};

    #[derive(Debug, Serialize, Deserialize, godev_kafka_derive::Event)]
    #[event(crate = "crate", topic = "pings", name = "ping")]
    struct Ping {
        n: u64,
    }

    #[godev_kafka_derive::handler(crate = "crate")]
    async fn on_ping(_ping: Ping) -> Result<(), HandlerError> {
        Ok(())
    }

    #[godev_kafka_derive::handler(crate = "crate", group = "pingers")]
    async fn on_ping_in_its_group(_ping: Ping) -> Result<(), HandlerError> {
        Ok(())
    }

    fn fast_settings() -> ConsumerSettings {
        ConsumerSettings {
            poll_wait: Duration::from_millis(10),
            commit_interval: Duration::from_millis(10),
            ..ConsumerSettings::default()
        }
    }

    /// Polls `condition` every 5 ms, failing after 10 s: far longer than the memory
    /// transport takes to rebalance (milliseconds).
    async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting until {what}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn owned(running: &RunningConsumer) -> usize {
        running.status()[0].assigned.len()
    }

    /// Issue #15: dropping a `RunningConsumer` left its group task running, a member that
    /// kept its partitions with nobody able to stop it. Now the drop stops it: it leaves the
    /// group, and the member that stays gets its partitions.
    #[tokio::test]
    async fn dropping_a_running_consumer_stops_it() {
        let transport = MemoryTransport::new(2);
        transport.create_topic("pings", 2);
        let build = || {
            Consumer::builder(transport.clone(), "droppers")
                .settings(fast_settings())
                .handler::<on_ping>()
                .build()
                .unwrap()
        };
        let stays = build().start();
        let dropped = build().start();
        wait_until("each member owns one partition", || {
            owned(&stays) == 1 && owned(&dropped) == 1
        })
        .await;
        drop(dropped);
        // The member that stays can only get both partitions once the dropped one left.
        wait_until("the member that stays owns both partitions", || {
            owned(&stays) == 2
        })
        .await;
        stays.shutdown().await.unwrap();
    }

    static COUNTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    #[godev_kafka_derive::handler(crate = "crate")]
    async fn count_ping(_ping: Ping) -> Result<(), HandlerError> {
        COUNTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// A memory transport whose members' commits never answer while `hang` is set: a group
    /// coordinator that hangs.
    #[derive(Debug, Clone)]
    struct HangingCommits {
        inner: MemoryTransport,
        hang: Arc<std::sync::atomic::AtomicBool>,
        /// Commits that got no answer.
        hung: Arc<std::sync::atomic::AtomicUsize>,
    }

    struct HangingMember {
        inner: Box<dyn GroupMember>,
        hang: Arc<std::sync::atomic::AtomicBool>,
        hung: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl GroupMember for HangingMember {
        fn poll(&mut self, wait: Duration) -> BoxFuture<'_, Result<Polled>> {
            self.inner.poll(wait)
        }
        fn pause(&mut self, partition: &TopicPartition) {
            self.inner.pause(partition)
        }
        fn resume(&mut self, partition: &TopicPartition) {
            self.inner.resume(partition)
        }
        fn seek(&mut self, partition: &TopicPartition, offset: i64) {
            self.inner.seek(partition, offset)
        }
        fn commit<'a>(
            &'a mut self,
            offsets: &'a [(TopicPartition, i64)],
        ) -> BoxFuture<'a, Result<()>> {
            if self.hang.load(std::sync::atomic::Ordering::SeqCst) {
                self.hung.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                return Box::pin(std::future::pending());
            }
            self.inner.commit(offsets)
        }
        fn leave(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
            self.inner.leave()
        }
        fn assignment(&self) -> Vec<TopicPartition> {
            self.inner.assignment()
        }
        fn member_id(&self) -> String {
            self.inner.member_id()
        }
    }

    impl Transport for HangingCommits {
        fn partition_count<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<i32>> {
            self.inner.partition_count(topic)
        }
        fn end_offsets<'a>(
            &'a self,
            topic: &'a str,
        ) -> BoxFuture<'a, Result<std::collections::BTreeMap<i32, i64>>> {
            self.inner.end_offsets(topic)
        }
        fn create_topic<'a>(
            &'a self,
            topic: &'a str,
            partitions: i32,
        ) -> BoxFuture<'a, Result<()>> {
            Transport::create_topic(&self.inner, topic, partitions)
        }
        fn produce(
            &self,
            record: crate::transport::OutgoingRecord,
        ) -> BoxFuture<'_, std::result::Result<i64, crate::transport::Unsent>> {
            self.inner.produce(record)
        }
        fn join(&self, options: GroupOptions) -> BoxFuture<'_, Result<Box<dyn GroupMember>>> {
            Box::pin(async move {
                let inner = self.inner.join(options).await?;
                Ok(Box::new(HangingMember {
                    inner,
                    hang: self.hang.clone(),
                    hung: self.hung.clone(),
                }) as Box<dyn GroupMember>)
            })
        }
        fn name(&self) -> &'static str {
            "hanging-commits"
        }
        fn brokers(&self) -> Vec<String> {
            self.inner.brokers()
        }
    }

    /// Issue #15: with its coordinator hung (a broker SIGSTOPped), a member's commit got no
    /// answer and the group's loop waited on it: nothing more was fetched or handled. Now a
    /// periodic commit holds the loop at most `PERIODIC_COMMIT_WAIT`; records keep coming,
    /// and once the coordinator answers again, the commit takes every handled offset.
    #[tokio::test]
    async fn a_hung_commit_does_not_stop_the_records() {
        use std::sync::atomic::Ordering;
        let memory = MemoryTransport::new(1);
        memory.create_topic("pings", 1);
        let transport = HangingCommits {
            inner: memory.clone(),
            hang: Arc::default(),
            hung: Arc::default(),
        };
        let producer = crate::Producer::new(memory.clone(), TopicMap::default());
        let running = Consumer::builder(transport.clone(), "hung-commits")
            .settings(fast_settings())
            .handler::<count_ping>()
            .build()
            .unwrap()
            .start();
        let send = |pings: std::ops::Range<u64>| {
            let producer = producer.clone();
            async move {
                for n in pings {
                    producer.send(&Ping { n }).await.unwrap();
                }
            }
        };
        let handled = || COUNTED.load(Ordering::SeqCst);
        send(0..10).await;
        wait_until("10 pings handled and committed", || {
            handled() == 10 && memory.committed("hung-commits", "pings", 0) == Some(10)
        })
        .await;
        transport.hang.store(true, Ordering::SeqCst);
        send(10..11).await;
        wait_until("the commit of ping 10 hangs", || {
            handled() == 11 && transport.hung.load(Ordering::SeqCst) == 1
        })
        .await;
        // Sent while the loop waits on the hung commit: polled once it gives up on it, after
        // PERIODIC_COMMIT_WAIT (3 s), well inside wait_until's 10 s. Before, never.
        send(11..21).await;
        wait_until("10 more pings handled while the commit hangs", || {
            handled() == 21
        })
        .await;
        assert_eq!(memory.committed("hung-commits", "pings", 0), Some(10));
        transport.hang.store(false, Ordering::SeqCst);
        running.shutdown().await.unwrap();
        assert_eq!(
            memory.committed("hung-commits", "pings", 0),
            Some(21),
            "the commit after the hang took every handled offset"
        );
    }

    /// Issue #15: a consumer built in code with an empty group would join a group nobody
    /// named; the builder refuses it for every handler that uses the builder's group.
    #[test]
    fn a_consumer_builder_refuses_an_empty_group() {
        for blank in ["", "  "] {
            let error = Consumer::builder(MemoryTransport::new(1), blank)
                .handler::<on_ping>()
                .build()
                .unwrap_err();
            assert_eq!(
                error.to_string(),
                "config key `group`: must not be empty; give the consumer its group id in \
                 `Consumer::builder(transport, \"my-service\")` or `.group(\"my-service\")`"
            );
        }
        // Handlers that all name their own group do not use the builder's.
        let consumer = Consumer::builder(MemoryTransport::new(1), "")
            .handler::<on_ping_in_its_group>()
            .build()
            .unwrap();
        assert_eq!(consumer.groups(), vec!["pingers"]);
    }

    /// Issue #15: settings given in code are held to the rule the config file is held to:
    /// the drain of `shutdown_timeout` ends `SHUTDOWN_MARGIN` before `rebalance_timeout`.
    #[test]
    fn a_consumer_builder_refuses_a_shutdown_timeout_not_below_the_rebalance_timeout() {
        let build = |shutdown_timeout, rebalance_timeout| {
            Consumer::builder(MemoryTransport::new(1), "g")
                .settings(ConsumerSettings {
                    shutdown_timeout,
                    rebalance_timeout,
                    ..ConsumerSettings::default()
                })
                .handler::<on_ping>()
                .build()
        };
        let secs = Duration::from_secs;
        let error = build(secs(30), secs(30)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "config key `ConsumerSettings::shutdown_timeout`: must be at most `rebalance_timeout` \
             (30s) minus 5s, found 30s: the drain must end before the rebalance deadline evicts \
             the member; lower it, or raise `rebalance_timeout` to at least 35s"
        );
        assert!(build(Duration::from_millis(15_001), secs(20)).is_err());
        assert!(build(secs(15), secs(20)).is_ok(), "the margin exactly");
        let defaults = Consumer::builder(MemoryTransport::new(1), "g")
            .handler::<on_ping>()
            .build();
        assert!(defaults.is_ok(), "the defaults fit: {defaults:?}");
    }
}

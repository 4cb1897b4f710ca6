//! The manager: one producer and the consumers of a service, started, switched and stopped
//! together.
//!
//! It is the Go kit's `kafka.Manager` without its defects: switches never wait on a running
//! consumer (status and the producer switch take no lock that a consumer holds), disabling
//! consumers stops the running ones gracefully (in-flight handlers finish, offsets are
//! committed, the groups are left) and enabling starts them again where they committed,
//! and consumers are kept per group, not per topic.
//!
//! It is also where the config meets the transports: neither knows the other, and the manager
//! maps one to the other ([`Manager::kafka_options`], [`Manager::native_options`],
//! [`Manager::confluent_options`], [`Manager::auto_client`]; in `options.rs`).

mod options;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::{Client, Config};
use crate::consumer::{ConsumerBuilder, GroupStatus};
use crate::transport::Transport;
use crate::transport::memory::MemoryTransport;
use crate::{Consumer, Error, Producer, Result, RunningConsumer};

/// Partitions of the topics the in-memory backend creates on first use.
const MEMORY_PARTITIONS: i32 = 3;

/// What [`Manager::status`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// Whether sends are accepted.
    pub producer_enabled: bool,
    /// Whether consumers run (once started).
    pub consumer_enabled: bool,
    /// How many consumer groups are registered.
    pub consumer_count: usize,
    /// The bootstrap brokers.
    pub brokers: Vec<String>,
    /// The backend (`kafka`, `memory`, ...).
    pub backend: &'static str,
    /// Per consumer group: topics, member id and assigned partitions (empty while stopped).
    pub consumers: Vec<GroupStatus>,
}

/// Holds a service's producer and consumers.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use godev_kafka::{handler, Codec, Consumer, Event, HandlerError, Manager, Producer, TopicMap};
/// use godev_kafka::transport::memory::MemoryTransport;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize, Event)]
/// # #[event(topic = "user_events", name = "user.created")]
/// # struct UserCreated { user_id: i64 }
///
/// #[handler]
/// async fn on_created(_event: UserCreated) -> Result<(), HandlerError> { Ok(()) }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let transport = Arc::new(MemoryTransport::new(3));
/// let producer = Producer::with_transport(transport.clone(), TopicMap::new(), Codec::CloudEvents, "svc");
/// let manager = Manager::new(transport.clone(), producer, "my-group");
/// let consumer = manager.consumer_builder().handler::<on_created>().build().unwrap();
/// manager.add_consumer(consumer);
/// manager.start_all();
/// assert_eq!(manager.status().consumer_count, 1);
/// manager.disable_consumers().await.unwrap();
/// assert!(!manager.status().consumer_enabled);
/// manager.close().await.unwrap();
/// # });
/// ```
#[derive(Debug)]
pub struct Manager {
    transport: Arc<dyn Transport>,
    producer: Producer,
    /// What [`Manager::consumer_builder`] hands out: transport, group and settings set.
    consumers_from: ConsumerBuilder,
    consumer_enabled: AtomicBool,
    /// Whether the manager made the transport ([`Manager::connect`]) and so closes it.
    owns_transport: bool,
    /// Serializes start, enable, disable and close; never held by status or sends.
    transition: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    started: bool,
    consumers: Vec<Consumer>,
    running: Vec<RunningConsumer>,
}

impl Manager {
    /// A manager over `transport` with `producer`; consumers enabled, none registered.
    /// Consumers built with [`Manager::consumer_builder`] read the producer's codec through
    /// its topic table and join `group` unless given another with [`ConsumerBuilder::group`]
    /// (there is no default group: two services that shared one would split its partitions).
    pub fn new(transport: Arc<dyn Transport>, producer: Producer, group: &str) -> Self {
        let consumers_from = Consumer::builder_shared(transport.clone(), group)
            .topics(producer.topics().clone())
            .codec(producer.codec());
        Self::assemble(transport, producer, consumers_from)
    }

    /// The manager `config` describes: its backend (for `auto`, the one that fits the broker;
    /// for `kafka`, a broker answered and is not Kafka 4), a producer writing its codec
    /// through its topic table, consumers in its group with its settings, and its producer
    /// and consumer switches.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let manager = godev_kafka::Manager::connect(&godev_kafka::Config::memory()).await.unwrap();
    /// assert_eq!(manager.status().backend, "memory");
    /// # });
    /// ```
    ///
    /// # Errors
    ///
    /// No broker answered, the broker speaks no protocol the backend knows, the config names
    /// a backend this build lacks (a cargo feature that is off), or, with `auto`, the backend
    /// it picked cannot honour a key the config sets ([`Config::check_client`]).
    pub async fn connect(config: &Config) -> Result<Self> {
        let transport = connect_transport(config).await?;
        let producer = Producer::with_transport(
            transport.clone(),
            config.topic_map(),
            config.codec(),
            config.source(),
        );
        producer.set_enabled(config.producer_enabled());
        let consumers_from =
            Consumer::builder_shared(transport.clone(), config.group_id()).config(config);
        let mut manager = Self::assemble(transport, producer, consumers_from);
        manager.owns_transport = true;
        manager
            .consumer_enabled
            .store(config.consumer_enabled(), Ordering::Release);
        Ok(manager)
    }

    fn assemble(
        transport: Arc<dyn Transport>,
        producer: Producer,
        consumers_from: ConsumerBuilder,
    ) -> Self {
        Self {
            transport,
            producer,
            consumers_from,
            consumer_enabled: AtomicBool::new(true),
            owns_transport: false,
            transition: tokio::sync::Mutex::new(()),
            state: Mutex::new(State::default()),
        }
    }

    /// The producer.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// Creates the real topic `topic` with `partitions` partitions over the manager's
    /// backend, so through the same connections, TLS and SASL as its producer and
    /// consumers, and waits until every partition's leader answers. An existing topic is
    /// not an error ([`Transport::create_topic`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let manager = godev_kafka::Manager::connect(&godev_kafka::Config::memory()).await?;
    /// manager.create_topic("orders", 6).await?;
    /// # Ok::<(), godev_kafka::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// The broker refused the topic (for example, the user lacks CREATE on it), or its
    /// partitions had no leaders in time.
    pub async fn create_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        self.transport.create_topic(topic, partitions).await
    }

    /// A consumer builder on the manager's transport, with the manager's group, topic table,
    /// codec and settings (from the config, for a manager made by [`Manager::connect`]).
    pub fn consumer_builder(&self) -> ConsumerBuilder {
        self.consumers_from.clone()
    }

    /// Registers `consumer`; it starts with [`Manager::start_all`], or at once when the
    /// manager already started and consumers are enabled.
    pub fn add_consumer(&self, consumer: Consumer) {
        let mut state = self.lock();
        if state.started && self.is_consumer_enabled() {
            state.running.push(consumer.start());
        }
        state.consumers.push(consumer);
    }

    /// Starts every registered consumer (unless consumers are disabled). Calling it again
    /// does nothing. Must be called within a Tokio runtime.
    pub fn start_all(&self) {
        let mut state = self.lock();
        if std::mem::replace(&mut state.started, true) || !self.is_consumer_enabled() {
            return;
        }
        state.running = state.consumers.iter().map(Consumer::start).collect();
    }

    /// Whether sends are accepted.
    pub fn is_producer_enabled(&self) -> bool {
        self.producer.is_enabled()
    }

    /// Accepts sends again.
    pub fn enable_producer(&self) {
        self.producer.set_enabled(true);
    }

    /// Refuses further sends with [`Error::Closed`]; records already sent are unaffected.
    pub fn disable_producer(&self) {
        self.producer.set_enabled(false);
    }

    /// Whether consumers run once started.
    pub fn is_consumer_enabled(&self) -> bool {
        self.consumer_enabled.load(Ordering::Acquire)
    }

    /// Starts the consumers again (if the manager was started); they resume at their
    /// committed offsets.
    pub async fn enable_consumers(&self) {
        let _transition = self.transition.lock().await;
        if self.consumer_enabled.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut state = self.lock();
        if state.started {
            state.running = state.consumers.iter().map(Consumer::start).collect();
        }
    }

    /// Stops the running consumers gracefully: in-flight handlers finish, handled offsets are
    /// committed, the groups are left. Nothing is consumed until [`Manager::enable_consumers`].
    ///
    /// # Errors
    ///
    /// The first error a consumer stopped with.
    pub async fn disable_consumers(&self) -> Result<()> {
        let _transition = self.transition.lock().await;
        self.consumer_enabled.store(false, Ordering::Release);
        let running = std::mem::take(&mut self.lock().running);
        shutdown_all(running).await
    }

    /// Producer and consumer switches, brokers, and each group's assignment.
    pub fn status(&self) -> Status {
        let state = self.lock();
        let mut consumers: Vec<GroupStatus> = state
            .running
            .iter()
            .flat_map(RunningConsumer::status)
            .collect();
        let running: Vec<String> = consumers.iter().map(|c| c.group.clone()).collect();
        for consumer in &state.consumers {
            for (group, topics) in consumer.group_topics() {
                if !running.contains(&group) {
                    consumers.push(GroupStatus {
                        group,
                        topics,
                        member_id: None,
                        assigned: Vec::new(),
                        stalled: Vec::new(),
                    });
                }
            }
        }
        Status {
            producer_enabled: self.is_producer_enabled(),
            consumer_enabled: self.is_consumer_enabled(),
            consumer_count: state.consumers.iter().map(|c| c.groups().len()).sum(),
            brokers: self.transport.brokers(),
            backend: self.transport.name(),
            consumers,
        }
    }

    /// Stops the consumers gracefully and flushes the producer; a manager made by
    /// [`Manager::connect`] also closes its transport (the `confluent` backend's clients).
    ///
    /// # Errors
    ///
    /// The first error a consumer stopped with, else a flush or close error.
    pub async fn close(&self) -> Result<()> {
        let _transition = self.transition.lock().await;
        let running = std::mem::take(&mut self.lock().running);
        let stopped = shutdown_all(running).await;
        self.producer.set_enabled(false);
        let flushed = if self.owns_transport {
            self.transport.close().await
        } else {
            self.producer.flush().await
        };
        stopped.and(flushed)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn shutdown_all(running: Vec<RunningConsumer>) -> Result<()> {
    let mut first: Option<Error> = None;
    for consumer in running {
        if let Err(error) = consumer.shutdown().await {
            first.get_or_insert(error);
        }
    }
    first.map_or(Ok(()), Err)
}

/// The transport of `config`'s backend; `auto` asks the first broker that answers which one
/// fits.
async fn connect_transport(config: &Config) -> Result<Arc<dyn Transport>> {
    let client = match config.client() {
        // A secured broker: only the native backend speaks every protocol, and asking the
        // broker first would take a plaintext connection a TLS listener refuses.
        #[cfg(feature = "native")]
        Client::Auto
            if config.security().protocol != crate::config::SecurityProtocol::Plaintext =>
        {
            tracing::info!(
                protocol = %config.security().protocol,
                "kafka.client = auto: chose the native backend, which speaks this security protocol"
            );
            Client::Native
        }
        // Without it, the confluent backend is the one that speaks TLS (and PLAIN).
        #[cfg(all(feature = "confluent", not(feature = "native")))]
        Client::Auto
            if config.security().protocol != crate::config::SecurityProtocol::Plaintext =>
        {
            config.check_client(Client::Confluent)?;
            tracing::info!(
                protocol = %config.security().protocol,
                "kafka.client = auto: chose the confluent backend, which speaks this security protocol"
            );
            Client::Confluent
        }
        #[cfg(any(feature = "kafka", feature = "confluent", feature = "native"))]
        Client::Auto => {
            let broker = crate::transport::detect::detect_broker(config.brokers()).await?;
            let client = Manager::auto_client(&broker);
            tracing::info!(
                broker = %broker.broker,
                kafka4 = broker.is_kafka4(),
                %client,
                "kafka.client = auto: chose the backend the broker speaks"
            );
            config.check_client(client)?;
            client
        }
        client => client,
    };
    Ok(match client {
        Client::Memory => Arc::new(MemoryTransport::new(MEMORY_PARTITIONS)),
        #[cfg(feature = "kafka")]
        Client::Kafka => Arc::new(
            crate::transport::kafka::KafkaTransport::connect(Manager::kafka_options(config))
                .await?,
        ),
        #[cfg(feature = "confluent")]
        Client::Confluent => Arc::new(
            crate::transport::confluent::ConfluentTransport::connect(Manager::confluent_options(
                config,
            ))
            .await?,
        ),
        #[cfg(feature = "native")]
        Client::Native => Arc::new(
            crate::transport::native::NativeTransport::connect(Manager::native_options(config))
                .await?,
        ),
        #[allow(unreachable_patterns)]
        other => {
            let message = match (config.client(), other) {
                (_, Client::Auto) => "`auto` needs a broker backend, and this build has none; \
                                      enable the cargo feature `kafka`, `native` or `confluent` of godev-kafka"
                    .to_owned(),
                (Client::Auto, _) => format!(
                    "`auto` chose `{other}` for the broker, which is not in this build; enable \
                     the cargo feature `{other}` of godev-kafka"
                ),
                _ => format!(
                    "backend `{other}` is not in this build; enable the cargo feature `{other}` \
                     of godev-kafka"
                ),
            };
            return Err(Error::Config {
                key: "kafka.client".into(),
                message,
            });
        }
    })
}

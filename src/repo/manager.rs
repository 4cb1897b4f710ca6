//! [`KafkaManagerRepo`]: the [`KafkaRepo`] over a [`Manager`].

use std::future::Future;
use std::sync::Arc;

use godev_kafka::config::{Client, Config};
use godev_kafka::consumer::ConsumerBuilder;
use godev_kafka::transport::Transport;
use godev_kafka::transport::kafka::{KafkaOptions, KafkaTransport};
use godev_kafka::transport::memory::MemoryTransport;
use godev_kafka::{
    Codec, Consumer, ConsumerSettings, Delivery, Event, Manager, Producer, Status, TopicMap,
    UnknownTagPolicy,
};
use serde::Serialize;

use super::KafkaRepo;
use crate::{Error, Result};

/// What every consumer built through [`KafkaRepo::consumer_builder`] starts with.
#[derive(Debug, Clone)]
pub struct ConsumerDefaults {
    /// The consumer group (the Go kit's `KAFKA.GROUP_ID`).
    pub group: String,
    /// Logical to real topic names.
    pub topics: TopicMap,
    /// How record values are read.
    pub codec: Codec,
    /// What to do with records of types no handler takes.
    pub unknown_tag: UnknownTagPolicy,
    /// Timeouts, retries, queues, commits.
    pub settings: ConsumerSettings,
}

impl ConsumerDefaults {
    /// Defaults for `group`: the Go kit's JSON ([`Codec::Tagged`]), unknown types skipped,
    /// default settings, no topic table.
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            topics: TopicMap::new(),
            codec: Codec::Tagged,
            unknown_tag: UnknownTagPolicy::default(),
            settings: ConsumerSettings::default(),
        }
    }
}

/// Which transport a repository runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// Apache Kafka 0.10 to 3.9, through the `kafka` crate backend.
    Kafka(KafkaOptions),
    /// The in-process backend: nothing installed, nothing persisted.
    Memory {
        /// Partitions of topics created on first use.
        partitions: i32,
    },
}

impl Backend {
    /// `kafka` or `memory`, as the config's `client` names it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Kafka(_) => "kafka",
            Self::Memory { .. } => "memory",
        }
    }
}

/// The Go kit's `persistent.KafkaRepo`, over the framework's [`Manager`].
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use godev_kafka::transport::memory::MemoryTransport;
/// use godev_kafka::{Codec, Manager, Producer, TopicMap};
/// use godev_kit::repo::{ConsumerDefaults, KafkaManagerRepo, KafkaRepo};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let transport = Arc::new(MemoryTransport::new(3));
/// let producer = Producer::with_transport(transport.clone(), TopicMap::new(), Codec::Tagged, "godev-kit");
/// let repo = KafkaManagerRepo::with_manager(Manager::new(transport, producer), ConsumerDefaults::new("godev-kit-group"));
/// let delivery = repo.send_message("custom-topic", b"custom-key", &"Hello Kafka!").await.unwrap();
/// assert_eq!(delivery.topic, "custom-topic");
/// assert!(repo.status().producer_enabled);
/// repo.close().await.unwrap();
/// # });
/// ```
#[derive(Debug)]
pub struct KafkaManagerRepo {
    manager: Arc<Manager>,
    defaults: ConsumerDefaults,
}

/// Partitions of the topics the memory backend creates on first use.
pub const MEMORY_PARTITIONS: i32 = 3;

impl KafkaManagerRepo {
    /// The repository `config` describes (the Go kit's `NewKafkaRepoWithConfig`): its client
    /// (`kafka` or `memory`), brokers and producer options, group, topic table, codec,
    /// consumer settings, and the producer and consumer switches.
    ///
    /// # Examples
    ///
    /// ```
    /// use godev_kit::repo::{KafkaManagerRepo, KafkaRepo};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let repo = KafkaManagerRepo::new(&godev_kafka::Config::memory()).await.unwrap();
    /// assert_eq!(repo.status().backend, "memory");
    /// # });
    /// ```
    ///
    /// # Errors
    ///
    /// As [`KafkaManagerRepo::connect`]; a client this application does not support.
    pub async fn new(config: &Config) -> Result<Self> {
        let backend = match config.client() {
            Client::Kafka => Backend::Kafka(config.kafka_options()),
            Client::Memory => Backend::Memory {
                partitions: MEMORY_PARTITIONS,
            },
            other => {
                return Err(godev_kafka::Error::Config {
                    key: "kafka.client".into(),
                    message: format!("the godev-kit application does not support `{other}`"),
                }
                .into());
            }
        };
        let defaults = ConsumerDefaults {
            group: config.group_id().to_owned(),
            topics: config.topic_map(),
            codec: config.codec(),
            unknown_tag: config.unknown_tag(),
            settings: config.consumer_settings(),
        };
        let repo = Self::connect(backend, defaults, config.source()).await?;
        if !config.producer_enabled() {
            repo.manager.disable_producer();
        }
        if !config.consumer_enabled() {
            repo.manager.disable_consumers().await?;
        }
        Ok(repo)
    }

    /// Connects to `backend` (for Kafka: a broker answered and speaks the `kafka` crate's
    /// protocol versions) and builds the manager: a producer writing `defaults.codec` through
    /// `defaults.topics`, with CloudEvents `source` when that codec is used.
    ///
    /// # Errors
    ///
    /// No broker answered, or it is Kafka 4 or later.
    pub async fn connect(
        backend: Backend,
        defaults: ConsumerDefaults,
        source: &str,
    ) -> Result<Self> {
        let transport: Arc<dyn Transport> = match backend {
            Backend::Kafka(options) => Arc::new(KafkaTransport::connect(options).await?),
            Backend::Memory { partitions } => Arc::new(MemoryTransport::new(partitions)),
        };
        let producer = Producer::with_transport(
            transport.clone(),
            defaults.topics.clone(),
            defaults.codec,
            source,
        );
        Ok(Self::with_manager(
            Manager::new(transport, producer),
            defaults,
        ))
    }

    /// A repository over `manager`, whose consumers start from `defaults`.
    pub fn with_manager(manager: Manager, defaults: ConsumerDefaults) -> Self {
        Self {
            manager: Arc::new(manager),
            defaults,
        }
    }

    /// The manager underneath.
    pub fn manager(&self) -> &Manager {
        &self.manager
    }

    /// What consumers start from.
    pub fn consumer_defaults(&self) -> &ConsumerDefaults {
        &self.defaults
    }
}

impl KafkaRepo for KafkaManagerRepo {
    fn send_message<V: Serialize + ?Sized>(
        &self,
        topic: &str,
        key: &[u8],
        value: &V,
    ) -> impl Future<Output = Result<Delivery>> + Send {
        // Encode before the future, so it borrows nothing of `value` (which need not be Sync).
        let encoded = serde_json::to_vec(value).map_err(|source| Error::Encode {
            topic: topic.to_owned(),
            source,
        });
        let key = (!key.is_empty()).then(|| key.to_vec());
        let topic = topic.to_owned();
        let manager = self.manager.clone();
        async move {
            let value = encoded?;
            Ok(manager
                .producer()
                .send_raw(&topic, key.as_deref(), value)
                .await?)
        }
    }

    async fn send_event<E: Event>(&self, event: &E) -> Result<Delivery> {
        Ok(self.manager.producer().send(event).await?)
    }

    fn consumer_builder(&self) -> ConsumerBuilder {
        let defaults = &self.defaults;
        self.manager
            .consumer_builder(defaults.group.clone())
            .topics(defaults.topics.clone())
            .codec(defaults.codec)
            .unknown_tag(defaults.unknown_tag)
            .settings(defaults.settings.clone())
    }

    fn add_consumer(&self, consumer: Consumer) {
        self.manager.add_consumer(consumer);
    }

    fn start_all_consumers(&self) {
        self.manager.start_all();
    }

    async fn close(&self) -> Result<()> {
        Ok(self.manager.close().await?)
    }

    fn enable_producer(&self) {
        self.manager.enable_producer();
    }

    fn disable_producer(&self) {
        self.manager.disable_producer();
    }

    async fn enable_consumer(&self) {
        self.manager.enable_consumers().await;
    }

    async fn disable_consumer(&self) -> Result<()> {
        Ok(self.manager.disable_consumers().await?)
    }

    fn is_producer_enabled(&self) -> bool {
        self.manager.is_producer_enabled()
    }

    fn is_consumer_enabled(&self) -> bool {
        self.manager.is_consumer_enabled()
    }

    fn status(&self) -> Status {
        self.manager.status()
    }
}

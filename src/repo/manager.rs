//! [`KafkaManagerRepo`]: the [`KafkaRepo`] over a [`Manager`].

use std::future::Future;
use std::sync::Arc;

use godev_kafka::consumer::ConsumerBuilder;
use godev_kafka::{
    Codec, Consumer, ConsumerSettings, Delivery, Event, Manager, Status, TopicMap, UnknownTagPolicy,
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

impl KafkaManagerRepo {
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

//! [`KafkaManagerRepo`]: the [`KafkaRepo`] over a [`Manager`].

use std::future::Future;
use std::sync::Arc;

use godev_kafka::config::Config;
use godev_kafka::consumer::ConsumerBuilder;
use godev_kafka::{Consumer, Delivery, Event, Manager, Status};
use serde::Serialize;

use super::KafkaRepo;
use crate::{Error, Result};

/// The Go kit's `persistent.KafkaRepo`, over the framework's [`Manager`].
///
/// # Examples
///
/// ```
/// use godev_kit::repo::{KafkaManagerRepo, KafkaRepo};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let repo = KafkaManagerRepo::new(&godev_kafka::Config::memory()).await.unwrap();
/// let delivery = repo.send_message("custom-topic", b"custom-key", &"Hello Kafka!").await.unwrap();
/// assert_eq!(delivery.topic, "custom-topic");
/// assert_eq!(repo.status().backend, "memory");
/// repo.close().await.unwrap();
/// # });
/// ```
#[derive(Debug)]
pub struct KafkaManagerRepo {
    manager: Arc<Manager>,
}

impl KafkaManagerRepo {
    /// The repository `config` describes (the Go kit's `NewKafkaRepoWithConfig`): see
    /// [`Manager::connect`].
    ///
    /// # Errors
    ///
    /// As [`Manager::connect`]: no broker answered, it is Kafka 4 or later, or the config
    /// names a backend this build lacks.
    pub async fn new(config: &Config) -> Result<Self> {
        Ok(Self::with_manager(Manager::connect(config).await?))
    }

    /// A repository over `manager`; its consumers start from
    /// [`Manager::consumer_builder`].
    pub fn with_manager(manager: Manager) -> Self {
        Self {
            manager: Arc::new(manager),
        }
    }

    /// The manager underneath.
    pub fn manager(&self) -> &Manager {
        &self.manager
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
        self.manager.consumer_builder()
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

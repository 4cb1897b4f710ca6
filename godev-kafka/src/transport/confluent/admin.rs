//! Administrative requests through the crate's admin client: create topics, end offsets, a
//! group's committed offsets, KIP-848 group timeouts (set only when asked: see the
//! [backend docs](super#group-timeouts)).
//!
//! The `kafka` backend's admin helpers (and `testing::end_offsets`) speak ListOffsets v0,
//! which Kafka 4 removed; these work on Kafka 4 (and on older brokers).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use confluent_kafka::admin::config_entry::ConfigSource;
use confluent_kafka::admin::{
    AdminClient, AdminClientConfig, AlterConfigOp, ConfigEntry, NewTopic, OffsetSpec, OpType,
};
use confluent_kafka::common::TopicPartition as KafkaPartition;
use confluent_kafka::common::config::ConfigResource;
use confluent_kafka::common::config::config_resource::Type as ResourceType;

use super::{ConfluentOptions, failed};
use crate::transport::GroupOptions;
use crate::{Error, Result};

/// How long the helpers wait for the broker.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The crate's admin client.
pub struct Admin {
    client: Box<dyn confluent_kafka::admin::Admin>,
    brokers: Vec<String>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("brokers", &self.brokers)
            .finish_non_exhaustive()
    }
}

impl Admin {
    /// An admin client for the brokers and properties of `options`.
    ///
    /// # Errors
    ///
    /// The crate refuses a property.
    pub fn new(options: &ConfluentOptions) -> Result<Self> {
        let props = options.with_extra(options.connection());
        let config = AdminClientConfig::new(&props).map_err(|e| Error::Config {
            key: "kafka".into(),
            message: format!("the confluent admin client refuses its configuration: {e}"),
        })?;
        let client = AdminClient::create(config).map_err(|e| failed("create admin client", &e))?;
        Ok(Self {
            client,
            brokers: options.brokers.clone(),
        })
    }

    /// An admin client for `brokers` (`host:port`, comma-separated) with default options.
    ///
    /// # Errors
    ///
    /// As [`Admin::new`].
    pub fn for_brokers(brokers: &str) -> Result<Self> {
        Self::new(&ConfluentOptions::new(brokers.split(',').map(str::trim)))
    }

    /// Closes the client (its background task and connections).
    pub async fn close(&self) {
        self.client.close().await;
    }

    /// Closes the client at once, failing its calls in flight instead of waiting for them
    /// (a plain [`close`](Self::close) waits out a call to a broker that never answers).
    pub(crate) async fn abandon(&self) {
        self.client.close_with_timeout(Duration::ZERO).await;
    }

    /// The cluster id; proves that a broker answers.
    pub(crate) async fn cluster_id(&self, timeout: Duration) -> Result<String> {
        self.client
            .describe_cluster()
            .cluster_id()
            .get_with_timeout(timeout)
            .await
            .map_err(|e| failed("describe cluster", &e))
    }

    /// Creates `topic` with `partitions` partitions (the broker's default replication factor)
    /// and waits until every partition's leader answers ListOffsets. An existing topic is not
    /// an error.
    ///
    /// # Errors
    ///
    /// The broker refused the topic, or its partitions had no leaders within 30 seconds.
    pub async fn create_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        let op = format!("create topic {topic}");
        let created = self
            .client
            .create_topics(&[NewTopic::with_num_partitions_replication_factor(
                topic,
                Some(partitions),
                None,
            )])
            .all()
            .get_with_timeout(TIMEOUT)
            .await;
        match created {
            Ok(()) => {}
            Err(e) if e.is_topic_exists_error() => {}
            Err(e) => return Err(failed(op, &e)),
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.end_offsets(topic, partitions).await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Partition → end offset (the offset the next record will get) of partitions
    /// `0..partitions` of `topic`.
    ///
    /// # Errors
    ///
    /// The brokers could not be reached or do not know the topic.
    pub async fn end_offsets(&self, topic: &str, partitions: i32) -> Result<BTreeMap<i32, i64>> {
        let request: HashMap<KafkaPartition, OffsetSpec> = (0..partitions)
            .map(|p| (KafkaPartition::new(topic, p), OffsetSpec::latest()))
            .collect();
        let offsets = self
            .client
            .list_offsets(&request)
            .all()
            .get_with_timeout(TIMEOUT)
            .await
            .map_err(|e| failed(format!("list end offsets of {topic}"), &e))?;
        Ok(offsets
            .into_iter()
            .map(|(tp, info)| (tp.partition(), info.offset()))
            .collect())
    }

    /// Partition → offset `group` committed for `topic` (partitions without one are left out).
    ///
    /// # Errors
    ///
    /// The group coordinator could not be found or refused.
    pub async fn committed_offsets(&self, group: &str, topic: &str) -> Result<BTreeMap<i32, i64>> {
        let op = || format!("list offsets of group {group}");
        let offsets = self
            .client
            .list_consumer_group_offsets_with_group_id(group)
            .partitions_to_offset_and_metadata()
            .map_err(|e| failed(op(), &e))?
            .get_with_timeout(TIMEOUT)
            .await
            .map_err(|e| failed(op(), &e))?;
        Ok(offsets
            .into_iter()
            .filter(|(tp, _)| tp.topic() == topic)
            .filter_map(|(tp, o)| o.map(|o| (tp.partition(), o.offset())))
            .collect())
    }

    /// Sets the KIP-848 group configs `consumer.session.timeout.ms` and
    /// `consumer.heartbeat.interval.ms` of `options.group` from `options`.
    ///
    /// # Errors
    ///
    /// The broker refused (no permission, a value outside its `group.consumer.min/max.*`
    /// bounds, or a broker before 4.0).
    pub async fn alter_group_timeouts(&self, options: &GroupOptions) -> Result<()> {
        let resource = ConfigResource::new(ResourceType::Group, options.group.clone());
        let set = |name: &str, value: Duration| {
            AlterConfigOp::new(
                ConfigEntry::new(name.to_owned(), Some(value.as_millis().to_string())),
                OpType::Set,
            )
        };
        let ops = vec![
            set("consumer.session.timeout.ms", options.session_timeout),
            set("consumer.heartbeat.interval.ms", options.heartbeat_interval),
        ];
        self.client
            .incremental_alter_configs(&HashMap::from([(resource, ops)]))
            .all()
            .get_with_timeout(TIMEOUT)
            .await
            .map_err(|e| failed(format!("set timeouts of group {}", options.group), &e))
    }

    /// The configs set for `group` itself (`consumer.session.timeout.ms`, ...), name →
    /// value; the broker-wide defaults the group falls back to are left out.
    ///
    /// # Errors
    ///
    /// The broker refused (no `DESCRIBE_CONFIGS` permission, or a broker before 4.0).
    pub async fn group_configs(&self, group: &str) -> Result<BTreeMap<String, String>> {
        let resource = ConfigResource::new(ResourceType::Group, group.to_owned());
        let configs = self
            .client
            .describe_configs(&[resource])
            .all()
            .get_with_timeout(TIMEOUT)
            .await
            .map_err(|e| failed(format!("describe configs of group {group}"), &e))?;
        Ok(configs
            .values()
            .flat_map(|config| config.entries())
            .filter(|entry| entry.source() == ConfigSource::DynamicGroupConfig)
            .map(|entry| {
                let value = entry.value().unwrap_or_default().to_owned();
                (entry.name().to_owned(), value)
            })
            .collect())
    }

    /// [`Admin::alter_group_timeouts`], logging a refusal instead of failing.
    pub(crate) async fn set_group_timeouts(&self, options: &GroupOptions) {
        if let Err(error) = self.alter_group_timeouts(options).await {
            tracing::warn!(
                group = %options.group,
                error = %error,
                "could not set the group's session timeout and heartbeat interval; the broker's defaults apply"
            );
        }
    }
}

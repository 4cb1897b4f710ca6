//! Administrative requests: create topics, end offsets, a group's committed offsets.
//!
//! Used by tests and tools; the runtime needs none of them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse, TopicName};

use super::fetch::Fetcher;
use super::group::{connect_coordinator, offsets};
use super::wire::{self, Connection, sb};
use crate::transport::{OffsetReset, TopicPartition};
use crate::{Error, Result};

const TIMEOUT: Duration = Duration::from_secs(30);
/// TOPIC_ALREADY_EXISTS.
const TOPIC_ALREADY_EXISTS: i16 = 36;

/// Creates `topic` with `partitions` partitions (the broker's default replication factor; 1
/// before Kafka 2.4) and waits until every partition has a leader that answers.
///
/// An existing topic is not an error.
///
/// # Errors
///
/// The broker refused the topic, or its partitions had no leaders within 30 seconds.
pub async fn create_topic(brokers: &[String], topic: &str, partitions: i32) -> Result<()> {
    let op = format!("create topic {topic}");
    let broker = brokers
        .first()
        .ok_or_else(|| Error::transport(&op, "no brokers", false))?;
    let mut conn = Connection::connect(broker, "godev-kafka-admin", TIMEOUT).await?;
    let version = conn.version::<CreateTopicsRequest>(ApiKey::CreateTopics)?;
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(TIMEOUT.as_millis() as i32)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(sb(topic)))
                .with_num_partitions(partitions)
                .with_replication_factor(-1),
        ]);
    // Replication factor -1 (the broker's default) needs v4+; older brokers get 1.
    let request = if version < 4 {
        let mut r = request;
        r.topics[0].replication_factor = 1;
        r
    } else {
        request
    };
    let response: CreateTopicsResponse = conn
        .call(ApiKey::CreateTopics, version, &request, Some(TIMEOUT))
        .await?;
    for t in &response.topics {
        if t.error_code != 0 && t.error_code != TOPIC_ALREADY_EXISTS {
            let message = t
                .error_message
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            return Err(Error::transport(
                op,
                format!("{} {message}", wire::error_name(t.error_code)),
                false,
            ));
        }
    }
    let fetcher = Fetcher::spawn(brokers.to_vec(), "godev-kafka-admin".into(), 1)?;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let counts = fetcher
            .partition_counts(vec![topic.to_owned()], deadline)
            .await?;
        if counts.get(topic).copied().unwrap_or(0) >= partitions {
            // Metadata can name a leader a moment before it serves the partition: wait
            // until every leader answers ListOffsets.
            match fetcher
                .list_offsets(vec![topic.to_owned()], OffsetReset::Latest)
                .await
            {
                Ok(offsets) if offsets.len() >= partitions as usize => return Ok(()),
                Ok(_) => {}
                Err(e) if e.is_retriable() => {}
                Err(e) => return Err(e),
            }
        }
        if Instant::now() >= deadline {
            return Err(Error::transport(
                op,
                format!("metadata shows {counts:?}"),
                true,
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The end offset (the offset the next record will get) of every partition of `topic`.
///
/// # Errors
///
/// The brokers could not be reached or do not know the topic.
pub async fn end_offsets(brokers: &[String], topic: &str) -> Result<BTreeMap<i32, i64>> {
    let fetcher = Fetcher::spawn(brokers.to_vec(), "godev-kafka-admin".into(), 1)?;
    let offsets = fetcher
        .list_offsets(vec![topic.to_owned()], OffsetReset::Latest)
        .await?;
    Ok(offsets
        .into_iter()
        .map(|(tp, o)| (tp.partition, o))
        .collect())
}

/// The offsets `group` committed for the partitions of `topic` (partitions without a commit
/// are left out).
///
/// # Errors
///
/// The group coordinator could not be found or refused the request.
pub async fn committed_offsets(
    brokers: &[String],
    group: &str,
    topic: &str,
) -> Result<BTreeMap<i32, i64>> {
    let fetcher = Fetcher::spawn(brokers.to_vec(), "godev-kafka-admin".into(), 1)?;
    let counts = fetcher
        .partition_counts(vec![topic.to_owned()], Instant::now() + TIMEOUT)
        .await?;
    let partitions: Vec<TopicPartition> = (0..counts[topic])
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    let deadline = Instant::now() + TIMEOUT;
    let mut conn =
        connect_coordinator(brokers, "godev-kafka-admin", group, TIMEOUT, deadline).await?;
    let committed = offsets::fetch_committed(&mut conn, group, &partitions).await?;
    Ok(committed
        .into_iter()
        .map(|(tp, o)| (tp.partition, o))
        .collect())
}

//! Administrative requests: create topics, end offsets, a group's committed offsets.
//!
//! Used by tests, tools and [`Transport::end_offsets`](crate::transport::Transport::end_offsets).
//! They speak `kafka-protocol` with versions negotiated per broker (Metadata, ListOffsets v1+,
//! CreateTopics, OffsetFetch), so they work on Kafka 4 as well as on the brokers the `kafka`
//! backend serves.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, ListOffsetsRequest,
    ListOffsetsResponse, TopicName,
};

use crate::transport::TopicPartition;
use crate::transport::connection::{Cluster, Connection, Purpose, sb};
use crate::transport::group::offsets;
use crate::{Error, Result};

const TIMEOUT: Duration = Duration::from_secs(30);
const CLIENT_ID: &str = "godev-kafka-admin";
/// ListOffsets' timestamp for "the offset the next record will get".
const LATEST: i64 = -1;
/// TOPIC_ALREADY_EXISTS.
const TOPIC_ALREADY_EXISTS: i16 = 36;

/// Creates `topic` with `partitions` partitions (the broker's default replication factor; 1
/// before Kafka 2.4) and waits until every partition has a leader that answers.
///
/// An existing topic is not an error. The connections are plaintext: on a secured cluster,
/// use [`Manager::create_topic`](crate::Manager::create_topic), which goes through the
/// backend's connections and their `[kafka.security]`.
///
/// # Errors
///
/// The broker refused the topic, or its partitions had no leaders within 30 seconds.
pub async fn create_topic(brokers: &[String], topic: &str, partitions: i32) -> Result<()> {
    create_topic_on(
        &Cluster::new(brokers, CLIENT_ID, TIMEOUT),
        topic,
        partitions,
    )
    .await
}

/// [`create_topic`] on `cluster` (and its security).
pub(crate) async fn create_topic_on(cluster: &Cluster, topic: &str, partitions: i32) -> Result<()> {
    let op = format!("create topic {topic}");
    let conn = cluster.any().await?;
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
            return Err(Error::kafka_with(
                op,
                t.error_code,
                t.error_message.as_ref(),
            ));
        }
    }
    // Metadata can name a leader a moment before it serves the partition: wait until every
    // partition has a leader that answers ListOffsets.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let last = match end_offsets_on(cluster, topic).await {
            Ok(ends) if ends.len() >= partitions as usize => return Ok(()),
            Ok(ends) => format!("{} of {partitions} partitions answer", ends.len()),
            Err(e) if e.is_retriable() => e.to_string(),
            Err(e) => return Err(e),
        };
        if Instant::now() >= deadline {
            return Err(Error::transport(op, last, true));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The end offset (the offset the next record will get) of every partition of `topic`.
/// Plaintext connections, as for [`create_topic`].
///
/// # Errors
///
/// The brokers could not be reached or do not know the topic.
pub async fn end_offsets(brokers: &[String], topic: &str) -> Result<BTreeMap<i32, i64>> {
    end_offsets_on(&Cluster::new(brokers, CLIENT_ID, TIMEOUT), topic).await
}

/// [`end_offsets`] on `cluster`, each partition asked of its leader.
pub(crate) async fn end_offsets_on(cluster: &Cluster, topic: &str) -> Result<BTreeMap<i32, i64>> {
    let op = format!("end offsets of {topic}");
    let leaders = cluster.leaders(topic).await?;
    let mut by_leader: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (partition, leader) in &leaders {
        let leader = leader.as_deref().ok_or_else(|| {
            Error::transport(&op, format!("partition {partition} has no leader"), true)
        })?;
        by_leader.entry(leader).or_default().push(*partition);
    }
    let mut ends = BTreeMap::new();
    for (leader, partitions) in by_leader {
        let conn = cluster.connection(leader, Purpose::Normal).await?;
        ends.extend(latest_offsets(&conn, topic, &partitions).await?);
    }
    Ok(ends)
}

/// The latest offsets of `partitions` of `topic`, asked of their leader `conn`.
async fn latest_offsets(
    conn: &Connection,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, i64>> {
    let op = format!("end offsets of {topic} on {}", conn.addr());
    // v0 answers with a different shape (a list of offsets); every broker since 0.10.1 has v1.
    let version = conn.version::<ListOffsetsRequest>(ApiKey::ListOffsets)?;
    if version < 1 {
        return Err(Error::transport(
            op,
            "the broker lacks ListOffsets v1",
            false,
        ));
    }
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(TopicName(sb(topic)))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(*p)
                                .with_timestamp(LATEST)
                        })
                        .collect(),
                ),
        ]);
    let response: ListOffsetsResponse = conn
        .call(ApiKey::ListOffsets, version, &request, None)
        .await?;
    let mut ends = BTreeMap::new();
    for p in response.topics.iter().flat_map(|t| &t.partitions) {
        if p.error_code != 0 {
            return Err(Error::kafka(
                format!("{op}: partition {}", p.partition_index),
                p.error_code,
            ));
        }
        ends.insert(p.partition_index, p.offset);
    }
    Ok(ends)
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
    let cluster = Cluster::new(brokers, CLIENT_ID, TIMEOUT);
    let partitions: Vec<TopicPartition> = cluster
        .leaders(topic)
        .await?
        .into_keys()
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    let deadline = Instant::now() + TIMEOUT;
    let conn = cluster.coordinator(group, deadline).await?;
    let committed = offsets::fetch_committed(&conn, group, &partitions).await?;
    Ok(committed
        .into_iter()
        .map(|(tp, o)| (tp.partition, o))
        .collect())
}

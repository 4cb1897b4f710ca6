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
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, TopicName,
};

use super::group::{connect_coordinator, offsets};
use crate::transport::TopicPartition;
use crate::transport::connection::{self, Connection, sb};
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
    let conn = Connection::connect(broker, CLIENT_ID, TIMEOUT).await?;
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
                format!("{} {message}", connection::error_name(t.error_code)),
                false,
            ));
        }
    }
    // Metadata can name a leader a moment before it serves the partition: wait until every
    // partition has a leader that answers ListOffsets.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let last = match end_offsets(brokers, topic).await {
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
///
/// # Errors
///
/// The brokers could not be reached or do not know the topic.
pub async fn end_offsets(brokers: &[String], topic: &str) -> Result<BTreeMap<i32, i64>> {
    let op = format!("end offsets of {topic}");
    let conn = connect_any(brokers, CLIENT_ID, TIMEOUT).await?;
    let leaders = leaders(&conn, topic).await?;
    let mut by_leader: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (partition, leader) in &leaders {
        let leader = leader.as_deref().ok_or_else(|| {
            Error::transport(&op, format!("partition {partition} has no leader"), true)
        })?;
        by_leader.entry(leader).or_default().push(*partition);
    }
    let mut ends = BTreeMap::new();
    for (leader, partitions) in by_leader {
        let offsets = if leader == conn.addr() {
            latest_offsets(&conn, topic, &partitions).await?
        } else {
            let leader = Connection::connect(leader, CLIENT_ID, TIMEOUT).await?;
            latest_offsets(&leader, topic, &partitions).await?
        };
        ends.extend(offsets);
    }
    Ok(ends)
}

/// Connects to the first of `brokers` that answers.
pub(crate) async fn connect_any(
    brokers: &[String],
    client_id: &str,
    timeout: Duration,
) -> Result<Connection> {
    let mut last = None;
    for broker in brokers {
        match Connection::connect(broker, client_id, timeout).await {
            Ok(conn) => return Ok(conn),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::transport("connect to the brokers", "no brokers", false)))
}

/// The partition counts of those of `topics` that exist and whose partitions all have a
/// leader, from one Metadata request that creates no topic.
///
/// Topics the broker does not know, or answers for with an error (not authorised, invalid
/// name, still being created), are left out: a group assigns what exists and rebalances
/// when the rest appears, as the Java client does.
///
/// # Errors
///
/// The request failed, or the broker does not speak Metadata v4 (Kafka 0.11), the first
/// version that can ask not to create topics.
pub(crate) async fn partition_counts(
    conn: &Connection,
    topics: &[String],
) -> Result<BTreeMap<String, i32>> {
    if topics.is_empty() {
        // An empty list asks for every topic in Metadata v0; nothing to ask here.
        return Ok(BTreeMap::new());
    }
    let response = metadata(conn, topics).await?;
    Ok(response
        .topics
        .iter()
        .filter(|t| {
            t.error_code == 0
                && !t.partitions.is_empty()
                && t.partitions.iter().all(|p| p.leader_id.0 >= 0)
        })
        .filter_map(|t| {
            let name = t.name.as_ref()?.0.to_string();
            topics
                .contains(&name)
                .then_some((name, t.partitions.len() as i32))
        })
        .collect())
}

/// The Metadata of `topics` (not empty), asked so that no topic is created.
///
/// # Errors
///
/// The request failed, or the broker does not speak Metadata v4 (Kafka 0.11), the first
/// version that can ask not to create topics.
async fn metadata(conn: &Connection, topics: &[String]) -> Result<MetadataResponse> {
    let version = conn.version::<MetadataRequest>(ApiKey::Metadata)?;
    if version < 4 {
        return Err(Error::transport(
            format!("metadata of {topics:?} on {}", conn.addr()),
            "the broker lacks Metadata v4 (Kafka 0.11), which can ask not to create topics",
            false,
        ));
    }
    let request = MetadataRequest::default()
        .with_topics(Some(
            topics
                .iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(sb(t)))))
                .collect(),
        ))
        .with_allow_auto_topic_creation(false);
    conn.call(ApiKey::Metadata, version, &request, None).await
}

/// Partition → its leader's address (`None` while it has none) of `topic`.
async fn leaders(conn: &Connection, topic: &str) -> Result<BTreeMap<i32, Option<String>>> {
    let op = format!("metadata of {topic}");
    let response = metadata(conn, &[topic.to_owned()]).await?;
    let hosts: BTreeMap<BrokerId, String> = response
        .brokers
        .iter()
        .map(|b| (b.node_id, format!("{}:{}", b.host.as_str(), b.port)))
        .collect();
    let found = response
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .ok_or_else(|| Error::transport(&op, "the broker did not answer for the topic", true))?;
    if found.error_code != 0 {
        return Err(Error::transport(
            op,
            connection::error_name(found.error_code),
            connection::is_retriable(found.error_code),
        ));
    }
    Ok(found
        .partitions
        .iter()
        .map(|p| (p.partition_index, hosts.get(&p.leader_id).cloned()))
        .collect())
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
            return Err(Error::transport(
                &op,
                format!(
                    "partition {}: {}",
                    p.partition_index,
                    connection::error_name(p.error_code)
                ),
                connection::is_retriable(p.error_code),
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
    let conn = connect_any(brokers, CLIENT_ID, TIMEOUT).await?;
    let partitions: Vec<TopicPartition> = leaders(&conn, topic)
        .await?
        .into_keys()
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    let deadline = Instant::now() + TIMEOUT;
    let conn = connect_coordinator(brokers, CLIENT_ID, group, TIMEOUT, deadline).await?;
    let committed = offsets::fetch_committed(&conn, group, &partitions).await?;
    Ok(committed
        .into_iter()
        .map(|(tp, o)| (tp.partition, o))
        .collect())
}

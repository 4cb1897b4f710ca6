//! Classic consumer-group membership, spoken by the project itself with `kafka-protocol`.
//!
//! - [`membership`]: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, and the
//!   [`GroupMember`](crate::transport::GroupMember) built on them.
//! - [`assignor`]: the leader's `range` and `roundrobin` assignors.
//! - [`offsets`]: OffsetFetch and generation-fenced OffsetCommit.
//!
//! Member metadata uses the standard consumer protocol (`ConsumerProtocolSubscription` and
//! `ConsumerProtocolAssignment`, version 0), so Kafka's own tools (`kafka-consumer-groups.sh
//! --describe`) show the members, their assignment and the committed offsets.

pub(crate) mod assignor;
pub(crate) mod membership;
pub(crate) mod offsets;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, FindCoordinatorRequest,
    FindCoordinatorResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Message};

use super::wire::{self, Connection, sb};
use crate::{Error, Result};

/// The consumer protocol version this client writes.
const CONSUMER_PROTOCOL_VERSION: i16 = 0;

/// Connects to the coordinator of `group`, asking the bootstrap brokers where it is.
///
/// Retries while the coordinator is not available yet (a new group's offsets partition may
/// still be loading) until `deadline`.
pub(crate) async fn connect_coordinator(
    brokers: &[String],
    client_id: &str,
    group: &str,
    timeout: Duration,
    deadline: Instant,
) -> Result<Connection> {
    let op = format!("find coordinator of group {group}");
    let mut last: Option<Error> = None;
    loop {
        for broker in brokers {
            match find_coordinator(broker, client_id, group, timeout).await {
                Ok(addr) => match Connection::connect(&addr, client_id, timeout).await {
                    Ok(conn) => return Ok(conn),
                    Err(e) => last = Some(e),
                },
                Err(e) if e.is_retriable() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        if Instant::now() >= deadline {
            return Err(Error::transport(
                op,
                last.map(|e| e.to_string())
                    .unwrap_or_else(|| "no brokers given".into()),
                true,
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Asks `broker` for the coordinator of `group`; answers its `host:port`.
async fn find_coordinator(
    broker: &str,
    client_id: &str,
    group: &str,
    timeout: Duration,
) -> Result<String> {
    let mut conn = Connection::connect(broker, client_id, timeout).await?;
    let version = conn.version::<FindCoordinatorRequest>(ApiKey::FindCoordinator)?;
    let mut request = FindCoordinatorRequest::default();
    if version >= 4 {
        request.coordinator_keys = vec![sb(group)];
    } else {
        request.key = sb(group);
    }
    let response: FindCoordinatorResponse = conn
        .call(ApiKey::FindCoordinator, version, &request, None)
        .await?;
    let (code, host, port) = if version >= 4 {
        let c = response
            .coordinators
            .first()
            .ok_or_else(|| Error::transport("FindCoordinator", "empty coordinator list", true))?;
        (c.error_code, c.host.to_string(), c.port)
    } else {
        (
            response.error_code,
            response.host.to_string(),
            response.port,
        )
    };
    if code != 0 {
        return Err(Error::transport(
            format!("find coordinator of group {group}"),
            wire::error_name(code),
            wire::is_retriable(code),
        ));
    }
    Ok(format!("{host}:{port}"))
}

/// The JoinGroup metadata of a member subscribed to `topics`.
pub(crate) fn encode_subscription(topics: &[String]) -> Result<Bytes> {
    let subscription =
        ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| sb(t)).collect());
    encode_versioned(&subscription)
}

/// The topics in a member's JoinGroup metadata.
pub(crate) fn decode_subscription(metadata: &[u8]) -> Result<Vec<String>> {
    let s: ConsumerProtocolSubscription = decode_versioned(metadata)?;
    Ok(s.topics.iter().map(|t| t.to_string()).collect())
}

/// The SyncGroup assignment bytes of topic → partitions.
pub(crate) fn encode_assignment(partitions: &BTreeMap<String, Vec<i32>>) -> Result<Bytes> {
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        partitions
            .iter()
            .map(|(topic, ps)| {
                AssignedTopic::default()
                    .with_topic(TopicName(sb(topic)))
                    .with_partitions(ps.clone())
            })
            .collect(),
    );
    encode_versioned(&assignment)
}

/// Topic and partition pairs of a SyncGroup assignment (empty bytes: nothing assigned).
pub(crate) fn decode_assignment(bytes: &[u8]) -> Result<Vec<(String, i32)>> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let a: ConsumerProtocolAssignment = decode_versioned(bytes)?;
    Ok(a.assigned_partitions
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic.to_string(), *p)))
        .collect())
}

fn encode_versioned<M: Encodable>(message: &M) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(CONSUMER_PROTOCOL_VERSION);
    message
        .encode(&mut buf, CONSUMER_PROTOCOL_VERSION)
        .map_err(|e| Error::transport("encode consumer protocol", e, false))?;
    Ok(buf.freeze())
}

/// Decodes a consumer-protocol message written by any client: newer versions only add
/// fields, so a version above ours is read as our highest.
fn decode_versioned<M: Decodable + Message>(bytes: &[u8]) -> Result<M> {
    let mut buf = Bytes::copy_from_slice(bytes);
    if buf.remaining() < 2 {
        return Err(Error::transport(
            "decode consumer protocol",
            "too short",
            false,
        ));
    }
    let version = buf.get_i16().clamp(M::VERSIONS.min, M::VERSIONS.max);
    M::decode(&mut buf, version).map_err(|e| Error::transport("decode consumer protocol", e, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_and_assignment_round_trip() {
        let topics = vec!["a".to_string(), "b".to_string()];
        let bytes = encode_subscription(&topics).unwrap();
        assert_eq!(&bytes[..2], &[0, 0], "version prefix");
        assert_eq!(decode_subscription(&bytes).unwrap(), topics);

        let mut parts = BTreeMap::new();
        parts.insert("a".to_string(), vec![0, 2]);
        parts.insert("b".to_string(), vec![1]);
        let bytes = encode_assignment(&parts).unwrap();
        assert_eq!(
            decode_assignment(&bytes).unwrap(),
            vec![("a".into(), 0), ("a".into(), 2), ("b".into(), 1)]
        );
        assert!(decode_assignment(&[]).unwrap().is_empty());
    }
}

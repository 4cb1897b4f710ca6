//! OffsetFetch and OffsetCommit against a group coordinator.

use std::collections::BTreeMap;

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ApiKey, GroupId, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse, TopicName,
};

use crate::transport::TopicPartition;
use crate::transport::connection::{Connection, sb};
use crate::{Error, KafkaCode, Result};

/// The committed offsets of `partitions` in `group`; partitions without one are left out.
pub(crate) async fn fetch_committed(
    conn: &Connection,
    group: &str,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, i64>> {
    let op = || format!("fetch committed offsets of group {group}");
    let version = conn.version::<OffsetFetchRequest>(ApiKey::OffsetFetch)?;
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    let mut request = OffsetFetchRequest::default();
    if version >= 8 {
        request.groups = vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(sb(group)))
                .with_member_epoch(-1)
                .with_topics(Some(
                    by_topic
                        .iter()
                        .map(|(t, ps)| {
                            OffsetFetchRequestTopics::default()
                                .with_name(TopicName(sb(t)))
                                .with_partition_indexes(ps.clone())
                        })
                        .collect(),
                )),
        ];
    } else {
        request.group_id = GroupId(sb(group));
        request.topics = Some(
            by_topic
                .iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(sb(t)))
                        .with_partition_indexes(ps.clone())
                })
                .collect(),
        );
    }
    let response: OffsetFetchResponse = conn
        .call(ApiKey::OffsetFetch, version, &request, None)
        .await?;
    let mut out = BTreeMap::new();
    let check = |code: i16| -> Result<()> {
        if code == 0 {
            Ok(())
        } else {
            Err(Error::kafka(op(), code))
        }
    };
    if version >= 8 {
        for g in &response.groups {
            check(g.error_code)?;
            for t in &g.topics {
                for p in &t.partitions {
                    check(p.error_code)?;
                    if p.committed_offset >= 0 {
                        out.insert(
                            TopicPartition::new(t.name.to_string(), p.partition_index),
                            p.committed_offset,
                        );
                    }
                }
            }
        }
    } else {
        if version >= 2 {
            check(response.error_code)?;
        }
        for t in &response.topics {
            for p in &t.partitions {
                check(p.error_code)?;
                if p.committed_offset >= 0 {
                    out.insert(
                        TopicPartition::new(t.name.to_string(), p.partition_index),
                        p.committed_offset,
                    );
                }
            }
        }
    }
    Ok(out)
}

/// Why a commit failed.
#[derive(Debug)]
pub(crate) enum CommitError {
    /// The generation or member is stale, or a rebalance is under way (the code says which).
    Fenced(KafkaCode),
    /// The coordinator moved or is loading: find it again.
    Coordinator(Error),
    /// Anything else.
    Other(Error),
}

/// Commits `offsets` for `member_id` of `generation`; a static member names its
/// `group_instance_id` (OffsetCommit v7, Kafka 2.3, and later), so that the coordinator fences
/// a commit of an instance another process took over (FENCED_INSTANCE_ID).
pub(crate) async fn commit(
    conn: &Connection,
    group: &str,
    generation: i32,
    member_id: &str,
    group_instance_id: Option<&str>,
    offsets: &[(TopicPartition, i64)],
) -> std::result::Result<(), CommitError> {
    let op = || format!("commit offsets of group {group}");
    let version = conn
        .version::<OffsetCommitRequest>(ApiKey::OffsetCommit)
        .map_err(CommitError::Other)?;
    let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for (tp, offset) in offsets {
        by_topic
            .entry(&tp.topic)
            .or_default()
            .push((tp.partition, *offset));
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(sb(member_id))
        .with_group_instance_id(group_instance_id.filter(|_| version >= 7).map(sb))
        .with_retention_time_ms(-1)
        .with_topics(
            by_topic
                .iter()
                .map(|(t, ps)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(sb(t)))
                        .with_partitions(
                            ps.iter()
                                .map(|(p, o)| {
                                    OffsetCommitRequestPartition::default()
                                        .with_partition_index(*p)
                                        .with_committed_offset(*o)
                                        .with_committed_leader_epoch(-1)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let response: OffsetCommitResponse = conn
        .call(ApiKey::OffsetCommit, version, &request, None)
        .await
        .map_err(CommitError::Coordinator)?;
    for t in &response.topics {
        for p in &t.partitions {
            match KafkaCode::new(p.error_code) {
                KafkaCode::NONE => {}
                // STALE_MEMBER_EPOCH is KIP-848's.
                code @ (KafkaCode::ILLEGAL_GENERATION
                | KafkaCode::UNKNOWN_MEMBER_ID
                | KafkaCode::REBALANCE_IN_PROGRESS
                | KafkaCode::FENCED_INSTANCE_ID
                | KafkaCode::STALE_MEMBER_EPOCH) => return Err(CommitError::Fenced(code)),
                KafkaCode::COORDINATOR_LOAD_IN_PROGRESS
                | KafkaCode::COORDINATOR_NOT_AVAILABLE
                | KafkaCode::NOT_COORDINATOR => {
                    return Err(CommitError::Coordinator(Error::kafka(op(), p.error_code)));
                }
                _ => {
                    return Err(CommitError::Other(Error::kafka(
                        format!("{}: {}[{}]", op(), t.name.as_str(), p.partition_index),
                        p.error_code,
                    )));
                }
            }
        }
    }
    Ok(())
}

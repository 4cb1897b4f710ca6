//! Replaying dead letters: publish the original records back to the topics they came from.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::DeadLetter;
use crate::partitioner::partition_for_key;
use crate::transport::{GroupOptions, OutgoingRecord, Polled, TopicPartition, Transport};
use crate::{Error, Result};

/// Consecutive empty polls (of 200 ms) after which the owned partitions count as read to
/// their end.
const IDLE_POLLS_TO_SETTLE: u32 = 10;

/// What [`replay_dead_letters`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayReport {
    /// Dead letters whose original record was written back to its origin topic.
    pub replayed: usize,
    /// Records of the dead-letter topic that are not dead letters (left alone, logged).
    pub unreadable: usize,
}

/// Publishes every dead letter of `dead_letter_topic` (written before the call) back to its
/// origin topic, with its original key and value, then commits past it in `group`.
///
/// The origin partition is kept when the topic still has it, otherwise the key decides (as
/// for any keyed record). Each dead letter is committed only after its original record was
/// acknowledged, so an interrupted replay resumes where it stopped; a dead letter replayed
/// twice (after a crash between write and commit) is written twice. Replaying into a topic
/// whose handlers still fail dead-letters the records again: fix the cause first.
///
/// # Examples
///
/// See `examples/replay_dead_letters.rs`.
///
/// # Errors
///
/// The transport failed, or the replay did not catch up within `deadline` (for example
/// because another member of `group` holds some partitions of the dead-letter topic).
pub async fn replay_dead_letters(
    transport: Arc<dyn Transport>,
    dead_letter_topic: &str,
    group: &str,
    deadline: Duration,
) -> Result<ReplayReport> {
    let until = tokio::time::Instant::now() + deadline;
    let end: BTreeMap<i32, i64> = transport.end_offsets(dead_letter_topic).await?;
    let mut member = transport
        .join(GroupOptions::new(group, vec![dead_letter_topic.to_owned()]))
        .await?;
    let mut report = ReplayReport::default();
    let mut position: BTreeMap<i32, i64> = BTreeMap::new();
    let mut assigned: Vec<TopicPartition> = Vec::new();
    let mut idle_polls = 0;
    let caught_up = |position: &BTreeMap<i32, i64>| {
        end.iter()
            .all(|(partition, end)| *end == 0 || position.get(partition).is_some_and(|p| p >= end))
    };
    while !caught_up(&position) {
        if tokio::time::Instant::now() >= until {
            let _ = member.leave().await;
            return Err(Error::transport(
                format!("replay {dead_letter_topic}"),
                format!(
                    "not caught up within {deadline:?}; replayed {} so far",
                    report.replayed
                ),
                true,
            ));
        }
        match member.poll(Duration::from_millis(200)).await? {
            Polled::Records(records) => {
                idle_polls = 0;
                for record in records
                    .into_iter()
                    .filter(|r| end.get(&r.partition).is_some_and(|e| r.offset < *e))
                {
                    match serde_json::from_slice::<DeadLetter>(&record.value) {
                        Ok(letter) => {
                            let key = letter.original_key();
                            let partitions =
                                transport.partition_count(&letter.origin_topic).await?;
                            let partition = if letter.origin_partition < partitions {
                                letter.origin_partition
                            } else {
                                key.as_deref()
                                    .map_or(0, |k| partition_for_key(k, partitions))
                            };
                            let value = letter.original_value();
                            let out = OutgoingRecord {
                                topic: letter.origin_topic,
                                partition,
                                key,
                                value,
                            };
                            transport.produce(out).await?;
                            report.replayed += 1;
                        }
                        Err(error) => {
                            tracing::warn!(topic = dead_letter_topic, offset = record.offset, %error, "not a dead letter; left alone");
                            report.unreadable += 1;
                        }
                    }
                    let tp = TopicPartition::new(dead_letter_topic, record.partition);
                    member.commit(&[(tp, record.offset + 1)]).await?;
                    position.insert(record.partition, record.offset + 1);
                }
            }
            Polled::Assigned(partitions) => {
                assigned = partitions;
                idle_polls = 0;
            }
            // Nothing to read in any owned partition for a while: each is at or past its end.
            // A single idle poll is not proof (a broker's first fetch after an assignment can
            // outlast one poll), so it takes IDLE_POLLS_TO_SETTLE in a row.
            Polled::Idle => {
                idle_polls += 1;
                if idle_polls < IDLE_POLLS_TO_SETTLE {
                    continue;
                }
                for tp in &assigned {
                    let end = end.get(&tp.partition).copied().unwrap_or(0);
                    let at = position.entry(tp.partition).or_insert(end);
                    *at = (*at).max(end);
                }
            }
            Polled::Revoked(_) => assigned.clear(),
        }
    }
    member.leave().await?;
    Ok(report)
}

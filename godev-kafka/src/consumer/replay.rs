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

/// The longest topic name Kafka accepts.
const MAX_TOPIC_NAME: usize = 249;

/// What [`replay_dead_letters`] did.
///
/// Every record of the dead-letter topic it read is in exactly one of the three: replayed,
/// unreadable, or skipped. All three are committed past; nothing is deleted from the
/// dead-letter topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayReport {
    /// Dead letters whose original record was written back to its origin topic.
    pub replayed: usize,
    /// Records of the dead-letter topic that are not dead letters (left alone, logged).
    pub unreadable: usize,
    /// Dead letters that cannot be replayed, in the order they were met (left alone, logged
    /// at warn): a bounded letter without its value, a damaged one, an origin partition or
    /// topic that cannot exist or that the broker refuses, a produce refused for good.
    pub skipped: Vec<SkippedLetter>,
}

/// A dead letter [`replay_dead_letters`] could not replay.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SkippedLetter {
    /// Its partition in the dead-letter topic.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// Why it cannot be replayed (never its key or value).
    pub reason: String,
}

/// Publishes every dead letter of `dead_letter_topic` (written before the call) back to its
/// origin topic, with its original key and value, then commits past it in `group`. The
/// original headers a dead letter keeps are not written back (records are produced without
/// headers; see [`DeadLetter::original_headers`]).
///
/// The origin partition is kept when the topic still has it, otherwise the key decides (as
/// for any keyed record). Each dead letter is committed only after its original record was
/// acknowledged, so a replay interrupted by a transport failure resumes where it stopped; a
/// dead letter replayed twice (after a crash between write and commit) is written twice.
/// Replaying into a topic whose handlers still fail dead-letters the records again: fix the
/// cause first.
///
/// A dead letter that cannot be replayed does not stop the replay: it is logged at warn with
/// its partition, offset and reason, listed in [`ReplayReport::skipped`], committed past and
/// left in the dead-letter topic. That covers a letter in bounded form (written without its
/// value), a damaged one (bad base64, sizes that do not match), a negative origin partition,
/// an origin topic name Kafka does not allow, an origin topic the broker does not serve while
/// it answers for the dead-letter topic, and a produce the broker refuses for good (too
/// large, not authorised, ...).
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
                    "not caught up within {deadline:?}; replayed {} and skipped {} so far",
                    report.replayed,
                    report.skipped.len()
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
                            match replay_one(&*transport, dead_letter_topic, letter).await? {
                                Ok(()) => report.replayed += 1,
                                Err(reason) => {
                                    tracing::warn!(
                                        topic = dead_letter_topic,
                                        partition = record.partition,
                                        offset = record.offset,
                                        %reason,
                                        "dead letter cannot be replayed; skipped and left in place"
                                    );
                                    report.skipped.push(SkippedLetter {
                                        partition: record.partition,
                                        offset: record.offset,
                                        reason,
                                    });
                                }
                            }
                        }
                        Err(error) => {
                            // serde's message can quote the record's text: only at debug.
                            tracing::warn!(
                                topic = dead_letter_topic,
                                partition = record.partition,
                                offset = record.offset,
                                line = error.line(),
                                column = error.column(),
                                "not a dead letter; left alone"
                            );
                            tracing::debug!(offset = record.offset, %error, "not a dead letter");
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
            // A dead-letter partition that cannot be read cannot be replayed past.
            Polled::Stalled(stalled) => {
                let named: Vec<String> = stalled
                    .iter()
                    .map(|s| format!("{} at offset {}: {}", s.partition, s.offset, s.reason))
                    .collect();
                return Err(Error::transport(
                    format!("replay {dead_letter_topic}"),
                    format!("cannot read {}", named.join("; ")),
                    false,
                ));
            }
        }
    }
    member.leave().await?;
    Ok(report)
}

/// Writes the original record of `letter` back: `Ok(Ok(()))` once it is acknowledged,
/// `Ok(Err(reason))` when the letter cannot be replayed, `Err` when the transport failed
/// (the replay stops there, to resume at this letter).
async fn replay_one(
    transport: &dyn Transport,
    dead_letter_topic: &str,
    letter: DeadLetter,
) -> Result<std::result::Result<(), String>> {
    let (key, value) = match letter.original() {
        Ok(original) => original,
        Err(reason) => return Ok(Err(reason)),
    };
    let topic = letter.origin_topic;
    if let Err(reason) = check_topic_name(&topic) {
        return Ok(Err(reason));
    }
    if letter.origin_partition < 0 {
        return Ok(Err(format!(
            "origin_partition {} is not a partition",
            letter.origin_partition
        )));
    }
    let partitions = match transport.partition_count(&topic).await {
        Ok(count) if count > 0 => count,
        Ok(_) => return Ok(Err(format!("origin topic `{topic}` has no partitions"))),
        Err(error) if refused(&error) => {
            return Ok(Err(format!("origin topic `{topic}`: {error}")));
        }
        // Either the brokers are out of reach, or they do not serve this topic (a broker
        // without auto-creation, a name that collides with another topic's). Whether they
        // answer for the dead-letter topic tells which.
        Err(error) => {
            if transport.end_offsets(dead_letter_topic).await.is_err() {
                return Err(error);
            }
            return Ok(Err(format!(
                "origin topic `{topic}` is not served by the brokers: {error}"
            )));
        }
    };
    let partition = if letter.origin_partition < partitions {
        letter.origin_partition
    } else {
        key.as_deref()
            .map_or(0, |k| partition_for_key(k, partitions))
    };
    let out = OutgoingRecord {
        topic,
        partition,
        key,
        value,
    };
    match transport.produce(out).await.map_err(|unsent| unsent.error) {
        Ok(_) => Ok(Ok(())),
        Err(error) if refused(&error) => Ok(Err(format!("the produce was refused: {error}"))),
        Err(error) => Err(error),
    }
}

/// Whether `error` is the broker's (or backend's) final answer about this record, one that
/// trying again would not change; a closed transport is not an answer about the record.
fn refused(error: &Error) -> bool {
    !error.is_retriable() && !matches!(error, Error::Closed(_))
}

/// Refuses what Kafka would refuse as a topic name (empty, longer than 249, `.` or `..`, a
/// character other than ASCII letters, digits, `.`, `_` and `-`).
fn check_topic_name(topic: &str) -> std::result::Result<(), String> {
    let legal = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-');
    if topic.is_empty() || topic == "." || topic == ".." {
        return Err(format!("origin topic `{topic}` is not a topic name"));
    }
    if topic.len() > MAX_TOPIC_NAME {
        return Err(format!(
            "origin topic name has {} characters, more than Kafka's {MAX_TOPIC_NAME}",
            topic.len()
        ));
    }
    if !topic.bytes().all(legal) {
        return Err(format!(
            "origin topic `{}` has characters Kafka does not allow in a topic name",
            topic.escape_debug()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_are_checked_as_kafka_checks_them() {
        for good in ["payments", "a.b_c-1", &"x".repeat(249)] {
            assert_eq!(check_topic_name(good), Ok(()), "{good}");
        }
        for bad in ["", ".", "..", "no such topic", "a/b", "é", &"x".repeat(250)] {
            assert!(check_topic_name(bad).is_err(), "{bad}");
        }
    }
}

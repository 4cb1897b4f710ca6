//! Reading partitions at explicit positions with the `kafka` crate, on a dedicated thread.
//!
//! The crate speaks Fetch v0 and ListOffsets v0; the member keeps the positions and asks for
//! exactly those offsets. A compressed message set can start before the requested offset, so
//! records below it are dropped here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka::client::{FetchOffset, FetchPartition, KafkaClient};
use kafka::error::{Error as KafkaError, KafkaCode};

use super::client::{BlockingClient, connection_lost, reconnect, to_error};
use crate::transport::group::{Fetched, PartitionReader};
use crate::transport::{BoxFuture, OffsetReset, Record, StalledPartition, TopicPartition};
use crate::{Error, Result};

/// A `kafka` crate client on its own thread, for one group member or one admin task.
#[derive(Debug)]
pub(crate) struct Fetcher {
    client: BlockingClient,
    max_bytes: i32,
}

impl Fetcher {
    /// Starts the thread with a client for `brokers`.
    pub(crate) fn spawn(brokers: Vec<String>, client_id: String, max_bytes: i32) -> Result<Self> {
        let client = BlockingClient::spawn("godev-kafka-fetch", move || {
            let mut client = KafkaClient::new(brokers);
            client.set_client_id(client_id);
            client.set_fetch_min_bytes(1);
            client.set_fetch_crc_validation(true);
            client
        })?;
        Ok(Self { client, max_bytes })
    }

    /// Fetches from `positions`, waiting at most `wait` on the broker for data.
    pub(crate) async fn fetch(
        &self,
        positions: Vec<(TopicPartition, i64)>,
        wait: Duration,
    ) -> Result<Fetched> {
        let max_bytes = self.max_bytes;
        self.client
            .run(move |client| fetch_blocking(client, &positions, wait, max_bytes))
            .await?
    }

    /// The partition counts of `topics`, creating missing topics the way the broker does on a
    /// metadata request; waits until each has partitions with leaders, until `deadline`.
    pub(crate) async fn partition_counts(
        &self,
        topics: Vec<String>,
        deadline: Instant,
    ) -> Result<BTreeMap<String, i32>> {
        self.client
            .run(move |client| partition_counts_blocking(client, &topics, deadline))
            .await?
    }

    /// The earliest or latest offset of every partition of `topics`.
    pub(crate) async fn list_offsets(
        &self,
        topics: Vec<String>,
        reset: OffsetReset,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        self.client
            .run(move |client| {
                let which = match reset {
                    OffsetReset::Earliest => FetchOffset::Earliest,
                    OffsetReset::Latest => FetchOffset::Latest,
                };
                let mut last = None;
                for attempt in 0..5 {
                    if attempt > 0 || !topics.iter().all(|t| client.topics().contains(t)) {
                        let _ = client.load_metadata(&topics);
                    }
                    match client.fetch_offsets(&topics, which) {
                        Ok(map) => {
                            return Ok(map
                                .into_iter()
                                .flat_map(|(topic, ps)| {
                                    ps.into_iter().map(move |p| {
                                        (TopicPartition::new(topic.clone(), p.partition), p.offset)
                                    })
                                })
                                .collect());
                        }
                        Err(e) if super::client::retriable(&e) => {
                            if connection_lost(&e) {
                                reconnect(client);
                            }
                            last = Some(e);
                            std::thread::sleep(Duration::from_millis(100 << attempt));
                        }
                        Err(e) => return Err(to_error(format!("list offsets of {topics:?}"), &e)),
                    }
                }
                Err(to_error(
                    format!("list offsets of {topics:?}"),
                    &last.unwrap_or(KafkaError::NoHostReachable),
                ))
            })
            .await?
    }
}

impl PartitionReader for Fetcher {
    fn fetch(
        &self,
        positions: Vec<(TopicPartition, i64)>,
        wait: Duration,
    ) -> BoxFuture<'_, Result<Fetched>> {
        Box::pin(Fetcher::fetch(self, positions, wait))
    }

    fn list_offsets(
        &self,
        topics: Vec<String>,
        reset: OffsetReset,
    ) -> BoxFuture<'_, Result<BTreeMap<TopicPartition, i64>>> {
        Box::pin(Fetcher::list_offsets(self, topics, reset))
    }
}

fn fetch_blocking(
    client: &mut KafkaClient,
    positions: &[(TopicPartition, i64)],
    wait: Duration,
    max_bytes: i32,
) -> Result<Fetched> {
    let mut out = Fetched::default();
    if positions.is_empty() {
        std::thread::sleep(wait);
        return Ok(out);
    }
    let unknown: Vec<&str> = {
        let topics = client.topics();
        let mut unknown: Vec<&str> = positions
            .iter()
            .filter(|(tp, _)| {
                topics
                    .partitions(&tp.topic)
                    .and_then(|ps| ps.partition(tp.partition))
                    .and_then(|p| p.leader())
                    .is_none()
            })
            .map(|(tp, _)| tp.topic.as_str())
            .collect();
        unknown.sort_unstable();
        unknown.dedup();
        unknown
    };
    if !unknown.is_empty()
        && let Err(e) = client.load_metadata(&unknown)
    {
        let error = to_error(format!("metadata of {unknown:?}"), &e);
        if connection_lost(&e) {
            reconnect(client);
        }
        return Err(error);
    }
    let wait = wait.max(Duration::from_millis(1));
    client
        .set_fetch_max_wait_time(wait)
        .map_err(|e| to_error("set fetch wait", &e))?;
    let requests: Vec<FetchPartition<'_>> = positions
        .iter()
        .map(|(tp, offset)| {
            FetchPartition::new(&tp.topic, tp.partition, *offset).with_max_bytes(max_bytes)
        })
        .collect();
    let started = Instant::now();
    let responses = match client.fetch_messages(&requests) {
        Ok(r) => r,
        Err(e) => {
            let error = to_error("fetch", &e);
            if connection_lost(&e) {
                reconnect(client);
            }
            if error.is_retriable() {
                tracing::debug!(%error, "fetch failed; refreshing metadata");
                let topics: Vec<&str> = positions.iter().map(|(tp, _)| tp.topic.as_str()).collect();
                let _ = client.load_metadata(&topics);
                std::thread::sleep(
                    wait.saturating_sub(started.elapsed())
                        .min(Duration::from_millis(200)),
                );
                return Ok(out);
            }
            // The crate fails the whole response when one partition's data does not read.
            isolate(client, positions, max_bytes, &error, &mut out)?;
            return Ok(out);
        }
    };
    if take(&responses, positions, &mut out) {
        let topics: Vec<&str> = positions.iter().map(|(tp, _)| tp.topic.as_str()).collect();
        let _ = client.load_metadata(&topics);
    }
    Ok(out)
}

/// After a fetch of `positions` failed with `error` (not retriable): asks for each partition
/// alone, without waiting on the broker, so the partitions that read are read and those that
/// fail the same way are [stalled](Fetched::stalled), each with the crate's reason.
fn isolate(
    client: &mut KafkaClient,
    positions: &[(TopicPartition, i64)],
    max_bytes: i32,
    error: &Error,
    out: &mut Fetched,
) -> Result<()> {
    if let [(tp, offset)] = positions {
        out.stalled.push(StalledPartition::new(
            tp.clone(),
            *offset,
            error.to_string(),
        ));
        return Ok(());
    }
    client
        .set_fetch_max_wait_time(Duration::from_millis(1))
        .map_err(|e| to_error("set fetch wait", &e))?;
    for (tp, offset) in positions {
        let one = [FetchPartition::new(&tp.topic, tp.partition, *offset).with_max_bytes(max_bytes)];
        match client.fetch_messages(&one) {
            Ok(responses) => {
                take(&responses, &[(tp.clone(), *offset)], out);
            }
            Err(e) => {
                let error = to_error(format!("fetch {tp}"), &e);
                if error.is_retriable() {
                    // Not this partition's data: it is tried again with the others next time.
                    continue;
                }
                out.stalled.push(StalledPartition::new(
                    tp.clone(),
                    *offset,
                    error.to_string(),
                ));
            }
        }
    }
    Ok(())
}

/// Moves the records of `responses` at or after the requested `positions` into `out`, and
/// the partitions out of range; answers whether a partition error asks for fresh metadata.
fn take(
    responses: &[kafka::client::fetch::Response],
    positions: &[(TopicPartition, i64)],
    out: &mut Fetched,
) -> bool {
    let requested: BTreeMap<(&str, i32), i64> = positions
        .iter()
        .map(|(tp, o)| ((tp.topic.as_str(), tp.partition), *o))
        .collect();
    let mut refresh = false;
    for response in responses {
        for topic in response.topics() {
            for partition in topic.partitions() {
                let tp = TopicPartition::new(topic.topic(), partition.partition());
                let from = requested
                    .get(&(topic.topic(), partition.partition()))
                    .copied();
                match partition.data() {
                    Ok(data) => {
                        out.high_watermarks
                            .push((tp.clone(), data.highwatermark_offset()));
                        for m in data.messages() {
                            if from.is_some_and(|from| m.offset < from) {
                                continue;
                            }
                            out.records.push(Record {
                                topic: tp.topic.clone(),
                                partition: tp.partition,
                                offset: m.offset,
                                key: (!m.key.is_empty()).then(|| m.key.to_vec()),
                                value: m.value.to_vec(),
                                // Fetch v0 (message format v0/v1) has no headers.
                                headers: Vec::new(),
                            });
                        }
                    }
                    Err(e) => match &*e {
                        KafkaError::Kafka(KafkaCode::OffsetOutOfRange) => out.out_of_range.push(tp),
                        e => {
                            tracing::debug!(partition = %tp, error = %e, "fetch error");
                            refresh = true;
                        }
                    },
                }
            }
        }
    }
    refresh
}

fn partition_counts_blocking(
    client: &mut KafkaClient,
    topics: &[String],
    deadline: Instant,
) -> Result<BTreeMap<String, i32>> {
    let op = || format!("partition count of {topics:?}");
    loop {
        let mut last = String::new();
        match client.load_metadata(topics) {
            Ok(()) => {
                let md = client.topics();
                let mut counts = BTreeMap::new();
                for topic in topics {
                    match md.partitions(topic) {
                        Some(ps) if !ps.is_empty() && ps.iter().all(|p| p.leader().is_some()) => {
                            counts.insert(topic.clone(), ps.len() as i32);
                        }
                        _ => last = format!("topic {topic} has no partitions with leaders yet"),
                    }
                }
                if counts.len() == topics.len() {
                    return Ok(counts);
                }
            }
            Err(e) if super::client::retriable(&e) => {
                last = e.to_string();
                if connection_lost(&e) {
                    reconnect(client);
                }
            }
            Err(e) => return Err(to_error(op(), &e)),
        }
        if Instant::now() >= deadline {
            return Err(Error::transport(op(), last, true));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

//! The native backend's reader: records at the member's positions, and the offsets positions
//! start from.
//!
//! A fetch round routes each position to its partition's leader (from cached metadata), sends
//! one Fetch per leader broker, all brokers at once, and decodes each partition's record
//! batches with [`batch`]. The member keeps the positions; this reader keeps nothing but the
//! cluster's metadata cache, which it invalidates for a topic whenever a broker says its
//! leadership moved, so the next round asks again.
//!
//! # Failure modes
//!
//! - A partition error the broker says may pass (`NOT_LEADER_OR_FOLLOWER`, a lost leader, a
//!   fenced epoch, ...) leaves the partition out of the round and invalidates its topic.
//! - A partition error that retrying cannot mend, or a batch that does not decode, stalls the
//!   partition at its position ([`Fetched::stalled`]); the other partitions go on.
//! - A broker that cannot be reached leaves its partitions out of the round; only when every
//!   broker of the round failed does the fetch fail (retriably).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    TopicName,
};
use kafka_protocol::protocol::Message;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use super::batch::{self, BatchError, Decoded};
use crate::transport::connection::{Cluster, Connection, Purpose, negotiate, sb};
use crate::transport::group::{Fetched, PartitionReader};
use crate::transport::{
    BoxFuture, Header, Isolation, OffsetReset, Record, StalledPartition, TopicPartition,
};
use crate::{Error, KafkaCode, Result};

/// How old the leaders a fetch round routes by may be: the Java client's
/// `metadata.max.age.ms` (5 minutes). A move shows sooner: the broker answers the old
/// leader's partitions with an error, which invalidates the topic for the next round.
const METADATA_MAX_AGE: Duration = Duration::from_secs(5 * 60);
/// The oldest Fetch spoken: v4 (Kafka 0.11) is the first with `isolation_level` and record
/// batches v2.
const FETCH_MIN: i16 = 4;
/// The newest Fetch spoken: v13 and later name topics only by id.
const FETCH_MAX: i16 = 12;
const _: () = assert!(
    FETCH_MIN >= FetchRequest::VERSIONS.min && FETCH_MAX <= FetchRequest::VERSIONS.max,
    "kafka-protocol must speak the Fetch versions used here"
);
/// The pause after a round that read nothing because leaders were unknown or moving: the
/// Java client's `retry.backoff.ms` (100 ms), so that a leader election is not a busy loop of
/// Metadata requests.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// ListOffsets attempts while the answers are retriable, the first wait between them
/// [`LIST_OFFSETS_BACKOFF`], doubling after each (as the `kafka` backend).
const LIST_OFFSETS_ATTEMPTS: u32 = 5;
/// See [`LIST_OFFSETS_ATTEMPTS`].
const LIST_OFFSETS_BACKOFF: Duration = Duration::from_millis(100);
/// The ListOffsets timestamp that asks for the first offset still in the log.
const EARLIEST_TIMESTAMP: i64 = -2;
/// The ListOffsets timestamp that asks for the offset the next record will get.
const LATEST_TIMESTAMP: i64 = -1;
/// A consumer's replica id in Fetch and ListOffsets requests.
const CONSUMER_REPLICA_ID: BrokerId = BrokerId(-1);
/// The log overhead of a record batch: base offset (i64), then the batch length (i32) that
/// counts the bytes after it.
const LOG_OVERHEAD: usize = 12;

/// The `isolation_level` of Fetch and ListOffsets requests.
const fn isolation_level(isolation: Isolation) -> i8 {
    match isolation {
        Isolation::ReadUncommitted => 0,
        Isolation::ReadCommitted => 1,
    }
}

/// How the fetcher asks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FetchSettings {
    /// The most bytes one Fetch response may hold (`fetch.max.bytes`; the broker still
    /// returns a first batch larger than this, so a consumer never gets stuck).
    pub(crate) max_bytes: i32,
    /// The most bytes one partition may contribute (`max.partition.fetch.bytes`, with the
    /// same exception).
    pub(crate) partition_max_bytes: i32,
    /// The bytes the broker waits for, up to the fetch's wait (`fetch.min.bytes`).
    pub(crate) min_bytes: i32,
    /// The longest the broker holds a Fetch for `min_bytes` (`fetch.max.wait.ms`). A round
    /// waits the shorter of this and the wait its member asks for.
    pub(crate) max_wait: Duration,
    /// Read committed or uncommitted records (`isolation.level`).
    pub(crate) isolation: Isolation,
    /// How long a broker may take to answer beyond the fetch's long-poll wait (the
    /// transport's `request_timeout`): a broker that hangs holds its round no longer, and
    /// its partitions go to fresh metadata (a new leader) the round after.
    pub(crate) request_timeout: Duration,
}

impl Default for FetchSettings {
    /// The Java consumer's defaults: 50 MiB per response, 1 MiB per partition, answer as
    /// soon as there is a byte, wait at most 500 ms, read uncommitted.
    fn default() -> Self {
        FetchSettings {
            max_bytes: 50 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
            min_bytes: 1,
            max_wait: Duration::from_millis(500),
            isolation: Isolation::ReadUncommitted,
            request_timeout: crate::options::DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// Reads partitions at explicit positions from their leaders: one Fetch per leader broker per
/// round, brokers at once. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct NativeFetcher {
    cluster: Arc<Cluster>,
    settings: FetchSettings,
}

/// The positions of one round grouped by the address of their leader.
type Routes = BTreeMap<String, Vec<(TopicPartition, i64)>>;

impl NativeFetcher {
    /// A fetcher reading through `cluster` (whose metadata cache it shares) with `settings`.
    pub(crate) fn new(cluster: Arc<Cluster>, settings: FetchSettings) -> Self {
        NativeFetcher { cluster, settings }
    }

    /// One fetch round. See [`PartitionReader::fetch`].
    async fn fetch_round(
        &self,
        positions: Vec<(TopicPartition, i64)>,
        wait: Duration,
    ) -> Result<Fetched> {
        let mut out = Fetched::default();
        if positions.is_empty() {
            tokio::time::sleep(wait).await;
            return Ok(out);
        }
        let started = Instant::now();
        // The member's wait bounds the round; `fetch.max.wait.ms` bounds the broker's hold.
        let hold = wait.min(self.settings.max_wait);
        let (routes, mut unsettled) = self.route(positions, &mut out).await?;
        let brokers = routes.len();
        let mut tasks = JoinSet::new();
        for (addr, partitions) in routes {
            let cluster = self.cluster.clone();
            let settings = self.settings;
            tasks.spawn(async move {
                let answer = fetch_from(&cluster, &settings, &addr, &partitions, hold).await;
                (addr, partitions, answer)
            });
        }
        let mut failed = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let (addr, partitions, answer) = joined.unwrap_or_else(resume);
            match answer {
                Ok(response) => {
                    unsettled |= self.take(response, &partitions, &mut out);
                }
                Err(error) if error.is_retriable() => {
                    tracing::debug!(broker = %addr, %error, "fetch failed; its partitions wait for fresh metadata");
                    self.invalidate(partitions.iter().map(|(tp, _)| tp.topic.as_str()));
                    unsettled = true;
                    failed.push(error);
                }
                // Not for this round only: a broker too old, a refusal of the whole request.
                Err(error) => return Err(error),
            }
        }
        if brokers > 0 && failed.len() == brokers {
            return Err(failed.swap_remove(0));
        }
        if unsettled && out.records.is_empty() {
            tokio::time::sleep_until(started + RETRY_BACKOFF.min(wait)).await;
        }
        Ok(out)
    }

    /// Groups `positions` by the address of their leader. Partitions without a known leader
    /// are left out and their topics invalidated (answered `true`); those of a topic the
    /// metadata refuses for good (not authorised, invalid name) are stalled in `out`.
    async fn route(
        &self,
        positions: Vec<(TopicPartition, i64)>,
        out: &mut Fetched,
    ) -> Result<(Routes, bool)> {
        let topics: BTreeSet<&str> = positions.iter().map(|(tp, _)| tp.topic.as_str()).collect();
        let topics: Vec<String> = topics.into_iter().map(str::to_owned).collect();
        let metadata = self.cluster.metadata(&topics, METADATA_MAX_AGE).await?;
        let mut routes = Routes::new();
        let mut leaderless = BTreeSet::new();
        for (tp, position) in positions {
            let topic = metadata.get(&tp.topic);
            if let Some(error) = topic
                .map(|t| t.error)
                .filter(|e| *e != KafkaCode::NONE && !e.is_retriable())
            {
                let reason = format!("metadata of the topic: {error}");
                out.stalled
                    .push(StalledPartition::new(tp, position, reason));
                continue;
            }
            let leader = topic
                .filter(|t| t.error == KafkaCode::NONE)
                .and_then(|t| t.leaders.get(&tp.partition).copied().flatten())
                .and_then(|id| self.cluster.broker(id));
            match leader {
                Some(addr) => routes.entry(addr).or_default().push((tp, position)),
                None => {
                    tracing::debug!(topic = %tp.topic, partition = tp.partition, "no leader known; asking the metadata again");
                    leaderless.insert(tp.topic);
                }
            }
        }
        self.invalidate(leaderless.iter().map(String::as_str));
        Ok((routes, !leaderless.is_empty()))
    }

    /// Moves what `response` holds for the `requested` partitions into `out`; answers whether
    /// a partition was left out for fresh metadata.
    fn take(
        &self,
        response: FetchResponse,
        requested: &[(TopicPartition, i64)],
        out: &mut Fetched,
    ) -> bool {
        let positions: HashMap<(&str, i32), i64> = requested
            .iter()
            .map(|(tp, position)| ((tp.topic.as_str(), tp.partition), *position))
            .collect();
        let mut moved = BTreeSet::new();
        for topic in response.responses {
            let name = topic.topic.0.as_str();
            for partition in topic.partitions {
                let Some(&position) = positions.get(&(name, partition.partition_index)) else {
                    continue; // not asked for this round
                };
                let tp = TopicPartition::new(name, partition.partition_index);
                match KafkaCode::new(partition.error_code) {
                    KafkaCode::NONE => {
                        out.high_watermarks
                            .push((tp.clone(), partition.high_watermark));
                        self.read(tp, position, &partition, out);
                    }
                    KafkaCode::OFFSET_OUT_OF_RANGE => out.out_of_range.push(tp),
                    code if code.is_retriable() => {
                        tracing::debug!(topic = name, partition = tp.partition, %code, "fetch answered a retriable error; asking the metadata again");
                        moved.insert(name.to_owned());
                    }
                    code => out
                        .stalled
                        .push(StalledPartition::new(tp, position, code.to_string())),
                }
            }
        }
        self.invalidate(moved.iter().map(String::as_str));
        !moved.is_empty()
    }

    /// Decodes the records of one partition's answer (fetched at `position`) into `out`.
    fn read(
        &self,
        tp: TopicPartition,
        position: i64,
        partition: &PartitionData,
        out: &mut Fetched,
    ) {
        let Some(data) = partition.records.as_ref().filter(|d| !d.is_empty()) else {
            return;
        };
        let aborted: Option<Vec<(i64, i64)>> = match self.settings.isolation {
            Isolation::ReadUncommitted => None,
            Isolation::ReadCommitted => Some(
                partition
                    .aborted_transactions
                    .iter()
                    .flatten()
                    .map(|a| (a.producer_id.0, a.first_offset))
                    .collect(),
            ),
        };
        let decoded = match decode_readable(data, position, aborted.as_deref()) {
            Ok(decoded) => decoded,
            Err(e) => {
                out.stalled
                    .push(StalledPartition::new(tp, position, e.to_string()));
                return;
            }
        };
        if decoded.records.is_empty() {
            // Only control records, aborted ones, or records below the position (compacted
            // away or in a batch that starts earlier): move past them. With records, the
            // position moves past the last of them and the next round sees the rest, so a
            // skip never reaches beyond a record of the same answer.
            if let Some(next) = decoded.next_offset.filter(|next| *next > position) {
                out.skipped_to.push((tp, next));
            }
            return;
        }
        out.records.extend(decoded.records.into_iter().map(|r| {
            Record {
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset: r.offset,
                key: r.key.map(|k| k.to_vec()),
                value: r.value.to_vec(),
                headers: r
                    .headers
                    .into_iter()
                    .map(|(key, value)| Header { key, value })
                    .collect(),
            }
        }));
    }

    /// Forgets the metadata of `topics`.
    fn invalidate<'a>(&self, topics: impl IntoIterator<Item = &'a str>) {
        for topic in topics.into_iter().collect::<BTreeSet<_>>() {
            self.cluster.invalidate(topic);
        }
    }

    /// [`list_offsets_once`](Self::list_offsets_once), again after a retriable failure.
    async fn list_offsets_retrying(
        &self,
        topics: Vec<String>,
        reset: OffsetReset,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        if topics.is_empty() {
            return Ok(BTreeMap::new());
        }
        let timestamp = match reset {
            OffsetReset::Earliest => EARLIEST_TIMESTAMP,
            OffsetReset::Latest => LATEST_TIMESTAMP,
        };
        let mut attempt = 0;
        loop {
            match self.list_offsets_once(&topics, timestamp).await {
                Err(error) if error.is_retriable() && attempt + 1 < LIST_OFFSETS_ATTEMPTS => {
                    let backoff = LIST_OFFSETS_BACKOFF * (1 << attempt);
                    tracing::debug!(?topics, %error, ?backoff, "list offsets failed; trying again");
                    self.invalidate(topics.iter().map(String::as_str));
                    tokio::time::sleep(backoff).await;
                    attempt += 1;
                }
                answer => return answer,
            }
        }
    }

    /// The offsets at `timestamp` of every partition of `topics`: one ListOffsets per leader,
    /// brokers at once, routed by fresh metadata.
    async fn list_offsets_once(
        &self,
        topics: &[String],
        timestamp: i64,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let metadata = self.cluster.metadata(topics, Duration::ZERO).await?;
        let mut routes: BTreeMap<String, Vec<TopicPartition>> = BTreeMap::new();
        for topic in topics {
            let op = || format!("list offsets of {topic}");
            let found = metadata.get(topic).ok_or_else(|| {
                Error::transport(op(), "the broker did not answer for the topic", true)
            })?;
            if found.error != KafkaCode::NONE {
                return Err(Error::kafka(op(), found.error.code()));
            }
            for (&partition, leader) in &found.leaders {
                let tp = TopicPartition::new(topic.as_str(), partition);
                let addr = leader
                    .and_then(|id| self.cluster.broker(id))
                    .ok_or_else(|| {
                        Error::transport(
                            format!("list offsets of {tp}"),
                            "the partition has no leader",
                            true,
                        )
                    })?;
                routes.entry(addr).or_default().push(tp);
            }
        }
        let mut tasks = JoinSet::new();
        for (addr, partitions) in routes {
            let cluster = self.cluster.clone();
            let settings = self.settings;
            tasks.spawn(async move {
                list_offsets_from(&cluster, &addr, &partitions, timestamp, &settings).await
            });
        }
        let mut offsets = BTreeMap::new();
        while let Some(joined) = tasks.join_next().await {
            offsets.extend(joined.unwrap_or_else(resume)?);
        }
        Ok(offsets)
    }
}

impl PartitionReader for NativeFetcher {
    fn fetch(
        &self,
        positions: Vec<(TopicPartition, i64)>,
        wait: Duration,
    ) -> BoxFuture<'_, Result<Fetched>> {
        Box::pin(self.fetch_round(positions, wait))
    }

    fn list_offsets(
        &self,
        topics: Vec<String>,
        reset: OffsetReset,
    ) -> BoxFuture<'_, Result<BTreeMap<TopicPartition, i64>>> {
        Box::pin(self.list_offsets_retrying(topics, reset))
    }
}

/// A task of a round ended without its answer: it panicked (go on panicking here), or the
/// runtime is shutting down.
fn resume<T>(e: JoinError) -> T {
    match e.try_into_panic() {
        Ok(panic) => std::panic::resume_unwind(panic),
        Err(e) => panic!("a fetch task ended without an answer: {e}"),
    }
}

/// Sends one Fetch of `partitions` to the broker at `addr`, which the broker may hold up to
/// `wait` for data.
///
/// # Errors
///
/// The broker could not be reached or did not answer (retriable), speaks no Fetch between
/// v4 and v12 (not retriable), or refused the whole request (its top-level error code).
async fn fetch_from(
    cluster: &Cluster,
    settings: &FetchSettings,
    addr: &str,
    partitions: &[(TopicPartition, i64)],
    wait: Duration,
) -> Result<FetchResponse> {
    let conn = cluster.connection(addr, Purpose::Fetch).await?;
    let version = fetch_version(&conn)?;
    let request = fetch_request(settings, partitions, wait);
    let response: FetchResponse = conn
        .call(
            ApiKey::Fetch,
            version,
            &request,
            Some(wait.saturating_add(settings.request_timeout)),
        )
        .await?;
    if response.error_code != KafkaCode::NONE.code() {
        return Err(Error::kafka(
            format!("fetch from broker {addr}"),
            response.error_code,
        ));
    }
    Ok(response)
}

/// The highest Fetch version both `conn`'s broker and this reader speak.
fn fetch_version(conn: &Connection) -> Result<i16> {
    let range = conn.broker_range(ApiKey::Fetch);
    negotiate(range, FETCH_MIN, FETCH_MAX).ok_or_else(|| {
        let broker = range.map_or_else(|| "none".to_owned(), |r| format!("{}..={}", r.min, r.max));
        Error::transport(
            format!("fetch from broker {}", conn.addr()),
            format!(
                "no common Fetch version: the broker speaks {broker}, this client \
                 {FETCH_MIN}..={FETCH_MAX} (Kafka 0.11 or later)"
            ),
            false,
        )
    })
}

/// A full Fetch (no fetch session) of `partitions`, each from its position.
fn fetch_request(
    settings: &FetchSettings,
    partitions: &[(TopicPartition, i64)],
    wait: Duration,
) -> FetchRequest {
    let mut by_topic: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
    for (tp, position) in partitions {
        by_topic.entry(tp.topic.as_str()).or_default().push(
            FetchPartition::default()
                .with_partition(tp.partition)
                .with_fetch_offset(*position)
                .with_partition_max_bytes(settings.partition_max_bytes)
                .with_current_leader_epoch(-1)
                .with_log_start_offset(-1),
        );
    }
    let topics = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            FetchTopic::default()
                .with_topic(TopicName(sb(topic)))
                .with_partitions(partitions)
        })
        .collect();
    FetchRequest::default()
        .with_replica_id(CONSUMER_REPLICA_ID)
        .with_max_wait_ms(i32::try_from(wait.as_millis()).unwrap_or(i32::MAX))
        .with_min_bytes(settings.min_bytes)
        .with_max_bytes(settings.max_bytes)
        .with_isolation_level(isolation_level(settings.isolation))
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

/// [`batch::decode`] of one partition's `data` from `from`, keeping what precedes a batch
/// that does not decode: its records come back now, and the next round starts at the bad
/// batch, so the partition stalls at the first offset it could not read rather than before
/// records it could. The error comes back only when nothing before the bad batch moves the
/// position.
fn decode_readable(
    data: &Bytes,
    from: i64,
    aborted: Option<&[(i64, i64)]>,
) -> std::result::Result<Decoded, BatchError> {
    let error = match batch::decode(data, from, aborted) {
        Ok(decoded) => return Ok(decoded),
        Err(error) => error,
    };
    // Decoding reads batches in order and stops at the first bad one, so if a run of whole
    // batches fails, every longer run fails too: the longest that decodes is found by bisection.
    let ends = batch_ends(data);
    let (mut lo, mut hi) = (0, ends.len());
    let mut readable = None;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match batch::decode(&data.slice(..ends[mid]), from, aborted) {
            Ok(decoded) => {
                readable = Some(decoded);
                lo = mid + 1;
            }
            Err(_) => hi = mid,
        }
    }
    match readable {
        Some(decoded)
            if !decoded.records.is_empty() || decoded.next_offset.is_some_and(|n| n > from) =>
        {
            Ok(decoded)
        }
        _ => Err(error),
    }
}

/// The end of each whole batch in `data`, as the batches' length fields frame them.
fn batch_ends(data: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut at = 0usize;
    while let Some(overhead) = data
        .get(at..)
        .and_then(|rest| rest.first_chunk::<LOG_OVERHEAD>())
    {
        let length = i32::from_be_bytes([overhead[8], overhead[9], overhead[10], overhead[11]]);
        let end = usize::try_from(length)
            .ok()
            .and_then(|length| (at + LOG_OVERHEAD).checked_add(length))
            .filter(|end| *end <= data.len());
        let Some(end) = end else { break };
        ends.push(end);
        at = end;
    }
    ends
}

/// Sends one ListOffsets of `partitions` at `timestamp` to the broker at `addr`; answers each
/// partition's offset.
///
/// # Errors
///
/// The broker could not be reached, answered a partition with an error (naming it), or left
/// one out.
async fn list_offsets_from(
    cluster: &Cluster,
    addr: &str,
    partitions: &[TopicPartition],
    timestamp: i64,
    settings: &FetchSettings,
) -> Result<Vec<(TopicPartition, i64)>> {
    let conn = cluster.connection(addr, Purpose::Normal).await?;
    let version = conn.version::<ListOffsetsRequest>(ApiKey::ListOffsets)?;
    let mut by_topic: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(tp.topic.as_str()).or_default().push(
            ListOffsetsPartition::default()
                .with_partition_index(tp.partition)
                .with_current_leader_epoch(-1)
                .with_timestamp(timestamp),
        );
    }
    let mut request = ListOffsetsRequest::default()
        .with_replica_id(CONSUMER_REPLICA_ID)
        .with_topics(
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    ListOffsetsTopic::default()
                        .with_name(TopicName(sb(topic)))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    if version >= 2 {
        request.isolation_level = isolation_level(settings.isolation);
    }
    if version >= 10 {
        request.timeout_ms =
            i32::try_from(settings.request_timeout.as_millis()).unwrap_or(i32::MAX);
    }
    let response: ListOffsetsResponse = conn
        .call(ApiKey::ListOffsets, version, &request, None)
        .await?;
    let mut answered: HashMap<(&str, i32), i64> = HashMap::new();
    for topic in &response.topics {
        for p in &topic.partitions {
            let key = (topic.name.0.as_str(), p.partition_index);
            if p.error_code != KafkaCode::NONE.code() {
                return Err(Error::kafka(
                    format!("list offsets of {}[{}] on broker {addr}", key.0, key.1),
                    p.error_code,
                ));
            }
            answered.insert(key, p.offset);
        }
    }
    partitions
        .iter()
        .map(|tp| {
            let offset = answered
                .get(&(tp.topic.as_str(), tp.partition))
                .copied()
                .ok_or_else(|| {
                    Error::transport(
                        format!("list offsets of {tp} on broker {addr}"),
                        "the broker did not answer for the partition",
                        true,
                    )
                })?;
            Ok((tp.clone(), offset))
        })
        .collect()
}

#[cfg(test)]
mod tests;

//! The brokers of one cluster as one client sees them: a connection per broker and purpose,
//! opened when first needed and again, after a backoff, when it broke; the coordinator of a
//! group; and the cluster's metadata (brokers, and each topic's partitions with their leaders),
//! asked without creating topics and kept in a cache that each read says how old it may
//! take it (group leaders and admin helpers read fresh; the native producer will not).
//!
//! A client is one group member or one admin task: like the Java client, each has a
//! `Cluster` of its own, so one member's long JoinGroup never waits behind another's.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex as SyncMutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, MetadataRequest, MetadataResponse,
    TopicName,
};
use tokio::sync::Mutex;

use super::{Connection, Security, sb};
use crate::{Error, KafkaCode, Result};

/// The first wait before connecting to a broker again after a failed attempt; each further
/// failure doubles it up to [`BACKOFF_MAX`] (the Java client's `reconnect.backoff.ms` and
/// `reconnect.backoff.max.ms`).
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Between FindCoordinator attempts while the coordinator is not available yet.
const COORDINATOR_RETRY: Duration = Duration::from_millis(200);
/// How long [`Cluster::ask_any`] waits on one broker before asking the next one too. A
/// healthy broker answers Metadata and FindCoordinator in milliseconds; one that hangs
/// would otherwise hold every metadata read for a whole request timeout.
const HEDGE: Duration = Duration::from_secs(1);

/// What a connection is for. A broker serves the requests of one connection one at a time,
/// so requests that may wait long (a JoinGroup waits for the rebalance) get a connection of
/// their own, and metadata or admin requests are never held up behind them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Purpose {
    /// Metadata, FindCoordinator, admin and offset reads.
    Normal,
    /// The group coordinator: JoinGroup, SyncGroup, Heartbeat, OffsetCommit, LeaveGroup.
    Group,
    /// Fetch long-polls, which the broker holds up to their wait.
    #[cfg(feature = "native")]
    Fetch,
    /// Produce requests, pipelined up to the producer's in-flight limit.
    #[cfg(feature = "native")]
    Produce,
}

/// One topic as the metadata last described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicMetadata {
    /// The topic-level error: `UNKNOWN_TOPIC_OR_PARTITION` for a topic that does not exist.
    pub(crate) error: KafkaCode,
    /// Partition → its leader's node id, `None` while it has none.
    pub(crate) leaders: BTreeMap<i32, Option<i32>>,
}

impl TopicMetadata {
    /// Whether the topic exists and every partition has a leader (a topic being created has
    /// partitions without one for a moment).
    pub(crate) fn is_ready(&self) -> bool {
        self.error == KafkaCode::NONE
            && !self.leaders.is_empty()
            && self.leaders.values().all(Option::is_some)
    }
}

/// The brokers of one cluster. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Cluster {
    bootstrap: Vec<String>,
    client_id: String,
    timeout: Duration,
    security: Security,
    slots: SyncMutex<HashMap<(String, Purpose), SharedSlot>>,
    cache: SyncMutex<Cache>,
}

/// A [`Slot`] that callers wanting the same connection take turns at.
type SharedSlot = Arc<Mutex<Slot>>;

/// One broker connection of one purpose, and how its recent attempts went.
#[derive(Debug, Default)]
struct Slot {
    conn: Option<Arc<Connection>>,
    /// Connection attempts that failed in a row.
    failures: u32,
    /// On the timer's clock, as the backoff sleeps are (tests pause it).
    last_attempt: Option<tokio::time::Instant>,
}

#[derive(Debug, Default)]
struct Cache {
    /// Node id → `host:port`, from the last metadata answer.
    brokers: BTreeMap<i32, String>,
    /// Topic → when it was read, and what was read.
    topics: HashMap<String, (Instant, Arc<TopicMetadata>)>,
    /// The broker that gave the last Metadata answer: asked first next time.
    answered: Option<String>,
}

/// The wait before the next connection attempt after `failures` failed ones.
fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    BACKOFF_MIN
        .saturating_mul(1 << (failures - 1).min(16))
        .min(BACKOFF_MAX)
}

impl Cluster {
    /// The cluster reached through `bootstrap` (`host:port` each); connects to nothing yet.
    pub(crate) fn new(bootstrap: &[String], client_id: &str, timeout: Duration) -> Self {
        Cluster {
            bootstrap: bootstrap.to_vec(),
            client_id: client_id.to_owned(),
            timeout,
            security: Security::default(),
            slots: SyncMutex::default(),
            cache: SyncMutex::default(),
        }
    }

    /// This cluster, with every connection secured as `security` says.
    pub(crate) fn with_security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection to `addr` for `purpose`: the open one, or a new one if there is none
    /// or it broke. After failed attempts the next one waits its [`backoff`] first; callers
    /// asking at once share one attempt.
    ///
    /// # Errors
    ///
    /// The broker could not be reached (retriable) or did not negotiate.
    pub(crate) async fn connection(&self, addr: &str, purpose: Purpose) -> Result<Arc<Connection>> {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((addr.to_owned(), purpose))
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some(conn) = slot.conn.as_ref().filter(|c| c.is_usable()) {
            return Ok(conn.clone());
        }
        if let Some(old) = slot.conn.take() {
            if old.is_broken() {
                tracing::debug!(
                    broker = addr,
                    ?purpose,
                    "connection broken; connecting again"
                );
            } else {
                tracing::debug!(
                    broker = addr,
                    ?purpose,
                    "authenticated session ends soon; connecting again to re-authenticate"
                );
            }
        }
        if let Some(last) = slot.last_attempt {
            let wait = backoff(slot.failures).saturating_sub(last.elapsed());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        slot.last_attempt = Some(tokio::time::Instant::now());
        match Connection::connect(addr, &self.client_id, self.timeout, &self.security).await {
            Ok(conn) => {
                slot.failures = 0;
                let conn = Arc::new(conn);
                slot.conn = Some(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                slot.failures = slot.failures.saturating_add(1);
                Err(e)
            }
        }
    }

    /// A connection to any broker for requests any broker answers: the bootstrap brokers
    /// first, in order, then those the metadata named.
    ///
    /// # Errors
    ///
    /// No broker could be reached: the last broker's error.
    pub(crate) async fn any(&self) -> Result<Arc<Connection>> {
        let known: Vec<String> = self.cache().brokers.values().cloned().collect();
        let mut last = None;
        for addr in self.bootstrap.iter().chain(&known) {
            match self.connection(addr, Purpose::Normal).await {
                Ok(conn) => return Ok(conn),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::transport("connect to the brokers", "no brokers", false)))
    }

    /// The address of node `id`, as the metadata last named it.
    pub(crate) fn broker(&self, id: i32) -> Option<String> {
        self.cache().brokers.get(&id).cloned()
    }

    /// The metadata of `topics`, read from the cache where it is younger than `max_age`,
    /// else asked for in one Metadata request that creates no topic. A topic the broker does
    /// not know is answered with its error (`UNKNOWN_TOPIC_OR_PARTITION`), not left out.
    ///
    /// # Errors
    ///
    /// No broker answered, or the broker lacks Metadata v4 (Kafka 0.11), the first version
    /// that can ask not to create topics.
    pub(crate) async fn metadata(
        &self,
        topics: &[String],
        max_age: Duration,
    ) -> Result<BTreeMap<String, Arc<TopicMetadata>>> {
        let stale: Vec<String> = {
            let cache = self.cache();
            topics
                .iter()
                .filter(|t| {
                    cache
                        .topics
                        .get(*t)
                        .is_none_or(|(read, _)| read.elapsed() >= max_age)
                })
                .cloned()
                .collect()
        };
        if !stale.is_empty() {
            let response = self.ask_metadata(&stale, false).await?;
            self.remember(&response);
        }
        let cache = self.cache();
        Ok(topics
            .iter()
            .filter_map(|t| Some((t.clone(), cache.topics.get(t)?.1.clone())))
            .collect())
    }

    /// The partition count of `topic`, asking with topic creation on, so that a broker with
    /// `auto.create.topics.enable` creates a missing topic, as the Java producer does; waits
    /// until every partition has a leader, until `deadline`.
    ///
    /// # Errors
    ///
    /// No broker answered, the broker refused the topic, or it had no leaders by `deadline`.
    #[cfg(feature = "native")]
    pub(crate) async fn partition_count_creating(
        &self,
        topic: &str,
        deadline: Instant,
    ) -> Result<i32> {
        let topics = [topic.to_owned()];
        loop {
            let response = self.ask_metadata(&topics, true).await?;
            self.remember(&response);
            let found = self.cache().topics.get(topic).map(|(_, t)| t.clone());
            let last = match found {
                Some(t) if t.is_ready() => return Ok(t.leaders.len() as i32),
                Some(t) if t.error != KafkaCode::NONE && !t.error.is_retriable() => {
                    return Err(Error::kafka(format!("metadata of {topic}"), t.error.code()));
                }
                Some(t) if t.error != KafkaCode::NONE => t.error.to_string(),
                _ => "partitions without a leader".to_owned(),
            };
            if Instant::now() >= deadline {
                return Err(Error::transport(format!("metadata of {topic}"), last, true));
            }
            tokio::time::sleep(COORDINATOR_RETRY).await;
        }
    }

    /// What `ask` answers of the first broker that answers it: the broker that answered
    /// last, then the bootstrap brokers, then those the metadata named. A broker that fails
    /// (cannot be reached, or does not answer within the request timeout) is passed over for
    /// the next; one that has not answered within [`HEDGE`] is left asking while the next is
    /// asked too, so that metadata (a moved leader) and coordinators are found within about
    /// a second while a broker hangs.
    ///
    /// # Errors
    ///
    /// A broker refused for good (returned at once), or none answered: the last error.
    async fn ask_any<T, F, Fut>(&self, ask: F) -> Result<T>
    where
        F: Fn(Arc<Connection>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let (preferred, known) = {
            let cache = self.cache();
            let known: Vec<String> = cache.brokers.values().cloned().collect();
            (cache.answered.clone(), known)
        };
        let mut seen = HashSet::new();
        let order: Vec<String> = preferred
            .iter()
            .chain(&self.bootstrap)
            .chain(&known)
            .filter(|addr| seen.insert(addr.as_str()))
            .cloned()
            .collect();
        let attempt = |addr: &String| {
            let (ask, addr) = (&ask, addr.clone());
            Box::pin(async move {
                let asked = match self.connection(&addr, Purpose::Normal).await {
                    Ok(conn) => ask(conn).await,
                    Err(e) => Err(e),
                };
                (addr, asked)
            })
        };
        let mut next = order.iter();
        let mut asking = Vec::new();
        let mut last = None;
        loop {
            if asking.is_empty() {
                let Some(addr) = next.next() else { break };
                asking.push(attempt(addr));
            }
            let more = next.len() > 0;
            let step = tokio::select! {
                answer = first_of(&mut asking) => Some(answer),
                () = tokio::time::sleep(HEDGE), if more => None,
            };
            match step {
                Some((addr, Ok(answer))) => {
                    self.cache().answered = Some(addr);
                    return Ok(answer);
                }
                Some((addr, Err(e))) if e.is_retriable() => {
                    tracing::debug!(broker = %addr, error = %e, "no answer; asking the next broker");
                    last = Some(e);
                    if let Some(addr) = next.next() {
                        asking.push(attempt(addr));
                    }
                }
                Some((_, Err(e))) => return Err(e),
                None => {
                    let addr = next.next().expect("more brokers to ask");
                    tracing::debug!(broker = %addr, "no answer yet; asking this broker too");
                    asking.push(attempt(addr));
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::transport("connect to the brokers", "no brokers", false)))
    }

    /// A Metadata answer for `topics` from any broker ([`ask_any`](Self::ask_any)).
    async fn ask_metadata(&self, topics: &[String], create: bool) -> Result<MetadataResponse> {
        self.ask_any(|conn| async move { metadata_request(&conn, topics, create).await })
            .await
    }

    /// Puts what a Metadata answer says into the cache.
    fn remember(&self, response: &MetadataResponse) {
        let now = Instant::now();
        let mut cache = self.cache();
        cache.brokers = response
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        for t in &response.topics {
            let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            let leaders = t
                .partitions
                .iter()
                .map(|p| {
                    (
                        p.partition_index,
                        (p.leader_id.0 >= 0).then_some(p.leader_id.0),
                    )
                })
                .collect();
            let topic = TopicMetadata {
                error: KafkaCode::new(t.error_code),
                leaders,
            };
            cache.topics.insert(name, (now, Arc::new(topic)));
        }
    }

    /// Forgets what the metadata said of `topic`: its next read asks the broker (after a
    /// `NOT_LEADER_OR_FOLLOWER`, an `UNKNOWN_TOPIC_OR_PARTITION` or a lost leader).
    #[cfg(feature = "native")]
    pub(crate) fn invalidate(&self, topic: &str) {
        self.cache().topics.remove(topic);
    }

    /// The partition counts of those of `topics` that exist and whose partitions all have a
    /// leader, read fresh.
    ///
    /// Topics the broker does not know, or answers for with an error (not authorised, invalid
    /// name, still being created), are left out: a group assigns what exists and rebalances
    /// when the rest appears, as the Java client does.
    ///
    /// # Errors
    ///
    /// As [`metadata`](Self::metadata).
    pub(crate) async fn partition_counts(
        &self,
        topics: &[String],
    ) -> Result<BTreeMap<String, i32>> {
        if topics.is_empty() {
            // An empty list asks for every topic; nothing to ask here.
            return Ok(BTreeMap::new());
        }
        Ok(self
            .metadata(topics, Duration::ZERO)
            .await?
            .into_iter()
            .filter(|(_, t)| t.is_ready())
            .map(|(name, t)| (name, t.leaders.len() as i32))
            .collect())
    }

    /// Partition → its leader's address (`None` while it has none) of `topic`, read fresh.
    ///
    /// # Errors
    ///
    /// As [`metadata`](Self::metadata), or the broker's error for the topic
    /// (`UNKNOWN_TOPIC_OR_PARTITION` when it does not exist).
    pub(crate) async fn leaders(&self, topic: &str) -> Result<BTreeMap<i32, Option<String>>> {
        let op = format!("metadata of {topic}");
        let metadata = self.metadata(&[topic.to_owned()], Duration::ZERO).await?;
        let found = metadata.get(topic).ok_or_else(|| {
            Error::transport(&op, "the broker did not answer for the topic", true)
        })?;
        if found.error != KafkaCode::NONE {
            return Err(Error::kafka(op, found.error.code()));
        }
        Ok(found
            .leaders
            .iter()
            .map(|(p, leader)| (*p, leader.and_then(|id| self.broker(id))))
            .collect())
    }

    /// A connection to the coordinator of `group`, found with FindCoordinator; retried while
    /// the coordinator is not available yet (a new group's offsets partition may still be
    /// loading) until `deadline`.
    ///
    /// # Errors
    ///
    /// A refusal that retrying cannot mend, or none answered by `deadline`.
    pub(crate) async fn coordinator(
        &self,
        group: &str,
        deadline: Instant,
    ) -> Result<Arc<Connection>> {
        let op = format!("find coordinator of group {group}");
        loop {
            let last = match self.find_coordinator(group).await {
                Ok(addr) => match self.connection(&addr, Purpose::Group).await {
                    Ok(conn) => return Ok(conn),
                    Err(e) => e,
                },
                Err(e) if e.is_retriable() => e,
                Err(e) => return Err(e),
            };
            if Instant::now() >= deadline {
                return Err(Error::transport(op, last, true));
            }
            tokio::time::sleep(COORDINATOR_RETRY).await;
        }
    }

    /// Asks any broker where the coordinator of `group` is; answers its `host:port`.
    async fn find_coordinator(&self, group: &str) -> Result<String> {
        let (version, response) = self
            .ask_any(|conn| async move {
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
                Ok((version, response))
            })
            .await?;
        let (code, host, port) = if version >= 4 {
            let c = response.coordinators.first().ok_or_else(|| {
                Error::transport("FindCoordinator", "empty coordinator list", true)
            })?;
            (c.error_code, c.host.to_string(), c.port)
        } else {
            (
                response.error_code,
                response.host.to_string(),
                response.port,
            )
        };
        if code != 0 {
            return Err(Error::kafka(
                format!("find coordinator of group {group}"),
                code,
            ));
        }
        Ok(format!("{host}:{port}"))
    }
}

/// The Metadata of `topics` (not empty), asked so that no topic is created unless `create`.
async fn metadata_request(
    conn: &Connection,
    topics: &[String],
    create: bool,
) -> Result<MetadataResponse> {
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
        .with_allow_auto_topic_creation(create);
    conn.call(ApiKey::Metadata, version, &request, None).await
}

/// The output of whichever of `futures` finishes first, which is taken out of the list.
/// Pending forever on an empty list.
async fn first_of<F: Future + Unpin>(futures: &mut Vec<F>) -> F::Output {
    std::future::poll_fn(|cx| {
        for i in 0..futures.len() {
            if let std::task::Poll::Ready(out) = std::pin::Pin::new(&mut futures[i]).poll(cx) {
                drop(futures.swap_remove(i));
                return std::task::Poll::Ready(out);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests;

//! Transports: the one trait every backend implements, and the backends.
//!
//! The runtime (producer, consumer runner, manager) talks only to [`Transport`] and
//! [`GroupMember`]; a backend turns their calls into Kafka requests, or into operations on
//! in-process partitions for the [`memory`] backend.
//!
//! # Contract
//!
//! - [`Transport::produce`] resolves only after the broker acknowledged the record (with the
//!   backend's `acks` setting); an error means the record may not have been written.
//! - A [`GroupMember`] owns the partitions of its latest assignment and no others. Before it
//!   takes part in a new rebalance it reports [`Polled::Revoked`] and waits for the next
//!   [`GroupMember::poll`], so the runner can finish and commit in-flight work first.
//! - [`GroupMember::commit`] is fenced by generation: a member that lost a partition gets
//!   [`Error::Fenced`] instead of overwriting the new owner's offsets.

#[cfg(any(feature = "kafka", feature = "native"))]
pub mod admin;
#[cfg(feature = "confluent")]
pub mod confluent;
#[cfg(any(feature = "kafka", feature = "native"))]
pub(crate) mod connection; // pub(crate) for the fuzz entry points (feature `fuzzing`)
#[cfg(any(feature = "kafka", feature = "confluent", feature = "native"))]
pub mod detect;
#[cfg(any(feature = "kafka", feature = "native"))]
pub(crate) mod group; // pub(crate) for the fuzz entry points (feature `fuzzing`)
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod memory;
#[cfg(feature = "native")]
pub mod native;
#[cfg(any(feature = "kafka", feature = "confluent", feature = "native"))]
mod partition_counts;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::{Error, Result};

pub use crate::options::{Acks, Compression, Isolation, OffsetReset};
pub use crate::security::{
    SaslMechanism, SaslOptions, Secret, StaticToken, TlsOptions, Token, TokenProvider,
};

/// A boxed future borrowing its transport.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A topic and one of its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The real topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic` partition `partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.topic, self.partition)
    }
}

/// A record read from a partition.
///
/// Build one with [`Record::new`] (and [`Record::with_headers`]); more fields may come, so
/// it cannot be built field by field outside this crate.
///
/// # Examples
///
/// ```
/// use godev_kafka::transport::{Header, Record};
///
/// let record = Record::new("orders", 2, 41, Some(b"order-7".to_vec()), b"{}".to_vec())
///     .with_headers([Header::new("trace-id", "4bf92f35"), Header::null("retry")]);
/// assert_eq!((record.partition, record.offset), (2, 41));
/// assert_eq!(record.headers[0].value.as_deref(), Some(&b"4bf92f35"[..]));
/// assert_eq!(record.headers[1].value, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Record {
    /// The real topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset within the partition.
    pub offset: i64,
    /// The key, if any.
    pub key: Option<Vec<u8>>,
    /// The value.
    pub value: Vec<u8>,
    /// The record's headers, in the order they were written; a key may repeat. Empty on the
    /// `kafka` backend (its protocol has no headers) and for the memory backend's records.
    pub headers: Vec<Header>,
}

impl Record {
    /// The record at `offset` of `topic` partition `partition`, without headers.
    pub fn new(
        topic: impl Into<String>,
        partition: i32,
        offset: i64,
        key: Option<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            topic: topic.into(),
            partition,
            offset,
            key,
            value: value.into(),
            headers: Vec::new(),
        }
    }

    /// The record with `headers` (in their order) instead of the ones it had.
    pub fn with_headers(mut self, headers: impl IntoIterator<Item = Header>) -> Self {
        self.headers = headers.into_iter().collect();
        self
    }
}

/// A Kafka record header: a key and a value that may be null.
///
/// A record holds its headers as a list, in the order the producer wrote them: a key may
/// appear more than once, and a null value (`None`) is not the same as an empty one
/// (`Some(vec![])`). Keys are strings; the `native` backend reads a key that is not UTF-8 with
/// each invalid sequence replaced by U+FFFD.
///
/// Header values may carry credentials or personal data: the framework never logs them.
///
/// # Examples
///
/// ```
/// use godev_kafka::transport::Header;
///
/// let trace = Header::new("traceparent", "00-4bf92f3577b34da6-00f067aa0ba902b7-01");
/// assert_eq!(trace.key, "traceparent");
/// assert!(trace.value.is_some());
/// assert_eq!(Header::null("deleted-by").value, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Header {
    /// The header's key.
    pub key: String,
    /// The header's value; `None` when the producer wrote a null value.
    pub value: Option<Vec<u8>>,
}

impl Header {
    /// A header `key` with the value `value`.
    pub fn new(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            value: Some(value.into()),
        }
    }

    /// A header `key` with a null value.
    pub fn null(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: None,
        }
    }
}

/// A record to write to one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRecord {
    /// The real topic.
    pub topic: String,
    /// The partition, chosen by the producer.
    pub partition: i32,
    /// The key, if any.
    pub key: Option<Vec<u8>>,
    /// The value.
    pub value: Vec<u8>,
}

/// A record a backend could not write, handed back with the reason, so that the producer
/// returns it to its caller ([`Error::Send`]) without having kept a copy.
///
/// # Examples
///
/// ```
/// use godev_kafka::Error;
/// use godev_kafka::transport::{OutgoingRecord, Unsent};
///
/// let record = OutgoingRecord {
///     topic: "orders".into(),
///     partition: 0,
///     key: None,
///     value: b"{}".to_vec(),
/// };
/// let unsent = Unsent::new(record, Error::Closed("producer"));
/// let Error::Send { value, .. } = Error::from(unsent) else { unreachable!() };
/// assert_eq!(value, b"{}");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Unsent {
    /// The record, as it was given to [`Transport::produce`].
    pub record: OutgoingRecord,
    /// Why it was not written.
    pub error: Error,
}

impl Unsent {
    /// `record`, not written because of `error`.
    pub fn new(record: OutgoingRecord, error: Error) -> Self {
        Unsent { record, error }
    }
}

impl From<Unsent> for Error {
    fn from(unsent: Unsent) -> Self {
        let Unsent { record, error } = unsent;
        Error::Send {
            topic: record.topic,
            key: record.key,
            value: record.value,
            source: Box::new(error),
        }
    }
}

/// How a member joins its group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupOptions {
    /// The consumer group id.
    pub group: String,
    /// The real topics to subscribe to.
    pub topics: Vec<String>,
    /// Where to start without a committed offset.
    pub offset_reset: OffsetReset,
    /// How long the coordinator waits for a heartbeat before it evicts the member.
    pub session_timeout: Duration,
    /// How often the member heartbeats.
    pub heartbeat_interval: Duration,
    /// How long a rebalance may wait for this member to rejoin.
    pub rebalance_timeout: Duration,
    /// A static member's identity (KIP-345, `group.instance.id`), unique in the group and
    /// kept across restarts; `None` for a dynamic member.
    ///
    /// A static member's leave sends no LeaveGroup, as the Java client's: its partitions stay
    /// its own until the session timeout, so a restarted process (a pod rolled, a deploy) that
    /// comes back with the same id within it gets them back with no rebalance. Partitions of
    /// one that does not come back move only after the session timeout: choose the timeout
    /// with that in mind.
    ///
    /// The classic protocol (the `kafka` and `native` backends) needs Kafka 2.3 or newer for
    /// it (JoinGroup v5): joining an older coordinator fails. There a second process with the
    /// same id takes the membership over, and the first stops with `FENCED_INSTANCE_ID`; it
    /// does not rejoin.
    pub group_instance_id: Option<String>,
}

impl GroupOptions {
    /// Options for `group` on `topics`, with Kafka's usual timeouts.
    pub fn new(group: impl Into<String>, topics: Vec<String>) -> Self {
        Self {
            group: group.into(),
            topics,
            offset_reset: OffsetReset::Earliest,
            session_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(3),
            rebalance_timeout: Duration::from_secs(30),
            group_instance_id: None,
        }
    }
}

/// What a [`GroupMember::poll`] brought.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Polled {
    /// Records from assigned partitions, each partition's in offset order.
    Records(Vec<Record>),
    /// The member now owns these partitions (its whole assignment).
    Assigned(Vec<TopicPartition>),
    /// The member is about to lose these partitions: finish and commit them, then poll again.
    Revoked(Vec<TopicPartition>),
    /// The member stopped reading these partitions: what is at their position cannot be
    /// read (an undecodable or corrupt batch, a partition error that retrying cannot mend).
    /// The other partitions go on; a stalled partition is read again once it is assigned
    /// anew (the next rebalance) or the consumer restarts.
    Stalled(Vec<StalledPartition>),
    /// Nothing arrived within the wait.
    Idle,
}

/// A partition its member stopped reading, and why. See [`Polled::Stalled`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StalledPartition {
    /// The partition.
    pub partition: TopicPartition,
    /// Its position: the offset of the first record that was not read.
    pub offset: i64,
    /// What the client said (never record content).
    pub reason: String,
}

impl StalledPartition {
    /// `partition`, stalled at `offset` for `reason`.
    pub fn new(partition: TopicPartition, offset: i64, reason: impl Into<String>) -> Self {
        Self {
            partition,
            offset,
            reason: reason.into(),
        }
    }
}

/// A backend: produce records, and join consumer groups.
pub trait Transport: Send + Sync + 'static {
    /// The number of partitions of `topic`, creating the topic the way the broker would
    /// (auto-creation) if it does not exist.
    fn partition_count<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<i32>>;

    /// Partition → end offset (the offset the next record will get) of `topic`.
    fn end_offsets<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<BTreeMap<i32, i64>>>;

    /// Creates `topic` with `partitions` partitions (the broker's default replication
    /// factor) over the backend's own, secured connections, and waits until every
    /// partition's leader answers. An existing topic is not an error and is left as it is
    /// (the memory backend grows it to `partitions`).
    fn create_topic<'a>(&'a self, topic: &'a str, partitions: i32) -> BoxFuture<'a, Result<()>>;

    /// Writes `record` and resolves with its offset once the broker acknowledged it (`-1`
    /// where acknowledgements are off).
    ///
    /// # Errors
    ///
    /// The record was not written (or not acknowledged): the backend hands it back in
    /// [`Unsent`] with the reason.
    fn produce(&self, record: OutgoingRecord) -> BoxFuture<'_, std::result::Result<i64, Unsent>>;

    /// Joins a consumer group.
    fn join(&self, options: GroupOptions) -> BoxFuture<'_, Result<Box<dyn GroupMember>>>;

    /// Waits until every record produced so far is acknowledged.
    fn flush(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Flushes, then releases the backend's clients; nothing should use the transport
    /// afterwards. [`Manager::close`](crate::Manager::close) calls it for a transport the
    /// manager made from a config. The default only flushes.
    fn close(&self) -> BoxFuture<'_, Result<()>> {
        self.flush()
    }

    /// A short name of the backend, for status and logs (`memory`, `kafka`, ...).
    fn name(&self) -> &'static str;

    /// The bootstrap addresses, for status.
    fn brokers(&self) -> Vec<String>;
}

/// A member of a consumer group, driven by one consumer runner.
pub trait GroupMember: Send {
    /// The next records of the assigned partitions, or a rebalance step; waits at most `wait`.
    fn poll(&mut self, wait: Duration) -> BoxFuture<'_, Result<Polled>>;

    /// Stops returning records of `partition` until [`GroupMember::resume`].
    fn pause(&mut self, partition: &TopicPartition);

    /// Returns records of `partition` again, from where the runner stopped taking them.
    fn resume(&mut self, partition: &TopicPartition);

    /// Sets the position of `partition`: the next record returned is at `offset`.
    fn seek(&mut self, partition: &TopicPartition, offset: i64);

    /// Commits `offsets` (the offset of the next record to read, per partition), fenced by
    /// the member's generation.
    fn commit<'a>(&'a mut self, offsets: &'a [(TopicPartition, i64)]) -> BoxFuture<'a, Result<()>>;

    /// Leaves the group, so its partitions move at once instead of after the session timeout.
    fn leave(self: Box<Self>) -> BoxFuture<'static, Result<()>>;

    /// The partitions currently owned.
    fn assignment(&self) -> Vec<TopicPartition>;

    /// The member id the coordinator gave this member.
    fn member_id(&self) -> String;

    /// Each owned partition's fetch position and high watermark, as its last fetch answered
    /// them: what the consumer-lag metric is made of. A backend that cannot tell answers
    /// nothing (the default).
    fn progress(&self) -> Vec<(TopicPartition, PartitionProgress)> {
        Vec::new()
    }
}

/// How far a member read one partition, and how far its log goes. See
/// [`GroupMember::progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionProgress {
    /// The offset of the next record the member fetches.
    pub position: i64,
    /// The offset after the last record a consumer may read (the log end for
    /// `read_uncommitted`).
    pub high_watermark: i64,
}

impl PartitionProgress {
    /// A partition fetched up to `position`, whose log reaches `high_watermark`.
    pub fn new(position: i64, high_watermark: i64) -> Self {
        Self {
            position,
            high_watermark,
        }
    }
}

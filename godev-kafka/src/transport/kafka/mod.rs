//! The `kafka` crate backend: Apache Kafka 0.10 to 3.9, without native libraries.
//!
//! Records are written and read through the pure-Rust [`kafka`](https://docs.rs/kafka) crate;
//! consumer-group membership and generation-fenced offset commits are this project's own,
//! encoded with [`kafka-protocol`](https://docs.rs/kafka-protocol) on a connection to the group
//! coordinator.
//!
//! # Threads
//!
//! The `kafka` crate blocks. Its clients live on dedicated threads (one producer thread per
//! transport, one fetch thread per group member, one metadata thread per transport); the async
//! side sends them work over channels and awaits a oneshot answer. No async worker blocks.
//!
//! # Producing
//!
//! [`Transport::produce`] queues the record for the producer thread, which batches records for
//! [`KafkaOptions::linger`] or up to [`KafkaOptions::batch_size`] records, sends them in one
//! produce request per leader, and resolves each record with its offset. With [`Acks::None`]
//! the offset is `-1`.
//!
//! - **Bounded.** Queued records hold their bytes of a buffer of
//!   [`KafkaOptions::buffer_bytes`] until they are answered; `produce` waits up to
//!   [`KafkaOptions::max_block`] for room, then fails (retriable) naming the full buffer.
//! - **Retried until the delivery timeout.** Retriable failures (leader moved, timeouts,
//!   network, a broker down) refresh the metadata and are retried, [`KafkaOptions::retry_backoff`]
//!   after the first failure and doubling up to 1 s, with jitter, until
//!   [`KafkaOptions::delivery_timeout`] after the record was queued (120 s by default); then the
//!   record fails with the last error. A retry after a lost response can write a record twice
//!   (at-least-once: the `kafka` crate has no idempotent producer).
//! - **Panics.** A panic on the producer thread fails the records it held with an error naming
//!   the panic (they may or may not have been written); the thread starts over with a new
//!   client and later records are written as before.
//!
//! # Consuming
//!
//! [`Transport::join`] returns a member of a classic consumer group (protocol type
//! `consumer`, assignors `range` and `roundrobin`, eager rebalancing), so Kafka's own
//! `kafka-consumer-groups.sh --describe` shows its members, assignment and offsets. See
//! [`GroupMember`] for the poll cycle: a rebalance first reports [`Polled::Revoked`](crate::transport::Polled::Revoked) with every
//! owned partition, then, on the next poll, [`Polled::Assigned`](crate::transport::Polled::Assigned). Positions start at the
//! group's committed offsets, else at the earliest or latest offset per
//! [`GroupOptions::offset_reset`](crate::transport::GroupOptions), and fall back to that reset
//! when a position left the log (OFFSET_OUT_OF_RANGE). A poll that takes part in a rebalance
//! can last longer than its `wait`, up to the rebalance timeout.
//!
//! # Limits
//!
//! - Protocol versions. The `kafka` crate speaks Produce v0, Fetch v0, ListOffsets v0 and
//!   Metadata v0 (message format v0/v1: brokers convert). The group APIs negotiate, through
//!   ApiVersions, the highest version both the broker and `kafka-protocol` 0.18 know: on Kafka
//!   3.9 that is FindCoordinator v6, JoinGroup v9, SyncGroup v5, Heartbeat v4, LeaveGroup v5,
//!   OffsetCommit v9, OffsetFetch v9, CreateTopics v7.
//! - Kafka 4.0 and later removed Produce v0-v2 and Fetch v0-v3: [`KafkaTransport::connect`]
//!   refuses such a broker. Use the confluent backend (feature `confluent`,
//!   `[kafka] client = "confluent"`) for Kafka 4.
//! - No record headers: event type tags travel in the record value.
//! - An empty key is sent as no key (null); an empty value as a null value.
//! - No TLS or SASL; no idempotent or transactional producer; no static membership, no
//!   cooperative rebalancing (KIP-429) and no KIP-848 consumer groups.
//! - The admin helpers' CreateTopics needs Kafka 0.11+ (v2 is the lowest `kafka-protocol` knows).

mod client;
mod fetch;
mod producer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;

use self::fetch::Fetcher;
use self::producer::ProducerHandle;
use crate::transport::admin;
use crate::transport::connection::{Cluster, Connection, Security};
use crate::transport::group::membership::{ClassicMember, Settings};
use crate::transport::partition_counts::PartitionCounts;
use crate::transport::{BoxFuture, GroupMember, GroupOptions, OutgoingRecord, Transport, Unsent};
use crate::{Error, Result};

pub use crate::transport::{Acks, Compression};

/// The `kafka` crate's codec for `compression`; it has none for lz4 and zstd.
fn crate_compression(compression: Compression) -> Result<kafka::client::Compression> {
    match compression {
        Compression::None => Ok(kafka::client::Compression::NONE),
        Compression::Gzip => Ok(kafka::client::Compression::GZIP),
        Compression::Snappy => Ok(kafka::client::Compression::SNAPPY),
        other => Err(Error::transport(
            "start the kafka producer",
            format!(
                "the `kafka` backend compresses with gzip or snappy only, not {}; use the \
                 native or the confluent backend for it",
                other.as_str()
            ),
            false,
        )),
    }
}

/// How to reach the brokers and how to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KafkaOptions {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// The client id the brokers see.
    pub client_id: String,
    /// Acknowledgements a produce waits for.
    pub acks: Acks,
    /// Batch compression.
    pub compression: Compression,
    /// How long the producer waits for more records before it sends a batch.
    pub linger: Duration,
    /// The most records in one produce request.
    pub batch_size: usize,
    /// How long a request may take (produce ack timeout, connects, group requests).
    pub request_timeout: Duration,
    /// How long a record may take from [`Transport::produce`] (once it is queued) to its
    /// acknowledgement, retries included; a retriable failure is retried until then (the Java
    /// client's `delivery.timeout.ms`).
    pub delivery_timeout: Duration,
    /// The pause after the first failed try; each further one doubles it, up to 1 s (or this,
    /// if longer), with jitter.
    pub retry_backoff: Duration,
    /// The most bytes of records (key, value and 34 bytes each) queued and not yet answered;
    /// [`Transport::produce`] waits for room.
    pub buffer_bytes: usize,
    /// How long [`Transport::produce`] waits for room in the buffer before it fails.
    pub max_block: Duration,
    /// The most bytes fetched per partition and request (a record larger than this stalls
    /// its partition).
    pub fetch_max_bytes: i32,
}

impl KafkaOptions {
    /// Options for `brokers` with the Java client's usual settings: acks all, linger 5 ms,
    /// delivery timeout 120 s, retry backoff 100 ms, a 32 MiB buffer and a 60 s `max_block`.
    pub fn new(brokers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            brokers: brokers.into_iter().map(Into::into).collect(),
            client_id: "godev-kafka".into(),
            acks: Acks::All,
            compression: Compression::None,
            linger: crate::options::DEFAULT_LINGER,
            batch_size: 500,
            request_timeout: crate::options::DEFAULT_REQUEST_TIMEOUT,
            delivery_timeout: Duration::from_secs(120),
            retry_backoff: Duration::from_millis(100),
            buffer_bytes: 32 * 1024 * 1024,
            max_block: Duration::from_secs(60),
            fetch_max_bytes: 1024 * 1024,
        }
    }
}

/// The `kafka` crate backend. See the [module docs](self).
#[derive(Debug)]
pub struct KafkaTransport {
    options: KafkaOptions,
    producer: ProducerHandle,
    metadata: Fetcher,
    partition_counts: PartitionCounts,
}

impl KafkaTransport {
    /// Checks that a broker answers and speaks the protocol versions of the `kafka` crate,
    /// then starts the producer thread.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> godev_kafka::Result<()> {
    /// use godev_kafka::transport::kafka::{KafkaOptions, KafkaTransport};
    ///
    /// let transport = KafkaTransport::connect(KafkaOptions::new(["127.0.0.1:9092"])).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// No broker answered, or the broker is Kafka 4 or later (it removed the produce and fetch
    /// versions the `kafka` crate speaks).
    pub async fn connect(options: KafkaOptions) -> Result<Self> {
        if options.brokers.is_empty() {
            return Err(Error::Config {
                key: "kafka.brokers".into(),
                message: "no brokers given; set at least one host:port".into(),
            });
        }
        let cluster = Cluster::new(
            &options.brokers,
            &options.client_id,
            options.request_timeout,
        );
        check_versions(&*cluster.any().await?)?;
        let compression = crate_compression(options.compression)?;
        let brokers = options.brokers.clone();
        let producer = ProducerHandle::spawn(&options, compression)?;
        let metadata = Fetcher::spawn(brokers, options.client_id.clone(), options.fetch_max_bytes)?;
        Ok(Self {
            options,
            producer,
            metadata,
            partition_counts: PartitionCounts::default(),
        })
    }

    /// The options this transport was built with.
    pub fn options(&self) -> &KafkaOptions {
        &self.options
    }
}

/// Refuses brokers that dropped the versions the `kafka` crate speaks (Kafka 4+).
fn check_versions(conn: &Connection) -> Result<()> {
    for key in [
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::Metadata,
    ] {
        let range = conn.broker_range(key);
        if range.is_none_or(|r| r.min > 0) {
            let supported = range
                .map(|r| format!("v{}-v{}", r.min, r.max))
                .unwrap_or_else(|| "no version".into());
            return Err(Error::transport(
                format!("connect to broker {}", conn.addr()),
                format!(
                    "the broker is Kafka 4 or later: it supports {key:?} {supported} only, and \
                     the `kafka` crate speaks v0; use the confluent backend (cargo feature \
                     `confluent` and `[kafka] client = \"confluent\"`, or `client = \"auto\"`)"
                ),
                false,
            ));
        }
    }
    Ok(())
}

impl Transport for KafkaTransport {
    fn end_offsets<'a>(
        &'a self,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<std::collections::BTreeMap<i32, i64>>> {
        Box::pin(admin::end_offsets(&self.options.brokers, topic))
    }

    fn create_topic<'a>(&'a self, topic: &'a str, partitions: i32) -> BoxFuture<'a, Result<()>> {
        Box::pin(admin::create_topic(
            &self.options.brokers,
            topic,
            partitions,
        ))
    }

    fn partition_count<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<i32>> {
        Box::pin(async move {
            if let Some(count) = self.partition_counts.get(topic) {
                return Ok(count);
            }
            let deadline = Instant::now() + self.options.request_timeout;
            let counts = self
                .metadata
                .partition_counts(vec![topic.to_owned()], deadline)
                .await?;
            let count = counts.get(topic).copied().unwrap_or(0);
            self.partition_counts.insert(topic, count);
            Ok(count)
        })
    }

    fn produce(&self, record: OutgoingRecord) -> BoxFuture<'_, std::result::Result<i64, Unsent>> {
        let record = Arc::new(record);
        let answer = self.producer.send(record.clone());
        Box::pin(async move {
            answer.await.map_err(|error| {
                // The topic may have changed (deleted, re-created, grown): read it again.
                self.partition_counts.forget(&record.topic);
                // The thread has let go of it by now: no copy is made.
                Unsent::new(Arc::unwrap_or_clone(record), error)
            })
        })
    }

    fn join(&self, options: GroupOptions) -> BoxFuture<'_, Result<Box<dyn GroupMember>>> {
        let settings = Settings {
            brokers: self.options.brokers.clone(),
            client_id: self.options.client_id.clone(),
            request_timeout: self.options.request_timeout,
            security: Security::default(),
        };
        let reader = Fetcher::spawn(
            self.options.brokers.clone(),
            self.options.client_id.clone(),
            self.options.fetch_max_bytes,
        );
        Box::pin(async move {
            let member = ClassicMember::new(options, settings, Box::new(reader?)).await?;
            Ok(Box::new(member) as Box<dyn GroupMember>)
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.producer.flush())
    }

    fn name(&self) -> &'static str {
        "kafka"
    }

    fn brokers(&self) -> Vec<String> {
        self.options.brokers.clone()
    }
}

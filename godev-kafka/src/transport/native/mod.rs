//! The `native` backend: the project's own Kafka client, on the
//! connection layer (`transport/connection`), for Kafka 0.11 to 4.x.
//!
//! Everything it sends is encoded with [`kafka-protocol`](https://docs.rs/kafka-protocol) and
//! versions negotiated per broker (Produce v3 to v12, Fetch v4 to v12); records travel as
//! RecordBatch v2, written and read by this project (`batch.rs`).
//!
//! # Producing
//!
//! [`Transport::produce`] appends the record to its partition's batch; one sender task sends
//! each broker one Produce request for all its ready partitions, at most
//! [`NativeOptions::max_in_flight`] at a time. A batch goes when it reaches
//! [`NativeOptions::batch_bytes`] or has waited [`NativeOptions::linger`]. With
//! [`Acks::All`] the producer is idempotent by default: a retry never writes a record twice
//! nor reorders a partition. Retriable failures are retried until
//! [`NativeOptions::delivery_timeout`]; with [`Acks::None`] the offset is `-1`.
//!
//! # Consuming
//!
//! [`Transport::join`] returns a member of a classic consumer group, the same membership the
//! `kafka` backend uses, reading with one Fetch per leader broker for all its partitions.
//! Every compression is read; control records are skipped; a partition whose batch cannot be
//! read, or that answers with an error retrying cannot mend, stalls alone
//! ([`Polled::Stalled`](crate::transport::Polled::Stalled)) while the others go on.
//!
//! # Limits
//!
//! - Record headers are read (they reach handlers through
//!   [`Context::headers`](crate::Context::headers)) but not written; no TLS or SASL and no
//!   transactions.
//! - A batch the broker refuses as too large (`MESSAGE_TOO_LARGE`) is not split: its records
//!   fail.

pub(crate) mod batch; // pub(crate) for the fuzz entry points (feature `fuzzing`)
mod fetch;
mod produce;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, FetchRequest, ProduceRequest};

use self::fetch::{FetchSettings, NativeFetcher};
use self::produce::{NativeProducer, ProducerSettings};
use crate::transport::admin;
use crate::transport::connection::{Cluster, Security};
use crate::transport::group::membership::{ClassicMember, Settings};
use crate::transport::partition_counts::PartitionCounts;
use crate::transport::{
    Acks, BoxFuture, Compression, GroupMember, GroupOptions, Isolation, OutgoingRecord,
    SaslOptions, TlsOptions, Transport, Unsent,
};
use crate::{Error, Result};

/// How to reach the brokers, how to produce, how to fetch.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use godev_kafka::transport::native::NativeOptions;
/// use godev_kafka::transport::{Acks, Compression};
///
/// let mut options = NativeOptions::new(["127.0.0.1:9092"]);
/// options.compression = Compression::Lz4;
/// options.linger = Duration::from_millis(10);
/// assert_eq!(options.acks, Acks::All);
/// assert!(options.idempotence);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NativeOptions {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// The client id the brokers see.
    pub client_id: String,
    /// Acknowledgements a produce waits for.
    pub acks: Acks,
    /// Batch compression.
    pub compression: Compression,
    /// How long a batch waits for more records before it is sent.
    pub linger: Duration,
    /// The most bytes of records in one batch (one partition of one request).
    pub batch_bytes: usize,
    /// The most Produce requests in flight to one broker.
    pub max_in_flight: usize,
    /// How long a request may take (produce acknowledgement, connects, group requests).
    pub request_timeout: Duration,
    /// How long a record may take from `produce` to its acknowledgement, retries included.
    pub delivery_timeout: Duration,
    /// The pause before a batch is retried.
    pub retry_backoff: Duration,
    /// The most bytes of records waiting to be sent; `produce` waits for room.
    pub buffer_bytes: usize,
    /// How long `produce` waits for room in the buffer before it fails.
    pub max_block: Duration,
    /// Whether the producer is idempotent (needs [`Acks::All`]).
    pub idempotence: bool,
    /// The most bytes one Fetch response may bring.
    pub fetch_max_bytes: i32,
    /// The most bytes one partition may bring in one Fetch (a larger first batch still comes
    /// whole).
    pub fetch_partition_max_bytes: i32,
    /// The bytes a Fetch waits for, up to [`fetch_max_wait`](Self::fetch_max_wait)
    /// (`fetch.min.bytes`).
    pub fetch_min_bytes: i32,
    /// The longest the broker holds a Fetch for [`fetch_min_bytes`](Self::fetch_min_bytes)
    /// (`fetch.max.wait.ms`). A member's poll bounds it too: a fetch waits the shorter of this
    /// and what is left of the poll (at most 500 ms).
    pub fetch_max_wait: Duration,
    /// Which records of transactional producers consumers read (`isolation.level`; the
    /// default, as the Java client's, is [`Isolation::ReadUncommitted`]).
    pub isolation: Isolation,
    /// TLS for every connection (produce, fetch, group, admin); `None`: plain TCP.
    pub tls: Option<TlsOptions>,
    /// SASL authentication of every connection; `None`: none.
    pub sasl: Option<SaslOptions>,
}

impl NativeOptions {
    /// Options for `brokers` with the Java client's usual settings: acks all, idempotent,
    /// linger 5 ms, 1 MB batches, 5 requests in flight, delivery timeout 120 s, 32 MiB buffer,
    /// fetches of up to 50 MiB and 1 MiB per partition that wait for 1 byte or 500 ms, read
    /// uncommitted.
    pub fn new(brokers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let fetch = FetchSettings::default();
        Self {
            brokers: brokers.into_iter().map(Into::into).collect(),
            client_id: "godev-kafka".into(),
            acks: Acks::All,
            compression: Compression::None,
            linger: crate::options::DEFAULT_LINGER,
            batch_bytes: 1_000_000,
            max_in_flight: 5,
            request_timeout: crate::options::DEFAULT_REQUEST_TIMEOUT,
            delivery_timeout: Duration::from_secs(120),
            retry_backoff: Duration::from_millis(100),
            buffer_bytes: 32 * 1024 * 1024,
            max_block: Duration::from_secs(60),
            idempotence: true,
            fetch_max_bytes: fetch.max_bytes,
            fetch_partition_max_bytes: fetch.partition_max_bytes,
            fetch_min_bytes: fetch.min_bytes,
            fetch_max_wait: fetch.max_wait,
            isolation: fetch.isolation,
            tls: None,
            sasl: None,
        }
    }
}

/// The native backend. See the [module docs](self).
#[derive(Debug)]
pub struct NativeTransport {
    options: NativeOptions,
    security: Security,
    cluster: Arc<Cluster>,
    producer: NativeProducer,
    partition_counts: PartitionCounts,
}

impl NativeTransport {
    /// Connects to the first broker of `options.brokers` that answers and checks that it
    /// speaks what this backend needs (Produce v3 and Fetch v4: Kafka 0.11 or later).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> godev_kafka::Result<()> {
    /// use godev_kafka::transport::native::{NativeOptions, NativeTransport};
    ///
    /// let transport = NativeTransport::connect(NativeOptions::new(["127.0.0.1:9092"])).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// No broker answered, the broker is older than Kafka 0.11, or the options contradict
    /// each other (idempotence without [`Acks::All`]).
    pub async fn connect(options: NativeOptions) -> Result<Self> {
        if options.brokers.is_empty() {
            return Err(Error::Config {
                key: "kafka.brokers".into(),
                message: "no brokers given; set at least one host:port".into(),
            });
        }
        if options.idempotence && options.acks != Acks::All {
            return Err(Error::Config {
                key: "kafka.producer.acks".into(),
                message: "an idempotent producer needs acks = \"all\"; set acks to \"all\", or \
                          turn idempotence off"
                    .into(),
            });
        }
        let security = Security::new(options.tls.as_ref(), options.sasl.as_ref())?;
        let cluster = Arc::new(
            Cluster::new(
                &options.brokers,
                &options.client_id,
                options.request_timeout,
            )
            .with_security(security.clone()),
        );
        let conn = cluster.any().await?;
        conn.version::<ProduceRequest>(ApiKey::Produce)?;
        let fetch = conn.version::<FetchRequest>(ApiKey::Fetch)?;
        if fetch < 4 {
            return Err(Error::transport(
                format!("connect to broker {}", conn.addr()),
                "the broker is older than Kafka 0.11 (no Fetch v4): the native backend reads \
                 RecordBatch v2 only; use the `kafka` backend",
                false,
            ));
        }
        let producer = NativeProducer::new(
            cluster.clone(),
            ProducerSettings {
                acks: options.acks,
                compression: options.compression,
                linger: options.linger,
                batch_bytes: options.batch_bytes.max(1),
                max_in_flight: options.max_in_flight.max(1),
                request_timeout: options.request_timeout,
                delivery_timeout: options.delivery_timeout,
                retry_backoff: options.retry_backoff,
                buffer_bytes: options.buffer_bytes.max(1),
                max_block: options.max_block,
                idempotence: options.idempotence,
            },
        );
        Ok(Self {
            options,
            security,
            cluster,
            producer,
            partition_counts: PartitionCounts::default(),
        })
    }

    /// The options this transport was built with.
    pub fn options(&self) -> &NativeOptions {
        &self.options
    }
}

impl Transport for NativeTransport {
    fn partition_count<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<i32>> {
        Box::pin(async move {
            if let Some(count) = self.partition_counts.get(topic) {
                return Ok(count);
            }
            let deadline = Instant::now() + self.options.request_timeout;
            let count = self
                .cluster
                .partition_count_creating(topic, deadline)
                .await?;
            self.partition_counts.insert(topic, count);
            Ok(count)
        })
    }

    fn end_offsets<'a>(
        &'a self,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<std::collections::BTreeMap<i32, i64>>> {
        Box::pin(admin::end_offsets_on(&self.cluster, topic))
    }

    fn create_topic<'a>(&'a self, topic: &'a str, partitions: i32) -> BoxFuture<'a, Result<()>> {
        Box::pin(admin::create_topic_on(&self.cluster, topic, partitions))
    }

    fn produce(&self, record: OutgoingRecord) -> BoxFuture<'_, std::result::Result<i64, Unsent>> {
        Box::pin(async move {
            let result = self.producer.produce(record).await;
            if let Err(unsent) = &result {
                // The topic may have changed (deleted, re-created, grown): read it again.
                self.partition_counts.forget(&unsent.record.topic);
            }
            result
        })
    }

    fn join(&self, options: GroupOptions) -> BoxFuture<'_, Result<Box<dyn GroupMember>>> {
        let settings = Settings {
            brokers: self.options.brokers.clone(),
            client_id: self.options.client_id.clone(),
            request_timeout: self.options.request_timeout,
            security: self.security.clone(),
        };
        let fetcher = NativeFetcher::new(
            Arc::new(
                Cluster::new(
                    &self.options.brokers,
                    &self.options.client_id,
                    self.options.request_timeout,
                )
                .with_security(self.security.clone()),
            ),
            FetchSettings {
                max_bytes: self.options.fetch_max_bytes,
                partition_max_bytes: self.options.fetch_partition_max_bytes,
                min_bytes: self.options.fetch_min_bytes.max(1),
                max_wait: self.options.fetch_max_wait,
                isolation: self.options.isolation,
                request_timeout: self.options.request_timeout,
            },
        );
        Box::pin(async move {
            let member = ClassicMember::new(options, settings, Box::new(fetcher)).await?;
            Ok(Box::new(member) as Box<dyn GroupMember>)
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async {
            self.producer.flush().await;
            Ok(())
        })
    }

    fn name(&self) -> &'static str {
        "native"
    }

    fn brokers(&self) -> Vec<String> {
        self.options.brokers.clone()
    }
}

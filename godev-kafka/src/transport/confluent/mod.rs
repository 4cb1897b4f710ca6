//! The `confluent-kafka` crate backend: Apache Kafka 4.0 and later, KIP-848 consumer groups,
//! record headers, an idempotent producer.
//!
//! Built on [`confluent-kafka`](https://docs.rs/confluent-kafka) 1.x, a pure-Rust translation
//! of the Apache Kafka Java client (4.4). Its consumer speaks only the KIP-848 group protocol
//! (`group.protocol=consumer`), which needs a Kafka 4.0+ broker; its producer and admin client
//! negotiate versions and also work against older brokers (see [Versions](#versions)).
//!
//! # Producing
//!
//! [`ConfluentTransport::produce`] writes to the partition the framework chose (it computes
//! the Java client's murmur2 partition itself), with `acks=all` and `enable.idempotence=true`
//! by default, and resolves with the offset once the broker acknowledged the record. A
//! CloudEvents JSON value also gets the CloudEvents Kafka headers `ce_type`, `ce_id`,
//! `ce_source`, `ce_specversion` and `content-type: application/cloudevents+json;
//! charset=UTF-8`; the value keeps the whole event (structured mode: the `content-type` tells
//! CloudEvents SDKs to read the value, and the `ce_` headers let tools route or filter without
//! parsing JSON). Other values (the Go kit's tagged JSON, raw bytes) get no headers.
//!
//! # Consuming
//!
//! [`Transport::join`] returns a [`GroupMember`] on the crate's KIP-848 consumer with
//! auto-commit off. The broker assigns partitions (server-side assignor) and rebalances
//! incrementally: only partitions that move are revoked, so [`Polled::Revoked`] lists those
//! and [`Polled::Assigned`] lists the partitions *added* to the assignment (not the whole
//! assignment, as in the eager `kafka` and `memory` backends; the runner only adds workers for
//! them, so kept partitions keep their workers).
//!
//! ## Revocation before the partition moves
//!
//! The crate runs [`ConsumerRebalanceListener`] callbacks inside its `poll`, and the
//! broker waits for the callback to finish before it gives a revoked partition to another
//! member. This backend therefore lets the callback *wait for the runner*:
//!
//! 1. The consumer lives on its own task (the *driver*), which serves the member's commands
//!    (`poll`, `commit`, `pause`, `resume`, `seek`, `leave`) one at a time.
//! 2. When the crate calls `on_partitions_revoked` (or `on_partitions_lost`) inside a `poll`,
//!    the listener reports [`Polled::Revoked`] as that poll's answer and does not return.
//!    While it waits it serves the member's commands itself, through the crate's
//!    [`ConsumerHandle`](confluent_kafka::consumer::ConsumerHandle), which the crate admits
//!    only while a callback runs: the runner's drain-and-commit goes through here.
//! 3. The runner's next [`GroupMember::poll`] completes the callback; the crate's `poll`
//!    goes on (acknowledging the revocation to the broker), and its result answers that poll.
//!
//! So a partition's in-flight records are handled and their offsets committed before the
//! broker moves it, as the [transport contract](crate::transport#contract) asks. A callback
//! that waits longer than the rebalance timeout (`max.poll.interval.ms`, from
//! [`GroupOptions::rebalance_timeout`]) gets the member fenced by the broker; the runner's
//! drain deadline (`shutdown_timeout`) should stay below it.
//!
//! ## Commits and fencing
//!
//! [`GroupMember::commit`] is a synchronous `OffsetCommit` of exactly the given offsets. With
//! KIP-848 the broker checks the member epoch: a member that lost its partitions gets
//! `STALE_MEMBER_EPOCH` / `UNKNOWN_MEMBER_ID` (the crate's `CommitFailedError`), mapped to
//! [`Error::Fenced`] with the member epoch as `generation`.
//!
//! ## A partition that cannot be read
//!
//! The crate, as the Java client, fails every `poll` while what is at one partition's
//! position cannot be read (a batch whose CRC does not match, a record it cannot parse), and
//! names the partition only in its message ("... fetching the next record from orders-3. If
//! needed, please seek past the record ..."). The member finds the owned partition the
//! message names, pauses it (the crate drops what it fetched for it), and reports
//! [`Polled::Stalled`] with its position and the error's cause chain: that partition stalls,
//! the others go on. It stays paused while it stays assigned; an error that names no owned
//! partition is the poll's error.
//!
//! ## Group timeouts
//!
//! KIP-848 moved the session timeout and heartbeat interval to the broker (group configs
//! `consumer.session.timeout.ms`, `consumer.heartbeat.interval.ms`, defaulting to the
//! broker's `group.consumer.session.timeout.ms` and `group.consumer.heartbeat.interval.ms`,
//! 45 s and 5 s); the client may not set them, so [`GroupOptions::session_timeout`] and
//! [`GroupOptions::heartbeat_interval`] do not reach the broker through a join. Heartbeats
//! carry assignment changes, so the heartbeat interval bounds how fast partitions move.
//!
//! Group configs belong to whoever runs the cluster, and a join leaves them alone. To set
//! them from the application, take an explicit admin step:
//! [`Admin::alter_group_timeouts`](admin::Admin::alter_group_timeouts) (it needs
//! `ALTER_CONFIGS` on the group, and values within the broker's `group.consumer.min/max.*`
//! bounds); [`Admin::group_configs`](admin::Admin::group_configs) reads them back. Or opt in
//! with [`ConfluentOptions::set_group_timeouts`]: then every [`Transport::join`] first writes
//! the group options' two timeouts to the group's configs with `IncrementalAlterConfigs`
//! (best effort: a refusal is logged and the broker's values stay), whatever another member
//! or an operator set there.
//!
//! # Versions
//!
//! | broker | producer | consumer group |
//! |---|---|---|
//! | Kafka 4.0+ (4.4 tested) | yes | yes (KIP-848) |
//! | Kafka 3.x (3.9 tested) | yes | no: the first poll fails with `UnsupportedVersionError` (3.9 advertises `ConsumerGroupHeartbeat` but serves it only with `group.coordinator.rebalance.protocols=classic,consumer`) |
//!
//! [`detect_broker`](crate::transport::detect::detect_broker) asks a broker's ApiVersions
//! which backend fits; `[kafka] client = "auto"` uses it.
//!
//! # Limits
//!
//! - Rust 1.95+ (the crate's MSRV). TLS through the crate's `rustls` feature, which brings
//!   aws-lc-rs (a C library: about 22 s more of a clean build here). SASL PLAIN
//!   only (the crate has no SCRAM or OAUTHBEARER; config refuses them for this backend). The
//!   crate re-authenticates in band before a session the broker limits ends (KIP-368).
//! - No classic consumer groups: a group the `kafka` backend's members use (classic protocol)
//!   cannot take confluent members at the same time.
//! - [`Polled::Assigned`] lists added partitions only (see above).
//! - [`GroupMember::member_id`] is empty until the member's first heartbeat answer has been
//!   applied by a poll (the crate fills its group metadata then).
//! - Fencing: commits carry the member epoch, and a refusal for a stale or unknown member is
//!   mapped to [`Error::Fenced`]. A member whose poll timer expired has left the group and
//!   commits *without* an epoch; the broker refuses that (unknown member) while other members
//!   are in the group, as `kafka_group::confluent_4::a_commit_of_a_stale_generation_is_fenced`
//!   shows, and would accept it only from a group with no members left, where it overwrites
//!   no other owner's offsets.
//! - Call [`ConfluentTransport::close`] before dropping the transport, or the crate logs that
//!   its producer was not closed (it still closes it in the background).

pub mod admin;
mod errors;
mod headers;
mod member;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use confluent_kafka::common::TopicPartition as KafkaPartition;
use confluent_kafka::common::serialization::ByteArraySerializer;
use confluent_kafka::producer::{KafkaProducer, Producer as _, ProducerConfig, ProducerRecord};

use self::errors::failed;
use self::member::ConfluentMember;
use crate::transport::partition_counts::PartitionCounts;
use crate::transport::{
    BoxFuture, GroupMember, GroupOptions, OutgoingRecord, SaslOptions, TlsOptions, Transport,
    Unsent,
};
#[cfg(doc)]
use crate::transport::{Polled, TopicPartition};
use crate::{Error, KafkaCode, Result};
/// The `confluent-kafka` crate this backend is built on, for tests and tools that talk to the
/// broker without the framework in between.
pub use ::confluent_kafka;
#[cfg(doc)]
use confluent_kafka::consumer::ConsumerRebalanceListener;

pub use crate::transport::{Acks, Compression, Isolation};

/// How to reach the brokers, how to produce, how members join.
///
/// `Debug` redacts the values of [`properties`](Self::properties) whose names look secret
/// (`password`, `secret`, `jaas`, `key`).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfluentOptions {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// The client id the brokers see.
    pub client_id: String,
    /// Acknowledgements a produce waits for.
    pub acks: Acks,
    /// Idempotent producer (`enable.idempotence`): retries never duplicate or reorder a
    /// partition's records. Needs [`Acks::All`].
    pub idempotence: bool,
    /// Batch compression.
    pub compression: Compression,
    /// How long the producer waits for more records before it sends a batch (`linger.ms`).
    pub linger: Duration,
    /// The most bytes of records in one batch of one partition (`batch.size`).
    pub batch_bytes: usize,
    /// The most unacknowledged requests per broker connection
    /// (`max.in.flight.requests.per.connection`); at most 5 for an idempotent producer.
    pub max_in_flight: usize,
    /// How long one request may take (`request.timeout.ms`).
    pub request_timeout: Duration,
    /// How long a record may take from `produce` to its acknowledgement, retries included
    /// (`delivery.timeout.ms`); `None`: `linger + 4 × request_timeout`. At least `linger +
    /// request_timeout`, or the crate refuses it.
    pub delivery_timeout: Option<Duration>,
    /// The pause before a failed request is retried (`retry.backoff.ms`).
    pub retry_backoff: Duration,
    /// The most bytes of records waiting to be sent (`buffer.memory`); `produce` waits for
    /// room.
    pub buffer_bytes: usize,
    /// How long `produce` waits for room in the buffer (and for metadata) before it fails
    /// (`max.block.ms`).
    pub max_block: Duration,
    /// The most bytes fetched per partition and request (`max.partition.fetch.bytes`).
    pub fetch_max_bytes: i32,
    /// The most bytes one Fetch response may bring (`fetch.max.bytes`).
    pub fetch_response_max_bytes: i32,
    /// The bytes a Fetch waits for, up to [`fetch_max_wait`](Self::fetch_max_wait)
    /// (`fetch.min.bytes`).
    pub fetch_min_bytes: i32,
    /// The longest the broker holds a Fetch for [`fetch_min_bytes`](Self::fetch_min_bytes)
    /// (`fetch.max.wait.ms`).
    pub fetch_max_wait: Duration,
    /// Which records of transactional producers consumers read (`isolation.level`).
    pub isolation: Isolation,
    /// Write [`GroupOptions::session_timeout`] and [`GroupOptions::heartbeat_interval`] to the
    /// group's broker-side configs on every join. Off by default: joining a group does not
    /// change the cluster's configuration (see the [module docs](self#group-timeouts), and
    /// [`Admin::alter_group_timeouts`](admin::Admin::alter_group_timeouts) to do it once, as
    /// an admin step).
    pub set_group_timeouts: bool,
    /// TLS for every connection (producer, consumers, admin): `security.protocol` `SSL` (or
    /// `SASL_SSL` with [`sasl`](Self::sasl)), the CA file as `ssl.truststore.location`
    /// (`None`: the crate's webpki roots), the client certificate and key for mutual TLS as
    /// `ssl.keystore.certificate.chain` and `ssl.keystore.key` (read when the clients are
    /// built; a file that cannot be read then is given to the crate as
    /// `ssl.keystore.location`, so that its error names the file), and
    /// `ssl.endpoint.identification.algorithm` `https`, or empty (the Java client's way to
    /// turn the check off) without [`verify_hostname`](TlsOptions::verify_hostname). `None`:
    /// plain TCP.
    pub tls: Option<TlsOptions>,
    /// SASL for every connection: `security.protocol` `SASL_PLAINTEXT` (or `SASL_SSL` with
    /// [`tls`](Self::tls)), `sasl.mechanism` and `sasl.jaas.config` with the user and
    /// password. The crate authenticates with PLAIN only: it refuses another mechanism when
    /// the clients are built. `None`: no SASL.
    pub sasl: Option<SaslOptions>,
    /// Further client properties (Java client names, e.g. `security.protocol`), applied to the
    /// producer, the consumers and the admin client after the ones above.
    pub properties: BTreeMap<String, String>,
}

impl std::fmt::Debug for ConfluentOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| {
                let secret = ["password", "secret", "jaas", "key"]
                    .iter()
                    .any(|s| k.to_ascii_lowercase().contains(s));
                (k.as_str(), if secret { "<redacted>" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("ConfluentOptions")
            .field("brokers", &self.brokers)
            .field("client_id", &self.client_id)
            .field("acks", &self.acks)
            .field("idempotence", &self.idempotence)
            .field("compression", &self.compression)
            .field("linger", &self.linger)
            .field("batch_bytes", &self.batch_bytes)
            .field("max_in_flight", &self.max_in_flight)
            .field("request_timeout", &self.request_timeout)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("retry_backoff", &self.retry_backoff)
            .field("buffer_bytes", &self.buffer_bytes)
            .field("max_block", &self.max_block)
            .field("fetch_max_bytes", &self.fetch_max_bytes)
            .field("fetch_response_max_bytes", &self.fetch_response_max_bytes)
            .field("fetch_min_bytes", &self.fetch_min_bytes)
            .field("fetch_max_wait", &self.fetch_max_wait)
            .field("isolation", &self.isolation)
            .field("set_group_timeouts", &self.set_group_timeouts)
            .field("tls", &self.tls)
            .field("sasl", &self.sasl)
            .field("properties", &properties)
            .finish()
    }
}

impl ConfluentOptions {
    /// Options for `brokers` with the Java client's usual settings: acks all, idempotent,
    /// linger 5 ms, 16 KiB batches, 5 requests in flight, 32 MiB buffer, fetches of up to
    /// 50 MiB and 1 MiB per partition that wait for 1 byte or 500 ms, read uncommitted.
    pub fn new(brokers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            brokers: brokers.into_iter().map(Into::into).collect(),
            client_id: "godev-kafka".into(),
            acks: Acks::All,
            idempotence: true,
            compression: Compression::None,
            linger: crate::options::DEFAULT_LINGER,
            batch_bytes: 16 * 1024,
            max_in_flight: 5,
            request_timeout: crate::options::DEFAULT_REQUEST_TIMEOUT,
            delivery_timeout: None,
            retry_backoff: Duration::from_millis(100),
            buffer_bytes: 32 * 1024 * 1024,
            max_block: Duration::from_secs(60),
            fetch_max_bytes: 1024 * 1024,
            fetch_response_max_bytes: 50 * 1024 * 1024,
            fetch_min_bytes: 1,
            fetch_max_wait: Duration::from_millis(500),
            isolation: Isolation::ReadUncommitted,
            set_group_timeouts: false,
            tls: None,
            sasl: None,
            properties: BTreeMap::new(),
        }
    }

    /// What every consumer of the backend is given: the connection and the fetch settings
    /// (the admin client gets the connection alone).
    fn consumer_properties(&self) -> HashMap<String, String> {
        let mut props = self.connection();
        props.extend([
            (
                "max.partition.fetch.bytes".to_string(),
                self.fetch_max_bytes.to_string(),
            ),
            ("fetch.min.bytes".into(), self.fetch_min_bytes.to_string()),
            (
                "fetch.max.bytes".into(),
                self.fetch_response_max_bytes.to_string(),
            ),
            (
                "fetch.max.wait.ms".into(),
                millis(self.fetch_max_wait).to_string(),
            ),
            ("isolation.level".into(), self.isolation.as_str().into()),
        ]);
        props
    }

    /// Where the brokers are, how long a request may take, and how connections are secured.
    fn connection(&self) -> HashMap<String, String> {
        let mut props = HashMap::from([
            ("bootstrap.servers".into(), self.brokers.join(",")),
            ("client.id".into(), self.client_id.clone()),
            (
                "request.timeout.ms".into(),
                millis(self.request_timeout).to_string(),
            ),
        ]);
        props.extend(self.security_properties());
        props
    }

    /// `security.protocol` and the `ssl.*` and `sasl.*` properties of [`tls`](Self::tls) and
    /// [`sasl`](Self::sasl) (the Java client's names, which the crate reads); none without
    /// either.
    fn security_properties(&self) -> Vec<(String, String)> {
        let protocol = match (&self.tls, &self.sasl) {
            (None, None) => return Vec::new(),
            (Some(_), None) => "SSL",
            (None, Some(_)) => "SASL_PLAINTEXT",
            (Some(_), Some(_)) => "SASL_SSL",
        };
        let mut props = vec![("security.protocol".to_string(), protocol.to_string())];
        if let Some(tls) = &self.tls {
            let verify = if tls.verify_hostname { "https" } else { "" };
            props.push((
                "ssl.endpoint.identification.algorithm".into(),
                verify.into(),
            ));
            if let Some(ca) = &tls.ca_file {
                props.push(("ssl.truststore.type".into(), "PEM".into()));
                props.push(("ssl.truststore.location".into(), ca.display().to_string()));
            }
            if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
                props.push(("ssl.keystore.type".into(), "PEM".into()));
                for (path, inline) in [
                    (cert, "ssl.keystore.certificate.chain"),
                    (key, "ssl.keystore.key"),
                ] {
                    match std::fs::read_to_string(path) {
                        Ok(pem) => props.push((inline.into(), pem)),
                        // The crate reads the file itself, and fails naming it.
                        Err(_) => {
                            props.push(("ssl.keystore.location".into(), path.display().to_string()))
                        }
                    }
                }
            }
        }
        if let Some(sasl) = &self.sasl {
            props.push(("sasl.mechanism".into(), sasl.mechanism.kafka_name().into()));
            props.push((
                "sasl.jaas.config".into(),
                format!(
                    "org.apache.kafka.common.security.plain.PlainLoginModule required \
                     username=\"{}\" password=\"{}\";",
                    jaas_quoted(&sasl.username),
                    jaas_quoted(sasl.password.expose())
                ),
            ));
        }
        props
    }

    fn with_extra(&self, mut props: HashMap<String, String>) -> HashMap<String, String> {
        props.extend(self.properties.clone());
        props
    }

    fn producer_properties(&self) -> HashMap<String, String> {
        let mut props = self.connection();
        let acks = match self.acks {
            Acks::None => "0",
            Acks::One => "1",
            Acks::All => "all",
        };
        let idempotent = self.idempotence && self.acks == Acks::All;
        let delivery = self
            .delivery_timeout
            .unwrap_or(self.linger + self.request_timeout * 4);
        props.extend([
            ("acks".to_string(), acks.to_string()),
            ("enable.idempotence".into(), idempotent.to_string()),
            ("compression.type".into(), self.compression.as_str().into()),
            ("linger.ms".into(), millis(self.linger).to_string()),
            ("batch.size".into(), self.batch_bytes.to_string()),
            (
                "max.in.flight.requests.per.connection".into(),
                self.max_in_flight.to_string(),
            ),
            ("delivery.timeout.ms".into(), millis(delivery).to_string()),
            (
                "retry.backoff.ms".into(),
                millis(self.retry_backoff).to_string(),
            ),
            ("buffer.memory".into(), self.buffer_bytes.to_string()),
            ("max.block.ms".into(), millis(self.max_block).to_string()),
        ]);
        self.with_extra(props)
    }
}

fn millis(d: Duration) -> u128 {
    d.as_millis()
}

/// `value` escaped for a double-quoted JAAS option value: a backslash before `\\` and `"`,
/// and line breaks written as `\n` and `\r` (a raw one would end the value).
fn jaas_quoted(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' | '"' => {
                quoted.push('\\');
                quoted.push(c);
            }
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            c => quoted.push(c),
        }
    }
    quoted
}

/// How long [`connect_failed`] waits for its plaintext question.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why no broker of `options` answered `e`, said the way the native backend says it: a
/// refused login names the mechanism and the user (never the password), and a plaintext
/// client that got no answer asks the broker once in plaintext, which a TLS listener answers
/// with a TLS alert ([`detect_broker`](crate::transport::detect::detect_broker) names it).
async fn connect_failed(options: &ConfluentOptions, e: Error) -> Error {
    let brokers = options.brokers.join(",");
    match (e, &options.sasl) {
        (
            Error::Kafka {
                code: code @ KafkaCode::SASL_AUTHENTICATION_FAILED,
                message,
                ..
            },
            Some(sasl),
        ) => Error::Kafka {
            operation: format!(
                "authenticate to brokers {brokers} with SASL {} as user `{}`",
                sasl.mechanism.kafka_name(),
                sasl.username
            ),
            code,
            message,
        },
        (e @ Error::Kafka { .. }, _) => e,
        (e, _) => {
            let operation = format!("connect to brokers {brokers}");
            let text = e.to_string();
            if options.tls.is_some() && text.contains("received fatal alert") {
                return Error::transport(operation, crate::security::ended_by_broker(&text), false);
            }
            // A TLS listener answers the probe at once; an unreachable broker gets no more
            // than PROBE_TIMEOUT added to its error.
            let probe = crate::transport::detect::detect_broker(&options.brokers);
            if options.tls.is_none()
                && let Ok(Err(probe)) = tokio::time::timeout(PROBE_TIMEOUT, probe).await
                && probe.to_string().contains("needs TLS")
            {
                return Error::transport(operation, format!("{e}; {probe}"), false);
            }
            let retriable = e.is_retriable();
            Error::transport(operation, e, retriable)
        }
    }
}

/// The `confluent-kafka` crate backend. See the [module docs](self).
pub struct ConfluentTransport {
    options: ConfluentOptions,
    producer: KafkaProducer<Vec<u8>, Vec<u8>>,
    admin: admin::Admin,
    partition_counts: PartitionCounts,
}

impl std::fmt::Debug for ConfluentTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfluentTransport")
            .field("brokers", &self.options.brokers)
            .field("client_id", &self.options.client_id)
            .finish_non_exhaustive()
    }
}

impl ConfluentTransport {
    /// Builds the producer and admin client and checks that a broker answers.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> godev_kafka::Result<()> {
    /// use godev_kafka::transport::confluent::{ConfluentOptions, ConfluentTransport};
    ///
    /// let transport = ConfluentTransport::connect(ConfluentOptions::new(["127.0.0.1:9094"])).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// No brokers given, a property the crate refuses, or no broker answered within the
    /// request timeout.
    pub async fn connect(options: ConfluentOptions) -> Result<Self> {
        if options.brokers.is_empty() {
            return Err(Error::Config {
                key: "kafka.brokers".into(),
                message: "no brokers given; set at least one host:port".into(),
            });
        }
        let config =
            ProducerConfig::new(&options.producer_properties()).map_err(|e| Error::Config {
                key: "kafka".into(),
                message: format!("the confluent producer refuses its configuration: {e}"),
            })?;
        let producer = KafkaProducer::new(
            config,
            ByteArraySerializer::default(),
            ByteArraySerializer::default(),
        )
        .map_err(|e| failed("create confluent producer", &e))?;
        let admin = admin::Admin::new(&options)?;
        if let Err(e) = admin.cluster_id(options.request_timeout).await {
            admin.abandon().await;
            producer.close_with_timeout(Duration::ZERO).await.ok();
            return Err(connect_failed(&options, e).await);
        }
        Ok(Self {
            options,
            producer,
            admin,
            partition_counts: PartitionCounts::default(),
        })
    }

    /// Sends what the producer holds, then closes the producer and the admin client.
    ///
    /// # Errors
    ///
    /// The producer could not deliver its records within the request timeout.
    pub async fn close(&self) -> Result<()> {
        let flushed = self
            .producer
            .flush()
            .await
            .map_err(|e| failed("flush confluent producer", &e));
        let closed = self
            .producer
            .close_with_timeout(self.options.request_timeout)
            .await
            .map_err(|e| failed("close confluent producer", &e));
        self.admin.close().await;
        flushed.and(closed)
    }

    /// The options this transport was built with.
    pub fn options(&self) -> &ConfluentOptions {
        &self.options
    }

    /// The admin client of this transport (topics, offsets, group configs).
    pub fn admin(&self) -> &admin::Admin {
        &self.admin
    }

    async fn read_partition_count(&self, topic: &str) -> Result<i32> {
        if let Some(count) = self.partition_counts.get(topic) {
            return Ok(count);
        }
        // The producer's metadata path creates the topic when the broker auto-creates topics,
        // as the trait asks.
        let partitions = self
            .producer
            .partitions_for(topic)
            .await
            .map_err(|e| failed(format!("read partitions of {topic}"), &e))?;
        let count = partitions.len() as i32;
        self.partition_counts.insert(topic, count);
        Ok(count)
    }

    async fn send(&self, record: &OutgoingRecord) -> Result<i64> {
        let op = || format!("produce to {}[{}]", record.topic, record.partition);
        let headers = headers::cloud_events(&record.value);
        let key = record.key.as_deref();
        let value = (!record.value.is_empty()).then_some(record.value.as_slice());
        let outgoing = ProducerRecord::with_partition_key_headers(
            record.topic.clone(),
            Some(record.partition),
            key,
            value,
            headers,
        )
        .map_err(|e| Error::transport(op(), e, false))?;
        let pending = self
            .producer
            .send(outgoing, None)
            .await
            .map_err(|e| failed(op(), &e))?;
        let metadata = pending.get().await.map_err(|e| failed(op(), &e))?;
        Ok(if metadata.has_offset() {
            metadata.offset()
        } else {
            -1
        })
    }
}

impl Transport for ConfluentTransport {
    fn partition_count<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<i32>> {
        Box::pin(self.read_partition_count(topic))
    }

    fn end_offsets<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<BTreeMap<i32, i64>>> {
        Box::pin(async move {
            let count = self.read_partition_count(topic).await?;
            self.admin.end_offsets(topic, count).await
        })
    }

    fn create_topic<'a>(&'a self, topic: &'a str, partitions: i32) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.admin.create_topic(topic, partitions))
    }

    fn produce(&self, record: OutgoingRecord) -> BoxFuture<'_, std::result::Result<i64, Unsent>> {
        Box::pin(async move {
            let result = self.send(&record).await;
            result.map_err(|error| {
                // The topic may have changed (deleted, re-created, grown): read it again.
                self.partition_counts.forget(&record.topic);
                Unsent::new(record, error)
            })
        })
    }

    fn join(&self, options: GroupOptions) -> BoxFuture<'_, Result<Box<dyn GroupMember>>> {
        Box::pin(async move {
            if self.options.set_group_timeouts {
                self.admin.set_group_timeouts(&options).await;
            }
            let member = ConfluentMember::join(&self.options, options).await?;
            Ok(Box::new(member) as Box<dyn GroupMember>)
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.producer
                .flush()
                .await
                .map_err(|e| failed("flush confluent producer", &e))
        })
    }

    fn close(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(ConfluentTransport::close(self))
    }

    fn name(&self) -> &'static str {
        "confluent"
    }

    fn brokers(&self) -> Vec<String> {
        self.options.brokers.clone()
    }
}

fn to_kafka(tp: &crate::transport::TopicPartition) -> KafkaPartition {
    KafkaPartition::new(tp.topic.as_str(), tp.partition)
}

fn from_kafka(tp: &KafkaPartition) -> crate::transport::TopicPartition {
    crate::transport::TopicPartition::new(tp.topic(), tp.partition())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secret_properties() {
        let mut options = ConfluentOptions::new(["b:9092"]);
        options
            .properties
            .insert("sasl.jaas.config".into(), "user pass".into());
        options
            .properties
            .insert("ssl.key.password".into(), "hunter2".into());
        options
            .properties
            .insert("security.protocol".into(), "SASL_PLAINTEXT".into());
        let debug = format!("{options:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("user pass"),
            "{debug}"
        );
        assert!(debug.contains("SASL_PLAINTEXT"), "{debug}");
    }

    #[test]
    fn producer_properties_default_to_idempotent_acks_all() {
        let props = ConfluentOptions::new(["b:9092"]).producer_properties();
        assert_eq!(props["acks"], "all");
        assert_eq!(props["enable.idempotence"], "true");
        let mut one = ConfluentOptions::new(["b:9092"]);
        one.acks = Acks::One;
        assert_eq!(one.producer_properties()["enable.idempotence"], "false");
    }

    /// A file of the temp directory holding `contents`; its path.
    fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("godev-confluent-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// TLS and SASL become the Java client's `security.protocol`, `ssl.*` and `sasl.*`
    /// properties, the same for the producer, the consumers and the admin client; the crate
    /// takes them all.
    #[test]
    fn tls_and_sasl_become_the_security_properties() {
        let ca = temp_file("ca.pem", "CA PEM");
        let cert = temp_file("cert.pem", "CERT PEM");
        let key = temp_file("key.pem", "KEY PEM");
        let mut options = ConfluentOptions::new(["b:9093"]);
        options.tls = Some(TlsOptions {
            ca_file: Some(ca.clone()),
            cert_file: Some(cert.clone()),
            key_file: Some(key.clone()),
            verify_hostname: true,
        });
        options.sasl = Some(SaslOptions::password(
            crate::transport::SaslMechanism::Plain,
            "al\"ice",
            crate::transport::Secret::new("pa\\ss\"word\n"),
        ));
        let expected = [
            ("security.protocol", "SASL_SSL"),
            ("ssl.endpoint.identification.algorithm", "https"),
            ("ssl.truststore.type", "PEM"),
            ("ssl.truststore.location", ca.to_str().unwrap()),
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.certificate.chain", "CERT PEM"),
            ("ssl.keystore.key", "KEY PEM"),
            ("sasl.mechanism", "PLAIN"),
            (
                "sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required \
                 username=\"al\\\"ice\" password=\"pa\\\\ss\\\"word\\n\";",
            ),
        ];
        for props in [
            options.producer_properties(),
            options.consumer_properties(),
            options.connection(),
        ] {
            for (key, value) in expected {
                assert_eq!(props.get(key).map(String::as_str), Some(value), "{key}");
            }
            assert!(!props.contains_key("ssl.keystore.location"), "{props:?}");
        }
        ProducerConfig::new(&options.producer_properties())
            .expect("the crate takes the security properties");

        let debug = format!("{options:?}");
        assert!(!debug.contains("ss\\\"word"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");

        // Each alone; a host name left unchecked; neither.
        let sasl = options.sasl.take();
        options.tls.as_mut().unwrap().verify_hostname = false;
        let ssl = options.producer_properties();
        assert_eq!(ssl["security.protocol"], "SSL");
        assert_eq!(ssl["ssl.endpoint.identification.algorithm"], "");
        assert!(!ssl.keys().any(|k| k.starts_with("sasl.")), "{ssl:?}");
        options.tls = None;
        options.sasl = sasl;
        let sasl_plaintext = options.producer_properties();
        assert_eq!(sasl_plaintext["security.protocol"], "SASL_PLAINTEXT");
        assert!(
            !sasl_plaintext.keys().any(|k| k.starts_with("ssl.")),
            "{sasl_plaintext:?}"
        );
        options.sasl = None;
        let plaintext = options.producer_properties();
        assert!(
            !plaintext.keys().any(|k| k.starts_with("ssl.")
                || k.starts_with("sasl.")
                || k.starts_with("security.")),
            "{plaintext:?}"
        );
        for path in [ca, cert, key] {
            std::fs::remove_file(path).unwrap();
        }
    }

    /// A client key that cannot be read when the clients are built is handed to the crate as
    /// the key store's location, so that the crate's error names it; TLS without a CA file
    /// names no trust store.
    #[test]
    fn an_unreadable_client_key_is_left_to_the_crate_to_report() {
        let cert = temp_file("cert-only.pem", "CERT PEM");
        let mut options = ConfluentOptions::new(["b:9093"]);
        options.tls = Some(TlsOptions {
            cert_file: Some(cert.clone()),
            key_file: Some("/nonexistent/client.key".into()),
            ..TlsOptions::default()
        });
        let props = options.producer_properties();
        assert_eq!(props["ssl.keystore.certificate.chain"], "CERT PEM");
        assert_eq!(props["ssl.keystore.location"], "/nonexistent/client.key");
        assert!(!props.contains_key("ssl.keystore.key"), "{props:?}");
        assert!(!props.contains_key("ssl.truststore.location"), "{props:?}");
        std::fs::remove_file(cert).unwrap();
    }

    /// The crate authenticates with PLAIN only: another mechanism is refused when the
    /// producer's configuration is built (config load refuses it earlier, naming `native`).
    #[test]
    fn the_crate_refuses_mechanisms_other_than_plain() {
        let mut options = ConfluentOptions::new(["b:9093"]);
        options.sasl = Some(SaslOptions::password(
            crate::transport::SaslMechanism::ScramSha256,
            "alice",
            crate::transport::Secret::new("s3cret"),
        ));
        let Err(error) = ProducerConfig::new(&options.producer_properties()) else {
            panic!("SCRAM is refused");
        };
        let error = error.to_string();
        assert!(error.contains("SCRAM-SHA-256"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }

    /// Every producer option reaches its property, and the fetch settings stay out of the
    /// producer's and the admin client's; the consumers have them.
    #[test]
    fn options_become_the_java_client_properties() {
        let mut options = ConfluentOptions::new(["b:9092"]);
        let defaults = options.producer_properties();
        assert_eq!(defaults["delivery.timeout.ms"], "120005");
        assert_eq!(defaults["batch.size"], "16384");
        assert!(!defaults.contains_key("fetch.min.bytes"), "{defaults:?}");
        options.batch_bytes = 65536;
        options.max_in_flight = 3;
        options.delivery_timeout = Some(Duration::from_secs(50));
        options.retry_backoff = Duration::from_millis(250);
        options.buffer_bytes = 1 << 20;
        options.max_block = Duration::from_secs(2);
        options.fetch_response_max_bytes = 8 << 20;
        options.fetch_min_bytes = 1024;
        options.fetch_max_wait = Duration::from_millis(200);
        options.isolation = Isolation::ReadCommitted;
        let producer = options.producer_properties();
        for (key, value) in [
            ("batch.size", "65536"),
            ("max.in.flight.requests.per.connection", "3"),
            ("delivery.timeout.ms", "50000"),
            ("retry.backoff.ms", "250"),
            ("buffer.memory", "1048576"),
            ("max.block.ms", "2000"),
        ] {
            assert_eq!(producer[key], value, "{key}");
        }
        let admin = options.connection();
        assert!(!admin.keys().any(|k| k.contains("fetch")), "{admin:?}");
        let common = options.consumer_properties();
        assert_eq!(common["max.partition.fetch.bytes"], "1048576");
        for (key, value) in [
            ("fetch.max.bytes", "8388608"),
            ("fetch.min.bytes", "1024"),
            ("fetch.max.wait.ms", "200"),
            ("isolation.level", "read_committed"),
        ] {
            assert_eq!(common[key], value, "{key}");
        }
        ProducerConfig::new(&producer).expect("the crate takes every producer property");
        confluent_kafka::consumer::ConsumerConfig::new(&{
            let mut props = common;
            props.insert("group.id".into(), "g".into());
            props.insert("group.protocol".into(), "consumer".into());
            props
        })
        .expect("the crate takes every consumer property");
    }
}

//! Configuration: a TOML file, overlaid by environment variables, checked before anything
//! connects.
//!
//! [`Config::load`] reads a file such as the repository's `config/config.toml`, then lets
//! environment variables override any key, then validates the result, so a typo or a bad
//! address fails at start-up with the key, the problem and the fix, never later as a
//! connection error. Every failure is an [`Error::Config`] whose `key` is the dotted key
//! (`kafka.consumer.max_attempts`) or, for a value from the environment, the variable
//! (`KAFKA_CONSUMER_MAX_ATTEMPTS`):
//!
//! ```text
//! config key `kafka.grup_id`: unknown key; did you mean `group_id`?
//! config key `KAFKA_CONTROL_PRODUCER_ENABLED`: expected true or false (or 1/0, yes/no), found `maybe`
//! ```
//!
//! Unknown keys are errors (with the closest known key), so a misspelt key is never silently
//! ignored. A key the chosen backend cannot honour is an error too, naming the backend and
//! what to use instead ([`Config::check_client`]):
//!
//! ```text
//! config key `kafka.producer.max_in_flight`: the `kafka` client sends one request at a time and cannot honour this key; use `client = "native"` or remove it
//! ```
//!
//! A key left at its default is never refused. `client = "auto"` is checked as `native` in a
//! build with the `native` feature, and otherwise when it picked a backend at start-up. The
//! `memory` backend ignores the producer, fetch and security keys and `group_instance_id`.
//! `kafka.producer.retries` is refused whatever the backend: no producer counts retries any
//! more (each retries a send until `delivery_timeout_ms`), and a key that did nothing would
//! only mislead.
//!
//! The config's secrets (`kafka.security.password`, `kafka.security.token` and what their
//! `_file` keys name) are [`Secret`](crate::transport::Secret)s: its `Debug` prints
//! `<redacted>` for them, so it is safe to log, and no error message shows one (an error
//! names the key, or the file's path, never what it holds). It knows no transport: the
//! [`Manager`](crate::Manager) turns it into a backend's options.
//!
//! # Keys
//!
//! Every key of a section can be overridden by `KAFKA_<SECTION>_<KEY>` in upper case.
//! Durations are whole milliseconds, at most 2147483647 (Kafka's 32-bit limit); counts are
//! at most 4294967295.
//!
//! ## `[kafka]`
//!
//! | Key | Default | Environment | Meaning |
//! |---|---|---|---|
//! | `brokers` | required | `KAFKA_BROKERS` (comma-separated) | bootstrap brokers, `host:port`; IPv6 as `[::1]:9092` |
//! | `group_id` | required | `KAFKA_GROUP_ID` | the consumer group |
//! | `client` | `"kafka"` | `KAFKA_CLIENT` | [`Client`]: `kafka` (Kafka ≤ 3.9), `confluent` (Kafka 4; feature `confluent`), `auto` (asks the broker) or `memory` |
//! | `codec` | `"cloudevents"` | `KAFKA_CODEC` | [`Codec`]: `cloudevents` or `tagged` (the Go kit's JSON) |
//! | `source` | `"godev-kafka"` | `KAFKA_SOURCE` | the CloudEvents `source` of produced events |
//!
//! ## `[kafka.topics]`
//!
//! Logical topic names (as in `#[event(topic = "user_events")]`) to real topics; any key is
//! allowed, each value must be a valid Kafka topic name (1 to 249 of `a-z A-Z 0-9 . _ -`).
//! A logical name without an entry is used as the real name ([`TopicMap`]).
//! `KAFKA_TOPICS_<LOGICAL>` (the logical name in upper case, other characters than letters
//! and digits as `_`) overrides an entry the file has: `KAFKA_TOPICS_USER_EVENTS`. The
//! environment cannot add entries.
//!
//! ## `[kafka.control]`
//!
//! | Key | Default | Environment |
//! |---|---|---|
//! | `producer_enabled` | `true` | `KAFKA_CONTROL_PRODUCER_ENABLED` |
//! | `consumer_enabled` | `true` | `KAFKA_CONTROL_CONSUMER_ENABLED` |
//!
//! In the environment, booleans are `true`/`false`, `1`/`0` or `yes`/`no`, in any case.
//!
//! ## `[kafka.producer]`
//!
//! Becomes [`Config::producer_tuning`], which the manager maps to the backend's options
//! (`Manager::kafka_options`, `Manager::native_options`, `Manager::confluent_options`); a key
//! not set keeps the default of `KafkaOptions::new`, `NativeOptions::new` or
//! `ConfluentOptions::new`. "Refused" means the backend cannot honour the key: setting it is
//! an error.
//!
//! | Key | Default | Environment | Backends |
//! |---|---|---|---|
//! | `acks` | `"all"` (`all`, `one`, `none`) | `KAFKA_PRODUCER_ACKS` | all |
//! | `compression` | `"none"` (`none`, `gzip`, `snappy`, `lz4`, `zstd`) | `KAFKA_PRODUCER_COMPRESSION` | `kafka` refuses `lz4` and `zstd` |
//! | `linger_ms` | `5` | `KAFKA_PRODUCER_LINGER_MS` | all |
//! | `batch_size` | `500` (records per request, at least 1) | `KAFKA_PRODUCER_BATCH_SIZE` | `kafka`; the others refuse it (use `batch_bytes`) |
//! | `batch_bytes` | `native`: `1000000`; `confluent`: `16384` (bytes per partition batch, at least 1) | `KAFKA_PRODUCER_BATCH_BYTES` | `native`, `confluent` |
//! | `max_in_flight` | `5` (requests per broker, at least 1) | `KAFKA_PRODUCER_MAX_IN_FLIGHT` | `native`, `confluent` |
//! | `idempotence` | `true` when `acks = "all"` and `max_in_flight` ≤ 5 | `KAFKA_PRODUCER_IDEMPOTENCE` | `native`, `confluent`; `kafka` refuses `true` |
//! | `retries` | none: no longer used | `KAFKA_PRODUCER_RETRIES` | refused by all, `memory` included: each producer retries a send until `delivery_timeout_ms`; remove it |
//! | `retry_backoff_ms` | `100` | `KAFKA_PRODUCER_RETRY_BACKOFF_MS` | all |
//! | `request_timeout_ms` | `30000` (at least 1) | `KAFKA_PRODUCER_REQUEST_TIMEOUT_MS` | all |
//! | `delivery_timeout_ms` | `kafka`, `native`: `120000`; `confluent`: `linger_ms` + 4 × `request_timeout_ms` (at least `linger_ms` + `request_timeout_ms`) | `KAFKA_PRODUCER_DELIVERY_TIMEOUT_MS` | all |
//! | `buffer_bytes` | `33554432` (bytes waiting to be sent, at least 1) | `KAFKA_PRODUCER_BUFFER_BYTES` | all |
//! | `max_block_ms` | `60000` (how long a send waits for room in the buffer) | `KAFKA_PRODUCER_MAX_BLOCK_MS` | all |
//!
//! An idempotent producer (`native` and `confluent`, by default) never writes a record twice
//! nor reorders a partition when it retries. `idempotence = true` needs `acks = "all"` and
//! `max_in_flight` at most 5.
//!
//! ## `[kafka.consumer]`
//!
//! Becomes [`Config::consumer_settings`], [`Config::unknown_tag`] and, for the `fetch_` keys
//! and `isolation_level`, [`Config::fetch_tuning`]; defaults are those of
//! [`ConsumerSettings::default`] and of the backend's options.
//!
//! | Key | Default | Environment |
//! |---|---|---|
//! | `offset_reset` | `"earliest"` (`earliest`, `latest`) | `KAFKA_CONSUMER_OFFSET_RESET` |
//! | `unknown_tag` | `"skip"` (`skip`, `dead_letter`, `fail`) | `KAFKA_CONSUMER_UNKNOWN_TAG` |
//! | `session_timeout_ms` | `10000` | `KAFKA_CONSUMER_SESSION_TIMEOUT_MS` |
//! | `heartbeat_interval_ms` | `3000` (less than `session_timeout_ms`) | `KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS` |
//! | `rebalance_timeout_ms` | `30000` | `KAFKA_CONSUMER_REBALANCE_TIMEOUT_MS` |
//! | `max_poll_interval_ms` | `300000` (a handler on one record longer than this gives the partitions up) | `KAFKA_CONSUMER_MAX_POLL_INTERVAL_MS` |
//! | `poll_wait_ms` | `100` | `KAFKA_CONSUMER_POLL_WAIT_MS` |
//! | `queue_capacity` | `256` (at least 1) | `KAFKA_CONSUMER_QUEUE_CAPACITY` |
//! | `commit_interval_ms` | `1000` | `KAFKA_CONSUMER_COMMIT_INTERVAL_MS` |
//! | `max_attempts` | `5` (at least 1) | `KAFKA_CONSUMER_MAX_ATTEMPTS` |
//! | `backoff_ms` | `100` | `KAFKA_CONSUMER_BACKOFF_MS` |
//! | `max_backoff_ms` | `10000` | `KAFKA_CONSUMER_MAX_BACKOFF_MS` |
//! | `max_retry_time_ms` | `60000` | `KAFKA_CONSUMER_MAX_RETRY_TIME_MS` |
//! | `dead_letter_suffix` | `".dlq"` (non-empty, topic-name characters) | `KAFKA_CONSUMER_DEAD_LETTER_SUFFIX` |
//! | `max_record_bytes` | `1048576` (at least 1) | `KAFKA_CONSUMER_MAX_RECORD_BYTES` |
//! | `shutdown_timeout_ms` | `25000` (at most `rebalance_timeout_ms` − 5000: the drain ends before the rebalance deadline; see [`ConsumerSettings::SHUTDOWN_MARGIN`]) | `KAFKA_CONSUMER_SHUTDOWN_TIMEOUT_MS` |
//! | `group_instance_id` | none: a dynamic member (non-empty; a static member's id, unique per process and kept across its restarts; every backend but `memory`) | `KAFKA_CONSUMER_GROUP_INSTANCE_ID` |
//! | `fetch_min_bytes` | `1` (the bytes a fetch waits for; `kafka` refuses it) | `KAFKA_CONSUMER_FETCH_MIN_BYTES` |
//! | `fetch_max_bytes` | `52428800` (the most bytes of one fetch response; `kafka` refuses it) | `KAFKA_CONSUMER_FETCH_MAX_BYTES` |
//! | `fetch_partition_max_bytes` | `1048576`, and at least `max_record_bytes` + 65536 (the most bytes of one partition per fetch) | `KAFKA_CONSUMER_FETCH_PARTITION_MAX_BYTES` |
//! | `fetch_max_wait_ms` | `500` (at least 1; how long the broker holds a fetch for `fetch_min_bytes`; `native` waits at most what is left of the poll; `kafka` refuses it) | `KAFKA_CONSUMER_FETCH_MAX_WAIT_MS` |
//! | `isolation_level` | `"read_uncommitted"` (`read_uncommitted`, `read_committed`; `kafka` refuses `read_committed`) | `KAFKA_CONSUMER_ISOLATION_LEVEL` |
//!
//! ## `[kafka.security]`
//!
//! Becomes [`Config::security`]: TLS and SASL for every connection of the backend. Which
//! keys mean something follows from `protocol`; a key set that means nothing with it (a
//! `password` with `protocol = "ssl"`, a `ca_file` with `sasl_plaintext`, a `token` with
//! `sasl_mechanism = "plain"`) is an error naming the key, and so is a key the protocol and
//! mechanism need and lack. Files are read (`password_file`, `token_file`: their trailing
//! newline trimmed) or opened (the PEM files) when the config is loaded, relative to the
//! working directory; one that cannot be is an error naming the key and the path. The
//! `kafka` backend refuses any `protocol` but `plaintext`; `confluent` refuses every
//! `sasl_mechanism` but `plain`; `native` honours every key; `memory` ignores them.
//!
//! | Key | Default | Environment | Meaning |
//! |---|---|---|---|
//! | `protocol` | `"plaintext"` (`plaintext`, `ssl`, `sasl_plaintext`, `sasl_ssl`) | `KAFKA_SECURITY_PROTOCOL` | [`SecurityProtocol`]: TLS with `ssl` and `sasl_ssl`, SASL with `sasl_plaintext` and `sasl_ssl`; `kafka` refuses all but `plaintext` |
//! | `sasl_mechanism` | required with `sasl_*` (`plain`, `scram-sha-256`, `scram-sha-512`, `oauthbearer`) | `KAFKA_SECURITY_SASL_MECHANISM` | `confluent` refuses all but `plain` |
//! | `username` | required with `plain` and `scram-*` | `KAFKA_SECURITY_USERNAME` | the SASL user |
//! | `password` | required with `plain` and `scram-*`, or `password_file` | `KAFKA_SECURITY_PASSWORD` | secret: better in the environment or a file than in the config file |
//! | `password_file` | none (a file holding the password; not with `password`) | `KAFKA_SECURITY_PASSWORD_FILE` | read at load, its trailing newline trimmed |
//! | `token` | required with `oauthbearer`, or `token_file` | `KAFKA_SECURITY_TOKEN` | secret: a static OAUTHBEARER token (tests; a program with a token provider sets `NativeOptions::sasl` itself) |
//! | `token_file` | none (a file holding the token; not with `token`) | `KAFKA_SECURITY_TOKEN_FILE` | read at load, its trailing newline trimmed |
//! | `ca_file` | none: the system's roots (`native`), webpki's (`confluent`) | `KAFKA_SECURITY_CA_FILE` | PEM file of the CAs to trust (`ssl`, `sasl_ssl`) |
//! | `cert_file` | none (with `key_file`: mutual TLS) | `KAFKA_SECURITY_CERT_FILE` | PEM file of the client's certificate chain (`ssl`, `sasl_ssl`) |
//! | `key_file` | none (with `cert_file`) | `KAFKA_SECURITY_KEY_FILE` | PEM file of the client's private key (`ssl`, `sasl_ssl`) |
//! | `verify_hostname` | `true` | `KAFKA_SECURITY_VERIFY_HOSTNAME` | whether the broker's certificate must name the host connected to (`ssl`, `sasl_ssl`) |

mod backends;
mod env;
mod file;
mod raw;
mod schema;
mod security;
mod suggest;
mod tuning;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crate::consumer::ConsumerSettings;
use crate::dispatch::UnknownTagPolicy;
use crate::event::Codec;
use crate::topics::TopicMap;
use crate::{Error, Result};

pub use self::security::{SaslSettings, SecurityProtocol, SecuritySettings};
pub use self::tuning::{FetchTuning, ProducerTuning};

/// The CloudEvents `source` when the config names none.
const DEFAULT_SOURCE: &str = "godev-kafka";
/// The consumer group of [`Config::memory`]; a config for a real broker has no default.
const MEMORY_GROUP_ID: &str = "godev-kafka";
/// The broker [`Config::memory`] lists (the memory client does not use it).
const LOCAL_BROKER: &str = "127.0.0.1:9092";

/// Which transport carries the records.
///
/// | Broker | `kafka` | `confluent` | `native` | `auto` picks |
/// |---|---|---|---|---|
/// | Kafka 0.10 | yes | no | no | `kafka` |
/// | Kafka 0.11 to 3.9 | yes | 3.7 to 3.9 with KIP-848 groups switched on | yes | `native` if built, else `kafka` |
/// | Kafka 4.0 and later | refused at start-up, naming the fix | yes | yes | `native` if built, else `confluent` |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Client {
    /// A real broker, through the `kafka` crate backend (`client = "kafka"`; Kafka 0.10 to
    /// 3.9).
    #[default]
    Kafka,
    /// A real broker, through the `confluent-kafka` backend (`client = "confluent"`; Kafka 4
    /// and later). Needs the cargo feature `confluent`.
    Confluent,
    /// A real broker, through the project's own client (`client = "native"`; Kafka 0.11 to
    /// 4.x). Needs the cargo feature `native`.
    Native,
    /// [`Native`](Client::Native) when this build has it, else whichever of
    /// [`Kafka`](Client::Kafka) and [`Confluent`](Client::Confluent) fits the broker, asked
    /// with an ApiVersions request at start-up (`client = "auto"`).
    Auto,
    /// The in-process [`MemoryTransport`](crate::transport::memory), for demos and tests
    /// (`client = "memory"`).
    Memory,
}

impl Client {
    /// The name the config file uses: `kafka`, `confluent`, `native`, `auto`, `memory`.
    pub fn as_str(self) -> &'static str {
        match self {
            Client::Kafka => "kafka",
            Client::Confluent => "confluent",
            Client::Native => "native",
            Client::Auto => "auto",
            Client::Memory => "memory",
        }
    }
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The validated configuration of a service: brokers, group, topics, producer and consumer
/// settings. See the [module docs](self) for every key, its default and its variable.
///
/// A `Config` is always valid: it comes from [`Config::load`] or [`Config::from_toml`],
/// which check everything, or from [`Config::memory`] and [`Config::default_for`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    brokers: Vec<String>,
    group_id: String,
    client: Client,
    codec: Codec,
    source: String,
    topics: BTreeMap<String, String>,
    producer_enabled: bool,
    consumer_enabled: bool,
    producer: ProducerTuning,
    fetch: FetchTuning,
    consumer: ConsumerSettings,
    unknown_tag: UnknownTagPolicy,
    security: SecuritySettings,
    /// The `[kafka.producer]`, `[kafka.consumer]` and `[kafka.security]` keys the file or
    /// the environment set: dotted key to the name errors blame (the dotted key, or the
    /// variable).
    origins: BTreeMap<String, String>,
}

impl Config {
    /// Reads the TOML file at `path`, overlays the process environment, and validates.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let config = godev_kafka::Config::load("config/config.toml")?;
    /// println!("brokers: {:?}", config.brokers());
    /// # Ok::<(), godev_kafka::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] with the path as key when the file cannot be read, else as
    /// [`Config::from_toml`].
    pub fn load(path: impl AsRef<Path>) -> Result<Config> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                "; create it or pass another path"
            } else {
                ""
            };
            error(
                &origin,
                format!("cannot read config file `{origin}`: {e}{hint}"),
            )
        })?;
        Self::from_toml(&text, &origin, |name| {
            std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
        })
    }

    /// Parses `text`, overlays the variables `env` returns, and validates. `origin` names
    /// the text in syntax errors (usually the file name). Tests pass a map as `env` rather
    /// than changing the process environment.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use godev_kafka::config::{Client, Config};
    ///
    /// let text = r#"
    ///     [kafka]
    ///     brokers = ["127.0.0.1:9092"]
    ///     group_id = "billing"
    ///     [kafka.topics]
    ///     user_events = "user-events"
    /// "#;
    /// let env = HashMap::from([("KAFKA_CLIENT", "memory")]);
    /// let config = Config::from_toml(text, "config.toml", |name| env.get(name).map(|v| v.to_string()))?;
    /// assert_eq!(config.client(), Client::Memory);
    /// assert_eq!(config.topic_map().resolve("user_events"), "user-events");
    ///
    /// let typo = Config::from_toml("[kafka]\ngrup_id = \"billing\"", "config.toml", |_| None);
    /// assert_eq!(
    ///     typo.unwrap_err().to_string(),
    ///     "config key `kafka.grup_id`: unknown key; did you mean `group_id`?"
    /// );
    /// # Ok::<(), godev_kafka::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the key (or the variable) for: a TOML syntax error (with line
    /// and column; the key is `origin`), an unknown key, a value of the wrong type, a value
    /// out of range or not among the accepted ones, a missing `brokers` or `group_id`, a
    /// broker that is not `host:port`, an invalid topic name, a heartbeat interval not below
    /// the session timeout, a shutdown timeout that does not end 5000 ms before the
    /// rebalance timeout, a producer key that contradicts another (`idempotence` and `acks`
    /// or `max_in_flight`, `delivery_timeout_ms` below `linger_ms` + `request_timeout_ms`), a
    /// `[kafka.security]` key the protocol or the mechanism needs and lacks or makes
    /// meaningless, a file named there that cannot be read, or a key the chosen backend
    /// cannot honour (see [`Config::check_client`]).
    pub fn from_toml(
        text: &str,
        origin: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config> {
        let mut raw = file::read(text, origin)?;
        env::overlay(&mut raw, &env)?;
        validate::build(raw)
    }

    /// A config for the in-memory transport: client [`Client::Memory`], group
    /// `godev-kafka`, no topic entries, every other key at its default. Its broker,
    /// `127.0.0.1:9092`, is not used by the memory client.
    ///
    /// Unlike [`Config::default_for`], it may default the group: the memory transport's
    /// groups live in one process, so no other service can join this one by chance.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = godev_kafka::Config::memory();
    /// assert_eq!(config.client(), godev_kafka::config::Client::Memory);
    /// assert!(config.producer_enabled() && config.consumer_enabled());
    /// ```
    pub fn memory() -> Config {
        Config {
            client: Client::Memory,
            ..Self::defaults(vec![LOCAL_BROKER.to_owned()], MEMORY_GROUP_ID.to_owned())
        }
    }

    /// A config for a real broker at `brokers` whose consumers join `group_id`: client
    /// [`Client::Kafka`], no topic entries, every other key at its default.
    ///
    /// The group has no default, as `kafka.group_id` has none in a file: two services that
    /// shared one would split its partitions, each handling only part of the records.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = godev_kafka::Config::default_for(["127.0.0.1:9092"], "billing")?;
    /// assert_eq!(config.group_id(), "billing");
    ///
    /// let nameless = godev_kafka::Config::default_for(["127.0.0.1:9092"], "");
    /// assert_eq!(
    ///     nameless.unwrap_err().to_string(),
    ///     "config key `kafka.group_id`: must not be empty; name the service's consumer group"
    /// );
    /// # Ok::<(), godev_kafka::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for `kafka.brokers` when the list is empty or an address is not
    /// `host:port`, and for `kafka.group_id` when `group_id` is empty.
    pub fn default_for(
        brokers: impl IntoIterator<Item = impl Into<String>>,
        group_id: impl Into<String>,
    ) -> Result<Config> {
        let brokers: Vec<String> = brokers.into_iter().map(Into::into).collect();
        validate::check_brokers(&schema::KAFKA.dotted(&schema::BROKERS), &brokers)?;
        let group_id = group_id.into();
        if group_id.trim().is_empty() {
            return Err(error(
                schema::KAFKA.dotted(&schema::GROUP_ID),
                "must not be empty; name the service's consumer group",
            ));
        }
        Ok(Self::defaults(brokers, group_id))
    }

    fn defaults(brokers: Vec<String>, group_id: String) -> Config {
        Config {
            brokers,
            group_id,
            client: Client::default(),
            codec: Codec::default(),
            source: DEFAULT_SOURCE.to_owned(),
            topics: BTreeMap::new(),
            producer_enabled: true,
            consumer_enabled: true,
            producer: ProducerTuning::default(),
            fetch: FetchTuning::default(),
            consumer: ConsumerSettings::default(),
            unknown_tag: UnknownTagPolicy::default(),
            security: SecuritySettings::default(),
            origins: BTreeMap::new(),
        }
    }

    /// The bootstrap brokers, `host:port`; never empty.
    pub fn brokers(&self) -> &[String] {
        &self.brokers
    }

    /// The consumer group.
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// Which transport to use.
    pub fn client(&self) -> Client {
        self.client
    }

    /// How event values are encoded.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The CloudEvents `source` of produced events.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether producing is enabled (`kafka.control.producer_enabled`).
    pub fn producer_enabled(&self) -> bool {
        self.producer_enabled
    }

    /// Whether consuming is enabled (`kafka.control.consumer_enabled`).
    pub fn consumer_enabled(&self) -> bool {
        self.consumer_enabled
    }

    /// The `[kafka.topics]` entries: logical name to real topic, sorted by logical name.
    pub fn topics(&self) -> &BTreeMap<String, String> {
        &self.topics
    }

    /// The topic table: `[kafka.topics]`, with unlisted logical names used as they are.
    pub fn topic_map(&self) -> TopicMap {
        self.topics.iter().collect()
    }

    /// The consumer settings of `[kafka.consumer]` (except `unknown_tag`).
    pub fn consumer_settings(&self) -> ConsumerSettings {
        self.consumer.clone()
    }

    /// What consumers do with a record no handler claims (`kafka.consumer.unknown_tag`).
    pub fn unknown_tag(&self) -> UnknownTagPolicy {
        self.unknown_tag
    }

    /// The `[kafka.producer]` keys, typed; `None` for a key left to the backend's default.
    ///
    /// # Examples
    ///
    /// ```
    /// use godev_kafka::transport::{Acks, Compression};
    ///
    /// let toml = "[kafka]\nbrokers = [\"b:9092\"]\ngroup_id = \"g\"\nclient = \"memory\"\n\
    ///             [kafka.producer]\nacks = \"one\"\ncompression = \"lz4\"\n";
    /// let config = godev_kafka::Config::from_toml(toml, "config.toml", |_| None)?;
    /// let producer = config.producer_tuning();
    /// assert_eq!(producer.acks, Some(Acks::One));
    /// assert_eq!(producer.compression, Some(Compression::Lz4));
    /// assert_eq!(producer.linger, None);
    /// assert!(!producer.idempotent());
    /// # Ok::<(), godev_kafka::Error>(())
    /// ```
    pub fn producer_tuning(&self) -> &ProducerTuning {
        &self.producer
    }

    /// The fetch keys of `[kafka.consumer]` (`fetch_min_bytes`, `fetch_max_bytes`,
    /// `fetch_partition_max_bytes`, `fetch_max_wait_ms`, `isolation_level`), typed.
    pub fn fetch_tuning(&self) -> &FetchTuning {
        &self.fetch
    }

    /// The `[kafka.security]` keys, typed: the protocol, TLS files, SASL mechanism and
    /// credentials (passwords and tokens as [`Secret`](crate::transport::Secret)s, which
    /// print `<redacted>`). The manager maps them to the backend's options.
    ///
    /// # Examples
    ///
    /// ```
    /// use godev_kafka::config::{Config, SecurityProtocol};
    /// use godev_kafka::transport::SaslMechanism;
    ///
    /// let toml = "[kafka]\nbrokers = [\"b:9092\"]\ngroup_id = \"g\"\nclient = \"memory\"\n\
    ///             [kafka.security]\nprotocol = \"sasl_plaintext\"\n\
    ///             sasl_mechanism = \"scram-sha-512\"\nusername = \"alice\"\n";
    /// let env = |name: &str| (name == "KAFKA_SECURITY_PASSWORD").then(|| "s3cret".to_string());
    /// let config = Config::from_toml(toml, "config.toml", env)?;
    /// let security = config.security();
    /// assert_eq!(security.protocol, SecurityProtocol::SaslPlaintext);
    /// assert!(security.tls.is_none());
    /// let sasl = security.sasl.as_ref().unwrap();
    /// assert_eq!(sasl.mechanism, SaslMechanism::ScramSha512);
    /// assert_eq!(sasl.username.as_deref(), Some("alice"));
    /// assert_eq!(sasl.password.as_ref().unwrap().expose(), "s3cret");
    /// assert!(!format!("{config:?}").contains("s3cret"));
    /// # Ok::<(), godev_kafka::Error>(())
    /// ```
    pub fn security(&self) -> &SecuritySettings {
        &self.security
    }

    /// Whether the backend `client` honours every key this config sets. [`Config::load`]
    /// checks the configured client (`auto` as `native` in a build with that feature);
    /// [`Manager::connect`](crate::Manager::connect) checks the backend `auto` picked.
    /// [`Client::Auto`] and [`Client::Memory`] pass.
    ///
    /// # Examples
    ///
    /// ```
    /// use godev_kafka::config::{Client, Config};
    ///
    /// let toml = "[kafka]\nbrokers = [\"b:9092\"]\ngroup_id = \"g\"\nclient = \"memory\"\n\
    ///             [kafka.producer]\nbatch_size = 100\n";
    /// let config = Config::from_toml(toml, "config.toml", |_| None)?;
    /// assert!(config.check_client(Client::Kafka).is_ok());
    /// assert_eq!(
    ///     config.check_client(Client::Native).unwrap_err().to_string(),
    ///     "config key `kafka.producer.batch_size`: the `native` client limits a batch by bytes, \
    ///      not records, and cannot honour this key; use `batch_bytes`"
    /// );
    /// # Ok::<(), godev_kafka::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first such key (as the file or the environment named it),
    /// the backend, and what to use instead.
    pub fn check_client(&self, client: Client) -> Result<()> {
        backends::check(self, client)
    }
}

/// An [`Error::Config`].
fn error(key: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Config {
        key: key.into(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests;

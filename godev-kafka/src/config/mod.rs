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
//! ignored. The config holds no secrets yet (the `kafka` backend has no TLS or SASL), so its
//! `Debug` output is safe to log.
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
//! Used by `Config::kafka_options` (feature `kafka`) and `Config::confluent_options` (feature
//! `confluent`); defaults are those of `KafkaOptions::new` and `ConfluentOptions::new`.
//!
//! | Key | Default | Environment |
//! |---|---|---|
//! | `acks` | `"all"` (`all`, `one`, `none`; `confluent`: `all`, `one`) | `KAFKA_PRODUCER_ACKS` |
//! | `compression` | `"none"` (`none`, `gzip`, `snappy`) | `KAFKA_PRODUCER_COMPRESSION` |
//! | `linger_ms` | `5` | `KAFKA_PRODUCER_LINGER_MS` |
//! | `batch_size` | `500` (at least 1; `kafka` only) | `KAFKA_PRODUCER_BATCH_SIZE` |
//! | `retries` | `5` (`kafka` only; `confluent` retries until its delivery timeout) | `KAFKA_PRODUCER_RETRIES` |
//! | `retry_backoff_ms` | `100` (`kafka` only) | `KAFKA_PRODUCER_RETRY_BACKOFF_MS` |
//! | `request_timeout_ms` | `30000` (at least 1) | `KAFKA_PRODUCER_REQUEST_TIMEOUT_MS` |
//!
//! With `confluent`, `acks = "all"` makes the producer idempotent (retries never duplicate or
//! reorder a partition's records).
//!
//! ## `[kafka.consumer]`
//!
//! Becomes [`Config::consumer_settings`] and [`Config::unknown_tag`]; defaults are those of
//! [`ConsumerSettings::default`].
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
//! | `shutdown_timeout_ms` | `30000` | `KAFKA_CONSUMER_SHUTDOWN_TIMEOUT_MS` |

mod env;
mod file;
mod raw;
mod schema;
mod suggest;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::consumer::ConsumerSettings;
use crate::dispatch::UnknownTagPolicy;
use crate::event::Codec;
use crate::topics::TopicMap;
#[cfg(feature = "confluent")]
use crate::transport::confluent::ConfluentOptions;
#[cfg(feature = "kafka")]
use crate::transport::kafka::KafkaOptions;
#[cfg(feature = "native")]
use crate::transport::native::NativeOptions;
use crate::{Error, Result};

/// The CloudEvents `source` when the config names none.
const DEFAULT_SOURCE: &str = "godev-kafka";
/// The consumer group of [`Config::memory`] and [`Config::default_for`].
const DEFAULT_GROUP_ID: &str = "godev-kafka";
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

/// The `[kafka.producer]` keys the file or environment set; the rest keep the defaults of
/// `KafkaOptions::new`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
struct ProducerOverrides {
    acks: Option<&'static str>,
    compression: Option<&'static str>,
    linger: Option<Duration>,
    batch_size: Option<usize>,
    retries: Option<u32>,
    retry_backoff: Option<Duration>,
    request_timeout: Option<Duration>,
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
    producer: ProducerOverrides,
    consumer: ConsumerSettings,
    unknown_tag: UnknownTagPolicy,
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
    /// broker that is not `host:port`, an invalid topic name, or a heartbeat interval not
    /// below the session timeout.
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
            ..Self::defaults(vec![LOCAL_BROKER.to_owned()])
        }
    }

    /// A config for a real broker at `brokers`: client [`Client::Kafka`], group
    /// `godev-kafka`, no topic entries, every other key at its default.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = godev_kafka::Config::default_for(["127.0.0.1:9092"])?;
    /// assert_eq!(config.group_id(), "godev-kafka");
    /// # Ok::<(), godev_kafka::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for `kafka.brokers` when the list is empty or an address is not
    /// `host:port`.
    pub fn default_for(brokers: impl IntoIterator<Item = impl Into<String>>) -> Result<Config> {
        let brokers: Vec<String> = brokers.into_iter().map(Into::into).collect();
        validate::check_brokers(&schema::KAFKA.dotted(&schema::BROKERS), &brokers)?;
        Ok(Self::defaults(brokers))
    }

    fn defaults(brokers: Vec<String>) -> Config {
        Config {
            brokers,
            group_id: DEFAULT_GROUP_ID.to_owned(),
            client: Client::default(),
            codec: Codec::default(),
            source: DEFAULT_SOURCE.to_owned(),
            topics: BTreeMap::new(),
            producer_enabled: true,
            consumer_enabled: true,
            producer: ProducerOverrides::default(),
            consumer: ConsumerSettings::default(),
            unknown_tag: UnknownTagPolicy::default(),
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

    /// The options of the `kafka` crate backend (feature `kafka`): the brokers and
    /// `[kafka.producer]`, other options at the defaults of [`KafkaOptions::new`].
    #[cfg(feature = "kafka")]
    pub fn kafka_options(&self) -> KafkaOptions {
        let p = &self.producer;
        let mut options = KafkaOptions::new(self.brokers.iter().cloned());
        options.acks = self.acks().unwrap_or(options.acks);
        options.compression = self.compression().unwrap_or(options.compression);
        options.linger = p.linger.unwrap_or(options.linger);
        options.batch_size = p.batch_size.unwrap_or(options.batch_size);
        options.retries = p.retries.unwrap_or(options.retries);
        options.retry_backoff = p.retry_backoff.unwrap_or(options.retry_backoff);
        options.request_timeout = p.request_timeout.unwrap_or(options.request_timeout);
        options.fetch_max_bytes = options.fetch_max_bytes.max(self.largest_fetch());
        options
    }
}

#[cfg(feature = "confluent")]
impl Config {
    /// The options of the `confluent` backend (feature `confluent`): the brokers and
    /// `[kafka.producer]` (`acks`, `compression`, `linger_ms`, `request_timeout_ms`), other
    /// options at the defaults of [`ConfluentOptions::new`]. `acks = "all"` (the default)
    /// keeps the producer idempotent.
    ///
    /// # Examples
    ///
    /// ```
    /// use godev_kafka::transport::confluent::Acks;
    ///
    /// let toml = "[kafka]\nbrokers = [\"b:9094\"]\ngroup_id = \"g\"\nclient = \"confluent\"\n\
    ///             [kafka.producer]\nacks = \"one\"\n";
    /// let config = godev_kafka::Config::from_toml(toml, "config.toml", |_| None)?;
    /// let options = config.confluent_options();
    /// assert_eq!(options.acks, Acks::One);
    /// assert!(!options.idempotence);
    /// # Ok::<(), godev_kafka::Error>(())
    /// ```
    pub fn confluent_options(&self) -> ConfluentOptions {
        let p = &self.producer;
        let mut options = ConfluentOptions::new(self.brokers.iter().cloned());
        options.acks = self.acks().unwrap_or(options.acks);
        options.idempotence = options.acks == crate::transport::Acks::All;
        options.compression = self.compression().unwrap_or(options.compression);
        options.linger = p.linger.unwrap_or(options.linger);
        options.request_timeout = p.request_timeout.unwrap_or(options.request_timeout);
        let largest = self.largest_fetch();
        options.fetch_max_bytes = options.fetch_max_bytes.max(largest);
        options
    }
}

#[cfg(feature = "native")]
impl Config {
    /// The options of the `native` backend (feature `native`): the brokers and
    /// `[kafka.producer]` (`acks`, `compression`, `linger_ms`, `retry_backoff_ms`,
    /// `request_timeout_ms`), other options at the defaults of [`NativeOptions::new`].
    /// `acks = "all"` (the default) keeps the producer idempotent.
    ///
    /// # Examples
    ///
    /// ```
    /// use godev_kafka::transport::{Acks, Compression};
    ///
    /// let toml = "[kafka]\nbrokers = [\"b:9092\"]\ngroup_id = \"g\"\nclient = \"native\"\n\
    ///             [kafka.producer]\nacks = \"one\"\ncompression = \"lz4\"\n";
    /// let config = godev_kafka::Config::from_toml(toml, "config.toml", |_| None)?;
    /// let options = config.native_options();
    /// assert_eq!(options.acks, Acks::One);
    /// assert_eq!(options.compression, Compression::Lz4);
    /// assert!(!options.idempotence);
    /// # Ok::<(), godev_kafka::Error>(())
    /// ```
    pub fn native_options(&self) -> NativeOptions {
        let p = &self.producer;
        let mut options = NativeOptions::new(self.brokers.iter().cloned());
        options.acks = self.acks().unwrap_or(options.acks);
        options.idempotence = options.acks == crate::transport::Acks::All;
        options.compression = self.compression().unwrap_or(options.compression);
        options.linger = p.linger.unwrap_or(options.linger);
        options.retry_backoff = p.retry_backoff.unwrap_or(options.retry_backoff);
        options.request_timeout = p.request_timeout.unwrap_or(options.request_timeout);
        let largest = self.largest_fetch();
        options.fetch_partition_max_bytes = options.fetch_partition_max_bytes.max(largest);
        options
    }
}

impl Config {
    /// `kafka.producer.acks`, if set.
    #[cfg_attr(
        not(any(feature = "kafka", feature = "confluent", feature = "native")),
        allow(dead_code)
    )]
    fn acks(&self) -> Option<crate::transport::Acks> {
        use crate::transport::Acks;
        self.producer.acks.map(|acks| match acks {
            "all" => Acks::All,
            "one" => Acks::One,
            "none" => Acks::None,
            other => unreachable!("acks `{other}` passed the schema"),
        })
    }

    /// `kafka.producer.compression`, if set.
    #[cfg_attr(
        not(any(feature = "kafka", feature = "confluent", feature = "native")),
        allow(dead_code)
    )]
    fn compression(&self) -> Option<crate::transport::Compression> {
        use crate::transport::Compression;
        self.producer.compression.map(|c| match c {
            "none" => Compression::None,
            "gzip" => Compression::Gzip,
            "snappy" => Compression::Snappy,
            "lz4" => Compression::Lz4,
            "zstd" => Compression::Zstd,
            other => unreachable!("compression `{other}` passed the schema"),
        })
    }

    /// The fetch size a consumer needs so that a record larger than the fetch limit reaches
    /// the consumer's oversized-record check (and the dead-letter topic) instead of stalling
    /// its partition: `max_record_bytes` plus room for the batch overhead.
    #[cfg_attr(
        not(any(feature = "kafka", feature = "confluent", feature = "native")),
        allow(dead_code)
    )]
    fn largest_fetch(&self) -> i32 {
        let largest = self.consumer.max_record_bytes.saturating_add(64 * 1024);
        i32::try_from(largest).unwrap_or(i32::MAX)
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

//! From a [`Config`] to a backend's options, and from a broker's answer to a backend: the
//! config knows no transport and no transport knows the config, so the mapping lives here.
//!
//! Each function starts from the backend's own defaults (`KafkaOptions::new`, ...) and sets
//! what the config sets. A key the backend cannot honour was refused when the config was
//! loaded (or, for `auto`, by [`Manager::connect`] once it picked the backend), so these
//! functions leave such keys out rather than fail.

#[cfg(any(feature = "kafka", feature = "confluent", feature = "native"))]
use crate::config::Client;
#[cfg(any(feature = "kafka", feature = "confluent", feature = "native"))]
use crate::config::Config;
#[cfg(feature = "confluent")]
use crate::transport::confluent::ConfluentOptions;
#[cfg(any(feature = "kafka", feature = "confluent", feature = "native"))]
use crate::transport::detect::BrokerFeatures;
#[cfg(feature = "kafka")]
use crate::transport::kafka::KafkaOptions;
#[cfg(feature = "native")]
use crate::transport::native::NativeOptions;
#[cfg(any(feature = "confluent", feature = "native"))]
use crate::transport::{SaslMechanism, SaslOptions, StaticToken, Token};

use super::Manager;

/// Sets on `$options` (native or confluent, whose fields share these names) what the
/// producer tuning `$p` and the fetch tuning `$f` set, leaving the rest at its default.
#[cfg(any(feature = "confluent", feature = "native"))]
macro_rules! set_shared_tuning {
    ($options:ident, $p:ident, $f:ident) => {
        $options.acks = $p.acks.unwrap_or($options.acks);
        $options.idempotence = $p.idempotent();
        $options.compression = $p.compression.unwrap_or($options.compression);
        $options.linger = $p.linger.unwrap_or($options.linger);
        $options.batch_bytes = $p.batch_bytes.unwrap_or($options.batch_bytes);
        $options.max_in_flight = $p.max_in_flight.unwrap_or($options.max_in_flight);
        $options.retry_backoff = $p.retry_backoff.unwrap_or($options.retry_backoff);
        $options.request_timeout = $p.request_timeout.unwrap_or($options.request_timeout);
        $options.buffer_bytes = $p.buffer_bytes.unwrap_or($options.buffer_bytes);
        $options.max_block = $p.max_block.unwrap_or($options.max_block);
        $options.fetch_min_bytes = $f.min_bytes.unwrap_or($options.fetch_min_bytes);
        $options.fetch_max_wait = $f.max_wait.unwrap_or($options.fetch_max_wait);
        $options.isolation = $f.isolation;
    };
}

impl Manager {
    /// The options of the `kafka` crate backend (feature `kafka`) for `config`: its brokers,
    /// `[kafka.producer]` (`acks`, `compression`, `linger_ms`, `batch_size`,
    /// `retry_backoff_ms`, `request_timeout_ms`, `delivery_timeout_ms`, `buffer_bytes`,
    /// `max_block_ms`) and `fetch_partition_max_bytes`, the rest at the defaults of
    /// [`KafkaOptions::new`]. The per-partition fetch limit is at least
    /// `max_record_bytes` + 64 KiB, so that a record too large for the consumer reaches its
    /// dead-letter check instead of stalling its partition.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use godev_kafka::Manager;
    /// use godev_kafka::transport::Compression;
    ///
    /// let toml = "[kafka]\nbrokers = [\"b:9092\"]\ngroup_id = \"g\"\n\
    ///             [kafka.producer]\ncompression = \"snappy\"\ndelivery_timeout_ms = 60000\n";
    /// let config = godev_kafka::Config::from_toml(toml, "config.toml", |_| None)?;
    /// let options = Manager::kafka_options(&config);
    /// assert_eq!(options.compression, Compression::Snappy);
    /// assert_eq!(options.delivery_timeout, Duration::from_secs(60));
    /// assert_eq!(options.linger, Duration::from_millis(5));
    /// # Ok::<(), godev_kafka::Error>(())
    /// ```
    #[cfg(feature = "kafka")]
    pub fn kafka_options(config: &Config) -> KafkaOptions {
        let p = config.producer_tuning();
        let f = config.fetch_tuning();
        let mut options = KafkaOptions::new(config.brokers().iter().cloned());
        options.acks = p.acks.unwrap_or(options.acks);
        options.compression = p.compression.unwrap_or(options.compression);
        options.linger = p.linger.unwrap_or(options.linger);
        options.batch_size = p.batch_size.unwrap_or(options.batch_size);
        options.retry_backoff = p.retry_backoff.unwrap_or(options.retry_backoff);
        options.request_timeout = p.request_timeout.unwrap_or(options.request_timeout);
        options.delivery_timeout = p.delivery_timeout.unwrap_or(options.delivery_timeout);
        options.buffer_bytes = p.buffer_bytes.unwrap_or(options.buffer_bytes);
        options.max_block = p.max_block.unwrap_or(options.max_block);
        options.fetch_max_bytes = f
            .partition_max_bytes
            .unwrap_or(options.fetch_max_bytes)
            .max(largest_fetch(config));
        options
    }

    /// The options of the `native` backend (feature `native`) for `config`: its brokers,
    /// `[kafka.producer]` (all but `batch_size`), the fetch keys of
    /// `[kafka.consumer]` and `[kafka.security]`, the rest at the defaults of
    /// [`NativeOptions::new`]. The producer is idempotent unless `idempotence = false`,
    /// `acks` is not `all`, or `max_in_flight` is above 5. The per-partition fetch limit is at
    /// least `max_record_bytes` + 64 KiB. [`NativeOptions::tls`] is set for `ssl` and
    /// `sasl_ssl`, [`NativeOptions::sasl`] for `sasl_plaintext` and `sasl_ssl`: the user and
    /// password, or for OAUTHBEARER the config's token as a
    /// [`StaticToken`](crate::transport::StaticToken) (a program with its own
    /// [`TokenProvider`](crate::transport::TokenProvider) replaces `sasl`).
    ///
    /// # Examples
    ///
    /// ```
    /// use godev_kafka::Manager;
    /// use godev_kafka::transport::{Acks, Compression, Isolation};
    ///
    /// let toml = "[kafka]\nbrokers = [\"b:9092\"]\ngroup_id = \"g\"\nclient = \"native\"\n\
    ///             [kafka.producer]\nacks = \"one\"\ncompression = \"lz4\"\n\
    ///             [kafka.consumer]\nisolation_level = \"read_committed\"\n";
    /// let config = godev_kafka::Config::from_toml(toml, "config.toml", |_| None)?;
    /// let options = Manager::native_options(&config);
    /// assert_eq!(options.acks, Acks::One);
    /// assert_eq!(options.compression, Compression::Lz4);
    /// assert!(!options.idempotence);
    /// assert_eq!(options.isolation, Isolation::ReadCommitted);
    /// assert_eq!((options.tls, options.sasl), (None, None));
    ///
    /// let toml = "[kafka]\nbrokers = [\"b:9093\"]\ngroup_id = \"g\"\nclient = \"native\"\n\
    ///             [kafka.security]\nprotocol = \"sasl_ssl\"\nsasl_mechanism = \"scram-sha-256\"\n\
    ///             username = \"alice\"\nverify_hostname = false\n";
    /// let env = |name: &str| (name == "KAFKA_SECURITY_PASSWORD").then(|| "s3cret".to_string());
    /// let options = Manager::native_options(&godev_kafka::Config::from_toml(toml, "config.toml", env)?);
    /// assert!(!options.tls.unwrap().verify_hostname);
    /// let sasl = options.sasl.unwrap();
    /// assert_eq!(sasl.mechanism, godev_kafka::transport::SaslMechanism::ScramSha256);
    /// assert_eq!((sasl.username.as_str(), sasl.password.expose()), ("alice", "s3cret"));
    /// # Ok::<(), godev_kafka::Error>(())
    /// ```
    #[cfg(feature = "native")]
    pub fn native_options(config: &Config) -> NativeOptions {
        let p = config.producer_tuning();
        let f = config.fetch_tuning();
        let mut options = NativeOptions::new(config.brokers().iter().cloned());
        set_shared_tuning!(options, p, f);
        options.delivery_timeout = p.delivery_timeout.unwrap_or(options.delivery_timeout);
        options.fetch_max_bytes = f.max_bytes.unwrap_or(options.fetch_max_bytes);
        options.fetch_partition_max_bytes = f
            .partition_max_bytes
            .unwrap_or(options.fetch_partition_max_bytes)
            .max(largest_fetch(config));
        options.tls = config.security().tls.clone();
        options.sasl = sasl_options(config);
        options
    }

    /// The options of the `confluent` backend (feature `confluent`) for `config`: its
    /// brokers, `[kafka.producer]` (all but `batch_size`), the fetch keys of
    /// `[kafka.consumer]` and `[kafka.security]`, the rest at the defaults of
    /// [`ConfluentOptions::new`]. The producer is idempotent unless `idempotence = false`,
    /// `acks` is not `all`, or `max_in_flight` is above 5. The per-partition fetch limit is
    /// at least `max_record_bytes` + 64 KiB. [`ConfluentOptions::tls`] and
    /// [`ConfluentOptions::sasl`] are set as for the native backend; a SASL mechanism other
    /// than PLAIN (refused at load for this backend) is passed on, for the crate to refuse,
    /// rather than left out.
    ///
    /// # Examples
    ///
    /// ```
    /// use godev_kafka::Manager;
    /// use godev_kafka::transport::confluent::Acks;
    ///
    /// let toml = "[kafka]\nbrokers = [\"b:9094\"]\ngroup_id = \"g\"\nclient = \"confluent\"\n\
    ///             [kafka.producer]\nacks = \"one\"\nbatch_bytes = 65536\n";
    /// let config = godev_kafka::Config::from_toml(toml, "config.toml", |_| None)?;
    /// let options = Manager::confluent_options(&config);
    /// assert_eq!(options.acks, Acks::One);
    /// assert!(!options.idempotence);
    /// assert_eq!(options.batch_bytes, 65536);
    /// # Ok::<(), godev_kafka::Error>(())
    /// ```
    #[cfg(feature = "confluent")]
    pub fn confluent_options(config: &Config) -> ConfluentOptions {
        let p = config.producer_tuning();
        let f = config.fetch_tuning();
        let mut options = ConfluentOptions::new(config.brokers().iter().cloned());
        set_shared_tuning!(options, p, f);
        options.delivery_timeout = p.delivery_timeout.or(options.delivery_timeout);
        options.fetch_response_max_bytes = f.max_bytes.unwrap_or(options.fetch_response_max_bytes);
        options.fetch_max_bytes = f
            .partition_max_bytes
            .unwrap_or(options.fetch_max_bytes)
            .max(largest_fetch(config));
        options.tls = config.security().tls.clone();
        options.sasl = sasl_options(config);
        options
    }

    /// The backend `client = "auto"` picks for `broker`: [`Client::Native`] when this build
    /// has it and the broker is Kafka 0.11 or later (record batches v2); else
    /// [`Client::Confluent`] for Kafka 4 and later and [`Client::Kafka`] for older brokers.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> godev_kafka::Result<()> {
    /// use godev_kafka::Manager;
    /// use godev_kafka::transport::detect::detect_broker;
    ///
    /// let broker = detect_broker(&["127.0.0.1:9092".to_string()]).await?;
    /// println!("auto would use {}", Manager::auto_client(&broker));
    /// # Ok(()) }
    /// ```
    #[cfg(any(feature = "kafka", feature = "confluent", feature = "native"))]
    pub fn auto_client(broker: &BrokerFeatures) -> Client {
        if cfg!(feature = "native") && broker.reads_record_batches() {
            Client::Native
        } else if broker.is_kafka4() {
            Client::Confluent
        } else {
            Client::Kafka
        }
    }
}

/// The SASL options of `config`'s `[kafka.security]`: the user and password for PLAIN and
/// SCRAM, the static token for OAUTHBEARER; `None` unless the protocol uses SASL.
#[cfg(any(feature = "confluent", feature = "native"))]
fn sasl_options(config: &Config) -> Option<SaslOptions> {
    let sasl = config.security().sasl.as_ref()?;
    Some(match sasl.mechanism {
        SaslMechanism::OAuthBearer => {
            let token = sasl.token.clone().expect("the config checked the token");
            SaslOptions::oauthbearer(std::sync::Arc::new(StaticToken(Token::new(token, None))))
        }
        mechanism => SaslOptions::password(
            mechanism,
            sasl.username.clone().expect("the config checked the user"),
            sasl.password
                .clone()
                .expect("the config checked the password"),
        ),
    })
}

/// The fetch size a consumer needs so that a record larger than the fetch limit reaches the
/// consumer's oversized-record check (and the dead-letter topic) instead of stalling its
/// partition: `max_record_bytes` plus room for the batch overhead.
#[cfg(any(feature = "kafka", feature = "confluent", feature = "native"))]
fn largest_fetch(config: &Config) -> i32 {
    let largest = config
        .consumer_settings()
        .max_record_bytes
        .saturating_add(64 * 1024);
    i32::try_from(largest).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests;

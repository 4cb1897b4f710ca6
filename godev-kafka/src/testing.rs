//! Helpers for tests against a real broker (feature `testing`).
//!
//! [`broker`] finds one:
//!
//! 1. the environment variable `GODEV_KAFKA_BROKERS` (`host:port`, comma-separated for
//!    several), as CI and `dev/kafka start` set it up;
//! 2. else, with the feature `testcontainers` and a Docker daemon that answers, an
//!    `apache/kafka` 3.9 container, started once and kept for the whole test process;
//!    [`kafka4_broker`] does the same with `GODEV_KAFKA4_BROKERS` and Kafka 4.4 for the
//!    `confluent` backend;
//! 3. else an error that says how to get one. Tests that need a broker fail, loudly; they
//!    never skip.
//!
//! Every test should use its own topics and groups: [`unique_name`].
//!
//! ```no_run
//! # async fn demo() -> godev_kafka::Result<()> {
//! use godev_kafka::testing;
//!
//! let brokers = testing::broker().await?;
//! let topic = testing::unique_name("orders");
//! testing::create_topic(&brokers, &topic, 3).await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::transport::admin;
use crate::{Error, Result};

/// The `kafka` crate this backend is built on, for tests that talk to a broker without the
/// framework in between.
pub use ::kafka;

/// The environment variable naming the brokers for tests (Kafka 3.9, for the `kafka` backend).
pub const BROKERS_ENV: &str = "GODEV_KAFKA_BROKERS";

/// The environment variable naming a Kafka 4 broker for tests of the `confluent` backend.
pub const KAFKA4_BROKERS_ENV: &str = "GODEV_KAFKA4_BROKERS";

/// The address (`host:port`, comma-separated for several) of a broker for tests.
///
/// # Errors
///
/// Neither `GODEV_KAFKA_BROKERS` is set nor a Docker container could be started; the message
/// says how to get a broker.
pub async fn broker() -> Result<String> {
    match from_env(BROKERS_ENV) {
        Some(brokers) => Ok(brokers),
        None => container(BROKERS_ENV, "3.9.2").await,
    }
}

/// The address of a Kafka 4 broker for tests of the `confluent` backend:
/// `GODEV_KAFKA4_BROKERS` (`dev/kafka start --version 4` prints one), else, with the feature
/// `testcontainers` and Docker, an `apache/kafka` 4.x container.
///
/// # Errors
///
/// As [`broker`], naming `GODEV_KAFKA4_BROKERS`.
pub async fn kafka4_broker() -> Result<String> {
    match from_env(KAFKA4_BROKERS_ENV) {
        Some(brokers) => Ok(brokers),
        None => container(KAFKA4_BROKERS_ENV, "4.4.0").await,
    }
}

fn from_env(var: &str) -> Option<String> {
    let brokers = std::env::var(var).ok()?.trim().to_owned();
    (!brokers.is_empty()).then_some(brokers)
}

/// The brokers of [`broker`] as a list.
///
/// # Errors
///
/// As [`broker`].
pub async fn brokers() -> Result<Vec<String>> {
    Ok(broker()
        .await?
        .split(',')
        .map(|b| b.trim().to_owned())
        .collect())
}

fn no_broker(var: &str, why: &str) -> Error {
    let start = if var == KAFKA4_BROKERS_ENV {
        "dev/kafka start --version 4"
    } else {
        "dev/kafka start"
    };
    Error::Config {
        key: var.into(),
        message: format!(
            "no Kafka broker for tests ({why}): set {var}=host:port \
             ({start} prints one) or run Docker for testcontainers \
             (feature `testcontainers`)"
        ),
    }
}

#[cfg(not(feature = "testcontainers"))]
async fn container(var: &str, _tag: &str) -> Result<String> {
    Err(no_broker(
        var,
        &format!("{var} is not set and the feature `testcontainers` is off"),
    ))
}

#[cfg(feature = "testcontainers")]
async fn container(var: &str, tag: &str) -> Result<String> {
    use std::sync::Mutex;

    use testcontainers_modules::kafka::apache::{KAFKA_PORT, Kafka};
    use testcontainers_modules::testcontainers::runners::AsyncRunner;
    use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt};
    use tokio::sync::OnceCell;

    /// The containers live as long as the test process (the reaper removes them afterwards).
    static CONTAINERS: Mutex<Vec<ContainerAsync<Kafka>>> = Mutex::new(Vec::new());
    static KAFKA3: OnceCell<String> = OnceCell::const_new();
    static KAFKA4: OnceCell<String> = OnceCell::const_new();

    let docker = std::env::var_os("DOCKER_HOST").is_some()
        || std::path::Path::new("/var/run/docker.sock").exists();
    if !docker {
        return Err(no_broker(
            var,
            &format!("{var} is not set and no Docker daemon was found"),
        ));
    }
    let address = if var == KAFKA4_BROKERS_ENV {
        &KAFKA4
    } else {
        &KAFKA3
    };
    address
        .get_or_try_init(|| async {
            let failed = |what: &str, e: &dyn std::fmt::Display| {
                no_broker(var, &format!("the Kafka {tag} container {what}: {e}"))
            };
            let container = Kafka::default()
                .with_jvm_image()
                .with_tag(tag)
                .start()
                .await
                .map_err(|e| failed("did not start", &e))?;
            let port = container
                .get_host_port_ipv4(KAFKA_PORT)
                .await
                .map_err(|e| failed("has no port", &e))?;
            let host = container
                .get_host()
                .await
                .map_err(|e| failed("has no host", &e))?;
            CONTAINERS
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(container);
            Ok(format!("{host}:{port}"))
        })
        .await
        .cloned()
}

/// A topic or group name no other test (or test run) uses: `prefix`, the process id, a counter
/// and the clock, in the characters Kafka allows (`[a-zA-Z0-9._-]`).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let prefix: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

fn split(brokers: &str) -> Vec<String> {
    brokers.split(',').map(|b| b.trim().to_owned()).collect()
}

/// Creates `topic` with `partitions` partitions and waits until every partition has a leader.
///
/// # Errors
///
/// The broker refused, or the partitions got no leaders within 30 seconds.
pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) -> Result<()> {
    admin::create_topic(&split(brokers), topic, partitions).await
}

/// Partition → end offset (the offset the next record will get) of `topic`.
///
/// # Errors
///
/// The brokers could not be reached or do not know the topic.
pub async fn end_offsets(brokers: &str, topic: &str) -> Result<BTreeMap<i32, i64>> {
    admin::end_offsets(&split(brokers), topic).await
}

/// Partition → offset `group` committed for `topic` (partitions without one are left out).
///
/// # Errors
///
/// The group coordinator could not be found or refused.
pub async fn committed_offsets(
    brokers: &str,
    group: &str,
    topic: &str,
) -> Result<BTreeMap<i32, i64>> {
    admin::committed_offsets(&split(brokers), group, topic).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_are_valid_topic_names() {
        let a = unique_name("my topic/x");
        let b = unique_name("my topic/x");
        assert_ne!(a, b);
        assert!(a.starts_with("my-topic-x-"));
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        );
        assert!(a.len() < 249);
    }
}

//! Shared helpers of the integration tests: the backends and their brokers, deadlines, kcat.
//!
//! Suites that hold for every backend are written once as `async fn name(backend: Backend)`
//! and instantiated per backend × broker pair by [`on_each_backend!`]:
//!
//! - [`Backend::Kafka`]: the `kafka` crate backend on Kafka 3.9, from `GODEV_KAFKA_BROKERS`
//!   (`dev/kafka start` prints `127.0.0.1:9092`);
//! - [`Backend::Confluent`] (feature `confluent`): the `confluent-kafka` backend on Kafka 4,
//!   from `GODEV_KAFKA4_BROKERS` (`dev/kafka start --version 4` prints `127.0.0.1:9094`).
//!
//! Without its broker a test fails with the reason: it never skips.

#![allow(dead_code, unreachable_pub)]

#[cfg(feature = "native")]
pub mod corrupt_proxy;
pub mod go;
pub mod logs;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod own_broker;
pub mod own_cluster;
pub mod raw;
#[cfg(feature = "native")]
pub mod secured;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use godev_kafka::testing;
use godev_kafka::transport::kafka::{KafkaOptions, KafkaTransport};
use godev_kafka::transport::{GroupOptions, Transport};

/// The backend a parametrised test runs on, each with the broker it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The `kafka` crate backend, on Kafka 3.9.
    Kafka,
    /// The `confluent-kafka` backend, on Kafka 4.
    #[cfg(feature = "confluent")]
    Confluent,
    /// The `native` backend, on Kafka 3.9.
    #[cfg(feature = "native")]
    Native3,
    /// The `native` backend, on Kafka 4.
    #[cfg(feature = "native")]
    Native4,
}

impl Backend {
    /// The name `[kafka] client` gives it.
    pub fn client(self) -> &'static str {
        match self {
            Backend::Kafka => "kafka",
            #[cfg(feature = "confluent")]
            Backend::Confluent => "confluent",
            #[cfg(feature = "native")]
            Backend::Native3 | Backend::Native4 => "native",
        }
    }

    /// The broker address list for this backend, or a panic that says how to get one.
    pub async fn brokers(self) -> String {
        let brokers = match self {
            Backend::Kafka => testing::broker().await,
            #[cfg(feature = "confluent")]
            Backend::Confluent => testing::kafka4_broker().await,
            #[cfg(feature = "native")]
            Backend::Native3 => testing::broker().await,
            #[cfg(feature = "native")]
            Backend::Native4 => testing::kafka4_broker().await,
        };
        brokers.unwrap_or_else(|e| panic!("{e}"))
    }

    /// A transport of this backend for `brokers`, with a short linger.
    pub async fn transport(self, brokers: &str) -> Arc<dyn Transport> {
        match self {
            Backend::Kafka => transport(brokers).await,
            #[cfg(feature = "confluent")]
            Backend::Confluent => confluent_transport(brokers).await,
            #[cfg(feature = "native")]
            Backend::Native3 | Backend::Native4 => native_transport(brokers).await,
        }
    }

    /// Group options with short timeouts, so rebalances in tests are quick. KIP-848 groups
    /// take heartbeats down to 500 ms (the broker's `group.consumer.min.heartbeat.interval.ms`).
    pub fn group_options(self, group: &str, topic: &str) -> GroupOptions {
        #[cfg_attr(not(feature = "confluent"), allow(unused_mut))]
        let mut options = group_options(group, topic);
        #[cfg(feature = "confluent")]
        if self == Backend::Confluent {
            options.heartbeat_interval = Duration::from_millis(500);
        }
        options
    }

    /// The Kafka version of this backend's broker, as `dev/kafka --version` takes it.
    pub fn kafka_version(self) -> &'static str {
        match self {
            Backend::Kafka => "3.9",
            #[cfg(feature = "confluent")]
            Backend::Confluent => "4",
            #[cfg(feature = "native")]
            Backend::Native3 => "3.9",
            #[cfg(feature = "native")]
            Backend::Native4 => "4",
        }
    }

    /// Consumer settings with the short timeouts of [`Backend::group_options`].
    pub fn consumer_settings(self) -> godev_kafka::consumer::ConsumerSettings {
        let group = self.group_options("-", "-");
        godev_kafka::consumer::ConsumerSettings {
            session_timeout: group.session_timeout,
            heartbeat_interval: group.heartbeat_interval,
            rebalance_timeout: group.rebalance_timeout,
            commit_interval: Duration::from_millis(200),
            shutdown_timeout: Duration::from_secs(10),
            ..Default::default()
        }
    }
}

/// Instantiates `async fn name(backend: Backend)` tests once per backend: as
/// `kafka_3::name` on Kafka 3.9; with the feature `confluent`, as `confluent_4::name` on
/// Kafka 4; with the feature `native`, as `native_3::name` and `native_4::name`.
#[macro_export]
macro_rules! on_each_backend {
    ($($test:ident),+ $(,)?) => {
        $crate::on_backends!(
            kafka_3 => Kafka,
            #[cfg(feature = "confluent")] confluent_4 => Confluent,
            #[cfg(feature = "native")] native_3 => Native3,
            #[cfg(feature = "native")] native_4 => Native4;
            [$($test),+]
        );
    };
}

/// Instantiates `async fn name(backend: Backend)` tests in a module per backend named:
/// `on_backends!(native_3 => Native3, native_4 => Native4; [a, b])` makes `native_3::a`,
/// `native_3::b`, `native_4::a` and `native_4::b`; a module may carry attributes
/// (`#[cfg(...)]`). Each test runs on its own four-worker runtime: the confluent crate keeps
/// several tasks per client busy, and a test may block a worker on a child process (kcat,
/// `dev/kafka tool`).
#[macro_export]
macro_rules! on_backends {
    ($($(#[$attr:meta])* $module:ident => $backend:ident),+ ; $tests:tt) => {
        $( $crate::on_backends!(@module $(#[$attr])* $module $backend $tests); )+
    };
    (@module $(#[$attr:meta])* $module:ident $backend:ident [$($test:ident),+ $(,)?]) => {
        $(#[$attr])*
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test($crate::support::Backend::$backend).await
                }
            )+
        }
    };
}

/// A `confluent` transport for `brokers` with a short linger, which writes the group
/// options' short session timeout and heartbeat interval to each group's KIP-848 configs on
/// join (`set_group_timeouts`, off by default), so that test groups rebalance quickly.
#[cfg(feature = "confluent")]
pub async fn confluent_transport(
    brokers: &str,
) -> Arc<godev_kafka::transport::confluent::ConfluentTransport> {
    use godev_kafka::transport::confluent::{ConfluentOptions, ConfluentTransport};
    let mut options = ConfluentOptions::new(brokers.split(','));
    options.client_id = "godev-kafka-tests".into();
    options.linger = Duration::from_millis(2);
    options.request_timeout = Duration::from_secs(20);
    options.set_group_timeouts = true;
    Arc::new(
        ConfluentTransport::connect(options)
            .await
            .expect("connect to the Kafka 4 test broker"),
    )
}

/// A `native` transport for `brokers` with a short linger.
#[cfg(feature = "native")]
pub async fn native_transport(
    brokers: &str,
) -> Arc<godev_kafka::transport::native::NativeTransport> {
    use godev_kafka::transport::native::{NativeOptions, NativeTransport};
    let mut options = NativeOptions::new(brokers.split(','));
    options.client_id = "godev-kafka-tests".into();
    options.linger = Duration::from_millis(2);
    options.request_timeout = Duration::from_secs(20);
    Arc::new(
        NativeTransport::connect(options)
            .await
            .expect("connect to the test broker"),
    )
}

/// The Kafka 3.9 broker address list, or a panic that says how to get one.
pub async fn brokers() -> String {
    match testing::broker().await {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

/// A `kafka` transport for `brokers` with a short linger.
pub async fn transport(brokers: &str) -> Arc<KafkaTransport> {
    let mut options = KafkaOptions::new(brokers.split(','));
    options.client_id = "godev-kafka-tests".into();
    options.linger = Duration::from_millis(2);
    options.request_timeout = Duration::from_secs(20);
    Arc::new(
        KafkaTransport::connect(options)
            .await
            .expect("connect to the test broker"),
    )
}

/// Group options with short timeouts, so rebalances in tests are quick.
pub fn group_options(group: &str, topic: &str) -> GroupOptions {
    let mut options = GroupOptions::new(group, vec![topic.to_owned()]);
    options.session_timeout = Duration::from_secs(6);
    options.heartbeat_interval = Duration::from_millis(300);
    options.rebalance_timeout = Duration::from_secs(20);
    options
}

/// Polls `check` until it answers true; panics naming `what` after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The path of `dev/kafka` in this repository.
pub fn dev_kafka() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dev/kafka")
}

/// Runs one of Kafka's own tools against `backend`'s broker version: `dev/kafka tool
/// --version V <tool> <args>` (e.g. `topics`, `consumer-groups`), on a blocking thread.
pub async fn kafka_tool(backend: Backend, tool: &str, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new("bash");
    command
        .arg(dev_kafka())
        .args(["tool", "--version", backend.kafka_version(), tool])
        .args(args);
    tokio::task::spawn_blocking(move || command.output().expect("run dev/kafka tool"))
        .await
        .expect("dev/kafka tool thread")
}

/// Grows `topic` to `partitions` partitions with Kafka's own tool, through the first broker
/// of `brokers`; panics with the tool's error if it fails.
pub async fn add_partitions(backend: Backend, brokers: &str, topic: &str, partitions: i32) {
    let count = partitions.to_string();
    let output = kafka_tool(
        backend,
        "topics",
        &[
            "--bootstrap-server",
            brokers.split(',').next().unwrap(),
            "--alter",
            "--topic",
            topic,
            "--partitions",
            &count,
        ],
    )
    .await;
    assert!(
        output.status.success(),
        "grow {topic} to {partitions} partitions: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The kcat binary (`kcat`, or `kafkacat` on older systems); panics saying how to install it.
pub fn kcat() -> &'static str {
    ["kcat", "kafkacat"]
        .into_iter()
        .find(|tool| std::process::Command::new(tool).arg("-V").output().is_ok())
        .expect("kcat (or kafkacat) must be installed: apt-get install kcat (.ci/run does it)")
}

/// Writes `lines` (`key:value` each) to `topic` with kcat, a client that is not ours.
pub fn kcat_produce(brokers: &str, topic: &str, lines: &[&str]) {
    kcat_write(brokers, topic, &["-K", ":"], lines);
}

/// Writes `lines` (one record each) to `topic` with kcat and its producer flags `args`
/// (`-p 0` for a partition, `-z lz4` for a codec, `-H k=v` for a header, `-K :` for keys).
pub fn kcat_write(brokers: &str, topic: &str, args: &[&str], lines: &[impl std::fmt::Display]) {
    use std::io::Write;
    let mut child = std::process::Command::new(kcat())
        .args(["-P", "-b", brokers, "-t", topic])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run kcat");
    {
        let mut stdin = child.stdin.take().unwrap();
        for line in lines {
            writeln!(stdin, "{line}").unwrap();
        }
    }
    assert!(child.wait().unwrap().success(), "kcat produced the records");
}

/// Every record of `topic` from the beginning, read by kcat as `key|value` lines (on a
/// blocking thread).
pub async fn kcat_read(brokers: &str, topic: &str) -> String {
    kcat_read_as(brokers, topic, "%k|%s\n").await
}

/// Every record of `topic` from the beginning, read by kcat, each printed as kcat's
/// `-f` `format` says (on a blocking thread).
pub async fn kcat_read_as(brokers: &str, topic: &str, format: &str) -> String {
    let mut command = std::process::Command::new(kcat());
    command.args([
        "-C",
        "-b",
        brokers,
        "-t",
        topic,
        "-o",
        "beginning",
        "-e",
        "-q",
        "-f",
        format,
    ]);
    let output = tokio::task::spawn_blocking(move || command.output().expect("run kcat"))
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "kcat: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 records")
}

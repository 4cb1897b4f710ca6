//! Shared helpers of the integration tests: the broker, unique names, deadlines.
//!
//! The broker comes from `godev_kafka::testing::broker()`: `GODEV_KAFKA_BROKERS` (for example
//! `GODEV_KAFKA_BROKERS=127.0.0.1:9092` after `dev/kafka start --version 3.9`), else a
//! testcontainers container. Without one the tests fail: they never skip.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use godev_kafka::testing;
use godev_kafka::transport::GroupOptions;
use godev_kafka::transport::kafka::{KafkaOptions, KafkaTransport};

/// The broker address list, or a panic that says how to get one.
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

/// The kcat binary (`kcat`, or `kafkacat` on older systems); panics saying how to install it.
pub fn kcat() -> &'static str {
    ["kcat", "kafkacat"]
        .into_iter()
        .find(|tool| std::process::Command::new(tool).arg("-V").output().is_ok())
        .expect("kcat (or kafkacat) must be installed: apt-get install kcat (.ci/run does it)")
}

/// Writes `lines` (`key:value` each) to `topic` with kcat, a client that is not ours.
pub fn kcat_produce(brokers: &str, topic: &str, lines: &[&str]) {
    use std::io::Write;
    let mut child = std::process::Command::new(kcat())
        .args(["-P", "-b", brokers, "-t", topic, "-K", ":"])
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

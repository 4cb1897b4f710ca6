//! The godev-kit demo end to end: in process on each backend × broker pair (`kafka` on Kafka
//! 3.9, `confluent` on Kafka 4) and in memory, and as a process (`--memory`, and an
//! unreachable broker).
//!
//! Run: `GODEV_KAFKA_BROKERS=127.0.0.1:9092 GODEV_KAFKA4_BROKERS=127.0.0.1:9094 cargo test -p godev-kit --features broker-tests,confluent --test app_demo`

mod support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use godev_kafka::testing;
use godev_kafka::{Config, TopicMap};
use godev_kit::demo::{self, CUSTOM_KEY, DemoOptions};
use godev_kit::entity::{TRANSLATION_EVENTS_TOPIC, USER_EVENTS_TOPIC};
use support::Backend;

/// The demo's config with unique topics and group, through the environment overlay, as a
/// deployment would set them.
fn unique_config(brokers: &str, client: &str) -> (Config, String, String, String) {
    let user_topic = testing::unique_name("app-user-events");
    let translation_topic = testing::unique_name("app-translation-events");
    let group = testing::unique_name("app-demo");
    let file = std::fs::read_to_string(config_file()).expect("config/config.toml");
    let env = [
        ("KAFKA_BROKERS", brokers.to_owned()),
        ("KAFKA_CLIENT", client.to_owned()),
        // The app's events are the Go kit's JSON.
        ("KAFKA_CODEC", "tagged".to_owned()),
        ("KAFKA_GROUP_ID", group.clone()),
        ("KAFKA_TOPICS_USER_EVENTS", user_topic.clone()),
        ("KAFKA_TOPICS_TRANSLATION_EVENTS", translation_topic.clone()),
        ("KAFKA_CONSUMER_SESSION_TIMEOUT_MS", "6000".to_owned()),
        ("KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS", "500".to_owned()),
        ("KAFKA_CONSUMER_COMMIT_INTERVAL_MS", "200".to_owned()),
    ];
    let config = Config::from_toml(&file, "config/config.toml", |name| {
        env.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    })
    .expect("valid config");
    (config, user_topic, translation_topic, group)
}

fn config_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/config.toml")
}

fn check_report(report: &demo::DemoReport, topics: &TopicMap) {
    let produced: Vec<(i64, &str)> = report
        .produced
        .iter()
        .map(|p| (p.id, p.event_type))
        .collect();
    let handled: Vec<(i64, &str)> = report
        .handled
        .iter()
        .map(|h| (h.id, h.event_type.as_str()))
        .collect();
    assert_eq!(handled, produced, "each event handled with its type");
    assert_eq!(
        produced.iter().map(|(_, t)| *t).collect::<Vec<_>>(),
        [
            "user.created",
            "user.updated",
            "user.deleted",
            "translation.requested",
            "translation.completed"
        ]
    );
    let user_topic = topics.resolve(USER_EVENTS_TOPIC);
    let translation_topic = topics.resolve(TRANSLATION_EVENTS_TOPIC);
    for (sent, handled) in report.produced.iter().zip(&report.handled) {
        let expected_topic = if sent.event_type.starts_with("user.") {
            user_topic
        } else {
            translation_topic
        };
        assert_eq!(handled.topic, expected_topic);
        assert_eq!(
            (handled.partition, handled.offset),
            (sent.delivery.partition, sent.delivery.offset),
            "handled where it was written"
        );
        assert_eq!(handled.user_id, 1);
    }
    let translation_partitions: Vec<i32> = report.produced[3..]
        .iter()
        .map(|p| p.delivery.partition)
        .collect();
    assert_eq!(
        translation_partitions[0], translation_partitions[1],
        "a user's translation events share a partition (keyed by user id)"
    );
}

on_each_backend!(the_demo_handles_its_five_events_on_a_real_broker);

async fn the_demo_handles_its_five_events_on_a_real_broker(backend: Backend) {
    let brokers = backend.brokers().await;
    let (config, ..) = unique_config(&brokers, backend.client());
    let options = DemoOptions {
        custom_topic: testing::unique_name("app-custom-topic"),
        handled_timeout: Duration::from_secs(60),
    };
    let repo = demo::connect(&config, &options, Duration::from_secs(30))
        .await
        .expect("connect to the test broker");
    let mut lines = Vec::new();
    let report = demo::run(repo, &options, &mut |line| lines.push(line))
        .await
        .unwrap_or_else(|e| panic!("demo failed: {e}\n{}", lines.join("\n")));
    check_report(&report, &config.topic_map());
    assert_eq!(report.status.backend, backend.client());
    assert!(lines.last().unwrap().starts_with("closed:"), "{lines:?}");

    let custom = testing::end_offsets(&brokers, &options.custom_topic)
        .await
        .unwrap();
    assert_eq!(
        custom.values().sum::<i64>(),
        1,
        "one raw message: {custom:?}"
    );
    let key_partition =
        godev_kafka::partitioner::partition_for_key(CUSTOM_KEY.as_bytes(), demo::DEMO_PARTITIONS);
    assert_eq!(custom[&key_partition], 1, "keyed by custom-key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_in_memory() {
    let (config, ..) = unique_config("127.0.0.1:9", "memory");
    let options = DemoOptions::default();
    let repo = demo::connect(&config, &options, Duration::from_secs(5))
        .await
        .expect("the memory backend needs nothing");
    let report = demo::run(repo, &options, &mut |_| {}).await.unwrap();
    check_report(&report, &config.topic_map());
    assert_eq!(report.status.backend, "memory");
}

/// Builds the example once (any deadline applies to running it, not to compiling it) and
/// returns its path.
fn demo_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let status = Command::new(env!("CARGO"))
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "godev-kit",
                    "--example",
                    "kafka_demo",
                    // The features `cargo test --workspace --all-features` (dev/test) built
                    // the example with, so that this finds it fresh instead of rebuilding.
                    "--all-features",
                ])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cargo build --example kafka_demo failed");
            // This test runs from <target>/<profile>/deps/; examples are in <target>/debug/examples/.
            let exe = std::env::current_exe().unwrap();
            let target = exe.ancestors().nth(3).unwrap();
            let binary = target.join("debug/examples/kafka_demo");
            assert!(binary.exists(), "{} was not built", binary.display());
            binary
        })
        .clone()
}

/// Runs the demo with `env`, killing it after `deadline`.
fn run_demo(args: &[&str], env: &[(&str, &str)], deadline: Duration) -> (Output, Duration) {
    let mut command = Command::new(demo_binary());
    command
        .arg("--config")
        .arg(config_file())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("KAFKA_CLIENT")
        .env_remove("KAFKA_BROKERS");
    for (key, value) in env {
        command.env(key, value);
    }
    let started = Instant::now();
    let mut child = command.spawn().expect("start kafka_demo");
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > deadline {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!(
                "kafka_demo still running after {deadline:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().unwrap(), started.elapsed())
}

#[test]
fn the_demo_process_in_memory_mode_says_so_first_and_exits_0() {
    for (args, env) in [
        (&["--memory"][..], &[][..]),
        (&[][..], &[("KAFKA_CLIENT", "memory")][..]),
    ] {
        let (output, _) = run_demo(args, env, Duration::from_secs(30));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stdout}\n{stderr}");
        assert_eq!(
            stdout.lines().next(),
            Some("backend: memory (in-process, nothing installed)")
        );
        assert_eq!(
            stdout.lines().filter(|l| l.starts_with("handled ")).count(),
            5,
            "{stdout}"
        );
        assert!(
            stdout.contains("sent raw message to custom-topic"),
            "{stdout}"
        );
        assert!(
            !stderr.contains("user@example.com") && !stdout.contains("user@example.com"),
            "no e-mail at info: {stderr}"
        );
    }
}

#[test]
fn the_demo_process_exits_non_zero_with_a_clear_message_when_no_broker_answers() {
    let (output, took) = run_demo(
        &[],
        &[("KAFKA_BROKERS", "127.0.0.1:1")],
        Duration::from_secs(15),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stdout}\n{stderr}");
    assert!(took < Duration::from_secs(15));
    assert!(
        stdout.starts_with("backend: auto at 127.0.0.1:1 "),
        "the backend first: {stdout}"
    );
    assert!(
        stderr.contains("cannot reach Kafka at 127.0.0.1:1") && stderr.contains("--memory"),
        "{stderr}"
    );
}

/// `client = "kafka"` against Kafka 4: the demo stops at start-up with the broker's version
/// and the fix, not with "cannot reach" advice.
#[test]
fn the_demo_process_with_client_kafka_on_kafka_4_names_the_version_and_the_fix() {
    let brokers = godev_kafka::testing::KAFKA4_BROKERS_ENV;
    let brokers = std::env::var(brokers)
        .unwrap_or_else(|_| panic!("{brokers} must name a Kafka 4 broker (dev/test starts one)"));
    let (output, _) = run_demo(
        &[],
        &[("KAFKA_BROKERS", &brokers), ("KAFKA_CLIENT", "kafka")],
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("Kafka 4 or later"), "{stderr}");
    assert!(stderr.contains("client = \"confluent\""), "{stderr}");
    assert!(!stderr.contains("cannot reach"), "{stderr}");
}

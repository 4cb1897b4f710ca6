//! The Go kit's `examples/kafka_demo.go`, as a function: register the consumers, start them,
//! produce the five events and a raw message, wait until the five events were handled, close.
//!
//! `examples/kafka_demo.rs` parses its flags, builds the repository and calls [`run`]; the
//! tests call [`run`] directly.

use std::sync::Arc;
use std::time::Duration;

use godev_kafka::Status;
use godev_kafka::config::{Client, Config, SecurityProtocol};

use crate::entity::{
    TRANSLATION_COMPLETED, TRANSLATION_EVENTS_TOPIC, TRANSLATION_REQUESTED, USER_CREATED,
    USER_DELETED, USER_EVENTS_TOPIC, USER_UPDATED,
};
use crate::repo::{KafkaManagerRepo, KafkaRepo};
use crate::usecase::handled::{self, Handled, Missing};
use crate::usecase::{KafkaEventUseCase, Produced};

/// The user of the demo's events (the Go demo's user 1).
pub const DEMO_USER: i64 = 1;
/// The real topic of the demo's raw message.
pub const CUSTOM_TOPIC: &str = "custom-topic";
/// The key of the demo's raw message.
pub const CUSTOM_KEY: &str = "custom-key";

/// The partitions the demo gives the topics it creates on a real broker.
pub const DEMO_PARTITIONS: i32 = 3;

/// Loads the config file at `path` with the environment `env` overlaid; with `memory`, the
/// client is `memory` whatever the file and the environment say.
///
/// # Errors
///
/// The file cannot be read, or the config is invalid (the error names the key).
pub fn load_config(
    path: &std::path::Path,
    memory: bool,
    env: impl Fn(&str) -> Option<String>,
) -> crate::Result<Config> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| godev_kafka::Error::Config {
        key: origin.clone(),
        message: format!("cannot read config file `{origin}`: {e}"),
    })?;
    Ok(Config::from_toml(&text, &origin, |name| {
        if memory && name == "KAFKA_CLIENT" {
            Some(Client::Memory.as_str().to_owned())
        } else {
            env(name)
        }
    })?)
}

/// The first line the demo prints: which backend it runs on.
pub fn backend_line(config: &Config) -> String {
    match config.client() {
        Client::Memory => "backend: memory (in-process, nothing installed)".to_owned(),
        other => {
            let security = match config.security().protocol {
                SecurityProtocol::Plaintext => String::new(),
                protocol => format!(", security {protocol}"),
            };
            format!(
                "backend: {other} at {} (group {}, codec {}{security})",
                config.brokers().join(","),
                config.group_id(),
                config.codec()
            )
        }
    }
}

/// Builds the repository of `config` within `timeout`; for a real broker, also creates the
/// demo's topics (with [`DEMO_PARTITIONS`] partitions; existing topics are kept), so that the
/// consumers find them and keys spread.
///
/// # Errors
///
/// A message for the user: no broker answered in time (with how to get one), or the broker
/// refused.
pub async fn connect(
    config: &Config,
    options: &DemoOptions,
    timeout: Duration,
) -> Result<Arc<KafkaManagerRepo>, String> {
    let brokers = config.brokers().join(",");
    let unreachable = |why: String| {
        format!(
            "cannot reach Kafka at {brokers}: {why}\n\
             start a broker (dev/kafka start --version 3.9, or --version 4), point KAFKA_BROKERS at one, \
             or run the demo in memory: --memory (or KAFKA_CLIENT=memory)"
        )
    };
    let setup = async {
        let repo = KafkaManagerRepo::new(config).await?;
        if config.client() != Client::Memory {
            let topics = config.topic_map();
            for topic in [
                topics.resolve(USER_EVENTS_TOPIC),
                topics.resolve(TRANSLATION_EVENTS_TOPIC),
                &options.custom_topic,
            ] {
                repo.manager().create_topic(topic, DEMO_PARTITIONS).await?;
            }
        }
        Ok::<_, crate::Error>(repo)
    };
    match tokio::time::timeout(timeout, setup).await {
        Ok(Ok(repo)) => Ok(Arc::new(repo)),
        // A broker that answered but cannot be used (Kafka 4 for the `kafka` backend, a
        // refused request) is not an unreachable one: its message says what to change.
        Ok(Err(crate::Error::Kafka(e))) if !e.is_retriable() => {
            Err(format!("Kafka at {brokers}: {e}"))
        }
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!("no answer within {timeout:?}"))),
    }
}

/// What the demo varies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// The real topic of the raw message ([`CUSTOM_TOPIC`] by default).
    pub custom_topic: String,
    /// How long to wait for the five events to be handled.
    pub handled_timeout: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            custom_topic: CUSTOM_TOPIC.to_owned(),
            handled_timeout: Duration::from_secs(60),
        }
    }
}

/// What a demo run did.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// The five events, in the order produced.
    pub produced: Vec<Produced>,
    /// Their handling, in the same order.
    pub handled: Vec<Handled>,
    /// The repository's status while the consumers ran.
    pub status: Status,
}

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// Registering, producing or closing failed.
    #[error(transparent)]
    App(#[from] crate::Error),
    /// Some events were not handled in time.
    #[error(transparent)]
    NotHandled(#[from] Missing),
}

/// Runs the demo's steps on `repo`, telling `out` what happens, one line at a time. The
/// repository is closed at the end, also when a step failed.
///
/// Only this run's events count: the consumers may also handle events earlier runs left in
/// the topics (a new group starts at the earliest offset), which are recognised by id and
/// ignored.
///
/// # Errors
///
/// A step failed, or the five events were not all handled within
/// [`DemoOptions::handled_timeout`].
pub async fn run<R: KafkaRepo>(
    repo: Arc<R>,
    options: &DemoOptions,
    out: &mut dyn FnMut(String),
) -> Result<DemoReport, DemoError> {
    let result = steps(repo.clone(), options, out).await;
    let closed = repo.close().await;
    out(match &closed {
        Ok(()) => "closed: consumers stopped, offsets committed, producer flushed".to_owned(),
        Err(e) => format!("close failed: {e}"),
    });
    let report = result?;
    closed?;
    Ok(report)
}

async fn steps<R: KafkaRepo>(
    repo: Arc<R>,
    options: &DemoOptions,
    out: &mut dyn FnMut(String),
) -> Result<DemoReport, DemoError> {
    let events = KafkaEventUseCase::new(repo.clone());
    // Subscribe before anything is produced, so no report can be missed.
    let mut reports = events.subscribe();

    events.consume_user_events()?;
    events.consume_translation_events()?;
    repo.start_all_consumers();
    let status = repo.status();
    out(format!(
        "consumers started: {} consumer(s) on {:?}, producer enabled: {}",
        status.consumer_count,
        status
            .consumers
            .iter()
            .flat_map(|c| c.topics.iter().cloned())
            .collect::<Vec<_>>(),
        status.producer_enabled,
    ));

    let mut produced = Vec::new();
    let user_events = [
        (
            USER_CREATED,
            serde_json::json!({"name": "John Doe", "source": "web"}),
        ),
        (
            USER_UPDATED,
            serde_json::json!({"name": "John Smith", "updated_by": "admin"}),
        ),
        (USER_DELETED, serde_json::Value::Null),
    ];
    for (event_type, data) in user_events {
        let sent = events
            .produce_user_event(event_type, DEMO_USER, "user@example.com", data)
            .await?;
        out(produced_line(&sent));
        produced.push(sent);
    }
    let translations = [
        (TRANSLATION_REQUESTED, ""),
        (TRANSLATION_COMPLETED, "Hola, ¿cómo estás?"),
    ];
    for (event_type, translated) in translations {
        let sent = events
            .produce_translation_event(
                event_type,
                DEMO_USER,
                "en",
                "es",
                "Hello, how are you?",
                translated,
            )
            .await?;
        out(produced_line(&sent));
        produced.push(sent);
    }
    let raw = repo
        .send_message(
            &options.custom_topic,
            CUSTOM_KEY.as_bytes(),
            &serde_json::json!({"message": "Hello from custom topic!", "timestamp": godev_kafka::event::Timestamp::now()}),
        )
        .await?;
    out(format!(
        "sent raw message to {}[{}]@{} with key {CUSTOM_KEY}",
        raw.topic, raw.partition, raw.offset
    ));

    let ids: Vec<i64> = produced.iter().map(|p| p.id).collect();
    out(format!(
        "waiting up to {:?} for the {} events to be handled",
        options.handled_timeout,
        ids.len()
    ));
    let handled = handled::wait_for_ids(&mut reports, &ids, options.handled_timeout).await?;
    for h in &handled {
        out(format!(
            "handled {} id={} user={} from {}[{}]@{} by group {}",
            h.event_type, h.id, h.user_id, h.topic, h.partition, h.offset, h.group
        ));
    }
    Ok(DemoReport {
        produced,
        handled,
        status,
    })
}

fn produced_line(sent: &Produced) -> String {
    format!(
        "produced {} id={} to {}[{}]@{}",
        sent.event_type,
        sent.id,
        sent.delivery.topic,
        sent.delivery.partition,
        sent.delivery.offset
    )
}

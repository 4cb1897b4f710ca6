//! The use case layer: the Go kit's `KafkaEventUseCase` (`internal/usecase/kafka_events.go`).
//!
//! Producing builds the event (id and timestamp from the clock), checks its type and sends it
//! through the repository. Consuming registers the [`handlers`] as consumers; starting them is
//! the repository's [`KafkaRepo::start_all_consumers`], as in Go. What the handlers handled
//! can be observed through [`handled`].

pub mod handled;
pub mod handlers;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use godev_kafka::Delivery;
use godev_kafka::event::Timestamp;

use crate::entity::{
    TRANSLATION_COMPLETED, TRANSLATION_REQUESTED, TranslationData, TranslationEvent, USER_CREATED,
    USER_DELETED, USER_UPDATED, UserData, UserEvent,
};
use crate::repo::KafkaRepo;
use crate::{Error, Result};

/// The user event types [`KafkaEventUseCase::produce_user_event`] accepts.
pub const USER_EVENT_TYPES: &[&str] = &[USER_CREATED, USER_UPDATED, USER_DELETED];
/// The translation event types [`KafkaEventUseCase::produce_translation_event`] accepts.
pub const TRANSLATION_EVENT_TYPES: &[&str] = &[TRANSLATION_REQUESTED, TRANSLATION_COMPLETED];

/// An event that was sent: its id (to recognise it when it is handled) and where it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Produced {
    /// The event id.
    pub id: i64,
    /// The event type.
    pub event_type: &'static str,
    /// Where the broker wrote it.
    pub delivery: Delivery,
}

/// Produces and consumes the kit's user and translation events through a [`KafkaRepo`].
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use godev_kafka::transport::memory::MemoryTransport;
/// use godev_kafka::{Codec, Manager, Producer, TopicMap};
/// use godev_kit::repo::{KafkaManagerRepo, KafkaRepo};
/// use godev_kit::usecase::KafkaEventUseCase;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let transport = Arc::new(MemoryTransport::new(3));
/// let producer = Producer::with_transport(transport.clone(), TopicMap::new(), Codec::Tagged, "godev-kit");
/// let repo = Arc::new(KafkaManagerRepo::with_manager(Manager::new(transport, producer, "godev-kit")));
/// let events = KafkaEventUseCase::new(repo.clone());
/// events.consume_user_events().unwrap();
/// repo.start_all_consumers();
/// let sent = events.produce_user_event("user.created", 1, "user@example.com", serde_json::Value::Null).await.unwrap();
/// assert_eq!(sent.delivery.topic, "user_events"); // no topic table: the logical name
/// assert!(events.produce_user_event("user.banned", 1, "", serde_json::Value::Null).await.is_err());
/// repo.close().await.unwrap();
/// # });
/// ```
#[derive(Debug)]
pub struct KafkaEventUseCase<R> {
    repo: Arc<R>,
    reports: handled::HandledReports,
}

impl<R: KafkaRepo> KafkaEventUseCase<R> {
    /// A use case over `repo` (the Go kit's `NewKafkaEventUseCase`).
    pub fn new(repo: Arc<R>) -> Self {
        Self {
            repo,
            reports: handled::HandledReports::new(),
        }
    }

    /// Reports of every event this use case's handlers handle from now on; subscribe before
    /// producing so that none is missed.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<handled::Handled> {
        self.reports.subscribe()
    }

    /// The repository.
    pub fn repo(&self) -> &Arc<R> {
        &self.repo
    }

    /// Sends a user event of `event_type` for `user_id`; `data` is `null` when there is none.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownEventType`] (nothing is sent) unless `event_type` is one of
    /// [`USER_EVENT_TYPES`]; else the repository's send error.
    pub async fn produce_user_event(
        &self,
        event_type: &str,
        user_id: i64,
        email: &str,
        data: serde_json::Value,
    ) -> Result<Produced> {
        let payload = UserData {
            id: next_id(),
            user_id,
            email: email.to_owned(),
            data,
            timestamp: Timestamp::now(),
        };
        let id = payload.id;
        let event = UserEvent::from_type(event_type, payload)
            .ok_or_else(|| unknown("user", event_type, USER_EVENT_TYPES))?;
        let delivery = self.repo.send_event(&event).await?;
        tracing::info!(event_type, id, user_id, "user event produced");
        Ok(Produced {
            id,
            event_type: godev_kafka::Event::tag(&event),
            delivery,
        })
    }

    /// Sends a translation event of `event_type` for `user_id`, keyed by the user id so that
    /// one user's translation events stay in order (see
    /// [`TranslationEvent`](crate::entity::TranslationEvent)).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownEventType`] (nothing is sent) unless `event_type` is one of
    /// [`TRANSLATION_EVENT_TYPES`]; else the repository's send error.
    pub async fn produce_translation_event(
        &self,
        event_type: &str,
        user_id: i64,
        source: &str,
        target: &str,
        original: &str,
        translated: &str,
    ) -> Result<Produced> {
        let payload = TranslationData {
            id: next_id(),
            user_id,
            source: source.to_owned(),
            target: target.to_owned(),
            original: original.to_owned(),
            translated: translated.to_owned(),
            timestamp: Timestamp::now(),
        };
        let id = payload.id;
        let event = TranslationEvent::from_type(event_type, payload)
            .ok_or_else(|| unknown("translation", event_type, TRANSLATION_EVENT_TYPES))?;
        let delivery = self.repo.send_event(&event).await?;
        tracing::info!(event_type, id, user_id, "translation event produced");
        Ok(Produced {
            id,
            event_type: godev_kafka::Event::tag(&event),
            delivery,
        })
    }

    /// Registers a consumer of user events (every type) with
    /// [`on_user_event`](handlers::on_user_event); it runs once the repository's consumers
    /// are started.
    ///
    /// # Errors
    ///
    /// The framework's consumer build error.
    pub fn consume_user_events(&self) -> Result<()> {
        let consumer = self
            .repo
            .consumer_builder()
            .state(self.reports.clone())
            .handler::<handlers::on_user_event>()
            .build()?;
        self.repo.add_consumer(consumer);
        Ok(())
    }

    /// Registers a consumer of translation events (every type) with
    /// [`on_translation_event`](handlers::on_translation_event).
    ///
    /// # Errors
    ///
    /// The framework's consumer build error.
    pub fn consume_translation_events(&self) -> Result<()> {
        let consumer = self
            .repo
            .consumer_builder()
            .state(self.reports.clone())
            .handler::<handlers::on_translation_event>()
            .build()?;
        self.repo.add_consumer(consumer);
        Ok(())
    }
}

fn unknown(kind: &'static str, event_type: &str, expected: &'static [&'static str]) -> Error {
    Error::UnknownEventType {
        kind,
        event_type: event_type.to_owned(),
        expected,
    }
}

/// A new event id: Unix time in nanoseconds, as the Go kit's `time.Now().UnixNano()`, but
/// strictly increasing within the process so two events produced in the same nanosecond
/// (or after the clock stepped back) never share an id.
pub fn next_id() -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = Timestamp::now().unix_nanos() as i64;
    let previous = LAST
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or_default();
    now.max(previous + 1)
}

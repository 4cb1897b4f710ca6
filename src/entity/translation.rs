//! `TranslationEvent`: a translation was requested or completed.
//!
//! # Why the key is the user id, not the Go kit's `<user_id>-<event_type>`
//!
//! The Go kit keys translation events by `<user_id>-<event_type>` (`1-translation.requested`,
//! `1-translation.completed`). Kafka orders records only within a partition, and the partition
//! is `murmur2(key) % partitions`: two keys per user put a user's `requested` and `completed`
//! events on (in general) different partitions, so a consumer can see the completion before
//! the request. Here the key is the decimal user id, like user events: all of one user's
//! translation events land on one partition and are handled in the order they were produced.
//! Consumers never read the key (the type travels in the value), so Go consumers of the same
//! topic are unaffected.

use godev_kafka::Event;
use godev_kafka::event::Timestamp;
use serde::{Deserialize, Serialize};

/// The logical topic of [`TranslationEvent`]s (`translation-events` in the app's config).
pub const TRANSLATION_EVENTS_TOPIC: &str = "translation_events";
/// Event type: a translation was requested (Go: `entity.TranslationRequestedEvent`).
pub const TRANSLATION_REQUESTED: &str = "translation.requested";
/// Event type: a translation was completed (Go: `entity.TranslationCompletedEvent`).
pub const TRANSLATION_COMPLETED: &str = "translation.completed";

/// The fields of the Go kit's `entity.TranslationEvent` other than `event_type`, in its order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranslationData {
    /// The event id: Unix time in nanoseconds when it was produced.
    pub id: i64,
    /// The user who asked; also the partition key (decimal).
    pub user_id: i64,
    /// The source language (`en`).
    pub source: String,
    /// The target language (`es`).
    pub target: String,
    /// The text to translate. User content: never logged above debug.
    pub original: String,
    /// The translation (empty while requested). User content: never logged above debug.
    pub translated: String,
    /// When the event was produced.
    pub timestamp: Timestamp,
}

/// A translation event, one variant per event type, keyed by the decimal user id (see the
/// [module docs](self) for why this differs from the Go kit).
///
/// # Examples
///
/// ```
/// use godev_kafka::Event;
/// use godev_kafka::event::Timestamp;
/// use godev_kit::entity::{TranslationData, TranslationEvent};
///
/// let data = TranslationData {
///     id: 1, user_id: 7, source: "en".into(), target: "es".into(),
///     original: "Hello".into(), translated: String::new(), timestamp: Timestamp::now(),
/// };
/// let requested = TranslationEvent::Requested(data.clone());
/// let completed = TranslationEvent::Completed(TranslationData { translated: "Hola".into(), ..data });
/// assert_eq!(requested.key(), completed.key(), "one partition per user");
/// ```
#[derive(Debug, Clone, PartialEq, Event)]
#[event(topic = "translation_events", key = "user_id")]
pub enum TranslationEvent {
    /// `translation.requested`.
    #[event(name = "translation.requested")]
    Requested(TranslationData),
    /// `translation.completed`.
    #[event(name = "translation.completed")]
    Completed(TranslationData),
}

impl TranslationEvent {
    /// The event of type `event_type` carrying `data`, or `None` for a type that is not a
    /// translation event type.
    pub fn from_type(event_type: &str, data: TranslationData) -> Option<Self> {
        match event_type {
            TRANSLATION_REQUESTED => Some(Self::Requested(data)),
            TRANSLATION_COMPLETED => Some(Self::Completed(data)),
            _ => None,
        }
    }

    /// The payload, whatever the type.
    pub fn data(&self) -> &TranslationData {
        let (Self::Requested(data) | Self::Completed(data)) = self;
        data
    }
}

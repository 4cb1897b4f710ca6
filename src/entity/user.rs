//! `UserEvent`: a user was created, updated or deleted.

use godev_kafka::Event;
use godev_kafka::event::Timestamp;
use serde::{Deserialize, Serialize};

/// The logical topic of [`UserEvent`]s (`user-events` in the app's config, as in the Go kit).
pub const USER_EVENTS_TOPIC: &str = "user_events";
/// Event type: a user was created (Go: `entity.UserCreatedEvent`).
pub const USER_CREATED: &str = "user.created";
/// Event type: a user was updated (Go: `entity.UserUpdatedEvent`).
pub const USER_UPDATED: &str = "user.updated";
/// Event type: a user was deleted (Go: `entity.UserDeletedEvent`).
pub const USER_DELETED: &str = "user.deleted";

/// The fields of the Go kit's `entity.UserEvent` other than `event_type`, in its order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserData {
    /// The event id: Unix time in nanoseconds when it was produced.
    pub id: i64,
    /// The user the event is about; also the partition key (decimal).
    pub user_id: i64,
    /// The user's e-mail address. Personal data: never logged above debug.
    pub email: String,
    /// Free-form details; `null` when there are none.
    pub data: serde_json::Value,
    /// When the event was produced (RFC 3339 with nanoseconds, as Go's `time.Time`).
    pub timestamp: Timestamp,
}

/// A user event, one variant per event type, keyed by the decimal user id as in the Go kit, so
/// one user's events stay on one partition and in order.
///
/// # Examples
///
/// ```
/// use godev_kafka::{Codec, Event};
/// use godev_kit::entity::{UserData, UserEvent};
///
/// let go = r#"{"id":1,"event_type":"user.created","user_id":7,"email":"a@example.com","data":null,"timestamp":"2024-11-28T06:20:00Z"}"#;
/// let event = Codec::Tagged.decode::<UserEvent>(go.as_bytes()).unwrap().data;
/// assert_eq!(event.tag(), "user.created");
/// assert_eq!(event.key(), Some(b"7".to_vec()));
/// assert_eq!(Codec::Tagged.encode(&event, "").unwrap(), go.as_bytes());
/// ```
#[derive(Debug, Clone, PartialEq, Event)]
#[event(topic = "user_events", key = "user_id")]
pub enum UserEvent {
    /// `user.created`.
    #[event(name = "user.created")]
    Created(UserData),
    /// `user.updated`.
    #[event(name = "user.updated")]
    Updated(UserData),
    /// `user.deleted`.
    #[event(name = "user.deleted")]
    Deleted(UserData),
}

impl UserEvent {
    /// The event of type `event_type` carrying `data`, or `None` for a type that is not a
    /// user event type.
    pub fn from_type(event_type: &str, data: UserData) -> Option<Self> {
        match event_type {
            USER_CREATED => Some(Self::Created(data)),
            USER_UPDATED => Some(Self::Updated(data)),
            USER_DELETED => Some(Self::Deleted(data)),
            _ => None,
        }
    }

    /// The payload, whatever the type.
    pub fn data(&self) -> &UserData {
        let (Self::Created(data) | Self::Updated(data) | Self::Deleted(data)) = self;
        data
    }
}

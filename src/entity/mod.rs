//! The Go kit's events (`internal/entity/events.go`) as typed Rust events.
//!
//! Each event is an enum with one newtype variant per event type over a payload struct, so
//! that, with [`Codec::Tagged`](godev_kafka::Codec::Tagged), a record is exactly the JSON Go's
//! `encoding/json` writes for the kit's struct: `id` and `event_type` first, then the payload
//! fields in the Go struct's order. Go and Rust services share the topics in both directions.
//!
//! | event | logical topic | key | types |
//! |---|---|---|---|
//! | [`UserEvent`] | [`USER_EVENTS_TOPIC`] | decimal `user_id` | [`USER_CREATED`], [`USER_UPDATED`], [`USER_DELETED`] |
//! | [`TranslationEvent`] | [`TRANSLATION_EVENTS_TOPIC`] | decimal `user_id` (the Go kit: `<user_id>-<event_type>`) | [`TRANSLATION_REQUESTED`], [`TRANSLATION_COMPLETED`] |

mod translation;
mod user;

pub use translation::{
    TRANSLATION_COMPLETED, TRANSLATION_EVENTS_TOPIC, TRANSLATION_REQUESTED, TranslationData,
    TranslationEvent,
};
pub use user::{USER_CREATED, USER_DELETED, USER_EVENTS_TOPIC, USER_UPDATED, UserData, UserEvent};

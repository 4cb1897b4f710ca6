//! # godev-kafka
//!
//! An event framework over Apache Kafka: derive events, write plain `async fn` handlers, run
//! grouped consumers that dispatch each record on its event-type tag.
//!
//! ```no_run
//! use godev_kafka::{handler, Event, HandlerError};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize, Event)]
//! #[event(topic = "user_events", name = "user.created", key = "user_id")]
//! struct UserCreated {
//!     user_id: i64,
//!     email: String,
//! }
//!
//! #[handler]
//! async fn welcome(event: UserCreated) -> Result<(), HandlerError> {
//!     println!("welcome, user {}", event.user_id);
//!     Ok(())
//! }
//! ```
//!
//! # Feature flags
//!
//! - `testing`: helpers that find a real broker for tests (an address from the environment,
//!   or a testcontainers container) and make unique topic and group names.

pub mod config;
pub mod consumer;
pub mod dispatch;
mod error;
pub mod event;
mod manager;
pub mod partitioner;
pub mod producer;
mod signal;
#[cfg(feature = "testing")]
pub mod testing;
mod topics;
pub mod transport;

pub use config::Config;
pub use consumer::{Consumer, ConsumerSettings, RunningConsumer};
pub use dispatch::{Context, Handler, HandlerError, Route, Router, UnknownTagPolicy};
pub use error::{Error, Result};
pub use event::{Codec, Event};
pub use godev_kafka_derive::{Event, handler};
pub use manager::{Manager, Status};
pub use producer::{Delivery, Producer};
pub use signal::shutdown_signal;
pub use topics::TopicMap;

/// Items the macros' generated code refers to. Not public API: no stability promise.
#[doc(hidden)]
pub mod __private {
    pub use crate::dispatch::{Context, Handler, HandlerError, HandlerFuture, HandlerOptions};
    pub use crate::event::{DecodeError, Event, PartitionKey};
    pub use serde;
    pub use serde_json;
    pub use std::boxed::Box;
    pub use std::time::Duration;

    /// Turns a handler's `Result<(), E>` into the framework's result.
    pub fn into_handler_result<E: Into<HandlerError>>(
        result: Result<(), E>,
    ) -> Result<(), HandlerError> {
        result.map_err(Into::into)
    }

    /// Compile-time check that a handler's event argument implements [`Event`].
    pub const fn assert_event<E: Event>() {}

    /// Compile-time check that a handler's future can move between threads.
    pub fn assert_send<F: std::future::Future + Send>(future: F) -> F {
        future
    }
}

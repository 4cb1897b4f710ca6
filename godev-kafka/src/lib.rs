//! # godev-kafka
//!
//! An event framework over Apache Kafka: derive events, write plain `async fn` handlers, run
//! grouped consumers that dispatch each record on its event-type tag.
//!
//! ```
//! use godev_kafka::transport::memory::MemoryTransport;
//! use godev_kafka::{handler, Consumer, Event, HandlerError, Producer, TopicMap};
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
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let transport = MemoryTransport::new(3); // or transport::kafka::KafkaTransport::connect(..)
//! let topics = TopicMap::from_iter([("user_events", "user-events")]);
//! let consumer = Consumer::builder(transport.clone(), "mailer").topics(topics.clone()).handler::<welcome>().build()?;
//! let running = consumer.start();
//! Producer::new(transport, topics).send(&UserCreated { user_id: 1, email: "a@b.c".into() }).await?;
//! // ... later, on SIGTERM (see `shutdown_signal`):
//! running.shutdown().await?;
//! # Ok::<(), godev_kafka::Error>(()) }).unwrap();
//! ```
//!
//! # Layers
//!
//! - [`event`]: the [`Event`] trait the derive implements, the [`Envelope`](event::Envelope)
//!   and the two [`Codec`]s (CloudEvents JSON, the Go kit's tagged JSON).
//! - [`dispatch`]: handlers, their [`Context`], and the [`Router`] keyed by topic and tag.
//! - [`producer`], [`consumer`] and [`Manager`]: sending, the grouped consumer runner (one
//!   ordered worker per partition, commits of the handled prefix, retries, dead letters,
//!   graceful shutdown), and the producer/consumer switches of a service.
//! - [`transport`]: the backend trait and its backends.
//! - [`config`]: TOML and environment configuration, validated at start-up, refusing a key
//!   the chosen backend cannot honour. It knows no transport: the [`Manager`] maps it to a
//!   backend's options.
//!
//! # Feature flags
//!
//! - `kafka` (default): the backend on the pure-Rust `kafka` crate, for Kafka 0.10 to 3.9,
//!   with consumer-group membership implemented in this crate.
//! - `native`: the project's own client on `kafka-protocol`, for Kafka 0.11 to 4.x: record
//!   batches written and read here with every codec, an idempotent producer, the same
//!   classic group membership as `kafka`.
//! - `testing`: helpers that find a real broker for tests (`GODEV_KAFKA_BROKERS`) and make
//!   unique topic and group names, and create topics.
//! - `confluent`: the backend on the `confluent-kafka` crate, for Kafka 4 (KIP-848 consumer
//!   groups, idempotent producer, CloudEvents Kafka headers). Heavier to build.
//! - `testcontainers`: lets `testing::broker()` start an `apache/kafka` container when no
//!   address is configured and a Docker daemon answers.
//! - `metrics`: the consumer and the producer record metrics through the `metrics` facade
//!   into whatever recorder the application installs (see [`telemetry`]).
//! - `fuzzing`: exposes the internal decoders of untrusted bytes to the fuzz targets in
//!   `fuzz/`. For those targets only: not API, no stability promise.

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
#[path = "fuzzing.rs"]
pub mod __fuzz;
mod backoff;
pub mod config;
pub mod consumer;
pub mod dispatch;
mod error;
pub mod event;
mod manager;
mod options;
pub mod partitioner;
pub mod producer;
mod security;
mod signal;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
mod topics;
pub mod transport;

pub use config::Config;
pub use consumer::{Consumer, ConsumerSettings, RunningConsumer};
pub use dispatch::{Context, Handler, HandlerError, Route, Router, UnknownTagPolicy};
pub use error::{Error, KafkaCode, Result};
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

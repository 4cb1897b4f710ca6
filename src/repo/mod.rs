//! The repository layer: the Go kit's `KafkaRepo` interface (`internal/repo/contracts.go`) and
//! its implementation over the framework's [`Manager`](godev_kafka::Manager).
//!
//! # Static dispatch, on purpose
//!
//! [`KafkaRepo`] returns `impl Future + Send` from its async methods (return-position
//! `impl Trait` in traits, stable since Rust 1.75) instead of boxed futures. That makes it
//! not `dyn`-compatible, and it is meant to be used through generics
//! (`KafkaEventUseCase<R: KafkaRepo>`): the Go interface's value (the use case does not know
//! the implementation; tests can give it a fake) is kept, each call costs no allocation, and
//! the two methods a `dyn` trait could not have anyway stay possible: [`KafkaRepo::send_message`]
//! takes any `Serialize` value (the Go kit's `value any`) and [`KafkaRepo::send_event`] any
//! [`Event`](godev_kafka::Event). The `+ Send` on every future lets callers spawn them.

mod manager;

use std::future::Future;

use godev_kafka::consumer::ConsumerBuilder;
use godev_kafka::{Consumer, Delivery, Event, Status};
use serde::Serialize;

use crate::Result;

pub use manager::KafkaManagerRepo;

/// The Go kit's `KafkaRepo`: send messages and events, register and start consumers, switch
/// the producer and the consumers, report status, close.
pub trait KafkaRepo: Send + Sync + 'static {
    /// The Go kit's `SendMessage`: JSON-encodes `value` and sends it as it is to the real
    /// topic `topic`, keyed by `key` (an empty key means no key: the record is spread).
    ///
    /// # Errors
    ///
    /// [`Error::Encode`](crate::Error::Encode) when `value` does not serialize; else the
    /// framework's send error (the producer is disabled, the broker failed).
    fn send_message<V: Serialize + ?Sized>(
        &self,
        topic: &str,
        key: &[u8],
        value: &V,
    ) -> impl Future<Output = Result<Delivery>> + Send;

    /// Sends a typed event to its logical topic's real topic, keyed by its key field, encoded
    /// with the repository's codec.
    ///
    /// # Errors
    ///
    /// The framework's encode or send error.
    fn send_event<E: Event>(&self, event: &E) -> impl Future<Output = Result<Delivery>> + Send;

    /// A consumer builder on the repository's transport, already set up with its group,
    /// topic table, codec, unknown-tag policy and consumer settings; add handlers and build.
    fn consumer_builder(&self) -> ConsumerBuilder;

    /// Registers a consumer (the Go kit's `AddConsumer`); it runs from
    /// [`KafkaRepo::start_all_consumers`] on, or at once if that already happened.
    fn add_consumer(&self, consumer: Consumer);

    /// Starts every registered consumer, unless consumers are disabled. Calling it again does
    /// nothing. Must be called within a Tokio runtime.
    fn start_all_consumers(&self);

    /// Stops the consumers gracefully (in-flight handlers finish, offsets are committed, the
    /// groups are left) and flushes the producer.
    ///
    /// # Errors
    ///
    /// The first error a consumer stopped with, else a flush error.
    fn close(&self) -> impl Future<Output = Result<()>> + Send;

    /// Accepts sends again.
    fn enable_producer(&self);

    /// Refuses further sends.
    fn disable_producer(&self);

    /// Starts the consumers again (if they were started); they resume where they committed.
    fn enable_consumer(&self) -> impl Future<Output = ()> + Send;

    /// Stops the running consumers gracefully; nothing is consumed until re-enabled.
    ///
    /// # Errors
    ///
    /// The first error a consumer stopped with.
    fn disable_consumer(&self) -> impl Future<Output = Result<()>> + Send;

    /// Whether sends are accepted.
    fn is_producer_enabled(&self) -> bool;

    /// Whether consumers run once started.
    fn is_consumer_enabled(&self) -> bool;

    /// The Go kit's `GetStatus`: switches, consumer count, brokers, and each group's assignment.
    fn status(&self) -> Status;
}

//! The application's error type.

/// The result type of the application.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the application layers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An event type the use case does not produce.
    #[error("unknown {kind} event type `{event_type}`; expected one of {expected:?}")]
    UnknownEventType {
        /// `user` or `translation`.
        kind: &'static str,
        /// The type that was asked for.
        event_type: String,
        /// The types that are accepted.
        expected: &'static [&'static str],
    },
    /// A message value could not be JSON-encoded.
    #[error("message for `{topic}` does not encode as JSON: {source}")]
    Encode {
        /// The topic it was meant for.
        topic: String,
        /// What serde said.
        source: serde_json::Error,
    },
    /// The framework failed (transport, send, consumer, config).
    #[error(transparent)]
    Kafka(#[from] godev_kafka::Error),
}

//! The crate's one error type.

mod kafka_code;

pub use kafka_code::KafkaCode;

use crate::event::DecodeError;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the framework, outside a handler.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid; `key` names the offending key.
    #[error("config key `{key}`: {message}")]
    Config {
        /// The dotted config key (or environment variable) at fault.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Two handlers claim the same tag on the same topic in the same group.
    #[error(
        "handlers `{first}` and `{second}` both handle `{tag}` on topic `{topic}` in group `{group}`; keep one, or move one to another group with #[handler(group = \"...\")]"
    )]
    DuplicateHandler {
        /// The real topic.
        topic: String,
        /// The tag both handle.
        tag: String,
        /// The consumer group.
        group: String,
        /// The handler registered first.
        first: &'static str,
        /// The handler registered second.
        second: &'static str,
    },
    /// A consumer was built without any handler.
    #[error("consumer has no handlers; register at least one with `.handler::<my_handler>()`")]
    NoHandlers,
    /// The event could not be encoded.
    #[error("event `{tag}` does not encode: {source}")]
    Encode {
        /// The tag of the event.
        tag: &'static str,
        /// What serde said.
        source: serde_json::Error,
    },
    /// A record value could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The broker or transport refused or failed a request.
    #[error("{operation} failed: {message}")]
    Transport {
        /// What was being done (`produce to user-events`, `join group g`, ...).
        operation: String,
        /// The broker's or the client's explanation.
        message: String,
        /// Whether trying again later may succeed.
        retriable: bool,
    },
    /// A broker answered a request with a Kafka error code.
    #[error(
        "{operation} failed: the broker answered {code}{}",
        .message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
    )]
    Kafka {
        /// What was being done, naming the broker, group, topic or partition it concerned.
        operation: String,
        /// The code the broker answered.
        code: KafkaCode,
        /// The broker's own words, where the response carries them.
        message: Option<String>,
    },
    /// A commit was refused because the group moved on (this member lost the partition).
    #[error("commit refused for group `{group}`: generation {generation} is no longer current")]
    Fenced {
        /// The group.
        group: String,
        /// The stale generation.
        generation: i32,
    },
    /// A record could not be sent; the caller gets the record back.
    #[error("send to `{topic}` failed: {source}")]
    Send {
        /// The real topic.
        topic: String,
        /// The key that was not sent.
        key: Option<Vec<u8>>,
        /// The value that was not sent.
        value: Vec<u8>,
        /// Why.
        source: Box<Error>,
    },
    /// A record's tag has no handler and the consumer's policy is
    /// [`UnknownTagPolicy::Fail`](crate::UnknownTagPolicy::Fail).
    #[error(
        "no handler for tag `{tag}` at {topic}[{partition}]@{offset}; the consumer stopped (unknown-tag policy `fail`)"
    )]
    UnhandledTag {
        /// The real topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The offset of the record.
        offset: i64,
        /// The tag no handler claims.
        tag: String,
    },
    /// The producer or consumer was shut down or disabled.
    #[error("{0} is closed")]
    Closed(&'static str),
}

impl Error {
    /// Whether trying the same operation again later may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Transport { retriable, .. } => *retriable,
            Error::Kafka { code, .. } => code.is_retriable(),
            Error::Send { source, .. } => source.is_retriable(),
            _ => false,
        }
    }

    /// The Kafka error code the broker answered, if that is what failed (also for a failed
    /// send).
    ///
    /// # Examples
    ///
    /// ```
    /// use godev_kafka::{Error, KafkaCode};
    ///
    /// fn should_refresh_metadata(e: &Error) -> bool {
    ///     matches!(
    ///         e.kafka_code(),
    ///         Some(KafkaCode::NOT_LEADER_OR_FOLLOWER | KafkaCode::UNKNOWN_TOPIC_OR_PARTITION)
    ///     )
    /// }
    /// # assert!(!should_refresh_metadata(&Error::NoHandlers));
    /// ```
    pub fn kafka_code(&self) -> Option<KafkaCode> {
        match self {
            Error::Kafka { code, .. } => Some(*code),
            Error::Send { source, .. } => source.kafka_code(),
            _ => None,
        }
    }

    /// A broker's error code `code` for `operation`.
    #[cfg(any(test, feature = "kafka", feature = "native"))]
    pub(crate) fn kafka(operation: impl Into<String>, code: i16) -> Self {
        Error::Kafka {
            operation: operation.into(),
            code: KafkaCode::new(code),
            message: None,
        }
    }

    /// [`Error::kafka`] with the broker's message, when it sent a non-empty one.
    #[cfg(any(test, feature = "kafka", feature = "native", feature = "confluent"))]
    pub(crate) fn kafka_with(
        operation: impl Into<String>,
        code: i16,
        message: Option<impl ToString>,
    ) -> Self {
        Error::Kafka {
            operation: operation.into(),
            code: KafkaCode::new(code),
            message: message.map(|m| m.to_string()).filter(|m| !m.is_empty()),
        }
    }

    pub(crate) fn transport(
        operation: impl Into<String>,
        message: impl ToString,
        retriable: bool,
    ) -> Self {
        Error::Transport {
            operation: operation.into(),
            message: message.to_string(),
            retriable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_code_is_typed_named_and_decides_retriability() {
        let e = Error::kafka_with("create topic t", 38, Some("factor 3 > 1 broker"));
        assert_eq!(e.kafka_code(), Some(KafkaCode::INVALID_REPLICATION_FACTOR));
        assert!(!e.is_retriable());
        assert_eq!(
            e.to_string(),
            "create topic t failed: the broker answered INVALID_REPLICATION_FACTOR (38): \
             factor 3 > 1 broker"
        );
        let e = Error::kafka_with("list offsets of t: partition 2", 6, None::<&str>);
        assert!(e.is_retriable());
        assert_eq!(
            e.to_string(),
            "list offsets of t: partition 2 failed: the broker answered NOT_LEADER_OR_FOLLOWER (6)"
        );
        let empty = Error::kafka_with("x", 6, Some(""));
        assert!(matches!(empty, Error::Kafka { message: None, .. }));
    }

    #[test]
    fn a_failed_send_shows_the_code_it_failed_with() {
        let send = Error::Send {
            topic: "t".into(),
            key: None,
            value: b"v".to_vec(),
            source: Box::new(Error::kafka("produce to t[0]", 10)),
        };
        assert_eq!(send.kafka_code(), Some(KafkaCode::MESSAGE_TOO_LARGE));
        assert!(!send.is_retriable());
        assert_eq!(Error::NoHandlers.kafka_code(), None);
    }
}

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
            Error::Send { source, .. } => source.is_retriable(),
            _ => false,
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

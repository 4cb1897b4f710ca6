use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::Context;
use crate::Event;

/// The future a handler returns, boxed so that handlers of different types share a router.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'static>>;

/// A registered handler: implemented by `#[handler]` on a marker type named like the function.
///
/// You do not implement it by hand; write an `async fn` and mark it `#[handler]`.
///
/// # Examples
///
/// ```
/// use godev_kafka::{handler, Event, Handler, HandlerError};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize, Event)]
/// # #[event(topic = "user_events", name = "user.created")]
/// # struct UserCreated { user_id: i64 }
///
/// #[handler(group = "mailer")]
/// async fn send_welcome(event: UserCreated) -> Result<(), HandlerError> {
///     let _ = event.user_id;
///     Ok(())
/// }
///
/// assert_eq!(<send_welcome as Handler>::OPTIONS.group, Some("mailer"));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a handler",
    note = "mark an `async fn` with `#[handler]` and register it by its name: `.handler::<my_fn>()`"
)]
pub trait Handler: Send + Sync + 'static {
    /// The event type the handler takes.
    type Event: Event;
    /// The handler's name, for logs and dead letters (`module::function`).
    const NAME: &'static str;
    /// Per-handler settings from the attribute.
    const OPTIONS: HandlerOptions;
    /// Calls the handler.
    fn call(event: Self::Event, ctx: Context) -> HandlerFuture;
}

/// Per-handler settings, written in the `#[handler(...)]` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandlerOptions {
    /// The consumer group, overriding the config's `group_id`.
    pub group: Option<&'static str>,
    /// How many times the handler is called for one record before it is dead-lettered.
    pub max_attempts: Option<u32>,
    /// The first retry delay; later ones double, with jitter.
    pub backoff: Option<Duration>,
    /// Where this handler's dead letters go, instead of `<topic><dead_letter_suffix>`.
    pub dead_letter_topic: Option<&'static str>,
}

impl HandlerOptions {
    /// No overrides: the consumer's settings apply.
    pub const fn new() -> Self {
        Self {
            group: None,
            max_attempts: None,
            backoff: None,
            dead_letter_topic: None,
        }
    }

    /// Overrides the consumer group.
    pub const fn group(mut self, group: &'static str) -> Self {
        self.group = Some(group);
        self
    }

    /// Overrides the number of attempts per record.
    pub const fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Sends this handler's dead letters to `topic`.
    pub const fn dead_letter_topic(mut self, topic: &'static str) -> Self {
        self.dead_letter_topic = Some(topic);
        self
    }

    /// Overrides the first retry delay.
    pub const fn backoff(mut self, delay: Duration) -> Self {
        self.backoff = Some(delay);
        self
    }
}

impl Default for HandlerOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// The error a handler returns: any error converts into it with `?`.
///
/// Converted errors are *retriable*: the record is tried again with backoff, then
/// dead-lettered. Use [`HandlerError::permanent`] for errors no retry can fix (bad data, a
/// rule the event breaks): the record goes to the dead-letter topic at once.
///
/// # Examples
///
/// ```
/// use godev_kafka::HandlerError;
///
/// fn parse(text: &str) -> Result<u32, HandlerError> {
///     let n: u32 = text.parse()?; // retriable
///     if n == 0 {
///         return Err(HandlerError::permanent("zero is not a valid amount"));
///     }
///     Ok(n)
/// }
/// assert!(parse("0").unwrap_err().is_permanent());
/// assert!(!parse("x").unwrap_err().is_permanent());
/// ```
pub struct HandlerError {
    permanent: bool,
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl HandlerError {
    /// A retriable error.
    pub fn retriable(error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self {
            permanent: false,
            source: error.into(),
        }
    }

    /// An error no retry can fix: the record is dead-lettered at once.
    pub fn permanent(error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self {
            permanent: true,
            source: error.into(),
        }
    }

    /// Whether the error is permanent.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// The underlying error.
    pub fn source(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.source
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(error: E) -> Self {
        Self::retriable(error)
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("permanent", &self.permanent)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

//! Dispatch: from a record to the handler registered for its tag.
//!
//! Handlers are plain `async fn`s marked `#[handler]`. The attribute keeps the function
//! callable as it is (so tests can call it directly) and adds, beside it, a marker type of the
//! same name that implements [`Handler`]; a consumer registers that type with
//! `.handler::<my_fn>()`.
//!
//! A [`Router`] maps `(topic, tag)` to one handler per consumer group. It reads the tag of a
//! record without decoding the payload and decodes only for the handler that matched, so a
//! topic can carry event types this service does not know. What happens to a record no handler
//! claims is the [`UnknownTagPolicy`]. Two handlers for one `(topic, tag, group)` are refused
//! when the consumer is built, never silently overridden.

mod context;
mod handler;
mod router;

pub use context::Context;
pub(crate) use context::States;
pub use handler::{Handler, HandlerError, HandlerFuture, HandlerOptions};
pub use router::{Route, Router, UnknownTagPolicy};

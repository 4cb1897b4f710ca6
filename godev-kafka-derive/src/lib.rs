//! Macros of godev-kafka: `#[derive(Event)]` and `#[handler]`.
//!
//! Use them through the `godev-kafka` crate, which re-exports both; the code they write refers
//! to it through its hidden `__private` module. Users who rename the dependency say so with
//! `crate = "..."` in either attribute.

mod attr;
mod ctxt;
mod event;
mod handler;
mod respan;

use proc_macro::TokenStream;

/// Implements `godev_kafka::Event` for a struct or an enum.
///
/// The derive binds the type to a logical topic and gives it one tag per shape. It does not
/// derive `Serialize`/`Deserialize`: a struct derives them itself, and the payload types of an
/// enum's variants must implement them.
///
/// # Structs
///
/// ```
/// use godev_kafka::Event;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Event)]
/// #[event(topic = "user_events", name = "user.created", key = "user_id")]
/// struct UserCreated {
///     user_id: i64,
///     email: String,
/// }
///
/// let event = UserCreated { user_id: 7, email: "a@example.com".into() };
/// assert_eq!(event.tag(), "user.created");
/// assert_eq!(event.key(), Some(b"7".to_vec()));
/// ```
///
/// * `topic` (required): the logical topic.
/// * `name` (required): the tag. The payload is the struct's own JSON.
/// * `key` (optional): a named field whose type implements `PartitionKey`; without it the
///   records are unkeyed.
/// * `crate` (optional): the path of the runtime crate, `godev_kafka` by default.
///
/// # Enums
///
/// `topic`, `key` and `crate` stand on the enum, `name` on every variant (tags are unique
/// within the enum), and a variant may give its own `key`.
///
/// ```
/// use godev_kafka::Event;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Failure {
///     user_id: i64,
///     reason: String,
/// }
///
/// #[derive(Event)]
/// #[event(topic = "translation_events", key = "user_id")]
/// enum TranslationEvent {
///     #[event(name = "translation.completed")]
///     Completed { user_id: i64, words: u32 },
///     #[event(name = "translation.failed")]
///     Failed(Failure),
///     #[event(name = "translation.retried", key = "job")]
///     Retried { job: String, user_id: i64 },
///     #[event(name = "translation.heartbeat")]
///     Heartbeat,
/// }
///
/// let event = TranslationEvent::Completed { user_id: 7, words: 120 };
/// let mut payload = Vec::new();
/// event.write_payload(&mut payload).unwrap();
/// assert_eq!(payload, br#"{"user_id":7,"words":120}"#);
/// ```
///
/// A variant's payload, by its shape:
///
/// | variant          | payload JSON                     | decodes from                 |
/// |------------------|----------------------------------|------------------------------|
/// | `V { a, b }`     | an object of the fields          | that object                  |
/// | `V(Inner)`       | `Inner`'s own JSON               | `Inner`'s JSON               |
/// | `V(A, B)`        | an array of the fields           | that array                   |
/// | `V`              | `{}`                             | `{}` or `null` (no `data`)   |
///
/// The `#[serde(...)]` attributes of a named variant's fields (`rename`, `default`, ...) apply
/// to its payload. Attributes that call a function with the field (`with`, `serialize_with`,
/// `skip_serializing_if`) receive a reference to it when writing; to use those, wrap a struct
/// of your own in a newtype variant.
///
/// A variant's key is its own `key`, or else the enum's:
///
/// * on a named variant it names one of the variant's fields (an error otherwise);
/// * on a newtype variant `V(Inner)` it names a field of `Inner`, checked by the compiler;
/// * unit variants and tuple variants of several fields have no field to name: the enum's key
///   does not apply to them (their records are unkeyed) and a `key` of their own is an error.
///
/// # Errors
///
/// Every mistake in the attributes is reported at once, at the token that is wrong, next to a
/// stub impl so that the rest of the crate type-checks.
#[proc_macro_derive(Event, attributes(event, serde))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    event::derive(&input).into()
}

/// Turns an `async fn` into a handler that a consumer registers by its name.
///
/// The function stays as written, so tests can call it. Beside it the attribute adds a marker
/// type of the same name implementing `godev_kafka::Handler`; register it with
/// `.handler::<on_created>()`.
///
/// ```
/// use godev_kafka::{handler, Context, Event, Handler, HandlerError};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize, Event)]
/// # #[event(topic = "user_events", name = "user.created")]
/// # struct UserCreated { user_id: i64 }
///
/// #[handler(group = "mailer", max_attempts = 5, backoff_ms = 200)]
/// async fn on_created(event: UserCreated, ctx: Context) -> Result<(), HandlerError> {
///     let _ = (event.user_id, ctx.attempt());
///     Ok(())
/// }
///
/// assert_eq!(<on_created as Handler>::OPTIONS.max_attempts, Some(5));
/// ```
///
/// The function takes the event, and optionally the `Context` second; it returns
/// `Result<(), E>` for any `E` that converts into `HandlerError`. Settings:
///
/// * `group = "..."`: the consumer group, instead of the consumer's own.
/// * `max_attempts = N` (at least 1): tries per record before it is dead-lettered.
/// * `backoff_ms = N`: the first retry delay in milliseconds.
/// * `crate = "..."`: the path of the runtime crate, `godev_kafka` by default.
///
/// # Errors
///
/// Compile errors point at the part of the function that is wrong: a missing `async`, a
/// `self` argument, an event type that is not an `Event`, a second argument that is not the
/// `Context`, a return type that is not `Result<(), _>`, or a future that is not `Send`
/// (something not `Send`, like an `Rc`, held across an `.await`).
#[proc_macro_attribute]
pub fn handler(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::handler(args.into(), item.into()).into()
}

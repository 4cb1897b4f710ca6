//! Events: typed payloads bound to a topic and to event-type tags.
//!
//! A type becomes an event with `#[derive(Event)]`. The derive records the *logical* topic
//! (resolved to a real topic through the config's topic table, used as is when the table has
//! no entry), the tag of every shape the type can take, and the field that holds the
//! partition key. The runtime never guesses a tag: it is read from the value when sending and
//! from the record when consuming, and a record is decoded only by a handler registered for
//! its tag.
//!
//! On the wire every record carries its tag inside the value (see [`Codec`]), because the
//! `kafka` crate has no record headers and brokers drop headers when they down-convert for old
//! clients.

mod codec;
mod key;
mod time;

pub use codec::{Codec, DecodeError, Envelope};
pub use key::PartitionKey;
pub use time::Timestamp;

/// A typed event: a serde payload bound to a logical topic and to one tag per shape.
///
/// Implement it with `#[derive(Event)]`; writing it by hand is possible but the derive checks
/// the attributes for you.
///
/// # Examples
///
/// ```
/// use godev_kafka::Event;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize, Event)]
/// #[event(topic = "user_events", name = "user.created", key = "user_id")]
/// struct UserCreated {
///     user_id: i64,
///     email: String,
/// }
///
/// let event = UserCreated { user_id: 7, email: "a@example.com".into() };
/// assert_eq!(UserCreated::TOPIC, "user_events");
/// assert_eq!(UserCreated::TAGS, &["user.created"]);
/// assert_eq!(event.tag(), "user.created");
/// assert_eq!(event.key(), Some(b"7".to_vec()));
/// ```
pub trait Event: Sized + Send + Sync + 'static {
    /// The logical topic name, as written in `#[event(topic = "...")]`.
    const TOPIC: &'static str;

    /// Every tag a value of this type can carry, in declaration order.
    const TAGS: &'static [&'static str];

    /// The tag of this value.
    fn tag(&self) -> &'static str;

    /// The partition key of this value, if the type names a key field.
    fn key(&self) -> Option<Vec<u8>>;

    /// Serializes the payload (the data of the event, without the tag) as JSON.
    ///
    /// # Errors
    ///
    /// Whatever the payload's `Serialize` implementation reports.
    fn write_payload<W: std::io::Write>(&self, writer: W) -> serde_json::Result<()>;

    /// Decodes a payload carrying `tag` from its JSON text.
    ///
    /// # Errors
    ///
    /// Fails when the tag belongs to no shape of this type or when the JSON does not
    /// deserialize into the shape the tag names.
    fn read_payload(tag: &str, json: &str) -> Result<Self, DecodeError>;
}

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::transport::Header;

/// Where a record came from and how often it was tried: the optional second handler argument.
///
/// # Examples
///
/// ```
/// use godev_kafka::{handler, Context, Event, HandlerError};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize, Event)]
/// # #[event(topic = "user_events", name = "user.created")]
/// # struct UserCreated { user_id: i64 }
///
/// #[handler]
/// async fn on_created(event: UserCreated, ctx: Context) -> Result<(), HandlerError> {
///     println!("user {} from {}[{}]@{}", event.user_id, ctx.topic(), ctx.partition(), ctx.offset());
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Context {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) headers: Vec<Header>,
    pub(crate) tag: String,
    pub(crate) group: String,
    pub(crate) attempt: u32,
    pub(crate) states: States,
}

/// Values a consumer hands to its handlers, one per type (see [`Context::state`]).
#[derive(Clone, Default)]
pub(crate) struct States(Arc<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>);

impl States {
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        Arc::make_mut(&mut self.0).insert(TypeId::of::<T>(), Arc::new(value));
    }
}

impl fmt::Debug for States {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "States({} values)", self.0.len())
    }
}

impl Context {
    /// A context for calling a handler directly, in a test: partition 0, offset 0, attempt 1,
    /// no key and no headers.
    ///
    /// # Examples
    ///
    /// ```
    /// let ctx = godev_kafka::Context::for_test("user-events", "user.created");
    /// assert_eq!(ctx.attempt(), 1);
    /// ```
    pub fn for_test(topic: &str, tag: &str) -> Self {
        Self {
            topic: topic.to_owned(),
            partition: 0,
            offset: 0,
            key: None,
            headers: Vec::new(),
            tag: tag.to_owned(),
            group: "test".to_owned(),
            attempt: 1,
            states: States::default(),
        }
    }

    /// Adds `value` to what [`Context::state`] finds, as a consumer built with
    /// [`ConsumerBuilder::state`](crate::consumer::ConsumerBuilder::state) does; for tests that
    /// call a handler directly.
    pub fn with_state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.states.insert(value);
        self
    }

    /// Adds `header` after the headers the context has, as if the record carried it; for tests
    /// that call a handler directly.
    ///
    /// # Examples
    ///
    /// ```
    /// use godev_kafka::Context;
    /// use godev_kafka::transport::Header;
    ///
    /// let ctx = Context::for_test("user-events", "user.created")
    ///     .with_header(Header::new("traceparent", "00-4bf92f35-01"))
    ///     .with_header(Header::null("tenant"));
    /// assert_eq!(ctx.headers().len(), 2);
    /// ```
    pub fn with_header(mut self, header: Header) -> Self {
        self.headers.push(header);
        self
    }

    /// The value of type `T` the consumer was given with
    /// [`ConsumerBuilder::state`](crate::consumer::ConsumerBuilder::state): a database pool,
    /// a client, a channel. Handlers are plain functions; this is how they reach the
    /// service's shared parts.
    ///
    /// # Examples
    ///
    /// ```
    /// use godev_kafka::{handler, Context, Event, HandlerError};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize, Event)]
    /// # #[event(topic = "user_events", name = "user.created")]
    /// # struct UserCreated { user_id: i64 }
    ///
    /// struct Mailer { from: &'static str }
    ///
    /// #[handler]
    /// async fn welcome(event: UserCreated, ctx: Context) -> Result<(), HandlerError> {
    ///     let mailer = ctx.state::<Mailer>().ok_or_else(|| HandlerError::permanent("no mailer configured"))?;
    ///     println!("mail user {} from {}", event.user_id, mailer.from);
    ///     Ok(())
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let ctx = Context::for_test("user-events", "user.created").with_state(Mailer { from: "hi@example.com" });
    /// welcome(UserCreated { user_id: 1 }, ctx).await.unwrap();
    /// # });
    /// ```
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.states.0.get(&TypeId::of::<T>())?.downcast_ref()
    }

    /// The real topic the record was read from.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition of the record.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The offset of the record in its partition.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// The record key, if it has one.
    pub fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    /// The record's headers, in the order the producer wrote them: a key may repeat, and a
    /// header may have a null value (`value` is `None`). Empty for records without headers
    /// and on the `kafka` backend, whose protocol has none.
    ///
    /// Header values may hold credentials or personal data: log them with care.
    ///
    /// # Examples
    ///
    /// ```
    /// use godev_kafka::{handler, Context, Event, HandlerError};
    /// use godev_kafka::transport::Header;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize, Event)]
    /// # #[event(topic = "user_events", name = "user.created")]
    /// # struct UserCreated { user_id: i64 }
    ///
    /// #[handler]
    /// async fn on_created(event: UserCreated, ctx: Context) -> Result<(), HandlerError> {
    ///     for header in ctx.headers() {
    ///         let size = header.value.as_ref().map_or(0, Vec::len);
    ///         println!("user {}: header {} of {size} bytes", event.user_id, header.key);
    ///     }
    ///     Ok(())
    /// }
    ///
    /// let ctx = Context::for_test("user-events", "user.created")
    ///     .with_header(Header::new("hop", "gateway"))
    ///     .with_header(Header::new("hop", "billing"))
    ///     .with_header(Header::null("tenant"));
    /// let keys: Vec<&str> = ctx.headers().iter().map(|h| h.key.as_str()).collect();
    /// assert_eq!(keys, ["hop", "hop", "tenant"]);
    /// assert_eq!(ctx.headers()[1].value.as_deref(), Some(&b"billing"[..]));
    /// assert_eq!(ctx.headers()[2].value, None);
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// on_created(UserCreated { user_id: 1 }, ctx).await.unwrap();
    /// # });
    /// ```
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The value of the last header named `key`, as Kafka's `Headers.lastHeader(key).value()`
    /// gives it: `None` when the record has no header of that name or when the last one has
    /// a null value (an earlier value of the same key is not used then). An empty value is
    /// `Some(&[])`. Use [`Context::headers`] for every value of a repeated key, or to tell
    /// a missing header from a null one. Keys are compared byte for byte (case matters).
    ///
    /// # Examples
    ///
    /// ```
    /// use godev_kafka::Context;
    /// use godev_kafka::transport::Header;
    ///
    /// let ctx = Context::for_test("user-events", "user.created")
    ///     .with_header(Header::new("hop", "gateway"))
    ///     .with_header(Header::new("hop", "billing"))
    ///     .with_header(Header::new("tenant", "acme"))
    ///     .with_header(Header::null("tenant"))
    ///     .with_header(Header::new("empty", ""));
    /// assert_eq!(ctx.header("hop"), Some(&b"billing"[..]), "the last one");
    /// assert_eq!(ctx.header("tenant"), None, "the last one is null");
    /// assert_eq!(ctx.header("empty"), Some(&b""[..]));
    /// assert_eq!(ctx.header("Hop"), None);
    /// assert_eq!(ctx.header("missing"), None);
    /// ```
    pub fn header(&self, key: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|h| h.key == key)?
            .value
            .as_deref()
    }

    /// The event-type tag the record was routed on.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The consumer group handling the record.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Which attempt this is: 1 for the first call, 2 for the first retry, ...
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(headers: &[Header]) -> Context {
        headers
            .iter()
            .cloned()
            .fold(Context::for_test("t", "tag"), Context::with_header)
    }

    #[test]
    fn headers_keep_their_order_repeats_and_null_values() {
        let written = [
            Header::new("b", "1"),
            Header::new("a", "2"),
            Header::null("b"),
            Header::new("b", "3"),
            Header::new("e", ""),
        ];
        let ctx = ctx(&written);
        assert_eq!(ctx.headers(), written);
        assert_eq!(ctx.clone().headers(), written, "a clone keeps them");
        assert!(Context::for_test("t", "tag").headers().is_empty());
    }

    #[test]
    fn header_is_the_value_of_the_last_header_of_its_key() {
        let ctx = ctx(&[
            Header::new("hop", "1"),
            Header::new("hop", "2"),
            Header::new("gone", "was"),
            Header::null("gone"),
            Header::null("back"),
            Header::new("back", "again"),
            Header::new("empty", ""),
        ]);
        assert_eq!(ctx.header("hop"), Some(&b"2"[..]));
        assert_eq!(
            ctx.header("gone"),
            None,
            "a null last value hides the earlier one"
        );
        assert_eq!(ctx.header("back"), Some(&b"again"[..]));
        assert_eq!(ctx.header("empty"), Some(&b""[..]), "empty is not null");
        assert_eq!(ctx.header("HOP"), None, "case matters");
        assert_eq!(ctx.header("absent"), None);
    }
}

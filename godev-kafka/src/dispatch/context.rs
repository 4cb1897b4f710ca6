use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

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
    /// A context for calling a handler directly, in a test: partition 0, offset 0, attempt 1.
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

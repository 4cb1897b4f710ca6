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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) tag: String,
    pub(crate) group: String,
    pub(crate) attempt: u32,
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
        }
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

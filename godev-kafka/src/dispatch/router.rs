use std::collections::HashMap;
use std::fmt;

use super::{Context, Handler, HandlerFuture, HandlerOptions};
use crate::event::DecodeError;
use crate::{Error, Event, Result};

/// What a consumer does with a record whose tag no handler in its group claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownTagPolicy {
    /// Commit past it and go on (logged at debug): the topic carries types for other services.
    #[default]
    Skip,
    /// Write it to the dead-letter topic, then commit past it.
    DeadLetter,
    /// Stop the consumer with an error, committing nothing past the record.
    Fail,
}

type DispatchFn = fn(&str, &str, Context) -> Result<HandlerFuture, DecodeError>;

/// One handler, type-erased: decodes the payload for its event type and calls the function.
#[derive(Clone, Copy)]
pub struct Route {
    name: &'static str,
    logical_topic: &'static str,
    tags: &'static [&'static str],
    options: HandlerOptions,
    dispatch: DispatchFn,
}

impl Route {
    /// The route of handler `H`.
    pub fn of<H: Handler>() -> Self {
        Self {
            name: H::NAME,
            logical_topic: <H::Event as Event>::TOPIC,
            tags: <H::Event as Event>::TAGS,
            options: H::OPTIONS,
            dispatch: |tag, data, ctx| {
                let event = <H::Event as Event>::read_payload(tag, data)?;
                Ok(H::call(event, ctx))
            },
        }
    }

    /// The handler's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The logical topic of the handler's event type.
    pub fn logical_topic(&self) -> &'static str {
        self.logical_topic
    }

    /// The tags the handler's event type carries.
    pub fn tags(&self) -> &'static [&'static str] {
        self.tags
    }

    /// The handler's settings.
    pub fn options(&self) -> HandlerOptions {
        self.options
    }

    /// Decodes `data` (the payload's JSON text) and starts the handler.
    ///
    /// # Errors
    ///
    /// Fails when the payload does not decode into the handler's event type.
    pub fn dispatch(
        &self,
        tag: &str,
        data: &str,
        ctx: Context,
    ) -> Result<HandlerFuture, DecodeError> {
        (self.dispatch)(tag, data, ctx)
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("name", &self.name)
            .field("topic", &self.logical_topic)
            .field("tags", &self.tags)
            .finish_non_exhaustive()
    }
}

/// The handlers of one consumer group, keyed by real topic and tag.
///
/// # Examples
///
/// ```
/// use godev_kafka::{handler, Event, HandlerError, Router, Route};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize, Event)]
/// # #[event(topic = "user_events", name = "user.created")]
/// # struct UserCreated { user_id: i64 }
///
/// #[handler]
/// async fn on_created(_event: UserCreated) -> Result<(), HandlerError> { Ok(()) }
///
/// let mut router = Router::new("my-group");
/// router.add("user-events", Route::of::<on_created>()).unwrap();
/// assert!(router.route("user-events", "user.created").is_some());
/// assert!(router.route("user-events", "user.deleted").is_none());
/// // The same tag twice in one group is refused.
/// assert!(router.add("user-events", Route::of::<on_created>()).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct Router {
    group: String,
    topics: HashMap<String, HashMap<&'static str, Route>>,
}

impl Router {
    /// An empty router for `group`.
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            topics: HashMap::new(),
        }
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Registers `route` on the real `topic` for every tag of its event type.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateHandler`] when a tag is already handled on this topic; nothing is
    /// registered then.
    pub fn add(&mut self, topic: &str, route: Route) -> Result<()> {
        let tags = self.topics.entry(topic.to_owned()).or_default();
        if let Some(existing) = route
            .tags
            .iter()
            .find_map(|tag| tags.get(tag).map(|r| (tag, r)))
        {
            return Err(Error::DuplicateHandler {
                topic: topic.to_owned(),
                tag: (*existing.0).to_owned(),
                group: self.group.clone(),
                first: existing.1.name,
                second: route.name,
            });
        }
        for tag in route.tags {
            tags.insert(tag, route);
        }
        Ok(())
    }

    /// The handler for `tag` on `topic`.
    pub fn route(&self, topic: &str, tag: &str) -> Option<&Route> {
        self.topics.get(topic)?.get(tag)
    }

    /// The real topics this router has handlers for, sorted.
    pub fn topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self.topics.keys().cloned().collect();
        topics.sort();
        topics
    }

    /// Whether no handler is registered.
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }
}

//! The topic table: logical topic names (as in `#[event(topic = "...")]`) to real topics.

use std::collections::HashMap;

/// Maps logical topic names to real topic names; a name with no entry is used as it is.
///
/// # Examples
///
/// ```
/// use godev_kafka::TopicMap;
///
/// let topics = TopicMap::from_iter([("user_events", "user-events")]);
/// assert_eq!(topics.resolve("user_events"), "user-events");
/// assert_eq!(topics.resolve("custom-topic"), "custom-topic");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicMap {
    entries: HashMap<String, String>,
}

impl TopicMap {
    /// An empty table: every logical name is used as the real name.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the entry for `logical`.
    pub fn insert(&mut self, logical: impl Into<String>, real: impl Into<String>) {
        self.entries.insert(logical.into(), real.into());
    }

    /// The real topic of `logical`.
    pub fn resolve<'a>(&'a self, logical: &'a str) -> &'a str {
        self.entries.get(logical).map_or(logical, String::as_str)
    }
}

impl<L: Into<String>, R: Into<String>> FromIterator<(L, R)> for TopicMap {
    fn from_iter<I: IntoIterator<Item = (L, R)>>(iter: I) -> Self {
        Self {
            entries: iter
                .into_iter()
                .map(|(l, r)| (l.into(), r.into()))
                .collect(),
        }
    }
}

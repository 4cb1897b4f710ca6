//! Where handlers report what they handled, for the demo and the tests to observe.
//!
//! Each use case owns a [`HandledReports`] channel and hands it to its consumers as handler
//! state (`ConsumerBuilder::state`); its handlers publish a [`Handled`] (ids and coordinates
//! only, never the payload) on it. Whoever wants to observe subscribes
//! ([`KafkaEventUseCase::subscribe`](super::KafkaEventUseCase::subscribe)) *before* producing
//! and keeps the events it cares about, normally by event id ([`wait_for_ids`]). Nobody
//! listening costs nothing; a subscriber that falls more than [`CAPACITY`] events behind
//! misses the oldest ones.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::broadcast;

/// How many reports a slow subscriber can fall behind before it misses some.
pub const CAPACITY: usize = 4096;

/// One event a handler of this crate handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    /// The event id (Unix nanoseconds when it was produced).
    pub id: i64,
    /// The event type (`user.created`, ...).
    pub event_type: String,
    /// The user the event is about.
    pub user_id: i64,
    /// The real topic it was read from.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The consumer group that handled it.
    pub group: String,
}

/// The channel a use case's handlers report on; clones share it.
#[derive(Debug, Clone)]
pub struct HandledReports(broadcast::Sender<Handled>);

impl HandledReports {
    /// A channel with room for [`CAPACITY`] reports per subscriber.
    pub fn new() -> Self {
        Self(broadcast::channel(CAPACITY).0)
    }

    /// Reports of every event handled from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Handled> {
        self.0.subscribe()
    }

    /// Reports `handled` to every subscriber (none is fine).
    pub(crate) fn publish(&self, handled: Handled) {
        let _ = self.0.send(handled);
    }
}

impl Default for HandledReports {
    fn default() -> Self {
        Self::new()
    }
}

/// Receives from `reports` until an event with each of `ids` was handled, or `timeout` passed.
///
/// Reports of other ids are ignored (older runs, other use cases). An id handled twice
/// (at-least-once redelivery) is kept once, first report first.
///
/// # Errors
///
/// The ids not handled in time, in the order given, with the reports that did arrive.
pub async fn wait_for_ids(
    reports: &mut broadcast::Receiver<Handled>,
    ids: &[i64],
    timeout: Duration,
) -> Result<Vec<Handled>, Missing> {
    let mut found: BTreeMap<i64, Handled> = BTreeMap::new();
    let collect = async {
        while ids.iter().any(|id| !found.contains_key(id)) {
            match reports.recv().await {
                Ok(report) if ids.contains(&report.id) => {
                    found.entry(report.id).or_insert(report);
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    };
    let _ = tokio::time::timeout(timeout, collect).await;
    let missing: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| !found.contains_key(id))
        .collect();
    let mut handled: Vec<Handled> = found.into_values().collect();
    handled.sort_by_key(|h| ids.iter().position(|id| *id == h.id));
    if missing.is_empty() {
        Ok(handled)
    } else {
        Err(Missing { missing, handled })
    }
}

/// Events that were not handled in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} of {} events not handled in time (ids {:?})", missing.len(), missing.len() + handled.len(), missing)]
pub struct Missing {
    /// The ids not handled.
    pub missing: Vec<i64>,
    /// What was handled, in the order of the ids asked for.
    pub handled: Vec<Handled>,
}

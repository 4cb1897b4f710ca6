use std::time::Duration;

use crate::transport::OffsetReset;
use crate::{Error, Result};

/// How a consumer runs its groups: timeouts, retries, queues, commits.
///
/// Every field has a default suited to production; tests usually shorten the timeouts.
/// `shutdown_timeout` must end [`SHUTDOWN_MARGIN`](Self::SHUTDOWN_MARGIN) before
/// `rebalance_timeout` ([`ConsumerBuilder::build`](super::ConsumerBuilder::build) refuses
/// settings that do not).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use godev_kafka::consumer::ConsumerSettings;
///
/// let settings = ConsumerSettings { max_attempts: 3, backoff: Duration::from_millis(10), ..Default::default() };
/// assert_eq!(settings.dead_letter_suffix, ".dlq");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSettings {
    /// Where to start in a partition with no committed offset.
    pub offset_reset: OffsetReset,
    /// How long the coordinator waits for a heartbeat before evicting a member.
    pub session_timeout: Duration,
    /// How often members heartbeat.
    pub heartbeat_interval: Duration,
    /// How long a rebalance waits for members to rejoin.
    pub rebalance_timeout: Duration,
    /// How long a handler may work on one record before the member gives its partitions up
    /// (leaves the group) and joins again, as the Java client's `max.poll.interval.ms`: a
    /// stuck handler must not hold its partition forever. The record is read again.
    pub max_poll_interval: Duration,
    /// How long one poll waits for records.
    pub poll_wait: Duration,
    /// Records queued per partition before its fetching pauses.
    pub queue_capacity: usize,
    /// How often handled offsets are committed while running (also on revoke and shutdown).
    pub commit_interval: Duration,
    /// Calls of a handler per record before the record is dead-lettered (handlers can override).
    pub max_attempts: u32,
    /// The first retry delay; each retry doubles it, with jitter, up to `max_backoff`.
    pub backoff: Duration,
    /// The longest retry delay.
    pub max_backoff: Duration,
    /// The longest time spent retrying one record before it is dead-lettered.
    pub max_retry_time: Duration,
    /// Appended to a topic to name its dead-letter topic.
    pub dead_letter_suffix: String,
    /// Values larger than this are dead-lettered without decoding.
    pub max_record_bytes: usize,
    /// How long shutdown (and revocation) waits for in-flight handlers. At most
    /// `rebalance_timeout` minus [`SHUTDOWN_MARGIN`](Self::SHUTDOWN_MARGIN): a member that
    /// drains longer than the rebalance lasts is evicted from the group, and its handled
    /// records are read again.
    pub shutdown_timeout: Duration,
    /// This member's static identity in its group (KIP-345, `group.instance.id`); `None`
    /// (the default) for a dynamic member. Unique per process and kept across its restarts.
    ///
    /// Shutdown of a static member does not leave the group: its partitions wait for it until
    /// the session timeout, and the process that comes back with the same id gets them with
    /// no rebalance. See [`GroupOptions::group_instance_id`].
    ///
    /// [`GroupOptions::group_instance_id`]: crate::transport::GroupOptions::group_instance_id
    pub group_instance_id: Option<String>,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            offset_reset: OffsetReset::Earliest,
            session_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(3),
            rebalance_timeout: Duration::from_secs(30),
            max_poll_interval: Duration::from_secs(300),
            poll_wait: Duration::from_millis(100),
            queue_capacity: 256,
            commit_interval: Duration::from_secs(1),
            max_attempts: 5,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            max_retry_time: Duration::from_secs(60),
            dead_letter_suffix: ".dlq".to_owned(),
            max_record_bytes: 1024 * 1024,
            // The longest the default rebalance timeout allows.
            shutdown_timeout: Duration::from_secs(25),
            group_instance_id: None,
        }
    }
}

impl ConsumerSettings {
    /// How long before the end of `rebalance_timeout` the drain of `shutdown_timeout` must
    /// end: 5 s, a fixed time rather than a share of the rebalance timeout, because what it
    /// covers does not grow with it. Once a rebalance starts, a member learns of it at its
    /// next heartbeat (up to `heartbeat_interval`, 3 s by default) and its next poll (up to
    /// `poll_wait`), then drains, and after the drain it still has to commit and rejoin
    /// (round trips of milliseconds on a healthy cluster) before the broker's rebalance
    /// deadline evicts it.
    ///
    /// # Examples
    ///
    /// ```
    /// use godev_kafka::consumer::ConsumerSettings;
    ///
    /// let settings = ConsumerSettings::default();
    /// assert!(settings.shutdown_timeout + ConsumerSettings::SHUTDOWN_MARGIN <= settings.rebalance_timeout);
    /// ```
    pub const SHUTDOWN_MARGIN: Duration = Duration::from_secs(5);

    /// Whether `shutdown_timeout` ends [`SHUTDOWN_MARGIN`](Self::SHUTDOWN_MARGIN) before
    /// `rebalance_timeout`.
    pub(crate) fn shutdown_fits_rebalance(&self) -> bool {
        self.shutdown_timeout.saturating_add(Self::SHUTDOWN_MARGIN) <= self.rebalance_timeout
    }

    /// The settings a consumer can run with: `shutdown_timeout` within the rebalance timeout
    /// with its margin (a key of `[kafka.consumer]` is checked the same way when the config
    /// loads, naming the key).
    pub(crate) fn check(&self) -> Result<()> {
        if self.shutdown_fits_rebalance() {
            return Ok(());
        }
        Err(Error::Config {
            key: "ConsumerSettings::shutdown_timeout".to_owned(),
            message: format!(
                "must be at most `rebalance_timeout` ({rebalance:?}) minus {margin:?}, found \
                 {shutdown:?}: the drain must end before the rebalance deadline evicts the \
                 member; lower it, or raise `rebalance_timeout` to at least {least:?}",
                margin = Self::SHUTDOWN_MARGIN,
                rebalance = self.rebalance_timeout,
                shutdown = self.shutdown_timeout,
                least = self.shutdown_timeout.saturating_add(Self::SHUTDOWN_MARGIN),
            ),
        })
    }
}

use std::time::Duration;

use crate::transport::OffsetReset;

/// How a consumer runs its groups: timeouts, retries, queues, commits.
///
/// Every field has a default suited to production; tests usually shorten the timeouts.
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
    /// How long shutdown (and revocation) waits for in-flight handlers.
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
            shutdown_timeout: Duration::from_secs(30),
            group_instance_id: None,
        }
    }
}

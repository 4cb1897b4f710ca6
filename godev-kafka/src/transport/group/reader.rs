//! What a group member reads partitions with: the backend's own fetch path.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::Result;
use crate::transport::{BoxFuture, OffsetReset, Record, StalledPartition, TopicPartition};

/// What one fetch brought.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    /// Records at or after the requested positions, each partition's in offset order.
    pub(crate) records: Vec<Record>,
    /// Partitions whose position is no longer in the log.
    pub(crate) out_of_range: Vec<TopicPartition>,
    /// Partitions whose position moves past what holds no record for the consumer (control
    /// records of transactions, aborted records) to this offset.
    pub(crate) skipped_to: Vec<(TopicPartition, i64)>,
    /// Partitions whose records at their position cannot be read: the member stops fetching
    /// them until its next assignment.
    pub(crate) stalled: Vec<StalledPartition>,
    /// The high watermark of every partition the fetch answered without an error.
    pub(crate) high_watermarks: Vec<(TopicPartition, i64)>,
}

/// Reads partitions at explicit positions; the member keeps the positions.
pub(crate) trait PartitionReader: Send + Sync + std::fmt::Debug {
    /// Fetches from `positions`, waiting at most `wait` on the broker for data.
    fn fetch(
        &self,
        positions: Vec<(TopicPartition, i64)>,
        wait: Duration,
    ) -> BoxFuture<'_, Result<Fetched>>;

    /// The earliest or latest offset of every partition of `topics`.
    fn list_offsets(
        &self,
        topics: Vec<String>,
        reset: OffsetReset,
    ) -> BoxFuture<'_, Result<BTreeMap<TopicPartition, i64>>>;
}

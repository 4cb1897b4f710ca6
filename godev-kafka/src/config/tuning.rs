//! The producer and fetch keys as the config read them, typed, before any backend's defaults.

use std::time::Duration;

use crate::options::{Acks, Compression, Isolation};

/// The `[kafka.producer]` keys, each `None` unless the file or the environment set it; a
/// backend fills the others with its own defaults (see the [module docs](super) for them).
///
/// The [`Manager`](crate::Manager) turns it into a backend's options. The `memory` backend
/// ignores it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProducerTuning {
    /// `acks`.
    pub acks: Option<Acks>,
    /// `compression`.
    pub compression: Option<Compression>,
    /// `linger_ms`.
    pub linger: Option<Duration>,
    /// `batch_size`: records per request (`kafka`).
    pub batch_size: Option<usize>,
    /// `batch_bytes`: bytes per partition batch (`native`, `confluent`).
    pub batch_bytes: Option<usize>,
    /// `max_in_flight`: requests in flight per broker (`native`, `confluent`).
    pub max_in_flight: Option<usize>,
    /// `idempotence` (`native`, `confluent`; `true` needs `acks = "all"`).
    pub idempotence: Option<bool>,
    /// `retry_backoff_ms`.
    pub retry_backoff: Option<Duration>,
    /// `request_timeout_ms`.
    pub request_timeout: Option<Duration>,
    /// `delivery_timeout_ms` (`kafka`, `native`, `confluent`).
    pub delivery_timeout: Option<Duration>,
    /// `buffer_bytes` (`kafka`, `native`, `confluent`).
    pub buffer_bytes: Option<usize>,
    /// `max_block_ms` (`kafka`, `native`, `confluent`).
    pub max_block: Option<Duration>,
}

impl ProducerTuning {
    /// The idempotence a backend that has it (`native`, `confluent`) uses: `idempotence` if
    /// set, else on when `acks` is `all` (the default) and `max_in_flight` at most 5, as the
    /// Java client decides.
    pub fn idempotent(&self) -> bool {
        self.idempotence.unwrap_or_else(|| {
            self.acks.unwrap_or_default() == Acks::All
                && self
                    .max_in_flight
                    .is_none_or(|n| n <= MAX_IDEMPOTENT_IN_FLIGHT)
        })
    }
}

/// The most requests in flight an idempotent producer may have per broker: the broker
/// remembers the sequence numbers of a producer's last 5 batches per partition.
pub(super) const MAX_IDEMPOTENT_IN_FLIGHT: usize = 5;

/// The fetch keys of `[kafka.consumer]`, each `None` unless the file or the environment set
/// it; a backend fills the others with its own defaults.
///
/// The [`Manager`](crate::Manager) turns it into a backend's options. The `memory` backend
/// ignores it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchTuning {
    /// `fetch_min_bytes` (`native`, `confluent`).
    pub min_bytes: Option<i32>,
    /// `fetch_max_bytes`: the most bytes of one Fetch response (`native`, `confluent`).
    pub max_bytes: Option<i32>,
    /// `fetch_partition_max_bytes`: the most bytes one partition brings per Fetch.
    pub partition_max_bytes: Option<i32>,
    /// `fetch_max_wait_ms` (`native`, `confluent`).
    pub max_wait: Option<Duration>,
    /// `isolation_level` (read committed: `native`, `confluent`).
    pub isolation: Isolation,
}

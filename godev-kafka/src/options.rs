//! Kafka client settings shared by config and transports.
//!
//! The words both sides need: the [`config`](crate::config) reads them from a file and the
//! transports act on them, and neither imports the other. The public paths are
//! [`transport::Acks`](crate::transport::Acks) and its neighbours.

use std::time::Duration;

/// How long every backend's producer waits for more records by default (`linger.ms`).
pub(crate) const DEFAULT_LINGER: Duration = Duration::from_millis(5);
/// How long a request may take by default on every backend (`request.timeout.ms`).
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How many acknowledgements a produce waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// No acknowledgement: the record may be lost unseen, and sends report no offset (-1).
    /// Turns idempotence off.
    None,
    /// The leader wrote the record (turns idempotence off).
    One,
    /// Every in-sync replica wrote the record.
    #[default]
    All,
}

/// How record batches are compressed. The `kafka` backend knows `None`, `Gzip` and `Snappy`
/// and refuses the others when it connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Not compressed.
    #[default]
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard (Kafka 2.1 and later).
    Zstd,
}

impl Compression {
    /// Every codec, in the order of their batch ids.
    pub(crate) const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec Kafka's clients name `name` ([`Compression::as_str`]).
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// The name Kafka's clients and `compression.type` use: `none`, `gzip`, `snappy`, `lz4`,
    /// `zstd`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// The codec id a record batch stores in its attribute bits 0-2.
    #[cfg(feature = "native")]
    pub(crate) const fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec with batch attribute id `id`, if Kafka defines one.
    #[cfg(feature = "native")]
    pub(crate) fn from_id(id: i16) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.id() == id)
    }
}

/// Where a group member starts in a partition that has no committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// At the first record still in the log.
    #[default]
    Earliest,
    /// After the last record: only records written from now on.
    Latest,
}

/// Which records of transactional producers a consumer reads (`isolation.level`).
///
/// # Examples
///
/// ```
/// use godev_kafka::transport::Isolation;
///
/// assert_eq!(Isolation::default(), Isolation::ReadUncommitted);
/// assert_eq!(Isolation::ReadCommitted.as_str(), "read_committed");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Isolation {
    /// Every record, also those of open and aborted transactions (Kafka's default).
    #[default]
    ReadUncommitted,
    /// Only records below the last stable offset, without those of aborted transactions.
    ReadCommitted,
}

impl Isolation {
    /// The level Kafka's clients name `name` ([`Isolation::as_str`]).
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        [Isolation::ReadUncommitted, Isolation::ReadCommitted]
            .into_iter()
            .find(|i| i.as_str() == name)
    }

    /// The name Kafka's clients and `isolation.level` use: `read_uncommitted`,
    /// `read_committed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::ReadUncommitted => "read_uncommitted",
            Isolation::ReadCommitted => "read_committed",
        }
    }
}

//! The partition counts a producer keys records with, cached per topic for a while: reading
//! them from the broker on every send would cost a metadata request per record.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a topic's partition count is trusted before it is read again (the Java client's
/// `metadata.max.age.ms` is five minutes; shorter here so that added partitions are used soon).
const MAX_AGE: Duration = Duration::from_secs(30);

/// Partition counts by topic, with when they were read.
#[derive(Debug, Default)]
pub(crate) struct PartitionCounts {
    counts: Mutex<HashMap<String, (i32, Instant)>>,
}

impl PartitionCounts {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, (i32, Instant)>> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The count of `topic` if it was read less than [`MAX_AGE`] ago.
    pub(crate) fn get(&self, topic: &str) -> Option<i32> {
        let counts = self.lock();
        let (count, read_at) = counts.get(topic)?;
        (read_at.elapsed() < MAX_AGE).then_some(*count)
    }

    /// Remembers `count` for `topic`, read now.
    pub(crate) fn insert(&self, topic: &str, count: i32) {
        self.lock()
            .insert(topic.to_owned(), (count, Instant::now()));
    }

    /// Forgets `topic`, so that the next [`get`](Self::get) misses: after a failed produce the
    /// topic may have been deleted, re-created or grown.
    pub(crate) fn forget(&self, topic: &str) {
        self.lock().remove(topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_forgotten() {
        let counts = PartitionCounts::default();
        assert_eq!(counts.get("t"), None);
        counts.insert("t", 6);
        assert_eq!(counts.get("t"), Some(6));
        counts.forget("t");
        assert_eq!(counts.get("t"), None);
    }
}

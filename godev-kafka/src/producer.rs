//! Producing events: typed [`Producer::send`] and raw [`Producer::send_raw`].
//!
//! A typed send resolves the event's logical topic through the [`TopicMap`], encodes it with
//! the producer's [`Codec`], and picks the partition as the Java client does: keyed records
//! go to `murmur2(key) % partitions`, unkeyed ones are spread round-robin. A send resolves
//! once the broker acknowledged the record; on failure the error carries the key and value
//! that were not sent ([`Error::Send`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use tracing::Instrument;

use crate::partitioner::partition_for_key;
use crate::telemetry;
use crate::transport::{OutgoingRecord, Transport};
use crate::{Codec, Error, Event, Result, TopicMap};

/// Where an acknowledged record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The real topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
}

/// Sends events through a transport. Cheap to clone; clones share the transport.
///
/// # Examples
///
/// ```
/// use godev_kafka::{Event, Producer, TopicMap};
/// use godev_kafka::transport::memory::MemoryTransport;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Event)]
/// #[event(topic = "user_events", name = "user.created", key = "user_id")]
/// struct UserCreated { user_id: i64 }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let transport = MemoryTransport::new(6);
/// let producer = Producer::new(transport.clone(), TopicMap::from_iter([("user_events", "user-events")]));
/// let delivery = producer.send(&UserCreated { user_id: 1 }).await.unwrap();
/// assert_eq!(delivery.topic, "user-events");
/// assert_eq!(delivery.offset, 0);
/// # });
/// ```
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Arc<dyn Transport>,
    topics: TopicMap,
    codec: Codec,
    source: String,
    enabled: AtomicBool,
    next_partition: AtomicU32,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("transport", &self.inner.transport.name())
            .field("codec", &self.inner.codec)
            .field("enabled", &self.is_enabled())
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// A producer writing CloudEvents JSON with source `godev-kafka`.
    pub fn new(transport: impl Transport, topics: TopicMap) -> Self {
        Self::with_transport(Arc::new(transport), topics, Codec::default(), "godev-kafka")
    }

    /// A producer on a shared transport, with its codec and CloudEvents `source`.
    pub fn with_transport(
        transport: Arc<dyn Transport>,
        topics: TopicMap,
        codec: Codec,
        source: &str,
    ) -> Self {
        Self::build(transport, topics, codec, source, 0)
    }

    /// A producer for raw sends whose unkeyed records go round-robin from partition
    /// `first_unkeyed` (modulo the partition count) instead of partition 0: the dead-letter
    /// writer of each partition worker starts at its own partition, so that the first
    /// letters of several workers do not all land on one partition.
    pub(crate) fn raw(transport: Arc<dyn Transport>, first_unkeyed: u32) -> Self {
        Self::build(
            transport,
            TopicMap::default(),
            Codec::default(),
            "godev-kafka",
            first_unkeyed,
        )
    }

    fn build(
        transport: Arc<dyn Transport>,
        topics: TopicMap,
        codec: Codec,
        source: &str,
        first_unkeyed: u32,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                transport,
                topics,
                codec,
                source: source.to_owned(),
                enabled: AtomicBool::new(true),
                next_partition: AtomicU32::new(first_unkeyed),
            }),
        }
    }

    /// Sends `event` to its topic, keyed by its key field.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] when the event does not serialize; [`Error::Send`] with the encoded
    /// record when the transport failed or the producer is disabled.
    pub async fn send<E: Event>(&self, event: &E) -> Result<Delivery> {
        let value = self
            .inner
            .codec
            .encode(event, &self.inner.source)
            .map_err(|source| Error::Encode {
                tag: event.tag(),
                source,
            })?;
        let topic = self.inner.topics.resolve(E::TOPIC).to_owned();
        self.write(topic, event.key(), value).await
    }

    /// Sends bytes as they are (the Go kit's `SendMessage`); `topic` is a real topic name.
    ///
    /// # Errors
    ///
    /// [`Error::Send`], carrying `key` and `value` back, when the transport failed or the
    /// producer is disabled.
    pub async fn send_raw(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Vec<u8>,
    ) -> Result<Delivery> {
        self.write(topic.to_owned(), key.map(<[u8]>::to_vec), value)
            .await
    }

    /// Waits until every record sent so far is acknowledged.
    ///
    /// # Errors
    ///
    /// When the transport could not deliver outstanding records.
    pub async fn flush(&self) -> Result<()> {
        self.inner.transport.flush().await
    }

    /// Whether sends are accepted.
    pub fn is_enabled(&self) -> bool {
        self.inner.enabled.load(Ordering::Acquire)
    }

    /// Accepts or refuses further sends; a refused send returns [`Error::Send`] with
    /// [`Error::Closed`] as its source.
    pub fn set_enabled(&self, enabled: bool) {
        self.inner.enabled.store(enabled, Ordering::Release);
    }

    /// The topic table sends resolve through.
    pub fn topics(&self) -> &TopicMap {
        &self.inner.topics
    }

    /// The codec sends encode with.
    pub fn codec(&self) -> Codec {
        self.inner.codec
    }

    /// The real topic of a logical one.
    pub fn resolve_topic<'a>(&'a self, logical: &'a str) -> &'a str {
        self.inner.topics.resolve(logical)
    }

    async fn write(&self, topic: String, key: Option<Vec<u8>>, value: Vec<u8>) -> Result<Delivery> {
        // A child of the caller's span; the partition and offset are recorded once known.
        let span = tracing::info_span!(
            "send",
            topic = %topic,
            partition = tracing::field::Empty,
            offset = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        let written = self
            .write_once(topic, key, value)
            .instrument(span.clone())
            .await;
        match &written {
            Ok(delivery) => {
                span.record("partition", delivery.partition);
                span.record("offset", delivery.offset);
                telemetry::sent(&delivery.topic, started.elapsed(), None);
            }
            Err(Error::Send { topic, source, .. }) => {
                telemetry::sent(
                    topic,
                    started.elapsed(),
                    Some(telemetry::error_type(source)),
                );
            }
            Err(_) => {}
        }
        written
    }

    async fn write_once(
        &self,
        topic: String,
        key: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<Delivery> {
        let failed = |topic: String, key, value, source| Error::Send {
            topic,
            key,
            value,
            source: Box::new(source),
        };
        if !self.is_enabled() {
            return Err(failed(topic, key, value, Error::Closed("producer")));
        }
        let partitions = match self.inner.transport.partition_count(&topic).await {
            Ok(count) if count > 0 => count,
            Ok(_) => {
                let error = Error::transport(
                    format!("produce to {topic}"),
                    "the topic has no partitions",
                    true,
                );
                return Err(failed(topic, key, value, error));
            }
            Err(error) => return Err(failed(topic, key, value, error)),
        };
        let partition = match &key {
            Some(key) => partition_for_key(key, partitions),
            None => {
                (self.inner.next_partition.fetch_add(1, Ordering::Relaxed) % partitions as u32)
                    as i32
            }
        };
        let record = OutgoingRecord {
            topic,
            partition,
            key,
            value,
        };
        // The backend hands the record back if it fails, so nothing is kept here but its topic.
        let topic = record.topic.clone();
        let offset = self.inner.transport.produce(record).await?;
        Ok(Delivery {
            topic,
            partition,
            offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::transport::{BoxFuture, GroupMember, GroupOptions, Unsent};

    /// A backend whose every produce fails, handing the record back as the contract asks.
    struct Refusing;

    impl Transport for Refusing {
        fn partition_count<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<i32>> {
            Box::pin(async { Ok(3) })
        }

        fn end_offsets<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<BTreeMap<i32, i64>>> {
            Box::pin(async { Ok(BTreeMap::new()) })
        }

        fn create_topic<'a>(&'a self, _: &'a str, _: i32) -> BoxFuture<'a, Result<()>> {
            Box::pin(async { Ok(()) })
        }

        fn produce(
            &self,
            record: OutgoingRecord,
        ) -> BoxFuture<'_, std::result::Result<i64, Unsent>> {
            let error = Error::transport("produce", "the broker is away", true);
            Box::pin(async move { Err(Unsent::new(record, error)) })
        }

        fn join(&self, _: GroupOptions) -> BoxFuture<'_, Result<Box<dyn GroupMember>>> {
            Box::pin(async { Err(Error::Closed("refusing transport")) })
        }

        fn name(&self) -> &'static str {
            "refusing"
        }

        fn brokers(&self) -> Vec<String> {
            Vec::new()
        }
    }

    /// What the backend hands back is what the caller gets: the same allocation, so the
    /// producer made no copy of the value to return it.
    #[tokio::test]
    async fn a_failed_send_returns_the_value_the_backend_handed_back_uncopied() {
        let producer = Producer::new(Refusing, TopicMap::default());
        let sent = b"{\"id\":7}".to_vec();
        let allocation = sent.as_ptr();
        let error = producer
            .send_raw("orders", Some(b"order-7"), sent)
            .await
            .expect_err("the backend refuses every record");
        let Error::Send {
            topic,
            key,
            value,
            source,
        } = error
        else {
            panic!("not Error::Send: {error}");
        };
        assert_eq!(topic, "orders");
        assert_eq!(key.as_deref(), Some(&b"order-7"[..]));
        assert_eq!(value, b"{\"id\":7}");
        assert_eq!(value.as_ptr(), allocation, "the value was copied");
        assert!(
            source.to_string().contains("the broker is away"),
            "{source}"
        );
        assert!(source.is_retriable());
    }
}

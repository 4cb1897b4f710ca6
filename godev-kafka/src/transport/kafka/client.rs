//! A `kafka` crate client on a dedicated thread, and the mapping of its errors.
//!
//! The crate's calls block; they run on a thread of their own and the async side waits on a
//! oneshot channel, so no async worker ever blocks on the network.

use std::sync::mpsc;
use std::thread;

use kafka::client::KafkaClient;
use kafka::error::{Error as KafkaError, KafkaCode};
use tokio::sync::oneshot;

use crate::{Error, Result};

type Job = Box<dyn FnOnce(&mut KafkaClient) + Send>;

/// A `KafkaClient` owned by one thread, which runs the closures it is sent, in order.
#[derive(Debug)]
pub(crate) struct BlockingClient {
    jobs: mpsc::Sender<Job>,
}

impl BlockingClient {
    /// Starts a thread named `name` that owns a client built by `make`.
    pub(crate) fn spawn(
        name: &str,
        make: impl FnOnce() -> KafkaClient + Send + 'static,
    ) -> Result<Self> {
        let (jobs, rx) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let mut client = make();
                while let Ok(job) = rx.recv() {
                    job(&mut client);
                }
            })
            .map_err(|e| Error::transport(format!("start thread {name}"), e, false))?;
        Ok(Self { jobs })
    }

    /// Runs `f` on the client's thread and waits for its result.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut KafkaClient) -> T + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move |client| {
                let _ = tx.send(f(client));
            }))
            .map_err(|_| Error::Closed("kafka client thread"))?;
        rx.await.map_err(|_| Error::Closed("kafka client thread"))
    }
}

/// Whether a `kafka` crate error may go away when tried again (after a metadata refresh).
pub(crate) fn retriable(e: &KafkaError) -> bool {
    match e {
        KafkaError::Io(_) | KafkaError::NoHostReachable | KafkaError::UnexpectedEOF => true,
        KafkaError::Kafka(code) => code_retriable(*code),
        KafkaError::TopicPartitionError { error_code, .. } => code_retriable(*error_code),
        KafkaError::ArcSelf(inner) => retriable(inner),
        _ => false,
    }
}

/// Whether `e` means that a connection in the client's pool is, or may be, dead.
pub(crate) fn connection_lost(e: &KafkaError) -> bool {
    match e {
        KafkaError::Io(_) | KafkaError::NoHostReachable | KafkaError::UnexpectedEOF => true,
        KafkaError::ArcSelf(inner) => connection_lost(inner),
        _ => false,
    }
}

/// Replaces `client` with a fresh one of the same settings, without connections (and without
/// metadata: callers load it again).
///
/// The `kafka` crate keeps a pooled connection until it was idle for
/// `connection_idle_timeout` (9 minutes), even when the broker closed it, and a client in use
/// is never idle that long: after a broker restart every request went to the dead socket and
/// failed with "No host reachable", for good. So on a connection error the client starts over.
pub(crate) fn reconnect(client: &mut KafkaClient) {
    tracing::debug!(hosts = ?client.hosts(), "kafka connection lost; reconnecting");
    let mut fresh = KafkaClient::new(client.hosts().to_vec());
    fresh.set_client_id(client.client_id().to_owned());
    fresh.set_compression(client.compression());
    let _ = fresh.set_fetch_max_wait_time(client.fetch_max_wait_time());
    fresh.set_fetch_min_bytes(client.fetch_min_bytes());
    fresh.set_fetch_max_bytes_per_partition(client.fetch_max_bytes_per_partition());
    fresh.set_fetch_crc_validation(client.fetch_crc_validation());
    fresh.set_group_offset_storage(client.group_offset_storage());
    fresh.set_retry_backoff_time(client.retry_backoff_time());
    fresh.set_retry_max_attempts(client.retry_max_attempts());
    fresh.set_connection_idle_timeout(client.connection_idle_timeout());
    *client = fresh;
}

/// Whether a Kafka error code from the `kafka` crate is worth a retry.
pub(crate) fn code_retriable(code: KafkaCode) -> bool {
    matches!(
        code,
        KafkaCode::LeaderNotAvailable
            | KafkaCode::NotLeaderForPartition
            | KafkaCode::RequestTimedOut
            | KafkaCode::NetworkException
            | KafkaCode::UnknownTopicOrPartition
            | KafkaCode::NotEnoughReplicas
            | KafkaCode::NotEnoughReplicasAfterAppend
            | KafkaCode::BrokerNotAvailable
            | KafkaCode::ReplicaNotAvailable
            | KafkaCode::GroupLoadInProgress
            | KafkaCode::GroupCoordinatorNotAvailable
            | KafkaCode::NotCoordinatorForGroup
    )
}

/// A `kafka` crate error as this crate's transport error.
pub(crate) fn to_error(operation: impl Into<String>, e: &KafkaError) -> Error {
    Error::transport(operation, e, retriable(e))
}

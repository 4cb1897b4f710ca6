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

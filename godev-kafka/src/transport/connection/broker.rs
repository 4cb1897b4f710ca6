//! One pipelined connection to one broker.
//!
//! Two tasks own the socket: a writer that takes encoded requests from a queue and writes
//! them in order (several at once when they queue up), and a reader that reads response
//! frames and hands each to the caller waiting on its correlation id. Callers share the
//! connection by `&self`: each registers its id before its request is queued, so the reader
//! always knows whom an answer belongs to.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message, StrBytes};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::frame::{correlation_id, decode_response, encode_request, read_frame};
use super::guard::Guarded;
use super::{Range, Security, negotiate};
use crate::{Error, Result};

/// Requests queued for the writer before `call` waits for room.
const QUEUE: usize = 64;
/// Requests whose callers gave up (timed out or dropped) and whose answers may still come.
/// Past this many the broker is not answering at all, and the connection is given up.
const MAX_ABANDONED: usize = 1024;
/// Write buffer: requests that queue up while one is written go out in one syscall.
const WRITE_BUFFER: usize = 64 * 1024;

/// A byte stream to a broker: TCP, or TLS over TCP.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// What a caller waits for: a response frame, or why the connection failed.
type Answer = std::result::Result<Bytes, String>;

/// A connection to one broker.
#[derive(Debug)]
pub(crate) struct Connection {
    addr: String,
    client_id: StrBytes,
    versions: HashMap<i16, Range>,
    timeout: Duration,
    /// When an authenticated session nears its end: no new requests after this.
    usable_until: Option<std::time::Instant>,
    correlation: AtomicI32,
    shared: Arc<Shared>,
    queue: mpsc::Sender<Bytes>,
    writer: JoinHandle<()>,
    reader: JoinHandle<()>,
}

/// What the caller side and the two tasks share.
#[derive(Debug, Default)]
struct Shared {
    broken: AtomicBool,
    state: Mutex<Calls>,
}

#[derive(Debug, Default)]
struct Calls {
    /// Correlation id → the caller waiting for its answer.
    waiting: HashMap<i32, oneshot::Sender<Answer>>,
    /// Ids whose callers gave up; a late answer to one of them is dropped.
    abandoned: HashSet<i32>,
    /// Set once the connection failed: why.
    failure: Option<String>,
}

impl Shared {
    fn calls(&self) -> std::sync::MutexGuard<'_, Calls> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Breaks the connection: every caller in flight, and every later one, gets `reason`.
    fn fail(&self, reason: String) {
        self.broken.store(true, Ordering::Release);
        let mut calls = self.calls();
        for (_, caller) in calls.waiting.drain() {
            let _ = caller.send(Err(reason.clone()));
        }
        calls.failure.get_or_insert(reason);
    }
}

/// A caller's claim on one correlation id; dropped before its answer came (a timeout, or the
/// caller's future dropped), it leaves the id to be ignored when the answer arrives.
struct Registration<'a> {
    shared: &'a Shared,
    id: i32,
    answered: bool,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let mut calls = self.shared.calls();
        if calls.waiting.remove(&self.id).is_some() {
            calls.abandoned.insert(self.id);
            if calls.abandoned.len() > MAX_ABANDONED {
                drop(calls);
                self.shared
                    .fail(format!("{MAX_ABANDONED} requests went unanswered"));
            }
        }
    }
}

impl Connection {
    /// Connects to `addr`, with TLS and SASL as `security` says, and asks for its API
    /// versions.
    pub(crate) async fn connect(
        addr: &str,
        client_id: &str,
        timeout: Duration,
        security: &Security,
    ) -> Result<Self> {
        let op = || format!("connect to broker {addr}");
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| Error::transport(op(), "timed out", true))?
            .map_err(|e| Error::transport(op(), e, true))?;
        stream.set_nodelay(true).ok();
        let stream: Box<dyn Stream> = match &security.tls {
            Some(tls) => Box::new(
                tokio::time::timeout(timeout, tls.wrap(stream, addr))
                    .await
                    .map_err(|_| Error::transport(op(), "the TLS handshake timed out", true))??,
            ),
            None => Box::new(stream),
        };
        let mut conn = Self::start(stream, addr, client_id, timeout);
        let response: ApiVersionsResponse = conn
            .call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default(), None)
            .await
            .map_err(|e| match e {
                // TLS 1.3 completes the client's side of the handshake before the broker
                // checks the client's certificate: its refusal comes as the first read.
                Error::Transport { message, .. }
                    if security.tls.is_some() && message.contains("received fatal alert") =>
                {
                    Error::transport(op(), crate::security::ended_by_broker(&message), false)
                }
                other => other,
            })?;
        if response.error_code != 0 {
            return Err(Error::kafka(op(), response.error_code));
        }
        conn.versions = response
            .api_keys
            .iter()
            .map(|k| {
                (
                    k.api_key,
                    Range {
                        min: k.min_version,
                        max: k.max_version,
                    },
                )
            })
            .collect();
        #[cfg(feature = "native")]
        if let Some(sasl) = &security.sasl {
            let lifetime = super::sasl::authenticate(&conn, sasl).await?;
            tracing::debug!(
                broker = addr,
                mechanism = sasl.mechanism.kafka_name(),
                lifetime_ms = lifetime.map(|l| l.as_millis() as u64),
                "SASL authenticated"
            );
            // Replaced before the broker would cut it off, with room for requests in flight.
            conn.usable_until = lifetime.map(|l| std::time::Instant::now() + l.mul_f64(0.85));
        }
        Ok(conn)
    }

    /// Starts the writer and reader tasks on `stream`.
    fn start(stream: Box<dyn Stream>, addr: &str, client_id: &str, timeout: Duration) -> Self {
        let (read, write) = tokio::io::split(stream);
        let shared = Arc::new(Shared::default());
        let (queue, requests) = mpsc::channel(QUEUE);
        let writer = tokio::spawn(write_requests(write, requests, shared.clone()));
        let reader = tokio::spawn(read_responses(read, shared.clone()));
        Connection {
            addr: addr.to_owned(),
            client_id: StrBytes::from_string(client_id.to_owned()),
            versions: HashMap::new(),
            timeout,
            usable_until: None,
            correlation: AtomicI32::new(0),
            shared,
            queue,
            writer,
            reader,
        }
    }

    /// The broker address.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the connection can no longer be used: connect again.
    pub(crate) fn is_broken(&self) -> bool {
        self.shared.broken.load(Ordering::Acquire)
    }

    /// Whether new requests may go out on it: it is not broken, and its authenticated
    /// session (if the broker limits it) is not near its end. Owners replace a connection
    /// that is not.
    pub(crate) fn is_usable(&self) -> bool {
        !self.is_broken()
            && self
                .usable_until
                .is_none_or(|until| std::time::Instant::now() < until)
    }

    /// The broker's version range for `key`, if it supports the API at all.
    pub(crate) fn broker_range(&self, key: ApiKey) -> Option<Range> {
        self.versions.get(&(key as i16)).copied()
    }

    /// The highest version of `M` that both the broker and `kafka-protocol` speak.
    pub(crate) fn version<M: Message>(&self, key: ApiKey) -> Result<i16> {
        negotiate(self.broker_range(key), M::VERSIONS.min, M::VERSIONS.max).ok_or_else(|| {
            Error::transport(
                format!("{key:?} on broker {}", self.addr),
                format!(
                    "no common version: broker supports {}, this client {}..={}",
                    self.broker_range(key)
                        .map(|r| format!("{}..={}", r.min, r.max))
                        .unwrap_or_else(|| "none".into()),
                    M::VERSIONS.min,
                    M::VERSIONS.max
                ),
                false,
            )
        })
    }

    /// Sends `request` as `key` version `version` and waits for its response; other calls
    /// may be in flight on the same connection meanwhile.
    ///
    /// `timeout` overrides the connection's request timeout (JoinGroup waits for a rebalance).
    /// A timeout breaks the connection: every call in flight on it fails, and its owner
    /// connects again. The response goes through
    /// [`decode_response`]: a malformed one is a retriable error and breaks the connection,
    /// so the caller reconnects.
    pub(crate) async fn call<Req, Resp>(
        &self,
        key: ApiKey,
        version: i16,
        request: &Req,
        timeout: Option<Duration>,
    ) -> Result<Resp>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion + Guarded,
    {
        let op = || format!("{key:?} v{version} to broker {}", self.addr);
        let id = self
            .correlation
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1);
        let frame = encode_request(key, version, id, &self.client_id, request)
            .map_err(|e| Error::transport(op(), e, false))?;
        let (answer, answered) = oneshot::channel();
        let mut registration = {
            let mut calls = self.shared.calls();
            if let Some(reason) = &calls.failure {
                return Err(Error::transport(
                    op(),
                    format!("connection is broken: {reason}"),
                    true,
                ));
            }
            calls.waiting.insert(id, answer);
            Registration {
                shared: &self.shared,
                id,
                answered: false,
            }
        };
        let limit = timeout.unwrap_or(self.timeout);
        let exchange = async {
            self.queue
                .send(frame)
                .await
                .map_err(|_| "connection closed".to_owned())?;
            answered
                .await
                .unwrap_or_else(|_| Err("connection closed".to_owned()))
        };
        let frame = match tokio::time::timeout(limit, exchange).await {
            Err(_) => {
                // A broker that leaves a request unanswered this long hangs, or the path to
                // it does: the requests behind this one would wait as long. As the Java
                // client does, drop the connection; a new one finds out.
                let reason = format!("no response within {limit:?}");
                self.shared.fail(reason.clone());
                return Err(Error::transport(op(), reason, true));
            }
            Ok(Err(reason)) => {
                registration.answered = true;
                return Err(Error::transport(op(), reason, true));
            }
            Ok(Ok(frame)) => {
                registration.answered = true;
                frame
            }
        };
        match decode_response::<Resp>(frame, version) {
            Ok((_, response)) => Ok(response),
            Err(e) => {
                // Whoever sent this cannot be trusted with the next request either.
                let message = match e {
                    Error::Transport { message, .. } => message,
                    other => other.to_string(),
                };
                self.shared.fail(message.clone());
                Err(Error::transport(op(), message, true))
            }
        }
    }
}

impl Connection {
    /// Sends `request` without waiting for an answer, for the one request a broker does not
    /// answer: Produce with `acks = 0`.
    ///
    /// # Errors
    ///
    /// The connection is broken or closed (retriable).
    #[cfg(feature = "native")]
    pub(crate) async fn send_only<Req>(
        &self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<()>
    where
        Req: Encodable + HeaderVersion,
    {
        let op = || format!("{key:?} v{version} to broker {}", self.addr);
        if let Some(reason) = &self.shared.calls().failure {
            return Err(Error::transport(
                op(),
                format!("connection is broken: {reason}"),
                true,
            ));
        }
        let id = self
            .correlation
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1);
        let frame = encode_request(key, version, id, &self.client_id, request)
            .map_err(|e| Error::transport(op(), e, false))?;
        self.queue
            .send(frame)
            .await
            .map_err(|_| Error::transport(op(), "connection closed", true))
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.writer.abort();
        self.reader.abort();
    }
}

/// The writer task: requests in queue order; those that queued meanwhile share a flush.
async fn write_requests(
    write: WriteHalf<Box<dyn Stream>>,
    mut requests: mpsc::Receiver<Bytes>,
    shared: Arc<Shared>,
) {
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, write);
    while let Some(first) = requests.recv().await {
        let mut written = out.write_all(&first).await;
        while written.is_ok() {
            match requests.try_recv() {
                Ok(next) => written = out.write_all(&next).await,
                Err(_) => break,
            }
        }
        let flushed = match written {
            Ok(()) => out.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = flushed {
            shared.fail(format!("write failed: {e}"));
            return;
        }
    }
}

/// The reader task: each response frame to the caller whose correlation id it echoes.
async fn read_responses(mut read: ReadHalf<Box<dyn Stream>>, shared: Arc<Shared>) {
    loop {
        let frame = match read_frame(&mut read).await {
            Ok(frame) => frame,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                shared.fail("the broker closed the connection".to_owned());
                return;
            }
            Err(e) => {
                shared.fail(format!("read failed: {e}"));
                return;
            }
        };
        let id = correlation_id(&frame);
        let mut calls = shared.calls();
        if let Some(caller) = calls.waiting.remove(&id) {
            let _ = caller.send(Ok(frame));
        } else if !calls.abandoned.remove(&id) {
            drop(calls);
            shared.fail(format!(
                "response with correlation id {id}, which no request has"
            ));
            return;
        }
    }
}

#[cfg(test)]
mod tests;

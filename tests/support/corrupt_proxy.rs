//! A TCP proxy in front of one real broker that corrupts the record batches of one partition
//! on their way to the client (issue #13). A broker checks every batch's CRC when it takes a
//! produce, so a corrupt batch cannot be written to it: it is corrupted after the broker read
//! it, in the Fetch answer.
//!
//! Per client connection the proxy opens one to the broker and forwards frames both ways. It
//! reads the start of each request header (api key, api version, correlation id) and keeps
//! them by correlation id until the answer comes, so that it decodes the answer with the
//! version asked and the response header version that goes with it (v1, with tagged fields,
//! for flexible versions). Then:
//!
//! - Metadata and FindCoordinator answers name the proxy (`127.0.0.1`, its port) for every
//!   broker, so the client's later connections come back through it;
//! - in Fetch answers, one byte of every complete batch of the [`Target`] partition at or after
//!   its offset is flipped, and counted ([`CorruptProxy::corrupted`]);
//! - every other answer, and every request, passes byte for byte.
//!
//! Fetch answers name topics by name up to v12 (as the native client asks) and by topic id
//! from v13 (the confluent backend's Java-like client): the proxy learns the target topic's
//! id from the Metadata answers it passes on.
//!
//! Limits: one broker behind it (every broker becomes the proxy). Encoding answers needs
//! kafka-protocol's `broker` feature.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, FetchResponse, FindCoordinatorResponse, MetadataResponse, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// `baseOffset` i64 and `batchLength` i32: the bytes of a batch before what its length counts.
const LOG_OVERHEAD: usize = 12;
/// A record batch's header, up to and including its record count: where its records start.
const BATCH_HEADER_LEN: usize = 61;

/// The batches a [`CorruptProxy`] corrupts: those of `partition` of `topic` whose base offset
/// is `from_offset` or later.
#[derive(Debug, Clone)]
pub struct Target {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The first base offset corrupted.
    pub from_offset: i64,
}

/// A running proxy; it stops, with every connection through it, when dropped.
#[derive(Debug)]
pub struct CorruptProxy {
    addr: SocketAddr,
    corrupted: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl CorruptProxy {
    /// Listens on `127.0.0.1` at a free port, in front of `broker` (`host:port`).
    pub async fn start(broker: &str, target: Target) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let corrupted = Arc::new(AtomicU64::new(0));
        let rewrite = Arc::new(Rewrite {
            port: addr.port(),
            target,
            target_id: Mutex::default(),
            corrupted: corrupted.clone(),
        });
        let broker = broker.to_owned();
        let accept = tokio::spawn(async move {
            // Dropped with this task when the proxy is: that aborts every connection's task.
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                connections.spawn(serve(client, broker.clone(), rewrite.clone()));
                while connections.try_join_next().is_some() {}
            }
        });
        Self {
            addr,
            corrupted,
            accept,
        }
    }

    /// The `host:port` to give a client as its bootstrap broker.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// How many batches were corrupted so far (a batch fetched twice counts twice).
    pub fn corrupted(&self) -> u64 {
        self.corrupted.load(Ordering::Relaxed)
    }
}

impl Drop for CorruptProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Correlation id → (api key, api version) of the requests of one connection not answered yet.
type InFlight = Mutex<HashMap<i32, (i16, i16)>>;

/// Forwards one client connection to `broker` and back, until either side closes.
async fn serve(client: TcpStream, broker: String, rewrite: Arc<Rewrite>) {
    let upstream = match TcpStream::connect(&broker).await {
        Ok(upstream) => upstream,
        Err(error) => {
            tracing::warn!(%broker, %error, "corrupt proxy: cannot reach the broker");
            return;
        }
    };
    let (client_read, client_write) = client.into_split();
    let (broker_read, broker_write) = upstream.into_split();
    let in_flight = InFlight::default();
    // Whichever way ends first (a side closed, or an answer did not decode) ends both.
    let ended = tokio::select! {
        ended = requests(client_read, broker_write, &in_flight) => ended,
        ended = answers(broker_read, client_write, &in_flight, &rewrite) => ended,
    };
    if let Err(error) = ended
        && error.kind() != io::ErrorKind::UnexpectedEof
    {
        tracing::warn!(%error, "corrupt proxy: connection ended");
    }
}

/// Client → broker: remembers each request's api key and version, and forwards it as it is.
async fn requests(
    mut client: OwnedReadHalf,
    mut broker: OwnedWriteHalf,
    in_flight: &InFlight,
) -> io::Result<()> {
    loop {
        let frame = read_frame(&mut client).await?;
        // Every request header version starts: api key i16 | api version i16 | correlation id i32.
        let mut header = frame
            .get(..8)
            .ok_or_else(|| io::Error::other("a request shorter than its header"))?;
        let (key, version, correlation) = (header.get_i16(), header.get_i16(), header.get_i32());
        in_flight
            .lock()
            .unwrap()
            .insert(correlation, (key, version));
        write_frame(&mut broker, &frame).await?;
    }
}

/// Broker → client: forwards each answer as [`Rewrite::answer`] changes it.
async fn answers(
    mut broker: OwnedReadHalf,
    mut client: OwnedWriteHalf,
    in_flight: &InFlight,
    rewrite: &Rewrite,
) -> io::Result<()> {
    loop {
        let frame = read_frame(&mut broker).await?;
        // Every response header version starts with the correlation id.
        let correlation = frame
            .get(..4)
            .map(|mut id| id.get_i32())
            .ok_or_else(|| io::Error::other("an answer shorter than its header"))?;
        let asked = in_flight.lock().unwrap().remove(&correlation);
        let asked = asked.and_then(|(key, version)| Some((ApiKey::try_from(key).ok()?, version)));
        let frame = match asked {
            Some((key, version)) => rewrite.answer(key, version, frame)?,
            None => frame,
        };
        write_frame(&mut client, &frame).await?;
    }
}

/// Reads one size-prefixed frame; answers what follows the size.
async fn read_frame(from: &mut OwnedReadHalf) -> io::Result<Bytes> {
    let size = from.read_i32().await?;
    let size = usize::try_from(size)
        .map_err(|_| io::Error::other(format!("a frame of negative size {size}")))?;
    let mut frame = vec![0; size];
    from.read_exact(&mut frame).await?;
    Ok(frame.into())
}

/// Writes `frame` with its size in front.
async fn write_frame(to: &mut OwnedWriteHalf, frame: &[u8]) -> io::Result<()> {
    let size = i32::try_from(frame.len()).map_err(io::Error::other)?;
    to.write_all(&size.to_be_bytes()).await?;
    to.write_all(frame).await
}

/// What the proxy changes in answers.
#[derive(Debug)]
struct Rewrite {
    /// The proxy's port, given as every broker's.
    port: u16,
    /// The batches to corrupt.
    target: Target,
    /// The target topic's id (a UUID's bits), once a Metadata answer named it.
    target_id: Mutex<Option<u128>>,
    /// Batches corrupted so far.
    corrupted: Arc<AtomicU64>,
}

impl Rewrite {
    /// `frame`, an answer of `key` at `version`, with the proxy's changes.
    fn answer(&self, key: ApiKey, version: i16, frame: Bytes) -> io::Result<Bytes> {
        match key {
            ApiKey::Metadata => reencode(key, version, frame, |body: &mut MetadataResponse| {
                for broker in &mut body.brokers {
                    broker.host = StrBytes::from_static_str("127.0.0.1");
                    broker.port = i32::from(self.port);
                }
                let target = body.topics.iter().find(|t| {
                    t.name.as_ref().map(|n| n.0.as_str()) == Some(self.target.topic.as_str())
                        && !t.topic_id.is_nil()
                });
                if let Some(topic) = target {
                    *self.target_id.lock().unwrap() = Some(topic.topic_id.as_u128());
                }
            }),
            ApiKey::FindCoordinator => {
                reencode(key, version, frame, |body: &mut FindCoordinatorResponse| {
                    // v0-v3 answer one coordinator in the body, v4+ a list (KIP-699); a field
                    // the version lacks must keep its default for the encoding to accept it.
                    if version < 4 {
                        if body.error_code == 0 {
                            body.host = StrBytes::from_static_str("127.0.0.1");
                            body.port = i32::from(self.port);
                        }
                    } else {
                        for c in body.coordinators.iter_mut().filter(|c| c.error_code == 0) {
                            c.host = StrBytes::from_static_str("127.0.0.1");
                            c.port = i32::from(self.port);
                        }
                    }
                })
            }
            ApiKey::Fetch => reencode(key, version, frame, |body: &mut FetchResponse| {
                let target_id = *self.target_id.lock().unwrap();
                let partitions = body
                    .responses
                    .iter_mut()
                    .filter(|topic| {
                        if version >= 13 {
                            Some(topic.topic_id.as_u128()) == target_id
                        } else {
                            topic.topic.0.as_str() == self.target.topic
                        }
                    })
                    .flat_map(|topic| &mut topic.partitions)
                    .filter(|p| p.partition_index == self.target.partition);
                for partition in partitions {
                    if let Some(records) = &mut partition.records {
                        *records = self.corrupt(records);
                    }
                }
            }),
            _ => Ok(frame),
        }
    }

    /// `records` (one partition's batches) with one byte flipped in each complete batch whose
    /// base offset is the target's or later. The byte is the last but one of the batch: the
    /// last of the last record's value when that record has no headers (its header count, 0,
    /// is the last byte), as kcat writes them uncompressed. So the records still parse and
    /// only the CRC-32C (over attributes to the end) tells: it changes with any one byte.
    fn corrupt(&self, records: &Bytes) -> Bytes {
        let mut data = BytesMut::from(&records[..]);
        let mut at = 0;
        while let Some(mut prefix) = data.get(at..at + LOG_OVERHEAD) {
            let base_offset = prefix.get_i64();
            let length = prefix.get_i32();
            let Some(end) = usize::try_from(length)
                .ok()
                .map(|length| at + LOG_OVERHEAD + length)
                .filter(|&end| end <= data.len())
            else {
                break; // a partial batch at the end, cut at the fetch's max bytes
            };
            if base_offset >= self.target.from_offset && end >= at + BATCH_HEADER_LEN + 2 {
                data[end - 2] ^= 0xff;
                self.corrupted.fetch_add(1, Ordering::Relaxed);
            }
            at = end;
        }
        data.freeze()
    }
}

/// `frame`, an answer of `key` at `version`, decoded as `M` with its response header, changed
/// by `change`, and encoded again with the same header and versions.
fn reencode<M: Decodable + Encodable>(
    key: ApiKey,
    version: i16,
    mut frame: Bytes,
    change: impl FnOnce(&mut M),
) -> io::Result<Bytes> {
    let header_version = key.response_header_version(version);
    let header = ResponseHeader::decode(&mut frame, header_version).map_err(io::Error::other)?;
    let mut body = M::decode(&mut frame, version).map_err(io::Error::other)?;
    change(&mut body);
    let mut out = BytesMut::new();
    header
        .encode(&mut out, header_version)
        .map_err(io::Error::other)?;
    body.encode(&mut out, version).map_err(io::Error::other)?;
    Ok(out.freeze())
}

//! Fake brokers for the connection layer's tests: each test scripts what its broker reads
//! and answers, byte by byte.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Reads one request frame and answers its API key and correlation id.
pub(crate) async fn read_request(stream: &mut TcpStream) -> std::io::Result<(i16, i32)> {
    let len = stream.read_i32().await?;
    let mut frame = vec![0u8; len as usize];
    stream.read_exact(&mut frame).await?;
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let correlation = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    Ok((key, correlation))
}

/// Reads one request frame of a version whose request header is v1 (not flexible); answers
/// the header and the body.
pub(crate) async fn read_request_v1(
    stream: &mut TcpStream,
) -> std::io::Result<(RequestHeader, Bytes)> {
    let len = stream.read_i32().await?;
    let mut frame = vec![0u8; len as usize];
    stream.read_exact(&mut frame).await?;
    let mut frame = Bytes::from(frame);
    let header =
        RequestHeader::decode(&mut frame, 1).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok((header, frame))
}

/// Writes a response frame: length, correlation id (header v0), body.
pub(crate) async fn write_response(stream: &mut TcpStream, correlation: i32, body: &[u8]) {
    let mut frame = BytesMut::new();
    frame.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    frame.extend_from_slice(&correlation.to_be_bytes());
    frame.extend_from_slice(body);
    stream.write_all(&frame).await.unwrap();
}

/// The APIs [`negotiate`] advertises: JoinGroup up to v5, Heartbeat v0, Metadata up to v4
/// and FindCoordinator v0 (versions whose headers are v0).
const GROUP_APIS: &[(ApiKey, i16)] = &[
    (ApiKey::ApiVersions, 3),
    (ApiKey::JoinGroup, 5),
    (ApiKey::Heartbeat, 0),
    (ApiKey::Metadata, 4),
    (ApiKey::FindCoordinator, 0),
];

/// Answers a client's first request, its ApiVersions, with [`GROUP_APIS`].
pub(crate) async fn negotiate(stream: &mut TcpStream) {
    negotiate_with(stream, GROUP_APIS).await;
}

/// Answers a client's first request, its ApiVersions, with `apis` (key, max version; every
/// min version 0). Advertise only versions whose response header is v0 (non-flexible): this
/// broker writes no tagged fields in headers.
pub(crate) async fn negotiate_with(stream: &mut TcpStream, apis: &[(ApiKey, i16)]) {
    let (key, correlation) = read_request(stream).await.unwrap();
    assert_eq!(key, ApiKey::ApiVersions as i16);
    let versions = ApiVersionsResponse::default().with_api_keys(
        apis.iter()
            .map(|&(key, max)| {
                ApiVersion::default()
                    .with_api_key(key as i16)
                    .with_max_version(max)
            })
            .collect(),
    );
    let mut body = BytesMut::new();
    versions.encode(&mut body, 0).unwrap();
    write_response(stream, correlation, &body).await;
}

/// A listener on a free port and its `host:port`.
pub(crate) async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

/// A fake broker that accepts one client, [`negotiate`]s, then runs `script` on the stream.
pub(crate) async fn fake_broker<F, Fut>(script: F) -> (String, JoinHandle<()>)
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let (listener, addr) = listen().await;
    let broker = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        negotiate(&mut stream).await;
        script(stream).await;
    });
    (addr, broker)
}

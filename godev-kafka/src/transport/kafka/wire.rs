//! One TCP connection to one broker, speaking requests encoded with `kafka-protocol`.
//!
//! Framing: every request and response is a big-endian `i32` length followed by that many
//! bytes (header, then body). Each request carries a fresh correlation id and the response
//! must echo it. On connect the connection asks the broker for its API versions (ApiVersions
//! v0, which every broker since 0.10 answers) and afterwards picks, per API, the highest
//! version both sides know.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::guard::{self, Guarded};
use crate::{Error, Result};

/// Largest response accepted (a bad length prefix must not allocate gigabytes).
const MAX_FRAME: usize = 256 * 1024 * 1024;

/// A broker's supported version range for one API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) min: i16,
    pub(crate) max: i16,
}

/// A connection to one broker.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: TcpStream,
    addr: String,
    client_id: StrBytes,
    correlation: i32,
    versions: HashMap<i16, Range>,
    timeout: Duration,
    /// Set when a request was abandoned half-way: the stream is out of step.
    broken: bool,
}

impl Connection {
    /// Connects to `addr` and asks for its API versions.
    pub(crate) async fn connect(addr: &str, client_id: &str, timeout: Duration) -> Result<Self> {
        let op = || format!("connect to broker {addr}");
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| Error::transport(op(), "timed out", true))?
            .map_err(|e| Error::transport(op(), e, true))?;
        stream.set_nodelay(true).ok();
        let mut conn = Connection {
            stream,
            addr: addr.to_owned(),
            client_id: StrBytes::from_string(client_id.to_owned()),
            correlation: 0,
            versions: HashMap::new(),
            timeout,
            broken: false,
        };
        let response: ApiVersionsResponse = conn
            .call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default(), None)
            .await?;
        if response.error_code != 0 {
            return Err(Error::transport(
                op(),
                format!("ApiVersions error {}", error_name(response.error_code)),
                false,
            ));
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
        Ok(conn)
    }

    /// The broker address.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the connection can no longer be used.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken
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

    /// Sends `request` as `key` version `version` and reads its response.
    ///
    /// `timeout` overrides the connection's request timeout (JoinGroup waits for a rebalance).
    /// The response goes through [`decode_response`]: a malformed one is a retriable error
    /// and leaves the connection broken, so the caller reconnects.
    pub(crate) async fn call<Req, Resp>(
        &mut self,
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
        if self.broken {
            return Err(Error::transport(op(), "connection is broken", true));
        }
        self.correlation = self.correlation.wrapping_add(1);
        let correlation = self.correlation;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0; 4]);
        header
            .encode(&mut buf, Req::header_version(version))
            .map_err(|e| Error::transport(op(), e, false))?;
        request
            .encode(&mut buf, version)
            .map_err(|e| Error::transport(op(), e, false))?;
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());

        // Until the exchange completed, the stream is out of step.
        self.broken = true;
        let limit = timeout.unwrap_or(self.timeout);
        let exchange = async {
            self.stream.write_all(&buf).await?;
            let mut len = [0u8; 4];
            self.stream.read_exact(&mut len).await?;
            let len = i32::from_be_bytes(len);
            if len < 0 || len as usize > MAX_FRAME {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("bad response length {len}"),
                ));
            }
            let mut body = vec![0u8; len as usize];
            self.stream.read_exact(&mut body).await?;
            Ok(body)
        };
        let body = tokio::time::timeout(limit, exchange)
            .await
            .map_err(|_| Error::transport(op(), format!("no response within {limit:?}"), true))?
            .map_err(|e| Error::transport(op(), e, true))?;
        self.broken = false;

        let (response_correlation, response) =
            match decode_response::<Resp>(Bytes::from(body), version) {
                Ok(decoded) => decoded,
                Err(Error::Transport {
                    message, retriable, ..
                }) => {
                    // Whoever sent this cannot be trusted with the next request either.
                    self.broken = true;
                    return Err(Error::transport(op(), message, retriable));
                }
                Err(e) => {
                    self.broken = true;
                    return Err(e);
                }
            };
        if response_correlation != correlation {
            self.broken = true;
            return Err(Error::transport(
                op(),
                format!(
                    "correlation id {response_correlation} in response, expected {correlation}"
                ),
                true,
            ));
        }
        Ok(response)
    }
}

/// Decodes a response `frame` (header and body, without the length prefix) as `version` of
/// `Resp`, and answers the correlation id of its header with the body.
///
/// The [`guard`] walks header and body first, so a count or length larger than the bytes
/// that remain is an error here instead of an allocation that aborts the process inside
/// `kafka-protocol`.
///
/// # Errors
///
/// A retriable [`Error::Transport`] naming the message, version, field and byte offset when
/// the guard refuses the frame, or `kafka-protocol`'s reason when it cannot decode it.
pub(crate) fn decode_response<Resp: Decodable + HeaderVersion + guard::Guarded>(
    frame: Bytes,
    version: i16,
) -> Result<(i32, Resp)> {
    let malformed = |message: String| Error::transport("decode response", message, true);
    let header_version = Resp::header_version(version);
    let header_layout = <ResponseHeader as Guarded>::LAYOUT;
    let header_len = guard::check(header_layout, header_version, &frame)
        .map_err(|e| malformed(e.to_string()))?;
    guard::check(Resp::LAYOUT, version, &frame[header_len..])
        .map_err(|e| malformed(e.to_string()))?;
    let mut buf = frame;
    let header = ResponseHeader::decode(&mut buf, header_version).map_err(|e| {
        malformed(format!(
            "malformed {} v{header_version}: {e}",
            header_layout.message
        ))
    })?;
    let response = Resp::decode(&mut buf, version).map_err(|e| {
        malformed(format!(
            "malformed {} v{version}: {e}",
            Resp::LAYOUT.message
        ))
    })?;
    Ok((header.correlation_id, response))
}

/// The highest version in both the broker's range and ours.
pub(crate) fn negotiate(broker: Option<Range>, min: i16, max: i16) -> Option<i16> {
    let broker = broker?;
    let hi = broker.max.min(max);
    let lo = broker.min.max(min);
    (hi >= lo).then_some(hi)
}

/// A Kafka error code as its protocol name, e.g. `REBALANCE_IN_PROGRESS (27)`.
pub(crate) fn error_name(code: i16) -> String {
    match kafka_protocol::ResponseError::try_from_code(code) {
        Some(e) => format!("{e} ({code})"),
        None => "NONE (0)".to_owned(),
    }
}

/// Whether a Kafka error code says that trying again may succeed.
pub(crate) fn is_retriable(code: i16) -> bool {
    kafka_protocol::ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable())
}

/// A protocol string from a Rust string.
pub(crate) fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// Reads one request frame and answers its API key and correlation id.
    async fn read_request(stream: &mut TcpStream) -> std::io::Result<(i16, i32)> {
        let len = stream.read_i32().await?;
        let mut frame = vec![0u8; len as usize];
        stream.read_exact(&mut frame).await?;
        let key = i16::from_be_bytes([frame[0], frame[1]]);
        let correlation = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        Ok((key, correlation))
    }

    /// Writes a response frame: length, correlation id (header v0), body.
    async fn write_response(stream: &mut TcpStream, correlation: i32, body: &[u8]) {
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        frame.extend_from_slice(&correlation.to_be_bytes());
        frame.extend_from_slice(body);
        stream.write_all(&frame).await.unwrap();
    }

    /// A fake broker that negotiates correctly and then answers JoinGroup v5 with a `members`
    /// count of `i32::MAX`: before the guard, that aborted the process.
    #[tokio::test]
    async fn a_hostile_count_from_the_broker_is_an_error_not_an_abort() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let broker = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let (key, correlation) = read_request(&mut stream).await.unwrap();
            assert_eq!(key, ApiKey::ApiVersions as i16);
            let versions = ApiVersionsResponse::default().with_api_keys(vec![
                ApiVersion::default()
                    .with_api_key(ApiKey::ApiVersions as i16)
                    .with_max_version(3),
                ApiVersion::default()
                    .with_api_key(ApiKey::JoinGroup as i16)
                    .with_max_version(5),
            ]);
            let mut body = BytesMut::new();
            versions.encode(&mut body, 0).unwrap();
            write_response(&mut stream, correlation, &body).await;

            let (key, correlation) = read_request(&mut stream).await.unwrap();
            assert_eq!(key, ApiKey::JoinGroup as i16);
            let mut body = BytesMut::new();
            body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1]); // throttle, error, generation
            for text in ["range", "member-0", "member-0"] {
                body.extend_from_slice(&(text.len() as i16).to_be_bytes());
                body.extend_from_slice(text.as_bytes());
            }
            body.extend_from_slice(&i32::MAX.to_be_bytes());
            body.extend_from_slice(&[0; 4]);
            write_response(&mut stream, correlation, &body).await;
            // Hold the connection until the client hangs up.
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).await.ok();
        });

        let client = async {
            let mut conn = Connection::connect(&addr, "guard-test", Duration::from_secs(5))
                .await
                .expect("the fake broker negotiates correctly");
            assert_eq!(
                conn.broker_range(ApiKey::JoinGroup),
                Some(Range { min: 0, max: 5 })
            );
            let result: Result<JoinGroupResponse> = conn
                .call(ApiKey::JoinGroup, 5, &JoinGroupRequest::default(), None)
                .await;
            (result, conn.is_broken())
        };
        let (result, broken) = tokio::time::timeout(Duration::from_secs(10), client)
            .await
            .expect("the exchange finishes within 10 s");
        match result {
            Err(Error::Transport {
                operation,
                message,
                retriable,
            }) => {
                assert!(
                    operation.starts_with("JoinGroup v5 to broker 127.0.0.1:"),
                    "{operation}"
                );
                // The count follows 10 bytes of integers and strings of 2 + 5, 2 + 8, 2 + 8.
                assert!(
                    message.contains(
                        "malformed JoinGroupResponse v5: array `members` declares 2147483647 \
                         elements at byte 37 but 4 bytes remain"
                    ),
                    "{message}"
                );
                assert!(retriable, "callers reconnect and retry");
            }
            other => panic!("expected a transport error, got {other:?}"),
        }
        assert!(
            broken,
            "a connection that delivered a malformed response is not reused"
        );
        tokio::time::timeout(Duration::from_secs(10), broker)
            .await
            .expect("the fake broker sees the hang-up within 10 s")
            .expect("the fake broker's asserts hold");
    }

    #[test]
    fn negotiates_the_highest_common_version() {
        let broker = Some(Range { min: 0, max: 7 });
        assert_eq!(negotiate(broker, 0, 9), Some(7));
        assert_eq!(negotiate(broker, 2, 5), Some(5));
        assert_eq!(negotiate(Some(Range { min: 3, max: 12 }), 0, 2), None);
        assert_eq!(negotiate(None, 0, 2), None);
    }
}

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
    pub(crate) async fn call<Req, Resp>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
        timeout: Option<Duration>,
    ) -> Result<Resp>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
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

        let mut body = Bytes::from(body);
        let response_header = ResponseHeader::decode(&mut body, Resp::header_version(version))
            .map_err(|e| Error::transport(op(), e, false))?;
        if response_header.correlation_id != correlation {
            self.broken = true;
            return Err(Error::transport(
                op(),
                format!(
                    "correlation id {} in response, expected {correlation}",
                    response_header.correlation_id
                ),
                true,
            ));
        }
        Resp::decode(&mut body, version).map_err(|e| Error::transport(op(), e, false))
    }
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
    use super::*;

    #[test]
    fn negotiates_the_highest_common_version() {
        let broker = Some(Range { min: 0, max: 7 });
        assert_eq!(negotiate(broker, 0, 9), Some(7));
        assert_eq!(negotiate(broker, 2, 5), Some(5));
        assert_eq!(negotiate(Some(Range { min: 3, max: 12 }), 0, 2), None);
        assert_eq!(negotiate(None, 0, 2), None);
    }
}

//! What a broker is: one ApiVersions v0 request, spoken by hand (every broker since 0.10
//! answers v0, and the request is a dozen bytes), so that it works in a build with any
//! backend. `[kafka] client = "auto"` asks it at start-up, and the
//! [`Manager`](crate::Manager) picks the backend from the answer
//! ([`Manager::auto_client`](crate::Manager::auto_client)).
//!
//! It speaks plaintext only, and is never asked on a secured cluster: with a
//! `[kafka.security]` protocol other than `plaintext`, `auto` picks the backend that speaks
//! it (`native`, or in a build without it `confluent`) without asking, and that backend's
//! own, secured connections find out the rest.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Error, Result};

const API_VERSIONS: i16 = 18;
const FETCH: i16 = 1;
const CONSUMER_GROUP_HEARTBEAT: i16 = 68;
const TIMEOUT: Duration = Duration::from_secs(10);

/// What a broker's ApiVersions answer says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerFeatures {
    /// The broker that answered, `host:port`.
    pub broker: String,
    /// API key → (lowest, highest) version the broker supports.
    pub apis: BTreeMap<i16, (i16, i16)>,
}

impl BrokerFeatures {
    /// Whether the broker is Kafka 4.0 or later: it dropped the old Fetch versions (v0-v3)
    /// that the `kafka` crate speaks.
    pub fn is_kafka4(&self) -> bool {
        self.apis.get(&FETCH).is_some_and(|(min, _)| *min >= 4)
    }

    /// Whether the broker advertises the KIP-848 `ConsumerGroupHeartbeat` API. Kafka 3.7-3.9
    /// advertise it too but serve it only when `group.coordinator.rebalance.protocols`
    /// includes `consumer`; [`is_kafka4`](Self::is_kafka4) is the reliable test.
    pub fn advertises_kip848(&self) -> bool {
        self.apis.contains_key(&CONSUMER_GROUP_HEARTBEAT)
    }

    /// Whether the broker is Kafka 0.11 or later: it serves Fetch v4, the first version
    /// with RecordBatch v2 (which the `native` backend reads) and transactions.
    pub fn reads_record_batches(&self) -> bool {
        self.apis.get(&FETCH).is_some_and(|(_, max)| *max >= 4)
    }
}

/// Asks the first broker of `brokers` that answers for its API versions.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> godev_kafka::Result<()> {
/// use godev_kafka::transport::detect::detect_broker;
///
/// let broker = detect_broker(&["127.0.0.1:9094".to_string()]).await?;
/// assert!(broker.is_kafka4());
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// No broker answered within 10 seconds, or the answer did not parse.
pub async fn detect_broker(brokers: &[String]) -> Result<BrokerFeatures> {
    let mut last = None;
    for broker in brokers {
        match tokio::time::timeout(TIMEOUT, api_versions(broker)).await {
            Ok(Ok(apis)) => {
                return Ok(BrokerFeatures {
                    broker: broker.clone(),
                    apis,
                });
            }
            Ok(Err(e)) => last = Some(e.to_string()),
            Err(_) => last = Some(format!("no answer within {TIMEOUT:?}")),
        }
    }
    Err(Error::transport(
        format!("ApiVersions to {}", brokers.join(",")),
        last.unwrap_or_else(|| "no brokers given".into()),
        true,
    ))
}

async fn api_versions(broker: &str) -> std::io::Result<BTreeMap<i16, (i16, i16)>> {
    let mut stream = TcpStream::connect(broker).await?;
    let client_id = b"godev-kafka";
    let mut request = Vec::with_capacity(32);
    request.extend_from_slice(&API_VERSIONS.to_be_bytes());
    request.extend_from_slice(&0i16.to_be_bytes()); // version 0
    request.extend_from_slice(&1i32.to_be_bytes()); // correlation id
    request.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    request.extend_from_slice(client_id);
    let mut frame = (request.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&request);
    stream.write_all(&frame).await?;
    let size = stream.read_i32().await?;
    if is_tls_record(size) {
        return Err(invalid(format!(
            "response size {size}: the broker answered with TLS; this listener needs TLS \
             (security protocol `ssl` or `sasl_ssl`)"
        )));
    }
    if !(10..=1 << 20).contains(&size) {
        return Err(invalid(format!("response size {size}")));
    }
    let mut body = vec![0; size as usize];
    stream.read_exact(&mut body).await?;
    parse_v0(&body)
}

/// Parses an ApiVersions v0 response body (after the size): correlation id, error code, and
/// `[api_key, min_version, max_version]`.
fn parse_v0(body: &[u8]) -> std::io::Result<BTreeMap<i16, (i16, i16)>> {
    let i16_at = |at: usize| -> std::io::Result<i16> {
        body.get(at..at + 2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| invalid("truncated response".into()))
    };
    let error = i16_at(4)?;
    if error != 0 {
        return Err(invalid(format!("error code {error}")));
    }
    let count = body
        .get(6..10)
        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| invalid("truncated response".into()))?;
    (0..count.max(0) as usize)
        .map(|i| {
            let at = 10 + i * 6;
            Ok((i16_at(at)?, (i16_at(at + 2)?, i16_at(at + 4)?)))
        })
        .collect()
}

/// Whether the first four bytes of an answer, read as a Kafka frame length, are the start
/// of a TLS record instead: content type 21 (alert) or 22 (handshake), then version 3.x. A
/// TLS listener answers a client that speaks Kafka in the clear that way.
pub(crate) fn is_tls_record(len: i32) -> bool {
    let [first, second, ..] = len.to_be_bytes();
    matches!(first, 0x15 | 0x16) && second == 0x03
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_v0_answer_and_tells_kafka_4_apart() {
        let mut body = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 2];
        for (key, min, max) in [(1i16, 4i16, 17i16), (68, 0, 1)] {
            for v in [key, min, max] {
                body.extend_from_slice(&v.to_be_bytes());
            }
        }
        let apis = parse_v0(&body).unwrap();
        let features = BrokerFeatures {
            broker: "b:1".into(),
            apis,
        };
        assert!(features.is_kafka4());
        assert!(features.advertises_kip848());
        assert!(features.reads_record_batches());

        let old = BrokerFeatures {
            broker: "b:1".into(),
            apis: BTreeMap::from([(FETCH, (0, 16))]),
        };
        assert!(!old.is_kafka4() && old.reads_record_batches());
        let ancient = BrokerFeatures {
            broker: "b:1".into(),
            apis: BTreeMap::from([(FETCH, (0, 3))]),
        };
        assert!(!ancient.is_kafka4() && !ancient.reads_record_batches());
        assert!(parse_v0(&body[..12]).is_err());
    }
}

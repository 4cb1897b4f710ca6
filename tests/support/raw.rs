//! A raw Kafka connection for tests that must send exactly the request they mean, at exactly
//! the version they name: framing and correlation ids, nothing else (no version negotiation,
//! no retries).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One connection to a broker.
pub struct Raw {
    stream: TcpStream,
    correlation: i32,
    client_id: &'static str,
}

impl Raw {
    /// Connects to `addr`; requests carry `client_id`.
    pub async fn connect(addr: &str, client_id: &'static str) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Raw {
            stream,
            correlation: 0,
            client_id,
        }
    }

    /// Wraps a connection already made to a broker; requests carry `client_id`.
    pub fn from_stream(stream: TcpStream, client_id: &'static str) -> Self {
        Raw {
            stream,
            correlation: 0,
            client_id,
        }
    }

    /// Sends `request` as `key` of `version` and reads its response, checking the
    /// correlation id; panics on any I/O or decoding error.
    pub async fn call<Req, Resp>(&mut self, key: ApiKey, version: i16, request: &Req) -> Resp
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        self.correlation += 1;
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str(self.client_id)))
            .encode(&mut frame, Req::header_version(version))
            .unwrap();
        request.encode(&mut frame, version).unwrap();
        let len = i32::try_from(frame.len() - 4).unwrap();
        frame[..4].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(&frame).await.unwrap();
        let len = self.stream.read_i32().await.unwrap();
        let mut body = vec![0; usize::try_from(len).unwrap()];
        self.stream.read_exact(&mut body).await.unwrap();
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, Resp::header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation);
        Resp::decode(&mut body, version).unwrap()
    }
}

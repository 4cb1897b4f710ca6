//! Kafka's framing: every request and response is a big-endian `i32` length followed by that
//! many bytes (header, then body).

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::guard::{self, Guarded};
use crate::{Error, Result};

/// Largest response accepted (a bad length prefix must not allocate gigabytes).
pub(crate) const MAX_FRAME: usize = 256 * 1024 * 1024;

/// Encodes `request` as `key` version `version` with its header, length prefix first.
pub(super) fn encode_request<Req: Encodable + HeaderVersion>(
    key: ApiKey,
    version: i16,
    correlation: i32,
    client_id: &StrBytes,
    request: &Req,
) -> std::result::Result<Bytes, String> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(client_id.clone()));
    let mut buf = BytesMut::with_capacity(64);
    buf.extend_from_slice(&[0; 4]);
    header
        .encode(&mut buf, Req::header_version(version))
        .map_err(|e| e.to_string())?;
    request
        .encode(&mut buf, version)
        .map_err(|e| e.to_string())?;
    let len = i32::try_from(buf.len() - 4).map_err(|_| "request too large".to_owned())?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// Reads one frame (without its length prefix); a length below 4 (no room for a correlation
/// id) or above [`MAX_FRAME`] is an error before anything is allocated.
pub(super) async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> std::io::Result<Bytes> {
    let len = reader.read_i32().await?;
    if !(4..=MAX_FRAME as i64).contains(&i64::from(len)) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            bad_length(len),
        ));
    }
    let mut body = BytesMut::zeroed(len as usize);
    reader.read_exact(&mut body).await?;
    Ok(body.freeze())
}

/// The correlation id a response frame starts with (every response header version does).
pub(super) fn correlation_id(frame: &[u8]) -> i32 {
    i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]])
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
pub(crate) fn decode_response<Resp: Decodable + HeaderVersion + Guarded>(
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

/// Why `len` cannot start a Kafka response, with what the bytes more likely were.
fn bad_length(len: i32) -> String {
    if crate::transport::detect::is_tls_record(len) {
        return format!(
            "bad response length {len}: the broker answered with TLS; this listener needs TLS \
             (security protocol `ssl` or `sasl_ssl`)"
        );
    }
    format!("bad response length {len}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tls_answer_is_named_as_such() {
        // What a TLS listener sends a client that speaks Kafka in the clear: an alert record.
        let alert = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32];
        let err = read_frame(&mut &alert[..]).await.unwrap_err();
        assert!(err.to_string().contains("needs TLS"), "{err}");
    }

    #[tokio::test]
    async fn lengths_outside_the_cap_are_refused_before_allocating() {
        for len in [-1i32, 0, 3, MAX_FRAME as i32 + 1, i32::MAX] {
            let bytes = len.to_be_bytes();
            let err = read_frame(&mut &bytes[..]).await.unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
            assert_eq!(err.to_string(), format!("bad response length {len}"));
        }
        let mut frame = 6i32.to_be_bytes().to_vec();
        frame.extend_from_slice(&[0, 0, 0, 7, 1, 2]);
        let read = read_frame(&mut &frame[..]).await.unwrap();
        assert_eq!(&read[..], &[0, 0, 0, 7, 1, 2]);
        assert_eq!(correlation_id(&read), 7);
    }
}

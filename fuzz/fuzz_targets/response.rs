//! Response frames as the connection layer reads them (`wire::decode_response`, the bounds
//! guard in front of `kafka-protocol`): the first byte picks the API, the second the version
//! (one below to one above what `kafka-protocol` knows), the rest is the frame (header and
//! body). Decoding never panics nor aborts on a hostile count; a response that decodes
//! re-encodes to a frame the guard accepts and that decodes to the same response (so the
//! guard's tables refuse nothing `kafka-protocol` writes).
#![no_main]

use bytes::BytesMut;
use godev_kafka::__fuzz::{RESPONSES, Response, decode_response};
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::{Encodable, HeaderVersion};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let [api, v, frame @ ..] = input else {
        return;
    };
    let (key, min, max) = RESPONSES[usize::from(*api) % RESPONSES.len()];
    let span = i32::from(max - min) + 3;
    let version = (i32::from(min) - 1 + i32::from(*v) % span) as i16;
    let Some(Ok((correlation, response))) = decode_response(key, version, frame) else {
        return;
    };
    let Some(again) = encode(correlation, &response, version).unwrap_or_else(|e| {
        panic!("{key:?} v{version} decoded but does not re-encode: {e}\n{response:?}")
    }) else {
        return;
    };
    let (correlation2, response2) = decode_response(key, version, &again)
        .expect("same key")
        .unwrap_or_else(|e| {
            panic!("{key:?} v{version}: re-encoded frame refused: {e}\n{response:?}")
        });
    assert_eq!(correlation, correlation2);
    assert_eq!(
        response, response2,
        "{key:?} v{version} changed in a round trip"
    );
});

/// The frame (header and body) of `response` at `version`; `None` when `kafka-protocol`'s
/// encoder writes another length than it computes, which is its bug, not the guard's: 0.18
/// decodes a tagged-field tag of 2^31 or more as a negative `i32`, then counts that field
/// but writes only the tags from 0 up, so the frame declares a field it lacks.
fn encode(correlation: i32, response: &Response, version: i16) -> anyhow::Result<Option<Vec<u8>>> {
    macro_rules! body {
        ($($name:ident),*) => {
            match response {
                $(Response::$name(r) => (r as &dyn Body, header_version(r, version)),)*
            }
        };
    }
    let (body, header_version) = body!(
        ApiVersions,
        Metadata,
        FindCoordinator,
        JoinGroup,
        SyncGroup,
        Heartbeat,
        LeaveGroup,
        OffsetFetch,
        OffsetCommit,
        ListOffsets,
        CreateTopics,
        DescribeGroups,
        Fetch,
        Produce,
        InitProducerId,
        SaslHandshake,
        SaslAuthenticate
    );
    let mut buf = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation)
        .encode(&mut buf, header_version)?;
    let start = buf.len();
    body.encode_to(&mut buf, version)?;
    if buf.len() - start != body.size(version)? {
        return Ok(None);
    }
    Ok(Some(buf.to_vec()))
}

fn header_version<T: HeaderVersion>(_: &T, version: i16) -> i16 {
    T::header_version(version)
}

/// `Encodable` made object safe.
trait Body {
    fn encode_to(&self, buf: &mut BytesMut, version: i16) -> anyhow::Result<()>;
    fn size(&self, version: i16) -> anyhow::Result<usize>;
}

impl<T: Encodable> Body for T {
    fn encode_to(&self, buf: &mut BytesMut, version: i16) -> anyhow::Result<()> {
        self.encode(buf, version)
    }

    fn size(&self, version: i16) -> anyhow::Result<usize> {
        self.compute_size(version)
    }
}

//! Entry points for the fuzz targets in `fuzz/`. Not public API: no stability promise.
//!
//! Compiled only with the `fuzzing` feature. Each function is a thin wrapper that makes one
//! crate-private decoder of untrusted bytes callable from outside the crate, with std types
//! in and out (responses come out as the `kafka-protocol` messages they decode to), so the
//! fuzz crate needs none of this crate's internal types.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages as m;
use kafka_protocol::protocol::Message;

use crate::Result;
use crate::transport::connection;
use crate::transport::group::{self, assignor};

/// Decodes `data` as one partition's fetched record batches (RecordBatch v2, every codec),
/// read uncommitted and read committed; returns, whatever the bytes.
pub fn decode_record_batches(data: &[u8]) {
    crate::transport::native::batch::fuzz_decode(data);
}

/// The topics of a member's JoinGroup metadata (a consumer-protocol subscription).
///
/// # Errors
///
/// Whatever the decoder reports for bytes that are not a subscription.
pub fn decode_subscription(metadata: &[u8]) -> Result<Vec<String>> {
    group::decode_subscription(metadata)
}

/// The topic and partition pairs of a SyncGroup assignment (consumer protocol).
///
/// # Errors
///
/// Whatever the decoder reports for bytes that are not an assignment.
pub fn decode_assignment(bytes: &[u8]) -> Result<Vec<(String, i32)>> {
    group::decode_assignment(bytes)
}

/// The group leader's assignment with `protocol` (`range`, `roundrobin`) of the partitions
/// of each topic (topic → partition count) to `members` (member id, subscribed topics).
/// Answers member id → topic → partitions.
pub fn assign(
    protocol: &str,
    members: &[(String, Vec<String>)],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
    let members: Vec<assignor::Subscription> = members
        .iter()
        .map(|(member_id, topics)| assignor::Subscription {
            member_id: member_id.clone(),
            topics: topics.clone(),
        })
        .collect();
    assignor::assign(protocol, &members, partitions)
}

/// Declares [`Response`], [`RESPONSES`] and [`decode_response`] for the response types the
/// connection layer decodes.
macro_rules! responses {
    ($($name:ident => $ty:ident),* $(,)?) => {
        /// A response decoded by [`decode_response`], by API.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Response {
            $(#[doc = concat!("A `", stringify!($ty), "`.")] $name(m::$ty),)*
        }

        /// Every API [`decode_response`] decodes: its key and the response versions
        /// `kafka-protocol` knows (lowest, highest).
        pub const RESPONSES: &[(m::ApiKey, i16, i16)] = &[
            $((
                m::ApiKey::$name,
                <m::$ty as Message>::VERSIONS.min,
                <m::$ty as Message>::VERSIONS.max,
            ),)*
        ];

        /// Decodes a response frame (header and body, without the length prefix) of API `key`
        /// at `version`, as the connection layer does; answers the header's correlation id
        /// and the response. `None` for an API not in [`RESPONSES`].
        ///
        /// # Errors
        ///
        /// Whatever the connection layer reports for a frame it refuses.
        pub fn decode_response(
            key: m::ApiKey,
            version: i16,
            frame: &[u8],
        ) -> Option<Result<(i32, Response)>> {
            let frame = Bytes::copy_from_slice(frame);
            Some(match key {
                $(m::ApiKey::$name => connection::decode_response(frame, version)
                    .map(|(id, r)| (id, Response::$name(r))),)*
                _ => return None,
            })
        }
    };
}

responses! {
    ApiVersions => ApiVersionsResponse,
    Metadata => MetadataResponse,
    FindCoordinator => FindCoordinatorResponse,
    JoinGroup => JoinGroupResponse,
    SyncGroup => SyncGroupResponse,
    Heartbeat => HeartbeatResponse,
    LeaveGroup => LeaveGroupResponse,
    OffsetFetch => OffsetFetchResponse,
    OffsetCommit => OffsetCommitResponse,
    ListOffsets => ListOffsetsResponse,
    CreateTopics => CreateTopicsResponse,
    DescribeGroups => DescribeGroupsResponse,
    Fetch => FetchResponse,
    Produce => ProduceResponse,
    InitProducerId => InitProducerIdResponse,
    SaslHandshake => SaslHandshakeResponse,
    SaslAuthenticate => SaslAuthenticateResponse,
}

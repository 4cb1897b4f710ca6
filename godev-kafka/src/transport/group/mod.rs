//! Classic consumer-group membership, spoken by the project itself with `kafka-protocol`.
//!
//! - [`membership`]: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, and the
//!   [`GroupMember`](crate::transport::GroupMember) built on them.
//! - [`assignor`]: the leader's `range` and `roundrobin` assignors.
//! - [`offsets`]: OffsetFetch and generation-fenced OffsetCommit.
//! - [`protocol`]: the member metadata and assignments, bounds-checked because they come from
//!   other clients.
//! - [`PartitionReader`]: what a member reads its partitions with, the backend's own fetch
//!   path (the `kafka` crate's, or the native backend's).
//!
//! One implementation serves every backend that speaks the classic protocol; it runs on the
//! [connection layer](crate::transport::connection).
//! Member metadata uses the standard consumer protocol (`ConsumerProtocolSubscription` and
//! `ConsumerProtocolAssignment`, version 0), so Kafka's own tools (`kafka-consumer-groups.sh
//! --describe`) show the members, their assignment and the committed offsets.
//!
//! Metadata that does not decode does not stop the group: the leader leaves that member out
//! of the assignment (and says so at warn), and a member whose assignment does not decode
//! owns nothing until the next rebalance.

pub(crate) mod assignor;
pub(crate) mod membership;
pub(crate) mod offsets;
pub(crate) mod protocol;
mod reader;

pub(crate) use reader::{Fetched, PartitionReader};

pub(crate) use protocol::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription,
};

use std::collections::HashMap;

use kafka_protocol::messages::{ApiKey, DescribeGroupsRequest, DescribeGroupsResponse, GroupId};

use crate::Result;
use crate::transport::connection::{Connection, sb};

/// Member id → the client id the member connected with, as the coordinator of `group` knows
/// them (DescribeGroups); empty when the coordinator cannot say. For log lines about members.
pub(crate) async fn client_ids(conn: &Connection, group: &str) -> HashMap<String, String> {
    let Ok(version) = conn.version::<DescribeGroupsRequest>(ApiKey::DescribeGroups) else {
        return HashMap::new();
    };
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(sb(group))]);
    let described: Result<DescribeGroupsResponse> = conn
        .call(ApiKey::DescribeGroups, version, &request, None)
        .await;
    described
        .map(|r| {
            r.groups
                .iter()
                .flat_map(|g| &g.members)
                .map(|m| (m.member_id.to_string(), m.client_id.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

//! Classic consumer-group membership, spoken by the project itself with `kafka-protocol`.
//!
//! - [`membership`]: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, and the
//!   [`GroupMember`](crate::transport::GroupMember) built on them.
//! - [`assignor`]: the leader's `range` and `roundrobin` assignors.
//! - [`offsets`]: OffsetFetch and generation-fenced OffsetCommit.
//! - [`protocol`]: the member metadata and assignments, bounds-checked because they come from
//!   other clients.
//!
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

pub(crate) use protocol::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription,
};

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    ApiKey, DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId,
};

use crate::transport::connection::{self, Connection, sb};
use crate::{Error, Result};

/// Connects to the coordinator of `group`, asking the bootstrap brokers where it is.
///
/// Retries while the coordinator is not available yet (a new group's offsets partition may
/// still be loading) until `deadline`.
pub(crate) async fn connect_coordinator(
    brokers: &[String],
    client_id: &str,
    group: &str,
    timeout: Duration,
    deadline: Instant,
) -> Result<Connection> {
    let op = format!("find coordinator of group {group}");
    let mut last: Option<Error> = None;
    loop {
        for broker in brokers {
            match find_coordinator(broker, client_id, group, timeout).await {
                Ok(addr) => match Connection::connect(&addr, client_id, timeout).await {
                    Ok(conn) => return Ok(conn),
                    Err(e) => last = Some(e),
                },
                Err(e) if e.is_retriable() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        if Instant::now() >= deadline {
            return Err(Error::transport(
                op,
                last.map(|e| e.to_string())
                    .unwrap_or_else(|| "no brokers given".into()),
                true,
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Asks `broker` for the coordinator of `group`; answers its `host:port`.
async fn find_coordinator(
    broker: &str,
    client_id: &str,
    group: &str,
    timeout: Duration,
) -> Result<String> {
    let conn = Connection::connect(broker, client_id, timeout).await?;
    let version = conn.version::<FindCoordinatorRequest>(ApiKey::FindCoordinator)?;
    let mut request = FindCoordinatorRequest::default();
    if version >= 4 {
        request.coordinator_keys = vec![sb(group)];
    } else {
        request.key = sb(group);
    }
    let response: FindCoordinatorResponse = conn
        .call(ApiKey::FindCoordinator, version, &request, None)
        .await?;
    let (code, host, port) = if version >= 4 {
        let c = response
            .coordinators
            .first()
            .ok_or_else(|| Error::transport("FindCoordinator", "empty coordinator list", true))?;
        (c.error_code, c.host.to_string(), c.port)
    } else {
        (
            response.error_code,
            response.host.to_string(),
            response.port,
        )
    };
    if code != 0 {
        return Err(Error::transport(
            format!("find coordinator of group {group}"),
            connection::error_name(code),
            connection::is_retriable(code),
        ));
    }
    Ok(format!("{host}:{port}"))
}

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

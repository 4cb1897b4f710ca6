//! A consumer-group member: join, sync, heartbeat, commit, leave; and its fetch positions.
//!
//! The member joins lazily, on its first [`GroupMember::poll`]. A heartbeat task, on its own
//! connection to the coordinator, marks the member for rejoining when the coordinator answers
//! REBALANCE_IN_PROGRESS (or forgot the member). The next poll then reports
//! [`Polled::Revoked`] with every owned partition (eager protocol), and the poll after that
//! takes part in the rebalance and reports [`Polled::Assigned`]. The leader also watches the
//! partition counts of the subscribed topics and rejoins when one changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use tokio::task::JoinHandle;

use super::assignor::{self, Subscription};
use super::offsets::{self, CommitError};
use super::{
    PartitionReader, client_ids, decode_assignment, decode_subscription, encode_assignment,
    encode_subscription,
};
use crate::transport::connection::{Cluster, Connection, Purpose, sb};
use crate::transport::{
    BoxFuture, GroupMember, GroupOptions, Polled, StalledPartition, TopicPartition,
};
use crate::{Error, KafkaCode, Result};

/// How often the leader compares the subscribed topics' partition counts.
const METADATA_CHECK: Duration = Duration::from_secs(5);
/// The longest a single fetch waits on the broker, so rebalances are noticed quickly.
const MAX_FETCH_WAIT: Duration = Duration::from_millis(500);
/// How long the leader waits for subscribed topics that do not exist yet, or have partitions
/// without leaders (being created), before it assigns what exists.
const SETTLE: Duration = Duration::from_secs(2);
/// The pause between JoinGroups the coordinator answered with UNKNOWN_SERVER_ERROR: Kafka
/// 3.9 does so to every member while one member's metadata does not parse.
const SERVER_ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// What the heartbeat task and the member share.
#[derive(Debug, Default)]
struct Shared {
    /// The coordinator wants this member to rejoin.
    rejoin: bool,
    /// The coordinator forgot this member: rejoin with an empty member id.
    reset_member: bool,
    /// The coordinator moved: find it again.
    lost_coordinator: bool,
}

/// Connection settings a member needs to (re)connect.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) brokers: Vec<String>,
    pub(crate) client_id: String,
    pub(crate) request_timeout: Duration,
}

/// A member of one consumer group, speaking the classic group protocol.
#[derive(Debug)]
pub(crate) struct ClassicMember {
    options: GroupOptions,
    settings: Settings,
    /// This member's view of the cluster: its connections and metadata.
    cluster: Arc<Cluster>,
    coordinator: Option<Arc<Connection>>,
    shared: Arc<Mutex<Shared>>,
    heartbeat: Option<JoinHandle<()>>,
    /// The backend's fetch path.
    fetcher: Box<dyn PartitionReader>,
    member_id: String,
    generation: i32,
    joined: bool,
    leader: bool,
    /// The topics the members subscribed to, as the leader last read them.
    subscribed: BTreeSet<String>,
    /// Partition counts the leader assigned from: the subscribed topics that exist.
    counts: BTreeMap<String, i32>,
    last_check: Instant,
    owned: Vec<TopicPartition>,
    positions: HashMap<TopicPartition, i64>,
    paused: BTreeSet<TopicPartition>,
    /// Owned partitions that cannot be read at their position: not fetched until the next
    /// assignment.
    stalled: BTreeSet<TopicPartition>,
    /// Stalls not reported to the runner yet.
    new_stalls: Vec<StalledPartition>,
}

impl ClassicMember {
    /// A member of `options.group`, connected to its coordinator; it joins on the first poll.
    pub(crate) async fn new(
        options: GroupOptions,
        settings: Settings,
        fetcher: Box<dyn PartitionReader>,
    ) -> Result<Self> {
        if options.topics.is_empty() {
            return Err(Error::transport(
                format!("join group {}", options.group),
                "no topics to subscribe to",
                false,
            ));
        }
        let deadline = Instant::now() + settings.request_timeout;
        let cluster = Arc::new(Cluster::new(
            &settings.brokers,
            &settings.client_id,
            settings.request_timeout,
        ));
        let coordinator = cluster.coordinator(&options.group, deadline).await?;
        Ok(Self {
            options,
            settings,
            cluster,
            coordinator: Some(coordinator),
            shared: Arc::default(),
            heartbeat: None,
            fetcher,
            member_id: String::new(),
            generation: -1,
            joined: false,
            leader: false,
            subscribed: BTreeSet::new(),
            counts: BTreeMap::new(),
            last_check: Instant::now(),
            owned: Vec::new(),
            positions: HashMap::new(),
            paused: BTreeSet::new(),
            stalled: BTreeSet::new(),
            new_stalls: Vec::new(),
        })
    }

    fn group(&self) -> &str {
        &self.options.group
    }

    fn must_rejoin(&self) -> bool {
        !self.joined || self.shared.lock().expect("group state").rejoin
    }

    fn request_rejoin(&self) {
        self.shared.lock().expect("group state").rejoin = true;
    }

    /// The coordinator connection, found again if it was lost.
    async fn coordinator(&mut self) -> Result<&Connection> {
        let lost = std::mem::take(&mut self.shared.lock().expect("group state").lost_coordinator);
        if lost || self.coordinator.as_ref().is_none_or(|c| c.is_broken()) {
            self.coordinator = None;
            let deadline = Instant::now() + self.options.rebalance_timeout;
            let conn = self
                .cluster
                .coordinator(&self.options.group, deadline)
                .await?;
            self.coordinator = Some(conn);
        }
        Ok(self.coordinator.as_ref().expect("just connected"))
    }

    fn stop_heartbeat(&mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
    }

    /// JoinGroup then SyncGroup until this member has an assignment of a stable generation.
    async fn join_group(&mut self) -> Result<()> {
        self.stop_heartbeat();
        self.joined = false;
        {
            let mut shared = self.shared.lock().expect("group state");
            if std::mem::take(&mut shared.reset_member) {
                self.member_id.clear();
            }
            shared.rejoin = false;
        }
        let group = self.options.group.clone();
        let op = format!("join group {group}");
        let metadata = encode_subscription(&self.options.topics)?;
        let deadline = Instant::now() + self.options.rebalance_timeout * 2;
        let mut attempt = 0u32;
        let mut server_errors = 0u32;
        loop {
            attempt += 1;
            if Instant::now() >= deadline {
                return Err(Error::transport(
                    op,
                    "no stable generation before the deadline",
                    true,
                ));
            }
            if attempt > 1 {
                let pause = if server_errors > 0 {
                    SERVER_ERROR_BACKOFF
                } else {
                    Duration::from_millis(100)
                };
                tokio::time::sleep(pause).await;
            }
            let session_ms = self.options.session_timeout.as_millis() as i32;
            let rebalance_ms = self.options.rebalance_timeout.as_millis() as i32;
            let join_timeout = self.options.rebalance_timeout + self.settings.request_timeout;
            let member_id = self.member_id.clone();
            let conn = match self.coordinator().await {
                Ok(c) => c,
                Err(e) if e.is_retriable() => continue,
                Err(e) => return Err(e),
            };
            let version = conn.version::<JoinGroupRequest>(ApiKey::JoinGroup)?;
            let request = JoinGroupRequest::default()
                .with_group_id(GroupId(sb(&group)))
                .with_session_timeout_ms(session_ms)
                .with_rebalance_timeout_ms(rebalance_ms)
                .with_member_id(sb(&member_id))
                .with_protocol_type(sb("consumer"))
                .with_protocols(
                    assignor::PROTOCOLS
                        .iter()
                        .map(|name| {
                            JoinGroupRequestProtocol::default()
                                .with_name(sb(name))
                                .with_metadata(metadata.clone())
                        })
                        .collect(),
                );
            let joined: JoinGroupResponse = match conn
                .call(ApiKey::JoinGroup, version, &request, Some(join_timeout))
                .await
            {
                Ok(r) => r,
                Err(e) if e.is_retriable() => {
                    tracing::debug!(%group, error = %e, "JoinGroup failed; retrying");
                    self.coordinator = None;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match KafkaCode::new(joined.error_code) {
                KafkaCode::NONE => {}
                KafkaCode::MEMBER_ID_REQUIRED => {
                    self.member_id = joined.member_id.to_string();
                    attempt = 0;
                    continue;
                }
                KafkaCode::UNKNOWN_MEMBER_ID => {
                    self.member_id.clear();
                    continue;
                }
                KafkaCode::COORDINATOR_LOAD_IN_PROGRESS
                | KafkaCode::COORDINATOR_NOT_AVAILABLE
                | KafkaCode::NOT_COORDINATOR => {
                    self.coordinator = None;
                    continue;
                }
                KafkaCode::REBALANCE_IN_PROGRESS | KafkaCode::ILLEGAL_GENERATION => continue,
                // Not this member's fault (Kafka 3.9 answers so while another member's
                // metadata does not parse): keep trying, the member may leave or expire.
                KafkaCode::UNKNOWN_SERVER_ERROR => {
                    server_errors += 1;
                    if server_errors == 1 {
                        tracing::warn!(
                            %group, member = %self.member_id,
                            "the coordinator answered JoinGroup with UNKNOWN_SERVER_ERROR (another member's metadata may be malformed); retrying every {SERVER_ERROR_BACKOFF:?}"
                        );
                    }
                    continue;
                }
                code => {
                    return Err(Error::kafka(op, code.code()));
                }
            }
            self.member_id = joined.member_id.to_string();
            self.generation = joined.generation_id;
            let protocol = joined
                .protocol_name
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default();
            self.leader = joined.leader.as_str() == self.member_id;
            let leader = joined.leader.to_string();
            tracing::debug!(
                %group, member = %self.member_id, generation = self.generation,
                leader = self.leader, %protocol, "joined"
            );

            let assignments = if self.leader {
                self.leader_assign(&joined, &protocol).await?
            } else {
                Vec::new()
            };
            let (member_id, generation) = (self.member_id.clone(), self.generation);
            let conn = match self.coordinator().await {
                Ok(c) => c,
                Err(e) if e.is_retriable() => continue,
                Err(e) => return Err(e),
            };
            let version = conn.version::<SyncGroupRequest>(ApiKey::SyncGroup)?;
            let request = SyncGroupRequest::default()
                .with_group_id(GroupId(sb(&group)))
                .with_generation_id(generation)
                .with_member_id(sb(&member_id))
                .with_protocol_type(Some(sb("consumer")))
                .with_protocol_name(Some(sb(&protocol)))
                .with_assignments(assignments);
            let synced: SyncGroupResponse = match conn
                .call(ApiKey::SyncGroup, version, &request, Some(join_timeout))
                .await
            {
                Ok(r) => r,
                Err(e) if e.is_retriable() => {
                    self.coordinator = None;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match KafkaCode::new(synced.error_code) {
                KafkaCode::NONE => {}
                KafkaCode::UNKNOWN_MEMBER_ID => {
                    self.member_id.clear();
                    continue;
                }
                KafkaCode::COORDINATOR_LOAD_IN_PROGRESS
                | KafkaCode::COORDINATOR_NOT_AVAILABLE
                | KafkaCode::NOT_COORDINATOR => {
                    self.coordinator = None;
                    continue;
                }
                KafkaCode::REBALANCE_IN_PROGRESS | KafkaCode::ILLEGAL_GENERATION => continue,
                code => {
                    return Err(Error::kafka(format!("sync group {group}"), code.code()));
                }
            }
            let assigned = decode_assignment(&synced.assignment).unwrap_or_else(|error| {
                tracing::warn!(
                    %group, member = %self.member_id, generation = self.generation,
                    %leader, %error,
                    "the group leader's assignment for this member does not decode; owning nothing until the next rebalance"
                );
                Vec::new()
            });
            let mut owned: Vec<TopicPartition> = assigned
                .into_iter()
                .filter(|(t, p)| *p >= 0 && self.options.topics.contains(t))
                .map(|(t, p)| TopicPartition::new(t, p))
                .collect();
            owned.sort();
            owned.dedup();
            self.owned = owned;
            self.joined = true;
            self.last_check = Instant::now();
            self.start_heartbeat()?;
            tracing::info!(
                %group, member = %self.member_id, generation = self.generation,
                partitions = ?self.owned.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "assigned"
            );
            return Ok(());
        }
    }

    /// The leader's assignment for every member of `joined`.
    ///
    /// A member whose metadata does not decode is left out (it gets an empty assignment) and
    /// named at warn; topics that do not exist are left out until they appear.
    async fn leader_assign(
        &mut self,
        joined: &JoinGroupResponse,
        protocol: &str,
    ) -> Result<Vec<SyncGroupRequestAssignment>> {
        let (members, rejected) = subscriptions(&joined.members);
        if !rejected.is_empty() {
            let group = self.options.group.clone();
            let clients = match self.coordinator().await {
                Ok(conn) => client_ids(conn, &group).await,
                Err(_) => HashMap::new(),
            };
            for (member, error) in &rejected {
                let client = clients.get(member).map_or("unknown", String::as_str);
                tracing::warn!(
                    %group, %member, %client, %error,
                    "a member's subscription metadata does not decode; it is left out of the assignment"
                );
            }
        }
        self.subscribed = members
            .iter()
            .flat_map(|m| m.topics.iter().cloned())
            .collect();
        let counts = self.settled_counts().await?;
        let missing: Vec<&String> = self
            .subscribed
            .iter()
            .filter(|t| !counts.contains_key(*t))
            .collect();
        if !missing.is_empty() {
            tracing::warn!(
                group = %self.group(), topics = ?missing,
                "subscribed topics do not exist (or have partitions without leaders); assigning the others, rebalancing when they appear"
            );
        }
        let mut assignment = assignor::assign(protocol, &members, &counts);
        for (member, _) in rejected {
            assignment.entry(member).or_default();
        }
        self.counts = counts;
        assignment
            .iter()
            .map(|(member, parts)| {
                Ok(SyncGroupRequestAssignment::default()
                    .with_member_id(sb(member))
                    .with_assignment(encode_assignment(parts)?))
            })
            .collect()
    }

    /// The partition counts of the subscribed topics that exist, waiting up to [`SETTLE`]
    /// for the others (a topic being created), and retrying failed requests until the
    /// request timeout.
    async fn settled_counts(&mut self) -> Result<BTreeMap<String, i32>> {
        let now = Instant::now();
        let (settle, deadline) = (now + SETTLE, now + self.settings.request_timeout);
        loop {
            match self.partition_counts().await {
                Ok(counts) if counts.len() == self.subscribed.len() || Instant::now() >= settle => {
                    return Ok(counts);
                }
                Ok(_) => {}
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    tracing::debug!(group = %self.group(), error = %e, "metadata failed; retrying");
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One read of the subscribed topics' partition counts (those that exist).
    async fn partition_counts(&self) -> Result<BTreeMap<String, i32>> {
        let topics: Vec<String> = self.subscribed.iter().cloned().collect();
        self.cluster.partition_counts(&topics).await
    }

    fn start_heartbeat(&mut self) -> Result<()> {
        let addr = self
            .coordinator
            .as_ref()
            .map(|c| c.addr().to_owned())
            .ok_or(Error::Closed("group coordinator connection"))?;
        let beat = Heartbeat {
            cluster: self.cluster.clone(),
            addr,
            group: self.options.group.clone(),
            member_id: self.member_id.clone(),
            generation: self.generation,
            interval: self.options.heartbeat_interval,
            session_timeout: self.options.session_timeout,
            shared: self.shared.clone(),
        };
        self.heartbeat = Some(tokio::spawn(beat.run()));
        Ok(())
    }

    /// Positions for the new assignment: committed offsets, else per `offset_reset`.
    async fn load_positions(&mut self) -> Result<()> {
        self.positions.clear();
        self.paused.clear();
        if self.owned.is_empty() {
            return Ok(());
        }
        let group = self.options.group.clone();
        let owned = self.owned.clone();
        let committed = {
            let conn = self.coordinator().await?;
            offsets::fetch_committed(conn, &group, &owned).await?
        };
        let missing: Vec<&TopicPartition> = owned
            .iter()
            .filter(|tp| !committed.contains_key(*tp))
            .collect();
        let reset = if missing.is_empty() {
            BTreeMap::new()
        } else {
            let topics: BTreeSet<String> = missing.iter().map(|tp| tp.topic.clone()).collect();
            self.fetcher
                .list_offsets(topics.into_iter().collect(), self.options.offset_reset)
                .await?
        };
        for tp in owned {
            let position = committed
                .get(&tp)
                .or_else(|| reset.get(&tp))
                .copied()
                .unwrap_or(0);
            self.positions.insert(tp, position);
        }
        Ok(())
    }

    /// Resets the positions of `partitions` (out of range) per `offset_reset`.
    async fn reset_positions(&mut self, partitions: Vec<TopicPartition>) -> Result<()> {
        let topics: BTreeSet<String> = partitions.iter().map(|tp| tp.topic.clone()).collect();
        let reset = self.options.offset_reset;
        let offsets = self
            .fetcher
            .list_offsets(topics.into_iter().collect(), reset)
            .await?;
        for tp in partitions {
            if let Some(offset) = offsets.get(&tp) {
                tracing::warn!(partition = %tp, offset, ?reset, "position out of range; reset");
                self.positions.insert(tp, *offset);
            }
        }
        Ok(())
    }

    /// The leader's periodic check that the subscribed topics kept their partition counts,
    /// and that none appeared or vanished.
    async fn check_partition_counts(&mut self) -> Result<()> {
        self.last_check = Instant::now();
        if self.subscribed.is_empty() {
            return Ok(());
        }
        match self.partition_counts().await {
            Ok(counts) if counts != self.counts => {
                tracing::info!(group = %self.group(), ?counts, "subscribed topics or their partition counts changed; rebalancing");
                self.request_rejoin();
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(group = %self.group(), error = %e, "metadata check failed"),
        }
        Ok(())
    }

    async fn poll_inner(&mut self, wait: Duration) -> Result<Polled> {
        let deadline = Instant::now() + wait;
        loop {
            if self.must_rejoin() {
                if !self.owned.is_empty() {
                    let revoked = std::mem::take(&mut self.owned);
                    self.positions.clear();
                    self.paused.clear();
                    self.stalled.clear();
                    self.new_stalls.clear();
                    return Ok(Polled::Revoked(revoked));
                }
                self.join_group().await?;
                self.load_positions().await?;
                return Ok(Polled::Assigned(self.owned.clone()));
            }
            if self.leader && self.last_check.elapsed() >= METADATA_CHECK {
                self.check_partition_counts().await?;
                continue;
            }
            if !self.new_stalls.is_empty() {
                return Ok(Polled::Stalled(std::mem::take(&mut self.new_stalls)));
            }
            let positions: Vec<(TopicPartition, i64)> = self
                .owned
                .iter()
                .filter(|tp| !self.paused.contains(*tp) && !self.stalled.contains(*tp))
                .filter_map(|tp| self.positions.get(tp).map(|o| (tp.clone(), *o)))
                .collect();
            let left = deadline.saturating_duration_since(Instant::now());
            let fetched = self
                .fetcher
                .fetch(positions, left.min(MAX_FETCH_WAIT))
                .await?;
            if !fetched.out_of_range.is_empty() {
                self.reset_positions(fetched.out_of_range).await?;
            }
            for stall in fetched.stalled {
                if self.positions.get(&stall.partition) == Some(&stall.offset)
                    && self.stalled.insert(stall.partition.clone())
                {
                    self.new_stalls.push(stall);
                }
            }
            if self.must_rejoin() {
                continue;
            }
            let mut records = fetched.records;
            // Only records at the current position, in order, of partitions still owned.
            records.retain(|r| {
                let tp = TopicPartition::new(r.topic.clone(), r.partition);
                !self.paused.contains(&tp)
                    && self.positions.get(&tp).is_some_and(|p| r.offset >= *p)
            });
            for r in &records {
                let tp = TopicPartition::new(r.topic.clone(), r.partition);
                self.positions.insert(tp, r.offset + 1);
            }
            // After the records: a skip past records no consumer sees (control or aborted
            // ones) never jumps over records of this fetch.
            for (tp, next) in fetched.skipped_to {
                if let Some(position) = self.positions.get_mut(&tp)
                    && next > *position
                    && !self.paused.contains(&tp)
                {
                    *position = next;
                }
            }
            if !records.is_empty() {
                return Ok(Polled::Records(records));
            }
            if Instant::now() >= deadline {
                return Ok(Polled::Idle);
            }
        }
    }

    async fn commit_inner(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let group = self.options.group.clone();
        let (generation, member_id) = (self.generation, self.member_id.clone());
        if !self.joined {
            return Err(Error::Fenced { group, generation });
        }
        for attempt in 0..3 {
            let conn = self.coordinator().await?;
            match offsets::commit(conn, &group, generation, &member_id, offsets).await {
                Ok(()) => return Ok(()),
                Err(CommitError::Fenced(code)) => {
                    tracing::info!(%group, generation, error = %code, "commit fenced");
                    let mut shared = self.shared.lock().expect("group state");
                    shared.rejoin = true;
                    if code == KafkaCode::UNKNOWN_MEMBER_ID {
                        shared.reset_member = true;
                    }
                    return Err(Error::Fenced { group, generation });
                }
                Err(CommitError::Coordinator(e)) if attempt < 2 => {
                    tracing::debug!(%group, error = %e, "commit: coordinator moved; retrying");
                    self.coordinator = None;
                }
                Err(CommitError::Coordinator(e) | CommitError::Other(e)) => return Err(e),
            }
        }
        unreachable!("the last attempt returns")
    }

    async fn leave_inner(mut self) -> Result<()> {
        self.stop_heartbeat();
        if self.member_id.is_empty() {
            return Ok(());
        }
        let group = self.options.group.clone();
        let member_id = self.member_id.clone();
        let conn = self.coordinator().await?;
        let version = conn.version::<LeaveGroupRequest>(ApiKey::LeaveGroup)?;
        let mut request = LeaveGroupRequest::default().with_group_id(GroupId(sb(&group)));
        if version >= 3 {
            request.members = vec![MemberIdentity::default().with_member_id(sb(&member_id))];
        } else {
            request.member_id = sb(&member_id);
        }
        let response: LeaveGroupResponse = conn
            .call(ApiKey::LeaveGroup, version, &request, None)
            .await?;
        let code = KafkaCode::new(if response.error_code != 0 {
            response.error_code
        } else {
            response
                .members
                .iter()
                .map(|m| m.error_code)
                .find(|c| *c != 0)
                .unwrap_or(0)
        });
        // A member the coordinator already forgot has left anyway.
        if code != KafkaCode::NONE && code != KafkaCode::UNKNOWN_MEMBER_ID {
            return Err(Error::kafka(format!("leave group {group}"), code.code()));
        }
        tracing::info!(%group, member = %member_id, "left");
        Ok(())
    }
}

impl Drop for ClassicMember {
    fn drop(&mut self) {
        self.stop_heartbeat();
    }
}

impl GroupMember for ClassicMember {
    fn poll(&mut self, wait: Duration) -> BoxFuture<'_, Result<Polled>> {
        Box::pin(self.poll_inner(wait))
    }

    fn pause(&mut self, partition: &TopicPartition) {
        if self.owned.contains(partition) {
            self.paused.insert(partition.clone());
        }
    }

    fn resume(&mut self, partition: &TopicPartition) {
        self.paused.remove(partition);
    }

    fn seek(&mut self, partition: &TopicPartition, offset: i64) {
        if self.owned.contains(partition) {
            self.positions.insert(partition.clone(), offset);
        }
    }

    fn commit<'a>(&'a mut self, offsets: &'a [(TopicPartition, i64)]) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.commit_inner(offsets))
    }

    fn leave(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin((*self).leave_inner())
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.owned.clone()
    }

    fn member_id(&self) -> String {
        self.member_id.clone()
    }
}

/// The heartbeat task of one generation.
#[derive(Debug)]
struct Heartbeat {
    cluster: Arc<Cluster>,
    addr: String,
    group: String,
    member_id: String,
    generation: i32,
    interval: Duration,
    session_timeout: Duration,
    shared: Arc<Mutex<Shared>>,
}

impl Heartbeat {
    async fn run(self) {
        let mut last_ok = Instant::now();
        loop {
            tokio::time::sleep(self.interval).await;
            // The member's own coordinator connection, made again if it broke.
            let outcome = match self.cluster.connection(&self.addr, Purpose::Group).await {
                Ok(conn) => self.beat(&conn).await,
                Err(e) => Err(e),
            };
            let mut shared = self.shared.lock().expect("group state");
            match outcome {
                Ok(KafkaCode::NONE) => last_ok = Instant::now(),
                Ok(KafkaCode::REBALANCE_IN_PROGRESS) => {
                    last_ok = Instant::now();
                    if !shared.rejoin {
                        tracing::info!(group = %self.group, generation = self.generation, "rebalance in progress");
                    }
                    shared.rejoin = true;
                }
                Ok(code @ (KafkaCode::UNKNOWN_MEMBER_ID | KafkaCode::ILLEGAL_GENERATION)) => {
                    tracing::info!(group = %self.group, error = %code, "member fenced; rejoining");
                    shared.rejoin = true;
                    shared.reset_member |= code == KafkaCode::UNKNOWN_MEMBER_ID;
                    return;
                }
                Ok(code @ (KafkaCode::NOT_COORDINATOR | KafkaCode::COORDINATOR_NOT_AVAILABLE)) => {
                    tracing::info!(group = %self.group, error = %code, "coordinator moved; rejoining");
                    shared.rejoin = true;
                    shared.lost_coordinator = true;
                    return;
                }
                Ok(code) => {
                    tracing::warn!(group = %self.group, error = %code, "heartbeat refused");
                }
                Err(e) => {
                    tracing::debug!(group = %self.group, error = %e, "heartbeat failed");
                    if last_ok.elapsed() > self.session_timeout {
                        shared.rejoin = true;
                        shared.lost_coordinator = true;
                        return;
                    }
                }
            }
        }
    }

    async fn beat(&self, conn: &Connection) -> Result<KafkaCode> {
        let version = conn.version::<HeartbeatRequest>(ApiKey::Heartbeat)?;
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(sb(&self.group)))
            .with_generation_id(self.generation)
            .with_member_id(sb(&self.member_id));
        let response: HeartbeatResponse = conn
            .call(ApiKey::Heartbeat, version, &request, None)
            .await?;
        Ok(KafkaCode::new(response.error_code))
    }
}
/// The subscriptions in a JoinGroup response's member list, and the members whose metadata
/// does not decode, each with why.
fn subscriptions(members: &[JoinGroupResponseMember]) -> (Vec<Subscription>, Vec<(String, Error)>) {
    let mut ok = Vec::new();
    let mut rejected = Vec::new();
    for m in members {
        match decode_subscription(&m.metadata) {
            Ok(topics) => ok.push(Subscription {
                member_id: m.member_id.to_string(),
                topics,
            }),
            Err(error) => rejected.push((m.member_id.to_string(), error)),
        }
    }
    (ok, rejected)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn member(id: &str, metadata: Vec<u8>) -> JoinGroupResponseMember {
        JoinGroupResponseMember::default()
            .with_member_id(sb(id))
            .with_metadata(Bytes::from(metadata))
    }

    /// Issue #12 F1 and F1b: a member whose metadata is hostile or malformed is left out, and
    /// the well-formed members are still assigned.
    #[test]
    fn members_whose_metadata_does_not_decode_are_left_out() {
        let good = encode_subscription(&["t".into()]).unwrap().to_vec();
        let members = [
            member("a-good", good.clone()),
            member("b-huge-topics", vec![0, 0, 0x7f, 0xff, 0xff, 0xff]),
            member(
                "c-huge-owned",
                vec![
                    0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff,
                ],
            ),
            member("d-truncated", vec![0, 0, 0, 0, 0, 1, 0, 5, 0x61]),
            member("e-good", good),
        ];
        let (ok, rejected) = subscriptions(&members);
        let ids: Vec<&str> = ok.iter().map(|s| s.member_id.as_str()).collect();
        assert_eq!(ids, ["a-good", "e-good"]);
        let rejected: Vec<&str> = rejected.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(rejected, ["b-huge-topics", "c-huge-owned", "d-truncated"]);
        let counts = BTreeMap::from([("t".to_string(), 4)]);
        let assignment = assignor::assign("range", &ok, &counts);
        assert_eq!(assignment["a-good"]["t"], [0, 1]);
        assert_eq!(assignment["e-good"]["t"], [2, 3]);
    }
}

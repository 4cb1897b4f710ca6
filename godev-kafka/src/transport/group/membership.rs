//! A consumer-group member: join, sync, heartbeat, commit, leave; and its fetch positions.
//!
//! The member joins lazily, on its first [`GroupMember::poll`]. A heartbeat task, on its own
//! connection to the coordinator, marks the member for rejoining when the coordinator answers
//! REBALANCE_IN_PROGRESS (or forgot the member). The next poll then reports
//! [`Polled::Revoked`] with every owned partition (eager protocol), and the poll after that
//! takes part in the rebalance and reports [`Polled::Assigned`]. The leader also watches the
//! partition counts of the subscribed topics and rejoins when one changed.
//!
//! The positions of an assignment (committed offsets, else per the offset reset) are read on
//! the polls after [`Polled::Assigned`], before any fetch. A poll whose OffsetFetch fails
//! answers the error, and the next poll reads them again: no owned partition goes unread.
//!
//! A coordinator that moved (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE) or whose connection
//! was lost is found again by the heartbeat task, which goes on with the same member id and
//! generation: the member rejoins only when the coordinator says the generation is gone, or
//! when no heartbeat succeeded for the session timeout (the coordinator has evicted it by then).
//!
//! # Static membership (KIP-345)
//!
//! With [`GroupOptions::group_instance_id`] the member joins as a static member (JoinGroup v5,
//! Kafka 2.3). Leaving sends no LeaveGroup: a member that comes back with the same instance id
//! within the session timeout is handed its old assignment without a rebalance. A leader that
//! comes back so is told to skip the assignment (JoinGroup v9, KIP-814, Kafka 3.2): it assigns
//! nothing but leads on, watching partition counts. Before v9 the coordinator names the leader
//! by its old member id, which it built from the instance id: the member recognises itself by
//! that, as franz-go does. A second process with the same instance id fences the first: the
//! first stops with FENCED_INSTANCE_ID, it never rejoins on its own.

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
use crate::transport::connection::{Cluster, Connection, Purpose, Security, sb};
use crate::transport::{
    BoxFuture, GroupMember, GroupOptions, PartitionProgress, Polled, StalledPartition,
    TopicPartition,
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
    /// Another member joined with this member's group instance id (FENCED_INSTANCE_ID): this
    /// member stops; rejoining would fence the other in turn.
    instance_fenced: bool,
}

/// Connection settings a member needs to (re)connect.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) brokers: Vec<String>,
    pub(crate) client_id: String,
    pub(crate) request_timeout: Duration,
    /// How every connection of the member is secured.
    pub(crate) security: Security,
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
    /// The positions of `owned` are loaded. Until they are, every poll tries again (a
    /// failed OffsetFetch right after joining is retried, never left unread).
    positioned: bool,
    positions: HashMap<TopicPartition, i64>,
    /// Each owned partition's high watermark, as its last fetch answered it.
    high_watermarks: HashMap<TopicPartition, i64>,
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
        let cluster = Arc::new(
            Cluster::new(
                &settings.brokers,
                &settings.client_id,
                settings.request_timeout,
            )
            .with_security(settings.security.clone()),
        );
        let coordinator = cluster.coordinator(&options.group, deadline).await?;
        if options.group_instance_id.is_some() {
            let version = coordinator.version::<JoinGroupRequest>(ApiKey::JoinGroup)?;
            check_static_membership(coordinator.addr(), &options.group, version)?;
        }
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
            positioned: false,
            positions: HashMap::new(),
            high_watermarks: HashMap::new(),
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

    fn instance_id(&self) -> Option<&str> {
        self.options.group_instance_id.as_deref()
    }

    /// Whether another member took this member's group instance id.
    fn is_instance_fenced(&self) -> bool {
        self.shared.lock().expect("group state").instance_fenced
    }

    /// Marks this static member fenced off by another with its instance id; answers the
    /// error every later poll and commit gives too.
    fn fence_instance(&self) -> Error {
        self.shared.lock().expect("group state").instance_fenced = true;
        self.instance_fenced_error()
    }

    fn instance_fenced_error(&self) -> Error {
        instance_fenced_error(self.group(), self.instance_id().unwrap_or_default())
    }

    /// The coordinator connection, found again if it was lost.
    async fn coordinator(&mut self) -> Result<&Connection> {
        let lost = std::mem::take(&mut self.shared.lock().expect("group state").lost_coordinator);
        if lost || self.coordinator.as_ref().is_none_or(|c| !c.is_usable()) {
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
        let instance = self.options.group_instance_id.clone();
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
            let join_version = conn.version::<JoinGroupRequest>(ApiKey::JoinGroup)?;
            if instance.is_some() {
                check_static_membership(conn.addr(), &group, join_version)?;
            }
            let request = JoinGroupRequest::default()
                .with_group_id(GroupId(sb(&group)))
                .with_session_timeout_ms(session_ms)
                .with_rebalance_timeout_ms(rebalance_ms)
                .with_member_id(sb(&member_id))
                .with_group_instance_id(instance.as_deref().map(sb))
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
                .call(
                    ApiKey::JoinGroup,
                    join_version,
                    &request,
                    Some(join_timeout),
                )
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
                // Another process joined with this instance id after this member did.
                KafkaCode::FENCED_INSTANCE_ID => return Err(self.fence_instance()),
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
            let role = role(&joined, join_version, instance.as_deref());
            self.leader = role != Role::Follower;
            let leader = joined.leader.to_string();
            tracing::debug!(
                %group, member = %self.member_id, generation = self.generation,
                ?role, %protocol, "joined"
            );

            let assignments = match role {
                Role::Leader => self.leader_assign(&joined, &protocol).await?,
                Role::ReturningLeader => {
                    self.resume_leading(&joined).await?;
                    Vec::new()
                }
                Role::Follower => Vec::new(),
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
                .with_group_instance_id(instance.as_deref().filter(|_| version >= 3).map(sb))
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
                KafkaCode::FENCED_INSTANCE_ID => return Err(self.fence_instance()),
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

    /// Leading a generation whose assignment the coordinator kept: a static leader back in a
    /// stable group. It assigns nothing, and watches the partition counts from now on as
    /// the Java client does, comparing them with the counts of this moment: what changed
    /// while it was away goes unnoticed until the next rebalance (a limit of KIP-814).
    async fn resume_leading(&mut self, joined: &JoinGroupResponse) -> Result<()> {
        let (members, _) = subscriptions(&joined.members);
        // Before KIP-814 the coordinator lists no members: watch this member's own topics.
        self.subscribed = if members.is_empty() {
            self.options.topics.iter().cloned().collect()
        } else {
            members.into_iter().flat_map(|m| m.topics).collect()
        };
        self.counts = self.settled_counts().await?;
        tracing::info!(
            group = %self.group(), member = %self.member_id, generation = self.generation,
            "back as the group's static leader: the coordinator kept the group's assignment, so this member assigns nothing"
        );
        Ok(())
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
            group_instance_id: self.options.group_instance_id.clone(),
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
            offsets::fetch_committed(conn, &group, &owned).await
        };
        let committed = match committed {
            Ok(committed) => committed,
            Err(e) => {
                // Moved, loading or unreachable: the next try finds the coordinator again.
                if e.is_retriable() {
                    self.coordinator = None;
                }
                return Err(e);
            }
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
            if self.is_instance_fenced() {
                return Err(self.instance_fenced_error());
            }
            if self.must_rejoin() {
                if !self.owned.is_empty() {
                    let revoked = std::mem::take(&mut self.owned);
                    self.positions.clear();
                    self.high_watermarks.clear();
                    self.paused.clear();
                    self.stalled.clear();
                    self.new_stalls.clear();
                    return Ok(Polled::Revoked(revoked));
                }
                self.join_group().await?;
                self.positioned = false;
                return Ok(Polled::Assigned(self.owned.clone()));
            }
            if !self.positioned {
                // An error here reaches the caller, whose next poll tries again.
                self.load_positions().await?;
                self.positioned = true;
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
            self.high_watermarks.extend(fetched.high_watermarks);
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
        let instance = self.options.group_instance_id.clone();
        if self.is_instance_fenced() {
            return Err(self.instance_fenced_error());
        }
        if !self.joined {
            return Err(Error::Fenced { group, generation });
        }
        for attempt in 0..3 {
            let conn = self.coordinator().await?;
            let committed = offsets::commit(
                conn,
                &group,
                generation,
                &member_id,
                instance.as_deref(),
                offsets,
            )
            .await;
            match committed {
                Ok(()) => return Ok(()),
                Err(CommitError::Fenced(KafkaCode::FENCED_INSTANCE_ID)) => {
                    return Err(self.fence_instance());
                }
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
        if let Some(instance) = self.instance_id() {
            // As the Java client: the member that comes back with this instance id within the
            // session timeout finds the partitions still its own, with no rebalance.
            tracing::info!(
                group = %self.group(), member = %self.member_id, %instance,
                session_timeout = ?self.options.session_timeout,
                "static member: not leaving the group; its partitions wait for it until the session timeout"
            );
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

    fn progress(&self) -> Vec<(TopicPartition, PartitionProgress)> {
        self.owned
            .iter()
            .filter_map(|tp| {
                let position = *self.positions.get(tp)?;
                let high_watermark = *self.high_watermarks.get(tp)?;
                Some((tp.clone(), PartitionProgress::new(position, high_watermark)))
            })
            .collect()
    }

    fn member_id(&self) -> String {
        self.member_id.clone()
    }
}

/// The heartbeat task of one generation.
#[derive(Debug)]
struct Heartbeat {
    cluster: Arc<Cluster>,
    /// The coordinator's address; changes when the task finds it again elsewhere.
    addr: String,
    group: String,
    member_id: String,
    group_instance_id: Option<String>,
    generation: i32,
    interval: Duration,
    session_timeout: Duration,
    shared: Arc<Mutex<Shared>>,
}

/// What the heartbeat task does after one heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Next {
    /// The generation holds: beat again after the interval.
    Beat,
    /// The group is rebalancing: the member rejoins; beat on until it does (the coordinator
    /// keeps the member for the rebalance while it beats).
    Rebalance,
    /// The coordinator no longer knows this generation: rejoin, as a new member if `reset`.
    Rejoin { reset: bool },
    /// Another member took this member's group instance id: stop for good.
    InstanceFenced,
    /// The coordinator moved, or the connection to it failed: find it again and beat on with
    /// the same generation.
    Rediscover(String),
    /// The coordinator is loading the group: beat again after the interval.
    Wait,
    /// An answer this task does not expect: say so and beat again.
    Refused(KafkaCode),
}

/// The decision after one heartbeat's `outcome` (the coordinator's code, or why no answer came).
fn after_heartbeat(outcome: &Result<KafkaCode>) -> Next {
    match outcome {
        Ok(KafkaCode::NONE) => Next::Beat,
        Ok(KafkaCode::REBALANCE_IN_PROGRESS) => Next::Rebalance,
        Ok(KafkaCode::UNKNOWN_MEMBER_ID) => Next::Rejoin { reset: true },
        Ok(KafkaCode::ILLEGAL_GENERATION) => Next::Rejoin { reset: false },
        Ok(KafkaCode::FENCED_INSTANCE_ID) => Next::InstanceFenced,
        Ok(code @ (KafkaCode::NOT_COORDINATOR | KafkaCode::COORDINATOR_NOT_AVAILABLE)) => {
            Next::Rediscover(code.to_string())
        }
        Ok(KafkaCode::COORDINATOR_LOAD_IN_PROGRESS) => Next::Wait,
        Ok(code) => Next::Refused(*code),
        Err(e) => Next::Rediscover(e.to_string()),
    }
}

impl Heartbeat {
    async fn run(mut self) {
        let group = self.group.clone();
        let generation = self.generation;
        let mut last_ok = Instant::now();
        // Why the coordinator is lost, while it is: it is found again before the next beat.
        let mut lost: Option<String> = None;
        // Where the coordinator was before it was lost, until a heartbeat succeeds at the
        // place it was found again: then the move is said, once.
        let mut moved_from: Option<String> = None;
        loop {
            tokio::time::sleep(self.interval).await;
            if last_ok.elapsed() >= self.session_timeout {
                // The coordinator has evicted this member by now, or will at once.
                tracing::info!(
                    %group, generation, session_timeout = ?self.session_timeout,
                    "no heartbeat succeeded for the session timeout; rejoining"
                );
                let mut shared = self.shared.lock().expect("group state");
                shared.rejoin = true;
                shared.lost_coordinator = true;
                return;
            }
            if let Some(why) = &lost {
                let deadline = last_ok + self.session_timeout;
                match self.cluster.coordinator(&group, deadline).await {
                    Ok(conn) => {
                        moved_from.get_or_insert_with(|| self.addr.clone());
                        self.addr = conn.addr().to_owned();
                        lost = None;
                        // The member's own requests (commits) go there too.
                        self.shared.lock().expect("group state").lost_coordinator = true;
                    }
                    Err(e) => {
                        tracing::debug!(%group, generation, lost = %why, error = %e, "coordinator not found yet");
                        continue;
                    }
                }
            }
            // The member's own coordinator connection, made again if it broke.
            let outcome = match self.cluster.connection(&self.addr, Purpose::Group).await {
                Ok(conn) => self.beat(&conn).await,
                Err(e) => Err(e),
            };
            let mut shared = self.shared.lock().expect("group state");
            match after_heartbeat(&outcome) {
                Next::Beat => {
                    last_ok = Instant::now();
                    match moved_from.take() {
                        Some(from) if from == self.addr => tracing::info!(
                            %group, generation, coordinator = %self.addr,
                            "lost the coordinator's connection; found it again at {}; generation {generation} still valid",
                            self.addr
                        ),
                        Some(from) => tracing::info!(
                            %group, generation, was = %from, coordinator = %self.addr,
                            "coordinator moved; found it again at {}; generation {generation} still valid",
                            self.addr
                        ),
                        None => {}
                    }
                }
                Next::Rebalance => {
                    last_ok = Instant::now();
                    moved_from = None;
                    if !shared.rejoin {
                        tracing::info!(%group, generation, "rebalance in progress");
                    }
                    shared.rejoin = true;
                }
                Next::Rejoin { reset } => {
                    let error = outcome.map(|c| c.to_string()).unwrap_or_default();
                    tracing::info!(%group, generation, %error, "member fenced; rejoining");
                    shared.rejoin = true;
                    shared.reset_member |= reset;
                    return;
                }
                Next::InstanceFenced => {
                    tracing::error!(
                        %group, generation,
                        instance = self.group_instance_id.as_deref().unwrap_or_default(),
                        "another member joined with this member's group instance id; this member stops"
                    );
                    shared.instance_fenced = true;
                    return;
                }
                Next::Rediscover(why) => {
                    tracing::debug!(%group, generation, coordinator = %self.addr, %why, "coordinator lost; finding it again");
                    shared.lost_coordinator = true;
                    lost = Some(why);
                }
                Next::Wait => {
                    tracing::debug!(%group, generation, "the coordinator is loading the group; heartbeating again");
                }
                Next::Refused(code) => {
                    tracing::warn!(%group, generation, error = %code, "heartbeat refused");
                }
            }
        }
    }

    async fn beat(&self, conn: &Connection) -> Result<KafkaCode> {
        let version = conn.version::<HeartbeatRequest>(ApiKey::Heartbeat)?;
        let instance = self.group_instance_id.as_deref().filter(|_| version >= 3);
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(sb(&self.group)))
            .with_generation_id(self.generation)
            .with_member_id(sb(&self.member_id))
            .with_group_instance_id(instance.map(sb));
        let response: HeartbeatResponse = conn
            .call(ApiKey::Heartbeat, version, &request, None)
            .await?;
        Ok(KafkaCode::new(response.error_code))
    }
}

/// Refuses static membership on a coordinator whose highest JoinGroup version is `version`:
/// the group instance id came with JoinGroup v5 (Kafka 2.3).
fn check_static_membership(coordinator: &str, group: &str, version: i16) -> Result<()> {
    if version >= 5 {
        return Ok(());
    }
    Err(Error::transport(
        format!("join group {group} as a static member"),
        format!(
            "the coordinator {coordinator} is older than Kafka 2.3 (JoinGroup up to v{version}); static membership (`group_instance_id`) needs JoinGroup v5, Kafka 2.3 or newer: upgrade the brokers or leave `group_instance_id` unset"
        ),
        false,
    ))
}

/// The error of a static member whose instance id another member took.
fn instance_fenced_error(group: &str, instance: &str) -> Error {
    Error::kafka_with(
        format!("member of group {group} with group instance id `{instance}`"),
        KafkaCode::FENCED_INSTANCE_ID.code(),
        Some(format!(
            "another member joined group {group} with the same group instance id `{instance}` (a second process with this id?); this member stopped and does not rejoin: give every process its own `group_instance_id`"
        )),
    )
}

/// This member's part in a generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Assigns every member's partitions.
    Leader,
    /// A static leader back in a stable group: the coordinator kept the group's assignment,
    /// so it assigns nothing, yet leads (watches partition counts).
    ReturningLeader,
    Follower,
}

/// The role the JoinGroup answer `joined` (of version `version`) gives a member with
/// `instance_id`.
///
/// From v9 (KIP-814) the coordinator names a returning static leader as the leader and sets
/// `skip_assignment`. Before v9 it names the leader by the member id the returning leader had
/// before, so that it does not assign: it made that id as `<instance id>-<UUID>`, by which
/// the member still recognises itself as the leader (as franz-go does). A misjudgement there
/// costs at most a rebalance when partition counts change, which a leader would start anyway.
fn role(joined: &JoinGroupResponse, version: i16, instance_id: Option<&str>) -> Role {
    let leader = joined.leader.as_str();
    if leader == joined.member_id.as_str() {
        return if joined.skip_assignment {
            Role::ReturningLeader
        } else {
            Role::Leader
        };
    }
    let was_me = instance_id
        .and_then(|id| leader.strip_prefix(id)?.strip_prefix('-'))
        .is_some_and(is_uuid);
    if version < 9 && was_me {
        Role::ReturningLeader
    } else {
        Role::Follower
    }
}

/// Whether `s` has the shape of Java's `UUID.toString()`: 8-4-4-4-12 hex digits.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
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
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::FindCoordinatorResponse;
    use kafka_protocol::protocol::{Decodable, Encodable};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    use super::*;
    use crate::transport::connection::fake_broker::{
        listen, negotiate_with, read_request_v1, write_response,
    };

    /// Every wait of these tests ends well within this.
    const DEADLINE: Duration = Duration::from_secs(10);
    const UUID: &str = "3f2c1a9e-4b7d-4e1a-9c3b-0123456789ab";

    fn joined(member: &str, leader: &str, skip_assignment: bool) -> JoinGroupResponse {
        JoinGroupResponse::default()
            .with_member_id(sb(member))
            .with_leader(sb(leader))
            .with_skip_assignment(skip_assignment)
    }

    /// Who leads: the coordinator's word, and before KIP-814 (JoinGroup v9) a static
    /// member's old id, `<instance id>-<UUID>`, as the leader's name.
    #[test]
    fn a_returning_static_leader_leads_without_assigning() {
        let me = format!("a-{UUID}");
        let old_me = "a-00000000-1111-2222-3333-444444444444";
        let other = format!("b-{UUID}");
        assert_eq!(role(&joined(&me, &me, false), 9, Some("a")), Role::Leader);
        assert_eq!(role(&joined(&me, &me, false), 4, None), Role::Leader);
        assert_eq!(
            role(&joined(&me, &me, true), 9, Some("a")),
            Role::ReturningLeader
        );
        assert_eq!(
            role(&joined(&me, &other, false), 9, Some("a")),
            Role::Follower
        );
        // Before v9 the coordinator names the leader by the id this instance had before.
        assert_eq!(
            role(&joined(&me, old_me, false), 8, Some("a")),
            Role::ReturningLeader
        );
        assert_eq!(
            role(&joined(&me, old_me, false), 5, Some("a")),
            Role::ReturningLeader
        );
        // From v9 it says so itself: an old id of ours as the leader is not ours to act on.
        assert_eq!(
            role(&joined(&me, old_me, false), 9, Some("a")),
            Role::Follower
        );
        // Another instance whose id starts like ours, and dynamic members.
        let a1 = format!("a-1-{UUID}");
        assert_eq!(role(&joined(&me, &a1, false), 8, Some("a")), Role::Follower);
        assert_eq!(
            role(&joined(&me, "a-x", false), 8, Some("a")),
            Role::Follower
        );
        assert_eq!(role(&joined(&me, old_me, false), 8, None), Role::Follower);
    }

    #[test]
    fn java_uuids_are_recognised() {
        assert!(is_uuid(UUID));
        assert!(!is_uuid("3f2c1a9e-4b7d-4e1a-9c3b"));
        assert!(!is_uuid("3f2c1a9e-4b7d-4e1a-9c3b-0123456789ag"));
        assert!(!is_uuid(&format!("1-{UUID}")));
    }

    /// The heartbeat's decisions: the coordinator moving, or its connection failing, keeps
    /// the generation; only the coordinator saying it is gone rejoins.
    #[test]
    fn a_moved_coordinator_is_found_again_and_a_gone_generation_rejoins() {
        let next = |code: KafkaCode| after_heartbeat(&Ok(code));
        assert_eq!(next(KafkaCode::NONE), Next::Beat);
        assert_eq!(next(KafkaCode::REBALANCE_IN_PROGRESS), Next::Rebalance);
        assert_eq!(
            next(KafkaCode::UNKNOWN_MEMBER_ID),
            Next::Rejoin { reset: true }
        );
        assert_eq!(
            next(KafkaCode::ILLEGAL_GENERATION),
            Next::Rejoin { reset: false }
        );
        assert_eq!(next(KafkaCode::FENCED_INSTANCE_ID), Next::InstanceFenced);
        assert!(matches!(
            next(KafkaCode::NOT_COORDINATOR),
            Next::Rediscover(_)
        ));
        assert!(matches!(
            next(KafkaCode::COORDINATOR_NOT_AVAILABLE),
            Next::Rediscover(_)
        ));
        assert_eq!(next(KafkaCode::COORDINATOR_LOAD_IN_PROGRESS), Next::Wait);
        assert_eq!(
            next(KafkaCode::GROUP_AUTHORIZATION_FAILED),
            Next::Refused(KafkaCode::GROUP_AUTHORIZATION_FAILED)
        );
        let lost = Error::transport("Heartbeat v4 to broker b:1", "connection closed", true);
        assert!(
            matches!(after_heartbeat(&Err(lost)), Next::Rediscover(why) if why.contains("connection closed"))
        );
    }

    #[test]
    fn static_membership_on_a_broker_older_than_2_3_is_refused_clearly() {
        assert!(check_static_membership("b:9092", "g", 5).is_ok());
        let e = check_static_membership("b:9092", "g", 4).unwrap_err();
        assert!(!e.is_retriable(), "{e}");
        let message = e.to_string();
        for part in [
            "join group g",
            "b:9092",
            "older than Kafka 2.3",
            "group_instance_id",
        ] {
            assert!(message.contains(part), "{message:?} lacks {part:?}");
        }
    }

    #[test]
    fn a_fenced_instance_says_which_group_and_instance() {
        let e = instance_fenced_error("orders", "pod-1");
        assert_eq!(e.kafka_code(), Some(KafkaCode::FENCED_INSTANCE_ID));
        assert!(!e.is_retriable());
        let message = e.to_string();
        for part in [
            "group orders",
            "`pod-1`",
            "FENCED_INSTANCE_ID",
            "does not rejoin",
        ] {
            assert!(message.contains(part), "{message:?} lacks {part:?}");
        }
    }

    /// The APIs of the fake coordinators: versions whose headers are not flexible, with a
    /// group instance id in Heartbeat (v3).
    const COORDINATOR_APIS: &[(ApiKey, i16)] = &[
        (ApiKey::ApiVersions, 3),
        (ApiKey::Heartbeat, 3),
        (ApiKey::FindCoordinator, 2),
    ];

    /// A heartbeat as a fake coordinator read it.
    #[derive(Debug, PartialEq, Eq)]
    struct Beat {
        member_id: String,
        generation: i32,
        instance: Option<String>,
    }

    /// A fake broker on `listener`, on every connection: heartbeats are sent to `beats` and
    /// answered `code`; FindCoordinator names `coordinator`.
    fn fake_coordinator(
        listener: TcpListener,
        code: KafkaCode,
        coordinator: String,
        beats: mpsc::UnboundedSender<Beat>,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let (beats, coordinator) = (beats.clone(), coordinator.clone());
                tokio::spawn(async move {
                    negotiate_with(&mut stream, COORDINATOR_APIS).await;
                    while let Ok((header, mut body)) = read_request_v1(&mut stream).await {
                        let version = header.request_api_version;
                        let mut out = BytesMut::new();
                        match ApiKey::try_from(header.request_api_key).unwrap() {
                            ApiKey::Heartbeat => {
                                let beat = HeartbeatRequest::decode(&mut body, version).unwrap();
                                let _ = beats.send(Beat {
                                    member_id: beat.member_id.to_string(),
                                    generation: beat.generation_id,
                                    instance: beat.group_instance_id.map(|i| i.to_string()),
                                });
                                HeartbeatResponse::default()
                                    .with_error_code(code.code())
                                    .encode(&mut out, version)
                                    .unwrap();
                            }
                            ApiKey::FindCoordinator => {
                                let (host, port) = coordinator.rsplit_once(':').unwrap();
                                FindCoordinatorResponse::default()
                                    .with_host(sb(host))
                                    .with_port(port.parse().unwrap())
                                    .encode(&mut out, version)
                                    .unwrap();
                            }
                            key => panic!("unexpected {key:?}"),
                        }
                        write_response(&mut stream, header.correlation_id, &out).await;
                    }
                });
            }
        })
    }

    fn heartbeat(bootstrap: &str, shared: &Arc<Mutex<Shared>>) -> Heartbeat {
        Heartbeat {
            cluster: Arc::new(Cluster::new(
                &[bootstrap.to_owned()],
                "membership-test",
                Duration::from_secs(5),
            )),
            addr: bootstrap.to_owned(),
            group: "g".into(),
            member_id: "m-1".into(),
            group_instance_id: Some("pod-1".into()),
            generation: 7,
            interval: Duration::from_millis(20),
            session_timeout: Duration::from_secs(30),
            shared: shared.clone(),
        }
    }

    /// The coordinator answers NOT_COORDINATOR; FindCoordinator names another broker; the
    /// member heartbeats there with the same member id and generation, and is not rejoining.
    #[tokio::test]
    async fn a_heartbeat_follows_its_coordinator_to_another_broker() {
        let (old_listener, old) = listen().await;
        let (new_listener, new) = listen().await;
        let (old_tx, mut old_beats) = mpsc::unbounded_channel();
        let (new_tx, mut new_beats) = mpsc::unbounded_channel();
        let brokers = [
            fake_coordinator(
                old_listener,
                KafkaCode::NOT_COORDINATOR,
                new.clone(),
                old_tx,
            ),
            fake_coordinator(new_listener, KafkaCode::NONE, new.clone(), new_tx),
        ];
        let shared = Arc::new(Mutex::new(Shared::default()));
        let task = tokio::spawn(heartbeat(&old, &shared).run());
        let expected = Beat {
            member_id: "m-1".into(),
            generation: 7,
            instance: Some("pod-1".into()),
        };
        let first = tokio::time::timeout(DEADLINE, old_beats.recv())
            .await
            .unwrap();
        assert_eq!(first.as_ref(), Some(&expected));
        for _ in 0..3 {
            let beat = tokio::time::timeout(DEADLINE, new_beats.recv())
                .await
                .unwrap();
            assert_eq!(beat.as_ref(), Some(&expected));
        }
        assert!(!task.is_finished(), "the heartbeat task goes on");
        {
            let shared = shared.lock().unwrap();
            assert!(!shared.rejoin && !shared.reset_member && !shared.instance_fenced);
            assert!(
                shared.lost_coordinator,
                "the member's commits look again too"
            );
        }
        task.abort();
        brokers.iter().for_each(JoinHandle::abort);
    }

    /// FENCED_INSTANCE_ID ends the heartbeat and marks the member fenced, not rejoining.
    #[tokio::test]
    async fn a_fenced_instance_stops_heartbeating_and_does_not_rejoin() {
        let (listener, addr) = listen().await;
        let (tx, mut beats) = mpsc::unbounded_channel();
        let broker = fake_coordinator(listener, KafkaCode::FENCED_INSTANCE_ID, addr.clone(), tx);
        let shared = Arc::new(Mutex::new(Shared::default()));
        let task = tokio::spawn(heartbeat(&addr, &shared).run());
        tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap();
        assert!(beats.recv().await.is_some());
        let shared = shared.lock().unwrap();
        assert!(shared.instance_fenced);
        assert!(
            !shared.rejoin,
            "a fenced instance must not rejoin on its own"
        );
        broker.abort();
    }

    /// The APIs of the fake group coordinator, all with non-flexible headers.
    const GROUP_COORDINATOR_APIS: &[(ApiKey, i16)] = &[
        (ApiKey::ApiVersions, 3),
        (ApiKey::FindCoordinator, 2),
        (ApiKey::JoinGroup, 5),
        (ApiKey::SyncGroup, 3),
        (ApiKey::Heartbeat, 3),
        (ApiKey::OffsetFetch, 5),
    ];

    /// A fake coordinator of one group on `listener`: the member joins as a follower of
    /// generation 3 owning partition 0 of `t`; OffsetFetch answers
    /// COORDINATOR_LOAD_IN_PROGRESS `failures` times, then offset 5. Answers how many
    /// OffsetFetches it took.
    fn fake_group_coordinator(
        listener: TcpListener,
        addr: String,
        failures: usize,
    ) -> (JoinHandle<()>, Arc<std::sync::atomic::AtomicUsize>) {
        use kafka_protocol::messages::offset_fetch_response::{
            OffsetFetchResponsePartition, OffsetFetchResponseTopic,
        };
        use kafka_protocol::messages::{OffsetFetchResponse, TopicName};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let fetches = Arc::new(AtomicUsize::new(0));
        let counted = fetches.clone();
        let broker = tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let (addr, fetches) = (addr.clone(), counted.clone());
                tokio::spawn(async move {
                    negotiate_with(&mut stream, GROUP_COORDINATOR_APIS).await;
                    while let Ok((header, _)) = read_request_v1(&mut stream).await {
                        let version = header.request_api_version;
                        let mut out = BytesMut::new();
                        match ApiKey::try_from(header.request_api_key).unwrap() {
                            ApiKey::FindCoordinator => {
                                let (host, port) = addr.rsplit_once(':').unwrap();
                                FindCoordinatorResponse::default()
                                    .with_host(sb(host))
                                    .with_port(port.parse().unwrap())
                                    .encode(&mut out, version)
                            }
                            ApiKey::JoinGroup => JoinGroupResponse::default()
                                .with_generation_id(3)
                                .with_protocol_name(Some(sb("range")))
                                .with_member_id(sb("m-1"))
                                .with_leader(sb("m-0"))
                                .encode(&mut out, version),
                            ApiKey::SyncGroup => {
                                let owned = BTreeMap::from([("t".to_string(), vec![0])]);
                                SyncGroupResponse::default()
                                    .with_assignment(encode_assignment(&owned).unwrap())
                                    .encode(&mut out, version)
                            }
                            ApiKey::Heartbeat => {
                                HeartbeatResponse::default().encode(&mut out, version)
                            }
                            ApiKey::OffsetFetch => {
                                let answered = if fetches.fetch_add(1, Ordering::SeqCst) < failures
                                {
                                    OffsetFetchResponse::default().with_error_code(
                                        KafkaCode::COORDINATOR_LOAD_IN_PROGRESS.code(),
                                    )
                                } else {
                                    OffsetFetchResponse::default().with_topics(vec![
                                        OffsetFetchResponseTopic::default()
                                            .with_name(TopicName(sb("t")))
                                            .with_partitions(vec![
                                                OffsetFetchResponsePartition::default()
                                                    .with_partition_index(0)
                                                    .with_committed_offset(5),
                                            ]),
                                    ])
                                };
                                answered.encode(&mut out, version)
                            }
                            key => panic!("unexpected {key:?}"),
                        }
                        .unwrap();
                        write_response(&mut stream, header.correlation_id, &out).await;
                    }
                });
            }
        });
        (broker, fetches)
    }

    /// A partition reader that sends the positions of every fetch to a channel and brings
    /// nothing.
    #[derive(Debug)]
    struct PositionsSeen(mpsc::UnboundedSender<Vec<(TopicPartition, i64)>>);

    impl PartitionReader for PositionsSeen {
        fn fetch(
            &self,
            positions: Vec<(TopicPartition, i64)>,
            wait: Duration,
        ) -> BoxFuture<'_, Result<super::super::Fetched>> {
            let _ = self.0.send(positions);
            Box::pin(async move {
                tokio::time::sleep(wait.min(Duration::from_millis(20))).await;
                Ok(Default::default())
            })
        }

        fn list_offsets(
            &self,
            _topics: Vec<String>,
            _reset: crate::transport::OffsetReset,
        ) -> BoxFuture<'_, Result<BTreeMap<TopicPartition, i64>>> {
            Box::pin(async { Ok(BTreeMap::new()) })
        }
    }

    /// Issue #15: the coordinator cannot answer OffsetFetch right after the member joined
    /// (still loading its offsets). The poll says so (a retriable error), the runner polls
    /// again, and the partition is fetched from its committed offset. Before, the positions
    /// stayed empty and the owned partition was never fetched.
    #[tokio::test]
    async fn a_failed_read_of_committed_offsets_after_joining_is_retried() {
        let (listener, addr) = listen().await;
        let (broker, offset_fetches) = fake_group_coordinator(listener, addr.clone(), 2);
        let (seen, mut fetched) = mpsc::unbounded_channel();
        let settings = Settings {
            brokers: vec![addr],
            client_id: "membership-test".into(),
            request_timeout: Duration::from_secs(5),
            security: Security::default(),
        };
        let options = GroupOptions::new("g", vec!["t".into()]);
        let mut member = ClassicMember::new(options, settings, Box::new(PositionsSeen(seen)))
            .await
            .unwrap();
        let t0 = TopicPartition::new("t", 0);
        let mut polled = Vec::new();
        let deadline = Instant::now() + DEADLINE;
        // As the runner does: a retriable error is polled again.
        let positions = loop {
            assert!(
                Instant::now() < deadline,
                "no fetch of t-0 from offset 5 within {DEADLINE:?}; {} polls, the first {:?}",
                polled.len(),
                &polled[..polled.len().min(4)]
            );
            match member.poll_inner(Duration::from_millis(50)).await {
                Ok(step) => polled.push(format!("{step:?}")),
                Err(e) => {
                    assert!(e.is_retriable(), "{e}");
                    polled.push(format!("error: {e}"));
                }
            }
            if let Ok(positions) = fetched.try_recv()
                && !positions.is_empty()
            {
                break positions;
            }
        };
        assert_eq!(positions, [(t0.clone(), 5)]);
        assert_eq!(polled[0], format!("{:?}", Polled::Assigned(vec![t0])));
        assert!(
            polled[1].contains("COORDINATOR_LOAD_IN_PROGRESS")
                && polled[2].contains("COORDINATOR_LOAD_IN_PROGRESS"),
            "{polled:?}"
        );
        assert_eq!(offset_fetches.load(std::sync::atomic::Ordering::SeqCst), 3);
        member.stop_heartbeat();
        broker.abort();
    }

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

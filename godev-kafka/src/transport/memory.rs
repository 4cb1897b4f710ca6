//! The in-memory backend: partitions, offsets and consumer groups inside the process.
//!
//! It is a product feature, not a mock: unit tests of handlers and the zero-setup demo run on
//! it, so it keeps the guarantees tests rely on. Records of a partition keep their order;
//! each partition has one owner per group at any moment (a rebalance hands out partitions
//! only after every member has given its old ones back); committed offsets change only when
//! a member commits, fenced by generation, and outlive the members. Nothing is persisted:
//! the data lives as long as the [`MemoryTransport`] (and its clones).
//!
//! Assignment is the range assignor per topic over the members sorted by id, as Kafka's
//! default `range` strategy does it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{
    BoxFuture, GroupMember, GroupOptions, OffsetReset, OutgoingRecord, PartitionProgress, Polled,
    Record, TopicPartition, Transport, Unsent,
};
use crate::{Error, Result};

/// The (key, value) pairs of one partition, indexed by offset.
type PartitionLog = Vec<(Option<Vec<u8>>, Vec<u8>)>;

/// Most records one poll returns.
const MAX_POLL_RECORDS: usize = 500;

/// An in-process Kafka stand-in; clones share the same topics and groups.
///
/// # Examples
///
/// ```
/// use godev_kafka::transport::{memory::MemoryTransport, OutgoingRecord, Transport};
///
/// # tokio_test_block_on(async {
/// let transport = MemoryTransport::new(3);
/// transport.create_topic("orders", 6);
/// let record = OutgoingRecord { topic: "orders".into(), partition: 2, key: None, value: b"{}".to_vec() };
/// assert_eq!(transport.produce(record.clone()).await.unwrap(), 0);
/// assert_eq!(transport.produce(record).await.unwrap(), 1);
/// assert_eq!(transport.end_offset("orders", 2), 2);
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MemoryTransport {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct State {
    default_partitions: i32,
    topics: HashMap<String, Vec<PartitionLog>>,
    groups: HashMap<String, Group>,
    next_member: u64,
}

#[derive(Debug, Default)]
struct Group {
    generation: i32,
    rebalance_started: Option<Instant>,
    members: BTreeMap<String, Member>,
    committed: HashMap<TopicPartition, i64>,
}

#[derive(Debug)]
struct Member {
    topics: Vec<String>,
    /// The generation this member's current assignment belongs to.
    generation: i32,
    /// Whether the member gave its partitions back and waits for the new assignment.
    rejoined: bool,
    /// Partitions owned (until the member rejoins a newer generation).
    owned: Vec<TopicPartition>,
    rebalance_timeout: Duration,
}

impl MemoryTransport {
    /// An empty transport; topics created on first use get `default_partitions` partitions.
    pub fn new(default_partitions: i32) -> Self {
        let state = State {
            default_partitions: default_partitions.max(1),
            ..State::default()
        };
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                changed: watch::channel(0).0,
            }),
        }
    }

    /// Creates `topic` with `partitions` partitions, or grows it to that many; existing
    /// records stay where they are. Groups subscribed to it rebalance when it grows.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let mut state = self.lock();
        let log = state.topics.entry(topic.to_owned()).or_default();
        if log.len() >= partitions as usize {
            return;
        }
        log.resize_with(partitions as usize, Vec::new);
        for group in state.groups.values_mut() {
            if group
                .members
                .values()
                .any(|m| m.topics.iter().any(|t| t == topic))
            {
                group.start_rebalance();
            }
        }
        drop(state);
        self.notify();
    }

    /// The offset the next record of `topic` partition `partition` will get.
    pub fn end_offset(&self, topic: &str, partition: i32) -> i64 {
        let state = self.lock();
        state
            .topics
            .get(topic)
            .and_then(|log| log.get(partition as usize))
            .map_or(0, |p| p.len() as i64)
    }

    /// The offset `group` committed for `topic` partition `partition`, if any.
    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        let state = self.lock();
        state
            .groups
            .get(group)?
            .committed
            .get(&TopicPartition::new(topic, partition))
            .copied()
    }

    /// Every record of `topic` partition `partition`, in offset order.
    pub fn records(&self, topic: &str, partition: i32) -> Vec<Record> {
        let state = self.lock();
        let Some(log) = state
            .topics
            .get(topic)
            .and_then(|log| log.get(partition as usize))
        else {
            return Vec::new();
        };
        log.iter()
            .enumerate()
            .map(|(offset, (key, value))| Record {
                topic: topic.to_owned(),
                partition,
                offset: offset as i64,
                key: key.clone(),
                value: value.clone(),
                headers: Vec::new(),
            })
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn notify(&self) {
        self.shared.changed.send_modify(|version| *version += 1);
    }
}

impl State {
    fn partitions(&mut self, topic: &str) -> &mut Vec<PartitionLog> {
        let count = self.default_partitions as usize;
        self.topics
            .entry(topic.to_owned())
            .or_insert_with(|| vec![Vec::new(); count])
    }
}

impl Group {
    fn start_rebalance(&mut self) {
        self.generation += 1;
        self.rebalance_started = Some(Instant::now());
        for member in self.members.values_mut() {
            member.rejoined = false;
        }
    }

    /// Range assignment per topic over the members sorted by id.
    fn assign(
        &self,
        topics: &HashMap<String, Vec<PartitionLog>>,
    ) -> HashMap<String, Vec<TopicPartition>> {
        let mut result: HashMap<String, Vec<TopicPartition>> = self
            .members
            .keys()
            .map(|id| (id.clone(), Vec::new()))
            .collect();
        let all_topics: HashSet<&String> = self.members.values().flat_map(|m| &m.topics).collect();
        let mut all_topics: Vec<&String> = all_topics.into_iter().collect();
        all_topics.sort();
        for topic in all_topics {
            let subscribers: Vec<&String> = self
                .members
                .iter()
                .filter(|(_, m)| m.topics.contains(topic))
                .map(|(id, _)| id)
                .collect();
            let count = topics.get(topic).map_or(0, Vec::len);
            let (per_member, extra) = (count / subscribers.len(), count % subscribers.len());
            let mut next = 0;
            for (index, id) in subscribers.into_iter().enumerate() {
                let take = per_member + usize::from(index < extra);
                let owned = result.get_mut(id).expect("every member has an entry");
                owned.extend(
                    (next..next + take).map(|p| TopicPartition::new(topic.clone(), p as i32)),
                );
                next += take;
            }
        }
        result
    }
}

impl Transport for MemoryTransport {
    fn partition_count<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<i32>> {
        Box::pin(async move { Ok(self.lock().partitions(topic).len() as i32) })
    }

    fn end_offsets<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<BTreeMap<i32, i64>>> {
        Box::pin(async move {
            let mut state = self.lock();
            let partitions = state.partitions(topic);
            Ok((0..)
                .zip(partitions.iter().map(|log| log.len() as i64))
                .collect())
        })
    }

    fn create_topic<'a>(&'a self, topic: &'a str, partitions: i32) -> BoxFuture<'a, Result<()>> {
        // The inherent method: create, or grow to `partitions`.
        MemoryTransport::create_topic(self, topic, partitions);
        Box::pin(async { Ok(()) })
    }

    fn produce(&self, record: OutgoingRecord) -> BoxFuture<'_, std::result::Result<i64, Unsent>> {
        Box::pin(async move {
            let mut state = self.lock();
            let partitions = state.partitions(&record.topic);
            let Some(log) = partitions.get_mut(record.partition as usize) else {
                let error = Error::transport(
                    format!("produce to {}", record.topic),
                    format!(
                        "partition {} does not exist ({} partitions)",
                        record.partition,
                        partitions.len()
                    ),
                    false,
                );
                return Err(Unsent::new(record, error));
            };
            log.push((record.key, record.value));
            let offset = log.len() as i64 - 1;
            drop(state);
            self.notify();
            Ok(offset)
        })
    }

    fn join(&self, options: GroupOptions) -> BoxFuture<'_, Result<Box<dyn GroupMember>>> {
        Box::pin(async move {
            let mut state = self.lock();
            for topic in &options.topics {
                state.partitions(topic);
            }
            state.next_member += 1;
            let member_id = format!("memory-{}-{}", options.group, state.next_member);
            let group = state.groups.entry(options.group.clone()).or_default();
            group.start_rebalance();
            group.members.insert(
                member_id.clone(),
                Member {
                    topics: options.topics.clone(),
                    generation: 0,
                    rejoined: false,
                    owned: Vec::new(),
                    rebalance_timeout: options.rebalance_timeout,
                },
            );
            drop(state);
            self.notify();
            Ok(Box::new(MemoryMember {
                transport: self.clone(),
                options,
                member_id,
                positions: HashMap::new(),
                paused: HashSet::new(),
                revoked_in: None,
                assigned_in: None,
                left: false,
            }) as Box<dyn GroupMember>)
        })
    }

    fn name(&self) -> &'static str {
        "memory"
    }

    fn brokers(&self) -> Vec<String> {
        vec!["memory".to_owned()]
    }
}

/// A member of a consumer group on the [`MemoryTransport`].
#[derive(Debug)]
struct MemoryMember {
    transport: MemoryTransport,
    options: GroupOptions,
    member_id: String,
    positions: HashMap<TopicPartition, i64>,
    paused: HashSet<TopicPartition>,
    /// The generation whose rebalance this member already reported as a revocation.
    revoked_in: Option<i32>,
    /// The generation whose assignment this member already reported.
    assigned_in: Option<i32>,
    left: bool,
}

enum Step {
    Ready(Polled),
    Wait,
}

impl MemoryMember {
    fn fenced(&self, generation: i32) -> Error {
        Error::Fenced {
            group: self.options.group.clone(),
            generation,
        }
    }

    /// One non-blocking step of the member's state machine.
    fn step(&mut self) -> Result<Step> {
        let transport = self.transport.clone();
        let mut state = transport.lock();
        let State { groups, topics, .. } = &mut *state;
        let group = groups
            .get_mut(&self.options.group)
            .ok_or_else(|| self.fenced(0))?;
        evict_late_members(group);
        let generation = group.generation;
        let member = group
            .members
            .get_mut(&self.member_id)
            .ok_or_else(|| self.fenced(generation))?;
        if member.generation != generation {
            if !member.owned.is_empty() && !member.rejoined && self.revoked_in != Some(generation) {
                // Give the partitions back first; the runner commits, then polls again.
                self.revoked_in = Some(generation);
                self.paused.clear();
                self.positions.clear();
                return Ok(Step::Ready(Polled::Revoked(member.owned.clone())));
            }
            member.rejoined = true;
            member.owned.clear();
            if !group.members.values().all(|m| m.rejoined) {
                return Ok(Step::Wait);
            }
            let assignment = group.assign(topics);
            group.rebalance_started = None;
            for (id, member) in &mut group.members {
                member.generation = generation;
                member.owned = assignment[id].clone();
            }
            transport.notify();
        }
        let member = &group.members[&self.member_id];
        if self.assigned_in != Some(generation) {
            self.assigned_in = Some(generation);
            let owned = member.owned.clone();
            self.positions.clear();
            for tp in &owned {
                let start = match (group.committed.get(tp), self.options.offset_reset) {
                    (Some(offset), _) => *offset,
                    (None, OffsetReset::Earliest) => 0,
                    (None, OffsetReset::Latest) => {
                        topics[&tp.topic][tp.partition as usize].len() as i64
                    }
                };
                self.positions.insert(tp.clone(), start);
            }
            self.paused.clear();
            return Ok(Step::Ready(Polled::Assigned(owned)));
        }
        let mut records = Vec::new();
        let mut owned = member.owned.clone();
        owned.sort();
        for tp in owned.iter().filter(|tp| !self.paused.contains(*tp)) {
            let log = &topics[&tp.topic][tp.partition as usize];
            let position = self.positions.entry(tp.clone()).or_insert(0);
            for (offset, (key, value)) in log.iter().enumerate().skip(*position as usize) {
                if records.len() >= MAX_POLL_RECORDS {
                    break;
                }
                records.push(Record {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    offset: offset as i64,
                    key: key.clone(),
                    value: value.clone(),
                    headers: Vec::new(),
                });
                *position = offset as i64 + 1;
            }
        }
        Ok(if records.is_empty() {
            Step::Wait
        } else {
            Step::Ready(Polled::Records(records))
        })
    }
}

/// Drops members that did not rejoin within their rebalance timeout, as a coordinator does.
fn evict_late_members(group: &mut Group) {
    let Some(started) = group.rebalance_started else {
        return;
    };
    let late: Vec<String> = group
        .members
        .iter()
        .filter(|(_, m)| !m.rejoined && started.elapsed() > m.rebalance_timeout)
        .map(|(id, _)| id.clone())
        .collect();
    if !late.is_empty() {
        for id in late {
            tracing::warn!(member = %id, "member did not rejoin within its rebalance timeout; evicted");
            group.members.remove(&id);
        }
        group.start_rebalance();
    }
}

impl GroupMember for MemoryMember {
    fn poll(&mut self, wait: Duration) -> BoxFuture<'_, Result<Polled>> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + wait;
            let mut changes = self.transport.shared.changed.subscribe();
            loop {
                changes.mark_unchanged();
                if let Step::Ready(polled) = self.step()? {
                    return Ok(polled);
                }
                if tokio::time::timeout_at(deadline, changes.changed())
                    .await
                    .is_err()
                {
                    return Ok(Polled::Idle);
                }
            }
        })
    }

    fn pause(&mut self, partition: &TopicPartition) {
        self.paused.insert(partition.clone());
    }

    fn resume(&mut self, partition: &TopicPartition) {
        self.paused.remove(partition);
    }

    fn seek(&mut self, partition: &TopicPartition, offset: i64) {
        self.positions.insert(partition.clone(), offset);
    }

    fn commit<'a>(&'a mut self, offsets: &'a [(TopicPartition, i64)]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut state = self.transport.lock();
            let group = state
                .groups
                .get_mut(&self.options.group)
                .ok_or_else(|| self.fenced(0))?;
            let generation = group.generation;
            let member = group
                .members
                .get(&self.member_id)
                .ok_or_else(|| self.fenced(generation))?;
            // Owned partitions stay this member's until it rejoins, even while a rebalance is
            // pending, so a commit on revocation is accepted and a late one is not.
            if let Some((tp, _)) = offsets.iter().find(|(tp, _)| !member.owned.contains(tp)) {
                tracing::debug!(partition = %tp, "commit refused: partition not owned");
                return Err(self.fenced(member.generation));
            }
            for (tp, offset) in offsets {
                group.committed.insert(tp.clone(), *offset);
            }
            Ok(())
        })
    }

    fn leave(mut self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            self.leave_now();
            Ok(())
        })
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        let state = self.transport.lock();
        let member = state
            .groups
            .get(&self.options.group)
            .and_then(|g| g.members.get(&self.member_id));
        member.map(|m| m.owned.clone()).unwrap_or_default()
    }

    fn member_id(&self) -> String {
        self.member_id.clone()
    }

    fn progress(&self) -> Vec<(TopicPartition, PartitionProgress)> {
        let state = self.transport.lock();
        self.positions
            .iter()
            .filter_map(|(tp, position)| {
                let log = state.topics.get(&tp.topic)?.get(tp.partition as usize)?;
                Some((
                    tp.clone(),
                    PartitionProgress::new(*position, log.len() as i64),
                ))
            })
            .collect()
    }
}

impl MemoryMember {
    fn leave_now(&mut self) {
        if std::mem::replace(&mut self.left, true) {
            return;
        }
        let mut state = self.transport.lock();
        if let Some(group) = state.groups.get_mut(&self.options.group)
            && group.members.remove(&self.member_id).is_some()
        {
            group.start_rebalance();
        }
        drop(state);
        self.transport.notify();
    }
}

impl Drop for MemoryMember {
    fn drop(&mut self) {
        self.leave_now();
    }
}

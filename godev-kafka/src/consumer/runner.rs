//! The loop of one consumer group: poll, feed partition workers, commit, rebalance, stop.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::GroupStatus;
use super::worker::{GroupEnv, Worker};
use crate::telemetry::{self, LagGauge};
use crate::transport::{
    GroupMember, GroupOptions, Polled, Record, StalledPartition, TopicPartition,
};
use crate::{Error, Result};

/// How long a poll waits while some partition is paused for backpressure.
const BACKPRESSURE_POLL_WAIT: Duration = Duration::from_millis(2);
/// The longest a periodic commit holds the loop: a coordinator that hangs must not stop the
/// fetching. A commit cut off here leaves its offsets to the next one.
const PERIODIC_COMMIT_WAIT: Duration = Duration::from_secs(3);
/// The least time after a periodic commit that failed, or was cut off, before the next.
const COMMIT_RETRY: Duration = Duration::from_secs(5);

/// A partition's worker and the records polled for it but not yet queued.
struct Slot {
    worker: Worker,
    backlog: VecDeque<Record>,
    paused: bool,
    committed: Option<i64>,
    /// The offset of the first record polled for this slot, if one was.
    first_offset: Option<i64>,
    lag: LagGauge,
}

pub(crate) async fn run(
    env: Arc<GroupEnv>,
    status: Arc<Mutex<GroupStatus>>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let settings = &env.settings;
    let mut options = GroupOptions::new(env.group.clone(), env.router.topics());
    options.offset_reset = settings.offset_reset;
    options.session_timeout = settings.session_timeout;
    options.heartbeat_interval = settings.heartbeat_interval;
    options.rebalance_timeout = settings.rebalance_timeout;
    options.group_instance_id = settings.group_instance_id.clone();
    loop {
        // A member that left on its own (stuck, fenced) does not join again once told to stop.
        if stop_requested(&stop) {
            return Ok(());
        }
        let mut member = env.transport.join(options.clone()).await?;
        set_member(&status, &*member);
        match membership(&env, &status, &mut stop, &mut *member).await {
            Exit::Stopped(outcome) => {
                leave(&env, member).await;
                return outcome;
            }
            Exit::Stuck(tp) => {
                // As the Java client does past max.poll.interval.ms: a dynamic member gives its
                // partitions up so the group can go on, and joins again as a new member; a
                // static member sends no LeaveGroup and joins again with its instance id, which
                // hands it the same partitions without a rebalance. Either way the record of
                // the stuck handler is read again.
                leave(&env, member).await;
                tracing::error!(
                    group = %env.group,
                    partition = %tp,
                    max_poll_interval = ?settings.max_poll_interval,
                    static_member = settings.group_instance_id.is_some(),
                    "a handler ran past max_poll_interval; joining the group again (its record will be read again)"
                );
            }
            Exit::Fenced => {
                leave(&env, member).await;
                tracing::warn!(group = %env.group, "the group fenced this member off; joining again");
            }
        }
    }
}

/// Why one membership ended.
enum Exit {
    /// Shutdown, or an error the group stops with.
    Stopped(Result<()>),
    /// A handler of this partition ran past `max_poll_interval`.
    Stuck(TopicPartition),
    /// The group fenced this member off.
    Fenced,
}

async fn leave(env: &GroupEnv, member: Box<dyn GroupMember>) {
    if let Err(error) = member.leave().await {
        tracing::warn!(group = %env.group, error = %error, "leave group failed; partitions move after the session timeout");
    }
}

/// Whether the consumer was told to stop: by [`RunningConsumer::shutdown`] or its drop, which
/// send `true`, or by the sender being gone all the same.
///
/// [`RunningConsumer::shutdown`]: super::RunningConsumer::shutdown
fn stop_requested(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// Consumes as one member until shutdown, an error or a stuck handler; then stops the
/// workers, commits what they handled and clears the assignment.
async fn membership(
    env: &Arc<GroupEnv>,
    status: &Mutex<GroupStatus>,
    stop: &mut watch::Receiver<bool>,
    member: &mut dyn GroupMember,
) -> Exit {
    let settings = &env.settings;
    let mut slots: HashMap<TopicPartition, Slot> = HashMap::new();
    let mut next_commit = Instant::now() + settings.commit_interval;
    let mut failures = 0u32;
    let exit = loop {
        if stop_requested(stop) {
            break Exit::Stopped(Ok(()));
        }
        if let Some(error) = stopped_worker(&mut slots).await {
            break Exit::Stopped(Err(error));
        }
        if let Some(tp) = stuck(&slots, settings.max_poll_interval) {
            break Exit::Stuck(tp);
        }
        // A worker that could not store a dead letter holds its partition back: say so.
        let stalled: Vec<StalledPartition> =
            slots.values().filter_map(|s| s.worker.stalled()).collect();
        if !stalled.is_empty() {
            add_stalled(status, stalled);
        }
        feed(&mut slots, member);
        // While a partition is paused for a full queue, its worker frees room within
        // milliseconds; a long poll would leave it idle for the whole wait (with every
        // partition paused, a backend has nothing to wait on but the clock).
        let wait = if slots.values().any(|slot| slot.paused) {
            BACKPRESSURE_POLL_WAIT
        } else {
            settings.poll_wait
        };
        match member.poll(wait).await {
            Ok(Polled::Records(records)) => {
                for record in records {
                    let tp = TopicPartition::new(record.topic.clone(), record.partition);
                    if let Some(slot) = slots.get_mut(&tp) {
                        slot.first_offset.get_or_insert(record.offset);
                        slot.backlog.push_back(record);
                    }
                }
            }
            Ok(Polled::Assigned(partitions)) => {
                tracing::info!(group = %env.group, partitions = ?partitions, "partitions assigned");
                for tp in &partitions {
                    let worker = Worker::spawn(env.clone(), tp.clone());
                    slots.insert(
                        tp.clone(),
                        Slot {
                            worker,
                            backlog: VecDeque::new(),
                            paused: false,
                            committed: None,
                            first_offset: None,
                            lag: LagGauge::new(&env.group, &tp.topic, tp.partition),
                        },
                    );
                }
                // Incremental protocols (KIP-848) report only the added partitions: the
                // status shows everything owned. The member id may be known only now.
                set_assignment(status, slots.keys().cloned().collect());
                set_member(status, member);
                telemetry::assigned(&env.group, slots.len());
            }
            Ok(Polled::Revoked(partitions)) => {
                tracing::info!(group = %env.group, partitions = ?partitions, "partitions revoked");
                let revoked: Vec<(TopicPartition, Slot)> = partitions
                    .iter()
                    .filter_map(|tp| slots.remove_entry(tp))
                    .collect();
                // A partition paused for backpressure may come back to this member: it
                // must not come back paused, with no slot left to resume it.
                for (tp, slot) in &revoked {
                    if slot.paused {
                        member.resume(tp);
                    }
                    slot.lag.set(0);
                }
                let drained = drain(revoked, settings.shutdown_timeout).await;
                commit(member, &drained).await;
                set_assignment(status, slots.keys().cloned().collect());
                forget_stalled(status, &partitions);
                telemetry::owned(&env.group, slots.len());
            }
            Ok(Polled::Stalled(stalled)) => {
                for stall in &stalled {
                    tracing::error!(
                        group = %env.group,
                        topic = %stall.partition.topic,
                        partition = stall.partition.partition,
                        offset = stall.offset,
                        reason = %stall.reason,
                        "partition stalled: its records at this offset cannot be read; the other partitions go on, and it is read again when next assigned"
                    );
                }
                add_stalled(status, stalled);
            }
            Ok(Polled::Idle) => {}
            // The coordinator no longer knows this member (evicted during a long drain,
            // say): polling it again cannot succeed, so join again as a new member.
            Err(Error::Fenced { .. }) => break Exit::Fenced,
            Err(error) if error.is_retriable() => {
                failures += 1;
                let delay = Duration::from_millis(100 * u64::from(failures.min(50)));
                tracing::warn!(group = %env.group, error = %error, retry_in = ?delay, "poll failed; retrying");
                // Wakes early to stop; the check at the top of the loop ends it.
                let _ = tokio::time::timeout(delay, stop.changed()).await;
                continue;
            }
            Err(error) => break Exit::Stopped(Err(error)),
        }
        failures = 0;
        if Instant::now() >= next_commit {
            let pause = if commit_running(&env.group, member, &mut slots).await {
                settings.commit_interval
            } else {
                settings.commit_interval.max(COMMIT_RETRY)
            };
            next_commit = Instant::now() + pause;
            measure_lag(member, &slots);
            telemetry::in_flight(&env.group, in_flight(&slots));
        }
    };
    if let Exit::Stuck(tp) = &exit
        && let Some(slot) = slots.remove(tp)
    {
        // Its handler will not finish in time; its record stays uncommitted.
        slot.worker.task.abort();
    }
    slots.values().for_each(|slot| slot.lag.set(0));
    telemetry::in_flight(&env.group, 0);
    let drained = drain(slots.drain().collect(), settings.shutdown_timeout).await;
    commit(member, &drained).await;
    set_assignment(status, Vec::new());
    telemetry::owned(&env.group, 0);
    exit
}

/// Sets each owned partition's lag: the high watermark of its last fetch minus the offset
/// after its last handled record (before any, the first polled record's offset, or the
/// fetch position when nothing was polled yet).
fn measure_lag(member: &dyn GroupMember, slots: &HashMap<TopicPartition, Slot>) {
    for (tp, progress) in member.progress() {
        let Some(slot) = slots.get(&tp) else {
            continue;
        };
        let next = slot
            .worker
            .position()
            .or(slot.first_offset)
            .unwrap_or(progress.position);
        slot.lag.set(progress.high_watermark - next);
    }
}

/// Records polled and not handled yet: waiting in a backlog or a worker's queue, or in a
/// handler.
fn in_flight(slots: &HashMap<TopicPartition, Slot>) -> usize {
    slots
        .values()
        .map(|slot| {
            let queued = slot.worker.queue.max_capacity() - slot.worker.queue.capacity();
            slot.backlog.len() + queued + usize::from(slot.worker.busy_for().is_some())
        })
        .sum()
}

/// A partition whose handler has been running on one record for longer than `limit`.
fn stuck(slots: &HashMap<TopicPartition, Slot>, limit: Duration) -> Option<TopicPartition> {
    slots
        .iter()
        .find(|(_, slot)| slot.worker.busy_for().is_some_and(|busy| busy > limit))
        .map(|(tp, _)| tp.clone())
}

/// The error of a worker that stopped on its own (unknown-tag policy `fail`, or a bug).
async fn stopped_worker(slots: &mut HashMap<TopicPartition, Slot>) -> Option<Error> {
    let tp = slots
        .iter()
        .find(|(_, slot)| slot.worker.task.is_finished())?
        .0
        .clone();
    let slot = slots.remove(&tp)?;
    Some(match slot.worker.task.await {
        Ok(Err(error)) => error,
        Ok(Ok(())) => Error::transport(format!("worker of {tp}"), "stopped unexpectedly", false),
        Err(join) => Error::transport(format!("worker of {tp}"), join, false),
    })
}

/// Moves backlog into worker queues; pauses partitions whose queue is full, resumes drained
/// ones.
fn feed(slots: &mut HashMap<TopicPartition, Slot>, member: &mut dyn GroupMember) {
    for (tp, slot) in slots.iter_mut() {
        while let Some(record) = slot.backlog.pop_front() {
            match slot.worker.queue.try_send(record) {
                Ok(()) => {}
                Err(tokio::sync::mpsc::error::TrySendError::Full(record)) => {
                    slot.backlog.push_front(record);
                    break;
                }
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => break,
            }
        }
        let full = !slot.backlog.is_empty();
        if full != slot.paused {
            slot.paused = full;
            if full {
                member.pause(tp)
            } else {
                member.resume(tp)
            }
        }
    }
}

/// Stops workers after their in-flight record, waiting at most `deadline`; returns the
/// commit positions of the partitions that made progress.
async fn drain(
    slots: Vec<(TopicPartition, Slot)>,
    deadline: Duration,
) -> Vec<(TopicPartition, i64)> {
    let until = tokio::time::Instant::now() + deadline;
    let mut positions = Vec::new();
    for (tp, slot) in slots {
        slot.worker
            .stopping
            .store(true, std::sync::atomic::Ordering::Release);
        drop(slot.worker.queue);
        let mut task = slot.worker.task;
        match tokio::time::timeout_at(until, &mut task).await {
            Ok(Ok(Err(error))) => {
                tracing::error!(partition = %tp, error = %error, "consumer stopped")
            }
            Ok(_) => {}
            Err(_) => {
                tracing::warn!(partition = %tp, "handler still running at the shutdown deadline; its record will be read again");
                task.abort();
            }
        }
        if let Some(position) =
            Some(slot.worker.done.load(std::sync::atomic::Ordering::Acquire)).filter(|p| *p >= 0)
            && slot.committed != Some(position)
        {
            positions.push((tp, position));
        }
    }
    positions
}

/// Commits what the workers handled since the last commit, waiting at most
/// [`PERIODIC_COMMIT_WAIT`]; answers whether nothing was left uncommitted.
async fn commit_running(
    group: &str,
    member: &mut dyn GroupMember,
    slots: &mut HashMap<TopicPartition, Slot>,
) -> bool {
    let positions: Vec<(TopicPartition, i64)> = slots
        .iter()
        .filter_map(|(tp, slot)| {
            slot.worker
                .position()
                .filter(|p| slot.committed != Some(*p))
                .map(|p| (tp.clone(), p))
        })
        .collect();
    if positions.is_empty() {
        return true;
    }
    let committed = match tokio::time::timeout(PERIODIC_COMMIT_WAIT, commit(member, &positions))
        .await
    {
        Ok(committed) => committed,
        Err(_) => {
            tracing::warn!(
                %group,
                "commit unanswered after {PERIODIC_COMMIT_WAIT:?} (the coordinator may hang); fetching goes on, and the next commit, in {COMMIT_RETRY:?}, takes these offsets too"
            );
            false
        }
    };
    if committed {
        for (tp, position) in positions {
            if let Some(slot) = slots.get_mut(&tp) {
                slot.committed = Some(position);
            }
        }
    }
    committed
}

async fn commit(member: &mut dyn GroupMember, positions: &[(TopicPartition, i64)]) -> bool {
    if positions.is_empty() {
        return true;
    }
    match member.commit(positions).await {
        Ok(()) => {
            tracing::debug!(?positions, "offsets committed");
            true
        }
        Err(error) => {
            tracing::warn!(error = %error, "commit failed; the records after the last commit will be read again");
            false
        }
    }
}

fn set_member(status: &Mutex<GroupStatus>, member: &dyn GroupMember) {
    if let Ok(mut status) = status.lock() {
        status.member_id = Some(member.member_id());
    }
}

fn add_stalled(status: &Mutex<GroupStatus>, stalled: Vec<StalledPartition>) {
    if let Ok(mut status) = status.lock() {
        for stall in stalled {
            status.stalled.retain(|s| s.partition != stall.partition);
            status.stalled.push(stall);
        }
        status.stalled.sort_by(|a, b| a.partition.cmp(&b.partition));
    }
}

/// Revoked partitions are no longer stalled here: their next owner reads them again.
fn forget_stalled(status: &Mutex<GroupStatus>, revoked: &[TopicPartition]) {
    if let Ok(mut status) = status.lock() {
        status.stalled.retain(|s| !revoked.contains(&s.partition));
    }
}

fn set_assignment(status: &Mutex<GroupStatus>, mut partitions: Vec<TopicPartition>) {
    partitions.sort();
    if let Ok(mut status) = status.lock() {
        status.assigned = partitions;
    }
}

//! The fault suite on a three-node cluster (issue #15): replication factor 3,
//! `min.insync.replicas=2`, acks all, 50,000 keyed events per backend with a grouped consumer
//! running, and one fault at a time:
//!
//! 1. the leader of loaded partitions SIGKILLed, then restarted;
//! 2. the group coordinator's node SIGKILLed, then restarted;
//! 3. a leader SIGSTOPped for 30 s (a hung broker), then resumed;
//! 4. a rolling restart of all three nodes (graceful stop, start on its data, back in sync).
//!
//! The backends that share a broker version run side by side on one cluster and take the same
//! fault: `cluster_3::` runs `kafka_3` and `native_3` on Kafka 3.9, `cluster_4::` runs
//! `native_4` and `confluent_4` on Kafka 4. Each backend must lose no acknowledged event, fail
//! no send (every outage here is shorter than the delivery timeout), place every acknowledged
//! event at its acknowledged offset, and, when its producer is idempotent, write none twice.
//! Each prints a `FIGURES <backend>::cluster_<fault>:` line.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use godev_kafka::consumer::RunningConsumer;
use godev_kafka::{Consumer, TopicMap, testing};
use tokio::task::JoinHandle;

use super::{
    Progress, Sent, TOPIC, check_log, consume_to_end, consumer_settings, figure, handled,
    handled_count, on_tick, produce_stream, producer, sample,
};
use crate::support::own_cluster::{NODES, OwnCluster};
use crate::support::{self, Backend};

/// Events each backend sends per fault.
const EVENTS: u64 = 50_000;
const PARTITIONS: i32 = 6;
/// The fault comes once every backend finished this many sends.
const FAULT_AT: u64 = 8_000;
/// How long the paused leader stays paused.
const PAUSE: Duration = Duration::from_secs(30);
/// How long after the resume the `kafka` backend may take to follow (see [`follow_bound`]):
/// its calls held by the hung node end once the node answers them, and the producer's
/// metadata then names the new leaders.
const KAFKA_AFTER_RESUME: Duration = Duration::from_secs(30);
/// The members' session timeout. A coordinator's failover takes the controller's fencing of
/// the dead broker (`broker.session.timeout.ms`, 9 s) plus loading the group on the new
/// coordinator: 9 to 14 s measured here, within this + 5 s.
const SESSION: Duration = Duration::from_secs(15);
/// The clients' request timeout (the native producer's delivery timeout is four of them).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the cluster may take to have every replica in sync again.
const RECOVERY: Duration = Duration::from_secs(120);

/// One fault of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL the node leading loaded partitions of every backend's topic.
    LeaderKilled,
    /// SIGKILL the node coordinating every backend's group.
    CoordinatorKilled,
    /// SIGSTOP a leading node for [`PAUSE`], then SIGCONT it.
    LeaderPaused,
    /// Stop and restart each node in turn.
    RollingRestart,
}

impl Fault {
    /// Its name in figures.
    fn name(self) -> &'static str {
        match self {
            Fault::LeaderKilled => "cluster_leader_sigkilled",
            Fault::CoordinatorKilled => "cluster_coordinator_sigkilled",
            Fault::LeaderPaused => "cluster_leader_paused",
            Fault::RollingRestart => "cluster_rolling_restart",
        }
    }

    /// Sends per window and the period of windows: faults that last long get a slower
    /// load, so that it runs through them.
    fn pace(self) -> (u64, Duration) {
        match self {
            Fault::LeaderKilled | Fault::CoordinatorKilled => (250, Duration::from_millis(100)),
            Fault::LeaderPaused | Fault::RollingRestart => (100, Duration::from_millis(100)),
        }
    }
}

/// The cluster of the running case: one at a time (the machine has two cores); started for
/// the first case of its version and stopped when a case of the other version comes, or
/// by [`stop_cluster`].
static CLUSTER: Mutex<Option<OwnCluster>> = Mutex::new(None);

/// Runs `f` on a three-node cluster of Kafka `version`. A case that fails may leave a node
/// down: its cluster is stopped, and the next case starts a fresh one.
fn with_cluster(version: &'static str, f: impl FnOnce(&OwnCluster)) {
    let mut slot = CLUSTER.lock().unwrap_or_else(PoisonError::into_inner);
    if slot.as_ref().is_some_and(|c| c.version() != version) {
        *slot = None;
    }
    let cluster = slot.get_or_insert_with(|| {
        let base = if version == "3.9" { 19301 } else { 19401 };
        OwnCluster::start(version, base)
    });
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| f(cluster))) {
        *slot = None;
        resume_unwind(panic);
    }
}

/// Stops the cluster of the last case, if any.
pub fn stop_cluster() {
    *CLUSTER.lock().unwrap_or_else(PoisonError::into_inner) = None;
}

/// The backends of Kafka `version` in this build.
fn backends_of(version: &str) -> Vec<Backend> {
    super::backends()
        .into_iter()
        .filter(|b| b.kafka_version() == version)
        .collect()
}

/// How long after the fault `backend` may take to follow the moved leadership: handle
/// records its producer wrote to the new leaders.
///
/// While a node hangs, a client must pass over it within its request timeout
/// ([`REQUEST_TIMEOUT`]), so every backend but `kafka` follows while the node still hangs.
/// The kafka crate's socket timeout is fixed at 120 s, longer than the pause: its calls to
/// the hung node return once the node is resumed, and the README says so.
fn follow_bound(fault: Fault, backend: Backend) -> Duration {
    match (fault, backend) {
        (Fault::LeaderPaused, Backend::Kafka) => PAUSE + KAFKA_AFTER_RESUME,
        (Fault::LeaderPaused, _) => PAUSE,
        _ => RECOVERY,
    }
}

/// Runs `fault` on the cluster of Kafka `version` with every backend of that version.
pub fn test(version: &'static str, fault: Fault) {
    let backends = backends_of(version);
    assert!(!backends.is_empty(), "no backend of Kafka {version} built");
    with_cluster(version, |cluster| {
        crate::runtime().block_on(run(cluster, &backends, fault));
    });
}

/// One backend's load: its topic, group, consumer and producer.
struct Load {
    backend: Backend,
    topic: String,
    group: String,
    running: RunningConsumer,
    progress: Arc<Progress>,
    production: JoinHandle<Sent>,
    /// The longest time without a new acknowledgement, then without a new handled record.
    gaps: JoinHandle<(Duration, Duration)>,
}

impl Load {
    fn sends(&self) -> u64 {
        self.progress.acked.load(Ordering::Relaxed) + self.progress.failed.load(Ordering::Relaxed)
    }
}

async fn run(cluster: &OwnCluster, backends: &[Backend], fault: Fault) {
    cluster.wait_healthy(RECOVERY).await;
    let groups = groups_with_one_coordinator(cluster, backends).await;
    let mut loads = Vec::new();
    for (&backend, group) in backends.iter().zip(groups) {
        loads.push(start_load(cluster, backend, group, fault).await);
    }
    for load in &loads {
        support::wait_until(
            &format!("{FAULT_AT} sends of {}", load.backend.client()),
            Duration::from_secs(120),
            || {
                let done = load.sends();
                async move { done >= FAULT_AT }
            },
        )
        .await;
    }
    let fault_figures = inject(cluster, &loads, fault).await;
    cluster.wait_healthy(RECOVERY).await;
    for load in loads {
        let figures = fault_figures.get(&load.topic).cloned().unwrap_or_default();
        finish(cluster, load, fault, figures).await;
    }
}

/// A group name per backend, all coordinated by one node, so that killing it hits each.
async fn groups_with_one_coordinator(cluster: &OwnCluster, backends: &[Backend]) -> Vec<String> {
    let name = |b: Backend| testing::unique_name(&format!("cluster-{}-group", b.client()));
    let first = name(backends[0]);
    let coordinator = cluster.coordinator(&first).await;
    let mut groups = vec![first];
    for &backend in &backends[1..] {
        let mut tries = 0;
        loop {
            let group = name(backend);
            if cluster.coordinator(&group).await == coordinator {
                groups.push(group);
                break;
            }
            tries += 1;
            assert!(
                tries < 100,
                "no group name coordinated by node {coordinator}"
            );
        }
    }
    groups
}

async fn start_load(cluster: &OwnCluster, backend: Backend, group: String, fault: Fault) -> Load {
    let topic = testing::unique_name(&format!("cluster-{}", backend.client()));
    cluster.create_topic(&topic, PARTITIONS).await;
    let transport = |id| super::transport(backend, cluster.bootstrap(), id, REQUEST_TIMEOUT);
    let consumer =
        Consumer::builder_shared(transport("godev-kafka-cluster-consumer").await, &group)
            .topics(TopicMap::from_iter([(TOPIC, topic.as_str())]))
            .settings(consumer_settings(backend, SESSION))
            .handler::<on_tick>()
            .build()
            .unwrap();
    let running = consumer.start();
    support::wait_until(
        &format!("the assignment of {}", backend.client()),
        Duration::from_secs(60),
        || {
            let n: usize = running.status().iter().map(|g| g.assigned.len()).sum();
            async move { n == PARTITIONS as usize }
        },
    )
    .await;
    let progress = Arc::new(Progress::default());
    let (window, period) = fault.pace();
    let production = tokio::spawn(produce_stream(
        producer(transport("godev-kafka-cluster-producer").await, &topic),
        EVENTS,
        window,
        period,
        Duration::from_millis(250),
        progress.clone(),
    ));
    let gaps = tokio::spawn(longest_gaps(progress.clone(), topic.clone()));
    Load {
        backend,
        topic,
        group,
        running,
        progress,
        production,
        gaps,
    }
}

/// Samples acknowledgements and handled records every 100 ms until every event is
/// acknowledged or failed and handled; answers the longest time each stood still.
async fn longest_gaps(progress: Arc<Progress>, topic: String) -> (Duration, Duration) {
    let (mut acked, mut handled) = (0, 0);
    let (mut acked_at, mut handled_at) = (Instant::now(), Instant::now());
    let (mut ack_gap, mut handled_gap) = (Duration::ZERO, Duration::ZERO);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = Instant::now();
        let a = progress.acked.load(Ordering::Relaxed);
        let done = a + progress.failed.load(Ordering::Relaxed) >= EVENTS;
        if a != acked || done {
            ack_gap = ack_gap.max(now - acked_at);
            (acked, acked_at) = (a, now);
        }
        let h = handled_count(&topic) as u64;
        if h != handled || h >= acked.max(1) && done {
            handled_gap = handled_gap.max(now - handled_at);
            (handled, handled_at) = (h, now);
        }
        if done && h >= a {
            return (ack_gap, handled_gap);
        }
    }
}

/// The node that leads at least one partition of every load's topic (preferring `prefer`,
/// else the leader of partition 0 of the first), and those partitions per topic.
async fn leading_victim(
    cluster: &OwnCluster,
    loads: &[Load],
    prefer: Option<i32>,
) -> (i32, BTreeMap<String, Vec<i32>>) {
    let mut states = BTreeMap::new();
    for load in loads {
        states.insert(load.topic.clone(), cluster.partitions(&load.topic).await);
    }
    let first = prefer.unwrap_or(states[&loads[0].topic][&0].leader);
    let mut candidates = vec![first];
    candidates.extend((1..=NODES as i32).filter(|n| *n != first));
    for node in candidates {
        let led: BTreeMap<String, Vec<i32>> = states
            .iter()
            .map(|(topic, parts)| {
                let mine = parts
                    .iter()
                    .filter(|(_, p)| p.leader == node)
                    .map(|(partition, _)| *partition)
                    .collect();
                (topic.clone(), mine)
            })
            .collect();
        if led.values().all(|ps: &Vec<i32>| !ps.is_empty()) {
            return (node, led);
        }
    }
    panic!("no node leads a partition of every topic: {states:?}");
}

/// Applies `fault`, restores the cluster, and answers each topic's fault figures.
async fn inject(
    cluster: &OwnCluster,
    loads: &[Load],
    fault: Fault,
) -> BTreeMap<String, Vec<(&'static str, String)>> {
    let mut figures: BTreeMap<String, Vec<(&'static str, String)>> = BTreeMap::new();
    match fault {
        Fault::LeaderKilled | Fault::LeaderPaused => {
            // A hung node that also coordinates the groups holds commits too: the harder
            // case, so the pause takes it when it leads partitions of every topic.
            let coordinator = cluster.coordinator(&loads[0].group).await;
            let prefer = (fault == Fault::LeaderPaused).then_some(coordinator);
            let (victim, led) = leading_victim(cluster, loads, prefer).await;
            let t0 = Instant::now();
            if fault == Fault::LeaderKilled {
                tokio::task::block_in_place(|| cluster.kill(victim));
            } else {
                tokio::task::block_in_place(|| cluster.pause(victim));
            }
            eprintln!("{}: node {victim} hit, leading {led:?}", fault.name());
            // Leadership moves off the victim; producer and consumer follow it: on the
            // victim's partitions, records written after the move (beyond the end offsets the
            // new leaders gave then) are handled.
            let others: Vec<i32> = (1..=NODES as i32).filter(|n| *n != victim).collect();
            let paused = fault == Fault::LeaderPaused;
            let mut resumed = !paused;
            let mut moved = None;
            let mut ends = BTreeMap::new();
            let mut last_report = Instant::now();
            let mut followed: BTreeMap<String, Duration> = BTreeMap::new();
            while followed.len() < loads.len() {
                if moved.is_none() {
                    let all_moved = {
                        let mut ok = true;
                        for load in loads {
                            let parts = cluster.partitions_via(&load.topic, &others).await;
                            ok &= !parts.is_empty()
                                && parts.values().all(|p| p.leader >= 0 && p.leader != victim);
                        }
                        ok
                    };
                    if all_moved {
                        moved = Some(t0.elapsed());
                        // Asked of the others: the victim may hang.
                        let others: Vec<String> =
                            others.iter().map(|n| cluster.address(*n)).collect();
                        ends = ends_of(&others.join(","), loads).await;
                    }
                }
                for load in loads {
                    if moved.is_none() || followed.contains_key(&load.topic) {
                        continue;
                    }
                    let mut newest: BTreeMap<i32, i64> = BTreeMap::new();
                    for h in handled(&load.topic) {
                        let o = newest.entry(h.partition).or_insert(-1);
                        *o = (*o).max(h.offset);
                    }
                    let caught_up = led[&load.topic].iter().all(|p| {
                        newest.get(p).copied().unwrap_or(-1) >= ends[&load.topic][p] + 100
                    });
                    if caught_up {
                        followed.insert(load.topic.clone(), t0.elapsed());
                    }
                }
                let report = || {
                    loads
                        .iter()
                        .map(|l| {
                            format!(
                                "{}: acked {}, failed {}, handled {}",
                                l.backend.client(),
                                l.progress.acked.load(Ordering::Relaxed),
                                l.progress.failed.load(Ordering::Relaxed),
                                handled_count(&l.topic)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                if last_report.elapsed() >= Duration::from_secs(5) {
                    eprintln!(
                        "{:>5.1}s after the fault: {}",
                        t0.elapsed().as_secs_f64(),
                        report()
                    );
                    last_report = Instant::now();
                }
                let how = if paused { "paused" } else { "killed" };
                for load in loads {
                    let bound = follow_bound(fault, load.backend);
                    assert!(
                        followed.contains_key(&load.topic) || t0.elapsed() < bound,
                        "{}: {} did not follow within {bound:?} of node {victim} being {how}; \
                         leadership moved: {moved:?}; clients that followed it: {followed:?}; \
                         {}; new leaders' ends then: {ends:?}",
                        fault.name(),
                        load.backend.client(),
                        report()
                    );
                }
                if !resumed && t0.elapsed() >= PAUSE {
                    tokio::task::block_in_place(|| cluster.resume(victim));
                    resumed = true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if paused {
                if !resumed {
                    tokio::time::sleep(PAUSE.saturating_sub(t0.elapsed())).await;
                    tokio::task::block_in_place(|| cluster.resume(victim));
                }
            } else {
                tokio::task::block_in_place(|| cluster.restart(victim));
            }
            for load in loads {
                let f = figures.entry(load.topic.clone()).or_default();
                f.push(("victim_node", victim.to_string()));
                f.push(("victim_coordinates", (coordinator == victim).to_string()));
                f.push(("victim_partitions", led[&load.topic].len().to_string()));
                f.push(("leaders_moved_s", secs(moved)));
                f.push(("followed_s", secs(followed.get(&load.topic).copied())));
            }
        }
        Fault::CoordinatorKilled => {
            let victim = cluster.coordinator(&loads[0].group).await;
            let mut before = BTreeMap::new();
            let mut members = BTreeMap::new();
            for load in loads {
                before.insert(load.topic.clone(), committed(cluster, load).await);
                members.insert(load.topic.clone(), member_ids(&load.running));
            }
            let t0 = Instant::now();
            tokio::task::block_in_place(|| cluster.kill(victim));
            eprintln!("{}: coordinator node {victim} killed", fault.name());
            // Each group finds its new coordinator and commits through it again.
            let bound = SESSION + Duration::from_secs(5);
            let mut recovered: BTreeMap<String, Duration> = BTreeMap::new();
            while recovered.len() < loads.len() {
                for load in loads {
                    if recovered.contains_key(&load.topic) {
                        continue;
                    }
                    let now = committed(cluster, load).await;
                    let was = &before[&load.topic];
                    if now.iter().any(|(p, o)| was.get(p).is_none_or(|w| o > w)) {
                        for (p, w) in was {
                            assert!(
                                now.get(p).is_some_and(|o| o >= w),
                                "{}: partition {p} of {} went back from committed {w} to {:?}",
                                load.backend.client(),
                                load.topic,
                                now.get(p)
                            );
                        }
                        recovered.insert(load.topic.clone(), t0.elapsed());
                    }
                }
                assert!(
                    t0.elapsed() < RECOVERY,
                    "{}: groups not committing again {:?} after their coordinator (node {victim}) died: {recovered:?}",
                    fault.name(),
                    t0.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            tokio::task::block_in_place(|| cluster.restart(victim));
            for load in loads {
                let took = recovered[&load.topic];
                assert!(
                    took <= bound,
                    "{}: the group committed again only {took:?} after its coordinator died (bound: session timeout + 5 s = {bound:?})",
                    load.backend.client()
                );
                let f = figures.entry(load.topic.clone()).or_default();
                f.push(("coordinator_node", victim.to_string()));
                f.push(("commits_again_s", secs(Some(took))));
                f.push((
                    "rejoined",
                    (member_ids(&load.running) != members[&load.topic]).to_string(),
                ));
            }
        }
        Fault::RollingRestart => {
            let mut took = Vec::new();
            for node in 1..=NODES as i32 {
                let t0 = Instant::now();
                tokio::task::block_in_place(|| {
                    cluster.stop(node);
                    cluster.restart(node);
                });
                cluster.wait_healthy(RECOVERY).await;
                took.push(format!("{:.1}", t0.elapsed().as_secs_f64()));
                for load in loads {
                    assert!(
                        !load.running.has_stopped(),
                        "{}: the consumer stopped during the restart of node {node}: {:?}",
                        load.backend.client(),
                        load.running.status()
                    );
                }
                eprintln!(
                    "rolling restart: node {node} back in sync after {}s",
                    took.last().unwrap()
                );
            }
            for load in loads {
                figures
                    .entry(load.topic.clone())
                    .or_default()
                    .push(("restarts_s", took.join(",")));
            }
        }
    }
    figures
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{:.1}", d.as_secs_f64()))
}

/// Each load's end offsets now, asked through `bootstrap` (a new leader may answer
/// OFFSET_NOT_AVAILABLE for a moment).
async fn ends_of(bootstrap: &str, loads: &[Load]) -> BTreeMap<String, BTreeMap<i32, i64>> {
    let mut ends = BTreeMap::new();
    for load in loads {
        let deadline = Instant::now() + Duration::from_secs(30);
        let e = loop {
            match testing::end_offsets(bootstrap, &load.topic).await {
                Ok(e) => break e,
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("end offsets of {}: {e}", load.topic),
            }
        };
        ends.insert(load.topic.clone(), e);
    }
    ends
}

/// The load's group's committed offsets (empty while its coordinator cannot be reached).
async fn committed(cluster: &OwnCluster, load: &Load) -> BTreeMap<i32, i64> {
    tokio::time::timeout(
        Duration::from_secs(5),
        testing::committed_offsets(cluster.bootstrap(), &load.group, &load.topic),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .unwrap_or_default()
}

fn member_ids(running: &RunningConsumer) -> Vec<Option<String>> {
    running.status().into_iter().map(|g| g.member_id).collect()
}

/// Waits for the load's production and consumption to end, checks what the backend must
/// guarantee, and prints its figures.
async fn finish(
    cluster: &OwnCluster,
    load: Load,
    fault: Fault,
    mut figures: Vec<(&'static str, String)>,
) {
    let Load {
        backend,
        topic,
        group,
        running,
        progress,
        production,
        gaps,
    } = load;
    let who = backend.client();
    let sent = tokio::time::timeout(Duration::from_secs(300), production)
        .await
        .unwrap_or_else(|_| panic!("{who}: production did not finish in time"))
        .expect("producer task");
    assert_eq!(sent.acked.len() + sent.failed.len(), EVENTS as usize);
    assert!(
        sent.failed.is_empty(),
        "{who}: {} sends failed through the fault (every outage was shorter than the delivery timeout), e.g. {}",
        sent.failed.len(),
        sample(&sent.failed, 10)
    );
    let records = consume_to_end(who, cluster.bootstrap(), &group, &topic, &running).await;
    running.shutdown().await.expect("clean shutdown");
    progress.stop.store(true, Ordering::Relaxed);
    let (ack_gap, handled_gap) = gaps.await.expect("gap sampler");

    let handled = handled(&topic);
    let log = check_log(who, backend, &topic, &handled, &sent, records);
    let mut fig = vec![
        ("events", EVENTS.to_string()),
        ("acked", sent.acked.len().to_string()),
        ("send_errors", sent.failed.len().to_string()),
        ("lost", log.lost.to_string()),
        ("misplaced", log.misplaced.to_string()),
        ("handled", handled.len().to_string()),
        ("duplicates", log.redelivered.to_string()),
        ("written_twice", log.written_twice.len().to_string()),
        ("longest_ack_gap_s", secs(Some(ack_gap))),
        ("longest_handled_gap_s", secs(Some(handled_gap))),
    ];
    fig.append(&mut figures);
    figure(backend, fault.name(), &fig);
}

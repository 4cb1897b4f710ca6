//! Static membership (KIP-345) and coordinator re-discovery of the classic group member, on
//! real brokers, at the transport level ([`GroupMember`] directly): the `kafka` backend on
//! Kafka 3.9 (`kafka_3::`) and the `native` backend on Kafka 3.9 (`native_3::`) and Kafka 4
//! (`native_4::`).
//!
//! Run: `GODEV_KAFKA_BROKERS=127.0.0.1:9092 GODEV_KAFKA4_BROKERS=127.0.0.1:9094 cargo test -p godev-kit --features broker-tests,native --test native_static_member`.
//! The coordinator-restart test starts a broker of its own (Kafka 3.9 on port 19292, Kafka 4
//! on 19294) with `dev/kafka`, and kills and restarts it.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use godev_kafka::transport::{
    GroupMember, GroupOptions, OutgoingRecord, Polled, TopicPartition, Transport,
};
use godev_kafka::{KafkaCode, testing};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, GroupId, JoinGroupRequest, JoinGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use support::Backend;
use support::own_broker::OwnBroker;
use support::raw::Raw;
use tokio::task::JoinHandle;

// `kafka_3::`, `native_3::` and `native_4::` of each test: the backends that speak the
// classic group protocol.
on_backends!(kafka_3 => Kafka, native_3 => Native3, native_4 => Native4; [
    a_restarted_static_member_gets_its_partitions_back_with_no_rebalance,
    a_restarted_dynamic_member_triggers_a_rebalance,
    a_second_process_with_the_same_instance_id_is_fenced,
]);

mod native_3_own_broker {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_member_keeps_its_generation_when_its_coordinator_restarts() {
        super::a_member_keeps_its_generation_when_its_coordinator_restarts(
            super::Backend::Native3,
            19292,
        )
        .await
    }
}

mod native_4_own_broker {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_member_keeps_its_generation_when_its_coordinator_restarts() {
        super::a_member_keeps_its_generation_when_its_coordinator_restarts(
            super::Backend::Native4,
            19294,
        )
        .await
    }
}

const PARTITIONS: i32 = 4;
/// The members' heartbeat interval: the window of the negative checks is two of these.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Long enough that no member of these tests is evicted while it is away or being watched.
const SESSION: Duration = Duration::from_secs(30);
/// How long one poll of a watched member waits.
const POLL: Duration = Duration::from_millis(200);

/// What one poll of a watched member brought (records and idle polls are left out but for
/// the records' positions).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Assigned(BTreeSet<i32>),
    Revoked(BTreeSet<i32>),
    /// A poll failed: the error's code, whether it is retriable, and its text.
    Failed(Option<KafkaCode>, bool, String),
    /// The watcher committed what it polled: whether the commit succeeded.
    Committed(bool),
}

impl Step {
    fn is_rebalance(&self) -> bool {
        matches!(self, Step::Assigned(_) | Step::Revoked(_))
    }
}

#[derive(Debug, Default)]
struct Seen {
    steps: Vec<(Instant, Step)>,
    /// (partition, offset) of every record polled.
    records: Vec<(i32, i64)>,
}

/// A member polled continuously by a task of its own, which notes every step (and commits
/// what it polled, when asked to); [`Watched::stop`] hands the member back.
struct Watched {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<Box<dyn GroupMember>>,
}

fn partitions(tps: &[TopicPartition]) -> BTreeSet<i32> {
    tps.iter().map(|tp| tp.partition).collect()
}

fn watch(mut member: Box<dyn GroupMember>, commit: bool) -> Watched {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn({
        let (seen, stop) = (seen.clone(), stop.clone());
        async move {
            while !stop.load(Ordering::SeqCst) {
                let polled = member.poll(POLL).await;
                let step = match polled {
                    Ok(Polled::Idle) => continue,
                    Ok(Polled::Assigned(tps)) => Step::Assigned(partitions(&tps)),
                    Ok(Polled::Revoked(tps)) => Step::Revoked(partitions(&tps)),
                    Ok(Polled::Records(records)) => {
                        seen.lock()
                            .unwrap()
                            .records
                            .extend(records.iter().map(|r| (r.partition, r.offset)));
                        if !commit {
                            continue;
                        }
                        let mut next: Vec<(TopicPartition, i64)> = Vec::new();
                        for r in &records {
                            let tp = TopicPartition::new(r.topic.clone(), r.partition);
                            next.retain(|(t, _)| *t != tp);
                            next.push((tp, r.offset + 1));
                        }
                        Step::Committed(member.commit(&next).await.is_ok())
                    }
                    Ok(other) => panic!("nothing here stalls: {other:?}"),
                    Err(e) => {
                        let step = Step::Failed(e.kafka_code(), e.is_retriable(), e.to_string());
                        // A backoff, so that a member that fails at once does not spin.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        step
                    }
                };
                seen.lock().unwrap().steps.push((Instant::now(), step));
            }
            member
        }
    });
    Watched { seen, stop, task }
}

impl Watched {
    fn steps(&self) -> Vec<(Instant, Step)> {
        self.seen.lock().unwrap().steps.clone()
    }

    /// The partitions owned now: an eager member's assignment is whole, a revocation
    /// takes everything it names.
    fn owned(&self) -> BTreeSet<i32> {
        let mut owned = BTreeSet::new();
        for (_, step) in self.steps() {
            match step {
                Step::Assigned(p) => owned = p,
                Step::Revoked(p) => owned.retain(|tp| !p.contains(tp)),
                _ => {}
            }
        }
        owned
    }

    fn rebalances(&self) -> Vec<Step> {
        self.steps()
            .into_iter()
            .map(|(_, s)| s)
            .filter(Step::is_rebalance)
            .collect()
    }

    fn failures(&self) -> Vec<(Option<KafkaCode>, bool, String)> {
        self.steps()
            .into_iter()
            .filter_map(|(_, s)| match s {
                Step::Failed(code, retriable, text) => Some((code, retriable, text)),
                _ => None,
            })
            .collect()
    }

    fn records(&self) -> BTreeSet<(i32, i64)> {
        self.seen.lock().unwrap().records.iter().copied().collect()
    }

    async fn stop(self) -> Box<dyn GroupMember> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the watcher task")
    }
}

fn options(backend: Backend, group: &str, topic: &str, instance: Option<&str>) -> GroupOptions {
    let mut options = backend.group_options(group, topic);
    options.session_timeout = SESSION;
    options.heartbeat_interval = HEARTBEAT;
    options.group_instance_id = instance.map(str::to_owned);
    options
}

/// A topic of [`PARTITIONS`] partitions and members `a` then `b` (static with instance ids
/// "a" and "b" if `static_members`), polled until each owns two partitions. `a` joined first,
/// so it leads the group: the coordinator keeps its first member as the leader while it
/// rejoins each rebalance.
async fn two_members(
    backend: Backend,
    static_members: bool,
) -> (Arc<dyn Transport>, String, String, Watched, Watched) {
    let brokers = backend.brokers().await;
    let topic = testing::unique_name("static-member");
    let group = testing::unique_name("g-static");
    testing::create_topic(&brokers, &topic, PARTITIONS)
        .await
        .unwrap();
    let transport = backend.transport(&brokers).await;
    let instance = |id| static_members.then_some(id);
    let a = transport
        .join(options(backend, &group, &topic, instance("a")))
        .await
        .unwrap();
    let a = watch(a, false);
    support::wait_until(
        "a owns every partition",
        Duration::from_secs(30),
        || async { a.owned().len() == PARTITIONS as usize },
    )
    .await;
    let b = transport
        .join(options(backend, &group, &topic, instance("b")))
        .await
        .unwrap();
    let b = watch(b, false);
    support::wait_until(
        "a and b own two partitions each",
        Duration::from_secs(60),
        || async {
            let (a, b) = (a.owned(), b.owned());
            a.len() == 2 && b.len() == 2 && a.is_disjoint(&b)
        },
    )
    .await;
    (transport, group, topic, a, b)
}

/// Stops `old` and lets it leave (a static member sends nothing), then joins a member of
/// `options` in its place; answers the new member once it is assigned.
async fn restart(transport: &Arc<dyn Transport>, old: Watched, options: GroupOptions) -> Watched {
    let member = old.stop().await;
    member.leave().await.expect("leave");
    let new = watch(transport.join(options).await.unwrap(), false);
    support::wait_until(
        "the restarted member's assignment",
        Duration::from_secs(60),
        || async { !new.rebalances().is_empty() },
    )
    .await;
    new
}

/// Watches `other` for two heartbeat intervals from now (called once the restarted member is
/// assigned), failing as soon as it reports a rebalance step beyond the `before` it had
/// reported before the restart.
///
/// The window is enough: a rebalance that the restart caused started at the latest when the
/// coordinator took the restarted member's JoinGroup, before that member got its assignment.
/// It reaches `other` through its next heartbeat, within one [`HEARTBEAT`] (plus a round
/// trip), as REBALANCE_IN_PROGRESS, and `other`'s next poll, at most [`POLL`] later, reports
/// it as `Polled::Revoked`. Two heartbeat intervals cover both.
async fn assert_no_rebalance(other: &Watched, before: usize, name: &str) {
    let until = Instant::now() + 2 * HEARTBEAT;
    loop {
        let rebalances = other.rebalances();
        assert_eq!(
            rebalances.len(),
            before,
            "{name} rebalanced when the other member restarted: {:?}",
            &rebalances[before.min(rebalances.len())..]
        );
        if Instant::now() >= until {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issue #13 item 4: a static member that restarts within the session timeout gets its
/// partitions back, and the other member sees no rebalance: first the leader restarts (back,
/// it is told to skip the assignment, KIP-814), then the follower. The returning leader still
/// leads: it notices the topic growing and rebalances the group onto the new partitions.
async fn a_restarted_static_member_gets_its_partitions_back_with_no_rebalance(backend: Backend) {
    let (transport, group, topic, a, b) = two_members(backend, true).await;
    let options = |id| options(backend, &group, &topic, Some(id));

    // The leader restarts.
    let (a_owned, b_before) = (a.owned(), b.rebalances().len());
    let a = restart(&transport, a, options("a")).await;
    assert_eq!(
        a.rebalances(),
        [Step::Assigned(a_owned)],
        "the restarted leader got its old partitions"
    );
    assert_no_rebalance(&b, b_before, "the follower").await;

    // The follower restarts.
    let (b_owned, a_before) = (b.owned(), a.rebalances().len());
    let b = restart(&transport, b, options("b")).await;
    assert_eq!(
        b.rebalances(),
        [Step::Assigned(b_owned)],
        "the restarted follower got its old partitions"
    );
    assert_no_rebalance(&a, a_before, "the leader").await;

    // The returning leader assigned nothing, but it watches the partition counts.
    support::add_partitions(backend, &backend.brokers().await, &topic, 6).await;
    support::wait_until(
        "the group rebalanced onto six partitions",
        Duration::from_secs(60),
        || async {
            let (a, b) = (a.owned(), b.owned());
            a.len() == 3 && b.len() == 3 && a.is_disjoint(&b)
        },
    )
    .await;
    for member in [a, b] {
        assert!(member.failures().is_empty(), "{:?}", member.failures());
        member.stop().await.leave().await.unwrap();
    }
}

/// The control of the test above: a dynamic member restarted the same way (gone without
/// leaving, a new one in its place) rebalances the group, and the other member sees it.
async fn a_restarted_dynamic_member_triggers_a_rebalance(backend: Backend) {
    let (transport, group, topic, a, b) = two_members(backend, false).await;
    let b_before = b.rebalances().len();
    let member = a.stop().await;
    drop(member); // gone without leaving, as a crashed process
    let a = restart_dynamic(&transport, options(backend, &group, &topic, None)).await;
    // The window of `assert_no_rebalance`, which the rebalance must fall in.
    let until = Instant::now() + 2 * HEARTBEAT;
    support::wait_until(
        "the other member to see the rebalance",
        until.saturating_duration_since(Instant::now()),
        || async { b.rebalances().len() > b_before },
    )
    .await;
    assert!(matches!(b.rebalances()[b_before], Step::Revoked(_)));
    for member in [a, b] {
        member.stop().await.leave().await.unwrap();
    }
}

/// A dynamic member of `options`, once assigned.
async fn restart_dynamic(transport: &Arc<dyn Transport>, options: GroupOptions) -> Watched {
    let new = watch(transport.join(options).await.unwrap(), false);
    support::wait_until(
        "the new member's assignment",
        Duration::from_secs(60),
        || async { !new.owned().is_empty() },
    )
    .await;
    new
}

/// A second process joining with the instance id of a live member takes the membership over
/// (the coordinator hands it the first one's partitions), and the first stops with a clear
/// FENCED_INSTANCE_ID error, on every poll and commit: it never rejoins on its own, which
/// would fence the second in turn.
async fn a_second_process_with_the_same_instance_id_is_fenced(backend: Backend) {
    let brokers = backend.brokers().await;
    let topic = testing::unique_name("static-fenced");
    let group = testing::unique_name("g-fenced");
    testing::create_topic(&brokers, &topic, PARTITIONS)
        .await
        .unwrap();
    let transport = backend.transport(&brokers).await;
    // A member with instance id `pod-0`, once it owns every partition.
    let pod_0 = |which: &'static str| {
        let (transport, options) = (&transport, options(backend, &group, &topic, Some("pod-0")));
        async move {
            let member = watch(transport.join(options).await.unwrap(), false);
            support::wait_until(which, Duration::from_secs(30), || async {
                member.owned().len() == PARTITIONS as usize
            })
            .await;
            member
        }
    };
    let first = pod_0("the first owns everything").await;
    let second = pod_0("the second owns everything").await;
    // The first learns it at its next heartbeat, then every poll fails the same way.
    support::wait_until(
        "the first to fail three polls",
        Duration::from_secs(10) + 2 * HEARTBEAT,
        || async { first.failures().len() >= 3 },
    )
    .await;
    for (code, retriable, text) in first.failures() {
        assert_eq!(code, Some(KafkaCode::FENCED_INSTANCE_ID), "{text}");
        assert!(!retriable, "{text}");
        assert!(
            text.contains(&group) && text.contains("`pod-0`"),
            "the error names the group and the instance id: {text}"
        );
    }
    assert_eq!(
        first.rebalances(),
        [Step::Assigned((0..PARTITIONS).collect())],
        "the fenced member did not rejoin"
    );
    let mut fenced = first.stop().await;
    let tp = TopicPartition::new(topic.clone(), 0);
    let e = fenced.commit(&[(tp.clone(), 0)]).await.unwrap_err();
    assert_eq!(e.kafka_code(), Some(KafkaCode::FENCED_INSTANCE_ID), "{e}");
    fenced.leave().await.unwrap();

    // The second holds the generation: it commits, and saw no rebalance.
    let mut second_member = second.stop().await;
    second_member.commit(&[(tp, 0)]).await.unwrap();
    second_member.leave().await.unwrap();
}

/// Produces `n` records, spread over the partitions of `topic`.
async fn produce(
    transport: &Arc<dyn Transport>,
    topic: &str,
    partitions: i32,
    from: usize,
    n: usize,
) {
    for i in from..from + n {
        transport
            .produce(OutgoingRecord {
                topic: topic.to_owned(),
                partition: i as i32 % partitions,
                key: None,
                value: format!("r-{i}").into_bytes(),
            })
            .await
            .expect("produce");
    }
    transport.flush().await.unwrap();
}

/// The coordinator of a member's group (the only broker) is killed and restarted: the member
/// finds it again and goes on with its member id and generation. Kafka keeps the group
/// (members, generation, assignment) in `__consumer_offsets` and, loading it again, gives
/// every member a fresh session timeout; the member heartbeats to it again well within its
/// 60 s session. It does not rejoin: no Revoked or Assigned after the first assignment; the
/// records produced after the restart are polled, and the commits of that generation are
/// taken (a commit of a stale generation is refused).
///
/// A restarted single broker (3.9 and 4.x) loads its groups before it opens its listener, so
/// here the member only meets refused connections, then a coordinator that knows it. A
/// coordinator that answers NOT_COORDINATOR and is found elsewhere is the unit test
/// `a_heartbeat_follows_its_coordinator_to_another_broker` (membership.rs, fake brokers).
async fn a_member_keeps_its_generation_when_its_coordinator_restarts(backend: Backend, port: u16) {
    let broker = tokio::task::block_in_place(|| OwnBroker::start(backend.kafka_version(), port));
    let brokers = broker.address().to_owned();
    let topic = testing::unique_name("coordinator-restart");
    let group = testing::unique_name("g-restart");
    testing::create_topic(&brokers, &topic, 2).await.unwrap();
    let producer = backend.transport(&brokers).await;
    produce(&producer, &topic, 2, 0, 10).await;

    let transport = backend.transport(&brokers).await;
    let mut options = options(backend, &group, &topic, None);
    options.session_timeout = Duration::from_secs(60);
    let member = watch(transport.join(options).await.unwrap(), true);
    let committed = || async {
        let offsets = testing::committed_offsets(&brokers, &group, &topic).await;
        offsets.map_or(0, |o| o.values().sum::<i64>())
    };
    support::wait_until(
        "the first 10 records, polled and committed",
        Duration::from_secs(30),
        || async { member.records().len() == 10 && committed().await == 10 },
    )
    .await;

    let down = tokio::task::block_in_place(|| {
        broker.kill();
        broker.restart()
    });
    let restarted = Instant::now();
    eprintln!("broker down and restarted in {:.1}s", down.as_secs_f64());
    let producer = backend.transport(&brokers).await;
    produce(&producer, &topic, 2, 10, 10).await;
    support::wait_until(
        "the 10 records produced after the restart, polled and committed",
        Duration::from_secs(60),
        || async {
            member.records().len() == 20
                && member
                    .steps()
                    .iter()
                    .any(|(at, s)| *at > restarted && *s == Step::Committed(true))
        },
    )
    .await;
    assert_eq!(
        member.rebalances(),
        [Step::Assigned([0, 1].into())],
        "the member rejoined: {:?}",
        member.steps()
    );
    assert_eq!(committed().await, 20);
    member.stop().await.leave().await.unwrap();
}

// The KIP-814 check is about the broker, not a backend: Kafka 3.9 and Kafka 4.
on_backends!(kafka_3_broker => Kafka, kafka_4_broker => Native4; [
    before_kip_814_a_returning_static_leader_is_named_by_its_old_member_id,
]);

/// The raw request of the KIP-814 check.
impl Raw {
    /// JoinGroup of version `version` as a new static member with instance id `instance`,
    /// retried while the coordinator is not ready (for 30 s at most).
    async fn join_static(
        &mut self,
        version: i16,
        group: &str,
        instance: &str,
        topic: &str,
    ) -> JoinGroupResponse {
        // A consumer-protocol v0 subscription to `topic`.
        let mut metadata = BytesMut::new();
        metadata.put_i16(0);
        metadata.put_i32(1);
        metadata.put_i16(topic.len() as i16);
        metadata.put_slice(topic.as_bytes());
        metadata.put_i32(-1);
        let metadata = metadata.freeze();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let request = JoinGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
                .with_session_timeout_ms(30_000)
                .with_rebalance_timeout_ms(20_000)
                .with_group_instance_id(Some(StrBytes::from_string(instance.to_owned())))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![
                    JoinGroupRequestProtocol::default()
                        .with_name(StrBytes::from_static_str("range"))
                        .with_metadata(metadata.clone()),
                ]);
            let joined: JoinGroupResponse = self.call(ApiKey::JoinGroup, version, &request).await;
            // A broker that has just started creates __consumer_offsets on the first group's
            // request: until it is loaded, it answers one of these.
            let retry = [
                KafkaCode::COORDINATOR_LOAD_IN_PROGRESS,
                KafkaCode::COORDINATOR_NOT_AVAILABLE,
                KafkaCode::NOT_COORDINATOR,
            ];
            if !retry.contains(&KafkaCode::new(joined.error_code)) || Instant::now() >= deadline {
                assert_eq!(joined.error_code, 0, "JoinGroup v{version}");
                return joined;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// What the member's `role` relies on, asked of the broker itself: a static leader that comes
/// back to a stable group with JoinGroup v8 (before KIP-814) is answered with the leader named
/// by its old member id (`<instance id>-<UUID>`), no members and no `skip_assignment`, so that
/// it does not assign; with v9 the leader is its new member id, with every member and
/// `skip_assignment`. Kafka 3.9 (the Scala coordinator) and Kafka 4 (the new one) alike.
async fn before_kip_814_a_returning_static_leader_is_named_by_its_old_member_id(backend: Backend) {
    let brokers = backend.brokers().await;
    let bootstrap = brokers.split(',').next().unwrap();
    let topic = testing::unique_name("static-kip-814");
    let group = testing::unique_name("g-kip-814");
    testing::create_topic(&brokers, &topic, 1).await.unwrap();

    // The first incarnation: the only member, so the leader; it completes the generation.
    let mut first = Raw::connect(bootstrap, "static-member-raw").await;
    let joined = first.join_static(8, &group, "x", &topic).await;
    let first_id = joined.member_id.to_string();
    assert_eq!(joined.leader.as_str(), first_id);
    assert!(first_id.starts_with("x-"), "{first_id}");
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.clone())))
        .with_generation_id(joined.generation_id)
        .with_member_id(joined.member_id.clone())
        .with_group_instance_id(Some(StrBytes::from_static_str("x")))
        .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
        .with_protocol_name(joined.protocol_name.clone())
        .with_assignments(vec![
            SyncGroupRequestAssignment::default()
                .with_member_id(joined.member_id.clone())
                .with_assignment(Bytes::from_static(&[
                    0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
                ])),
        ]);
    let synced: SyncGroupResponse = first.call(ApiKey::SyncGroup, 5, &sync).await;
    assert_eq!(synced.error_code, 0, "SyncGroup");
    let generation = joined.generation_id;

    // Back with JoinGroup v8: named by the old id, nothing to assign, same generation.
    let mut second = Raw::connect(bootstrap, "static-member-raw").await;
    let back = second.join_static(8, &group, "x", &topic).await;
    assert_ne!(back.member_id.as_str(), first_id);
    assert_eq!(back.leader.as_str(), first_id, "v8 names the old member id");
    assert!(back.members.is_empty(), "{:?}", back.members);
    assert!(!back.skip_assignment);
    assert_eq!(back.generation_id, generation, "no rebalance");

    // Back with JoinGroup v9: named by the new id, told to skip the assignment.
    let mut third = Raw::connect(bootstrap, "static-member-raw").await;
    let again = third.join_static(9, &group, "x", &topic).await;
    assert_eq!(again.leader, again.member_id, "v9 names the new member id");
    assert!(again.skip_assignment);
    assert_eq!(again.members.len(), 1);
    assert_eq!(again.generation_id, generation, "no rebalance");
}

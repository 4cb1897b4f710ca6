//! Consumer groups at the transport level ([`GroupMember`] directly), on real brokers, for
//! every backend: the `kafka` backend's classic (eager) groups on Kafka 3.9 (`kafka_3::`) and
//! the `confluent` backend's KIP-848 groups on Kafka 4 (`confluent_4::`).
//!
//! Run: `GODEV_KAFKA_BROKERS=127.0.0.1:9092 GODEV_KAFKA4_BROKERS=127.0.0.1:9094 cargo test -p godev-kit --features broker-tests,confluent --test kafka_group`
//! (without the feature `confluent` only the `kafka_3::` tests build, and only
//! `GODEV_KAFKA_BROKERS` is needed).
//!
//! The two protocols report rebalances differently: an eager member revokes everything and
//! [`Polled::Assigned`] lists its whole new assignment; a KIP-848 member revokes only the
//! partitions that move and `Assigned` lists the ones added. The members here therefore keep
//! their assignment as "add what is assigned, remove what is revoked", which is exact for both.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use godev_kafka::Error;
use godev_kafka::testing;
use godev_kafka::transport::{GroupMember, OutgoingRecord, Polled, TopicPartition, Transport};
use support::Backend;
use tokio::task::JoinSet;

on_each_backend!(
    one_member_reads_and_commits_everything,
    three_members_share_rebalance_and_lose_nothing,
    a_commit_of_a_stale_generation_is_fenced,
);

const PARTITIONS: i32 = 6;

/// Produces `n` records `tag-i` spread over the partitions; answers (partition, offset) of each.
async fn produce(
    transport: &Arc<dyn Transport>,
    topic: &str,
    tag: &str,
    n: usize,
) -> BTreeSet<(i32, i64)> {
    let mut set = JoinSet::new();
    for i in 0..n {
        let transport = transport.clone();
        let record = OutgoingRecord {
            topic: topic.to_owned(),
            partition: (i as i32) % PARTITIONS,
            key: Some(format!("k{i}").into_bytes()),
            value: format!("{tag}-{i}").into_bytes(),
        };
        set.spawn(async move {
            let partition = record.partition;
            (partition, transport.produce(record).await.expect("produce"))
        });
    }
    let mut written = BTreeSet::new();
    while let Some(r) = set.join_next().await {
        assert!(
            written.insert(r.unwrap()),
            "two records got the same offset"
        );
    }
    transport.flush().await.unwrap();
    written
}

/// Commit offsets for `records`: per partition, the offset after the last one.
fn next_offsets(records: &[godev_kafka::transport::Record]) -> Vec<(TopicPartition, i64)> {
    let mut next: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    for r in records {
        let tp = TopicPartition::new(r.topic.clone(), r.partition);
        let e = next.entry(tp).or_default();
        *e = (*e).max(r.offset + 1);
    }
    next.into_iter().collect()
}

/// Applies a rebalance step to `owned`: an assignment adds (eager backends list the whole
/// assignment after revoking everything, KIP-848 lists the added partitions), a revocation
/// removes.
fn apply(owned: &mut BTreeSet<TopicPartition>, polled: &Polled) {
    match polled {
        Polled::Assigned(added) => owned.extend(added.iter().cloned()),
        Polled::Revoked(gone) => owned.retain(|tp| !gone.contains(tp)),
        Polled::Stalled(stalled) => panic!("nothing here should stall: {stalled:?}"),
        _ => {}
    }
}

/// Polls `member` until it owns `n` partitions (no records are expected meanwhile).
async fn poll_until_owning(member: &mut dyn GroupMember, n: usize) -> BTreeSet<TopicPartition> {
    let mut owned = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while owned.len() != n {
        assert!(
            Instant::now() < deadline,
            "no assignment of {n} partitions within 30 s: {owned:?}"
        );
        let polled = member.poll(Duration::from_millis(200)).await.expect("poll");
        assert!(
            !matches!(polled, Polled::Records(_)),
            "records before an assignment: {polled:?}"
        );
        apply(&mut owned, &polled);
    }
    owned
}

/// The first poll answer that is not [`Polled::Idle`], within 30 s.
async fn next_step(member: &mut dyn GroupMember) -> Polled {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match member.poll(Duration::from_millis(200)).await.expect("poll") {
            Polled::Idle => assert!(Instant::now() < deadline, "nothing within 30 s"),
            step => return step,
        }
    }
}

async fn one_member_reads_and_commits_everything(backend: Backend) {
    let brokers = backend.brokers().await;
    let topic = testing::unique_name("group-one");
    let group = testing::unique_name("g-one");
    testing::create_topic(&brokers, &topic, PARTITIONS)
        .await
        .unwrap();
    let transport = backend.transport(&brokers).await;
    assert_eq!(transport.partition_count(&topic).await.unwrap(), PARTITIONS);

    let written = produce(&transport, &topic, "one", 300).await;
    assert_eq!(written.len(), 300);

    let mut member = transport
        .join(backend.group_options(&group, &topic))
        .await
        .unwrap();
    let mut owned = BTreeSet::new();
    let mut seen: BTreeSet<(i32, i64)> = BTreeSet::new();
    let mut last: HashMap<i32, i64> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < written.len() {
        assert!(
            Instant::now() < deadline,
            "saw {} of {}",
            seen.len(),
            written.len()
        );
        let polled = member.poll(Duration::from_millis(500)).await.unwrap();
        apply(&mut owned, &polled);
        if let Polled::Records(records) = polled {
            for r in &records {
                let tp = TopicPartition::new(r.topic.clone(), r.partition);
                assert!(
                    owned.contains(&tp),
                    "a record of {tp}, not owned: {owned:?}"
                );
                if let Some(prev) = last.insert(r.partition, r.offset) {
                    assert!(r.offset > prev, "partition {} out of order", r.partition);
                }
                assert!(seen.insert((r.partition, r.offset)), "duplicate {r:?}");
            }
            member.commit(&next_offsets(&records)).await.unwrap();
        }
    }
    assert_eq!(seen, written);
    assert_eq!(owned.len(), PARTITIONS as usize, "the only member owns all");
    let committed = testing::committed_offsets(&brokers, &group, &topic)
        .await
        .unwrap();
    let ends = testing::end_offsets(&brokers, &topic).await.unwrap();
    assert_eq!(committed, ends);
    member.leave().await.unwrap();
}

/// What the members of one group saw, shared between their tasks. Members are named by the
/// test (`m0`, `m1`, ...); `ids` holds the member id the coordinator gave each.
#[derive(Default)]
struct Board {
    owner: HashMap<i32, String>,
    violations: Vec<String>,
    seen: BTreeSet<(i32, i64)>,
    assignments: HashMap<String, BTreeSet<i32>>,
    ids: HashMap<String, String>,
}

impl Board {
    fn assign(&mut self, name: &str, partitions: &[TopicPartition]) {
        for tp in partitions {
            if let Some(other) = self.owner.insert(tp.partition, name.to_owned())
                && other != name
            {
                let v = format!("{tp} owned by {other} and {name}");
                self.violations.push(v);
            }
            self.assignments
                .entry(name.to_owned())
                .or_default()
                .insert(tp.partition);
        }
    }

    fn revoke(&mut self, name: &str, partitions: &[TopicPartition]) {
        for tp in partitions {
            if self.owner.get(&tp.partition).map(String::as_str) == Some(name) {
                self.owner.remove(&tp.partition);
            }
            if let Some(owned) = self.assignments.get_mut(name) {
                owned.remove(&tp.partition);
            }
        }
        if self.assignments.get(name).is_some_and(BTreeSet::is_empty) {
            self.assignments.remove(name);
        }
    }
}

/// A member polling in its own task until `stop`; then it drops its partitions and leaves.
fn spawn_member(
    name: String,
    mut member: Box<dyn GroupMember>,
    board: Arc<Mutex<Board>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::SeqCst) {
            match member.poll(Duration::from_millis(200)).await.expect("poll") {
                Polled::Assigned(ps) => {
                    let mut b = board.lock().unwrap();
                    b.ids.insert(name.clone(), member.member_id());
                    b.assign(&name, &ps);
                }
                Polled::Revoked(ps) => board.lock().unwrap().revoke(&name, &ps),
                Polled::Records(records) => {
                    {
                        let mut b = board.lock().unwrap();
                        for r in &records {
                            if b.owner.get(&r.partition) != Some(&name) {
                                let v = format!(
                                    "{name} got a record of {} it does not own",
                                    r.partition
                                );
                                b.violations.push(v);
                            }
                            b.seen.insert((r.partition, r.offset));
                        }
                    }
                    match member.commit(&next_offsets(&records)).await {
                        Ok(()) | Err(Error::Fenced { .. }) => {}
                        Err(e) => panic!("commit: {e}"),
                    }
                }
                Polled::Stalled(stalled) => panic!("{name}: nothing should stall: {stalled:?}"),
                _ => {}
            }
        }
        {
            let mut b = board.lock().unwrap();
            let owned: Vec<i32> = b
                .assignments
                .get(&name)
                .map(|ps| ps.iter().copied().collect())
                .unwrap_or_default();
            for partition in owned {
                if b.owner.get(&partition) == Some(&name) {
                    b.owner.remove(&partition);
                }
            }
            b.assignments.remove(&name);
        }
        member.leave().await.expect("leave");
    })
}

async fn wait_seen(board: &Arc<Mutex<Board>>, written: &BTreeSet<(i32, i64)>, what: &str) {
    support::wait_until(what, Duration::from_secs(60), || {
        let done = written.is_subset(&board.lock().unwrap().seen);
        async move { done }
    })
    .await;
}

/// Waits until `n` members own all partitions, evenly (what both protocols' assignors settle
/// on; a KIP-848 group may pass through uneven states on the way, an eager one cannot).
async fn wait_members(board: &Arc<Mutex<Board>>, n: usize) {
    support::wait_until(
        &format!("{n} members sharing all partitions evenly"),
        Duration::from_secs(60),
        || {
            let b = board.lock().unwrap();
            let even = PARTITIONS as usize / n;
            let done = b.assignments.len() == n
                && b.assignments.values().all(|ps| ps.len() == even)
                && b.owner.len() == PARTITIONS as usize;
            async move { done }
        },
    )
    .await;
}

/// `kafka-consumer-groups.sh --describe --group G` of the backend's Kafka version.
async fn describe(
    backend: Backend,
    brokers: &str,
    group: &str,
    extra: &[&str],
) -> std::process::Output {
    let bootstrap = brokers.split(',').next().unwrap();
    let mut args = vec![
        "--bootstrap-server",
        bootstrap,
        "--describe",
        "--group",
        group,
    ];
    args.extend_from_slice(extra);
    support::kafka_tool(backend, "consumer-groups", &args).await
}

/// How `--describe --members --verbose` shows a member's partitions of `topic`: Kafka 3.9's
/// tool as `(0,1)`; Kafka 4's as `topic:0,1` (in the current-assignment column for classic
/// members, and in the target-assignment column too for KIP-848 ones).
#[cfg_attr(
    not(any(feature = "confluent", feature = "native")),
    allow(unused_variables)
)]
fn shown_assignment(backend: Backend, topic: &str, partitions: &BTreeSet<i32>) -> String {
    let list: Vec<String> = partitions.iter().map(ToString::to_string).collect();
    match backend {
        Backend::Kafka => format!("({})", list.join(",")),
        #[cfg(feature = "confluent")]
        Backend::Confluent => format!("{topic}:{}", list.join(",")),
        #[cfg(feature = "native")]
        Backend::Native3 => format!("({})", list.join(",")),
        #[cfg(feature = "native")]
        Backend::Native4 => format!("{topic}:{}", list.join(",")),
    }
}

async fn three_members_share_rebalance_and_lose_nothing(backend: Backend) {
    let brokers = backend.brokers().await;
    let topic = testing::unique_name("group-three");
    let group = testing::unique_name("g-three");
    testing::create_topic(&brokers, &topic, PARTITIONS)
        .await
        .unwrap();
    let transport = backend.transport(&brokers).await;
    let board = Arc::new(Mutex::new(Board::default()));

    let mut written = produce(&transport, &topic, "first", 240).await;
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    for n in 0..3 {
        let member = transport
            .join(backend.group_options(&group, &topic))
            .await
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        tasks.push(spawn_member(
            format!("m{n}"),
            member,
            board.clone(),
            stop.clone(),
        ));
        stops.push(stop);
    }
    wait_members(&board, 3).await;
    wait_seen(&board, &written, "the first records").await;

    // Kafka's own tool sees our members, their assignment and the offsets.
    let output = describe(backend, &brokers, &group, &["--members", "--verbose"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    {
        // One line per member: its id and its partitions.
        let b = board.lock().unwrap();
        for (name, partitions) in &b.assignments {
            let id = &b.ids[name];
            assert!(!id.is_empty(), "{name} has a member id");
            let expected = shown_assignment(backend, &topic, partitions);
            let line = stdout.lines().find(|l| l.contains(id.as_str()));
            let line = line.unwrap_or_else(|| panic!("member {id} missing in:\n{stdout}"));
            assert!(
                line.contains(&expected),
                "{id} should own {expected}:\n{stdout}"
            );
        }
    }
    let output = describe(backend, &brokers, &group, &[]).await;
    let offsets = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}\n{offsets}");
    // Per partition: group, topic, partition, committed offset, log end offset, lag, member.
    let rows = offsets.lines().filter(|l| l.contains(&topic)).count();
    assert_eq!(rows, PARTITIONS as usize, "offsets missing in:\n{offsets}");

    // One member leaves: the other two take its partitions.
    stops[2].store(true, Ordering::SeqCst);
    tasks.pop().unwrap().await.unwrap();
    wait_members(&board, 2).await;
    written.extend(produce(&transport, &topic, "after-leave", 120).await);
    wait_seen(&board, &written, "records after a member left").await;

    // A member joins: a rebalance, and still nothing is lost.
    let member = transport
        .join(backend.group_options(&group, &topic))
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    tasks.push(spawn_member(
        "m3".into(),
        member,
        board.clone(),
        stop.clone(),
    ));
    stops[2] = stop;
    written.extend(produce(&transport, &topic, "during-join", 120).await);
    wait_members(&board, 3).await;
    written.extend(produce(&transport, &topic, "after-join", 120).await);
    wait_seen(&board, &written, "records after a member joined").await;

    for stop in &stops {
        stop.store(true, Ordering::SeqCst);
    }
    for task in tasks {
        task.await.unwrap();
    }
    let b = board.lock().unwrap();
    assert!(b.violations.is_empty(), "{:#?}", b.violations);
    assert_eq!(written.len(), 600);
    assert!(written.is_subset(&b.seen));
}

/// A member that stops polling is dropped from the group after the rebalance timeout (the
/// coordinator's, and in KIP-848 also the client's `max.poll.interval.ms`, both set from
/// [`GroupOptions::rebalance_timeout`](godev_kafka::transport::GroupOptions)); its commits
/// must then be refused, not overwrite the new owner's offsets. After it polls again it
/// reports the loss, rejoins and gets a share.
async fn a_commit_of_a_stale_generation_is_fenced(backend: Backend) {
    let brokers = backend.brokers().await;
    let topic = testing::unique_name("group-fence");
    let group = testing::unique_name("g-fence");
    testing::create_topic(&brokers, &topic, 2).await.unwrap();
    let transport = backend.transport(&brokers).await;
    let mut options = backend.group_options(&group, &topic);
    options.rebalance_timeout = Duration::from_secs(3);

    let mut first = transport.join(options.clone()).await.unwrap();
    let assigned: Vec<TopicPartition> = poll_until_owning(&mut *first, 2)
        .await
        .into_iter()
        .collect();
    let offsets: Vec<_> = assigned.iter().map(|tp| (tp.clone(), 0)).collect();
    first
        .commit(&offsets)
        .await
        .expect("commit of the current generation");

    // A second member joins and keeps polling; the first one does not poll, so the group
    // moves on without it after the rebalance timeout.
    let second = transport.join(options).await.unwrap();
    let theirs: Arc<Mutex<BTreeSet<TopicPartition>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let polling = {
        let (theirs, stop) = (theirs.clone(), stop.clone());
        let mut second = second;
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let polled = second.poll(Duration::from_millis(200)).await.expect("poll");
                apply(&mut theirs.lock().unwrap(), &polled);
            }
            second
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let error = loop {
        match first.commit(&offsets).await {
            Ok(()) => {
                assert!(Instant::now() < deadline, "commits were never fenced");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => break e,
        }
    };
    assert!(matches!(error, Error::Fenced { .. }), "{error}");
    support::wait_until(
        "the second member to take everything",
        Duration::from_secs(20),
        || {
            let done = theirs.lock().unwrap().len() == 2;
            async move { done }
        },
    )
    .await;
    // Still fenced while it has not polled: the new owner's offsets stay.
    let error = first.commit(&offsets).await.expect_err("a fenced commit");
    assert!(matches!(error, Error::Fenced { .. }), "{error}");

    // The fenced member reports the loss, rejoins and gets a share.
    assert_eq!(next_step(&mut *first).await, Polled::Revoked(assigned));
    let mine = match next_step(&mut *first).await {
        Polled::Assigned(ps) => ps,
        other => panic!("expected an assignment, got {other:?}"),
    };
    assert_eq!(mine.len(), 1);
    support::wait_until(
        "the second member to hold the other partition",
        Duration::from_secs(20),
        || {
            let t = theirs.lock().unwrap().clone();
            let done = t.len() == 1 && !mine.iter().any(|tp| t.contains(tp));
            async move { done }
        },
    )
    .await;
    let offsets: Vec<_> = mine.iter().map(|tp| (tp.clone(), 0)).collect();
    first
        .commit(&offsets)
        .await
        .expect("commit of the new generation");
    stop.store(true, Ordering::SeqCst);
    let second = polling.await.unwrap();
    first.leave().await.unwrap();
    second.leave().await.unwrap();
}

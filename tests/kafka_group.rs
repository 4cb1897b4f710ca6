//! Consumer groups of the `kafka` backend at the transport level, on a real broker.
//!
//! Run: `GODEV_KAFKA_BROKERS=127.0.0.1:9092 cargo test -p godev-kit --test kafka_group`

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use godev_kafka::Error;
use godev_kafka::testing;
use godev_kafka::transport::kafka::KafkaTransport;
use godev_kafka::transport::{GroupMember, OutgoingRecord, Polled, TopicPartition, Transport};
use tokio::task::JoinSet;

const PARTITIONS: i32 = 6;

/// Produces `n` records `tag-i` spread over the partitions; answers (partition, offset) of each.
async fn produce(
    transport: &Arc<KafkaTransport>,
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

#[tokio::test(flavor = "multi_thread")]
async fn one_member_reads_and_commits_everything() {
    let brokers = support::brokers().await;
    let topic = testing::unique_name("group-one");
    let group = testing::unique_name("g-one");
    testing::create_topic(&brokers, &topic, PARTITIONS)
        .await
        .unwrap();
    let transport = support::transport(&brokers).await;
    assert_eq!(transport.partition_count(&topic).await.unwrap(), PARTITIONS);

    let written = produce(&transport, &topic, "one", 300).await;
    assert_eq!(written.len(), 300);

    let mut member = transport
        .join(support::group_options(&group, &topic))
        .await
        .unwrap();
    let mut seen: BTreeSet<(i32, i64)> = BTreeSet::new();
    let mut last: HashMap<i32, i64> = HashMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < written.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "saw {} of {}",
            seen.len(),
            written.len()
        );
        match member.poll(Duration::from_millis(500)).await.unwrap() {
            Polled::Assigned(ps) => assert_eq!(ps.len(), PARTITIONS as usize),
            Polled::Records(records) => {
                for r in &records {
                    if let Some(prev) = last.insert(r.partition, r.offset) {
                        assert!(r.offset > prev, "partition {} out of order", r.partition);
                    }
                    assert!(seen.insert((r.partition, r.offset)), "duplicate {r:?}");
                }
                member.commit(&next_offsets(&records)).await.unwrap();
            }
            Polled::Revoked(_) | Polled::Idle => {}
        }
    }
    assert_eq!(seen, written);
    let committed = testing::committed_offsets(&brokers, &group, &topic)
        .await
        .unwrap();
    let ends = testing::end_offsets(&brokers, &topic).await.unwrap();
    assert_eq!(committed, ends);
    member.leave().await.unwrap();
}

/// What the members of one group saw, shared between their tasks.
#[derive(Default)]
struct Board {
    owner: HashMap<i32, String>,
    violations: Vec<String>,
    seen: BTreeSet<(i32, i64)>,
    assignments: HashMap<String, Vec<i32>>,
}

/// A member polling in its own task until `stop`; then it drops its partitions and leaves.
fn spawn_member(
    mut member: Box<dyn GroupMember>,
    board: Arc<Mutex<Board>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let id = member.member_id();
        let mut name = id.clone();
        while !stop.load(Ordering::SeqCst) {
            match member.poll(Duration::from_millis(200)).await.expect("poll") {
                Polled::Assigned(ps) => {
                    name = member.member_id();
                    let mut b = board.lock().unwrap();
                    for tp in &ps {
                        if let Some(other) = b.owner.insert(tp.partition, name.clone())
                            && other != name
                        {
                            let v = format!("{tp} owned by {other} and {name}");
                            b.violations.push(v);
                        }
                    }
                    b.assignments
                        .insert(name.clone(), ps.iter().map(|tp| tp.partition).collect());
                }
                Polled::Revoked(ps) => {
                    let mut b = board.lock().unwrap();
                    for tp in &ps {
                        if b.owner.get(&tp.partition) == Some(&name) {
                            b.owner.remove(&tp.partition);
                        }
                    }
                    b.assignments.remove(&name);
                }
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
                Polled::Idle => {}
            }
        }
        {
            let mut b = board.lock().unwrap();
            for tp in member.assignment() {
                if b.owner.get(&tp.partition) == Some(&name) {
                    b.owner.remove(&tp.partition);
                }
            }
            b.assignments.remove(&name);
        }
        member.leave().await.expect("leave");
        drop(id);
    })
}

async fn wait_seen(board: &Arc<Mutex<Board>>, written: &BTreeSet<(i32, i64)>, what: &str) {
    support::wait_until(what, Duration::from_secs(60), || {
        let done = written.is_subset(&board.lock().unwrap().seen);
        async move { done }
    })
    .await;
}

async fn wait_members(board: &Arc<Mutex<Board>>, n: usize) {
    support::wait_until(
        &format!("{n} members sharing all partitions"),
        Duration::from_secs(60),
        || {
            let b = board.lock().unwrap();
            let owned: usize = b.assignments.values().map(Vec::len).sum();
            let done = b.assignments.len() == n
                && owned == PARTITIONS as usize
                && b.owner.len() == PARTITIONS as usize;
            async move { done }
        },
    )
    .await;
}

/// `kafka-consumer-groups.sh --describe --group G` through `dev/kafka tool`.
async fn describe(brokers: &str, group: &str, extra: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(support::dev_kafka());
    command
        .args(["tool", "--version", "3.9", "consumer-groups"])
        .args(["--bootstrap-server", brokers.split(',').next().unwrap()])
        .args(["--describe", "--group", group])
        .args(extra);
    tokio::task::spawn_blocking(move || command.output().expect("run dev/kafka tool"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_members_share_rebalance_and_lose_nothing() {
    let brokers = support::brokers().await;
    let topic = testing::unique_name("group-three");
    let group = testing::unique_name("g-three");
    testing::create_topic(&brokers, &topic, PARTITIONS)
        .await
        .unwrap();
    let transport = support::transport(&brokers).await;
    let board = Arc::new(Mutex::new(Board::default()));

    let mut written = produce(&transport, &topic, "first", 240).await;
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let member = transport
            .join(support::group_options(&group, &topic))
            .await
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        tasks.push(spawn_member(member, board.clone(), stop.clone()));
        stops.push(stop);
    }
    wait_members(&board, 3).await;
    wait_seen(&board, &written, "the first records").await;
    {
        let b = board.lock().unwrap();
        assert!(
            b.assignments.values().all(|ps| ps.len() == 2),
            "{:?}",
            b.assignments
        );
    }

    // Kafka's own tool sees our members, their assignment and the offsets.
    let output = describe(&brokers, &group, &["--members", "--verbose"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    {
        // One line per member: its id, and (in 3.9's --verbose) its partitions as `(a,b)`.
        let b = board.lock().unwrap();
        for (member, partitions) in &b.assignments {
            let mut partitions = partitions.clone();
            partitions.sort_unstable();
            let list: Vec<String> = partitions.iter().map(ToString::to_string).collect();
            let expected = format!("({})", list.join(","));
            let line = stdout.lines().find(|l| l.contains(member.as_str()));
            let line = line.unwrap_or_else(|| panic!("member {member} missing in:\n{stdout}"));
            assert!(
                line.contains(&expected),
                "{member} should own {expected}:\n{stdout}"
            );
        }
    }
    let output = describe(&brokers, &group, &[]).await;
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
        .join(support::group_options(&group, &topic))
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    tasks.push(spawn_member(member, board.clone(), stop.clone()));
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

/// A member that does not rejoin within the rebalance timeout is dropped from the group; its
/// commits with the old generation must be refused, not overwrite the new owner's offsets.
#[tokio::test(flavor = "multi_thread")]
async fn a_commit_of_a_stale_generation_is_fenced() {
    let brokers = support::brokers().await;
    let topic = testing::unique_name("group-fence");
    let group = testing::unique_name("g-fence");
    testing::create_topic(&brokers, &topic, 2).await.unwrap();
    let transport = support::transport(&brokers).await;
    let mut options = support::group_options(&group, &topic);
    options.rebalance_timeout = Duration::from_secs(3);

    let mut first = transport.join(options.clone()).await.unwrap();
    let assigned = match first.poll(Duration::from_secs(1)).await.unwrap() {
        Polled::Assigned(ps) => ps,
        other => panic!("expected an assignment, got {other:?}"),
    };
    assert_eq!(assigned.len(), 2);
    let offsets: Vec<_> = assigned.iter().map(|tp| (tp.clone(), 0)).collect();
    first
        .commit(&offsets)
        .await
        .expect("commit of the current generation");

    // A second member joins and keeps polling; the first one does not poll, so the group
    // moves on without it after the rebalance timeout.
    let second = transport.join(options).await.unwrap();
    let theirs: Arc<Mutex<Vec<TopicPartition>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let polling = {
        let (theirs, stop) = (theirs.clone(), stop.clone());
        let mut second = second;
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match second.poll(Duration::from_millis(200)).await.expect("poll") {
                    Polled::Assigned(ps) => *theirs.lock().unwrap() = ps,
                    Polled::Revoked(_) => theirs.lock().unwrap().clear(),
                    _ => {}
                }
            }
            second
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let error = loop {
        match first.commit(&offsets).await {
            Ok(()) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "commits were never fenced"
                );
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

    // The fenced member revokes, rejoins and gets a share.
    assert_eq!(
        first.poll(Duration::from_secs(1)).await.unwrap(),
        Polled::Revoked(assigned)
    );
    let mine = match first.poll(Duration::from_secs(1)).await.unwrap() {
        Polled::Assigned(ps) => ps,
        other => panic!("expected an assignment, got {other:?}"),
    };
    assert_eq!(mine.len(), 1);
    support::wait_until(
        "the second member to hold the other partition",
        Duration::from_secs(20),
        || {
            let t = theirs.lock().unwrap().clone();
            let done = t.len() == 1 && !mine.contains(&t[0]);
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

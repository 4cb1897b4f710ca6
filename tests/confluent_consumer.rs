//! Typed events through the `confluent` backend on a real Kafka 4 broker: derive, send, grouped
//! consumers on KIP-848 groups, handlers, commits, rebalances, fencing.
//!
//! Run: `GODEV_KAFKA4_BROKERS=127.0.0.1:9094 cargo test -p godev-kit --features broker-tests,confluent --test confluent_consumer`
//! (`dev/kafka start --version 4` starts such a broker). The `kafka` backend's refusal of a
//! Kafka 4 broker is tested in `tests/kafka_broker.rs`.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use godev_kafka::consumer::ConsumerSettings;
use godev_kafka::transport::confluent::admin::Admin;
use godev_kafka::transport::confluent::{ConfluentOptions, ConfluentTransport};
use godev_kafka::transport::detect::detect_broker;
use godev_kafka::transport::{GroupOptions, Polled, TopicPartition, Transport};
use godev_kafka::{Codec, Consumer, Context, Event, HandlerError, Producer, TopicMap, handler};
use serde::{Deserialize, Serialize};

/// The Kafka 4 broker, or a panic that says how to get one.
fn brokers4() -> String {
    match std::env::var("GODEV_KAFKA4_BROKERS") {
        Ok(b) if !b.trim().is_empty() => b.trim().to_owned(),
        _ => panic!(
            "GODEV_KAFKA4_BROKERS is not set: start a Kafka 4 broker (dev/kafka start --version 4) \
             and set GODEV_KAFKA4_BROKERS=127.0.0.1:9094"
        ),
    }
}

async fn transport(brokers: &str) -> Arc<ConfluentTransport> {
    let mut options = ConfluentOptions::new(brokers.split(','));
    options.client_id = "godev-kafka-tests".into();
    options.linger = Duration::from_millis(2);
    options.request_timeout = Duration::from_secs(20);
    Arc::new(
        ConfluentTransport::connect(options)
            .await
            .expect("connect to the Kafka 4 test broker"),
    )
}

fn unique(prefix: &str) -> String {
    godev_kafka::testing::unique_name(prefix)
}

async fn create_topic(admin: &Admin, topic: &str, partitions: i32) {
    admin
        .create_topic(topic, partitions)
        .await
        .expect("create topic");
}

/// Short timeouts: the broker allows heartbeats down to 500 ms (`group.consumer.min.*`).
fn settings() -> ConsumerSettings {
    ConsumerSettings {
        session_timeout: Duration::from_secs(6),
        heartbeat_interval: Duration::from_millis(500),
        rebalance_timeout: Duration::from_secs(20),
        commit_interval: Duration::from_millis(200),
        shutdown_timeout: Duration::from_secs(10),
        ..ConsumerSettings::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(topic = "accounts", key = "account")]
enum AccountEvent {
    #[event(name = "account.opened")]
    Opened { account: u32, seq: u32 },
    #[event(name = "account.credited")]
    Credited { account: u32, seq: u32 },
}

impl AccountEvent {
    fn new(account: u32, seq: u32) -> Self {
        if seq == 0 {
            AccountEvent::Opened { account, seq }
        } else {
            AccountEvent::Credited { account, seq }
        }
    }

    fn ids(&self) -> (u32, u32) {
        let (AccountEvent::Opened { account, seq } | AccountEvent::Credited { account, seq }) =
            self;
        (*account, *seq)
    }
}

/// One handled record: which member, partition, offset, account, seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    member: usize,
    partition: i32,
    offset: i64,
    account: u32,
    seq: u32,
}

/// Handled records per real topic, and the partitions being handled right now (to catch two
/// members handling one partition at once).
#[derive(Default)]
struct Journal {
    seen: HashMap<String, Vec<Seen>>,
    busy: HashMap<(String, i32), usize>,
    overlaps: Vec<String>,
}

static JOURNAL: Mutex<Option<Journal>> = Mutex::new(None);

fn with_journal<T>(f: impl FnOnce(&mut Journal) -> T) -> T {
    f(JOURNAL.lock().unwrap().get_or_insert_with(Journal::default))
}

fn seen(topic: &str) -> Vec<Seen> {
    with_journal(|j| j.seen.get(topic).cloned().unwrap_or_default())
}

async fn record(member: usize, event: AccountEvent, ctx: Context, work: Duration) {
    let key = (ctx.topic().to_owned(), ctx.partition());
    with_journal(|j| {
        if let Some(other) = j.busy.insert(key.clone(), member) {
            j.overlaps.push(format!(
                "members {other} and {member} both in {}[{}] at offset {}",
                key.0,
                key.1,
                ctx.offset()
            ));
        }
    });
    if !work.is_zero() {
        tokio::time::sleep(work).await;
    }
    let (account, seq) = event.ids();
    with_journal(|j| {
        j.busy.remove(&key);
        j.seen.entry(key.0.clone()).or_default().push(Seen {
            member,
            partition: key.1,
            offset: ctx.offset(),
            account,
            seq,
        });
    });
}

#[handler]
async fn member_0(event: AccountEvent, ctx: Context) -> Result<(), HandlerError> {
    record(0, event, ctx, Duration::ZERO).await;
    Ok(())
}

#[handler]
async fn member_1(event: AccountEvent, ctx: Context) -> Result<(), HandlerError> {
    record(1, event, ctx, Duration::from_millis(3)).await;
    Ok(())
}

#[handler]
async fn member_2(event: AccountEvent, ctx: Context) -> Result<(), HandlerError> {
    record(2, event, ctx, Duration::from_millis(3)).await;
    Ok(())
}

#[handler]
async fn member_3(event: AccountEvent, ctx: Context) -> Result<(), HandlerError> {
    record(3, event, ctx, Duration::from_millis(3)).await;
    Ok(())
}

/// Sends `per_account` events for each of `accounts`, one round at a time (each account
/// once per round, concurrently), so each account's events go out in order.
async fn send_accounts(
    producer: &Producer,
    accounts: std::ops::Range<u32>,
    seqs: std::ops::Range<u32>,
) {
    for seq in seqs {
        let tasks: Vec<_> = accounts
            .clone()
            .map(|account| {
                let producer = producer.clone();
                tokio::spawn(async move { producer.send(&AccountEvent::new(account, seq)).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().expect("send acknowledged");
        }
    }
}

/// Checks: every (account, seq) handled exactly once, each partition in offset order, each
/// account in send order, no partition handled by two members at once.
fn check_handled(topic: &str, accounts: u32, per_account: u32) -> Vec<Seen> {
    let seen = seen(topic);
    let mut unique = BTreeSet::new();
    let duplicates: Vec<_> = seen
        .iter()
        .filter(|s| !unique.insert((s.account, s.seq)))
        .collect();
    assert!(duplicates.is_empty(), "handled twice: {duplicates:?}");
    assert_eq!(
        seen.len(),
        (accounts * per_account) as usize,
        "every event handled once"
    );
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let mut by_account: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for s in &seen {
        by_partition.entry(s.partition).or_default().push(s.offset);
        by_account.entry(s.account).or_default().push(s.seq);
    }
    for (partition, offsets) in &by_partition {
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "partition {partition} handled in offset order: {offsets:?}"
        );
    }
    for (account, seqs) in by_account {
        assert_eq!(
            seqs,
            (0..per_account).collect::<Vec<_>>(),
            "account {account} in send order"
        );
    }
    let overlaps = with_journal(|j| j.overlaps.clone());
    assert!(overlaps.is_empty(), "one owner per partition: {overlaps:?}");
    seen
}

async fn assert_committed_to_end(admin: &Admin, group: &str, topic: &str, partitions: i32) {
    let end = admin.end_offsets(topic, partitions).await.unwrap();
    let committed = admin.committed_offsets(group, topic).await.unwrap();
    let nonempty: BTreeMap<i32, i64> = end
        .iter()
        .filter(|(_, o)| **o > 0)
        .map(|(p, o)| (*p, *o))
        .collect();
    assert_eq!(
        committed, nonempty,
        "the group committed up to the end of every partition"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_is_kafka_4_and_detected_as_such() {
    let brokers = brokers4();
    let features = detect_broker(std::slice::from_ref(&brokers))
        .await
        .expect("ApiVersions");
    assert!(features.is_kafka4(), "{features:?}");
    assert!(features.advertises_kip848());
    assert_eq!(
        features.recommended_client(),
        godev_kafka::config::Client::Confluent
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_events_over_six_partitions_are_handled_once_in_order_and_committed() {
    const ACCOUNTS: u32 = 40;
    const PER_ACCOUNT: u32 = 25;
    let brokers = brokers4();
    let topic = unique("c-accounts");
    let group = unique("c-accounts-group");
    let transport = transport(&brokers).await;
    create_topic(transport.admin(), &topic, 6).await;
    let topics = TopicMap::from_iter([("accounts", topic.clone())]);
    let producer = Producer::with_transport(
        transport.clone() as Arc<dyn Transport>,
        topics.clone(),
        Codec::CloudEvents,
        "tests",
    );
    send_accounts(&producer, 0..ACCOUNTS, 0..PER_ACCOUNT).await;

    let consumer = Consumer::builder_shared(transport.clone() as Arc<dyn Transport>, &group)
        .topics(topics)
        .settings(settings())
        .handler::<member_0>()
        .build()
        .unwrap();
    let running = consumer.start();
    let total = (ACCOUNTS * PER_ACCOUNT) as usize;
    support::wait_until("every event handled", Duration::from_secs(60), || async {
        seen(&topic).len() >= total
    })
    .await;
    running.shutdown().await.expect("clean shutdown");

    let seen = check_handled(&topic, ACCOUNTS, PER_ACCOUNT);
    let partitions: BTreeSet<i32> = seen.iter().map(|s| s.partition).collect();
    assert_eq!(partitions.len(), 6, "keys spread over all six partitions");
    assert_committed_to_end(transport.admin(), &group, &topic, 6).await;

    // The framework's own helper (the project's kafka-protocol OffsetFetch) reads the same.
    let framework = godev_kafka::testing::committed_offsets(&brokers, &group, &topic).await;
    let admin = transport
        .admin()
        .committed_offsets(&group, &topic)
        .await
        .unwrap();
    assert_eq!(
        framework.ok(),
        Some(admin),
        "testing::committed_offsets on Kafka 4"
    );
}

/// Keeps sending rounds of events (each account once per round, in order) until stopped;
/// answers how many rounds went out.
fn keep_sending(
    producer: Producer,
    accounts: u32,
    first_round: u32,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<u32>,
) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let mut seq = first_round;
        while !*stopped.borrow() {
            send_accounts(&producer, 0..accounts, seq..seq + 1).await;
            seq += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        seq
    });
    (stop, task)
}

async fn wait_for_partitions(running: &godev_kafka::RunningConsumer, what: &str) {
    support::wait_until(what, Duration::from_secs(30), || async {
        running.status().iter().any(|g| !g.assigned.is_empty())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_members_share_the_partitions_one_owner_at_a_time_and_handle_everything() {
    const ACCOUNTS: u32 = 30;
    let brokers = brokers4();
    let topic = unique("c-three");
    let group = unique("c-three-group");
    let transport = transport(&brokers).await;
    create_topic(transport.admin(), &topic, 6).await;
    let topics = TopicMap::from_iter([("accounts", topic.clone())]);
    let producer = Producer::with_transport(
        transport.clone() as Arc<dyn Transport>,
        topics.clone(),
        Codec::CloudEvents,
        "tests",
    );
    let build = |n: usize| {
        let builder = Consumer::builder_shared(transport.clone() as Arc<dyn Transport>, &group)
            .topics(topics.clone())
            .settings(settings());
        match n {
            1 => builder.handler::<member_1>(),
            2 => builder.handler::<member_2>(),
            _ => builder.handler::<member_3>(),
        }
        .build()
        .unwrap()
    };
    // Records keep coming while the members join one after the other, so every rebalance
    // moves partitions with work in flight. Each member's runner is its own task
    // (`Consumer::start` spawns it).
    let (stop, sender) = keep_sending(producer.clone(), ACCOUNTS, 0);
    let mut running = Vec::new();
    for n in 1..=3 {
        let member = build(n).start();
        wait_for_partitions(&member, &format!("member {n} to own partitions")).await;
        let handled = seen(&topic).iter().filter(|s| s.member == n).count();
        support::wait_until(
            &format!("member {n} to handle records"),
            Duration::from_secs(30),
            || async { seen(&topic).iter().filter(|s| s.member == n).count() > handled },
        )
        .await;
        running.push(member);
    }
    stop.send(true).unwrap();
    let rounds = sender.await.unwrap();
    let total = (ACCOUNTS * rounds) as usize;
    support::wait_until("every event handled", Duration::from_secs(90), || async {
        seen(&topic).len() >= total
    })
    .await;
    for r in running {
        r.shutdown().await.expect("clean shutdown");
    }
    let seen = check_handled(&topic, ACCOUNTS, rounds);
    let by_member: BTreeSet<usize> = seen.iter().map(|s| s.member).collect();
    assert_eq!(by_member.len(), 3, "all three members handled records");
    assert_committed_to_end(transport.admin(), &group, &topic, 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_that_leaves_hands_its_partitions_over_and_nothing_is_lost() {
    const ACCOUNTS: u32 = 24;
    let brokers = brokers4();
    let topic = unique("c-leave");
    let group = unique("c-leave-group");
    let transport = transport(&brokers).await;
    create_topic(transport.admin(), &topic, 6).await;
    let topics = TopicMap::from_iter([("accounts", topic.clone())]);
    let producer = Producer::with_transport(
        transport.clone() as Arc<dyn Transport>,
        topics.clone(),
        Codec::CloudEvents,
        "tests",
    );
    let start = |handler: usize| {
        let builder = Consumer::builder_shared(transport.clone() as Arc<dyn Transport>, &group)
            .topics(topics.clone())
            .settings(settings());
        let builder = if handler == 1 {
            builder.handler::<member_1>()
        } else {
            builder.handler::<member_2>()
        };
        builder.build().unwrap().start()
    };
    let stays = start(1);
    wait_for_partitions(&stays, "the first member to own partitions").await;
    let leaves = start(2);
    wait_for_partitions(&leaves, "the second member to own partitions").await;
    let (stop, sender) = keep_sending(producer.clone(), ACCOUNTS, 0);
    support::wait_until(
        "both members handle records",
        Duration::from_secs(60),
        || async {
            let members: BTreeSet<usize> = seen(&topic).iter().map(|s| s.member).collect();
            members.len() == 2
        },
    )
    .await;
    // Leave while records are still coming and in flight.
    leaves
        .shutdown()
        .await
        .expect("clean shutdown of the leaving member");
    let left_at = seen(&topic).len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.send(true).unwrap();
    let rounds = sender.await.unwrap();
    let total = (ACCOUNTS * rounds) as usize;
    support::wait_until("every event handled", Duration::from_secs(90), || async {
        seen(&topic).len() >= total
    })
    .await;
    stays.shutdown().await.expect("clean shutdown");
    let seen = check_handled(&topic, ACCOUNTS, rounds);
    let after: BTreeSet<usize> = seen[left_at..].iter().map(|s| s.member).collect();
    assert_eq!(
        after,
        BTreeSet::from([1]),
        "after the leave, the remaining member handled everything"
    );
    let partitions: BTreeSet<i32> = seen[left_at..].iter().map(|s| s.partition).collect();
    assert_eq!(
        partitions.len(),
        6,
        "the remaining member took all six partitions"
    );
    assert_committed_to_end(transport.admin(), &group, &topic, 6).await;
}

/// The member API directly: a revocation is reported before the partitions move and waits
/// for the next poll; the runner's commit in between (served inside the crate's callback)
/// succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_waits_for_the_next_poll_before_the_partitions_move() {
    let brokers = brokers4();
    let topic = unique("c-revoke");
    let group = unique("c-revoke-group");
    let transport = transport(&brokers).await;
    create_topic(transport.admin(), &topic, 4).await;
    let mut options = GroupOptions::new(&group, vec![topic.clone()]);
    options.session_timeout = Duration::from_secs(6);
    options.heartbeat_interval = Duration::from_millis(500);
    options.rebalance_timeout = Duration::from_secs(20);

    let mut first = transport.join(options.clone()).await.expect("join");
    let owned = poll_until_assigned(&mut *first, 4).await;
    assert_eq!(owned.len(), 4, "the only member owns all partitions");

    let second = tokio::spawn({
        let transport = transport.clone();
        let options = options.clone();
        async move {
            let mut second = transport.join(options).await.expect("join");
            let got = poll_until_assigned(&mut *second, 1).await;
            (second, got)
        }
    });
    // The first member learns of the revocation in a poll.
    let revoked = loop {
        match first.poll(Duration::from_millis(200)).await.expect("poll") {
            Polled::Revoked(partitions) => break partitions,
            Polled::Records(_) | Polled::Idle | Polled::Assigned(_) => {}
        }
    };
    assert!(
        !revoked.is_empty() && revoked.len() < 4,
        "some partitions move: {revoked:?}"
    );
    // While it has not polled again, the partitions stay with it: the second member gets none
    // of them, and a commit for them succeeds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    if second.is_finished() {
        let (_, got) = second.await.unwrap();
        panic!("the second member got {got:?} while {revoked:?} were being revoked from the first");
    }
    let offsets: Vec<(TopicPartition, i64)> = revoked.iter().map(|tp| (tp.clone(), 0)).collect();
    first
        .commit(&offsets)
        .await
        .expect("commit before giving up");
    // Polling again completes the revocation; the second member gets them.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !second.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "the second member gets partitions after the revocation"
        );
        first.poll(Duration::from_millis(100)).await.expect("poll");
    }
    let (second, got) = second.await.unwrap();
    assert!(
        got.iter().all(|tp| revoked.contains(tp)),
        "{got:?} came from {revoked:?}"
    );
    second.leave().await.expect("leave");
    first.leave().await.expect("leave");
}

async fn poll_until_assigned(
    member: &mut dyn godev_kafka::transport::GroupMember,
    at_least: usize,
) -> Vec<TopicPartition> {
    let mut owned = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while owned.len() < at_least {
        assert!(
            std::time::Instant::now() < deadline,
            "no assignment within 30 s: {owned:?}"
        );
        match member.poll(Duration::from_millis(200)).await.expect("poll") {
            Polled::Assigned(added) => owned.extend(added),
            Polled::Revoked(gone) => owned.retain(|tp| !gone.contains(tp)),
            Polled::Records(_) | Polled::Idle => {}
        }
    }
    owned
}

//! Typed events through every backend on a real broker: derive, send, grouped consumers,
//! handlers, commits, rebalances while records are in flight, added partitions; and Go-kit
//! JSON exchanged with a foreign client (kcat). Each test runs as `kafka_3::` (the `kafka`
//! backend on Kafka 3.9) and `confluent_4::` (the `confluent` backend on Kafka 4).
//!
//! Run: `GODEV_KAFKA_BROKERS=127.0.0.1:9092 GODEV_KAFKA4_BROKERS=127.0.0.1:9094 cargo test -p godev-kit --features broker-tests,confluent --test kafka_consumer`
//! (without the feature `confluent` only the `kafka_3::` tests build, and only
//! `GODEV_KAFKA_BROKERS` is needed).

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use godev_kafka::transport::Transport;
use godev_kafka::{
    Codec, Consumer, Context, Event, HandlerError, Producer, RunningConsumer, TopicMap, handler,
    testing,
};
use serde::{Deserialize, Serialize};
use support::Backend;

on_each_backend!(
    typed_events_over_six_partitions_are_handled_once_in_order_and_committed,
    three_members_share_the_partitions_one_owner_at_a_time_and_handle_everything,
    a_member_that_leaves_hands_its_partitions_over_and_nothing_is_lost,
    more_partitions_rebalance_the_group_and_the_new_ones_are_consumed,
    go_kit_json_from_kcat_is_dispatched_by_event_type,
    kcat_reads_what_our_producer_wrote,
);

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
/// members handling one partition at once). Keyed by topic: the tests of both backends share
/// this process.
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

/// A consumer of `group` on `topics` whose handler records as member `n` (0 to 3).
fn consumer(
    backend: Backend,
    transport: &Arc<dyn Transport>,
    group: &str,
    topics: &TopicMap,
    n: usize,
) -> Consumer {
    let builder = Consumer::builder_shared(transport.clone(), group)
        .topics(topics.clone())
        .settings(backend.consumer_settings());
    match n {
        0 => builder.handler::<member_0>(),
        1 => builder.handler::<member_1>(),
        2 => builder.handler::<member_2>(),
        _ => builder.handler::<member_3>(),
    }
    .build()
    .unwrap()
}

/// Sends `seqs` rounds of events for each of `accounts`, one round at a time (each account
/// once per round, concurrently), so the producer batches and each account's events still go
/// out in order.
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

/// Keeps sending rounds of events (each account once per round, in order) until stopped;
/// answers how many rounds went out.
fn keep_sending(
    producer: Producer,
    accounts: u32,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<u32>,
) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let mut seq = 0;
        while !*stopped.borrow() {
            send_accounts(&producer, 0..accounts, seq..seq + 1).await;
            seq += 1;
            // Paces the rounds (this is no wait for a condition).
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        seq
    });
    (stop, task)
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
    let overlaps: Vec<_> = overlaps.iter().filter(|o| o.contains(topic)).collect();
    assert!(overlaps.is_empty(), "one owner per partition: {overlaps:?}");
    seen
}

async fn assert_committed_to_end(brokers: &str, group: &str, topic: &str) {
    let end = testing::end_offsets(brokers, topic).await.unwrap();
    let committed = testing::committed_offsets(brokers, group, topic)
        .await
        .unwrap();
    let nonempty: BTreeMap<i32, i64> = end.into_iter().filter(|(_, o)| *o > 0).collect();
    assert_eq!(
        committed, nonempty,
        "the group committed up to the end of every partition"
    );
}

async fn wait_for_partitions(running: &RunningConsumer, what: &str) {
    support::wait_until(what, Duration::from_secs(30), || async {
        running.status().iter().any(|g| !g.assigned.is_empty())
    })
    .await;
}

async fn typed_events_over_six_partitions_are_handled_once_in_order_and_committed(
    backend: Backend,
) {
    const ACCOUNTS: u32 = 40;
    const PER_ACCOUNT: u32 = 25;
    let brokers = backend.brokers().await;
    let topic = testing::unique_name("accounts");
    let group = testing::unique_name("accounts-group");
    testing::create_topic(&brokers, &topic, 6)
        .await
        .expect("create topic");
    let transport = backend.transport(&brokers).await;
    let topics = TopicMap::from_iter([("accounts", topic.clone())]);
    let producer = Producer::with_transport(
        transport.clone(),
        topics.clone(),
        Codec::CloudEvents,
        "tests",
    );
    send_accounts(&producer, 0..ACCOUNTS, 0..PER_ACCOUNT).await;

    let running = consumer(backend, &transport, &group, &topics, 0).start();
    let total = (ACCOUNTS * PER_ACCOUNT) as usize;
    support::wait_until("every event handled", Duration::from_secs(60), || async {
        seen(&topic).len() >= total
    })
    .await;
    running.shutdown().await.expect("clean shutdown");

    let seen = check_handled(&topic, ACCOUNTS, PER_ACCOUNT);
    let partitions: BTreeSet<i32> = seen.iter().map(|s| s.partition).collect();
    assert_eq!(partitions.len(), 6, "keys spread over all six partitions");
    assert_committed_to_end(&brokers, &group, &topic).await;
}

async fn three_members_share_the_partitions_one_owner_at_a_time_and_handle_everything(
    backend: Backend,
) {
    const ACCOUNTS: u32 = 30;
    let brokers = backend.brokers().await;
    let topic = testing::unique_name("three");
    let group = testing::unique_name("three-group");
    testing::create_topic(&brokers, &topic, 6)
        .await
        .expect("create topic");
    let transport = backend.transport(&brokers).await;
    let topics = TopicMap::from_iter([("accounts", topic.clone())]);
    let producer = Producer::with_transport(
        transport.clone(),
        topics.clone(),
        Codec::CloudEvents,
        "tests",
    );
    // Records keep coming while the members join one after the other, so every rebalance
    // moves partitions with work in flight. Each member's runner is its own task
    // (`Consumer::start` spawns it).
    let (stop, sender) = keep_sending(producer.clone(), ACCOUNTS);
    let mut running = Vec::new();
    for n in 1..=3 {
        let member = consumer(backend, &transport, &group, &topics, n).start();
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
    assert_committed_to_end(&brokers, &group, &topic).await;
}

async fn a_member_that_leaves_hands_its_partitions_over_and_nothing_is_lost(backend: Backend) {
    const ACCOUNTS: u32 = 24;
    let brokers = backend.brokers().await;
    let topic = testing::unique_name("leave");
    let group = testing::unique_name("leave-group");
    testing::create_topic(&brokers, &topic, 6)
        .await
        .expect("create topic");
    let transport = backend.transport(&brokers).await;
    let topics = TopicMap::from_iter([("accounts", topic.clone())]);
    let producer = Producer::with_transport(
        transport.clone(),
        topics.clone(),
        Codec::CloudEvents,
        "tests",
    );
    let stays = consumer(backend, &transport, &group, &topics, 1).start();
    wait_for_partitions(&stays, "the first member to own partitions").await;
    let leaves = consumer(backend, &transport, &group, &topics, 2).start();
    wait_for_partitions(&leaves, "the second member to own partitions").await;
    let (stop, sender) = keep_sending(producer.clone(), ACCOUNTS);
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
    support::wait_until(
        "records of all six partitions handled after the leave",
        Duration::from_secs(60),
        || async {
            let after: BTreeSet<i32> = seen(&topic)[left_at..]
                .iter()
                .map(|s| s.partition)
                .collect();
            after.len() == 6
        },
    )
    .await;
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
    assert_committed_to_end(&brokers, &group, &topic).await;
}

async fn more_partitions_rebalance_the_group_and_the_new_ones_are_consumed(backend: Backend) {
    let brokers = backend.brokers().await;
    let topic = testing::unique_name("growing");
    let group = testing::unique_name("growing-group");
    testing::create_topic(&brokers, &topic, 2)
        .await
        .expect("create topic");
    let transport = backend.transport(&brokers).await;
    let topics = TopicMap::from_iter([("accounts", topic.clone())]);
    let running = consumer(backend, &transport, &group, &topics, 0).start();
    support::wait_until(
        "two partitions assigned",
        Duration::from_secs(60),
        || async { running.status()[0].assigned.len() == 2 },
    )
    .await;

    let bootstrap = brokers.split(',').next().unwrap();
    support::add_partitions(backend, bootstrap, &topic, 4).await;
    support::wait_until(
        "the group rebalanced onto four partitions",
        Duration::from_secs(60),
        || async { running.status()[0].assigned.len() == 4 },
    )
    .await;

    let producer = Producer::with_transport(transport, topics, Codec::CloudEvents, "tests");
    send_accounts(&producer, 0..40, 0..1).await;
    support::wait_until("all 40 handled", Duration::from_secs(60), || async {
        seen(&topic).len() == 40
    })
    .await;
    running.shutdown().await.unwrap();
    let seen = check_handled(&topic, 40, 1);
    let partitions: BTreeSet<i32> = seen.iter().map(|s| s.partition).collect();
    assert!(
        partitions.iter().any(|p| *p >= 2),
        "records of the added partitions were handled: {partitions:?}"
    );
    assert_committed_to_end(&brokers, &group, &topic).await;
}

/// The Go kit's `entity.UserEvent`, as Go's `encoding/json` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct GoUser {
    id: i64,
    user_id: i64,
    email: String,
    data: serde_json::Value,
    timestamp: godev_kafka::event::Timestamp,
}

#[derive(Debug, Clone, PartialEq, Event)]
#[event(topic = "go_user_events", key = "user_id")]
enum GoUserEvent {
    #[event(name = "user.created")]
    Created(GoUser),
    #[event(name = "user.deleted")]
    Deleted(GoUser),
}

/// Handled Go events per real topic: (tag, user id, email).
type GoSeen = Vec<(String, i64, String)>;
static GO_SEEN: Mutex<Option<HashMap<String, GoSeen>>> = Mutex::new(None);

fn go_seen(topic: &str) -> GoSeen {
    GO_SEEN
        .lock()
        .unwrap()
        .as_ref()
        .and_then(|m| m.get(topic).cloned())
        .unwrap_or_default()
}

#[handler]
async fn on_go_user(event: GoUserEvent, ctx: Context) -> Result<(), HandlerError> {
    let (GoUserEvent::Created(user) | GoUserEvent::Deleted(user)) = event;
    GO_SEEN
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .entry(ctx.topic().to_owned())
        .or_default()
        .push((ctx.tag().to_owned(), user.user_id, user.email));
    Ok(())
}

async fn go_kit_json_from_kcat_is_dispatched_by_event_type(backend: Backend) {
    let brokers = backend.brokers().await;
    let topic = testing::unique_name("go-user-events");
    testing::create_topic(&brokers, &topic, 2)
        .await
        .expect("create topic");
    let lines = [
        r#"1:{"id":1732800000000000001,"event_type":"user.created","user_id":1,"email":"go@example.com","data":{"plan":"free"},"timestamp":"2024-11-28T13:20:00.5Z"}"#,
        r#"1:{"id":1732800000000000002,"event_type":"user.renamed","user_id":1,"email":"go@example.com","data":null,"timestamp":"2024-11-28T13:20:01Z"}"#,
        r#"1:{"id":1732800000000000003,"event_type":"user.deleted","user_id":1,"email":"go@example.com","data":null,"timestamp":"2024-11-28T13:20:02Z"}"#,
    ];
    support::kcat_produce(&brokers, &topic, &lines);

    let transport = backend.transport(&brokers).await;
    let group = testing::unique_name("go-interop");
    let consumer = Consumer::builder_shared(transport, &group)
        .topics(TopicMap::from_iter([("go_user_events", topic.clone())]))
        .codec(Codec::Tagged)
        .settings(backend.consumer_settings())
        .handler::<on_go_user>()
        .build()
        .unwrap();
    let running = consumer.start();
    support::wait_until(
        "both known events handled",
        Duration::from_secs(60),
        || async { go_seen(&topic).len() >= 2 },
    )
    .await;
    // The unknown tag is skipped and committed past too: nothing is read again.
    support::wait_until("all three committed", Duration::from_secs(30), || async {
        let committed = testing::committed_offsets(&brokers, &group, &topic).await;
        committed.is_ok_and(|c| c.values().sum::<i64>() == 3)
    })
    .await;
    running.shutdown().await.unwrap();
    assert_eq!(
        go_seen(&topic),
        vec![
            ("user.created".to_owned(), 1, "go@example.com".to_owned()),
            ("user.deleted".to_owned(), 1, "go@example.com".to_owned()),
        ],
        "user.renamed has no handler and is skipped; the others arrive in order (same key)"
    );
}

async fn kcat_reads_what_our_producer_wrote(backend: Backend) {
    let brokers = backend.brokers().await;
    let topic = testing::unique_name("to-kcat");
    testing::create_topic(&brokers, &topic, 1)
        .await
        .expect("create topic");
    let transport = backend.transport(&brokers).await;
    let topics = TopicMap::from_iter([("go_user_events", topic.clone())]);
    let producer = Producer::with_transport(transport, topics, Codec::Tagged, "tests");
    let user = GoUser {
        id: 7,
        user_id: 42,
        email: "rust@example.com".into(),
        data: serde_json::json!({"from": "rust"}),
        timestamp: "2024-11-28T13:20:00Z".parse().unwrap(),
    };
    producer
        .send(&GoUserEvent::Created(user))
        .await
        .expect("acknowledged");
    producer
        .send_raw(&topic, Some(b"raw-key"), b"raw value".to_vec())
        .await
        .expect("acknowledged");

    let text = support::kcat_read(&brokers, &topic).await;
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        vec![
            r#"42|{"id":7,"event_type":"user.created","user_id":42,"email":"rust@example.com","data":{"from":"rust"},"timestamp":"2024-11-28T13:20:00Z"}"#,
            "raw-key|raw value",
        ]
    );
}

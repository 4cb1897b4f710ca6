//! Hostile and odd group members on a real Kafka 3.9 broker (issue #12): a raw client of our
//! own making, speaking the group protocol byte by byte, joins our consumers' group and hands
//! them what a buggy or malicious client could. Our members must stay alive, say what
//! happened at warn, and keep (or resume) handling records. Also: a group subscribed to a
//! topic that does not exist consumes the others, creates nothing, and rebalances onto the
//! topic once it is created.
//!
//! Run: `GODEV_KAFKA_BROKERS=127.0.0.1:9092 cargo test -p godev-kit --features broker-tests --test kafka_hostile_member`.
//! The hostile-subscription test wedges its group inside the broker, so it starts a Kafka 3.9
//! of its own on port 19192 with `dev/kafka` and restarts it.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use godev_kafka::transport::Transport;
use godev_kafka::{
    Codec, Consumer, Context, Event, HandlerError, KafkaCode, Producer, RunningConsumer, TopicMap,
    handler, testing,
};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, HeartbeatRequest,
    HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use serde::{Deserialize, Serialize};
use support::logs::logged;
use support::own_broker::OwnBroker;
use support::raw::Raw;

/// The bytes that aborted our members before issue #12: an array count of 2147483647 with
/// nothing after it (68 GB as a subscription's topics, 120 GB as an assignment's topics).
const HOSTILE: [u8; 6] = [0x00, 0x00, 0x7f, 0xff, 0xff, 0xff];
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const REBALANCE_IN_PROGRESS: i16 = 27;
const MEMBER_ID_REQUIRED: i16 = 79;
/// The port of this binary's own Kafka 3.9 (the fault tests' crashable broker uses it too;
/// a lock file keeps the two apart).
const OWN_BROKER_PORT: u16 = 19192;

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(topic = "orders", name = "order.placed", key = "order")]
struct OrderPlaced {
    order: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(topic = "refunds", name = "refund.issued", key = "order")]
struct RefundIssued {
    order: u32,
}

/// Orders handled, by real topic (the tests of this binary share the process).
static HANDLED: Mutex<Option<HashMap<String, Vec<u32>>>> = Mutex::new(None);

fn note(ctx: &Context, order: u32) {
    HANDLED
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .entry(ctx.topic().to_owned())
        .or_default()
        .push(order);
}

fn handled(topic: &str) -> Vec<u32> {
    let mut orders = HANDLED
        .lock()
        .unwrap()
        .as_ref()
        .and_then(|h| h.get(topic).cloned())
        .unwrap_or_default();
    orders.sort_unstable();
    orders
}

#[handler]
async fn on_order(event: OrderPlaced, ctx: Context) -> Result<(), HandlerError> {
    note(&ctx, event.order);
    Ok(())
}

#[handler]
async fn on_refund(event: RefundIssued, ctx: Context) -> Result<(), HandlerError> {
    note(&ctx, event.order);
    Ok(())
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// A consumer-protocol v0 subscription to `topic`, as the Java client writes it.
fn subscription(topic: &str) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    buf.put_i32(1);
    buf.put_i16(topic.len() as i16);
    buf.put_slice(topic.as_bytes());
    buf.put_i32(-1);
    buf.freeze()
}

/// An empty v0 assignment.
fn nothing_assigned() -> Bytes {
    Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])
}

/// A group member written by hand: it joins with whatever metadata it is given and, as the
/// leader, hands the other members whatever assignment it is given.
struct RawMember {
    conn: Raw,
    group: String,
    member_id: String,
    generation: i32,
}

impl RawMember {
    async fn new(brokers: &str, group: &str) -> Self {
        let mut bootstrap =
            Raw::connect(brokers.split(',').next().unwrap(), "hostile-raw-client").await;
        // A new broker answers COORDINATOR_NOT_AVAILABLE until its offsets topic exists.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let found = loop {
            let found: FindCoordinatorResponse = bootstrap
                .call(
                    ApiKey::FindCoordinator,
                    2,
                    &FindCoordinatorRequest::default().with_key(sb(group)),
                )
                .await;
            if found.error_code != COORDINATOR_NOT_AVAILABLE
                || tokio::time::Instant::now() >= deadline
            {
                break found;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(found.error_code, 0, "FindCoordinator");
        let addr = format!("{}:{}", found.host.as_str(), found.port);
        RawMember {
            conn: Raw::connect(&addr, "hostile-raw-client").await,
            group: group.to_owned(),
            member_id: String::new(),
            generation: -1,
        }
    }

    /// JoinGroup v5 with `metadata`, through MEMBER_ID_REQUIRED; answers the broker's reply.
    async fn join(&mut self, metadata: Bytes) -> JoinGroupResponse {
        loop {
            let request = JoinGroupRequest::default()
                .with_group_id(GroupId(sb(&self.group)))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(20_000)
                .with_member_id(sb(&self.member_id))
                .with_protocol_type(sb("consumer"))
                .with_protocols(vec![
                    JoinGroupRequestProtocol::default()
                        .with_name(sb("range"))
                        .with_metadata(metadata.clone()),
                ]);
            let joined: JoinGroupResponse = tokio::time::timeout(
                Duration::from_secs(40),
                self.conn.call(ApiKey::JoinGroup, 5, &request),
            )
            .await
            .expect("JoinGroup answered within the rebalance timeout");
            if joined.error_code == MEMBER_ID_REQUIRED {
                self.member_id = joined.member_id.to_string();
                continue;
            }
            if joined.error_code == COORDINATOR_LOAD_IN_PROGRESS {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            if joined.error_code == 0 {
                self.generation = joined.generation_id;
            }
            return joined;
        }
    }

    /// Joins as the leader and gives every other member `others`; answers their member ids.
    async fn lead(&mut self, topic: &str, others: Bytes) -> Vec<String> {
        let joined = self.join(subscription(topic)).await;
        assert_eq!(joined.error_code, 0, "the raw member joined");
        assert_eq!(
            joined.leader.as_str(),
            self.member_id,
            "the raw member leads"
        );
        let mut handed = Vec::new();
        let assignments = joined
            .members
            .iter()
            .map(|m| {
                let bytes = if m.member_id.as_str() == self.member_id {
                    nothing_assigned()
                } else {
                    handed.push(m.member_id.to_string());
                    others.clone()
                };
                SyncGroupRequestAssignment::default()
                    .with_member_id(m.member_id.clone())
                    .with_assignment(bytes)
            })
            .collect();
        let request = SyncGroupRequest::default()
            .with_group_id(GroupId(sb(&self.group)))
            .with_generation_id(self.generation)
            .with_member_id(sb(&self.member_id))
            .with_assignments(assignments);
        let synced: SyncGroupResponse = self.conn.call(ApiKey::SyncGroup, 3, &request).await;
        assert_eq!(synced.error_code, 0, "SyncGroup");
        handed
    }

    async fn heartbeat(&mut self) -> i16 {
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(sb(&self.group)))
            .with_generation_id(self.generation)
            .with_member_id(sb(&self.member_id));
        let beat: HeartbeatResponse = self.conn.call(ApiKey::Heartbeat, 3, &request).await;
        beat.error_code
    }

    async fn leave(mut self) {
        let request = LeaveGroupRequest::default()
            .with_group_id(GroupId(sb(&self.group)))
            .with_members(vec![
                MemberIdentity::default().with_member_id(sb(&self.member_id)),
            ]);
        let left: LeaveGroupResponse = self.conn.call(ApiKey::LeaveGroup, 3, &request).await;
        assert_eq!(left.error_code, 0, "LeaveGroup");
    }
}

/// Sends orders `range` as `OrderPlaced` to the logical topic `orders`.
async fn send_orders(producer: &Producer, range: std::ops::Range<u32>) {
    for order in range {
        producer
            .send(&OrderPlaced { order })
            .await
            .expect("send acknowledged");
    }
}

fn consumer(transport: &Arc<dyn Transport>, group: &str, topics: &TopicMap) -> Consumer {
    Consumer::builder_shared(transport.clone(), group)
        .topics(topics.clone())
        .settings(support::Backend::Kafka.consumer_settings())
        .handler::<on_order>()
        .handler::<on_refund>()
        .build()
        .unwrap()
}

/// What each test starts from, on the broker at `brokers`: a group, its two topics
/// (`refunds` created only when `refunds_exist`), a transport and a producer on Kafka 3.9.
struct Setup {
    brokers: String,
    group: String,
    orders: String,
    refunds: String,
    topics: TopicMap,
    transport: Arc<dyn Transport>,
    producer: Producer,
}

async fn setup(brokers: &str, group: &str, refunds_exist: bool) -> Setup {
    support::logs::capture();
    let group = testing::unique_name(group);
    let orders = testing::unique_name("orders");
    let refunds = testing::unique_name("refunds");
    testing::create_topic(brokers, &orders, 2).await.unwrap();
    if refunds_exist {
        testing::create_topic(brokers, &refunds, 1).await.unwrap();
    }
    let topics = TopicMap::from_iter([("orders", orders.as_str()), ("refunds", refunds.as_str())]);
    Setup {
        brokers: brokers.to_owned(),
        group,
        orders,
        refunds,
        transport: support::transport(brokers).await,
        producer: producer(brokers, &topics).await,
        topics,
    }
}

/// A producer of its own transport on `brokers`.
async fn producer(brokers: &str, topics: &TopicMap) -> Producer {
    let transport: Arc<dyn Transport> = support::transport(brokers).await;
    Producer::with_transport(transport, topics.clone(), Codec::default(), "hostile-test")
}

async fn wait_handled(topic: &str, n: u32, running: &RunningConsumer, timeout: Duration) {
    support::wait_until(
        &format!("{n} orders of {topic} handled"),
        timeout,
        || async { handled(topic) == (0..n).collect::<Vec<_>>() || running.has_stopped() },
    )
    .await;
    assert!(!running.has_stopped(), "the consumer stopped");
    assert_eq!(
        handled(topic),
        (0..n).collect::<Vec<_>>(),
        "each order once"
    );
}

/// The leader of the group (a raw client) hands our member the six bytes that used to abort
/// it as its assignment. Our member owns nothing while that leader leads, says so at warn,
/// and takes the partitions once the leader leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_handing_out_a_hostile_assignment_does_not_stop_our_member() {
    let Setup {
        brokers,
        group,
        orders,
        topics,
        transport,
        producer,
        ..
    } = setup(&support::brokers().await, "hostile-assignment", true).await;
    let mut raw = RawMember::new(&brokers, &group).await;
    assert!(
        raw.lead(&orders, Bytes::from_static(&HOSTILE))
            .await
            .is_empty()
    );

    let running = consumer(&transport, &group, &topics).start();
    // Our member's JoinGroup starts a rebalance; the raw leader hears of it on a heartbeat,
    // joins again and hands our member the hostile bytes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let handed = loop {
        assert!(tokio::time::Instant::now() < deadline, "no rebalance");
        if raw.heartbeat().await == REBALANCE_IN_PROGRESS {
            let handed = raw.lead(&orders, Bytes::from_static(&HOSTILE)).await;
            if !handed.is_empty() {
                break handed;
            }
        }
        // The raw member's heartbeat interval.
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(handed.len(), 1, "our one member got the hostile assignment");

    // The raw leader stays (heartbeating) while our member must cope with what it got.
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let orders_topic = orders.clone();
    let leader = tokio::spawn(async move {
        while !*stopped.borrow() {
            if raw.heartbeat().await == REBALANCE_IN_PROGRESS {
                raw.lead(&orders_topic, Bytes::from_static(&HOSTILE)).await;
            }
            let _ = tokio::time::timeout(Duration::from_millis(300), stopped.changed()).await;
        }
        raw.leave().await;
    });
    support::wait_until(
        "a warning about the assignment",
        Duration::from_secs(30),
        || async { !logged(&group, "assignment for this member does not decode").is_empty() },
    )
    .await;
    let warning = logged(&group, "assignment for this member does not decode").remove(0);
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains(&handed[0]), "names our member: {warning}");
    send_orders(&producer, 0..20).await;
    assert!(!running.has_stopped(), "our consumer is alive");
    assert!(
        running.status().iter().all(|g| g.assigned.is_empty()),
        "owns nothing while the hostile leader leads: {:?}",
        running.status()
    );

    stop.send(true).unwrap();
    leader.await.unwrap();
    wait_handled(&orders, 20, &running, Duration::from_secs(60)).await;
    running.shutdown().await.expect("clean shutdown");
}

/// A raw client joins our member's group with the six hostile bytes as its subscription.
///
/// Kafka 3.9 parses subscriptions itself: completing that rebalance throws in the broker
/// ("Tried to allocate a collection of size 2147483647"), it answers our member's JoinGroup
/// with UNKNOWN_SERVER_ERROR, and the group stays in PreparingRebalance from then on (seen
/// still so minutes later with both clients gone: a broker bug that no client can undo).
/// Before issue #12 our consumer took that error as fatal and stopped. Now it warns and keeps
/// trying to join, so it resumes once the broker serves the group again: here, after the
/// broker (one of this test's own, so no other test meets the wedged group) is restarted.
/// A broker that does not parse subscriptions passes them to our leader instead, which leaves
/// the member out: the unit test `members_whose_metadata_does_not_decode_are_left_out`
/// covers that path.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_joining_with_a_hostile_subscription_does_not_stop_our_consumer() {
    let broker = tokio::task::block_in_place(|| OwnBroker::start("3.9", OWN_BROKER_PORT));
    let Setup {
        brokers,
        group,
        orders,
        topics,
        transport,
        ..
    } = setup(broker.address(), "hostile-subscription", true).await;
    let running = consumer(&transport, &group, &topics).start();
    send_orders(&producer(&brokers, &topics).await, 0..10).await;
    wait_handled(&orders, 10, &running, Duration::from_secs(60)).await;
    // Handled and committed before the hostile member comes: a wedged group takes no commits,
    // and the restart below must not hand these orders out again.
    let committed = || async {
        let offsets = testing::committed_offsets(&brokers, &group, &orders).await;
        offsets.is_ok_and(|o| o.values().sum::<i64>() == 10)
    };
    support::wait_until("10 orders committed", Duration::from_secs(30), committed).await;

    // Kafka 3.9 never answers the raw member's JoinGroup: it runs in a task of its own.
    let mut raw = RawMember::new(&brokers, &group).await;
    let join = tokio::spawn(async move { raw.join(Bytes::from_static(&HOSTILE)).await });
    support::wait_until(
        "a warning about the hostile member",
        Duration::from_secs(40),
        || async { !logged(&group, "UNKNOWN_SERVER_ERROR").is_empty() || running.has_stopped() },
    )
    .await;
    assert!(
        !running.has_stopped(),
        "the consumer stopped on UNKNOWN_SERVER_ERROR"
    );
    let warning = logged(&group, "UNKNOWN_SERVER_ERROR").remove(0);
    assert!(warning.contains("WARN"), "{warning}");
    // The join that follows waits out its timeout (rebalance 20 s + request 20 s) in the
    // wedged group; the consumer must come back from that failure and try again.
    support::wait_until(
        "the consumer to retry after the failed join",
        Duration::from_secs(90),
        || async { !logged(&group, "poll failed; retrying").is_empty() || running.has_stopped() },
    )
    .await;
    assert!(
        !running.has_stopped(),
        "the consumer stopped after a failed join"
    );
    join.abort();

    // Restarted, the broker loads the group as last written (our member alone): the consumer,
    // still retrying, joins again and handles what is sent from then on, each order once.
    let down = tokio::task::block_in_place(|| {
        broker.kill();
        broker.restart()
    });
    eprintln!("broker restarted in {:.1}s", down.as_secs_f64());
    send_orders(&producer(&brokers, &topics).await, 10..20).await;
    wait_handled(&orders, 20, &running, Duration::from_secs(120)).await;
    running.shutdown().await.expect("clean shutdown");
}

/// A group subscribed to a topic that does not exist consumes the topics that do, does not
/// create the missing one, and rebalances onto it once it is created (issue #12 F6).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_topic_is_not_created_and_is_consumed_once_it_exists() {
    let Setup {
        brokers,
        group,
        orders,
        refunds,
        topics,
        transport,
        producer,
    } = setup(&support::brokers().await, "missing-topic", false).await;
    let running = consumer(&transport, &group, &topics).start();
    send_orders(&producer, 0..10).await;
    wait_handled(&orders, 10, &running, Duration::from_secs(60)).await;
    assert!(
        !logged(&group, "subscribed topics do not exist").is_empty(),
        "the leader said which topics it could not assign"
    );
    let missing = testing::end_offsets(&brokers, &refunds).await;
    assert!(
        missing
            .as_ref()
            .is_err_and(|e| e.kafka_code() == Some(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION)),
        "the consumer created no topic: {missing:?}"
    );

    testing::create_topic(&brokers, &refunds, 3).await.unwrap();
    for order in 0..12 {
        producer
            .send(&RefundIssued { order })
            .await
            .expect("send acknowledged");
    }
    wait_handled(&refunds, 12, &running, Duration::from_secs(60)).await;
    let assigned: Vec<_> = running
        .status()
        .iter()
        .flat_map(|g| g.assigned.clone())
        .filter(|tp| tp.topic == refunds)
        .collect();
    assert_eq!(
        assigned.len(),
        3,
        "every partition of the new topic: {assigned:?}"
    );
    running.shutdown().await.expect("clean shutdown");
}

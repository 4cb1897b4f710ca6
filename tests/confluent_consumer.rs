//! What only the `confluent` backend on Kafka 4 has: broker detection, KIP-848's incremental
//! revocation held until the runner polls again, and the test helpers checked against the
//! crate's own admin client. Behaviour every backend shares (typed events, three-member
//! groups, leaving, fencing, added partitions, kcat) is tested once for all backends in
//! `tests/kafka_consumer.rs` and `tests/kafka_group.rs` (their `confluent_4::` tests); the
//! `kafka` backend's refusal of a Kafka 4 broker is tested in `tests/kafka_broker.rs`.
//!
//! Run: `GODEV_KAFKA_BROKERS=127.0.0.1:9092 GODEV_KAFKA4_BROKERS=127.0.0.1:9094 cargo test -p godev-kit --features broker-tests,confluent --test confluent_consumer`
//! (only `GODEV_KAFKA4_BROKERS` is used here; `dev/kafka start --version 4` starts such a
//! broker).

mod support;

use std::time::{Duration, Instant};

use godev_kafka::testing;
use godev_kafka::transport::detect::detect_broker;
use godev_kafka::transport::{GroupMember, OutgoingRecord, Polled, TopicPartition, Transport};
use support::Backend;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_is_kafka_4_and_detected_as_such() {
    let brokers = Backend::Confluent.brokers().await;
    let features = detect_broker(std::slice::from_ref(&brokers))
        .await
        .expect("ApiVersions");
    assert!(features.is_kafka4(), "{features:?}");
    assert!(features.advertises_kip848());
    // A build with the native backend prefers it on every broker it speaks (0.11 to 4.x).
    let expected = if cfg!(feature = "native") {
        godev_kafka::config::Client::Native
    } else {
        godev_kafka::config::Client::Confluent
    };
    assert_eq!(godev_kafka::Manager::auto_client(&features), expected);
}

/// The suites of both backends read offsets through `godev_kafka::testing` (the project's own
/// kafka-protocol requests); on Kafka 4 they must agree with the Java client's admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_testing_helpers_read_what_the_confluent_admin_reads() {
    let brokers = Backend::Confluent.brokers().await;
    let topic = testing::unique_name("c-helpers");
    let group = testing::unique_name("c-helpers-group");
    testing::create_topic(&brokers, &topic, 3)
        .await
        .expect("create topic");
    let transport = support::confluent_transport(&brokers).await;
    let admin = transport.admin();
    for (partition, n) in [(0, 5), (1, 2)] {
        for i in 0..n {
            let record = OutgoingRecord {
                topic: topic.clone(),
                partition,
                key: None,
                value: format!("{partition}-{i}").into_bytes(),
            };
            transport.produce(record).await.expect("produce");
        }
    }
    let ends = testing::end_offsets(&brokers, &topic).await.unwrap();
    assert_eq!(ends, [(0, 5), (1, 2), (2, 0)].into_iter().collect());
    assert_eq!(admin.end_offsets(&topic, 3).await.unwrap(), ends);

    let mut member = transport
        .join(Backend::Confluent.group_options(&group, &topic))
        .await
        .expect("join");
    let owned = poll_until_assigned(&mut *member, 3).await;
    let offsets = [
        (TopicPartition::new(&topic, 0), 4),
        (TopicPartition::new(&topic, 1), 1),
    ];
    member.commit(&offsets).await.expect("commit");
    let committed = testing::committed_offsets(&brokers, &group, &topic)
        .await
        .unwrap();
    assert_eq!(committed, [(0, 4), (1, 1)].into_iter().collect());
    assert_eq!(
        admin.committed_offsets(&group, &topic).await.unwrap(),
        committed
    );
    assert_eq!(owned.len(), 3);
    member.leave().await.expect("leave");
    transport.close().await.expect("close");
}

/// The member API directly: a KIP-848 rebalance revokes only the partitions that move; the
/// revocation is reported before they move and waits for the next poll; the runner's commit
/// in between (served inside the crate's callback) succeeds. (The eager `kafka` backend
/// revokes everything at once, so this is KIP-848 behaviour.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_waits_for_the_next_poll_before_the_partitions_move() {
    let brokers = Backend::Confluent.brokers().await;
    let topic = testing::unique_name("c-revoke");
    let group = testing::unique_name("c-revoke-group");
    testing::create_topic(&brokers, &topic, 4)
        .await
        .expect("create topic");
    let transport = support::confluent_transport(&brokers).await;
    let options = Backend::Confluent.group_options(&group, &topic);

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
    let deadline = Instant::now() + Duration::from_secs(30);
    let revoked = loop {
        assert!(Instant::now() < deadline, "no revocation within 30 s");
        match first.poll(Duration::from_millis(200)).await.expect("poll") {
            Polled::Revoked(partitions) => break partitions,
            Polled::Stalled(stalled) => panic!("nothing here should stall: {stalled:?}"),
            _ => {}
        }
    };
    assert!(
        !revoked.is_empty() && revoked.len() < 4,
        "some partitions move: {revoked:?}"
    );
    // While it has not polled again, the partitions stay with it: the second member gets none
    // of them, and a commit for them succeeds. (Waiting for something that must not happen
    // has no condition to wait on: 3 s is six heartbeat intervals, well below the 20 s
    // rebalance timeout.)
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
    let deadline = Instant::now() + Duration::from_secs(30);
    while !second.is_finished() {
        assert!(
            Instant::now() < deadline,
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
    transport.close().await.expect("close");
}

/// Issue #15: joining a group altered its broker-side KIP-848 configs (the session timeout and
/// heartbeat interval of the group options) with `IncrementalAlterConfigs`, for every member,
/// whatever the cluster's operators had set. A join with the default options leaves them
/// alone; setting them is an explicit admin step.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn joining_a_confluent_group_leaves_the_broker_group_config_alone() {
    use godev_kafka::transport::confluent::{ConfluentOptions, ConfluentTransport};
    const SESSION: &str = "consumer.session.timeout.ms";
    const HEARTBEAT: &str = "consumer.heartbeat.interval.ms";

    let brokers = Backend::Confluent.brokers().await;
    let topic = testing::unique_name("c-group-config");
    let group = testing::unique_name("c-group-config-group");
    testing::create_topic(&brokers, &topic, 1)
        .await
        .expect("create topic");
    let transport = ConfluentTransport::connect(ConfluentOptions::new(brokers.split(',')))
        .await
        .expect("connect with the default options");
    // Timeouts the broker accepts (its minimum heartbeat interval is 500 ms with `dev/kafka`),
    // so that a join that wrote them would have been obeyed.
    let options = Backend::Confluent.group_options(&group, &topic);
    let mut member = transport.join(options.clone()).await.expect("join");
    poll_until_assigned(&mut *member, 1).await;
    // Where a join writes the configs, it does so before it returns (before the member's
    // first heartbeat): no later write to wait for.
    let admin = transport.admin();
    let configs = admin.group_configs(&group).await.expect("describe");
    assert!(
        !configs.contains_key(SESSION) && !configs.contains_key(HEARTBEAT),
        "the join set group configs: {configs:?}"
    );

    // The explicit admin step sets them, and the same describe sees them.
    admin
        .alter_group_timeouts(&options)
        .await
        .expect("alter group timeouts");
    let configs = admin.group_configs(&group).await.expect("describe");
    let millis = |d: Duration| d.as_millis().to_string();
    assert_eq!(
        (configs.get(SESSION), configs.get(HEARTBEAT)),
        (
            Some(&millis(options.session_timeout)),
            Some(&millis(options.heartbeat_interval))
        ),
        "{configs:?}"
    );
    member.leave().await.expect("leave");
    transport.close().await.expect("close");
}

async fn poll_until_assigned(member: &mut dyn GroupMember, at_least: usize) -> Vec<TopicPartition> {
    let mut owned = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while owned.len() < at_least {
        assert!(
            Instant::now() < deadline,
            "no assignment within 30 s: {owned:?}"
        );
        match member.poll(Duration::from_millis(200)).await.expect("poll") {
            Polled::Assigned(added) => owned.extend(added),
            Polled::Revoked(gone) => owned.retain(|tp| !gone.contains(tp)),
            Polled::Stalled(stalled) => panic!("nothing here should stall: {stalled:?}"),
            _ => {}
        }
    }
    owned
}

//! The `kafka` backend's producer through a broker outage (issue #15): it retries until each
//! record's delivery timeout (120 s by default), not a number of times. It used to give up
//! after 5 retries 100 ms apart, so every send during an outage of more than half a second
//! failed.
//!
//! Run: `cargo test -p godev-kit --features broker-tests --test kafka_producer_outage`.
//! It starts a Kafka 3.9 of its own on port 19196 with `dev/kafka`, SIGKILLs it and restarts
//! it on its data.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use godev_kafka::testing;
use godev_kafka::transport::kafka::{KafkaOptions, KafkaTransport};
use godev_kafka::transport::{OutgoingRecord, Transport};
use support::own_broker::OwnBroker;
use tokio::task::JoinSet;

/// This binary's own broker (the fault tests crash theirs on 19192 and 19194).
const PORT: u16 = 19196;
const PARTITIONS: i32 = 3;
const KEYS: u64 = 10;
/// How long the broker stays dead before it is started again (the restart adds its own
/// seconds): six times the old retry budget of 5 × 100 ms.
const OUTAGE: Duration = Duration::from_secs(3);
/// One send every this long, each awaited in a task of its own, as a service would.
const PERIOD: Duration = Duration::from_millis(10);

/// What the send loop saw.
#[derive(Debug, Default)]
struct Progress {
    issued: AtomicU64,
    acked: AtomicU64,
    stop: AtomicBool,
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_producer_rides_out_a_broker_outage_longer_than_its_old_retry_budget() {
    let broker = tokio::task::block_in_place(|| OwnBroker::start("3.9", PORT));
    let brokers = broker.address().to_owned();
    let topic = testing::unique_name("producer-outage");
    testing::create_topic(&brokers, &topic, PARTITIONS)
        .await
        .expect("create topic");
    let mut options = KafkaOptions::new([brokers.as_str()]);
    options.client_id = "godev-kafka-producer-outage".into();
    options.request_timeout = Duration::from_secs(10);
    // The rest are the defaults: retry_backoff 100 ms (and the old `retries = 5`).
    let transport = Arc::new(KafkaTransport::connect(options).await.expect("connect"));

    let progress = Arc::new(Progress::default());
    let sending = tokio::spawn(send_until_stopped(
        transport.clone(),
        topic.clone(),
        progress.clone(),
    ));
    let acked = || progress.acked.load(Ordering::Relaxed);
    support::wait_until("100 acknowledged sends", Duration::from_secs(60), || {
        let n = acked();
        async move { n >= 100 }
    })
    .await;

    let killed = Instant::now();
    let issued_at_kill = progress.issued.load(Ordering::Relaxed);
    tokio::task::block_in_place(|| broker.kill());
    tokio::time::sleep(OUTAGE).await;
    let issued_in_outage = progress.issued.load(Ordering::Relaxed) - issued_at_kill;
    let took = tokio::task::block_in_place(|| broker.restart());
    let outage = killed.elapsed();
    eprintln!(
        "broker SIGKILLed, answering again after {:.1}s (restart {:.1}s); {issued_in_outage} sends issued while it was dead",
        outage.as_secs_f64(),
        took.as_secs_f64()
    );
    assert!(
        issued_in_outage >= 100,
        "the loop kept sending during the outage: {issued_in_outage} sends"
    );

    // Sends after the restart are acknowledged too, and the ones of the outage drain.
    let acked_at_restart = acked();
    support::wait_until(
        "100 more acknowledged sends after the restart",
        Duration::from_secs(120),
        || {
            let n = acked();
            async move { n >= acked_at_restart + 100 }
        },
    )
    .await;
    progress.stop.store(true, Ordering::Relaxed);
    let results = tokio::time::timeout(Duration::from_secs(150), sending)
        .await
        .expect("every send answered within the delivery timeout")
        .expect("send loop");

    let mut sent: BTreeMap<u64, (i32, i64)> = BTreeMap::new();
    let mut failed: Vec<(u64, String)> = Vec::new();
    for (i, partition, result) in results {
        match result {
            Ok(offset) => {
                sent.insert(i, (partition, offset));
            }
            Err(e) => failed.push((i, e.to_string())),
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} sends failed through a {:.1}s outage (within the 120 s delivery timeout), e.g. {:?}",
        failed.len(),
        sent.len() + failed.len(),
        outage.as_secs_f64(),
        &failed[..failed.len().min(3)]
    );

    // Every event is in the log, and every acknowledged offset holds its event.
    let log = read_log(&brokers, &topic).await;
    let in_log: BTreeSet<u64> = log.values().copied().collect();
    let missing: Vec<u64> = sent
        .keys()
        .filter(|i| !in_log.contains(i))
        .copied()
        .collect();
    assert!(
        missing.is_empty(),
        "acked events not in the log: {missing:?}"
    );
    let misplaced: Vec<(u64, (i32, i64), Option<u64>)> = sent
        .iter()
        .filter(|(i, pos)| log.get(pos) != Some(i))
        .map(|(i, pos)| (*i, *pos, log.get(pos).copied()))
        .collect();
    assert!(
        misplaced.is_empty(),
        "acked events not at their acked offset (event, (partition, offset), found): {misplaced:?}"
    );
    // The `kafka` crate's producer is not idempotent: a retry after a lost answer writes
    // twice. Counted, not bounded.
    let written_twice = log.len() - in_log.len();
    println!(
        "FIGURES kafka_3::producer_outage: sends={} issued_in_outage={issued_in_outage} failed=0 \
         records_in_log={} written_twice={written_twice} outage_s={:.1}",
        sent.len(),
        log.len(),
        outage.as_secs_f64()
    );
}

/// Sends event `i` (key `k{i % KEYS}`, on the key's partition) every [`PERIOD`] until told to
/// stop; answers every send's partition and outcome once all are answered.
async fn send_until_stopped(
    transport: Arc<KafkaTransport>,
    topic: String,
    progress: Arc<Progress>,
) -> Vec<(u64, i32, godev_kafka::Result<i64>)> {
    let mut sends = JoinSet::new();
    let mut ticker = tokio::time::interval(PERIOD);
    let mut i = 0u64;
    while !progress.stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        let key = i % KEYS;
        let partition = (key % PARTITIONS as u64) as i32;
        let record = OutgoingRecord {
            topic: topic.clone(),
            partition,
            key: Some(format!("k{key}").into_bytes()),
            value: i.to_string().into_bytes(),
        };
        let (transport, answered) = (transport.clone(), progress.clone());
        sends.spawn(async move {
            let result = transport
                .produce(record)
                .await
                .map_err(|unsent| unsent.error);
            if result.is_ok() {
                answered.acked.fetch_add(1, Ordering::Relaxed);
            }
            (i, partition, result)
        });
        progress.issued.fetch_add(1, Ordering::Relaxed);
        i += 1;
    }
    let mut results = Vec::new();
    while let Some(result) = sends.join_next().await {
        results.push(result.expect("send task"));
    }
    results
}

/// The whole log of `topic`, read by kcat: (partition, offset) → event.
async fn read_log(brokers: &str, topic: &str) -> BTreeMap<(i32, i64), u64> {
    support::kcat_read_as(brokers, topic, "%p %o %s\n")
        .await
        .lines()
        .map(|line| {
            let mut fields = line.split(' ').map(|f| f.parse::<i64>().expect(line));
            let (p, o, i) = (fields.next(), fields.next(), fields.next());
            ((p.unwrap() as i32, o.unwrap()), i.unwrap() as u64)
        })
        .collect()
}

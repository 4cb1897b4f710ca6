//! The cluster against fake brokers: connection reuse and replacement, backoff, and the
//! metadata cache.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use tokio::net::TcpStream;

use super::*;
use crate::transport::connection::fake_broker::{listen, negotiate, read_request, write_response};

/// Every wait of these tests ends well within this.
const DEADLINE: Duration = Duration::from_secs(10);

fn cluster(addr: &str) -> Cluster {
    Cluster::new(&[addr.to_owned()], "cluster-test", Duration::from_secs(5))
}

#[test]
fn the_backoff_doubles_from_50_ms_up_to_1_s() {
    let waits: Vec<u128> = (0..8).map(|n| backoff(n).as_millis()).collect();
    assert_eq!(waits, [0, 50, 100, 200, 400, 800, 1000, 1000]);
    assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
}

/// One connection per broker and purpose, shared while it works; a broken one is replaced.
#[tokio::test]
async fn a_working_connection_is_shared_and_a_broken_one_replaced() {
    let (listener, addr) = listen().await;
    let accepted = Arc::new(AtomicUsize::new(0));
    let (hang_up, hung_up) = tokio::sync::oneshot::channel::<()>();
    let broker = tokio::spawn({
        let accepted = accepted.clone();
        async move {
            let mut held: Vec<TcpStream> = Vec::new();
            let mut hang_up = Some(hung_up);
            loop {
                tokio::select! {
                    conn = listener.accept() => {
                        let (mut stream, _) = conn.unwrap();
                        negotiate(&mut stream).await;
                        accepted.fetch_add(1, Ordering::SeqCst);
                        held.push(stream);
                    }
                    _ = async { hang_up.as_mut().unwrap().await }, if hang_up.is_some() => {
                        hang_up = None;
                        held.remove(0); // the first connection: Normal
                    }
                }
            }
        }
    });
    let cluster = cluster(&addr);
    let normal = cluster.connection(&addr, Purpose::Normal).await.unwrap();
    let again = cluster.connection(&addr, Purpose::Normal).await.unwrap();
    assert!(
        Arc::ptr_eq(&normal, &again),
        "the working connection is shared"
    );
    let group = cluster.connection(&addr, Purpose::Group).await.unwrap();
    assert!(!Arc::ptr_eq(&normal, &group), "each purpose has its own");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);

    hang_up.send(()).unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !normal.is_broken() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hang-up was not noticed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fresh = cluster.connection(&addr, Purpose::Normal).await.unwrap();
    assert!(
        !Arc::ptr_eq(&normal, &fresh),
        "a broken connection is replaced"
    );
    assert!(!fresh.is_broken());
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    let same_group = cluster.connection(&addr, Purpose::Group).await.unwrap();
    assert!(
        Arc::ptr_eq(&group, &same_group),
        "the other purpose's connection is untouched"
    );
    broker.abort();
}

/// Failed attempts to reach a broker wait their backoff before the next: 0, 50, 100 ms.
#[tokio::test(start_paused = true)]
async fn attempts_after_a_failure_wait_their_backoff() {
    // A port that was free a moment ago: connecting is refused at once.
    let addr = {
        let (listener, addr) = listen().await;
        drop(listener);
        addr
    };
    let cluster = cluster(&addr);
    let mut waited = Vec::new();
    for _ in 0..3 {
        let started = tokio::time::Instant::now();
        let e = cluster
            .connection(&addr, Purpose::Normal)
            .await
            .unwrap_err();
        assert!(e.is_retriable(), "{e}");
        waited.push(started.elapsed().as_millis());
    }
    // Virtual time: only the backoff sleeps advance it.
    assert_eq!(waited, [0, 50, 100]);
}

/// Topic `a` (two partitions led by node 1 at the broker's own address) and `missing`
/// (UNKNOWN_TOPIC_OR_PARTITION), as Metadata v4.
fn metadata_body(addr: &str) -> BytesMut {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let partition = |i: i32| {
        MetadataResponsePartition::default()
            .with_partition_index(i)
            .with_leader_id(BrokerId(1))
    };
    let response = MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(StrBytes::from_string(host.to_owned()))
                .with_port(port.parse().unwrap()),
        ])
        .with_topics(vec![
            MetadataResponseTopic::default()
                .with_name(Some(TopicName(sb("a"))))
                .with_partitions(vec![partition(0), partition(1)]),
            MetadataResponseTopic::default()
                .with_name(Some(TopicName(sb("missing"))))
                .with_error_code(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION.code()),
        ]);
    let mut body = BytesMut::new();
    response.encode(&mut body, 4).unwrap();
    body
}

/// Metadata is read from the cache while young enough, asked again when older or read
/// fresh; leaders resolve to broker addresses.
#[tokio::test]
async fn metadata_is_cached_while_young_enough() {
    let (listener, addr) = listen().await;
    let asked = Arc::new(AtomicUsize::new(0));
    let broker = tokio::spawn({
        let (asked, addr) = (asked.clone(), addr.clone());
        async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            negotiate(&mut stream).await;
            loop {
                let (key, correlation) = read_request(&mut stream).await.unwrap();
                assert_eq!(key, ApiKey::Metadata as i16);
                asked.fetch_add(1, Ordering::SeqCst);
                write_response(&mut stream, correlation, &metadata_body(&addr)).await;
            }
        }
    });
    let cluster = cluster(&addr);
    let topics = ["a".to_owned(), "missing".to_owned()];
    let hour = Duration::from_secs(3600);

    let read = cluster.metadata(&topics, hour).await.unwrap();
    assert!(read["a"].is_ready());
    assert_eq!(
        read["a"].leaders,
        BTreeMap::from([(0, Some(1)), (1, Some(1))])
    );
    assert_eq!(read["missing"].error, KafkaCode::UNKNOWN_TOPIC_OR_PARTITION);
    assert!(!read["missing"].is_ready());
    assert_eq!(asked.load(Ordering::SeqCst), 1);

    cluster.metadata(&topics, hour).await.unwrap();
    assert_eq!(
        asked.load(Ordering::SeqCst),
        1,
        "young enough: from the cache"
    );

    let counts = cluster.partition_counts(&topics).await.unwrap();
    assert_eq!(counts, BTreeMap::from([("a".to_owned(), 2)]));
    assert_eq!(
        asked.load(Ordering::SeqCst),
        2,
        "partition counts are read fresh"
    );

    // Not a wait for something to happen: it makes the cached read at least 5 ms old.
    tokio::time::sleep(Duration::from_millis(5)).await;
    cluster
        .metadata(&topics[..1], Duration::from_millis(5))
        .await
        .unwrap();
    assert_eq!(
        asked.load(Ordering::SeqCst),
        3,
        "older than asked for: read again"
    );

    let leaders = cluster.leaders("a").await.unwrap();
    assert_eq!(
        leaders,
        BTreeMap::from([(0, Some(addr.clone())), (1, Some(addr.clone()))])
    );
    let missing = cluster.leaders("missing").await.unwrap_err();
    assert_eq!(
        missing.kafka_code(),
        Some(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION)
    );
    broker.abort();
}

/// A broker that negotiates one connection, then reads requests and answers none (a
/// SIGSTOPped broker, as far as the client can tell); counts what it was asked.
async fn hung_broker() -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let (listener, addr) = listen().await;
    let asked = Arc::new(AtomicUsize::new(0));
    let broker = tokio::spawn({
        let asked = asked.clone();
        async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            negotiate(&mut stream).await;
            while read_request(&mut stream).await.is_ok() {
                asked.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    (addr, asked, broker)
}

/// A broker that answers every request of one connection with [`metadata_body`] naming
/// itself.
async fn metadata_broker() -> (String, tokio::task::JoinHandle<()>) {
    let (listener, addr) = listen().await;
    let broker = tokio::spawn({
        let addr = addr.clone();
        async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            negotiate(&mut stream).await;
            while let Ok((_, correlation)) = read_request(&mut stream).await {
                write_response(&mut stream, correlation, &metadata_body(&addr)).await;
            }
        }
    });
    (addr, broker)
}

/// Issue #15: a broker that hangs (SIGSTOPped: it accepts connections, answers nothing) held
/// every metadata read for the request timeout and then failed it, so a moved leader was
/// never learnt while it hung. Now the next broker is asked, and the one that answered is
/// asked first from then on.
#[tokio::test]
async fn a_broker_that_hangs_is_passed_over_for_metadata() {
    let (hung, hung_asked, _hung) = hung_broker().await;
    let (addr, _good) = metadata_broker().await;
    let timeout = Duration::from_millis(300);
    let cluster = Cluster::new(&[hung.clone(), addr.clone()], "cluster-test", timeout);
    let topics = ["a".to_owned()];

    let started = Instant::now();
    let read = tokio::time::timeout(DEADLINE, cluster.metadata(&topics, Duration::ZERO))
        .await
        .expect("metadata within the deadline")
        .expect("the second broker answers");
    assert!(read["a"].is_ready());
    assert!(
        started.elapsed() >= timeout,
        "the hung broker was asked first"
    );
    assert_eq!(hung_asked.load(Ordering::SeqCst), 1);

    let started = Instant::now();
    cluster.metadata(&topics, Duration::ZERO).await.unwrap();
    assert!(
        started.elapsed() < timeout,
        "the broker that answered is asked first"
    );
    assert_eq!(hung_asked.load(Ordering::SeqCst), 1);
}

/// Issue #15: a broker that hangs (SIGSTOPped: it accepts connections and answers nothing)
/// is asked first; the next broker is asked too once the first has been silent for `HEDGE`,
/// so the read takes about a second, not the whole request timeout (10 s here). Before, a
/// paused first bootstrap broker held every metadata read of every client for 10 s.
#[tokio::test]
async fn a_hung_broker_holds_a_metadata_read_about_a_second_not_a_request_timeout() {
    let (hung, _, _hung) = hung_broker().await;
    let (addr, _good) = metadata_broker().await;
    let request_timeout = Duration::from_secs(10);
    let cluster = Cluster::new(&[hung, addr], "cluster-test", request_timeout);
    let started = Instant::now();
    let read = tokio::time::timeout(
        DEADLINE,
        cluster.metadata(&["a".to_owned()], Duration::ZERO),
    )
    .await
    .expect("metadata within the deadline")
    .expect("the second broker answers");
    assert!(read["a"].is_ready());
    let took = started.elapsed();
    assert!(
        (HEDGE..HEDGE + Duration::from_secs(2)).contains(&took),
        "answered after {took:?}: the second broker is asked {HEDGE:?} after the first"
    );
}

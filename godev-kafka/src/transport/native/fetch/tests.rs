//! The fetcher against fake brokers: routing by leader, decoding, and what each partition
//! error does to a round; ListOffsets and its retries.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, ProducerId, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::*;
use crate::transport::native::batch::{Compression, OutRecord, ProducerStamp};

use crate::transport::connection::fake_broker::{listen, negotiate_with, write_response};

/// What the fake brokers advertise: versions whose response headers are v0.
const APIS: &[(ApiKey, i16)] = &[
    (ApiKey::ApiVersions, 3),
    (ApiKey::Metadata, 4),
    (ApiKey::Fetch, 11),
    (ApiKey::ListOffsets, 5),
];

/// The long-poll wait the tests fetch with (the fakes answer at once).
const WAIT: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------------------
// Fake brokers
// ---------------------------------------------------------------------------------------

/// What the metadata says: the brokers, each topic's partitions and their leaders, and the
/// topics answered with an error.
#[derive(Debug, Clone, Default)]
struct Layout {
    brokers: Vec<(i32, String)>,
    topics: BTreeMap<String, Vec<(i32, i32)>>,
    errors: BTreeMap<String, KafkaCode>,
}

impl Layout {
    /// Node 1 at `addr` leading every partition of `topics` (name, partition count).
    fn one_broker(addr: &str, topics: &[(&str, i32)]) -> Self {
        Layout {
            brokers: vec![(1, addr.to_owned())],
            topics: topics
                .iter()
                .map(|&(t, n)| (t.to_owned(), (0..n).map(|p| (p, 1)).collect()))
                .collect(),
            errors: BTreeMap::new(),
        }
    }
}

/// A request a fake broker read.
#[derive(Debug, Clone)]
enum Asked {
    Metadata,
    Fetch(i16, FetchRequest),
    ListOffsets(i16, ListOffsetsRequest),
}

/// A fake broker's answer to a Fetch or ListOffsets.
enum Answer {
    Fetch(FetchResponse),
    ListOffsets(ListOffsetsResponse),
    /// No answer at all, the connection left open: a broker that hangs.
    Silence,
}

/// How a fake broker answers Fetch and ListOffsets (Metadata it answers from its layout).
type Script = Arc<dyn Fn(&Asked) -> Answer + Send + Sync>;

/// A fake broker: answers every connection until dropped.
struct Fake {
    addr: String,
    asked: Arc<Mutex<Vec<Asked>>>,
    task: JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fake {
    /// Serves `listener` with `apis`, `layout` and `script`.
    fn start(
        listener: TcpListener,
        apis: &'static [(ApiKey, i16)],
        layout: Layout,
        script: impl Fn(&Asked) -> Answer + Send + Sync + 'static,
    ) -> Self {
        let addr = listener.local_addr().unwrap().to_string();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let script: Script = Arc::new(script);
        let layout = Arc::new(layout);
        let task = tokio::spawn({
            let asked = asked.clone();
            async move {
                // Dropped with the task: the connections end with it.
                let mut connections = JoinSet::new();
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    connections.spawn(serve(
                        stream,
                        apis,
                        layout.clone(),
                        script.clone(),
                        asked.clone(),
                    ));
                }
            }
        });
        Fake { addr, asked, task }
    }

    fn asked(&self) -> Vec<Asked> {
        self.asked.lock().unwrap().clone()
    }

    fn metadata_requests(&self) -> usize {
        self.asked()
            .iter()
            .filter(|a| matches!(a, Asked::Metadata))
            .count()
    }

    fn fetches(&self) -> Vec<(i16, FetchRequest)> {
        self.asked()
            .into_iter()
            .filter_map(|a| match a {
                Asked::Fetch(v, r) => Some((v, r)),
                _ => None,
            })
            .collect()
    }

    fn list_offsets(&self) -> Vec<(i16, ListOffsetsRequest)> {
        self.asked()
            .into_iter()
            .filter_map(|a| match a {
                Asked::ListOffsets(v, r) => Some((v, r)),
                _ => None,
            })
            .collect()
    }
}

/// One connection of a fake broker: ApiVersions, then requests until the client hangs up.
async fn serve(
    mut stream: TcpStream,
    apis: &'static [(ApiKey, i16)],
    layout: Arc<Layout>,
    script: Script,
    asked: Arc<Mutex<Vec<Asked>>>,
) {
    negotiate_with(&mut stream, apis).await;
    while let Ok((key, version, correlation, mut body)) = read_request(&mut stream).await {
        let request = match key {
            ApiKey::Metadata => Asked::Metadata,
            ApiKey::Fetch => {
                Asked::Fetch(version, FetchRequest::decode(&mut body, version).unwrap())
            }
            ApiKey::ListOffsets => Asked::ListOffsets(
                version,
                ListOffsetsRequest::decode(&mut body, version).unwrap(),
            ),
            other => panic!("the fake broker does not answer {other:?}"),
        };
        asked.lock().unwrap().push(request.clone());
        let mut out = BytesMut::new();
        match request {
            Asked::Metadata => {
                let request = MetadataRequest::decode(&mut body, version).unwrap();
                metadata(&layout, &request)
                    .encode(&mut out, version)
                    .unwrap();
            }
            _ => match script(&request) {
                Answer::Fetch(r) => r.encode(&mut out, version).unwrap(),
                Answer::ListOffsets(r) => r.encode(&mut out, version).unwrap(),
                Answer::Silence => continue,
            },
        }
        write_response(&mut stream, correlation, &out).await;
    }
}

/// Reads one request: its API, version, correlation id, and body.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<(ApiKey, i16, i32, Bytes)> {
    let len = stream.read_i32().await?;
    let mut frame = vec![0u8; len as usize];
    stream.read_exact(&mut frame).await?;
    let mut frame = Bytes::from(frame);
    let key = ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]])).unwrap();
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let header = RequestHeader::decode(&mut frame, key.request_header_version(version)).unwrap();
    Ok((key, version, header.correlation_id, frame))
}

/// The metadata of the topics `request` asks for, as `layout` has them.
fn metadata(layout: &Layout, request: &MetadataRequest) -> MetadataResponse {
    let brokers = layout
        .brokers
        .iter()
        .map(|(id, addr)| {
            let (host, port) = addr.rsplit_once(':').unwrap();
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(*id))
                .with_host(StrBytes::from_string(host.to_owned()))
                .with_port(port.parse().unwrap())
        })
        .collect();
    let topics = request
        .topics
        .iter()
        .flatten()
        .filter_map(|t| t.name.clone())
        .map(|name| {
            let topic = MetadataResponseTopic::default().with_name(Some(name.clone()));
            let name = name.0.as_str();
            if let Some(code) = layout.errors.get(name) {
                return topic.with_error_code(code.code());
            }
            match layout.topics.get(name) {
                Some(partitions) => topic.with_partitions(
                    partitions
                        .iter()
                        .map(|&(p, leader)| {
                            MetadataResponsePartition::default()
                                .with_partition_index(p)
                                .with_leader_id(BrokerId(leader))
                        })
                        .collect(),
                ),
                None => topic.with_error_code(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION.code()),
            }
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_topics(topics)
}

/// A Fetch answer with a partition for each partition `request` asks for, made by `answer`
/// from topic, partition and fetch offset.
fn answer_fetch(
    request: &FetchRequest,
    answer: impl Fn(&str, i32, i64) -> PartitionData,
) -> FetchResponse {
    FetchResponse::default().with_responses(
        request
            .topics
            .iter()
            .map(|t| {
                FetchableTopicResponse::default()
                    .with_topic(t.topic.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| answer(t.topic.0.as_str(), p.partition, p.fetch_offset))
                            .collect(),
                    )
            })
            .collect(),
    )
}

/// A partition's answer: `code`, and `records`.
fn data(partition: i32, code: KafkaCode, records: Option<Bytes>) -> PartitionData {
    PartitionData::default()
        .with_partition_index(partition)
        .with_error_code(code.code())
        .with_high_watermark(1000)
        .with_records(records)
}

/// A script that answers each Fetch with `answer`, and nothing else.
fn fetch_script(
    answer: impl Fn(&str, i32, i64) -> PartitionData + Send + Sync + 'static,
) -> impl Fn(&Asked) -> Answer + Send + Sync + 'static {
    move |asked| match asked {
        Asked::Fetch(_, request) => Answer::Fetch(answer_fetch(request, &answer)),
        other => panic!("unexpected {other:?}"),
    }
}

/// A fetcher whose cluster bootstraps from `addr`.
fn fetcher(addr: &str, settings: FetchSettings) -> NativeFetcher {
    let cluster = Cluster::new(&[addr.to_owned()], "fetch-test", Duration::from_secs(5));
    NativeFetcher::new(Arc::new(cluster), settings)
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

/// (partition, offset, value) of `records`, to compare.
fn seen(records: &[Record]) -> Vec<(String, i64, String)> {
    records
        .iter()
        .map(|r| {
            (
                format!("{}[{}]", r.topic, r.partition),
                r.offset,
                String::from_utf8(r.value.clone()).unwrap(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Record batches
// ---------------------------------------------------------------------------------------

/// The CRC-covered part of a batch starts here (its attributes).
const ATTRIBUTES_AT: usize = 21;

/// One uncompressed batch of `values` (keys `k<i>`) at base offset `base`.
fn batch_at(base: i64, values: &[&str]) -> BytesMut {
    stamped_batch_at(base, values, None)
}

/// [`batch_at`], stamped with a producer's identity.
fn stamped_batch_at(base: i64, values: &[&str], stamp: Option<ProducerStamp>) -> BytesMut {
    let keys: Vec<String> = (0..values.len()).map(|i| format!("k{i}")).collect();
    let records: Vec<OutRecord<'_>> = values
        .iter()
        .zip(&keys)
        .map(|(value, key)| OutRecord {
            key: Some(key.as_bytes()),
            value: value.as_bytes(),
            headers: &[],
            timestamp: 1_700_000_000_000,
        })
        .collect();
    let mut out = BytesMut::new();
    batch::encode(&mut out, &records, Compression::None, stamp).unwrap();
    // The base offset is outside the CRC.
    out[..8].copy_from_slice(&base.to_be_bytes());
    out
}

/// Sets the CRC of `batch` (a single batch) after an edit of its covered part.
fn reseal(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    batch[17..ATTRIBUTES_AT].copy_from_slice(&crc.to_be_bytes());
}

/// `batches` one after another, as a partition's fetched bytes.
fn log(batches: &[&BytesMut]) -> Bytes {
    let mut out = BytesMut::new();
    for b in batches {
        out.extend_from_slice(b);
    }
    out.freeze()
}

// ---------------------------------------------------------------------------------------
// Fetch
// ---------------------------------------------------------------------------------------

/// The records of two partitions come back in order from each position (records of a batch
/// below the position are dropped), from one Fetch that asks what the settings say.
#[tokio::test]
async fn records_of_two_partitions_come_back_in_order_from_their_positions() {
    let (listener, addr) = listen().await;
    let p0 = log(&[&batch_at(0, &["a", "b", "c"]), &batch_at(3, &["d", "e"])]);
    let p1 = log(&[&batch_at(10, &["x", "y"])]);
    let fake = Fake::start(
        listener,
        APIS,
        Layout::one_broker(&addr, &[("t", 2)]),
        fetch_script(move |_, p, _| {
            data(
                p,
                KafkaCode::NONE,
                Some(if p == 0 { p0.clone() } else { p1.clone() }),
            )
        }),
    );
    let fetcher = fetcher(&fake.addr, FetchSettings::default());

    let fetched = fetcher
        .fetch(vec![(tp("t", 0), 2), (tp("t", 1), 11)], WAIT)
        .await
        .unwrap();

    let mut by_partition = seen(&fetched.records);
    by_partition.sort_by(|a, b| a.0.cmp(&b.0)); // stable: keeps each partition's order
    let want = [
        ("t[0]", 2, "c"),
        ("t[0]", 3, "d"),
        ("t[0]", 4, "e"),
        ("t[1]", 11, "y"),
    ];
    let want: Vec<(String, i64, String)> = want
        .iter()
        .map(|&(p, o, v)| (p.to_owned(), o, v.to_owned()))
        .collect();
    assert_eq!(by_partition, want);
    assert_eq!(fetched.records[0].key.as_deref(), Some(&b"k2"[..]));
    assert!(
        fetched.out_of_range.is_empty()
            && fetched.stalled.is_empty()
            && fetched.skipped_to.is_empty()
    );
    // The consumer-lag gauge's high watermarks (issue #16), one per partition answered.
    let mut watermarks = fetched.high_watermarks.clone();
    watermarks.sort();
    assert_eq!(watermarks, [(tp("t", 0), 1000), (tp("t", 1), 1000)]);

    let fetches = fake.fetches();
    assert_eq!(fetches.len(), 1, "one Fetch for the one leader");
    let (version, request) = &fetches[0];
    assert_eq!(*version, 11, "the highest the broker speaks");
    assert_eq!(request.replica_id, BrokerId(-1));
    assert_eq!(request.max_wait_ms, 100);
    assert_eq!(request.min_bytes, 1);
    assert_eq!(request.max_bytes, 50 * 1024 * 1024);
    assert_eq!(request.isolation_level, 0);
    assert_eq!(
        (request.session_id, request.session_epoch),
        (0, -1),
        "a full fetch"
    );
    let asked: Vec<(i32, i64, i32)> = request.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition, p.fetch_offset, p.partition_max_bytes))
        .collect();
    assert_eq!(asked, [(0, 2, 1024 * 1024), (1, 11, 1024 * 1024)]);
}

/// A record's headers reach its [`Record`] in the order they were written, a repeated key
/// twice, an empty value as empty.
#[tokio::test]
async fn headers_reach_the_record_in_order() {
    let (listener, addr) = listen().await;
    let headers = [
        ("trace".to_owned(), b"t-1".to_vec()),
        ("hop".to_owned(), b"a".to_vec()),
        ("hop".to_owned(), b"b".to_vec()),
        ("empty".to_owned(), Vec::new()),
    ];
    let records = [
        OutRecord {
            key: None,
            value: b"with",
            headers: &headers,
            timestamp: 1_700_000_000_000,
        },
        OutRecord {
            key: None,
            value: b"without",
            headers: &[],
            timestamp: 1_700_000_000_000,
        },
    ];
    let mut batch = BytesMut::new();
    batch::encode(&mut batch, &records, Compression::None, None).unwrap();
    let p0 = log(&[&batch]);
    let fake = Fake::start(
        listener,
        APIS,
        Layout::one_broker(&addr, &[("t", 1)]),
        fetch_script(move |_, p, _| data(p, KafkaCode::NONE, Some(p0.clone()))),
    );
    let fetcher = fetcher(&fake.addr, FetchSettings::default());

    let fetched = fetcher.fetch(vec![(tp("t", 0), 0)], WAIT).await.unwrap();

    assert_eq!(fetched.records.len(), 2);
    assert_eq!(
        fetched.records[0].headers,
        [
            Header::new("trace", "t-1"),
            Header::new("hop", "a"),
            Header::new("hop", "b"),
            Header::new("empty", ""),
        ]
    );
    assert_eq!(fetched.records[1].headers, []);
}

/// A partition whose batch fails its CRC check is stalled at its position, with the batch
/// codec's reason, while the other partition's records arrive.
#[tokio::test]
async fn a_corrupt_batch_stalls_its_partition_while_the_other_reads() {
    let (listener, addr) = listen().await;
    let mut bad = batch_at(5, &["a", "b"]);
    let last = bad.len() - 1;
    bad[last] ^= 0x40; // inside the CRC-covered part
    let p0 = log(&[&bad]);
    let p1 = log(&[&batch_at(0, &["x"])]);
    let fake = Fake::start(
        listener,
        APIS,
        Layout::one_broker(&addr, &[("t", 2)]),
        fetch_script(move |_, p, _| {
            data(
                p,
                KafkaCode::NONE,
                Some(if p == 0 { p0.clone() } else { p1.clone() }),
            )
        }),
    );
    let fetcher = fetcher(&fake.addr, FetchSettings::default());

    let fetched = fetcher
        .fetch(vec![(tp("t", 0), 5), (tp("t", 1), 0)], WAIT)
        .await
        .unwrap();

    assert_eq!(
        seen(&fetched.records),
        [("t[1]".to_owned(), 0, "x".to_owned())]
    );
    assert_eq!(fetched.stalled.len(), 1);
    let stall = &fetched.stalled[0];
    assert_eq!((&stall.partition, stall.offset), (&tp("t", 0), 5));
    assert!(stall.reason.contains("CRC mismatch"), "{}", stall.reason);
}

/// Records of the batches before a corrupt one are read; the next round, at the corrupt
/// batch, stalls the partition there: at the first offset it could not read.
#[tokio::test]
async fn records_before_a_corrupt_batch_are_read_and_the_stall_is_at_the_batch() {
    let (listener, addr) = listen().await;
    let mut bad = batch_at(2, &["c"]);
    bad[ATTRIBUTES_AT + 1] ^= 0x01;
    let p0 = log(&[&batch_at(0, &["a", "b"]), &bad]);
    let fake = Fake::start(
        listener,
        APIS,
        Layout::one_broker(&addr, &[("t", 1)]),
        fetch_script(move |_, p, _| data(p, KafkaCode::NONE, Some(p0.clone()))),
    );
    let fetcher = fetcher(&fake.addr, FetchSettings::default());

    let first = fetcher.fetch(vec![(tp("t", 0), 0)], WAIT).await.unwrap();
    let offsets: Vec<i64> = first.records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, [0, 1]);
    assert!(first.stalled.is_empty(), "{:?}", first.stalled);

    let second = fetcher.fetch(vec![(tp("t", 0), 2)], WAIT).await.unwrap();
    assert!(second.records.is_empty());
    assert_eq!(second.stalled.len(), 1);
    assert_eq!(second.stalled[0].offset, 2);
}

/// OFFSET_OUT_OF_RANGE puts the partition in `out_of_range`, and nothing else.
#[tokio::test]
async fn offset_out_of_range_lands_in_out_of_range() {
    let (listener, addr) = listen().await;
    let fake = Fake::start(
        listener,
        APIS,
        Layout::one_broker(&addr, &[("t", 2)]),
        fetch_script(|_, p, _| match p {
            0 => data(p, KafkaCode::OFFSET_OUT_OF_RANGE, None),
            _ => data(p, KafkaCode::NONE, None),
        }),
    );
    let fetcher = fetcher(&fake.addr, FetchSettings::default());

    let fetched = fetcher
        .fetch(vec![(tp("t", 0), 99), (tp("t", 1), 0)], WAIT)
        .await
        .unwrap();

    assert_eq!(fetched.out_of_range, [tp("t", 0)]);
    assert!(
        fetched.records.is_empty() && fetched.stalled.is_empty() && fetched.skipped_to.is_empty()
    );
}

/// NOT_LEADER_OR_FOLLOWER leaves the partition out of the round and invalidates its topic:
/// the next round asks Metadata again, while a round without errors reads the cache.
#[tokio::test]
async fn not_leader_invalidates_the_topic_for_the_next_round() {
    let (listener, addr) = listen().await;
    let rounds = Arc::new(AtomicUsize::new(0));
    let script = {
        let rounds = rounds.clone();
        move |asked: &Asked| {
            let Asked::Fetch(_, request) = asked else {
                panic!("unexpected {asked:?}")
            };
            let round = rounds.fetch_add(1, Ordering::SeqCst);
            Answer::Fetch(answer_fetch(request, |_, p, _| match (round, p) {
                (0, 0) => data(p, KafkaCode::NOT_LEADER_OR_FOLLOWER, None),
                _ => data(p, KafkaCode::NONE, Some(log(&[&batch_at(0, &["v"])]))),
            }))
        }
    };
    let fake = Fake::start(
        listener,
        APIS,
        Layout::one_broker(&addr, &[("t", 2)]),
        script,
    );
    let fetcher = fetcher(&fake.addr, FetchSettings::default());
    let positions = || vec![(tp("t", 0), 0), (tp("t", 1), 0)];

    let first = fetcher.fetch(positions(), WAIT).await.unwrap();
    assert_eq!(
        seen(&first.records),
        [("t[1]".to_owned(), 0, "v".to_owned())]
    );
    assert!(first.stalled.is_empty() && first.out_of_range.is_empty());
    assert_eq!(fake.metadata_requests(), 1);

    let second = fetcher.fetch(positions(), WAIT).await.unwrap();
    assert_eq!(fake.metadata_requests(), 2, "the topic was invalidated");
    assert_eq!(second.records.len(), 2, "both partitions read");

    fetcher.fetch(positions(), WAIT).await.unwrap();
    assert_eq!(
        fake.metadata_requests(),
        2,
        "no error: the cached leaders serve"
    );
    assert_eq!(fake.fetches().len(), 3);
}

/// A partition error that retrying cannot mend stalls the partition with the code.
#[tokio::test]
async fn a_non_retriable_partition_error_stalls_with_its_code() {
    let (listener, addr) = listen().await;
    let fake = Fake::start(
        listener,
        APIS,
        Layout::one_broker(&addr, &[("t", 1)]),
        fetch_script(|_, p, _| data(p, KafkaCode::TOPIC_AUTHORIZATION_FAILED, None)),
    );
    let fetcher = fetcher(&fake.addr, FetchSettings::default());

    let fetched = fetcher.fetch(vec![(tp("t", 0), 7)], WAIT).await.unwrap();

    assert_eq!(fetched.stalled.len(), 1);
    let stall = &fetched.stalled[0];
    assert_eq!((&stall.partition, stall.offset), (&tp("t", 0), 7));
    assert_eq!(stall.reason, "TOPIC_AUTHORIZATION_FAILED (29)");
}

/// A topic the metadata refuses for good stalls its partitions without a Fetch.
#[tokio::test]
async fn a_topic_the_metadata_refuses_stalls_its_partitions() {
    let (listener, addr) = listen().await;
    let mut layout = Layout::one_broker(&addr, &[]);
    layout
        .errors
        .insert("secret".to_owned(), KafkaCode::TOPIC_AUTHORIZATION_FAILED);
    let fake = Fake::start(
        listener,
        APIS,
        layout,
        fetch_script(|_, p, _| data(p, KafkaCode::NONE, None)),
    );
    let fetcher = fetcher(&fake.addr, FetchSettings::default());

    let fetched = fetcher
        .fetch(vec![(tp("secret", 0), 3)], WAIT)
        .await
        .unwrap();

    assert_eq!(fetched.stalled.len(), 1);
    assert_eq!(fetched.stalled[0].offset, 3);
    assert!(
        fetched.stalled[0]
            .reason
            .contains("TOPIC_AUTHORIZATION_FAILED")
    );
    assert!(fake.fetches().is_empty());
}

/// A batch whose records all lie below the position (a compacted batch: its last offset
/// delta says 5 offsets, two records remain) moves the position past the batch.
#[tokio::test]
async fn a_batch_of_only_records_below_the_position_gives_skipped_to() {
    let (listener, addr) = listen().await;
    let mut compacted = batch_at(0, &["a", "b"]);
    compacted[ATTRIBUTES_AT + 2..ATTRIBUTES_AT + 6].copy_from_slice(&4i32.to_be_bytes());
    reseal(&mut compacted);
    let p0 = log(&[&compacted]);
    let fake = Fake::start(
        listener,
        APIS,
        Layout::one_broker(&addr, &[("t", 1)]),
        fetch_script(move |_, p, _| data(p, KafkaCode::NONE, Some(p0.clone()))),
    );
    let fetcher = fetcher(&fake.addr, FetchSettings::default());

    let fetched = fetcher.fetch(vec![(tp("t", 0), 2)], WAIT).await.unwrap();

    assert!(fetched.records.is_empty());
    assert_eq!(fetched.skipped_to, [(tp("t", 0), 5)]);

    // From the start the same batch gives its records, and no skip (the member moves past
    // the last record itself).
    let from_start = fetcher.fetch(vec![(tp("t", 0), 0)], WAIT).await.unwrap();
    assert_eq!(from_start.records.len(), 2);
    assert!(from_start.skipped_to.is_empty());
}

/// read_committed asks with isolation level 1 and drops the records of aborted
/// transactions, which then only move the position; read_uncommitted returns them.
#[tokio::test]
async fn read_committed_leaves_out_aborted_records() {
    let (listener, addr) = listen().await;
    let stamp = ProducerStamp {
        producer_id: 42,
        producer_epoch: 0,
        base_sequence: 0,
    };
    let mut transactional = stamped_batch_at(0, &["a", "b"], Some(stamp));
    transactional[ATTRIBUTES_AT + 1] |= 0x10; // the transactional attribute
    reseal(&mut transactional);
    let p0 = log(&[&transactional]);
    let fake = Fake::start(
        listener,
        APIS,
        Layout::one_broker(&addr, &[("t", 1)]),
        fetch_script(move |_, p, _| {
            data(p, KafkaCode::NONE, Some(p0.clone())).with_aborted_transactions(Some(vec![
                AbortedTransaction::default()
                    .with_producer_id(ProducerId(42))
                    .with_first_offset(0),
            ]))
        }),
    );
    let committed = fetcher(
        &fake.addr,
        FetchSettings {
            isolation: Isolation::ReadCommitted,
            ..FetchSettings::default()
        },
    );
    let fetched = committed.fetch(vec![(tp("t", 0), 0)], WAIT).await.unwrap();
    assert!(fetched.records.is_empty());
    assert_eq!(fetched.skipped_to, [(tp("t", 0), 2)]);
    assert_eq!(fake.fetches()[0].1.isolation_level, 1);

    let uncommitted = fetcher(&fake.addr, FetchSettings::default());
    let fetched = uncommitted
        .fetch(vec![(tp("t", 0), 0)], WAIT)
        .await
        .unwrap();
    assert_eq!(fetched.records.len(), 2);
}

/// `fetch.min.bytes`, `fetch.max.bytes` and `max.partition.fetch.bytes` go into the request
/// as set; the broker may hold it for the shorter of `fetch.max.wait.ms` and the member's wait.
#[tokio::test]
async fn the_fetch_settings_shape_the_request_and_the_shorter_wait_wins() {
    let (listener, addr) = listen().await;
    let fake = Fake::start(
        listener,
        APIS,
        Layout::one_broker(&addr, &[("t", 1)]),
        fetch_script(|_, p, _| data(p, KafkaCode::NONE, None)),
    );
    let fetcher = fetcher(
        &fake.addr,
        FetchSettings {
            max_bytes: 4096,
            partition_max_bytes: 2048,
            min_bytes: 512,
            max_wait: Duration::from_millis(40),
            isolation: Isolation::ReadUncommitted,
            ..FetchSettings::default()
        },
    );
    fetcher.fetch(vec![(tp("t", 0), 0)], WAIT).await.unwrap();
    fetcher
        .fetch(vec![(tp("t", 0), 0)], Duration::from_millis(25))
        .await
        .unwrap();
    let fetches = fake.fetches();
    let request = &fetches[0].1;
    assert_eq!(
        (request.min_bytes, request.max_bytes),
        (512, 4096),
        "{request:?}"
    );
    assert_eq!(request.topics[0].partitions[0].partition_max_bytes, 2048);
    assert_eq!(
        request.max_wait_ms, 40,
        "fetch.max.wait.ms below the member's 100 ms"
    );
    assert_eq!(
        fetches[1].1.max_wait_ms, 25,
        "the member's wait below 40 ms"
    );
}

/// A broker that cannot be reached leaves its partitions out (and invalidates their topic)
/// while the other broker's records count; when it is the only broker, the fetch fails
/// retriably.
#[tokio::test]
async fn a_broker_that_fails_does_not_keep_the_others_from_reading() {
    let (listener, addr) = listen().await;
    // A port that was free a moment ago: connecting is refused at once.
    let gone = {
        let (listener, addr) = listen().await;
        drop(listener);
        addr
    };
    let layout = Layout {
        brokers: vec![(1, addr.clone()), (2, gone)],
        topics: [
            ("a".to_owned(), vec![(0, 1)]),
            ("b".to_owned(), vec![(0, 2)]),
        ]
        .into_iter()
        .collect(),
        errors: BTreeMap::new(),
    };
    let fake = Fake::start(
        listener,
        APIS,
        layout,
        fetch_script(|_, p, _| data(p, KafkaCode::NONE, Some(log(&[&batch_at(0, &["v"])])))),
    );
    let fetcher = fetcher(&fake.addr, FetchSettings::default());

    let fetched = fetcher
        .fetch(vec![(tp("a", 0), 0), (tp("b", 0), 0)], WAIT)
        .await
        .unwrap();
    assert_eq!(
        seen(&fetched.records),
        [("a[0]".to_owned(), 0, "v".to_owned())]
    );
    assert_eq!(fake.metadata_requests(), 1);

    let error = fetcher
        .fetch(vec![(tp("b", 0), 0)], WAIT)
        .await
        .unwrap_err();
    assert!(error.is_retriable(), "{error}");
    assert_eq!(fake.metadata_requests(), 2, "b was invalidated");
}

/// A broker older than Fetch v4 gets a clear error that retrying cannot mend, naming both
/// version ranges.
#[tokio::test]
async fn a_broker_without_fetch_v4_is_refused_naming_its_range() {
    const OLD: &[(ApiKey, i16)] = &[
        (ApiKey::ApiVersions, 3),
        (ApiKey::Metadata, 4),
        (ApiKey::Fetch, 3),
    ];
    let (listener, addr) = listen().await;
    let fake = Fake::start(
        listener,
        OLD,
        Layout::one_broker(&addr, &[("t", 1)]),
        fetch_script(|_, p, _| data(p, KafkaCode::NONE, None)),
    );
    let fetcher = fetcher(&fake.addr, FetchSettings::default());

    let error = fetcher
        .fetch(vec![(tp("t", 0), 0)], WAIT)
        .await
        .unwrap_err();

    assert!(!error.is_retriable());
    let message = error.to_string();
    assert!(
        message.contains("the broker speaks 0..=3, this client 4..=12"),
        "{message}"
    );
    assert!(fake.fetches().is_empty());
}

/// A top-level error (v7+) that retrying cannot mend fails the whole fetch with its code.
#[tokio::test]
async fn a_non_retriable_top_level_error_fails_the_fetch() {
    let (listener, addr) = listen().await;
    let fake = Fake::start(
        listener,
        APIS,
        Layout::one_broker(&addr, &[("t", 1)]),
        |asked: &Asked| {
            let Asked::Fetch(_, request) = asked else {
                panic!("unexpected {asked:?}")
            };
            Answer::Fetch(
                answer_fetch(request, |_, p, _| data(p, KafkaCode::NONE, None))
                    .with_error_code(KafkaCode::CLUSTER_AUTHORIZATION_FAILED.code()),
            )
        },
    );
    let fetcher = fetcher(&fake.addr, FetchSettings::default());

    let error = fetcher
        .fetch(vec![(tp("t", 0), 0)], WAIT)
        .await
        .unwrap_err();

    assert_eq!(
        error.kafka_code(),
        Some(KafkaCode::CLUSTER_AUTHORIZATION_FAILED)
    );
    assert!(!error.is_retriable());
}

/// With no positions the fetch waits out its wait and brings nothing (a member whose
/// partitions are all paused must not spin).
#[tokio::test(start_paused = true)]
async fn no_positions_waits_and_brings_nothing() {
    let fetcher = fetcher("127.0.0.1:1", FetchSettings::default());
    let started = Instant::now();
    let fetched = fetcher
        .fetch(Vec::new(), Duration::from_millis(300))
        .await
        .unwrap();
    // Virtual time: only the fetch's sleep advances it.
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert!(fetched.records.is_empty());
}

// ---------------------------------------------------------------------------------------
// ListOffsets
// ---------------------------------------------------------------------------------------

/// A ListOffsets answer: each asked partition's offset by `offset` from partition and
/// timestamp, or the error `code_of` gives.
fn answer_list(
    request: &ListOffsetsRequest,
    answer: impl Fn(&str, i32, i64) -> (KafkaCode, i64),
) -> ListOffsetsResponse {
    ListOffsetsResponse::default().with_topics(
        request
            .topics
            .iter()
            .map(|t| {
                ListOffsetsTopicResponse::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                let (code, offset) =
                                    answer(t.name.0.as_str(), p.partition_index, p.timestamp);
                                ListOffsetsPartitionResponse::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code.code())
                                    .with_offset(offset)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

/// Earliest asks timestamp -2 and latest -1, for every partition of the topics, in one
/// ListOffsets to their leader, at the highest version both speak, with the isolation level.
#[tokio::test]
async fn list_offsets_asks_the_leader_for_earliest_or_latest() {
    let (listener, addr) = listen().await;
    let fake = Fake::start(
        listener,
        APIS,
        Layout::one_broker(&addr, &[("t", 2), ("u", 1)]),
        |asked: &Asked| {
            let Asked::ListOffsets(_, request) = asked else {
                panic!("unexpected {asked:?}")
            };
            Answer::ListOffsets(answer_list(request, |topic, p, timestamp| {
                let base = if topic == "t" { 0 } else { 50 };
                match timestamp {
                    -2 => (KafkaCode::NONE, base + i64::from(p)),
                    -1 => (KafkaCode::NONE, base + 100 + i64::from(p)),
                    other => panic!("timestamp {other}"),
                }
            }))
        },
    );
    let settings = FetchSettings {
        isolation: Isolation::ReadCommitted,
        ..FetchSettings::default()
    };
    let fetcher = fetcher(&fake.addr, settings);
    let topics = || vec!["t".to_owned(), "u".to_owned()];

    let earliest = fetcher
        .list_offsets(topics(), OffsetReset::Earliest)
        .await
        .unwrap();
    let want: BTreeMap<TopicPartition, i64> = [(tp("t", 0), 0), (tp("t", 1), 1), (tp("u", 0), 50)]
        .into_iter()
        .collect();
    assert_eq!(earliest, want);
    let latest = fetcher
        .list_offsets(topics(), OffsetReset::Latest)
        .await
        .unwrap();
    let want: BTreeMap<TopicPartition, i64> =
        [(tp("t", 0), 100), (tp("t", 1), 101), (tp("u", 0), 150)]
            .into_iter()
            .collect();
    assert_eq!(latest, want);

    let asked = fake.list_offsets();
    assert_eq!(asked.len(), 2, "one request per call for the one leader");
    let (version, request) = &asked[0];
    assert_eq!(*version, 5);
    assert_eq!(request.replica_id, BrokerId(-1));
    assert_eq!(request.isolation_level, 1);
    assert_eq!(request.topics.len(), 2);
    assert_eq!(
        fake.metadata_requests(),
        2,
        "each call reads fresh metadata"
    );
}

/// A retriable partition error retries the whole call after fresh metadata.
#[tokio::test]
async fn list_offsets_retries_a_retriable_partition_error() {
    let (listener, addr) = listen().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let script = {
        let calls = calls.clone();
        move |asked: &Asked| {
            let Asked::ListOffsets(_, request) = asked else {
                panic!("unexpected {asked:?}")
            };
            let call = calls.fetch_add(1, Ordering::SeqCst);
            Answer::ListOffsets(answer_list(request, |_, p, _| match (call, p) {
                (0, 1) => (KafkaCode::NOT_LEADER_OR_FOLLOWER, -1),
                _ => (KafkaCode::NONE, 7),
            }))
        }
    };
    let fake = Fake::start(
        listener,
        APIS,
        Layout::one_broker(&addr, &[("t", 2)]),
        script,
    );
    let fetcher = fetcher(&fake.addr, FetchSettings::default());

    let offsets = fetcher
        .list_offsets(vec!["t".to_owned()], OffsetReset::Earliest)
        .await
        .unwrap();

    assert_eq!(offsets.len(), 2);
    assert_eq!(fake.list_offsets().len(), 2);
    assert_eq!(fake.metadata_requests(), 2);
}

/// A partition error that retrying cannot mend fails the call at once, naming the partition.
#[tokio::test]
async fn list_offsets_names_the_partition_a_broker_refused() {
    let (listener, addr) = listen().await;
    let fake = Fake::start(
        listener,
        APIS,
        Layout::one_broker(&addr, &[("t", 2)]),
        |asked: &Asked| {
            let Asked::ListOffsets(_, request) = asked else {
                panic!("unexpected {asked:?}")
            };
            Answer::ListOffsets(answer_list(request, |_, p, _| match p {
                1 => (KafkaCode::TOPIC_AUTHORIZATION_FAILED, -1),
                _ => (KafkaCode::NONE, 0),
            }))
        },
    );
    let fetcher = fetcher(&fake.addr, FetchSettings::default());

    let error = fetcher
        .list_offsets(vec!["t".to_owned()], OffsetReset::Latest)
        .await
        .unwrap_err();

    assert_eq!(
        error.kafka_code(),
        Some(KafkaCode::TOPIC_AUTHORIZATION_FAILED)
    );
    assert!(error.to_string().contains("t[1]"), "{error}");
    assert_eq!(fake.list_offsets().len(), 1, "not retried");
}

// ---------------------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------------------

/// The batch ends follow the length fields and stop at a partial or impossible batch.
#[test]
fn batch_ends_follow_the_length_fields() {
    let one = batch_at(0, &["a"]);
    let two = batch_at(1, &["b", "c"]);
    let data = log(&[&one, &two]);
    assert_eq!(batch_ends(&data), [one.len(), one.len() + two.len()]);
    assert_eq!(
        batch_ends(&data[..data.len() - 1]),
        [one.len()],
        "a partial batch"
    );
    let mut negative = data.to_vec();
    negative[8..12].copy_from_slice(&(-1i32).to_be_bytes());
    assert!(batch_ends(&negative).is_empty());
}

/// Issue #15: a leader that hangs (SIGSTOPped) held its fetch round for the wait plus a fixed
/// 30 s, whatever the transport's request timeout, and with it every other broker's records.
/// The round now gives up on it after the wait plus the request timeout, so the next round
/// routes by fresh metadata.
#[tokio::test]
async fn a_hung_leader_holds_its_round_no_longer_than_the_request_timeout() {
    let (listener, addr) = listen().await;
    let fake = Fake::start(
        listener,
        APIS,
        Layout::one_broker(&addr, &[("t", 1)]),
        |_| Answer::Silence,
    );
    let request_timeout = Duration::from_millis(300);
    let fetcher = fetcher(
        &fake.addr,
        FetchSettings {
            request_timeout,
            ..FetchSettings::default()
        },
    );
    let started = std::time::Instant::now();
    let fetched = tokio::time::timeout(
        Duration::from_secs(10),
        fetcher.fetch(vec![(tp("t", 0), 0)], WAIT),
    )
    .await
    .expect("the round ends well within 10 s");
    let error = fetched.expect_err("the only broker of the round failed");
    assert!(error.is_retriable(), "{error}");
    assert!(
        started.elapsed() < WAIT + request_timeout + Duration::from_secs(2),
        "the round took {:?}",
        started.elapsed()
    );
}

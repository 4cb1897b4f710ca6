//! Replaying dead letters on the in-memory backend.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use godev_kafka::consumer::{DeadLetter, DeadLetterReason, replay_dead_letters};
use godev_kafka::transport::memory::MemoryTransport;
use godev_kafka::transport::{
    BoxFuture, GroupMember, GroupOptions, OutgoingRecord, Record, Transport, Unsent,
};

fn letter(origin_partition: i32, origin_offset: i64, key: &[u8], value: &[u8]) -> Vec<u8> {
    let record = Record::new(
        "payments",
        origin_partition,
        origin_offset,
        Some(key.to_vec()),
        value,
    );
    let mut letter =
        DeadLetter::from_record(&record, "g", DeadLetterReason::Permanent, "boom".into());
    letter.attempts = 1;
    serde_json::to_vec(&letter).unwrap()
}

#[tokio::test]
async fn replay_writes_originals_back_byte_exact_and_resumes_after_what_it_committed() {
    let memory = MemoryTransport::new(2);
    memory.create_topic("payments", 3);
    memory.create_topic("payments.dlq", 2);
    let transport: Arc<dyn Transport> = Arc::new(memory.clone());
    let put = |partition, value: Vec<u8>| {
        let record = godev_kafka::transport::OutgoingRecord {
            topic: "payments.dlq".into(),
            partition,
            key: None,
            value,
        };
        let transport = transport.clone();
        async move { transport.produce(record).await.unwrap() }
    };
    put(0, letter(2, 17, b"k1", b"{\"amount\":1}")).await;
    put(1, letter(1, 4, b"k2", &[0xff, 0xfe])).await;
    put(1, b"not a dead letter".to_vec()).await;

    let report = replay_dead_letters(
        transport.clone(),
        "payments.dlq",
        "replayer",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!((report.replayed, report.unreadable), (2, 1));
    let p2 = memory.records("payments", 2);
    assert_eq!(
        (p2[0].key.as_deref(), p2[0].value.as_slice()),
        (Some(&b"k1"[..]), &b"{\"amount\":1}"[..])
    );
    let p1 = memory.records("payments", 1);
    assert_eq!(
        p1[0].value,
        vec![0xff, 0xfe],
        "non-UTF-8 values come back byte-exact"
    );

    put(0, letter(0, 9, b"k3", b"later")).await;
    let report = replay_dead_letters(
        transport,
        "payments.dlq",
        "replayer",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(
        report.replayed, 1,
        "the second replay starts after what the first committed"
    );
    assert_eq!(memory.records("payments", 0)[0].value, b"later");
}

/// Writes `value` to `payments.dlq` partition `partition`.
async fn put(transport: &dyn Transport, partition: i32, value: Vec<u8>) {
    let record = OutgoingRecord {
        topic: "payments.dlq".into(),
        partition,
        key: None,
        value,
    };
    transport.produce(record).await.unwrap();
}

/// Issue #12 F4: a dead letter with `"origin_partition": -1` passed the replay, failed its
/// produce, and the replay stopped before committing: every later replay stopped at it.
#[tokio::test]
async fn good_letters_behind_ones_that_cannot_be_replayed_are_replayed_and_the_bad_ones_reported() {
    let memory = MemoryTransport::new(1);
    memory.create_topic("payments", 3);
    memory.create_topic("payments.dlq", 1);
    let transport: Arc<dyn Transport> = Arc::new(memory.clone());
    let negative = String::from_utf8(letter(1, 5, b"k", b"{\"amount\":2}"))
        .unwrap()
        .replace(r#""origin_partition":1,"#, r#""origin_partition": -1,"#);
    assert!(negative.contains(r#""origin_partition": -1"#), "{negative}");
    let missing_topic = String::from_utf8(letter(1, 6, b"k", b"{\"amount\":3}"))
        .unwrap()
        .replace(
            r#""origin_topic":"payments""#,
            r#""origin_topic":"no such topic""#,
        );
    let bounded = {
        let record = Record::new("payments", 0, 7, None, vec![0x01; 2 << 20]);
        let letter =
            DeadLetter::from_record(&record, "g", DeadLetterReason::Oversized, "big".into());
        assert!(letter.value_omitted);
        serde_json::to_vec(&letter).unwrap()
    };
    let damaged = String::from_utf8(letter(1, 8, b"k", &[0xff]))
        .unwrap()
        .replace(r#""value_base64":"/w==""#, r#""value_base64":"!!""#);
    assert!(damaged.contains("!!"), "{damaged}");
    for value in [
        letter(0, 1, b"k1", b"first"),
        negative.into_bytes(),
        letter(1, 2, b"k2", b"second"),
        missing_topic.into_bytes(),
        bounded,
        damaged.into_bytes(),
        letter(2, 3, b"k3", b"third"),
    ] {
        put(&*transport, 0, value).await;
    }

    let report = replay_dead_letters(
        transport.clone(),
        "payments.dlq",
        "replayer",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let replayed: Vec<Vec<u8>> = (0..3)
        .flat_map(|p| memory.records("payments", p))
        .map(|r| r.value)
        .collect();
    assert_eq!(replayed, [&b"first"[..], b"second", b"third"]);
    assert_eq!((report.replayed, report.unreadable), (3, 0));
    let skipped: Vec<(i32, i64, &str)> = report
        .skipped
        .iter()
        .map(|s| (s.partition, s.offset, s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 4, "{skipped:?}");
    for ((partition, offset, reason), (at, says)) in skipped.iter().zip([
        (1, "origin_partition -1 is not a partition"),
        (
            3,
            "origin topic `no such topic` has characters Kafka does not allow",
        ),
        (4, "bounded form"),
        (5, "value_base64 is not base64"),
    ]) {
        assert_eq!((*partition, *offset), (0, at), "{reason}");
        assert!(reason.contains(says), "{reason:?} should say {says:?}");
    }
    assert_eq!(
        memory.committed("replayer", "payments.dlq", 0),
        Some(7),
        "committed past the letters it skipped"
    );
    assert_eq!(memory.end_offset("payments.dlq", 0), 7, "nothing deleted");

    let again = replay_dead_letters(
        transport,
        "payments.dlq",
        "replayer",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(
        (again.replayed, again.skipped.len()),
        (0, 0),
        "a second replay does not stop at them either"
    );
}

/// A memory transport whose produce fails once, retriably, after `succeed_first` more
/// produces went through (never while it is `None`).
struct Flaky {
    memory: MemoryTransport,
    succeed_first: Mutex<Option<usize>>,
}

impl Transport for Flaky {
    fn partition_count<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, godev_kafka::Result<i32>> {
        self.memory.partition_count(topic)
    }

    fn end_offsets<'a>(
        &'a self,
        topic: &'a str,
    ) -> BoxFuture<'a, godev_kafka::Result<BTreeMap<i32, i64>>> {
        self.memory.end_offsets(topic)
    }

    fn create_topic<'a>(
        &'a self,
        topic: &'a str,
        partitions: i32,
    ) -> BoxFuture<'a, godev_kafka::Result<()>> {
        Transport::create_topic(&self.memory, topic, partitions)
    }

    fn produce(&self, record: OutgoingRecord) -> BoxFuture<'_, Result<i64, Unsent>> {
        let mut left = self.succeed_first.lock().unwrap();
        match *left {
            Some(0) => {
                *left = None;
                // What a transport says when the brokers are out of reach.
                let error = godev_kafka::Error::Transport {
                    operation: format!("produce to {}", record.topic),
                    message: "no broker reachable".into(),
                    retriable: true,
                };
                Box::pin(async move { Err(Unsent::new(record, error)) })
            }
            Some(n) => {
                *left = Some(n - 1);
                self.memory.produce(record)
            }
            None => self.memory.produce(record),
        }
    }

    fn join(
        &self,
        options: GroupOptions,
    ) -> BoxFuture<'_, godev_kafka::Result<Box<dyn GroupMember>>> {
        self.memory.join(options)
    }

    fn name(&self) -> &'static str {
        "flaky-memory"
    }

    fn brokers(&self) -> Vec<String> {
        Vec::new()
    }
}

#[tokio::test]
async fn a_replay_stopped_by_a_transport_failure_resumes_at_the_letter_it_stopped_at() {
    let memory = MemoryTransport::new(1);
    memory.create_topic("payments", 1);
    memory.create_topic("payments.dlq", 1);
    let flaky = Arc::new(Flaky {
        memory: memory.clone(),
        succeed_first: Mutex::new(None),
    });
    for (offset, value) in [(1, &b"first"[..]), (2, b"second"), (3, b"third")] {
        put(&*flaky, 0, letter(0, offset, b"k", value)).await;
    }
    let replay = || {
        replay_dead_letters(
            flaky.clone(),
            "payments.dlq",
            "replayer",
            Duration::from_secs(5),
        )
    };
    // The first letter goes through; then the brokers are out of reach.
    *flaky.succeed_first.lock().unwrap() = Some(1);
    let error = replay().await.unwrap_err();
    assert!(error.is_retriable(), "{error}");
    assert_eq!(
        memory.records("payments", 0).len(),
        1,
        "the first was written"
    );
    assert_eq!(
        memory.committed("replayer", "payments.dlq", 0),
        Some(1),
        "and committed; the second was not"
    );

    let report = replay().await.unwrap();
    assert_eq!((report.replayed, report.skipped.len()), (2, 0));
    let values: Vec<Vec<u8>> = memory
        .records("payments", 0)
        .into_iter()
        .map(|r| r.value)
        .collect();
    assert_eq!(
        values,
        [&b"first"[..], b"second", b"third"],
        "resumed at the second, the first not written twice"
    );
}

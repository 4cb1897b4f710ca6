//! Replaying dead letters on the in-memory backend.

use std::sync::Arc;
use std::time::Duration;

use godev_kafka::consumer::{DeadLetter, DeadLetterReason, replay_dead_letters};
use godev_kafka::transport::memory::MemoryTransport;
use godev_kafka::transport::{Record, Transport};

fn letter(origin_partition: i32, origin_offset: i64, key: &[u8], value: &[u8]) -> Vec<u8> {
    let record = Record {
        topic: "payments".into(),
        partition: origin_partition,
        offset: origin_offset,
        key: Some(key.to_vec()),
        value: value.to_vec(),
    };
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

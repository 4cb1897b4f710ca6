//! 2. One of three member processes is SIGKILLed under load: after the session timeout its
//!    partitions move to the two survivors, and every event is handled.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use godev_kafka::testing;
use godev_kafka::transport::Transport;

use super::member::{MemberProcess, all_handled, balanced, scratch_dir, wait_handled};
use super::{Progress, duplicates, figure, now_ms, produce_stream, producer, sample};
use crate::support;

const PARTITIONS: i32 = 6;
const EVENTS: u64 = 30_000;
const SESSION: Duration = Duration::from_secs(3);

pub fn test() {
    crate::runtime().block_on(run());
}

async fn run() {
    let brokers = support::brokers().await;
    let topic = testing::unique_name("fault-member-crash");
    let group = testing::unique_name("fault-member-crash-group");
    testing::create_topic(&brokers, &topic, PARTITIONS)
        .await
        .expect("create topic");
    let dir = scratch_dir("member-crash");
    let mut members: Vec<MemberProcess> = (0..3)
        .map(|i| MemberProcess::spawn(&dir, &format!("m{i}"), &brokers, &topic, &group, 0, SESSION))
        .collect();
    support::wait_until(
        "three member processes sharing the six partitions",
        Duration::from_secs(60),
        || {
            let done = balanced(&members.iter().collect::<Vec<_>>(), PARTITIONS);
            async move { done }
        },
    )
    .await;

    // About 3000 events a second, for ten seconds.
    let transport: Arc<dyn Transport> = support::transport(&brokers).await;
    let progress = Arc::new(Progress::default());
    let production = tokio::spawn(produce_stream(
        producer(transport, &topic),
        EVENTS,
        300,
        Duration::from_millis(100),
        Duration::from_millis(250),
        progress.clone(),
    ));

    support::wait_until(
        "the victim to handle 2000 events",
        Duration::from_secs(60),
        || {
            let n = members[0].output().handled.len();
            async move { n >= 2000 }
        },
    )
    .await;
    let lost_partitions = members[0].output().assigned();
    let killed_at = now_ms();
    members[0].crash();
    let victim_handled = members[0].output().handled.len();
    eprintln!(
        "member m0 (pid {}) SIGKILLed owning partitions {lost_partitions:?}",
        members[0].pid()
    );

    let survivors: Vec<&MemberProcess> = members[1..].iter().collect();
    support::wait_until(
        "the survivors to own all partitions",
        Duration::from_secs(60),
        || {
            let done = balanced(&survivors, PARTITIONS);
            async move { done }
        },
    )
    .await;
    // Takeover: from the kill to the survivors' new assignment, and to the first record of a
    // lost partition handled by a survivor.
    let reassigned_at = survivors
        .iter()
        .filter_map(|m| m.output().assignments.last().map(|(ms, _)| *ms))
        .max()
        .unwrap();
    let takeover_ms = reassigned_at.saturating_sub(killed_at);
    support::wait_until(
        "a survivor to handle a record of a lost partition",
        Duration::from_secs(60),
        || {
            let done = survivors.iter().any(|m| {
                m.output()
                    .handled
                    .iter()
                    .any(|(ms, h)| *ms > killed_at && lost_partitions.contains(&h.partition))
            });
            async move { done }
        },
    )
    .await;
    let first_after_ms = survivors
        .iter()
        .flat_map(|m| m.output().handled)
        .filter(|(ms, h)| *ms > killed_at && lost_partitions.contains(&h.partition))
        .map(|(ms, _)| ms - killed_at)
        .min()
        .unwrap();

    let sent = tokio::time::timeout(Duration::from_secs(120), production)
        .await
        .expect("production finished in time")
        .expect("producer task");
    assert!(
        sent.failed.is_empty(),
        "sends failed: {}",
        sample(&sent.failed, 10)
    );
    let acked: BTreeSet<u64> = sent.acked.keys().copied().collect();
    let all: Vec<&MemberProcess> = members.iter().collect();
    wait_handled(&all, &acked, Duration::from_secs(90)).await;

    for member in &members[1..] {
        member.terminate();
    }
    for member in &mut members[1..] {
        let (status, _) = member
            .wait_exit(Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("{} did not exit after SIGTERM", member.name));
        assert!(
            status.success(),
            "{} exited with {status}:\n{}",
            member.name,
            member.stderr_tail()
        );
    }
    let handled = all_handled(&members.iter().collect::<Vec<_>>());
    let (extra, twice) = duplicates(&handled);
    if extra > 0 {
        println!(
            "member crash: {extra} duplicate deliveries (events handled by m0 after its last commit), e.g. {}",
            sample(twice.keys(), 20)
        );
    }
    // Kept when the test fails, for a look at the members' output.
    let _ = std::fs::remove_dir_all(&dir);
    figure(
        "member_crash",
        &[
            ("events", EVENTS.to_string()),
            ("acked", acked.len().to_string()),
            ("handled", handled.len().to_string()),
            ("duplicates", extra.to_string()),
            ("victim_handled", victim_handled.to_string()),
            ("session_ms", SESSION.as_millis().to_string()),
            ("takeover_ms", takeover_ms.to_string()),
            ("first_record_after_kill_ms", first_after_ms.to_string()),
        ],
    );
}

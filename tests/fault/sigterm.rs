//! 5. SIGTERM under load: a member process that handles slowly gets SIGTERM, stops within
//!    its shutdown deadline and commits exactly the prefix it handled per partition; a new
//!    member finishes the rest without handling anything twice.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use godev_kafka::testing;

use super::member::{Setup, all_handled, stop_all, wait_handled};
use super::{Sent, consumer_settings, figure, sample, send_all};
use crate::support::{self, Backend};

const PARTITIONS: i32 = 3;
const EVENTS: u64 = 3_000;
/// Per record, in the slow member.
const DELAY_MS: u64 = 20;
const SESSION: Duration = Duration::from_secs(3);

pub fn test(backend: Backend) {
    crate::runtime().block_on(run(backend));
}

async fn run(backend: Backend) {
    let setup = Setup::new(backend, "sigterm", PARTITIONS, SESSION).await;
    let (brokers, topic, group) = (&setup.brokers, &setup.topic, &setup.group);
    let producer = setup.producer().await;
    let mut sent = Sent::default();
    for start in (0..EVENTS).step_by(1000) {
        sent.absorb(send_all(&producer, start..start + 1000).await);
    }
    assert!(
        sent.failed.is_empty(),
        "sends failed: {}",
        sample(&sent.failed, 10)
    );

    let mut slow = setup.spawn("slow", DELAY_MS);
    support::wait_until(
        "the slow member to handle 300 events",
        Duration::from_secs(60),
        || {
            let n = slow.output().handled.len();
            async move { n >= 300 }
        },
    )
    .await;
    slow.terminate();
    let deadline = consumer_settings(backend, SESSION).shutdown_timeout;
    let (status, shutdown) = slow
        .wait_exit(deadline + Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("the member did not exit within {deadline:?} of SIGTERM"));
    assert!(
        status.success(),
        "the member exited with {status}:\n{}",
        slow.stderr_tail()
    );
    assert!(
        shutdown < deadline,
        "shutdown took {shutdown:?}, more than the {deadline:?} deadline"
    );
    let out = slow.output();
    assert_eq!(
        out.stopped.as_ref().map(|(_, r)| r.as_str()),
        Some("ok"),
        "shutdown result"
    );

    // What it handled is, per partition, a prefix of the log, and exactly what it committed.
    let mut prefix: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (_, h) in &out.handled {
        prefix.entry(h.partition).or_default().push(h.offset);
    }
    let committed = testing::committed_offsets(brokers, group, topic)
        .await
        .expect("committed offsets");
    for p in 0..PARTITIONS {
        let offsets = prefix.get(&p).cloned().unwrap_or_default();
        let n = offsets.len() as i64;
        assert_eq!(
            offsets,
            (0..n).collect::<Vec<_>>(),
            "partition {p}: handled offsets are not a prefix"
        );
        assert_eq!(
            committed.get(&p).copied().unwrap_or(0),
            n,
            "partition {p}: committed {committed:?}, handled prefix {n}"
        );
    }
    let handled_before = out.handled.len();

    let mut fresh = setup.spawn("restarted", 0);
    let acked: BTreeSet<u64> = sent.acked.keys().copied().collect();
    wait_handled(&[&slow, &fresh], &acked, Duration::from_secs(60)).await;
    let handled = all_handled(&[&slow, &fresh]);
    let mut once: BTreeSet<(i32, i64)> = BTreeSet::new();
    let twice: Vec<(i32, i64)> = handled
        .iter()
        .map(|h| (h.partition, h.offset))
        .filter(|pos| !once.insert(*pos))
        .collect();
    assert!(
        twice.is_empty(),
        "{} records handled twice across the restart: {}",
        twice.len(),
        sample(&twice, 10)
    );
    assert_eq!(handled.len(), EVENTS as usize);
    stop_all(std::slice::from_mut(&mut fresh)).await;
    setup.clean_up();
    figure(
        backend,
        "sigterm",
        &[
            ("events", EVENTS.to_string()),
            ("handler_delay_ms", DELAY_MS.to_string()),
            ("handled_before_sigterm", handled_before.to_string()),
            ("shutdown_ms", shutdown.as_millis().to_string()),
            ("committed", format!("{committed:?}").replace(' ', "")),
            (
                "handled_after_restart",
                (handled.len() - handled_before).to_string(),
            ),
            ("duplicates", twice.len().to_string()),
        ],
    );
}

//! 3. Rolling restart under load: each of three member processes in turn gets SIGTERM, stops
//!    gracefully and is replaced by a new process, while a producer keeps sending; every event
//!    is handled.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use godev_kafka::testing;
use godev_kafka::transport::Transport;

use super::member::{MemberProcess, all_handled, balanced, scratch_dir, wait_handled};
use super::{Progress, duplicates, figure, produce_stream, producer, sample};
use crate::support;

const PARTITIONS: i32 = 6;
const EVENTS: u64 = 40_000;
const SESSION: Duration = Duration::from_secs(3);

pub fn test() {
    crate::runtime().block_on(run());
}

async fn run() {
    let brokers = support::brokers().await;
    let topic = testing::unique_name("fault-rolling");
    let group = testing::unique_name("fault-rolling-group");
    testing::create_topic(&brokers, &topic, PARTITIONS)
        .await
        .expect("create topic");
    let dir = scratch_dir("rolling-restart");
    let spawn = |name: &str| MemberProcess::spawn(&dir, name, &brokers, &topic, &group, 0, SESSION);
    let mut live: Vec<MemberProcess> = (0..3).map(|i| spawn(&format!("m{i}"))).collect();
    let mut gone: Vec<MemberProcess> = Vec::new();
    support::wait_until(
        "three member processes sharing the six partitions",
        Duration::from_secs(60),
        || {
            let done = balanced(&live.iter().collect::<Vec<_>>(), PARTITIONS);
            async move { done }
        },
    )
    .await;

    // About 2000 events a second, for twenty seconds.
    let transport: Arc<dyn Transport> = support::transport(&brokers).await;
    let progress = Arc::new(Progress::default());
    let production = tokio::spawn(produce_stream(
        producer(transport, &topic),
        EVENTS,
        200,
        Duration::from_millis(100),
        Duration::from_millis(250),
        progress.clone(),
    ));

    let mut shutdowns = Vec::new();
    let mut rebalances = Vec::new();
    let mut during_production = 0;
    for i in 0..3 {
        // Spread the restarts over the production: the newest member works for a while first.
        support::wait_until(
            "the newest member to handle 1500 events",
            Duration::from_secs(60),
            || {
                let n = live[2].output().handled.len();
                async move { n >= 1500 }
            },
        )
        .await;
        let mut old = live.remove(0);
        let began = Instant::now();
        old.terminate();
        let (status, took) = old
            .wait_exit(Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("{} did not exit within 30 s of SIGTERM", old.name));
        assert!(
            status.success(),
            "{} exited with {status}:\n{}",
            old.name,
            old.stderr_tail()
        );
        shutdowns.push(took);
        gone.push(old);
        live.push(spawn(&format!("m{i}-restarted")));
        support::wait_until(
            "the group to be balanced again",
            Duration::from_secs(60),
            || {
                let done = balanced(&live.iter().collect::<Vec<_>>(), PARTITIONS);
                async move { done }
            },
        )
        .await;
        rebalances.push(began.elapsed());
        if !production.is_finished() {
            during_production += 1;
        }
        eprintln!(
            "restarted m{i}: stopped in {:.2}s, group balanced again after {:.1}s, {} events acked so far",
            took.as_secs_f64(),
            began.elapsed().as_secs_f64(),
            progress.acked.load(Ordering::Relaxed)
        );
    }

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
    let everyone: Vec<&MemberProcess> = gone.iter().chain(live.iter()).collect();
    wait_handled(&everyone, &acked, Duration::from_secs(90)).await;
    for member in &live {
        member.terminate();
    }
    for member in &mut live {
        let (status, _) = member
            .wait_exit(Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("{} did not exit after SIGTERM", member.name));
        assert!(status.success(), "{} exited with {status}", member.name);
    }
    let handled = all_handled(&gone.iter().chain(live.iter()).collect::<Vec<_>>());
    let (extra, twice) = duplicates(&handled);
    if extra > 0 {
        println!(
            "rolling restart: {extra} duplicate deliveries, e.g. {}",
            sample(twice.keys(), 20)
        );
    }
    let secs = |ds: &[Duration]| {
        ds.iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(",")
    };
    // Kept when the test fails, for a look at the members' output.
    let _ = std::fs::remove_dir_all(&dir);
    figure(
        "rolling_restart",
        &[
            ("events", EVENTS.to_string()),
            ("acked", acked.len().to_string()),
            ("handled", handled.len().to_string()),
            ("duplicates", extra.to_string()),
            ("restarts_during_production", during_production.to_string()),
            ("shutdown_s", secs(&shutdowns)),
            ("balanced_again_s", secs(&rebalances)),
        ],
    );
}

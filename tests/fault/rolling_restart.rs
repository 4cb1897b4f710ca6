//! 3. Rolling restart under load: each of three member processes in turn gets SIGTERM, stops
//!    gracefully and is replaced by a new process, while a producer keeps sending; every event
//!    is handled.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::member::{MemberProcess, Setup, all_handled, stop_all, wait_handled};
use super::{Progress, duplicates, figure, produce_stream, sample};
use crate::support::{self, Backend};

const PARTITIONS: i32 = 6;
const EVENTS: u64 = 40_000;
const SESSION: Duration = Duration::from_secs(3);

pub fn test(backend: Backend) {
    crate::runtime().block_on(run(backend));
}

async fn run(backend: Backend) {
    let setup = Setup::new(backend, "rolling-restart", PARTITIONS, SESSION).await;
    let mut live: Vec<MemberProcess> = (0..3).map(|i| setup.spawn(&format!("m{i}"), 0)).collect();
    let mut gone: Vec<MemberProcess> = Vec::new();
    setup
        .wait_balanced(
            "three member processes sharing the six partitions",
            &live.iter().collect::<Vec<_>>(),
            Duration::from_secs(60),
        )
        .await;

    // About 2000 events a second, for twenty seconds.
    let progress = Arc::new(Progress::default());
    let production = tokio::spawn(produce_stream(
        setup.producer().await,
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
        live.push(setup.spawn(&format!("m{i}-restarted"), 0));
        setup
            .wait_balanced(
                "the group to be balanced again",
                &live.iter().collect::<Vec<_>>(),
                Duration::from_secs(60),
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
    stop_all(&mut live).await;
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
    setup.clean_up();
    figure(
        backend,
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

//! Fault tests of issue #6 on real brokers: broker crashes, member crashes, rolling restarts,
//! poison records and SIGTERM, each bounded in time, on each backend with its broker:
//! `kafka_3::<test>` runs the `kafka` backend on Kafka 3.9 and, with the feature `confluent`,
//! `confluent_4::<test>` runs the `confluent` backend on Kafka 4 (KIP-848 groups).
//!
//! Run: `GODEV_KAFKA_BROKERS=127.0.0.1:9092 GODEV_KAFKA4_BROKERS=127.0.0.1:9094 cargo test -p
//! godev-kit --features broker-tests,confluent --test fault_tolerance` (`-- <filter>` runs the
//! tests whose name contains it, e.g. `-- confluent_4`). The broker-crash test starts and
//! SIGKILLs a broker of its own with `dev/kafka` (Kafka 3.9 on port 19192, Kafka 4 on port
//! 19194); the others use the shared brokers of `GODEV_KAFKA_BROKERS` and
//! `GODEV_KAFKA4_BROKERS`.
//!
//! The cluster tests of issue #15 (`fault/cluster.rs`) follow: `cluster_3::<test>` runs the
//! backends of Kafka 3.9 (`kafka_3`, and `native_3` with the feature `native`) side by side on
//! a three-node 3.9 cluster that the target starts with `dev/kafka start --nodes 3` (ports
//! 19301-19303), and `cluster_4::<test>` those of Kafka 4 (`native_4`, `confluent_4`) on a
//! 4.4 cluster (ports 19401-19403); one cluster runs at a time, and it is stopped at the end.
//!
//! This target has its own harness (`harness = false`): the tests run one after another, and
//! the binary doubles as a consumer-group member process when called as
//! `fault_tolerance member <backend> ...` (see `fault/member.rs`). Each test prints a
//! `FIGURES <prefix>::<test>:` line with what it measured. `GODEV_TEST_LOG` (a `tracing`
//! filter, e.g. `godev_kafka=debug`) prints what the framework logs to stderr.

mod fault;
mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use support::Backend;

/// A test's name (without the backend prefix) and its body.
type Test = (&'static str, fn(Backend));

/// A test named `<prefix>::<test>`: on one backend (see [`fault::prefix`]), or on a cluster
/// (`cluster_3`, `cluster_4`: every backend of that Kafka version side by side).
struct Case {
    name: String,
    test: Box<dyn Fn()>,
}

/// The cluster tests (see `fault/cluster.rs`): a name and the fault.
const CLUSTER_TESTS: &[(&str, fault::cluster::Fault)] = &[
    (
        "leader_of_loaded_partitions_sigkilled_loses_no_acked_event_and_fails_no_send",
        fault::cluster::Fault::LeaderKilled,
    ),
    (
        "group_coordinator_sigkilled_groups_commit_again_within_session_timeout_plus_5s",
        fault::cluster::Fault::CoordinatorKilled,
    ),
    (
        "leader_paused_30s_clients_follow_the_new_leaders_and_lose_nothing",
        fault::cluster::Fault::LeaderPaused,
    ),
    (
        "rolling_restart_of_all_three_nodes_under_load_loses_nothing",
        fault::cluster::Fault::RollingRestart,
    ),
];

const TESTS: &[Test] = &[
    (
        "broker_sigkilled_twice_under_load_loses_no_acked_event",
        fault::broker_crash::test,
    ),
    (
        "member_process_sigkilled_its_partitions_move_to_the_survivors",
        fault::member_crash::test,
    ),
    (
        "rolling_restart_of_all_members_under_load_handles_every_event",
        fault::rolling_restart::test,
    ),
    (
        "poison_records_go_to_the_dead_letter_topic_and_the_consumer_goes_on",
        fault::poison::test,
    ),
    (
        "sigterm_under_load_commits_the_handled_prefix_and_a_restart_finishes",
        fault::sigterm::test,
    ),
];

fn main() {
    // What the framework logs is seen only when asked for: the figures stay readable.
    if let Ok(filter) = std::env::var("GODEV_TEST_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .init();
    }
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("member") {
        fault::member::run(&args[2..]);
    }
    // libtest-like arguments: name filters, `--exact`, `--list`, `--ignored`, `--skip X`;
    // other flags (`--nocapture`, `--test-threads N`, ...) are accepted and ignored.
    let mut filters = Vec::new();
    let mut skips = Vec::new();
    let (mut exact, mut list, mut ignored_only) = (false, false, false);
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--exact" => exact = true,
            "--list" => list = true,
            "--ignored" => ignored_only = true,
            "--skip" => skips.extend(rest.next().cloned()),
            "--test-threads" | "--format" | "--color" | "--logfile" | "-Z" | "--shuffle-seed" => {
                rest.next();
            }
            flag if flag.starts_with('-') => {}
            filter => filters.push(filter.to_owned()),
        }
    }
    // Every test on every backend, named `<prefix>::<test>`, then the cluster tests of each
    // Kafka version some backend of this build speaks.
    let mut all: Vec<Case> = fault::backends()
        .into_iter()
        .flat_map(|backend| {
            TESTS.iter().map(move |&(name, test)| Case {
                name: format!("{}::{name}", fault::prefix(backend)),
                test: Box::new(move || test(backend)),
            })
        })
        .collect();
    for (prefix, version) in [("cluster_3", "3.9"), ("cluster_4", "4")] {
        if fault::backends()
            .iter()
            .any(|b| b.kafka_version() == version)
        {
            all.extend(CLUSTER_TESTS.iter().map(|&(name, f)| Case {
                name: format!("{prefix}::{name}"),
                test: Box::new(move || fault::cluster::test(version, f)),
            }));
        }
    }
    let selected: Vec<&Case> = all
        .iter()
        .filter(|Case { name, .. }| {
            let chosen = filters.is_empty()
                || filters.iter().any(|f| {
                    if exact {
                        name == f
                    } else {
                        name.contains(f.as_str())
                    }
                });
            chosen && !skips.iter().any(|s| name.contains(s.as_str()))
        })
        .collect();
    if list {
        for Case { name, .. } in &selected {
            println!("{name}: test");
        }
        return;
    }
    // None of these tests is #[ignore]d.
    let selected = if ignored_only { Vec::new() } else { selected };
    println!("\nrunning {} tests", selected.len());
    let started = Instant::now();
    let mut failed = Vec::new();
    for Case { name, test } in &selected {
        println!("test {name} ...");
        let t0 = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(test));
        let secs = t0.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => println!("test {name} ... ok ({secs:.1}s)"),
            Err(_) => {
                println!("test {name} ... FAILED ({secs:.1}s)");
                failed.push(name);
            }
        }
    }
    fault::cluster::stop_cluster();
    println!();
    if !failed.is_empty() {
        println!("failures:");
        for name in &failed {
            println!("    {name}");
        }
        println!();
    }
    println!(
        "test result: {}. {} passed; {} failed; 0 ignored; 0 measured; {} filtered out; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failed.len(),
        failed.len(),
        all.len() - selected.len(),
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        std::process::exit(101);
    }
}

/// A runtime for one test: two workers, as the machine has two cores.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

//! A foreign member in our group (issue #13): a segmentio/kafka-go `Reader` with a `GroupID`
//! (the Go kit's library, `interop/go`'s `group` mode: the classic protocol, kafka-go's
//! default `range` and `roundrobin` balancers) and two members of the `native` backend share
//! one consumer group on Kafka 3.9, one owner per partition, and handle every record once.
//!
//! Run: `GODEV_KAFKA_BROKERS=127.0.0.1:9092 GODEV_KAFKA4_BROKERS=127.0.0.1:9094 cargo test -p godev-kit --features broker-tests,native --test native_group_interop`
//! (needs Go; the program is built once per run into the target directory).
//!
//! The run has two phases. First the two native members settle and handle (and commit)
//! records on their own. Then the Go member joins; once Kafka's own tool shows three members
//! and every partition once (and our members agree), the second batch of records is
//! produced: in that settled window each partition's records must be handled by the owner
//! the tool shows, each exactly once. Over the whole run nothing is handled twice: the first
//! batch was committed before the Go member joined, so it has nothing to read again.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use godev_kafka::transport::Transport;
use godev_kafka::{
    Codec, Consumer, Context, Event, HandlerError, Producer, RunningConsumer, TopicMap, handler,
    testing,
};
use serde::{Deserialize, Serialize};
use support::Backend;

const BACKEND: Backend = Backend::Native3;
const PARTITIONS: i32 = 6;
/// Records produced while only the native members are in the group.
const BEFORE_GO: u32 = 120;
/// Records produced once the three members settled.
const SETTLED: u32 = 480;
/// The client id of the Go member (`groupClientID` in `interop/go/main.go`).
const GO_CLIENT_ID: &str = "kafka-go-interop";
/// The client id of our members (`support::native_transport`).
const NATIVE_CLIENT_ID: &str = "godev-kafka-tests";
/// How long the Go member may run at most (the test stops it with SIGTERM long before).
const GO_SECONDS: &str = "600";

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(topic = "orders", name = "order.placed", key = "order")]
struct OrderPlaced {
    order: u32,
}

/// The three members of the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Member {
    NativeA,
    NativeB,
    Go,
}

/// One handling of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Handled {
    member: Member,
    partition: i32,
    offset: i64,
}

/// What the native members handled, in order, and the partitions being handled right now (to
/// catch the two handling one partition at once). This file has one test, so one board.
struct Board {
    handled: Vec<Handled>,
    busy: BTreeMap<i32, Member>,
    overlaps: Vec<String>,
}

static BOARD: Mutex<Board> = Mutex::new(Board {
    handled: Vec::new(),
    busy: BTreeMap::new(),
    overlaps: Vec::new(),
});

async fn record(member: Member, ctx: Context) {
    let (partition, offset) = (ctx.partition(), ctx.offset());
    {
        let mut board = BOARD.lock().unwrap();
        if let Some(other) = board.busy.insert(partition, member)
            && other != member
        {
            let overlap = format!(
                "{other:?} and {member:?} both in partition {partition} at offset {offset}"
            );
            board.overlaps.push(overlap);
        }
    }
    // A little work, so that a second owner of the partition would overlap with this one.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let mut board = BOARD.lock().unwrap();
    if board.busy.get(&partition) == Some(&member) {
        board.busy.remove(&partition);
    }
    board.handled.push(Handled {
        member,
        partition,
        offset,
    });
}

#[handler]
async fn native_a(_event: OrderPlaced, ctx: Context) -> Result<(), HandlerError> {
    record(Member::NativeA, ctx).await;
    Ok(())
}

#[handler]
async fn native_b(_event: OrderPlaced, ctx: Context) -> Result<(), HandlerError> {
    record(Member::NativeB, ctx).await;
    Ok(())
}

/// A native member of `group` on `topic`, on its own transport.
async fn native_member(brokers: &str, group: &str, topic: &str, member: Member) -> RunningConsumer {
    let transport: std::sync::Arc<dyn Transport> = support::native_transport(brokers).await;
    let builder = Consumer::builder_shared(transport, group)
        .topics(TopicMap::from_iter([("orders", topic)]))
        .codec(Codec::Tagged)
        .settings(BACKEND.consumer_settings());
    match member {
        Member::NativeA => builder.handler::<native_a>(),
        Member::NativeB => builder.handler::<native_b>(),
        Member::Go => unreachable!("the Go member is a process"),
    }
    .build()
    .unwrap()
    .start()
}

/// The Go member's handled records: its out-file's complete lines, `partition offset` each.
fn go_handled(out: &Path) -> Vec<Handled> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    // A line still being written has no newline yet: leave it for the next look.
    let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
    complete
        .lines()
        .map(|line| {
            let (partition, offset) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("a `partition offset` line: {line:?}"));
            Handled {
                member: Member::Go,
                partition: partition.parse().unwrap(),
                offset: offset.parse().unwrap(),
            }
        })
        .collect()
}

/// Every handling so far, ours and the Go member's, duplicates kept.
fn all_handled(go_out: &Path) -> Vec<Handled> {
    let mut all = BOARD.lock().unwrap().handled.clone();
    all.extend(go_handled(go_out));
    all
}

/// Every (partition, offset) below `ends`.
fn offsets_below(ends: &BTreeMap<i32, i64>) -> BTreeSet<(i32, i64)> {
    ends.iter()
        .flat_map(|(&p, &end)| (0..end).map(move |o| (p, o)))
        .collect()
}

/// Sends orders `range`, keyed by order number, sixty at a time.
async fn send_orders(producer: &Producer, range: std::ops::Range<u32>) {
    let orders: Vec<u32> = range.collect();
    for chunk in orders.chunks(60) {
        let sends: Vec<_> = chunk
            .iter()
            .map(|&order| {
                let producer = producer.clone();
                tokio::spawn(async move { producer.send(&OrderPlaced { order }).await })
            })
            .collect();
        for send in sends {
            send.await.unwrap().expect("send acknowledged");
        }
    }
}

/// A member as `kafka-consumer-groups.sh --describe --members --verbose` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shown {
    member_id: String,
    client_id: String,
    partitions: BTreeSet<i32>,
}

/// The group's members per Kafka 3.9's tool, or why it shows no settled group (the output).
async fn shown_members(brokers: &str, group: &str, topic: &str) -> Result<Vec<Shown>, String> {
    let bootstrap = brokers.split(',').next().unwrap();
    let args = [
        "--bootstrap-server",
        bootstrap,
        "--describe",
        "--group",
        group,
        "--members",
        "--verbose",
    ];
    let output = support::kafka_tool(BACKEND, "consumer-groups", &args).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let text = format!("{stdout}\n{stderr}");
    if !output.status.success() || text.contains("rebalancing") {
        return Err(text);
    }
    // GROUP CONSUMER-ID HOST CLIENT-ID #PARTITIONS ASSIGNMENT, the assignment as `topic(0,1)`.
    let mut members = Vec::new();
    for line in stdout.lines() {
        let columns: Vec<&str> = line.split_whitespace().collect();
        if columns.len() < 6 || columns[0] != group {
            continue;
        }
        // Kafka 3.9 shows a one-topic assignment as `(0,1,2)`, none as `-`.
        let assignment = columns[5..].join("");
        let assignment = assignment.strip_prefix(topic).unwrap_or(&assignment);
        let partitions = match assignment {
            "-" => BTreeSet::new(),
            list => list
                .strip_prefix('(')
                .and_then(|l| l.strip_suffix(')'))
                .ok_or_else(|| text.clone())?
                .split(',')
                .map(|p| p.parse::<i32>().map_err(|_| text.clone()))
                .collect::<Result<BTreeSet<i32>, String>>()?,
        };
        let count: usize = columns[4].parse().map_err(|_| text.clone())?;
        if count != partitions.len() {
            return Err(text);
        }
        members.push(Shown {
            member_id: columns[1].to_owned(),
            client_id: columns[3].to_owned(),
            partitions,
        });
    }
    members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    Ok(members)
}

/// A native member's id and assignment (partitions of its one topic), as it sees them.
fn native_view(running: &RunningConsumer) -> (Option<String>, BTreeSet<i32>) {
    let status = running.status();
    let group = &status[0];
    let partitions = group.assigned.iter().map(|tp| tp.partition).collect();
    (group.member_id.clone(), partitions)
}

/// Partition → owner, when the tool shows the Go member and both native members, every
/// partition exactly once, each member with a share, and our members agree with it.
fn settled_owners(
    shown: &[Shown],
    natives: &[(Member, &RunningConsumer)],
) -> Option<BTreeMap<i32, Member>> {
    if shown.len() != 3 || shown.iter().any(|m| m.partitions.is_empty()) {
        return None;
    }
    let mut owners = BTreeMap::new();
    for m in shown {
        let member = if m.client_id == GO_CLIENT_ID {
            Member::Go
        } else {
            let (name, _) = natives.iter().find(|(_, running)| {
                native_view(running).0.as_deref() == Some(m.member_id.as_str())
            })?;
            *name
        };
        if member != Member::Go {
            // Our member's own view: the assignment the tool shows.
            let (_, running) = natives.iter().find(|(n, _)| *n == member)?;
            if native_view(running).1 != m.partitions || m.client_id != NATIVE_CLIENT_ID {
                return None;
            }
        }
        for &p in &m.partitions {
            if owners.insert(p, member).is_some() {
                return None;
            }
        }
    }
    let members: BTreeSet<Member> = owners.values().copied().collect();
    let complete = owners.keys().copied().eq(0..PARTITIONS) && members.len() == 3;
    complete.then_some(owners)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kafka_go_reader_and_two_native_members_share_one_group_one_owner_per_partition() {
    // What our members warn about (a member left out of an assignment, say) goes into the
    // failure messages.
    support::logs::capture();
    let started = Instant::now();
    let brokers = BACKEND.brokers().await;
    let topic = testing::unique_name("go-group-orders");
    let group = testing::unique_name("go-native-group");
    testing::create_topic(&brokers, &topic, PARTITIONS)
        .await
        .expect("create topic");
    let program = tokio::task::spawn_blocking(support::go::go_program)
        .await
        .unwrap();
    let scratch = std::env::temp_dir().join(testing::unique_name("native-group-interop"));
    std::fs::create_dir_all(&scratch).unwrap();
    let go_out = scratch.join("handled.txt");

    // Phase 1: the native members alone.
    let a = native_member(&brokers, &group, &topic, Member::NativeA).await;
    let b = native_member(&brokers, &group, &topic, Member::NativeB).await;
    support::wait_until(
        "the two native members to share all partitions",
        Duration::from_secs(60),
        || async {
            let (pa, pb) = (native_view(&a).1, native_view(&b).1);
            !pa.is_empty()
                && !pb.is_empty()
                && pa.is_disjoint(&pb)
                && pa.len() + pb.len() == PARTITIONS as usize
        },
    )
    .await;
    let producer = Producer::with_transport(
        support::native_transport(&brokers).await,
        TopicMap::from_iter([("orders", topic.clone())]),
        Codec::Tagged,
        "tests",
    );
    send_orders(&producer, 0..BEFORE_GO).await;
    let ends_before_go = testing::end_offsets(&brokers, &topic).await.unwrap();
    let before_go = offsets_below(&ends_before_go);
    assert_eq!(before_go.len(), BEFORE_GO as usize);
    support::wait_until(
        "the first records handled and committed by the native members",
        Duration::from_secs(60),
        || async {
            let seen: BTreeSet<(i32, i64)> = BOARD
                .lock()
                .unwrap()
                .handled
                .iter()
                .map(|h| (h.partition, h.offset))
                .collect();
            let committed = testing::committed_offsets(&brokers, &group, &topic).await;
            let nonempty: BTreeMap<i32, i64> = ends_before_go
                .iter()
                .filter(|(_, end)| **end > 0)
                .map(|(p, end)| (*p, *end))
                .collect();
            before_go.is_subset(&seen) && committed.is_ok_and(|c| c == nonempty)
        },
    )
    .await;
    eprintln!("phase 1 done after {:?}", started.elapsed());

    // Phase 2: the Go member joins.
    let go_stdout = scratch.join("stdout.txt");
    let go_stderr = scratch.join("stderr.txt");
    let mut go = tokio::process::Command::new(&program)
        .args(["group", &brokers, &topic, &group])
        .arg(&go_out)
        .arg(GO_SECONDS)
        .stdout(Stdio::from(std::fs::File::create(&go_stdout).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&go_stderr).unwrap()))
        .kill_on_drop(true)
        .spawn()
        .expect("start the Go member");
    let go_failed = |why: &str| -> String {
        format!(
            "{why}; the Go member's stderr:\n{}",
            std::fs::read_to_string(&go_stderr).unwrap_or_default()
        )
    };
    let natives = [(Member::NativeA, &a), (Member::NativeB, &b)];
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last_answer = None;
    let (shown, owners) = loop {
        if let Some(status) = go.try_wait().unwrap() {
            panic!(
                "{}",
                go_failed(&format!("the Go member exited with {status}"))
            );
        }
        // A member our leader cannot read is left out of every assignment it makes: that
        // does not get better by waiting. (kafka-go 0.4.51 labels its subscription version 1
        // but leaves out version 1's `owned_partitions`: segmentio/kafka-go#1156.)
        let left_out = support::logs::logged(&group, "left out of the assignment");
        assert!(
            left_out.is_empty(),
            "{}",
            go_failed(&format!(
                "our group leader left a member out of the assignment:\n{}",
                left_out.join("\n")
            ))
        );
        let shown = shown_members(&brokers, &group, &topic).await;
        if last_answer.as_ref() != Some(&shown) {
            eprintln!("{:?}: the tool shows {shown:#?}", started.elapsed());
            last_answer = Some(shown.clone());
        }
        if let Ok(shown) = &shown
            && let Some(owners) = settled_owners(shown, &natives)
        {
            break (shown.clone(), owners);
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            go_failed(&format!(
                "no settled group of three within 120 s; the tool's last answer: {shown:#?}\n\
                 our members' warnings about the group:\n{}",
                support::logs::logged(&group, "").join("\n")
            ))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "settled after {:?}: {shown:#?}\nowners: {owners:?}",
        started.elapsed()
    );
    let go_shown: Vec<&Shown> = shown
        .iter()
        .filter(|m| m.client_id == GO_CLIENT_ID)
        .collect();
    assert_eq!(go_shown.len(), 1, "one member is the Go client: {shown:#?}");
    assert!(
        !go_shown[0].partitions.is_empty(),
        "the Go member owns partitions"
    );
    for native in [Member::NativeA, Member::NativeB] {
        assert!(
            owners.values().any(|m| *m == native),
            "{native:?} owns partitions: {owners:?}"
        );
    }
    // Joining re-handled nothing: the first records were committed before the Go member came.
    let handled_at_settle = all_handled(&go_out).len();
    assert_eq!(
        handled_at_settle,
        BEFORE_GO as usize,
        "nothing handled again when the Go member joined: {:?}",
        go_handled(&go_out)
    );

    // The settled window: the second records.
    send_orders(&producer, BEFORE_GO..BEFORE_GO + SETTLED).await;
    let ends = testing::end_offsets(&brokers, &topic).await.unwrap();
    let all = offsets_below(&ends);
    assert_eq!(all.len(), (BEFORE_GO + SETTLED) as usize);
    for p in 0..PARTITIONS {
        assert!(
            ends[&p] > ends_before_go[&p],
            "the settled window has records of partition {p}: {ends:?}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = go.try_wait().unwrap() {
            panic!(
                "{}",
                go_failed(&format!("the Go member exited with {status}"))
            );
        }
        let seen: BTreeSet<(i32, i64)> = all_handled(&go_out)
            .iter()
            .map(|h| (h.partition, h.offset))
            .collect();
        if all.is_subset(&seen) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            go_failed(&format!(
                "within 120 s, {} of {} records handled",
                seen.len(),
                all.len()
            ))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("all handled after {:?}", started.elapsed());
    // The group stayed as it settled while the window's records were handled: no rebalance.
    let shown_after = shown_members(&brokers, &group, &topic).await;
    assert_eq!(
        shown_after.as_ref(),
        Ok(&shown),
        "the same members and assignment at the end of the window"
    );

    // The window, duplicates kept: each record exactly once, by its partition's owner.
    let window: Vec<Handled> = all_handled(&go_out)
        .into_iter()
        .filter(|h| !before_go.contains(&(h.partition, h.offset)))
        .collect();
    let not_owner: Vec<&Handled> = window
        .iter()
        .filter(|h| owners.get(&h.partition) != Some(&h.member))
        .collect();
    assert!(
        not_owner.is_empty(),
        "handled by a member that does not own the partition ({owners:?}): {not_owner:?}"
    );
    assert_eq!(
        window.len(),
        SETTLED as usize,
        "each record of the settled window handled exactly once"
    );
    let by_member: BTreeSet<Member> = window.iter().map(|h| h.member).collect();
    assert_eq!(
        by_member,
        BTreeSet::from([Member::NativeA, Member::NativeB, Member::Go]),
        "all three members handled records"
    );

    // Shutdown: the Go member on SIGTERM (it commits, closes its reader and leaves), then ours.
    let pid = go.id().expect("the Go member runs").to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success(), "kill -TERM {pid}");
    let exit = tokio::time::timeout(Duration::from_secs(60), go.wait())
        .await
        .unwrap_or_else(|_| panic!("{}", go_failed("no exit within 60 s of SIGTERM")))
        .unwrap();
    let summary = std::fs::read_to_string(&go_stdout).unwrap();
    assert!(
        exit.success(),
        "{}",
        go_failed(&format!("the Go member exited with {exit}"))
    );
    let go_lines = go_handled(&go_out).len();
    assert_eq!(
        summary.trim(),
        format!("handled {go_lines} commit-errors 0"),
        "{}",
        go_failed("every commit of the Go member succeeded")
    );
    let nonempty: BTreeMap<i32, i64> = ends.iter().map(|(p, end)| (*p, *end)).collect();
    support::wait_until(
        "every partition committed to its end",
        Duration::from_secs(60),
        || async {
            let committed = testing::committed_offsets(&brokers, &group, &topic).await;
            committed.is_ok_and(|c| c == nonempty)
        },
    )
    .await;
    // The Go member left: ours take over its partitions.
    support::wait_until(
        "the native members to own all partitions after the Go member left",
        Duration::from_secs(60),
        || async {
            let (pa, pb) = (native_view(&a).1, native_view(&b).1);
            pa.is_disjoint(&pb) && pa.len() + pb.len() == PARTITIONS as usize
        },
    )
    .await;
    a.shutdown().await.expect("clean shutdown");
    b.shutdown().await.expect("clean shutdown");

    // The whole run, duplicates kept: every record handled exactly once, and never by our
    // two members at the same time.
    let handled = all_handled(&go_out);
    let mut unique = BTreeSet::new();
    let twice: Vec<&Handled> = handled
        .iter()
        .filter(|h| !unique.insert((h.partition, h.offset)))
        .collect();
    assert!(twice.is_empty(), "handled twice: {twice:?}");
    assert_eq!(unique, all, "every record handled");
    assert_eq!(handled.len(), (BEFORE_GO + SETTLED) as usize);
    let overlaps = BOARD.lock().unwrap().overlaps.clone();
    assert!(overlaps.is_empty(), "one owner at a time: {overlaps:?}");
    let committed = testing::committed_offsets(&brokers, &group, &topic)
        .await
        .unwrap();
    assert_eq!(committed, nonempty, "committed to the end after shutdown");
    eprintln!("done after {:?}", started.elapsed());
    let _ = std::fs::remove_dir_all(&scratch);
}

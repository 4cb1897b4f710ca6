//! The group leader's assignors (`range`, `roundrobin`) on fuzzed groups: every partition of
//! every subscribed topic goes to exactly one member, and only to a member subscribed to its
//! topic; topics nobody subscribed to stay unassigned; `range` is balanced per topic.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

/// Topic names the members and the metadata pick from (few, so subscriptions overlap).
const TOPICS: [&str; 6] = ["a", "b", "orders", "orders.dlq", "t-1", ""];
/// Bounds that keep one input fast: members, and partitions per topic.
const MAX_MEMBERS: usize = 24;
const MAX_PARTITIONS: i32 = 300;

#[derive(Debug, Arbitrary)]
struct Group {
    round_robin: bool,
    /// Member id seeds and a bit set of subscribed topics.
    members: Vec<(u16, u8)>,
    /// Topic index and partition count.
    partitions: Vec<(u8, i16)>,
}

fuzz_target!(|group: Group| {
    let protocol = if group.round_robin {
        "roundrobin"
    } else {
        "range"
    };
    // Member ids are unique within a JoinGroup response: the coordinator assigns them.
    let mut seen = BTreeSet::new();
    let members: Vec<(String, Vec<String>)> = group
        .members
        .iter()
        .take(MAX_MEMBERS)
        .filter(|(id, _)| seen.insert(*id))
        .map(|(id, bits)| {
            let topics = (0..TOPICS.len())
                .filter(|i| bits & (1 << i) != 0)
                .map(|i| TOPICS[i].to_owned())
                .collect();
            (
                format!("consumer-{id}-{:x}", id.wrapping_mul(40503)),
                topics,
            )
        })
        .collect();
    let partitions: BTreeMap<String, i32> = group
        .partitions
        .iter()
        .map(|(t, n)| {
            let n = i32::from(*n);
            let n = if n > MAX_PARTITIONS {
                n % (MAX_PARTITIONS + 1)
            } else {
                n
            };
            (TOPICS[usize::from(*t) % TOPICS.len()].to_owned(), n)
        })
        .collect();

    let assignment = godev_kafka::__fuzz::assign(protocol, &members, &partitions);

    let ids: BTreeSet<&str> = members.iter().map(|(id, _)| id.as_str()).collect();
    let assigned: BTreeSet<&str> = assignment.keys().map(String::as_str).collect();
    assert_eq!(
        ids, assigned,
        "{protocol}: the assignment has an entry per member, and no other"
    );
    let subscribed = |member: &str, topic: &str| {
        members
            .iter()
            .any(|(id, topics)| id == member && topics.iter().any(|t| t == topic))
    };
    for (member, topics) in &assignment {
        for (topic, parts) in topics {
            assert!(
                partitions.contains_key(topic),
                "{protocol}: {member} got unknown topic {topic:?}"
            );
            assert!(
                subscribed(member, topic),
                "{protocol}: {member} got {topic:?} without subscribing"
            );
            assert!(
                !parts.is_empty(),
                "{protocol}: {member} got an empty list for {topic:?}"
            );
        }
    }
    for (topic, &count) in &partitions {
        let mut got: Vec<i32> = assignment
            .values()
            .filter_map(|topics| topics.get(topic))
            .flatten()
            .copied()
            .collect();
        got.sort_unstable();
        let anyone = members.iter().any(|(_, topics)| topics.contains(topic));
        let expected: Vec<i32> = if anyone {
            (0..count.max(0)).collect()
        } else {
            Vec::new()
        };
        assert_eq!(
            got, expected,
            "{protocol}: partitions of {topic:?} ({count}) not assigned exactly once"
        );
        if protocol == "range" && anyone {
            let sizes: Vec<usize> = members
                .iter()
                .filter(|(_, topics)| topics.contains(topic))
                .map(|(id, _)| assignment[id].get(topic).map_or(0, Vec::len))
                .collect();
            let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(max - min <= 1, "range: {topic:?} unbalanced: {sizes:?}");
        }
    }
});

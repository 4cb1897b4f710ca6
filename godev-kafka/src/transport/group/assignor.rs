//! The group leader's partition assignors, as the Java client's `range` and `roundrobin`.
//!
//! Both are deterministic: members are sorted by member id, so every leader computes the same
//! assignment from the same JoinGroup response.

use std::collections::BTreeMap;

/// A member's id and the topics it subscribed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subscription {
    pub(crate) member_id: String,
    pub(crate) topics: Vec<String>,
}

/// Member id → topic → partitions.
pub(crate) type Assignment = BTreeMap<String, BTreeMap<String, Vec<i32>>>;

/// The assignors this client offers, in order of preference.
pub(crate) const PROTOCOLS: [&str; 2] = ["range", "roundrobin"];

/// Assigns with the named protocol (`range` when the name is unknown).
pub(crate) fn assign(
    protocol: &str,
    members: &[Subscription],
    partitions: &BTreeMap<String, i32>,
) -> Assignment {
    match protocol {
        "roundrobin" => round_robin(members, partitions),
        _ => range(members, partitions),
    }
}

fn empty(members: &[Subscription]) -> Assignment {
    members
        .iter()
        .map(|m| (m.member_id.clone(), BTreeMap::new()))
        .collect()
}

/// Per topic: the sorted subscribers each take a contiguous range; the first
/// `partitions % members` take one more.
pub(crate) fn range(members: &[Subscription], partitions: &BTreeMap<String, i32>) -> Assignment {
    let mut out = empty(members);
    for (topic, &count) in partitions {
        let mut subscribers: Vec<&str> = members
            .iter()
            .filter(|m| m.topics.contains(topic))
            .map(|m| m.member_id.as_str())
            .collect();
        subscribers.sort_unstable();
        subscribers.dedup();
        if subscribers.is_empty() || count <= 0 {
            continue;
        }
        let n = subscribers.len() as i32;
        let per = count / n;
        let extra = count % n;
        for (i, member) in subscribers.iter().enumerate() {
            let i = i as i32;
            let start = per * i + i.min(extra);
            let len = per + i32::from(i < extra);
            if len > 0 {
                out.get_mut(*member)
                    .expect("subscriber is a member")
                    .entry(topic.clone())
                    .or_default()
                    .extend(start..start + len);
            }
        }
    }
    out
}

/// All partitions of all topics, sorted by topic then partition, dealt in turn to the sorted
/// members, skipping members that did not subscribe to the partition's topic.
pub(crate) fn round_robin(
    members: &[Subscription],
    partitions: &BTreeMap<String, i32>,
) -> Assignment {
    let mut out = empty(members);
    let mut sorted: Vec<&Subscription> = members.iter().collect();
    sorted.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    sorted.dedup_by(|a, b| a.member_id == b.member_id);
    if sorted.is_empty() {
        return out;
    }
    let mut next = 0usize;
    for (topic, &count) in partitions {
        if !sorted.iter().any(|m| m.topics.contains(topic)) {
            continue;
        }
        for partition in 0..count {
            while !sorted[next % sorted.len()].topics.contains(topic) {
                next += 1;
            }
            let member = &sorted[next % sorted.len()].member_id;
            out.get_mut(member)
                .expect("member")
                .entry(topic.clone())
                .or_default()
                .push(partition);
            next += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, topics: &[&str]) -> Subscription {
        Subscription {
            member_id: id.into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn counts(list: &[(&str, i32)]) -> BTreeMap<String, i32> {
        list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn of<'a>(a: &'a Assignment, member: &str, topic: &str) -> &'a [i32] {
        a[member].get(topic).map(Vec::as_slice).unwrap_or(&[])
    }

    #[test]
    fn range_gives_contiguous_ranges_extra_to_the_first() {
        let members = [
            member("c", &["t"]),
            member("a", &["t"]),
            member("b", &["t"]),
        ];
        let a = range(&members, &counts(&[("t", 7)]));
        assert_eq!(of(&a, "a", "t"), [0, 1, 2]);
        assert_eq!(of(&a, "b", "t"), [3, 4]);
        assert_eq!(of(&a, "c", "t"), [5, 6]);
    }

    #[test]
    fn range_works_per_topic() {
        let members = [member("a", &["t", "u"]), member("b", &["t"])];
        let a = range(&members, &counts(&[("t", 3), ("u", 2)]));
        assert_eq!(of(&a, "a", "t"), [0, 1]);
        assert_eq!(of(&a, "b", "t"), [2]);
        assert_eq!(of(&a, "a", "u"), [0, 1]);
        assert_eq!(of(&a, "b", "u"), [] as [i32; 0]);
    }

    #[test]
    fn range_leaves_surplus_members_empty() {
        let members = [
            member("a", &["t"]),
            member("b", &["t"]),
            member("c", &["t"]),
        ];
        let a = range(&members, &counts(&[("t", 2)]));
        assert_eq!(of(&a, "a", "t"), [0]);
        assert_eq!(of(&a, "b", "t"), [1]);
        assert!(a["c"].is_empty());
    }

    #[test]
    fn round_robin_deals_across_topics() {
        let members = [member("b", &["t", "u"]), member("a", &["t", "u"])];
        let a = round_robin(&members, &counts(&[("t", 3), ("u", 2)]));
        assert_eq!(of(&a, "a", "t"), [0, 2]);
        assert_eq!(of(&a, "b", "t"), [1]);
        assert_eq!(of(&a, "a", "u"), [1]);
        assert_eq!(of(&a, "b", "u"), [0]);
    }

    #[test]
    fn round_robin_skips_members_not_subscribed() {
        let members = [
            member("a", &["t"]),
            member("b", &["u"]),
            member("c", &["t", "u"]),
        ];
        let a = round_robin(&members, &counts(&[("t", 4), ("u", 2)]));
        assert_eq!(of(&a, "a", "t"), [0, 2]);
        assert_eq!(of(&a, "c", "t"), [1, 3]);
        assert_eq!(of(&a, "b", "u"), [0]);
        assert_eq!(of(&a, "c", "u"), [1]);
    }

    #[test]
    fn every_partition_is_assigned_exactly_once() {
        let members: Vec<_> = (0..5)
            .map(|i| member(&format!("m{i}"), &["t", "u"]))
            .collect();
        let parts = counts(&[("t", 13), ("u", 6)]);
        for protocol in PROTOCOLS {
            let a = assign(protocol, &members, &parts);
            for (topic, &n) in &parts {
                let mut all: Vec<i32> = a
                    .values()
                    .flat_map(|m| m.get(topic).cloned().unwrap_or_default())
                    .collect();
                all.sort_unstable();
                assert_eq!(all, (0..n).collect::<Vec<_>>(), "{protocol} {topic}");
            }
        }
    }
}

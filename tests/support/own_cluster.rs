//! A three-node Kafka cluster of one test process's own (`dev/kafka start --nodes 3`), on
//! dedicated ports, whose nodes the test kills, stops, restarts, pauses and resumes; and what
//! the test asks the cluster over the wire: partition leaders and ISRs, the group
//! coordinator, topics created with replication factor 3 and `min.insync.replicas=2`.
//!
//! Node `i` (1 to 3) listens on `base + i - 1` and has `node.id` `i`. The guard stops every
//! node when dropped, also when the test panics.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::net::TcpStream;

use crate::support::own_broker::dev_kafka;
use crate::support::raw::Raw;

/// Nodes of every cluster started here.
pub const NODES: usize = 3;
/// How long one wire question to one node may take (a paused node never answers).
const ASK_TIMEOUT: Duration = Duration::from_secs(3);
/// `TOPIC_ALREADY_EXISTS`.
const TOPIC_ALREADY_EXISTS: i16 = 36;

/// A partition as the cluster's metadata shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// The leader's node id (`-1`: none).
    pub leader: i32,
    /// The replicas' node ids.
    pub replicas: Vec<i32>,
    /// The in-sync replicas' node ids.
    pub isr: Vec<i32>,
}

/// A cluster on ports `base..base + 3`; stopped on drop.
#[derive(Debug)]
pub struct OwnCluster {
    version: &'static str,
    base: u16,
    bootstrap: String,
}

impl OwnCluster {
    /// Starts a fresh three-node cluster of Kafka `version` (`3.9` or `4`) whose first node
    /// listens on `base`; a cluster left there by an aborted run is stopped first.
    pub fn start(version: &'static str, base: u16) -> Self {
        let b = base.to_string();
        dev_kafka(&["stop", "--port", &b]);
        let started = Instant::now();
        let bootstrap = dev_kafka(&[
            "start",
            "--nodes",
            &NODES.to_string(),
            "--version",
            version,
            "--port",
            &b,
            "--timeout",
            "180",
        ]);
        eprintln!(
            "own cluster {bootstrap} (Kafka {version}) started in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        Self {
            version,
            base,
            bootstrap,
        }
    }

    /// `dev/kafka`'s `--version` of this cluster.
    pub fn version(&self) -> &'static str {
        self.version
    }

    /// Every node's `127.0.0.1:<port>`, comma-separated.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The address of node `node` (its node id).
    pub fn address(&self, node: i32) -> String {
        format!("127.0.0.1:{}", self.port(node))
    }

    fn port(&self, node: i32) -> u16 {
        assert!((1..=NODES as i32).contains(&node), "no node {node}");
        self.base + node as u16 - 1
    }

    fn node_command(&self, command: &str, node: i32) -> String {
        dev_kafka(&[
            command,
            "--port",
            &self.base.to_string(),
            "--node",
            &node.to_string(),
            "--timeout",
            "120",
        ])
    }

    /// SIGKILLs node `node` (blocking; run it off the async workers).
    pub fn kill(&self, node: i32) {
        self.node_command("kill", node);
    }

    /// Stops node `node` gracefully (SIGTERM: a controlled shutdown), blocking.
    pub fn stop(&self, node: i32) {
        self.node_command("stop", node);
    }

    /// Starts node `node` again on its data (blocking); returns once the cluster answers
    /// metadata with every running node live.
    pub fn restart(&self, node: i32) -> Duration {
        let started = Instant::now();
        self.node_command("start", node);
        started.elapsed()
    }

    /// SIGSTOPs node `node`: a hung broker whose sockets stay open.
    pub fn pause(&self, node: i32) {
        self.node_command("pause", node);
    }

    /// SIGCONTs node `node`.
    pub fn resume(&self, node: i32) {
        self.node_command("resume", node);
    }

    /// A connection to the first node of `nodes` that accepts one in time.
    async fn connect_any(&self, nodes: impl IntoIterator<Item = i32>) -> Option<Raw> {
        for node in nodes {
            let addr = self.address(node);
            if let Ok(Ok(stream)) =
                tokio::time::timeout(ASK_TIMEOUT, TcpStream::connect(&addr)).await
            {
                return Some(Raw::from_stream(stream, "godev-kafka-cluster-test"));
            }
        }
        None
    }

    /// The metadata of `topics` (every topic when `None`), asked of the first node among
    /// `nodes` that answers within [`ASK_TIMEOUT`].
    async fn metadata(&self, topics: Option<&[&str]>, nodes: &[i32]) -> Option<MetadataResponse> {
        for &node in nodes {
            let Some(mut conn) = self.connect_any([node]).await else {
                continue;
            };
            let request = MetadataRequest::default()
                .with_topics(topics.map(|ts| {
                    ts.iter()
                        .map(|t| {
                            MetadataRequestTopic::default()
                                .with_name(Some(TopicName(StrBytes::from_string((*t).to_owned()))))
                        })
                        .collect()
                }))
                .with_allow_auto_topic_creation(false);
            let asked = tokio::time::timeout(ASK_TIMEOUT, async {
                conn.call::<_, MetadataResponse>(ApiKey::Metadata, 9, &request)
                    .await
            })
            .await;
            if let Ok(response) = asked {
                return Some(response);
            }
        }
        None
    }

    /// Every partition of `topic`, as `nodes` (asked in turn) see it; empty when none answers.
    pub async fn partitions_via(
        &self,
        topic: &str,
        nodes: &[i32],
    ) -> BTreeMap<i32, PartitionState> {
        let Some(response) = self.metadata(Some(&[topic]), nodes).await else {
            return BTreeMap::new();
        };
        response
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|p| {
                (
                    p.partition_index,
                    PartitionState {
                        leader: p.leader_id.0,
                        replicas: p.replica_nodes.iter().map(|n| n.0).collect(),
                        isr: p.isr_nodes.iter().map(|n| n.0).collect(),
                    },
                )
            })
            .collect()
    }

    /// Every partition of `topic`, asked of any node.
    pub async fn partitions(&self, topic: &str) -> BTreeMap<i32, PartitionState> {
        self.partitions_via(topic, &[1, 2, 3]).await
    }

    /// The node id of `group`'s coordinator, once one is available.
    pub async fn coordinator(&self, group: &str) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            for node in 1..=NODES as i32 {
                let Some(mut conn) = self.connect_any([node]).await else {
                    continue;
                };
                let request = FindCoordinatorRequest::default()
                    .with_key(StrBytes::from_string(group.to_owned()));
                let found = tokio::time::timeout(ASK_TIMEOUT, async {
                    conn.call::<_, FindCoordinatorResponse>(ApiKey::FindCoordinator, 2, &request)
                        .await
                })
                .await;
                if let Ok(found) = found
                    && found.error_code == 0
                {
                    return found.node_id.0;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no coordinator for group {group} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Creates `topic` with `partitions` partitions, replication factor 3 and
    /// `min.insync.replicas=2`, and waits until every partition has a leader and three
    /// in-sync replicas.
    pub async fn create_topic(&self, topic: &str, partitions: i32) {
        let mut conn = self
            .connect_any(1..=NODES as i32)
            .await
            .expect("a node of the cluster accepts connections");
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_num_partitions(partitions)
                    .with_replication_factor(NODES as i16)
                    .with_configs(vec![
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_static_str("min.insync.replicas"))
                            .with_value(Some(StrBytes::from_static_str("2"))),
                    ]),
            ]);
        let created: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 5, &request).await;
        for t in &created.topics {
            assert!(
                t.error_code == 0 || t.error_code == TOPIC_ALREADY_EXISTS,
                "create topic {topic}: error {} {:?}",
                t.error_code,
                t.error_message
            );
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let states = self.partitions(topic).await;
            if states.len() == partitions as usize
                && states
                    .values()
                    .all(|p| p.leader >= 0 && p.isr.len() == NODES)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "topic {topic} not fully replicated within 60 s: {states:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until every node is registered and every partition of every topic (the internal
    /// ones included) has a leader and all its replicas in sync: the cluster has recovered
    /// from the last fault. Panics after `timeout`.
    pub async fn wait_healthy(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.metadata(None, &[1, 2, 3]).await {
                Some(m) => {
                    let lagging: Vec<String> = m
                        .topics
                        .iter()
                        .flat_map(|t| {
                            let name = t.name.as_ref().map_or("?", |n| n.0.as_str());
                            t.partitions
                                .iter()
                                .filter(|p| {
                                    p.leader_id.0 < 0 || p.isr_nodes.len() < p.replica_nodes.len()
                                })
                                .map(move |p| format!("{name}-{}", p.partition_index))
                        })
                        .collect();
                    if m.brokers.len() == NODES && lagging.is_empty() {
                        return;
                    }
                    format!(
                        "{} of {NODES} brokers registered; partitions under-replicated or leaderless: {lagging:?}",
                        m.brokers.len()
                    )
                }
                None => "no node answered metadata".to_owned(),
            };
            assert!(
                Instant::now() < deadline,
                "the cluster on port {} did not recover within {timeout:?}: {last}",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new(crate::support::dev_kafka())
            .args(["stop", "--port", &self.base.to_string()])
            .output();
    }
}

//! What the framework tells an operator: metrics through the [`metrics`](https://docs.rs/metrics)
//! facade (feature `metrics`).
//!
//! With the feature on, the consumer and the producer record the metrics below into whatever
//! recorder the application installed (a Prometheus exporter, an OpenTelemetry bridge,
//! `metrics-util`'s debugging recorder in tests); with no recorder installed, or the feature
//! off, recording costs nothing. Names and attributes follow the OpenTelemetry messaging
//! semantic conventions where they define one; the framework's own carry a `godev_kafka.`
//! prefix.
//!
//! Every metric carries `messaging.system = "kafka"` and `messaging.destination.name` (the
//! topic); consumer metrics also `messaging.consumer.group.name` and
//! `messaging.destination.partition.id`. The only attribute that comes from a record is the
//! event type (`godev_kafka.event.type`), and only once a handler of the group claimed it: an
//! unknown tag never becomes a label value. Keys and payloads never do.
//!
//! | name | type | attributes beyond those | what it counts |
//! |---|---|---|---|
//! | [`CONSUMED_MESSAGES`] | counter | `messaging.operation.name = "receive"` | records a partition worker received |
//! | [`PROCESS_DURATION`] | histogram, s | `messaging.operation.name = "process"`, event type, `error.type` when the call failed | each handler call, retries included |
//! | [`HANDLED`] | counter | event type | records whose handler returned `Ok` |
//! | [`RETRIES`] | counter | event type | handler calls after a failed one (a record that failed twice before it passed counts 2) |
//! | [`DEAD_LETTERED`] | counter | `godev_kafka.dead_letter.reason` ([`DeadLetterReason`](crate::consumer::DeadLetterReason), snake case) | records written to a dead-letter topic |
//! | [`REBALANCES`] | counter | group only | assignments the group's member received |
//! | [`ASSIGNED_PARTITIONS`] | gauge | group only | partitions the member owns |
//! | [`IN_FLIGHT`] | gauge | group only | records polled and not handled yet: queued for a worker, or in a handler |
//! | [`LAG`] | gauge | — | records of the partition not handled yet: its high watermark (from the last fetch) minus the offset after the last handled record; 0 once the member lost the partition |
//! | [`SENT_MESSAGES`] | counter | `messaging.operation.name = "send"`, `error.type` when it failed | records the producer sent (typed, raw and dead letters) |
//! | [`OPERATION_DURATION`] | histogram, s | as [`SENT_MESSAGES`] | from a send to its acknowledgement or failure |
//!
//! # Examples
//!
//! ```
//! # #[cfg(feature = "metrics")] {
//! // Metrics are named by these constants, for dashboards and alerts.
//! assert_eq!(godev_kafka::telemetry::HANDLED, "godev_kafka.consumer.handled");
//! # }
//! ```

use std::time::Duration;

/// Counter: records a partition worker received from the broker.
pub const CONSUMED_MESSAGES: &str = "messaging.client.consumed.messages";
/// Histogram, seconds: one handler call.
pub const PROCESS_DURATION: &str = "messaging.process.duration";
/// Counter: records whose handler returned `Ok`.
pub const HANDLED: &str = "godev_kafka.consumer.handled";
/// Counter: handler calls after a failed call of the same record.
pub const RETRIES: &str = "godev_kafka.consumer.retries";
/// Counter: records written to a dead-letter topic, by reason.
pub const DEAD_LETTERED: &str = "godev_kafka.consumer.dead_lettered";
/// Counter: assignments a group's member received.
pub const REBALANCES: &str = "godev_kafka.consumer.rebalances";
/// Gauge: partitions a group's member owns.
pub const ASSIGNED_PARTITIONS: &str = "godev_kafka.consumer.assigned_partitions";
/// Gauge: records a group's member polled and has not handled yet (queued, or in a handler).
pub const IN_FLIGHT: &str = "godev_kafka.consumer.in_flight";
/// Gauge: records of a partition not handled yet, the high watermark of its last fetch
/// minus the offset after the last handled record.
pub const LAG: &str = "godev_kafka.consumer.lag";
/// Counter: records the producer sent, failed ones with `error.type`.
pub const SENT_MESSAGES: &str = "messaging.client.sent.messages";
/// Histogram, seconds: a send, until its acknowledgement or failure.
pub const OPERATION_DURATION: &str = "messaging.client.operation.duration";

#[cfg(feature = "metrics")]
const SYSTEM: (&str, &str) = ("messaging.system", "kafka");

/// The metrics of one partition worker, with its labels made once and the handles of a
/// record's usual path (received; handled, by event type) kept, so that a handled record
/// costs no label building.
#[derive(Debug)]
pub(crate) struct PartitionMetrics {
    #[cfg(feature = "metrics")]
    labels: Vec<::metrics::Label>,
    #[cfg(feature = "metrics")]
    consumed: ::metrics::Counter,
    /// Per event type a handler claimed (a bounded set): its process duration and handled
    /// counter, for calls that passed.
    #[cfg(feature = "metrics")]
    passed: std::sync::Mutex<std::collections::HashMap<String, Passed>>,
}

#[cfg(feature = "metrics")]
#[derive(Debug)]
struct Passed {
    duration: ::metrics::Histogram,
    handled: ::metrics::Counter,
}

impl PartitionMetrics {
    /// The metrics of `partition` of `topic` in `group`.
    pub(crate) fn new(group: &str, topic: &str, partition: i32) -> Self {
        #[cfg(feature = "metrics")]
        {
            let labels = vec![
                ::metrics::Label::from_static_parts(SYSTEM.0, SYSTEM.1),
                ::metrics::Label::new("messaging.destination.name", topic.to_owned()),
                ::metrics::Label::new("messaging.consumer.group.name", group.to_owned()),
                ::metrics::Label::new("messaging.destination.partition.id", partition.to_string()),
            ];
            let mut receive = labels.clone();
            receive.push(::metrics::Label::from_static_parts(
                "messaging.operation.name",
                "receive",
            ));
            let consumed = ::metrics::counter!(CONSUMED_MESSAGES, receive);
            Self {
                labels,
                consumed,
                passed: std::sync::Mutex::default(),
            }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = (group, topic, partition);
            Self {}
        }
    }

    #[cfg(feature = "metrics")]
    fn with(&self, more: impl IntoIterator<Item = ::metrics::Label>) -> Vec<::metrics::Label> {
        let mut labels = self.labels.clone();
        labels.extend(more);
        labels
    }

    #[cfg(feature = "metrics")]
    fn event_type(tag: &str) -> ::metrics::Label {
        ::metrics::Label::new("godev_kafka.event.type", tag.to_owned())
    }

    /// A record reached the worker.
    pub(crate) fn consumed(&self) {
        #[cfg(feature = "metrics")]
        self.consumed.increment(1);
    }

    /// A handler call of a record tagged `tag` (a tag a handler claimed) took `took`; `error`
    /// names how it failed, if it did.
    pub(crate) fn processed(&self, tag: &str, took: Duration, error: Option<&'static str>) {
        #[cfg(feature = "metrics")]
        {
            let process = || {
                self.with([
                    ::metrics::Label::from_static_parts("messaging.operation.name", "process"),
                    Self::event_type(tag),
                ])
            };
            let Some(error) = error else {
                let mut passed = self.passed.lock().unwrap_or_else(|p| p.into_inner());
                if !passed.contains_key(tag) {
                    let handles = Passed {
                        duration: ::metrics::histogram!(PROCESS_DURATION, process()),
                        handled: ::metrics::counter!(HANDLED, self.with([Self::event_type(tag)])),
                    };
                    passed.insert(tag.to_owned(), handles);
                }
                let handles = &passed[tag];
                handles.duration.record(took.as_secs_f64());
                handles.handled.increment(1);
                return;
            };
            let mut labels = process();
            labels.push(::metrics::Label::from_static_parts("error.type", error));
            ::metrics::histogram!(PROCESS_DURATION, labels).record(took.as_secs_f64());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (tag, took, error);
    }

    /// The handler of a record tagged `tag` is called again after a failure.
    pub(crate) fn retried(&self, tag: &str) {
        #[cfg(feature = "metrics")]
        ::metrics::counter!(RETRIES, self.with([Self::event_type(tag)])).increment(1);
        #[cfg(not(feature = "metrics"))]
        let _ = tag;
    }

    /// A record was written to its dead-letter topic for `reason`.
    pub(crate) fn dead_lettered(&self, reason: &'static str) {
        #[cfg(feature = "metrics")]
        ::metrics::counter!(
            DEAD_LETTERED,
            self.with([::metrics::Label::from_static_parts(
                "godev_kafka.dead_letter.reason",
                reason
            )])
        )
        .increment(1);
        #[cfg(not(feature = "metrics"))]
        let _ = reason;
    }
}

/// The consumer-lag gauge of one partition of one group.
#[derive(Debug, Clone)]
pub(crate) struct LagGauge {
    #[cfg(feature = "metrics")]
    gauge: ::metrics::Gauge,
}

impl LagGauge {
    /// The gauge of `partition` of `topic` in `group`.
    pub(crate) fn new(group: &str, topic: &str, partition: i32) -> Self {
        #[cfg(feature = "metrics")]
        {
            let gauge = ::metrics::gauge!(
                LAG,
                SYSTEM.0 => SYSTEM.1,
                "messaging.destination.name" => topic.to_owned(),
                "messaging.consumer.group.name" => group.to_owned(),
                "messaging.destination.partition.id" => partition.to_string()
            );
            Self { gauge }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = (group, topic, partition);
            Self {}
        }
    }

    /// The partition has `lag` records not handled yet.
    pub(crate) fn set(&self, lag: i64) {
        #[cfg(feature = "metrics")]
        self.gauge.set(lag.max(0) as f64);
        #[cfg(not(feature = "metrics"))]
        let _ = lag;
    }
}

/// The labels of a group's own series.
#[cfg(feature = "metrics")]
fn group_labels(group: &str) -> [::metrics::Label; 2] {
    [
        ::metrics::Label::from_static_parts(SYSTEM.0, SYSTEM.1),
        ::metrics::Label::new("messaging.consumer.group.name", group.to_owned()),
    ]
}

/// Sets gauge `name` of `group` to `value`.
fn group_gauge(name: &'static str, group: &str, value: usize) {
    #[cfg(feature = "metrics")]
    ::metrics::gauge!(name, group_labels(group).iter()).set(value as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = (name, group, value);
}

/// The member of `group` received an assignment and now owns `owned` partitions.
pub(crate) fn assigned(group: &str, owned: usize) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(REBALANCES, group_labels(group).iter()).increment(1);
    self::owned(group, owned);
}

/// The member of `group` holds `records` polled and not handled yet.
pub(crate) fn in_flight(group: &str, records: usize) {
    group_gauge(IN_FLIGHT, group, records);
}

/// The member of `group` owns `owned` partitions (after an assignment, a revocation, or 0
/// when it stopped).
pub(crate) fn owned(group: &str, owned: usize) {
    group_gauge(ASSIGNED_PARTITIONS, group, owned);
}

/// A send to `topic` ended after `took`; `error` names how it failed, if it did.
pub(crate) fn sent(topic: &str, took: Duration, error: Option<&'static str>) {
    #[cfg(feature = "metrics")]
    {
        let mut labels = vec![
            ::metrics::Label::from_static_parts(SYSTEM.0, SYSTEM.1),
            ::metrics::Label::new("messaging.destination.name", topic.to_owned()),
            ::metrics::Label::from_static_parts("messaging.operation.name", "send"),
        ];
        if let Some(error) = error {
            labels.push(::metrics::Label::from_static_parts("error.type", error));
        }
        ::metrics::histogram!(OPERATION_DURATION, labels.iter()).record(took.as_secs_f64());
        ::metrics::counter!(SENT_MESSAGES, labels).increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (topic, took, error);
}

/// The `error.type` of a failed send: the Kafka error's name when the broker gave one, else
/// the kind of failure (a bounded set of values, never a message).
pub(crate) fn error_type(error: &crate::Error) -> &'static str {
    match error {
        crate::Error::Closed(_) => "closed",
        e => match e.kafka_code() {
            Some(code) => code.name(),
            None if matches!(e, crate::Error::Transport { .. }) => "transport",
            None => "_OTHER",
        },
    }
}

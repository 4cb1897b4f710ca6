//! What the Rust peers share: arguments, the 1 KiB JSON payload, pacing, percentiles and the
//! one-line `RESULT {json}` report that `bench/run` collects.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Size of every record value, in bytes.
pub const VALUE_BYTES: usize = 1024;

/// `mode key=value ...` from the command line.
#[derive(Debug)]
pub struct Args {
    /// `produce`, `consume`, `latency`, ...
    pub mode: String,
    values: BTreeMap<String, String>,
}

impl Args {
    /// Parses the process arguments.
    pub fn parse() -> Self {
        let mut it = std::env::args().skip(1);
        let mode = it.next().unwrap_or_default();
        let values = it
            .filter_map(|a| a.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect();
        Self { mode, values }
    }

    /// A required string argument.
    pub fn str(&self, key: &str) -> String {
        self.values
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("missing argument {key}=..."))
    }

    /// An optional string argument.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// A numeric argument with a default.
    pub fn num(&self, key: &str, default: u64) -> u64 {
        self.values
            .get(key)
            .map_or(default, |v| v.parse().expect("a number"))
    }
}

/// The payload of every event.
#[derive(Debug, Serialize, Deserialize)]
pub struct Data {
    /// Partition key.
    pub key: u32,
    /// Sequence number.
    pub seq: u64,
    /// Wall-clock send time, ns since the epoch.
    pub sent_ns: u64,
    /// Padding to 1 KiB.
    pub body: String,
}

/// The event every non-framework peer writes and reads: the same CloudEvents 1.0 JSON shape
/// as this framework's default codec (so every consumer reads every producer's records).
#[derive(Debug, Serialize, Deserialize)]
pub struct RawEvent {
    /// Always `1.0`.
    pub specversion: String,
    /// Unique id (here derived from the sequence number).
    pub id: String,
    /// The producer.
    pub source: String,
    /// Event type tag.
    #[serde(rename = "type")]
    pub event_type: String,
    /// RFC 3339 time of the send.
    pub time: String,
    /// Always `application/json`.
    pub datacontenttype: String,
    /// The payload.
    pub data: Data,
}

impl RawEvent {
    /// An event of `seq` whose JSON is [`VALUE_BYTES`] long (for 7-digit seqs).
    pub fn new(seq: u64, sent_ns: u64, body: &str) -> Self {
        Self {
            specversion: "1.0".into(),
            id: format!("00000000-0000-4000-8000-{seq:012}"),
            source: "bench".into(),
            event_type: "bench.event".into(),
            time: rfc3339(sent_ns),
            datacontenttype: "application/json".into(),
            data: Data {
                key: (seq % 1000) as u32,
                seq,
                sent_ns,
                body: body.to_owned(),
            },
        }
    }

    /// The padding that makes the JSON [`VALUE_BYTES`] long.
    pub fn body() -> String {
        let probe = serde_json::to_vec(&Self::new(SEQ_BASE, now_ns(), "")).unwrap();
        "x".repeat(VALUE_BYTES.saturating_sub(probe.len()))
    }
}

/// `ns` since the epoch as RFC 3339 UTC with nanoseconds.
pub fn rfc3339(ns: u64) -> String {
    let (secs, nanos) = (ns / 1_000_000_000, ns % 1_000_000_000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Sequence numbers start here so that every one has seven digits (constant record size).
pub const SEQ_BASE: u64 = 1_000_000;

/// Wall-clock nanoseconds since the epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Prints the result line `bench/run` parses.
pub fn emit(fields: serde_json::Value) {
    println!("RESULT {fields}");
}

/// How many events should have been sent `elapsed` into a run at `rate` per second.
pub fn due(elapsed: Duration, rate: u64) -> u64 {
    (elapsed.as_secs_f64() * rate as f64) as u64
}

/// Latency samples (seq, µs) gathered by a consumer during a latency run.
///
/// Every sample is kept (16 B each, as the Go and Java peers keep theirs), unless
/// [`Samples::bucketed`] switched to a fixed 100 µs histogram: the soak uses that, so that its
/// RSS over time is the framework's and not a growing sample vector.
#[derive(Debug, Default)]
pub struct Samples {
    /// (seq, latency in µs).
    pub samples: Vec<(u64, u64)>,
    /// Counts per 100 µs, when bucketed.
    pub buckets: Vec<u32>,
}

/// Histogram buckets: 100 µs each, up to 60 s.
const BUCKETS: usize = 600_000;

impl Samples {
    /// Switches to the fixed-size histogram (seq filtering then no longer applies).
    pub fn bucketed(&mut self) {
        self.buckets = vec![0; BUCKETS];
    }

    /// Adds one sample for the event `seq` sent at `sent_ns`.
    pub fn record(&mut self, seq: u64, sent_ns: u64) {
        let us = now_ns().saturating_sub(sent_ns) / 1000;
        if self.buckets.is_empty() {
            self.samples.push((seq, us));
        } else {
            self.buckets[((us / 100) as usize).min(BUCKETS - 1)] += 1;
        }
    }

    /// p50, p99, p99.9 and max (µs) of the samples with `seq >= from`, and their count.
    pub fn percentiles(&self, from: u64) -> serde_json::Value {
        if !self.buckets.is_empty() {
            let total: u64 = self.buckets.iter().map(|c| u64::from(*c)).sum();
            let at = |p: f64| {
                let rank = ((total.saturating_sub(1)) as f64 * p).round() as u64;
                let mut seen = 0u64;
                for (i, c) in self.buckets.iter().enumerate() {
                    seen += u64::from(*c);
                    if seen > rank {
                        return i as u64 * 100 + 50;
                    }
                }
                0
            };
            let max = self.buckets.iter().rposition(|c| *c > 0).unwrap_or(0) as u64 * 100 + 100;
            return serde_json::json!({
                "samples": total, "p50_us": at(0.50), "p99_us": at(0.99),
                "p999_us": at(0.999), "max_us": max, "histogram_us": 100,
            });
        }
        let mut v: Vec<u64> = self
            .samples
            .iter()
            .filter(|(s, _)| *s >= from)
            .map(|(_, l)| *l)
            .collect();
        v.sort_unstable();
        let at = |p: f64| {
            if v.is_empty() {
                0
            } else {
                v[((v.len() - 1) as f64 * p).round() as usize]
            }
        };
        serde_json::json!({
            "samples": v.len(),
            "p50_us": at(0.50),
            "p99_us": at(0.99),
            "p999_us": at(0.999),
            "max_us": v.last().copied().unwrap_or(0),
        })
    }
}

/// The phases of a latency run: warm up at `rate` for at least `warmup` and until the consumer
/// has seen a record plus two seconds, then measure for `measure`.
#[derive(Debug)]
pub struct LatencyPlan {
    /// Events per second.
    pub rate: u64,
    /// The shortest warm-up.
    pub warmup: Duration,
    /// How long the measured phase sends.
    pub measure: Duration,
}

impl LatencyPlan {
    /// From `rate=`, `warmup=` (s) and `secs=` (s).
    pub fn from_args(args: &Args) -> Self {
        Self {
            rate: args.num("rate", 5000),
            warmup: Duration::from_secs(args.num("warmup", 5)),
            measure: Duration::from_secs(args.num("secs", 20)),
        }
    }

    /// Drives `send(seq)` at the plan's rate; `seen()` says whether the consumer got a record.
    /// Returns (first measured seq, last seq + 1).
    pub fn drive(&self, mut send: impl FnMut(u64), seen: impl Fn() -> bool) -> (u64, u64) {
        let started = Instant::now();
        let mut seq = SEQ_BASE;
        let mut first_seen: Option<Instant> = None;
        let mut measure_from: Option<(u64, Instant)> = None;
        loop {
            let now = Instant::now();
            if first_seen.is_none() && seen() {
                first_seen = Some(now);
            }
            if measure_from.is_none()
                && now - started >= self.warmup
                && first_seen.is_some_and(|t| now - t >= Duration::from_secs(2))
            {
                measure_from = Some((seq, now));
            }
            if let Some((from, at)) = measure_from {
                if now - at >= self.measure {
                    return (from, seq);
                }
            }
            let target = SEQ_BASE + due(now - started, self.rate);
            while seq < target {
                send(seq);
                seq += 1;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}

//! A `metrics` recorder for the broker tests of issue #16 that keeps every counter and gauge
//! for the whole process (`metrics-util`'s debugging recorder empties itself on each
//! snapshot, which tests running side by side would take from each other). Tests read their
//! own series by their group or topic label.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

/// The process's recorder: counters and gauges by key (gauges as `f64` bits).
#[derive(Debug, Default)]
pub struct Kept {
    counters: Mutex<HashMap<Key, Arc<AtomicU64>>>,
    gauges: Mutex<HashMap<Key, Arc<AtomicU64>>>,
}

impl Recorder for Kept {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let cell = self
            .counters
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_default()
            .clone();
        Counter::from_arc(cell)
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let cell = self
            .gauges
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_default()
            .clone();
        Gauge::from_arc(cell)
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

static KEPT: OnceLock<&'static Kept> = OnceLock::new();

/// The process's recorder, installed by the first call.
pub fn kept() -> &'static Kept {
    KEPT.get_or_init(|| {
        let kept: &'static Kept = Box::leak(Box::default());
        metrics::set_global_recorder(kept).expect("no other recorder in this process");
        kept
    })
}

fn matches(key: &Key, name: &str, label: (&str, &str)) -> bool {
    key.name() == name
        && key
            .labels()
            .any(|l| l.key() == label.0 && l.value() == label.1)
}

impl Kept {
    /// The sum of counter `name` over the series with `label`.
    pub fn counter(&self, name: &str, label: (&str, &str)) -> u64 {
        self.counters
            .lock()
            .unwrap()
            .iter()
            .filter(|(key, _)| matches(key, name, label))
            .map(|(_, cell)| cell.load(Ordering::Relaxed))
            .sum()
    }

    /// Gauge `name` of each series with `label`, by the value of its label `by`.
    pub fn gauges(&self, name: &str, label: (&str, &str), by: &str) -> HashMap<String, f64> {
        self.gauges
            .lock()
            .unwrap()
            .iter()
            .filter(|(key, _)| matches(key, name, label))
            .filter_map(|(key, cell)| {
                let by = key.labels().find(|l| l.key() == by)?.value().to_owned();
                Some((by, f64::from_bits(cell.load(Ordering::Relaxed))))
            })
            .collect()
    }
}

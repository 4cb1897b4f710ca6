//! The spans of issue #16 on the in-memory backend: one per handled record (group, topic,
//! partition, offset, tag, attempt; never the key or the payload), a child of its partition
//! worker's span, and one per send, a child of the caller's span.
//!
//! Run: `cargo test -p godev-kafka --test telemetry_spans`. The capturing subscriber is the
//! process's global one, so this file holds one test.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use godev_kafka::consumer::ConsumerSettings;
use godev_kafka::transport::memory::MemoryTransport;
use godev_kafka::{Consumer, Event, HandlerError, Producer, TopicMap, handler};
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

#[derive(Debug, Serialize, Deserialize, Event)]
#[event(topic = "pings", name = "ping", key = "key")]
struct Ping {
    n: u64,
    key: String,
    note: String,
}

static FAILED_ONCE: Mutex<Option<HashSet<u64>>> = Mutex::new(None);

/// Ping 1 fails once, then passes.
#[handler]
async fn on_ping(ping: Ping) -> Result<(), HandlerError> {
    let first = FAILED_ONCE
        .lock()
        .unwrap()
        .get_or_insert_with(HashSet::new)
        .insert(ping.n);
    if ping.n == 1 && first {
        return Err(HandlerError::retriable("not yet"));
    }
    Ok(())
}

/// A span as the capture saw it: its name, its parent's name, its fields as text.
#[derive(Debug, Clone)]
struct Seen {
    name: &'static str,
    parent: Option<&'static str>,
    fields: BTreeMap<String, String>,
    open: bool,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<(u64, Seen)>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S> Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent = ctx.span(id).and_then(|s| s.parent()).map(|p| p.name());
        let seen = Seen {
            name: attrs.metadata().name(),
            parent,
            fields,
            open: true,
        };
        self.0.lock().unwrap().push((id.into_u64(), seen));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut spans = self.0.lock().unwrap();
        if let Some((_, seen)) = spans
            .iter_mut()
            .rev()
            .find(|(i, s)| *i == id.into_u64() && s.open)
        {
            values.record(&mut Fields(&mut seen.fields));
        }
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        let mut spans = self.0.lock().unwrap();
        if let Some((_, seen)) = spans
            .iter_mut()
            .rev()
            .find(|(i, s)| *i == id.into_u64() && s.open)
        {
            seen.open = false;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_per_handled_record_and_per_send_with_no_key_or_payload() {
    let capture = Capture::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(capture.clone()))
        .expect("the only subscriber of this process");
    let spans = || -> Vec<Seen> {
        capture
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, s)| s.clone())
            .collect()
    };

    let transport = MemoryTransport::new(1);
    transport.create_topic("pings", 1);
    let producer = Producer::new(transport.clone(), TopicMap::default());
    let request = tracing::info_span!("request");
    async {
        for n in 0..3 {
            let ping = Ping {
                n,
                key: format!("key-marker-{n}"),
                note: "payload-marker".into(),
            };
            producer.send(&ping).await.unwrap();
        }
    }
    .instrument(request)
    .await;
    let settings = ConsumerSettings {
        poll_wait: Duration::from_millis(10),
        backoff: Duration::from_millis(1),
        ..ConsumerSettings::default()
    };
    let running = Consumer::builder(transport.clone(), "traced")
        .settings(settings)
        .handler::<on_ping>()
        .build()
        .unwrap()
        .start();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let processed = || -> Vec<Seen> {
        spans()
            .into_iter()
            .filter(|s| s.name == "process" && !s.open)
            .collect()
    };
    while processed().len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", spans());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    running.shutdown().await.unwrap();

    let sends: Vec<Seen> = spans().into_iter().filter(|s| s.name == "send").collect();
    assert_eq!(sends.len(), 3, "{sends:?}");
    for (offset, send) in sends.iter().enumerate() {
        assert_eq!(send.parent, Some("request"), "a child of the caller's span");
        assert_eq!(send.fields["topic"], "pings");
        assert_eq!(send.fields["partition"], "0");
        assert_eq!(send.fields["offset"], offset.to_string());
    }
    let processed = processed();
    assert_eq!(processed.len(), 3, "one span per record: {processed:?}");
    for (offset, span) in processed.iter().enumerate() {
        assert_eq!(
            span.parent,
            Some("partition"),
            "a child of its worker's span"
        );
        let expected: BTreeMap<String, String> = [
            ("group", "traced".to_owned()),
            ("topic", "pings".to_owned()),
            ("partition", "0".to_owned()),
            ("offset", offset.to_string()),
            ("tag", "ping".to_owned()),
            // Ping 1 was handled at its second call.
            ("attempt", if offset == 1 { "2" } else { "1" }.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(span.fields, expected);
    }
    for span in spans() {
        for value in span.fields.values() {
            assert!(
                !value.contains("marker"),
                "a key or payload in span {}: {value}",
                span.name
            );
        }
    }
}

//! Dead letters and their replay: a handler fails for good, its records go to the dead-letter
//! topic, the cause is fixed, and the replay publishes them back to be handled.
//!
//! Run with `cargo run -p godev-kafka --example replay_dead_letters` (in-memory backend, nothing to install).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use godev_kafka::consumer::replay_dead_letters;
use godev_kafka::transport::Transport;
use godev_kafka::transport::memory::MemoryTransport;
use godev_kafka::{Codec, Consumer, Event, HandlerError, Producer, TopicMap, handler};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, Event)]
#[event(topic = "invoices", name = "invoice.issued", key = "invoice")]
struct InvoiceIssued {
    invoice: u32,
}

/// Stands for the bug (or missing data) that makes the handler fail until it is fixed.
static TAX_TABLE_LOADED: AtomicBool = AtomicBool::new(false);
static HANDLED: AtomicUsize = AtomicUsize::new(0);

#[handler]
async fn book_invoice(event: InvoiceIssued) -> Result<(), HandlerError> {
    if !TAX_TABLE_LOADED.load(Ordering::SeqCst) {
        return Err(HandlerError::permanent("tax table missing"));
    }
    println!("booked invoice {}", event.invoice);
    HANDLED.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

async fn wait_for(what: &str, condition: impl Fn() -> bool) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("replay_dead_letters: in-memory backend");
    let memory = MemoryTransport::new(2);
    let transport: Arc<dyn Transport> = Arc::new(memory.clone());
    let producer = Producer::with_transport(
        transport.clone(),
        TopicMap::new(),
        Codec::CloudEvents,
        "example",
    );
    let consumer = Consumer::builder_shared(transport.clone(), "billing")
        .handler::<book_invoice>()
        .build()?;
    let running = consumer.start();

    for invoice in 1..=3 {
        producer.send(&InvoiceIssued { invoice }).await?;
    }
    let dead = || {
        (0..2)
            .map(|p| memory.end_offset("invoices.dlq", p))
            .sum::<i64>()
    };
    wait_for("three dead letters", || dead() == 3).await?;
    println!("3 invoices dead-lettered to invoices.dlq (tax table missing)");

    TAX_TABLE_LOADED.store(true, Ordering::SeqCst);
    let report = replay_dead_letters(
        transport,
        "invoices.dlq",
        "billing-replay",
        Duration::from_secs(10),
    )
    .await?;
    println!(
        "replayed {} dead letters to their origin topic",
        report.replayed
    );
    wait_for("the replayed invoices to be booked", || {
        HANDLED.load(Ordering::SeqCst) == 3
    })
    .await?;
    running.shutdown().await?;
    println!("all 3 invoices booked after the replay");
    Ok(())
}

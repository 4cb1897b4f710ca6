//! The framework with nothing installed: derive an event, write a handler, send, consume.
//!
//! Run with `cargo run --example memory_quickstart`. It uses the in-memory backend, so it
//! needs no broker; swap the transport for the Kafka one and nothing else changes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use godev_kafka::transport::memory::MemoryTransport;
use godev_kafka::{Consumer, Context, Event, HandlerError, Producer, TopicMap, handler};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, Event)]
#[event(topic = "user_events", key = "user_id")]
enum UserEvent {
    #[event(name = "user.created")]
    Created { user_id: i64, email: String },
    #[event(name = "user.deleted")]
    Deleted { user_id: i64 },
}

static HANDLED: AtomicUsize = AtomicUsize::new(0);

#[handler]
async fn on_user_event(event: UserEvent, ctx: Context) -> Result<(), HandlerError> {
    println!(
        "handled {} from {}[{}]@{}: {event:?}",
        ctx.tag(),
        ctx.topic(),
        ctx.partition(),
        ctx.offset()
    );
    HANDLED.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("memory_quickstart: in-memory backend, no broker needed");
    let transport = MemoryTransport::new(3);
    let topics = TopicMap::from_iter([("user_events", "user-events")]);

    let consumer = Consumer::builder(transport.clone(), "quickstart")
        .topics(topics.clone())
        .handler::<on_user_event>()
        .build()?;
    let running = consumer.start();

    let producer = Producer::new(transport, topics);
    producer
        .send(&UserEvent::Created {
            user_id: 1,
            email: "ada@example.com".into(),
        })
        .await?;
    producer
        .send(&UserEvent::Created {
            user_id: 2,
            email: "alan@example.com".into(),
        })
        .await?;
    producer.send(&UserEvent::Deleted { user_id: 1 }).await?;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while HANDLED.load(Ordering::SeqCst) < 3 {
        if tokio::time::Instant::now() > deadline {
            return Err("the three events were not handled within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.shutdown().await?;
    println!("all 3 events handled; shut down cleanly");
    Ok(())
}

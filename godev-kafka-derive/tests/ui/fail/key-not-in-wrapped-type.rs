use godev_kafka::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Inner {
    job: String,
}

#[derive(Event)]
#[event(topic = "translation_events", key = "user_id")]
enum TranslationEvent {
    #[event(name = "translation.failed")]
    Failed(Inner),
}

fn main() {}

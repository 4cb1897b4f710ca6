use godev_kafka::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Failure {
    pub user_id: i64,
}

/// Every variant shape, keys from the enum and from a variant, raw field names.
#[derive(Event)]
#[event(topic = "translation_events", key = "user_id")]
pub enum TranslationEvent {
    #[event(name = "translation.completed")]
    Completed {
        user_id: i64,
        #[serde(default)]
        r#type: String,
    },
    #[event(name = "translation.failed")]
    Failed(Failure),
    #[event(name = "translation.moved", key = "r#type")]
    Moved { r#type: String },
    #[event(name = "translation.pair")]
    Pair(i64, String),
    #[event(name = "translation.empty")]
    Empty(),
    #[event(name = "translation.heartbeat")]
    Heartbeat,
}

fn main() {
    assert_eq!(TranslationEvent::TAGS.len(), 6);
}

use godev_kafka::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(topic = "user_events", name = "user.created", key = "usr_id")]
struct UserCreated {
    user_id: i64,
}

#[derive(Event)]
#[event(topic = "translation_events", key = "user_id")]
enum TranslationEvent {
    #[event(name = "translation.completed")]
    Completed { user_id: i64 },
    #[event(name = "translation.failed")]
    Failed { job: String },
    #[event(name = "translation.moved", key = "jb")]
    Moved { job: String },
}

fn main() {}

use godev_kafka::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(topic = "user_events", name = "user.created")]
#[event(name = "user.updated")]
struct UserCreated {
    user_id: i64,
}

fn main() {}

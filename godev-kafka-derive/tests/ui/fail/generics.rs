use godev_kafka::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(topic = "user_events", name = "user.created")]
struct UserCreated<T> {
    user_id: T,
}

fn main() {}

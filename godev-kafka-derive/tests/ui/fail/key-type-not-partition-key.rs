use godev_kafka::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct UserId(i64);

#[derive(Serialize, Deserialize, Event)]
#[event(topic = "user_events", name = "user.created", key = "user_id")]
struct UserCreated {
    user_id: UserId,
}

fn main() {}

use godev_kafka::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(name = "user.created")]
struct UserCreated {
    user_id: i64,
}

fn main() {}

use godev_kafka::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(topic = "user_events", name = "user.created", key = "user_id")]
pub struct UserCreated {
    pub user_id: i64,
    #[serde(rename = "mail")]
    pub email: Option<String>,
}

fn main() {
    assert_eq!(UserCreated::TOPIC, "user_events");
}

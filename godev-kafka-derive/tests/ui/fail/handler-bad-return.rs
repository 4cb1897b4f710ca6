use godev_kafka::{Event, HandlerError, handler};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(topic = "user_events", name = "user.created")]
struct UserCreated {
    user_id: i64,
}

#[handler]
async fn on_created(event: UserCreated) -> Result<u32, HandlerError> {
    Ok(event.user_id as u32)
}

#[handler]
async fn on_updated(event: UserCreated) {
    let _ = event;
}

fn main() {}

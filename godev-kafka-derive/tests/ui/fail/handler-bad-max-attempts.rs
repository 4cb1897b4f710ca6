use godev_kafka::{Event, HandlerError, handler};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(topic = "user_events", name = "user.created")]
struct UserCreated {
    user_id: i64,
}

#[handler(max_attempts = 0, backoff_ms = "200", group = "")]
async fn on_created(event: UserCreated) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}

#[handler(max_attempts = -1)]
async fn on_updated(event: UserCreated) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}

fn main() {}

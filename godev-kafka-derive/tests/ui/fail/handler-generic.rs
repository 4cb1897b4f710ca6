use godev_kafka::{Event, HandlerError, handler};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(topic = "user_events", name = "user.created")]
struct UserCreated {
    user_id: i64,
}

#[handler]
async fn on_created<E: Event>(event: E) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}

#[handler]
async fn on_updated(event: impl Event) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}

fn main() {}

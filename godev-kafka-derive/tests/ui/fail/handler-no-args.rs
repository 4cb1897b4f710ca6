use godev_kafka::{Event, HandlerError, handler};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(topic = "user_events", name = "user.created")]
struct UserCreated {
    user_id: i64,
}

#[handler]
async fn on_created() -> Result<(), HandlerError> {
    Ok(())
}

fn main() {}

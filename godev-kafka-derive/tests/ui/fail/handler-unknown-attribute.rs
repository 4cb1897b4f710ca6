use godev_kafka::{Event, HandlerError, handler};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(topic = "user_events", name = "user.created")]
struct UserCreated {
    user_id: i64,
}

#[handler(grop = "mailer", group = "mailer", group = "again")]
async fn on_created(event: UserCreated) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}

fn main() {}

use godev_kafka::{Event, HandlerError, handler};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(topic = "user_events", name = "user.created")]
struct UserCreated {
    user_id: i64,
}

async fn tick() {}

#[handler]
async fn on_created(event: UserCreated) -> Result<(), HandlerError> {
    let count = std::rc::Rc::new(event.user_id);
    tick().await;
    let _ = count;
    Ok(())
}

fn main() {}

use godev_kafka::{Event, HandlerError, handler};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(topic = "user_events", name = "user.created")]
struct UserCreated {
    user_id: i64,
}

mod other {
    pub struct Context;
}

#[handler]
async fn on_created(event: UserCreated, ctx: other::Context) -> Result<(), HandlerError> {
    let _ = (event, ctx);
    Ok(())
}

#[handler]
async fn on_updated(event: UserCreated, ctx: String) -> Result<(), HandlerError> {
    let _ = (event, ctx);
    Ok(())
}

fn main() {}

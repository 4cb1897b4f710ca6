use godev_kafka::{Context, Event, Handler, HandlerError, handler};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(topic = "user_events", name = "user.created")]
pub struct UserCreated {
    pub user_id: i64,
}

/// A documented public handler.
#[handler(group = "mailer", max_attempts = 5, backoff_ms = 200)]
pub async fn send_welcome(event: UserCreated) -> Result<(), HandlerError> {
    let _ = event.user_id;
    Ok(())
}

#[handler]
async fn with_context(
    mut event: UserCreated,
    ctx: godev_kafka::Context,
) -> Result<(), std::io::Error> {
    event.user_id += i64::from(ctx.attempt());
    assert!(event.user_id > 0);
    Ok(())
}

#[handler]
async fn event(event: UserCreated, _: Context) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}

fn registered<H: Handler>() -> &'static str {
    H::NAME
}

fn main() {
    assert!(registered::<send_welcome>().ends_with("::send_welcome"));
    assert!(registered::<with_context>().ends_with("::with_context"));
    assert!(registered::<event>().ends_with("::event"));
}

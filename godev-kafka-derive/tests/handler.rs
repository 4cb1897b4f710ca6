//! `#[handler]`: the function stays callable, and its marker type implements `Handler`.

use godev_kafka::{Context, Event, Handler, HandlerError, handler};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, Event)]
#[event(topic = "user_events", name = "user.created")]
struct UserCreated {
    user_id: i64,
}

#[handler]
async fn on_created(event: UserCreated, ctx: Context) -> Result<(), HandlerError> {
    if event.user_id < 0 {
        return Err(HandlerError::permanent(format!(
            "negative user id on {}",
            ctx.topic()
        )));
    }
    Ok(())
}

#[handler(group = "mailer", max_attempts = 5, backoff_ms = 200)]
pub(crate) async fn send_welcome(event: UserCreated) -> Result<(), std::num::ParseIntError> {
    let _: u32 = if event.user_id == 0 { "x" } else { "1" }.parse()?;
    Ok(())
}

#[tokio::test]
async fn the_function_is_still_callable() {
    let ctx = Context::for_test("user_events", "user.created");
    on_created(UserCreated { user_id: 1 }, ctx).await.unwrap();
    send_welcome(UserCreated { user_id: 1 }).await.unwrap();
}

#[test]
fn the_marker_names_the_function_and_its_event() {
    assert_eq!(<on_created as Handler>::NAME, "handler::on_created");
    assert_eq!(<send_welcome as Handler>::NAME, "handler::send_welcome");
    assert_eq!(
        <<on_created as Handler>::Event as Event>::TAGS,
        &["user.created"]
    );
}

#[test]
fn options_come_from_the_attribute() {
    let options = <send_welcome as Handler>::OPTIONS;
    assert_eq!(options.group, Some("mailer"));
    assert_eq!(options.max_attempts, Some(5));
    assert_eq!(options.backoff, Some(std::time::Duration::from_millis(200)));
    assert_eq!(
        <on_created as Handler>::OPTIONS,
        godev_kafka::__private::HandlerOptions::new()
    );
}

#[tokio::test]
async fn call_runs_the_function() {
    let ctx = || Context::for_test("user_events", "user.created");
    <on_created as Handler>::call(UserCreated { user_id: 1 }, ctx())
        .await
        .unwrap();
    let error = <on_created as Handler>::call(UserCreated { user_id: -1 }, ctx())
        .await
        .unwrap_err();
    assert!(error.is_permanent());
    assert_eq!(error.to_string(), "negative user id on user_events");
}

#[tokio::test]
async fn std_errors_become_retriable_handler_errors() {
    let ctx = Context::for_test("user_events", "user.created");
    let error = <send_welcome as Handler>::call(UserCreated { user_id: 0 }, ctx)
        .await
        .unwrap_err();
    assert!(!error.is_permanent());
    assert_eq!(error.to_string(), "invalid digit found in string");
}

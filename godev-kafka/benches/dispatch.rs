//! Cost per event of the framework's own work: encode, envelope, route, decode, call.
//!
//! Run with `cargo bench -p godev-kafka --bench dispatch`. The payload is 1 KiB of JSON; the
//! handler does nothing, so the figure is the framework's overhead per event (the in-memory
//! path without a transport: no I/O, no task switch).

use std::future::Future;
use std::task::{Context as TaskContext, Poll, Waker};

use godev_kafka::{Codec, Context, Event, HandlerError, Route, Router, handler};
use serde::{Deserialize, Serialize};

fn main() {
    divan::main();
}

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(topic = "user_events", key = "user_id")]
enum UserEvent {
    #[event(name = "user.created")]
    Created(Profile),
    #[event(name = "user.deleted")]
    Deleted { user_id: i64 },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Profile {
    user_id: i64,
    email: String,
    display_name: String,
    bio: String,
    tags: Vec<String>,
}

#[handler]
async fn on_user(event: UserEvent) -> Result<(), HandlerError> {
    divan::black_box(&event);
    Ok(())
}

fn profile() -> UserEvent {
    let event = UserEvent::Created(Profile {
        user_id: 42,
        email: "ada@example.com".into(),
        display_name: "Ada Lovelace".into(),
        bio: "x".repeat(916),
        tags: vec!["admin".into(), "beta".into(), "eu".into()],
    });
    let mut payload = Vec::new();
    event.write_payload(&mut payload).unwrap();
    assert!(
        (1000..1100).contains(&payload.len()),
        "payload is {} bytes",
        payload.len()
    );
    event
}

fn run_to_end(future: impl Future<Output = Result<(), HandlerError>>) {
    let mut future = std::pin::pin!(future);
    let mut cx = TaskContext::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(result) => result.unwrap(),
        Poll::Pending => unreachable!("the handler does not wait"),
    }
}

#[divan::bench(args = [Codec::CloudEvents, Codec::Tagged])]
fn encode_route_decode_call(bencher: divan::Bencher<'_, '_>, codec: Codec) {
    let event = profile();
    let mut router = Router::new("bench");
    router.add("user-events", Route::of::<on_user>()).unwrap();
    let ctx = Context::for_test("user-events", "user.created");
    bencher
        .counter(divan::counter::BytesCount::new(1024_usize))
        .bench_local(|| {
            let value = codec.encode(divan::black_box(&event), "bench").unwrap();
            let envelope = codec.peek(&value).unwrap();
            let route = router.route("user-events", &envelope.tag).unwrap();
            run_to_end(
                route
                    .dispatch(&envelope.tag, envelope.data, ctx.clone())
                    .unwrap(),
            );
        });
}

#[divan::bench(args = [Codec::CloudEvents, Codec::Tagged], sample_count = 1000)]
fn encode_only(bencher: divan::Bencher<'_, '_>, codec: Codec) {
    let event = profile();
    bencher.bench_local(|| codec.encode(divan::black_box(&event), "bench").unwrap());
}

#[divan::bench(args = [Codec::CloudEvents, Codec::Tagged], sample_count = 1000)]
fn peek_only(bencher: divan::Bencher<'_, '_>, codec: Codec) {
    let value = codec.encode(&profile(), "bench").unwrap();
    bencher.bench_local(|| codec.peek(divan::black_box(&value)).unwrap().tag.len());
}

#[divan::bench(sample_count = 1000)]
fn decode_only(bencher: divan::Bencher<'_, '_>) {
    let value = Codec::CloudEvents.encode(&profile(), "bench").unwrap();
    let data = Codec::CloudEvents.peek(&value).unwrap().data.to_owned();
    bencher
        .bench_local(|| UserEvent::read_payload("user.created", divan::black_box(&data)).unwrap());
}

use godev_kafka::Event;

#[derive(Event)]
#[event(topc = "user_events", name = "user.created", key = "user_id", crate = 1)]
#[event(name = "again")]
struct UserCreated {
    id: i64,
}

fn main() {}

use godev_kafka::Event;

struct NoSerde {
    user_id: i64,
}

#[derive(Event)]
#[event(topic = "user_events", name = "user.created")]
struct UserCreated {
    user_id: i64,
    extra: NoSerde,
}

fn main() {}

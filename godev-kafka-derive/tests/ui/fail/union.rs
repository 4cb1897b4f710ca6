use godev_kafka::Event;

#[derive(Event)]
#[event(topic = "user_events", name = "user.created")]
union Bits {
    int: u32,
    float: f32,
}

fn main() {}

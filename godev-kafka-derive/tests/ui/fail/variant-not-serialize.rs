use godev_kafka::Event;

struct NoSerde {
    user_id: i64,
}

#[derive(Event)]
#[event(topic = "translation_events")]
enum TranslationEvent {
    #[event(name = "translation.failed")]
    Failed(NoSerde),
    #[event(name = "translation.completed")]
    Completed { user_id: i64, extra: NoSerde },
}

fn main() {}

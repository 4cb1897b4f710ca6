use godev_kafka::Event;

#[derive(Event)]
#[event(topic = "translation_events")]
enum TranslationEvent {
    #[event(name = "translation.completed")]
    Completed { user_id: i64 },
    #[event(name = "translation.completed")]
    Failed { user_id: i64 },
}

fn main() {}

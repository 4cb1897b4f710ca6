use godev_kafka::Event;

#[derive(Event)]
#[event(topic = "translation_events", name = "translation")]
enum TranslationEvent {
    #[event(name = "translation.completed")]
    Completed { user_id: i64 },
}

fn main() {}

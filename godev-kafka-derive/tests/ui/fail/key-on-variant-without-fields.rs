use godev_kafka::Event;

#[derive(Event)]
#[event(topic = "translation_events")]
enum TranslationEvent {
    #[event(name = "translation.pair", key = "user_id")]
    Pair(i64, String),
    #[event(name = "translation.heartbeat", key = "user_id", topic = "other")]
    Heartbeat,
}

fn main() {}

use godev_kafka::Event;

#[derive(Event)]
#[event(topic = "translation_events")]
enum TranslationEvent {}

fn main() {}

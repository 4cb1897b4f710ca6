//! GoDev Kit's Kafka integration on godev-kafka: entities, repository and use cases.

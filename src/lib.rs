//! GoDev Kit's Kafka integration on godev-kafka: entities, repository and use cases.
//!
//! The layers of the Go kit, with its defects fixed (see `/README.md`):
//!
//! - [`entity`]: the user and translation events, wire-compatible with the Go kit's JSON;
//! - [`repo`]: the `KafkaRepo` contract and its implementation over the framework's manager;
//! - [`usecase`]: producing events and registering their consumers;
//! - [`demo`]: the Go kit's `examples/kafka_demo.go`, as a function the example and the tests
//!   call.

pub mod demo;
pub mod entity;
mod error;
pub mod repo;
pub mod usecase;

pub use error::{Error, Result};

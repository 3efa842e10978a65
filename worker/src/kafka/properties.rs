//! The librdkafka properties a user may not set: part of the task contract
//! ([`tidemark_task::properties`]), shared with the operator. The client builder
//! ([`super::KafkaConfig`]) sets the guarantees after the user's properties anyway.

pub use tidemark_task::properties::*;

//! Creating the worker's Kafka clients from a [`KafkaConfig`] (their configurations are built
//! in [`config`](super::config)).

use std::fmt;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::config::{Isolation, KafkaConfig, Reader};
use crate::error::{Error, Result};

impl KafkaConfig {
    /// An assign-only reader configured by [`consumer_config`](Self::consumer_config). A failure
    /// reads `"{context}: {cause}"`.
    pub fn create_consumer(
        &self,
        reader: &Reader<'_>,
        tuning: &[(&str, String)],
        context: fmt::Arguments<'_>,
    ) -> Result<BaseConsumer> {
        self.consumer_config(reader, tuning)
            .create()
            .map_err(|e| Error::kafka(context.to_string(), e))
    }

    /// A reader of one partition up to its end (end-of-partition events, short fetch waits),
    /// for reading back what was written to a target partition.
    pub fn partition_reader(
        &self,
        group_id: &str,
        isolation: Isolation,
        offset_reset: &str,
        topic: &str,
        partition: i32,
    ) -> Result<BaseConsumer> {
        let reader = Reader {
            group_id,
            isolation,
            offset_reset,
            partition_eof: true,
        };
        self.create_consumer(
            &reader,
            &[("fetch.wait.max.ms", "50".into())],
            format_args!("cannot create a reader for {topic}-{partition}"),
        )
    }
}

/// Assigns `consumer` to `topic`-`partition` from offset `from` (an assign-only reader reads
/// that one partition from there).
pub fn assign_from(consumer: &BaseConsumer, topic: &str, partition: i32, from: i64) -> Result<()> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(from))
        .map_err(|e| Error::kafka("", e))?;
    consumer
        .assign(&tpl)
        .map_err(|e| Error::kafka(format!("cannot read {topic}-{partition}"), e))
}

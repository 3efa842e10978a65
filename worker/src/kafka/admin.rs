//! Consumer-group administration (PLACEHOLDER: signatures only; being implemented).
#![allow(clippy::unused_async)]

use super::{
    CommittedOffset, GroupDescription, GroupListing, KafkaConfig, ListedOffset, OffsetSpec,
    PartitionFailure, TopicPartition,
};
use crate::error::{Error, Result};

/// Admin client for consumer-group and offset operations.
pub struct GroupAdmin {
    config: KafkaConfig,
}

impl std::fmt::Debug for GroupAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupAdmin")
            .field("bootstrap_servers", &self.config.bootstrap_servers)
            .finish()
    }
}

fn pending() -> Error {
    Error::Kafka("not implemented".into())
}

impl GroupAdmin {
    /// Connects and checks the cluster answers (maps failures to Connection/Authentication/Tls).
    pub async fn connect(config: &KafkaConfig) -> Result<Self> {
        let _ = config;
        Err(pending())
    }
    /// The configuration this client was built from.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }
    /// All consumer groups with their states.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        Err(pending())
    }
    /// Describes groups; one entry per input group, in input order.
    pub async fn describe_groups(
        &self,
        groups: &[String],
    ) -> Result<Vec<Result<GroupDescription>>> {
        let _ = groups;
        Err(pending())
    }
    /// Committed offsets of one group (only partitions with a committed offset).
    pub async fn committed_offsets(&self, group: &str) -> Result<Vec<CommittedOffset>> {
        let _ = group;
        Err(pending())
    }
    /// Commits offsets for a group without joining it; returns partition-level failures.
    pub async fn alter_offsets(
        &self,
        group: &str,
        offsets: &[CommittedOffset],
    ) -> Result<Vec<PartitionFailure>> {
        let _ = (group, offsets);
        Err(pending())
    }
    /// ListOffsets for the given partitions; one entry per input, in input order.
    pub async fn list_offsets(
        &self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
    ) -> Result<Vec<Result<ListedOffset>>> {
        let _ = (partitions, spec);
        Err(pending())
    }
}

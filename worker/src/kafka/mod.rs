//! Kafka access for the worker: one connection description ([`KafkaConfig`]) and the
//! consumer-group admin operations every offset tool is built on ([`GroupAdmin`]).

pub mod admin;
mod clients;

pub use clients::assign_from;
pub mod config;
pub mod properties;
mod target;

use std::fmt;

pub use admin::GroupAdmin;
pub use config::{
    Isolation, KafkaConfig, ProducerAcks, Reader, SaslCredentials, SaslMechanism, SecurityProtocol,
    TlsFiles,
};
pub use target::{kafka_config, kafka_config_with};

/// A consumer group's state as Kafka reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    Unknown,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
    Empty,
    Assigning,
    Reconciling,
}

impl GroupState {
    /// Kafka only lets offsets be reset for groups without live members.
    pub fn is_inactive(self) -> bool {
        matches!(self, GroupState::Empty | GroupState::Dead)
    }

    /// Kafka's own spelling, as `kafka-consumer-groups.sh` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Unknown => "Unknown",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
            GroupState::Empty => "Empty",
            GroupState::Assigning => "Assigning",
            GroupState::Reconciling => "Reconciling",
        }
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A group as returned by ListGroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub state: GroupState,
}

/// A group as returned by DescribeGroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    /// Number of live members.
    pub members: usize,
}

/// One partition's committed offset (read) or offset to commit (write).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub metadata: String,
}

/// A partition-level failure within an otherwise successful request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionFailure {
    pub topic: String,
    pub partition: i32,
    pub error: String,
}

/// Which offset ListOffsets should return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (high watermark under read_uncommitted, LSO under read_committed).
    Latest,
    /// The first offset whose timestamp is at or after the given epoch milliseconds.
    Timestamp(i64),
}

/// One answer of ListOffsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedOffset {
    pub topic: String,
    pub partition: i32,
    /// -1 when no record matches a timestamp query.
    pub offset: i64,
    /// The record timestamp for timestamp queries, -1 otherwise.
    pub timestamp: i64,
}

/// A topic's partitions and replication factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicLayout {
    /// Partition ids, ascending.
    pub partitions: Vec<i32>,
    pub replication_factor: i32,
}

/// A topic and partition.
pub type TopicPartition = (String, i32);

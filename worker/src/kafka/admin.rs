//! Consumer-group and offset administration over librdkafka's admin API. Contract: one
//! [`GroupAdmin`] owns one librdkafka client, one result queue and one polling thread; every
//! operation is an asynchronous admin request (never a consumer, never a group join), bounded by
//! [`KafkaConfig::request_timeout`], and any number may be in flight at once. Failing to reach,
//! authenticate to or handshake with the cluster surfaces as [`Error::Connection`],
//! [`Error::Authentication`] or [`Error::Tls`]; anything else Kafka rejects is [`Error::Kafka`].
//!
//! rust-rdkafka has no safe wrappers for these requests, so this is the one module that calls
//! librdkafka's C API directly. Every `unsafe` block says why it is sound, and every librdkafka
//! object created here is owned by a small RAII guard that frees it on every path.
#![allow(unsafe_code)]

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::mem::ManuallyDrop;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::admin::AdminClient;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use rdkafka_sys::bindings as rd;
use rdkafka_sys::types::RDKafkaErrorCode;
use tokio::sync::oneshot;

use super::{
    CommittedOffset, GroupDescription, GroupListing, GroupState, KafkaConfig, ListedOffset,
    OffsetSpec, PartitionFailure, TopicLayout, TopicPartition,
};
use crate::error::{Error, Result};

/// Groups per DescribeConsumerGroups request; bigger inputs are split and sent concurrently.
const DESCRIBE_CHUNK: usize = 250;
/// How long the polling thread blocks in one `rd_kafka_queue_poll`.
const POLL_INTERVAL_MS: c_int = 100;
/// Length of one metadata round trip while `connect` probes the cluster; between slices it
/// checks for authentication and TLS failures so those fail fast.
const PROBE_SLICE: Duration = Duration::from_millis(500);
/// librdkafka reports an identical broker error at most once per 30 s, so a recorded error this
/// much older than a request still explains the request's failure.
const ERROR_SUPPRESSION_WINDOW: Duration = Duration::from_secs(30);
/// Extra time granted beyond librdkafka's own request timeout before the answer is given up on.
const ANSWER_GRACE: Duration = Duration::from_secs(10);

/// Admin client for consumer-group and offset operations.
///
/// Cheap to clone: clones share one librdkafka client, its result queue and polling thread,
/// which stop when the last clone is dropped.
#[derive(Clone)]
pub struct GroupAdmin {
    config: KafkaConfig,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GroupAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupAdmin")
            .field("bootstrap_servers", &self.config.bootstrap_servers)
            .finish()
    }
}

impl GroupAdmin {
    /// Connects and checks the cluster answers (maps failures to Connection/Authentication/Tls).
    ///
    /// The check is a broker-only metadata request bounded by `config.request_timeout`;
    /// rejected credentials and failed TLS handshakes end it early.
    pub async fn connect(config: &KafkaConfig) -> Result<Self> {
        let admin = GroupAdmin {
            config: config.clone(),
            inner: Arc::new(Inner::new(config)?),
        };
        let inner = Arc::clone(&admin.inner);
        let timeout = config.request_timeout;
        let probe = tokio::task::spawn_blocking(move || inner.probe_cluster(timeout))
            .await
            .map_err(|e| Error::Kafka(format!("cluster check did not complete: {e}")))?;
        match probe {
            Ok(()) => {
                admin.inner.ctx().clear();
                Ok(admin)
            }
            Err(failure) => Err(admin.failure(
                failure.code,
                &failure.message,
                failure.started,
                &format!(
                    "no metadata answer within {}",
                    humanize(config.request_timeout)
                ),
            )),
        }
    }

    /// The configuration this client was built from.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// All consumer groups with their states, sorted by group id.
    ///
    /// Fails if any broker could not answer, so a listing is never silently incomplete.
    /// Brokers older than Kafka 2.6 do not report states; those groups are `Unknown`.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        const WHAT: &str = "failed to list consumer groups";
        let reply = self.inner.dispatch(
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS,
            self.config.request_timeout,
            false,
            |rk, options, queue| {
                // SAFETY: `rk`, `options` and `queue` are live handles provided by `dispatch`;
                // librdkafka copies the options before returning.
                unsafe { rd::rd_kafka_ListConsumerGroups(rk, options, queue) }
            },
        )?;
        let started = reply.started;
        let event = self.answer(reply, WHAT).await?;
        // SAFETY: `event` is a live event; the result view lives as long as the event.
        let result = unsafe { rd::rd_kafka_event_ListConsumerGroups_result(event.as_ptr()) };
        if result.is_null() {
            return Err(unexpected_event(WHAT));
        }
        let mut count = 0usize;
        // SAFETY: `result` is a ListConsumerGroups result owned by `event`.
        let errors = unsafe { rd::rd_kafka_ListConsumerGroups_result_errors(result, &mut count) };
        // SAFETY: librdkafka returns an array of `count` error pointers owned by the event.
        let errors = unsafe { raw_slice(errors, count) };
        if let Some(first) = errors.first() {
            // SAFETY: each element is a live `rd_kafka_error_t` owned by the event.
            let (code, _) = unsafe { error_parts(*first) };
            let message = errors
                .iter()
                // SAFETY: as above.
                .map(|e| unsafe { error_parts(*e) }.1)
                .collect::<Vec<_>>()
                .join("; ");
            return Err(self.failure(code, &message, started, WHAT));
        }
        let mut count = 0usize;
        // SAFETY: `result` is a ListConsumerGroups result owned by `event`.
        let valid = unsafe { rd::rd_kafka_ListConsumerGroups_result_valid(result, &mut count) };
        // SAFETY: librdkafka returns an array of `count` listing pointers owned by the event.
        let valid = unsafe { raw_slice(valid, count) };
        let mut groups: Vec<GroupListing> = valid
            .iter()
            .map(|listing| {
                // SAFETY: each listing is live while `event` is; the id string is copied.
                unsafe {
                    GroupListing {
                        group_id: owned_str(rd::rd_kafka_ConsumerGroupListing_group_id(*listing)),
                        state: group_state(rd::rd_kafka_ConsumerGroupListing_state(*listing)),
                    }
                }
            })
            .collect();
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(groups)
    }

    /// Describes groups; one entry per input group, in input order.
    ///
    /// A group Kafka does not know is reported as `Ok` with state `Dead` and no members.
    /// An entry is `Err` when Kafka could not describe that one group; the whole call fails only
    /// when a request as a whole fails (connectivity, authentication, invalid group id).
    pub async fn describe_groups(
        &self,
        groups: &[String],
    ) -> Result<Vec<Result<GroupDescription>>> {
        let mut seen = HashSet::new();
        let unique: Vec<&str> = groups
            .iter()
            .map(String::as_str)
            .filter(|g| seen.insert(*g))
            .collect();
        if let Some(bad) = unique.iter().find(|g| g.is_empty() || g.contains('\0')) {
            return Err(Error::invalid(format!(
                "consumer group id '{}' is empty or contains a NUL byte",
                bad.escape_debug()
            )));
        }
        let answers =
            futures::future::try_join_all(unique.chunks(DESCRIBE_CHUNK).map(|chunk| async move {
                let started = Instant::now();
                self.describe_chunk(chunk).await.map(|a| (started, a))
            }))
            .await?;
        let mut by_group = HashMap::new();
        for (started, answer) in answers {
            for (group, outcome) in answer {
                by_group.insert(group, (started, outcome));
            }
        }
        Ok(groups
            .iter()
            .map(|group| match by_group.get(group) {
                Some((_, Ok(description))) => Ok(description.clone()),
                Some((started, Err((code, message)))) => Err(self.failure(
                    *code,
                    message,
                    *started,
                    &format!("failed to describe consumer group '{group}'"),
                )),
                None => Err(Error::Kafka(format!(
                    "failed to describe consumer group '{group}': Kafka returned no description"
                ))),
            })
            .collect())
    }

    /// Committed offsets of one group (only partitions with a committed offset).
    ///
    /// Sorted by topic and partition; `metadata` is empty when none was committed. A group that
    /// does not exist has no committed offsets, so it yields an empty list.
    pub async fn committed_offsets(&self, group: &str) -> Result<Vec<CommittedOffset>> {
        let what = format!("failed to fetch committed offsets of group '{group}'");
        let reply = {
            let group_id = c_string(group, "consumer group id")?;
            // SAFETY: `group_id` is a valid C string; a NULL partition list asks for every
            // partition. librdkafka copies both; the guard destroys the request object.
            let request = Owned::new(
                unsafe {
                    rd::rd_kafka_ListConsumerGroupOffsets_new(group_id.as_ptr(), ptr::null())
                },
                rd::rd_kafka_ListConsumerGroupOffsets_destroy,
                "ListConsumerGroupOffsets request",
            )?;
            let mut requests = [request.as_ptr()];
            self.inner.dispatch(
                rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS,
                self.config.request_timeout,
                false,
                |rk, options, queue| {
                    // SAFETY: handles from `dispatch` are live; `requests` holds one live request
                    // which librdkafka copies before returning (we still own and free it).
                    unsafe {
                        rd::rd_kafka_ListConsumerGroupOffsets(
                            rk,
                            requests.as_mut_ptr(),
                            requests.len(),
                            options,
                            queue,
                        )
                    }
                },
            )?
        };
        let started = reply.started;
        let event = self.answer(reply, &what).await?;
        // SAFETY: `event` is live; the result view lives as long as the event.
        let result = unsafe { rd::rd_kafka_event_ListConsumerGroupOffsets_result(event.as_ptr()) };
        if result.is_null() {
            return Err(unexpected_event(&what));
        }
        let mut count = 0usize;
        // SAFETY: `result` is a ListConsumerGroupOffsets result owned by `event`.
        let results =
            unsafe { rd::rd_kafka_ListConsumerGroupOffsets_result_groups(result, &mut count) };
        // SAFETY: an array of `count` group results owned by the event.
        let results = unsafe { raw_slice(results, count) };
        let Some(&group_result) = results.first() else {
            return Err(Error::Kafka(format!("{what}: Kafka returned no result")));
        };
        // SAFETY: `group_result` is live while `event` is.
        let group_error = unsafe { rd::rd_kafka_group_result_error(group_result) };
        if !group_error.is_null() {
            // SAFETY: a live error owned by the group result.
            let (code, message) = unsafe { error_parts(group_error) };
            return Err(self.failure(code, &message, started, &what));
        }
        // SAFETY: `group_result` is live; the partition list is owned by it.
        let partitions =
            unsafe { partition_elems(rd::rd_kafka_group_result_partitions(group_result)) };
        let mut offsets = Vec::with_capacity(partitions.len());
        for partition in partitions {
            // SAFETY: each element is a live partition of the list borrowed above.
            let topic = unsafe { owned_str(partition.topic) };
            if partition.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                return Err(self.failure(
                    partition.err.into(),
                    &err_text(partition.err),
                    started,
                    &format!("{what} (partition {topic}-{})", partition.partition),
                ));
            }
            if partition.offset < 0 {
                continue;
            }
            offsets.push(CommittedOffset {
                topic,
                partition: partition.partition,
                offset: partition.offset,
                // SAFETY: `metadata` points to `metadata_size` bytes owned by the partition.
                metadata: unsafe { metadata_text(partition) },
            });
        }
        offsets.sort();
        Ok(offsets)
    }

    /// Commits offsets for a group without joining it; returns partition-level failures.
    ///
    /// An empty result means every offset was committed. Kafka's rule that only inactive groups
    /// may be changed is the caller's to enforce. Offsets must be `>= 0` and each partition may
    /// appear once; an empty `offsets` commits nothing.
    pub async fn alter_offsets(
        &self,
        group: &str,
        offsets: &[CommittedOffset],
    ) -> Result<Vec<PartitionFailure>> {
        validate_commit(group, offsets)?;
        if offsets.is_empty() {
            return Ok(Vec::new());
        }
        let what = format!("failed to commit offsets for group '{group}'");
        let reply = {
            let group_id = c_string(group, "consumer group id")?;
            let list = PartitionList::with_capacity(offsets.len())?;
            for offset in offsets {
                list.add(
                    &offset.topic,
                    offset.partition,
                    offset.offset,
                    &offset.metadata,
                )?;
            }
            // SAFETY: `group_id` and `list` are live; librdkafka copies both (metadata included).
            let request = Owned::new(
                unsafe {
                    rd::rd_kafka_AlterConsumerGroupOffsets_new(group_id.as_ptr(), list.as_ptr())
                },
                rd::rd_kafka_AlterConsumerGroupOffsets_destroy,
                "AlterConsumerGroupOffsets request",
            )?;
            let mut requests = [request.as_ptr()];
            self.inner.dispatch(
                rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS,
                self.config.request_timeout,
                false,
                |rk, options, queue| {
                    // SAFETY: handles from `dispatch` are live; `requests` holds one live request
                    // which librdkafka copies before returning (we still own and free it).
                    unsafe {
                        rd::rd_kafka_AlterConsumerGroupOffsets(
                            rk,
                            requests.as_mut_ptr(),
                            requests.len(),
                            options,
                            queue,
                        )
                    }
                },
            )?
        };
        let started = reply.started;
        let event = self.answer(reply, &what).await?;
        // SAFETY: `event` is live; the result view lives as long as the event.
        let result = unsafe { rd::rd_kafka_event_AlterConsumerGroupOffsets_result(event.as_ptr()) };
        if result.is_null() {
            return Err(unexpected_event(&what));
        }
        let mut count = 0usize;
        // SAFETY: `result` is an AlterConsumerGroupOffsets result owned by `event`.
        let results =
            unsafe { rd::rd_kafka_AlterConsumerGroupOffsets_result_groups(result, &mut count) };
        // SAFETY: an array of `count` group results owned by the event.
        let results = unsafe { raw_slice(results, count) };
        let Some(&group_result) = results.first() else {
            return Err(Error::Kafka(format!("{what}: Kafka returned no result")));
        };
        // SAFETY: `group_result` is live while `event` is.
        let group_error = unsafe { rd::rd_kafka_group_result_error(group_result) };
        if !group_error.is_null() {
            // SAFETY: a live error owned by the group result.
            let (code, message) = unsafe { error_parts(group_error) };
            return Err(self.failure(code, &message, started, &what));
        }
        // SAFETY: `group_result` is live; the partition list is owned by it.
        let partitions =
            unsafe { partition_elems(rd::rd_kafka_group_result_partitions(group_result)) };
        Ok(partitions
            .iter()
            .filter(|p| p.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR)
            .map(|p| PartitionFailure {
                // SAFETY: `topic` is a C string owned by the partition list.
                topic: unsafe { owned_str(p.topic) },
                partition: p.partition,
                error: err_text(p.err),
            })
            .collect())
    }

    /// ListOffsets for the given partitions; one entry per input, in input order.
    ///
    /// Uses isolation level read_committed, so `Latest` is the last stable offset. An entry is
    /// `Err` when that partition could not be answered (unknown topic or partition, invalid
    /// input); the whole call fails only when the request as a whole fails.
    pub async fn list_offsets(
        &self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
    ) -> Result<Vec<Result<ListedOffset>>> {
        self.list_offsets_isolated(partitions, spec, true).await
    }

    /// [`list_offsets`](Self::list_offsets) with a chosen isolation level: under
    /// read_uncommitted (`read_committed == false`, what Kafka's own tools use for resets)
    /// `Latest` is the high watermark.
    ///
    /// A log start or end is never negative: a broker that answers one without an error (one
    /// still loading its logs after a restart, say) is asked again a few times, then the
    /// partition's answer is an error, so no caller takes "-1" for where a log starts or ends.
    pub async fn list_offsets_isolated(
        &self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
        read_committed: bool,
    ) -> Result<Vec<Result<ListedOffset>>> {
        let bounds = matches!(spec, OffsetSpec::Earliest | OffsetSpec::Latest);
        let unanswered = |r: &Result<ListedOffset>| bounds && matches!(r, Ok(l) if l.offset < 0);
        let mut attempt = 1;
        loop {
            let answers = self
                .list_offsets_once(partitions, spec, read_committed)
                .await?;
            if !answers.iter().any(unanswered) {
                return Ok(answers);
            }
            if attempt == LIST_OFFSETS_ATTEMPTS {
                return Ok(answers
                    .into_iter()
                    .map(|r| match r {
                        Ok(l) if bounds && l.offset < 0 => Err(Error::Kafka(format!(
                            "failed to list offsets of {}-{}: the broker answered offset {} without an error ({LIST_OFFSETS_ATTEMPTS} times); it may still be starting, run again",
                            l.topic, l.partition, l.offset
                        ))),
                        other => other,
                    })
                    .collect());
            }
            tracing::debug!(
                attempt,
                "the broker answered a negative log start or end; asking again"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            attempt += 1;
        }
    }

    async fn list_offsets_once(
        &self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
        read_committed: bool,
    ) -> Result<Vec<Result<ListedOffset>>> {
        const WHAT: &str = "failed to list offsets";
        let spec_value = offset_spec_value(spec)?;
        let mut seen = HashSet::new();
        let unique: Vec<(&str, i32)> = partitions
            .iter()
            .map(|(t, p)| (t.as_str(), *p))
            .filter(|(t, p)| !t.is_empty() && !t.contains('\0') && *p >= 0)
            .filter(|tp| seen.insert(*tp))
            .collect();
        let mut answers: HashMap<(String, i32), Answer<(i64, i64)>> = HashMap::new();
        let mut started = Instant::now();
        if !unique.is_empty() {
            let reply = {
                let list = PartitionList::with_capacity(unique.len())?;
                for (topic, partition) in &unique {
                    list.add(topic, *partition, spec_value, "")?;
                }
                self.inner.dispatch(
                    rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTOFFSETS,
                    self.config.request_timeout,
                    read_committed,
                    |rk, options, queue| {
                        // SAFETY: handles from `dispatch` are live; librdkafka copies the
                        // partition list before returning (we still own and free it).
                        unsafe { rd::rd_kafka_ListOffsets(rk, list.as_ptr(), options, queue) }
                    },
                )?
            };
            started = reply.started;
            let event = self.answer_raw(reply, WHAT).await?;
            match event_error(&event) {
                None => {
                    // SAFETY: `event` is live; the result view lives as long as the event.
                    let result = unsafe { rd::rd_kafka_event_ListOffsets_result(event.as_ptr()) };
                    if result.is_null() {
                        return Err(unexpected_event(WHAT));
                    }
                    self.inner.ctx().clear();
                    let mut count = 0usize;
                    // SAFETY: `result` is a ListOffsets result owned by `event`.
                    let infos =
                        unsafe { rd::rd_kafka_ListOffsets_result_infos(result, &mut count) };
                    // SAFETY: an array of `count` result infos owned by the event.
                    for info in unsafe { raw_slice(infos, count) } {
                        // SAFETY: each info and its partition are live while `event` is.
                        let (partition, timestamp) = unsafe {
                            (
                                rd::rd_kafka_ListOffsetsResultInfo_topic_partition(*info).as_ref(),
                                rd::rd_kafka_ListOffsetsResultInfo_timestamp(*info),
                            )
                        };
                        let Some(partition) = partition else {
                            continue;
                        };
                        // SAFETY: `topic` is a C string owned by the partition.
                        let key = (unsafe { owned_str(partition.topic) }, partition.partition);
                        let answer = if partition.err
                            == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                        {
                            Ok((partition.offset, timestamp))
                        } else {
                            Err((partition.err.into(), err_text(partition.err)))
                        };
                        answers.insert(key, answer);
                    }
                }
                // No topic of the request has a leader: each partition gets the answer.
                Some((RDKafkaErrorCode::NoEnt, message)) => {
                    for (topic, partition) in &unique {
                        answers.insert(
                            (topic.to_string(), *partition),
                            Err((RDKafkaErrorCode::UnknownTopicOrPartition, message.clone())),
                        );
                    }
                }
                Some((code, message)) => return Err(self.failure(code, &message, started, WHAT)),
            }
        }
        Ok(partitions
            .iter()
            .map(|(topic, partition)| {
                if topic.is_empty() || topic.contains('\0') || *partition < 0 {
                    return Err(Error::invalid(format!(
                        "'{}-{partition}' is not a valid topic partition",
                        topic.escape_debug()
                    )));
                }
                match answers.get(&(topic.clone(), *partition)) {
                    Some(Ok((offset, timestamp))) => Ok(ListedOffset {
                        topic: topic.clone(),
                        partition: *partition,
                        offset: *offset,
                        timestamp: match spec {
                            OffsetSpec::Timestamp(_) => *timestamp,
                            OffsetSpec::Earliest | OffsetSpec::Latest => -1,
                        },
                    }),
                    Some(Err((code, message))) => Err(self.failure(
                        *code,
                        message,
                        started,
                        &format!("failed to list offsets of {topic}-{partition}"),
                    )),
                    None => Err(Error::Kafka(format!(
                        "failed to list offsets of {topic}-{partition}: Kafka returned no answer"
                    ))),
                }
            })
            .collect())
    }

    /// Partition ids of `topic`, ascending, from cluster metadata.
    ///
    /// A topic that does not exist is an [`Error::Kafka`] naming it.
    pub async fn topic_partitions(&self, topic: &str) -> Result<Vec<i32>> {
        Ok(self.topic_layout(topic).await?.partitions)
    }

    /// Partition ids (ascending) and replication factor of `topic`, from cluster metadata.
    ///
    /// A topic that does not exist is an [`Error::Kafka`] naming it.
    pub async fn topic_layout(&self, topic: &str) -> Result<TopicLayout> {
        let inner = Arc::clone(&self.inner);
        let timeout = self.config.request_timeout;
        let name = topic.to_string();
        let started = Instant::now();
        let fetched = tokio::task::spawn_blocking(move || {
            inner
                .client
                .inner()
                .fetch_metadata(Some(&name), timeout)
                .map(|md| {
                    md.topics().first().map(|t| {
                        let error = t.error().map(RDKafkaErrorCode::from);
                        let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
                        ids.sort_unstable();
                        let replicas = t
                            .partitions()
                            .iter()
                            .map(|p| p.replicas().len())
                            .max()
                            .unwrap_or(0);
                        (error, (ids, replicas))
                    })
                })
        })
        .await
        .map_err(|e| Error::Kafka(format!("metadata request did not complete: {e}")))?;
        let what = format!("failed to fetch metadata of topic '{topic}'");
        match fetched {
            Ok(Some((None, (ids, replicas)))) if !ids.is_empty() => {
                self.inner.ctx().clear();
                Ok(TopicLayout {
                    partitions: ids,
                    replication_factor: i32::try_from(replicas).unwrap_or(i32::MAX),
                })
            }
            Ok(Some((Some(RDKafkaErrorCode::UnknownTopicOrPartition), _)))
            | Ok(Some((None, _))) => Err(Error::Kafka(format!("topic '{topic}' does not exist"))),
            Ok(Some((Some(code), _))) => Err(self.failure(code, &code.to_string(), started, &what)),
            Ok(None) => Err(Error::Kafka(format!("{what}: Kafka returned no topic"))),
            Err(e) => Err(self.kafka_error(&e, started, &what)),
        }
    }

    /// The configs of `topic` that are not broker defaults (what re-creating it needs).
    pub async fn topic_configs(
        &self,
        topic: &str,
    ) -> Result<std::collections::BTreeMap<String, String>> {
        use rdkafka::admin::{AdminOptions, ConfigSource, ResourceSpecifier};
        let what = format!("failed to describe the configs of topic '{topic}'");
        let started = Instant::now();
        let opts = AdminOptions::new().request_timeout(Some(self.config.request_timeout));
        let results = self
            .inner
            .client
            .describe_configs(&[ResourceSpecifier::Topic(topic)], &opts)
            .await
            .map_err(|e| self.kafka_error(&e, started, &what))?;
        let mut out = std::collections::BTreeMap::new();
        for r in results {
            let resource =
                r.map_err(|code| self.failure(code, &code.to_string(), started, &what))?;
            for entry in resource.entries {
                let default = matches!(entry.source, ConfigSource::Default);
                if !default && !entry.is_sensitive {
                    if let Some(v) = entry.value {
                        out.insert(entry.name, v);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Creates `topic` with `partitions`, `replication_factor` and `configs` (what a backup
    /// recorded). A topic that already exists is an error naming it.
    pub async fn create_topic(
        &self,
        topic: &str,
        partitions: i32,
        replication_factor: i32,
        configs: &std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        self.create_topic_if(topic, partitions, replication_factor, configs, false)
            .await
            .map(|_| ())
    }

    /// As [`create_topic`](Self::create_topic), but a topic created meanwhile by someone else
    /// (another shard of the same restore) is no error: `Ok(false)`.
    pub async fn create_topic_if_missing(
        &self,
        topic: &str,
        partitions: i32,
        replication_factor: i32,
        configs: &std::collections::BTreeMap<String, String>,
    ) -> Result<bool> {
        self.create_topic_if(topic, partitions, replication_factor, configs, true)
            .await
    }

    async fn create_topic_if(
        &self,
        topic: &str,
        partitions: i32,
        replication_factor: i32,
        configs: &std::collections::BTreeMap<String, String>,
        exists_ok: bool,
    ) -> Result<bool> {
        use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
        let what = format!("failed to create topic '{topic}'");
        let started = Instant::now();
        let mut new = NewTopic::new(
            topic,
            partitions,
            TopicReplication::Fixed(replication_factor),
        );
        for (k, v) in configs {
            new = new.set(k, v);
        }
        let opts = AdminOptions::new()
            .request_timeout(Some(self.config.request_timeout))
            .operation_timeout(Some(self.config.request_timeout));
        let results = self
            .inner
            .client
            .create_topics([&new], &opts)
            .await
            .map_err(|e| self.kafka_error(&e, started, &what))?;
        for r in results {
            if let Err((name, code)) = r {
                if exists_ok && code == rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                    return Ok(false);
                }
                return Err(Error::Kafka(format!(
                    "failed to create topic '{name}' ({partitions} partitions, replication factor {replication_factor}): {code}"
                )));
            }
        }
        Ok(true)
    }

    /// Deletes the records before the given offsets (Kafka's DeleteRecords: the log start
    /// moves there). Any partition's failure is an error naming it.
    pub async fn delete_records(&self, upto: &[(TopicPartition, i64)]) -> Result<()> {
        use rdkafka::admin::AdminOptions;
        const WHAT: &str = "failed to delete records";
        let started = Instant::now();
        let mut tpl = TopicPartitionList::new();
        for ((t, p), o) in upto {
            tpl.add_partition_offset(t, *p, Offset::Offset(*o))
                .map_err(|e| Error::Kafka(format!("{WHAT} of {t}-{p}: {e}")))?;
        }
        let opts = AdminOptions::new()
            .request_timeout(Some(self.config.request_timeout))
            .operation_timeout(Some(self.config.request_timeout));
        let out = self
            .inner
            .client
            .delete_records(&tpl, &opts)
            .await
            .map_err(|e| self.kafka_error(&e, started, WHAT))?;
        for e in out.elements() {
            if let Err(err) = e.error() {
                return Err(Error::Kafka(format!(
                    "{WHAT} of {}-{} (Kafka's DeleteRecords, up to offset {}): {err}; nothing was written. A broker without DeleteRecords cannot purge: restore to another topic (topic_mapping), or delete and re-create the topic",
                    e.topic(),
                    e.partition(),
                    upto.iter()
                        .find(|((t, p), _)| t == e.topic() && *p == e.partition())
                        .map_or(-1, |(_, o)| *o)
                )));
            }
        }
        Ok(())
    }

    /// The cluster's id, when the brokers report one (what tells two clusters apart whatever
    /// their addresses).
    pub async fn cluster_id(&self) -> Option<String> {
        let inner = Arc::clone(&self.inner);
        let timeout = self.config.request_timeout;
        tokio::task::spawn_blocking(move || inner.client.inner().fetch_cluster_id(timeout))
            .await
            .ok()
            .flatten()
            .filter(|id| !id.is_empty())
    }

    /// The topic ids (base64) of `topics`, from Kafka's DescribeTopics. A topic without an
    /// id (a broker too old to report one) or whose description failed is left out: ids are
    /// a hint, never required.
    pub async fn topic_ids(&self, topics: &[String]) -> Result<HashMap<String, String>> {
        const WHAT: &str = "failed to describe topics";
        let mut out = HashMap::new();
        if topics.is_empty() {
            return Ok(out);
        }
        let reply = {
            let names = topics
                .iter()
                .map(|t| c_string(t, "topic"))
                .collect::<Result<Vec<_>>>()?;
            let mut pointers: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
            // SAFETY: `pointers` holds valid C strings (kept alive by `names`), which librdkafka
            // copies into the new collection; the guard destroys it.
            let collection = Owned::new(
                unsafe {
                    rd::rd_kafka_TopicCollection_of_topic_names(
                        pointers.as_mut_ptr(),
                        pointers.len(),
                    )
                },
                rd::rd_kafka_TopicCollection_destroy,
                "topic collection",
            )?;
            self.inner.dispatch(
                rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS,
                self.config.request_timeout,
                false,
                |rk, options, queue| {
                    // SAFETY: handles from `dispatch` are live; librdkafka copies the
                    // collection before returning (the guard still owns and frees it).
                    unsafe { rd::rd_kafka_DescribeTopics(rk, collection.as_ptr(), options, queue) }
                },
            )?
        };
        let event = self.answer(reply, WHAT).await?;
        // SAFETY: `event` is live; the result view lives as long as the event.
        let result = unsafe { rd::rd_kafka_event_DescribeTopics_result(event.as_ptr()) };
        if result.is_null() {
            return Err(unexpected_event(WHAT));
        }
        let mut count = 0usize;
        // SAFETY: `result` is a DescribeTopics result owned by `event`.
        let descriptions = unsafe { rd::rd_kafka_DescribeTopics_result_topics(result, &mut count) };
        // SAFETY: an array of `count` descriptions owned by the event.
        for d in unsafe { raw_slice(descriptions, count) } {
            // SAFETY: each description, its name and id are live while `event` is; the
            // strings are copied out.
            let (name, id) = unsafe {
                if !rd::rd_kafka_TopicDescription_error(*d).is_null() {
                    continue;
                }
                let uuid = rd::rd_kafka_TopicDescription_topic_id(*d);
                let id = if uuid.is_null()
                    || (rd::rd_kafka_Uuid_most_significant_bits(uuid) == 0
                        && rd::rd_kafka_Uuid_least_significant_bits(uuid) == 0)
                {
                    String::new()
                } else {
                    owned_str(rd::rd_kafka_Uuid_base64str(uuid))
                };
                (owned_str(rd::rd_kafka_TopicDescription_name(*d)), id)
            };
            if !id.is_empty() {
                out.insert(name, id);
            }
        }
        Ok(out)
    }

    /// Names of all topics in the cluster, sorted (internal topics such as
    /// `__consumer_offsets` included).
    pub async fn list_topics(&self) -> Result<Vec<String>> {
        const WHAT: &str = "failed to list topics";
        let inner = Arc::clone(&self.inner);
        let timeout = self.config.request_timeout;
        let started = Instant::now();
        let fetched = tokio::task::spawn_blocking(move || {
            inner
                .client
                .inner()
                .fetch_metadata(None, timeout)
                .map(|md| {
                    md.topics()
                        .iter()
                        .map(|t| t.name().to_string())
                        .collect::<Vec<_>>()
                })
        })
        .await
        .map_err(|e| Error::Kafka(format!("metadata request did not complete: {e}")))?;
        match fetched {
            Ok(mut names) => {
                self.inner.ctx().clear();
                names.sort();
                Ok(names)
            }
            Err(e) => Err(self.kafka_error(&e, started, WHAT)),
        }
    }

    /// Waits for the answer to a dispatched request and fails on a request-level error.
    async fn answer(&self, reply: Reply, what: &str) -> Result<Event> {
        let started = reply.started;
        let event = self.answer_raw(reply, what).await?;
        match event_error(&event) {
            None => {
                self.inner.ctx().clear();
                Ok(event)
            }
            Some((code, message)) => Err(self.failure(code, &message, started, what)),
        }
    }

    /// Waits for the answer to a dispatched request, without looking at its error.
    async fn answer_raw(&self, reply: Reply, what: &str) -> Result<Event> {
        let limit = self.config.request_timeout + ANSWER_GRACE;
        let started = reply.started;
        match tokio::time::timeout(limit, reply.receiver).await {
            Ok(Ok(event)) => Ok(event),
            Ok(Err(_)) => Err(Error::Kafka(format!(
                "{what}: the admin client shut down before Kafka answered"
            ))),
            Err(_) => Err(self.failure(
                RDKafkaErrorCode::OperationTimedOut,
                &format!("no answer within {}", humanize(limit)),
                started,
                what,
            )),
        }
    }

    /// Maps a failed request to the error class the user sees, consulting the broker errors
    /// librdkafka reported since shortly before the request started.
    fn failure(
        &self,
        code: RDKafkaErrorCode,
        message: &str,
        started: Instant,
        what: &str,
    ) -> Error {
        let since = started
            .checked_sub(ERROR_SUPPRESSION_WINDOW)
            .unwrap_or(started);
        let recorded = self.inner.ctx().recorded_since(since);
        resolve_failure(
            code,
            message,
            recorded,
            &self.config.bootstrap_servers,
            what,
        )
    }

    /// [`Self::failure`] for errors from rust-rdkafka's safe calls.
    fn kafka_error(&self, error: &KafkaError, started: Instant, what: &str) -> Error {
        let code = error.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
        self.failure(code, &error.to_string(), started, what)
    }

    /// One DescribeConsumerGroups request; answers keyed by group id.
    async fn describe_chunk(
        &self,
        groups: &[&str],
    ) -> Result<HashMap<String, Answer<GroupDescription>>> {
        const WHAT: &str = "failed to describe consumer groups";
        let reply = {
            let names = groups
                .iter()
                .map(|g| c_string(g, "consumer group id"))
                .collect::<Result<Vec<_>>>()?;
            let mut pointers: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
            self.inner.dispatch(
                rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS,
                self.config.request_timeout,
                false,
                |rk, options, queue| {
                    // SAFETY: handles from `dispatch` are live; `pointers` holds
                    // `pointers.len()` valid C strings (kept alive by `names`), which librdkafka
                    // copies before returning.
                    unsafe {
                        rd::rd_kafka_DescribeConsumerGroups(
                            rk,
                            pointers.as_mut_ptr(),
                            pointers.len(),
                            options,
                            queue,
                        )
                    }
                },
            )?
        };
        let event = self.answer(reply, WHAT).await?;
        // SAFETY: `event` is live; the result view lives as long as the event.
        let result = unsafe { rd::rd_kafka_event_DescribeConsumerGroups_result(event.as_ptr()) };
        if result.is_null() {
            return Err(unexpected_event(WHAT));
        }
        let mut count = 0usize;
        // SAFETY: `result` is a DescribeConsumerGroups result owned by `event`.
        let descriptions =
            unsafe { rd::rd_kafka_DescribeConsumerGroups_result_groups(result, &mut count) };
        // SAFETY: an array of `count` descriptions owned by the event.
        let descriptions = unsafe { raw_slice(descriptions, count) };
        let mut answers = HashMap::with_capacity(descriptions.len());
        for description in descriptions {
            // SAFETY: each description is live while `event` is; strings are copied out.
            let (group_id, error) = unsafe {
                (
                    owned_str(rd::rd_kafka_ConsumerGroupDescription_group_id(*description)),
                    rd::rd_kafka_ConsumerGroupDescription_error(*description),
                )
            };
            let answer = if error.is_null() {
                // SAFETY: as above.
                let (state, members) = unsafe {
                    (
                        rd::rd_kafka_ConsumerGroupDescription_state(*description),
                        rd::rd_kafka_ConsumerGroupDescription_member_count(*description),
                    )
                };
                Ok(GroupDescription {
                    group_id: group_id.clone(),
                    state: group_state(state),
                    members,
                })
            } else {
                // SAFETY: a live error owned by the description.
                let (code, message) = unsafe { error_parts(error) };
                if code == RDKafkaErrorCode::GroupIdNotFound {
                    // Newer brokers say "not found" where older ones say Dead: same thing.
                    Ok(GroupDescription {
                        group_id: group_id.clone(),
                        state: GroupState::Dead,
                        members: 0,
                    })
                } else {
                    Err((code, message))
                }
            };
            answers.insert(group_id, answer);
        }
        Ok(answers)
    }
}

/// Shared state behind [`GroupAdmin`]. In `Drop` the polling thread is stopped, then the
/// queues are destroyed, then the client (see [`Inner::release`]).
struct Inner {
    shutdown: Arc<AtomicBool>,
    poller: Option<JoinHandle<()>>,
    pending: Arc<PendingMap>,
    next_id: AtomicU64,
    /// Handle on the client's main queue, forwarded into `queue` so log and error events reach
    /// the polling thread (rust-rdkafka's admin client never serves the main queue).
    main_queue: ManuallyDrop<Queue>,
    queue: ManuallyDrop<Arc<Queue>>,
    client: ManuallyDrop<AdminClient<Ctx>>,
}

type PendingMap = Mutex<HashMap<u64, oneshot::Sender<Event>>>;

/// One item's answer inside a successful request: the value, or Kafka's error code and text.
/// Times a log start or end is asked for before a negative answer is an error.
const LIST_OFFSETS_ATTEMPTS: u32 = 6;

type Answer<T> = std::result::Result<T, (RDKafkaErrorCode, String)>;

impl Inner {
    fn new(config: &KafkaConfig) -> Result<Inner> {
        // An admin tool never creates topics by asking about them (set by admin_config).
        let client: AdminClient<Ctx> = config
            .admin_config()
            .create_with_context(Ctx::new(config))
            .map_err(creation_error)?;
        let rk = client.inner().native_ptr();
        // SAFETY: `rk` is the live handle owned by `client`; the new queue is owned by the guard.
        let queue = Queue::new(unsafe { rd::rd_kafka_queue_new(rk) })?;
        // SAFETY: as above; `rd_kafka_queue_get_main` returns a new reference the guard releases.
        let main_queue = Queue::new(unsafe { rd::rd_kafka_queue_get_main(rk) })?;
        // SAFETY: both queues are live; forwarding is undone in `Drop` before either is freed.
        unsafe { rd::rd_kafka_queue_forward(main_queue.as_ptr(), queue.as_ptr()) };
        let mut inner = Inner {
            shutdown: Arc::new(AtomicBool::new(false)),
            poller: None,
            pending: Arc::new(Mutex::new(HashMap::new())),
            next_id: AtomicU64::new(1),
            main_queue: ManuallyDrop::new(main_queue),
            queue: ManuallyDrop::new(Arc::new(queue)),
            client: ManuallyDrop::new(client),
        };
        let poller = {
            let queue = Arc::clone(&*inner.queue);
            let pending = Arc::clone(&inner.pending);
            let ctx = Arc::clone(inner.client.inner().context());
            let shutdown = Arc::clone(&inner.shutdown);
            std::thread::Builder::new()
                .name("tidemark-admin-poll".into())
                .spawn(move || poll_loop(&queue, &pending, &ctx, &shutdown))
                .map_err(|e| {
                    Error::Kafka(format!("failed to start the admin polling thread: {e}"))
                })?
        };
        inner.poller = Some(poller);
        Ok(inner)
    }

    fn ctx(&self) -> &Ctx {
        self.client.inner().context()
    }

    /// Creates options (timeout, opaque id, isolation level), registers the answer slot and
    /// lets `send` issue the request. Everything non-`Send` stays inside this call.
    fn dispatch(
        &self,
        op: rd::rd_kafka_admin_op_t,
        timeout: Duration,
        read_committed: bool,
        send: impl FnOnce(
            *mut rd::rd_kafka_t,
            *const rd::rd_kafka_AdminOptions_t,
            *mut rd::rd_kafka_queue_t,
        ),
    ) -> Result<Reply> {
        let rk = self.client.inner().native_ptr();
        // SAFETY: `rk` is live for as long as `self`; the guard destroys the options.
        let options = Owned::new(
            unsafe { rd::rd_kafka_AdminOptions_new(rk, op) },
            rd::rd_kafka_AdminOptions_destroy,
            "admin options",
        )?;
        let mut errstr = [0 as c_char; 512];
        let timeout_ms = c_int::try_from(timeout.as_millis())
            .unwrap_or(c_int::MAX)
            .max(1);
        // SAFETY: `options` is live; `errstr` is a writable buffer of the given size.
        let err = unsafe {
            rd::rd_kafka_AdminOptions_set_request_timeout(
                options.as_ptr(),
                timeout_ms,
                errstr.as_mut_ptr(),
                errstr.len(),
            )
        };
        if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            // SAFETY: librdkafka NUL-terminates `errstr` on failure (and it is zeroed).
            let message = unsafe { owned_str(errstr.as_ptr()) };
            return Err(Error::invalid(format!(
                "request timeout {timeout_ms} ms: {message}"
            )));
        }
        if read_committed {
            // SAFETY: `options` is live; a returned error object is ours to destroy.
            let error = unsafe {
                rd::rd_kafka_AdminOptions_set_isolation_level(
                    options.as_ptr(),
                    rd::rd_kafka_IsolationLevel_t::RD_KAFKA_ISOLATION_LEVEL_READ_COMMITTED,
                )
            };
            if !error.is_null() {
                // SAFETY: `error` is a live error we own; destroyed right after reading it.
                let (_, message) = unsafe { error_parts(error) };
                // SAFETY: as above; not used afterwards.
                unsafe { rd::rd_kafka_error_destroy(error) };
                return Err(Error::Kafka(format!("setting isolation level: {message}")));
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `options` is live; the opaque is an integer id, never dereferenced.
        unsafe {
            rd::rd_kafka_AdminOptions_set_opaque(options.as_ptr(), id as usize as *mut c_void)
        };
        let (sender, receiver) = oneshot::channel();
        lock(&self.pending).insert(id, sender);
        let slot = PendingSlot {
            id,
            pending: Arc::clone(&self.pending),
        };
        let started = Instant::now();
        send(rk, options.as_ptr(), self.queue.as_ptr());
        Ok(Reply {
            receiver,
            started,
            _slot: slot,
        })
    }

    /// Blocking: asks for broker-only metadata in short slices until the cluster answers, the
    /// timeout passes, or librdkafka reports rejected credentials or a failed TLS handshake.
    fn probe_cluster(&self, timeout: Duration) -> std::result::Result<(), ProbeFailure> {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut last = (
            RDKafkaErrorCode::OperationTimedOut,
            "Local: Timed out".to_string(),
        );
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(ProbeFailure {
                    code: last.0,
                    message: last.1,
                    started,
                });
            }
            let slice = (deadline - now).min(PROBE_SLICE);
            match self.broker_metadata(slice) {
                Ok(()) => return Ok(()),
                Err(failure) => last = failure,
            }
            if let Some((class, reason)) = self.ctx().recorded_since(started) {
                if class != FailureClass::Connection {
                    let code = match class {
                        FailureClass::Authentication => RDKafkaErrorCode::Authentication,
                        _ => RDKafkaErrorCode::SSL,
                    };
                    return Err(ProbeFailure {
                        code,
                        message: reason,
                        started,
                    });
                }
            }
        }
    }

    /// Blocking: one metadata round trip that asks for brokers only (no topics).
    fn broker_metadata(
        &self,
        timeout: Duration,
    ) -> std::result::Result<(), (RDKafkaErrorCode, String)> {
        let rk = self.client.inner().native_ptr();
        let timeout_ms = c_int::try_from(timeout.as_millis())
            .unwrap_or(c_int::MAX)
            .max(1);
        let mut metadata: *const rd::rd_kafka_metadata = ptr::null();
        // SAFETY: `rk` is live; with `all_topics = 0` and no topic handle librdkafka asks for
        // the locally known topics, of which an admin client has none; `metadata` is an out
        // pointer we free below.
        let err =
            unsafe { rd::rd_kafka_metadata(rk, 0, ptr::null_mut(), &mut metadata, timeout_ms) };
        if !metadata.is_null() {
            // SAFETY: librdkafka allocated `metadata` for us; freed exactly once here.
            unsafe { rd::rd_kafka_metadata_destroy(metadata) };
        }
        if err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            Ok(())
        } else {
            Err((err.into(), err_text(err)))
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::Release);
        // SAFETY: the queue is live until the fields drop, after this method.
        unsafe { rd::rd_kafka_queue_yield(self.queue.as_ptr()) };
        if let Some(poller) = self.poller.take() {
            if poller.join().is_err() {
                tracing::warn!("the Kafka admin polling thread panicked");
            }
        }
        // SAFETY: both queues are still live; after this the main queue no longer refers to
        // ours, so destroying ours (next, via field drop) cannot leave a dangling forward.
        unsafe { rd::rd_kafka_queue_forward(self.main_queue.as_ptr(), ptr::null_mut()) };
        lock(&self.pending).clear();
        // SAFETY: `drop` runs once and nothing uses these fields after it; each is taken once.
        let rest = unsafe {
            Released {
                _main_queue: ManuallyDrop::take(&mut self.main_queue),
                _queue: ManuallyDrop::take(&mut self.queue),
                _client: ManuallyDrop::take(&mut self.client),
            }
        };
        // rust-rdkafka's AdminClient joins a polling thread of its own when dropped, and that
        // thread looks for the signal only every 100 ms: every command would end up to 100 ms
        // later for nothing. The client is released on a thread of its own instead; if that
        // thread cannot start, the closure (and `rest` in it) is dropped right here.
        let _ = std::thread::Builder::new()
            .name("tidemark-admin-release".into())
            .spawn(move || drop(rest));
    }
}

/// What [`Inner`] releases last. Field order is drop order: the queues, then the client.
struct Released {
    _main_queue: Queue,
    _queue: Arc<Queue>,
    _client: AdminClient<Ctx>,
}

/// The polling thread: routes answers to their waiting requests by opaque id, and log and error
/// events to the client context.
fn poll_loop(queue: &Queue, pending: &PendingMap, ctx: &Ctx, shutdown: &AtomicBool) {
    while !shutdown.load(Ordering::Acquire) {
        // SAFETY: `Inner::drop` joins this thread before the queue is destroyed.
        let Some(event) =
            Event::new(unsafe { rd::rd_kafka_queue_poll(queue.as_ptr(), POLL_INTERVAL_MS) })
        else {
            continue;
        };
        // SAFETY: `event` is live.
        match unsafe { rd::rd_kafka_event_type(event.as_ptr()) } {
            rd::RD_KAFKA_EVENT_LOG => {
                let mut facility: *const c_char = ptr::null();
                let mut message: *const c_char = ptr::null();
                let mut level: c_int = 0;
                // SAFETY: `event` is a live log event; the out pointers are valid, and the
                // strings they receive live as long as the event.
                let rc = unsafe {
                    rd::rd_kafka_event_log(event.as_ptr(), &mut facility, &mut message, &mut level)
                };
                if rc == 0 {
                    // SAFETY: as above.
                    let (facility, message) = unsafe { (owned_str(facility), owned_str(message)) };
                    ctx.emit_log(level, facility.trim(), message.trim());
                }
            }
            rd::RD_KAFKA_EVENT_ERROR => {
                // SAFETY: `event` is a live error event; the string lives as long as it.
                let (code, reason) = unsafe {
                    (
                        rd::rd_kafka_event_error(event.as_ptr()),
                        owned_str(rd::rd_kafka_event_error_string(event.as_ptr())),
                    )
                };
                ctx.error(KafkaError::Global(code.into()), reason.trim());
            }
            _ => {
                // SAFETY: `event` is live; admin results carry the id we set as opaque.
                let id = unsafe { rd::rd_kafka_event_opaque(event.as_ptr()) } as usize as u64;
                let sender = lock(pending).remove(&id);
                if let Some(sender) = sender {
                    // A dropped receiver (cancelled request) hands the event back; it is freed.
                    let _ = sender.send(event);
                }
            }
        }
    }
}

/// The client context: records connection-level failures for error mapping and sends
/// librdkafka's logs to `tracing`.
struct Ctx {
    /// Redacted from every log line and recorded error, just in case.
    password: Option<String>,
    recorded: Mutex<Recorded>,
}

/// The last failure librdkafka reported per class.
#[derive(Default)]
struct Recorded {
    authentication: Option<(Instant, String)>,
    tls: Option<(Instant, String)>,
    connection: Option<(Instant, String)>,
}

/// Connection-level failure classes, most specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureClass {
    Authentication,
    Tls,
    Connection,
}

impl Ctx {
    fn new(config: &KafkaConfig) -> Ctx {
        Ctx {
            password: config
                .sasl
                .as_ref()
                .map(|s| s.password.clone())
                .filter(|p| !p.is_empty()),
            recorded: Mutex::new(Recorded::default()),
        }
    }

    fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        redact(text, self.password.as_deref())
    }

    fn emit_log(&self, level: c_int, facility: &str, message: &str) {
        let message = self.redact(message);
        match level {
            0..=2 => tracing::error!(target: "librdkafka", facility, "{message}"),
            // librdkafka retries after its errors (and repeats them while it does); the failure
            // that matters reaches the caller as a typed error with the broker's reason, so its
            // own error and warning lines are only shown with -v.
            3..=5 => tracing::info!(target: "librdkafka", facility, "{message}"),
            6 => tracing::debug!(target: "librdkafka", facility, "{message}"),
            _ => tracing::trace!(target: "librdkafka", facility, "{message}"),
        }
    }

    fn record(&self, class: FailureClass, reason: String) {
        let mut recorded = lock(&self.recorded);
        let slot = match class {
            FailureClass::Authentication => &mut recorded.authentication,
            FailureClass::Tls => &mut recorded.tls,
            FailureClass::Connection => &mut recorded.connection,
        };
        *slot = Some((Instant::now(), reason));
    }

    /// The most specific failure recorded at or after `since`.
    fn recorded_since(&self, since: Instant) -> Option<(FailureClass, String)> {
        let recorded = lock(&self.recorded);
        let fresh = |slot: &Option<(Instant, String)>| {
            slot.as_ref()
                .filter(|(at, _)| *at >= since)
                .map(|(_, reason)| reason.clone())
        };
        if let Some(reason) = fresh(&recorded.authentication) {
            return Some((FailureClass::Authentication, reason));
        }
        if let Some(reason) = fresh(&recorded.tls) {
            return Some((FailureClass::Tls, reason));
        }
        fresh(&recorded.connection).map(|reason| (FailureClass::Connection, reason))
    }

    /// Forgets recorded failures once the cluster has answered a request.
    fn clear(&self) {
        *lock(&self.recorded) = Recorded::default();
    }
}

impl ClientContext for Ctx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.emit_log(level as c_int, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let reason = self.redact(reason).into_owned();
        tracing::debug!(target: "librdkafka", error = %error, "{reason}");
        if let Some(class) = error.rdkafka_error_code().and_then(failure_class) {
            self.record(class, reason);
        }
    }
}

/// The connection-level class of a librdkafka or broker error code, if it has one.
fn failure_class(code: RDKafkaErrorCode) -> Option<FailureClass> {
    use RDKafkaErrorCode as C;
    match code {
        C::Authentication
        | C::SaslAuthenticationFailed
        | C::IllegalSASLState
        | C::UnsupportedSASLMechanism => Some(FailureClass::Authentication),
        C::SSL => Some(FailureClass::Tls),
        C::AllBrokersDown
        | C::BrokerTransportFailure
        | C::Resolve
        | C::OperationTimedOut
        | C::TimedOutQueue
        | C::RequestTimedOut
        | C::MessageTimedOut => Some(FailureClass::Connection),
        _ => None,
    }
}

/// Maps a failed request to the error class the user sees. A connection-class failure (most
/// often a timeout) is explained by the most specific failure librdkafka recorded meanwhile, so
/// rejected credentials surface as [`Error::Authentication`] rather than as a timeout.
fn resolve_failure(
    code: RDKafkaErrorCode,
    message: &str,
    recorded: Option<(FailureClass, String)>,
    servers: &str,
    what: &str,
) -> Error {
    match failure_class(code) {
        Some(FailureClass::Authentication) => Error::Authentication(message.to_string()),
        Some(FailureClass::Tls) => Error::Tls(message.to_string()),
        Some(FailureClass::Connection) => match recorded {
            Some((FailureClass::Authentication, reason)) => Error::Authentication(reason),
            Some((FailureClass::Tls, reason)) => Error::Tls(reason),
            Some((FailureClass::Connection, reason)) => Error::Connection {
                servers: servers.to_string(),
                reason: format!("{what}: {message} (last broker error: {reason})"),
            },
            None => Error::Connection {
                servers: servers.to_string(),
                reason: format!("{what}: {message}"),
            },
        },
        None => Error::Kafka(format!("{what}: {message}")),
    }
}

/// Maps a failure to create the client. Property values are never echoed (one may be a secret).
fn creation_error(error: KafkaError) -> Error {
    match error {
        KafkaError::ClientConfig(_, description, key, _value) => {
            if key.starts_with("ssl") {
                Error::Tls(format!("invalid TLS property '{key}': {description}"))
            } else {
                Error::invalid(format!("invalid Kafka property '{key}': {description}"))
            }
        }
        KafkaError::ClientCreation(message) if message.to_ascii_lowercase().contains("ssl") => {
            Error::Tls(message)
        }
        KafkaError::ClientCreation(message) => {
            Error::invalid(format!("cannot create the Kafka client: {message}"))
        }
        other => Error::Kafka(format!("cannot create the Kafka client: {other}")),
    }
}

fn redact<'a>(text: &'a str, secret: Option<&str>) -> Cow<'a, str> {
    match secret {
        Some(secret) if !secret.is_empty() && text.contains(secret) => {
            Cow::Owned(text.replace(secret, "[redacted]"))
        }
        _ => Cow::Borrowed(text),
    }
}

/// librdkafka's consumer-group state as [`GroupState`]. (librdkafka 2.12 has no codes for the
/// KIP-848 states Assigning and Reconciling; it reports them as Unknown.)
fn group_state(state: rd::rd_kafka_consumer_group_state_t) -> GroupState {
    use rd::rd_kafka_consumer_group_state_t as S;
    match state {
        S::RD_KAFKA_CONSUMER_GROUP_STATE_PREPARING_REBALANCE => GroupState::PreparingRebalance,
        S::RD_KAFKA_CONSUMER_GROUP_STATE_COMPLETING_REBALANCE => GroupState::CompletingRebalance,
        S::RD_KAFKA_CONSUMER_GROUP_STATE_STABLE => GroupState::Stable,
        S::RD_KAFKA_CONSUMER_GROUP_STATE_DEAD => GroupState::Dead,
        S::RD_KAFKA_CONSUMER_GROUP_STATE_EMPTY => GroupState::Empty,
        S::RD_KAFKA_CONSUMER_GROUP_STATE_UNKNOWN | S::RD_KAFKA_CONSUMER_GROUP_STATE__CNT => {
            GroupState::Unknown
        }
    }
}

/// The `offset` value ListOffsets expects for `spec`.
fn offset_spec_value(spec: OffsetSpec) -> Result<i64> {
    use rd::rd_kafka_OffsetSpec_t as S;
    match spec {
        OffsetSpec::Earliest => Ok(S::RD_KAFKA_OFFSET_SPEC_EARLIEST as i64),
        OffsetSpec::Latest => Ok(S::RD_KAFKA_OFFSET_SPEC_LATEST as i64),
        OffsetSpec::Timestamp(ts) if ts >= 0 => Ok(ts),
        OffsetSpec::Timestamp(ts) => Err(Error::invalid(format!(
            "timestamp {ts} is negative; give epoch milliseconds"
        ))),
    }
}

/// Checks an offset commit before it is sent (librdkafka would reject the whole request).
fn validate_commit(group: &str, offsets: &[CommittedOffset]) -> Result<()> {
    if group.is_empty() || group.contains('\0') {
        return Err(Error::invalid(format!(
            "consumer group id '{}' is empty or contains a NUL byte",
            group.escape_debug()
        )));
    }
    let mut seen = HashSet::new();
    for o in offsets {
        if o.topic.is_empty() || o.topic.contains('\0') || o.partition < 0 {
            return Err(Error::invalid(format!(
                "'{}-{}' is not a valid topic partition",
                o.topic.escape_debug(),
                o.partition
            )));
        }
        if o.offset < 0 {
            return Err(Error::invalid(format!(
                "offset {} for {}-{} is negative",
                o.offset, o.topic, o.partition
            )));
        }
        if !seen.insert((o.topic.as_str(), o.partition)) {
            return Err(Error::invalid(format!(
                "{}-{} appears more than once in one commit",
                o.topic, o.partition
            )));
        }
    }
    Ok(())
}

fn unexpected_event(what: &str) -> Error {
    Error::Kafka(format!(
        "{what}: librdkafka answered with an unexpected event type"
    ))
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn c_string(value: &str, what: &str) -> Result<CString> {
    CString::new(value).map_err(|_| {
        Error::invalid(format!(
            "{what} '{}' contains a NUL byte",
            value.escape_debug()
        ))
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn err_text(err: rd::rd_kafka_resp_err_t) -> String {
    // SAFETY: `rd_kafka_err2str` returns a static string for every code.
    unsafe { owned_str(rd::rd_kafka_err2str(err)) }
}

/// The request-level error of an admin result event, if any.
fn event_error(event: &Event) -> Option<(RDKafkaErrorCode, String)> {
    // SAFETY: `event` is live; the error string lives as long as the event.
    let (code, message) = unsafe {
        let code = rd::rd_kafka_event_error(event.as_ptr());
        (code, rd::rd_kafka_event_error_string(event.as_ptr()))
    };
    if code == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        None
    } else {
        // SAFETY: as above.
        let message = unsafe { owned_str(message) };
        let message = if message.is_empty() {
            err_text(code)
        } else {
            message
        };
        Some((code.into(), message))
    }
}

/// Copies a C string; NULL becomes empty.
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string valid for the call.
unsafe fn owned_str(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// Code and message of a librdkafka error object.
///
/// # Safety
/// `error` must point to a live `rd_kafka_error_t`.
unsafe fn error_parts(error: *const rd::rd_kafka_error_t) -> (RDKafkaErrorCode, String) {
    // SAFETY: guaranteed by the caller; the string lives as long as the error.
    unsafe {
        (
            rd::rd_kafka_error_code(error).into(),
            owned_str(rd::rd_kafka_error_string(error)),
        )
    }
}

/// A borrowed view of a C array; NULL or empty becomes an empty slice.
///
/// # Safety
/// `p` must be NULL or point to `len` initialized elements that outlive `'a`.
unsafe fn raw_slice<'a, T>(p: *const T, len: usize) -> &'a [T] {
    if p.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(p, len) }
    }
}

/// The elements of a partition list; NULL becomes empty.
///
/// # Safety
/// `list` must be NULL or a live list that outlives `'a` and is not modified meanwhile.
unsafe fn partition_elems<'a>(
    list: *const rd::rd_kafka_topic_partition_list_t,
) -> &'a [rd::rd_kafka_topic_partition_t] {
    if list.is_null() {
        return &[];
    }
    // SAFETY: guaranteed by the caller; `cnt` elements of `elems` are initialized.
    unsafe { raw_slice((*list).elems, usize::try_from((*list).cnt).unwrap_or(0)) }
}

/// A partition's commit metadata as text; none becomes empty.
///
/// # Safety
/// `partition.metadata` must be NULL or point to `metadata_size` readable bytes.
unsafe fn metadata_text(partition: &rd::rd_kafka_topic_partition_t) -> String {
    // SAFETY: guaranteed by the caller.
    let bytes = unsafe { raw_slice(partition.metadata as *const u8, partition.metadata_size) };
    String::from_utf8_lossy(bytes).into_owned()
}

/// Where a request's answer will arrive. Dropping it (e.g. a cancelled future) frees the slot;
/// a late answer is then destroyed by the polling thread.
struct Reply {
    receiver: oneshot::Receiver<Event>,
    started: Instant,
    _slot: PendingSlot,
}

struct PendingSlot {
    id: u64,
    pending: Arc<PendingMap>,
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        lock(&self.pending).remove(&self.id);
    }
}

/// Why the connection check failed.
struct ProbeFailure {
    code: RDKafkaErrorCode,
    message: String,
    started: Instant,
}

/// An owned librdkafka event, destroyed on drop.
struct Event(NonNull<rd::rd_kafka_event_t>);

// SAFETY: a librdkafka event is a heap object with no thread affinity; it is owned by exactly
// one `Event` and only read through `&self`, so moving it to another thread is sound.
unsafe impl Send for Event {}

impl Event {
    fn new(ptr: *mut rd::rd_kafka_event_t) -> Option<Event> {
        NonNull::new(ptr).map(Event)
    }

    fn as_ptr(&self) -> *mut rd::rd_kafka_event_t {
        self.0.as_ptr()
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: we own the event and nothing borrowed from it outlives `self`.
        unsafe { rd::rd_kafka_event_destroy(self.0.as_ptr()) }
    }
}

/// An owned librdkafka queue handle, destroyed on drop.
struct Queue(NonNull<rd::rd_kafka_queue_t>);

// SAFETY: librdkafka queues are internally locked and may be polled, yielded, forwarded and
// destroyed from any thread; `Inner::drop` ensures no poll is running at destruction.
unsafe impl Send for Queue {}
// SAFETY: as above; all operations through `&Queue` are thread-safe librdkafka calls.
unsafe impl Sync for Queue {}

impl Queue {
    fn new(ptr: *mut rd::rd_kafka_queue_t) -> Result<Queue> {
        NonNull::new(ptr)
            .map(Queue)
            .ok_or_else(|| Error::Kafka("librdkafka could not create a queue".into()))
    }

    fn as_ptr(&self) -> *mut rd::rd_kafka_queue_t {
        self.0.as_ptr()
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: we own this queue reference; it is released exactly once.
        unsafe { rd::rd_kafka_queue_destroy(self.0.as_ptr()) }
    }
}

/// Any other owned librdkafka object with a `destroy` function (options, request objects).
struct Owned<T> {
    ptr: NonNull<T>,
    destroy: unsafe extern "C" fn(*mut T),
}

impl<T> Owned<T> {
    fn new(ptr: *mut T, destroy: unsafe extern "C" fn(*mut T), what: &str) -> Result<Owned<T>> {
        NonNull::new(ptr)
            .map(|ptr| Owned { ptr, destroy })
            .ok_or_else(|| Error::Kafka(format!("librdkafka could not create the {what}")))
    }

    fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        // SAFETY: we own the object and `destroy` is its librdkafka destructor.
        unsafe { (self.destroy)(self.ptr.as_ptr()) }
    }
}

/// An owned partition list, destroyed (with each partition's metadata) on drop.
struct PartitionList(Owned<rd::rd_kafka_topic_partition_list_t>);

impl PartitionList {
    fn with_capacity(capacity: usize) -> Result<PartitionList> {
        let capacity = c_int::try_from(capacity).map_err(|_| {
            Error::invalid(format!("{capacity} partitions in one request is too many"))
        })?;
        // SAFETY: creates a new list owned by the guard.
        let list = unsafe { rd::rd_kafka_topic_partition_list_new(capacity) };
        Ok(PartitionList(Owned::new(
            list,
            rd::rd_kafka_topic_partition_list_destroy,
            "partition list",
        )?))
    }

    fn as_ptr(&self) -> *mut rd::rd_kafka_topic_partition_list_t {
        self.0.as_ptr()
    }

    /// Adds a partition with `offset` and commit `metadata` (copied into `malloc`ed memory,
    /// which `rd_kafka_topic_partition_list_destroy` releases with `free`).
    fn add(&self, topic: &str, partition: i32, offset: i64, metadata: &str) -> Result<()> {
        let topic = c_string(topic, "topic")?;
        // SAFETY: the list is live; librdkafka copies `topic` and returns the new element,
        // which stays valid until the list is next modified.
        let elem = unsafe {
            rd::rd_kafka_topic_partition_list_add(self.as_ptr(), topic.as_ptr(), partition)
        };
        let elem = NonNull::new(elem)
            .ok_or_else(|| Error::Kafka("librdkafka could not add a partition".into()))?;
        // SAFETY: `elem` is the element just added and not yet shared.
        unsafe { (*elem.as_ptr()).offset = offset };
        if !metadata.is_empty() {
            let bytes = metadata.as_bytes();
            // SAFETY: plain allocation; ownership passes to the list below, whose destroy frees
            // it with `free` (librdkafka's `rd_free`).
            let buf = unsafe { libc::malloc(bytes.len()) };
            if buf.is_null() {
                return Err(Error::Kafka("out of memory for commit metadata".into()));
            }
            // SAFETY: `buf` has room for `bytes.len()` bytes and does not overlap `bytes`;
            // `elem` is still the live element added above (no list change since).
            unsafe {
                ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), bytes.len());
                (*elem.as_ptr()).metadata = buf;
                (*elem.as_ptr()).metadata_size = bytes.len();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rd::rd_kafka_consumer_group_state_t as S;

    #[test]
    fn states_map_to_kafka_names() {
        let cases = [
            (
                S::RD_KAFKA_CONSUMER_GROUP_STATE_UNKNOWN,
                GroupState::Unknown,
            ),
            (
                S::RD_KAFKA_CONSUMER_GROUP_STATE_PREPARING_REBALANCE,
                GroupState::PreparingRebalance,
            ),
            (
                S::RD_KAFKA_CONSUMER_GROUP_STATE_COMPLETING_REBALANCE,
                GroupState::CompletingRebalance,
            ),
            (S::RD_KAFKA_CONSUMER_GROUP_STATE_STABLE, GroupState::Stable),
            (S::RD_KAFKA_CONSUMER_GROUP_STATE_DEAD, GroupState::Dead),
            (S::RD_KAFKA_CONSUMER_GROUP_STATE_EMPTY, GroupState::Empty),
        ];
        for (raw, expected) in cases {
            assert_eq!(group_state(raw), expected);
            // SAFETY: static names for every valid state.
            let name = unsafe { owned_str(rd::rd_kafka_consumer_group_state_name(raw)) };
            assert_eq!(name, expected.as_str());
        }
    }

    #[test]
    fn error_codes_fall_into_classes() {
        use RDKafkaErrorCode as C;
        assert_eq!(
            failure_class(C::Authentication),
            Some(FailureClass::Authentication)
        );
        assert_eq!(
            failure_class(C::SaslAuthenticationFailed),
            Some(FailureClass::Authentication)
        );
        assert_eq!(failure_class(C::SSL), Some(FailureClass::Tls));
        for code in [
            C::AllBrokersDown,
            C::BrokerTransportFailure,
            C::Resolve,
            C::OperationTimedOut,
        ] {
            assert_eq!(
                failure_class(code),
                Some(FailureClass::Connection),
                "{code:?}"
            );
        }
        assert_eq!(failure_class(C::GroupAuthorizationFailed), None);
        assert_eq!(failure_class(C::UnknownTopicOrPartition), None);
    }

    #[test]
    fn timeouts_are_explained_by_recorded_failures() {
        let timeout = RDKafkaErrorCode::OperationTimedOut;
        let auth = Some((
            FailureClass::Authentication,
            "SASL authentication error".to_string(),
        ));
        assert!(matches!(
            resolve_failure(timeout, "Local: Timed out", auth, "k:9092", "x"),
            Error::Authentication(m) if m.contains("SASL")
        ));
        let tls = Some((FailureClass::Tls, "SSL handshake failed".to_string()));
        assert!(matches!(
            resolve_failure(timeout, "Local: Timed out", tls, "k:9092", "x"),
            Error::Tls(m) if m.contains("handshake")
        ));
        let refused = Some((FailureClass::Connection, "Connection refused".to_string()));
        match resolve_failure(timeout, "Local: Timed out", refused, "k:9092", "listing") {
            Error::Connection { servers, reason } => {
                assert_eq!(servers, "k:9092");
                assert!(reason.contains("listing") && reason.contains("Connection refused"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            resolve_failure(timeout, "Local: Timed out", None, "k:9092", "x"),
            Error::Connection { .. }
        ));
    }

    #[test]
    fn direct_and_other_errors_keep_their_class() {
        use RDKafkaErrorCode as C;
        let auth = Some((FailureClass::Authentication, "old".to_string()));
        assert!(matches!(
            resolve_failure(C::SSL, "bad cert", None, "k", "x"),
            Error::Tls(m) if m == "bad cert"
        ));
        assert!(matches!(
            resolve_failure(C::Authentication, "bad password", None, "k", "x"),
            Error::Authentication(m) if m == "bad password"
        ));
        // A non-connection error is Kafka's answer, whatever was recorded before.
        assert!(matches!(
            resolve_failure(C::GroupAuthorizationFailed, "denied", auth, "k", "committing"),
            Error::Kafka(m) if m == "committing: denied"
        ));
    }

    #[test]
    fn creation_errors_never_echo_values() {
        let err = creation_error(KafkaError::ClientConfig(
            rdkafka_sys::types::RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
            "Invalid value".into(),
            "sasl.password".into(),
            "hunter2".into(),
        ));
        assert!(matches!(&err, Error::InvalidInput(_)));
        assert!(!err.to_string().contains("hunter2"));
        assert!(matches!(
            creation_error(KafkaError::ClientCreation(
                "ssl.ca.location failed: no such file".into()
            )),
            Error::Tls(_)
        ));
    }

    #[test]
    fn recorded_failures_prefer_the_most_specific_and_expire() {
        let ctx = Ctx::new(&KafkaConfig::new("k:9092"));
        let before = Instant::now();
        ctx.record(FailureClass::Connection, "all brokers down".into());
        ctx.record(FailureClass::Authentication, "bad credentials".into());
        assert_eq!(
            ctx.recorded_since(before),
            Some((FailureClass::Authentication, "bad credentials".into()))
        );
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(ctx.recorded_since(Instant::now()), None);
        ctx.clear();
        assert_eq!(ctx.recorded_since(before), None);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("auth with hunter2 failed", Some("hunter2")),
            "auth with [redacted] failed"
        );
        assert_eq!(redact("nothing here", Some("hunter2")), "nothing here");
        assert_eq!(redact("anything", Some("")), "anything");
        assert_eq!(redact("anything", None), "anything");
    }

    #[test]
    fn offset_specs_and_commits_are_validated() {
        assert_eq!(offset_spec_value(OffsetSpec::Earliest).ok(), Some(-2));
        assert_eq!(offset_spec_value(OffsetSpec::Latest).ok(), Some(-1));
        assert_eq!(
            offset_spec_value(OffsetSpec::Timestamp(1_700_000_000_000)).ok(),
            Some(1_700_000_000_000)
        );
        assert!(offset_spec_value(OffsetSpec::Timestamp(-5)).is_err());

        let offset = |topic: &str, partition, offset| CommittedOffset {
            topic: topic.into(),
            partition,
            offset,
            metadata: String::new(),
        };
        assert!(validate_commit("g", &[offset("t", 0, 5), offset("t", 1, 0)]).is_ok());
        assert!(validate_commit("", &[offset("t", 0, 5)]).is_err());
        assert!(validate_commit("g", &[offset("t", 0, -1)]).is_err());
        assert!(validate_commit("g", &[offset("t", -1, 1)]).is_err());
        assert!(validate_commit("g", &[offset("t", 0, 1), offset("t", 0, 2)]).is_err());
    }

    #[test]
    fn partition_lists_own_their_metadata() {
        let list = PartitionList::with_capacity(2).ok();
        let list = list.as_ref().map(|l| {
            assert!(l.add("orders", 3, 42, "checkpoint-7").is_ok());
            assert!(l.add("orders", 4, 0, "").is_ok());
            // SAFETY: the list is live and unmodified while read.
            let elems = unsafe { partition_elems(l.as_ptr()) };
            assert_eq!(elems.len(), 2);
            assert_eq!(elems[0].offset, 42);
            // SAFETY: metadata was set by `add`.
            assert_eq!(unsafe { metadata_text(&elems[0]) }, "checkpoint-7");
            assert!(elems[1].metadata.is_null());
        });
        assert!(list.is_some());
    }

    #[allow(dead_code)]
    fn futures_are_send(admin: &GroupAdmin) {
        fn send<T: Send>(_: T) {}
        send(admin.list_groups());
        send(admin.describe_groups(&[]));
        send(admin.committed_offsets("g"));
        send(admin.alter_offsets("g", &[]));
        send(admin.list_offsets(&[], OffsetSpec::Latest));
        send(admin.topic_partitions("t"));
        send(admin.list_topics());
        send(GroupAdmin::connect(admin.config()));
    }
}

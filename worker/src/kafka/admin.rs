//! Consumer-group and offset administration over librdkafka's admin API. Contract: one
//! [`GroupAdmin`] owns one librdkafka client, one result queue and one polling thread; every
//! operation is an asynchronous admin request (never a consumer, never a group join), bounded by
//! [`KafkaConfig::request_timeout`], and any number may be in flight at once. Failing to reach,
//! authenticate to or handshake with the cluster surfaces as [`Error::Connection`],
//! [`Error::Authentication`] or [`Error::Tls`]; anything else Kafka rejects is [`Error::Kafka`].
//!
//! rust-rdkafka has no safe wrappers for these requests, so this is the one module that calls
//! librdkafka's C API directly: only its `ffi` submodule does, behind small RAII guards that free
//! every librdkafka object on every path, and each request there is one `Request` (how it is
//! sent, how its answer is read). The operations here are safe code; every admin request goes
//! through one helper (`GroupAdmin::request`: dispatch, wait, read the result). `client` holds
//! the client and its polling thread, `context` maps failures to error classes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use rdkafka_sys::types::RDKafkaErrorCode;

use client::{Inner, Reply};
use context::{request_failed, resolve_failure};
use ffi::{Event, Request};

use super::{
    CommittedOffset, GroupDescription, GroupListing, GroupState, KafkaConfig, ListedOffset,
    OffsetSpec, PartitionFailure, TopicLayout, TopicPartition,
};
use crate::error::{Error, Result};

/// Groups per DescribeConsumerGroups request; bigger inputs are split and sent concurrently.
const DESCRIBE_CHUNK: usize = 250;
/// librdkafka reports an identical broker error at most once per 30 s, so a recorded error this
/// much older than a request still explains the request's failure.
const ERROR_SUPPRESSION_WINDOW: Duration = Duration::from_secs(30);
/// Extra time granted beyond librdkafka's own request timeout before the answer is given up on.
const ANSWER_GRACE: Duration = Duration::from_secs(10);
/// Times a log start or end is asked for before a negative answer is an error.
const LIST_OFFSETS_ATTEMPTS: u32 = 6;

mod client;
mod context;
mod ffi;

/// One item's answer inside a successful request: the value, or Kafka's error code and text.
type Answer<T> = std::result::Result<T, (RDKafkaErrorCode, String)>;

/// A request's answer ([`GroupAdmin::request`]): when it was sent, and what was read from its
/// answer or the request-level error Kafka answered with.
struct Answered<T> {
    started: Instant,
    outcome: Answer<T>,
}

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
            .map_err(|e| request_failed("cluster check did not complete", e))?;
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
        let answered = self.request(ffi::ListGroups, WHAT).await?;
        let started = answered.started;
        let ffi::GroupListings { errors, mut groups } = self.outcome(answered, WHAT)?;
        if let Some((code, _)) = errors.first() {
            let message = errors
                .iter()
                .map(|(_, message)| message.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(self.failure(*code, &message, started, WHAT));
        }
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
                None => Err(bad_answer(
                    &format!("failed to describe consumer group '{group}'"),
                    "Kafka returned no description",
                )),
            })
            .collect())
    }

    /// Committed offsets of one group (only partitions with a committed offset).
    ///
    /// Sorted by topic and partition; `metadata` is empty when none was committed. A group that
    /// does not exist has no committed offsets, so it yields an empty list.
    pub async fn committed_offsets(&self, group: &str) -> Result<Vec<CommittedOffset>> {
        let what = format!("failed to fetch committed offsets of group '{group}'");
        let (started, partitions) = self
            .group_offsets(
                ffi::GroupOffsetsOf {
                    group,
                    commit: None,
                },
                &what,
            )
            .await?;
        let mut offsets = Vec::with_capacity(partitions.len());
        for partition in partitions {
            if let Some((code, message)) = partition.error {
                return Err(self.failure(
                    code,
                    &message,
                    started,
                    &format!(
                        "{what} (partition {}-{})",
                        partition.topic, partition.partition
                    ),
                ));
            }
            if partition.offset < 0 {
                continue;
            }
            offsets.push(CommittedOffset {
                topic: partition.topic,
                partition: partition.partition,
                offset: partition.offset,
                metadata: partition.metadata,
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
        let (_, partitions) = self
            .group_offsets(
                ffi::GroupOffsetsOf {
                    group,
                    commit: Some(offsets),
                },
                &what,
            )
            .await?;
        Ok(partitions
            .into_iter()
            .filter_map(|p| {
                p.error.map(|(_, error)| PartitionFailure {
                    topic: p.topic,
                    partition: p.partition,
                    error,
                })
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
                        Ok(l) if bounds && l.offset < 0 => Err(bad_answer(
                            &format!("failed to list offsets of {}-{}", l.topic, l.partition),
                            &format!(
                                "the broker answered offset {} without an error ({LIST_OFFSETS_ATTEMPTS} times); it may still be starting, run again",
                                l.offset
                            ),
                        )),
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
        let offset = ffi::offset_spec_value(spec)?;
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
            let request = ffi::ListOffsets {
                partitions: &unique,
                offset,
                read_committed,
            };
            let answered = self.request(request, WHAT).await?;
            started = answered.started;
            match answered.outcome {
                Ok(listed) => answers.extend(listed),
                // No topic of the request has a leader: each partition gets the answer.
                Err((RDKafkaErrorCode::NoEnt, message)) => {
                    for (topic, partition) in &unique {
                        answers.insert(
                            (topic.to_string(), *partition),
                            Err((RDKafkaErrorCode::UnknownTopicOrPartition, message.clone())),
                        );
                    }
                }
                Err((code, message)) => return Err(self.failure(code, &message, started, WHAT)),
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
                    None => Err(bad_answer(
                        &format!("failed to list offsets of {topic}-{partition}"),
                        "Kafka returned no answer",
                    )),
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
                .client()
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
        .map_err(|e| request_failed("metadata request did not complete", e))?;
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
            Ok(None) => Err(bad_answer(&what, "Kafka returned no topic")),
            Err(e) => Err(self.kafka_error(&e, started, &what)),
        }
    }

    /// The configs of `topic` that are not broker defaults (what re-creating it needs).
    pub async fn topic_configs(
        &self,
        topic: &str,
    ) -> Result<std::collections::BTreeMap<String, String>> {
        use rdkafka::admin::ConfigSource;
        let mut out = std::collections::BTreeMap::new();
        for entry in self.describe_topic_configs(topic).await? {
            let default = matches!(entry.source, ConfigSource::Default);
            if !default && !entry.is_sensitive {
                if let Some(v) = entry.value {
                    out.insert(entry.name, v);
                }
            }
        }
        Ok(out)
    }

    /// The names of every config the cluster reports for `topic`, defaults included: the topic
    /// configs it knows.
    pub async fn topic_config_names(
        &self,
        topic: &str,
    ) -> Result<std::collections::BTreeSet<String>> {
        let entries = self.describe_topic_configs(topic).await?;
        Ok(entries.into_iter().map(|e| e.name).collect())
    }

    async fn describe_topic_configs(
        &self,
        topic: &str,
    ) -> Result<Vec<rdkafka::admin::ConfigEntry>> {
        use rdkafka::admin::{AdminOptions, ResourceSpecifier};
        let what = format!("failed to describe the configs of topic '{topic}'");
        let started = Instant::now();
        let opts = AdminOptions::new().request_timeout(Some(self.config.request_timeout));
        let results = self
            .inner
            .client()
            .describe_configs(&[ResourceSpecifier::Topic(topic)], &opts)
            .await
            .map_err(|e| self.kafka_error(&e, started, &what))?;
        let mut out = Vec::new();
        for r in results {
            let resource =
                r.map_err(|code| self.failure(code, &code.to_string(), started, &what))?;
            out.extend(resource.entries);
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
            .client()
            .create_topics([&new], &opts)
            .await
            .map_err(|e| self.kafka_error(&e, started, &what))?;
        for r in results {
            if let Err((name, code)) = r {
                if exists_ok && code == rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                    return Ok(false);
                }
                return Err(request_failed(
                    &format!(
                        "failed to create topic '{name}' ({partitions} partitions, replication factor {replication_factor})"
                    ),
                    code,
                ));
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
                .map_err(|e| request_failed(&format!("{WHAT} of {t}-{p}"), e))?;
        }
        let opts = AdminOptions::new()
            .request_timeout(Some(self.config.request_timeout))
            .operation_timeout(Some(self.config.request_timeout));
        let out = self
            .inner
            .client()
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

    /// Deletes `topics` (Kafka's DeleteTopics). Returns the topics that could not be deleted,
    /// each with Kafka's reason; a topic that does not exist counts as deleted.
    pub async fn delete_topics(&self, topics: &[String]) -> Result<Vec<(String, String)>> {
        use rdkafka::admin::AdminOptions;
        const WHAT: &str = "failed to delete topics";
        if topics.is_empty() {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        let opts = AdminOptions::new()
            .request_timeout(Some(self.config.request_timeout))
            .operation_timeout(Some(self.config.request_timeout));
        let out = self
            .inner
            .client()
            .delete_topics(&names, &opts)
            .await
            .map_err(|e| self.kafka_error(&e, started, WHAT))?;
        Ok(not_deleted(out, RDKafkaErrorCode::UnknownTopicOrPartition))
    }

    /// Deletes consumer groups (Kafka's DeleteGroups; only groups without members can be).
    /// Returns the groups that could not be deleted, each with Kafka's reason; a group that does
    /// not exist counts as deleted.
    pub async fn delete_groups(&self, groups: &[String]) -> Result<Vec<(String, String)>> {
        use rdkafka::admin::AdminOptions;
        const WHAT: &str = "failed to delete consumer groups";
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let names: Vec<&str> = groups.iter().map(String::as_str).collect();
        let opts = AdminOptions::new().request_timeout(Some(self.config.request_timeout));
        let out = self
            .inner
            .client()
            .delete_groups(&names, &opts)
            .await
            .map_err(|e| self.kafka_error(&e, started, WHAT))?;
        Ok(not_deleted(out, RDKafkaErrorCode::GroupIdNotFound))
    }

    /// The cluster's id, when the brokers report one (what tells two clusters apart whatever
    /// their addresses).
    pub async fn cluster_id(&self) -> Option<String> {
        let inner = Arc::clone(&self.inner);
        let timeout = self.config.request_timeout;
        tokio::task::spawn_blocking(move || inner.client().inner().fetch_cluster_id(timeout))
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
        let answered = self.request(ffi::DescribeTopics(topics), WHAT).await?;
        out.extend(self.outcome(answered, WHAT)?);
        Ok(out)
    }

    /// Names of all topics in the cluster, sorted (internal topics such as
    /// `__consumer_offsets` included).
    pub async fn list_topics(&self) -> Result<Vec<String>> {
        Ok(self.topics_and_brokers().await?.0)
    }

    /// [`Self::list_topics`], and how many brokers the metadata names: one metadata request.
    pub async fn topics_and_brokers(&self) -> Result<(Vec<String>, usize)> {
        const WHAT: &str = "failed to list topics";
        let inner = Arc::clone(&self.inner);
        let timeout = self.config.request_timeout;
        let started = Instant::now();
        let fetched = tokio::task::spawn_blocking(move || {
            inner
                .client()
                .inner()
                .fetch_metadata(None, timeout)
                .map(|md| {
                    let names = md
                        .topics()
                        .iter()
                        .map(|t| t.name().to_string())
                        .collect::<Vec<_>>();
                    (names, md.brokers().len())
                })
        })
        .await
        .map_err(|e| request_failed("metadata request did not complete", e))?;
        match fetched {
            Ok((mut names, brokers)) => {
                self.inner.ctx().clear();
                names.sort();
                Ok((names, brokers))
            }
            Err(e) => Err(self.kafka_error(&e, started, WHAT)),
        }
    }

    /// Sends `request` and waits for its answer: what every operation on librdkafka's admin
    /// API does. A request-level error is returned in the outcome (most callers hand it to
    /// [`Self::outcome`]); an answer that is not this request's result is an error.
    async fn request<R: Request>(&self, request: R, what: &str) -> Result<Answered<R::Output>> {
        let reply = self.inner.dispatch(&request, self.config.request_timeout)?;
        let started = reply.started;
        let event = self.answer(reply, what).await?;
        let outcome = match event.error() {
            Some(failure) => Err(failure),
            None => {
                self.inner.ctx().clear();
                Ok(request.read(&event).ok_or_else(|| unexpected_event(what))?)
            }
        };
        Ok(Answered { started, outcome })
    }

    /// What a request's answer holds, or its request-level error as the class the user sees.
    fn outcome<T>(&self, answered: Answered<T>, what: &str) -> Result<T> {
        answered
            .outcome
            .map_err(|(code, message)| self.failure(code, &message, answered.started, what))
    }

    /// The partitions of one group's offsets request (list or alter), failing on the group's
    /// own error.
    async fn group_offsets(
        &self,
        request: ffi::GroupOffsetsOf<'_>,
        what: &str,
    ) -> Result<(Instant, Vec<ffi::GroupPartition>)> {
        let answered = self.request(request, what).await?;
        let started = answered.started;
        match self.outcome(answered, what)? {
            None => Err(bad_answer(what, "Kafka returned no result")),
            Some(Err((code, message))) => Err(self.failure(code, &message, started, what)),
            Some(Ok(partitions)) => Ok((started, partitions)),
        }
    }

    /// Waits for the answer to a dispatched request, without looking at its error.
    async fn answer(&self, reply: Reply, what: &str) -> Result<Event> {
        let limit = self.config.request_timeout + ANSWER_GRACE;
        let started = reply.started;
        match tokio::time::timeout(limit, reply.receiver).await {
            Ok(Ok(event)) => Ok(event),
            Ok(Err(_)) => Err(bad_answer(
                what,
                "the admin client shut down before Kafka answered",
            )),
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
        let answered = self.request(ffi::DescribeGroups(groups), WHAT).await?;
        let described = self.outcome(answered, WHAT)?;
        let mut answers = HashMap::with_capacity(described.len());
        for (group_id, answer) in described {
            let answer = match answer {
                Ok((state, members)) => Ok(GroupDescription {
                    group_id: group_id.clone(),
                    state,
                    members,
                }),
                // Newer brokers say "not found" where older ones say Dead: same thing.
                Err((RDKafkaErrorCode::GroupIdNotFound, _)) => Ok(GroupDescription {
                    group_id: group_id.clone(),
                    state: GroupState::Dead,
                    members: 0,
                }),
                Err(failure) => Err(failure),
            };
            answers.insert(group_id, answer);
        }
        Ok(answers)
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
    bad_answer(what, "librdkafka answered with an unexpected event type")
}

/// A request whose answer was not what it should be (`how`): no cause to carry.
fn bad_answer(what: &str, how: &str) -> Error {
    Error::Kafka(format!("{what}: {how}"))
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The names a Delete{Topics,Groups} answer did not delete, each with Kafka's reason; `gone`
/// (the name does not exist) counts as deleted.
fn not_deleted(
    results: Vec<std::result::Result<String, (String, RDKafkaErrorCode)>>,
    gone: RDKafkaErrorCode,
) -> Vec<(String, String)> {
    results
        .into_iter()
        .filter_map(|r| match r {
            Err((_, code)) if code == gone => None,
            Ok(_) => None,
            Err((name, code)) => Some((name, code.to_string())),
        })
        .collect()
}

//! The librdkafka C calls behind [`GroupAdmin`](super::GroupAdmin), and nothing else. Contract:
//! every librdkafka object created here is owned by a small RAII guard ([`Event`], [`Queue`],
//! [`Owned`], [`PartitionList`], [`Handles`]) that frees it on every path; every `unsafe` block
//! says why it is sound; what leaves this module is owned Rust data (strings copied, arrays read
//! into `Vec`s), so the operations in the parent module are safe code.
//!
//! Each admin request is one [`Request`]: how to send it (building and freeing its C request
//! objects) and how to read its result event.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::mem::ManuallyDrop;
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka_sys::bindings as rd;
use rdkafka_sys::types::RDKafkaErrorCode;

use super::context::{request_failed, BrokerError, Ctx};
use super::Answer;
use crate::error::{Error, Result};
use crate::kafka::{CommittedOffset, GroupListing, GroupState, OffsetSpec};

/// One admin request: how librdkafka is asked, and how its answer is read.
pub(super) trait Request {
    /// What the answer holds, copied out of the event.
    type Output;

    /// Which admin operation the options are made for.
    fn op(&self) -> rd::rd_kafka_admin_op_t;

    /// Whether the request reads committed data only (ListOffsets).
    fn read_committed(&self) -> bool {
        false
    }

    /// Builds the C request objects and issues the request; librdkafka copies what it needs
    /// before returning, so the objects are freed here.
    fn send(&self, sender: Sender<'_>) -> Result<()>;

    /// The result of a successful answer; `None` when the event is not this request's result.
    fn read(&self, event: &Event) -> Option<Self::Output>;
}

/// The live handles a [`Request::send`] issues its request with.
pub(super) struct Sender<'a> {
    rk: *mut rd::rd_kafka_t,
    options: &'a Owned<rd::rd_kafka_AdminOptions_t>,
    queue: *mut rd::rd_kafka_queue_t,
}

/// ListConsumerGroups.
pub(super) struct ListGroups;

/// A ListConsumerGroups answer: per-broker errors, and the groups listed.
pub(super) struct GroupListings {
    pub errors: Vec<(RDKafkaErrorCode, String)>,
    pub groups: Vec<GroupListing>,
}

impl Request for ListGroups {
    type Output = GroupListings;

    fn op(&self) -> rd::rd_kafka_admin_op_t {
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS
    }

    fn send(&self, s: Sender<'_>) -> Result<()> {
        // SAFETY: `rk`, `options` and `queue` are live handles; librdkafka copies the options
        // before returning.
        unsafe { rd::rd_kafka_ListConsumerGroups(s.rk, s.options.as_ptr(), s.queue) };
        Ok(())
    }

    fn read(&self, event: &Event) -> Option<GroupListings> {
        let result = event.result(rd::rd_kafka_event_ListConsumerGroups_result)?;
        let mut count = 0usize;
        // SAFETY: `result` is a ListConsumerGroups result owned by `event`.
        let errors = unsafe { rd::rd_kafka_ListConsumerGroups_result_errors(result, &mut count) };
        // SAFETY: librdkafka returns an array of `count` error pointers owned by the event;
        // each element is a live `rd_kafka_error_t` owned by the event.
        let errors = unsafe { raw_slice(errors, count) }
            .iter()
            .map(|e| unsafe { error_parts(*e) })
            .collect();
        let mut count = 0usize;
        // SAFETY: `result` is a ListConsumerGroups result owned by `event`.
        let valid = unsafe { rd::rd_kafka_ListConsumerGroups_result_valid(result, &mut count) };
        // SAFETY: librdkafka returns an array of `count` listing pointers owned by the event;
        // each listing is live while `event` is and the id string is copied.
        let groups = unsafe { raw_slice(valid, count) }
            .iter()
            .map(|listing| unsafe {
                GroupListing {
                    group_id: owned_str(rd::rd_kafka_ConsumerGroupListing_group_id(*listing)),
                    state: group_state(rd::rd_kafka_ConsumerGroupListing_state(*listing)),
                }
            })
            .collect();
        Some(GroupListings { errors, groups })
    }
}

/// DescribeConsumerGroups of some groups (ids checked: no NUL byte).
pub(super) struct DescribeGroups<'a>(pub &'a [&'a str]);

/// One group of a DescribeConsumerGroups answer: its id, and its state and member count or
/// Kafka's error.
pub(super) type DescribedGroup = (String, Answer<(GroupState, usize)>);

impl Request for DescribeGroups<'_> {
    type Output = Vec<DescribedGroup>;

    fn op(&self) -> rd::rd_kafka_admin_op_t {
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS
    }

    fn send(&self, s: Sender<'_>) -> Result<()> {
        let mut names = CStrings::new(self.0.iter().copied(), "consumer group id")?;
        let pointers = names.pointers();
        // SAFETY: the handles are live; `pointers` holds `pointers.len()` valid C strings (kept
        // alive by `names`), which librdkafka copies before returning.
        unsafe {
            rd::rd_kafka_DescribeConsumerGroups(
                s.rk,
                pointers.as_mut_ptr(),
                pointers.len(),
                s.options.as_ptr(),
                s.queue,
            )
        };
        Ok(())
    }

    fn read(&self, event: &Event) -> Option<Vec<DescribedGroup>> {
        let result = event.result(rd::rd_kafka_event_DescribeConsumerGroups_result)?;
        let mut count = 0usize;
        // SAFETY: `result` is a DescribeConsumerGroups result owned by `event`.
        let descriptions =
            unsafe { rd::rd_kafka_DescribeConsumerGroups_result_groups(result, &mut count) };
        // SAFETY: an array of `count` descriptions owned by the event.
        let descriptions = unsafe { raw_slice(descriptions, count) };
        let described = descriptions
            .iter()
            .map(|description| {
                // SAFETY: each description is live while `event` is; strings are copied out,
                // and a non-NULL error is a live error owned by the description.
                unsafe {
                    let group_id =
                        owned_str(rd::rd_kafka_ConsumerGroupDescription_group_id(*description));
                    let error = rd::rd_kafka_ConsumerGroupDescription_error(*description);
                    let answer = if error.is_null() {
                        Ok((
                            group_state(rd::rd_kafka_ConsumerGroupDescription_state(*description)),
                            rd::rd_kafka_ConsumerGroupDescription_member_count(*description),
                        ))
                    } else {
                        Err(error_parts(error))
                    };
                    (group_id, answer)
                }
            })
            .collect();
        Some(described)
    }
}

/// ListConsumerGroupOffsets of one group, every partition (`commit` `None`), or
/// AlterConsumerGroupOffsets (offsets checked: valid partitions, not negative). The group id
/// must have no NUL byte.
pub(super) struct GroupOffsetsOf<'a> {
    pub group: &'a str,
    pub commit: Option<&'a [CommittedOffset]>,
}

/// One partition of a group's offsets answer: its offset and commit metadata, or Kafka's error.
pub(super) struct GroupPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub metadata: String,
    pub error: Option<(RDKafkaErrorCode, String)>,
}

/// A group's answer to an offsets request: `None` when Kafka returned no group result.
pub(super) type GroupOffsets = Option<Answer<Vec<GroupPartition>>>;

impl Request for GroupOffsetsOf<'_> {
    type Output = GroupOffsets;

    fn op(&self) -> rd::rd_kafka_admin_op_t {
        match self.commit {
            None => rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS,
            Some(_) => rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS,
        }
    }

    fn send(&self, s: Sender<'_>) -> Result<()> {
        let group_id = c_string(self.group, "consumer group id")?;
        let Some(offsets) = self.commit else {
            // SAFETY: `group_id` is a valid C string; a NULL partition list asks for every
            // partition. librdkafka copies both; the guard destroys the request object.
            let request = Owned::new(
                unsafe {
                    rd::rd_kafka_ListConsumerGroupOffsets_new(group_id.as_ptr(), ptr::null())
                },
                rd::rd_kafka_ListConsumerGroupOffsets_destroy,
                "ListConsumerGroupOffsets request",
            )?;
            send_one(&s, &request, rd::rd_kafka_ListConsumerGroupOffsets);
            return Ok(());
        };
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
            unsafe { rd::rd_kafka_AlterConsumerGroupOffsets_new(group_id.as_ptr(), list.as_ptr()) },
            rd::rd_kafka_AlterConsumerGroupOffsets_destroy,
            "AlterConsumerGroupOffsets request",
        )?;
        send_one(&s, &request, rd::rd_kafka_AlterConsumerGroupOffsets);
        Ok(())
    }

    fn read(&self, event: &Event) -> Option<GroupOffsets> {
        let (result_of, groups_of): (ResultOf, GroupResults) = match self.commit {
            None => (
                rd::rd_kafka_event_ListConsumerGroupOffsets_result,
                rd::rd_kafka_ListConsumerGroupOffsets_result_groups,
            ),
            Some(_) => (
                rd::rd_kafka_event_AlterConsumerGroupOffsets_result,
                rd::rd_kafka_AlterConsumerGroupOffsets_result_groups,
            ),
        };
        let result = event.result(result_of)?;
        let mut count = 0usize;
        // SAFETY: `result` is this kind of result, owned by `event`; it holds an array of
        // `count` group results owned by the event.
        Some(unsafe { read_group_result(raw_slice(groups_of(result, &mut count), count)) })
    }
}

/// A librdkafka request call that takes an array of request objects of type `T`.
type BatchCall<T> = unsafe extern "C" fn(
    *mut rd::rd_kafka_t,
    *mut *mut T,
    usize,
    *const rd::rd_kafka_AdminOptions_t,
    *mut rd::rd_kafka_queue_t,
);

/// Issues `call` with the one request object `request`.
fn send_one<T>(s: &Sender<'_>, request: &Owned<T>, call: BatchCall<T>) {
    let mut requests = [request.as_ptr()];
    // SAFETY: the handles are live; `requests` holds one live request which librdkafka copies
    // before returning (we still own and free it).
    unsafe {
        call(
            s.rk,
            requests.as_mut_ptr(),
            requests.len(),
            s.options.as_ptr(),
            s.queue,
        )
    };
}

/// Views an event as a group offsets result (NULL when it is another kind of event; List and
/// Alter results are events in librdkafka).
type ResultOf = unsafe extern "C" fn(*mut rd::rd_kafka_event_t) -> *const rd::rd_kafka_event_t;

/// The group results of a group offsets result.
type GroupResults = unsafe extern "C" fn(
    *const rd::rd_kafka_event_t,
    *mut usize,
) -> *mut *const rd::rd_kafka_group_result_t;

/// The first group result of an offsets answer: its error, or its partitions.
///
/// # Safety
/// Every element of `groups` must be a live group result that outlives the call.
unsafe fn read_group_result(groups: &[*const rd::rd_kafka_group_result_t]) -> GroupOffsets {
    let &group_result = groups.first()?;
    // SAFETY: `group_result` is live (guaranteed by the caller).
    let group_error = unsafe { rd::rd_kafka_group_result_error(group_result) };
    if !group_error.is_null() {
        // SAFETY: a live error owned by the group result.
        return Some(Err(unsafe { error_parts(group_error) }));
    }
    // SAFETY: `group_result` is live; the partition list is owned by it.
    let partitions = unsafe { partition_elems(rd::rd_kafka_group_result_partitions(group_result)) };
    let partitions = partitions
        .iter()
        .map(|p| GroupPartition {
            // SAFETY: each element is a live partition of the list borrowed above: `topic` a C
            // string, `metadata` NULL or `metadata_size` bytes, both owned by the list.
            topic: unsafe { owned_str(p.topic) },
            partition: p.partition,
            offset: p.offset,
            // SAFETY: as above.
            metadata: unsafe { metadata_text(p) },
            error: (p.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR)
                .then(|| (p.err.into(), err_text(p.err))),
        })
        .collect();
    Some(Ok(partitions))
}

/// ListOffsets of some partitions (each a valid topic and partition, once) at `offset` (what
/// [`offset_spec_value`] gives for the spec).
pub(super) struct ListOffsets<'a> {
    pub partitions: &'a [(&'a str, i32)],
    pub offset: i64,
    pub read_committed: bool,
}

/// One partition of a ListOffsets answer: its offset and timestamp, or Kafka's error.
pub(super) type ListedPartition = ((String, i32), Answer<(i64, i64)>);

impl Request for ListOffsets<'_> {
    type Output = Vec<ListedPartition>;

    fn op(&self) -> rd::rd_kafka_admin_op_t {
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTOFFSETS
    }

    fn read_committed(&self) -> bool {
        self.read_committed
    }

    fn send(&self, s: Sender<'_>) -> Result<()> {
        let list = PartitionList::with_capacity(self.partitions.len())?;
        for (topic, partition) in self.partitions {
            list.add(topic, *partition, self.offset, "")?;
        }
        // SAFETY: the handles are live; librdkafka copies the partition list before returning
        // (we still own and free it).
        unsafe { rd::rd_kafka_ListOffsets(s.rk, list.as_ptr(), s.options.as_ptr(), s.queue) };
        Ok(())
    }

    fn read(&self, event: &Event) -> Option<Vec<ListedPartition>> {
        let result = event.result(rd::rd_kafka_event_ListOffsets_result)?;
        let mut count = 0usize;
        // SAFETY: `result` is a ListOffsets result owned by `event`.
        let infos = unsafe { rd::rd_kafka_ListOffsets_result_infos(result, &mut count) };
        let mut answers = Vec::with_capacity(count);
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
            let answer = if partition.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                Ok((partition.offset, timestamp))
            } else {
                Err((partition.err.into(), err_text(partition.err)))
            };
            answers.push((key, answer));
        }
        Some(answers)
    }
}

/// DescribeTopics of some topics; the answer is each described topic's name and id (base64),
/// leaving out topics whose description failed or that have no id.
pub(super) struct DescribeTopics<'a>(pub &'a [String]);

impl Request for DescribeTopics<'_> {
    type Output = Vec<(String, String)>;

    fn op(&self) -> rd::rd_kafka_admin_op_t {
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS
    }

    fn send(&self, s: Sender<'_>) -> Result<()> {
        let mut names = CStrings::new(self.0.iter().map(String::as_str), "topic")?;
        let pointers = names.pointers();
        // SAFETY: `pointers` holds valid C strings (kept alive by `names`), which librdkafka
        // copies into the new collection; the guard destroys it.
        let collection = Owned::new(
            unsafe {
                rd::rd_kafka_TopicCollection_of_topic_names(pointers.as_mut_ptr(), pointers.len())
            },
            rd::rd_kafka_TopicCollection_destroy,
            "topic collection",
        )?;
        // SAFETY: the handles are live; librdkafka copies the collection before returning (the
        // guard still owns and frees it).
        unsafe {
            rd::rd_kafka_DescribeTopics(s.rk, collection.as_ptr(), s.options.as_ptr(), s.queue)
        };
        Ok(())
    }

    fn read(&self, event: &Event) -> Option<Vec<(String, String)>> {
        let result = event.result(rd::rd_kafka_event_DescribeTopics_result)?;
        let mut count = 0usize;
        // SAFETY: `result` is a DescribeTopics result owned by `event`.
        let descriptions = unsafe { rd::rd_kafka_DescribeTopics_result_topics(result, &mut count) };
        let mut ids = Vec::new();
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
                ids.push((name, id));
            }
        }
        Some(ids)
    }
}

/// The admin client and its two queues: `queue`, where answers, logs and errors arrive, and a
/// reference to the client's main queue, forwarded into `queue` so log and error events reach
/// the polling thread (rust-rdkafka's admin client never serves the main queue).
///
/// Dropped after the polling thread has stopped: the forward is undone, then the queues and the
/// client are released on a thread of their own (see `Drop`).
pub(super) struct Handles {
    main_queue: ManuallyDrop<Queue>,
    queue: ManuallyDrop<Arc<Queue>>,
    client: ManuallyDrop<AdminClient<Ctx>>,
}

impl Handles {
    pub(super) fn new(client: AdminClient<Ctx>) -> Result<Handles> {
        let rk = client.inner().native_ptr();
        // SAFETY: `rk` is the live handle owned by `client`; the new queue is owned by the guard.
        let queue = Queue::new(unsafe { rd::rd_kafka_queue_new(rk) })?;
        // SAFETY: as above; `rd_kafka_queue_get_main` returns a new reference the guard releases.
        let main_queue = Queue::new(unsafe { rd::rd_kafka_queue_get_main(rk) })?;
        // SAFETY: both queues are live; forwarding is undone in `Drop` before either is freed.
        unsafe { rd::rd_kafka_queue_forward(main_queue.as_ptr(), queue.as_ptr()) };
        Ok(Handles {
            main_queue: ManuallyDrop::new(main_queue),
            queue: ManuallyDrop::new(Arc::new(queue)),
            client: ManuallyDrop::new(client),
        })
    }

    pub(super) fn client(&self) -> &AdminClient<Ctx> {
        &self.client
    }

    /// The queue answers arrive on (what the polling thread polls).
    pub(super) fn queue(&self) -> &Arc<Queue> {
        &self.queue
    }

    /// Creates options (timeout, opaque `id`, isolation level) and lets `request` issue itself
    /// with them.
    pub(super) fn send<R: Request>(&self, request: &R, timeout: Duration, id: u64) -> Result<()> {
        let rk = self.client.inner().native_ptr();
        // SAFETY: `rk` is live for as long as `self`; the guard destroys the options.
        let options = Owned::new(
            unsafe { rd::rd_kafka_AdminOptions_new(rk, request.op()) },
            rd::rd_kafka_AdminOptions_destroy,
            "admin options",
        )?;
        set_request_timeout(&options, timeout)?;
        if request.read_committed() {
            set_read_committed(&options)?;
        }
        // SAFETY: `options` is live; the opaque is an integer id, never dereferenced.
        unsafe {
            rd::rd_kafka_AdminOptions_set_opaque(options.as_ptr(), id as usize as *mut c_void)
        };
        request.send(Sender {
            rk,
            options: &options,
            queue: self.queue.as_ptr(),
        })
    }

    /// Blocking: one metadata round trip that asks for brokers only (no topics).
    pub(super) fn broker_metadata(&self, timeout: Duration) -> Answer<()> {
        let rk = self.client.inner().native_ptr();
        let timeout_ms = millis(timeout);
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

impl Drop for Handles {
    fn drop(&mut self) {
        // SAFETY: both queues are still live; after this the main queue no longer refers to
        // ours, so destroying ours (next) cannot leave a dangling forward.
        unsafe { rd::rd_kafka_queue_forward(self.main_queue.as_ptr(), ptr::null_mut()) };
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

/// What [`Handles`] releases last. Field order is drop order: the queues, then the client.
struct Released {
    _main_queue: Queue,
    _queue: Arc<Queue>,
    _client: AdminClient<Ctx>,
}

fn millis(timeout: Duration) -> c_int {
    c_int::try_from(timeout.as_millis())
        .unwrap_or(c_int::MAX)
        .max(1)
}

fn set_request_timeout(
    options: &Owned<rd::rd_kafka_AdminOptions_t>,
    timeout: Duration,
) -> Result<()> {
    let mut errstr = [0 as c_char; 512];
    let timeout_ms = millis(timeout);
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
    Ok(())
}

fn set_read_committed(options: &Owned<rd::rd_kafka_AdminOptions_t>) -> Result<()> {
    // SAFETY: `options` is live; a returned error object is ours to destroy.
    let error = unsafe {
        rd::rd_kafka_AdminOptions_set_isolation_level(
            options.as_ptr(),
            rd::rd_kafka_IsolationLevel_t::RD_KAFKA_ISOLATION_LEVEL_READ_COMMITTED,
        )
    };
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: `error` is a live error we own; destroyed right after reading it.
    let (code, message) = unsafe { error_parts(error) };
    // SAFETY: as above; not used afterwards.
    unsafe { rd::rd_kafka_error_destroy(error) };
    Err(request_failed(
        "setting isolation level",
        BrokerError { code, message },
    ))
}

/// What the polling thread received.
pub(super) enum Polled {
    /// A librdkafka log line.
    Log {
        level: c_int,
        facility: String,
        message: String,
    },
    /// A client-level error librdkafka reported.
    Error {
        code: RDKafkaErrorCode,
        reason: String,
    },
    /// The answer to the request whose opaque id is given.
    Answer(u64, Event),
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
pub(super) fn offset_spec_value(spec: OffsetSpec) -> Result<i64> {
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

/// C copies of some strings, and an array of pointers to them.
struct CStrings {
    strings: Vec<CString>,
    pointers: Vec<*const c_char>,
}

impl CStrings {
    fn new<'a>(values: impl Iterator<Item = &'a str>, what: &str) -> Result<CStrings> {
        let strings = values
            .map(|v| c_string(v, what))
            .collect::<Result<Vec<_>>>()?;
        let pointers = strings.iter().map(|s| s.as_ptr()).collect();
        Ok(CStrings { strings, pointers })
    }

    /// The pointers, valid while `self` lives.
    fn pointers(&mut self) -> &mut Vec<*const c_char> {
        debug_assert_eq!(self.pointers.len(), self.strings.len());
        &mut self.pointers
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

fn err_text(err: rd::rd_kafka_resp_err_t) -> String {
    // SAFETY: `rd_kafka_err2str` returns a static string for every code.
    unsafe { owned_str(rd::rd_kafka_err2str(err)) }
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

/// An owned librdkafka event, destroyed on drop.
pub(super) struct Event(NonNull<rd::rd_kafka_event_t>);

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

    /// The event viewed as a result of one kind (`view`, one of librdkafka's
    /// `rd_kafka_event_*_result`); `None` when it is another kind of event.
    fn result(&self, view: ResultOf) -> Option<*const rd::rd_kafka_event_t> {
        // SAFETY: `self` is live and `view` only looks at its type; the view lives as long as
        // the event.
        let result = unsafe { view(self.as_ptr()) };
        (!result.is_null()).then_some(result)
    }

    /// The request-level error of an admin result event, if any.
    pub(super) fn error(&self) -> Option<(RDKafkaErrorCode, String)> {
        // SAFETY: `self` is live; the error string lives as long as the event.
        let (code, message) = unsafe {
            let code = rd::rd_kafka_event_error(self.as_ptr());
            (code, rd::rd_kafka_event_error_string(self.as_ptr()))
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

    /// What this event is to the polling thread; `None` for a log event librdkafka could not
    /// read.
    fn into_polled(self) -> Option<Polled> {
        // SAFETY: `self` is live.
        match unsafe { rd::rd_kafka_event_type(self.as_ptr()) } {
            rd::RD_KAFKA_EVENT_LOG => {
                let mut facility: *const c_char = ptr::null();
                let mut message: *const c_char = ptr::null();
                let mut level: c_int = 0;
                // SAFETY: `self` is a live log event; the out pointers are valid, and the
                // strings they receive live as long as the event.
                let rc = unsafe {
                    rd::rd_kafka_event_log(self.as_ptr(), &mut facility, &mut message, &mut level)
                };
                // SAFETY: as above (read only when librdkafka filled them in).
                (rc == 0).then(|| unsafe {
                    Polled::Log {
                        level,
                        facility: owned_str(facility),
                        message: owned_str(message),
                    }
                })
            }
            rd::RD_KAFKA_EVENT_ERROR => {
                // SAFETY: `self` is a live error event; the string lives as long as it.
                let (code, reason) = unsafe {
                    (
                        rd::rd_kafka_event_error(self.as_ptr()),
                        owned_str(rd::rd_kafka_event_error_string(self.as_ptr())),
                    )
                };
                Some(Polled::Error {
                    code: code.into(),
                    reason,
                })
            }
            _ => {
                // SAFETY: `self` is live; admin results carry the id we set as opaque.
                let id = unsafe { rd::rd_kafka_event_opaque(self.as_ptr()) } as usize as u64;
                Some(Polled::Answer(id, self))
            }
        }
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: we own the event and nothing borrowed from it outlives `self`.
        unsafe { rd::rd_kafka_event_destroy(self.0.as_ptr()) }
    }
}

/// An owned librdkafka queue handle, destroyed on drop.
pub(super) struct Queue(NonNull<rd::rd_kafka_queue_t>);

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

    /// Blocks up to `timeout_ms` for the next event; `None` when none (usable) arrived.
    pub(super) fn poll(&self, timeout_ms: c_int) -> Option<Polled> {
        // SAFETY: the queue is live (the polling thread is joined before it is destroyed).
        Event::new(unsafe { rd::rd_kafka_queue_poll(self.as_ptr(), timeout_ms) })
            .and_then(Event::into_polled)
    }

    /// Wakes a thread blocked in [`poll`](Self::poll).
    pub(super) fn wake(&self) {
        // SAFETY: the queue is live.
        unsafe { rd::rd_kafka_queue_yield(self.as_ptr()) };
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: we own this queue reference; it is released exactly once.
        unsafe { rd::rd_kafka_queue_destroy(self.0.as_ptr()) }
    }
}

/// Any other owned librdkafka object with a `destroy` function (options, request objects).
pub(super) struct Owned<T> {
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
}

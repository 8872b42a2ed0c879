//! Fetch (key 1), the read hot path, with the long poll.
//!
//! Whole batches come from the log as they are stored (a `Bytes` over a mapped sealed segment or
//! one positional read of the active one). A request with less than `min_bytes` available parks:
//! it registers a waiter on each partition it reads, and the next append to any of them wakes it
//! (no polling), or `max_wait_ms` ends the wait. KIP-74: the first non-empty partition always
//! returns at least one whole batch, even when that batch exceeds `max_bytes`.
//!
//! A fetch from a follower (a replica id in the request: `replica_id` before v15, `replica_state`
//! from v15) reads up to the log end instead of the high watermark, is checked against the
//! leader's epoch history first (a diverging epoch answers instead of records, KIP-320), and
//! counts as the follower's progress, which moves the high watermark and may propose an ISR
//! expansion ([`crate::partitions::Partition::replica_fetch`]). Its long poll waits for the log
//! end to move.
//!
//! Fetch sessions (KIP-227, [`crate::fetch_sessions`]): a full fetch at epoch 0 opens one; an
//! incremental fetch patches the session's partitions and is answered for all of them, but the
//! answer carries only those with something new.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rafka_metadata::TopicImage;
use rafka_protocol::kafka_protocol::messages::fetch_request::FetchPartition;
use rafka_protocol::kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use rafka_protocol::kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName,
};
use rafka_protocol::kafka_protocol::protocol::StrBytes;
use rafka_protocol::kafka_protocol::ResponseError;
use rafka_records::Compression;
use tokio::sync::Notify;
use tokio::time::Instant;
use uuid::Uuid;

use crate::errors;
use crate::fetch_sessions::{
    FetchState, Outcome, Sent, SessionKey, FINAL_EPOCH, INITIAL_EPOCH, INVALID_SESSION_ID,
};
use crate::metrics::TopicHandle;
use crate::partitions::lock;
use crate::partitions::{Partition, ReplicaFetch, ReplicaFetchError, ReplicaRead, Unavailable};
use crate::state::Shared;
use crate::topic_config::TopicCompression;

/// Longest wait a client can ask for; Kafka has no cap, but a parked request holds memory.
const MAX_WAIT_MS_CAP: u64 = 5 * 60 * 1000;

struct Wanted {
    topic_index: usize,
    partition: i32,
    fetch_offset: i64,
    partition_max_bytes: i32,
    current_leader_epoch: i32,
    /// A follower's: the epoch of its last batch (v12+, else -1) and its log start (v5+).
    last_fetched_epoch: i32,
    log_start_offset: i64,
    /// Resolved partition, or the error to report for it.
    target: Result<Arc<Partition>, ResponseError>,
    /// KIP-951: the current leader (id, epoch) when this broker is not it.
    leader_hint: Option<(i32, i32)>,
    /// How a fetch session names and remembers it (only when the request uses one).
    key: Option<SessionKey>,
    state: FetchState,
}

/// How a request uses fetch sessions (KIP-227).
enum SessionMode {
    /// A full fetch without a session (epoch -1).
    Sessionless,
    /// A full fetch that opens a session (epoch 0).
    Open,
    /// An incremental fetch: session id and epoch.
    Incremental(i32, i32),
}

pub async fn handle(
    shared: &Arc<Shared>,
    listener: &str,
    request: FetchRequest,
    version: i16,
) -> FetchResponse {
    let mut response = FetchResponse::default();
    response.session_id = INVALID_SESSION_ID;
    let image = shared.image();
    let replica = replica_of(&request, version, &image);
    let read_committed = request.isolation_level == 1 && replica.is_none();
    let uses_topic_ids = version >= 13;
    let key = |topic: &TopicName, topic_id: Uuid, partition: i32| {
        if uses_topic_ids {
            SessionKey {
                topic_id,
                topic: String::new(),
                partition,
            }
        } else {
            SessionKey {
                topic_id: Uuid::nil(),
                topic: topic.0.to_string(),
                partition,
            }
        }
    };
    let state_of = |p: &FetchPartition| FetchState {
        fetch_offset: p.fetch_offset,
        partition_max_bytes: p.partition_max_bytes,
        current_leader_epoch: p.current_leader_epoch,
        last_fetched_epoch: if version >= 12 {
            p.last_fetched_epoch
        } else {
            -1
        },
        log_start_offset: p.log_start_offset,
    };
    let mode = match (request.session_id, request.session_epoch) {
        (INVALID_SESSION_ID, FINAL_EPOCH) => SessionMode::Sessionless,
        (INVALID_SESSION_ID, INITIAL_EPOCH) => SessionMode::Open,
        (INVALID_SESSION_ID, _) => {
            response.error_code = ResponseError::InvalidFetchSessionEpoch.code();
            return response;
        }
        (id, FINAL_EPOCH) => {
            lock(&shared.fetch_sessions).remove(id);
            SessionMode::Sessionless
        }
        (id, INITIAL_EPOCH) => {
            lock(&shared.fetch_sessions).remove(id);
            SessionMode::Open
        }
        (id, epoch) => SessionMode::Incremental(id, epoch),
    };
    let mut resolver = Resolver {
        shared,
        image: &image,
        listener,
        version,
        uses_topic_ids,
        topics: Vec::new(),
        wanted: Vec::new(),
        node_endpoints: Vec::new(),
    };
    match mode {
        // The common case (every consumer without sessions): one lookup per topic, and no
        // session keys at all.
        SessionMode::Sessionless | SessionMode::Open => {
            let open = matches!(mode, SessionMode::Open);
            for t in &request.topics {
                let (ti, topic) = resolver.topic(&t.topic, t.topic_id);
                for p in &t.partitions {
                    let key = open.then(|| key(&t.topic, t.topic_id, p.partition));
                    resolver.want(ti, topic, p.partition, state_of(p), key);
                }
            }
        }
        SessionMode::Incremental(id, epoch) => {
            let requested: Vec<(SessionKey, FetchState)> = request
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| (key(&t.topic, t.topic_id, p.partition), state_of(p)))
                })
                .collect();
            let forgotten: Vec<SessionKey> = request
                .forgotten_topics_data
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| key(&t.topic, t.topic_id, *p)))
                .collect();
            let updated = lock(&shared.fetch_sessions).update(
                id,
                epoch,
                uses_topic_ids,
                requested,
                &forgotten,
                crate::now_ms(),
            );
            match updated {
                Ok(inc) => {
                    for (k, state) in inc.partitions {
                        let (ti, topic) = resolver.session_topic(&k);
                        resolver.want(ti, topic, k.partition, state, Some(k));
                    }
                }
                Err(e) => {
                    response.error_code = errors::fetch_session(e).code();
                    return response;
                }
            }
        }
    }
    let Resolver {
        topics,
        wanted,
        node_endpoints,
        ..
    } = resolver;
    drop(image);
    response.node_endpoints = node_endpoints;

    let wait = Duration::from_millis((request.max_wait_ms.max(0) as u64).min(MAX_WAIT_MS_CAP));
    let deadline = Instant::now() + wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    let max_bytes = if request.max_bytes <= 0 {
        i32::MAX as usize
    } else {
        request.max_bytes as usize
    };
    loop {
        let (mut parts, total, any_error, hws) =
            read_all(shared, &wanted, max_bytes, read_committed, replica, version);
        let now = Instant::now();
        if total >= min_bytes || any_error || now >= deadline || wait.is_zero() {
            count_reads(shared, &topics, &wanted, &parts, replica.is_some());
            response.session_id = answer_in_session(
                shared,
                &mode,
                replica.is_some(),
                uses_topic_ids,
                &wanted,
                &mut parts,
            );
            response.responses = assemble(&topics, &wanted, parts);
            return response;
        }
        // Park: register on every partition, then re-check that nothing arrived in between.
        let waiter = Arc::new(Notify::new());
        for (w, hw) in wanted.iter().zip(&hws) {
            if let Ok(p) = &w.target {
                p.register_waiter(waiter.clone());
                let end = match replica {
                    Some(_) => p.log_end_offset(),
                    None => visible_end(p, read_committed),
                };
                if end != *hw {
                    waiter.notify_one();
                }
            }
        }
        let _ = tokio::time::timeout_at(deadline, waiter.notified()).await;
    }
}

/// Kafka's BrokerTopicStats for an answered fetch: a fetch request and, on error, a failed
/// one per partition read; bytes out for consumers only (a follower's are replication bytes).
/// Counted once per answer, not per wake-up of a long poll.
fn count_reads(
    shared: &Shared,
    topics: &[(String, Uuid)],
    wanted: &[Wanted],
    parts: &[Option<PartitionData>],
    from_follower: bool,
) {
    let metrics = &shared.metrics;
    let mut handles: Vec<Option<TopicHandle>> = (0..topics.len()).map(|_| None).collect();
    for (w, pd) in wanted.iter().zip(parts) {
        let Some(pd) = pd else { continue };
        // Only topics this node hosts get series of their own.
        let none = TopicHandle::none();
        let handle = match &w.target {
            Ok(p) => &*handles[w.topic_index].get_or_insert_with(|| metrics.topic(&p.topic)),
            Err(_) => &none,
        };
        let stats = metrics.stats(handle);
        stats.fetch_request();
        if pd.error_code != 0 {
            stats.fetch_failed();
        } else if !from_follower {
            stats.bytes_out(pd.records.as_ref().map_or(0, |r| r.len() as u64));
        }
    }
}

/// Turns the request's (or the session's) partitions into [`Wanted`] entries and the topics of
/// the answer.
struct Resolver<'a> {
    shared: &'a Arc<Shared>,
    image: &'a rafka_metadata::MetadataImage,
    listener: &'a str,
    version: i16,
    uses_topic_ids: bool,
    /// The answer's topics, in first-seen order: (name, id).
    topics: Vec<(String, Uuid)>,
    wanted: Vec<Wanted>,
    /// KIP-951 (v16+): endpoints of the leaders named in NOT_LEADER_OR_FOLLOWER hints.
    node_endpoints: Vec<NodeEndpoint>,
}

impl<'a> Resolver<'a> {
    /// Adds a topic of the request to the answer (a request naming a topic twice is answered
    /// twice, as Kafka does) and looks it up once.
    fn topic(&mut self, name: &TopicName, id: Uuid) -> (usize, Option<&'a TopicImage>) {
        let (name, id, topic) = if self.uses_topic_ids {
            let topic = self.image.topic_by_id(&id).map(Arc::as_ref);
            (topic.map(|x| x.name.clone()).unwrap_or_default(), id, topic)
        } else {
            let topic = self.image.topic_by_name(name).map(Arc::as_ref);
            (
                name.0.to_string(),
                topic.map(|x| x.topic_id).unwrap_or(Uuid::nil()),
                topic,
            )
        };
        self.topics.push((name, id));
        (self.topics.len() - 1, topic)
    }

    /// The answer's topic for a session's partition: sessions list partitions, not topics.
    fn session_topic(&mut self, k: &SessionKey) -> (usize, Option<&'a TopicImage>) {
        let topic = if self.uses_topic_ids {
            self.image.topic_by_id(&k.topic_id).map(Arc::as_ref)
        } else {
            self.image.topic_by_name(&k.topic).map(Arc::as_ref)
        };
        let seen = self.topics.iter().position(|(n, i)| {
            if self.uses_topic_ids {
                *i == k.topic_id
            } else {
                *n == k.topic
            }
        });
        if let Some(ti) = seen {
            return (ti, topic);
        }
        let name = match (self.uses_topic_ids, topic) {
            (true, t) => t.map(|x| x.name.clone()).unwrap_or_default(),
            (false, _) => k.topic.clone(),
        };
        let id = match (self.uses_topic_ids, topic) {
            (true, _) => k.topic_id,
            (false, t) => t.map(|x| x.topic_id).unwrap_or(Uuid::nil()),
        };
        self.topics.push((name, id));
        (self.topics.len() - 1, topic)
    }

    fn want(
        &mut self,
        topic_index: usize,
        topic: Option<&TopicImage>,
        partition: i32,
        state: FetchState,
        key: Option<SessionKey>,
    ) {
        let target = match topic {
            None if self.uses_topic_ids => Err(ResponseError::UnknownTopicId),
            None => Err(ResponseError::UnknownTopicOrPartition),
            Some(topic) => match self.shared.partitions.leader(topic, partition) {
                Ok(part) => zstd_readable(part, self.version),
                Err(Unavailable::NotLeader)
                    if behind_the_fetcher(
                        self.shared,
                        topic,
                        partition,
                        state.current_leader_epoch,
                    ) =>
                {
                    Err(ResponseError::UnknownLeaderEpoch)
                }
                Err(e) => Err(errors::unavailable(e)),
            },
        };
        // KIP-951: a fetch sent to the wrong broker learns the leader from the answer.
        let mut leader_hint = None;
        if target.as_ref().err() == Some(&ResponseError::NotLeaderOrFollower) && self.version >= 12
        {
            if let Some((id, epoch, broker, endpoint)) = topic.and_then(|t| {
                super::metadata::current_leader(self.image, t, partition, self.listener)
            }) {
                leader_hint = Some((id, epoch));
                if self.version >= 16 && !self.node_endpoints.iter().any(|n| n.node_id.0 == id) {
                    let mut n = NodeEndpoint::default();
                    n.node_id = BrokerId(id);
                    n.host = StrBytes::from_string(endpoint.host.clone());
                    n.port = i32::from(endpoint.port);
                    n.rack = broker.rack.clone().map(StrBytes::from_string);
                    self.node_endpoints.push(n);
                }
            }
        }
        self.wanted.push(Wanted {
            topic_index,
            partition,
            fetch_offset: state.fetch_offset,
            partition_max_bytes: state.partition_max_bytes,
            current_leader_epoch: state.current_leader_epoch,
            last_fetched_epoch: state.last_fetched_epoch,
            log_start_offset: state.log_start_offset,
            target,
            leader_hint,
            key,
            state,
        });
    }
}

/// Who sent a fetch on a follower's behalf.
#[derive(Debug, Clone, Copy)]
struct Replica {
    id: i32,
    /// KIP-903: the broker epoch the follower sent (v15+), -1 when it sent none.
    broker_epoch: i64,
    /// Its broker is registered (with this epoch, when it sent one), unfenced and not shutting
    /// down: it may join an ISR. A fetch from an older incarnation still reads, but does not
    /// count towards joining.
    may_join_isr: bool,
}

fn replica_of(
    request: &FetchRequest,
    version: i16,
    image: &rafka_metadata::MetadataImage,
) -> Option<Replica> {
    let (id, broker_epoch) = if version >= 15 {
        (
            request.replica_state.replica_id.0,
            request.replica_state.replica_epoch,
        )
    } else {
        (request.replica_id.0, -1)
    };
    if id < 0 {
        return None;
    }
    let may_join_isr = image.broker(id).is_some_and(|b| {
        !b.fenced
            && !b.in_controlled_shutdown
            && (broker_epoch < 0 || i64::try_from(b.epoch).is_ok_and(|e| e == broker_epoch))
    });
    Some(Replica {
        id,
        broker_epoch,
        may_join_isr,
    })
}

/// Kafka checks the epoch before the role: a fetcher that knows a newer epoch than this replica
/// has applied (a new leader that has not caught up with the metadata yet) gets
/// UNKNOWN_LEADER_EPOCH, which it retries soon, instead of NOT_LEADER_OR_FOLLOWER. So does one
/// that arrives while the replica is taking the leadership its image names (Kafka's fetch would
/// wait for the partition's lock until `makeLeader` is done). Only fetchers that send an epoch
/// (v9+) know that code.
fn behind_the_fetcher(
    shared: &Shared,
    topic: &TopicImage,
    partition: i32,
    current_leader_epoch: i32,
) -> bool {
    current_leader_epoch >= 0
        && (shared.partitions.named_leader(topic, partition).is_ok()
            || shared
                .partitions
                .get(&topic.topic_id, partition)
                .is_some_and(|p| current_leader_epoch > p.leader_epoch()))
}

/// Kafka answers Fetch before v10 for a topic with `compression.type=zstd` with
/// UNSUPPORTED_COMPRESSION_TYPE (KafkaApis.maybeConvertFetchedData): such a client cannot read
/// what the broker writes there.
fn zstd_readable(p: Arc<Partition>, version: i16) -> Result<Arc<Partition>, ResponseError> {
    if version < 10
        && matches!(
            p.settings().compression,
            TopicCompression::Codec {
                codec: Compression::Zstd,
                ..
            }
        )
    {
        return Err(ResponseError::UnsupportedCompressionType);
    }
    Ok(p)
}

/// Where a consumer's reads stop: the last stable offset for read_committed, else the high
/// watermark.
fn visible_end(p: &Partition, read_committed: bool) -> i64 {
    if read_committed {
        p.last_stable_offset()
    } else {
        p.high_watermark()
    }
}

/// Reads every wanted partition once. Returns the per-partition answers, total record bytes,
/// whether any partition has an error (answer at once, as Kafka does), and the high watermarks seen.
fn read_all(
    shared: &Arc<Shared>,
    wanted: &[Wanted],
    max_bytes: usize,
    read_committed: bool,
    replica: Option<Replica>,
    version: i16,
) -> (Vec<Option<PartitionData>>, usize, bool, Vec<i64>) {
    let mut out = Vec::with_capacity(wanted.len());
    let mut total = 0usize;
    let mut any_error = false;
    let mut hws = Vec::with_capacity(wanted.len());
    for w in wanted {
        let mut pd = PartitionData::default();
        pd.partition_index = w.partition;
        pd.high_watermark = -1;
        pd.last_stable_offset = -1;
        pd.log_start_offset = -1;
        pd.preferred_read_replica = BrokerId(-1);
        pd.records = Some(Bytes::new());
        let p = match &w.target {
            Ok(p) => p,
            Err(code) => {
                pd.error_code = code.code();
                if let Some((id, epoch)) = w.leader_hint {
                    pd.current_leader.leader_id = BrokerId(id);
                    pd.current_leader.leader_epoch = epoch;
                }
                any_error = true;
                hws.push(-1);
                out.push(pd);
                continue;
            }
        };
        let hw = p.high_watermark();
        let lso = p.last_stable_offset();
        hws.push(if read_committed { lso } else { hw });
        pd.high_watermark = hw;
        pd.last_stable_offset = lso;
        pd.log_start_offset = p.log_start_offset();
        if read_committed {
            pd.aborted_transactions = Some(Vec::new());
        }
        if let Err(mismatch) = p.check_leader_epoch(w.current_leader_epoch) {
            let epoch = p.leader_epoch();
            pd.error_code = errors::epoch(mismatch).code();
            // current_leader is a v12+ tagged field (KIP-951); older versions cannot carry it.
            if version >= 12 {
                let mut leader = LeaderIdAndEpoch::default();
                leader.leader_id = BrokerId(shared.node_id);
                leader.leader_epoch = epoch;
                pd.current_leader = leader;
            }
            any_error = true;
            out.push(pd);
            continue;
        }
        let budget = max_bytes
            .saturating_sub(total)
            .min(w.partition_max_bytes.max(0) as usize);
        // KIP-74: the first partition that has data returns a whole batch whatever the limits.
        let min_one_batch = total == 0;
        if budget == 0 && !min_one_batch {
            out.push(pd);
            continue;
        }
        if let Some(r) = replica {
            // The long poll of a follower waits for the log end to move.
            if let Some(last) = hws.last_mut() {
                *last = p.log_end_offset();
            }
            let fetch = ReplicaFetch {
                replica_id: r.id,
                broker_epoch: r.broker_epoch,
                fetch_offset: w.fetch_offset,
                log_start_offset: w.log_start_offset,
                last_fetched_epoch: w.last_fetched_epoch,
                may_join_isr: r.may_join_isr,
            };
            match p.replica_fetch(fetch, budget, min_one_batch, crate::now_ms()) {
                Ok(ReplicaRead::Records {
                    read,
                    high_watermark,
                    isr_change,
                }) => {
                    total += read.records.len();
                    pd.high_watermark = high_watermark;
                    pd.records = Some(read.records);
                    if let Some(change) = isr_change {
                        crate::cluster::isr::propose(shared, p.clone(), change);
                    }
                }
                Ok(ReplicaRead::Diverging(d)) => {
                    pd.diverging_epoch.epoch = d.epoch;
                    pd.diverging_epoch.end_offset = d.end_offset;
                    // The follower truncates before anything else: answer at once.
                    any_error = true;
                }
                Err(ReplicaFetchError::NotLeader) => {
                    pd.error_code = ResponseError::NotLeaderOrFollower.code();
                    any_error = true;
                }
                Err(ReplicaFetchError::Storage(e)) => {
                    pd.error_code = errors::storage(&e).code();
                    any_error = true;
                }
            }
            out.push(pd);
            continue;
        }
        let upto = if read_committed { lso } else { hw };
        match p.read_upto(w.fetch_offset, budget, upto, min_one_batch) {
            Ok(read) => {
                total += read.records.len();
                if read_committed && !read.records.is_empty() {
                    // The consumer drops records of these transactions (up to their markers).
                    pd.aborted_transactions = Some(
                        p.aborted_transactions(w.fetch_offset, read.next_offset)
                            .into_iter()
                            .map(|a| {
                                let mut t = AbortedTransaction::default();
                                t.producer_id = ProducerId(a.producer_id);
                                t.first_offset = a.first_offset;
                                t
                            })
                            .collect(),
                    );
                }
                pd.records = Some(read.records);
            }
            Err(e) => {
                pd.error_code = errors::storage(&e).code();
                any_error = true;
            }
        }
        out.push(pd);
    }
    (out.into_iter().map(Some).collect(), total, any_error, hws)
}

/// The session id the answer carries: a full fetch at epoch 0 opens a session (when the cache
/// has a slot); an incremental answer keeps only the partitions with something new (the others
/// become `None` and are left out).
fn answer_in_session(
    shared: &Shared,
    mode: &SessionMode,
    privileged: bool,
    uses_topic_ids: bool,
    wanted: &[Wanted],
    parts: &mut [Option<PartitionData>],
) -> i32 {
    let sent_of = |pd: &PartitionData| Sent {
        high_watermark: pd.high_watermark,
        last_stable_offset: pd.last_stable_offset,
        log_start_offset: pd.log_start_offset,
    };
    match mode {
        SessionMode::Sessionless => INVALID_SESSION_ID,
        SessionMode::Open => {
            let answered = wanted
                .iter()
                .zip(parts.iter())
                .filter_map(|(w, pd)| Some((w.key.clone()?, w.state, sent_of(pd.as_ref()?))))
                .collect();
            lock(&shared.fetch_sessions).create(
                privileged,
                uses_topic_ids,
                answered,
                crate::now_ms(),
            )
        }
        SessionMode::Incremental(id, _) => {
            let mut cache = lock(&shared.fetch_sessions);
            for (w, slot) in wanted.iter().zip(parts.iter_mut()) {
                let (Some(pd), Some(key)) = (slot.as_ref(), &w.key) else {
                    continue;
                };
                let outcome = Outcome {
                    sent: sent_of(pd),
                    has_records: pd.records.as_ref().is_some_and(|r| !r.is_empty()),
                    must_send: pd.error_code != 0
                        || pd.diverging_epoch.epoch >= 0
                        || pd.current_leader.leader_id.0 >= 0,
                };
                if !cache.must_send(*id, key, outcome) {
                    *slot = None;
                }
            }
            *id
        }
    }
}

fn assemble(
    topics: &[(String, Uuid)],
    wanted: &[Wanted],
    parts: Vec<Option<PartitionData>>,
) -> Vec<FetchableTopicResponse> {
    let mut responses: Vec<FetchableTopicResponse> = topics
        .iter()
        .map(|(name, id)| {
            let mut r = FetchableTopicResponse::default();
            r.topic = TopicName(StrBytes::from_string(name.clone()));
            r.topic_id = *id;
            r
        })
        .collect();
    for (w, pd) in wanted.iter().zip(parts) {
        if let Some(pd) = pd {
            responses[w.topic_index].partitions.push(pd);
        }
    }
    // An incremental answer leaves out topics with nothing new.
    responses.retain(|t| !t.partitions.is_empty());
    responses
}

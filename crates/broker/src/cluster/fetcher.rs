//! Follower fetchers (Kafka's `ReplicaFetcherManager` and `ReplicaFetcherThread`): one task per
//! leader broker copies the partitions this broker follows from it, long-polling with the
//! `replica.fetch.*` settings. Appends keep the leader's offsets and epochs; a diverging epoch
//! in the answer (KIP-320) truncates first; the follower's high watermark is the leader's,
//! capped at its own log end. Which partitions to follow, and from whom, comes from the images
//! after the hosted partitions have followed them (KRaft has no LeaderAndIsr requests).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rafka_metadata::MetadataImage;
use rafka_protocol::kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchTopic, ForgottenTopic, ReplicaState,
};
use rafka_protocol::kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use rafka_protocol::kafka_protocol::protocol::StrBytes;
use rafka_protocol::kafka_protocol::ResponseError;
use rafka_replication::EpochEndOffset;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use crate::fetch_sessions::{
    ClientSession, FetchState, RequestPlan, SessionKey, FINAL_EPOCH, INVALID_SESSION_ID,
};
use crate::partitions::Partition;
use crate::state::Shared;

/// The Fetch version followers speak at most: v15 carries the broker epoch (KIP-903) in
/// `replica_state`; later versions add nothing a follower uses.
const FETCH_VERSION_MAX: i16 = 15;

/// One partition this broker follows, with the leader epoch the image gives it.
#[derive(Clone)]
struct Followed {
    partition: Arc<Partition>,
    topic: String,
    topic_id: Uuid,
    index: i32,
    leader_epoch: i32,
}

type FollowedSet = Arc<Vec<Followed>>;

/// Keeps one fetcher task per leader this broker follows partitions of, in step with the
/// images; ends on shutdown.
pub async fn run(
    shared: Arc<Shared>,
    mut images: watch::Receiver<Arc<MetadataImage>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut fetchers: HashMap<i32, watch::Sender<FollowedSet>> = HashMap::new();
    loop {
        let image = images.borrow_and_update().clone();
        let wanted = followed_by_leader(&shared, &image);
        // A leader no longer followed: dropping its sender ends its task.
        fetchers.retain(|leader, _| wanted.contains_key(leader));
        for (leader, set) in wanted {
            let set: FollowedSet = Arc::new(set);
            match fetchers.get(&leader) {
                Some(tx) => {
                    tx.send_replace(set);
                }
                None => {
                    let (tx, rx) = watch::channel(set);
                    tokio::spawn(fetch_from(shared.clone(), leader, rx, shutdown.clone()));
                    fetchers.insert(leader, tx);
                }
            }
        }
        tokio::select! {
            changed = images.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

/// The hosted partitions another broker leads, grouped by that leader.
fn followed_by_leader(shared: &Shared, image: &MetadataImage) -> BTreeMap<i32, Vec<Followed>> {
    let mut out: BTreeMap<i32, Vec<Followed>> = BTreeMap::new();
    for topic in image.topics() {
        for (&index, p) in &topic.partitions {
            if p.leader < 0 || p.leader == shared.node_id || !p.replicas.contains(&shared.node_id) {
                continue;
            }
            let Some(partition) = shared.partitions.get(&topic.topic_id, index) else {
                continue;
            };
            out.entry(p.leader).or_default().push(Followed {
                partition,
                topic: topic.name.clone(),
                topic_id: topic.topic_id,
                index,
                leader_epoch: p.leader_epoch,
            });
        }
    }
    out
}

/// One leader's fetcher: fetches every partition of the set, applies the answers, repeats;
/// a partition whose fetch failed waits `replica.fetch.backoff.ms` before it is asked again.
async fn fetch_from(
    shared: Arc<Shared>,
    leader: i32,
    mut set: watch::Receiver<FollowedSet>,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = shared.config.replica;
    let backoff = Duration::from_millis(config.fetch_backoff_ms);
    // The answer may take the whole wait, plus the request timeout for the rest.
    let timeout =
        Duration::from_millis(config.fetch_wait_max_ms + shared.config.request_timeout_ms);
    let mut delayed: HashMap<(Uuid, i32), Instant> = HashMap::new();
    // KIP-227: after the first full fetch, requests list only partitions whose fetch state
    // changed, and answers only partitions with something new.
    let mut session = ClientSession::default();
    tracing::info!(leader, "Starting the replica fetcher");
    loop {
        if *shutdown.borrow() || set.has_changed().is_err() {
            tracing::info!(leader, "Stopping the replica fetcher");
            return;
        }
        let followed = set.borrow_and_update().clone();
        let now = Instant::now();
        delayed.retain(|_, until| *until > now);
        let ready: Vec<&Followed> = followed
            .iter()
            .filter(|f| !delayed.contains_key(&(f.topic_id, f.index)))
            .collect();
        if ready.is_empty() {
            let next = delayed.values().min().copied();
            tokio::select! {
                _ = async {
                    match next {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {}
                _ = set.changed() => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let image = shared.image();
        let sent = tokio::select! {
            r = send_fetch(&shared, &image, leader, &ready, &mut session, timeout) => r,
            _ = shutdown.changed() => {
                session.failed();
                continue;
            }
        };
        match sent {
            Ok(answer) => {
                let code = answer.1.error_code;
                if code == 0 {
                    session.answered(answer.1.session_id);
                } else {
                    session.failed();
                }
                let session_error = [
                    ResponseError::FetchSessionIdNotFound.code(),
                    ResponseError::InvalidFetchSessionEpoch.code(),
                    ResponseError::FetchSessionTopicIdError.code(),
                ]
                .contains(&code);
                if session_error {
                    // The leader lost or replaced the session: a full fetch at once.
                    tracing::debug!(leader, error_code = code, "Replica fetch session reset");
                    continue;
                }
                for f in apply(&ready, answer) {
                    delayed.insert(f, Instant::now() + backoff);
                }
            }
            Err(e) => {
                session.failed();
                tracing::debug!(leader, error = %e, "Replica fetch failed");
                let until = Instant::now() + backoff;
                for f in &ready {
                    delayed.insert((f.topic_id, f.index), until);
                }
            }
        }
    }
}

/// One Fetch answer, with the (fetch offset, last fetched epoch) each of `ready` was asked
/// from, in `ready`'s order.
type Answer = (i16, FetchResponse, Vec<(i64, i32)>);

/// Builds and sends one Fetch for `ready` at the highest version both sides speak (up to
/// [`FETCH_VERSION_MAX`]).
async fn send_fetch(
    shared: &Shared,
    image: &MetadataImage,
    leader: i32,
    ready: &[&Followed],
    session: &mut ClientSession,
    timeout: Duration,
) -> Result<Answer, String> {
    let version = shared
        .replica_fetch_client
        .version_for::<FetchRequest>(image, leader, timeout)
        .await
        .map_err(|e| e.to_string())?
        .min(FETCH_VERSION_MAX);
    let config = shared.config.replica;
    let broker_epoch = image
        .broker(shared.node_id)
        .map(|b| i64::try_from(b.epoch).unwrap_or(-1))
        .unwrap_or(-1);
    let mut req = FetchRequest::default();
    if version >= 15 {
        let mut state = ReplicaState::default();
        state.replica_id = BrokerId(shared.node_id);
        state.replica_epoch = broker_epoch;
        req.replica_state = state;
    } else {
        req.replica_id = BrokerId(shared.node_id);
    }
    req.max_wait_ms = i32::try_from(config.fetch_wait_max_ms).unwrap_or(i32::MAX);
    req.min_bytes = config.fetch_min_bytes;
    req.max_bytes = config.fetch_response_max_bytes;
    req.isolation_level = 0;
    let mut asked = Vec::with_capacity(ready.len());
    let mut current = Vec::with_capacity(ready.len());
    for f in ready {
        let (log_end, log_start, last_epoch) = f.partition.follower_fetch_state();
        asked.push((log_end, last_epoch));
        let key = if version >= 13 {
            SessionKey {
                topic_id: f.topic_id,
                topic: String::new(),
                partition: f.index,
            }
        } else {
            SessionKey {
                topic_id: Uuid::nil(),
                topic: f.topic.clone(),
                partition: f.index,
            }
        };
        let state = FetchState {
            fetch_offset: log_end,
            partition_max_bytes: config.fetch_max_bytes,
            current_leader_epoch: f.leader_epoch,
            last_fetched_epoch: if version >= 12 { last_epoch } else { -1 },
            log_start_offset: log_start,
        };
        current.push((key, state));
    }
    // Sessions need Fetch v7.
    let plan = if version >= 7 {
        session.plan(&current)
    } else {
        RequestPlan {
            session_id: INVALID_SESSION_ID,
            epoch: FINAL_EPOCH,
            send: current,
            forgotten: Vec::new(),
        }
    };
    req.session_id = plan.session_id;
    req.session_epoch = plan.epoch;
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (key, state) in plan.send {
        let mut p = FetchPartition::default();
        p.partition = key.partition;
        p.current_leader_epoch = state.current_leader_epoch;
        p.fetch_offset = state.fetch_offset;
        p.log_start_offset = state.log_start_offset;
        p.partition_max_bytes = state.partition_max_bytes;
        p.last_fetched_epoch = state.last_fetched_epoch;
        let same_topic = |t: &FetchTopic| {
            if version >= 13 {
                t.topic_id == key.topic_id
            } else {
                t.topic.0.as_str() == key.topic
            }
        };
        match topics.iter_mut().find(|t| same_topic(t)) {
            Some(t) => t.partitions.push(p),
            None => {
                let mut t = FetchTopic::default();
                t.topic_id = key.topic_id;
                t.topic = TopicName(StrBytes::from_string(key.topic.clone()));
                t.partitions.push(p);
                topics.push(t);
            }
        }
    }
    req.topics = topics;
    let mut forgotten: Vec<ForgottenTopic> = Vec::new();
    for key in plan.forgotten {
        match forgotten
            .iter_mut()
            .find(|t| t.topic_id == key.topic_id && t.topic.0.as_str() == key.topic)
        {
            Some(t) => t.partitions.push(key.partition),
            None => {
                let mut t = ForgottenTopic::default();
                t.topic_id = key.topic_id;
                t.topic = TopicName(StrBytes::from_string(key.topic.clone()));
                t.partitions.push(key.partition);
                forgotten.push(t);
            }
        }
    }
    req.forgotten_topics_data = forgotten;
    let response = shared
        .replica_fetch_client
        .send_at(image, leader, &req, version, timeout)
        .await
        .map_err(|e| e.to_string())?;
    Ok((version, response, asked))
}

/// Applies one Fetch answer; returns the partitions to back off.
fn apply(ready: &[&Followed], (version, response, asked): Answer) -> Vec<(Uuid, i32)> {
    let mut backoff = Vec::new();
    if response.error_code != 0 {
        tracing::warn!(error_code = response.error_code, "Replica fetch refused");
        return ready.iter().map(|f| (f.topic_id, f.index)).collect();
    }
    let now = crate::now_ms();
    for t in &response.responses {
        for pd in &t.partitions {
            let Some((i, f)) = ready.iter().enumerate().find(|(_, f)| {
                f.index == pd.partition_index
                    && if version >= 13 {
                        f.topic_id == t.topic_id
                    } else {
                        f.topic == t.topic.0.as_str()
                    }
            }) else {
                continue;
            };
            // An answer is for the log the request was built from: if the log changed since
            // (truncated, restarted elsewhere), a diverging epoch or records meant for the old
            // end could cut or corrupt the new one. Kafka's fetcher checks the fetch offset;
            // the last fetched epoch is checked too, since a truncation can bring the log back
            // to the same end under another epoch.
            let (log_end, _, last_epoch) = f.partition.follower_fetch_state();
            if asked.get(i) != Some(&(log_end, last_epoch)) {
                continue;
            }
            let key = (f.topic_id, f.index);
            let result = match ResponseError::try_from_code(pd.error_code) {
                None if pd.diverging_epoch.epoch >= 0 => f
                    .partition
                    .truncate_to_leader(
                        f.leader_epoch,
                        EpochEndOffset {
                            epoch: pd.diverging_epoch.epoch,
                            end_offset: pd.diverging_epoch.end_offset,
                        },
                        now,
                    )
                    .map(|_| ()),
                None => {
                    let records = pd.records.as_deref().unwrap_or(&[]);
                    f.partition
                        .append_as_follower(f.leader_epoch, records, pd.high_watermark, now)
                }
                Some(ResponseError::OffsetOutOfRange) => {
                    let (log_end, _, _) = f.partition.follower_fetch_state();
                    if pd.log_start_offset > log_end {
                        f.partition
                            .restart_at(f.leader_epoch, pd.log_start_offset, now)
                    } else {
                        tracing::warn!(partition = ?f.partition, log_end_offset = log_end,
                            leader_log_start_offset = pd.log_start_offset,
                            "The leader says the fetch offset is out of range");
                        backoff.push(key);
                        Ok(())
                    }
                }
                Some(e) => {
                    // NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH, ...:
                    // the image will say who leads now.
                    tracing::debug!(partition = ?f.partition, error = ?e, "Replica fetch error");
                    backoff.push(key);
                    Ok(())
                }
            };
            if let Err(e) = result {
                tracing::error!(partition = ?f.partition, error = %e, "Applying the leader's data failed");
                backoff.push(key);
            }
        }
    }
    backoff
}

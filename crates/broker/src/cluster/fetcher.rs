//! Follower fetchers (Kafka's `ReplicaFetcherManager` and `ReplicaFetcherThread`): per leader
//! broker, `num.replica.fetchers` tasks (each with its own connections and fetch session) copy
//! the partitions this broker follows from it, spread by Kafka's fetcher id, long-polling with
//! the `replica.fetch.*` settings. Appends keep the leader's offsets and epochs; a diverging epoch
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

use super::broker_client::BrokerClient;
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
    let mut fetchers: HashMap<(i32, usize), watch::Sender<FollowedSet>> = HashMap::new();
    // One client (connection pool) per fetcher id, shared by that id's fetchers to every
    // leader, as each of Kafka's fetcher threads has its own network client.
    let mut clients: Vec<Arc<BrokerClient>> = vec![shared.replica_fetch_client.clone()];
    loop {
        let image = images.borrow_and_update().clone();
        // `num.replica.fetchers` is dynamic: its changes come with the image.
        let n = shared
            .dynamic_config
            .current(&image)
            .replica
            .num_fetchers
            .max(1);
        while clients.len() < n {
            let more = clients[0].with_own_pool();
            clients.push(Arc::new(more));
        }
        let wanted = followed_by_fetcher(&shared, &image, n);
        // A (leader, fetcher) pair no longer needed: dropping its sender ends its task.
        fetchers.retain(|key, _| wanted.contains_key(key));
        for ((leader, fetcher_id), set) in wanted {
            let set: FollowedSet = Arc::new(set);
            match fetchers.get(&(leader, fetcher_id)) {
                Some(tx) => {
                    tx.send_replace(set);
                }
                None => {
                    let (tx, rx) = watch::channel(set);
                    tokio::spawn(fetch_from(
                        shared.clone(),
                        FetcherKey { leader, fetcher_id },
                        clients[fetcher_id].clone(),
                        rx,
                        shutdown.clone(),
                    ));
                    fetchers.insert((leader, fetcher_id), tx);
                }
            }
        }
        tokio::select! {
            changed = images.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

/// Which of `num_fetchers` fetchers replicates `topic`-`partition` from its leader: Kafka's
/// `AbstractFetcherManager.getFetcherId`, `abs(31 * topic.hashCode() + partition) % n`, with
/// Java's `String.hashCode` and int arithmetic.
pub fn fetcher_id(topic: &str, partition: i32, num_fetchers: usize) -> usize {
    use rafka_coordinator_common::{java_hash_code, kafka_abs};
    let h = java_hash_code(topic)
        .wrapping_mul(31)
        .wrapping_add(partition);
    usize::try_from(kafka_abs(h)).unwrap_or(0) % num_fetchers.max(1)
}

/// One fetcher: the leader it fetches from and its id among `num.replica.fetchers`.
#[derive(Debug, Clone, Copy)]
struct FetcherKey {
    leader: i32,
    fetcher_id: usize,
}

/// The hosted partitions another broker leads, grouped by that leader and fetcher id.
fn followed_by_fetcher(
    shared: &Shared,
    image: &MetadataImage,
    num_fetchers: usize,
) -> BTreeMap<(i32, usize), Vec<Followed>> {
    let mut out: BTreeMap<(i32, usize), Vec<Followed>> = BTreeMap::new();
    for topic in image.topics() {
        for (&index, p) in &topic.partitions {
            if p.leader < 0 || p.leader == shared.node_id || !p.replicas.contains(&shared.node_id) {
                continue;
            }
            let Some(partition) = shared.partitions.get(&topic.topic_id, index) else {
                continue;
            };
            let id = fetcher_id(&topic.name, index, num_fetchers);
            out.entry((p.leader, id)).or_default().push(Followed {
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
    key: FetcherKey,
    client: Arc<BrokerClient>,
    mut set: watch::Receiver<FollowedSet>,
    mut shutdown: watch::Receiver<bool>,
) {
    let FetcherKey { leader, fetcher_id } = key;
    let config = shared.config.replica;
    let backoff = Duration::from_millis(config.fetch_backoff_ms);
    // The answer may take the whole wait, plus the request timeout for the rest.
    let timeout =
        Duration::from_millis(config.fetch_wait_max_ms + shared.config.request_timeout_ms);
    let mut delayed: HashMap<(Uuid, i32), Instant> = HashMap::new();
    // KIP-227: after the first full fetch, requests list only partitions whose fetch state
    // changed, and answers only partitions with something new.
    let mut session = ClientSession::default();
    tracing::info!(leader, fetcher_id, "Starting the replica fetcher");
    loop {
        if *shutdown.borrow() || set.has_changed().is_err() {
            tracing::info!(leader, fetcher_id, "Stopping the replica fetcher");
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
            r = send_fetch(&shared, &client, &image, leader, &ready, &mut session, timeout) => r,
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
                for (f, wait) in apply(&ready, answer) {
                    let wait = match wait {
                        Wait::Backoff => backoff,
                        Wait::LeaderBehind => backoff.min(LEADER_BEHIND_RETRY),
                    };
                    delayed.insert(f, Instant::now() + wait);
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
    client: &BrokerClient,
    image: &MetadataImage,
    leader: i32,
    ready: &[&Followed],
    session: &mut ClientSession,
    timeout: Duration,
) -> Result<Answer, String> {
    let version = client
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
    let response = client
        .send_at(image, leader, &req, version, timeout)
        .await
        .map_err(|e| e.to_string())?;
    Ok((version, response, asked))
}

/// How long a partition waits before it is fetched again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// `replica.fetch.backoff.ms`.
    Backoff,
    /// The leader answered UNKNOWN_LEADER_EPOCH: it has not applied the metadata that made
    /// it leader yet and will within a metadata fetch. Waiting the whole backoff would hold
    /// its high watermark, and every acks=all produce, for up to a second after a failover.
    LeaderBehind,
}

/// The retry after [`Wait::LeaderBehind`].
const LEADER_BEHIND_RETRY: Duration = Duration::from_millis(50);

/// Applies one Fetch answer; returns the partitions to back off and for how long.
fn apply(ready: &[&Followed], (version, response, asked): Answer) -> Vec<((Uuid, i32), Wait)> {
    let mut backoff = Vec::new();
    if response.error_code != 0 {
        tracing::warn!(error_code = response.error_code, "Replica fetch refused");
        return ready
            .iter()
            .map(|f| ((f.topic_id, f.index), Wait::Backoff))
            .collect();
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
                    f.partition.append_as_follower(
                        f.leader_epoch,
                        records,
                        pd.high_watermark,
                        pd.log_start_offset,
                        now,
                    )
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
                        backoff.push((key, Wait::Backoff));
                        Ok(())
                    }
                }
                Some(ResponseError::UnknownLeaderEpoch) => {
                    backoff.push((key, Wait::LeaderBehind));
                    Ok(())
                }
                Some(e) => {
                    // NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH, ...: the image will say who
                    // leads now.
                    tracing::debug!(partition = ?f.partition, error = ?e, "Replica fetch error");
                    backoff.push((key, Wait::Backoff));
                    Ok(())
                }
            };
            if let Err(e) = result {
                tracing::error!(partition = ?f.partition, error = %e, "Applying the leader's data failed");
                backoff.push((key, Wait::Backoff));
            }
        }
    }
    backoff
}

#[cfg(test)]
mod tests {
    use super::fetcher_id;

    #[test]
    fn fetcher_ids_are_kafkas() {
        // "a".hashCode() == 97: 31 * 97 + 0 == 3007.
        assert_eq!(fetcher_id("a", 0, 2), 1);
        assert_eq!(fetcher_id("a", 1, 2), 0);
        // "foo".hashCode() == 101574: 31 * 101574 + 3 == 3148797, a multiple of 3.
        assert_eq!(fetcher_id("foo", 3, 3), 0);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE, and 31 * MIN_VALUE wraps to
        // MIN_VALUE: Utils.abs makes it 0; one more is 2^31 - 1, which is 1 modulo 7.
        assert_eq!(fetcher_id("polygenelubricants", 0, 7), 0);
        assert_eq!(fetcher_id("polygenelubricants", 1, 7), 1);
        assert_eq!(fetcher_id("anything", 5, 1), 0);
    }
}

//! Incremental fetch sessions (KIP-227), sans IO: the broker's session cache and the rules for
//! what an incremental request changes and which partitions its answer must carry.
//!
//! A client opens a session with a full fetch at epoch 0; the answer carries a session id. Each
//! later request names the session and its next epoch, lists only the partitions whose fetch
//! state changed (and the ones to forget), and the answer lists only the partitions with
//! something new: records, a moved high watermark, last stable offset or log start, an error or
//! a diverging epoch. An idle follower's fetch is then a few bytes each way instead of every
//! partition it follows. Time is passed in; the cache is bounded by
//! `max.incremental.fetch.session.cache.slots`, and a full cache evicts as Kafka's
//! `FetchSessionCache` does: first a session idle for [`EVICTION_MS`], else the least valuable
//! session (a consumer's before a follower's, then the smallest) when the new one is worth more.

use std::collections::{BTreeMap, HashMap};

/// KIP-227: the session id that means "no session".
pub const INVALID_SESSION_ID: i32 = 0;
/// KIP-227: the epoch that opens a session (a full fetch).
pub const INITIAL_EPOCH: i32 = 0;
/// KIP-227: the epoch of a sessionless full fetch (or one that closes its session).
pub const FINAL_EPOCH: i32 = -1;
/// How long a session must have been idle before any new session may take its slot (Kafka's
/// `FetchSessionCache` eviction time, 120 s).
pub const EVICTION_MS: i64 = 120_000;

/// A partition as a session names it: by topic id (Fetch v13+) or by name (before).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionKey {
    pub topic_id: uuid::Uuid,
    pub topic: String,
    pub partition: i32,
}

/// What a request says about one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchState {
    pub fetch_offset: i64,
    pub partition_max_bytes: i32,
    pub current_leader_epoch: i32,
    pub last_fetched_epoch: i32,
    pub log_start_offset: i64,
}

/// What the last answer told the client about one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
}

/// What an answer holds for one partition, to decide whether an incremental answer carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub sent: Sent,
    pub has_records: bool,
    /// An error code, a diverging epoch or a leader hint: always sent.
    pub must_send: bool,
}

#[derive(Debug, Clone)]
struct SessionPartition {
    state: FetchState,
    /// `None` until an answer carried the partition.
    sent: Option<Sent>,
}

#[derive(Debug, Clone)]
struct Session {
    /// The epoch the next request must carry.
    next_epoch: i32,
    /// A follower's session (replicas outrank consumers when the cache is full).
    privileged: bool,
    uses_topic_ids: bool,
    partitions: BTreeMap<SessionKey, SessionPartition>,
    last_used_ms: i64,
}

impl Session {
    /// Kafka's eviction order: lower is evicted first.
    fn worth(&self) -> (bool, usize) {
        (self.privileged, self.partitions.len())
    }
}

/// Why an incremental request was refused (the top-level error of the answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// FETCH_SESSION_ID_NOT_FOUND (70).
    NotFound,
    /// INVALID_FETCH_SESSION_EPOCH (71).
    InvalidEpoch,
    /// FETCH_SESSION_TOPIC_ID_ERROR (106): the session was opened with topic ids and the
    /// request has none, or the other way round.
    TopicIdMismatch,
}

/// The partitions an accepted incremental request fetches: every partition of the session.
#[derive(Debug, Clone)]
pub struct Incremental {
    pub partitions: Vec<(SessionKey, FetchState)>,
}

/// The broker's fetch sessions.
#[derive(Debug)]
pub struct FetchSessionCache {
    slots_max: usize,
    sessions: HashMap<i32, Session>,
    /// Session ids are drawn from this sequence (a seeded generator's state), never 0 and never
    /// one in use.
    id_state: u64,
}

impl FetchSessionCache {
    pub fn new(slots_max: usize, id_seed: u64) -> Self {
        FetchSessionCache {
            slots_max,
            sessions: HashMap::new(),
            id_state: id_seed,
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Closes a session (a request with its id and epoch 0 or -1).
    pub fn remove(&mut self, session_id: i32) {
        self.sessions.remove(&session_id);
    }

    /// Opens a session for a full fetch at epoch 0 that was answered with `answered`. Returns
    /// its id, or [`INVALID_SESSION_ID`] when the cache has no slot for it (the client then
    /// keeps sending full fetches, which the KIP allows).
    pub fn create(
        &mut self,
        privileged: bool,
        uses_topic_ids: bool,
        answered: Vec<(SessionKey, FetchState, Sent)>,
        now_ms: i64,
    ) -> i32 {
        if self.slots_max == 0 {
            return INVALID_SESSION_ID;
        }
        let session = Session {
            next_epoch: 1,
            privileged,
            uses_topic_ids,
            partitions: answered
                .into_iter()
                .map(|(k, state, sent)| {
                    (
                        k,
                        SessionPartition {
                            state,
                            sent: Some(sent),
                        },
                    )
                })
                .collect(),
            last_used_ms: now_ms,
        };
        if self.sessions.len() >= self.slots_max && !self.evict_for(&session, now_ms) {
            return INVALID_SESSION_ID;
        }
        let id = self.new_id();
        self.sessions.insert(id, session);
        id
    }

    /// Makes room for `new`: a session idle for [`EVICTION_MS`] goes first (the longest idle);
    /// else the least valuable one, if `new` is worth more.
    fn evict_for(&mut self, new: &Session, now_ms: i64) -> bool {
        let stale = self
            .sessions
            .iter()
            .filter(|(_, s)| now_ms - s.last_used_ms >= EVICTION_MS)
            .min_by_key(|(id, s)| (s.last_used_ms, **id))
            .map(|(id, _)| *id);
        let victim = stale.or_else(|| {
            self.sessions
                .iter()
                .min_by_key(|(id, s)| (s.worth(), s.last_used_ms, **id))
                .filter(|(_, s)| s.worth() < new.worth())
                .map(|(id, _)| *id)
        });
        match victim {
            Some(id) => {
                self.sessions.remove(&id);
                true
            }
            None => false,
        }
    }

    fn new_id(&mut self) -> i32 {
        loop {
            // SplitMix64: a different id for every step, from the seed given at construction.
            self.id_state = self.id_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.id_state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            // Kafka's ids are positive.
            let id = (z & 0x7FFF_FFFF) as i32;
            if id != INVALID_SESSION_ID && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// Applies an incremental request (epoch > 0): checks the session and epoch, updates and
    /// adds the listed partitions, drops the forgotten ones, and moves the epoch on. Returns every
    /// partition the session now holds.
    pub fn update(
        &mut self,
        session_id: i32,
        epoch: i32,
        uses_topic_ids: bool,
        changed: Vec<(SessionKey, FetchState)>,
        forgotten: &[SessionKey],
        now_ms: i64,
    ) -> Result<Incremental, SessionError> {
        let s = self
            .sessions
            .get_mut(&session_id)
            .ok_or(SessionError::NotFound)?;
        if s.next_epoch != epoch {
            return Err(SessionError::InvalidEpoch);
        }
        if s.uses_topic_ids != uses_topic_ids {
            return Err(SessionError::TopicIdMismatch);
        }
        for (k, state) in changed {
            match s.partitions.get_mut(&k) {
                Some(p) => p.state = state,
                None => {
                    s.partitions
                        .insert(k, SessionPartition { state, sent: None });
                }
            }
        }
        for k in forgotten {
            s.partitions.remove(k);
        }
        s.next_epoch = if s.next_epoch == i32::MAX {
            1
        } else {
            s.next_epoch + 1
        };
        s.last_used_ms = now_ms;
        Ok(Incremental {
            partitions: s
                .partitions
                .iter()
                .map(|(k, p)| (k.clone(), p.state))
                .collect(),
        })
    }

    /// After an incremental answer was read: which of the session's partitions the answer must
    /// carry (Kafka's `CachedPartition.maybeUpdateResponseData`), remembering what it tells the
    /// client. A partition that left the session meanwhile is not sent.
    pub fn must_send(&mut self, session_id: i32, key: &SessionKey, outcome: Outcome) -> bool {
        let Some(p) = self
            .sessions
            .get_mut(&session_id)
            .and_then(|s| s.partitions.get_mut(key))
        else {
            return false;
        };
        let changed = p.sent != Some(outcome.sent);
        p.sent = Some(outcome.sent);
        changed || outcome.has_records || outcome.must_send
    }
}

/// A follower's side of its session with one leader (Kafka's `FetchSessionHandler`): which
/// partitions the next request must list, and what to forget.
#[derive(Debug, Default)]
pub struct ClientSession {
    id: i32,
    /// 0: the next request opens a session (closing `id` if there is one).
    next_epoch: i32,
    /// The state the session holds for each partition, as last sent.
    sent: HashMap<SessionKey, FetchState>,
    /// The request in flight.
    pending: Option<Pending>,
}

/// A planned request: whether it was full, what it sent, what it forgot.
#[derive(Debug)]
struct Pending {
    full: bool,
    send: Vec<(SessionKey, FetchState)>,
    forgotten: Vec<SessionKey>,
}

/// What the next request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPlan {
    pub session_id: i32,
    pub epoch: i32,
    /// The partitions to list: all of them in a full request, else the changed and new ones.
    pub send: Vec<(SessionKey, FetchState)>,
    pub forgotten: Vec<SessionKey>,
}

impl ClientSession {
    /// Plans the request for `current` (every partition to fetch now, in order).
    pub fn plan(&mut self, current: &[(SessionKey, FetchState)]) -> RequestPlan {
        let full = self.id == INVALID_SESSION_ID || self.next_epoch == INITIAL_EPOCH;
        let (send, forgotten): (Vec<_>, Vec<_>) = if full {
            (current.to_vec(), Vec::new())
        } else {
            let send = current
                .iter()
                .filter(|(k, st)| self.sent.get(k) != Some(st))
                .cloned()
                .collect();
            let mut forgotten: Vec<SessionKey> = self
                .sent
                .keys()
                .filter(|k| !current.iter().any(|(c, _)| c == *k))
                .cloned()
                .collect();
            forgotten.sort();
            (send, forgotten)
        };
        self.pending = Some(Pending {
            full,
            send: send.clone(),
            forgotten: forgotten.clone(),
        });
        RequestPlan {
            session_id: self.id,
            epoch: if full { INITIAL_EPOCH } else { self.next_epoch },
            send,
            forgotten,
        }
    }

    /// The answer to the planned request came back without a top-level error.
    pub fn answered(&mut self, response_session_id: i32) {
        let Some(Pending {
            full,
            send,
            forgotten,
        }) = self.pending.take()
        else {
            return;
        };
        if full {
            self.sent = send.into_iter().collect();
            self.id = response_session_id;
            // Without a session (the leader had no slot) the next request is full again.
            self.next_epoch = if self.id == INVALID_SESSION_ID { 0 } else { 1 };
            return;
        }
        for (k, st) in send {
            self.sent.insert(k, st);
        }
        for k in forgotten {
            self.sent.remove(&k);
        }
        self.next_epoch = if self.next_epoch == i32::MAX {
            1
        } else {
            self.next_epoch + 1
        };
    }

    /// The request failed (no answer, or a top-level error such as an unknown session or a
    /// wrong epoch): the next request is full and replaces the session (Kafka's
    /// `nextCloseExisting`).
    pub fn failed(&mut self) {
        self.pending = None;
        self.next_epoch = INITIAL_EPOCH;
        self.sent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i32) -> SessionKey {
        SessionKey {
            topic_id: uuid::Uuid::from_u128(7),
            topic: String::new(),
            partition: p,
        }
    }

    fn state(offset: i64) -> FetchState {
        FetchState {
            fetch_offset: offset,
            partition_max_bytes: 1 << 20,
            current_leader_epoch: 0,
            last_fetched_epoch: -1,
            log_start_offset: 0,
        }
    }

    fn sent(hw: i64) -> Sent {
        Sent {
            high_watermark: hw,
            last_stable_offset: hw,
            log_start_offset: 0,
        }
    }

    fn full(n: i32) -> Vec<(SessionKey, FetchState, Sent)> {
        (0..n).map(|p| (key(p), state(0), sent(0))).collect()
    }

    #[test]
    fn an_incremental_request_patches_the_session_and_moves_its_epoch() {
        let mut c = FetchSessionCache::new(10, 1);
        let id = c.create(false, true, full(3), 0);
        assert_ne!(id, INVALID_SESSION_ID);
        // Epoch 1 next; partition 1 moved on, partition 2 is forgotten, 5 is new.
        let inc = c
            .update(
                id,
                1,
                true,
                vec![(key(1), state(10)), (key(5), state(0))],
                &[key(2)],
                1,
            )
            .expect("accepted");
        let got: Vec<(i32, i64)> = inc
            .partitions
            .iter()
            .map(|(k, s)| (k.partition, s.fetch_offset))
            .collect();
        assert_eq!(got, vec![(0, 0), (1, 10), (5, 0)]);
        // The same epoch again, an unknown session, the other topic-id mode: refused.
        assert_eq!(
            c.update(id, 1, true, vec![], &[], 2).unwrap_err(),
            SessionError::InvalidEpoch
        );
        assert_eq!(
            c.update(id + 1, 2, true, vec![], &[], 2).unwrap_err(),
            SessionError::NotFound
        );
        assert_eq!(
            c.update(id, 2, false, vec![], &[], 2).unwrap_err(),
            SessionError::TopicIdMismatch
        );
        assert!(c.update(id, 2, true, vec![], &[], 2).is_ok());
    }

    #[test]
    fn an_incremental_answer_carries_only_what_changed() {
        let mut c = FetchSessionCache::new(10, 1);
        let id = c.create(true, true, full(2), 0);
        let quiet = Outcome {
            sent: sent(0),
            has_records: false,
            must_send: false,
        };
        assert!(!c.must_send(id, &key(0), quiet));
        assert!(c.must_send(
            id,
            &key(0),
            Outcome {
                sent: sent(4),
                ..quiet
            }
        ));
        assert!(!c.must_send(
            id,
            &key(0),
            Outcome {
                sent: sent(4),
                ..quiet
            }
        ));
        assert!(c.must_send(
            id,
            &key(1),
            Outcome {
                has_records: true,
                ..quiet
            }
        ));
        assert!(c.must_send(
            id,
            &key(1),
            Outcome {
                must_send: true,
                ..quiet
            }
        ));
        // A partition added by an incremental request is sent the first time.
        c.update(id, 1, true, vec![(key(9), state(0))], &[], 1)
            .unwrap();
        assert!(c.must_send(id, &key(9), quiet));
        assert!(!c.must_send(id, &key(9), quiet));
        assert!(!c.must_send(id, &key(42), quiet), "not in the session");
    }

    #[test]
    fn a_full_cache_evicts_as_kafka_does() {
        let mut c = FetchSessionCache::new(2, 1);
        let small_consumer = c.create(false, true, full(1), 0);
        let follower = c.create(true, true, full(5), 0);
        assert_eq!(c.len(), 2);
        // A consumer session with fewer partitions than any is not worth a slot.
        assert_eq!(c.create(false, true, full(1), 10), INVALID_SESSION_ID);
        // A bigger consumer session evicts the smaller consumer one, never the follower's.
        let big_consumer = c.create(false, true, full(3), 20);
        assert_ne!(big_consumer, INVALID_SESSION_ID);
        assert!(c.update(small_consumer, 1, true, vec![], &[], 30).is_err());
        assert!(c.update(follower, 1, true, vec![], &[], 30).is_ok());
        // Once the consumer's session has been idle for the eviction time, anything may take
        // its slot.
        let late = c.create(false, true, full(1), 20 + EVICTION_MS);
        assert_ne!(late, INVALID_SESSION_ID);
        assert!(c.update(big_consumer, 1, true, vec![], &[], 30).is_err());
        assert!(c.update(follower, 2, true, vec![], &[], 30).is_ok());
        // No slots at all: no sessions.
        assert_eq!(
            FetchSessionCache::new(0, 1).create(true, true, full(1), 0),
            INVALID_SESSION_ID
        );
    }

    #[test]
    fn a_follower_lists_only_what_changed_and_starts_over_after_an_error() {
        let mut c = ClientSession::default();
        let parts = |a: i64, b: i64| vec![(key(0), state(a)), (key(1), state(b))];
        let plan = c.plan(&parts(0, 0));
        assert_eq!(
            (plan.session_id, plan.epoch, plan.send.len()),
            (0, INITIAL_EPOCH, 2)
        );
        c.answered(77);
        // Nothing changed: an empty incremental request at epoch 1.
        let plan = c.plan(&parts(0, 0));
        assert_eq!((plan.session_id, plan.epoch), (77, 1));
        assert!(plan.send.is_empty() && plan.forgotten.is_empty());
        c.answered(77);
        // Partition 1 moved on, partition 0 is no longer fetched, 2 is new.
        let plan = c.plan(&[(key(1), state(5)), (key(2), state(0))]);
        assert_eq!(plan.epoch, 2);
        assert_eq!(plan.send, vec![(key(1), state(5)), (key(2), state(0))]);
        assert_eq!(plan.forgotten, vec![key(0)]);
        c.answered(77);
        assert!(c
            .plan(&[(key(1), state(5)), (key(2), state(0))])
            .send
            .is_empty());
        // An error (say the leader evicted the session): a full request that replaces it.
        c.failed();
        let plan = c.plan(&[(key(1), state(5))]);
        assert_eq!(
            (plan.session_id, plan.epoch, plan.send.len()),
            (77, INITIAL_EPOCH, 1)
        );
        // The leader had no slot: full requests go on.
        c.answered(INVALID_SESSION_ID);
        assert_eq!(c.plan(&[(key(1), state(5))]).epoch, INITIAL_EPOCH);
    }

    /// Both sides together: the leader's answers to an idle follower's incremental fetches
    /// carry nothing, and new data shows up for the partition that has it.
    #[test]
    fn a_session_round_trip() {
        let mut leader = FetchSessionCache::new(10, 3);
        let mut follower = ClientSession::default();
        let current = vec![(key(0), state(0)), (key(1), state(0))];
        let plan = follower.plan(&current);
        let answered = plan
            .send
            .iter()
            .map(|(k, st)| (k.clone(), *st, sent(0)))
            .collect();
        let id = leader.create(true, true, answered, 0);
        follower.answered(id);
        for round in 1..4 {
            let plan = follower.plan(&current);
            assert_eq!(plan.epoch, round);
            let inc = leader
                .update(
                    plan.session_id,
                    plan.epoch,
                    true,
                    plan.send,
                    &plan.forgotten,
                    0,
                )
                .expect("accepted");
            assert_eq!(
                inc.partitions.len(),
                2,
                "the leader reads every session partition"
            );
            let quiet = Outcome {
                sent: sent(0),
                has_records: false,
                must_send: false,
            };
            assert!(!leader.must_send(id, &key(0), quiet));
            assert_eq!(
                leader.must_send(
                    id,
                    &key(1),
                    Outcome {
                        has_records: round == 3,
                        ..quiet
                    }
                ),
                round == 3
            );
            follower.answered(id);
        }
    }
}

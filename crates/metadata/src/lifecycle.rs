//! Broker lifecycle on the active controller (KIP-631), as a plain state machine: broker
//! sessions, the heartbeat decisions (unfence, fence, controlled shutdown) and session expiry.
//!
//! Time is passed in (milliseconds on any monotonic clock); the controller shell
//! (`crate::controller`) feeds it heartbeats and ticks, proposes the commands it returns, and
//! answers brokers. Nothing here is persisted: only the resulting fence/unfence transitions go
//! into the metadata log. Contact times live in the active controller's memory, and a newly
//! elected controller starts by treating every unfenced broker as having just heartbeated
//! ([`BrokerHeartbeats::activate`]), so a controller failover never fences a healthy broker.
//!
//! The rules are Kafka's `BrokerHeartbeatManager.calculateNextBrokerState`:
//!
//! | registration | heartbeat | next |
//! |---|---|---|
//! | fenced | `want_shut_down` | shut down now |
//! | fenced | caught up, not `want_fence` | unfenced |
//! | unfenced | `want_fence` | fenced |
//! | unfenced | `want_shut_down`, leads partitions | controlled shutdown |
//! | unfenced | `want_shut_down`, leads nothing | shut down now (fenced) |
//! | controlled shutdown | leads nothing, every active broker has seen the change | shut down now |
//!
//! "Caught up" means the broker has applied the log up to its own registration entry.
//! One deliberate difference from Kafka: a broker that shut down cleanly loses its session at
//! once, so it can register again immediately instead of getting DUPLICATE_BROKER_REGISTRATION
//! until its old session would have expired. Another: the broker that shares the active
//! controller's process is not held off by a session the controller only granted at activation
//! (see [`BrokerHeartbeats::check_registration`]), so a single node restarts at once after a crash.

use std::collections::{BTreeMap, BTreeSet};

use crate::command::ControllerCommand;
use crate::image::MetadataImage;

/// A heartbeat as the broker sends it (Kafka's `BrokerHeartbeatRequest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    pub node_id: i32,
    pub broker_epoch: u64,
    /// The last metadata log index the broker has applied.
    pub metadata_index: u64,
    pub want_fence: bool,
    pub want_shut_down: bool,
}

/// What the controller must do for one heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatDecision {
    /// A transition to write to the log before answering.
    pub command: Option<ControllerCommand>,
    pub is_caught_up: bool,
    /// Fenced after `command` (if any) is applied.
    pub is_fenced: bool,
    pub should_shut_down: bool,
    /// The transition, for the controller's log line.
    pub transition: Option<&'static str>,
}

/// Why a heartbeat or registration is refused (Kafka's error codes in the variant docs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// `STALE_BROKER_EPOCH` (77).
    #[error("{0}")]
    StaleBrokerEpoch(String),
    /// `DUPLICATE_BROKER_REGISTRATION` (101).
    #[error("Another broker is registered with that broker id. If the broker was recently restarted this should self-resolve once the heartbeat manager expires the broker's session.")]
    DuplicateBrokerRegistration,
}

#[derive(Debug, Clone, Copy, Default)]
struct Session {
    /// Metadata index reported by the last heartbeat; `None` until one arrived since this
    /// controller became active.
    metadata_index: Option<u64>,
    /// Log index of the entry that began the broker's controlled shutdown.
    controlled_shutdown_index: Option<u64>,
}

/// Broker sessions of one active controller term.
#[derive(Debug)]
pub struct BrokerHeartbeats {
    session_timeout_ms: u64,
    /// Last contact per (broker, epoch), as Kafka's `BrokerHeartbeatTracker`.
    contacts: BTreeMap<(i32, u64), u64>,
    /// Contacts that come from [`BrokerHeartbeats::activate`] and not from a heartbeat heard
    /// since.
    granted_at_activation: BTreeSet<(i32, u64)>,
    sessions: BTreeMap<i32, Session>,
}

impl BrokerHeartbeats {
    pub fn new(session_timeout_ms: u64) -> Self {
        BrokerHeartbeats {
            session_timeout_ms,
            contacts: BTreeMap::new(),
            granted_at_activation: BTreeSet::new(),
            sessions: BTreeMap::new(),
        }
    }

    /// Starts a term as active controller: every unfenced broker counts as having just
    /// heartbeated, so none is fenced before it had a whole session to reach the new leader.
    pub fn activate(&mut self, image: &MetadataImage, now_ms: u64) {
        self.contacts.clear();
        self.granted_at_activation.clear();
        self.sessions.clear();
        for b in image.brokers() {
            let session = Session {
                metadata_index: None,
                controlled_shutdown_index: b.in_controlled_shutdown.then_some(b.epoch),
            };
            self.sessions.insert(b.node_id, session);
            if !b.fenced {
                self.contacts.insert((b.node_id, b.epoch), now_ms);
                self.granted_at_activation.insert((b.node_id, b.epoch));
            }
        }
    }

    fn expired(&self, contact_ms: u64, now_ms: u64) -> bool {
        contact_ms.saturating_add(self.session_timeout_ms) < now_ms
    }

    /// Whether `(node_id, epoch)` heartbeated within the session timeout.
    pub fn has_valid_session(&self, node_id: i32, epoch: u64, now_ms: u64) -> bool {
        self.contacts
            .get(&(node_id, epoch))
            .is_some_and(|t| !self.expired(*t, now_ms))
    }

    /// Checks a registration against a live older incarnation.
    ///
    /// `co_located` says the registering broker runs in this controller's process. Such a
    /// broker's older incarnation is a previous run of the same process, which is gone: the
    /// controller became active after the process started, so unless that incarnation has
    /// actually heartbeated since (another process misconfigured with the same id), its session
    /// is only the courtesy granted at activation and does not hold the id. Kafka makes a
    /// combined node that was killed wait out `broker.session.timeout.ms` here.
    pub fn check_registration(
        &self,
        image: &MetadataImage,
        node_id: i32,
        incarnation_id: uuid::Uuid,
        co_located: bool,
        now_ms: u64,
    ) -> Result<(), SessionError> {
        match image.broker(node_id) {
            Some(b)
                if b.incarnation_id != incarnation_id
                    && self.has_valid_session(node_id, b.epoch, now_ms)
                    && !(co_located
                        && self.granted_at_activation.contains(&(node_id, b.epoch))) =>
            {
                Err(SessionError::DuplicateBrokerRegistration)
            }
            _ => Ok(()),
        }
    }

    /// A new registration committed: it starts fenced with no session yet (the first heartbeat
    /// opens one).
    pub fn registered(&mut self, node_id: i32) {
        self.contacts.retain(|(n, _), _| *n != node_id);
        self.granted_at_activation.retain(|(n, _)| *n != node_id);
        self.sessions.insert(node_id, Session::default());
    }

    /// Decides what a heartbeat does. The caller proposes `command`, then calls
    /// [`BrokerHeartbeats::applied`] with the entry's index.
    pub fn heartbeat(
        &mut self,
        image: &MetadataImage,
        hb: Heartbeat,
        now_ms: u64,
    ) -> Result<HeartbeatDecision, SessionError> {
        let broker = match image.broker(hb.node_id) {
            None => {
                return Err(SessionError::StaleBrokerEpoch(format!(
                    "No broker registration found for broker id {}",
                    hb.node_id
                )))
            }
            Some(b) if b.epoch != hb.broker_epoch => {
                return Err(SessionError::StaleBrokerEpoch(format!(
                    "Expected broker epoch {}, but got broker epoch {}",
                    b.epoch, hb.broker_epoch
                )))
            }
            Some(b) => b,
        };
        self.contacts.insert((hb.node_id, hb.broker_epoch), now_ms);
        self.granted_at_activation
            .remove(&(hb.node_id, hb.broker_epoch));
        let session = self.sessions.entry(hb.node_id).or_default();
        session.metadata_index = Some(hb.metadata_index);
        let is_caught_up = hb.metadata_index >= broker.epoch;
        let epoch = broker.epoch;
        let node_id = hb.node_id;
        let leads = leads_partitions(image, node_id);
        let decision = |command, is_fenced, should_shut_down, transition| HeartbeatDecision {
            command,
            is_caught_up,
            is_fenced,
            should_shut_down,
            transition,
        };
        let fence = Some(ControllerCommand::FenceBroker {
            node_id,
            broker_epoch: epoch,
        });
        Ok(if broker.fenced {
            if hb.want_shut_down {
                self.contacts.remove(&(node_id, epoch));
                decision(
                    None,
                    true,
                    true,
                    Some("has requested and been granted an immediate shutdown"),
                )
            } else if is_caught_up && !hb.want_fence {
                decision(
                    Some(ControllerCommand::UnfenceBroker {
                        node_id,
                        broker_epoch: epoch,
                    }),
                    false,
                    false,
                    Some("has been unfenced: it has caught up with the offset of its register broker record"),
                )
            } else {
                decision(None, true, false, None)
            }
        } else if broker.in_controlled_shutdown {
            let lowest = self.lowest_active_index(image);
            let index = self
                .sessions
                .get(&node_id)
                .and_then(|s| s.controlled_shutdown_index)
                .unwrap_or(epoch);
            if !leads && lowest.is_none_or(|l| l >= index) {
                self.contacts.remove(&(node_id, epoch));
                decision(
                    fence,
                    true,
                    true,
                    Some("is granted shutdown: every active broker has seen its leaderships move"),
                )
            } else {
                decision(None, false, false, None)
            }
        } else if hb.want_shut_down {
            if leads {
                decision(
                    Some(ControllerCommand::BeginControlledShutdown {
                        node_id,
                        broker_epoch: epoch,
                    }),
                    false,
                    false,
                    Some("has requested and been granted a controlled shutdown"),
                )
            } else {
                self.contacts.remove(&(node_id, epoch));
                decision(
                    fence,
                    true,
                    true,
                    Some("has requested and been granted an immediate shutdown"),
                )
            }
        } else if hb.want_fence {
            decision(fence, true, false, Some("has asked to be fenced"))
        } else {
            decision(None, false, false, None)
        })
    }

    /// The command a heartbeat decided on committed at `log_index`.
    pub fn applied(&mut self, command: &ControllerCommand, log_index: u64) {
        if let ControllerCommand::BeginControlledShutdown { node_id, .. } = command {
            self.sessions
                .entry(*node_id)
                .or_default()
                .controlled_shutdown_index = Some(log_index);
        }
    }

    /// The smallest metadata index heartbeated by an active broker (unfenced, not shutting
    /// down); `None` when there is none. One that has not heartbeated to this controller yet
    /// counts as 0: it may not have seen anything.
    fn lowest_active_index(&self, image: &MetadataImage) -> Option<u64> {
        image
            .brokers()
            .filter(|b| b.is_active())
            .map(|b| {
                self.sessions
                    .get(&b.node_id)
                    .and_then(|s| s.metadata_index)
                    .unwrap_or(0)
            })
            .min()
    }

    /// When the earliest session tracked expires (Kafka's `nextCheckTimeNs`): the controller
    /// checks then rather than on a coarse tick, so a dead broker is fenced at its session
    /// timeout and not up to a tick later. `None` with no sessions.
    pub fn next_check_ms(&self) -> Option<u64> {
        self.contacts
            .values()
            .min()
            .map(|t| t.saturating_add(self.session_timeout_ms).saturating_add(1))
    }

    /// One unfenced broker whose session expired, to fence; its contact entry is dropped.
    /// Entries of replaced registrations and of already fenced brokers are dropped silently.
    pub fn next_expired(&mut self, image: &MetadataImage, now_ms: u64) -> Option<(i32, u64)> {
        loop {
            let key = self
                .contacts
                .iter()
                .find(|(_, t)| self.expired(**t, now_ms))
                .map(|(k, _)| *k)?;
            self.contacts.remove(&key);
            let (node_id, epoch) = key;
            match image.broker(node_id) {
                Some(b) if b.epoch == epoch && !b.fenced => return Some(key),
                _ => continue,
            }
        }
    }
}

fn leads_partitions(image: &MetadataImage, node_id: i32) -> bool {
    image.partitions().any(|(_, _, p)| p.leader == node_id)
}

/// The command a registration calls for when the broker did not shut down cleanly since its
/// registration in `image` (KIP-966: the previous broker epoch it sends is not that
/// registration's epoch): it must leave every ISR and ELR before it registers again. Only with
/// the ELR feature, as in Kafka.
pub fn unclean_shutdown(
    image: &MetadataImage,
    node_id: i32,
    previous_broker_epoch: i64,
) -> Option<ControllerCommand> {
    if !crate::partition_change::elr_enabled(image) {
        return None;
    }
    let b = image.broker(node_id)?;
    (i64::try_from(b.epoch) != Ok(previous_broker_epoch)).then_some(
        ControllerCommand::BrokerUncleanShutdown {
            node_id,
            broker_epoch: b.epoch,
        },
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::*;
    use crate::command::{apply_in_place, Placement};
    use crate::records::BrokerRegistration;

    struct World {
        image: MetadataImage,
        index: u64,
    }

    impl World {
        fn new() -> Self {
            World {
                image: MetadataImage::empty("c"),
                index: 0,
            }
        }
        fn apply(&mut self, cmd: &ControllerCommand) -> u64 {
            self.index += 1;
            apply_in_place(&mut self.image, self.index, cmd).unwrap();
            self.index
        }
        fn register(&mut self, node_id: i32) -> (u64, Uuid) {
            let incarnation = Uuid::new_v4();
            let epoch = self.apply(&ControllerCommand::RegisterBroker(BrokerRegistration {
                node_id,
                incarnation_id: incarnation,
                endpoints: vec![],
                rack: None,
                fenced: true,
            }));
            (epoch, incarnation)
        }
    }

    fn hb(node_id: i32, broker_epoch: u64, metadata_index: u64) -> Heartbeat {
        Heartbeat {
            node_id,
            broker_epoch,
            metadata_index,
            want_fence: false,
            want_shut_down: false,
        }
    }

    #[test]
    fn unfenced_once_caught_up_then_shut_down() {
        let mut w = World::new();
        let mut hbs = BrokerHeartbeats::new(9000);
        hbs.activate(&w.image, 0);
        let (epoch, _) = w.register(1);
        hbs.registered(1);
        // Not caught up yet: stays fenced.
        let d = hbs
            .heartbeat(&w.image, hb(1, epoch, epoch - 1), 10)
            .unwrap();
        assert_eq!(
            (d.command, d.is_caught_up, d.is_fenced),
            (None, false, true)
        );
        // Caught up but wants to stay fenced (still recovering its logs).
        let mut wait = hb(1, epoch, epoch);
        wait.want_fence = true;
        let d = hbs.heartbeat(&w.image, wait, 20).unwrap();
        assert_eq!((d.command, d.is_fenced), (None, true));
        let d = hbs.heartbeat(&w.image, hb(1, epoch, epoch), 30).unwrap();
        assert!(!d.is_fenced && d.is_caught_up);
        let cmd = d.command.unwrap();
        assert_eq!(
            cmd,
            ControllerCommand::UnfenceBroker {
                node_id: 1,
                broker_epoch: epoch
            }
        );
        w.apply(&cmd);
        assert!(w.image.is_active_broker(1));
        // Leads nothing: a shutdown request fences at once.
        let mut bye = hb(1, epoch, w.index);
        bye.want_shut_down = true;
        let d = hbs.heartbeat(&w.image, bye, 40).unwrap();
        assert!(d.should_shut_down && d.is_fenced);
        w.apply(&d.command.unwrap());
        assert!(w.image.broker(1).unwrap().fenced);
        // A clean shutdown frees the id at once.
        assert!(hbs
            .check_registration(&w.image, 1, Uuid::new_v4(), false, 41)
            .is_ok());
    }

    #[test]
    fn controlled_shutdown_moves_leadership_first() {
        let mut w = World::new();
        let mut hbs = BrokerHeartbeats::new(9000);
        let (e1, _) = w.register(1);
        let (e2, _) = w.register(2);
        for (n, e) in [(1, e1), (2, e2)] {
            w.apply(&ControllerCommand::UnfenceBroker {
                node_id: n,
                broker_epoch: e,
            });
        }
        w.apply(&ControllerCommand::CreateTopic {
            name: "t".into(),
            topic_id: Uuid::new_v4(),
            partitions: vec![],
            configs: BTreeMap::new(),
            placement: Some(Placement::Manual {
                replicas: vec![vec![1]],
            }),
        });
        hbs.activate(&w.image, 0);
        let mut bye = hb(1, e1, w.index);
        bye.want_shut_down = true;
        let d = hbs.heartbeat(&w.image, bye, 1).unwrap();
        assert!(!d.should_shut_down);
        let cmd = d.command.unwrap();
        assert!(matches!(
            cmd,
            ControllerCommand::BeginControlledShutdown { node_id: 1, .. }
        ));
        let at = w.apply(&cmd);
        hbs.applied(&cmd, at);
        let p = w.image.topic_by_name("t").unwrap().partition(0).unwrap();
        assert_eq!(p.leader, crate::records::NO_LEADER);
        // Broker 2 has not reported seeing the change: not yet.
        bye.metadata_index = w.index;
        let d = hbs.heartbeat(&w.image, bye, 2).unwrap();
        assert!(!d.should_shut_down && d.command.is_none());
        hbs.heartbeat(&w.image, hb(2, e2, w.index), 3).unwrap();
        let d = hbs.heartbeat(&w.image, bye, 4).unwrap();
        assert!(d.should_shut_down);
        assert!(matches!(
            d.command,
            Some(ControllerCommand::FenceBroker { node_id: 1, .. })
        ));
    }

    #[test]
    fn sessions_expire_and_new_controllers_start_them_fresh() {
        let mut w = World::new();
        let mut hbs = BrokerHeartbeats::new(9000);
        let (epoch, incarnation) = w.register(1);
        w.apply(&ControllerCommand::UnfenceBroker {
            node_id: 1,
            broker_epoch: epoch,
        });
        hbs.activate(&w.image, 1000);
        // A new incarnation while the old session lives is refused.
        assert_eq!(
            hbs.check_registration(&w.image, 1, Uuid::new_v4(), false, 5000),
            Err(SessionError::DuplicateBrokerRegistration)
        );
        assert!(hbs
            .check_registration(&w.image, 1, incarnation, false, 5000)
            .is_ok());
        assert_eq!(hbs.next_check_ms(), Some(10_001));
        assert_eq!(hbs.next_expired(&w.image, 10_000), None);
        assert_eq!(hbs.next_expired(&w.image, 10_001), Some((1, epoch)));
        assert_eq!(hbs.next_expired(&w.image, 20_000), None);
        assert!(hbs
            .check_registration(&w.image, 1, Uuid::new_v4(), false, 10_002)
            .is_ok());
        // A failover: the new controller gives the broker a whole new session.
        let mut fresh = BrokerHeartbeats::new(9000);
        fresh.activate(&w.image, 50_000);
        assert_eq!(fresh.next_expired(&w.image, 58_000), None);
        assert_eq!(fresh.next_expired(&w.image, 59_001), Some((1, epoch)));
    }

    #[test]
    fn the_controllers_own_broker_is_not_held_off_by_an_activation_courtesy() {
        let mut w = World::new();
        let mut hbs = BrokerHeartbeats::new(9000);
        let (epoch, _) = w.register(1);
        w.apply(&ControllerCommand::UnfenceBroker {
            node_id: 1,
            broker_epoch: epoch,
        });
        // The process was killed while broker 1 was unfenced and has just restarted.
        hbs.activate(&w.image, 1000);
        assert!(hbs
            .check_registration(&w.image, 1, Uuid::new_v4(), true, 1001)
            .is_ok());
        // From another process the id stays held, as in Kafka.
        assert_eq!(
            hbs.check_registration(&w.image, 1, Uuid::new_v4(), false, 1001),
            Err(SessionError::DuplicateBrokerRegistration)
        );
        // Once the old incarnation has really heartbeated, it is alive somewhere: refused.
        hbs.heartbeat(&w.image, hb(1, epoch, w.index), 2000)
            .unwrap();
        assert_eq!(
            hbs.check_registration(&w.image, 1, Uuid::new_v4(), true, 2001),
            Err(SessionError::DuplicateBrokerRegistration)
        );
    }

    #[test]
    fn stale_epochs_are_refused() {
        let mut w = World::new();
        let mut hbs = BrokerHeartbeats::new(9000);
        let (old, _) = w.register(1);
        let (new, _) = w.register(1);
        assert!(matches!(
            hbs.heartbeat(&w.image, hb(1, old, 10), 0),
            Err(SessionError::StaleBrokerEpoch(m)) if m == format!("Expected broker epoch {new}, but got broker epoch {old}")
        ));
        assert!(matches!(
            hbs.heartbeat(&w.image, hb(7, 1, 10), 0),
            Err(SessionError::StaleBrokerEpoch(_))
        ));
        // A fence meant for the old registration is rejected by apply, too.
        let (_, res) = crate::command::apply(
            &w.image,
            w.index + 1,
            &ControllerCommand::FenceBroker {
                node_id: 1,
                broker_epoch: old,
            },
        );
        assert!(res.is_err());
    }
}

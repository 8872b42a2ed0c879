//! acks=all produces waiting for their records to be replicated (Kafka's `DelayedProduce` in
//! the produce purgatory), across the partitions one request wrote.
//!
//! A produce parks once its batches are appended on the leader, with the offset each partition
//! must reach: the high watermark passing it means every ISR member has the batch. It completes
//! when every partition has answered: reached (success), the ISR shrank below
//! `min.insync.replicas` while waiting (NOT_ENOUGH_REPLICAS_AFTER_APPEND, Kafka's answer when
//! the write is on the leader but its durability can no longer be promised), leadership lost
//! (NOT_LEADER_OR_FOLLOWER), or the request's timeout (REQUEST_TIMED_OUT for the partitions still
//! waiting). The number of parked produces is bounded; the shell answers a produce that finds
//! the purgatory full as Kafka answers an overloaded broker, without parking it.

use std::collections::BTreeMap;

/// A partition, as the shell names it.
pub type PartitionKey = (String, i32);

/// How one partition of a parked produce ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionOutcome {
    /// The high watermark passed the batch.
    Replicated,
    /// The ISR fell below `min.insync.replicas` after the append.
    NotEnoughReplicasAfterAppend,
    /// This broker stopped leading the partition.
    NotLeader,
    /// The request's timeout passed first.
    TimedOut,
}

/// A parked produce that is complete: every partition's outcome, in the order they were parked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed<Id> {
    pub id: Id,
    pub partitions: Vec<(PartitionKey, PartitionOutcome)>,
}

/// Why a produce could not be parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParkError {
    #[error("{0} produces are already waiting for replication")]
    Full(usize),
}

#[derive(Debug)]
struct Waiting {
    deadline_ms: i64,
    /// Partition, the offset its high watermark must exceed, and its outcome once known.
    partitions: Vec<(PartitionKey, i64, Option<PartitionOutcome>)>,
}

/// The produces waiting for replication on one broker.
#[derive(Debug)]
pub struct DelayedProduces<Id: Ord + Clone> {
    waiting: BTreeMap<Id, Waiting>,
    capacity: usize,
}

impl<Id: Ord + Clone> DelayedProduces<Id> {
    /// At most `capacity` produces wait at once.
    pub fn new(capacity: usize) -> Self {
        DelayedProduces {
            waiting: BTreeMap::new(),
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Parks produce `id`: each partition must see its high watermark pass `last_offset`
    /// (the last offset of the batch it appended) before `deadline_ms`. Partitions whose high
    /// watermark is already there should not be parked; a produce with none left completes at
    /// once and needs no parking.
    pub fn park(
        &mut self,
        id: Id,
        deadline_ms: i64,
        partitions: Vec<(PartitionKey, i64)>,
    ) -> Result<(), ParkError> {
        if self.waiting.len() >= self.capacity {
            return Err(ParkError::Full(self.capacity));
        }
        let partitions = partitions
            .into_iter()
            .map(|(key, last_offset)| (key, last_offset, None))
            .collect();
        self.waiting.insert(
            id,
            Waiting {
                deadline_ms,
                partitions,
            },
        );
        Ok(())
    }

    /// `partition`'s high watermark moved to `high_watermark`.
    pub fn on_high_watermark(
        &mut self,
        partition: &PartitionKey,
        high_watermark: i64,
    ) -> Vec<Completed<Id>> {
        self.settle(partition, |last_offset| {
            (high_watermark > last_offset).then_some(PartitionOutcome::Replicated)
        })
    }

    /// `partition`'s ISR changed to `isr_size` members; below `min_insync_replicas` every
    /// produce still waiting on it fails (its records stay in the log, unacknowledged).
    pub fn on_isr_change(
        &mut self,
        partition: &PartitionKey,
        isr_size: usize,
        min_insync_replicas: usize,
    ) -> Vec<Completed<Id>> {
        if isr_size >= min_insync_replicas {
            return Vec::new();
        }
        self.settle(partition, |_| {
            Some(PartitionOutcome::NotEnoughReplicasAfterAppend)
        })
    }

    /// This broker no longer leads `partition`.
    pub fn on_leadership_lost(&mut self, partition: &PartitionKey) -> Vec<Completed<Id>> {
        self.settle(partition, |_| Some(PartitionOutcome::NotLeader))
    }

    /// The earliest deadline of a parked produce, for the shell's timer.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.waiting.values().map(|w| w.deadline_ms).min()
    }

    /// Produces whose deadline is at or before `now_ms` complete; partitions still waiting
    /// time out.
    pub fn on_tick(&mut self, now_ms: i64) -> Vec<Completed<Id>> {
        let due: Vec<Id> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.deadline_ms <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        due.into_iter()
            .filter_map(|id| {
                let w = self.waiting.remove(&id)?;
                Some(complete(id, w, PartitionOutcome::TimedOut))
            })
            .collect()
    }

    /// Sets the outcome `decide` gives every waiting entry of `partition` and completes the
    /// produces that have no partition left waiting.
    fn settle(
        &mut self,
        partition: &PartitionKey,
        decide: impl Fn(i64) -> Option<PartitionOutcome>,
    ) -> Vec<Completed<Id>> {
        let mut done = Vec::new();
        for (id, w) in &mut self.waiting {
            let mut touched = false;
            for (key, last_offset, outcome) in &mut w.partitions {
                if outcome.is_none() && key == partition {
                    *outcome = decide(*last_offset);
                    touched |= outcome.is_some();
                }
            }
            if touched && w.partitions.iter().all(|(_, _, o)| o.is_some()) {
                done.push(id.clone());
            }
        }
        done.into_iter()
            .filter_map(|id| {
                let w = self.waiting.remove(&id)?;
                Some(complete(id, w, PartitionOutcome::TimedOut))
            })
            .collect()
    }
}

/// A finished produce; partitions without an outcome get `unset`.
fn complete<Id>(id: Id, w: Waiting, unset: PartitionOutcome) -> Completed<Id> {
    Completed {
        id,
        partitions: w
            .partitions
            .into_iter()
            .map(|(key, _, outcome)| (key, outcome.unwrap_or(unset)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(topic: &str, partition: i32) -> PartitionKey {
        (topic.to_string(), partition)
    }

    #[test]
    fn a_produce_completes_when_every_partition_is_replicated() {
        let mut d = DelayedProduces::new(10);
        d.park(1, 30_000, vec![(key("a", 0), 9), (key("a", 1), 4)])
            .unwrap();
        assert!(
            d.on_high_watermark(&key("a", 0), 9).is_empty(),
            "9 not passed"
        );
        assert!(
            d.on_high_watermark(&key("a", 0), 10).is_empty(),
            "a-1 waits"
        );
        let done = d.on_high_watermark(&key("a", 1), 7);
        assert_eq!(
            done,
            vec![Completed {
                id: 1,
                partitions: vec![
                    (key("a", 0), PartitionOutcome::Replicated),
                    (key("a", 1), PartitionOutcome::Replicated)
                ]
            }]
        );
        assert!(d.is_empty());
    }

    #[test]
    fn isr_below_min_fails_the_waiting_partitions_after_the_append() {
        let mut d = DelayedProduces::new(10);
        d.park(1, 30_000, vec![(key("a", 0), 9)]).unwrap();
        d.park(2, 30_000, vec![(key("a", 0), 12), (key("b", 0), 3)])
            .unwrap();
        assert!(
            d.on_isr_change(&key("a", 0), 2, 2).is_empty(),
            "still enough"
        );
        let done = d.on_isr_change(&key("a", 0), 1, 2);
        assert_eq!(done.len(), 1, "produce 2 still waits for b-0");
        assert_eq!(
            done[0].partitions,
            vec![(key("a", 0), PartitionOutcome::NotEnoughReplicasAfterAppend)]
        );
        let done = d.on_high_watermark(&key("b", 0), 4);
        assert_eq!(
            done[0].partitions,
            vec![
                (key("a", 0), PartitionOutcome::NotEnoughReplicasAfterAppend),
                (key("b", 0), PartitionOutcome::Replicated)
            ]
        );
    }

    #[test]
    fn leadership_loss_and_timeouts_end_the_wait() {
        let mut d = DelayedProduces::new(10);
        d.park(1, 5_000, vec![(key("a", 0), 9), (key("a", 1), 9)])
            .unwrap();
        d.park(2, 9_000, vec![(key("a", 1), 20)]).unwrap();
        assert_eq!(d.next_deadline_ms(), Some(5_000));
        assert!(d.on_leadership_lost(&key("a", 0)).is_empty());
        assert!(d.on_tick(4_999).is_empty());
        let done = d.on_tick(5_000);
        assert_eq!(
            done,
            vec![Completed {
                id: 1,
                partitions: vec![
                    (key("a", 0), PartitionOutcome::NotLeader),
                    (key("a", 1), PartitionOutcome::TimedOut)
                ]
            }]
        );
        let done = d.on_leadership_lost(&key("a", 1));
        assert_eq!(
            done[0].partitions,
            vec![(key("a", 1), PartitionOutcome::NotLeader)]
        );
        assert_eq!(d.next_deadline_ms(), None);
    }

    #[test]
    fn the_purgatory_is_bounded() {
        let mut d = DelayedProduces::new(2);
        d.park(1, 1, vec![(key("a", 0), 0)]).unwrap();
        d.park(2, 1, vec![(key("a", 0), 0)]).unwrap();
        assert_eq!(
            d.park(3, 1, vec![(key("a", 0), 0)]),
            Err(ParkError::Full(2))
        );
        assert_eq!(d.on_high_watermark(&key("a", 0), 1).len(), 2);
        assert!(d.park(3, 1, vec![(key("a", 0), 0)]).is_ok());
    }
}

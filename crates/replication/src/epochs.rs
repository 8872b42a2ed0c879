//! A log's leader epoch history and Kafka's lookups on it.
//!
//! The history is the content of `leader-epoch-checkpoint`: for each leader epoch that wrote to
//! the log, the first offset it wrote. Entries ascend in both epoch and start offset. The two
//! lookups are Kafka's `LeaderEpochFileCache.endOffsetFor` (what OffsetForLeaderEpoch answers,
//! and what a follower truncates to) and the leader's check of a follower fetch's
//! `last_fetched_epoch` (Kafka's `Partition.validateFetchOffsetAndMaybeGetDivergingEpoch`):
//! together they replace truncation to the high watermark, which lost acknowledged records
//! before KIP-101.

use crate::{UNDEFINED_EPOCH, UNDEFINED_OFFSET};

/// The first offset a leader epoch wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochStart {
    pub epoch: i32,
    pub start_offset: i64,
}

/// An epoch and the offset its log ends at, as OffsetForLeaderEpoch and Fetch's
/// `diverging_epoch` carry them; [`UNDEFINED_EPOCH`] / [`UNDEFINED_OFFSET`] when unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEndOffset {
    pub epoch: i32,
    pub end_offset: i64,
}

impl EpochEndOffset {
    pub const UNDEFINED: EpochEndOffset = EpochEndOffset {
        epoch: UNDEFINED_EPOCH,
        end_offset: UNDEFINED_OFFSET,
    };
}

/// Why a history was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpochHistoryError {
    #[error("leader epochs must ascend: {earlier:?} before {later:?}")]
    NotAscending {
        earlier: EpochStart,
        later: EpochStart,
    },
    #[error("a leader epoch cannot be negative: {0:?}")]
    Negative(EpochStart),
}

/// A log's leader epoch history, ascending in epoch and start offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochHistory {
    entries: Vec<EpochStart>,
}

impl EpochHistory {
    /// A history from `leader-epoch-checkpoint` entries, which must ascend strictly in epoch
    /// and not descend in start offset.
    pub fn new(entries: Vec<EpochStart>) -> Result<EpochHistory, EpochHistoryError> {
        if let Some(e) = entries.iter().find(|e| e.epoch < 0 || e.start_offset < 0) {
            return Err(EpochHistoryError::Negative(*e));
        }
        if let Some(w) = entries
            .windows(2)
            .find(|w| w[1].epoch <= w[0].epoch || w[1].start_offset < w[0].start_offset)
        {
            return Err(EpochHistoryError::NotAscending {
                earlier: w[0],
                later: w[1],
            });
        }
        Ok(EpochHistory { entries })
    }

    pub fn entries(&self) -> &[EpochStart] {
        &self.entries
    }

    pub fn latest(&self) -> Option<EpochStart> {
        self.entries.last().copied()
    }

    /// The start offset of `epoch` if it wrote to the log.
    pub fn start_offset_of(&self, epoch: i32) -> Option<i64> {
        self.entries
            .iter()
            .find(|e| e.epoch == epoch)
            .map(|e| e.start_offset)
    }

    /// Kafka's `endOffsetFor(epoch, logEndOffset)`: the log end offset for the latest epoch;
    /// for an older one, the start offset of the first later epoch, paired with the largest
    /// epoch at or below the one asked for (the one asked for itself if it is older than the
    /// whole history); [`EpochEndOffset::UNDEFINED`] for an epoch newer than the history, for
    /// [`UNDEFINED_EPOCH`] and for an empty history.
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> EpochEndOffset {
        if epoch == UNDEFINED_EPOCH {
            return EpochEndOffset::UNDEFINED;
        }
        match self.latest() {
            None => return EpochEndOffset::UNDEFINED,
            Some(latest) if latest.epoch == epoch => {
                return EpochEndOffset {
                    epoch,
                    end_offset: log_end_offset,
                }
            }
            Some(_) => {}
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > epoch) else {
            return EpochEndOffset::UNDEFINED;
        };
        let floor = self.entries.iter().rev().find(|e| e.epoch <= epoch);
        EpochEndOffset {
            epoch: floor.map_or(epoch, |f| f.epoch),
            end_offset: higher.start_offset,
        }
    }

    /// The leader's check of a follower fetch at `fetch_offset` whose last fetched batch had
    /// `last_fetched_epoch`: `Some` with where the follower's log diverges from this one when
    /// this log's history ends that epoch earlier, or does not know it; `None` when the fetch
    /// may proceed.
    pub fn diverging_epoch(
        &self,
        last_fetched_epoch: i32,
        fetch_offset: i64,
        log_end_offset: i64,
    ) -> Option<EpochEndOffset> {
        let end = self.end_offset_for(last_fetched_epoch, log_end_offset);
        (end.epoch < last_fetched_epoch || end.end_offset < fetch_offset).then_some(end)
    }

    /// Records that `epoch` starts writing at `start_offset` (a leader's first append of its
    /// epoch, or a follower copying the leader's batches). An epoch that is already the latest
    /// is left as it is; entries this one supersedes (a higher or equal epoch, or a start at or
    /// after this one's) are dropped first, as Kafka's `assign` does when a log was rewritten.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) {
        if self.latest().is_some_and(|l| l.epoch == epoch) {
            return;
        }
        self.entries
            .retain(|e| e.epoch < epoch && e.start_offset < start_offset);
        self.entries.push(EpochStart {
            epoch,
            start_offset,
        });
    }

    /// Forgets every epoch that starts at or after `end_offset` (the log was truncated there).
    pub fn truncate_from_end(&mut self, end_offset: i64) {
        self.entries.retain(|e| e.start_offset < end_offset);
    }
}

/// Histories and answers written as `(epoch, offset)` pairs, for the crate's tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub(crate) fn history(entries: &[(i32, i64)]) -> EpochHistory {
        EpochHistory::new(
            entries
                .iter()
                .map(|&(epoch, start_offset)| EpochStart {
                    epoch,
                    start_offset,
                })
                .collect(),
        )
        .expect("an ascending history")
    }

    pub(crate) fn eo(epoch: i32, end_offset: i64) -> EpochEndOffset {
        EpochEndOffset { epoch, end_offset }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{eo, history};
    use super::*;

    #[test]
    fn histories_must_ascend() {
        assert!(EpochHistory::new(vec![
            EpochStart {
                epoch: 2,
                start_offset: 0
            },
            EpochStart {
                epoch: 2,
                start_offset: 5
            },
        ])
        .is_err());
        assert!(EpochHistory::new(vec![
            EpochStart {
                epoch: 1,
                start_offset: 5
            },
            EpochStart {
                epoch: 2,
                start_offset: 4
            },
        ])
        .is_err());
        assert!(EpochHistory::new(vec![EpochStart {
            epoch: -1,
            start_offset: 0
        }])
        .is_err());
        // Two epochs may start at the same offset (the first wrote nothing).
        assert!(EpochHistory::new(vec![
            EpochStart {
                epoch: 1,
                start_offset: 5
            },
            EpochStart {
                epoch: 3,
                start_offset: 5
            },
        ])
        .is_ok());
    }

    #[test]
    fn end_offsets_follow_kafkas_rule() {
        // Epoch 1 wrote [0, 10), epoch 3 wrote [10, 25), epoch 4 writes from 25; log end 30.
        let h = history(&[(1, 0), (3, 10), (4, 25)]);
        assert_eq!(h.end_offset_for(4, 30), eo(4, 30));
        assert_eq!(h.end_offset_for(3, 30), eo(3, 25));
        assert_eq!(h.end_offset_for(1, 30), eo(1, 10));
        // An epoch that never wrote ends where the next one starts, under the floor epoch.
        assert_eq!(h.end_offset_for(2, 30), eo(1, 10));
        // Older than the whole history: the asked epoch, ending at the first start.
        assert_eq!(history(&[(5, 100)]).end_offset_for(2, 130), eo(2, 100));
        // Newer than the history, undefined, or nothing known.
        assert_eq!(h.end_offset_for(7, 30), EpochEndOffset::UNDEFINED);
        assert_eq!(
            h.end_offset_for(UNDEFINED_EPOCH, 30),
            EpochEndOffset::UNDEFINED
        );
        assert_eq!(
            EpochHistory::default().end_offset_for(1, 0),
            EpochEndOffset::UNDEFINED
        );
    }

    #[test]
    fn a_follower_that_fetched_a_lost_tail_is_told_where_to_truncate() {
        // The leader's log: epoch 1 [0, 10), epoch 3 from 10. The follower had epoch 1 up to 14
        // (written by the old leader, never committed) and fetches at 14 with last epoch 1.
        let h = history(&[(1, 0), (3, 10)]);
        assert_eq!(h.diverging_epoch(1, 14, 20), Some(eo(1, 10)));
        // A follower that stopped exactly at the end of epoch 1 just continues.
        assert_eq!(h.diverging_epoch(1, 10, 20), None);
        // A follower on the current epoch continues.
        assert_eq!(h.diverging_epoch(3, 18, 20), None);
        // An epoch the leader never had: diverges at the floor epoch's end.
        assert_eq!(h.diverging_epoch(2, 12, 20), Some(eo(1, 10)));
    }

    #[test]
    fn assign_and_truncate_keep_the_history_ascending() {
        let mut h = history(&[(1, 0), (3, 10)]);
        h.assign(3, 12);
        assert_eq!(h, history(&[(1, 0), (3, 10)]));
        h.assign(5, 20);
        assert_eq!(h, history(&[(1, 0), (3, 10), (5, 20)]));
        // A rewrite from 15 by epoch 6 drops epoch 5's entry.
        h.assign(6, 15);
        assert_eq!(h, history(&[(1, 0), (3, 10), (6, 15)]));
        h.truncate_from_end(10);
        assert_eq!(h, history(&[(1, 0)]));
        assert_eq!(h.start_offset_of(1), Some(0));
        assert_eq!(h.start_offset_of(3), None);
    }
}

//! One partition on a follower: where to truncate when the leader says the logs diverge, and
//! the follower's high watermark.
//!
//! Truncation follows Kafka's `AbstractFetcherThread.getOffsetTruncationState` (KIP-101 and
//! KIP-279): never to the high watermark (which lost acknowledged records when a follower
//! truncated to it and then became leader), but to where the leader's epoch history and the
//! follower's own agree. When the follower does not know the epoch the leader answered with, it
//! truncates to what both logs could share and asks again (`complete: false`), which is what
//! makes fast alternating leader changes converge.

use crate::epochs::{EpochEndOffset, EpochHistory};
use crate::UNDEFINED_EPOCH;

/// Where to truncate the follower's log, and whether the logs now agree or another
/// OffsetForLeaderEpoch round (or diverging-epoch fetch) is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    pub offset: i64,
    pub complete: bool,
}

/// The truncation for the leader's answer `leader` (a Fetch `diverging_epoch`, or an
/// OffsetForLeaderEpoch answer for the follower's latest epoch), given the follower's epoch
/// `history`, its log end and its high watermark. `None` when the leader's answer is undefined
/// (it has no epoch at or below the one asked about): the follower then keeps its log and
/// fetches on, as Kafka does for a leader without epoch information.
pub fn truncation(
    history: &EpochHistory,
    log_end_offset: i64,
    leader: EpochEndOffset,
) -> Option<Truncation> {
    if leader.end_offset < 0 {
        return None;
    }
    if leader.epoch == UNDEFINED_EPOCH {
        // The leader's history starts after everything the follower asked about.
        return Some(Truncation {
            offset: leader.end_offset.min(log_end_offset),
            complete: true,
        });
    }
    let local = history.end_offset_for(leader.epoch, log_end_offset);
    if local.end_offset < 0 {
        // The follower's history starts after the leader's epoch: keep nothing it cannot vouch
        // for beyond the leader's end.
        return Some(Truncation {
            offset: leader.end_offset.min(log_end_offset),
            complete: true,
        });
    }
    Some(Truncation {
        offset: leader.end_offset.min(local.end_offset).min(log_end_offset),
        // The follower's floor epoch differs from the leader's: its log up to the truncation
        // point was written by an epoch the leader did not answer for, so ask again from there.
        complete: local.epoch == leader.epoch,
    })
}

/// The follower's high watermark after a fetch: the leader's, but never beyond what the
/// follower has (Kafka's `min(leader high watermark, log end offset)`).
pub fn follower_high_watermark(leader_high_watermark: i64, log_end_offset: i64) -> i64 {
    leader_high_watermark.min(log_end_offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epochs::test_support::{eo, history};

    #[test]
    fn kip_101_the_follower_keeps_what_the_leader_has_beyond_the_high_watermark() {
        // Both replicas have epoch 1 [0, 10); the follower's high watermark is only 8. The leader
        // (epoch 2 from 10) says epoch 1 ends at 10: the follower keeps offsets 8 and 9, which
        // truncating to the high watermark would have lost.
        let follower = history(&[(1, 0)]);
        assert_eq!(
            truncation(&follower, 10, eo(1, 10)),
            Some(Truncation {
                offset: 10,
                complete: true
            })
        );
    }

    #[test]
    fn a_tail_the_new_leader_never_had_is_cut() {
        // The follower (old leader) wrote epoch 1 up to 14; the new leader's epoch 1 ended at 10.
        let follower = history(&[(1, 0)]);
        assert_eq!(
            truncation(&follower, 14, eo(1, 10)),
            Some(Truncation {
                offset: 10,
                complete: true
            })
        );
    }

    #[test]
    fn kip_279_an_epoch_the_follower_never_saw_takes_another_round() {
        // The follower has epochs 1 [0, 5) and 3 [5, 12); the leader answers epoch 2 ends at 8
        // (the follower never saw epoch 2). Truncate to the follower's floor for 2 (epoch 1,
        // ending at 5) and ask again.
        let follower = history(&[(1, 0), (3, 5)]);
        assert_eq!(
            truncation(&follower, 12, eo(2, 8)),
            Some(Truncation {
                offset: 5,
                complete: false
            })
        );
    }

    #[test]
    fn undefined_answers() {
        let follower = history(&[(4, 20)]);
        // The leader knows nothing at or below the epoch: keep the log.
        assert_eq!(truncation(&follower, 30, EpochEndOffset::UNDEFINED), None);
        // The leader's history starts later: truncate to its end.
        assert_eq!(
            truncation(&follower, 30, eo(UNDEFINED_EPOCH, 25)),
            Some(Truncation {
                offset: 25,
                complete: true
            })
        );
        // The follower's history starts after the leader's epoch.
        assert_eq!(
            truncation(&follower, 30, eo(2, 18)),
            Some(Truncation {
                offset: 18,
                complete: true
            })
        );
    }

    #[test]
    fn the_truncation_never_passes_the_log_end() {
        let follower = history(&[(1, 0)]);
        assert_eq!(
            truncation(&follower, 6, eo(1, 10)).map(|t| t.offset),
            Some(6)
        );
        assert_eq!(follower_high_watermark(50, 40), 40);
        assert_eq!(follower_high_watermark(30, 40), 30);
    }
}

//! Replica placement for new partitions: Kafka's striped placer (`StripedReplicaPlacer`).
//!
//! Brokers are grouped by rack (`broker.rack`; brokers without one share the "no rack" group),
//! racks and the brokers within each are shuffled, and partitions are laid out by walking the
//! racks round-robin from a moving offset: the first replica (the leader) always goes to an
//! unfenced broker, the others prefer unfenced brokers of the following racks and fall back to
//! fenced ones. Brokers in controlled shutdown are never used. After as many partitions as there
//! are unfenced brokers, everything is shuffled again so that large topics do not repeat one
//! pattern.
//!
//! Placement runs inside apply (see [`crate::command`]), from the image at the command's log
//! position and a seed the proposer drew, so every node computes the same replicas. The
//! shuffles use [`SplitMix64`] seeded from that seed, never a global random source.

use std::collections::BTreeMap;

use crate::image::MetadataImage;

/// A small, seedable pseudo-random generator (SplitMix64). Deterministic across platforms and
/// versions, which is what apply needs; not for anything secret.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (`bound > 0`); the tiny modulo bias is irrelevant for placement.
    pub fn below(&mut self, bound: usize) -> usize {
        if bound == 0 {
            return 0;
        }
        (self.next_u64() % bound as u64) as usize
    }

    /// Fisher-Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// Why replicas cannot be placed; Kafka answers INVALID_REPLICATION_FACTOR with these messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("Invalid replication factor {0}: the replication factor must be positive.")]
    NotPositive(i16),
    #[error("The target replication factor of {replication_factor} cannot be reached because only {registered} broker(s) are registered.")]
    TooFewBrokers {
        replication_factor: i16,
        registered: usize,
    },
    #[error("All brokers are currently fenced.")]
    AllFenced,
}

/// One rack's brokers, in the order the walk visits them from a rotating offset.
#[derive(Debug, Default)]
struct BrokerList {
    brokers: Vec<i32>,
    epoch: u32,
    index: usize,
    offset: usize,
}

impl BrokerList {
    /// The next broker of this pass (`epoch`), or `None` once each was handed out.
    fn next(&mut self, epoch: u32) -> Option<i32> {
        if self.brokers.is_empty() {
            return None;
        }
        if self.epoch != epoch {
            self.epoch = epoch;
            self.index = 0;
            self.offset = (self.offset + 1) % self.brokers.len();
        }
        if self.index >= self.brokers.len() {
            return None;
        }
        let broker = self.brokers[(self.index + self.offset) % self.brokers.len()];
        self.index += 1;
        Some(broker)
    }

    fn shuffle(&mut self, rng: &mut SplitMix64) {
        rng.shuffle(&mut self.brokers);
        self.offset = rng.below(self.brokers.len());
    }
}

#[derive(Debug, Default)]
struct Rack {
    unfenced: BrokerList,
    fenced: BrokerList,
}

impl Rack {
    fn next(&mut self, epoch: u32) -> Option<i32> {
        self.unfenced
            .next(epoch)
            .or_else(|| self.fenced.next(epoch))
    }
}

/// The racks of one placement run; state carries over from partition to partition.
#[derive(Debug)]
pub struct StripedPlacer {
    rng: SplitMix64,
    /// Rack names in walk order (`None`: brokers without a rack).
    order: Vec<Option<String>>,
    racks: BTreeMap<Option<String>, Rack>,
    total: usize,
    unfenced: usize,
    epoch: u32,
    offset: usize,
}

impl StripedPlacer {
    /// Collects the usable brokers of `image` (registered, not in controlled shutdown).
    pub fn new(image: &MetadataImage, seed: u64) -> Self {
        let mut racks: BTreeMap<Option<String>, Rack> = BTreeMap::new();
        let (mut total, mut unfenced) = (0, 0);
        for b in image.brokers().filter(|b| !b.in_controlled_shutdown) {
            let rack = racks.entry(b.rack.clone()).or_default();
            total += 1;
            if b.fenced {
                rack.fenced.brokers.push(b.node_id);
            } else {
                unfenced += 1;
                rack.unfenced.brokers.push(b.node_id);
            }
        }
        let mut placer = StripedPlacer {
            rng: SplitMix64::new(seed),
            order: racks.keys().cloned().collect(),
            racks,
            total,
            unfenced,
            epoch: 0,
            offset: 0,
        };
        placer.shuffle();
        placer
    }

    fn shuffle(&mut self) {
        self.rng.shuffle(&mut self.order);
        for rack in self.racks.values_mut() {
            rack.unfenced.shuffle(&mut self.rng);
            rack.fenced.shuffle(&mut self.rng);
        }
        self.offset = self.rng.below(self.order.len());
    }

    /// Checks that `replication_factor` replicas can be placed at all.
    pub fn check(&self, replication_factor: i16) -> Result<(), PlacementError> {
        if replication_factor <= 0 {
            return Err(PlacementError::NotPositive(replication_factor));
        }
        if replication_factor as usize > self.total {
            return Err(PlacementError::TooFewBrokers {
                replication_factor,
                registered: self.total,
            });
        }
        if self.unfenced == 0 {
            return Err(PlacementError::AllFenced);
        }
        Ok(())
    }

    /// The replicas of the next partition; the first is the preferred leader and is unfenced.
    pub fn place(&mut self, replication_factor: i16) -> Result<Vec<i32>, PlacementError> {
        self.check(replication_factor)?;
        // After one pass over every unfenced broker, reshuffle so patterns do not repeat (not
        // with a single one, whose pass would never end).
        if self.epoch as usize == self.unfenced && self.unfenced > 1 {
            self.shuffle();
            self.epoch = 0;
        }
        if self.offset >= self.order.len() {
            self.offset = 0;
        }
        let want = replication_factor as usize;
        let mut out = Vec::with_capacity(want);
        let racks = self.order.len();
        // The leader: the first unfenced broker found walking the racks from the offset. One
        // exists (checked), and each rack's list restarts per epoch, so this ends.
        let mut rack_index = self.offset;
        for _ in 0..racks.saturating_mul(2).max(1) {
            let name = &self.order[rack_index];
            if let Some(b) = self
                .racks
                .get_mut(name)
                .and_then(|r| r.unfenced.next(self.epoch))
            {
                out.push(b);
                break;
            }
            rack_index = (rack_index + 1) % racks;
        }
        if out.is_empty() {
            // Every unfenced list is used up for this epoch: start a new one.
            self.epoch = self.epoch.wrapping_add(1);
            return self.place(replication_factor);
        }
        let mut rack_index = self.offset;
        // Bounded: each pass over the racks hands out at least one broker not yet chosen
        // until `total >= want` brokers are used.
        let mut idle_passes = 0;
        while out.len() < want && idle_passes <= racks {
            rack_index = (rack_index + 1) % racks;
            let name = &self.order[rack_index];
            match self.racks.get_mut(name).and_then(|r| r.next(self.epoch)) {
                Some(b) if !out.contains(&b) => {
                    out.push(b);
                    idle_passes = 0;
                }
                _ => idle_passes += 1,
            }
        }
        if out.len() < want {
            return Err(PlacementError::TooFewBrokers {
                replication_factor,
                registered: self.total,
            });
        }
        self.epoch = self.epoch.wrapping_add(1);
        self.offset += 1;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{BrokerRegistration, MetadataRecord};
    use uuid::Uuid;

    fn image(brokers: &[(i32, Option<&str>, bool)]) -> MetadataImage {
        let mut image = MetadataImage::empty("c");
        for (i, (id, rack, fenced)) in brokers.iter().enumerate() {
            image.last_applied_index = i as u64 + 1;
            image.apply_record(&MetadataRecord::RegisterBroker(BrokerRegistration {
                node_id: *id,
                incarnation_id: Uuid::nil(),
                endpoints: vec![],
                rack: rack.map(str::to_string),
                fenced: *fenced,
            }));
        }
        image
    }

    #[test]
    fn single_replicas_spread_over_every_unfenced_broker() {
        let image = image(&[(1, None, false), (2, None, false), (3, None, false)]);
        for seed in 0..50 {
            let mut p = StripedPlacer::new(&image, seed);
            let mut counts = BTreeMap::new();
            for _ in 0..30 {
                let r = p.place(1).unwrap();
                *counts.entry(r[0]).or_insert(0) += 1;
            }
            assert_eq!(counts.len(), 3, "seed {seed}: {counts:?}");
            assert!(counts.values().all(|c| *c == 10), "seed {seed}: {counts:?}");
        }
    }

    #[test]
    fn leaders_are_never_fenced_and_fenced_brokers_fill_in() {
        let image = image(&[(1, None, true), (2, None, false), (3, None, true)]);
        let mut p = StripedPlacer::new(&image, 7);
        for _ in 0..20 {
            let r = p.place(3).unwrap();
            assert_eq!(r[0], 2);
            let mut sorted = r.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, vec![1, 2, 3]);
        }
        let all_fenced = self::image(&[(1, None, true)]);
        assert_eq!(
            StripedPlacer::new(&all_fenced, 1).place(1),
            Err(PlacementError::AllFenced)
        );
    }

    #[test]
    fn replicas_of_a_partition_span_racks() {
        let image = image(&[
            (1, Some("a"), false),
            (2, Some("a"), false),
            (3, Some("b"), false),
            (4, Some("b"), false),
        ]);
        let rack = |b: i32| if b <= 2 { "a" } else { "b" };
        let mut p = StripedPlacer::new(&image, 99);
        for _ in 0..40 {
            let r = p.place(2).unwrap();
            assert_ne!(rack(r[0]), rack(r[1]), "{r:?}");
        }
    }

    #[test]
    fn errors_carry_kafkas_messages() {
        let image = image(&[(1, None, false)]);
        let p = StripedPlacer::new(&image, 0);
        assert_eq!(
            p.check(3).unwrap_err().to_string(),
            "The target replication factor of 3 cannot be reached because only 1 broker(s) are registered."
        );
        assert_eq!(
            p.check(0).unwrap_err().to_string(),
            "Invalid replication factor 0: the replication factor must be positive."
        );
        let empty = MetadataImage::empty("c");
        assert!(matches!(
            StripedPlacer::new(&empty, 0).check(1),
            Err(PlacementError::TooFewBrokers { .. })
        ));
    }

    #[test]
    fn same_seed_same_placement() {
        let image = image(&[(1, None, false), (2, None, false), (3, None, false)]);
        let run = |seed| {
            let mut p = StripedPlacer::new(&image, seed);
            (0..12).map(|_| p.place(2).unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }
}

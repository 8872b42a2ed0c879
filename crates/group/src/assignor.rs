//! The server-side partition assignors of KIP-848 consumer groups (`group.consumer.assignors`):
//! `uniform` (Kafka's default) and `range`, as pure functions of the group's members, their
//! subscriptions and current target assignments, and the partition counts of the topics.
//!
//! The steps follow Kafka 4.1's `UniformHomogeneousAssignmentBuilder`,
//! `UniformHeterogeneousAssignmentBuilder` and `RangeAssignor` (docs/design/kip-848.md §6), with
//! one deliberate difference: Kafka walks members, topics and partitions in `HashMap`/`HashSet`
//! order, rafka in sorted order (member id, topic id, partition), so an assignment is
//! reproducible but not byte-identical to Kafka's. What clients rely on holds either way: every
//! subscribed partition goes to exactly one subscriber, a homogeneous `uniform` group is balanced
//! to within one partition, and `uniform` is sticky (a stable group keeps its assignment; a
//! member that joins takes only the surplus of the others). As in Kafka 4.1, neither assignor
//! uses racks.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// Partitions by topic id.
pub type TopicPartitions = BTreeMap<Uuid, BTreeSet<i32>>;

/// What an assignor knows of one member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberSpec {
    /// `group.instance.id` of a static member: `range` orders static members first by it.
    pub instance_id: Option<String>,
    /// The topics the member subscribes to, by name and by its regular expression, resolved to
    /// ids through the current metadata.
    pub subscribed: BTreeSet<Uuid>,
    /// The member's current target assignment (what the last assignment gave it).
    pub current: TopicPartitions,
}

/// Kafka's subscription type: whether every member subscribes to the same topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionType {
    Homogeneous,
    Heterogeneous,
}

impl SubscriptionType {
    /// Homogeneous when every member subscribes to the same set of topics (Kafka's rule for
    /// groups without regular expressions; the coordinator applies the regex refinement).
    pub fn of<'a>(mut subscriptions: impl Iterator<Item = &'a BTreeSet<Uuid>>) -> Self {
        let Some(first) = subscriptions.next() else {
            return SubscriptionType::Homogeneous;
        };
        if subscriptions.all(|s| s == first) {
            SubscriptionType::Homogeneous
        } else {
            SubscriptionType::Heterogeneous
        }
    }
}

/// A server-side assignor, by its Kafka name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    /// `uniform`: balanced first, then sticky.
    Uniform,
    /// `range`: each member takes a contiguous range of every topic it subscribes to, so
    /// co-partitioned topics stay together; recomputed from scratch each time.
    Range,
}

impl Assignor {
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "uniform" => Some(Assignor::Uniform),
            "range" => Some(Assignor::Range),
            _ => None,
        }
    }

    /// The new target assignment: every member of `members` (by member id) with its
    /// partitions, possibly none. `partition_count` gives a topic's partition count, `None`
    /// for a topic that no longer exists; such topics and partitions beyond the count are
    /// left out.
    pub fn assign(
        self,
        members: &BTreeMap<String, MemberSpec>,
        subscription_type: SubscriptionType,
        partition_count: impl Fn(&Uuid) -> Option<i32>,
    ) -> BTreeMap<String, TopicPartitions> {
        let topics = Topics::new(members, &partition_count);
        match (self, subscription_type) {
            (Assignor::Range, _) => range(members, &topics),
            (Assignor::Uniform, SubscriptionType::Homogeneous) => {
                uniform_homogeneous(members, &topics)
            }
            (Assignor::Uniform, SubscriptionType::Heterogeneous) => {
                uniform_heterogeneous(members, &topics)
            }
        }
    }
}

/// The subscribed topics that exist, with their partition counts.
struct Topics(BTreeMap<Uuid, i32>);

impl Topics {
    fn new(
        members: &BTreeMap<String, MemberSpec>,
        partition_count: &impl Fn(&Uuid) -> Option<i32>,
    ) -> Self {
        let mut counts = BTreeMap::new();
        for m in members.values() {
            for t in &m.subscribed {
                if let Some(n) = partition_count(t).filter(|n| *n > 0) {
                    counts.insert(*t, n);
                }
            }
        }
        Topics(counts)
    }

    fn count(&self, topic: &Uuid) -> Option<i32> {
        self.0.get(topic).copied()
    }

    /// Whether `member` may keep `topic`-`partition` from its current assignment.
    fn keepable(&self, member: &MemberSpec, topic: &Uuid, partition: i32) -> bool {
        member.subscribed.contains(topic)
            && self
                .count(topic)
                .is_some_and(|n| (0..n).contains(&partition))
    }
}

fn empty_assignment(members: &BTreeMap<String, MemberSpec>) -> BTreeMap<String, TopicPartitions> {
    members
        .keys()
        .map(|id| (id.clone(), TopicPartitions::new()))
        .collect()
}

fn add(assignment: &mut TopicPartitions, topic: Uuid, partition: i32) {
    assignment.entry(topic).or_default().insert(partition);
}

/// `range`: members with an instance id first (by instance id), then the others by member id;
/// per topic, `partitions / subscribers` each and one more for the first `partitions %
/// subscribers`, in that order.
fn range(
    members: &BTreeMap<String, MemberSpec>,
    topics: &Topics,
) -> BTreeMap<String, TopicPartitions> {
    let mut order: Vec<(&String, &MemberSpec)> = members.iter().collect();
    order.sort_by(
        |(a_id, a), (b_id, b)| match (&a.instance_id, &b.instance_id) {
            (Some(x), Some(y)) => x.cmp(y).then_with(|| a_id.cmp(b_id)),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => a_id.cmp(b_id),
        },
    );
    let mut out = empty_assignment(members);
    for (topic, count) in &topics.0 {
        let subscribers: Vec<&String> = order
            .iter()
            .filter(|(_, m)| m.subscribed.contains(topic))
            .map(|(id, _)| *id)
            .collect();
        let n = subscribers.len() as i32;
        if n == 0 {
            continue;
        }
        let (min, mut extra) = (count / n, count % n);
        let mut next = 0;
        for id in subscribers {
            let mut take = min;
            if extra > 0 {
                take += 1;
                extra -= 1;
            }
            let member = out.get_mut(id).expect("every member has an entry");
            for p in next..(next + take).min(*count) {
                add(member, *topic, p);
            }
            next += take;
        }
    }
    out
}

/// `uniform` when every member subscribes to the same topics: quotas of `P / M`, the first
/// `P % M` extra partitions to members that already hold more; each member keeps what it has up
/// to its quota, and the rest is handed out in order to members below theirs.
fn uniform_homogeneous(
    members: &BTreeMap<String, MemberSpec>,
    topics: &Topics,
) -> BTreeMap<String, TopicPartitions> {
    let mut out = empty_assignment(members);
    let m = members.len();
    if m == 0 {
        return out;
    }
    let total: usize = topics.0.values().map(|n| *n as usize).sum();
    let (min, mut extra) = (total / m, total % m);
    // Who holds what now, each partition once (a partition two members claim stays with the
    // first: a target assignment never has that, but the input is not trusted).
    let mut owned: BTreeSet<(Uuid, i32)> = BTreeSet::new();
    let mut kept_by: Vec<Vec<(Uuid, i32)>> = Vec::with_capacity(m);
    for member in members.values() {
        let mut kept = Vec::new();
        for (topic, partitions) in &member.current {
            for p in partitions {
                if topics.keepable(member, topic, *p) && owned.insert((*topic, *p)) {
                    kept.push((*topic, *p));
                }
            }
        }
        kept_by.push(kept);
    }
    let mut unassigned: Vec<(Uuid, i32)> = topics
        .0
        .iter()
        .flat_map(|(t, n)| (0..*n).map(move |p| (*t, p)))
        .filter(|tp| !owned.contains(tp))
        .collect();
    let mut unfilled: Vec<(usize, usize)> = Vec::new();
    for (i, kept) in kept_by.iter_mut().enumerate() {
        let mut quota = min;
        let mut took_extra = false;
        if extra > 0 {
            quota += 1;
            took_extra = true;
        }
        if kept.len() > quota {
            unassigned.extend(kept.drain(quota..));
        }
        let mut remaining = quota - kept.len();
        // Give the tentative extra back while enough members remain to take every extra: the
        // extras then stay with members that already hold more (fewer moves).
        if remaining > 0 && took_extra && m - i > extra {
            remaining -= 1;
            took_extra = false;
        }
        if took_extra {
            extra -= 1;
        }
        if remaining > 0 {
            unfilled.push((i, remaining));
        }
    }
    // Partitions given up are handed out after the never-owned ones, in order.
    let mut next = unassigned.into_iter();
    for (i, remaining) in unfilled {
        kept_by[i].extend(next.by_ref().take(remaining));
    }
    debug_assert!(next.next().is_none(), "quotas add up to every partition");
    for (member, kept) in out.values_mut().zip(kept_by) {
        for (t, p) in kept {
            add(member, t, p);
        }
    }
    out
}

/// `uniform` when members subscribe to different topics: keep what each member has of topics
/// it still subscribes to, give every unassigned partition to its least-loaded subscriber
/// (topics with the most partitions per subscriber first), then move partitions from the most
/// to the least loaded subscriber of each topic until they differ by at most one. Kafka stops
/// that after 16 passes; rafka goes on until a pass moves nothing, so a rerun on its own
/// output moves nothing either (every move takes a partition from a member with at least two
/// more than the receiver, so the sum of squared loads falls and the passes end).
fn uniform_heterogeneous(
    members: &BTreeMap<String, MemberSpec>,
    topics: &Topics,
) -> BTreeMap<String, TopicPartitions> {
    let ids: Vec<&String> = members.keys().collect();
    let specs: Vec<&MemberSpec> = members.values().collect();
    let mut load = vec![0usize; ids.len()];
    let mut owner: BTreeMap<(Uuid, i32), usize> = BTreeMap::new();
    for (i, member) in specs.iter().enumerate() {
        for (topic, partitions) in &member.current {
            for p in partitions {
                if topics.keepable(member, topic, *p) && !owner.contains_key(&(*topic, *p)) {
                    owner.insert((*topic, *p), i);
                    load[i] += 1;
                }
            }
        }
    }
    let subscribers: BTreeMap<Uuid, Vec<usize>> = topics
        .0
        .keys()
        .map(|t| {
            let s = (0..specs.len())
                .filter(|i| specs[*i].subscribed.contains(t))
                .collect();
            (*t, s)
        })
        .collect();
    // Kafka's topic order: partitions per subscriber descending, then fewer subscribers first,
    // then topic id.
    let mut order: Vec<Uuid> = topics.0.keys().copied().collect();
    order.sort_by(|a, b| {
        let (na, nb) = (topics.0[a] as u64, topics.0[b] as u64);
        let (sa, sb) = (subscribers[a].len() as u64, subscribers[b].len() as u64);
        (nb * sa).cmp(&(na * sb)).then(sa.cmp(&sb)).then(a.cmp(b))
    });
    let least_loaded = |load: &[usize], among: &[usize]| -> Option<usize> {
        among.iter().copied().min_by_key(|i| (load[*i], *i))
    };
    for topic in &order {
        for p in 0..topics.0[topic] {
            if owner.contains_key(&(*topic, p)) {
                continue;
            }
            if let Some(i) = least_loaded(&load, &subscribers[topic]) {
                owner.insert((*topic, p), i);
                load[i] += 1;
            }
        }
    }
    loop {
        let mut moved = false;
        for topic in &order {
            let subs = &subscribers[topic];
            if subs.len() < 2 {
                continue;
            }
            loop {
                // The most loaded subscriber that holds a partition of this topic gives its
                // highest one to the least loaded subscriber.
                let holders: BTreeSet<usize> = owner
                    .range((*topic, i32::MIN)..=(*topic, i32::MAX))
                    .map(|(_, i)| *i)
                    .collect();
                let Some(from) = holders.iter().copied().max_by_key(|i| (load[*i], *i)) else {
                    break;
                };
                let Some(to) = least_loaded(&load, subs) else {
                    break;
                };
                if load[from] <= load[to] + 1 {
                    break;
                }
                let (&(_, p), _) = owner
                    .range((*topic, i32::MIN)..=(*topic, i32::MAX))
                    .rev()
                    .find(|(_, i)| **i == from)
                    .expect("from holds a partition of the topic");
                owner.insert((*topic, p), to);
                load[from] -= 1;
                load[to] += 1;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let mut out = empty_assignment(members);
    for ((topic, p), i) in owner {
        add(
            out.get_mut(ids[i]).expect("every member has an entry"),
            topic,
            p,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn member(subscribed: &[u128]) -> MemberSpec {
        MemberSpec {
            subscribed: subscribed.iter().map(|t| topic(*t)).collect(),
            ..MemberSpec::default()
        }
    }

    fn counts(pairs: &[(u128, i32)]) -> impl Fn(&Uuid) -> Option<i32> {
        let map: BTreeMap<Uuid, i32> = pairs.iter().map(|(t, n)| (topic(*t), *n)).collect();
        move |t| map.get(t).copied()
    }

    fn sizes(a: &BTreeMap<String, TopicPartitions>) -> Vec<usize> {
        a.values()
            .map(|tp| tp.values().map(BTreeSet::len).sum())
            .collect()
    }

    fn run(
        assignor: Assignor,
        members: &BTreeMap<String, MemberSpec>,
        count: &impl Fn(&Uuid) -> Option<i32>,
    ) -> BTreeMap<String, TopicPartitions> {
        let kind = SubscriptionType::of(members.values().map(|m| &m.subscribed));
        let out = assignor.assign(members, kind, count);
        check_exactly_once(members, &out, count);
        out
    }

    /// Every partition of every subscribed topic goes to exactly one member, and only to a
    /// member that subscribes to its topic.
    fn check_exactly_once(
        members: &BTreeMap<String, MemberSpec>,
        out: &BTreeMap<String, TopicPartitions>,
        count: &impl Fn(&Uuid) -> Option<i32>,
    ) {
        assert_eq!(out.len(), members.len());
        let mut seen = BTreeSet::new();
        for (id, tp) in out {
            for (t, ps) in tp {
                assert!(
                    members[id].subscribed.contains(t),
                    "{id} got unsubscribed {t}"
                );
                for p in ps {
                    assert!(seen.insert((*t, *p)), "{t}-{p} assigned twice");
                }
            }
        }
        let wanted: BTreeSet<(Uuid, i32)> = members
            .values()
            .flat_map(|m| m.subscribed.iter())
            .filter_map(|t| count(t).map(|n| (*t, n)))
            .flat_map(|(t, n)| (0..n).map(move |p| (t, p)))
            .collect();
        assert_eq!(seen, wanted);
    }

    fn with_current(
        members: &BTreeMap<String, MemberSpec>,
        out: &BTreeMap<String, TopicPartitions>,
    ) -> BTreeMap<String, MemberSpec> {
        members
            .iter()
            .map(|(id, m)| {
                let mut m = m.clone();
                m.current = out[id].clone();
                (id.clone(), m)
            })
            .collect()
    }

    #[test]
    fn names() {
        for a in [Assignor::Uniform, Assignor::Range] {
            assert_eq!(Assignor::from_name(a.name()), Some(a));
        }
        assert_eq!(Assignor::from_name("sticky"), None);
    }

    #[test]
    fn uniform_balances_a_homogeneous_group_and_keeps_it_when_nothing_changes() {
        let count = counts(&[(1, 7), (2, 3)]);
        let members: BTreeMap<String, MemberSpec> = ["a", "b", "c"]
            .iter()
            .map(|id| (id.to_string(), member(&[1, 2])))
            .collect();
        let first = run(Assignor::Uniform, &members, &count);
        let mut s = sizes(&first);
        s.sort_unstable();
        assert_eq!(s, vec![3, 3, 4]);
        let again = run(Assignor::Uniform, &with_current(&members, &first), &count);
        assert_eq!(again, first, "a stable group keeps its assignment");
    }

    #[test]
    fn uniform_gives_a_joiner_only_the_surplus_and_a_leaver_s_partitions_to_the_rest() {
        let count = counts(&[(1, 12)]);
        let three: BTreeMap<String, MemberSpec> = ["a", "b", "c"]
            .iter()
            .map(|id| (id.to_string(), member(&[1])))
            .collect();
        let before = run(Assignor::Uniform, &three, &count);
        let mut four = with_current(&three, &before);
        four.insert("d".into(), member(&[1]));
        let after = run(Assignor::Uniform, &four, &count);
        assert_eq!(sizes(&after), vec![3, 3, 3, 3]);
        for id in ["a", "b", "c"] {
            let kept = after[id][&topic(1)].is_subset(&before[id][&topic(1)]);
            assert!(kept, "{id} was given a partition another member had");
        }

        let mut back = with_current(&four, &after);
        back.remove("b");
        let left = run(Assignor::Uniform, &back, &count);
        assert_eq!(sizes(&left), vec![4, 4, 4]);
        for id in ["a", "c", "d"] {
            assert!(
                after[id][&topic(1)].is_subset(&left[id][&topic(1)]),
                "{id} lost one"
            );
        }
    }

    #[test]
    fn uniform_drops_deleted_topics_and_partitions_beyond_the_count() {
        let mut members: BTreeMap<String, MemberSpec> = BTreeMap::new();
        let mut a = member(&[1, 2]);
        a.current.insert(topic(1), [0, 1, 5].into());
        a.current.insert(topic(3), [0].into());
        members.insert("a".into(), a);
        members.insert("b".into(), member(&[1, 2]));
        // Topic 2 was deleted; topic 1 has 4 partitions (5 is gone); 3 is not subscribed.
        let out = run(Assignor::Uniform, &members, &counts(&[(1, 4)]));
        assert_eq!(out["a"][&topic(1)], [0, 1].into());
        assert_eq!(out["b"][&topic(1)], [2, 3].into());
    }

    #[test]
    fn uniform_balances_heterogeneous_subscriptions_where_it_can() {
        let count = counts(&[(1, 6), (2, 2)]);
        let mut members = BTreeMap::new();
        members.insert("a".to_string(), member(&[1]));
        members.insert("b".to_string(), member(&[1, 2]));
        let out = run(Assignor::Uniform, &members, &count);
        assert_eq!(sizes(&out), vec![4, 4]);
        assert_eq!(out["b"][&topic(2)], [0, 1].into());
        let again = run(Assignor::Uniform, &with_current(&members, &out), &count);
        assert_eq!(again, out, "a stable group keeps its assignment");
    }

    #[test]
    fn range_co_partitions_and_orders_static_members_first() {
        let count = counts(&[(1, 4), (2, 4), (3, 3)]);
        let mut members = BTreeMap::new();
        members.insert("a".to_string(), member(&[1, 2, 3]));
        let mut z = member(&[1, 2, 3]);
        z.instance_id = Some("static-1".into());
        members.insert("z".to_string(), z);
        let out = run(Assignor::Range, &members, &count);
        // "z" is static, so it comes first and takes the low ranges (and topic 3's extra).
        assert_eq!(out["z"][&topic(1)], [0, 1].into());
        assert_eq!(out["z"][&topic(2)], [0, 1].into());
        assert_eq!(out["z"][&topic(3)], [0, 1].into());
        assert_eq!(out["a"][&topic(1)], [2, 3].into());
        assert_eq!(out["a"][&topic(3)], [2].into());

        // Heterogeneous: topic 3 only for "a".
        members.get_mut("z").unwrap().subscribed.remove(&topic(3));
        let out = run(Assignor::Range, &members, &count);
        assert_eq!(out["a"][&topic(3)], [0, 1, 2].into());
    }

    #[test]
    fn more_members_than_partitions_leaves_some_empty() {
        let count = counts(&[(1, 2)]);
        let members: BTreeMap<String, MemberSpec> = ["a", "b", "c", "d"]
            .iter()
            .map(|id| (id.to_string(), member(&[1])))
            .collect();
        for a in [Assignor::Uniform, Assignor::Range] {
            let out = run(a, &members, &count);
            let mut s = sizes(&out);
            s.sort_unstable();
            assert_eq!(s, vec![0, 0, 1, 1], "{a:?}");
        }
    }

    /// A small seeded generator, so the randomized test replays.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, bound: u64) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) % bound.max(1)
        }
    }

    /// Random groups changing step by step (members join and leave, subscriptions and
    /// partition counts change): every assignment covers each partition once, homogeneous
    /// `uniform` stays balanced to one partition, and with nothing changed nothing moves.
    #[test]
    fn random_groups_keep_the_invariants() {
        for seed in 0..200 {
            let mut rng = Rng(seed);
            let mut partitions: BTreeMap<Uuid, i32> = (1..=4)
                .map(|t| (topic(t), 1 + rng.next(9) as i32))
                .collect();
            let mut members: BTreeMap<String, MemberSpec> = BTreeMap::new();
            let homogeneous = seed % 2 == 0;
            for step in 0..30 {
                match rng.next(4) {
                    0 => {
                        let subs: Vec<u128> = if homogeneous {
                            vec![1, 2, 3, 4]
                        } else {
                            (1..=4).filter(|_| rng.next(2) == 0).collect()
                        };
                        members.insert(format!("m{step}"), member(&subs));
                    }
                    1 if members.len() > 1 => {
                        let k = rng.next(members.len() as u64) as usize;
                        let id = members.keys().nth(k).cloned().expect("in range");
                        members.remove(&id);
                    }
                    2 => {
                        let t = topic(1 + u128::from(rng.next(4)));
                        *partitions.get_mut(&t).expect("topic") += 1;
                    }
                    _ => {}
                }
                let count = |t: &Uuid| partitions.get(t).copied();
                for a in [Assignor::Uniform, Assignor::Range] {
                    let out = run(a, &members, &count);
                    if a == Assignor::Uniform && homogeneous && !members.is_empty() {
                        let s = sizes(&out);
                        let (lo, hi) = (s.iter().min().unwrap(), s.iter().max().unwrap());
                        assert!(hi - lo <= 1, "seed {seed} step {step}: {s:?}");
                    }
                    let stable = with_current(&members, &out);
                    assert_eq!(
                        run(a, &stable, &count),
                        out,
                        "seed {seed} step {step} {a:?}"
                    );
                    if a == Assignor::Uniform {
                        members = stable;
                    }
                }
            }
        }
    }
}

//! Containers keyed by rank, whose operations cost the same at 8 workers as at 8,192: ranks are
//! small dense integers (MPI ranks, local worker numbers), so a rank is an index, not a key
//! searched in a tree.

use flywheel_protocol::Rank;

/// A map from rank to `V` in a vector indexed by rank; iteration is in rank order, as a
/// `BTreeMap<Rank, V>`'s.
#[derive(Debug)]
pub(super) struct RankMap<V> {
    slots: Vec<Option<(Rank, V)>>,
    len: usize,
}

impl<V> Default for RankMap<V> {
    fn default() -> Self {
        RankMap {
            slots: Vec::new(),
            len: 0,
        }
    }
}

impl<V> RankMap<V> {
    pub(super) fn get(&self, rank: &Rank) -> Option<&V> {
        match self.slots.get(rank.0 as usize) {
            Some(Some((_, v))) => Some(v),
            _ => None,
        }
    }

    pub(super) fn get_mut(&mut self, rank: &Rank) -> Option<&mut V> {
        match self.slots.get_mut(rank.0 as usize) {
            Some(Some((_, v))) => Some(v),
            _ => None,
        }
    }

    /// Files `v` under `rank`; the value it replaces, if any.
    pub(super) fn insert(&mut self, rank: Rank, v: V) -> Option<V> {
        let i = rank.0 as usize;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        let old = self.slots[i].replace((rank, v)).map(|(_, v)| v);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&Rank, &V)> {
        self.slots
            .iter()
            .filter_map(|s| s.as_ref().map(|(r, v)| (r, v)))
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &Rank> {
        self.iter().map(|(r, _)| r)
    }
}

/// A set of ranks as a two-level bitset: a bit per rank, and a summary bit per 64-rank word
/// that has any. Insert and remove touch two words; the first, last, next or previous member
/// is found in a few word scans (one summary word covers 4,096 ranks).
#[derive(Debug, Default, Clone)]
pub(super) struct RankSet {
    words: Vec<u64>,
    summary: Vec<u64>,
    len: usize,
}

impl RankSet {
    /// Adds `rank`; whether it was absent.
    pub(super) fn insert(&mut self, rank: Rank) -> bool {
        let (w, b) = split(rank.0 as usize);
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
            self.summary.resize(w / 64 + 1, 0);
        }
        if self.words[w] & (1 << b) != 0 {
            return false;
        }
        self.words[w] |= 1 << b;
        self.summary[w / 64] |= 1 << (w % 64);
        self.len += 1;
        true
    }

    /// Takes `rank` out; whether it was there.
    pub(super) fn remove(&mut self, rank: Rank) -> bool {
        let (w, b) = split(rank.0 as usize);
        match self.words.get_mut(w) {
            Some(word) if *word & (1 << b) != 0 => {
                *word &= !(1 << b);
                if *word == 0 {
                    self.summary[w / 64] &= !(1 << (w % 64));
                }
                self.len -= 1;
                true
            }
            _ => false,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    pub(super) fn first(&self) -> Option<Rank> {
        self.next_from(0)
    }

    pub(super) fn last(&self) -> Option<Rank> {
        self.prev_before(self.words.len() * 64)
    }

    /// The lowest member at or above `from`.
    pub(super) fn next_from(&self, from: usize) -> Option<Rank> {
        let (w, b) = split(from);
        let here = self.words.get(w)? & (u64::MAX << b);
        if here != 0 {
            return Some(rank_at(w, here.trailing_zeros()));
        }
        // The next word with members, through the summary.
        let (s, sb) = split(w + 1);
        let mut bits = self.summary.get(s).map_or(0, |x| x & (u64::MAX << sb));
        let mut s = s;
        loop {
            if bits != 0 {
                let word = s * 64 + bits.trailing_zeros() as usize;
                return Some(rank_at(word, self.words[word].trailing_zeros()));
            }
            s += 1;
            bits = *self.summary.get(s)?;
        }
    }

    /// The highest member below `before`.
    pub(super) fn prev_before(&self, before: usize) -> Option<Rank> {
        if before == 0 || self.words.is_empty() {
            return None;
        }
        let last = before - 1;
        let (mut w, b) = split(last);
        if w >= self.words.len() {
            w = self.words.len() - 1;
        } else {
            let here = self.words[w] & (u64::MAX >> (63 - b));
            if here != 0 {
                return Some(rank_at(w, 63 - here.leading_zeros()));
            }
            if w == 0 {
                return None;
            }
            w -= 1;
        }
        // The highest word at or below `w` with members, through the summary.
        let (mut s, sb) = split(w);
        let mut bits = self.summary[s] & (u64::MAX >> (63 - sb));
        loop {
            if bits != 0 {
                let word = s * 64 + (63 - bits.leading_zeros()) as usize;
                return Some(rank_at(word, 63 - self.words[word].leading_zeros()));
            }
            if s == 0 {
                return None;
            }
            s -= 1;
            bits = self.summary[s];
        }
    }

    /// The members in rank order.
    #[cfg(test)]
    fn iter(&self) -> impl Iterator<Item = Rank> + '_ {
        let mut next = self.first();
        std::iter::from_fn(move || {
            let r = next?;
            next = self.next_from(r.0 as usize + 1);
            Some(r)
        })
    }
}

/// The same members (however far each grew).
impl PartialEq for RankSet {
    fn eq(&self, other: &Self) -> bool {
        let word = |s: &RankSet, i: usize| s.words.get(i).copied().unwrap_or(0);
        self.len == other.len
            && (0..self.words.len().max(other.words.len())).all(|i| word(self, i) == word(other, i))
    }
}

impl Eq for RankSet {}

fn split(i: usize) -> (usize, u32) {
    (i / 64, (i % 64) as u32)
}

fn rank_at(word: usize, bit: u32) -> Rank {
    Rank((word * 64 + bit as usize) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    proptest! {
        /// The bitset answers as a `BTreeSet<Rank>` does, for any inserts and removes.
        #[test]
        fn rank_set_agrees_with_a_btree_set(
            ops in proptest::collection::vec((any::<bool>(), 0u32..10_000), 0..400),
            probes in proptest::collection::vec(0usize..10_100, 0..40),
        ) {
            let (mut set, mut model) = (RankSet::default(), BTreeSet::new());
            for (add, r) in ops {
                let got = if add { set.insert(Rank(r)) } else { set.remove(Rank(r)) };
                let want = if add { model.insert(Rank(r)) } else { model.remove(&Rank(r)) };
                prop_assert_eq!(got, want);
            }
            prop_assert_eq!(set.len(), model.len());
            let rebuilt = model.iter().fold(RankSet::default(), |mut s, r| { s.insert(*r); s });
            prop_assert_eq!(&set, &rebuilt);
            prop_assert_eq!(set.first(), model.first().copied());
            prop_assert_eq!(set.last(), model.last().copied());
            prop_assert_eq!(set.iter().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
            for p in probes {
                prop_assert_eq!(set.next_from(p), model.range(Rank(p as u32)..).next().copied());
                prop_assert_eq!(set.prev_before(p), model.range(..Rank(p as u32)).next_back().copied());
            }
        }

        /// The vector map answers as a `BTreeMap<Rank, _>` does, iteration order included.
        #[test]
        fn rank_map_agrees_with_a_btree_map(
            ops in proptest::collection::vec((0u32..300, any::<u8>()), 0..200),
        ) {
            let (mut map, mut model) = (RankMap::default(), BTreeMap::new());
            for (r, v) in ops {
                prop_assert_eq!(map.insert(Rank(r), v), model.insert(Rank(r), v));
                prop_assert_eq!(map.get(&Rank(r)), model.get(&Rank(r)));
            }
            prop_assert_eq!(map.len(), model.len());
            prop_assert_eq!(map.iter().collect::<Vec<_>>(), model.iter().collect::<Vec<_>>());
        }
    }
}

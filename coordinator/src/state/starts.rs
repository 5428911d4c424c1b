//! The speculation order: chunks running one started attempt, by (start, chunk). Starts arrive
//! in clock order, so an entry is almost always appended; one taken out is left in place and
//! skipped (its chunk is no longer filed under that start), the front is kept live, and the
//! whole is compacted when dead entries outnumber live ones by far. Every operation costs
//! amortised O(1), where a tree of the running chunks costs a search of thousands at scale.

use std::collections::VecDeque;
use std::time::Instant;

/// (start, chunk) keys, sorted; some dead (see the module's text).
#[derive(Debug, Default)]
pub(super) struct StartOrder {
    keys: VecDeque<(Instant, u32)>,
    live: usize,
}

impl StartOrder {
    /// Files `key` (which must not be live already).
    pub(super) fn insert(&mut self, key: (Instant, u32)) {
        self.live += 1;
        if self.keys.back().is_none_or(|last| *last <= key) {
            self.keys.push_back(key);
            return;
        }
        let at = self.keys.partition_point(|k| *k <= key);
        self.keys.insert(at, key);
    }

    /// Takes `key` (which is live) out: `is_live` already says no for it.
    pub(super) fn remove(&mut self, is_live: impl Fn(&(Instant, u32)) -> bool) {
        self.live -= 1;
        while self.keys.front().is_some_and(|k| !is_live(k)) {
            self.keys.pop_front();
        }
        if self.keys.len() > 4 * self.live + 1024 {
            self.keys.retain(&is_live);
            // A chunk filed again under the same start left a dead twin beside it.
            let mut keys: Vec<(Instant, u32)> = self.keys.drain(..).collect();
            keys.dedup();
            self.keys = keys.into();
        }
    }

    /// The live keys in order (dead twins of a live key skipped by `is_live` too, as they
    /// compare equal: callers that need each once dedup).
    pub(super) fn iter<'a>(
        &'a self,
        is_live: impl Fn(&(Instant, u32)) -> bool + 'a,
    ) -> impl Iterator<Item = (Instant, u32)> + 'a {
        self.keys.iter().copied().filter(move |k| is_live(k))
    }

    pub(super) fn live(&self) -> usize {
        self.live
    }
}

//! The indexes that keep every event's cost flat in workers and chunks: the speculation
//! candidate, the steal victim, the workers with room and the idle ones, and the order in which
//! workers were last heard (for the lost-worker check). Each is kept in step with the state by
//! [`Coordinator::reindex_worker`] and [`Coordinator::reindex_chunk`], called wherever a worker's
//! holding or state or a chunk's runs change; [`Coordinator::sanity_check`] rebuilds them from
//! the state and compares. Sets of workers are bitsets and the speculation order a queue in
//! start order (see [`super::ranks`], [`super::starts`]): an event costs the same at 8,192
//! workers as at 8.

use super::ranks::RankSet;
use super::starts::StartOrder;
use super::{Chunk, ChunkState, Coordinator};
use flywheel_protocol::{ChunkId, Rank};
use std::collections::BTreeSet;
use std::time::Instant;

/// Where a worker is filed in the indexes (what [`Coordinator::reindex_worker`] last did).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct WorkerKeys {
    /// Its holding, when it is a steal victim (not lost, holding more than one attempt).
    victim: Option<usize>,
    /// Usable, with room for another attempt.
    room: bool,
    /// Usable and holding nothing.
    idle: bool,
    usable: bool,
    gone: bool,
    lost: bool,
}

#[derive(Debug, Default)]
pub(super) struct Index {
    /// Chunks running exactly one attempt, started, by (start, chunk): the speculation
    /// candidate is the first (the earliest start, then the lowest chunk).
    pub(super) speculable: StartOrder,
    /// Steal victims by holding: `victims[h]` holds the workers holding `h` attempts; the
    /// victim is the highest rank of the highest holding.
    pub(super) victims: Vec<RankSet>,
    /// Usable workers holding fewer than `prefetch` attempts.
    pub(super) room: RankSet,
    /// Usable workers holding nothing.
    pub(super) idle: RankSet,
    /// One entry (when, rank) per usable worker, `when` no later than it was last heard: the
    /// lost-worker check looks only at entries past the timeout, and files again (at when it was
    /// last heard) a worker heard since. A message costs nothing here.
    pub(super) deadlines: BTreeSet<(Instant, Rank)>,
    pub(super) usable: usize,
    pub(super) gone: usize,
    pub(super) lost: usize,
}

impl Index {
    /// The steal victims from the most held, then the highest rank, down.
    pub(super) fn victims_down(&self) -> impl Iterator<Item = (usize, Rank)> + '_ {
        self.victims
            .iter()
            .enumerate()
            .rev()
            .flat_map(|(held, set)| {
                let mut before = set.last().map(|r| r.0 as usize + 1);
                std::iter::from_fn(move || {
                    let r = set.prev_before(before?)?;
                    before = Some(r.0 as usize);
                    Some((held, r))
                })
            })
    }

    fn victims_file(&mut self, held: usize, rank: Rank, member: bool) {
        if self.victims.len() <= held {
            self.victims.resize_with(held + 1, RankSet::default);
        }
        file(&mut self.victims[held], rank, member);
    }
}

/// Whether the chunk is filed under this start.
pub(super) fn filed(chunks: &[Chunk], &(t, i): &(Instant, u32)) -> bool {
    chunks
        .get(i as usize)
        .is_some_and(|c| c.spec_key == Some(t))
}

/// Adds `rank` to `set` or takes it out.
fn file(set: &mut RankSet, rank: Rank, member: bool) {
    if member {
        set.insert(rank);
    } else {
        set.remove(rank);
    }
}

impl Coordinator {
    /// Where a worker belongs in the indexes now.
    fn worker_keys(&self, rank: Rank) -> WorkerKeys {
        let Some(w) = self.workers.get(&rank) else {
            return WorkerKeys::default();
        };
        let (held, usable) = (w.holding.len(), w.usable());
        WorkerKeys {
            victim: (!w.state.is_lost() && held > 1).then_some(held),
            room: usable && held < self.cfg.prefetch,
            idle: usable && held == 0,
            usable,
            gone: w.state.is_gone(),
            lost: w.state.is_lost(),
        }
    }

    /// Files a worker anew after its holding or state changed.
    pub(super) fn reindex_worker(&mut self, rank: Rank) {
        let new = self.worker_keys(rank);
        let Some(w) = self.workers.get_mut(&rank) else {
            return;
        };
        if w.state.watched() && w.deadline.is_none() {
            w.deadline = Some(w.last_seen);
            self.index.deadlines.insert((w.last_seen, rank));
        }
        let old = std::mem::replace(&mut w.keys, new);
        if old == new {
            return;
        }
        let ix = &mut self.index;
        if old.victim != new.victim {
            if let Some(h) = old.victim {
                ix.victims_file(h, rank, false);
            }
            if let Some(h) = new.victim {
                ix.victims_file(h, rank, true);
            }
        }
        file(&mut ix.room, rank, new.room);
        file(&mut ix.idle, rank, new.idle);
        let count =
            |n: &mut usize, was: bool, is: bool| *n = *n + usize::from(is) - usize::from(was);
        count(&mut ix.usable, old.usable, new.usable);
        count(&mut ix.gone, old.gone, new.gone);
        count(&mut ix.lost, old.lost, new.lost);
    }

    /// When a chunk is a speculation candidate: it runs one attempt, started then.
    fn speculable_since(&self, id: ChunkId) -> Option<Instant> {
        match self.chunks.get(id.0 as usize).map(|c| &c.state) {
            Some(ChunkState::Running(runs)) if runs.len() == 1 => runs[0].started,
            _ => None,
        }
    }

    /// Files a chunk anew after its runs changed.
    pub(super) fn reindex_chunk(&mut self, id: ChunkId) {
        let new = self.speculable_since(id);
        let Some(c) = self.chunks.get_mut(id.0 as usize) else {
            return;
        };
        let old = std::mem::replace(&mut c.spec_key, new);
        if old == new {
            return;
        }
        if old.is_some() {
            let chunks = &self.chunks;
            self.index.speculable.remove(|k| filed(chunks, k));
        }
        if let Some(t) = new {
            self.index.speculable.insert((t, id.0));
        }
    }

    /// The indexes agree with the state (rebuilt from it and compared).
    pub(super) fn check_indexes(&self, bad: &mut Vec<String>) {
        let speculable: BTreeSet<(Instant, u32)> = (0..self.chunks.len() as u32)
            .filter_map(|i| self.speculable_since(ChunkId(i)).map(|t| (t, i)))
            .collect();
        let filed_keys: BTreeSet<(Instant, u32)> = self
            .index
            .speculable
            .iter(|k| filed(&self.chunks, k))
            .collect();
        if speculable != filed_keys || speculable.len() != self.index.speculable.live() {
            bad.push(format!(
                "the speculation index has {} chunk(s), the state {}",
                self.index.speculable.live(),
                speculable.len()
            ));
        }
        for (i, c) in self.chunks.iter().enumerate() {
            if c.spec_key != self.speculable_since(ChunkId(i as u32)) {
                bad.push(format!(
                    "{} is filed under the wrong start",
                    ChunkId(i as u32)
                ));
            }
        }
        let (mut victims, mut room, mut idle) =
            (Index::default(), RankSet::default(), RankSet::default());
        let (mut usable, mut gone, mut lost) = (0, 0, 0);
        for &rank in self.workers.keys() {
            let k = self.worker_keys(rank);
            if self.workers.get(&rank).is_some_and(|w| w.keys != k) {
                bad.push(format!("{rank} is filed as it was, not as it is"));
            }
            if let Some(h) = k.victim {
                victims.victims_file(h, rank, true);
            }
            file(&mut room, rank, k.room);
            file(&mut idle, rank, k.idle);
            usable += usize::from(k.usable);
            gone += usize::from(k.gone);
            lost += usize::from(k.lost);
        }
        let ix = &self.index;
        let agree =
            victims.victims_down().eq(ix.victims_down()) && room == ix.room && idle == ix.idle;
        if !agree || (usable, gone, lost) != (ix.usable, ix.gone, ix.lost) {
            bad.push(
                "the worker indexes (victims, room, idle, counts) disagree with the workers".into(),
            );
        }
        self.check_seen(bad);
    }

    /// Every watched (live or drained) worker has one deadline entry, no later than it was last
    /// heard.
    fn check_seen(&self, bad: &mut Vec<String>) {
        let filed: BTreeSet<(Instant, Rank)> = self
            .workers
            .iter()
            .filter_map(|(r, w)| w.deadline.map(|d| (d, *r)))
            .collect();
        if filed != self.index.deadlines {
            bad.push("the deadline entries disagree with the workers'".into());
        }
        for (rank, w) in self.workers.iter() {
            if w.state.watched() && w.deadline.is_none_or(|d| d > w.last_seen) {
                bad.push(format!(
                    "{rank} has no deadline entry no later than it was last heard"
                ));
            }
        }
    }
}

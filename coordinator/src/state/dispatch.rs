//! Dispatch: what a worker is given. Each holds up to `prefetch` attempts; an idle one steals a
//! chunk queued at another worker, else runs a copy of the in-flight chunk that began earliest.

use super::{ChunkState, Coordinator, Run, Runs};
use flywheel_protocol::{
    seed_for, Attempt, ChunkId, ChunkTask, Rank, ToWorker, Transport, TransportError,
};

impl Coordinator {
    /// Tops up every worker, in rank order: what filling each in turn would do, found through
    /// the indexes. While chunks are queued only workers with room take any; once the queue is
    /// empty only idle workers do (steal or speculate), and for an idle worker the candidates do
    /// not depend on which it is (it holds and runs nothing), so the first that finds none ends
    /// the round.
    pub(super) fn fill_all(&mut self, tx: &mut impl Transport) -> Result<(), TransportError> {
        if self.failure.is_some() || self.is_complete() || self.halted {
            return Ok(());
        }
        let mut from = 0;
        while !self.queue.is_empty() {
            let Some(rank) = self.index.room.next_from(from) else {
                break;
            };
            from = rank.0 as usize + 1;
            self.fill(tx, rank)?;
        }
        if !self.cfg.speculate {
            return Ok(());
        }
        while let Some(rank) = self.index.idle.first() {
            if !self.fill_idle(tx, rank)? {
                break;
            }
        }
        Ok(())
    }

    fn issue(
        &mut self,
        tx: &mut impl Transport,
        rank: Rank,
        id: ChunkId,
        speculative: bool,
    ) -> Result<(), TransportError> {
        let chunk = &mut self.chunks[id.0 as usize];
        chunk.attempts += 1;
        let attempt = Attempt(chunk.attempts);
        let run = Run {
            worker: rank,
            attempt,
            started: None,
            speculative,
        };
        match &mut chunk.state {
            ChunkState::Running(runs) => runs.push(run),
            _ => chunk.state = ChunkState::Running(Runs::from_elem(run, 1)),
        }
        let task = ChunkTask {
            chunk: id,
            attempt,
            seed: seed_for(
                self.cfg.seed_scheme,
                self.cfg.job_seed,
                &self.cfg.input_root,
                id,
                &chunk.slice,
            ),
            input: chunk.slice.clone(),
            schema: self.schema.clone(),
        };
        if let Some(w) = self.workers.get_mut(&rank) {
            w.holding.push_back((id, attempt));
        }
        self.reindex_worker(rank);
        self.reindex_chunk(id);
        if speculative {
            self.speculative_runs += 1;
        }
        tx.send(rank, ToWorker::Assign(task))
    }

    /// Tops up a worker's holding: from the queue, else (idle) by stealing or speculating.
    fn fill(&mut self, tx: &mut impl Transport, rank: Rank) -> Result<(), TransportError> {
        if self.failure.is_some() || self.is_complete() || self.halted {
            return Ok(());
        }
        let Some(w) = self.workers.get(&rank) else {
            return Ok(());
        };
        if !w.usable() {
            return Ok(());
        }
        let mut holding = w.holding.len();
        while holding < self.cfg.prefetch {
            let Some(id) = self.queue.pop_front() else {
                break;
            };
            self.issue(tx, rank, id, false)?;
            holding += 1;
        }
        if holding > 0 || !self.cfg.speculate {
            return Ok(());
        }
        self.fill_idle(tx, rank).map(|_| ())
    }

    /// An idle worker steals, else speculates; whether it was given anything.
    fn fill_idle(&mut self, tx: &mut impl Transport, rank: Rank) -> Result<bool, TransportError> {
        if let Some((victim, id, attempt)) = self.steal_candidate(rank) {
            // The victim drops it; if it has already begun, its result is discarded.
            if let ChunkState::Running(runs) = &mut self.chunks[id.0 as usize].state {
                runs.retain(|r| !(r.worker == victim && r.attempt == attempt));
            }
            self.forget(victim, id, attempt);
            tx.send(victim, ToWorker::Cancel { chunk: id, attempt })?;
            return self.issue(tx, rank, id, true).map(|()| true);
        }
        if let Some(id) = self.speculation_candidate(rank) {
            return self.issue(tx, rank, id, true).map(|()| true);
        }
        Ok(false)
    }

    /// A chunk queued (not started) at the worker holding the most, other than `thief`.
    fn steal_candidate(&self, thief: Rank) -> Option<(Rank, ChunkId, Attempt)> {
        let (_, victim) = self.index.victims_down().find(|(_, r)| *r != thief)?;
        self.workers
            .get(&victim)?
            .holding
            .iter()
            .rev()
            .find_map(|(id, attempt)| match &self.chunks[id.0 as usize].state {
                ChunkState::Running(runs)
                    if runs.len() == 1
                        && runs[0].attempt == *attempt
                        && runs[0].started.is_none() =>
                {
                    Some((victim, *id, *attempt))
                }
                _ => None,
            })
    }

    /// The in-flight chunk (one attempt, started) that began earliest, not run by `rank`.
    fn speculation_candidate(&self, rank: Rank) -> Option<ChunkId> {
        self.index
            .speculable
            .iter(|k| super::index::filed(&self.chunks, k))
            .map(|(_, i)| ChunkId(i))
            .find(|&id| match self.chunk_state(id) {
                Some(ChunkState::Running(runs)) => runs[0].worker != rank,
                _ => false,
            })
    }
}

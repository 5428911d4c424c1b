//! The invariants of the scheduling state, checked after every event by the unit tests
//! (`TestEnv`) and the simulator: cheap (linear in chunks and held attempts), so compiled in
//! every build.

use super::{ChunkState, Coordinator};
use flywheel_protocol::ChunkId;
use std::fmt;

/// The invariants a state breaks, one sentence each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SanityError(pub Vec<String>);

impl fmt::Display for SanityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the coordinator's state is inconsistent: ")?;
        f.write_str(&self.0.join("; "))
    }
}

impl std::error::Error for SanityError {}

impl Coordinator {
    /// Checks that the state agrees with itself: every held attempt is a run of its chunk and
    /// every run is held by its worker; the done count is the chunks done; nothing is held by
    /// a lost or drained worker; the queue holds each pending chunk once (while the job goes
    /// on) and nothing else; and no usable worker waits with room while chunks are queued.
    pub fn sanity_check(&self) -> Result<(), SanityError> {
        let mut bad = Vec::new();
        self.check_holdings(&mut bad);
        self.check_counts(&mut bad);
        self.check_queue(&mut bad);
        self.check_indexes(&mut bad);
        if bad.is_empty() {
            Ok(())
        } else {
            Err(SanityError(bad))
        }
    }

    /// Holdings and runs agree; nothing held by a lost or drained worker. (Linear: a holding
    /// is at most `prefetch` long and a chunk runs at most a few attempts.)
    fn check_holdings(&self, bad: &mut Vec<String>) {
        for (rank, w) in self.workers.iter() {
            if w.state.is_gone() && !w.holding.is_empty() {
                bad.push(format!(
                    "{rank} is {} but holds {} attempt(s)",
                    w.state,
                    w.holding.len()
                ));
            }
            for (i, &(chunk, attempt)) in w.holding.iter().enumerate() {
                if w.holding.iter().skip(i + 1).any(|h| *h == (chunk, attempt)) {
                    bad.push(format!("{rank} holds {chunk} {attempt} twice"));
                }
                let running = match self.chunks.get(chunk.0 as usize).map(|c| &c.state) {
                    Some(ChunkState::Running(runs)) => runs
                        .iter()
                        .any(|r| r.worker == *rank && r.attempt == attempt),
                    _ => false,
                };
                if !running {
                    bad.push(format!(
                        "{rank} holds {chunk} {attempt}, which is not running"
                    ));
                }
            }
        }
        for (i, c) in self.chunks.iter().enumerate() {
            let ChunkState::Running(runs) = &c.state else {
                continue;
            };
            let id = ChunkId(i as u32);
            if runs.is_empty() {
                bad.push(format!("{id} is running with no attempt"));
            }
            for r in runs {
                if r.attempt.0 > c.attempts {
                    bad.push(format!(
                        "{id} runs {} but issued {} attempt(s)",
                        r.attempt, c.attempts
                    ));
                }
                let held = self
                    .workers
                    .get(&r.worker)
                    .is_some_and(|w| w.holding.contains(&(id, r.attempt)));
                if !held {
                    bad.push(format!(
                        "{id} {} runs on {}, which does not hold it",
                        r.attempt, r.worker
                    ));
                }
            }
        }
    }

    /// The done count is the number of chunks done.
    fn check_counts(&self, bad: &mut Vec<String>) {
        let done = self
            .chunks
            .iter()
            .filter(|c| matches!(c.state, ChunkState::Done(_)))
            .count();
        if done != self.done {
            bad.push(format!(
                "{done} chunk(s) are done but the count says {}",
                self.done
            ));
        }
    }

    /// The queue holds pending chunks only, each once, and (while the job goes on) all of
    /// them; no usable worker has room while the queue is not empty.
    fn check_queue(&self, bad: &mut Vec<String>) {
        let mut queued = vec![false; self.chunks.len()];
        for &id in &self.queue {
            match queued.get_mut(id.0 as usize) {
                Some(q) if *q => bad.push(format!("{id} is queued twice")),
                Some(q) => *q = true,
                None => {}
            }
            match self.chunks.get(id.0 as usize).map(|c| &c.state) {
                Some(ChunkState::Pending) => {}
                Some(_) => bad.push(format!("{id} is queued but not pending")),
                None => bad.push(format!("{id} is queued but no such chunk exists")),
            }
        }
        let going_on = self.failure.is_none() && !self.halted;
        if !going_on {
            return;
        }
        for (i, c) in self.chunks.iter().enumerate() {
            let id = ChunkId(i as u32);
            if c.state == ChunkState::Pending && !queued[i] {
                bad.push(format!("{id} is pending but not queued"));
            }
        }
        if self.queue.is_empty() {
            return;
        }
        for (rank, w) in self.workers.iter() {
            if w.usable() && w.holding.len() < self.cfg.prefetch {
                bad.push(format!(
                    "{rank} holds {} of {} attempt(s) while {} chunk(s) are queued",
                    w.holding.len(),
                    self.cfg.prefetch,
                    self.queue.len()
                ));
            }
        }
    }
}

//! The scheduling state machine.
//!
//! Chunk lifecycle:
//!
//! ```text
//!            assign                   first Done (accepted; other attempts cancelled)
//! Pending ─────────────▶ Running ─────────────────────────────────────────▶ Done
//!    ▲                  (1 or 2 attempts: a steal or a speculative copy adds one)
//!    │   every attempt failed,  │
//!    └── failures < max ────────┘
//!                               │ failures == max_attempts, or the input is bad
//!                               ▼
//!                          job failed (nothing is published)
//! ```
//!
//! Dispatch: each worker holds up to `prefetch` attempts (one running, the rest queued behind
//! it) so it never waits for the coordinator between chunks; retried chunks go to the front of
//! the queue. When the queue is empty, an idle worker first *steals* a chunk another worker holds
//! but has not started (the holder is told to drop it), then *speculates*: it runs a second copy
//! of the in-flight chunk that started earliest. The first attempt to finish is accepted and the
//! other is cancelled; its output is never published. A worker that fails several chunks in a
//! row, or whose GPU reports errors, is drained: it gets no more chunks.

use crate::report::{JobReport, WorkerReport};
use flywheel_protocol::{
    chunk_seed, Attempt, ChunkId, ChunkOutput, ChunkTask, FailureKind, InputSlice, Rank,
    ToCoordinator, ToWorker, Transport, TransportError,
};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Scheduling settings.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Failed attempts a chunk may have before the job fails.
    pub max_attempts: u32,
    /// Chunks a worker holds at once (running + queued).
    pub prefetch: usize,
    /// A worker silent this long is declared lost and its chunks are re-queued.
    pub heartbeat_timeout: Duration,
    /// The job seed, from which each chunk's seed is derived.
    pub job_seed: u64,
    /// The output schema, when the user fixed it (Arrow JSON).
    pub schema: Option<String>,
    /// Steal queued chunks and run copies of late ones when workers are idle.
    pub speculate: bool,
    /// A worker that fails this many chunks in a row is drained (never the last live worker).
    pub drain_after_failures: u32,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            max_attempts: 3,
            prefetch: 2,
            heartbeat_timeout: Duration::from_secs(120),
            job_seed: 0,
            schema: None,
            speculate: true,
            drain_after_failures: 5,
        }
    }
}

/// One attempt of a chunk in flight.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub worker: Rank,
    pub attempt: Attempt,
    /// When the worker reported starting it (`None`: still queued at the worker).
    pub started: Option<Instant>,
    /// A second copy, or a stolen chunk.
    pub speculative: bool,
}

/// Where a chunk is in its lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub enum ChunkState {
    Pending,
    Running(Vec<Run>),
    Done(ChunkOutput),
}

#[derive(Debug)]
struct Chunk {
    slice: InputSlice,
    state: ChunkState,
    /// Attempts issued.
    attempts: u32,
    /// Attempts that failed.
    failures: u32,
    errors: Vec<String>,
}

#[derive(Debug)]
struct Worker {
    host: String,
    holding: VecDeque<(ChunkId, Attempt)>,
    last_seen: Instant,
    lost: bool,
    stopped: bool,
    /// Why the coordinator stopped feeding this worker.
    drained: Option<String>,
    failures_in_a_row: u32,
    gpu_samples: u64,
    gpu_util_sum: u64,
    report: WorkerReport,
}

impl Worker {
    fn usable(&self) -> bool {
        !self.lost && !self.stopped && self.drained.is_none()
    }
}

/// Why the job failed.
#[derive(Debug, Clone, PartialEq)]
pub struct JobFailure {
    pub message: String,
    /// The input itself is bad (exit 2 rather than 1).
    pub bad_input: bool,
}

/// A snapshot for progress displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub chunks_total: usize,
    pub chunks_done: usize,
    pub rows_total: u64,
    pub rows_done: u64,
    pub rows_out: u64,
    pub workers_live: usize,
}

/// The coordinator's state.
#[derive(Debug)]
pub struct Coordinator {
    cfg: CoordinatorConfig,
    chunks: Vec<Chunk>,
    queue: VecDeque<ChunkId>,
    workers: BTreeMap<Rank, Worker>,
    /// The table schema: the user's, or (without `--schema`) the one unified from every
    /// chunk's output once all are done; `None` until then.
    schema: Option<String>,
    /// Without `--schema`: the chunk schemas accepted so far, unified in arrival order, to
    /// find a conflict early (whether there is one does not depend on the order).
    schema_probe: Option<flywheel_formats::Schema>,
    /// What deciding the schema changed, for the report (widened columns, chunks run again).
    schema_notes: Vec<String>,
    failure: Option<JobFailure>,
    done: usize,
    retries: u64,
    failures: u64,
    speculative_runs: u64,
    wasted_rows: u64,
    /// Chunks accepted since the last [`Coordinator::take_accepted`] (for the journal).
    accepted: Vec<ChunkId>,
    /// No more dispatching (a checkpoint is under way).
    halted: bool,
    /// The latest attempt failure of the chunk's own making (not a lost or drained worker's
    /// release), as `chunk C attempt A on worker W: error`: the cause a final error names.
    last_error: Option<String>,
}

impl Coordinator {
    /// A coordinator for the given chunks (chunk ids are their indices).
    pub fn new(cfg: CoordinatorConfig, slices: Vec<InputSlice>) -> Coordinator {
        Self::resumed(cfg, slices, Vec::new())
    }

    /// A coordinator that continues an interrupted job: `done` are outputs accepted before
    /// (from the journal); only the other chunks are scheduled.
    pub fn resumed(
        cfg: CoordinatorConfig,
        slices: Vec<InputSlice>,
        done: Vec<ChunkOutput>,
    ) -> Coordinator {
        let mut chunks: Vec<Chunk> = slices
            .into_iter()
            .map(|slice| Chunk {
                slice,
                state: ChunkState::Pending,
                attempts: 0,
                failures: 0,
                errors: Vec::new(),
            })
            .collect();
        let schema = cfg.schema.clone();
        let mut n_done = 0;
        for out in done {
            if let Some(c) = chunks.get_mut(out.chunk.0 as usize) {
                if c.state == ChunkState::Pending {
                    c.attempts = out.attempt.0;
                    c.state = ChunkState::Done(out);
                    n_done += 1;
                }
            }
        }
        let queue = chunks
            .iter()
            .enumerate()
            .filter(|(_, c)| c.state == ChunkState::Pending)
            .map(|(i, _)| ChunkId(i as u32))
            .collect();
        let mut coord = Coordinator {
            cfg,
            chunks,
            queue,
            workers: BTreeMap::new(),
            schema,
            schema_probe: None,
            schema_notes: Vec::new(),
            failure: None,
            done: n_done,
            retries: 0,
            failures: 0,
            speculative_runs: 0,
            wasted_rows: 0,
            accepted: Vec::new(),
            halted: false,
            last_error: None,
        };
        coord.settle_schema();
        coord
    }

    /// Stops handing out chunks (a checkpoint): running attempts may still finish and count.
    pub fn stop_dispatch(&mut self) {
        self.halted = true;
    }

    /// Chunks with an attempt running or queued at a worker.
    pub fn in_flight(&self) -> usize {
        self.chunks
            .iter()
            .filter(|c| matches!(c.state, ChunkState::Running(_)))
            .count()
    }

    /// Handles one message from a worker.
    pub fn on_message(
        &mut self,
        tx: &mut impl Transport,
        from: Rank,
        msg: ToCoordinator,
        now: Instant,
    ) -> Result<(), TransportError> {
        tracing::debug!("{}", msg.describe(from));
        if let Some(w) = self.workers.get_mut(&from) {
            w.last_seen = now;
        }
        match msg {
            ToCoordinator::Ready { host } => {
                self.workers.insert(
                    from,
                    Worker {
                        host,
                        holding: VecDeque::new(),
                        last_seen: now,
                        lost: false,
                        stopped: false,
                        drained: None,
                        failures_in_a_row: 0,
                        gpu_samples: 0,
                        gpu_util_sum: 0,
                        report: WorkerReport::default(),
                    },
                );
                self.fill_all(tx)
            }
            ToCoordinator::Started { chunk, attempt } => {
                if let Some(Chunk {
                    state: ChunkState::Running(runs),
                    ..
                }) = self.chunks.get_mut(chunk.0 as usize)
                {
                    if let Some(r) = runs
                        .iter_mut()
                        .find(|r| r.worker == from && r.attempt == attempt)
                    {
                        r.started = Some(now);
                    }
                }
                Ok(())
            }
            ToCoordinator::Done(out) => {
                self.on_done(tx, from, out)?;
                self.fill_all(tx)
            }
            ToCoordinator::Failed {
                chunk,
                attempt,
                kind,
                error,
            } => {
                self.on_failed(from, chunk, attempt, kind, &error);
                self.fill_all(tx)
            }
            ToCoordinator::Heartbeat { gpu } => {
                if let Some(sample) = gpu {
                    self.on_gpu_sample(from, sample);
                }
                self.fill_all(tx)
            }
            ToCoordinator::Bye => {
                if let Some(w) = self.workers.get_mut(&from) {
                    w.stopped = true;
                }
                Ok(())
            }
        }
    }

    /// Checks heartbeats: a worker silent past the timeout is lost, and its chunks go to the
    /// others.
    pub fn on_tick(&mut self, tx: &mut impl Transport, now: Instant) -> Result<(), TransportError> {
        let timeout = self.cfg.heartbeat_timeout;
        let lost: Vec<Rank> = self
            .workers
            .iter()
            .filter(|(_, w)| !w.lost && !w.stopped && now.duration_since(w.last_seen) > timeout)
            .map(|(r, _)| *r)
            .collect();
        for rank in lost {
            tracing::warn!(
                "{rank} sent nothing for {}s: declared lost",
                timeout.as_secs()
            );
            if let Some(w) = self.workers.get_mut(&rank) {
                w.lost = true;
            }
            self.release(rank, FailureKind::WorkerLost, "worker stopped answering");
        }
        self.check_workers_left();
        self.fill_all(tx)
    }

    /// Fails every attempt a worker holds (it is lost or drained).
    fn release(&mut self, rank: Rank, kind: FailureKind, why: &str) {
        let held: Vec<(ChunkId, Attempt)> = match self.workers.get_mut(&rank) {
            Some(w) => w.holding.iter().copied().collect(),
            None => return,
        };
        for (chunk, attempt) in held {
            self.on_failed(rank, chunk, attempt, kind, why);
        }
    }

    fn check_workers_left(&mut self) {
        if self.failure.is_none()
            && !self.is_complete()
            && !self.workers.is_empty()
            && self.workers.values().all(|w| w.lost || w.drained.is_some())
        {
            let last = self.last_error.clone().unwrap_or_else(|| {
                self.chunks
                    .iter()
                    .flat_map(|c| c.errors.last())
                    .next_back()
                    .cloned()
                    .unwrap_or_default()
            });
            self.failure = Some(JobFailure {
                message: format!("every worker was lost or drained; last error: {last}"),
                bad_input: false,
            });
        }
    }

    /// Records a GPU reading; a sick GPU's worker is drained: it gets no more chunks, and the
    /// chunks it holds go to other workers.
    fn on_gpu_sample(&mut self, from: Rank, sample: flywheel_protocol::GpuSample) {
        let Some(w) = self.workers.get_mut(&from) else {
            return;
        };
        w.gpu_samples += 1;
        w.gpu_util_sum += u64::from(sample.utilization);
        w.report
            .gpu
            .get_or_insert_with(|| format!("{} (GPU {})", sample.name, sample.index));
        if let (Some(problem), None) = (&sample.problem, &w.drained) {
            tracing::warn!("{from}: {problem}; no more chunks for it");
            let problem = problem.clone();
            w.drained = Some(problem.clone());
            self.release(
                from,
                FailureKind::WorkerLost,
                &format!("GPU is sick: {problem}"),
            );
            self.check_workers_left();
        }
    }

    fn forget(&mut self, worker: Rank, chunk: ChunkId, attempt: Attempt) {
        if let Some(w) = self.workers.get_mut(&worker) {
            w.holding.retain(|h| *h != (chunk, attempt));
        }
    }

    fn on_done(
        &mut self,
        tx: &mut impl Transport,
        from: Rank,
        out: ChunkOutput,
    ) -> Result<(), TransportError> {
        let idx = out.chunk.0 as usize;
        self.forget(from, out.chunk, out.attempt);
        let Some(chunk) = self.chunks.get_mut(idx) else {
            tracing::warn!("{from} reported unknown {}", out.chunk);
            return Ok(());
        };
        let runs = match &chunk.state {
            ChunkState::Running(runs)
                if runs
                    .iter()
                    .any(|r| r.worker == from && r.attempt == out.attempt) =>
            {
                runs.clone()
            }
            _ => {
                // A cancelled copy or a late result: its output is never published.
                tracing::debug!(
                    "discarding the result of {} {} from {from}",
                    out.chunk,
                    out.attempt
                );
                self.wasted_rows += out.rows_in;
                return Ok(());
            }
        };
        if let (Some(fixed), Some(got)) = (&self.schema, &out.schema) {
            if !crate::schema_merge::same_schema(fixed, got) {
                let msg = format!("output schema {got} differs from the table's {fixed}");
                self.on_failed(
                    from,
                    out.chunk,
                    out.attempt,
                    FailureKind::InvalidOutput,
                    &msg,
                );
                return Ok(());
            }
        }
        let winner = runs
            .iter()
            .find(|r| r.worker == from && r.attempt == out.attempt)
            .cloned();
        for r in runs
            .iter()
            .filter(|r| !(r.worker == from && r.attempt == out.attempt))
        {
            self.forget(r.worker, out.chunk, r.attempt);
            if let Some(w) = self.workers.get(&r.worker) {
                if !w.lost {
                    tx.send(
                        r.worker,
                        ToWorker::Cancel {
                            chunk: out.chunk,
                            attempt: r.attempt,
                        },
                    )?;
                }
            }
        }
        if let Some(w) = self.workers.get_mut(&from) {
            w.failures_in_a_row = 0;
            w.report.chunks += 1;
            w.report.rows_in += out.rows_in;
            w.report.rows_out += out.rows_out;
            w.report.busy_ms += out.wall_ms;
            if winner.is_some_and(|r| r.speculative) {
                w.report.speculative_wins += 1;
            }
        }
        let id = out.chunk;
        let conflict = match (&self.schema, &out.schema) {
            (None, Some(got)) => crate::schema_merge::probe(&mut self.schema_probe, got),
            _ => false,
        };
        self.chunks[idx].state = ChunkState::Done(out);
        self.done += 1;
        self.accepted.push(id);
        if conflict || self.is_complete() {
            self.settle_schema();
        }
        Ok(())
    }

    /// Without `--schema`, once every chunk is done (or the accepted ones already disagree):
    /// unifies the chunks' output schemas in chunk order into the table schema, fails the job
    /// on a conflict, and sends back to the queue each chunk whose file has another schema, to
    /// be written again with the table's (which its tasks now carry).
    fn settle_schema(&mut self) {
        if self.schema.is_some() || self.failure.is_some() {
            return;
        }
        let schemas: Vec<(ChunkId, &str)> = self
            .chunks
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match &c.state {
                ChunkState::Done(o) => o.schema.as_deref().map(|s| (ChunkId(i as u32), s)),
                _ => None,
            })
            .collect();
        let unified = match crate::schema_merge::unify_chunks(&schemas) {
            Ok(u) => u,
            Err(why) => {
                self.failure = Some(JobFailure {
                    message: format!("the chunks' outputs cannot be one table: {why}"),
                    bad_input: false,
                });
                return;
            }
        };
        if !self.is_complete() {
            return;
        }
        let Some(unified) = unified else {
            return;
        };
        let mut again = Vec::new();
        for (i, c) in self.chunks.iter_mut().enumerate() {
            if let ChunkState::Done(o) = &c.state {
                if o.schema
                    .as_deref()
                    .is_some_and(|s| !crate::schema_merge::same_schema(s, &unified.schema))
                {
                    self.wasted_rows += o.rows_in;
                    c.state = ChunkState::Pending;
                    again.push(ChunkId(i as u32));
                }
            }
        }
        for note in &unified.widened {
            tracing::warn!("{note}");
        }
        self.schema_notes.extend(unified.widened);
        if !again.is_empty() {
            let note = format!(
                "{} chunk(s) run again to store them with the table schema: {}",
                again.len(),
                again
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            tracing::warn!("{note}");
            self.schema_notes.push(note);
            self.done -= again.len();
            self.queue.extend(again);
        }
        self.schema = Some(unified.schema);
    }

    fn on_failed(
        &mut self,
        from: Rank,
        id: ChunkId,
        attempt: Attempt,
        kind: FailureKind,
        error: &str,
    ) {
        self.forget(from, id, attempt);
        let idx = id.0 as usize;
        let max = self.cfg.max_attempts;
        let Some(chunk) = self.chunks.get_mut(idx) else {
            return;
        };
        let ChunkState::Running(runs) = &mut chunk.state else {
            return;
        };
        let Some(pos) = runs
            .iter()
            .position(|r| r.worker == from && r.attempt == attempt)
        else {
            return;
        };
        let run = runs.remove(pos);
        let others_running = !runs.is_empty();
        if run.started.is_some() {
            self.wasted_rows += chunk.slice.row_count;
        }
        self.failures += 1;
        chunk.failures += 1;
        tracing::warn!("{id} {attempt} failed on {from} ({kind:?}): {error}");
        chunk.errors.push(format!("{attempt} on {from}: {error}"));
        let failures = chunk.failures;
        let describe = format!(
            "{id} (rows {}..{} of {})",
            chunk.slice.row_start,
            chunk.slice.row_start + chunk.slice.row_count,
            chunk.slice.path
        );
        if !others_running {
            chunk.state = ChunkState::Pending;
        }
        if let Some(w) = self.workers.get_mut(&from) {
            w.report.failures += 1;
            if kind != FailureKind::WorkerLost {
                w.failures_in_a_row += 1;
            }
        }
        if kind != FailureKind::WorkerLost {
            self.last_error = Some(format!("{id} {attempt} on {from}: {error}"));
        }
        if kind == FailureKind::BadInput {
            if self.failure.is_none() {
                self.failure = Some(JobFailure {
                    message: error.to_string(),
                    bad_input: true,
                });
            }
            return;
        }
        self.maybe_drain(from);
        // The attempt budget counts every failed attempt, copies included.
        if failures >= max {
            if self.failure.is_none() {
                self.failure = Some(JobFailure {
                    bad_input: false,
                    message: format!(
                        "{describe} failed {failures} time{}; last error ({attempt} on {from}): {error}",
                        if failures == 1 { "" } else { "s" }
                    ),
                });
            }
            return;
        }
        if others_running {
            return;
        }
        self.retries += 1;
        self.queue.push_front(id);
    }

    /// Drains a worker that keeps failing, unless it is the last one left.
    fn maybe_drain(&mut self, rank: Rank) {
        let limit = self.cfg.drain_after_failures;
        let usable = self.workers.values().filter(|w| w.usable()).count();
        let Some(w) = self.workers.get_mut(&rank) else {
            return;
        };
        if limit > 0 && w.failures_in_a_row >= limit && w.usable() && usable > 1 {
            let why = format!("failed {} chunks in a row", w.failures_in_a_row);
            tracing::warn!("{rank} {why}: no more chunks for it");
            w.drained = Some(why.clone());
            // The chunks it held fail with the cause, not only with the count.
            let why = match &self.last_error {
                Some(last) => format!("{rank} was drained after it {why}; the last: {last}"),
                None => format!("{rank} was drained after it {why}"),
            };
            self.release(rank, FailureKind::WorkerLost, &why);
        }
    }

    fn fill_all(&mut self, tx: &mut impl Transport) -> Result<(), TransportError> {
        let ranks: Vec<Rank> = self.workers.keys().copied().collect();
        for r in ranks {
            self.fill(tx, r)?;
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
            _ => chunk.state = ChunkState::Running(vec![run]),
        }
        let task = ChunkTask {
            chunk: id,
            attempt,
            seed: chunk_seed(self.cfg.job_seed, id),
            input: chunk.slice.clone(),
            schema: self.schema.clone(),
        };
        if let Some(w) = self.workers.get_mut(&rank) {
            w.holding.push_back((id, attempt));
        }
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
        if let Some((victim, id, attempt)) = self.steal_candidate(rank) {
            // The victim drops it; if it has already begun, its result is discarded.
            if let ChunkState::Running(runs) = &mut self.chunks[id.0 as usize].state {
                runs.retain(|r| !(r.worker == victim && r.attempt == attempt));
            }
            self.forget(victim, id, attempt);
            tx.send(victim, ToWorker::Cancel { chunk: id, attempt })?;
            return self.issue(tx, rank, id, true);
        }
        if let Some(id) = self.speculation_candidate(rank) {
            return self.issue(tx, rank, id, true);
        }
        Ok(())
    }

    /// A chunk queued (not started) at the worker holding the most, other than `thief`.
    fn steal_candidate(&self, thief: Rank) -> Option<(Rank, ChunkId, Attempt)> {
        let (victim, w) = self
            .workers
            .iter()
            .filter(|(r, w)| **r != thief && !w.lost && w.holding.len() > 1)
            .max_by_key(|(_, w)| w.holding.len())?;
        w.holding
            .iter()
            .rev()
            .find_map(|(id, attempt)| match &self.chunks[id.0 as usize].state {
                ChunkState::Running(runs)
                    if runs.len() == 1
                        && runs[0].attempt == *attempt
                        && runs[0].started.is_none() =>
                {
                    Some((*victim, *id, *attempt))
                }
                _ => None,
            })
    }

    /// The in-flight chunk (one attempt, started) that began earliest, not run by `rank`.
    fn speculation_candidate(&self, rank: Rank) -> Option<ChunkId> {
        self.chunks
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match &c.state {
                ChunkState::Running(runs) if runs.len() == 1 && runs[0].worker != rank => {
                    runs[0].started.map(|t| (t, i))
                }
                _ => None,
            })
            .min()
            .map(|(_, i)| ChunkId(i as u32))
    }

    /// Chunks accepted since the last call, in acceptance order (the journal records them).
    pub fn take_accepted(&mut self) -> Vec<&ChunkOutput> {
        let ids = std::mem::take(&mut self.accepted);
        ids.into_iter()
            .filter_map(|id| match &self.chunks[id.0 as usize].state {
                ChunkState::Done(o) => Some(o),
                _ => None,
            })
            .collect()
    }

    /// All chunks accepted.
    pub fn is_complete(&self) -> bool {
        self.done == self.chunks.len()
    }

    /// Why the job failed, once it has.
    pub fn failure(&self) -> Option<&JobFailure> {
        self.failure.as_ref()
    }

    /// The ranks that registered and were not lost.
    pub fn live_workers(&self) -> Vec<Rank> {
        self.workers
            .iter()
            .filter(|(_, w)| !w.lost)
            .map(|(r, _)| *r)
            .collect()
    }

    /// Whether every live worker has said goodbye.
    pub fn all_stopped(&self) -> bool {
        self.workers.values().all(|w| w.lost || w.stopped)
    }

    /// The table schema fixed so far.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Accepted outputs in chunk order (complete only once [`Self::is_complete`]).
    pub fn outputs(&self) -> Vec<&ChunkOutput> {
        self.chunks
            .iter()
            .filter_map(|c| match &c.state {
                ChunkState::Done(o) => Some(o),
                _ => None,
            })
            .collect()
    }

    /// Where a chunk's input rows are.
    pub fn slice(&self, id: ChunkId) -> Option<&InputSlice> {
        self.chunks.get(id.0 as usize).map(|c| &c.slice)
    }

    /// The state of one chunk.
    pub fn chunk_state(&self, id: ChunkId) -> Option<&ChunkState> {
        self.chunks.get(id.0 as usize).map(|c| &c.state)
    }

    /// The number of chunks.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// The host a worker registered from.
    pub fn worker_host(&self, rank: Rank) -> Option<&str> {
        self.workers.get(&rank).map(|w| w.host.as_str())
    }

    /// Counters for progress displays.
    pub fn progress(&self) -> Progress {
        let mut p = Progress {
            chunks_total: self.chunks.len(),
            chunks_done: self.done,
            rows_total: 0,
            rows_done: 0,
            rows_out: 0,
            workers_live: self.workers.values().filter(|w| !w.lost).count(),
        };
        for c in &self.chunks {
            p.rows_total += c.slice.row_count;
            if let ChunkState::Done(o) = &c.state {
                p.rows_done += o.rows_in;
                p.rows_out += o.rows_out;
            }
        }
        p
    }

    /// The job report so far.
    pub fn report(&self, wall: Duration) -> JobReport {
        let p = self.progress();
        let wall_ms = wall.as_millis() as u64;
        let workers: Vec<WorkerReport> = self
            .workers
            .iter()
            .map(|(r, w)| {
                let mut rep = w.report.clone();
                rep.rank = r.0;
                rep.host.clone_from(&w.host);
                rep.busy_share = if wall_ms > 0 {
                    rep.busy_ms as f64 / wall_ms as f64
                } else {
                    0.0
                };
                rep.idle_ms = wall_ms.saturating_sub(rep.busy_ms);
                rep.lost = w.lost;
                rep.drained.clone_from(&w.drained);
                rep.gpu_utilization =
                    (w.gpu_samples > 0).then(|| w.gpu_util_sum as f64 / w.gpu_samples as f64);
                rep
            })
            .collect();
        let with_gpu: Vec<f64> = workers.iter().filter_map(|w| w.gpu_utilization).collect();
        let gpu = if with_gpu.is_empty() {
            "no GPU".to_string()
        } else {
            let mean = with_gpu.iter().sum::<f64>() / with_gpu.len() as f64;
            format!("mean utilisation {mean:.0}% over {} GPU(s)", with_gpu.len())
        };
        JobReport {
            rows_in: p.rows_done,
            rows_out: p.rows_out,
            chunks: p.chunks_total as u64,
            chunks_done: p.chunks_done as u64,
            retries: self.retries,
            failures: self.failures,
            speculative_runs: self.speculative_runs,
            wasted_rows: self.wasted_rows,
            wall_s: wall.as_secs_f64(),
            rows_per_s: if wall.as_secs_f64() > 0.0 {
                p.rows_done as f64 / wall.as_secs_f64()
            } else {
                0.0
            },
            workers,
            gpu,
            schema_notes: self.schema_notes.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flywheel_protocol::InputFormat;

    /// A transport that records what the coordinator sent.
    #[derive(Default)]
    struct Recorder {
        sent: Vec<(Rank, ToWorker)>,
    }

    impl Transport for Recorder {
        fn workers(&self) -> Vec<Rank> {
            vec![Rank(1), Rank(2)]
        }
        fn send(&mut self, to: Rank, msg: ToWorker) -> Result<(), TransportError> {
            self.sent.push((to, msg));
            Ok(())
        }
        fn recv_timeout(
            &mut self,
            _: Duration,
        ) -> Result<Option<(Rank, ToCoordinator)>, TransportError> {
            Ok(None)
        }
    }

    impl Recorder {
        /// The assignments sent so far; other messages stay for `take_cancels`.
        fn take_tasks(&mut self) -> Vec<(Rank, ChunkTask)> {
            let (tasks, rest): (Vec<_>, Vec<_>) = self
                .sent
                .drain(..)
                .partition(|(_, m)| matches!(m, ToWorker::Assign(_)));
            self.sent = rest;
            tasks
                .into_iter()
                .filter_map(|(r, m)| match m {
                    ToWorker::Assign(t) => Some((r, t)),
                    _ => None,
                })
                .collect()
        }
        /// The cancellations sent so far.
        fn take_cancels(&mut self) -> Vec<(Rank, ChunkId, Attempt)> {
            let (cancels, rest): (Vec<_>, Vec<_>) = self
                .sent
                .drain(..)
                .partition(|(_, m)| matches!(m, ToWorker::Cancel { .. }));
            self.sent = rest;
            cancels
                .into_iter()
                .filter_map(|(r, m)| match m {
                    ToWorker::Cancel { chunk, attempt } => Some((r, chunk, attempt)),
                    _ => None,
                })
                .collect()
        }
        fn emptiness_check(&self) {
            assert!(self.sent.is_empty(), "unexpected messages: {:?}", self.sent);
        }
    }

    fn slices(n: u64) -> Vec<InputSlice> {
        (0..n)
            .map(|i| InputSlice {
                path: "/in.parquet".into(),
                format: InputFormat::Parquet,
                group: None,
                row_start: i * 10,
                row_count: 10,
                bytes: None,
                schema: None,
            })
            .collect()
    }

    fn done(t: &ChunkTask) -> ToCoordinator {
        ToCoordinator::Done(ChunkOutput {
            chunk: t.chunk,
            attempt: t.attempt,
            file: Some(format!("data/{}.parquet", t.chunk.0)),
            rows_in: 10,
            rows_out: 10,
            bytes: 100,
            schema: Some("s".into()),
            wall_ms: 5,
            errors_file: None,
            error_rows: 0,
            stats: None,
            worker: 0,
            host: String::new(),
        })
    }

    fn failed(t: &ChunkTask) -> ToCoordinator {
        ToCoordinator::Failed {
            chunk: t.chunk,
            attempt: t.attempt,
            kind: FailureKind::Mapper,
            error: "boom".into(),
        }
    }

    #[test]
    fn hands_out_chunks_in_order_and_completes() {
        let now = Instant::now();
        let mut tx = Recorder::default();
        let mut c = Coordinator::new(CoordinatorConfig::default(), slices(5));
        c.on_message(
            &mut tx,
            Rank(1),
            ToCoordinator::Ready { host: "a".into() },
            now,
        )
        .unwrap();
        c.on_message(
            &mut tx,
            Rank(2),
            ToCoordinator::Ready { host: "b".into() },
            now,
        )
        .unwrap();
        let tasks = tx.take_tasks();
        let ids: Vec<u32> = tasks.iter().map(|(_, t)| t.chunk.0).collect();
        assert_eq!(ids, vec![0, 1, 2, 3]);
        assert_eq!(tasks[0].1.seed, chunk_seed(0, ChunkId(0)));
        for (r, t) in &tasks {
            c.on_message(&mut tx, *r, done(t), now).unwrap();
        }
        let last = tx.take_tasks();
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].1.chunk, ChunkId(4));
        assert_eq!(
            last[0].1.schema, None,
            "without --schema, no chunk's output fixes the schema for the others"
        );
        c.on_message(&mut tx, last[0].0, done(&last[0].1), now)
            .unwrap();
        assert!(c.is_complete());
        assert_eq!(c.schema(), Some("s"), "decided once every chunk is done");
        let files: Vec<_> = c.outputs().iter().map(|o| o.chunk.0).collect();
        assert_eq!(files, vec![0, 1, 2, 3, 4]);
        tx.emptiness_check();
    }

    #[test]
    fn retries_a_failed_chunk_then_fails_the_job_at_max_attempts() {
        let now = Instant::now();
        let mut tx = Recorder::default();
        let cfg = CoordinatorConfig {
            max_attempts: 2,
            prefetch: 1,
            ..Default::default()
        };
        let mut c = Coordinator::new(cfg, slices(2));
        c.on_message(
            &mut tx,
            Rank(1),
            ToCoordinator::Ready { host: "a".into() },
            now,
        )
        .unwrap();
        let t = tx.take_tasks().remove(0).1;
        c.on_message(&mut tx, Rank(1), failed(&t), now).unwrap();
        let again = tx.take_tasks().remove(0).1;
        assert_eq!(
            (again.chunk, again.attempt),
            (ChunkId(0), Attempt(2)),
            "retried first"
        );
        c.on_message(&mut tx, Rank(1), failed(&again), now).unwrap();
        let f = c.failure().expect("job failed").message.clone();
        assert!(
            f.contains("chunk 0") && f.contains("failed 2 times") && f.contains("boom"),
            "{f}"
        );
        tx.emptiness_check();
        assert!(!c.is_complete());
    }

    #[test]
    fn bad_input_fails_the_job_at_once() {
        let now = Instant::now();
        let mut tx = Recorder::default();
        let mut c = Coordinator::new(
            CoordinatorConfig {
                prefetch: 1,
                ..Default::default()
            },
            slices(3),
        );
        c.on_message(
            &mut tx,
            Rank(1),
            ToCoordinator::Ready { host: "a".into() },
            now,
        )
        .unwrap();
        let t = tx.take_tasks().remove(0).1;
        let msg = ToCoordinator::Failed {
            chunk: t.chunk,
            attempt: t.attempt,
            kind: FailureKind::BadInput,
            error: "x.jsonl: line 7: not JSON".into(),
        };
        c.on_message(&mut tx, Rank(1), msg, now).unwrap();
        assert_eq!(
            c.failure(),
            Some(&JobFailure {
                message: "x.jsonl: line 7: not JSON".into(),
                bad_input: true
            })
        );
        tx.emptiness_check();
    }

    fn sample(util: u32, problem: Option<&str>) -> flywheel_protocol::GpuSample {
        flywheel_protocol::GpuSample {
            index: 0,
            name: "Fake H100".into(),
            utilization: util,
            memory_used_mb: 1,
            memory_total_mb: 80_000,
            power_w: None,
            temperature_c: None,
            ecc_uncorrected: Some(0),
            problem: problem.map(str::to_string),
        }
    }

    #[test]
    fn gpu_readings_reach_the_report_and_a_sick_gpu_is_drained() {
        let now = Instant::now();
        let mut tx = Recorder::default();
        let mut c = Coordinator::new(
            CoordinatorConfig {
                prefetch: 1,
                ..Default::default()
            },
            slices(3),
        );
        c.on_message(
            &mut tx,
            Rank(1),
            ToCoordinator::Ready { host: "a".into() },
            now,
        )
        .unwrap();
        c.on_message(
            &mut tx,
            Rank(2),
            ToCoordinator::Ready { host: "b".into() },
            now,
        )
        .unwrap();
        let tasks = tx.take_tasks();
        for u in [90, 100] {
            c.on_message(
                &mut tx,
                Rank(1),
                ToCoordinator::Heartbeat {
                    gpu: Some(sample(u, None)),
                },
                now,
            )
            .unwrap();
        }
        let r = c.report(Duration::from_secs(1));
        assert_eq!(r.workers[0].gpu_utilization, Some(95.0));
        assert_eq!(r.gpu, "mean utilisation 95% over 1 GPU(s)");
        // Worker 2's GPU reports uncorrected ECC errors: its chunk moves to worker 1.
        let sick = ToCoordinator::Heartbeat {
            gpu: Some(sample(0, Some("3 uncorrected ECC error(s)"))),
        };
        c.on_message(&mut tx, Rank(2), sick, now).unwrap();
        c.on_message(&mut tx, Rank(1), done(&tasks[0].1), now)
            .unwrap();
        let next = tx.take_tasks();
        assert_eq!(next.len(), 1, "{next:?}");
        assert_eq!(
            (next[0].0, next[0].1.chunk),
            (Rank(1), tasks[1].1.chunk),
            "the drained worker's chunk is retried first"
        );
        let r = c.report(Duration::from_secs(1));
        assert_eq!(
            r.workers[1].drained.as_deref(),
            Some("3 uncorrected ECC error(s)")
        );
        assert!(r.render().contains("drained: 3 uncorrected ECC error(s)"));
        tx.emptiness_check();
    }

    #[test]
    fn without_gpus_the_report_says_no_gpu() {
        let c = Coordinator::new(CoordinatorConfig::default(), slices(1));
        assert_eq!(c.report(Duration::from_secs(1)).gpu, "no GPU");
    }

    fn started(t: &ChunkTask) -> ToCoordinator {
        ToCoordinator::Started {
            chunk: t.chunk,
            attempt: t.attempt,
        }
    }

    #[test]
    fn an_idle_worker_steals_a_queued_chunk() {
        let now = Instant::now();
        let mut tx = Recorder::default();
        let mut c = Coordinator::new(CoordinatorConfig::default(), slices(3));
        c.on_message(
            &mut tx,
            Rank(1),
            ToCoordinator::Ready { host: "a".into() },
            now,
        )
        .unwrap();
        c.on_message(
            &mut tx,
            Rank(2),
            ToCoordinator::Ready { host: "b".into() },
            now,
        )
        .unwrap();
        let tasks = tx.take_tasks();
        assert_eq!(
            tasks
                .iter()
                .map(|(r, t)| (r.0, t.chunk.0))
                .collect::<Vec<_>>(),
            vec![(1, 0), (1, 1), (2, 2)]
        );
        c.on_message(&mut tx, Rank(1), started(&tasks[0].1), now)
            .unwrap();
        c.on_message(&mut tx, Rank(2), started(&tasks[2].1), now)
            .unwrap();
        c.on_message(&mut tx, Rank(2), done(&tasks[2].1), now)
            .unwrap();
        // Worker 2 is idle; worker 1 holds chunk 1 without having started it: stolen.
        assert_eq!(tx.take_cancels(), vec![(Rank(1), ChunkId(1), Attempt(1))]);
        let stolen = tx.take_tasks();
        assert_eq!(stolen.len(), 1);
        assert_eq!(
            (stolen[0].0, stolen[0].1.chunk, stolen[0].1.attempt),
            (Rank(2), ChunkId(1), Attempt(2))
        );
        c.on_message(&mut tx, Rank(2), done(&stolen[0].1), now)
            .unwrap();
        // Idle again, worker 2 runs a copy of the started chunk 0; worker 1's original wins.
        let copy = tx.take_tasks();
        assert_eq!(
            (copy[0].0, copy[0].1.chunk, copy[0].1.attempt),
            (Rank(2), ChunkId(0), Attempt(2))
        );
        c.on_message(&mut tx, Rank(1), done(&tasks[0].1), now)
            .unwrap();
        assert_eq!(tx.take_cancels(), vec![(Rank(2), ChunkId(0), Attempt(2))]);
        assert!(c.is_complete());
        let r = c.report(Duration::from_secs(1));
        assert_eq!((r.speculative_runs, r.workers[1].speculative_wins), (2, 1));
        tx.emptiness_check();
    }

    #[test]
    fn the_tail_runs_twice_and_the_first_result_wins() {
        let now = Instant::now();
        let mut tx = Recorder::default();
        let mut c = Coordinator::new(
            CoordinatorConfig {
                prefetch: 1,
                ..Default::default()
            },
            slices(2),
        );
        c.on_message(
            &mut tx,
            Rank(1),
            ToCoordinator::Ready { host: "a".into() },
            now,
        )
        .unwrap();
        c.on_message(
            &mut tx,
            Rank(2),
            ToCoordinator::Ready { host: "b".into() },
            now,
        )
        .unwrap();
        let tasks = tx.take_tasks();
        c.on_message(&mut tx, Rank(1), started(&tasks[0].1), now)
            .unwrap();
        c.on_message(&mut tx, Rank(2), started(&tasks[1].1), now)
            .unwrap();
        c.on_message(&mut tx, Rank(2), done(&tasks[1].1), now)
            .unwrap();
        let copy = tx.take_tasks();
        assert_eq!(
            copy.len(),
            1,
            "the idle worker runs a copy of the late chunk"
        );
        assert_eq!(
            (copy[0].0, copy[0].1.chunk, copy[0].1.attempt),
            (Rank(2), ChunkId(0), Attempt(2))
        );
        c.on_message(&mut tx, Rank(2), started(&copy[0].1), now)
            .unwrap();
        c.on_message(&mut tx, Rank(2), done(&copy[0].1), now)
            .unwrap();
        assert_eq!(
            tx.take_cancels(),
            vec![(Rank(1), ChunkId(0), Attempt(1))],
            "the slower attempt is cancelled"
        );
        assert!(c.is_complete());
        // The late original finishes anyway: discarded, counted as waste.
        c.on_message(&mut tx, Rank(1), done(&tasks[0].1), now)
            .unwrap();
        let accepted: Vec<Attempt> = c.outputs().iter().map(|o| o.attempt).collect();
        assert_eq!(accepted, vec![Attempt(2), Attempt(1)]);
        let r = c.report(Duration::from_secs(1));
        assert_eq!((r.wasted_rows, r.workers[1].speculative_wins), (10, 1));
        tx.emptiness_check();
    }

    #[test]
    fn a_worker_failing_again_and_again_is_drained() {
        let now = Instant::now();
        let mut tx = Recorder::default();
        let cfg = CoordinatorConfig {
            prefetch: 1,
            drain_after_failures: 2,
            max_attempts: 10,
            ..Default::default()
        };
        let mut c = Coordinator::new(cfg, slices(4));
        c.on_message(
            &mut tx,
            Rank(1),
            ToCoordinator::Ready { host: "a".into() },
            now,
        )
        .unwrap();
        c.on_message(
            &mut tx,
            Rank(2),
            ToCoordinator::Ready { host: "b".into() },
            now,
        )
        .unwrap();
        for _ in 0..2 {
            let t = tx
                .take_tasks()
                .into_iter()
                .find(|(r, _)| *r == Rank(1))
                .unwrap()
                .1;
            c.on_message(&mut tx, Rank(1), failed(&t), now).unwrap();
        }
        let r = c.report(Duration::from_secs(1));
        assert_eq!(
            r.workers[0].drained.as_deref(),
            Some("failed 2 chunks in a row")
        );
        assert!(
            tx.take_tasks().iter().all(|(r, _)| *r == Rank(2)),
            "no more chunks for the drained worker"
        );
    }

    #[test]
    fn a_resumed_job_schedules_only_what_is_missing() {
        let now = Instant::now();
        let mut tx = Recorder::default();
        let earlier = |i: u32| match done(&ChunkTask {
            chunk: ChunkId(i),
            attempt: Attempt(1),
            seed: 0,
            input: slices(1).remove(0),
            schema: None,
        }) {
            ToCoordinator::Done(o) => o,
            _ => unreachable!(),
        };
        let mut c = Coordinator::resumed(
            CoordinatorConfig::default(),
            slices(4),
            vec![earlier(0), earlier(2)],
        );
        assert_eq!(c.progress().chunks_done, 2);
        c.on_message(
            &mut tx,
            Rank(1),
            ToCoordinator::Ready { host: "a".into() },
            now,
        )
        .unwrap();
        let tasks = tx.take_tasks();
        assert_eq!(
            tasks.iter().map(|(_, t)| t.chunk.0).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert_eq!(
            tasks[0].1.schema, None,
            "the schema is decided from every chunk, the earlier run's included"
        );
        for (_, t) in &tasks {
            c.on_message(&mut tx, Rank(1), done(t), now).unwrap();
        }
        assert!(c.is_complete());
        assert_eq!(c.schema(), Some("s"));
        assert_eq!(
            c.take_accepted().len(),
            2,
            "only the new chunks go to the journal"
        );
    }

    fn schema_json(dsl: &str) -> String {
        flywheel_formats::schema_to_json(&flywheel_formats::Schema::parse(dsl).unwrap().to_arrow())
    }

    fn done_with(t: &ChunkTask, schema: &str) -> ToCoordinator {
        match done(t) {
            ToCoordinator::Done(o) => ToCoordinator::Done(ChunkOutput {
                schema: Some(schema.to_string()),
                ..o
            }),
            _ => unreachable!(),
        }
    }

    /// Runs three chunks whose outputs have the given schemas, finishing in `order`; returns
    /// the coordinator and the tasks it issued after the three.
    fn three_chunks(
        schemas: [&str; 3],
        order: [usize; 3],
    ) -> (Coordinator, Vec<(Rank, ChunkTask)>) {
        let now = Instant::now();
        let mut tx = Recorder::default();
        let cfg = CoordinatorConfig {
            prefetch: 3,
            speculate: false,
            ..CoordinatorConfig::default()
        };
        let mut c = Coordinator::new(cfg, slices(3));
        c.on_message(
            &mut tx,
            Rank(1),
            ToCoordinator::Ready { host: "a".into() },
            now,
        )
        .unwrap();
        let tasks = tx.take_tasks();
        assert_eq!(tasks.len(), 3);
        for i in order {
            let (r, t) = &tasks[i];
            c.on_message(&mut tx, *r, done_with(t, schemas[i]), now)
                .unwrap();
        }
        (c, tx.take_tasks())
    }

    #[test]
    fn the_inferred_schema_is_unified_in_chunk_order_whatever_finishes_first() {
        let a = schema_json("x: int?");
        let b = schema_json("x: int?, y: str?");
        let want = schema_json("x: int?, y: str?");
        for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2]] {
            let (c, again) = three_chunks([&a, &b, &a], order);
            assert_eq!(c.schema(), Some(want.as_str()), "{order:?}");
            assert!(c.failure().is_none());
            // The chunks written without `y` are written again, with the table schema.
            let ids: Vec<u32> = again.iter().map(|(_, t)| t.chunk.0).collect();
            assert_eq!(ids, vec![0, 2], "{order:?}");
            assert!(again
                .iter()
                .all(|(_, t)| t.schema.as_deref() == Some(want.as_str())));
            assert!(!c.is_complete());
            assert_eq!(
                c.report(Duration::from_secs(1)).schema_notes,
                vec!["2 chunk(s) run again to store them with the table schema: chunk 0, chunk 2"]
            );
        }
    }

    #[test]
    fn conflicting_chunk_schemas_fail_the_job_the_same_whatever_finishes_first() {
        let a = schema_json("x: int?");
        let b = schema_json("x: str?");
        let n = schema_json("z: bool?");
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
            let (c, _) = three_chunks([&a, &n, &b], order);
            let f = c.failure().expect("the job fails");
            assert!(
                f.message.contains("column 'x' has int values (first at chunk 0) and str values (first at chunk 2)"),
                "{order:?}: {}",
                f.message
            );
        }
    }

    #[test]
    fn a_silent_worker_is_lost_and_its_chunks_move() {
        let t0 = Instant::now();
        let mut tx = Recorder::default();
        let cfg = CoordinatorConfig {
            heartbeat_timeout: Duration::from_secs(10),
            prefetch: 1,
            ..Default::default()
        };
        let mut c = Coordinator::new(cfg, slices(2));
        c.on_message(
            &mut tx,
            Rank(1),
            ToCoordinator::Ready { host: "a".into() },
            t0,
        )
        .unwrap();
        c.on_message(
            &mut tx,
            Rank(2),
            ToCoordinator::Ready { host: "b".into() },
            t0,
        )
        .unwrap();
        let tasks = tx.take_tasks();
        c.on_message(
            &mut tx,
            Rank(2),
            ToCoordinator::Heartbeat { gpu: None },
            t0 + Duration::from_secs(8),
        )
        .unwrap();
        c.on_tick(&mut tx, t0 + Duration::from_secs(11)).unwrap();
        assert_eq!(c.live_workers(), vec![Rank(2)]);
        // Worker 2 finishes its own chunk and then gets worker 1's.
        c.on_message(
            &mut tx,
            Rank(2),
            done(&tasks[1].1),
            t0 + Duration::from_secs(12),
        )
        .unwrap();
        let moved = tx.take_tasks();
        assert_eq!(moved.len(), 1);
        assert_eq!(
            (moved[0].0, moved[0].1.chunk, moved[0].1.attempt),
            (Rank(2), ChunkId(0), Attempt(2))
        );
        // A late result from the lost worker is ignored.
        c.on_message(
            &mut tx,
            Rank(1),
            done(&tasks[0].1),
            t0 + Duration::from_secs(13),
        )
        .unwrap();
        assert!(!c.is_complete());
        c.on_message(
            &mut tx,
            Rank(2),
            done(&moved[0].1),
            t0 + Duration::from_secs(14),
        )
        .unwrap();
        assert!(c.is_complete());
        tx.emptiness_check();
    }
}

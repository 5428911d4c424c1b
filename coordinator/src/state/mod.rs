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
//!
//! The code is in rooms: [`workers`] (registration, loss, draining, GPU readings), [`results`]
//! (a chunk's attempt finishing or failing, the schema decided), [`dispatch`] (what a worker is
//! given), [`summary`] (progress and the report) and [`sanity`] (the invariants every test
//! checks).

mod dispatch;
mod held;
mod index;
mod ranks;
mod results;
mod sanity;
mod starts;
mod summary;
#[cfg(test)]
mod testenv;
#[cfg(test)]
mod tests;
mod workers;

pub use sanity::SanityError;

use crate::failure::{AttemptError, JobFailure};
use flywheel_protocol::{
    Attempt, ChunkId, ChunkOutput, InputSlice, Rank, SeedScheme, ToCoordinator, Transport,
    TransportError, WorkerGpu,
};
use ranks::RankMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use workers::Worker;

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
    /// How each chunk's seed is derived ([`flywheel_protocol::seed_for`]); a job takes its
    /// lineage's (rerun) or [`SeedScheme::InputRows`].
    pub seed_scheme: SeedScheme,
    /// The input's root directory, which `input-rows` seeds take file paths relative to.
    pub input_root: String,
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
            seed_scheme: SeedScheme::ChunkIndex,
            input_root: String::new(),
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

/// A chunk's attempts in flight.
pub type Runs = smallvec::SmallVec<[Run; 1]>;

/// Where a chunk is in its lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub enum ChunkState {
    Pending,
    /// Its attempts (nearly always one: inline, no allocation of their own).
    Running(Runs),
    /// The accepted output (boxed: a chunk's hot state stays small).
    Done(Box<ChunkOutput>),
}

#[derive(Debug)]
struct Chunk {
    slice: InputSlice,
    state: ChunkState,
    /// Attempts issued.
    attempts: u32,
    /// Attempts that failed.
    failures: u32,
    errors: Vec<AttemptError>,
    /// The start it is filed under in the speculation index.
    spec_key: Option<Instant>,
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
    /// Of `rows_done`, those accepted before this run started (a resumed job's journal, an
    /// incremental job's reused chunks): not part of this run's rate.
    pub rows_carried: u64,
}

/// The coordinator's state.
#[derive(Debug)]
pub struct Coordinator {
    cfg: CoordinatorConfig,
    chunks: Vec<Chunk>,
    queue: VecDeque<ChunkId>,
    workers: RankMap<Worker>,
    /// The table schema: the user's, or (without `--schema`) the one unified from every
    /// chunk's output once all are done; `None` until then.
    schema: Option<Arc<str>>,
    /// Without `--schema`: the chunk schemas accepted so far, unified in arrival order, to
    /// find a conflict early (whether there is one does not depend on the order).
    schema_probe: Option<flywheel_formats::Schema>,
    /// The schema text probed last: the same text again is not parsed again, and an accepted
    /// output with it shares this copy (a million chunks keep one copy, not a million).
    schema_probed: Option<Arc<str>>,
    /// What deciding the schema changed, for the report (widened columns, chunks run again).
    schema_notes: Vec<String>,
    /// The local files the workers' mappers reported they depend on (for the lineage).
    dependencies: std::collections::BTreeSet<String>,
    failure: Option<JobFailure>,
    done: usize,
    retries: u64,
    failures: u64,
    speculative_runs: u64,
    wasted_rows: u64,
    /// Chunks accepted since the last [`Coordinator::take_accepted`], and by whom (for the journal).
    accepted: Vec<(ChunkId, Rank)>,
    /// No more dispatching (a checkpoint is under way).
    halted: bool,
    /// The latest attempt failure of the chunk's own making (not a lost or drained worker's
    /// release): the cause a final error names.
    last_error: Option<AttemptError>,
    /// Candidates and victims found without a scan (see [`index`]).
    index: index::Index,
    /// Rows of every chunk, and of the accepted ones (in and out).
    rows: (u64, u64, u64),
    /// Input rows of the chunks accepted before this run started.
    rows_carried: u64,
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
                spec_key: None,
            })
            .collect();
        let schema = cfg.schema.as_deref().map(Arc::from);
        let mut n_done = 0;
        let dependencies = done
            .iter()
            .flat_map(|o| o.dependencies.iter().cloned())
            .collect();
        for out in done {
            if let Some(c) = chunks.get_mut(out.chunk.0 as usize) {
                if c.state == ChunkState::Pending {
                    c.attempts = out.attempt.0;
                    c.state = ChunkState::Done(Box::new(out));
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
            workers: RankMap::default(),
            schema,
            schema_probe: None,
            schema_probed: None,
            schema_notes: Vec::new(),
            dependencies,
            failure: None,
            done: n_done,
            retries: 0,
            failures: 0,
            speculative_runs: 0,
            wasted_rows: 0,
            accepted: Vec::new(),
            halted: false,
            last_error: None,
            index: index::Index::default(),
            rows: (0, 0, 0),
            rows_carried: 0,
        };
        coord.rows.0 = coord.chunks.iter().map(|c| c.slice.row_count).sum();
        for c in &coord.chunks {
            if let ChunkState::Done(o) = &c.state {
                coord.rows.1 += o.rows_in;
                coord.rows.2 += o.rows_out;
            }
        }
        coord.rows_carried = coord.rows.1;
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
            // Only a message from the past (a caller's clock going back) files it again.
            if let Some(d) = w.deadline.filter(|d| *d > now) {
                self.index.deadlines.remove(&(d, from));
                self.index.deadlines.insert((now, from));
                w.deadline = Some(now);
            }
        }
        match msg {
            ToCoordinator::Ready { host } => {
                self.on_ready(from, host, now);
                self.fill_all(tx)
            }
            ToCoordinator::Started { chunk, attempt } => {
                self.on_started(from, chunk, attempt, now);
                Ok(())
            }
            ToCoordinator::Done(out) => {
                self.dependencies.extend(out.dependencies.iter().cloned());
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
                self.on_bye(from);
                self.fill_all(tx)
            }
        }
    }

    /// Checks heartbeats: a worker silent past the timeout is lost, and its chunks go to the
    /// others.
    pub fn on_tick(&mut self, tx: &mut impl Transport, now: Instant) -> Result<(), TransportError> {
        self.lose_silent(now);
        self.check_workers_left();
        self.fill_all(tx)
    }

    fn on_started(&mut self, from: Rank, chunk: ChunkId, attempt: Attempt, now: Instant) {
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
            self.reindex_chunk(chunk);
        }
    }

    /// Chunks accepted since the last call, in acceptance order (the journal records them).
    pub fn take_accepted(&mut self) -> Vec<&ChunkOutput> {
        self.take_accepted_with_gpus()
            .into_iter()
            .map(|(o, _)| o)
            .collect()
    }

    /// [`Coordinator::take_accepted`], each with its worker's GPU so far (for the journal).
    pub fn take_accepted_with_gpus(&mut self) -> Vec<(&ChunkOutput, Option<WorkerGpu>)> {
        let ids = std::mem::take(&mut self.accepted);
        let this = &*self;
        ids.into_iter()
            .filter_map(|(id, from)| match &this.chunks[id.0 as usize].state {
                ChunkState::Done(o) => {
                    let gpu = this.workers.get(&from).and_then(Worker::gpu_summary);
                    Some((&**o, gpu))
                }
                _ => None,
            })
            .collect()
    }

    /// All chunks accepted, and the job has not failed (the chunk accepted last can fail it:
    /// its schema may conflict with the others').
    pub fn is_complete(&self) -> bool {
        self.done == self.chunks.len() && self.failure.is_none()
    }

    /// Why the job failed, once it has.
    pub fn failure(&self) -> Option<&JobFailure> {
        self.failure.as_ref()
    }

    /// The ranks that registered and were not lost.
    pub fn live_workers(&self) -> Vec<Rank> {
        self.workers
            .iter()
            .filter(|(_, w)| !w.state.is_lost())
            .map(|(r, _)| *r)
            .collect()
    }

    /// The local files the mappers reported they depend on, in path order.
    pub fn dependencies(&self) -> &std::collections::BTreeSet<String> {
        &self.dependencies
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
                ChunkState::Done(o) => Some(&**o),
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

    /// Where a registered worker stands.
    pub fn worker_state(&self, rank: Rank) -> Option<&crate::WorkerState> {
        self.workers.get(&rank).map(|w| &w.state)
    }
}

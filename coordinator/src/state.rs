//! The scheduling state machine.
//!
//! Chunk lifecycle:
//!
//! ```text
//!            assign                 Done (accepted)
//! Pending ─────────────▶ Running ───────────────────▶ Done
//!    ▲                     │
//!    │   Failed / worker   │ attempts < max_attempts
//!    └─────── lost ────────┘
//!                          │ attempts == max_attempts
//!                          ▼
//!                     job failed (nothing is published)
//! ```
//!
//! Each worker holds up to `prefetch` chunks (one running, the rest queued behind it) so it never
//! waits for the coordinator between chunks. Retried chunks go to the front of the queue.

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
    /// Attempts a chunk gets before the job fails.
    pub max_attempts: u32,
    /// Chunks a worker holds at once (running + queued).
    pub prefetch: usize,
    /// A worker silent this long is declared lost and its chunks are re-queued.
    pub heartbeat_timeout: Duration,
    /// The job seed, from which each chunk's seed is derived.
    pub job_seed: u64,
    /// The output schema, when the user fixed it (Arrow JSON).
    pub schema: Option<String>,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            max_attempts: 3,
            prefetch: 2,
            heartbeat_timeout: Duration::from_secs(120),
            job_seed: 0,
            schema: None,
        }
    }
}

/// Where a chunk is in its lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub enum ChunkState {
    Pending,
    Running { worker: Rank, attempt: Attempt },
    Done(ChunkOutput),
}

#[derive(Debug)]
struct Chunk {
    slice: InputSlice,
    state: ChunkState,
    attempts: u32,
    errors: Vec<String>,
}

#[derive(Debug)]
struct Worker {
    host: String,
    holding: VecDeque<ChunkId>,
    last_seen: Instant,
    lost: bool,
    stopped: bool,
    /// Why the coordinator stopped feeding this worker (its GPU is sick).
    drained: Option<String>,
    gpu_samples: u64,
    gpu_util_sum: u64,
    report: WorkerReport,
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
    schema: Option<String>,
    failure: Option<JobFailure>,
    done: usize,
    retries: u64,
    failures: u64,
}

impl Coordinator {
    /// A coordinator for the given chunks (chunk ids are their indices).
    pub fn new(cfg: CoordinatorConfig, slices: Vec<InputSlice>) -> Coordinator {
        let queue = (0..slices.len() as u32).map(ChunkId).collect();
        let chunks = slices
            .into_iter()
            .map(|slice| Chunk {
                slice,
                state: ChunkState::Pending,
                attempts: 0,
                errors: Vec::new(),
            })
            .collect();
        let schema = cfg.schema.clone();
        Coordinator {
            cfg,
            chunks,
            queue,
            workers: BTreeMap::new(),
            schema,
            failure: None,
            done: 0,
            retries: 0,
            failures: 0,
        }
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
                        gpu_samples: 0,
                        gpu_util_sum: 0,
                        report: WorkerReport::default(),
                    },
                );
                self.fill(tx, from)
            }
            ToCoordinator::Done(out) => {
                self.on_done(from, out);
                self.fill(tx, from)
            }
            ToCoordinator::Failed {
                chunk,
                attempt,
                kind,
                error,
            } => {
                self.on_failed(from, chunk, attempt, kind, &error);
                self.fill(tx, from)
            }
            ToCoordinator::Heartbeat { gpu } => {
                if let Some(sample) = gpu {
                    self.on_gpu_sample(from, sample);
                }
                self.fill(tx, from)
            }
            ToCoordinator::Bye => {
                if let Some(w) = self.workers.get_mut(&from) {
                    w.stopped = true;
                }
                Ok(())
            }
        }
    }

    /// Checks heartbeats: a worker silent past the timeout is lost, and its chunks go back to
    /// the queue for the others.
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
            let held: Vec<ChunkId> = match self.workers.get_mut(&rank) {
                Some(w) => {
                    w.lost = true;
                    w.holding.drain(..).collect()
                }
                None => continue,
            };
            for chunk in held {
                if let ChunkState::Running { attempt, .. } = self.chunks[chunk.0 as usize].state {
                    self.on_failed(
                        rank,
                        chunk,
                        attempt,
                        FailureKind::WorkerLost,
                        "worker stopped answering",
                    );
                }
            }
        }
        if self.failure.is_none()
            && !self.is_complete()
            && !self.workers.is_empty()
            && self.workers.values().all(|w| w.lost || w.drained.is_some())
        {
            self.failure = Some(JobFailure {
                message: "every worker was lost".to_string(),
                bad_input: false,
            });
        }
        let ranks: Vec<Rank> = self.workers.keys().copied().collect();
        for r in ranks {
            self.fill(tx, r)?;
        }
        Ok(())
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
            w.drained = Some(problem.clone());
            let held: Vec<ChunkId> = w.holding.drain(..).collect();
            for chunk in held {
                if let ChunkState::Running { attempt, .. } = self.chunks[chunk.0 as usize].state {
                    self.on_failed(
                        from,
                        chunk,
                        attempt,
                        FailureKind::WorkerLost,
                        &format!("GPU is sick: {problem}"),
                    );
                }
            }
            if !self.is_complete()
                && self.workers.values().all(|w| w.lost || w.drained.is_some())
                && self.failure.is_none()
            {
                self.failure = Some(JobFailure {
                    message: "every worker was lost or drained (sick GPUs)".into(),
                    bad_input: false,
                });
            }
        }
    }

    fn on_done(&mut self, from: Rank, out: ChunkOutput) {
        let idx = out.chunk.0 as usize;
        let Some(chunk) = self.chunks.get_mut(idx) else {
            tracing::warn!("{from} reported unknown {}", out.chunk);
            return;
        };
        if chunk.state
            != (ChunkState::Running {
                worker: from,
                attempt: out.attempt,
            })
        {
            tracing::debug!(
                "ignoring stale result of {} {} from {from}",
                out.chunk,
                out.attempt
            );
            return;
        }
        if let (Some(fixed), Some(got)) = (&self.schema, &out.schema) {
            if fixed != got {
                let msg = format!("output schema {got} differs from the table's {fixed}");
                self.on_failed(
                    from,
                    out.chunk,
                    out.attempt,
                    FailureKind::InvalidOutput,
                    &msg,
                );
                return;
            }
        }
        if self.schema.is_none() {
            self.schema.clone_from(&out.schema);
        }
        if let Some(w) = self.workers.get_mut(&from) {
            w.holding.retain(|c| *c != out.chunk);
            w.report.chunks += 1;
            w.report.rows_in += out.rows_in;
            w.report.rows_out += out.rows_out;
            w.report.busy_ms += out.wall_ms;
        }
        chunk.state = ChunkState::Done(out);
        self.done += 1;
    }

    fn on_failed(
        &mut self,
        from: Rank,
        id: ChunkId,
        attempt: Attempt,
        kind: FailureKind,
        error: &str,
    ) {
        let idx = id.0 as usize;
        let max = self.cfg.max_attempts;
        let Some(chunk) = self.chunks.get_mut(idx) else {
            return;
        };
        if chunk.state
            != (ChunkState::Running {
                worker: from,
                attempt,
            })
        {
            return;
        }
        if let Some(w) = self.workers.get_mut(&from) {
            w.holding.retain(|c| *c != id);
            w.report.failures += 1;
        }
        self.failures += 1;
        tracing::warn!("{id} {attempt} failed on {from} ({kind:?}): {error}");
        chunk.errors.push(format!("{attempt} on {from}: {error}"));
        chunk.state = ChunkState::Pending;
        if kind == FailureKind::BadInput {
            if self.failure.is_none() {
                self.failure = Some(JobFailure {
                    message: error.to_string(),
                    bad_input: true,
                });
            }
            return;
        }
        if chunk.attempts >= max {
            if self.failure.is_none() {
                self.failure = Some(JobFailure {
                    bad_input: false,
                    message: format!(
                        "{id} (rows {}..{} of {}) failed {} times; last error: {error}",
                        chunk.slice.row_start,
                        chunk.slice.row_start + chunk.slice.row_count,
                        chunk.slice.path,
                        chunk.attempts
                    ),
                });
            }
            return;
        }
        self.retries += 1;
        self.queue.push_front(id);
    }

    /// Tops up a worker's holding from the queue.
    fn fill(&mut self, tx: &mut impl Transport, rank: Rank) -> Result<(), TransportError> {
        if self.failure.is_some() {
            return Ok(());
        }
        let Some(w) = self.workers.get_mut(&rank) else {
            return Ok(());
        };
        if w.lost || w.stopped || w.drained.is_some() {
            return Ok(());
        }
        while w.holding.len() < self.cfg.prefetch {
            let Some(id) = self.queue.pop_front() else {
                break;
            };
            let chunk = &mut self.chunks[id.0 as usize];
            chunk.attempts += 1;
            let attempt = Attempt(chunk.attempts);
            chunk.state = ChunkState::Running {
                worker: rank,
                attempt,
            };
            w.holding.push_back(id);
            let task = ChunkTask {
                chunk: id,
                attempt,
                seed: chunk_seed(self.cfg.job_seed, id),
                input: chunk.slice.clone(),
                schema: self.schema.clone(),
            };
            tx.send(rank, ToWorker::Assign(task))?;
        }
        Ok(())
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
                rep.lost = w.lost;
                rep.drained.clone_from(&w.drained);
                rep.gpu_utilization =
                    (w.gpu_samples > 0).then(|| w.gpu_util_sum as f64 / w.gpu_samples as f64);
                rep
            })
            .collect();
        JobReport {
            rows_in: p.rows_done,
            rows_out: p.rows_out,
            chunks: p.chunks_total as u64,
            chunks_done: p.chunks_done as u64,
            retries: self.retries,
            failures: self.failures,
            wall_s: wall.as_secs_f64(),
            rows_per_s: if wall.as_secs_f64() > 0.0 {
                p.rows_done as f64 / wall.as_secs_f64()
            } else {
                0.0
            },
            gpu: {
                let with_gpu: Vec<&WorkerReport> = workers
                    .iter()
                    .filter(|w: &&WorkerReport| w.gpu_utilization.is_some())
                    .collect();
                if with_gpu.is_empty() {
                    "no GPU".to_string()
                } else {
                    let mean = with_gpu
                        .iter()
                        .filter_map(|w| w.gpu_utilization)
                        .sum::<f64>()
                        / with_gpu.len() as f64;
                    format!("mean utilisation {mean:.0}% over {} GPU(s)", with_gpu.len())
                }
            },
            workers,
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
        fn take_tasks(&mut self) -> Vec<(Rank, ChunkTask)> {
            self.sent
                .drain(..)
                .filter_map(|(r, m)| match m {
                    ToWorker::Assign(t) => Some((r, t)),
                    ToWorker::Stop => None,
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
            last[0].1.schema.as_deref(),
            Some("s"),
            "the schema fixed by the first output travels"
        );
        c.on_message(&mut tx, last[0].0, done(&last[0].1), now)
            .unwrap();
        assert!(c.is_complete());
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

//! The workers: registration, goodbyes, loss (silence), draining (failures in a row, a sick
//! GPU) and the job's end when none is left.

use super::Coordinator;
use crate::failure::{DrainReason, JobFailure, LostReason, WorkerState};
use crate::report::WorkerReport;
use flywheel_protocol::{Attempt, ChunkId, FailureKind, GpuSample, Rank, WorkerGpu};
use std::collections::VecDeque;
use std::time::Instant;

#[derive(Debug)]
pub(super) struct Worker {
    pub(super) host: String,
    /// The attempts it holds, running first, in the order it was given them.
    pub(super) holding: VecDeque<(ChunkId, Attempt)>,
    pub(super) last_seen: Instant,
    pub(super) state: WorkerState,
    pub(super) failures_in_a_row: u32,
    pub(super) gpu_samples: u64,
    pub(super) gpu_util_sum: u64,
    /// Its GPU's last reading.
    pub(super) last_gpu: Option<flywheel_protocol::GpuSample>,
    /// A hash of that GPU's identity (index, UUID, name).
    pub(super) gpu_id: u64,
    pub(super) report: WorkerReport,
    /// Where the indexes file it.
    pub(super) keys: super::index::WorkerKeys,
    /// Its entry in the deadline index.
    pub(super) deadline: Option<Instant>,
}

/// What names a GPU in its readings, hashed.
fn gpu_identity(s: &flywheel_protocol::GpuSample) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (s.index, &s.uuid, &s.name).hash(&mut h);
    h.finish()
}

impl Worker {
    pub(super) fn usable(&self) -> bool {
        self.state.usable()
    }

    /// Its GPU so far: the last reading and the mean utilisation; `None` without readings.
    pub(super) fn gpu_summary(&self) -> Option<WorkerGpu> {
        let s = self.last_gpu.as_ref()?;
        Some(WorkerGpu {
            uuid: s.uuid.clone(),
            name: s.name.clone(),
            index: s.index,
            last_utilization: s.utilization,
            mean_utilization: (self.gpu_util_sum as f64 / self.gpu_samples.max(1) as f64).round()
                as u32,
            memory_used_mb: s.memory_used_mb,
            memory_total_mb: s.memory_total_mb,
        })
    }
}

impl Coordinator {
    /// A worker says it is ready. A rank that registered before (its process started again)
    /// holds nothing any more: what it held goes to the queue, and it keeps its report. A
    /// drained worker stays drained; a lost or stopped one is live again.
    pub(super) fn on_ready(&mut self, from: Rank, host: String, now: Instant) {
        let Some(w) = self.workers.get_mut(&from) else {
            self.workers.insert(
                from,
                Worker {
                    host,
                    holding: VecDeque::new(),
                    last_seen: now,
                    state: WorkerState::Live,
                    failures_in_a_row: 0,
                    gpu_samples: 0,
                    gpu_util_sum: 0,
                    last_gpu: None,
                    gpu_id: 0,
                    report: WorkerReport::default(),
                    keys: Default::default(),
                    deadline: None,
                },
            );
            self.reindex_worker(from);
            return;
        };
        tracing::warn!("{from} registered again (on {host}); the chunks it held run again");
        w.host = host;
        if !matches!(w.state, WorkerState::Drained(_)) {
            w.state = WorkerState::Live;
        }
        self.reindex_worker(from);
        self.release(
            from,
            FailureKind::WorkerLost,
            "the worker registered again and dropped it",
        );
    }

    /// A worker said goodbye. A lost or drained one keeps that state (the report says why).
    pub(super) fn on_bye(&mut self, from: Rank) {
        if let Some(w) = self.workers.get_mut(&from) {
            if w.state == WorkerState::Live {
                w.state = WorkerState::Stopped;
            }
        }
        self.reindex_worker(from);
        // A worker that exits on its own mid-job: what it still held goes to the others now
        // (a stopped worker's silence is not watched, so nothing else would free it).
        self.release(
            from,
            FailureKind::WorkerLost,
            "the worker exited while holding it",
        );
    }

    /// Declares lost every live or drained worker silent past the heartbeat timeout; a live
    /// one's chunks go to the others (a drained one holds none, and its report keeps why it was
    /// drained). A lost worker is not waited for at shutdown.
    pub(super) fn lose_silent(&mut self, now: Instant) {
        let timeout = self.cfg.heartbeat_timeout;
        let mut lost: Vec<Rank> = Vec::new();
        // Each watched worker's entry is no later than it was last heard, so a silent one's is
        // past the timeout; one heard since is filed again at when it was.
        while let Some(&(t, rank)) = self.index.deadlines.first() {
            if now.duration_since(t) <= timeout {
                break;
            }
            self.index.deadlines.pop_first();
            let Some(w) = self.workers.get_mut(&rank) else {
                continue;
            };
            w.deadline = None;
            if !w.state.watched() {
                continue;
            }
            if now.duration_since(w.last_seen) > timeout {
                lost.push(rank);
            } else {
                w.deadline = Some(w.last_seen);
                self.index.deadlines.insert((w.last_seen, rank));
            }
        }
        lost.sort_unstable();
        for rank in lost {
            let Some(w) = self.workers.get_mut(&rank) else {
                continue;
            };
            let why = match &w.state {
                WorkerState::Drained(drained) => LostReason::SilentAfterDrain {
                    timeout,
                    drained: drained.clone(),
                },
                _ => LostReason::Silent { timeout },
            };
            tracing::warn!("{rank} {why}: declared lost");
            w.state = WorkerState::Lost(why);
            self.reindex_worker(rank);
            self.release(rank, FailureKind::WorkerLost, "worker stopped answering");
        }
    }

    /// Fails every attempt a worker holds (it is lost, drained or started again).
    pub(super) fn release(&mut self, rank: Rank, kind: FailureKind, why: &str) {
        let held: Vec<(ChunkId, Attempt)> = match self.workers.get_mut(&rank) {
            Some(w) => w.holding.iter().copied().collect(),
            None => return,
        };
        for (chunk, attempt) in held {
            self.on_failed(rank, chunk, attempt, kind, why);
        }
    }

    /// Fails the job when every registered worker is lost or drained before it completed.
    pub(super) fn check_workers_left(&mut self) {
        if self.failure.is_some()
            || self.is_complete()
            || self.workers.is_empty()
            || self.index.gone < self.workers.len()
        {
            return;
        }
        let last = self.last_error.clone().or_else(|| {
            self.chunks
                .iter()
                .flat_map(|c| c.errors.last())
                .next_back()
                .cloned()
        });
        self.failure = Some(JobFailure::NoWorkersLeft {
            workers: self
                .workers
                .iter()
                .map(|(r, w)| (*r, w.state.clone()))
                .collect(),
            last,
        });
    }

    /// Records a GPU reading; a sick GPU's worker is drained: it gets no more chunks, and the
    /// chunks it holds go to other workers. The drain names the node and the GPU.
    pub(super) fn on_gpu_sample(&mut self, from: Rank, sample: GpuSample) {
        let Some(w) = self.workers.get_mut(&from) else {
            return;
        };
        w.gpu_samples += 1;
        w.gpu_util_sum += u64::from(sample.utilization);
        // A heartbeat carries a reading from every GPU worker: from the same GPU as before (its
        // identity hashed, so the strings stored are not read), only the numbers are taken.
        let id = gpu_identity(&sample);
        w.report.gpu_last_utilization = Some(sample.utilization);
        w.report.gpu_memory_mb = Some((sample.memory_used_mb, sample.memory_total_mb));
        let sick = sample.problem.is_some();
        let gpu = match (sick, &sample.uuid) {
            (false, _) => String::new(),
            (true, Some(uuid)) => uuid.clone(),
            (true, None) => sample.index.to_string(),
        };
        let problem = sick.then(|| sample.problem.clone()).flatten();
        match &mut w.last_gpu {
            Some(last) if w.gpu_id == id => {
                last.utilization = sample.utilization;
                last.memory_used_mb = sample.memory_used_mb;
                last.memory_total_mb = sample.memory_total_mb;
                last.power_w = sample.power_w;
                last.temperature_c = sample.temperature_c;
                last.ecc_uncorrected = sample.ecc_uncorrected;
                if sick || last.problem.is_some() {
                    last.problem = sample.problem;
                }
            }
            _ => {
                w.gpu_id = id;
                w.report.gpu = Some(format!("{} (GPU {})", sample.name, sample.index));
                w.report.gpu_uuid.clone_from(&sample.uuid);
                w.last_gpu = Some(sample);
            }
        }
        // Only a live worker is drained: a lost, stopped or drained one gets nothing anyway.
        let (Some(problem), true) = (problem, w.usable()) else {
            return;
        };
        let why = format!("{} GPU {gpu}: {problem}", w.host);
        tracing::warn!("{from}: {why}; no more chunks for it");
        w.state = WorkerState::Drained(DrainReason::SickGpu(why.clone()));
        self.reindex_worker(from);
        self.release(
            from,
            FailureKind::WorkerLost,
            &format!("GPU is sick: {why}"),
        );
        self.check_workers_left();
    }

    /// Drains a worker that keeps failing, unless it is the last one left.
    pub(super) fn maybe_drain(&mut self, rank: Rank) {
        let limit = self.cfg.drain_after_failures;
        let usable = self.index.usable;
        let Some(w) = self.workers.get_mut(&rank) else {
            return;
        };
        if limit == 0 || w.failures_in_a_row < limit || !w.usable() || usable <= 1 {
            return;
        }
        let why = DrainReason::FailedInARow(w.failures_in_a_row);
        tracing::warn!("{rank} {why}: no more chunks for it");
        w.state = WorkerState::Drained(why.clone());
        self.reindex_worker(rank);
        // The chunks it held fail with the cause, not only with the count.
        let why = match &self.last_error {
            Some(last) => format!("{rank} was drained after it {why}; the last: {last}"),
            None => format!("{rank} was drained after it {why}"),
        };
        self.release(rank, FailureKind::WorkerLost, &why);
    }

    /// Drops an attempt from its worker's holding.
    pub(super) fn forget(&mut self, worker: Rank, chunk: ChunkId, attempt: Attempt) {
        if let Some(w) = self.workers.get_mut(&worker) {
            w.holding.retain(|h| *h != (chunk, attempt));
            self.reindex_worker(worker);
        }
    }
}

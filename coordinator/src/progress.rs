//! A job's progress as its journal records it: what `flywheel status OUT` prints and the
//! viewer's job page shows while a job is running on a table.

use crate::journal::{latest_job, JobRecord, JournalEntry, JournalError};
use flywheel_protocol::{ChunkId, WorkerGpu};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One worker's share so far.
#[derive(Debug, Default, Clone)]
pub struct WorkerProgress {
    pub chunks: u64,
    pub rows_out: u64,
    /// Its GPU as of its last accepted chunk.
    pub gpu: Option<WorkerGpu>,
}

/// What the journal of a table's latest job says so far.
#[derive(Debug, Clone)]
pub struct JobProgress {
    /// `finished: published version V`, `running` or `interrupted: continue it with --resume`.
    pub state: String,
    pub job_id: Option<String>,
    /// The version the job published, if it did.
    pub published: Option<u64>,
    pub chunks: usize,
    pub done: BTreeSet<ChunkId>,
    pub rows: u64,
    pub rows_done: u64,
    pub rows_out: u64,
    /// Per worker (host, rank).
    pub per_worker: BTreeMap<(String, u32), WorkerProgress>,
    /// Seconds from the first start to the last accepted chunk.
    pub elapsed: u64,
    pub slurm_job_ids: Vec<String>,
    pub slurm_steps: Vec<String>,
    /// Chunks and input rows the latest run reused (an incremental job): accepted, never
    /// journaled, and not part of the rate.
    pub reused: (usize, u64),
}

impl JobProgress {
    /// The progress of the latest job that wrote to `output`; `None` when none did.
    pub fn of_table(output: &Path) -> Result<Option<JobProgress>, JournalError> {
        let record = latest_job(output)?;
        let entries = record
            .as_ref()
            .map(|r| r.entries.as_slice())
            .unwrap_or_default();
        let Some(mut p) = JobProgress::of(entries) else {
            return Ok(None);
        };
        let (job_id, state, published) = job_state(output, record.as_ref());
        p.job_id = job_id;
        p.state = state;
        p.published = published;
        if let Some(r) = &record {
            p.slurm_job_ids = r.slurm_job_ids();
            p.slurm_steps = r.slurm_steps();
        }
        Ok(Some(p))
    }

    /// The progress recorded in `entries`; `None` when no job started.
    fn of(entries: &[JournalEntry]) -> Option<JobProgress> {
        let Some(JournalEntry::Start {
            chunks,
            rows,
            reused_chunks,
            reused_rows,
            ..
        }) = entries
            .iter()
            .rev()
            .find(|e| matches!(e, JournalEntry::Start { .. }))
            .cloned()
        else {
            return None;
        };
        let mut p = JobProgress {
            state: String::new(),
            job_id: None,
            published: None,
            chunks,
            done: BTreeSet::new(),
            rows,
            rows_done: 0,
            rows_out: 0,
            per_worker: BTreeMap::new(),
            elapsed: 0,
            slurm_job_ids: Vec::new(),
            slurm_steps: Vec::new(),
            reused: (reused_chunks, reused_rows),
        };
        let mut first_at = None;
        let mut last_at = 0;
        for e in entries {
            match e {
                JournalEntry::Start { at, .. } => {
                    first_at.get_or_insert(*at);
                }
                JournalEntry::Accepted { at, output: o, gpu } => {
                    if p.done.insert(o.chunk) {
                        p.rows_done += o.rows_in;
                        p.rows_out += o.rows_out;
                        let w = p.per_worker.entry((o.host.clone(), o.worker)).or_default();
                        w.chunks += 1;
                        w.rows_out += o.rows_out;
                        if gpu.is_some() {
                            w.gpu.clone_from(gpu);
                        }
                    }
                    last_at = last_at.max(*at);
                }
                JournalEntry::Published { .. } => {}
            }
        }
        p.elapsed = first_at.map(|f| last_at.saturating_sub(f)).unwrap_or(0);
        Some(p)
    }

    /// Chunks and input rows accepted, the reused ones included.
    pub fn accepted(&self) -> (usize, u64) {
        (
            (self.done.len() + self.reused.0).min(self.chunks),
            self.rows_done + self.reused.1,
        )
    }

    /// Input rows a second so far (of the rows this job mapped).
    pub fn rate(&self) -> f64 {
        if self.elapsed > 0 {
            self.rows_done as f64 / self.elapsed as f64
        } else {
            0.0
        }
    }

    /// Seconds left at the rate so far, while the job has not published.
    pub fn eta(&self) -> Option<f64> {
        let rate = self.rate();
        (rate > 0.0 && self.published.is_none())
            .then(|| self.rows.saturating_sub(self.accepted().1) as f64 / rate)
    }

    /// As `flywheel status --json` prints it.
    pub fn to_json(&self) -> Value {
        let workers: Vec<_> = self
            .per_worker
            .iter()
            .map(|((host, rank), w)| json!({"host": host, "rank": rank, "chunks": w.chunks, "rows_out": w.rows_out, "gpu": w.gpu}))
            .collect();
        let (chunks_done, rows_done) = self.accepted();
        json!({
            "state": self.state, "job_id": self.job_id, "published_version": self.published,
            "chunks_done": chunks_done, "chunks": self.chunks, "chunks_reused": self.reused.0,
            "rows_reused": self.reused.1, "rows_done": rows_done,
            "rows": self.rows, "rows_out": self.rows_out, "rows_per_s": self.rate(), "eta_s": self.eta(),
            "slurm_job_ids": self.slurm_job_ids, "slurm_steps": self.slurm_steps, "workers": workers,
        })
    }
}

/// The job's id, its state and the version it published (if it did).
fn job_state(output: &Path, record: Option<&JobRecord>) -> (Option<String>, String, Option<u64>) {
    let (job_id, mut published) = match record {
        Some(r) => (
            r.start().and_then(|s| s.job_id.map(str::to_string)),
            r.published(),
        ),
        None => (None, None),
    };
    let table = flywheel_formats::Table::new(output);
    // A job killed after its commit but before it journaled the publish has still published.
    if published.is_none() {
        if let Some(id) = &job_id {
            published = table
                .job_manifest(id, None)
                .ok()
                .flatten()
                .map(|m| m.version);
        }
    }
    let running = match &job_id {
        Some(id) => table.job_locked(id),
        None => !table.active_jobs().is_empty(),
    };
    let state = match (published, running) {
        (Some(v), _) => format!("finished: published version {v}"),
        (None, true) => "running".to_string(),
        (None, false) => "interrupted: continue it with --resume".to_string(),
    };
    (job_id, state, published)
}

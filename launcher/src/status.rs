//! `flywheel status OUT`: the progress of a running or interrupted job, read from its journal.

use crate::error::{bad_input, CliError};
use anyhow::anyhow;
use flywheel_coordinator::{latest_job, JobRecord, JournalEntry};
use flywheel_protocol::{ChunkId, WorkerGpu};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One worker's share so far.
#[derive(Default)]
struct WorkerLine {
    chunks: u64,
    rows_out: u64,
    gpu: Option<WorkerGpu>,
}

/// What the journal says of a job's chunks so far.
struct Progress {
    chunks: usize,
    rows: u64,
    done: BTreeSet<ChunkId>,
    rows_done: u64,
    rows_out: u64,
    /// Chunks, rows out and the GPU (as of its last accepted chunk) per worker (host, rank).
    per_worker: BTreeMap<(String, u32), WorkerLine>,
    /// Seconds from the first start to the last accepted chunk.
    elapsed: u64,
    /// Chunks and input rows the latest run reused (an incremental job): accepted, never
    /// journaled, and not part of the rate.
    reused: (usize, u64),
}

impl Progress {
    /// The progress recorded in `entries`; `None` when no job started.
    fn of(entries: &[JournalEntry]) -> Option<Progress> {
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
        let mut p = Progress {
            chunks,
            rows,
            done: BTreeSet::new(),
            rows_done: 0,
            rows_out: 0,
            per_worker: BTreeMap::new(),
            elapsed: 0,
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
    fn accepted(&self) -> (usize, u64) {
        (
            (self.done.len() + self.reused.0).min(self.chunks),
            self.rows_done + self.reused.1,
        )
    }

    fn rate(&self) -> f64 {
        if self.elapsed > 0 {
            self.rows_done as f64 / self.elapsed as f64
        } else {
            0.0
        }
    }
}

/// The job's id, the version it published (if it did) and its Slurm jobs.
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

/// The latest job's record and progress in OUT; an error when no job has written there.
fn progress_in(output: &Path) -> Result<(Option<JobRecord>, Progress), CliError> {
    let record = latest_job(output).map_err(bad_input)?;
    let entries = record
        .as_ref()
        .map(|r| r.entries.as_slice())
        .unwrap_or_default();
    let Some(p) = Progress::of(entries) else {
        return Err(bad_input(anyhow!(
            "{}: no job has written here (no journal)",
            output.display()
        )));
    };
    Ok((record, p))
}

pub fn status(output: &Path, json: bool) -> Result<(), CliError> {
    let (record, p) = progress_in(output)?;
    let (job_id, state, published) = job_state(output, record.as_ref());
    let slurm_jobs = record
        .as_ref()
        .map(JobRecord::slurm_job_ids)
        .unwrap_or_default();
    let slurm_steps = record
        .as_ref()
        .map(JobRecord::slurm_steps)
        .unwrap_or_default();
    let rate = p.rate();
    let (chunks_done, rows_done) = p.accepted();
    let eta =
        (rate > 0.0 && published.is_none()).then(|| p.rows.saturating_sub(rows_done) as f64 / rate);
    if json {
        let workers: Vec<_> = p
            .per_worker
            .iter()
            .map(|((host, rank), w)| serde_json::json!({"host": host, "rank": rank, "chunks": w.chunks, "rows_out": w.rows_out, "gpu": w.gpu}))
            .collect();
        let v = serde_json::json!({
            "state": state, "job_id": job_id, "published_version": published, "chunks_done": chunks_done, "chunks": p.chunks,
            "chunks_reused": p.reused.0, "rows_reused": p.reused.1, "rows_done": rows_done, "rows": p.rows, "rows_out": p.rows_out, "rows_per_s": rate, "eta_s": eta,
            "slurm_job_ids": slurm_jobs, "slurm_steps": slurm_steps, "workers": workers,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    match &job_id {
        Some(id) => println!("{}: {state} (job {id})", output.display()),
        None => println!("{}: {state}", output.display()),
    }
    let reused = if p.reused.0 > 0 {
        format!(" ({} reused)", p.reused.0)
    } else {
        String::new()
    };
    println!(
        "chunks {chunks_done}/{}{reused} · rows {rows_done}/{} · rows out {} · {rate:.0} rows/s{}",
        p.chunks,
        p.rows,
        p.rows_out,
        eta.map(|e| format!(" · ETA {e:.0}s")).unwrap_or_default()
    );
    if !slurm_jobs.is_empty() {
        println!("slurm jobs: {}", slurm_jobs.join(", "));
    }
    if !slurm_steps.is_empty() {
        println!("slurm steps: {}", slurm_steps.join(", "));
    }
    for ((host, rank), w) in &p.per_worker {
        println!(
            "  worker {rank:>3} {host:<16} chunks {:>5} rows out {:>9}{}",
            w.chunks,
            w.rows_out,
            w.gpu.as_ref().map(gpu_text).unwrap_or_default()
        );
    }
    Ok(())
}

/// " GPU <uuid> (<name>, NVML index i) utilisation last L% mean M% · memory U / T MiB".
fn gpu_text(g: &WorkerGpu) -> String {
    format!(
        " GPU {} ({}, NVML index {}) utilisation last {}% mean {}% · memory {} / {} MiB",
        g.uuid.as_deref().unwrap_or("?"),
        g.name,
        g.index,
        g.last_utilization,
        g.mean_utilization,
        g.memory_used_mb,
        g.memory_total_mb
    )
}

/// `flywheel gpus OUT`: each worker's GPU in the job writing OUT (node, UUID, utilisation,
/// memory), as of the chunk it last finished.
pub fn worker_gpus(output: &Path, json: bool) -> Result<(), CliError> {
    let (_, p) = progress_in(output)?;
    let gpus: Vec<_> = p
        .per_worker
        .iter()
        .filter_map(|((host, rank), w)| w.gpu.as_ref().map(|g| (host, rank, g)))
        .collect();
    if json {
        let v: Vec<_> = gpus
            .iter()
            .map(|(host, rank, g)| serde_json::json!({"host": host, "rank": rank, "gpu": g}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    if gpus.is_empty() {
        println!("{}: no worker reported a GPU", output.display());
    }
    for (host, rank, g) in gpus {
        println!("worker {rank:>3} {host:<16}{}", gpu_text(g));
    }
    Ok(())
}

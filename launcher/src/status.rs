//! `flywheel status OUT`: the progress of a running or interrupted job, read from its journal.

use crate::error::{bad_input, CliError};
use anyhow::anyhow;
use flywheel_coordinator::JobProgress;
use flywheel_protocol::WorkerGpu;
use std::path::Path;

/// The latest job's progress in OUT; an error when no job has written there.
fn progress_in(output: &Path) -> Result<JobProgress, CliError> {
    JobProgress::of_table(output)
        .map_err(bad_input)?
        .ok_or_else(|| {
            bad_input(anyhow!(
                "{}: no job has written here (no journal)",
                output.display()
            ))
        })
}

pub fn status(output: &Path, json: bool) -> Result<(), CliError> {
    let p = progress_in(output)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&p.to_json()).unwrap_or_default()
        );
        return Ok(());
    }
    match &p.job_id {
        Some(id) => println!("{}: {} (job {id})", output.display(), p.state),
        None => println!("{}: {}", output.display(), p.state),
    }
    let (chunks_done, rows_done) = p.accepted();
    let reused = if p.reused.0 > 0 {
        format!(" ({} reused)", p.reused.0)
    } else {
        String::new()
    };
    println!(
        "chunks {chunks_done}/{}{reused} · rows {rows_done}/{} · rows out {} · {:.0} rows/s{}",
        p.chunks,
        p.rows,
        p.rows_out,
        p.rate(),
        p.eta()
            .map(|e| format!(" · ETA {e:.0}s"))
            .unwrap_or_default()
    );
    if !p.slurm_job_ids.is_empty() {
        println!("slurm jobs: {}", p.slurm_job_ids.join(", "));
    }
    if !p.slurm_steps.is_empty() {
        println!("slurm steps: {}", p.slurm_steps.join(", "));
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
    let p = progress_in(output)?;
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

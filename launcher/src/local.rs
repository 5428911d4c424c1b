//! `flywheel map`: coordinator and workers in one process, over in-process channels.

use crate::cli::{MapArgs, ModeArg, RowErrorArg};
use crate::error::{bad_input, CliError};
use crate::lineage::Lineage;
use crate::plan::{coordinate, prepare, print_outcome, Outcome};
use anyhow::anyhow;
use flywheel_protocol::{channel_transport, JobOptions, Mode, RowErrorPolicy};
use flywheel_worker::{run_worker, GpuId, WorkerConfig};

/// Turns `map`'s flags into job options.
pub fn job_from_args(a: &MapArgs) -> Result<JobOptions, CliError> {
    let mut job = JobOptions::new(a.input.clone(), a.output.clone(), a.mapper.clone());
    job.workers = a.workers;
    job.chunk_rows = a.chunk_rows;
    job.mode = match a.mode {
        ModeArg::Create => Mode::Create,
        ModeArg::Append => Mode::Append,
        ModeArg::Overwrite => Mode::Overwrite,
    };
    job.max_attempts = a.max_attempts;
    job.schema = a.schema.clone();
    job.on_row_error = match a.on_row_error {
        RowErrorArg::Fail => RowErrorPolicy::Fail,
        RowErrorArg::Skip => RowErrorPolicy::Skip,
    };
    job.python = a.python.clone();
    job.seed = a.seed;
    job.chunk_timeout_s = a.chunk_timeout;
    job.mapper_mem = a.mapper_mem.clone();
    job.resume = a.resume;
    job.incremental = a.incremental;
    job.depends_on = a
        .depends_on
        .iter()
        .map(|d| {
            std::path::absolute(d)
                .map(|p| p.display().to_string())
                .map_err(|e| bad_input(anyhow!("--depends-on {d}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    job.job_id = a.job_id.clone().or_else(|| {
        std::env::var("FLYWHEEL_JOB_ID")
            .ok()
            .filter(|s| !s.is_empty())
    });
    for kv in &a.mapper_args {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| bad_input(anyhow!("--mapper-arg '{kv}' is not KEY=VALUE")))?;
        if k.is_empty() {
            return Err(bad_input(anyhow!("--mapper-arg '{kv}' has an empty key")));
        }
        job.mapper_args.insert(k.to_string(), v.to_string());
    }
    Ok(job)
}

pub fn map(args: MapArgs) -> Result<(), CliError> {
    let job = job_from_args(&args)?;
    if args.dry_run {
        return crate::fingerprint::print_dry_run(job, args.json);
    }
    let outcome = run_embedded(&job, Lineage::start(None), args.json)?;
    print_outcome(&job, &outcome, args.json);
    Ok(())
}

/// Runs `job` with its coordinator and workers in this process; returns what it published.
pub fn run_embedded(job: &JobOptions, lineage: Lineage, json: bool) -> Result<Outcome, CliError> {
    let prepared = prepare(job.clone(), lineage)?;
    // The checked job: shipped mappers' arguments made absolute, their schema fixed.
    let job = &prepared.job.clone();
    let gpus = visible_gpus();
    let (mut tx, links) = channel_transport(job.workers);
    let handles: Vec<_> = links
        .into_iter()
        .map(|mut link| {
            let rank = flywheel_protocol::WorkerLink::rank(&link);
            let mut cfg = WorkerConfig::new(job.clone(), rank);
            cfg.share_cpus(job.workers as usize);
            if let Some((visible, id)) = gpu_for(rank.0 - 1, &gpus) {
                cfg.extra_env.push(("CUDA_VISIBLE_DEVICES".into(), visible));
                cfg.gpus = vec![id];
            }
            std::thread::spawn(move || {
                if let Err(e) = run_worker(&mut link, cfg) {
                    tracing::error!("worker stopped: {e}");
                }
            })
        })
        .collect();
    let outcome = coordinate(prepared, &mut tx, json);
    drop(tx);
    for h in handles {
        let _ = h.join();
    }
    outcome
}

/// The GPUs this process may use: `CUDA_VISIBLE_DEVICES` if set, else every GPU NVML sees.
fn visible_gpus() -> Vec<String> {
    match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(v) => v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != "-1")
            .map(str::to_string)
            .collect(),
        Err(_) => (0..flywheel_worker::gpu_count())
            .map(|i| i.to_string())
            .collect(),
    }
}

/// Worker `slot` owns GPU `slot % n`: its `CUDA_VISIBLE_DEVICES` value and how NVML names it
/// (an index, or the UUID the entry is).
fn gpu_for(slot: u32, gpus: &[String]) -> Option<(String, GpuId)> {
    if gpus.is_empty() {
        return None;
    }
    let g = &gpus[slot as usize % gpus.len()];
    let id = match g.parse() {
        Ok(i) => GpuId::Index(i),
        Err(_) => GpuId::Uuid(g.clone()),
    };
    Some((g.clone(), id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_get_gpus_round_robin() {
        let gpus: Vec<String> = ["0", "1", "GPU-abc"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(gpu_for(0, &gpus), Some(("0".into(), GpuId::Index(0))));
        assert_eq!(
            gpu_for(2, &gpus),
            Some(("GPU-abc".into(), GpuId::Uuid("GPU-abc".into())))
        );
        assert_eq!(gpu_for(4, &gpus), Some(("1".into(), GpuId::Index(1))));
        assert_eq!(gpu_for(0, &[]), None);
    }
}

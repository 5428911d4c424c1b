//! `flywheel map`: coordinator and workers in one process, over in-process channels.

use crate::cli::{MapArgs, ModeArg, RowErrorArg};
use crate::error::{bad_input, CliError};
use crate::lineage::Lineage;
use crate::plan::{coordinate, prepare, print_outcome};
use anyhow::anyhow;
use flywheel_protocol::{channel_transport, JobOptions, Mode, RowErrorPolicy};
use flywheel_worker::{run_worker, WorkerConfig};

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
    let prepared = prepare(job.clone(), Lineage::start(None))?;
    let (mut tx, links) = channel_transport(job.workers);
    let handles: Vec<_> = links
        .into_iter()
        .map(|mut link| {
            let cfg = WorkerConfig::new(job.clone(), flywheel_protocol::WorkerLink::rank(&link));
            std::thread::spawn(move || {
                if let Err(e) = run_worker(&mut link, cfg) {
                    tracing::error!("worker stopped: {e}");
                }
            })
        })
        .collect();
    let outcome = coordinate(prepared, &mut tx, args.json);
    drop(tx);
    for h in handles {
        let _ = h.join();
    }
    let outcome = outcome?;
    print_outcome(&job, &outcome, args.json);
    Ok(())
}

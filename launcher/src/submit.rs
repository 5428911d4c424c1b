//! `flywheel submit JOB.toml [--dry-run]`.

use crate::cli::SubmitArgs;
use crate::error::{bad_input, job_failed, CliError};
use crate::jobfile;
use crate::lineage::Lineage;
use crate::plan::prepare;
use anyhow::anyhow;
use flywheel_slurm::{render_sbatch, submit as sbatch, SbatchJob};

pub fn submit(args: SubmitArgs) -> Result<(), CliError> {
    let mut jf = jobfile::load(&args.job)?;
    jf.job.resume |= args.resume;
    // The same checks the coordinator makes, now, rather than after a wait in the queue (a
    // resumed job's table may not exist yet either way).
    prepare(jf.job.clone(), Lineage::start(None))?;
    let flywheel = std::env::current_exe()
        .map_err(|e| job_failed(anyhow!("cannot find the flywheel binary: {e}")))?;
    let workdir = jf
        .path
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    let log_dir = jf.job.output.join("_logs");
    let name = jf
        .job
        .output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "job".into());
    let script_path = log_dir.join(format!("flywheel-{name}.sbatch"));
    let script = render_sbatch(&SbatchJob {
        spec: &jf.slurm,
        flywheel,
        job_file: jf.path.clone(),
        workdir,
        log: log_dir.join("slurm-%j.out"),
        default_name: format!("flywheel-{name}"),
        script_path: script_path.clone(),
    })
    .map_err(|e| bad_input(anyhow!("{}: {e}", jf.path.display())))?;
    if args.dry_run {
        print!("{script}");
        return Ok(());
    }
    std::fs::create_dir_all(&log_dir)
        .map_err(|e| job_failed(anyhow!("{}: {e}", log_dir.display())))?;
    // Saved beside the logs: a continuation near the time limit resubmits this very script.
    std::fs::write(&script_path, &script)
        .map_err(|e| job_failed(anyhow!("{}: {e}", script_path.display())))?;
    let env: &[(&str, &str)] = if jf.job.resume {
        &[("FLYWHEEL_RESUME", "1")]
    } else {
        &[]
    };
    let id = sbatch(&script_path, env).map_err(job_failed)?;
    eprintln!(
        "submitted batch job {id}; log: {}",
        log_dir.join(format!("slurm-{id}.out")).display()
    );
    println!("{id}");
    Ok(())
}

//! `flywheel run JOB.toml`: the same job as MPI ranks. Rank 0 coordinates; every other rank is
//! a worker whose mappers run in child processes, so user code can never take a rank (and with
//! it, the whole MPI job) down.

use crate::cli::RunArgs;
use crate::error::CliError;

#[cfg(not(feature = "mpi"))]
pub fn run(_args: RunArgs) -> Result<(), CliError> {
    Err(crate::error::bad_input(anyhow::anyhow!(
        "MPI support is not compiled into this build; rebuild with --features mpi (see README, 'Building for a cluster'), or use `flywheel map` to run in one process"
    )))
}

#[cfg(feature = "mpi")]
pub fn run(args: RunArgs) -> Result<(), CliError> {
    use crate::error::{bad_input, job_failed};
    use crate::jobfile;
    use crate::lineage::Lineage;
    use crate::plan::{coordinate, prepare, print_outcome};
    use anyhow::anyhow;
    use flywheel_protocol::mpi::{MpiTransport, MpiWorkerLink};
    use flywheel_protocol::Rank;
    use flywheel_worker::{run_worker, WorkerConfig};
    use mpi::topology::Communicator;
    use std::time::Duration;

    let mut jf = jobfile::load(&args.job)?;
    // A requeued Slurm job continues from its journal.
    // A requeued Slurm job, or the continuation a job submitted near its time limit
    // (FLYWHEEL_RESUME=1), continues from the journal.
    let restarted = std::env::var("SLURM_RESTART_COUNT")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0)
        > 0;
    if restarted || std::env::var("FLYWHEEL_RESUME").is_ok_and(|v| v == "1") {
        jf.job.resume = true;
    }
    // The rendered sbatch script names the job (kept by requeues and continuations), so that
    // running it again finishes it rather than publishing twice.
    if let Some(id) = std::env::var("FLYWHEEL_JOB_ID")
        .ok()
        .filter(|s| !s.is_empty())
    {
        jf.job.job_id.get_or_insert(id);
    }
    // A panic that unwinds would run MPI_Finalize from a destructor and hang every rank:
    // abort instead, which the launcher notices.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::abort();
    }));
    let universe =
        mpi::initialize().ok_or_else(|| job_failed(anyhow!("MPI was already initialised")))?;
    let world = universe.world();
    let (size, rank) = (world.size(), world.rank());
    let slurm = flywheel_slurm::SlurmEnv::from_env();
    if let Some(n) = slurm.ntasks {
        if n as i32 != size {
            return Err(bad_input(anyhow!(
                "the MPI world has {size} rank(s) but Slurm started {n} tasks: srun and MPI do not agree (with Open MPI use `srun --mpi=pmix`)"
            )));
        }
    }
    if size < 2 {
        return Err(bad_input(anyhow!(
            "flywheel run needs at least 2 MPI ranks (1 coordinator + workers); got {size}. Use `flywheel map` to run in one process"
        )));
    }
    if rank == 0 {
        let lineage = Lineage::start(Some((&jf.path, &jf.sha256, &jf.content)));
        let mut tx = MpiTransport::new(world);
        let prepared = match prepare(jf.job.clone(), lineage) {
            Ok(p) => p,
            Err(e) => {
                // Release the workers before reporting the bad input.
                flywheel_coordinator::stop_workers(&mut tx, Duration::from_secs(30));
                return Err(e);
            }
        };
        let outcome = coordinate(prepared, &mut tx, args.json)?;
        print_outcome(&jf.job, &outcome, args.json);
    } else {
        let mut link = MpiWorkerLink::new(world);
        let mut cfg = WorkerConfig::new(jf.job.clone(), Rank(rank as u32));
        // The GPU(s) Slurm bound to this task, by UUID: sampled, and drained when sick.
        cfg.own_gpus_from_env();
        run_worker(&mut link, cfg).map_err(job_failed)?;
    }
    drop(universe);
    Ok(())
}

//! `flywheel run JOB.toml`: the same job as MPI ranks, one worker per rank. Rank 0 coordinates
//! *and* runs a worker, whose link to the coordinator is in-process channels on a thread of its
//! own that never calls MPI (only the coordinator's thread does); every other rank is a worker
//! over MPI. So N tasks are N workers: a job with one task per GPU uses every GPU. Mappers run in
//! child processes, so user code can never take a rank (and with it, the whole MPI job) down.

use crate::cli::RunArgs;
use crate::error::CliError;

#[cfg(not(feature = "mpi"))]
pub fn run(_args: RunArgs) -> Result<(), CliError> {
    Err(crate::error::bad_input(anyhow::anyhow!(
        "MPI support is not compiled into this build; rebuild with --features mpi (see README, 'Building for a cluster'), or use `flywheel map` to run in one process"
    )))
}

#[cfg(feature = "mpi")]
pub use ranks::run;

#[cfg(feature = "mpi")]
mod ranks {
    use super::*;
    use crate::error::{bad_input, job_failed};
    use crate::jobfile::{self, JobFile};
    use crate::lineage::Lineage;
    use crate::plan::{coordinate, prepare, print_outcome};
    use anyhow::anyhow;
    use flywheel_protocol::mpi::{MpiTransport, MpiWorkerLink};
    use flywheel_protocol::{JobOptions, Rank};
    use flywheel_slurm::SlurmEnv;
    use flywheel_worker::{run_worker, WorkerConfig};
    use mpi::topology::{Communicator, SimpleCommunicator};
    use mpi::Threading;
    use std::time::{Duration, Instant};

    /// How long rank 0 waits for its own worker's thread after the job ended (it was told to
    /// stop; a mapper that does not die is killed with the process).
    const LOCAL_WORKER_JOIN: Duration = Duration::from_secs(60);

    pub fn run(args: RunArgs) -> Result<(), CliError> {
        let jf = load_job(&args)?;
        // A panic that unwinds would run MPI_Finalize from a destructor and hang every rank:
        // abort instead, which the launcher notices.
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default_hook(info);
            std::process::abort();
        }));
        // Threads are many (mappers' executors, rank 0's own worker) but only the thread that
        // initialised MPI calls it.
        let (universe, provided) = mpi::initialize_with_threading(Threading::Funneled)
            .ok_or_else(|| job_failed(anyhow!("MPI was already initialised")))?;
        if provided == Threading::Single {
            // The standard allows no threads at all then; Open MPI and MPICH work all the same
            // when only one thread calls MPI, but a site's build may not.
            tracing::warn!(
                "this MPI library provides only MPI_THREAD_SINGLE (flywheel asks for MPI_THREAD_FUNNELED: only the main thread calls MPI, other threads run mappers); if ranks crash, use an MPI built with thread support"
            );
        }
        let world = universe.world();
        let (size, rank) = (world.size(), world.rank());
        let slurm = SlurmEnv::from_env();
        if let Some(n) = slurm.ntasks {
            if n as i32 != size {
                return Err(bad_input(anyhow!(
                    "the MPI world has {size} rank(s) but Slurm started {n} tasks: srun and MPI do not agree (with Open MPI use `srun --mpi=pmix`)"
                )));
            }
        }
        let cfg = worker_config(&jf.job, rank as u32);
        if rank == 0 {
            let (result, every_rank_stopped) = coordinator_rank(&jf, world, cfg, &args);
            if !every_rank_stopped {
                // MPI_Finalize would wait for the rank that is gone, for ever. Ending without
                // it ends the step, and the batch script starts the next on the nodes left.
                tracing::warn!(
                    "a worker rank did not stop (its node is likely lost): ending without MPI_Finalize"
                );
                std::mem::forget(universe);
                return result;
            }
            result?;
        } else {
            let mut link = MpiWorkerLink::new(world);
            run_worker(&mut link, cfg).map_err(job_failed)?;
        }
        drop(universe);
        Ok(())
    }

    /// The job file, with what the environment adds: a requeued Slurm job, or the continuation
    /// (or new step) the batch script starts (`FLYWHEEL_RESUME=1`), resumes from the journal;
    /// the batch script names the job, so that running it again finishes it.
    fn load_job(args: &RunArgs) -> Result<JobFile, CliError> {
        let mut jf = jobfile::load(&args.job)?;
        let restarted = std::env::var("SLURM_RESTART_COUNT")
            .ok()
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
            > 0;
        if restarted || std::env::var("FLYWHEEL_RESUME").is_ok_and(|v| v == "1") {
            jf.job.resume = true;
        }
        if let Some(id) = std::env::var("FLYWHEEL_JOB_ID")
            .ok()
            .filter(|s| !s.is_empty())
        {
            jf.job.job_id.get_or_insert(id);
        }
        Ok(jf)
    }

    /// The worker of MPI rank `rank` (rank 0's included): its id is its rank, and it owns the
    /// GPU(s) Slurm bound to its task, by UUID: sampled, and drained when sick.
    fn worker_config(job: &JobOptions, rank: u32) -> WorkerConfig {
        let mut cfg = WorkerConfig::new(job.clone(), Rank(rank));
        cfg.own_gpus_from_env();
        cfg
    }

    /// Rank 0: starts its own worker on a thread, then checks, runs and publishes the job;
    /// also whether every worker rank stopped.
    fn coordinator_rank(
        jf: &JobFile,
        world: SimpleCommunicator,
        cfg: WorkerConfig,
        args: &RunArgs,
    ) -> (Result<(), CliError>, bool) {
        let (mut tx, mut link) = MpiTransport::with_local_worker(world);
        let local = std::thread::Builder::new()
            .name("rank0-worker".into())
            .spawn(move || {
                if let Err(e) = run_worker(&mut link, cfg) {
                    tracing::error!("rank 0's worker stopped: {e}");
                }
            })
            .map_err(|e| job_failed(anyhow!("cannot start rank 0's worker thread: {e}")));
        let local = match local {
            Ok(handle) => handle,
            Err(e) => {
                flywheel_coordinator::stop_workers(&mut tx, Duration::from_secs(30));
                return (Err(e), tx.every_rank_said_bye());
            }
        };
        let lineage = Lineage::start(Some((&jf.path, &jf.sha256, &jf.content)));
        let outcome = match prepare(jf.job.clone(), lineage) {
            // Release the workers (this rank's too) before reporting the bad input.
            Err(e) => {
                flywheel_coordinator::stop_workers(&mut tx, Duration::from_secs(30));
                Err(e)
            }
            Ok(prepared) => coordinate(prepared, &mut tx, args.json),
        };
        let every_rank_stopped = tx.every_rank_said_bye();
        drop(tx);
        join_bounded(local, LOCAL_WORKER_JOIN);
        let result = outcome.map(|outcome| print_outcome(&jf.job, &outcome, args.json));
        (result, every_rank_stopped)
    }

    /// Waits up to `limit` for a thread that was told to stop.
    fn join_bounded(handle: std::thread::JoinHandle<()>, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !handle.is_finished() {
            if Instant::now() >= deadline {
                tracing::warn!(
                    "rank 0's worker did not stop within {}s; leaving it",
                    limit.as_secs()
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = handle.join();
    }
}

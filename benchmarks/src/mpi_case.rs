//! The scheduler over MPI: rank 0 runs the real coordinator (`drive`) over the MPI transport;
//! the other ranks answer each assignment at once (no data is read), so what is measured is
//! dispatch + completion cycles per second through MPI messages.
//!
//! `flywheel-bench mpi-scheduler` starts `mpirun -n 4` of this same binary in its rank mode.

use anyhow::{bail, Context, Result};
use flywheel_coordinator::{drive, Coordinator, CoordinatorConfig, DriveOptions};
use flywheel_protocol::mpi::{MpiTransport, MpiWorkerLink};
use flywheel_protocol::{ChunkOutput, ToCoordinator, ToWorker, WorkerLink};
use mpi::topology::Communicator;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs this binary as `ranks` MPI ranks and prints their measurement.
pub fn mpi_case(chunks: usize, ranks: u32) -> Result<()> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new("mpirun");
    cmd.args(["-n", &ranks.to_string(), "--oversubscribe"]);
    // Open MPI refuses root unless told; CI runs as root.
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    let out = cmd
        .arg(&exe)
        .args(["--rows", &chunks.to_string(), "mpi-rank"])
        .output()
        .context("starting mpirun (is Open MPI installed?)")?;
    if !out.status.success() {
        bail!(
            "mpirun failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    print!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}

/// The rank mode: coordinator on rank 0, instant workers elsewhere.
pub fn rank_main(chunks: usize) -> Result<()> {
    let universe = mpi::initialize().context("MPI initialisation")?;
    let world = universe.world();
    let size = world.size();
    if world.rank() == 0 {
        let plan = flywheel_coordinator::sim::synthetic_slices(chunks, 1000);
        let mut coord = Coordinator::new(
            CoordinatorConfig {
                speculate: false,
                ..Default::default()
            },
            plan,
        );
        let mut tx = MpiTransport::new(world);
        let t = Instant::now();
        drive(
            &mut coord,
            &mut tx,
            &DriveOptions {
                stop_grace: Duration::from_secs(10),
                ..Default::default()
            },
            &mut |_| {},
            None,
        )?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "scheduler over MPI ({} workers)  dispatch+completion cycles / s   {:<10.0} ({chunks} chunks in {secs:.2} s)",
            size - 1,
            chunks as f64 / secs
        );
    } else {
        let mut link = MpiWorkerLink::new(world);
        let worker = link.rank().0;
        link.send(ToCoordinator::Ready {
            host: "bench".into(),
        })?;
        loop {
            match link.recv_timeout(Duration::from_secs(60))? {
                Some(ToWorker::Assign(task)) => {
                    link.send(ToCoordinator::Started {
                        chunk: task.chunk,
                        attempt: task.attempt,
                    })?;
                    link.send(ToCoordinator::Done(ChunkOutput {
                        rows_in: 1000,
                        worker,
                        host: "bench".into(),
                        ..ChunkOutput::none(task.chunk, task.attempt)
                    }))?;
                }
                Some(ToWorker::Cancel { .. }) => {}
                Some(ToWorker::Stop) | None => break,
            }
        }
        link.send(ToCoordinator::Bye)?;
    }
    Ok(())
}

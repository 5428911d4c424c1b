//! The MPI case where this build has MPI (feature `mpi`), a clear message where it does not.

#[cfg(feature = "mpi")]
pub use crate::mpi_case::{mpi_case, rank_main};

#[cfg(not(feature = "mpi"))]
pub fn mpi_case(_chunks: usize, _ranks: u32) -> anyhow::Result<()> {
    println!("scheduler over MPI: skipped (flywheel-bench was built without --features mpi)");
    Ok(())
}

#[cfg(not(feature = "mpi"))]
pub fn rank_main(_chunks: usize) -> anyhow::Result<()> {
    anyhow::bail!("flywheel-bench was built without --features mpi")
}

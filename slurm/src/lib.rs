//! Slurm for flywheel: reading the allocation from the environment, expanding hostlists,
//! rendering sbatch scripts from job files, and submitting them.

mod env;
mod hostlist;
mod sbatch;

pub use env::SlurmEnv;
pub use hostlist::{expand_hostlist, HostlistError};
pub use sbatch::{render_sbatch, submit, SbatchJob, SlurmError, SlurmSpec};

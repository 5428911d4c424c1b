//! flywheel's integration tests: the real binary, real Python mapper processes, real Parquet
//! files read back by pyarrow; under the `mpi` feature also real `mpirun` and a real local Slurm.

mod cluster;
mod explore;
mod faults_values;
mod inputs;
mod local;
mod mappers;
mod scheduler;
mod shipped;
mod support;
mod tables;

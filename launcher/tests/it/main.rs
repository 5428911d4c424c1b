//! flywheel's integration tests: the real binary, real Python mapper processes, real Parquet
//! files read back by pyarrow; under the `mpi` feature also real `mpirun` and a real local Slurm.

mod cluster;
mod delta;
mod exactly_once;
mod explore;
mod faults_cli;
mod faults_values;
mod faults_worker;
mod gpu_cluster;
mod incremental;
mod incremental_deps;
mod inputs;
mod local;
mod mappers;
mod scheduler;
mod seeds;
mod shipped;
mod support;
mod tables;
mod text_rows;
mod type_clash;
mod view;
mod view_browser;
mod warm_restarts;

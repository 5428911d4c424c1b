//! A flywheel worker: takes chunk assignments from the coordinator, reads each chunk's rows from
//! the shared filesystem, runs the user's mapper on them in a supervised child process, writes
//! the output as a Parquet file and reports back. A mapper that crashes or hangs costs its chunk,
//! never the worker.

mod child;
mod convert;
mod error;
#[cfg(target_os = "linux")]
mod fork_server;
mod gpu;
pub mod gpu_owner;
mod lines;
mod mapper;
mod process;
mod runtime;
mod shm;

pub use error::{ChunkError, WorkerError};
pub use gpu::{
    gpu_count, gpu_sampler, nvml_devices, owned_gpus_from_env, FakeSampler, GpuId, GpuSampler,
    NoGpu, NvmlSampler,
};
pub use mapper::{build_mapper, AbortHandle, IdentityMapper, MapOutput, Mapper, RowError};
pub use process::{python_runner_path, ProcessMapper, RUNNER_SOURCE, SHIPPED_SOURCE};
pub use runtime::{hostname, run_worker, run_worker_with, WorkerConfig};

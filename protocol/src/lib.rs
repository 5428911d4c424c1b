//! The vocabulary shared by flywheel's coordinator and workers: id newtypes, the small control
//! messages that travel between ranks, the job options every rank reads, and the transport seam
//! (`Transport` for the coordinator, `WorkerLink` for a worker) with its implementations:
//! in-process channels (the embedded default) and MPI (behind the `mpi` feature).
//!
//! Only control messages travel here: workers read their input and write their output on the
//! shared filesystem themselves.

mod channel;
mod ids;
mod job;
mod messages;
#[cfg(feature = "mpi")]
pub mod mpi;
mod shipped;
mod transport;

pub use channel::{
    channel_transport, channel_transport_ranked, ChannelTransport, ChannelWorkerLink,
};
pub use ids::{
    chunk_seed, relative_path, rows_seed, seed_for, slice_seed, start_seed, Attempt, ChunkId, Rank,
};
pub use job::{
    parse_size, JobOptions, MapperSpec, MapperSpecError, Mode, RowErrorPolicy, SeedScheme,
};
pub use messages::{
    ChunkOutput, ChunkTask, FailureKind, GpuSample, InputFormat, InputSlice, ToCoordinator,
    ToWorker, WorkerGpu,
};
pub use shipped::{ArgDefault, ArgKind, ShippedArg, ShippedArgError, ShippedMapper};
pub use transport::{Transport, TransportError, WorkerLink};

/// This machine's host name (as workers and journals report it).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".to_string();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

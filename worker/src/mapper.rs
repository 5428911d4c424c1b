//! The mapper seam: what a worker runs on each chunk.

use crate::{ChunkError, ProcessMapper, WorkerConfig, WorkerError};
use arrow::record_batch::RecordBatch;
use flywheel_protocol::{ChunkTask, MapperSpec, Rank};
use std::sync::{Arc, Mutex};

/// Runs a user's transformation on one chunk at a time.
///
/// Contract: `map_chunk` returns the output rows of the chunk in order, or a [`ChunkError`] that
/// costs this attempt only; it must not panic on bad user code or data. An implementation that
/// runs a child process restarts it on the next call after a crash.
pub trait Mapper: Send {
    fn map_chunk(
        &mut self,
        task: &ChunkTask,
        worker: Rank,
        input: Vec<RecordBatch>,
    ) -> Result<MapOutput, ChunkError>;

    /// Runs once when the worker stops (a Python class's `finish()`).
    fn finish(&mut self) {}

    /// The local files the mapper's process reported it depends on (a Python mapper's modules
    /// outside the interpreter's libraries and its declared `depends_on`), as of its last start.
    fn dependencies(&self) -> &[String] {
        &[]
    }
}

/// A mapper call that raised, kept with `--on-row-error skip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// Index of the first failing input row within the chunk.
    pub row: u64,
    /// How many input rows the failing call covered (a batch mapper's whole batch).
    pub rows: u64,
    /// The exception, one line.
    pub message: String,
    pub traceback: String,
}

/// One chunk's result.
#[derive(Debug, Default)]
pub struct MapOutput {
    pub batches: Vec<RecordBatch>,
    pub row_errors: Vec<RowError>,
}

/// `builtin:identity`: output rows are input rows.
pub struct IdentityMapper;

impl Mapper for IdentityMapper {
    fn map_chunk(
        &mut self,
        _: &ChunkTask,
        _: Rank,
        input: Vec<RecordBatch>,
    ) -> Result<MapOutput, ChunkError> {
        Ok(MapOutput {
            batches: input,
            row_errors: Vec::new(),
        })
    }
}

/// Lets another thread kill the mapper process that is running a chunk (on `Stop`).
#[derive(Debug, Clone, Default)]
pub struct AbortHandle(Arc<Mutex<Option<u32>>>);

impl AbortHandle {
    pub(crate) fn set(&self, pid: Option<u32>) {
        if let Ok(mut g) = self.0.lock() {
            *g = pid;
        }
    }

    /// Kills the mapper process, if one runs, with its process group (what it started).
    pub fn abort(&self) {
        if let Ok(g) = self.0.lock() {
            if let Some(pid) = *g {
                crate::child::signal_group(pid, libc::SIGKILL);
            }
        }
    }
}

/// Builds the mapper a spec names.
pub fn build_mapper(
    cfg: &WorkerConfig,
    abort: AbortHandle,
) -> Result<Box<dyn Mapper>, WorkerError> {
    Ok(match MapperSpec::parse(&cfg.job.mapper)? {
        MapperSpec::Builtin { .. } => Box::new(IdentityMapper),
        spec @ (MapperSpec::Python { .. }
        | MapperSpec::Exec { .. }
        | MapperSpec::Shipped { .. }) => Box::new(ProcessMapper::new(&spec, cfg, abort)?),
    })
}

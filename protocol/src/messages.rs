//! The control messages. They stay small: a chunk is described by where its rows are, never by
//! the rows themselves.

use crate::{Attempt, ChunkId, Rank};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The on-disk format of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    Parquet,
    Jsonl,
    Csv,
    Arrow,
    Hdf5,
}

/// Where one chunk's input rows are: a row range of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSlice {
    /// Absolute path of the file.
    pub path: String,
    pub format: InputFormat,
    /// For HDF5, the group whose datasets are the columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// First row of the chunk within the file (0-based). For text formats (JSONL, CSV) cut by
    /// byte ranges, an estimate.
    pub row_start: u64,
    /// Number of rows (an estimate for text formats).
    pub row_count: u64,
    /// For text formats: the byte range; the chunk holds the lines that start inside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<(u64, u64)>,
    /// For text formats: the schema inferred when planning (Arrow JSON), so that every chunk of
    /// a file decodes to the same types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Arc<str>>,
}

/// One unit of work sent to a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkTask {
    pub chunk: ChunkId,
    pub attempt: Attempt,
    /// The per-chunk seed (see [`crate::chunk_seed`]).
    pub seed: u64,
    pub input: InputSlice,
    /// The output schema fixed so far (Arrow schema as JSON); the worker casts its output to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Arc<str>>,
}

/// What a finished chunk left on the shared filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkOutput {
    pub chunk: ChunkId,
    pub attempt: Attempt,
    /// Data file path relative to the output table directory; `None` when the chunk yielded no rows.
    pub file: Option<String>,
    pub rows_in: u64,
    pub rows_out: u64,
    pub bytes: u64,
    /// The Arrow schema of the output (JSON); `None` when the chunk yielded no rows.
    pub schema: Option<Arc<str>>,
    /// Wall time the worker spent on the chunk, in milliseconds.
    pub wall_ms: u64,
    /// With `--on-row-error skip`: the file (relative to the `_errors` table) holding the rows
    /// whose mapper call raised, and how many there were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors_file: Option<String>,
    #[serde(default)]
    pub error_rows: u64,
    /// Per-column statistics of the file (see `flywheel_formats::ColumnStats`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<serde_json::Value>,
    /// The worker that wrote it, and its host.
    #[serde(default)]
    pub worker: u32,
    #[serde(default)]
    pub host: String,
    /// The local files the worker's mapper depends on (absolute paths), when they changed
    /// since its previous output (a Python mapper's modules and declared files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
}

impl ChunkOutput {
    /// An attempt's output with no file, no rows and nothing measured: what a chunk that
    /// yielded nothing reports, and the base others fill in.
    pub fn none(chunk: ChunkId, attempt: Attempt) -> ChunkOutput {
        ChunkOutput {
            chunk,
            attempt,
            file: None,
            rows_in: 0,
            rows_out: 0,
            bytes: 0,
            schema: None,
            wall_ms: 0,
            errors_file: None,
            error_rows: 0,
            stats: None,
            worker: 0,
            host: String::new(),
            dependencies: Vec::new(),
        }
    }
}

/// A worker's GPU over the job so far: which one, its last reading and its mean utilisation
/// (journaled with each chunk it finished, so `flywheel status` shows it while the job runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerGpu {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    pub name: String,
    /// NVML index on its node.
    pub index: u32,
    /// Utilisation in percent: the last reading and the mean of all readings (rounded).
    pub last_utilization: u32,
    pub mean_utilization: u32,
    pub memory_used_mb: u64,
    pub memory_total_mb: u64,
}

/// Why a chunk attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The mapper raised on a row, or exited, crashed or was killed.
    Mapper,
    /// The mapper process could not start (a Python import error, `start()` raised).
    MapperStart,
    /// The mapper ran past the chunk timeout and was killed.
    Timeout,
    /// The mapper's output was invalid (bad JSON, wrong schema).
    InvalidOutput,
    /// Reading the input or writing the output failed.
    Io,
    /// The worker rank stopped answering.
    WorkerLost,
    /// The input itself is bad (a line that is not JSON, a value of the wrong type): retrying
    /// cannot help, so the job stops at once.
    BadInput,
}

/// One reading of a worker's GPU (from NVML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuSample {
    /// NVML device index.
    pub index: u32,
    /// The device's UUID (`GPU-…`), which names it whatever the index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    pub name: String,
    /// Percent of the last sample period a kernel ran.
    pub utilization: u32,
    pub memory_used_mb: u64,
    pub memory_total_mb: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_w: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<u32>,
    /// Uncorrected ECC errors since the driver loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecc_uncorrected: Option<u64>,
    /// Why the GPU is unfit for work (lost, uncorrected ECC errors), if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Coordinator → worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToWorker {
    /// Run this chunk (queued behind any the worker holds).
    Assign(ChunkTask),
    /// Another attempt of this chunk won (or it was given to an idle worker): drop it if it has
    /// not started; its result, if any, will be discarded.
    Cancel { chunk: ChunkId, attempt: Attempt },
    /// No more work: finish and exit.
    Stop,
}

/// Worker → coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToCoordinator {
    /// The worker started and can take chunks.
    Ready { host: String },
    /// The worker began running a chunk attempt (it is no longer only queued).
    Started { chunk: ChunkId, attempt: Attempt },
    /// A chunk attempt finished; its file is written and synced.
    Done(ChunkOutput),
    /// A chunk attempt failed.
    Failed {
        chunk: ChunkId,
        attempt: Attempt,
        kind: FailureKind,
        error: String,
    },
    /// The worker is alive; with its GPU's reading when it owns one.
    Heartbeat { gpu: Option<GpuSample> },
    /// Answer to `Stop`: the worker is exiting.
    Bye,
}

impl ToCoordinator {
    /// The sender, for log lines.
    pub fn describe(&self, from: Rank) -> String {
        match self {
            ToCoordinator::Ready { host } => format!("{from} ready on {host}"),
            ToCoordinator::Started { chunk, attempt } => {
                format!("{from} started {chunk} {attempt}")
            }
            ToCoordinator::Done(o) => format!("{from} finished {} ({} rows)", o.chunk, o.rows_out),
            ToCoordinator::Failed {
                chunk,
                attempt,
                error,
                ..
            } => format!("{from} failed {chunk} {attempt}: {error}"),
            ToCoordinator::Heartbeat { .. } => format!("{from} heartbeat"),
            ToCoordinator::Bye => format!("{from} exiting"),
        }
    }
}

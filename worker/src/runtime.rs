//! The worker's loop. The thread that owns the link (for MPI: the thread that may call MPI)
//! only moves messages and sends heartbeats; an executor thread reads, maps and writes chunks in
//! the order they were assigned.

use crate::{build_mapper, AbortHandle, ChunkError, MapOutput, Mapper, RowError, WorkerError};
use arrow::array::{ArrayRef, StringArray, UInt32Array, UInt64Array};
use arrow::record_batch::RecordBatch;
use crossbeam_channel::{unbounded, Receiver, Sender};
use flywheel_formats::{read_slice, schema_to_json, write_chunk_file, Table};
use flywheel_protocol::{
    ChunkOutput, ChunkTask, FailureKind, InputSlice, JobOptions, Rank, RowErrorPolicy,
    ToCoordinator, ToWorker, WorkerLink,
};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a worker needs besides its link.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub job: JobOptions,
    pub rank: Rank,
    pub host: String,
    /// Extra environment for the mapper process (e.g. `CUDA_VISIBLE_DEVICES`).
    pub extra_env: Vec<(String, String)>,
    /// Rows per record batch when reading input.
    pub batch_rows: usize,
    /// Interval between heartbeats.
    pub heartbeat: Duration,
    /// Distinguishes this worker process's file names from any other's.
    pub file_tag: String,
    /// The GPUs this worker owns (sampled through NVML; none: no readings).
    pub gpus: Vec<crate::GpuId>,
    /// Threads for the mapper's own pools (OpenMP, BLAS, Rayon): this worker's share of the
    /// CPUs this process may use. [`WorkerConfig::share_cpus`] sets it for several workers.
    pub mapper_threads: usize,
}

impl WorkerConfig {
    /// Defaults for a worker of `job` with rank `rank`.
    pub fn new(job: JobOptions, rank: Rank) -> WorkerConfig {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        WorkerConfig {
            job,
            rank,
            host: hostname(),
            extra_env: Vec::new(),
            batch_rows: 8192,
            heartbeat: Duration::from_secs(1),
            file_tag: format!("{:x}{:x}", std::process::id(), nanos & 0xffff_ffff),
            gpus: Vec::new(),
            mapper_threads: cpus_here(),
        }
    }

    /// This worker is one of `workers` in this process: its mapper's pools get an even share of
    /// the CPUs (at least one thread).
    pub fn share_cpus(&mut self, workers: usize) {
        self.mapper_threads = (cpus_here() / workers.max(1)).max(1);
    }
}

/// The CPUs this process may run on: its affinity mask and cgroup quota (a Slurm task's
/// allocation), as the standard library reads them.
fn cpus_here() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

pub use flywheel_protocol::hostname;

/// Runs a worker until the coordinator says `Stop` (or the link breaks).
pub fn run_worker(link: &mut impl WorkerLink, cfg: WorkerConfig) -> Result<(), WorkerError> {
    let sampler = crate::gpu_sampler(&cfg.gpus);
    run_worker_with(link, cfg, sampler)
}

/// Fault injection for the tests: panics at the named point when `FLYWHEEL_PANIC_AT` names it
/// (`map-chunk`: in the executor, inside a chunk; `executor`: in the executor, between chunks;
/// `link`: in the thread that owns the link, on an assignment).
pub(crate) fn panic_point(point: &str) {
    if std::env::var("FLYWHEEL_PANIC_AT").is_ok_and(|s| s == point) {
        panic!("injected panic at {point} (FLYWHEEL_PANIC_AT)");
    }
}

/// What the link thread keeps between steps.
struct LinkState {
    last_sent: Instant,
    /// The last GPU reading (taken every heartbeat interval, however busy the link).
    last_sampled: Instant,
    /// Attempts assigned to this worker that it has not yet reported done or failed.
    outstanding: Vec<(flywheel_protocol::ChunkId, flywheel_protocol::Attempt)>,
    /// Why this worker can run no more chunks (its executor died, or a panic in this thread):
    /// every attempt it holds or gets fails with this reason, so the coordinator retries them
    /// elsewhere and drains this worker rather than waiting on it.
    broken: Option<String>,
}

/// [`run_worker`] with a given GPU sampler (tests pass a fake).
pub fn run_worker_with(
    link: &mut impl WorkerLink,
    cfg: WorkerConfig,
    mut sampler: Box<dyn crate::GpuSampler>,
) -> Result<(), WorkerError> {
    let abort = AbortHandle::default();
    let mapper = build_mapper(&cfg, abort.clone())?;
    let (task_tx, task_rx) = unbounded::<ChunkTask>();
    let (result_tx, result_rx) = unbounded::<ToCoordinator>();
    let stopping = Arc::new(AtomicBool::new(false));
    let cancelled: Cancelled = Arc::default();
    let mut executor = Some({
        let (cfg, stopping, cancelled, abort) = (
            cfg.clone(),
            Arc::clone(&stopping),
            Arc::clone(&cancelled),
            abort.clone(),
        );
        std::thread::Builder::new()
            .name(format!("worker-{}", cfg.rank.0))
            .spawn(move || {
                execute(
                    mapper, &cfg, &task_rx, &result_tx, &stopping, &cancelled, &abort,
                )
            })
            .map_err(|e| WorkerError::Runner {
                path: PathBuf::from("<thread>"),
                source: e,
            })?
    });
    link.send(ToCoordinator::Ready {
        host: cfg.host.clone(),
    })?;
    let mut state = LinkState {
        last_sent: Instant::now(),
        last_sampled: Instant::now(),
        outstanding: Vec::new(),
        broken: None,
    };
    let outcome = loop {
        // An executor that ended while no stop was asked for died: say so, never go quiet.
        if state.broken.is_none() && executor.as_ref().is_some_and(|e| e.is_finished()) {
            let died = executor.take().map(std::thread::JoinHandle::join);
            if let Err(e) = executor_died(link, &cfg, &mut state, &result_rx, died) {
                break Err(e);
            }
        }
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            link_step(
                link,
                &cfg,
                &mut state,
                &result_rx,
                &task_tx,
                &cancelled,
                &mut sampler,
            )
        }));
        match step {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => break Ok(()),
            Ok(Err(e)) => break Err(e),
            Err(payload) => {
                let why = format!(
                    "{}'s link thread panicked: {}",
                    cfg.rank,
                    crate::child::panic_message(payload.as_ref())
                );
                tracing::error!("{why}");
                if let Err(e) = fail_outstanding(link, &mut state, why) {
                    break Err(e);
                }
            }
        }
    };
    // Stop: drop queued work, kill a mapper that is still running, let finish() run.
    stopping.store(true, Ordering::SeqCst);
    drop(task_tx);
    abort.abort();
    if let Some(executor) = executor {
        let _ = executor.join();
    }
    outcome?;
    // A chunk that finished as the stop came (a losing speculative copy): its file is written,
    // so say so; the coordinator removes the files it does not publish.
    while let Ok(msg) = result_rx.try_recv() {
        forward(link, &mut state, msg)?;
    }
    link.send(ToCoordinator::Bye)?;
    Ok(())
}

/// Reports a dead executor thread: what it sent before it died goes on, then every attempt the
/// worker holds fails with the reason (its panic message).
fn executor_died(
    link: &mut impl WorkerLink,
    cfg: &WorkerConfig,
    state: &mut LinkState,
    results: &Receiver<ToCoordinator>,
    died: Option<std::thread::Result<()>>,
) -> Result<(), WorkerError> {
    let why = match died {
        Some(Err(payload)) => crate::child::panic_message(payload.as_ref()),
        _ => "it ended".to_string(),
    };
    while let Ok(msg) = results.try_recv() {
        forward(link, state, msg)?;
    }
    let why = format!("{}'s executor thread died: {why}", cfg.rank);
    tracing::error!("{why}");
    fail_outstanding(link, state, why)
}

/// Sends a message from the executor on, keeping track of what is outstanding.
fn forward(
    link: &mut impl WorkerLink,
    state: &mut LinkState,
    msg: ToCoordinator,
) -> Result<(), WorkerError> {
    match &msg {
        ToCoordinator::Done(out) => state.outstanding.retain(|a| *a != (out.chunk, out.attempt)),
        ToCoordinator::Failed { chunk, attempt, .. } => {
            state.outstanding.retain(|a| *a != (*chunk, *attempt))
        }
        _ => {}
    }
    link.send(msg)?;
    state.last_sent = Instant::now();
    Ok(())
}

/// Marks the worker broken and fails every attempt it holds with `why`.
fn fail_outstanding(
    link: &mut impl WorkerLink,
    state: &mut LinkState,
    why: String,
) -> Result<(), WorkerError> {
    for (chunk, attempt) in std::mem::take(&mut state.outstanding) {
        link.send(ToCoordinator::Failed {
            chunk,
            attempt,
            kind: FailureKind::Mapper,
            error: why.clone(),
        })?;
    }
    state.last_sent = Instant::now();
    state.broken = Some(why);
    Ok(())
}

/// One turn of the link thread: forward results, heartbeat, take one message. `Ok(false)` on
/// `Stop`.
fn link_step(
    link: &mut impl WorkerLink,
    cfg: &WorkerConfig,
    state: &mut LinkState,
    results: &Receiver<ToCoordinator>,
    tasks: &Sender<ChunkTask>,
    cancelled: &Cancelled,
    sampler: &mut Box<dyn crate::GpuSampler>,
) -> Result<bool, WorkerError> {
    while let Ok(msg) = results.try_recv() {
        forward(link, state, msg)?;
    }
    // A heartbeat after a silent interval, and one with each GPU reading even when results
    // keep the link busy: a sick GPU is seen within one interval.
    let gpu = crate::gpu::sample_every(sampler, &mut state.last_sampled, cfg.heartbeat);
    if gpu.is_some() || state.last_sent.elapsed() >= cfg.heartbeat {
        link.send(ToCoordinator::Heartbeat { gpu })?;
        state.last_sent = Instant::now();
    }
    match link.recv_timeout(Duration::from_millis(20))? {
        Some(ToWorker::Assign(task)) => {
            if let Some(why) = &state.broken {
                link.send(ToCoordinator::Failed {
                    chunk: task.chunk,
                    attempt: task.attempt,
                    kind: FailureKind::Mapper,
                    error: format!("{why}; it can run no chunks"),
                })?;
                return Ok(true);
            }
            state.outstanding.push((task.chunk, task.attempt));
            panic_point("link");
            let _ = tasks.send(task);
        }
        Some(ToWorker::Cancel { chunk, attempt }) => {
            state.outstanding.retain(|a| *a != (chunk, attempt));
            if let Ok(mut c) = cancelled.lock() {
                c.insert((chunk, attempt));
            }
        }
        Some(ToWorker::Stop) => return Ok(false),
        None => {}
    }
    Ok(true)
}

/// Attempts the coordinator cancelled (another attempt won, or the chunk was stolen).
type Cancelled = Arc<
    std::sync::Mutex<
        std::collections::HashSet<(flywheel_protocol::ChunkId, flywheel_protocol::Attempt)>,
    >,
>;

fn execute(
    mut mapper: Box<dyn Mapper>,
    cfg: &WorkerConfig,
    tasks: &Receiver<ChunkTask>,
    results: &Sender<ToCoordinator>,
    stopping: &AtomicBool,
    cancelled: &Cancelled,
    abort: &AbortHandle,
) {
    let mut reported_deps: Vec<String> = Vec::new();
    for task in tasks.iter() {
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        // A stolen or already-won attempt is dropped before it starts.
        if cancelled
            .lock()
            .map(|mut c| c.remove(&(task.chunk, task.attempt)))
            .unwrap_or(false)
        {
            continue;
        }
        panic_point("executor");
        if results
            .send(ToCoordinator::Started {
                chunk: task.chunk,
                attempt: task.attempt,
            })
            .is_err()
        {
            break;
        }
        // A panic (a bug, in flywheel or a library) costs this attempt, never the worker.
        let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            panic_point("map-chunk");
            run_chunk(mapper.as_mut(), cfg, &task)
        }));
        let msg = match attempt {
            Ok(Ok(mut out)) => {
                // Each worker tells the coordinator its mapper's dependencies when they change
                // (its first output, a restart that imported other modules).
                let deps = mapper.dependencies();
                if deps != reported_deps.as_slice() {
                    reported_deps = deps.to_vec();
                    out.dependencies = reported_deps.clone();
                }
                ToCoordinator::Done(out)
            }
            Ok(Err(e)) => ToCoordinator::Failed {
                chunk: task.chunk,
                attempt: task.attempt,
                kind: e.kind,
                error: e.message,
            },
            Err(payload) => {
                let why = crate::child::panic_message(payload.as_ref());
                tracing::error!(
                    "{} panicked on {} {}: {why}",
                    cfg.rank,
                    task.chunk,
                    task.attempt
                );
                // The mapper may be stopped mid-chunk: the next chunk gets a fresh one.
                match build_mapper(cfg, abort.clone()) {
                    Ok(fresh) => mapper = fresh,
                    Err(e) => tracing::error!("{}: cannot restart the mapper: {e}", cfg.rank),
                }
                ToCoordinator::Failed {
                    chunk: task.chunk,
                    attempt: task.attempt,
                    kind: FailureKind::Mapper,
                    error: format!("{} panicked on {}: {why}", cfg.rank, task.chunk),
                }
            }
        };
        if results.send(msg).is_err() {
            break;
        }
    }
    mapper.finish();
}

fn run_chunk(
    mapper: &mut dyn Mapper,
    cfg: &WorkerConfig,
    task: &ChunkTask,
) -> Result<ChunkOutput, ChunkError> {
    let started = Instant::now();
    let input = read_slice(&task.input, cfg.batch_rows)?;
    let rows_in: u64 = input.iter().map(|b| b.num_rows() as u64).sum();
    let MapOutput {
        batches,
        row_errors,
    } = if cfg.job.on_row_error == RowErrorPolicy::Skip {
        map_isolating(mapper, task, cfg.rank, input, 0)?
    } else {
        mapper.map_chunk(task, cfg.rank, input)?
    };
    let batches = match &task.schema {
        Some(schema) => crate::convert::conform(batches, schema, task)?,
        None => batches,
    };
    let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
    let name = format!(
        "c{:06}-a{}-r{}-{}.parquet",
        task.chunk.0, task.attempt.0, cfg.rank.0, cfg.file_tag
    );
    let table = Table::new(&cfg.job.output);
    let stats = (!batches.is_empty())
        .then(|| serde_json::to_value(flywheel_formats::batch_stats(&batches)).unwrap_or_default());
    let (file, rows_out, bytes, schema) = if batches.is_empty() {
        (None, 0, 0, None)
    } else {
        let written = write_chunk_file(&table.data_dir().join(&name), &batches)?;
        (
            Some(format!("data/{name}")),
            written.rows,
            written.bytes,
            Some(schema_to_json(&batches[0].schema())),
        )
    };
    let (errors_file, error_rows) = if row_errors.is_empty() {
        (None, 0)
    } else {
        let errors = Table::new(cfg.job.output.join("_errors"));
        let batch = error_batch(task, &row_errors, cfg.batch_rows)?;
        let n = batch.num_rows() as u64;
        write_chunk_file(&errors.data_dir().join(&name), &[batch])?;
        (Some(format!("data/{name}")), n)
    };
    Ok(ChunkOutput {
        chunk: task.chunk,
        attempt: task.attempt,
        file,
        rows_in,
        rows_out,
        bytes,
        schema: schema.map(Into::into),
        wall_ms: started.elapsed().as_millis() as u64,
        errors_file,
        error_rows,
        stats,
        worker: cfg.rank.0,
        host: cfg.host.clone(),
        dependencies: Vec::new(),
    })
}

/// Rows `start..start + len` of a chunk's batches (zero-copy slices).
fn slice_rows(batches: &[RecordBatch], start: usize, len: usize) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    let (mut skip, mut take) = (start, len);
    for b in batches {
        if take == 0 {
            break;
        }
        let n = b.num_rows();
        if skip >= n {
            skip -= n;
            continue;
        }
        let k = (n - skip).min(take);
        out.push(b.slice(skip, k));
        take -= k;
        skip = 0;
    }
    out
}

/// With `--on-row-error skip`: when the mapper process dies on a chunk (a crash, a signal, a
/// exit), the rows are split in halves and mapped again, down to the single
/// rows that kill it; those go to `_errors` and the rest of the chunk succeeds (poison-row
/// isolation). `offset` is the position of `input` within the chunk.
fn map_isolating(
    mapper: &mut dyn Mapper,
    task: &ChunkTask,
    rank: flywheel_protocol::Rank,
    input: Vec<RecordBatch>,
    offset: u64,
) -> Result<MapOutput, ChunkError> {
    let rows: usize = input.iter().map(RecordBatch::num_rows).sum();
    match mapper.map_chunk(task, rank, input.clone()) {
        Ok(mut out) => {
            for e in &mut out.row_errors {
                e.row += offset;
            }
            Ok(out)
        }
        // Only crashes are bisected: a hang would cost a chunk timeout per level.
        Err(e) if e.kind == FailureKind::Mapper && rows > 0 => {
            if rows == 1 {
                tracing::warn!(
                    "{}: row {} kills the mapper; it goes to _errors",
                    task.chunk,
                    offset
                );
                return Ok(MapOutput {
                    batches: Vec::new(),
                    row_errors: vec![RowError {
                        row: offset,
                        rows: 1,
                        message: format!("the mapper died on this row: {}", e.message),
                        traceback: String::new(),
                    }],
                });
            }
            let half = rows / 2;
            let mut first = map_isolating(mapper, task, rank, slice_rows(&input, 0, half), offset)?;
            let second = map_isolating(
                mapper,
                task,
                rank,
                slice_rows(&input, half, rows - half),
                offset + half as u64,
            )?;
            first.batches.extend(second.batches);
            first.row_errors.extend(second.row_errors);
            Ok(first)
        }
        Err(e) => Err(e),
    }
}

/// The `_errors` rows of one chunk: where each failing input row is, the row itself (JSON), and
/// the error.
fn error_batch(
    task: &ChunkTask,
    errors: &[RowError],
    batch_rows: usize,
) -> Result<RecordBatch, ChunkError> {
    let (mut chunk, mut source, mut row, mut input, mut message, mut traceback) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    // A text chunk is read by its bytes (a slice's rows are not where its rows are): read once,
    // and each failing row taken from it. Other formats read the failing row alone.
    let text = match task.input.bytes {
        Some(_) => Some(read_slice(&task.input, batch_rows)?),
        None => None,
    };
    for e in errors {
        for k in 0..e.rows.max(1) {
            let at = task.input.row_start + e.row + k;
            let rows = match &text {
                Some(chunk) => slice_rows(chunk, (e.row + k) as usize, 1),
                None => read_slice(
                    &InputSlice {
                        row_start: at,
                        row_count: 1,
                        ..task.input.clone()
                    },
                    batch_rows,
                )?,
            };
            let mut json = Vec::new();
            crate::convert::batches_to_json_lines(&rows, &mut json)?;
            chunk.push(task.chunk.0);
            source.push(task.input.path.clone());
            row.push(at);
            input.push(String::from_utf8_lossy(&json).trim_end().to_string());
            message.push(e.message.clone());
            traceback.push(e.traceback.clone());
        }
    }
    let schema = Arc::new(flywheel_formats::errors_schema());
    let cols: Vec<ArrayRef> = vec![
        Arc::new(UInt32Array::from(chunk)),
        Arc::new(StringArray::from(source)),
        Arc::new(UInt64Array::from(row)),
        Arc::new(StringArray::from(input)),
        Arc::new(StringArray::from(message)),
        Arc::new(StringArray::from(traceback)),
    ];
    RecordBatch::try_new(schema, cols)
        .map_err(|e| ChunkError::new(FailureKind::Io, format!("cannot build the error rows: {e}")))
}

#[cfg(test)]
mod tests;

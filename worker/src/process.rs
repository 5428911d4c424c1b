//! Mappers in a supervised child process, speaking the JSON-lines protocol (docs/protocol.md):
//! Python mappers through the embedded runner, `exec:` mappers directly.
//!
//! One process lives across chunks (a Python class's `start()` runs once). If it exits, crashes,
//! is killed or runs past the chunk timeout, the chunk fails, the process is reaped, and the next
//! chunk starts a fresh one. Every read from it has a deadline: the handshake deadline for its
//! first line, the chunk timeout while a chunk runs (`child` owns the process group, the kill and
//! the reap; `start` starts it and reads its handshake; `answer` reads and checks a chunk's
//! answer; the lines themselves are typed in `lines`).

mod answer;
mod start;

use crate::child::{
    describe_exit, panic_message, stop_process, wait_until, Message, Running, Wait, DRAIN_GRACE,
    EXIT_GRACE, KILL_GRACE, POLL,
};
use crate::convert::{batches_to_json_lines, ipc_schema, ipc_stream};
use crate::lines::{ChunkHeader, ChunkHeaderBody};
use crate::{AbortHandle, ChunkError, MapOutput, Mapper, WorkerConfig, WorkerError};
use arrow::record_batch::RecordBatch;
use crossbeam_channel::RecvTimeoutError;
use flywheel_protocol::{ChunkTask, FailureKind, MapperSpec, Rank, RowErrorPolicy};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::process::ChildStdin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The Python runner, compiled into the binary.
pub const RUNNER_SOURCE: &str = include_str!("../../python/flywheel/_runner.py");
/// The shipped mappers (`flywheel:generate`, `flywheel:embed`), compiled into the binary and
/// written beside the runner.
pub const SHIPPED_SOURCE: &str = include_str!("../../python/flywheel/_shipped.py");
/// The fork server (warm restarts), compiled into the binary and written beside the runner.
pub const FORK_SERVER_SOURCE: &str = include_str!("../../python/flywheel/_fork_server.py");

const STDERR_TAIL: usize = 40;

/// Puts the embedded runner and shipped mappers on disk (once per content) and returns the
/// runner's path; `flywheel_shipped.py` is beside it.
pub fn python_runner_path() -> Result<PathBuf, WorkerError> {
    let mut hasher = Sha256::new();
    hasher.update(RUNNER_SOURCE.as_bytes());
    hasher.update(SHIPPED_SOURCE.as_bytes());
    hasher.update(FORK_SERVER_SOURCE.as_bytes());
    let digest = hex::encode(hasher.finalize());
    let dir = std::env::temp_dir().join(format!("flywheel-runner-{}", &digest[..16]));
    for (name, source) in [
        ("flywheel_shipped.py", SHIPPED_SOURCE),
        ("flywheel_fork_server.py", FORK_SERVER_SOURCE),
        ("flywheel_runner.py", RUNNER_SOURCE),
    ] {
        let path = dir.join(name);
        let err = |source| WorkerError::Runner {
            path: path.clone(),
            source,
        };
        if std::fs::read_to_string(&path)
            .map(|s| s == source)
            .unwrap_or(false)
        {
            continue;
        }
        std::fs::create_dir_all(&dir).map_err(err)?;
        let tmp = dir.join(format!(
            ".tmp-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&tmp, source).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)?;
    }
    Ok(dir.join("flywheel_runner.py"))
}

/// The runner's command for the Python mapper `name` in `file`, given `args` (JSON); adds what
/// the runner reads to `env`. Returns (program, arguments, label).
fn python_mapper(
    env: &mut Vec<(String, String)>,
    cfg: &WorkerConfig,
    file: &std::path::Path,
    name: &str,
    args: String,
) -> Result<(String, Vec<String>, String), WorkerError> {
    let runner = python_runner_path()?;
    env.push((
        "FLYWHEEL_MAPPER".to_string(),
        format!("{}:{name}", file.display()),
    ));
    env.push(("FLYWHEEL_MAPPER_ARGS".to_string(), args));
    Ok((
        cfg.job.python.clone(),
        vec!["-u".to_string(), runner.display().to_string()],
        name.to_string(),
    ))
}

/// A mapper process under supervision.
/// The variables that size the thread pools a mapper's libraries start (OpenMP, OpenBLAS, MKL,
/// Rayon), as Ray sets them for its workers: otherwise each of N mappers on a node starts a pool
/// as wide as the node, and they spin against each other.
pub const THREAD_POOL_VARS: [&str; 4] = [
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "RAYON_NUM_THREADS",
];

/// Each pool variable at `threads`, except those the user set (`is_set`): theirs win.
fn thread_pool_env(threads: usize, is_set: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    THREAD_POOL_VARS
        .iter()
        .filter(|k| !is_set(k))
        .map(|k| (k.to_string(), threads.max(1).to_string()))
        .collect()
}

pub struct ProcessMapper {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    label: String,
    timeout: Duration,
    policy: RowErrorPolicy,
    rank: Rank,
    running: Option<Running>,
    abort: AbortHandle,
    current_chunk: Arc<AtomicI64>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    /// RLIMIT_DATA for the process, in bytes.
    mem_limit: Option<u64>,
    /// The fork server that starts a Python mapper's processes warm.
    fork_server: start::ServerState,
    /// Whether its processes get shared memory for their Arrow data (Python mappers).
    shm: bool,
    /// The local files its last started process reported it depends on.
    depends: Vec<String>,
}

impl ProcessMapper {
    /// Prepares (does not start) the process for a Python or exec spec.
    pub fn new(
        spec: &MapperSpec,
        cfg: &WorkerConfig,
        abort: AbortHandle,
    ) -> Result<ProcessMapper, WorkerError> {
        let mut env = vec![
            ("FLYWHEEL_WORKER".to_string(), cfg.rank.0.to_string()),
            (
                "FLYWHEEL_START_SEED".to_string(),
                flywheel_protocol::start_seed(cfg.job.seed, cfg.rank).to_string(),
            ),
            (
                "FLYWHEEL_ON_ROW_ERROR".to_string(),
                if cfg.job.on_row_error == RowErrorPolicy::Skip {
                    "skip"
                } else {
                    "fail"
                }
                .to_string(),
            ),
            ("PYTHONUNBUFFERED".to_string(), "1".to_string()),
        ];
        env.extend(thread_pool_env(cfg.mapper_threads, |k| {
            std::env::var_os(k).is_some()
        }));
        env.extend(cfg.extra_env.iter().cloned());
        let python = matches!(spec, MapperSpec::Python { .. } | MapperSpec::Shipped { .. });
        let forks = python && start::fork_server_enabled();
        let (program, args, label) = match spec {
            MapperSpec::Python { file, name } => {
                let file = std::fs::canonicalize(file).unwrap_or_else(|_| file.clone());
                let args =
                    serde_json::to_string(&cfg.job.mapper_args).unwrap_or_else(|_| "{}".into());
                python_mapper(&mut env, cfg, &file, name, args)?
            }
            MapperSpec::Shipped { mapper } => {
                // A class in flywheel_shipped.py, beside the runner, given every argument typed
                // and defaulted from the one table of them.
                let file = python_runner_path()?.with_file_name("flywheel_shipped.py");
                let args = serde_json::Value::Object(mapper.python_args(&cfg.job.mapper_args)?);
                python_mapper(&mut env, cfg, &file, mapper.class(), args.to_string())?
            }
            MapperSpec::Exec { argv } => {
                for (k, v) in &cfg.job.mapper_args {
                    env.push((
                        format!("FLYWHEEL_ARG_{}", k.to_ascii_uppercase()),
                        v.clone(),
                    ));
                }
                (argv[0].clone(), argv[1..].to_vec(), argv[0].clone())
            }
            MapperSpec::Builtin { name } => (name.clone(), Vec::new(), name.clone()),
        };
        Ok(ProcessMapper {
            program,
            args,
            env,
            label,
            timeout: Duration::from_secs(cfg.job.chunk_timeout_s.max(1)),
            policy: cfg.job.on_row_error,
            rank: cfg.rank,
            running: None,
            abort,
            current_chunk: Arc::new(AtomicI64::new(-1)),
            stderr_tail: Arc::new(Mutex::new(VecDeque::new())),
            mem_limit: cfg
                .job
                .mapper_mem
                .as_deref()
                .and_then(flywheel_protocol::parse_size),
            fork_server: if forks {
                start::ServerState::Untried
            } else {
                start::ServerState::Off
            },
            shm: python && crate::shm::enabled(),
            depends: Vec::new(),
        })
    }

    fn tail(&self) -> String {
        match self.stderr_tail.lock() {
            Ok(t) if !t.is_empty() => format!(
                "\nlast lines of the mapper's stderr:\n{}",
                Vec::from(t.clone()).join("\n")
            ),
            _ => String::new(),
        }
    }

    /// Takes the running process out of reach of the abort handle and stops it: SIGTERM, `grace`,
    /// then SIGKILL to its process group, reaped with a deadline. `None` when none ran.
    fn stop(&mut self, grace: Duration) -> Option<Option<std::process::ExitStatus>> {
        self.abort.set(None);
        self.running.take().map(|r| stop_process(r, grace))
    }

    /// Ends the process (SIGTERM, then SIGKILL, with its process group) and reaps it, bounded.
    fn kill(&mut self) {
        self.stop(KILL_GRACE);
    }

    /// The process has gone (or closed its stdout): ends what is left of its group and says how
    /// it ended.
    fn ended(&mut self, stdout_closed: bool) -> ChunkError {
        let Some(r) = self.running.as_ref() else {
            return ChunkError::new(FailureKind::Mapper, "mapper process is not running");
        };
        // A process that closed its stdout is usually on its way out: give it a moment.
        let exited = !stdout_closed || wait_until(EXIT_GRACE, || r.proc.has_exited());
        let status = self
            .stop(if exited { Duration::ZERO } else { KILL_GRACE })
            .flatten();
        let how = match (exited, status) {
            (true, Some(s)) => describe_exit(&s),
            (true, None) => "ended".to_string(),
            (false, _) => "closed its stdout but kept running, and was killed".to_string(),
        };
        ChunkError::new(
            FailureKind::Mapper,
            format!("mapper {} {how}{}", self.label, self.tail()),
        )
    }

    /// A message that must be a JSON line.
    fn json_of(&self, message: Message) -> Result<serde_json::Value, ChunkError> {
        match message {
            Message::Json(v) => Ok(v),
            Message::Arrow { .. } => Err(ChunkError::new(
                FailureKind::InvalidOutput,
                format!("mapper {} sent Arrow data out of turn", self.label),
            )),
            Message::Garbage(line) => Err(ChunkError::new(
                FailureKind::InvalidOutput,
                format!(
                    "mapper {} wrote a line that is not JSON (see docs/protocol.md): {:.200}",
                    self.label,
                    line.trim_end()
                ),
            )),
            Message::Broken(why) => Err(ChunkError::new(
                FailureKind::Mapper,
                format!("mapper {}: {why}{}", self.label, self.tail()),
            )),
        }
    }

    /// The next protocol message, or the reason there is none: the process died (watched by
    /// its pid, so a process it left behind holding stdout does not hide its death), closed
    /// its stdout, or missed the deadline (it is then killed).
    fn next_message(&mut self, deadline: Instant, wait: Wait) -> Result<Message, ChunkError> {
        let mut exited_at: Option<Instant> = None;
        loop {
            let Some(r) = self.running.as_mut() else {
                return Err(ChunkError::new(
                    FailureKind::Mapper,
                    "mapper process is not running",
                ));
            };
            let now = Instant::now();
            if now >= deadline {
                self.kill();
                return Err(self.missed(wait));
            }
            match r.lines.recv_timeout(POLL.min(deadline - now)) {
                Ok(Some(msg)) => return Ok(msg),
                Ok(None) | Err(RecvTimeoutError::Disconnected) => return Err(self.ended(true)),
                Err(RecvTimeoutError::Timeout) => {
                    // Lines it wrote before dying may still be on their way; then it is dead.
                    match exited_at {
                        None if r.proc.has_exited() => exited_at = Some(Instant::now()),
                        Some(t) if t.elapsed() >= DRAIN_GRACE => return Err(self.ended(false)),
                        _ => {}
                    }
                }
            }
        }
    }

    /// The error for a deadline missed while waiting for `wait`.
    fn missed(&self, wait: Wait) -> ChunkError {
        match wait {
            Wait::Handshake(d) => ChunkError::new(
                FailureKind::MapperStart,
                format!(
                    "mapper {} wrote nothing within {}s of starting and was killed: it does not speak the flywheel mapper protocol, whose first line is {{\"ready\": true}} (see docs/protocol.md; FLYWHEEL_HANDSHAKE_TIMEOUT sets this deadline){}",
                    self.label,
                    d.as_secs_f64(),
                    self.tail()
                ),
            ),
            Wait::Ready => ChunkError::new(
                FailureKind::Timeout,
                format!(
                    "mapper {} did not become ready within the chunk timeout of {}s and was killed{}",
                    self.label,
                    self.timeout.as_secs(),
                    self.tail()
                ),
            ),
            Wait::Chunk => ChunkError::new(
                FailureKind::Timeout,
                format!(
                    "mapper {} ran past the chunk timeout of {}s and was killed{}",
                    self.label,
                    self.timeout.as_secs(),
                    self.tail()
                ),
            ),
        }
    }
}

/// A chunk as the mapper reads it: the header line, then its rows (an Arrow IPC stream and the
/// table schema's on the fast path, JSON lines otherwise).
fn encode_chunk(
    task: &ChunkTask,
    worker: Rank,
    input: Vec<RecordBatch>,
    arrow: bool,
    shm: Option<&crate::shm::Shm>,
) -> Result<Vec<u8>, ChunkError> {
    let mut header = ChunkHeaderBody {
        chunk: task.chunk,
        attempt: task.attempt,
        seed: task.seed,
        worker,
        rows: input.iter().map(|b| b.num_rows()).sum(),
        arrow_bytes: None,
        schema_bytes: None,
        shm: false,
        bytes_columns: None,
    };
    let mut body = Vec::new();
    let schema = match (&task.schema, arrow) {
        (Some(json), true) => Some(flywheel_formats::schema_from_json(json)?),
        _ => None,
    };
    let in_shm = match shm.filter(|_| arrow) {
        Some(shm) => match shm.write_input(&input, schema.as_ref()) {
            Ok((arrow_bytes, schema_bytes)) => {
                header.arrow_bytes = Some(arrow_bytes);
                header.schema_bytes = schema_bytes;
                header.shm = true;
                true
            }
            // Out of memory for it (a cgroup's limit): this chunk goes through the pipe.
            Err(e) => {
                tracing::debug!("{}: {}; sent through the pipe", task.chunk, e.message);
                false
            }
        },
        None => false,
    };
    if in_shm {
        // The header line alone: the rows are in shared memory.
    } else if arrow {
        // Fast path: the rows as an Arrow IPC stream, then the table schema (if fixed).
        ipc_stream(&input, &mut body)?;
        header.arrow_bytes = Some(body.len());
        if let Some(schema) = &schema {
            let before = body.len();
            ipc_schema(schema, &mut body)?;
            header.schema_bytes = Some(body.len() - before);
        }
    } else {
        header.bytes_columns = Some(batches_to_json_lines(&input, &mut body)?);
    }
    drop(input);
    let mut buf = serde_json::to_vec(&ChunkHeader { chunk: header }).map_err(|e| {
        ChunkError::new(
            FailureKind::Io,
            format!("cannot write the header of {}: {e}", task.chunk),
        )
    })?;
    buf.push(b'\n');
    buf.extend_from_slice(&body);
    Ok(buf)
}

impl ProcessMapper {
    /// Waits for the thread that wrote the chunk to the mapper and gives the mapper its stdin
    /// back. A writer still blocked once the answer is in, or one whose write failed, means the
    /// mapper did not read all of its input: it is out of step and is killed.
    fn join_writer(
        &mut self,
        writer: JoinHandle<(ChildStdin, std::io::Result<()>)>,
        mut result: Result<MapOutput, ChunkError>,
        task: &ChunkTask,
        rows_in: usize,
    ) -> Result<MapOutput, ChunkError> {
        let finished = wait_until(Duration::from_secs(2), || writer.is_finished());
        if !finished {
            self.kill();
            if result.is_ok() {
                result = Err(ChunkError::new(
                    FailureKind::InvalidOutput,
                    format!(
                        "mapper {} ended {} without reading all of its {rows_in} input rows",
                        self.label, task.chunk
                    ),
                ));
            }
        }
        // Killing the mapper broke the pipe, so the writer ends now.
        match writer.join() {
            Ok((stdin, written)) => {
                if written.is_err() && result.is_ok() {
                    self.kill();
                    result = Err(ChunkError::new(
                        FailureKind::InvalidOutput,
                        format!(
                            "mapper {} ended {} without reading all of its {rows_in} input rows (it closed its stdin)",
                            self.label, task.chunk
                        ),
                    ));
                }
                if let Some(r) = self.running.as_mut() {
                    r.stdin = Some(stdin);
                }
            }
            Err(payload) => {
                self.kill();
                result = Err(ChunkError::new(
                    FailureKind::Io,
                    format!(
                        "the thread writing {} to mapper {} panicked: {}",
                        task.chunk,
                        self.label,
                        panic_message(payload.as_ref())
                    ),
                ));
            }
        }
        result
    }
}

impl Mapper for ProcessMapper {
    fn map_chunk(
        &mut self,
        task: &ChunkTask,
        worker: Rank,
        input: Vec<RecordBatch>,
    ) -> Result<MapOutput, ChunkError> {
        // A chunk can hold no rows (a byte range inside one long line): nothing to call.
        if input.iter().all(|b| b.num_rows() == 0) {
            return Ok(MapOutput::default());
        }
        if self.running.is_none() {
            self.start()?;
        }
        self.current_chunk
            .store(i64::from(task.chunk.0), Ordering::Relaxed);
        let rows_in: usize = input.iter().map(|b| b.num_rows()).sum();
        let arrow = self.running.as_ref().is_some_and(|r| r.arrow);
        let shm = self.running.as_ref().and_then(|r| r.shm.as_ref());
        let buf = encode_chunk(task, worker, input, arrow, shm)?;
        let deadline = Instant::now() + self.timeout;
        let Some(mut stdin) = self.running.as_mut().and_then(|r| r.stdin.take()) else {
            return Err(ChunkError::new(
                FailureKind::Mapper,
                "mapper process is not running",
            ));
        };
        // Write while reading, so neither side blocks on a full pipe.
        let writer = std::thread::Builder::new()
            .name(format!("mapper-stdin-{}", self.rank.0))
            .spawn(move || {
                let written = stdin.write_all(&buf).and_then(|()| stdin.flush());
                (stdin, written)
            })
            .map_err(|e| {
                ChunkError::new(
                    FailureKind::Io,
                    format!("cannot start a writer thread: {e}"),
                )
            })?;
        let result = self.read_chunk(task, deadline, rows_in as u64);
        let result = self.join_writer(writer, result, task, rows_in);
        self.current_chunk.store(-1, Ordering::Relaxed);
        result
    }

    fn dependencies(&self) -> &[String] {
        &self.depends
    }

    fn finish(&mut self) {
        if let Some(r) = self.running.as_mut() {
            drop(r.stdin.take());
            // finish() runs on end of input; give it a bounded while, then kill its group.
            wait_until(Duration::from_secs(60), || r.proc.has_exited());
        }
        self.stop(Duration::ZERO);
        self.fork_server = start::ServerState::Off;
    }
}

impl Drop for ProcessMapper {
    fn drop(&mut self) {
        // Never leave a mapper (or what it started) behind, e.g. after a panic.
        self.stop(Duration::ZERO);
    }
}

//! Mappers in a supervised child process, speaking the JSON-lines protocol (docs/protocol.md):
//! Python mappers through the embedded runner, `exec:` mappers directly.
//!
//! One process lives across chunks (a Python class's `start()` runs once). If it exits, crashes,
//! is killed or runs past the chunk timeout, the chunk fails, the process is reaped, and the next
//! chunk starts a fresh one.

use crate::convert::{
    arrow_to_output, batches_to_json_lines, input_row, ipc_schema, ipc_stream, read_ipc,
    rows_to_output,
};
use crate::{AbortHandle, ChunkError, MapOutput, Mapper, RowError, WorkerConfig, WorkerError};
use arrow::record_batch::RecordBatch;
use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError};
use flywheel_protocol::{ChunkTask, FailureKind, MapperSpec, Rank, RowErrorPolicy};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The Python runner, compiled into the binary.
pub const RUNNER_SOURCE: &str = include_str!("../../python/flywheel/_runner.py");
/// The shipped mappers (`flywheel:generate`, `flywheel:embed`), compiled into the binary and
/// written beside the runner.
pub const SHIPPED_SOURCE: &str = include_str!("../../python/flywheel/_shipped.py");

const STDERR_TAIL: usize = 40;

/// Puts the embedded runner and shipped mappers on disk (once per content) and returns the
/// runner's path; `flywheel_shipped.py` is beside it.
pub fn python_runner_path() -> Result<PathBuf, WorkerError> {
    let mut hasher = Sha256::new();
    hasher.update(RUNNER_SOURCE.as_bytes());
    hasher.update(SHIPPED_SOURCE.as_bytes());
    let digest = hex::encode(hasher.finalize());
    let dir = std::env::temp_dir().join(format!("flywheel-runner-{}", &digest[..16]));
    for (name, source) in [
        ("flywheel_shipped.py", SHIPPED_SOURCE),
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

/// Asks for a 1 MiB buffer on a pipe; a refusal (a lower /proc/sys/fs/pipe-max-size) only
/// costs speed.
fn grow_pipe(fd: std::os::fd::RawFd) {
    #[cfg(target_os = "linux")]
    // SAFETY: fcntl on a pipe descriptor this process owns; F_SETPIPE_SZ takes an int.
    unsafe {
        libc::fcntl(fd, libc::F_SETPIPE_SZ, 1 << 20);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = fd;
}

/// One message from the mapper's stdout.
enum Message {
    /// A JSON line, parsed (on the reader thread).
    Json(serde_json::Value),
    /// The bytes announced by an `{"arrow": {"bytes": N}}` line: an Arrow IPC stream.
    Arrow(Vec<u8>),
    /// A line that is not JSON.
    Garbage(String),
}

struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Option<Message>>,
    /// The mapper takes and gives Arrow IPC streams (the Python runner with pyarrow).
    arrow: bool,
}

/// A mapper process under supervision.
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
        env.extend(cfg.extra_env.iter().cloned());
        // A shipped mapper is a class in flywheel_shipped.py, beside the runner.
        let shipped;
        let spec = match spec {
            MapperSpec::Shipped { name } => {
                let runner = python_runner_path()?;
                let class = flywheel_protocol::SHIPPED_MAPPERS
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or("Generate", |(_, c)| *c);
                shipped = MapperSpec::Python {
                    file: runner.with_file_name("flywheel_shipped.py"),
                    name: class.to_string(),
                };
                &shipped
            }
            other => other,
        };
        let (program, args, label) = match spec {
            MapperSpec::Python { file, name } => {
                let runner = python_runner_path()?;
                let file = std::fs::canonicalize(file).unwrap_or_else(|_| file.clone());
                env.push((
                    "FLYWHEEL_MAPPER".to_string(),
                    format!("{}:{name}", file.display()),
                ));
                let args_json =
                    serde_json::to_string(&cfg.job.mapper_args).unwrap_or_else(|_| "{}".into());
                env.push(("FLYWHEEL_MAPPER_ARGS".to_string(), args_json));
                (
                    cfg.job.python.clone(),
                    vec!["-u".to_string(), runner.display().to_string()],
                    name.clone(),
                )
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
            MapperSpec::Builtin { name } | MapperSpec::Shipped { name } => {
                (name.clone(), Vec::new(), name.clone())
            }
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

    fn start(&mut self) -> Result<(), ChunkError> {
        if let Ok(mut t) = self.stderr_tail.lock() {
            t.clear();
        }
        let mut command = Command::new(&self.program);
        command.args(&self.args).envs(self.env.iter().cloned());
        if let Some(limit) = self.mem_limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: limit as libc::rlim_t,
                        rlim_max: limit as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_DATA, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                ChunkError::new(
                    FailureKind::MapperStart,
                    format!("cannot start mapper '{}': {e}", self.program),
                )
            })?;
        self.abort.set(Some(child.id()));
        let (stdin, stdout, stderr) =
            match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
                (Some(a), Some(b), Some(c)) => (a, b, c),
                _ => {
                    return Err(ChunkError::new(
                        FailureKind::MapperStart,
                        "mapper process has no pipes",
                    ))
                }
            };
        // Chunks travel through these pipes as Arrow IPC, megabytes each way: 1 MiB pipe buffers
        // (Linux's default is 64 KiB) cut the wakeups and copies per chunk.
        grow_pipe(stdin.as_raw_fd());
        grow_pipe(stdout.as_raw_fd());
        let (tx, lines) = unbounded();
        std::thread::spawn(move || {
            let mut reader = BufReader::with_capacity(1 << 20, stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let msg = match serde_json::from_str::<serde_json::Value>(&line) {
                            Ok(v) => match v
                                .get("arrow")
                                .and_then(|a| a.get("bytes"))
                                .and_then(|b| b.as_u64())
                            {
                                Some(n) => {
                                    let mut data = vec![0u8; n as usize];
                                    if reader.read_exact(&mut data).is_err() {
                                        break;
                                    }
                                    Message::Arrow(data)
                                }
                                None => Message::Json(v),
                            },
                            Err(_) => Message::Garbage(std::mem::take(&mut line)),
                        };
                        if tx.send(Some(msg)).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = tx.send(None);
        });
        let tail = Arc::clone(&self.stderr_tail);
        let chunk = Arc::clone(&self.current_chunk);
        let (label, rank) = (self.label.clone(), self.rank);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let c = chunk.load(Ordering::Relaxed);
                if c >= 0 {
                    eprintln!("[worker {} chunk {c} {label}] {line}", rank.0);
                } else {
                    eprintln!("[worker {} {label}] {line}", rank.0);
                }
                if let Ok(mut t) = tail.lock() {
                    if t.len() == STDERR_TAIL {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            }
        });
        self.running = Some(Running {
            child,
            stdin: Some(stdin),
            lines,
            arrow: false,
        });
        // The first line says whether the mapper loaded (a Python class's start() has run).
        let deadline = Instant::now() + self.timeout;
        // Dying before "ready" is a start failure, whatever the cause.
        let first = self
            .next_line(deadline)
            .map_err(|e| ChunkError::new(FailureKind::MapperStart, e.message))?;
        match first {
            serde_json::Value::Object(m)
                if m.get("ready") == Some(&serde_json::Value::Bool(true)) =>
            {
                let arrow = m.get("arrow") == Some(&serde_json::Value::Bool(true));
                if let Some(r) = self.running.as_mut() {
                    r.arrow = arrow;
                }
                Ok(())
            }
            serde_json::Value::Object(m) if m.contains_key("fatal") => {
                let why = m
                    .get("fatal")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .trim_end()
                    .to_string();
                self.kill();
                Err(ChunkError::new(
                    FailureKind::MapperStart,
                    format!("mapper {} failed to start:\n{why}", self.label),
                ))
            }
            other => {
                self.kill();
                Err(ChunkError::new(
                    FailureKind::InvalidOutput,
                    format!(
                        "mapper {} sent {other} instead of {{\"ready\": true}}",
                        self.label
                    ),
                ))
            }
        }
    }

    /// Kills and reaps the process.
    fn kill(&mut self) {
        if let Some(mut r) = self.running.take() {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
        self.abort.set(None);
    }

    /// The next protocol line (as JSON), or the reason there is none.
    fn next_line(&mut self, deadline: Instant) -> Result<serde_json::Value, ChunkError> {
        let message = self.next_message(deadline)?;
        self.json_of(message)
    }

    /// A message that must be a JSON line.
    fn json_of(&self, message: Message) -> Result<serde_json::Value, ChunkError> {
        match message {
            Message::Json(v) => Ok(v),
            Message::Arrow(_) => Err(ChunkError::new(
                FailureKind::InvalidOutput,
                format!("mapper {} sent Arrow data out of turn", self.label),
            )),
            Message::Garbage(line) => Err(ChunkError::new(
                FailureKind::InvalidOutput,
                format!(
                    "mapper {} wrote a line that is not JSON: {:.200}",
                    self.label,
                    line.trim_end()
                ),
            )),
        }
    }

    /// The next protocol message, or the reason there is none.
    fn next_message(&mut self, deadline: Instant) -> Result<Message, ChunkError> {
        let Some(r) = self.running.as_mut() else {
            return Err(ChunkError::new(
                FailureKind::Mapper,
                "mapper process is not running",
            ));
        };
        let wait = deadline.saturating_duration_since(Instant::now());
        match r.lines.recv_timeout(wait) {
            Ok(Some(msg)) => Ok(msg),
            Ok(None) | Err(RecvTimeoutError::Disconnected) => {
                let status = r
                    .child
                    .wait()
                    .map(|s| describe_exit(&s))
                    .unwrap_or_else(|e| e.to_string());
                self.running = None;
                self.abort.set(None);
                Err(ChunkError::new(
                    FailureKind::Mapper,
                    format!("mapper {} {status}{}", self.label, self.tail()),
                ))
            }
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                Err(ChunkError::new(
                    FailureKind::Timeout,
                    format!(
                        "mapper {} ran past the chunk timeout of {}s and was killed{}",
                        self.label,
                        self.timeout.as_secs(),
                        self.tail()
                    ),
                ))
            }
        }
    }
}

fn describe_exit(s: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(sig)) => format!(
            "was killed by signal {sig}{}",
            if sig == libc::SIGSEGV {
                " (segmentation fault)"
            } else {
                ""
            }
        ),
        _ => "ended".to_string(),
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
        let header = serde_json::json!({"chunk": {
            "chunk": task.chunk.0, "attempt": task.attempt.0, "seed": task.seed, "worker": worker.0, "rows": rows_in,
        }});
        let mut body = Vec::new();
        let mut header = header;
        if self.running.as_ref().is_some_and(|r| r.arrow) {
            // Fast path: the rows as an Arrow IPC stream, then the table schema (if fixed).
            ipc_stream(&input, &mut body)?;
            header["chunk"]["arrow_bytes"] = serde_json::json!(body.len());
            if let Some(schema) = &task.schema {
                let schema = flywheel_formats::schema_from_json(schema)?;
                let before = body.len();
                ipc_schema(&schema, &mut body)?;
                header["chunk"]["schema_bytes"] = serde_json::json!(body.len() - before);
            }
        } else {
            let bytes_columns = batches_to_json_lines(&input, &mut body)?;
            header["chunk"]["bytes_columns"] = serde_json::json!(bytes_columns);
        }
        drop(input);
        let mut buf = serde_json::to_vec(&header).unwrap_or_default();
        buf.push(b'\n');
        buf.extend_from_slice(&body);
        drop(body);

        let deadline = Instant::now() + self.timeout;
        let Some(mut stdin) = self.running.as_mut().and_then(|r| r.stdin.take()) else {
            return Err(ChunkError::new(
                FailureKind::Mapper,
                "mapper process is not running",
            ));
        };
        let result = std::thread::scope(|s| {
            // Write while reading, so neither side blocks on a full pipe.
            let writer = &mut stdin;
            s.spawn(move || {
                let _ = writer.write_all(&buf).and_then(|()| writer.flush());
            });
            self.read_chunk(task, deadline)
        });
        if let Some(r) = self.running.as_mut() {
            r.stdin = Some(stdin);
        }
        self.current_chunk.store(-1, Ordering::Relaxed);
        result
    }

    fn finish(&mut self) {
        if let Some(mut r) = self.running.take() {
            drop(r.stdin);
            // finish() runs on end of input; give it a bounded while, then kill.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                match r.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = r.child.kill();
                        let _ = r.child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        self.abort.set(None);
    }
}

impl ProcessMapper {
    fn read_chunk(&mut self, task: &ChunkTask, deadline: Instant) -> Result<MapOutput, ChunkError> {
        let mut rows = Vec::new();
        let mut sources = Vec::new();
        let mut row_errors = Vec::new();
        let mut arrow_batches = Vec::new();
        loop {
            let message = match self.next_message(deadline) {
                Ok(Message::Arrow(data)) => {
                    match read_ipc(&data) {
                        Ok(b) => arrow_batches.extend(b),
                        Err(e) => {
                            // The rest of this chunk's answer is still coming: start afresh.
                            self.kill();
                            return Err(ChunkError::new(
                                FailureKind::InvalidOutput,
                                format!(
                                    "mapper {} sent an unreadable Arrow stream: {e}",
                                    self.label
                                ),
                            ));
                        }
                    }
                    continue;
                }
                other => other,
            };
            let mut line = match message.and_then(|m| self.json_of(m)) {
                Ok(v) => v,
                Err(e) => {
                    // The writer thread must not outlive a dead pipe.
                    self.kill();
                    return Err(e);
                }
            };
            if let Some(row) = line.get_mut("row") {
                rows.push(row.take());
                sources.push(line.get("in").and_then(|v| v.as_u64()).unwrap_or(0));
            } else if let Some(err) = line.get("error") {
                row_errors.push(RowError {
                    row: err.get("row").and_then(|v| v.as_u64()).unwrap_or(0),
                    rows: err.get("rows").and_then(|v| v.as_u64()).unwrap_or(1),
                    message: err
                        .get("message")
                        .and_then(|v| v.as_str())
                        .unwrap_or("")
                        .to_string(),
                    traceback: err
                        .get("traceback")
                        .and_then(|v| v.as_str())
                        .unwrap_or("")
                        .to_string(),
                });
            } else if let Some(end) = line.get("end") {
                // An answer to another chunk means the stream is out of step: never accept it.
                let chunk = end.get("chunk").and_then(|v| v.as_u64());
                if chunk.is_some_and(|c| c != u64::from(task.chunk.0)) {
                    self.kill();
                    return Err(ChunkError::new(
                        FailureKind::InvalidOutput,
                        format!(
                            "mapper {} ended chunk {chunk:?} while {} was running",
                            self.label, task.chunk
                        ),
                    ));
                }
                break;
            } else {
                self.kill();
                return Err(ChunkError::new(
                    FailureKind::InvalidOutput,
                    format!("mapper {} sent an unknown message: {line:.200}", self.label),
                ));
            }
        }
        if self.policy == RowErrorPolicy::Fail {
            if let Some(e) = row_errors.first() {
                return Err(ChunkError::new(
                    FailureKind::Mapper,
                    format!(
                        "mapper {} raised on {}: {}\n{}",
                        self.label,
                        input_row(task, e.row),
                        e.message,
                        e.traceback.trim_end()
                    ),
                ));
            }
        }
        let (mut batches, violations) = rows_to_output(rows, &sources, task, self.policy)?;
        row_errors.extend(violations);
        if !arrow_batches.is_empty() {
            let (b, violations) = arrow_to_output(arrow_batches, task, self.policy)?;
            batches.extend(b);
            row_errors.extend(violations);
        }
        Ok(MapOutput {
            batches,
            row_errors,
        })
    }
}

//! Starting a mapper process: the command (its own process group, a signal when the worker's
//! thread goes, the memory limit), the threads that read its stdout and forward its stderr, and
//! the handshake that must come first.

use super::{ProcessMapper, STDERR_TAIL};
use crate::child::{
    grow_pipe, handshake_timeout, panic_message, read_messages, Message, Proc, Running, Wait,
};
use crate::lines::Hello;
use crate::ChunkError;
use crossbeam_channel::{unbounded, Receiver};
use flywheel_protocol::{FailureKind, Rank};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, RawFd};
use std::process::{ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// A started mapper process with the worker's ends of its stdin, stdout and stderr.
type Started = (Proc, ChildStdin, ChildStdout, ChildStderr);

/// Whether Python mappers' processes are forked by a fork server: unless
/// `FLYWHEEL_FORK_SERVER=0`, on Linux.
pub(super) fn fork_server_enabled() -> bool {
    cfg!(target_os = "linux") && std::env::var("FLYWHEEL_FORK_SERVER").map_or(true, |v| v != "0")
}

/// Whether mapper processes are forked by a fork server (Python mappers; see `fork_server`).
pub(super) enum ServerState {
    /// Not started yet: the first mapper start starts it.
    Untried,
    #[cfg(target_os = "linux")]
    Up(crate::fork_server::ForkServer),
    /// Mapper processes start directly: an `exec:` mapper, `FLYWHEEL_FORK_SERVER=0`, or a
    /// server that could not serve.
    Off,
}

impl ProcessMapper {
    /// Starts a fresh mapper process — forked by the fork server when there is one, else
    /// directly — and waits for its handshake.
    pub(super) fn start(&mut self) -> Result<(), ChunkError> {
        if let Ok(mut t) = self.stderr_tail.lock() {
            t.clear();
        }
        let began = Instant::now();
        let shm = if self.shm {
            crate::shm::Shm::create()
                .map_err(|e| {
                    tracing::debug!(
                        "mapper {}: no shared memory ({e}); its chunks go through pipes",
                        self.label
                    )
                })
                .ok()
        } else {
            None
        };
        let fds = shm.as_ref().map(crate::shm::Shm::fds);
        let (proc, stdin, stdout, stderr) = match self.forked(fds)? {
            Some(started) => started,
            None => self.spawned(fds)?,
        };
        let how = if matches!(proc, Proc::Spawned(_)) {
            "started"
        } else {
            "forked"
        };
        self.abort.set(Some(proc.id()));
        // Chunks travel through these pipes as Arrow IPC, megabytes each way: 1 MiB pipe buffers
        // (Linux's default is 64 KiB) cut the wakeups and copies per chunk.
        grow_pipe(stdin.as_raw_fd());
        grow_pipe(stdout.as_raw_fd());
        let lines = spawn_stdout_reader(stdout, shm.as_ref().map(crate::shm::Shm::output));
        let stderr = self.forward_stderr(stderr);
        self.running = Some(Running {
            proc,
            stdin: Some(stdin),
            lines,
            stderr: Some(stderr),
            arrow: false,
            shm,
        });
        self.handshake()?;
        let path = match self.running.as_ref() {
            Some(r) if r.shm.is_some() => "Arrow data in shared memory",
            Some(r) if r.arrow => "Arrow data through pipes",
            _ => "JSON lines",
        };
        tracing::debug!(
            "worker {}: mapper {} {how} and ready in {:.1} ms ({path})",
            self.rank.0,
            self.label,
            began.elapsed().as_secs_f64() * 1e3
        );
        Ok(())
    }

    /// Starts the mapper process itself, handing it the shared memory `shm`, if any.
    fn spawned(&mut self, shm: Option<[RawFd; 2]>) -> Result<Started, ChunkError> {
        let mut child = self.command(shm).spawn().map_err(|e| {
            ChunkError::new(
                FailureKind::MapperStart,
                format!("cannot start mapper '{}': {e}", self.program),
            )
        })?;
        match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
            (Some(a), Some(b), Some(c)) => Ok((Proc::Spawned(child), a, b, c)),
            _ => {
                crate::child::signal_group(child.id(), libc::SIGKILL);
                let _ = child.wait();
                Err(ChunkError::new(
                    FailureKind::MapperStart,
                    "mapper process has no pipes",
                ))
            }
        }
    }

    /// A mapper process forked by the fork server, starting the server on the first call;
    /// `None` when there is none (not a Python mapper, `FLYWHEEL_FORK_SERVER=0`, or it cannot
    /// serve: then every process starts directly, as a failed import is reported from there).
    #[cfg(target_os = "linux")]
    fn forked(&mut self, shm: Option<[RawFd; 2]>) -> Result<Option<Started>, ChunkError> {
        use crate::fork_server::{server_env, ForkServer, Started as Server};
        if matches!(self.fork_server, ServerState::Untried) {
            self.fork_server = ServerState::Off;
            let mut command = self.base_command(&["--fork-server"]);
            let env = &self.env;
            command.envs(server_env(|k| {
                env.iter().any(|(e, _)| e == k) || std::env::var_os(k).is_some()
            }));
            let forward = |stderr| {
                self.forward_stderr(stderr);
            };
            match ForkServer::start(command, handshake_timeout(), self.timeout, forward) {
                Server::Up(server) => self.fork_server = ServerState::Up(server),
                Server::Off(why) => tracing::info!(
                    "mapper {}: no fork server ({why}); each mapper process starts a new interpreter",
                    self.label
                ),
                Server::ImportFailed => {}
                Server::TimedOut => return Err(self.missed(Wait::Ready)),
            }
        }
        let ServerState::Up(server) = &self.fork_server else {
            return Ok(None);
        };
        match server.fork(self.mem_limit, shm) {
            Ok((forked, stdin, stdout, stderr)) => {
                Ok(Some((Proc::Forked(forked), stdin, stdout, stderr)))
            }
            Err(why) => {
                tracing::warn!(
                    "mapper {}: the fork server failed ({why}); mapper processes start directly from now on",
                    self.label
                );
                self.fork_server = ServerState::Off;
                Ok(None)
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn forked(&mut self, _: Option<[RawFd; 2]>) -> Result<Option<Started>, ChunkError> {
        Ok(None)
    }

    /// The thread forwarding a process's stderr to the job log, keeping its tail.
    fn forward_stderr(&self, stderr: ChildStderr) -> JoinHandle<()> {
        spawn_stderr_forwarder(
            stderr,
            Arc::clone(&self.stderr_tail),
            Arc::clone(&self.current_chunk),
            self.label.clone(),
            self.rank,
        )
    }

    /// The mapper's command: its program, arguments and environment, piped, in a process group
    /// of its own, with the memory limit and the shared memory `shm` (inherited, and named in
    /// `FLYWHEEL_SHM_FDS`).
    fn command(&self, shm: Option<[RawFd; 2]>) -> Command {
        use std::os::unix::process::CommandExt;
        let mut command = self.base_command(&[]);
        if let Some(fds) = shm {
            command.env(crate::shm::FDS_VAR, format!("{},{}", fds[0], fds[1]));
            // SAFETY: fcntl is async-signal-safe; it clears close-on-exec on two descriptors
            // this process owns, in the child only, between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    for fd in fds {
                        if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        if let Some(limit) = self.mem_limit {
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
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// The program with its arguments (and `extra`) and environment, in a process group of its
    /// own, with SIGTERM when the thread that started it goes: the mapper's command, and the
    /// fork server's.
    fn base_command(&self, extra: &[&str]) -> Command {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .args(extra)
            .envs(self.env.iter().cloned())
            // Only a mapper process given shared memory has it (`command`).
            .env_remove(crate::shm::FDS_VAR)
            // Its own process group: killing the mapper kills whatever it started too.
            .process_group(0);
        // In its own process group the mapper no longer gets a terminal's Ctrl-C with flywheel:
        // it gets SIGTERM when the thread that started it goes, however flywheel ends.
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command
    }

    /// Reads the first line of a fresh process: `{"ready": true}` (or an early
    /// `{"starting": true}`, then `ready` within the chunk timeout), or `{"fatal": …}`.
    fn handshake(&mut self) -> Result<(), ChunkError> {
        let handshake = handshake_timeout();
        // Dying before "ready" is a start failure, whatever the cause.
        let start_failure = |e: ChunkError| ChunkError::new(FailureKind::MapperStart, e.message);
        let mut line = self
            .next_message(Instant::now() + handshake, Wait::Handshake(handshake))
            .map_err(start_failure)?;
        let mut hello = match &line {
            Message::Json(v) => Hello::first(v),
            _ => Hello::Other,
        };
        if hello == Hello::Starting {
            line = self
                .next_message(Instant::now() + self.timeout, Wait::Ready)
                .map_err(start_failure)?;
            hello = match &line {
                Message::Json(v) => Hello::after_starting(v),
                _ => Hello::Other,
            };
        }
        match hello {
            Hello::Ready {
                arrow,
                shm,
                depends,
            } => {
                self.depends = depends;
                if let Some(r) = self.running.as_mut() {
                    r.arrow = arrow;
                    if !shm {
                        r.shm = None;
                    }
                }
                Ok(())
            }
            Hello::Fatal(why) => {
                self.kill();
                Err(ChunkError::new(
                    FailureKind::MapperStart,
                    format!("mapper {} failed to start:\n{why}", self.label),
                ))
            }
            Hello::Starting | Hello::Other => Err(self.not_a_handshake(line)),
        }
    }

    /// The error for a first line that is no handshake (the process is killed).
    fn not_a_handshake(&mut self, line: Message) -> ChunkError {
        let other = match line {
            Message::Broken(why) => {
                self.kill();
                return ChunkError::new(
                    FailureKind::MapperStart,
                    format!(
                        "mapper {} failed to start: {why}{}",
                        self.label,
                        self.tail()
                    ),
                );
            }
            Message::Arrow { .. } => "Arrow data".to_string(),
            Message::Garbage(line) => line.trim_end().to_string(),
            Message::Json(serde_json::Value::String(s)) => s,
            Message::Json(v) => v.to_string(),
        };
        self.kill();
        ChunkError::new(
            FailureKind::InvalidOutput,
            format!(
                "mapper {} does not speak the flywheel mapper protocol: its first line was {other:.200} instead of {{\"ready\": true}} (see docs/protocol.md)",
                self.label
            ),
        )
    }
}

/// The thread turning the mapper's stdout (and its output memfd `shm`) into messages; `None` on
/// the channel is its end.
fn spawn_stdout_reader(
    stdout: ChildStdout,
    shm: Option<Arc<std::fs::File>>,
) -> Receiver<Option<Message>> {
    let (tx, lines) = unbounded();
    std::thread::spawn(move || {
        // A panic here must reach the chunk as an error, not look like a quiet stream.
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            read_messages(stdout, shm.as_deref(), &tx)
        }));
        if let Err(payload) = caught {
            let why = panic_message(payload.as_ref());
            let _ = tx.send(Some(Message::Broken(format!(
                "the thread reading its stdout panicked: {why}"
            ))));
        }
    });
    lines
}

/// The thread forwarding the mapper's stderr to the job log as `[worker W chunk C NAME] line`,
/// keeping its last lines in `tail` for error messages.
fn spawn_stderr_forwarder(
    stderr: ChildStderr,
    tail: Arc<Mutex<VecDeque<String>>>,
    chunk: Arc<AtomicI64>,
    label: String,
    rank: Rank,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stderr);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&raw)
                .trim_end_matches(['\n', '\r'])
                .to_string();
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
    })
}

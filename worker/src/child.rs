//! The mapper's child process itself: its process group, how it is watched (by its pid, not only
//! by the end of its stdout), how it is ended (SIGTERM, a grace, SIGKILL to the whole group, a
//! reap with a deadline), and the thread that turns its stdout into messages. Nothing here waits
//! without a bound.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::lines::{arrow_announcement, Announcement, Loose};

/// Asks for a 1 MiB buffer on a pipe; a refusal (a lower /proc/sys/fs/pipe-max-size) only
/// costs speed.
pub(crate) fn grow_pipe(fd: std::os::fd::RawFd) {
    #[cfg(target_os = "linux")]
    // SAFETY: fcntl on a pipe descriptor this process owns; F_SETPIPE_SZ takes an int.
    unsafe {
        libc::fcntl(fd, libc::F_SETPIPE_SZ, 1 << 20);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = fd;
}

/// One message from the mapper's stdout.
pub(crate) enum Message {
    /// A JSON line, parsed (on the reader thread).
    Json(serde_json::Value),
    /// The bytes announced by an `{"arrow": {"bytes": N, "rows": R}}` line: an Arrow IPC stream,
    /// with the row count the line announced.
    Arrow { data: Vec<u8>, rows: Option<u64> },
    /// A line that is not JSON (or not UTF-8), lossily decoded.
    Garbage(String),
    /// The stream broke in a way that is not a clean end (a read error, Arrow data cut short).
    Broken(String),
}

/// The mapper process: started by the worker itself, or forked by its fork server (then the
/// server's child, watched through a pidfd; see `fork_server`).
pub(crate) enum Proc {
    Spawned(Child),
    #[cfg(target_os = "linux")]
    Forked(crate::fork_server::Forked),
}

impl Proc {
    pub(crate) fn id(&self) -> u32 {
        match self {
            Proc::Spawned(c) => c.id(),
            #[cfg(target_os = "linux")]
            Proc::Forked(f) => f.id(),
        }
    }

    /// Whether it has exited; it stays unreaped, so that its pid, and with it its process group
    /// id, stays reserved until it is reaped.
    pub(crate) fn has_exited(&self) -> bool {
        match self {
            Proc::Spawned(c) => has_exited(c.id()),
            #[cfg(target_os = "linux")]
            Proc::Forked(f) => f.has_exited(),
        }
    }

    /// Reaps it if it has exited: `Some(status)`, `Some(None)` when it is gone and its status
    /// cannot be known, `None` while it runs.
    fn reap(&mut self) -> Option<Option<std::process::ExitStatus>> {
        match self {
            Proc::Spawned(c) => c.try_wait().ok().flatten().map(Some),
            #[cfg(target_os = "linux")]
            Proc::Forked(f) => f.reap(),
        }
    }

    /// Leaves it to be reaped whenever it goes (a thread waits for a process we started).
    fn reap_later(self) {
        match self {
            Proc::Spawned(mut c) => {
                std::thread::spawn(move || {
                    let _ = c.wait();
                });
            }
            // Dropping it tells the fork server to reap it once it exits.
            #[cfg(target_os = "linux")]
            Proc::Forked(f) => drop(f),
        }
    }
}

pub(crate) struct Running {
    pub(crate) proc: Proc,
    pub(crate) stdin: Option<ChildStdin>,
    pub(crate) lines: Receiver<Option<Message>>,
    /// The thread forwarding the mapper's stderr (done once every holder of the pipe is gone).
    pub(crate) stderr: Option<std::thread::JoinHandle<()>>,
    /// The mapper takes and gives Arrow IPC streams (the Python runner with pyarrow).
    pub(crate) arrow: bool,
    /// The shared memory its Arrow data goes through: given to a Python mapper, kept once its
    /// handshake says it uses it.
    pub(crate) shm: Option<crate::shm::Shm>,
}

/// What a read from the mapper is waiting for; says what a missed deadline means.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// The first line after the start (`FLYWHEEL_HANDSHAKE_TIMEOUT`).
    Handshake(Duration),
    /// `{"ready": true}` after an early `{"starting": true}` (the chunk timeout).
    Ready,
    /// A chunk's answer (the chunk timeout).
    Chunk,
}

/// How long the first line of a fresh mapper may take, unless `FLYWHEEL_HANDSHAKE_TIMEOUT`
/// (seconds) says otherwise.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a mapper gets between SIGTERM and SIGKILL.
pub(crate) const KILL_GRACE: Duration = Duration::from_secs(3);
/// How long a mapper whose stdout reached its end gets to exit before it is killed.
pub(crate) const EXIT_GRACE: Duration = Duration::from_secs(2);
/// How long the reader may still deliver lines a mapper wrote before it died (a process it
/// left behind may hold its stdout open, so no end of stream is coming).
pub(crate) const DRAIN_GRACE: Duration = Duration::from_millis(300);
/// How long a killed mapper may take to be reaped before a thread is left to reap it.
const REAP_DEADLINE: Duration = Duration::from_secs(5);
/// How often a wait checks whether the mapper process is still alive.
pub(crate) const POLL: Duration = Duration::from_millis(50);

pub(crate) fn handshake_timeout() -> Duration {
    std::env::var("FLYWHEEL_HANDSHAKE_TIMEOUT")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(HANDSHAKE_TIMEOUT, Duration::from_secs_f64)
}

/// Whether the process `pid` (our unreaped child) has exited; leaves it unreaped, so that its
/// pid, and with it its process group id, stays reserved until we reap it.
pub(crate) fn has_exited(pid: u32) -> bool {
    // SAFETY: waitid on our own child with WNOWAIT only reads its state; siginfo_t is plain data.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let rc = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        // ECHILD: already reaped.
        rc != 0 || info.si_pid() != 0
    }
}

/// Sends `signal` to the mapper's process group: the mapper and whatever it started.
pub(crate) fn signal_group(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) on the process group of a child we spawned (with process_group(0), so its
    // group id is its pid) and have not reaped.
    unsafe {
        libc::kill(-(pid as libc::pid_t), signal);
    }
}

/// Waits until `done()` or `limit` has passed; returns `done()`.
pub(crate) fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Ends a mapper process and everything in its process group, never waiting without a bound:
/// SIGTERM, `grace` to exit, then SIGKILL; reaps it within [`REAP_DEADLINE`] (else a thread is
/// left to reap it). Returns how it ended, if it was reaped.
pub(crate) fn stop_process(mut r: Running, grace: Duration) -> Option<std::process::ExitStatus> {
    drop(r.stdin.take());
    let pid = r.proc.id();
    if !r.proc.has_exited() && !grace.is_zero() {
        signal_group(pid, libc::SIGTERM);
        wait_until(grace, || r.proc.has_exited());
    }
    // The mapper, if it ignored SIGTERM, and anything it left behind holding its pipes.
    signal_group(pid, libc::SIGKILL);
    let mut ended = None;
    wait_until(REAP_DEADLINE, || {
        ended = r.proc.reap();
        ended.is_some()
    });
    if let Some(stderr) = r.stderr.take() {
        // Let the last lines of stderr reach the tail the error message quotes.
        wait_until(Duration::from_millis(500), || stderr.is_finished());
    }
    match ended {
        Some(status) => status,
        None => {
            tracing::warn!(
                "mapper process {pid} did not go after SIGKILL; it is reaped when it goes"
            );
            r.proc.reap_later();
            None
        }
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with no message".to_string())
}

/// Reads the mapper's stdout into messages until it ends; the Arrow data of an arrow line that
/// says `"shm": true` is read from `shm` (the mapper's output memfd), if it was given one.
pub(crate) fn read_messages(
    stdout: std::process::ChildStdout,
    shm: Option<&std::fs::File>,
    tx: &crossbeam_channel::Sender<Option<Message>>,
) {
    let mut reader = BufReader::with_capacity(1 << 20, stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        let msg = match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Err(e) => Message::Broken(format!("reading its stdout failed: {e}")),
            Ok(_) => match serde_json::from_slice::<serde_json::Value>(&line) {
                Ok(v) => match arrow_announcement(&v) {
                    Some(Announcement {
                        bytes: Loose::Is(n),
                        rows,
                        shm: true,
                    }) => match shm {
                        Some(file) => match crate::shm::read_output(file, n) {
                            Ok(data) => Message::Arrow { data, rows },
                            Err(why) => Message::Broken(why),
                        },
                        None => Message::Broken(
                            "its arrow line points at shared memory it was not given".into(),
                        ),
                    },
                    Some(Announcement {
                        bytes: Loose::Is(n),
                        rows,
                        shm: false,
                    }) => read_arrow(&mut reader, n, rows),
                    Some(Announcement {
                        bytes: Loose::Not(n),
                        ..
                    }) => {
                        Message::Broken(format!("its arrow line has bytes {n}, not a byte count"))
                    }
                    None => Message::Json(v),
                },
                Err(_) => Message::Garbage(String::from_utf8_lossy(&line).into_owned()),
            },
        };
        let broken = matches!(msg, Message::Broken(_));
        if tx.send(Some(msg)).is_err() || broken {
            return;
        }
    }
    let _ = tx.send(None);
}

/// The `n` bytes of Arrow data an arrow line announced, read from the mapper's stdout.
fn read_arrow(reader: &mut impl Read, n: u64, rows: Option<u64>) -> Message {
    // Grows with the data that arrives: a wrong count costs no memory.
    let mut data = Vec::with_capacity((n as usize).min(64 << 20));
    match reader.take(n).read_to_end(&mut data) {
        Ok(got) if got as u64 == n => Message::Arrow { data, rows },
        Ok(got) => Message::Broken(format!(
            "it announced {n} bytes of Arrow data and its stdout ended after {got}"
        )),
        Err(e) => Message::Broken(format!("reading its stdout failed: {e}")),
    }
}

pub(crate) fn describe_exit(s: &std::process::ExitStatus) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Command, Stdio};

    fn spawn(script: &str) -> Running {
        let child = Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("sh starts");
        Running {
            proc: Proc::Spawned(child),
            stdin: None,
            lines: crossbeam_channel::never(),
            stderr: None,
            arrow: false,
            shm: None,
        }
    }

    #[test]
    fn a_process_ignoring_sigterm_is_killed_after_the_grace_with_its_group() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let pid_file = dir.path().join("pid");
        let r = spawn(&format!(
            "trap '' TERM; sleep 30 & echo $! > {}; wait",
            pid_file.display()
        ));
        let pid = r.proc.id();
        let grandchild: libc::pid_t = {
            assert!(wait_until(Duration::from_secs(5), || pid_file.exists()));
            wait_until(Duration::from_secs(1), || {
                std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n'))
            });
            std::fs::read_to_string(&pid_file)
                .expect("pid file")
                .trim()
                .parse()
                .expect("a pid")
        };
        assert!(!has_exited(pid));
        let started = Instant::now();
        let status = stop_process(r, Duration::from_millis(300)).expect("reaped");
        assert_eq!(status.signal(), Some(libc::SIGKILL), "SIGTERM was ignored");
        assert!(started.elapsed() < Duration::from_secs(3));
        // Gone, or a zombie waiting for whoever inherited it.
        let gone = wait_until(Duration::from_secs(2), || {
            std::fs::read_to_string(format!("/proc/{grandchild}/stat")).map_or(true, |s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
        });
        assert!(gone, "the process it started was killed with it");
    }

    #[test]
    fn a_process_that_exited_is_seen_without_being_reaped() {
        let mut r = spawn("exit 7");
        assert!(wait_until(Duration::from_secs(5), || r.proc.has_exited()));
        // Still ours to reap, with its status.
        let status = r.proc.reap().flatten().expect("reaped with its status");
        assert_eq!(status.code(), Some(7));
    }
}

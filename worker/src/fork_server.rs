//! Warm restarts for Python mappers: a fork server per worker (the runner started with
//! `--fork-server`, python/flywheel/_fork_server.py) that has imported pyarrow and the mapper's
//! module once and forks a fresh mapper process for every (re)start, so a crash costs the
//! mapper's `start()`, not a new interpreter.
//!
//! The worker makes the new process's pipes itself and hands their far ends to the server over a
//! `SOCK_SEQPACKET` socket (SCM_RIGHTS), so nothing else can hold them. A forked process is the
//! server's child, not the worker's: the worker watches it through a pidfd and learns its exit
//! status from the server, which keeps it unreaped (its pid and process group id reserved) until
//! the worker has read that status. Everything else about it — its own process group, the kill
//! of the group, the memory limit, SIGTERM when its parent dies — is as for a process the worker
//! starts itself (`child`).

use crate::child::wait_until;
use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};
use std::collections::HashMap;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a fork request may take to be answered.
const FORK_DEADLINE: Duration = Duration::from_secs(10);
/// How long the server may take to go once it is told to.
const SERVER_EXIT_GRACE: Duration = Duration::from_secs(2);

/// The variables the server needs set for its imports to start no threads, each unless the
/// user set it: pyarrow's jemalloc starts a background thread otherwise.
pub(crate) fn server_env(is_set: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let set: Vec<(String, String)> = [("JE_ARROW_MALLOC_CONF", "background_thread:false")]
        .into_iter()
        .filter(|(k, _)| !is_set(k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // A forked mapper process removes what only the server needed from its environment.
    let names: Vec<&str> = set.iter().map(|(k, _)| k.as_str()).collect();
    let marker = ("FLYWHEEL_FORK_SERVER_SET".to_string(), names.join(","));
    set.iter().cloned().chain([marker]).collect()
}

/// What the server's control socket carries (besides exit statuses, kept in [`Shared`]).
enum Event {
    Starting,
    Ready,
    /// The mapper module's import failed (a directly started process reports it).
    Fatal,
    /// Forking would not be safe (threads exist), or another reason the server stopped.
    Unsafe(String),
    Forked(u32),
    ForkFailed(String),
}

/// What the worker's mapper thread and the server's reader thread share.
struct Shared {
    ctl: OwnedFd,
    /// Exit statuses (raw wait statuses) of forked processes, until taken.
    statuses: Mutex<HashMap<u32, i32>>,
    /// Whether the control socket is still open at the server's end.
    alive: AtomicBool,
}

impl Shared {
    fn send(&self, message: &serde_json::Value, fds: &[RawFd]) -> std::io::Result<()> {
        send_with_fds(self.ctl.as_raw_fd(), message.to_string().as_bytes(), fds)
    }
}

/// How a start of the server went.
pub(crate) enum Started {
    Up(ForkServer),
    /// It cannot serve (why, for the log): mapper processes start directly.
    Off(String),
    /// Importing the mapper's module failed: a directly started process reports it.
    ImportFailed,
    /// It did not become ready within the deadline (the chunk timeout) and was killed.
    TimedOut,
}

/// A running fork server.
pub(crate) struct ForkServer {
    child: Child,
    shared: Arc<Shared>,
    events: Receiver<Event>,
}

/// A mapper process the server forked: the server's child, watched through a pidfd.
pub(crate) struct Forked {
    pid: u32,
    pidfd: OwnedFd,
    shared: Arc<Shared>,
    reaped: bool,
}

impl ForkServer {
    /// Starts the server from `command` (the runner with `--fork-server`, its own process
    /// group, the parent-death signal) and waits for it to have imported the mapper's module:
    /// its first message within `handshake`, `ready` within `ready`. `forward` takes its stderr
    /// (to the job log).
    pub(crate) fn start(
        mut command: Command,
        handshake: Duration,
        ready: Duration,
        forward: impl FnOnce(ChildStderr),
    ) -> Started {
        let (ours, theirs) = match seqpacket_pair() {
            Ok(pair) => pair,
            Err(e) => return Started::Off(format!("cannot make its socket: {e}")),
        };
        command
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let spawned = command.spawn();
        // The server's end of the socket must not stay open here: its death is our end of file.
        drop(command);
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => return Started::Off(format!("cannot start it: {e}")),
        };
        if let Some(stderr) = child.stderr.take() {
            forward(stderr);
        }
        let reader = match ours.try_clone() {
            Ok(fd) => UnixStream::from(fd),
            Err(e) => {
                kill_server(&mut child);
                return Started::Off(format!("cannot read its socket: {e}"));
            }
        };
        let shared = Arc::new(Shared {
            ctl: ours,
            statuses: Mutex::new(HashMap::new()),
            alive: AtomicBool::new(true),
        });
        let (tx, events) = unbounded();
        let for_reader = Arc::clone(&shared);
        std::thread::spawn(move || read_events(reader, &for_reader, &tx));
        let mut server = ForkServer {
            child,
            shared,
            events,
        };
        match server.handshake(handshake, ready) {
            Ok(()) => Started::Up(server),
            Err(started) => started,
        }
    }

    fn handshake(&mut self, handshake: Duration, ready: Duration) -> Result<(), Started> {
        match self.events.recv_timeout(handshake) {
            Ok(Event::Starting) => {}
            Ok(Event::Ready) => return Ok(()),
            Ok(other) => return Err(refusal(other)),
            Err(_) => return Err(Started::Off("it said nothing".into())),
        }
        match self.events.recv_timeout(ready) {
            Ok(Event::Ready) => Ok(()),
            Ok(other) => Err(refusal(other)),
            Err(RecvTimeoutError::Timeout) => Err(Started::TimedOut),
            Err(RecvTimeoutError::Disconnected) => Err(Started::Off(match self.child.try_wait() {
                Ok(Some(s)) => format!("it {}", crate::child::describe_exit(&s)),
                _ => "it closed its socket".into(),
            })),
        }
    }

    /// Forks a mapper process with fresh pipes; the memory limit `mem` (RLIMIT_DATA) is set in
    /// it, and it gets the shared memory `shm` (input and output memfds), if any. Returns it
    /// with the worker's ends of its stdin, stdout and stderr.
    pub(crate) fn fork(
        &self,
        mem: Option<u64>,
        shm: Option<[RawFd; 2]>,
    ) -> Result<(Forked, ChildStdin, ChildStdout, ChildStderr), String> {
        let (stdin_r, stdin_w) = pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
        let (stdout_r, stdout_w) = pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
        let (stderr_r, stderr_w) = pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
        let request = serde_json::json!({"fork": {"mem": mem}});
        let mut fds = vec![
            stdin_r.as_raw_fd(),
            stdout_w.as_raw_fd(),
            stderr_w.as_raw_fd(),
        ];
        fds.extend(shm.into_iter().flatten());
        self.shared
            .send(&request, &fds)
            .map_err(|e| format!("cannot send it a request: {e}"))?;
        // Only the new process holds these ends now.
        drop((stdin_r, stdout_w, stderr_w));
        let deadline = Instant::now() + FORK_DEADLINE;
        let pid = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Event::Forked(pid)) => break pid,
                Ok(Event::ForkFailed(why)) => return Err(why),
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "it did not fork within {}s",
                        FORK_DEADLINE.as_secs()
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => return Err("it exited".into()),
            }
        };
        let pidfd = match pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) => {
                crate::child::signal_group(pid, libc::SIGKILL);
                let _ = self.shared.send(&serde_json::json!({ "reap": pid }), &[]);
                return Err(format!("cannot watch the forked process {pid}: {e}"));
            }
        };
        let forked = Forked {
            pid,
            pidfd,
            shared: Arc::clone(&self.shared),
            reaped: false,
        };
        Ok((
            forked,
            ChildStdin::from(stdin_w),
            ChildStdout::from(stdout_r),
            ChildStderr::from(stderr_r),
        ))
    }
}

fn refusal(event: Event) -> Started {
    match event {
        Event::Fatal => Started::ImportFailed,
        Event::Unsafe(why) => Started::Off(why),
        _ => Started::Off("its first message was not ready".into()),
    }
}

impl Drop for ForkServer {
    fn drop(&mut self) {
        // Told by the end of its socket, it exits; its forked processes get SIGTERM with it.
        // SAFETY: shutdown(2) on a socket descriptor this struct owns.
        unsafe {
            libc::shutdown(self.shared.ctl.as_raw_fd(), libc::SHUT_RDWR);
        }
        let pid = self.child.id();
        if !wait_until(SERVER_EXIT_GRACE, || crate::child::has_exited(pid)) {
            kill_server(&mut self.child);
        }
        let _ = self.child.try_wait();
    }
}

/// Kills the server's process group (only the server: forked processes have their own) and
/// reaps it, bounded; a thread reaps it if it is slow.
fn kill_server(child: &mut Child) {
    crate::child::signal_group(child.id(), libc::SIGKILL);
    let pid = child.id();
    if !wait_until(Duration::from_secs(5), || crate::child::has_exited(pid)) {
        tracing::warn!("fork server {pid} did not go after SIGKILL");
    }
    let _ = child.try_wait();
}

impl Forked {
    pub(crate) fn id(&self) -> u32 {
        self.pid
    }

    /// Whether the process has exited (it stays unreaped until [`Forked::reap`]).
    pub(crate) fn has_exited(&self) -> bool {
        let mut poll = libc::pollfd {
            fd: self.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll(2) on one pollfd this function owns, without waiting.
        let rc = unsafe { libc::poll(&mut poll, 1, 0) };
        rc > 0 && poll.revents != 0
    }

    /// Its exit status once the server has reported it (the server then reaps it); `Some(None)`
    /// when it has exited and no status can come (the server is gone).
    pub(crate) fn reap(&mut self) -> Option<Option<ExitStatus>> {
        let status = self
            .shared
            .statuses
            .lock()
            .ok()
            .and_then(|mut s| s.remove(&self.pid));
        if let Some(raw) = status {
            self.release();
            return Some(Some(ExitStatus::from_raw(raw)));
        }
        if !self.shared.alive.load(Ordering::Acquire) && self.has_exited() {
            self.reaped = true;
            return Some(None);
        }
        None
    }

    /// Lets the server reap it whenever it exits.
    fn release(&mut self) {
        if !self.reaped {
            self.reaped = true;
            let _ = self
                .shared
                .send(&serde_json::json!({ "reap": self.pid }), &[]);
        }
    }
}

impl Drop for Forked {
    fn drop(&mut self) {
        self.release();
    }
}

/// Reads the server's messages until its socket ends: exit statuses into `shared`, the rest to
/// `tx`.
fn read_events(mut socket: UnixStream, shared: &Shared, tx: &Sender<Event>) {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match socket.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&buf[..n]) else {
            tracing::warn!("the fork server wrote a message that is not JSON");
            continue;
        };
        let pid_of = |key: &str| v.get(key).and_then(|p| p.as_u64()).map(|p| p as u32);
        let text_of = |key: &str| v.get(key).and_then(|t| t.as_str()).map(str::to_string);
        let event = if let (Some(pid), Some(raw)) =
            (pid_of("exited"), v.get("status").and_then(|s| s.as_i64()))
        {
            if let Ok(mut s) = shared.statuses.lock() {
                s.insert(pid, raw as i32);
            }
            continue;
        } else if v.get("starting").is_some() {
            Event::Starting
        } else if v.get("ready").is_some() {
            Event::Ready
        } else if let Some(pid) = pid_of("forked") {
            Event::Forked(pid)
        } else if let Some(why) = text_of("fork_failed") {
            Event::ForkFailed(why)
        } else if v.get("fatal").is_some() {
            Event::Fatal
        } else {
            Event::Unsafe(text_of("unsafe").unwrap_or_else(|| format!("it wrote {v:.200}")))
        };
        if tx.send(event).is_err() {
            break;
        }
    }
    shared.alive.store(false, Ordering::Release);
}

/// A connected pair of `SOCK_SEQPACKET` Unix sockets (close-on-exec): one message per send.
fn seqpacket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: socketpair(2) writes two descriptors into the array on success; each is then
    // owned exactly once.
    unsafe {
        if libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

/// A pipe (close-on-exec, so no other process the worker starts inherits it): (read, write).
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2(2) writes two descriptors into the array on success; each is then owned
    // exactly once.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

/// A pidfd for `pid` (close-on-exec): readable once the process has exited.
fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) returns a new descriptor or -1; the descriptor is owned once.
    unsafe {
        let fd = libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd as RawFd))
    }
}

/// Sends one message with `fds` attached (SCM_RIGHTS).
fn send_with_fds(socket: RawFd, data: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    let payload = std::mem::size_of_val(fds);
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: the msghdr points at `iov` and `control`, which outlive the sendmsg call;
    // `control` is CMSG_SPACE bytes, 8-byte aligned, holding one SCM_RIGHTS header and the
    // descriptors, copied byte-wise.
    unsafe {
        let space = libc::CMSG_SPACE(payload as u32) as usize;
        let mut control = vec![0u64; space.div_ceil(8)];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(payload as u32) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                payload,
            );
        }
        loop {
            if libc::sendmsg(socket, &msg, libc::MSG_NOSIGNAL) >= 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

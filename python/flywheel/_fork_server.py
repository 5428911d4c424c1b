"""flywheel's fork server: warm mapper restarts.

A worker starts the runner once with --fork-server (one such process per worker). It imports the
runner's modules (pyarrow among them) and the mapper's module, never instantiates the mapper or
calls start(), then forks one mapper process per request: after a crash the replacement starts
from this imported state instead of a new interpreter. The forked process becomes exactly what
a directly started runner is (its own process group, a SIGTERM when its parent dies, the memory
limit, the protocol on stdin and stdout, start() run in it).

The control channel is a SOCK_SEQPACKET socket on the server's stdin, one JSON message a packet:

    worker -> server  {"fork": {"mem": BYTES|null}}  with 3 descriptors (SCM_RIGHTS): the new
                                                      process's stdin, stdout and stderr, or 5:
                                                      then also its shared memory (input and
                                                      output memfds, FLYWHEEL_SHM_FDS in it)
                      {"reap": PID}                   reap PID once it has exited
    server -> worker  {"starting": true}, then {"ready": true} | {"fatal": TRACEBACK} |
                      {"unsafe": WHY} (threads exist: forking would not be safe)
                      {"forked": PID} | {"fork_failed": WHY}
                      {"exited": PID, "status": WAIT_STATUS}

A process that exited is left a zombie until the worker asks for its reaping, so its pid (and
its process group id) cannot be reused while the worker may still signal the group.

os.fork is safe only while this process has one thread. pyarrow's bundled jemalloc starts a
background thread when the library loads unless JE_ARROW_MALLOC_CONF says background_thread:false
(the worker sets it for this process unless the user set it). OpenBLAS, which numpy starts when
it is imported (and pyarrow imports numpy), starts a thread pool unless OPENBLAS_NUM_THREADS is
1, but stops it before every fork (a pthread_atfork handler) and starts it again only when used.
So the server counts its threads after the imports; if there is more than one, it forks once (a
child that exits at once) and counts again. If threads are still left, it answers "unsafe" and
the worker starts every mapper process directly, as without a fork server. Every fork request
checks the count again.
"""

import ctypes
import gc
import json
import os
import resource
import select
import signal
import socket
import sys
import traceback

PR_SET_PDEATHSIG = 1


def _threads():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0  # cannot count them: not provably one


def _thread_names():
    names = []
    try:
        for task in sorted(os.listdir("/proc/self/task")):
            with open(f"/proc/self/task/{task}/comm") as f:
                names.append(f.read().strip())
    except OSError:
        pass
    return ", ".join(names)


def _trial_fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def _wait_status(info):
    """The raw wait status (as waitpid gives it) of a waitid result."""
    if info.si_code == os.CLD_EXITED:
        return (info.si_status & 0xFF) << 8
    core = 0x80 if info.si_code == os.CLD_DUMPED else 0
    return (info.si_status & 0x7F) | core


class _Server:
    def __init__(self, ctl):
        self.ctl = ctl
        self.live = set()  # forked, not seen exited
        self.exited = set()  # seen exited, not reaped
        self.reap = set()  # to reap once exited
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.libc = ctypes.CDLL(None, use_errno=True)

    def say(self, obj):
        self.ctl.send(json.dumps(obj).encode())

    def fork(self, request, fds):
        """Forks a mapper process; returns True in it, False in the server."""
        if len(fds) not in (3, 5):
            for fd in fds:
                os.close(fd)
            self.say({"fork_failed": f"the request carried {len(fds)} descriptors, not 3 or 5"})
            return False
        mem = (request.get("fork") or {}).get("mem")
        if _threads() != 1:
            for fd in fds:
                os.close(fd)
            self.say({"fork_failed": f"{_threads()} threads exist in the fork server"})
            return False
        server = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            self.say({"fork_failed": f"fork: {exc}"})
            return False
        if pid == 0:
            self.become_mapper(server, fds, mem)
            return True
        for fd in fds:
            os.close(fd)
        try:
            # Also done in the child: the group exists before the worker learns the pid.
            os.setpgid(pid, pid)
        except OSError:
            pass  # it has exited already (or set it itself)
        self.live.add(pid)
        self.say({"forked": pid})
        return False

    def become_mapper(self, server, fds, mem):
        os.setpgid(0, 0)
        # The mapper gets SIGTERM when this server dies (and the server when the worker does).
        self.libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != server:
            os._exit(1)  # the server died before the signal was armed
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.close(self.wake_r)
        os.close(self.wake_w)
        self.ctl.close()
        # Received descriptors are numbered after 0, 1 and 2, which this server holds open.
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
            os.close(fd)
        if len(fds) == 5:
            os.environ["FLYWHEEL_SHM_FDS"] = f"{fds[3]},{fds[4]}"
        else:
            os.environ.pop("FLYWHEEL_SHM_FDS", None)
        for name in os.environ.get("FLYWHEEL_FORK_SERVER_SET", "").split(","):
            if name:
                os.environ.pop(name, None)
        os.environ.pop("FLYWHEEL_FORK_SERVER_SET", None)
        if sys.argv[1:2] == ["--fork-server"]:
            del sys.argv[1]  # the mapper process sees the runner's own command line
        if mem:
            resource.setrlimit(resource.RLIMIT_DATA, (int(mem), int(mem)))
        os.write(1, b'{"starting": true}\n')

    def collect(self):
        """Reports the forked processes that exited; reaps those the worker is done with."""
        for pid in list(self.live):
            try:
                info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                self.live.discard(pid)
                continue
            if info is not None and info.si_pid:
                self.live.discard(pid)
                self.exited.add(pid)
                self.say({"exited": pid, "status": _wait_status(info)})
        for pid in list(self.reap & self.exited):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            self.reap.discard(pid)
            self.exited.discard(pid)

    def loop(self):
        """Serves requests until the worker closes the socket (returns False) or this is a forked
        mapper process (returns True)."""
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w)
        while True:
            ready, _, _ = select.select([self.ctl, self.wake_r], [], [], 1.0)
            if self.wake_r in ready:
                try:
                    while os.read(self.wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
            if self.ctl in ready:
                msg, fds, _, _ = socket.recv_fds(self.ctl, 1 << 16, 5)
                if not msg:
                    return False
                request = json.loads(msg)
                if "fork" in request:
                    if self.fork(request, fds):
                        return True
                else:
                    for fd in fds:
                        os.close(fd)
                    if "reap" in request:
                        self.reap.add(int(request["reap"]))
            self.collect()


def serve(import_mapper, warm_up):
    """Runs the fork server; returns the imported mapper module only in a forked mapper process.
    The server itself exits here. `warm_up` runs the runner's pyarrow paths once, so that what
    they load lazily is loaded before any fork."""
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    ctl = socket.socket(fileno=os.dup(0))
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)  # the module's print()s go to the log, as in a mapper process
    server = _Server(ctl)
    try:
        loaded = import_mapper(os.environ["FLYWHEEL_MAPPER"])
    except BaseException:  # noqa: BLE001 - the worker starts the mapper directly and reports it
        server.say({"fatal": traceback.format_exc()})
        sys.exit(1)
    try:
        warm_up()
    except Exception:  # noqa: BLE001 - only speed is lost; a mapper process meets it itself
        traceback.print_exc()
    threads = _threads()
    if threads != 1:
        # Libraries that know about fork stop their threads before one (OpenBLAS's pool, started
        # by numpy's import, which pyarrow's does) and start them again only when used: after a
        # first fork only threads that would survive any fork are left.
        _trial_fork()
        threads = _threads()
    if threads != 1:
        server.say({"unsafe": f"{threads or 'an unknown number of'} threads after the imports: {_thread_names()}"})
        sys.exit(0)
    # What the imports built is shared with every forked process: out of the cycle collector's
    # reach, so that collections there do not touch (and copy) these pages.
    gc.collect()
    gc.freeze()
    server.say({"ready": True})
    if server.loop():
        return loaded
    sys.exit(0)

//! SIGUSR1 (Slurm's warning before the time limit, `--signal=B:USR1@…`) and SIGTERM (scancel,
//! preemption) do not kill a flywheel process: they are recorded, and the coordinator checkpoints
//! — it stops handing out chunks, lets the running ones finish, and exits with status 3. Worker
//! ranks ignore them and wait for the coordinator's `Stop`.
//!
//! SIGPIPE: Rust ignores it, so a write to a closed stdout is an EPIPE error and `println!`
//! panics on it (`flywheel table log t | head -1` ended with exit 101). Commands that only print
//! (table, status, query, gpus, submit) take the signal's default action again, as `cat` and
//! `ls` do: a closed stdout ends them quietly. Jobs (map, run, rerun) keep ignoring it: they
//! write to mapper processes' pipes, and a mapper that died must be an error the chunk is
//! retried on, not the end of the coordinator.

use std::sync::atomic::{AtomicI32, Ordering};

static SIGNALLED: AtomicI32 = AtomicI32::new(0);

extern "C" fn record(sig: libc::c_int) {
    SIGNALLED.store(sig, Ordering::SeqCst);
}

/// Installs the handlers (idempotent).
pub fn install() {
    for sig in [libc::SIGUSR1, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, record as *const () as libc::sighandler_t);
        }
    }
}

/// The signal that asked for a checkpoint, if one came.
pub fn checkpoint_requested() -> Option<&'static str> {
    match SIGNALLED.load(Ordering::SeqCst) {
        0 => None,
        s if s == libc::SIGUSR1 => Some("SIGUSR1 (the time limit is near)"),
        _ => Some("SIGTERM (scancel or preemption)"),
    }
}

/// Restores SIGPIPE's default action, so that writing to a closed stdout ends the process
/// quietly (the shell sees status 141) instead of an EPIPE error or a `println!` panic. Only for
/// commands that write to no pipe but stdout.
pub fn die_quietly_on_closed_stdout() {
    // SAFETY: setting a signal's disposition to its default installs no handler code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

//! SIGUSR1 (Slurm's warning before the time limit, `--signal=B:USR1@…`) and SIGTERM (scancel,
//! preemption) do not kill a flywheel process: they are recorded, and the coordinator checkpoints
//! — it stops handing out chunks, lets the running ones finish, and exits with status 3. Worker
//! ranks ignore them and wait for the coordinator's `Stop`.

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

//! Peak memory of a command, measured from a small helper process (see `measured`).

use anyhow::{bail, Context, Result};
use std::process::Command;
use std::time::Instant;

/// Runs a command and returns (wall seconds, peak RSS in MB) of it. Linux gives a process the
/// RSS high-water mark of the process it was forked from (`ru_maxrss` starts at the parent's
/// resident size): started from this process, whose in-process cases leave it hundreds of MB
/// resident, every command would measure at least that. So a small helper (this binary again,
/// in its measuring mode) starts the command and reports its usage.
pub fn measured(cmd: &mut Command) -> Result<(f64, f64)> {
    let mut helper = Command::new(std::env::current_exe()?);
    helper
        .env(MEASURE_VAR, "1")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => helper.env(k, v),
            None => helper.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        helper.current_dir(d);
    }
    let out = helper.stderr(std::process::Stdio::inherit()).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "{cmd:?} failed ({})", out.status);
    let mut it = text.split_whitespace().map(str::parse::<f64>);
    match (it.next(), it.next()) {
        (Some(Ok(wall)), Some(Ok(rss))) => Ok((wall, rss)),
        _ => bail!("the measuring helper printed {text:?}"),
    }
}

/// Set in the measuring helper's environment (see `measured`).
pub const MEASURE_VAR: &str = "FLYWHEEL_BENCH_MEASURE";

/// The measuring helper: runs its arguments as a command, prints "WALL_S RSS_MB" of it, and
/// exits non-zero if the command failed.
pub fn measure_main() -> Result<()> {
    let mut argv = std::env::args_os().skip(1);
    let program = argv
        .next()
        .context("the measuring helper needs a command")?;
    let t = Instant::now();
    let child = Command::new(&program)
        .args(argv)
        .env_remove(MEASURE_VAR)
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child; status and usage point to live locals.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    if pid < 0 {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("{} failed (status {status})", program.to_string_lossy());
    }
    println!(
        "{} {}",
        t.elapsed().as_secs_f64(),
        usage.ru_maxrss as f64 / 1024.0
    );
    Ok(())
}

//! Locks on a table, held with `flock(2)` so that the kernel (or the NFS lock manager) drops them
//! when their holder dies, `kill -9` included.
//!
//! ```text
//! TABLE/_lock                  shared by every running job, exclusive for `table vacuum`
//! TABLE/_jobs/<job-id>.lock    exclusive: the one process running job <job-id>
//! ```
//!
//! A job takes the table lock shared before it writes or verifies any data file and keeps it until
//! it has published, so vacuum (exclusive) never deletes a file that a running job has written or
//! a resuming job has just checked. Two processes running the same job (two `--resume` at once)
//! cannot both hold its job lock: the second is refused with the holder's host and pid.

use crate::{FormatError, Table};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TABLE_LOCK: &str = "_lock";
const JOBS_DIR: &str = "_jobs";

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Shared,
    Exclusive,
}

fn open(path: &Path) -> Result<File, FormatError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(FormatError::io(dir))?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(FormatError::io(path))
}

/// One non-blocking `flock` try: `Ok(false)` when another process holds it.
fn try_flock(file: &File, kind: Kind, path: &Path) -> Result<bool, FormatError> {
    let op = match kind {
        Kind::Shared => libc::LOCK_SH,
        Kind::Exclusive => libc::LOCK_EX,
    } | libc::LOCK_NB;
    // SAFETY: flock on a descriptor this function's caller owns.
    let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(false),
        Some(libc::EINTR) => Ok(false),
        _ => Err(FormatError::Unsupported {
            path: path.to_path_buf(),
            what: format!(
                "file locks do not work here ({e}); flywheel needs flock(2) to keep two writers of one job apart (on Lustre, mount with -o flock)"
            ),
        }),
    }
}

/// Takes a lock, retrying until `wait` has passed; `Ok(None)` when it stayed held.
fn take(path: &Path, kind: Kind, wait: Duration) -> Result<Option<Lock>, FormatError> {
    let file = open(path)?;
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_millis(5);
    loop {
        if try_flock(&file, kind, path)? {
            return Ok(Some(Lock { _file: file }));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Who holds a job lock, as written into the lock file by its holder (which writes it just
/// after taking the lock: a reader may look a moment too early, so it looks again, briefly).
pub fn lock_holder(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let parsed = fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
        if let Some(v) = parsed {
            return format!(
                "pid {} on {} (since {})",
                v["pid"],
                v["host"].as_str().unwrap_or("?"),
                v["since"].as_str().unwrap_or("?")
            );
        }
        if Instant::now() >= deadline {
            return "another process".to_string();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Table {
    /// The job lock file of `job_id`.
    pub fn job_lock_path(&self, job_id: &str) -> PathBuf {
        self.dir().join(JOBS_DIR).join(format!("{job_id}.lock"))
    }

    /// Takes the table lock shared (a running job), waiting up to `wait` for a vacuum to end.
    pub fn lock_for_job(&self, wait: Duration) -> Result<Lock, FormatError> {
        let path = self.dir().join(TABLE_LOCK);
        take(&path, Kind::Shared, wait)?.ok_or(FormatError::Locked {
            path,
            holder: format!("`flywheel table vacuum` (waited {}s)", wait.as_secs()),
        })
    }

    /// Takes the table lock exclusive (vacuum): `Ok(None)` while any job holds it.
    pub fn lock_for_vacuum(&self, wait: Duration) -> Result<Option<Lock>, FormatError> {
        take(&self.dir().join(TABLE_LOCK), Kind::Exclusive, wait)
    }

    /// Takes the job lock of `job_id`, at once or not at all; records this process as holder.
    pub fn lock_job(&self, job_id: &str) -> Result<Lock, FormatError> {
        let path = self.job_lock_path(job_id);
        let Some(lock) = take(&path, Kind::Exclusive, Duration::ZERO)? else {
            return Err(FormatError::Locked {
                holder: lock_holder(&path),
                path,
            });
        };
        let holder = serde_json::json!({
            "pid": std::process::id(),
            "host": flywheel_protocol::hostname(),
            "since": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        });
        let mut f = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(FormatError::io(&path))?;
        let text = holder.to_string();
        f.write_all(text.as_bytes())
            .map_err(FormatError::io(&path))?;
        f.set_len(text.len() as u64)
            .map_err(FormatError::io(&path))?;
        Ok(lock)
    }

    /// Jobs whose lock file exists but which have no journal and are not running: started, then
    /// stopped before they recorded anything. With the lock file's modification time.
    pub fn unrecorded_jobs(&self) -> Vec<(String, std::time::SystemTime)> {
        let dir = self.dir().join(JOBS_DIR);
        let Ok(entries) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let id = name.strip_suffix(".lock")?.to_string();
                if dir.join(format!("{id}.jsonl")).exists() || self.job_locked(&id) {
                    return None;
                }
                Some((id, e.metadata().and_then(|m| m.modified()).ok()?))
            })
            .collect()
    }

    /// Whether a process holds the job lock of `job_id` now.
    pub fn job_locked(&self, job_id: &str) -> bool {
        let path = self.job_lock_path(job_id);
        path.exists() && matches!(take(&path, Kind::Exclusive, Duration::ZERO), Ok(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_share_the_table_and_exclude_vacuum_and_each_job_has_one_holder() {
        let dir = tempfile::tempdir().unwrap();
        let t = Table::new(dir.path());
        let a = t.lock_for_job(Duration::ZERO).unwrap();
        let b = t.lock_for_job(Duration::ZERO).unwrap();
        assert!(t.lock_for_vacuum(Duration::ZERO).unwrap().is_none());
        drop((a, b));
        let v = t.lock_for_vacuum(Duration::ZERO).unwrap().unwrap();
        assert!(t.lock_for_job(Duration::from_millis(20)).is_err());
        drop(v);

        let j = t.lock_job("x").unwrap();
        assert!(t.job_locked("x"));
        let err = t.lock_job("x").unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(j);
        assert!(!t.job_locked("x"));
        t.lock_job("x").unwrap();
    }
}

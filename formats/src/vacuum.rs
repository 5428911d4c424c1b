//! Removing what no kept version needs: old manifests, the data files only they referenced,
//! and orphans (files of failed attempts and crashed jobs, stale temporary files).
//!
//! Order matters: manifests of dropped versions go first, so that at every moment each
//! remaining manifest's files exist. A job that is writing to the table holds an *active
//! marker* (`_active/*.json`, touched while it runs); its data files are not referenced yet, so
//! vacuum refuses to run while a marker is fresh. Jobs also hold the table lock (`_lock`, see
//! `lock.rs`) shared for their whole life, and vacuum holds it exclusive for its own: a job cannot
//! start (or a resume verify its files) while vacuum deletes, and vacuum cannot start while a job
//! runs. Before each delete the markers are looked at again.

use crate::{FormatError, Table};
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const ACTIVE_DIR: &str = "_active";
/// A marker untouched this long belongs to a job that died.
pub const ACTIVE_FRESH: Duration = Duration::from_secs(120);

/// What a vacuum removed (or, dry, would remove).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VacuumReport {
    pub versions: Vec<u64>,
    pub files: Vec<(PathBuf, u64)>,
}

/// A running job's claim on a table; removed when dropped.
#[derive(Debug)]
pub struct ActiveJob {
    path: PathBuf,
}

impl ActiveJob {
    /// Refreshes the marker's modification time.
    pub fn touch(&self) {
        if let Ok(f) = fs::OpenOptions::new().write(true).open(&self.path) {
            let _ = f.set_modified(SystemTime::now());
        }
    }
}

impl Drop for ActiveJob {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl Table {
    /// Marks a job as writing to this table.
    pub fn mark_active(&self, description: &str) -> Result<ActiveJob, FormatError> {
        let dir = self.dir().join(ACTIVE_DIR);
        fs::create_dir_all(&dir).map_err(FormatError::io(&dir))?;
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = dir.join(format!("{}-{nanos}.json", std::process::id()));
        fs::write(&path, description).map_err(FormatError::io(&path))?;
        Ok(ActiveJob { path })
    }

    /// Fresh markers of running jobs. A marker written on this host by a process that no
    /// longer exists (a killed job) does not count, however fresh.
    pub fn active_jobs(&self) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(self.dir().join(ACTIVE_DIR)) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| {
                e.metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age < ACTIVE_FRESH)
            })
            .filter(|e| !dead_here(&e.path()))
            .map(|e| e.path())
            .collect()
    }

    /// Keeps the newest `keep` versions and removes everything else no kept version references.
    pub fn vacuum(
        &self,
        keep: usize,
        dry_run: bool,
        force: bool,
    ) -> Result<VacuumReport, FormatError> {
        if keep == 0 {
            return Err(FormatError::BadManifest {
                path: self.dir().to_path_buf(),
                reason: "vacuum must keep at least 1 version".into(),
            });
        }
        if !force {
            if let Some(marker) = self.active_jobs().first() {
                return Err(FormatError::JobActive(marker.clone()));
            }
        }
        // Held until the last delete: no job starts meanwhile (it waits for the lock).
        let _lock = if dry_run {
            None
        } else {
            Some(
                self.lock_for_vacuum(std::time::Duration::from_secs(2))?
                    .ok_or_else(|| FormatError::Locked {
                        path: self.dir().join("_lock"),
                        holder: "a running job (wait for it to publish, then vacuum)".into(),
                    })?,
            )
        };
        if !dry_run {
            // Entries owed to the log are derived from manifests this may remove.
            self.complete_delta()?;
        }
        let (report, stale) = self.vacuum_plan(keep)?;
        if !dry_run {
            self.vacuum_remove(&report, &stale, force)?;
            // The removals stand; a card left naming removed versions is redone by the next
            // publish or vacuum.
            if let Err(e) = self.write_card() {
                tracing::warn!(
                    "{}: the dataset card (README.md) was not rewritten: {e}",
                    self.dir().display()
                );
            }
        }
        Ok(report)
    }

    /// What keeping the newest `keep` versions removes: the other versions and the data files
    /// no kept version references (the report), and stale temporary manifests of crashed
    /// commits.
    fn vacuum_plan(&self, keep: usize) -> Result<(VacuumReport, Vec<PathBuf>), FormatError> {
        let versions = self.versions()?;
        if versions.is_empty() {
            return Err(FormatError::NoVersion(self.dir().to_path_buf()));
        }
        let split = versions.len().saturating_sub(keep);
        let (dropped, kept) = versions.split_at(split);
        let mut referenced = HashSet::new();
        for v in kept {
            for f in self.manifest(Some(*v))?.files {
                referenced.insert(f.path);
            }
        }
        let mut report = VacuumReport {
            versions: dropped.to_vec(),
            files: Vec::new(),
        };
        if let Ok(entries) = fs::read_dir(self.data_dir()) {
            for e in entries.flatten() {
                let rel = format!("data/{}", e.file_name().to_string_lossy());
                if !referenced.contains(&rel) && e.file_type().map(|t| t.is_file()).unwrap_or(false)
                {
                    report
                        .files
                        .push((e.path(), e.metadata().map(|m| m.len()).unwrap_or(0)));
                }
            }
        }
        report.files.sort();
        // Temporary manifests, Delta entries and cards (the table's own folder).
        let stale = [
            self.dir().join("_versions"),
            self.dir().join(crate::DELTA_LOG_DIR),
            self.dir().to_path_buf(),
        ]
        .iter()
        .flat_map(|d| stale_temporaries(d))
        .collect();
        Ok((report, stale))
    }

    /// Removes what [`Table::vacuum_plan`] found: manifests first, so that every remaining
    /// manifest's files exist at every moment; before each delete, unless `force`, the active
    /// markers are looked at again.
    fn vacuum_remove(
        &self,
        report: &VacuumReport,
        stale: &[PathBuf],
        force: bool,
    ) -> Result<(), FormatError> {
        let recheck = |what: &Path| -> Result<(), FormatError> {
            if force {
                return Ok(());
            }
            match self.active_jobs().first() {
                Some(marker) => {
                    tracing::warn!("vacuum stopped before removing {}", what.display());
                    Err(FormatError::JobActive(marker.clone()))
                }
                None => Ok(()),
            }
        };
        for v in &report.versions {
            let p = self.manifest_path(*v);
            recheck(&p)?;
            fs::remove_file(&p).map_err(FormatError::io(&p))?;
        }
        crate::table::sync_dir(&self.dir().join("_versions"))?;
        for p in report.files.iter().map(|(p, _)| p).chain(stale) {
            recheck(p)?;
            remove(p)?;
        }
        Ok(())
    }
}

/// Temporary files of crashed commits in `dir` (older than a live commit can be).
fn stale_temporaries(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
                .filter(|e| {
                    e.metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|a| a > ACTIVE_FRESH)
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a marker names a process on this host that is gone.
fn dead_here(marker: &Path) -> bool {
    let Ok(text) = fs::read_to_string(marker) else {
        return false;
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    let (Some(pid), Some(host)) = (v["pid"].as_i64(), v["host"].as_str()) else {
        return false;
    };
    if host != flywheel_protocol::hostname() {
        return false;
    }
    // SAFETY: kill with signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

fn remove(p: &Path) -> Result<(), FormatError> {
    match fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(FormatError::Io {
            path: p.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

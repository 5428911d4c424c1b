//! A job's own files that its published version does not reference — the losing copies of
//! speculatively run chunks, attempts that finished after another was accepted — removed once
//! it has published, so that the data folder holds only referenced files plus what other jobs
//! (running, crashed) wrote. Only files this job's workers reported are candidates; files of
//! crashed runs and other jobs are left to `flywheel table vacuum`.

use flywheel_formats::{Manifest, Table};
use flywheel_protocol::{Rank, ToCoordinator, ToWorker, Transport, TransportError};
use std::collections::HashSet;
use std::path::{Component, Path};
use std::time::Duration;

/// A transport that notes every file a worker reports written.
pub(crate) struct Recording<'t, T: Transport> {
    inner: &'t mut T,
    /// Table-relative paths (`data/…`, `_errors/data/…`), as reported.
    pub(crate) written: Vec<String>,
}

impl<'t, T: Transport> Recording<'t, T> {
    pub(crate) fn new(inner: &'t mut T) -> Self {
        Recording {
            inner,
            written: Vec::new(),
        }
    }
}

impl<T: Transport> Transport for Recording<'_, T> {
    fn workers(&self) -> Vec<Rank> {
        self.inner.workers()
    }

    fn send(&mut self, to: Rank, msg: ToWorker) -> Result<(), TransportError> {
        self.inner.send(to, msg)
    }

    fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(Rank, ToCoordinator)>, TransportError> {
        let got = self.inner.recv_timeout(timeout)?;
        if let Some((_, ToCoordinator::Done(o))) = &got {
            self.written.extend(o.file.iter().cloned());
            // Relative to the `_errors` table; the main manifest names it from the main table.
            self.written
                .extend(o.errors_file.iter().map(|f| format!("_errors/{f}")));
        }
        Ok(got)
    }
}

/// Removes the files in `written` that no version in `_versions` references (the published
/// one, and any another job published meanwhile); returns how many. Nothing is removed when
/// the versions cannot all be read.
pub(crate) fn remove_unreferenced(
    table: &Table,
    published: &Manifest,
    written: &[String],
) -> usize {
    let mut referenced: HashSet<String> = HashSet::new();
    let mut add = |m: &Manifest| {
        referenced.extend(m.files.iter().chain(&m.errors).map(|f| f.path.clone()));
    };
    add(published);
    let versions = match table.versions() {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("not removing this job's unreferenced files: {e}");
            return 0;
        }
    };
    for v in versions.into_iter().filter(|v| *v != published.version) {
        match table.manifest(Some(v)) {
            Ok(m) => add(&m),
            Err(flywheel_formats::FormatError::VersionMissing { .. }) => {} // vacuumed meanwhile
            Err(e) => {
                tracing::warn!("not removing this job's unreferenced files: {e}");
                return 0;
            }
        }
    }
    let mut removed = 0;
    for rel in written.iter().filter(|p| !referenced.contains(p.as_str())) {
        if !is_data_path(rel) {
            tracing::warn!("not removing '{rel}': not a data file path");
            continue;
        }
        let path = table.dir().join(rel);
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("could not remove {}: {e}", path.display()),
        }
    }
    if removed > 0 {
        tracing::info!("removed {removed} unreferenced file(s) this job wrote");
    }
    removed
}

/// `data/NAME` or `_errors/data/NAME`, nothing else.
fn is_data_path(rel: &str) -> bool {
    let parts: Vec<Component> = Path::new(rel).components().collect();
    let names: Vec<&str> = parts
        .iter()
        .filter_map(|c| match c {
            Component::Normal(n) => n.to_str(),
            _ => None,
        })
        .collect();
    names.len() == parts.len() && matches!(names.as_slice(), ["data", _] | ["_errors", "data", _])
}

#[cfg(test)]
mod tests {
    use super::is_data_path;

    #[test]
    fn only_data_file_paths_are_candidates() {
        assert!(is_data_path("data/c000001-a1-r1-x.parquet"));
        assert!(is_data_path("_errors/data/c000001-a1-r1-x.parquet"));
        for p in [
            "../data/x",
            "/data/x",
            "data/../x",
            "_versions/1.json",
            "data",
        ] {
            assert!(!is_data_path(p), "{p}");
        }
    }
}

//! Tables: a directory of immutable data files and one manifest per version.
//!
//! ```text
//! TABLE/
//!   _versions/00000000000000000001.json   manifest of version 1 (exists ⇔ version 1 exists)
//!   _versions/.tmp-<pid>-<nanos>.json     a manifest being written (never read)
//!   data/<chunk>-<attempt>-<job>.parquet  data files (part of a version only once named)
//! ```
//!
//! Commit protocol (publish version N):
//!
//! ```text
//!  write manifest to _versions/.tmp-*  ──fsync──▶  link(tmp, _versions/N.json)
//!                                                   │ EEXIST → VersionAlreadyExists (retryable)
//!                                                   ▼
//!                                      unlink(tmp), fsync(_versions/)  ──▶ version N visible
//! ```
//!
//! `link(2)` never replaces an existing name (unlike `rename(2)`), works on NFS, Lustre and GPFS,
//! and makes the complete, synced manifest appear in one step: a reader sees version N whole or
//! not at all, and of two writers racing for N exactly one wins.

use crate::{FormatError, Manifest};
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const VERSIONS_DIR: &str = "_versions";
const DATA_DIR: &str = "data";

/// `PATH` or `PATH@N` / `PATH@latest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    pub path: PathBuf,
    /// `None` means the latest version.
    pub version: Option<u64>,
}

impl TableRef {
    /// Parses a table address. Only a final `@` followed by a number or `latest` is a version.
    pub fn parse(text: &str) -> Result<TableRef, FormatError> {
        if let Some((path, v)) = text.rsplit_once('@') {
            if !path.is_empty() && !v.contains('/') {
                if v == "latest" {
                    return Ok(TableRef {
                        path: path.into(),
                        version: None,
                    });
                }
                return match v.parse::<u64>() {
                    Ok(n) if n >= 1 => Ok(TableRef {
                        path: path.into(),
                        version: Some(n),
                    }),
                    _ => Err(FormatError::BadTableRef(text.to_string())),
                };
            }
        }
        Ok(TableRef {
            path: text.into(),
            version: None,
        })
    }
}

/// A table directory.
#[derive(Debug, Clone)]
pub struct Table {
    dir: PathBuf,
}

impl Table {
    /// Checks that a table written at `path` can be named by a table address: refuses a path
    /// whose last component has an `@` (`out/x@2` reads as version 2 of `out/x`, `out/x@latest`
    /// as `out/x`, and `out/x@y` as no table at all). Touches nothing on disk.
    pub fn check_output_name(path: &Path) -> Result<(), FormatError> {
        use std::path::Component;
        let Some(Component::Normal(name)) = path.components().next_back() else {
            return Ok(());
        };
        let name = name.to_string_lossy();
        let Some((base, after)) = name.rsplit_once('@') else {
            return Ok(());
        };
        // Read the name as every command reads an address, under some parent directory.
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let read_as = parent.join(base);
        let why = match TableRef::parse(&format!("d/{name}")) {
            Ok(TableRef {
                version: Some(v), ..
            }) => format!(
                "a table address reads it as version {v} of {}",
                read_as.display()
            ),
            Ok(_) => format!(
                "a table address reads it as the latest version of {}",
                read_as.display()
            ),
            Err(_) => format!("a table address cannot name it ('@{after}' is not a version)"),
        };
        Err(FormatError::UnaddressableOutput {
            path: path.to_path_buf(),
            why,
        })
    }
}

impl Table {
    /// A handle on the table at `dir` (which need not exist yet).
    pub fn new(dir: impl Into<PathBuf>) -> Table {
        Table { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where workers put data files.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join(DATA_DIR)
    }

    fn versions_dir(&self) -> PathBuf {
        self.dir.join(VERSIONS_DIR)
    }

    pub(crate) fn manifest_path(&self, version: u64) -> PathBuf {
        self.versions_dir().join(format!("{version:020}.json"))
    }

    /// Whether `dir` looks like a table (has a versions directory).
    pub fn is_table(dir: &Path) -> bool {
        dir.join(VERSIONS_DIR).is_dir()
    }

    /// Every published version, ascending.
    pub fn versions(&self) -> Result<Vec<u64>, FormatError> {
        let dir = self.versions_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(FormatError::Io {
                    path: dir,
                    source: e,
                })
            }
        };
        let mut versions = Vec::new();
        for entry in entries {
            let entry = entry.map_err(FormatError::io(&dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(".json") {
                if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
                    if let Ok(v) = stem.parse::<u64>() {
                        versions.push(v);
                    }
                }
            }
        }
        versions.sort_unstable();
        Ok(versions)
    }

    /// The latest version, if any.
    pub fn latest_version(&self) -> Result<Option<u64>, FormatError> {
        Ok(self.versions()?.last().copied())
    }

    /// Reads and checks the manifest of `version` (the latest when `None`).
    pub fn manifest(&self, version: Option<u64>) -> Result<Manifest, FormatError> {
        let latest = self
            .latest_version()?
            .ok_or_else(|| FormatError::NoVersion(self.dir.clone()))?;
        let v = version.unwrap_or(latest);
        let path = self.manifest_path(v);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(FormatError::VersionMissing {
                    table: self.dir.clone(),
                    version: v,
                    latest,
                })
            }
            Err(e) => return Err(FormatError::Io { path, source: e }),
        };
        let m = Manifest::from_bytes(&bytes, &path)?;
        if m.version != v {
            return Err(FormatError::BadManifest {
                path,
                reason: format!("names version {} in its body", m.version),
            });
        }
        Ok(m)
    }

    /// Absolute paths of a manifest's data files, in row order.
    pub fn file_paths(&self, manifest: &Manifest) -> Vec<PathBuf> {
        let base = fs::canonicalize(&self.dir).unwrap_or_else(|_| self.dir.clone());
        manifest.files.iter().map(|f| base.join(&f.path)).collect()
    }

    /// Publishes `manifest` as version `manifest.version` (see the module docs). Fails with
    /// [`FormatError::VersionAlreadyExists`] when another writer got there first.
    pub fn commit(&self, manifest: &Manifest) -> Result<(), FormatError> {
        // Data files are synced when written, but their names (the renames into data/) only
        // here, once for the whole version, before the manifest that lists them exists.
        let data = self.data_dir();
        if data.is_dir() {
            sync_dir(&data)?;
        }
        let vdir = self.versions_dir();
        let target = self.manifest_path(manifest.version);
        let body = serde_json::to_vec_pretty(manifest).map_err(|e| FormatError::BadManifest {
            path: target.clone(),
            reason: e.to_string(),
        })?;
        link_new(&vdir, &target, &body, &MANIFEST_STEPS).map_err(|e| match e {
            FormatError::VersionAlreadyExists { path, .. } => FormatError::VersionAlreadyExists {
                version: manifest.version,
                path,
            },
            e => e,
        })?;
        self.after_commit();
        Ok(())
    }
}

/// The names of a no-replace file creation's steps, for `FLYWHEEL_CRASH_AT`.
pub(crate) type LinkSteps = [&'static str; 7];

/// The manifest's commit steps.
const MANIFEST_STEPS: LinkSteps = [
    "manifest-created",
    "manifest-half-written",
    "manifest-written",
    "manifest-synced",
    "linked",
    "temporary-removed",
    "directory-synced",
];

/// The Delta log entry's steps.
pub(crate) const DELTA_STEPS: LinkSteps = [
    "delta-created",
    "delta-half-written",
    "delta-written",
    "delta-synced",
    "delta-linked",
    "delta-temporary-removed",
    "delta-directory-synced",
];

/// The dataset card's step: written under a temporary name, not yet renamed over README.md.
pub(crate) const CARD_STEP: &str = "card-written";

/// Creates `target` in `dir` holding `body`, all or nothing and never over an existing name:
/// written to a temporary name, fsynced, `link(2)`ed to `target`, the temporary name removed
/// and the directory fsynced. [`FormatError::VersionAlreadyExists`] when `target` exists.
pub(crate) fn link_new(
    dir: &Path,
    target: &Path,
    body: &[u8],
    steps: &LinkSteps,
) -> Result<(), FormatError> {
    fs::create_dir_all(dir).map_err(FormatError::io(dir))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp = dir.join(format!(".tmp-{}-{nanos}.json", std::process::id()));
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(FormatError::io(&tmp))?;
        crash_point(steps[0]);
        f.write_all(&body[..body.len() / 2])
            .map_err(FormatError::io(&tmp))?;
        crash_point(steps[1]);
        f.write_all(&body[body.len() / 2..])
            .map_err(FormatError::io(&tmp))?;
        crash_point(steps[2]);
        f.sync_all().map_err(FormatError::io(&tmp))?;
        crash_point(steps[3]);
    }
    let linked = link_no_replace(&tmp, target);
    crash_point(steps[4]);
    let _ = fs::remove_file(&tmp);
    crash_point(steps[5]);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(FormatError::VersionAlreadyExists {
                version: 0,
                path: target.to_path_buf(),
            })
        }
        Err(e) => {
            return Err(FormatError::Io {
                path: target.to_path_buf(),
                source: e,
            })
        }
    }
    sync_dir(dir)?;
    crash_point(steps[6]);
    Ok(())
}

impl Table {
    /// The manifest of the version job `job_id` published, if any, among the versions up to
    /// `upto` (all when `None`). Newest first: a job's version is usually the latest or close.
    pub fn job_manifest(
        &self,
        job_id: &str,
        upto: Option<u64>,
    ) -> Result<Option<Manifest>, FormatError> {
        let versions = self.versions()?;
        for v in versions
            .into_iter()
            .rev()
            .filter(|v| upto.is_none_or(|u| *v <= u))
        {
            match self.manifest(Some(v)) {
                Ok(m) if m.job_id.as_deref() == Some(job_id) => return Ok(Some(m)),
                Ok(_) => {}
                // Removed by a concurrent vacuum between the listing and the read.
                Err(FormatError::VersionMissing { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Checks that every data file `manifest` names exists with the size it records.
    pub fn check_files(&self, manifest: &Manifest) -> Result<(), FormatError> {
        for f in manifest.files.iter().chain(&manifest.errors) {
            let problem = match fs::metadata(self.dir.join(&f.path)) {
                Ok(m) if m.is_file() && m.len() == f.bytes => continue,
                Ok(m) if m.is_file() => {
                    format!("has {} bytes but the manifest records {}", m.len(), f.bytes)
                }
                Ok(_) => "is not a file".to_string(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => "is missing".to_string(),
                Err(e) => format!("cannot be read ({e})"),
            };
            return Err(FormatError::DamagedVersion {
                table: self.dir.clone(),
                version: manifest.version,
                file: f.path.clone(),
                problem,
            });
        }
        Ok(())
    }

    /// Checks, in the table's directory, what the commit protocol relies on: that files can be
    /// created and fsynced, and that `link(2)` refuses to replace an existing name (some shared
    /// filesystems or mounts get this wrong). Returns why not, if not.
    pub fn probe(&self) -> Result<(), FormatError> {
        let dir = self.dir.clone();
        fs::create_dir_all(&dir).map_err(FormatError::io(&dir))?;
        let a = dir.join(format!(".probe-{}-a", std::process::id()));
        let b = dir.join(format!(".probe-{}-b", std::process::id()));
        let result = (|| {
            let mut f = fs::File::create(&a).map_err(FormatError::io(&a))?;
            f.write_all(b"flywheel").map_err(FormatError::io(&a))?;
            f.sync_all().map_err(|e| FormatError::Unsupported { path: a.clone(), what: format!("fsync does not work here ({e}); flywheel cannot commit safely on this filesystem") })?;
            link_no_replace(&a, &b).map_err(|e| FormatError::Unsupported {
                path: dir.clone(),
                what: format!(
                    "hard links do not work here ({e}); flywheel's atomic commit needs link(2)"
                ),
            })?;
            match link_no_replace(&a, &b) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                other => {
                    return Err(FormatError::Unsupported {
                        path: dir.clone(),
                        what: format!("link(2) replaced an existing name ({other:?}); flywheel's atomic commit cannot work here"),
                    })
                }
            }
            sync_dir(&dir)
        })();
        let _ = fs::remove_file(&a);
        let _ = fs::remove_file(&b);
        result
    }
}

/// The steps of a commit, in order, at which `FLYWHEEL_CRASH_AT` can kill the process (tests):
/// the manifest's (the version exists from `linked` on), the Delta log entry's, the card's.
pub const COMMIT_STEPS: &[&str] = &[
    MANIFEST_STEPS[0],
    MANIFEST_STEPS[1],
    MANIFEST_STEPS[2],
    MANIFEST_STEPS[3],
    MANIFEST_STEPS[4],
    MANIFEST_STEPS[5],
    MANIFEST_STEPS[6],
    DELTA_STEPS[0],
    DELTA_STEPS[1],
    DELTA_STEPS[2],
    DELTA_STEPS[3],
    DELTA_STEPS[4],
    DELTA_STEPS[5],
    DELTA_STEPS[6],
    CARD_STEP,
];

/// Fault injection for the crash tests: SIGKILL this process at the named step.
pub fn crash_point(step: &str) {
    if std::env::var("FLYWHEEL_CRASH_AT").is_ok_and(|s| s == step) {
        // SAFETY: kill(2) on our own pid.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// `link(2)`: creates `to` as a second name of `from`, failing with `AlreadyExists` if `to` exists.
fn link_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
    };
    let (a, b) = (c(from)?, c(to)?);
    // SAFETY: both are valid NUL-terminated paths that live across the call.
    let rc = unsafe { libc::link(a.as_ptr(), b.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// fsyncs a directory so that names created in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), FormatError> {
    let f = fs::File::open(dir).map_err(FormatError::io(dir))?;
    f.sync_all().map_err(FormatError::io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FORMAT_NAME, FORMAT_VERSION};

    fn manifest(version: u64) -> Manifest {
        Manifest {
            format: FORMAT_NAME.into(),
            format_version: FORMAT_VERSION,
            version,
            created_at: "now".into(),
            operation: "create".into(),
            schema: serde_json::json!({}),
            num_rows: 0,
            files: vec![],
            columns: vec![],
            lineage: serde_json::Value::Null,
            report: None,
            job_id: None,
            errors: vec![],
        }
    }

    #[test]
    fn parses_table_addresses() {
        assert_eq!(
            TableRef::parse("t").unwrap(),
            TableRef {
                path: "t".into(),
                version: None
            }
        );
        assert_eq!(
            TableRef::parse("a/t@3").unwrap(),
            TableRef {
                path: "a/t".into(),
                version: Some(3)
            }
        );
        assert_eq!(TableRef::parse("t@latest").unwrap().version, None);
        assert!(TableRef::parse("t@0").is_err());
        assert!(TableRef::parse("t@x").is_err());
        assert_eq!(
            TableRef::parse("me@host/t").unwrap().path,
            PathBuf::from("me@host/t")
        );
    }

    #[test]
    fn output_names_an_address_cannot_express_are_refused() {
        for ok in [
            "out/x",
            "x",
            "me@host/t",
            "/abs/out/x",
            "out/x/",
            "out/..",
            ".",
        ] {
            Table::check_output_name(Path::new(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let why = |p: &str| match Table::check_output_name(Path::new(p)) {
            Err(e) => e.to_string(),
            Ok(()) => panic!("{p}: accepted"),
        };
        assert_eq!(
            why("out/x@2"),
            "output out/x@2: a table address reads it as version 2 of out/x; choose a name without '@'"
        );
        assert_eq!(
            why("out/x@2/"),
            "output out/x@2/: a table address reads it as version 2 of out/x; choose a name without '@'"
        );
        assert_eq!(
            why("x@latest"),
            "output x@latest: a table address reads it as the latest version of ./x; choose a name without '@'"
        );
        assert_eq!(
            why("out/@3"),
            "output out/@3: a table address reads it as version 3 of out/; choose a name without '@'"
        );
        assert_eq!(
            why("out/x@y"),
            "output out/x@y: a table address cannot name it ('@y' is not a version); choose a name without '@'"
        );
        assert!(why("out/x@0").contains("'@0' is not a version"));
    }

    #[test]
    fn the_filesystem_probe_passes_here_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        Table::new(dir.path().join("t")).probe().unwrap();
        assert_eq!(fs::read_dir(dir.path().join("t")).unwrap().count(), 0);
    }

    #[test]
    fn second_commit_of_a_version_loses() {
        let dir = tempfile::tempdir().unwrap();
        let t = Table::new(dir.path());
        assert_eq!(t.latest_version().unwrap(), None);
        t.commit(&manifest(1)).unwrap();
        let err = t.commit(&manifest(1)).unwrap_err();
        assert!(
            matches!(err, FormatError::VersionAlreadyExists { version: 1, .. }),
            "{err}"
        );
        t.commit(&manifest(2)).unwrap();
        assert_eq!(t.versions().unwrap(), vec![1, 2]);
        assert_eq!(t.manifest(None).unwrap().version, 2);
        assert_eq!(t.manifest(Some(1)).unwrap().version, 1);
        let missing = t.manifest(Some(7)).unwrap_err().to_string();
        assert!(
            missing.contains("version 7 does not exist (latest is 2)"),
            "{missing}"
        );
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path().join("_versions"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}

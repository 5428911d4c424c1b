//! A table version's manifest: the one file that makes a version exist.
//!
//! Manifests are data from disk, so reading one trusts nothing: paths must stay inside the
//! table, counts must add up, and an unknown format version is refused rather than guessed at.

use crate::{ColumnStats, FormatError};
use serde::{Deserialize, Serialize};
use std::path::{Component, Path};

/// The `format` field every manifest carries.
pub const FORMAT_NAME: &str = "flywheel-table";
/// The manifest layout this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// One data file of a version, with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFile {
    /// Path relative to the table directory.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    /// Provenance: the chunk, attempt and worker that wrote it, when a job did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<serde_json::Value>,
    /// Per-column statistics of this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Vec<ColumnStats>>,
    /// What determined this file's rows, when an incremental job wrote it (docs/format.md,
    /// "Chunk fingerprints"): a later incremental job reuses the file when its chunk's
    /// fingerprint is the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
}

/// A chunk's fingerprint: hashes of what determines its output rows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint {
    /// sha256 (hex) of everything that determines the chunk's output: its input rows' identity,
    /// the mapper, its arguments, the schema, the chunk's seed and the fingerprint format.
    pub hash: String,
    /// sha256 (hex) of the input rows' identity alone (the file's identity and the row range):
    /// tells a changed input from a changed mapper when `hash` differs.
    pub input: String,
    /// The input file the rows come from (absolute path): tells a new input from a changed one.
    pub source: String,
}

/// One published version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub version: u64,
    /// RFC 3339 time of the commit.
    pub created_at: String,
    /// `create`, `append` or `overwrite`.
    pub operation: String,
    /// The Arrow schema (JSON form).
    pub schema: serde_json::Value,
    pub num_rows: u64,
    /// Data files in row order.
    pub files: Vec<DataFile>,
    /// Per-column statistics of the whole version.
    #[serde(default)]
    pub columns: Vec<ColumnStats>,
    /// How this version was made: enough to rerun it.
    #[serde(default)]
    pub lineage: serde_json::Value,
    /// The job report of the job that published it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<serde_json::Value>,
    /// The id of the job that published this version: a job publishes at most one version, so a
    /// resumed or repeated job that finds its id here has nothing left to publish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The rows this job's mapper refused (`--on-row-error skip`), as files under `_errors/`
    /// (paths relative to this table). They become part of the version with it, in the same
    /// commit; `TABLE/_errors` is a table derived from these lists (see docs/format.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<DataFile>,
}

impl Manifest {
    /// Parses and checks a manifest read from `path`.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Manifest, FormatError> {
        let bad = |reason: String| FormatError::BadManifest {
            path: path.to_path_buf(),
            reason,
        };
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if m.format != FORMAT_NAME {
            return Err(bad(format!(
                "format is '{}', expected '{FORMAT_NAME}'",
                m.format
            )));
        }
        if m.format_version != FORMAT_VERSION {
            return Err(bad(format!(
                "format_version {} is not supported by this build (supports {FORMAT_VERSION})",
                m.format_version
            )));
        }
        if m.version == 0 {
            return Err(bad(
                "version 0 does not exist; versions start at 1".to_string()
            ));
        }
        let mut total: u64 = 0;
        for f in &m.files {
            check_relative(&f.path).map_err(|why| bad(format!("file '{}' {why}", f.path)))?;
            total = total
                .checked_add(f.rows)
                .ok_or_else(|| bad("row counts overflow".to_string()))?;
        }
        if total != m.num_rows {
            return Err(bad(format!(
                "num_rows is {} but its files hold {total} rows",
                m.num_rows
            )));
        }
        Ok(m)
    }
}

/// A manifest path must be a plain relative path below the table directory.
fn check_relative(p: &str) -> Result<(), &'static str> {
    let path = Path::new(p);
    if p.is_empty() {
        return Err("is empty");
    }
    for c in path.components() {
        match c {
            Component::Normal(_) => {}
            Component::ParentDir => return Err("points outside the table ('..')"),
            Component::RootDir | Component::Prefix(_) => return Err("is absolute"),
            Component::CurDir => return Err("has a '.' component"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_json(files: &str, rows: u64, fv: u32) -> String {
        format!(
            r#"{{"format":"flywheel-table","format_version":{fv},"version":1,"created_at":"x","operation":"create","schema":{{}},"num_rows":{rows},"files":{files}}}"#
        )
    }

    #[test]
    fn accepts_a_sound_manifest() {
        let j = manifest_json(r#"[{"path":"data/a.parquet","rows":3,"bytes":10}]"#, 3, 1);
        let m = Manifest::from_bytes(j.as_bytes(), Path::new("m.json")).unwrap();
        assert_eq!(m.num_rows, 3);
    }

    #[test]
    fn refuses_paths_outside_the_table() {
        for p in ["../x.parquet", "/etc/passwd", "data/../../x"] {
            let j = manifest_json(&format!(r#"[{{"path":"{p}","rows":1,"bytes":1}}]"#), 1, 1);
            let e = Manifest::from_bytes(j.as_bytes(), Path::new("m.json"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("invalid manifest") && e.contains(p), "{e}");
        }
    }

    #[test]
    fn refuses_wrong_counts_and_unknown_versions() {
        let j = manifest_json(r#"[{"path":"a","rows":3,"bytes":10}]"#, 4, 1);
        let e = Manifest::from_bytes(j.as_bytes(), Path::new("m.json"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "m.json: invalid manifest: num_rows is 4 but its files hold 3 rows"
        );
        let j = manifest_json("[]", 0, 9);
        let e = Manifest::from_bytes(j.as_bytes(), Path::new("m.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("format_version 9 is not supported"), "{e}");
        let j = r#"{"format":"flywheel-table","format_version":1,"version":1,"created_at":"x","operation":"create","schema":{},"num_rows":-1,"files":[]}"#;
        assert!(Manifest::from_bytes(j.as_bytes(), Path::new("m.json")).is_err());
    }
}

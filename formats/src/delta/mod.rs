//! Each flywheel version as a Delta Lake commit, so that Delta readers (deltalake, Polars,
//! DuckDB's `delta` extension, Spark, …) read `T` at Delta version N exactly as flywheel reads
//! `T@N`.
//!
//! ```text
//! TABLE/_delta_log/00000000000000000000.json   protocol + metaData: the table's creation, no files
//! TABLE/_delta_log/0000000000000000000N.json   version N: commitInfo, metaData when the schema
//!                                              changed, add/remove for the files N gains/drops
//! ```
//!
//! A Delta commit is derived from the flywheel manifests alone (N's and N-1's), so its bytes do
//! not depend on who writes it or when. It is written after the manifest's `link(2)`, with the
//! same no-replace `link(2)` (Delta's own commit rule): the manifest stays the one commit point,
//! and a crash between the two leaves a Delta entry that [`Table::complete_delta`] — run by
//! every publish, vacuum and `flywheel table` command — writes from the manifest. Two processes
//! completing at once write the same bytes; the second `link` finds the name taken.

mod actions;
mod schema;
mod stats;

pub use actions::Action;

use crate::table::{LinkSteps, DELTA_STEPS};
use crate::{DataFile, FormatError, Manifest, Table};
use actions::{Add, CommitInfo, Format, MetaData, Protocol, Remove};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::PathBuf;

/// The Delta log's directory in a table.
pub const DELTA_LOG_DIR: &str = "_delta_log";

impl Table {
    /// Completes what a crash after a commit left undone (the Delta log's entries, the card)
    /// when the log is behind the manifests or the card is not the latest version's; cheap
    /// otherwise (two listings and one read).
    pub fn settle(&self) {
        let behind = match (self.latest_version(), self.delta_versions()) {
            (Ok(Some(latest)), Ok(delta)) => {
                delta.last().is_none_or(|d| *d < latest) || !self.card_is_current(latest)
            }
            _ => false,
        };
        if behind {
            self.after_commit();
        }
    }

    /// What follows a commit, derived from the manifests and so redone by any later command
    /// when a crash cuts it short: the Delta log's entry, then the dataset card. A failure here
    /// is a warning: the version stands.
    pub fn after_commit(&self) {
        if let Err(e) = self.complete_delta() {
            tracing::warn!(
                "{}: the Delta log is behind ({e}); the next command on this table completes it",
                self.dir().display()
            );
        }
        if let Err(e) = self.write_card() {
            tracing::warn!(
                "{}: the dataset card (README.md) was not rewritten: {e}",
                self.dir().display()
            );
        }
    }

    fn delta_log(&self) -> PathBuf {
        self.dir().join(DELTA_LOG_DIR)
    }

    /// The Delta versions the log holds, ascending.
    pub fn delta_versions(&self) -> Result<Vec<u64>, FormatError> {
        let dir = self.delta_log();
        let mut out = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(FormatError::io(&dir)(e)),
        };
        for e in entries {
            let name = e.map_err(FormatError::io(&dir))?.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(".json") {
                if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
                    out.extend(stem.parse::<u64>().ok());
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Writes every Delta commit the log lacks, from version 0 up to the latest flywheel
    /// version, and returns the versions it wrote. A table whose version 1 was vacuumed before
    /// its log was begun (a table older than the log) gets none: a Delta log starts at 0.
    pub fn complete_delta(&self) -> Result<Vec<u64>, FormatError> {
        let versions = self.versions()?;
        let Some(&latest) = versions.last() else {
            return Ok(Vec::new());
        };
        let have: HashSet<u64> = self.delta_versions()?.into_iter().collect();
        let missing: Vec<u64> = (0..=latest).filter(|v| !have.contains(v)).collect();
        if missing.is_empty() {
            return Ok(missing);
        }
        let Some(origin) = self.delta_origin(&have)? else {
            tracing::warn!(
                "{}: no Delta log: version 1 is gone (vacuumed before the log was begun)",
                self.dir().display()
            );
            return Ok(Vec::new());
        };
        let mut written = Vec::new();
        for v in missing {
            let actions = self.delta_actions(v, &origin)?;
            if self.write_delta(v, &actions, &DELTA_STEPS)? {
                written.push(v);
            }
        }
        Ok(written)
    }

    /// The table's Delta identity: read from version 0 when the log has it, else derived from
    /// manifest 1 (`None` when that is gone too).
    fn delta_origin(&self, have: &HashSet<u64>) -> Result<Option<Origin>, FormatError> {
        if have.contains(&0) {
            let path = self.delta_log().join(format!("{:020}.json", 0));
            let text = fs::read_to_string(&path).map_err(FormatError::io(&path))?;
            let meta = text
                .lines()
                .filter_map(|l| serde_json::from_str::<Action>(l).ok())
                .find_map(|a| match a {
                    Action::MetaData(m) => Some(m),
                    _ => None,
                });
            return match meta {
                Some(m) => Ok(Some(Origin {
                    id: m.id,
                    created_time: m.created_time,
                })),
                None => Err(FormatError::BadManifest {
                    path,
                    reason: "Delta version 0 has no metaData action".into(),
                }),
            };
        }
        match self.manifest(Some(1)) {
            Ok(m) => Ok(Some(Origin::of(&m))),
            Err(FormatError::VersionMissing { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The actions of Delta version `v`.
    fn delta_actions(&self, v: u64, origin: &Origin) -> Result<Vec<Action>, FormatError> {
        let m = self.manifest(Some(v.max(1)))?;
        if v == 0 {
            return creation(&m, origin);
        }
        // Version 1's schema is version 0's (made from manifest 1).
        let prev = if v == 1 {
            None
        } else {
            Some(self.manifest(Some(v - 1))?)
        };
        version_actions(&m, prev.as_ref(), origin)
    }

    /// Writes commit `v` unless it exists; `false` when another writer made it first.
    fn write_delta(
        &self,
        v: u64,
        actions: &[Action],
        steps: &LinkSteps,
    ) -> Result<bool, FormatError> {
        let dir = self.delta_log();
        let target = dir.join(format!("{v:020}.json"));
        let body = actions::to_lines(actions).map_err(|e| FormatError::BadManifest {
            path: target.clone(),
            reason: e.to_string(),
        })?;
        match crate::table::link_new(&dir, &target, &body, steps) {
            Ok(()) => Ok(true),
            // Another writer made it first: the same bytes, unless the log is not ours.
            Err(FormatError::VersionAlreadyExists { .. }) => match fs::read(&target) {
                Ok(have) if have == body => Ok(false),
                Ok(_) => Err(FormatError::DeltaMismatch(target)),
                Err(e) => Err(FormatError::io(&target)(e)),
            },
            Err(e) => Err(e),
        }
    }

    /// `Err` when the table's folder holds a Delta log but no flywheel version: a job must
    /// not begin a flywheel history under a Delta history it did not write.
    pub fn check_no_foreign_delta(&self) -> Result<(), FormatError> {
        if self.latest_version()?.is_none() && !self.delta_versions()?.is_empty() {
            return Err(FormatError::ForeignDeltaLog(self.dir().to_path_buf()));
        }
        Ok(())
    }
}

/// Milliseconds since the epoch of a manifest's `created_at` (0 if it cannot be read).
fn millis(m: &Manifest) -> i64 {
    humantime::parse_rfc3339_weak(&m.created_at)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn bad(m: &Manifest, reason: String) -> FormatError {
    FormatError::BadManifest {
        path: PathBuf::from(format!("version {}", m.version)),
        reason,
    }
}

fn arrow_schema(m: &Manifest) -> Result<arrow::datatypes::Schema, FormatError> {
    crate::schema_from_json(&m.schema.to_string())
}

/// What every `metaData` action of a table repeats.
struct Origin {
    id: String,
    created_time: i64,
}

impl Origin {
    /// Derived from manifest 1: the same id whoever computes it.
    fn of(first: &Manifest) -> Origin {
        let mut h = Sha256::new();
        h.update(first.created_at.as_bytes());
        h.update(first.job_id.as_deref().unwrap_or("").as_bytes());
        h.update(first.schema.to_string().as_bytes());
        let hex: String = h.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Origin {
            id: format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            ),
            created_time: millis(first),
        }
    }
}

/// Version 0: the protocol and the table's metadata (the schema of version 1), no files.
fn creation(first: &Manifest, origin: &Origin) -> Result<Vec<Action>, FormatError> {
    Ok(vec![
        Action::CommitInfo(CommitInfo {
            timestamp: origin.created_time,
            operation: "CREATE TABLE".into(),
            operation_parameters: BTreeMap::new(),
            read_version: None,
            is_blind_append: true,
            flywheel: serde_json::json!({ "version": 0 }),
        }),
        Action::Protocol(Protocol {
            min_reader_version: actions::MIN_READER_VERSION,
            min_writer_version: actions::MIN_WRITER_VERSION,
        }),
        Action::MetaData(metadata(first, origin)?),
    ])
}

/// The table's metadata with `m`'s schema.
fn metadata(m: &Manifest, origin: &Origin) -> Result<MetaData, FormatError> {
    let arrow = arrow_schema(m)?;
    if arrow.fields().is_empty() {
        // A table created from zero rows without --schema: Delta readers refuse such a log.
        tracing::warn!(
            "version {}: the table has no columns; Delta readers (deltalake: \"Cannot scan Delta \
             table with empty schema\") cannot read it until a version with columns is written \
             (create it with --schema to give it columns)",
            m.version
        );
    }
    let schema = schema::delta_schema(&arrow).map_err(|e| bad(m, e))?;
    Ok(MetaData {
        id: origin.id.clone(),
        name: None,
        format: Format {
            provider: "parquet".into(),
            options: BTreeMap::new(),
        },
        schema_string: schema.to_string(),
        partition_columns: Vec::new(),
        configuration: BTreeMap::new(),
        created_time: origin.created_time,
    })
}

/// Version `m.version`: the files it gains over `prev` (none at version 0 when `None`) as
/// `add`, those it drops as `remove`, and the metadata again when the schema changed.
fn version_actions(
    m: &Manifest,
    prev: Option<&Manifest>,
    origin: &Origin,
) -> Result<Vec<Action>, FormatError> {
    let at = millis(m);
    let before: &[DataFile] = prev.map(|p| p.files.as_slice()).unwrap_or(&[]);
    let old: HashSet<&str> = before.iter().map(|f| f.path.as_str()).collect();
    let new: HashSet<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    let mut out = vec![Action::CommitInfo(commit_info(m, at))];
    if prev.is_some_and(|p| p.schema != m.schema) {
        out.push(Action::MetaData(metadata(m, origin)?));
    }
    let schema = arrow_schema(m)?;
    for f in before.iter().filter(|f| !new.contains(f.path.as_str())) {
        out.push(Action::Remove(Remove {
            path: f.path.clone(),
            deletion_timestamp: at,
            data_change: true,
            extended_file_metadata: true,
            partition_values: BTreeMap::new(),
            size: f.bytes,
        }));
    }
    for f in m.files.iter().filter(|f| !old.contains(f.path.as_str())) {
        out.push(Action::Add(Add {
            path: f.path.clone(),
            partition_values: BTreeMap::new(),
            size: f.bytes,
            modification_time: at,
            data_change: true,
            stats: Some(stats::add_stats(f, &schema)),
        }));
    }
    Ok(out)
}

fn commit_info(m: &Manifest, at: i64) -> CommitInfo {
    let mode = match m.operation.as_str() {
        "append" => "Append",
        "overwrite" => "Overwrite",
        _ => "ErrorIfExists",
    };
    CommitInfo {
        timestamp: at,
        operation: "WRITE".into(),
        operation_parameters: [("mode".to_string(), mode.to_string())].into(),
        read_version: Some(m.version - 1),
        is_blind_append: m.operation == "append",
        flywheel: serde_json::json!({
            "version": m.version,
            "operation": m.operation,
            "job_id": m.job_id,
            "num_rows": m.num_rows,
            "lineage": lineage_summary(&m.lineage),
        }),
    }
}

/// The lineage without what can be large (the job file's text, the input's file list).
pub(crate) fn lineage_summary(l: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "mapper": l["mapper"]["spec"],
        "mapper_sha256": l["mapper"]["sha256"],
        "input": l["input"]["address"],
        "input_table": l["input"]["table"],
        "seed": l["seed"],
        "flywheel_version": l["flywheel_version"],
        "host": l["host"],
        "slurm_job_id": l["slurm_job_id"],
        "started_at": l["started_at"],
        "finished_at": l["finished_at"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(operation: &str) -> Vec<Action> {
        vec![Action::CommitInfo(CommitInfo {
            timestamp: 0,
            operation: operation.into(),
            operation_parameters: BTreeMap::new(),
            read_version: None,
            is_blind_append: true,
            flywheel: serde_json::json!({}),
        })]
    }

    #[test]
    fn an_entry_already_there_must_hold_the_derived_bytes() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let table = Table::new(dir.path());
        fs::create_dir_all(table.delta_log()).expect("the log folder is made");
        assert!(table
            .write_delta(1, &info("WRITE"), &DELTA_STEPS)
            .expect("written"));
        // Another writer's identical entry: nothing to do.
        assert!(!table
            .write_delta(1, &info("WRITE"), &DELTA_STEPS)
            .expect("the same"));
        match table.write_delta(1, &info("MERGE"), &DELTA_STEPS) {
            Err(FormatError::DeltaMismatch(p)) => {
                assert!(p.ends_with("_delta_log/00000000000000000001.json"), "{p:?}")
            }
            other => panic!("a foreign entry is an error: {other:?}"),
        }
    }
}

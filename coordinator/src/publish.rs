//! Publishing a job's accepted outputs as a new table version.
//!
//! The coordinator publishes once, after every chunk is accepted; a failed job publishes nothing.
//! Concurrent publishers are serialised by the table's no-replace commit: `append` and
//! `overwrite` re-read the latest version and try again when they lose a race, `create` reports
//! that the table exists.
//!
//! Publishing is idempotent per job: the manifest carries the job's id, and before each commit
//! attempt the versions up to the one it builds on are searched for that id. A job whose version
//! exists has published; it gets that version back instead of a second one.

use crate::CoordinatorError;
use flywheel_formats::{
    merge_stats, ColumnStats, DataFile, FormatError, Manifest, Table, FORMAT_NAME, FORMAT_VERSION,
};
use flywheel_protocol::{ChunkOutput, Mode};

const MAX_COMMIT_ATTEMPTS: u32 = 20;

/// What to publish.
pub struct PublishRequest<'a> {
    pub table: &'a Table,
    pub mode: Mode,
    /// Accepted outputs, in chunk order.
    pub outputs: Vec<&'a ChunkOutput>,
    /// The output schema (Arrow JSON), if any chunk produced rows or the user fixed it.
    pub schema: Option<String>,
    /// Extra provenance per chunk (worker, host), keyed by chunk position in `outputs`.
    pub provenance: Vec<serde_json::Value>,
    /// Each output's fingerprint (incremental jobs), by position in `outputs`.
    pub fingerprints: Vec<Option<flywheel_formats::Fingerprint>>,
    pub lineage: serde_json::Value,
    pub report: Option<serde_json::Value>,
    /// The publishing job's id (see the module docs).
    pub job_id: Option<String>,
    /// Files of rows the mapper refused, relative to the table (`_errors/data/…`).
    pub errors: Vec<DataFile>,
}

/// What [`publish`] did.
pub struct Published {
    pub manifest: Manifest,
    /// The job had published this version before (nothing new was committed).
    pub already: bool,
}

fn empty_schema() -> serde_json::Value {
    serde_json::json!({ "fields": [], "metadata": {} })
}

/// Commits a new version and returns its manifest.
pub fn publish(req: PublishRequest<'_>) -> Result<Manifest, CoordinatorError> {
    publish_once(req).map(|p| p.manifest)
}

/// [`publish`], telling whether the job had already published.
pub fn publish_once(req: PublishRequest<'_>) -> Result<Published, CoordinatorError> {
    let new_schema: Option<serde_json::Value> = match &req.schema {
        Some(s) => {
            Some(serde_json::from_str(s).map_err(|e| FormatError::BadSchemaJson(e.to_string()))?)
        }
        None => None,
    };
    let new_files = data_files(&req);
    if req.mode != Mode::Append || new_schema.is_some() {
        check_columns(&new_files, new_schema.as_ref().unwrap_or(&empty_schema()))?;
    }
    check_outputs_schema(&req)?;
    for _ in 0..MAX_COMMIT_ATTEMPTS {
        let latest = req.table.latest_version()?;
        if let (Some(id), Some(l)) = (&req.job_id, latest) {
            if let Some(manifest) = req.table.job_manifest(id, Some(l))? {
                return Ok(Published {
                    manifest,
                    already: true,
                });
            }
        }
        let (mut files, schema) = base(&req, latest, new_schema.as_ref())?;
        files.extend(new_files.iter().cloned());
        check_columns(&files, &schema)?;
        let manifest = manifest(&req, latest.unwrap_or(0) + 1, files, schema);
        match req.table.commit(&manifest) {
            Ok(()) => {
                return Ok(Published {
                    manifest,
                    already: false,
                })
            }
            Err(FormatError::VersionAlreadyExists { version, .. }) if req.mode != Mode::Create => {
                tracing::info!(
                    "version {version} was published by another writer; retrying on top of it"
                );
            }
            Err(FormatError::VersionAlreadyExists { version, .. }) => {
                return Err(FormatError::TableExists {
                    path: req.table.dir().to_path_buf(),
                    version,
                }
                .into())
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(CoordinatorError::CommitAttemptsExhausted {
        table: req.table.dir().to_path_buf(),
        attempts: MAX_COMMIT_ATTEMPTS,
    })
}

/// Every output that carries its file's schema carries the table's: a chunk written under
/// another schema (one that conflicted, or was never rewritten) is never published.
fn check_outputs_schema(req: &PublishRequest<'_>) -> Result<(), CoordinatorError> {
    let Some(table) = req.schema.as_deref() else {
        return Ok(());
    };
    for o in &req.outputs {
        if let (Some(_), Some(s)) = (&o.file, o.schema.as_deref()) {
            if o.rows_out > 0 && !crate::schema_merge::same_schema(s, table) {
                return Err(CoordinatorError::SchemaConflict(format!(
                    "{}'s file has schema {s} but the table's is {table}",
                    o.chunk
                )));
            }
        }
    }
    Ok(())
}

/// Rows are never published under a schema without columns (a readerless table).
fn check_columns(files: &[DataFile], schema: &serde_json::Value) -> Result<(), CoordinatorError> {
    let rows: u64 = files.iter().map(|f| f.rows).sum();
    let columns = schema["fields"].as_array().map_or(0, Vec::len);
    if rows > 0 && columns == 0 {
        return Err(CoordinatorError::SchemaConflict(format!(
            "{rows} rows in {} file(s) but no table schema with columns to publish them under",
            files.len()
        )));
    }
    Ok(())
}

/// The data files the job adds, with their provenance and statistics.
fn data_files(req: &PublishRequest<'_>) -> Vec<DataFile> {
    req.outputs
        .iter()
        .enumerate()
        .filter_map(|(i, o)| {
            o.file.as_ref().map(|path| DataFile {
                path: path.clone(),
                rows: o.rows_out,
                bytes: o.bytes,
                provenance: req.provenance.get(i).cloned(),
                stats: o
                    .stats
                    .clone()
                    .and_then(|v| serde_json::from_value::<Vec<ColumnStats>>(v).ok()),
                fingerprint: req.fingerprints.get(i).cloned().flatten(),
            })
        })
        .collect()
}

/// What the new version builds on: the files it keeps and its schema. An append keeps the
/// latest version's files (refusing a damaged version or another schema); a create refuses an
/// existing table; an overwrite (or a first version) starts empty.
fn base(
    req: &PublishRequest<'_>,
    latest: Option<u64>,
    new_schema: Option<&serde_json::Value>,
) -> Result<(Vec<DataFile>, serde_json::Value), CoordinatorError> {
    match (req.mode, latest) {
        (Mode::Create, Some(v)) => Err(FormatError::TableExists {
            path: req.table.dir().to_path_buf(),
            version: v,
        }
        .into()),
        (Mode::Append, Some(v)) => {
            let prev = req.table.manifest(Some(v))?;
            // Never carry a damaged version's gaps into a new one.
            req.table.check_files(&prev)?;
            // A version published without columns (as the `_errors` table's first ones were)
            // takes the schema of the rows appended to it.
            let prev_columns = prev.schema["fields"].as_array().map_or(0, Vec::len);
            let schema = match new_schema {
                Some(s) if !prev.files.is_empty() && prev_columns > 0 && *s != prev.schema => {
                    return Err(CoordinatorError::SchemaConflict(format!(
                        "appended rows have schema {s} but version {v} has {}",
                        prev.schema
                    )))
                }
                Some(s) => s.clone(),
                None => prev.schema.clone(),
            };
            Ok((prev.files, schema))
        }
        _ => Ok((Vec::new(), new_schema.cloned().unwrap_or_else(empty_schema))),
    }
}

/// The manifest of version `version` holding `files`.
fn manifest(
    req: &PublishRequest<'_>,
    version: u64,
    files: Vec<DataFile>,
    schema: serde_json::Value,
) -> Manifest {
    Manifest {
        format: FORMAT_NAME.to_string(),
        format_version: FORMAT_VERSION,
        version,
        created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        operation: req.mode.to_string(),
        schema,
        num_rows: files.iter().map(|f| f.rows).sum(),
        columns: merge_stats(files.iter().filter_map(|f| f.stats.as_deref())),
        files,
        lineage: req.lineage.clone(),
        report: req.report.clone(),
        job_id: req.job_id.clone(),
        errors: req.errors.clone(),
    }
}

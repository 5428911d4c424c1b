//! The `_errors` table: rows the mapper refused under `--on-row-error skip`, kept beside the
//! main table as a table of its own whose versions follow the main table's.

use crate::{publish_once, CoordinatorError, PublishRequest};
use flywheel_formats::{DataFile, FormatError, Table};
use flywheel_protocol::{ChunkOutput, InputSlice, Mode};

/// The `_errors` files of accepted outputs, as entries of the main manifest. `held`: each
/// chunk's slice with the rows it really held (`Coordinator::held_slices`); a text chunk's error
/// rows, numbered by the worker from the planned first row (`coord`'s slice), are numbered again
/// from the real one.
pub(crate) fn error_files(
    out: &std::path::Path,
    (coord, outputs): (&crate::Coordinator, &[&ChunkOutput]),
    incremental: Option<&crate::IncrementalPlan>,
    held: &[InputSlice],
) -> Result<Vec<DataFile>, FormatError> {
    let mut files = Vec::new();
    for o in outputs {
        if let Some(f) = &o.errors_file {
            let shift = match (held.get(o.chunk.0 as usize), coord.slice(o.chunk)) {
                (Some(h), Some(p)) => i128::from(h.row_start) - i128::from(p.row_start),
                _ => 0,
            };
            let f = match shift {
                0 => f.clone(),
                _ => renumbered(&out.join("_errors"), f, o.error_rows, shift)?,
            };
            let path = format!("_errors/{f}");
            let bytes = std::fs::metadata(out.join(&path))
                .map_err(|e| FormatError::Io {
                    path: out.join(&path),
                    source: e,
                })?
                .len();
            files.push(DataFile {
                path,
                rows: o.error_rows,
                bytes,
                provenance: Some(serde_json::json!({"chunk": o.chunk.0, "attempt": o.attempt.0})),
                stats: None,
                // A later incremental job computes this chunk again rather than reuse it.
                fingerprint: crate::incremental::fingerprint_of(incremental, o).cloned(),
            });
        }
    }
    Ok(files)
}

/// The error rows of `file` (relative to the `_errors` table `dir`) with `shift` added to
/// their `row`, in a file of their own beside it (the worker's stays as it wrote it, so a
/// resumed job renumbers from it again); its path relative to `dir`.
fn renumbered(
    dir: &std::path::Path,
    file: &str,
    rows: u64,
    shift: i128,
) -> Result<String, FormatError> {
    use arrow::array::{Array, ArrayRef, UInt64Array};
    let from = dir.join(file);
    let bad = |reason: String| FormatError::BadFile {
        path: from.clone(),
        reason,
    };
    let mut batches = Vec::new();
    for b in flywheel_formats::read_data_file(&from, rows, 0..rows)? {
        let Some(i) = b.schema().index_of("row").ok() else {
            return Err(bad("no 'row' column".into()));
        };
        let Some(old) = b.column(i).as_any().downcast_ref::<UInt64Array>() else {
            return Err(bad("its 'row' column is not uint64".into()));
        };
        let new: UInt64Array = old
            .iter()
            .map(|r| r.and_then(|r| u64::try_from(i128::from(r) + shift).ok()))
            .collect();
        let mut columns: Vec<ArrayRef> = b.columns().to_vec();
        columns[i] = std::sync::Arc::new(new);
        batches.push(
            arrow::record_batch::RecordBatch::try_new(b.schema(), columns)
                .map_err(|e| bad(e.to_string()))?,
        );
    }
    let name = match file.strip_suffix(".parquet") {
        Some(stem) => format!("{stem}-rows.parquet"),
        None => format!("{file}-rows"),
    };
    flywheel_formats::write_chunk_file(&dir.join(&name), &batches)?;
    Ok(name)
}

/// Brings `TABLE/_errors` up to date with the main table: every main version that lists error
/// files gets one `_errors` version (an append carrying the same job id), in version order.
/// Idempotent, and safe to run from several processes at once.
pub fn complete_errors(table: &Table) -> Result<(), CoordinatorError> {
    let errors_table = Table::new(table.dir().join("_errors"));
    // Error files are only ever written under _errors/data: without it there is nothing to do.
    if !errors_table.data_dir().is_dir() {
        return Ok(());
    }
    let derived = errors_table.versions()?;
    let mut seen = std::collections::HashSet::new();
    let mut upto = 0;
    for v in &derived {
        if let Ok(m) = errors_table.manifest(Some(*v)) {
            if let Some(id) = m.job_id {
                seen.insert(id);
            }
            upto = upto.max(m.lineage["table_version"].as_u64().unwrap_or(0));
        }
    }
    for v in table.versions()?.into_iter().filter(|v| *v > upto) {
        let m = match table.manifest(Some(v)) {
            Ok(m) => m,
            Err(FormatError::VersionMissing { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let (Some(id), false) = (&m.job_id, m.errors.is_empty()) else {
            continue;
        };
        if seen.contains(id) {
            continue;
        }
        let outputs: Vec<ChunkOutput> = m
            .errors
            .iter()
            .map(|f| ChunkOutput {
                file: f.path.strip_prefix("_errors/").map(str::to_string),
                rows_out: f.rows,
                bytes: f.bytes,
                ..ChunkOutput::none(flywheel_protocol::ChunkId(0), flywheel_protocol::Attempt(1))
            })
            .collect();
        let mut lineage = m.lineage.clone();
        if let serde_json::Value::Object(map) = &mut lineage {
            map.insert("table_version".into(), serde_json::json!(v));
        }
        publish_once(PublishRequest {
            table: &errors_table,
            mode: Mode::Append,
            outputs: outputs.iter().collect(),
            schema: Some(flywheel_formats::schema_to_json(
                &flywheel_formats::errors_schema(),
            )),
            provenance: Vec::new(),
            fingerprints: Vec::new(),
            lineage,
            report: None,
            job_id: Some(id.clone()),
            errors: Vec::new(),
        })?;
    }
    Ok(())
}

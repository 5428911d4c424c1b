//! flywheel's data formats: input discovery and chunk planning, chunk readers, the Parquet chunk
//! writer, and tables — versioned manifests published atomically.

mod card;
mod delta;
mod error;
mod input;
mod lock;
mod manifest;
mod media;
mod read;
mod rows;
mod schema;
mod stats;
mod table;
mod vacuum;
mod write;

pub use delta::DELTA_LOG_DIR;
pub use error::FormatError;
pub use input::{
    plan_chunks, plan_chunks_counted, read_slice, resolve_input, InputFile, ResolvedInput, Tail,
};
pub use lock::{lock_holder, Lock};
pub use manifest::{DataFile, Fingerprint, Manifest, FORMAT_NAME, FORMAT_VERSION};
pub use media::{sniff, MediaKind};
pub use read::{read_data_file, READ_BATCH_ROWS};
pub use rows::{infer_schema, rows_to_batch, unify, Conflict, Violation, BYTES_KEY, FLOAT_KEY};
pub use schema::{Field, FieldType, Schema, SchemaParseError, Type, VecElem, TYPE_KEY};
pub use stats::{batch_stats, merge_stats, ColumnStats};
pub use table::{crash_point, Table, TableRef, COMMIT_STEPS};
pub use vacuum::{ActiveJob, VacuumReport, ACTIVE_FRESH};
pub use write::{parquet_rows, write_chunk_file, WrittenFile};

/// The Arrow schema type, for crates that read schemas out of manifests.
pub use arrow::datatypes::Schema as ArrowSchema;

/// Arrow schema → JSON text, the form schemas travel in and manifests keep. The text is
/// canonical (object keys sorted, field order kept), so equal schemas give equal text whatever
/// process wrote them.
pub fn schema_to_json(schema: &arrow::datatypes::Schema) -> String {
    let value = serde_json::to_value(schema)
        .map(sort_keys)
        .unwrap_or(serde_json::Value::Null);
    value.to_string()
}

fn sort_keys(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_keys(v)))
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sort_keys).collect())
        }
        other => other,
    }
}

/// JSON text → Arrow schema.
pub fn schema_from_json(text: &str) -> Result<arrow::datatypes::Schema, FormatError> {
    serde_json::from_str(text).map_err(|e| FormatError::BadSchemaJson(e.to_string()))
}

/// The schema of the `_errors` table's rows (`--on-row-error skip`): the chunk, the input file
/// and row, the row as JSON, the error and its traceback.
pub fn errors_schema() -> arrow::datatypes::Schema {
    use arrow::datatypes::{DataType, Field};
    arrow::datatypes::Schema::new(vec![
        Field::new("chunk", DataType::UInt32, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("row", DataType::UInt64, false),
        Field::new("input", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, false),
        Field::new("traceback", DataType::Utf8, false),
    ])
}

/// What a mapper's dependency is now (`--depends-on`, its local modules, the files it declares):
/// for a file the sha256 of its content; for a directory the sha256 of its files' identities
/// (relative path, size, modification and change times, inode), which a rewrite changes without
/// reading a model's gigabytes. Hex.
pub fn path_digest(path: &std::path::Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    let mut hasher = Sha256::new();
    if meta.is_file() {
        std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    } else {
        let mut files = Vec::new();
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let p = entry?.path();
                let m = std::fs::metadata(&p)?;
                if m.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p.strip_prefix(path).unwrap_or(&p).display().to_string();
                    let times = (m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec());
                    files.push(format!("{rel}\0{}\0{times:?}\0{}", m.len(), m.ino()));
                }
            }
        }
        files.sort();
        for f in files {
            hasher.update(f.as_bytes());
            hasher.update(b"\n");
        }
    }
    Ok(format!("{:x}", hasher.finalize()))
}

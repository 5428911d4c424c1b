//! Input addresses, chunk planning and chunk reading.
//!
//! An input is a flywheel table (`DIR[@V]`), one file, or a glob of files, in Parquet, JSONL,
//! CSV, Arrow IPC or HDF5. Planning reads metadata only, never the data, and cuts deterministic
//! chunks of about `chunk_rows` rows that never cross a file boundary, so a plan is stable for a
//! given input and setting (output order and `--resume` rely on that). A worker then reads only
//! its own chunk's rows.

mod h5;
mod ipc;
mod parquet;
mod text;

use crate::{FormatError, Table, TableRef};
use arrow::record_batch::RecordBatch;
use flywheel_protocol::{InputFormat, InputSlice};
use std::fs;
use std::path::{Path, PathBuf};

/// One input file, as found.
#[derive(Debug, Clone, PartialEq)]
pub struct InputFile {
    pub path: PathBuf,
    pub format: InputFormat,
    /// For HDF5 (`file.h5:/group`), the group.
    pub group: Option<String>,
    pub bytes: u64,
    /// Modification time, seconds since the epoch (for lineage).
    pub mtime: u64,
}

/// An input address, resolved to files.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedInput {
    pub files: Vec<InputFile>,
    /// When the input is a table: its directory and the pinned version.
    pub table: Option<(PathBuf, u64)>,
}

fn format_of(path: &Path) -> Result<InputFormat, FormatError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    Ok(match ext.as_str() {
        "parquet" | "pq" => InputFormat::Parquet,
        "jsonl" | "ndjson" => InputFormat::Jsonl,
        "csv" => InputFormat::Csv,
        "arrow" | "ipc" | "feather" => InputFormat::Arrow,
        "h5" | "hdf5" => InputFormat::Hdf5,
        _ => return Err(FormatError::UnknownFormat(path.to_path_buf())),
    })
}

fn input_file(path: &Path, group: Option<String>) -> Result<InputFile, FormatError> {
    let meta = fs::metadata(path).map_err(FormatError::io(path))?;
    let abs = fs::canonicalize(path).map_err(FormatError::io(path))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(InputFile {
        format: format_of(path)?,
        path: abs,
        group,
        bytes: meta.len(),
        mtime,
    })
}

/// Resolves an input address to its files, in order.
pub fn resolve_input(address: &str) -> Result<ResolvedInput, FormatError> {
    let tref = TableRef::parse(address)?;
    if Table::is_table(&tref.path) {
        let table = Table::new(&tref.path);
        let manifest = table.manifest(tref.version)?;
        let files = table
            .file_paths(&manifest)
            .iter()
            .map(|p| input_file(p, None))
            .collect::<Result<Vec<_>, _>>()?;
        let dir = fs::canonicalize(&tref.path).map_err(FormatError::io(&tref.path))?;
        return Ok(ResolvedInput {
            files,
            table: Some((dir, manifest.version)),
        });
    }
    if address.contains(['*', '?', '[']) {
        let paths = glob::glob(address).map_err(|e| FormatError::BadGlob {
            pattern: address.into(),
            reason: e.to_string(),
        })?;
        let mut files = Vec::new();
        for p in paths {
            let p = p.map_err(|e| FormatError::Io {
                path: e.path().to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            })?;
            if p.is_file() {
                files.push(input_file(&p, None)?);
            }
        }
        if files.is_empty() {
            return Err(FormatError::NoInput(address.to_string()));
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        return Ok(ResolvedInput { files, table: None });
    }
    // `file.h5:/group` picks an HDF5 group.
    if let Some((file, group)) = address
        .split_once(".h5:")
        .map(|(f, g)| (format!("{f}.h5"), g))
    {
        return Ok(ResolvedInput {
            files: vec![input_file(Path::new(&file), Some(group.to_string()))?],
            table: None,
        });
    }
    let path = Path::new(address);
    if !path.exists() {
        return Err(FormatError::NoInput(address.to_string()));
    }
    Ok(ResolvedInput {
        files: vec![input_file(path, None)?],
        table: None,
    })
}

/// Cuts the input into chunks of about `chunk_rows` rows, in input order, from metadata only
/// (Parquet footers, Arrow IPC batch headers, HDF5 shapes, a sample of a text file's head).
pub fn plan_chunks(input: &ResolvedInput, chunk_rows: u64) -> Result<Vec<InputSlice>, FormatError> {
    Ok(plan_chunks_counted(input, chunk_rows)?.0)
}

/// [`plan_chunks`], also returning how many bytes of the input files planning read.
pub fn plan_chunks_counted(
    input: &ResolvedInput,
    chunk_rows: u64,
) -> Result<(Vec<InputSlice>, u64), FormatError> {
    let chunk_rows = chunk_rows.max(1);
    let mut slices = Vec::new();
    let mut bytes_read = 0;
    for file in &input.files {
        bytes_read += match file.format {
            InputFormat::Parquet => parquet::plan(file, chunk_rows, &mut slices)?,
            InputFormat::Jsonl | InputFormat::Csv => text::plan(file, chunk_rows, &mut slices)?,
            InputFormat::Arrow => ipc::plan(file, chunk_rows, &mut slices)?,
            InputFormat::Hdf5 => h5::plan(file, chunk_rows, &mut slices)?,
        };
    }
    Ok((slices, bytes_read))
}

/// Row ranges of about `chunk_rows` over `rows` rows of one file.
pub(crate) fn row_slices(file: &InputFile, rows: u64, chunk_rows: u64, out: &mut Vec<InputSlice>) {
    let mut start = 0;
    while start < rows {
        let count = chunk_rows.min(rows - start);
        out.push(InputSlice {
            path: file.path.to_string_lossy().into_owned(),
            format: file.format,
            group: file.group.clone(),
            row_start: start,
            row_count: count,
            bytes: None,
            schema: None,
        });
        start += count;
    }
}

/// Reads the rows of `slice`, in order, in batches of at most `batch_rows` rows.
pub fn read_slice(slice: &InputSlice, batch_rows: usize) -> Result<Vec<RecordBatch>, FormatError> {
    let batch_rows = batch_rows.max(1);
    match slice.format {
        InputFormat::Parquet => parquet::read(slice, batch_rows),
        InputFormat::Jsonl | InputFormat::Csv => text::read(slice, batch_rows),
        InputFormat::Arrow => ipc::read(slice, batch_rows),
        InputFormat::Hdf5 => h5::read(slice, batch_rows),
    }
}

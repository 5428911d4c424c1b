//! Input addresses, chunk planning and chunk reading.
//!
//! An input is a flywheel table (`DIR[@V]`), one file, or a glob of files, in Parquet, JSONL,
//! CSV, Arrow IPC or HDF5. Planning reads metadata only, never the data, and cuts deterministic
//! chunks of about `chunk_rows` rows that never cross a file boundary, so a plan is stable for a
//! given input and setting (output order and `--resume` rely on that). A worker then reads only
//! its own chunk's rows.

mod h5;
mod ipc;
mod lines;
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
    /// The directory the input's files are named relative to, wherever the data sits: the
    /// table's, a glob's directory (before its first wildcard), a file's own (absolute).
    pub root: PathBuf,
}

impl ResolvedInput {
    /// The files' input, with `root` their files' directory when there is one file.
    fn of_files(files: Vec<InputFile>, root: Option<PathBuf>) -> ResolvedInput {
        let root = root.unwrap_or_else(|| {
            files
                .first()
                .and_then(|f| f.path.parent())
                .map(Path::to_path_buf)
                .unwrap_or_default()
        });
        ResolvedInput {
            files,
            table: None,
            root,
        }
    }
}

/// A glob's directory: its components before the first with a wildcard, made absolute.
fn glob_root(pattern: &str) -> PathBuf {
    let mut dir = PathBuf::new();
    for c in Path::new(pattern).components() {
        if c.as_os_str().to_string_lossy().contains(['*', '?', '[']) {
            break;
        }
        dir.push(c);
    }
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    fs::canonicalize(&dir).unwrap_or(dir)
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
            table: Some((dir.clone(), manifest.version)),
            root: dir,
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
        return Ok(ResolvedInput::of_files(files, Some(glob_root(address))));
    }
    // `file.h5:/group` picks an HDF5 group.
    if let Some((file, group)) = address
        .split_once(".h5:")
        .map(|(f, g)| (format!("{f}.h5"), g))
    {
        return Ok(ResolvedInput::of_files(
            vec![input_file(Path::new(&file), Some(group.to_string()))?],
            None,
        ));
    }
    let path = Path::new(address);
    if !path.exists() {
        return Err(FormatError::NoInput(address.to_string()));
    }
    Ok(ResolvedInput::of_files(vec![input_file(path, None)?], None))
}

/// Where a plan's chunks are cut finer for the tail of a job (see [`shrink_tail`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// In each file of at least [`TAIL_MIN_CHUNKS`] chunks, its last eighth: every file's chunks
    /// depend on that file alone. What every map plans.
    PerFile,
    /// The last eighth of the whole plan (plain maps before per-file tails; `flywheel rerun`
    /// of their versions).
    Whole,
    /// None (incremental maps before per-file tails; `flywheel rerun` of their versions).
    None,
}

/// Cuts the input into chunks of about `chunk_rows` rows, in input order, from metadata only
/// (Parquet footers, Arrow IPC batch headers, HDF5 shapes, a sample of a text file's head).
/// Each file's chunks depend on that file and `chunk_rows` alone (its finer tail included), so
/// a plain and an incremental map cut the same chunks, and an unchanged file keeps its chunk
/// boundaries when other files are added or removed.
pub fn plan_chunks(input: &ResolvedInput, chunk_rows: u64) -> Result<Vec<InputSlice>, FormatError> {
    Ok(plan_chunks_counted(input, chunk_rows, Tail::PerFile)?.0)
}

/// [`plan_chunks`] with the tail cut as `tail` says, also returning how many bytes of the input
/// files planning read.
pub fn plan_chunks_counted(
    input: &ResolvedInput,
    chunk_rows: u64,
    tail: Tail,
) -> Result<(Vec<InputSlice>, u64), FormatError> {
    let (slices, bytes_read) = plan_files(input, chunk_rows)?;
    let slices = match tail {
        Tail::None => slices,
        Tail::Whole => shrink_tail(slices),
        Tail::PerFile => {
            // A file's chunks are consecutive.
            let mut out = Vec::with_capacity(slices.len());
            let mut file = Vec::new();
            for s in slices {
                if file.last().is_some_and(|l: &InputSlice| l.path != s.path) {
                    out.extend(shrink_tail(std::mem::take(&mut file)));
                }
                file.push(s);
            }
            out.extend(shrink_tail(file));
            out
        }
    };
    Ok((slices, bytes_read))
}

/// Each file's chunks, in input order, and the bytes planning read.
fn plan_files(
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
    // Files with no rows are refused unless other files of the input have some. A table's
    // version is not: its row count is a published fact (a filter may have kept none).
    if slices.is_empty() && input.table.is_none() {
        return Err(FormatError::NoRows {
            files: input
                .files
                .iter()
                .map(|f| (f.path.clone(), why_no_rows(f).into()))
                .collect(),
        });
    }
    Ok((slices, bytes_read))
}

/// Why a file that planned to no chunks has no rows.
fn why_no_rows(file: &InputFile) -> &'static str {
    match file.format {
        _ if file.bytes == 0 => "the file is empty",
        InputFormat::Csv => "a header line and no data lines",
        InputFormat::Jsonl => "only blank lines",
        InputFormat::Parquet | InputFormat::Arrow => "only a schema",
        InputFormat::Hdf5 => "the group's datasets have 0 rows",
    }
}

/// Files of at least this many chunks get a finer tail.
const TAIL_MIN_CHUNKS: usize = 64;

/// Guided self-scheduling, decided at planning time so that a plan stays a pure function of the
/// input and `--chunk-rows`: in a file of at least [`TAIL_MIN_CHUNKS`] chunks, the chunks of its
/// last eighth are cut into quarters, so the end of a job is made of small pieces that spread
/// evenly over the workers (speculation then covers the last of them).
fn shrink_tail(slices: Vec<InputSlice>) -> Vec<InputSlice> {
    let n = slices.len();
    if n < TAIL_MIN_CHUNKS {
        return slices;
    }
    let tail_start = n - n.div_ceil(8);
    let mut out = Vec::with_capacity(n + 3 * (n - tail_start));
    for (i, s) in slices.into_iter().enumerate() {
        if i < tail_start {
            out.push(s);
            continue;
        }
        match s.bytes {
            Some((b, e)) if e - b >= 4 => {
                let step = (e - b).div_ceil(4);
                let mut start = b;
                let mut k = 0;
                while start < e {
                    let end = (start + step).min(e);
                    out.push(InputSlice {
                        bytes: Some((start, end)),
                        row_start: s.row_start + k * s.row_count / 4,
                        row_count: (s.row_count / 4).max(1),
                        ..s.clone()
                    });
                    start = end;
                    k += 1;
                }
            }
            None if s.row_count >= 4 => {
                let step = s.row_count.div_ceil(4);
                let mut start = s.row_start;
                let end = s.row_start + s.row_count;
                while start < end {
                    let count = step.min(end - start);
                    out.push(InputSlice {
                        row_start: start,
                        row_count: count,
                        ..s.clone()
                    });
                    start += count;
                }
            }
            _ => out.push(s),
        }
    }
    out
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

/// Streams some columns (indices in the file's schema) of a whole Parquet file, batch by batch.
pub(crate) fn read_parquet_columns(
    path: &Path,
    columns: &[usize],
    each: &mut dyn FnMut(&RecordBatch),
) -> Result<(), FormatError> {
    parquet::read_columns(path, columns, each)
}

/// Rows `rows` of a whole Parquet file, in batches of at most `batch_rows` rows.
pub(crate) fn read_parquet_range(
    path: &Path,
    rows: std::ops::Range<u64>,
    batch_rows: usize,
) -> Result<Vec<RecordBatch>, FormatError> {
    parquet::read_range(path, rows, batch_rows.max(1))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, per: u64) -> Vec<InputSlice> {
        (0..n as u64)
            .map(|i| InputSlice {
                path: "/f".into(),
                format: InputFormat::Parquet,
                group: None,
                row_start: i * per,
                row_count: per,
                bytes: None,
                schema: None,
            })
            .collect()
    }

    #[test]
    fn the_tail_of_a_long_plan_is_cut_finer_and_covers_the_same_rows() {
        assert_eq!(
            shrink_tail(rows(10, 100)).len(),
            10,
            "short plans stay as they are"
        );
        let plan = shrink_tail(rows(64, 100));
        assert_eq!(plan.len(), 56 + 8 * 4);
        assert_eq!(plan.last().map(|s| s.row_count), Some(25));
        let mut next = 0;
        for s in &plan {
            assert_eq!(s.row_start, next, "contiguous, in order");
            next += s.row_count;
        }
        assert_eq!(next, 6400);
    }
}

//! Parquet inputs: planned from the footer, read by row group with a row selection inside.

use super::{row_slices, InputFile};
use crate::FormatError;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use flywheel_protocol::InputSlice;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReaderBuilder, RowSelection, RowSelector};
use parquet::file::reader::{ChunkReader, FileReader, Length, SerializedFileReader};
use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A file that counts the bytes read from it (planning must read footers only).
struct Counted {
    file: File,
    read: Arc<AtomicU64>,
}

impl Length for Counted {
    fn len(&self) -> u64 {
        self.file.len()
    }
}

/// A reader that counts what passes through it.
struct CountedRead<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for CountedRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl ChunkReader for Counted {
    type T = CountedRead<<File as ChunkReader>::T>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(CountedRead {
            inner: self.file.get_read(start)?,
            read: Arc::clone(&self.read),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.read.fetch_add(length as u64, Ordering::Relaxed);
        self.file.get_bytes(start, length)
    }
}

/// Plans a Parquet file's chunks from its footer; returns the bytes read.
pub(super) fn plan(
    file: &InputFile,
    chunk_rows: u64,
    out: &mut Vec<InputSlice>,
) -> Result<u64, FormatError> {
    let read = Arc::new(AtomicU64::new(0));
    let f = File::open(&file.path).map_err(FormatError::io(&file.path))?;
    let reader = SerializedFileReader::new(Counted {
        file: f,
        read: Arc::clone(&read),
    })
    .map_err(|e| FormatError::BadFile {
        path: file.path.clone(),
        reason: format!(
            "not a readable Parquet file ({}): {}",
            what_is_wrong(&file.path),
            detail(&e)
        ),
    })?;
    let rows = reader.metadata().file_metadata().num_rows().max(0) as u64;
    row_slices(file, rows, chunk_rows, out);
    Ok(read.load(Ordering::Relaxed))
}

/// What is wrong with a Parquet file whose footer the library refused, from its first and last
/// bytes: a Parquet file starts with `PAR1` and ends with its footer's length and `PAR1`.
fn what_is_wrong(path: &Path) -> String {
    let (Ok(size), Ok(head), Ok(tail)) = (
        std::fs::metadata(path).map(|m| m.len()),
        bytes_at(path, 0, 4),
        bytes_at(path, -8, 8),
    ) else {
        return "it cannot be read back".into();
    };
    if size == 0 {
        return "the file is empty".into();
    }
    if size < 12 {
        return format!("truncated: {size} bytes cannot hold a Parquet footer");
    }
    if tail[4..] != *b"PAR1" {
        return match head == b"PAR1" {
            true => "truncated: it does not end with the Parquet magic PAR1".into(),
            false => "not Parquet: it neither starts nor ends with the magic PAR1".into(),
        };
    }
    let footer = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    if u64::from(footer) + 12 > size {
        return format!(
            "truncated: its footer says it is {footer} bytes, more than the file holds"
        );
    }
    "bad footer: the file's metadata is damaged".into()
}

/// `len` bytes (fewer at the end of the file) from `offset`, counted from the end if negative.
fn bytes_at(path: &Path, offset: i64, len: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(path)?;
    let size = f.metadata()?.len();
    let start = match offset {
        o if o < 0 => size.saturating_sub(o.unsigned_abs()),
        o => o.unsigned_abs(),
    };
    f.seek(SeekFrom::Start(start))?;
    let mut out = Vec::new();
    f.take(len).read_to_end(&mut out)?;
    Ok(out)
}

/// The library's error without its generic `Parquet error: ` prefix.
fn detail(e: &parquet::errors::ParquetError) -> String {
    let text = e.to_string();
    text.strip_prefix("Parquet error: ")
        .unwrap_or(&text)
        .to_string()
}

pub(super) fn read(slice: &InputSlice, batch_rows: usize) -> Result<Vec<RecordBatch>, FormatError> {
    let path = PathBuf::from(&slice.path);
    read_range(
        &path,
        slice.row_start..slice.row_start + slice.row_count,
        batch_rows,
    )
}

/// Rows `rows` of a Parquet file (fewer where the file has fewer), in order, in batches of at
/// most `batch_rows` rows.
pub(crate) fn read_range(
    path: &Path,
    rows: Range<u64>,
    batch_rows: usize,
) -> Result<Vec<RecordBatch>, FormatError> {
    let f = File::open(path).map_err(FormatError::io(path))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(f).map_err(FormatError::parquet(path))?;
    let (row_start, row_count) = (rows.start, rows.end.saturating_sub(rows.start));
    let end = rows.end;
    // The row groups overlapping [row_start, end), and the rows to skip and take inside them.
    let mut groups = Vec::new();
    let mut first_group_start = None;
    let mut offset = 0u64;
    for (i, rg) in builder.metadata().row_groups().iter().enumerate() {
        let n = rg.num_rows().max(0) as u64;
        if offset < end && offset + n > row_start {
            groups.push(i);
            first_group_start.get_or_insert(offset);
        }
        offset += n;
    }
    let Some(group_start) = first_group_start else {
        return Ok(Vec::new());
    };
    let skip = (row_start - group_start) as usize;
    let selection = RowSelection::from(vec![
        RowSelector::skip(skip),
        RowSelector::select(row_count as usize),
    ]);
    let reader = builder
        .with_row_groups(groups)
        .with_row_selection(selection)
        .with_batch_size(batch_rows)
        .build()
        .map_err(FormatError::parquet(path))?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| FormatError::Arrow {
            context: path.display().to_string(),
            source,
        })
}

/// Streams the columns `columns` (indices in the file's schema) of a whole Parquet file to
/// `each`, batch by batch, reading only those columns' pages.
pub(crate) fn read_columns(
    path: &std::path::Path,
    columns: &[usize],
    each: &mut dyn FnMut(&RecordBatch),
) -> Result<(), FormatError> {
    let f = File::open(path).map_err(FormatError::io(path))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(f).map_err(FormatError::parquet(path))?;
    let mask =
        parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), columns.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(8192)
        .build()
        .map_err(FormatError::parquet(path))?;
    for batch in reader {
        let batch = batch.map_err(|source| FormatError::Arrow {
            context: path.display().to_string(),
            source,
        })?;
        each(&batch);
    }
    Ok(())
}

//! Reading a version's rows back: a range of rows in table order, some columns of every file, or
//! rows of one data file. Readers of a version use these rather than planning input slices.

use crate::{FormatError, Manifest, Table};
use arrow::record_batch::RecordBatch;
use std::ops::Range;
use std::path::Path;

/// Rows in a batch that the readers here return.
pub const READ_BATCH_ROWS: usize = 8192;

/// Rows `rows` (0-based) of one of a table's data files, in order, in batches of at most
/// [`READ_BATCH_ROWS`] rows; fewer where the file holds fewer.
pub fn read_data_file(path: &Path, rows: Range<u64>) -> Result<Vec<RecordBatch>, FormatError> {
    crate::input::read_parquet_range(path, rows, READ_BATCH_ROWS)
}

impl Table {
    /// Rows `rows` (0-based, in table order) of the version `manifest` describes, in order, in
    /// batches of at most [`READ_BATCH_ROWS`] rows. A range reaching past the version's last row
    /// is [`FormatError::NoSuchRow`] (naming the first row that does not exist); a data file
    /// holding fewer rows than its manifest records is [`FormatError::BadFile`].
    pub fn read_rows(
        &self,
        manifest: &Manifest,
        rows: Range<u64>,
    ) -> Result<Vec<RecordBatch>, FormatError> {
        if rows.end > manifest.num_rows && rows.start < rows.end {
            return Err(FormatError::NoSuchRow {
                row: rows.start.max(manifest.num_rows),
                rows: manifest.num_rows,
            });
        }
        let mut batches = Vec::new();
        let mut start = 0u64;
        for (f, path) in manifest.files.iter().zip(self.file_paths(manifest)) {
            let end = start + f.rows;
            // The part of `rows` inside this file, in the file's own row numbers.
            let (from, to) = (rows.start.max(start), rows.end.min(end));
            if from < to {
                let got = read_data_file(&path, from - start..to - start)?;
                let read: u64 = got.iter().map(|b| b.num_rows() as u64).sum();
                if read < to - from {
                    return Err(FormatError::BadFile {
                        path,
                        reason: format!(
                            "the manifest says it holds {} rows but row {} cannot be read",
                            f.rows,
                            from - start + read
                        ),
                    });
                }
                batches.extend(got.into_iter().filter(|b| b.num_rows() > 0));
            }
            if end >= rows.end {
                break;
            }
            start = end;
        }
        Ok(batches)
    }

    /// Reads columns `columns` (indices in the version's schema) of every data file of the
    /// version, in order, and gives each batch to `each`; only those columns' pages are read.
    pub fn scan_columns(
        &self,
        manifest: &Manifest,
        columns: &[usize],
        mut each: impl FnMut(&RecordBatch),
    ) -> Result<(), FormatError> {
        for path in self.file_paths(manifest) {
            crate::input::read_parquet_columns(&path, columns, &mut each)?;
        }
        Ok(())
    }
}

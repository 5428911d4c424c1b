//! Reading a version's rows back: a range of rows in table order, some columns of every file, or
//! rows of one data file. Readers of a version use these rather than planning input slices.

use crate::{FormatError, Manifest, Table};
use arrow::record_batch::RecordBatch;
use std::ops::Range;
use std::path::Path;

/// Rows in a batch that the readers here return.
pub const READ_BATCH_ROWS: usize = 8192;

/// Rows `rows` (0-based) of one of a table's data files, whose manifest says it holds
/// `recorded` rows, in order, in batches of at most [`READ_BATCH_ROWS`] rows. A file that holds
/// fewer rows than `rows` reaches is [`FormatError::BadFile`], naming the first row missing.
pub fn read_data_file(
    path: &Path,
    recorded: u64,
    rows: Range<u64>,
) -> Result<Vec<RecordBatch>, FormatError> {
    let held = crate::parquet_rows(path)?;
    if held < rows.end && rows.start < rows.end {
        return Err(FormatError::BadFile {
            path: path.to_path_buf(),
            reason: format!(
                "the manifest says it holds {recorded} rows but row {} cannot be read",
                held.max(rows.start)
            ),
        });
    }
    crate::input::read_parquet_range(path, rows, READ_BATCH_ROWS)
}

impl Table {
    /// Rows `rows` (0-based, in table order) of the version `manifest` describes, in order, in
    /// batches of at most [`READ_BATCH_ROWS`] rows. A range reaching past the version's last row
    /// is [`FormatError::NoSuchRow`] (naming the first row that does not exist); a data file
    /// holding fewer rows than its manifest records is [`FormatError::BadFile`] (see
    /// [`read_data_file`]).
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
                let got = read_data_file(&path, f.rows, from - start..to - start)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{write_chunk_file, DataFile, FORMAT_NAME, FORMAT_VERSION};
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use std::sync::Arc;

    /// A version of files holding ids `0..3`, nothing, and `3..7`.
    fn version(dir: &Path) -> (Table, Manifest) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("twice", DataType::Int64, false),
        ]));
        let mut files = Vec::new();
        for (name, ids) in [("a", 0..3), ("b", 3..3), ("c", 3..7)] {
            let ids: Vec<i64> = ids.collect();
            let twice: Vec<i64> = ids.iter().map(|i| i * 2).collect();
            let batch = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int64Array::from(ids)),
                    Arc::new(Int64Array::from(twice)),
                ],
            )
            .expect("a batch");
            let path = format!("data/{name}.parquet");
            let w = write_chunk_file(&dir.join(&path), &[batch]).expect("written");
            files.push(DataFile {
                path,
                rows: w.rows,
                bytes: w.bytes,
                provenance: None,
                stats: None,
                fingerprint: None,
            });
        }
        let manifest = Manifest {
            format: FORMAT_NAME.into(),
            format_version: FORMAT_VERSION,
            version: 1,
            created_at: "now".into(),
            operation: "create".into(),
            schema: serde_json::json!({}),
            num_rows: files.iter().map(|f| f.rows).sum(),
            files,
            columns: vec![],
            lineage: serde_json::Value::Null,
            report: None,
            job_id: None,
            errors: vec![],
        };
        (Table::new(dir), manifest)
    }

    fn ids(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect()
    }

    #[test]
    fn ranges_read_across_files_and_rows_past_the_end_are_named() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (t, m) = version(dir.path());
        assert_eq!(m.num_rows, 7);
        let read = |r: Range<u64>| t.read_rows(&m, r);
        assert_eq!(
            ids(&read(0..7).expect("all rows")),
            (0..7).collect::<Vec<_>>()
        );
        assert_eq!(ids(&read(2..5).expect("across files")), vec![2, 3, 4]);
        assert_eq!(ids(&read(6..7).expect("the last row")), vec![6]);
        assert!(read(4..4).expect("no rows").is_empty());
        for (range, first) in [(5..9, 7), (9..10, 9)] {
            let err = read(range.clone()).expect_err("past the end");
            assert!(
                matches!(err, FormatError::NoSuchRow { row, rows: 7 } if row == first),
                "{range:?}: {err}"
            );
        }
        let mut seen = 0;
        t.scan_columns(&m, &[1], |b| {
            assert_eq!(b.num_columns(), 1, "only the column asked for");
            seen += b.num_rows();
        })
        .expect("scanned");
        assert_eq!(seen, 7);
    }

    #[test]
    fn a_file_shorter_than_its_manifest_says_is_a_bad_file() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (t, mut m) = version(dir.path());
        m.files[2].rows = 6;
        m.num_rows = 9;
        let err = t.read_rows(&m, 5..8).expect_err("row 7 is not there");
        assert!(
            err.to_string()
                .ends_with("c.parquet: the manifest says it holds 6 rows but row 4 cannot be read"),
            "{err}"
        );
    }
}

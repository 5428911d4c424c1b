//! Comparing two sequences of data files row by row, in order (`rerun`): where they first
//! differ, if anywhere.

use arrow::datatypes::Schema as ArrowSchema;
use arrow::record_batch::RecordBatch;
use flywheel_formats::{read_data_file, FormatError};
use std::collections::VecDeque;
use std::path::PathBuf;

/// Where two row sequences first differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// Different columns (names or types).
    Schema(String),
    /// A different value at `row` in `column`.
    Value {
        /// The row, from 0, in the order of the files.
        row: u64,
        /// The column's name.
        column: String,
    },
    /// One has more rows.
    Rows {
        /// Rows of the first sequence.
        left: u64,
        /// Rows of the second.
        right: u64,
    },
}

/// Data files (path, rows) read in order, a batch at a time.
struct Rows {
    files: std::vec::IntoIter<(PathBuf, u64)>,
    pending: VecDeque<RecordBatch>,
}

impl Rows {
    fn new(files: Vec<(PathBuf, u64)>) -> Rows {
        Rows {
            files: files.into_iter(),
            pending: VecDeque::new(),
        }
    }

    fn next(&mut self) -> Result<Option<RecordBatch>, FormatError> {
        loop {
            if let Some(b) = self.pending.pop_front() {
                if b.num_rows() > 0 {
                    return Ok(Some(b));
                }
                continue;
            }
            let Some((path, rows)) = self.files.next() else {
                return Ok(None);
            };
            self.pending.extend(read_data_file(&path, rows, 0..rows)?);
        }
    }

    /// What is left of `batch` after its first `n` rows, or the next batch.
    fn after(&mut self, batch: &RecordBatch, n: usize) -> Result<Option<RecordBatch>, FormatError> {
        if n < batch.num_rows() {
            Ok(Some(batch.slice(n, batch.num_rows() - n)))
        } else {
            self.next()
        }
    }
}

fn same_columns(a: &ArrowSchema, b: &ArrowSchema) -> Option<String> {
    let names = |s: &ArrowSchema| -> Vec<String> {
        s.fields()
            .iter()
            .map(|f| format!("{}: {}", f.name(), f.data_type()))
            .collect()
    };
    let (x, y) = (names(a), names(b));
    (x != y).then(|| format!("columns [{}] vs [{}]", x.join(", "), y.join(", ")))
}

/// The first column and row (from 0) where `xs` and `ys`, batches of one length, differ.
fn first_unequal(xs: &RecordBatch, ys: &RecordBatch) -> Option<(usize, String)> {
    (0..xs.num_columns()).find_map(|c| {
        let (p, q) = (xs.column(c), ys.column(c));
        if p.as_ref() == q.as_ref() {
            return None;
        }
        let at = (0..xs.num_rows())
            .find(|i| p.slice(*i, 1).as_ref() != q.slice(*i, 1).as_ref())
            .unwrap_or(0);
        Some((at, xs.schema().field(c).name().clone()))
    })
}

/// Compares two sequences of data files (path, rows) row by row, in order; `None` when equal.
pub fn first_difference(
    left: Vec<(PathBuf, u64)>,
    right: Vec<(PathBuf, u64)>,
) -> Result<Option<Difference>, FormatError> {
    let total = |f: &[(PathBuf, u64)]| f.iter().map(|(_, r)| r).sum::<u64>();
    let (left_rows, right_rows) = (total(&left), total(&right));
    let (mut a, mut b) = (Rows::new(left), Rows::new(right));
    let (mut x, mut y) = (a.next()?, b.next()?);
    let mut row = 0u64;
    while let (Some(xa), Some(yb)) = (&x, &y) {
        if let Some(d) = same_columns(&xa.schema(), &yb.schema()) {
            return Ok(Some(Difference::Schema(d)));
        }
        let n = xa.num_rows().min(yb.num_rows());
        if let Some((at, column)) = first_unequal(&xa.slice(0, n), &yb.slice(0, n)) {
            return Ok(Some(Difference::Value {
                row: row + at as u64,
                column,
            }));
        }
        row += n as u64;
        (x, y) = (a.after(xa, n)?, b.after(yb, n)?);
    }
    if x.is_some() || y.is_some() || left_rows != right_rows {
        return Ok(Some(Difference::Rows {
            left: left_rows,
            right: right_rows,
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field};
    use std::path::Path;
    use std::sync::Arc;

    /// A data file at `dir/name` holding `values` in a column called `column`.
    fn file(dir: &Path, name: &str, column: &str, values: Vec<i64>) -> (PathBuf, u64) {
        let schema = Arc::new(ArrowSchema::new(vec![Field::new(
            column,
            DataType::Int64,
            false,
        )]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values))])
            .expect("a batch");
        let path = dir.join(name);
        let w = flywheel_formats::write_chunk_file(&path, &[batch]).expect("written");
        (path, w.rows)
    }

    #[test]
    fn the_first_difference_is_found_whatever_the_file_boundaries() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let d = dir.path();
        let left = vec![file(d, "l.parquet", "id", (0..5).collect())];
        let split = vec![
            file(d, "r1.parquet", "id", vec![0, 1]),
            file(d, "r2.parquet", "id", vec![2, 3, 4]),
        ];
        assert_eq!(first_difference(left.clone(), split).expect("read"), None);
        let changed = vec![
            file(d, "c1.parquet", "id", vec![0, 1]),
            file(d, "c2.parquet", "id", vec![2, 30, 4]),
        ];
        assert_eq!(
            first_difference(left.clone(), changed).expect("read"),
            Some(Difference::Value {
                row: 3,
                column: "id".into()
            })
        );
        let longer = vec![file(d, "m.parquet", "id", (0..6).collect())];
        assert_eq!(
            first_difference(left.clone(), longer).expect("read"),
            Some(Difference::Rows { left: 5, right: 6 })
        );
        let renamed = vec![file(d, "n.parquet", "key", (0..5).collect())];
        assert_eq!(
            first_difference(left, renamed).expect("read"),
            Some(Difference::Schema(
                "columns [id: Int64] vs [key: Int64]".into()
            ))
        );
    }
}

//! Reading one chunk's rows: only the row groups (and rows within them) that the slice covers.

use crate::FormatError;
use arrow::record_batch::RecordBatch;
use flywheel_protocol::{InputFormat, InputSlice};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReaderBuilder, RowSelection, RowSelector};
use std::fs;
use std::path::PathBuf;

/// Reads the rows of `slice`, in order, in batches of at most `batch_rows` rows.
pub fn read_slice(slice: &InputSlice, batch_rows: usize) -> Result<Vec<RecordBatch>, FormatError> {
    let path = PathBuf::from(&slice.path);
    match slice.format {
        InputFormat::Parquet => read_parquet(slice, &path, batch_rows),
        other => Err(FormatError::Unsupported {
            path,
            what: format!(
                "{other:?} input is not readable by this build yet; convert it to Parquet"
            ),
        }),
    }
}

fn read_parquet(
    slice: &InputSlice,
    path: &PathBuf,
    batch_rows: usize,
) -> Result<Vec<RecordBatch>, FormatError> {
    let f = fs::File::open(path).map_err(FormatError::io(path))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(f).map_err(FormatError::parquet(path))?;
    let end = slice.row_start + slice.row_count;
    // Pick the row groups overlapping [row_start, end) and skip/select rows inside them.
    let mut groups = Vec::new();
    let mut first_group_start = None;
    let mut offset = 0u64;
    for (i, rg) in builder.metadata().row_groups().iter().enumerate() {
        let n = rg.num_rows().max(0) as u64;
        if offset < end && offset + n > slice.row_start {
            groups.push(i);
            first_group_start.get_or_insert(offset);
        }
        offset += n;
    }
    let Some(group_start) = first_group_start else {
        return Ok(Vec::new());
    };
    let skip = (slice.row_start - group_start) as usize;
    let selection = RowSelection::from(vec![
        RowSelector::skip(skip),
        RowSelector::select(slice.row_count as usize),
    ]);
    let reader = builder
        .with_row_groups(groups)
        .with_row_selection(selection)
        .with_batch_size(batch_rows.max(1))
        .build()
        .map_err(FormatError::parquet(path))?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| FormatError::Arrow {
            context: path.display().to_string(),
            source,
        })
}

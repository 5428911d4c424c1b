//! A query result as CSV: a header line, then one line a row; CSV has no nested values, so lists
//! and structs are their JSON text (the explore crate's rendering). `flywheel query --format
//! csv` and the viewer's download write the same bytes.

use crate::QueryResult;
use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use std::io::Write;
use std::sync::Arc;

/// Writes `result` to `out` as CSV with a header line (the header alone for no rows).
pub fn write_csv(result: &QueryResult, out: impl Write) -> Result<(), ArrowError> {
    let (schema, batches) = nested_as_json_text(result)?;
    let mut w = arrow::csv::WriterBuilder::new()
        .with_header(true)
        .build(out);
    if batches.is_empty() {
        w.write(&RecordBatch::new_empty(schema))?;
    }
    for b in &batches {
        w.write(b)?;
    }
    Ok(())
}

/// CSV has no nested values: lists and structs become their JSON text.
fn nested_as_json_text(
    result: &QueryResult,
) -> Result<(Arc<Schema>, Vec<RecordBatch>), ArrowError> {
    let fields: Vec<Field> = result
        .schema
        .fields()
        .iter()
        .map(|f| {
            if f.data_type().is_nested() {
                Field::new(f.name(), DataType::Utf8, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let mut batches = Vec::with_capacity(result.batches.len());
    for b in &result.batches {
        let columns: Vec<ArrayRef> = b
            .columns()
            .iter()
            .zip(result.schema.fields())
            .map(|(c, f)| {
                if f.data_type().is_nested() {
                    let text: StringArray = (0..c.len())
                        .map(|i| {
                            (!c.is_null(i))
                                .then(|| flywheel_explore::to_json(f, c.as_ref(), i).to_string())
                        })
                        .collect();
                    Arc::new(text) as ArrayRef
                } else {
                    Arc::clone(c)
                }
            })
            .collect();
        batches.push(RecordBatch::try_new(Arc::clone(&schema), columns)?);
    }
    Ok((schema, batches))
}

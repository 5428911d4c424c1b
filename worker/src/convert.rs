//! Arrow record batches ↔ the JSON rows of the mapper protocol.

use crate::ChunkError;
use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use flywheel_protocol::FailureKind;
use std::sync::Arc;

/// Appends each row of `batches` to `out` as one JSON object per line (nulls written out).
pub fn batches_to_json_lines(batches: &[RecordBatch], out: &mut Vec<u8>) -> Result<(), ChunkError> {
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::LineDelimited>(out);
    for b in batches {
        writer.write(b).map_err(|e| {
            ChunkError::new(
                FailureKind::Io,
                format!("cannot encode input rows as JSON: {e}"),
            )
        })?;
    }
    writer.finish().map_err(|e| {
        ChunkError::new(
            FailureKind::Io,
            format!("cannot encode input rows as JSON: {e}"),
        )
    })
}

/// Builds one record batch from the mapper's output rows, with `schema` when the table's schema
/// is fixed, inferred from the rows otherwise.
pub fn json_rows_to_batch(
    rows: &[serde_json::Value],
    schema: Option<&Schema>,
) -> Result<RecordBatch, ChunkError> {
    let invalid = |what: String| ChunkError::new(FailureKind::InvalidOutput, what);
    let schema = match schema {
        Some(s) => s.clone(),
        None => arrow::json::reader::infer_json_schema_from_iterator(rows.iter().map(Ok)).map_err(
            |e| {
                invalid(format!(
                    "cannot infer a schema from the mapper's output: {e}"
                ))
            },
        )?,
    };
    let mut decoder = arrow::json::ReaderBuilder::new(Arc::new(schema))
        .with_batch_size(rows.len().max(1))
        .build_decoder()
        .map_err(|e| invalid(format!("cannot decode the mapper's output: {e}")))?;
    decoder.serialize(rows).map_err(|e| {
        invalid(format!(
            "the mapper's output does not fit the table schema: {e}"
        ))
    })?;
    match decoder.flush() {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err(invalid("the mapper's output decoded to no rows".into())),
        Err(e) => Err(invalid(format!(
            "the mapper's output does not fit the table schema: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_round_trip_through_json() {
        let rows = vec![
            json!({"a": 1, "b": "x", "c": [1, 2]}),
            json!({"a": 2, "b": null, "c": []}),
        ];
        let batch = json_rows_to_batch(&rows, None).unwrap();
        assert_eq!(batch.num_rows(), 2);
        let mut out = Vec::new();
        batches_to_json_lines(&[batch], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let back: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(back, rows);
    }

    #[test]
    fn output_that_does_not_fit_the_fixed_schema_is_invalid() {
        let first = json_rows_to_batch(&[json!({"a": 1})], None).unwrap();
        let err = json_rows_to_batch(&[json!({"a": "text"})], Some(&first.schema())).unwrap_err();
        assert_eq!(err.kind, FailureKind::InvalidOutput);
        assert!(
            err.message.contains("does not fit the table schema"),
            "{}",
            err.message
        );
    }
}

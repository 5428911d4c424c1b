//! Arrow record batches → the JSON rows of the mapper protocol.

use crate::{ChunkError, RowError};
use arrow::array::{Array, ArrayRef, BinaryArray, LargeBinaryArray, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use base64::Engine;
use flywheel_formats::{
    infer_schema, rows_to_batch, schema_from_json, schema_to_json, Schema as FlywheelSchema,
};
use flywheel_protocol::{ChunkTask, FailureKind, RowErrorPolicy};
use std::sync::Arc;

/// Where input row `i` of a chunk is, in words.
pub fn input_row(task: &ChunkTask, i: u64) -> String {
    match task.input.bytes {
        Some((b, e)) => format!(
            "row {i} of {} ({} bytes {b}..{e})",
            task.chunk, task.input.path
        ),
        None => format!(
            "row {} of {} ({})",
            task.input.row_start + i,
            task.input.path,
            task.chunk
        ),
    }
}

/// The schema a task's output must have: the table's (when fixed), else inferred from `rows`.
fn target_schema(
    task: &ChunkTask,
    rows: &[serde_json::Value],
) -> Result<FlywheelSchema, ChunkError> {
    match &task.schema {
        Some(json) => {
            let arrow = schema_from_json(json)?;
            FlywheelSchema::from_arrow(&arrow).ok_or_else(|| {
                ChunkError::new(FailureKind::InvalidOutput, format!("the table schema {json} has a column type that mapper output cannot be checked against"))
            })
        }
        None => infer_schema(rows).map_err(|e| {
            ChunkError::new(
                FailureKind::InvalidOutput,
                format!("in {}: {e}", task.chunk),
            )
        }),
    }
}

/// Validates and builds a chunk's output rows. A row that does not fit the schema fails the
/// chunk (naming output row, input row, column, expected and got) or, with
/// `--on-row-error skip`, is left out and reported as an error of its input row.
pub fn rows_to_output(
    mut rows: Vec<serde_json::Value>,
    sources: &[u64],
    task: &ChunkTask,
    policy: RowErrorPolicy,
) -> Result<(Vec<RecordBatch>, Vec<RowError>), ChunkError> {
    if rows.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let schema = target_schema(task, &rows)?;
    let mut sources = sources.to_vec();
    let mut skipped = Vec::new();
    let mut dropped = 0usize;
    loop {
        match rows_to_batch(&rows, &schema) {
            Ok(batch) => return Ok((vec![batch], skipped)),
            Err(v) => {
                let source = sources.get(v.row).copied().unwrap_or(0);
                let what = format!(
                    "output row {} (from input {}), column '{}': expected {}, got {}",
                    v.row + dropped,
                    input_row(task, source),
                    v.column,
                    v.expected,
                    v.got
                );
                if policy == RowErrorPolicy::Fail || v.row >= rows.len() {
                    return Err(ChunkError::new(
                        FailureKind::InvalidOutput,
                        format!("{what}; table schema: {schema}"),
                    ));
                }
                skipped.push(RowError {
                    row: source,
                    rows: 1,
                    message: format!("invalid output: {what}"),
                    traceback: String::new(),
                });
                rows.remove(v.row);
                sources.remove(v.row.min(sources.len().saturating_sub(1)));
                dropped += 1;
                if rows.is_empty() {
                    return Ok((Vec::new(), skipped));
                }
            }
        }
    }
}

/// Casts batches (e.g. a builtin mapper's) to the table's fixed schema, column by name. A value
/// the cast cannot keep (300 in an `int8` column, "abc" in an `int` one, 2.5 in an `int` one, a
/// null in a column that is not nullable) is an error naming the chunk's output row, the
/// column, the value and the type; it never becomes a null.
pub fn conform(
    batches: Vec<RecordBatch>,
    schema_json: &str,
    task: &ChunkTask,
) -> Result<Vec<RecordBatch>, ChunkError> {
    conform_rows(batches, schema_json, &|r| {
        format!("output row {r} (of {})", task.chunk)
    })
}

/// [`conform`], with the words for output row `r` of the chunk.
fn conform_rows(
    batches: Vec<RecordBatch>,
    schema_json: &str,
    row: &dyn Fn(usize) -> String,
) -> Result<Vec<RecordBatch>, ChunkError> {
    let target = Arc::new(schema_from_json(schema_json)?);
    let mut offset = 0usize;
    batches
        .into_iter()
        .map(|b| {
            let first_row = offset;
            offset += b.num_rows();
            // Already the table's schema: nothing to cast, and a batch never holds a null in a
            // field that refuses them (RecordBatch checks that when it is built).
            if b.schema().fields() == target.fields() {
                return Ok(b);
            }
            if let Some(extra) = b
                .schema()
                .fields()
                .iter()
                .find(|f| target.field_with_name(f.name()).is_err())
            {
                return Err(invalid(format!(
                    "output column '{}' is not in the table schema {}",
                    extra.name(),
                    schema_to_json(&target)
                )));
            }
            let columns = target
                .fields()
                .iter()
                .map(|f| {
                    let col = b.column_by_name(f.name()).ok_or_else(|| {
                        invalid(format!(
                            "output has no column '{}' (table schema: {})",
                            f.name(),
                            schema_to_json(&target)
                        ))
                    })?;
                    let out = cast_checked(col, f)
                        .map_err(|bad| invalid(bad.describe(f, &|r| row(first_row + r))))?;
                    if !f.is_nullable() && out.null_count() > 0 {
                        if let Some(r) = (0..out.len()).find(|i| out.is_null(*i)) {
                            return Err(invalid(null_in_required(
                                &row(first_row + r),
                                f.name(),
                                &type_name(f),
                            )));
                        }
                    }
                    Ok(out)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let options =
                arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(b.num_rows()));
            RecordBatch::try_new_with_options(Arc::clone(&target), columns, &options)
                .map_err(|e| invalid(format!("output does not fit the table schema: {e}")))
        })
        .collect()
}

/// The error for a null in a column that takes none; `at` names the row.
fn null_in_required(at: &str, column: &str, ty: &str) -> String {
    format!(
        "{at}, column '{column}': expected {ty}, got null (the column is not nullable; make it nullable with '?')"
    )
}

/// The flywheel type of a column, in the schema language (Arrow's name where it has none).
fn type_name(f: &Field) -> String {
    flywheel_formats::Field::from_arrow(f)
        .map(|x| x.ty.to_string())
        .unwrap_or_else(|| f.data_type().to_string())
}

/// Why a column could not be cast.
enum BadCast {
    /// Arrow has no cast between the two types.
    Unsupported(DataType, String),
    /// The value at this row does not fit.
    Value { row: usize, value: String },
}

impl BadCast {
    fn describe(&self, f: &Field, row: &dyn Fn(usize) -> String) -> String {
        match self {
            BadCast::Unsupported(from, e) => format!(
                "column '{}' of type {from} cannot be stored as {}: {e}",
                f.name(),
                type_name(f)
            ),
            BadCast::Value { row: r, value } => format!(
                "{}, column '{}': value {value} does not fit the column's type {} (declare a wider type with --schema)",
                row(*r),
                f.name(),
                type_name(f)
            ),
        }
    }
}

/// Nulls in an array and in everything nested inside it.
fn deep_nulls(a: &dyn Array) -> usize {
    let own = a.logical_null_count();
    let data = a.to_data();
    own + data
        .child_data()
        .iter()
        .map(|c| deep_nulls(arrow::array::make_array(c.clone()).as_ref()))
        .sum::<usize>()
}

/// Arrow's cast with its default (safe) options turns a value that does not fit into a null;
/// this one finds such a value and names it. A float cast to an integer must also keep its
/// value (2.5 does not fit an `int`).
fn cast_checked(col: &ArrayRef, f: &Field) -> Result<ArrayRef, BadCast> {
    if col.data_type() == f.data_type() {
        return Ok(Arc::clone(col));
    }
    let out = arrow::compute::cast(col, f.data_type())
        .map_err(|e| BadCast::Unsupported(col.data_type().clone(), e.to_string()))?;
    let lossy_float = col.data_type().is_floating() && f.data_type().is_integer();
    // A cast only ever adds nulls: when the totals agree, no row lost its value to one.
    let nulls_differ = deep_nulls(col.as_ref()) != deep_nulls(out.as_ref());
    if !lossy_float && !nulls_differ {
        return Ok(out);
    }
    // Floats cast to integers are cast back and compared, once for the whole column (`None`:
    // the comparison itself failed, so every stored value is suspect).
    let same = lossy_float
        .then(|| {
            arrow::compute::cast(&out, col.data_type())
                .ok()
                .and_then(|back| arrow::compute::kernels::cmp::eq(&back, col).ok())
        })
        .flatten();
    let changed = |r: usize| -> bool {
        if nulls_differ
            && deep_nulls(col.slice(r, 1).as_ref()) != deep_nulls(out.slice(r, 1).as_ref())
        {
            return true;
        }
        lossy_float
            && out.is_valid(r)
            && same
                .as_ref()
                .is_none_or(|eq| !(eq.is_valid(r) && eq.value(r)))
    };
    match (0..col.len()).find(|r| changed(*r)) {
        None => Ok(out),
        Some(row) => {
            let options = arrow::util::display::FormatOptions::default().with_null("null");
            let value = arrow::util::display::ArrayFormatter::try_new(col.as_ref(), &options)
                .map(|fmt| fmt.value(row).to_string())
                .unwrap_or_else(|_| "?".into());
            let value = match col.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => format!("{value:?}"),
                _ => value,
            };
            Err(BadCast::Value { row, value })
        }
    }
}

fn to_base64<'a>(values: impl Iterator<Item = Option<&'a [u8]>>) -> ArrayRef {
    let engine = &base64::engine::general_purpose::STANDARD;
    Arc::new(
        values
            .map(|v| v.map(|b| engine.encode(b)))
            .collect::<StringArray>(),
    )
}

/// Binary columns become base64 text (the mapper side decodes them back to bytes); returns the
/// batch to encode and the names of those columns.
fn encode_binary(batch: &RecordBatch) -> (RecordBatch, Vec<String>) {
    let mut names = Vec::new();
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        let encoded = match f.data_type() {
            DataType::Binary => c
                .as_any()
                .downcast_ref::<BinaryArray>()
                .map(|a| to_base64(a.iter())),
            DataType::LargeBinary => c
                .as_any()
                .downcast_ref::<LargeBinaryArray>()
                .map(|a| to_base64(a.iter())),
            _ => None,
        };
        match encoded {
            Some(col) => {
                names.push(f.name().clone());
                fields.push(Field::new(f.name(), DataType::Utf8, true));
                columns.push(col);
            }
            None => {
                fields.push(f.as_ref().clone());
                columns.push(Arc::clone(c));
            }
        }
    }
    if names.is_empty() {
        return (batch.clone(), names);
    }
    let out = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .unwrap_or_else(|_| batch.clone());
    (out, names)
}

/// Appends each row of `batches` to `out` as one JSON object per line (nulls written out);
/// returns the names of the columns sent as base64 text.
pub fn batches_to_json_lines(
    batches: &[RecordBatch],
    out: &mut Vec<u8>,
) -> Result<Vec<String>, ChunkError> {
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::LineDelimited>(out);
    let mut bytes_columns = Vec::new();
    for b in batches {
        let (b, names) = encode_binary(b);
        bytes_columns = names;
        writer.write(&b).map_err(|e| {
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
    })?;
    Ok(bytes_columns)
}

/// Writes batches as one Arrow IPC stream.
pub fn ipc_stream(batches: &[RecordBatch], out: impl std::io::Write) -> Result<(), ChunkError> {
    let io = |e: arrow::error::ArrowError| {
        ChunkError::new(
            FailureKind::Io,
            format!("cannot encode input rows as Arrow IPC: {e}"),
        )
    };
    let Some(first) = batches.first() else {
        return Err(ChunkError::new(FailureKind::Io, "a chunk without batches"));
    };
    let mut w = arrow::ipc::writer::StreamWriter::try_new(out, &first.schema()).map_err(io)?;
    for b in batches {
        w.write(b).map_err(io)?;
    }
    w.finish().map_err(io)
}

/// Writes an IPC stream holding only a schema.
pub fn ipc_schema(schema: &Schema, out: impl std::io::Write) -> Result<(), ChunkError> {
    let io = |e: arrow::error::ArrowError| {
        ChunkError::new(
            FailureKind::Io,
            format!("cannot encode the table schema: {e}"),
        )
    };
    let mut w = arrow::ipc::writer::StreamWriter::try_new(out, schema).map_err(io)?;
    w.finish().map_err(io)
}

/// Reads an Arrow IPC stream without copying it: the batches' arrays are slices of `data`.
pub fn read_ipc(data: Vec<u8>) -> Result<Vec<RecordBatch>, arrow::error::ArrowError> {
    let mut buffer = arrow::buffer::Buffer::from_vec(data);
    let mut decoder = arrow::ipc::reader::StreamDecoder::new();
    let mut batches = Vec::new();
    while !buffer.is_empty() {
        if let Some(batch) = decoder.decode(&mut buffer)? {
            batches.push(batch);
        }
    }
    decoder.finish()?;
    Ok(batches)
}

const IN_COLUMN: &str = "__flywheel_in";

/// The mapper's output rows that came as Arrow batches (the fast path; the Python side sends
/// JSON rows instead whenever flywheel must check values itself). Casts them to the table
/// schema (or an inferred one) and enforces nullability, naming the row of a violation.
pub fn arrow_to_output(
    batches: Vec<RecordBatch>,
    task: &ChunkTask,
    policy: RowErrorPolicy,
) -> Result<(Vec<RecordBatch>, Vec<RowError>), ChunkError> {
    let (mut batch, sources) = split_sources(&batches)?;
    let target = output_target(task, &batch)?;
    let target_arrow = schema_from_json(&target)?;
    let mut skipped = Vec::new();
    // The input row of each output row left.
    let mut kept: Vec<u64> = sources.clone();
    if let Some((row, column)) = first_null_in_required(&batch, &target_arrow) {
        let ty = flywheel_formats::Field::from_arrow(
            target_arrow
                .field_with_name(&column)
                .map_err(|e| invalid(e.to_string()))?,
        )
        .map(|f| f.ty.to_string())
        .unwrap_or_default();
        let what = null_in_required(
            &format!(
                "output row {row} (from input {})",
                input_row(task, sources[row])
            ),
            &column,
            &ty,
        );
        if policy == RowErrorPolicy::Fail {
            return Err(invalid(what));
        }
        (batch, kept, skipped) = drop_null_rows(&batch, &target_arrow, &sources)?;
    }
    let out = conform_rows(vec![batch], &target, &|r| match kept.get(r) {
        Some(s) => format!("output row {r} (from input {})", input_row(task, *s)),
        None => format!("output row {r}"),
    })?;
    Ok((out, skipped))
}

fn invalid(why: String) -> ChunkError {
    ChunkError::new(FailureKind::InvalidOutput, why)
}

/// The mapper's Arrow batches as one batch without its `__flywheel_in` column, and that column:
/// the input row of each output row.
fn split_sources(batches: &[RecordBatch]) -> Result<(RecordBatch, Vec<u64>), ChunkError> {
    let mut batch = arrow::compute::concat_batches(&batches[0].schema(), batches)
        .map_err(|e| invalid(format!("mapper output batches disagree: {e}")))?;
    let in_idx = batch
        .schema()
        .index_of(IN_COLUMN)
        .map_err(|_| invalid(format!("mapper output lacks the {IN_COLUMN} column")))?;
    let sources: Vec<u64> = batch
        .column(in_idx)
        .as_any()
        .downcast_ref::<arrow::array::UInt64Array>()
        .map(|a| a.values().to_vec())
        .ok_or_else(|| invalid(format!("{IN_COLUMN} is not uint64")))?;
    batch.remove_column(in_idx);
    Ok((batch, sources))
}

/// The schema (as JSON) the output is cast to: the table's when fixed, else the one inferred from
/// the batch, every column nullable.
fn output_target(task: &ChunkTask, batch: &RecordBatch) -> Result<String, ChunkError> {
    if let Some(json) = &task.schema {
        return Ok(json.to_string());
    }
    let inferred = FlywheelSchema::from_arrow(&batch.schema()).ok_or_else(|| {
        invalid(format!(
            "mapper output has a column type flywheel cannot store: {}",
            batch.schema()
        ))
    })?;
    let nullable = FlywheelSchema {
        fields: inferred
            .fields
            .into_iter()
            .map(|f| flywheel_formats::Field {
                nullable: true,
                ..f
            })
            .collect(),
    };
    Ok(schema_to_json(&nullable.to_arrow()))
}

/// The first (row, column) holding a null in a column the target requires.
fn first_null_in_required(
    batch: &RecordBatch,
    target: &arrow::datatypes::Schema,
) -> Option<(usize, String)> {
    let mut bad_rows: Vec<(usize, String)> = Vec::new();
    for f in target.fields().iter().filter(|f| !f.is_nullable()) {
        if let Some(col) = batch.column_by_name(f.name()) {
            if let Some(row) = (0..col.len()).find(|i| col.is_null(*i)) {
                bad_rows.push((row, f.name().clone()));
            }
        }
    }
    bad_rows.into_iter().min()
}

/// Skip: leaves out every row with a null in a non-nullable column; returns the rows kept, the
/// input row of each, and one row error per row left out.
fn drop_null_rows(
    batch: &RecordBatch,
    target: &arrow::datatypes::Schema,
    sources: &[u64],
) -> Result<(RecordBatch, Vec<u64>, Vec<RowError>), ChunkError> {
    let mut skipped = Vec::new();
    let mut keep = vec![true; batch.num_rows()];
    for f in target.fields().iter().filter(|f| !f.is_nullable()) {
        if let Some(col) = batch.column_by_name(f.name()) {
            for i in (0..col.len()).filter(|i| col.is_null(*i)) {
                if keep[i] {
                    keep[i] = false;
                    skipped.push(RowError {
                        row: sources[i],
                        rows: 1,
                        message: format!("invalid output: column '{}' is null", f.name()),
                        traceback: String::new(),
                    });
                }
            }
        }
    }
    let kept = sources
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(s, _)| *s)
        .collect();
    let batch = arrow::compute::filter_record_batch(batch, &arrow::array::BooleanArray::from(keep))
        .map_err(|e| invalid(e.to_string()))?;
    Ok((batch, kept, skipped))
}

#[cfg(test)]
mod tests;

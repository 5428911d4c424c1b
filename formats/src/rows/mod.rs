//! Rows as JSON values (what mappers yield) → Arrow record batches, validated against a schema.
//!
//! Every row is checked before anything is built, so a violation names its row and column:
//! types, nullability, vector length, tensor shape, JSON that must parse, and media bytes that
//! must be of their column's kind. Bytes travel in JSON as `{"__bytes__": "<base64>"}`.
//! Without a user schema, [`infer_schema`] derives one from the rows (every column nullable).

mod build;
mod check;
mod infer;
#[cfg(test)]
mod tests;

pub use infer::{infer_schema, unify, Conflict};

use crate::schema::Schema;
use arrow::record_batch::RecordBatch;
use base64::Engine;
use serde_json::Value;
use std::sync::Arc;

/// The key of the JSON object that carries bytes: `{"__bytes__": "<base64>"}`.
pub const BYTES_KEY: &str = "__bytes__";

/// A row that does not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("row {row}, column '{column}': expected {expected}, got {got}")]
pub struct Violation {
    /// Index of the row among the rows given.
    pub row: usize,
    pub column: String,
    pub expected: String,
    pub got: String,
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("bool {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.chars().count() > 40 => {
            format!("string \"{}…\"", s.chars().take(40).collect::<String>())
        }
        Value::String(s) => format!("string {s:?}"),
        Value::Array(a) => format!("a list of {} items", a.len()),
        Value::Object(o) if o.contains_key(BYTES_KEY) => "bytes".into(),
        Value::Object(_) if special_float(v).is_some() => {
            format!("number {}", special_float(v).unwrap_or_default())
        }
        Value::Object(o) => format!(
            "an object with keys {}",
            o.keys()
                .take(5)
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Decodes `{"__bytes__": base64}`.
fn bytes_of(v: &Value) -> Option<Vec<u8>> {
    let o = v.as_object()?;
    if o.len() != 1 {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(o.get(BYTES_KEY)?.as_str()?)
        .ok()
}

fn parse_date(s: &str) -> Option<i32> {
    let d = chrono::NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from((d - epoch).num_days()).ok()
}

fn parse_timestamp(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_f64().map(|s| (s * 1e6).round() as i64),
        Value::String(s) => {
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                return Some(t.timestamp_micros());
            }
            for fmt in [
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M:%S",
                "%Y-%m-%dT%H:%M:%S",
            ] {
                if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
                    return Some(t.and_utc().timestamp_micros());
                }
            }
            parse_date(s).map(|d| i64::from(d) * 86_400_000_000)
        }
        _ => None,
    }
}

/// Validates `rows` against `schema` and builds one batch. Rows must be JSON objects; keys not
/// in the schema are violations too.
pub fn rows_to_batch(rows: &[Value], schema: &Schema) -> Result<RecordBatch, Violation> {
    for (i, row) in rows.iter().enumerate() {
        let Some(obj) = row.as_object() else {
            return Err(Violation {
                row: i,
                column: String::new(),
                expected: "an object".into(),
                got: describe(row),
            });
        };
        if let Some(extra) = obj.keys().find(|k| schema.field(k).is_none()) {
            return Err(Violation {
                row: i,
                column: extra.clone(),
                expected: "no such column (not in the table schema)".into(),
                got: describe(&obj[extra]),
            });
        }
        for f in &schema.fields {
            check::check(obj.get(&f.name), &f.ty, f.nullable).map_err(|(expected, got)| {
                Violation {
                    row: i,
                    column: f.name.clone(),
                    expected,
                    got,
                }
            })?;
        }
    }
    let arrow_schema = Arc::new(schema.to_arrow());
    let columns = schema
        .fields
        .iter()
        .map(|f| {
            let values: Vec<Option<&Value>> = rows
                .iter()
                .map(|r| r.get(&f.name).filter(|v| !v.is_null()))
                .collect();
            build::build(&f.ty, &values)
        })
        .collect::<Vec<_>>();
    let options = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows.len()));
    RecordBatch::try_new_with_options(arrow_schema, columns, &options).map_err(|e| Violation {
        row: 0,
        column: String::new(),
        expected: "rows that fit the schema".into(),
        got: e.to_string(),
    })
}

/// NaN and the infinities, which JSON cannot write as numbers, travel as
/// `{"__float__": "nan" | "inf" | "-inf"}` (Python's runner writes them so).
pub const FLOAT_KEY: &str = "__float__";

fn special_float(v: &Value) -> Option<f64> {
    let o = v.as_object()?;
    if o.len() != 1 {
        return None;
    }
    match o.get(FLOAT_KEY)?.as_str()? {
        "nan" | "NaN" => Some(f64::NAN),
        "inf" | "Infinity" => Some(f64::INFINITY),
        "-inf" | "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// A float value: a JSON number or a NaN/infinity marker.
fn as_float(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| special_float(v))
}

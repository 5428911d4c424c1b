//! Values for people: one place that turns Arrow values into text and JSON, whatever layout
//! (string, large string, string view; binary, large, fixed-size, view) holds them.
//!
//! - [`to_json`]: a value as JSON (`json` columns parsed, bytes and media summarised), for
//!   `table show` and CSV output of nested query results.
//! - [`cell`]: a value as one short table cell, for `table head` and `query`.
//! - [`brief`]: a JSON value (a statistic, a top value) as a short cell, for `table stats`.
//! - [`pretty`], [`aligned`], [`align`]: layout of JSON and of tables of cells.
//! - [`type_text`], [`schema_text`]: types in flywheel's schema language.

use crate::Found;
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, Schema as ArrowSchema};
use arrow::record_batch::RecordBatch;
use flywheel_formats::TYPE_KEY;
use serde_json::{json, Value};

/// The widest a [`cell`] gets, in characters.
pub const CELL: usize = 48;
/// The widest a [`brief`] gets, in characters.
pub const BRIEF: usize = 24;

/// Whether a column holds JSON text (a `json` column of flywheel's schema language).
pub fn is_json_field(f: &Field) -> bool {
    f.metadata().get(TYPE_KEY).map(String::as_str) == Some("json")
}

/// Element `i` of a string column, whichever of Arrow's string layouts it has.
pub fn text_at(col: &dyn Array, i: usize) -> Option<&str> {
    Some(match col.data_type() {
        DataType::Utf8 => col.as_string::<i32>().value(i),
        DataType::LargeUtf8 => col.as_string::<i64>().value(i),
        DataType::Utf8View => col.as_string_view().value(i),
        _ => return None,
    })
}

/// Element `i` of a bytes column, whichever of Arrow's binary layouts it has (binary, large,
/// fixed-size or view).
pub fn bytes_at(col: &dyn Array, i: usize) -> Option<&[u8]> {
    Some(match col.data_type() {
        DataType::Binary => col.as_binary::<i32>().value(i),
        DataType::LargeBinary => col.as_binary::<i64>().value(i),
        DataType::FixedSizeBinary(_) => col.as_fixed_size_binary().value(i),
        DataType::BinaryView => col.as_binary_view().value(i),
        _ => return None,
    })
}

/// Media and bytes in a readable line: `<image/png 12.3 KiB>`, `<bytes 16 B>`.
pub fn bytes_summary(b: &[u8]) -> String {
    let size = if b.len() >= 1024 * 1024 {
        format!("{:.1} MiB", b.len() as f64 / (1024.0 * 1024.0))
    } else if b.len() >= 1024 {
        format!("{:.1} KiB", b.len() as f64 / 1024.0)
    } else {
        format!("{} B", b.len())
    };
    match flywheel_formats::sniff(b) {
        Some((_, mime)) => format!("<{mime} {size}>"),
        None => format!("<bytes {size}>"),
    }
}

/// Arrow's own text for element `i` (empty when Arrow has none).
fn display(col: &dyn Array, i: usize) -> String {
    arrow::util::display::array_value_to_string(col, i).unwrap_or_default()
}

/// Element `i` of `col` as JSON for people: `json` columns parsed, bytes summarised.
pub fn to_json(field: &Field, col: &dyn Array, i: usize) -> Value {
    if col.is_null(i) {
        return Value::Null;
    }
    let shown = || {
        arrow::util::display::array_value_to_string(col, i)
            .map(Value::String)
            .unwrap_or(Value::Null)
    };
    let cast = |to: &DataType| arrow::compute::cast(&col.slice(i, 1), to).ok();
    match col.data_type() {
        DataType::Boolean => json!(col.as_boolean().value(i)),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            match cast(&DataType::Int64) {
                Some(a) => json!(a.as_primitive::<arrow::datatypes::Int64Type>().value(0)),
                None => shown(),
            }
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            match cast(&DataType::UInt64) {
                Some(a) => json!(a.as_primitive::<arrow::datatypes::UInt64Type>().value(0)),
                None => shown(),
            }
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            match cast(&DataType::Float64) {
                Some(a) => {
                    let x = a.as_primitive::<arrow::datatypes::Float64Type>().value(0);
                    serde_json::Number::from_f64(x)
                        .map_or_else(|| json!(x.to_string()), Value::Number)
                }
                None => shown(),
            }
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = text_at(col, i).unwrap_or_default();
            if is_json_field(field) {
                serde_json::from_str(text).unwrap_or_else(|_| json!(text))
            } else {
                json!(text)
            }
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::FixedSizeBinary(_)
        | DataType::BinaryView => json!(bytes_summary(bytes_at(col, i).unwrap_or_default())),
        DataType::List(f) => list_json(f, &col.as_list::<i32>().value(i)),
        DataType::LargeList(f) => list_json(f, &col.as_list::<i64>().value(i)),
        DataType::FixedSizeList(f, _) => list_json(f, &col.as_fixed_size_list().value(i)),
        DataType::Map(entry, _) => match entry.data_type() {
            DataType::Struct(f) if f.len() == 2 => map_json(&f[0], &f[1], &col.as_map().value(i)),
            _ => shown(),
        },
        DataType::Struct(fields) => {
            let s = col.as_struct();
            Value::Object(
                fields
                    .iter()
                    .zip(s.columns())
                    .map(|(f, c)| (f.name().clone(), to_json(f, c.as_ref(), i)))
                    .collect(),
            )
        }
        _ => shown(),
    }
}

fn list_json(f: &Field, items: &ArrayRef) -> Value {
    Value::Array(
        (0..items.len())
            .map(|k| to_json(f, items.as_ref(), k))
            .collect(),
    )
}

/// A map's entries as a JSON object (keys as text).
fn map_json(key: &Field, value: &Field, entries: &arrow::array::StructArray) -> Value {
    Value::Object(
        (0..entries.len())
            .map(|k| {
                let name = map_key(key, entries.column(0).as_ref(), k);
                (name, to_json(value, entries.column(1).as_ref(), k))
            })
            .collect(),
    )
}

/// A map's key `k` as shown (and as a path names it): the key's rendering, without quotes
/// when it is text.
pub(crate) fn map_key(key: &Field, keys: &dyn Array, k: usize) -> String {
    match to_json(key, keys, k) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// The bytes `table show --raw` writes for a found value: bytes as they are, text without
/// quotes, anything else as compact JSON.
pub fn raw_bytes(found: &Found) -> Vec<u8> {
    match found {
        Found::Arrow(field, a) if !a.is_null(0) => {
            match (bytes_at(a.as_ref(), 0), text_at(a.as_ref(), 0)) {
                (Some(b), _) => b.to_vec(),
                (_, Some(t)) if !is_json_field(field) => t.as_bytes().to_vec(),
                _ => to_json(field, a.as_ref(), 0).to_string().into_bytes(),
            }
        }
        Found::Arrow(..) => b"null".to_vec(),
        Found::Json(Value::String(s)) => s.as_bytes().to_vec(),
        Found::Json(v) => v.to_string().into_bytes(),
    }
}

/// Pretty JSON where arrays of plain numbers stay on one line (a 1,536-wide vector is one line,
/// not 1,536).
pub fn pretty(v: &Value) -> String {
    let mut out = String::new();
    pretty_into(v, 0, &mut out);
    out
}

fn pretty_into(v: &Value, indent: usize, out: &mut String) {
    let pad = |n: usize| "  ".repeat(n);
    match v {
        Value::Array(a) if a.is_empty() => out.push_str("[]"),
        Value::Array(a)
            if a.iter()
                .all(|x| x.is_number() || x.is_null() || x.is_boolean()) =>
        {
            out.push_str(&v.to_string().replace(',', ", "))
        }
        Value::Array(a) => {
            out.push_str("[\n");
            for (k, item) in a.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                pretty_into(item, indent + 1, out);
                out.push_str(if k + 1 < a.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push(']');
        }
        Value::Object(m) if m.is_empty() => out.push_str("{}"),
        Value::Object(m) => {
            out.push_str("{\n");
            for (k, (key, item)) in m.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                out.push_str(&Value::String(key.clone()).to_string());
                out.push_str(": ");
                pretty_into(item, indent + 1, out);
                out.push_str(if k + 1 < m.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// `s` cut to `width` characters (the last one an ellipsis), line breaks shown as `⏎`.
fn cut(s: &str, width: usize) -> String {
    let s = s.replace('\n', "⏎");
    if s.chars().count() > width {
        format!("{}…", s.chars().take(width - 1).collect::<String>())
    } else {
        s
    }
}

/// Element `i` of `col` as one short cell: media and bytes as `<image/png 12.3 KiB>`, vectors
/// abbreviated, time zones shown as UTC, long text cut to [`CELL`] characters.
pub fn cell(col: &dyn Array, i: usize) -> String {
    if col.is_null(i) {
        return "null".to_string();
    }
    if let Some(b) = bytes_at(col, i) {
        return bytes_summary(b);
    }
    match col.data_type() {
        DataType::FixedSizeList(_, n) => {
            let values = col.as_fixed_size_list().value(i);
            let shown: Vec<String> = (0..(*n as usize).min(3))
                .map(|k| display(&values, k))
                .collect();
            format!("[{}, … {n} values]", shown.join(", "))
        }
        // Shown in UTC without needing the time-zone database.
        DataType::Timestamp(unit, Some(_)) => {
            let naive = arrow::compute::cast(&col.slice(i, 1), &DataType::Timestamp(*unit, None));
            naive
                .ok()
                .and_then(|a| arrow::util::display::array_value_to_string(&a, 0).ok())
                .map(|s| format!("{s}Z"))
                .unwrap_or_default()
        }
        _ => cut(&display(col, i), CELL),
    }
}

/// A JSON value (a statistic, a top value) as a short cell: strings without quotes, fractions
/// to at most six places, cut to [`BRIEF`] characters.
pub fn brief(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(x) if n.is_f64() => format!("{x:.6}")
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string(),
            _ => n.to_string(),
        },
        other => other.to_string(),
    };
    cut(&s, BRIEF)
}

/// Columns `wanted` of `batches` as an aligned table of [`cell`]s under a header line.
pub fn aligned(schema: &ArrowSchema, batches: &[RecordBatch], wanted: &[usize]) -> String {
    let mut rows: Vec<Vec<String>> = vec![wanted
        .iter()
        .map(|i| schema.field(*i).name().clone())
        .collect()];
    for b in batches {
        for r in 0..b.num_rows() {
            rows.push(
                wanted
                    .iter()
                    .map(|c| cell(b.column(*c).as_ref(), r))
                    .collect(),
            );
        }
    }
    align(&rows)
}

/// Rows of cells as lines whose columns line up (cells padded to their column's width, two
/// spaces between columns, no trailing blanks).
pub fn align(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|v| v.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A column's type in flywheel's language (Arrow's name where the language has none), `?` when
/// nullable.
pub fn type_text(f: &Field) -> String {
    let optional = |nullable: bool| if nullable { "?" } else { "" };
    match flywheel_formats::Field::from_arrow(f) {
        Some(ff) => format!("{}{}", ff.ty, optional(ff.nullable)),
        None => format!("{}{}", f.data_type(), optional(f.is_nullable())),
    }
}

/// A manifest's schema (Arrow's JSON) in flywheel's language, columns separated by ` | `
/// (Arrow's type names for columns the language cannot express; the JSON text itself when it
/// is not a schema).
pub fn schema_text(schema: &Value) -> String {
    let Ok(arrow) = serde_json::from_value::<ArrowSchema>(schema.clone()) else {
        return schema.to_string();
    };
    if let Some(s) = flywheel_formats::Schema::from_arrow(&arrow) {
        return s.to_string();
    }
    arrow
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), type_text(f)))
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BinaryArray, FixedSizeBinaryArray, LargeBinaryArray, StringArray};

    #[test]
    fn pretty_keeps_number_arrays_on_one_line() {
        let v = json!({"v": [1, 2.5, 3], "t": [{"a": 1}]});
        assert_eq!(
            pretty(&v),
            "{\n  \"v\": [1, 2.5, 3],\n  \"t\": [\n    {\n      \"a\": 1\n    }\n  ]\n}"
        );
    }

    #[test]
    fn every_binary_layout_renders_alike_in_cells_and_json() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let columns: Vec<ArrayRef> = vec![
            std::sync::Arc::new(BinaryArray::from_vec(vec![png])),
            std::sync::Arc::new(LargeBinaryArray::from_vec(vec![png])),
            std::sync::Arc::new(
                FixedSizeBinaryArray::try_from_iter([png.as_slice()].into_iter())
                    .expect("one value"),
            ),
            std::sync::Arc::new(arrow::array::BinaryViewArray::from_iter_values([png])),
        ];
        for col in &columns {
            let field = Field::new("b", col.data_type().clone(), true);
            assert_eq!(cell(col.as_ref(), 0), "<image/png 16 B>", "{field}");
            assert_eq!(to_json(&field, col.as_ref(), 0), json!("<image/png 16 B>"));
        }
    }

    #[test]
    fn cells_and_briefs_are_cut_and_keep_lines_visible() {
        let long = "x".repeat(60) + "\ny";
        let col = StringArray::from(vec![Some(long.as_str()), None]);
        let c = cell(&col, 0);
        assert_eq!(c.chars().count(), CELL);
        assert!(c.ends_with('…') && !c.contains('\n'), "{c}");
        assert_eq!(cell(&col, 1), "null");
        assert_eq!(brief(&json!("a\nb")), "a⏎b");
        assert_eq!(brief(&json!(0.125)), "0.125");
        assert_eq!(brief(&json!(1.0 / 3.0)), "0.333333");
        assert_eq!(
            align(&[
                vec!["a".into(), "bb".into()],
                vec!["ccc".into(), "d".into()]
            ]),
            "a    bb\nccc  d\n"
        );
    }
}

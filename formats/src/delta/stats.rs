//! A data file's statistics as Delta `add.stats`: `numRecords`, and per top-level column
//! `nullCount` (not for nested columns: Delta counts their leaves), with `minValues` / `maxValues` where flywheel's bounds are exact in Delta's
//! terms (integers that fit a `long`, strings). Float bounds are left out (flywheel's skip NaN,
//! Delta's would not), and so are columns flywheel keeps no bounds for.

use crate::{ColumnStats, DataFile};
use arrow::datatypes::{DataType, Schema};
use serde_json::{json, Map, Value};

/// The `stats` JSON text of `file`, a file of a table with `schema`.
pub fn add_stats(file: &DataFile, schema: &Schema) -> String {
    let mut nulls = Map::new();
    let mut mins = Map::new();
    let mut maxs = Map::new();
    for s in file.stats.iter().flatten() {
        let Ok(field) = schema.field_with_name(&s.name) else {
            continue;
        };
        if field.data_type().is_nested() {
            // Delta keeps nested columns' counts per leaf; flywheel has them per column.
            continue;
        }
        nulls.insert(s.name.clone(), json!(s.nulls));
        if let Some((lo, hi)) = bounds(s, field.data_type()) {
            mins.insert(s.name.clone(), lo);
            maxs.insert(s.name.clone(), hi);
        }
    }
    json!({
        "numRecords": file.rows,
        "minValues": mins,
        "maxValues": maxs,
        "nullCount": nulls,
    })
    .to_string()
}

/// Bounds Delta can use to skip files without ever skipping a matching row.
fn bounds(s: &ColumnStats, dt: &DataType) -> Option<(Value, Value)> {
    let (lo, hi) = (s.min.clone()?, s.max.clone()?);
    let keep = match dt {
        DataType::Utf8 | DataType::LargeUtf8 => lo.is_string() && hi.is_string(),
        dt if dt.is_integer() => lo.is_i64() && hi.is_i64(),
        _ => false,
    };
    keep.then_some((lo, hi))
}

//! Following a path into one row of a version (`table show ROW --path P`).

use crate::render::{is_json_field, text_at, to_json};
use crate::{parse_path, path_text, ExploreError, Step};
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field};
use arrow::record_batch::RecordBatch;
use flywheel_formats::{FormatError, Manifest, Table};
use serde_json::Value;

/// What a path led to: an Arrow value (a one-element array with its field) or a JSON value
/// inside a `json` column.
#[derive(Debug)]
pub enum Found {
    /// A value of the table's own columns: a one-element array and the field describing it.
    Arrow(Field, ArrayRef),
    /// A value inside a `json` column's text (or a whole row, as an object of its columns).
    Json(Value),
}

impl Found {
    /// The value as JSON for people (see [`to_json`]).
    pub fn to_json(&self) -> Value {
        match self {
            Found::Arrow(f, a) => to_json(f, a.as_ref(), 0),
            Found::Json(v) => v.clone(),
        }
    }
}

/// Why a path leads nowhere: the deepest prefix that exists and what is there instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}{}", deepest_text(.deepest))]
pub struct PathMiss {
    /// The longest prefix of the path that leads to a value (empty when not even the column
    /// exists).
    pub deepest: String,
    /// What is at `deepest` instead of what the next step asks for.
    pub reason: String,
}

fn deepest_text(deepest: &str) -> String {
    if deepest.is_empty() {
        String::new()
    } else {
        format!("; the deepest part that exists is '{deepest}'")
    }
}

/// Row `row` (0-based, in table order) of a version, as a one-row batch.
pub fn read_row(table: &Table, manifest: &Manifest, row: u64) -> Result<RecordBatch, FormatError> {
    let batches = table.read_rows(manifest, row..row + 1)?;
    batches
        .into_iter()
        .find(|b| b.num_rows() == 1)
        .ok_or(FormatError::NoSuchRow {
            row,
            rows: manifest.num_rows,
        })
}

/// Row `row` of a version as a JSON object of its columns (`path` `None`), or the value `path`
/// leads to in it.
pub fn value_at(
    table: &Table,
    manifest: &Manifest,
    row: u64,
    path: Option<&str>,
) -> Result<Found, ExploreError> {
    let batch = read_row(table, manifest, row)?;
    let Some(path) = path else {
        let schema = batch.schema();
        let columns = schema.fields().iter().zip(batch.columns());
        return Ok(Found::Json(Value::Object(
            columns
                .map(|(f, c)| (f.name().clone(), to_json(f, c.as_ref(), 0)))
                .collect(),
        )));
    };
    let steps = parse_path(path)?;
    navigate(&batch, &steps).map_err(|miss| ExploreError::NoValue {
        path: path.to_string(),
        row,
        table: format!("{}@{}", table.dir().display(), manifest.version),
        miss,
    })
}

/// Follows `steps` into row 0 of `batch`.
pub fn navigate(batch: &RecordBatch, steps: &[Step]) -> Result<Found, PathMiss> {
    let schema = batch.schema();
    let miss = |deepest: String, reason: String| PathMiss { deepest, reason };
    let Some(Step::Key(column)) = steps.first() else {
        return Err(miss(
            String::new(),
            "the path must start with a column name".into(),
        ));
    };
    let Ok(index) = schema.index_of(column) else {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        return Err(miss(
            String::new(),
            format!("no column '{column}' (columns: {})", names.join(", ")),
        ));
    };
    let mut field = schema.field(index).clone();
    let mut value: ArrayRef = batch.column(index).slice(0, 1);
    for (depth, step) in steps.iter().enumerate().skip(1) {
        let here = path_text(&steps[..depth]);
        if value.is_null(0) {
            return Err(miss(here.clone(), format!("'{here}' is null")));
        }
        if is_json_field(&field) {
            let text = text_at(value.as_ref(), 0).map(str::to_string);
            let parsed: Value = text
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null);
            return navigate_json(parsed, steps, depth).map(Found::Json);
        }
        (field, value) =
            step_into(&field, &value, step, &here).map_err(|reason| miss(here.clone(), reason))?;
    }
    Ok(Found::Arrow(field, value))
}

/// One step into the single value `value` (described by `field`, found at path `here`): its
/// member, entry or item with the field that describes that; or why there is none.
fn step_into(
    field: &Field,
    value: &ArrayRef,
    step: &Step,
    here: &str,
) -> Result<(Field, ArrayRef), String> {
    match (step, value.data_type()) {
        (Step::Key(k), DataType::Struct(fields)) => {
            let Some(i) = fields.iter().position(|f| f.name() == k) else {
                let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
                return Err(format!(
                    "'{here}' is a struct with fields {}, not '{k}'",
                    names.join(", ")
                ));
            };
            Ok((
                fields[i].as_ref().clone(),
                value.as_struct().column(i).slice(0, 1),
            ))
        }
        (Step::Key(k), DataType::Map(entry, _)) => map_entry(field, value, entry, k, here),
        (
            Step::Index(n),
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _),
        ) => {
            let items = match value.data_type() {
                DataType::List(_) => value.as_list::<i32>().value(0),
                DataType::LargeList(_) => value.as_list::<i64>().value(0),
                _ => value.as_fixed_size_list().value(0),
            };
            if *n >= items.len() {
                return Err(format!("'{here}' is a list of {} items", items.len()));
            }
            Ok((f.as_ref().clone(), items.slice(*n, 1)))
        }
        (_, dt) => {
            let what = match dt {
                DataType::Struct(_) => "a struct (use .field)".to_string(),
                DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
                    "a list (use [index])".to_string()
                }
                other => format!("a {other} value"),
            };
            Err(format!("'{here}' is {what}"))
        }
    }
}

/// The value under key `k` of the single map `value` (described by `field`, at `here`).
fn map_entry(
    field: &Field,
    value: &ArrayRef,
    entry: &Field,
    k: &str,
    here: &str,
) -> Result<(Field, ArrayRef), String> {
    let e = value.as_map().value(0);
    let key_field = match entry.data_type() {
        DataType::Struct(f) => f.first().map(|kf| kf.as_ref().clone()),
        _ => None,
    }
    .unwrap_or_else(|| Field::new("key", e.column(0).data_type().clone(), false));
    let keys: Vec<String> = (0..e.len())
        .map(|j| crate::render::map_key(&key_field, e.column(0).as_ref(), j))
        .collect();
    let Some(j) = keys.iter().position(|x| x == k) else {
        return Err(format!(
            "'{here}' is a map with keys {}, not '{k}'",
            keys.join(", ")
        ));
    };
    let value_field = match entry.data_type() {
        DataType::Struct(f) => f.get(1).map(|vf| vf.as_ref().clone()),
        _ => None,
    };
    Ok((
        value_field.unwrap_or_else(|| field.clone()),
        e.column(1).slice(j, 1),
    ))
}

fn navigate_json(mut v: Value, steps: &[Step], from: usize) -> Result<Value, PathMiss> {
    for depth in from..steps.len() {
        let here = path_text(&steps[..depth]);
        let next = match (&steps[depth], &mut v) {
            (Step::Key(k), Value::Object(m)) => m.remove(k),
            (Step::Index(n), Value::Array(a)) if *n < a.len() => Some(a.swap_remove(*n)),
            _ => None,
        };
        match next {
            Some(n) => v = n,
            None => {
                return Err(PathMiss {
                    reason: format!("'{here}' is {}", describe_json(&v)),
                    deepest: here,
                })
            }
        }
    }
    Ok(v)
}

/// A JSON value in a few words, for a path that cannot step into it.
fn describe_json(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let keys: Vec<&str> = m.keys().map(String::as_str).take(12).collect();
            format!(
                "an object with keys {}{}",
                keys.join(", "),
                if m.len() > 12 { ", …" } else { "" }
            )
        }
        Value::Array(a) => format!("an array of {} items", a.len()),
        Value::Null => "null".into(),
        Value::String(_) => "a string".into(),
        Value::Number(_) => "a number".into(),
        Value::Bool(_) => "a boolean".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use flywheel_formats::TYPE_KEY;
    use serde_json::json;
    use std::sync::Arc;

    fn json_batch(text: &str) -> RecordBatch {
        let mut md = std::collections::HashMap::new();
        md.insert(TYPE_KEY.to_string(), "json".to_string());
        let field = Field::new("meta", DataType::Utf8, true).with_metadata(md);
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            field,
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![7])),
                Arc::new(StringArray::from(vec![text])),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn json_columns_are_navigable_and_misses_name_the_deepest_prefix() {
        let b = json_batch(r#"{"turns": [{"text": "hi"}, {"text": "yo", "tags": ["a"]}]}"#);
        let path = |p: &str| parse_path(p).expect("parses");
        match navigate(&b, &path("meta.turns[1].tags[0]")) {
            Ok(Found::Json(v)) => assert_eq!(v, json!("a")),
            other => panic!("unexpected {other:?}"),
        }
        let miss = navigate(&b, &path("meta.turns[5].text")).expect_err("no such item");
        assert_eq!(miss.deepest, "meta.turns");
        assert!(miss.reason.contains("array of 2 items"), "{}", miss.reason);
        let miss = navigate(&b, &path("meta.turns[0].who")).expect_err("no such key");
        assert_eq!(miss.deepest, "meta.turns[0]");
        assert!(miss.reason.contains("keys text"), "{}", miss.reason);
        let miss = navigate(&b, &path("nope")).expect_err("no such column");
        assert!(miss.reason.contains("columns: id, meta"), "{}", miss.reason);
        let miss = navigate(&b, &path("id.x")).expect_err("scalar");
        assert_eq!(miss.deepest, "id");
        assert_eq!(
            miss.to_string(),
            "'id' is a Int64 value; the deepest part that exists is 'id'"
        );
    }
}

//! Rows as JSON values (what mappers yield) → Arrow record batches, validated against a schema.
//!
//! Every row is checked before anything is built, so a violation names its row and column:
//! types, nullability, vector length, tensor shape, JSON that must parse, and media bytes that
//! must be of their column's kind. Bytes travel in JSON as `{"__bytes__": "<base64>"}`.
//! Without a user schema, [`infer_schema`] derives one from the rows (every column nullable).

use crate::media::{sniff, MediaKind};
use crate::schema::{Field, FieldType, Schema, Type, VecElem};
use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, FixedSizeListArray, Float16Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, Int8Builder,
    ListArray, MapArray, StringBuilder, StructArray, TimestampMicrosecondBuilder, UInt16Builder,
    UInt32Builder, UInt64Builder, UInt8Builder,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field as ArrowField};
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

fn int_fits(v: &Value, signed: bool, bits: u8) -> bool {
    if signed {
        v.as_i64()
            .is_some_and(|i| bits == 64 || (i >= -(1i64 << (bits - 1)) && i < (1i64 << (bits - 1))))
    } else {
        v.as_u64().is_some_and(|u| bits == 64 || u < (1u64 << bits))
    }
}

/// Flattens nested arrays of numbers into `out`, checking the shape.
fn flatten_tensor<'a>(v: &'a Value, dims: &[usize], out: &mut Vec<&'a Value>) -> bool {
    match (dims.split_first(), v) {
        (None, x) => {
            out.push(x);
            true
        }
        (Some((d, rest)), Value::Array(items)) if items.len() == *d => {
            items.iter().all(|i| flatten_tensor(i, rest, out))
        }
        _ => false,
    }
}

/// The values of a tensor cell, flat, if it has the shape (nested, or already flat).
fn tensor_values<'a>(v: &'a Value, dims: &[usize]) -> Option<Vec<&'a Value>> {
    let mut out = Vec::new();
    if flatten_tensor(v, dims, &mut out) {
        return Some(out);
    }
    let total: usize = dims.iter().product();
    match v {
        Value::Array(items)
            if items.len() == total && dims.len() > 1 && items.iter().all(|i| !i.is_array()) =>
        {
            Some(items.iter().collect())
        }
        _ => None,
    }
}

/// Checks one value (`None` = missing) against a type; the error says what was wrong.
fn check(v: Option<&Value>, ty: &Type, nullable: bool) -> Result<(), (String, String)> {
    let expected = || format!("{ty}{}", if nullable { "?" } else { "" });
    let v = match v {
        None | Some(Value::Null) if nullable => return Ok(()),
        None => {
            return Err((
                expected(),
                "no value (the column is missing; make it nullable with '?')".into(),
            ))
        }
        Some(Value::Null) => {
            return Err((
                expected(),
                "null (the column is not nullable; make it nullable with '?')".into(),
            ))
        }
        Some(v) => v,
    };
    let bad = |got: String| Err((expected(), got));
    let ok = match ty {
        Type::Bool => v.is_boolean(),
        Type::Int(b) => int_fits(v, true, *b),
        Type::UInt(b) => int_fits(v, false, *b),
        Type::Float16 | Type::Float32 | Type::Float64 => as_float(v).is_some(),
        Type::String => v.is_string(),
        Type::Date => v.as_str().and_then(parse_date).is_some(),
        Type::Timestamp => parse_timestamp(v).is_some(),
        Type::Any => true,
        Type::Json => match v {
            Value::String(s) => {
                if let Err(e) = serde_json::from_str::<Value>(s) {
                    return bad(format!("text that is not JSON ({e})"));
                }
                true
            }
            _ => true,
        },
        Type::Bytes | Type::Blob => bytes_of(v).is_some(),
        Type::Image | Type::Audio | Type::Video => {
            let Some(b) = bytes_of(v) else {
                return bad(describe(v));
            };
            let want = match ty {
                Type::Image => MediaKind::Image,
                Type::Audio => MediaKind::Audio,
                _ => MediaKind::Video,
            };
            return match sniff(&b) {
                Some((k, _)) if k == want => Ok(()),
                Some((_, mime)) => bad(format!("{mime} bytes")),
                None => bad(format!("{} bytes of no known {} format", b.len(), ty)),
            };
        }
        Type::Vector(n, _) => match v {
            Value::Array(a) if a.len() != *n => {
                return bad(format!("a list of {} numbers", a.len()))
            }
            Value::Array(a) => a.iter().all(|x| as_float(x).is_some()),
            _ => false,
        },
        Type::Tensor(t, dims) => match tensor_values(v, dims) {
            Some(vals) => vals.into_iter().all(|x| check(Some(x), t, false).is_ok()),
            None => return bad(format!("{} (shape does not match)", describe(v))),
        },
        Type::List(item) => match v {
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    check(Some(x), &item.ty, item.nullable)
                        .map_err(|(e, g)| (e, format!("{g} at item {i}")))?;
                }
                true
            }
            _ => false,
        },
        Type::Dict(k, val) => match v {
            Value::Object(o) if !o.contains_key(BYTES_KEY) => {
                for (key, x) in o {
                    let key_ok = match &k.ty {
                        Type::String => true,
                        Type::Int(_) | Type::UInt(_) => key.parse::<i64>().is_ok(),
                        _ => false,
                    };
                    if !key_ok {
                        return bad(format!("key {key:?}, which is not a {}", k.ty));
                    }
                    check(Some(x), &val.ty, val.nullable)
                        .map_err(|(e, g)| (e, format!("{g} at key {key:?}")))?;
                }
                true
            }
            _ => false,
        },
        Type::Struct(fields) => match v {
            Value::Object(o) if !o.contains_key(BYTES_KEY) => {
                if let Some(extra) = o.keys().find(|k| !fields.iter().any(|f| &f.name == *k)) {
                    return bad(format!("an unknown member '{extra}'"));
                }
                for f in fields {
                    check(o.get(&f.name), &f.ty, f.nullable)
                        .map_err(|(e, g)| (e, format!("{g} in member '{}'", f.name)))?;
                }
                true
            }
            _ => false,
        },
    };
    if ok {
        Ok(())
    } else {
        bad(describe(v))
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
            check(obj.get(&f.name), &f.ty, f.nullable).map_err(|(expected, got)| Violation {
                row: i,
                column: f.name.clone(),
                expected,
                got,
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
            build(&f.ty, &values)
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

fn nulls(values: &[Option<&Value>]) -> Option<NullBuffer> {
    let valid: Vec<bool> = values.iter().map(Option::is_some).collect();
    if valid.iter().all(|v| *v) {
        None
    } else {
        Some(NullBuffer::from(valid))
    }
}

macro_rules! prim {
    ($builder:ty, $values:expr, $conv:expr) => {{
        let mut b = <$builder>::new();
        for v in $values {
            b.append_option(v.and_then($conv));
        }
        Arc::new(b.finish()) as ArrayRef
    }};
}

/// Builds an array of already-validated values (`None` = null).
fn build(ty: &Type, values: &[Option<&Value>]) -> ArrayRef {
    let json_text = |v: &Value| -> Option<String> {
        Some(match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    match ty {
        Type::Bool => prim!(BooleanBuilder, values, |v: &Value| v.as_bool()),
        Type::Int(8) => prim!(Int8Builder, values, |v: &Value| v.as_i64().map(|x| x as i8)),
        Type::Int(16) => prim!(Int16Builder, values, |v: &Value| v
            .as_i64()
            .map(|x| x as i16)),
        Type::Int(32) => prim!(Int32Builder, values, |v: &Value| v
            .as_i64()
            .map(|x| x as i32)),
        Type::Int(_) => prim!(Int64Builder, values, |v: &Value| v.as_i64()),
        Type::UInt(8) => prim!(UInt8Builder, values, |v: &Value| v
            .as_u64()
            .map(|x| x as u8)),
        Type::UInt(16) => prim!(UInt16Builder, values, |v: &Value| v
            .as_u64()
            .map(|x| x as u16)),
        Type::UInt(32) => prim!(UInt32Builder, values, |v: &Value| v
            .as_u64()
            .map(|x| x as u32)),
        Type::UInt(_) => prim!(UInt64Builder, values, |v: &Value| v.as_u64()),
        Type::Float16 => prim!(Float16Builder, values, |v: &Value| as_float(v)
            .map(half::f16::from_f64)),
        Type::Float32 => prim!(Float32Builder, values, |v: &Value| as_float(v)
            .map(|x| x as f32)),
        Type::Float64 => prim!(Float64Builder, values, as_float),
        Type::String => prim!(StringBuilder, values, |v: &Value| v
            .as_str()
            .map(str::to_string)),
        Type::Json => prim!(StringBuilder, values, json_text),
        Type::Any => prim!(StringBuilder, values, |v: &Value| Some(v.to_string())),
        Type::Bytes | Type::Blob | Type::Image | Type::Audio | Type::Video => {
            prim!(BinaryBuilder, values, bytes_of)
        }
        Type::Date => prim!(Date32Builder, values, |v: &Value| v
            .as_str()
            .and_then(parse_date)),
        Type::Timestamp => {
            let mut b =
                TimestampMicrosecondBuilder::with_capacity(values.len()).with_timezone("UTC");
            for v in values {
                b.append_option(v.and_then(parse_timestamp));
            }
            Arc::new(b.finish())
        }
        Type::List(item) => {
            let mut offsets = vec![0i32];
            let mut children: Vec<Option<&Value>> = Vec::new();
            for v in values {
                if let Some(Value::Array(items)) = v {
                    children.extend(items.iter().map(|x| Some(x).filter(|x| !x.is_null())));
                }
                offsets.push(children.len() as i32);
            }
            let field = Arc::new(ArrowField::new("item", item.ty.to_arrow(), item.nullable));
            Arc::new(ListArray::new(
                field,
                OffsetBuffer::new(offsets.into()),
                build(&item.ty, &children),
                nulls(values),
            ))
        }
        Type::Dict(k, val) => {
            let mut offsets = vec![0i32];
            let (mut keys, mut vals): (Vec<Value>, Vec<Option<&Value>>) = (Vec::new(), Vec::new());
            for v in values {
                if let Some(Value::Object(o)) = v {
                    for (key, x) in o {
                        keys.push(match k.ty {
                            Type::String => Value::String(key.clone()),
                            _ => key.parse::<i64>().map(Value::from).unwrap_or(Value::Null),
                        });
                        vals.push(Some(x).filter(|x| !x.is_null()));
                    }
                }
                offsets.push(keys.len() as i32);
            }
            let key_refs: Vec<Option<&Value>> = keys.iter().map(Some).collect();
            let entry_fields = vec![
                ArrowField::new("key", k.ty.to_arrow(), false),
                ArrowField::new("value", val.ty.to_arrow(), val.nullable),
            ];
            let entries = StructArray::new(
                entry_fields.clone().into(),
                vec![build(&k.ty, &key_refs), build(&val.ty, &vals)],
                None,
            );
            let field = Arc::new(ArrowField::new(
                "entries",
                DataType::Struct(entry_fields.into()),
                false,
            ));
            Arc::new(MapArray::new(
                field,
                OffsetBuffer::new(offsets.into()),
                entries,
                nulls(values),
                false,
            ))
        }
        Type::Struct(fields) => {
            let children: Vec<ArrayRef> = fields
                .iter()
                .map(|f| {
                    let vals: Vec<Option<&Value>> = values
                        .iter()
                        .map(|v| v.and_then(|o| o.get(&f.name)).filter(|x| !x.is_null()))
                        .collect();
                    build(&f.ty, &vals)
                })
                .collect();
            if fields.is_empty() {
                // No member to take the length from (a schema's `struct<>`).
                return Arc::new(StructArray::new_empty_fields(values.len(), nulls(values)));
            }
            let arrow_fields: Vec<ArrowField> = fields.iter().map(Field::to_arrow).collect();
            match StructArray::try_new(arrow_fields.clone().into(), children.clone(), nulls(values))
            {
                Ok(a) => Arc::new(a),
                // A non-nullable member of a null struct: arrow wants the member's nulls masked.
                Err(_) => Arc::new(StructArray::new(
                    arrow_fields.into(),
                    children,
                    nulls(values),
                )),
            }
        }
        Type::Vector(n, e) => {
            let zero = Value::from(0);
            let mut flat: Vec<Option<&Value>> = Vec::with_capacity(values.len() * n);
            for v in values {
                match v {
                    Some(Value::Array(a)) => flat.extend(a.iter().map(Some)),
                    _ => flat.extend(std::iter::repeat_n(Some(&zero), *n)),
                }
            }
            let elem = match e {
                VecElem::Fp16 => Type::Float16,
                VecElem::Fp32 => Type::Float32,
                VecElem::Fp64 => Type::Float64,
            };
            let field = Arc::new(ArrowField::new("item", elem.to_arrow(), false));
            Arc::new(FixedSizeListArray::new(
                field,
                *n as i32,
                build(&elem, &flat),
                nulls(values),
            ))
        }
        Type::Tensor(t, dims) => {
            let total: usize = dims.iter().product();
            let zero = Value::from(0);
            let falsy = Value::from(false);
            let filler = if **t == Type::Bool { &falsy } else { &zero };
            let mut flat: Vec<Option<&Value>> = Vec::with_capacity(values.len() * total);
            for v in values {
                match v.and_then(|v| tensor_values(v, dims)) {
                    Some(vals) => flat.extend(vals.into_iter().map(Some)),
                    None => flat.extend(std::iter::repeat_n(Some(filler), total)),
                }
            }
            let field = Arc::new(ArrowField::new("item", t.to_arrow(), false));
            Arc::new(FixedSizeListArray::new(
                field,
                total as i32,
                build(t, &flat),
                nulls(values),
            ))
        }
    }
}

/// Two values of one column whose types cannot be stored as one type (e.g. int and str).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column '{column}' has {first} values (first at {first_at}) and {second} values (first at {second_at}); declare its type with --schema, e.g. --schema '{top}: any?' to keep any JSON value")]
pub struct Conflict {
    /// The column, with the path inside it (`x.a`, `x[]`) where the types disagree.
    pub column: String,
    /// The top-level column.
    pub top: String,
    pub first: String,
    /// Where the first type was seen, in words (`output row 0`, `chunk 3`).
    pub first_at: String,
    pub second: String,
    pub second_at: String,
}

impl Conflict {
    /// The conflict at `path` inside column `top` between type `first` (seen at `first_at`)
    /// and `second` (at `second_at`).
    fn at(
        top: &str,
        (path, first, second): (String, String, String),
        first_at: String,
        second_at: String,
    ) -> Box<Conflict> {
        Box::new(Conflict {
            column: format!("{top}{path}"),
            top: top.to_string(),
            first,
            first_at,
            second,
            second_at,
        })
    }
}

/// A schema for rows yielded without one: columns in order of first appearance, every column
/// nullable. The type of a column is the [`unify`] of its values' types, in row order: numbers
/// that are sometimes fractional are floats, struct members are the union of the members seen,
/// and a column whose values are only nulls, empty lists' items or empty objects is `any`
/// (JSON text). Values of kinds that cannot be one type (int and str) are a [`Conflict`]: the
/// same rule [`unify`] applies across chunks, so where a value falls does not change the result.
pub fn infer_schema(rows: &[Value]) -> Result<Schema, Box<Conflict>> {
    let mut fields: Vec<Field> = Vec::new();
    // Row of the first value of a known type, per column.
    let mut first_row: Vec<Option<usize>> = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        let Some(obj) = row.as_object() else { continue };
        for (k, v) in obj {
            let t = infer_value(v).map_err(|c| {
                Conflict::at(k, c, format!("output row {r}"), format!("output row {r}"))
            })?;
            let i = match fields.iter().position(|f| &f.name == k) {
                Some(i) => i,
                None => {
                    fields.push(Field {
                        name: k.clone(),
                        ty: Type::Any,
                        nullable: true,
                    });
                    first_row.push(None);
                    fields.len() - 1
                }
            };
            fields[i].ty = unify_types(&fields[i].ty, &t).map_err(|c| {
                Conflict::at(
                    k,
                    c,
                    format!("output row {}", first_row[i].unwrap_or(r)),
                    format!("output row {r}"),
                )
            })?;
            if first_row[i].is_none() && t != Type::Any {
                first_row[i] = Some(r);
            }
        }
    }
    Ok(Schema { fields })
}

/// The type of one value; `any` stands for "not known yet" (null, `{}`, the items of `[]`).
fn infer_value(v: &Value) -> Result<Type, (String, String, String)> {
    Ok(match v {
        Value::Null => Type::Any,
        Value::Bool(_) => Type::Bool,
        Value::Number(n) if n.is_i64() || n.is_u64() => Type::Int(64),
        Value::Number(_) => Type::Float64,
        Value::String(_) => Type::String,
        Value::Object(o) if o.len() == 1 && o.contains_key(BYTES_KEY) => Type::Bytes,
        Value::Object(_) if special_float(v).is_some() => Type::Float64,
        Value::Array(items) => {
            let mut t = Type::Any;
            for i in items {
                let it = infer_value(i).map_err(|(p, a, b)| (format!("[]{p}"), a, b))?;
                t = unify_types(&t, &it).map_err(|(p, a, b)| (format!("[]{p}"), a, b))?;
            }
            list_of(t)
        }
        // An empty object has no member to give it a type: like null, it is not known yet
        // (an Arrow struct needs at least one member).
        Value::Object(o) if o.is_empty() => Type::Any,
        Value::Object(o) => {
            let mut members: Vec<Field> = Vec::new();
            for (k, x) in o {
                let t = infer_value(x).map_err(|(p, a, b)| (format!(".{k}{p}"), a, b))?;
                members.push(Field {
                    name: k.clone(),
                    ty: t,
                    nullable: true,
                });
            }
            Type::Struct(members)
        }
    })
}

fn list_of(t: Type) -> Type {
    Type::List(Box::new(FieldType {
        ty: t,
        nullable: true,
    }))
}

/// The one type that holds values of both inferred types, or the path (`.a`, `[]`) and the two
/// types that disagree. Commutative and associative (up to the order of struct members, which
/// is the order of first appearance); `any` means "not known yet" and gives way to the other.
fn unify_types(a: &Type, b: &Type) -> Result<Type, (String, String, String)> {
    Ok(match (a, b) {
        _ if a == b => a.clone(),
        (Type::Any, x) | (x, Type::Any) => x.clone(),
        (Type::Int(_), Type::Float64) | (Type::Float64, Type::Int(_)) => Type::Float64,
        (Type::List(x), Type::List(y)) => {
            list_of(unify_types(&x.ty, &y.ty).map_err(|(p, a, b)| (format!("[]{p}"), a, b))?)
        }
        (Type::Struct(x), Type::Struct(y)) => Type::Struct(
            unify_fields(x, y).map_err(|(name, (p, a, b))| (format!(".{name}{p}"), a, b))?,
        ),
        _ => return Err((String::new(), kind(a), kind(b))),
    })
}

/// Fields of both lists, by name: those of `x` in order, then the new ones of `y`; a field
/// missing on one side becomes nullable. On a conflict: the field's name and the conflict in it.
#[allow(clippy::type_complexity)]
fn unify_fields(
    x: &[Field],
    y: &[Field],
) -> Result<Vec<Field>, (String, (String, String, String))> {
    let mut fields = x.to_vec();
    for f in y {
        match fields.iter_mut().find(|g| g.name == f.name) {
            Some(g) => {
                g.ty = unify_types(&g.ty, &f.ty).map_err(|c| (f.name.clone(), c))?;
                g.nullable |= f.nullable;
            }
            None => fields.push(Field {
                nullable: true,
                ..f.clone()
            }),
        }
    }
    // A field missing on one side is null there.
    for g in fields.iter_mut() {
        if !y.iter().any(|f| f.name == g.name) {
            g.nullable = true;
        }
    }
    Ok(fields)
}

/// A type in a few words, for conflicts.
fn kind(t: &Type) -> String {
    match t {
        Type::Struct(_) => "object".into(),
        Type::List(_) => "list".into(),
        other => other.to_string(),
    }
}

/// The schema that holds the rows of two inferred schemas (columns of `a`, then the new ones
/// of `b`; a column missing on one side becomes nullable), or the column whose types disagree. `a_at` and `b_at` say
/// where each schema came from (`chunk 3`), for the error.
pub fn unify(a: &Schema, b: &Schema, a_at: &str, b_at: &str) -> Result<Schema, Box<Conflict>> {
    let fields = unify_fields(&a.fields, &b.fields)
        .map_err(|(name, c)| Conflict::at(&name, c, a_at.to_string(), b_at.to_string()))?;
    Ok(Schema { fields })
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> Value {
        json!({ BYTES_KEY: base64::engine::general_purpose::STANDARD.encode(bytes) })
    }

    #[test]
    fn builds_every_type() {
        let schema = Schema::parse(
            "i: int8, u: uint16?, f: fp16, s: str?, b: bytes, d: date, t: timestamp, l: list<int?>, m: dict<str, float>, st: list<a: int, b: str?>, v: vector<3, fp32>, te: tensor<int32, [2, 2]>, j: json, a: any?",
        )
        .unwrap();
        let rows = vec![
            json!({"i": -5, "u": 7, "f": 0.5, "s": "x", "b": b64(b"\x00\x01"), "d": "2024-02-29", "t": "2024-02-29T12:00:00Z",
                   "l": [1, null, 3], "m": {"k": 1.5}, "st": [{"a": 1, "b": null}], "v": [1, 2, 3], "te": [[1, 2], [3, 4]],
                   "j": {"nested": [1, {"x": true}]}, "a": [1, "two"]}),
            json!({"i": 5, "u": null, "f": 1, "b": b64(b""), "d": "1970-01-02", "t": 1.5, "l": [], "m": {}, "st": [],
                   "v": [0.5, 0, 0], "te": [5, 6, 7, 8], "j": "[1, 2]"}),
        ];
        let batch = rows_to_batch(&rows, &schema).unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.num_columns(), 14);
        assert_eq!(batch.column(1).null_count(), 1);
        let j = batch
            .column(12)
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        assert_eq!(j.value(0), r#"{"nested":[1,{"x":true}]}"#);
        assert_eq!(j.value(1), "[1, 2]");
    }

    fn violation(schema: &str, row: Value) -> Violation {
        rows_to_batch(&[row], &Schema::parse(schema).unwrap()).unwrap_err()
    }

    #[test]
    fn the_failing_row_is_named() {
        let s = Schema::parse("x: int").unwrap();
        let v =
            rows_to_batch(&[json!({"x": 1}), json!({"x": 2}), json!({"x": 2.5})], &s).unwrap_err();
        assert_eq!((v.row, v.column.as_str()), (2, "x"));
    }

    #[test]
    fn each_rule_names_column_expected_and_got() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let cases = [
            ("x: int", json!({"x": "seven"}), "row 0, column 'x': expected int, got string \"seven\""),
            ("x: int", json!({"x": null}), "row 0, column 'x': expected int, got null (the column is not nullable; make it nullable with '?')"),
            ("x: int8", json!({"x": 300}), "row 0, column 'x': expected int8, got number 300"),
            ("x: vector<1536, fp16>", json!({"x": vec![0.0; 1535]}), "row 0, column 'x': expected vector<1536, fp16>, got a list of 1535 numbers"),
            ("x: json", json!({"x": "{not json"}), "row 0, column 'x': expected json, got text that is not JSON"),
            ("x: audio", json!({"x": b64(png)}), "row 0, column 'x': expected audio, got image/png bytes"),
            ("x: image", json!({"x": b64(b"hello")}), "row 0, column 'x': expected image, got 5 bytes of no known image format"),
            ("x: tensor<fp32, [2, 2]>", json!({"x": [[1, 2], [3]]}), "row 0, column 'x': expected tensor<float32, [2, 2]>, got a list of 2 items (shape does not match)"),
            ("x: list<int>", json!({"x": [1, "a"]}), "row 0, column 'x': expected int, got string \"a\" at item 1"),
            ("x: struct<a: int>", json!({"x": {"a": 1, "b": 2}}), "row 0, column 'x': expected struct<a: int>, got an unknown member 'b'"),
            ("x: int", json!({"x": 1, "y": 2}), "row 0, column 'y': expected no such column (not in the table schema), got number 2"),
            ("x: str", json!({}), "row 0, column 'x': expected str, got no value (the column is missing; make it nullable with '?')"),
        ];
        for (schema, row, want) in cases {
            let got = violation(schema, row).to_string();
            assert!(got.starts_with(want), "{schema}:\n got {got}\nwant {want}");
        }
    }

    #[test]
    fn infers_a_nullable_schema_in_order_of_appearance() {
        let rows = vec![
            json!({"b": 1, "a": "x", "n": null}),
            json!({"b": 2.5, "c": [1, 2], "n": {"k": true}, "raw": b64(b"1")}),
        ];
        let s = infer_schema(&rows).unwrap();
        assert_eq!(
            s.to_string(),
            "b: float? | a: str? | n: struct<k: bool?>? | c: list<int?>? | raw: bytes?"
        );
        rows_to_batch(&rows, &s).unwrap();
    }

    #[test]
    fn empty_objects_lists_and_nulls_are_not_known_yet() {
        // Alone, an empty object is `any` (kept as the JSON text "{}"), never a struct without
        // members (which Arrow cannot build).
        let rows = vec![json!({"v": {}, "l": [], "n": null})];
        let s = infer_schema(&rows).unwrap();
        assert_eq!(s.to_string(), "v: any? | l: list<any?>? | n: any?");
        let batch = rows_to_batch(&rows, &s).unwrap();
        let v = batch
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        assert_eq!(v.value(0), "{}");
        // With values of a type, in either order, they give way to it.
        for rows in [
            vec![json!({"v": {}, "l": []}), json!({"v": {"a": 1}, "l": [2]})],
            vec![json!({"v": {"a": 1}, "l": [2]}), json!({"v": {}, "l": []})],
        ] {
            let s = infer_schema(&rows).unwrap();
            assert_eq!(s.to_string(), "v: struct<a: int?>? | l: list<int?>?");
            rows_to_batch(&rows, &s).unwrap();
        }
        // A schema's struct without members builds too (no panic).
        let empty = Schema {
            fields: vec![Field {
                name: "v".into(),
                ty: Type::Struct(Vec::new()),
                nullable: true,
            }],
        };
        assert_eq!(
            rows_to_batch(&[json!({"v": {}})], &empty)
                .unwrap()
                .num_rows(),
            1
        );
    }

    #[test]
    fn values_that_disagree_are_a_conflict_naming_column_types_and_rows() {
        let rows = vec![json!({"x": 1}), json!({"x": null}), json!({"x": "a"})];
        let e = infer_schema(&rows).unwrap_err();
        assert_eq!(
            e.to_string(),
            "column 'x' has int values (first at output row 0) and str values (first at output row 2); declare its type with --schema, e.g. --schema 'x: any?' to keep any JSON value"
        );
        let e = infer_schema(&[json!({"x": {"a": [1]}}), json!({"x": {"a": [true]}})]).unwrap_err();
        assert_eq!(
            (e.column.as_str(), e.first.as_str(), e.second.as_str()),
            ("x.a[]", "int", "bool")
        );
        assert!(infer_schema(&[json!({"x": [1, "a"]})]).is_err());
    }

    #[test]
    fn unify_across_schemas_is_the_rule_inside_one() {
        let a = infer_schema(&[json!({"x": 1, "s": {"p": null}})]).unwrap();
        let b = infer_schema(&[json!({"y": "t", "x": 2.5, "s": {"q": true, "p": 3}})]).unwrap();
        let ab = unify(&a, &b, "chunk 0", "chunk 1").unwrap();
        let ba = unify(&b, &a, "chunk 1", "chunk 0").unwrap();
        assert_eq!(
            ab.to_string(),
            "x: float? | s: struct<p: int?, q: bool?>? | y: str?"
        );
        assert_eq!(
            ba.to_string(),
            "y: str? | x: float? | s: struct<q: bool?, p: int?>?"
        );
        let both = infer_schema(&[
            json!({"x": 1, "s": {"p": null}}),
            json!({"y": "t", "x": 2.5, "s": {"q": true, "p": 3}}),
        ])
        .unwrap();
        assert_eq!(both, ab);
        let c = infer_schema(&[json!({"x": "a"})]).unwrap();
        let e = unify(&ab, &c, "chunk 0", "chunk 2").unwrap_err();
        assert_eq!(
            (e.first_at.as_str(), e.second_at.as_str()),
            ("chunk 0", "chunk 2")
        );
        assert!(e.to_string().contains("column 'x' has float values"));
    }

    #[test]
    fn nan_and_infinities_travel_as_markers() {
        let rows = vec![
            json!({"f": 1.5}),
            json!({"f": {FLOAT_KEY: "nan"}}),
            json!({"f": {FLOAT_KEY: "-inf"}}),
        ];
        let s = infer_schema(&rows).unwrap();
        assert_eq!(s.to_string(), "f: float?");
        let batch = rows_to_batch(&rows, &s).unwrap();
        let f = batch
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Float64Array>()
            .unwrap();
        assert!(f.value(1).is_nan());
        assert_eq!(f.value(2), f64::NEG_INFINITY);
        let v = violation("f: int", json!({"f": {FLOAT_KEY: "inf"}}));
        assert_eq!(v.got, "number inf");
    }
}

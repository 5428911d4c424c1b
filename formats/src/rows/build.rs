//! Building Arrow arrays of values already checked against their types.

use super::check::tensor_values;
use super::{as_float, bytes_of, parse_date, parse_timestamp};
use crate::schema::{Field, FieldType, Type, VecElem};
use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, FixedSizeListArray, Float16Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, Int8Builder,
    ListArray, MapArray, StringBuilder, StructArray, TimestampMicrosecondBuilder, UInt16Builder,
    UInt32Builder, UInt64Builder, UInt8Builder,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field as ArrowField};
use serde_json::Value;
use std::sync::Arc;

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
pub(super) fn build(ty: &Type, values: &[Option<&Value>]) -> ArrayRef {
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
        Type::List(item) => build_list(item, values),
        Type::Dict(k, val) => build_dict(k, val, values),
        Type::Struct(fields) => build_struct(fields, values),
        Type::Vector(n, e) => build_vector(*n, e, values),
        Type::Tensor(t, dims) => build_tensor(t, dims, values),
    }
}

/// A list column: the items of every row, built as one child array.
fn build_list(item: &FieldType, values: &[Option<&Value>]) -> ArrayRef {
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

/// A dict column: an Arrow map of (key, value) entries.
fn build_dict(k: &FieldType, val: &FieldType, values: &[Option<&Value>]) -> ArrayRef {
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

/// A struct column: one child array per member.
fn build_struct(fields: &[Field], values: &[Option<&Value>]) -> ArrayRef {
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
    match StructArray::try_new(arrow_fields.clone().into(), children.clone(), nulls(values)) {
        Ok(a) => Arc::new(a),
        // A non-nullable member of a null struct: arrow wants the member's nulls masked.
        Err(_) => Arc::new(StructArray::new(
            arrow_fields.into(),
            children,
            nulls(values),
        )),
    }
}

/// A vector column: a fixed-size list of floats (a null row holds zeros).
fn build_vector(n: usize, e: &VecElem, values: &[Option<&Value>]) -> ArrayRef {
    let zero = Value::from(0);
    let mut flat: Vec<Option<&Value>> = Vec::with_capacity(values.len() * n);
    for v in values {
        match v {
            Some(Value::Array(a)) => flat.extend(a.iter().map(Some)),
            _ => flat.extend(std::iter::repeat_n(Some(&zero), n)),
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
        n as i32,
        build(&elem, &flat),
        nulls(values),
    ))
}

/// A tensor column: a fixed-size list of its flat values (a null row holds zeros).
fn build_tensor(t: &Type, dims: &[usize], values: &[Option<&Value>]) -> ArrayRef {
    let total: usize = dims.iter().product();
    let zero = Value::from(0);
    let falsy = Value::from(false);
    let filler = if *t == Type::Bool { &falsy } else { &zero };
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

//! Checking one value against its column's type, before anything is built.

use super::{as_float, bytes_of, describe, parse_date, parse_timestamp, BYTES_KEY};
use crate::media::{sniff, MediaKind};
use crate::schema::{Field, FieldType, Type};
use serde_json::Value;

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
pub(super) fn tensor_values<'a>(v: &'a Value, dims: &[usize]) -> Option<Vec<&'a Value>> {
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

/// Checks one value (`None` = missing) against a type; the error says what was expected and
/// what was got instead (for a value inside a list, dict or struct: the inner value's).
pub(super) fn check(v: Option<&Value>, ty: &Type, nullable: bool) -> Result<(), (String, String)> {
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
    check_present(v, ty).map_err(|m| match m {
        Misfit::Got(got) => (expected(), got),
        Misfit::Inner(pair) => pair,
    })
}

/// Why a present value does not fit its type.
enum Misfit {
    /// What the value is instead (the type expected is the one checked).
    Got(String),
    /// A value inside it does not fit its own type: that one's (expected, got).
    Inner((String, String)),
}

/// `Ok` when `ok`, else a misfit describing `v`.
fn fits(v: &Value, ok: bool) -> Result<(), Misfit> {
    if ok {
        Ok(())
    } else {
        Err(Misfit::Got(describe(v)))
    }
}

fn check_present(v: &Value, ty: &Type) -> Result<(), Misfit> {
    match ty {
        Type::Bool => fits(v, v.is_boolean()),
        Type::Int(b) => fits(v, int_fits(v, true, *b)),
        Type::UInt(b) => fits(v, int_fits(v, false, *b)),
        Type::Float16 | Type::Float32 | Type::Float64 => fits(v, as_float(v).is_some()),
        Type::String => fits(v, v.is_string()),
        Type::Date => fits(v, v.as_str().and_then(parse_date).is_some()),
        Type::Timestamp => fits(v, parse_timestamp(v).is_some()),
        Type::Any => Ok(()),
        Type::Json => match v {
            Value::String(s) => serde_json::from_str::<Value>(s)
                .map(|_| ())
                .map_err(|e| Misfit::Got(format!("text that is not JSON ({e})"))),
            _ => Ok(()),
        },
        Type::Bytes | Type::Blob => fits(v, bytes_of(v).is_some()),
        Type::Image | Type::Audio | Type::Video => check_media(v, ty),
        Type::Vector(n, _) => match v {
            Value::Array(a) if a.len() != *n => {
                Err(Misfit::Got(format!("a list of {} numbers", a.len())))
            }
            Value::Array(a) => fits(v, a.iter().all(|x| as_float(x).is_some())),
            _ => fits(v, false),
        },
        Type::Tensor(t, dims) => match tensor_values(v, dims) {
            Some(vals) => fits(
                v,
                vals.into_iter().all(|x| check(Some(x), t, false).is_ok()),
            ),
            None => Err(Misfit::Got(format!(
                "{} (shape does not match)",
                describe(v)
            ))),
        },
        Type::List(item) => match v {
            Value::Array(a) => a.iter().enumerate().try_for_each(|(i, x)| {
                check(Some(x), &item.ty, item.nullable)
                    .map_err(|(e, g)| Misfit::Inner((e, format!("{g} at item {i}"))))
            }),
            _ => fits(v, false),
        },
        Type::Dict(k, val) => check_dict(v, &k.ty, val),
        Type::Struct(fields) => check_struct(v, fields),
    }
}

/// Media bytes must be of their column's kind (an image column holds images).
fn check_media(v: &Value, ty: &Type) -> Result<(), Misfit> {
    let Some(b) = bytes_of(v) else {
        return fits(v, false);
    };
    let want = match ty {
        Type::Image => MediaKind::Image,
        Type::Audio => MediaKind::Audio,
        _ => MediaKind::Video,
    };
    match sniff(&b) {
        Some((k, _)) if k == want => Ok(()),
        Some((_, mime)) => Err(Misfit::Got(format!("{mime} bytes"))),
        None => Err(Misfit::Got(format!(
            "{} bytes of no known {} format",
            b.len(),
            ty
        ))),
    }
}

fn check_dict(v: &Value, key_ty: &Type, val: &FieldType) -> Result<(), Misfit> {
    let Value::Object(o) = v else {
        return fits(v, false);
    };
    if o.contains_key(BYTES_KEY) {
        return fits(v, false);
    }
    for (key, x) in o {
        let key_ok = match key_ty {
            Type::String => true,
            Type::Int(_) | Type::UInt(_) => key.parse::<i64>().is_ok(),
            _ => false,
        };
        if !key_ok {
            return Err(Misfit::Got(format!("key {key:?}, which is not a {key_ty}")));
        }
        check(Some(x), &val.ty, val.nullable)
            .map_err(|(e, g)| Misfit::Inner((e, format!("{g} at key {key:?}"))))?;
    }
    Ok(())
}

fn check_struct(v: &Value, fields: &[Field]) -> Result<(), Misfit> {
    let Value::Object(o) = v else {
        return fits(v, false);
    };
    if o.contains_key(BYTES_KEY) {
        return fits(v, false);
    }
    if let Some(extra) = o.keys().find(|k| !fields.iter().any(|f| &f.name == *k)) {
        return Err(Misfit::Got(format!("an unknown member '{extra}'")));
    }
    for f in fields {
        check(o.get(&f.name), &f.ty, f.nullable)
            .map_err(|(e, g)| Misfit::Inner((e, format!("{g} in member '{}'", f.name))))?;
    }
    Ok(())
}

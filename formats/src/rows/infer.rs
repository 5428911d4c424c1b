//! Schemas inferred from rows, and the one rule that unifies two of them.

use super::{special_float, BYTES_KEY};
use crate::schema::{Field, FieldType, Schema, Type};
use serde_json::Value;

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

//! flywheel's schema language: parser, printer, and the mapping to Arrow.
//!
//! ```text
//! schema := field (("," | "|") field)*
//! field  := name ":" type
//! type   := base "?"?                      (T? is nullable; other columns reject nulls)
//! base   := bool | int8…int64 | uint8…uint64 | int | float16 | fp16 | float32 | float64 | float
//!         | string | str | bytes | date | timestamp | image | audio | video | json | blob | any
//!         | list<T> | list<a: T, b: U>        (the second is list<struct<a: T, b: U>>)
//!         | dict<K, V> | struct<a: T, …> | vector<N, fp16|fp32|fp64> | tensor<DTYPE, [D1, …]>
//! ```
//!
//! The printer writes the canonical spelling (`int`, `str`, `fp16`, `float`, the `list<a: T>`
//! shorthand, ` | ` between columns), so the seed's example prints back exactly as written, and
//! `parse(print(s)) == s` for every schema. In Arrow, each column keeps its flywheel type in the
//! field metadata key [`TYPE_KEY`], so logical types (image, json, vector…) survive a Parquet
//! round trip and are visible to pyarrow.

mod arrow_types;
mod parse;
#[cfg(test)]
mod tests;

use std::fmt;

/// The field-metadata key holding a column's flywheel type.
pub const TYPE_KEY: &str = "flywheel.type";

/// Element type of a vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VecElem {
    Fp16,
    Fp32,
    Fp64,
}

/// A flywheel type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    Bool,
    Int(u8),
    UInt(u8),
    Float16,
    Float32,
    Float64,
    String,
    Bytes,
    Date,
    Timestamp,
    List(Box<FieldType>),
    Dict(Box<FieldType>, Box<FieldType>),
    Struct(Vec<Field>),
    Vector(usize, VecElem),
    Tensor(Box<Type>, Vec<usize>),
    Image,
    Audio,
    Video,
    Json,
    Blob,
    Any,
}

/// A type with its nullability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldType {
    pub ty: Type,
    pub nullable: bool,
}

/// A named column (or struct member).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub ty: Type,
    pub nullable: bool,
}

/// A table schema.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schema {
    pub fields: Vec<Field>,
}

/// A schema that does not parse: where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schema: at position {position}: expected {expected}, found {found}\n  {text}\n  {caret:>width$}", caret = "^", width = position + 1)]
pub struct SchemaParseError {
    pub position: usize,
    pub expected: String,
    pub found: String,
    pub text: String,
}

impl Schema {
    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

fn write_fields(f: &mut fmt::Formatter<'_>, fields: &[Field], sep: &str) -> fmt::Result {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write!(
            f,
            "{}: {}{}",
            field.name,
            field.ty,
            if field.nullable { "?" } else { "" }
        )?;
    }
    Ok(())
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.ty, if self.nullable { "?" } else { "" })
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Bool => f.write_str("bool"),
            Type::Int(64) => f.write_str("int"),
            Type::Int(n) => write!(f, "int{n}"),
            Type::UInt(n) => write!(f, "uint{n}"),
            Type::Float16 => f.write_str("fp16"),
            Type::Float32 => f.write_str("float32"),
            Type::Float64 => f.write_str("float"),
            Type::String => f.write_str("str"),
            Type::Bytes => f.write_str("bytes"),
            Type::Date => f.write_str("date"),
            Type::Timestamp => f.write_str("timestamp"),
            Type::List(item) => match (&item.ty, item.nullable) {
                (Type::Struct(fields), false) => {
                    f.write_str("list<")?;
                    write_fields(f, fields, ", ")?;
                    f.write_str(">")
                }
                _ => write!(f, "list<{item}>"),
            },
            Type::Dict(k, v) => write!(f, "dict<{k}, {v}>"),
            Type::Struct(fields) => {
                f.write_str("struct<")?;
                write_fields(f, fields, ", ")?;
                f.write_str(">")
            }
            Type::Vector(n, e) => write!(
                f,
                "vector<{n}, {}>",
                match e {
                    VecElem::Fp16 => "fp16",
                    VecElem::Fp32 => "fp32",
                    VecElem::Fp64 => "fp64",
                }
            ),
            Type::Tensor(t, dims) => {
                write!(f, "tensor<{t}, [")?;
                for (i, d) in dims.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{d}")?;
                }
                f.write_str("]>")
            }
            Type::Image => f.write_str("image"),
            Type::Audio => f.write_str("audio"),
            Type::Video => f.write_str("video"),
            Type::Json => f.write_str("json"),
            Type::Blob => f.write_str("blob"),
            Type::Any => f.write_str("any"),
        }
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_fields(f, &self.fields, " | ")
    }
}

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

use arrow::datatypes::{DataType, Field as ArrowField, Fields, Schema as ArrowSchema, TimeUnit};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

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

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

const SCALARS: &[(&str, Type)] = &[
    ("bool", Type::Bool),
    ("int8", Type::Int(8)),
    ("int16", Type::Int(16)),
    ("int32", Type::Int(32)),
    ("int64", Type::Int(64)),
    ("int", Type::Int(64)),
    ("uint8", Type::UInt(8)),
    ("uint16", Type::UInt(16)),
    ("uint32", Type::UInt(32)),
    ("uint64", Type::UInt(64)),
    ("float16", Type::Float16),
    ("fp16", Type::Float16),
    ("float32", Type::Float32),
    ("fp32", Type::Float32),
    ("float64", Type::Float64),
    ("fp64", Type::Float64),
    ("float", Type::Float64),
    ("string", Type::String),
    ("str", Type::String),
    ("bytes", Type::Bytes),
    ("date", Type::Date),
    ("timestamp", Type::Timestamp),
    ("image", Type::Image),
    ("audio", Type::Audio),
    ("video", Type::Video),
    ("json", Type::Json),
    ("blob", Type::Blob),
    ("any", Type::Any),
];

impl<'a> Parser<'a> {
    fn err<T>(&self, expected: &str) -> Result<T, SchemaParseError> {
        let rest = &self.text[self.pos..];
        let found = match rest.chars().next() {
            None => "end of input".to_string(),
            Some(_) => format!("'{}'", rest.chars().take(12).collect::<String>()),
        };
        Err(SchemaParseError {
            position: self.pos,
            expected: expected.to_string(),
            found,
            text: self.text.to_string(),
        })
    }

    fn ws(&mut self) {
        while self.text[self.pos..].starts_with(char::is_whitespace) {
            self.pos += self.text[self.pos..]
                .chars()
                .next()
                .map(char::len_utf8)
                .unwrap_or(1);
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.ws();
        if self.text[self.pos..].starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), SchemaParseError> {
        if self.eat(c) {
            Ok(())
        } else {
            self.err(&format!("'{c}'"))
        }
    }

    fn ident(&mut self) -> Option<&'a str> {
        self.ws();
        let rest = &self.text[self.pos..];
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '.'))
            .unwrap_or(rest.len());
        if len == 0 {
            return None;
        }
        self.pos += len;
        Some(&rest[..len])
    }

    fn number(&mut self) -> Result<usize, SchemaParseError> {
        self.ws();
        let rest = &self.text[self.pos..];
        let len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        match rest[..len].parse::<usize>() {
            Ok(n) if n > 0 => {
                self.pos += len;
                Ok(n)
            }
            _ => self.err("a positive integer"),
        }
    }

    /// `name: type` pairs separated by `sep` until `end` (or the end of input when `None`).
    fn fields(&mut self, top: bool) -> Result<Vec<Field>, SchemaParseError> {
        let mut fields: Vec<Field> = Vec::new();
        loop {
            let start = self.pos;
            let Some(name) = self.ident() else {
                return self.err("a column name");
            };
            if fields.iter().any(|f| f.name == name) {
                self.pos = start;
                self.ws();
                return self.err(&format!("a new name ('{name}' is already a column)"));
            }
            self.expect(':')?;
            let ft = self.field_type()?;
            fields.push(Field {
                name: name.to_string(),
                ty: ft.ty,
                nullable: ft.nullable,
            });
            if self.eat(',') || (top && self.eat('|')) {
                continue;
            }
            return Ok(fields);
        }
    }

    fn field_type(&mut self) -> Result<FieldType, SchemaParseError> {
        let ty = self.ty()?;
        let nullable = self.eat('?');
        Ok(FieldType { ty, nullable })
    }

    fn ty(&mut self) -> Result<Type, SchemaParseError> {
        let before = self.pos;
        let Some(word) = self.ident() else {
            return self.err("a type");
        };
        let lower = word.to_ascii_lowercase();
        match lower.as_str() {
            "list" => {
                self.expect('<')?;
                // `list<a: T, …>` is a list of structs; `list<T>` a list of T.
                let save = self.pos;
                let shorthand = self.ident().is_some() && self.eat(':');
                self.pos = save;
                let item = if shorthand {
                    FieldType {
                        ty: Type::Struct(self.fields(false)?),
                        nullable: false,
                    }
                } else {
                    self.field_type()?
                };
                self.expect('>')?;
                Ok(Type::List(Box::new(item)))
            }
            "dict" | "map" => {
                self.expect('<')?;
                let k = self.field_type()?;
                self.expect(',')?;
                let v = self.field_type()?;
                self.expect('>')?;
                Ok(Type::Dict(Box::new(k), Box::new(v)))
            }
            "struct" => {
                self.expect('<')?;
                let f = self.fields(false)?;
                self.expect('>')?;
                Ok(Type::Struct(f))
            }
            "vector" => {
                self.expect('<')?;
                let n = self.number()?;
                self.expect(',')?;
                let elem = match self.ident().map(str::to_ascii_lowercase).as_deref() {
                    Some("fp16" | "float16") => VecElem::Fp16,
                    Some("fp32" | "float32") => VecElem::Fp32,
                    Some("fp64" | "float64") => VecElem::Fp64,
                    _ => return self.err("fp16, fp32 or fp64"),
                };
                self.expect('>')?;
                Ok(Type::Vector(n, elem))
            }
            "tensor" => {
                self.expect('<')?;
                let dtype = self.ty()?;
                if !matches!(
                    dtype,
                    Type::Bool
                        | Type::Int(_)
                        | Type::UInt(_)
                        | Type::Float16
                        | Type::Float32
                        | Type::Float64
                ) {
                    return self.err("a numeric or bool tensor element type");
                }
                self.expect(',')?;
                self.expect('[')?;
                let mut dims = vec![self.number()?];
                while self.eat(',') {
                    dims.push(self.number()?);
                }
                self.expect(']')?;
                self.expect('>')?;
                Ok(Type::Tensor(Box::new(dtype), dims))
            }
            _ => match SCALARS.iter().find(|(n, _)| *n == lower) {
                Some((_, t)) => Ok(t.clone()),
                None => {
                    self.pos = before;
                    self.ws();
                    self.err("a type (bool, int, float, str, bytes, date, timestamp, list<…>, dict<…>, struct<…>, vector<…>, tensor<…>, image, audio, video, json, blob, any)")
                }
            },
        }
    }
}

impl Schema {
    /// Parses the schema language.
    pub fn parse(text: &str) -> Result<Schema, SchemaParseError> {
        let mut p = Parser { text, pos: 0 };
        let fields = p.fields(true)?;
        p.ws();
        if p.pos != text.len() {
            return p.err("',' or '|' between columns, or the end");
        }
        Ok(Schema { fields })
    }

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

impl Type {
    /// The Arrow type that stores values of this type.
    pub fn to_arrow(&self) -> DataType {
        match self {
            Type::Bool => DataType::Boolean,
            Type::Int(8) => DataType::Int8,
            Type::Int(16) => DataType::Int16,
            Type::Int(32) => DataType::Int32,
            Type::Int(_) => DataType::Int64,
            Type::UInt(8) => DataType::UInt8,
            Type::UInt(16) => DataType::UInt16,
            Type::UInt(32) => DataType::UInt32,
            Type::UInt(_) => DataType::UInt64,
            Type::Float16 => DataType::Float16,
            Type::Float32 => DataType::Float32,
            Type::Float64 => DataType::Float64,
            Type::String | Type::Json | Type::Any => DataType::Utf8,
            Type::Bytes | Type::Image | Type::Audio | Type::Video | Type::Blob => DataType::Binary,
            Type::Date => DataType::Date32,
            Type::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Type::List(item) => DataType::List(Arc::new(ArrowField::new(
                "item",
                item.ty.to_arrow(),
                item.nullable,
            ))),
            Type::Dict(k, v) => DataType::Map(
                Arc::new(ArrowField::new(
                    "entries",
                    DataType::Struct(Fields::from(vec![
                        ArrowField::new("key", k.ty.to_arrow(), false),
                        ArrowField::new("value", v.ty.to_arrow(), v.nullable),
                    ])),
                    false,
                )),
                false,
            ),
            Type::Struct(fields) => DataType::Struct(
                fields
                    .iter()
                    .map(Field::to_arrow)
                    .collect::<Vec<_>>()
                    .into(),
            ),
            Type::Vector(n, e) => {
                let elem = match e {
                    VecElem::Fp16 => DataType::Float16,
                    VecElem::Fp32 => DataType::Float32,
                    VecElem::Fp64 => DataType::Float64,
                };
                DataType::FixedSizeList(Arc::new(ArrowField::new("item", elem, false)), *n as i32)
            }
            Type::Tensor(t, dims) => DataType::FixedSizeList(
                Arc::new(ArrowField::new("item", t.to_arrow(), false)),
                dims.iter().product::<usize>() as i32,
            ),
        }
    }

    /// The flywheel type of an Arrow type that carries no flywheel metadata.
    pub fn from_arrow(dt: &DataType) -> Option<Type> {
        Some(match dt {
            DataType::Boolean => Type::Bool,
            DataType::Int8 => Type::Int(8),
            DataType::Int16 => Type::Int(16),
            DataType::Int32 => Type::Int(32),
            DataType::Int64 => Type::Int(64),
            DataType::UInt8 => Type::UInt(8),
            DataType::UInt16 => Type::UInt(16),
            DataType::UInt32 => Type::UInt(32),
            DataType::UInt64 => Type::UInt(64),
            DataType::Float16 => Type::Float16,
            DataType::Float32 => Type::Float32,
            DataType::Float64 => Type::Float64,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Type::String,
            DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_) => Type::Bytes,
            DataType::Date32 | DataType::Date64 => Type::Date,
            DataType::Timestamp(_, _) => Type::Timestamp,
            DataType::List(f) | DataType::LargeList(f) => Type::List(Box::new(FieldType {
                ty: Field::from_arrow(f)?.ty,
                nullable: f.is_nullable(),
            })),
            DataType::FixedSizeList(f, n) => match f.data_type() {
                DataType::Float16 => Type::Vector(*n as usize, VecElem::Fp16),
                DataType::Float32 => Type::Vector(*n as usize, VecElem::Fp32),
                DataType::Float64 => Type::Vector(*n as usize, VecElem::Fp64),
                other => Type::Tensor(Box::new(Type::from_arrow(other)?), vec![*n as usize]),
            },
            DataType::Struct(fields) => Type::Struct(
                fields
                    .iter()
                    .map(|f| Field::from_arrow(f))
                    .collect::<Option<Vec<_>>>()?,
            ),
            DataType::Map(entries, _) => match entries.data_type() {
                DataType::Struct(kv) if kv.len() == 2 => Type::Dict(
                    Box::new(FieldType {
                        ty: Field::from_arrow(&kv[0])?.ty,
                        nullable: false,
                    }),
                    Box::new(FieldType {
                        ty: Field::from_arrow(&kv[1])?.ty,
                        nullable: kv[1].is_nullable(),
                    }),
                ),
                _ => return None,
            },
            DataType::Dictionary(_, v) => Type::from_arrow(v)?,
            _ => return None,
        })
    }
}

impl Field {
    /// The Arrow field, with the flywheel type in its metadata.
    pub fn to_arrow(&self) -> ArrowField {
        let meta: HashMap<String, String> = [(TYPE_KEY.to_string(), self.ty.to_string())]
            .into_iter()
            .collect();
        ArrowField::new(&self.name, self.ty.to_arrow(), self.nullable).with_metadata(meta)
    }

    /// The flywheel field of an Arrow field: from its metadata when present.
    pub fn from_arrow(f: &ArrowField) -> Option<Field> {
        let ty = match f
            .metadata()
            .get(TYPE_KEY)
            .and_then(|t| Schema::parse(&format!("x: {t}")).ok())
        {
            Some(s) => s.fields.into_iter().next()?.ty,
            None => Type::from_arrow(f.data_type())?,
        };
        Some(Field {
            name: f.name().clone(),
            ty,
            nullable: f.is_nullable(),
        })
    }
}

impl Schema {
    /// The Arrow schema.
    pub fn to_arrow(&self) -> ArrowSchema {
        ArrowSchema::new(self.fields.iter().map(Field::to_arrow).collect::<Vec<_>>())
    }

    /// The flywheel schema of an Arrow schema; `None` when a column has a type flywheel's
    /// language cannot express.
    pub fn from_arrow(s: &ArrowSchema) -> Option<Schema> {
        Some(Schema {
            fields: s
                .fields()
                .iter()
                .map(|f| Field::from_arrow(f))
                .collect::<Option<Vec<_>>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "video: image | file_metadata: json | duration_sec: int | audio_tracks: dict<str, audio> | human_scenes: list<from_sec: int, to_sec: int> | human_embeddings: list<vector<1536, fp16>>";

    #[test]
    fn the_seed_schema_parses_and_prints_back_identically() {
        let s = Schema::parse(SEED).unwrap();
        assert_eq!(s.fields.len(), 6);
        assert_eq!(s.to_string(), SEED);
        assert_eq!(
            s.field("human_embeddings").unwrap().ty,
            Type::List(Box::new(FieldType {
                ty: Type::Vector(1536, VecElem::Fp16),
                nullable: false
            }))
        );
        match &s.field("human_scenes").unwrap().ty {
            Type::List(item) => assert!(
                matches!(&item.ty, Type::Struct(f) if f.len() == 2 && f[0].name == "from_sec")
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn aliases_and_separators_parse_to_the_canonical_form() {
        let s = Schema::parse("a: int64, b: string?, c: float64 | d: struct<x: uint8, y: list<bytes?>>, e: tensor<float32, [3, 224, 224]>, f: timestamp, g: date").unwrap();
        assert_eq!(
            s.to_string(),
            "a: int | b: str? | c: float | d: struct<x: uint8, y: list<bytes?>> | e: tensor<float32, [3, 224, 224]> | f: timestamp | g: date"
        );
        assert_eq!(Schema::parse(&s.to_string()).unwrap(), s);
    }

    #[test]
    fn errors_say_where_and_what_was_expected() {
        let e = Schema::parse("a: int, b: integer").unwrap_err();
        assert_eq!(e.position, 11);
        assert!(e.expected.starts_with("a type"), "{e}");
        assert_eq!(e.found, "'integer'");
        let e = Schema::parse("a: vector<0, fp16>").unwrap_err();
        assert_eq!(
            (e.position, e.expected.as_str()),
            (10, "a positive integer")
        );
        let e = Schema::parse("a: list<int").unwrap_err();
        assert_eq!(
            (e.expected.as_str(), e.found.as_str()),
            ("'>'", "end of input")
        );
        let e = Schema::parse("a: int, a: str").unwrap_err();
        assert!(e.expected.contains("already a column"), "{e}");
        let e = Schema::parse("a int").unwrap_err();
        assert_eq!(e.expected, "':'");
        let msg = Schema::parse("a: int b: str").unwrap_err().to_string();
        assert!(
            msg.contains("at position 7") && msg.contains("',' or '|'"),
            "{msg}"
        );
    }

    #[test]
    fn arrow_mapping_keeps_the_logical_type() {
        let s = Schema::parse(SEED).unwrap();
        let arrow = s.to_arrow();
        assert_eq!(arrow.field(0).data_type(), &DataType::Binary);
        assert_eq!(
            arrow.field(0).metadata().get(TYPE_KEY).map(String::as_str),
            Some("image")
        );
        assert_eq!(Schema::from_arrow(&arrow).unwrap(), s);
        // Without metadata: the plain mapping.
        let plain = ArrowSchema::new(vec![ArrowField::new(
            "v",
            DataType::FixedSizeList(
                Arc::new(ArrowField::new("item", DataType::Float16, false)),
                4,
            ),
            true,
        )]);
        assert_eq!(
            Schema::from_arrow(&plain).unwrap().to_string(),
            "v: vector<4, fp16>?"
        );
    }
}

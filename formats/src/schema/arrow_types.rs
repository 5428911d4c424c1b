//! The mapping between flywheel's types and Arrow's: each column keeps its flywheel type in
//! the field metadata key [`TYPE_KEY`].

use super::{Field, FieldType, Schema, Type, VecElem, TYPE_KEY};
use arrow::datatypes::{DataType, Field as ArrowField, Fields, Schema as ArrowSchema, TimeUnit};
use std::collections::HashMap;
use std::sync::Arc;

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

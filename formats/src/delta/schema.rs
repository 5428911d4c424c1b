//! Arrow types (as stored in flywheel's Parquet files) → Delta schema types.
//!
//! Delta has no unsigned integers, no float16 and no fixed-size list. Each is declared as the
//! Delta type that holds every value and that the readers cast the file's column to: `uint8` →
//! `short`, `uint16` → `integer`, `uint32` → `long`, `uint64` → `decimal(20,0)` (every value
//! fits; see docs/format.md), `fp16` → `float`, `vector<N, E>` and `tensor<…>` → `array<E>`.
//! Each top-level field keeps its flywheel type in its metadata (`flywheel.type`).

use crate::TYPE_KEY;
use arrow::datatypes::{DataType, Field, Schema};
use serde_json::{json, Value};

/// The Delta schema (a `struct` type) of an Arrow schema; `Err` names a column whose type
/// Delta cannot hold.
pub fn delta_schema(schema: &Schema) -> Result<Value, String> {
    let fields = schema
        .fields()
        .iter()
        .map(|f| {
            let mut meta = serde_json::Map::new();
            if let Some(t) = f.metadata().get(TYPE_KEY) {
                meta.insert(TYPE_KEY.to_string(), Value::String(t.clone()));
            }
            field(f, Value::Object(meta))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({ "type": "struct", "fields": fields }))
}

fn field(f: &Field, metadata: Value) -> Result<Value, String> {
    let ty = delta_type(f.data_type()).map_err(|t| format!("column '{}': {t}", f.name()))?;
    Ok(json!({
        "name": f.name(),
        "type": ty,
        "nullable": f.is_nullable(),
        "metadata": metadata,
    }))
}

fn array(item: &Field) -> Result<Value, String> {
    Ok(json!({
        "type": "array",
        "elementType": delta_type(item.data_type())?,
        "containsNull": item.is_nullable(),
    }))
}

/// The Delta type of an Arrow type; `Err` says which type has no Delta equivalent.
pub fn delta_type(dt: &DataType) -> Result<Value, String> {
    let name = match dt {
        DataType::Boolean => "boolean",
        DataType::Int8 => "byte",
        DataType::Int16 | DataType::UInt8 => "short",
        DataType::Int32 | DataType::UInt16 => "integer",
        DataType::Int64 | DataType::UInt32 => "long",
        DataType::UInt64 => "decimal(20,0)",
        DataType::Float16 | DataType::Float32 => "float",
        DataType::Float64 => "double",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string",
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary",
        DataType::Date32 => "date",
        DataType::Timestamp(_, Some(_)) => "timestamp",
        DataType::Timestamp(_, None) => "timestamp_ntz",
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            return array(item)
        }
        DataType::Struct(fields) => {
            let fields = fields
                .iter()
                .map(|f| field(f, json!({})))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(json!({ "type": "struct", "fields": fields }));
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                return Ok(json!({
                    "type": "map",
                    "keyType": delta_type(kv[0].data_type())?,
                    "valueType": delta_type(kv[1].data_type())?,
                    "valueContainsNull": kv[1].is_nullable(),
                }))
            }
            other => return Err(format!("map entries of type {other}")),
        },
        DataType::Dictionary(_, values) => return delta_type(values),
        other => return Err(format!("Arrow type {other} has no Delta type")),
    };
    Ok(Value::String(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Schema as FlywheelSchema;

    #[test]
    fn types_delta_lacks_are_widened_and_keep_their_flywheel_type() {
        let s = FlywheelSchema::parse("a: uint32, v: vector<4, fp16>, d: dict<str, int>?")
            .unwrap()
            .to_arrow();
        let d = delta_schema(&s).unwrap();
        assert_eq!(d["fields"][0]["type"], "long");
        assert_eq!(d["fields"][0]["metadata"][TYPE_KEY], "uint32");
        assert_eq!(
            d["fields"][1]["type"],
            json!({"type": "array", "elementType": "float", "containsNull": false})
        );
        assert_eq!(d["fields"][2]["type"]["type"], "map");
        assert_eq!(d["fields"][2]["nullable"], true);
    }
}

//! Values as the page draws them: one JSON node per value, saying how to show it (media,
//! vector, text, tree). The page computes each node's path (`table show --path` syntax) as it
//! descends, so nodes carry no paths.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Field};
use arrow::record_batch::RecordBatch;
use flywheel_explore::render::{bytes_at, is_json_field, text_at, to_json};
use flywheel_formats::{MediaKind, Type};
use serde_json::{json, Value};

/// Characters of text sent for a cell; the page folds what is past its own limit.
const TEXT_SENT: usize = 4096;
/// Items of a list (or entries of a dict) sent; the node says how many there are.
const ITEMS_SENT: usize = 100;
/// Numbers of a vector or tensor sent (its shape says the rest).
const VECTOR_HEAD: usize = 8;

/// Every row of `batches` as an array of nodes, one per column.
pub fn rows(batches: &[RecordBatch]) -> Vec<Value> {
    let mut out = Vec::new();
    for b in batches {
        let schema = b.schema();
        let types: Vec<Option<Type>> = schema
            .fields()
            .iter()
            .map(|f| flywheel_formats::Field::from_arrow(f).map(|ff| ff.ty))
            .collect();
        for i in 0..b.num_rows() {
            let row: Vec<Value> = schema
                .fields()
                .iter()
                .zip(b.columns())
                .zip(&types)
                .map(|((f, c), t)| node(t.as_ref(), f, c.as_ref(), i))
                .collect();
            out.push(Value::Array(row));
        }
    }
    out
}

/// Value `i` of `col` as a node; `ty` is its flywheel type where the schema records one.
pub fn node(ty: Option<&Type>, field: &Field, col: &dyn Array, i: usize) -> Value {
    if col.is_null(i) {
        return json!({"k": "null"});
    }
    if let Some(b) = bytes_at(col, i) {
        return bytes_node(b);
    }
    if let Some(text) = text_at(col, i) {
        if is_json_field(field) || matches!(ty, Some(Type::Json | Type::Any)) {
            if let Ok(v) = serde_json::from_str::<Value>(text) {
                return json!({"k": "json", "v": v});
            }
        }
        let sent: String = text.chars().take(TEXT_SENT).collect();
        let chars = text.chars().count();
        return json!({"k": "text", "v": sent, "chars": chars});
    }
    match col.data_type() {
        DataType::FixedSizeList(item, n)
            if item.data_type().is_floating() || item.data_type().is_integer() =>
        {
            vector_node(ty, *n as usize, &col.as_fixed_size_list().value(i))
        }
        DataType::List(f) => list_node(ty, f, &col.as_list::<i32>().value(i)),
        DataType::LargeList(f) => list_node(ty, f, &col.as_list::<i64>().value(i)),
        DataType::FixedSizeList(f, _) => list_node(ty, f, &col.as_fixed_size_list().value(i)),
        DataType::Struct(fields) => {
            let s = col.as_struct();
            let members: Vec<(String, Value)> = fields
                .iter()
                .zip(s.columns())
                .map(|(f, c)| {
                    let t = member_type(ty, f.name());
                    (f.name().clone(), node(t, f, c.as_ref(), i))
                })
                .collect();
            json!({"k": "struct", "fields": members})
        }
        DataType::Map(entry, _) => match entry.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                let entries = col.as_map().value(i);
                let value_ty = match ty {
                    Some(Type::Dict(_, v)) => Some(&v.ty),
                    _ => None,
                };
                let shown = entries.len().min(ITEMS_SENT);
                let items: Vec<(Value, Value)> = (0..shown)
                    .map(|k| {
                        let key = to_json(&kv[0], entries.column(0).as_ref(), k);
                        let key = match key {
                            Value::String(s) => s,
                            other => other.to_string(),
                        };
                        (
                            json!(key),
                            node(value_ty, &kv[1], entries.column(1).as_ref(), k),
                        )
                    })
                    .collect();
                json!({"k": "dict", "entries": items, "len": entries.len()})
            }
            _ => json!({"k": "scalar", "v": to_json(field, col, i)}),
        },
        _ => json!({"k": "scalar", "v": to_json(field, col, i)}),
    }
}

/// Media by their magic bytes (thumbnails, players), other bytes as a summary.
fn bytes_node(b: &[u8]) -> Value {
    match flywheel_formats::sniff(b) {
        Some((kind, mime)) => {
            let media = match kind {
                MediaKind::Image => "image",
                MediaKind::Audio => "audio",
                MediaKind::Video => "video",
            };
            json!({"k": "media", "media": media, "mime": mime, "size": b.len()})
        }
        None => json!({"k": "bytes", "size": b.len()}),
    }
}

/// A vector or tensor: its shape, element type and first numbers.
fn vector_node(ty: Option<&Type>, n: usize, items: &arrow::array::ArrayRef) -> Value {
    let (shape, elem) = match ty {
        Some(Type::Tensor(t, dims)) => (dims.clone(), t.to_string()),
        Some(Type::Vector(len, e)) => (vec![*len], Type::Vector(*len, *e).to_string()),
        _ => (vec![n], items.data_type().to_string()),
    };
    let item = Field::new("item", items.data_type().clone(), true);
    let head: Vec<Value> = (0..items.len().min(VECTOR_HEAD))
        .map(|k| to_json(&item, items.as_ref(), k))
        .collect();
    json!({"k": "vector", "shape": shape, "type": elem, "head": head})
}

fn list_node(ty: Option<&Type>, f: &Field, items: &arrow::array::ArrayRef) -> Value {
    let item_ty = match ty {
        Some(Type::List(item)) => Some(&item.ty),
        _ => None,
    };
    let shown = items.len().min(ITEMS_SENT);
    let nodes: Vec<Value> = (0..shown)
        .map(|k| node(item_ty, f, items.as_ref(), k))
        .collect();
    json!({"k": "list", "items": nodes, "len": items.len()})
}

fn member_type<'a>(ty: Option<&'a Type>, name: &str) -> Option<&'a Type> {
    match ty {
        Some(Type::Struct(fields)) => fields.iter().find(|f| f.name == name).map(|f| &f.ty),
        _ => None,
    }
}

/// The schema for the page: each column's name and type in flywheel's language.
pub fn schema(schema: &arrow::datatypes::Schema) -> Vec<Value> {
    schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": flywheel_explore::render::type_text(f)}))
        .collect()
}

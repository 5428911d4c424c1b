//! Tests of the conversions between Arrow batches and the mapper's rows.

use super::*;
use serde_json::json;

#[test]
fn binary_columns_travel_as_base64() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, false),
        Field::new("b", DataType::Binary, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(arrow::array::Int64Array::from(vec![1, 2])),
            Arc::new(BinaryArray::from_opt_vec(vec![Some(b"\x00\xff"), None])),
        ],
    )
    .expect("a valid batch");
    let mut out = Vec::new();
    let names = batches_to_json_lines(&[batch], &mut out).expect("rows as JSON lines");
    assert_eq!(names, vec!["b"]);
    let rows: Vec<serde_json::Value> = String::from_utf8(out)
        .expect("UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(
        rows,
        vec![json!({"a": 1, "b": "AP8="}), json!({"a": 2, "b": null})]
    );
}

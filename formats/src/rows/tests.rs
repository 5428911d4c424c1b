use super::*;
use crate::schema::{Field, Type};
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
    let v = rows_to_batch(&[json!({"x": 1}), json!({"x": 2}), json!({"x": 2.5})], &s).unwrap_err();
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

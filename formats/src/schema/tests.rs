use super::*;
use arrow::datatypes::{DataType, Field as ArrowField, Schema as ArrowSchema};
use std::sync::Arc;

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
        Type::List(item) => {
            assert!(matches!(&item.ty, Type::Struct(f) if f.len() == 2 && f[0].name == "from_sec"))
        }
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

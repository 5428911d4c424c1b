//! What publishing refuses: a version whose schema cannot describe the rows it lists.

use arrow::datatypes::{DataType, Field, Schema};
use flywheel_coordinator::{publish_once, CoordinatorError, PublishRequest};
use flywheel_formats::{schema_to_json, Table};
use flywheel_protocol::{Attempt, ChunkId, ChunkOutput, Mode};

/// The schema (Arrow JSON) of one nullable column `v` of type `ty`.
fn v_of(ty: DataType) -> String {
    schema_to_json(&Schema::new(vec![Field::new("v", ty, true)]))
}

/// Chunk `i`'s output: `rows` rows in a file with `schema` (no file when it has no rows).
fn output(i: u32, rows: u64, schema: Option<&str>) -> ChunkOutput {
    let mut o = ChunkOutput::none(ChunkId(i), Attempt(1));
    if rows > 0 {
        o.file = Some(format!("data/part-{i:05}.parquet"));
        o.rows_in = rows;
        o.rows_out = rows;
        o.bytes = 100;
        o.schema = schema.map(Into::into);
    }
    o
}

fn request<'a>(
    table: &'a Table,
    outputs: &'a [ChunkOutput],
    schema: Option<&str>,
) -> PublishRequest<'a> {
    PublishRequest {
        table,
        mode: Mode::Overwrite,
        outputs: outputs.iter().collect(),
        schema: schema.map(str::to_string),
        provenance: Vec::new(),
        fingerprints: Vec::new(),
        lineage: serde_json::json!({}),
        report: None,
        job_id: None,
        errors: Vec::new(),
    }
}

#[test]
fn rows_are_never_published_under_a_schema_without_columns() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let table = Table::new(dir.path().join("t"));
    let (int_v, str_v) = (v_of(DataType::Int64), v_of(DataType::Utf8));
    let no_columns = schema_to_json(&Schema::empty());
    let outputs = [output(0, 10, Some(&int_v)), output(1, 10, Some(&str_v))];
    for schema in [None, Some(no_columns.as_str())] {
        let e = match publish_once(request(&table, &outputs, schema)) {
            Ok(p) => panic!(
                "published version {} with schema {schema:?}",
                p.manifest.version
            ),
            Err(e) => e,
        };
        assert!(matches!(e, CoordinatorError::SchemaConflict(_)), "{e}");
        assert!(e.to_string().contains("20 rows"), "{e}");
        assert_eq!(table.latest_version().expect("versions read"), None);
    }
}

#[test]
fn a_chunk_whose_file_has_another_schema_than_the_table_is_not_published() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let table = Table::new(dir.path().join("t"));
    let (int_v, str_v) = (v_of(DataType::Int64), v_of(DataType::Utf8));
    let outputs = [output(0, 10, Some(&int_v)), output(1, 10, Some(&str_v))];
    let e = match publish_once(request(&table, &outputs, Some(&int_v))) {
        Ok(p) => panic!("published version {}", p.manifest.version),
        Err(e) => e,
    };
    assert!(e.to_string().contains("chunk 1"), "{e}");
    assert_eq!(table.latest_version().expect("versions read"), None);
}

#[test]
fn a_job_that_yielded_no_rows_publishes_an_empty_version() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let table = Table::new(dir.path().join("t"));
    let outputs = [output(0, 0, None), output(1, 0, None)];
    let p = publish_once(request(&table, &outputs, None)).expect("an empty version");
    assert_eq!(p.manifest.num_rows, 0);
    // With a schema the rows agree with, rows publish.
    let int_v = v_of(DataType::Int64);
    let outputs = [output(0, 10, Some(&int_v)), output(1, 0, None)];
    let p = publish_once(request(&table, &outputs, Some(&int_v))).expect("a version");
    assert_eq!((p.manifest.version, p.manifest.num_rows), (2, 10));
}

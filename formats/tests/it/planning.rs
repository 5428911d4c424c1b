//! Planning reads metadata only.

use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use flywheel_formats::{plan_chunks_counted, resolve_input, Tail};
use parquet::arrow::ArrowWriter;
use std::sync::Arc;

fn write_parquet(path: &std::path::Path, rows: usize) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("text", DataType::Utf8, false),
    ]));
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows as i64));
    let text: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..rows).map(|i| format!("row {i} {}", "x".repeat(i % 50))),
    ));
    let batch = RecordBatch::try_new(schema.clone(), vec![ids, text]).expect("a valid batch");
    let file = std::fs::File::create(path).expect("the test's temp dir is writable");
    let mut w = ArrowWriter::try_new(file, schema, None).expect("a Parquet writer");
    w.write(&batch).expect("write the batch");
    w.close().expect("close the Parquet file");
}

#[test]
fn planning_a_ten_thousand_file_glob_reads_only_footers() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("part-00000.parquet");
    write_parquet(&first, 20_000);
    let size = std::fs::metadata(&first).unwrap().len();
    for i in 1..10_000 {
        // Hard links: 10,000 files to plan, without 10,000 copies on disk.
        std::fs::hard_link(&first, dir.path().join(format!("part-{i:05}.parquet"))).unwrap();
    }
    let input = resolve_input(&format!("{}/part-*.parquet", dir.path().display())).unwrap();
    assert_eq!(input.files.len(), 10_000);
    let (slices, bytes_read) = plan_chunks_counted(&input, 8_000, Tail::PerFile).unwrap();
    // 3 chunks of a 20,000-row file each; a file's tail is cut finer only in files of 64
    // chunks or more (each file's chunks depend on that file alone).
    assert_eq!(slices.len(), 30_000);
    assert!(
        slices
            .windows(2)
            .all(|w| (w[0].path.as_str(), w[0].row_start) < (w[1].path.as_str(), w[1].row_start)),
        "plan in input order"
    );
    let total = size * 10_000;
    let per_file = bytes_read / 10_000;
    eprintln!(
        "file size {size} B, planning read {per_file} B per file ({bytes_read} of {total} B)"
    );
    assert!(
        size > 100_000,
        "files must be large enough for the check to mean something"
    );
    assert!(per_file < 4_096, "planning read {per_file} bytes per file; a footer is far smaller than the {size}-byte file");
}

#[test]
fn planning_reads_the_same_bytes_whatever_the_file_size() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.parquet");
    let big = dir.path().join("big.parquet");
    write_parquet(&small, 1_000);
    write_parquet(&big, 400_000);
    let read = |p: &std::path::Path| {
        plan_chunks_counted(
            &resolve_input(&p.display().to_string()).unwrap(),
            1_000_000,
            Tail::PerFile,
        )
        .unwrap()
        .1
    };
    let (a, b) = (read(&small), read(&big));
    assert!(
        std::fs::metadata(&big).unwrap().len() > 100 * std::fs::metadata(&small).unwrap().len() / 2
    );
    // One row group either way: the footers are about the same size, whatever the data.
    assert!(
        b < 2 * a + 1024,
        "small file: {a} B read, big file: {b} B read"
    );
}

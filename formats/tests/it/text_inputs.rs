//! Text inputs (CSV, JSONL): faults past the planning sample are named by the worker that reads
//! them, with the line in the file; a byte-order mark is not part of the first column's name;
//! inputs with no rows are refused unless other files of the input have some.

use arrow::record_batch::RecordBatch;
use flywheel_formats::{plan_chunks, read_slice, resolve_input, FormatError};
use std::path::Path;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("the test writes its file");
    p.display().to_string()
}

/// Plans `address` and reads every chunk: the batches, or the first error.
fn read_all(address: &str) -> Result<Vec<RecordBatch>, FormatError> {
    let input = resolve_input(address)?;
    let mut batches = Vec::new();
    for slice in plan_chunks(&input, 10_000)? {
        batches.extend(read_slice(&slice, 4096)?);
    }
    Ok(batches)
}

fn error_of(address: &str) -> String {
    match read_all(address) {
        Ok(b) => panic!("{address}: read as {} batches, not refused", b.len()),
        Err(e) => e.to_string(),
    }
}

/// `n` good CSV data lines (about 3 MiB for 100,000), then `bad`, then a few more.
fn long_csv(n: usize, bad: &[u8]) -> Vec<u8> {
    let mut text = b"id,text\n".to_vec();
    for i in 0..n {
        text.extend_from_slice(format!("{i},row number {i} with some text\n").as_bytes());
    }
    text.extend_from_slice(bad);
    for i in 0..10 {
        text.extend_from_slice(format!("{i},after\n").as_bytes());
    }
    text
}

#[test]
fn csv_faults_past_the_planning_sample_name_their_line_and_column() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let n = 100_000;
    let ragged = write(dir.path(), "ragged.csv", &long_csv(n, b"7,b,extra\n"));
    let e = error_of(&ragged);
    let want = format!(
        "ragged.csv: line {}: has 3 fields, the header has 2 (id, text)",
        n + 2
    );
    assert!(e.contains(&want), "{e}");
    let utf8 = write(dir.path(), "utf8.csv", &long_csv(n, b"7,caf\xe9\n"));
    let e = error_of(&utf8);
    let want = format!(
        "utf8.csv: line {}, column 'text': not valid UTF-8 (0xE9 at byte 6",
        n + 2
    );
    assert!(e.contains(&want), "{e}");
}

#[test]
fn jsonl_faults_past_the_planning_sample_name_their_line_and_column() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut text = Vec::new();
    let n = 60_000;
    for i in 0..n {
        text.extend_from_slice(
            format!("{{\"id\": {i}, \"text\": \"row number {i}\"}}\n").as_bytes(),
        );
    }
    text.extend_from_slice(b"{\"id\": 1, \"text\": \"caf\xe9\"}\n{\"id\": 2, \"text\": \"x\"}\n");
    let p = write(dir.path(), "late.jsonl", &text);
    let e = error_of(&p);
    let want = format!(
        "late.jsonl: line {}, column 23: not valid UTF-8 (byte 0xE9)",
        n + 1
    );
    assert!(e.contains(&want), "{e}");
}

#[test]
fn a_byte_order_mark_is_not_part_of_the_first_column() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let csv = write(dir.path(), "bom.csv", b"\xEF\xBB\xBFid,text\n0,a\n1,b\n");
    let jsonl = write(
        dir.path(),
        "bom.jsonl",
        b"\xEF\xBB\xBF{\"id\": 0}\n{\"id\": 1}\n",
    );
    for (address, columns) in [(csv, vec!["id", "text"]), (jsonl, vec!["id"])] {
        let batches = read_all(&address).unwrap_or_else(|e| panic!("{address}: {e}"));
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 2, "{address}");
        let schema = batches[0].schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, columns, "{address}");
    }
}

#[test]
fn inputs_with_no_rows_are_refused_unless_other_files_of_the_input_have_some() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, bytes, why) in [
        ("empty.csv", &b""[..], "the file is empty"),
        (
            "header.csv",
            b"id,text\n",
            "a header line and no data lines",
        ),
        ("empty.jsonl", b"", "the file is empty"),
        ("blank.jsonl", b"\n  \n", "only blank lines"),
    ] {
        let p = write(dir.path(), name, bytes);
        let e = error_of(&p);
        assert!(e.contains(&format!("{name}: no rows ({why})")), "{e}");
    }
    // A glob of only empty files says so, naming the first and counting the others.
    let e = error_of(&format!("{}/*.csv", dir.path().display()));
    assert!(
        e.contains("empty.csv: no rows (the file is empty), and the other file of the input has none either"),
        "{e}"
    );
    // With one file that has rows, the empty ones are simply no rows of the input.
    write(dir.path(), "rows.csv", b"id,text\n0,a\n1,b\n");
    let batches = read_all(&format!("{}/*.csv", dir.path().display())).expect("the glob is read");
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 2);
}

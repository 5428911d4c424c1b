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

/// Asserts that `address` is refused with an error that contains `want`.
fn refused_with(address: &str, want: &str) {
    match read_all(address) {
        Ok(b) => panic!("{address}: read as {} batches, not refused", b.len()),
        Err(e) => assert!(
            e.to_string().contains(want),
            "{address}: want {want:?} in {e}"
        ),
    }
}

/// A CSV file of 100,000 good lines (about 3.4 MB) with `bad` as data line 40,001 (line 40,002
/// of the file), in none of the parts that planning samples (the first MiB, the middle, the end).
fn long_csv(bad: &[u8]) -> Vec<u8> {
    let mut text = b"id,text\n".to_vec();
    for i in 0..100_000 {
        if i == 40_000 {
            text.extend_from_slice(bad);
        }
        text.extend_from_slice(format!("{i},row number {i} with some text\n").as_bytes());
    }
    text
}

#[test]
fn csv_faults_past_the_planning_sample_name_their_line_and_column() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, bad, want) in [
        ("ragged.csv", &b"7,b,extra\n"[..], "line 40002: has 3 fields, the header has 2"),
        ("utf8.csv", b"7,caf\xe9\n", "line 40002, column 'text': not valid UTF-8"),
        (
            "type.csv",
            b"abc,x\n",
            "line 40002, column 'id': Error while parsing value 'abc' as type 'Int64' (the column's type was inferred from a sample of the file)",
        ),
    ] {
        let p = write(dir.path(), name, &long_csv(bad));
        refused_with(&p, &format!("{name}: {want}"));
    }
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
    let want = format!("late.jsonl: line {}, column 23: not valid UTF-8", n + 1);
    refused_with(&p, &want);
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
        refused_with(&p, &format!("{name}: no rows ({why})"));
    }
    // A glob of only empty files says so, naming the first and counting the others.
    refused_with(
        &format!("{}/*.csv", dir.path().display()),
        "empty.csv: no rows (the file is empty), and the other file of the input has none either",
    );
    // With one file that has rows, the empty ones are simply no rows of the input.
    write(dir.path(), "rows.csv", b"id,text\n0,a\n1,b\n");
    let batches = read_all(&format!("{}/*.csv", dir.path().display())).expect("the glob is read");
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 2);
}

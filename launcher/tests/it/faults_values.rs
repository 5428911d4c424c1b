//! Issue 15, values and schemas: what a mapper yields is stored exactly, or the job fails naming
//! the row, column and value; whichever mapper path carries it (builtin, JSON lines, Arrow
//! IPC), whatever finishes first and whatever `--chunk-rows` is.

use crate::support::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Longest a `flywheel map` here may run: a hang is a failure, not a stuck test.
const DEADLINE: Duration = Duration::from_secs(180);

/// `flywheel map` under a deadline, with `--python PY` when given and two workers unless
/// `extra` says otherwise.
fn map(input: &Path, output: &Path, mapper: &str, python: Option<&Path>, extra: &[&str]) -> Ran {
    let mut m = Map::new(input, output)
        .mapper(mapper)
        .args(extra)
        .within(DEADLINE);
    if !extra.contains(&"--workers") {
        m = m.workers(2);
    }
    if let Some(py) = python {
        m = m.python(py);
    }
    m.run()
}

/// `map` with the Python `py`, which must succeed, and its table read file by file.
fn map_and_read(
    arrow: &Path,
    py: &Path,
    (input, output): (&Path, &Path),
    mapper: &str,
    extra: &[&str],
) -> (Ran, Value) {
    let o = map(input, output, mapper, Some(py), extra);
    assert!(o.status.success(), "{}: {}", py.display(), o.stderr_text());
    (o, read_files(arrow, output))
}

/// The table read file by file with pyarrow (see read_files.py).
fn read_files(py: &Path, table: &Path) -> Value {
    py_json(py, "read_files.py", &[table])
}

/// The two mapper paths: the --python that has pyarrow (Arrow IPC) and one that has not
/// (JSON lines). `None` where this machine lacks one (skipped, or failed under CI).
fn pythons() -> Option<(PathBuf, PathBuf)> {
    let arrow = pyarrow_python();
    let plain = ["/usr/bin/python3", "python3"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| {
            Command::new(p)
                .args(["-I", "-c", "import json"])
                .output()
                .is_ok_and(|o| o.status.success())
                && !Command::new(p)
                    .args(["-I", "-c", "import pyarrow"])
                    .output()
                    .is_ok_and(|o| o.status.success())
        });
    if !available(arrow.is_some(), "a Python with pyarrow")
        || !available(plain.is_some(), "a Python without pyarrow")
    {
        return None;
    }
    Some((arrow?, plain?))
}

/// What most tests here start with: both Pythons (Arrow, plain), a temporary directory, the
/// input `in.parquet` of ids 0..n and the mapper file `m.py` holding `code`; `None` where a
/// Python is missing (skipped, or failed under CI).
fn with_mapper(
    n: u64,
    code: &str,
) -> Option<(PathBuf, PathBuf, tempfile::TempDir, PathBuf, PathBuf)> {
    let (arrow, plain) = pythons()?;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let input = ids_input(&arrow, dir.path(), n);
    let m = write_file(dir.path(), "m.py", code);
    Some((arrow, plain, dir, input, m))
}

#[test]
fn an_empty_object_is_stored_as_json_on_both_mapper_paths() {
    let code = "def empty(row):\n    yield {\"id\": row[\"id\"], \"v\": {}}\n\n\
         def mixed(row):\n    # chunk 0 only empty objects, later chunks a member\n    \
         yield {\"id\": row[\"id\"], \"v\": {} if row[\"id\"] < 10 else {\"a\": row[\"id\"]}}\n";
    let Some((arrow, plain, dir, input, m)) = with_mapper(40, code) else {
        return;
    };
    for (k, py) in [&arrow, &plain].into_iter().enumerate() {
        let out = dir.path().join(format!("empty-{k}"));
        let empty = format!("{}:empty", m.display());
        let (_, t) = map_and_read(&arrow, py, (&input, &out), &empty, &["--chunk-rows", "10"]);
        assert_eq!(t["files_agree"], true);
        assert_eq!(t["names"], json!(["id", "v"]));
        for (i, r) in t["rows"].as_array().expect("rows").iter().enumerate() {
            assert_eq!(r, &json!({"id": i, "v": "{}"}), "{}", py.display());
        }
        // Where other rows give the object a member, the empty ones have it null.
        let out = dir.path().join(format!("mixed-{k}"));
        let mixed = format!("{}:mixed", m.display());
        let (_, t) = map_and_read(&arrow, py, (&input, &out), &mixed, &["--chunk-rows", "10"]);
        assert_eq!(t["files_agree"], true, "{t}");
        let rows = t["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), 40);
        for (i, r) in rows.iter().enumerate() {
            let a = if i < 10 { json!(null) } else { json!(i) };
            assert_eq!(r, &json!({"id": i, "v": {"a": a}}), "{}", py.display());
        }
    }
}

#[test]
fn a_value_that_does_not_fit_its_column_is_an_error_on_every_mapper_path() {
    let Some((arrow, plain)) = pythons() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let input = dir.path().join("in.parquet");
    let code = format!(
        "import pyarrow as pa, pyarrow.parquet as pq; pq.write_table(pa.table({{'id': pa.array(range(200), pa.int64()), 'text': [f't{{i}}' for i in range(200)]}}), {:?})",
        input.display().to_string()
    );
    assert!(run(Command::new(&arrow).args(["-c", &code]))
        .status
        .success());
    for (out, schema, says) in [
        // builtin: ids above 127 do not fit int8 (they used to become NULL, with exit 0).
        (
            "b1",
            "id: int8?, text: str?",
            "output row 128 (of chunk 0), column 'id': value 128 does not fit the column's type int8",
        ),
        // ... and text is not an int (every text used to become NULL).
        (
            "b2",
            "id: int?, text: int?",
            "output row 0 (of chunk 0), column 'text': value \"t0\" does not fit the column's type int",
        ),
    ] {
        let extra = ["--workers", "1", "--schema", schema];
        let o = map(&input, &dir.path().join(out), "builtin:identity", None, &extra);
        o.assert_failed(schema, &[says]);
    }
    // Python, on the Arrow path and on the JSON path: the same rows fail the same way.
    let m = write_file(
        dir.path(),
        "m.py",
        "def f(row):\n    yield {\"id\": row[\"id\"] * 2}\n",
    );
    for (k, py) in [&arrow, &plain].into_iter().enumerate() {
        let out = dir.path().join(format!("p{k}"));
        let o = map(
            &input,
            &out,
            &format!("{}:f", m.display()),
            Some(py),
            &["--workers", "1", "--schema", "id: int8?"],
        );
        o.assert_failed(
            &py.display().to_string(),
            &[
                "output row 64 (from input row 64 of",
                "column 'id': expected int8?, got number 128",
            ],
        );
    }
}

#[test]
fn the_inferred_schema_does_not_depend_on_scheduling_or_chunk_rows() {
    let code = r#"
import time

def later_key(row):
    # A key only the last chunks have; they are slow, so the first chunk finishes first.
    out = {"id": row["id"]}
    if row["id"] >= 40:
        time.sleep(0.01)
        out["extra"] = f"x{row['id']}"
    yield out

def widen(row):
    yield {"id": row["id"], "v": row["id"] if row["id"] < 30 else row["id"] + 0.5}

def flip(row):
    yield {"id": row["id"], "v": row["id"] if row["id"] < 30 else str(row["id"])}
"#;
    let Some((arrow, plain, dir, input, m)) = with_mapper(60, code) else {
        return;
    };
    let spec = |f: &str| format!("{}:{f}", m.display());
    for (k, py) in [&arrow, &plain].into_iter().enumerate() {
        // A key that first appears in a later chunk: always a column, null before.
        let mut tables = Vec::new();
        for rows in ["10", "1000"] {
            let out = dir.path().join(format!("later-{k}-{rows}"));
            let (o, t) = map_and_read(
                &arrow,
                py,
                (&input, &out),
                &spec("later_key"),
                &["--chunk-rows", rows],
            );
            assert_eq!(t["files_agree"], true, "{t}");
            assert_eq!(t["names"], json!(["id", "extra"]));
            let rows_read = t["rows"].as_array().expect("rows");
            assert_eq!(rows_read.len(), 60);
            assert_eq!(rows_read[0], json!({"id": 0, "extra": null}));
            assert_eq!(rows_read[59], json!({"id": 59, "extra": "x59"}));
            if rows == "10" {
                assert!(
                    stderr_text(&o).contains("run again to store them with the table schema"),
                    "{}",
                    stderr_text(&o)
                );
            }
            tables.push((t["names"].clone(), t["types"].clone(), t["rows"].clone()));
        }
        assert_eq!(tables[0], tables[1], "--chunk-rows changed the table");
        // int, then float: float, the widening named in the report.
        let mut tables = Vec::new();
        for rows in ["10", "1000"] {
            let out = dir.path().join(format!("widen-{k}-{rows}"));
            let (o, t) = map_and_read(
                &arrow,
                py,
                (&input, &out),
                &spec("widen"),
                &["--chunk-rows", rows],
            );
            assert_eq!(t["files_agree"], true, "{t}");
            assert_eq!(t["types"], json!(["int64", "double"]));
            if rows == "10" {
                assert!(
                    stderr_text(&o).contains("column 'v' was widened to float? (chunk 0 had int"),
                    "{}",
                    stderr_text(&o)
                );
            }
            tables.push((t["names"].clone(), t["types"].clone(), t["rows"].clone()));
        }
        assert_eq!(tables[0], tables[1], "--chunk-rows changed the table");
        // int, then str: the same error inside one chunk and across chunks.
        for rows in ["10", "1000"] {
            let out = dir.path().join(format!("flip-{k}-{rows}"));
            let o = map(
                &input,
                &out,
                &spec("flip"),
                Some(py),
                &["--chunk-rows", rows],
            );
            o.assert_failed(
                &py.display().to_string(),
                &[
                    "column 'v' has int values (first at ",
                    "and str values (first at ",
                    "declare its type with --schema",
                ],
            );
        }
    }
}

#[test]
fn nan_and_infinities_are_stored_whatever_python_runs_the_mapper() {
    let code = "VALUES = [float('nan'), float('inf'), float('-inf'), 1.5]\n\n\
         def f(row):\n    yield {\"id\": row[\"id\"], \"f\": VALUES[row[\"id\"] % 4], \"l\": [VALUES[row[\"id\"] % 4]]}\n";
    let Some((arrow, plain, dir, input, m)) = with_mapper(8, code) else {
        return;
    };
    let mut tables = Vec::new();
    for (k, py) in [&arrow, &plain].into_iter().enumerate() {
        for schema in [None, Some("id: int, f: float32?, l: list<float>")] {
            let out = dir.path().join(format!("nan-{k}-{}", schema.is_some()));
            let mut extra = vec!["--chunk-rows", "4"];
            if let Some(s) = schema {
                extra.extend(["--schema", s]);
            }
            let f = format!("{}:f", m.display());
            let (_, t) = map_and_read(&arrow, py, (&input, &out), &f, &extra);
            let fs: Vec<&Value> = t["rows"]
                .as_array()
                .expect("rows")
                .iter()
                .map(|r| &r["f"])
                .collect();
            assert_eq!(
                fs,
                [json!("nan"), json!("inf"), json!("-inf"), json!(1.5)]
                    .iter()
                    .cycle()
                    .take(8)
                    .collect::<Vec<_>>(),
                "{}",
                py.display()
            );
            assert_eq!(t["rows"][2]["l"], json!(["-inf"]));
            tables.push((t["names"].clone(), t["types"].clone(), t["rows"].clone()));
        }
    }
    // Same rows, same table, on both paths.
    assert_eq!(tables[0], tables[2]);
    assert_eq!(tables[1], tables[3]);
}

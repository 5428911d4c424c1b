//! JSONL and CSV chunks are cut by bytes, so how many rows each holds is known only once it is
//! read: provenance and error messages give the rows a chunk really held, never the estimate.

use crate::support::*;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// 300 lines: short ones first (what planning samples), then long ones, so chunks in the
/// second part hold far fewer rows than planned.
fn uneven_jsonl(dir: &Path) -> std::path::PathBuf {
    let mut text = String::new();
    for i in 0..300 {
        if i < 100 {
            text += &format!("{{\"id\": {i}}}\n");
        } else {
            text += &format!("{{\"id\": {i}, \"pad\": \"{}\"}}\n", "x".repeat(60 + i % 7));
        }
    }
    write_file(dir, "uneven.jsonl", &text)
}

/// The uneven input and a map of it into `dir/out`, 40 rows a chunk, whose mapper raises
/// `ValueError: no` on the rows where `when` holds.
fn raising_map(py: &Path, dir: &Path, when: &str) -> (std::path::PathBuf, Map) {
    let input = uneven_jsonl(dir);
    let code = format!(
        "def f(row):\n    if {when}:\n        raise ValueError('no')\n    yield {{'id': row['id']}}\n"
    );
    let map = Map::new(&input, dir.join("out"))
        .mapper(py_mapper(dir, "m.py", &code, "f"))
        .python(py)
        .chunk_rows(40)
        .within(Duration::from_secs(120));
    (input, map)
}

#[test]
fn a_text_chunks_provenance_names_the_rows_it_held() {
    let Some((py, dir)) = setup() else {
        return;
    };
    let input = uneven_jsonl(dir.path());
    let out = dir.path().join("out");
    Map::new(&input, &out)
        .identity()
        .workers(3)
        .chunk_rows(40)
        .within(Duration::from_secs(120))
        .run()
        .assert_ok("identity over uneven JSONL");
    let m = info(&out);
    let files = m["files"].as_array().expect("files");
    assert!(files.len() >= 4, "{m}");
    let read = read_with_pyarrow(&py, &out, None);
    let rows = read["rows"].as_array().expect("rows");
    let mut at = 0;
    for f in files {
        let p = &f["provenance"];
        let n = f["rows"].as_u64().expect("rows");
        assert_eq!(p["input"]["row_start"], at, "{f}");
        assert_eq!(p["input"]["row_count"], n, "{f}");
        assert_eq!(rows[at as usize]["id"], Value::from(at), "{f}");
        at += n;
    }
    assert_eq!(at, 300);
}

#[test]
fn a_failed_text_chunk_is_named_by_its_bytes_and_the_rows_it_starts_at() {
    let Some((py, dir)) = setup() else {
        return;
    };
    let (input, map) = raising_map(&py, dir.path(), "row['id'] == 250");
    let o = map.workers(1).max_attempts(1).run();
    o.assert_failed("a row that raises", &["ValueError: no"]);
    let err = o.stderr_text();
    // "chunk N (bytes B..E of PATH, from row S)": S is the number of lines before the chunk.
    let bytes = err
        .split("(bytes ")
        .nth(1)
        .and_then(|r| r.split("..").next())
        .and_then(|b| b.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("the failure names the chunk's bytes: {err}"));
    let text = std::fs::read_to_string(&input).expect("the input");
    // A chunk holds the lines that start inside its bytes: those before are line 0 and one
    // after each newline before byte B - 1.
    let before = 1 + text[..bytes - 1].matches('\n').count();
    assert!(err.contains(&format!("from row {before})")), "{err}");
    assert!(before > 100 && before <= 250, "{before}");
}

#[test]
fn a_text_chunks_refused_rows_are_numbered_by_the_rows_it_held() {
    let Some((py, dir)) = setup() else {
        return;
    };
    let (_, map) = raising_map(&py, dir.path(), "row['id'] % 50 == 7");
    let out = dir.path().join("out");
    map.workers(2)
        .on_row_error("skip")
        .run()
        .assert_ok("rows refused to _errors");
    let errors = read_with_pyarrow(&py, &out.join("_errors"), None);
    let mut got: Vec<u64> = errors["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["row"].as_u64().expect("a row number"))
        .collect();
    // Each refused row is there as its line holds it, alone.
    for r in errors["rows"].as_array().expect("rows") {
        let input: Value = serde_json::from_str(r["input"].as_str().expect("input text"))
            .unwrap_or_else(|e| panic!("one row of JSON, not a chunk ({e}): {r}"));
        assert_eq!(input["id"], r["row"], "{r}");
    }
    got.sort_unstable();
    // The input's line i holds id i: each refused row is named by its line.
    assert_eq!(got, [7, 57, 107, 157, 207, 257], "{errors}");
}

//! Input formats: the same rows in Parquet, JSONL, CSV, Arrow IPC and HDF5 map to equal tables;
//! bad inputs are refused with exit 2 and a message naming the file (and line).

use crate::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROWS: u64 = 100_000;

fn make_inputs(py: &Path, dir: &Path) {
    let o = run(Command::new(py)
        .arg(root().join("launcher/tests/it/make_inputs.py"))
        .arg(dir)
        .arg(ROWS.to_string()));
    assert!(o.status.success(), "make_inputs.py: {}", stderr_text(&o));
}

fn digest(py: &Path, table: &Path) -> Value {
    py_json(
        py,
        "table_digest.py",
        &[
            table,
            Path::new("id"),
            Path::new("score"),
            Path::new("name"),
        ],
    )
}

fn formats() -> Vec<&'static str> {
    let mut f = vec!["data.parquet", "data.jsonl", "data.csv", "data.arrow"];
    if cfg!(feature = "hdf5") {
        f.push("data.h5:/g");
    }
    f
}

#[test]
fn the_same_rows_in_every_format_map_to_equal_tables() {
    let Some(py) = pyarrow_or_skip() else { return };
    if cfg!(feature = "hdf5") && !available(python_has(&py, "h5py"), "h5py in the test Python") {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    make_inputs(&py, dir.path());
    let mut reference: Option<Value> = None;
    for (chunk_rows, workers) in [(997u64, 3u32), (25_000, 1), (100_000, 2)] {
        for input in formats() {
            let out = dir.path().join(format!(
                "out-{}-{chunk_rows}-{workers}",
                input.replace([':', '/', '.'], "_")
            ));
            let o = Map::new(format!("{}/{input}", dir.path().display()), &out)
                .identity()
                .chunk_rows(chunk_rows)
                .workers(workers)
                .run();
            assert!(o.status.success(), "{input}");
            let d = digest(&py, &out);
            assert_eq!(d["num_rows"].as_u64(), Some(ROWS), "{input}");
            assert_eq!(d["rows"].as_u64(), Some(ROWS), "{input}");
            match &reference {
                None => reference = Some(d["digest"].clone()),
                Some(r) => assert_eq!(
                    &d["digest"], r,
                    "{input} with --chunk-rows {chunk_rows} --workers {workers} differs"
                ),
            }
        }
    }
}

fn expect_bad_input(input: impl AsRef<std::ffi::OsStr>, needles: &[&str]) {
    let input = Path::new(input.as_ref()).display().to_string();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = dir.path().join("t");
    let o = Map::new(&input, &out).identity().chunk_rows(1000).run();
    assert_eq!(o.code(), Some(2), "{input}");
    let stderr = o.stderr_text();
    assert!(
        stderr.starts_with("error: ") || stderr.contains("\nerror: "),
        "{stderr}"
    );
    for n in needles {
        assert!(stderr.contains(n), "{input}: expected {n:?} in {stderr}");
    }
    assert!(!has_version(&out), "nothing is published for bad input");
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("the test writes its file");
    p
}

/// formats/tests/bad/EXPECTED.tsv: for this build, each corpus file and a substring of its error.
fn bad_corpus() -> Vec<(PathBuf, String)> {
    let dir = root().join("formats/tests/bad");
    let build = if cfg!(feature = "hdf5") {
        "hdf5"
    } else {
        "default"
    };
    let text = std::fs::read_to_string(dir.join("EXPECTED.tsv")).expect("EXPECTED.tsv is read");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (file, for_build, expected) = (f.next()?, f.next()?, f.next()?);
            (for_build == "any" || for_build == build)
                .then(|| (dir.join(file), expected.to_string()))
        })
        .collect()
}

#[test]
fn every_file_of_the_bad_input_corpus_is_refused_with_exit_2_naming_it() {
    let corpus = bad_corpus();
    assert!(corpus.len() >= 15, "the corpus is read: {corpus:?}");
    for (file, expected) in corpus {
        let mut address = file.display().to_string();
        if address.ends_with(".h5") {
            address.push_str(":/g");
        }
        // expect_bad_input: exit 2, an `error:` line, nothing published.
        expect_bad_input(&address, &[&file.display().to_string(), &expected]);
    }
}

#[test]
fn missing_files_and_empty_globs_are_refused() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    expect_bad_input(
        format!("{}/nope.parquet", dir.path().display()),
        &["nope.parquet' matches no file"],
    );
    expect_bad_input(
        format!("{}/*.parquet", dir.path().display()),
        &["*.parquet' matches no file"],
    );
    let txt = write(dir.path(), "notes.txt", b"hello");
    expect_bad_input(&txt, &["notes.txt: unknown input format"]);
}

#[test]
fn a_corrupt_parquet_footer_is_refused() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut bytes = std::fs::read(dialogues()).expect("the file is read");
    let n = bytes.len();
    bytes[n - 20..n - 8].fill(0xff);
    let p = write(dir.path(), "broken.parquet", &bytes);
    expect_bad_input(&p, &["broken.parquet: not a readable Parquet file"]);
    let p = write(dir.path(), "empty.parquet", b"");
    expect_bad_input(&p, &["empty.parquet: not a readable Parquet file"]);
}

#[test]
fn a_truncated_arrow_file_is_refused() {
    let Some((py, dir)) = setup() else { return };
    make_inputs(&py, dir.path());
    let bytes = std::fs::read(dir.path().join("data.arrow")).expect("the file is read");
    let p = write(dir.path(), "cut.arrow", &bytes[..bytes.len() / 2]);
    expect_bad_input(&p, &["cut.arrow: not a readable Arrow IPC file"]);
}

#[test]
fn a_jsonl_line_that_is_not_json_is_named_by_file_and_line() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // Early: found while planning, before any worker starts.
    let mut text = String::new();
    for i in 0..10 {
        text.push_str(&format!("{{\"id\": {i}}}\n"));
    }
    text.push_str("{\"id\": 10, oops}\n");
    let p = write(dir.path(), "early.jsonl", text.as_bytes());
    expect_bad_input(
        &p,
        &["early.jsonl: line 11, column 12: not JSON: key must be a string"],
    );
    // Late (past the planning sample): found by the worker that reads it; the job stops at once.
    let mut text = String::new();
    for i in 0..60_000 {
        text.push_str(&format!("{{\"id\": {i}, \"text\": \"row number {i}\"}}\n"));
    }
    text.push_str("[1, 2, 3]\n");
    for i in 0..100 {
        text.push_str(&format!("{{\"id\": {i}, \"text\": \"after\"}}\n"));
    }
    let p = write(dir.path(), "late.jsonl", text.as_bytes());
    expect_bad_input(
        &p,
        &[
            "late.jsonl: line 60001: not a JSON object",
            "nothing was published",
        ],
    );
}

#[test]
fn more_than_a_planning_sample_of_blank_lines_before_the_rows_is_skipped() {
    let Some((py, dir)) = setup() else { return };
    let blanks = "\n".repeat(3 << 20);
    let rows: String = (0..10).map(|i| format!("{{\"id\": {i}}}\n")).collect();
    let p = write(
        dir.path(),
        "late.jsonl",
        format!("{blanks}{rows}").as_bytes(),
    );
    let out = dir.path().join("t");
    Map::new(&p, &out).identity().run().assert_ok("map");
    assert_eq!(ids(&py, &out, None), (0..10).collect::<Vec<u64>>());
    let csv: String = (0..10).map(|i| format!("{i},x{i}\n")).collect();
    let p = write(
        dir.path(),
        "late.csv",
        format!("id,text\n{blanks}{csv}").as_bytes(),
    );
    let out = dir.path().join("c");
    Map::new(&p, &out).identity().run().assert_ok("map");
    assert_eq!(ids(&py, &out, None), (0..10).collect::<Vec<u64>>());
    // A bad line after them is named by its line in the file; only blank lines are no rows.
    let p = write(
        dir.path(),
        "bad.jsonl",
        format!("{blanks}{{\"id\": 1}}\n{{oops}}\n").as_bytes(),
    );
    expect_bad_input(
        &p,
        &[&format!("bad.jsonl: line {}, column 2", (3 << 20) + 2)],
    );
    let p = write(dir.path(), "blank.jsonl", blanks.as_bytes());
    expect_bad_input(&p, &["blank.jsonl: no rows (only blank lines)"]);
}

#[test]
fn a_csv_with_newlines_inside_quotes_is_refused() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let p = write(dir.path(), "q.csv", b"id,text\n1,\"one\ntwo\"\n2,plain\n");
    expect_bad_input(&p, &["q.csv: line 2: a quoted field spans lines"]);
}

#[test]
fn an_input_with_no_rows_is_refused_unless_other_files_of_its_glob_have_rows() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let empty = write(dir.path(), "a.csv", b"");
    expect_bad_input(&empty, &["a.csv: no rows (the file is empty)"]);
    write(dir.path(), "b.csv", b"id,text\n");
    let glob = format!("{}/*.csv", dir.path().display());
    expect_bad_input(
        &glob,
        &["a.csv: no rows (the file is empty), and the other file of the input has none either"],
    );
    // With rows in one file the others add none; its byte-order mark is not part of a name.
    write(dir.path(), "c.csv", b"\xEF\xBB\xBFid,text\n0,a\n1,b\n");
    let out = dir.path().join("t");
    Map::new(&glob, &out).identity().run().assert_ok("map");
    let v = info(&out);
    assert_eq!(v["num_rows"].as_u64(), Some(2), "{v}");
    let schema = v["schema_text"].as_str().unwrap_or_default();
    assert!(schema.starts_with("id: "), "{schema}");
}

#[cfg(not(feature = "hdf5"))]
#[test]
fn hdf5_input_without_the_feature_says_how_to_build() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let p = write(dir.path(), "x.h5", b"\x89HDF\r\n\x1a\n");
    expect_bad_input(
        &p,
        &["HDF5 support is not compiled into this build; rebuild with --features hdf5"],
    );
}

#[cfg(feature = "hdf5")]
#[test]
fn ragged_hdf5_datasets_are_refused_and_nd_datasets_become_tensor_columns() {
    let Some((py, dir)) = setup() else { return };
    let script = format!(
        "import h5py, numpy as np\nwith h5py.File({:?}, 'w') as f:\n    f['a/x'] = np.arange(10)\n    f['a/y'] = np.arange(9)\n    f['b/x'] = np.arange(6, dtype=np.int32)\n    f['b/emb'] = np.arange(24, dtype=np.float32).reshape(6, 2, 2)\n    f['b/tag'] = np.array([b'a', b'bb', b'ccc', b'', b'e', b'ffffffffffff'], dtype='S12')\n    f['b/ok'] = np.array([True, False, True, True, False, False])\n",
        dir.path().join("m.h5").display().to_string()
    );
    let o = Command::new(&py)
        .args(["-c", &script])
        .output()
        .expect("the command runs");
    if !available(o.status.success(), "h5py in the test Python") {
        return;
    }
    let f = dir.path().join("m.h5").display().to_string();
    expect_bad_input(
        format!("{f}:/a"),
        &["m.h5: HDF5 datasets of group '/a' have different first dimensions (x: 10, y: 9)"],
    );
    let rows = Map::new(format!("{f}:/b"), dir.path().join("t"))
        .identity()
        .chunk_rows(4)
        .run()
        .assert_ok("map")
        .rows(&py);
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[1]["x"], 1);
    assert_eq!(rows[1]["emb"], serde_json::json!([4.0, 5.0, 6.0, 7.0]));
    assert_eq!(rows[2]["tag"], "ccc", "fixed-length strings");
    assert_eq!(rows[5]["tag"], "ffffffffffff");
    assert_eq!(
        (rows[0]["ok"].clone(), rows[1]["ok"].clone()),
        (serde_json::json!(true), serde_json::json!(false)),
        "numpy booleans"
    );
}

#[test]
fn a_table_is_an_input_at_any_version() {
    let Some((py, dir)) = setup() else { return };
    let t = dir.path().join("t");
    for mode in ["create", "append"] {
        let o = Map::dialogues(&t)
            .identity()
            .chunk_rows(128)
            .mode(mode)
            .run();
        assert!(o.status.success());
    }
    for (address, rows) in [
        (format!("{}@1", t.display()), 500u64),
        (t.display().to_string(), 1000),
    ] {
        let out = dir.path().join(format!("from-{rows}"));
        let o = Map::new(&address, &out).identity().chunk_rows(300).run();
        assert!(o.status.success(), "{address}");
        let got = read_with_pyarrow(&py, &out, None);
        assert_eq!(got["num_rows"].as_u64(), Some(rows), "{address}");
        let expected: Vec<u64> = (0..rows).map(|i| i % 500).collect();
        assert_eq!(o.ids(&py), expected, "{address}: rows in table order");
        // The lineage pins the input table's version.
        let v = info(&out);
        assert_eq!(
            v["lineage"]["input"]["table"]["version"].as_u64(),
            Some(if rows == 500 { 1 } else { 2 })
        );
    }
    expect_bad_input(
        format!("{}@9", t.display()),
        &["version 9 does not exist (latest is 2)"],
    );
}

#[test]
fn jsonl_keys_that_appear_late_in_a_large_file_are_columns() {
    let Some((py, dir)) = setup() else { return };
    let mut text = String::new();
    let n = 80_000;
    for i in 0..n {
        if i >= n - 1000 {
            text.push_str(&format!("{{\"id\": {i}, \"text\": \"row number {i} with some padding text\", \"late\": {}.5}}\n", i % 7));
        } else {
            text.push_str(&format!(
                "{{\"id\": {i}, \"text\": \"row number {i} with some padding text\"}}\n"
            ));
        }
    }
    assert!(text.len() > 3 << 20);
    let p = write(dir.path(), "sparse.jsonl", text.as_bytes());
    let rows = Map::new(&p, dir.path().join("t"))
        .identity()
        .chunk_rows(5000)
        .run()
        .assert_ok("map")
        .rows(&py);
    assert_eq!(rows.len(), n);
    assert_eq!(rows[0]["late"], Value::Null);
    assert_eq!(
        rows[n - 1]["late"],
        serde_json::json!(((n - 1) % 7) as f64 + 0.5)
    );
}

#[test]
fn byte_ranges_without_a_line_start_are_empty_chunks_on_both_protocol_paths() {
    let Some((py, dir)) = setup() else { return };
    let mut text = String::from("{\"id\": 0, \"t\": \"a\"}\n");
    text.push_str(&format!(
        "{{\"id\": 1, \"t\": \"{}\"}}\n",
        "x".repeat(20_000)
    ));
    for i in 2..10 {
        text.push_str(&format!("{{\"id\": {i}, \"t\": \"b\"}}\n"));
    }
    let p = write(dir.path(), "long.jsonl", text.as_bytes());
    let m = write(
        dir.path(),
        "lenf.py",
        b"def f(row):\n    yield {'id': row['id'], 'n': len(row['t'])}\n",
    );
    let runs = rows_on_both_paths(&py, |name| {
        Map::new(&p, dir.path().join(name))
            .chunk_rows(1)
            .max_attempts(1)
            .mapper(format!("{}:f", m.display()))
    });
    for (name, rows) in runs {
        let ids: Vec<u64> = rows
            .iter()
            .map(|r| r["id"].as_u64().expect("an integer"))
            .collect();
        assert_eq!(ids, (0..10).collect::<Vec<_>>(), "{name}");
        assert_eq!(rows[1]["n"], 20_000);
    }
}

//! Exploring tables: `table stats` against pyarrow, `flywheel query` against DuckDB and at a
//! version, `table show` paths, and `rerun` from lineage.

use crate::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

const SCHEMA: &str = "id: int | score: float? | count: int | name: str | tags: list<str> | meta: json | label: str? | flag: bool | image: image";

fn explore_mapper() -> String {
    format!(
        "{}:ExploreRows",
        root().join("launcher/tests/it/explore_rows.py").display()
    )
}

/// `flywheel map` of `input` into `table` with two workers and a Python mapper run by `py`.
fn map_python(py: &Path, input: &Path, table: &Path, mapper: &str, chunk_rows: u64) -> Map {
    Map::new(input, table)
        .workers(2)
        .mapper(mapper)
        .chunk_rows(chunk_rows)
        .python(py)
}

/// A table of `n` generated rows at `dir/t` (version 1), made by a Python mapper.
fn generated_table(py: &Path, dir: &Path, n: u64) -> PathBuf {
    let ids = dir.join("ids.parquet");
    ids_parquet(py, &ids, 0, n);
    let out = dir.join("t");
    let o = map_python(py, &ids, &out, &explore_mapper(), 700)
        .schema(SCHEMA)
        .run();
    assert!(o.status.success(), "map failed");
    out
}

fn close(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        _ => a == b,
    }
}

#[test]
fn stats_json_equals_what_pyarrow_computes() {
    let Some((py, dir)) = setup() else { return };
    let t = generated_table(&py, dir.path(), 6000);
    let o = run(flywheel().args(["table", "stats", "--json"]).arg(&t));
    assert!(o.status.success());
    let ours: Value = serde_json::from_slice(&o.stdout).expect("the output is JSON");
    let theirs = py_json(
        &py,
        "stats_reference.py",
        &[t.display().to_string(), "1".into()],
    );
    assert_eq!(ours["rows"], theirs["rows"]);
    let ours = ours["columns"].as_array().expect("an array");
    let theirs = theirs["columns"].as_array().expect("an array");
    assert_eq!(ours.len(), theirs.len());
    for (o, r) in ours.iter().zip(theirs) {
        let name = r["name"].as_str().expect("a string");
        assert_eq!(o["name"], r["name"]);
        for (key, want) in r.as_object().expect("an object") {
            let got = &o[key.as_str()];
            assert!(
                close(got, want),
                "{name}.{key}: flywheel {got}, pyarrow {want}"
            );
        }
        // Nothing that pyarrow did not also compute (top values only for categoricals).
        assert_eq!(
            o.get("top").is_some(),
            r.get("top").is_some(),
            "{name}: top values"
        );
    }
    let by = |n: &str| {
        ours.iter()
            .find(|c| c["name"] == n)
            .expect("the column is listed")
            .clone()
    };
    // i² mod 5 is 0, 1 or 4: three labels.
    let label = by("label");
    let top: Vec<&str> = label["top"]
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v["value"].as_str().expect("a string"))
        .collect();
    assert_eq!(top.len(), 3, "label is categorical: {top:?}");
    assert!(by("id").get("top").is_none(), "ids are not categorical");

    // One column, text form.
    let o = run(flywheel()
        .args(["table", "stats", "--column", "label"])
        .arg(&t));
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("label") && !text.contains("score"), "{text}");
    let o = run(flywheel()
        .args(["table", "stats", "--column", "nope"])
        .arg(&t));
    assert_exit(&o, 2, "stats --column nope", &["no column 'nope'"]);
}

#[test]
fn query_sees_the_version_it_names_and_matches_duckdb() {
    let Some(py) = pyarrow_or_skip() else { return };
    if !available(python_has(&py, "duckdb"), "DuckDB in the test Python") {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ids = dir.path().join("ids.parquet");
    ids_parquet(&py, &ids, 0, 100_000);
    let t = dir.path().join("t");
    let mapper = format!(
        "{}:Bucket",
        root().join("launcher/tests/it/bucket.py").display()
    );
    let o = map_python(&py, &ids, &t, &mapper, 20_000).run();
    assert!(o.status.success());
    // Version 2 appends 30,000 more rows; a query of t@1 must not see them.
    let more = dir.path().join("more.parquet");
    ids_parquet(&py, &more, 100_000, 30_000);
    let o = map_python(&py, &more, &t, &mapper, 20_000)
        .mode("append")
        .run();
    assert!(o.status.success());

    let sql = "SELECT bucket, count(*) AS n, sum(x) AS total, min(word) AS first_word FROM t GROUP BY bucket ORDER BY n DESC, bucket";
    let at1 = format!("{}@1", t.display());
    let o = run(flywheel().args(["query", sql, "--format", "json", "--table", &at1]));
    assert!(o.status.success());
    let ours: Value = serde_json::from_slice(&o.stdout).expect("the output is JSON");
    let duck = py_json(
        &py,
        "duckdb_query.py",
        &[t.display().to_string(), "1".into(), sql.into()],
    );
    assert_eq!(ours.as_array().expect("an array").len(), 37, "37 buckets");
    assert_eq!(ours, duck, "flywheel query and DuckDB disagree");

    let count = |address: &str| -> u64 {
        let o = run(flywheel().args([
            "query",
            "SELECT count(*) AS n FROM rows_seen",
            "--format",
            "csv",
            "--table",
            &format!("rows_seen={address}"),
        ]));
        assert!(o.status.success());
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        assert_eq!(text.lines().next(), Some("n"));
        text.lines()
            .nth(1)
            .expect("a second line")
            .parse()
            .expect("a number")
    };
    assert_eq!(count(&at1), 100_000);
    assert_eq!(count(&t.display().to_string()), 130_000);

    // A join of two versions of the same table, and the table form.
    let o = run(flywheel().args([
        "query",
        "SELECT count(*) AS only_in_v2 FROM v2 LEFT JOIN v1 USING (id) WHERE v1.id IS NULL",
        "--table",
        &format!("v1={at1}"),
        "--table",
        &format!("v2={}@2", t.display()),
    ]));
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("only_in_v2") && text.contains("30000"),
        "{text}"
    );

    // Bad SQL: exit 2 with DataFusion's reason.
    let o = run(flywheel().args(["query", "SELECT nope FROM t", "--table", &at1]));
    assert_exit(&o, 2, "bad SQL", &["nope"]);
    assert!(stderr_text(&o).starts_with("error: query:"));
}

#[test]
fn show_navigates_json_by_path_and_names_the_deepest_existing_prefix() {
    let Some((py, dir)) = setup() else { return };
    let t = generated_table(&py, dir.path(), 50);
    let show = |args: &[&str]| run(flywheel().args(["table", "show"]).arg(&t).args(args));
    let o = show(&["--row", "7", "--path", "meta.turns[1].text"]);
    assert!(o.status.success());
    let k = (7 * 7919) % 1000;
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("\"reply {k}\"")
    );
    let o = show(&["--row", "7", "--path", "meta.turns[1].tags", "--raw"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "[\"a\",\"1\"]");
    let o = show(&["--row", "7", "--path", "meta.depth.x.y"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "2");

    // A path that does not exist names the deepest part that does.
    let o = show(&["--row", "7", "--path", "meta.turns[4].text"]);
    assert_exit(
        &o,
        2,
        "meta.turns[4].text",
        &[
            "'meta.turns' is an array of 2 items",
            "deepest part that exists is 'meta.turns'",
        ],
    );
    let o = show(&["--row", "7", "--path", "meta.depth.x.z"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("deepest part that exists is 'meta.depth.x'"),
        "{err}"
    );
    let o = show(&["--row", "50"]);
    assert_exit(&o, 2, "--row 50", &["the version has 50 rows"]);

    // The whole row, and raw bytes of an image.
    let o = show(&["--row", "3"]);
    let row: Value = serde_json::from_slice(&o.stdout).expect("the output is JSON");
    assert_eq!(row["id"], 3);
    assert_eq!(row["meta"]["turns"][0]["text"], "hello 3");
    assert!(row["image"]
        .as_str()
        .expect("a string")
        .starts_with("<image/png"));
    let o = show(&["--row", "3", "--path", "image", "--raw"]);
    assert!(o.stdout.starts_with(b"\x89PNG"));
    assert_eq!(o.stdout.last(), Some(&3u8));
    let o = show(&["--row", "3", "--path", "tags[1]"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "\"cow\"");
}

#[test]
fn rerun_reproduces_a_version_and_refuses_a_changed_mapper() {
    let Some((py, dir)) = setup() else { return };
    // The mapper is a copy that the test then edits; it uses the per-chunk seed.
    let mapper_file = dir.path().join("seeded.py");
    std::fs::copy(root().join("launcher/tests/it/bucket.py"), &mapper_file)
        .expect("the file is copied");
    let ids = dir.path().join("ids.parquet");
    ids_parquet(&py, &ids, 0, 5000);
    let t = dir.path().join("t");
    let seeded = format!("{}:Seeded", mapper_file.display());
    let o = map_python(&py, &ids, &t, &seeded, 300)
        .args(["--seed", "42"])
        .run();
    assert!(o.status.success());

    let o = run(flywheel().args(["rerun", &format!("{}@1", t.display()), "--workers", "3"]));
    assert!(o.status.success(), "rerun should match");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("matches: 5000 rows"), "{out}");

    // Kept output: the rebuilt table is a table of its own with the same rows.
    let kept = dir.path().join("kept");
    let o = run(flywheel()
        .args(["rerun", &t.display().to_string(), "--output"])
        .arg(&kept));
    assert!(o.status.success());
    assert_eq!(
        read_with_pyarrow(&py, &kept, None)["rows"],
        read_with_pyarrow(&py, &t, Some(1))["rows"]
    );

    // An appended version: only the rows its job wrote are rebuilt and compared.
    let more = dir.path().join("more.parquet");
    ids_parquet(&py, &more, 5000, 700);
    let o = map_python(&py, &more, &t, &seeded, 300)
        .mode("append")
        .args(["--seed", "7"])
        .run();
    assert!(o.status.success());
    let o = run(flywheel().args(["rerun", &format!("{}@2", t.display())]));
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("matches: 700 rows"));

    // A nondeterministic mapper's version does not match its rerun: exit 1, the row named.
    let u = dir.path().join("u");
    let unseeded = format!("{}:Unseeded", mapper_file.display());
    let o = map_python(&py, &ids, &u, &unseeded, 1000).run();
    assert!(o.status.success());
    let o = run(flywheel().args(["rerun", &u.display().to_string()]));
    assert_exit(
        &o,
        1,
        "rerun of an unseeded mapper",
        &["does not match: first difference at row 0, column 'noise'"],
    );

    // A changed mapper file: a lineage mismatch before anything runs.
    let mut text = std::fs::read_to_string(&mapper_file).expect("the file is read");
    text.push_str("\n# edited\n");
    std::fs::write(&mapper_file, text).expect("the test writes its file");
    let never = dir.path().join("never");
    let o = run(flywheel()
        .args(["rerun", &format!("{}@1", t.display()), "--output"])
        .arg(&never));
    assert_exit(
        &o,
        2,
        "rerun of an edited mapper",
        &["lineage mismatch: the mapper file", "nothing was run"],
    );
    assert!(!never.exists(), "nothing may run on a lineage mismatch");
}

//! Every version readable by outside tools: the Delta Lake log (`deltalake`, Polars, DuckDB's
//! `delta` extension) and the Hugging Face dataset card (`datasets.load_dataset`), each read
//! compared with flywheel's rows for the same version (delta_readers.py), and the job's own
//! unreferenced files removed once it has published.

use crate::support::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The modules delta_readers.py reads with, all from PyPI (scripts/test.sh installs them).
const READER_MODULES: &[&str] = &["deltalake", "polars", "duckdb", "duckdb_ext", "datasets"];

/// The Python with pyarrow and every Delta/HF reader, or `None` after a counted skip.
fn readers_or_skip() -> Option<(PathBuf, tempfile::TempDir)> {
    let (py, dir) = setup()?;
    let missing: Vec<&str> = READER_MODULES
        .iter()
        .copied()
        .filter(|m| !python_has(&py, m))
        .collect();
    available(
        missing.is_empty(),
        &format!("the Delta and HF readers ({} missing)", missing.join(", ")),
    )
    .then_some((py, dir))
}

/// delta_readers.py over `table` (extra arguments: `--readers=…`, versions); offline, with
/// the HF cache inside the test's directory.
fn read_everywhere(py: &Path, table: &Path, args: &[&str]) -> Value {
    let cache = table.with_extension("hf-cache");
    let mut all: Vec<&OsStr> = vec![table.as_os_str()];
    all.extend(args.iter().map(OsStr::new));
    let env = [
        ("HF_HUB_OFFLINE", OsStr::new("1")),
        ("HF_DATASETS_CACHE", cache.as_os_str()),
        ("HF_HOME", cache.as_os_str()),
    ];
    py_json_env(py, "delta_readers.py", &all, &env)
}

const ALL_TYPES: &str = "id: int64, u32: uint32, x: float64, s: str, ok: bool, tags: list<str>, \
    st: struct<a: int, b: str>, d: dict<str, int>, js: json, img: image, ts: timestamp, \
    v: vector<8, fp16>";

const ALL_TYPES_MAPPER: &str = r#"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cfc0f01f0005000201a5d6b1e40000000049454e44ae426082")
def f(row):
    i = row["id"]
    yield {"id": i, "u32": 4000000000 + i, "x": i / 4, "s": f"row {i}", "ok": i % 2 == 0,
           "tags": [f"t{i}", "x"] if i % 3 else [], "st": {"a": i, "b": f"b{i}"},
           "d": {"k": i, "j": -i}, "js": '{"n": %d}' % i, "img": PNG,
           "ts": "2026-01-0%dT12:00:00Z" % (1 + i % 9), "v": [i * 0.5] * 8}
"#;

/// create → append → overwrite → append of the all-types table; returns it.
fn history_table(py: &Path, dir: &Path) -> PathBuf {
    let a = dir.join("a.parquet");
    let b = dir.join("b.parquet");
    ids_parquet(py, &a, 0, 40);
    ids_parquet(py, &b, 100, 30);
    let mapper = py_mapper(dir, "all_types.py", ALL_TYPES_MAPPER, "f");
    let t = dir.join("t");
    for (input, mode, chunk) in [
        (&a, "create", 10),
        (&b, "append", 10),
        (&b, "overwrite", 7),
        (&a, "append", 15),
    ] {
        Map::new(input, &t)
            .mapper(&mapper)
            .python(py)
            .workers(2)
            .chunk_rows(chunk)
            .mode(mode)
            .schema(ALL_TYPES)
            .run()
            .assert_ok(mode);
    }
    t
}

/// The documented refusal: Polars reads no fixed-size list declared as a Delta array.
fn assert_polars_refuses_only(res: &Value, columns: &[&str], what: &str) {
    assert_eq!(res["ok"], false, "{what}: {res}");
    let refused = res["refused"].as_object().expect("the refused columns");
    let mut names: Vec<&str> = refused.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, columns, "{what}: {res}");
    for (c, e) in refused {
        assert!(
            e.as_str()
                .is_some_and(|e| e.contains("data type mismatch for column")),
            "{what}: {c}: {e}"
        );
    }
    assert_eq!(res["rest"]["ok"], true, "{what}: the other columns: {res}");
}

#[test]
fn every_version_reads_as_flywheel_reads_it_in_delta_readers_and_datasets() {
    let Some((py, dir)) = readers_or_skip() else {
        return;
    };
    let t = history_table(&py, dir.path());
    let got = read_everywhere(&py, &t, &[]);
    assert_eq!(
        got["delta_version"], 4,
        "Delta version N is flywheel version N"
    );
    for v in ["1", "2", "3", "4"] {
        for reader in ["deltalake", "duckdb", "datasets"] {
            assert_eq!(
                got["results"][reader][v]["ok"], true,
                "{reader} at version {v}: {}",
                got["results"][reader][v]
            );
        }
        let polars = &got["results"]["polars"][v];
        assert_polars_refuses_only(polars, &["v"], &format!("polars at version {v}"));
        assert!(
            polars["refused"]["v"]
                .as_str()
                .is_some_and(|e| e.contains("Array(Float16, 8) != target: List(Float32)")),
            "{polars}"
        );
    }
    assert_eq!(got["field_types"]["u32"], "uint32");
    assert_eq!(got["field_types"]["v"], "vector<8, fp16>");
    for v in 1..=4u64 {
        let m = info(format!("{}@{v}", t.display()));
        let commit = &got["history"][v.to_string()];
        assert_eq!(commit["job_id"], m["job_id"], "version {v}: {commit}");
        assert_eq!(commit["lineage"]["mapper"], m["lineage"]["mapper"]["spec"]);
    }
}

#[test]
fn types_delta_lacks_read_as_documented_in_every_reader() {
    let Some((py, dir)) = readers_or_skip() else {
        return;
    };
    let input = ids_input(&py, dir.path(), 20);
    let mapper = py_mapper(
        dir.path(),
        "more.py",
        r#"def f(row):
    i = row["id"]
    yield {"id": i, "i8": -i, "i16": 300 * i, "i32": -70000 * i, "u8": 200 + i, "u16": 60000 + i,
           "u64": 2**63 + i, "h": i / 8, "f32": i / 4, "dt": "2026-03-0%d" % (1 + i % 9),
           "ten": [float(i)] * 6, "ls": [{"a": i, "b": "x"}], "vf": [float(i)] * 3,
           "an": {"k": [i]}, "opt": None if i % 2 else f"s{i}", "dl": [{"k": i}], "blob": b"\x00" * i}
"#,
        "f",
    );
    let t = dir.path().join("t");
    Map::new(&input, &t)
        .mapper(&mapper)
        .python(&py)
        .workers(1)
        .chunk_rows(10)
        .schema(
            "id: int, i8: int8, i16: int16, i32: int32, u8: uint8, u16: uint16, u64: uint64, \
             h: fp16, f32: float32, dt: date, ten: tensor<float32, [2, 3]>, ls: list<a: int, b: str>, \
             vf: vector<3, fp32>, an: any, opt: str?, dl: list<dict<str, int>>, blob: blob",
        )
        .run()
        .assert_ok("create");
    let got = read_everywhere(&py, &t, &[]);
    for reader in ["deltalake", "duckdb", "datasets"] {
        assert_eq!(
            got["results"][reader]["1"]["ok"], true,
            "{reader}: {}",
            got["results"][reader]
        );
    }
    // uint64 is decimal(20,0) in Delta; fixed-size lists are arrays: Polars refuses both.
    assert_polars_refuses_only(
        &got["results"]["polars"]["1"],
        &["ten", "u64", "vf"],
        "polars",
    );
}

#[test]
fn after_vacuum_keep_1_the_latest_version_reads_in_every_reader() {
    let Some((py, dir)) = readers_or_skip() else {
        return;
    };
    let t = history_table(&py, dir.path());
    let o = run(flywheel().args(["table", "vacuum", "--keep", "1"]).arg(&t));
    assert!(o.status.success(), "{}", stderr_text(&o));
    let got = read_everywhere(&py, &t, &["4"]);
    assert_eq!(got["delta_version"], 4);
    for reader in ["deltalake", "duckdb", "datasets"] {
        assert_eq!(
            got["results"][reader]["4"]["ok"], true,
            "{reader}: {}",
            got["results"][reader]
        );
    }
    assert_polars_refuses_only(&got["results"]["polars"]["4"], &["v"], "polars");
    // The card names only what is kept: a config per version would point at removed files.
    let card = std::fs::read_to_string(t.join("README.md")).expect("the card is read");
    assert!(
        card.contains("config_name: v4") && !card.contains("config_name: v3"),
        "{card}"
    );
}

/// A card's front matter (without its `---` lines) and the rest.
fn front_matter(card: &str) -> (&str, &str) {
    card.strip_prefix("---\n")
        .and_then(|r| r.split_once("\n---\n"))
        .expect("the card opens with front matter")
}

#[test]
fn the_card_keeps_the_users_text_and_names_each_kept_version() {
    let Some((_py, dir)) = setup() else { return };
    let t = dir.path().join("t");
    Map::dialogues(&t).identity().run().assert_ok("create");
    let card = t.join("README.md");
    let ours = std::fs::read_to_string(&card).expect("the first publish writes the card");
    // The user's front matter keys, an intro before the block and notes after it.
    let (front, body) = front_matter(&ours);
    let edited = format!(
        "---\nlicense: mit\n{front}\ntags:\n  - dialogue\npretty_name: \"Pairs\"\n---\n\
         # Intro\nRead me first.\n\n{body}\n## Notes\nCollected by hand.\n"
    );
    std::fs::write(&card, edited).expect("edited");
    Map::dialogues(&t)
        .identity()
        .mode("append")
        .run()
        .assert_ok("append");
    let text = std::fs::read_to_string(&card).expect("the card is read");
    assert!(text.ends_with("## Notes\nCollected by hand.\n"), "{text}");
    let (front, body) = front_matter(&text);
    for key in [
        "license: mit\n",
        "tags:\n  - dialogue\n",
        "pretty_name: \"Pairs\"\n",
    ] {
        assert!(front.contains(key), "{key}: {text}");
    }
    assert_eq!(front.matches("configs:").count(), 1, "{text}");
    assert!(
        body.starts_with("# Intro\nRead me first.\n\n<!-- flywheel:begin"),
        "the intro stays before the block: {text}"
    );
    assert_eq!(text.matches("<!-- flywheel:begin").count(), 1, "{text}");
    assert!(text.contains("version 2 has 1000 rows"), "{text}");
    for name in ["config_name: default", "config_name: v2", "config_name: v1"] {
        assert!(text.contains(name), "{name}: {text}");
    }
}

#[test]
fn a_job_removes_the_copy_it_did_not_publish_and_nothing_of_other_jobs() {
    let Some((py, dir)) = setup() else { return };
    let input = ids_input(&py, dir.path(), 10);
    let marks = dir.path().join("marks");
    std::fs::create_dir(&marks).expect("the folder is made");
    // One chunk, two workers: the idle one runs a copy at once; both attempts wait for each
    // other at the chunk's last row, so neither reports before both are past their mapper and
    // the loser's files (data and refused rows) are written and reported too, however the
    // stop falls.
    let mapper = py_mapper(
        dir.path(),
        "together.py",
        &format!(
            r#"import os, time
MARKS = {marks:?}
def f(row):
    if row["id"] == 9:
        open(os.path.join(MARKS, os.environ["FLYWHEEL_WORKER"]), "w").close()
        deadline = time.time() + 30
        while len(os.listdir(MARKS)) < 2 and time.time() < deadline:
            time.sleep(0.01)
    if row["id"] == 3:
        raise ValueError("row 3 goes to _errors")
    yield {{"id": row["id"]}}
"#,
            marks = marks.display().to_string()
        ),
        "f",
    );
    let t = dir.path().join("t");
    std::fs::create_dir_all(t.join("data")).expect("the folder is made");
    let foreign = t.join("data/c000000-a1-r7-0ther.parquet");
    std::fs::write(&foreign, b"another job's file").expect("written");
    let o = Map::new(&input, &t)
        .mapper(&mapper)
        .python(&py)
        .workers(2)
        .chunk_rows(10)
        .on_row_error("skip")
        .arg("--json")
        .env("FLYWHEEL_LOG", "warn,flywheel_coordinator::own_files=info")
        .run();
    o.assert_ok("the job");
    assert_eq!(
        std::fs::read_dir(&marks).expect("listed").count(),
        2,
        "both attempts reached the last row"
    );
    assert!(
        o.stderr_text()
            .contains("removed 2 unreferenced file(s) this job wrote"),
        "the losing copy's data and _errors files were written, then removed: {}",
        o.stderr_text()
    );
    let report: Value = serde_json::from_slice(&o.stdout).expect("the output is JSON");
    assert!(
        report["report"]["speculative_runs"].as_u64() >= Some(1),
        "a copy ran: {report}"
    );
    let listed = |dir: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(t.join(dir))
            .expect("the folder is listed")
            .map(|e| {
                format!(
                    "{dir}/{}",
                    e.expect("an entry").file_name().to_string_lossy()
                )
            })
            .collect();
        names.sort();
        names
    };
    let published = |key: &str| -> Vec<String> {
        let mut paths: Vec<String> = info(&t)[key]
            .as_array()
            .expect("a list of files")
            .iter()
            .map(|f| f["path"].as_str().expect("a path").to_string())
            .collect();
        paths.sort();
        paths
    };
    let mut want = published("files");
    want.push("data/c000000-a1-r7-0ther.parquet".to_string());
    want.sort();
    assert_eq!(
        listed("data"),
        want,
        "the published file and the other job's, nothing else"
    );
    // The losing copy's refused rows went to a file of their own: removed too.
    assert_eq!(published("errors").len(), 1);
    assert_eq!(listed("_errors/data"), published("errors"));
}

#[test]
fn after_a_commit_killed_at_any_step_delta_readers_and_flywheel_agree_by_the_next_command() {
    use std::os::unix::process::ExitStatusExt;
    let Some((py, dir)) = readers_or_skip() else {
        return;
    };
    let steps = flywheel_formats::COMMIT_STEPS;
    let position = |s: &str| steps.iter().position(|x| *x == s);
    for step in steps {
        let t = dir.path().join(format!("t-{step}"));
        Map::dialogues(&t).identity().run().assert_ok("create");
        let o = Map::dialogues(&t)
            .identity()
            .mode("append")
            .env("FLYWHEEL_CRASH_AT", step)
            .run();
        assert_eq!(o.status.signal(), Some(9), "{step}: killed");
        let flywheel_latest = info(&t)["versions"]
            .as_array()
            .and_then(|v| v.last())
            .and_then(Value::as_u64)
            .expect("a version");
        // `table info` above was the next command: it completed the Delta entry and the card.
        let got = read_everywhere(&py, &t, &["--readers=deltalake,datasets"]);
        assert_eq!(got["delta_version"], flywheel_latest, "{step}: {got}");
        let before_link = position(step) < position("linked");
        assert_eq!(flywheel_latest, if before_link { 1 } else { 2 }, "{step}");
        for v in 1..=flywheel_latest {
            let res = &got["results"]["deltalake"][v.to_string()];
            assert_eq!(res["ok"], true, "{step}: deltalake at {v}: {res}");
        }
        let res = &got["results"]["datasets"][flywheel_latest.to_string()];
        assert_eq!(res["ok"], true, "{step}: datasets, latest: {res}");
        // The next publish lands on top, in both.
        Map::dialogues(&t)
            .identity()
            .mode("append")
            .run()
            .assert_ok(step);
        let got = read_everywhere(&py, &t, &["--readers=deltalake"]);
        assert_eq!(got["delta_version"], flywheel_latest + 1, "{step}: {got}");
        let res = &got["results"]["deltalake"][(flywheel_latest + 1).to_string()];
        assert_eq!(res["ok"], true, "{step}: {res}");
    }
}

#[test]
fn a_delta_entry_a_crash_left_out_is_behind_by_one_until_the_next_command() {
    use std::os::unix::process::ExitStatusExt;
    let Some((py, dir)) = readers_or_skip() else {
        return;
    };
    let t = dir.path().join("t");
    Map::dialogues(&t).identity().run().assert_ok("create");
    let o = Map::dialogues(&t)
        .identity()
        .mode("append")
        .env("FLYWHEEL_CRASH_AT", "linked")
        .run();
    assert_eq!(o.status.signal(), Some(9), "killed at the manifest's link");
    assert!(t.join("_versions/00000000000000000002.json").is_file());
    assert!(!t.join("_delta_log/00000000000000000002.json").exists());
    let before = read_everywhere(&py, &t, &["--readers=deltalake", "1"]);
    assert_eq!(
        before["delta_version"], 1,
        "Delta readers see version 1: {before}"
    );
    let bytes_of = |t: &Path| std::fs::read(t.join("_delta_log/00000000000000000002.json"));
    // A read completes it; the entry is what the publish would have written.
    let o = run(flywheel().args(["table", "log"]).arg(&t));
    assert!(o.status.success(), "{}", stderr_text(&o));
    let completed = bytes_of(&t).expect("table log wrote Delta version 2");
    let got = read_everywhere(&py, &t, &["--readers=deltalake,duckdb", "2"]);
    assert_eq!(got["results"]["deltalake"]["2"]["ok"], true, "{got}");
    assert_eq!(got["results"]["duckdb"]["2"]["ok"], true, "{got}");
    // Deterministic: removed and derived again, the same bytes.
    std::fs::remove_file(t.join("_delta_log/00000000000000000002.json")).expect("removed");
    let o = run(flywheel().args(["table", "info"]).arg(&t));
    assert!(o.status.success(), "{}", stderr_text(&o));
    assert_eq!(bytes_of(&t).expect("written again"), completed);
}

#[test]
fn an_overwrite_with_another_schema_reads_at_both_versions_in_every_reader() {
    let Some((py, dir)) = readers_or_skip() else {
        return;
    };
    let input = ids_input(&py, dir.path(), 40);
    let t = dir.path().join("t");
    Map::new(&input, &t)
        .identity()
        .workers(1)
        .run()
        .assert_ok("create");
    let mapper = py_mapper(
        dir.path(),
        "wider.py",
        "def f(row):\n    yield {'id': row['id'], 'name': f\"n{row['id']}\", 'score': row['id'] * 1.5}\n",
        "f",
    );
    Map::new(&input, &t)
        .mapper(&mapper)
        .python(&py)
        .workers(1)
        .mode("overwrite")
        .run()
        .assert_ok("overwrite");
    let log = std::fs::read_to_string(t.join("_delta_log/00000000000000000002.json"))
        .expect("Delta version 2");
    assert!(log.contains("\"metaData\""), "the new schema: {log}");
    let got = read_everywhere(&py, &t, &[]);
    for reader in ["deltalake", "polars", "duckdb", "datasets"] {
        for v in ["1", "2"] {
            let res = &got["results"][reader][v];
            assert_eq!(res["ok"], true, "{reader} at {v}: {res}");
        }
    }
}

#[test]
fn an_overwrite_to_zero_rows_reads_as_zero_rows_in_delta_and_fails_in_datasets_never_wrong() {
    let Some((py, dir)) = readers_or_skip() else {
        return;
    };
    let input = ids_input(&py, dir.path(), 3);
    let none = py_mapper(dir.path(), "none.py", "def f(row):\n    return []\n", "f");
    let t = dir.path().join("t");
    Map::new(&input, &t)
        .identity()
        .python(&py)
        .run()
        .assert_ok("create");
    Map::new(&input, &t)
        .mapper(&none)
        .python(&py)
        .mode("overwrite")
        .schema("id: int64")
        .run()
        .assert_ok("overwrite to zero rows");
    assert_eq!(info(&t)["num_rows"], 0);
    let got = read_everywhere(&py, &t, &["1", "2"]);
    for reader in ["deltalake", "polars", "duckdb", "datasets"] {
        for (v, rows) in [("1", 3), ("2", 0)] {
            if (reader, v) == ("datasets", "2") {
                continue;
            }
            let res = &got["results"][reader][v];
            assert_eq!(res["ok"], true, "{reader} at version {v}: {res}");
            assert_eq!(res["rows"], rows, "{reader} at version {v}: {res}");
        }
    }
    // HF reads no zero-row Parquet file ("BatchSize must be greater than 0"): the card's
    // `default` names version 2's zero-row stand-in, so HF fails, never answers with version
    // 1's rows (as it did when `default` was left out) or every file in the folder.
    let hf = &got["results"]["datasets"]["2"];
    assert!(
        hf["error"]
            .as_str()
            .is_some_and(|e| e.contains("no data") || e.contains("generating the dataset")),
        "the documented refusal: {hf}"
    );
    let card = std::fs::read_to_string(t.join("README.md")).expect("the card is read");
    let default = card
        .split("config_name: v2")
        .next()
        .expect("the default config comes first");
    assert!(default.contains("_card/empty-"), "{card}");
}

#[test]
fn a_table_created_from_zero_rows_without_a_schema_warns_and_delta_readers_refuse_it() {
    let Some((py, dir)) = readers_or_skip() else {
        return;
    };
    let input = ids_input(&py, dir.path(), 3);
    let none = py_mapper(dir.path(), "none.py", "def f(row):\n    return []\n", "f");
    let t = dir.path().join("t");
    let o = Map::new(&input, &t).mapper(&none).python(&py).run();
    o.assert_ok("create");
    assert!(
        o.stderr_text()
            .contains("the table has no columns; Delta readers"),
        "{}",
        o.stderr_text()
    );
    let got = read_everywhere(&py, &t, &["--readers=deltalake", "1"]);
    let res = &got["results"]["deltalake"]["1"];
    assert_eq!(res["ok"], false, "{res}");
    assert!(
        res["error"]
            .as_str()
            .is_some_and(|e| e.contains("empty schema")),
        "the documented refusal: {res}"
    );
}

#[test]
fn a_job_refuses_a_folder_with_a_delta_log_but_no_flywheel_versions() {
    let Some((_py, dir)) = setup() else { return };
    let t = dir.path().join("t");
    Map::dialogues(&t).identity().run().assert_ok("create");
    // A "reset" by hand: the versions and data go, the Delta log stays.
    for d in ["_versions", "data"] {
        std::fs::remove_dir_all(t.join(d)).expect("removed");
    }
    for mode in ["create", "overwrite", "append"] {
        let o = Map::dialogues(&t).identity().mode(mode).run();
        assert_exit(
            &o,
            2,
            mode,
            &[
                "holds a Delta log (_delta_log/) but no flywheel versions",
                "error:",
            ],
        );
        assert!(!o.published(), "{mode}: nothing is published");
    }
}

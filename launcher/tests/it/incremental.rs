//! Incremental map (issue 17): a new version computes only the chunks whose inputs, mapper or
//! options changed, and equals, row for row, a full map of the input's current state. The
//! mapper appends each row's id to a side-effect file, so every test counts the calls.

use crate::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A Python mapper class: `y = id * scale`, each call recorded in $COUNT_FILE; $FAIL_ID raises
/// on that id, $SLOW sleeps that long a row. `variant` is a comment: another file content.
fn mapper(dir: &Path, variant: &str) -> String {
    let code = format!(
        "import os, random, time\n# {variant}\nclass M:\n    def __init__(self, scale='1', noise='0'):\n        self.scale = int(scale)\n        self.noise = noise == '1'\n    def __call__(self, row):\n        with open(os.environ['COUNT_FILE'], 'a') as f:\n            f.write(f\"{{row['id']}}\\n\")\n        if os.environ.get('SLOW'):\n            time.sleep(float(os.environ['SLOW']))\n        if row['id'] == int(os.environ.get('FAIL_ID', '-1')):\n            raise ValueError('bad row')\n        out = {{'id': row['id'], 'y': row['id'] * self.scale}}\n        if self.noise:\n            out['r'] = random.random()\n        yield out\n"
    );
    py_mapper(dir, "m.py", &code, "M")
}

/// One test's directory, Python and call counter.
struct Fixture {
    py: PathBuf,
    dir: tempfile::TempDir,
    mapper: String,
}

impl Fixture {
    fn new() -> Option<Fixture> {
        let (py, dir) = setup()?;
        let mapper = mapper(dir.path(), "first");
        Some(Fixture { py, dir, mapper })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `src/NAME.parquet` with ids `start..start+n`.
    fn file(&self, name: &str, start: u64, n: u64) -> PathBuf {
        std::fs::create_dir_all(self.path("src")).expect("src/");
        let p = self.path("src").join(format!("{name}.parquet"));
        ids_parquet(&self.py, &p, start, n);
        p
    }

    fn glob(&self) -> String {
        format!("{}/*.parquet", self.path("src").display())
    }

    /// A map of `input` into `out` with the fixture's mapper, 10 rows a chunk (2 workers, the
    /// default).
    fn map(&self, input: impl AsRef<std::ffi::OsStr>, out: &Path) -> Map {
        Map::new(input, out)
            .mapper(&self.mapper)
            .python(&self.py)
            .chunk_rows(10)
            .env("COUNT_FILE", self.path("calls.txt"))
            .within(Duration::from_secs(120))
    }

    /// The ids the mapper was called on since the last look, sorted, each once (at the end of a
    /// job an idle worker may run a copy of a late chunk); the counter is emptied.
    fn calls(&self) -> Vec<u64> {
        let p = self.path("calls.txt");
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let _ = std::fs::remove_file(&p);
        let mut ids: Vec<u64> = text
            .lines()
            .map(|l| l.parse().expect("an id a line"))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// `--incremental --dry-run --json` on `map`: (reused, to compute).
    fn dry_run(&self, map: Map) -> (u64, u64) {
        let o = map.arg("--dry-run").arg("--json").run();
        o.assert_ok("dry run");
        let v: Value = serde_json::from_slice(&o.stdout).expect("the dry run prints JSON");
        (
            v["reused"].as_u64().expect("reused"),
            v["compute"].as_u64().expect("compute"),
        )
    }

    /// A full, non-incremental map of `input` into a fresh table: its rows.
    fn full(&self, input: impl AsRef<std::ffi::OsStr>, name: &str) -> Vec<Value> {
        let out = self.path(name);
        self.map(input, &out).run().assert_ok("full map");
        let _ = self.calls();
        rows(&self.py, &out, None)
    }
}

/// The latest manifest of a table, as JSON.
fn manifest(table: &Path, version: u64) -> Value {
    let text = std::fs::read_to_string(table.join(format!("_versions/{version:020}.json")))
        .expect("the version's manifest");
    serde_json::from_str(&text).expect("a manifest is JSON")
}

/// The `incremental` lineage of version `v`.
fn incremental(table: &Path, v: u64) -> Value {
    manifest(table, v)["lineage"]["incremental"].clone()
}

fn file_paths(m: &Value) -> Vec<String> {
    m["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().expect("a path").to_string())
        .collect()
}

/// The (add, remove) paths of Delta commit `v`.
fn delta_actions(table: &Path, v: u64) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(table.join(format!("_delta_log/{v:020}.json")))
        .expect("the Delta commit");
    let (mut add, mut remove) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let a: Value = serde_json::from_str(line).expect("a Delta action is JSON");
        if let Some(p) = a["add"]["path"].as_str() {
            add.push(p.to_string());
        }
        if let Some(p) = a["remove"]["path"].as_str() {
            remove.push(p.to_string());
        }
    }
    (add, remove)
}

fn ids_between(start: u64, end: u64) -> Vec<u64> {
    (start..end).collect()
}

#[test]
fn a_grown_input_table_computes_only_the_new_files_chunks() {
    let Some(fx) = Fixture::new() else { return };
    // The input table: 3 files in version 1 (one chunk a file), a 4th appended in version 2.
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        fx.file(name, i as u64 * 100, 30);
    }
    let input = fx.path("in");
    Map::new(fx.glob(), &input)
        .identity()
        .chunk_rows(1000)
        .run()
        .assert_ok("input v1");
    let d = fx.path("d.parquet");
    ids_parquet(&fx.py, &d, 300, 25);
    Map::new(&d, &input)
        .identity()
        .mode("append")
        .run()
        .assert_ok("input v2");
    let out = fx.path("out");
    let at = |v: u64| format!("{}@{v}", input.display());
    let inc = |v: u64| fx.map(at(v), &out).arg("--incremental");
    assert_eq!(fx.dry_run(inc(1)), (0, 9), "the first plan computes all");
    assert!(!out.exists(), "a dry run writes nothing");
    inc(1).run().assert_ok("OUT@1");
    assert_eq!(fx.calls().len(), 90);
    assert_eq!(incremental(&out, 1)["recomputed"]["no earlier version"], 9);
    assert_eq!(fx.dry_run(inc(2)), (9, 3));
    assert_eq!(fx.calls(), Vec::<u64>::new(), "a dry run calls no mapper");
    let ran = inc(2).run();
    ran.assert_ok("OUT@2");
    assert!(
        ran.stderr_text().contains(
            "incremental: 9 of 12 chunks reused from version 1, 3 to compute (new input: 3)"
        ),
        "{}",
        ran.stderr_text()
    );
    // The report counts the reused rows apart: this run's rate is of the rows it mapped.
    assert!(
        ran.stderr_text().contains("rows in 115 (90 carried over)"),
        "{}",
        ran.stderr_text()
    );
    assert_eq!(
        fx.calls(),
        ids_between(300, 325),
        "only the 4th file's rows"
    );
    assert_eq!(rows(&fx.py, &out, None), fx.full(at(2), "full"));
    let lineage = incremental(&out, 2);
    assert_eq!(
        (
            &lineage["reused"],
            &lineage["computed"],
            &lineage["base_version"]
        ),
        (&Value::from(9), &Value::from(3), &Value::from(1))
    );
    assert_eq!(lineage["recomputed"], serde_json::json!({"new input": 3}));
    let o = run(flywheel().args(["table", "info"]).arg(&out));
    assert_prints(
        &o,
        "table info",
        &["incremental: 9 of 12 chunks reused from version 1, 3 computed (new input: 3)"],
    );
    // The 3 files' chunks are the same files, referenced, not copied; Delta adds only the new.
    let (v1, v2) = (
        file_paths(&manifest(&out, 1)),
        file_paths(&manifest(&out, 2)),
    );
    assert_eq!(v2[..9], v1[..], "reused files, in input order");
    let (add, remove) = delta_actions(&out, 2);
    assert_eq!((add, remove), (v2[9..].to_vec(), Vec::<String>::new()));
    let m = manifest(&out, 2);
    let files = m["files"].as_array().expect("files");
    assert!(files.iter().all(|f| f["fingerprint"]["hash"].is_string()));
    assert_eq!(files[0]["provenance"]["reused_from"], 1);
}

#[test]
fn a_replaced_file_recomputes_its_chunks_and_a_removed_one_disappears() {
    let Some(fx) = Fixture::new() else { return };
    fx.file("a", 0, 20);
    fx.file("b", 100, 20);
    fx.file("c", 200, 20);
    let out = fx.path("out");
    let inc = || fx.map(fx.glob(), &out).arg("--incremental");
    inc().run().assert_ok("OUT@1");
    assert_eq!(fx.calls().len(), 60);
    // Same name, other rows.
    fx.file("b", 500, 20);
    assert_eq!(fx.dry_run(inc()), (4, 2));
    inc().run().assert_ok("OUT@2");
    assert_eq!(fx.calls(), ids_between(500, 520), "only b's chunks");
    assert_eq!(
        incremental(&out, 2)["recomputed"],
        serde_json::json!({"changed input": 2})
    );
    assert_eq!(rows(&fx.py, &out, None), fx.full(fx.glob(), "full2"));
    // Removed: its rows go, nothing runs, Delta removes its files.
    std::fs::remove_file(fx.path("src/a.parquet")).expect("remove a");
    assert_eq!(fx.dry_run(inc()), (4, 0));
    inc().run().assert_ok("OUT@3");
    assert_eq!(fx.calls(), Vec::<u64>::new(), "nothing recomputed");
    let got = rows(&fx.py, &out, None);
    assert_eq!(got, fx.full(fx.glob(), "full3"));
    assert!(got.iter().all(|r| r["id"].as_u64() >= Some(200)), "{got:?}");
    let (add, remove) = delta_actions(&out, 3);
    assert_eq!((add.len(), remove.len()), (0, 2));
    assert_eq!(incremental(&out, 3)["computed"], 0);
}

#[test]
fn the_mapper_and_its_args_are_in_the_fingerprint_workers_and_timeouts_are_not() {
    let Some(mut fx) = Fixture::new() else { return };
    fx.file("a", 0, 20);
    fx.file("b", 100, 20);
    let out = fx.path("out");
    let inc = |fx: &Fixture| fx.map(fx.glob(), &out).arg("--incremental");
    inc(&fx).run().assert_ok("OUT@1");
    assert_eq!(fx.calls().len(), 40);
    // Another worker count and chunk timeout: the same chunks.
    let other_options = || inc(&fx).workers(3).arg("--chunk-timeout").arg("100");
    assert_eq!(fx.dry_run(other_options()), (4, 0));
    other_options().run().assert_ok("OUT@2");
    assert_eq!(fx.calls(), Vec::<u64>::new());
    // One character of the mapper file.
    fx.mapper = mapper(fx.dir.path(), "firsT");
    inc(&fx).run().assert_ok("OUT@3");
    assert_eq!(fx.calls().len(), 40);
    assert_eq!(
        incremental(&out, 3)["recomputed"],
        serde_json::json!({"changed mapper": 4})
    );
    // A mapper argument.
    let scaled = || inc(&fx).mapper_arg("scale=2");
    assert_eq!(fx.dry_run(scaled()), (0, 4));
    scaled().run().assert_ok("OUT@4");
    assert_eq!(fx.calls().len(), 40);
    assert_eq!(
        incremental(&out, 4)["recomputed"],
        serde_json::json!({"changed args": 4})
    );
    let got = rows(&fx.py, &out, None);
    assert_eq!(got[1]["y"], 2, "{:?}", got[1]);
    // The seed.
    scaled().arg("--seed").arg("7").run().assert_ok("OUT@5");
    assert_eq!(
        incremental(&out, 5)["recomputed"],
        serde_json::json!({"changed seed": 4})
    );
}

#[test]
fn a_chunk_that_sent_rows_to_errors_is_computed_again() {
    let Some(fx) = Fixture::new() else { return };
    fx.file("a", 0, 30);
    let out = fx.path("out");
    let inc = || {
        fx.map(fx.glob(), &out)
            .arg("--incremental")
            .on_row_error("skip")
    };
    inc()
        .env("FAIL_ID", "15")
        .run()
        .assert_ok("OUT@1 with an error row");
    assert_eq!(fx.calls().len(), 30);
    assert_eq!(rows(&fx.py, &out, None).len(), 29);
    inc().run().assert_ok("OUT@2");
    assert_eq!(
        fx.calls(),
        ids_between(10, 20),
        "only the chunk that failed a row"
    );
    assert_eq!(
        incremental(&out, 2)["recomputed"],
        serde_json::json!({"previously failed to _errors": 1})
    );
    assert_eq!(rows(&fx.py, &out, None).len(), 30);
}

#[test]
fn an_incremental_job_killed_and_resumed_equals_an_uninterrupted_one() {
    let Some(fx) = Fixture::new() else { return };
    fx.file("a", 0, 20);
    let out = fx.path("out");
    let inc = || fx.map(fx.glob(), &out).arg("--incremental");
    inc().run().assert_ok("OUT@1");
    let _ = fx.calls();
    fx.file("b", 100, 60);
    fx.file("c", 200, 60);
    kill_after_accepted(inc().env("SLOW", "0.02"), &out, 3);
    assert_eq!(
        manifest(&out, 1)["version"],
        1,
        "nothing published by the killed job"
    );
    // Status counts the 2 reused chunks among those accepted (and their rows).
    let st = status_of(&out);
    assert!(st.contains("(2 reused)"), "{st}");
    let resumed = inc().arg("--resume").run();
    resumed.assert_ok("resume");
    assert!(
        resumed.stderr_text().contains("resuming: "),
        "{}",
        resumed.stderr_text()
    );
    let calls = fx.calls();
    assert!(
        calls.iter().all(|&id| id >= 100),
        "a's rows were reused: {calls:?}"
    );
    let got = rows(&fx.py, &out, None);
    assert_eq!(got, fx.full(fx.glob(), "full"));
    assert!(!out.join("_versions/00000000000000000003.json").exists());
    let lineage = incremental(&out, 2);
    assert_eq!(
        (&lineage["reused"], &lineage["computed"]),
        (&Value::from(2), &Value::from(12))
    );
}

#[test]
fn rerun_rebuilds_an_incremental_version_with_its_random_values() {
    let Some(fx) = Fixture::new() else { return };
    fx.file("m", 100, 20);
    let out = fx.path("out");
    let inc = || {
        fx.map(fx.glob(), &out)
            .arg("--incremental")
            .mapper_arg("noise=1")
    };
    inc().run().assert_ok("OUT@1");
    let rerun = |v: u64| {
        run(flywheel()
            .arg("rerun")
            .arg(format!("{}@{v}", out.display()))
            .env("COUNT_FILE", fx.path("calls.txt")))
    };
    let o = rerun(1);
    assert_prints(&o, "rerun of the first version", &["matches: 20 rows"]);
    // A file that sorts first: every earlier chunk moves in the plan, none changes its seed.
    fx.file("a", 0, 20);
    inc().run().assert_ok("OUT@2");
    assert_eq!(incremental(&out, 2)["reused"], 2);
    let o = rerun(2);
    assert_prints(&o, "rerun of an incremental version", &["matches: 40 rows"]);
    // The random column does depend on the seeds (the match above is not trivial): a map
    // with another --seed differs.
    let plain = rows(&fx.py, &out, None);
    let other = fx.path("other-seed");
    fx.map(fx.glob(), &other)
        .mapper_arg("noise=1")
        .arg("--seed")
        .arg("1")
        .run()
        .assert_ok("another seed");
    assert_ne!(
        plain,
        rows(&fx.py, &other, None),
        "the random column depends on the seeds"
    );
}

#[test]
fn incremental_refuses_append_and_dry_run_needs_it() {
    let Some(fx) = Fixture::new() else { return };
    fx.file("a", 0, 5);
    let out = fx.path("out");
    let o = fx
        .map(fx.glob(), &out)
        .arg("--incremental")
        .mode("append")
        .run();
    assert_exit(&o, 2, "append", &["--incremental", "--mode append"]);
    let o = fx.map(fx.glob(), &out).arg("--dry-run").run();
    assert_eq!(o.code(), Some(2), "{}", o.stderr_text());
    assert!(
        o.stderr_text().contains("--incremental"),
        "{}",
        o.stderr_text()
    );
    assert!(!out.exists());
}

#[test]
fn a_version_without_fingerprints_is_computed_and_vacuum_keeps_reused_files() {
    let Some(fx) = Fixture::new() else { return };
    fx.file("a", 0, 20);
    let out = fx.path("out");
    fx.map(fx.glob(), &out).run().assert_ok("a plain map");
    let _ = fx.calls();
    let inc = || fx.map(fx.glob(), &out).arg("--incremental");
    inc().run().assert_ok("OUT@2");
    assert_eq!(fx.calls().len(), 20);
    assert_eq!(
        incremental(&out, 2)["recomputed"],
        serde_json::json!({"no fingerprint": 2})
    );
    inc().run().assert_ok("OUT@3");
    assert_eq!(fx.calls(), Vec::<u64>::new());
    // Versions 1 and 2 go; version 3 lists version 2's files, which stay.
    let o = run(flywheel()
        .args(["table", "vacuum", "--keep", "1"])
        .arg(&out));
    assert!(o.status.success(), "vacuum: {}", stderr_text(&o));
    assert_eq!(rows(&fx.py, &out, None), fx.full(fx.glob(), "full"));
    inc().run().assert_ok("OUT@4");
    assert_eq!(
        fx.calls(),
        Vec::<u64>::new(),
        "still reused after the vacuum"
    );
    assert_eq!(incremental(&out, 4)["reused"], 2);
}

#[test]
fn an_exec_mappers_script_named_in_its_arguments_is_in_the_fingerprint() {
    let Some(fx) = Fixture::new() else { return };
    fx.file("a", 0, 20);
    let out = fx.path("out");
    // `exec:python3 copy.py`: the program is found on PATH, the script is an argument.
    let script = fx.path("copy.py");
    let body = |tag: &str| {
        format!("# {tag}\nimport json, sys\nprint(json.dumps({{'ready': True}}), flush=True)\nfor line in sys.stdin:\n    h = json.loads(line)['chunk']\n    for _ in range(h['rows']):\n        print(json.dumps({{'row': json.loads(sys.stdin.readline())}}))\n    print(json.dumps({{'end': {{'rows_out': h['rows']}}}}), flush=True)\n")
    };
    std::fs::write(&script, body("one")).expect("the script is written");
    let spec = format!("exec:python3 {}", script.display());
    let map = || {
        Map::new(fx.glob(), &out)
            .mapper(&spec)
            .chunk_rows(10)
            .arg("--incremental")
    };
    map().run().assert_ok("OUT@1");
    assert_eq!(fx.dry_run(map()), (2, 0), "nothing changed");
    std::fs::write(&script, body("two")).expect("the script is edited");
    assert_eq!(
        fx.dry_run(map()),
        (0, 2),
        "the edited script changes every chunk"
    );
}

//! What an incremental version depends on besides the mapper's own file — the helper modules it
//! imports, the data files it declares (`depends_on`, `--depends-on`), the interpreter and its
//! packages (`--python`), `--on-row-error`, an input file rewritten in place — and what it does
//! not: where the input sits. An incremental version equals a full map, random values included.

use crate::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The directory, Python and an input of 100 ids in `dir/data/in.parquet`.
fn fixture() -> Option<(PathBuf, tempfile::TempDir, PathBuf)> {
    let (py, dir) = setup()?;
    std::fs::create_dir_all(dir.path().join("data")).expect("data/");
    let input = dir.path().join("data/in.parquet");
    ids_parquet(&py, &input, 0, 100);
    Some((py, dir, input))
}

/// A mapper class importing `helper` (beside it), reading `lookup.json` (declared in
/// `depends_on`) in start(), and drawing from `random` per row.
fn write_mapper(dir: &Path) -> String {
    write_file(dir, "helper.py", "SCALE = 2\n");
    write_file(dir, "lookup.json", "{\"offset\": 1000}\n");
    let code = r#"import json, os, random
import helper

HERE = os.path.dirname(os.path.abspath(__file__))

class M:
    depends_on = [os.path.join(HERE, "lookup.json")]

    def start(self):
        with open(os.path.join(HERE, "lookup.json")) as f:
            self.offset = json.load(f)["offset"]

    def __call__(self, row):
        yield {"id": row["id"], "v": row["id"] * helper.SCALE + self.offset, "r": random.random()}
"#;
    py_mapper(dir, "m.py", code, "M")
}

fn map(py: &Path, input: &Path, out: &Path, mapper: &str) -> Map {
    map_with(input, out, mapper).python(py)
}

/// [`map`] without `--python`.
fn map_with(input: &Path, out: &Path, mapper: &str) -> Map {
    Map::new(input, out)
        .mapper(mapper)
        .chunk_rows(25)
        .within(Duration::from_secs(120))
}

/// An incremental map: its stderr (which says what was reused).
fn incremental(m: Map) -> String {
    let o = m.arg("--incremental").run();
    o.assert_ok("incremental map");
    o.stderr_text()
}

/// `--dry-run --json`: (reused, computed, the whole answer).
fn dry_run(m: Map) -> (u64, u64, Value) {
    let o = m.arg("--incremental").arg("--dry-run").arg("--json").run();
    o.assert_ok("dry run");
    let v: Value = serde_json::from_slice(&o.stdout).expect("the dry run prints JSON");
    (
        v["reused"].as_u64().expect("reused"),
        v["compute"].as_u64().expect("compute"),
        v,
    )
}

#[test]
fn an_edited_helper_module_or_declared_file_recomputes_and_the_dry_run_says_which() {
    let Some((py, dir, input)) = fixture() else {
        return;
    };
    let d = dir.path();
    let mapper = write_mapper(d);
    let out = d.join("out");
    incremental(map(&py, &input, &out, &mapper));
    assert_eq!(rows(&py, &out, None)[3]["v"], 1006);
    // Nothing changed: every chunk reused.
    assert!(incremental(map(&py, &input, &out, &mapper)).contains("4 of 4 chunks reused"));
    // The version records the helper and the declared file, each with its sha256.
    let deps = info(&out)["lineage"]["dependencies"].clone();
    let paths: Vec<&str> = deps
        .as_array()
        .expect("dependencies")
        .iter()
        .map(|d| d["path"].as_str().expect("a path"))
        .collect();
    for name in ["helper.py", "lookup.json"] {
        assert!(paths.iter().any(|p| p.ends_with(name)), "{name} in {deps}");
    }
    // The mapper's own file is in the fingerprint by content, not among its dependencies.
    assert!(!paths.iter().any(|p| p.ends_with("m.py")), "{deps}");
    assert!(!paths.iter().any(|p| p.contains("site-packages")), "{deps}");
    // An edited helper: the dry run says so, naming it; the job recomputes every chunk.
    write_file(d, "helper.py", "SCALE = 3\n");
    let (reused, compute, v) = dry_run(map(&py, &input, &out, &mapper));
    assert_eq!((reused, compute), (0, 4), "{v}");
    assert!(
        v["changed_dependency"]
            .as_str()
            .is_some_and(|p| p.ends_with("helper.py")),
        "{v}"
    );
    let text = map(&py, &input, &out, &mapper)
        .arg("--incremental")
        .arg("--dry-run")
        .run();
    assert!(
        text.stdout_text().contains("helper.py changed"),
        "{}",
        text.stdout_text()
    );
    incremental(map(&py, &input, &out, &mapper));
    assert_eq!(rows(&py, &out, None)[3]["v"], 1009);
    // An edited declared data file, read in start().
    write_file(d, "lookup.json", "{\"offset\": 2000}\n");
    let (reused, compute, v) = dry_run(map(&py, &input, &out, &mapper));
    assert_eq!((reused, compute), (0, 4), "{v}");
    assert!(
        v["changed_dependency"]
            .as_str()
            .is_some_and(|p| p.ends_with("lookup.json")),
        "{v}"
    );
    incremental(map(&py, &input, &out, &mapper));
    assert_eq!(rows(&py, &out, None)[3]["v"], 2009);
    // Reused chunks keep their dependencies recorded: after a run that reused every chunk,
    // an edit is still seen.
    assert!(incremental(map(&py, &input, &out, &mapper)).contains("4 of 4 chunks reused"));
    write_file(d, "helper.py", "SCALE = 4\n");
    assert_eq!(dry_run(map(&py, &input, &out, &mapper)).0, 0);
}

#[test]
fn depends_on_python_and_on_row_error_are_in_the_fingerprint() {
    let Some((py, dir, input)) = fixture() else {
        return;
    };
    let d = dir.path();
    let mapper = py_mapper(
        d,
        "plain.py",
        "def f(row):\n    yield {'id': row['id']}\n",
        "f",
    );
    let table = write_file(d, "table.txt", "a\n");
    let out = d.join("out");
    // A --depends-on that names nothing is refused before anything runs.
    let o = map(&py, &input, &out, &mapper)
        .arg("--depends-on")
        .arg(d.join("missing.json"))
        .run();
    assert_exit(
        &o,
        2,
        "a missing --depends-on",
        &["--depends-on", "missing.json"],
    );
    assert!(!has_version(&out));
    let with_dep = |m: Map| m.arg("--depends-on").arg(&table);
    incremental(with_dep(map(&py, &input, &out, &mapper)));
    assert_eq!(dry_run(with_dep(map(&py, &input, &out, &mapper))).0, 4);
    write_file(d, "table.txt", "b\n");
    let (reused, _, v) = dry_run(with_dep(map(&py, &input, &out, &mapper)));
    assert_eq!(reused, 0, "{v}");
    // Named, as the version recorded it among its dependencies.
    assert_eq!(v["recomputed"]["changed mapper dependency"], 4, "{v}");
    assert!(
        v["changed_dependency"]
            .as_str()
            .is_some_and(|p| p.ends_with("table.txt")),
        "{v}"
    );
    incremental(with_dep(map(&py, &input, &out, &mapper)));
    // Another --depends-on file altogether.
    let other_dep = write_file(d, "other.txt", "c\n");
    let (reused, _, v) = dry_run(
        map(&py, &input, &out, &mapper)
            .arg("--depends-on")
            .arg(&other_dep),
    );
    assert_eq!(reused, 0, "{v}");
    assert_eq!(v["recomputed"]["changed --depends-on file"], 4, "{v}");
    // Another --on-row-error.
    let (reused, _, v) = dry_run(with_dep(map(&py, &input, &out, &mapper)).on_row_error("skip"));
    assert_eq!(reused, 0, "{v}");
    assert_eq!(v["recomputed"]["changed --on-row-error"], 4, "{v}");
    // Another interpreter (a second venv: the JSON path, without pyarrow).
    let venv = d.join("venv2");
    let made = run(std::process::Command::new(&py)
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv));
    assert!(made.status.success(), "a second venv");
    let other = venv.join("bin/python");
    let (reused, _, v) = dry_run(with_dep(map_with(&input, &out, &mapper)).python(&other));
    assert_eq!(reused, 0, "{v}");
    assert_eq!(
        v["recomputed"]["changed Python interpreter or packages"], 4,
        "{v}"
    );
    incremental(with_dep(map_with(&input, &out, &mapper)).python(&other));
    assert_eq!(
        dry_run(with_dep(map_with(&input, &out, &mapper)).python(&other)).0,
        4
    );
    assert_eq!(dry_run(with_dep(map(&py, &input, &out, &mapper))).0, 0);
}

#[test]
fn a_same_size_rewrite_with_its_mtime_put_back_is_a_changed_input() {
    let Some((py, dir, _)) = fixture() else {
        return;
    };
    let d = dir.path();
    let input = write_file(d, "in.jsonl", "{\"id\": 1}\n{\"id\": 2}\n");
    let mapper = py_mapper(
        d,
        "plain.py",
        "def f(row):\n    yield {'id': row['id']}\n",
        "f",
    );
    let out = d.join("out");
    incremental(map(&py, &input, &out, &mapper));
    let mtime = std::fs::metadata(&input)
        .and_then(|m| m.modified())
        .expect("mtime");
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&input, "{\"id\": 7}\n{\"id\": 8}\n").expect("rewritten");
    std::fs::File::options()
        .write(true)
        .open(&input)
        .and_then(|f| f.set_modified(mtime))
        .expect("the mtime put back");
    let (reused, compute, v) = dry_run(map(&py, &input, &out, &mapper));
    assert_eq!((reused, compute), (0, 1), "{v}");
    incremental(map(&py, &input, &out, &mapper));
    assert_eq!(ids(&py, &out, None), [7, 8]);
}

#[test]
fn an_incremental_version_equals_a_full_map_random_values_included_wherever_the_data_sits() {
    let Some((py, dir, input)) = fixture() else {
        return;
    };
    let d = dir.path();
    let mapper = write_mapper(d);
    let full = d.join("full");
    map(&py, &input, &full, &mapper)
        .arg("--seed")
        .arg("7")
        .run()
        .assert_ok("full map");
    let out = d.join("inc");
    incremental(map(&py, &input, &out, &mapper).arg("--seed").arg("7"));
    let expected = rows(&py, &full, None);
    assert_eq!(
        rows(&py, &out, None),
        expected,
        "incremental and full maps differ"
    );
    // Rerun of each rebuilds the same values.
    for t in [&full, &out] {
        let o = run(flywheel().arg("rerun").arg(t));
        assert_prints(&o, "rerun", &["matches: 100 rows"]);
    }
    // The values do depend on the seed (the equality above is not trivial).
    let other = d.join("other-seed");
    map(&py, &input, &other, &mapper)
        .arg("--seed")
        .arg("8")
        .run()
        .assert_ok("full map");
    assert_ne!(rows(&py, &other, None), expected);
    // The data directory moved: every chunk reused, the same values; a full map of the moved
    // data draws them too.
    std::fs::rename(d.join("data"), d.join("moved")).expect("moved");
    let moved = d.join("moved/in.parquet");
    let said = incremental(map(&py, &moved, &out, &mapper).arg("--seed").arg("7"));
    assert!(said.contains("4 of 4 chunks reused"), "{said}");
    assert_eq!(rows(&py, &out, None), expected);
    let full2 = d.join("full2");
    map(&py, &moved, &full2, &mapper)
        .arg("--seed")
        .arg("7")
        .run()
        .assert_ok("full map");
    assert_eq!(
        rows(&py, &full2, None),
        expected,
        "moving the data changed the draws"
    );
}

#[test]
fn a_long_plans_finer_tail_is_the_same_in_a_full_and_an_incremental_map() {
    let Some((py, dir, _)) = fixture() else {
        return;
    };
    let d = dir.path();
    // Two files of 80 chunks each: each file's last eighth is cut into quarters.
    std::fs::create_dir_all(d.join("shards")).expect("shards/");
    ids_parquet(&py, &d.join("shards/a.parquet"), 0, 400);
    ids_parquet(&py, &d.join("shards/b.parquet"), 400, 400);
    let glob = format!("{}/*.parquet", d.join("shards").display());
    let mapper = write_mapper(d);
    let run = |out: &Path, incremental: bool| {
        let mut m = Map::new(&glob, out)
            .mapper(&mapper)
            .python(&py)
            .chunk_rows(5)
            .workers(3)
            .within(Duration::from_secs(300));
        if incremental {
            m = m.arg("--incremental");
        }
        m.run().assert_ok("map");
        rows(&py, out, None)
    };
    let full = run(&d.join("full"), false);
    assert_eq!(full.len(), 800);
    assert_eq!(
        run(&d.join("inc"), true),
        full,
        "incremental and full maps differ"
    );
    let chunks = info(d.join("full"))["files"]
        .as_array()
        .expect("files")
        .len();
    assert!(chunks > 160, "the tails are cut finer: {chunks} files");
}

/// Copies `from` into `to`, every file, folders included.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("the copy's folder");
    for e in std::fs::read_dir(from).expect("the fixture is listed") {
        let e = e.expect("an entry");
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("a fixture file is copied");
        }
    }
}

#[test]
fn versions_written_before_seed_schemes_rerun_as_they_were_seeded() {
    let Some((py, dir)) = setup() else {
        return;
    };
    // launcher/tests/fixtures/legacy-seeds/README.md says how they were written.
    let fixture = root().join("launcher/tests/fixtures/legacy-seeds");
    let rerun = |table: &Path, n: u64| {
        let o = run(flywheel().arg("rerun").arg(table).arg("--python").arg(&py));
        assert_prints(
            &o,
            &table.display().to_string(),
            &[&format!("matches: {n} rows")],
        );
    };
    // A plain map's version, seeded by chunk index: moved anywhere, it reruns the same.
    let copy = dir.path().join("legacy");
    copy_dir(&fixture, &copy);
    let manifest = copy.join("plain/_versions/00000000000000000001.json");
    let text = std::fs::read_to_string(&manifest).expect("the fixture's manifest");
    let here = text.replace("/tmp/flywheel-legacy-fixture", &copy.display().to_string());
    std::fs::write(&manifest, here).expect("the manifest rewritten");
    rerun(&copy.join("plain"), 256);
    // An incremental map's, seeded from its input's absolute path: it reruns the same where it
    // was written (and only there: that scheme is why seeds are relative now).
    let original = Path::new("/tmp/flywheel-legacy-fixture");
    let _ = std::fs::remove_dir_all(original);
    copy_dir(&fixture, original);
    rerun(&original.join("inc"), 32);
    let _ = std::fs::remove_dir_all(original);
}

//! Tables: the schema language end to end, validation on write, versions, time travel, vacuum,
//! crash safety and concurrent writers.

use crate::support::*;
use std::path::Path;
use std::process::Command;

const SEED: &str = "video: image | file_metadata: json | duration_sec: int | audio_tracks: dict<str, audio> | human_scenes: list<from_sec: int, to_sec: int> | human_embeddings: list<vector<1536, fp16>>";

fn seed_mapper() -> String {
    format!(
        "{}:SeedMedia",
        root().join("launcher/tests/it/seed_media.py").display()
    )
}

/// check_seed.py: the seed schema's table, column by column with pyarrow.
fn check_seed(py: &Path, table: &Path) {
    let check = run(Command::new(py)
        .arg(root().join("launcher/tests/it/check_seed.py"))
        .arg(table)
        .arg("500"));
    assert!(check.status.success(), "{}", stderr_text(&check));
}

/// `flywheel map` of the dialogues through a Python mapper run by `python`.
fn python_map(out: &Path, mapper: &str, python: &str, chunk_rows: u64) -> Map {
    Map::dialogues(out)
        .chunk_rows(chunk_rows)
        .python(python)
        .mapper(mapper)
}

#[test]
fn the_seed_schema_round_trips_through_flywheel_and_pyarrow() {
    let Some((py, dir)) = setup() else { return };
    let out = dir.path().join("media");
    let o = Map::dialogues(&out)
        .workers(2)
        .chunk_rows(40)
        .schema(SEED)
        .mapper(seed_mapper())
        .run();
    assert!(o.status.success());
    // pyarrow, column by column.
    check_seed(&py, &out);
    // flywheel: the schema prints back as written, and the table reads back (copied by flywheel) equal.
    assert_eq!(info(&out)["schema_text"].as_str(), Some(SEED));
    // table head shows media and vectors short.
    let head = run(flywheel().args(["table", "head", "-n", "2"]).arg(&out));
    let text = String::from_utf8_lossy(&head.stdout);
    assert!(
        text.starts_with("video") && text.contains("<image/png ") && text.contains("duration_sec"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 3, "a header and two rows: {text}");
    let copy = dir.path().join("copy");
    let o = Map::new(&out, &copy).identity().chunk_rows(77).run();
    assert!(o.status.success());
    assert_eq!(info(&copy)["schema_text"].as_str(), Some(SEED));
    check_seed(&py, &copy);
    // A Python mapper gets binary columns as bytes, on both protocol paths.
    let m = py_mapper(dir.path(), "lens.py", "def f(row):\n    v = row['video']\n    yield {'is_bytes': isinstance(v, bytes), 'png': v[:4] == b'\\x89PNG', 'tracks': sorted(row['audio_tracks'] if isinstance(row['audio_tracks'], dict) else dict(row['audio_tracks']))}\n", "f");
    let runs = rows_on_both_paths(&py, |protocol| {
        Map::new(&out, dir.path().join(format!("lens-{protocol}")))
            .chunk_rows(100)
            .mapper(&m)
            .env("FLYWHEEL_PROTOCOL", protocol)
    });
    for (protocol, rows) in runs {
        assert_eq!(rows.len(), 500);
        assert!(
            rows.iter()
                .all(|r| r["is_bytes"] == true && r["png"] == true),
            "{protocol}: {:?}",
            rows[0]
        );
    }
}

#[test]
fn rows_violating_the_schema_fail_naming_row_and_column_and_publish_nothing() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mapper = dir.path().join("bad.py");
    std::fs::write(
        &mapper,
        r#"import base64
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
WAV = b"RIFF\x24\0\0\0WAVEfmt " + b"\0" * 16
def f(row):
    i, case = row["id"], CASE
    good = {"n": i, "s": "x", "v": [0.5] * 1536, "j": "{}", "a": WAV if case == "media" else PNG}
    if i == 37:
        if case == "type": good["n"] = "seven"
        if case == "null": good["s"] = None
        if case == "vector": good["v"] = [0.5] * 1535
        if case == "json": good["j"] = "{nope"
        if case == "media": good["a"] = PNG
    yield good
"#,
    )
    .expect("the test writes its file");
    let cases = [
        (
            "type",
            "n: int, s: str, v: vector<1536, fp16>, j: json, a: image",
            "column 'n': expected int, got string \"seven\"",
        ),
        (
            "null",
            "n: int, s: str, v: vector<1536, fp16>, j: json, a: image",
            "column 's': expected str, got null",
        ),
        (
            "vector",
            "n: int, s: str, v: vector<1536, fp16>, j: json, a: image",
            "column 'v': expected vector<1536, fp16>, got a list of 1535 numbers",
        ),
        (
            "json",
            "n: int, s: str, v: vector<1536, fp16>, j: json, a: image",
            "column 'j': expected json, got text that is not JSON",
        ),
        (
            "media",
            "n: int, s: str, v: vector<1536, fp16>, j: json, a: audio",
            "column 'a': expected audio, got image/png bytes",
        ),
    ];
    let py = pyarrow_python();
    for (case, schema, message) in cases {
        // Both protocol paths where a Python with pyarrow exists: it sends Arrow unless values need checks.
        for python in [
            Some("python3".to_string()),
            py.as_ref().map(|p| p.display().to_string()),
        ]
        .into_iter()
        .flatten()
        {
            let file = dir.path().join(format!("m_{case}.py"));
            std::fs::write(
                &file,
                std::fs::read_to_string(&mapper)
                    .expect("the file is read")
                    .replace("CASE\n", &format!("{case:?}\n")),
            )
            .expect("the test writes its file");
            let out = dir.path().join(format!("out_{case}_{}", python.len()));
            let o = python_map(&out, &format!("{}:f", file.display()), &python, 25)
                .workers(2)
                .max_attempts(1)
                .schema(schema)
                .run();
            // The value's fault, and the input row named.
            o.assert_failed(case, &[message, "from input row 37 of"]);
        }
    }
    // With --on-row-error skip the bad row goes to _errors and the rest is published.
    let file = dir.path().join("m_skip.py");
    std::fs::write(
        &file,
        std::fs::read_to_string(&mapper)
            .expect("the file is read")
            .replace("CASE\n", "\"vector\"\n"),
    )
    .expect("the test writes its file");
    let out = dir.path().join("out_skip");
    let o = Map::dialogues(&out)
        .chunk_rows(25)
        .on_row_error("skip")
        .schema("n: int, s: str, v: vector<1536, fp16>, j: json, a: image")
        .mapper(format!("{}:f", file.display()))
        .run();
    assert!(o.status.success());
    assert_eq!(info(&out)["num_rows"].as_u64(), Some(499));
    let errors = info(out.join("_errors"));
    assert_eq!(errors["num_rows"].as_u64(), Some(1));

    // The Arrow path (pyarrow in the mapper's Python): a null in a non-nullable column is found
    // by flywheel, named in fail mode, and sent to _errors in skip mode.
    let Some(py) = py else { return };
    let nulls = py_mapper(
        dir.path(),
        "nulls.py",
        "def f(row):\n    yield {'n': row['id'], 's': None if row['id'] == 37 else 'x'}\n",
        "f",
    );
    for policy in ["fail", "skip"] {
        let out = dir.path().join(format!("nulls_{policy}"));
        let o = python_map(&out, &nulls, &py.display().to_string(), 25)
            .max_attempts(1)
            .on_row_error(policy)
            .schema("n: int, s: str")
            .run();
        if policy == "fail" {
            o.assert_failed(
                "a null in a required column",
                &["from input row 37 of", "column 's': expected str, got null"],
            );
        } else {
            assert!(o.status.success());
            assert_eq!(info(&out)["num_rows"].as_u64(), Some(499));
            assert_eq!(info(out.join("_errors"))["num_rows"].as_u64(), Some(1));
        }
    }
}

#[test]
fn a_bad_schema_is_refused_with_its_position() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let o = Map::dialogues(dir.path().join("t"))
        .schema("a: int, b: vectr<3, fp16>")
        .identity()
        .run();
    assert_eq!(o.code(), Some(2));
    let stderr = o.stderr_text();
    assert!(
        stderr.contains("error: schema: at position 11: expected a type"),
        "{stderr}"
    );
}

/// An identity map of `input` into `out`, 128 rows a chunk.
fn map_identity(input: impl AsRef<std::ffi::OsStr>, out: &Path, mode: &str) -> Map {
    Map::new(input, out).identity().chunk_rows(128).mode(mode)
}

#[test]
fn every_version_reads_back_its_own_rows_and_vacuum_keeps_what_is_referenced() {
    let Some((py, dir)) = setup() else { return };
    let t = dir.path().join("t");
    let half = py_mapper(
        dir.path(),
        "half.py",
        "def f(row):\n    if row['id'] % 2 == 0:\n        yield row\n",
        "f",
    );
    map_identity(dialogues(), &t, "create")
        .run()
        .assert_ok("create");
    map_identity(dialogues(), &t, "append")
        .run()
        .assert_ok("append");
    let o = Map::dialogues(&t)
        .chunk_rows(128)
        .mode("overwrite")
        .mapper(&half)
        .run();
    assert!(o.status.success());
    let all: Vec<u64> = (0..500).collect();
    assert_eq!(ids(&py, &t, Some(1)), all);
    assert_eq!(
        ids(&py, &t, Some(2)),
        all.iter().chain(all.iter()).copied().collect::<Vec<_>>()
    );
    let even: Vec<u64> = (0..500).filter(|i| i % 2 == 0).collect();
    assert_eq!(ids(&py, &t, Some(3)), even);
    // flywheel reads versions too (as input).
    for (v, n) in [(1, 500), (2, 1000), (3, 250)] {
        let copy = dir.path().join(format!("copy{v}"));
        assert!(
            map_identity(format!("{}@{v}", t.display()), &copy, "create")
                .run()
                .status
                .success()
        );
        assert_eq!(info(&copy)["num_rows"].as_u64(), Some(n));
    }
    // An orphan (a crashed job's file) and the files only versions 1 and 2 reference.
    let orphan = t.join("data/c999999-a1-r1-dead.parquet");
    std::fs::copy(dialogues(), &orphan).expect("the file is copied");
    let v3_files: Vec<String> =
        String::from_utf8(run(flywheel().args(["table", "files"]).arg(&t)).stdout)
            .expect("the output is UTF-8")
            .lines()
            .map(str::to_string)
            .collect();
    let before = std::fs::read_dir(t.join("data"))
        .expect("the folder is listed")
        .count();
    // The history up to a version; a version cannot be vacuumed on its own.
    let log = run(flywheel()
        .args(["table", "log"])
        .arg(format!("{}@2", t.display())));
    assert!(log.status.success(), "{}", stderr_text(&log));
    let versions: Vec<String> = String::from_utf8_lossy(&log.stdout)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect();
    assert_eq!(versions, ["1", "2"], "table log T@2");
    let at = run(flywheel()
        .args(["table", "vacuum", "--keep", "1"])
        .arg(format!("{}@2", t.display())));
    assert_exit(&at, 2, "vacuum T@2", &["not on version 2"]);
    let dry = run(flywheel()
        .args(["table", "vacuum", "--keep", "1", "--dry-run"])
        .arg(&t));
    assert_prints(
        &dry,
        "vacuum --dry-run",
        &[
            "would remove version 1",
            "would remove version 2",
            "c999999",
        ],
    );
    assert_eq!(
        std::fs::read_dir(t.join("data"))
            .expect("the folder is listed")
            .count(),
        before,
        "--dry-run removes nothing"
    );
    let vac = run(flywheel().args(["table", "vacuum", "--keep", "1"]).arg(&t));
    assert!(vac.status.success());
    let left: Vec<String> = std::fs::read_dir(t.join("data"))
        .expect("the folder is listed")
        .map(|e| e.expect("a folder entry").path().display().to_string())
        .collect();
    assert_eq!(
        left.len(),
        v3_files.len(),
        "only version 3's files are left: {left:?}"
    );
    for f in &v3_files {
        assert!(Path::new(f).exists(), "{f} is referenced and must stay");
    }
    assert_eq!(ids(&py, &t, None), even, "T@latest still reads");
    let gone = run(flywheel()
        .args(["table", "info"])
        .arg(format!("{}@1", t.display())));
    assert_exit(
        &gone,
        2,
        "a vacuumed version",
        &["version 1 does not exist (latest is 3)"],
    );
}

#[test]
fn vacuum_refuses_while_a_job_is_writing() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let t = dir.path().join("t");
    map_identity(dialogues(), &t, "create")
        .run()
        .assert_ok("create");
    std::fs::create_dir_all(t.join("_active")).expect("the folder is made");
    std::fs::write(t.join("_active/123-1.json"), "{}").expect("the test writes its file");
    let o = run(flywheel().args(["table", "vacuum"]).arg(&t));
    assert_exit(&o, 2, "vacuum", &["a job is writing to this table"]);
    assert!(run(flywheel().args(["table", "vacuum", "--force"]).arg(&t))
        .status
        .success());
}

#[test]
fn a_commit_killed_at_any_step_leaves_the_old_or_the_new_version() {
    let Some(py) = pyarrow_or_skip() else { return };
    use std::os::unix::process::ExitStatusExt;
    for step in flywheel_formats::COMMIT_STEPS {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let t = dir.path().join("t");
        map_identity(dialogues(), &t, "create")
            .run()
            .assert_ok("create");
        let o = map_identity(dialogues(), &t, "append")
            .env("FLYWHEEL_CRASH_AT", step)
            .run();
        assert_eq!(
            o.status.signal(),
            Some(9),
            "{step}: the committing process is SIGKILLed"
        );
        let versions: Vec<String> = std::fs::read_dir(t.join("_versions"))
            .expect("the folder is listed")
            .map(|e| {
                e.expect("a folder entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|n| !n.starts_with('.'))
            .collect();
        let rows = ids(&py, &t, None).len();
        match versions.len() {
            1 => assert_eq!(rows, 500, "{step}: old version intact"),
            2 => assert_eq!(rows, 1000, "{step}: new version complete"),
            n => panic!("{step}: {n} versions"),
        }
        // The manifest's link is the commit; the Delta and card steps come after it.
        let steps = flywheel_formats::COMMIT_STEPS;
        let position = |s: &str| steps.iter().position(|x| *x == s);
        let visible_after_link = position(step) >= position("linked");
        assert_eq!(
            versions.len() == 2,
            visible_after_link,
            "{step}: the version appears exactly at the link"
        );
        // The table stays usable: the next append lands on top.
        map_identity(dialogues(), &t, "append")
            .run()
            .assert_ok(step);
        assert_eq!(ids(&py, &t, None).len(), rows + 500, "{step}");
    }
}

#[test]
fn concurrent_writers_never_lose_an_update_and_only_one_creator_wins() {
    let Some((py, dir)) = setup() else { return };
    let t = dir.path().join("appends");
    map_identity(dialogues(), &t, "create")
        .run()
        .assert_ok("create");
    let spawn = |out: &Path, mode: &str| {
        Map::dialogues(out)
            .identity()
            .workers(1)
            .chunk_rows(250)
            .mode(mode)
            .command()
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("flywheel starts")
    };
    let children: Vec<_> = (0..8).map(|_| spawn(&t, "append")).collect();
    for c in children {
        let o = c.wait_with_output().expect("flywheel ends");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let v = info(&t);
    assert_eq!(
        v["versions"],
        serde_json::json!([1, 2, 3, 4, 5, 6, 7, 8, 9]),
        "8 appends, 8 distinct versions"
    );
    assert_eq!(v["num_rows"].as_u64(), Some(4500), "no lost update");
    assert_eq!(ids(&py, &t, None).len(), 4500);
    let mut files: Vec<String> = v["files"]
        .as_array()
        .expect("an array")
        .iter()
        .map(|f| f["path"].as_str().expect("a string").to_string())
        .collect();
    let n = files.len();
    files.sort();
    files.dedup();
    assert_eq!(files.len(), n, "no file listed twice");

    let c = dir.path().join("creates");
    let children: Vec<_> = (0..8).map(|_| spawn(&c, "create")).collect();
    let outcomes: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("flywheel ends"))
        .collect();
    let winners = outcomes.iter().filter(|o| o.status.success()).count();
    assert_eq!(winners, 1, "exactly one creator wins");
    for o in outcomes.iter().filter(|o| !o.status.success()) {
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("already holds a table"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let v = info(&c);
    assert_eq!(
        (v["versions"].clone(), v["num_rows"].as_u64()),
        (serde_json::json!([1]), Some(500))
    );
}

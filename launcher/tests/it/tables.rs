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

fn info(table: &Path) -> serde_json::Value {
    let o = run(flywheel().args(["table", "info", "--json"]).arg(table));
    assert!(o.status.success());
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn the_seed_schema_round_trips_through_flywheel_and_pyarrow() {
    let Some(py) = pyarrow_python() else {
        available(false, "a Python with pyarrow");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("media");
    let o = run(flywheel()
        .args([
            "map",
            "--workers",
            "2",
            "--chunk-rows",
            "40",
            "--schema",
            SEED,
            "--mapper",
            &seed_mapper(),
            "--input",
        ])
        .arg(dialogues())
        .arg("--output")
        .arg(&out));
    assert!(o.status.success());
    // pyarrow, column by column.
    let check = Command::new(&py)
        .arg(root().join("launcher/tests/it/check_seed.py"))
        .arg(&out)
        .arg("500")
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // flywheel: the schema prints back as written, and the table reads back (copied by flywheel) equal.
    assert_eq!(info(&out)["schema_text"].as_str(), Some(SEED));
    let copy = dir.path().join("copy");
    let o = run(flywheel()
        .args([
            "map",
            "--mapper",
            "builtin:identity",
            "--chunk-rows",
            "77",
            "--input",
        ])
        .arg(&out)
        .arg("--output")
        .arg(&copy));
    assert!(o.status.success());
    assert_eq!(info(&copy)["schema_text"].as_str(), Some(SEED));
    let check = Command::new(&py)
        .arg(root().join("launcher/tests/it/check_seed.py"))
        .arg(&copy)
        .arg("500")
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn rows_violating_the_schema_fail_naming_row_and_column_and_publish_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mapper = dir.path().join("bad.py");
    std::fs::write(
        &mapper,
        r#"import base64
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
WAV = b"RIFF\x24\0\0\0WAVEfmt " + b"\0" * 16
def f(row):
    i, case = row["id"], CASE
    good = {"n": i, "s": "x", "v": [0.5] * 4, "j": "{}", "a": WAV if case == "media" else PNG}
    if i == 37:
        if case == "type": good["n"] = "seven"
        if case == "null": good["s"] = None
        if case == "vector": good["v"] = [0.5] * 3
        if case == "json": good["j"] = "{nope"
        if case == "media": good["a"] = PNG
    yield good
"#,
    )
    .unwrap();
    let cases = [
        (
            "type",
            "n: int, s: str, v: vector<4, fp16>, j: json, a: image",
            "column 'n': expected int, got string \"seven\"",
        ),
        (
            "null",
            "n: int, s: str, v: vector<4, fp16>, j: json, a: image",
            "column 's': expected str, got null",
        ),
        (
            "vector",
            "n: int, s: str, v: vector<4, fp16>, j: json, a: image",
            "column 'v': expected vector<4, fp16>, got a list of 3 numbers",
        ),
        (
            "json",
            "n: int, s: str, v: vector<4, fp16>, j: json, a: image",
            "column 'j': expected json, got text that is not JSON",
        ),
        (
            "media",
            "n: int, s: str, v: vector<4, fp16>, j: json, a: audio",
            "column 'a': expected audio, got image/png bytes",
        ),
    ];
    for (case, schema, message) in cases {
        let file = dir.path().join(format!("m_{case}.py"));
        std::fs::write(
            &file,
            std::fs::read_to_string(&mapper)
                .unwrap()
                .replace("CASE\n", &format!("{case:?}\n")),
        )
        .unwrap();
        let out = dir.path().join(format!("out_{case}"));
        let o = run(flywheel()
            .args([
                "map",
                "--workers",
                "2",
                "--chunk-rows",
                "25",
                "--max-attempts",
                "1",
                "--schema",
                schema,
                "--mapper",
            ])
            .arg(format!("{}:f", file.display()))
            .arg("--input")
            .arg(dialogues())
            .arg("--output")
            .arg(&out));
        assert_eq!(o.status.code(), Some(1), "{case}");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains(message), "{case}: {stderr}");
        assert!(
            stderr.contains("from input row 37 of"),
            "{case}: the input row is named: {stderr}"
        );
        assert!(!has_version(&out), "{case}: nothing may be published");
    }
    // With --on-row-error skip the bad row goes to _errors and the rest is published.
    let file = dir.path().join("m_skip.py");
    std::fs::write(
        &file,
        std::fs::read_to_string(&mapper)
            .unwrap()
            .replace("CASE\n", "\"vector\"\n"),
    )
    .unwrap();
    let out = dir.path().join("out_skip");
    let o = run(flywheel()
        .args([
            "map",
            "--chunk-rows",
            "25",
            "--on-row-error",
            "skip",
            "--schema",
            "n: int, s: str, v: vector<4, fp16>, j: json, a: image",
            "--mapper",
        ])
        .arg(format!("{}:f", file.display()))
        .arg("--input")
        .arg(dialogues())
        .arg("--output")
        .arg(&out));
    assert!(o.status.success());
    assert_eq!(info(&out)["num_rows"].as_u64(), Some(499));
    let errors = info(&out.join("_errors"));
    assert_eq!(errors["num_rows"].as_u64(), Some(1));
}

#[test]
fn a_bad_schema_is_refused_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(flywheel()
        .args([
            "map",
            "--schema",
            "a: int, b: vectr<3, fp16>",
            "--mapper",
            "builtin:identity",
            "--input",
        ])
        .arg(dialogues())
        .arg("--output")
        .arg(dir.path().join("t")));
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("error: schema: at position 11: expected a type"),
        "{stderr}"
    );
}

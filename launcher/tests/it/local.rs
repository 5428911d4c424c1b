//! The embedded runner (`flywheel map`): coordinator and workers in one process.

use crate::support::*;
use std::path::Path;

#[test]
fn python_mapper_output_equals_a_plain_python_loop_in_input_order() {
    let Some((py, dir)) = setup() else { return };
    let out = dir.path().join("pairs");
    // Odd chunk size and 3 workers: chunks cross row groups and finish out of order.
    let o = Map::dialogues(&out)
        .workers(3)
        .chunk_rows(37)
        .mapper(format!("{}:ExpandDialogue", expand_dialogue().display()))
        .run();
    assert!(o.status.success());
    let stdout = o.stdout_text();
    assert!(
        stdout.contains("published") && stdout.contains("pairs@1"),
        "{stdout}"
    );
    let expected = expected_rows(&py, &dialogues(), &expand_dialogue(), "ExpandDialogue");
    assert!(expected.len() > 500, "one dialogue gives several pairs");
    assert_table_rows(&py, &out, &expected);
    // The report names every worker.
    let stderr = o.stderr_text();
    assert!(
        stderr.contains("rows in 500") && stderr.contains("worker   3"),
        "{stderr}"
    );
}

#[test]
fn identity_copies_the_input_exactly() {
    let Some((py, dir)) = setup() else { return };
    let out = dir.path().join("copy");
    let o = Map::dialogues(&out)
        .workers(2)
        .chunk_rows(64)
        .identity()
        .run();
    assert!(o.status.success());
    let input = read_parquet_rows(&py, &dialogues());
    assert_table_rows(&py, &out, &input);
    // table files lists the data files in row order, absolute.
    let files = run(flywheel().args(["table", "files"]).arg(&out));
    let listed: Vec<String> = String::from_utf8_lossy(&files.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(listed.len(), 8, "500 rows in chunks of 64");
    assert!(listed
        .iter()
        .all(|l| Path::new(l).is_absolute() && l.ends_with(".parquet")));
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "chunk order is file order");
    // table head: the first rows, chosen columns; an unknown column is named.
    let head = run(flywheel()
        .args(["table", "head", "-n", "3", "--columns", "id,topic"])
        .arg(&out));
    let text = String::from_utf8_lossy(&head.stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("id")
            && lines[0].contains("topic")
            && lines[1].starts_with('0')
            && lines[3].starts_with('2'),
        "{text}"
    );
    let bad = run(flywheel()
        .args(["table", "head", "--columns", "nope"])
        .arg(&out));
    assert_exit(
        &bad,
        2,
        "head --columns nope",
        &["no column 'nope' (columns: id, topic, turns)"],
    );
    // table info shows the version and row count.
    let v = info(&out);
    assert_eq!(
        (v["version"].as_u64(), v["num_rows"].as_u64()),
        (Some(1), Some(500))
    );
}

fn read_parquet_rows(py: &Path, file: &Path) -> Vec<serde_json::Value> {
    let out = std::process::Command::new(py)
        .args(["-c", "import sys, json, pyarrow.parquet as pq; json.dump(pq.read_table(sys.argv[1]).to_pylist(), sys.stdout, default=str)"])
        .arg(file)
        .output()
        .expect("the command runs");
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).expect("the output is JSON")
}

#[test]
fn a_mapper_that_always_fails_publishes_nothing_and_exits_1() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mapper = write_file(dir.path(), "bad.py", "def explode(row):\n    if row['id'] == 123:\n        raise ValueError('cannot handle dialogue 123')\n    yield row\n");
    let out = dir.path().join("never");
    let o = Map::dialogues(&out)
        .workers(2)
        .chunk_rows(50)
        .max_attempts(2)
        .mapper(format!("{}:explode", mapper.display()))
        .run();
    o.assert_failed(
        "a mapper raising on row 123",
        &[
            "error: job failed, nothing was published",
            "cannot handle dialogue 123",
            "row 123",
        ],
    );
}

#[test]
fn a_crashing_mapper_costs_one_attempt_and_the_job_completes() {
    let Some((py, dir)) = setup() else { return };
    let marker = dir.path().join("crashed-once");
    let mapper = write_file(
        dir.path(),
        "crashy.py",
        &format!(
            "import os\nMARK = {:?}\ndef f(row):\n    if row['id'] == 250 and not os.path.exists(MARK):\n        open(MARK, 'w').close()\n        os._exit(3)\n    yield {{'id': row['id'], 'n': len(row['turns'])}}\n",
            marker.display().to_string()
        ),
    );
    let o = Map::dialogues(dir.path().join("t"))
        .workers(2)
        .chunk_rows(50)
        .mapper(format!("{}:f", mapper.display()))
        .run();
    assert!(o.status.success());
    // One failed attempt (run again, or finished by a speculative copy already running).
    let log = o.stderr_text();
    assert!(log.contains("failures 1 ·"), "{log}");
    assert_eq!(o.ids(&py), (0..500).collect::<Vec<u64>>());
}

#[test]
fn bad_input_is_refused_before_anything_runs_with_exit_2() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = dir.path().join("t");
    let d = dialogues().display().to_string();
    let cases = [
        (
            "/nonexistent/x.parquet",
            "builtin:identity",
            "input '/nonexistent/x.parquet' matches no file",
        ),
        (d.as_str(), "builtin:nope", "unknown builtin mapper 'nope'"),
        (
            d.as_str(),
            "missing.py:F",
            "mapper file missing.py does not exist",
        ),
        (
            d.as_str(),
            "exec:no-such-program-xyz",
            "'no-such-program-xyz' is not found",
        ),
    ];
    for (input, mapper, message) in cases {
        let o = Map::new(input, &out).mapper(mapper).run();
        assert_eq!(o.code(), Some(2), "{input} {mapper}");
        let stderr = o.stderr_text();
        assert!(
            stderr.starts_with("error: ") && stderr.contains(message),
            "{input} {mapper}: {stderr}"
        );
        assert!(!out.exists(), "nothing is written for bad input");
    }
}

#[test]
fn create_refuses_an_existing_table_and_overwrite_adds_a_version() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = dir.path().join("t");
    let map = |mode: &str| {
        Map::dialogues(&out)
            .identity()
            .chunk_rows(100)
            .mode(mode)
            .run()
    };
    assert!(map("create").status.success());
    let again = map("create");
    assert_eq!(again.code(), Some(2));
    assert!(again
        .stderr_text()
        .contains("already holds a table (version 1)"));
    assert!(map("overwrite").status.success());
    assert!(map("append").status.success());
    let log = run(flywheel().args(["table", "log"]).arg(&out));
    let text = String::from_utf8_lossy(&log.stdout);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.contains("overwrite") && text.contains("append") && text.contains("1000 rows"),
        "{text}"
    );
}

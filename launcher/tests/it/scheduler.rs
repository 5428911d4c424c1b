//! Scheduling with real workers and mapper processes: retries, hangs, and resuming a killed job.

use crate::support::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn crashes_on_every_fifth_chunk_and_a_hang_still_give_the_complete_output() {
    let Some((py, dir)) = setup() else { return };
    let marks = dir.path().join("marks");
    std::fs::create_dir(&marks).expect("the folder is made");
    let mapper = py_mapper(
        dir.path(),
        "flaky.py",
        &format!(
            r#"import os, time
MARKS = {marks:?}
def f(row):
    chunk = int(os.environ["FLYWHEEL_CHUNK"])
    first = os.path.join(MARKS, f"c{{chunk}}")
    if chunk % 5 == 0 and not os.path.exists(first):
        open(first, "w").close()
        os._exit(1)                      # crash on the first attempt of every 5th chunk
    hang = os.path.join(MARKS, "hang")
    if chunk == 7 and not os.path.exists(hang):
        open(hang, "w").close()
        time.sleep(3600)                 # hang once
    yield {{"id": row["id"], "chunk": chunk}}
"#,
            marks = marks.display().to_string()
        ),
        "f",
    );
    let o = Map::dialogues(dir.path().join("t"))
        .workers(3)
        .chunk_rows(20)
        .arg("--chunk-timeout")
        .arg("5")
        .max_attempts(3)
        .mapper(&mapper)
        .run();
    assert!(o.status.success());
    assert_eq!(
        o.ids(&py),
        (0..500).collect::<Vec<_>>(),
        "complete and in input order"
    );
    let log = o.stderr_text();
    // 25 chunks: chunks 0, 5, 10, 15, 20 crash once; chunk 7 hangs once (a timeout, unless a
    // speculative copy overtakes it first). A failed chunk is run again, or finished by a
    // speculative copy that was already running, so failures are counted, not retries.
    assert!(
        log.contains("failures 5 ·") || log.contains("failures 6 ·"),
        "the report counts the failed attempts: {log}"
    );
}

#[test]
fn a_job_killed_halfway_resumes_redoing_at_most_one_chunk_per_worker() {
    let Some((py, dir)) = setup() else { return };
    let spec = py_mapper(
        dir.path(),
        "slow.py",
        "import time\ndef f(row):\n    time.sleep(0.01)\n    yield {'id': row['id'], 'n': len(row['turns'])}\n",
        "f",
    );
    let map = |out: &Path| Map::dialogues(out).workers(2).chunk_rows(20).mapper(&spec);
    // The reference: an uninterrupted run.
    let clean = dir.path().join("clean");
    assert!(map(&clean).run().status.success());

    let out = dir.path().join("t");
    let mut child = map(&out)
        .command()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("flywheel starts");
    let start = Instant::now();
    while accepted_chunks(&out) < 10 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the job made no progress"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGKILL the whole job (coordinator and workers are one process here).
    Command::new("kill")
        .arg("-9")
        .arg(child.id().to_string())
        .status()
        .expect("the command runs");
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(300));
    let before = accepted_chunks(&out);
    assert!(before < 25, "killed before the end");
    assert!(!has_version(&out), "nothing published by the killed run");
    assert!(
        status_of(&out).contains("interrupted"),
        "status shows the interrupted job"
    );
    let files_before = std::fs::read_dir(out.join("data"))
        .expect("the folder is listed")
        .count();

    let o = map(&out).arg("--resume").arg("--json").run();
    assert!(o.status.success());
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("the output is JSON");
    let redone = report["report"]["workers"]
        .as_array()
        .expect("an array")
        .iter()
        .map(|w| w["chunks"].as_u64().expect("an integer"))
        .sum::<u64>();
    assert_eq!(
        redone as usize,
        25 - before,
        "the resumed run does exactly the chunks the journal lacks"
    );
    // Work lost to the kill: files written but not journaled, at most one per worker.
    let orphans = files_before - before;
    assert!(
        orphans <= 2,
        "{orphans} chunks finished but unrecorded by the killed run"
    );
    // The result equals the uninterrupted run, row for row.
    let got = read_with_pyarrow(&py, &out, None);
    let want = read_with_pyarrow(&py, &clean, None);
    assert_eq!(got["rows"], want["rows"]);
    assert_eq!(got["num_rows"].as_u64(), Some(500));
    assert!(status_of(&out).contains("finished: published version 1"));
}

#[test]
fn a_row_that_kills_the_mapper_is_isolated_with_skip() {
    let Some((py, dir)) = setup() else { return };
    let mapper = py_mapper(
        dir.path(),
        "poison.py",
        "import ctypes, os\ndef f(row):\n    if row['id'] in (123, 124, 400):\n        ctypes.string_at(0)  # segfault, every time\n    yield {'id': row['id']}\n",
        "f",
    );
    let out = dir.path().join("t");
    let o = Map::dialogues(&out)
        .workers(2)
        .chunk_rows(50)
        .on_row_error("skip")
        .mapper(&mapper)
        .run();
    assert!(o.status.success());
    let ids = o.ids(&py);
    let want: Vec<u64> = (0..500).filter(|i| ![123, 124, 400].contains(i)).collect();
    assert_eq!(ids, want, "every other row, in order");
    let errors = read_with_pyarrow(&py, &out.join("_errors"), None);
    let mut bad: Vec<u64> = errors["rows"]
        .as_array()
        .expect("an array")
        .iter()
        .map(|r| r["row"].as_u64().expect("an integer"))
        .collect();
    bad.sort();
    assert_eq!(bad, vec![123, 124, 400]);
    assert!(errors["rows"][0]["error"]
        .as_str()
        .expect("a string")
        .contains("the mapper died on this row"));
    assert!(
        errors["rows"][0]["input"]
            .as_str()
            .expect("a string")
            .contains("\"id\""),
        "the input row is kept"
    );
}

#[test]
fn a_mapper_that_cannot_start_fails_the_job_even_with_skip() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mapper = py_mapper(
        dir.path(),
        "broken.py",
        "import no_such_module_anywhere\ndef f(row):\n    yield row\n",
        "f",
    );
    let out = dir.path().join("t");
    let o = Map::dialogues(&out)
        .on_row_error("skip")
        .max_attempts(2)
        .mapper(&mapper)
        .run();
    o.assert_failed(
        "a mapper that cannot start",
        &[
            "failed to start",
            "No module named 'no_such_module_anywhere'",
        ],
    );
    assert!(
        !has_version(&out.join("_errors")),
        "no row is blamed for a mapper that cannot start"
    );
}

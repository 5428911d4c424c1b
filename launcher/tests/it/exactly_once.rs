//! Exactly once under every fault (issue 15): kills at every step of a job's end, a kill loop,
//! concurrent resumes, vacuum racing starting jobs, changed inputs, damaged versions, edited
//! journals. Every kill is a real SIGKILL of the real binary.

use crate::support::*;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

fn versions(table: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(table.join("_versions"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// An identity map, two workers, 100 rows a chunk.
fn identity(input: &Path, out: &Path, mode: &str) -> Map {
    Map::new(input, out)
        .identity()
        .workers(2)
        .chunk_rows(100)
        .mode(mode)
}

/// A Python mapper that sleeps `secs` a row and, with `fail_every`, raises on every n-th id.
fn slow_mapper(dir: &Path, secs: f64, fail_every: u64) -> String {
    let file = dir.join(format!("slow_{}_{fail_every}.py", (secs * 1000.0) as u64));
    std::fs::write(
        &file,
        format!(
            "import time\ndef f(row):\n    time.sleep({secs})\n    if {fail_every} and row['id'] % {fail_every} == 0:\n        raise ValueError('bad row')\n    yield {{'id': row['id']}}\n"
        ),
    )
    .expect("the test writes its file");
    format!("{}:f", file.display())
}

/// A Python mapper's map run by `py`, two workers, 20 rows a chunk.
fn python_map(py: &Path, input: &Path, out: &Path, mapper: &str, mode: &str) -> Map {
    Map::new(input, out)
        .workers(2)
        .chunk_rows(20)
        .mode(mode)
        .mapper(mapper)
        .python(py)
}

/// The table `dir/t` created by `identity` from `dir/in.parquet` of ids 0..n; returns both.
fn created(py: &Path, dir: &Path, n: u64) -> (PathBuf, PathBuf) {
    let input = ids_input(py, dir, n);
    let t = dir.join("t");
    identity(&input, &t, "create").run().assert_ok("create");
    (input, t)
}

/// A create job of 200 rows through a slow Python mapper, SIGKILLed after 2 accepted chunks.
struct Interrupted {
    input: PathBuf,
    mapper: String,
    t: PathBuf,
}

fn interrupted_create(py: &Path, dir: &Path) -> Interrupted {
    let input = ids_input(py, dir, 200);
    let mapper = slow_mapper(dir, 0.02, 0);
    let t = dir.join("t");
    kill_after_accepted(python_map(py, &input, &t, &mapper, "create"), &t, 2);
    Interrupted { input, mapper, t }
}

fn error_rows(py: &Path, out: &Path) -> usize {
    if !out.join("_errors/_versions").is_dir() || versions(&out.join("_errors")).is_empty() {
        return 0;
    }
    read_with_pyarrow(py, &out.join("_errors"), None)["rows"]
        .as_array()
        .map(|r| r.len())
        .unwrap_or(0)
}

#[test]
fn a_kill_at_every_step_of_a_jobs_end_then_resume_publishes_exactly_once() {
    let Some((py, dir)) = setup() else { return };
    let input = ids_input(&py, dir.path(), 120);
    // Every 10th row raises: with --on-row-error skip those rows go to _errors.
    let mapper = slow_mapper(dir.path(), 0.0, 10);
    let kept: Vec<u64> = (0..120).filter(|i| i % 10 != 0).collect();
    let steps: Vec<&str> = flywheel_coordinator::JOB_STEPS
        .iter()
        .chain(flywheel_formats::COMMIT_STEPS)
        .copied()
        .collect();
    for step in steps {
        let t = dir.path().join(format!("t-{step}"));
        let base = python_map(&py, &input, &t, &mapper, "create")
            .on_row_error("skip")
            .run();
        assert!(base.status.success(), "{step}: base");
        let o = python_map(&py, &input, &t, &mapper, "append")
            .on_row_error("skip")
            .env("FLYWHEEL_CRASH_AT", step)
            .run();
        assert_eq!(o.status.signal(), Some(9), "{step}: killed");
        let status = status_of(&t);
        let o = python_map(&py, &input, &t, &mapper, "append")
            .on_row_error("skip")
            .arg("--resume")
            .run();
        assert!(o.status.success(), "{step}: the resume succeeds");
        let got = ids(&py, &t, None);
        let want: Vec<u64> = kept.iter().chain(&kept).copied().collect();
        assert_eq!(got, want, "{step}: the append's rows exactly once");
        assert_eq!(versions(&t).len(), 2, "{step}: one version per job");
        assert_eq!(
            error_rows(&py, &t),
            24,
            "{step}: each job's 12 error rows exactly once"
        );
        // What status said before the resume agrees with what the resume did.
        let stderr = String::from_utf8_lossy(&o.stderr);
        if status.contains("finished") && stderr.contains("nothing to resume") {
            // the crash was after the commit: nothing was run again
        } else if status.contains("interrupted") {
            assert!(stderr.contains("resuming:"), "{step}: {status} / {stderr}");
        }
    }
}

#[test]
fn kill_loop_every_append_lands_exactly_once() {
    let Some(py) = pyarrow_or_skip() else { return };
    let kills: usize = std::env::var("FLYWHEEL_KILL_LOOP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let input = ids_input(&py, dir.path(), 2000);
    let t = dir.path().join("t");
    let t0 = Instant::now();
    assert!(identity(&input, &t, "create").run().status.success());
    let clean = t0.elapsed();
    let mut seed: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is past the epoch")
        .as_nanos() as u64
        | 1;
    eprintln!("kill loop seed {seed}, clean run {clean:?}");
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..kills {
        let id = format!("append-{i}");
        let before = versions(&t).len();
        let mut child = identity(&input, &t, "append")
            .args(["--job-id", &id])
            .command()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("flywheel starts");
        if i % 3 == 0 {
            // The publish window: kill as soon as the new manifest appears.
            let start = Instant::now();
            while versions(&t).len() == before
                && child.try_wait().expect("the child is waited for").is_none()
            {
                assert!(start.elapsed() < Duration::from_secs(60), "no publish");
                std::hint::spin_loop();
            }
        } else {
            let ms = rand() % (clean.as_millis() as u64 * 12 / 10 + 1);
            std::thread::sleep(Duration::from_millis(ms));
        }
        let _ = child.kill();
        let _ = child.wait();
        let o = identity(&input, &t, "append")
            .args(["--job-id", &id, "--resume"])
            .run();
        assert!(o.status.success(), "kill {i}: resume");
        let want: Vec<u64> = (0..i as u64 + 2).flat_map(|_| 0..2000).collect();
        let got = ids(&py, &t, None);
        let first_diff = got.iter().zip(&want).position(|(g, w)| g != w);
        assert!(
            got.len() == want.len() && first_diff.is_none(),
            "kill {i}: {} rows for {}, first difference at {first_diff:?}; {}",
            got.len(),
            want.len(),
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(
            versions(&t).len(),
            i + 2,
            "kill {i}: one version per append"
        );
    }
}

#[test]
fn a_run_killed_before_its_journal_has_a_start_line_resumes_as_a_new_job() {
    // What a kill between creating the journal and writing its first line leaves: an empty
    // file, or (a crash) a torn line. The resume runs the job; a later resume finds its start.
    let Some(py) = pyarrow_or_skip() else { return };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let input = ids_input(&py, dir.path(), 300);
    let t = dir.path().join("t");
    identity(&input, &t, "create").run().assert_ok("create");
    for (i, left) in [&b""[..], &b"{\"Start\":{\"plan\":\"ab"[..]]
        .iter()
        .enumerate()
    {
        let id = format!("stopped-{i}");
        let journal = t.join(format!("_jobs/{id}.jsonl"));
        std::fs::write(&journal, left).expect("the journal is written");
        let o = identity(&input, &t, "append")
            .args(["--job-id", &id, "--resume"])
            .run();
        o.assert_ok("resume of a job that recorded nothing");
        assert_eq!(versions(&t).len(), i + 2, "one version per append");
        let text = std::fs::read_to_string(&journal).expect("the journal is read");
        assert!(
            text.starts_with("{\"Start\"") && text.contains("\"Published\""),
            "a whole journal of its own: {text}"
        );
    }
    assert_eq!(ids(&py, &t, None).len(), 900);
}

#[test]
fn three_resumes_at_once_one_publishes_the_others_name_the_holder() {
    let Some((py, dir)) = setup() else { return };
    let Interrupted { input, mapper, t } = interrupted_create(&py, dir.path());
    let children: Vec<Child> = (0..3)
        .map(|_| {
            python_map(&py, &input, &t, &mapper, "create")
                .arg("--resume")
                .command()
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("flywheel starts")
        })
        .collect();
    let outs: Vec<Output> = children
        .into_iter()
        .map(|c| wait_within(c, Duration::from_secs(120)))
        .collect();
    let winners = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(winners, 1, "exactly one resume publishes");
    for o in outs.iter().filter(|o| !o.status.success()) {
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{e}");
        assert!(
            e.contains("is already running") && e.contains("pid "),
            "names the holder: {e}"
        );
    }
    assert_eq!(ids(&py, &t, None), (0..200).collect::<Vec<_>>());
    assert_eq!(versions(&t).len(), 1);
}

#[test]
fn vacuum_racing_twenty_starting_jobs_never_removes_a_published_file() {
    let Some((py, dir)) = setup() else { return };
    let (input, t) = created(&py, dir.path(), 300);
    let mut jobs: Vec<Child> = Vec::new();
    let mut vacuums = 0;
    let start = Instant::now();
    for _ in 0..20 {
        jobs.push(
            identity(&input, &t, "append")
                .command()
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("flywheel starts"),
        );
        // Vacuum between the starts, while earlier jobs run.
        let _ = flywheel()
            .args(["table", "vacuum", "--keep", "1"])
            .arg(&t)
            .output();
        vacuums += 1;
    }
    let outs: Vec<Output> = jobs
        .into_iter()
        .map(|c| wait_within(c, Duration::from_secs(300)))
        .collect();
    for o in &outs {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert!(start.elapsed() < Duration::from_secs(600));
    eprintln!("{vacuums} vacuums ran beside the jobs");
    // Every version still listed names files that exist, whole.
    for name in versions(&t) {
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(t.join("_versions").join(&name)).expect("the file is read"),
        )
        .expect("the output is JSON");
        for f in m["files"].as_array().expect("an array") {
            let p = t.join(f["path"].as_str().expect("a string"));
            let len = std::fs::metadata(&p)
                .unwrap_or_else(|e| panic!("{name}: {} is gone: {e}", p.display()))
                .len();
            assert_eq!(Some(len), f["bytes"].as_u64(), "{name}: {}", p.display());
        }
    }
    assert_eq!(ids(&py, &t, None).len(), 300 * 21, "every append landed");
}

#[test]
fn resume_after_the_input_changed_is_refused_naming_the_file() {
    let Some((py, dir)) = setup() else { return };
    let Interrupted { input, mapper, t } = interrupted_create(&py, dir.path());
    ids_parquet(&py, &input, 1000, 200); // same name and rows, other content
    let o = python_map(&py, &input, &t, &mapper, "create")
        .arg("--resume")
        .run();
    assert_exit(&o, 2, "resume", &["error:", "in.parquet", "changed"]);
    assert!(!has_version(&t), "nothing published");
}

#[test]
fn a_failed_job_publishes_no_error_rows() {
    let Some((py, dir)) = setup() else { return };
    let (input, t) = created(&py, dir.path(), 100);
    // Appended rows of another schema (an extra column): the publish fails after the job ran.
    let other = py_mapper(
        dir.path(),
        "other.py",
        "def f(row):\n    if row['id'] % 10 == 0:\n        raise ValueError('bad')\n    yield {'id': row['id'], 'extra': 'x'}\n",
        "f",
    );
    let o = python_map(&py, &input, &t, &other, "append")
        .on_row_error("skip")
        .run();
    assert_eq!(o.status.code(), Some(1), "the publish fails");
    assert_eq!(versions(&t).len(), 1, "no main version");
    assert_eq!(error_rows(&py, &t), 0, "and no error rows either");
}

#[test]
fn status_and_resume_agree_and_no_append_is_dropped() {
    let Some((py, dir)) = setup() else { return };
    let (input, t) = created(&py, dir.path(), 100);
    // A second identical append killed before it wrote its journal.
    let o = identity(&input, &t, "append")
        .env("FLYWHEEL_CRASH_AT", "job-locked")
        .run();
    assert_eq!(o.status.signal(), Some(9));
    assert!(status_of(&t).contains("finished: published version 1"));
    let o = identity(&input, &t, "append").arg("--resume").run();
    assert!(o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("finished and published version 1")
            && e.contains("stopped before it recorded anything"),
        "says what it does: {e}"
    );
    assert_eq!(ids(&py, &t, None).len(), 200, "the append is not dropped");

    // create: killed right after its commit; the resume finds the job's version.
    let c = dir.path().join("c");
    let o = identity(&input, &c, "create")
        .env("FLYWHEEL_CRASH_AT", "published")
        .run();
    assert_eq!(o.status.signal(), Some(9));
    assert!(
        status_of(&c).contains("finished: published version 1"),
        "status sees the committed version"
    );
    let o = identity(&input, &c, "create").arg("--resume").run();
    assert!(o.status.success(), "not 'already holds a table'");
    assert!(String::from_utf8_lossy(&o.stderr).contains("already published version 1"));
    assert_eq!(versions(&c).len(), 1);
}

#[test]
fn append_onto_a_damaged_version_is_refused() {
    let Some((py, dir)) = setup() else { return };
    let input = ids_input(&py, dir.path(), 300);
    for damage in ["delete", "truncate"] {
        let t = dir.path().join(damage);
        identity(&input, &t, "create").run().assert_ok(damage);
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(t.join("_versions").join(&versions(&t)[0])).expect("the file is read"),
        )
        .expect("the output is JSON");
        let victim: PathBuf = t.join(m["files"][1]["path"].as_str().expect("a string"));
        match damage {
            "delete" => std::fs::remove_file(&victim).expect("the file is removed"),
            _ => std::fs::OpenOptions::new()
                .write(true)
                .open(&victim)
                .expect("the file opens")
                .set_len(10)
                .expect("the file is truncated"),
        }
        let o = identity(&input, &t, "append").run();
        let file = m["files"][1]["path"].as_str().expect("a string");
        assert_exit(&o, 2, damage, &["is damaged", file]);
        assert_eq!(versions(&t).len(), 1, "{damage}: nothing published");
    }
}

#[test]
fn an_edited_journal_is_checked_against_the_files() {
    let Some((py, dir)) = setup() else { return };
    let Interrupted { input, mapper, t } = interrupted_create(&py, dir.path());
    let journal = t.join("_journal.jsonl");
    let text = std::fs::read_to_string(&journal).expect("the file is read");
    let edited: Vec<String> = text
        .lines()
        .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
            Ok(mut v) if v.get("Accepted").is_some() => {
                v["Accepted"]["output"]["rows_out"] = serde_json::json!(999);
                v.to_string()
            }
            _ => l.to_string(),
        })
        .collect();
    std::fs::write(&journal, edited.join("\n") + "\n").expect("the test writes its file");
    let o = python_map(&py, &input, &t, &mapper, "create")
        .arg("--resume")
        .run();
    assert!(o.status.success());
    let got = read_with_pyarrow(&py, &t, None);
    assert_eq!(
        got["num_rows"].as_u64(),
        Some(200),
        "the manifest counts true rows"
    );
    assert_eq!(ids(&py, &t, None), (0..200).collect::<Vec<_>>());
}

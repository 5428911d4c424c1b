//! Faults in the worker and its mapper process (issue 15): every one ends its chunk (and, with
//! one attempt, the job) within a deadline and with an error naming the cause; nothing hangs,
//! nothing a mapper leaves behind survives, and nothing a mapper says is taken on trust.
//!
//! Each run of the binary here has a deadline far below the waits the faults used to cause (a
//! chunk timeout of an hour, a child process sleeping a minute): a hang fails the test.

use crate::support::*;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// Shell that reads one chunk (header and rows) into `$rows` / `$chunk`; exits at end of input.
const READ_CHUNK: &str = r#"read_chunk() {
  IFS= read -r header || exit 0
  rows=$(printf '%s' "$header" | sed 's/.*"rows":\([0-9]*\).*/\1/')
  chunk=$(printf '%s' "$header" | sed 's/.*"chunk":\([0-9]*\).*/\1/')
  i=0
  while [ "$i" -lt "$rows" ]; do IFS= read -r line; i=$((i + 1)); done
}
"#;

/// A shell mapper that says ready, reads one chunk, then runs `then`.
fn after_one_chunk(dir: &Path, name: &str, then: &str) -> String {
    exec_mapper(
        dir,
        name,
        &format!("{READ_CHUNK}echo '{{\"ready\": true}}'\nread_chunk\n{then}"),
    )
}

/// A temporary directory holding the mapper `after_one_chunk(name, then)`; returns both.
fn dir_with_mapper(name: &str, then: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let m = after_one_chunk(dir.path(), name, then);
    (dir, m)
}

/// A temporary directory and the path in it where a mapper is to write a pid.
fn dir_with_pid_file(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let pid_file = dir.path().join(name);
    (dir, pid_file)
}

/// `flywheel map` of the dialogues (500 rows) into `dir/out`: two workers, chunks of 100 rows
/// and one attempt, unless `extra` says otherwise.
fn map_once(dir: &Path, out: &str, mapper: &str, extra: &[&str]) -> Map {
    let mut m = Map::dialogues(dir.join(out)).mapper(mapper);
    for (flag, value) in [
        ("--workers", "2"),
        ("--chunk-rows", "100"),
        ("--max-attempts", "1"),
    ] {
        if !extra.contains(&flag) {
            m = m.args([flag, value]);
        }
    }
    m.args(extra)
}

/// `map_once` run to its end within `limit_s` seconds (a hang fails the test).
fn ran_once(dir: &Path, out: &str, mapper: &str, extra: &[&str], limit_s: u64) -> Ran {
    map_once(dir, out, mapper, extra)
        .within(Duration::from_secs(limit_s))
        .run()
}

/// The job's last `error:` line.
fn last_error(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .rfind(|l| l.starts_with("error:"))
        .unwrap_or_default()
        .to_string()
}

/// Whether process `pid` is gone (or a zombie about to be reaped), waiting up to 5 s for it.
fn gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
        let dead = state.is_none_or(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        });
        if dead {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_pid(path: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "the mapper wrote {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_mapper_that_closes_stdout_but_keeps_running_fails_its_chunk_at_once() {
    let (dir, m) = dir_with_mapper("closer.sh", "exec 1>&-\nsleep 60\n");
    let o = ran_once(dir.path(), "t", &m, &["--workers", "1"], 30);
    o.assert_failed(
        "map",
        &["closed its stdout but kept running, and was killed"],
    );
}

#[test]
fn a_line_that_is_not_utf8_fails_its_chunk_at_once() {
    let (dir, m) = dir_with_mapper("latin1.sh", "printf '\\377\\376 caf\\351\\n'\nsleep 60\n");
    let o = ran_once(dir.path(), "t", &m, &["--workers", "1"], 30);
    o.assert_failed("map", &["wrote a line that is not JSON"]);
}

#[test]
fn a_program_that_does_not_speak_the_protocol_is_refused_by_the_handshake_deadline() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // `cat` waits for input before it writes anything: without a handshake deadline the job
    // waited for the chunk timeout (an hour).
    let o = map_once(dir.path(), "t", "exec:cat", &[])
        .env("FLYWHEEL_HANDSHAKE_TIMEOUT", "2")
        .within(Duration::from_secs(40))
        .run();
    o.assert_failed(
        "map",
        &[
            "mapper cat wrote nothing within 2s of starting",
            "does not speak the flywheel mapper protocol",
            "docs/protocol.md",
        ],
    );
    assert!(last_error(&o).contains("does not speak the flywheel mapper protocol"));

    // A program that says ready and then echoes its input fails on the first echoed line.
    let m = exec_mapper(
        dir.path(),
        "echo.sh",
        "echo '{\"ready\": true}'\nexec cat\n",
    );
    let o = ran_once(dir.path(), "t2", &m, &[], 30);
    o.assert_failed(
        "map",
        &["not part of the flywheel mapper protocol (it echoes its input back?)"],
    );
}

/// Runs the mapper `m` with one worker and `--chunk-timeout SECS` into `dir/t` and asserts the
/// job failed saying `says`; the caller then checks that what the mapper started is gone.
fn fails_and_kills_what_it_started(dir: &Path, m: &str, secs: &str, says: &[&str]) {
    let extra = ["--workers", "1", "--chunk-timeout", secs];
    ran_once(dir, "t", m, &extra, 30).assert_failed("map", says);
}

#[test]
fn a_mapper_that_ignores_sigterm_is_killed_with_everything_it_started() {
    let (dir, pid_file) = dir_with_pid_file("sleeper.pid");
    // Ignores SIGTERM (so does its child) and hangs past the chunk timeout.
    let m = exec_mapper(
        dir.path(),
        "stubborn.sh",
        &format!(
            "{READ_CHUNK}trap '' TERM\necho '{{\"ready\": true}}'\nread_chunk\nsleep 60 &\necho $! > {}\nwait\n",
            pid_file.display()
        ),
    );
    fails_and_kills_what_it_started(dir.path(), &m, "2", &["ran past the chunk timeout of 2s"]);
    assert!(
        gone(read_pid(&pid_file)),
        "the process the mapper started was killed with it"
    );
}

#[test]
fn a_mapper_that_dies_leaving_a_child_holding_its_stdout_is_seen_dead_at_once() {
    let (dir, pid_file) = dir_with_pid_file("orphan.pid");
    let m = after_one_chunk(
        dir.path(),
        "forker.sh",
        &format!(
            "sleep 60 &\necho $! > {}\necho 'fatal: out of cheese' >&2\nexit 3\n",
            pid_file.display()
        ),
    );
    fails_and_kills_what_it_started(
        dir.path(),
        &m,
        "120",
        &["exited with status 3", "out of cheese"],
    );
    assert!(gone(read_pid(&pid_file)), "the orphan was killed");
}

#[test]
fn a_panic_in_a_worker_thread_fails_the_job_with_the_panic_message() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (point, says) in [
        ("map-chunk", "panicked on chunk"),
        ("executor", "executor thread died"),
        ("link", "link thread panicked"),
    ] {
        let out = format!("t-{point}");
        let o = map_once(
            dir.path(),
            &out,
            "builtin:identity",
            &["--max-attempts", "2"],
        )
        .env("FLYWHEEL_PANIC_AT", point)
        .within(Duration::from_secs(60))
        .run();
        o.assert_failed(
            point,
            &[
                &format!("injected panic at {point} (FLYWHEEL_PANIC_AT)"),
                says,
            ],
        );
        assert!(
            last_error(&o).contains(&format!("injected panic at {point}")),
            "the last error names the panic ({point})"
        );
    }
}

#[test]
fn the_final_error_of_a_drained_job_names_the_real_cause() {
    // Every chunk fails with the same cause. Workers are drained after 5 failures in a row,
    // and the chunks a drained worker held fail with the drain: those were the last errors
    // of the chunk that ran out of attempts ("failed 5 chunks in a row", and nothing else).
    let (dir, m) = dir_with_mapper(
        "full.sh",
        "echo \"OSError: [Errno 28] No space left on device (chunk $chunk)\" >&2\nexit 1\n",
    );
    let o = ran_once(
        dir.path(),
        "t",
        &m,
        &[
            "--workers",
            "3",
            "--chunk-rows",
            "20",
            "--max-attempts",
            "3",
        ],
        120,
    );
    o.assert_failed("map", &[]);
    let last = last_error(&o);
    assert!(
        last.contains("No space left on device") || {
            // The cause may sit on the lines after `error:` (the mapper's stderr tail).
            let stderr = String::from_utf8_lossy(&o.stderr);
            let tail = stderr.rsplit_once("error:").map(|(_, t)| t).unwrap_or("");
            tail.contains("No space left on device")
        },
        "the final error names the cause: {last}"
    );
    assert!(last.contains("chunk "), "it names the chunk: {last}");
    assert!(last.contains("worker "), "it names the worker: {last}");
    assert!(!last.contains("Some("), "no Debug formatting: {last}");
}

#[test]
fn what_a_mapper_says_at_the_end_of_a_chunk_is_checked() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let answer_every_row = "  i=0\n  while [ \"$i\" -lt \"$rows\" ]; do echo '{\"row\": {\"n\": 1}}'; i=$((i + 1)); done\n";
    let cases: [(&str, String, &[&str], &[&str]); 4] = [
        (
            "failed",
            format!("{answer_every_row}  echo '{{\"end\": {{\"rows_out\": '$rows', \"failed\": true, \"message\": \"the model exploded\"}}}}'\n"),
            &[],
            &["failed chunk 0: the model exploded"],
        ),
        (
            "rows-out",
            format!("{answer_every_row}  echo '{{\"end\": {{\"rows_out\": 7}}}}'\n"),
            &[],
            &["answered chunk 0 with an end line saying rows_out 7, but it sent 100 rows"],
        ),
        (
            "error-row",
            "  echo '{\"error\": {\"row\": 100000, \"rows\": 1, \"message\": \"ValueError: no\"}}'\n  echo '{\"end\": {\"rows_out\": 0}}'\n".to_string(),
            &["--on-row-error", "skip"],
            &["answered chunk 0 with an error line for \"row\" 100000 and \"rows\" 1, outside its 100 input rows"],
        ),
        (
            "other-chunk",
            "  echo '{\"end\": {\"chunk\": 999, \"rows_out\": 0}}'\n".to_string(),
            &[],
            &["ended chunk 999 while chunk 0 was running"],
        ),
    ];
    for (name, answer, extra, says) in cases {
        let m = exec_mapper(
            dir.path(),
            &format!("{name}.sh"),
            &format!(
                "{READ_CHUNK}echo '{{\"ready\": true}}'\nwhile true; do\n  read_chunk\n{answer}done\n"
            ),
        );
        let mut args = vec!["--workers", "1"];
        args.extend_from_slice(extra);
        let o = ran_once(dir.path(), name, &m, &args, 30);
        o.assert_failed(name, says);
        assert!(!last_error(&o).contains("Some("), "no Debug formatting");
    }
}

#[test]
fn an_arrow_line_pointing_at_shared_memory_a_mapper_was_not_given_fails_its_chunk() {
    // Only the Python runner gets shared memory; an exec mapper that claims to have written
    // its rows there is refused, not read.
    let (dir, m) = dir_with_mapper(
        "shm.sh",
        "echo '{\"arrow\": {\"bytes\": 64, \"rows\": 1, \"shm\": true}}'\nsleep 60\n",
    );
    let o = ran_once(dir.path(), "t", &m, &["--workers", "1"], 30);
    o.assert_failed(
        "map",
        &["its arrow line points at shared memory it was not given"],
    );
}

#[test]
fn a_mapper_does_not_outlive_a_killed_flywheel() {
    let (dir, pid_file) = dir_with_pid_file("mapper.pid");
    // Hangs in its chunk (the shell becomes `sleep`, so the mapper itself is the sleeper).
    let m = after_one_chunk(
        dir.path(),
        "hang.sh",
        &format!("echo $$ > {}\nexec sleep 60\n", pid_file.display()),
    );
    let mut child = map_once(dir.path(), "t", &m, &["--workers", "1"])
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("flywheel starts");
    let pid = std::panic::catch_unwind(|| read_pid(&pid_file));
    let Ok(pid) = pid else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the mapper never started its chunk");
    };
    // A mapper in its own process group no longer shares a terminal's Ctrl-C with flywheel;
    // however flywheel ends, its mapper must go too.
    child.kill().expect("kill flywheel");
    child.wait().expect("reap flywheel");
    assert!(gone(pid), "the mapper died with flywheel");
}

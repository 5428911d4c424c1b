//! Command-line faults (issue 15): `flywheel query` is read-only, a closed stdout ends a command
//! quietly, and an output directory must be nameable by a table address.

use crate::support::{flywheel, run, stderr_text, Map};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A JSON-lines file of `n` rows: `id`, `word` and a 60-character `text`, so each printed row is
/// long.
fn jsonl(path: &Path, start: u64, n: u64) {
    let mut f =
        std::io::BufWriter::new(std::fs::File::create(path).expect("input file is created"));
    for i in start..start + n {
        writeln!(
            f,
            "{{\"id\": {i}, \"word\": \"w{}\", \"text\": \"{}\"}}",
            i % 13,
            "abcdefghij".repeat(6)
        )
        .expect("input row is written");
    }
    f.flush().expect("input file is written");
}

/// A table with three versions of 4,000 rows each (create, then two appends), 500 rows a file.
fn three_versions(dir: &Path) -> PathBuf {
    let t = dir.join("t");
    for (v, mode) in ["create", "append", "append"].iter().enumerate() {
        let input = dir.join(format!("in{v}.jsonl"));
        jsonl(&input, v as u64 * 4000, 4000);
        let o = Map::new(&input, &t)
            .identity()
            .chunk_rows(500)
            .mode(mode)
            .run();
        assert!(o.status.success(), "map {mode} failed");
    }
    t
}

// ---------------------------------------------------------------------------------------------
// 9. `flywheel query` reads only its tables and writes nothing.

/// Runs `flywheel query SQL --table T` and asserts the refusal: exit 2, one `error:` line naming
/// what was refused, and nothing on stdout.
fn assert_refused(table: &Path, sql: &str, what: &str) -> String {
    let o = run(flywheel().args(["query", sql, "--table"]).arg(table));
    let err = stderr_text(&o);
    assert_eq!(o.status.code(), Some(2), "{sql}: {err}");
    assert!(
        err.starts_with("error: query: ") && err.contains(what) && err.contains("read-only"),
        "{sql}: {err}"
    );
    assert!(o.stdout.is_empty(), "{sql}: printed a result");
    err
}

#[test]
fn query_refuses_every_statement_that_writes_or_reads_other_files() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let t = three_versions(dir.path());
    let versions = std::fs::read_dir(t.join("_versions"))
        .expect("_versions is listed")
        .count();

    // COPY: neither a new file nor an existing one (a table's own manifest) is written.
    let target = dir.path().join("copied.csv");
    assert_refused(
        &t,
        &format!("COPY (SELECT * FROM t) TO '{}'", target.display()),
        "COPY",
    );
    assert!(!target.exists(), "COPY created {}", target.display());
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "keep me\n").expect("victim file is written");
    assert_refused(
        &t,
        &format!(
            "COPY (SELECT 1 AS x) TO '{}' STORED AS CSV",
            victim.display()
        ),
        "COPY",
    );
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim file is read"),
        "keep me\n"
    );
    let manifest = t.join("_versions/00000000000000000001.json");
    let before = std::fs::read(&manifest).expect("manifest is read");
    assert_refused(
        &t,
        &format!(
            "COPY (SELECT 1 AS x) TO '{}' STORED AS JSON",
            manifest.display()
        ),
        "COPY",
    );
    assert_eq!(std::fs::read(&manifest).expect("manifest is read"), before);
    assert_refused(
        &t,
        &format!("EXPLAIN COPY t TO '{}'", target.display()),
        "COPY",
    );
    assert!(!target.exists());

    // CREATE EXTERNAL TABLE over /etc/passwd: refused before the file is opened, so nothing of
    // its content or shape (fields, column names, row counts) reaches the message.
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let err = assert_refused(
        &t,
        "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'",
        "CREATE EXTERNAL TABLE",
    );
    let err2 = assert_refused(
        &t,
        "CREATE EXTERNAL TABLE p (a VARCHAR) STORED AS CSV LOCATION '/etc/passwd' OPTIONS ('format.delimiter' ':')",
        "CREATE EXTERNAL TABLE",
    );
    for e in [&err, &err2] {
        assert!(!e.contains("root") && !e.contains("column_"), "{e}");
        for line in passwd.lines().take(5) {
            if let Some(user) = line.split(':').next().filter(|u| u.len() > 2) {
                assert!(!e.contains(&format!("{user}:")), "{e}");
            }
        }
    }
    // The other ways to write or change the session.
    for (sql, what) in [
        ("CREATE TABLE x AS SELECT * FROM t", "CREATE"),
        ("CREATE VIEW v AS SELECT * FROM t", "CREATE"),
        ("INSERT INTO t VALUES (1, 'w', 'x')", "INSERT"),
        ("DROP TABLE t", "DROP"),
        ("SET datafusion.execution.batch_size = 1", "SET"),
        ("SELECT * INTO y FROM t", "SELECT … INTO"),
        ("SELECT 1; DROP TABLE t", "DROP"),
    ] {
        assert_refused(&t, sql, what);
    }
    // File table functions, wherever they appear, and a file named as a table.
    for (sql, what) in [
        (
            "SELECT * FROM read_csv('/etc/passwd')",
            "table function read_csv",
        ),
        (
            "SELECT * FROM parquet_metadata('/etc/passwd')",
            "table function parquet_metadata",
        ),
        (
            "WITH x AS (SELECT * FROM read_parquet('/etc/passwd')) SELECT * FROM x",
            "table function read_parquet",
        ),
    ] {
        let e = assert_refused(&t, sql, what);
        assert!(!e.contains("root"), "{e}");
    }
    let o = run(flywheel()
        .args(["query", "SELECT * FROM '/etc/passwd'", "--table"])
        .arg(&t));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        o.stdout.is_empty() && !stderr_text(&o).contains("root"),
        "{}",
        stderr_text(&o)
    );

    assert_eq!(
        std::fs::read_dir(t.join("_versions"))
            .expect("_versions is listed")
            .count(),
        versions,
        "no version was written"
    );
}

#[test]
fn query_still_runs_select_with_and_explain() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let t = three_versions(dir.path());
    let csv = |sql: &str| -> String {
        let o = run(flywheel()
            .args(["query", sql, "--format", "csv", "--table"])
            .arg(&t));
        assert!(o.status.success(), "{sql}: {}", stderr_text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(csv("SELECT count(*) AS n FROM t"), "n\n12000\n");
    assert_eq!(
        csv("WITH w AS (SELECT word, count(*) AS n FROM t GROUP BY word) SELECT count(*) AS words FROM w"),
        "words\n13\n"
    );
    assert_eq!(
        csv("SELECT sum(value) AS s FROM generate_series(1, 4)"),
        "s\n10\n"
    );
    let plan = csv("EXPLAIN SELECT id FROM t WHERE id > 5");
    assert!(
        plan.contains("plan_type") && plan.contains("logical_plan"),
        "{plan}"
    );
}

// ---------------------------------------------------------------------------------------------
// 14. A closed stdout ends a command quietly.

/// Asserts that a command ended without a panic: no exit 101, no "panicked" on stderr.
fn assert_quiet(what: &str, o: &Output) {
    let err = stderr_text(o);
    assert_ne!(o.status.code(), Some(101), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert!(!err.contains("Broken pipe"), "{what}: {err}");
}

/// Runs the command with stdout a pipe whose reading end is already closed: its first write
/// meets EPIPE.
fn with_closed_stdout(mut cmd: Command) -> Output {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills `fds` with two new descriptors, each owned exactly once below.
    let made = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(made, 0, "pipe2: {}", std::io::Error::last_os_error());
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(reader);
    cmd.stdout(writer).stderr(Stdio::piped());
    cmd.output().expect("flywheel starts")
}

/// Runs the command with stdout piped, reads its first line and closes the pipe, as `| head -1`
/// does; returns the line and the output.
fn head_1(mut cmd: Command) -> (String, Output) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("flywheel starts");
    let mut line = String::new();
    {
        let mut out = BufReader::new(child.stdout.take().expect("stdout is piped"));
        out.read_line(&mut line).expect("first line is read");
    }
    (line, child.wait_with_output().expect("flywheel ends"))
}

#[test]
fn commands_end_quietly_when_stdout_is_closed() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let t = three_versions(dir.path());
    let table = t.display().to_string();
    let commands: Vec<(&str, Vec<&str>)> = vec![
        ("table info", vec!["table", "info", &table]),
        ("table log", vec!["table", "log", &table]),
        ("table head", vec!["table", "head", "-n", "12000", &table]),
        ("table files", vec!["table", "files", &table]),
        ("status", vec!["status", &table]),
        ("query", vec!["query", "SELECT * FROM t", "--table", &table]),
    ];
    for (what, args) in &commands {
        // Each command prints on an open stdout (so the closed one is really written to).
        let o = run(flywheel().args(args));
        assert!(o.status.success() && !o.stdout.is_empty(), "{what}");
        let mut cmd = flywheel();
        cmd.args(args);
        assert_quiet(what, &with_closed_stdout(cmd));
    }
    // `| head -1` on the commands whose output is far beyond a pipe's buffer.
    for (what, args) in commands
        .iter()
        .filter(|(w, _)| ["table head", "query"].contains(w))
    {
        let mut cmd = flywheel();
        cmd.args(args);
        let (line, o) = head_1(cmd);
        assert!(!line.is_empty(), "{what}: no first line");
        assert_quiet(what, &o);
    }
}

// ---------------------------------------------------------------------------------------------
// 16. An output whose name a table address reads as a version is refused.

#[test]
fn an_output_named_like_a_version_is_refused_and_nothing_is_created() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let input = dir.path().join("in.jsonl");
    jsonl(&input, 0, 10);
    let out = dir.path().join("out");
    for (name, why) in [
        ("x@2", "version 2 of"),
        ("x@latest", "latest version of"),
        ("x@abc", "is not a version"),
    ] {
        let target = out.join(name);
        let o = Map::new(&input, &target).identity().run();
        let err = o.stderr_text();
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(
            err.starts_with("error: ")
                && err.contains(&target.display().to_string())
                && err.contains(why),
            "{err}"
        );
        assert!(!out.exists(), "{} was created", out.display());
    }

    // A job file, for run and submit alike.
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "input = {:?}\noutput = \"out/x@2\"\nmapper = \"builtin:identity\"\n[slurm]\nnodes = 1\n",
            input.display().to_string()
        ),
    )
    .expect("job file is written");
    let mut commands = vec![vec!["submit", "--dry-run"]];
    if cfg!(feature = "mpi") {
        commands.push(vec!["run"]);
    }
    for args in commands {
        let o = run(flywheel().args(&args).arg(&job));
        let err = stderr_text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains("out/x@2") && err.contains("version 2 of"),
            "{args:?}: {err}"
        );
        assert!(o.stdout.is_empty(), "{args:?} printed a script");
        assert!(!out.exists(), "{args:?} created {}", out.display());
    }

    // The same map into a nameable output works, and rerun --output is checked too.
    let good = out.join("x");
    let o = Map::new(&input, &good).identity().run();
    assert!(o.status.success() && o.published());
    let o = run(flywheel()
        .arg("rerun")
        .arg(&good)
        .arg("--output")
        .arg(out.join("again@1")));
    assert_eq!(o.status.code(), Some(2), "{}", stderr_text(&o));
    assert!(
        stderr_text(&o).contains("version 1 of"),
        "{}",
        stderr_text(&o)
    );
    assert!(!out.join("again@1").exists());
}

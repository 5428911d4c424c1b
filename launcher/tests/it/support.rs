//! Helpers: running the binary (`Map` builds a `flywheel map`), the Python that has pyarrow,
//! reading tables independently, and skips that say why and are counted.

use serde_json::Value;
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("launcher/ has a parent")
        .to_path_buf()
}

/// A command running the flywheel binary under test.
pub fn flywheel() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_flywheel"));
    c.current_dir(root());
    c
}

/// Runs a command and returns its output, printing stderr for the test log.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("command starts");
    eprintln!(
        "$ {cmd:?}\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Whether a requirement missing here must fail the test (CI) rather than skip it.
pub fn must_have_everything() -> bool {
    std::env::var("FLYWHEEL_TEST_REQUIRE_ALL")
        .map(|v| v == "1")
        .unwrap_or(false)
}

/// Skips (prints why, records the skip and returns false) or, where everything is required,
/// panics.
pub fn available(ok: bool, what: &str) -> bool {
    if !ok {
        assert!(
            !must_have_everything(),
            "{what} is required here (FLYWHEEL_TEST_REQUIRE_ALL=1) but missing"
        );
        eprintln!("SKIPPED: {what} is not available on this machine");
        record_skip(what);
    }
    ok
}

/// The file that counts skips: scripts/test.sh names one in $FLYWHEEL_TEST_SKIPS and prints
/// its lines (`test name <TAB> what is missing`) in its summary.
fn record_skip(what: &str) {
    let Some(file) = std::env::var_os("FLYWHEEL_TEST_SKIPS") else {
        return;
    };
    // libtest names the thread of a test after it, under cargo test and nextest alike.
    let current = std::thread::current();
    let test = current.name().unwrap_or("an unnamed test");
    let line = format!("{test}\t{what}\n");
    // One write to a file opened for appending: lines of tests running at once never interleave.
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        panic!(
            "cannot record the skip in {}: {e}",
            Path::new(&file).display()
        );
    }
}

/// The Python with pyarrow, or `None` after a counted skip (a failure where everything is
/// required).
pub fn pyarrow_or_skip() -> Option<PathBuf> {
    let py = pyarrow_python();
    available(
        py.is_some(),
        "a Python with pyarrow (.venv or FLYWHEEL_TEST_PYTHON)",
    );
    py
}

/// What most tests start with: the Python with pyarrow and a temporary directory; `None` after
/// a counted skip.
pub fn setup() -> Option<(PathBuf, tempfile::TempDir)> {
    let py = pyarrow_or_skip()?;
    Some((py, tempfile::tempdir().expect("a temporary directory")))
}

/// A Python interpreter that can import pyarrow: $FLYWHEEL_TEST_PYTHON, else the repo's .venv.
pub fn pyarrow_python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("FLYWHEEL_TEST_PYTHON").map(PathBuf::from),
        Some(root().join(".venv/bin/python")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", "import pyarrow"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
}

/// Runs one of this folder's Python scripts with `args` and returns the JSON it prints; fails
/// the test when it fails.
pub fn py_json<S: AsRef<std::ffi::OsStr>>(py: &Path, script: &str, args: &[S]) -> Value {
    py_json_env(py, script, args, &[])
}

/// [`py_json`] with extra environment variables.
pub fn py_json_env<S: AsRef<std::ffi::OsStr>>(
    py: &Path,
    script: &str,
    args: &[S],
    env: &[(&str, &OsStr)],
) -> Value {
    let out = Command::new(py)
        .arg(root().join("launcher/tests/it").join(script))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{script} prints JSON: {e}"))
}

/// Reads a table with pyarrow only (manifest as plain JSON, files with pyarrow.parquet).
pub fn read_with_pyarrow(py: &Path, table: &Path, version: Option<u64>) -> Value {
    let mut args = vec![table.as_os_str().to_owned()];
    if let Some(v) = version {
        args.push(v.to_string().into());
    }
    py_json(py, "read_table.py", &args)
}

/// The expected output of a mapper: the same function called in a plain Python loop.
pub fn expected_rows(py: &Path, input: &Path, mapper_file: &Path, name: &str) -> Vec<Value> {
    let rows = py_json(
        py,
        "expected_rows.py",
        &[input.as_os_str(), mapper_file.as_os_str(), name.as_ref()],
    );
    serde_json::from_value(rows).expect("expected_rows.py prints a list of rows")
}

/// The example dataset and mapper of the README demo.
pub fn dialogues() -> PathBuf {
    root().join("examples/data/dialogues.parquet")
}

pub fn expand_dialogue() -> PathBuf {
    root().join("examples/expand_dialogue.py")
}

/// Checks a table against expected rows: same rows, same order, manifest count right.
pub fn assert_table_rows(py: &Path, table: &Path, expected: &[Value]) {
    let got = read_with_pyarrow(py, table, None);
    let rows = got["rows"].as_array().expect("rows");
    assert_eq!(
        got["num_rows"].as_u64(),
        Some(expected.len() as u64),
        "manifest row count"
    );
    assert_eq!(rows.len(), expected.len(), "rows read back");
    for (i, (g, e)) in rows.iter().zip(expected).enumerate() {
        assert_eq!(g, e, "row {i} differs");
    }
}

/// Whether the table directory has any published version.
pub fn has_version(table: &Path) -> bool {
    std::fs::read_dir(table.join("_versions"))
        .map(|d| {
            d.flatten().any(|e| {
                e.file_name().to_string_lossy().ends_with(".json")
                    && !e.file_name().to_string_lossy().starts_with('.')
            })
        })
        .unwrap_or(false)
}

/// Writes a Parquet file with one int64 column `id` = start..start+n, with pyarrow.
pub fn ids_parquet(py: &Path, path: &Path, start: u64, n: u64) {
    let code = format!(
        "import pyarrow as pa, pyarrow.parquet as pq; pq.write_table(pa.table({{'id': pa.array(range({start}, {}), pa.int64())}}), {:?}, row_group_size=5000)",
        start + n,
        path.display().to_string()
    );
    let o = run(Command::new(py).args(["-c", &code]));
    assert!(o.status.success(), "writing {} failed", path.display());
}

/// Writes `dir/in.parquet`, an input of `n` rows with an int64 column `id` = 0..n, and returns
/// its path.
pub fn ids_input(py: &Path, dir: &Path, n: u64) -> PathBuf {
    let p = dir.join("in.parquet");
    ids_parquet(py, &p, 0, n);
    p
}

/// The `id` column of a table version, read with pyarrow only.
pub fn ids(py: &Path, table: &Path, version: Option<u64>) -> Vec<u64> {
    read_with_pyarrow(py, table, version)["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["id"].as_u64().expect("an integer id"))
        .collect()
}

/// How many chunks the journal of the job started last on `out` has accepted so far.
pub fn accepted_chunks(out: &Path) -> usize {
    std::fs::read_to_string(out.join("_journal.jsonl"))
        .map(|t| t.lines().filter(|l| l.starts_with("{\"Accepted\"")).count())
        .unwrap_or(0)
}

/// Starts `map`, waits until its journal holds `n` accepted chunks, SIGKILLs it.
pub fn kill_after_accepted(map: Map, out: &Path, n: usize) {
    let mut child = map
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("flywheel starts");
    let start = Instant::now();
    while accepted_chunks(out) < n {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no progress to kill"
        );
        assert!(
            child.try_wait().expect("the child is waited for").is_none(),
            "the job ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().expect("the child is killed");
    let _ = child.wait();
}

/// Waits for `child` (its stdout and stderr piped or not) with a deadline: past `limit` it is
/// killed and the test fails. Both pipes are read on threads, with a bounded wait of their own
/// (a process the child left behind may hold them open), so a chatty child never blocks.
pub fn wait_within(mut child: Child, limit: Duration) -> Output {
    let started = Instant::now();
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            let _ = tx.send(buf);
        });
        rx
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for the child") {
            break Some(s);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let collect = |rx: std::sync::mpsc::Receiver<Vec<u8>>| {
        rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default()
    };
    let (stdout, stderr) = (collect(out), collect(err));
    eprintln!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    let Some(status) = status else {
        panic!("not finished within {limit:?} (killed): a hang");
    };
    eprintln!("finished in {:?}", started.elapsed());
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("the test writes its file");
    p
}

/// Writes an executable POSIX shell mapper (`body` after the `#!/bin/sh` line) and returns its
/// `--mapper` spec.
pub fn exec_mapper(dir: &Path, name: &str, body: &str) -> String {
    let path = write_file(dir, name, &format!("#!/bin/sh\n{body}"));
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("make the mapper executable");
    format!("exec:{}", path.display())
}

/// Asserts a command exited with `code` and its stderr says every one of `says`; `what` names
/// the case.
pub fn assert_exit(o: &Output, code: i32, what: &str, says: &[&str]) {
    let err = stderr_text(o);
    assert_eq!(o.status.code(), Some(code), "{what}: exit status: {err}");
    for s in says {
        assert!(err.contains(s), "{what}: the error says {s:?}: {err}");
    }
}

/// Asserts a command succeeded and its stdout says every one of `says`; returns the stdout.
pub fn assert_prints(o: &Output, what: &str, says: &[&str]) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{what}: {}", stderr_text(o));
    for s in says {
        assert!(out.contains(s), "{what}: expected {s:?} in: {out}");
    }
    out
}

/// A command's stderr as text.
pub fn stderr_text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The rows of a table's latest version (or `version`), read with pyarrow only.
pub fn rows(py: &Path, table: &Path, version: Option<u64>) -> Vec<Value> {
    read_with_pyarrow(py, table, version)["rows"]
        .as_array()
        .expect("rows")
        .clone()
}

/// What `flywheel status TABLE` prints.
pub fn status_of(table: &Path) -> String {
    String::from_utf8_lossy(&run(flywheel().arg("status").arg(table)).stdout).into_owned()
}

/// `flywheel table info --json` of a table address.
pub fn info(table: impl AsRef<OsStr>) -> Value {
    let o = run(flywheel().args(["table", "info", "--json"]).arg(table));
    assert!(o.status.success(), "table info: {}", stderr_text(&o));
    serde_json::from_slice(&o.stdout).expect("table info --json prints JSON")
}

/// `flywheel map --input INPUT --output OUTPUT`, with options added by name (or as `arg`s) in
/// the order given: only what a test asks for is on the command line, so flywheel's defaults
/// hold for the rest. `run` runs it; `command` gives the command to spawn.
pub struct Map {
    input: OsString,
    output: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    limit: Option<Duration>,
}

impl Map {
    pub fn new(input: impl AsRef<OsStr>, output: impl AsRef<Path>) -> Self {
        Map {
            input: input.as_ref().to_owned(),
            output: output.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            limit: None,
        }
    }

    /// The README demo's input, the 500 dialogues.
    pub fn dialogues(output: impl AsRef<Path>) -> Self {
        Map::new(dialogues(), output)
    }

    /// `--mapper SPEC`.
    pub fn mapper(self, spec: impl AsRef<OsStr>) -> Self {
        self.arg("--mapper").arg(spec)
    }

    /// `--mapper builtin:identity`.
    pub fn identity(self) -> Self {
        self.mapper("builtin:identity")
    }

    pub fn workers(self, n: u32) -> Self {
        self.arg("--workers").arg(n.to_string())
    }

    pub fn chunk_rows(self, n: u64) -> Self {
        self.arg("--chunk-rows").arg(n.to_string())
    }

    pub fn max_attempts(self, n: u32) -> Self {
        self.arg("--max-attempts").arg(n.to_string())
    }

    /// `--mode create|append|overwrite`.
    pub fn mode(self, mode: &str) -> Self {
        self.arg("--mode").arg(mode)
    }

    pub fn schema(self, schema: &str) -> Self {
        self.arg("--schema").arg(schema)
    }

    /// `--python PY`: the interpreter of a Python mapper.
    pub fn python(self, py: impl AsRef<OsStr>) -> Self {
        self.arg("--python").arg(py)
    }

    /// `--on-row-error fail|skip`.
    pub fn on_row_error(self, policy: &str) -> Self {
        self.arg("--on-row-error").arg(policy)
    }

    /// `--mapper-arg KEY=VALUE`.
    pub fn mapper_arg(self, arg: impl AsRef<OsStr>) -> Self {
        self.arg("--mapper-arg").arg(arg)
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<S: AsRef<OsStr>>(self, args: impl IntoIterator<Item = S>) -> Self {
        args.into_iter().fold(self, |m, a| m.arg(a))
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// A deadline: past `limit` the run is killed and the test fails (a hang, not a stuck test).
    pub fn within(mut self, limit: Duration) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The command, to spawn or to change further.
    pub fn command(&self) -> Command {
        let mut c = flywheel();
        c.arg("map")
            .arg("--input")
            .arg(&self.input)
            .arg("--output")
            .arg(&self.output)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Runs it to the end (within the deadline, if one is set).
    pub fn run(&self) -> Ran {
        let mut cmd = self.command();
        let output = match self.limit {
            None => run(&mut cmd),
            Some(limit) => {
                cmd.stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                eprintln!("$ {cmd:?}");
                wait_within(cmd.spawn().expect("flywheel starts"), limit)
            }
        };
        Ran {
            output,
            table: self.output.clone(),
        }
    }
}

/// A finished `flywheel map`: its output (status, stdout, stderr) and the table it wrote.
pub struct Ran {
    output: Output,
    table: PathBuf,
}

impl std::ops::Deref for Ran {
    type Target = Output;
    fn deref(&self) -> &Output {
        &self.output
    }
}

impl Ran {
    /// The exit status's code (`None` when a signal ended it).
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        stderr_text(&self.output)
    }

    /// Fails the test unless the job succeeded; `what` names the case.
    pub fn assert_ok(&self, what: &str) -> &Self {
        assert!(
            self.output.status.success(),
            "{what}: flywheel map failed: {}",
            self.stderr_text()
        );
        self
    }

    /// Asserts the job failed (exit 1), published nothing, and its stderr says every one of
    /// `says`; `what` names the case.
    pub fn assert_failed(&self, what: &str, says: &[&str]) {
        assert_exit(self, 1, what, says);
        assert!(!self.published(), "{what}: a failed job publishes nothing");
    }

    /// The output table's rows, read with pyarrow only.
    pub fn rows(&self, py: &Path) -> Vec<Value> {
        rows(py, &self.table, None)
    }

    /// The output table's `id` column, read with pyarrow only.
    pub fn ids(&self, py: &Path) -> Vec<u64> {
        ids(py, &self.table, None)
    }

    /// Whether the job published a version of its table.
    pub fn published(&self) -> bool {
        has_version(&self.table)
    }
}

/// Writes a Python mapper file `dir/file` holding `code` and returns the `--mapper` spec of its
/// `function`.
pub fn py_mapper(dir: &Path, file: &str, code: &str, function: &str) -> String {
    format!("{}:{function}", write_file(dir, file, code).display())
}

/// The two mapper paths of a Python mapper, by name: JSON lines (`python3`, which lacks
/// pyarrow) and Arrow IPC (`py`, which has it), each with its `--python`.
pub fn both_paths(py: &Path) -> [(&'static str, String); 2] {
    [
        ("json", "python3".to_string()),
        ("arrow", py.display().to_string()),
    ]
}

/// Runs the map `map(path name)` gives with each mapper path's `--python` (see `both_paths`);
/// each must succeed. Returns each path's name and the rows of its table, read with pyarrow.
pub fn rows_on_both_paths(py: &Path, map: impl Fn(&str) -> Map) -> Vec<(&'static str, Vec<Value>)> {
    both_paths(py)
        .into_iter()
        .map(|(name, python)| {
            let rows = map(name).python(python).run().assert_ok(name).rows(py);
            (name, rows)
        })
        .collect()
}

/// Whether `py` can import `module`.
pub fn python_has(py: &Path, module: &str) -> bool {
    Command::new(py)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

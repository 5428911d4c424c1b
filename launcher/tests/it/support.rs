//! Helpers: running the binary, the Python that has pyarrow, reading tables independently.

use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
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

/// Skips (prints why and returns false) or, where everything is required, panics.
pub fn available(ok: bool, what: &str) -> bool {
    if !ok {
        assert!(
            !must_have_everything(),
            "{what} is required here (FLYWHEEL_TEST_REQUIRE_ALL=1) but missing"
        );
        eprintln!("SKIPPED: {what} is not available on this machine");
    }
    ok
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
    let out = Command::new(py)
        .arg(root().join("launcher/tests/it").join(script))
        .args(args)
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

/// `flywheel map` with the options most tests share; add more with `.args`.
pub fn map_cmd(input: &Path, output: &Path, mapper: &str) -> Command {
    let mut c = flywheel();
    c.args(["map", "--workers", "2", "--input"])
        .arg(input)
        .arg("--output")
        .arg(output)
        .args(["--mapper", mapper]);
    c
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

/// A command's stderr as text.
pub fn stderr_text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

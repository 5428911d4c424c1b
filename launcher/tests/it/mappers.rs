//! Mapper forms, prints, fate isolation and start-once, with real mapper processes.

use crate::support::*;
use std::path::Path;

/// Runs a map over the dialogues and returns (output, table rows read by pyarrow).
fn map_rows(
    py: &Path,
    dir: &Path,
    mapper: &str,
    extra: &[&str],
) -> (std::process::Output, Vec<serde_json::Value>) {
    map_rows_env(py, dir, mapper, extra, &[])
}

fn map_rows_env(
    py: &Path,
    dir: &Path,
    mapper: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Output, Vec<serde_json::Value>) {
    let name: String = mapper
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let out = dir.join(format!("out-{name}"));
    let o = run(flywheel()
        .args([
            "map",
            "--workers",
            "2",
            "--chunk-rows",
            "60",
            "--mapper",
            mapper,
        ])
        .args(extra)
        .envs(env.iter().copied())
        .arg("--input")
        .arg(dialogues())
        .arg("--output")
        .arg(&out));
    let rows = if o.status.success() {
        read_with_pyarrow(py, &out, None)["rows"]
            .as_array()
            .unwrap()
            .clone()
    } else {
        Vec::new()
    };
    (o, rows)
}

#[test]
fn every_mapper_form_produces_its_rows_in_order() {
    let Some(py) = pyarrow_python() else {
        available(false, "a Python with pyarrow");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let m = write_file(
        dir.path(),
        "forms.py",
        r#"
def plain(row):
    return {"id": row["id"]}

def generator(row):
    # 0, 1 or many rows per input row
    for k in range(row["id"] % 3):
        yield {"id": row["id"], "k": k}

class Klass:
    def __init__(self, offset="0"):
        self.offset = int(offset)
    def __call__(self, row):
        yield {"id": row["id"] + self.offset}

class Batched:
    batch_size = 7
    def __call__(self, rows):
        assert isinstance(rows, list) and 1 <= len(rows) <= 7
        for r in rows:
            yield {"id": r["id"], "n": len(rows)}
"#,
    );
    // Both protocol paths: Arrow IPC (a Python with pyarrow) and JSON lines (forced).
    for protocol in ["arrow", "json"] {
        let pydir = dir.path().join(protocol);
        std::fs::create_dir_all(&pydir).unwrap();
        check_forms(&py, &pydir, &m, protocol);
    }
}

fn check_forms(py: &Path, dir: &Path, m: &Path, protocol: &str) {
    let pyarg = py.display().to_string();
    let spec = |n: &str| format!("{}:{n}", m.display());
    let map_rows = |py: &Path, dir: &Path, mapper: &str, extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend(["--python", pyarg.as_str()]);
        map_rows_env(py, dir, mapper, &args, &[("FLYWHEEL_PROTOCOL", protocol)])
    };
    let (o, rows) = map_rows(py, dir, &spec("plain"), &[]);
    assert!(o.status.success());
    assert_eq!(
        rows.iter()
            .map(|r| r["id"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        (0..500).collect::<Vec<_>>()
    );

    let (o, rows) = map_rows(py, dir, &spec("generator"), &[]);
    assert!(o.status.success());
    let want: Vec<(u64, u64)> = (0..500u64)
        .flat_map(|i| (0..i % 3).map(move |k| (i, k)))
        .collect();
    let got: Vec<(u64, u64)> = rows
        .iter()
        .map(|r| (r["id"].as_u64().unwrap(), r["k"].as_u64().unwrap()))
        .collect();
    assert_eq!(got, want, "0, 1 and 2 rows per input row, in order");

    let (o, rows) = map_rows(py, dir, &spec("Klass"), &["--mapper-arg", "offset=1000"]);
    assert!(o.status.success());
    assert_eq!(rows[0]["id"], 1000);
    assert_eq!(rows.len(), 500);

    let (o, rows) = map_rows(py, dir, &spec("Batched"), &[]);
    assert!(o.status.success());
    assert_eq!(
        rows.iter()
            .map(|r| r["id"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        (0..500).collect::<Vec<_>>()
    );
    assert!(rows.iter().all(|r| r["n"].as_u64().unwrap() <= 7));
}

#[test]
fn an_exec_mapper_in_shell_speaks_the_protocol() {
    let Some(py) = pyarrow_python() else {
        available(false, "a Python with pyarrow");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A mapper in POSIX shell: emits {"row": {"n": <line length>, "tag": $FLYWHEEL_ARG_TAG}} per input row.
    let sh = exec_mapper(
        dir.path(),
        "len.sh",
        r#"echo '{"ready": true}'
while IFS= read -r header; do
  rows=$(printf '%s' "$header" | sed 's/.*"rows":\([0-9]*\).*/\1/')
  i=0
  while [ "$i" -lt "$rows" ]; do
    IFS= read -r line
    printf '{"row": {"n": %d, "tag": "%s"}}\n' "${#line}" "$FLYWHEEL_ARG_TAG"
    i=$((i + 1))
  done
  printf '{"end": {"rows_out": %d}}\n' "$rows"
done
"#,
    );
    let (o, rows) = map_rows(&py, dir.path(), &sh, &["--mapper-arg", "tag=shell"]);
    assert!(o.status.success());
    assert_eq!(rows.len(), 500);
    assert!(rows
        .iter()
        .all(|r| r["tag"] == "shell" && r["n"].as_u64().unwrap() > 20));
}

#[test]
fn prints_go_to_the_log_not_into_the_data() {
    let Some(py) = pyarrow_python() else {
        available(false, "a Python with pyarrow");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let m = write_file(
        dir.path(),
        "noisy.py",
        "import os, sys\ndef f(row):\n    print('processing', row['id'], '{\"row\": {\"fake\": 1}}')\n    os.write(1, b'raw fd 1 write\\n')\n    yield {'id': row['id']}\n",
    );
    let (o, rows) = map_rows(&py, dir.path(), &format!("{}:f", m.display()), &[]);
    assert!(o.status.success());
    assert_eq!(
        rows.iter()
            .map(|r| r["id"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        (0..500).collect::<Vec<_>>()
    );
    assert!(rows.iter().all(|r| r.get("fake").is_none()));
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(
        log.contains("processing 123") && log.contains("raw fd 1 write"),
        "prints are in the log"
    );
    assert!(log.contains("] processing"), "with a worker/chunk prefix");
}

#[test]
fn a_killed_segfaulting_exiting_or_hanging_mapper_costs_one_attempt() {
    let Some(py) = pyarrow_python() else {
        available(false, "a Python with pyarrow");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (name, action) in [
        ("sigkill", "os.kill(os.getpid(), signal.SIGKILL)"),
        ("segfault", "ctypes.string_at(0)"),
        ("exit", "os._exit(7)"),
        ("hang", "time.sleep(3600)"),
    ] {
        let marker = dir.path().join(format!("{name}.done"));
        let m = write_file(
            dir.path(),
            &format!("{name}.py"),
            &format!(
                "import ctypes, os, signal, time\nMARK = {:?}\ndef f(row):\n    if row['id'] == 321 and not os.path.exists(MARK):\n        open(MARK, 'w').close()\n        {action}\n    yield {{'id': row['id']}}\n",
                marker.display().to_string()
            ),
        );
        let (o, rows) = map_rows(
            &py,
            dir.path(),
            &format!("{}:f", m.display()),
            &["--chunk-timeout", "3"],
        );
        assert!(o.status.success(), "{name}");
        let ids: Vec<u64> = rows.iter().map(|r| r["id"].as_u64().unwrap()).collect();
        assert_eq!(ids, (0..500).collect::<Vec<_>>(), "{name}: full output");
        let log = String::from_utf8_lossy(&o.stderr);
        if name == "hang" {
            // Either the timeout kills it and the chunk is retried, or an idle worker's
            // speculative copy of the late chunk wins first; both finish the job.
            let retried =
                log.contains("failures 1 ·") && log.contains("ran past the chunk timeout of 3s");
            let overtaken = !log.contains("speculative 0 ·");
            assert!(retried || overtaken, "{name}: {log}");
            continue;
        }
        // One failed attempt; the chunk is then run again, unless a speculative copy of
        // it was already running on the other worker (then that copy finishes it).
        assert!(
            log.contains("failures 1 ·"),
            "{name}: one failed attempt: {log}"
        );
        let why = match name {
            "sigkill" => "killed by signal 9",
            "segfault" => "segmentation fault",
            _ => "exited with status 7",
        };
        assert!(log.contains(why), "{name}: {log}");
    }
}

#[test]
fn start_runs_once_per_worker_process_across_many_chunks() {
    let Some(py) = pyarrow_python() else {
        available(false, "a Python with pyarrow");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("starts");
    std::fs::create_dir(&count).unwrap();
    let m = write_file(
        dir.path(),
        "counted.py",
        &format!(
            "import os\nclass C:\n    def start(self):\n        open(os.path.join({:?}, str(os.getpid())), 'w').close()\n    def __call__(self, row):\n        yield {{'id': row['id'], 'pid': os.getpid(), 'chunk': int(os.environ['FLYWHEEL_CHUNK']), 'seed': os.environ['FLYWHEEL_SEED']}}\n",
            count.display().to_string()
        ),
    );
    let out = dir.path().join("t");
    let o = run(flywheel()
        .args([
            "map",
            "--workers",
            "3",
            "--chunk-rows",
            "20",
            "--seed",
            "7",
            "--mapper",
        ])
        .arg(format!("{}:C", m.display()))
        .arg("--input")
        .arg(dialogues())
        .arg("--output")
        .arg(&out));
    assert!(o.status.success());
    let rows = read_with_pyarrow(&py, &out, None)["rows"]
        .as_array()
        .unwrap()
        .clone();
    let chunks: std::collections::BTreeSet<u64> =
        rows.iter().map(|r| r["chunk"].as_u64().unwrap()).collect();
    assert_eq!(chunks.len(), 25, "25 chunks ran");
    let pids: std::collections::BTreeSet<u64> =
        rows.iter().map(|r| r["pid"].as_u64().unwrap()).collect();
    let starts = std::fs::read_dir(&count).unwrap().count();
    assert_eq!(
        starts, 3,
        "start() ran once in each of the 3 worker processes"
    );
    assert_eq!(
        pids.len(),
        3,
        "one mapper process per worker, living across chunks"
    );
    // Per-chunk seeds: the same for every row of a chunk, different between chunks.
    let seeds: std::collections::BTreeSet<(u64, String)> = rows
        .iter()
        .map(|r| {
            (
                r["chunk"].as_u64().unwrap(),
                r["seed"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(seeds.len(), 25);
}

#[test]
fn mapper_mem_limits_each_mapper_process() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_file(dir.path(), "hog.py", "def f(row):\n    if row['id'] == 3:\n        x = bytearray(2 * 1024**3)\n    yield {'id': row['id']}\n");
    let out = dir.path().join("t");
    let o = run(flywheel()
        .args([
            "map",
            "--mapper-mem",
            "300M",
            "--max-attempts",
            "1",
            "--mapper",
        ])
        .arg(format!("{}:f", m.display()))
        .arg("--input")
        .arg(dialogues())
        .arg("--output")
        .arg(&out));
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("MemoryError"));
    let bad = run(flywheel()
        .args([
            "map",
            "--mapper-mem",
            "lots",
            "--mapper",
            "builtin:identity",
            "--input",
        ])
        .arg(dialogues())
        .arg("--output")
        .arg(&out));
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn an_answer_for_another_chunk_is_never_accepted() {
    let dir = tempfile::tempdir().unwrap();
    // Answers every chunk with an `end` for chunk 999 and no rows.
    let sh = exec_mapper(
        dir.path(),
        "confused.sh",
        "echo '{\"ready\": true}'\nwhile IFS= read -r header; do\n  rows=$(printf '%s' \"$header\" | sed 's/.*\"rows\":\\([0-9]*\\).*/\\1/')\n  i=0\n  while [ \"$i\" -lt \"$rows\" ]; do IFS= read -r line; i=$((i + 1)); done\n  echo '{\"end\": {\"chunk\": 999, \"rows_out\": 0}}'\ndone\n",
    );
    let out = dir.path().join("t");
    let o = run(flywheel()
        .args(["map", "--max-attempts", "1", "--mapper"])
        .arg(&sh)
        .arg("--input")
        .arg(dialogues())
        .arg("--output")
        .arg(&out));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("ended chunk 999 while chunk 0 was running")
    );
    assert!(!has_version(&out));
}

#[test]
fn dates_times_and_decimals_from_a_mapper_are_stored_on_both_paths() {
    let Some(py) = pyarrow_python() else {
        available(false, "a Python with pyarrow");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let m = write_file(
        dir.path(),
        "dt.py",
        "import datetime, decimal\ndef f(row):\n    yield {'id': row['id'], 'when': datetime.datetime(2024, 1, 2, 3, 4, 5), 'day': datetime.date(2024, 1, 2), 'price': decimal.Decimal('1.25')}\n",
    );
    for (name, python) in [
        ("json", "python3".to_string()),
        ("arrow", py.display().to_string()),
    ] {
        let out = dir.path().join(name);
        let o = run(flywheel()
            .args([
                "map",
                "--max-attempts",
                "1",
                "--python",
                &python,
                "--mapper",
            ])
            .arg(format!("{}:f", m.display()))
            .arg("--input")
            .arg(dialogues())
            .arg("--output")
            .arg(&out));
        assert!(o.status.success(), "{name}");
        let rows = read_with_pyarrow(&py, &out, None)["rows"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(rows.len(), 500, "{name}");
        assert_eq!(rows[0]["price"], "1.25", "{name}");
        assert!(
            rows[0]["when"].as_str().unwrap().starts_with("2024-01-02"),
            "{name}"
        );
    }
}

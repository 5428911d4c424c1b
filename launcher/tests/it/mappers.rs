//! Mapper forms, prints, fate isolation and start-once, with real mapper processes.

use crate::support::*;
use std::path::Path;

/// A map of the dialogues with two workers, 60 rows a chunk, into `dir/out-<mapper>`.
fn map(dir: &Path, mapper: &str) -> Map {
    let name: String = mapper
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    Map::dialogues(dir.join(format!("out-{name}")))
        .workers(2)
        .chunk_rows(60)
        .mapper(mapper)
}

/// The ids of rows, in order.
fn ids_of(rows: &[serde_json::Value]) -> Vec<u64> {
    rows.iter()
        .map(|r| r["id"].as_u64().expect("an integer"))
        .collect()
}

#[test]
fn every_mapper_form_produces_its_rows_in_order() {
    let Some((py, dir)) = setup() else { return };
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
        std::fs::create_dir_all(&pydir).expect("the folder is made");
        check_forms(&py, &pydir, &m, protocol);
    }
}

fn check_forms(py: &Path, dir: &Path, m: &Path, protocol: &str) {
    let run_form = |name: &str, extra: &[&str]| {
        let o = map(dir, &format!("{}:{name}", m.display()))
            .args(extra)
            .python(py)
            .env("FLYWHEEL_PROTOCOL", protocol)
            .run();
        assert!(o.status.success(), "{protocol}: {name}");
        o.rows(py)
    };
    let rows = run_form("plain", &[]);
    assert_eq!(ids_of(&rows), (0..500).collect::<Vec<_>>());

    let rows = run_form("generator", &[]);
    let want: Vec<(u64, u64)> = (0..500u64)
        .flat_map(|i| (0..i % 3).map(move |k| (i, k)))
        .collect();
    let got: Vec<(u64, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["id"].as_u64().expect("an integer"),
                r["k"].as_u64().expect("an integer"),
            )
        })
        .collect();
    assert_eq!(got, want, "0, 1 and 2 rows per input row, in order");

    let rows = run_form("Klass", &["--mapper-arg", "offset=1000"]);
    assert_eq!(rows[0]["id"], 1000);
    assert_eq!(rows.len(), 500);

    let rows = run_form("Batched", &[]);
    assert_eq!(ids_of(&rows), (0..500).collect::<Vec<_>>());
    assert!(rows
        .iter()
        .all(|r| r["n"].as_u64().expect("an integer") <= 7));
}

#[test]
fn an_exec_mapper_in_shell_speaks_the_protocol() {
    let Some((py, dir)) = setup() else { return };
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
    let rows = map(dir.path(), &sh)
        .mapper_arg("tag=shell")
        .run()
        .assert_ok("map")
        .rows(&py);
    assert_eq!(rows.len(), 500);
    assert!(rows
        .iter()
        .all(|r| r["tag"] == "shell" && r["n"].as_u64().expect("an integer") > 20));
}

#[test]
fn prints_go_to_the_log_not_into_the_data() {
    let Some((py, dir)) = setup() else { return };
    let m = write_file(
        dir.path(),
        "noisy.py",
        "import os, sys\ndef f(row):\n    print('processing', row['id'], '{\"row\": {\"fake\": 1}}')\n    os.write(1, b'raw fd 1 write\\n')\n    yield {'id': row['id']}\n",
    );
    let o = map(dir.path(), &format!("{}:f", m.display())).run();
    let rows = o.assert_ok("map").rows(&py);
    assert_eq!(ids_of(&rows), (0..500).collect::<Vec<_>>());
    assert!(rows.iter().all(|r| r.get("fake").is_none()));
    let log = o.stderr_text();
    assert!(
        log.contains("processing 123") && log.contains("raw fd 1 write"),
        "prints are in the log"
    );
    assert!(log.contains("] processing"), "with a worker/chunk prefix");
}

#[test]
fn a_killed_segfaulting_exiting_or_hanging_mapper_costs_one_attempt() {
    let Some((py, dir)) = setup() else { return };
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
        let o = map(dir.path(), &format!("{}:f", m.display()))
            .args(["--chunk-timeout", "3"])
            .run();
        assert!(o.status.success(), "{name}");
        assert_eq!(
            o.ids(&py),
            (0..500).collect::<Vec<_>>(),
            "{name}: full output"
        );
        let log = o.stderr_text();
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
    let Some((py, dir)) = setup() else { return };
    let count = dir.path().join("starts");
    std::fs::create_dir(&count).expect("the folder is made");
    let m = write_file(
        dir.path(),
        "counted.py",
        &format!(
            "import os\nclass C:\n    def start(self):\n        open(os.path.join({:?}, str(os.getpid())), 'w').close()\n    def __call__(self, row):\n        yield {{'id': row['id'], 'pid': os.getpid(), 'chunk': int(os.environ['FLYWHEEL_CHUNK']), 'seed': os.environ['FLYWHEEL_SEED']}}\n",
            count.display().to_string()
        ),
    );
    let rows = Map::dialogues(dir.path().join("t"))
        .workers(3)
        .chunk_rows(20)
        .args(["--seed", "7"])
        .mapper(format!("{}:C", m.display()))
        .run()
        .assert_ok("map")
        .rows(&py);
    let chunks: std::collections::BTreeSet<u64> = rows
        .iter()
        .map(|r| r["chunk"].as_u64().expect("an integer"))
        .collect();
    assert_eq!(chunks.len(), 25, "25 chunks ran");
    let pids: std::collections::BTreeSet<u64> = rows
        .iter()
        .map(|r| r["pid"].as_u64().expect("an integer"))
        .collect();
    let starts: std::collections::BTreeSet<u64> = std::fs::read_dir(&count)
        .expect("the folder is listed")
        .map(|e| {
            let name = e.expect("an entry").file_name();
            name.to_string_lossy().parse().expect("a pid")
        })
        .collect();
    // Each worker process starts its mapper once (a worker that a busy machine left without a
    // chunk may not have started it at all); every process that mapped rows ran start() first.
    assert!(
        starts.len() <= 3 && pids.is_subset(&starts),
        "start() ran once in each mapper process that mapped rows: starts {starts:?}, mapped by {pids:?}"
    );
    assert!(
        (1..=3).contains(&pids.len()),
        "25 chunks mapped by at most one process per worker, living across chunks: {pids:?}"
    );
    // Per-chunk seeds: the same for every row of a chunk, different between chunks.
    let seeds: std::collections::BTreeSet<(u64, String)> = rows
        .iter()
        .map(|r| {
            (
                r["chunk"].as_u64().expect("an integer"),
                r["seed"].as_str().expect("a string").to_string(),
            )
        })
        .collect();
    assert_eq!(seeds.len(), 25);
}

#[test]
fn mapper_mem_limits_each_mapper_process() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let m = write_file(dir.path(), "hog.py", "def f(row):\n    if row['id'] == 3:\n        x = bytearray(2 * 1024**3)\n    yield {'id': row['id']}\n");
    let out = dir.path().join("t");
    let o = Map::dialogues(&out)
        .args(["--mapper-mem", "300M"])
        .max_attempts(1)
        .mapper(format!("{}:f", m.display()))
        .run();
    assert_eq!(o.code(), Some(1));
    assert!(o.stderr_text().contains("MemoryError"));
    let bad = Map::dialogues(&out)
        .args(["--mapper-mem", "lots"])
        .identity()
        .run();
    assert_eq!(bad.code(), Some(2));
}

#[test]
fn an_answer_for_another_chunk_is_never_accepted() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // Answers every chunk with an `end` for chunk 999 and no rows.
    let sh = exec_mapper(
        dir.path(),
        "confused.sh",
        "echo '{\"ready\": true}'\nwhile IFS= read -r header; do\n  rows=$(printf '%s' \"$header\" | sed 's/.*\"rows\":\\([0-9]*\\).*/\\1/')\n  i=0\n  while [ \"$i\" -lt \"$rows\" ]; do IFS= read -r line; i=$((i + 1)); done\n  echo '{\"end\": {\"chunk\": 999, \"rows_out\": 0}}'\ndone\n",
    );
    let o = Map::dialogues(dir.path().join("t"))
        .max_attempts(1)
        .mapper(&sh)
        .run();
    o.assert_failed(
        "an end for chunk 999",
        &["ended chunk 999 while chunk 0 was running"],
    );
}

#[test]
fn dates_times_and_decimals_from_a_mapper_are_stored_on_both_paths() {
    let Some((py, dir)) = setup() else { return };
    let m = write_file(
        dir.path(),
        "dt.py",
        "import datetime, decimal\ndef f(row):\n    yield {'id': row['id'], 'when': datetime.datetime(2024, 1, 2, 3, 4, 5), 'day': datetime.date(2024, 1, 2), 'price': decimal.Decimal('1.25')}\n",
    );
    let runs = rows_on_both_paths(&py, |name| {
        Map::dialogues(dir.path().join(name))
            .max_attempts(1)
            .mapper(format!("{}:f", m.display()))
    });
    for (name, rows) in runs {
        assert_eq!(rows.len(), 500, "{name}");
        assert_eq!(rows[0]["price"], "1.25", "{name}");
        assert!(
            rows[0]["when"]
                .as_str()
                .expect("a string")
                .starts_with("2024-01-02"),
            "{name}"
        );
    }
}

#[test]
fn every_attempt_draws_from_its_chunks_seed_even_twice_in_one_process() {
    let Some((py, dir)) = setup() else { return };
    // One worker: the retry of chunk 1 runs in the process whose first attempt drew 49 values
    // and raised. `begin_chunk` and Python's `random` must both start over from the seed.
    let m = write_file(
        dir.path(),
        "draws.py",
        "import os, random\nclass Draws:\n    def begin_chunk(self, seed):\n        self.rng, self.seed, self.n = random.Random(seed), seed, 0\n    def __call__(self, row):\n        self.n += 1\n        attempt = int(os.environ['FLYWHEEL_ATTEMPT'])\n        if os.environ['FLYWHEEL_CHUNK'] == '1' and attempt == 1 and self.n == 50:\n            raise RuntimeError('the first attempt of chunk 1 fails halfway')\n        yield {'id': row['id'], 'seed': str(self.seed), 'n': self.n, 'mine': self.rng.random(), 'global': random.random(), 'attempt': attempt, 'pid': os.getpid()}\n",
    );
    let rows = Map::dialogues(dir.path().join("t"))
        .workers(1)
        .chunk_rows(100)
        .args(["--seed", "11"])
        .mapper(format!("{}:Draws", m.display()))
        .run()
        .assert_ok("map")
        .rows(&py);
    assert_eq!(rows.len(), 500);
    let retried: Vec<&serde_json::Value> = rows[100..200].iter().collect();
    assert!(
        retried.iter().all(|r| r["attempt"] == 2),
        "chunk 1 was retried"
    );
    assert_eq!(
        rows[0]["pid"], rows[150]["pid"],
        "the retry ran in the same mapper process"
    );
    // What a fresh random.Random(seed) draws, row by row of each chunk.
    let seeds: Vec<String> = rows
        .iter()
        .step_by(100)
        .map(|r| r["seed"].as_str().expect("a string").to_string())
        .collect();
    let script = format!(
        "import json, random\nout = []\nfor s in {seeds:?}:\n    r = random.Random(int(s))\n    out.extend(r.random() for _ in range(100))\nprint(json.dumps(out))\n"
    );
    let o = run(std::process::Command::new(&py).args(["-c", &script]));
    assert!(o.status.success(), "{}", stderr_text(&o));
    let expected: Vec<f64> = serde_json::from_slice(&o.stdout).expect("a list of numbers");
    for (i, (row, want)) in rows.iter().zip(&expected).enumerate() {
        assert_eq!(row["n"], (i % 100 + 1) as u64, "row {i}: {row}");
        assert_eq!(row["mine"].as_f64(), Some(*want), "row {i}: {row}");
        assert_eq!(row["global"].as_f64(), Some(*want), "row {i}: {row}");
    }
}

#[test]
fn mapper_thread_pools_get_the_workers_share_of_the_cpus_unless_the_user_set_them() {
    let Some((py, dir)) = setup() else { return };
    let m = write_file(
        dir.path(),
        "pools.py",
        "import os\ndef f(row):\n    yield {'id': row['id'], **{k.lower(): os.environ.get(k, '') for k in ['OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS', 'RAYON_NUM_THREADS']}}\n",
    );
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rows = Map::dialogues(dir.path().join("t"))
        .workers(2)
        .mapper(format!("{}:f", m.display()))
        .env("OMP_NUM_THREADS", "3")
        .run()
        .assert_ok("map")
        .rows(&py);
    let share = (cpus / 2).max(1).to_string();
    for r in [&rows[0], &rows[499]] {
        assert_eq!(r["omp_num_threads"], "3", "the user's value wins: {r}");
        for k in [
            "openblas_num_threads",
            "mkl_num_threads",
            "rayon_num_threads",
        ] {
            // Set where the test runs, it is the user's and wins too.
            let want = std::env::var(k.to_uppercase()).unwrap_or_else(|_| share.clone());
            assert_eq!(
                r[k],
                want.as_str(),
                "{k} with {cpus} CPUs and 2 workers: {r}"
            );
        }
    }
}

/// A mapper whose chunks' outputs differ in size by a hundred times (the first is megabytes, the
/// rest kilobytes), with a nested column, so the shared memory first grows, then shrinks.
const SIZES_MAPPER: &str = r#"
import os

class Sizes:
    def __call__(self, row):
        chunk = int(os.environ["FLYWHEEL_CHUNK"])
        pad = ("x" * 20000) if chunk == 0 else str(row["id"])
        yield {"id": row["id"], "pad": pad, "tags": [row["topic"], str(chunk)]}
"#;

#[test]
fn arrow_data_through_shared_memory_and_through_pipes_gives_the_same_table() {
    let Some((py, dir)) = setup() else { return };
    let m = py_mapper(dir.path(), "sizes.py", SIZES_MAPPER, "Sizes");
    let run = |name: &str, env: &[(&str, &str)], schema: bool| {
        let map = env.iter().fold(
            Map::dialogues(dir.path().join(name))
                .workers(2)
                .chunk_rows(100)
                .mapper(&m)
                .python(&py)
                .env("FLYWHEEL_LOG", "debug"),
            |m, (k, v)| m.env(k, v),
        );
        let map = if schema {
            map.schema("id: int64, pad: str, tags: list<str>")
        } else {
            map
        };
        let o = map.run();
        o.assert_ok(name);
        (o.rows(&py), o.stderr_text())
    };
    for schema in [false, true] {
        let (pipes, log) = run(&format!("pipes-{schema}"), &[("FLYWHEEL_SHM", "0")], schema);
        assert!(log.contains("(Arrow data through pipes)"), "{log}");
        assert!(!log.contains("shared memory)"), "{log}");
        assert_eq!(pipes.len(), 500);
        assert_eq!(pipes[0]["pad"].as_str().map(str::len), Some(20000));
        assert_eq!(pipes[499]["pad"], "499");
        assert_eq!(pipes[7]["tags"][1], "0");
        assert_eq!(pipes[499]["tags"][1], "4");
        for (name, env) in [
            ("forked", &[][..]),
            ("spawned", &[("FLYWHEEL_FORK_SERVER", "0")][..]),
        ] {
            let (rows, log) = run(&format!("{name}-{schema}"), env, schema);
            assert!(
                log.contains("(Arrow data in shared memory)"),
                "{name}: {log}"
            );
            assert!(!log.contains("through pipes"), "{name}: {log}");
            assert_eq!(rows, pipes, "{name}, schema fixed: {schema}");
        }
    }
}

#[test]
fn output_the_shared_memory_cannot_hold_goes_through_the_pipe() {
    let Some((py, dir)) = setup() else { return };
    // RLIMIT_FSIZE below a chunk's output: the runner cannot allocate its shared memory (EFBIG;
    // Python ignores SIGXFSZ) and sends the rows through the pipe instead, chunk by chunk.
    let code = format!(
        "import resource\n{SIZES_MAPPER}\nclass Limited(Sizes):\n    def start(self):\n        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))\n"
    );
    let m = py_mapper(dir.path(), "limited.py", &code, "Limited");
    let limited = Map::dialogues(dir.path().join("limited"))
        .workers(2)
        .chunk_rows(100)
        .mapper(&m)
        .python(&py)
        .env("FLYWHEEL_LOG", "debug")
        .run();
    limited.assert_ok("a mapper whose shared memory is limited");
    let log = limited.stderr_text();
    assert!(log.contains("(Arrow data in shared memory)"), "{log}");
    assert!(
        log.contains("bytes of output do not fit in shared memory (")
            && log.contains("such chunks go through the pipe"),
        "the runner says so: {log}"
    );
    let plain = Map::dialogues(dir.path().join("plain"))
        .workers(2)
        .chunk_rows(100)
        .mapper(py_mapper(dir.path(), "sizes.py", SIZES_MAPPER, "Sizes"))
        .python(&py)
        .run();
    plain.assert_ok("the same mapper");
    let rows = limited.rows(&py);
    assert_eq!(rows.len(), 500);
    assert_eq!(rows, plain.rows(&py));
}

//! A column whose type clashes between chunks (int in some, str in one) fails the job wherever the
//! clash falls — the first chunk, a middle one, the last one, a speculative copy, a retried
//! attempt — with 1 or 3 workers, in process and under mpirun: the error names the column, both
//! types and the chunk where each was first seen, and nothing is published.

use crate::support::*;
use std::path::Path;
use std::time::Duration;

/// Rows per chunk, and chunks, of every case.
const CHUNK_ROWS: u64 = 40;
const CHUNKS: u64 = 5;

/// How the chunk that yields str values gets its accepted output.
#[derive(Clone, Copy, Debug)]
enum Clash {
    /// Its first attempt.
    Plain,
    /// Its first attempt crashes; the retry yields the str values.
    Retried,
    /// Its first attempt is slow: an idle worker's speculative copy finishes first.
    Speculative,
}

/// A mapper yielding `v` as int, except in chunk `at`, where it is str. `jitter`: each row
/// sleeps up to that many seconds (from the OS's randomness, not the chunk's seeded `random`),
/// so the order chunks finish in varies from run to run.
fn clash_mapper(dir: &Path, at: u64, how: Clash, jitter: f64) -> String {
    let code = format!(
        r#"import os, random, time

AT = {at}
HOW = "{how:?}"
JITTER = {jitter}
OS_RANDOM = random.SystemRandom()

def f(row):
    chunk = row["id"] // {CHUNK_ROWS}
    first_attempt = os.environ.get("FLYWHEEL_ATTEMPT") == "1"
    if chunk == AT and first_attempt and HOW == "Retried":
        os._exit(3)
    if chunk == AT and first_attempt and HOW == "Speculative":
        time.sleep(0.05)
    if JITTER:
        time.sleep(OS_RANDOM.random() * JITTER)
    yield {{"id": row["id"], "v": str(row["id"]) if chunk == AT else row["id"]}}
"#
    );
    py_mapper(dir, &format!("clash_{at}_{how:?}.py"), &code, "f")
}

/// The words the failure must say: the column, both types, and the chunk of the str values
/// (and, with one worker, where the int values were first seen in chunk order).
fn says(at: u64, workers: u32) -> Vec<String> {
    let mut s = vec![
        "column 'v' has".to_string(),
        "int values (first at chunk ".to_string(),
        format!("str values (first at chunk {at})"),
    ];
    if workers == 1 {
        s.push(format!(
            "int values (first at chunk {})",
            if at == 0 { 1 } else { 0 }
        ));
    }
    s
}

fn map_clash(py: &Path, dir: &Path, input: &Path, at: u64, how: Clash, workers: u32) -> Ran {
    let out = dir.join(format!("out-{at}-{how:?}-{workers}"));
    Map::new(input, &out)
        .mapper(clash_mapper(dir, at, how, 0.0))
        .python(py)
        .workers(workers)
        .chunk_rows(CHUNK_ROWS)
        .within(Duration::from_secs(120))
        .run()
}

#[test]
fn a_type_clash_in_any_chunk_fails_the_job_and_publishes_nothing() {
    let Some((py, dir)) = setup() else {
        return;
    };
    let input = ids_input(&py, dir.path(), CHUNK_ROWS * CHUNKS);
    for workers in [1, 3] {
        for at in [0, CHUNKS / 2, CHUNKS - 1] {
            for how in [Clash::Plain, Clash::Retried] {
                let what = format!("clash at chunk {at} ({how:?}), {workers} worker(s)");
                let o = map_clash(&py, dir.path(), &input, at, how, workers);
                let says = says(at, workers);
                o.assert_failed(&what, &says.iter().map(String::as_str).collect::<Vec<_>>());
            }
        }
    }
}

#[test]
fn a_type_clash_in_a_speculative_copy_fails_the_job_and_publishes_nothing() {
    let Some((py, dir)) = setup() else {
        return;
    };
    let input = ids_input(&py, dir.path(), CHUNK_ROWS * CHUNKS);
    // The slow first attempt of the last chunk is copied by an idle worker, whose copy is the
    // accepted one.
    for at in [0, CHUNKS - 1] {
        let what = format!("clash at chunk {at} in a speculative copy");
        let o = map_clash(&py, dir.path(), &input, at, Clash::Speculative, 3);
        let says = says(at, 3);
        o.assert_failed(&what, &says.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

#[test]
fn a_type_clash_fails_every_time_whatever_order_chunks_finish_in() {
    let Some((py, dir)) = setup() else {
        return;
    };
    let input = ids_input(&py, dir.path(), CHUNK_ROWS * CHUNKS);
    for run in 0..50u64 {
        let at = run % CHUNKS;
        let out = dir.path().join(format!("random-{run}"));
        let o = Map::new(&input, &out)
            .mapper(clash_mapper(dir.path(), at, Clash::Plain, 0.002))
            .python(&py)
            .workers(3)
            .chunk_rows(CHUNK_ROWS)
            .within(Duration::from_secs(120))
            .run();
        let says = says(at, 3);
        o.assert_failed(
            &format!("run {run}, clash at chunk {at}"),
            &says.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
}

/// Under mpirun (1 and 3 ranks: rank 0 coordinates and works), a clash in the first, a middle or
/// the last chunk fails the job the same way.
#[cfg(feature = "mpi")]
#[test]
fn mpirun_type_clash_in_any_chunk_fails_the_job_and_publishes_nothing() {
    let Some((py, dir)) = setup() else {
        return;
    };
    let mpirun_here = std::process::Command::new("mpirun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available(mpirun_here, "mpirun") {
        return;
    }
    let input = ids_input(&py, dir.path(), CHUNK_ROWS * CHUNKS);
    for (ranks, at) in [1u32, 3]
        .into_iter()
        .flat_map(|n| [0, CHUNKS / 2, CHUNKS - 1].map(|a| (n, a)))
    {
        let out = dir.path().join(format!("mpi-{ranks}-{at}"));
        let job = write_file(
            dir.path(),
            &format!("job-{ranks}-{at}.toml"),
            &format!(
                "input = {:?}\noutput = {:?}\nmapper = {:?}\npython = {:?}\nchunk_rows = {CHUNK_ROWS}\n",
                input.display().to_string(),
                out.display().to_string(),
                clash_mapper(dir.path(), at, Clash::Plain, 0.002),
                py.display().to_string(),
            ),
        );
        let o = run(std::process::Command::new("timeout")
            .args(["300", "mpirun", "-n", &ranks.to_string(), "--oversubscribe"])
            .arg(env!("CARGO_BIN_EXE_flywheel"))
            .arg("run")
            .arg(&job)
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"));
        let what = format!("mpirun -n {ranks}, clash at chunk {at}");
        assert!(!o.status.success(), "{what}: the job succeeded");
        let err = stderr_text(&o);
        for s in says(at, ranks) {
            assert!(err.contains(&s), "{what}: stderr lacks {s:?}: {err}");
        }
        assert!(!has_version(&out), "{what}: a failed job publishes nothing");
    }
}

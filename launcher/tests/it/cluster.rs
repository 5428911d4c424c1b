//! The same job as MPI ranks: under `mpirun` with 4 ranks, and through `sbatch` on the local
//! Slurm cluster (`slurm/local-cluster.sh start`). Built only with `--features mpi`.
#![cfg(feature = "mpi")]

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn write_job(dir: &Path, mapper: &str, extra: &str) -> (PathBuf, PathBuf) {
    let out = dir.join("pairs");
    let job = dir.join("job.toml");
    std::fs::write(
        &job,
        format!(
            "input = {:?}\noutput = {:?}\nmapper = {:?}\nchunk_rows = 29\nmax_attempts = 2\n{extra}",
            dialogues().display().to_string(),
            out.display().to_string(),
            mapper
        ),
    )
    .expect("the test writes its file");
    (job, out)
}

fn mpirun(job: &Path) -> std::process::Output {
    run(Command::new("timeout")
        .args(["300", "mpirun", "-n", "4", "--oversubscribe"])
        .arg(env!("CARGO_BIN_EXE_flywheel"))
        .arg("run")
        .arg(job)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"))
}

/// The Python with pyarrow, a directory, and in it a job file of the README demo (with `extra`
/// lines) and its output; `None` after a counted skip (no pyarrow, no mpirun).
fn dialogue_job(extra: &str) -> Option<(PathBuf, tempfile::TempDir, PathBuf, PathBuf)> {
    let py = pyarrow_or_skip()?;
    if !available(have("mpirun"), "mpirun") {
        return None;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (job, out) = write_job(
        dir.path(),
        &format!("{}:ExpandDialogue", expand_dialogue().display()),
        extra,
    );
    Some((py, dir, job, out))
}

#[test]
fn mpirun_with_four_ranks_publishes_the_same_rows_as_a_plain_loop() {
    let Some((py, _dir, job, out)) = dialogue_job("") else {
        return;
    };
    let o = mpirun(&job);
    assert!(o.status.success(), "mpirun failed");
    let stderr = String::from_utf8_lossy(&o.stderr);
    // 4 ranks are 4 workers (rank 0 coordinates and works too), all of which did work.
    for w in 0..=3 {
        assert!(
            stderr.contains(&format!("worker {w:>3}")),
            "worker {w} missing from the report: {stderr}"
        );
    }
    assert!(!stderr.contains("worker   4"), "{stderr}");
    let expected = expected_rows(&py, &dialogues(), &expand_dialogue(), "ExpandDialogue");
    assert_table_rows(&py, &out, &expected);
    // The job file and its hash are in the lineage.
    let v = info(&out);
    assert_eq!(
        v["lineage"]["job_file"]["sha256"].as_str().map(str::len),
        Some(64)
    );
}

#[test]
fn mpirun_incremental_job_file_reuses_every_chunk_when_nothing_changed() {
    let Some((py, _dir, job, out)) = dialogue_job("incremental = true\n") else {
        return;
    };
    assert!(mpirun(&job).status.success(), "the first run");
    let o = mpirun(&job);
    assert!(o.status.success(), "the second run");
    let v = info(&out);
    assert_eq!(v["version"], 2);
    let inc = &v["lineage"]["incremental"];
    assert_eq!(inc["computed"], 0, "{inc}");
    assert_eq!(inc["reused"], inc["chunks"], "{inc}");
    assert_eq!(inc["chunks"], 18, "500 rows in chunks of 29: {inc}");
    let expected = expected_rows(&py, &dialogues(), &expand_dialogue(), "ExpandDialogue");
    assert_table_rows(&py, &out, &expected);
}

#[test]
fn mpirun_job_whose_mapper_always_fails_publishes_nothing() {
    if !available(have("mpirun"), "mpirun") {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mapper = dir.path().join("bad.py");
    std::fs::write(
        &mapper,
        "def f(row):\n    raise RuntimeError('model exploded')\n",
    )
    .expect("the test writes its file");
    let (job, out) = write_job(dir.path(), &format!("{}:f", mapper.display()), "");
    let o = mpirun(&job);
    assert_exit(
        &o,
        1,
        "mpirun",
        &["error: job failed, nothing was published", "model exploded"],
    );
    assert!(!has_version(&out));
}

fn cluster_up() -> bool {
    Command::new("timeout")
        .args(["10", "sinfo", "-h", "-o", "%T"])
        .output()
        .map(|o| {
            let s = String::from_utf8_lossy(&o.stdout);
            o.status.success()
                && (s.contains("idle") || s.contains("mixed") || s.contains("allocated"))
        })
        .unwrap_or(false)
}

/// Waits until Slurm no longer lists the job as pending or running.
fn wait_for_job(id: &str, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let o = Command::new("timeout")
            .args(["10", "squeue", "-h", "-j", id, "-o", "%T"])
            .output()
            .expect("the command runs");
        let state = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if state.is_empty()
            || !(state.contains("PENDING")
                || state.contains("RUNNING")
                || state.contains("CONFIGURING")
                || state.contains("COMPLETING"))
        {
            let show = Command::new("timeout")
                .args(["10", "scontrol", "show", "job", id])
                .output()
                .expect("the command runs");
            return String::from_utf8_lossy(&show.stdout).to_string();
        }
        assert!(
            start.elapsed() < limit,
            "job {id} still {state} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The Python with pyarrow and a temporary directory where the local Slurm cluster is up;
/// `None` after a counted skip.
fn slurm_and_dir() -> Option<(PathBuf, tempfile::TempDir)> {
    let (py, dir) = setup()?;
    available(
        have("sbatch") && cluster_up(),
        "a running local Slurm cluster (slurm/local-cluster.sh start)",
    )
    .then_some((py, dir))
}

#[test]
fn sbatch_job_on_the_local_cluster_publishes_the_table() {
    let Some((py, dir)) = slurm_and_dir() else {
        return;
    };
    let (job, out) = write_job(
        dir.path(),
        &format!("{}:ExpandDialogue", expand_dialogue().display()),
        "[slurm]\nnodes = 1\nntasks_per_node = 4\ntime = \"00:10:00\"\n",
    );
    let dry = run(flywheel().args(["submit", "--dry-run"]).arg(&job));
    let script = assert_prints(
        &dry,
        "submit --dry-run",
        &["#SBATCH --ntasks-per-node=4", "srun --mpi=pmix"],
    );
    assert!(script.starts_with("#!/bin/bash\n"), "{script}");
    assert!(!out.join("_logs").exists(), "--dry-run submits nothing");

    let o = run(flywheel().arg("submit").arg(&job));
    assert!(o.status.success());
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
        "job id: {id:?}"
    );
    let show = wait_for_job(&id, Duration::from_secs(300));
    let log = std::fs::read_to_string(out.join("_logs").join(format!("slurm-{id}.out")))
        .unwrap_or_default();
    eprintln!("--- scontrol\n{show}\n--- job log\n{log}");
    assert!(log.contains("published"), "the job log reports the publish");
    let expected = expected_rows(&py, &dialogues(), &expand_dialogue(), "ExpandDialogue");
    assert_table_rows(&py, &out, &expected);
    let v = info(&out);
    assert_eq!(v["lineage"]["slurm_job_id"].as_str(), Some(id.as_str()));
    assert_eq!(
        v["lineage"]["slurm_steps"],
        serde_json::json!([format!("{id}.0")]),
        "the one step that ran it"
    );
    let text = status_of(&out);
    assert!(
        text.contains("finished: published version 1")
            && text.contains(&format!("slurm jobs: {id}"))
            && text.contains(&format!("slurm steps: {id}.0")),
        "{text}"
    );
}

#[test]
fn sbatch_job_that_fails_with_every_node_alive_is_not_run_again() {
    let Some((_py, dir)) = slurm_and_dir() else {
        return;
    };
    let mapper = dir.path().join("bad.py");
    std::fs::write(
        &mapper,
        "def f(row):\n    raise RuntimeError('model exploded')\n",
    )
    .expect("the test writes its file");
    let (job, out) = write_job(
        dir.path(),
        &format!("{}:f", mapper.display()),
        "[slurm]\nntasks_per_node = 3\ntime = \"00:10:00\"\n",
    );
    let o = run(flywheel().arg("submit").arg(&job));
    assert!(o.status.success());
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let show = wait_for_job(&id, Duration::from_secs(300));
    let log = std::fs::read_to_string(out.join("_logs").join(format!("slurm-{id}.out")))
        .unwrap_or_default();
    // The script asked Slurm which nodes live (all of them), so it did not start another step
    // or submit a continuation: the job failed, with the mapper's error, once.
    assert!(
        show.contains("JobState=FAILED") && show.contains("ExitCode=1:0"),
        "{show}\n{log}"
    );
    assert!(
        log.contains("error: job failed, nothing was published") && log.contains("model exploded"),
        "{log}"
    );
    assert!(
        !log.contains("flywheel: the step ended") && !log.contains("continuation"),
        "{log}"
    );
    assert!(!has_version(&out));
}

/// A job file with a slow mapper (`delay` seconds a row) yielding each row's id.
fn slow_job(dir: &Path, delay: f64, slurm: &str) -> (PathBuf, PathBuf) {
    let mapper = dir.join("slow.py");
    std::fs::write(
        &mapper,
        format!(
            "import time\ndef f(row):\n    time.sleep({delay})\n    yield {{'id': row['id']}}\n"
        ),
    )
    .expect("the test writes its file");
    let (job, out) = write_job(dir, &format!("{}:f", mapper.display()), slurm);
    let text = std::fs::read_to_string(&job)
        .expect("the file is read")
        .replace("chunk_rows = 29", "chunk_rows = 10");
    std::fs::write(&job, text).expect("the test writes its file");
    (job, out)
}

fn wait_for_version(table: &Path, limit: Duration) {
    let start = Instant::now();
    while !has_version(table) {
        assert!(start.elapsed() < limit, "no version after {limit:?}");
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn a_job_past_its_time_limit_checkpoints_and_continues_in_a_new_allocation() {
    let Some((py, dir)) = slurm_and_dir() else {
        return;
    };
    // 500 rows x 0.3 s over 3 workers is about 50 s of work; the limit is 1 minute and Slurm
    // warns 30 s (or, by its resolution, up to 60 s) before it.
    let (job, out) = slow_job(
        dir.path(),
        0.3,
        "[slurm]\nntasks_per_node = 4\ntime = \"00:01:00\"\nsignal_margin = 30\n",
    );
    let o = run(flywheel().arg("submit").arg(&job));
    assert!(o.status.success());
    wait_for_version(&out, Duration::from_secs(420));
    assert_eq!(
        ids(&py, &out, None),
        (0..500).collect::<Vec<_>>(),
        "complete, in order, as an uninterrupted run"
    );
    let v = info(&out);
    let jobs = v["lineage"]["slurm_job_ids"]
        .as_array()
        .expect("an array")
        .len();
    assert!(
        jobs >= 2,
        "the lineage lists every Slurm job that worked on it: {}",
        v["lineage"]["slurm_job_ids"]
    );
    let logs = std::fs::read_dir(out.join("_logs"))
        .expect("the folder is listed")
        .map(|e| std::fs::read_to_string(e.expect("a folder entry").path()).unwrap_or_default())
        .collect::<String>();
    assert!(
        logs.contains("checkpointed after SIGUSR1") && logs.contains("resuming:"),
        "{logs}"
    );
}

#[test]
fn scancel_then_submit_resume_completes_without_redoing_accepted_chunks() {
    let Some((py, dir)) = slurm_and_dir() else {
        return;
    };
    let (job, out) = slow_job(
        dir.path(),
        0.05,
        "[slurm]\nntasks_per_node = 4\ntime = \"00:10:00\"\n",
    );
    let o = run(flywheel().arg("submit").arg(&job));
    let first = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let start = Instant::now();
    while accepted_chunks(&out) < 10 {
        assert!(start.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(Command::new("scancel")
        .arg(&first)
        .status()
        .expect("the command runs")
        .success());
    wait_for_job(&first, Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(1));
    let before = accepted_chunks(&out);
    assert!(
        before < 50 && !has_version(&out),
        "cancelled mid-way ({before} chunks) and nothing published"
    );

    let o = run(flywheel().args(["submit", "--resume"]).arg(&job));
    assert!(o.status.success());
    let second = String::from_utf8_lossy(&o.stdout).trim().to_string();
    wait_for_job(&second, Duration::from_secs(300));
    wait_for_version(&out, Duration::from_secs(30));
    assert_eq!(ids(&py, &out, None), (0..500).collect::<Vec<_>>());
    // The resumed job processed exactly the rows the journal lacked: no accepted chunk ran again.
    let log = std::fs::read_to_string(out.join("_logs").join(format!("slurm-{second}.out")))
        .expect("the file is read");
    let ran: usize = log
        .lines()
        .filter(|l| l.trim_start().starts_with("worker "))
        .filter_map(|l| {
            l.split("chunks")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum();
    assert_eq!(ran, 50 - before, "{log}");
    let status = status_of(&out);
    assert!(
        status.contains(&format!("slurm jobs: {first}, {second}")),
        "{status}"
    );
}

#[test]
fn mpirun_job_refused_before_it_starts_releases_every_rank() {
    if !available(have("mpirun"), "mpirun") {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (job, out) = write_job(dir.path(), "builtin:identity", "resume = true\n");
    // A journal of some other job: resuming from it is refused on rank 0.
    std::fs::create_dir_all(&out).expect("the folder is made");
    std::fs::write(
        out.join("_journal.jsonl"),
        "{\"Start\": {\"plan\": \"another\", \"chunks\": 1, \"rows\": 1, \"at\": 0, \"host\": \"h\", \"slurm_job_id\": null, \"resumed\": false}}\n",
    )
    .expect("the test writes its file");
    let o = mpirun(&job);
    assert_eq!(
        o.status.code(),
        Some(2),
        "refused, not hung (timeout exits 124)"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("records a different job"));
}

//! The Python cases: flywheel running a Python mapper beside what users would otherwise write —
//! a plain loop, a hand-written `multiprocessing.Pool`, HF datasets' `map(num_proc=…)`, a static
//! split of the rows — and the same job with injected mapper crashes.

use crate::{median, repo, timed, Args};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A seeded dialogues table (the README demo's kind of data) of `rows` rows at `path`, in row
/// groups of 10,000 (the hand-written pool's unit of work).
pub fn dialogues(args: &Args, path: &Path, rows: usize) -> Result<()> {
    let status = Command::new(&args.python)
        .arg(repo().join("examples/data/make_dialogues.py"))
        .args([
            "--rows",
            &rows.to_string(),
            "--row-group-size",
            "10000",
            "--out",
        ])
        .arg(path)
        .stdout(std::process::Stdio::null())
        .status()
        .context("running make_dialogues.py")?;
    anyhow::ensure!(status.success(), "make_dialogues.py failed: {status}");
    Ok(())
}

fn script(name: &str) -> PathBuf {
    repo().join("benchmarks/python").join(name)
}

fn expand_mapper() -> String {
    format!(
        "{}:ExpandDialogue",
        repo().join("examples/expand_dialogue.py").display()
    )
}

fn flywheel_map(
    args: &Args,
    input: &Path,
    output: &Path,
    mapper: &str,
    chunk_rows: usize,
) -> Command {
    let mut c = Command::new(&args.flywheel);
    c.args(["map", "--workers", "2", "--json", "--chunk-rows"])
        .arg(chunk_rows.to_string())
        .arg("--python")
        .arg(&args.python)
        .args(["--mapper", mapper, "--input"])
        .arg(input)
        .arg("--output")
        .arg(output);
    c
}

fn python(py: &Path) -> Command {
    let mut c = Command::new(py);
    c.current_dir(repo().join("benchmarks/python"));
    c
}

/// Whether `py` can import `module`.
fn has_module(py: &Path, module: &str) -> bool {
    Command::new(py)
        .args(["-c", &format!("import {module}")])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// expand_dialogue with 2 workers against the plain loop, the hand-written pool and HF datasets.
pub fn expand_case(args: &Args, dir: &Path, input: &Path) -> Result<()> {
    let mapper = expand_mapper();
    let hf = has_module(&args.hf_python, "datasets");
    let (mut plain, mut pool, mut hfd, mut ours) = (vec![], vec![], vec![], vec![]);
    for run in 0..args.runs.max(1) {
        let out = |name: &str| dir.join(format!("expand-{name}-{run}"));
        plain.push(timed(
            python(&args.python)
                .arg(script("plain_loop.py"))
                .arg(input)
                .arg(out("plain.parquet"))
                .arg(&mapper),
        )?);
        pool.push(timed(
            python(&args.python)
                .arg(script("pool.py"))
                .arg(input)
                .arg(out("pool"))
                .arg(&mapper)
                .arg("2"),
        )?);
        if hf {
            hfd.push(timed(
                python(&args.hf_python)
                    .arg(script("hf_datasets.py"))
                    .arg(input)
                    .arg(out("hf.parquet"))
                    .arg(&mapper)
                    .arg("2")
                    .arg(out("hf-cache")),
            )?);
        }
        ours.push(timed(&mut flywheel_map(
            args,
            input,
            &out("flywheel"),
            &mapper,
            10_000,
        ))?);
        for name in [
            "plain.parquet",
            "pool",
            "hf.parquet",
            "hf-cache",
            "flywheel",
        ] {
            let p = out(name);
            let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
        }
    }
    let o = median(ours);
    println!("case                         rows      baseline(s)  flywheel(s)  flywheel speed / baseline  target");
    let line = |name: &str, base: f64, target: &str| {
        println!(
            "{name:<28} {:<9} {base:<12.3} {o:<12.3} {:<26.2} {target}",
            args.rows,
            base / o
        );
    };
    line("expand vs plain loop", median(plain), ">= 1.8");
    line("expand vs Pool(2)", median(pool), ">= 0.90");
    if hf {
        line("expand vs HF datasets(2)", median(hfd), "> 1");
    } else {
        println!(
            "expand vs HF datasets(2)     skipped: {} cannot import datasets (benchmarks/run.sh installs it)",
            args.hf_python.display()
        );
    }
    Ok(())
}

/// Mapper cost concentrated in the first quarter: flywheel (2 workers, small chunks) against a
/// static split into two equal contiguous halves run side by side.
pub fn skew_case(args: &Args, dir: &Path) -> Result<()> {
    let n = args.skew_rows;
    let input = dir.join("skew.parquet");
    dialogues(args, &input, n)?;
    let mapper = format!("{}:Skewed", script("skewed.py").display());
    let hot = format!("hot_rows={}", n / 4);
    let (mut stat, mut ours) = (vec![], vec![]);
    for run in 0..args.runs.max(1) {
        // The static split: two processes, rows [0, n/2) and [n/2, n); done when both are.
        let t = std::time::Instant::now();
        let halves: Vec<std::process::Child> = [(0, n / 2), (n / 2, n)]
            .iter()
            .enumerate()
            .map(|(k, (a, b))| {
                python(&args.python)
                    .env("BENCH_MAPPER_ARGS", &hot)
                    .arg(script("plain_loop.py"))
                    .arg(&input)
                    .arg(dir.join(format!("skew-static-{run}-{k}.parquet")))
                    .arg(&mapper)
                    .arg(a.to_string())
                    .arg(b.to_string())
                    .stdout(std::process::Stdio::null())
                    .spawn()
            })
            .collect::<std::io::Result<_>>()?;
        for mut h in halves {
            let status = h.wait()?;
            anyhow::ensure!(status.success(), "static split half failed: {status}");
        }
        stat.push(t.elapsed().as_secs_f64());
        let out = dir.join(format!("skew-flywheel-{run}"));
        ours.push(timed(
            flywheel_map(args, &input, &out, &mapper, (n / 40).max(1)).args(["--mapper-arg", &hot]),
        )?);
        let _ = std::fs::remove_dir_all(&out);
    }
    let (s, o) = (median(stat), median(ours));
    println!("case                         rows      static(s)    flywheel(s)  makespan flywheel / static  target");
    println!(
        "skew (1 ms/row in 1st 1/4)   {n:<9} {s:<12.3} {o:<12.3} {:<27.2} <= 0.7",
        o / s
    );
    Ok(())
}

/// expand_dialogue where the mapper process dies half-way through the first attempt of every
/// 10th chunk, against the same job without crashes.
pub fn failures_case(args: &Args, dir: &Path, input: &Path) -> Result<()> {
    let chunk_rows = (args.rows / 100).max(100);
    let crashy = format!("{}:Crashy", script("crashy.py").display());
    let (mut clean, mut crashing, mut crashes) = (vec![], vec![], 0usize);
    for run in 0..args.runs.max(1) {
        let marks = dir.join(format!("fail-marks-{run}"));
        std::fs::create_dir_all(&marks)?;
        // The clean run: the same mapper with crashes turned off.
        let out = dir.join(format!("fail-clean-{run}"));
        clean.push(timed(
            flywheel_map(args, input, &out, &crashy, chunk_rows)
                .arg("--mapper-arg")
                .arg(format!("marks={}", marks.display()))
                .args(["--mapper-arg", &format!("chunk_rows={chunk_rows}")])
                .args(["--mapper-arg", "every=0"]),
        )?);
        let _ = std::fs::remove_dir_all(&out);
        let out = dir.join(format!("fail-crashy-{run}"));
        crashing.push(timed(
            flywheel_map(args, input, &out, &crashy, chunk_rows)
                // Each crash is logged as a warning; the count is printed below instead.
                .env("FLYWHEEL_LOG", "error")
                .args(["--max-attempts", "3", "--mapper-arg"])
                .arg(format!("marks={}", marks.display()))
                .args(["--mapper-arg", &format!("chunk_rows={chunk_rows}")]),
        )?);
        crashes = std::fs::read_dir(&marks)?.count();
        let _ = std::fs::remove_dir_all(&out);
        let _ = std::fs::remove_dir_all(&marks);
    }
    let (c, f) = (median(clean), median(crashing));
    println!("case                         rows      clean(s)     crashing(s)  time crashing / clean      target");
    println!(
        "failures (1 crash/10 chunks) {:<9} {c:<12.3} {f:<12.3} {:<26.2} <= 1.15",
        args.rows,
        f / c
    );
    println!(
        "  ({crashes} mapper crashes over {} chunks of {chunk_rows} rows, each retried)",
        args.rows.div_ceil(chunk_rows)
    );
    Ok(())
}

//! `flywheel-bench`: end-to-end benchmarks that run each case beside its baseline in the same
//! run and report ratios (machines are noisy; ratios travel). Data is generated here, seeded.
//!
//! Cases (each beside its baseline; the data is a seeded dialogues table made by
//! examples/data/make_dialogues.py, `--rows` rows):
//! - `data-path`: `flywheel map --mapper builtin:identity --workers 2` against the copy floor —
//!   reading and rewriting the same Parquet file with arrow-rs in one process.
//! - `expand`: the README's expand_dialogue mapper, 2 workers, against the same function in a
//!   plain Python loop, a hand-written `multiprocessing.Pool(2)` over row groups, and HF datasets'
//!   `map(batched=True, num_proc=2)` (`--hf-python` must import `datasets`).
//! - `skew`: 1 ms of CPU per row in the first quarter of the rows, 2 workers, against a static
//!   split into two equal contiguous halves (makespan).
//! - `failures`: expand_dialogue with the mapper process dying half-way through every 10th
//!   chunk, against the same job without crashes.
//! - `python`: a Python identity mapper through `flywheel map --workers 1` against the same
//!   function in a plain Python loop: the protocol's overhead.
//! - `memory`: peak RSS of `flywheel map --mapper builtin:identity --workers 2` over a large JSONL
//!   file and a large Arrow IPC file (2 GB each by default), beside the input size.
//! - `scheduling`: the real coordinator in the simulator: 8 workers of which 2 are 4x slower
//!   (makespan against the ideal and a static split), 1 crash per 10 chunks (wasted work per
//!   crash), and dispatch+completion cycles per second with the memory per pending chunk.
//! - `scale`: the real coordinator at cluster scale (`--workers`, `--chunks`; 1 Hz heartbeats,
//!   10 % slow workers, 1 % crashing attempts, 4 workers lost and 2 GPUs turning sick): wall time,
//!   the coordinator's per-event handling time (p50, p99), peak RSS and makespan over the ideal.
//!   Run on its own (`flywheel-bench scale`), not in the default set.
//! - `mpi-scheduler` (feature `mpi`): dispatch+completion cycles per second of the coordinator
//!   over MPI with `--mpi-ranks` ranks whose workers answer at once.
//!
//! Usage: `benchmarks/run.sh` (builds, installs the Python baselines' packages, runs every case).

mod measure;
#[cfg(feature = "mpi")]
mod mpi_case;
mod mpi_case_gate;
mod python_cases;
mod scale;

use anyhow::{bail, Context, Result};
use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use clap::Parser;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// The flywheel binary to measure (build it with --release).
    #[arg(long, default_value = "target/release/flywheel")]
    flywheel: PathBuf,
    /// Rows in the generated table (and chunks in the scheduling throughput case).
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Runs per case; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Size of the generated files of the memory case, in MB.
    #[arg(long, default_value_t = 2048)]
    memory_mb: u64,
    /// Where to put generated data (default: a temporary directory).
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// Python with pyarrow: mappers, the plain-loop and pool baselines, data generation.
    #[arg(long, default_value = ".venv/bin/python")]
    python: PathBuf,
    /// Python with HF `datasets`, for that baseline (skipped, and said so, without it).
    #[arg(long, default_value = ".venv-bench/bin/python")]
    hf_python: PathBuf,
    /// Rows of the skew case's table.
    #[arg(long, default_value_t = 20_000)]
    skew_rows: usize,
    /// MPI ranks of the mpi-scheduler case (1 coordinator + workers).
    #[arg(long, default_value_t = 4)]
    mpi_ranks: u32,
    /// Chunks the mpi-scheduler case dispatches.
    #[arg(long, default_value_t = 50_000)]
    mpi_chunks: usize,
    /// Workers of the scale case.
    #[arg(long, default_value_t = 8192)]
    workers: usize,
    /// Chunks of the scale case.
    #[arg(long, default_value_t = 1_000_000)]
    chunks: usize,
    /// The scale case checks the coordinator's invariants every this many events (0: at the end).
    #[arg(long, default_value_t = 0)]
    sanity_every: u64,
    /// Cases to run (default: all).
    cases: Vec<String>,
}

/// The repository root (data generation and the Python baselines live there).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Reads and rewrites a Parquet file in one process, as flywheel writes its files (Snappy, row
/// groups of 64 Ki rows): the least work that produces the same table.
fn copy_floor(input: &Path, output: &Path) -> Result<()> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(input)?)?.build()?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_max_row_group_row_count(Some(64 * 1024))
        .build();
    let mut writer: Option<ArrowWriter<std::fs::File>> = None;
    for batch in reader {
        let batch = batch?;
        if writer.is_none() {
            writer = Some(ArrowWriter::try_new(
                std::fs::File::create(output)?,
                batch.schema(),
                Some(props.clone()),
            )?);
        }
        if let Some(w) = writer.as_mut() {
            w.write(&batch)?;
        }
    }
    if let Some(w) = writer {
        w.close()?;
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Writes about `mb` MB of JSONL rows.
fn generate_jsonl(path: &Path, mb: u64) -> Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let (mut written, mut id) = (0u64, 0u64);
    while written < mb << 20 {
        let text = "lorem ipsum dolor ".repeat(1 + (id % 8) as usize);
        let line = format!(
            "{{\"id\":{id},\"topic\":\"topic {}\",\"text\":\"{text}\"}}\n",
            id % 17
        );
        w.write_all(line.as_bytes())?;
        written += line.len() as u64;
        id += 1;
    }
    w.flush()?;
    Ok(())
}

/// Writes the same kind of rows as an Arrow IPC file of about `mb` MB.
fn generate_arrow(path: &Path, mb: u64) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("topic", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
    ]));
    let mut w = arrow::ipc::writer::FileWriter::try_new(std::fs::File::create(path)?, &schema)?;
    let mut id = 0i64;
    while w.get_ref().metadata()?.len() < mb << 20 {
        let n = 65_536;
        let ids: Vec<i64> = (id..id + n).collect();
        let topic: Vec<String> = ids.iter().map(|i| format!("topic {}", i % 17)).collect();
        let text: Vec<String> = ids
            .iter()
            .map(|i| "lorem ipsum dolor ".repeat(1 + (i % 8) as usize))
            .collect();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(topic)),
            Arc::new(StringArray::from(text)),
        ];
        w.write(&RecordBatch::try_new(schema.clone(), cols)?)?;
        id += n;
    }
    w.finish()?;
    Ok(())
}

fn memory_case(args: &Args, dir: &Path) -> Result<()> {
    println!("case    input   input size  workers  peak RSS   wall");
    let jsonl = dir.join("big.jsonl");
    generate_jsonl(&jsonl, args.memory_mb)?;
    let arrow_file = dir.join("big.arrow");
    generate_arrow(&arrow_file, args.memory_mb)?;
    for (name, input) in [("jsonl", &jsonl), ("arrow", &arrow_file)] {
        let size = std::fs::metadata(input)?.len() as f64 / (1 << 20) as f64;
        let out = dir.join(format!("mem-out-{name}"));
        let (wall, rss) = measure::measured(
            Command::new(&args.flywheel)
                .args([
                    "map",
                    "--mapper",
                    "builtin:identity",
                    "--workers",
                    "2",
                    "--json",
                    "--input",
                ])
                .arg(input)
                .arg("--output")
                .arg(&out),
        )?;
        println!("memory  {name:<6}  {size:>7.0} MB   2        {rss:>6.0} MB  {wall:>5.1}s");
        std::fs::remove_dir_all(&out)?;
    }
    std::fs::remove_file(&jsonl)?;
    std::fs::remove_file(&arrow_file)?;
    Ok(())
}

/// Counts live heap bytes, for the memory per pending chunk.
struct Counting;

static ALLOCATED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only adds bookkeeping.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        ALLOCATED.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: ptr was allocated by System with this layout.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn scheduling_case(throughput_chunks: usize) -> Result<()> {
    scheduling_quality()?;
    dispatch_throughput(throughput_chunks)
}

/// The simulator's makespan against the ideal and a static split, and the work a crash wastes.
fn scheduling_quality() -> Result<()> {
    use flywheel_coordinator::sim::{
        simulate, static_split_makespan, SimOutcome, SimSpec, SimWorkerSpec,
    };
    use flywheel_coordinator::CoordinatorConfig;

    let costs: Vec<f64> = (0..2000).map(|i| 1.0 + (i % 5) as f64 * 0.25).collect();
    let mean_cost = costs.iter().sum::<f64>() / costs.len() as f64;
    let mut workers = vec![SimWorkerSpec::healthy(1.0); 8];
    workers[6].speed = 0.25;
    workers[7].speed = 0.25;
    let speeds: Vec<f64> = workers.iter().map(|w| w.speed).collect();
    let ideal = costs.iter().sum::<f64>() / speeds.iter().sum::<f64>();
    // A run that broke an invariant stops early; its makespan would flatter the coordinator.
    let run = |workers: Vec<SimWorkerSpec>, seed: u64| -> Result<SimOutcome> {
        let o = simulate(&SimSpec {
            costs: costs.clone(),
            workers,
            config: CoordinatorConfig {
                max_attempts: 50,
                ..Default::default()
            },
            chunk_timeout: 60.0,
            seed,
            time_limit: 1e7,
        });
        if let Some(v) = &o.violation {
            anyhow::bail!("simulated run (seed {seed}) broke an invariant: {v}");
        }
        anyhow::ensure!(o.completed, "simulated run (seed {seed}) did not complete");
        Ok(o)
    };
    let mut ratios = Vec::new();
    for seed in 0..5 {
        ratios.push(run(workers.clone(), seed)?.makespan / ideal);
    }
    let stat = static_split_makespan(&costs, &speeds) / ideal;
    ratios.sort_by(|a, b| a.total_cmp(b));
    println!("case             measure                          flywheel   static split   target");
    println!(
        "stragglers       makespan / ideal (2000 chunks)   {:<10.3} {:<14.3} <= 1.05",
        ratios[2], stat
    );
    let crashy: Vec<SimWorkerSpec> = (0..8)
        .map(|_| SimWorkerSpec {
            crash: 0.1,
            ..SimWorkerSpec::healthy(1.0)
        })
        .collect();
    let (mut wasted, mut crashes) = (0.0, 0u64);
    for seed in 0..5 {
        let o = run(crashy.clone(), seed)?;
        wasted += o.wasted_units;
        crashes += o.crashes;
    }
    println!(
        "crashes 1 in 10  wasted chunks per crash          {:<10.3} {:<14} <= 1",
        wasted / mean_cost / crashes.max(1) as f64,
        "-"
    );
    Ok(())
}

/// Dispatch + completion cycles through the real state machine (the transport only keeps the
/// assignments), and the memory a pending chunk costs.
fn dispatch_throughput(throughput_chunks: usize) -> Result<()> {
    use flywheel_coordinator::{Coordinator, CoordinatorConfig};
    use flywheel_protocol::{
        ChunkOutput, Rank, ToCoordinator, ToWorker, Transport, TransportError,
    };

    struct Capture(Vec<flywheel_protocol::ChunkTask>);
    impl Transport for Capture {
        fn workers(&self) -> Vec<Rank> {
            vec![Rank(1)]
        }
        fn send(&mut self, _: Rank, m: ToWorker) -> Result<(), TransportError> {
            if let ToWorker::Assign(t) = m {
                self.0.push(t);
            }
            Ok(())
        }
        fn recv_timeout(
            &mut self,
            _: std::time::Duration,
        ) -> Result<Option<(Rank, ToCoordinator)>, TransportError> {
            Ok(None)
        }
    }
    let n = throughput_chunks.max(1);

    let before = ALLOCATED.load(std::sync::atomic::Ordering::Relaxed);
    let plan = flywheel_coordinator::sim::synthetic_slices(n, 1000);
    let mut coord = Coordinator::new(
        CoordinatorConfig {
            speculate: false,
            ..Default::default()
        },
        plan,
    );
    let per_chunk =
        (ALLOCATED.load(std::sync::atomic::Ordering::Relaxed) - before) as f64 / n as f64;
    let mut tx = Capture(Vec::new());
    let now = Instant::now();
    coord.on_message(
        &mut tx,
        Rank(1),
        ToCoordinator::Ready { host: "h".into() },
        now,
    )?;
    let t = Instant::now();
    let mut cycles = 0u64;
    while let Some(task) = tx.0.pop() {
        let out = ChunkOutput {
            rows_in: 1000,
            rows_out: 1000,
            wall_ms: 1,
            worker: 1,
            ..ChunkOutput::none(task.chunk, task.attempt)
        };
        coord.on_message(
            &mut tx,
            Rank(1),
            ToCoordinator::Started {
                chunk: task.chunk,
                attempt: task.attempt,
            },
            now,
        )?;
        coord.on_message(&mut tx, Rank(1), ToCoordinator::Done(out), now)?;
        coord.take_accepted();
        cycles += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    assert!(coord.is_complete(), "every chunk completed");
    println!(
        "throughput       dispatch+completion cycles / s   {:<10.0} {:<14} >= 100000",
        cycles as f64 / secs,
        "-"
    );
    println!(
        "memory           bytes per pending chunk          {:<10.0} {:<14} -",
        per_chunk, "-"
    );
    Ok(())
}

const IDENTITY_PY: &str = "def identity(row):\n    yield row\n";

fn timed(cmd: &mut Command) -> Result<f64> {
    let t = Instant::now();
    let status = cmd.stdout(std::process::Stdio::null()).status()?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(t.elapsed().as_secs_f64())
}

fn python_case(args: &Args, dir: &Path, input: &Path) -> Result<()> {
    std::fs::write(dir.join("mapper.py"), IDENTITY_PY)?;
    let identity = format!("{}:identity", dir.join("mapper.py").display());
    let (mut plain, mut ours) = (Vec::new(), Vec::new());
    for run in 0..args.runs.max(1) {
        plain.push(timed(
            Command::new(&args.python)
                .arg(repo().join("benchmarks/python/plain_loop.py"))
                .arg(input)
                .arg(dir.join(format!("plain-{run}.parquet")))
                .arg(&identity)
                .current_dir(repo().join("benchmarks/python")),
        )?);
        ours.push(timed(
            Command::new(&args.flywheel)
                .args([
                    "map",
                    "--workers",
                    "1",
                    "--chunk-rows",
                    "50000",
                    "--json",
                    "--python",
                ])
                .arg(&args.python)
                .arg("--mapper")
                .arg(&identity)
                .arg("--input")
                .arg(input)
                .arg("--output")
                .arg(dir.join(format!("py-out-{run}"))),
        )?);
    }
    let (p, o) = (median(plain), median(ours));
    println!("case       rows      baseline(s)  flywheel(s)  throughput ratio (flywheel/baseline)");
    println!(
        "python     {:<9} {:<12.3} {:<12.3} {:.2}",
        args.rows,
        p,
        o,
        p / o
    );
    Ok(())
}

fn main() -> Result<()> {
    if std::env::var_os(measure::MEASURE_VAR).is_some() {
        return measure::measure_main();
    }
    let mut args = Args::parse();
    if args.cases.iter().any(|c| c == "mpi-rank") {
        return mpi_case_gate::rank_main(args.rows);
    }
    if args.cases.iter().any(|c| c == "scale") {
        return scale::scale_case(args.workers, args.chunks, args.sanity_every);
    }
    // Absolute paths: some cases run commands in the scratch directory.
    args.python = std::path::absolute(&args.python).unwrap_or(args.python);
    args.hf_python = std::path::absolute(&args.hf_python).unwrap_or(args.hf_python);
    args.flywheel = std::fs::canonicalize(&args.flywheel).unwrap_or(args.flywheel);
    if !args.flywheel.is_file() {
        bail!(
            "{} does not exist; build it with `cargo build --release`",
            args.flywheel.display()
        );
    }
    let tmp = tempfile::tempdir_in(args.scratch.clone().unwrap_or_else(std::env::temp_dir))?;
    let dir = tmp.path();
    let wants = |case: &str| args.cases.is_empty() || args.cases.iter().any(|c| c == case);
    if wants("scheduling") {
        scheduling_case(args.rows)?;
    }
    if wants("memory") {
        memory_case(&args, dir)?;
    }
    if wants("mpi-scheduler") {
        mpi_case_gate::mpi_case(args.mpi_chunks, args.mpi_ranks)?;
    }
    if wants("skew") {
        python_cases::skew_case(&args, dir)?;
    }
    let needs_input = ["python", "expand", "failures", "data-path"];
    if !needs_input.iter().any(|c| wants(c)) {
        return Ok(());
    }
    let input = dir.join("dialogues.parquet");
    python_cases::dialogues(&args, &input, args.rows).context("generating the input")?;
    if wants("python") {
        python_case(&args, dir, &input)?;
    }
    if wants("expand") {
        python_cases::expand_case(&args, dir, &input)?;
    }
    if wants("failures") {
        python_cases::failures_case(&args, dir, &input)?;
    }
    if !wants("data-path") {
        return Ok(());
    }
    let (mut floor, mut ours) = (Vec::new(), Vec::new());
    for run in 0..args.runs.max(1) {
        let t = Instant::now();
        copy_floor(&input, &dir.join(format!("floor-{run}.parquet")))?;
        floor.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let status = Command::new(&args.flywheel)
            .args([
                "map",
                "--mapper",
                "builtin:identity",
                "--workers",
                "2",
                "--chunk-rows",
                "100000",
                "--json",
                "--input",
            ])
            .arg(&input)
            .arg("--output")
            .arg(dir.join(format!("out-{run}")))
            .stdout(std::process::Stdio::null())
            .status()?;
        if !status.success() {
            bail!("flywheel map failed: {status}");
        }
        ours.push(t.elapsed().as_secs_f64());
    }
    let (f, o) = (median(floor), median(ours));
    println!("case       rows      baseline(s)  flywheel(s)  throughput ratio (flywheel/baseline)");
    println!(
        "data-path  {:<9} {:<12.3} {:<12.3} {:.2}   (target >= 0.8)",
        args.rows,
        f,
        o,
        f / o
    );
    Ok(())
}

//! `flywheel-bench`: end-to-end benchmarks that run each case beside its baseline in the same
//! run and report ratios (machines are noisy; ratios travel). Data is generated here, seeded.
//!
//! Case `data-path`: `flywheel map --mapper builtin:identity --workers 2` against the copy floor —
//! reading and rewriting the same Parquet file with arrow-rs in one process.
//!
//! Usage: `cargo run --release -p flywheel-benchmarks -- --flywheel target/release/flywheel`

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
    /// Rows in the generated table.
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Runs per case; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// A seeded table of dialogue-like rows: an id, a topic and a text of varying length.
fn generate(path: &Path, rows: usize) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("topic", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
    ]));
    let mut writer = ArrowWriter::try_new(std::fs::File::create(path)?, schema.clone(), None)?;
    let topics = ["billing", "shipping", "account", "product"];
    let mut state: u64 = 42;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let batch = 65_536;
    for start in (0..rows).step_by(batch) {
        let n = batch.min(rows - start);
        let ids: Vec<i64> = (start..start + n).map(|i| i as i64).collect();
        let topic: Vec<&str> = (0..n).map(|_| topics[(next() % 4) as usize]).collect();
        let text: Vec<String> = (0..n)
            .map(|_| "lorem ipsum dolor ".repeat(1 + (next() % 8) as usize))
            .collect();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(topic)),
            Arc::new(StringArray::from(text)),
        ];
        writer.write(&RecordBatch::try_new(schema.clone(), cols)?)?;
    }
    writer.close()?;
    Ok(())
}

fn copy_floor(input: &Path, output: &Path) -> Result<()> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(input)?)?.build()?;
    let mut writer: Option<ArrowWriter<std::fs::File>> = None;
    for batch in reader {
        let batch = batch?;
        if writer.is_none() {
            writer = Some(ArrowWriter::try_new(
                std::fs::File::create(output)?,
                batch.schema(),
                None,
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

fn main() -> Result<()> {
    let args = Args::parse();
    if !args.flywheel.is_file() {
        bail!(
            "{} does not exist; build it with `cargo build --release`",
            args.flywheel.display()
        );
    }
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("input.parquet");
    generate(&input, args.rows).context("generating the input")?;
    let (mut floor, mut ours) = (Vec::new(), Vec::new());
    for run in 0..args.runs.max(1) {
        let t = Instant::now();
        copy_floor(&input, &dir.path().join(format!("floor-{run}.parquet")))?;
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
            .arg(dir.path().join(format!("out-{run}")))
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
        "data-path  {:<9} {:<12.3} {:<12.3} {:.2}",
        args.rows,
        f,
        o,
        f / o
    );
    Ok(())
}

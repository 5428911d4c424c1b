//! `flywheel rerun TABLE@V`: rebuild a version from its lineage and say whether it matches.

use crate::cli::RerunArgs;
use crate::error::{bad_input, job_failed, CliError, OrBadInput};
use crate::lineage::{mapper_file, Lineage};
use anyhow::anyhow;
use flywheel_explore::Difference;
use flywheel_formats::{Manifest, Table, TableRef};
use flywheel_protocol::{JobOptions, Mode};
use serde_json::Value;
use std::path::PathBuf;

fn mismatch(address: &str, what: String) -> CliError {
    bad_input(anyhow!(
        "lineage mismatch: {what}; {address} cannot be rebuilt as it was, nothing was run"
    ))
}

/// Checks that what the lineage recorded still holds here: the mapper file's hash and the input.
fn check_lineage(address: &str, job: &JobOptions, lineage: &Value) -> Result<String, CliError> {
    if let Some(file) = mapper_file(&job.mapper) {
        let recorded = lineage["mapper"]["sha256"].as_str();
        let now = crate::lineage::file_sha256(&file).map_err(|e| {
            mismatch(
                address,
                format!("the mapper file {} cannot be read ({e})", file.display()),
            )
        })?;
        match recorded {
            Some(r) if r != now => {
                return Err(mismatch(
                    address,
                    format!(
                        "the mapper file {} changed since the version was written (sha256 {} recorded, {} now)",
                        file.display(),
                        &r[..12.min(r.len())],
                        &now[..12]
                    ),
                ))
            }
            _ => {}
        }
    }
    let input = &lineage["input"];
    if let Some(t) = input["table"].as_object() {
        let path = t.get("path").and_then(Value::as_str).unwrap_or_default();
        let version = t.get("version").and_then(Value::as_u64).unwrap_or(0);
        Table::new(path).manifest(Some(version)).map_err(|e| {
            mismatch(
                address,
                format!("its input table {path}@{version} cannot be read ({e})"),
            )
        })?;
        return Ok(format!("{path}@{version}"));
    }
    for f in input["files"].as_array().into_iter().flatten() {
        let path = f["path"].as_str().unwrap_or_default();
        let bytes = f["bytes"].as_u64();
        match std::fs::metadata(path) {
            Err(e) => {
                return Err(mismatch(
                    address,
                    format!("its input file {path} cannot be read ({e})"),
                ))
            }
            Ok(m) if bytes.is_some_and(|b| b != m.len()) => {
                return Err(mismatch(
                    address,
                    format!(
                        "its input file {path} changed ({} bytes recorded, {} now)",
                        bytes.unwrap_or(0),
                        m.len()
                    ),
                ))
            }
            Ok(_) => {}
        }
    }
    Ok(job.input.clone())
}

/// The data files (path, rows) that the job behind version `m` wrote: all of them, or for an
/// append only those the previous version did not have.
fn job_files(t: &Table, m: &Manifest) -> Result<Vec<(PathBuf, u64)>, CliError> {
    let before: std::collections::HashSet<String> = if m.operation == "append" && m.version > 1 {
        t.manifest(Some(m.version - 1))
            .or_bad_input()?
            .files
            .into_iter()
            .map(|f| f.path)
            .collect()
    } else {
        Default::default()
    };
    Ok(m.files
        .iter()
        .zip(t.file_paths(m))
        .filter(|(f, _)| !before.contains(&f.path))
        .map(|(f, p)| (p, f.rows))
        .collect())
}

pub fn rerun(args: RerunArgs) -> Result<(), CliError> {
    let tref = TableRef::parse(&args.table).or_bad_input()?;
    let table_dir = std::fs::canonicalize(&tref.path).unwrap_or_else(|_| tref.path.clone());
    let table = Table::new(&table_dir);
    let manifest = table.manifest(tref.version).or_bad_input()?;
    let address = format!("{}@{}", tref.path.display(), manifest.version);
    let lineage = &manifest.lineage;
    let mut job: JobOptions = serde_json::from_value(lineage["options"].clone()).map_err(|_| {
        bad_input(anyhow!(
            "{address} has no job lineage to rerun (it was not written by a flywheel job)"
        ))
    })?;
    // The output is where the user asked (relative to where they are), or a temporary table
    // removed with its directory at the end.
    let (output, _temp): (PathBuf, Option<tempfile::TempDir>) = match &args.output {
        Some(o) => (std::path::absolute(o).or_bad_input()?, None),
        None => {
            let d = tempfile::Builder::new()
                .prefix("flywheel-rerun-")
                .tempdir()
                .or_bad_input()?;
            (d.path().join("table"), Some(d))
        }
    };
    // Relative paths in the options (mapper file, input, schema file) were relative to the
    // directory the job ran in.
    if let Some(cwd) = lineage["cwd"].as_str() {
        std::env::set_current_dir(cwd)
            .map_err(|e| mismatch(&address, format!("the job's directory {cwd} is gone ({e})")))?;
    }
    let input = check_lineage(&address, &job, lineage)?;
    job.input = input;
    job.output = output.clone();
    job.mode = Mode::Create;
    job.resume = false;
    // An incremental version reruns as an incremental job (its chunks planned per file and
    // seeded from their rows) into a new table, which computes every chunk.
    if job.incremental {
        if let Some(v) = Table::new(&output).latest_version().or_bad_input()? {
            return Err(bad_input(anyhow!(
                "{} already holds a table (version {v}); rerun into a new table",
                output.display()
            )));
        }
    }
    // The version's seed scheme (one recorded none before schemes were): a rerun draws what
    // the version drew.
    job.seed_scheme
        .get_or_insert(flywheel_protocol::SeedScheme::legacy(job.incremental));
    if let Some(w) = args.workers {
        job.workers = w;
    }
    if let Some(p) = &args.python {
        job.python = p.clone();
    }
    eprintln!(
        "rerunning {address}: {} over {} (seed {}, {} rows a chunk)",
        job.mapper, job.input, job.seed, job.chunk_rows
    );
    let mut new_lineage = Lineage::start(None);
    new_lineage.set("rerun_of", serde_json::json!(address));
    let outcome = crate::local::run_embedded(&job, new_lineage, false)?;
    let rebuilt = Table::new(&output);
    let expected = job_files(&table, &manifest)?;
    let got = job_files(&rebuilt, &outcome.manifest)?;
    let rows: u64 = expected.iter().map(|(_, r)| r).sum();
    let diff = flywheel_explore::first_difference(expected, got).or_bad_input()?;
    let kept = match &args.output {
        Some(o) => format!(
            " (rebuilt table: {}@{})",
            o.display(),
            outcome.manifest.version
        ),
        None => String::new(),
    };
    match diff {
        None => {
            println!(
                "rerun of {address} matches: {rows} rows, same columns, same values in the same order{kept}"
            );
            Ok(())
        }
        Some(d) => {
            let what = match d {
                Difference::Schema(s) => format!("different columns: {s}"),
                Difference::Value { row, column } => {
                    format!("first difference at row {row}, column '{column}'")
                }
                Difference::Rows { left, right } => {
                    format!("{left} rows in the version, {right} rebuilt")
                }
            };
            Err(job_failed(anyhow!(
                "rerun of {address} does not match: {what}{kept}"
            )))
        }
    }
}

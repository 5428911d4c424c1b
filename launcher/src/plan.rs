//! What every way of running a job shares: the checks before any worker starts (bad input is
//! exit 2 and nothing runs), the coordinator's loop over whatever transport, and the publish.

use crate::error::{bad_input, job_failed, CliError};
use crate::lineage::Lineage;
use crate::progress::ProgressReporter;
use anyhow::anyhow;
use flywheel_coordinator::{
    drive, publish, Coordinator, CoordinatorConfig, DriveOptions, JobReport, PublishRequest,
};
use flywheel_formats::{plan_chunks, resolve_input, Manifest, Table};
use flywheel_protocol::{InputSlice, JobOptions, MapperSpec, Mode, Transport};
use std::time::Instant;

/// A job that passed its checks.
pub struct Prepared {
    pub job: JobOptions,
    /// The user's output schema as Arrow JSON, when `--schema` was given.
    pub schema: Option<String>,
    pub slices: Vec<InputSlice>,
    pub lineage: Lineage,
}

/// Checks the job and plans its chunks, before any worker starts.
pub fn prepare(mut job: JobOptions, lineage: Lineage) -> Result<Prepared, CliError> {
    match MapperSpec::parse(&job.mapper).map_err(bad_input)? {
        MapperSpec::Python { file, .. } => {
            if !file.is_file() {
                return Err(bad_input(anyhow!(
                    "mapper file {} does not exist",
                    file.display()
                )));
            }
        }
        MapperSpec::Exec { argv } => {
            if !program_exists(&argv[0]) {
                return Err(bad_input(anyhow!(
                    "exec mapper program '{}' is not found (not a file, not on PATH)",
                    argv[0]
                )));
            }
        }
        MapperSpec::Builtin { .. } | MapperSpec::Shipped { .. } => {}
    }
    if let Some(m) = &job.mapper_mem {
        if flywheel_protocol::parse_size(m).is_none() {
            return Err(bad_input(anyhow!(
                "--mapper-mem '{m}' is not a size like 512M or 8G"
            )));
        }
    }
    if job.workers == 0 {
        return Err(bad_input(anyhow!("--workers must be at least 1")));
    }
    if job.max_attempts == 0 {
        return Err(bad_input(anyhow!("--max-attempts must be at least 1")));
    }
    if job.chunk_rows == 0 {
        return Err(bad_input(anyhow!("--chunk-rows must be at least 1")));
    }
    let table = Table::new(&job.output);
    if job.mode == Mode::Create {
        if let Some(v) = table.latest_version().map_err(bad_input)? {
            return Err(bad_input(anyhow!(
                "{} already holds a table (version {v}); use --mode append or --mode overwrite",
                job.output.display()
            )));
        }
    }
    let mut schema = match &job.schema {
        None => None,
        Some(text) => {
            let text = match text.strip_prefix('@') {
                Some(file) => std::fs::read_to_string(file)
                    .map_err(|e| bad_input(anyhow!("--schema @{file}: {e}")))?,
                None => text.clone(),
            };
            let parsed = flywheel_formats::Schema::parse(text.trim()).map_err(bad_input)?;
            Some(flywheel_formats::schema_to_json(&parsed.to_arrow()))
        }
    };
    let input = resolve_input(&job.input).map_err(bad_input)?;
    let slices = plan_chunks(&input, job.chunk_rows).map_err(bad_input)?;
    if let MapperSpec::Shipped { name } = MapperSpec::parse(&job.mapper).map_err(bad_input)? {
        let input_schema = match slices.first() {
            Some(first) => flywheel_formats::read_slice(first, 1)
                .map_err(bad_input)?
                .first()
                .map(|b| b.schema().as_ref().clone())
                .unwrap_or_else(arrow::datatypes::Schema::empty),
            None => arrow::datatypes::Schema::empty(),
        };
        if let Some(text) = crate::shipped::preflight(&mut job, &name, &input_schema)? {
            let parsed = flywheel_formats::Schema::parse(&text).map_err(bad_input)?;
            schema = Some(flywheel_formats::schema_to_json(&parsed.to_arrow()));
            job.schema = Some(text);
        }
    }
    let lineage = lineage.with_input(&job, &input);
    // The output's filesystem must support the commit protocol (shared filesystems differ).
    if !job.output.join("_versions").is_dir() {
        table
            .probe()
            .map_err(|e| bad_input(anyhow!("output {}: {e}", job.output.display())))?;
    }
    Ok(Prepared {
        job,
        schema,
        slices,
        lineage,
    })
}

fn program_exists(program: &str) -> bool {
    if program.contains('/') {
        return std::path::Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// What a finished job left.
pub struct Outcome {
    pub manifest: Manifest,
    pub report: JobReport,
}

/// Runs the coordinator over `tx` to the end and publishes. Nothing is published on failure.
pub fn coordinate(
    prepared: Prepared,
    tx: &mut impl Transport,
    json: bool,
) -> Result<Outcome, CliError> {
    let Prepared {
        job,
        schema,
        slices,
        mut lineage,
    } = prepared;
    let started = Instant::now();
    let cfg = CoordinatorConfig {
        max_attempts: job.max_attempts,
        job_seed: job.seed,
        schema,
        ..CoordinatorConfig::default()
    };
    // The journal makes accepted chunks survive an interruption; --resume continues from it.
    let plan = plan_hash(&job, &slices);
    let rows_total: u64 = slices.iter().map(|s| s.row_count).sum();
    let started_journal = flywheel_coordinator::Journal::start(
        &job.output,
        &plan,
        slices.len(),
        rows_total,
        job.resume,
    );
    let (mut journal, done) = match started_journal {
        Ok(j) => j,
        Err(flywheel_coordinator::JournalError::AlreadyPublished { version, .. }) => {
            // A continuation whose job finished in time after all: nothing is left to do.
            flywheel_coordinator::stop_workers(tx, DriveOptions::default().stop_grace);
            eprintln!("nothing to resume: this job already published version {version}");
            let manifest = Table::new(&job.output)
                .manifest(Some(version))
                .map_err(job_failed)?;
            let coord = Coordinator::new(cfg, Vec::new());
            return Ok(Outcome {
                manifest,
                report: coord.report(started.elapsed()),
            });
        }
        Err(e) => {
            // No worker may be left waiting for chunks (under MPI it would hang the job).
            flywheel_coordinator::stop_workers(tx, DriveOptions::default().stop_grace);
            return Err(match e {
                flywheel_coordinator::JournalError::Io { .. } => job_failed(e),
                _ => bad_input(e),
            });
        }
    };
    if job.resume && !done.is_empty() {
        eprintln!(
            "resuming: {} of {} chunks were done before",
            done.len(),
            slices.len()
        );
    }
    let mut coord = Coordinator::resumed(cfg, slices, done);
    let mut progress = ProgressReporter::new(!json);
    // Claim the output while the job runs, so `table vacuum` leaves its unpublished files alone.
    let active = match Table::new(&job.output).mark_active(&format!(
        "{{\"pid\": {}, \"host\": {:?}}}",
        std::process::id(),
        flywheel_worker::hostname()
    )) {
        Ok(a) => a,
        Err(e) => {
            flywheel_coordinator::stop_workers(tx, DriveOptions::default().stop_grace);
            return Err(job_failed(e));
        }
    };
    let mut touched = Instant::now();
    let drive_options = DriveOptions {
        interrupted: Some(crate::signals::checkpoint_requested),
        checkpoint_grace: std::time::Duration::from_secs(
            std::env::var("FLYWHEEL_CHECKPOINT_GRACE")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(60),
        ),
        ..DriveOptions::default()
    };
    let result = drive(
        &mut coord,
        tx,
        &drive_options,
        &mut |c| {
            progress.update(c.progress());
            if touched.elapsed() > std::time::Duration::from_secs(10) {
                active.touch();
                touched = Instant::now();
            }
        },
        Some(&mut journal),
    );
    progress.finish();
    let report = coord.report(started.elapsed());
    if let Err(e) = result {
        eprint!("{}", report.render());
        if let flywheel_coordinator::CoordinatorError::BadInput(why) = e {
            return Err(bad_input(anyhow!("{why} (nothing was published)")));
        }
        if let flywheel_coordinator::CoordinatorError::Checkpointed { .. } = e {
            return Err(crate::error::CliError {
                code: 3,
                error: anyhow!(
                    "{e}; nothing was published yet; continue with --resume (journal: {})",
                    job.output.join("_journal.jsonl").display()
                ),
            });
        }
        return Err(job_failed(anyhow!(
            "job failed, nothing was published: {e}"
        )));
    }
    lineage.finish();
    lineage.set(
        "slurm_job_ids",
        serde_json::json!(slurm_job_ids(&job.output)),
    );
    let table = Table::new(&job.output);
    let outputs = coord.outputs();
    let provenance = outputs
        .iter()
        .map(|o| {
            // Enough to tell later which chunks a changed input or mapper would affect.
            serde_json::json!({
                "chunk": o.chunk.0,
                "attempt": o.attempt.0,
                "worker": o.worker,
                "host": o.host,
                "gpu": null,
                "input": coord.slice(o.chunk),
                "rows_in": o.rows_in,
                "rows_out": o.rows_out,
                "bytes": o.bytes,
                "wall_ms": o.wall_ms,
                "gpu_seconds": 0.0,
            })
        })
        .collect();
    let report_json = serde_json::to_value(&report).ok();
    let errors: Vec<_> = outputs.iter().filter(|o| o.errors_file.is_some()).collect();
    if !errors.is_empty() {
        let errors_table = Table::new(job.output.join("_errors"));
        let converted: Vec<flywheel_protocol::ChunkOutput> = errors
            .iter()
            .map(|o| flywheel_protocol::ChunkOutput {
                file: o.errors_file.clone(),
                rows_out: o.error_rows,
                bytes: 0,
                ..(**o).clone()
            })
            .collect();
        publish(PublishRequest {
            table: &errors_table,
            mode: Mode::Append,
            outputs: converted.iter().collect(),
            schema: None,
            provenance: Vec::new(),
            lineage: lineage.to_json(),
            report: None,
        })
        .map_err(job_failed)?;
    }
    let manifest = publish(PublishRequest {
        table: &table,
        mode: job.mode,
        outputs,
        schema: coord.schema().map(str::to_string),
        provenance,
        lineage: lineage.to_json(),
        report: report_json,
    })
    .map_err(|e| job_failed(anyhow!("publishing {}: {e}", job.output.display())))?;
    if let Err(e) = journal.published(manifest.version) {
        tracing::warn!("could not record the publish in the journal: {e}");
    }
    Ok(Outcome { manifest, report })
}

/// The Slurm jobs that worked on this output, from the journal (a job continued after its time
/// limit has several).
fn slurm_job_ids(output: &std::path::Path) -> Vec<String> {
    let mut ids = Vec::new();
    for e in flywheel_coordinator::read_journal(output).unwrap_or_default() {
        if let flywheel_coordinator::JournalEntry::Start {
            slurm_job_id: Some(id),
            ..
        } = e
        {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids
}

/// A hash of everything that decides a job's output: the chunk plan, the mapper (and its
/// file's content), the schema, seed and row-error policy. A journal only resumes its own plan.
fn plan_hash(job: &JobOptions, slices: &[InputSlice]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(slices).unwrap_or_default());
    h.update(job.mapper.as_bytes());
    if let Ok(MapperSpec::Python { file, .. }) = MapperSpec::parse(&job.mapper) {
        h.update(std::fs::read(file).unwrap_or_default());
    }
    h.update(
        serde_json::to_vec(&(&job.mapper_args, &job.schema, job.seed, job.on_row_error))
            .unwrap_or_default(),
    );
    hex::encode(h.finalize())
}

/// Prints the end of a job: the report (stderr) and where the table is (stdout), or JSON.
pub fn print_outcome(job: &JobOptions, outcome: &Outcome, json: bool) {
    let path = std::fs::canonicalize(&job.output).unwrap_or_else(|_| job.output.clone());
    if json {
        let v = serde_json::json!({
            "table": path,
            "version": outcome.manifest.version,
            "rows": outcome.manifest.num_rows,
            "files": outcome.manifest.files.len(),
            "report": outcome.report,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        eprint!("{}", outcome.report.render());
        println!(
            "published {}@{} ({} rows in {} files)",
            path.display(),
            outcome.manifest.version,
            outcome.manifest.num_rows,
            outcome.manifest.files.len()
        );
    }
}

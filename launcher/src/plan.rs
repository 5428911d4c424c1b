//! What every way of running a job shares: the checks before any worker starts (bad input is
//! exit 2 and nothing runs), the coordinator's loop over whatever transport, and the publish.

use crate::error::{bad_input, CliError};
use crate::lineage::Lineage;
use crate::progress::ProgressReporter;
use anyhow::anyhow;
use flywheel_coordinator::{
    run_job, DriveOptions, IncrementalPlan, InputIdentity, JobHooks, JobPlan,
};
use flywheel_formats::{plan_chunks_counted, resolve_input, Table, Tail};
use flywheel_protocol::{InputSlice, JobOptions, MapperSpec, Mode, SeedScheme, Transport};

/// A job that passed its checks.
pub struct Prepared {
    pub job: JobOptions,
    /// The user's output schema as Arrow JSON, when `--schema` was given.
    pub schema: Option<String>,
    pub slices: Vec<InputSlice>,
    pub lineage: Lineage,
    /// An incremental job's chunk fingerprints.
    pub incremental: Option<IncrementalPlan>,
    /// The input's root directory (chunks are seeded from paths relative to it).
    pub input_root: String,
}

/// Checks the job and plans its chunks, before any worker starts.
pub fn prepare(job: JobOptions, lineage: Lineage) -> Result<Prepared, CliError> {
    prepare_checked(job, lineage, true)
}

/// [`prepare`]; `probe`: check that the output's filesystem supports the commit protocol (it
/// writes there), which a dry run does not.
pub fn prepare_checked(
    mut job: JobOptions,
    lineage: Lineage,
    probe: bool,
) -> Result<Prepared, CliError> {
    check_options(&mut job)?;
    let table = Table::new(&job.output);
    // A resumed or named job may have created the table itself: the job decides once it knows.
    if job.mode == Mode::Create && !job.resume && job.job_id.is_none() {
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
    // Plain and incremental maps cut the same chunks (each file's depend on it alone); a rerun
    // of a version from before that cuts them as it was cut.
    let tail = match job.seed_scheme {
        None | Some(SeedScheme::InputRows) => Tail::PerFile,
        Some(SeedScheme::ChunkIndex) => Tail::Whole,
        Some(SeedScheme::AbsoluteRows) => Tail::None,
    };
    let slices = plan_chunks_counted(&input, job.chunk_rows, tail)
        .map_err(bad_input)?
        .0;
    if let MapperSpec::Shipped { mapper } = MapperSpec::parse(&job.mapper).map_err(bad_input)? {
        let input_schema = match slices.first() {
            Some(first) => flywheel_formats::read_slice(first, 1)
                .map_err(bad_input)?
                .first()
                .map(|b| b.schema().as_ref().clone())
                .unwrap_or_else(arrow::datatypes::Schema::empty),
            None => arrow::datatypes::Schema::empty(),
        };
        if let Some(text) = crate::shipped::preflight(&mut job, mapper, &input_schema)? {
            let parsed = flywheel_formats::Schema::parse(&text).map_err(bad_input)?;
            schema = Some(flywheel_formats::schema_to_json(&parsed.to_arrow()));
            job.schema = Some(text);
        }
    }
    // Recorded in the lineage (its options), so a rerun of this version seeds as it did.
    job.seed_scheme.get_or_insert(SeedScheme::InputRows);
    let lineage = lineage.with_input(&job, &input);
    let incremental = match job.incremental {
        true => Some(crate::fingerprint::plan(
            &job,
            schema.as_deref(),
            &input,
            &slices,
        )?),
        false => None,
    };
    // The output's filesystem must support the commit protocol (shared filesystems differ).
    if probe && !job.output.join("_versions").is_dir() {
        table
            .probe()
            .map_err(|e| bad_input(anyhow!("output {}: {e}", job.output.display())))?;
    }
    Ok(Prepared {
        job,
        schema,
        slices,
        lineage,
        incremental,
        input_root: input.root.display().to_string(),
    })
}

/// The checks of the options alone (the mapper exists, counts are positive, the job id is
/// valid); an incremental job's mode becomes `overwrite`.
fn check_options(job: &mut JobOptions) -> Result<(), CliError> {
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
    if let Some(d) = job
        .depends_on
        .iter()
        .find(|d| !std::path::Path::new(d).exists())
    {
        return Err(bad_input(anyhow!(
            "--depends-on {d}: no such file or directory"
        )));
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
    if let Some(id) = &job.job_id {
        flywheel_coordinator::check_job_id(id).map_err(|e| bad_input(anyhow!("--job-id: {e}")))?;
    }
    if job.incremental {
        // A version equal to a full map of the input: an overwrite (a create the first time).
        job.mode = match job.mode {
            Mode::Append => {
                return Err(bad_input(anyhow!(
                    "--incremental publishes a version equal to a full map of the input; it cannot be an --mode append"
                )))
            }
            _ => Mode::Overwrite,
        };
    }
    Ok(())
}

fn program_exists(program: &str) -> bool {
    find_program(program).is_some()
}

/// The file a command name runs: a path as given, a bare name looked up on PATH as a shell
/// would.
pub(crate) fn find_program(program: &str) -> Option<std::path::PathBuf> {
    if program.contains('/') {
        return Some(std::path::PathBuf::from(program)).filter(|p| p.is_file());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

pub use flywheel_coordinator::Outcome;

/// Runs the job over `tx` to the end and publishes (the lifecycle lives in the coordinator crate:
/// [`flywheel_coordinator::run_job`]). Nothing is published on failure.
pub fn coordinate(
    prepared: Prepared,
    tx: &mut impl Transport,
    json: bool,
) -> Result<Outcome, CliError> {
    let Prepared {
        job,
        schema,
        slices,
        lineage,
        incremental,
        input_root,
    } = prepared;
    let inputs = input_identities(&slices);
    let plan = plan_hash(&job, &slices, &inputs, &lineage);
    let mut progress = ProgressReporter::new(!json);
    let drive = DriveOptions {
        interrupted: Some(crate::signals::checkpoint_requested),
        checkpoint_grace: std::time::Duration::from_secs(
            std::env::var("FLYWHEEL_CHECKPOINT_GRACE")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(60),
        ),
        ..DriveOptions::default()
    };
    let result = run_job(
        JobPlan {
            job,
            schema,
            slices,
            plan,
            inputs,
            lineage: lineage.to_json(),
            incremental,
            input_root,
        },
        tx,
        JobHooks {
            drive,
            on_progress: &mut |c| progress.update(c.progress()),
            say: &mut |line| eprintln!("{line}"),
        },
    );
    progress.finish();
    result.map_err(CliError::from)
}

/// Each planned input file's size and modification time, once per file.
fn input_identities(slices: &[InputSlice]) -> Vec<InputIdentity> {
    let mut seen = std::collections::BTreeSet::new();
    slices
        .iter()
        .filter(|s| seen.insert(s.path.clone()))
        .filter_map(|s| InputIdentity::of(std::path::Path::new(&s.path)).ok())
        .collect()
}

/// A hash of everything that decides a job's output: the chunk plan, each input file's identity
/// (size, modification time) and the input table's version, the mapper (and its file's content),
/// the schema, seed and row-error policy. A journal only resumes its own plan.
fn plan_hash(
    job: &JobOptions,
    slices: &[InputSlice],
    inputs: &[InputIdentity],
    lineage: &Lineage,
) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(slices).unwrap_or_default());
    h.update(serde_json::to_vec(inputs).unwrap_or_default());
    h.update(serde_json::to_vec(&lineage.to_json()["input"]["table"]).unwrap_or_default());
    h.update(job.mapper.as_bytes());
    if let Some(file) = crate::lineage::mapper_file(&job.mapper) {
        h.update(std::fs::read(file).unwrap_or_default());
    }
    h.update(
        serde_json::to_vec(&(&job.mapper_args, &job.schema, job.seed, job.on_row_error))
            .unwrap_or_default(),
    );
    if job.incremental {
        // Its chunks are planned and seeded otherwise.
        h.update(b"incremental");
    }
    hex::encode(h.finalize())
}

/// Prints the end of a job: the report (stderr) and where the table is (stdout), or JSON.
pub fn print_outcome(job: &JobOptions, outcome: &Outcome, json: bool) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let path = std::fs::canonicalize(&job.output).unwrap_or_else(|_| job.output.clone());
    if json {
        let v = serde_json::json!({
            "table": path,
            "job_id": outcome.job_id,
            "already_published": outcome.already_published,
            "version": outcome.manifest.version,
            "rows": outcome.manifest.num_rows,
            "files": outcome.manifest.files.len(),
            "report": outcome.report,
        });
        // A closed stdout (`| head`) must not turn a published job into a panic.
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_default()
        );
    } else if outcome.already_published {
        let _ = writeln!(
            out,
            "already published {}@{} by job {} ({} rows in {} files)",
            path.display(),
            outcome.manifest.version,
            outcome.job_id,
            outcome.manifest.num_rows,
            outcome.manifest.files.len()
        );
    } else {
        eprint!("{}", outcome.report.render());
        let _ = writeln!(
            out,
            "published {}@{} ({} rows in {} files)",
            path.display(),
            outcome.manifest.version,
            outcome.manifest.num_rows,
            outcome.manifest.files.len()
        );
    }
}

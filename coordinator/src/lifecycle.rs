//! A job from start to publish: the one place where a job's effects on its output table are
//! decided. `flywheel map` (threads) and `flywheel run` (MPI ranks) both call [`run_job`].
//!
//! ```text
//!  table lock (shared) ─▶ finish _errors of earlier jobs ─▶ which job? (new, or the one resumed)
//!        │                                                          │
//!        ▼                                                          ▼
//!  job lock (exclusive, else "held by pid P on H") ─▶ published already? ── yes ─▶ done, exit 0
//!        │ no
//!        ▼
//!  checks (create on a table, damaged version to append to, plan and inputs of the journal)
//!        ▼
//!  journal Start ─▶ drive the workers (each accepted chunk journaled) ─▶ publish: ONE commit
//!        (main manifest with job id + error files) ─▶ journal Published ─▶ _errors derived
//! ```
//!
//! The commit point is the `link(2)` of the main manifest. Everything before it can be redone;
//! everything after it is either idempotent (the journal's `Published` line) or derived from the
//! manifest (the `_errors` table's version), which any later job on the table completes.

use crate::{
    drive, publish_once, Coordinator, CoordinatorConfig, CoordinatorError, DriveOptions, JobReport,
    Journal, JournalError, PublishRequest,
};
use flywheel_formats::{DataFile, FormatError, Manifest, Table};
use flywheel_protocol::{ChunkOutput, InputSlice, JobOptions, Mode, Transport};
use std::time::{Duration, Instant};

pub use crate::journal::InputIdentity;

/// How long a starting job waits for a running `table vacuum` to finish.
const VACUUM_WAIT: Duration = Duration::from_secs(120);

/// A job that passed its checks, ready to run.
pub struct JobPlan {
    pub job: JobOptions,
    /// The user's (or a shipped mapper's) output schema, Arrow JSON.
    pub schema: Option<String>,
    pub slices: Vec<InputSlice>,
    /// Hash of everything that decides the output (chunks, inputs' identity, mapper, options).
    pub plan: String,
    /// The input files as planned.
    pub inputs: Vec<InputIdentity>,
    /// The lineage so far (a JSON object); the job adds its end, id and Slurm jobs.
    pub lineage: serde_json::Value,
}

/// What a finished job left.
pub struct Outcome {
    pub manifest: Manifest,
    pub report: JobReport,
    /// The job had published before (a resume or repeat found its version): nothing new.
    pub already_published: bool,
    pub job_id: String,
}

/// Why a job ended without publishing.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job or its input is wrong; nothing ran, or the input itself failed a chunk.
    #[error("{0}")]
    BadInput(String),
    /// Another process runs this job now.
    #[error("job {job_id} is already running: {holder}; wait for it, or stop it first")]
    Busy { job_id: String, holder: String },
    /// The job ran and failed; nothing was published.
    #[error("job failed, nothing was published: {0}")]
    Failed(String),
    /// A signal asked the job to stop; its accepted chunks are journaled.
    #[error("{reason}; nothing was published yet; continue with --resume (journal: {journal})")]
    Checkpointed { reason: String, journal: String },
}

impl JobError {
    /// The exit status a command reports for this error: 2 bad input, 1 failed, 3 checkpointed.
    pub fn exit_code(&self) -> i32 {
        match self {
            JobError::BadInput(_) | JobError::Busy { .. } => 2,
            JobError::Failed(_) => 1,
            JobError::Checkpointed { .. } => 3,
        }
    }
}

/// Hooks of the caller: progress display and informational lines.
pub struct JobHooks<'a> {
    pub drive: DriveOptions,
    pub on_progress: &'a mut dyn FnMut(&Coordinator),
    /// One line for the user (stderr), e.g. "resuming: 3 of 10 chunks were done before".
    pub say: &'a mut dyn FnMut(&str),
}

/// Stops the workers when dropped, on every path out of [`run_job`], unless already stopped.
struct StopGuard<'t, T: Transport> {
    tx: &'t mut T,
    grace: Duration,
    stopped: bool,
}

impl<T: Transport> StopGuard<'_, T> {
    fn stop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            crate::stop_workers(self.tx, self.grace);
        }
    }
}

impl<T: Transport> Drop for StopGuard<'_, T> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The outcome of a job that had published before this run: nothing ran.
fn published_before(
    manifest: Manifest,
    job_id: String,
    cfg: CoordinatorConfig,
    started: Instant,
) -> Outcome {
    Outcome {
        manifest,
        report: Coordinator::new(cfg, Vec::new()).report(started.elapsed()),
        already_published: true,
        job_id,
    }
}

/// Checks a user-given job id.
pub fn check_job_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        || id.starts_with('.')
    {
        return Err(format!(
            "job id '{id}' must be 1 to 64 letters, digits, '.', '_' or '-' (not starting with '.')"
        ));
    }
    Ok(())
}

/// A fresh job id: time, host and process, hashed short.
fn new_job_id() -> String {
    use std::hash::{Hash, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (nanos, std::process::id(), flywheel_protocol::hostname()).hash(&mut h);
    format!("{:x}-{:016x}", nanos / 1_000_000_000, h.finish())
}

fn format_err(e: FormatError) -> JobError {
    JobError::Failed(e.to_string())
}

/// Which job this run is: its id, and the journal it continues (if any).
fn resolve_job(
    table: &Table,
    job: &JobOptions,
    say: &mut dyn FnMut(&str),
) -> Result<(String, Option<crate::JobRecord>), JobError> {
    let dir = table.dir();
    let journal_err = |e: JournalError| JobError::Failed(e.to_string());
    if let Some(id) = &job.job_id {
        check_job_id(id).map_err(JobError::BadInput)?;
        if let Some(rec) = crate::job_record(dir, id).map_err(journal_err)? {
            return Ok((id.clone(), Some(rec)));
        }
        if !job.resume {
            return Ok((id.clone(), None));
        }
    }
    if !job.resume {
        return Ok((job.job_id.clone().unwrap_or_else(new_job_id), None));
    }
    let Some(rec) = crate::latest_job(dir).map_err(journal_err)? else {
        say("no interrupted job to resume here: starting a new job");
        return Ok((job.job_id.clone().unwrap_or_else(new_job_id), None));
    };
    let rec_id = rec.start().and_then(|s| s.job_id.map(str::to_string));
    if let (Some(id), Some(_)) = (&job.job_id, rec.published()) {
        // A named job that recorded nothing yet, after a finished one: it is a new job, never
        // mistaken for the finished one.
        say(&format!(
            "job {id} has no journal here yet (the last job here finished): starting it"
        ));
        return Ok((id.clone(), None));
    }
    if let Some(v) = rec.published() {
        // The last recorded job finished. A job started after it that was stopped before its
        // journal existed left only its lock file: that is the job to run now, never dropped.
        let finished_at = std::fs::metadata(&rec.path).and_then(|m| m.modified()).ok();
        let later = table
            .unrecorded_jobs()
            .into_iter()
            .filter(|(_, at)| finished_at.is_none_or(|f| *at >= f))
            .max_by_key(|(_, at)| *at);
        if let Some((id, _)) = later {
            say(&format!(
                "the last job here{} finished and published version {v}; job {id}, started after it, stopped before it recorded anything: starting it as a new job",
                rec_id.as_deref().map(|i| format!(" ({i})")).unwrap_or_default()
            ));
            return Ok((id, None));
        }
        return match rec_id {
            // Its version is found under the lock: nothing to resume.
            Some(id) => Ok((id, Some(rec))),
            None => Err(JobError::BadInput(format!(
                "nothing to resume: the last job writing {} finished and published version {v}; run without --resume to start a new job",
                dir.display()
            ))),
        };
    }
    match rec_id {
        Some(id) => Ok((id, Some(rec))),
        // A journal from before job ids: continue it under a new id.
        None => Ok((job.job_id.clone().unwrap_or_else(new_job_id), Some(rec))),
    }
}

/// Runs a job to its end over `tx`: at most one version is published per job id, whatever is
/// killed when. Workers are stopped on every path out.
pub fn run_job(
    plan: JobPlan,
    tx: &mut impl Transport,
    hooks: JobHooks<'_>,
) -> Result<Outcome, JobError> {
    let JobHooks {
        drive: drive_options,
        on_progress,
        say,
    } = hooks;
    let mut guard = StopGuard {
        tx,
        grace: drive_options.stop_grace,
        stopped: false,
    };
    let JobPlan {
        job,
        schema,
        slices,
        plan,
        inputs,
        mut lineage,
    } = plan;
    let started = Instant::now();
    let table = Table::new(&job.output);
    std::fs::create_dir_all(&job.output)
        .map_err(|e| JobError::Failed(format!("{}: {e}", job.output.display())))?;
    // Held until the end: no vacuum deletes what this job writes or has verified.
    let _table_lock = table.lock_for_job(VACUUM_WAIT).map_err(format_err)?;
    let errors_table = Table::new(job.output.join("_errors"));
    let _errors_lock = match job.on_row_error {
        flywheel_protocol::RowErrorPolicy::Skip => {
            Some(errors_table.lock_for_job(VACUUM_WAIT).map_err(format_err)?)
        }
        flywheel_protocol::RowErrorPolicy::Fail => None,
    };
    complete_errors(&table)
        .map_err(|e| JobError::Failed(format!("{}/_errors: {e}", job.output.display())))?;

    let (job_id, record) = resolve_job(&table, &job, say)?;
    let _job_lock = table.lock_job(&job_id).map_err(|e| match e {
        FormatError::Locked { holder, .. } => JobError::Busy {
            job_id: job_id.clone(),
            holder,
        },
        e => format_err(e),
    })?;
    crate::crash_point("job-locked");
    // Re-read under the lock: another process may have run this job meanwhile.
    let record = match record {
        Some(_) => crate::job_record(job.output.as_path(), &job_id)
            .map_err(|e| JobError::Failed(e.to_string()))?
            .or(record),
        None => None,
    };
    let cfg = CoordinatorConfig {
        max_attempts: job.max_attempts,
        job_seed: job.seed,
        schema,
        ..CoordinatorConfig::default()
    };
    if let Some(manifest) = table.job_manifest(&job_id, None).map_err(format_err)? {
        // Published before: killed between the commit and its bookkeeping, or run again.
        guard.stop();
        let v = manifest.version;
        if let Some(rec) = &record {
            if rec.published().is_none() {
                if let Ok(mut j) = Journal::reopen(&rec.path) {
                    let _ = j.published(v);
                }
            }
        }
        complete_errors(&table).map_err(|e| JobError::Failed(e.to_string()))?;
        say(&format!(
            "nothing to resume: job {job_id} already published version {v}"
        ));
        return Ok(published_before(manifest, job_id, cfg, started));
    }
    if let Some(v) = record.as_ref().and_then(|r| r.published()) {
        // The journal says so, though the version itself is gone (vacuumed since).
        guard.stop();
        say(&format!(
            "nothing to resume: job {job_id} already published version {v} (no longer kept)"
        ));
        let latest = table.latest_version().map_err(format_err)?;
        let manifest = table.manifest(latest).map_err(format_err)?;
        return Ok(published_before(manifest, job_id, cfg, started));
    }
    if job.mode == Mode::Create {
        if let Some(v) = table.latest_version().map_err(format_err)? {
            return Err(JobError::BadInput(
                FormatError::TableExists {
                    path: job.output.clone(),
                    version: v,
                }
                .to_string(),
            ));
        }
    }
    if job.mode == Mode::Append {
        if let Some(v) = table.latest_version().map_err(format_err)? {
            let m = table.manifest(Some(v)).map_err(format_err)?;
            table
                .check_files(&m)
                .map_err(|e| JobError::BadInput(e.to_string()))?;
        }
    }
    let mut done = Vec::new();
    if let Some(rec) = &record {
        rec.check_plan(&plan)
            .map_err(|e| JobError::BadInput(e.to_string()))?;
        done = rec.verified_outputs(&job.output);
    }
    let rows_total: u64 = slices.iter().map(|s| s.row_count).sum();
    let mut journal = Journal::open(
        &job.output,
        &crate::journal::StartLine {
            plan: &plan,
            job_id: &job_id,
            inputs: &inputs,
            chunks: slices.len(),
            rows: rows_total,
        },
        record.is_some(),
    )
    .map_err(|e| JobError::Failed(e.to_string()))?;
    crate::crash_point("journal-started");
    // A journal from before job ids lives elsewhere: carry what it accepted into this one.
    if let Some(rec) = record.as_ref().filter(|r| r.path != journal.path()) {
        for o in &done {
            journal
                .accept(o)
                .map_err(|e| JobError::Failed(e.to_string()))?;
        }
        tracing::info!("continuing {} as job {job_id}", rec.path.display());
    }
    if record.is_some() {
        say(&format!(
            "resuming: {} of {} chunks were done before",
            done.len(),
            slices.len()
        ));
    }
    let mut coord = Coordinator::resumed(cfg, slices, done);
    // The marker tells `status` and older vacuums that a job runs here.
    let active = table
        .mark_active(
            &serde_json::json!({
                "pid": std::process::id(),
                "host": flywheel_protocol::hostname(),
                "job_id": job_id,
            })
            .to_string(),
        )
        .map_err(format_err)?;
    let mut touched = Instant::now();
    let result = drive(
        &mut coord,
        guard.tx,
        &drive_options,
        &mut |c| {
            on_progress(c);
            if touched.elapsed() > Duration::from_secs(10) {
                active.touch();
                touched = Instant::now();
            }
        },
        Some(&mut journal),
    );
    // drive() stopped the workers.
    guard.stopped = true;
    let report = coord.report(started.elapsed());
    if let Err(e) = result {
        eprint!("{}", report.render());
        return Err(match e {
            CoordinatorError::BadInput(why) => {
                JobError::BadInput(format!("{why} (nothing was published)"))
            }
            CoordinatorError::Checkpointed { .. } => JobError::Checkpointed {
                reason: e.to_string(),
                journal: journal.path().display().to_string(),
            },
            e => JobError::Failed(e.to_string()),
        });
    }
    // The Slurm jobs that worked on this job: those of its earlier runs, and this one.
    let mut slurm_job_ids = record
        .as_ref()
        .map(|r| r.slurm_job_ids())
        .unwrap_or_default();
    if let Ok(id) = std::env::var("SLURM_JOB_ID") {
        if !slurm_job_ids.contains(&id) {
            slurm_job_ids.push(id);
        }
    }
    if let serde_json::Value::Object(map) = &mut lineage {
        map.insert(
            "finished_at".into(),
            serde_json::json!(
                humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
            ),
        );
        map.insert("job_id".into(), serde_json::json!(job_id));
        map.insert("slurm_job_ids".into(), serde_json::json!(slurm_job_ids));
    }
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
                "input": coord.slice(o.chunk),
                "rows_in": o.rows_in,
                "rows_out": o.rows_out,
                "bytes": o.bytes,
                "wall_ms": o.wall_ms,
            })
        })
        .collect();
    let errors = error_files(&job.output, &outputs).map_err(format_err)?;
    crate::crash_point("before-publish");
    let published = publish_once(PublishRequest {
        table: &table,
        mode: job.mode,
        outputs,
        schema: coord.schema().map(str::to_string),
        provenance,
        lineage,
        report: serde_json::to_value(&report).ok(),
        job_id: Some(job_id.clone()),
        errors,
    })
    .map_err(|e| match e {
        CoordinatorError::Publish(e @ FormatError::DamagedVersion { .. }) => {
            JobError::BadInput(e.to_string())
        }
        e => JobError::Failed(format!("publishing {}: {e}", job.output.display())),
    })?;
    crate::crash_point("published");
    if let Err(e) = journal.published(published.manifest.version) {
        tracing::warn!("could not record the publish in the journal: {e}");
    }
    crate::crash_point("journal-closed");
    if let Err(e) = complete_errors(&table) {
        tracing::warn!(
            "{}/_errors: {e}; the next job on this table completes it",
            job.output.display()
        );
    }
    crate::crash_point("errors-published");
    drop(active);
    Ok(Outcome {
        manifest: published.manifest,
        report,
        already_published: published.already,
        job_id,
    })
}

/// The `_errors` files of accepted outputs, as entries of the main manifest.
fn error_files(
    out: &std::path::Path,
    outputs: &[&ChunkOutput],
) -> Result<Vec<DataFile>, FormatError> {
    let mut files = Vec::new();
    for o in outputs {
        if let Some(f) = &o.errors_file {
            let path = format!("_errors/{f}");
            let bytes = std::fs::metadata(out.join(&path))
                .map_err(|e| FormatError::Io {
                    path: out.join(&path),
                    source: e,
                })?
                .len();
            files.push(DataFile {
                path,
                rows: o.error_rows,
                bytes,
                provenance: Some(serde_json::json!({"chunk": o.chunk.0, "attempt": o.attempt.0})),
                stats: None,
            });
        }
    }
    Ok(files)
}

/// Brings `TABLE/_errors` up to date with the main table: every main version that lists error
/// files gets one `_errors` version (an append carrying the same job id), in version order.
/// Idempotent, and safe to run from several processes at once.
pub fn complete_errors(table: &Table) -> Result<(), CoordinatorError> {
    let errors_table = Table::new(table.dir().join("_errors"));
    // Error files are only ever written under _errors/data: without it there is nothing to do.
    if !errors_table.data_dir().is_dir() {
        return Ok(());
    }
    let derived = errors_table.versions()?;
    let mut seen = std::collections::HashSet::new();
    let mut upto = 0;
    for v in &derived {
        if let Ok(m) = errors_table.manifest(Some(*v)) {
            if let Some(id) = m.job_id {
                seen.insert(id);
            }
            upto = upto.max(m.lineage["table_version"].as_u64().unwrap_or(0));
        }
    }
    for v in table.versions()?.into_iter().filter(|v| *v > upto) {
        let m = match table.manifest(Some(v)) {
            Ok(m) => m,
            Err(FormatError::VersionMissing { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let (Some(id), false) = (&m.job_id, m.errors.is_empty()) else {
            continue;
        };
        if seen.contains(id) {
            continue;
        }
        let outputs: Vec<ChunkOutput> = m
            .errors
            .iter()
            .map(|f| ChunkOutput {
                chunk: flywheel_protocol::ChunkId(0),
                attempt: flywheel_protocol::Attempt(1),
                file: f.path.strip_prefix("_errors/").map(str::to_string),
                rows_in: 0,
                rows_out: f.rows,
                bytes: f.bytes,
                schema: None,
                wall_ms: 0,
                errors_file: None,
                error_rows: 0,
                stats: None,
                worker: 0,
                host: String::new(),
            })
            .collect();
        let mut lineage = m.lineage.clone();
        if let serde_json::Value::Object(map) = &mut lineage {
            map.insert("table_version".into(), serde_json::json!(v));
        }
        publish_once(PublishRequest {
            table: &errors_table,
            mode: Mode::Append,
            outputs: outputs.iter().collect(),
            schema: None,
            provenance: Vec::new(),
            lineage,
            report: None,
            job_id: Some(id.clone()),
            errors: Vec::new(),
        })?;
    }
    Ok(())
}

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

use crate::commit::{finished_lineage, publish_job};
use crate::{
    complete_errors, drive, BadJob, Coordinator, CoordinatorConfig, CoordinatorError, DriveOptions,
    IncrementalPlan, JobError, JobReport, Journal, Reuse,
};
use flywheel_formats::{FormatError, Manifest, Table};
use flywheel_protocol::{InputSlice, JobOptions, Mode, Transport};
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
    /// For an incremental job: each chunk's fingerprint (see [`crate::plan_reuse`]).
    pub incremental: Option<IncrementalPlan>,
    /// The input's root directory (see [`flywheel_protocol::SeedScheme::InputRows`]).
    pub input_root: String,
}

/// What a finished job left.
pub struct Outcome {
    pub manifest: Manifest,
    pub report: JobReport,
    /// The job had published before (a resume or repeat found its version): nothing new.
    pub already_published: bool,
    pub job_id: String,
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

/// A table error outside the commit: the job fails.
pub(crate) fn table_err(e: FormatError) -> JobError {
    CoordinatorError::Table(e).into()
}

/// Which job this run is: its id, and the journal it continues (if any).
fn resolve_job(
    table: &Table,
    job: &JobOptions,
    say: &mut dyn FnMut(&str),
) -> Result<(String, Option<crate::JobRecord>), JobError> {
    let dir = table.dir();
    if let Some(id) = &job.job_id {
        check_job_id(id).map_err(BadJob::JobId)?;
        if let Some(rec) = crate::job_record(dir, id)? {
            return Ok((id.clone(), Some(rec)));
        }
        if !job.resume {
            return Ok((id.clone(), None));
        }
    }
    if !job.resume {
        return Ok((job.job_id.clone().unwrap_or_else(new_job_id), None));
    }
    let Some(rec) = crate::latest_job(dir)? else {
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
            None => Err(BadJob::NothingToResume {
                dir: dir.to_path_buf(),
                version: v,
            }
            .into()),
        };
    }
    match rec_id {
        Some(id) => Ok((id, Some(rec))),
        // A journal from before job ids: continue it under a new id.
        None => Ok((job.job_id.clone().unwrap_or_else(new_job_id), Some(rec))),
    }
}

/// The scheduling core's settings for `job`.
fn coordinator_config(
    job: &JobOptions,
    schema: Option<String>,
    input_root: String,
) -> CoordinatorConfig {
    CoordinatorConfig {
        max_attempts: job.max_attempts,
        job_seed: job.seed,
        schema,
        seed_scheme: job
            .seed_scheme
            .unwrap_or(flywheel_protocol::SeedScheme::InputRows),
        input_root,
        ..CoordinatorConfig::default()
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
    // Notes the files the workers write, so that the job removes those it does not publish.
    let mut tx = crate::own_files::Recording::new(tx);
    let mut guard = StopGuard {
        tx: &mut tx,
        grace: drive_options.stop_grace,
        stopped: false,
    };
    let JobPlan {
        job,
        schema,
        slices,
        plan,
        inputs,
        lineage,
        incremental,
        input_root,
    } = plan;
    let started = Instant::now();
    let table = Table::new(&job.output);
    // Held until the end: no vacuum deletes what this job writes or has verified.
    let _locks = lock_tables(&table, &job)?;
    let (job_id, record) = resolve_job(&table, &job, say)?;
    let _job_lock = table.lock_job(&job_id).map_err(|e| match e {
        FormatError::Locked { holder, .. } => JobError::Busy {
            job_id: job_id.clone(),
            holder,
        },
        e => table_err(e),
    })?;
    crate::crash_point("job-locked");
    // Re-read under the lock: another process may have run this job meanwhile.
    let record = match record {
        Some(_) => crate::job_record(job.output.as_path(), &job_id)?.or(record),
        None => None,
    };
    let cfg = coordinator_config(&job, schema, input_root);
    if let Some(manifest) = published_version(&table, &job_id, record.as_ref(), say)? {
        // Published before: killed between the commit and its bookkeeping, or run again.
        guard.stop();
        return Ok(published_before(manifest, job_id, cfg, started));
    }
    check_target(&table, &job)?;
    let reuse = reuse_chunks(&table, incremental.as_ref(), say)?;
    let (mut journal, mut done) = open_journal(
        &job,
        &job_id,
        (&plan, &inputs, &slices),
        reuse.as_ref(),
        &record,
        say,
    )?;
    if let Some(r) = &reuse {
        r.merge_into(&mut done);
    }
    let mut coord = Coordinator::resumed(cfg, slices, done);
    let active = mark_active(&table, &job_id)?;
    let result = drive_job(
        &mut coord,
        guard.tx,
        &drive_options,
        on_progress,
        &mut journal,
        &|| active.touch(),
    );
    // drive() stopped the workers.
    guard.stopped = true;
    let report = coord.report(started.elapsed());
    if let Err(e) = result {
        eprint!("{}", report.render());
        return Err(e);
    }
    let lineage = finished_lineage(lineage, &job_id, record.as_ref());
    let inc = incremental.as_ref().zip(reuse.as_ref());
    let published = publish_job(&table, &job, &coord, &report, lineage, &job_id, inc)?;
    record_published(&mut journal, &table, published.manifest.version);
    crate::own_files::remove_unreferenced(&table, &published.manifest, &guard.tx.written);
    drop(active);
    Ok(Outcome {
        manifest: published.manifest,
        report,
        already_published: published.already,
        job_id,
    })
}

/// The marker that tells `status` and older vacuums that a job runs here.
fn mark_active(table: &Table, job_id: &str) -> Result<flywheel_formats::ActiveJob, JobError> {
    let who = serde_json::json!({
        "pid": std::process::id(),
        "host": flywheel_protocol::hostname(),
        "job_id": job_id,
    });
    table.mark_active(&who.to_string()).map_err(table_err)
}

/// The bookkeeping after the commit, each step idempotent: the journal's `Published` line,
/// then the `_errors` table (which any later job completes when this one cannot).
fn record_published(journal: &mut Journal, table: &Table, version: u64) {
    crate::crash_point("published");
    if let Err(e) = journal.published(version) {
        tracing::warn!("could not record the publish in the journal: {e}");
    }
    crate::crash_point("journal-closed");
    complete_errors_or_warn(table);
    crate::crash_point("errors-published");
}

/// Brings `_errors` up to date once the main table's version is published; a failure then is
/// a warning, not the job's: the version stands, and the next job on the table completes it.
fn complete_errors_or_warn(table: &Table) {
    if let Err(e) = complete_errors(table) {
        tracing::warn!(
            "{}/_errors: {e}; the next job on this table completes it",
            table.dir().display()
        );
    }
}

/// Creates the output directory and takes the job's shared locks on the table (and on its
/// `_errors` table when rows may be skipped); brings `_errors` up to date with earlier jobs.
fn lock_tables(
    table: &Table,
    job: &JobOptions,
) -> Result<(flywheel_formats::Lock, Option<flywheel_formats::Lock>), JobError> {
    std::fs::create_dir_all(&job.output).map_err(|source| {
        JobError::from(CoordinatorError::Io {
            path: job.output.clone(),
            source,
        })
    })?;
    let table_lock = table.lock_for_job(VACUUM_WAIT).map_err(table_err)?;
    let errors_lock = match job.on_row_error {
        flywheel_protocol::RowErrorPolicy::Skip => Some(
            Table::new(job.output.join("_errors"))
                .lock_for_job(VACUUM_WAIT)
                .map_err(table_err)?,
        ),
        flywheel_protocol::RowErrorPolicy::Fail => None,
    };
    complete_errors(table).map_err(|source| JobError::ErrorsTable {
        table: job.output.clone(),
        source: Box::new(source),
    })?;
    Ok((table_lock, errors_lock))
}

/// The version job `job_id` published before, if it did (its bookkeeping completed): the
/// journal's `Published` line written, `_errors` brought up to date.
fn published_version(
    table: &Table,
    job_id: &str,
    record: Option<&crate::JobRecord>,
    say: &mut dyn FnMut(&str),
) -> Result<Option<Manifest>, JobError> {
    if let Some(manifest) = table.job_manifest(job_id, None).map_err(table_err)? {
        let v = manifest.version;
        if let Some(rec) = record.filter(|r| r.published().is_none()) {
            if let Ok(mut j) = Journal::reopen(&rec.path) {
                let _ = j.published(v);
            }
        }
        complete_errors_or_warn(table);
        say(&format!(
            "nothing to resume: job {job_id} already published version {v}"
        ));
        return Ok(Some(manifest));
    }
    let Some(v) = record.and_then(|r| r.published()) else {
        return Ok(None);
    };
    // The journal says so, though the version itself is gone (vacuumed since).
    say(&format!(
        "nothing to resume: job {job_id} already published version {v} (no longer kept)"
    ));
    let latest = table.latest_version().map_err(table_err)?;
    Ok(Some(table.manifest(latest).map_err(table_err)?))
}

/// The output table takes the job: `--mode create` finds no table, an append finds the
/// version it builds on whole.
fn check_target(table: &Table, job: &JobOptions) -> Result<(), JobError> {
    table
        .check_no_foreign_delta()
        .map_err(|e| JobError::from(BadJob::Target(e)))?;
    let Some(v) = table.latest_version().map_err(table_err)? else {
        return Ok(());
    };
    match job.mode {
        Mode::Create => Err(BadJob::Target(FormatError::TableExists {
            path: job.output.clone(),
            version: v,
        })
        .into()),
        Mode::Append => {
            let m = table.manifest(Some(v)).map_err(table_err)?;
            table.check_files(&m).map_err(|e| BadJob::Target(e).into())
        }
        Mode::Overwrite => Ok(()),
    }
}

/// Checks the journal to resume against the plan, opens the job's journal and records this
/// run's start (with the chunks an incremental job reuses); the outputs accepted before whose
/// files are still whole.
fn open_journal(
    job: &JobOptions,
    job_id: &str,
    (plan, inputs, slices): (&str, &[InputIdentity], &[InputSlice]),
    reuse: Option<&Reuse>,
    record: &Option<crate::JobRecord>,
    say: &mut dyn FnMut(&str),
) -> Result<(Journal, Vec<flywheel_protocol::ChunkOutput>), JobError> {
    let mut done = Vec::new();
    if let Some(rec) = record {
        rec.check_plan(plan).map_err(BadJob::Journal)?;
        done = rec.verified_outputs(&job.output);
    }
    let mut journal = Journal::open(
        &job.output,
        &crate::journal::StartLine {
            plan,
            job_id,
            inputs,
            chunks: slices.len(),
            rows: slices.iter().map(|s| s.row_count).sum(),
            reused: reuse.map_or((0, 0), |r| {
                (
                    r.reused.len(),
                    r.reused.iter().map(|(o, _)| o.rows_in).sum(),
                )
            }),
        },
        record.is_some(),
    )?;
    crate::crash_point("journal-started");
    // A journal from before job ids lives elsewhere: carry what it accepted into this one.
    if let Some(rec) = record.as_ref().filter(|r| r.path != journal.path()) {
        for o in &done {
            journal.accept(o, None)?;
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
    Ok((journal, done))
}

/// For an incremental job: the chunks the output's latest version holds.
fn reuse_chunks(
    table: &Table,
    incremental: Option<&IncrementalPlan>,
    say: &mut dyn FnMut(&str),
) -> Result<Option<Reuse>, JobError> {
    let Some(plan) = incremental else {
        return Ok(None);
    };
    let reuse = crate::plan_reuse(table, plan).map_err(table_err)?;
    say(&format!("incremental: {}", reuse.summary()));
    Ok(Some(reuse))
}

/// Drives the workers to the job's end, journaling each accepted chunk and touching the
/// active marker every 10 s; a failure as the job's error.
fn drive_job(
    coord: &mut Coordinator,
    tx: &mut impl Transport,
    options: &DriveOptions,
    on_progress: &mut dyn FnMut(&Coordinator),
    journal: &mut Journal,
    touch: &dyn Fn(),
) -> Result<(), JobError> {
    let mut touched = Instant::now();
    let result = drive(
        coord,
        tx,
        options,
        &mut |c| {
            on_progress(c);
            if touched.elapsed() > Duration::from_secs(10) {
                touch();
                touched = Instant::now();
            }
        },
        Some(journal),
    );
    result.map_err(|e| match e {
        CoordinatorError::Job(f) if f.is_bad_input() => BadJob::Input(f).into(),
        CoordinatorError::Checkpointed {
            reason,
            done,
            total,
        } => JobError::Checkpointed {
            signal: reason,
            done,
            total,
            journal: journal.path().to_path_buf(),
        },
        e => e.into(),
    })
}

//! The coordinator: plans are cut into chunks elsewhere (`flywheel-formats`); this crate hands
//! chunks to workers, takes their results and failures, decides when the job is done or lost,
//! and publishes the output version.
//!
//! The scheduling core ([`Coordinator`]) is plain functions over state: it never blocks, never
//! reads the clock (callers pass `now`) and sees workers only through
//! [`flywheel_protocol::Transport`]. [`drive`] is the loop that runs it against a real transport.

mod commit;
mod dependencies;
mod driver;
mod error;
mod errors_table;
mod failure;
mod incremental;
mod job_error;
mod journal;
mod lifecycle;
mod own_files;
mod progress;
mod publish;
mod recorder;
mod report;
mod schema_merge;
pub mod sim;
mod state;

pub use driver::{drive, stop_workers, DriveOptions};
pub use error::CoordinatorError;
pub use errors_table::complete_errors;
pub use failure::{AttemptError, DrainReason, JobFailure, LostReason, WorkerState};
pub use incremental::{
    plan_reuse, FingerprintParts, IncrementalPlan, Reason, Reuse, FINGERPRINT_VERSION,
};
pub use job_error::{BadJob, ExitStatus, JobError};
pub use journal::{
    job_journal_path, job_record, latest_job, InputIdentity, JobRecord, Journal, JournalEntry,
    JournalError,
};
pub use lifecycle::{check_job_id, run_job, JobHooks, JobPlan, Outcome};
pub use progress::{JobProgress, WorkerProgress};
pub use publish::{publish, publish_once, PublishRequest, Published};

/// The steps of a job's end at which `FLYWHEEL_CRASH_AT` kills the process (crash tests), in
/// order; the table's commit steps (`flywheel_formats::COMMIT_STEPS`) lie between the first two.
pub const JOB_STEPS: &[&str] = &[
    "job-locked",
    "journal-started",
    "before-publish",
    "published",
    "journal-closed",
    "errors-published",
];

/// Fault injection for the crash tests: SIGKILL this process at the named step.
pub(crate) fn crash_point(step: &str) {
    flywheel_formats::crash_point(step);
}
pub use report::{JobReport, WorkerReport};
pub use state::{ChunkState, Coordinator, CoordinatorConfig, Progress, SanityError};

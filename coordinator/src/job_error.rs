//! Why a job ended without publishing, and the exit status each reason gives.

use crate::{CoordinatorError, JobFailure, JournalError};
use flywheel_formats::FormatError;
use std::path::PathBuf;

/// The exit status of `flywheel map`, `run` and `rerun`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: the job published (or had published before).
    Success,
    /// 1: the job ran and failed; nothing was published.
    Failed,
    /// 2: bad usage or bad input, or the job is already running elsewhere.
    BadInput,
    /// 3: a signal checkpointed the job; `--resume` continues it.
    Checkpointed,
}

impl ExitStatus {
    /// The process exit code.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failed => 1,
            ExitStatus::BadInput => 2,
            ExitStatus::Checkpointed => 3,
        }
    }
}

/// What is wrong with the job or its input (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum BadJob {
    /// The job id is not one flywheel accepts.
    #[error("{0}")]
    JobId(String),
    /// The output table refuses the job: it exists (`--mode create`), or the version an
    /// append builds on is damaged.
    #[error("{0}")]
    Target(FormatError),
    /// The journal to resume is of another plan, or an input changed since.
    #[error("{0}")]
    Journal(JournalError),
    /// `--resume` found only a finished job.
    #[error("nothing to resume: the last job writing {} finished and published version {version}; run without --resume to start a new job", dir.display())]
    NothingToResume { dir: PathBuf, version: u64 },
    /// A chunk found the input itself bad.
    #[error("{0} (nothing was published)")]
    Input(JobFailure),
}

/// Why a job ended without publishing.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job or its input is wrong; nothing ran, or the input itself failed a chunk.
    #[error("{0}")]
    BadInput(BadJob),
    /// Another process runs this job now.
    #[error("job {job_id} is already running: {holder}; wait for it, or stop it first")]
    Busy { job_id: String, holder: String },
    /// The job ran (or was getting ready to) and failed; nothing was published.
    #[error("job failed, nothing was published: {0}")]
    Failed(Box<CoordinatorError>),
    /// The commit of the job's version failed.
    #[error("job failed, nothing was published: publishing {}: {source}", table.display())]
    PublishFailed {
        table: PathBuf,
        source: Box<CoordinatorError>,
    },
    /// The `_errors` table could not be brought up to date with the main table before the job
    /// ran. (After a publish, the same failure is a warning: the next job completes it.)
    #[error("job failed, nothing was published: {}/_errors: {source}", table.display())]
    ErrorsTable {
        table: PathBuf,
        source: Box<CoordinatorError>,
    },
    /// A signal asked the job to stop; its accepted chunks are journaled.
    #[error("checkpointed after {signal}: {done} of {total} chunks are done and journaled; nothing was published yet; continue with --resume (journal: {})", journal.display())]
    Checkpointed {
        signal: String,
        done: usize,
        total: usize,
        journal: PathBuf,
    },
}

impl JobError {
    /// The exit status a command reports for this error: 2 bad input or busy, 1 failed,
    /// 3 checkpointed.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            JobError::BadInput(_) | JobError::Busy { .. } => ExitStatus::BadInput,
            JobError::Failed(_) | JobError::PublishFailed { .. } | JobError::ErrorsTable { .. } => {
                ExitStatus::Failed
            }
            JobError::Checkpointed { .. } => ExitStatus::Checkpointed,
        }
    }
}

impl From<CoordinatorError> for JobError {
    fn from(e: CoordinatorError) -> JobError {
        JobError::Failed(Box::new(e))
    }
}

impl From<JournalError> for JobError {
    fn from(e: JournalError) -> JobError {
        JobError::Failed(Box::new(CoordinatorError::Journal(e)))
    }
}

impl From<BadJob> for JobError {
    fn from(e: BadJob) -> JobError {
        JobError::BadInput(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_has_its_exit_status() {
        assert_eq!(ExitStatus::Success.code(), 0);
        let failed = JobError::from(CoordinatorError::NoWorkerRegistered {
            waited: std::time::Duration::from_secs(3),
        });
        assert_eq!(failed.exit_status().code(), 1);
        assert_eq!(
            failed.to_string(),
            "job failed, nothing was published: no worker registered within 3s"
        );
        let bad = JobError::BadInput(BadJob::JobId("no".into()));
        assert_eq!(bad.exit_status().code(), 2);
        let busy = JobError::Busy {
            job_id: "j".into(),
            holder: "pid 1 on h".into(),
        };
        assert_eq!(busy.exit_status().code(), 2);
        let cp = JobError::Checkpointed {
            signal: "SIGUSR1".into(),
            done: 3,
            total: 10,
            journal: "/t/_jobs/j.jsonl".into(),
        };
        assert_eq!(cp.exit_status().code(), 3);
        assert_eq!(
            cp.to_string(),
            "checkpointed after SIGUSR1: 3 of 10 chunks are done and journaled; nothing was published yet; continue with --resume (journal: /t/_jobs/j.jsonl)"
        );
    }
}

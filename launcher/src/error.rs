//! Exit codes: 2 for bad usage or bad input, 1 for a job that failed, 3 for a job that
//! checkpointed on a signal (resume it with `--resume`); see
//! [`flywheel_coordinator::ExitStatus`], which maps a job's outcome to them.

use flywheel_coordinator::{ExitStatus, JobError};

/// An error with the exit code it deserves.
#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub error: anyhow::Error,
}

/// Bad usage or bad input: exit 2.
pub fn bad_input(error: impl Into<anyhow::Error>) -> CliError {
    CliError {
        code: ExitStatus::BadInput.code(),
        error: error.into(),
    }
}

/// The job ran and failed: exit 1.
pub fn job_failed(error: impl Into<anyhow::Error>) -> CliError {
    CliError {
        code: ExitStatus::Failed.code(),
        error: error.into(),
    }
}

impl From<JobError> for CliError {
    fn from(e: JobError) -> CliError {
        CliError {
            code: e.exit_status().code(),
            // The message already says the causes: `{:#}` must not repeat them.
            error: anyhow::anyhow!("{e}"),
        }
    }
}

/// A command's exit code: 0 when it succeeded, else its error's (printed first, as
/// `error: ...` with its causes).
pub fn exit_code(result: Result<(), CliError>) -> i32 {
    match result {
        Ok(()) => ExitStatus::Success.code(),
        Err(e) => {
            eprintln!("error: {:#}", e.error);
            e.code
        }
    }
}

/// Attach to results whose failure is bad input.
pub trait OrBadInput<T> {
    fn or_bad_input(self) -> Result<T, CliError>;
}

impl<T, E: Into<anyhow::Error>> OrBadInput<T> for Result<T, E> {
    fn or_bad_input(self) -> Result<T, CliError> {
        self.map_err(bad_input)
    }
}

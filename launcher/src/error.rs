//! Exit codes: 2 for bad usage or bad input, 1 for a job that failed, 3 for a job that
//! checkpointed on a signal (resume it with `--resume`).

/// An error with the exit code it deserves.
#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub error: anyhow::Error,
}

/// Bad usage or bad input: exit 2.
pub fn bad_input(error: impl Into<anyhow::Error>) -> CliError {
    CliError {
        code: 2,
        error: error.into(),
    }
}

/// The job ran and failed: exit 1.
pub fn job_failed(error: impl Into<anyhow::Error>) -> CliError {
    CliError {
        code: 1,
        error: error.into(),
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

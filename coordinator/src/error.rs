//! The coordinator's error.

use crate::JobFailure;
use flywheel_protocol::TransportError;
use std::path::PathBuf;
use std::time::Duration;

/// Why a job could not finish or publish.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// The transport broke: a rank is gone.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// The scheduling core failed the job (attempts exhausted, bad input, no workers left, ...).
    #[error(transparent)]
    Job(#[from] JobFailure),
    /// No worker registered in time.
    #[error("no worker registered within {}s", waited.as_secs())]
    NoWorkerRegistered { waited: Duration },
    /// The output table could not be read, locked or marked (outside the commit).
    #[error("{0}")]
    Table(flywheel_formats::FormatError),
    /// A file or directory could not be made or read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The journal could not be read or written.
    #[error("journal: {0}")]
    Journal(#[from] crate::JournalError),
    /// A signal asked the job to stop; accepted chunks are in the journal.
    #[error("checkpointed after {reason}: {done} of {total} chunks are done and journaled")]
    Checkpointed {
        reason: String,
        done: usize,
        total: usize,
    },
    /// Publishing the version failed.
    #[error("publish: {0}")]
    Publish(#[from] flywheel_formats::FormatError),
    /// Every commit attempt lost its race to another writer (delta-rs: `MaxCommitAttempts`).
    #[error("gave up after {attempts} commit attempts: another job published a version each time")]
    CommitAttemptsExhausted { table: PathBuf, attempts: u32 },
    /// The chunks' output schemas disagree and cannot be published as one table.
    #[error("chunk outputs have different schemas: {0}")]
    SchemaConflict(String),
}

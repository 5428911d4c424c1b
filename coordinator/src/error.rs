//! The coordinator's error.

use flywheel_protocol::TransportError;

/// Why a job could not finish or publish.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// The transport broke: a rank is gone.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// A chunk used all its attempts, or every worker was lost.
    #[error("{0}")]
    JobFailed(String),
    /// A chunk found the input itself bad; nothing was published.
    #[error("{0}")]
    BadInput(String),
    /// The journal could not be written.
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
    /// The chunks' output schemas disagree and cannot be published as one table.
    #[error("chunk outputs have different schemas: {0}")]
    SchemaConflict(String),
}

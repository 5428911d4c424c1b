//! The worker's errors.

use flywheel_protocol::FailureKind;

/// Why one chunk attempt failed. Always reported to the coordinator, never fatal for the worker.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ChunkError {
    pub kind: FailureKind,
    pub message: String,
}

impl ChunkError {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        ChunkError {
            kind,
            message: message.into(),
        }
    }
}

impl From<flywheel_formats::FormatError> for ChunkError {
    fn from(e: flywheel_formats::FormatError) -> Self {
        use flywheel_formats::FormatError as F;
        // Bad data fails the same way on every attempt: stop the job rather than retry.
        let kind = match &e {
            F::BadLine { .. }
            | F::BadFile { .. }
            | F::RaggedHdf5 { .. }
            | F::NoRows { .. }
            | F::Unsupported { .. } => FailureKind::BadInput,
            _ => FailureKind::Io,
        };
        ChunkError::new(kind, e.to_string())
    }
}

/// Why a worker itself stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The link to the coordinator broke.
    #[error("link to the coordinator: {0}")]
    Transport(#[from] flywheel_protocol::TransportError),
    /// The mapper spec is invalid.
    #[error("{0}")]
    Mapper(#[from] flywheel_protocol::MapperSpecError),
    /// A shipped mapper's arguments (checked before any worker starts; here for a job that
    /// skipped that check).
    #[error("{0}")]
    ShippedArgs(#[from] flywheel_protocol::ShippedArgError),
    /// The runner file could not be put in place.
    #[error("cannot install the Python runner at {path}: {source}")]
    Runner {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

//! The coordinator: plans are cut into chunks elsewhere (`flywheel-formats`); this crate hands
//! chunks to workers, takes their results and failures, decides when the job is done or lost,
//! and publishes the output version.
//!
//! The scheduling core ([`Coordinator`]) is plain functions over state: it never blocks, never
//! reads the clock (callers pass `now`) and sees workers only through
//! [`flywheel_protocol::Transport`]. [`drive`] is the loop that runs it against a real transport.

mod driver;
mod error;
mod journal;
mod publish;
mod report;
mod schema_merge;
pub mod sim;
mod state;

pub use driver::{drive, stop_workers, DriveOptions};
pub use error::CoordinatorError;
pub use journal::{read_journal, Journal, JournalEntry, JournalError};
pub use publish::{publish, PublishRequest};
pub use report::{JobReport, WorkerReport};
pub use state::{ChunkState, Coordinator, CoordinatorConfig, JobFailure, Progress};

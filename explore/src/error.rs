//! The explore crate's error.

use crate::PathMiss;
use flywheel_formats::FormatError;

/// What can go wrong looking at a version.
#[derive(Debug, thiserror::Error)]
pub enum ExploreError {
    /// Reading the version failed.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A malformed path (`--path`).
    #[error("path '{path}': {reason}")]
    BadPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A path that leads to no value in a row.
    #[error("no value at '{path}' in row {row} of {table}: {miss}")]
    NoValue {
        /// The path as given.
        path: String,
        /// The row, from 0.
        row: u64,
        /// The version, as `TABLE@V`.
        table: String,
        /// How far the path got.
        miss: PathMiss,
    },
    /// A column that the version does not have.
    #[error("no column '{column}' in {table} (columns: {})", .columns.join(", "))]
    NoColumn {
        /// The name asked for.
        column: String,
        /// The version, as `TABLE@V`.
        table: String,
        /// The columns it has.
        columns: Vec<String>,
    },
}

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
    BadPath { path: String, reason: String },
    /// A path that leads to no value in a row.
    #[error("no value at '{path}' in row {row} of {table}: {miss}")]
    NoValue {
        path: String,
        row: u64,
        /// The version, as `TABLE@V`.
        table: String,
        miss: PathMiss,
    },
    /// A column that the version does not have.
    #[error("no column '{column}' in {table} (columns: {})", .columns.join(", "))]
    NoColumn {
        column: String,
        /// The version, as `TABLE@V`.
        table: String,
        columns: Vec<String>,
    },
}

/// A column name that a schema does not have, with the names it does have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no column '{column}' (columns: {})", .columns.join(", "))]
pub struct NoColumn {
    pub column: String,
    pub columns: Vec<String>,
}

impl NoColumn {
    /// The same miss, naming the version (`TABLE@V`) it was looked for in.
    pub fn within(self, table: String) -> ExploreError {
        ExploreError::NoColumn {
            column: self.column,
            table,
            columns: self.columns,
        }
    }
}

/// Indices in `schema` of the columns `names` (each trimmed), in the order given.
pub fn column_indices<S: AsRef<str>>(
    schema: &arrow::datatypes::Schema,
    names: &[S],
) -> Result<Vec<usize>, NoColumn> {
    names
        .iter()
        .map(|name| {
            let name = name.as_ref().trim();
            schema.index_of(name).map_err(|_| NoColumn {
                column: name.to_string(),
                columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
            })
        })
        .collect()
}

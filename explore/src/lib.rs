//! Looking at a table version's data, for people: the command line's `table show`, `table
//! head`, `table stats`, `query` output and `rerun`'s comparison all go through this crate.
//!
//! - [`path`]: a path language into values (`meta.turns[0].text`, `a["odd.name"][2]`);
//!   [`navigate`](mod@navigate) follows one into a row ([`value_at`]).
//! - [`render`]: every human rendering of a value (JSON, table cells, briefs, types), one
//!   renderer for every Arrow layout.
//! - [`profile`]: distinct counts and top values of a column; [`columns`] puts them beside the
//!   manifest's statistics for a report per column, and finds columns by name.
//! - [`diff`]: where two sequences of data files first differ, row by row.
//!
//! Reading rows is the formats crate's: [`Table::read_rows`](flywheel_formats::Table::read_rows)
//! and [`Table::scan_columns`](flywheel_formats::Table::scan_columns).

#![warn(missing_docs)]

pub mod columns;
pub mod diff;
mod error;
pub mod navigate;
pub mod path;
pub mod profile;
pub mod render;

pub use columns::{column_indices, column_reports, ColumnReport, NoColumn};
pub use diff::{first_difference, Difference};
pub use error::ExploreError;
pub use navigate::{navigate, read_row, value_at, Found, PathMiss};
pub use path::{parse_path, path_text, Step};
pub use profile::{profiled, Profile, Profiler, EXACT_DISTINCT, TOP_SHOWN, TOP_TRACKED};
pub use render::{pretty, raw_bytes, to_json};

//! The formats crate's error.

use std::path::PathBuf;

/// Everything that can go wrong reading or writing flywheel's data.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// A filesystem call failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An input address matched no file.
    #[error("input '{0}' matches no file")]
    NoInput(String),
    /// An input file's extension names no supported format.
    #[error("{0}: unknown input format (expected .parquet, .jsonl, .ndjson, .csv, .arrow, .h5 or .hdf5)")]
    UnknownFormat(PathBuf),
    /// An input format that this build cannot read.
    #[error("{path}: {what}")]
    Unsupported { path: PathBuf, what: String },
    /// An input file that is damaged or not what its name says.
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    /// A line of a text input that cannot be decoded.
    #[error("{path}: line {line}{}: {reason}", column_part(.column))]
    BadLine {
        path: PathBuf,
        line: u64,
        /// Where in the line, when known: a byte column (`23`) or a CSV column's name (`'text'`).
        column: Option<String>,
        reason: String,
    },
    /// An input (a file, or every file of a glob) that holds no rows.
    #[error("{}", no_rows(.files))]
    NoRows {
        /// Each file of the input, with why it has no rows (`the file is empty`, …).
        files: Vec<(PathBuf, String)>,
    },
    /// Datasets of an HDF5 group with different row counts.
    #[error("{path}: HDF5 datasets of group '{group}' have different first dimensions ({detail}); every dataset is a column and needs the same number of rows")]
    RaggedHdf5 {
        path: PathBuf,
        group: String,
        detail: String,
    },
    /// A Parquet file could not be read or written.
    #[error("{path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// Arrow refused the data.
    #[error("{context}: {source}")]
    Arrow {
        context: String,
        #[source]
        source: arrow::error::ArrowError,
    },
    /// A glob pattern is malformed.
    #[error("input '{pattern}' is not a valid glob: {reason}")]
    BadGlob { pattern: String, reason: String },
    /// A row number past the end of a version (the first such row of a range).
    #[error("row {row} does not exist: the version has {rows} rows (rows count from 0)")]
    NoSuchRow { row: u64, rows: u64 },
    /// A table address like `t@x` whose version part is not a number.
    #[error("table address '{0}': the version after '@' must be a positive integer or 'latest'")]
    BadTableRef(String),
    /// An output directory whose name a table address reads as something else (`out/x@2` is
    /// version 2 of `out/x`), so no reader could name the table written there.
    #[error("output {path}: {why}; choose a name without '@'")]
    UnaddressableOutput { path: PathBuf, why: String },
    /// The table directory holds no version.
    #[error("{0}: not a flywheel table (no published version)")]
    NoVersion(PathBuf),
    /// The requested version does not exist.
    #[error("{table}: version {version} does not exist (latest is {latest})")]
    VersionMissing {
        table: PathBuf,
        version: u64,
        latest: u64,
    },
    /// Another writer published this version first. Retryable: re-read the latest and try again.
    #[error("manifest version {version} already exists at {path}")]
    VersionAlreadyExists { version: u64, path: PathBuf },
    /// `create` on a table that already has versions.
    #[error(
        "{path} already holds a table (version {version}); use --mode append or --mode overwrite"
    )]
    TableExists { path: PathBuf, version: u64 },
    /// A Delta log that flywheel did not write: an existing Delta table, or one whose flywheel
    /// versions were removed by hand.
    #[error(
        "{0} holds a Delta log (_delta_log/) but no flywheel versions (_versions/): not a flywheel table; choose another --output, or remove _delta_log/ too"
    )]
    ForeignDeltaLog(PathBuf),
    /// A Delta log entry whose bytes are not the ones derived from the flywheel manifests.
    #[error("{0}: this Delta log entry differs from the one flywheel derives from _versions/; the Delta log and the flywheel versions disagree (was the table written by another tool?)")]
    DeltaMismatch(PathBuf),
    /// A manifest that does not hold up.
    #[error("{path}: invalid manifest: {reason}")]
    BadManifest { path: PathBuf, reason: String },
    /// A job is writing to the table (its active marker is fresh).
    #[error("a job is writing to this table ({0} was updated in the last 2 minutes); wait for it, or use --force if it is dead")]
    JobActive(PathBuf),
    /// A schema in JSON that does not parse.
    #[error("invalid schema JSON: {0}")]
    BadSchemaJson(String),
    /// A lock another process holds.
    #[error("{path} is held by {holder}")]
    Locked { path: PathBuf, holder: String },
    /// A file a version names is missing or not the size its manifest records.
    #[error("{table}: version {version} is damaged: {file} {problem}; nothing is built on a damaged version (restore the file, or publish with --mode overwrite)")]
    DamagedVersion {
        table: PathBuf,
        version: u64,
        file: String,
        problem: String,
    },
}

/// `, column C` after a line number, or nothing.
fn column_part(column: &Option<String>) -> String {
    column
        .as_ref()
        .map(|c| format!(", column {c}"))
        .unwrap_or_default()
}

/// `FILE: no rows (why)`, and for an input of several files how many others had none either.
fn no_rows(files: &[(PathBuf, String)]) -> String {
    let Some((first, why)) = files.first() else {
        return "the input has no rows".into();
    };
    let mut text = format!("{}: no rows ({why})", first.display());
    match files.len() {
        1 => {}
        2 => text.push_str(", and the other file of the input has none either"),
        n => text.push_str(&format!(
            ", and the other {} files of the input have none either",
            n - 1
        )),
    }
    text
}

impl FormatError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> FormatError {
        let path = path.into();
        move |source| FormatError::Io { path, source }
    }

    pub(crate) fn parquet(
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(parquet::errors::ParquetError) -> FormatError {
        let path = path.into();
        move |source| FormatError::Parquet { path, source }
    }
}

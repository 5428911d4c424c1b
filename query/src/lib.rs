//! `flywheel query`: SQL over table versions, with DataFusion.
//!
//! Each table is registered from one version's manifest: exactly the files that version lists,
//! read with the schema it records. Files written later (an append, an overwrite) are not
//! listed, so a query of `T@1` sees version 1 whatever happened to the table since.
//!
//! A query is read-only ([`check_read_only`]): it reads the tables it is given and nothing else
//! (no URL tables, no file-reading table functions) and writes nothing.

mod csv;
mod guard;

pub use csv::write_csv;
pub use guard::{check_read_only, PURE_TABLE_FUNCTIONS};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use flywheel_formats::{Manifest, Table};
use std::path::PathBuf;
use std::sync::Arc;

/// What can go wrong running a query.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A table name that SQL cannot refer to, or given twice.
    #[error("table name '{0}': {1}")]
    BadName(String, String),
    /// A data file that the version lists is gone (vacuumed or deleted by hand).
    #[error("{table}@{version}: data file {path} is missing; the version cannot be read")]
    MissingFile {
        table: String,
        version: u64,
        path: PathBuf,
    },
    /// A statement that is not a read-only query (the statement kind or the table function).
    #[error("{0} is refused: a query is read-only (SELECT, WITH or EXPLAIN over the tables it is given)")]
    Refused(String),
    /// Not exactly one SQL statement.
    #[error("give exactly one SQL statement (found {0})")]
    Statements(usize),
    /// The manifest's schema cannot be decoded.
    #[error("{0}")]
    Format(#[from] flywheel_formats::FormatError),
    /// DataFusion refused the query or failed running it.
    #[error("{0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// The async runtime could not start.
    #[error("cannot start the query runtime: {0}")]
    Runtime(std::io::Error),
}

/// One table to register: the name SQL uses and the version to read.
pub struct Registered<'a> {
    pub name: &'a str,
    pub table: &'a Table,
    pub manifest: &'a Manifest,
}

/// Whether `name` is a plain SQL identifier (letters, digits, `_`, not starting with a digit).
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A query's result: its schema and batches, in the order DataFusion produced them.
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

/// Runs `sql` over `tables` and collects the result. `sql` must pass [`check_read_only`].
pub fn run(sql: &str, tables: &[Registered<'_>]) -> Result<QueryResult, QueryError> {
    let statement = guard::read_only_statement(sql)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .thread_name("flywheel-query")
        .build()
        .map_err(QueryError::Runtime)?;
    runtime.block_on(async {
        // Identifiers keep their case (`SELECT userId FROM t` finds column userId). URL tables
        // (`FROM '/some/file.csv'`) stay off: only the registered tables can be read.
        let mut config = SessionConfig::new().with_information_schema(true);
        config.options_mut().sql_parser.enable_ident_normalization = false;
        let ctx = SessionContext::new_with_config(config);
        let mut seen = std::collections::BTreeSet::new();
        for t in tables {
            if !is_identifier(t.name) {
                return Err(QueryError::BadName(
                    t.name.to_string(),
                    "use letters, digits and '_' (not starting with a digit)".into(),
                ));
            }
            if !seen.insert(t.name) {
                return Err(QueryError::BadName(
                    t.name.to_string(),
                    "given twice".into(),
                ));
            }
            register(&ctx, t).await?;
        }
        // The statement the guard passed is the one planned; DataFusion checks the plan again.
        let plan = ctx.state().statement_to_plan(statement).await?;
        guard::sql_options().verify_plan(&plan)?;
        let df = ctx.execute_logical_plan(plan).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await?;
        Ok(QueryResult { schema, batches })
    })
}

async fn register(ctx: &SessionContext, t: &Registered<'_>) -> Result<(), QueryError> {
    let schema: SchemaRef = Arc::new(flywheel_formats::schema_from_json(
        &t.manifest.schema.to_string(),
    )?);
    let paths = t.table.file_paths(t.manifest);
    if paths.is_empty() {
        let empty = MemTable::try_new(schema, vec![vec![]])?;
        ctx.register_table(t.name, Arc::new(empty))?;
        return Ok(());
    }
    let mut urls = Vec::with_capacity(paths.len());
    for p in &paths {
        // A missing file would otherwise be listed as an empty prefix: rows silently gone.
        let abs = std::fs::canonicalize(p).map_err(|_| QueryError::MissingFile {
            table: t.table.dir().display().to_string(),
            version: t.manifest.version,
            path: p.clone(),
        })?;
        urls.push(ListingTableUrl::parse(abs.to_string_lossy())?);
    }
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    ctx.register_table(t.name, Arc::new(ListingTable::try_new(config)?))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(is_identifier("t"));
        assert!(is_identifier("pairs_v1"));
        assert!(is_identifier("_x"));
        assert!(!is_identifier("1t"));
        assert!(!is_identifier("a-b"));
        assert!(!is_identifier(""));
    }
}
